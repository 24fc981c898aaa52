"""Fault-tolerant processing of a partitioned source (Kafka): one task per source partition.

Kafka spreads a topic's partitions over the processes of a consumer group and moves them when a
process joins, leaves or dies. To hand a partition over safely, everything that partition's
records built must travel with it, so state is scoped to the source partition (as in Kafka
Streams): each assigned partition gets a *task*, an engine of its own (plan, string dictionary,
watermark, windows, groups). For that to give the same answer as one engine over the whole topic,
every group must live in one partition: the topic must be keyed by the GROUP BY (or PARTITION BY)
columns. The runner checks the message keys and refuses to go on when they are not.

At-least-once (the default) rests on one rule: **a source offset is committed only when nothing
before it is still needed**, i.e. every output derived from the records before it was flushed by
the sink, and every piece of state those records built can be rebuilt:

- stateless queries: the offset after the last record processed;
- TUMBLING / SLIDING windows up to ``checkpoint.replay.max.ms`` (window size plus allowed
  lateness, default one hour): the smallest offset of a record whose windows are still open, so
  a successor *replays* those records and rebuilds the open windows. Its cost: replaying up to one
  window (plus the allowed lateness) of input per partition after a failure, and duplicate
  EMIT CHANGES rows for it. A small checkpoint (offset and event-time maximum) tells replayed
  records of windows already emitted (skipped) from those of open windows (aggregated again);
- state replay cannot rebuild cheaply (non-windowed GROUP BY, longer windows, SESSION windows,
  ROWS buffers): a snapshot of the task's engine (``Engine.snapshot()``) written to the
  checkpoint directory at every commit, together with the offset it reflects.

Checkpoints are written before offsets are committed and are authoritative on restore (see
``checkpoints.py``). Tasks run on a pool of ``partitions`` threads; the kernels release the GIL.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import pyarrow as pa

from ..engine import Engine, schema_of
from ..errors import JobError, UnsupportedError
from ..exec.expressions import BCol
from ..exec.columns import INT64_MIN
from ..exec.operators.window_assign import assigner_for
from ..result import Result
from .checkpoints import Checkpoint, CheckpointStore

log = logging.getLogger("velostream.jobs")

KEY_CHECK_ROWS = 1000  # rows of each partition's first batch compared with their message key


class SourcePartitionTask:
    """The state one source partition's records built, and the offsets that state needs."""

    def __init__(self, partition: int, sql: str, key_columns: Optional[list[str]],
                 checkpoints: bool = True, replay_max_ms: int = 3_600_000):
        self.partition = partition
        self.checkpoints = checkpoints
        self.replay_max_ms = replay_max_ms
        self.engine = Engine(sql, env={})
        self.kind: Optional[str] = None            # stateless | windows | snapshot (after bind)
        self.next_offset: Optional[int] = None     # after the last record pushed
        self.open_low: dict[int, int] = {}         # windows: last window end -> smallest offset
        self.key_columns = key_columns
        self.key_checked = False
        # replay after a restore: records before ``replay_until`` whose windows had all closed
        # when the checkpoint was taken were emitted already, and are skipped
        self.replay_until: Optional[int] = None
        self.replay_max_time: Optional[int] = None
        self.pending_state: Optional[bytes] = None
        self.restored: Optional[Checkpoint] = None

    # -- binding and checks --------------------------------------------------------------------
    def _bind(self, rb: Optional[pa.RecordBatch]) -> None:
        """Bind the plan: from the restored snapshot, else from the first batch's schema."""
        eng = self.engine
        if self.pending_state is not None:
            eng.restore(self.pending_state)
            self.pending_state = None
        if eng.plan is None:
            if rb is None:
                return
            eng._bind({eng.source: schema_of(rb)})
        plan = eng.plan
        if plan.shape == "project":
            self.kind = "stateless"
        elif (plan.shape == "aggregate" and plan.window is not None and plan.window.kind != "SESSION"
              and (plan.window.size_ms + plan.lateness_ms <= self.replay_max_ms
                   or not self.checkpoints)):
            self.kind = "windows"  # short windows: rebuilt by replaying their records
        else:  # long windows too: replaying hours of input would be slower than a snapshot
            self.kind = "snapshot"
        if self.kind == "snapshot" and not self.checkpoints:
            raise UnsupportedError("this query's state (non-windowed GROUP BY, SESSION windows or "
                                   "ROWS buffers) cannot be rebuilt by replay: give a "
                                   "'checkpoint.dir' for its snapshots")
        if plan.limit is not None or plan.offset or plan.distinct:
            raise UnsupportedError("LIMIT and DISTINCT need the whole input in one place; with "
                                   "partition-scoped state they would apply per partition "
                                   "(set 'fault.tolerance' = 'none' to run them in one process)")
        if self.kind != "stateless" and self.key_columns is None:
            self.key_columns = _state_keys(plan)
        if self.replay_max_time is not None and plan.window is not None:
            eng.watermark.max_time = max(eng.watermark.max_time, self.replay_max_time)

    def _check_keys(self, rb: pa.RecordBatch) -> None:
        """The topic must be keyed by the state's key columns (pipe-joined)."""
        self.key_checked = True
        if self.kind == "stateless":
            return
        cols = self.key_columns
        n = min(rb.num_rows, KEY_CHECK_ROWS)
        keys = rb.column("_KEY").slice(0, n).to_pylist()
        values = [rb.column(c).slice(0, n).to_pylist() for c in cols]
        for i in range(n):
            want = "|".join("" if v[i] is None else str(v[i]) for v in values)
            if keys[i] != want:
                raise JobError(
                    f"the input is not keyed by {' | '.join(cols)}: partition {self.partition}, "
                    f"offset {rb.column('_OFFSET')[i].as_py()} has key {keys[i]!r} where "
                    f"{'|'.join(cols)} is {want!r}. State is kept per source partition, so every "
                    f"group must live in one partition: produce with key = {'|'.join(cols)} "
                    f"(or declare the key with '<source>.key.columns'), or set "
                    f"'fault.tolerance' = 'none' to run in one process without state recovery")

    # -- processing --------------------------------------------------------------------------------
    def push(self, rb: pa.RecordBatch) -> Result:
        if self.kind is None:
            self._bind(rb)
        if not self.key_checked:
            self._check_keys(rb)
        offsets = rb.column("_OFFSET").to_numpy()
        if self.replay_until is not None:
            rb, offsets = self._skip_emitted(rb, offsets)
        if len(offsets):
            last = int(offsets.max()) + 1
            self.next_offset = last if self.next_offset is None else max(self.next_offset, last)
        if rb.num_rows == 0:
            return Result(self.engine.out_schema)
        out = self.engine.push(self.engine.source, rb)
        if self.kind == "windows":
            self._track_windows(offsets)
        return out

    def _last_window_end(self, t: np.ndarray) -> np.ndarray:
        return assigner_for(self.engine.plan.window).last_end(t)

    def _skip_emitted(self, rb: pa.RecordBatch, offsets: np.ndarray):
        replaying = offsets < self.replay_until
        if not replaying.any():
            self.replay_until = None
            return rb, offsets
        if self.kind != "windows":  # snapshots restore exactly: the reader resumed after them
            return rb, offsets
        from ..batch import Batch
        eng = self.engine
        batch = Batch.from_arrow(rb, eng.strings)
        tcol = eng.pipeline.ev.column(eng.plan.window.time, batch)
        t = np.asarray(tcol.values, dtype=np.int64)
        wm = self.replay_max_time - eng.plan.lateness_ms
        emitted = replaying & (self._last_window_end(t) <= wm)
        if tcol.valid is not None:
            emitted &= tcol.valid
        keep = ~emitted
        return rb.filter(pa.array(keep)), offsets[keep]

    def _track_windows(self, offsets: np.ndarray) -> None:
        """Remember, per last window end, the smallest offset of a record still in an open window."""
        had_time, t, wm = self.engine.last_stamp
        if had_time is not None:
            offsets = offsets[had_time]
        ends = self._last_window_end(t)
        live = ends > wm  # rows whose windows had all closed were late: not in any state
        if live.any():
            ends, offs = ends[live], offsets[live]
            uniq, inv = np.unique(ends, return_inverse=True)
            low = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(low, inv, offs)
            for e, o in zip(uniq.tolist(), low.tolist()):
                prev = self.open_low.get(e)
                self.open_low[e] = o if prev is None else min(prev, o)
        current = self.engine.watermark.current
        for e in [e for e in self.open_low if e <= current]:
            del self.open_low[e]

    def flush(self) -> Result:
        """End of input: every window closes (restored state included)."""
        if self.kind is None and self.pending_state is not None:
            self._bind(None)
        if self.kind is None:
            return Result(pa.schema([]))
        out = self.engine.flush()
        self.open_low.clear()
        return out

    # -- offsets and checkpoints -------------------------------------------------------------------
    def resume_offset(self) -> Optional[int]:
        """Where a successor must start reading this partition."""
        if self.next_offset is None:
            return None
        if self.kind == "windows" and self.open_low:
            return min(min(self.open_low.values()), self.next_offset)
        return self.next_offset

    def checkpoint(self) -> Optional[Checkpoint]:
        if self.kind is None:  # restored but no record since: the checkpoint still stands
            return self.restored
        offset = self.resume_offset()
        if offset is None:
            return None
        if self.kind == "snapshot":
            return Checkpoint(offset, self.next_offset, None, self.engine.snapshot())
        max_time = None
        if self.kind == "windows":
            max_time = self.engine.watermark.max_time
            if max_time == INT64_MIN:
                max_time = None
        return Checkpoint(offset, self.next_offset, max_time, None)

    def restore(self, ckpt: Checkpoint) -> None:
        self.restored = ckpt
        self.next_offset = ckpt.next_offset
        if ckpt.state is not None:
            self.pending_state = ckpt.state
        elif ckpt.max_time is not None:
            self.replay_until = ckpt.next_offset
            self.replay_max_time = ckpt.max_time


