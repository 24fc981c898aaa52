"""Seeded join fuzzing against DuckDB (docs/SQL.md §9): per seed, two random streams (key type
text, integer or two columns; NULL and duplicate keys; narrow or wide key sets; times dense or
sparse) are joined with a random kind and time bound (written as BETWEEN, as a >= / <= pair, or
as WITHIN), or a stream with a random versioned table (temporal join, INNER or LEFT), split into
random batches, at 1, 2 and 4 partitions (each side hashed on its keys, a small table broadcast),
and the rows must equal DuckDB's over the same data. A failure names the seed and the SQL."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs

from reference import assert_rows_equal, duck


def side(rng: random.Random, n: int, key: str, nkeys: int, span: int, col: str,
         distinct_times: bool = False) -> pa.Table:
    g = np.random.default_rng(rng.randrange(2 ** 32))
    ts = np.sort(g.choice(span, n, replace=False) if distinct_times
                 else g.integers(0, span, n)).astype(np.int64)
    null = g.random(n) < rng.choice([0.0, 0.05, 0.3])
    ids = g.integers(0, nkeys, n)
    cols = {}
    if key == "text":
        cols["k"] = pa.array([f"key-{i}" if i % 7 else "" for i in ids], mask=null,
                             type=pa.string())
    elif key == "int":
        cols["k"] = pa.array(ids - nkeys // 2, mask=null, type=pa.int64())
    else:  # two key columns
        cols["k"] = pa.array(ids % 3, mask=null, type=pa.int64())
        cols["k2"] = pa.array([f"s{i % 5}" for i in ids], type=pa.string())
    cols[col] = pa.array(g.integers(-1000, 1000, n), mask=g.random(n) < 0.1, type=pa.int64())
    cols["ts"] = pa.array(ts)
    cols["_TIMESTAMP"] = pa.array(ts)
    return pa.table(cols)


def split(rng: random.Random, t: pa.Table) -> list[pa.RecordBatch]:
    if t.num_rows < 2:
        return t.to_batches() or [pa.RecordBatch.from_pylist([], schema=t.schema)]
    cuts = sorted(rng.sample(range(1, t.num_rows), min(t.num_rows - 1, rng.randrange(1, 9))))
    bounds = [0, *cuts, t.num_rows]
    return [t.slice(a, b - a).combine_chunks().to_batches()[0] for a, b in zip(bounds, bounds[1:])]


def interval_case(seed: int):
    rng = random.Random(seed)
    key = rng.choice(["text", "int", "two"])
    nkeys = rng.choice([3, 40, 2000])
    span = rng.choice([60_000, 600_000])
    a = side(rng, rng.randrange(0, 400), key, nkeys, span, "v")
    b = side(rng, rng.randrange(1, 400), key, nkeys, span, "w")
    kind = rng.choice(["INNER", "LEFT", "RIGHT", "FULL"])
    lo = rng.choice([-10_000, -3_000, 0, 1_000])
    hi = lo + rng.choice([0, 2_000, 8_000])
    on = "a.k = b.k" + (" AND a.k2 = b.k2" if key == "two" else "")
    form = rng.choice(["between", "pairs", "within"])
    if form == "within":
        lo, hi = -abs(hi), abs(hi)
        bound_sql = f"{on} WITHIN {abs(hi)} MILLISECONDS"
    elif form == "between":
        bound_sql = f"{on} AND b.ts BETWEEN a.ts + ({lo}) AND a.ts + ({hi})"
    else:
        bound_sql = f"{on} AND b.ts >= a.ts + ({lo}) AND a.ts + ({hi}) >= b.ts"
    cols = "a.k AS ak, a.v, a.ts AS ats, b.k AS bk, b.w, b.ts AS bts"
    sql = f"SELECT {cols} FROM a {kind} JOIN b ON {bound_sql}"
    ref = (f"SELECT {cols} FROM a {kind} JOIN b ON {on} AND b._TIMESTAMP BETWEEN "
           f"a._TIMESTAMP + ({lo}) AND a._TIMESTAMP + ({hi})")
    return rng, sql, ref, {"a": a, "b": b}


def temporal_case(seed: int):
    rng = random.Random(seed)
    key = rng.choice(["text", "int"])
    nkeys = rng.choice([3, 50, 3000])
    trades = side(rng, rng.randrange(0, 500), key, nkeys, 600_000, "v")
    # two versions of a key at one time: DuckDB's ASOF picks either, velostream the later
    # arrival (docs/SQL.md §9), so the table's times are distinct
    inst = side(rng, rng.randrange(1, 300), key, nkeys, 600_000, "w", distinct_times=True)
    if rng.random() < 0.3:  # versions from before the first trade only
        inst = inst.set_column(inst.schema.get_field_index("_TIMESTAMP"), "_TIMESTAMP",
                               pa.array(np.arange(-inst.num_rows, 0, dtype=np.int64)))
    kind = rng.choice(["INNER", "LEFT"])
    ktype = "VARCHAR" if key == "text" else "BIGINT"
    sql = (f"CREATE TABLE inst (k {ktype}, w BIGINT, _TIMESTAMP BIGINT, PRIMARY KEY (k)); "
           f"SELECT t.k, t.v, t.ts, i.w FROM trades t {kind} JOIN inst i ON t.k = i.k")
    asof = "ASOF JOIN" if kind == "INNER" else "ASOF LEFT JOIN"
    ref = (f"SELECT t.k, t.v, t.ts, i.w FROM trades t {asof} inst i "
           f"ON t.k = i.k AND t._TIMESTAMP >= i._TIMESTAMP")
    return rng, sql, ref, {"trades": trades, "inst": inst.select(["k", "w", "_TIMESTAMP"])}


@pytest.mark.parametrize("make", [interval_case, temporal_case], ids=["interval", "temporal"])
@pytest.mark.parametrize("first", [0, 40])
def test_generated_joins_equal_duckdb_at_every_partition_count(make, first):
    failures, rows = [], 0
    for seed in range(first, first + 40):
        rng, sql, ref, tables = make(seed)
        want = duck(ref, **tables)
        rows += len(want)
        for p in (1, 2, 4):
            got = vs.query(sql, {name: split(rng, t) for name, t in tables.items()},
                           partitions=p)
            try:
                assert_rows_equal(got.to_pylist(), want)
            except AssertionError as err:
                failures.append(f"seed {seed} at {p} partitions: {sql}\n  {err}")
    assert not failures, f"{len(failures)} differ:\n" + "\n\n".join(failures[:3])
    assert rows > 1000  # the seeds join a fair number of rows
