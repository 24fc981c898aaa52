"""The V2 hash router: key groups assigned on first sight, balanced, stable for the life of a job."""
from __future__ import annotations

import collections
import os

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream._core.route import KeyRouter, select_rows

pytestmark = pytest.mark.timeout(120)


def _route(router: KeyRouter, *words) -> np.ndarray:
    out = np.empty(len(words[0]), dtype=np.int8)
    router.route([np.asarray(w, dtype=np.int64) for w in words], out)
    return out


@pytest.mark.parametrize("n_parts", [2, 3, 4, 8])
def test_few_keys_split_evenly(n_parts):
    # ten equally frequent keys (S1/S2's symbols): hash % N would leave them lopsided
    keys = np.arange(100_000) % 10
    part = _route(KeyRouter(n_parts), keys)
    per_key = {k: set(part[keys == k].tolist()) for k in range(10)}
    assert all(len(p) == 1 for p in per_key.values())  # a key lives in one partition
    keys_per_part = collections.Counter(p.pop() for p in per_key.values())
    assert max(keys_per_part.values()) - min(keys_per_part.get(i, 0) for i in range(n_parts)) <= 1


def test_assignment_is_stable_across_batches_and_balances_by_rows():
    router = KeyRouter(2)
    rng = np.random.default_rng(3)
    first = _route(router, np.zeros(1000, dtype=np.int64))  # a hot key arrives first
    assert set(first.tolist()) == {0}
    later = rng.integers(1, 50, 20_000)
    part = _route(router, later)
    assert set(part.tolist()) == {1}  # new keys go where the load is lighter...
    again = _route(router, np.concatenate([np.zeros(10), np.arange(1, 50)]))
    assert again[:10].tolist() == [0] * 10  # ...and no key ever moves
    assert set(again[10:].tolist()) == {1}
    assert router.rows_routed.tolist() == [1010, 20_049]


def test_many_keys_and_multi_word_keys():
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 5000, 200_000), rng.integers(-3, 97, 200_000)
    router = KeyRouter(4)
    part = _route(router, a, b)
    counts = np.bincount(part, minlength=4)
    assert counts.min() > 0.2 * len(a)  # thousands of keys spread over all four
    # the same (a, b) always lands in the same partition
    seen = {}
    for x, y, p in zip(a[:5000].tolist(), b[:5000].tolist(), part[:5000].tolist()):
        assert seen.setdefault((x, y), p) == p


def test_select_rows_partitions_every_row_once():
    part = np.random.default_rng(1).integers(0, 3, 10_001).astype(np.int8)
    picked = [select_rows(part, p) for p in range(3)]
    assert sorted(np.concatenate(picked).tolist()) == list(range(10_001))
    for p, rows in enumerate(picked):
        assert (np.diff(rows) > 0).all() and (part[rows] == p).all()


@pytest.mark.parametrize("n_parts", [1, 2, 5, 127])
def test_select_rows_matches_numpy_at_every_length_and_byte_value(n_parts):
    # 64 rows at a time by bit arithmetic on 8-byte words, then a tail: every length around
    # the block size, and partition bytes across the whole int8 range (-1 must not match 127)
    rng = np.random.default_rng(n_parts)
    for n in list(range(0, 140)) + [8191, 8192, 20_000]:
        part = rng.integers(0, n_parts, n).astype(np.int8)
        if n > 3:
            part[rng.integers(0, n, 3)] = [-1, -128, 127]
        for p in {0, n_parts - 1, -1, -128, 127}:
            assert select_rows(part, p).tolist() == np.flatnonzero(part == p).tolist()


def test_router_rejects_bad_input():
    with pytest.raises(ValueError):
        KeyRouter(0)
    with pytest.raises(ValueError):
        KeyRouter(2).route([], np.empty(3, dtype=np.int8))
    with pytest.raises(ValueError):
        KeyRouter(2).route([np.arange(4)], np.empty(3, dtype=np.int8))


