"""``vs.query`` never drops input rows silently (docs/PYTHON_API.md, "vs.query"; SEMANTICS §7):
rows without an event time, uint64 values above 2^63-1 and late rows are set aside into
``Result.dead_letters`` (as they came in, once each), counted in ``Result.stats``, and one
``vs.DroppedRowsWarning`` says how many and why. The same at 1, 2 and 4 partitions and through
a pipeline, over seeded data split into batches; the result is DuckDB's over the rows kept.
"""
from __future__ import annotations

import decimal
import warnings
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from reference import assert_rows_equal, duck, split_batches

WINDOW_MS = 60_000


def _engine_reason_for_uint64() -> str:
    """The reason ``Engine.dead_letters`` gives a uint64 above 2^63-1 (vs.query uses the same)."""
    eng = vs.Engine("SELECT u FROM t")
    eng.push("t", pa.record_batch({"u": pa.array([2**64 - 1], pa.uint64())}))
    [(reason, _)] = eng.dead_letters
    return reason


UINT64_REASON = _engine_reason_for_uint64()


def _data(seed: int, n: int = 240) -> pa.Table:
    """Rows with a unique ``id`` (a column no query reads), NULL keys, values and event times,
    times mostly rising with jumps back (late rows once a window has closed), and a uint64
    column with values above 2^63-1."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(["a", "b", "c", None], n, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    v = [None if rng.random() < 0.1 else float(rng.integers(-50, 50)) for _ in range(n)]
    t = np.cumsum(rng.integers(0, 4_000, n))
    back = rng.random(n) < 0.12  # out of order: up to three windows back
    t = np.where(back, np.maximum(t - rng.integers(0, 3 * WINDOW_MS, n), 0), t)
    times = [None if rng.random() < 0.06 else int(x) for x in t]
    u = [None if rng.random() < 0.1 else
         int(rng.integers(2**63, 2**64 - 1, dtype=np.uint64)) if rng.random() < 0.08 else
         int(rng.integers(0, 1000)) for _ in range(n)]
    return pa.table({"id": pa.array(np.arange(n), pa.int64()), "k": pa.array(keys, pa.string()),
                     "v": pa.array(v, pa.float64()), "u": pa.array(u, pa.uint64()),
                     "_TIMESTAMP": pa.array(times, pa.int64())})


def _expected_set_aside(table: pa.Table, windowed: bool) -> dict[int, str]:
    """id -> reason of every row the engine sets aside, computed row by row (docs/SQL.md §4 and
    "Late data"): a uint64 above 2^63-1 fails at binding (and moves no clock); with a window, a
    row without event time fails, and a row whose tumbling window ends at or before the
    watermark (the largest event time before it; no lateness allowed) is late."""
    out, watermark = {}, None
    for row in table.to_pylist():
        if row["u"] is not None and row["u"] > 2**63 - 1:
            out[row["id"]] = UINT64_REASON
            continue
        if not windowed:
            continue
        t = row["_TIMESTAMP"]
        if t is None:
            out[row["id"]] = "NULL event time"
            continue
        if watermark is not None and (t // WINDOW_MS) * WINDOW_MS + WINDOW_MS <= watermark:
            out[row["id"]] = "late"
        watermark = t if watermark is None else max(watermark, t)
    return out


def _row_key(row: dict) -> tuple:
    return tuple(sorted(row.items()))


def _dead_rows(result) -> Counter:
    """(reason, row) of every dead letter, as a multiset (each row must appear once)."""
    return Counter((reason, _row_key(row)) for reason, rb in result.dead_letters
                   for row in rb.to_pylist())


def _run(sql: str, batches, partitions: int):
    with pytest.warns(vs.DroppedRowsWarning) as caught:
        result = vs.query(sql, {"t": batches}, partitions=partitions)
    dropped = [w for w in caught if issubclass(w.category, vs.DroppedRowsWarning)]
    assert len(dropped) == 1, [str(w.message) for w in dropped]
    return result, str(dropped[0].message)


WINDOWED = ("SELECT k, COUNT(*) AS c, SUM(v) AS s, _WINDOW_START AS ws FROM t "
            "GROUP BY k WINDOW TUMBLING(1m)")
WINDOWED_DUCK = ("SELECT k, COUNT(*) AS c, SUM(v) AS s, (_TIMESTAMP // 60000) * 60000 AS ws "
                 "FROM kept GROUP BY k, ws")
# no key: one group per window (the job server's two-phase aggregate, partials merged)
GLOBAL = "SELECT COUNT(*) AS c, SUM(v) AS s, _WINDOW_START AS ws FROM t WINDOW TUMBLING(1m)"
GLOBAL_DUCK = ("SELECT COUNT(*) AS c, SUM(v) AS s, (_TIMESTAMP // 60000) * 60000 AS ws "
               "FROM kept GROUP BY ws")
# a pipeline whose windowed stage reads the source, and a stage reading that one
PIPELINE = f"WITH w AS ({WINDOWED}) SELECT k, c, s, ws FROM w WHERE c > 0"
PROJECTION = "SELECT id, k, u, v * 2 AS v2 FROM t WHERE v > 0"
PROJECTION_DUCK = "SELECT id, k, u, v * 2 AS v2 FROM kept WHERE v > 0"
PROJECTION_PIPELINE = "CREATE STREAM s AS SELECT id, k, u, v FROM t WHERE v > 0; " \
                      "SELECT id, k, u, v * 2 AS v2 FROM s"


@pytest.mark.parametrize("seed,rows,sizes", [
    pytest.param(1, 240, [7, 31, 64], id="small-1"),
    pytest.param(2, 240, [7, 31, 64], id="small-2"),
    # batches above the sizes run inline (partition_threads.INLINE_STEP_ROWS, partitioned.
    # INLINE_ROWS): steps of several batches on the partitions' threads
    pytest.param(3, 9_000, [1_500, 2_600, 4_000], id="large"),
])
@pytest.mark.parametrize("sql,duck_sql,windowed", [
    pytest.param(WINDOWED, WINDOWED_DUCK, True, id="window"),
    pytest.param(PIPELINE, WINDOWED_DUCK, True, id="window-pipeline"),
    pytest.param(GLOBAL, GLOBAL_DUCK, True, id="window-no-key"),
    pytest.param(PROJECTION, PROJECTION_DUCK, False, id="uint64"),
    pytest.param(PROJECTION_PIPELINE, PROJECTION_DUCK, False, id="uint64-pipeline"),
])
def test_set_aside_rows_are_reported(sql, duck_sql, windowed, seed, rows, sizes, partitions):
    table = _data(seed, rows)
    batches = split_batches(table, sizes, seed=seed)
    expected = _expected_set_aside(table, windowed)
    assert len(set(expected.values())) == (3 if windowed else 1)  # every reason occurs

    result, message = _run(sql, batches, partitions)

    # the result: DuckDB's over the rows not set aside
    by_id = {row["id"]: row for row in table.to_pylist()}
    kept = table.filter(pa.array([i not in expected for i in table.column("id").to_pylist()]))
    assert_rows_equal(result.to_pylist(), duck(duck_sql, kept=kept))
    # the rows set aside: each once, whole (every input column), under its reason
    want = Counter((reason, _row_key(by_id[i])) for i, reason in expected.items())
    assert _dead_rows(result) == want
    # the counts
    failed = sum(1 for r in expected.values() if r != "late")
    late = sum(1 for r in expected.values() if r == "late")
    assert dict(result.stats) == {"records_in": table.num_rows, "records_out": len(result),
                                  "late_records": late, "failed_records": failed}
    # the warning: how many, per reason, where to look; late rows say how to keep them
    assert f"set {len(expected)} rows aside" in message
    for reason, n in Counter(expected.values()).items():
        assert f"{n} {reason!r}" in message
    assert "Result.dead_letters" in message
    assert ("allowed.lateness" in message) == windowed


def test_the_example_of_the_report(partitions):
    """The two calls of the report: a uint64 above 2^63-1; a row without event time and a row
    later than a closed window."""
    t1 = pa.table({"k": ["a", "b", "a"], "u": pa.array([1, 2**64 - 1, None], pa.uint64())})
    r, message = _run("SELECT k, u FROM t", t1, partitions)
    assert sorted(r.to_pylist(), key=repr) == [{"k": "a", "u": 1}, {"k": "a", "u": None}]
    assert [(reason, rb.to_pylist()) for reason, rb in r.dead_letters] == \
        [(UINT64_REASON, [{"k": "b", "u": 2**64 - 1}])]
    assert r.stats.failed_records == 1 and r.stats.records_in == 3
    assert "set 1 row aside" in message

    t2 = pa.table({"k": ["a", "b", "a", "a"], "_TIMESTAMP": pa.array([0, None, 120000, 1000])})
    r, message = _run("SELECT k, COUNT(*) AS c FROM t GROUP BY k WINDOW TUMBLING(1m)",
                      t2, partitions)
    assert r.to_pylist() == [{"k": "a", "c": 1}, {"k": "a", "c": 1}]
    assert sorted((reason, rb.to_pylist()) for reason, rb in r.dead_letters) == [
        ("NULL event time", [{"k": "b", "_TIMESTAMP": None}]),
        ("late", [{"k": "a", "_TIMESTAMP": 1000}])]
    assert (r.stats.late_records, r.stats.failed_records) == (1, 1)


def test_allowed_lateness_keeps_late_rows(partitions):
    """The warning's advice works: with enough lateness allowed, nothing is late."""
    t2 = pa.table({"k": ["a", "a", "a"], "_TIMESTAMP": pa.array([0, 120000, 1000])})
    sql = "SELECT k, COUNT(*) AS c FROM t GROUP BY k WINDOW TUMBLING(1m)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", vs.DroppedRowsWarning)
        r = vs.query(sql + " WITH ('allowed.lateness' = '2m')", {"t": t2}, partitions=partitions)
    assert sorted(row["c"] for row in r) == [1, 2]
    assert r.dead_letters == [] and r.stats.late_records == 0


