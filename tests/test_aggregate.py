"""Slot-indexed aggregate accumulators (velostream._core.aggregate).

Every aggregate is checked against a pure-Python model that keeps, per slot, the list of rows
``(seq, value or None)`` it received and recomputes the aggregate from scratch (``REF``): after
``update``, row by row for ``update_emit`` (EMIT CHANGES), after ``reset`` and reuse, after merges
inside one object and across two (two-phase aggregation), with ``ensure_capacity`` growing the
state mid-stream. Inputs are read-only, slots include ``-1`` (skip), values include NULLs and, for
float64, NaN, +-inf and -0.0. DuckDB is the oracle for the SQL semantics (variance, median,
first/last, NULL and NaN handling).
"""
from __future__ import annotations

import math
import struct
import zlib
from collections import defaultdict

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from velostream._core.aggregate import (
    Aggregate,
    ApproxCountDistinct,
    Avg,
    Count,
    CountDistinct,
    CountStar,
    First,
    Last,
    Max,
    Median,
    Min,
    Sum,
    Variance,
)

I64, F64 = np.dtype(np.int64), np.dtype(np.float64)
DTYPES = [pytest.param(I64, id="int64"), pytest.param(F64, id="float64")]

MAKERS = {
    "count_star": lambda dt: CountStar(),
    "count": Count,
    "sum": Sum,
    "avg": Avg,
    "min": Min,
    "max": Max,
    "var_samp": lambda dt: Variance(dt, sample=True, sqrt=False),
    "var_pop": lambda dt: Variance(dt, sample=False, sqrt=False),
    "stddev_samp": lambda dt: Variance(dt, True, True),
    "stddev_pop": lambda dt: Variance(dt, False, True),
    "count_distinct": CountDistinct,
    "approx_count_distinct": ApproxCountDistinct,
    "first": First,
    "last": Last,
    "median": Median,
}
KINDS = list(MAKERS)


def result_dtype(kind, dt):
    if kind in ("count_star", "count", "count_distinct", "approx_count_distinct"):
        return I64
    if kind in ("sum", "min", "max", "first", "last"):
        return dt
    return F64


# ---------------------------------------------------------------------------- reference model


def _nan_last(v):
    return (1, 0.0) if isinstance(v, float) and math.isnan(v) else (0, v)


def _float_sum(vals):
    finite = [v for v in vals if math.isfinite(v)]
    if len(finite) == len(vals):
        return math.fsum(vals)
    if any(math.isnan(v) for v in vals) or (math.inf in vals and -math.inf in vals):
        return math.nan
    return math.inf if math.inf in vals else -math.inf


def _variance(vals, ddof, root):
    if len(vals) < 1 + ddof:
        return None
    if len(vals) == 1 and ddof == 0:  # DuckDB: one value's population variance is 0, NaN or not
        return 0.0
    if not all(math.isfinite(float(v)) for v in vals):
        return math.nan
    v = float(np.var(np.array(vals, dtype=np.float64), ddof=ddof))
    return math.sqrt(v) if root else v


def _median(vals):
    if not vals:
        return None
    xs = sorted((float(v) for v in vals), key=_nan_last)
    k = (len(xs) + 1) // 2 - 1
    a = xs[k]
    if len(xs) % 2:
        return a
    b = xs[k + 1]
    if a == b:
        return a
    if math.isinf(a) or math.isinf(b):  # DuckDB: the infinity (NaN for -inf and inf)
        return a + b
    return a + (b - a) * 0.5


