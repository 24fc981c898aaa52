"""Per-partition execution: one ``Pipeline`` holds one partition's state and turns input batches into
output batches. The V1 engine runs one pipeline in the calling thread; the V2 job server runs one per
partition thread. Pipelines share nothing but the (append-only) string dictionary.

Time is decided outside: the job stamps each input row with ``__time`` (event time) and ``__wm``
(the job's watermark just before that row, docs/SQL.md §3) before routing, and tells every partition
the watermark after each batch through ``advance``. That is what makes results independent of the
partition count, and of how the input was cut into batches.
"""
from __future__ import annotations

from typing import Optional


import numpy as np

from .._core.aggregate import update_all
from .._core.group_table import GroupTable
from .._core.window import order_by_end, tumbling_starts
from ..batch import Batch, Column, SqlType, StringDict
from ..errors import OutOfRangeError, RowError
from ..planner import AggSpec, Plan
from .expressions import Evaluator, render

TIME_COL = "__time"
WM_COL = "__wm"
SEQ_COL = "__seq"   # the record's position in the job's input (V2 two-phase FIRST/LAST order)
END_COL = "__end"   # window end of an EMIT FINAL row, for ordering rows across partitions
INT64_MIN = np.iinfo(np.int64).min


# ---------------------------------------------------------------------------- key encoding


def key_words(col: Column) -> np.ndarray:
    """A 64-bit key column as int64 words (NULL rows become 0; the null mask is a word apart)."""
    t = col.type.kind
    v = col.values
    if t == "FLOAT64":
        v = v + 0.0  # -0.0 -> 0.0 so equal keys have equal bits
        v[np.isnan(v)] = np.nan  # one NaN bit pattern
        w = v.view(np.int64)
    else:
        w = v.astype(np.int64, copy=False)
    valid = col.valid
    if valid is not None:
        w = np.where(valid, w, 0)
    return np.ascontiguousarray(w, dtype=np.int64)


def _narrow32(col: Column) -> np.ndarray:
    """A 32-bit key as int32 with NULL as -1."""
    v = col.values
    if col.valid is not None:
        v = np.where(col.valid, v, -1)
    return v


def _narrow(col: Column) -> np.ndarray:
    """A 32-bit key (string code, bool) as int64 with NULL as -1 (codes are never negative)."""
    w = col.values.astype(np.int64)
    if col.valid is not None:
        w[~col.valid] = -1
    return w


class KeyCodec:
    """How GROUP BY / PARTITION BY values become group-table words, and back.

    Fewer words make hashing and comparing cheaper, so 32-bit keys (string codes, booleans) are
    packed two to a word with NULL encoded as -1; 64-bit keys (integers, floats, timestamps,
    decimals) take a word each, plus one word of NULL bits. A query without keys uses one
    constant word.
    """

    def __init__(self, types: list[SqlType]):
        self.types = types
        narrow = [i for i, t in enumerate(types) if t.kind in ("STRING", "BOOL")]
        wide = [i for i, t in enumerate(types) if t.kind not in ("STRING", "BOOL")]
        self.layout: list[tuple] = [("pair", a, b) for a, b in zip(narrow[0::2], narrow[1::2])]
        if len(narrow) % 2:
            self.layout.append(("narrow", narrow[-1]))
        self.layout += [("wide", i) for i in wide]
        self.wide = wide
        if not self.layout:
            self.layout.append(("zero",))
        self.n_words = len(self.layout) + (1 if wide else 0)

    def encode(self, cols: list[Column], n: int) -> list[np.ndarray]:
        words = []
        for item in self.layout:
            kind = item[0]
            if kind == "pair":  # hi in the upper 32 bits, lo in the lower (little-endian layout)
                pair = np.empty(2 * n, dtype=np.int32)
                pair[0::2] = _narrow32(cols[item[2]])
                pair[1::2] = _narrow32(cols[item[1]])
                words.append(pair.view(np.int64))
            elif kind == "narrow":
                words.append(_narrow(cols[item[1]]))
            elif kind == "wide":
                words.append(key_words(cols[item[1]]))
            else:
                words.append(np.zeros(n, dtype=np.int64))
        if self.wide:
            nulls = np.zeros(n, dtype=np.int64)
            for bit, i in enumerate(self.wide):
                if cols[i].valid is not None:
                    nulls |= (~cols[i].valid).astype(np.int64) << bit
            words.append(nulls)
        return words

    def decode(self, words: np.ndarray, strings: StringDict) -> list[Column]:
        """Key columns from stored words (``words``: shape (n, >= n_words))."""
        out: list[Optional[Column]] = [None] * len(self.types)
        nulls = words[:, len(self.layout)] if self.wide else None
        for w, item in enumerate(self.layout):
            col = words[:, w]
            if item[0] == "pair":  # the two int32 halves as strided views: no shifts or masks
                halves = np.ascontiguousarray(col).view(np.int32)
                no_nulls = bool((halves >= 0).all())  # one contiguous pass checks both keys
                out[item[1]] = self._narrow_col(halves[1::2], item[1], strings, no_nulls)
                out[item[2]] = self._narrow_col(halves[0::2], item[2], strings, no_nulls)
            elif item[0] == "narrow":
                out[item[1]] = self._narrow_col(col, item[1], strings)
            elif item[0] == "wide":
                i = item[1]
                t = self.types[i]
                v = np.ascontiguousarray(col)
                if t.kind == "FLOAT64":
                    v = v.view(np.float64)
                valid = ((nulls >> self.wide.index(i)) & 1) == 0
                out[i] = Column(t, v, None if valid.all() else valid, strings=strings)
        return out

    def _narrow_col(self, v: np.ndarray, i: int, strings: StringDict,
                    no_nulls: bool = False) -> Column:
        t = self.types[i]
        valid = None if no_nulls else v >= 0
        if valid is not None and valid.all():  # the usual case: no NULL keys, so no select
            valid = None
        if valid is not None:
            v = np.where(valid, v, 0)
        v = v.astype(bool) if t.kind == "BOOL" else v.astype(np.int32)
        return Column(t, v, valid, strings=strings)


