"""Hand-computed cases of the contract (docs/SQL.md): SESSION windows, late data and the
watermark, end-of-input flush, emission order, batch-boundary independence, NULL keys, the push
API and its counters, LIMIT, DISTINCT, CREATE STREAM, input shapes, DECIMAL and TIMESTAMP input,
SQL errors.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import velostream as vs
from reference import (as_tuples, assert_rows_equal, collapse_session_changes, ref_sessions)

S = 1000  # one second in ms
HYPO = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def q(sql: str, data, partitions: int = 1, source: str = "t", **kw) -> list[tuple]:
    return as_tuples(vs.query(sql, {source: data}, partitions=partitions, **kw).to_pylist())


def records(rows, names=("k", "t", "x")) -> pa.Table:
    """A table from row tuples (k string, t int64 epoch ms, x int64)."""
    cols = list(zip(*rows)) if rows else [[] for _ in names]
    types = {"k": pa.string(), "t": pa.int64(), "x": pa.int64()}
    return pa.table({n: pa.array(list(c), type=types.get(n)) for n, c in zip(names, cols)})


def one_row_batches(table: pa.Table) -> list[pa.RecordBatch]:
    return [table.slice(i, 1).to_batches()[0] for i in range(table.num_rows)]


SESSION_SQL = ("SELECT k, _WINDOW_START AS ws, _WINDOW_END AS we, COUNT(*) AS n, SUM(x) AS s "
               "FROM t GROUP BY k WINDOW SESSION(t, 10s)")


# ------------------------------------------------------------------------- SESSION windows


def test_session_in_order_per_key_emit_final(partitions):
    data = records([("a", 0, 1), ("b", 1 * S, 10), ("a", 4 * S, 2), ("a", 9 * S, 3),
                    ("b", 12 * S, 20), ("a", 30 * S, 4)])
    got = q(SESSION_SQL + " EMIT FINAL", data, partitions)
    # b: 1s and 12s are 11 s apart (>= gap): two sessions; a: 0, 4, 9 s chain into one
    assert_rows_equal(got, [("b", 1 * S, 11 * S, 1, 10), ("a", 0, 19 * S, 3, 6),
                            ("b", 12 * S, 22 * S, 1, 20), ("a", 30 * S, 40 * S, 1, 4)], ordered=True)


def test_session_gap_is_exclusive(partitions):
    """Records exactly ``gap`` apart are not 'closer than gap': two sessions."""
    data = records([("a", 0, 1), ("a", 10 * S, 2), ("a", 19_999, 3)])
    got = q(SESSION_SQL, data, partitions)
    assert_rows_equal(got, [("a", 0, 10 * S, 1, 1), ("a", 10 * S, 29_999, 2, 5)], ordered=True)


def test_session_bridging_record_merges_two_sessions(partitions):
    data = records([("a", 0, 1), ("a", 5 * S, 2), ("b", 6 * S, 100), ("a", 20 * S, 3),
                    ("a", 12 * S, 4)])
    sql = SESSION_SQL + " EMIT FINAL WITH ('allowed.lateness' = '1m')"
    got = q(sql, data, partitions)
    # a: [0, 15s) and [20s, 30s) are bridged by 12s (7 s after 5s, 8 s before 20s)
    assert_rows_equal(got, [("b", 6 * S, 16 * S, 1, 100), ("a", 0, 30 * S, 4, 10)], ordered=True)


def test_session_bridging_emit_changes():
    data = records([("a", 0, 1), ("a", 5 * S, 2), ("a", 20 * S, 3), ("a", 12 * S, 4)])
    sql = SESSION_SQL + " EMIT CHANGES WITH ('allowed.lateness' = '1m')"
    got = q(sql, data)
    assert got == [("a", 0, 10 * S, 1, 1), ("a", 0, 15 * S, 2, 3), ("a", 20 * S, 30 * S, 1, 3),
                   ("a", 0, 30 * S, 4, 10)]


def test_session_out_of_order_extends_start(partitions):
    data = records([("a", 5 * S, 1), ("a", 2 * S, 2), ("a", 14 * S, 3), ("b", 3 * S, 7)])
    got = q(SESSION_SQL + " WITH ('allowed.lateness' = '30s')", data, partitions)
    assert_rows_equal(got, [("b", 3 * S, 13 * S, 1, 7), ("a", 2 * S, 24 * S, 3, 6)], ordered=True)


def test_session_bridging_is_per_key(partitions):
    """A record of key b between two sessions of key a merges nothing."""
    data = records([("a", 0, 1), ("a", 20 * S, 2), ("b", 10 * S, 3)])
    got = q(SESSION_SQL + " WITH ('allowed.lateness' = '1m')", data, partitions)
    assert_rows_equal(got, [("a", 0, 10 * S, 1, 1), ("b", 10 * S, 20 * S, 1, 3),
                            ("a", 20 * S, 30 * S, 1, 2)])


def test_session_closes_when_watermark_reaches_end():
    eng = vs.Engine(SESSION_SQL)
    assert eng.push("t", records([("a", 0, 1), ("a", 5 * S, 2)])).to_pylist() == []
    assert as_tuples(eng.push("t", records([("b", 14_999, 1)])).to_pylist()) == []  # wm < 15 s
    out = as_tuples(eng.push("t", records([("b", 15 * S, 1)])).to_pylist())
    assert out == [("a", 0, 15 * S, 2, 3)]
    assert as_tuples(eng.flush().to_pylist()) == [("b", 14_999, 25 * S, 2, 2)]


def test_session_late_record_is_dropped_and_counted():
    eng = vs.Engine(SESSION_SQL)
    eng.push("t", records([("a", 0, 1), ("a", 30 * S, 2)]))  # wm 30 s: [0, 10s) closed
    eng.push("t", records([("a", 1 * S, 5)]))  # its session would end at 11 s <= wm: late
    out = as_tuples(eng.flush().to_pylist())
    assert eng.stats["late_records"] == 1
    assert ("a", 30 * S, 40 * S, 1, 2) in out
    assert all(r[3] == 1 and r[4] != 6 for r in out)
    late = [rb for reason, rb in eng.dead_letters if "late" in reason.lower()]
    assert sum(rb.num_rows for rb in late) == 1
    assert late[0].column("t").to_pylist() == [1 * S]


@st.composite
def session_input(draw):
    n = draw(st.integers(1, 30))
    rows = [(draw(st.sampled_from(["a", "b", None])), draw(st.integers(0, 120)) * 500,
             draw(st.one_of(st.none(), st.integers(-3, 9)))) for _ in range(n)]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=4))))
    return rows, cuts


@HYPO
@given(data=session_input())
@example(data=([("a", 0, None), ("a", 3000, None), ("a", 500, None)], []))  # bridging, batch end
def test_session_random_vs_reference(data, partitions):
    """Out-of-order input within the allowed lateness: sessions are the per-key time-sorted
    chains of records closer than the gap, whatever the arrival order and batch cuts."""
    rows, cuts = data
    table = records(rows)
    bounds = [0] + [c for c in cuts if c < len(rows)] + [len(rows)]
    batches = [b for lo, hi in zip(bounds, bounds[1:]) for b in table.slice(lo, hi - lo).to_batches()]
    gap = 3 * S
    sql = ("SELECT k, _WINDOW_START AS ws, _WINDOW_END AS we, COUNT(*) AS n, SUM(x) AS s FROM t "
           "GROUP BY k WINDOW SESSION(t, 3s) {emit} WITH ('allowed.lateness' = '1h')")
    want = ref_sessions(rows, gap)
    final = q(sql.format(emit="EMIT FINAL"), batches, partitions)
    assert_rows_equal(final, want)
    assert [r[2] for r in final] == sorted(r[2] for r in final)  # window-end order
    changes = q(sql.format(emit="EMIT CHANGES"), batches, partitions)
    assert len(changes) == len(rows)
    assert_rows_equal(collapse_session_changes(changes, [0], 1, 2), want)


# ------------------------------------------------------------------- late data, watermark

TUMBLE_SQL = ("SELECT k, _WINDOW_START AS ws, _WINDOW_END AS we, COUNT(*) AS n, SUM(x) AS s "
              "FROM t GROUP BY k WINDOW TUMBLING(t, 10s)")
LATE_INPUT = [("a", 1 * S, 1), ("a", 12 * S, 2), ("a", 3 * S, 4), ("a", 9 * S, 8)]


@pytest.mark.parametrize("one_batch", [True, False], ids=["one_batch", "per_record"])
def test_late_records_are_counted_dead_lettered_not_aggregated(one_batch):
    eng = vs.Engine(TUMBLE_SQL)
    data = records(LATE_INPUT)
    out = []
    for b in ([data] if one_batch else one_row_batches(data)):
        out += as_tuples(eng.push("t", b).to_pylist())
    out += as_tuples(eng.flush().to_pylist())
    # watermark 12 s when 3 s and 9 s arrive: [0, 10s) is closed, both are late
    assert out == [("a", 0, 10 * S, 1, 1), ("a", 10 * S, 20 * S, 1, 2)]
    assert eng.stats["late_records"] == 2
    late = [rb for reason, rb in eng.dead_letters if "late" in reason.lower()]
    assert sorted(v for rb in late for v in rb.column("t").to_pylist()) == [3 * S, 9 * S]
    assert sorted(v for rb in late for v in rb.column("x").to_pylist()) == [4, 8]


def test_allowed_lateness_accepts_records(partitions):
    sql = TUMBLE_SQL + " WITH ('allowed.lateness' = '5s')"
    got = q(sql, records(LATE_INPUT), partitions)
    # watermark 12 s - 5 s = 7 s < 10 s: [0, 10s) still open
    assert got == [("a", 0, 10 * S, 3, 13), ("a", 10 * S, 20 * S, 1, 2)]
    eng = vs.Engine(sql)
    eng.push("t", records(LATE_INPUT))
    eng.flush()
    assert eng.stats["late_records"] == 0
    assert not [1 for reason, _ in eng.dead_letters if "late" in reason.lower()]


def test_lateness_boundary_is_the_window_end():
    """With lateness 5 s, a record for [0, 10s) is accepted until the watermark reaches 10 s."""
    sql = TUMBLE_SQL + " WITH ('allowed.lateness' = '5s')"
    eng = vs.Engine(sql)
    out = as_tuples(eng.push("t", records([("a", 1 * S, 1), ("a", 14_999, 1),
                                            ("a", 2 * S, 1)])).to_pylist())  # wm 9.999 s
    assert out == []
    out = as_tuples(eng.push("t", records([("a", 15 * S, 1), ("a", 3 * S, 1)])).to_pylist())
    assert out == [("a", 0, 10 * S, 2, 2)]  # wm 10 s: closed, so 3 s is late
    assert eng.stats["late_records"] == 1
    assert as_tuples(eng.flush().to_pylist()) == [("a", 10 * S, 20 * S, 2, 2)]


def test_late_data_sliding_only_when_all_windows_closed(partitions):
    sql = ("SELECT k, _WINDOW_START AS ws, COUNT(*) AS n, SUM(x) AS s FROM t GROUP BY k "
           "WINDOW SLIDING(t, 10s, 5s)")
    # after 12 s: [-5s,5s) and [0,10s) are closed; 8 s still fits [5s,15s); 3 s fits nothing open
    data = records([("a", 1 * S, 1), ("a", 12 * S, 2), ("a", 8 * S, 4), ("a", 3 * S, 8)])
    got = q(sql, data, partitions)
    assert got == [("a", -5 * S, 1, 1), ("a", 0, 1, 1), ("a", 5 * S, 2, 6), ("a", 10 * S, 1, 2)]
    eng = vs.Engine(sql)
    eng.push("t", data)
    eng.flush()
    assert eng.stats["late_records"] == 1


def test_watermark_is_job_wide_not_per_key(partitions):
    """Key b's late record is judged against key a's event time too."""
    data = records([("a", 1 * S, 1), ("b", 2 * S, 1), ("a", 25 * S, 1), ("b", 5 * S, 7)])
    got = q(TUMBLE_SQL, data, partitions)
    assert_rows_equal(got, [("a", 0, 10 * S, 1, 1), ("b", 0, 10 * S, 1, 1), ("a", 20 * S, 30 * S, 1, 1)])


def test_watermark_counts_records_filtered_by_where(partitions):
    """The watermark follows the job's input, before WHERE: a filtered-out record still
    advances event time (and so makes a later record late)."""
    data = records([("a", 1 * S, 1), ("b", 30 * S, 1), ("a", 2 * S, 5), ("a", 31 * S, 2)])
    sql = ("SELECT k, _WINDOW_START AS ws, _WINDOW_END AS we, COUNT(*) AS n, SUM(x) AS s FROM t "
           "WHERE k = 'a' GROUP BY k WINDOW TUMBLING(t, 10s)")
    got = q(sql, data, partitions)
    assert got == [("a", 0, 10 * S, 1, 1), ("a", 30 * S, 40 * S, 1, 2)]


def test_null_event_time_is_a_failed_record():
    eng = vs.Engine(TUMBLE_SQL)
    data = pa.table({"k": ["a", "a", "a"], "t": pa.array([1000, None, 2000], pa.int64()),
                     "x": pa.array([1, 2, 3], pa.int64())})
    eng.push("t", data)
    out = as_tuples(eng.flush().to_pylist())
    assert out == [("a", 0, 10 * S, 2, 4)]
    assert eng.stats["failed_records"] == 1
    assert sum(rb.num_rows for _, rb in eng.dead_letters) == 1


# ------------------------------------------------------- flush, emission order, batch cuts


def test_end_of_input_closes_every_window(partitions):
    data = records([("a", 1 * S, 1), ("b", 2 * S, 2), ("a", 15 * S, 3), ("c", 95 * S, 4)])
    got = q(TUMBLE_SQL, data, partitions)
    assert_rows_equal(got, [("a", 0, 10 * S, 1, 1), ("b", 0, 10 * S, 1, 2), ("a", 10 * S, 20 * S, 1, 3),
                            ("c", 90 * S, 100 * S, 1, 4)])
    eng = vs.Engine(TUMBLE_SQL)
    pushed = as_tuples(eng.push("t", data).to_pylist())
    assert sorted(pushed) == [("a", 0, 10 * S, 1, 1), ("a", 10 * S, 20 * S, 1, 3), ("b", 0, 10 * S, 1, 2)]
    assert as_tuples(eng.flush().to_pylist()) == [("c", 90 * S, 100 * S, 1, 4)]
    assert eng.flush().to_pylist() == []  # nothing left


def test_emit_final_rows_in_window_end_order(partitions):
    rng = np.random.default_rng(3)
    n = 400
    t = np.sort(rng.integers(0, 200 * S, n))
    data = pa.table({"k": [f"k{i}" for i in rng.integers(0, 9, n)], "t": t,
                     "x": rng.integers(0, 10, n)})
    for sql in [TUMBLE_SQL, TUMBLE_SQL.replace("TUMBLING(t, 10s)", "SLIDING(t, 10s, 3s)"),
                SESSION_SQL.replace("10s", "2s")]:
        got = q(sql + " EMIT FINAL", data, partitions)
        ends = [r[2] for r in got]
        assert len(got) > 20
        assert ends == sorted(ends), sql


def _emission_batches(times, ends, bounds, lateness=0):
    """Index of the batch whose input first brings the watermark to each window end (len(bounds)-1
    = the flush)."""
    cm = np.maximum.accumulate(np.asarray(times)) - lateness
    out = []
    for e in ends:
        hit = np.flatnonzero(cm >= e)
        if len(hit) == 0:
            out.append(len(bounds) - 1)
        else:
            out.append(int(np.searchsorted(bounds[1:], hit[0], side="right")))
    return out


@pytest.mark.parametrize("sizes", [[1], [3], [7, 1, 20], [1000]], ids=str)
def test_windows_close_at_the_same_time_whatever_the_batches(sizes):
    rng = np.random.default_rng(5)
    n = 120
    t = np.sort(rng.integers(0, 90 * S, n))
    t[rng.random(n) < 0.1] -= 4 * S  # a little disorder, some of it late
    table = pa.table({"k": [f"k{i}" for i in rng.integers(0, 3, n)], "t": t, "x": np.ones(n, np.int64)})
    bounds = [0]
    i = 0
    while bounds[-1] < n:
        bounds.append(min(n, bounds[-1] + sizes[i % len(sizes)]))
        i += 1
    eng = vs.Engine(TUMBLE_SQL)
    per_batch = []
    for lo, hi in zip(bounds, bounds[1:]):
        per_batch.append(as_tuples(eng.push("t", table.slice(lo, hi - lo)).to_pylist()))
    per_batch.append(as_tuples(eng.flush().to_pylist()))
    # the same rows as one batch
    whole = vs.Engine(TUMBLE_SQL)
    one = as_tuples(whole.push("t", table).to_pylist()) + as_tuples(whole.flush().to_pylist())
    flat = [r for b in per_batch for r in b]
    assert_rows_equal(flat, one)
    assert eng.stats["late_records"] == whole.stats["late_records"] > 0
    # each window comes out with the batch that brings the watermark to its end
    rows = [(bi, r) for bi, b in enumerate(per_batch) for r in b]
    expected = _emission_batches(t, [r[2] for _, r in rows], bounds)
    assert [bi for bi, _ in rows] == expected


# ---------------------------------------------------------------------------- NULL keys


def test_null_group_keys_form_their_own_group(partitions):
    data = pa.table({"k": pa.array(["a", None, "a", None, ""], pa.string()),
                     "i": pa.array([0, None, 0, 0, None], pa.int64()),
                     "x": pa.array([1, 2, 3, 4, 5], pa.int64())})
    got = q("SELECT k, COUNT(*) AS n, SUM(x) AS s FROM t GROUP BY k EMIT FINAL", data, partitions)
    assert_rows_equal(got, [("a", 2, 4), (None, 2, 6), ("", 1, 5)])
    got = q("SELECT i, COUNT(*) AS n FROM t GROUP BY i EMIT FINAL", data, partitions)
    assert_rows_equal(got, [(0, 3), (None, 2)])  # NULL is not 0
    got = q("SELECT k, i, SUM(x) AS s FROM t GROUP BY k, i EMIT FINAL", data, partitions)
    assert_rows_equal(got, [("a", 0, 4), (None, None, 2), (None, 0, 4), ("", None, 5)])


def test_null_float_key_and_nan_key(partitions):
    data = pa.table({"f": pa.array([1.5, None, float("nan"), 1.5, float("nan"), -0.0, 0.0]),
                     "x": pa.array([1, 2, 3, 4, 5, 6, 7], pa.int64())})
    got = q("SELECT f, SUM(x) AS s FROM t GROUP BY f EMIT FINAL", data, partitions)
    assert_rows_equal(got, [(1.5, 5), (None, 2), (float("nan"), 8), (0.0, 13)])


# --------------------------------------------------------------- Engine push/flush, stats


def test_engine_push_returns_incremental_changes():
    eng = vs.Engine("SELECT k, COUNT(*) AS n, SUM(x) AS s FROM s GROUP BY k")
    r1 = eng.push("s", {"k": ["a", "b", "a"], "x": [1, 2, 3]})
    assert r1.to_pylist() == [{"k": "a", "n": 1, "s": 1}, {"k": "b", "n": 1, "s": 2},
                              {"k": "a", "n": 2, "s": 4}]
    r2 = eng.push("s", {"k": ["b"], "x": [10]})
    assert r2.to_pylist() == [{"k": "b", "n": 2, "s": 12}]
    assert eng.flush().to_pylist() == []
    assert eng.stats["records_in"] == 4
    assert eng.stats["records_out"] == 4
    assert eng.stats["batches"] == 2
    assert eng.stats.records_in == 4  # attribute access too


def test_engine_emit_final_waits_for_flush():
    eng = vs.Engine("SELECT k, COUNT(*) AS n FROM s GROUP BY k EMIT FINAL")
    assert len(eng.push("s", {"k": ["a", "b", "a"]})) == 0
    assert len(eng.push("s", [{"k": "c"}])) == 0
    assert sorted(as_tuples(eng.flush().to_pylist())) == [("a", 2), ("b", 1), ("c", 1)]
    assert eng.stats["records_out"] == 3


def test_second_flush_emits_nothing_new():
    """End of input happens once: a second flush() has no new final rows to give."""
    for sql in ["SELECT k, COUNT(*) AS n FROM s GROUP BY k EMIT FINAL",
                "SELECT COUNT(*) AS n FROM s EMIT FINAL",
                "SELECT k, COUNT(*) AS n FROM s GROUP BY k WINDOW TUMBLING(1m)"]:
        eng = vs.Engine(sql)
        eng.push("s", {"k": ["a", "b", "a"], "_TIMESTAMP": [0, 1, 2]})
        assert len(eng.flush()) >= 1, sql
        assert eng.flush().to_pylist() == [], sql


def test_engine_source_name_is_checked():
    eng = vs.Engine("SELECT x FROM s")
    with pytest.raises(vs.SqlError):
        eng.push("other", {"x": [1]})
    assert eng.push("S", {"x": [1]}).to_pylist() == [{"x": 1}]  # case-insensitive


def test_stats_counters():
    eng = vs.Engine(TUMBLE_SQL + " EMIT CHANGES")
    data = pa.table({"k": ["a", "a", "a", "b", "a"], "t": pa.array([1000, 12000, None, 2000, 13000]),
                     "x": pa.array([1, 2, 3, 4, 5])})
    out = eng.push("t", data.slice(0, 3))
    out2 = eng.push("t", data.slice(3))
    eng.flush()
    st_ = eng.stats
    assert st_["records_in"] == 5
    assert st_["batches"] == 2
    assert st_["failed_records"] == 1  # NULL event time
    assert st_["late_records"] == 1  # b at 2 s after the watermark reached 12 s
    assert st_["records_out"] == len(out) + len(out2) == 3


# ---------------------------------------------------------------------- LIMIT, DISTINCT


def test_limit(partitions):
    data = [pa.record_batch({"x": pa.array(range(i * 10, i * 10 + 10), pa.int64())}) for i in range(5)]
    got = q("SELECT x FROM t WHERE x % 2 = 0 LIMIT 7", data, partitions)
    assert len(got) == 7
    if partitions == 1:
        assert got == [(x,) for x in range(0, 14, 2)]
    else:
        assert {r[0] for r in got} <= set(range(0, 50, 2))
    assert q("SELECT x FROM t LIMIT 0", data, partitions) == []
    assert len(q("SELECT x FROM t LIMIT 1000", data, partitions)) == 50


def test_limit_on_changes_and_engine():
    eng = vs.Engine("SELECT k, COUNT(*) AS n FROM t GROUP BY k LIMIT 3")
    assert len(eng.push("t", {"k": ["a", "b"]})) == 2
    assert as_tuples(eng.push("t", {"k": ["a", "c", "d"]}).to_pylist()) == [("a", 2)]
    assert len(eng.push("t", {"k": ["e"]})) == 0
    assert eng.stats["records_out"] == 3


def test_select_distinct(partitions):
    data = [pa.record_batch({"k": pa.array(["a", "b", None]), "x": pa.array([1, 1, None], pa.int64())}),
            pa.record_batch({"k": pa.array(["a", None, "b", "c"]),
                             "x": pa.array([1, None, 2, 1], pa.int64())})]
    got = q("SELECT DISTINCT k, x FROM t", data, partitions)
    want = [("a", 1), ("b", 1), (None, None), ("b", 2), ("c", 1)]
    if partitions == 1:
        assert got == want  # first occurrences, in input order
    else:
        assert_rows_equal(got, want)
    got = q("SELECT DISTINCT x % 2 AS p FROM t WHERE x IS NOT NULL", data, partitions)
    assert_rows_equal(got, [(1,), (0,)])


# ---------------------------------------------------------------- CREATE STREAM, WITH


def test_create_stream_as_select_with_properties(partitions):
    data = records(LATE_INPUT)
    sql = "CREATE STREAM late_totals AS " + TUMBLE_SQL + " WITH ('allowed.lateness' = '5s')"
    assert q(sql, data, partitions) == [("a", 0, 10 * S, 3, 13), ("a", 10 * S, 20 * S, 1, 2)]
    sql2 = "CREATE TABLE totals AS SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL"
    assert q(sql2, data, partitions) == [("a", 15)]


def test_with_property_from_environment():
    data = records(LATE_INPUT)
    sql = TUMBLE_SQL + " WITH ('allowed.lateness' = '${LATE:-5s}')"
    assert q(sql, data)[0] == ("a", 0, 10 * S, 3, 13)  # default 5 s
    assert q(sql, data, env={"LATE": "0s"})[0] == ("a", 0, 10 * S, 1, 1)


# ------------------------------------------------------------------------- input shapes

SHAPE_SQL = "SELECT k, SUM(x) AS s, COUNT(*) AS n FROM t WHERE x > 0 GROUP BY k EMIT FINAL"
SHAPE_ROWS = [{"k": "a", "x": 1}, {"k": "b", "x": 2}, {"k": "a", "x": 3}, {"k": "c", "x": -1},
              {"k": None, "x": 5}]
SHAPE_WANT = [("a", 4, 2), ("b", 2, 1), (None, 5, 1)]


def _shapes():
    tbl = pa.Table.from_pylist(SHAPE_ROWS)
    return {
        "dict_of_lists": {"k": [r["k"] for r in SHAPE_ROWS], "x": [r["x"] for r in SHAPE_ROWS]},
        "dict_of_numpy": {"k": np.array([r["k"] for r in SHAPE_ROWS], dtype=object),
                          "x": np.array([r["x"] for r in SHAPE_ROWS])},
        "list_of_dicts": list(SHAPE_ROWS),
        "pandas": pd.DataFrame(SHAPE_ROWS),
        "arrow_table": tbl,
        "record_batch": tbl.to_batches()[0],
        "list_of_batches": tbl.to_batches(max_chunksize=2),
        "chunked_table": pa.concat_tables([tbl.slice(0, 2), tbl.slice(2)]),
    }


@pytest.mark.parametrize("shape", list(_shapes()))
def test_input_shapes(shape):
    data = _shapes()[shape]
    assert_rows_equal(q(SHAPE_SQL, data), SHAPE_WANT)


def test_input_shape_results_agree_with_engine_push():
    eng = vs.Engine(SHAPE_SQL)
    for part in _shapes()["list_of_batches"]:
        eng.push("t", part)
    assert_rows_equal(as_tuples(eng.flush().to_pylist()), SHAPE_WANT)


def test_empty_input_with_a_schema(partitions):
    """A 0-row table still has a schema: queries run and give what DuckDB gives (no rows; one
    global row with COUNT 0 and NULL SUM)."""
    empty = pa.table({"x": pa.array([], pa.int64()), "k": pa.array([], pa.string())})
    assert q("SELECT x FROM t WHERE x > 0", empty, partitions) == []
    assert q("SELECT k, COUNT(*) AS n FROM t GROUP BY k EMIT FINAL", empty, partitions) == []
    assert q("SELECT COUNT(*) AS n, SUM(x) AS s FROM t EMIT FINAL", empty, partitions) == [(0, None)]


# ------------------------------------------------------------------------- DECIMAL input


def _decimals(n=1000):
    vals = [Decimal("0.10"), Decimal("0.20"), None, Decimal("-0.05"), Decimal("12345678.99")]
    ks = ["a", "b", "a", "a", "b"]
    return pa.table({"k": pa.array([ks[i % 5] for i in range(n)]),
                     "d": pa.array([vals[i % 5] for i in range(n)], type=pa.decimal128(10, 2))})


def test_decimal_sum_is_exact(partitions):
    data = _decimals()
    got = q("SELECT k, SUM(d) AS s, MIN(d) AS mn, MAX(d) AS mx, COUNT(d) AS c FROM t GROUP BY k "
            "EMIT FINAL", data, partitions)
    # a: 200 x 0.10 + 200 x -0.05; b: 200 x 0.20 + 200 x 12345678.99
    want = [("a", Decimal("10.00"), Decimal("-0.05"), Decimal("0.10"), 400),
            ("b", Decimal("2469135838.00"), Decimal("0.20"), Decimal("12345678.99"), 400)]
    assert_rows_equal(got, want)
    for row in got:
        assert isinstance(row[1], Decimal), "SUM of a DECIMAL stays a decimal"


def test_decimal_avg_and_filters(partitions):
    data = _decimals(10)
    got = q("SELECT k, AVG(d) AS a, SUM(d * 2) AS s2 FROM t WHERE d > 0.15 GROUP BY k EMIT FINAL",
            data, partitions)
    assert_rows_equal(got, [("b", (0.2 + 12345678.99) / 2, Decimal("24691358.38") * 2)])


def test_decimal_running_sum_changes():
    data = pa.table({"d": pa.array([Decimal("0.1")] * 10, type=pa.decimal128(5, 1))})
    got = q("SELECT SUM(d) AS s FROM t", data)
    assert [r[0] for r in got] == [Decimal(i) / 10 for i in range(1, 11)]
    assert str(got[-1][0]) == "1.0"


# ----------------------------------------------------------------------- TIMESTAMP input

_TS = ["2024-01-15T10:00:05", "2024-01-15T10:00:59.999", "2024-01-15T10:01:00", "2024-01-15T10:02:30"]
_T0 = int(dt.datetime(2024, 1, 15, 10, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
TS_WANT = [(_T0, _T0 + 60_000, 2), (_T0 + 60_000, _T0 + 120_000, 1), (_T0 + 120_000, _T0 + 180_000, 1)]
TS_SQL = ("SELECT _WINDOW_START AS ws, _WINDOW_END AS we, COUNT(*) AS n FROM t "
          "WINDOW TUMBLING(ts, INTERVAL '1' MINUTE)")


@pytest.mark.parametrize("form", ["arrow_ms", "arrow_us", "arrow_s", "iso_text", "pandas_datetime",
                                  "numpy_datetime64"])
def test_timestamp_input_as_window_time(form, partitions):
    naive = [dt.datetime.fromisoformat(s) for s in _TS]
    if form.startswith("arrow_"):
        unit = form.split("_")[1]
        vals = [d.replace(microsecond=0) if unit == "s" else d for d in naive]
        data = pa.table({"ts": pa.array(vals, type=pa.timestamp(unit))})
    elif form == "iso_text":
        data = pa.table({"ts": pa.array(_TS)})
    elif form == "pandas_datetime":
        data = pd.DataFrame({"ts": pd.to_datetime(_TS, format="ISO8601")})
    else:
        data = {"ts": np.array(_TS, dtype="datetime64[ms]")}
    got = q(TS_SQL, data, partitions)
    assert got == TS_WANT


def test_timestamp_compared_with_iso_literal():
    data = pa.table({"ts": pa.array([dt.datetime.fromisoformat(s) for s in _TS], pa.timestamp("ms")),
                     "i": pa.array([0, 1, 2, 3])})
    got = q("SELECT i, ts FROM t WHERE ts >= '2024-01-15T10:01:00'", data)
    assert got == [(2, _T0 + 60_000), (3, _T0 + 150_000)]  # timestamps leave as epoch ms


def test_system_timestamp_column_is_the_default_time():
    data = {"k": ["a", "a", "a"], "_TIMESTAMP": [0, 59_999, 60_000], "x": [1, 2, 3]}
    got = q("SELECT k, _WINDOW_START AS ws, SUM(x) AS s FROM t GROUP BY k WINDOW TUMBLING(1m)", data)
    assert got == [("a", 0, 3), ("a", 60_000, 3)]


# ------------------------------------------------------------------------ names and syntax


def test_unaliased_aggregates_get_readable_names():
    d = {"k": ["a", "b", "a"], "quantity": [1, 2, 3], "price": [1.0, 2.0, 3.0]}
    r = vs.query("SELECT k, COUNT(*), SUM(quantity), AVG(price), COUNT(DISTINCT k) FROM t "
                 "GROUP BY k EMIT FINAL", {"t": d})
    assert r.column_names == ["k", "count_star", "sum_quantity", "avg_price", "count_distinct_k"]
    assert sorted(as_tuples(r.to_pylist())) == [("a", 2, 4, 2.0, 1), ("b", 1, 2, 2.0, 1)]


def test_keywords_and_identifiers_case_insensitive_unless_quoted():
    d = {"k": ["a", "b", "a"], "Qty": [1, 2, 3]}
    r = vs.query("select K, qty AS q /* block\n comment */ -- line comment\n from T where QTY > 1",
                 {"t": d})
    assert as_tuples(r.to_pylist()) == [("b", 2), ("a", 3)]
    assert as_tuples(vs.query('SELECT "Qty" FROM t', {"t": d}).to_pylist()) == [(1,), (2,), (3,)]
    with pytest.raises(vs.SqlError, match="Qty"):
        vs.query('SELECT "qty" FROM t', {"t": d})


# ---------------------------------------------------------------------------- SQL errors


def _error(sql, data=None) -> vs.SqlError:
    with pytest.raises(vs.SqlError) as info:
        vs.query(sql, {"t": data if data is not None else {"price": [1.0], "symbol": ["a"]}})
    return info.value


def test_sql_error_is_a_value_error():
    assert issubclass(vs.SqlError, ValueError)
    with pytest.raises(ValueError):
        vs.query("SELECT FROM WHERE", {"t": {"x": [1]}})


def test_unknown_column_has_hint_and_position():
    err = _error("SELECT symbol,\n       pricee * 2 AS p\nFROM t")
    assert (err.line, err.column) == (2, 8)
    assert "pricee" in str(err)
    assert "did you mean 'price'" in str(err)
    lines = str(err).splitlines()
    assert any("pricee * 2 AS p" in ln for ln in lines)
    caret = [ln for ln in lines if ln.strip() == "^"]
    text = next(ln for ln in lines if "pricee * 2" in ln)
    assert caret and caret[0].index("^") == text.index("pricee")  # the caret points at the name


def test_unknown_column_in_where_group_by_and_window():
    err = _error("SELECT symbol FROM t WHERE prise > 1")
    assert (err.line, err.column) == (1, 28) and "did you mean 'price'" in str(err)
    err = _error("SELECT symbl, COUNT(*) AS n FROM t GROUP BY symbl")
    assert "did you mean 'symbol'" in str(err)
    err = _error("SELECT COUNT(*) AS n FROM t WINDOW TUMBLING(tyme, 1m)", {"time": [1], "x": [1]})
    assert "tyme" in str(err) and "time" in str(err).replace("tyme", "")


def test_unknown_function_has_hint():
    err = _error("SELECT SUMM(price) AS s FROM t")
    assert "SUMM" in str(err).upper() and "SUM" in str(err).replace("SUMM", "")
    assert (err.line, err.column) == (1, 8)
    err = _error("SELECT UPPR(symbol) AS s FROM t")
    assert "UPPER" in str(err)


def test_lead_is_rejected_clearly():
    err = _error("SELECT LEAD(price) OVER (ROWS WINDOW BUFFER 10 ROWS PARTITION BY symbol) AS n FROM t")
    assert "LEAD" in str(err)
    assert "LAG" in str(err) or "look ahead" in str(err).lower() or "not supported" in str(err).lower()
    assert (err.line, err.column) == (1, 8)


def test_parse_error_shows_caret_and_expectation():
    err = _error("SELECT price FRM t")
    assert err.line == 1 and err.column == 14
    assert "expected" in str(err).lower()
    assert "^" in str(err)


def test_sql_errors_are_raised_before_any_output():
    eng = vs.Engine("SELECT nope FROM t")
    with pytest.raises(vs.SqlError):
        eng.push("t", {"x": [1, 2]})


def test_iso_8601_event_time_text_with_and_without_zone(partitions):
    """docs/SQL.md §2: ISO-8601 text is converted at ingestion; 'Z' / '+01:00' offsets are honoured
    and text without an offset is UTC, even mixed in one column."""
    data = {"k": ["a", "a", "a"],
            "t": ["2024-01-01T00:00:05Z", "2024-01-01T01:01:05+01:00", "2024-01-01 00:01:06"]}
    rows = vs.query("SELECT k, COUNT(*) AS n, _WINDOW_START AS ws FROM s GROUP BY k "
                    "WINDOW TUMBLING(t, 1m)", {"s": data}, partitions=partitions).to_pylist()
    base = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    assert rows == [{"k": "a", "n": 1, "ws": base}, {"k": "a", "n": 2, "ws": base + 60_000}]


def test_is_distinct_from_equals_duckdb(partitions):
    """``a IS [NOT] DISTINCT FROM b``: equality where NULL equals NULL and never NULL itself (as
    DuckDB, NaN equals NaN), in the select list and in WHERE, over numbers and text."""
    import duckdb
    import numpy as np
    rng = np.random.default_rng(23)
    n = 400
    t = pa.table({
        "a": pa.array(rng.integers(0, 4, n), mask=rng.random(n) < 0.3),
        "b": pa.array(rng.integers(0, 4, n).astype(float), mask=rng.random(n) < 0.3),
        "f": pa.array(np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 3, n).astype(float))),
        "s": pa.array(rng.choice(["x", "y"], n).tolist(), mask=rng.random(n) < 0.3),
        "u": pa.array(rng.choice(["x", "y"], n).tolist(), mask=rng.random(n) < 0.3)})
    sql = ("SELECT a, b, s, u, a IS DISTINCT FROM b AS d1, a IS NOT DISTINCT FROM b AS d2, "
           "f IS NOT DISTINCT FROM b AS d3, s IS DISTINCT FROM u AS d4, "
           "s IS NOT DISTINCT FROM 'x' AS d5 FROM t WHERE a IS NOT DISTINCT FROM 2 OR s IS DISTINCT FROM u")
    con = duckdb.connect()
    con.register("t", t)
    want = [tuple(r) for r in con.execute(sql).fetchall()]
    got = [tuple(r.values()) for r in vs.query(sql, {"t": t.to_batches(max_chunksize=90)},
                                               partitions=partitions).to_pylist()]
    assert sorted(got, key=repr) == sorted(want, key=repr) and len(got) > 50
