"""Aggregates: the kernel object of each aggregate of a plan (``_core/aggregate.pyx``), the
values it takes from a batch, the column it gives back, and its state in a snapshot. Shared by
the operators that aggregate (``operators/aggregate.py``, ``operators/session_window.py``)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..batch import Column, SqlType, StringDict
from ..errors import OutOfRangeError
from ..planner import AggSpec
from . import udaf
from .snapshots import column
from .._core import aggregate as _aggregate_kernels
from .._core import rows as _rows_kernels

# The kernels raise this on an overflowing SUM (they never import the package: this sets it)
_aggregate_kernels.OutOfRangeError = _rows_kernels.OutOfRangeError = OutOfRangeError


def make_aggregator(spec: AggSpec, strings: Optional[StringDict] = None):
    """The kernel object for one aggregate (``strings``: the job's dictionary, which MIN/MAX of
    text compare through)."""
    from .._core import aggregate as _agg
    dt = np.float64 if spec.kernel_dtype == "float64" else np.int64
    f = spec.func
    if f in udaf.REGISTRY:  # vs.udaf: a Python class behind the kernels' interface
        return udaf.make(spec, strings)
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
        # input was checked to be within 2**53, see evaluate_arguments)
        values = values.astype(np.int64)
    if k == "STRING":
        values = values.astype(np.int32)
    elif k == "BOOL":
        values = values.astype(bool)
    valid = np.asarray(valid, dtype=bool)
    return Column(t, values, None if valid.all() else valid, strings=strings)


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


# ------------------------------------------------------------------ a batch's aggregate inputs


def evaluate_arguments(ev, aggs: list[AggSpec], batch) -> list:
    """Each aggregate's (argument column or None, FILTER mask or None, second argument or None)
    over the batch: every row-level expression of the aggregates, evaluated before any state
    changes (a failing row must leave no trace, docs/SQL.md §7)."""
    out = [(None if spec.arg is None else ev.column(spec.arg, batch),
            None if spec.filter is None else ev.mask(spec.filter, batch),
            None if spec.arg2 is None else ev.column(spec.arg2, batch))
           for spec in aggs]
    for spec, (col, _, _) in zip(aggs, out):
        # PERCENTILE_DISC returns an input value; PERCENTILE_CONT a DOUBLE anyway
        if (spec.func in ("PERCENTILE_DISC", "APPROX_QUANTILE")
                and spec.arg.type.kind in ("INT64", "DECIMAL", "TIMESTAMP")):
            _check_exact_in_double(spec, col)
    for j, spec in enumerate(aggs):
        if spec.func in udaf.REGISTRY:  # every argument; the user's update tried (bad records)
            out[j] = udaf.evaluate_arguments(ev, spec, batch, out[j])
    return out


def kernel_input(spec: AggSpec, arg: tuple, rows: Optional[np.ndarray]):
    """(values, valid) the kernel takes for ``spec`` (of ``rows`` of the batch, or all), from
    ``arg`` as ``evaluate_arguments`` gave it. A FILTER is applied here, for every path: a row
    failing it is an invalid (skipped) input, except for FIRST/LAST, which pick NULLs too and
    mark such a row 2 (skip), and COUNT(*), which then counts the rows that pass (see
    make_aggregator)."""
    if spec.func in udaf.REGISTRY:  # one Arrow array per argument (vs.udaf)
        return udaf.kernel_input(spec, arg, rows)
    col, keep, col2 = arg
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


def result_column(spec: AggSpec, agg, slots: np.ndarray, strings: StringDict) -> Column:
    """An aggregate's current values of ``slots`` as an output column. STRING_AGG's joined text
    stays Arrow: interning every result would grow the job's append-only dictionary with each
    emitted row."""
    if spec.func == "STRING_AGG":
        return Column(spec.result_type, arrow=agg.result_text(slots), strings=strings)
    v, ok = agg.result(slots)
    return finish_values(v, ok, spec.result_type, spec.unscale, _scale(spec), strings)


def emitted_column(spec: AggSpec, v: np.ndarray, ok: np.ndarray, strings: StringDict) -> Column:
    """A column of values an ``update_emit`` call wrote (EMIT CHANGES rows)."""
    return finish_values(v, ok.view(bool), spec.result_type, spec.unscale, _scale(spec), strings)


# ------------------------------------------------------------------------ state in a snapshot


def export_states(aggs: list[AggSpec], kernels: list, slots: np.ndarray, strings: StringDict,
                  names: list, arrays: list) -> list:
    """Append the ``__a<j>.<field>`` snapshot columns of ``slots``' aggregate state (variable-size
    fields as one large_list per slot; string codes as strings: another process has another
    dictionary); returns each aggregate's ``next_seq``."""
    import pyarrow as pa

    next_seq = []
    for j, (spec, agg) in enumerate(zip(aggs, kernels)):
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
                    values = strings.decode(values.astype(np.int32))
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
                arr = strings.decode(values.astype(np.int32), picked)
            else:
                arr = pa.array(values)
            names.append(f"__a{j}.{field}")
            arrays.append(arr)
    return next_seq


def imported_state(table, j: int, spec: AggSpec, strings: StringDict) -> dict:
    """Aggregate ``j``'s ``import_state`` arrays from a snapshot table's ``__a<j>.*`` columns."""
    import pyarrow as pa

    prefix = f"__a{j}."
    text = _text_state_fields(spec)
    state: dict = {}
    for name in table.column_names:
        if not name.startswith(prefix):
            continue
        field = name[len(prefix):]
        arr = column(table, name)
        if pa.types.is_large_list(arr.type) or pa.types.is_list(arr.type):
            off = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
            values = arr.flatten()
            if field + "_values" in text:
                codes, _ = strings.encode_arrow(values)
                values = codes.astype(np.int64)
            else:
                values = values.to_numpy(zero_copy_only=False)
            state[field + "_offsets"] = off - off[0]
            state[field + "_values"] = values
        elif field in text:
            codes, valid = strings.encode_arrow(arr)
            codes = codes.astype(np.int64)
            if valid is not None:
                codes[~valid] = 0
            state[field] = codes
        else:
            state[field] = arr.to_numpy(zero_copy_only=False)
    return state


def restore_next_seq(kernels: list, next_seq: list) -> None:
    """Give each kernel the arrival counter it had (FIRST/LAST order), with no slot."""
    for agg, seq in zip(kernels, next_seq):
        state = agg.export_state(np.empty(0, dtype=np.int32))
        state["next_seq"] = np.array([seq], dtype=np.int64)
        agg.import_state(np.empty(0, dtype=np.int32), state)
