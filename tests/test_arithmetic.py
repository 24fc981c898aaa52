"""Arithmetic never wraps (docs/SQL.md §2), against DuckDB as the oracle.

BIGINT ``+ - *``, unary minus, ABS, CAST and SUM that leave int64 raise ``OutOfRangeError`` (the
same type at every partition count), never a wrapped value; ``TRY_CAST`` gives NULL. Also: ``||``
casts its operands to text, LIKE has no default escape character and ``LIKE ... ESCAPE`` sets one,
and the population variance of one value is 0.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
from decimal import Decimal

import duckdb
import numpy as np

import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import OutOfRangeError, SqlError

from reference import duck

I64_MIN, I64_MAX = -2**63, 2**63 - 1
EDGES = [I64_MIN, I64_MIN + 1, I64_MAX, I64_MAX - 1, 0, 1, -1, 2, -2, 2**62, -2**62, 2**31,
         -2**31, 3037000499, 3037000500, -3037000500, None]


@functools.lru_cache(maxsize=None)
def int_pairs(n: int = 240, seed: int = 5) -> pa.Table:
    """(x, y) int64 pairs: every pair of edge values, then seeded random values of every size."""
    rng = np.random.default_rng(seed)
    xs = [a for a in EDGES for _ in EDGES]
    ys = [b for _ in EDGES for b in EDGES]
    for _ in range(n):
        pair = []
        for _ in range(2):
            kind = rng.integers(0, 5)
            if kind == 0:
                pair.append(None)
            elif kind == 1:
                pair.append(int(rng.choice([e for e in EDGES if e is not None])))
            elif kind == 2:
                pair.append(int(rng.integers(-1000, 1000)))
            else:  # a random magnitude up to the whole int64 range
                bits = int(rng.integers(1, 64))
                pair.append(int(rng.integers(-2**(bits - 1), 2**(bits - 1))) if bits < 64
                            else int(rng.integers(I64_MIN, I64_MAX, endpoint=True)))
        xs.append(pair[0])
        ys.append(pair[1])
    return pa.table({"i": pa.array(range(len(xs)), pa.int64()), "x": pa.array(xs, pa.int64()),
                     "y": pa.array(ys, pa.int64())})


@functools.lru_cache(maxsize=None)
def doubles(seed: int = 6) -> pa.Table:
    rng = np.random.default_rng(seed)
    edge = [2.0**63, -2.0**63, 2.0**63 - 1024, -2.0**63 - 2048, 1e30, -1e30, float("inf"),
            float("-inf"), float("nan"), 0.5, 1.5, 2.5, -0.5, -1.5, 0.0, -0.0, 9.2e18, -9.2e18,
            None]
    rand = (rng.standard_normal(200) * 10.0 ** rng.integers(0, 22, 200)).tolist()
    d = edge + rand
    return pa.table({"i": pa.array(range(len(d)), pa.int64()), "d": pa.array(d, pa.float64())})


_DUCK = duckdb.connect()
_OUTCOMES: dict = {}


def duck_outcomes(sql_expr: str, table: pa.Table) -> list:
    """DuckDB's value of ``sql_expr`` for each row of ``table`` on its own, or the exception it
    raises for that row (one prepared query per row; cached per expression and table)."""
    key = (sql_expr, id(table))
    if key not in _OUTCOMES:
        names = [n for n in table.column_names if n != "i"]
        types = {pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR"}
        row = ", ".join(f"CAST(? AS {types[table.schema.field(n).type]}) AS {n}" for n in names)
        sql = f"SELECT {sql_expr} FROM (SELECT {row})"
        out = []
        for values in zip(*(table[n].to_pylist() for n in names)):
            try:
                out.append(_DUCK.execute(sql, list(values)).fetchone()[0])
            except duckdb.Error as exc:
                out.append(exc)
        _OUTCOMES[key] = out
    return _OUTCOMES[key]


def duck_rows(sql: str, table: pa.Table) -> list[tuple]:
    """DuckDB's rows for ``sql`` over ``table`` as ``t``."""
    con = duckdb.connect()
    con.register("t", table)
    return con.execute(sql).fetchall()


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


# --------------------------------------------------------------------- + - * unary minus ABS

INT_EXPRS = ["x + y", "x - y", "x * y", "-x", "ABS(x)", "x * 2", "x - 1", "x + 9223372036854775807",
             "y * -1"]


