"""The compiled fast path of ``Engine.push`` (``velostream/_core/group_step.pyx``,
``velostream/exec/push_fast.py``) against the general path and DuckDB.

A qualifying plan (plain streaming GROUP BY, see push_fast) pushed in batches of 1, 3, 100 and mixed
sizes, alone or interleaved with batches that take the general path (over the step's row limit, or
of other Arrow types), must emit exactly the rows the general path emits for the whole input (same
values, types, NULLs, order) and, where the semantics match, DuckDB's running aggregates (an EMIT
CHANGES row is its group's aggregate after that record).
"""
from __future__ import annotations

import contextlib

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from reference import assert_rows_equal, duck, make_table
from velostream.exec import push_fast

N = 1200
TABLE = make_table(N, seed=21)
# a third string column (short codes with NULLs, from ki) for three-string-key plans
_k3 = pa.array([None if v is None else f"g{v % 3}" for v in TABLE.column("ki").to_pylist()])
TABLE = TABLE.append_column("k3", _k3)
WHOLE = TABLE.combine_chunks().to_batches()[0]  # one batch; slices of it carry array offsets

QUERIES = {
    "string_key": "SELECT ks, COUNT(*) AS n, COUNT(xi) AS c, SUM(xi) AS si, SUM(xf) AS sf, "
                  "AVG(xi) AS ai, AVG(xf) AS af, MIN(xf) AS lo, MAX(xi) AS hi FROM t GROUP BY ks",
    "int_key": "SELECT ki, COUNT(*) AS n, SUM(xf) AS sf, MIN(xi) AS lo, MAX(xf) AS hi, "
               "COUNT(xf) AS c FROM t GROUP BY ki",
    "two_keys": "SELECT ks, s, COUNT(xf) AS c, AVG(xf) AS a, SUM(xi) AS si FROM t GROUP BY ks, s",
    "three_string_keys": "SELECT k3, s, ks, COUNT(*) AS n, MIN(xi) AS lo FROM t "
                         "GROUP BY ks, s, k3",
    "string_and_int_keys": "SELECT ki, ks, COUNT(*) AS n, MAX(xf) AS hi, SUM(xi) AS si FROM t "
                           "GROUP BY ki, ks",
    "outputs_reordered": "SELECT MAX(xf) AS hi, ks, COUNT(*) AS a, COUNT(*) AS b FROM t GROUP BY ks",
    "count_of_strings": "SELECT ki, COUNT(s) AS c, COUNT(*) AS n FROM t GROUP BY ki",
    "global": "SELECT COUNT(*) AS n, SUM(xi) AS si, MIN(xf) AS lo, AVG(xi) AS ai FROM t",
}

# DuckDB twins: the same columns as running aggregates over each group, in input order
_W = "OVER (PARTITION BY {p} ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
DUCK = {  # name: (select list and FROM, PARTITION BY)
    "string_key": ("SELECT ks, count(*) {w}, count(xi) {w}, sum(xi) {w}, sum(xf) {w}, "
                   "avg(xi) {w}, avg(xf) {w}, min(xf) {w}, max(xi) {w} FROM t", "ks"),
    "int_key": ("SELECT ki, count(*) {w}, sum(xf) {w}, min(xi) {w}, max(xf) {w}, count(xf) {w} "
                "FROM t", "ki"),
    "two_keys": ("SELECT ks, s, count(xf) {w}, avg(xf) {w}, sum(xi) {w} FROM t", "ks, s"),
    "three_string_keys": ("SELECT k3, s, ks, count(*) {w}, min(xi) {w} FROM t", "ks, s, k3"),
    "string_and_int_keys": ("SELECT ki, ks, count(*) {w}, max(xf) {w}, sum(xi) {w} FROM t",
                            "ki, ks"),
    "count_of_strings": ("SELECT ki, count(s) {w}, count(*) {w} FROM t", "ki"),
}


def _duck_sql(name: str) -> str:
    sql, part = DUCK[name]
    return sql.format(w=_W.format(p=part)) + " ORDER BY seq"


@contextlib.contextmanager
def fast_path(enabled: bool):
    before = push_fast.ENABLED
    push_fast.ENABLED = enabled
    try:
        yield
    finally:
        push_fast.ENABLED = before


