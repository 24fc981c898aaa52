"""V2's scan split (jobs/partition_scan.py, strategy ``scan``): a compiled GROUP BY emitting
changes, over few groups, runs each step as contiguous pieces; piece 0 through the job's engine in
the job's thread, the others on the partitions' threads in two passes (their groups and state from
an empty state; then every row emitted from the state before the piece).

Checked here: the rows one partition emits, in the same order (exactly: the integers, MIN/MAX and
these AVGs bit for bit), and DuckDB's running window aggregates, at 2, 3 and 4 partitions, with
NULL keys and values, int64 and float edge values, text, integer and float keys, several batch
splits and step sizes; a BIGINT SUM leaving int64 fails as at one partition, and one that leaves
int64 only within a piece does not; which jobs scan (few groups) and which route by key."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import OutOfRangeError
from velostream.jobs import partition_scan

from reference import assert_rows_equal, duck, make_table, rows_per_key, split_batches

pytestmark = pytest.mark.timeout(180)

AGGS = "COUNT(*) AS n, COUNT(xf) AS c, SUM(xi) AS s, AVG(xi) AS ai, AVG(xf) AS af, " \
       "MIN(xf) AS lo, MAX(xi) AS hi, SUM(xf) AS sf"


@pytest.fixture(autouse=True)
def small_steps(monkeypatch):
    """Steps of about 1,000 rows and batches of more than 16 rows through the threads, so that a
    few thousand rows make many steps of every piece."""
    monkeypatch.setattr(partition_scan, "STEP_ROWS", 1000)
    monkeypatch.setattr(partition_scan, "INLINE_ROWS", 16)
    monkeypatch.setattr(partition_scan, "SCAN_ROWS_PER_GROUP", 8)


def _groups(rb: pa.RecordBatch, keys: list) -> int:
    return pa.Table.from_batches([rb.select(keys)]).group_by(keys).aggregate([]).num_rows


def _run(sql: str, batches: list, n: int):
    job = vs.Job(sql, {"t": batches}, partitions=n)
    job.run()
    return job.result().to_arrow(), job


def _same_rows(got: pa.Table, want: pa.Table) -> None:
    """The same rows in the same order: integers, text and MIN/MAX exactly, floats to 1e-9."""
    assert got.schema == want.schema
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        g, w = got[name].to_pylist(), want[name].to_pylist()
        if pa.types.is_floating(want.schema.field(name).type) and name not in ("lo", "hi"):
            assert_rows_equal([(x,) for x in g], [(x,) for x in w], ordered=True, what=name)
        else:
            assert g == w, name


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("sizes", [[300], [1, 700, 45, 2500], [5000]])
def test_scan_split_gives_one_partitions_rows(n, sizes):
    table = make_table(6000, seed=40 + n)
    batches = split_batches(table, sizes, seed=n)
    scans = []
    for keys in ("ks", "ki", "ks, ki"):
        sql = f"SELECT {keys}, {AGGS} FROM t GROUP BY {keys}"
        one, _ = _run(sql, batches, 1)
        got, job = _run(sql, batches, n)
        first = batches[0]
        few = 8 * _groups(first, [k.strip() for k in keys.split(",")]) <= first.num_rows
        assert job.stats.strategy == ("scan" if few else "hash"), (keys, sizes)
        scans.append(few)
        if few:
            _same_rows(got, one)
        else:  # routed by key: each key's rows in order
            _same_per_key(got, one, [k.strip() for k in keys.split(",")])
    assert any(scans) or batches[0].num_rows < 100


def _same_per_key(got: pa.Table, want: pa.Table, keys: list) -> None:
    g, w = rows_per_key(got, keys), rows_per_key(want, keys)
    assert g.keys() == w.keys()
    for k in w:
        assert_rows_equal(g[k], w[k], ordered=True, what=str(k))


def test_scan_split_matches_duckdb_running_aggregates():
    table = make_table(5000, seed=7).append_column("rn", pa.array(np.arange(5000)))
    sql = f"SELECT ks, {AGGS} FROM t GROUP BY ks"
    got, job = _run(sql, split_batches(table, [900, 33, 1200], seed=3), 2)
    assert job.stats.strategy == "scan"
    over = "OVER (PARTITION BY ks ORDER BY rn ROWS UNBOUNDED PRECEDING)"
    want = duck(f"SELECT ks, COUNT(*) {over}, COUNT(xf) {over}, SUM(xi) {over}, AVG(xi) {over}, "
                f"AVG(xf) {over}, MIN(xf) {over}, MAX(xi) {over}, SUM(xf) {over} "
                "FROM t ORDER BY rn", t=table)
    assert_rows_equal([tuple(r.values()) for r in got.to_pylist()], want, ordered=True)


def test_edge_values_and_float_keys():
    """int64 extremes for MIN/MAX, NaN, infinities and -0.0 in floats and float keys, NULLs
    everywhere: the rows one partition gives."""
    rng = np.random.default_rng(5)
    m = 8000
    kf = rng.choice(np.array([0.0, -0.0, np.nan, 1.5, -np.inf]), m)
    xi = rng.choice(np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, -1, 7]), m)
    xf = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e300, -1e300, 2.5]), m)
    table = pa.table({
        "kf": pa.array(kf, mask=rng.random(m) < 0.1),
        "ks": pa.array(rng.choice(np.array(["a", "é", "", "zz"]), m).tolist(),
                       mask=rng.random(m) < 0.1),
        "xi": pa.array(xi, mask=rng.random(m) < 0.2),
        "xf": pa.array(xf, mask=rng.random(m) < 0.2)})
    sql = ("SELECT kf, ks, COUNT(*) AS n, MIN(xi) AS lo, MAX(xi) AS hi, MIN(xf) AS flo, "
           "MAX(xf) AS fhi, AVG(xi) AS ai, COUNT(xf) AS c FROM t GROUP BY kf, ks")
    batches = split_batches(table, [700, 1300], seed=1)
    one, _ = _run(sql, batches, 1)
    for n in (2, 4):
        got, job = _run(sql, batches, n)
        assert job.stats.strategy == "scan"
        for name in one.column_names:  # NaN == NaN here: compare the bits of floats
            g, w = got[name], one[name]
            if pa.types.is_floating(g.type):
                assert np.array_equal(g.to_numpy(zero_copy_only=False),
                                      w.to_numpy(zero_copy_only=False), equal_nan=True), name
            else:
                assert g.to_pylist() == w.to_pylist(), name


def test_bigint_sum_leaving_int64_only_within_a_piece_is_not_an_error(monkeypatch):
    """The first pass sums a piece from zero: a piece's own sum may leave int64 while every
    running total stays inside; the rows are one partition's. One step of 10,000 rows: its
    second piece (the last 41 %) holds only the positive half, 1.3e19 in all."""
    monkeypatch.setattr(partition_scan, "STEP_ROWS", 10_000)
    x = np.concatenate([np.full(5000, -((1 << 62) + (1 << 61)) // 5000),
                        np.full(5000, 3_200_000_000_000_000)])
    table = pa.table({"k": pa.array(["a"] * 10_000), "x": pa.array(x, pa.int64())})
    sql = "SELECT k, SUM(x) AS s, AVG(x) AS a FROM t GROUP BY k"
    batches = split_batches(table, [2000])
    assert int(x[5900:].sum(dtype=object)) > np.iinfo(np.int64).max
    one, _ = _run(sql, batches, 1)
    got, job = _run(sql, batches, 2)
    assert job.stats.strategy == "scan"
    _same_rows(got, one)


def test_bigint_sum_leaving_int64_fails_as_at_one_partition():
    big = (1 << 63) // 4000 + 1
    table = pa.table({"k": pa.array(["a", "b"] * 4000), "x": pa.array(np.full(8000, big))})
    sql = "SELECT k, SUM(x) AS s FROM t GROUP BY k"
    for n in (1, 2):
        with pytest.raises(OutOfRangeError, match="Overflow in SUM"):
            vs.query(sql, {"t": split_batches(table, [600])}, partitions=n)


def test_many_groups_route_by_key_and_explain_says_scan():
    table = make_table(4000, seed=9).append_column("u", pa.array(np.arange(4000)))
    sql = "SELECT u, COUNT(*) AS n, SUM(xi) AS s FROM t GROUP BY u"
    batches = split_batches(table, [800])
    got, job = _run(sql, batches, 2)
    assert job.stats.strategy == "hash"
    _same_per_key(got, _run(sql, batches, 1)[0], ["u"])
    assert "or scan" in vs.explain(f"SELECT ks, {AGGS} FROM t GROUP BY ks", {"t": table})
    assert "or scan" not in vs.explain(
        "SELECT ks, SUM(xi + 1) AS s FROM t GROUP BY ks", {"t": table})


def test_partition_records_and_new_strings_in_later_pieces():
    """Keys first met by a partition's piece (new text in its own dictionary) reach the job's
    state by their text; every record is counted once, by the partition that took it."""
    rng = np.random.default_rng(2)
    m = 6000
    words = np.array([f"w{i}" for i in range(40)])
    keys = np.where(np.arange(m) < 2000, words[rng.integers(0, 3, m)], words[rng.integers(0, 40, m)])
    table = pa.table({"ks": pa.array(keys.tolist()), "xi": pa.array(rng.integers(0, 9, m))})
    sql = "SELECT ks, COUNT(*) AS n, SUM(xi) AS s FROM t GROUP BY ks"
    batches = split_batches(table, [1000])
    one, _ = _run(sql, batches, 1)
    for n in (2, 3):
        got, job = _run(sql, batches, n)
        assert job.stats.strategy == "scan"
        _same_rows(got, one)
        records = job.stats.partition_records
        assert len(records) == n and sum(records) == m and records[1] > 0


def test_default_step_size_at_two_partitions(monkeypatch):
    """The default steps (262,144 rows) and inline size, on 300,000 trades."""
    monkeypatch.setattr(partition_scan, "STEP_ROWS", 1 << 18)
    monkeypatch.setattr(partition_scan, "INLINE_ROWS", 1 << 14)
    from velostream.datagen import SCENARIOS, scenario_input
    src, batches = scenario_input("S2", 300_000)
    sql = SCENARIOS["S2"][1]
    one = vs.query(sql, {src: batches}).to_arrow()
    job = vs.Job(sql, {src: batches}, partitions=2)
    job.run()
    assert job.stats.strategy == "scan"
    _same_rows(job.result().to_arrow(), one)


def test_more_pieces_than_rows_in_a_step(monkeypatch):
    """Four threads (as on a machine of four cores) and steps of two or three rows: pieces
    without rows stay in the job's thread; every step is delivered, in order."""
    monkeypatch.setattr(partition_scan, "thread_count", lambda n: min(n, 4))
    monkeypatch.setattr(partition_scan, "STEP_ROWS", 1)
    monkeypatch.setattr(partition_scan, "INLINE_ROWS", 1)
    table = make_table(400, seed=11)
    batches = [table.slice(0, 100).to_batches()[0]] + split_batches(table.slice(100), [2, 3])
    sql = f"SELECT ks, {AGGS} FROM t GROUP BY ks"
    one, _ = _run(sql, batches, 1)
    got, job = _run(sql, batches, 4)
    assert job.stats.strategy == "scan"
    _same_rows(got, one)
    assert sum(job.stats.partition_records) == 400