@pytest.mark.parametrize("sql", [WINDOWED, PIPELINE, PROJECTION, PROJECTION_PIPELINE])
def test_no_warning_when_nothing_is_set_aside(sql, partitions):
    table = _data(3)
    clean = pa.table({
        "id": table.column("id"), "k": table.column("k"), "v": table.column("v"),
        "u": pa.array(np.arange(table.num_rows), pa.uint64()),
        "_TIMESTAMP": pa.array(np.arange(table.num_rows) * 1_000, pa.int64())})
    with warnings.catch_warnings():
        warnings.simplefilter("error", vs.DroppedRowsWarning)
        r = vs.query(sql, {"t": split_batches(clean, [16, 50], seed=3)}, partitions=partitions)
    assert r.dead_letters == []
    assert r.stats == {"records_in": clean.num_rows, "records_out": len(r),
                       "late_records": 0, "failed_records": 0}
    assert len(r) > 0


def test_engine_push_result_is_unchanged():
    """``Engine.push`` keeps what it set aside on the engine, not in the Result it returns."""
    eng = vs.Engine("SELECT k, COUNT(*) AS c FROM t GROUP BY k WINDOW TUMBLING(1m)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", vs.DroppedRowsWarning)
        r = eng.push("t", {"k": ["a", "b"], "_TIMESTAMP": [None, 5]})
    assert r.dead_letters == [] and r.stats is None
    assert [reason for reason, _ in eng.dead_letters] == ["NULL event time"]


