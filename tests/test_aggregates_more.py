"""Text MIN/MAX/FIRST/LAST/COUNT DISTINCT, ``agg(...) FILTER (WHERE ...)`` and the aggregates of
docs/SQL.md §5 beyond the classic ones (COUNT_IF, BOOL_AND/BOOL_OR, ARG_MIN/ARG_MAX, CORR,
COVAR_POP/COVAR_SAMP, REGR_SLOPE/REGR_INTERCEPT/REGR_R2, PERCENTILE_CONT/PERCENTILE_DISC in both
forms, APPROX_QUANTILE, STRING_AGG/LISTAGG) against DuckDB: in GROUP BY, in TUMBLING,
SLIDING and SESSION windows and globally, at 1 and 2 partitions (2: the V2 job server, where a
global aggregate is two-phase: partial states merged), with batch splits, and through an engine
snapshot/restore.

Data: seeded, with NULLs everywhere, empty strings and non-ASCII text (byte order is not code
order), NaN and -0.0, one-row groups and a group whose values are all NULL.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import OutOfRangeError
from reference import as_tuples, assert_rows_equal, duck, last_per_key, split_batches

N = 1200
SPLIT = [1, 17, 200, 450]
GAP = 4_000


def _table(n: int = N, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)

    def nulls(frac=0.12):
        return rng.random(n) < frac

    keys = np.array(["a", "b", "c", "d"])[np.where(rng.random(n) < 0.4, 0, rng.integers(0, 4, n))]
    keys = keys.astype(object)
    keys[-3:] = ["solo1", "solo2", "allnull"]  # one-row groups; 'allnull' also gets NULL values
    keys[rng.random(n) < 0.01] = "allnull"
    alln = keys == "allnull"
    words = np.array(["", "apple", "Apple", "é", "e", "zz", "Z", "ä", "a b", "αβ", "apple pie"])
    s = words[rng.integers(0, len(words), n)]
    xi = rng.integers(-40, 60, n).astype(np.int64)
    xf = np.round(rng.normal(5.0, 20.0, n), 1)
    xf[rng.random(n) < 0.04] = np.nan
    xf[rng.random(n) < 0.03] = -0.0
    xf[rng.random(n) < 0.08] = 2.5  # ties for ARG_MIN/ARG_MAX
    yf = np.round(xf * 0.5 + rng.normal(0, 3.0, n), 2)
    b = rng.random(n) < 0.6
    d = rng.integers(-10_000, 10_000, n)
    ts = 1_700_000_000_000 + np.cumsum(rng.integers(0, 1500, n)).astype(np.int64)
    return pa.table({
        "seq": pa.array(np.arange(n, dtype=np.int64)),
        "k": pa.array(keys.tolist(), pa.string(), mask=nulls(0.05) & ~alln),
        "s": pa.array(s.tolist(), pa.string(), mask=nulls() | alln),
        "xi": pa.array(xi, pa.int64(), mask=nulls() | alln),
        "xf": pa.array(xf, pa.float64(), mask=nulls() | alln),
        "yf": pa.array(yf, pa.float64(), mask=nulls() | alln),
        "b": pa.array(b, pa.bool_(), mask=nulls() | alln),
        "d": pa.array([None if m else v for v, m in zip(d.tolist(), nulls() | alln)],
                      pa.decimal128(9, 2)),
        "ts": pa.array(ts),
    })


T = _table()
FLOAT_EDGES = pa.table({"k": ["a", "a", "b", "b", "c"], "y": [1.0, 1.0, 1.0, 2.0, 1.0],
                        "x": [2.0, 3.0, 2.0, 2.0, float("nan")],
                        "seq": list(range(5)), "ts": [0, 1, 2, 3, 4]})

# (velostream, DuckDB): DuckDB's first/last in arrival order, and ARG_MIN/ARG_MAX's ties to the
# earliest row, need ORDER BY seq (a window's or session's rows reach DuckDB's aggregate unordered).
AGGS = [
    ("min(s)", "min(s)"), ("max(s)", "max(s)"),
    ("first_value(s)", "first(s ORDER BY seq)"), ("last_value(s)", "last(s ORDER BY seq)"),
    ("count(DISTINCT s)", "count(DISTINCT s)"),
    ("count_if(b)", "count_if(b)"), ("count_if(xi > 10)", "count_if(xi > 10)"),
    ("bool_and(b)", "bool_and(b)"), ("bool_or(xf > 20)", "bool_or(xf > 20)"),
    ("arg_min(s, xf)", "arg_min(s, xf ORDER BY seq)"), ("arg_max(s, xf)", "arg_max(s, xf ORDER BY seq)"),
    ("arg_min(xf, s)", "arg_min(xf, s ORDER BY seq)"), ("arg_max(xi, s)", "arg_max(xi, s ORDER BY seq)"),
    ("min_by(seq, xi)", "arg_min(seq, xi ORDER BY seq)"), ("max_by(d, d)", "arg_max(d, d ORDER BY seq)"),
    ("corr(yf, xf)", "corr(yf, xf)"), ("covar_pop(yf, xi)", "covar_pop(yf, xi)"),
    ("covar_samp(xi, d)", "covar_samp(xi, d)"), ("regr_slope(yf, xf)", "regr_slope(yf, xf)"),
    ("regr_intercept(yf, xi)", "regr_intercept(yf, xi)"), ("regr_r2(yf, xi)", "regr_r2(yf, xi)"),
    ("percentile_cont(xf, 0.3)", "quantile_cont(xf, 0.3)"),
    ("percentile_disc(0.75) WITHIN GROUP (ORDER BY xi)", "percentile_disc(0.75) WITHIN GROUP (ORDER BY xi)"),
    ("percentile_cont(0.9) WITHIN GROUP (ORDER BY yf ASC)", "quantile_cont(yf, 0.9)"),
    ("quantile_disc(d, 0.1)", "quantile_disc(d, 0.1)"), ("quantile_cont(xi, 0)", "quantile_cont(xi, 0)"),
    ("approx_quantile(xf, 0.5)", "quantile_disc(xf, 0.5)"), ("percentile_disc(xf, 1)", "quantile_disc(xf, 1.0)"),
    ("string_agg(s, ' | ')", "string_agg(s, ' | ' ORDER BY seq)"), ("listagg(s)", "string_agg(s, ',' ORDER BY seq)"),
    ("group_concat(s, '') FILTER (WHERE xi > 0)", "string_agg(s, '' ORDER BY seq) FILTER (WHERE xi > 0)"),
    # FILTER on every kind of aggregate, NULL-picking FIRST/LAST and COUNT(*) included
    ("count(*) FILTER (WHERE xi > 0)", "count(*) FILTER (WHERE xi > 0)"),
    ("count(xf) FILTER (WHERE s >= 'a')", "count(xf) FILTER (WHERE s >= 'a')"),
    ("sum(xi) FILTER (WHERE b)", "sum(xi) FILTER (WHERE b)"),
    ("avg(xf) FILTER (WHERE NOT b)", "avg(xf) FILTER (WHERE NOT b)"),
    ("min(s) FILTER (WHERE xi < 0)", "min(s) FILTER (WHERE xi < 0)"),
    ("max(xf) FILTER (WHERE s <> '')", "max(xf) FILTER (WHERE s <> '')"),
    ("first_value(xi) FILTER (WHERE xf > 0)", "first(xi ORDER BY seq) FILTER (WHERE xf > 0)"),
    ("last_value(s) FILTER (WHERE xi % 3 = 0)", "last(s ORDER BY seq) FILTER (WHERE xi % 3 = 0)"),
    ("count(DISTINCT s) FILTER (WHERE b)", "count(DISTINCT s) FILTER (WHERE b)"),
    ("stddev(xf) FILTER (WHERE xi > 5)", "stddev_samp(xf) FILTER (WHERE xi > 5)"),
    ("median(xi) FILTER (WHERE b)", "median(xi) FILTER (WHERE b)"),
    ("count_if(b) FILTER (WHERE xi > 0)", "count_if(b) FILTER (WHERE xi > 0)"),
    ("corr(yf, xf) FILTER (WHERE b)", "corr(yf, xf) FILTER (WHERE b)"),
    ("arg_max(s, xi) FILTER (WHERE xf < 10)", "arg_max(s, xi ORDER BY seq) FILTER (WHERE xf < 10)"),
    ("percentile_cont(0.25) WITHIN GROUP (ORDER BY xi) FILTER (WHERE b)",
     "quantile_cont(xi, 0.25) FILTER (WHERE b)"),
]
OURS = ", ".join(f"{a} AS a{i}" for i, (a, _) in enumerate(AGGS))
THEIRS = ", ".join(d for _, d in AGGS)


def run(sql: str, table: pa.Table = T, partitions: int = 1, seed: int = 0) -> list[tuple]:
    batches = split_batches(table, SPLIT, seed=seed)
    return as_tuples(vs.query(sql, {"t": batches}, partitions=partitions).to_pylist())


def close(got, want):
    # reference.assert_rows_equal compares floats to 1e-9 relative: CORR/REGR/COVAR sum in another
    # (equally exact) order than DuckDB, well within that
    assert_rows_equal(got, want)


@pytest.mark.parametrize("partitions", [1, 2])
def test_group_by(partitions):
    got = run(f"SELECT k, {OURS} FROM t GROUP BY k EMIT FINAL", partitions=partitions)
    assert any(r[0] == "allnull" for r in got) and any(r[0] == "solo1" for r in got)
    close(got, duck(f"SELECT k, {THEIRS} FROM t GROUP BY k", t=T))


@pytest.mark.parametrize("partitions", [1, 2])
def test_group_by_changes_end_in_final_rows(partitions):
    """EMIT CHANGES: the last change row of each group is its final row."""
    got = run(f"SELECT k, {OURS} FROM t GROUP BY k EMIT CHANGES", partitions=partitions)
    assert len(got) == N
    close(last_per_key(got, [0]), duck(f"SELECT k, {THEIRS} FROM t GROUP BY k", t=T))


@pytest.mark.parametrize("partitions", [1, 2])
def test_global_two_phase(partitions):
    got = run(f"SELECT {OURS} FROM t EMIT FINAL", partitions=partitions, seed=3)
    close(got, duck(f"SELECT {THEIRS} FROM t", t=T))
    assert "two_phase" in vs.explain(f"SELECT {OURS} FROM t EMIT FINAL", {"t": T})


@pytest.mark.parametrize("partitions", [1, 2])
def test_global_over_no_rows(partitions):
    got = run(f"SELECT {OURS} FROM t WHERE xi > 1000 EMIT FINAL", partitions=partitions)
    close(got, duck(f"SELECT {THEIRS} FROM t WHERE xi > 1000", t=T))


@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("key", ["k", None])
def test_tumbling(partitions, key):
    size = 20_000
    kcol = f"{key}, " if key else ""
    got = run(f"SELECT {kcol}_WINDOW_START AS ws, {OURS} FROM t GROUP BY {key or ''} "
              f"WINDOW TUMBLING(ts, INTERVAL '20' SECOND) EMIT FINAL".replace("GROUP BY  ", ""),
              partitions=partitions, seed=1)
    want = duck(f"SELECT {kcol}ws, {THEIRS} FROM (SELECT *, (ts // {size}) * {size} AS ws FROM t) "
                f"GROUP BY {kcol}ws", t=T)
    assert len(want) > 20
    close(got, want)


@pytest.mark.parametrize("partitions", [1, 2])
def test_tumbling_changes_end_in_final_rows(partitions):
    sql = (f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k "
           f"WINDOW TUMBLING(ts, INTERVAL '20' SECOND) EMIT ")
    changes = run(sql + "CHANGES", partitions=partitions, seed=5)
    assert len(changes) == N
    assert_rows_equal(last_per_key(changes, [0, 1]), run(sql + "FINAL", partitions=partitions))


@pytest.mark.parametrize("partitions", [1, 2])
def test_sliding(partitions):
    size, adv = 30_000, 10_000
    got = run(f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k "
              f"WINDOW SLIDING(ts, 30s, 10s) EMIT FINAL", partitions=partitions, seed=2)
    want = duck(f"SELECT k, ws, {THEIRS} FROM (SELECT t.*, w.ws FROM t, "
                f"(SELECT DISTINCT (ts // {adv}) * {adv} - o AS ws FROM t, "
                f"(SELECT unnest([0, {adv}, {2 * adv}]) AS o)) w "
                f"WHERE t.ts >= w.ws AND t.ts < w.ws + {size}) GROUP BY k, ws", t=T)
    close(got, want)


@pytest.mark.parametrize("partitions", [1, 2])
def test_session(partitions):
    got = run(f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k "
              f"WINDOW SESSION(ts, {GAP}ms) EMIT FINAL", partitions=partitions, seed=4)
    sessions = (f"SELECT *, min(ts) OVER (PARTITION BY k, sid) AS ws FROM (SELECT *, "
                f"sum(CASE WHEN ts - prev >= {GAP} THEN 1 ELSE 0 END) OVER (PARTITION BY k "
                f"ORDER BY seq) AS sid FROM (SELECT *, lag(ts, 1, -{GAP}) OVER (PARTITION BY k "
                f"ORDER BY seq) AS prev FROM t))")
    want = duck(f"SELECT k, ws, {THEIRS} FROM ({sessions}) GROUP BY k, ws", t=T)
    assert len(want) > 30
    close(got, want)


@pytest.mark.parametrize("partitions", [1, 2])
def test_float_edges(partitions):
    """One-row groups, zero variances, NaN: DuckDB's NULL and NaN results exactly."""
    aggs = ["corr(y, x)", "covar_pop(y, x)", "covar_samp(y, x)", "regr_slope(y, x)",
            "regr_intercept(y, x)", "regr_r2(y, x)", "arg_min(y, x)", "arg_max(k, x)"]
    sql = f"SELECT k, {', '.join(aggs)} FROM t GROUP BY k EMIT FINAL"
    got = run(sql, FLOAT_EDGES, partitions=partitions)
    close(got, duck(sql.replace(" EMIT FINAL", ""), t=FLOAT_EDGES))


