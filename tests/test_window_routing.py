"""V2 routing by window (exec/router.py, strategy ``window``): a TUMBLING or CUMULATE GROUP BY whose
first batch shows windows of at most half a step's rows is routed by event time, runs of whole
windows of about a step's rows dealt to the partitions in turn, so each group of each window still
lives in one partition. Most tests here make steps (and so runs) small, so that a few thousand
rows make many runs over every partition; one runs at the default step size.

Checked here: the same rows as one partition (and as DuckDB) at 2, 3 and 4 partitions, with NULL
keys, out-of-order and late rows, allowed lateness, order-sensitive aggregates, HAVING and batch
splits; EMIT FINAL rows in window-end order and each key's EMIT CHANGES rows in input order (the
order one partition gives them); and the choice itself: by window for a batch spanning many
windows, by key for one inside a window (a fast live stream)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream._core.route import route_by_time
from velostream.exec.columns import END_COL, ROW_COL
from velostream.jobs import partition_threads
from velostream.jobs.partition_threads import _merge_by

from reference import assert_rows_equal, duck, make_table, rows_per_key, split_batches

pytestmark = pytest.mark.timeout(180)


DEFAULT_STEP_ROWS = partition_threads.STEP_ROWS


@pytest.fixture(autouse=True)
def small_steps(monkeypatch):
    """Steps (and runs of windows) of about 1,500 rows: batches up to INLINE_STEP_ROWS (1,024)
    run in the job's thread, larger ones on the partition threads, a step of several."""
    monkeypatch.setattr(partition_threads, "STEP_ROWS", 1500)


