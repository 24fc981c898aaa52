"""The standard OVER frames (docs/SQL.md §6): ROWS BETWEEN n PRECEDING AND CURRENT ROW (and
ROWS n PRECEDING) is a buffer of n + 1 rows; ROWS UNBOUNDED PRECEDING keeps running state per
key; RANGE BETWEEN INTERVAL d PRECEDING AND CURRENT ROW covers the key's rows in [t - d, t];
RANK / DENSE_RANK rank among the key's rows so far; MIN / MAX / FIRST_VALUE / LAST_VALUE / LAG
of text. Checked against DuckDB's window functions over the same rows in arrival order, with
NULLs and batch splits, at 1, 2 and 4 partitions, and across a snapshot/restore mid-stream; the
rules DuckDB cannot give (peers that arrive later, late rows) against a small reference. EMIT
CHANGES on a per-row query changes nothing."""
from __future__ import annotations

import statistics

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import SqlError, UnsupportedError

from reference import assert_rows_equal, duck


def data(n=600, seed=4):
    rng = np.random.default_rng(seed)
    return pa.table({"id": pa.array(np.arange(n)),
                     "k": pa.array(rng.choice(["a", "b", "c"], n).astype(object),
                                   mask=rng.random(n) < 0.05, type=pa.string()),
                     "x": pa.array(rng.integers(-50, 50, n).astype(float),
                                   mask=rng.random(n) < 0.1),
                     "s": pa.array(rng.choice(["b", "B", "ab", "", "é", "a b"], n).astype(object),
                                   mask=rng.random(n) < 0.2, type=pa.string())})


@pytest.mark.parametrize("frame,duck_frame", [
    ("ROWS BETWEEN 3 PRECEDING AND CURRENT ROW", "ROWS BETWEEN 3 PRECEDING AND CURRENT ROW"),
    ("ROWS 5 PRECEDING", "ROWS 5 PRECEDING"),
    ("ROWS BETWEEN 0 PRECEDING AND CURRENT ROW", "ROWS BETWEEN CURRENT ROW AND CURRENT ROW"),
])
def test_standard_frame_is_a_buffer(frame, duck_frame, partitions):
    t = data()
    fns = ("SUM(x) OVER w AS s, AVG(x) OVER w AS a, MIN(x) OVER w AS lo, COUNT(x) OVER w AS n, "
           "MIN(s) OVER w AS slo, MAX(s) OVER w AS shi")
    ours = fns.replace("OVER w", f"OVER (PARTITION BY k ORDER BY id {frame})")
    got = vs.query(f"SELECT id, {ours} FROM t EMIT CHANGES",
                   {"t": t.to_batches(max_chunksize=70)}, partitions=partitions)
    ref = duck(f"SELECT id, {fns} FROM t WINDOW w AS (PARTITION BY k ORDER BY id {duck_frame})",
               t=t)
    assert_rows_equal(got.to_pylist(), ref)


def test_emit_changes_on_a_projection_changes_nothing():
    t = data(50)
    assert (vs.query("SELECT id, x FROM t WHERE x > 0 EMIT CHANGES", {"t": t}).to_pylist()
            == vs.query("SELECT id, x FROM t WHERE x > 0", {"t": t}).to_pylist())


@pytest.mark.parametrize("sql,exc,part", [
    ("SELECT SUM(x) OVER (ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS s FROM t",
     UnsupportedError, "CURRENT ROW"),
    ("SELECT SUM(x) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND 1 FOLLOWING) AS s FROM t",
     UnsupportedError, "CURRENT ROW"),
    ("SELECT SUM(x) OVER (ORDER BY id RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS s "
     "FROM t", UnsupportedError, "INTERVAL"),
    ("SELECT SUM(x) OVER (PARTITION BY k RANGE BETWEEN INTERVAL '1' SECOND PRECEDING AND "
     "CURRENT ROW) AS s FROM t", SqlError, "ORDER BY one column"),
    ("SELECT SUM(x) OVER (ORDER BY x RANGE BETWEEN INTERVAL '1' SECOND PRECEDING AND "
     "CURRENT ROW) AS s FROM t", SqlError, "ORDER BY a TIMESTAMP or INT64"),
    ("SELECT RANK() OVER (PARTITION BY k ORDER BY id DESC) AS r FROM t", UnsupportedError,
     "DESC"),
    ("SELECT id FROM t EMIT FINAL", SqlError, "EMIT FINAL applies to GROUP BY"),
])
def test_frames_not_kept_in_bounded_state_are_refused(sql, exc, part):
    with pytest.raises(exc, match=part):
        vs.query(sql, {"t": data(20)})



