"""Types at the boundary (docs/SQL.md, "Types at the boundary and schema drift"): every path a
source's rows take (one statement, a pipeline's CREATE STREAM, a CTE, a subquery, UNION ALL,
ORDER BY, vs.Engine batch by batch) binds them the same way and leaves a column that passes through
in the Arrow type it came in with; a column of a type velostream does not take is left out when
the query never reads it and is an error naming it when it does; a decimal wider than 18 digits
is DECIMAL(18, s), a value needing more digits a bad record. Checked against the one-statement
query and DuckDB on seeded data with NULLs, split into uneven batches, at 1, 2 and 4
partitions."""
from __future__ import annotations

import datetime as dt
import decimal
import warnings

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import velostream as vs
from velostream.batch import STRING

N = 41
KEYS = ["a", "b", "c", None]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _nulls(rng, n: int) -> np.ndarray:
    m = rng.random(n) < 0.2
    m[0] = False
    m[1] = True  # at least one NULL and one value
    return m


def _column(t: pa.DataType, rng) -> pa.Array:
    """N seeded values of ``t`` with NULLs and the type's edge values."""
    mask = _nulls(rng, N)
    if pa.types.is_integer(t):
        info = np.iinfo(t.to_pandas_dtype())
        hi = min(int(info.max), 2 ** 63 - 1)  # a uint64 above 2^63-1 is a bad record: not here
        vals = rng.integers(int(info.min), hi, N, endpoint=True).astype(t.to_pandas_dtype())
        vals[2], vals[3] = info.min, hi
        return pa.array(vals, t, mask=mask)
    if pa.types.is_floating(t):
        vals = np.round(rng.normal(0, 100, N), 2)
        vals[2] = 0.0
        return pa.array(vals.astype(t.to_pandas_dtype()), t, mask=mask)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_dictionary(t):
        words = rng.choice(["x", "yy", "", "zéta"], N)
        arr = pa.array(words, pa.string(), mask=mask)
        return arr.dictionary_encode() if pa.types.is_dictionary(t) else arr.cast(t)
    if pa.types.is_date(t):
        days = rng.integers(-1000, 20000, N)
        return pa.array(days.astype(np.int32), pa.date32(), mask=mask).cast(t)
    if pa.types.is_timestamp(t):
        ns = rng.integers(-10 ** 17, 10 ** 18, N)  # any unit's range, before and after 1970
        unit = {"s": 10 ** 9, "ms": 10 ** 6, "us": 10 ** 3, "ns": 1}[t.unit]
        return pa.array(ns // unit, pa.int64(), mask=mask).cast(t)
    if pa.types.is_decimal(t):
        top = 10 ** min(t.precision - 1, 17)
        vals = [decimal.Decimal(int(v)).scaleb(-t.scale) for v in rng.integers(-top, top, N)]
        return pa.array(vals, t, mask=mask)
    if pa.types.is_boolean(t):
        return pa.array(rng.random(N) < 0.5, mask=mask)
    raise AssertionError(t)


def _table(t: pa.DataType, seed: int = 7) -> pa.Table:
    rng = _rng(seed)
    keys = pa.array([KEYS[i] for i in rng.integers(0, len(KEYS), N)], pa.string())
    return pa.table({"k": keys, "v": _column(t, rng),
                     "_TIMESTAMP": pa.array(np.arange(N) * 1000, pa.int64())})


def _split(table: pa.Table, seed: int = 3) -> list[pa.RecordBatch]:
    """The rows as uneven record batches (one row, several, the rest)."""
    rng = _rng(seed)
    cuts = sorted({1, *rng.integers(2, table.num_rows - 1, 3).tolist()})
    bounds = [0, *cuts, table.num_rows]
    return [table.slice(a, b - a).combine_chunks().to_batches()[0]
            for a, b in zip(bounds, bounds[1:]) if b > a]


def _rows(result) -> list:
    """A result's rows in an order that does not depend on the partition count."""
    return sorted(map(repr, result.to_arrow().to_pylist()))


PASS_THROUGH = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
                pa.uint32(), pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.bool_(),
                pa.large_string(), pa.string_view(), pa.dictionary(pa.int32(), pa.string()),
                pa.date32(), pa.date64(), pa.timestamp("s"), pa.timestamp("ms"),
                pa.timestamp("us"), pa.timestamp("ns"), pa.timestamp("us", "Europe/Paris"),
                pa.decimal128(9, 2), pa.decimal128(18, 4)]