_FUZZ_AGGS = ["COUNT(*)", "COUNT(xf)", "COUNT(s)", "SUM(xi)", "SUM(xf)", "AVG(xi)", "AVG(xf)",
              "MIN(xi)", "MAX(xi)", "MIN(xf)", "MAX(xf)"]


def fuzz_case(seed: int) -> tuple:
    """A generated compiled GROUP BY (keys, aggregates, their order in the select list), its
    input (batch sizes, NULL share) and the scan split's sizes and threads."""
    rng = np.random.default_rng(seed)
    keys = list(rng.choice(["ks", "ki", "kf"], int(rng.integers(1, 4)), replace=False))
    aggs = [f"{a} AS a{i}" for i, a in enumerate(rng.choice(_FUZZ_AGGS, int(rng.integers(1, 7))))]
    items = keys + aggs
    rng.shuffle(items)
    table = make_table(int(rng.integers(300, 5000)), seed=seed, nkeys=int(rng.integers(1, 12)),
                       null_frac=float(rng.choice([0.0, 0.1, 0.5])))
    table = table.append_column("kf", pa.compute.divide(pa.compute.cast(table["ki"], pa.float64()),
                                                        4.0))
    sizes = [int(x) for x in rng.choice([1, 7, 64, 300, 1000, 4000], int(rng.integers(1, 4)))]
    knobs = dict(step=int(rng.choice([1, 50, 700, 5000])), inline=int(rng.choice([1, 16, 200])),
                 threads=int(rng.integers(2, 5)), partitions=int(rng.integers(2, 5)))
    sql = f"SELECT {', '.join(items)} FROM t GROUP BY {', '.join(keys)}"
    return sql, table, sizes, knobs


