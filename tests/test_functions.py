"""The scalar functions of the function table (velostream/exec/functions.py) against DuckDB.

Every function runs over seeded data with NULLs and edge values (empty strings, accents and
multi-byte characters, leap days, negative epochs, invalid JSON), through ``vs.query`` at
partitions 1 and 2 and through ``vs.Engine`` with the input split into two batches; the expected
values are DuckDB's. docs/FUNCTIONS.md is generated from the table and must equal it.
"""
from __future__ import annotations

import datetime as dt
import math
import random
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import SqlError, VelostreamError
from velostream.exec import functions as F

ROOT = Path(__file__).resolve().parents[1]
N_ROWS = 400

# --------------------------------------------------------------------------- data

_EDGE_TIMES = ["2000-02-29 23:59:59.999", "2024-02-29 00:00:00", "1900-03-01 12:00:00",
               "1969-12-31 23:59:59.999", "1970-01-01 00:00:00", "1968-02-29 06:30:00.5",
               "2021-01-03 10:00:00", "2020-12-31 23:00:00", "2099-12-31 23:59:59.001"]
_ALPHABET = ["a", "b", "x", "é", "€", ",", ";", "-", " ", "1", "2", "A", "É", "\t", "ab", "ß", "\n",
             "\\x80", "\\u00e9", "%", "_", "🙂"]  # escapes as plain text, a 4-byte character
_JSON_DOCS = ['{"a": 1, "b": {"c": [1, 2.5, "x"]}, "k y": true}', '{"a": "té\\u00e9\\n", "b": null}',
              '[1, [2, 3], {"a": -0.0}]', '{"a": {"b": {"c": null}}}', '"just a string"', '12',
              '{"a": [], "b": {}}', '{}', 'null', '{"a": 123456789012345678901}', '{"a": 1e2}',
              '{"b": {"c": [{"d": "deep"}]}}', '  {"a" : 5 }  ']
# (DuckDB also reads NaN, Infinity and trailing commas; strict JSON does not: docs/FUNCTIONS.md)
_BAD_JSON = ["{bad", "", "{'a': 1}", "[1, 2", "{a: 1}", "tru", '{"a": 1} x']


def _ms(text: str) -> int:
    d = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp() * 1000 + (0.5 if d.timestamp() >= 0 else -0.5))


def _times(rng: random.Random, n: int) -> list:
    lo, hi = _ms("1890-01-01 00:00:00"), _ms("2110-01-01 00:00:00")
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            out.append(None)
        elif r < 0.3:
            out.append(_ms(rng.choice(_EDGE_TIMES)))
        elif r < 0.4:
            out.append(rng.randint(-5000, 5000))  # around the epoch, both sides
        else:
            out.append(rng.randint(lo, hi))
    return out


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8])))


def table(seed: int = 0, n: int = N_ROWS) -> pa.Table:
    rng = random.Random(seed)
    texts = [None if rng.random() < 0.08 else _text(rng) for _ in range(n)]
    others = [None if rng.random() < 0.08 else rng.choice([",", "a", "", "é", "x", " "]) for _ in range(n)]
    docs = [None if rng.random() < 0.08 else rng.choice(_JSON_DOCS) for _ in range(n)]
    secs = [None if rng.random() < 0.08 else rng.choice(
        [rng.uniform(-3e9, 5e9), rng.randint(-10**6, 10**6) / 1000, -1.5, 0.0, 951782400.0])
        for _ in range(n)]
    return pa.table({
        "i": pa.array(range(n), pa.int64()),
        "ts": pa.array(_times(rng, n), pa.timestamp("ms")),
        "ts2": pa.array(_times(rng, n), pa.timestamp("ms")),
        "s": pa.array(texts, pa.string()),
        "s2": pa.array(others, pa.string()),
        "k": pa.array([None if rng.random() < 0.05 else rng.randint(-4, 6) for _ in range(n)], pa.int64()),
        "ms": pa.array([None if rng.random() < 0.05 else rng.randint(-10**12, 4 * 10**12) for _ in range(n)],
                       pa.int64()),
        "sec": pa.array(secs, pa.float64()),
        "j": pa.array(docs, pa.string()),
    })


# --------------------------------------------------------------------------- harness


def _duck(exprs: list[str], data: pa.Table) -> list[list]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("raw", data)
    # TIMESTAMP (microseconds): DuckDB's epoch_ms has no kernel for the TIMESTAMP_MS of Arrow input
    stamps = [f"{c}::TIMESTAMP AS {c}" for c in data.column_names if pa.types.is_timestamp(data[c].type)]
    con.execute(f"CREATE VIEW t AS SELECT * REPLACE ({', '.join(stamps)}) FROM raw" if stamps
                else "CREATE VIEW t AS SELECT * FROM raw")
    cols = ", ".join(f"{e} AS r{n}" for n, e in enumerate(exprs))
    rows = con.execute(f"SELECT {cols} FROM t ORDER BY i").fetchall()
    return [list(r) for r in zip(*rows)] if rows else [[] for _ in exprs]


def _ours(exprs: list[str], data: pa.Table, how) -> list[list]:
    cols = ", ".join(f"{e} AS r{n}" for n, e in enumerate(exprs))
    sql = f"SELECT i, {cols} FROM t"
    if how == "engine":
        eng = vs.Engine(sql)
        half = data.num_rows // 2
        rows = []
        for part in (data.slice(0, half), data.slice(half)):
            rows += eng.push("t", part.combine_chunks().to_batches()[0]).to_pylist()
    else:
        rows = vs.query(sql, {"t": data}, partitions=how).to_pylist()
    rows.sort(key=lambda r: r["i"])
    return [[r[f"r{n}"] for r in rows] for n in range(len(exprs))]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b) if isinstance(a, bool) or isinstance(b, bool) else a == b


def check(cases: list[tuple[str, str]], data: pa.Table, how) -> None:
    """Each (our expression, DuckDB's expression) gives DuckDB's value on every row."""
    want = _duck([d for _, d in cases], data)
    got = _ours([o for o, _ in cases], data, how)
    for (ours, theirs), w, g in zip(cases, want, got):
        ms = data["ts"].cast(pa.int64())  # (a date before year 1 has no Python datetime)
        bad = [(i, data["s"][i].as_py(), ms[i].as_py(), x, y)
               for i, (x, y) in enumerate(zip(g, w)) if not _same(x, y)]
        assert not bad, f"{ours} (DuckDB: {theirs}) differs on rows (i, s, ts ms, ours, DuckDB): {bad[:5]}"


HOW = [1, 2, "engine"]

# --------------------------------------------------------------------------- date and time

_UNITS = ["millennium", "century", "decade", "year", "quarter", "month", "week", "day", "hour",
          "minute", "second", "millisecond"]
_PARTS = ["year", "quarter", "month", "day", "hour", "minute", "second", "millisecond",
          "microsecond", "dow", "isodow", "doy", "week", "isoyear", "yearweek", "decade", "century",
          "millennium", "era", "epoch", "julian"]
_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%g", "%d/%m/%y %I:%M %p", "%a %A %b %B %h %j",
            "%-d.%-m.%Y %-H:%-M:%-S %-j %-y", "%u %w %U %W %V %G", "%f|%n|%z|%Z|%%|%x %X|%c", "plain"]


@pytest.mark.parametrize("how", HOW)
def test_date_trunc_and_date_part(how):
    cases = [(f"DATE_TRUNC('{u}', ts)", f"epoch_ms(date_trunc('{u}', ts))") for u in _UNITS]
    cases += [(f"DATE_PART('{p}', ts)", f"date_part('{p}', ts)") for p in _PARTS]
    cases += [("EXTRACT('year', ts)", "extract('year' FROM ts)"),
              ("DATE_PART('Hours', ts)", "date_part('hour', ts)"),
              ("DATE_TRUNC('weeks', ts2)", "epoch_ms(date_trunc('week', ts2))")]
    check(cases, table(1), how)


def far_times(seed: int, n: int = 300) -> pa.Table:
    """Times between about -3000-01-01 and 3000-12-31."""
    rng = random.Random(seed)
    lo, hi = -156_850_000_000_000, 32_535_000_000_000
    return pa.table({"i": pa.array(range(n), pa.int64()),
                     "ts": pa.array([rng.randint(lo, hi) for _ in range(n)], pa.timestamp("ms")),
                     "s": pa.array([None] * n, pa.string())})


def test_dates_far_from_now():
    # years -3000 to 3000 (DuckDB counts a year 0, as numpy does): decades, centuries and
    # millennia truncate toward zero, a year before 0 is not padded, yearweek takes its sign
    data = far_times(13)
    cases = [(f"DATE_PART('{p}', ts)", f"date_part('{p}', ts)") for p in _PARTS]
    cases += [(f"DATE_TRUNC('{u}', ts)", f"epoch_ms(date_trunc('{u}', ts))") for u in _UNITS]
    cases += [("STRFTIME(ts, '%Y|%y|%m|%d|%j|%a|%U|%W|%V|%G|%u')",
               "strftime(ts, '%Y|%y|%m|%d|%j|%a|%U|%W|%V|%G|%u')")]
    cases += [(f"DATEDIFF('{u}', ts, '0005-01-01')", f"datediff('{u}', ts, TIMESTAMP '0005-01-01')")
              for u in ["millennium", "century", "decade", "year", "quarter", "month", "week", "day"]]
    check(cases, data, 1)