ONE = "SELECT k, v FROM t"
SAME_AS_ONE = {
    "stream": "CREATE STREAM s AS SELECT k, v FROM t; SELECT * FROM s",
    "cte": "WITH s AS (SELECT k, v FROM t) SELECT * FROM s",
    "subquery": "SELECT * FROM (SELECT k, v FROM t) x",
    "two_streams": "CREATE STREAM s AS SELECT k, v FROM t; CREATE STREAM s2 AS SELECT * FROM s; "
                   "SELECT k, v FROM s2",
}
GROUPED = "SELECT v, COUNT(*) AS n FROM t GROUP BY v"
GROUPED_SAME = {
    "stream": "CREATE STREAM s AS SELECT k, v FROM t; SELECT v, COUNT(*) AS n FROM s GROUP BY v",
    "cte": "WITH s AS (SELECT k, v FROM t) SELECT v, COUNT(*) AS n FROM s GROUP BY v",
}


@pytest.mark.parametrize("t", PASS_THROUGH, ids=str)
def test_passthrough_types_and_values_equal_the_one_statement_query(t, partitions):
    """A pipeline, a CTE, a subquery and a chain of streams give the one-statement query's rows
    in its types: a column passing through leaves in the Arrow type it came in with (a
    timestamp or date as epoch-ms BIGINT), never pyarrow's ArrowInvalid."""
    batches = _split(_table(t))
    one = vs.query(ONE, {"t": batches}, partitions=partitions)
    want_type = pa.int64() if (pa.types.is_timestamp(t) or pa.types.is_date(t)) else \
        pa.string() if pa.types.is_string_view(t) else t
    assert one.to_arrow().schema.field("v").type == want_type
    for name, sql in SAME_AS_ONE.items():
        got = vs.query(sql, {"t": batches}, partitions=partitions)
        assert got.to_arrow().schema == one.to_arrow().schema, name
        assert _rows(got) == _rows(one), name
    grouped = vs.query(GROUPED, {"t": batches}, partitions=partitions)
    assert grouped.to_arrow().schema.field("v").type == want_type
    for name, sql in GROUPED_SAME.items():
        got = vs.query(sql, {"t": batches}, partitions=partitions)
        assert got.to_arrow().schema == grouped.to_arrow().schema, name
        assert _rows(got) == _rows(grouped), name


@pytest.mark.parametrize("t", [pa.int8(), pa.uint32(), pa.uint64(), pa.float32(),
                               pa.large_string(), pa.dictionary(pa.int8(), pa.string()),
                               pa.decimal128(12, 3)], ids=str)
def test_union_order_by_and_tables_keep_the_passthrough_type(t, partitions):
    """UNION ALL of two branches of one type, ORDER BY, a CREATE TABLE keyed by a column: each
    node's rows in its one output schema, the passthrough type kept, as in the one-statement
    query (compared as multisets: a union interleaves its branches)."""
    batches = _split(_table(t, seed=11))
    one = vs.query(ONE, {"t": batches}, partitions=partitions).to_arrow()
    union = vs.query("SELECT k, v FROM t UNION ALL SELECT k, v FROM t", {"t": batches},
                     partitions=partitions).to_arrow()
    assert union.schema == one.schema
    assert sorted(map(repr, union.to_pylist())) == sorted(map(repr, one.to_pylist() * 2))
    ordered = vs.query("CREATE STREAM s AS SELECT k, v FROM t; SELECT k, v FROM s ORDER BY k",
                       {"t": batches}, partitions=partitions).to_arrow()
    assert ordered.schema == one.schema
    assert sorted(map(repr, ordered.to_pylist())) == sorted(map(repr, one.to_pylist()))
    table = vs.query("CREATE TABLE g AS SELECT v, COUNT(*) AS n FROM t GROUP BY v; "
                     "SELECT * FROM g", {"t": batches}, partitions=partitions).to_arrow()
    assert table.schema.field("v").type == one.schema.field("v").type
    con = duckdb.connect()
    con.register("t", pa.table({"v": one.column("v").cast(
        t.value_type if pa.types.is_dictionary(t) else t)}))
    want = {r[0]: r[1] for r in con.execute("SELECT v, COUNT(*) FROM t GROUP BY v").fetchall()}
    assert {r["v"]: r["n"] for r in table.to_pylist()} == want


