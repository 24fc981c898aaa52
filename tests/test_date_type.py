"""The DATE type (docs/SQL.md §2) against DuckDB.

Seeded data with NULLs and edge values (negative epoch times, 1970-01-01, leap days, year
boundaries, years 1 and 9999 and beyond) run through ``vs.query`` at partitions 1, 2 and 4 with
the input split into batches; every expected value is DuckDB's. DATE values are compared as days
since 1970-01-01 (Python's ``datetime.date`` holds no year before 1 or after 9999), TIMESTAMP
results as epoch milliseconds (how velostream's TIMESTAMP leaves).
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re

import pyarrow as pa
import pytest
from reference import assert_rows_equal, duck, last_per_key, split_batches

import velostream as vs
from velostream.errors import SqlError, VelostreamError

DAY = 86_400_000
N_ROWS = 300


def _ms(text: str) -> int:
    d = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    return int(round(d.timestamp() * 1000))


# instants whose day is easy to get wrong: either side of 1970-01-01, leap days, year ends
_EDGE_MS = [0, -1, -DAY, -DAY - 1, -DAY + 1, DAY - 1, _ms("2024-02-29 23:59:59.999"),
            _ms("2000-02-29 00:00:00"), _ms("1900-02-28 12:00:00"), _ms("1999-12-31 23:59:59.999"),
            _ms("2000-01-01 00:00:00"), _ms("0001-01-01 00:00:00"), _ms("9999-12-31 23:59:59.999"),
            _ms("1968-02-29 06:30:00.5"), -62_135_596_800_001,  # the last instant of 1 BC
            300_000_000_000_000, -100_000_000_000_000]  # years 11476 and -1199
_TEXTS = ["2024-03-05", "2024-3-5", " 2024-03-05 ", "2024-03-05 10:11:12", "2024-03-05T10:11",
          "2024-03-05 02:00:00+05:00", "2024-02-29", "2023-02-29", "2024-02-30", "2024-13-01",
          "2024-01-00", "abc", "12345", "", "2024-03-05Z", "2024-03-05 25:00", "0000-03-05",
          "-0001-03-05", "0001-01-01", "9999-12-31", "10000-01-01", "2024/03/05", "1900-02-29",
          "1969-12-31 23:59:59.999", "2024-03-05 (BC)", "5874897-12-31", "2024-03-05T"]


def table(seed: int, n: int = N_ROWS) -> pa.Table:
    """id, ts (timestamp[ms]: edge instants, near-epoch and random times, NULLs), x (small
    integers with NULLs: day steps), k (a key), s (date text, good and bad, NULLs)."""
    rng = random.Random(seed)
    ts, xs, ks, ss = [], [], [], []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            ts.append(None)
        elif r < 0.35:
            ts.append(rng.choice(_EDGE_MS))
        elif r < 0.5:
            ts.append(rng.randint(-3 * DAY, 3 * DAY))
        else:
            ts.append(rng.randint(_ms("1890-01-01 00:00:00"), _ms("2110-01-01 00:00:00")))
        xs.append(None if rng.random() < 0.1 else rng.randint(-800, 800))
        ks.append(rng.choice(["a", "b", "c", None]))
        ss.append(None if rng.random() < 0.1 else rng.choice(_TEXTS))
    return pa.table({"id": pa.array(range(n), pa.int64()), "ts": pa.array(ts, pa.timestamp("ms")),
                     "x": pa.array(xs, pa.int64()), "k": pa.array(ks, pa.string()),
                     "s": pa.array(ss, pa.string())})


def run(sql: str, t: pa.Table, partitions: int = 1, seed: int = 0) -> pa.Table:
    return vs.query(sql, {"t": split_batches(t, [1, 7, 40, 128], seed=seed)},
                    partitions=partitions).to_arrow()


def dk(t: pa.Table) -> pa.Table:
    """``t`` for DuckDB: its DATE + n takes an INTEGER n, not a BIGINT (velostream's integers
    are all BIGINT), and its plain TIMESTAMP is in microseconds (a TIMESTAMP_MS column mixes
    with a DATE less well)."""
    for name, ty in (("x", pa.int32()), ("ts", pa.timestamp("us"))):
        if name in t.column_names:
            t = t.set_column(t.column_names.index(name), name, t.column(name).cast(ty))
    return t


def rows(result: pa.Table) -> list[tuple]:
    """Rows with each date32 column as days since 1970-01-01."""
    cols = [c.cast(pa.int32()) if pa.types.is_date(c.type) else c for c in result.columns]
    return list(zip(*[c.to_pylist() for c in cols])) if cols and result.num_rows else []


def days(expr: str) -> str:
    """A DuckDB DATE expression as days since 1970-01-01 (how ``rows`` shows a date32)."""
    return f"(({expr}) - DATE '1970-01-01')"


def ms(expr: str) -> str:
    """A DuckDB TIMESTAMP expression as epoch milliseconds (how a velostream TIMESTAMP leaves)."""
    return f"epoch_ms({expr})"


D = "CAST(ts AS DATE)"


def test_casts_literal_and_arithmetic_match_duckdb(partitions):
    t = table(1)
    # (velostream expression, DuckDB expression, the Arrow type velostream gives)
    cases = [
        (D, days(D), pa.date32()),
        ("TRY_CAST(ts AS DATE)", days("TRY_CAST(ts AS DATE)"), pa.date32()),
        (f"CAST({D} AS DATE)", days(D), pa.date32()),
        (f"CAST({D} AS TIMESTAMP)", ms(f"CAST({D} AS TIMESTAMP)"), pa.int64()),
        (f"CAST({D} AS VARCHAR)", f"CAST({D} AS VARCHAR)", pa.string()),
        ("DATE '2024-02-29'", days("DATE '2024-02-29'"), pa.date32()),
        ("DATE '0000-03-05' - 800", days("DATE '0000-03-05' - 800"), pa.date32()),
        (f"{D} + x", days(f"{D} + x"), pa.date32()),
        (f"x + {D}", days(f"x + {D}"), pa.date32()),
        (f"{D} - x", days(f"{D} - x"), pa.date32()),
        (f"{D} + 1", days(f"{D} + 1"), pa.date32()),
        (f"{D} - DATE '2000-01-01'", f"{D} - DATE '2000-01-01'", pa.int64()),
        (f"{D} - CAST(ts - INTERVAL '10' DAY AS DATE)", f"{D} - CAST(ts - INTERVAL '10' DAY AS DATE)",
         pa.int64()),
        (f"{D} + INTERVAL '1' MONTH", ms(f"{D} + INTERVAL '1' MONTH"), pa.int64()),
        (f"{D} - INTERVAL '1' YEAR", ms(f"{D} - INTERVAL '1' YEAR"), pa.int64()),
        (f"{D} - INTERVAL '36' HOUR", ms(f"{D} - INTERVAL '36' HOUR"), pa.int64()),
        (f"INTERVAL '2' DAY + {D}", ms(f"INTERVAL '2' DAY + {D}"), pa.int64()),
    ]
    got = run("SELECT id, " + ", ".join(f"{v} AS c{i}" for i, (v, _, _) in enumerate(cases))
              + " FROM t", t, partitions)
    assert [f.type for f in got.schema][1:] == [want for _, _, want in cases]
    want = duck("SELECT id, " + ", ".join(f"{d} AS c{i}" for i, (_, d, _) in enumerate(cases))
                + " FROM t", t=dk(t))
    assert_rows_equal(rows(got), want)


def test_text_to_date_as_duckdb(partitions):
    t = table(2)
    got = run("SELECT id, TRY_CAST(s AS DATE) AS d, CAST(TRY_CAST(s AS DATE) AS VARCHAR) AS v, "
              "s IS NOT NULL AND TRY_CAST(s AS DATE) IS NULL AS bad FROM t", t, partitions)
    want = duck(f"SELECT id, {days('TRY_CAST(s AS DATE)')}, CAST(TRY_CAST(s AS DATE) AS VARCHAR), "
                "s IS NOT NULL AND TRY_CAST(s AS DATE) IS NULL FROM t", t=dk(t))
    assert_rows_equal(rows(got), want)
    assert any(r[3] for r in want) and any(r[1] is not None for r in want)
    # CAST (not TRY_CAST) of text that is no date fails, as a bad TIMESTAMP cast does
    with pytest.raises(VelostreamError, match="Could not convert string '2024-02-30' to DATE"):
        vs.query("SELECT CAST(s AS DATE) AS d FROM t", {"t": {"s": ["2024-03-05", "2024-02-30"]}},
                 partitions=partitions)


def test_where_comparisons_as_duckdb(partitions):
    t = table(3)
    for cond in [f"{D} >= '2000-01-01' AND {D} < DATE '2100-01-01'",
                 f"{D} = ts", f"{D} < ts", f"ts <= {D}",
                 f"{D} BETWEEN '1969-12-30' AND DATE '1970-01-02'",
                 f"{D} IN ('1970-01-01', DATE '1969-12-31', DATE '2024-02-29')",
                 f"{D} NOT IN (DATE '1970-01-01')",
                 f"{D} <> DATE '1970-01-01' OR {D} > CAST(s AS DATE)",
                 f"'1999-12-31' = {D}"]:
        duck_cond = cond.replace(f"{D} > CAST(s AS DATE)", f"{D} > TRY_CAST(s AS DATE)")
        got = run(f"SELECT id FROM t WHERE {cond.replace('CAST(s', 'TRY_CAST(s')}", t, partitions)
        want = duck(f"SELECT id FROM t WHERE {duck_cond}", t=dk(t))
        assert_rows_equal(rows(got), want, what=cond)
        assert want, cond


def test_conditional_functions_with_dates(partitions):
    t = table(4)
    exprs = [(f"COALESCE({D}, DATE '2000-01-01')", pa.date32(), True),
             (f"GREATEST({D}, DATE '1970-01-01')", pa.date32(), True),
             (f"LEAST({D}, DATE '1970-01-01', NULL)", pa.date32(), True),
             (f"NULLIF({D}, DATE '1970-01-01')", pa.date32(), True),
             (f"CASE WHEN x > 0 THEN {D} ELSE DATE '1999-12-31' END", pa.date32(), True),
             (f"GREATEST({D}, ts)", pa.int64(), False)]
    got = run("SELECT id, " + ", ".join(f"{e} AS c{i}" for i, (e, _, _) in enumerate(exprs))
              + " FROM t", t, partitions)
    assert [f.type for f in got.schema][1:] == [ty for _, ty, _ in exprs]
    want = duck("SELECT id, " + ", ".join(f"{days(e) if d else ms(e)}" for e, _, d in exprs)
                + " FROM t", t=dk(t))
    assert_rows_equal(rows(got), want)


def test_group_by_date_with_count_min_max(partitions):
    t = table(5)
    got = run(f"SELECT {D} AS d, COUNT(*) AS n, COUNT(x) AS nx, MIN({D} + x) AS lo, "
              f"MAX({D} - x) AS hi, FIRST_VALUE({D}) AS f FROM t GROUP BY {D}", t, partitions)
    assert [f.type for f in got.schema] == [pa.date32(), pa.int64(), pa.int64(), pa.date32(),
                                            pa.date32(), pa.date32()]
    want = duck(f"SELECT {days(D)}, COUNT(*), COUNT(x), {days(f'MIN({D} + x)')}, "
                f"{days(f'MAX({D} - x)')}, {days(D)} FROM t GROUP BY {D}", t=dk(t))
    assert len(want) > 20
    assert_rows_equal(last_per_key(rows(got), [0]), want)  # a changelog: each day's last row
    want = duck(f"SELECT DISTINCT {days(D)} AS d FROM t ORDER BY d NULLS LAST", t=dk(t))
    assert_rows_equal(rows(run(f"SELECT DISTINCT {D} AS d FROM t", t, partitions)), want)
    # ORDER BY sorts each emission (docs/SQL.md §1): one batch in, one emission out
    got = vs.query(f"SELECT DISTINCT {D} AS d FROM t ORDER BY d", {"t": t}, partitions=partitions)
    assert rows(got.to_arrow()) == want


def test_windowed_group_by_with_a_date_key(partitions):
    rng = random.Random(6)
    n = 400
    ts = sorted(_ms("2023-12-30 00:00:00") + rng.randint(0, 5 * DAY) for _ in range(n))
    t = pa.table({"ts": pa.array(ts, pa.timestamp("ms")),
                  "k": pa.array([rng.choice(["a", "b", None]) for _ in range(n)]),
                  "x": pa.array([rng.randint(0, 9) for _ in range(n)], pa.int64())})
    got = run(f"SELECT {D} AS d, k, _WINDOW_START AS ws, COUNT(*) AS n, SUM(x) AS sx FROM t "
              f"GROUP BY {D}, k WINDOW TUMBLING(ts, 6h)", t, partitions)
    assert got.schema.field("d").type == pa.date32()
    want = duck(f"SELECT {days(D)}, k, (epoch_ms(ts) // 21600000) * 21600000 AS ws, COUNT(*), "
                f"SUM(x) FROM t GROUP BY {D}, k, ws", t=dk(t))
    assert len(want) > 20
    assert_rows_equal(rows(got), want)


def test_cte_and_stream_keep_a_date(partitions):
    t = table(7)
    want = duck(f"SELECT {days(D)}, x, {days(f'{D} + 1')} FROM t WHERE {D} >= DATE '1970-01-01'",
                t=dk(t))
    assert want
    for sql in [f"WITH c AS (SELECT {D} AS d, x FROM t) "
                "SELECT d, x, d + 1 AS d1, TYPEOF(d) AS ty FROM c WHERE d >= DATE '1970-01-01'",
                f"CREATE STREAM c AS SELECT {D} AS d, x FROM t; "
                "SELECT d, x, d + 1 AS d1, TYPEOF(d) AS ty FROM c WHERE d >= DATE '1970-01-01'",
                f"CREATE STREAM c AS SELECT {D} AS d, COUNT(*) AS n, MAX(x) AS x FROM t GROUP BY {D}; "
                "SELECT d, x, d + 1 AS d1, TYPEOF(d) AS ty FROM c WHERE d >= DATE '1970-01-01'",
                f"WITH c AS (SELECT {D} AS d, x FROM t) SELECT d, MAX(x) AS x, MIN(d + 1) AS d1, "
                "TYPEOF(d) AS ty FROM c WHERE d >= DATE '1970-01-01' GROUP BY d"]:
        got = run(sql, t, partitions)
        assert got.schema.field("d").type == pa.date32() == got.schema.field("d1").type, sql
        assert set(got.column("ty").to_pylist()) == {"DATE"}, sql
        if "GROUP BY" not in sql:
            assert_rows_equal([r[:3] for r in rows(got)], want, what=sql)
        else:  # a changelog of the groups: its last row per day
            assert {r[0] for r in rows(got)} == {r[0] for r in want}, sql


def test_a_source_date_column_stays_a_timestamp(partitions):
    d = pa.array([dt.date(2024, 3, 5), None, dt.date(1969, 12, 31)], pa.date32())
    got = vs.query("SELECT d, TYPEOF(d) AS ty, CAST(d AS DATE) AS dd FROM t",
                   {"t": pa.table({"d": d})}, partitions=partitions).to_arrow()
    assert got.schema.types == [pa.int64(), pa.string(), pa.date32()]
    assert got.column("d").to_pylist() == [_ms("2024-03-05 00:00:00"), None, -DAY]
    assert set(got.column("ty").to_pylist()) == {"TIMESTAMP"}
    assert got.column("dd").to_pylist() == d.to_pylist()
    # read through a stream and a CTE, it is still the source's TIMESTAMP
    for sql in ["CREATE STREAM s AS SELECT d, TYPEOF(d) AS ty FROM t; SELECT d, ty, TYPEOF(d) AS ty2 FROM s",
                "WITH s AS (SELECT d, TYPEOF(d) AS ty FROM t) SELECT d, ty, TYPEOF(d) AS ty2 FROM s"]:
        got = vs.query(sql, {"t": pa.table({"d": d})}, partitions=partitions).to_arrow()
        assert got.schema.types == [pa.int64(), pa.string(), pa.string()], sql
        assert got.to_pylist() == [{"d": v, "ty": "TIMESTAMP", "ty2": "TIMESTAMP"}
                                   for v in (_ms("2024-03-05 00:00:00"), None, -DAY)], sql


def test_current_date_is_todays_utc_date(partitions):
    before = dt.datetime.now(dt.timezone.utc).date()
    got = vs.query("SELECT CURRENT_DATE AS a, CURRENT_DATE() AS b, TYPEOF(CURRENT_DATE) AS ty, "
                   "CURRENT_DATE - DATE '1970-01-01' AS n FROM t", {"t": {"x": [1, 2, 3]}},
                   partitions=partitions).to_arrow()
    after = dt.datetime.now(dt.timezone.utc).date()
    assert got.schema.types[:2] == [pa.date32(), pa.date32()]
    for row in got.to_pylist():
        assert row["a"] in (before, after) and row["b"] in (before, after)
        assert row["ty"] == "DATE"
        assert row["n"] == (row["a"] - dt.date(1970, 1, 1)).days
    assert duck("SELECT typeof(CURRENT_DATE)") == [("DATE",)]


def test_typeof_and_date_functions_as_duckdb(partitions):
    t = table(8)
    exprs = [(f"TYPEOF({D})", False), (f"YEAR({D})", False), (f"MONTH({D})", False),
             (f"DAY({D})", False), (f"DAYOFWEEK({D})", False), (f"DATE_PART('doy', {D})", False),
             (f"EXTRACT(quarter FROM {D})", False), (f"STRFTIME({D}, '%Y/%m/%d %H:%M')", False),
             (f"DATEDIFF('day', {D}, DATE '2000-01-01')", False),
             (f"DATEDIFF('month', {D}, ts)", False), (f"EPOCH_MS({D})", False),
             (f"DATE_TRUNC('month', {D})", True), (f"DATE_PART('epoch', {D})", False)]
    sel = " AND ts BETWEEN TIMESTAMP '0001-01-01 00:00:00' AND TIMESTAMP '9999-12-31 00:00:00'"
    got = run("SELECT id, " + ", ".join(f"{e} AS c{i}" for i, (e, _) in enumerate(exprs))
              + " FROM t WHERE id >= 0" + sel, t, partitions)
    want = duck("SELECT id, " + ", ".join(ms(e) if ts else e for e, ts in exprs)
                + " FROM t WHERE id >= 0" + sel, t=dk(t))
    assert_rows_equal(rows(got), want)


def test_union_all_typing_as_duckdb(partitions):
    t = table(9)
    got = run(f"SELECT id, {D} AS d FROM t UNION ALL SELECT id, DATE '2024-02-29' AS d FROM t",
              t, partitions)
    assert got.schema.field("d").type == pa.date32()
    assert_rows_equal(rows(got), duck(f"SELECT id, {days(D)} FROM t UNION ALL "
                                      f"SELECT id, {days(chr(39) + '2024-02-29' + chr(39) + '::DATE')} "
                                      "FROM t", t=dk(t)))
    got = run(f"SELECT id, {D} AS d FROM t UNION ALL SELECT id, ts AS d FROM t", t, partitions)
    assert got.schema.field("d").type == pa.int64()  # a TIMESTAMP, as epoch ms
    want = duck(f"SELECT id, epoch_ms(d) FROM (SELECT id, {D} AS d FROM t UNION ALL "
                "SELECT id, ts FROM t)", t=dk(t))
    assert duck(f"SELECT DISTINCT typeof(d) FROM (SELECT {D} AS d FROM t UNION ALL "
                "SELECT ts FROM t)", t=dk(t)) == [("TIMESTAMP",)]
    assert_rows_equal(rows(got), want)


@pytest.mark.parametrize("sql, column, message", [
    ("SELECT CAST(x AS DATE) AS d FROM t", 8, "cannot CAST BIGINT to DATE"),
    ("SELECT CAST(1.5 AS DATE) AS d FROM t", 8, "cannot CAST DOUBLE to DATE"),
    ("SELECT CAST(DATE '2024-01-01' AS BIGINT) AS d FROM t", 8, "cannot CAST DATE to BIGINT"),
    ("SELECT DATE '2024-02-30' AS d FROM t", 8, "cannot read '2024-02-30' as a DATE"),
    ("SELECT DATE '2024-01-01' * 2 AS d FROM t", 8, "operator '*' does not take DATE and BIGINT"),
    ("SELECT x FROM t WHERE DATE '2024-01-01' > x", 23, "cannot compare DATE with BIGINT"),
    ("SELECT x FROM t WHERE DATE '2024-01-01' > 'soon'", 23, "cannot compare DATE with 'soon'"),
    ("SELECT  TIME '10:00:00' AS r FROM t", 9, "velostream has no TIME type"),
    ("SELECT CASE WHEN x > 0 THEN DATE '2024-01-01' ELSE 5 END AS r FROM t", 8,
     "cannot mix BIGINT and DATE"),
    ("SELECT x, COALESCE(DATE '2024-01-01', x) AS r FROM t", 11, "cannot mix BIGINT and DATE"),
])
def test_refused_date_operations_are_sql_errors(sql, column, message):
    with pytest.raises(SqlError, match=re.escape(message)) as info:
        vs.query(sql, {"t": {"x": [1]}})
    assert (info.value.line, info.value.column) == (1, column)


def test_try_cast_that_does_not_exist_is_null_as_duckdb():
    sql = ("SELECT TRY_CAST(x AS DATE) AS a, TRY_CAST(DATE '2024-01-01' AS BIGINT) AS b, "
           "TRY_CAST(x > 0 AS DATE) AS c FROM t")
    got = vs.query(sql, {"t": {"x": [1, None]}}).to_arrow()
    assert got.schema.types == [pa.date32(), pa.int64(), pa.date32()]
    assert got.to_pylist() == [{"a": None, "b": None, "c": None}] * 2
    assert duck(sql, t={"x": [1, None]}) == [(None, None, None)] * 2


def test_date_range_overflow_is_an_error():
    with pytest.raises(VelostreamError, match="leaves the DATE range"):
        vs.query("SELECT DATE '2024-01-01' + x AS d FROM t", {"t": {"x": [1, 3_000_000_000]}})


def test_snapshot_and_restore_keep_date_groups():
    sql = f"SELECT {D} AS d, COUNT(*) AS n, MAX({D}) AS m FROM s GROUP BY {D}"
    t = table(10, 120)
    eng = vs.Engine(sql)
    eng.push("s", t.slice(0, 60))
    again = vs.Engine(sql)
    again.restore(eng.snapshot())
    out = again.push("s", t.slice(60)).to_arrow()
    out = pa.concat_tables([out, again.flush().to_arrow()])
    assert out.schema.field("d").type == pa.date32() == out.schema.field("m").type
    final = {}
    for d, n, m in rows(out):
        final[d] = (n, m)
    want = duck(f"SELECT {days(D)}, COUNT(*), {days(f'MAX({D})')} FROM t GROUP BY {D}", t=dk(t))
    touched = {r[0] for r in rows(pa.table({"d": vs.query(f"SELECT {D} AS d FROM t",
                                                           {"t": t.slice(60)}).to_arrow()
                                            .column("d")}))}
    assert_rows_equal([(d, *final[d]) for d in touched], [r for r in want if r[0] in touched])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_file_sink_writes_dates(tmp_path, fmt, partitions):
    from velostream.io.base import Properties
    from velostream.io.files import FileSink
    t = table(11, 80).filter(pa.compute.greater_equal(
        pa.array(range(80)), 0))  # years 1 to 9999 only: both writers' calendars
    t = t.filter(pa.compute.and_(pa.compute.greater_equal(t["ts"], pa.scalar(0, pa.timestamp("ms"))),
                                 pa.compute.less(t["ts"], pa.scalar(_ms("2200-01-01 00:00:00"),
                                                                    pa.timestamp("ms")))))
    path = tmp_path / f"out.{fmt}"
    sink = FileSink("out", Properties("out", {"path": str(path)}))
    job = vs.Job(f"SELECT id, {D} AS d, {D} + x AS dx FROM t", {"t": split_batches(t, 9)}, sink,
                 partitions=partitions)
    job.run()
    sink.close()
    want = duck(f"SELECT id, CAST({D} AS VARCHAR), CAST({D} + x AS VARCHAR) FROM t", t=dk(t))
    text = path.read_text().splitlines()
    if fmt == "jsonl":
        got = [(r["id"], r["d"], r["dx"]) for r in map(json.loads, text)]
    else:
        assert text[0].replace('"', "") == "id,d,dx"
        got = [(int(i), d or None, dx or None) for i, d, dx in (line.split(",") for line in text[1:])]
    assert len(got) == t.num_rows
    assert_rows_equal(got, want)


@pytest.mark.parametrize("agg", ["SUM", "AVG", "MEDIAN", "STDDEV", "VAR_SAMP",
                                 "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY"])
def test_numeric_aggregates_of_a_date_are_refused(agg):
    call = f"{agg} {D})" if "(" in agg else f"{agg}({D})"
    with pytest.raises(SqlError, match="of a DATE is not supported"):
        vs.query(f"SELECT k, {call} AS r FROM t GROUP BY k", {"t": table(12, 10)})


def test_min_max_over_rows_windows_of_a_date(partitions):
    t = table(13)
    got = run(f"SELECT id, MIN({D}) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING "
              f"AND CURRENT ROW) AS lo, MAX({D}) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN "
              "3 PRECEDING AND CURRENT ROW) AS hi FROM t", t, partitions)
    assert got.schema.types[1:] == [pa.date32(), pa.date32()]
    want = duck(f"SELECT id, {days(f'MIN({D}) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)')}, "
                f"{days(f'MAX({D}) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)')} "
                "FROM t", t=dk(t))
    assert_rows_equal(rows(got), want)


def test_kafka_codecs_write_and_read_a_date():
    """A DATE column as a Kafka sink writes it: JSON text 'YYYY-MM-DD' (what the JSON decoder
    reads back as a date for a DATE field), and Avro's int with logicalType date."""
    from types import SimpleNamespace

    from velostream.io.avro import AvroCodec
    from velostream.io.codecs import JsonDecoder, parse_schema
    from velostream.io.kafka import KafkaSink
    out = vs.query(f"SELECT id, {D} AS d FROM t WHERE ts BETWEEN TIMESTAMP '0001-01-01 00:00:00' "
                   "AND TIMESTAMP '9999-12-31 00:00:00' OR ts IS NULL", {"t": table(14, 60)})
    rb = out.to_arrow().combine_chunks().to_batches()[0]
    assert rb.schema.field("d").type == pa.date32()
    values = KafkaSink._values(SimpleNamespace(_avro=None), rb)  # the sink's JSON encoding
    want = [(r["id"], None if r["d"] is None else r["d"].isoformat()) for r in rb.to_pylist()]
    assert [(m["id"], m["d"]) for m in map(json.loads, values)] == want
    decoded, rejects = JsonDecoder("t", schema=parse_schema("id BIGINT, d DATE")).decode(
        values, str)[:2]
    assert not rejects and decoded.column(decoded.schema.get_field_index("d")).equals(
        rb.column(1))
    codec = AvroCodec.from_arrow(rb.schema)
    assert ({"type": "int", "logicalType": "date"} in
            next(f["type"] for f in codec.schema["fields"] if f["name"] == "d"))
    back = codec.decode(codec.encode(rb), str)[0]
    assert back.column(1).equals(rb.column(1))


