"""A seeded, grammar-based generator of SQL queries over one table, for tests/test_sql_fuzz.py.

Every generated expression is rendered twice: in velostream's dialect (docs/SQL.md) and in DuckDB's,
so the same query can be run by both and the answers compared (docs/SQL.md: where the contract is
silent, DuckDB is the reference). The two texts differ only where the dialects do:

* a decimal literal such as ``1.5`` is DOUBLE in velostream and DECIMAL in DuckDB, so DuckDB gets
  ``CAST(1.5 AS DOUBLE)``;
* ``EMIT FINAL`` (velostream) is a plain ``GROUP BY`` in DuckDB;
* ``FIRST_VALUE``/``LAST_VALUE`` (arrival order) are ``first(x ORDER BY id)``/``last(x ORDER BY id)``.

Typed expression trees (INT, FLOAT, TEXT, BOOL; DATE inside them) are built from the table's columns, literals with
edge values (0, -1, empty and non-ASCII text, NULL of every type), operators, CASE, CAST, COALESCE,
NULLIF, IN, BETWEEN, LIKE, IS NULL and the scalar functions of docs/SQL.md. Integer expressions carry
a bound on their magnitude and ``+ - *`` are only generated while the result stays below 2^31, so no
generated integer arithmetic can overflow (BIGINT here, INTEGER for DuckDB's constant-only parts):
overflow is an error case with its own tests. The column holding the INT64 extremes is only
compared, grouped, counted and cast, never used in arithmetic.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

INT, FLOAT, TEXT, BOOL = "INT", "FLOAT", "TEXT", "BOOL"
DATE = "DATE"  # only inside expressions (date_expr): the table has no DATE column
NUMERIC = (INT, FLOAT)
INT_SAFE = 2 ** 31 - 1  # DuckDB types small integer literals INTEGER: keep every int below this
I64_MAX = 2 ** 63 - 1
I64_MIN = -2 ** 63

# ----------------------------------------------------------------------------------- the table

TEXT_VALUES = ["", "a", "abc", "ABC", "Abc", " pad ", "a_b", "x%y", "é", "ÉTÉ", "straße", "日本語",
               "😀", "k1", "zz", "0", "-1", "a b c", " 12 ", "1.5", "1e3", "+3", "a\\%", "x!y",
               "9223372036854775808"]
FLOAT_VALUES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.25, -3.75, 10.125, 1e6, -1e6 + 0.5, 3.0, 7.5]
KEYS = ["k0", "k1", "k2", "k3"]
# DATE literals: month and year ends, leap days, the epoch and the day before it
DATE_LITERALS = ["2024-02-29", "1970-01-01", "1969-12-31", "2000-03-01", "1999-12-31", "1900-02-28",
                 "2100-12-31", "2023-01-31"]
DATE_SPAN_DAYS = 200_000  # a generated DATE stays within this many days of its literal


def make_fuzz_table(n: int = 200, seed: int = 0, *, nan: bool = False, null_frac: float = 0.12) -> pa.Table:
    """``n`` rows: ``id`` (0..n-1), ``i`` (int64, |i| <= 1000), ``j`` (int64, |j| <= 5: divisors
    and small keys), ``e`` (int64 edge values: 0, -1, INT64 min/max), ``f`` (float64 with exact
    binary fractions, so sums do not depend on the order of addition; NaN when ``nan``), ``s``
    (text: empty, padded, LIKE metacharacters, non-ASCII), ``k`` (text key of 4 values), ``b``
    (bool), ``d`` (float64 prices with two decimals, which binary floats hold inexactly: 20.45 is
    20.4499..., a test of ROUND). Every column but ``id`` has NULLs."""
    rng = np.random.default_rng(seed)

    def nulls(frac=null_frac):
        return rng.random(n) < frac

    i = rng.integers(-1000, 1001, n)
    edge = rng.random(n) < 0.2
    i[edge] = rng.choice([0, -1, 1, 1000, -1000], int(edge.sum()))
    j = rng.integers(-5, 6, n)
    e = rng.choice(np.array([0, -1, 1, 42, I64_MAX, I64_MIN, I64_MAX - 1, I64_MIN + 1], dtype=np.int64), n)
    fv = np.array(FLOAT_VALUES + ([float("nan")] if nan else []))
    f = fv[rng.integers(0, len(fv), n)]
    s = [TEXT_VALUES[x] for x in rng.integers(0, len(TEXT_VALUES), n)]
    k = [KEYS[x] for x in rng.integers(0, len(KEYS), n)]
    b = rng.random(n) < 0.5
    d = np.round(rng.normal(20.0, 40.0, n), 2)
    d[rng.random(n) < 0.2] = rng.choice([20.45, 2.675, 0.35, 1.005, -0.45, 0.0])
    return pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "i": pa.array(i.astype(np.int64), mask=nulls()),
        "j": pa.array(j.astype(np.int64), mask=nulls()),
        "e": pa.array(e, type=pa.int64(), mask=nulls()),
        "f": pa.array(f, type=pa.float64(), mask=nulls()),
        "s": pa.array(s, type=pa.string(), mask=nulls()),
        "k": pa.array(k, type=pa.string(), mask=nulls(min(null_frac, 0.1))),
        "b": pa.array(b, type=pa.bool_(), mask=nulls()),
        "d": pa.array(d, type=pa.float64(), mask=nulls()),
    })


def uneven_batches(table: pa.Table, seed: int = 0) -> list[pa.RecordBatch]:
    """``table`` cut into three record batches of uneven sizes (one of them small)."""
    n = table.num_rows
    rng = random.Random(seed)
    a = rng.randint(1, max(1, n // 8))
    b = rng.randint(a + 1, max(a + 2, n - 2))
    cuts = [0, a, b, n]
    return [table.slice(lo, hi - lo).combine_chunks().to_batches()[0]
            for lo, hi in zip(cuts, cuts[1:]) if hi > lo]


# column name -> (type, magnitude bound, may take part in arithmetic)
COLUMNS = {"id": (INT, 1000, True), "i": (INT, 1000, True), "j": (INT, 5, True), "e": (INT, None, False),
           "f": (FLOAT, None, True), "s": (TEXT, None, True), "k": (TEXT, None, True),
           "b": (BOOL, None, True), "d": (FLOAT, None, True)}


# ------------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expr:
    eng: str          # velostream's text
    duck: str         # DuckDB's text
    type: str         # INT, FLOAT, TEXT, BOOL
    bound: Optional[int] = None  # INT: largest possible |value| (None: unbounded, no arithmetic)
    is_agg: bool = False         # contains an aggregate

    def wrap(self, fmt: str, type_: Optional[str] = None, bound=None) -> "Expr":
        return Expr(fmt.format(self.eng), fmt.format(self.duck), type_ or self.type, bound, self.is_agg)


def _join(fmt: str, parts: list[Expr], type_: str, bound=None) -> Expr:
    return Expr(fmt.format(*[p.eng for p in parts]), fmt.format(*[p.duck for p in parts]), type_, bound,
                any(p.is_agg for p in parts))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _add_bounds(a, b):
    return None if a is None or b is None else a + b


def _mul_bounds(a, b):
    return None if a is None or b is None else a * b


def _safe(bound) -> bool:
    return bound is not None and bound <= INT_SAFE


# no escape character unless ESCAPE names one: a backslash is a plain character (DuckDB)
LIKE_PATTERNS = ["%", "", "a%", "%a%", "_", "__", "%b_", "A%", "%é%", "日%", "x%", "%\\%%", "k_", "% %",
                 "a\\%", "%\\_"]
# with ESCAPE '!'
LIKE_ESCAPED = ["x!%y", "%!%%", "a!_b", "%!!%", "!a%", "x!!y"]


class Gen:
    """Random typed expressions over ``COLUMNS`` (or, for HAVING and select lists of aggregate
    queries, over group keys and aggregates: see ``agg_expr``)."""

    def __init__(self, seed: int, *, columns=None, nan: bool = False):
        self.r = random.Random(seed)
        self.columns = dict(columns or COLUMNS)
        self.nan = nan

    # ---- helpers
    def choice(self, xs):
        return self.r.choice(xs)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def column(self, t: str, arith: bool = False) -> Optional[Expr]:
        names = [c for c, (ct, _, ok) in self.columns.items() if ct == t and (ok or not arith)]
        if not names:
            return None
        c = self.choice(names)
        return Expr(c, c, t, self.columns[c][1])

    def literal(self, t: str) -> Expr:
        if self.chance(0.08):
            return self.null(t)
        if t == INT:
            v = self.choice([0, 1, -1, 2, 3, 5, 7, 10, 100, -3])
            return Expr(str(v), str(v), INT, abs(v))
        if t == FLOAT:
            v = self.choice(["0.5", "1.5", "-2.25", "0.0", "100.0", "3.0", "-0.5", "1e3"])
            return Expr(v, f"CAST({v} AS DOUBLE)", FLOAT)
        if t == TEXT:
            q = _quote(self.choice(TEXT_VALUES))
            return Expr(q, q, TEXT)
        v = self.choice(["TRUE", "FALSE"])
        return Expr(v, v, BOOL)

    def null(self, t: str) -> Expr:
        sqlt = {INT: "BIGINT", FLOAT: "DOUBLE", TEXT: "VARCHAR", BOOL: "BOOLEAN"}[t]
        if t == BOOL and self.chance(0.5):
            return Expr("NULL", "NULL", BOOL)  # a bare NULL is a valid condition
        return Expr(f"CAST(NULL AS {sqlt})", f"CAST(NULL AS {sqlt})", t, 0)

    def leaf(self, t: str, arith: bool = False) -> Expr:
        if self.chance(0.7):
            c = self.column(t, arith)
            if c is not None:
                return c
        return self.literal(t)

    # ---- typed expressions
    def expr(self, t: str, depth: int) -> Expr:
        if depth <= 0 or self.chance(0.25):
            return self.leaf(t)
        return {INT: self.int_expr, FLOAT: self.float_expr, TEXT: self.text_expr, BOOL: self.bool_expr}[t](depth)

    def arith_int(self, depth: int) -> Expr:
        """An INT expression that may take part in + - * (bounded)."""
        for _ in range(4):
            x = self.expr(INT, depth) if depth > 0 else self.leaf(INT, arith=True)
            if _safe(x.bound):
                return x
        return self.leaf(INT, arith=True) if self.column(INT, True) else self.literal(INT)

    def int_expr(self, d: int) -> Expr:
        k = self.r.randrange(14)
        if k <= 2:  # + - *
            a, b = self.arith_int(d - 1), self.arith_int(d - 1)
            op = self.choice(["+", "-", "*"])
            bound = _mul_bounds(a.bound, b.bound) if op == "*" else _add_bounds(a.bound, b.bound)
            if not _safe(bound):
                op, bound = "-", _add_bounds(a.bound, b.bound)
                if not _safe(bound):
                    return a
            return _join("({} %s {})" % op, [a, b], INT, bound)
        if k == 3:
            a, b = self.arith_int(d - 1), self.arith_int(d - 1)
            if self.chance(0.5):
                return _join("({} % {})", [a, b], INT, a.bound)
            return _join("MOD({}, {})", [a, b], INT, a.bound)
        if k == 4:
            a = self.arith_int(d - 1)
            # (FLOOR and CEIL of an integer are DOUBLE, as in DuckDB: float_expr makes them)
            fn = self.choice(["ABS({})", "(- {})", "SIGN({})", "ROUND({})"])
            return a.wrap(fn, INT, 1 if fn.startswith("SIGN") else a.bound)
        if k == 5:
            a = self.expr(TEXT, d - 1)
            return a.wrap("LENGTH({})", INT, 64)
        if k == 6:
            return self.case(INT, d)
        if k == 7:
            return self.coalesce(INT, d)
        if k == 8:
            a, b = self.expr(INT, d - 1), self.expr(INT, d - 1)
            return _join("NULLIF({}, {})", [a, b], INT, a.bound)
        if k == 9:
            xs = [self.expr(INT, d - 1) for _ in range(self.r.randint(2, 3))]
            fn = self.choice(["LEAST", "GREATEST"])
            bound = None if any(x.bound is None for x in xs) else max(x.bound for x in xs)
            return _join(fn + "(" + ", ".join(["{}"] * len(xs)) + ")", xs, INT, bound)
        if k == 10:  # a non-arithmetic column with extreme values, and casts
            c = self.choice(["e", "CAST(b AS BIGINT)", "CAST(ROUND(f) AS BIGINT)"])
            if c == "CAST(ROUND(f) AS BIGINT)" and self.nan:
                c = "e"
            bound = {"e": None, "CAST(b AS BIGINT)": 1}.get(c, 10 ** 6)
            return Expr(c, c, INT, bound)
        if k == 11:
            a = self.arith_int(d - 1)
            n = self.choice([-2, -1, 0, 1])
            return a.wrap("ROUND({}, %d)" % n, INT, None if a.bound is None else a.bound + 100)
        if k == 12:
            # TRY_CAST of text (NULL where it is no integer) and of DOUBLE (NULL for NaN, inf).
            # Text like '0x1F' or '1_000' is read as DuckDB reads it: test_arithmetic's
            # NUMBER_SPELLINGS compare every such spelling with DuckDB
            a = self.expr(self.choice([TEXT, FLOAT]), d - 1)
            return a.wrap("TRY_CAST({} AS BIGINT)", INT, None)
        if self.chance(0.5):  # a DATE's day count or part
            a = self.date_expr(d - 1)
            if self.chance(0.4):
                b = self.date_expr(d - 1)
                return _join("({} - {})", [a, b], INT, 2 * DATE_SPAN_DAYS)
            return a.wrap(self.choice(["YEAR({})", "MONTH({})", "DAY({})", "DAYOFWEEK({})",
                                       "EXTRACT(DOY FROM {})"]), INT, 3000)
        return self.leaf(INT)

    def number(self, d: int) -> Expr:
        return self.expr(FLOAT, d) if self.chance(0.6) else self.arith_int(d)

    def float_expr(self, d: int) -> Expr:
        k = self.r.randrange(13)
        if k <= 2:
            a, b = self.number(d - 1), self.number(d - 1)
            if a.type == INT and b.type == INT:
                op = "/"
            else:
                op = self.choice(["+", "-", "*", "/"])
            return _join("({} %s {})" % op, [a, b], FLOAT)
        if k == 3:
            a, b = self.expr(FLOAT, d - 1), self.number(d - 1)
            return _join("({} % {})", [a, b], FLOAT)
        if k == 4:
            a = self.number(d - 1)
            fn = self.choice(["ABS({})", "(- {})", "FLOOR({})", "CEIL({})", "ROUND({})", "ROUND({}, 1)",
                              "ROUND({}, -1)", "ROUND({}, 2)", "CEILING({})"])
            return a.wrap(fn, FLOAT)
        if k == 5:
            a = self.number(d - 1)
            fn = self.choice(["SQRT({})", "LN({})", "LOG10({})", "EXP({} / 1000.0)"])
            if fn.startswith("EXP"):
                return Expr(f"EXP({a.eng} / 1000.0)", f"EXP({a.duck} / CAST(1000.0 AS DOUBLE))", FLOAT,
                            is_agg=a.is_agg)
            return a.wrap(fn, FLOAT)
        if k == 6:
            a = self.number(d - 1)
            p = self.choice(["2", "0.5", "0", "3", "-1"])
            pd = p if "." not in p else f"CAST({p} AS DOUBLE)"
            return Expr(f"POWER({a.eng}, {p})", f"POWER({a.duck}, {pd})", FLOAT, is_agg=a.is_agg)
        if k == 7:
            return self.case(FLOAT, d)
        if k == 8:
            return self.coalesce(FLOAT, d)
        if k == 9:
            a, b = self.expr(FLOAT, d - 1), self.number(d - 1)
            return _join("NULLIF({}, {})", [a, b], FLOAT)
        if k == 10:
            xs = [self.number(d - 1) for _ in range(self.r.randint(2, 3))]
            if all(x.type == INT for x in xs):
                xs[0] = self.expr(FLOAT, d - 1)
            fn = self.choice(["LEAST", "GREATEST"])
            return _join(fn + "(" + ", ".join(["{}"] * len(xs)) + ")", xs, FLOAT)
        if k == 11:
            # bounded: the INT64 extremes as doubles cancel in a SUM differently by the order of
            # addition (9.2e18 - 9.2e18 + 42 is 42 or 0)
            a = self.arith_int(d - 1)
            return a.wrap("CAST({} AS DOUBLE)", FLOAT)
        if k == 12:
            a = self.expr(TEXT, d - 1)
            return a.wrap("TRY_CAST({} AS DOUBLE)", FLOAT)
        return self.leaf(FLOAT)

    def text_expr(self, d: int) -> Expr:
        k = self.r.randrange(11)
        if k <= 1:
            a = self.expr(TEXT, d - 1)
            return a.wrap(self.choice(["UPPER({})", "LOWER({})", "TRIM({})"]), TEXT)
        if k == 2:
            a = self.expr(TEXT, d - 1)
            start = self.choice(["1", "2", "0", "-2", "3"])
            if self.chance(0.5):
                return a.wrap("SUBSTRING({}, %s)" % start, TEXT)
            length = self.choice(["1", "2", "0", "5"])
            return a.wrap("SUBSTRING({}, %s, %s)" % (start, length), TEXT)
        if k == 3:
            xs = [self.expr(self.choice([TEXT, TEXT, INT]), d - 1) for _ in range(self.r.randint(2, 3))]
            return _join("CONCAT(" + ", ".join(["{}"] * len(xs)) + ")", xs, TEXT)
        if k == 4:
            # `||` casts a non-text operand to VARCHAR (docs/SQL.md §2). A DOUBLE only as a leaf:
            # DuckDB writes a NaN with its sign bit set (0.0 % 0.0, -NaN) as '-nan', we write 'nan'
            t = self.choice([TEXT, TEXT, INT, BOOL, FLOAT])
            a = self.leaf(FLOAT) if t == FLOAT else self.expr(t, d - 1)
            b = self.expr(self.choice([TEXT, TEXT, INT]), d - 1)
            return _join("({} || {})", [a, b], TEXT)
        if k == 5:
            t = self.choice([INT, BOOL, FLOAT])
            a = self.leaf(FLOAT) if t == FLOAT else self.expr(t, d - 1)  # (see `||` above)
            return a.wrap(self.choice(["CAST({} AS VARCHAR)", "TRY_CAST({} AS VARCHAR)"]), TEXT)
        if k == 6:
            return self.case(TEXT, d)
        if k == 7:
            return self.coalesce(TEXT, d)
        if k == 8:
            a, b = self.expr(TEXT, d - 1), self.expr(TEXT, d - 1)
            return _join("NULLIF({}, {})", [a, b], TEXT)
        if k == 9:
            xs = [self.expr(TEXT, d - 1) for _ in range(self.r.randint(2, 3))]
            fn = self.choice(["LEAST", "GREATEST"])
            return _join(fn + "(" + ", ".join(["{}"] * len(xs)) + ")", xs, TEXT)
        if self.chance(0.4):  # a DATE as text, as DuckDB writes it
            return self.date_expr(d - 1).wrap("CAST({} AS VARCHAR)", TEXT)
        return self.leaf(TEXT)

    def comparable_pair(self, d: int) -> tuple[Expr, Expr]:
        t = self.choice([INT, FLOAT, TEXT, TEXT, INT, BOOL])
        if t in NUMERIC:
            return self.number(d), self.number(d)
        return self.expr(t, d), self.expr(t, d)

    def bool_expr(self, d: int) -> Expr:
        k = self.r.randrange(12)
        if k <= 2:
            a, b = self.comparable_pair(d - 1)
            op = self.choice(["=", "<>", "!=", "<", "<=", ">", ">="])
            return _join("({} %s {})" % op, [a, b], BOOL)
        if k == 3:
            a, b = self.expr(BOOL, d - 1), self.expr(BOOL, d - 1)
            return _join("({} %s {})" % self.choice(["AND", "OR"]), [a, b], BOOL)
        if k == 4:
            return self.expr(BOOL, d - 1).wrap("(NOT {})", BOOL)
        if k == 5:
            a = self.expr(self.choice([INT, FLOAT, TEXT, BOOL]), d - 1)
            return a.wrap(self.choice(["({} IS NULL)", "({} IS NOT NULL)"]), BOOL)
        if k == 6:
            t = self.choice([INT, TEXT, FLOAT])
            a = self.expr(t, d - 1)
            items = [self.leaf(t) if self.chance(0.5) else self.literal(t) for _ in range(self.r.randint(1, 4))]
            neg = " NOT" if self.chance(0.3) else ""
            return _join("({}%s IN (%s))" % (neg, ", ".join(["{}"] * len(items))), [a] + items, BOOL)
        if k == 7:
            t = self.choice([INT, FLOAT, TEXT])
            a, lo, hi = (self.expr(t, d - 1), self.leaf(t), self.leaf(t))
            neg = " NOT" if self.chance(0.3) else ""
            return _join("({}%s BETWEEN {} AND {})" % neg, [a, lo, hi], BOOL)
        if k == 8:
            a = self.expr(TEXT, d - 1)
            op = self.choice(["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"])
            if self.chance(0.25):
                return a.wrap("({} %s %s ESCAPE '!')" % (op, _quote(self.choice(LIKE_ESCAPED))), BOOL)
            return a.wrap("({} %s %s)" % (op, _quote(self.choice(LIKE_PATTERNS))), BOOL)
        if k == 9:
            return self.case(BOOL, d)
        if k == 10:
            return self.coalesce(BOOL, d)
        if self.chance(0.4):  # DATEs compared
            a, b = self.date_expr(d - 1), self.date_expr(d - 1)
            if self.chance(0.25):
                return _join("({} BETWEEN {} AND {})", [a, b, self.date_expr(d - 1)], BOOL)
            op = self.choice(["=", "<>", "<", "<=", ">", ">="])
            return _join("({} %s {})" % op, [a, b], BOOL)
        return self.leaf(BOOL)

    def date_expr(self, d: int) -> Expr:
        """A DATE (docs/SQL.md §2): a literal, a literal moved by a bounded number of days, or
        COALESCE / LEAST / GREATEST / CASE of DATEs (within DATE_SPAN_DAYS of 2000-01-01)."""
        k = self.r.randrange(6)
        if k == 0 or d <= 0:
            if self.chance(0.1):
                return Expr("CAST(NULL AS DATE)", "CAST(NULL AS DATE)", DATE)
            q = "DATE " + _quote(self.choice(DATE_LITERALS))
            return Expr(q, q, DATE)
        if k <= 2:
            n = self.arith_int(d - 1)
            if n.bound is None or n.bound > DATE_SPAN_DAYS // 2:
                n = self.leaf(INT) if self.chance(0.5) else self.literal(INT)
                if n.bound is None or n.bound > DATE_SPAN_DAYS // 2:
                    n = Expr("j", "j", INT, 5)
            base = "DATE " + _quote(self.choice(DATE_LITERALS))
            op = self.choice(["+", "-"])
            # (DuckDB adds only an INTEGER to a DATE; every velostream integer is a BIGINT)
            return Expr(f"({base} {op} {n.eng})", f"({base} {op} CAST({n.duck} AS INTEGER))", DATE,
                        None, n.is_agg)
        if k == 3:
            a, b = self.date_expr(d - 1), self.date_expr(d - 1)
            return _join("COALESCE({}, {})", [a, b], DATE)
        if k == 4:
            a, b = self.date_expr(d - 1), self.date_expr(d - 1)
            return _join(self.choice(["LEAST", "GREATEST"]) + "({}, {})", [a, b], DATE)
        a, b = self.date_expr(d - 1), self.date_expr(d - 1)
        return _join("CASE WHEN {} THEN {} ELSE {} END", [self.expr(BOOL, d - 1), a, b], DATE)

    def case(self, t: str, d: int) -> Expr:
        parts: list[Expr] = []
        results: list[Expr] = []
        if self.chance(0.3):  # CASE operand WHEN value THEN ...
            ot = self.choice([INT, TEXT])
            text = "CASE {}"
            parts.append(self.expr(ot, d - 1))
            conds = [lambda: self.leaf(ot)] * self.r.randint(1, 3)
        else:
            text = "CASE"
            conds = [lambda: self.expr(BOOL, d - 1)] * self.r.randint(1, 3)
        for cond in conds:
            text += " WHEN {} THEN {}"
            results.append(self.expr(t, d - 1))
            parts += [cond(), results[-1]]
        if self.chance(0.7):
            text += " ELSE {}"
            results.append(self.expr(t, d - 1))
            parts.append(results[-1])
        text += " END"
        bound = None
        if t == INT and all(r.bound is not None for r in results):
            bound = max(r.bound for r in results)
        return _join(text, parts, t, bound)

    def coalesce(self, t: str, d: int) -> Expr:
        xs = [self.expr(t, d - 1) for _ in range(self.r.randint(1, 3))]
        bound = None
        if t == INT and all(x.bound is not None for x in xs):
            bound = max(x.bound for x in xs)
        return _join("COALESCE(" + ", ".join(["{}"] * len(xs)) + ")", xs, t, bound)


# --------------------------------------------------------------------------------- aggregates


def aggregate(g: Gen, depth: int = 1) -> Expr:
    """One aggregate call over a generated argument, sometimes with a FILTER (WHERE ...)."""
    agg = _aggregate_call(g, depth)
    # not on FIRST/LAST: DuckDB has no FILTER on their window form (the EMIT CHANGES reference)
    if g.chance(0.12) and not agg.eng.startswith(("FIRST_VALUE", "LAST_VALUE")):
        cond = g.expr(BOOL, 1)
        return Expr(f"{agg.eng} FILTER (WHERE {cond.eng})", f"{agg.duck} FILTER (WHERE {cond.duck})",
                    agg.type, agg.bound, True)
    return agg


# CORR and friends over columns of exact values only: sums of products of rounded decimals differ
# from DuckDB's in the last bits, which a ratio of two nearly-cancelling sums magnifies.
_PAIR_COLUMNS = [("i", INT), ("j", INT), ("f", FLOAT)]


def _aggregate_call(g: Gen, depth: int = 1) -> Expr:
    k = g.r.randrange(18)
    if k == 0:
        return Expr("COUNT(*)", "count(*)", INT, 10 ** 4, True)
    if k == 1:
        a = g.expr(g.choice([INT, FLOAT, TEXT, BOOL]), depth)
        return Expr(f"COUNT({a.eng})", f"count({a.duck})", INT, 10 ** 4, True)
    if k == 2:
        a = g.expr(g.choice([INT, FLOAT, TEXT, BOOL]), depth)
        if g.chance(0.5):
            return Expr(f"COUNT(DISTINCT {a.eng})", f"count(DISTINCT {a.duck})", INT, 10 ** 4, True)
        return Expr(f"COUNT_DISTINCT({a.eng})", f"count(DISTINCT {a.duck})", INT, 10 ** 4, True)
    if k in (3, 4):
        a = g.number(depth)
        if a.type == INT and not _safe(a.bound):
            a = g.leaf(INT, arith=True)
        fn = g.choice(["SUM", "AVG"])
        t = FLOAT if fn == "AVG" or a.type == FLOAT else INT
        # a SUM of small ints is far below 2^63; its bound only matters for arithmetic over it
        return Expr(f"{fn}({a.eng})", f"{fn.lower()}({a.duck})", t, None, True)
    if k in (5, 6):
        a = g.expr(g.choice([INT, FLOAT, BOOL, TEXT]), depth)  # text: by bytes, as DuckDB
        fn = g.choice(["MIN", "MAX"])
        return Expr(f"{fn}({a.eng})", f"{fn.lower()}({a.duck})", a.type, a.bound, True)
    if k == 7:
        a = g.number(depth)
        if a.type == INT and not _safe(a.bound):
            a = g.leaf(INT, arith=True)
        fn, dfn = g.choice([("STDDEV", "stddev_samp"), ("STDDEV_POP", "stddev_pop"), ("VARIANCE", "var_samp"),
                            ("VAR_POP", "var_pop"), ("VAR_SAMP", "var_samp"), ("STDDEV_SAMP", "stddev_samp")])
        return Expr(f"{fn}({a.eng})", f"{dfn}({a.duck})", FLOAT, None, True)
    if k == 8:
        a = g.expr(g.choice([INT, FLOAT, TEXT, BOOL]), depth)
        fn, dfn = g.choice([("FIRST_VALUE", "first"), ("LAST_VALUE", "last")])
        return Expr(f"{fn}({a.eng})", f"{dfn}({a.duck} ORDER BY id)", a.type, a.bound, True)
    if k == 9:
        # any number, infinities included (an infinite middle value is that infinity, as DuckDB)
        a = g.arith_int(depth) if g.chance(0.4) else g.number(depth)
        return Expr(f"MEDIAN({a.eng})", f"median({a.duck})", FLOAT if a.type == FLOAT else FLOAT, None, True)
    if k == 10:
        a = g.expr(g.choice([INT, TEXT]), depth)
        return Expr(f"APPROX_COUNT_DISTINCT({a.eng})", f"count(DISTINCT {a.duck})", INT, 10 ** 4, True)
    if k == 12:
        a = g.expr(BOOL, depth)
        return Expr(f"COUNT_IF({a.eng})", f"count_if({a.duck})", INT, 10 ** 4, True)
    if k == 13:
        a = g.expr(BOOL, depth)
        fn = g.choice(["BOOL_AND", "BOOL_OR"])
        return Expr(f"{fn}({a.eng})", f"{fn.lower()}({a.duck})", BOOL, None, True)
    if k == 14:
        a = g.expr(g.choice([INT, FLOAT, TEXT, BOOL]), depth)
        v = g.expr(g.choice([INT, FLOAT, TEXT]), depth)
        fn, dfn = g.choice([("ARG_MIN", "arg_min"), ("ARG_MAX", "arg_max"), ("MIN_BY", "arg_min"),
                            ("MAX_BY", "arg_max")])
        # ties go to the earliest row, as DuckDB's in-order scan gives them
        return Expr(f"{fn}({a.eng}, {v.eng})", f"{dfn}({a.duck}, {v.duck} ORDER BY id)", a.type,
                    a.bound, True)
    if k == 16 and g.chance(0.5):
        a = g.arith_int(depth) if g.chance(0.4) else g.number(depth)
        if a.type == INT and a.bound is None:  # beyond 2**53 a quantile refuses the row
            a = g.leaf(INT, arith=True)
        q = g.choice(["0", "0.1", "0.25", "0.5", "0.9", "1"])
        fn = g.choice(["PERCENTILE_CONT", "PERCENTILE_DISC", "APPROX_QUANTILE", "QUANTILE_CONT"])
        dfn = {"APPROX_QUANTILE": "quantile_disc"}.get(fn, fn.lower().replace("percentile", "quantile"))
        rt = FLOAT if fn in ("PERCENTILE_CONT", "QUANTILE_CONT") else a.type
        text = f"{fn}({q}) WITHIN GROUP (ORDER BY {a.eng})" if fn.startswith("PERC") and g.chance(0.5) \
            else f"{fn}({a.eng}, {q})"
        return Expr(text, f"{dfn}({a.duck}, {q})", rt, a.bound if rt == INT else None, True)
    if k == 17:
        a = g.expr(TEXT, depth)
        sep = _quote(g.choice([",", "", " | ", "é"]))
        fn = g.choice(["STRING_AGG", "LISTAGG", "GROUP_CONCAT"])
        return Expr(f"{fn}({a.eng}, {sep})", f"string_agg({a.duck}, {sep} ORDER BY id)", TEXT, None, True)
    if k in (15, 16):
        (y, _), (x, _) = g.choice(_PAIR_COLUMNS), g.choice(_PAIR_COLUMNS)
        fn = g.choice(["CORR", "COVAR_POP", "COVAR_SAMP", "REGR_SLOPE", "REGR_INTERCEPT", "REGR_R2"])
        return Expr(f"{fn}({y}, {x})", f"{fn.lower()}({y}, {x})", FLOAT, None, True)
    a = g.expr(INT, depth)
    return Expr(f"COUNT({a.eng})", f"count({a.duck})", INT, 10 ** 4, True)


def agg_expr(g: Gen, keys: list[Expr], t: Optional[str] = None, depth: int = 1) -> Expr:
    """An expression over group keys and aggregates (a select item or a HAVING operand)."""
    agg = aggregate(g)
    if t is not None and agg.type != t and not (t == FLOAT and agg.type == INT):
        agg = Expr("COUNT(*)", "count(*)", INT, 10 ** 4, True) if t in NUMERIC else agg
    if depth <= 0 or g.chance(0.6):
        return agg
    k = g.r.randrange(4)
    if k == 0 and agg.type in NUMERIC:
        other = g.literal(g.choice([INT, FLOAT])) if not keys or g.chance(0.5) else g.choice(keys)
        # not a DOUBLE key: the engine's group of 0.0 and -0.0 shows 0.0, DuckDB's its first value
        # (1 / key is inf or -inf); reported, the group table
        if other.type != INT:
            other = g.literal(INT)
        if agg.type == INT and other.type == INT and not (_safe(agg.bound) and _safe(other.bound)):
            return _join("({} / {})", [agg, other], FLOAT)
        op = g.choice(["+", "-", "*", "/"])
        bound = _mul_bounds(agg.bound, other.bound) if op == "*" else _add_bounds(agg.bound, other.bound)
        if agg.type == INT and other.type == INT and op != "/" and not _safe(bound):
            op = "/"
        rt = FLOAT if op == "/" or FLOAT in (agg.type, other.type) else INT
        return _join("({} %s {})" % op, [agg, other], rt, bound if rt == INT else None)
    if k == 1:
        return _join("COALESCE({}, {})", [agg, g.literal(agg.type)], agg.type, agg.bound)
    if k == 2 and agg.type == TEXT:
        return agg.wrap("UPPER({})", TEXT)
    return agg


def having(g: Gen, keys: list[Expr]) -> Expr:
    """A HAVING condition over aggregates and group keys."""
    def atom():
        plain = [kx for kx in keys if kx.eng in COLUMNS]  # DuckDB: an expression key is not a column
        if plain and g.chance(0.25):
            key = g.choice(plain)
            if key.type == BOOL:
                return key
            return key.wrap(g.choice(["({} IS NULL)", "({} IS NOT NULL)"]), BOOL)
        a = agg_expr(g, keys)
        if a.type == BOOL:
            return a
        if a.type == FLOAT:
            # a DOUBLE aggregate compared with a constant is rounded first: where the exact value
            # is the constant (REGR_INTERCEPT(i, i) is 0), the last bit of two summation orders
            # (DuckDB's -1.96e-16, velostream's 0.0) would decide the row, not the engines
            a = a.wrap("ROUND({}, 9)", FLOAT)
        if a.type in NUMERIC:
            lit = g.literal(g.choice([INT, FLOAT]))
        else:
            lit = g.literal(TEXT)
        return _join("({} %s {})" % g.choice(["=", "<>", "<", "<=", ">", ">="]), [a, lit], BOOL)
    h = atom()
    for _ in range(g.r.randint(0, 2)):
        h = _join("({} %s {})" % g.choice(["AND", "OR"]), [h, atom()], BOOL)
    if g.chance(0.15):
        h = h.wrap("(NOT {})", BOOL)
    return h


# ------------------------------------------------------------------------------------ queries


@dataclass
class Query:
    shape: str
    eng: str
    duck: Optional[str]       # None: not comparable with DuckDB
    limit: Optional[int] = None
    # EMIT CHANGES: the group key columns (the first ``nkeys``) and DuckDB's count of the rows
    # that pass WHERE (one change row each); the last change per key is DuckDB's GROUP BY row
    nkeys: int = 0
    duck_count: Optional[str] = None
    # EMIT CHANGES: DuckDB's changelog, running aggregates per key in input order (HAVING applied)
    duck_changes: Optional[str] = None


def projection(g: Gen, depth: int = 3) -> Query:
    items = [g.expr(g.choice([INT, FLOAT, TEXT, BOOL]), depth) for _ in range(g.r.randint(1, 4))]
    where = g.expr(BOOL, depth) if g.chance(0.8) else None
    sel_e = ", ".join(f"{x.eng} AS c{n}" for n, x in enumerate(items))
    sel_d = ", ".join(f"{x.duck} AS c{n}" for n, x in enumerate(items))
    w_e = f" WHERE {where.eng}" if where else ""
    w_d = f" WHERE {where.duck}" if where else ""
    distinct = "DISTINCT " if g.chance(0.25) else ""
    limit = g.choice([0, 1, 7, 50]) if g.chance(0.15) else None
    lim = f" LIMIT {limit}" if limit is not None else ""
    return Query("distinct" if distinct else ("limit" if limit is not None else "projection"),
                 f"SELECT {distinct}{sel_e} FROM t{w_e}{lim}", f"SELECT {distinct}{sel_d} FROM t{w_d}", limit)


def group_keys(g: Gen) -> list[Expr]:
    keys: list[Expr] = []
    for _ in range(g.choice([1, 1, 2, 2, 3])):
        k = g.r.randrange(6)
        if k <= 2:
            c = g.choice(["k", "b", "j", "s", "e", "f"])
            if c == "f" and g.nan:
                c = "k"  # NaN keys: see test_sql_fuzz.py
            keys.append(Expr(c, c, COLUMNS[c][0], COLUMNS[c][1]))
        else:
            kx = g.expr(g.choice([INT, TEXT, BOOL]), 1)
            # a constant integer key is a position for DuckDB (GROUP BY 2): keys name a column
            if _columns_in(kx.eng):
                keys.append(kx)
    if not keys:
        keys.append(Expr("k", "k", TEXT))
    # the same key twice makes DuckDB and the engine name columns differently; keep them distinct
    out, seen = [], set()
    for kx in keys:
        if kx.eng not in seen:
            seen.add(kx.eng)
            out.append(kx)
    return out


def _columns_in(sql: str) -> set:
    """The table's column names that ``sql`` uses (string literals left out)."""
    return set(re.findall(r"[A-Za-z_]\w*", re.sub(r"'(?:[^']|'')*'", "", sql))) & set(COLUMNS)