@pytest.mark.parametrize("partitions", [2, 4])
def test_v2_null_and_computed_keys_match_v1(partitions):
    rng = np.random.default_rng(11)
    n = 30_000
    sym = np.array(["AAPL", "msft", None, "Goog", "aapl", "x" * 40], dtype=object)[rng.integers(0, 6, n)]
    qty = rng.integers(0, 100, n).astype(float)
    qty[rng.random(n) < 0.05] = np.nan
    price = rng.normal(100, 5, n)
    table = pa.table({"sym": pa.array(sym, pa.string()), "qty": pa.array(qty, from_pandas=True),
                      "price": price, "k": rng.integers(0, 7, n)})
    batches = table.to_batches(max_chunksize=3_000)
    queries = {  # SQL -> how many leading output columns form the key
        "SELECT sym, COUNT(*) AS n, SUM(qty) AS q, MAX(price) AS mx FROM t GROUP BY sym": 1,
        "SELECT UPPER(sym) AS u, k, COUNT(qty) AS n FROM t GROUP BY UPPER(sym), k": 2,
        "SELECT k * 2.5 AS kk, AVG(price) AS a FROM t GROUP BY k * 2.5 EMIT FINAL": 1,
    }
    for sql, arity in queries.items():
        v1 = [tuple(r.values()) for r in vs.query(sql, {"t": batches}).to_pylist()]
        v2 = [tuple(r.values()) for r in vs.query(sql, {"t": batches}, partitions=partitions).to_pylist()]
        assert collections.Counter(v2) == collections.Counter(v1), sql
        # each key's rows come out in the same order as V1's
        by1, by2 = collections.defaultdict(list), collections.defaultdict(list)
        for rows, by in ((v1, by1), (v2, by2)):
            for r in rows:
                by[r[:arity]].append(r)
        assert by1 == by2, sql


# ---- raw routing: keys hashed on their own values, strings interned by the partitions ----------

def _raw_strings(arr: pa.Array) -> tuple:
    from velostream.batch import Column, SqlType
    from velostream.exec.router import _raw_key
    return _raw_key(Column(SqlType("STRING"), arrow=arr))


def _route_raw(router: KeyRouter, *cols) -> np.ndarray:
    out = np.empty(len(cols[0][1]) - (1 if cols[0][0] == "string" else 0), dtype=np.int8)
    router.route_raw(list(cols), out)
    return out


def test_raw_routing_keeps_each_string_key_in_one_partition_whatever_its_buffers():
    # the same strings at other offsets, in sliced, chunked, large and dictionary arrays, and
    # across batches: only the bytes decide
    keys = [f"SYM{i % 37}" + "x" * (i % 3) * 7 for i in range(5_000)]  # lengths 4..19
    router = KeyRouter(4)
    plain = pa.array(keys)
    first = _route_raw(router, _raw_strings(plain))
    where = {}
    for k, p in zip(keys, first.tolist()):
        assert where.setdefault(k, p) == p
    assert len(set(where.values())) == 4  # 111 keys use every partition
    variants = [plain.slice(1_000, 2_000), pa.array(keys[1_000:3_000], pa.large_string()),
                pa.array(keys[1_000:3_000]).dictionary_encode(),
                pa.chunked_array([keys[1_000:2_000], keys[2_000:3_000]])]
    for arr in variants:
        part = _route_raw(router, _raw_strings(arr))
        assert part.tolist() == [where[k] for k in keys[1_000:3_000]]


def test_raw_routing_hashes_a_string_alike_at_the_end_of_its_buffer():
    # short strings are read 8 bytes at a time except in the buffer's last 8 bytes: both ways must
    # give one hash, or a key would split across partitions
    keys = [f"k{i}" for i in range(64)] + [f"key-{i:04d}" for i in range(64)]  # 2-3 and 8 bytes
    router = KeyRouter(8)
    for k in keys:
        arr = pa.array([k, "x" * 30, k])  # first copy mid-buffer, the last at its very end
        part = _route_raw(router, _raw_strings(arr))
        assert part[0] == part[2], k


def test_raw_routing_folds_keys_as_group_by_compares_them():
    router = KeyRouter(8)
    vals = np.array([0.0, -0.0, np.nan, -np.nan, 1.5] * 100)
    part = _route_raw(router, ("float", vals, None))
    assert part[0] == part[1] and part[2] == part[3]
    # NULLs are one key, whatever value the slot holds
    valid = np.array([0, 1] * 250, dtype=np.uint8)
    nulls = _route_raw(KeyRouter(8), ("int", np.arange(500), valid))
    assert len(set(nulls[valid == 0].tolist())) == 1
    # multi-column keys: equal pairs together
    a = np.arange(2_000) % 7
    s = pa.array([f"k{i % 5}" for i in range(2_000)])
    part = _route_raw(KeyRouter(3), ("int", a, None), _raw_strings(s))
    seen = {}
    for x, y, p in zip(a.tolist(), s.to_pylist(), part.tolist()):
        assert seen.setdefault((x, y), p) == p
    with pytest.raises(ValueError):
        KeyRouter(2).route_raw([("string", np.zeros(3, np.int32), np.zeros(1, np.uint8), None)],
                               np.empty(4, dtype=np.int8))
    with pytest.raises(ValueError):
        KeyRouter(2).route_raw([("bytes", np.zeros(4), None)], np.empty(4, dtype=np.int8))


