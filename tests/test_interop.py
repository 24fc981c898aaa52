"""Arrow PyCapsule interop: a ``Result`` read by pyarrow, Polars and DuckDB without copies, and
``vs.query`` / ``vs.Engine.push`` fed by any ``__arrow_c_stream__`` producer (a Polars DataFrame,
a DuckDB relation, a pyarrow RecordBatchReader). Answers are compared against DuckDB."""
from __future__ import annotations

from collections import Counter

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.batch import to_record_batches

pl = pytest.importorskip("polars")

SQL = "SELECT k, x, s FROM t WHERE x > 0.25 OR x IS NULL"
AGG = "SELECT k, COUNT(*) AS n, SUM(v) AS total, MIN(x) AS lo FROM t GROUP BY k EMIT FINAL"


def data(n: int = 5000, seed: int = 11) -> pa.Table:
    """Seeded columns with NULLs and edge values (int64 extremes, -0.0, empty text)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 40, n)
    v = rng.integers(-10**6, 10**6, n)
    v[:2] = [np.iinfo(np.int64).max // 4, np.iinfo(np.int64).min // 4]
    x = rng.random(n)
    x[2] = -0.0
    s = np.array([f"s{i % 97}" for i in range(n)], dtype=object)
    s[3] = ""
    nulls = rng.random(n) < 0.05
    return pa.table({
        "k": pa.array(k, mask=rng.random(n) < 0.02),
        "v": pa.array(v, mask=nulls),
        "x": pa.array(x, mask=rng.random(n) < 0.05),
        "s": pa.array(s, pa.string(), mask=rng.random(n) < 0.05),
    }).combine_chunks()


def duck(sql: str, t: pa.Table) -> Counter:
    return Counter(duckdb.sql(sql.replace(" EMIT FINAL", "")).fetchall())


def rows(result) -> Counter:
    return Counter(tuple(r.values()) for r in result.to_pylist())


def buffer_addresses(batches) -> list:
    return [b.address for rb in batches for col in rb.columns for b in col.buffers() if b is not None]


# ------------------------------------------------------------------------------ Result as output

def test_pyarrow_table_reads_a_result_without_copying():
    t = data()
    r = vs.query(SQL, {"t": t})
    assert len(r) > 0
    table = pa.table(r)
    assert table.equals(r.to_arrow())
    assert buffer_addresses(table.to_batches()) == buffer_addresses(r.batches)


def test_polars_reads_a_result_without_copying():
    t = data()
    r = vs.query("SELECT k, v FROM t WHERE v > 0", {"t": t.drop_null()})
    df = pl.DataFrame(r)
    assert rows(vs.Result(r.schema, df.to_arrow().to_batches())) == duck(
        "SELECT k, v FROM t WHERE v > 0", t.drop_null())
    # an int64 column without NULLs: Polars' values buffer is the Result's own
    assert len(r.batches) == 1
    assert df["v"].to_numpy(allow_copy=False).ctypes.data == r.batches[0].column(1).buffers()[1].address
    assert r.to_polars().equals(df)
    # from_arrow of any Arrow stream is Polars' Series of structs; unnest gives the frame
    assert pl.from_arrow(r).struct.unnest().equals(df)


def test_duckdb_scans_a_result(partitions):
    t = data()
    r = vs.query(AGG, {"t": t}, partitions=partitions)
    # DuckDB reads the Result by its name (replacement scan of an __arrow_c_stream__ object)
    got = Counter(duckdb.sql("SELECT k, n, total, lo FROM r").fetchall())
    assert got == duck(AGG, t)


def test_empty_result_keeps_its_columns():
    r = vs.query("SELECT k, s FROM t WHERE x > 2", {"t": data(100)})
    assert len(r) == 0
    assert pa.table(r).schema == r.schema and pl.DataFrame(r).columns == ["k", "s"]


# --------------------------------------------------------------------------- producers as input

def producers(t: pa.Table) -> dict:
    return {
        "polars": pl.from_arrow(t),
        "duckdb": duckdb.sql("SELECT * FROM t"),
        "reader": pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=700)),
    }


@pytest.mark.parametrize("kind", ["polars", "duckdb", "reader"])
def test_query_reads_any_arrow_stream(kind, partitions):
    t = data()
    for sql in (SQL, AGG):
        src = producers(t)[kind]  # a reader is consumed once: a fresh one per query
        assert rows(vs.query(sql, {"t": src}, partitions=partitions)) == duck(sql, t)


def test_engine_push_takes_polars_frames_batch_by_batch():
    t = data()
    eng = vs.Engine("SELECT k, SUM(v) AS total FROM t GROUP BY k")
    last = {}
    for lo in range(0, t.num_rows, 1300):  # micro-batches as Polars frames
        for row in eng.push("t", pl.from_arrow(t.slice(lo, 1300))).to_pylist():
            last[row["k"]] = row["total"]  # EMIT CHANGES: a group's last change is its total
    assert Counter(last.items()) == duck("SELECT k, SUM(v) FROM t GROUP BY k", t)


def test_arrow_stream_input_is_not_copied():
    t = data()
    df = pl.from_arrow(t.drop_null())
    batches = list(to_record_batches(df))
    assert sum(b.num_rows for b in batches) == df.height
    assert batches[0].column(1).buffers()[1].address == df["v"].to_numpy(allow_copy=False).ctypes.data


def test_empty_arrow_stream_still_names_its_columns():
    empty = pl.DataFrame({"k": pl.Series([], dtype=pl.Int64), "v": pl.Series([], dtype=pl.Int64)})
    batches = list(to_record_batches(empty))
    assert [b.num_rows for b in batches] == [0] and batches[0].schema.names == ["k", "v"]
    r = vs.query("SELECT k, v FROM t", {"t": empty})
    assert len(r) == 0 and r.column_names == ["k", "v"]