def check_fuzz_case(seed: int, monkeypatch) -> bool:
    """One generated case: one partition's rows in order (or per key, routed by key), and
    DuckDB's last row per group. Whether it scanned."""
    sql, table, sizes, knobs = fuzz_case(seed)
    monkeypatch.setattr(partition_scan, "STEP_ROWS", knobs["step"])
    monkeypatch.setattr(partition_scan, "INLINE_ROWS", knobs["inline"])
    monkeypatch.setattr(partition_scan, "SCAN_ROWS_PER_GROUP", 1)
    monkeypatch.setattr(partition_scan, "thread_count", lambda n: min(n, knobs["threads"]))
    batches = split_batches(table, sizes, seed=seed)
    one, _ = _run(sql, batches, 1)
    got, job = _run(sql, batches, knobs["partitions"])
    keys = sql.split("GROUP BY ")[1].split(", ")
    if job.stats.strategy == "scan":
        _same_rows(got, one)
    else:
        _same_per_key(got, one, keys)
    cols = ", ".join(one.column_names)
    want = duck(f"SELECT {sql[len('SELECT '):]}", t=table)
    last = {}
    for row in got.select(one.column_names).to_pylist():
        last[tuple(row[k] for k in keys)] = tuple(row.values())
    assert_rows_equal(list(last.values()), want, what=f"seed {seed}: {sql} ({cols})")
    return job.stats.strategy == "scan"


def test_generated_group_bys_give_one_partitions_rows(monkeypatch):
    """40 generated compiled GROUP BYs over generated inputs, batch splits, step sizes and 2-4
    threads: most scan; every one gives one partition's rows and DuckDB's groups."""
    scans = sum(check_fuzz_case(seed, monkeypatch) for seed in range(1000, 1040))
    assert scans >= 20