# ------------------------------------------------------------------ frames without a buffer


def frame_data(n=500, seed=7, ties=False, late=0.0):
    """Rows in arrival order: ``ts`` (epoch ms) increases (with equal neighbours when ``ties``;
    a ``late`` fraction of rows moved back by up to 8 s), keys with NULLs, a float and a text
    argument with NULLs."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(0, 3, n) * 500 if ties else rng.integers(1, 1500, n)
    ts = 1_700_000_000_000 + np.cumsum(steps)
    if late:
        back = rng.random(n) < late
        ts = ts - back * rng.integers(1, 8000, n)
    return pa.table({
        "id": pa.array(np.arange(n)),
        "ts": pa.array(ts.astype(np.int64)),
        "k": pa.array(rng.choice(["a", "b", "c", "d"], n).astype(object),
                      mask=rng.random(n) < 0.05, type=pa.string()),
        "x": pa.array(np.round(rng.normal(0, 50, n), 2), mask=rng.random(n) < 0.15),
        "s": pa.array(rng.choice(["pear", "apple", "Zebra", "", "äpfel", "apples"], n)
                      .astype(object), mask=rng.random(n) < 0.15, type=pa.string()),
    })


UNBOUNDED_FNS = ("SUM(x) OVER w AS su, COUNT(x) OVER w AS n, COUNT(*) OVER w AS nn, "
                 "AVG(x) OVER w AS av, MIN(x) OVER w AS lo, MAX(x) OVER w AS hi, "
                 "STDDEV(x) OVER w AS sd, VAR_POP(x) OVER w AS vp, "
                 "FIRST_VALUE(x) OVER w AS fv, LAST_VALUE(x) OVER w AS lv, "
                 "ROW_NUMBER() OVER w AS rn, MIN(s) OVER w AS slo, MAX(s) OVER w AS shi, "
                 "FIRST_VALUE(s) OVER w AS sfv, LAST_VALUE(s) OVER w AS slv")
LAGS = "LAG(x, 2) OVER v AS lg, LAG(s) OVER v AS slg, LAG(x, 3, -1.0) OVER v AS lgd"


def _ours(fns, over):
    return fns.replace("OVER w", f"OVER ({over})")


def _batches(t, size=57):
    return t.to_batches(max_chunksize=size)


def test_rows_unbounded_preceding_is_running_state(partitions):
    t = frame_data()
    for frame in ("ROWS UNBOUNDED PRECEDING",
                  "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"):
        over = f"PARTITION BY k ORDER BY ts {frame}"
        sql = (f"SELECT id, {_ours(UNBOUNDED_FNS, over)}, "
               f"{LAGS.replace('OVER v', f'OVER ({over})')} FROM t")
        got = vs.query(sql, {"t": _batches(t)}, partitions=partitions)
        ref = duck(f"SELECT id, {UNBOUNDED_FNS}, {LAGS} FROM t WINDOW "
                   "w AS (PARTITION BY k ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND "
                   "CURRENT ROW), v AS (PARTITION BY k ORDER BY id)", t=t)
        assert_rows_equal(got.to_pylist(), ref)


RANGE_FNS = ("SUM(x) OVER w AS su, COUNT(x) OVER w AS n, COUNT(*) OVER w AS nn, "
             "AVG(x) OVER w AS av, MIN(x) OVER w AS lo, MAX(x) OVER w AS hi, "
             "STDDEV_POP(x) OVER w AS sd, VARIANCE(x) OVER w AS va, "
             "FIRST_VALUE(x) OVER w AS fv, LAST_VALUE(x) OVER w AS lv, "
             "MIN(s) OVER w AS slo, MAX(s) OVER w AS shi, FIRST_VALUE(s) OVER w AS sfv")


@pytest.mark.parametrize("width_ms,interval", [(5000, "INTERVAL '5' SECOND"),
                                               (0, "INTERVAL '0' SECOND"),
                                               (60_000, "INTERVAL '1' MINUTE")])
def test_range_interval_frame_against_duckdb(width_ms, interval, partitions):
    t = frame_data(seed=width_ms % 7 + 1)  # no ties: DuckDB's peers are only the row itself
    frame = f"RANGE BETWEEN {interval} PRECEDING AND CURRENT ROW"
    sql = f"SELECT id, {_ours(RANGE_FNS, 'PARTITION BY k ORDER BY ts ' + frame)} FROM t"
    got = vs.query(sql, {"t": _batches(t, 41)}, partitions=partitions)
    ref = duck(f"SELECT id, {RANGE_FNS} FROM (SELECT *, epoch_ms(ts) AS t_ FROM t) WINDOW "
               f"w AS (PARTITION BY k ORDER BY t_ RANGE BETWEEN INTERVAL {width_ms} MILLISECOND "
               "PRECEDING AND CURRENT ROW)", t=t)
    assert_rows_equal(got.to_pylist(), ref)


def _ref_range(t, width):
    """docs/SQL.md §6 on arrival order: a row's frame is the rows of its key that arrived so far
    (itself included) whose time lies in [t - d, t] and is not older than the key's newest time
    minus d; later-arriving peers are not in it."""
    rows = t.to_pylist()
    seen: dict = {}
    out = []
    for r in rows:
        prev = seen.setdefault(r["k"], [])
        prev.append(r)
        newest = max(p["ts"] for p in prev)
        frame = [p for p in prev if p is r or (r["ts"] - width <= p["ts"] <= r["ts"]
                                               and p["ts"] >= newest - width)]
        xs = [p["x"] for p in frame if p["x"] is not None]
        ss = [p["s"] for p in frame if p["s"] is not None]
        first = min(frame, key=lambda p: p["ts"])  # the earliest-arrived of the oldest time
        out.append((r["id"], sum(xs) if xs else None, len(xs), len(frame),
                    min(xs) if xs else None, max(ss) if ss else None, first["x"],
                    statistics.pvariance(xs) if xs else None, min(ss) if ss else None))
    return out


@pytest.mark.parametrize("ties,late", [(True, 0.0), (False, 0.2), (True, 0.2)])
def test_range_frame_peers_and_late_rows(ties, late, partitions):
    """Peers (equal times) that arrive later are not in an earlier row's frame; a late row sees
    the held rows up to its time. Against the small reference of the rule, not DuckDB (which
    sees rows that have not arrived yet)."""
    t = frame_data(400, seed=11, ties=ties, late=late)
    w = "PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '3' SECOND PRECEDING AND CURRENT ROW"
    sql = (f"SELECT id, SUM(x) OVER ({w}) AS su, COUNT(x) OVER ({w}) AS n, "
           f"COUNT(*) OVER ({w}) AS nn, MIN(x) OVER ({w}) AS lo, MAX(s) OVER ({w}) AS shi, "
           f"FIRST_VALUE(x) OVER ({w}) AS fv, VAR_POP(x) OVER ({w}) AS vp, "
           f"MIN(s) OVER ({w}) AS slo FROM t")
    got = vs.query(sql, {"t": _batches(t, 33)}, partitions=partitions)
    assert_rows_equal(got.to_pylist(), _ref_range(t, 3000))


def test_range_frame_with_ties_differs_from_duckdb_only_by_later_peers():
    """What the tie rule changes: DuckDB's frame also holds the peers that arrive after the row."""
    t = frame_data(200, seed=3, ties=True)
    w = "PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW"
    got = {r["id"]: r["nn"] for r in vs.query(f"SELECT id, COUNT(*) OVER ({w}) AS nn FROM t",
                                              {"t": t}).to_pylist()}
    duck_nn = dict(duck("SELECT id, COUNT(*) OVER (PARTITION BY k ORDER BY epoch_ms(ts) RANGE "
                        "BETWEEN INTERVAL 2 SECOND PRECEDING AND CURRENT ROW) FROM t", t=t))
    rows = t.to_pylist()
    for i, r in enumerate(rows):
        later_peers = sum(1 for q in rows[i + 1:] if q["k"] == r["k"] and q["ts"] == r["ts"])
        assert got[r["id"]] == duck_nn[r["id"]] - later_peers
    assert any(got[i] != duck_nn[i] for i in got)  # the data does have later peers