def test_join_on_a_date_key(partitions):
    """Two streams joined on a DATE each makes (the partitions' exchange routes date keys)."""
    rng = random.Random(15)
    a = pa.table({"_TIMESTAMP": pa.array(sorted(rng.randint(-3 * DAY, 3 * DAY) for _ in range(60))),
                  "x": pa.array(range(60), pa.int64())})
    b = pa.table({"_TIMESTAMP": pa.array(sorted(rng.randint(-3 * DAY, 3 * DAY) for _ in range(40))),
                  "y": pa.array(range(40), pa.int64())})
    sql = ("WITH l AS (SELECT CAST(EPOCH_MS(_TIMESTAMP) AS DATE) AS d, x FROM a), "
           "r AS (SELECT CAST(EPOCH_MS(_TIMESTAMP) AS DATE) AS d, y FROM b) "
           "SELECT l.d, x, y FROM l JOIN r ON l.d = r.d WITHIN 10 DAYS")
    got = vs.query(sql, {"a": split_batches(a, 7), "b": split_batches(b, 5)},
                   partitions=partitions).to_arrow()
    assert got.schema.field("d").type == pa.date32()
    want = duck("SELECT (CAST(epoch_ms(a._TIMESTAMP) AS DATE) - DATE '1970-01-01'), x, y FROM a "
                "JOIN b ON CAST(epoch_ms(a._TIMESTAMP) AS DATE) = CAST(epoch_ms(b._TIMESTAMP) AS DATE)",
                a=a, b=b)
    assert len(want) > 50
    assert_rows_equal(rows(got), want)


