"""The partitions' threads, shared by V2's exchanges (``partition_threads.HashExchange`` and
``partition_scan.ScanSplit``): a ``Worker`` runs the steps of one or more partitions, fed by its
own bounded queue, and reports each step's result (or failure) to the job's thread."""
from __future__ import annotations

import queue
import threading
import time
import traceback

from ..errors import JobError

STOP = object()


class Worker(threading.Thread):
    """A native thread that runs the steps of one or more partitions (``parts``), fed by its
    own bounded queue: a job has ``partitions`` partitions, each key's state in one of them,
    and at most as many threads as the machine has cores (``thread_count``). More threads than
    cores would take turns at the cores and at the GIL, each turn a stall for the others
    (docs/PERFORMANCE.md, "Session 11"); the partition count stays what the user asked for,
    so state, metrics and snapshots are the same whatever the threads.

    A partition has ``index``, ``failed``, ``busy_s``, ``cpu_s`` and ``_step(step)``, which
    returns (rows, late records, dead letters); the result queue gets
    ``(step.seq, index, rows, late, dead, None)``, or ``(..., None, 0, [], (exc, traceback))``."""

    def __init__(self, index: int, parts: list, results: "queue.Queue", depth: int):
        super().__init__(name=f"velostream-partition-{index}", daemon=True)
        self.index = index
        self.parts = parts
        self.inbox: "queue.Queue" = queue.Queue(maxsize=depth)
        self.results = results

    @property
    def started(self) -> bool:
        return self.ident is not None

    def run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is STOP:
                return
            for part, step in item:  # a step of each of this thread's partitions, in order
                if part.failed:  # keep draining so the job's thread never blocks on it
                    continue
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    self.results.put((step.seq, part.index, *part._step(step), None))
                except BaseException as exc:  # reported to the job's thread (drain)
                    part.failed = True
                    self.results.put((step.seq, part.index, None, 0, [],
                                      (exc, traceback.format_exc())))
                part.busy_s += time.perf_counter() - t0
                part.cpu_s += time.thread_time() - c0


def put_step(worker: Worker, item: list) -> None:
    """Blocking put (backpressure) that notices a dead thread instead of hanging; a thread
    starts with its first step."""
    if not worker.started:
        worker.start()
    while True:
        try:
            worker.inbox.put(item, timeout=0.1)
            return
        except queue.Full:
            if not worker.is_alive():
                raise JobError(f"partition thread {worker.index} stopped")


def stop_workers(threads: list) -> None:
    """Stop the threads (each after the steps in its queue) and wait for them."""
    for w in threads:
        while w.started and w.is_alive():
            try:
                w.inbox.put(STOP, timeout=0.1)
                break
            except queue.Full:
                try:  # a wedged queue: make room, the job is over anyway
                    w.inbox.get_nowait()
                except queue.Empty:
                    pass
    for w in threads:
        if w.started:
            w.join(timeout=10)
