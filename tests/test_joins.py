"""Joins (docs/SQL.md §9) against DuckDB on seeded data with NULL keys, split into batches, at
1, 2 and 4 partitions: interval joins of two streams (INNER, LEFT, RIGHT, FULL; BETWEEN, >= / <=
pairs, WITHIN), temporal stream-table joins (DuckDB's ASOF JOIN is the reference), several JOINs
in one SELECT, and the compiled key index behind them."""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import SqlError, UnsupportedError

from reference import assert_rows_equal, duck


def stream(n, seed, keys=("a", "b", "c", "d"), span=120_000, col="v"):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, span, n)).astype(np.int64)
    k = rng.choice(list(keys), n).astype(object)
    return pa.table({"k": pa.array(k, mask=rng.random(n) < 0.08, type=pa.string()),
                     col: pa.array(rng.integers(0, 1000, n), pa.int64()),
                     "ts": pa.array(ts), "_TIMESTAMP": pa.array(ts)})


def batches(t: pa.Table, seed: int, pieces=7) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, t.num_rows), pieces - 1, replace=False)).tolist()
    bounds = [0, *cuts, t.num_rows]
    return [t.slice(a, b - a).combine_chunks().to_batches()[0] for a, b in zip(bounds, bounds[1:])]


BOUNDS = {
    "between": "b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '3' SECOND",
    "pairs": "b.ts >= a.ts - INTERVAL '5' SECOND AND b.ts <= a.ts + INTERVAL '3' SECOND",
    "flipped": "a.ts - INTERVAL '5' SECOND <= b.ts AND a.ts + 3000 >= b.ts",
}


@pytest.mark.parametrize("kind", ["INNER", "LEFT", "RIGHT", "FULL"])
@pytest.mark.parametrize("bound", list(BOUNDS))
def test_interval_join_matches_duckdb(kind, bound, partitions):
    a, b = stream(300, 1), stream(300, 2, col="w")
    sql = (f"SELECT a.k AS ak, a.v, a.ts AS ats, b.k AS bk, b.w, b.ts AS bts FROM a {kind} JOIN b "
           f"ON a.k = b.k AND {BOUNDS[bound]}")
    got = vs.query(sql, {"a": batches(a, 1), "b": batches(b, 2)}, partitions=partitions)
    ref = duck(sql.replace("INTERVAL '5' SECOND", "5000").replace("INTERVAL '3' SECOND", "3000"),
               a=a, b=b)
    assert len(ref) > 50
    assert_rows_equal(got.to_pylist(), ref)


def test_within_bounds_the_event_times():
    a, b = stream(200, 3), stream(200, 4, col="w")
    got = vs.query("SELECT a.v, b.w FROM a JOIN b ON a.k = b.k WITHIN 2 SECONDS",
                   {"a": batches(a, 3), "b": batches(b, 4)})
    ref = duck("SELECT a.v, b.w FROM a JOIN b ON a.k = b.k AND abs(a._TIMESTAMP - b._TIMESTAMP) "
               "<= 2000", a=a, b=b)
    assert len(ref) > 5
    assert_rows_equal(got.to_pylist(), ref)


def test_an_equality_of_times_is_a_bound_of_zero():
    t = {"k": ["x", "x", "y"], "ts": pa.array([1, 2, 3], pa.timestamp("ms")), "v": [1, 2, 3]}
    u = {"k": ["x", "y", "y"], "ts": pa.array([2, 3, 4], pa.timestamp("ms")), "w": [7, 8, 9]}
    got = vs.query("SELECT t.v, u.w FROM t JOIN u ON t.k = u.k AND t.ts = u.ts", {"t": t, "u": u})
    assert_rows_equal(got.to_pylist(), [(2, 7), (3, 8)])


def test_interval_join_emits_padded_rows_once_the_watermark_passes():
    eng = vs.Engine("SELECT a.v, b.w FROM a LEFT JOIN b ON a.k = b.k "
                    "AND b.ts BETWEEN a.ts - 1000 AND a.ts + 1000")
    row = lambda k, x, ts, name: {"k": [k], name: [x], "ts": [ts], "_TIMESTAMP": [ts]}  # noqa
    assert eng.push("a", row("x", 1, 0, "v")).to_pylist() == []
    assert eng.push("b", row("x", 10, 500, "w")).to_pylist() == [{"v": 1, "w": 10}]
    assert eng.push("a", row("y", 2, 1000, "v")).to_pylist() == []
    # both sides pass 5000: a's 'y' row (interval ends at 2000) can meet nothing more
    eng.push("a", row("z", 3, 5000, "v"))
    out = eng.push("b", row("q", 11, 5000, "w")).to_pylist()
    assert {"v": 2, "w": None} in out
    assert eng.flush().to_pylist() == [{"v": 3, "w": None}]