@pytest.mark.parametrize("t", [pa.int16(), pa.uint64(), pa.float16(), pa.large_string(),
                               pa.timestamp("us", "UTC"), pa.date32(), pa.decimal128(10, 2)],
                         ids=str)
@pytest.mark.parametrize("sql", [ONE, SAME_AS_ONE["stream"], SAME_AS_ONE["cte"], GROUPED,
                                 GROUPED_SAME["stream"]], ids=["one", "stream", "cte", "grouped",
                                                               "grouped_stream"])
def test_engine_batch_by_batch_gives_the_query_types(t, sql):
    """vs.Engine fed the batches one by one: every push's rows are in the output schema (to_arrow
    works), and all of them are vs.query's rows in vs.query's types."""
    batches = _split(_table(t, seed=5))
    eng = vs.Engine(sql)
    parts = [eng.push("t", rb).to_arrow() for rb in batches]
    parts.append(eng.flush().to_arrow())
    want = vs.query(sql, {"t": batches}).to_arrow()
    got = pa.concat_tables([p for p in parts if p.num_rows])
    assert got.schema == want.schema
    assert sorted(map(repr, got.to_pylist())) == sorted(map(repr, want.to_pylist()))


def test_uint64_through_a_pipeline_equals_duckdb(partitions):
    """The brief's case: a uint64 column through CREATE STREAM ... ; SELECT * FROM s is the
    source's rows in uint64, as DuckDB reads them."""
    t1 = pa.table({"k": ["a", "b", "a"], "u": pa.array([1, 2, None], pa.uint64())})
    got = vs.query("CREATE STREAM s AS SELECT k, u FROM t; SELECT * FROM s", {"t": t1},
                   partitions=partitions).to_arrow()
    want = duckdb.sql("SELECT k, u FROM t1").to_arrow_table()
    assert got.schema.field("u").type == pa.uint64()
    assert sorted(map(repr, got.to_pylist())) == sorted(map(repr, want.to_pylist()))


# ----------------------------------------------------------------- types velostream does not take

UNSUPPORTED = [
    pa.list_(pa.int64()), pa.large_list(pa.string()), pa.struct([("x", pa.int64())]),
    pa.map_(pa.string(), pa.int64()), pa.binary(), pa.large_binary(), pa.binary(3),
    pa.time32("s"), pa.time64("us"), pa.duration("ms"), pa.month_day_nano_interval(),
    pa.decimal128(38, 20), pa.decimal256(60, 30),
]


def _unsupported_column(t: pa.DataType, n: int) -> pa.Array:
    """``n`` values of ``t`` with NULLs (``pa.nulls`` cast keeps each type's layout)."""
    samples = {
        "list": [[1, 2], None, []], "large_list": [["a"], None, []],
        "struct": [{"x": 1}, None, {"x": 2}], "map": [[("a", 1)], None, []],
        "binary": [b"ab", None, b""], "large_binary": [b"ab", None, b""],
        "fixed_size_binary": [b"abc", None, b"xyz"], "time32": [1, None, 3600],
        "time64": [1, None, 3], "duration": [5, None, -1],
        "month_day_nano_interval": [pa.MonthDayNano([1, 2, 3]), None, pa.MonthDayNano([0, 0, 1])],
        "decimal128": [decimal.Decimal("1.5"), None, decimal.Decimal("-2")],
        "decimal256": [decimal.Decimal("1.5"), None, decimal.Decimal("-2")],
    }
    kind = next(k for k in sorted(samples, key=len, reverse=True)
                if str(t).startswith(k) or t.__class__.__name__.lower().startswith(
                    k.replace("_", "")))
    vals = samples[kind]
    return pa.array([vals[i % len(vals)] for i in range(n)], t)