def _distinct_key(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return 0.0 if v == 0 else v
    return v


def ref_value(kind, rows, dt):
    """The aggregate of ``rows`` (list of ``(seq, value or None)`` in arrival order)."""
    vals = [v for _, v in rows if v is not None]
    if kind == "count_star":
        return len(rows)
    if kind == "count":
        return len(vals)
    if kind in ("count_distinct", "approx_count_distinct"):
        return len({_distinct_key(v) for v in vals})
    if kind == "first":
        return min(rows, key=lambda r: r[0])[1] if rows else None
    if kind == "last":
        # ties on seq: the later row wins
        return max(enumerate(rows), key=lambda ir: (ir[1][0], ir[0]))[1][1] if rows else None
    if not vals:
        return None
    if kind == "sum":
        return _float_sum(vals) if dt == F64 else sum(vals)
    if kind == "avg":
        return _float_sum(vals) / len(vals) if dt == F64 else sum(vals) / len(vals)
    if kind == "min":
        return min(vals, key=_nan_last)
    if kind == "max":
        return max(vals, key=_nan_last)
    if kind.startswith(("var", "stddev")):
        return _variance(vals, 1 if kind.endswith("samp") else 0, kind.startswith("stddev"))
    if kind == "median":
        return _median(vals)
    raise AssertionError(kind)


class Model:
    """Rows per slot; mirrors one accumulator object, including its internal seq counter."""

    def __init__(self, kind, dt):
        self.kind, self.dt = kind, dt
        self.rows = defaultdict(list)
        self.next_seq = 0

    def add(self, slot, value, ok, q):
        if slot >= 0:
            self.rows[slot].append((q, value if ok else None))

    def update(self, slots, values, valid, seq=None):
        for i, s in enumerate(slots):
            q = int(seq[i]) if seq is not None else self.next_seq + i
            self.add(int(s), _py(values, i), valid is None or bool(valid[i]), q)
        self.next_seq += len(slots)

    def value(self, slot):
        return ref_value(self.kind, self.rows[slot], self.dt) if slot >= 0 else None

    def reset(self, slots):
        for s in slots:
            if s >= 0:
                self.rows[int(s)] = []

    def merge(self, dst, other, src):
        for d, s in zip(dst, src):
            d, s = int(d), int(s)
            if d < 0 or s < 0 or (other is self and d == s):
                continue
            self.rows[d] = self.rows[d] + list(other.rows[s])


def _py(values, i):
    if values is None:
        return 0
    v = values[i]
    return float(v) if values.dtype == F64 else int(v)


def same(got, want, tol=1e-9):
    if want is None:
        return got is None
    if got is None:
        return False
    if isinstance(want, float) or isinstance(got, float):
        got, want = float(got), float(want)
        if math.isnan(want) or math.isnan(got):
            return math.isnan(want) and math.isnan(got)
        if math.isinf(want) or math.isinf(got):
            return got == want
        return math.isclose(got, want, rel_tol=tol, abs_tol=tol)
    return int(got) == int(want)


def as_py(values, valid):
    return [(v.item() if ok else None) for v, ok in zip(values, valid)]


def check_result(agg, model, n_slots, where=""):
    slots = ro(np.r_[np.arange(n_slots), [-1]], np.int32)
    vals, ok = agg.result(slots)
    assert vals.dtype == agg.result_dtype and ok.dtype == np.bool_
    got = as_py(vals, ok)
    for s, g in zip(slots, got):
        want = model.value(int(s))
        assert same(g, want), f"{model.kind} {model.dt} slot {s}{where}: got {g!r}, want {want!r}"


# -------------------------------------------------------------------------------- data


def ro(a, dtype=None):
    a = np.array(a, dtype=dtype)
    a.setflags(write=False)
    return a


SPECIALS = [math.nan, math.inf, -math.inf, -0.0, 0.0]


def make_batch(rng, n, n_slots, dt, specials=True, skip=0.1, null=0.2):
    """Read-only (slots, values, valid as bool) with repeated values (ties for distinct/median)."""
    slots = rng.integers(0, n_slots, n).astype(np.int32)
    slots[rng.random(n) < skip] = -1
    if dt == F64:
        values = np.round(rng.normal(0, 100, n), rng.integers(0, 3))
        if specials:
            hit = rng.random(n) < 0.03
            values[hit] = rng.choice(SPECIALS, hit.sum())
    else:
        values = rng.integers(-50, 50, n)
        wide = rng.random(n) < 0.3
        values[wide] = rng.integers(-(2**40), 2**40, wide.sum())
    valid = rng.random(n) >= null
    return ro(slots, np.int32), ro(values, dt), ro(valid, np.bool_)


def feed(agg, model, slots, values, valid, seq=None):
    agg.update(slots, values, valid, seq=seq)      # CountStar ignores values and valid
    model.update(slots, values, valid, seq=seq)


# -------------------------------------------------------------------------- update / result


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_update_then_result(kind, dt):
    rng = np.random.default_rng(zlib.crc32(f"{kind}/{dt}".encode()))
    agg, model = MAKERS[kind](dt), Model(kind, dt)
    assert agg.result_dtype == result_dtype(kind, dt)
    n_slots = 3
    agg.ensure_capacity(n_slots)
    for batch in range(12):
        if batch in (3, 7):                      # grow mid-stream: old state must survive
            n_slots *= 4
            agg.ensure_capacity(n_slots)
            assert agg.capacity == n_slots
        n = int(rng.integers(0, 300))
        slots, values, valid = make_batch(rng, n, n_slots, dt)
        # CountStar gets no values at all; bool and uint8 masks and no mask are all accepted
        v = None if kind == "count_star" else values
        mask = [valid, valid.view(np.uint8), None][batch % 3]
        agg.update(slots, v, mask)
        model.update(slots, values, None if mask is None else valid)
        check_result(agg, model, n_slots, f" after batch {batch}")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_update_emit_is_running_reference(kind, dt):
    rng = np.random.default_rng(7)
    agg, model = MAKERS[kind](dt), Model(kind, dt)
    n_slots = 5
    agg.ensure_capacity(n_slots)
    for batch in range(4):
        if batch == 2:
            n_slots = 9
            agg.ensure_capacity(n_slots)
        slots, values, valid = make_batch(rng, 150, n_slots, dt)
        out = np.full(len(slots), 12345, agg.result_dtype)
        out_ok = np.ones(len(slots), np.bool_)
        agg.update_emit(slots, None if kind == "count_star" else values, valid, out, out_ok)
        got = as_py(out, out_ok)
        for i, s in enumerate(slots):
            model.update(slots[i:i + 1], values[i:i + 1], valid[i:i + 1])
            want = model.value(int(s))
            assert same(got[i], want), f"row {i} slot {s}: got {got[i]!r}, want {want!r}"
            if s < 0:
                assert not out_ok[i]
        # The last change row of a slot equals its result (EMIT CHANGES == EMIT FINAL at the end).
        check_result(agg, model, n_slots)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_reset_then_reuse(kind, dt):
    rng = np.random.default_rng(11)
    agg, model = MAKERS[kind](dt), Model(kind, dt)
    agg.ensure_capacity(8)
    for rnd in range(5):
        slots, values, valid = make_batch(rng, 400, 8, dt)
        feed(agg, model, slots, values, valid)
        check_result(agg, model, 8)
        closing = ro(rng.choice(np.r_[np.arange(8), [-1, -1]], 4, replace=False), np.int32)
        agg.reset(closing)
        model.reset(closing)
        check_result(agg, model, 8, f" after reset {closing} in round {rnd}")
    agg.reset(ro(np.arange(8), np.int32))
    empty, ok = agg.result(ro(np.arange(8), np.int32))
    if kind in ("count_star", "count", "count_distinct", "approx_count_distinct"):
        assert ok.all() and (empty == 0).all()
    else:
        assert not ok.any()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_merge_within_one_object(kind, dt):
    """Session-window merges: fold slots into other slots of the same object, in sequence."""
    rng = np.random.default_rng(13)
    agg, model = MAKERS[kind](dt), Model(kind, dt)
    agg.ensure_capacity(10)
    for rnd in range(4):
        slots, values, valid = make_batch(rng, 300, 10, dt)
        feed(agg, model, slots, values, valid)
        if rnd == 1:
            check_result(agg, model, 10)         # reads in between (Median: bags become heaps)
            agg.update_emit(slots[:5], None if kind == "count_star" else values[:5], valid[:5],
                            np.empty(5, agg.result_dtype), np.empty(5, np.uint8))
            model.update(slots[:5], values[:5], valid[:5])
        # chains (2 -> 1 then 1 -> 0), a self-pair (skipped), a skip and a repeated source
        dst = ro([1, 0, 3, 4, -1, 5, 7], np.int32)
        src = ro([2, 1, 3, 6, 8, 6, 9], np.int32)
        agg.merge(dst, agg, src)
        model.merge(dst, model, src)
        check_result(agg, model, 10, f" after merge in round {rnd}")
        agg.reset(src)                           # what the engine does with merged-away slots
        model.reset(src)
        check_result(agg, model, 10)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_two_phase_equals_one_object(kind, dt):
    """Rows split across two partitions by key, partial states merged, equal one object that
    saw every row. Arrival numbers are global (``seq``) and out of call order, so FIRST/LAST must
    decide by seq, not by which object or call a row came through."""
    rng = np.random.default_rng(17)
    n, n_slots = 2000, 12
    slots, values, valid = make_batch(rng, n, n_slots, dt)
    seq = ro(rng.permutation(n) * 3 + 1000, np.int64)
    whole, whole_model = MAKERS[kind](dt), Model(kind, dt)
    whole.ensure_capacity(n_slots)
    feed(whole, whole_model, slots, values, valid, seq)
    check_result(whole, whole_model, n_slots)

    # Partition rows at random (not by slot) so that both sides hold state for every slot.
    side = rng.random(n) < 0.5
    parts = []
    for mask in (side, ~side):
        idx = np.flatnonzero(mask)
        p = MAKERS[kind](dt)
        p.ensure_capacity(n_slots + 5)
        # the partition numbers its slots differently: slot s lives at s + 5 there
        ps = np.where(slots[idx] >= 0, slots[idx] + 5, -1).astype(np.int32)
        for lo in range(0, len(idx), 333):          # several batches per partition
            sl = slice(lo, lo + 333)
            p.update(ro(ps[sl]), None if kind == "count_star" else ro(values[idx][sl]),
                     ro(valid[idx][sl]), seq=ro(seq[idx][sl]))
        parts.append(p)
    src = ro(np.arange(n_slots) + 5, np.int32)
    before = [as_py(*p.result(src)) for p in parts]
    final = MAKERS[kind](dt)
    final.ensure_capacity(n_slots)
    for p in parts:
        final.merge(ro(np.arange(n_slots), np.int32), p, src)
    check_result(final, whole_model, n_slots, " (two-phase)")
    for p, b in zip(parts, before):                  # merging leaves the sources as they were
        assert all(same(x, y) for x, y in zip(as_py(*p.result(src)), b))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", ["first", "last"])
def test_first_last_follow_seq_not_call_order(kind, dt):
    agg = MAKERS[kind](dt)
    agg.ensure_capacity(1)
    s = ro([0, 0, 0], np.int32)
    agg.update(s, ro([10, 20, 30], dt), None, seq=ro([5, 1, 9], np.int64))
    agg.update(s[:1], ro([40], dt), ro([False]), seq=ro([0], np.int64))
    v, ok = agg.result(ro([0], np.int32))
    if kind == "first":
        assert not ok[0]                         # the earliest row (seq 0) is NULL
    else:
        assert ok[0] and v[0] == 30


# ------------------------------------------------------------------------- property test


_float_values = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False),
                          st.sampled_from(SPECIALS), st.sampled_from([1.5, -2.0, 7.0]))
