"""The hash exchange: N partitions behind the router, on native threads (V2).

Data path::

    reader -> Engine.prepare (decode, event time, job watermark)
      -> Router (Cython key-group routing on the key columns' own values, nogil)
      -> bounded queue -> the thread of partition i (one thread per core at most: a thread
         takes its partitions' steps in turn): its own rows of the step's batches gathered
         straight into one batch (strings interned into its own dictionary, numbers by one
         compiled pass, exec.router.rows_of_pieces), Pipeline.process (or the compiled GROUP BY
         step on its rows in place, GroupStep.push_rows) + advance(watermark), rows to Arrow
         -> results queue
      -> the job's thread: reorder by step, merge partitions' rows (window-end order for EMIT
         FINAL, one compiled merge pass; a two-phase plan's partial state merged by a
         ``final`` pipeline), DISTINCT / LIMIT -> writer

Small steps skip the threads: a step of at most INLINE_STEP_ROWS rows (and a row-by-row plan's
batch of at most INLINE_ROWS, unsplit) runs in the job's thread on each partition's pipeline in
turn, once the steps before it are delivered; a partition's thread starts with its first step.

Each partition owns its pipeline outright, string dictionary included: no state is shared or
locked between partition threads. (When a routing key is an expression, the job's thread
evaluates it, interns into the job's dictionary and routes on the codes; the partitions then
share that append-only dictionary, and one that makes new strings, e.g. UPPER(x), appends under
its lock. Two-phase aggregation shares it too, for the final merge.) The kernels release the GIL,
so partitions run in parallel on separate cores. Every partition receives every watermark,
including partitions that got no records, so windows close identically at any partition count.
"""
from __future__ import annotations

import collections
import queue
import time
import traceback
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from .._core.gather import merge_order, take_interleaved, take_strings_interleaved
from .._core.route import select_rows, select_runs
from ..batch import Batch, Column, SqlType, StringDict, concat_batches
from ..errors import JobError, RowError, VelostreamError
from ..exec.columns import END_COL, ROW_COL, SEQ_COL, may_be_late
from ..exec.partitioned import thread_count
from ..exec.pipeline import Pipeline
from ..exec.push_fast import step_for
from ..exec.router import Routed, Router, own_dictionary, rows_of_pieces
from .partition_scan import ScanSplit, scan_split_for
from .partition_worker import Worker, put_step, stop_workers

_INT = SqlType("INT64")
# Routed batches up to this many rows take the compiled GROUP BY step in partitions that share the
# job's dictionary (small batches: per-batch Python of the general path dominates their cost and
# their latency); partitions with their own dictionary take it for every routed batch.
SMALL_ROUTED_BATCH = 4096
# A row-by-row plan (``round_robin``: no state, any row may go anywhere) runs batches up to this
# many rows in the job's own thread, on partition 0's pipeline: its vectorised work costs about as
# much as handing the slices to the partition threads and merging their rows back (S0, 65,536-row
# batches: 3 ms at one partition, 9 ms on two threads), so the threads only take larger batches.
INLINE_ROWS = 1 << 17
# A step of at most this many rows, of any plan, runs in the job's own thread on every
# partition's pipeline in turn (once the steps before it are delivered): two thread hand-offs per
# partition and the partitions' per-step Python cost more than such a step's rows (a few-row step:
# ~440 us on two threads against ~130 us at one partition, docs/PERFORMANCE.md).
INLINE_STEP_ROWS = 1024


# Batches read back to back are sent to the partitions as one step of at least this many rows:
# a step costs each partition a fixed ~1 ms of Python (the pipeline's calls, window emission, its
# rows to Arrow) and the job's thread the merge of their rows, and two partitions' Python takes
# turns at the GIL (docs/PERFORMANCE.md "Session 9" has the measurements). A step waits for more
# rows only while more are read without waiting, and at most STEP_HOLD_S after its first batch
# arrived: when the reader has nothing, the job drains (drain(block=True)), which sends what is
# held; a stream read without pause (a Kafka backlog) adds at most STEP_HOLD_S to its latency
# (docs/ARCHITECTURE.md "Jobs").
STEP_ROWS = 1 << 18
STEP_HOLD_S = 0.01


