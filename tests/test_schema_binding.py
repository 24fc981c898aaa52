"""Types at the boundary and schema drift (docs/SQL.md "Types at the boundary"): every batch goes
through one binding step (velostream.binding); answers never depend on how the input is split or
on the partition count; a rejected batch changes nothing.

Also: a global aggregate's changelog appears once at any partition count, and every window shape's
last change per (window, group) equals its EMIT FINAL row.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import velostream as vs
from velostream.binding import SchemaMismatch

from conftest import partition_params
from reference import assert_rows_equal, duck, last_per_key, make_table

# --------------------------------------------------------------------------- the input


def _table(n: int = 300, seed: int = 3) -> pa.Table:
    """make_table plus columns whose values survive every narrowing the tests apply: ``xs``
    fits int8, ``xh`` is exact in float32 (multiples of 0.25)."""
    t = make_table(n, seed)
    rng = np.random.default_rng(seed + 1)
    mask = rng.random(n) < 0.1
    t = t.append_column("xs", pa.array(rng.integers(-100, 100, n).astype(np.int64), mask=mask))
    t = t.append_column("xh", pa.array(rng.integers(-400, 400, n) / 4.0, mask=rng.random(n) < 0.1))
    return t


TABLE = _table()

# each: a lossless narrower representation of a column, which the binding step widens back
DRIFTS = {
    "xs_int8": ("xs", lambda a: a.cast(pa.int8())),
    "xs_int16": ("xs", lambda a: a.cast(pa.int16())),
    "xh_float32": ("xh", lambda a: a.cast(pa.float32())),
    "ks_large": ("ks", lambda a: a.cast(pa.large_string())),
    "ks_dict": ("ks", lambda a: a.dictionary_encode()),
    "s_view": ("s", lambda a: a.cast(pa.string_view()) if hasattr(pa, "string_view") else a),
}

QUERIES = {
    "group": "SELECT ks, COUNT(*) AS n, SUM(xs) AS sx, SUM(xh) AS sh, MIN(xs) AS lo, MAX(xh) AS hi, "
             "AVG(xi) AS ai FROM t GROUP BY ks EMIT FINAL",
    "group_int_key": "SELECT xs, COUNT(*) AS n, SUM(xh) AS sh FROM t GROUP BY xs EMIT FINAL",
    "window": "SELECT ks, COUNT(*) AS n, SUM(xs) AS sx, MAX(xh) AS hi, _WINDOW_START AS ws FROM t "
              "GROUP BY ks WINDOW TUMBLING(ts, INTERVAL '1' MINUTE)",
    "project": "SELECT seq, ks, xs, xh, s, xs * 2 + 1 AS y FROM t WHERE xh > -50",
    "global": "SELECT COUNT(*) AS n, SUM(xs) AS sx, MIN(xh) AS k FROM t EMIT FINAL",
}
DUCK = {
    "group": "SELECT ks, COUNT(*), SUM(xs), SUM(xh), MIN(xs), MAX(xh), AVG(xi) FROM t GROUP BY ks",
    "group_int_key": "SELECT xs, COUNT(*), SUM(xh) FROM t GROUP BY xs",
    "window": "SELECT ks, COUNT(*), SUM(xs), MAX(xh), (ts // 60000) * 60000 FROM t "
              "GROUP BY ks, (ts // 60000) * 60000",
    "project": "SELECT seq, ks, xs, xh, s, xs * 2 + 1 FROM t WHERE xh > -50",
}


def _cut(table: pa.Table, cuts: list[int]) -> list[pa.RecordBatch]:
    bounds = [0] + sorted(set(c for c in cuts if 0 < c < table.num_rows)) + [table.num_rows]
    return [table.slice(lo, hi - lo).combine_chunks().to_batches()[0]
            for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _drift(batch: pa.RecordBatch, which: list[str]) -> pa.RecordBatch:
    for name in which:
        col, fn = DRIFTS[name]
        j = batch.schema.get_field_index(col)
        batch = batch.set_column(j, col, fn(batch.column(j)))
    return batch


def _run(sql, batches, p):
    return vs.query(sql, {"t": batches}, partitions=p).to_pylist()


def _rows(rows):
    return [tuple(r.values()) for r in rows]


# ------------------------------------------------------------- split and drift never matter


@pytest.mark.parametrize("name", sorted(DUCK))
def test_whole_input_equals_duckdb(name):
    assert_rows_equal(_rows(_run(QUERIES[name], TABLE, 1)), duck(DUCK[name], t=TABLE), what=name)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(QUERIES)),
       cuts=st.lists(st.integers(1, TABLE.num_rows - 1), max_size=6),
       drifts=st.lists(st.lists(st.sampled_from(sorted(DRIFTS)), max_size=3), min_size=7, max_size=7),
       p=st.sampled_from([1, 2, 4]))
def test_answers_never_depend_on_split_drift_or_partitions(name, cuts, drifts, p):
    """The same rows, cut at random points, later batches in narrower or other layouts of the
    first batch's types: the same multiset of rows as the whole table at one partition."""
    batches = _cut(TABLE, cuts)
    batches = [batches[0]] + [_drift(b, drifts[i % 7]) for i, b in enumerate(batches[1:])]
    want = _run(QUERIES[name], TABLE, 1)
    got = _run(QUERIES[name], batches, p)
    assert_rows_equal(_rows(got), _rows(want), what=f"{name} cuts={cuts} p={p}")