@pytest.mark.parametrize("how", HOW)
def test_strftime_strptime(how):
    cases = [(f"STRFTIME(ts, '{f}')", f"strftime(ts, '{f}')") for f in _FORMATS]
    cases += [("DATE_FORMAT(ts2, '%Y%m%d')", "strftime(ts2, '%Y%m%d')")]
    for f in ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M:%S.%g", "%Y%m%d %-H:%M", "%b %d %Y",
              "%Y-%m-%d %H:%M:%S.%f"]:
        cases.append((f"EPOCH_MS(STRPTIME(STRFTIME(ts, '{f}'), '{f}'))",
                      f"epoch_ms(strptime(strftime(ts, '{f}'), '{f}'))"))
    cases.append(("EPOCH_MS(TRY_STRPTIME(s, '%Y'))", "epoch_ms(try_strptime(s, '%Y'))"))
    check(cases, table(2), how)


@pytest.mark.parametrize("how", HOW)
def test_epochs_and_datediff(how):
    cases = [("EPOCH_MS(TO_TIMESTAMP(sec))", "epoch_ms(to_timestamp(sec))"),
             ("EPOCH_MS(FROM_UNIXTIME(k))", "epoch_ms(to_timestamp(k))"),
             ("EPOCH_MS(ts)", "epoch_ms(ts)"), ("EPOCH_MS(EPOCH_MS(ms))", "epoch_ms(epoch_ms(ms))"),
             ("EPOCH(ts)", "epoch(ts)"), ("UNIX_TIMESTAMP(ts)", "CAST(floor(epoch(ts)) AS BIGINT)"),
             ("EPOCH_MS(DATE_TRUNC('day', EPOCH_MS(ms)))", "epoch_ms(date_trunc('day', epoch_ms(ms)))")]
    cases += [(f"DATEDIFF('{u}', ts, ts2)", f"datediff('{u}', ts, ts2)") for u in _UNITS + ["microsecond"]]
    cases += [("DATE_DIFF('hour', ts2, ts)", "date_diff('hour', ts2, ts)"),
              ("DATEDIFF('day', ts, '2000-02-29')", "datediff('day', ts, TIMESTAMP '2000-02-29')")]
    check(cases, table(3), how)


def test_window_bounds_are_times(partitions):
    # the planner types _WINDOW_START / _WINDOW_END (and window_time) BIGINT: they are epoch ms
    t = pa.table({"at": pa.array([61_000, 125_000, 130_000, 3_599_999], pa.timestamp("ms")),
                  "u": ["a", "b", "a", "b"]})
    got = vs.query("SELECT u, STRFTIME(_WINDOW_START, '%H:%M') AS w, DATEDIFF('second', _WINDOW_START, "
                   "_WINDOW_END) AS d, DATE_PART('minute', _WINDOW_END) AS m, COUNT(*) AS n FROM t "
                   "GROUP BY u WINDOW TUMBLING(at, INTERVAL '1' MINUTE)", {"t": t}, partitions=partitions)
    assert sorted((r["u"], r["w"], r["d"], r["m"], r["n"]) for r in got) == [
        ("a", "00:01", 60, 2, 1), ("a", "00:02", 60, 3, 1), ("b", "00:02", 60, 3, 1), ("b", "00:59", 60, 0, 1)]
    got = vs.query("SELECT STRFTIME(window_time, '%H:%M:%S.%g') AS w, COUNT(*) AS n FROM TABLE(TUMBLE("
                   "TABLE t, DESCRIPTOR(at), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
                   {"t": t}, partitions=partitions)
    assert sorted((r["w"], r["n"]) for r in got) == [("00:01:59.999", 1), ("00:02:59.999", 2),
                                                     ("00:59:59.999", 1)]
    with pytest.raises(SqlError, match=re.escape("needs a TIMESTAMP, found INT64 (EPOCH_MS(x)")):
        vs.query("SELECT STRFTIME(1000 + 1, '%H') AS w FROM t", {"t": t})


def test_now_is_processing_time():
    before = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    rows = vs.query("SELECT NOW() AS a, CURRENT_TIMESTAMP() AS b, UNIX_TIMESTAMP() AS c, x FROM t",
                    {"t": {"x": [1, 2, 3]}}).to_pylist()
    after = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    assert len({r["a"] for r in rows}) == 1  # one value per batch
    for r in rows:
        assert before <= r["a"] <= after and before <= r["b"] <= after
        assert before // 1000 <= r["c"] <= after // 1000


def test_to_timestamp_out_of_range_fails_the_row():
    with pytest.raises(VelostreamError, match="out of range"):
        vs.query("SELECT TO_TIMESTAMP(x) AS r FROM t", {"t": {"x": [1.0, float("nan")]}})
    with pytest.raises(VelostreamError, match="out of range"):
        vs.query("SELECT TO_TIMESTAMP(x) AS r FROM t", {"t": {"x": [float("inf")]}})
    got = vs.query("SELECT TO_TIMESTAMP(x) AS r FROM t", {"t": {"x": [None, -0.0015]}}).to_pylist()
    assert [r["r"] for r in got] == [None, -2]  # -1500 us: floor to -2 ms


@pytest.mark.parametrize("how", [1, "engine"])
def test_try_strptime_of_impossible_dates(how):
    # Arrow's strptime rolls 2023-02-29 over to March 1st; DuckDB (and velostream) reject it
    rng = random.Random(12)
    texts = [f"{rng.choice([1900, 2000, 2023, 2024])}-{rng.randint(1, 12):02d}-{rng.randint(1, 31):02d}"
             for _ in range(300)]
    texts += ["2024-366", "2023-366", "2023-365"]
    data = pa.table({"i": pa.array(range(len(texts)), pa.int64()), "x": texts,
                     "s": pa.array([None] * len(texts), pa.string()), "ts": pa.array([None] * len(texts),
                                                                                   pa.timestamp("ms"))})
    cases = [(f"EPOCH_MS(TRY_STRPTIME(x, '{f}'))", f"epoch_ms(try_strptime(x, '{f}'))")
             for f in ["%Y-%m-%d", "%Y-%d-%m", "%Y-%j"]]
    cases.append(("EPOCH_MS(TRY_STRPTIME(REPLACE(x, '-', '/'), '%y%m/%d/%Y'))",
                  "epoch_ms(try_strptime(replace(x, '-', '/'), '%y%m/%d/%Y'))"))
    check(cases, data, how)


def test_strptime_that_does_not_match_fails_the_row():
    with pytest.raises(VelostreamError, match="Could not parse string"):
        vs.query("SELECT STRPTIME(s, '%Y-%m-%d') AS r FROM t", {"t": {"s": ["2020-01-01", "x"]}})
    with pytest.raises(VelostreamError, match="Could not parse string"):  # no February 30th
        vs.query("SELECT STRPTIME(s, '%Y-%m-%d') AS r FROM t", {"t": {"s": ["2024-02-30"]}})
    got = vs.query("SELECT TRY_STRPTIME(s, '%Y-%m-%d') AS r FROM t",
                   {"t": {"s": ["2020-02-29", "x", None]}}).to_pylist()
    assert [r["r"] for r in got] == [_ms("2020-02-29 00:00:00"), None, None]


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize("how", HOW)
def test_text_functions(how):
    cases = [(e, e.replace("LPAD(s, k,", "LPAD(s, k::INTEGER,")) for e in [
        "REPLACE(s, 'a', 'xy')", "REPLACE(s, '', 'z')", "REPLACE(s, s2, '_')", "REPLACE(s, 'é', '')",
        "LTRIM(s)", "RTRIM(s)", "TRIM(s)", "LTRIM(s, 'a ')", "RTRIM(s, 'é,')", "TRIM(s, ' x')",
        "SPLIT_PART(s, ',', 1)", "SPLIT_PART(s, ',', 2)", "SPLIT_PART(s, ',', -1)", "SPLIT_PART(s, ',', -3)",
        "SPLIT_PART(s, ',', 0)", "SPLIT_PART(s, '', 2)", "SPLIT_PART(s, '', -1)", "SPLIT_PART(s, ',', k)",
        "SPLIT_PART(s, s2, 1)", "SPLIT_PART(s, 'ab', 2)",
        "LPAD(s, 5, 'xy')", "RPAD(s, 4, '€')", "LPAD(s, 0, 'x')", "RPAD(s, -2, 'x')", "LPAD(s, k, '-')",
        "LEFT(s, 2)", "LEFT(s, -1)", "LEFT(s, 0)", "RIGHT(s, 3)", "RIGHT(s, -2)", "RIGHT(s, 0)", "LEFT(s, k)",
        "RIGHT(s, k)", "STRPOS(s, 'a')", "STRPOS(s, '')", "STRPOS(s, 'é,')", "STRPOS(s, s2)", "INSTR(s, 'b')",
        "REVERSE(s)", "STARTS_WITH(s, 'a')", "STARTS_WITH(s, '')", "ENDS_WITH(s, 'b')", "STARTS_WITH(s, s2)",
        "CONCAT_WS(',', s, s2)", "CONCAT_WS(s2, s, 'x', NULL)", "CONCAT_WS('-', s, k, 1.5)",
        "CONCAT_WS(NULL, s)", "UPPER(REVERSE(s))", "LENGTH(LPAD(s, 6, 'ab'))"]]
    check(cases, table(4), how)