def test_an_unbounded_join_of_two_streams_is_refused():
    with pytest.raises(UnsupportedError, match="WITHIN") as info:
        vs.query("SELECT a.v FROM a JOIN b ON a.k = b.k", {"a": stream(5, 1), "b": stream(5, 2)})
    assert info.value.line == 1


def test_a_month_bound_is_refused_and_a_month_filter_beside_a_day_bound_runs(partitions):
    """A join keeps each side's rows as long as its time bound reaches, so the bound needs a
    fixed length: a MONTH bound is an error at the interval (it was "an unbounded join"). A
    MONTH condition beside a bound in days is an INNER join's filter: DuckDB's rows."""
    day = 86_400_000
    a, b = stream(200, 21, span=120 * day), stream(200, 22, span=120 * day, col="w")
    a, b = (t.set_column(2, "ts", t["ts"].cast(pa.timestamp("ms"))) for t in (a, b))
    bounded_by_a_month = ("SELECT a.v FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND "
                          "a.ts + INTERVAL '1' MONTH")
    with pytest.raises(UnsupportedError, match="no fixed length") as info:
        vs.query(bounded_by_a_month, {"a": a, "b": b})
    assert info.value.column == bounded_by_a_month.index("INTERVAL") + 1
    sql = ("SELECT a.v, b.w FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + "
           "INTERVAL '31' DAY AND b.ts <= a.ts + INTERVAL '1' MONTH")
    got = vs.query(sql, {"a": batches(a, 3), "b": batches(b, 4)}, partitions=partitions)
    assert len(got) > 20
    assert_rows_equal(got.to_pylist(), duck(sql, a=a, b=b))


# --------------------------------------------------------------------------- temporal joins
def instruments(seed=5):
    rng = np.random.default_rng(seed)
    n = 40
    ts = np.sort(rng.integers(0, 100_000, n)).astype(np.int64)
    return pa.table({"k": pa.array(rng.choice(["a", "b", "c", "e"], n).astype(object)),
                     "sector": pa.array([f"s{i}" for i in range(n)]),
                     "_TIMESTAMP": pa.array(ts)})


TABLE_DDL = "CREATE TABLE inst (k VARCHAR, sector VARCHAR, _TIMESTAMP BIGINT, PRIMARY KEY (k));"


@pytest.mark.parametrize("kind", ["INNER", "LEFT"])
def test_temporal_join_matches_duckdb_asof(kind, partitions):
    trades, inst = stream(400, 6), instruments()
    sql = (TABLE_DDL + f"SELECT t.k, t.v, t.ts, i.sector FROM trades t {kind} JOIN inst i "
           "ON t.k = i.k")
    got = vs.query(sql, {"trades": batches(trades, 6), "inst": batches(inst, 7, pieces=3)},
                   partitions=partitions)
    asof = "ASOF JOIN" if kind == "INNER" else "ASOF LEFT JOIN"
    ref = duck(f"SELECT t.k, t.v, t.ts, i.sector FROM trades t {asof} inst i "
               "ON t.k = i.k AND t._TIMESTAMP >= i._TIMESTAMP", trades=trades, inst=inst)
    assert_rows_equal(got.to_pylist(), ref)


def test_for_system_time_as_of_and_a_table_defined_by_a_query():
    trades, inst = stream(300, 8), instruments(9)
    sql = ("CREATE TABLE latest AS SELECT k, LAST_VALUE(sector) AS sector FROM inst GROUP BY k;"
           "SELECT t.k, t.v, l.sector FROM trades AS t JOIN latest FOR SYSTEM_TIME AS OF t.ts "
           "AS l ON t.k = l.k")
    got = vs.query(sql, {"trades": trades, "inst": inst})
    ref = duck("SELECT t.k, t.v, l.sector FROM trades t ASOF JOIN inst l "
               "ON t.k = l.k AND t.ts >= l._TIMESTAMP", trades=trades, inst=inst)
    assert_rows_equal(got.to_pylist(), ref)


def test_a_stream_row_waits_for_the_tables_watermark():
    eng = vs.Engine(TABLE_DDL + "SELECT t.v, i.sector FROM trades t JOIN inst i ON t.k = i.k")
    eng.push("inst", {"k": ["a"], "sector": ["old"], "_TIMESTAMP": [0]})
    # the table has not reached time 50 yet: the trade waits
    assert eng.push("trades", {"k": ["a"], "v": [1], "ts": [50], "_TIMESTAMP": [50]}).to_pylist() == []
    out = eng.push("inst", {"k": ["a"], "sector": ["new"], "_TIMESTAMP": [40]}).to_pylist()
    assert out == []  # the table is at 40: still before the trade
    out = eng.push("inst", {"k": ["b"], "sector": ["x"], "_TIMESTAMP": [60]}).to_pylist()
    assert out == [{"v": 1, "sector": "new"}]