def test_raw_routing_survives_bad_offsets():
    # offsets that point outside the data (not a valid Arrow array) never read outside it
    out = np.empty(3, dtype=np.int8)
    offs = np.array([0, 5, 2, 1_000_000], dtype=np.int32)
    KeyRouter(2).route_raw([("string", offs, np.zeros(8, np.uint8), None)], out)
    assert set(out.tolist()) <= {0, 1}


@pytest.mark.parametrize("partitions", [2, 4])
def test_partitions_own_dictionaries_keep_the_plans_literals(partitions):
    # raw routing: every partition interns into its own dictionary, which starts as a copy of the
    # job's, so literals in the plan (WHERE, CASE) keep meaning the same strings; new strings made
    # by expressions (UPPER) are the partition's own
    rng = np.random.default_rng(5)
    n = 20_000
    sym = pa.array([f"s{i}" for i in rng.integers(0, 40, n)])
    batches = pa.table({"sym": sym, "x": rng.integers(0, 10, n)}).to_batches(max_chunksize=2_500)
    sql = ("SELECT sym, UPPER(sym) AS u, COUNT(*) AS n, "
           "SUM(CASE WHEN sym = 's7' THEN x ELSE 0 END) AS s7 "
           "FROM t WHERE sym <> 's3' GROUP BY sym")
    v1 = [tuple(r.values()) for r in vs.query(sql, {"t": batches}).to_pylist()]
    job = vs.Job(sql, {"t": batches}, partitions=partitions)
    job.run()
    assert job.exchange.raw
    dicts = {id(w.pipeline.strings) for w in job.exchange.parts}
    assert len(dicts) == partitions and id(job.engine.strings) not in dicts
    v2 = [tuple(r.values()) for r in job.result().to_pylist()]
    by1, by2 = collections.defaultdict(list), collections.defaultdict(list)
    for rows, by in ((v1, by1), (v2, by2)):
        for r in rows:
            by[r[0]].append(r)
    assert by1 == by2 and "s3" not in by2 and by2["s7"][-1][3] > 0


# -- the exchange's pieces: gathering a partition's numbers, merging EMIT FINAL rows -----------

def test_take_rows_gathers_every_item_size_and_refuses_rows_outside():
    from velostream._core.route import take_rows
    rng = np.random.default_rng(11)
    n = 20_000  # past the size from which the gather runs without the GIL
    arrays = [rng.normal(size=n), rng.integers(-9, 9, n), rng.random(n) < 0.3,
              rng.integers(0, 99, n).astype(np.int32), rng.integers(0, 99, n).astype(np.int16),
              np.array([f"s{i}" for i in range(n)], dtype=object)]
    for rows in (np.array([], np.int64), np.array([n - 1, 0, 5, 5], np.int64),
                 np.flatnonzero(rng.random(n) < 0.5).astype(np.int64)):
        for got, a in zip(take_rows(arrays, rows), arrays):
            assert got.dtype == a.dtype and got.tolist() == a[rows].tolist()
    for bad in ([-1], [n]):
        with pytest.raises(IndexError):
            take_rows(arrays[:1], np.array(bad, np.int64))


def _partition_outputs(rng, n_parts: int, n_ends: int) -> list:
    """Each partition's EMIT FINAL rows: ends ascending (runs of a few windows), tagged with
    their partition and position so that the merged order can be checked row by row."""
    from velostream.exec.columns import END_COL
    outs = []
    for p in range(n_parts):
        m = int(rng.integers(0, 40))
        ends = np.sort(rng.integers(0, n_ends, m)) * 60_000
        outs.append(pa.RecordBatch.from_arrays(
            [pa.array([f"p{p}"] * m, pa.string()), pa.array(np.arange(m)), pa.array(ends)],
            names=["who", "i", END_COL]))
    return outs