_int_values = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.integers(-3, 3))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_property_emit_and_two_phase(kind, dt, data):
    rows = data.draw(st.lists(st.tuples(st.integers(-1, 3),
                                        _float_values if dt == F64 else _int_values,
                                        st.booleans()), max_size=40))
    slots = ro([r[0] for r in rows], np.int32)
    values = ro([0 if r[1] is None else r[1] for r in rows], dt)
    valid = ro([r[1] is not None for r in rows], np.bool_)
    agg, model = MAKERS[kind](dt), Model(kind, dt)
    agg.ensure_capacity(4)
    out = np.empty(len(rows), agg.result_dtype)
    out_ok = np.empty(len(rows), np.uint8)
    agg.update_emit(slots, values, valid, out, out_ok)
    for i in range(len(rows)):
        model.update(slots[i:i + 1], values[i:i + 1], valid[i:i + 1])
        want = model.value(int(slots[i]))
        got = out[i].item() if out_ok[i] else None
        assert same(got, want), (i, got, want)
    # two-phase: the rows flagged True go to a second object; merge it back into slot order
    seq = ro(np.arange(len(rows)), np.int64)
    a, b = MAKERS[kind](dt), MAKERS[kind](dt)
    a.ensure_capacity(4)
    b.ensure_capacity(4)
    side = np.array([r[2] for r in rows], bool)
    for obj, m in ((a, ~side), (b, side)):
        obj.update(ro(slots[m]), ro(values[m]), ro(valid[m]), seq=ro(seq[m]))
    a.merge(ro([0, 1, 2, 3], np.int32), b, ro([0, 1, 2, 3], np.int32))
    check_result(a, model, 4, " (two-phase)")


