"""A pipeline's graph over several partitions (docs/ARCHITECTURE.md, "Exchanges in the graph"):
each node keeping state per key runs on every partition behind an exchange that hashes its rows
on its keys (a join's two sides on their join keys, or a small table broadcast), and the results
never depend on the partition count. Checked against DuckDB on seeded data with NULL keys and
batch splits, and against the one-partition run of the same graph."""
from __future__ import annotations

import random
import threading
from typing import Optional

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs

from reference import assert_rows_equal, duck

MINUTE = 60_000


def events(n, seed, nkeys=40):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 30 * MINUTE, n)).astype(np.int64)
    keys = np.array([f"k{i}" for i in range(nkeys)] + [""], dtype=object)
    return pa.table({
        "k": pa.array(rng.choice(keys, n), mask=rng.random(n) < 0.05, type=pa.string()),
        "region": pa.array(rng.choice(["eu", "us", "apac"], n).astype(object), type=pa.string()),
        "v": pa.array(rng.integers(-50, 1000, n), mask=rng.random(n) < 0.05, type=pa.int64()),
        "_TIMESTAMP": pa.array(ts),
    })


def batches(t: pa.Table, seed: int) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, t.num_rows), 11, replace=False)).tolist()
    bounds = [0, *cuts, t.num_rows]
    return [t.slice(a, b - a).combine_chunks().to_batches()[0] for a, b in zip(bounds, bounds[1:])]


# the second statement groups by another key than the first: rows must be exchanged between them
REKEYED = """
CREATE STREAM per_key AS
  SELECT k, region, COUNT(*) AS n, SUM(v) AS s FROM t GROUP BY k, region WINDOW TUMBLING(1m);
SELECT region, SUM(n) AS n, SUM(s) AS s, COUNT(*) AS keys, _WINDOW_START AS ws
FROM per_key GROUP BY region WINDOW TUMBLING(5m)
"""
REKEYED_DUCK = """
SELECT region, SUM(n), SUM(s), COUNT(*), w5 FROM (
  SELECT k, region, COUNT(*) AS n, SUM(v) AS s, (_TIMESTAMP // 300000) * 300000 AS w5
  FROM t GROUP BY k, region, _TIMESTAMP // 60000, (_TIMESTAMP // 300000) * 300000)
GROUP BY region, w5
"""


def test_a_second_statement_grouping_by_another_key_is_right_at_every_partition_count(partitions):
    t = events(6000, 1)
    got = vs.query(REKEYED, {"t": batches(t, partitions)}, partitions=partitions)
    assert_rows_equal(got.to_pylist(), duck(REKEYED_DUCK, t=t))


def test_explain_shows_the_exchange_in_front_of_each_keyed_node():
    text = vs.explain(REKEYED, {"t": events(10, 1)}, partitions=4)
    lines = text.splitlines()
    assert "    Exchange: hash(k, region) over 4 partitions: GROUP BY keys: each group lives " \
           "in one partition" in lines
    assert "    Exchange: hash(region) over 4 partitions: GROUP BY keys: each group lives in " \
           "one partition" in lines
    assert lines[-1].startswith("Partitioning: 4 partitions:")
    glob = vs.explain("WITH x AS (SELECT v FROM t WHERE v > 0) SELECT SUM(v) AS s FROM x",
                      {"t": events(10, 1)}, partitions=2)
    assert "    Exchange: gather: one partition (global aggregate" in glob
    assert "    Exchange: none: row by row, in the job's thread" in glob


def test_each_partition_holds_the_state_of_its_own_keys():
    """The keyed stage really is split: with 2 partitions each holds some of the groups, and
    together they hold every group exactly once."""
    sql = ("WITH x AS (SELECT k, v FROM t WHERE v IS NOT NULL) "
           "SELECT k, COUNT(*) AS n FROM x GROUP BY k")
    t = events(4000, 2)
    eng = vs.Engine(sql, partitions=2)
    try:
        out = eng.push("t", t).to_pylist()
        stage = [n for n in eng.flow.nodes if n.kind == "select"][-1].op.engine.pipeline
        held = [len(p.stateful.table) for p in stage.parts]  # groups per partition
    finally:
        eng.close()
    assert all(h > 0 for h in held)
    assert sum(held) == len({r["k"] for r in out})