# ---------------------------------------------------------------------------- composition
def test_a_join_is_aggregated_windowed_and_read_through_a_cte(partitions):
    a, b = stream(400, 10), stream(400, 11, col="w")
    sql = """
    WITH pairs AS (SELECT a.k, a.v, b.w FROM a JOIN b ON a.k = b.k
                   AND b.ts BETWEEN a.ts - INTERVAL '2' SECOND AND a.ts + INTERVAL '2' SECOND)
    SELECT k, COUNT(*) AS n, SUM(v + w) AS s FROM pairs GROUP BY k EMIT FINAL
    """
    got = vs.query(sql, {"a": batches(a, 1), "b": batches(b, 2)}, partitions=partitions)
    ref = duck("SELECT a.k, COUNT(*), SUM(a.v + b.w) FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN "
               "a.ts - 2000 AND a.ts + 2000 GROUP BY a.k", a=a, b=b)
    assert_rows_equal(got.to_pylist(), ref)


def test_joined_rows_window_by_the_later_rows_time():
    a, b = stream(300, 12), stream(300, 13, col="w")
    sql = ("SELECT a.k, COUNT(*) AS n, _WINDOW_START AS ws FROM a JOIN b ON a.k = b.k AND "
           "b.ts BETWEEN a.ts - 3000 AND a.ts + 3000 GROUP BY a.k WINDOW TUMBLING(10s)")
    got = vs.query(sql, {"a": batches(a, 3), "b": batches(b, 4)})
    ref = duck("SELECT a.k, COUNT(*), (greatest(a.ts, b.ts) // 10000) * 10000 AS ws FROM a JOIN b "
               "ON a.k = b.k AND b.ts BETWEEN a.ts - 3000 AND a.ts + 3000 GROUP BY a.k, ws",
               a=a, b=b)
    assert_rows_equal(got.to_pylist(), ref)


@pytest.mark.parametrize("sql,part", [
    ("SELECT k FROM a JOIN b ON a.k = b.k WITHIN 1 SECOND", "on both sides of the join"),
    ("SELECT a.nope FROM a JOIN b ON a.k = b.k WITHIN 1 SECOND", "unknown column 'nope'"),
    ("SELECT a.v FROM a JOIN a ON a.k = a.k WITHIN 1 SECOND", "both sides of the join are called"),
    ("SELECT a.v FROM a JOIN b ON a.v > b.w WITHIN 1 SECOND", "equality of keys"),
    ("SELECT a.v FROM a LEFT JOIN b ON a.k = b.k AND a.v > 3 WITHIN 1 SECOND", "filter the rows"),
    ("SELECT a.v FROM a CROSS JOIN b", "CROSS JOIN"),
    ("SELECT a.v FROM a, b", "FROM a, b"),
    (TABLE_DDL + "SELECT t.v FROM a t FULL JOIN inst i ON t.k = i.k", "INNER or LEFT"),
])
def test_join_errors_point_at_the_text(sql, part):
    with pytest.raises(SqlError, match=part) as info:
        vs.query(sql, {"a": stream(20, 1), "b": stream(20, 2, col="w"), "inst": instruments()})
    assert info.value.line is not None


def test_an_idle_table_stops_holding_the_stream_back(partitions):
    """Also at several partitions, where a partition that got none of the table's rows must
    not count the table idle sooner than one join would."""
    import time
    sql = TABLE_DDL + ("SELECT t.v, i.sector FROM trades t JOIN inst i ON t.k = i.k "
                       "WITH ('inst.watermark.idle.ms' = '50')")
    eng = vs.Engine(sql, partitions=partitions)
    eng.push("inst", {"k": ["a"], "sector": ["old"], "_TIMESTAMP": [0]})
    eng.push("inst", {"k": ["b"], "sector": ["x"], "_TIMESTAMP": [10]})
    trade = {"k": ["a"], "v": [1], "ts": [50], "_TIMESTAMP": [50]}
    # the table is at 10: without idleness the trade at 50 waits ...
    assert eng.push("trades", trade).to_pylist() == []
    time.sleep(0.2)  # ... until the table has sent nothing for 50 ms
    out = eng.push("trades", {"k": ["a"], "v": [2], "ts": [60], "_TIMESTAMP": [60]}).to_pylist()
    assert out == [{"v": 1, "sector": "old"}, {"v": 2, "sector": "old"}]
    eng.close()


