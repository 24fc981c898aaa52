"""Window top-N: the first N rows per (window, partition) in ORDER BY order, emitted once when
the window closes (docs/SQL.md §8, Flink's ROW_NUMBER form).

The operator holds its input's rows per window (their event time is the window's end - 1) and
ranks a window's rows when the watermark passes its end. An input that emits changes (EMIT
CHANGES) is reduced to its last row per group first, so the ranking is over the window's final
values. Ranking is vectorised: one Arrow sort, then group boundaries compared in numpy.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from ..._lazy import pc  # imported when first used: see the module
from .base import EVENT_TIME, INT64_MIN, HoldsRows, sort_indices, split_rows


def group_codes(table: pa.Table, names: list[str]) -> np.ndarray:
    """Per row, an int64 code per distinct combination of ``names`` (NULL is a value)."""
    n = table.num_rows
    codes = np.zeros(n, dtype=np.int64)
    for name in names:
        enc = pc.dictionary_encode(table.column(name)).combine_chunks()
        idx = enc.indices.to_numpy(zero_copy_only=False)
        if enc.null_count:
            idx = np.where(enc.is_valid().to_numpy(zero_copy_only=False), idx, len(enc.dictionary))
        codes = codes * (len(enc.dictionary) + 1) + idx.astype(np.int64)
        # keep the codes small: renumber after each column
        _, codes = np.unique(codes, return_inverse=True)
        codes = codes.astype(np.int64)
    return codes


def rank_within(codes_sorted: np.ndarray) -> np.ndarray:
    """1-based row number within runs of equal codes (the rows sorted by code first)."""
    n = len(codes_sorted)
    starts = np.ones(n, dtype=bool)
    starts[1:] = codes_sorted[1:] != codes_sorted[:-1]
    start_pos = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return np.arange(n) - start_pos + 1


def with_column_at(batch: pa.RecordBatch, pos: int, name: str, values: pa.Array) -> pa.RecordBatch:
    cols = list(batch.columns)
    names = list(batch.schema.names)
    cols.insert(pos, values)
    names.insert(pos, name)
    return pa.RecordBatch.from_arrays(cols, names=names)


class WindowTopN(HoldsRows):
    def __init__(self, partition: list[str], order: list[tuple[str, bool]], limit: int,
                 rn_name: str, rn_pos: int, changes_key: Optional[list[str]]):
        super().__init__()
        self.partition = partition      # PARTITION BY columns (the window's among them)
        self.order = order              # (column, descending)
        self.limit = limit              # N
        self.rn_name = rn_name
        self.rn_pos = rn_pos
        self.changes_key = changes_key  # the input's group columns when it emits changes

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        self.watermark = max(self.watermark, watermark)
        if not self._held or watermark == INT64_MIN:
            return []
        table = pa.Table.from_batches(self._held)
        ends = pc.add(table.column(EVENT_TIME).cast(pa.int64()), 1)
        done = pc.less_equal(ends, watermark)
        ready = table.filter(done)
        rest = table.filter(pc.invert(done))
        self._held = rest.combine_chunks().to_batches() if rest.num_rows else []
        return self._rank(ready)

    def close(self) -> list[pa.RecordBatch]:
        if not self._held:
            return []
        table = pa.Table.from_batches(self._held)
        self._held = []
        return self._rank(table)

    def _rank(self, table: pa.Table) -> list[pa.RecordBatch]:
        if table.num_rows == 0:
            return []
        if self.changes_key is not None:  # the last change of each group is its final value
            codes = group_codes(table, [EVENT_TIME] + self.changes_key)
            last = np.zeros(codes.max() + 1, dtype=np.int64)
            last[codes] = np.arange(len(codes))  # later rows overwrite earlier ones
            table = table.take(pa.array(np.sort(last)))
        keys = [(EVENT_TIME, "ascending")] + [(p, "ascending") for p in self.partition]
        keys += [(c, "descending" if d else "ascending") for c, d in self.order]
        table = table.take(sort_indices(table, keys))
        rank = rank_within(group_codes(table, [EVENT_TIME] + self.partition))
        # group codes are not in sort order across groups, but rows of one group are adjacent
        keep = rank <= self.limit
        table = table.filter(pa.array(keep))
        rn = pa.array(rank[keep], type=pa.int64())
        batch = table.combine_chunks().to_batches()
        if not batch:
            return []
        return [with_column_at(batch[0], self.rn_pos, self.rn_name, rn)]

    @staticmethod
    def regroup(states: list, route, n: int, was_broadcast=None, broadcast=None) -> list:
        """The instances' states at one partition count as ``n`` (exec/partitioned.py): each
        held row goes where ``route`` sends its PARTITION BY values."""
        wm = max(s["watermark"] for s in states)
        return [{"held": held, "watermark": wm}
                for held in split_rows([b for s in states for b in s["held"]], route, n)]

    def describe(self) -> str:
        order = ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in self.order)
        return (f"WindowTopN: {self.limit} rows per window and ({', '.join(self.partition)}) by "
                f"{order}, emitted when the window closes")