@dataclass
class _Step:
    seq: int
    batch: object  # a Batch, a Routed batch, None, or a list of them (batches held together)
    watermark: Optional[int]
    flush: bool = False
    arrow: object = None  # the input batch when ``batch`` has all its rows (a list likewise)
    watermarks: Optional[list] = None  # the job's watermark after each batch (held together)


@dataclass
class _Held:
    """One batch routed but not yet sent: each partition's part and Arrow input, and when it
    arrived and the job's watermark after it."""
    parts: list
    arrows: list
    arrived: float
    watermark: Optional[int]


class _Partition:
    """One partition: its own pipeline. It hands back its rows already in Arrow (``convert``),
    so the job's thread only merges and writes. A ``Worker`` thread runs it."""

    def __init__(self, index: int, pipeline: Pipeline, engine, convert: bool,
                 own_strings: bool = False):
        self.index = index
        self.pipeline = pipeline
        self.engine = engine
        self.convert = convert
        # the pipeline's dictionary is this partition's alone (raw routing): routed batches' string
        # columns move to it, and the compiled step takes routed batches of any size
        self.own_strings = pipeline.strings if own_strings else None
        # the compiled step of a plain streaming GROUP BY (exec.push_fast): whole batches, and
        # routed ones as _compiled says
        self.fast = step_for(engine.plan, pipeline, pipeline.strings, collections.Counter(),
                             engine.internal_schema) if convert else None
        self.by_runs = False  # routed by window (HashExchange._start, _process_runs)
        self.records = 0
        self.busy_s = 0.0
        self.cpu_s = 0.0  # CPU time in steps (busy_s less waiting for the GIL/cores)
        self.failed = False

    def _step(self, step: "_Step") -> tuple:
        pipeline = self.pipeline
        out = []
        # a step holds one input batch, or several read back to back (HashExchange.send, STEP_ROWS)
        pieces = step.batch if isinstance(step.batch, list) else [step.batch]
        arrows = step.arrow if isinstance(step.arrow, list) else [step.arrow]
        if self.by_runs:  # routed by window
            out += self._process_runs(pieces, step.watermarks or [None] * len(pieces))
        else:
            out += self._process_pieces(pieces, arrows)
        if step.watermark is not None:
            out += pipeline.advance(step.watermark)
        if step.flush:
            out += pipeline.flush()
        dead = pipeline.dead_letters
        pipeline.dead_letters = []
        if self.convert:
            out = [self.engine.output_arrow(b, keep=(END_COL, ROW_COL)) if isinstance(b, Batch) else b
                   for b in out if (b.length if isinstance(b, Batch) else b.num_rows)]
            dead = [(reason, rows.to_arrow([c for c in rows.columns
                                            if not c.startswith("__") or c == ROW_COL]))
                    for reason, rows in dead]
        return out, pipeline.late_records, dead

    def _process_pieces(self, pieces: list, arrows: list) -> list:
        """A step's pieces (with their Arrow input where whole): each through the compiled
        GROUP BY step where it takes it, the rest through the general path, consecutive ones
        together, in order."""
        out = []
        rows = []  # consecutive pieces for the general path, in order
        for batch, arrow in zip(pieces, arrows):
            fast = None
            if self.fast is not None and arrow is not None:
                fast = self._compiled(batch, arrow)
            if fast is not None:  # one compiled call; its rows are Arrow already
                if rows:
                    out += self._process(rows)
                    rows = []
                self.records += fast[0]
                out += fast[1]
            elif batch is not None:
                rows.append(batch)
        if rows:
            out += self._process(rows)
        return out

    def _process(self, pieces: list) -> list:
        """The general path over this partition's rows of one or more pieces (batches, or
        routed batches it takes its rows from), as one batch: the pipeline's per-call cost is
        paid once per step, not once per piece, and routed pieces' rows are gathered straight
        into one batch (``rows_of_pieces``: each value written once)."""
        if all(isinstance(b, Routed) for b in pieces):
            batch = rows_of_pieces(pieces, self.index, self.own_strings)
        else:
            parts = [b.rows_for(self.index, self.own_strings) if isinstance(b, Routed) else b
                     for b in pieces]
            batch = parts[0] if len(parts) == 1 else concat_batches(parts)
        self.records += batch.length
        return self.pipeline.process(batch)

    def _process_runs(self, pieces: list, watermarks: list) -> list:
        """The pieces of a step routed by window (exec/router.py), each with the job's
        watermark after it: this partition's rows of each are a few runs, usually all of it or
        none. A run goes through the pipeline as it is, a slice of the piece, nothing copied
        (its text interned by the pipeline into this partition's dictionary, as at one
        partition); rows in several runs (out of order) are gathered first. Windows close after
        each piece, as at one partition, so the pipeline's state holds a batch's windows, not a
        step's."""
        out = []
        for piece, wm in zip(pieces, watermarks):
            if piece is None:
                continue
            runs = select_runs(piece.part, self.index, 1)
            if runs is not None and len(runs[0]) == 0:
                continue
            if runs is not None:
                lo, hi = int(runs[0][0]), int(runs[1][0])
                batch = piece.batch if hi - lo == piece.length else piece.batch.slice(lo, hi)
                batch = _own_strings(batch, self.own_strings)
            else:
                batch = rows_of_pieces([piece], self.index, self.own_strings)
            self.records += batch.length
            out += self.pipeline.process(batch)
            if wm is not None:
                out += self.pipeline.advance(wm)
        return out

    def _compiled(self, batch, arrow: pa.RecordBatch) -> Optional[tuple]:
        """This partition's rows of ``arrow`` through the compiled GROUP BY step, as (rows in,
        Arrow rows out), or None for the general path. Whole batches always qualify, and so do
        routed batches when the partition has its own dictionary (raw routing); on a shared
        dictionary only small ones, as the step interns its rows under the dictionary's lock (big
        batches would make partitions take turns). A routed batch's rows are taken out of the
        Arrow batch first."""
        if isinstance(batch, Routed):
            if batch.length > SMALL_ROUTED_BATCH and self.own_strings is None:
                return None
            rows = select_rows(batch.part, self.index)
            if len(rows) == 0:
                return 0, []
            # the rows read where they are: numbers gathered into the step's scratch, strings
            # interned by row, the output's keys made from their codes (nothing copied first)
            r = self.fast.push_rows(arrow, rows)
            return None if r is None else (len(rows), r.batches)
        r = self.fast.push(arrow)
        return None if r is None else (arrow.num_rows, r.batches)


