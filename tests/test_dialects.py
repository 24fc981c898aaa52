"""Other dialects' window syntax (docs/SQL.md §10): ksqlDB's WINDOW TUMBLING (SIZE ...),
HOPPING and SESSION with GRACE PERIOD, RisingWave's EMIT ON WINDOW CLOSE, Flink's window table
functions, and GROUP BY a select-list alias or position; each equal to the native form (and to
DuckDB) on seeded data with NULLs, at 1, 2 and 4 partitions."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import SqlError, UnsupportedError

from reference import assert_rows_equal, duck


def events(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 30 * 60_000, n)).astype(np.int64)
    k = rng.choice(["a", "b", "c"], n).astype(object)
    mask = rng.random(n) < 0.05
    return pa.table({"k": pa.array(k, mask=mask, type=pa.string()),
                     "v": pa.array(rng.integers(-50, 100, n), pa.int64()),
                     "ts": pa.array(ts), "_TIMESTAMP": pa.array(ts)})


@pytest.mark.parametrize("dialect,native", [
    ("SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t WINDOW TUMBLING (SIZE 1 MINUTE) "
     "GROUP BY k",
     "SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t GROUP BY k WINDOW TUMBLING(1m)"),
    ("SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t WINDOW HOPPING (SIZE 2 MINUTES, "
     "ADVANCE BY 30 SECONDS) WHERE v > 0 GROUP BY k",
     "SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t WHERE v > 0 GROUP BY k "
     "WINDOW SLIDING(2m, 30s)"),
    ("SELECT k, COUNT(*) AS n, _WINDOW_START AS ws FROM t WINDOW SESSION (20 SECONDS) GROUP BY k",
     "SELECT k, COUNT(*) AS n, _WINDOW_START AS ws FROM t GROUP BY k WINDOW SESSION(20s)"),
    ("SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t GROUP BY k WINDOW TUMBLING(1m) "
     "EMIT ON WINDOW CLOSE",
     "SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t GROUP BY k WINDOW TUMBLING(1m) EMIT FINAL"),
    ("SELECT window_start, window_end, k, SUM(v) AS s FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), "
     "INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, k",
     "SELECT _WINDOW_START AS window_start, _WINDOW_END AS window_end, k, SUM(v) AS s FROM t "
     "GROUP BY k WINDOW TUMBLING(ts, INTERVAL '1' MINUTE)"),
    ("SELECT window_start, k, MAX(v) AS m, window_time FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), "
     "INTERVAL '1' MINUTE, INTERVAL '3' MINUTES)) GROUP BY window_start, window_end, k",
     "SELECT _WINDOW_START AS window_start, k, MAX(v) AS m, _WINDOW_END - 1 AS window_time FROM t "
     "GROUP BY k WINDOW SLIDING(ts, 3m, 1m)"),
    ("SELECT k, CASE WHEN window_start % 120000 = 0 THEN window_time ELSE -window_end END AS w, "
     "COUNT(*) AS n FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
     "GROUP BY k, window_start, window_end",
     "SELECT k, CASE WHEN _WINDOW_START % 120000 = 0 THEN _WINDOW_END - 1 ELSE -_WINDOW_END END "
     "AS w, COUNT(*) AS n FROM t GROUP BY k WINDOW TUMBLING(ts, 1m)"),
    ("SELECT k, COUNT(*) AS n, window_start FROM TABLE(SESSION(TABLE t PARTITION BY k, "
     "DESCRIPTOR(ts), INTERVAL '15' SECOND)) GROUP BY k, window_start, window_end",
     "SELECT k, COUNT(*) AS n, _WINDOW_START AS window_start FROM t GROUP BY k "
     "WINDOW SESSION(ts, 15s)"),
])
def test_dialect_window_equals_the_native_window(dialect, native, partitions):
    t = events()
    got = vs.query(dialect, {"t": t.to_batches(max_chunksize=700)}, partitions=partitions)
    want = vs.query(native, {"t": t})
    assert len(want) > 10
    assert got.schema.names == want.schema.names
    assert_rows_equal(got.to_pylist(), want.to_pylist())


def test_ksql_tumbling_matches_duckdb():
    t = events()
    got = vs.query("SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t "
                   "WINDOW TUMBLING (SIZE 5 MINUTES) GROUP BY k", {"t": t}).to_pylist()
    ref = duck("SELECT k, SUM(v), (ts // 300000) * 300000 AS ws FROM t GROUP BY k, ws", t=t)
    assert_rows_equal(got, ref)


def test_grace_period_is_the_windows_allowed_lateness():
    # the third row is 20 s late: inside a 30-second grace period it still counts
    t = {"k": ["a", "a", "a"], "v": [1, 2, 4], "_TIMESTAMP": [0, 70_000, 50_000]}
    late = vs.query("SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t "
                    "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY k", {"t": t}).to_pylist()
    grace = vs.query("SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM t "
                     "WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 30 SECONDS) GROUP BY k",
                     {"t": t}).to_pylist()
    assert {r["ws"]: r["s"] for r in late} == {0: 1, 60_000: 2}
    assert {r["ws"]: r["s"] for r in grace} == {0: 5, 60_000: 2}


@pytest.mark.parametrize("group_by", ["GROUP BY kk", "GROUP BY 1", "GROUP BY UPPER(k)"])
def test_group_by_alias_or_position(group_by, partitions):
    t = events()
    sql = f"SELECT UPPER(k) AS kk, SUM(v) AS s, COUNT(*) AS n FROM t {group_by} EMIT FINAL"
    got = vs.query(sql, {"t": t}, partitions=partitions).to_pylist()
    ref = duck("SELECT UPPER(k) AS kk, SUM(v), COUNT(*) FROM t GROUP BY kk", t=t)
    assert_rows_equal(got, ref)


def test_group_by_a_name_prefers_the_input_column():
    # as in DuckDB, GROUP BY v is the input column v, not the alias v: k is then not grouped
    t = {"k": ["a", "b", "a"], "v": [1, 1, 2]}
    sql = "SELECT k AS v, COUNT(*) AS n FROM t GROUP BY v"
    with pytest.raises(SqlError, match="'k' must appear in GROUP BY"):
        vs.query(sql, {"t": t})
    import duckdb
    with pytest.raises(duckdb.Error):
        duck(sql, t=pa.table(t))


@pytest.mark.parametrize("sql,exc,part", [
    ("SELECT k, COUNT(*) AS n FROM t WINDOW HOPPING (SIZE 1 MINUTE) GROUP BY k", SqlError,
     "HOPPING needs ADVANCE BY"),
    ("SELECT k, COUNT(*) AS n FROM t WINDOW TUMBLING (SIZE 1 MINUTE, ADVANCE BY 1 SECOND) "
     "GROUP BY k", SqlError, "ADVANCE BY belongs to a HOPPING"),
    ("SELECT k, COUNT(*) AS n FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '7' MINUTE, "
     "INTERVAL '1' HOUR)) GROUP BY k", SqlError, "whole multiple of its step"),
    ("SELECT k, COUNT(*) AS n FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
     "GROUP BY k", SqlError, r"CUMULATE\(TABLE t, DESCRIPTOR\(ts\), step, size\) takes 2"),
    ("SELECT k, COUNT(*) AS n FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND, "
     "INTERVAL '1' DAY)) GROUP BY k", UnsupportedError, "at most 10,000 windows"),
    ("SELECT k, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
     "GROUP BY k WINDOW TUMBLING(1m)", SqlError, "give the window once"),
    ("SELECT k, COUNT(*) AS n FROM t GROUP BY 3", SqlError, "GROUP BY position 3"),
    ("SELECT k, COUNT(*) AS n FROM t GROUP BY k EMIT ON WINDOW", SqlError, "CLOSE"),
])
def test_dialect_errors(sql, exc, part):
    with pytest.raises(exc, match=part):
        vs.query(sql, {"t": events(50)})


# -- Flink's CUMULATE: windows from k * size growing by step up to size ----------------------

def cumulate_reference(t, step: int, size: int, aggs: str, where: str = "") -> list:
    """DuckDB over the same rows: each row joins every window [start, end) of its size-aligned
    period with end = start + j * step > ts."""
    return duck(f"""
        SELECT ws, we, k, {aggs} FROM (
            SELECT *, (ts // {size}) * {size} AS ws,
                   unnest(generate_series((ts // {size}) * {size} + (ts % {size} // {step} + 1)
                                          * {step}, (ts // {size}) * {size} + {size}, {step})) AS we
            FROM t {where})
        GROUP BY ws, we, k""", t=t)


@pytest.mark.parametrize("step,size", [(60_000, 300_000), (120_000, 120_000), (30_000, 600_000)])
def test_cumulate_matches_duckdb(step, size, partitions):
    t = events()
    sql = (f"SELECT window_start, window_end, k, SUM(v) AS s, COUNT(*) AS n, MAX(v) AS m "
           f"FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '{step // 1000}' SECOND, "
           f"INTERVAL '{size // 1000}' SECOND)) WHERE v > -40 "
           f"GROUP BY window_start, window_end, k")
    got = vs.query(sql, {"t": t.to_batches(max_chunksize=500)}, partitions=partitions)
    want = cumulate_reference(t, step, size, "SUM(v), COUNT(*), MAX(v)", "WHERE v > -40")
    assert len(want) > 20
    assert_rows_equal(got.to_pylist(), want)


def test_cumulate_windows_emit_in_end_order_and_window_time():
    t = events(600)
    got = vs.query("SELECT window_start, window_end, window_time, k, COUNT(*) AS n "
                   "FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, "
                   "INTERVAL '3' MINUTES)) GROUP BY window_start, window_end, k",
                   {"t": t}).to_pylist()
    ends = [r["window_end"] for r in got]
    assert ends == sorted(ends)
    assert all(r["window_time"] == r["window_end"] - 1 for r in got)
    assert {r["window_end"] - r["window_start"] for r in got} == {60_000, 120_000, 180_000}
    assert all(r["window_start"] % 180_000 == 0 for r in got)


def test_cumulate_late_rows_join_only_the_windows_still_open():
    # 0-3 min period, windows end at 1, 2 and 3 min. The row at 30 s arrives when the watermark
    # is 90 s: the 1-minute window has closed, the 2- and 3-minute ones take it.
    t = {"k": ["a", "a", "a", "a"], "v": [1, 2, 4, 8], "_TIMESTAMP": [10_000, 90_000, 30_000, 400_000]}
    got = vs.query("SELECT _WINDOW_END AS we, SUM(v) AS s FROM t GROUP BY k "
                   "WINDOW TUMBLING(1m)", {"t": t}).to_pylist()  # the native form for contrast
    assert {r["we"]: r["s"] for r in got}[60_000] == 1
    eng = vs.Engine("SELECT window_end, SUM(v) AS s FROM TABLE(CUMULATE(TABLE t, "
                    "DESCRIPTOR(_TIMESTAMP), INTERVAL '1' MINUTE, INTERVAL '3' MINUTES)) "
                    "GROUP BY window_start, window_end, k")
    rows = eng.push("t", t).to_pylist() + eng.flush().to_pylist()
    assert {r["window_end"]: r["s"] for r in rows} == {60_000: 1, 120_000: 7, 180_000: 7,
                                                      420_000: 8, 480_000: 8, 540_000: 8}
    assert eng.stats.late_records == 0


def test_cumulate_emit_changes_last_row_equals_final(partitions):
    t = events(1500)
    base = ("SELECT window_start, window_end, k, SUM(v) AS s FROM TABLE(CUMULATE(TABLE t, "
            "DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '4' MINUTES)) "
            "GROUP BY window_start, window_end, k")
    final = vs.query(base, {"t": t}, partitions=partitions).to_pylist()
    changes = vs.query(base + " EMIT CHANGES", {"t": t.to_batches(max_chunksize=333)},
                       partitions=partitions).to_pylist()
    last = {}
    for r in changes:
        last[(r["window_start"], r["window_end"], r["k"])] = r["s"]
    assert_rows_equal([(ws, we, k, s) for (ws, we, k), s in last.items()], final)


def test_cumulate_state_survives_a_snapshot():
    t = events(2000)
    sql = ("SELECT window_start, window_end, k, SUM(v) AS s, COUNT(*) AS n FROM TABLE(CUMULATE("
           "TABLE t, DESCRIPTOR(_TIMESTAMP), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES)) "
           "GROUP BY window_start, window_end, k")
    whole = vs.query(sql, {"t": t}).to_pylist()
    first, second = t.slice(0, 900), t.slice(900)
    eng = vs.Engine(sql)
    out = eng.push("t", first).to_pylist()
    fresh = vs.Engine(sql)
    fresh.restore(eng.snapshot())
    out += fresh.push("t", second).to_pylist() + fresh.flush().to_pylist()
    assert_rows_equal(out, whole)


def test_cumulate_windows_take_every_aggregate(partitions):
    """The aggregates of docs/SQL.md §5 in CUMULATE windows (two-phase at several partitions),
    against DuckDB over the same windows."""
    t = events(2000, seed=9)
    ts_sorted = t.sort_by("ts")
    aggs = ("STRING_AGG(k, ',') AS sa, ROUND(PERCENTILE_CONT(v, 0.5), 6) AS pc, "
            "ROUND(CORR(v, ts), 6) AS c, ARG_MAX(k, v) AS am, MIN(k) AS mk, "
            "COUNT(DISTINCT k) AS dk, COUNT(*) FILTER (WHERE v > 0) AS fp")
    duck_aggs = ("string_agg(k, ',' ORDER BY ts), round(quantile_cont(v, 0.5), 6), "
                 "round(corr(v, ts), 6), arg_max(k, v ORDER BY ts), min(k), count(DISTINCT k), "
                 "count(*) FILTER (WHERE v > 0)")
    sql = (f"SELECT window_start, window_end, {aggs} FROM TABLE(CUMULATE(TABLE t, DESCRIPTOR(ts), "
           f"INTERVAL '1' MINUTE, INTERVAL '5' MINUTES)) GROUP BY window_start, window_end")
    got = vs.query(sql, {"t": ts_sorted.to_batches(max_chunksize=300)},
                   partitions=partitions).to_pylist()
    size, step = 300_000, 60_000
    want = duck(f"""
        SELECT ws, we, {duck_aggs} FROM (
            SELECT *, (ts // {size}) * {size} AS ws,
                   unnest(generate_series((ts // {size}) * {size} + (ts % {size} // {step} + 1)
                                          * {step}, (ts // {size}) * {size} + {size}, {step})) AS we
            FROM t)
        GROUP BY ws, we""", t=ts_sorted)
    assert len(want) > 20
    assert_rows_equal(got, want)