def _kind(t: pa.DataType) -> str:
    return str(t)


@pytest.mark.parametrize("t", UNSUPPORTED, ids=_kind)
def test_an_unread_column_of_an_unsupported_type_is_left_out(t, partitions):
    """A column of a type velostream does not take, which the query never reads, is left out at
    binding: the query gives the same rows as over the table without it (and as DuckDB), by
    one statement, a pipeline, a CTE and vs.Engine; later batches bind the same way."""
    base = _table(pa.int32(), seed=13)
    full = base.append_column("bad", _unsupported_column(t, base.num_rows))
    batches, plain = _split(full), _split(base)
    for sql in ["SELECT k, v FROM t WHERE v IS NOT NULL", SAME_AS_ONE["stream"],
                SAME_AS_ONE["cte"], "SELECT k, SUM(v) AS s FROM t GROUP BY k"]:
        got = vs.query(sql, {"t": batches}, partitions=partitions)
        want = vs.query(sql, {"t": plain}, partitions=partitions)
        assert got.to_arrow().schema == want.to_arrow().schema
        assert _rows(got) == _rows(want)
    want = duckdb.sql("SELECT k, v FROM base WHERE v IS NOT NULL").to_arrow_table()
    got = vs.query("SELECT k, v FROM t WHERE v IS NOT NULL", {"t": batches},
                   partitions=partitions).to_arrow()
    assert sorted(map(repr, got.to_pylist())) == sorted(map(repr, want.to_pylist()))
    eng = vs.Engine("SELECT k, v FROM t")
    pushed = [eng.push("t", rb).to_arrow() for rb in batches]
    assert pa.concat_tables(pushed).equals(vs.query("SELECT k, v FROM t", {"t": plain}).to_arrow())


@pytest.mark.parametrize("t", UNSUPPORTED, ids=_kind)
@pytest.mark.parametrize("sql", [
    "SELECT * FROM t", "SELECT t.* FROM t", "SELECT k, bad FROM t",
    "SELECT k FROM t WHERE bad IS NULL", "SELECT k, COUNT(bad) AS n FROM t GROUP BY k",
    "CREATE STREAM s AS SELECT * FROM t; SELECT k FROM s",
    "WITH s AS (SELECT k, bad FROM t) SELECT k FROM s",
    "SELECT x.k FROM (SELECT * FROM t) x",
], ids=["star", "t_star", "named", "where", "aggregate", "stream_star", "cte", "subquery_star"])
def test_a_query_reading_an_unsupported_column_is_one_clear_error(t, sql, partitions):
    """Reading the column, by name or through ``*``, is one SqlError at the text naming the
    column and its Arrow type and saying velostream does not take it (``*``: to list the
    columns); never a message that says a type differs from itself, never TypeError."""
    base = _table(pa.int32(), seed=17)
    full = base.append_column("bad", _unsupported_column(t, base.num_rows))
    with pytest.raises(vs.SqlError) as err:
        vs.query(sql, {"t": _split(full)}, partitions=partitions)
    msg = str(err.value)
    assert "'bad'" in msg and str(t) in msg and "velostream does not take this type" in msg
    assert "fixed as" not in msg
    if "*" in sql and "bad" not in sql:
        assert "list the columns you want instead of *" in msg


