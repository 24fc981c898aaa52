"""Which partition each record goes to: the plan's strategy, computed by compiled kernels.

``hash`` hashes the key columns (the same words the group tables use) with
``group_table.partition_of`` and scatters the batch with a stable counting sort
(``scatter_index``), so each partition's rows keep their input order. ``round_robin`` and
``two_phase`` cut the batch into contiguous slices (any row may go anywhere); ``single`` sends
everything to partition 0; ``sticky`` keeps records in their source partition (``_PARTITION``).
"""
from __future__ import annotations

import numpy as np

import pyarrow as pa

from .._core.group_table import partition_of, scatter_index
from .._core.strings import hash_arrow
from ..batch import Batch, Column
from ..exec.expressions import BCol, Evaluator
from ..exec.pipeline import KeyCodec
from ..planner import Plan


class Router:
    def __init__(self, plan: Plan, n_partitions: int, evaluator: Evaluator):
        self.n = n_partitions
        self.strategy = plan.partitioning.strategy
        self.keys = list(plan.partitioning.keys)
        self.ev = evaluator
        self.codec = KeyCodec([k.type for k in self.keys]) if self.keys else None

    def split(self, batch: Batch) -> list:
        """Per partition: a Batch, ``Rows`` of the batch (gathered by the partition), or None."""
        n = self.n
        if n == 1:
            return [batch]
        if self.strategy == "single":
            return [batch] + [None] * (n - 1)
        if self.strategy == "hash":
            return self._scatter(batch, self._key_words(batch))
        if self.strategy == "sticky":
            name = batch.resolve("_PARTITION")
            if name is not None:
                part = (batch[name].values.astype(np.int64) % n).astype(np.int32)
                return self._scatter_parts(batch, np.ascontiguousarray(part))
        bounds = np.linspace(0, batch.length, n + 1).astype(np.int64)
        return [batch.slice(bounds[i], bounds[i + 1]) if bounds[i + 1] > bounds[i] else None
                for i in range(n)]

    def _key_words(self, batch: Batch) -> list[np.ndarray]:
        """Words that identify each row's key. A string column still in its Arrow form is hashed
        from its raw bytes: interning it here would serialise that work in the coordinator,
        while the partitions can intern their own rows in parallel."""
        if all(isinstance(k, BCol) and _raw_strings(batch.columns[k.name]) for k in self.keys):
            words = []
            for k in self.keys:
                h = np.empty(batch.length, dtype=np.uint64)
                hash_arrow(_combined(batch.columns[k.name].arrow), h)
                words.append(h.view(np.int64))
            return words
        cols = [self.ev.column(k, batch) for k in self.keys]
        return self.codec.encode(cols, batch.length)

    def _scatter(self, batch: Batch, words: list[np.ndarray]) -> list:
        part = np.empty(batch.length, dtype=np.int32)
        partition_of(words, self.n, part)
        return self._scatter_parts(batch, part)

    def _scatter_parts(self, batch: Batch, part: np.ndarray) -> list:
        """Each partition gets the batch and its row numbers: the copying (``take``) then happens
        in the partition threads, in parallel, instead of serially here."""
        order, offsets = scatter_index(part, self.n)
        out: list = []
        for p in range(self.n):
            lo, hi = offsets[p], offsets[p + 1]
            out.append(Rows(batch, order[lo:hi]) if hi > lo else None)
        return out


def _raw_strings(col: Column) -> bool:
    """A string column nobody has interned yet (still its original Arrow array)."""
    return col.type.kind == "STRING" and col._values is None and col.arrow is not None


def _combined(arr):
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


class Rows:
    """Some rows of a batch, gathered by whoever processes them."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: Batch, index: np.ndarray):
        self.batch, self.index = batch, index

    @property
    def length(self) -> int:
        return len(self.index)

    def gather(self) -> Batch:
        return self.batch.take(self.index)
