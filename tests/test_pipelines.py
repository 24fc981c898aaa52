"""Pipelines (docs/SQL.md §8): several statements, derived streams and tables, CTEs, subqueries,
UNION ALL, ORDER BY per emission, window top-N and deduplication; each checked against DuckDB
(or the direct one-statement query) on seeded data with NULLs, split into batches, at 1, 2 and 4
partitions, through ``vs.query`` and ``vs.Engine``."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.binding import SchemaMismatch
from velostream.errors import SqlError

from reference import assert_rows_equal, duck

MINUTE = 60_000


def trades(n=4000, seed=7, nulls=True):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.choice(np.arange(0, 40 * MINUTE, 7), n, replace=False)).astype(np.int64)
    sym = rng.choice(["AAPL", "MSFT", "GOOG", "AMZN", ""], n).astype(object)
    px = np.round(rng.random(n) * 100, 2)
    qty = rng.integers(-5, 500, n)
    sym_mask = rng.random(n) < 0.05 if nulls else np.zeros(n, bool)
    px_mask = rng.random(n) < 0.05 if nulls else np.zeros(n, bool)
    return pa.table({
        "sym": pa.array(sym, mask=sym_mask, type=pa.string()),
        "px": pa.array(px, mask=px_mask),
        "qty": pa.array(qty, type=pa.int64()),
        "_TIMESTAMP": pa.array(ts, type=pa.int64()),
    })


def split(t: pa.Table, seed: int) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, t.num_rows), 9, replace=False))
    bounds = [0, *cuts.tolist(), t.num_rows]
    return [t.slice(a, b - a).combine_chunks().to_batches()[0] for a, b in zip(bounds, bounds[1:])
            if b > a]


CASCADE = """
CREATE STREAM m1 AS
  SELECT sym, COUNT(*) AS n, SUM(qty) AS vol, MIN(px) AS lo, MAX(px) AS hi
  FROM trades GROUP BY sym WINDOW TUMBLING(1m);
