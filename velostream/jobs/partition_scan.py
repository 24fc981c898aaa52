"""The scan split: V2's exchange for a plain GROUP BY that emits changes (docs/ARCHITECTURE.md,
"The scan split").

Such a query emits one row per input row: the row's group with every aggregate over the group's
rows so far. Routing by key (``HashExchange``) makes each partition gather its rows out of every
batch, intern them one by one and rebuild the output's key columns, which costs more than the
second core gives back when the groups are few (docs/PERFORMANCE.md, "Session 13"). The scan
split keeps each batch whole and splits the *sequence* instead, as a parallel prefix sum does::

    reader -> Engine.bind_input (once per batch)
      -> a step's batches cut into N contiguous pieces, piece i to partition i's thread
      -> partition i, first pass (GroupStep.aggregate): its piece's groups found in its own
         state (empty at each piece; its own dictionary), every aggregate's state updated,
         nothing emitted; each row's slot and the key columns (zero-copy) kept; then its
         groups' keys in the job's dictionary's codes and a copy of their state, and its own
         state emptied for its next piece
      -> the job's thread, piece by piece in input order: the piece's groups found in the
         job's one state (the engine's own pipeline), a copy of their state *before* the piece
         taken (its prefix), the piece's state folded in
      -> partition i, second pass (GroupStep.emit_rows): every row's aggregates emitted by
         updating the prefix row by row, exactly as one partition's push updates its state
      -> the job's thread: the step's pieces in order -> writer

The threads do the per-row work (the first pass costs one aggregate update per row more than
one partition does); the job's thread works per group and per piece. The rows are what one
partition emits, in input order, the same NULLs and errors: exactly, but for a DOUBLE SUM or AVG,
whose prefix adds compensated sums of whole pieces, equal to one partition's up to the last bits.
A piece the compiled step does not take (a batch of other Arrow types) runs in the job's thread
on the job's engine, as at one partition.

Chosen at the job's first batch when the plan takes the compiled step (``exec/push_fast.py``),
is routed by key, and the first batch holds at most one group per ``SCAN_ROWS_PER_GROUP`` rows:
the job's thread works per group and per piece, which many groups would make the larger part.
"""
from __future__ import annotations

import collections
import queue
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyarrow as pa

from .._core.group_table import GroupTable
from ..batch import Column
from ..errors import JobError, VelostreamError
from ..exec.aggregators import make_aggregator
from ..exec.keys import KeyCodec
from ..exec.partitioned import thread_count
from ..exec.push_fast import step_over
from ..exec.router import own_dictionary
from ..result import Result
from .partition_worker import Worker, put_step, stop_workers

# False: V2 jobs route by key where they would scan (tests of the hash exchange set it)
ENABLED = True
# The first batch decides: the scan split when it holds at most one group per this many rows
SCAN_ROWS_PER_GROUP = 64
# A batch of at most this many rows runs in the job's thread on the job's engine, once the steps
# before it are delivered: two round trips to the threads cost more than such a batch's rows
INLINE_ROWS = 1 << 14
# A step: batches read back to back, held until this many rows (or STEP_HOLD_S after the first
# arrived; when the reader has nothing, the job drains, which sends what is held)
STEP_ROWS = 1 << 18
STEP_HOLD_S = 0.01


def scan_split_for(job, first: pa.RecordBatch) -> Optional["ScanSplit"]:
    """The scan split for this job (its plan bound; ``first``: its first batch, bound), or
    None: route by key."""
    eng = job.engine
    plan = eng.plan
    n = job.partitions
    if (not ENABLED or n < 2 or thread_count(n) < 2 or not plan.may_scan
            or eng._fast is None or eng._fast_pipeline is not eng.pipeline or eng._cast_out
            or first.num_rows < SCAN_ROWS_PER_GROUP or not eng._fast.accepts(first.schema)):
        return None
    names = [k.name for k in plan.keys]  # (present and typed as the step reads: accepts)
    groups = pa.Table.from_batches([first.select(names)]).group_by(names).aggregate([]).num_rows
    if groups * SCAN_ROWS_PER_GROUP > first.num_rows:
        return None
    return ScanSplit(job)