def _own_strings(batch: Batch, strings: Optional[StringDict]) -> Batch:
    """``batch`` as it is, its text columns to be interned into ``strings`` (a partition's own
    dictionary) when first read."""
    if strings is None:
        return batch
    return Batch({name: Column(c.type, arrow=c.to_arrow(), strings=strings)
                  if c.type.kind == "STRING" and c.strings is not strings else c
                  for name, c in batch.columns.items()}, batch.length)


class HashExchange:
    """``job.partitions`` partitions on ``thread_count`` threads, made at the first batch (when
    the plan is bound) and made again if a later batch binds a new plan (a column typed NULL so
    far got its type, while no partition holds state: ``Engine._learned_types``)."""

    def __init__(self, job):  # the Job it serves, as a weak proxy (Job._exchange)
        self.job = job
        self.engine = job.engine
        self.n = job.partitions
        self.results: "queue.Queue" = queue.Queue()
        self.parts: list[_Partition] = []
        self.threads: list[Worker] = []  # partition i runs on thread i % len(threads)
        self.plan = None  # the plan the partitions run
        self.router: Optional[Router] = None
        self.merger: Optional[Pipeline] = None  # a two-phase plan's final aggregate
        self.raw = False  # routing on the key columns' own values (Router.raw)
        self.used: set = set()
        self.seq = 0  # steps sent
        self.next_seq = 0  # steps delivered
        self.pending: dict[int, dict] = {}  # finished partitions' output of undelivered steps
        self.arrivals: dict[int, tuple[float, Optional[int], bool]] = {}
        self.max_depth = [0] * self.n
        self.done = False
        self.inline = False  # a row-by-row plan: small batches run in this thread (INLINE_ROWS)
        self.held: list[_Held] = []  # batches routed but not yet sent (STEP_ROWS)
        self.held_rows = 0
        # a windowed plan's routed batches, whole (every column), until their step is merged:
        # a row a partition sets aside (late) comes back as its position (ROW_COL) and goes
        # to the dead letters whole, as at one partition (_whole_rows)
        self.routed_rows = 0  # rows routed so far: the next ROW_COL position
        self.wholes: list[tuple[int, Batch]] = []  # (position of its first row, batch)
        self.step_ends: dict[int, int] = {}  # step -> the positions below this are its or before
        self.held_end = 0
        self.by_position = False  # merge partitions' rows by ROW_COL (_start)
        # a plain GROUP BY emitting changes over few groups: the scan split takes the job over
        # at its first batch (partition_scan.py) and this exchange hands everything to it
        self.scan: Optional[ScanSplit] = None
        self.started = False

    # -- steps ------------------------------------------------------------------------------
    def send(self, rb: pa.RecordBatch, arrived: float) -> None:
        job, eng = self.job, self.engine
        if self.scan is not None:
            self.scan.send(rb, arrived)
            return
        if self.inline and eng.plan is self.plan is not None and rb.num_rows <= INLINE_ROWS:
            self._push_inline(rb, arrived)
            return
        t0 = time.perf_counter()
        if not self.started:  # the job's first batch: the scan split, or routing
            self.started = True
            rb = eng.bind_input(rb)
            self.scan = scan_split_for(job, rb)
            if self.scan is not None:
                self.scan.send(rb, arrived, bound=True)
                return
            batch = eng.prepare_bound(rb)
        else:
            batch = eng.prepare(rb)
        if self.plan is not None and eng.plan is not self.plan:
            self.drain(block=True)  # a new plan: new partitions
            self.close()
            self.plan = None
        if self.plan is None:
            self._start(batch)
        job.stats.records_read += rb.num_rows
        if self.inline and batch.length <= INLINE_ROWS:
            parts = None  # the whole batch, in this thread (no routing, no columns converted)
        else:
            batch = self._restrict(batch, seq_base=job.stats.records_read - rb.num_rows
                                   if self.merger else None)
            batch, parts = self._route(batch)
        job.stats.time_routing_s += time.perf_counter() - t0
        wm = eng.watermark.current if eng.plan.window is not None else None
        # the input as it arrived, for partitions that run the compiled step on it
        whole = rb if batch.length == rb.num_rows else None
        job.stats.batches += 1
        if parts is None:
            parts = [batch] + [None] * (self.n - 1)
        # only a partition given the whole batch (or its rows of a routed one) may run the
        # compiled step on the Arrow input: with ``single`` routing or slices, a partition given
        # nothing must process nothing (else a global changelog comes out N times)
        arrows = [whole if part is batch or isinstance(part, Routed) else None for part in parts]
        if batch.length <= (INLINE_ROWS if self.inline else INLINE_STEP_ROWS):
            self._release()  # the steps held so far go first
            self.arrivals[self.seq] = (arrived, wm, False)
            self.step_ends[self.seq] = self.routed_rows
            self._run_inline([_Step(self.seq, part, wm, arrow=arrow)
                              for part, arrow in zip(parts, arrows)])
            return
        self.held.append(_Held(parts, arrows, arrived, wm))
        self.held_rows += batch.length
        self.held_end = self.routed_rows  # (the held batches' rows: positions below this)
        if self.held_rows >= STEP_ROWS or time.perf_counter() - self.held[0].arrived >= STEP_HOLD_S:
            self._release()
        self.drain(block=False)

    def _push_inline(self, rb: pa.RecordBatch, arrived: float) -> None:
        """A row-by-row plan's batch the threads would not take (INLINE_ROWS): the plan keeps no
        state, so the job's own engine runs it, exactly as at one partition (its compiled paths
        included), once the steps before it are delivered."""
        job, eng = self.job, self.engine
        self.drain(block=True)
        t0 = time.perf_counter()
        r = eng.push(eng.source, rb)
        job.stats.time_processing_s += time.perf_counter() - t0
        job.stats.records_read += rb.num_rows
        job.stats.batches += 1
        self.parts[0].records += rb.num_rows
        job._deliver(r, arrived)
        if eng.plan.limit is not None and eng._emitted >= eng.plan.limit:
            self.done = True

    def _release(self) -> None:
        """The batches held since the last step, as one step to every partition (STEP_ROWS)."""
        held = self.held
        if not held:
            return
        self.held, self.held_rows = [], 0
        wm = held[-1].watermark  # the watermark never goes back: the last is the step's
        self.arrivals[self.seq] = (held[0].arrived, wm, False)
        self.step_ends[self.seq] = self.held_end
        steps = []
        marks = [h.watermark for h in held]
        for i in range(self.n):
            if len(held) == 1:
                steps.append(_Step(self.seq, held[0].parts[i], wm, arrow=held[0].arrows[i],
                                   watermarks=marks))
            else:
                steps.append(_Step(self.seq, [h.parts[i] for h in held], wm,
                                   arrow=[h.arrows[i] for h in held], watermarks=marks))
        self._send_steps(steps)
        self.seq += 1

    def _start(self, first: Batch) -> None:
        """Partitions for the engine's plan; ``first`` (the first batch, stamped) decides
        whether the router routes by window (exec/router.py)."""
        eng = self.engine
        plan = self.plan = eng.plan
        role = "partial" if plan.partitioning.strategy == "two_phase" else "full"
        self.merger = Pipeline(plan, eng.strings, role="final") if role == "partial" else None
        self.router = Router(plan, self.n, eng.pipeline.ev, first, run_rows=STEP_ROWS)
        self.job.stats.strategy = self.router.strategy
        # routed by window, one key's changes come from several partitions: they are merged
        # back into input order by each row's position (ROW_COL), which every routed row carries
        self.by_position = self.router.strategy == "window" and plan.emit == "CHANGES"
        self.raw = self.router.raw
        # raw routing leaves the strings to the partitions: each interns its own rows into its
        # own dictionary; otherwise they share the job's
        self.parts = [
            _Partition(i, Pipeline(plan, own_dictionary(eng.strings) if self.raw else eng.strings,
                                   role=role),
                       eng, convert=role == "full", own_strings=self.raw)
            for i in range(self.n)]
        for part in self.parts:
            part.pipeline.dead_letter_bad_rows = eng.dead_letter_bad_rows
            part.by_runs = self.router.strategy == "window"
            if self.by_position:
                part.pipeline.stateful.keep_positions = True
        t = thread_count(self.n)  # each thread starts with its first step (put_step)
        self.threads = [Worker(i, self.parts[i::t], self.results, self.job.queue_depth)
                        for i in range(t)]
        self.used = plan.input_columns_used
        self.inline = self.router.strategy == "round_robin"

    def _run_inline(self, steps: list) -> None:
        """One step (``steps``: each partition's) in this thread, on every partition's pipeline
        in turn, once every step before it is delivered (so the partitions' threads, if started,
        are idle): INLINE_ROWS, INLINE_STEP_ROWS."""
        self.drain(block=True)
        parts = {}
        for w, step in zip(self.parts, steps):
            if step.batch is None and step.watermark is None and not step.flush:
                parts[w.index] = ([], w.pipeline.late_records, [])  # nothing to do
                continue
            t0 = time.perf_counter()
            try:
                parts[w.index] = w._step(step)
            except VelostreamError:  # e.g. OutOfRangeError: the same type as from a thread
                raise
            except Exception as exc:  # reported as a partition's failure is (drain)
                raise JobError(f"partition {w.index} failed: {exc!r}\n{traceback.format_exc()}"
                               ) from exc
            w.busy_s += time.perf_counter() - t0
        step = steps[0]
        arrived, wm, flush = self.arrivals.pop(step.seq)
        self.seq += 1
        self._merge_step(parts, wm, flush, arrived)
        self.next_seq += 1
        if self.engine.plan.limit is not None and self.engine._emitted >= self.engine.plan.limit:
            self.done = True

    def drain(self, block: bool = False) -> None:
        """Deliver the rows of finished steps; ``block``: first send what is held, then wait
        for every step in flight."""
        if self.scan is not None:
            self.scan.drain(block)
            return
        if block:
            self._release()
        while self.next_seq < self.seq:
            try:
                item = self.results.get(block=block, timeout=0.05 if block else None)
            except queue.Empty:
                if any(w.started and not w.is_alive() for w in self.threads):
                    raise JobError("a partition thread exited unexpectedly")
                if not block:
                    return
                continue
            s, p, out, late, dead, err = item
            if err is not None:
                exc, tb = err
                if isinstance(exc, VelostreamError):  # e.g. OutOfRangeError: the same type
                    raise exc                         # as at one partition
                raise JobError(f"partition {p} failed: {exc!r}\n{tb}") from exc
            self.pending.setdefault(s, {})[p] = (out, late, dead)
            while self.next_seq in self.pending and len(self.pending[self.next_seq]) == self.n:
                parts = self.pending.pop(self.next_seq)
                arrived, wm, flush = self.arrivals.pop(self.next_seq)
                self._merge_step(parts, wm, flush, arrived)
                self.next_seq += 1
                if self.engine.plan.limit is not None and self.engine._emitted >= self.engine.plan.limit:
                    self.done = True

    def finish(self) -> None:
        if self.scan is not None:
            self.scan.finish()
            return
        stats = self.job.stats
        if self.plan is not None:
            self._release()
            wm = self.engine.watermark.current if self.engine.plan.window is not None else None
            self.arrivals[self.seq] = (time.perf_counter(), wm, True)
            if not any(w.started for w in self.threads):  # every step so far ran inline
                self._run_inline([_Step(self.seq, None, None, flush=True)] * self.n)
            else:
                self._send_steps([_Step(self.seq, None, None, flush=True)] * self.n)
                self.seq += 1
            self.drain(block=True)
            stats.partition_records = self.partition_records()
            stats.time_processing_s = sum(w.busy_s for w in self.parts)
        stats.max_queue_depths = self.max_depth

    def partition_records(self) -> list[int]:
        if self.scan is not None:
            return self.scan.partition_records()
        return [w.records for w in self.parts]

    def queue_depths(self) -> list[int]:
        """Steps waiting for each partition (its thread's queue)."""
        if self.scan is not None:
            return self.scan.queue_depths()
        return [self._thread_of(i).inbox.qsize() for i in range(len(self.parts))]

    def _thread_of(self, partition: int) -> Worker:
        return self.threads[partition % len(self.threads)]

    def close(self) -> None:
        if self.scan is not None:
            self.scan.close()
        stop_workers(self.threads)

    # -- pieces --------------------------------------------------------------------------------
    def _route(self, batch: Batch) -> tuple[Batch, list]:
        """The batch (less its bad records) and its split by partition. Routing evaluates the
        key expressions: rows for which one fails (a value out of range) are bad records here,
        as a partition's pipeline treats its own (Pipeline.dead_letter_bad_rows)."""
        eng = self.engine
        while batch.length:
            try:
                return batch, self.router.split(batch)
            except RowError as err:
                rows = err.rows
                if not eng.dead_letter_bad_rows or rows is None or len(rows) != batch.length:
                    raise
                self.job.stats.records_failed += int(rows.sum())
                bad = batch.filter(rows)
                eng._dead_letter(str(err), bad.to_arrow(
                    [c for c in bad.columns if not c.startswith("__")]))
                batch = batch.filter(~rows)
        return batch, [None] * self.n

    def _send_steps(self, steps: list) -> None:
        """One step of every partition (``steps[i]``: partition i's) to the partitions' threads:
        each thread gets its partitions' steps as one item."""
        for w in self.threads:
            put_step(w, [(part, steps[part.index]) for part in w.parts])
            for part in w.parts:
                self.max_depth[part.index] = max(self.max_depth[part.index], w.inbox.qsize())

    def _restrict(self, batch: Batch, seq_base: Optional[int]) -> Batch:
        """Only the columns the plan reads travel to the partitions."""
        cols = {k: c for k, c in batch.columns.items() if k in self.used or k.startswith("__")}
        # Columns to numpy here, once (numbers zero-copy), not lazily in N threads at once. With
        # raw routing the strings stay Arrow (each partition interns its own rows); a batch routed
        # on codes has its strings interned here (routing needs the codes anyway).
        strings_too = self.job.stats.strategy == "hash" and self.n > 1 and not self.raw
        for c in cols.values():
            if c.type.kind != "STRING" or strings_too:
                c.values
        if seq_base is not None:  # two-phase FIRST/LAST need the job-wide arrival order
            cols[SEQ_COL] = Column(_INT, np.arange(seq_base, seq_base + batch.length, dtype=np.int64))
        if self.plan.window is not None and (self.by_position or may_be_late(batch)):
            # set aside whole (_whole_rows); merged by position (by_position)
            base = self.routed_rows
            cols[ROW_COL] = Column(_INT, np.arange(base, base + batch.length, dtype=np.int64))
            self.wholes.append((base, batch))
            self.routed_rows += batch.length
        return Batch(cols, batch.length)

    def _whole_rows(self, rows: pa.RecordBatch) -> list[pa.RecordBatch]:
        """Rows a partition set aside (only the columns the plan reads travel there) as they
        were routed, every column, by their positions (ROW_COL)."""
        at = rows.column(ROW_COL).to_numpy()
        firsts = np.array([first for first, _ in self.wholes], dtype=np.int64)
        which = np.searchsorted(firsts, at, side="right") - 1
        out = []
        for w in np.unique(which):
            first, whole = self.wholes[w]
            out.append(self.engine.rows_as_input(whole.take(at[which == w] - first)))
        return out

    def _merge_step(self, parts: dict, wm: Optional[int], flush: bool, arrived: float) -> None:
        """One step's rows from every partition, in partition order (each key lives in one
        partition, so its rows keep their order), to the writer."""
        job, eng, merger = self.job, self.engine, self.merger
        outs: list[pa.RecordBatch] = []
        late = 0
        for p in range(self.n):
            out, p_late, dead = parts[p]
            late += p_late
            for reason, rows in dead:
                if isinstance(rows, Batch):  # two-phase partitions share the engine's strings
                    rows = rows.to_arrow([c for c in rows.columns
                                          if not c.startswith("__") or c == ROW_COL])
                if reason != "late":  # a bad record (late records are counted apart)
                    job.stats.records_failed += rows.num_rows
                for whole in (self._whole_rows(rows) if ROW_COL in rows.schema.names
                              else [rows]):
                    eng._dead_letter(reason, whole)
            if merger is not None:
                for partial in out:
                    merger.absorb(partial)
            else:
                outs += out
        job.stats.records_late = late
        # (steps merge in order: this one is next_seq) its routed batches are no longer needed
        end = self.step_ends.pop(self.next_seq, None)
        if end is not None:
            while self.wholes and self.wholes[0][0] + self.wholes[0][1].length <= end:
                self.wholes.pop(0)
        if merger is not None:
            merged: list[Batch] = []
            if wm is not None:
                merged += merger.advance(wm)
            if flush:
                merged += merger.flush()
            outs = [eng.output_arrow(b, keep=(END_COL,)) for b in merged if b.length]
        for col in (END_COL, ROW_COL):
            if any(col in rb.schema.names for rb in outs):
                outs = _merge_by(outs, col)
                break
        job._deliver(eng.finish_arrow(outs), arrived)