def test_evaluation_errors_still_raise(partitions):
    with pytest.raises(vs.errors.OutOfRangeError):
        vs.query("SELECT x + x AS y FROM t", {"t": {"x": [1, 2**62]}}, partitions=partitions)


@pytest.mark.parametrize("pipeline", [False, True], ids=["statement", "pipeline"])
def test_rows_set_aside_keep_their_input_types(pipeline, partitions):
    """A dead letter holds the rows in the input's own Arrow types (a timestamp time column, a
    date, int8, float32, large_string, uint64, decimal), late rows as rows without event time,
    not in the engine's (BIGINT, DOUBLE)."""
    rng = np.random.default_rng(7)
    n = 300
    t = np.maximum(np.cumsum(rng.integers(0, 3_000, n)) - np.where(rng.random(n) < 0.15,
                                                                  rng.integers(0, 150_000, n), 0), 0)
    table = pa.table({
        "id": pa.array(np.arange(n), pa.int64()),
        "k": pa.array(rng.choice(["a", "b", "c"], n).tolist(), pa.large_string()),
        "ts": pa.array([None if rng.random() < 0.05 else int(x) for x in t], pa.timestamp("ms")),
        "d": pa.array(rng.integers(0, 20_000, n).astype("int32"), pa.date32()),
        "i8": pa.array(rng.integers(-100, 100, n).astype("int8"), pa.int8()),
        "f4": pa.array(rng.random(n).astype("float32"), pa.float32()),
        "u": pa.array(rng.integers(0, 1_000, n).astype("uint64"), pa.uint64()),
        "dec": pa.array([decimal.Decimal(int(x)) / 100 for x in rng.integers(0, 10**6, n)],
                        pa.decimal128(10, 2))})
    stmt = "SELECT k, COUNT(*) AS c FROM t GROUP BY k WINDOW TUMBLING(ts, INTERVAL '1' MINUTE)"
    sql = f"WITH w AS ({stmt}) SELECT * FROM w" if pipeline else stmt
    result, _ = _run(sql, split_batches(table, [20, 45], seed=7), partitions)
    reasons = set()
    for reason, rb in result.dead_letters:
        assert rb.schema.equals(table.schema), (reason, rb.schema)
        reasons.add(reason)
    assert reasons == {"NULL event time", "late"}
    by_id = {row["id"]: row for row in table.to_pylist()}
    for reason, rb in result.dead_letters:
        for row in rb.to_pylist():
            assert row == by_id[row["id"]]
    ids = [row["id"] for _, rb in result.dead_letters for row in rb.to_pylist()]
    assert len(ids) == len(set(ids)) == result.stats.late_records + result.stats.failed_records