@pytest.mark.parametrize("p", partition_params())
def test_passthrough_columns_keep_their_input_types(p):
    """A bare column and a GROUP BY key leave with the Arrow type they came in with, at every
    partition count, whatever later batches bring."""
    t = pa.table({"k": pa.array(["a", "b", "a"], pa.large_string()),
                  "x": pa.array([1, 2, 3], pa.int32()), "f": pa.array([1.5, 2.5, 0.5], pa.float32())})
    later = pa.record_batch({"k": pa.array(["b"]), "x": pa.array([4], pa.int8()),
                             "f": pa.array([1], pa.int64())})
    proj = vs.query("SELECT k, x, f, x + 1 AS y FROM t", {"t": [t.to_batches()[0], later]},
                    partitions=p).to_arrow()
    assert proj.schema.types == [pa.large_string(), pa.int32(), pa.float32(), pa.int64()]
    assert proj.column("x").to_pylist() == [1, 2, 3, 4]
    assert proj.column("f").to_pylist() == [1.5, 2.5, 0.5, 1.0]
    grp = vs.query("SELECT k, x, COUNT(*) AS n FROM t GROUP BY k, x EMIT FINAL",
                   {"t": [t.to_batches()[0], later]}, partitions=p).to_arrow()
    assert grp.schema.types == [pa.large_string(), pa.int32(), pa.int64()]
    assert sorted(grp.to_pylist(), key=lambda r: (r["k"], r["x"])) == [
        {"k": "a", "x": 1, "n": 1}, {"k": "a", "x": 3, "n": 1}, {"k": "b", "x": 2, "n": 1},
        {"k": "b", "x": 4, "n": 1}]


# ----------------------------------------------------------------- a batch that does not fit


GOOD = pa.record_batch({"k": ["a", "b", "a"], "x": pa.array([1, 2, 3], pa.int64()),
                        "f": [0.5, 1.5, 2.5]})
MORE = pa.record_batch({"k": ["b", "c"], "x": pa.array([10, 20], pa.int64()), "f": [1.0, 2.0]})
BAD = {
    "float_into_int": pa.record_batch({"k": ["a"], "x": [1.5], "f": [1.0]}),
    "text_into_int": pa.record_batch({"k": ["a"], "x": ["7"], "f": [1.0]}),
    "int_into_text": pa.record_batch({"k": [5], "x": pa.array([1], pa.int64()), "f": [1.0]}),
    "text_into_float": pa.record_batch({"k": ["a"], "x": pa.array([1], pa.int64()), "f": ["1.0"]}),
    "missing_column": pa.record_batch({"k": ["a"], "f": [1.0]}),
    "bool_into_int": pa.record_batch({"k": ["a"], "x": [True], "f": [1.0]}),
}
SQL = "SELECT k, COUNT(*) AS n, SUM(x) AS sx, SUM(f) AS sf FROM t GROUP BY k EMIT FINAL"


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("p", partition_params())
def test_a_rejected_batch_names_the_column_and_both_types(case, p):
    with pytest.raises(SchemaMismatch) as err:
        vs.query(SQL, {"t": [GOOD, BAD[case], MORE]}, partitions=p)
    msg = str(err.value)
    col = err.value.column
    assert f"'{col}'" in msg and str(err.value.fixed) in msg
    if err.value.got is not None:
        assert str(err.value.got) in msg
    else:
        assert "missing" in msg


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_rejected_batch_leaves_the_state_as_it_was(case):
    """Engine.push: the bad batch raises, and the next good batch gives the answer of the good
    batches alone (nothing of the bad one was counted, interned or timed)."""
    eng = vs.Engine(SQL.replace("EMIT FINAL", ""))
    eng.push("t", GOOD)
    stats = dict(eng.stats)
    with pytest.raises(SchemaMismatch):
        eng.push("t", BAD[case])
    assert dict(eng.stats) == stats
    got = eng.push("t", MORE).to_pylist()
    want = vs.Engine(SQL.replace("EMIT FINAL", "")).push(
        "t", pa.Table.from_batches([GOOD, MORE]).combine_chunks().to_batches()[0]).to_pylist()[3:]
    assert got == want


