"""One statement's engine: one pipeline in the calling thread, fed batch by batch. ``vs.Engine``,
``vs.query`` and ``vs.explain`` (api.py) run it, or a pipeline's graph of them.

``Engine`` is also the job-level half that the partition threads reuse (jobs/partition_threads.py):
parsing and planning, the string dictionary, the watermark, DISTINCT and LIMIT are decided once
per job; only ``Pipeline`` state is per partition.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import pyarrow as pa

from ._core.window import running_max_before
from .batch import Batch, Column, SqlType, StringDict, arrow_type_of, to_record_batches, type_of_arrow
from .binding import SchemaMismatch, SourceBinder, conform, passthrough_by_bound
from .errors import SqlError
from .exec.operators.dedup import FirstSeen
from .exec.columns import INT64_MIN, TIME_COL, WM_COL
from .exec.pipeline import Pipeline
from .planner import Plan, plan_statement
from .result import EngineStats, Result
from .sql import ast, parse
from .sql.parser import GC_PAUSE_CHARS, gc_paused


class Watermark:
    """The job's event-time progress: largest event time seen minus the allowed lateness.

    ``stamp`` returns, per row, the watermark *just before* that row, so a row is judged late against
    the rows that preceded it in the job's input, whatever the batch boundaries or partition count.

    A source made of independently ordered partitions (Kafka) passes each row's source partition:
    the watermark is then the *smallest* of the partitions' largest event times (minus the
    lateness), as in Flink, because a consumer interleaves partitions arbitrarily: one partition
    read ahead of another must not make the other's records late. Partitions not seen yet do not
    hold the watermark back. It is still one value for the whole job, and it never decreases.
    """

    def __init__(self, lateness_ms: int):
        self.lateness = int(lateness_ms)
        self.max_time = INT64_MIN          # the watermark before lateness
        self.partition_max: dict[int, int] = {}

    @property
    def current(self) -> int:
        return INT64_MIN if self.max_time == INT64_MIN else self.max_time - self.lateness

    def stamp(self, times: np.ndarray, partitions: Optional[np.ndarray] = None) -> np.ndarray:
        n = len(times)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        if partitions is not None:
            return self._stamp_partitioned(times, partitions)
        before = np.empty(n, dtype=np.int64)
        self.max_time = running_max_before(np.ascontiguousarray(times, dtype=np.int64),
                                           self.max_time, before)
        return self._less_lateness(before)

    def _less_lateness(self, before: np.ndarray) -> np.ndarray:
        if self.lateness:
            unset = before == INT64_MIN
            before -= self.lateness
            before[unset] = INT64_MIN
        return before

    def track(self, active, idle=()) -> None:
        """The source's partitions: ``active`` ones hold the watermark back even before their
        first record (so a partition read late is not late); ``idle`` ones (caught up, nothing
        to read) do not hold it back."""
        for k in active:
            self.partition_max.setdefault(int(k), INT64_MIN)
        self.idle = {int(k) for k in idle}

    def _stamp_partitioned(self, times: np.ndarray, partitions: np.ndarray) -> np.ndarray:
        n = len(times)
        idle = getattr(self, "idle", set())
        present = set(np.unique(partitions).tolist())
        registered = {k for k in self.partition_max if k not in idle}
        # per partition: its running maximum before each row (rows of other partitions carry the
        # value forward); the watermark before row i is the minimum over the partitions that
        # hold it back: registered ones always, others once they have been seen
        big = np.iinfo(np.int64).max
        low = np.full(n, big, dtype=np.int64)
        for k in registered | present:
            prev = self.partition_max.get(k, INT64_MIN)
            run = np.full(n, prev, dtype=np.int64)
            mine = partitions == k
            run[mine] = np.maximum(times[mine], prev)
            np.maximum.accumulate(run, out=run)
            before = np.empty(n, dtype=np.int64)
            before[0] = prev
            before[1:] = run[:-1]
            self.partition_max[k] = int(run[-1])
            holds = before if k in registered else np.where(before != INT64_MIN, before, big)
            np.minimum(low, holds, out=low)
        wm = np.where(low == big, INT64_MIN, low)
        np.maximum(wm, self.max_time, out=wm)
        np.maximum.accumulate(wm, out=wm)
        after = min(self.partition_max[k] for k in registered | present)
        self.max_time = max(self.max_time, int(wm[-1]), after)
        return self._less_lateness(wm)


def schema_of(rb: pa.RecordBatch) -> dict[str, SqlType]:
    """The SQL types of ``rb``'s columns as binding its first batch fixes them (a column of a
    type velostream does not take left out: velostream.binding)."""
    binder = SourceBinder("")
    binder.bind(rb.slice(0, 0))
    return binder.sql_schema()


class Engine:
    """A push-based streaming query: feed batches, get the rows each batch emits.

    >>> import velostream as vs
    >>> eng = vs.Engine("SELECT k, COUNT(*) AS n FROM s GROUP BY k")
    >>> eng.push("s", {"k": ["a", "b", "a"]}).to_pylist()
    [{'k': 'a', 'n': 1}, {'k': 'b', 'n': 1}, {'k': 'a', 'n': 2}]
    >>> eng.stats["records_in"]
    3

    The plan is bound to the input's schema at the first ``push`` (or at construction when
    ``schemas`` is given).
    """

    def __init__(self, sql: str, schemas: Optional[Mapping[str, Mapping[str, SqlType]]] = None,
                 *, env: Optional[Mapping[str, str]] = None,
                 statement: Optional[ast.Statement] = None, strings: Optional[StringDict] = None):
        if statement is None:
            statement = self.__dict__.pop("_parsed", None)
        # ``statement``: one SELECT already parsed (a stage of a pipeline, velostream.exec.graph)
        self.statement = statement if statement is not None else parse(sql, env)
        self.sql = self.statement.sql
        # the stages of one pipeline share their strings, so rows pass between them as codes
        self.strings = strings if strings is not None else StringDict()
        self.plan: Optional[Plan] = None
        self.pipeline: Optional[Pipeline] = None
        self.stats = EngineStats(records_in=0, records_out=0, late_records=0, failed_records=0,
                                 batches=0)
        self.dead_letters: list[tuple[str, pa.RecordBatch]] = []
        self._emitted = 0
        self._skipped = 0  # rows OFFSET has skipped so far
        self._distinct = None
        self._flushed = False
        # a column naming each row's independently ordered source partition (set by the job
        # from its reader's ``watermark_by``): the watermark becomes the minimum over them
        self.watermark_by: Optional[str] = None
        # the compiled push of a qualifying GROUP BY plan (velostream.exec.push_fast), set at bind
        self._fast = None
        self._fast_pipeline = None
        self._source_ok = None  # the last source name push accepted
        self._dates_in = False  # date32 input columns are DATEs (set when bound: _bind_plan)
        declared = None
        if schemas is not None:
            declared = next((dict(v) for k, v in schemas.items() if k.lower() == self.source.lower()),
                            None)
        # every input batch goes through this first (velostream.binding)
        self.binder = SourceBinder(self.source, declared)
        if schemas is not None:
            self._bind(dict(schemas))

    # -- binding ------------------------------------------------------------------------
    def _bind(self, schemas: dict) -> None:
        with gc_paused(len(self.sql or "")):  # a 1 MB text's plan and pipeline: many objects
            self._bind_plan(schemas)

    def _bind_plan(self, schemas: dict) -> None:
        self.plan = plan_statement(self.statement, schemas, self.strings)
        # the input's date32 columns are DATEs when it was bound with DATEs: a stream or CTE that
        # made them, or a declared DATE column (a source's own date is a TIMESTAMP)
        self._dates_in = any(t.kind == "DATE" for t in next(
            (v for k, v in schemas.items() if k.lower() == self.source.lower()), {}).values())
        self.watermark = Watermark(self.plan.lateness_ms)
        if getattr(self, "_partitions", None):
            self.watermark.track(*self._partitions)
        # what the operators produce, and what leaves: passthrough columns keep their input type.
        # A select list can be 300,000 items (docs/SQL.md, "Limits"): each distinct bound item
        # (they share few objects) is looked at once and the passes over the list are maps in C;
        # the Arrow schemas are made when first asked for, or taken from the first output batch
        # (``output_arrow``): Arrow makes a field per column, and once is enough.
        outs = self.plan.outputs
        self._out_names = [n for n, _ in outs]
        bounds = [b for _, b in outs]
        ids = list(map(id, bounds))
        distinct = dict(zip(ids, bounds))
        made: dict = {}  # SqlType -> Arrow type (hashing a SqlType by value is a Python call)
        internal = {k: made.get(b.type) or made.setdefault(b.type, arrow_type_of(b.type))
                    for k, b in distinct.items()}
        types = list(map(internal.__getitem__, ids))
        self._internal_types = self._out_types = types
        self._internal_schema = self._out_schema = None
        fixed = self.binder.fixed
        if fixed is not None and not getattr(schemas.get(self.source), "open_schema", False):
            kept = passthrough_by_bound(self.plan, fixed, distinct)
            differ = {k: t for k, t in kept.items() if t is not None and not t.equals(internal[k])}
            if differ:
                self._out_types = list(map({**internal, **differ}.__getitem__, ids))
        self._cast_out = self._out_types is not types
        self._has_uint64 = fixed is not None and any(
            pa.types.is_uint64(t.value_type if pa.types.is_dictionary(t) else t) for t in fixed.types)
        self.pipeline = self.make_pipeline()
        from .exec.push_fast import group_step_for
        # only an aggregate qualifies (push_fast.why_not); asking makes the output schema
        self._fast = group_step_for(self) if self.plan.shape == "aggregate" else None
        self._fast_pipeline = self.pipeline

    @property
    def internal_schema(self) -> pa.Schema:
        """The schema of what the operators produce (the engine's own types)."""
        s = self._internal_schema
        if s is None:
            s = self._internal_schema = pa.schema(list(zip(self._out_names, self._internal_types)))
            if not self._cast_out:
                self._out_schema = s
        return s

    @property
    def out_schema(self) -> pa.Schema:
        """The schema of what leaves: passthrough columns in their input types."""
        s = self._out_schema
        if s is None:
            if not self._cast_out:
                return self.internal_schema
            s = self._out_schema = pa.schema(list(zip(self._out_names, self._out_types)))
        return s

    @property
    def fast_path(self) -> bool:
        """Whether ``push`` can run this plan through the compiled step (``velostream.exec.
        push_fast``); ``fast_batches`` counts the batches it took (the rest went the general
        way)."""
        return self._fast is not None

    @property
    def fast_batches(self) -> int:
        return 0 if self._fast is None else self._fast.batches

    # set by a job told to go on past bad records: see Pipeline.dead_letter_bad_rows
    dead_letter_bad_rows = False

    def make_pipeline(self) -> Pipeline:
        p = Pipeline(self.plan, self.strings)
        p.dead_letter_bad_rows = self.dead_letter_bad_rows
        return p

    @property
    def source(self) -> str:
        return self.statement.select.source.name

    def _check_source(self, source: str) -> None:
        if source.lower() != self.source.lower():
            raise SqlError.at(self.sql, self.statement.select.source.pos,
                              f"the query reads '{self.source}', not '{source}'")

    # -- the job-level steps V2 reuses ----------------------------------------------------
    def bind_input(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        """The one binding step every input batch takes before anything else sees it
        (``velostream.binding``): ``rb`` in the source's fixed schema, the plan bound at the first
        batch, rows that do not fit (a uint64 above 2^63-1, a decimal of more than 18 digits)
        counted and dead-lettered. Raises ``SchemaMismatch`` for a batch that does not fit, and
        ``SqlError`` when the query reads a column of a type the engine does not take (binding
        leaves such a column out); then nothing has changed."""
        binder = self.binder
        before = binder.fixed
        try:
            rb = binder.bind(rb)
            if self.plan is None:
                if binder.left_out:  # a column of a type the engine does not take: unread?
                    from .binding import check_left_out
                    check_left_out(self.sql, [self.statement], self.source, binder.left_out)
                self._bind({self.source: binder.sql_schema()})
            elif binder.learned:
                self._learned_types(binder.learned)
        except BaseException:
            binder.fixed = before
            raise
        rb, rejected, _ = binder.set_aside(rb)
        if rejected is not None:
            self._dead_letter(binder.bad_reason, rejected)
            self.stats["failed_records"] += rejected.num_rows
        return rb

    def _learned_types(self, columns: list) -> None:
        """Columns typed NULL so far got a type: bind the plan again. A plan that holds no state
        yet (no records, or a row-by-row query) is simply replaced; one with state keeps going
        when the new types change nothing it holds, and otherwise the batch is rejected."""
        schema = self.binder.sql_schema()
        new = plan_statement(self.statement, {self.source: schema}, self.strings)
        stateless = self.plan.shape == "project" and not self.plan.distinct
        if self.stats["records_in"] == 0 or stateless:
            watermark = getattr(self, "watermark", None)
            self._bind({self.source: schema})
            if watermark is not None:
                self.watermark = watermark
            return
        old = _state_signature(self.plan)
        if _state_signature(new) == old:
            return
        col = columns[0]
        if len(columns) > 1:  # name the column that makes the difference
            for c in columns:
                one = {k: (v if k == c or k not in columns else SqlType("NULL"))
                       for k, v in schema.items()}
                if _state_signature(plan_statement(self.statement, {self.source: one},
                                                   self.strings)) != old:
                    col = c
                    break
        raise SchemaMismatch(self.source, col, pa.null(), self.binder.fixed.field(col).type,
                             "the query already holds state computed while this column had no "
                             "type; give it a type from the first batch")

    def prepare(self, rb: pa.RecordBatch) -> Optional[Batch]:
        """Arrow batch -> engine batch, stamped with event time and watermark when windowed.
        Rows without an event time are failed records (counted, dead-lettered)."""
        return self.prepare_bound(self.bind_input(rb))

    def prepare_bound(self, rb: pa.RecordBatch) -> Optional[Batch]:
        """``prepare`` of a batch ``bind_input`` already took."""
        return self._stamped(Batch.from_arrow(rb, self.strings, self._dates_in), rb)

    def _stamped(self, batch: Batch, rb: Optional[pa.RecordBatch]) -> Batch:
        """``batch`` counted, and stamped with event time and watermark when windowed (``rb``:
        the same rows in Arrow, for the dead-letter output, or None)."""
        self.stats["records_in"] += batch.length
        self.stats["batches"] += 1
        w = self.plan.window
        if w is None:
            if self.carries_arrival and WM_COL not in batch.columns:
                self._stamp_arrival(batch)
            return batch
        tcol = self.pipeline.ev.column(w.time, batch)
        had_time = tcol.valid
        if tcol.valid is not None:
            bad = ~tcol.valid
            self._dead_letter("NULL event time",
                              rb.filter(pa.array(bad)) if rb is not None else
                              batch.filter(bad).to_arrow([n for n in batch.columns
                                                          if not n.startswith("__")]))
            self.stats["failed_records"] += int(bad.sum())
            batch = batch.filter(tcol.valid)
            tcol = tcol.filter(tcol.valid)
        t = np.ascontiguousarray(tcol.values, dtype=np.int64)
        batch.columns[TIME_COL] = Column(_INT, t)
        arrival = batch.columns.get(WM_COL)
        if arrival is not None and hasattr(self.watermark, "stamp_arrival"):
            # a derived stream's rows carry the watermark their input had just before each of
            # them (docs/SQL.md §8): judged against it, as the one-statement query judges them
            wm = self.watermark.stamp_arrival(arrival.values)
        else:
            wm = self.watermark.stamp(t, self._source_partitions(batch))
        batch.columns[WM_COL] = Column(_INT, wm)
        # for offset tracking (velostream.jobs.tasks): which rows had an event time, their time
        # and the watermark each was judged against
        self.last_stamp = (had_time, t, wm)
        return batch

    # set for the stages of a pipeline (exec/operators/stage.py): rows of a query without a
    # window carry the watermark just before each of them (``__wm``) to the stages reading them
    carries_arrival = False

    def _stamp_arrival(self, batch: Batch) -> None:
        """Each row's watermark just before it, over its event time (``_TIMESTAMP``), as a
        windowed query stamps its rows: a window reading these rows downstream judges them as
        the one-statement query would (docs/SQL.md §8). A row without event time does not move
        the watermark."""
        name = batch.resolve("_TIMESTAMP")
        if name is None:
            return
        col = batch.columns[name]
        if col.type.kind not in ("TIMESTAMP", "INT64"):
            return
        t = np.ascontiguousarray(col.values, dtype=np.int64)
        if col.valid is not None:
            t = np.where(col.valid, t, INT64_MIN)
        wm = self.watermark.stamp(t, self._source_partitions(batch))
        batch.columns[WM_COL] = Column(_INT, wm)

    def source_partitions(self, active, idle=()) -> None:
        """The source's partitions (see ``Watermark.track``), updated as they are assigned."""
        self._partitions = (list(active), list(idle))
        if self.plan is not None and self.plan.window is not None:
            self.watermark.track(*self._partitions)

    def _source_partitions(self, batch: Batch) -> Optional[np.ndarray]:
        """Each row's source partition when the source says its partitions are ordered
        independently (``watermark_by``, e.g. ``_PARTITION`` for Kafka); else None."""
        col = batch.columns.get(self.watermark_by) if self.watermark_by else None
        if col is None:
            return None
        return np.asarray(col.values, dtype=np.int64)

    def _dead_letter(self, reason: str, rb: pa.RecordBatch) -> None:
        if rb.num_rows:
            self.dead_letters.append((reason, rb))

    def finish(self, batches: list[Batch]) -> Result:
        """Job-level tail: DISTINCT, LIMIT, conversion to Arrow, counters."""
        batches = [b for b in batches if b.length]
        if self.plan.distinct:  # on the engine's own columns: no strings to encode again
            batches = [b.take(self._first_occurrences(b)) for b in batches]
        return self._limit([self.output_arrow(b) for b in batches if b.length])

    def output_arrow(self, b: Batch, keep: tuple = ()) -> pa.RecordBatch:
        """One output batch as Arrow in the output schema, plus the ``keep`` columns it has (the
        V2 partitions convert their own rows with this; it only reads the plan)."""
        names = self._out_names
        cols = b.columns
        if len(names) <= WIDE_OUTPUT_COLUMNS:  # the usual select list: a plain loop is fastest
            arrays, made, null_typed = [], {}, False
            for n in names:  # one Arrow array per distinct column (SELECT a, a, ...)
                c = cols[n]
                arr = made.get(id(c))
                if arr is None:
                    arr = made[id(c)] = c.to_arrow()
                    null_typed = null_typed or c.type.kind == "NULL"
                arrays.append(arr)
            same = not null_typed and _same_types(arrays, self._out_types)
        else:
            # A select list can be 300,000 items (docs/SQL.md, "Limits"): each pass over it is
            # a map in C, one Arrow array per distinct column, the types checked by Arrow
            columns = list(map(cols.__getitem__, names))
            ids = list(map(id, columns))
            distinct = dict(zip(ids, columns))
            converted = {k: c.to_arrow() for k, c in distinct.items()}
            arrays = list(map(converted.__getitem__, ids))
            null_typed = any(c.type.kind == "NULL" for c in distinct.values())
            same = not null_typed and _arrays_of_types(ids, converted, self._out_types)
        if null_typed:
            rb = pa.RecordBatch.from_arrays(arrays, names=names).cast(self.internal_schema)
        elif same:
            # in the output schema object itself: nothing after compares its fields again
            # (two equal but distinct schemas cost Arrow a fingerprint of every field)
            schema = self._out_schema
            if schema is None:  # the first batch's schema, made by Arrow in C, is the output's
                rb = pa.RecordBatch.from_arrays(arrays, names=names)
                self._out_schema = schema = rb.schema
                if not self._cast_out:
                    self._internal_schema = schema
            else:
                rb = pa.RecordBatch.from_arrays(arrays, schema=schema)
        else:  # passthrough columns are conformed to the output schema later (_in_out_schema)
            rb = pa.RecordBatch.from_arrays(arrays, names=names)
        for k in keep:
            if k in b.columns:
                rb = rb.append_column(k, b.columns[k].to_arrow())
        return rb

    def finish_arrow(self, batches: list[pa.RecordBatch]) -> Result:
        """DISTINCT and LIMIT over output rows already in Arrow (V2's partitions convert their
        own rows), then the counters."""
        batches = [rb for rb in batches if rb.num_rows]
        if self.plan.distinct:
            batches = [rb.take(pa.array(self._first_occurrences(Batch.from_arrow(rb, self.strings))))
                       for rb in batches]
        return self._limit(batches)

    def _limit(self, batches: list[pa.RecordBatch]) -> Result:
        """LIMIT over the output rows in emission order, then the counters."""
        return Result(self.out_schema, self._in_out_schema(self._within_limit(batches)))

    def _within_limit(self, batches: list) -> list:
        """The rows (Arrow or engine batches) OFFSET and LIMIT let out, in emission order,
        counted: the first ``offset`` rows emitted are skipped, then ``limit`` rows go out."""
        out = []
        for b in batches:
            if self._skipped < self.plan.offset:
                skip = min(self.plan.offset - self._skipped, len(b))
                self._skipped += skip
                # (an Arrow batch slices by offset and length, an engine Batch by lo and hi)
                b = b.slice(skip, len(b) - skip) if isinstance(b, pa.RecordBatch) \
                    else b.slice(skip, len(b))
            if self.plan.limit is not None:
                room = self.plan.limit - self._emitted
                if room <= 0:
                    break
                if len(b) > room:
                    b = b.slice(0, room)
            if len(b):
                self._emitted += len(b)
                out.append(b)
        self.stats["records_out"] += sum(len(b) for b in out)
        return out

    def _in_out_schema(self, batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
        """Output rows in the output schema (passthrough columns in their input types). A
        batch already in it costs one check (``output_arrow`` gives it that schema object); one
        that is not (a passthrough TIMESTAMP still in the Arrow type it came in with, which
        leaves as epoch-ms BIGINT) is conformed (docs/SQL.md, "Types at the boundary")."""
        return [conform(rb, self.out_schema) for rb in batches]

    def _first_occurrences(self, b: Batch) -> np.ndarray:
        """The rows of ``b`` whose output row was never emitted before (SELECT DISTINCT)."""
        if self._distinct is None:
            self._distinct = FirstSeen()
        return self._distinct.first_rows([b.columns[n] for n in self._out_names], b.length)

    def _sync_counters(self) -> None:
        p = self.pipeline
        self.stats["late_records"] = p.late_records
        self.stats["failed_records"] += p.failed_records  # rows set aside as bad records
        p.failed_records = 0
        while p.dead_letters:
            reason, rows = p.dead_letters.pop(0)
            self._dead_letter(reason, self.rows_as_input(rows))

    def rows_as_input(self, rows: Batch) -> pa.RecordBatch:
        """Rows the engine holds (a dead letter) in Arrow as they came in: the input's columns
        in the types its first batch fixed (binding.conform), not the engine's own (a uint64 or
        a date held as BIGINT), so a late row reads the same as a row without event time, at
        every partition count."""
        names = [n for n in rows.columns if not n.startswith("__")]
        rb = rows.to_arrow(names)
        fixed = self.binder.fixed
        if fixed is None or not all(n in fixed.names for n in names):
            return rb  # (rows of a derived stream: the engine's types are theirs)
        return conform(rb, pa.schema([fixed.field(n) for n in names]))

    # -- public API --------------------------------------------------------------------
    def push(self, source: str, data: Any) -> Result:
        """Feed ``data`` (any input shape ``vs.query`` takes) from ``source``; returns the rows
        this input emitted.

        A record batch of a plan that qualifies (``velostream.exec.push_fast``) goes through one
        compiled call on the pipeline's own state; anything else takes the general path below.
        """
        if source is not self._source_ok:
            self._check_source(source)
            self._source_ok = source
        if type(data) is pa.RecordBatch:
            data = self.bind_input(data)
            r = self._push_fast(data)
            if r is not None:
                return r
        if len(self.sql or "") >= GC_PAUSE_CHARS:
            # a long text's select list makes 100,000s of columns and arrays a batch, which
            # the collector would scan again and again (a third of such a query's time)
            with gc_paused(len(self.sql)):
                return self._push(data)
        return self._push(data)

    def _push_fast(self, rb: pa.RecordBatch) -> Optional[Result]:
        """The compiled step's rows for a bound batch, or None: take the general path."""
        fast = self._fast
        if fast is None or self._fast_pipeline is not self.pipeline:
            return None
        r = fast.push(rb)
        if r is not None and self._cast_out:
            r = Result(self.out_schema, [conform(b, self.out_schema) for b in r.batches])
        return r

    def push_bound(self, rb: pa.RecordBatch) -> Result:
        """``push`` of a record batch that ``bind_input`` already took (a job's exchange binds
        each batch once, before it decides where the batch goes)."""
        r = self._push_fast(rb)
        if r is not None:
            return r
        return self.finish(self._process(self.prepare_bound(rb)))

    def _process(self, batch: Batch) -> list[Batch]:
        """A prepared batch through the pipeline (and the watermark it moved): its rows."""
        out = self.pipeline.process(batch)
        if self.plan.window is not None:
            out += self.pipeline.advance(self.watermark.current)
        self._sync_counters()
        return out

    def _push(self, data: Any) -> Result:
        out: list[Batch] = []
        for rb in to_record_batches(data):
            batch = self.prepare(rb)
            out += self.pipeline.process(batch)
            if self.plan.window is not None:
                out += self.pipeline.advance(self.watermark.current)
        if self.plan is None:
            return Result(pa.schema([]))
        self._sync_counters()
        return self.finish(out)

    # -- rows of a pipeline's derived stream (velostream.exec.graph) ----------------------
    def push_rows(self, data) -> list[Batch]:
        """Like ``push``, for the stage of a pipeline whose reader is another stage: takes an
        engine ``Batch`` in this engine's strings (or an Arrow batch) and returns engine batches,
        so that rows pass between stages as codes, never re-encoded (docs/ARCHITECTURE.md)."""
        if isinstance(data, Batch):
            batch = self._stamped(data, None)
        else:
            batch = self.prepare(data)
        return self.finish_rows(self._process(batch))

    def finish_rows(self, batches: list[Batch]) -> list[Batch]:
        """``finish`` without the conversion to Arrow: DISTINCT, LIMIT, counters."""
        batches = [b for b in batches if b.length]
        if self.plan.distinct:
            batches = [b.take(self._first_occurrences(b)) for b in batches]
        return self._within_limit(batches)

    def flush_rows(self) -> list[Batch]:
        if self.plan is None:
            return []
        out = self.pipeline.flush()
        self._sync_counters()
        return self.finish_rows(out)

    def flush(self) -> Result:
        """End of input: every open window closes (docs/SQL.md §4)."""
        if self.plan is None:
            return Result(pa.schema([]))
        out = self.pipeline.flush()
        self._sync_counters()
        return self.finish(out)

    def explain(self) -> str:
        return self.plan.explain() if self.plan is not None else explain_plan(self.statement)

    # -- durable state ------------------------------------------------------------------
    SNAPSHOT_FORMAT = 1
    SNAPSHOT_META = b"velostream.engine"

    def snapshot(self) -> bytes:
        """The engine's whole state as Arrow IPC stream bytes, for ``restore`` in another process.

        The stream holds one table: the pipeline's groups (``Pipeline.snapshot``; no columns for
        a stateless plan or an engine that saw no input), with the pipeline scalars in schema
        metadata ``velostream.pipeline`` and the engine's in ``velostream.engine`` (JSON): the
        query text, the bound input schema (so ``restore`` binds the plan before any input), the
        watermark (``max_time``, ``partition_max``, idle partitions), ``stats``, the LIMIT count
        ``emitted`` and the ``flushed`` flag.
        """
        import json

        if self.plan is not None and self.plan.distinct:
            raise NotImplementedError("snapshot: SELECT DISTINCT state is not snapshotted yet")
        table = self.pipeline.snapshot() if self.pipeline is not None else None
        if table is None:
            table = pa.table({})
        meta: dict = {"format": self.SNAPSHOT_FORMAT, "sql": self.sql, "bound": self.plan is not None,
                      "stats": {k: int(v) for k, v in self.stats.items()},
                      "emitted": int(self._emitted), "flushed": bool(self._flushed),
                      "skipped": int(self._skipped)}
        if self.plan is not None:
            meta["input_schema"] = [[name, t.kind, t.scale, t.precision]
                                    for name, t in self.plan.input_schema.items()]
            wm = self.watermark
            meta["watermark"] = {"max_time": int(wm.max_time),
                                 "partition_max": [[int(k), int(v)]
                                                   for k, v in wm.partition_max.items()],
                                 "idle": sorted(int(k) for k in getattr(wm, "idle", ()))}
        md = dict(table.schema.metadata or {})
        md[self.SNAPSHOT_META] = json.dumps(meta).encode()
        table = table.replace_schema_metadata(md)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def restore(self, data: bytes) -> None:
        """Load ``snapshot`` bytes into this engine, which must be fresh (no input pushed yet)
        and run the same query. The plan is bound to the snapshot's input schema, so the engine
        can ``flush`` or take input right away; results then continue exactly where the
        snapshotted engine's left off (strings are re-encoded with this engine's dictionary)."""
        import json

        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        raw = (table.schema.metadata or {}).get(self.SNAPSHOT_META)
        if raw is None:
            raise ValueError("not an engine snapshot: schema metadata 'velostream.engine' missing")
        meta = json.loads(raw)
        if meta.get("format") != self.SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported engine snapshot format {meta.get('format')!r}")
        if meta["sql"] != self.sql:
            raise ValueError("the snapshot is of another query:\n  " + meta["sql"])
        if self.stats["records_in"] or self.stats["batches"] or self._emitted:
            raise ValueError("restore needs a fresh engine (this one has taken input)")
        if meta["bound"]:
            schema = {name: SqlType(kind, scale, precision)
                      for name, kind, scale, precision in meta["input_schema"]}
            if self.plan is None:
                self.binder = SourceBinder(self.source, schema)
                self._bind({self.source: schema})
            elif dict(self.plan.input_schema) != schema:
                raise ValueError("the snapshot's input schema differs from this engine's")
            self.pipeline.restore(table if self.plan.shape != "project" else None)
            w = meta["watermark"]
            self.watermark.max_time = int(w["max_time"])
            # partitions registered by ``source_partitions`` before the restore stay registered
            self.watermark.partition_max.update({int(k): int(v) for k, v in w["partition_max"]})
            if not getattr(self, "_partitions", None) and w["idle"]:
                self.watermark.idle = {int(k) for k in w["idle"]}
        self.stats.update({k: int(v) for k, v in meta["stats"].items()})
        self._emitted = int(meta["emitted"])
        self._skipped = int(meta.get("skipped", 0))
        self._flushed = bool(meta["flushed"])


_INT = SqlType("INT64")


# Beyond this many output columns, Engine.output_arrow takes its path for wide select lists
WIDE_OUTPUT_COLUMNS = 64


def _arrays_of_types(ids: list, arrays: dict, types: list) -> bool:
    """Whether the Arrow array at each place (``ids``: the key in ``arrays``, id -> array, of
    the array there) has the Arrow type at its place in ``types``. A select list can be 300,000
    items of a few distinct arrays and types: the passes over it are maps in C, and Arrow
    checks the distinct arrays wanted in one type at once (a chunked array of that type refuses
    a chunk of another type; nothing is copied or cast)."""
    if len(ids) != len(types):
        return False
    type_of = dict(zip(map(id, types), types))
    if len(type_of) == 1:
        groups = [(types[0], list(arrays.values()))] if types else []
    else:
        by_type: dict = {}
        for a, t in set(zip(ids, map(id, types))):
            by_type.setdefault(t, []).append(arrays[a])
        groups = [(type_of[t], wanted) for t, wanted in by_type.items()]
    for want, wanted in groups:
        try:
            pa.chunked_array(wanted, type=want)
        except pa.ArrowTypeError:
            return False
    return True


def _same_types(arrays: list, want: list) -> bool:
    """Whether each of ``arrays`` (Arrow arrays, or None for "as wanted") has the Arrow type at
    its place in ``want``; each distinct pair is compared once."""
    compared: dict = {}
    for g, w in zip(arrays, want):
        if g is None or g is w:
            continue
        key = (id(g), id(w))
        same = compared.get(key)
        if same is None:
            same = compared[key] = g.type.equals(w)
        if not same:
            return False
    return True


def _state_signature(plan: Plan) -> tuple:
    """What a plan's state is made of: a plan with the same signature can carry on with the
    state another built."""
    return (plan.shape, tuple(str(k.type) for k in plan.keys),
            tuple((a.func, a.kernel_dtype, str(a.result_type)) for a in plan.aggs),
            tuple((f.func, str(f.result_type)) for o in plan.overs for f in o.functions),
            tuple(str(t) for _, t in plan.output_schema))


# A whole table is pushed in slices of this many rows (zero-copy): the group table, the string
# dictionary and the per-batch arrays stay in cache (docs/PERFORMANCE.md), as with Engine.push.
MORSEL_ROWS = 65_536


def _morsels(batches):
    for rb in batches:
        if rb.num_rows <= MORSEL_ROWS:
            yield rb
        else:
            for off in range(0, rb.num_rows, MORSEL_ROWS):
                yield rb.slice(off, MORSEL_ROWS)


def _pick_source(eng: Engine, sources: Mapping[str, Any]):
    for name, data in sources.items():
        if name.lower() == eng.source.lower():
            return data
    raise SqlError.at(eng.sql, eng.statement.select.source.pos,
                      f"no input for source '{eng.source}' (given: {', '.join(sources) or 'none'})")


def explain_plan(statement: ast.Statement, schemas: Optional[dict] = None) -> str:
    """One statement's plan as text, against ``schemas`` (source name -> column types), or
    with every column typed NULL (any) when there are none (not bound to data yet)."""
    if schemas is None:
        schemas = {statement.select.source.name: _AnySchema()}
    with gc_paused(len(statement.sql or "")):  # a 1 MB text's plan makes as many objects
        return plan_statement(statement, schemas).explain()


class _AnySchema(dict):
    """A schema that knows every column, typed NULL (any), for explain without data."""

    open_schema = True
