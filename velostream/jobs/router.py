"""Which partition each record goes to: the plan's strategy, computed by compiled kernels.

``hash``: the coordinator interns the batch's strings into the job's dictionary (work V1 does
too), encodes the key columns as group-table words (``KeyCodec``) and routes them in one nogil pass
(``_core.route.KeyRouter``: key groups assigned to the least-loaded partition on first sight).
Every partition receives the batch with its partition-per-row array (``Routed``) and picks out and
gathers its own rows itself, in parallel.

``sticky`` keeps records in their source partition (``_PARTITION``); ``round_robin`` and
``two_phase`` cut the batch into contiguous slices (any row may go anywhere); ``single`` sends
everything to partition 0.
"""
from __future__ import annotations

import numpy as np

from .._core.route import KeyRouter, select_rows
from ..batch import Batch
from ..exec.expressions import Evaluator
from ..exec.pipeline import KeyCodec
from ..planner import Plan


class Router:
    def __init__(self, plan: Plan, n_partitions: int, evaluator: Evaluator):
        self.n = n_partitions
        self.strategy = plan.partitioning.strategy
        self.keys = list(plan.partitioning.keys)
        self.ev = evaluator
        self.codec = KeyCodec([k.type for k in self.keys]) if self.keys else None
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
            cols = [self.ev.column(k, batch) for k in self.keys]
            part = np.empty(batch.length, dtype=np.int8)
            self.key_router.route(self.codec.encode(cols, batch.length), part)
            return [Routed(batch, part)] * n
        if self.strategy == "sticky":
            name = batch.resolve("_PARTITION")
            if name is not None:
                part = (batch[name].values.astype(np.int64) % n).astype(np.int8)
                return [Routed(batch, part)] * n
        bounds = np.linspace(0, batch.length, n + 1).astype(np.int64)
        return [batch.slice(bounds[i], bounds[i + 1]) if bounds[i + 1] > bounds[i] else None
                for i in range(n)]


class Routed:
    """A batch every partition receives whole, with each row's partition (``part``); each
    partition gathers its own rows itself (``rows_for``), so the copying runs in parallel."""

    __slots__ = ("batch", "part")

    def __init__(self, batch: Batch, part: np.ndarray):
        self.batch = batch
        self.part = part

    @property
    def length(self) -> int:
        return self.batch.length

    def rows_for(self, p: int) -> Batch:
        return self.batch.take(select_rows(self.part, p))