# ------------------------------------------------------------------------------ DuckDB oracle


def _duck_rows(sql, table):
    con = duckdb.connect()
    con.execute("SET threads=1")
    con.register("t", table)
    return con.execute(sql).fetchall()


DUCK_AGGS = [
    ("count_star", "count(*)"), ("count", "count(x)"), ("sum", "sum(x)"), ("avg", "avg(x)"),
    ("min", "min(x)"), ("max", "max(x)"), ("var_samp", "var_samp(x)"), ("var_pop", "var_pop(x)"),
    ("stddev_samp", "stddev_samp(x)"), ("stddev_pop", "stddev_pop(x)"), ("median", "median(x)"),
    ("first", "first(x ORDER BY i)"), ("last", "last(x ORDER BY i)"),
    ("count_distinct", "count(DISTINCT x)"), ("approx_count_distinct", "count(DISTINCT x)"),
]


@pytest.mark.parametrize("dt, specials", [
    pytest.param(I64, False, id="int64"),
    pytest.param(F64, False, id="float64"),
    pytest.param(F64, True, id="float64-nan-inf"),
])
def test_against_duckdb(dt, specials):
    import pyarrow as pa

    rng = np.random.default_rng(23)
    n, n_groups = 3000, 25
    slots, values, valid = make_batch(rng, n, n_groups, dt, specials=specials, skip=0.0)
    slots = np.array(slots)
    valid = np.array(valid)
    valid[slots == 3] = False                    # a group whose values are all NULL
    slots[slots == 4] = 5
    slots[np.flatnonzero(slots == 5)[0]] = 4     # a group with a single row
    slots, valid = ro(slots), ro(valid)
    table = pa.table({
        "i": pa.array(np.arange(n)),
        "g": pa.array(slots),
        "x": pa.array(values, mask=~valid),
    })
    sql = ("SELECT g, " + ", ".join(expr for _, expr in DUCK_AGGS)
           + " FROM t GROUP BY g ORDER BY g")
    duck = _duck_rows(sql, table)
    assert len(duck) == n_groups
    groups = ro([r[0] for r in duck], np.int32)
    for col, (kind, expr) in enumerate(DUCK_AGGS, start=1):
        agg = MAKERS[kind](dt)
        agg.ensure_capacity(n_groups)
        for lo in range(0, n, 700):                 # batches, one of them emitting
            sl = slice(lo, lo + 700)
            v = None if kind == "count_star" else ro(values[sl])
            if lo == 1400:
                m = len(slots[sl])
                agg.update_emit(ro(slots[sl]), v, ro(valid[sl]),
                                np.empty(m, agg.result_dtype), np.empty(m, np.bool_))
            else:
                agg.update(ro(slots[sl]), v, ro(valid[sl]))
        got = as_py(*agg.result(groups))
        for g, row, mine in zip(groups, duck, got):
            want = row[col]
            assert same(mine, want), f"{expr} group {g}: velostream {mine!r}, duckdb {want!r}"