@pytest.mark.parametrize("p", partition_params())
def test_a_job_counts_a_rejected_batch_and_goes_on(p):
    """From a job's reader (a connector), a batch that does not fit is a bad input: its rows are
    counted and dead-lettered, and the job's answer is that of the good batches."""
    job = vs.Job(SQL, {"t": [GOOD, BAD["text_into_int"], MORE]}, partitions=p)
    stats = job.run()
    assert stats.records_rejected == 1 and stats.records_failed == 1
    errors = [e for _, rb in job.dead_letters if "error" in rb.schema.names
              for e in rb.column("error").to_pylist()]
    assert len(errors) == 1 and "column 'x'" in errors[0] and "int64" in errors[0]
    want = _run(SQL, [GOOD, MORE], 1)
    assert_rows_equal(_rows(job.result().to_pylist()), _rows(want))


@pytest.mark.parametrize("p", partition_params())
def test_a_wider_number_than_the_fixed_one_is_rejected(p):
    first = pa.record_batch({"k": ["a"], "x": pa.array([1], pa.int32()), "f": pa.array([1], pa.float32())})
    for col, arr in (("x", pa.array([2], pa.int64())), ("f", pa.array([2.0], pa.float64())),
                     ("x", pa.array([2], pa.uint32()))):
        later = first.set_column(first.schema.get_field_index(col), col, arr)
        with pytest.raises(SchemaMismatch, match=f"column '{col}'.*wider"):
            _run(SQL, [first, later], p)


@pytest.mark.parametrize("p", partition_params())
def test_an_extra_column_is_dropped_and_columns_match_by_name(p):
    extra = pa.record_batch({"f": [1.0, 2.0], "new": [1, 2], "x": pa.array([10, 20], pa.int64()),
                             "k": ["b", "c"]})
    got = _run(SQL, [GOOD, extra], p)
    assert_rows_equal(_rows(got), _rows(_run(SQL, [GOOD, MORE], 1)))


# ------------------------------------------------------------------- columns typed NULL first


@pytest.mark.parametrize("p", partition_params())
def test_a_null_typed_column_is_fixed_by_its_first_typed_batch(p):
    first = pa.record_batch({"k": ["a", "b"], "x": pa.nulls(2), "f": pa.nulls(2)})
    later = pa.record_batch({"k": ["a", "c"], "x": pa.array([5, 6], pa.int64()), "f": [0.25, 0.5]})
    got = _run("SELECT k, x, f, f * 2 AS g FROM t", [first, later], p)
    assert got == [{"k": "a", "x": None, "f": None, "g": None},
                   {"k": "b", "x": None, "f": None, "g": None},
                   {"k": "a", "x": 5, "f": 0.25, "g": 0.5}, {"k": "c", "x": 6, "f": 0.5, "g": 1.0}]
    # an aggregate over a column still typed NULL when its first typed batch arrives: right
    # when nothing it holds changes kind (SUM of BIGINT), a clear error when it would
    got = _run("SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL", [first, later], p)
    assert_rows_equal(_rows(got), [("a", 5), ("b", None), ("c", 6)])
    with pytest.raises(SchemaMismatch, match="column 'f'"):
        _run("SELECT k, SUM(f) AS s FROM t GROUP BY k EMIT FINAL", [first, later], p)
    # while no record has arrived, the plan simply binds again
    empty = first.slice(0, 0)
    got = _run("SELECT k, SUM(f) AS s FROM t GROUP BY k EMIT FINAL", [empty, later], p)
    assert_rows_equal(_rows(got), [("a", 0.25), ("c", 0.5)])


