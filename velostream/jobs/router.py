"""Which partition each record goes to: the plan's strategy, computed by compiled kernels.

``hash``: the partitions route each batch together (``Routed``). The coordinator only names the
key columns; partition i hashes slice i of the rows into a shared partition-per-row array
(``_core.route.KeyRouter``, nogil, key groups balanced on first sight), then every partition picks
out its own rows (``select_rows``) and gathers them, interning its rows' strings into its own
dictionary. Nothing is routed serially in the coordinator and no row is copied twice.

``sticky`` keeps records in their source partition (``_PARTITION``); ``round_robin`` and
``two_phase`` cut the batch into contiguous slices (any row may go anywhere); ``single`` sends
everything to partition 0.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np
import pyarrow as pa

from .._core.route import KeyRouter, select_rows
from ..batch import Batch, Column, StringDict
from ..errors import JobError
from ..exec.expressions import BCol, Evaluator
from ..exec.pipeline import key_words
from ..planner import Plan


class Router:
    def __init__(self, plan: Plan, n_partitions: int, evaluator: Evaluator):
        self.n = n_partitions
        self.strategy = plan.partitioning.strategy
        self.keys = list(plan.partitioning.keys)
        self.ev = evaluator
        self.key_router = KeyRouter(n_partitions) if self.strategy == "hash" and n_partitions > 1 else None

    def split(self, batch: Batch) -> list:
        """Per partition: a Batch, the ``Routed`` batch every partition takes its rows from, or
        None (no rows for that partition)."""
        n = self.n
        if n == 1:
            return [batch]
        if self.strategy == "single":
            return [batch] + [None] * (n - 1)
        if self.strategy == "hash":
            routed = Routed(batch, n, keys=self._key_specs(batch), router=self.key_router)
            return [routed] * n
        if self.strategy == "sticky":
            name = batch.resolve("_PARTITION")
            if name is not None:
                part = (batch[name].values.astype(np.int64) % n).astype(np.int8)
                return [Routed(batch, n, part=part)] * n
        bounds = np.linspace(0, batch.length, n + 1).astype(np.int64)
        return [batch.slice(bounds[i], bounds[i + 1]) if bounds[i + 1] > bounds[i] else None
                for i in range(n)]

    def _key_specs(self, batch: Batch) -> list[tuple]:
        """The key columns as the router kernel takes them. Strings are hashed from their bytes
        (each partition has its own dictionary, so codes differ between partitions); a key that
        is an expression is evaluated here, once."""
        specs = []
        for k in self.keys:
            col = batch.columns[k.name] if isinstance(k, BCol) else self.ev.column(k, batch)
            if col.type.kind == "STRING":
                arr = col.arrow if col.arrow is not None else col.to_arrow()
                specs.append(_string_spec(_plain_strings(arr)))
            else:
                valid = col.valid
                specs.append(("w", key_words(col), None if valid is None else valid.view(np.uint8)))
        return specs


class Routed:
    """A batch the partitions route together. Partition ``i`` routes rows slice ``i`` of the
    batch, waits until every slice is routed, then takes its own rows (``rows_for``)."""

    def __init__(self, batch: Batch, n: int, keys: Optional[list] = None,
                 router: Optional[KeyRouter] = None, part: Optional[np.ndarray] = None):
        self.batch = batch
        self.n = n
        self.keys = keys
        self.router = router
        self.part = part if part is not None else np.empty(batch.length, dtype=np.int8)
        self._left = 0 if part is not None else n
        self._lock = threading.Lock()
        self._routed = threading.Event()
        if part is not None:
            self._routed.set()
        self._failed: Optional[int] = None

    @property
    def length(self) -> int:
        return self.batch.length

    def rows_for(self, p: int, strings: StringDict) -> Batch:
        """Route slice ``p``, then gather partition ``p``'s rows with strings interned into
        ``strings`` (the partition's own dictionary)."""
        if not self._routed.is_set():
            length = self.batch.length
            lo, hi = length * p // self.n, length * (p + 1) // self.n
            try:
                self.router.route(self.keys, length, lo, hi, self.part)
            except BaseException:
                self.abort(p)
                raise
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._routed.set()
            while not self._routed.wait(0.1):
                pass
        if self._failed is not None:
            raise JobError(f"stopped: partition {self._failed} failed while routing")
        return gather(self.batch, select_rows(self.part, p), strings)

    def abort(self, p: int) -> None:
        """Partition ``p`` cannot route its slice: wake the others, which then fail too."""
        self._failed = p
        self._routed.set()


def gather(batch: Batch, rows: np.ndarray, strings: StringDict) -> Batch:
    """Rows ``rows`` of ``batch``; string columns straight from their Arrow bytes into
    ``strings`` (only these rows are interned, nothing is copied first)."""
    cols = {}
    for name, col in batch.columns.items():
        if col.type.kind == "STRING" and col.arrow is not None:
            arr = _plain_strings(col.arrow)
            codes, valid = strings.encode_arrow(arr, rows)
            cols[name] = Column(col.type, codes, valid, strings=strings)
        else:
            valid = col.valid
            cols[name] = Column(col.type, col.values[rows], None if valid is None else valid[rows],
                                strings=strings)
    return Batch(cols, len(rows))


def rebind(batch: Batch, strings: StringDict) -> Batch:
    """The same rows with their string columns reading into ``strings`` (a partition's own
    dictionary). Columns still in Arrow form are re-wrapped without converting."""
    cols = {}
    for name, col in batch.columns.items():
        if col.type.kind == "STRING" and col.strings is not strings:
            arr = col.arrow if col.arrow is not None else col.to_arrow()
            cols[name] = Column(col.type, arrow=arr, strings=strings)
        else:
            cols[name] = col
    return Batch(cols, batch.length)


def _plain_strings(arr):
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _string_spec(arr) -> tuple:
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=arr.offset + n + 1)[arr.offset:]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(1, np.uint8)
    valid = None
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False).view(np.uint8)
    return ("s", np.ascontiguousarray(offsets), data, valid)