@pytest.mark.parametrize("sql", [
    "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM t GROUP BY k",
    "SELECT k, MAX(v) AS hi FROM t GROUP BY k WINDOW TUMBLING (_TIMESTAMP, INTERVAL '1' SECOND)",
    "SELECT k, v, AVG(v) OVER (ROWS WINDOW BUFFER 3 ROWS PARTITION BY k) AS m FROM t",
    "SELECT k, v * 2 AS w FROM t WHERE v > 0",
])
@pytest.mark.parametrize("n", [2, 4])
def test_one_statement_engine_over_partitions_pushes_the_rows_of_one(sql, n):
    """vs.Engine(sql, partitions=N) of one SELECT: its keyed part over N partitions (a graph of
    one stage), push by push the rows, per key in order, and the counters of one partition."""
    batches = [events(700, seed) for seed in range(5)]
    one, many = vs.Engine(sql), vs.Engine(sql, partitions=n)
    try:
        for rb in batches:
            want, got = one.push("t", rb).to_pylist(), many.push("t", rb).to_pylist()
            assert_rows_equal(got, want)
            assert [r for r in got if r["k"] == "k1"] == [r for r in want if r["k"] == "k1"]
        assert_rows_equal(many.flush().to_pylist(), one.flush().to_pylist())
        assert {k: many.stats[k] for k in one.stats} == dict(one.stats)
    finally:
        many.close()