def general(sql: str, data=WHOLE) -> pa.Table:
    """The rows of the whole input through the general path only."""
    with fast_path(False):
        eng = vs.Engine(sql)
        r = eng.push("t", data)
        assert not eng.fast_path and eng.fast_batches == 0
    return r.to_arrow()


def slices(sizes, rb: pa.RecordBatch = WHOLE, seed: int = 0) -> list[pa.RecordBatch]:
    """``rb`` cut into consecutive slices: a fixed size, or sizes drawn from a list."""
    rng = np.random.default_rng(seed)
    out, off = [], 0
    while off < rb.num_rows:
        size = sizes if isinstance(sizes, int) else int(rng.choice(sizes))
        out.append(rb.slice(off, size))
        off += size
    return out


def push_all(sql: str, batches, max_rows: int | None = None):
    """(rows as one table, engine) pushing ``batches`` one by one with the fast path on."""
    with fast_path(True):
        eng = vs.Engine(sql)
        # bind on the first batch, then set the step's row limit for the rest
        parts = [eng.push("t", batches[0])]
        assert eng.fast_path, push_fast.why_not(eng.plan, eng.pipeline)
        if max_rows is not None:
            eng._fast.max_rows = max_rows
        parts += [eng.push("t", b) for b in batches[1:]]
    tables = [p.to_arrow() for p in parts]
    return pa.concat_tables(tables), eng


SPLITS = {"1": 1, "3": 3, "100": 100, "mixed": [1, 2, 3, 5, 17, 64, 100, 333]}


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("name", list(QUERIES))
def test_fast_path_equals_general_path(name, split):
    sql = QUERIES[name]
    batches = slices(SPLITS[split], seed=len(name))
    want = general(sql)
    got, eng = push_all(sql, batches)
    assert got.schema == want.schema == eng.out_schema
    assert got.equals(want), f"{name}: the fast path's rows differ from the general path's"
    assert eng.fast_batches == len(batches)  # every batch took the compiled step
    assert eng.stats["records_in"] == eng.stats["records_out"] == N
    assert eng.stats["batches"] == len(batches)


@pytest.mark.parametrize("name", list(DUCK))
def test_fast_path_equals_duckdb_running_aggregates(name):
    got, eng = push_all(QUERIES[name], slices([1, 3, 100, 7], seed=3))
    assert eng.fast_batches > 0
    expected = duck(_duck_sql(name), t=TABLE)
    assert_rows_equal(got.to_pylist(), expected, ordered=True, what=name)


def test_global_aggregate_equals_duckdb():
    got, _ = push_all(QUERIES["global"], slices(3))
    w = "OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    expected = duck(f"SELECT count(*) {w}, sum(xi) {w}, min(xf) {w}, avg(xi) {w} FROM t "
                    "ORDER BY seq", t=TABLE)
    assert_rows_equal(got.to_pylist(), expected, ordered=True)


@pytest.mark.parametrize("name", ["string_key", "two_keys", "string_and_int_keys", "global"])
def test_fast_and_general_batches_interleaved(name):
    """Batches of 1-3 rows take the step, larger ones (over its row limit) the general path, on
    the same state."""
    sql = QUERIES[name]
    batches = slices([1, 2, 3, 50, 200], seed=5)
    got, eng = push_all(sql, batches, max_rows=3)
    small = sum(1 for b in batches[1:] if b.num_rows <= 3) + 1
    assert 0 < eng.fast_batches == small < len(batches)
    assert got.equals(general(sql))


def test_batches_of_other_arrow_types_are_bound_to_the_first_batch_types():
    """int32 values and dictionary-encoded keys in later batches are cast to the types the first
    batch fixed (velostream.binding), so every batch stays compiled, and the rows are the same."""
    sql = QUERIES["string_key"]
    batches = []
    for i, b in enumerate(slices([1, 4, 40], seed=9)):
        if i % 3 == 1:
            j = b.schema.get_field_index("xi")
            b = b.set_column(j, "xi", b.column(j).cast(pa.int32()))
        elif i % 3 == 2:
            j = b.schema.get_field_index("ks")
            b = b.set_column(j, "ks", b.column(j).dictionary_encode())
        batches.append(b)
    got, eng = push_all(sql, batches)
    assert eng.fast_batches == len(batches)
    assert got.equals(general(sql))