def test_duckdb_median_nan_inf_edge_cases():
    cases = [
        [1.0, 2.0, math.nan, math.nan, 5.0, 7.0],   # NaNs sort last: the middle is (5, 7)
        [1.0, 2.0, math.nan, 5.0, 7.0],
        [1.0, 2.0, math.nan, math.nan, math.nan, 7.0],   # middle is (7, NaN)
        [1.0, math.nan, math.nan],
        [math.nan, math.nan],
        [math.inf, math.inf],
        [-math.inf, math.inf],
        [1e308, 1.5e308],
        [-0.0, 0.0, -0.0],
        [3.0],
    ]
    for xs in cases:
        rows = ", ".join(f"('{x!r}'::DOUBLE)" for x in xs)
        want = duckdb.sql(f"SELECT median(x) FROM (VALUES {rows}) t(x)").fetchall()[0][0]
        for emit in (False, True):
            agg = Median(F64)
            agg.ensure_capacity(1)
            s, v = ro(np.zeros(len(xs)), np.int32), ro(xs, np.float64)
            if emit:
                agg.update_emit(s, v, None, np.empty(len(xs)), np.empty(len(xs), np.uint8))
            else:
                agg.update(s, v, None)
            got = agg.result(ro([0], np.int32))[0][0]
            assert same(got, want), (xs, emit, got, want)