def test_text_order_is_bytes_not_codes():
    """Codes follow first appearance; MIN/MAX must follow the strings (UTF-8 bytes, as DuckDB)."""
    t = pa.table({"s": ["zz", "é", "", "Z", "ab", "a"]})
    got = as_tuples(vs.query("SELECT min(s), max(s), arg_max(s, s) FROM t EMIT FINAL",
                             {"t": t}).to_pylist())
    assert got == as_tuples(duck("SELECT min(s), max(s), arg_max(s, s) FROM t", t=t)) == [("", "é", "é")]


SNAP_SQL = [
    f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k WINDOW TUMBLING(ts, 20s) EMIT FINAL",
    f"SELECT k, {OURS} FROM t GROUP BY k EMIT FINAL",
    f"SELECT {OURS} FROM t EMIT FINAL",
    f"SELECT k, {OURS} FROM t GROUP BY k WINDOW SESSION(ts, {GAP}ms) EMIT FINAL",
]


@pytest.mark.parametrize("sql", SNAP_SQL, ids=["tumbling", "group_by", "global", "session"])
def test_snapshot_restore_round_trip(sql):
    """State through a snapshot into an engine with another string dictionary (every code
    differs) answers exactly as the uninterrupted engine."""
    def rows(results):
        return [r for res in results for r in as_tuples(res.to_pylist())]

    cut = N // 2
    first, rest = T.slice(0, cut), T.slice(cut)
    ref = vs.Engine(sql)
    want = rows([ref.push("t", first), ref.push("t", rest), ref.flush()])
    eng = vs.Engine(sql)
    got = rows([eng.push("t", first)])
    blob = eng.snapshot()
    fresh = vs.Engine(sql)
    for s in ("zzz", "apple", "", "é", "Z", "k"):
        fresh.strings.code(s)
    fresh.restore(blob)
    again = vs.Engine(sql)  # and a snapshot of a restored engine restores too
    again.restore(fresh.snapshot())
    got += rows([again.push("t", rest), again.flush()])
    assert len(want) > 0
    assert_rows_equal(got, want)