def _state_keys(plan) -> list[str]:
    """The input columns that key the state: GROUP BY columns, or PARTITION BY of ROWS windows."""
    keys = plan.keys if plan.shape == "aggregate" else [k for o in plan.overs for k in o.partition_by]
    names = [k.name for k in keys if isinstance(k, BCol)]
    if not names:
        raise UnsupportedError(
            "with partition-scoped state (fault tolerance on a Kafka source) a stateful query "
            "needs GROUP BY (or PARTITION BY) columns that key the topic; a global aggregate "
            "needs all input in one place: set 'fault.tolerance' = 'none' to run it in one "
            "process without state recovery")
    return list(dict.fromkeys(names))


class SourcePartitionExchange:
    """The exchange of a job in task mode (exchange.py): splits each batch by source partition,
    runs the partitions' tasks on a thread pool, and commits/checkpoints per source partition;
    reacts to partition assignment and revocation."""

    done = False  # task mode takes no LIMIT

    def __init__(self, job, store: Optional[CheckpointStore], reset: bool,
                 replay_max_ms: int = 3_600_000):
        self.job = job
        self.replay_max_ms = replay_max_ms
        self.reader = job._in  # calls guarded like the job's own (job is the Job it serves)
        self.store = store
        self.reset = reset
        self.tasks: dict[int, SourcePartitionTask] = {}
        self.key_columns = job.reader.key_columns  # a PartitionedSource (Job picked tasks)
        self.pool = ThreadPoolExecutor(max_workers=job.partitions,
                                       thread_name_prefix="velostream-task") if job.partitions > 1 else None
        self.revoked = 0
        self.restored = 0
        self.late_of_revoked = 0
        if reset and store is not None:
            store.clear()
        self.reader.set_rebalance_listener(self.on_assign, self.on_revoke)

    # -- rebalance ---------------------------------------------------------------------------------
    def on_assign(self, partitions: list[int]) -> dict[int, int]:
        """New partitions: restore their checkpoints; returns {partition: offset to start at}."""
        start = {}
        for k in partitions:
            task = SourcePartitionTask(k, self.job.engine.sql, self.key_columns,
                                       checkpoints=self.store is not None,
                                       replay_max_ms=self.replay_max_ms)
            # rows whose evaluation fails: bad records as in the job (see Job.__init__)
            task.engine.dead_letter_bad_rows = self.job.engine.dead_letter_bad_rows
            ckpt = self.store.load(k) if self.store is not None else None
            if ckpt is not None:
                task.restore(ckpt)
                start[k] = ckpt.offset
                self.restored += 1
                log.info("partition %d: restored checkpoint, resuming at offset %d", k, ckpt.offset)
            elif self.reset:
                start[k] = -2  # OFFSET_BEGINNING: --reset ignores the committed offsets
            self.tasks[k] = task
        return start

    def on_revoke(self, partitions: list[int]) -> None:
        """Partitions leaving: flush the sink, checkpoint and commit them, drop their state."""
        mine = [k for k in partitions if k in self.tasks]
        if not mine:
            return
        self.commit(only=mine)
        for k in mine:
            self.late_of_revoked += self.tasks.pop(k).engine.stats["late_records"]
        self.revoked += len(mine)

    # -- the exchange ------------------------------------------------------------------------------
    def send(self, rb: pa.RecordBatch, arrived: float) -> None:
        self._process(rb, arrived)  # synchronous: nothing is left in flight

    def drain(self, block: bool = False) -> None:
        pass

    def finish(self) -> None:
        """End of input: every window closes. A stopped job keeps its state for a restart
        (checkpointed or replayed from the committed offsets)."""
        if not (self.job._stop.is_set() and self.reader.has_more()):
            for task in list(self.tasks.values()):
                self._deliver(task, task.flush(), time.perf_counter())

    def partition_records(self) -> list[int]:
        return [self.job.stats.records_read]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def _process(self, rb: pa.RecordBatch, arrived: float) -> None:
        job = self.job
        if job.engine.plan is None:  # the job-level engine only provides the output schema
            job.engine._bind({job.engine.source: schema_of(rb)})
        parts = rb.column("_PARTITION").to_numpy()
        pieces = _split_by_partition(rb, parts)
        work = []
        for k, piece in pieces:
            task = self.tasks.get(k)
            if task is None:  # revoked meanwhile: its new owner reads it from the committed offset
                continue
            work.append((task, piece))
        t0 = time.perf_counter()
        if self.pool is not None and len(work) > 1:
            results = list(self.pool.map(lambda tp: tp[0].push(tp[1]), work))
        else:
            results = [task.push(piece) for task, piece in work]
        job.stats.time_processing_s += time.perf_counter() - t0
        job.stats.records_read += rb.num_rows
        job.stats.batches += 1
        for (task, _), r in zip(work, results):
            self._deliver(task, r, arrived)
        job.stats.records_late = self.late_of_revoked + sum(
            t.engine.stats["late_records"] for t in self.tasks.values())

    def _deliver(self, task: SourcePartitionTask, r: Result, arrived: float) -> None:
        job = self.job
        eng = task.engine
        while eng.dead_letters:
            item = eng.dead_letters.pop(0)
            if item[0] != "late":  # a bad record (late records are counted apart)
                job.stats.records_failed += item[1].num_rows
            if job.dead_letter is not None:
                job._send_dead([], item)
            else:
                job.dead_letters.append(item)
        job._deliver(r, arrived)

    # -- commits -------------------------------------------------------------------------------------
    def commit(self, only: Optional[list[int]] = None) -> None:
        """Sink first (flush + commit), then checkpoints, then the source offsets."""
        job = self.job
        job._flush_sink()
        job._commit_sink()
        if job.dead_letter is not None:  # a DeadLetterOutput or a Writer: both flush
            job._dead.flush()
        offsets = {}
        for k, task in self.tasks.items():
            if only is not None and k not in only:
                continue
            ckpt = task.checkpoint()
            if ckpt is None:
                continue
            if self.store is not None and task.kind != "stateless":
                self.store.save(k, ckpt)
            offsets[k] = ckpt.offset
        if offsets:
            self.reader.commit_offsets(offsets)
        job.stats.commits += 1
        job._last_commit = time.monotonic()


def _split_by_partition(rb: pa.RecordBatch, parts: np.ndarray) -> list[tuple[int, pa.RecordBatch]]:
    """One slice per source partition, rows in their original order."""
    if len(parts) == 0:
        return []
    first = parts[0]
    if (parts == first).all():
        return [(int(first), rb)]
    order = np.argsort(parts, kind="stable")
    sorted_rb = rb.take(pa.array(order))
    ks, starts = np.unique(parts[order], return_index=True)
    ends = list(starts[1:]) + [len(parts)]
    return [(int(k), sorted_rb.slice(int(s), int(e - s))) for k, s, e in zip(ks, starts, ends)]
