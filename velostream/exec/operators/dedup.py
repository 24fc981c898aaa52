"""Deduplication: the first row of each key is emitted once, later rows of that key never
(docs/SQL.md §8: ``ROW_NUMBER() OVER (PARTITION BY k ORDER BY <event time>) ... WHERE rn = 1``).

"First" is first in arrival order, which is event-time order for an ordered input. The keys seen
live in the compiled group table (``_core/group_table``), so a batch costs one vectorised lookup.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from ...batch import Batch, Column, StringDict
from .base import INT64_MIN, split_rows
from .top_n import with_column_at


class FirstSeen:
    """Which rows carry a key never seen before (in this batch or any earlier one); SELECT
    DISTINCT uses it on whole rows, deduplication on its keys."""

    def __init__(self) -> None:
        self._codec = None
        self._table = None

    def first_rows(self, cols: list[Column], n: int) -> np.ndarray:
        from ..._core.group_table import GroupTable
        from ..keys import KeyCodec
        if self._table is None:
            self._codec = KeyCodec([c.type for c in cols])
            self._table = GroupTable(self._codec.n_words)
        words = self._codec.encode(cols, n)
        before = self._table.slot_capacity
        slots = np.empty(n, dtype=np.int32)
        self._table.find_or_insert(words, slots)
        _, first = np.unique(slots, return_index=True)
        return np.sort(first[slots[first] >= before])


class Deduplicate:
    def __init__(self, keys: list[str], rn_name: Optional[str], rn_pos: int):
        self.keys = keys
        self.rn_name = rn_name
        self.rn_pos = rn_pos
        self.watermark = INT64_MIN
        self.strings = StringDict()
        self.seen = FirstSeen()
        self._seen_keys: list[pa.RecordBatch] = []

    def push(self, port: int, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        if batch.num_rows == 0:
            return []
        first = self._first(batch.select(self.keys))
        if len(first) == 0:
            return []
        out = batch.take(pa.array(first))
        if self.rn_name is not None:
            out = with_column_at(out, self.rn_pos, self.rn_name,
                                 pa.array(np.ones(len(first), dtype=np.int64)))
        return [out]

    def _first(self, keys: pa.RecordBatch) -> np.ndarray:
        batch = Batch.from_arrow(keys, self.strings)
        first = self.seen.first_rows([batch.columns[k] for k in self.keys], keys.num_rows)
        if len(first):  # what a snapshot keeps: each key once
            self._seen_keys.append(keys.take(pa.array(first)))
        return first

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        self.watermark = max(self.watermark, watermark)
        return []

    def close(self) -> list[pa.RecordBatch]:
        return []

    def snapshot(self):
        return {"keys": list(self._seen_keys), "watermark": self.watermark}

    @staticmethod
    def regroup(states: list, route, n: int, was_broadcast=None, broadcast=None) -> list:
        """The instances' states at one partition count as ``n`` (exec/partitioned.py): each
        key seen goes where ``route`` sends it."""
        wm = max(s["watermark"] for s in states)
        return [{"keys": keys, "watermark": wm}
                for keys in split_rows([b for s in states for b in s["keys"]], route, n)]

    def restore(self, state) -> None:
        for keys in state["keys"]:
            self._first(keys)
        self.watermark = state["watermark"]

    def describe(self) -> str:
        return f"Deduplicate: the first row of each ({', '.join(self.keys)}), later ones never"