@pytest.mark.parametrize("sql,message", [
    ("SELECT count_if(xi) FROM t", "COUNT_IF needs a boolean"),
    ("SELECT bool_and(s) FROM t", "BOOL_AND needs a boolean"),
    ("SELECT corr(s, xf) FROM t", "CORR needs numbers"),
    ("SELECT arg_min(s) FROM t", "ARG_MIN takes exactly two arguments"),
    ("SELECT upper(s) FILTER (WHERE b) FROM t", "FILTER (WHERE ...) applies to aggregates only"),
    ("SELECT percentile_cont(xf, 1.5) FROM t", "fraction must be between 0 and 1, got 1.5"),
    ("SELECT string_agg(xi, ',') FROM t", "STRING_AGG needs text, found INT64"),
    ("SELECT listagg(s, s) FROM t", "LISTAGG's separator must be a constant string"),
    ("SELECT percentile_disc(xf, xi) FROM t", "fraction must be a constant number"),
    ("SELECT percentile_cont(s, 0.5) FROM t", "PERCENTILE_CONT needs a number"),
    ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY xf DESC) FROM t", "DESC) is not supported"),
    ("SELECT percentile_cont(0.5, 0.1) WITHIN GROUP (ORDER BY xf) FROM t", "takes one argument"),
    ("SELECT sum(xi) FILTER (WHERE xi) FROM t", "expected a boolean condition"),
    ("SELECT sum(xi) FILTER (WHERE count(*) > 1) FROM t", "aggregates are not allowed in FILTER"),
    ("SELECT sum(xi) FILTER (WHERE b) OVER (ROWS WINDOW BUFFER 3 ROWS) FROM t",
     "FILTER (WHERE ...) is not supported on analytic functions"),
])
def test_errors(sql, message):
    with pytest.raises(vs.SqlError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        vs.query(sql, {"t": T})


def test_quantile_of_integers_beyond_double_precision_is_a_bad_record():
    """The quantile kernel holds doubles: an integer beyond 2**53 is refused, not rounded."""
    t = pa.table({"x": [1, 2**60, 3]})
    with pytest.raises(OutOfRangeError, match="within"):
        vs.query("SELECT percentile_disc(x, 0.5) FROM t EMIT FINAL", {"t": t})
    got = vs.query("SELECT percentile_disc(x, 0.5) AS p FROM t EMIT FINAL",
                   {"t": pa.table({"x": [2**53, -2**53, 7]})}).to_pylist()
    assert got == [{"p": 7}]
    # PERCENTILE_CONT is a DOUBLE anyway, as DuckDB's
    got = vs.query("SELECT percentile_cont(x, 0.5) AS p FROM t EMIT FINAL", {"t": t}).to_pylist()
    assert got == [{"p": 3.0}]


def test_explain_shows_filter_and_second_argument():
    text = vs.explain("SELECT k, count(*) FILTER (WHERE b) AS c, corr(yf, xf) FROM t GROUP BY k",
                      {"t": T})
    assert "COUNT_STAR(*) FILTER (WHERE b)" in text
    assert "CORR(yf, xf)" in text


# ------------------------------------------------------------------------- the kernels alone


def _kernel_cases(rng, strings):
    """(name, factory, values, valid) per new kernel: random rows with NULLs, NaN and ties."""
    from velostream._core import aggregate as A

    n = 400
    words = pa.array(["", "b", "a", "é", "Z", "ab"])
    codes = strings.encode_arrow(words)[0].astype(np.int64)
    text = codes[rng.integers(0, len(codes), n)]
    ints = rng.integers(-5, 5, n).astype(np.int64)
    floats = np.round(rng.normal(0, 3, n), 1)
    floats[rng.random(n) < 0.05] = np.nan
    finite = np.where(np.isnan(floats), 0.0, floats)  # one NaN would make every CORR NaN
    pairs_f = np.ascontiguousarray(np.stack([finite * 2 + rng.normal(0, 1, n), finite], axis=1))
    pairs_t = np.ascontiguousarray(np.stack([ints, text], axis=1))
    pairs_i = np.ascontiguousarray(np.stack([floats.view(np.int64), ints], axis=1))
    valid = rng.random(n) > 0.15
    return [
        ("text_min", lambda: A.TextMin(strings), text, valid),
        ("text_max", lambda: A.TextMax(strings), text, valid),
        ("corr", lambda: A.Covariance("CORR"), pairs_f, valid),
        ("regr_r2", lambda: A.Covariance("REGR_R2"), pairs_f, valid),
        ("covar_samp", lambda: A.Covariance("COVAR_SAMP"), pairs_f, valid),
        ("arg_min_text", lambda: A.ArgMin(np.int64, "text", strings), pairs_t, valid),
        ("arg_max_int", lambda: A.ArgMax(np.float64, "int"), pairs_i, valid),
        ("percentile_cont", lambda: A.Median(np.float64, 0.3), floats, valid),
        ("percentile_disc", lambda: A.Median(np.int64, 0.9, True), ints, valid),
        ("string_agg", lambda: A.StringAgg(strings, "/"), text, valid),
    ]


@pytest.mark.parametrize("case", range(10))
def test_kernel_split_merge_and_state_round_trip(case):
    """Rows split over two objects and merged (two-phase), or exported and imported into other
    slots, answer exactly as one object that saw every row (arrival numbers given, as jobs do)."""
    from velostream.batch import StringDict

    rng = np.random.default_rng(case)
    strings = StringDict()
    name, make, values, valid = _kernel_cases(rng, strings)[case]
    n = len(values)
    slots = rng.integers(0, 3, n).astype(np.int32)
    seq = np.arange(n, dtype=np.int64)
    whole = make()
    whole.ensure_capacity(3)
    whole.update(slots, values, valid, seq)
    parts = [make(), make()]
    side = rng.random(n) < 0.5  # rows of one slot land in both partitions, interleaved
    for p, rows in zip(parts, (side, ~side)):
        p.ensure_capacity(3)
        p.update(slots[rows], np.ascontiguousarray(values[rows]), valid[rows], seq[rows])
    ids = np.arange(3, dtype=np.int32)
    merged = make()
    merged.ensure_capacity(3)
    merged.merge(ids, parts[1], ids)
    merged.merge(ids, parts[0], ids)
    moved = make()
    moved.ensure_capacity(5)
    moved.import_state(ids + 2, whole.export_state(ids))

    def res(agg, s):
        v, ok = agg.result(s)
        return [tuple(None if not o else (float(x) if agg.result_dtype == np.float64 else int(x))
                      for x, o in zip(v, ok))]

    want = res(whole, ids)
    assert any(w is not None for w in want[0]), name
    assert_rows_equal(res(merged, ids), want, what=name)  # floats: to 1e-9 (Chan vs Welford)
    assert_rows_equal(res(moved, ids + 2), want, what=name)
    a, b = whole.export_state(ids), moved.export_state(ids + 2)  # the state, bit for bit
    assert a.keys() == b.keys() and all(np.array_equal(a[k].view(np.uint8), b[k].view(np.uint8))
                                        for k in a), name


def test_a_job_through_velostream_run(tmp_path):
    """A sample through the CLI: the new aggregates in a TUMBLING window; a row whose integer a
    quantile cannot hold exactly is a bad record (dead-letter output), the rest is vs.query's."""
    import json
    import subprocess
    import sys

    from conftest import subprocess_env
    words = ["", "b", "é", "Z", None]
    rows = [{"id": i, "k": f"k{i % 3}", "s": words[i % 5], "x": (i * 7) % 11 - 3,
             "ts": 1_000 * i} for i in range(60)]
    rows[31]["x"] = 2 ** 60
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    select = ("SELECT k, _WINDOW_START AS ws, MIN(s) AS mn, MAX(s) AS mx, STRING_AGG(s, '/') AS sa, "
              "ARG_MAX(s, x) AS am, COUNT_IF(x > 0) AS ci, CORR(x, id) AS c, "
              "PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY x) AS p, "
              "COUNT(*) FILTER (WHERE s <> '') AS n FROM src GROUP BY k "
              "WINDOW TUMBLING(ts, INTERVAL '20' SECOND) EMIT FINAL")
    (tmp_path / "job.sql").write_text(
        f"CREATE STREAM out AS {select}\nWITH ('src.type' = 'file_source', 'src.path' = 'in.jsonl', "
        "'out.type' = 'file_sink', 'out.path' = 'out.jsonl', 'dead.letter.path' = 'dlq.jsonl')\n")
    r = subprocess.run([sys.executable, "-m", "velostream", "run", "job.sql"], cwd=tmp_path,
                       env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 failed" in r.stderr
    key = lambda x: (x["k"], x["ws"])  # noqa: E731
    got = sorted((json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()),
                 key=key)
    good = pa.Table.from_pylist([x for x in rows if x["x"] != 2 ** 60])
    want = sorted(vs.query(select, {"src": good}).to_pylist(), key=key)
    assert len(got) == 9
    assert_rows_equal(got, want)
    assert_rows_equal(got, duck("SELECT k, ws, min(s), max(s), string_agg(s, '/' ORDER BY id), "
                                "arg_max(s, x ORDER BY id), count_if(x > 0), corr(x, id), "
                                "quantile_disc(x, 0.5), count(*) FILTER (WHERE s <> '') FROM "
                                "(SELECT *, ts // 20000 * 20000 AS ws FROM t) GROUP BY k, ws", t=good))
    dead = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and "2**53" in dead[0]["error"]


@pytest.mark.parametrize("partitions", [1, 2])
def test_string_agg_changes_in_sessions(partitions):
    """SESSION windows with EMIT CHANGES (sessions merge mid-batch): a key's last change row is
    the FINAL row of its last session."""
    sql = (f"SELECT k, _WINDOW_START AS ws, string_agg(s, '/') AS sa, max(s) AS mx FROM t "
           f"GROUP BY k WINDOW SESSION(ts, {GAP}ms) EMIT ")
    changes = run(sql + "CHANGES", partitions=partitions, seed=6)
    assert len(changes) == N
    final = run(sql + "FINAL", partitions=partitions, seed=6)
    last_session = {}
    for r in final:
        if r[0] not in last_session or r[1] > last_session[r[0]][1]:
            last_session[r[0]] = r
    assert_rows_equal([(r[0], r[2], r[3]) for r in last_per_key(changes, [0])],
                      [(r[0], r[2], r[3]) for r in last_session.values()])


def test_string_agg_results_stay_out_of_the_dictionary():
    """Each emitted STRING_AGG row is new text: it is emitted as Arrow, not added to the job's
    append-only string dictionary (which would grow with every change row)."""
    eng = vs.Engine("SELECT k, string_agg(s, '') AS sa FROM t GROUP BY k")
    out = eng.push("t", T)
    assert len(out.to_pylist()) == N
    assert len(eng.strings) <= len(set(T.column("s").to_pylist()) | set(T.column("k").to_pylist()))