_AGG_CALL = re.compile(r"\b(count|sum|avg|min|max|stddev_samp|stddev_pop|var_samp|var_pop|first|last|median|"
                       r"count_if|bool_and|bool_or|arg_min|arg_max|corr|covar_pop|covar_samp|regr_slope|"
                       r"regr_intercept|regr_r2|quantile_cont|quantile_disc|string_agg)\(")


def windowed(duck: str) -> str:
    """DuckDB text of an expression over aggregates, each aggregate made a running one over the
    window ``w`` (``first(x ORDER BY id)`` becomes ``first_value(x)``): the EMIT CHANGES row of
    the current input row. Aggregates are the lower-case calls (scalar functions are upper case)."""
    out, pos = [], 0
    for m in _AGG_CALL.finditer(duck):
        if m.start() < pos:
            continue  # inside an aggregate already rewritten (no nesting is generated)
        depth, i = 0, m.end() - 1
        while True:
            depth += {"(": 1, ")": -1}.get(duck[i], 0)
            if depth == 0:
                break
            i += 1
        args = duck[m.end():i]
        name = m.group(1)
        if name in ("first", "last"):
            name, args = name + "_value", args[:args.rindex(" ORDER BY id")]
        filt = ""
        if duck.startswith(" FILTER (", i + 1):  # the FILTER clause goes before OVER
            j = i + 1 + len(" FILTER (")  # just after its "("
            depth = 1
            while depth:
                depth += {"(": 1, ")": -1}.get(duck[j], 0)
                j += 1
            filt, i = duck[i + 1:j], j - 1
        out.append(duck[pos:m.start()] + f"{name}({args}){filt} OVER w")
        pos = i + 1
    return "".join(out) + duck[pos:]