def test_a_table_without_event_time_is_always_current_when_pushed(partitions):
    eng = vs.Engine("CREATE TABLE inst (k VARCHAR, sector VARCHAR, PRIMARY KEY (k));"
                    "SELECT t.v, i.sector FROM trades t LEFT JOIN inst i ON t.k = i.k",
                    partitions=partitions)
    eng.push("inst", {"k": ["a", "b"], "sector": ["x", "y"]})
    out = eng.push("trades", {"k": ["a", "c"], "v": [1, 2], "_TIMESTAMP": [10, 20]}).to_pylist()
    assert sorted(out, key=lambda r: r["v"]) == [{"v": 1, "sector": "x"},
                                                 {"v": 2, "sector": None}]
    eng.push("inst", {"k": ["a"], "sector": ["z"]})  # a later row replaces the key's row
    assert eng.push("trades", {"k": ["a"], "v": [3], "_TIMESTAMP": [30]}).to_pylist() == [
        {"v": 3, "sector": "z"}]


def test_a_deleted_key_has_no_row_from_its_deletion_on(partitions):
    """A table row with _DELETED (a Kafka tombstone) ends its key: later stream rows find none."""
    eng = vs.Engine(TABLE_DDL + "SELECT t.v, i.sector FROM trades t LEFT JOIN inst i "
                    "ON t.k = i.k", partitions=partitions)
    eng.push("inst", {"k": ["a"], "sector": ["x"], "_TIMESTAMP": [0], "_DELETED": [False]})
    eng.push("inst", {"k": ["a"], "sector": [None], "_TIMESTAMP": [100], "_DELETED": [True]})
    eng.push("inst", {"k": ["zz"], "sector": ["-"], "_TIMESTAMP": [1000], "_DELETED": [False]})
    out = eng.push("trades", {"k": ["a", "a"], "v": [1, 2], "_TIMESTAMP": [50, 150]}).to_pylist()
    assert out == [{"v": 1, "sector": "x"}, {"v": 2, "sector": None}]


@pytest.mark.parametrize("versions_per_key", [3, 60])
def test_temporal_join_with_few_or_many_versions_per_key(versions_per_key):
    """Both lookups: a pass per version rank (few versions a key) and a binary search (many)."""
    rng = np.random.default_rng(versions_per_key)
    keys = ["a", "b", "c"]
    n = versions_per_key * len(keys)
    vt = np.sort(rng.integers(0, 600_000, n)).astype(np.int64)
    inst = pa.table({"k": pa.array(rng.choice(keys, n).astype(object)),
                     "sector": pa.array([f"s{i}" for i in range(n)]), "_TIMESTAMP": pa.array(vt)})
    trades = stream(500, 21)
    got = vs.query(TABLE_DDL + "SELECT t.k, t.v, i.sector FROM trades t LEFT JOIN inst i "
                   "ON t.k = i.k", {"trades": batches(trades, 3), "inst": inst})
    ref = duck("SELECT t.k, t.v, i.sector FROM trades t ASOF LEFT JOIN inst i "
               "ON t.k = i.k AND t._TIMESTAMP >= i._TIMESTAMP", trades=trades, inst=inst)
    assert_rows_equal(got.to_pylist(), ref)


def test_temporal_join_on_two_keys():
    rng = np.random.default_rng(8)
    n = 60
    inst = pa.table({"k": pa.array(rng.choice(["a", "b"], n).astype(object)),
                     "m": pa.array(rng.integers(0, 3, n)),
                     "sector": pa.array([f"s{i}" for i in range(n)]),
                     "_TIMESTAMP": pa.array(np.sort(rng.integers(0, 600_000, n)))})
    trades = stream(300, 9).append_column("m", pa.array(rng.integers(0, 3, 300)))
    ddl = ("CREATE TABLE inst (k VARCHAR, m BIGINT, sector VARCHAR, _TIMESTAMP BIGINT, "
           "PRIMARY KEY (k, m));")
    got = vs.query(ddl + "SELECT t.k, t.m, t.v, i.sector FROM trades t JOIN inst i "
                   "ON t.k = i.k AND t.m = i.m", {"trades": trades, "inst": inst})
    ref = duck("SELECT t.k, t.m, t.v, i.sector FROM trades t ASOF JOIN inst i "
               "ON t.k = i.k AND t.m = i.m AND t._TIMESTAMP >= i._TIMESTAMP",
               trades=trades, inst=inst)
    assert_rows_equal(got.to_pylist(), ref)


