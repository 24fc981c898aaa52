"""Jobs: a query from readers to writers (docs/ARCHITECTURE.md, "Jobs and exchanges").

``Job`` owns the connectors and runs one loop for every job: read a batch (the one binding step,
bad input records routed by the failure strategy), send it through the job's exchange, deliver
the rows that come back to the sink, and commit (sink, dead-letter output, then the source's
positions) when due. The exchange decides where the operators run (``exchange.py``): one engine
in this thread, N partitions on threads behind the hash router (``partition_threads.py``), or one
engine per source partition (``tasks.py``).
"""
from __future__ import annotations

import collections
import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np
import pyarrow as pa

from ..binding import SchemaMismatch, conform
from ..engine import Engine, _pick_source
from ..exec.graph import GraphEngine, needs_graph
from ..sql.parser import parse_script
from ..errors import JobError, SqlError, VelostreamError
from ..io.base import Reject
from ..result import Result, query_stats
from .exchange import Exchange, InlineExchange
from .failure import FailBatch, RetryWithBackoff, SendToDLQ, parse_strategy
from .partition_threads import HashExchange
from .protocols import (CoalescingReader, DeadLetterOutput, MemoryReader, MemoryWriter, MergedReader,
                        implements,
                        PartitionedSource, PartitionedWatermark, Reader, ReportsLag,
                        ReportsRejects, ResendingWriter, Writer)

log = logging.getLogger("velostream.jobs")

# A step gathers what a coalescing reader has waiting up to this many rows (see _next_input).
COALESCE_ROWS = 8192


@dataclass
class JobStats:
    """What a job did. ``to_dict()`` for logs and metrics."""
    records_read: int = 0
    records_emitted: int = 0        # rows the sink accepted and kept (not refused, not rolled back)
    records_failed: int = 0
    records_late: int = 0
    records_rejected: int = 0        # bad input records (also counted in records_failed)
    batches: int = 0
    commits: int = 0
    partitions: int = 1
    processor: str = "v2"
    strategy: str = ""
    time_reading_s: float = 0.0
    time_routing_s: float = 0.0
    time_processing_s: float = 0.0   # summed over partition threads
    time_writing_s: float = 0.0
    wall_s: float = 0.0
    partition_records: list = field(default_factory=list)
    max_queue_depths: list = field(default_factory=list)
    latency_ms: dict = field(default_factory=dict)  # p50 / p95 / p99 arrival -> emission

    @property
    def throughput(self) -> float:
        """Records read per wall-clock second."""
        return self.records_read / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["throughput"] = self.throughput
        return d


class _Guarded:
    """A reader, writer or dead-letter output as the job calls it: the one place every call the
    job makes on them goes through. An exception that is not a VelostreamError becomes a
    ``JobError`` naming the object, the method and the cause (chained with ``from``), so a
    failing connector stops the job with a clear error rather than a bare one from deep inside;
    a VelostreamError (a ``ConnectError``, Kafka's ``DeliveryError``) keeps its own type, which
    the failure strategies and the command's exit codes go by. Attributes that are not methods
    (``name``, ``coalesce``, ``topic``...) are the object's own."""

    def __init__(self, target: Any, who: str):
        self._target = target
        self._who = who

    def __getattr__(self, method: str):
        fn = getattr(self._target, method)  # AttributeError: the object has no such hook
        if not callable(fn):
            return fn
        who = self._who

        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except VelostreamError:
                raise
            except Exception as exc:
                raise JobError(f"{who} failed in {method}(): {exc!r}") from exc
        self.__dict__[method] = call  # looked up once: read/write_batch run once per batch
        return call


def _cause(exc: BaseException) -> BaseException:
    """The connector's own exception behind a ``_Guarded`` JobError (to chain it directly)."""
    return exc.__cause__ if isinstance(exc, JobError) and exc.__cause__ is not None else exc