@pytest.mark.parametrize("how", HOW)
def test_if_and_ifnull(how):
    """Flink SQL's and DuckDB's IF and IFNULL: CASE and COALESCE, with their types unified."""
    cases = [(e, e) for e in [
        "IF(k > 0, s, s2)", "IF(k > 0, k, sec)", "IF(s = s2, 1, 0)", "IF(NULL, 1, 2)",
        "IF(k IS NULL, 'none', CAST(k AS VARCHAR))", "IFNULL(s, s2)", "IFNULL(k, -1)",
        "IFNULL(sec, k)", "IFNULL(NULL, s)", "IFNULL(IF(k > 2, NULL, k), 99)"]]
    check(cases, table(6), how)


@pytest.mark.parametrize("how", HOW)
def test_date_format_reads_flinks_java_patterns(how):
    """DATE_FORMAT(ts, 'yyyy-MM-dd') is Flink SQL's: a Java pattern, the same text as DuckDB's
    STRFTIME with the matching specifiers (printed as literal text it would be a silently wrong
    answer); with %-specifiers it is STRFTIME (MySQL's DATE_FORMAT)."""
    pairs = [("yyyy-MM-dd HH:mm:ss", "%Y-%m-%d %H:%M:%S"), ("yy/M/d H:m:s", "%y/%-m/%-d %-H:%-M:%-S"),
             ("EEE, d MMM yyyy h:mm a", "%a, %-d %b %Y %-I:%M %p"), ("EEEE MMMM DDD D", "%A %B %j %-j"),
             ("yyyy''MM'T'dd", "%Y'%mT%d"), ("HH:mm:ss.SSS", "%H:%M:%S.%g"), ("%Y-%m", "%Y-%m")]
    cases = [(f"DATE_FORMAT(ts, '{java.replace(chr(39), chr(39) * 2)}')",
              f"STRFTIME(ts, '{fmt.replace(chr(39), chr(39) * 2)}')") for java, fmt in pairs]
    check(cases, table(8), how)


@pytest.mark.parametrize("how", HOW)
def test_to_timestamp_of_text_as_flink_writes_it(how):
    """Flink SQL's TO_TIMESTAMP(text [, pattern]): DuckDB's CAST(text AS TIMESTAMP), and its
    STRPTIME with the pattern's specifiers; TO_TIMESTAMP(seconds) is unchanged."""
    rng = random.Random(5)
    stamps = [None if rng.random() < 0.1 else dt.datetime(2024, 1, 1) + dt.timedelta(
        seconds=rng.randint(-10**8, 10**8)) for _ in range(N_ROWS)]
    data = table(10).append_column("t1", pa.array(
        [None if x is None else x.strftime("%Y-%m-%d %H:%M:%S") for x in stamps]))
    data = data.append_column("t2", pa.array(
        [None if x is None else x.strftime("%d/%m/%Y %H:%M") for x in stamps]))
    check([("EPOCH_MS(TO_TIMESTAMP(t1))", "EPOCH_MS(CAST(t1 AS TIMESTAMP))"),
           ("EPOCH_MS(TO_TIMESTAMP(t2, 'dd/MM/yyyy HH:mm'))",
            "EPOCH_MS(STRPTIME(t2, '%d/%m/%Y %H:%M'))"),
           ("EPOCH_MS(TO_TIMESTAMP(t2, '%d/%m/%Y %H:%M'))",
            "EPOCH_MS(STRPTIME(t2, '%d/%m/%Y %H:%M'))"),
           ("EPOCH_MS(TO_TIMESTAMP(sec))", "EPOCH_MS(TO_TIMESTAMP(sec))")], data, how)


@pytest.mark.parametrize("how", HOW)
def test_date_sub_and_timestampdiff_count_whole_units_as_duckdb(how):
    """DATE_SUB (DuckDB) and TIMESTAMPDIFF (Flink SQL, unit as a bare word): whole units from ts to
    ts2, both ways, months by the calendar with DuckDB's end-of-month rule; pairs near month
    ends (Jan 31, Feb 29) and a day apart are mixed in with random ones."""
    data = table(11)
    rng = random.Random(11)
    month_ends = [dt.datetime(2024, m, d, h) for m, d in ((1, 31), (2, 29), (3, 31), (4, 30), (2, 28))
                  for h in (0, 10)]
    t1 = data["ts"].to_pylist()
    t2 = data["ts2"].to_pylist()
    for i in range(0, N_ROWS, 5):  # every fifth row: two month-end times
        t1[i], t2[i] = rng.choice(month_ends), rng.choice(month_ends)
    for i in range(1, N_ROWS, 5):  # and a pair less than a day apart
        if t1[i] is not None:
            t2[i] = t1[i] + dt.timedelta(hours=rng.randint(-30, 30), minutes=rng.randint(-59, 59))
    data = data.set_column(data.schema.get_field_index("ts"), "ts", pa.array(t1, pa.timestamp("ms")))
    data = data.set_column(data.schema.get_field_index("ts2"), "ts2", pa.array(t2, pa.timestamp("ms")))
    units = ["millennium", "century", "decade", "year", "quarter", "month", "week", "day", "hour",
             "minute", "second", "millisecond"]
    cases = [(f"DATE_SUB('{u}', ts, ts2)", f"DATE_SUB('{u}', ts, ts2)") for u in units]
    cases += [(f"TIMESTAMPDIFF({u.upper()}, ts2, ts)", f"DATE_SUB('{u}', ts2, ts)")
              for u in ("year", "month", "day", "hour", "second")]
    check(cases, data, how)


@pytest.mark.parametrize("how", HOW)
def test_timestampadd_moves_as_duckdb_adds_intervals(how):
    """Flink SQL's TIMESTAMPADD(unit, n, ts), the unit a bare word or text: DuckDB's
    ``ts + to_<unit>s(n)``, months by the calendar with a day past the month's end clamped;
    month-end times and NULL counts mixed in with random ones."""
    data = table(12)
    rng = random.Random(12)
    t1 = data["ts"].to_pylist()
    for i in range(0, N_ROWS, 4):  # month ends, where the clamping shows
        t1[i] = dt.datetime(2024, rng.choice([1, 3, 5, 8, 10, 12]), 31, rng.randrange(24))
    data = data.set_column(data.schema.get_field_index("ts"), "ts", pa.array(t1, pa.timestamp("ms")))
    units = {"millisecond": "to_milliseconds", "second": "to_seconds", "minute": "to_minutes",
             "hour": "to_hours", "day": "to_days", "week": "to_weeks", "month": "to_months",
             "quarter": "to_quarters", "year": "to_years", "decade": "to_decades"}
    cases = [(f"EPOCH_MS(TIMESTAMPADD({u.upper() if i % 2 else repr(u)}, k, ts))",
              f"EPOCH_MS(ts + {fn}(k))") for i, (u, fn) in enumerate(units.items())]
    check(cases, data, how)


@pytest.mark.parametrize("how", HOW)
def test_calendar_intervals_move_timestamps_as_duckdb(how):
    """``ts +/- INTERVAL 'n' MONTH`` (QUARTER, YEAR, WEEK; also ``INTERVAL + ts`` and the unit
    inside the text), by the calendar with a day past the month's end clamped, as DuckDB adds
    intervals; month ends, leap days and NULL times mixed in with random ones."""
    data = table(13)
    rng = random.Random(13)
    t1 = data["ts"].to_pylist()
    for i in range(0, N_ROWS, 3):  # month ends and leap days, where the clamping shows
        t1[i] = dt.datetime(rng.choice([2023, 2024]), rng.choice([1, 2, 3, 5, 8, 12]), 28,
                            rng.randrange(24))
        t1[i] += dt.timedelta(days=rng.randrange(4))  # the 28th to the 31st (or the next 1st-3rd)
    data = data.set_column(data.schema.get_field_index("ts"), "ts", pa.array(t1, pa.timestamp("ms")))
    intervals = ["INTERVAL '1' MONTH", "INTERVAL '-13' MONTHS", "INTERVAL 2 QUARTER",
                 "INTERVAL '1' YEAR", "INTERVAL '4 years'", "INTERVAL '3' WEEK", "INTERVAL '1 month'"]
    cases = [(f"EPOCH_MS(ts + {i})", f"EPOCH_MS(ts + {i})") for i in intervals]
    cases += [(f"EPOCH_MS(ts - {i})", f"EPOCH_MS(ts - {i})") for i in intervals]
    cases += [("EPOCH_MS(INTERVAL '5' MONTH + ts)", "EPOCH_MS(INTERVAL '5' MONTH + ts)"),
              ("EPOCH_MS(ts + INTERVAL '1' MONTH - INTERVAL '1' DAY)",
               "EPOCH_MS(ts + INTERVAL '1' MONTH - INTERVAL '1' DAY)"),
              ("EPOCH_MS(ts + -INTERVAL '1' YEAR)", "EPOCH_MS(ts + -INTERVAL '1' YEAR)")]
    check(cases, data, how)


