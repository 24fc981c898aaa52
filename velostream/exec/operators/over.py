"""Analytic functions over a window of each row's own partition (docs/SQL.md §6): ``f(x) OVER
(ROWS WINDOW BUFFER n ROWS [PARTITION BY k] [ORDER BY t])`` and the standard frames that mean
the same. Every input row produces exactly one output row.

One ``OverAnalytics`` holds the state of every OVER spec of a plan: per spec, a group table
mapping PARTITION BY values to slots and the compiled kernel (``_core/rows``) keeping each slot's
state. ``push`` evaluates every row-level expression (PARTITION BY keys, arguments, LAG defaults)
before any state changes, so that a row whose evaluation fails (a ``RowError`` naming its rows)
can be set aside and the batch retried without it (the pipeline's bad-record loop); a
``RowError`` raised after state changed names no rows.
"""
from __future__ import annotations

import numpy as np

from ...batch import Batch, Column, StringDict
from ...errors import RowError
from ...planner import OverPlan, Plan
from ..expressions import Evaluator


class _OverState:
    """One OVER spec: its distinct argument expressions, kernel, partition table and codec."""

    __slots__ = ("plan", "args", "window", "table", "codec", "needs_rn", "code_fields")

    def __init__(self, o: OverPlan, strings: StringDict):
        from ..._core.group_table import GroupTable
        from ..._core.rows import FrameWindow, RowsWindow
        from ..keys import KeyCodec
        self.plan = o
        self.args: list = []  # distinct argument expressions of this OVER spec
        funcs = []
        # LAG with a default needs each row's number in its partition to know "no k-th row"
        self.needs_rn = any(f.func == "LAG" and f.default is not None for f in o.functions)
        for f in o.functions:
            idx = -1
            if f.arg is not None:
                if f.arg not in self.args:
                    self.args.append(f.arg)
                idx = self.args.index(f.arg)
            funcs.append((f.func, idx, f.offset))
        if self.needs_rn:
            funcs.append(("ROW_NUMBER", -1, 1))
        dtypes = [np.float64 if a.type.kind == "FLOAT64" else np.int64 for a in self.args]
        self.codec = KeyCodec([p.type for p in o.partition_by])
        self.table = GroupTable(self.codec.n_words) if o.partition_by else None
        text = [a.type.kind == "STRING" for a in self.args]
        if o.frame == "ROWS":
            self.window = RowsWindow(o.buffer_rows, funcs, dtypes, text, strings)
            # export_state fields holding string codes (a snapshot stores the strings; -1, a
            # text MIN/MAX's "no value", is stored as NULL)
            self.code_fields = {f"arg{a}" for a, t in enumerate(text) if t}
            self.code_fields |= {f"f{i}.{field}" for i, f in enumerate(o.functions)
                                 if f.func in ("MIN", "MAX") and f.arg.type.kind == "STRING"
                                 for field in ("block", "prefix")}
        else:  # ROWS UNBOUNDED PRECEDING, RANGE, RANK (docs/SQL.md §6)
            kinds = ["text" if a.type.kind == "STRING" else
                     "float64" if a.type.kind == "FLOAT64" else "int64" for a in self.args]
            self.window = FrameWindow(o.frame, o.range_ms, funcs, kinds, strings)
            self.code_fields = self.window.code_fields()

    @property
    def ordered(self) -> bool:
        """The kernel reads each row's ORDER BY value (RANGE, RANK, DENSE_RANK)."""
        return self.plan.order_by is not None


def _ordered(s) -> str:
    """The functions of an OVER spec that read its ORDER BY in arrival order (for errors)."""
    return " / ".join(dict.fromkeys(f.func for f in s.plan.functions))