@pytest.mark.parametrize("n_ends", [1, 3, 200])  # one window; a few (slices); many (the sort)
def test_merge_by_end_is_a_stable_merge_in_window_end_order(n_ends):
    from velostream.exec.columns import END_COL
    from velostream.jobs.partition_threads import _merge_by
    rng = np.random.default_rng(n_ends)
    for _ in range(30):
        outs = _partition_outputs(rng, int(rng.integers(1, 5)), n_ends)
        whole = pa.Table.from_batches(outs)
        order = np.argsort(whole.column(END_COL).to_numpy(), kind="stable")
        want = whole.take(pa.array(order)).drop_columns([END_COL])
        merged = _merge_by(outs, END_COL)
        got = pa.Table.from_batches(merged, schema=want.schema) if merged else want.slice(0, 0)
        assert END_COL not in got.column_names
        assert got.to_pylist() == want.to_pylist()


def _job_rows(sql: str, batches: list, n: int, want: pa.Table):
    """A job of ``sql`` over ``batches`` at ``n`` partitions, and its rows, checked to be
    ``want``'s (as multisets)."""
    from reference import assert_rows_equal
    job = vs.Job(sql, {"t": batches}, partitions=n)
    job.run()
    got = job.result().to_arrow()
    assert got.num_rows == want.num_rows > 0
    assert_rows_equal(got.to_pylist(), want.to_pylist())
    return job, got


@pytest.mark.parametrize("sql", [
    "SELECT ks, COUNT(*) AS n, SUM(xi) AS si, MAX(xf) AS hi FROM t GROUP BY ks",
    "SELECT ks, ki, COUNT(*) AS n, AVG(xf) AS af FROM t GROUP BY ks, ki "
    "WINDOW TUMBLING (ts, INTERVAL '1' MINUTE)",
    "SELECT ks, ki, SUM(xi) AS si FROM t GROUP BY ks, ki WINDOW TUMBLING (ts, INTERVAL '1' MINUTE) "
    "EMIT CHANGES",
    "SELECT s, xi * 2 AS x2 FROM t WHERE xf > 0",
])
def test_small_steps_in_the_jobs_thread_and_large_ones_on_partition_threads_agree(sql):
    """Steps of at most INLINE_STEP_ROWS rows run in the job's thread on each partition's
    pipeline, larger ones on the partition threads: a stream mixing both (windows open across
    the switch, watermarks carried by either) gives the rows one partition gives."""
    from reference import assert_rows_equal, make_table
    from velostream.jobs import partition_threads
    table = make_table(12_000, seed=4)
    rb = table.combine_chunks().to_batches()[0]
    sizes = [1, 3, 2000, 7, 50, 3000, 1, 1024, 1025, 4000]
    assert max(sizes) > partition_threads.INLINE_STEP_ROWS >= 1024
    batches, off = [], 0
    for size in sizes:
        batches.append(rb.slice(off, size))
        off += size
    want = vs.query(sql, {"t": batches}, partitions=1).to_arrow()
    for n in (2, 4):
        job, got = _job_rows(sql, batches, n, want)
        if "GROUP BY" in sql:  # the large steps went to the threads
            assert all(w.started for w in job.exchange.threads)


@pytest.mark.parametrize("sql", [
    "SELECT ks, ki, COUNT(*) AS n, AVG(xf) AS af FROM t GROUP BY ks, ki "
    "WINDOW TUMBLING (ts, INTERVAL '1' MINUTE)",
    "SELECT ks, SUM(xi) AS si FROM t GROUP BY ks",
])
def test_more_partitions_than_cores_share_threads_and_keep_their_own_state(sql, monkeypatch):
    """A job of more partitions than cores runs them on one thread per core (a thread takes
    its partitions' steps in turn): each partition still owns its keys and its rows, the
    result is one partition's, at 3, 4 and 8 partitions on 1, 2 and 3 threads."""
    from velostream.jobs import partition_scan
    monkeypatch.setattr(partition_scan, "ENABLED", False)  # the hash exchange's steps
    from reference import make_table
    from velostream.jobs import partition_threads
    table = make_table(30_000, seed=12)
    batches = table.combine_chunks().to_batches(max_chunksize=4096)
    want = vs.query(sql, {"t": batches}, partitions=1).to_arrow()
    # steps of two batches: a windowed query is routed by window in runs of about a step, so
    # its 30,000 rows make several runs over the partitions
    monkeypatch.setattr(partition_threads, "STEP_ROWS", 8192)
    for cores, n in ((1, 3), (2, 4), (3, 8)):
        monkeypatch.setattr(os, "sched_getaffinity",
                            lambda pid, c=cores: set(range(c)))
        job, _ = _job_rows(sql, batches, n, want)
        threads = job.exchange.threads
        assert len(threads) == cores == partition_threads.thread_count(n)
        assert sorted(p.index for t in threads for p in t.parts) == list(range(n))
        assert all(t.started for t in threads)
        records = job.stats.partition_records
        assert len(records) == n and sum(records) == table.num_rows
        assert sum(1 for r in records if r) >= 2  # the keys are spread over the partitions
    assert partition_threads.thread_count(2) == 2  # never more threads than partitions
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert partition_threads.thread_count(2) == 2 and partition_threads.thread_count(5) == 5