def _shuffled(table: pa.Table, seed: int, late: int = 40) -> pa.Table:
    """``table`` with rows moved out of order: neighbours swapped, and ``late`` rows moved far
    later in the input (late for a watermark without lateness)."""
    rng = np.random.default_rng(seed)
    order = np.arange(table.num_rows)
    for i in rng.integers(0, table.num_rows - 1, table.num_rows // 10):
        order[i], order[i + 1] = order[i + 1], order[i]
    for src in rng.integers(0, table.num_rows // 2, late):
        dst = int(rng.integers(src, table.num_rows))
        order = np.insert(np.delete(order, src), dst, order[src])
    return table.take(pa.array(order))


def _run(sql: str, batches: list, n: int) -> tuple[pa.Table, object]:
    job = vs.Job(sql, {"t": batches}, partitions=n, failure_strategy="LogAndContinue")
    job.run()
    return job.result().to_arrow(), job


AGGS = ("COUNT(*) AS n, SUM(xi) AS s, MIN(xf) AS lo, MAX(xf) AS hi, AVG(xf) AS a, "
        "FIRST_VALUE(seq) AS f, LAST_VALUE(seq) AS l, STRING_AGG(s, ',') AS sa")

QUERIES = {
    "final": f"SELECT ks, ki, {AGGS}, _WINDOW_START AS ws FROM t GROUP BY ks, ki "
             "WINDOW TUMBLING(ts, INTERVAL '10' SECOND)",
    "final_having": f"SELECT ks, {AGGS}, _WINDOW_END AS we FROM t GROUP BY ks "
                    "WINDOW TUMBLING(ts, INTERVAL '7' SECOND) HAVING COUNT(*) > 1",
    "changes": f"SELECT ks, ki, {AGGS}, _WINDOW_START AS ws FROM t GROUP BY ks, ki "
               "WINDOW TUMBLING(ts, INTERVAL '10' SECOND) EMIT CHANGES",
    "cumulate": "SELECT ks, window_end AS we, COUNT(*) AS n, SUM(xi) AS s FROM TABLE(CUMULATE("
                "TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '20' SECONDS)) "
                "GROUP BY window_start, window_end, ks",
    "lateness": f"SELECT ki, {AGGS}, _WINDOW_START AS ws FROM t GROUP BY ki "
                "WINDOW TUMBLING(ts, INTERVAL '10' SECOND) EMIT CHANGES "
                "WITH ('allowed.lateness' = '4s')",
}


@pytest.mark.parametrize("name", sorted(QUERIES))
@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_routed_by_window_gives_one_partitions_rows_in_its_order(name, n, seed):
    sql = QUERIES[name]
    table = _shuffled(make_table(8000, seed, max_step_ms=400), seed)
    # (the first batch decides the routing: it spans many windows)
    batches = [table.slice(0, 1100).combine_chunks().to_batches()[0],
               *split_batches(table.slice(1100), [700, 1, 333, 1200, 2600], seed)]
    want, one = _run(sql, batches, 1)
    got, job = _run(sql, batches, n)
    assert job.stats.strategy == "window"
    assert job.stats.records_late == one.stats.records_late
    assert one.stats.records_late > 0 or name == "lateness"
    assert len(job.stats.partition_records) == n
    assert sum(job.stats.partition_records) == one.stats.records_read
    assert min(job.stats.partition_records) > 0
    assert_rows_equal(got.to_pylist(), want.to_pylist())
    keys = [c for c in ("ks", "ki") if c in got.column_names]
    if "CHANGES" in sql:  # each key's changes in input order, as one partition gives them
        mine, theirs = rows_per_key(got, keys), rows_per_key(want, keys)
        assert mine.keys() == theirs.keys()
        for k in theirs:
            assert_rows_equal(mine[k], theirs[k], ordered=True, what=f"key {k}")
    else:  # windows close in order
        end = got.column("ws" if "ws" in got.column_names else "we").to_numpy()
        assert (np.diff(end) >= 0).all()
    # the late rows went to the dead letters, once each, as at one partition
    assert _dead_seqs(job) == _dead_seqs(one)


def _dead_seqs(job) -> list:
    return sorted(s for _, rows in job.dead_letters for s in rows.column("seq").to_pylist())


@pytest.mark.parametrize("n", [2, 4])
def test_routed_by_window_equals_duckdb(n):
    table = make_table(5000, 7, max_step_ms=300)
    batches = split_batches(table, [1024, 4096], 7)
    got = vs.query("SELECT ks, COUNT(*) AS n, SUM(xi) AS s, MAX(xf) AS hi, _WINDOW_START AS ws "
                   "FROM t GROUP BY ks WINDOW TUMBLING(ts, INTERVAL '5' SECOND)",
                   {"t": batches}, partitions=n)
    want = duck("SELECT ks, COUNT(*), SUM(xi), MAX(xf), "
                "epoch_ms(time_bucket(INTERVAL '5 seconds', epoch_ms(ts))) FROM t GROUP BY ALL",
                t=table)
    assert_rows_equal(got.to_pylist(), want)


@pytest.mark.parametrize("emit", ["", "EMIT CHANGES"])
def test_a_replay_at_the_default_step_size_takes_whole_steps_in_turn(emit, monkeypatch):
    """300,000 trades in 65,536-row batches, one per second, 1-minute windows: runs of about a
    step's rows, each partition taking whole batches (nothing copied) in turn."""
    from velostream.datagen import market_data
    monkeypatch.setattr(partition_threads, "STEP_ROWS", DEFAULT_STEP_ROWS)
    batches = market_data(300_000)
    sql = ("SELECT trader_id, symbol, COUNT(*) AS n, SUM(quantity) AS q, AVG(price) AS p, "
           f"_WINDOW_START AS ws FROM t GROUP BY trader_id, symbol WINDOW TUMBLING(1m) {emit}")
    want, _ = _run(sql, batches, 1)
    for n in (2, 4):
        got, job = _run(sql, batches, n)
        assert job.stats.strategy == "window"
        assert sum(1 for r in job.stats.partition_records if r) >= 2
        # the same rows, each key's in the same order (its changes in input order; its
        # windows' rows in window order), compared whole by Arrow (the same sums in the same
        # order: equal floats)
        assert _by_key(got).equals(_by_key(want))
        if not emit:  # windows close in order
            assert (np.diff(got.column("ws").to_numpy()) >= 0).all()


def _by_key(t: pa.Table) -> pa.Table:
    """``t``'s rows sorted by key, each key's rows in their order in ``t``."""
    t = t.append_column("_at", pa.array(np.arange(t.num_rows)))
    return t.sort_by([("trader_id", "ascending"), ("symbol", "ascending"),
                      ("_at", "ascending")]).drop_columns(["_at"])


def test_a_batch_inside_one_window_keeps_routing_by_key():
    """A fast live stream's batches each sit in a window or two: routing by window would put every
    row of the window on one partition, so the job routes by key."""
    table = make_table(4000, 3, max_step_ms=5)  # 4,000 rows over about 10 s
    batches = split_batches(table, 500, 3)
    sql = ("SELECT ks, COUNT(*) AS n FROM t GROUP BY ks "
           "WINDOW TUMBLING(ts, INTERVAL '1' MINUTE)")
    got, job = _run(sql, batches, 2)
    assert job.stats.strategy == "hash"
    want, _ = _run(sql, batches, 1)
    assert_rows_equal(got.to_pylist(), want.to_pylist())


@pytest.mark.parametrize("sql", [
    "SELECT ks, COUNT(*) AS n FROM t GROUP BY ks WINDOW SLIDING(ts, INTERVAL '10' SECOND, "
    "INTERVAL '5' SECOND)",  # a row in two windows: routing by key
    "SELECT ks, COUNT(*) AS n FROM t GROUP BY ks WINDOW SESSION(ts, INTERVAL '3' SECOND)",
])
def test_windows_a_row_shares_with_other_periods_keep_routing_by_key(sql):
    batches = split_batches(make_table(3000, 5, max_step_ms=400), 1000, 5)
    got, job = _run(sql, batches, 2)
    assert job.stats.strategy == "hash"
    want, _ = _run(sql, batches, 1)
    assert_rows_equal(got.to_pylist(), want.to_pylist())


def test_route_by_time_deals_runs_of_time_in_turn():
    rng = np.random.default_rng(0)
    t = np.concatenate([np.sort(rng.integers(-10**6, 10**6, 5000)), rng.integers(-10**9, 10**9, 500),
                        np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])])
    out = np.empty(len(t), dtype=np.int8)
    for run_ms, n in [(1, 2), (60_000, 3), (7, 4), (1 << 62, 2)]:
        route_by_time(t, run_ms, n, out)
        assert (out == (t // run_ms) % n).all()
    with pytest.raises(ValueError):
        route_by_time(t, 0, 2, out)


@pytest.mark.parametrize("runs", [1, 5, 500])  # few runs: slices; many: one merged batch
def test_merge_by_position_is_a_stable_merge_of_runs(runs):
    rng = np.random.default_rng(runs)
    for _ in range(20):
        k = int(rng.integers(2, 5))
        owner = np.repeat(rng.integers(0, k, runs), rng.integers(1, 40, runs))  # runs of rows
        positions = [np.flatnonzero(owner == p) for p in range(k)]
        outs = [pa.RecordBatch.from_arrays(
            [pa.array([f"p{p}-{i}" for i in pos]), pa.array(pos * 2.5), pa.array(pos)],
            names=["who", "x", ROW_COL]) for p, pos in enumerate(positions)]
        merged = _merge_by(outs, ROW_COL)
        got = pa.Table.from_batches(merged) if merged else None
        want = pa.Table.from_batches([o for o in outs if o.num_rows])
        want = want.take(pa.array(np.argsort(want.column(ROW_COL).to_numpy(), kind="stable")))
        assert got.to_pylist() == want.drop_columns([ROW_COL]).to_pylist()
        if len(np.flatnonzero(np.diff(owner))) + 1 < 64:  # few runs: slices, nothing copied
            assert len(merged) == len(np.flatnonzero(np.diff(owner))) + 1
    with pytest.raises(vs.JobError):
        _merge_by([pa.record_batch({"x": [1]}), pa.record_batch({"x": [2], END_COL: [1]})], END_COL)