def group_by(g: Gen, global_agg: bool = False, changes: bool = False) -> Query:
    keys = [] if global_agg else group_keys(g)
    aggs = [agg_expr(g, keys) for _ in range(g.r.randint(1, 4))]
    where = g.expr(BOOL, 2) if g.chance(0.6) else None
    hv = having(g, keys) if g.chance(0.5) else None
    items = keys + aggs
    sel_e = ", ".join(f"{x.eng} AS c{n}" for n, x in enumerate(items))
    sel_d = ", ".join(f"{x.duck} AS c{n}" for n, x in enumerate(items))
    w_e = f" WHERE {where.eng}" if where else ""
    w_d = f" WHERE {where.duck}" if where else ""
    gb_e = (" GROUP BY " + ", ".join(k.eng for k in keys)) if keys else ""
    gb_d = (" GROUP BY " + ", ".join(k.duck for k in keys)) if keys else ""
    h_e = f" HAVING {hv.eng}" if hv else ""
    h_d = f" HAVING {hv.duck}" if hv else ""
    if changes:
        part = ("PARTITION BY " + ", ".join(k.duck for k in keys) + " ") if keys else ""
        win_sel = ", ".join(f"{windowed(x.duck)} AS c{n}" for n, x in enumerate(items))
        win_h = windowed(hv.duck) if hv else "TRUE"
        log = (f"SELECT {', '.join(f'c{n}' for n in range(len(items)))} FROM (SELECT id, {win_sel}, "
               f"({win_h}) AS keep_row FROM t{w_d} WINDOW w AS ({part}ORDER BY id ROWS BETWEEN "
               f"UNBOUNDED PRECEDING AND CURRENT ROW)) WHERE keep_row ORDER BY id")
        # without HAVING the last change of a key is its GROUP BY row; with it, not necessarily
        return Query("changes", f"SELECT {sel_e} FROM t{w_e}{gb_e}{h_e} EMIT CHANGES",
                     None if hv else f"SELECT {sel_d} FROM t{w_d}{gb_d}", nkeys=len(keys),
                     duck_count=None if hv else f"SELECT count(*) FROM t{w_d}", duck_changes=log)
    return Query("global" if global_agg else "group_by",
                 f"SELECT {sel_e} FROM t{w_e}{gb_e}{h_e} EMIT FINAL",
                 f"SELECT {sel_d} FROM t{w_d}{gb_d}{h_d}")