def test_rank_and_dense_rank(partitions):
    t = frame_data(400, seed=5, ties=True)  # ts never decreases: ties are peers
    fns = "RANK() OVER w AS r, DENSE_RANK() OVER w AS dr"
    rn = ", ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING) AS rn"
    got = vs.query(f"SELECT id, {_ours(fns, 'PARTITION BY k ORDER BY ts')}{rn} FROM t",
                   {"t": _batches(t, 29)}, partitions=partitions)
    ref = duck(f"SELECT id, {fns}, ROW_NUMBER() OVER (PARTITION BY k ORDER BY id) FROM t "
               "WINDOW w AS (PARTITION BY k ORDER BY ts)", t=t)
    assert_rows_equal(got.to_pylist(), ref)


def test_rank_of_a_row_older_than_its_keys_newest_is_a_bad_record():
    t = pa.table({"k": ["a", "a", "b", "a"], "ts": [10, 20, 5, 15]})
    with pytest.raises(vs.errors.RowError, match="ORDER BY order") as err:
        vs.query("SELECT RANK() OVER (PARTITION BY k ORDER BY ts) AS r FROM t", {"t": t})
    # the row it names (a job under LogAndContinue sends just that one to the dead letters)
    assert err.value.rows is not None and err.value.rows.tolist() == [False, False, False, True]