def test_null_and_signed_zero_and_nan_float_keys():
    """FLOAT64 keys: -0.0 and 0.0 are one group, every NaN one group, NULL its own group."""
    keys = [0.0, -0.0, float("nan"), None, 1.5, float("nan"), None, -0.0, 1.5]
    vals = [1, 2, 3, 4, 5, None, 7, 8, 9]
    rb = pa.record_batch({"seq": pa.array(range(len(keys)), pa.int64()),
                          "k": pa.array(keys, pa.float64()), "v": pa.array(vals, pa.int64())})
    sql = "SELECT k, COUNT(*) AS n, SUM(v) AS s, COUNT(v) AS c FROM t GROUP BY k"
    want = general(sql, rb)
    def rows(t):  # NaN != NaN for Table.equals: compare with NaN spelled out
        return [tuple("NaN" if v != v else v for v in r.values()) for r in t.to_pylist()]

    for split in (1, 2, 4):
        got, eng = push_all(sql, slices(split, rb))
        assert eng.fast_batches == len(slices(split, rb))
        assert got.schema == want.schema and rows(got) == rows(want)
    n = got.column("n").to_pylist()
    assert n == [1, 2, 1, 1, 1, 2, 2, 3, 2]
    assert got.column("s").to_pylist() == [1, 3, 3, 4, 5, 3, 11, 11, 14]


def test_all_null_values_give_null_aggregates():
    rb = pa.record_batch({"k": pa.array(["a", "a", "b", None], pa.string()),
                          "x": pa.array([None, None, 2.0, None], pa.float64()),
                          "i": pa.array([None, 5, None, None], pa.int64())})
    sql = ("SELECT k, COUNT(*) AS n, COUNT(x) AS c, SUM(x) AS s, AVG(x) AS a, MIN(i) AS lo, "
           "MAX(x) AS hi, SUM(i) AS si FROM t GROUP BY k")
    got, eng = push_all(sql, slices(1, rb))
    assert eng.fast_batches == 4
    assert got.equals(general(sql, rb))
    assert got.to_pylist() == [
        {"k": "a", "n": 1, "c": 0, "s": None, "a": None, "lo": None, "hi": None, "si": None},
        {"k": "a", "n": 2, "c": 0, "s": None, "a": None, "lo": 5, "hi": None, "si": 5},
        {"k": "b", "n": 1, "c": 1, "s": 2.0, "a": 2.0, "lo": None, "hi": 2.0, "si": None},
        {"k": None, "n": 1, "c": 0, "s": None, "a": None, "lo": None, "hi": None, "si": None},
    ]


def test_bigint_sum_overflow_raises_as_in_the_general_path():
    big = np.iinfo(np.int64).max
    rb = pa.record_batch({"k": pa.array(["a", "a"]), "v": pa.array([big, 1], pa.int64())})
    sql = "SELECT k, SUM(v) AS s FROM t GROUP BY k"
    for enabled in (True, False):
        with fast_path(enabled):
            eng = vs.Engine(sql)
            with pytest.raises(OverflowError):
                eng.push("t", rb)
            assert eng.fast_path == enabled


def test_snapshot_and_restore_between_fast_pushes():
    sql = QUERIES["two_keys"]
    batches = slices([1, 5, 30], seed=2)
    half = len(batches) // 2
    with fast_path(True):
        a = vs.Engine(sql)
        first = [a.push("t", b) for b in batches[:half]]
        b = vs.Engine(sql)
        b.restore(a.snapshot())
        second = [b.push("t", x) for x in batches[half:]]
        assert a.fast_batches == half and b.fast_batches == len(batches) - half
    got = pa.concat_tables([r.to_arrow() for r in first + second])
    assert got.equals(general(sql))


def test_state_is_shared_with_the_general_path_objects():
    """The step updates the pipeline's own group table and aggregates: flushing or snapshotting
    through the general machinery sees the fast path's groups."""
    sql = "SELECT ks, COUNT(*) AS n FROM t GROUP BY ks"
    with fast_path(True):
        eng = vs.Engine(sql)
        for b in slices(2):
            eng.push("t", b)
        assert eng.fast_batches == N // 2
    n_groups = len(set(TABLE.column("ks").to_pylist()))
    assert len(eng.pipeline.stateful.table) == n_groups
    with fast_path(False):
        ref = vs.Engine(sql)
        ref.push("t", WHOLE)
    assert eng.pipeline.snapshot().equals(ref.pipeline.snapshot(), check_metadata=True)