def test_duckdb_int_median_and_avg_precision():
    xs = [9007199254740993, 9007199254740995, 2**62, -(2**62), 3]
    for k in range(2, len(xs) + 1):
        sub = xs[:k]
        want_med, want_avg = duckdb.sql(
            f"SELECT median(x), avg(x) FROM (SELECT unnest({sub!r}::BIGINT[]) AS x)").fetchall()[0]
        for cls, want in ((Median, want_med), (Avg, want_avg)):
            agg = cls(I64)
            agg.ensure_capacity(1)
            agg.update(ro(np.zeros(k), np.int32), ro(sub, np.int64), None)
            assert agg.result(ro([0], np.int32))[0][0] == want, (cls, sub)


# --------------------------------------------------------------------------- edge semantics


def test_count_distinct_float_keys():
    agg = CountDistinct(F64)
    agg.ensure_capacity(1)
    nan2 = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000123))[0]
    agg.update(ro(np.zeros(6), np.int32), ro([0.0, -0.0, math.nan, nan2, -math.nan, 1.0]), None)
    assert agg.result(ro([0], np.int32))[0][0] == 3


def test_int_sum_is_exact_through_int64_overflow_and_raises_when_total_does_not_fit():
    mx = np.iinfo(np.int64).max
    agg = Sum(I64)
    agg.ensure_capacity(2)
    agg.update(ro([0, 0, 0, 1], np.int32), ro([mx, mx, -mx, mx], np.int64), None)
    vals, ok = agg.result(ro([0], np.int32))
    assert ok[0] and vals[0] == mx                # the running sum left int64 and came back
    agg.update(ro([1], np.int32), ro([1], np.int64), None)
    with pytest.raises(OverflowError):
        agg.result(ro([1], np.int32))
    with pytest.raises(OverflowError):
        agg.update_emit(ro([1], np.int32), ro([0], np.int64), None,
                        np.empty(1, np.int64), np.empty(1, np.uint8))
    avg = Avg(I64)
    avg.ensure_capacity(1)
    avg.update(ro([0, 0], np.int32), ro([mx, mx], np.int64), None)
    assert avg.result(ro([0], np.int32))[0][0] == float(mx)


def test_float_sum_is_compensated():
    xs = [1e16, 1.0, -1e16, 1.0] * 50
    agg = Sum(F64)
    agg.ensure_capacity(1)
    agg.update(ro(np.zeros(len(xs)), np.int32), ro(xs), None)
    assert agg.result(ro([0], np.int32))[0][0] == 100.0     # naive summation gives 0 or 2


def test_variance_merge_is_stable_with_large_offset():
    rng = np.random.default_rng(5)
    xs = 1e9 + rng.normal(0, 1, 1000)
    a, b = Variance(F64), Variance(F64)
    for o in (a, b):
        o.ensure_capacity(1)
    a.update(ro(np.zeros(500), np.int32), ro(xs[:500]), None)
    b.update(ro(np.zeros(500), np.int32), ro(xs[500:]), None)
    a.merge(ro([0], np.int32), b, ro([0], np.int32))
    assert math.isclose(a.result(ro([0], np.int32))[0][0], np.var(xs, ddof=1), rel_tol=1e-6)


def test_empty_inputs_and_skipped_rows_only():
    for kind in KINDS:
        agg = MAKERS[kind](F64)
        agg.update(ro([], np.int32), ro([], np.float64), None)     # capacity 0 is fine
        agg.update(ro([-1, -1], np.int32), ro([1.0, 2.0]), None)
        agg.update_emit(ro([], np.int32), ro([], np.float64), None,
                        np.empty(0, agg.result_dtype), np.empty(0, np.uint8))
        v, ok = agg.result(ro([], np.int32))
        assert len(v) == 0 and v.dtype == agg.result_dtype
        agg.reset(ro([], np.int32))
        agg.merge(ro([], np.int32), agg, ro([], np.int32))


# ---------------------------------------------------------------------------- validation