def test_lag_and_row_number_without_a_frame_equal_duckdb(partitions):
    """LAG, ROW_NUMBER and FIRST_VALUE do not depend on where the frame ends, so they may be
    written without one, as
    Flink SQL and DuckDB users write them (docs/SQL.md §6): DuckDB's answer over the same rows,
    beside RANK in the same OVER."""
    t = frame_data(500, seed=17, ties=True)  # ts never decreases; ties keep arrival order
    fns = ("LAG(x) OVER w AS l1, LAG(x, 3, -1.5) OVER w AS l3, LAG(s, 2) OVER w AS ls, "
           "ROW_NUMBER() OVER w AS rn, RANK() OVER w AS r, FIRST_VALUE(x) OVER w AS fx, "
           "FIRST_VALUE(s) OVER w AS fs")
    got = vs.query(f"SELECT id, {_ours(fns, 'PARTITION BY k ORDER BY ts')} FROM t",
                   {"t": _batches(t, 41)}, partitions=partitions)
    # ties: LAG and ROW_NUMBER follow arrival order (id), RANK gives peers one rank
    ref = duck(f"SELECT id, {fns.replace('OVER w', 'OVER wa').replace('RANK() OVER wa', 'RANK() OVER w')} "
               "FROM t WINDOW w AS (PARTITION BY k ORDER BY ts), "
               "wa AS (PARTITION BY k ORDER BY ts, id)", t=t)
    assert_rows_equal(got.to_pylist(), ref)
    # without ORDER BY: arrival order
    got = vs.query("SELECT id, LAG(id) OVER (PARTITION BY k) AS prev, ROW_NUMBER() OVER "
                   "(PARTITION BY k) AS rn, FIRST_VALUE(x) OVER (PARTITION BY k) AS f FROM t",
                   {"t": _batches(t, 41)}, partitions=partitions)
    ref = duck("SELECT id, LAG(id) OVER (PARTITION BY k ORDER BY id), ROW_NUMBER() OVER "
               "(PARTITION BY k ORDER BY id), FIRST_VALUE(x) OVER (PARTITION BY k ORDER BY id) "
               "FROM t", t=t)
    assert_rows_equal(got.to_pylist(), ref)