@pytest.mark.parametrize("sql,why", [
    ("SELECT ks, COUNT(*) AS n FROM t WHERE xi > 0 GROUP BY ks", "WHERE"),
    ("SELECT ks, COUNT(*) AS n FROM t GROUP BY ks HAVING COUNT(*) > 2", "HAVING"),
    ("SELECT ks, COUNT(*) + 1 AS n FROM t GROUP BY ks", "expression"),
    ("SELECT UPPER(ks) AS u, COUNT(*) AS n FROM t GROUP BY UPPER(ks)", "expression"),
    ("SELECT ks, SUM(xi * 2) AS s FROM t GROUP BY ks", "expression"),
    ("SELECT ks, STDDEV(xf) AS sd FROM t GROUP BY ks", "STDDEV"),
    ("SELECT ks, COUNT(*) AS n FROM t GROUP BY ks EMIT FINAL", "EMIT FINAL"),
    ("SELECT ks, COUNT(*) AS n FROM t GROUP BY ks WINDOW TUMBLING(ts, 10s)", "WINDOW"),
    ("SELECT ks, COUNT(*) AS n FROM t GROUP BY ks LIMIT 5", "LIMIT"),
    ("SELECT ts, COUNT(*) AS n FROM t GROUP BY ts", None),
    ("SELECT ks, xf FROM t WHERE xf > 0", "project"),
])
def test_non_qualifying_plans_still_work_through_push(sql, why):
    batches = slices([1, 7, 50], seed=4)
    with fast_path(True):
        eng = vs.Engine(sql)
        got = [eng.push("t", b) for b in batches]
        got.append(eng.flush())
    rows = pa.concat_tables([r.to_arrow() for r in got])
    if why is None:  # qualifies (an INT64 key): still compare with the general path below
        assert eng.fast_path and eng.fast_batches == len(batches)
    else:
        assert not eng.fast_path and eng.fast_batches == 0
        assert why in push_fast.why_not(eng.plan, eng.pipeline)
    with fast_path(False):
        ref = vs.Engine(sql)
        want = [ref.push("t", b) for b in batches]
        want.append(ref.flush())
    assert rows.equals(pa.concat_tables([r.to_arrow() for r in want]))


def test_where_plan_through_push_matches_duckdb():
    sql = "SELECT ks, COUNT(*) AS n, SUM(xi) AS s FROM t WHERE xf > 10 GROUP BY ks"
    rows = []
    with fast_path(True):
        eng = vs.Engine(sql)
        for b in slices(5):
            rows += eng.push("t", b).to_pylist()
    w = _W.format(p="ks")
    expected = duck(f"SELECT ks, count(*) {w}, sum(xi) {w} FROM t WHERE xf > 10 ORDER BY seq",
                    t=TABLE)
    assert_rows_equal(rows, expected, ordered=True)


def test_s2_through_push_and_query():
    from velostream.datagen import SCENARIOS, market_data  # the installed package, not bench/
    S2_SQL = SCENARIOS["S2"][1]
    rb = pa.Table.from_batches(market_data(3000)).combine_chunks().to_batches()[0]
    eng = vs.Engine(S2_SQL)
    out = [eng.push("market_data", rb.slice(i, 10)) for i in range(0, 3000, 10)]
    assert eng.fast_path and eng.fast_batches == 300
    assert all(len(r) == 10 for r in out)
    with fast_path(False):
        want = vs.query(S2_SQL, {"market_data": rb}).to_arrow()
    assert pa.concat_tables([r.to_arrow() for r in out]).equals(want)
    assert vs.query(S2_SQL, {"market_data": rb}).to_arrow().equals(want)


# --------------------------------------------------------------------------- the lazy Result