class Job:
    """A query over sources into sinks.

    >>> import velostream as vs
    >>> job = vs.Job("SELECT k, COUNT(*) AS n FROM s GROUP BY k EMIT FINAL",
    ...              sources={"s": {"k": ["a", "b", "a"]}}, partitions=2)
    >>> stats = job.run()
    >>> sorted(job.result().to_pylist(), key=lambda r: r["k"])
    [{'k': 'a', 'n': 2}, {'k': 'b', 'n': 1}]

    ``sources`` maps the FROM name to a ``Reader`` or any in-memory input; ``sink`` is a ``Writer``
    (default: an in-memory writer, read back with ``result()``). ``processor="v1"`` runs one engine
    in the job's thread; ``"v2"`` (default) runs ``partitions`` pipelines on native threads
    behind the hash router (one partition: in the job's thread too). See exchange.py.
    ``failure_strategy``: LogAndContinue (default), SendToDLQ (needs ``dead_letter``), FailBatch or
    RetryWithBackoff, as objects or names. Bad input records (a reader's ``rejects()``) fail the
    job under FailBatch and go to the dead-letter output otherwise.

    ``dead_letter``: a Writer (gets the failed rows as record batches) or a dead-letter output
    with ``write(rejects)`` (``velostream.io.files.DeadLetterFile``, ``...kafka.KafkaDeadLetter``),
    which also receives late records and every rejected input record as they happen. Without
    one, they are kept in ``Job.dead_letters``.

    ``commit_interval_s``: how often a long-running job flushes the sink, then commits the sink
    and the reader (the source's offsets), so a restart resumes there. None: only at the end.
    """

    def __init__(self, sql: str, sources: Mapping[str, Any], sink: Optional[Writer] = None, *,
                 partitions: int = 1, processor: str = "v2", failure_strategy: Any = None,
                 dead_letter: Any = None, queue_depth: int = 4,
                 env: Optional[Mapping[str, str]] = None,
                 commit_interval_s: Optional[float] = None,
                 fault_tolerance: str = "at_least_once", checkpoint_dir: Optional[str] = None,
                 reset: bool = False, replay_max_ms: int = 3_600_000,
                 statements: Optional[list] = None):
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        if processor not in ("v1", "v2"):
            raise ValueError("processor is 'v1' or 'v2'")
        if statements is None:  # (vs.query gives the text parsed: a megabyte is parsed once)
            statements = parse_script(sql, env)
        # several statements, CTEs, ... (docs/SQL.md §8): a graph, stepped by the job's thread;
        # its keyed nodes run on ``partitions`` threads each (exec/partitioned.py)
        pipeline = needs_graph(statements)
        self.engine = (GraphEngine(statements, statements[0].sql, partitions=partitions)
                       if pipeline
                       else Engine(sql, env=env, statement=statements[0]))
        self.reader = self._reader_for(sources)
        self.engine.watermark_by = (self.reader.watermark_by
                                    if implements(self.reader, PartitionedWatermark) else None)
        self.sink = sink if sink is not None else MemoryWriter()
        if fault_tolerance not in ("at_least_once", "none"):
            raise ValueError("fault_tolerance is 'at_least_once' or 'none'")
        # a source whose partitions move between processes (Kafka) gets partition-scoped state
        self.fault_tolerance = fault_tolerance
        self._pipeline_ckpt = None
        if pipeline:
            readers = (dict(self.reader.readers) if isinstance(self.reader, MergedReader)
                       else {self.engine.source: self.reader})
            kafka = any(implements(r, PartitionedSource) for r in readers.values())
            if fault_tolerance != "none" and kafka:
                if checkpoint_dir is None:
                    # a restart would resume the offsets without the graph's open windows
                    raise ValueError("a pipeline of several statements on a Kafka source needs "
                                     "a checkpoint_dir for its state ('checkpoint.dir'), or "
                                     "'fault.tolerance' = 'none' (a restart then starts its "
                                     "windows afresh from the committed offsets)")
                from .pipeline_checkpoint import PipelineCheckpoint
                self._pipeline_ckpt = PipelineCheckpoint(checkpoint_dir, self.engine.sql, readers)
            processor = "v1"
        elif fault_tolerance != "none" and implements(self.reader, PartitionedSource):
            processor = "tasks"
        # (a pipeline's graph: stepped inline, its keyed nodes on ``partitions`` threads)
        self.partitions = partitions if processor != "v1" or pipeline else 1
        self.processor = processor
        self.checkpoint_dir = checkpoint_dir
        self.reset = reset
        self.replay_max_ms = replay_max_ms
        self.runner = None
        self.failure = parse_strategy(failure_strategy)
        # a row whose evaluation fails (a value out of range) is a bad record, set aside by the
        # pipeline as a bad input record is, unless the job is to fail on it (FailBatch)
        self.engine.dead_letter_bad_rows = not isinstance(self.failure, FailBatch)
        self.dead_letter = dead_letter
        # the job calls its connectors only through these (see _Guarded)
        self._in = _Guarded(self.reader, f"reader '{self.engine.source}'")
        self._out = _Guarded(self.sink, f"writer '{getattr(self.sink, 'name', None) or type(self.sink).__name__}'")
        self._dead = _Guarded(dead_letter, "dead-letter output") if dead_letter is not None else None
        if isinstance(self.failure, SendToDLQ) and dead_letter is None:
            raise ValueError("SendToDLQ needs a dead_letter writer")
        self.queue_depth = queue_depth
        self.stats = JobStats(partitions=self.partitions, processor=processor)
        self.dead_letters: list[tuple[str, pa.RecordBatch]] = []
        # without a dead-letter output, failed rows are kept in dead_letters for the caller to
        # read (vs.Job, vs.query); a job nobody reads them from (velostream run) sets this False:
        # each kind is logged once and counted, and none is kept (a long run would keep every
        # late row it ever saw)
        self.keep_dead_letters = True
        self._logged_kinds: set = set()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self.exchange: Optional[Exchange] = None  # made when the job runs (_exchange)
        # vs.query's in-memory input: a batch that does not fit the schema raises SchemaMismatch
        # (as one engine does) rather than being a bad input record of a connector
        self.strict_input = False
        # gathering what a never-waiting reader has waiting into one step (see _next_input)
        self._coalesce = implements(self.reader, CoalescingReader) and bool(self.reader.coalesce)
        self._held: Optional[pa.RecordBatch] = None
        self._held_at = 0.0
        self.read_at = 0.0
        # a rolling sample, so a job that runs for days keeps constant memory
        self._latencies: "collections.deque[tuple[float, int]]" = collections.deque(maxlen=4096)
        # called with (seconds, rows) for every delivery to the sink (velostream.metrics'
        # latency histogram): every one is seen, whatever the rolling sample keeps
        self.latency_listeners: list = []
        self.commit_interval_s = commit_interval_s
        self._last_commit = time.monotonic()
        self._emitted_committed = 0  # records_emitted at the sink's last commit (see _commit_sink)
        self._reader_hooks: Optional[tuple] = None  # (read, rejects, watermark_partitions)

    def _reader_for(self, sources: Mapping[str, Any]) -> Reader:
        names = getattr(self.engine, "sources", None)
        if isinstance(names, list) and len(names) > 1:
            # a pipeline reading several sources: one reader over all (MergedReader)
            given = {k.lower(): v for k, v in sources.items()}
            merged = next((v for v in sources.values() if isinstance(v, MergedReader)), None)
            if merged is not None:
                return merged
            readers = {}
            for name in names:
                v = given.get(name.lower())
                if v is None:
                    raise SqlError(f"no input for source '{name}' (given: "
                                   f"{', '.join(sources) or 'none'})", self.engine.sql)
                readers[name] = (v if implements(v, Reader) and not isinstance(v, (list, dict))
                                 else MemoryReader(v))
            return MergedReader(readers, self.engine.flow.table_sources())
        # a FROM name with no input is the SqlError vs.query raises at 1 partition too
        v = _pick_source(self.engine, sources)
        return v if implements(v, Reader) and not isinstance(v, (list, dict)) else MemoryReader(v)

    # -- lifecycle ------------------------------------------------------------------------
    def run(self) -> JobStats:
        """Run a bounded input to its end (end-of-input flush included); returns the stats."""
        self._run()
        return self.stats

    def start(self) -> "Job":
        """Run in a background thread until the input ends or ``stop()``."""
        self._thread = threading.Thread(target=self._run_captured, name="velostream-job", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask a running job to stop promptly: no further input is read, what was read is
        processed and the sink committed. Windows are flushed (end of input), except on a
        partitioned source with fault tolerance (Kafka), where open state is checkpointed or left
        to replay instead, and a restart resumes it."""
        self._stop.set()

    def join(self, timeout: Optional[float] = None) -> JobStats:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("job did not finish in time")
        if self._error is not None:
            raise self._error
        return self.stats

    def result(self) -> Result:
        """What the default in-memory sink received."""
        if not isinstance(self.sink, MemoryWriter):
            raise TypeError("result() is for the default in-memory sink")
        schema = self.engine.out_schema if self.engine.plan is not None else pa.schema([])
        # rows written before a NULL-typed column got its type join the final types
        return Result(schema, [conform(b, schema) for b in self.sink.batches])

    # -- live views, for metrics and progress ---------------------------------------------------
    def lag(self) -> Optional[int]:
        """Messages the source has not read yet (Kafka), or None when the source cannot tell."""
        if not implements(self.reader, ReportsLag):
            return None
        try:
            return self._in.lag()
        except Exception:  # a metrics scrape must never disturb the job
            return None

    def partition_records(self) -> list[int]:
        """Records each partition processed so far (one partition: every record read)."""
        if self.exchange is None:
            return [self.stats.records_read]
        return self.exchange.partition_records()

    def queue_depths(self) -> list[int]:
        """Steps waiting in each partition thread's queue (none without partition threads)."""
        return self.exchange.queue_depths() if isinstance(self.exchange, HashExchange) else []

    def latency_quantiles(self) -> dict[str, float]:
        """p50/p95/p99 seconds from a batch's arrival to the write of the rows it caused, over
        the recent sample (weighted by rows)."""
        sample = list(self._latencies)
        if not sample:
            return {}
        lat = np.array([l for l, _ in sample])
        w = np.array([c for _, c in sample], dtype=np.float64)
        order = np.argsort(lat)
        cum = np.cumsum(w[order]) / w.sum()
        at = lambda q: float(lat[order][min(np.searchsorted(cum, q / 100), len(lat) - 1)])  # noqa: E731
        return {f"0.{q}": at(q) for q in (50, 95, 99)}

    def _run_captured(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self._error = exc

    # -- the loop ----------------------------------------------------------------------------
    def _exchange(self) -> Exchange:
        """Where this job's operators run (exchange.py)."""
        if self.processor == "tasks":
            from .checkpoints import CheckpointStore
            from .tasks import SourcePartitionExchange
            store = None
            if self.checkpoint_dir is not None:
                store = CheckpointStore(self.checkpoint_dir, self._in.group_id, self._in.topic)
            # (held strongly: it may still commit through the job after the job's run returned)
            self.runner = SourcePartitionExchange(self, store, self.reset, self.replay_max_ms)
            return self.runner
        # The other exchanges hold the job weakly: the job holds its exchange, and a cycle would
        # keep the job's output (an in-memory sink: a whole run's rows) alive until the cyclic
        # collector ran, each run's output memory then coming back fresh from the kernel (page
        # faults: ~2x the CPU of a 2 M-record S2 run, every other run).
        job = weakref.proxy(self)
        if self.processor == "v1" or self.partitions == 1:
            # one partition: the hash exchange would be an identity, and a thread hop per step
            return InlineExchange(job)
        return HashExchange(job)

    def _run_loop(self, exchange: Exchange) -> None:
        """Every job's loop: read, send through the exchange, deliver, commit when due."""
        while not exchange.done:
            if self._coalesce:
                # a coalescing reader: rather than queue more small steps behind the ones in
                # flight, let records gather at the reader and take them in the next step
                exchange.drain(block=True)
            rb = self._next_input(idle=exchange.drain)
            if rb is None:
                break
            exchange.send(rb, self.read_at)
            if self._commit_due():
                exchange.drain(block=True)  # every step read so far has reached the sink
                self._commit()
        exchange.finish()

    def _run(self) -> None:
        t_start = time.perf_counter()
        try:
            self.exchange = self._exchange()
            self._run_loop(self.exchange)
            self._commit()
        except BaseException as exc:
            try:
                self._out.rollback()
                # the sink dropped what it took since its last commit: those rows are not emitted
                self.stats.records_emitted = self._emitted_committed
            except Exception as again:  # noqa: BLE001 - the job's own error is the one to raise
                log.error("sink rollback failed after the job failed: %s", again)
            finally:
                self._close_exchange()
            if isinstance(exc, Exception) and not isinstance(exc, VelostreamError):
                # whatever failed, the caller gets a JobError naming it, never a bare exception
                raise JobError(f"job failed: {exc!r}") from exc
            raise
        finally:
            self.stats.wall_s = time.perf_counter() - t_start
            self._final_stats()
        self._close_exchange()

    def _close_exchange(self) -> None:
        if self.exchange is not None:
            self.exchange.close()

    def _next_input(self, idle=None) -> Optional[pa.RecordBatch]:
        """The next batch, or None at the end of a bounded input or on stop(). ``idle(block=True)``
        is called while there is nothing to read: the exchange waits for the steps in flight and
        delivers their rows at once, rather than when the next batch arrives.

        A reader that returns nothing without waiting (memory, files) is polled again after a
        pause that starts at 50 µs and doubles up to 1 ms: a record that arrives while the job
        is idle waits tens of µs, and a job idle for long costs about a thousand polls a second.

        A reader that declares ``coalesce = True`` (its ``read()`` never waits) has what is
        already waiting gathered into one step, up to ``COALESCE_ROWS`` rows: when records arrive
        faster than the job steps through them one small batch at a time, the job takes them in
        larger steps instead of falling behind (each step has a fixed cost: the engine call, the
        sink, V2's thread hand-offs). ``self.read_at`` is when the step's first batch was read.
        """
        held = self._held
        if held is not None:  # read ahead by the last step and not part of it
            self._held = None
            self.read_at = self._held_at
            return held
        if self._reader_hooks is None:  # looked up once: this runs once per batch
            # the job-wide watermark over source partitions; tasks keep a watermark each instead
            self._reader_hooks = (
                self._in.read,
                self._in.rejects if implements(self.reader, ReportsRejects) else None,
                self._in.watermark_partitions
                if implements(self.reader, PartitionedWatermark) and self.runner is None else None)
        pause = 0.00005
        while not self._stop.is_set():
            rb, t0 = self._read_once()
            if rb is not None:  # even with 0 rows: its schema binds the plan
                self.read_at = t0
                if self._coalesce and 0 < rb.num_rows < COALESCE_ROWS:
                    rb = self._gather_waiting(rb)
                return rb
            if not self._in.has_more():
                return None
            if idle is not None:
                idle(block=True)
            if self._commit_due():
                self._commit()
            time.sleep(pause)
            pause = min(2 * pause, 0.001)
        return None

    def _read_once(self) -> tuple[Optional[pa.RecordBatch], float]:
        """One ``read()`` with what follows every read (reading time, the source's partitions,
        its bad records); returns the batch or None, and when the read started."""
        read, take_rejects, partitions = self._reader_hooks
        t0 = time.perf_counter()
        rb = read()
        if rb is not None and isinstance(self.reader, MergedReader):
            self.engine.current_source = self.reader.current  # the pipeline's source it is from
        self.stats.time_reading_s += time.perf_counter() - t0
        if partitions is not None:  # assigned and idle source partitions (Kafka)
            self.engine.source_partitions(*partitions())
        if take_rejects is not None:
            rejects = take_rejects()
            if rejects:
                self._rejected(rejects)
        if rb is not None:
            # the one binding step (velostream.binding): a batch that does not fit the source's
            # schema is a bad input, its rows counted and routed by the failure strategy
            try:
                rb = self.engine.bind_input(rb)
            except SchemaMismatch as exc:
                if self.strict_input:  # vs.query: the same error as at one partition
                    raise
                if rb.num_rows:
                    self._rejected(_rows_as_rejects(self.engine.source, str(exc), rb))
                rb = None
        return rb, t0

    def _gather_waiting(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        """``rb`` and the batches of the same schema the reader has waiting, as one batch of at
        most about ``COALESCE_ROWS`` rows; a batch that does not fit is held for the next step."""
        parts = [rb]
        rows = rb.num_rows
        while rows < COALESCE_ROWS and not self._stop.is_set():
            nxt, t0 = self._read_once()
            if nxt is None:
                break
            if nxt.num_rows == 0 or not nxt.schema.equals(rb.schema):
                self._held, self._held_at = nxt, t0
                break
            parts.append(nxt)
            rows += nxt.num_rows
        if len(parts) == 1:
            return rb
        if hasattr(pa, "concat_batches"):  # pyarrow >= 19
            return pa.concat_batches(parts)
        return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]

    # -- failed records and commits ----------------------------------------------------------
    def _rejected(self, rejects: list[Reject]) -> None:
        """Bad input records: counted, then failed (FailBatch) or dead-lettered."""
        self.stats.records_rejected += len(rejects)
        self.stats.records_failed += len(rejects)
        first = rejects[0]
        if isinstance(self.failure, FailBatch):
            raise JobError(f"bad input record at {first.position}: {first.error} "
                           f"(failure strategy FailBatch; {len(rejects)} bad record(s) in this read)")
        where = ("sent to the dead-letter output" if self.dead_letter is not None else
                 "kept in job.dead_letters" if self.keep_dead_letters else
                 "set aside (give 'dead.letter.path' to keep them)")
        log.warning("%d bad input record(s) %s; first at %s: %s",
                    len(rejects), where, first.position, first.error)
        self._send_dead(rejects, None)

    def _send_dead(self, rejects: list[Reject], rows: Optional[tuple[str, pa.RecordBatch]]) -> None:
        """To the dead-letter output if there is one, else kept in ``dead_letters``."""
        dl = self.dead_letter
        if implements(dl, DeadLetterOutput):
            if rows is not None:
                rejects = _rows_as_rejects(self.engine.source, *rows)
            self._dead.write(rejects)
        elif dl is not None:  # a Writer: record batches
            self._dead.write_batch(rows[1] if rows is not None else Reject.to_arrow(rejects))
            self._dead.flush()
            self._dead.commit()
        elif self.keep_dead_letters:
            self.dead_letters.append(rows if rows is not None else
                                     ("bad input record", Reject.to_arrow(rejects)))
        elif rows is not None:  # (bad input records were logged where they were read)
            self._log_set_aside(*rows)

    def _log_set_aside(self, reason: str, rows: pa.RecordBatch) -> None:
        """Rows set aside with no dead-letter output to take them and nobody to read them: the
        first of each kind is logged (the summary counts them all), none is kept."""
        kind = reason.split(":")[0]
        if kind in self._logged_kinds:
            return
        self._logged_kinds.add(kind)
        first = rows.slice(0, 1).to_pylist()[0] if rows.num_rows else {}
        log.warning("%d row(s) set aside (%s), the first %s; give 'dead.letter.path' to keep "
                    "them (further ones of this kind are only counted)", rows.num_rows, reason,
                    first)

    def _drain_engine_dead_letters(self) -> None:
        """Late records and rows without event time, as the engine finds them."""
        eng = self.engine
        if not eng.dead_letters or (self.dead_letter is None and self.keep_dead_letters):
            return
        while eng.dead_letters:
            self._send_dead([], eng.dead_letters.pop(0))

    def _commit_due(self) -> bool:
        # not while a batch is held (read, not yet processed): the reader's position includes it
        return (self.commit_interval_s is not None and self._held is None
                and time.monotonic() - self._last_commit >= self.commit_interval_s)

    def _commit(self) -> None:
        """Everything emitted so far is written: flush and commit the sink and the dead-letter
        output, then commit the reader (a Kafka source commits its offsets)."""
        if self.runner is not None:  # partition-scoped state commits per source partition
            self.runner.commit()
            return
        self._drain_engine_dead_letters()
        self._flush_sink()
        self._commit_sink()
        if implements(self.dead_letter, DeadLetterOutput):
            self._dead.flush()
        if self._pipeline_ckpt is not None:  # the state and the positions it has read to
            self._pipeline_ckpt.save(self.engine)
        self._in.commit()
        self.stats.commits += 1
        self._last_commit = time.monotonic()

    def _commit_sink(self) -> None:
        self._out.commit()
        self._emitted_committed = self.stats.records_emitted

    def _flush_sink(self) -> None:
        try:
            self._timed_write(self._out.flush)
        except Exception as exc:  # noqa: BLE001 - the failure strategy decides
            self._flush_failed(exc)

    def _flush_failed(self, exc: Exception) -> None:
        """The sink could not deliver what it buffered (e.g. Kafka delivery errors): resend it
        (RetryWithBackoff), fail the job (FailBatch, or retries exhausted), or count it and send
        the undelivered messages to the dead-letter output (LogAndContinue, SendToDLQ).

        A failure that does not say how many rows were not delivered (anything but a delivery
        report such as Kafka's ``DeliveryError``: a full disk, a closed file) fails the job under
        every strategy: rows it had accepted may be lost, and counting them as written (or as
        failed) would be a guess."""
        if isinstance(self.failure, RetryWithBackoff) and implements(self.sink, ResendingWriter):
            for delay in self.failure.delays():
                log.warning("sink flush failed (%s); resending in %.3fs", exc, delay)
                time.sleep(delay)
                self._out.resend(getattr(_cause(exc), "messages", []))
                try:
                    self._timed_write(self._out.flush)
                    return
                except Exception as again:  # noqa: BLE001
                    exc = again
        if isinstance(self.failure, (FailBatch, RetryWithBackoff)):
            raise JobError(f"sink flush failed ({self.failure.name}): {exc}") from _cause(exc)
        report = _cause(exc)  # the sink's own exception says what was not delivered
        if getattr(report, "failed", None) is None:
            raise JobError(f"sink flush failed: {exc}") from report
        failed = int(report.failed)
        # those rows were counted when write_batch accepted them; they did not reach the sink
        self.stats.records_emitted -= failed
        self.stats.records_failed += failed
        log.error("sink flush failed, %d row(s) not delivered, sent to the dead-letter output: %s",
                  failed, exc)
        kept = getattr(report, "messages", [])
        if kept:
            where = f"sink {getattr(self.sink, 'topic', '')} (undelivered)"
            self._send_dead([Reject(self.engine.source, where, err, value or b"")
                             for _key, value, err in kept], None)

    def _deliver(self, r: Result, arrived: float) -> None:
        if self.engine.dead_letters:
            self._drain_engine_dead_letters()
        n = 0
        for rb in r.batches:
            if self._write(rb):
                n += rb.num_rows
        if n:
            seconds = time.perf_counter() - arrived
            self._latencies.append((seconds, n))
            for listener in self.latency_listeners:
                listener(seconds, n)
            self.stats.records_emitted += n

    def _timed_write(self, fn, *args) -> None:
        t0 = time.perf_counter()
        try:
            fn(*args)
        finally:
            self.stats.time_writing_s += time.perf_counter() - t0

    def _write(self, rb: pa.RecordBatch) -> bool:
        """``rb`` to the sink; True when the sink accepted it (then, and only then, its rows
        count in ``records_emitted``: see ``_deliver``)."""
        t0 = time.perf_counter()
        try:
            self._out.write_batch(rb)
        except Exception as exc:  # noqa: BLE001 - the failure strategy decides
            self.stats.time_writing_s += time.perf_counter() - t0
            return self._write_failed(rb, exc)
        self.stats.time_writing_s += time.perf_counter() - t0
        return True

    def _write_failed(self, rb: pa.RecordBatch, exc: Exception) -> bool:
        """The sink refused ``rb``: retry it (RetryWithBackoff; True once a retry is accepted),
        fail the job (FailBatch, or retries exhausted), or count its rows as failed and send them
        to the dead-letter output (False)."""
        strategy = self.failure
        if isinstance(strategy, RetryWithBackoff):
            for delay in strategy.delays():
                log.warning("sink write failed (%s); retrying in %.3fs", exc, delay)
                time.sleep(delay)
                try:
                    self._timed_write(self._out.write_batch, rb)
                    return True
                except Exception as again:  # noqa: BLE001 - the strategy decides
                    exc = again
        if isinstance(strategy, (FailBatch, RetryWithBackoff)):
            raise JobError(f"sink write failed ({strategy.name}): {exc}") from _cause(exc)
        # LogAndContinue / SendToDLQ: the rows go to the dead-letter output, counted
        log.error("sink write failed, %d rows sent to the dead-letter output: %s", rb.num_rows, exc)
        self.stats.records_failed += rb.num_rows
        reason = f"sink write failed: {exc}"
        if implements(self.dead_letter, DeadLetterOutput) or not self.keep_dead_letters:
            self._send_dead([], (reason, rb))
            return False
        self.dead_letters.append((reason, rb))
        if self.dead_letter is not None:
            self._dead.write_batch(rb)
            self._dead.flush()
            self._dead.commit()
        return False

    def _final_stats(self) -> None:
        eng = self.engine
        if isinstance(self.exchange, InlineExchange):
            self.stats.records_read = eng.stats["records_in"]
            self.stats.batches = eng.stats["batches"]
            self.stats.records_late = eng.stats["late_records"]
        self.stats.records_failed += eng.stats["failed_records"]
        if self.keep_dead_letters:
            self.dead_letters = eng.dead_letters + self.dead_letters
        else:
            for reason, rows in eng.dead_letters:
                self._log_set_aside(reason, rows)
            eng.dead_letters.clear()
        q = self.latency_quantiles()
        if q:
            self.stats.latency_ms = {f"p{k[2:]}": v * 1000 for k, v in q.items()}


def run_partitioned(sql: str, sources: Mapping[str, Any], *, partitions: int,
                    env: Optional[Mapping[str, str]] = None,
                    statements: Optional[list] = None) -> Result:
    """``vs.query(..., partitions=N)``: the V2 job server with an in-memory sink
    (``statements``: the text already parsed, not parsed again)."""
    job = Job(sql, sources, partitions=partitions, processor="v2", env=env,
              statements=statements)
    job.strict_input = True
    job.engine.dead_letter_bad_rows = False  # an out-of-range value raises, as at one partition
    job.run()
    result = job.result()
    # what the job set aside (no dead-letter output: kept in job.dead_letters), each row once:
    # the job's thread binds and stamps every row, and the partitions' late rows reach
    # job.dead_letters once each when their step is merged (HashExchange._merge_step)
    result.dead_letters = job.dead_letters
    # rows read, set-aside ones included: the batches the MemoryReader gave (records_read
    # counts the rows past the binding step, less a uint64 above 2^63-1, as engine.stats does)
    reader = job.reader
    read = (sum(rb.num_rows for rb in reader._batches[:reader.position])
            if isinstance(reader, MemoryReader) else job.stats.records_read)
    result.stats = query_stats(read, len(result), job.stats.records_late,
                               job.stats.records_failed)
    return result


def _rows_as_rejects(source: str, reason: str, rb: pa.RecordBatch) -> list[Reject]:
    """Rows the engine set aside (late, no event time, not written) as dead-letter records: the
    row as JSON is the payload."""
    return [Reject(source, reason, reason, json.dumps(row, default=str).encode())
            for row in rb.to_pylist()]
