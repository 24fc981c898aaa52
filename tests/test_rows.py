"""ROWS-window kernels (velostream._core.rows) against DuckDB and a pure-Python deque reference.

DuckDB answers ``f(x) OVER (PARTITION BY k ORDER BY seq ROWS BETWEEN n-1 PRECEDING AND CURRENT
ROW)`` on the same rows; the reference keeps a ``deque(maxlen=n)`` per slot. Inputs are fed in
batches of random sizes (some empty) so that the state carried between ``process`` calls is
exercised, and every input array is read-only.
"""
import math
import statistics
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

duckdb = pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")

from velostream._core.rows import RowsWindow  # noqa: E402

ARG_FUNCS = ["SUM", "AVG", "MIN", "MAX", "COUNT", "STDDEV", "STDDEV_POP", "VARIANCE", "VAR_POP",
             "FIRST_VALUE", "LAST_VALUE"]
FLOAT_RESULT = {"AVG", "STDDEV", "STDDEV_POP", "VARIANCE", "VAR_POP"}


def all_functions(n):
    funcs = [(f, 0, 0) for f in ARG_FUNCS] + [("COUNT_STAR", -1, 0), ("ROW_NUMBER", -1, 0)]
    if n > 1:
        funcs += [("LAG", 0, 1), ("LAG", 0, n - 1)]
    return funcs


# ------------------------------------------------------------------------------------------
# Data and driving


def make_data(rng, rows, n_keys, dtype, null_frac=0.2, skew=True):
    if skew:
        keys = (rng.zipf(1.3, rows) - 1) % n_keys
    else:
        keys = rng.integers(0, n_keys, rows)
    # Dense slots in order of first appearance, as the engine's hash table hands them out.
    _, first = np.unique(keys, return_index=True)
    order = np.argsort(first)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    slots = rank[np.searchsorted(np.unique(keys), keys)].astype(np.int32)
    if dtype == np.int64:
        x = rng.integers(-1000, 1000, rows).astype(np.int64)
    else:
        x = np.round(rng.uniform(-100, 100, rows), 2)
    valid = rng.random(rows) >= null_frac
    return keys.astype(np.int64), slots, x, valid


