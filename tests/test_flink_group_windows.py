"""Flink SQL's group window functions (docs/SQL.md §10): ``GROUP BY TUMBLE(ts, size), k``,
``HOP(ts, slide, size)`` and ``SESSION(ts, gap)`` with TUMBLE_START / _END / _ROWTIME (and the
HOP_ and SESSION_ ones) in the select list, HAVING and ORDER BY. Each is the native WINDOW clause:
the same syntax tree, the same rows as the native query, and DuckDB's rows computed by floor
arithmetic over the same seeded data (NULL keys, NULL values, NULL times), at 1, 2 and 4
partitions and over record batches of varying sizes; and each misuse is a SqlError pointing at
it."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import SqlError, UnsupportedError
from velostream.sql import parse

from reference import assert_rows_equal, duck, make_table, split_batches

TUMBLE_MS, SLIDE_MS, HOP_MS, GAP_MS = 10_000, 5_000, 15_000, 3_000
AGGS = "COUNT(*) AS n, COUNT(xi) AS nx, SUM(xi) AS s, MIN(xf) AS lo, MAX(xf) AS hi, AVG(xf) AS a"
DUCK_AGGS = "COUNT(*), COUNT(xi), SUM(xi), MIN(xf), MAX(xf), AVG(xf)"


def data(n=1500, seed=11) -> pa.Table:
    """make_table's rows (in event-time order, NULL keys and values) with about 3 % of the
    times NULL: such rows are failed records (docs/SQL.md, implementation notes), in no window."""
    t = make_table(n, seed, max_step_ms=400).drop(["_TIMESTAMP"])
    rng = np.random.default_rng(seed + 1)
    ts = pa.array(t["ts"].to_numpy(), mask=rng.random(n) < 0.03)
    return t.set_column(t.schema.get_field_index("ts"), "ts", ts)


def batches(t: pa.Table, seed: int):
    return split_batches(t, [1, 3, 17, 64, 250], seed=seed)


# (the group-window query, the native query, DuckDB's reference); a row's window columns first
CASES = {
    "tumble": (
        f"SELECT ks, TUMBLE_START(ts, INTERVAL '10' SECOND) AS ws, "
        f"TUMBLE_END(ts, INTERVAL '10' SECOND) AS we, TUMBLE_ROWTIME(ts, 10s) AS wt, {AGGS} "
        f"FROM t GROUP BY TUMBLE(ts, INTERVAL '10' SECOND), ks",
        f"SELECT ks, _WINDOW_START AS ws, _WINDOW_END AS we, _WINDOW_END - 1 AS wt, {AGGS} "
        f"FROM t GROUP BY ks WINDOW TUMBLING(ts, 10s)",
        f"SELECT ks, (ts // {TUMBLE_MS}) * {TUMBLE_MS} AS ws, (ts // {TUMBLE_MS}) * {TUMBLE_MS} "
        f"+ {TUMBLE_MS} AS we, (ts // {TUMBLE_MS}) * {TUMBLE_MS} + {TUMBLE_MS} - 1 AS wt, "
        f"{DUCK_AGGS} FROM t WHERE ts IS NOT NULL GROUP BY ALL"),
    # two keys either side of the window, and the window's end selected inside an expression
    "tumble_two_keys": (
        f"SELECT ki, ks, TUMBLE_END(ts, INTERVAL '10' SECOND) - 1000 AS we, {AGGS} "
        f"FROM t GROUP BY ki, TUMBLE(ts, INTERVAL '10' SECOND), ks",
        f"SELECT ki, ks, _WINDOW_END - 1000 AS we, {AGGS} "
        f"FROM t GROUP BY ki, ks WINDOW TUMBLING(ts, INTERVAL '10' SECOND)",
        f"SELECT ki, ks, (ts // {TUMBLE_MS}) * {TUMBLE_MS} + {TUMBLE_MS} - 1000 AS we, "
        f"{DUCK_AGGS} FROM t WHERE ts IS NOT NULL GROUP BY ALL"),
    "tumble_no_key_having": (
        f"SELECT TUMBLE_START(ts, INTERVAL '10' SECOND) AS ws, {AGGS} FROM t "
        f"GROUP BY TUMBLE(ts, INTERVAL '10' SECOND) "
        f"HAVING COUNT(*) > 20 AND TUMBLE_END(ts, INTERVAL '10' SECOND) % 20000 = 0",
        f"SELECT _WINDOW_START AS ws, {AGGS} FROM t WINDOW TUMBLING(ts, 10s) "
        f"HAVING COUNT(*) > 20 AND _WINDOW_END % 20000 = 0",
        f"SELECT ws, {DUCK_AGGS} FROM (SELECT *, (ts // {TUMBLE_MS}) * {TUMBLE_MS} AS ws "
        f"FROM t WHERE ts IS NOT NULL) GROUP BY ws "
        f"HAVING COUNT(*) > 20 AND (ws + {TUMBLE_MS}) % 20000 = 0"),
    # HOP(time, slide, size): every window [s, s + size) with s a multiple of slide holding ts
    "hop": (
        f"SELECT ks, HOP_START(ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) AS ws, "
        f"HOP_END(ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) AS we, "
        f"HOP_ROWTIME(ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) AS wt, {AGGS} "
        f"FROM t WHERE xi IS NULL OR xi > -20 "
        f"GROUP BY HOP(ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND), ks",
        f"SELECT ks, _WINDOW_START AS ws, _WINDOW_END AS we, _WINDOW_END - 1 AS wt, {AGGS} "
        f"FROM t WHERE xi IS NULL OR xi > -20 GROUP BY ks WINDOW SLIDING(ts, 15s, 5s)",
        f"SELECT ks, ws, ws + {HOP_MS} AS we, ws + {HOP_MS} - 1 AS wt, {DUCK_AGGS} FROM ("
        f"  SELECT *, unnest(generate_series(((ts - {HOP_MS}) // {SLIDE_MS} + 1) * {SLIDE_MS}, "
        f"                                   (ts // {SLIDE_MS}) * {SLIDE_MS}, {SLIDE_MS})) AS ws "
        f"  FROM t WHERE ts IS NOT NULL AND (xi IS NULL OR xi > -20)) GROUP BY ALL"),
    # SESSION(time, gap) per GROUP BY key: rows less than gap apart, [first, last + gap)
    "session": (
        f"SELECT ks, SESSION_START(ts, INTERVAL '3' SECOND) AS ws, "
        f"SESSION_END(ts, INTERVAL '3' SECOND) AS we, "
        f"SESSION_ROWTIME(ts, INTERVAL '3' SECOND) AS wt, {AGGS} "
        f"FROM t GROUP BY SESSION(ts, INTERVAL '3' SECOND), ks",
        f"SELECT ks, _WINDOW_START AS ws, _WINDOW_END AS we, _WINDOW_END - 1 AS wt, {AGGS} "
        f"FROM t GROUP BY ks WINDOW SESSION(ts, 3s)",
        f"WITH o AS (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY ks ORDER BY ts) "
        f"                          < {GAP_MS} THEN 0 ELSE 1 END AS brk "
        f"           FROM t WHERE ts IS NOT NULL), "
        f"     s AS (SELECT *, SUM(brk) OVER (PARTITION BY ks ORDER BY ts, seq "
        f"                                    ROWS UNBOUNDED PRECEDING) AS sid FROM o) "
        f"SELECT ks, MIN(ts) AS ws, MAX(ts) + {GAP_MS} AS we, MAX(ts) + {GAP_MS} - 1 AS wt, "
        f"{DUCK_AGGS} FROM s GROUP BY ks, sid"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_group_window_matches_native_window_and_duckdb(case, partitions):
    flink, native, reference = CASES[case]
    t = data()
    got = vs.query(flink, {"t": batches(t, seed=partitions)}, partitions=partitions)
    want = vs.query(native, {"t": t})
    assert len(want) > 10
    assert got.schema == want.schema
    assert_rows_equal(got.to_pylist(), want.to_pylist(), what=f"{case} vs the WINDOW clause")
    assert_rows_equal(got.to_pylist(), duck(reference, t=t), what=f"{case} vs DuckDB")


@pytest.mark.parametrize("case", sorted(CASES))
def test_group_window_parses_to_the_native_window(case):
    """The same syntax tree as the WINDOW clause (positions aside): planning, emission,
    partitions and checkpoints cannot tell them apart."""
    flink, native, _ = CASES[case]
    assert parse(flink) == parse(native)


def test_having_and_order_by_name_the_window():
    flink = ("SELECT ks, TUMBLE_START(ts, INTERVAL '1' MINUTE) AS ws, COUNT(*) AS n FROM t "
             "GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE), ks "
             "HAVING TUMBLE_END(ts, INTERVAL '60' SECOND) > 0 "
             "ORDER BY TUMBLE_START(ts, INTERVAL '1' MINUTE) DESC, ks")
    native = ("SELECT ks, _WINDOW_START AS ws, COUNT(*) AS n FROM t GROUP BY ks "
              "WINDOW TUMBLING(ts, 1m) HAVING _WINDOW_END > 0 ORDER BY _WINDOW_START DESC, ks")
    assert parse(flink) == parse(native)


def test_with_a_join_and_a_qualified_time_column():
    flink = ("SELECT u.name, TUMBLE_START(t.ts, 1m) AS ws, SUM(t.v) AS s FROM t "
             "JOIN u ON t.k = u.k WITHIN 5 SECONDS GROUP BY TUMBLE(t.ts, 1m), u.name")
    native = ("SELECT u.name, _WINDOW_START AS ws, SUM(t.v) AS s FROM t "
              "JOIN u ON t.k = u.k WITHIN 5 SECONDS GROUP BY u.name WINDOW TUMBLING(t.ts, 1m)")
    assert parse(flink) == parse(native)


def test_emit_changes_is_the_native_changelog(partitions):
    t = data(600, seed=5)
    flink = ("SELECT ks, HOP_START(ts, 5s, 15s) AS ws, SUM(xi) AS s, COUNT(*) AS n FROM t "
             "GROUP BY ks, HOP(ts, 5s, 15s) EMIT CHANGES")
    native = ("SELECT ks, _WINDOW_START AS ws, SUM(xi) AS s, COUNT(*) AS n FROM t "
              "GROUP BY ks WINDOW SLIDING(ts, 15s, 5s) EMIT CHANGES")
    got = vs.query(flink, {"t": batches(t, seed=7)}, partitions=partitions).to_pylist()
    want = vs.query(native, {"t": t}).to_pylist()
    assert len(want) > len(t) // 2
    assert_rows_equal(got, want)


def test_timestamp_time_column_and_qualified_names(partitions):
    """A TIMESTAMP time column, named t.ts in GROUP BY and ts in TUMBLE_START: the same column."""
    ints = data(800, seed=3)
    t = ints.set_column(ints.schema.get_field_index("ts"), "ts",
                        ints["ts"].cast(pa.timestamp("ms")))
    got = vs.query("SELECT ks, TUMBLE_START(ts, INTERVAL '10' SECOND) AS ws, COUNT(*) AS n "
                   "FROM t AS q GROUP BY TUMBLE(q.ts, INTERVAL '10' SECOND), ks",
                   {"t": batches(t, seed=1)}, partitions=partitions).to_pylist()
    ref = duck(f"SELECT ks, (ts // {TUMBLE_MS}) * {TUMBLE_MS} AS ws, COUNT(*) FROM t "
               f"WHERE ts IS NOT NULL GROUP BY ALL", t=ints)
    assert len(ref) > 10
    assert_rows_equal(got, ref)


def test_in_a_derived_stream_and_union_all():
    """Each SELECT has its own group window: a CTE windowed by TUMBLE and re-windowed by a
    multiple of its size counts what one direct window counts (docs/SQL.md §8), and each
    UNION ALL branch keeps its own window."""
    t = data(900, seed=9)
    nested = vs.query(
        "WITH m AS (SELECT ks, TUMBLE_ROWTIME(ts, 10s) AS wt, COUNT(*) AS n FROM t "
        "           GROUP BY TUMBLE(ts, 10s), ks) "
        "SELECT ks, TUMBLE_START(wt, 30s) AS ws, SUM(n) AS n FROM m GROUP BY TUMBLE(wt, 30s), ks",
        {"t": t}).to_pylist()
    ref = duck("SELECT ks, (ts // 30000) * 30000 AS ws, COUNT(*) FROM t WHERE ts IS NOT NULL "
               "GROUP BY ALL", t=t)
    assert_rows_equal(nested, ref)
    union = vs.query("SELECT TUMBLE_START(ts, 10s) AS ws, COUNT(*) AS n FROM t "
                     "GROUP BY TUMBLE(ts, 10s) "
                     "UNION ALL SELECT SESSION_START(ts, 1s) AS ws, COUNT(*) AS n FROM t "
                     "GROUP BY SESSION(ts, 1s)", {"t": t}).to_pylist()
    want = vs.query("SELECT _WINDOW_START AS ws, COUNT(*) AS n FROM t WINDOW TUMBLING(ts, 10s) "
                    "UNION ALL SELECT _WINDOW_START AS ws, COUNT(*) AS n FROM t "
                    "WINDOW SESSION(ts, 1s)", {"t": t}).to_pylist()
    assert_rows_equal(union, want)


def test_unaliased_window_functions_are_named_after_the_function():
    t = {"k": ["a", "b", "a"], "ts": [0, 1_000, 61_000]}
    got = vs.query("SELECT k, TUMBLE_START(ts, 1m), TUMBLE_END(ts, 1m), TUMBLE_ROWTIME(ts, 1m) "
                   "FROM t GROUP BY TUMBLE(ts, 1m), k", {"t": t})
    assert got.schema.names == ["k", "tumble_start", "tumble_end", "tumble_rowtime"]


# --------------------------------------------------------------------------------- errors
G = "GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)"


@pytest.mark.parametrize("sql,exc,at,part", [
    # the window given twice
    (f"SELECT COUNT(*) AS n FROM t {G} WINDOW TUMBLING(ts, 1m)", SqlError, "TUMBLE(ts",
     "in GROUP BY and a WINDOW clause: give the window once"),
    (f"SELECT COUNT(*) AS n FROM t WINDOW SESSION(ts, 1m) {G}", SqlError, "TUMBLE(ts",
     "in GROUP BY and a WINDOW clause: give the window once"),
    (f"SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) {G}",
     SqlError, "TUMBLE(ts", "a window table function in FROM and the group window TUMBLE"),
    (f"SELECT COUNT(*) AS n FROM t {G}, k, HOP(ts, 1m, 2m)", SqlError, "HOP(",
     "a second group window HOP"),
    (f"SELECT COUNT(*) AS n FROM t {G}, TUMBLE(ts, 2m)", SqlError, "TUMBLE(ts, 2m",
     "a second group window TUMBLE"),
    # auxiliary functions that do not repeat the group window
    (f"SELECT TUMBLE_START(ts, INTERVAL '2' MINUTE) AS ws FROM t {G}", SqlError,
     "INTERVAL '2'", r"the size of TUMBLE_START\(...\) must be the one of GROUP BY "
                     r"TUMBLE\(ts, INTERVAL '1' MINUTE\) \(line 1, column \d+\)"),
    (f"SELECT TUMBLE_END(other, INTERVAL '1' MINUTE) AS we FROM t {G}", SqlError, "other",
     r"the time column of TUMBLE_END\(...\) must be the one of GROUP BY TUMBLE\(ts"),
    (f"SELECT TUMBLE_END(ts) AS we FROM t {G}", SqlError, "TUMBLE_END",
     r"must repeat the arguments of GROUP BY TUMBLE\(ts, INTERVAL '1' MINUTE\)"),
    (f"SELECT HOP_START(ts, 1m, 2m) AS ws FROM t {G}", SqlError, "HOP_START",
     r"HOP_START\(...\) belongs to a HOP\(...\) window, but the group window is GROUP BY TUMBLE"),
    ("SELECT HOP_START(ts, 1m, 2m) AS ws FROM t GROUP BY HOP(ts, 1m, 3m)", SqlError, "2m",
     r"the size of HOP_START\(...\) must be the one of GROUP BY HOP\(ts, INTERVAL '1' MINUTE, "
     r"INTERVAL '3' MINUTE\)"),
    ("SELECT SESSION_END(ts, 1m) AS we, COUNT(*) AS n FROM t GROUP BY SESSION(ts, 2m)",
     SqlError, "1m", r"the gap of SESSION_END\(...\) must be the one of GROUP BY SESSION"),
    # auxiliary functions without a group window, or where no window row exists yet
    ("SELECT k, TUMBLE_START(ts, 1m) AS ws, COUNT(*) AS n FROM t GROUP BY k", SqlError,
     "TUMBLE_START", r"TUMBLE_START\(...\) needs the group window TUMBLE\(...\) in GROUP BY"),
    ("SELECT TUMBLE_START(ts, 1m) AS ws, COUNT(*) AS n FROM t WINDOW TUMBLING(ts, 1m)", SqlError,
     "TUMBLE_START", r"with a WINDOW clause, select _WINDOW_START / _WINDOW_END"),
    (f"SELECT COUNT(*) AS n FROM t WHERE TUMBLE_START(ts, INTERVAL '1' MINUTE) > 0 {G}",
     SqlError, "TUMBLE_START", r"TUMBLE_START\(...\) is not allowed in WHERE"),
    ("SELECT COUNT(*) AS n FROM t JOIN u ON TUMBLE_START(t.ts, 1m) = u.ts "
     "GROUP BY TUMBLE(t.ts, 1m)", SqlError, "TUMBLE_START",
     r"TUMBLE_START\(...\) is not allowed in a JOIN condition"),
    (f"SELECT COUNT(*) AS n FROM t {G}, TUMBLE_END(ts, INTERVAL '1' MINUTE)", SqlError,
     "TUMBLE_END", r"TUMBLE_END\(...\) is not allowed in GROUP BY"),
    (f"SELECT TUMBLE(ts, INTERVAL '1' MINUTE) AS w, COUNT(*) AS n FROM t {G}", SqlError,
     "TUMBLE(ts", r"TUMBLE\(...\) is a group window: it stands alone in GROUP BY"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k, CAST(TUMBLE(ts, 1m) AS VARCHAR)", SqlError,
     "TUMBLE(ts", r"TUMBLE\(...\) is a group window"),
    # processing time
    (f"SELECT TUMBLE_PROCTIME(ts, INTERVAL '1' MINUTE) AS p FROM t {G}", UnsupportedError,
     "TUMBLE_PROCTIME", "TUMBLE_PROCTIME: processing time is not supported"),
    ("SELECT SESSION_PROCTIME(ts, 1m) AS p FROM t GROUP BY k", UnsupportedError,
     "SESSION_PROCTIME", "processing time is not supported"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY TUMBLE(PROCTIME(), INTERVAL '1' MINUTE)",
     UnsupportedError, "PROCTIME", "processing time is not supported"),
    # the arguments of the group window
    ("SELECT COUNT(*) AS n FROM t GROUP BY TUMBLE(ts + 1, INTERVAL '1' MINUTE)", SqlError,
     "ts + 1", r"the first argument of TUMBLE\(time column, size\) must be the event-time "
               r"column \(a column name\)"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY HOP(CAST(ts AS TIMESTAMP), 1m, 2m)", SqlError,
     "CAST", r"first argument of HOP\(time column, slide, size\) must be the event-time column"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY TUMBLE(ts)", SqlError, "TUMBLE(ts",
     r"TUMBLE\(time column, size\) takes 2 arguments, got 1"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY HOP(ts, 1m)", SqlError, "HOP(ts",
     r"HOP\(time column, slide, size\) takes 3 arguments, got 2"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY TUMBLE(ts, 60000)", SqlError, "60000",
     r"the size of TUMBLE\(time column, size\) must be an interval"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY SESSION(ts, INTERVAL '0' SECOND)", SqlError,
     "INTERVAL '0'", "a window duration must be between 1 ms and 36,500 days, got 0 ms"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY HOP(ts, INTERVAL '2' MINUTE, INTERVAL '1' MINUTE)",
     SqlError, "INTERVAL '1'", r"HOP's slide \(120000 ms\) must not exceed its size"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY TUMBLE(DISTINCT ts, 1m)", SqlError, "TUMBLE(",
     "takes no DISTINCT, FILTER or OVER"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY TUMBLE(zz, 1m)", SqlError, "zz", "unknown column 'zz'"),
])
def test_errors_point_at_the_text(sql, exc, at, part):
    t = {"k": ["a", "b"], "ts": [0, 1_000], "other": [0, 1_000]}
    for p in (1, 2):  # the same error at every partition count
        with pytest.raises(exc, match=part) as info:
            vs.query(sql, {"t": t}, partitions=p)
        err = info.value
        assert (err.line, err.column) == (1, sql.index(at) + 1), str(err)
