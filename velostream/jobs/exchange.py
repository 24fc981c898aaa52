"""Exchanges: how a job's input batches reach the operators that process them, and how their rows
come back to the job's sink (docs/ARCHITECTURE.md, "Jobs and exchanges").

``Job`` runs one loop for every job (``Job._run_loop``): read a batch, ``send`` it through the
exchange, ``drain`` what the exchange has finished to the sink, commit when due; at the end,
``finish``. What differs between jobs is only the exchange:

* ``InlineExchange``: one engine (a query or a pipeline's graph) in the job's own thread;
* ``partition_threads.HashExchange``: N partitions on native threads behind the hash router
  (``Router``), merged back in step order (V2); for a compiled GROUP BY over few groups it hands
  the job to ``partition_scan.ScanSplit`` at the first batch (contiguous pieces of each step);
* ``tasks.SourcePartitionExchange``: one engine per source partition of a partitioned source
  (Kafka with fault tolerance), state and commits scoped by source partition.
"""
from __future__ import annotations

import time
from typing import Protocol

import pyarrow as pa

from ..exec.graph import GraphEngine


class Exchange(Protocol):
    done: bool  # the job needs no more input (a LIMIT was reached)

    def send(self, rb: pa.RecordBatch, arrived: float) -> None:
        """One step: ``rb`` (read at ``arrived``) into the operators. Its rows reach the sink
        (``Job._deliver``) now or at a later ``drain``."""

    def drain(self, block: bool = False) -> None:
        """Deliver the steps that are finished; ``block``: every step sent so far."""

    def finish(self) -> None:
        """End of input (or stop): close what the input's end closes, and deliver all of it."""

    def partition_records(self) -> list[int]:
        """Records each partition processed so far."""

    def close(self) -> None:
        """Stop any thread the exchange runs (also after a failure)."""


class InlineExchange:
    """The job's engine in the job's own thread: each step is one ``Engine.push``."""

    done = False

    def __init__(self, job):  # the Job it serves (coordinator.py)
        self.job = job
        self.engine = job.engine
        self.ckpt = job._pipeline_ckpt  # a pipeline on Kafka: its state checkpoints
        if self.ckpt is not None:  # continue from its last checkpoint
            self.ckpt.resume(self.engine, job.reset)

    def send(self, rb: pa.RecordBatch, arrived: float) -> None:
        job, eng = self.job, self.engine
        if self.ckpt is not None:
            self.ckpt.check()
        t0 = time.perf_counter()
        r = eng.push(eng.source, rb)
        stats = job.stats
        stats.time_processing_s += time.perf_counter() - t0
        stats.records_read = eng.stats["records_in"]
        stats.records_late = eng.stats["late_records"]
        stats.batches += 1
        job._deliver(r, arrived)

    def drain(self, block: bool = False) -> None:
        pass  # every step was delivered by send

    def finish(self) -> None:
        eng = self.engine
        if self.ckpt is not None:
            self.ckpt.check()
        # a stopped pipeline on Kafka keeps its windows open in its checkpoint
        if eng.plan is not None and not (self.ckpt is not None and self.job._stop.is_set()):
            self.job._deliver(eng.flush(), time.perf_counter())
        if self.ckpt is not None:
            self.ckpt.stop()
        self.job.stats.partition_records = self.partition_records()

    def partition_records(self) -> list[int]:
        if isinstance(self.engine, GraphEngine):  # rows its keyed nodes gave each partition
            return self.engine.partition_records()
        return [self.engine.stats["records_in"]]

    def close(self) -> None:
        if isinstance(self.engine, GraphEngine):  # its keyed nodes' partition threads
            self.engine.close()