def test_lazy_result_materialises_once_and_keeps_working():
    with fast_path(True):
        eng = vs.Engine(QUERIES["string_key"])
        r = eng.push("t", WHOLE.slice(0, 5))
        r2 = eng.push("t", WHOLE.slice(5, 3))
    assert eng.fast_batches == 2
    assert len(r) == 5 and not isinstance(r._parts[0], pa.RecordBatch)  # held compiled
    total = vs.Result(r.schema)
    total.extend(r)
    total.extend(r2)
    assert len(total) == 8 and not any(isinstance(p, pa.RecordBatch) for p in total._parts)
    batches = r.batches
    assert [type(b) for b in batches] == [pa.RecordBatch] and batches[0].num_rows == 5
    assert r.batches[0] is batches[0]  # converted once
    assert r.batches[0].schema == eng.out_schema
    rows = list(r)
    assert rows == r.to_pylist() == batches[0].to_pylist()
    assert total.to_arrow().num_rows == 8 and total.to_pylist()[:5] == rows
    assert r.to_pandas().shape == (5, 9)
    assert set(r.columns()) == set(eng.out_schema.names)
    # the consumer protocol of the job coordinator: iterate r.batches, then len(r)
    assert sum(b.num_rows for b in r2.batches) == len(r2) == 3
    r2.batches = []
    assert len(r2) == 0


def test_reordered_and_extra_columns_stay_on_the_fast_path():
    """Batches whose schema differs only in column order or in columns the query does not read
    (of any type) still take the compiled step; each new layout is checked once."""
    sql = QUERIES["two_keys"]
    batches = []
    for i, b in enumerate(slices([1, 9, 60], seed=8)):
        if i % 3 == 1:
            b = b.select(list(reversed(b.schema.names)))
        elif i % 3 == 2:
            b = b.append_column("extra", pa.array([True] * b.num_rows, pa.bool_()))
            b = b.append_column("extra2", pa.array([1] * b.num_rows, pa.int8()))
        batches.append(b)
    got, eng = push_all(sql, batches)
    assert eng.fast_batches == len(batches)
    assert got.equals(general(sql))


def test_a_column_the_engine_cannot_take_is_left_out_as_in_the_general_path():
    """A first batch with a column of a type the engine does not take, which the query never
    reads, is bound without it on both paths (velostream.binding, docs/SQL.md "Types at the
    boundary"); a later batch's extra column is dropped the same way and its rows count as
    usual. A query that reads the column is an error naming it and its type."""
    sql = QUERIES["string_key"]
    good = WHOLE.slice(0, 2)
    bad = good.append_column("extra", pa.array([[1], [2]], pa.list_(pa.int64())))
    want = vs.Engine(sql).push("t", pa.concat_tables(
        [pa.Table.from_batches([good])] * 3).combine_chunks().to_batches()[0]).to_pylist()
    for enabled in (True, False):
        with fast_path(enabled):
            eng = vs.Engine(sql)
            first = eng.push("t", bad)
            assert first.to_pylist() == want[:2]
            eng.push("t", good)
            again = eng.push("t", bad)
            assert again.to_pylist() == want[4:]
            assert eng.fast_batches == (3 if enabled else 0)
            with pytest.raises(vs.SqlError, match="column 'extra'.*list<item: int64>.*does not "
                                                  "take this type"):
                vs.Engine("SELECT ks, extra FROM t").push("t", bad)


@pytest.mark.parametrize("n", [7, 8, 9, 64, 203])
def test_null_outputs_in_every_bit_position(n):
    """Each row its own group, every third value NULL: the emitted NULLs sit at every position of
    the validity bitmap the rows are handed to Arrow with."""
    rb = pa.record_batch({"k": pa.array(np.arange(n), pa.int64()),
                          "x": pa.array([None if i % 3 == 1 else float(i) for i in range(n)],
                                        pa.float64())})
    sql = "SELECT k, SUM(x) AS s, MIN(x) AS lo, COUNT(x) AS c FROM t GROUP BY k"
    got, eng = push_all(sql, [rb])
    assert eng.fast_batches == 1
    assert got.equals(general(sql, rb))
    assert got.column("s").to_pylist() == [None if i % 3 == 1 else float(i) for i in range(n)]
    assert got.column("s").null_count == len(range(1, n, 3))


# -- push_rows: a partition's rows of a shared batch (V2), read in place -----------------------