def test_a_row_by_row_plan_splits_only_batches_larger_than_inline_rows():
    """A plain SELECT's batches up to INLINE_ROWS run whole in the job's thread; a larger one is
    cut into slices for the partition threads. Either way the rows and their order are one
    partition's."""
    from reference import make_table
    from velostream.jobs import partition_threads
    big = partition_threads.INLINE_ROWS + 1000
    rb = make_table(big + 7, seed=9).combine_chunks().to_batches()[0]
    batches = [rb.slice(0, 7), rb.slice(7, big)]
    sql = "SELECT seq, s, xi * 2 AS x2 FROM t WHERE xf > 0 OR xf IS NULL"
    want = vs.query(sql, {"t": batches}, partitions=1).to_arrow()
    job = vs.Job(sql, {"t": batches}, partitions=2)
    job.run()
    assert job.result().to_arrow().equals(want)
    assert all(w.started for w in job.exchange.threads)
    small = vs.Job(sql, {"t": batches[:1]}, partitions=2)
    small.run()
    first = small.result().to_arrow()
    assert first.equals(want.slice(0, first.num_rows))
    assert not any(w.started for w in small.exchange.threads)


@pytest.mark.parametrize("shape", ["list", "table"])
def test_vs_query_runs_a_row_by_row_query_over_small_batches_as_one_partition(shape, monkeypatch):
    """vs.query at several partitions of a plain SELECT over in-memory batches no larger than
    INLINE_ROWS (each of which the job would push through its own engine in its own thread)
    runs it as one partition: the same rows, dead letters and counts, the first batch's
    set-aside row (a uint64 above 2^63-1) set aside once; no job is made. A batch larger than
    INLINE_ROWS, a stateful plan or a stream of batches takes the job."""
    import warnings
    from velostream.jobs import coordinator
    rbs = [pa.record_batch({"u": pa.array([1, 2 ** 63 + 5, 3], pa.uint64()),
                            "x": pa.array([1.5, None, -2.0])}),
           pa.record_batch({"u": pa.array([7, 8], pa.uint64()), "x": pa.array([None, 4.0])})]
    data = rbs if shape == "list" else pa.Table.from_batches(rbs)
    sql = "SELECT u, x * 2 AS y FROM t WHERE x IS NOT NULL OR u > 7"
    made = []
    real_job = coordinator.Job

    class CountedJob(real_job):
        def __init__(self, *a, **k):
            made.append(1)
            super().__init__(*a, **k)
    monkeypatch.setattr(coordinator, "Job", CountedJob)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vs.DroppedRowsWarning)
        one = vs.query(sql, {"t": data}, partitions=1)
        for n in (2, 4):
            got = vs.query(sql, {"t": data}, partitions=n)
            assert got.to_arrow().equals(one.to_arrow())
            assert got.stats == one.stats and got.stats["failed_records"] == 1
            assert [(r, b.to_pylist()) for r, b in got.dead_letters] == \
                [(r, b.to_pylist()) for r, b in one.dead_letters]
            assert len(got.dead_letters) == 1
        assert made == []
        # a stateful plan takes the job
        agg = vs.query("SELECT u, COUNT(*) AS n FROM t GROUP BY u", {"t": data}, partitions=2)
        assert made == [1] and agg.stats == vs.query(
            "SELECT u, COUNT(*) AS n FROM t GROUP BY u", {"t": data}).stats
        # a stream of batches (read once) takes the job
        got = vs.query(sql, {"t": iter(rbs)}, partitions=2)
        assert made == [1, 1] and got.to_arrow().equals(one.to_arrow())