SELECT sym, SUM(n) AS n, SUM(vol) AS vol, MIN(lo) AS lo, MAX(hi) AS hi, _WINDOW_START AS ws
FROM m1 GROUP BY sym WINDOW TUMBLING(5m)
"""
DIRECT = """
SELECT sym, COUNT(*) AS n, SUM(qty) AS vol, MIN(px) AS lo, MAX(px) AS hi, _WINDOW_START AS ws
FROM trades GROUP BY sym WINDOW TUMBLING(5m)
"""


def test_cascaded_windows_equal_the_direct_window(partitions):
    t = trades()
    got = vs.query(CASCADE, {"trades": split(t, partitions)}, partitions=partitions).to_pylist()
    want = vs.query(DIRECT, {"trades": t}).to_pylist()
    assert len(want) > 20
    assert_rows_equal(got, want)
    ref = duck("SELECT sym, COUNT(*), SUM(qty), MIN(px), MAX(px), "
               "(_TIMESTAMP // 300000) * 300000 AS ws FROM t GROUP BY sym, ws", t=t)
    assert_rows_equal(got, ref)


def test_cascade_through_engine_push_closes_windows_as_the_input_advances():
    t = trades(nulls=False)
    eng = vs.Engine(CASCADE)
    seen = []
    for rb in split(t, 3):
        r = eng.push("trades", rb)
        seen += r.to_pylist()
        # every 5-minute window emitted so far is complete: its end is behind the input
        assert all(row["ws"] + 5 * MINUTE <= rb.column("_TIMESTAMP")[-1].as_py() for row in
                   r.to_pylist())
    assert seen, "windows close before the end of the input, as the watermark passes them"
    seen += eng.flush().to_pylist()
    assert_rows_equal(seen, vs.query(DIRECT, {"trades": t}).to_pylist())


def test_cascade_of_changes_keeps_every_change(partitions):
    sql = """
    CREATE STREAM m1 AS SELECT sym, COUNT(*) AS n FROM trades
      GROUP BY sym WINDOW TUMBLING(1m) EMIT CHANGES;
    SELECT sym, COUNT(*) AS changes, _WINDOW_START AS ws FROM m1 GROUP BY sym WINDOW TUMBLING(5m)
    """
    t = trades(n=1500)
    got = vs.query(sql, {"trades": split(t, 1)}, partitions=partitions).to_pylist()
    # one change per input row: re-counted per 5-minute window they equal the direct count
    ref = duck("SELECT sym, COUNT(*), (_TIMESTAMP // 300000) * 300000 AS ws FROM t "
               "GROUP BY sym, ws", t=t)
    assert_rows_equal(got, ref)


def test_cte_and_subquery_are_derived_streams(partitions):
    t = trades()
    sql = """
    WITH big AS (SELECT sym, px * qty AS notional, qty FROM trades WHERE qty > 100)
    SELECT sym, notional FROM (SELECT sym, notional FROM big WHERE notional IS NOT NULL) AS b
    WHERE sym <> ''
    """
    got = vs.query(sql, {"trades": split(t, 2)}, partitions=partitions).to_pylist()
    ref = duck(sql.replace("trades", "t"), t=t)
    assert len(ref) > 100
    assert_rows_equal(got, ref)


def test_create_table_as_gives_its_final_state_per_key(partitions):
    t = trades()
    sql = """
    CREATE STREAM f AS SELECT sym, qty FROM trades WHERE px > 10;
    CREATE TABLE totals AS SELECT sym, COUNT(*) AS n, SUM(qty) AS vol FROM f GROUP BY sym
    """
    got = vs.query(sql, {"trades": split(t, 5)}, partitions=partitions).to_pylist()
    ref = duck("SELECT sym, COUNT(*), SUM(qty) FROM t WHERE px > 10 GROUP BY sym", t=t)
    assert_rows_equal(got, ref)


def test_declared_table_source_keeps_the_latest_row_per_key():
    rows = {"sym": ["A", "B", "A", None, "B"], "sector": ["x", "y", "z", "n", "w"]}
    sql = """
    CREATE TABLE instruments (sym VARCHAR, sector VARCHAR, PRIMARY KEY (sym));
    SELECT sym, sector FROM instruments
    """
    got = vs.query(sql, {"instruments": rows}).to_pylist()
    assert_rows_equal(got, [("A", "z"), ("B", "w"), (None, "n")])


def test_declared_stream_schema_rejects_a_batch_of_another_type():
    sql = """
    CREATE STREAM trades (sym VARCHAR, qty BIGINT);
    SELECT sym, qty * 2 AS q2 FROM trades
    """
    ok = vs.query(sql, {"trades": {"sym": ["a"], "qty": pa.array([3], pa.int32())}}).to_pylist()
    assert ok == [{"sym": "a", "q2": 6}]
    with pytest.raises(SchemaMismatch, match="qty"):
        vs.query(sql, {"trades": {"sym": ["a"], "qty": ["not a number"]}})


def test_union_all_unifies_types_and_reads_two_sources(partitions):
    t = trades(n=800)
    u = pa.table({"s": pa.array(["X", None, "Y"]), "p": pa.array([1, 2, None], pa.int64())})
    sql = ("SELECT sym, px FROM trades WHERE qty > 250 UNION ALL SELECT s, p FROM other "
           "UNION ALL SELECT sym, qty FROM trades WHERE qty < 0")
    got = vs.query(sql, {"trades": split(t, 4), "other": u}, partitions=partitions)
    assert got.schema.names == ["sym", "px"]
    assert pa.types.is_floating(got.schema.field("px").type)
    ref = duck(sql.replace("trades", "t").replace("other", "u"), t=t, u=u)
    assert_rows_equal(got.to_pylist(), ref)


def test_union_all_feeds_a_window_that_waits_for_both_inputs():
    a, b = trades(n=600, seed=1), trades(n=600, seed=2)
    sql = """
    WITH both_ AS (SELECT sym, qty FROM a UNION ALL SELECT sym, qty FROM b)
    SELECT sym, SUM(qty) AS vol, _WINDOW_START AS ws FROM both_ GROUP BY sym WINDOW TUMBLING(10m)
    """
    got = vs.query(sql, {"a": split(a, 1), "b": split(b, 2)}).to_pylist()
    ref = duck("SELECT sym, SUM(qty), (_TIMESTAMP // 600000) * 600000 AS ws FROM "
               "(SELECT * FROM a UNION ALL SELECT * FROM b) GROUP BY sym, ws", a=a, b=b)
    assert_rows_equal(got, ref)


def test_order_by_sorts_each_window_emission(partitions):
    t = trades()
    sql = ("SELECT sym, SUM(qty) AS vol, _WINDOW_START AS ws FROM trades GROUP BY sym "
           "WINDOW TUMBLING(5m) ORDER BY vol DESC, sym")
    got = vs.query(sql, {"trades": split(t, 6)}, partitions=partitions).to_pylist()
    ref = duck("SELECT sym, SUM(qty) AS vol, (_TIMESTAMP // 300000) * 300000 AS ws FROM t "
               "GROUP BY sym, ws ORDER BY ws, vol DESC NULLS LAST, sym NULLS LAST", t=t)
    assert_rows_equal(got, ref, ordered=True)


def test_order_by_sorts_the_rows_of_each_input_batch():
    t = trades(n=300)
    batches = split(t, 9)
    eng = vs.Engine("SELECT sym, qty FROM trades ORDER BY 2 DESC")
    for rb in batches:
        got = eng.push("trades", rb).to_pylist()
        want = sorted(rb.to_pylist(), key=lambda r: -r["qty"])
        assert [r["qty"] for r in got] == [r["qty"] for r in want]


def test_limit_after_order_by_keeps_the_first_sorted_rows(partitions):
    """ORDER BY ... LIMIT n: the first n rows of the sorted emissions (docs/SQL.md §5, §8), not n
    rows taken before sorting: the top 3 groups at the end of input, as DuckDB's ORDER BY
    LIMIT; the first window's top rows; the first input batch's largest values."""
    t = trades(n=900, seed=3)
    sql = "SELECT sym, SUM(qty) AS vol FROM trades GROUP BY sym ORDER BY vol DESC, sym LIMIT 3 EMIT FINAL"
    got = vs.query(sql, {"trades": split(t, 5)}, partitions=partitions).to_pylist()
    ref = duck("SELECT sym, SUM(qty) AS vol FROM t GROUP BY sym ORDER BY vol DESC, sym LIMIT 3", t=t)
    assert_rows_equal(got, ref, ordered=True)
    sql = ("SELECT sym, SUM(qty) AS vol, _WINDOW_START AS ws FROM trades GROUP BY sym "
           "WINDOW TUMBLING(5m) ORDER BY vol DESC, sym LIMIT 4")
    got = vs.query(sql, {"trades": split(t, 5)}, partitions=partitions).to_pylist()
    ref = duck("SELECT sym, SUM(qty) AS vol, (_TIMESTAMP // 300000) * 300000 AS ws FROM t "
               "GROUP BY sym, ws ORDER BY ws, vol DESC, sym LIMIT 4", t=t)
    assert_rows_equal(got, ref, ordered=True)
    batches = split(t, 4)
    got = vs.query("SELECT sym, qty FROM trades ORDER BY qty DESC LIMIT 5",
                   {"trades": batches}, partitions=partitions).to_pylist()
    first = sorted(batches[0].to_pylist(), key=lambda r: -r["qty"])[:5]
    assert [r["qty"] for r in got] == [r["qty"] for r in first]


def test_offset_skips_the_first_rows_emitted(partitions):
    """OFFSET m (with or without LIMIT n, either first): the rows emitted after the first m
    (docs/SQL.md §5, §8); over the groups at the end of input, DuckDB's ORDER BY ... LIMIT ...
    OFFSET; over a UNION ALL, the union's rows; row by row, the rows after the first m in input
    order whatever the batches."""
    t = trades(n=900, seed=4)
    for tail in ("LIMIT 3 OFFSET 2", "OFFSET 4", "OFFSET 1 LIMIT 2", "LIMIT 2 OFFSET 100"):
        sql = f"SELECT sym, SUM(qty) AS vol FROM trades GROUP BY sym ORDER BY vol DESC, sym {tail} EMIT FINAL"
        got = vs.query(sql, {"trades": split(t, 5)}, partitions=partitions).to_pylist()
        ref = duck(f"SELECT sym, SUM(qty) AS vol FROM t GROUP BY sym ORDER BY vol DESC, sym {tail}", t=t)
        assert_rows_equal(got, ref, ordered=True)
    rows = t.to_pylist()
    for tail, lo, hi in (("LIMIT 7 OFFSET 10", 10, 17), ("OFFSET 895", 895, 900)):
        got = vs.query(f"SELECT qty, _TIMESTAMP AS ts FROM trades {tail}", {"trades": split(t, 3)},
                       partitions=partitions).to_pylist()
        assert [(r["qty"], r["ts"]) for r in got] == [(r["qty"], r["_TIMESTAMP"]) for r in rows[lo:hi]]
    batches = split(t, 3)  # a union emits each input batch's rows from both sides in turn
    both = [r["qty"] for rb in batches for r in rb.to_pylist() + rb.to_pylist()]
    got = vs.query("SELECT qty FROM trades UNION ALL SELECT qty FROM trades LIMIT 5 OFFSET 898",
                   {"trades": batches}, partitions=partitions).to_pylist()
    assert [r["qty"] for r in got] == both[898:903]


def test_offset_survives_a_snapshot_and_is_an_error_when_not_a_count():
    t = trades(n=60, seed=2, nulls=False)
    sql = "SELECT qty FROM trades LIMIT 10 OFFSET 25"
    first = vs.Engine(sql)
    got = first.push("trades", t.slice(0, 20)).to_pylist()
    again = vs.Engine(sql)
    again.restore(first.snapshot())
    got += again.push("trades", t.slice(20)).to_pylist()
    assert [r["qty"] for r in got] == t["qty"].to_pylist()[25:35]
    for bad, match in (("OFFSET -1", "non-negative integer after OFFSET"),
                       ("OFFSET 1 OFFSET 2", "duplicate OFFSET"),
                       ("OFFSET 1 WHERE qty > 0", "WHERE must come before OFFSET")):
        with pytest.raises(SqlError, match=match):
            vs.query(f"SELECT qty FROM trades {bad}", {"trades": t})


@pytest.mark.parametrize("order", [
    "sym NULLS FIRST, px DESC NULLS FIRST, qty",
    "sym DESC NULLS LAST, px NULLS FIRST, qty DESC",
    "px DESC NULLS LAST, sym NULLS FIRST, qty",
    "sym DESC, px ASC NULLS LAST, qty NULLS FIRST",
])
def test_order_by_nulls_first_and_last_as_duckdb(partitions, order):
    """NULLS FIRST / NULLS LAST per ORDER BY key (docs/SQL.md §8): the groups at the end of input
    in DuckDB's order, whatever the NULLs' placement of the other keys."""
    t = trades(n=1500, seed=11)
    sql = (f"SELECT sym, MIN(px) AS px, SUM(qty) AS qty FROM trades GROUP BY sym, qty % 7 "
           f"ORDER BY {order} EMIT FINAL")
    got = vs.query(sql, {"trades": split(t, 8)}, partitions=partitions).to_pylist()
    ref = duck(f"SELECT sym, MIN(px) AS px, SUM(qty) AS qty FROM t GROUP BY sym, qty % 7 "
               f"ORDER BY {order}", t=t)
    assert_rows_equal(got, ref, ordered=True)


def test_nulls_first_sorts_alike_on_pyarrow_without_per_key_placement(monkeypatch):
    """pyarrow before 25 places NULLs for all keys at once: the emulation (a validity key before
    each NULLS FIRST key) gives the same order as per-key placement."""
    from velostream.exec.operators import base
    rng = np.random.default_rng(5)
    n = 500
    table = pa.table({"a": pa.array(rng.integers(0, 4, n), mask=rng.random(n) < 0.2),
                      "b": pa.array(rng.random(n), mask=rng.random(n) < 0.3),
                      "r": pa.array(np.arange(n))})
    keys = [("a", "descending", "at_start"), ("b", "ascending", "at_end")]
    native = base.sort_indices(table, keys).to_pylist()
    monkeypatch.setattr(base, "_PER_KEY_NULLS", False)
    assert base.sort_indices(table, keys).to_pylist() == native
    want = duck("SELECT r FROM t ORDER BY a DESC NULLS FIRST, b NULLS LAST, r", t=table)
    assert native == [r[0] for r in want]


def test_nulls_first_last_errors_point_at_the_text():
    with pytest.raises(SqlError, match="FIRST or LAST after NULLS"):
        vs.query("SELECT sym FROM trades ORDER BY sym NULLS", {"trades": trades(n=10)})
    with pytest.raises(SqlError, match=r"not supported in OVER"):
        vs.query("SELECT sym, LAG(qty) OVER (PARTITION BY sym ORDER BY qty NULLS FIRST) AS l "
                 "FROM trades", {"trades": trades(n=10)})


TOP_N = """
CREATE STREAM vol AS
  SELECT sym, SUM(qty) AS v, _WINDOW_START AS ws FROM trades GROUP BY sym WINDOW TUMBLING(5m) {emit};