def _rows_of(rb: pa.RecordBatch, rng, share: float) -> np.ndarray:
    """A seeded ascending selection of ``rb``'s rows (int64), about ``share`` of them."""
    return np.flatnonzero(rng.random(rb.num_rows) < share).astype(np.int64)


@pytest.mark.parametrize("name", list(QUERIES))
def test_push_rows_equals_push_of_the_rows_taken_out(name):
    """``GroupStep.push_rows(rb, rows)`` emits what ``push`` of ``rb.take(rows)`` emits, row for
    row, on every query shape (string, int, float and NULL keys, COUNT of strings, reordered
    outputs), on slices with array offsets, with empty, small, partial and full selections.
    Large enough selections run the kernels without the GIL."""
    sql = QUERIES[name]
    rng = np.random.default_rng(7)
    big = pa.concat_tables([TABLE] * 8).combine_chunks().to_batches()[0]  # 9600 rows
    batches = slices([1, 7, 64, 333, 500], seed=3) + [big, big.slice(5, 9000)]
    shares = [0.0, 0.05, 0.5, 1.0]
    picks = [(rb, _rows_of(rb, rng, shares[i % len(shares)])) for i, rb in enumerate(batches)]
    with fast_path(True):
        taken, rows_in = vs.Engine(sql), vs.Engine(sql)
        first, rows = picks[0]
        # both bind on the same first rows (through push), then diverge in how they take rows
        expected = [taken.push("t", first.take(pa.array(rows))).to_arrow()]
        got = [rows_in.push("t", first.take(pa.array(rows))).to_arrow()]
        assert rows_in.fast_path, push_fast.why_not(rows_in.plan, rows_in.pipeline)
        for rb, rows in picks[1:]:
            expected.append(taken.push("t", rb.take(pa.array(rows))).to_arrow())
            r = rows_in._fast.push_rows(rb, rows)
            assert r is not None  # the types the step takes
            got.append(r.to_arrow())
    for e, g in zip(expected, got):
        assert g.schema.equals(e.schema)
        assert_rows_equal(g, e, ordered=True)


def test_push_rows_refuses_rows_outside_the_batch():
    with fast_path(True):
        eng = vs.Engine(QUERIES["string_key"])
        eng.push("t", WHOLE.slice(0, 10))
        for bad in ([0, 10], [-1], [3, 1 << 40]):
            with pytest.raises(IndexError):
                eng._fast.push_rows(WHOLE.slice(0, 10), np.array(bad, dtype=np.int64))


def test_push_rows_of_other_arrow_types_takes_the_general_path():
    """A batch the step does not take (int32 values) gives None, as ``push`` does."""
    with fast_path(True):
        eng = vs.Engine(QUERIES["int_key"])
        eng.push("t", WHOLE.slice(0, 10))
        other = WHOLE.set_column(WHOLE.schema.get_field_index("xi"), "xi",
                                 WHOLE.column("xi").cast(pa.int32()))
        assert eng._fast.push_rows(other, np.arange(5, dtype=np.int64)) is None


@pytest.mark.parametrize("name", ["string_key", "two_keys", "string_and_int_keys", "int_key"])
def test_partitions_run_the_compiled_step_and_match_one_partition(name, partitions):
    """A job at 1, 2 and 4 partitions with batch splits: each key's rows, in order, as at one
    partition; at more than one, the partitions ran their rows through the compiled step."""
    sql = QUERIES[name]
    batches = slices([1, 50, 333, 1000], seed=5) + [pa.concat_tables([TABLE] * 10)
                                                     .combine_chunks().to_batches()[0]]
    job = vs.Job(sql, {"t": batches}, partitions=partitions)
    job.run()
    got = job.result().to_arrow()
    want = vs.query(sql, {"t": batches}, partitions=1).to_arrow()
    if job.stats.strategy == "scan":  # (2 partitions: jobs/partition_scan.py) in input order
        assert sum(p.records for p in job.exchange.scan.parts) > 0
        assert_rows_equal(got, want, ordered=True)
    elif partitions > 1:
        assert sum(w.fast.batches for w in job.exchange.parts) > 0
    keys = [(f, "ascending") for f in want.schema.names if f in ("ks", "ki", "s")]
    # a stable sort by key keeps each key's emission order
    assert_rows_equal(got.sort_by(keys), want.sort_by(keys), ordered=True)