def test_python_functions_take_and_return_dates(partitions):
    """vs.udf and vs.udaf see a DATE as date32 (as it leaves a query) and may return one."""
    import pyarrow.compute as pc

    class LatestDay:
        def init(self):
            return None

        def update(self, s, d):
            assert d.type == pa.date32()
            m = pc.max(d).as_py() if len(d) else None
            return m if s is None or (m is not None and m > s) else s

        def merge(self, a, b):
            return a if b is None or (a is not None and a > b) else b

        def finish(self, s):
            return s

    vs.udf("date_type_next_day", lambda d: pc.add(d.cast(pa.timestamp("ms")), pa.scalar(
        DAY, pa.duration("ms"))).cast(pa.date32()), returns="DATE")
    vs.udaf("date_type_latest", LatestDay, returns="DATE")
    t = table(16).filter(pa.compute.is_valid(pa.compute.cast(table(16)["ts"], pa.int64())))
    t = t.filter(pa.compute.and_(pa.compute.greater(t["ts"], pa.scalar(-10 ** 13, pa.timestamp("ms"))),
                                 pa.compute.less(t["ts"], pa.scalar(10 ** 13, pa.timestamp("ms")))))
    got = run(f"SELECT id, DATE_TYPE_NEXT_DAY({D}) AS n FROM t", t, partitions)
    assert got.schema.field("n").type == pa.date32()
    assert_rows_equal(rows(got), duck(f"SELECT id, {days(f'{D} + 1')} FROM t", t=dk(t)))
    got = run(f"SELECT k, DATE_TYPE_LATEST({D}) AS m FROM t GROUP BY k", t, partitions)
    assert got.schema.field("m").type == pa.date32()
    assert_rows_equal(last_per_key(rows(got), [0]),
                      duck(f"SELECT k, {days(f'MAX({D})')} FROM t GROUP BY k", t=dk(t)))