# _merge_by hands out at most this many slices; more (a flush closing many windows at once, each
# with rows in several partitions) are merged into one batch (merge_order and the gathers of
# _core.gather)
MAX_MERGE_SLICES = 64


def _merge_by(outs: list[pa.RecordBatch], col: str) -> list[pa.RecordBatch]:
    """Every partition's rows in the order of ``col``, stable (partition order within one
    value), without ``col``: END_COL, the window end of EMIT FINAL rows (windows close in
    order); or ROW_COL, the input position of EMIT CHANGES rows of a job routing by window (each
    key's changes in input order). Each partition's rows are already in that order, so the
    merged order is runs of them (``merge_order``, one compiled pass over the ``col`` values):
    handed out as slices, nothing copied, when there are at most MAX_MERGE_SLICES (one run per
    partition and step, or a few runs of whole windows when routing by window), else each
    column written once into its merged place."""
    outs = [rb for rb in outs if rb.num_rows]
    if not outs:
        return []
    if any(col not in rb.schema.names for rb in outs):
        raise JobError(f"internal: a partition's rows lack {col}, which orders them")
    keys = [rb.column(col).to_numpy() for rb in outs]
    names = [n for n in outs[0].schema.names if n not in (END_COL, ROW_COL)]
    outs = [rb.select(names) for rb in outs]
    if all(keys[i][-1] <= keys[i + 1][0] for i in range(len(outs) - 1)):
        return outs
    which, rows = merge_order(keys)
    cuts = np.flatnonzero(which[1:] != which[:-1]) + 1  # where the next run starts
    if len(cuts) < MAX_MERGE_SLICES:  # (a run is one partition's consecutive rows)
        starts = [0, *cuts.tolist()]
        stops = [*cuts.tolist(), len(which)]
        return [outs[which[a]].slice(rows[a], b - a) for a, b in zip(starts, stops)]
    schema = outs[0].schema
    return [pa.RecordBatch.from_arrays(
        [_interleave([rb.column(i) for rb in outs], which, rows) for i in range(len(names))],
        schema=schema)]


