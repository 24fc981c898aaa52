"""What every operator of a pipeline shares (docs/ARCHITECTURE.md, "Operators")."""
from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from ..._lazy import pc  # imported when first used: see the module
from ...errors import RowError


# A derived row's event time travels in this column (docs/SQL.md §8, "Time of derived rows"): the
# event time of the input row that produced it, or ``_WINDOW_END - 1`` for a window's row. It is
# the same system column a source's records carry, so a reader's WINDOW uses it by default.
EVENT_TIME = "_TIMESTAMP"
INT64_MIN = -2 ** 63


class Operator(Protocol):
    """One node of a pipeline's graph."""

    watermark: int

    def push(self, port: int, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        """Rows of input ``port``; returns the rows this emits."""

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        """The inputs' watermark reached ``watermark``: emit what it completes."""

    def close(self) -> list[pa.RecordBatch]:
        """End of input: emit everything still held."""

    def snapshot(self):
        """The operator's state, picklable (Arrow tables, numpy arrays, numbers)."""

    def restore(self, state) -> None:
        """Continue from ``snapshot``'s state (a fresh operator of the same graph)."""


class HoldsRows:
    """An operator that holds rows until something completes them (the end of a step, a
    window's close, the other input's schema): the held batches and the watermark are its
    state."""

    def __init__(self) -> None:
        self.watermark = INT64_MIN
        self._held: list[pa.RecordBatch] = []

    def push(self, port: int, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        if batch.num_rows:
            self._held.append(batch)
        return []

    def snapshot(self):
        return {"held": list(self._held), "watermark": self.watermark}

    def restore(self, state) -> None:
        self._held = list(state["held"])
        self.watermark = state["watermark"]


def split_rows(batches: list, route, n: int) -> list[list[pa.RecordBatch]]:
    """The rows of ``batches`` as ``n`` lists of batches: each row where ``route(0, rows)``
    sends it (an operator's state moving to another partition count, exec/partitioned.py)."""
    batches = [b for b in batches if b.num_rows]
    if not batches:
        return [[] for _ in range(n)]
    rows = pa.Table.from_batches(batches).combine_chunks()
    part = route(0, rows)
    return [rows.filter(pa.array(part == j)).to_batches() for j in range(n)]


class EvaluatesFirst:
    """An operator of a SELECT stage that evaluates every row-level expression of a batch
    (``_prepare``) before it changes any state (``_apply``): a ``RowError`` raised before names
    the batch's failing rows, which the pipeline sets aside before it retries the batch
    (docs/SQL.md §7); one raised after, when state has changed, names none."""

    def push(self, batch):
        prepared = self._prepare(batch)
        try:
            return self._apply(batch, prepared)
        except RowError as err:
            err.rows = None
            raise


class RelationSchema(dict):
    """Column name -> SqlType of a relation, as the planner reads a source's schema, with the
    columns ``SELECT *`` skips (``hidden``: the derived event time)."""

    def __init__(self, columns, hidden=()):
        super().__init__(columns)
        self.hidden = tuple(hidden)


def visible(batches: list[pa.RecordBatch], hidden) -> list[pa.RecordBatch]:
    """``batches`` without their ``hidden`` columns."""
    if not hidden:
        return batches
    out = []
    for rb in batches:
        keep = [i for i, n in enumerate(rb.schema.names) if n not in hidden]
        out.append(rb.select(keep))
    return out


def sql_schema(schema: pa.Schema, hidden=(), dates: bool = False) -> RelationSchema:
    """``dates``: a relation the engine made, whose date32 columns are DATEs (a source's date
    column is a TIMESTAMP: velostream.batch.type_of_arrow)."""
    from ...batch import type_of_arrow
    return RelationSchema({f.name: type_of_arrow(f.type, dates) for f in schema}, hidden)



_PER_KEY_NULLS = int(pa.__version__.split(".")[0]) >= 25


def sort_indices(table: pa.Table, keys: list[tuple]) -> pa.Array:
    """Row order by ``keys`` ((column, 'ascending' | 'descending'[, 'at_start' | 'at_end'])),
    stable; NULLs last (as in DuckDB) unless a key says 'at_start' (NULLS FIRST)."""
    keys = [k if len(k) == 3 else (*k, "at_end") for k in keys]
    if _PER_KEY_NULLS:  # pyarrow 25 takes the NULL placement per key
        return pc.sort_indices(table, sort_keys=keys)
    if all(p == "at_end" for _, _, p in keys):
        return pc.sort_indices(table, sort_keys=[(n, o) for n, o, _ in keys],
                               null_placement="at_end")
    # older pyarrow places NULLs for all keys at once: a NULLS FIRST key is sorted by whether
    # it is valid first (NULLs, False, before values), then by itself
    cols, sort_keys = {}, []
    for i, (name, order, placement) in enumerate(keys):
        if placement == "at_start":
            flag = f"\x00valid{i}"
            cols[flag] = pc.is_valid(table.column(name))
            sort_keys.append((flag, "ascending"))
        sort_keys.append((name, order))
    for flag, col in cols.items():
        table = table.append_column(flag, col)
    return pc.sort_indices(table, sort_keys=sort_keys, null_placement="at_end")