@pytest.mark.parametrize("p", partition_params())
def test_uint64_above_bigint_is_a_bad_record(p):
    rb = pa.record_batch({"k": ["a", "b", "a"],
                          "x": pa.array([1, 2**64 - 1, 2**63], pa.uint64())})
    later = pa.record_batch({"k": ["b"], "x": pa.array([7], pa.uint8())})
    job = vs.Job("SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL", {"t": [rb, later]},
                 partitions=p)
    stats = job.run()
    assert stats.records_failed == 2
    assert sum(b.num_rows for _, b in job.dead_letters) == 2
    assert_rows_equal(_rows(job.result().to_pylist()), [("a", 1), ("b", 7)])


@pytest.mark.parametrize("kind", ["timestamp_units", "dates", "decimals", "pandas"])
@pytest.mark.parametrize("p", partition_params())
def test_every_common_type_is_taken(kind, p):
    if kind == "timestamp_units":
        first = pa.record_batch({"k": ["a"], "ts": pa.array([60_000], pa.timestamp("ms"))})
        later = pa.record_batch({"k": ["a", "b"], "ts": pa.array([61_000_000, 125_000_000],
                                                               pa.timestamp("us", tz="UTC"))})
        sql = "SELECT k, COUNT(*) AS n, _WINDOW_START AS ws FROM t GROUP BY k WINDOW TUMBLING(ts, 1m)"
        want = [("a", 2, 60_000), ("b", 1, 120_000)]
    elif kind == "dates":
        first = pa.record_batch({"k": ["a"], "ts": pa.array([1], pa.date32())})
        later = pa.record_batch({"k": ["b"], "ts": pa.array([86_400_000 * 2], pa.date64())})
        sql = "SELECT k, COUNT(*) AS n, _WINDOW_START AS ws FROM t GROUP BY k WINDOW TUMBLING(ts, 1d)"
        want = [("a", 1, 86_400_000), ("b", 1, 2 * 86_400_000)]
    elif kind == "decimals":
        import decimal
        first = pa.record_batch({"k": ["a"], "x": pa.array([decimal.Decimal("1.25")], pa.decimal128(10, 2))})
        later = pa.record_batch({"k": ["a"], "x": pa.array([decimal.Decimal("2.5")], pa.decimal128(5, 1))})
        sql = "SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL"
        want = [("a", decimal.Decimal("3.75"))]
    else:
        pd = pytest.importorskip("pandas")
        first = pd.DataFrame({"k": pd.Categorical(["a", "b"]), "x": pd.array([1, None], "Int64")})
        later = pd.DataFrame({"k": pd.Categorical(["a"]), "x": pd.array([3], "Int8")})
        sql = "SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL"
        want = [("a", 4), ("b", None)]
    assert_rows_equal(_rows(_run(sql, [first, later], p)), want, what=kind)


# ----------------------------------------------------- a changelog appears once (docs/SQL.md §5)


CHANGELOGS = {
    "global": ("SELECT COUNT(*) AS n, SUM(xi) AS s, MAX(xf) AS m FROM t", []),
    "global_window": ("SELECT COUNT(*) AS n, SUM(xi) AS s, _WINDOW_START AS ws FROM t "
                      "WINDOW TUMBLING(ts, INTERVAL '1' MINUTE)", [2]),
    "group_window": ("SELECT ks, COUNT(*) AS n, SUM(xi) AS s, _WINDOW_START AS ws FROM t "
                     "GROUP BY ks WINDOW SLIDING(ts, INTERVAL '2' MINUTE, INTERVAL '1' MINUTE)", [0, 3]),
    "group": ("SELECT ki, COUNT(*) AS n, MIN(xf) AS lo FROM t GROUP BY ki", [0]),
}


@pytest.mark.parametrize("name", sorted(CHANGELOGS))
def test_a_changelog_is_the_same_at_every_partition_count(name):
    """EMIT CHANGES: the same multiset of change rows at 1, 2 and 4 partitions, and the last
    change per (window, group) equals the EMIT FINAL row."""
    sql, key = CHANGELOGS[name]
    table = make_table(400, 11)
    batches = _cut(table, [1, 50, 51, 230, 399])
    changes = {p: _rows(_run(sql + " EMIT CHANGES", batches, p)) for p in (1, 2, 4)}
    assert len(changes[1]) == (table.num_rows * (2 if "SLIDING" in sql else 1))
    for p in (2, 4):
        assert_rows_equal(changes[p], changes[1], what=f"{name} p={p}")
    for p in (1, 2, 4):
        final = _rows(_run(sql + " EMIT FINAL", batches, p))
        assert_rows_equal(last_per_key(changes[p], key), final, what=f"{name} final p={p}")