def random_batches(rng, rows):
    cuts = np.sort(rng.integers(0, rows + 1, max(1, rows // 200)))
    bounds = [0, *cuts.tolist(), rows]
    return list(zip(bounds[:-1], bounds[1:]))


def read_only(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def run_window(n, funcs, dtypes, slots, args, batches):
    """Feed ``slots``/``args`` through one RowsWindow in batches; concatenate each output."""
    w = RowsWindow(n, funcs, dtypes)
    outs = [([], []) for _ in funcs]
    for lo, hi in batches:
        batch_args = []
        for values, valid in args:
            batch_args.append((read_only(values[lo:hi]),
                               None if valid is None else read_only(valid[lo:hi])))
        res = w.process(read_only(slots[lo:hi]), batch_args)
        assert len(res) == len(funcs)
        for (vals, oks), (v, ok), dt in zip(outs, res, w.result_dtypes()):
            assert v.dtype == dt and ok.dtype == np.bool_ and len(v) == len(ok) == hi - lo
            vals.append(v)
            oks.append(ok)
    return [(np.concatenate(v), np.concatenate(ok)) for v, ok in outs]


# ------------------------------------------------------------------------------------------
# Oracles

_SQL = {"SUM": "sum", "AVG": "avg", "MIN": "min", "MAX": "max", "COUNT": "count",
        "STDDEV": "stddev_samp", "STDDEV_POP": "stddev_pop", "VARIANCE": "var_samp",
        "VAR_POP": "var_pop", "FIRST_VALUE": "first_value", "LAST_VALUE": "last_value"}


def duckdb_window(n, funcs, keys, x, valid, dtype):
    table = pa.table({"seq": np.arange(len(keys)), "k": keys,
                      "x": pa.array(x, mask=~valid)})
    frame = f"PARTITION BY k ORDER BY seq ROWS BETWEEN {n - 1} PRECEDING AND CURRENT ROW"
    cols = []
    for name, _, off in funcs:
        if name == "COUNT_STAR":
            cols.append(f"count(*) OVER ({frame})")
        elif name == "ROW_NUMBER":
            cols.append("row_number() OVER (PARTITION BY k ORDER BY seq)")
        elif name == "LAG":
            cols.append(f"lag(x, {off}) OVER (PARTITION BY k ORDER BY seq)")
        elif name == "SUM" and dtype == np.int64:
            cols.append(f"(sum(x) OVER ({frame}))::BIGINT")
        else:
            cols.append(f"{_SQL[name]}(x) OVER ({frame})")
    sql = "SELECT " + ", ".join(f"{c} AS c{i}" for i, c in enumerate(cols)) + \
        " FROM tbl ORDER BY seq"
    con = duckdb.connect()
    con.register("tbl", table)
    res = con.sql(sql).to_arrow_table()
    out = []
    for i in range(len(cols)):
        col = res.column(f"c{i}")
        ok = ~col.is_null().to_numpy(zero_copy_only=False)
        vals = col.fill_null(0).to_numpy(zero_copy_only=False)
        out.append((vals, ok))
    return out


def _fsum(vals):
    nan = any(v != v for v in vals)
    pinf = any(v == math.inf for v in vals)
    ninf = any(v == -math.inf for v in vals)
    if nan or (pinf and ninf):
        return math.nan
    if pinf or ninf:
        return math.inf if pinf else -math.inf
    return math.fsum(vals)


def _order_key(v):
    return (isinstance(v, float) and v != v, v if v == v else 0)


def reference_window(n, funcs, slots, x, valid):
    """Pure Python: one deque(maxlen=n) of values (None for NULL) per slot."""
    bufs, counts = {}, {}
    out = [([], []) for _ in funcs]
    is_int = x.dtype == np.int64
    for s, v, ok in zip(slots.tolist(), x.tolist(), valid.tolist()):
        buf = bufs.setdefault(s, deque(maxlen=n))
        buf.append(v if ok else None)
        counts[s] = counts.get(s, 0) + 1
        vals = [u for u in buf if u is not None]
        finite = all(math.isfinite(u) for u in vals)
        for (name, _, off), (res, oks) in zip(funcs, out):
            r = None
            if name == "SUM" and vals:
                r = sum(vals) if is_int else _fsum(vals)
            elif name == "AVG" and vals:
                r = (sum(vals) if is_int else _fsum(vals)) / len(vals)
            elif name == "MIN" and vals:
                r = min(vals, key=_order_key)
            elif name == "MAX" and vals:
                r = max(vals, key=_order_key)
            elif name == "COUNT":
                r = len(vals)
            elif name == "COUNT_STAR":
                r = len(buf)
            elif name == "ROW_NUMBER":
                r = counts[s]
            elif name in ("VARIANCE", "STDDEV") and len(vals) >= 2:
                r = statistics.variance(vals) if finite else math.nan
                r = math.sqrt(r) if name == "STDDEV" else r
            elif name in ("VAR_POP", "STDDEV_POP") and vals:
                # DuckDB: one value has population variance 0, even NaN or inf.
                r = 0.0 if len(vals) == 1 else statistics.pvariance(vals) if finite else math.nan
                r = math.sqrt(r) if name == "STDDEV_POP" else r
            elif name == "FIRST_VALUE":
                r = buf[0]
            elif name == "LAST_VALUE":
                r = buf[-1]
            elif name == "LAG" and len(buf) > off:
                r = buf[-1 - off]
            res.append(0 if r is None else r)
            oks.append(r is not None)
    return [(np.array(v), np.array(ok, dtype=bool)) for v, ok in out]


# ------------------------------------------------------------------------------------------
# Comparison


def assert_same(funcs, got, want, x, n, label=""):
    finite = np.abs(x[np.isfinite(x)]) if x.dtype == np.float64 else np.abs(x)
    scale = float(finite.max()) if finite.size else 1.0
    for (name, _, off), (gv, gok), (wv, wok) in zip(funcs, got, want):
        what = f"{label} {name}({off}) n={n}"
        np.testing.assert_array_equal(gok, wok, err_msg=f"validity of {what}")
        g = gv[gok]
        w = np.asarray(wv)[wok]
        if name in ("STDDEV", "STDDEV_POP"):
            # Compare variances: sqrt magnifies the absolute error of a tiny variance.
            g, w = g.astype(float) ** 2, w.astype(float) ** 2
        if g.dtype.kind in "iu" and name not in FLOAT_RESULT:
            np.testing.assert_array_equal(g, w.astype(g.dtype), err_msg=what)
            continue
        if name in ("SUM", "AVG"):
            atol = 1e-10 * scale * (n if name == "SUM" else 1)
        elif name in FLOAT_RESULT:
            atol = 1e-9 * scale * scale
        else:
            atol = 0.0
        np.testing.assert_allclose(g.astype(float), w.astype(float), rtol=1e-9, atol=atol,
                                   equal_nan=True, err_msg=what)


# ------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 100])
def test_matches_duckdb(n, dtype):
    rng = np.random.default_rng(1000 * n + (dtype == np.float64))
    keys, slots, x, valid = make_data(rng, 4000, 25, dtype)
    funcs = all_functions(n)
    got = run_window(n, funcs, [dtype], slots, [(x, valid.view(np.uint8))],
                     random_batches(rng, len(x)))
    want = duckdb_window(n, funcs, keys, x, valid, dtype)
    assert_same(funcs, got, want, x, n, "duckdb")


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
@pytest.mark.parametrize("n,n_keys", [(1, 50), (2, 3000), (3, 3000), (100, 300), (100, 1)])
def test_matches_reference(n, n_keys, dtype):
    rng = np.random.default_rng(7 * n + n_keys)
    keys, slots, x, valid = make_data(rng, 6000, n_keys, dtype, skew=n_keys < 1000)
    funcs = all_functions(n)
    got = run_window(n, funcs, [dtype], slots, [(x, valid)], random_batches(rng, len(x)))
    want = reference_window(n, funcs, slots, x, valid)
    assert_same(funcs, got, want, x, n, "reference")


def test_several_arguments_mixed_dtypes():
    rng = np.random.default_rng(5)
    keys, slots, xi, vi = make_data(rng, 3000, 10, np.int64)
    _, _, xf, vf = make_data(rng, 3000, 10, np.float64, null_frac=0.0)
    n = 7
    funcs = [("AVG", 1, 0), ("SUM", 0, 0), ("MIN", 1, 0), ("LAG", 1, 3), ("MAX", 0, 0),
             ("FIRST_VALUE", 0, 0), ("COUNT_STAR", -1, 0), ("VARIANCE", 1, 0), ("COUNT", 0, 0),
             ("AVG", 1, 0), ("LAG", 0, 6)]
    got = run_window(n, funcs, [np.int64, np.float64], slots, [(xi, vi), (xf, None)],
                     random_batches(rng, 3000))
    for j, (f, a, off) in enumerate(funcs):
        x, v = (xi, vi) if a == 0 else (xf, np.ones(3000, bool))
        if a == -1:
            x, v = xi, vi
        want = reference_window(n, [(f, 0, off)], slots, x, v)
        assert_same([(f, 0, off)], [got[j]], want, x, n, "mixed")


def test_no_partition_by_single_slot():
    rng = np.random.default_rng(11)
    x = rng.normal(50, 10, 5000)
    valid = rng.random(5000) > 0.1
    slots = np.zeros(5000, np.int32)
    funcs = all_functions(30)
    got = run_window(30, funcs, [np.float64], slots, [(x, valid)], random_batches(rng, 5000))
    want = duckdb_window(30, funcs, np.zeros(5000, np.int64), x, valid, np.float64)
    assert_same(funcs, got, want, x, 30, "single slot")


def test_slots_appear_late_and_sparse():
    # New, large and non-contiguous slot ids in later batches grow the state and keep the old.
    rng = np.random.default_rng(3)
    n = 4
    funcs = all_functions(n)
    parts = [rng.integers(0, 3, 500), rng.integers(0, 40, 500) * 25, rng.integers(0, 5, 500)]
    slots = np.concatenate(parts).astype(np.int32)
    x = rng.integers(-50, 50, len(slots))
    valid = rng.random(len(slots)) > 0.3
    got = run_window(n, funcs, [np.int64], slots, [(x, valid)], [(0, 500), (500, 1000),
                                                                   (1000, 1200), (1200, 1500)])
    want = reference_window(n, funcs, slots, x, valid)
    assert_same(funcs, got, want, x, n, "late slots")


def test_special_floats_match_duckdb():
    rng = np.random.default_rng(17)
    rows = 3000
    keys, slots, x, valid = make_data(rng, rows, 8, np.float64)
    pick = rng.random(rows)
    x[pick < 0.03] = np.nan
    x[(pick >= 0.03) & (pick < 0.05)] = np.inf
    x[(pick >= 0.05) & (pick < 0.07)] = -np.inf
    x[(pick >= 0.07) & (pick < 0.15)] = 5.0  # ties for MIN/MAX and runs of equal values
    for n in (1, 3, 10):
        funcs = all_functions(n)
        got = run_window(n, funcs, [np.float64], slots, [(x, valid)], random_batches(rng, rows))
        want = duckdb_window(n, funcs, keys, x, valid, np.float64)
        assert_same(funcs, got, want, x, n, "special floats")
        ref = reference_window(n, funcs, slots, x, valid)
        assert_same(funcs, got, ref, x, n, "special floats ref")


def test_all_null_and_all_nan_windows():
    slots = np.zeros(6, np.int32)
    x = np.array([np.nan, np.nan, 1.0, 2.0, 3.0, np.nan])
    valid = np.array([1, 1, 0, 0, 0, 1], np.uint8)
    funcs = [("MIN", 0, 0), ("MAX", 0, 0), ("SUM", 0, 0), ("COUNT", 0, 0), ("VAR_POP", 0, 0)]
    res = RowsWindow(2, funcs, [np.float64]).process(slots, [(x, valid)])
    (mn, mnv), (mx, mxv), (sm, smv), (ct, _), (vp, vpv) = res
    assert mnv.tolist() == [True, True, True, False, False, True]
    assert np.isnan(mn[:3]).all() and np.isnan(mx[:3]).all() and np.isnan(sm[:3]).all()
    assert ct.tolist() == [1, 2, 1, 0, 0, 1]
    # A single value, even NaN, has population variance 0 (DuckDB); two NaNs give NaN.
    assert vpv.tolist() == mnv.tolist() and vp[vpv].tolist()[::2] == [0.0, 0.0]
    assert np.isnan(vp[1])
    # NULL outputs carry 0, not leftovers.
    assert mn[3] == mx[3] == sm[3] == 0


def test_constant_values_have_exact_zero_variance():
    slots = np.zeros(10_000, np.int32)
    x = np.full(10_000, 0.1)
    x[:5000] = np.random.default_rng(0).normal(1e6, 1e3, 5000)
    funcs = [("STDDEV", 0, 0), ("VAR_POP", 0, 0), ("AVG", 0, 0)]
    (sd, _), (vp, _), (avg, _) = RowsWindow(50, funcs, [np.float64]).process(slots, [(x, None)])
    assert (sd[5049:] == 0).all() and (vp[5049:] == 0).all()
    np.testing.assert_allclose(avg[5049:], 0.1, rtol=1e-12)


@pytest.mark.parametrize("mean,sd", [(1000.0, None), (1e6, 1e-2)])
def test_long_stream_drift_is_bounded(mean, sd):
    # A million rows through one slot. Mixed magnitudes stress the compensated sums; a mean
    # 1e8 standard deviations from zero stresses Welford add/remove, whose drift only the
    # recomputation every n rows keeps from growing with the length of the stream.
    rng = np.random.default_rng(1)
    rows, n = 1_000_000, 100
    if sd is None:
        x = rng.normal(0, 1, rows) * 10.0 ** rng.integers(-3, 4, rows) + mean
    else:
        x = rng.normal(mean, sd, rows)
    slots = np.zeros(rows, np.int32)
    w = RowsWindow(n, [("SUM", 0, 0), ("AVG", 0, 0), ("VARIANCE", 0, 0)], [np.float64])
    for lo in range(0, rows, 65_536):
        res = w.process(slots[lo:lo + 65_536], [(x[lo:lo + 65_536], None)])
    for back in range(1, 2 * n + 2, 7):  # positions all over the block
        win = x[rows - back - n + 1:rows - back + 1]
        assert math.isclose(res[0][0][-back], math.fsum(win), rel_tol=1e-13, abs_tol=1e-9)
        assert math.isclose(res[1][0][-back], math.fsum(win) / n, rel_tol=1e-13)
        assert math.isclose(res[2][0][-back], statistics.variance(win.tolist()), rel_tol=2e-7)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_min_max_extreme_int64_and_null_runs(n):
    # INT64_MAX / INT64_MIN are real values here, not "empty" markers; NULL runs longer than
    # the buffer leave it without a value.
    rng = np.random.default_rng(n)
    hi, lo = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    x = rng.choice(np.array([hi, lo, 0, 7, -7, hi - 1], np.int64), 2000)
    valid = rng.random(2000) < 0.5
    valid[100:120] = False
    slots = rng.integers(0, 3, 2000).astype(np.int32)
    funcs = [("MIN", 0, 0), ("MAX", 0, 0), ("FIRST_VALUE", 0, 0), ("COUNT", 0, 0)]
    got = run_window(n, funcs, [np.int64], slots, [(x, valid)], random_batches(rng, 2000))
    want = reference_window(n, funcs, slots, x, valid)
    assert_same(funcs, got, want, x.astype(np.float64), n, "extreme int64")


def test_int64_sum_wraps_back_into_range():
    # The running total leaves int64 when a large value enters before another leaves; the
    # window sum is still exact whenever it fits.
    big = 2**62
    x = np.array([big, big - 1, -big, big, -big, 5], np.int64)
    slots = np.zeros(len(x), np.int32)
    (s, ok), = RowsWindow(2, [("SUM", 0, 0)], [np.int64]).process(slots, [(x, None)])
    assert s.tolist() == [big, 2 * big - 1, -1, 0, 0, -big + 5]
    assert ok.all()


def test_bool_validity_and_none():
    slots = np.array([0, 0, 1, 0], np.int32)
    x = np.array([1, 2, 3, 4], np.int64)
    funcs = [("SUM", 0, 0), ("LAST_VALUE", 0, 0), ("LAG", 0, 1)]
    w1, w2 = RowsWindow(2, funcs, [np.int64]), RowsWindow(2, funcs, [np.int64])
    r1 = w1.process(slots, [(x, np.array([True, False, True, True]))])
    r2 = w2.process(slots, [(x, np.array([1, 0, 1, 1], np.uint8))])
    for (a, av), (b, bv) in zip(r1, r2):
        assert a.tolist() == b.tolist() and av.tolist() == bv.tolist()
    assert r1[0][0].tolist() == [1, 1, 3, 4]
    assert r1[1][1].tolist() == [True, False, True, True]
    # LAG of a NULL value is NULL, carried as 0.
    assert r1[2][1].tolist() == [False, True, False, False]
    assert r1[2][0].tolist() == [0, 1, 0, 0]
    (s, _), _, _ = RowsWindow(2, funcs, [np.int64]).process(slots, [(x, None)])
    assert s.tolist() == [1, 3, 3, 6]


def test_empty_batches_and_no_functions():
    w = RowsWindow(3, [("AVG", 0, 0), ("ROW_NUMBER", -1, 0)], [np.float64])
    res = w.process(np.empty(0, np.int32), [(np.empty(0), None)])
    assert [len(v) for v, _ in res] == [0, 0]
    res = w.process(np.zeros(2, np.int32), [(np.array([1.0, 3.0]), None)])
    assert res[0][0].tolist() == [1.0, 2.0] and res[1][0].tolist() == [1, 2]
    assert RowsWindow(3, [], []).process(np.zeros(4, np.int32), []) == []
    rn = RowsWindow(3, [("ROW_NUMBER", -1, 0), ("COUNT_STAR", -1, 0)], [])
    rn.process(np.zeros(4, np.int32), [])
    (r, _), (c, _) = rn.process(np.array([0, 1, 0], np.int32), [])
    assert r.tolist() == [5, 1, 6] and c.tolist() == [3, 1, 3]


def test_result_dtypes():
    funcs = [(f, 0, 0) for f in ARG_FUNCS] + [("COUNT_STAR", -1, 0), ("ROW_NUMBER", -1, 0),
                                              ("LAG", 0, 1)]
    for dt in (np.int64, np.float64):
        got = RowsWindow(2, funcs, [dt]).result_dtypes()
        want = {"AVG": np.float64, "STDDEV": np.float64, "STDDEV_POP": np.float64,
                "VARIANCE": np.float64, "VAR_POP": np.float64, "COUNT": np.int64,
                "COUNT_STAR": np.int64, "ROW_NUMBER": np.int64}
        assert got == [np.dtype(want.get(f, dt)) for f, _, _ in funcs]


def test_rejects_bad_specs_and_inputs():
    with pytest.raises(ValueError):
        RowsWindow(0, [], [])
    with pytest.raises(ValueError, match="unsupported"):
        RowsWindow(3, [("LEAD", 0, 1)], [np.int64])
    with pytest.raises(ValueError, match="LAG"):
        RowsWindow(3, [("LAG", 0, 3)], [np.int64])
    with pytest.raises(ValueError, match="LAG"):
        RowsWindow(3, [("LAG", 0, 0)], [np.int64])
    with pytest.raises(ValueError, match="argument index"):
        RowsWindow(3, [("SUM", 1, 0)], [np.int64])
    with pytest.raises(TypeError):
        RowsWindow(3, [("SUM", 0, 0)], [np.int32])
    w = RowsWindow(3, [("SUM", 0, 0), ("ROW_NUMBER", -1, 0)], [np.int64])
    x = np.arange(4, dtype=np.int64)
    with pytest.raises(TypeError):
        w.process(np.zeros(4, np.int32), [(x.astype(np.float64), None)])
    with pytest.raises(ValueError):
        w.process(np.zeros(4, np.int32), [(x[:3], None)])
    with pytest.raises(ValueError):
        w.process(np.zeros(4, np.int32), [])
    with pytest.raises(ValueError):
        w.process(np.array([0, -1, 0, 0], np.int32), [(x, None)])
    with pytest.raises(ValueError):
        w.process(np.zeros(2, np.int32), [(np.arange(4, dtype=np.int64)[::2], None)])
    # A rejected batch leaves the state untouched.
    (_, _), (rn, _) = w.process(np.zeros(4, np.int32), [(x, None)])
    assert rn.tolist() == [1, 2, 3, 4]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.lists(
        st.tuples(st.integers(0, 4),
                  st.one_of(st.none(), st.integers(-3, 3).map(float),
                            st.sampled_from([math.nan, math.inf, -math.inf, 0.5]))),
        max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=5),
)
def test_property_against_reference(n, data, cuts):
    slots = np.array([s for s, _ in data], np.int32)
    x = np.array([0.0 if v is None else v for _, v in data], np.float64)
    valid = np.array([v is not None for _, v in data], bool)
    bounds = sorted({0, len(data), *[min(c, len(data)) for c in cuts]})
    batches = list(zip(bounds[:-1], bounds[1:])) or [(0, 0)]
    funcs = all_functions(n)
    got = run_window(n, funcs, [np.float64], slots, [(x, valid)], batches)
    want = reference_window(n, funcs, slots, x, valid)
    assert_same(funcs, got, want, x, n, "property")