# The first pass costs about 0.8 of a push per row and the second 0.65 (S2, docs/PERFORMANCE.md
# "Session 13"): a piece of the partitions' threads costs about 1.45 times a push of as many
# rows, where piece 0 is one push in the job's thread. That is the first step's estimate; later
# steps use the time the threads took per row (``ScanSplit._measured``), as a core shared with
# other work (a VM's) runs a thread slower than its twin.
TWO_PASS_COST = 1.45


def _shares(t: int, cost: float) -> list:
    """Each piece's share of a step's rows, ``t`` pieces: piece 0 (one pass in the job's
    thread) takes ``cost`` times the share of each of the others (a row there costs ``cost``
    times one of piece 0), so that every thread finishes its pieces together."""
    other = 1.0 / (cost + t - 1)
    return [cost * other] + [other] * (t - 1)


def _copies(kernels: list, slots: np.ndarray) -> list:
    """A copy of the state of ``slots`` per kernel, in slots 0..len(slots)-1 of new kernels of
    the same kind (the compiled step's aggregates: numbers only)."""
    at = np.arange(len(slots), dtype=np.int32)
    out = []
    for k in kernels:
        copy = type(k)(k.dtype)
        copy.ensure_capacity(len(slots))
        copy.merge(at, k, slots)
        out.append(copy)
    return out


@dataclass
class _Piece:
    """One partition's piece of one step, through both passes."""
    seq: int
    batches: list  # the piece's record batches (slices of the step's), in input order
    rows: Optional[list] = None  # GroupRows per batch (None: the job's thread runs the piece)
    words: Optional[np.ndarray] = None  # the piece's groups' key words, in the job's codes
    live: Optional[np.ndarray] = None  # their slots in the partition's state
    states: Optional[list] = None  # their state over the piece, per aggregate (slots 0..g-1)
    slot_cap: int = 0
    prefix: Optional[list] = None  # their state before the piece, per aggregate (0..g-1)
    done: bool = False  # ``out`` holds the piece's final rows
    out: list = field(default_factory=list)
    busy_s: float = 0.0  # the partition's time on it, both passes


class _ScanPartition:
    """One partition of the scan split: the compiled GROUP BY step over its own state (empty
    at each piece) and its own dictionary. A ``Worker`` thread runs it."""

    def __init__(self, index: int, engine):
        plan = engine.plan
        self.index = index
        self.engine = engine
        self.strings = own_dictionary(engine.strings)
        self.codec = KeyCodec([k.type for k in plan.keys])
        self.to_job = np.arange(len(self.strings), dtype=np.int32)  # own code -> the job's
        self.table = GroupTable(self.codec.n_words)
        self.kernels = [make_aggregator(spec, self.strings) for spec in plan.aggs]
        self.step = step_over(plan, self.table, self.kernels, self.codec, self.strings,
                              collections.Counter(), engine.internal_schema)
        self.records = 0
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self.failed = False

    def _step(self, piece: _Piece) -> tuple:
        """One pass over a piece, as ``Worker`` runs a partition's step: (the piece, late
        records, dead letters)."""
        t0 = time.perf_counter()
        if piece.prefix is not None:
            self._emit(piece)
        else:
            self._aggregate(piece)
        piece.busy_s += time.perf_counter() - t0
        return piece, 0, []

    def _aggregate(self, piece: _Piece) -> None:
        """The first pass: the piece's groups and their state over its rows."""
        self.records += sum(b.num_rows for b in piece.batches)
        rows = []
        for rb in piece.batches:
            r = self.step.aggregate(rb)
            if r is None:  # a batch the compiled step does not take: the job's thread runs it
                self._empty(self.table.live_slots())
                return
            rows.append(r)
        live = self.table.live_slots()
        piece.rows, piece.states = rows, _copies(self.kernels, live)
        piece.words, piece.live = self._job_words(live), live
        piece.slot_cap = self.table.slot_capacity
        self._empty(live)

    def _emit(self, piece: _Piece) -> None:
        """The second pass: each row's aggregates, updating the prefix row by row. (A BIGINT
        SUM leaving int64 raises OutOfRangeError here, as it does at one partition.)"""
        slot_map = np.full(max(piece.slot_cap, 1), -1, dtype=np.int32)
        slot_map[piece.live] = np.arange(len(piece.live), dtype=np.int32)
        for rows, rb in zip(piece.rows, piece.batches):
            self.step.emit_rows(rows, rb, slot_map, piece.prefix)
        piece.out, piece.done = piece.rows, True
        piece.rows = piece.states = piece.prefix = None

    def _empty(self, live: np.ndarray) -> None:
        for k in self.kernels:
            k.reset(live)
        self.table.clear()

    def _job_words(self, live: np.ndarray) -> np.ndarray:
        """The key words of these groups as the job's state encodes them: text by the job's
        dictionary's codes (this partition's own codes mapped; strings it met first added
        there)."""
        if len(live) == 0:
            return np.empty((0, self.codec.n_words), dtype=np.int64)
        cols = self.codec.decode(self.table.keys_of(live), self.strings)
        n, known = len(self.strings), len(self.to_job)
        if known < n:
            codes, _ = self.engine.strings.encode_arrow(
                self.strings.arrow_values().slice(known, n - known))
            self.to_job = np.concatenate([self.to_job, codes.astype(np.int32)])
        # (no string at all: every text key is NULL, its code 0 unused)
        cols = [Column(c.type, self.to_job[c.values] if len(self.to_job) else c.values, c.valid,
                       strings=self.engine.strings) if c.type.kind == "STRING" else c
                for c in cols]
        return np.stack(self.codec.encode(cols, len(live)), axis=1)