def _interleave(arrays: list[pa.Array], which: np.ndarray, rows: np.ndarray) -> pa.Array:
    """Row ``rows[i]`` of ``arrays[which[i]]`` for each i, as one array: text and fixed-width
    values (numbers, timestamps, decimals) by the compiled gathers, anything else by Arrow."""
    t = arrays[0].type
    if pa.types.is_string(t):
        return take_strings_interleaved(arrays, which, rows)
    width = t.bit_width if pa.types.is_primitive(t) or pa.types.is_decimal(t) else 0
    if width < 8 or width % 8 or any(not a.type.equals(t) for a in arrays):
        whole = pa.concat_arrays(arrays)
        starts = np.cumsum([0] + [len(a) for a in arrays[:-1]]).astype(np.int64)
        return whole.take(pa.array(starts[which] + rows))
    size = width // 8
    values = take_interleaved([np.frombuffer(a.buffers()[1], dtype=np.uint8)[
        a.offset * size:(a.offset + len(a)) * size].view(f"V{size}") if size not in (1, 2, 4, 8)
        else np.frombuffer(a.buffers()[1], dtype=f"u{size}", count=a.offset + len(a))[a.offset:]
        for a in arrays], which, rows)
    validity, nulls = None, 0
    if any(a.null_count for a in arrays):
        valid = take_interleaved([a.is_valid().to_numpy(zero_copy_only=False).view(np.uint8)
                                  for a in arrays], which, rows).view(bool)
        nulls = int(len(valid) - np.count_nonzero(valid))
        validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(t, len(values), [validity, pa.py_buffer(values)],
                                 null_count=nulls)