@pytest.mark.parametrize("expr", INT_EXPRS)
def test_integer_operators_match_duckdb_or_raise(expr, partitions):
    table = int_pairs()
    want = duck_outcomes(expr, table)
    failed = np.array([isinstance(w, Exception) for w in want])
    assert failed.any() and not failed.all()  # the data reaches both sides of the limit
    # the rows DuckDB computes: ours are equal (one query over all of them, in several batches)
    ok_rows = table.filter(pa.array(~failed))
    got = vs.query(f"SELECT i, {expr} AS r FROM t", {"t": ok_rows.to_batches(max_chunksize=37)},
                   partitions=partitions).to_pylist()
    by_i = {r["i"]: r["r"] for r in got}
    assert len(by_i) == ok_rows.num_rows
    for i in np.flatnonzero(~failed):
        assert by_i[i] == want[i], (expr, table.slice(i, 1).to_pylist(), by_i[i], want[i])
    # each row DuckDB refuses makes the query raise, among rows that alone would not
    bad = np.flatnonzero(failed)
    good = np.flatnonzero(~failed)
    for k in range(0, len(bad), max(1, len(bad) // 6)):
        rows = np.sort(np.concatenate([good[k % len(good):][:5], bad[k:k + 1]]))
        with pytest.raises(OutOfRangeError, match="Out of Range"):
            vs.query(f"SELECT {expr} AS r FROM t", {"t": table.take(pa.array(rows))},
                     partitions=partitions)


@pytest.mark.parametrize("digits", [-1, -2, -18, -19])
def test_round_of_bigint_to_tens_matches_duckdb_or_raises(digits):
    # DuckDB refuses ROUND(-2**63, d) for every d (it takes the absolute value first); ours rounds
    # it when the result fits, so that row is left out here
    table = int_pairs().filter(pa.compute.not_equal(int_pairs()["x"], I64_MIN))
    expr = f"ROUND(x, {digits})"
    want = duck_outcomes(expr, table)
    failed = np.array([isinstance(w, Exception) for w in want])
    ok_rows = table.filter(pa.array(~failed))
    got = vs.query(f"SELECT i, {expr} AS r FROM t", {"t": ok_rows}).to_pylist()
    wanted = [w for w, f in zip(want, failed) if not f]
    assert [r["r"] for r in got] == wanted
    for i in np.flatnonzero(failed):
        with pytest.raises(OutOfRangeError):
            vs.query(f"SELECT {expr} AS r FROM t", {"t": table.slice(int(i), 1)})


@pytest.mark.parametrize("expr", INT_EXPRS)
def test_the_error_names_exactly_the_rows_that_overflowed(expr):
    # Engine.push evaluates the whole batch: the mask on the error is DuckDB's failing rows
    table = int_pairs(seed=9)
    failed = np.array([isinstance(w, Exception) for w in duck_outcomes(expr, table)])
    eng = vs.Engine(f"SELECT {expr} AS r FROM t")
    with pytest.raises(OutOfRangeError) as info:
        eng.push("t", table.to_batches()[0])
    assert info.value.rows is not None
    assert info.value.rows.tolist() == failed.tolist()


def test_message_reads_like_duckdb():
    with pytest.raises(OutOfRangeError) as info:
        vs.query("SELECT x + x AS y FROM t", {"t": {"x": [1, 2**62]}})
    assert str(info.value) == ("Out of Range Error: Overflow in addition of INT64 "
                               "(4611686018427387904 + 4611686018427387904)")
    assert isinstance(info.value, ArithmeticError) and isinstance(info.value, vs.errors.VelostreamError)


def test_null_rows_never_raise(partitions):
    # a NULL row's stored value is garbage (here the int64 extremes): it must not count
    x = pa.array([I64_MAX, 5, I64_MIN], pa.int64(), mask=np.array([True, False, True]))
    got = vs.query("SELECT x + 1 AS a, x * 3 AS b, -x AS c, ABS(x) AS d FROM t",
                   {"t": pa.table({"x": x})}, partitions=partitions).to_pylist()
    assert got == [{"a": None, "b": None, "c": None, "d": None},
                   {"a": 6, "b": 15, "c": -5, "d": 5},
                   {"a": None, "b": None, "c": None, "d": None}]


def test_case_evaluates_a_branch_only_for_the_rows_that_take_it(partitions):
    table = pa.table({"x": pa.array([2**62, 3, -2**62, None], pa.int64())})
    sql = ("SELECT CASE WHEN x < 10 AND x > -10 THEN x * x WHEN x > 0 THEN x - 1 "
           "ELSE -x END AS r FROM t")
    want = [r[0] for r in duck_rows(sql, table)]
    got = [r["r"] for r in vs.query(sql, {"t": table}, partitions=partitions).to_pylist()]
    assert got == want
    with pytest.raises(OutOfRangeError):  # a row that takes an overflowing branch still fails
        vs.query("SELECT CASE WHEN x > 0 THEN x * 4 ELSE 0 END AS r FROM t", {"t": table},
                 partitions=partitions)


def test_where_filters_before_the_select_list_is_evaluated(partitions):
    table = pa.table({"x": pa.array([I64_MAX, 1, 2], pa.int64())})
    got = vs.query("SELECT x + 1 AS y FROM t WHERE x < 100", {"t": table},
                   partitions=partitions).to_pylist()
    assert got == [{"y": 2}, {"y": 3}]
    with pytest.raises(OutOfRangeError):
        vs.query("SELECT x FROM t WHERE x + 1 > 0", {"t": table}, partitions=partitions)


# ------------------------------------------------------------------------------ CAST, TRY_CAST

@pytest.mark.parametrize("expr", ["CAST(d AS BIGINT)", "TRY_CAST(d AS BIGINT)", "CAST(d AS DOUBLE)"])
def test_cast_of_double_matches_duckdb_or_raises(expr, partitions):
    table = doubles()
    want = duck_outcomes(expr, table)
    failed = np.array([isinstance(w, Exception) for w in want])
    assert failed.any() == expr.startswith("CAST(d AS BIGINT")
    ok_rows = table.filter(pa.array(~failed))
    got = vs.query(f"SELECT i, {expr} AS r FROM t", {"t": ok_rows.to_batches(max_chunksize=50)},
                   partitions=partitions).to_pylist()
    by_i = {r["i"]: r["r"] for r in got}
    assert len(by_i) == ok_rows.num_rows
    for i in np.flatnonzero(~failed):
        assert same(by_i[i], want[i]), (expr, table["d"][int(i)].as_py(), by_i[i], want[i])
    for i in np.flatnonzero(failed):
        with pytest.raises(OutOfRangeError, match="out of range"):
            vs.query(f"SELECT {expr} AS r FROM t", {"t": table.slice(int(i), 1)},
                     partitions=partitions)


def test_cast_to_decimal_never_wraps(partitions):
    # DECIMAL(18, 2) is int64 scaled by 100 here: a value whose scaled form leaves int64 fails
    # (DuckDB: out of range too), and TRY_CAST makes it NULL
    data = {"t": {"d": [1e30, math.inf, math.nan, 1.25, None], "x": [I64_MAX, 7, None, -3, 1]}}
    got = vs.query("SELECT TRY_CAST(d AS DECIMAL(18, 2)) AS a, TRY_CAST(x AS DECIMAL(18, 2)) AS b "
                   "FROM t", data, partitions=partitions).to_pylist()
    assert [(r["a"], r["b"]) for r in got] == [
        (None, None), (None, Decimal("7.00")), (None, None), (Decimal("1.25"), Decimal("-3.00")),
        (None, Decimal("1.00"))]
    for expr in ("CAST(d AS DECIMAL(18, 2))", "CAST(x AS DECIMAL(18, 2))"):
        with pytest.raises(OutOfRangeError):
            vs.query(f"SELECT {expr} AS r FROM t", data, partitions=partitions)
        assert isinstance(duck_rows(f"SELECT TRY_CAST({expr[5:-1]}) FROM t",
                                    pa.table(data["t"]))[0][0], type(None))


def test_try_cast_of_text(partitions):
    s = ["12", " 12 ", "1.5", "2.5", "-2.5", "abc", "1e30", "9223372036854775807",
         "9223372036854775808", "-9223372036854775808", "", None, "1e3", "nan"]
    table = pa.table({"s": pa.array(s, pa.string())})
    for target in ("BIGINT", "DOUBLE"):
        sql = f"SELECT TRY_CAST(s AS {target}) AS r FROM t"
        want = [r[0] for r in duck_rows(sql, table)]
        got = [r["r"] for r in vs.query(sql, {"t": table}, partitions=partitions).to_pylist()]
        assert all(same(g, w) for g, w in zip(got, want)), (target, got, want)
    with pytest.raises(OutOfRangeError):
        vs.query("SELECT CAST(s AS BIGINT) AS r FROM t", {"t": {"s": ["1", "1e30"]}},
                 partitions=partitions)
    assert vs.query("SELECT CAST(s AS BIGINT) AS r FROM t", {"t": {"s": ["9223372036854775807"]}},
                    partitions=partitions).to_pylist() == [{"r": I64_MAX}]


NUMBER_SPELLINGS = [
    "0x1F", "0X1f", "0x1f_ff", "0b101", "0B11", "0b102", "-0x10", "+0x1F", "0x", "0o17",
    "0x7FFFFFFFFFFFFFFF", "0x8000000000000000", "0xFFFFFFFFFFFFFFFF", "1_000", "1_0.0_1",
    "1_000.5", "1_2_3_4_5", "1__0", "_1", "1_", "1.005", "1.015", "-0.005", "99999999.995",
    "123456789012.5", "0.1234567890123456789", "1e40", "-1.5e-3", "nan", "inf", ".5", "5.",
    "12abc", "", None]


@pytest.mark.parametrize("target", ["BIGINT", "DOUBLE", "DECIMAL(10, 2)", "DECIMAL(18, 4)"])
def test_try_cast_reads_every_number_spelling_duckdb_reads(target, partitions):
    """Hexadecimal and binary integers, underscores between digits, decimals rounded half away
    from zero to the scale and out of range beyond the precision: as DuckDB, row for row."""
    t = pa.table({"s": pa.array(NUMBER_SPELLINGS, pa.string())})
    sql = f"SELECT TRY_CAST(s AS {target}) AS r FROM t"
    got = [r["r"] for r in vs.query(sql, {"t": t.to_batches(max_chunksize=7)},
                                    partitions=partitions).to_pylist()]
    want = [r[0] for r in duck_rows(sql, t)]
    assert all(same(g, w) for g, w in zip(got, want)), list(zip(NUMBER_SPELLINGS, got, want))


def test_cast_of_text_to_decimal_rounds_or_fails_its_row(partitions):
    ok = {"t": {"s": ["1.005", "-0.005", "1_000.125", "0.1234567890123456789"]}}
    got = vs.query("SELECT CAST(s AS DECIMAL(10, 2)) AS r FROM t", ok,
                   partitions=partitions).to_pylist()
    assert [r["r"] for r in got] == [r[0] for r in duck_rows(
        "SELECT CAST(s AS DECIMAL(10, 2)) FROM t", pa.table(ok["t"]))]
    for text in ("123456789012.5", "1e40", "0.1234567890123456789e30"):
        with pytest.raises(OutOfRangeError, match=f"Could not convert string '{text}'"):
            vs.query("SELECT CAST(s AS DECIMAL(10, 2)) AS r FROM t", {"t": {"s": ["1", text]}},
                     partitions=partitions)


def test_cast_of_text_that_is_no_number_fails_its_row(partitions):
    data = {"t": {"s": ["1", "abc", None, " 2.5 "]}}
    for target in ("BIGINT", "DOUBLE", "DECIMAL(18, 2)"):
        with pytest.raises(OutOfRangeError, match="Could not convert string '.*' to "):
            vs.query(f"SELECT CAST(s AS {target}) AS r FROM t", data, partitions=partitions)
    # not when the row never reaches the CAST
    sql = "SELECT CASE WHEN s = 'abc' THEN -1 ELSE CAST(s AS DOUBLE) END AS r FROM t"
    assert [r["r"] for r in vs.query(sql, data, partitions=partitions).to_pylist()] == \
        [r[0] for r in duck_rows(sql, pa.table(data["t"]))]


def test_decimal_arithmetic_is_exact_or_raises(partitions):
    table = pa.table({"d": pa.array(["1.5", "-2.25", None], pa.string()),
                      "x": pa.array([10**12, -7, 3], pa.int64())})
    sql = "SELECT CAST(d AS DECIMAL(18, 6)) + x AS a, CAST(d AS DECIMAL(18, 6)) * x AS b FROM t"
    got = [tuple(r.values()) for r in vs.query(sql, {"t": table}, partitions=partitions).to_pylist()]
    assert got == duck_rows(sql, table)
    big = pa.table({"d": ["1.5"], "x": pa.array([10**13], pa.int64())})  # 10**13 * 10**6 > 2**63
    for expr in ("CAST(d AS DECIMAL(18, 6)) + x", "CAST(d AS DECIMAL(18, 6)) * x"):
        with pytest.raises(OutOfRangeError):
            vs.query(f"SELECT {expr} AS r FROM t", {"t": big}, partitions=partitions)


def test_try_cast_parses_and_casts_of_a_null_or_same_type():
    assert vs.query("SELECT TRY_CAST(x AS BIGINT) AS a, TRY_CAST(NULL AS BIGINT) AS b, "
                    "TRY_CAST(x AS DOUBLE) AS c FROM t", {"t": {"x": [3]}}).to_pylist() == \
        [{"a": 3, "b": None, "c": 3.0}]
    with pytest.raises(SqlError):
        vs.query("SELECT TRY_CAST(x BIGINT) FROM t", {"t": {"x": [3]}})


BOOL_TEXT = ["true", "TRUE", "t", " t ", "1", "0", "yes", "Y", "no", "n", "on", "abc", "", "2", None]
TIME_TEXT = ["2024-01-01", "2024-01-01 10:00:00", "2024-01-01T10:00:00Z", "abc", None,
             "2024-13-01", "2024-02-29T23:59:59.5"]


@pytest.mark.parametrize("target,texts", [("BOOLEAN", BOOL_TEXT), ("TIMESTAMP", TIME_TEXT)])
def test_text_to_boolean_and_timestamp_row_by_row_as_duckdb(target, texts, partitions):
    """TRY_CAST gives NULL exactly where DuckDB does; CAST fails with the first row DuckDB
    refuses (a bad record in a job), never a bare exception."""
    t = pa.table({"s": pa.array(texts, pa.string())})
    got = vs.query(f"SELECT TRY_CAST(s AS {target}) AS r FROM t", {"t": t},
                   partitions=partitions).to_arrow().column("r").to_pylist()
    want = [r[0] for r in duck(f"SELECT TRY_CAST(s AS {target}) FROM t", t=t)]
    if target == "TIMESTAMP":  # ours: epoch ms
        want = [None if w is None else round(w.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
                for w in want]
    assert got == want
    good = pa.table({"s": pa.array([x for x, w in zip(texts, want) if w is not None or x is None],
                                   pa.string())})
    assert vs.query(f"SELECT CAST(s AS {target}) AS r FROM t", {"t": good},
                    partitions=partitions).to_arrow().column("r").to_pylist() == [
        w for x, w in zip(texts, want) if w is not None or x is None]
    with pytest.raises(OutOfRangeError, match="Could not convert string '.*' to "):
        vs.query(f"SELECT CAST(s AS {target}) AS r FROM t", {"t": t}, partitions=partitions)


# ------------------------------------------------------------------------------------ SUM

def test_sum_of_bigint_that_leaves_int64_raises_at_every_partition_count(partitions):
    # one key, so at every partition count one partition holds the whole sum
    data = {"k": ["a", "a", "b"], "x": [I64_MAX, 1, 5]}
    for sql in ("SELECT SUM(x) AS s FROM t", "SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL",
                "SELECT k, SUM(x) AS s FROM t GROUP BY k"):
        with pytest.raises(OutOfRangeError):
            vs.query(sql, {"t": data}, partitions=partitions)


def test_sum_that_leaves_int64_and_comes_back_is_exact(partitions):
    table = pa.table({"k": ["a", "a", "a", "b"], "x": pa.array([I64_MAX, I64_MAX, -I64_MAX, 1])})
    sql = "SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL"
    got = sorted(vs.query(sql, {"t": table.to_batches(max_chunksize=1)},
                          partitions=partitions).to_pylist(), key=lambda r: r["k"])
    assert got == [{"k": "a", "s": I64_MAX}, {"k": "b", "s": 1}]


def test_two_phase_sum_overflow_raises_the_same_error(partitions):
    # a global SUM runs two-phase at 2+ partitions: the partials fit, their merge does not
    table = pa.table({"x": pa.array([2**62] * 4, pa.int64())})
    with pytest.raises(OutOfRangeError):
        vs.query("SELECT SUM(x) AS s FROM t", {"t": table.to_batches(max_chunksize=1)},
                 partitions=partitions)


# ------------------------------------------------------------------------------------- ||

def test_concat_casts_operands_to_text_as_duckdb(partitions):
    table = pa.table({"s": pa.array(["x", None, "yz", ""], pa.string()),
                      "n": pa.array([1, 2, None, -7], pa.int64()),
                      "f": pa.array([1.5, 100.0, 2.5e-05, 1e16], pa.float64()),
                      "b": pa.array([True, None, False, True])})
    exprs = ["'a' || 1", "1 || 'a'", "'a' || 1.5", "'a' || NULL", "'a' || TRUE", "s || n",
             "n || s", "s || f", "'a' || f", "s || b", "n || n", "s || s"]
    sql = "SELECT " + ", ".join(f"{e} AS c{j}" for j, e in enumerate(exprs)) + " FROM t"
    want = duck_rows(sql, table)
    got = vs.query(sql, {"t": table}, partitions=partitions).to_pylist()
    assert [tuple(r.values()) for r in got] == want


# ------------------------------------------------------------------------------------ LIKE

LIKE_CASES = [
    r"s LIKE 'a\_c'", r"s LIKE '%\%'", r"s LIKE '%\\%'", r"s LIKE '\%'",
    "s LIKE 'a#_c' ESCAPE '#'", "s LIKE 'a#%c' ESCAPE '#'", "s LIKE '%##%' ESCAPE '#'",
    "s LIKE '#a%' ESCAPE '#'", r"s LIKE 'a\_c' ESCAPE '\'", r"s LIKE '%\\%' ESCAPE '\'",
    "s NOT LIKE '%#_%' ESCAPE '#'", "s ILIKE 'A#_%' ESCAPE '#'", "s LIKE 'a_c' ESCAPE ''",
    "s LIKE p", "s LIKE p ESCAPE '#'", "s LIKE 'a%' ESCAPE NULL",
]


@pytest.mark.parametrize("cond", LIKE_CASES)
def test_like_escape_matches_duckdb(cond, partitions):
    rng = np.random.default_rng(3)
    alphabet = list("aAc_%\\#")
    strs = ["".join(rng.choice(alphabet, rng.integers(0, 5))) for _ in range(150)]
    strs += ["a_c", "a\\_c", "abc", "a%c", "a#c", "\\", "%", "#", "##", None]
    # patterns for the per-row form: no pattern ends with a lone '#'
    pats = ["".join(rng.choice(list("a_%\\#c"), rng.integers(0, 4))) + "c" for _ in strs]
    pats[-1] = None
    table = pa.table({"s": pa.array(strs, pa.string()), "p": pa.array(pats, pa.string())})
    sql = f"SELECT s, {cond} AS m FROM t"
    want = duck_rows(sql, table)
    got = vs.query(sql, {"t": table.to_batches(max_chunksize=40)}, partitions=partitions)
    assert sorted(map(repr, (tuple(r.values()) for r in got.to_pylist()))) == \
        sorted(map(repr, want))


def test_like_escape_errors():
    data = {"t": {"s": ["a"]}}
    with pytest.raises(SqlError, match="empty or one character"):
        vs.query("SELECT s LIKE 'a' ESCAPE '##' AS m FROM t", data)
    with pytest.raises(SqlError, match="ends with its escape"):
        vs.query("SELECT s LIKE 'a#' ESCAPE '#' AS m FROM t", data)
    with pytest.raises(SqlError):
        vs.query("SELECT s LIKE 'a' ESCAPE s AS m FROM t", data)


# ----------------------------------------------------------- VAR_POP / STDDEV_POP of one row

VAR_DATA = pa.table({
    "k": ["one", "inf", "nan", "two", "two", "ninf", "null", "null"],
    "x": pa.array([1.5, math.inf, math.nan, 1.0, 4.0, -math.inf, None, 2.0], pa.float64()),
    "_TIMESTAMP": pa.array([0, 1, 2, 3, 4, 5, 6, 7], pa.int64()),
})


def _rows(result, cols):
    return sorted(tuple("nan" if isinstance(r[c], float) and math.isnan(r[c]) else r[c]
                        for c in cols) for r in result)


@pytest.mark.parametrize("shape", ["group_by", "tumbling", "session", "changes", "global"])
def test_population_variance_of_one_value_is_zero(shape, partitions):
    aggs = "VAR_POP(x) AS v, STDDEV_POP(x) AS s"
    duck_sql = f"SELECT k, {aggs} FROM t GROUP BY k"
    sql = {
        "group_by": f"SELECT k, {aggs} FROM t GROUP BY k EMIT FINAL",
        "tumbling": f"SELECT k, {aggs} FROM t GROUP BY k WINDOW TUMBLING(1m)",
        "session": f"SELECT k, {aggs} FROM t GROUP BY k WINDOW SESSION(1m)",
        "changes": f"SELECT k, {aggs} FROM t GROUP BY k EMIT CHANGES",
    }.get(shape)
    table = VAR_DATA
    want = _rows([dict(zip(("k", "v", "s"), r)) for r in duck_rows(duck_sql, table)],
                 ("k", "v", "s"))
    if shape == "global":  # each one-row group on its own, through the two-phase merge at 2+
        for k in ("one", "inf", "nan", "ninf"):
            part = table.filter(pa.compute.equal(table["k"], k))
            got = vs.query(f"SELECT {aggs} FROM t", {"t": part}, partitions=partitions).to_pylist()
            assert got == [{"v": 0.0, "s": 0.0}], (k, got)
        return
    got = vs.query(sql, {"t": table.to_batches(max_chunksize=3)}, partitions=partitions).to_pylist()
    if shape == "changes":  # the last change per key is the final value
        got = list({r["k"]: r for r in got}.values())
    assert _rows(got, ("k", "v", "s")) == want


def test_population_variance_of_one_row_in_a_rows_window(partitions):
    table = pa.table({"k": ["a", "b", "c", "a"],
                      "x": pa.array([math.inf, math.nan, 2.0, 1.0], pa.float64())})
    sql = ("SELECT k, VAR_POP(x) OVER (ROWS WINDOW BUFFER 1 ROWS PARTITION BY k) AS v, "
           "STDDEV_POP(x) OVER (ROWS WINDOW BUFFER 1 ROWS PARTITION BY k) AS s FROM t")
    got = vs.query(sql, {"t": table}, partitions=partitions).to_pylist()
    assert sorted((r["k"], r["v"], r["s"]) for r in got) == \
        [("a", 0.0, 0.0), ("a", 0.0, 0.0), ("b", 0.0, 0.0), ("c", 0.0, 0.0)]


# ------------------------------------------------------------------ jobs: bad records go on

# (job query, DuckDB's form of it or None, the row-level expression that fails for a bad row)
JOB_QUERIES = {
    "project": ("SELECT i, x * 4 AS y FROM t WHERE x + 1 > -100",
                "SELECT i, x * 4 AS y FROM t WHERE x + 1 > -100",
                "CASE WHEN x + 1 > -100 THEN x * 4 END"),
    "group_by": ("SELECT k, SUM(x * 2) AS s, COUNT(*) AS n FROM t GROUP BY k EMIT FINAL",
                 "SELECT k, SUM(x * 2) AS s, COUNT(*) AS n FROM t GROUP BY k", "x * 2"),
    "group_by_key": ("SELECT x * 2 AS k, COUNT(*) AS n FROM t GROUP BY x * 2 EMIT FINAL",
                     "SELECT x * 2 AS k, COUNT(*) AS n FROM t GROUP BY x * 2", "x * 2"),
    "rows_window": ("SELECT i, MIN(-x) OVER (ROWS WINDOW BUFFER 3 ROWS PARTITION BY k) AS s FROM t",
                    None, "-x"),
}


@functools.lru_cache(maxsize=None)
def job_data(seed: int = 4) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.integers(-1000, 1000, n)
    big = rng.random(n) < 0.06  # rows where some of x + 1, x * 2, x * 4, -x overflow
    x[big] = rng.choice(np.array([I64_MAX, I64_MIN, 2**62, -2**62 - 5], np.int64), big.sum())
    valid = rng.random(n) > 0.1
    valid[:3] = False
    x[:3] = I64_MAX  # NULL rows whose stored value would overflow: not bad records
    return pa.table({"i": pa.array(np.arange(n), pa.int64()),
                     "k": pa.array(rng.choice(["a", "b", "c"], n)),
                     "x": pa.array(x, pa.int64(), mask=~valid)})


@pytest.mark.parametrize("name", sorted(JOB_QUERIES))
def test_a_job_dead_letters_the_overflowing_rows_and_goes_on(name, partitions):
    sql, duck_sql, row_expr = JOB_QUERIES[name]
    table = job_data()
    bad = np.array([isinstance(w, Exception) for w in duck_outcomes(row_expr, table)])
    assert 3 <= bad.sum() < 60
    job = vs.Job(sql, {"t": table.to_batches(max_chunksize=64)}, partitions=partitions,
                 failure_strategy="LogAndContinue")
    stats = job.run()
    # every overflowing row is counted and dead-lettered with the reason, and only those
    dead = [(reason, rb) for reason, rb in job.dead_letters if "Out of Range" in reason]
    # (the dead-letter rows carry the columns the query reads: x is one)
    dead_x = sorted(v for _, rb in dead for v in rb.column("x").to_pylist())
    assert dead_x == sorted(table["x"].filter(pa.array(bad)).to_pylist())
    assert stats.records_failed == bad.sum()
    # the other rows give the answer DuckDB gives without the bad ones
    good = table.filter(pa.array(~bad))
    got = job.result().to_pylist()
    if duck_sql is not None:
        want = duck_rows(duck_sql, good)
        assert sorted(map(repr, (tuple(r.values()) for r in got))) == sorted(map(repr, want))
    else:
        ref = vs.query(sql, {"t": good}, partitions=1).to_pylist()
        assert sorted(got, key=lambda r: r["i"]) == sorted(ref, key=lambda r: r["i"])


def test_a_job_under_fail_batch_fails_with_the_same_error(partitions):
    job = vs.Job("SELECT x * 4 AS y FROM t", {"t": job_data().to_batches(max_chunksize=64)},
                 partitions=partitions, failure_strategy="FailBatch")
    with pytest.raises(OutOfRangeError):
        job.run()


def test_a_sum_whose_total_leaves_int64_fails_the_job_cleanly(partitions):
    # no single row is at fault: the job stops with OutOfRangeError even under LogAndContinue
    table = pa.table({"k": ["a"] * 3, "x": pa.array([I64_MAX, 1, 2], pa.int64())})
    job = vs.Job("SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL",
                 {"t": table.to_batches(max_chunksize=1)}, partitions=partitions,
                 failure_strategy="LogAndContinue")
    with pytest.raises(OutOfRangeError):
        job.run()


# ------------------------------------------------------------- ROWS windows: SUM and AVG

def _rows_window_data(seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = 300
    x = rng.choice(np.array([I64_MAX, I64_MIN, 2**62, -2**62, 3, -7, 0], np.int64), n)
    return pa.table({"i": pa.array(np.arange(n), pa.int64()), "k": rng.choice(["a", "b"], n),
                     "x": pa.array(x, pa.int64(), mask=rng.random(n) < 0.1)})


def test_rows_window_avg_of_bigint_is_exact_beyond_int64(partitions):
    table = _rows_window_data(1)
    sql = "SELECT i, AVG(x) OVER (ROWS WINDOW BUFFER 3 ROWS PARTITION BY k) AS a FROM t"
    duck = ("SELECT i, avg(x) OVER (PARTITION BY k ORDER BY i ROWS BETWEEN 2 PRECEDING AND "
            "CURRENT ROW) FROM t")
    want = dict(duck_rows(duck, table))
    got = vs.query(sql, {"t": table.to_batches(max_chunksize=50)}, partitions=partitions)
    for r in got.to_pylist():
        w = want[r["i"]]
        assert (r["a"] is None) == (w is None) and (w is None or math.isclose(r["a"], w, rel_tol=1e-12))


def test_rows_window_sum_of_bigint_raises_when_a_window_total_leaves_int64(partitions):
    table = _rows_window_data(2)
    sql = "SELECT i, SUM(x) OVER (ROWS WINDOW BUFFER 3 ROWS PARTITION BY k) AS s FROM t"
    duck = ("SELECT i, sum(x) OVER (PARTITION BY k ORDER BY i ROWS BETWEEN 2 PRECEDING AND "
            "CURRENT ROW) FROM t")
    want = duck_rows(duck, table)
    assert any(s is not None and not I64_MIN <= s <= I64_MAX for _, s in want)
    with pytest.raises(OutOfRangeError):
        vs.query(sql, {"t": table}, partitions=partitions)
    # two values of at most 2**62 in magnitude always fit: every window is exact, also -2**63
    fits = pa.table({"i": table["i"], "k": table["k"],
                     "x": pa.compute.if_else(pa.compute.greater(table["x"], 2**62 - 1),
                                             pa.scalar(2**62 - 1), table["x"])})
    fits = fits.set_column(2, "x", pa.compute.if_else(pa.compute.less(fits["x"], -2**62),
                                                     pa.scalar(-2**62), fits["x"]))
    sql2 = sql.replace("BUFFER 3", "BUFFER 2")
    want = dict(duck_rows(duck.replace("2 PRECEDING", "1 PRECEDING"), fits))
    assert min(v for v in want.values() if v is not None) == I64_MIN
    got = vs.query(sql2, {"t": fits.to_batches(max_chunksize=7)}, partitions=partitions)
    assert {r["i"]: r["s"] for r in got.to_pylist()} == want


def test_a_kafka_job_dead_letters_the_overflowing_rows_and_goes_on(kafka_broker):
    # a Kafka source runs per-source-partition tasks (fault tolerance): the same rule there
    import json
    import uuid

    from velostream.io.base import Properties
    from velostream.io.kafka import KafkaSource
    table = job_data()
    rows = table.to_pylist()
    topic = kafka_broker.unique_topic("arith", partitions=2)
    kafka_broker.produce(topic, [json.dumps(r).encode() for r in rows],
                         keys=[r["k"].encode() for r in rows])
    props = {"topic": topic, "bootstrap.servers": kafka_broker.bootstrap,
             "group.id": f"g-{uuid.uuid4().hex[:8]}", "session.timeout.ms": "6000",
             "heartbeat.interval.ms": "500"}
    src = KafkaSource("t", Properties("t", props), bounded=True)
    sql, duck_sql, row_expr = JOB_QUERIES["project"]
    job = vs.Job(sql, {"t": src}, failure_strategy="LogAndContinue")
    try:
        stats = job.run()
    finally:
        src.close()
    assert job.processor == "tasks"
    bad = np.array([isinstance(w, Exception) for w in duck_outcomes(row_expr, table)])
    assert stats.records_failed == bad.sum() > 0
    dead_x = sorted(v for reason, rb in job.dead_letters if "Out of Range" in reason
                    for v in rb.column("x").to_pylist())
    assert dead_x == sorted(table["x"].filter(pa.array(bad)).to_pylist())
    got = sorted(tuple(r.values()) for r in job.result().to_pylist())
    assert got == sorted(duck_rows(duck_sql, table.filter(pa.array(~bad))))


@pytest.mark.parametrize("digits", [-3, -1, 1, 2, 3, 6, 10])
def test_round_of_doubles_is_duckdbs_bit_for_bit(digits, partitions):
    """ROUND(x, d) of a DOUBLE gives DuckDB's double exactly: scaled and rounded half away from
    zero in extended precision (ROUND(20.45, 1) = 20.4), the whole number divided in DOUBLE
    (ROUND(71.60166126036438, 6) = 71.601661, not the next double up); overflow as DuckDB."""
    rng = np.random.default_rng(5 + digits)
    xs = np.concatenate([rng.normal(0, 1000, 3000), rng.uniform(-1, 1, 3000),
                         np.round(rng.uniform(-100, 100, 3000), 3) + 0.0005,
                         [20.45, 2.675, 1.005, -0.125, 0.5, 71.60166126036438, 1e300, -1e300,
                          1.5e308, 0.0, -0.0]])
    t = pa.table({"x": pa.array(xs)})
    sql = f"SELECT ROUND(x, {digits}) AS r FROM t"
    got = [r["r"] for r in vs.query(sql, {"t": t.to_batches(max_chunksize=1000)},
                                    partitions=partitions).to_pylist()]
    want = [r[0] for r in duck_rows(f"SELECT round(x, {digits}) FROM t", t)]
    bad = [(x, g, w) for x, g, w in zip(xs, got, want) if g != w]
    assert not bad, bad[:5]


def test_integer_division_matches_duckdb_or_raises(partitions):
    """``x // y`` (DuckDB's integer division): the quotient toward zero where DuckDB computes
    one, NULL for a zero divisor (as ``%``: DuckDB raises there unless told not to), and
    OutOfRangeError for INT64_MIN // -1, the one quotient past BIGINT; a DOUBLE operand makes it
    DOUBLE division, as in DuckDB."""
    table = int_pairs()
    want = duck_outcomes("x // y", table)
    ys = table["y"].to_pylist()
    xs = table["x"].to_pylist()
    overflow = np.array([x == I64_MIN and y == -1 for x, y in zip(xs, ys)])
    assert overflow.any() and any(y == 0 for y in ys)
    rows = table.filter(pa.array(~overflow))
    got = vs.query("SELECT i, x // y AS r FROM t", {"t": rows.to_batches(max_chunksize=37)},
                   partitions=partitions).to_pylist()
    by_i = {r["i"]: r["r"] for r in got}
    for i in np.flatnonzero(~overflow):
        expected = None if ys[i] == 0 else want[i]
        assert not isinstance(expected, Exception), (xs[i], ys[i], expected)
        assert by_i[i] == expected, (xs[i], ys[i], by_i[i], expected)
    with pytest.raises(OutOfRangeError, match="Overflow in division"):
        vs.query("SELECT x // y AS r FROM t", {"t": table.filter(pa.array(overflow))},
                 partitions=partitions)
    d = duck_rows("SELECT i, x // 2.0, 7.5 // 2 FROM t", rows)
    got = vs.query("SELECT i, x // 2.0 AS a, 7.5 // 2 AS b FROM t", {"t": rows},
                   partitions=partitions).to_pylist()
    assert [(r["i"], r["a"], r["b"]) for r in got] == [(i, a, float(b)) for i, a, b in d]