# ------------------------------------------------------------------------------ aggregates


def make_aggregator(spec: AggSpec, strings: Optional[StringDict] = None):
    """The kernel object for one aggregate (``strings``: the job's dictionary, which MIN/MAX of
    text compare through)."""
    from .._core import aggregate as _agg
    dt = np.float64 if spec.kernel_dtype == "float64" else np.int64
    f = spec.func
    if f == "COUNT_STAR":
        # COUNT(*) FILTER (WHERE c) counts the rows where c holds: a COUNT whose validity is c
        return _agg.CountStar(np.int64) if spec.filter is None else _agg.Count(np.int64)
    if f in ("MIN", "MAX") and spec.arg.type.kind == "STRING":
        if strings is None:
            raise ValueError("MIN/MAX of text needs the job's string dictionary")
        return (_agg.TextMin if f == "MIN" else _agg.TextMax)(strings)
    # COUNT_IF(c) is DuckDB's SUM of c as 0/1 (NULL with no non-NULL c); BOOL_AND/BOOL_OR are
    # MIN/MAX of the booleans as 0/1.
    if f in ("COUNT_IF", "BOOL_AND", "BOOL_OR"):
        return {"COUNT_IF": _agg.Sum, "BOOL_AND": _agg.Min, "BOOL_OR": _agg.Max}[f](np.int64)
    if f in ("ARG_MIN", "ARG_MAX"):
        kind = spec.arg2.type.kind
        val_kind = "float" if kind == "FLOAT64" else "text" if kind == "STRING" else "int"
        arg_dtype = np.float64 if spec.arg.type.kind == "FLOAT64" else np.int64
        return (_agg.ArgMin if f == "ARG_MIN" else _agg.ArgMax)(arg_dtype, val_kind, strings)
    if f in _agg.COVARIANCE_KINDS:
        return _agg.Covariance(f)
    if f == "STRING_AGG":
        if strings is None:
            raise ValueError("STRING_AGG needs the job's string dictionary")
        return _agg.StringAgg(strings, spec.separator)
    if f in ("PERCENTILE_CONT", "PERCENTILE_DISC", "APPROX_QUANTILE"):
        # APPROX_QUANTILE is answered exactly, as PERCENTILE_DISC (docs/SQL.md §5)
        return _agg.Median(dt, spec.fraction, f != "PERCENTILE_CONT")
    if f in ("VARIANCE", "VAR_POP", "STDDEV", "STDDEV_POP"):
        return _agg.Variance(dt, sample=f in ("VARIANCE", "STDDEV"), sqrt=f.startswith("STDDEV"))
    cls = {"COUNT": _agg.Count, "SUM": _agg.Sum, "AVG": _agg.Avg, "MIN": _agg.Min, "MAX": _agg.Max,
           "COUNT_DISTINCT": _agg.CountDistinct, "APPROX_COUNT_DISTINCT": _agg.ApproxCountDistinct,
           "FIRST_VALUE": _agg.First, "LAST_VALUE": _agg.Last, "MEDIAN": _agg.Median}[f]
    return cls(dt)


def _check_exact_in_double(spec: AggSpec, col: Column) -> None:
    """The quantile kernel holds values as doubles: an integer beyond 2**53 would come back from
    PERCENTILE_DISC rounded, so such a row is an OutOfRangeError (a bad record), never a
    silently wrong value."""
    v = col.values
    big = (v > 2 ** 53) | (v < -(2 ** 53))
    if col.valid is not None:
        big &= col.valid
    if big.any():
        raise OutOfRangeError(f"Out of Range Error: {spec.func} takes integers within +-2**53 "
                              f"(got {int(v[np.argmax(big)])})", rows=big)


def _pair_values(spec: AggSpec, a: Column, b: Column):
    """The (n, 2) values and the row validity (both arguments non-NULL, DuckDB) of a two-argument
    aggregate: CORR/COVAR/REGR take real float64 values (decimals unscaled), ARG_MIN/ARG_MAX
    int64 words (float64 bit patterns, string codes, see aggregate.pxd)."""
    cols = []
    for c in (a, b):
        if spec.kernel_dtype == "float64":
            v = c.values.astype(np.float64)
            if c.type.kind == "DECIMAL":
                v = v / float(10 ** c.type.scale)
        elif c.type.kind == "FLOAT64":
            # a value -0.0 -> 0.0 (equal values tie, and ties go by arrival); an arg keeps its sign
            v = (c.values + 0.0 if c is b else c.values.copy()).view(np.int64)
        else:
            v = c.values.astype(np.int64)
        cols.append(v)
    values = np.empty((len(cols[0]), 2), dtype=cols[0].dtype)
    values[:, 0] = cols[0]
    values[:, 1] = cols[1]
    va, vb = a.valid, b.valid
    valid = va if vb is None else vb if va is None else va & vb
    return values, None if valid is None else valid.view(np.uint8)


def kernel_values(col: Column, dtype: str) -> np.ndarray:
    v = col.values
    want = np.float64 if dtype == "float64" else np.int64
    if v.dtype != want:
        v = v.astype(want)
    return np.ascontiguousarray(v)


def finish_values(values: np.ndarray, valid: np.ndarray, t: SqlType, unscale: int,
                  scale: int, strings: StringDict) -> Column:
    """A kernel result as a typed column (decimal unscaling, codes back to int32...)."""
    if unscale:
        values = values / float(10 ** (scale * unscale))
    k = t.kind
    if values.dtype == np.float64 and k in ("INT64", "DECIMAL", "TIMESTAMP"):
        # PERCENTILE_DISC of integers: an input value the kernel held as a double, exactly (the
        # input was checked to be within 2**53, see _agg_args)
        values = values.astype(np.int64)
    if k == "STRING":
        values = values.astype(np.int32)
    elif k == "BOOL":
        values = values.astype(bool)
    valid = np.asarray(valid, dtype=bool)
    return Column(t, values, None if valid.all() else valid, strings=strings)


# -------------------------------------------------------------------------------- pipeline