@pytest.mark.parametrize("how", HOW)
def test_timestamps_as_text_are_duckdbs_whether_a_column_or_computed(how):
    """CAST(... AS VARCHAR), || and CONCAT write a TIMESTAMP as DuckDB does, a column's and a
    computed one's alike (``ts + INTERVAL`` is a TIMESTAMP): no fraction for a whole second,
    trailing zeros cut, negative epochs, and years before 1 and after 9999 ('(BC)')."""
    data = table(14)
    rng = random.Random(14)
    t1 = data["ts"].cast(pa.int64()).to_pylist()
    for i in range(0, N_ROWS, 7):  # whole seconds, tenths, negative epochs, far years
        t1[i] = rng.choice([0, 1000, 1500, -1500, 1704101405120, -62135596800000,
                            253402300799999, 10 ** 15, -10 ** 14, -62135596800001])
    data = data.set_column(data.schema.get_field_index("ts"), "ts",
                           pa.array(t1, pa.int64()).cast(pa.timestamp("ms")))
    cases = [("CAST(ts AS VARCHAR)", "CAST(ts AS VARCHAR)"),
             ("CAST(ts + INTERVAL '1' SECOND AS VARCHAR)", "CAST(ts + INTERVAL '1' SECOND AS VARCHAR)"),
             ("(ts - INTERVAL '250' MILLISECOND) || '|'", "(ts - INTERVAL '250' MILLISECOND) || '|'"),
             ("CONCAT(EPOCH_MS(ms), '')", "CONCAT(EPOCH_MS(ms), '')"),
             ("CAST(ts + INTERVAL '1' MONTH AS VARCHAR)", "CAST(ts + INTERVAL '1' MONTH AS VARCHAR)")]
    check(cases, data, how)


def test_a_cast_to_bigint_double_or_varchar_leaves_in_that_type():
    """A written CAST is no passthrough: CAST(int8_col AS BIGINT) is BIGINT (int64), as in
    DuckDB, though the bare column leaves as the int8 it came in as."""
    t = pa.table({"i8": pa.array([1, None, -3], pa.int8()), "f32": pa.array([1.5, None, 2], pa.float32()),
                  "ls": pa.array(["a", None, "b"], pa.large_string())})
    sql = ("SELECT i8, CAST(i8 AS BIGINT) AS b, CAST(f32 AS DOUBLE) AS d, CAST(ls AS VARCHAR) AS v "
           "FROM t")
    for p in (1, 2):
        got = vs.query(sql, {"t": t}, partitions=p).to_arrow()
        assert [f.type for f in got.schema] == [pa.int8(), pa.int64(), pa.float64(), pa.string()]
        assert got.to_pylist() == duckdb.sql(sql).to_arrow_table().to_pylist()


@pytest.mark.parametrize("sql, match", [
    ("SELECT k + INTERVAL '1' MONTH AS r FROM t", "added to a TIMESTAMP, found"),
    ("SELECT INTERVAL '1' MONTH AS r FROM t", "no fixed length"),
    ("SELECT INTERVAL '1' MONTH - ts AS r FROM t", "no fixed length"),
    ("SELECT ts FROM t WHERE ts > INTERVAL '1' YEAR", "no fixed length"),
    ("SELECT ts + (INTERVAL '1' MONTH + INTERVAL '1' MONTH) AS r FROM t", "no fixed length"),
    ("SELECT ts + INTERVAL '1.5' MONTH AS r FROM t", "not a whole number of months"),
    ("SELECT ts + INTERVAL '99999999' YEAR AS r FROM t", "out of range"),
    ("SELECT COUNT(*) AS c FROM t WINDOW TUMBLING(ts, INTERVAL '1' MONTH)", "no fixed length"),
    ("SELECT k, SUM(k) OVER (PARTITION BY s ORDER BY ts RANGE BETWEEN INTERVAL '1' MONTH "
     "PRECEDING AND CURRENT ROW) AS r FROM t", "no fixed length"),
])
def test_calendar_interval_misuse_is_an_error_at_the_text(sql, match):
    data = {"t": pa.table({"ts": pa.array([0], pa.timestamp("ms")), "k": [1], "s": ["a"]})}
    with pytest.raises(SqlError, match=match) as err:
        vs.query(sql, data)
    assert "line 1, column" in str(err.value)


def test_date_format_refuses_a_java_letter_it_cannot_print():
    for pattern in ("x-yyyy", "yyyy-MM-dd G", "SS", "'open"):
        with pytest.raises(SqlError, match="DATE_FORMAT"):
            vs.query(f"SELECT DATE_FORMAT(EPOCH_MS(ts), '{pattern.replace(chr(39), chr(39) * 2)}') "
                     "AS r FROM t", {"t": {"ts": [0]}})


@pytest.mark.parametrize("how", HOW)
def test_more_numbers_and_text_against_duckdb(how):
    """The trigonometric and logarithm family, TRUNC, CONTAINS, REPEAT and ASCII over columns
    with NULLs, zeros, negatives and values outside a function's domain (NaN and infinities, as
    DuckDB gives them); floats within 1e-12 (libm and numpy may differ in the last bit)."""
    exprs = ["SIN(sec)", "COS(sec)", "TAN(k)", "COT(sec)", "ASIN(sec / 1e9)", "ACOS(k / 3)",
             "ATAN(sec)", "ATAN2(sec, k)", "CBRT(k)", "DEGREES(k)", "RADIANS(sec)", "LOG2(k)",
             "LOG(k)", "LOG(2, sec)", "LOG(k, 8)", "TRUNC(sec)", "TRUNC(k)", "PI() * k",
             "TRUNC(CAST(sec AS DECIMAL(18, 3)))", "CONTAINS(s, 'a')", "CONTAINS(s, s2)",
             "REPEAT(s, 2)", "REPEAT(s2, k)", "ASCII(s)", "ASCII(s2)", "ISNAN(ACOS(k / 3))",
             "ISINF(LOG(k))", "ISFINITE(sec / k)", "ISNAN(k)", "ISINF(k)"]
    data = table(9)
    want = _duck(exprs, data)
    got = _ours(exprs, data, how)
    for e, w, g in zip(exprs, want, got):
        for i, (x, y) in enumerate(zip(g, w)):
            if isinstance(y, float) and isinstance(x, float):
                ok = (math.isnan(x) and math.isnan(y)) or x == y or math.isclose(x, y, rel_tol=1e-12)
            else:
                ok = x == y or (x is not None and y is not None and float(x) == float(y))
            assert ok, f"{e}: row {i}: ours {x!r}, DuckDB {y!r}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.mark.parametrize("seed", range(3))
def test_text_functions_with_random_parameters(seed):
    rng = random.Random(100 + seed)

    def piece():
        return "".join(rng.choice(_ALPHABET) for _ in range(rng.choice([0, 1, 1, 2, 3])))

    exprs = []
    for _ in range(8):
        a, b, k, w = piece(), piece(), rng.randint(-6, 6), rng.randint(-2, 9)
        exprs += [f"REPLACE(s, {_literal(a)}, {_literal(b)})", f"SPLIT_PART(s, {_literal(a)}, {k})",
                  f"STRPOS(s, {_literal(a)})", f"LEFT(s, {k})", f"RIGHT(s, {k})",
                  f"STARTS_WITH(s, {_literal(a)})", f"ENDS_WITH(s, {_literal(a)})",
                  f"LTRIM(s, {_literal(a)})", f"RTRIM(s, {_literal(a)})", f"TRIM(s, {_literal(a)})"]
        if b:
            exprs += [f"LPAD(s, {w}, {_literal(b)})", f"RPAD(s, {w}, {_literal(b)})"]
    cases = [(e, e) for e in exprs]
    check(cases, table(20 + seed), rng.choice(HOW))


@pytest.mark.parametrize("how", HOW)
def test_regex_functions(how):
    cases = [(e, e) for e in [
        "REGEXP_MATCHES(s, '^a')", "REGEXP_MATCHES(s, 'É', 'i')", "REGEXP_MATCHES(s, '[0-9]{2}')",
        "REGEXP_MATCHES(s, s2)", "REGEXP_REPLACE(s, '[aé]', '<\\0>')", "REGEXP_REPLACE(s, '[aé]', '_', 'g')",
        "REGEXP_REPLACE(s, '([a-z])([0-9])', '\\2\\1', 'g')", "REGEXP_REPLACE(s, 'A', '!', 'gi')",
        "REGEXP_EXTRACT(s, '[a-z]+')", "REGEXP_EXTRACT(s, '([a-z])([0-9]?)', 2)",
        "REGEXP_EXTRACT(s, '([a-z])([0-9]?)', 1)", "REGEXP_EXTRACT(s, '(x)', 5)",
        "REGEXP_EXTRACT(s, '(?:b)(x)?', 1)", "REGEXP_EXTRACT(s, '(A|é)+', 0, 'i')",
        "REGEXP_EXTRACT(s, '[(]?(a)[)]?\\(?', 1)", "REGEXP_EXTRACT(s, '$')",
        "REGEXP_MATCHES(s, 'a.b')", "REGEXP_MATCHES(s, 'a.b', 's')", "REGEXP_MATCHES(s, 'A.', 'ism')",
        "REGEXP_EXTRACT(s, '.b')", "REGEXP_EXTRACT(s, '.b', 0, 's')", "REGEXP_EXTRACT(s, '(.)$', 1, 'ic')",
        "REGEXP_REPLACE(s, '.', '_', 'gs')", "REGEXP_REPLACE(s, '.', '_', 'g')"]]
    cases.append(("REGEXP_LIKE(s, 'x|é')", "regexp_matches(s, 'x|é')"))
    check(cases, table(5), how)


# --------------------------------------------------------------------------- JSON

_PATHS = ["$.a", "$.b.c[1]", "$.b.c[#-1]", '$."k y"', "$[1][0]", "$[#-1].a", "$", "$.b", "$.a.b.c",
          "$.b.c[0].d", "/b/c/0", "a", "$.missing"]