def test_validation_errors():
    agg = Sum(F64)
    agg.ensure_capacity(2)
    s = ro([0, 1], np.int32)
    v = ro([1.0, 2.0])
    with pytest.raises(ValueError, match="out of range"):
        agg.update(ro([0, 2], np.int32), v, None)
    assert agg.result(s)[1].tolist() == [False, False]        # nothing was applied
    with pytest.raises(ValueError):
        agg.update(s, ro([1, 2], np.int64), None)              # wrong value dtype
    with pytest.raises(ValueError):
        agg.update(ro([0, 1], np.int64), v, None)              # slots must be int32
    with pytest.raises(ValueError, match="rows"):
        agg.update(s, ro([1.0]), None)
    with pytest.raises(ValueError, match="rows"):
        agg.update(s, v, ro([True]))
    with pytest.raises(ValueError, match="rows"):
        agg.update(s, v, None, seq=ro([1], np.int64))
    with pytest.raises(TypeError):
        agg.update(s, None, None)
    with pytest.raises(ValueError):
        agg.update_emit(s, v, None, np.empty(2, np.int64), np.empty(2, np.uint8))
    with pytest.raises(ValueError):                            # read-only output
        agg.update_emit(s, v, None, ro([0.0, 0.0]), np.empty(2, np.uint8))
    with pytest.raises(ValueError, match="rows"):
        agg.update_emit(s, v, None, np.empty(3), np.empty(2, np.uint8))
    with pytest.raises(ValueError, match="out of range"):
        agg.result(ro([5], np.int32))
    with pytest.raises(ValueError, match="out of range"):
        agg.reset(ro([5], np.int32))
    with pytest.raises(ValueError, match="out of range"):
        agg.merge(s, Sum(F64), s)                              # other has capacity 0
    with pytest.raises(TypeError):
        agg.merge(s, Avg(F64), s)
    with pytest.raises(TypeError):
        agg.merge(s, Sum(I64), s)
    with pytest.raises(ValueError, match="rows"):
        agg.merge(s, agg, ro([0], np.int32))
    with pytest.raises(TypeError):
        agg.merge(s, None, s)
    with pytest.raises(ValueError):
        agg.ensure_capacity(-1)
    with pytest.raises(TypeError):
        Sum(np.int32)
    with pytest.raises(TypeError):
        Aggregate(np.int64)
    agg.ensure_capacity(1)                                     # never shrinks
    assert agg.capacity == 2
    with pytest.raises(TypeError, match="already holds state"):
        agg.__init__(np.int64)                                 # would resize nothing


def test_properties_and_repr():
    assert Variance(np.float64, sample=False, sqrt=True).sqrt
    assert not Variance(np.float64, sample=False).sample
    assert repr(Sum("float64")) == "Sum(dtype=float64)"
    assert CountStar().dtype == I64 and CountStar().result_dtype == I64
    assert Avg(np.int64).result_dtype == F64 and Min(np.int64).result_dtype == I64
    assert isinstance(ApproxCountDistinct(np.int64), CountDistinct)


def test_count_star_ignores_values_and_mask():
    agg = CountStar()
    agg.ensure_capacity(2)
    agg.update(ro([0, 1, 0], np.int32), ro([1.0, 2.0, 3.0]), ro([False, False, False]))
    agg.update(ro([0], np.int32), None)
    assert agg.result(ro([0, 1], np.int32))[0].tolist() == [3, 1]


@pytest.mark.parametrize("values", [[float("-inf"), 1.0], [float("-inf"), float("inf")],
                                    [1.0, float("inf")], [float("inf"), float("inf"), 2.0, 3.0],
                                    [float("-inf"), None, 5.0, float("nan")]])
def test_median_with_an_infinite_middle_value_is_duckdbs(values, partitions):
    import pyarrow as pa
    import velostream as vs
    from reference import assert_rows_equal, duck
    t = pa.table({"k": ["a"] * len(values), "x": pa.array(values, pa.float64())})
    got = vs.query("SELECT k, MEDIAN(x) AS m FROM t GROUP BY k EMIT FINAL", {"t": t},
                   partitions=partitions).to_pylist()
    assert_rows_equal([tuple(r.values()) for r in got], duck("SELECT k, median(x) FROM t GROUP BY k", t=t))