def test_interval_join_with_differently_named_time_columns(partitions):
    """The bound names each side's own time column (they were swapped when the names differ)."""
    a = stream(300, 31).rename_columns(["k", "v", "at", "_TIMESTAMP"])
    b = stream(300, 32, col="w").rename_columns(["k", "w", "bt", "_TIMESTAMP"])
    sql = ("SELECT a.k, a.v, b.w, b.bt FROM a LEFT JOIN b ON a.k = b.k "
           "AND b.bt BETWEEN a.at - 4000 AND a.at + 1000")
    got = vs.query(sql, {"a": batches(a, 1), "b": batches(b, 2)}, partitions=partitions)
    ref = duck(sql, a=a, b=b)
    assert len([r for r in ref if r[2] is not None]) > 30
    assert_rows_equal(got.to_pylist(), ref)


# ------------------------------------------------------------------- the compiled join index
@pytest.mark.parametrize("words", [1, 2])
def test_key_runs_find_the_current_version_and_the_rows_in_range(words):
    """``_core.join_index.KeyRuns`` against the obvious loops: one-word keys (addressed directly,
    -1 like a NULL text code among them) and two-word keys (hashed), many rows of one time (the
    later arrival is current), rows that must never match, probes outside every key."""
    from velostream._core.join_index import KeyRuns
    rng = np.random.default_rng(40 + words)
    m, n = 400, 600
    k1 = rng.integers(-1, 6, m)
    k2 = rng.integers(0, 3, m) if words == 2 else np.zeros(m, dtype=np.int64)
    t = rng.integers(0, 40, m)  # few distinct times: ties everywhere
    usable = rng.random(m) > 0.1
    usable &= k1 >= 0  # as the join marks a NULL key
    runs = KeyRuns([k1, k2][:words], t, usable)
    p1 = rng.integers(-1, 7, n)
    p2 = rng.integers(0, 3, n) if words == 2 else np.zeros(n, dtype=np.int64)
    pt = rng.integers(-5, 45, n)
    p_usable = rng.random(n) > 0.1
    got = np.empty(n, dtype=np.int64)
    runs.as_of([p1, p2][:words], pt, p_usable, got)
    for i in range(n):
        rows = [r for r in range(m) if usable[r] and k1[r] == p1[i] and k2[r] == p2[i]
                and t[r] <= pt[i]]
        want = max(rows, key=lambda r: (t[r], r)) if rows and p_usable[i] else -1
        assert got[i] == want, i
    probe, found = runs.in_range([p1, p2][:words], pt, p_usable, -3, 2)
    want = {(i, r) for i in range(n) if p_usable[i] for r in range(m)
            if usable[r] and k1[r] == p1[i] and k2[r] == p2[i] and -3 <= t[r] - pt[i] <= 2}
    assert len(probe) == len(want) > 100
    assert set(zip(probe.tolist(), found.tolist())) == want