class ScanSplit:
    """The job's exchange while it scans (module docstring). ``HashExchange`` hands the job
    over to it at the first batch. Piece 0 of each step is the job's own thread's: it pushes it
    through the job's engine, on the job's state, while the partitions' threads take the other
    pieces (module docstring); so the job's thread takes the larger share (``_shares``)."""

    def __init__(self, job):
        self.job = job
        eng = self.engine = job.engine
        self.plan = eng.plan
        self.n = job.partitions
        agg = eng.pipeline.stateful  # the job's one state
        self.table, self.kernels = agg.table, agg.kernels
        self.t = thread_count(self.n)  # pieces per step: the job's thread and t - 1 threads
        self.parts = [_ScanPartition(i, eng) for i in range(1, self.t)]
        self.results: "queue.Queue" = queue.Queue()
        self.threads = [Worker(i, [part], self.results, job.queue_depth)
                        for i, part in enumerate(self.parts)]
        self.records0 = 0  # records of piece 0 (and of batches run inline)
        self.busy0_s = 0.0
        self.seq = 0  # steps sent
        self.next_fold = 0  # the next step whose pieces to fold into the job's state
        self.next_seq = 0  # the next step to deliver
        self.sent: dict[int, int] = {}  # step -> its pieces sent to the partitions' threads
        self.first: dict[int, dict] = {}  # step -> partition -> its piece after the first pass
        self.final: dict[int, dict] = {}  # step -> partition -> its piece with its final rows
        self.arrivals: dict[int, float] = {}
        self.held: list[pa.RecordBatch] = []
        self.held_rows = 0
        self.held_since = 0.0
        self.max_depth = [0] * self.n
        self.done = False
        self.cost = TWO_PASS_COST  # a row on the partitions' threads / one in the job's (_shares)
        job.stats.strategy = "scan"

    # -- steps ------------------------------------------------------------------------------
    def send(self, rb: pa.RecordBatch, arrived: float, bound: bool = False) -> None:
        job, eng = self.job, self.engine
        if not bound:
            rb = eng.bind_input(rb)
            if eng.plan is not self.plan:  # (the engine binds again only before any input)
                raise JobError("internal: the plan changed under the scan split")
        job.stats.records_read += rb.num_rows
        job.stats.batches += 1
        if rb.num_rows <= INLINE_ROWS:
            self.drain(block=True)  # every step before it delivered: the state is current
            self._deliver_now([rb], arrived)
            return
        # counted as taken now, as the job's engine counts what it is pushed: a later batch
        # then binds against a plan that has input (Engine._learned_types), as at one partition
        eng.stats["records_in"] += rb.num_rows
        eng.stats["batches"] += 1
        if not self.held:
            self.held_since = arrived
        self.held.append(rb)
        self.held_rows += rb.num_rows
        if self.held_rows >= STEP_ROWS or time.perf_counter() - self.held_since >= STEP_HOLD_S:
            self._release()
        self.drain(block=False)

    def _deliver_now(self, batches: list, arrived: float) -> None:
        t0 = time.perf_counter()
        out = self._run_here(batches, counted=False)
        self.records0 += sum(b.num_rows for b in batches)
        self.busy0_s += time.perf_counter() - t0
        self.job._deliver(Result(self.engine._fast.out_schema, out), arrived)

    def _release(self) -> None:
        """The batches held, as one step: ``t`` contiguous pieces (``_shares``); pieces 1.. to
        the partitions' threads (their first pass), piece 0 through the job's engine here, once
        the steps before are folded into its state."""
        held, total = self.held, self.held_rows
        if not held:
            return
        self.held, self.held_rows = [], 0
        shares = _shares(self.t, self.cost)
        bounds = np.concatenate([[0], np.cumsum(shares) * total]).round().astype(np.int64)
        bounds[-1] = total
        pieces = [_Piece(self.seq, []) for _ in range(self.t)]
        at = 0  # the step's row where ``rb`` starts
        for rb in held:
            for i in range(self.t):
                lo, hi = max(bounds[i], at), min(bounds[i + 1], at + rb.num_rows)
                if hi > lo:
                    pieces[i].batches.append(
                        rb if hi - lo == rb.num_rows else rb.slice(lo - at, hi - lo))
            at += rb.num_rows
        seq = self.seq
        self.arrivals[seq] = self.held_since
        self.seq += 1
        self.sent[seq] = self._send(pieces[1:])
        self._fold_through(seq - 1, block=True)  # the job's state as it is before this step
        t0 = time.perf_counter()
        zero = pieces[0]
        zero.out, zero.done = self._run_here(zero.batches), True
        zero.busy_s = time.perf_counter() - t0
        self.records0 += sum(b.num_rows for b in zero.batches)
        self.busy0_s += zero.busy_s
        self.final.setdefault(seq, {})[0] = zero

    def _send(self, pieces: list) -> int:
        """Pieces of partitions 1.. (None: none for it) to their threads; how many went (a
        piece without rows stays here: a step of fewer rows than its pieces)."""
        sent = 0
        for part, piece in zip(self.parts, pieces):
            if piece is None or not piece.batches:
                continue
            w = self.threads[part.index - 1]
            put_step(w, [(part, piece)])
            self.max_depth[part.index] = max(self.max_depth[part.index], w.inbox.qsize())
            sent += 1
        return sent

    def _collect(self, block: bool) -> bool:
        """One result from the partitions' threads into ``first`` or ``final``; False when
        none came (not ``block``)."""
        while True:
            try:
                item = self.results.get(block=block, timeout=0.05 if block else None)
                break
            except queue.Empty:
                if any(w.started and not w.is_alive() for w in self.threads):
                    raise JobError("a partition thread exited unexpectedly")
                if not block:
                    return False
        s, p, piece, _late, _dead, err = item
        if err is not None:
            exc, tb = err
            if isinstance(exc, VelostreamError):  # e.g. OutOfRangeError: as at one partition
                raise exc
            raise JobError(f"partition {p} failed: {exc!r}\n{tb}") from exc
        (self.final if piece.done else self.first).setdefault(s, {})[p] = piece
        return True

    def _fold_through(self, seq: int, block: bool) -> None:
        """Fold steps up to ``seq`` into the job's state, in step order: each piece (after
        piece 0, which the job's engine ran) gets its prefix, the state before it, and its own
        state is folded in; then it goes back for its second pass. ``block``: wait for their
        first passes."""
        while self.next_fold <= seq:
            k = self.next_fold
            while len(self.first.get(k, ())) < self.sent[k]:
                if not self._collect(block):
                    return
            pieces = self.first.pop(k, {})
            back: list = [None] * len(self.parts)
            for i in sorted(pieces):
                piece = pieces[i]
                if piece.rows is None:  # the job's thread runs it, on the job's engine
                    piece.out, piece.done = self._run_here(piece.batches), True
                    self.final.setdefault(k, {})[i] = piece
                else:
                    piece.prefix = self._fold(piece)
                    back[i - 1] = piece
            self._send(back)
            self.next_fold += 1

    def drain(self, block: bool = False) -> None:
        """Deliver the steps that are finished; ``block``: first send what is held, then wait
        for every step in flight."""
        if block:
            self._release()
        while self.next_seq < self.seq:
            self._fold_through(self.seq - 1, block)
            self._deliver()
            if self.next_seq >= self.seq or not self._collect(block):
                break
        self._deliver()

    def _fold(self, piece: _Piece) -> list:
        """The piece's groups in the job's state: a copy of their state before the piece
        (slots 0..g-1), and the piece's own state folded into it."""
        g = len(piece.live)
        slots = np.empty(g, dtype=np.int32)
        if g:
            self.table.find_or_insert(
                [np.ascontiguousarray(piece.words[:, w]) for w in range(piece.words.shape[1])],
                slots)
        for k in self.kernels:
            k.ensure_capacity(self.table.slot_capacity)
        prefix = _copies(self.kernels, slots)
        at = np.arange(g, dtype=np.int32)
        for k, state in zip(self.kernels, piece.states):
            k.merge(slots, state, at)
        stats = self.engine.stats
        stats["records_out"] += sum(b.num_rows for b in piece.batches)
        return prefix

    def _run_here(self, batches: list, counted: bool = True) -> list:
        """Batches through the job's engine, as at one partition (``eng.push_bound``); their
        rows. ``counted``: held batches, already counted as taken (``send``)."""
        eng = self.engine
        out = []
        for rb in batches:
            if counted:  # (the engine counts them again as it takes them)
                eng.stats["records_in"] -= rb.num_rows
                eng.stats["batches"] -= 1
            out += eng.push_bound(rb)._parts
        return out

    def _deliver(self) -> None:
        """Steps whose pieces all have their final rows, in step order, to the writer."""
        while self.next_seq in self.sent and \
                len(self.final.get(self.next_seq, ())) == 1 + self.sent[self.next_seq]:
            pieces = self.final.pop(self.next_seq)
            del self.sent[self.next_seq]
            self._measured(pieces)
            out = [rows for i in sorted(pieces) for rows in pieces[i].out]
            self.job._deliver(Result(self.engine._fast.out_schema, out),
                              self.arrivals.pop(self.next_seq))
            self.next_seq += 1

    def _measured(self, pieces: dict) -> None:
        """The cost of a row on the partitions' threads over one in the job's, as this step's
        pieces took them, into the running estimate (``_shares``)."""
        zero = pieces[0]
        rows0 = sum(b.num_rows for b in zero.batches)
        others = [p for i, p in pieces.items() if i and p.busy_s > 0]
        rows = sum(b.num_rows for p in others for b in p.batches)
        if rows0 < 1000 or rows < 1000 or zero.busy_s <= 0:
            return  # (too few rows to time)
        sample = (sum(p.busy_s for p in others) / rows) / (zero.busy_s / rows0)
        self.cost = min(8.0, max(0.5, 0.5 * self.cost + 0.5 * sample))

    def finish(self) -> None:
        job, eng = self.job, self.engine
        self.drain(block=True)
        job._deliver(eng.flush(), time.perf_counter())
        job.stats.partition_records = self.partition_records()
        job.stats.time_processing_s += self.busy0_s + sum(p.busy_s for p in self.parts)
        job.stats.max_queue_depths = self.max_depth

    def partition_records(self) -> list[int]:
        """Records each partition took: partition 0 is the job's own thread; with fewer cores
        than partitions, the partitions past the threads take none."""
        records = [self.records0] + [p.records for p in self.parts]
        return records + [0] * (self.n - len(records))

    def queue_depths(self) -> list[int]:
        depths = [0] + [w.inbox.qsize() for w in self.threads]
        return depths + [0] * (self.n - len(depths))

    def close(self) -> None:
        stop_workers(self.threads)