def test_unsupported_columns_through_vs_engine_and_a_declared_schema():
    """vs.Engine: the first batch reading the column is rejected with the error and nothing is
    bound (a batch without the column then runs); an unread one is left out of every batch. A
    declared column whose data comes in a type velostream does not take: SchemaMismatch naming
    both types and saying so."""
    base = _table(pa.int64(), seed=19)
    full = base.append_column("bad", _unsupported_column(pa.list_(pa.int64()), base.num_rows))
    eng = vs.Engine("SELECT k, bad FROM t")
    with pytest.raises(vs.SqlError, match="'bad' of 't' is list<item: int64>"):
        eng.push("t", full.to_batches()[0])
    eng = vs.Engine("SELECT * FROM t")
    with pytest.raises(vs.SqlError, match=r"\* would read column 'bad'"):
        eng.push("t", full.to_batches()[0])
    assert eng.push("t", base.to_batches()[0]).to_arrow().equals(
        vs.query("SELECT * FROM t", {"t": base}).to_arrow())
    declared = vs.Engine("SELECT k, bad FROM t", schemas={"t": {"k": STRING, "bad": STRING}})
    with pytest.raises(vs.SchemaMismatch, match="this batch has list<item: int64> "
                                                r"\(velostream does not take this type\)"):
        declared.push("t", full.to_batches()[0])


# ------------------------------------------------------------- decimals wider than 18 digits

WIDE = [pa.decimal128(38, 2), pa.decimal128(20, 0), pa.decimal256(40, 6)]