def test_text_codes_number_the_indexed_strings_and_look_up_others():
    """``_core.join_index.TextCodes`` against a dict: empty, short, 8- and 16-byte, long and
    multibyte strings, NULLs, the last string of a buffer, and a sliced array probing it."""
    from velostream._core.join_index import TextCodes
    from velostream._core.strings import string_buffers
    rng = np.random.default_rng(49)
    alphabet = list("abé中xyz0")
    pool = ["", "a", "abcdefgh", "abcdefghi", "abcdefghijklmnop", "abcdefghijklmnopq"] + [
        "".join(rng.choice(alphabet, rng.integers(0, 40))) for _ in range(300)]
    indexed = pa.array([None if rng.random() < 0.05 else pool[i]
                        for i in rng.integers(0, len(pool) // 2, 2000)], pa.string())
    valid = indexed.is_valid().to_numpy(zero_copy_only=False)
    t = TextCodes(*string_buffers(indexed), valid)
    first = {}
    for s in indexed.to_pylist():
        if s is not None:
            first.setdefault(s, len(first))
    assert t.codes.tolist() == [-1 if s is None else first[s] for s in indexed.to_pylist()]
    assert t.n_codes == len(first)
    probing = pa.array([None if rng.random() < 0.05 else pool[i]
                        for i in rng.integers(0, len(pool), 3000)], pa.string()).slice(7, 2500)
    out = np.empty(len(probing), dtype=np.int32)
    t.lookup(*string_buffers(probing), probing.is_valid().to_numpy(zero_copy_only=False), out)
    want = [first.get(s, -1) if s is not None else -1 for s in probing.to_pylist()]
    assert out.tolist() == want and min(want) == -1 and max(want) > 0


# -------------------------------------------------------------- several JOINs in one SELECT
def venues(seed=41):
    rng = np.random.default_rng(seed)
    n = 16
    return pa.table({"venue": pa.array(rng.choice(["X", "Y", "W"], n).astype(object)),
                     "city": pa.array([f"c{i}" for i in range(n)]),
                     "_TIMESTAMP": pa.array(np.sort(rng.integers(0, 100_000, n)))})


def with_venue(t: pa.Table, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return t.append_column("venue", pa.array(rng.choice(["X", "Y", "Z", None], t.num_rows)))


VENUES_DDL = ("CREATE TABLE venues (venue VARCHAR, city VARCHAR, _TIMESTAMP BIGINT, "
              "PRIMARY KEY (venue));")


@pytest.mark.parametrize("kinds", [("INNER", "LEFT"), ("LEFT", "INNER"), ("LEFT", "LEFT")])
def test_a_stream_joins_two_tables_in_one_select(kinds, partitions):
    trades, inst, ven = with_venue(stream(400, 42), 43), instruments(44), venues()
    k1, k2 = kinds
    sql = (TABLE_DDL + VENUES_DDL + f"SELECT t.k, t.v, i.sector, v.city, t.venue FROM trades t "
           f"{k1} JOIN inst i ON t.k = i.k {k2} JOIN venues v ON t.venue = v.venue "
           "WHERE t.v > 100")
    got = vs.query(sql, {"trades": batches(trades, 1), "inst": batches(inst, 2, pieces=3),
                         "venues": ven}, partitions=partitions)
    asof = {"INNER": "ASOF JOIN", "LEFT": "ASOF LEFT JOIN"}
    ref = duck(f"SELECT t.k, t.v, i.sector, v.city, t.venue FROM trades t {asof[k1]} inst i "
               f"ON t.k = i.k AND t._TIMESTAMP >= i._TIMESTAMP {asof[k2]} venues v "
               "ON t.venue = v.venue AND t._TIMESTAMP >= v._TIMESTAMP WHERE t.v > 100",
               trades=trades, inst=inst, venues=ven)
    assert len(ref) > 50 and any(r[3] is not None for r in ref)
    assert_rows_equal(got.to_pylist(), ref)


def test_select_star_over_a_chain_names_every_relations_columns():
    trades, inst, ven = with_venue(stream(60, 45), 46), instruments(47), venues(48)
    got = vs.query(TABLE_DDL + VENUES_DDL + "SELECT *, i.* FROM trades t LEFT JOIN inst i "
                   "ON t.k = i.k LEFT JOIN venues v ON t.venue = v.venue",
                   {"trades": trades, "inst": inst, "venues": ven})
    # every relation's columns in FROM order, then i's again (repeated names get a suffix)
    assert [re.sub(r"_\d+$", "", n) for n in got.schema.names] == (
        trades.schema.names + inst.schema.names + ven.schema.names + inst.schema.names)
    rows = got.to_pylist()
    assert len(rows) == trades.num_rows and any(r["city"] is not None for r in rows)


CHAIN_KINDS = ["INNER", "LEFT", "RIGHT", "FULL"]


@pytest.mark.parametrize("kind", CHAIN_KINDS)
@pytest.mark.parametrize("form", ["chain", "with"])
def test_the_rows_of_an_interval_join_join_a_third_stream(kind, form, partitions):
    """A join's rows come out of time order; a later interval join still finds every partner
    (the rows it keeps are freed by the join's watermark)."""
    a, b, c = stream(250, 50), stream(250, 51, col="w"), stream(250, 52, col="x")
    first = "a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - 3000 AND a.ts + 3000"
    if form == "chain":
        sql = f"SELECT a.k, a.v, b.w, c.x FROM {first} {kind} JOIN c ON b.k = c.k WITHIN 2 SECONDS"
    else:
        sql = (f"WITH ab AS (SELECT a.k, a.v, b.w FROM {first}) SELECT ab.k, ab.v, ab.w, c.x "
               f"FROM ab {kind} JOIN c ON ab.k = c.k WITHIN 2 SECONDS")
    got = vs.query(sql, {"a": batches(a, 1), "b": batches(b, 2), "c": batches(c, 3)},
                   partitions=partitions)
    ref = duck(f"WITH ab AS (SELECT a.k, a.v, b.w, greatest(a._TIMESTAMP, b._TIMESTAMP) AS t "
               f"FROM {first}) SELECT ab.k, ab.v, ab.w, c.x FROM ab {kind} JOIN c "
               "ON ab.k = c.k AND abs(c._TIMESTAMP - ab.t) <= 2000", a=a, b=b, c=c)
    assert len(ref) > 500
    assert_rows_equal(got.to_pylist(), ref)


def test_an_interval_join_then_a_table_meets_the_version_at_the_joined_time(partitions):
    a, b, inst = stream(250, 53), stream(250, 54, col="w"), instruments(55)
    # a.v + b.w > 800: a condition that is neither key nor time bound filters the INNER rows
    sql = (TABLE_DDL + "SELECT a.k, a.v, b.w, i.sector FROM a JOIN b ON a.k = b.k "
           "AND a.v + b.w > 800 AND b.ts BETWEEN a.ts - 2000 AND a.ts + 2000 "
           "LEFT JOIN inst i ON a.k = i.k")
    got = vs.query(sql, {"a": batches(a, 1), "b": batches(b, 2), "inst": inst},
                   partitions=partitions)
    ref = duck("WITH ab AS (SELECT a.k, a.v, b.w, greatest(a._TIMESTAMP, b._TIMESTAMP) AS t "
               "FROM a JOIN b ON a.k = b.k AND a.v + b.w > 800 AND b.ts BETWEEN a.ts - 2000 AND "
               "a.ts + 2000) SELECT ab.k, ab.v, ab.w, i.sector FROM ab ASOF LEFT JOIN inst i "
               "ON ab.k = i.k AND ab.t >= i._TIMESTAMP", a=a, b=b, inst=inst)
    assert len(ref) > 100 and any(r[3] is None for r in ref) and any(r[3] for r in ref)
    assert_rows_equal(got.to_pylist(), ref)


@pytest.mark.parametrize("sql,part", [
    ("SELECT k FROM a JOIN b ON a.k = b.k WITHIN 1 SECOND JOIN c ON a.k = c.k WITHIN 1 SECOND",
     r"on both sides of the join: qualify it \(a.k or b.k or c.k\)"),
    ("SELECT a.v FROM a JOIN b ON a.k = b.k WITHIN 1 SECOND JOIN b ON a.k = b.k WITHIN 1 SECOND",
     "both sides of the join are called 'b'"),
    ("SELECT a.v FROM a JOIN b ON a.k = b.k WITHIN 1 SECOND JOIN c ON d.k = c.k WITHIN 1 SECOND",
     "unknown table or alias 'd' .the join reads a, b and c"),
    ("SELECT a.v FROM a JOIN b ON a.k = b.k WITHIN 1 SECOND JOIN c ON a.k = c.k "
     "AND c.ts BETWEEN a.ts - 10 AND a.ts + 10", "holds the rows of a join: bound this join on "
     "their event time"),
    ("SELECT a.v FROM a JOIN b ON a.k = b.k AND a.v + b.w > 9 WITHIN 1 SECOND FULL JOIN c "
     "ON a.k = c.k WITHIN 1 SECOND", "FULL JOIN after a join whose ON has conditions"),
])
def test_errors_of_a_chain_of_joins_point_at_the_text(sql, part):
    data = {"a": stream(20, 1), "b": stream(20, 2, col="w"), "c": stream(20, 3, col="x")}
    with pytest.raises(SqlError, match=part) as info:
        vs.query(sql, data)
    assert info.value.line is not None


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_a_chain_of_joins_snapshotted_mid_stream_continues_exactly(cut):
    """Every join of a chain keeps its state in the snapshot (no string codes: the restored
    engine has a dictionary of its own) and the restored engine carries on as if never cut."""
    sql = (TABLE_DDL + "SELECT a.k, a.v, b.w, c.x, i.sector FROM a LEFT JOIN b ON a.k = b.k "
           "AND b.ts BETWEEN a.ts - 3000 AND a.ts + 1000 FULL JOIN c ON a.k = c.k "
           "WITHIN 2 SECONDS LEFT JOIN inst i ON c.k = i.k")
    tables = {"a": stream(300, 60), "b": stream(300, 61, col="w"), "c": stream(300, 62, col="x")}
    events = [("inst", b) for b in batches(instruments(63), 4, pieces=3)]
    timed = [(int(b.column("_TIMESTAMP")[0].as_py()), name, b)
             for name, t in tables.items() for b in batches(t, 64)]
    events += [(name, b) for _, name, b in sorted(timed, key=lambda x: x[0])]

    def run(engine, part):
        return [r for src, b in part for r in engine.push(src, b).to_pylist()]
    whole = vs.Engine(sql)
    expected = run(whole, events) + whole.flush().to_pylist()
    assert len(expected) > 300 and any(r["x"] is None for r in expected)
    first = vs.Engine(sql)
    split = int(len(events) * cut)
    got = run(first, events[:split])
    second = vs.Engine(sql)
    second.restore(first.snapshot())
    got += run(second, events[split:]) + second.flush().to_pylist()
    assert_rows_equal(got, expected)


@pytest.mark.parametrize("kind", ["interval", "temporal"])
def test_a_join_codes_text_keys_in_memory_bounded_by_the_rows_it_holds(kind):
    """Text keys become codes of the join's own: with a new key on every row (order ids) the
    interval join's dictionary starts afresh instead of growing with the stream, the temporal
    join numbers the table's keys alone, and the rows stay right throughout."""
    n, step = 150_000, 10_000
    ids = np.array([f"o{i}" for i in range(n)], dtype=object)
    ts = np.arange(n, dtype=np.int64) * 10
    a = pa.table({"k": pa.array(ids), "v": pa.array(np.arange(n)), "ts": pa.array(ts),
                  "_TIMESTAMP": pa.array(ts)})
    if kind == "interval":
        fills = ids.copy()
        fills[::3] = [f"x{i}" for i in range(len(fills[::3]))]  # fills of no order
        b = pa.table({"k": pa.array(fills), "w": pa.array(np.arange(n)),
                      "ts": pa.array(ts + 5), "_TIMESTAMP": pa.array(ts + 5)})
        sql = ("SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k "
               "AND b.ts BETWEEN a.ts AND a.ts + 10")
        ref = duck(sql, a=a, b=b)
        first, sources = [], [("a", a), ("b", b)]
    else:
        b = pa.table({"k": pa.array(ids[::997].copy()), "w": pa.array(np.arange(len(ids[::997]))),
                      "_TIMESTAMP": pa.array(ts[::997])})
        sql = ("CREATE TABLE b (k VARCHAR, w BIGINT, _TIMESTAMP BIGINT, PRIMARY KEY (k));"
               "SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k")
        ref = duck("SELECT a.k, a.v, b.w FROM a ASOF LEFT JOIN b ON a.k = b.k "
                   "AND a._TIMESTAMP >= b._TIMESTAMP", a=a, b=b)
        first, sources = [("b", b)], [("a", a)]
    eng = vs.Engine(sql)
    join = next(node for node in eng.flow.nodes if node.kind == "join")
    got = [r for name, t in first for r in eng.push(name, t).to_pylist()]
    largest = 0
    for lo in range(0, n, step):
        for name, t in sources:
            got += eng.push(name, t.slice(lo, step)).to_pylist()
            if join.op is not None:  # built once both sides' columns are known
                words = join.op._key_words  # the strings it holds, however it codes them
                largest = max(largest, len(words.strings) + sum(
                    t.n_codes for t in words.text_codes.values()))
    got += eng.flush().to_pylist()
    assert 0 < largest <= 2 * 2 * step + 65_536 + 2 * step < n
    if kind == "temporal":
        assert largest == b.num_rows  # the table's keys, none of the stream's
    assert any(r[2] is not None for r in ref)
    assert_rows_equal(got, ref)


@pytest.mark.parametrize("encoding", ["dictionary", "large_string"])
def test_temporal_join_of_text_keys_in_other_arrow_encodings(encoding):
    trades, inst = stream(300, 70), instruments(71)
    k = trades.column("k")
    k = k.dictionary_encode() if encoding == "dictionary" else k.cast(pa.large_string())
    coded = trades.set_column(0, "k", k)
    sql = TABLE_DDL + "SELECT t.k, t.v, i.sector FROM trades t LEFT JOIN inst i ON t.k = i.k"
    got = vs.query(sql, {"trades": batches(coded, 3), "inst": inst})
    ref = duck("SELECT t.k, t.v, i.sector FROM trades t ASOF LEFT JOIN inst i "
               "ON t.k = i.k AND t._TIMESTAMP >= i._TIMESTAMP", trades=trades, inst=inst)
    assert any(r[2] is not None for r in ref)
    assert_rows_equal(got.to_pylist(), ref)


def test_explain_of_joins_without_data_and_where_they_run():
    """Without data a source's columns are the ones the query names, plus the event time every
    source record has: a WITHIN join explains instead of refusing; and explain says how each
    node is split over the partitions (the join hashed on its keys, both sides)."""
    sql = ("SELECT o.id, f.qty FROM orders o JOIN fills f ON o.id = f.order_id "
           "WITHIN 5 SECONDS")
    text = vs.explain(sql)
    assert "IntervalJoin INNER" in text and "[-5000, 5000] ms" in text
    assert "Exchange: input 1 hash(id); input 2 hash(order_id) at more than one partition" in text
    assert text.splitlines()[-1].startswith("Partitioning: 1 partition:")
    text = vs.explain(sql, partitions=2)
    assert "Exchange: input 1 hash(id); input 2 hash(order_id) over 2 partitions" in text
    assert text.splitlines()[-1].startswith("Partitioning: 2 partitions:")
    assert sum(line.startswith("Partitioning") or "    Partitioning" in line
               for line in text.splitlines()) == 1