@pytest.mark.parametrize("how", HOW)
def test_json_functions(how):
    cases = []
    for p in _PATHS:
        q = p.replace("'", "''")
        cases += [(f"JSON_EXTRACT(j, '{q}')", f"json_extract(j, '{q}')::VARCHAR"),
                  (f"JSON_VALUE(j, '{q}')", f"json_value(j, '{q}')"),
                  (f"JSON_EXTRACT_STRING(j, '{q}')", f"json_extract_string(j, '{q}')"),
                  (f"JSON_EXISTS(j, '{q}')", f"json_exists(j, '{q}')")]
    check(cases, table(6), how)


@pytest.mark.parametrize("how", HOW)
def test_invalid_json_is_null(how):
    # DuckDB raises an error for text that is not JSON; velostream makes it NULL
    # (docs/FUNCTIONS.md, "Differences from DuckDB"): the reference guards with json_valid
    data = table(7)
    rng = random.Random(7)
    docs = [rng.choice(_BAD_JSON) if rng.random() < 0.3 else v for v in data["j"].to_pylist()]
    data = data.set_column(data.schema.get_field_index("j"), "j", pa.array(docs, pa.string()))
    cases = []
    for p in ["$.a", "$.b.c[1]", "$"]:
        cases += [(f"{ours}(j, '{p}')", f"CASE WHEN json_valid(j) THEN {theirs}(j, '{p}') END{cast}")
                  for ours, theirs, cast in [("JSON_EXTRACT", "json_extract", "::VARCHAR"),
                                             ("JSON_VALUE", "json_value", ""),
                                             ("JSON_EXISTS", "json_exists", "")]]
    check(cases, data, how)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("expr, message", [
    ("DATE_TRUNC('hour')", "DATE_TRUNC takes 2 argument"),
    ("DATE_TRUNC('fortnight', ts)", "unknown unit 'fortnight'"),
    ("DATE_TRUNC(s, ts)", "unit must be a constant"),
    ("DATE_TRUNC('hour', k)", "needs a TIMESTAMP"),
    ("DATE_PART('yeer', ts)", "did you mean 'year'"),
    ("STRFTIME(ts, '%Q')", "unsupported format specifier %Q"),
    ("STRFTIME(ts)", "STRFTIME takes 2 argument"),
    ("STRPTIME(s, '%S.%f %Y')", "must end the format"),
    ("TO_TIMESTAMP(s, s2)", "must be a constant string"),
    ("EPOCH_MS(s)", "EPOCH_MS takes a TIMESTAMP or an integer"),
    ("DATEDIFF('day', ts)", "DATEDIFF takes 3 argument"),
    ("NOW(1)", "NOW takes 0 argument"),
    ("REPLACE(s, 'a')", "REPLACE takes 3 argument"),
    ("LEFT(s, 'a')", "needs an integer"),
    ("LPAD(s, 1.5, 'x')", "needs an integer"),
    ("REGEXP_MATCHES(s, '(')", "invalid regular expression"),
    ("REGEXP_REPLACE(s, 'a', 'b', 'q')", "unsupported regex option"),
    ("REGEXP_EXTRACT(s, 'a', 10)", "between 0 and 9"),
    ("REGEXP_EXTRACT(s, 'a', k)", "group must be an integer constant"),
    ("JSON_EXTRACT(j, s)", "path must be a constant"),
    ("JSON_VALUE(j, '$.a[')", "invalid JSON path"),
    ("JSON_VALUE(j, '$.*')", "wildcard"),
    ("SPLIT_PART(s, ',')", "SPLIT_PART takes 3 argument"),
    ("REGEXP_EXTRAKT(s, 'a')", "unknown function REGEXP_EXTRAKT; did you mean REGEXP_EXTRACT"),
    ("DATE_TRUNK('day', ts)", "did you mean DATE_TRUNC"),
    ("YEAR(ts, ts)", "YEAR takes 1 argument"),
    ("HOUR(k)", "HOUR needs a TIMESTAMP, found INT64 (EPOCH_MS(x)"),
    ("DAYOFWEEK('nope')", "DAYOFWEEK: cannot read 'nope' as a TIMESTAMP"),
    ("MILLISECOND()", "MILLISECOND takes 1 argument"),
    ("TO_TIMESTAMP_LTZ(k, 6)", "precision must be the constant 0 (epoch seconds) or 3"),
    ("TO_TIMESTAMP_LTZ(k, k)", "precision must be the constant 0"),
    ("TO_TIMESTAMP_LTZ(ts)", "TO_TIMESTAMP_LTZ needs a number, found TIMESTAMP"),
    ("TO_TIMESTAMP_LTZ(k, 3, 1)", "TO_TIMESTAMP_LTZ takes 1 to 2 argument"),
    ("SPLIT_INDEX(s, ',')", "SPLIT_INDEX takes 3 argument"),
    ("SPLIT_INDEX(s, ',', 1.5)", "SPLIT_INDEX needs an integer"),
    ("LOCATE('a')", "LOCATE takes 2 to 3 argument"),
    ("LOCATE('a', s, 'x')", "LOCATE needs an integer"),
    ("REGEXP(s, '(')", "invalid regular expression"),
    ("INITCAP(s, s)", "INITCAP takes 1 argument"),
    ("CHR(1.5)", "CHR needs an integer"),
    ("CHR(s)", "CHR needs an integer"),
    ("TRANSLATE(s, 'a')", "TRANSLATE takes 3 argument"),
    ("TYPEOF()", "TYPEOF takes 1 argument"),
    ("RANDOM(1)", "RANDOM takes 0 argument"),
    ("RAND(7)", "RAND takes 0 argument"),
    ("UUID(s)", "UUID takes 0 argument"),
    ("GEN_RANDOM_UUID(1)", "GEN_RANDOM_UUID takes 0 argument"),
    ("SPLIT_INDX(s, ',', 1)", "did you mean SPLIT_INDEX"),
])
def test_wrong_calls_are_sql_errors(expr, message):
    with pytest.raises(SqlError, match=re.escape(message)) as info:
        vs.query(f"SELECT {expr} AS r FROM t", {"t": table(8, 5)})
    assert info.value.line == 1 and info.value.column == 8  # points at the call


def test_a_pattern_column_with_an_invalid_pattern_fails_its_rows():
    with pytest.raises(VelostreamError, match="missing \\)") as info:
        vs.Engine("SELECT REGEXP_MATCHES(s, p) AS r FROM t").push(
            "t", pa.record_batch({"s": ["a", "b", "c"], "p": ["a", "(", "b"]}))
    assert info.value.rows.tolist() == [False, True, False]


def test_results_kept_across_batches():
    # results are kept by string code for the job: many small batches, strings seen before and
    # new ones, NULLs, and a failing string that must fail again each time it comes
    data = table(10)
    exprs = ["REPLACE(s, 'a', 'xy')", "STRPOS(s, 'b')", "REGEXP_MATCHES(s, 'é|x')", "LPAD(s, 3, '-')",
             "EPOCH_MS(TRY_STRPTIME(s2, '%Y'))", "JSON_VALUE(j, '$.a')"]
    want = _duck([e.replace("LPAD(s, 3,", "LPAD(s, 3::INTEGER,") for e in exprs], data)
    eng = vs.Engine("SELECT i, " + ", ".join(f"{e} AS r{n}" for n, e in enumerate(exprs)) + " FROM t")
    rows = []
    for lo in range(0, data.num_rows, 37):
        rows += eng.push("t", data.slice(lo, 37).combine_chunks().to_batches()[0]).to_pylist()
    rows.sort(key=lambda r: r["i"])
    for n, e in enumerate(exprs):
        assert [r[f"r{n}"] for r in rows] == want[n], e
    eng = vs.Engine("SELECT STRPTIME(s, '%Y') AS r FROM t")
    first = eng.push("t", pa.record_batch({"s": ["2020", None]})).to_pylist()
    assert [r["r"] for r in first] == [_ms("2020-01-01 00:00:00"), None]
    for _ in range(2):
        with pytest.raises(VelostreamError, match="Could not parse"):
            eng.push("t", pa.record_batch({"s": ["2021", "x"]}))


def test_lpad_without_padding_fails_the_row():
    with pytest.raises(VelostreamError, match="Insufficient padding"):
        vs.query("SELECT LPAD(s, 3, '') AS r FROM t", {"t": {"s": ["abc", "a"]}})
    got = vs.query("SELECT LPAD(s, 2, '') AS r FROM t", {"t": {"s": ["abc", None]}}).to_pylist()
    assert [r["r"] for r in got] == ["ab", None]


def test_functions_in_where_and_group_by(partitions):
    data = table(9)
    sql = ("SELECT SPLIT_PART(s, ',', 1) AS p, COUNT(*) AS n FROM t "
           "WHERE REGEXP_MATCHES(s, '[a-z]') AND DATE_PART('year', ts) >= 1970 GROUP BY SPLIT_PART(s, ',', 1)")
    final = {}  # the query emits changes: each group's last row is its count
    for r in vs.query(sql, {"t": data}, partitions=partitions).to_pylist():
        final[r["p"]] = r["n"]
    con = duckdb.connect()
    con.register("t", data)
    assert final == dict(con.execute(sql).fetchall())