def random_query(seed: int, *, nan: bool = False) -> Query:
    g = Gen(seed, nan=nan)
    k = g.r.randrange(12)
    if k < 4:
        return projection(g, depth=g.choice([2, 3, 3, 4]))
    if k < 9:
        return group_by(g)
    if k < 10:
        return group_by(g, global_agg=True)
    return group_by(g, global_agg=g.chance(0.2), changes=True)


# ------------------------------------------------------------------------- near-valid queries

_TOKEN = re.compile(r"'(?:[^']|'')*'|[A-Za-z_][A-Za-z_0-9]*|\d+(?:\.\d+)?(?:e\d+)?|<>|!=|<=|>=|\|\||\S")


def tokens(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


def mutate(seed: int) -> tuple[str, str]:
    """A near-valid query: a valid generated query with one random edit. Returns (kind, sql).

    ``kind`` says whether the text must be rejected (``invalid_*``) or may still be valid
    (``edited_*``: dropping ``AS`` or swapping two operands can leave a valid query)."""
    g = Gen(seed + 10_000_000)
    q = random_query(seed).eng
    toks = tokens(q)
    k = g.r.randrange(9)
    if k == 8:  # character-level: cut, duplicate or replace one character of the text
        n = g.r.randrange(len(q))
        ch = g.choice(["", "'", '"', "(", ")", "-", "/", "*", ";", "é", "\n", "\\", "`", "$", "?", "0", "e",
                       q[n] * 2])
        return "edited_char", q[:n] + ch + q[n + 1:]
    if k == 0:
        n = g.r.randrange(len(toks))
        return "edited_drop", " ".join(toks[:n] + toks[n + 1:])
    if k == 1:
        n = g.r.randrange(len(toks) - 1)
        toks[n], toks[n + 1] = toks[n + 1], toks[n]
        return "edited_swap", " ".join(toks)
    if k == 2:
        n = g.r.randrange(len(toks))
        toks.insert(n, g.choice(["(", ")", ",", "SELECT", "FROM", "WHERE", "AND", "+", "'", "NOT", "CASE",
                                 "GROUP", "BY", "*", "=", "IN", "END", "1", "''", "\"", "/*", "--", "@", ";"]))
        return "edited_insert", " ".join(toks)
    if k == 3:
        n = g.r.randrange(len(toks) // 2, len(toks))
        return "edited_truncate", " ".join(toks[:n])
    if k == 4:  # an unknown column
        names = [n for n, tk in enumerate(toks) if tk in COLUMNS]
        if names:
            n = g.choice(names)
            toks[n] = g.choice(["ii", "x", "ss", "jj", "kk", "id2", "bb", "f1", "\"ss\""])
            return "invalid_column", " ".join(toks)
    if k == 5:  # an unknown function
        fns = [n for n, tk in enumerate(toks) if n + 1 < len(toks) and toks[n + 1] == "("
               and tk.isidentifier() and tk.upper() not in ("IN", "AND", "OR", "NOT", "WHERE", "SELECT", "CAST",
                                                              "BY", "HAVING", "DISTINCT", "FROM", "THEN",
                                                              "ELSE", "WHEN", "CASE", "AS", "LIKE", "ILIKE",
                                                              "BETWEEN", "IS", "NULL", "END")]
        if fns:
            n = g.choice(fns)
            toks[n] = toks[n] + "X"
            return "invalid_function", " ".join(toks)
    # a wrong-typed operand
    bad = g.choice([
        # (an integer as a condition is not here: DuckDB casts it to BOOLEAN, velostream rejects it)
        "(s + 1)", "(k - f)", "(s AND b)", "ABS(s)", "SQRT(k)",
        "(s < 1)", "(i LIKE 'a%')", "(-s)", "SUM(s)", "AVG(k)",
        "(f BETWEEN 'a' AND 'b')", "(i IN ('a', 'b'))", "ROUND(s)", "POWER(s, 2)", "MOD(s, 2)",
        "COUNT(*) + s",
    ])
    if "SUM(" in bad or "AVG(" in bad or "COUNT(*)" in bad:
        return "invalid_type", f"SELECT k, {bad} AS c FROM t GROUP BY k EMIT FINAL"
    where = g.choice([True, False])
    if where and bad.startswith("(") and not bad.startswith("(s +") and "-" not in bad:
        return "invalid_type", f"SELECT i FROM t WHERE {bad}"
    return "invalid_type", f"SELECT i, {bad} AS c FROM t"