SELECT ws, sym, v, rn FROM (
  SELECT ws, sym, v, ROW_NUMBER() OVER (PARTITION BY ws ORDER BY v DESC) AS rn FROM vol
) WHERE rn <= 2
"""


@pytest.mark.parametrize("emit", ["", "EMIT CHANGES"])
def test_window_top_n(partitions, emit):
    t = trades(nulls=False)
    got = vs.query(TOP_N.format(emit=emit), {"trades": split(t, 8)},
                   partitions=partitions).to_pylist()
    ref = duck("""SELECT ws, sym, v, rn FROM (
        SELECT ws, sym, v, ROW_NUMBER() OVER (PARTITION BY ws ORDER BY v DESC) AS rn FROM (
          SELECT (_TIMESTAMP // 300000) * 300000 AS ws, sym, SUM(qty) AS v FROM t GROUP BY ws, sym))
        WHERE rn <= 2""", t=t)
    assert len(ref) == 16
    assert_rows_equal(got, ref)


def test_deduplication_keeps_the_first_row_of_each_key(partitions):
    t = trades()
    sql = """SELECT sym, qty, _TIMESTAMP AS ts FROM (
        SELECT sym, qty, _TIMESTAMP, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY _TIMESTAMP) AS rn
        FROM trades) WHERE rn = 1"""
    got = vs.query(sql, {"trades": split(t, 10)}, partitions=partitions).to_pylist()
    ref = duck("SELECT sym, qty, _TIMESTAMP FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY sym "
               "ORDER BY _TIMESTAMP) AS rn FROM t) WHERE rn = 1", t=t)
    assert len(ref) == 6  # five symbols and NULL
    assert_rows_equal(got, ref)


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("sql,part", [
    ("SELECT a FROM t; SELECT a FROM t", "only the last statement may be a plain SELECT"),
    ("CREATE STREAM x AS SELECT a FROM t WITH ('k' = '1'); SELECT a FROM x WITH ('k' = '2')",
     "given two values"),
    ("SELECT a FROM t UNION ALL SELECT a, a FROM t", "same number"),
    ("SELECT a FROM t UNION SELECT a FROM t", "UNION ALL"),
    ("SELECT a FROM t ORDER BY b", "ORDER BY takes a column of the select list"),
    ("SELECT a FROM (SELECT a, ROW_NUMBER() OVER (PARTITION BY a ORDER BY a DESC) AS rn FROM t) "
     "WHERE rn <= 3", "window top-N"),
    ("SELECT a FROM (SELECT a, ROW_NUMBER() OVER (PARTITION BY a ORDER BY a) AS rn FROM t)",
     "deduplication"),
    ("CREATE TABLE x AS SELECT a FROM t; SELECT a FROM x", "keyed by its GROUP BY"),
    ("CREATE TABLE x (a BIGINT); SELECT a FROM x", "PRIMARY KEY"),
    ("CREATE STREAM x AS SELECT a FROM t; CREATE STREAM x AS SELECT a FROM t; SELECT a FROM x",
     "already defined"),
    ("SELECT a FROM nope_cte_user", "no input for source 'nope_cte_user'"),
])
def test_rejected_forms_name_the_problem(sql, part):
    with pytest.raises(SqlError, match=part.replace("(", r"\(")) as info:
        vs.query(sql, {"t": {"a": [1, 2, 3]}})
    assert info.value.line is not None


def test_explain_draws_the_graph():
    text = vs.explain(CASCADE)
    assert "#0 source trades" in text and "#1 select m1  <- #0" in text
    assert "#2 select  <- #1" in text and "Result: #2" in text
    assert "TUMBLING size 300000 ms" in text


def test_a_pipeline_job_refuses_a_partitioned_source_it_cannot_checkpoint():
    """A source whose partitions move between processes (Kafka) needs checkpoints of the
    graph's state to resume it; until they exist the job refuses at start, rather than resume
    offsets without its open windows."""
    from velostream.jobs import Job
    from velostream.jobs.protocols import MemoryReader

    class PartitionedReader(MemoryReader):  # a jobs.protocols.PartitionedSource, as Kafka's
        watermark_by = "_PARTITION"
        key_columns = None

        def set_rebalance_listener(self, on_assign, on_revoke):
            pass

        def watermark_partitions(self):
            return [], []

        def positions(self):
            return {}

        def commit_offsets(self, offsets):
            pass

    sql = "CREATE STREAM a AS SELECT k FROM s; SELECT k, COUNT(*) AS n FROM a GROUP BY k"
    with pytest.raises(ValueError, match="fault.tolerance"):
        Job(sql, {"s": PartitionedReader({"k": ["x"]})})
    job = Job(sql, {"s": PartitionedReader({"k": ["x", "y", "x"]})}, fault_tolerance="none")
    job.run()
    assert_rows_equal(job.result().to_pylist(), [("x", 1), ("y", 1), ("x", 2)])


def test_limit_after_a_union_all_takes_the_unions_first_rows():
    t, u = {"a": [1, 5, 3]}, {"b": [4, 2]}
    sql = "SELECT a FROM t UNION ALL SELECT b FROM u ORDER BY 1 DESC LIMIT 3"
    got = vs.query(sql, {"t": t, "u": u}).to_pylist()
    # both inputs arrive before the union knows its types: one emission, sorted, then cut
    assert got == [{"a": r[0]} for r in duck(sql, t=pa.table(t), u=pa.table(u))]
    two = vs.query("WITH x AS (SELECT a FROM t UNION ALL SELECT b FROM u LIMIT 2) "
                   "SELECT * FROM x", {"t": t, "u": u}).to_pylist()
    assert len(two) == 2 and {r["a"] for r in two} <= {1, 5, 3, 4, 2}


def test_a_pipelines_source_keeps_its_watermark_per_source_partition():
    """A source of independently ordered partitions (Kafka) moves a pipeline's watermark by the
    slowest partition, as one SELECT over it does (docs/SQL.md, the watermark of a Kafka
    source): a partition read ahead does not make another's rows late, in a join's output
    windowed downstream."""
    sql = """CREATE TABLE desks (trader_id VARCHAR, desk VARCHAR, PRIMARY KEY (trader_id));
    SELECT d.desk, COUNT(*) AS n, _WINDOW_START AS ws FROM trades t
    JOIN desks d ON t.trader_id = d.trader_id
    GROUP BY d.desk WINDOW TUMBLING (_TIMESTAMP, INTERVAL '1' MINUTE)"""
    eng = vs.Engine(sql)
    eng.watermark_by = "_PARTITION"  # as a job sets it for a Kafka source
    eng.source_partitions([0, 1])
    eng.push("desks", {"trader_id": ["a", "b"], "desk": ["X", "Y"]})
    out = eng.push("trades", {"trader_id": ["a", "a"], "_TIMESTAMP": [600_000, 610_000],
                              "_PARTITION": [0, 0]}).to_pylist()
    out += eng.push("trades", {"trader_id": ["b", "b"], "_TIMESTAMP": [60_000, 70_000],
                               "_PARTITION": [1, 1]}).to_pylist()
    out += eng.flush().to_pylist()
    assert eng.stats["late_records"] == 0
    assert sorted((r["desk"], r["n"], r["ws"]) for r in out) == [("X", 2, 600_000),
                                                                  ("Y", 2, 60_000)]


def test_a_pipeline_job_keeps_the_watermark_per_partition_of_its_partitioned_source():
    """Read through a MergedReader, the one source of independently ordered partitions still
    declares them (jobs.protocols.PartitionedWatermark), so the pipeline's watermark is kept per
    partition: partition 0 read far ahead makes none of partition 1's rows late."""
    from velostream.jobs import Job
    from velostream.jobs.protocols import MemoryReader, MergedReader, PartitionedWatermark

    class TwoPartitions(MemoryReader):  # what the Kafka source declares
        watermark_by = "_PARTITION"

        def watermark_partitions(self):
            return [0, 1], []

    sql = """CREATE TABLE desks (trader_id VARCHAR, desk VARCHAR, PRIMARY KEY (trader_id));
    SELECT d.desk, COUNT(*) AS n, _WINDOW_START AS ws FROM trades t
    JOIN desks d ON t.trader_id = d.trader_id
    GROUP BY d.desk WINDOW TUMBLING (_TIMESTAMP, INTERVAL '1' MINUTE) EMIT FINAL"""
    trades = TwoPartitions([
        pa.record_batch({"trader_id": ["a", "a"], "_TIMESTAMP": [600_000, 610_000],
                         "_PARTITION": pa.array([0, 0], pa.int32())}),
        pa.record_batch({"trader_id": ["b", "b"], "_TIMESTAMP": [60_000, 70_000],
                         "_PARTITION": pa.array([1, 1], pa.int32())})])
    assert not isinstance(MergedReader({"x": MemoryReader({"k": [1]})}), PartitionedWatermark)
    job = Job(sql, {"trades": trades, "desks": {"trader_id": ["a", "b"], "desk": ["X", "Y"]}})
    assert isinstance(job.reader, MergedReader) and job.engine.watermark_by == "_PARTITION"
    job.run()
    assert job.stats.records_late == 0
    assert sorted((r["desk"], r["n"], r["ws"]) for r in job.result().to_pylist()) == [
        ("X", 2, 600_000), ("Y", 2, 60_000)]