def test_a_job_through_velostream_run(tmp_path):
    # a sample through the CLI: a row STRPTIME cannot read is a bad record (dead-letter output),
    # invalid JSON is NULL, the other rows are what vs.query gives
    import json
    import subprocess
    import sys

    from conftest import subprocess_env
    rows = [{"id": i, "t": f"2024-02-{i % 29 + 1:02d} {i % 24:02d}:{i % 60:02d}", "s": f"u-{i % 7}-x",
             "payload": json.dumps({"a": {"b": [i, f"v{i % 3}"]}})} for i in range(60)]
    rows[17]["t"] = "garbage"
    rows[23]["payload"] = "{bad"
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    select = ("SELECT id, STRFTIME(STRPTIME(t, '%Y-%m-%d %H:%M'), '%d/%m/%Y %Hh') AS d, "
              "DATE_PART('dow', STRPTIME(t, '%Y-%m-%d %H:%M')) AS dow, SPLIT_PART(s, '-', 2) AS p, "
              "JSON_VALUE(payload, '$.a.b[1]') AS v FROM src")
    (tmp_path / "job.sql").write_text(
        f"CREATE STREAM out AS {select}\nWITH ('src.type' = 'file_source', 'src.path' = 'in.jsonl', "
        "'out.type' = 'file_sink', 'out.path' = 'out.jsonl', 'dead.letter.path' = 'dlq.jsonl')\n")
    r = subprocess.run([sys.executable, "-m", "velostream", "run", "job.sql"], cwd=tmp_path,
                       env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "60 records in, 59 rows out, 1 failed" in r.stderr
    got = sorted((json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()),
                 key=lambda x: x["id"])
    good = [x for x in rows if x["t"] != "garbage"]
    want = sorted(vs.query(select, {"src": pa.Table.from_pylist(good)}).to_pylist(), key=lambda x: x["id"])
    assert got == want and want[22]["v"] is None and want[0]["v"] == '"v0"'
    dead = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and "garbage" in dead[0]["payload"] and "Could not parse" in dead[0]["error"]


# --------------------------------------------------------------------------- the table and its page


def _builtins() -> dict:
    """The table without the Python functions other tests register (vs.udf)."""
    return {name: f for name, f in F.TABLE.items() if f.group != "Python"}


def test_reference_page_is_generated_from_the_table():
    page = (ROOT / "docs" / "FUNCTIONS.md").read_text()
    assert page == F.reference_markdown(), (
        "docs/FUNCTIONS.md is out of date: regenerate it with "
        "python -c 'from velostream.exec import functions as F; print(F.reference_markdown(), end=\"\")' "
        "> docs/FUNCTIONS.md")
    documented = set(re.findall(r"^### (\w+)", page, re.M))
    for aliases in re.findall(r"^### \w+ \(also ([\w, ]+)\)", page, re.M):
        documented |= {a.strip() for a in aliases.split(",")}
    assert documented == set(_builtins())


def test_every_name_the_binder_takes_is_in_the_table():
    from velostream.exec import expressions
    for name in expressions.SCALAR_FUNCTIONS:
        assert name in F.TABLE, name
    for name, f in _builtins().items():  # each name binds, an alias as its function
        assert f.name + "(" in f.example, f"the example of {f.name} does not call it"
        expr = f.example.replace(f.name + "(", name + "(", 1)
        got = vs.query(f"SELECT {expr} AS r FROM t", {"t": {"x": [1]}}).to_pylist()[0]["r"]
        assert _same(got, f.result), (name, expr, got)


@pytest.mark.parametrize("f", F.FUNCTIONS, ids=lambda f: f.name)
def test_documented_example_agrees_with_duckdb(f):
    got = vs.query(f"SELECT {f.example} AS r FROM t", {"t": {"x": [1]}}).to_pylist()[0]["r"]
    assert _same(got, f.result), (got, f.result)
    if f.name in ("NOW",):  # processing time: no fixed value
        return
    expr = f.example
    if f.name == "UNIX_TIMESTAMP":  # not a DuckDB function: whole seconds of EPOCH
        expr = f"CAST(FLOOR(EPOCH({expr[len('UNIX_TIMESTAMP('):-1]})) AS BIGINT)"
    if f.name == "TIMESTAMPDIFF":  # Flink's, not DuckDB's: its DATE_SUB
        expr = expr.replace("TIMESTAMPDIFF(HOUR,", "DATE_SUB('hour',")
    if f.name == "TIMESTAMPADD":  # Flink's, not DuckDB's: its + to_months
        expr = "CAST('2024-01-31 10:00' AS TIMESTAMP) + to_months(1)"
    if f.name == "DATE_FORMAT":  # Flink's, not DuckDB's: its Java pattern as STRFTIME's format
        expr = expr.replace("DATE_FORMAT(", "STRFTIME(").replace("yyyy-MM-dd HH:mm:ss.SSS",
                                                                   "%Y-%m-%d %H:%M:%S.%g")
    # Flink's functions, not DuckDB's: what they equal in DuckDB, or the Python reference
    flink = {"TO_TIMESTAMP_LTZ": "epoch_ms(to_timestamp(1709200800))",
             "SPLIT_INDEX": "split_part('a,b,c', ',', 2)",
             "LOCATE": "instr(substr('héllo', 4), 'l') + 3",
             "INITCAP": f"'{_initcap_reference('hello wORLD 2nd-tIME')}'",
             "UUID": "length(CAST(uuid() AS VARCHAR))"}  # DuckDB's UUID is a type of its own
    expr = flink.get(f.name, expr)
    want = duckdb.connect().execute(f"SELECT {expr}").fetchone()[0]
    if isinstance(want, dt.datetime):
        want = int(want.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert _same(got, want), (expr, got, want)


def test_standard_spellings_extract_from_position_in_and_current_timestamp():
    """EXTRACT(part FROM ts), POSITION(a IN b) and the bare CURRENT_TIMESTAMP parse as DuckDB's."""
    import pyarrow as pa
    t = pa.table({"ts": pa.array([0, 34_560_000_000, None, -86_400_000], pa.timestamp("ms")),
                  "s": pa.array(["hello world", "xyz", None, "oo"])})
    sql = ("SELECT EXTRACT(year FROM ts) AS y, EXTRACT(month FROM ts) AS m, "
           "EXTRACT(dow FROM ts) AS d, POSITION('o' IN s) AS p FROM t")
    got = vs.query(sql, {"t": t}).to_pylist()
    con = duckdb.connect()
    con.register("t", t)
    ref = con.sql(sql).fetchall()
    assert [tuple(r.values()) for r in got] == ref
    now = vs.query("SELECT CURRENT_TIMESTAMP > ts AS later FROM t", {"t": t}).to_pylist()
    assert [r["later"] for r in now] == [True, True, None, True]


def test_json_arrow_operators_are_the_extract_functions():
    """j -> path is JSON_EXTRACT, j ->> path JSON_EXTRACT_STRING, as in DuckDB."""
    import pyarrow as pa
    t = pa.table({"j": pa.array(['{"a": {"b": [1, "x"]}, "c": "é"}', '{"a": 2}', None,
                                 '{"a": {"b": []}}'])})
    sql = ("SELECT j -> '$.a.b' AS e, j ->> '$.a.b[1]' AS s, j->>'$.a' AS a, "
           "j ->> '$.c' || '!' AS c FROM t")
    got = [tuple(r.values()) for r in vs.query(sql, {"t": t}).to_pylist()]
    con = duckdb.connect()
    con.register("t", t)
    assert got == con.sql(sql).fetchall()
    assert vs.query("SELECT 5-3 AS d, 5 - -3 AS e FROM t", {"t": t}).to_pylist()[0] == \
        {"d": 2, "e": 8}


# --------------------------------------------------------------------------- Flink SQL's and DuckDB's everyday spellings

_PART_FUNCTIONS = ["YEAR", "QUARTER", "MONTH", "WEEK", "WEEKOFYEAR", "DAY", "DAYOFMONTH", "DAYOFWEEK",
                   "WEEKDAY", "ISODOW", "DAYOFYEAR", "HOUR", "MINUTE", "SECOND", "MILLISECOND",
                   "MICROSECOND", "ISOYEAR", "YEARWEEK"]


@pytest.mark.parametrize("how", HOW)
def test_date_part_functions_as_duckdb(how):
    cases = [(f"{f}(ts)", f"{f.lower()}(ts)") for f in _PART_FUNCTIONS]
    cases += [(f"{f}(ts2)", f"{f.lower()}(ts2)") for f in ("DAYOFWEEK", "WEEK", "MILLISECOND")]
    cases += [("DAY('2024-02-29 10:00')", "day(TIMESTAMP '2024-02-29 10:00')"),
              ("HOUR(EPOCH_MS(ms))", "hour(epoch_ms(ms))")]
    check(cases, table(21), how)


def test_date_part_functions_far_from_now():
    check([(f"{f}(ts)", f"{f.lower()}(ts)") for f in _PART_FUNCTIONS], far_times(22), 1)


def test_date_part_functions_are_date_part():
    """One implementation: each is DATE_PART of its part, on window bounds too."""
    data = table(23)
    parts = {"YEAR": "year", "WEEK": "week", "DAYOFWEEK": "dow", "DAYOFYEAR": "doy",
             "MILLISECOND": "millisecond", "SECOND": "second"}
    got = _ours([f"{f}(ts)" for f in parts] + [f"DATE_PART('{p}', ts)" for p in parts.values()], data, 1)
    assert got[:len(parts)] == got[len(parts):]
    rows = vs.query("SELECT HOUR(window_start) AS h, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE t, "
                    "DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY window_start, window_end",
                    {"t": {"ts": [3_600_000 * 5 + 1, 3_600_000 * 7]}}).to_pylist()
    assert sorted(r["h"] for r in rows) == [5, 7]


_LITERALS = ["2024-02-29 23:59:59.999", "1968-02-29", "1970-01-01 00:00:00", "2021-01-03T10:00:00",
             "2024-01-01 10:00:00Z", "1900-03-01 12:00:00.5", "2099-12-31 23:59:59"]


@pytest.mark.parametrize("how", HOW)
def test_timestamp_literals_as_duckdb(how):
    cases = [(f"EPOCH_MS(TIMESTAMP '{t}')", f"epoch_ms(TIMESTAMP '{t}')") for t in _LITERALS]
    cases += [("ts < TIMESTAMP '1970-01-01 00:00:00'", "ts < TIMESTAMP '1970-01-01 00:00:00'"),
              ("DATEDIFF('day', TIMESTAMP '2000-02-29', ts)", "datediff('day', TIMESTAMP '2000-02-29', ts)"),
              ("YEAR(TIMESTAMP '2024-02-29 10:00')", "year(TIMESTAMP '2024-02-29 10:00')"),
              ("EPOCH_MS(DATETIME '2024-02-29 10:00')", "epoch_ms(DATETIME '2024-02-29 10:00')"),
              ("TIMESTAMP '2024-02-29' = CAST('2024-02-29' AS TIMESTAMP)", "true")]
    check(cases, table(24), how)


def test_a_timestamp_literal_is_read_when_planned(monkeypatch):
    from velostream.exec import expressions as X

    with pytest.raises(SqlError, match="cannot read 'x' as a TIMESTAMP") as info:
        vs.query("SELECT TIMESTAMP 'x' AS r FROM t", {"t": {"x": pa.array([], pa.int64())}})
    assert info.value.column == 8  # with no row at all: when the query is planned
    # a constant: no CAST is evaluated for the batches
    monkeypatch.setitem(X._OPS, "CAST", lambda *a: pytest.fail("a CAST was evaluated per batch"))
    got = vs.query("SELECT TIMESTAMP '2024-02-29 10:00:00' AS r FROM t", {"t": {"x": [1, 2]}})
    assert got.to_pylist() == [{"r": _ms("2024-02-29 10:00:00")}] * 2


@pytest.mark.parametrize("sql, column, message", [
    ("SELECT TIMESTAMP '2024-13-01' AS r FROM t", 8, "cannot read '2024-13-01' as a TIMESTAMP"),
    ("SELECT x FROM t WHERE x > 1 AND ts < TIMESTAMP 'yesterday'", 38, "cannot read 'yesterday'"),
    ("SELECT TIMESTAMP '1700000000000' AS r FROM t", 8, "EPOCH_MS(n) reads epoch milliseconds"),
    ("SELECT TIMESTAMP '' AS r FROM t", 8, "cannot read '' as a TIMESTAMP"),
    ("SELECT DATE '2024-02-30' AS r FROM t", 8, "cannot read '2024-02-30' as a DATE"),
    ("SELECT  TIME '10:00:00' AS r FROM t", 9, "velostream has no TIME type"),
    ("SELECT TRIM(LEADING 'x' s) AS r FROM t", 25, "expected FROM in TRIM(LEADING"),
    ("SELECT TRIM(BOTH 'x' FROM) AS r FROM t", 26, "expected an expression"),
])
def test_literal_and_trim_syntax_errors_point_at_the_text(sql, column, message):
    with pytest.raises(SqlError, match=re.escape(message)) as info:
        vs.query(sql, {"t": {"x": [1], "ts": pa.array([0], pa.timestamp("ms"))}})
    assert (info.value.line, info.value.column) == (1, column)


@pytest.mark.parametrize("how", HOW)
def test_trim_standard_syntax_as_duckdb(how):
    cases = [(e, e) for e in ["TRIM(BOTH 'xa' FROM s)", "TRIM(LEADING 'x' FROM s)", "TRIM(TRAILING 'é,' FROM s)",
                              "TRIM('ab ' FROM s)", "TRIM(FROM s)", "TRIM(BOTH FROM s)", "TRIM(LEADING FROM s)",
                              "TRIM(TRAILING FROM s)", "TRIM(LEADING s2 FROM s)", "TRIM(s2 FROM s)",
                              "TRIM(s, 'a,')", "LTRIM(s, s2)", "RTRIM(s, '🙂 ')",
                              "TRIM(BOTH 'x' FROM UPPER(s)) || '|'"]]
    check(cases, table(25), how)


def test_trim_words_stay_column_names():
    data = {"t": {"both": ["  a ", "xbx"], "leading": [" q", "q "], "trailing": ["x", "y"]}}
    sql = ("SELECT TRIM(both) AS a, TRIM(both, 'x') AS b, LTRIM(leading) AS c, "
           "TRIM(leading || ' ') AS d, TRIM(trailing FROM both) AS e FROM t")
    got = vs.query(sql, data).to_pylist()
    con = duckdb.connect()
    con.register("t", pa.table(data["t"]))
    # (DuckDB reads these words as keywords only; quoted, they are its columns. TRAILING before
    # FROM is the keyword, as in the standard)
    want = con.execute("""SELECT TRIM("both") AS a, TRIM("both", 'x') AS b, LTRIM("leading") AS c,
                          TRIM("leading" || ' ') AS d, RTRIM("both") AS e FROM t""").fetchall()
    assert [tuple(r.values()) for r in got] == want


# Flink's: references in Python (Flink's own code, as its documentation and source describe it)

_JAVA_WS = set(map(chr, [9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0x1680, 0x2028, 0x2029, 0x205F, 0x3000,
                         *range(0x2000, 0x2007), *range(0x2008, 0x200B)]))


def _split_index_reference(s, sep, i):
    """commons-lang's splitByWholeSeparatorPreserveAllTokens, part i (Flink's SPLIT_INDEX)."""
    if s is None or sep is None or i is None or i < 0 or s == "":
        return None
    if sep == "":  # at each whitespace character (Java's Character.isWhitespace)
        parts, cur = [], ""
        for ch in s:
            if ch in _JAVA_WS:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
    else:
        parts = s.split(sep)
    return parts[i] if i < len(parts) else None


def _locate_reference(needle, s, start=1):
    """Flink's BinaryStringData.indexOf(needle, start - 1) + 1, in characters."""
    if needle is None or s is None or start is None:
        return None
    if needle == "":
        return 1
    return s.find(needle, max(start - 1, 0)) + 1


def _initcap_reference(s):
    """Calcite's SqlFunctions.initcap, which Flink's INITCAP is."""
    if s is None:
        return None
    out, start = [], True
    for ch in s:
        c = ord(ch)
        digit, upper, lower = 48 <= c <= 57, 65 <= c <= 90, 97 <= c <= 122
        if start:
            if digit or upper or lower:
                start = False
                if lower:
                    ch = chr(c - 32)
        elif upper:
            ch = chr(c + 32)
        elif not (digit or lower):
            start = True
        out.append(ch)
    return "".join(out)


def _ltz_reference(v, precision):
    """Flink's DateTimeUtils.toTimestampData(v, precision) as epoch ms: a fraction of a
    millisecond cut off (toward zero), NULL outside years 0 to 9999."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    ms = math.trunc(v * (1000 if precision == 0 else 1))  # exact for int and Decimal
    return ms if -62_167_219_200_000 <= ms <= 253_402_300_799_999 else None


def _flink_data(seed: int) -> pa.Table:
    from decimal import Decimal

    data = table(seed)
    rng = random.Random(seed)
    n = data.num_rows
    extra = ["a\u00a0b c", "a\u2007b\u2003c", " lead", "trail ", "x\u3000y\u0085z", "2nd-tIME", "ab,,c,",
             "hello wORLD", "ÉCOLE élève", "o'NEIL mc-DONALD", "🙂a🙂bc", ""]
    s = data["s"].to_pylist()
    for i in range(0, n, 5):
        s[i] = rng.choice(extra)
    seps = [None if rng.random() < 0.05 else rng.choice([",", "a", "", "é", "ab", " ", "🙂", ",,"])
            for _ in range(n)]
    big = [None if rng.random() < 0.05 else rng.choice(
        [rng.randint(-10**13, 10**13), 253_402_300_799_999, 253_402_300_800_000, -62_167_219_200_000,
         -62_167_219_200_001, 253_402_300_799, 253_402_300_800, -62_167_219_200, -62_167_219_201,
         -2 ** 63, 2 ** 63 - 1])
        for _ in range(n)]
    fsec = [None if rng.random() < 0.05 else rng.choice(
        [rng.uniform(-7e10, 3e11), 253_402_300_799.9994, 253_402_300_800.0, -62_167_219_200.0,
         -62_167_219_200.0005, math.nan, math.inf, -math.inf, -0.0004, 1.0005, -1.5, 1e300])
        for _ in range(n)]
    # DECIMALs (as integers of their last digit): fractions of a second, the range's ends, the
    # largest 18 digits
    d16 = [None if rng.random() < 0.05 else rng.choice(
        [rng.randint(-10**17, 10**17), 5 * 10**12, -5 * 10**12, 10**16 + 9999, -(10**16 + 9999), 1, -1])
        for _ in range(n)]
    d0 = [None if rng.random() < 0.05 else rng.choice(
        [rng.randint(-10**13, 10**13), 253_402_300_799, 253_402_300_800, -62_167_219_200, -62_167_219_201,
         253_402_300_799_999, 253_402_300_800_000, 10**18 - 1, -(10**18 - 1)]) for _ in range(n)]
    return (data.set_column(data.schema.get_field_index("s"), "s", pa.array(s, pa.string()))
            .append_column("sep", pa.array(seps, pa.string())).append_column("big", pa.array(big, pa.int64()))
            .append_column("fsec", pa.array(fsec, pa.float64()))
            .append_column("d16", pa.array([None if x is None else Decimal(x).scaleb(-16) for x in d16],
                                            pa.decimal128(18, 16)))
            .append_column("d0", pa.array([None if x is None else Decimal(x) for x in d0], pa.decimal128(18, 0))))


def _check_reference(exprs: list, reference, data: pa.Table, how) -> None:
    got = _ours(exprs, data, how)
    rows = data.to_pylist()
    for n, e in enumerate(exprs):
        want = [reference[n](r) for r in sorted(rows, key=lambda r: r["i"])]
        bad = [(i, x, y) for i, (x, y) in enumerate(zip(got[n], want)) if not _same(x, y)]
        assert not bad, f"{e} differs on rows (i, ours, reference): {bad[:5]}"


@pytest.mark.parametrize("how", HOW)
def test_flink_text_functions_against_a_reference(how):
    data = _flink_data(26)
    cases = {
        "SPLIT_INDEX(s, ',', 0)": lambda r: _split_index_reference(r["s"], ",", 0),
        "SPLIT_INDEX(s, ',', 2)": lambda r: _split_index_reference(r["s"], ",", 2),
        "SPLIT_INDEX(s, '', 1)": lambda r: _split_index_reference(r["s"], "", 1),
        "SPLIT_INDEX(s, sep, k)": lambda r: _split_index_reference(r["s"], r["sep"], r["k"]),
        "SPLIT_INDEX(s, 'ab', -1)": lambda r: _split_index_reference(r["s"], "ab", -1),
        "LOCATE(s2, s)": lambda r: _locate_reference(r["s2"], r["s"]),
        "LOCATE(s2, s, k)": lambda r: _locate_reference(r["s2"], r["s"], r["k"]),
        "LOCATE('a', s, 3)": lambda r: _locate_reference("a", r["s"], 3),
        "LOCATE('🙂', s, 2)": lambda r: _locate_reference("🙂", r["s"], 2),
        "LOCATE(sep, s, -2)": lambda r: _locate_reference(r["sep"], r["s"], -2),
        "INITCAP(s)": lambda r: _initcap_reference(r["s"]),
        "INITCAP(UPPER(s2))": lambda r: _initcap_reference(None if r["s2"] is None else r["s2"].upper()),
    }
    _check_reference(list(cases), list(cases.values()), data, how)


@pytest.mark.parametrize("how", HOW)
def test_to_timestamp_ltz_against_a_reference(how):
    from decimal import Decimal

    data = _flink_data(27)
    dec = lambda v: None if v is None else Decimal(repr(v)).quantize(Decimal("0.001"))  # noqa: E731
    cases = {
        "EPOCH_MS(TO_TIMESTAMP_LTZ(big, 3))": lambda r: _ltz_reference(r["big"], 3),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(big))": lambda r: _ltz_reference(r["big"], 3),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(big, 0))": lambda r: _ltz_reference(r["big"], 0),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(k, 0))": lambda r: _ltz_reference(r["k"], 0),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(ms, 3))": lambda r: _ltz_reference(r["ms"], 3),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(sec, 0))": lambda r: _ltz_reference(r["sec"], 0),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(fsec, 0))": lambda r: _ltz_reference(r["fsec"], 0),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(fsec * 1000, 3))": lambda r: _ltz_reference(
            None if r["fsec"] is None else r["fsec"] * 1000, 3),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(d16, 0))": lambda r: _ltz_reference(r["d16"], 0),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(d16, 3))": lambda r: _ltz_reference(r["d16"], 3),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(d0, 0))": lambda r: _ltz_reference(r["d0"], 0),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(d0, 3))": lambda r: _ltz_reference(r["d0"], 3),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(sec * 1000, 3))": lambda r: _ltz_reference(
            None if r["sec"] is None else r["sec"] * 1000, 3),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(CAST(sec AS DECIMAL(18, 3)), 0))": lambda r: (
            None if r["sec"] is None else _ltz_reference(dec(r["sec"]), 0)),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(CAST(sec AS DECIMAL(18, 3)), 3))": lambda r: (
            None if r["sec"] is None else _ltz_reference(dec(r["sec"]), 3)),
        "EPOCH_MS(TO_TIMESTAMP_LTZ(CAST(ts AS VARCHAR)))": lambda r: (
            None if r["ts"] is None else _ms(str(r["ts"]))) if r["ts"] is None or r["ts"].year > 0 else None,
    }
    _check_reference(list(cases), list(cases.values()), data, how)


@pytest.mark.parametrize("how", HOW)
def test_regexp_is_regexp_matches(how):
    cases = [("REGEXP(s, '[a-z]+')", "regexp_matches(s, '[a-z]+')"),
             ("REGEXP(s, s2)", "regexp_matches(s, s2)"),
             ("REGEXP(s, '^é|,$')", "regexp_matches(s, '^é|,$')")]
    check(cases, table(28), how)


@pytest.mark.parametrize("how", HOW)
def test_chr_translate_typeof_as_duckdb(how):
    data = table(29)
    cases = [("CHR(k + 60)", "chr(CAST(k + 60 AS INTEGER))"),
             ("CHR(ABS(ms) % 55295)", "chr(CAST(abs(ms) % 55295 AS INTEGER))"),
             ("CHR(ABS(ms) % 1048576 + 57344)", "chr(CAST(abs(ms) % 1048576 + 57344 AS INTEGER))"),
             ("CHR(ABS(ms) % 128) || CHR(ABS(ms) % 2048)", "chr(CAST(abs(ms) % 128 AS INTEGER)) || "
                                                          "chr(CAST(abs(ms) % 2048 AS INTEGER))"),
             ("TRANSLATE(s, 'aé,🙂', 'xy')", "translate(s, 'aé,🙂', 'xy')"),
             ("TRANSLATE(s, 'ab', '')", "translate(s, 'ab', '')"),
             ("TRANSLATE(s, 'aab', 'xyz')", "translate(s, 'aab', 'xyz')"),
             ("TRANSLATE(s, '', 'x')", "translate(s, '', 'x')"),
             ("TRANSLATE(s, s2, '🙂')", "translate(s, s2, '🙂')"),
             ("TRANSLATE(s, 'x', s2)", "translate(s, 'x', s2)"),
             ("TYPEOF(i)", "typeof(i)"), ("TYPEOF(sec)", "typeof(sec)"), ("TYPEOF(s)", "typeof(s)"),
             ("TYPEOF(ts)", "typeof(ts)"), ("TYPEOF(i > k)", "typeof(i > k)"),
             ("TYPEOF(CAST(sec AS DECIMAL(18, 3)))", "typeof(CAST(sec AS DECIMAL(18, 3)))"),
             ("TYPEOF(i + sec)", "typeof(i + sec)"), ("TYPEOF(CONCAT(s, i))", "typeof(concat(s, i))")]
    check(cases, data, how)


def test_chr_of_a_non_character_fails_the_row():
    for bad in (-1, 0xD800, 0x110000):
        with pytest.raises(VelostreamError, match=f"Invalid UTF8 Codepoint {bad}") as info:
            vs.Engine("SELECT CHR(c) AS r FROM t").push("t", pa.record_batch({"c": [65, bad, None]}))
        assert info.value.rows.tolist() == [False, True, False]
    got = vs.query("SELECT CHR(c) AS r FROM t", {"t": {"c": [0, 65, None, 0x10FFFF]}}).to_pylist()
    assert [r["r"] for r in got] == ["\x00", "A", None, "\U0010ffff"]


_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_random_and_uuid_are_new_every_row(partitions):
    import uuid

    n = 500
    sql = ("SELECT i, RANDOM() AS r, RAND() AS r2, UUID() AS u, GEN_RANDOM_UUID() AS g, "
           "UPPER(UUID()) AS up, TYPEOF(RANDOM()) AS t FROM t WHERE RANDOM() < 1")
    rows = vs.query(sql, {"t": {"i": list(range(n))}}, partitions=partitions).to_pylist()
    assert sorted(r["i"] for r in rows) == list(range(n))  # RANDOM() < 1 keeps every row
    values = [r["r"] for r in rows] + [r["r2"] for r in rows]
    assert all(isinstance(v, float) and 0.0 <= v < 1.0 for v in values)
    assert len(set(values)) == 2 * n  # a fresh value per row and per call
    assert 0.3 < sum(values) / len(values) < 0.7
    texts = [r["u"] for r in rows] + [r["g"] for r in rows] + [r["up"].lower() for r in rows]
    assert all(isinstance(u, str) and _UUID4.match(u) and uuid.UUID(u).version == 4 for u in texts)
    assert len(set(texts)) == 3 * n
    assert {r["t"] for r in rows} == {"DOUBLE"}


def test_random_and_uuid_differ_between_batches():
    eng = vs.Engine("SELECT RANDOM() AS r, UUID() AS u FROM t")
    batch = pa.record_batch({"x": list(range(50))})
    a, b = eng.push("t", batch).to_pylist(), eng.push("t", batch).to_pylist()
    assert not {r["r"] for r in a} & {r["r"] for r in b}
    assert not {r["u"] for r in a} & {r["u"] for r in b}