class Partial:
    """Aggregate state of some groups, handed from a partition to the coordinator (two-phase
    aggregation): the groups' key words and one aggregator per aggregate holding their state in
    slots 0..n-1."""

    __slots__ = ("words", "aggs")

    def __init__(self, words: np.ndarray, aggs: list):
        self.words, self.aggs = words, aggs


class Pipeline:
    """One partition's operators and state for a plan.

    ``role`` is ``"full"`` (emit results), ``"partial"`` (two-phase: ``advance``/``flush`` hand back
    ``Partial`` state instead of rows) or ``"merge"`` (the coordinator's side: ``absorb`` partials,
    then ``advance``/``flush`` emit as usual).
    """

    def __init__(self, plan: Plan, strings: StringDict, role: str = "full"):
        self.plan = plan
        self.role = role
        self.strings = strings
        self.ev = Evaluator(strings)
        self.late_records = 0
        self.failed_records = 0  # rows set aside as bad records (dead_letter_bad_rows)
        self._state_changed = False  # process() has changed state for the batch at hand
        self.flushed = False
        self.dead_letters: list[tuple[str, Batch]] = []  # (reason, rows)
        shape = plan.shape
        if shape == "aggregate":
            self._init_aggregate()
        elif shape == "rows":
            from .operators.over import OverAnalytics
            self.over = OverAnalytics(plan, strings, self.ev)

    # A job told to go on past bad records (LogAndContinue, SendToDLQ) sets this: a row whose
    # evaluation fails (an OutOfRangeError naming its rows, docs/SQL.md §2 and §7) is counted in
    # failed_records and sent to dead_letters, and the batch's other rows go on. Every row-level
    # expression (WHERE, keys, aggregate and window arguments) is evaluated before any state
    # changes, so a failing row leaves no trace. Otherwise (vs.query, Engine.push, FailBatch) the
    # error is raised.
    dead_letter_bad_rows = False

    # -- public protocol ----------------------------------------------------------------
    def process(self, batch: Batch) -> list[Batch]:
        """Rows the batch emits (projected to the output columns)."""
        while True:
            self._state_changed = False
            try:
                return self._process(batch)
            except RowError as err:
                if self._state_changed:  # not an input row's own failure (e.g. a SUM's total)
                    err.rows = None
                rows = err.rows
                if not self.dead_letter_bad_rows or rows is None or len(rows) != batch.length:
                    raise
                self.failed_records += int(rows.sum())
                self.dead_letters.append((str(err), batch.filter(rows)))
                batch = batch.filter(~rows)

    def _process(self, batch: Batch) -> list[Batch]:
        plan = self.plan
        if plan.where is not None:
            keep = self.ev.mask(plan.where, batch)
            try:
                return self._process_kept(batch.filter(keep))
            except RowError as err:
                if err.rows is not None and not self._state_changed:  # rows of the whole batch
                    rows = np.zeros(batch.length, dtype=bool)
                    rows[keep] = err.rows
                    err.rows = rows
                raise
        return self._process_kept(batch)

    def _process_kept(self, batch: Batch) -> list[Batch]:
        plan = self.plan
        if batch.length == 0:
            return []
        if plan.shape == "project":
            return [self._project(batch)]
        if plan.shape == "rows":
            return self.over.push(batch)
        if self.session is not None:
            return self._process_session(batch)
        return self._process_groups(batch)

    def advance(self, watermark: int) -> list[Batch]:
        """Close the windows the watermark has passed; EMIT FINAL rows come out here."""
        if self.plan.shape != "aggregate" or self.plan.window is None:
            return []
        if self.session is not None:
            return self._emit_sessions(self.session.close(watermark))
        if watermark < self.min_open_end:
            return []
        return self._close_windows(watermark)

    def flush(self) -> list[Batch]:
        """End of input: every open window closes; non-windowed EMIT FINAL emits every group."""
        plan = self.plan
        if plan.shape != "aggregate":
            return []
        if self.session is not None:
            return self._emit_sessions(self.session.close_all())
        if plan.window is not None:
            return self._close_windows(None)
        if plan.emit == "FINAL":
            slots = self.table.live_slots()
            if self.role == "partial":
                out = self._snapshot(slots)
                self._retire(slots)
                return out
            if len(slots) == 0 and not plan.keys and not self.flushed:
                slots = self._global_slot()  # a global aggregate answers even for empty input
            self.flushed = True
            out = self._emit_groups(slots)
            self._retire(slots)  # emitted once: a second flush has nothing left to say
            return out
        return []

    def _retire(self, slots: np.ndarray) -> None:
        slots = np.ascontiguousarray(slots, dtype=np.int32)
        for a in self.aggs:
            a.reset(slots)
        self.table.remove(slots)

    def absorb(self, partial: Partial) -> None:
        """Merge a partition's partial state into this (coordinator-side) pipeline."""
        n = len(partial.words)
        if n == 0:
            return
        words = [np.ascontiguousarray(partial.words[:, w]) for w in range(partial.words.shape[1])]
        slots = np.empty(n, dtype=np.int32)
        self.table.find_or_insert(words, slots)
        src = np.arange(n, dtype=np.int32)
        for agg, snap in zip(self.aggs, partial.aggs):
            agg.ensure_capacity(self.table.slot_capacity)
            agg.merge(slots, snap, src)
        if self.windowed:
            self.min_open_end = min(self.min_open_end,
                                    int(partial.words[:, -1].min()) + self.plan.window.size_ms)

    def _snapshot(self, slots: np.ndarray, words: Optional[np.ndarray] = None) -> list:
        """A ``Partial`` copy of these groups' state (the partition then frees them)."""
        idx = np.arange(len(slots), dtype=np.int32)
        snaps = []
        for spec, agg in zip(self.plan.aggs, self.aggs):
            snap = make_aggregator(spec, self.strings)
            snap.ensure_capacity(len(slots))
            snap.merge(idx, agg, slots)
            snaps.append(snap)
        return [Partial(self.table.keys_of(slots) if words is None else words, snaps)]

    # -- durable state snapshots ------------------------------------------------------------
    SNAPSHOT_FORMAT = 1
    SNAPSHOT_META = b"velostream.pipeline"

    def _snapshot_signature(self) -> dict:
        """What a snapshot must agree on with the pipeline restoring it."""
        plan = self.plan
        w = plan.window
        sig = {"keys": [str(k.type) for k in plan.keys],
               "aggs": [[a.func, a.kernel_dtype, str(a.arg.type) if a.arg is not None else None]
                        + ([str(a.arg2.type)] if a.arg2 is not None else [])
                        + ([a.fraction] if a.fraction is not None else [])
                        + ([a.separator] if a.separator is not None else [])
                        + ([render(a.filter)] if a.filter is not None else []) for a in plan.aggs],
               "window": None if w is None else [w.kind, w.size_ms, w.advance_ms]}
        if w is not None and w.kind == "SESSION":
            sig["window"].append(w.gap_ms)
        if plan.shape == "rows":
            sig["overs"] = self.over.signature()
        return sig

    def snapshot(self):
        """This partition's state as an Arrow table (``None`` for a stateless projection), to be
        given to ``restore`` in another process (another string dictionary and slot numbering).

        GROUP BY / global / TUMBLING / SLIDING: one row per live group: the key columns
        ``__k<i>`` decoded to values (strings as strings, NULL keys as nulls, DECIMAL as
        decimal128), ``__window_start`` for TUMBLING/SLIDING plans, then each aggregate's
        ``export_state`` fields as ``__a<j>.<field>`` (variable-size fields as one large_list
        per group; FIRST/LAST values and COUNT DISTINCT keys of a STRING argument as strings).

        SESSION windows: one row per session not yet emitted, in closing order: ``__k<i>``,
        ``__sid`` (the id its aggregate state is kept under, kept across the restore so that
        sessions and ids are handed out exactly as before), ``__first`` and ``__last`` (its
        earliest and latest record time: it spans ``[first, last + gap)``), ``__expired`` (a
        watermark passed its end: no longer joinable, awaiting close), then the ``__a<j>.*``
        aggregate fields. The metadata adds ``sid_capacity`` and ``free_sids`` (released ids,
        next reused last).

        ROWS windows (OVER): the columns of ``OverAnalytics.snapshot`` (exec/operators/over.py).

        The schema metadata ``velostream.pipeline`` (JSON) holds the pipeline scalars:
        ``min_open_end``, ``late_records``, ``flushed``, each aggregate's ``next_seq``, and the
        plan signature ``restore`` checks.
        """
        plan = self.plan
        if plan.shape == "rows":
            state = self.over.snapshot()
            return self._snapshot_table(state.column_names, state.columns)
        if plan.shape != "aggregate":
            return None
        if self.session is not None:
            return self._snapshot_sessions()
        import pyarrow as pa

        live = self.table.live_slots()
        words = self.table.keys_of(live)
        names: list[str] = []
        arrays: list = []
        for i, col in enumerate(self.codec.decode(words, self.strings)):
            names.append(f"__k{i}")
            arrays.append(_key_to_arrow(col))
        if self.windowed:
            names.append("__window_start")
            arrays.append(pa.array(np.ascontiguousarray(words[:, -1]), type=pa.int64()))
        next_seq = self._agg_columns(live, names, arrays)
        return self._snapshot_table(names, arrays, next_seq=next_seq)

    def _snapshot_table(self, names: list, arrays: list, **extra):
        import json

        import pyarrow as pa

        meta = {"format": self.SNAPSHOT_FORMAT, **self._snapshot_signature(),
                "min_open_end": int(getattr(self, "min_open_end", np.iinfo(np.int64).max)),
                "late_records": int(self.late_records), "flushed": bool(self.flushed), **extra}
        schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays)],
                           metadata={self.SNAPSHOT_META: json.dumps(meta).encode()})
        return pa.Table.from_arrays(arrays, schema=schema)

    def _agg_columns(self, slots: np.ndarray, names: list, arrays: list) -> list:
        """Append the ``__a<j>.<field>`` columns of ``slots``' aggregate state; returns each
        aggregate's ``next_seq``."""
        import pyarrow as pa

        next_seq = []
        for j, (spec, agg) in enumerate(zip(self.plan.aggs, self.aggs)):
            state = agg.export_state(slots)
            next_seq.append(int(state.pop("next_seq")[0]))
            text = _text_state_fields(spec)
            for field in list(state):
                if field.endswith("_offsets"):
                    continue
                if field.endswith("_values"):
                    base = field[:-len("_values")]
                    values = state[field]
                    if field in text:  # COUNT DISTINCT of strings: keys are string codes
                        values = self.strings.decode(values.astype(np.int32))
                    else:
                        values = pa.array(values)
                    arr = pa.LargeListArray.from_arrays(pa.array(state[base + "_offsets"],
                                                                 type=pa.int64()), values)
                    names.append(f"__a{j}.{base}")
                    arrays.append(arr)
                    continue
                values = state[field]
                if field in text:  # FIRST/LAST/MIN/MAX/ARG_* of text: codes -> strings
                    picked = state["state"] == 2 if "state" in state else state["has"] == 1
                    arr = self.strings.decode(values.astype(np.int32), picked)
                else:
                    arr = pa.array(values)
                names.append(f"__a{j}.{field}")
                arrays.append(arr)
        return next_seq

    def _snapshot_sessions(self):
        import pyarrow as pa

        st = self.session.export_state()
        sids = st["sid"]
        words = self.table.keys_of(np.ascontiguousarray(st["key_slot"], dtype=np.int32))
        names: list[str] = []
        arrays: list = []
        for i, col in enumerate(self.codec.decode(words, self.strings)):
            names.append(f"__k{i}")
            arrays.append(_key_to_arrow(col))
        names += ["__sid", "__first", "__last", "__expired"]
        arrays += [pa.array(sids, type=pa.int32()), pa.array(st["first"], type=pa.int64()),
                   pa.array(st["last"], type=pa.int64()), pa.array(st["expired"].astype(bool))]
        next_seq = self._agg_columns(sids, names, arrays)
        return self._snapshot_table(names, arrays, next_seq=next_seq,
                                    sid_capacity=int(st["sid_capacity"][0]),
                                    free_sids=st["free_sids"].tolist())

    def restore(self, table) -> None:
        """Load a ``snapshot`` table into this (fresh) pipeline: keys are re-encoded with this
        pipeline's string dictionary and key codec, inserted in the group table, and each
        aggregate's (session's, ROWS buffer's) state imported into the new slots; the pipeline
        scalars come from the metadata. Processing then continues exactly as the snapshotted
        pipeline would have."""
        plan = self.plan
        if plan.shape not in ("aggregate", "rows"):
            if table is not None and table.num_rows:
                raise ValueError("a stateless pipeline takes no snapshot rows")
            return
        if table is None:
            raise ValueError("a stateful pipeline needs a snapshot table to restore")
        meta = self._snapshot_meta(table)
        if plan.shape == "rows":
            self.over.restore(table)
        elif self.session is not None:
            self._restore_sessions(table, meta)
        else:
            self._restore_groups(table)
        if plan.shape == "aggregate":
            for agg, seq in zip(self.aggs, meta["next_seq"]):
                agg.import_state(np.empty(0, dtype=np.int32), _empty_state(agg, seq))
            self.min_open_end = int(meta["min_open_end"])
        self.late_records = int(meta["late_records"])
        self.flushed = bool(meta["flushed"])

    def _snapshot_meta(self, table) -> dict:
        import json

        meta_raw = (table.schema.metadata or {}).get(self.SNAPSHOT_META)
        if meta_raw is None:
            raise ValueError("not a pipeline snapshot: schema metadata 'velostream.pipeline' missing")
        meta = json.loads(meta_raw)
        if meta.get("format") != self.SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {meta.get('format')!r}")
        sig = self._snapshot_signature()
        for k, want in sig.items():
            if meta.get(k) != json.loads(json.dumps(want)):
                raise ValueError(f"snapshot of a different plan: {k} is {meta.get(k)!r}, this "
                                 f"pipeline has {want!r}")
        return meta

    def _restore_groups(self, table) -> None:
        if len(self.table):
            raise ValueError("restore needs a fresh pipeline (this one already holds groups)")
        n = table.num_rows
        if not n:
            return
        plan = self.plan
        cols = [_key_from_arrow(_column(table, f"__k{i}"), k.type, self.strings)
                for i, k in enumerate(plan.keys)]
        words = self.codec.encode(cols, n)
        if self.windowed:
            ws = _column(table, "__window_start").to_numpy(zero_copy_only=False)
            words.append(np.ascontiguousarray(ws, dtype=np.int64))
        words = [np.ascontiguousarray(w, dtype=np.int64) for w in words]
        slots = np.empty(n, dtype=np.int32)
        created = self.table.find_or_insert(words, slots)
        if created != n:
            raise ValueError(f"snapshot holds {n - created} duplicate group(s)")
        for j, (spec, agg) in enumerate(zip(plan.aggs, self.aggs)):
            agg.ensure_capacity(self.table.slot_capacity)
            agg.import_state(slots, self._agg_state_from(table, j, spec))

    def _restore_sessions(self, table, meta: dict) -> None:
        if len(self.table) or self.session.n_open or self.session.sid_capacity:
            raise ValueError("restore needs a fresh pipeline (this one already holds sessions)")
        n = table.num_rows
        plan = self.plan
        cols = [_key_from_arrow(_column(table, f"__k{i}"), k.type, self.strings)
                for i, k in enumerate(plan.keys)]
        key_slots = np.empty(n, dtype=np.int32)
        if n:  # several sessions of a key share its slot
            words = [np.ascontiguousarray(w, dtype=np.int64) for w in self.codec.encode(cols, n)]
            self.table.find_or_insert(words, key_slots)

        def ints(name, dtype):
            return np.ascontiguousarray(_column(table, name).to_numpy(zero_copy_only=False),
                                        dtype=dtype)

        sids = ints("__sid", np.int32)
        self.session.import_state({
            "sid": sids, "key_slot": key_slots, "first": ints("__first", np.int64),
            "last": ints("__last", np.int64),
            "expired": ints("__expired", bool).view(np.uint8),
            "free_sids": np.asarray(meta["free_sids"], dtype=np.int32),
            "sid_capacity": np.array([meta["sid_capacity"]], dtype=np.int64)})
        for j, (spec, agg) in enumerate(zip(plan.aggs, self.aggs)):
            agg.ensure_capacity(self.session.sid_capacity)
            if n:
                agg.import_state(sids, self._agg_state_from(table, j, spec))

    def _agg_state_from(self, table, j: int, spec: AggSpec) -> dict:
        import pyarrow as pa

        prefix = f"__a{j}."
        text = _text_state_fields(spec)
        state: dict = {}
        for name in table.column_names:
            if not name.startswith(prefix):
                continue
            field = name[len(prefix):]
            arr = _column(table, name)
            if pa.types.is_large_list(arr.type) or pa.types.is_list(arr.type):
                off = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
                values = arr.flatten()
                if field + "_values" in text:
                    codes, _ = self.strings.encode_arrow(values)
                    values = codes.astype(np.int64)
                else:
                    values = values.to_numpy(zero_copy_only=False)
                state[field + "_offsets"] = off - off[0]
                state[field + "_values"] = values
            elif field in text:
                codes, valid = self.strings.encode_arrow(arr)
                codes = codes.astype(np.int64)
                if valid is not None:
                    codes[~valid] = 0
                state[field] = codes
            else:
                state[field] = arr.to_numpy(zero_copy_only=False)
        return state

    # -- project ----------------------------------------------------------------------------
    def _project(self, batch: Batch) -> Batch:
        cols = {name: self.ev.column(b, batch) for name, b in self.plan.outputs}
        return Batch(cols, batch.length)

    def _project_group_rows(self, cols: dict[str, Column], n: int) -> list[Batch]:
        gb = Batch(cols, n)
        if self.plan.having is not None:
            gb = gb.filter(self.ev.mask(self.plan.having, gb))
            if gb.length == 0:
                return []
        out = self._project(gb)
        if END_COL in gb.columns:  # carried along, unselected, for cross-partition ordering
            out.columns[END_COL] = gb.columns[END_COL]
        return [out]

    # -- GROUP BY (optionally TUMBLING / SLIDING) --------------------------------------------
    def _init_aggregate(self):
        plan = self.plan
        w = plan.window
        self.session = None
        self.windowed = w is not None and w.kind in ("TUMBLING", "SLIDING")
        self.aggs = [make_aggregator(a, self.strings) for a in plan.aggs]
        self.codec = KeyCodec([k.type for k in plan.keys])
        self.min_open_end = np.iinfo(np.int64).max
        if w is not None:  # window ends are multiples of this, which makes sorting them cheap
            self._window_step = w.advance_ms if w.kind == "SLIDING" else (w.size_ms or 1)
        if w is not None and w.kind == "SESSION":
            from .._core.session import SessionWindows
            self.session = SessionWindows(int(w.gap_ms))
            self.table = GroupTable(self.codec.n_words)  # key slots; sessions index the aggregates
            return
        # A windowed group's key ends with its window start: one table holds every open window.
        self.table = GroupTable(self.codec.n_words + (1 if self.windowed else 0))

    def _key_columns(self, batch: Batch) -> list[Column]:
        return [self.ev.column(k, batch) for k in self.plan.keys]

    def _assign_windows(self, t: np.ndarray, wm: np.ndarray):
        """(row index or None for identity, window start) of every open (row, window) pair."""
        w = self.plan.window
        size = w.size_ms
        if w.kind == "TUMBLING":
            ws = np.empty(len(t), dtype=np.int64)
            late, _ = tumbling_starts(np.ascontiguousarray(t, dtype=np.int64),
                                      np.ascontiguousarray(wm, dtype=np.int64), size, ws)
            if not late:
                return None, ws
            rows = np.flatnonzero(ws + size > wm)
            return rows, ws[rows]
        adv = w.advance_ms
        k = -(-size // adv)  # windows a record can belong to
        last = (t // adv) * adv  # the latest window start <= t
        n = len(t)
        rows = np.repeat(np.arange(n), k)
        ws = np.repeat(last, k) - np.tile(np.arange(k, dtype=np.int64) * adv, n)
        keep = (ws + size > np.repeat(t, k)) & (ws + size > np.repeat(wm, k))
        return rows[keep], ws[keep]

    def _late(self, batch: Batch, rows: Optional[np.ndarray]) -> None:
        present = np.zeros(batch.length, dtype=bool)
        if rows is None:
            return
        present[rows] = True
        nlate = batch.length - int(np.count_nonzero(present))
        if nlate:
            self.late_records += nlate
            self.dead_letters.append(("late", batch.filter(~present)))

    def _process_groups(self, batch: Batch) -> list[Batch]:
        plan = self.plan
        n = batch.length
        keycols = self._key_columns(batch)
        argcols = self._agg_args(batch)
        self._state_changed = True  # every row-level expression is evaluated
        words = self.codec.encode(keycols, n)
        rows = None
        ws = None
        if self.windowed:
            rows, ws = self._assign_windows(batch[TIME_COL].values, batch[WM_COL].values)
            if rows is not None:
                self._late(batch, rows)
                if len(rows) == 0:
                    return []
                words = [w[rows] for w in words]
            words.append(ws)
        m = len(words[0])
        slots = np.empty(m, dtype=np.int32)
        self.table.find_or_insert(words, slots)
        cap = self.table.slot_capacity
        for a in self.aggs:
            a.ensure_capacity(cap)
        if self.windowed:
            self.min_open_end = min(self.min_open_end, int(ws.min()) + plan.window.size_ms)
        changes = plan.emit == "CHANGES"
        seq = None
        if SEQ_COL in batch.columns:
            seq = batch[SEQ_COL].values if rows is None else batch[SEQ_COL].values[rows]
        cols: dict[str, Column] = {}
        if not changes:
            # one call for every aggregate: the slots are range-checked once, not per aggregate
            inputs = [self._agg_input(spec, batch, rows, col) for spec, col in zip(plan.aggs, argcols)]
            update_all(self.aggs, slots, [v for v, _ in inputs], [ok for _, ok in inputs], seq)
            return []
        for spec, agg, col in zip(plan.aggs, self.aggs, argcols):
            vals, valid = self._agg_input(spec, batch, rows, col)
            if spec.func == "STRING_AGG":  # new text: emitted as Arrow, not added to the dictionary
                cols[spec.name] = Column(spec.result_type, strings=self.strings,
                                         arrow=agg.update_emit_text(slots, vals, valid, seq))
                continue
            out = np.empty(m, dtype=agg.result_dtype)
            out_ok = np.empty(m, dtype=np.uint8)
            agg.update_emit(slots, vals, valid, out, out_ok, seq)
            cols[spec.name] = finish_values(out, out_ok.view(bool), spec.result_type, spec.unscale,
                                            _scale(spec), self.strings)
        for i, c in enumerate(keycols):
            cols[f"__k{i}"] = c if rows is None else c.take(rows)
        if self.windowed:
            cols["_WINDOW_START"] = Column(_INT, ws)
            cols["_WINDOW_END"] = Column(_INT, ws + plan.window.size_ms)
        return self._project_group_rows(cols, m)

    def _agg_args(self, batch: Batch) -> list:
        """Each aggregate's (argument column or None, FILTER mask or None) over the batch: every
        row-level expression of the aggregates, evaluated before any state changes."""
        out = [(None if spec.arg is None else self.ev.column(spec.arg, batch),
                None if spec.filter is None else self.ev.mask(spec.filter, batch),
                None if spec.arg2 is None else self.ev.column(spec.arg2, batch))
               for spec in self.plan.aggs]
        for spec, (col, _, _) in zip(self.plan.aggs, out):
            # PERCENTILE_DISC returns an input value; PERCENTILE_CONT a DOUBLE anyway
            if (spec.func in ("PERCENTILE_DISC", "APPROX_QUANTILE")
                    and spec.arg.type.kind in ("INT64", "DECIMAL", "TIMESTAMP")):
                _check_exact_in_double(spec, col)
        return out

    def _agg_input(self, spec: AggSpec, batch: Batch, rows: Optional[np.ndarray],
                   arg: tuple):
        """(values, valid) the kernel takes for ``spec`` (of ``rows`` of the batch, or all). A
        FILTER is applied here, for every path: a row failing it is an invalid (skipped) input,
        except for FIRST/LAST, which pick NULLs too and mark such a row 2 (skip), and COUNT(*),
        which then counts the rows that pass (see make_aggregator)."""
        col, keep, col2 = arg  # from _agg_args
        if keep is not None and rows is not None:
            keep = keep[rows]
        if spec.arg is None:
            if keep is None:
                return None, None
            return np.zeros(len(keep), dtype=np.int64), keep.view(np.uint8)
        if rows is not None:
            col = col.take(rows)
            if col2 is not None:
                col2 = col2.take(rows)
        if col2 is not None:
            values, valid = _pair_values(spec, col, col2)
        else:
            values, valid = kernel_values(col, spec.kernel_dtype), col.valid_u8()
        if keep is not None:
            if spec.func in ("FIRST_VALUE", "LAST_VALUE"):
                valid = np.where(keep, np.uint8(1) if valid is None else valid,
                                 np.uint8(2)).astype(np.uint8)
            else:
                valid = keep.view(np.uint8) if valid is None else valid & keep.view(np.uint8)
        return values, valid

    def _close_windows(self, watermark: Optional[int]) -> list[Batch]:
        live = self.table.live_slots()
        if len(live) == 0:
            self.min_open_end = np.iinfo(np.int64).max
            return []
        words = self.table.keys_of(live)  # read once: window starts now, keys for the output
        ends = words[:, -1] + self.plan.window.size_ms
        if watermark is None:
            closing = np.ones(len(live), dtype=bool)
        else:
            closing = ends <= watermark
        rest = ends[~closing]
        self.min_open_end = int(rest.min()) if len(rest) else np.iinfo(np.int64).max
        picked = np.flatnonzero(closing)
        if len(picked) == 0:
            return []
        picked = picked.take(_order_by_end(ends.take(picked), self._window_step))
        closed = live.take(picked)
        # take, not words[picked]: numpy's 2-D fancy indexing is several times slower per row
        if self.role == "partial":
            out = self._snapshot(closed, words.take(picked, axis=0))
        else:
            out = (self._emit_groups(closed, words.take(picked, axis=0))
                   if self.plan.emit == "FINAL" else [])
        self._retire(closed)
        return out

    def _emit_groups(self, slots: np.ndarray, words: Optional[np.ndarray] = None) -> list[Batch]:
        plan = self.plan
        slots = np.ascontiguousarray(slots, dtype=np.int32)
        n = len(slots)
        if n == 0:
            return []
        if words is None:
            words = self.table.keys_of(slots)
        cols: dict[str, Column] = {}
        for i, c in enumerate(self.codec.decode(words, self.strings)):
            cols[f"__k{i}"] = c
        for spec, agg in zip(plan.aggs, self.aggs):
            cols[spec.name] = self._agg_result(spec, agg, slots)
        if self.windowed:
            wstart = np.ascontiguousarray(words[:, -1])
            cols["_WINDOW_START"] = Column(_INT, wstart)
            cols["_WINDOW_END"] = cols[END_COL] = Column(_INT, wstart + plan.window.size_ms)
        return self._project_group_rows(cols, n)

    def _agg_result(self, spec: AggSpec, agg, slots: np.ndarray) -> Column:
        """An aggregate's current values of ``slots`` as an output column. STRING_AGG's joined
        text stays Arrow: interning every result would grow the job's append-only dictionary
        with each emitted row."""
        if spec.func == "STRING_AGG":
            return Column(spec.result_type, arrow=agg.result_text(slots), strings=self.strings)
        v, ok = agg.result(slots)
        return finish_values(v, ok, spec.result_type, spec.unscale, _scale(spec), self.strings)

    def _global_slot(self) -> np.ndarray:
        slots = np.empty(1, dtype=np.int32)
        self.table.find_or_insert(self.codec.encode([], 1), slots)
        for a in self.aggs:
            a.ensure_capacity(self.table.slot_capacity)
        return slots

    # -- SESSION windows ---------------------------------------------------------------------
    def _process_session(self, batch: Batch) -> list[Batch]:
        plan = self.plan
        n = batch.length
        keycols = self._key_columns(batch)
        inputs = [self._agg_input(spec, batch, None, arg)
                  for spec, arg in zip(plan.aggs, self._agg_args(batch))]
        self._state_changed = True  # every row-level expression is evaluated
        key_slots = np.empty(n, dtype=np.int32)
        self.table.find_or_insert(self.codec.encode(keycols, n), key_slots)
        t = np.ascontiguousarray(batch[TIME_COL].values, dtype=np.int64)
        wm = np.ascontiguousarray(batch[WM_COL].values, dtype=np.int64)
        sid = np.empty(n, dtype=np.int32)
        starts = np.empty(n, dtype=np.int64)
        ends = np.empty(n, dtype=np.int64)
        changes = plan.emit == "CHANGES"
        outs = [(np.empty(n, dtype=a.result_dtype), np.zeros(n, dtype=np.uint8)) for a in self.aggs] \
            if changes else None
        # STRING_AGG's change rows as Arrow text, one piece per segment (see _agg_result)
        texts = {j: [] for j, spec in enumerate(plan.aggs) if spec.func == "STRING_AGG"}

        def aggregate(lo: int, hi: int) -> None:
            if hi <= lo:
                return
            for a in self.aggs:
                a.ensure_capacity(self.session.sid_capacity)
            s = sid[lo:hi]
            for j, ((vals, valid), a) in enumerate(zip(inputs, self.aggs)):
                v = None if vals is None else vals[lo:hi]
                ok = None if valid is None else valid[lo:hi]
                if changes and j in texts:
                    texts[j].append(a.update_emit_text(s, v, ok))
                elif changes:
                    a.update_emit(s, v, ok, outs[j][0][lo:hi], outs[j][1][lo:hi])
                else:
                    a.update(s, v, ok)

        start = seg = 0
        while start < n:
            end, merges = self.session.assign(key_slots, t, wm, sid, starts, ends, start)
            if len(merges):
                aggregate(seg, end - 1)
                for a in self.aggs:
                    a.ensure_capacity(self.session.sid_capacity)
                    dst = np.ascontiguousarray(merges[:, 0], dtype=np.int32)
                    src = np.ascontiguousarray(merges[:, 1], dtype=np.int32)
                    a.merge(dst, a, src)
                    a.reset(src)
                seg = end - 1  # the merging row itself is aggregated with the next segment
            else:
                aggregate(seg, end)
                seg = end
            start = end
        aggregate(seg, n)  # a merge on the batch's last row leaves that row pending
        late = sid < 0
        if late.any():
            self.late_records += int(late.sum())
            self.dead_letters.append(("late", batch.filter(late)))
        if not changes:
            return []
        keep = ~late
        rows = None if keep.all() else np.flatnonzero(keep)
        cols: dict[str, Column] = {}
        for i, c in enumerate(keycols):
            cols[f"__k{i}"] = c if rows is None else c.take(rows)
        for j, (spec, (v, ok)) in enumerate(zip(plan.aggs, outs)):
            if j in texts:
                import pyarrow as pa
                text = pa.concat_arrays(texts[j]) if texts[j] else pa.nulls(n, pa.string())
                if rows is not None:
                    text = text.take(pa.array(rows))
                cols[spec.name] = Column(spec.result_type, arrow=text, strings=self.strings)
                continue
            if rows is not None:
                v, ok = v[rows], ok[rows]
            cols[spec.name] = finish_values(v, ok.view(bool), spec.result_type, spec.unscale,
                                            _scale(spec), self.strings)
        cols["_WINDOW_START"] = Column(_INT, starts if rows is None else starts[rows])
        cols["_WINDOW_END"] = Column(_INT, ends if rows is None else ends[rows])
        m = n if rows is None else len(rows)
        return self._project_group_rows(cols, m) if m else []

    def _emit_sessions(self, closed) -> list[Batch]:
        sids, kslots, starts, ends = closed
        if len(sids) == 0:
            return []
        sids = np.ascontiguousarray(sids, dtype=np.int32)
        out = []
        if self.plan.emit == "FINAL":
            words = self.table.keys_of(np.ascontiguousarray(kslots, dtype=np.int32))
            cols: dict[str, Column] = {}
            for i, c in enumerate(self.codec.decode(words, self.strings)):
                cols[f"__k{i}"] = c
            for spec, agg in zip(self.plan.aggs, self.aggs):
                cols[spec.name] = self._agg_result(spec, agg, sids)
            cols["_WINDOW_START"] = Column(_INT, np.asarray(starts, dtype=np.int64))
            cols["_WINDOW_END"] = cols[END_COL] = Column(_INT, np.asarray(ends, dtype=np.int64))
            out = self._project_group_rows(cols, len(sids))
        for a in self.aggs:
            a.reset(sids)
        self.session.release(sids)
        return out

_INT = SqlType("INT64")


def _order_by_end(ends: np.ndarray, step: int) -> np.ndarray:
    """A stable order of closed windows by end. Ends are multiples of the window step, so they
    usually compress into small ranks, which a counting sort orders in linear time."""
    order = order_by_end(np.ascontiguousarray(ends, dtype=np.int64), step)
    return np.argsort(ends, kind="stable") if order is None else order


def _text_state_fields(spec: AggSpec) -> set:
    """The ``export_state`` fields of an aggregate that hold string codes (a snapshot stores
    them as strings: another process has another dictionary)."""
    fields = set()
    if spec.func in ("ARG_MIN", "ARG_MAX"):
        if spec.arg.type.kind == "STRING":
            fields.add("arg")
        if spec.arg2.type.kind == "STRING":
            fields.add("val")
    elif spec.arg is not None and spec.arg.type.kind == "STRING":
        # FIRST/LAST/MIN/MAX; COUNT DISTINCT's keys; STRING_AGG's values
        fields |= {"value", "set_values", "codes_values"}
    return fields


def _scale(spec: AggSpec) -> int:
    return spec.arg.type.scale if spec.arg is not None and spec.arg.type.kind == "DECIMAL" else 0


# ------------------------------------------------------------------------- snapshot helpers


def _key_to_arrow(col: Column):
    """A decoded key column as Arrow values a process with another string dictionary can read."""
    import pyarrow as pa

    k = col.type.kind
    if k in ("STRING", "DECIMAL"):
        return col.to_arrow()
    mask = None if col.valid is None else ~col.valid
    dtype = {"FLOAT64": pa.float64(), "BOOL": pa.bool_()}.get(k, pa.int64())
    return pa.array(col.values, type=dtype, mask=mask)


def _key_from_arrow(arr, t: SqlType, strings: StringDict) -> Column:
    """The inverse of ``_key_to_arrow``: a key column in this process's encoding."""
    if t.kind == "STRING":
        codes, valid = strings.encode_arrow(arr)
        return Column(t, codes, valid, strings=strings)
    valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else None
    if t.kind == "DECIMAL":
        from ..batch import _decimal_to_scaled
        values = _decimal_to_scaled(arr, t.scale)
    else:
        if arr.null_count:
            arr = arr.fill_null(False if t.kind == "BOOL" else 0)
        values = arr.to_numpy(zero_copy_only=False).astype(t.numpy_dtype)
    if valid is not None:
        values = np.where(valid, values, np.zeros(1, dtype=values.dtype))
    return Column(t, np.ascontiguousarray(values), valid, strings=strings)


def _column(table, name: str):
    """One column of a snapshot table as a single Arrow array."""
    if name not in table.column_names:
        raise ValueError(f"snapshot column '{name}' is missing")
    col = table.column(name)
    return col.combine_chunks() if hasattr(col, "combine_chunks") else col


def _empty_state(agg, next_seq: int) -> dict:
    """``import_state`` arrays for zero slots that only carry ``next_seq``."""
    state = agg.export_state(np.empty(0, dtype=np.int32))
    state["next_seq"] = np.array([next_seq], dtype=np.int64)
    return state