def _in_duckdb(table: pa.Table, t: pa.DataType) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``w`` (k, d): DuckDB reads no decimal256, so those rows come as
    decimal128(38, s), the ones of more than 38 digits (bad records anyway) left out."""
    rows = table.select(["k", "d"])
    if pa.types.is_decimal256(t):
        fits = pc.fill_null(pc.less(pc.abs(rows.column("d")), pa.scalar(
            decimal.Decimal(10) ** (38 - t.scale), t)), True)
        rows = rows.filter(fits)
        rows = rows.set_column(1, "d", rows.column("d").cast(pa.decimal128(38, t.scale)))
    con = duckdb.connect()
    con.register("w", rows)
    return con


def _wide_table(t: pa.DataType, seed: int) -> pa.Table:
    """Seeded decimals of ``t``: most fit 18 digits, some do not (more than 18 unscaled
    digits, positive and negative), NULLs."""
    rng = _rng(seed)
    vals = []
    for i in range(N):
        r = rng.random()
        if i == 1 or r < 0.15:
            vals.append(None)
        elif i in (2, 3) or r < 0.3:  # too many digits: 10^18 unscaled and above
            big = int(rng.integers(1, 9)) * 10 ** (18 + int(rng.integers(0, t.precision - 18)))
            vals.append(decimal.Decimal(big if i != 3 else -big).scaleb(-t.scale))
        else:
            vals.append(decimal.Decimal(int(rng.integers(-10 ** 12, 10 ** 12))).scaleb(-t.scale))
    keys = pa.array([KEYS[i] for i in rng.integers(0, 3, N)], pa.string())
    return pa.table({"k": keys, "d": pa.array(vals, t),
                     "_TIMESTAMP": pa.array(np.arange(N) * 1000, pa.int64())})


@pytest.mark.parametrize("t", WIDE, ids=str)
@pytest.mark.parametrize("sql", ["SELECT k, d FROM t", SAME_AS_ONE["stream"].replace("v", "d"),
                                 SAME_AS_ONE["cte"].replace("v", "d")],
                         ids=["one", "stream", "cte"])
def test_a_wide_decimal_is_decimal_18_and_a_value_that_does_not_fit_is_a_bad_record(
        t, sql, partitions):
    """decimal128 / decimal256 of more than 18 digits (scale <= 18) is taken as DECIMAL(18, s):
    values that fit pass through in the column's own type, as DuckDB reads them; a value of more
    than 18 digits is a bad record, counted once and dead-lettered with its reason."""
    table = _wide_table(t, seed=23)
    fits = pc.less(pc.abs(table.column("d")), pa.scalar(
        decimal.Decimal(10) ** (18 - t.scale), t))
    n_bad = int(pc.sum(pc.invert(pc.fill_null(fits, True))).as_py())
    assert n_bad >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vs.DroppedRowsWarning)
        got = vs.query(sql, {"t": _split(table)}, partitions=partitions)
    arrow = got.to_arrow()
    assert arrow.schema.field("d").type == t
    con = _in_duckdb(table, t)
    limit = decimal.Decimal(10) ** (18 - t.scale)
    want = con.execute(f"SELECT k, d FROM w WHERE d IS NULL OR abs(d) < {limit}").fetchall()
    assert sorted(map(repr, [(r["k"], r["d"]) for r in arrow.to_pylist()])) == \
        sorted(map(repr, want))
    assert got.stats["failed_records"] == n_bad
    dead = [rb for _, rb in got.dead_letters]
    assert sum(rb.num_rows for rb in dead) == n_bad
    assert all("more than 18 digits" in why and "DECIMAL(18," in why for why, _ in got.dead_letters)


@pytest.mark.parametrize("t", WIDE, ids=str)
def test_a_wide_decimal_sums_as_duckdb_and_never_raises_type_error(t, partitions):
    """SUM over the values that fit equals DuckDB's; a query that never reads the column runs
    (no bare TypeError), its rows with a value that does not fit set aside as for a uint64
    above 2^63-1 (docs/SQL.md, "Types at the boundary")."""
    table = _wide_table(t, seed=29)
    limit = decimal.Decimal(10) ** (18 - t.scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vs.DroppedRowsWarning)
        got = vs.query("SELECT k, SUM(d) AS s FROM t GROUP BY k EMIT FINAL", {"t": _split(table)},
                       partitions=partitions).to_arrow()
        keys = vs.query("SELECT k FROM t", {"t": _split(table)}, partitions=partitions)
    con = _in_duckdb(table, t)
    want = dict(con.execute(f"SELECT k, SUM(d) FROM w WHERE d IS NULL OR abs(d) < {limit} "
                            f"GROUP BY k").fetchall())
    assert {r["k"]: r["s"] for r in got.to_pylist()} == want
    assert len(keys) == con.execute(f"SELECT count(*) FROM w WHERE d IS NULL OR abs(d) < "
                                    f"{limit}").fetchone()[0]


def test_a_wide_decimal_through_vs_engine_binds_later_batches_the_same_way():
    """The first batch fixes decimal128(38, 2); a later narrower decimal is widened to it, a
    later wider one is rejected (the drift rules), and each push's bad rows are counted."""
    t = pa.decimal128(38, 2)
    table = _wide_table(t, seed=31)
    batches = _split(table)
    eng = vs.Engine("SELECT k, d FROM t")
    out = [eng.push("t", rb).to_arrow() for rb in batches]
    assert all(o.schema.field("d").type == t for o in out)
    limit = decimal.Decimal(10) ** 16
    n_bad = sum(1 for v in table.column("d").to_pylist() if v is not None and abs(v) >= limit)
    assert eng.stats["failed_records"] == n_bad
    assert sum(o.num_rows for o in out) == table.num_rows - n_bad
    narrow = pa.record_batch({"k": ["z"], "d": pa.array([decimal.Decimal("1.5")],
                                                        pa.decimal128(5, 1)),
                              "_TIMESTAMP": pa.array([10 ** 6], pa.int64())})
    assert eng.push("t", narrow).to_pylist() == [{"k": "z", "d": decimal.Decimal("1.50")}]
    wider = pa.record_batch({"k": ["z"], "d": pa.array([decimal.Decimal("1.5")],
                                                       pa.decimal128(38, 3)),
                             "_TIMESTAMP": pa.array([10 ** 6], pa.int64())})
    with pytest.raises(vs.SchemaMismatch, match="more digits than the fixed decimal holds"):
        eng.push("t", wider)