def test_explain_shows_dates_as_dates():
    plan = vs.explain(f"SELECT {D} + 2 AS d FROM t WHERE {D} >= '2024-01-01' "
                      "AND CURRENT_DATE - DATE '2000-02-29' > 3", {"t": table(17, 5)})
    assert "DATE '2024-01-01'" in plan and "(CURRENT_DATE() - DATE '2000-02-29')" in plan
    assert "d DATE" in plan


def test_pipeline_snapshot_and_restore_keep_date_groups():
    """A stream that makes a DATE, read by a GROUP BY on it: cut, snapshot, restore in a fresh
    engine, and the rest gives what one engine gives (DATE types included)."""
    sql = (f"CREATE STREAM c AS SELECT {D} AS d, x FROM t; "
           "SELECT d, COUNT(*) AS n, MIN(d + x) AS lo FROM c GROUP BY d")
    t = table(18, 200)
    batches = split_batches(t, 25)
    whole = vs.Engine(sql)
    expected = [whole.push("t", b).to_arrow() for b in batches] + [whole.flush().to_arrow()]
    first = vs.Engine(sql)
    got = [first.push("t", b).to_arrow() for b in batches[:4]]
    second = vs.Engine(sql)
    second.restore(first.snapshot())
    got += [second.push("t", b).to_arrow() for b in batches[4:]] + [second.flush().to_arrow()]
    for part in got:
        if part.num_rows:
            assert part.schema.field("d").type == pa.date32() == part.schema.field("lo").type
    got_rows = [r for p in got for r in rows(p)]
    assert_rows_equal(got_rows, [r for p in expected for r in rows(p)])
    assert_rows_equal(last_per_key(got_rows, [0]), duck(
        f"SELECT {days(D)}, COUNT(*), {days(f'MIN({D} + x)')} FROM t GROUP BY {D}", t=dk(t)))