def test_frameless_lag_of_a_row_older_than_its_keys_newest_is_a_bad_record():
    t = pa.table({"k": ["a", "a", "b", "a"], "ts": [10, 20, 5, 15], "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(vs.errors.RowError, match="ORDER BY order") as err:
        vs.query("SELECT LAG(x) OVER (PARTITION BY k ORDER BY ts) AS l FROM t", {"t": t})
    assert err.value.rows is not None and err.value.rows.tolist() == [False, False, False, True]
    with pytest.raises(SqlError, match="needs a row buffer|need a row buffer"):  # an aggregate
        vs.query("SELECT SUM(x) OVER (PARTITION BY k ORDER BY ts) AS s FROM t", {"t": t})


def test_range_frame_with_null_time_is_a_bad_record():
    t = pa.table({"k": ["a", "a"], "ts": pa.array([10, None], pa.int64()), "x": [1.0, 2.0]})
    with pytest.raises(vs.errors.RowError, match="NULL"):
        vs.query("SELECT SUM(x) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' "
                 "SECOND PRECEDING AND CURRENT ROW) AS s FROM t", {"t": t})


@pytest.mark.parametrize("over", [
    "PARTITION BY k ORDER BY ts ROWS UNBOUNDED PRECEDING",
    "PARTITION BY k ORDER BY ts ROWS BETWEEN 6 PRECEDING AND CURRENT ROW",
    "PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '4' SECOND PRECEDING AND CURRENT ROW",
    "ORDER BY ts RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW",
])
def test_snapshot_restore_mid_stream(over):
    t = frame_data(300, seed=9, late=0.1 if "RANGE" in over else 0.0)
    lag = f", LAG(s, 2) OVER ({over}) AS slg, LAG(x) OVER ({over}) AS lg"
    rank = (", RANK() OVER (PARTITION BY k ORDER BY id) AS r, "
            "DENSE_RANK() OVER (PARTITION BY k ORDER BY id) AS dr")
    sql = (f"SELECT id, SUM(x) OVER ({over}) AS su, STDDEV(x) OVER ({over}) AS sd, "
           f"MIN(s) OVER ({over}) AS slo, MAX(x) OVER ({over}) AS hi, "
           f"FIRST_VALUE(s) OVER ({over}) AS sfv{lag}{rank} FROM t")

    def run(engine, part):
        out = []
        for b in part.to_batches(max_chunksize=37):
            out += engine.push("t", b).to_pylist()
        return out

    want = run(vs.Engine(sql), t)
    for split in (1, 150, 299):
        eng = vs.Engine(sql)
        got = run(eng, t.slice(0, split))
        blob = eng.snapshot()
        fresh = vs.Engine(sql)
        for word in ("zz", "apples", "pear"):  # another dictionary: every code differs
            fresh.strings.code(word)
        fresh.restore(blob)
        got += run(fresh, t.slice(split))
        assert_rows_equal(got, want, ordered=True)


@pytest.mark.parametrize("frame", [
    "ROWS UNBOUNDED PRECEDING",
    "RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW",
])
def test_bigint_sum_leaving_int64_is_an_error_and_avg_stays_exact(frame):
    big = 2 ** 62
    t = pa.table({"ts": [0, 1, 2, 3], "x": pa.array([big, big, -big, big], pa.int64())})
    with pytest.raises(vs.errors.OutOfRangeError, match="Overflow in SUM"):
        vs.query(f"SELECT SUM(x) OVER (ORDER BY ts {frame}) AS s FROM t", {"t": t})
    got = vs.query(f"SELECT AVG(x) OVER (ORDER BY ts {frame}) AS a FROM t", {"t": t}).to_pylist()
    # every row lies within the minute: both frames are every row so far
    ref = duck("SELECT AVG(x) OVER (ORDER BY ts ROWS UNBOUNDED PRECEDING) FROM t", t=t)
    assert_rows_equal(got, ref, ordered=True)


def test_range_state_is_bounded_by_time():
    """A key holds only its rows within d of its newest time, late rows included."""
    from velostream._core.rows import FrameWindow
    rng = np.random.default_rng(2)
    w = FrameWindow("RANGE", 100, [("SUM", 0, 0), ("MAX", 0, 0)], ["float64"])
    n = 20_000
    ts = np.arange(n, dtype=np.int64) - (rng.random(n) < 0.3) * rng.integers(0, 150, n)
    x = rng.normal(size=n)
    for lo in range(0, n, 1000):
        w.process(np.zeros(min(1000, n - lo), np.int32), ts[lo:lo + 1000], [(x[lo:lo + 1000], None)])
    held = w.export_state(np.zeros(1, np.int32))["held_t_values"]
    newest = ts.max()
    assert held.min() >= newest - 100 and len(held) == np.sum(ts >= newest - 100)


def test_running_row_number_in_a_subquery_is_a_filter_not_a_top_n(partitions):
    """With a frame written, ROW_NUMBER() is the running count (docs/SQL.md §6), so an outer
    WHERE rn <= N keeps each key's first N records in arrival order."""
    t = frame_data(300, seed=13)
    inner = ("SELECT id, k, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts ROWS UNBOUNDED "
             "PRECEDING) AS rn FROM t")
    got = vs.query(f"SELECT id, rn FROM ({inner}) WHERE rn <= 3", {"t": _batches(t)},
                   partitions=partitions)
    ref = duck("SELECT id, rn FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY k ORDER BY id) "
               "AS rn FROM t) WHERE rn <= 3", t=t)
    assert_rows_equal(got.to_pylist(), ref)