def _jittered(n: int, seed: int) -> pa.Table:
    """make_table's records with event times moved back up to 3 minutes at random: some are
    late for a 1-minute window with 30 s of allowed lateness, some not."""
    from reference import make_table
    table = make_table(n, seed=seed)
    rng = np.random.default_rng(seed)
    ts = table.column("ts").to_numpy() - np.where(rng.random(n) < 0.05,
                                                   rng.integers(0, 180_000, n), 0)
    return table.set_column(table.column_names.index("ts"), "ts", pa.array(ts))


@pytest.mark.parametrize("sql", [
    "SELECT ks, ki, _WINDOW_END AS we, COUNT(*) AS n, SUM(xi) AS si, AVG(xf) AS af FROM t "
    "GROUP BY ks, ki WINDOW TUMBLING (ts, INTERVAL '1' MINUTE) WITH ('allowed.lateness' = '30s')",
    "SELECT ks, SUM(xi) AS si, MAX(xf) AS hi FROM t GROUP BY ks "
    "WINDOW TUMBLING (ts, INTERVAL '1' MINUTE) EMIT CHANGES WITH ('allowed.lateness' = '30s')",
    "SELECT ks, COUNT(*) AS n, SUM(xi) AS si, MIN(xf) AS lo FROM t GROUP BY ks",
    "SELECT ks, xf, AVG(xf) OVER (ROWS WINDOW BUFFER 5 ROWS PARTITION BY ks ORDER BY ts) AS m FROM t",
])
@pytest.mark.parametrize("step_rows", [1, 3000, 1 << 30])
def test_batches_held_into_larger_steps_give_one_partitions_rows(sql, step_rows, monkeypatch):
    """Batches read back to back are sent to the partitions as one step of about STEP_ROWS rows
    (partition_threads.HashExchange._release): with every batch its own step, a few per step,
    or all of them in one, the rows, their order per key and window end, and the late-record
    count are those of one partition (the rows' watermark was stamped as they were read)."""
    from velostream.jobs import partition_scan
    monkeypatch.setattr(partition_scan, "ENABLED", False)  # the hash exchange's steps
    from reference import assert_rows_equal, rows_per_key
    from velostream.jobs import partition_threads
    monkeypatch.setattr(partition_threads, "STEP_ROWS", step_rows)
    table = _jittered(30_000, seed=11)
    rb = table.combine_chunks().to_batches()[0]
    rng = np.random.default_rng(step_rows % 97)
    batches, off = [], 0
    while off < rb.num_rows:  # above INLINE_STEP_ROWS, so that every batch is routed
        size = int(rng.integers(partition_threads.INLINE_STEP_ROWS + 1, 4000))
        batches.append(rb.slice(off, size))
        off += size
    one = vs.Job(sql, {"t": batches}, partitions=1)
    one.run()
    want = one.result().to_arrow()
    for n in (2, 4):
        job, got = _job_rows(sql, batches, n, want)
        assert job.stats.records_late == one.stats.records_late
        keys = ["ks", "ki"] if "ki" in got.column_names else ["ks"]
        for key, rows in rows_per_key(got, keys).items():  # each key's rows in its input's order
            assert_rows_equal(rows, rows_per_key(want, keys)[key], ordered=True)
        if "we" in got.column_names:  # EMIT FINAL: in window-end order
            ends = got.column("we").to_numpy()
            assert (np.diff(ends) >= 0).all()
        steps = job.exchange.seq
        if step_rows == 1:
            assert steps >= len(batches)
        elif step_rows > rb.num_rows:
            assert steps <= 2  # everything in one step, then the end of input
        else:
            assert steps < len(batches)
    if "allowed.lateness" in sql and "EMIT CHANGES" not in sql:
        assert one.stats.records_late > 0  # the case the test is about