@pytest.mark.parametrize("sql", [
    "SELECT k, COUNT(*) AS c, SUM(v) AS s FROM t GROUP BY k WINDOW SESSION(20s)",
    "SELECT k, COUNT(*) AS c FROM t GROUP BY k WINDOW SLIDING(2m, 1m)",
], ids=["session", "hopping"])
def test_other_windows_set_aside_the_same_rows_at_every_partition_count(sql):
    """Sessions and hopping windows (whose late rule the reference above does not model): the
    same rows set aside, whole and once, with the same counts, at 1, 2 and 4 partitions, as
    one engine fed batch by batch sets aside."""
    table = _data(4, 3_000)
    batches = split_batches(table, [40, 700, 1_500], seed=4)
    eng = vs.Engine(sql)
    for rb in batches:
        eng.push("t", rb)
    eng.flush()
    want = Counter((reason, _row_key(row)) for reason, rb in eng.dead_letters
                   for row in rb.to_pylist())
    assert {reason for reason, _ in want} >= {"NULL event time", "late"}
    for p in (1, 2, 4):
        result, _ = _run(sql, batches, p)
        assert _dead_rows(result) == want, p
        assert (result.stats.late_records, result.stats.failed_records) == \
            (eng.stats["late_records"], eng.stats["failed_records"])


def test_the_job_server_at_one_partition():
    """``processor="v2"`` runs one partition as a job: the same rows set aside and counts."""
    table = _data(5)
    batches = split_batches(table, [7, 31, 64], seed=5)
    expected = _expected_set_aside(table, True)
    result, _ = _run(WINDOWED, batches, 1)
    again = None
    with pytest.warns(vs.DroppedRowsWarning):
        again = vs.query(WINDOWED, {"t": batches}, processor="v2")
    assert _dead_rows(again) == _dead_rows(result)
    assert len(list(_dead_rows(again).elements())) == len(expected)
    assert again.stats == result.stats
    assert_rows_equal(again.to_pylist(), result.to_pylist())