def test_a_parquet_job_reads_only_the_supported_columns_it_needs(tmp_path):
    """A Parquet file with a list column through the job API: a query that never reads it
    decodes only its own columns and gives DuckDB's rows; ``SELECT *`` is not narrowed to the
    supported columns (that would drop the list column silently) but is the clear error."""
    import pyarrow.parquet as pq
    from velostream.io import open_source
    from velostream.jobs.spec import JobSpec

    base = _table(pa.int64(), seed=37)
    full = base.append_column("tags", _unsupported_column(pa.list_(pa.int64()), base.num_rows))
    pq.write_table(full, tmp_path / "t.parquet", row_group_size=10)
    where = f" WITH ('t.type' = 'file_source', 't.path' = '{tmp_path}/t.parquet')"
    src = open_source(JobSpec.from_sql("SELECT k, v FROM t" + where))
    assert src.columns == ["k", "v", "_TIMESTAMP"]  # not "tags"
    job = vs.Job("SELECT k, v FROM t", {"t": src})
    job.run()
    src.close()
    want = duckdb.sql(f"SELECT k, v FROM read_parquet('{tmp_path}/t.parquet')").fetchall()
    assert sorted(map(repr, [(r["k"], r["v"]) for r in job.result().to_pylist()])) == \
        sorted(map(repr, want))
    src = open_source(JobSpec.from_sql("SELECT * FROM t" + where))
    assert src.columns is None  # every column: the job reports the error itself
    with pytest.raises((vs.SqlError, vs.JobError), match="'tags'.*does not take this type"):
        vs.Job("SELECT * FROM t", {"t": src}).run()
    src.close()


@pytest.mark.parametrize("sql", ["SELECT k, v FROM t", SAME_AS_ONE["cte"]], ids=["one", "cte"])
def test_explain_binds_the_sources_as_a_query_does(sql):
    """vs.explain over data with a list column and a DECIMAL(38, 2): the plan without the list
    column, the decimal as DECIMAL(18,2); reading the list column is the same clear error."""
    base = _table(pa.decimal128(38, 2), seed=41)
    full = base.append_column("bad", _unsupported_column(pa.list_(pa.int64()), base.num_rows))
    text = vs.explain(sql, {"t": full})
    assert "v DECIMAL(18,2)" in text and "bad" not in text
    with pytest.raises(vs.SqlError, match="'bad'.*does not take this type"):
        vs.explain(sql.replace("k, v", "k, bad"), {"t": full})


@pytest.mark.parametrize("join", ["JOIN b ON a.k = b.k WITHIN 1 HOUR",
                                  "LEFT JOIN b FOR SYSTEM_TIME AS OF a._TIMESTAMP ON a.k = b.k"],
                         ids=["interval", "temporal"])
def test_a_join_keeps_both_sides_passthrough_types(join, partitions):
    """The SELECT over a join binds to the join's Arrow types: each side's passthrough column
    leaves in its own type (int8, large_string, uint16), with DuckDB's rows."""
    a = _table(pa.int8(), seed=43).rename_columns(["k", "v", "_TIMESTAMP"])
    a = a.append_column("s", _column(pa.large_string(), _rng(44)))
    b = pa.table({"k": ["a", "b", "c"], "w": pa.array([10, None, 30], pa.uint16()),
                  "_TIMESTAMP": pa.array([0, 0, 0], pa.int64())})
    got = vs.query(f"SELECT a.k, a.v, a.s, b.w FROM a {join}", {"a": _split(a), "b": b},
                   partitions=partitions).to_arrow()
    assert [f.type for f in got.schema] == [pa.string(), pa.int8(), pa.large_string(),
                                            pa.uint16()]
    kind = "LEFT JOIN" if join.startswith("LEFT") else "JOIN"
    want = duckdb.sql(f"SELECT a.k, a.v, a.s, b.w FROM a {kind} b ON a.k = b.k").fetchall()
    assert sorted(map(repr, [tuple(r.values()) for r in got.to_pylist()])) == \
        sorted(map(repr, want))