@pytest.mark.parametrize("sql", [
    "SELECT ks, COUNT(*) AS n, SUM(xi) AS si FROM t GROUP BY ks LIMIT 7",
    "SELECT ks, ki, COUNT(*) AS n FROM t GROUP BY ks, ki WINDOW TUMBLING (ts, INTERVAL '1' MINUTE) "
    "LIMIT 9",
    "SELECT ks, xf, AVG(xf) OVER (ROWS WINDOW BUFFER 3 ROWS PARTITION BY ks ORDER BY ts) AS m "
    "FROM t LIMIT 11",
    "SELECT DISTINCT ks, ki FROM t LIMIT 5",
    "WITH a AS (SELECT ks, xi FROM t WHERE xi > 0) SELECT ks, SUM(xi) AS s FROM a GROUP BY ks LIMIT 6",
])
def test_limit_keeps_the_rows_one_partition_emits_first(sql):
    """LIMIT n: the first n rows in emission order, the same rows in the same order at every
    partition count (docs/SQL.md §5). Rows gathered from hash partitions come partition by
    partition, so a LIMIT over per-key state runs that state in one partition."""
    from reference import make_table
    rb = make_table(6000, seed=21).combine_chunks().to_batches()[0]
    batches = [rb.slice(off, 1500) for off in range(0, 6000, 1500)]
    want = vs.query(sql, {"t": batches}, partitions=1).to_pylist()
    assert len(want) == int(sql.rsplit("LIMIT", 1)[1])
    for n in (2, 4):
        assert vs.query(sql, {"t": batches}, partitions=n).to_pylist() == want
    assert "LIMIT: its first rows" in vs.explain(sql, {"t": batches}, partitions=2)


@pytest.mark.parametrize("hold_s", [0.0, 3600.0])
def test_batches_are_held_at_most_step_hold_s(hold_s, monkeypatch):
    """A stream read without pause (a Kafka backlog) is held into larger steps for at most
    STEP_HOLD_S after its first batch arrived: with none, every batch is its own step even
    below STEP_ROWS; with a long one, batches gather up to STEP_ROWS rows."""
    from velostream.jobs import partition_scan
    monkeypatch.setattr(partition_scan, "ENABLED", False)  # the hash exchange's steps
    from velostream.jobs import partition_threads
    monkeypatch.setattr(partition_threads, "STEP_ROWS", 1 << 30)
    monkeypatch.setattr(partition_threads, "STEP_HOLD_S", hold_s)
    rb = _jittered(12_000, seed=5).combine_chunks().to_batches()[0]
    batches = [rb.slice(off, 2000) for off in range(0, 12_000, 2000)]
    sql = "SELECT ks, COUNT(*) AS n FROM t GROUP BY ks"
    want = vs.query(sql, {"t": batches}, partitions=1).to_arrow()
    job, _ = _job_rows(sql, batches, 2, want)
    steps = job.exchange.seq  # steps sent, the end of input's included
    assert steps >= len(batches) if hold_s == 0.0 else steps <= 2


@pytest.mark.parametrize("seed", range(4))
def test_rows_of_pieces_equals_each_piece_gathered_then_concatenated(seed):
    """A partition's rows of a step's batches, gathered straight into one batch
    (router.rows_of_pieces), equal each batch's rows (Routed.rows_for) concatenated: text
    interned into the partition's own dictionary, numbers with and without NULLs in some
    pieces, a column sharing its memory with another, and pieces whose columns differ."""
    from velostream.batch import Batch, StringDict, concat_batches
    from velostream.exec.router import Routed, rows_of_pieces
    rng = np.random.default_rng(seed)

    def piece(n: int, extra: bool) -> Routed:
        words = pa.array([None if rng.random() < 0.1 else f"k{rng.integers(0, 30)}"
                          for _ in range(n)])
        x = pa.array(rng.integers(-5, 5, n), mask=rng.random(n) < (0.2 if n % 2 else 0.0))
        cols = {"s": words, "x": x, "f": pa.array(rng.normal(size=n))}
        if extra:
            cols["e"] = pa.array(np.arange(n))
        b = Batch.from_arrow(pa.record_batch(cols), StringDict())
        b.columns["x"].values
        b.columns["f"].values
        b.columns["t"] = b.columns["x"]  # (event time is often an input column as well)
        return Routed(b, rng.integers(0, 3, n).astype(np.int8))

    def rows(b: Batch) -> list:
        return [tuple(None if c.valid is not None and not c.valid[i] else
                      (c.strings.values_of([c.values[i]])[0] if c.type.kind == "STRING"
                       else c.values[i].item()) for c in b.columns.values())
                for i in range(b.length)]

    for extra in (False, True):
        pieces = [piece(int(rng.integers(0, 3000)), extra and i == 1) for i in range(4)]
        for p in range(3):
            got = rows_of_pieces(pieces, p, StringDict())
            own = StringDict()  # (the partition's one dictionary)
            want = concat_batches([r.rows_for(p, own) for r in pieces])
            assert list(got.columns) == list(want.columns) and got.length == want.length
            assert rows(got) == rows(want)