class OverAnalytics:
    """The OVER specs of a ``rows``-shaped plan, and the projection of its output rows.

    ``push(batch)`` returns the batch's output rows; OVER keeps no rows back, so
    ``on_watermark`` and ``close`` emit nothing. ``snapshot()`` / ``restore(table, meta)`` carry
    the state as the columns of the pipeline's snapshot table (described in ``snapshot``)."""

    watermark = np.iinfo(np.int64).min

    def __init__(self, plan: Plan, strings: StringDict, ev: Evaluator):
        self.plan = plan
        self.strings = strings
        self.ev = ev
        self.overs = [_OverState(o, strings) for o in plan.overs]

    # -- operator interface -------------------------------------------------------------------
    def push(self, batch: Batch) -> list[Batch]:
        from ..aggregators import finish_values, kernel_values
        n = batch.length
        cols = dict(batch.columns)
        ev = self.ev
        # every row-level expression first: a failing row must leave the windows untouched
        evaluated = [([ev.column(p, batch) for p in s.plan.partition_by],
                      [ev.column(a, batch) for a in s.args],
                      [ev.column(f.default, batch) if f.func == "LAG" and f.default is not None
                       else None for f in s.plan.functions],
                      ev.column(s.plan.order_by, batch) if s.ordered else None)
                     for s in self.overs]
        slots_of = []
        for s, (kc, _, _, _) in zip(self.overs, evaluated):
            if s.table is not None:
                slots = np.empty(n, dtype=np.int32)
                s.table.find_or_insert(s.codec.encode(kc, n), slots)
            else:
                slots = np.zeros(n, dtype=np.int32)
            slots_of.append(slots)
        self._check_order(evaluated, slots_of)
        try:
            for s, (kc, arg_cols, defaults, order), slots in zip(self.overs, evaluated, slots_of):
                o = s.plan
                kernel_args = [(kernel_values(c, "float64" if c.type.kind == "FLOAT64" else "int64"),
                                c.valid_u8()) for c in arg_cols]
                if o.frame == "ROWS":
                    results = s.window.process(slots, kernel_args)
                else:
                    times = kernel_values(order, "int64") if order is not None else None
                    results = s.window.process(slots, times, kernel_args)
                rn = results[-1][0] if s.needs_rn else None
                for f, (v, ok), dflt in zip(o.functions, results, defaults):
                    scale = (f.arg.type.scale if f.arg is not None and f.arg.type.kind == "DECIMAL"
                             else 0)
                    unscale = 0
                    if scale and f.func in ("AVG", "STDDEV", "STDDEV_POP"):
                        unscale = 1
                    elif scale and f.func in ("VARIANCE", "VAR_POP"):
                        unscale = 2
                    col = finish_values(v, ok, f.result_type, unscale, scale, self.strings)
                    if dflt is not None:
                        out_of_range = rn <= f.offset
                        vals = np.where(out_of_range, dflt.values.astype(col.values.dtype),
                                        col.values)
                        valid = np.where(out_of_range, dflt.valid_mask(), col.valid_mask())
                        col = Column(f.result_type, vals, valid, strings=self.strings)
                    cols[f.name] = col
            out = Batch(cols, n)
            return [Batch({name: ev.column(b, out) for name, b in self.plan.outputs}, n)]
        except RowError as err:
            err.rows = None  # state changed: not an input row's own failure (e.g. a SUM's total)
            raise

    def _check_order(self, evaluated, slots_of) -> None:
        """Rows a RANGE frame, RANK, or a frameless LAG / ROW_NUMBER cannot answer, as a
        ``RowError`` naming them, before any window state changes (docs/SQL.md §6): a NULL ORDER
        BY value, and (all but RANGE) a value older than its key's newest so far: those count
        only the rows so far, so they need each key's rows in ORDER BY order."""
        bad, why = None, ""
        for s, (_, _, _, order), slots in zip(self.overs, evaluated, slots_of):
            if order is None:
                continue
            valid = order.valid_mask()
            if not valid.all():
                bad = ~valid if bad is None else bad | ~valid
                why = why or (f"the ORDER BY value of {'a RANGE frame' if s.plan.frame == 'RANGE' else _ordered(s)} "
                              "is NULL")
            if s.plan.frame == "UNBOUNDED":  # RANK, DENSE_RANK; LAG, ROW_NUMBER without a frame
                times = np.where(valid, order.values, 0).astype(np.int64)
                keep = np.flatnonzero(valid)
                late = s.window.late_rows(slots[keep], times[keep])
                if late is not None:
                    rows = np.zeros(len(valid), dtype=bool)
                    rows[keep[late]] = True
                    bad = rows if bad is None else bad | rows
                    why = why or (f"{_ordered(s)}: a row arrived after a newer row of its key "
                                  "(ORDER BY value older than the key's newest); it needs each "
                                  "key's rows in ORDER BY order")
        if bad is not None:
            raise RowError(why, rows=bad)

    def on_watermark(self, watermark: int) -> list[Batch]:
        return []

    def close(self) -> list[Batch]:
        return []

    # -- durable state --------------------------------------------------------------------------
    def signature(self) -> list:
        """What a snapshot must agree on with the operator restoring it."""
        sig = []
        for o in self.plan.overs:
            entry = [o.buffer_rows, [str(p.type) for p in o.partition_by],
                     [[f.func, str(f.arg.type) if f.arg is not None else None, f.offset,
                       f.default is not None] for f in o.functions]]
            if o.frame != "ROWS":
                entry.append([o.frame, o.range_ms])
            sig.append(entry)
        return sig

    def snapshot(self) -> tuple[list, list, dict]:
        """(column names, arrays, metadata) of the state: one row per PARTITION BY value of each OVER spec ``o``
        (one row for an unpartitioned spec), tagged ``__over``; columns of spec ``o`` are
        ``__o<o>.*`` (null on other specs' rows): keys ``k<i>``, ``rows`` (rows the partition
        has seen), then the kernel's ``export_state`` fields (``RowsWindow`` for a ROWS
        buffer, ``FrameWindow`` for the other frames): a list field ``<name>`` (from
        ``<name>_values`` cut by ``<name>_offsets``, NULL where ``<name>_valid`` is 0) as a
        large_list, every other field as a column. Fields holding string codes hold the strings
        (another process has another dictionary); floats are bit for bit."""
        import pyarrow as pa

        from ..snapshots import key_to_arrow as _key_to_arrow

        parts = []  # per OVER spec: (rows, names, arrays)
        for i, s in enumerate(self.overs):
            names: list[str] = []
            arrays: list = []
            p = f"__o{i}."
            if s.table is not None:
                slots = s.table.live_slots()
                for j, col in enumerate(s.codec.decode(s.table.keys_of(slots), self.strings)):
                    names.append(f"{p}k{j}")
                    arrays.append(_key_to_arrow(col))
            else:
                slots = np.zeros(1, dtype=np.int32)
            st = s.window.export_state(slots)
            names.append(p + "rows")
            arrays.append(pa.array(st["rows"], type=pa.int64()))
            for field, values in st.items():
                if field == "rows" or field.endswith("_offsets") or (
                        field.endswith("_valid") and field[:-len("_valid")] + "_values" in st):
                    continue
                if field.endswith("_values"):
                    base = field[:-len("_values")]
                    ok = st.get(base + "_valid")
                    ok = None if ok is None else ok.astype(bool)
                    if ok is None and base in s.code_fields:
                        ok = values >= 0
                    if base in s.code_fields:
                        arr = self.strings.decode(values.astype(np.int32), ok)
                    else:
                        arr = pa.array(values, mask=None if ok is None else ~ok)
                    names.append(p + base)
                    arrays.append(pa.LargeListArray.from_arrays(
                        pa.array(st[base + "_offsets"], type=pa.int64()), arr))
                elif field in s.code_fields:  # a string code: valid where <f>.valid, or >= 0
                    companion = field[:-len("value")] + "valid" if field.endswith(".value") else ""
                    ok = (st[companion].astype(bool) if companion in st else values >= 0)
                    names.append(p + field)
                    arrays.append(self.strings.decode(values.astype(np.int32), ok))
                else:
                    names.append(p + field)
                    arrays.append(pa.array(values))
            parts.append((len(slots), names, arrays))
        total = sum(n for n, _, _ in parts)
        names = ["__over"]
        arrays = [pa.array(np.repeat(np.arange(len(parts), dtype=np.int32),
                                     [n for n, _, _ in parts]), type=pa.int32())]
        before = 0
        for n, ns, arrs in parts:
            for name, arr in zip(ns, arrs):
                if n != total:  # other specs' rows: null
                    arr = pa.concat_arrays([pa.nulls(before, arr.type), arr,
                                            pa.nulls(total - before - n, arr.type)])
                names.append(name)
                arrays.append(arr)
            before += n
        return names, arrays, {}

    def restore(self, table, meta: dict) -> None:
        """Load a ``snapshot`` table into this (fresh) operator: keys are re-encoded with this
        process's string dictionary and inserted in the partition tables, and each kernel's
        state imported into the new slots."""
        import pyarrow as pa

        from ..snapshots import column as _column, key_from_arrow as _key_from_arrow

        over = _column(table, "__over").to_numpy(zero_copy_only=False)
        for i, s in enumerate(self.overs):
            o, window, gtable, codec = s.plan, s.window, s.table, s.codec
            rows = np.flatnonzero(over == i)
            n = len(rows)
            if n and rows[-1] - rows[0] + 1 != n:
                raise ValueError(f"snapshot rows of OVER spec {i} are not contiguous")
            sub = table.slice(int(rows[0]) if n else 0, n)
            p = f"__o{i}."
            if gtable is not None:
                if len(gtable):
                    raise ValueError("restore needs a fresh pipeline (this one already holds "
                                     "ROWS partitions)")
                if not n:
                    continue
                cols = [_key_from_arrow(_column(sub, f"{p}k{j}"), k.type, self.strings)
                        for j, k in enumerate(o.partition_by)]
                words = [np.ascontiguousarray(w, dtype=np.int64) for w in codec.encode(cols, n)]
                slots = np.empty(n, dtype=np.int32)
                if gtable.find_or_insert(words, slots) != n:
                    raise ValueError("snapshot holds duplicate ROWS partitions")
            else:
                if n != 1:
                    raise ValueError(f"an unpartitioned OVER spec takes one snapshot row, got {n}")
                slots = np.zeros(1, dtype=np.int32)
            state: dict = {}
            for name in sub.column_names:
                if not name.startswith(p) or name[len(p):].startswith("k"):
                    continue
                field = name[len(p):]
                arr = _column(sub, name)
                if pa.types.is_large_list(arr.type) or pa.types.is_list(arr.type):
                    off = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
                    values = arr.flatten()
                    ok = values.is_valid().to_numpy(zero_copy_only=False)
                    if field in s.code_fields:
                        codes, _ = self.strings.encode_arrow(values)
                        vals = np.where(ok, codes.astype(np.int64), -1)
                    else:
                        vals = values.fill_null(0).to_numpy(zero_copy_only=False)
                        vals = np.where(ok, vals, np.zeros(1, vals.dtype))
                    state[field + "_values"] = vals
                    state[field + "_valid"] = ok.astype(np.uint8)
                    state[field + "_offsets"] = off - off[0]
                elif field in s.code_fields:
                    codes, _ = self.strings.encode_arrow(arr)
                    ok = arr.is_valid().to_numpy(zero_copy_only=False)
                    state[field] = np.where(ok, codes.astype(np.int64), -1)
                else:
                    state[field] = arr.to_numpy(zero_copy_only=False)
            window.import_state(slots, state)