def test_date_columns_pass_through_as_epoch_milliseconds(partitions):
    """A DATE column is a TIMESTAMP inside the engine and leaves as epoch-ms BIGINT (docs/SQL.md
    §2), projected or grouped by; a date has no direct cast to an integer, so this once raised
    ArrowNotImplementedError at one partition."""
    import datetime as dt
    t = {"d": pa.array([dt.date(2024, 1, 1), None, dt.date(2024, 1, 1)]),
         "e": pa.array([dt.date(1969, 12, 31), dt.date(2024, 2, 29), None], pa.date64()),
         "x": [1, 2, 3]}
    got = vs.query("SELECT d, e, x FROM t", {"t": t}, partitions=partitions).to_pylist()
    assert got == [{"d": 1704067200000, "e": -86400000, "x": 1},
                   {"d": None, "e": 1709164800000, "x": 2},
                   {"d": 1704067200000, "e": None, "x": 3}]
    agg = vs.query("SELECT d, SUM(x) AS s FROM t GROUP BY d EMIT FINAL", {"t": t},
                   partitions=partitions).to_pylist()
    assert sorted(agg, key=lambda r: (r["d"] is None, r["d"])) == [
        {"d": 1704067200000, "s": 4}, {"d": None, "s": 2}]


# ------------------------------------------------- a join reads its sources through the same step

JOIN = ("SELECT t.k, t.x, u.w FROM t JOIN u ON t.k = u.k "
        "AND t.ts BETWEEN u.ts - INTERVAL '5' SECOND AND u.ts + INTERVAL '5' SECOND")


def _join_input():
    t1 = pa.record_batch({"k": ["a", "b", "c"], "x": pa.array([1, 2, 3], pa.int64()),
                          "ts": pa.array([1000, 2000, 3000], pa.int64())})
    t2 = pa.record_batch({"k": ["a", "b"], "x": pa.array([4, 5], pa.int64()),
                          "ts": pa.array([4000, 5000], pa.int64())})
    u = pa.record_batch({"k": ["a", "b", "d"], "w": ["p", "q", "r"],
                         "ts": pa.array([500, 1500, 2500], pa.int64())})
    return t1, t2, u


@pytest.mark.parametrize("p", partition_params())
def test_a_join_rejects_a_drifted_batch_naming_the_column_and_both_types(p):
    """A join consumes its sources directly (no SELECT's engine in between): their batches take
    the one binding step at the source (Dataflow.stream_rows), so a float where an integer was
    fixed is SchemaMismatch, not an Arrow cast error from inside the join."""
    t1, t2, u = _join_input()
    for col, arr, got in (("x", pa.array([1.5, 2.0]), "double"), ("k", pa.array([1, 2]), "int64")):
        bad = t2.set_column(t2.schema.get_field_index(col), col, arr)
        with pytest.raises(SchemaMismatch) as err:
            vs.query(JOIN, {"t": [t1, bad], "u": [u]}, partitions=p)
        assert err.value.column == col and got in str(err.value)


@pytest.mark.parametrize("p", partition_params())
def test_a_join_widens_a_narrower_batch_as_a_select_does(p):
    t1, t2, u = _join_input()
    want = _rows(vs.query(JOIN, {"t": [t1, t2], "u": [u]}, partitions=1).to_pylist())
    assert len(want) == 4
    narrow = t2.set_column(1, "x", t2.column(1).cast(pa.int32()))
    narrow = narrow.set_column(0, "k", narrow.column(0).cast(pa.large_string()))
    got = vs.query(JOIN, {"t": [t1, narrow], "u": [u]}, partitions=p).to_pylist()
    assert_rows_equal(_rows(got), want)
    assert vs.query(JOIN, {"t": [t1, narrow], "u": [u]}, partitions=p).to_arrow().schema.field(
        "x").type == pa.int64()


@pytest.mark.parametrize("p", partition_params())
def test_a_join_job_counts_a_drifted_batch_and_goes_on(p):
    t1, t2, u = _join_input()
    bad = t2.set_column(1, "x", pa.array(["4", "5"]))
    job = vs.Job(JOIN, {"t": [t1, bad, t2], "u": [u]}, partitions=p)
    stats = job.run()
    assert stats.records_rejected == 2 and stats.records_failed == 2
    want = _rows(vs.query(JOIN, {"t": [t1, t2], "u": [u]}, partitions=1).to_pylist())
    assert_rows_equal(_rows(job.result().to_pylist()), want)