JOINS = {
    "interval_full": ("SELECT a.k, a.v, b.v AS w FROM a FULL JOIN b ON a.k = b.k "
                      "AND b._TIMESTAMP BETWEEN a._TIMESTAMP - 5000 AND a._TIMESTAMP + 5000",
                      "SELECT a.k, a.v, b.v FROM a FULL JOIN b ON a.k = b.k "
                      "AND b._TIMESTAMP BETWEEN a._TIMESTAMP - 5000 AND a._TIMESTAMP + 5000"),
    # windowed by the joined row's event time: the later of its two rows'
    "interval_then_window": (
        "SELECT a.region, COUNT(*) AS n, SUM(b.v) AS s, _WINDOW_START AS ws FROM a JOIN b "
        "ON a.k = b.k WITHIN 3 SECONDS GROUP BY a.region WINDOW TUMBLING(5m)",
        "SELECT a.region, COUNT(*), SUM(b.v), "
        "greatest(a._TIMESTAMP, b._TIMESTAMP) // 300000 * 300000 FROM a JOIN b ON a.k = b.k "
        "AND b._TIMESTAMP BETWEEN a._TIMESTAMP - 3000 AND a._TIMESTAMP + 3000 "
        "GROUP BY a.region, greatest(a._TIMESTAMP, b._TIMESTAMP) // 300000"),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_a_join_split_over_partitions_equals_duckdb(name, partitions):
    sql, ref = JOINS[name]
    a, b = events(3000, 3, nkeys=300), events(2000, 4, nkeys=300)
    got = vs.query(sql, {"a": batches(a, 1), "b": batches(b, 2)}, partitions=partitions)
    assert_rows_equal(got.to_pylist(), duck(ref, a=a, b=b))


TEMPORAL = ("CREATE TABLE inst (k VARCHAR, sector VARCHAR, PRIMARY KEY (k)); "
            "SELECT t.k, t.v, i.sector FROM t LEFT JOIN inst i ON t.k = i.k")


def instruments(n, seed):
    rng = np.random.default_rng(seed)
    keys = [f"k{i}" for i in range(n)]
    return pa.table({"k": pa.array(keys), "sector": pa.array(
        rng.choice(["tech", "energy", None], n).tolist(), type=pa.string())})


@pytest.mark.parametrize("limit,how", [("131072", "broadcast"), ("10", "hash")])
def test_a_temporal_join_broadcasts_a_small_table_and_hashes_a_large_one(limit, how, partitions):
    sql = f"{TEMPORAL} WITH ('join.broadcast.max.rows' = '{limit}')"
    t, inst = events(3000, 5), instruments(40, 6)
    text = vs.explain(sql, {"t": t, "inst": inst}, partitions=2)
    if how == "broadcast":
        assert "Exchange: broadcast over 2 partitions: the table to every partition" in text
    else:
        assert "Exchange: input 1 hash(k); input 2 hash(k) over 2 partitions" in text
    got = vs.query(sql, {"t": batches(t, 3), "inst": inst}, partitions=partitions)
    want = duck("SELECT t.k, t.v, i.sector FROM t LEFT JOIN inst i ON t.k = i.k", t=t, inst=inst)
    assert_rows_equal(got.to_pylist(), want)


def test_a_left_join_whose_other_side_has_no_row_pads_every_row(partitions):
    """Every partition whose other side never got a row pads its rows with NULLs (this crashed
    on building the other side's empty columns)."""
    a = events(500, 7)
    b = pa.table({"k": pa.array([], pa.string()), "v": pa.array([], pa.int64()),
                  "_TIMESTAMP": pa.array([], pa.int64())})
    got = vs.query("SELECT a.k, a.v, b.v AS w FROM a LEFT JOIN b ON a.k = b.k WITHIN 1 SECOND",
                   {"a": a, "b": b}, partitions=partitions)
    assert_rows_equal(got.to_pylist(), [(r["k"], r["v"], None) for r in a.to_pylist()])


SNAPSHOTTED = {
    "rekeyed": REKEYED,
    # a wide interval: many rows of each side are held at the snapshot
    "interval_join": "SELECT a.k, a.v, b.v AS w FROM a FULL JOIN b ON a.k = b.k AND "
                     "b._TIMESTAMP BETWEEN a._TIMESTAMP - 120000 AND a._TIMESTAMP + 120000",
    "temporal_join": "CREATE TABLE b (k VARCHAR, v BIGINT, PRIMARY KEY (k)); "
                     "SELECT a.k, a.v, b.v AS w FROM a LEFT JOIN b ON a.k = b.k",
    "dedup": "SELECT k, v FROM (SELECT k, v, _TIMESTAMP, ROW_NUMBER() OVER (PARTITION BY k "
             "ORDER BY _TIMESTAMP) AS rn FROM a) WHERE rn = 1",
    "session": "WITH x AS (SELECT k, v FROM a) SELECT k, COUNT(*) AS n, SUM(v) AS s, "
               "_WINDOW_START AS ws, _WINDOW_END AS we FROM x GROUP BY k WINDOW SESSION(20s)",
    # two OVER specs sharing the key k: each buffer moves with its PARTITION BY value
    "over": "WITH x AS (SELECT k, region, v, _TIMESTAMP FROM a) SELECT k, region, v, "
            "SUM(v) OVER (PARTITION BY k ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS s3, "
            "MAX(v) OVER (PARTITION BY region, k ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) "
            "AS m10 FROM x",
    "top_n": "WITH w AS (SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM a GROUP BY k "
             "WINDOW TUMBLING(2m)) SELECT ws, k, s, rn FROM (SELECT ws, k, s, ROW_NUMBER() "
             "OVER (PARTITION BY ws ORDER BY s DESC, k) AS rn FROM w) WHERE rn <= 3",  # no ties
}


def run_split(sql, steps, before: int, after: int, cut: Optional[int] = None):
    """The steps through an engine at ``before`` partitions, snapshotted after ``cut`` steps
    (halfway by default) and restored in a fresh engine at ``after``: every row, against one
    uninterrupted run."""
    whole = vs.Engine(sql, partitions=before)
    want = [r for _, name, rb in steps for r in whole.push(name, rb).to_pylist()]
    want += whole.flush().to_pylist()
    whole.close()
    cut = len(steps) // 2 if cut is None else cut
    first = vs.Engine(sql, partitions=before)
    got = [r for _, name, rb in steps[:cut] for r in first.push(name, rb).to_pylist()]
    state = first.snapshot()
    first.close()
    second = vs.Engine(sql, partitions=after)
    second.restore(state)
    got += [r for _, name, rb in steps[cut:] for r in second.push(name, rb).to_pylist()]
    got += second.flush().to_pylist()
    second.close()
    return got, want


def steps_of(sources: dict) -> list:
    return sorted(((rb.column("_TIMESTAMP")[0].as_py(), name, rb)
                   for name, tbl in sources.items() for rb in batches(tbl, 4)),
                  key=lambda x: (x[0], x[1]))


@pytest.mark.parametrize("name", list(SNAPSHOTTED))
@pytest.mark.parametrize("before,after", [(2, 2), (2, 1), (2, 4), (1, 2), (4, 2)])
def test_a_snapshot_restores_at_its_partition_count_or_another(name, before, after):
    """A checkpoint moves to another partition count: each group, each joined side's rows, each
    key seen and each held row goes to the partition its key hashes to there."""
    sql = SNAPSHOTTED[name]
    a, b = events(2000, 8, nkeys=100), events(1500, 9, nkeys=100)
    if name == "temporal_join":
        b = b.select(["k", "v", "_TIMESTAMP"])
    sources = {"t": a} if "FROM t" in sql else {"a": a, "b": b} if "JOIN" in sql else {"a": a}
    got, want = run_split(sql, steps_of(sources), before, after)
    assert len(want) >= 15
    assert_rows_equal(got, want)


@pytest.mark.parametrize("seed", range(14))
def test_snapshots_at_random_steps_move_between_random_partition_counts(seed):
    """Seeded: an operator, a cut point (the first step to the last) and two partition counts
    from 1 to 5 at random; the snapshot taken there continues exactly at the other count."""
    rng = random.Random(seed)
    name = rng.choice(sorted(SNAPSHOTTED))
    sql = SNAPSHOTTED[name]
    a, b = events(1200, 20 + seed, nkeys=rng.choice([5, 60, 900])), events(900, 40 + seed)
    if name == "temporal_join":
        b = b.select(["k", "v", "_TIMESTAMP"])
    sources = {"t": a} if "FROM t" in sql else {"a": a, "b": b} if "JOIN" in sql else {"a": a}
    steps = steps_of(sources)
    before, after = rng.randint(1, 5), rng.randint(1, 5)
    got, want = run_split(sql, steps, before, after, cut=rng.randint(0, len(steps)))
    assert_rows_equal(got, want, what=f"{name} {before} -> {after} partitions")


def test_a_pipeline_job_runs_its_partitions_and_leaves_no_thread(tmp_path):
    """Through a job (what velostream run does): the stats name the partitions, the rows equal
    one partition's, and the partition threads stop with the job."""
    t = events(5000, 10)
    before = {th.ident for th in threading.enumerate()}
    results = {}
    for p in (1, 2):
        sink = vs.MemoryWriter()
        job = vs.Job(REKEYED, {"t": batches(t, 5)}, sink=sink, partitions=p)
        stats = job.run()
        results[p] = [r for b in sink.batches for r in b.to_pylist()]
        assert stats.partitions == p
    assert_rows_equal(results[2], results[1])
    assert len(results[1]) > 10
    left = [th.name for th in threading.enumerate()
            if th.ident not in before and th.name.startswith("velostream-partition")]
    assert left == []


def test_a_key_out_of_range_is_a_bad_record_at_every_partition_count(partitions):
    """A GROUP BY key that overflows is evaluated before the exchange splits the rows: at any
    partition count its row is counted, sent to the dead letters, and the others go on; a
    query (no failure strategy) raises the same error."""
    big = 4611686018427387904
    sql = (f"WITH x AS (SELECT k, v FROM t) SELECT k * {big} AS k2, COUNT(*) AS n FROM x "
           f"GROUP BY k * {big}")
    data = {"k": [1, 2, 3, 1, -1, 0], "v": [1, 2, 3, 4, 5, 6]}
    with pytest.raises(vs.VelostreamError, match="Overflow in multiplication"):
        vs.query(sql, {"t": data}, partitions=partitions)
    sink, dead = vs.MemoryWriter(), vs.MemoryWriter()
    stats = vs.Job(sql, {"t": data}, sink=sink, partitions=partitions,
                   failure_strategy="SendToDLQ", dead_letter=dead).run()
    rows = [r for b in sink.batches for r in b.to_pylist()]
    assert sorted((r["k2"], r["n"]) for r in rows) == sorted(
        [(big, 1), (big, 2), (-big, 1), (0, 1)])
    assert stats.records_failed == 2
    assert sorted(r["k"] for b in dead.batches for r in b.to_pylist()) == [2, 3]


def test_a_pipeline_jobs_stats_count_each_partitions_rows():
    t = events(5000, 12)
    stats = vs.Job(REKEYED, {"t": t}, sink=vs.MemoryWriter(), partitions=2).run()
    per = stats.partition_records
    assert len(per) == 2 and all(n > 0 for n in per)
    assert sum(per) >= t.num_rows  # the first stage's rows, and the second's


def test_large_batches_run_their_partitions_on_the_pool_threads():
    """Batches past the inline size go to the partition threads (small ones run in the calling
    thread); the rows are the same as at one partition."""
    t = events(60_000, 13, nkeys=500)
    big = t.to_batches(max_chunksize=20_000)
    eng = vs.Engine(REKEYED, partitions=2)
    try:
        got = [r for rb in big for r in eng.push("t", rb).to_pylist()]
        used = {th.name for th in threading.enumerate()
                if th.name.startswith("velostream-partition")}
        got += eng.flush().to_pylist()
    finally:
        eng.close()
    assert len(used) == 2
    assert_rows_equal(got, duck(REKEYED_DUCK, t=t))
