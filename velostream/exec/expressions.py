"""Scalar expressions: binding (names and types, at plan time) and evaluation over whole batches.

``bind`` turns a parsed expression into a typed ``Bound`` tree, raising ``SqlError`` with line,
column and the nearest valid name for unknown columns and functions. ``evaluate`` runs a bound tree
over a ``Batch`` column-at-a-time with numpy ufuncs (compiled loops that release the GIL; no
per-row Python) and Arrow compute for string work. NULLs travel as validity masks. Semantics follow
DuckDB (docs/SQL.md §2): ``/`` is float division (x/0 gives ±inf or NaN as IEEE says), ``%`` and
``MOD`` are truncating remainders, NULL for a zero integer divisor (NaN for DOUBLE), ROUND rounds
half away from zero.
Decimal literals such as ``1.5`` are DOUBLE here (DuckDB would make them DECIMAL).

Integer arithmetic never wraps: ``+ - *``, unary minus, ABS and CAST check their result with a few
vectorised numpy passes per batch and raise ``OutOfRangeError`` (carrying the mask of the failing
rows) when a row whose operands are not NULL leaves its type; ``TRY_CAST`` makes such rows NULL.
"""
from __future__ import annotations

import decimal
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pyarrow as pa

from .._lazy import pc  # imported when first used: see the module
from ..batch import (BOOL, DATE, DECIMAL, FLOAT64, INT64, MS_PER_DAY, NULLTYPE, STRING, TIMESTAMP,
                     Batch, Column, SqlType, StringDict, list_to_arrow, numpy_to_arrow,
                     text_to_epoch_ms)
from ..errors import OutOfRangeError, SqlError, UnsupportedError, nearest
from ..sql import ast
from ..sql.function_names import AGGREGATES

# ------------------------------------------------------------------------------ bound tree


@dataclass(frozen=True)
class Bound:
    type: SqlType


@dataclass(frozen=True)
class BCol(Bound):
    name: str  # the key in the Batch


@dataclass(frozen=True)
class BConst(Bound):
    value: object  # python value in the column's representation (decimal: scaled int), None = NULL


@dataclass(frozen=True)
class BCall(Bound):
    fn: str
    args: tuple


SCALAR_FUNCTIONS = {
    "ABS", "ROUND", "FLOOR", "CEIL", "CEILING", "SQRT", "POWER", "POW", "MOD", "UPPER", "LOWER",
    "LENGTH", "LEN", "CHAR_LENGTH", "SUBSTRING", "SUBSTR", "CONCAT", "COALESCE", "NULLIF", "LEAST",
    "GREATEST", "EXP", "LN", "LOG10", "SIGN", "TRIM",
}


class Scope:
    """What names an expression may use: column name -> (batch key, type)."""

    def __init__(self, sql: str, columns: dict[str, SqlType]):
        self.sql = sql
        # An open schema (explain without data) knows every column, typed NULL (any).
        self.open = getattr(columns, "open_schema", False)
        self.columns = dict(columns)
        self.lower = {}
        for k in self.columns:
            self.lower.setdefault(k.lower(), k)

    def resolve(self, col: ast.Column) -> tuple[str, SqlType]:
        name = col.name
        key = name if name in self.columns else (None if col.quoted else self.lower.get(name.lower()))
        if key is None and name.lower() == "timestamp" and "_TIMESTAMP" in self.columns:
            key = "_TIMESTAMP"  # the original engine's name for the record time
        if key is None and self.open:
            key = name
            self.columns[key] = NULLTYPE
        if key is None:
            visible = [c for c in self.columns if not c.startswith("__")]
            hint = nearest(name, visible)
            msg = f"unknown column '{name}'"
            msg += f"; did you mean '{hint}'?" if hint else f" (columns: {', '.join(visible)})"
            raise SqlError.at(self.sql, col.pos, msg)
        return key, self.columns[key]


def _numeric_result(a: SqlType, b: SqlType, op: str) -> SqlType:
    kinds = {a.kind, b.kind}
    if op == "/":
        return FLOAT64
    if op in ("+", "-") and a.kind == "TIMESTAMP" and b.kind in ("INT64", "BOOL", "NULL") or (
            op == "+" and b.kind == "TIMESTAMP" and a.kind in ("INT64", "BOOL", "NULL")):
        # ts + INTERVAL '1' SECOND (milliseconds, a BIGINT) moves a TIMESTAMP: it is one still
        # (docs/SQL.md §2, Intervals); ts - ts is their distance in milliseconds
        return TIMESTAMP
    if "FLOAT64" in kinds:
        return FLOAT64
    if "DECIMAL" in kinds:
        sa = a.scale if a.kind == "DECIMAL" else 0
        sb = b.scale if b.kind == "DECIMAL" else 0
        if op == "*":
            return DECIMAL(18, min(18, sa + sb))
        return DECIMAL(18, max(sa, sb))
    return INT64


def _common_type(types: list[SqlType]) -> SqlType:
    ts = [t for t in types if t.kind != "NULL"]
    if not ts:
        return NULLTYPE
    kinds = {t.kind for t in ts}
    if len(kinds) == 1:
        if ts[0].kind == "DECIMAL":
            return DECIMAL(18, max(t.scale for t in ts))
        return ts[0]
    if "STRING" in kinds:
        return STRING
    if "FLOAT64" in kinds:
        return FLOAT64
    if "DECIMAL" in kinds:
        return DECIMAL(18, max(t.scale for t in ts if t.kind == "DECIMAL"))
    if kinds <= {"INT64", "TIMESTAMP", "BOOL"}:
        return INT64
    if kinds == {"DATE", "TIMESTAMP"}:  # a DATE meeting a TIMESTAMP is its midnight (DuckDB)
        return TIMESTAMP
    if "DATE" in kinds:
        # DuckDB mixes a DATE with no number: an explicit CAST is needed (_convert says so)
        return DATE
    return ts[0]


def _cast_type(t: ast.TypeName) -> SqlType:
    n = t.name
    if n in ("INTEGER", "INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT"):
        return INT64
    if n in ("DOUBLE", "FLOAT", "REAL"):
        return FLOAT64
    if n in ("DECIMAL", "NUMERIC"):
        p, s = (tuple(t.params) + (18, 3))[:2] if t.params else (18, 3)
        if len(t.params) == 1:
            s = 0
        return DECIMAL(p, s)
    if n in ("VARCHAR", "STRING", "TEXT", "CHAR"):
        return STRING
    if n in ("BOOLEAN", "BOOL"):
        return BOOL
    if n in ("TIMESTAMP", "DATETIME"):
        return TIMESTAMP
    if n == "DATE":
        return DATE
    raise UnsupportedError(f"unsupported type {n} in CAST")


def parse_timestamp_ms(text: str) -> Optional[int]:
    """ISO-8601 text to epoch ms (UTC when no zone), or None when it is not a timestamp."""
    try:
        arr = pc.cast(pa.array([text]), pa.timestamp("ms"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:
            arr = pc.strptime(pa.array([text]), format="%Y-%m-%d", unit="ms")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    return int(arr.cast(pa.int64())[0].as_py())


def _timestamp_literal(e: "ast.Literal", sql: str) -> int:
    """The epoch ms of a ``TIMESTAMP '...'`` literal: ISO-8601 text as CAST(text AS TIMESTAMP)
    reads it (no zone means UTC); anything else, epoch digits too (as DuckDB), is an error at the
    literal."""
    text = str(e.value)
    ms, bad = text_to_epoch_ms(pa.array([text], pa.string()))
    if len(bad) or ms[0].as_py() is None or text.strip().lstrip("+-").isdigit():
        raise SqlError.at(sql, e.pos, f"cannot read '{text}' as a TIMESTAMP: TIMESTAMP '...' takes "
                                      "ISO-8601 text such as '2024-01-01 10:00:00' (EPOCH_MS(n) "
                                      "reads epoch milliseconds)")
    return int(ms[0].as_py())


def _date_literal(e: "ast.Literal", sql: str) -> int:
    """The epoch ms of a ``DATE '...'`` literal's midnight, read as CAST(text AS DATE) reads
    it; text that is no date is an error at the literal."""
    text = str(e.value)
    ms, converts = text_to_date_ms(pa.array([text], pa.string()))
    if not converts[0]:
        raise SqlError.at(sql, e.pos, f"cannot read '{text}' as a DATE: DATE '...' takes a date "
                                      "such as '2024-03-05' (YYYY-MM-DD)")
    return int(ms[0])


# DATE values: whole days in epoch milliseconds, within DuckDB's DATE range (what date32 holds)
_DATE_DAYS = (-(2 ** 31) + 2, 2 ** 31 - 2)
# text CAST reads as a DATE (DuckDB): an ISO date, its year of 1 to 7 digits and maybe negative
# (0 is 1 BC), month and day of 1 or 2 digits (separated by '-', or all by '/' or ' ': those are
# made '-' first), maybe ' (BC)', then maybe a time part after 'T' or spaces
_DATE_TEXT = (r"^\s*(?P<y>-?[0-9]{1,7})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})(?P<bc> \(BC\))?"
              r"(?P<rest>(?:T|\s)\s*[0-9].*?)?\s*$")
_DATE_OTHER_SEPARATORS = (r"^(\s*-?[0-9]{1,7})/([0-9]{1,2})/([0-9]{1,2})",
                          r"^(\s*-?[0-9]{1,7}) ([0-9]{1,2}) ([0-9]{1,2})")


def _month_start_days(month_index: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of the first day of each month, counted in months since January
    1970 (proleptic Gregorian, astronomical years)."""
    return month_index.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def _column_of(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def text_to_date_ms(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Text -> DATE as DuckDB's CAST reads it: (epoch ms of each row's midnight, whether the
    row converts). The date is the one written; a time part after it (which must be a time
    CAST(text AS TIMESTAMP) reads, with a ':') does not move it, whatever its zone offset."""
    n = len(arr)
    for pattern in _DATE_OTHER_SEPARATORS:
        arr = pc.replace_substring_regex(arr, pattern=pattern, replacement=r"\1-\2-\3")
    parts = pc.extract_regex(arr, pattern=_DATE_TEXT)
    matched = _column_of(parts.is_valid()) & _column_of(arr.is_valid())
    ms = np.zeros(n, dtype=np.int64)
    if not matched.any():
        return ms, matched
    fields = {}
    for name in ("y", "m", "d"):
        f = pc.fill_null(pc.struct_field(parts, name), "0")
        fields[name] = _column_of(pc.cast(f, pa.int64()))
    y, m, d = fields["y"], fields["m"], fields["d"]
    bc = _column_of(pc.fill_null(pc.greater(pc.utf8_length(pc.struct_field(parts, "bc")), 0),
                                 False))
    ok = matched & (m >= 1) & (m <= 12) & (d >= 1) & ~(bc & (y <= 0))
    y = np.where(bc, 1 - y, y)  # 2 BC is the astronomical year -1
    mm = np.where(ok, m, 1)
    month = (y - 1970) * 12 + mm - 1
    days = _month_start_days(month)  # the month's first day
    next_month = _month_start_days(month + 1)
    ok &= d <= next_month - days
    days = days + np.where(ok, d, 1) - 1
    ok &= (days >= _DATE_DAYS[0]) & (days <= _DATE_DAYS[1])
    rest = pc.struct_field(parts, "rest")
    timed = ok & _column_of(pc.fill_null(pc.greater(pc.utf8_length(rest), 0), False))
    if timed.any():  # the time part is checked as CAST(text AS TIMESTAMP) checks it
        rows = np.flatnonzero(timed)
        clock = pc.utf8_ltrim(rest.take(pa.array(rows)), characters="T \t\n\r")
        _, bad = text_to_epoch_ms(pc.binary_join_element_wise("1970-01-01 ", clock, ""))
        bad_rows = np.zeros(len(rows), dtype=bool)
        bad_rows[np.asarray(bad, dtype=np.int64)] = True
        bad_rows |= ~_column_of(pc.match_substring(clock, ":"))
        ok[rows[bad_rows]] = False
    return np.where(ok, days * MS_PER_DAY, 0), ok


def dates_as_text(values: np.ndarray, valid) -> pa.Array:
    """DATE -> VARCHAR as DuckDB writes it: ``2024-03-05``; a year before 1 as
    ``0002-03-05 (BC)``, one past 9999 with its digits (``12345-01-01``)."""
    days = np.floor_divide(np.ascontiguousarray(values, dtype=np.int64), MS_PER_DAY)
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    text = np.datetime_as_string(days.astype("datetime64[D]"), unit="D")
    odd = np.flatnonzero(np.char.startswith(text, "-") | np.char.startswith(text, "0000")
                         | np.char.startswith(text, "+"))
    if len(odd):  # a handful of rows at most: years before 1 (DuckDB names them BC), after 9999
        text = text.astype(object)
        for i in odd:
            year, md = text[i][:-6], text[i][-6:]
            y = int(year)
            text[i] = f"{1 - y:04d}{md} (BC)" if y <= 0 else f"{y}{md}"
    return pa.array(text, pa.string(), mask=mask)


def bind(e, scope: Scope, strings: StringDict) -> Bound:
    """Resolve names and types of a scalar expression (aggregates must be rewritten away first)."""
    sql = scope.sql
    if isinstance(e, ast.Column):
        key, t = scope.resolve(e)
        return BCol(t, key)
    if isinstance(e, ast.Literal):
        if e.type == "INTEGER":
            return BConst(INT64, int(e.value))
        if e.type == "DOUBLE":
            return BConst(FLOAT64, float(e.value))
        if e.type == "STRING":
            return BConst(STRING, str(e.value))
        if e.type == "BOOLEAN":
            return BConst(BOOL, bool(e.value))
        if e.type == "DECIMAL":
            text = str(e.value)
            scale = len(text.split(".")[1]) if "." in text else 0
            return BConst(DECIMAL(18, scale), int(round(float(text) * 10 ** scale)))
        if e.type == "TIMESTAMP":  # TIMESTAMP '...': read as CAST reads text, once, here
            return BConst(TIMESTAMP, _timestamp_literal(e, sql))
        if e.type == "DATE":  # DATE '...': likewise, as CAST(text AS DATE)
            return BConst(DATE, _date_literal(e, sql))
        return BConst(NULLTYPE, None)
    if isinstance(e, ast.IntervalLiteral):
        if e.months:
            raise SqlError.at(sql, e.pos, _CALENDAR_ONLY)
        return BConst(INT64, int(e.millis))
    if isinstance(e, ast.Star):
        raise SqlError.at(sql, e.pos, "'*' is only allowed in the select list and in COUNT(*)")
    if isinstance(e, ast.UnaryOp):
        a = bind(e.operand, scope, strings)
        if e.op == "NOT":
            _expect_bool(a, e.operand, sql)
            return BCall(BOOL, "NOT", (a,))
        _expect_numeric(a, e.operand, sql, e.op)
        return a if e.op == "+" else BCall(a.type if a.type.kind != "BOOL" else INT64, "NEG", (a,))
    if isinstance(e, ast.BinaryOp):
        if _is_calendar(e.left) or _is_calendar(e.right):
            return _bind_calendar_step(e, bind, scope, strings, sql)
        a, b = bind(e.left, scope, strings), bind(e.right, scope, strings)
        op = e.op
        if op in ("AND", "OR"):
            _expect_bool(a, e.left, sql)
            _expect_bool(b, e.right, sql)
            return BCall(BOOL, op, (a, b))
        if op in ("=", "!=", "<", "<=", ">", ">="):
            a, b = _coerce_compare(a, b, e, sql)
            return BCall(BOOL, op, (a, b))
        if op == "||":
            return BCall(STRING, "CONCAT_STRICT", (_to_string(a), _to_string(b)))
        if a.type.kind == "DATE" or b.type.kind == "DATE":
            return _bind_date_arith(e, a, b, sql)
        _expect_numeric(a, e.left, sql, op)
        _expect_numeric(b, e.right, sql, op)
        if op == "//":  # DuckDB's: integers divide toward zero, anything else is DOUBLE division
            ints = {a.type.kind, b.type.kind} <= {"INT64", "BOOL", "NULL"}
            return BCall(INT64 if ints else FLOAT64, op, (a, b))
        return BCall(_numeric_result(a.type, b.type, op), op, (a, b))
    if isinstance(e, ast.IsNull):
        return BCall(BOOL, "IS_NOT_NULL" if e.negated else "IS_NULL", (bind(e.operand, scope, strings),))
    if isinstance(e, ast.InList):
        a = bind(e.operand, scope, strings)
        items = []
        for it in e.items:
            x, y = _coerce_compare(a, bind(it, scope, strings), e, sql)
            a = x
            items.append(y)
        r = BCall(BOOL, "IN", (a,) + tuple(items))
        return BCall(BOOL, "NOT", (r,)) if e.negated else r
    if isinstance(e, ast.Between):
        a = bind(e.operand, scope, strings)
        lo, hi = bind(e.low, scope, strings), bind(e.high, scope, strings)
        a1, lo = _coerce_compare(a, lo, e, sql)
        a2, hi = _coerce_compare(a, hi, e, sql)
        r = BCall(BOOL, "AND", (BCall(BOOL, ">=", (a1, lo)), BCall(BOOL, "<=", (a2, hi))))
        return BCall(BOOL, "NOT", (r,)) if e.negated else r
    if isinstance(e, ast.Like):
        a, p = bind(e.operand, scope, strings), bind(e.pattern, scope, strings)
        if a.type.kind != "STRING" or p.type.kind not in ("STRING", "NULL"):
            raise SqlError.at(sql, e.pos, "LIKE needs a string operand and a string pattern")
        args = (a, p)
        if e.escape is not None:
            args += (_like_escape(bind(e.escape, scope, strings), e, sql),)
        r = BCall(BOOL, "ILIKE" if e.case_insensitive else "LIKE", args)
        return BCall(BOOL, "NOT", (r,)) if e.negated else r
    if isinstance(e, ast.Case):
        whens = []
        # the operand is bound once, not once per WHEN: nested CASEs would multiply the work
        operand = bind(e.operand, scope, strings) if e.operand is not None else None
        for w, t in e.whens:
            if operand is None:
                bc = bind(w, scope, strings)
            else:  # as bind(BinaryOp('=', operand, w)) does
                bc = BCall(BOOL, "=", _coerce_compare(operand, bind(w, scope, strings), w, sql))
            _expect_bool(bc, w, sql)
            whens.append((bc, bind(t, scope, strings)))
        els = bind(e.else_, scope, strings) if e.else_ is not None else BConst(NULLTYPE, None)
        rt = _common_type([t.type for _, t in whens] + [els.type])
        args = []
        for c, t in whens:
            args += [c, _convert_at(t, rt, e, sql)]
        args.append(_convert_at(els, rt, e, sql))
        return BCall(rt, "CASE", tuple(args))
    if isinstance(e, ast.Cast):
        a = bind(e.operand, scope, strings)
        t = _cast_type(e.type)
        if (t.kind == "DATE") != (a.type.kind == "DATE") and not _casts_with_date(a.type, t):
            # as DuckDB: a DATE is no number of days (DATE '1970-01-01' + n is); TRY_CAST of a
            # cast that does not exist is NULL
            if e.try_:
                return BConst(t, None)
            raise SqlError.at(sql, e.pos, f"cannot CAST {_sql_name(a.type)} to {_sql_name(t)}: "
                                          "a DATE converts only "
                                          "to and from TIMESTAMP and text (DATE '1970-01-01' + n "
                                          "is the date n days after 1970-01-01)")
        if e.try_ and a.type != t and a.type.kind != "NULL":
            return BCall(t, "TRY_CAST", (a,))
        if a.type == t and isinstance(a, BCol):
            # a written CAST of a column to its own SQL type leaves in that type (an int8 column
            # CAST AS BIGINT is BIGINT, as in DuckDB), not in the column's own Arrow type
            return BCall(t, "CAST", (a,))
        return _convert(a, t, explicit=True)
    if isinstance(e, ast.FunctionCall):
        return _bind_function(e, scope, strings)
    raise SqlError.at(sql, getattr(e, "pos", None), f"unsupported expression {type(e).__name__}")


def _sql_name(t: SqlType) -> str:
    """A type as SQL names it (TYPEOF's names) in a message."""
    return {"INT64": "BIGINT", "FLOAT64": "DOUBLE", "STRING": "VARCHAR",
            "BOOL": "BOOLEAN"}.get(t.kind, str(t))


def _casts_with_date(a: SqlType, t: SqlType) -> bool:
    """Whether CAST converts between these types when one is DATE (DuckDB: TIMESTAMP and text
    both ways, an untyped NULL to anything)."""
    return {a.kind, t.kind} - {"DATE"} <= {"TIMESTAMP", "STRING", "NULL"}


def _bind_date_arith(e: "ast.BinaryOp", a: Bound, b: Bound, sql) -> Bound:
    """DuckDB's DATE arithmetic (docs/SQL.md §2): DATE ± BIGINT days and BIGINT + DATE are a
    DATE, DATE - DATE the days between (BIGINT), DATE ± INTERVAL a TIMESTAMP (the DATE's
    midnight moved). An INTERVAL is bound as its milliseconds, so the interval is told by the
    written operand."""
    op = e.op
    ka, kb = a.type.kind, b.type.kind
    if op in ("+", "-") and (isinstance(e.right, ast.IntervalLiteral)
                             or (op == "+" and isinstance(e.left, ast.IntervalLiteral))):
        a = _convert(a, TIMESTAMP) if ka == "DATE" else a
        b = _convert(b, TIMESTAMP) if kb == "DATE" else b
        return BCall(TIMESTAMP, op, (a, b))
    days = ("INT64", "BOOL", "NULL")
    if op == "-" and ka == "DATE" and kb in ("DATE", "NULL") and not (
            kb == "NULL" and isinstance(b, BConst)):
        return BCall(INT64, "DATE_DIFF_DAYS", (a, _convert(b, DATE)))
    if op in ("+", "-") and ka == "DATE" and kb in days:
        return BCall(DATE, "DATE_ADD_DAYS", (a, _convert(b, INT64),
                                             BConst(INT64, 1 if op == "+" else -1)))
    if op == "+" and kb == "DATE" and ka in days:
        return BCall(DATE, "DATE_ADD_DAYS", (b, _convert(a, INT64), BConst(INT64, 1)))
    raise SqlError.at(sql, e.pos, f"operator '{op}' does not take {_sql_name(a.type)} and "
                                  f"{_sql_name(b.type)}: a DATE "
                                  "takes + and - of a number of days or an INTERVAL, and - of "
                                  "a DATE")


def _like_escape(esc: Bound, e, sql) -> BConst:
    """``LIKE p ESCAPE c``: a constant of at most one character (DuckDB); '' means none."""
    if not isinstance(esc, BConst) or esc.type.kind not in ("STRING", "NULL"):
        raise SqlError.at(sql, e.pos, "LIKE ... ESCAPE needs a constant string")
    if esc.value is not None and len(esc.value) > 1:
        raise SqlError.at(sql, e.pos, "the ESCAPE string of LIKE must be empty or one character")
    return esc


def _expect_bool(b: Bound, e, sql):
    if b.type.kind not in ("BOOL", "NULL"):
        raise SqlError.at(sql, getattr(e, "pos", None), f"expected a boolean condition, found {b.type}")


_CALENDAR_ONLY = ("a MONTH, QUARTER or YEAR interval has no fixed length: it can only be added "
                  "to or subtracted from a TIMESTAMP (ts + INTERVAL '1' MONTH)")


def _is_calendar(e) -> bool:
    return isinstance(e, ast.IntervalLiteral) and e.months != 0


def _bind_calendar_step(e: "ast.BinaryOp", bind, scope, strings, sql) -> Bound:
    """``ts + INTERVAL 'n' MONTH``, ``INTERVAL 'n' MONTH + ts`` and ``ts - INTERVAL 'n' MONTH``:
    TIMESTAMPADD(MONTH, ±n, ts), by the calendar with a day past the new month's end clamped to
    it, as DuckDB adds months (docs/SQL.md §2). Anything else a calendar interval meets is an
    error: DuckDB's INTERVAL type has no counterpart among velostream's types."""
    if e.op == "+" and _is_calendar(e.left) and not _is_calendar(e.right):
        months, ts_expr = e.left.months, e.right
    elif e.op in ("+", "-") and _is_calendar(e.right) and not _is_calendar(e.left):
        months, ts_expr = (e.right.months if e.op == "+" else -e.right.months), e.left
    else:
        raise SqlError.at(sql, e.pos, _CALENDAR_ONLY)
    ts = bind(ts_expr, scope, strings)
    if ts.type.kind == "DATE":  # DATE + INTERVAL '1' MONTH: its midnight moved (DuckDB)
        ts = _convert(ts, TIMESTAMP)
    if ts.type.kind not in ("TIMESTAMP", "NULL"):
        raise SqlError.at(sql, getattr(ts_expr, "pos", e.pos),
                          f"a MONTH, QUARTER or YEAR interval is added to a TIMESTAMP, found "
                          f"{ts.type}")
    return BCall(TIMESTAMP, "TIMESTAMPADD", (BConst(STRING, "month"), BConst(INT64, months), ts))


def _expect_numeric(b: Bound, e, sql, op):
    if not b.type.is_numeric:
        raise SqlError.at(sql, getattr(e, "pos", None),
                          f"operator '{op}' needs numbers, found {b.type}")


def _coerce_compare(a: Bound, b: Bound, e, sql) -> tuple[Bound, Bound]:
    ka, kb = a.type.kind, b.type.kind
    if ka == kb and ka != "DECIMAL" or "NULL" in (ka, kb):
        return a, b
    if {ka, kb} == {"DATE", "TIMESTAMP"}:  # compared as timestamps: the DATE's midnight
        return _convert(a, TIMESTAMP), _convert(b, TIMESTAMP)
    # a date compared with text: the text is read as a DATE, once, at plan time (DuckDB)
    for x, y, swap in ((a, b, False), (b, a, True)):
        if x.type.kind == "DATE" and isinstance(y, BConst) and y.type.kind == "STRING":
            ms, converts = text_to_date_ms(pa.array([y.value], pa.string()))
            if not converts[0]:
                raise SqlError.at(sql, e.pos, f"cannot compare DATE with '{y.value}' (not a date)")
            y = BConst(DATE, int(ms[0]))
            return (y, x) if swap else (x, y)
    # a timestamp compared with ISO text: convert the text once, at plan time
    for x, y, swap in ((a, b, False), (b, a, True)):
        if x.type.kind in ("TIMESTAMP", "INT64") and isinstance(y, BConst) and y.type.kind == "STRING":
            ms = parse_timestamp_ms(y.value)
            if ms is None:
                raise SqlError.at(sql, e.pos, f"cannot compare {x.type} with '{y.value}'")
            y = BConst(x.type, ms)
            return (y, x) if swap else (x, y)
    if a.type.is_numeric and b.type.is_numeric:
        t = _common_type([a.type, b.type])
        return _convert(a, t), _convert(b, t)
    raise SqlError.at(sql, e.pos, f"cannot compare {_sql_name(a.type)} with {_sql_name(b.type)}")


def _convert(b: Bound, t: SqlType, explicit: bool = False) -> Bound:
    """Implicit or explicit conversion of ``b`` to type ``t`` (constant-folded when possible)."""
    if b.type == t:
        return b
    if b.type.kind == "NULL":
        return BConst(t, None)
    if (t.kind == "DATE") != (b.type.kind == "DATE") and not _casts_with_date(b.type, t):
        raise UnsupportedError(f"cannot mix {_sql_name(b.type)} and {_sql_name(t)}: CAST one side (a DATE converts only "
                               "to and from TIMESTAMP and text)")
    return BCall(t, "CAST", (b,))


def _convert_at(b: Bound, t: SqlType, e, sql) -> Bound:
    """``_convert`` of an operand of ``e`` (CASE, COALESCE...): a mix it refuses (a DATE and a
    number) is an error at ``e``'s text."""
    try:
        return _convert(b, t)
    except UnsupportedError as exc:
        raise SqlError.at(sql, getattr(e, "pos", None), str(exc)) from None


def _bind_function(e: ast.FunctionCall, scope: Scope, strings: StringDict) -> Bound:
    sql, name = scope.sql, e.name
    if e.over is not None:
        raise SqlError.at(sql, e.pos, f"{name}(...) OVER is only allowed in the select list")
    if e.filter is not None:  # aggregates take FILTER in the planner; none reaches this point
        raise SqlError.at(sql, e.pos, f"FILTER (WHERE ...) applies to aggregates only, not {name}")
    if name not in FUNCTIONS:  # the function table (velostream/exec/functions.py)
        if name in AGGREGATES or name == "COUNT_DISTINCT":
            raise SqlError.at(sql, e.pos, f"aggregate {name} is not allowed here")
        hint = nearest(name, sorted(set(FUNCTIONS) | set(AGGREGATES)))
        raise SqlError.at(sql, e.pos, f"unknown function {name}" + (f"; did you mean {hint}?" if hint else ""))
    args = e.args
    if name in UNIT_WORD_FIRST and args and isinstance(args[0], ast.Column) \
            and args[0].table is None and not args[0].quoted:
        # TIMESTAMPDIFF(SECOND, a, b): Flink SQL writes the unit as a word, not as text
        args = (ast.Literal(args[0].name, "STRING", pos=args[0].pos),) + tuple(args[1:])
    args = tuple(bind(a, scope, strings) for a in args)
    bound = BIND_CALL[0](name, args, sql, e.pos, strings)
    if bound is not None:
        return bound
    n = len(args)

    def arity(lo, hi=None):
        hi = lo if hi is None else hi
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise SqlError.at(sql, e.pos, f"{name} takes {want} argument(s), got {n}")

    def numeric(i):
        if not args[i].type.is_numeric:
            raise SqlError.at(sql, e.pos, f"{name} needs a number, found {args[i].type}")

    if name in ("ABS", "SIGN", "FLOOR", "CEIL", "CEILING"):
        arity(1)
        numeric(0)
        if name != "ABS" and name != "SIGN" and args[0].type.kind in ("INT64", "BOOL"):
            # DuckDB has FLOOR/CEIL of an integer as DOUBLE only (CAST(FLOOR(5) AS VARCHAR) is '5.0')
            args = (_convert(args[0], FLOAT64),)
        t = args[0].type if args[0].type.kind != "BOOL" else INT64
        return BCall(INT64 if name == "SIGN" else t, "CEIL" if name == "CEILING" else name, args)
    if name == "ROUND":
        arity(1, 2)
        numeric(0)
        if n == 2 and not (isinstance(args[1], BConst) and args[1].type == INT64
                           and args[1].value is not None):
            # as DuckDB: checked here, not when a batch is evaluated (ROUND(y, 1e999) raised
            # OverflowError there)
            raise SqlError.at(sql, e.pos, "ROUND's second argument (the decimal places) must be "
                                          "an integer constant")
        if n == 2 and abs(args[1].value) > 400:
            # beyond 400 places either way the result no longer changes (a DOUBLE has at most
            # 308 + 17 digits); an unbounded one made 10 ** places take forever
            args = (args[0], BConst(INT64, 400 if args[1].value > 0 else -400))
        return BCall(args[0].type if args[0].type.kind != "BOOL" else INT64, name, args)
    if name in ("SQRT", "EXP", "LN", "LOG10"):
        arity(1)
        numeric(0)
        return BCall(FLOAT64, name, (_convert(args[0], FLOAT64),))
    if name in ("POWER", "POW"):
        arity(2)
        numeric(0), numeric(1)
        return BCall(FLOAT64, "POWER", tuple(_convert(a, FLOAT64) for a in args))
    if name == "MOD":
        arity(2)
        numeric(0), numeric(1)
        return BCall(_numeric_result(args[0].type, args[1].type, "%"), "%", args)
    if name in ("UPPER", "LOWER", "TRIM"):
        arity(1)
        return BCall(STRING, name, (_to_string(args[0]),))
    if name in ("LENGTH", "LEN", "CHAR_LENGTH"):
        arity(1)
        return BCall(INT64, "LENGTH", (_to_string(args[0]),))
    if name in ("SUBSTRING", "SUBSTR"):
        arity(2, 3)
        # start and length: integer constants, checked here as DuckDB's binder does (a DOUBLE
        # 1e999 raised OverflowError per batch); NULL gives NULL; clamped so that start + length
        # stay small in the slice (an Arrow text is shorter than 2**31 bytes)
        for a in args[1:]:
            if not (isinstance(a, BConst) and a.type.kind in ("INT64", "NULL")):
                raise SqlError.at(sql, e.pos, f"{name}'s start and length must be integer constants")
        if any(a.value is None for a in args[1:]):
            return BConst(STRING, None)
        bound = 2 ** 31
        args = args[:1] + tuple(BConst(INT64, max(-bound, min(bound, a.value))) for a in args[1:])
        return BCall(STRING, "SUBSTRING", (_to_string(args[0]),) + args[1:])
    if name == "CONCAT":
        arity(1, 64)
        return BCall(STRING, "CONCAT", tuple(_to_string(a) for a in args))
    if name in ("COALESCE", "LEAST", "GREATEST"):
        arity(1, 64)
        t = _common_type([a.type for a in args])
        return BCall(t, name, tuple(_convert_at(a, t, e, sql) for a in args))
    if name == "NULLIF":
        arity(2)
        a, b = _coerce_compare(args[0], args[1], e, sql)
        return BCall(a.type, "NULLIF", (a, b))
    raise SqlError.at(sql, e.pos, f"unknown function {name}")  # pragma: no cover


def _to_string(b: Bound) -> Bound:
    return b if b.type.kind in ("STRING", "NULL") else BCall(STRING, "CAST", (b,))


# ------------------------------------------------------------------------------ evaluation


class Val:
    """An evaluated operand: ``v`` is an array (or a numpy scalar for constants), ``ok`` its validity
    (``None`` = no NULLs; a bool scalar for constants)."""

    __slots__ = ("v", "ok", "type")

    def __init__(self, v, ok, type: SqlType):
        self.v, self.ok, self.type = v, ok, type

    @property
    def is_scalar(self) -> bool:
        return np.ndim(self.v) == 0


def _norm_valid(ok):
    """Validity as None (all valid), False (all NULL) or a bool array; scalars folded."""
    if ok is None or ok is True:
        return None
    if ok is False:
        return False
    if np.ndim(ok) == 0:
        return None if bool(ok) else False
    return ok


# the constant types made in bulk by Evaluator.columns (as Arrow: a TIMESTAMP goes out as int64,
# a DECIMAL as decimal128; those are made one by one)
_BULK_CONSTANT_KINDS = {"INT64": pa.int64(), "FLOAT64": pa.float64(), "BOOL": pa.bool_(),
                        "STRING": pa.string()}


def _constant_runs(outputs: list) -> list:
    """The constants of a select list, by type: [(their positions, type, the values as Arrow)].
    A NULL constant of any type is a null of its Arrow type (or of Arrow's null type)."""
    groups: dict = {}
    for i, (_, b) in enumerate(outputs):
        if type(b) is BConst and (b.type.kind in _BULK_CONSTANT_KINDS or b.type.kind == "NULL"):
            key = (b.type, b.value is None)
            g = groups.get(key)
            if g is None:
                g = groups[key] = ([], [])
            g[0].append(i)
            g[1].append(b.value)
    runs = []
    for (t, null), (positions, values) in groups.items():
        arrow_type = pa.null() if t.kind == "NULL" else _BULK_CONSTANT_KINDS[t.kind]
        arr = pa.nulls(len(values), arrow_type) if null else list_to_arrow(values, arrow_type)
        runs.append((positions, t, arr))
    return runs


def _shifted_runs(outputs: list) -> list:
    """The items of a select list that add or subtract a constant to a column of their own
    numeric type (``a + 1 AS c1, a + 2 AS c2, ...``), by (column, operator, type): [(their
    positions, column, operator, type, the constants as one array)]. A run of many is computed
    as one 2-D numpy operation per batch (``_shifted``); a run of one is not worth it."""
    groups: dict = {}
    for i, (_, b) in enumerate(outputs):
        if type(b) is not BCall or b.fn not in ("+", "-") or len(b.args) != 2:
            continue
        col, k = b.args
        if (type(col) is BCol and type(k) is BConst and k.value is not None
                and b.type.kind in ("INT64", "FLOAT64") and col.type == b.type
                and k.type.kind in ("INT64", "FLOAT64")
                and (b.type.kind == "FLOAT64" or k.type.kind == "INT64")):
            g = groups.setdefault((col.name, b.fn, b.type), ([], []))
            g[0].append(i)
            g[1].append(k.value)
    return [(positions, name, op, t, np.asarray(values, dtype=t.numpy_dtype))
            for (name, op, t), (positions, values) in groups.items() if len(positions) > 1]


_INT64_ARROW = pa.int64()
_ARROW_OF_KIND = {"INT64": pa.int64(), "FLOAT64": pa.float64()}


def _column(t: SqlType, values, valid, arrow, strings) -> Column:
    """``Column(t, values, valid, arrow, strings)`` for a ``valid`` already None when all rows
    are valid (the check is a numpy call; a select list makes 100,000s of these)."""
    c = _new_column(Column)
    c.type, c._values, c._valid, c.arrow, c.strings = t, values, valid, arrow, strings
    return c


_new_column = object.__new__


def _shifted(column: "Column", op: str, t: SqlType, consts: np.ndarray) -> Optional[np.ndarray]:
    """``column op k`` for every constant ``k`` of ``consts``: row j of the result is the column
    shifted by ``consts[j]``; None when some BIGINT row would leave the type (the item's own
    evaluation then raises the error, naming the row: docs/SQL.md §2)."""
    x = column.values
    if t.kind == "INT64":
        valid = column.valid
        xs = x if valid is None else x[valid]
        if len(xs):  # the extremes decide whether every shifted value stays within BIGINT
            lo, hi = int(xs.min()), int(xs.max())
            kmin, kmax = int(consts.min()), int(consts.max())
            low, high = (lo + kmin, hi + kmax) if op == "+" else (lo - kmax, hi - kmin)
            if low < -2 ** 63 or high > 2 ** 63 - 1:
                return None
    with np.errstate(all="ignore"):  # (NULL rows' placeholder values may wrap: they stay NULL)
        if op == "+":
            return np.add(x[None, :], consts[:, None])
        return np.subtract(x[None, :], consts[:, None])


def _and_valid(*oks):
    out = None
    for ok in oks:
        if ok is None or ok is True:
            continue
        if ok is False:
            return False
        out = ok if out is None else (out & ok)
    return out


class Evaluator:
    """Evaluates bound expressions over batches. One per job: it holds the string dictionary and
    per-pattern caches (LIKE over dictionary values)."""

    def __init__(self, strings: StringDict):
        self.strings = strings
        # The rows being evaluated, when not all of the batch: a CASE branch is evaluated for the
        # rows that take it only (as in DuckDB), so another row's overflow there is no error.
        self.active: Optional[np.ndarray] = None
        # what a node needs made once, not per batch: id(node) -> (node, it, ...): an IN list's
        # constants as one array (or None), a CASE's _CaseLookup (or None), an AND/OR chain's
        # terms, a select list's constants (Evaluator.columns)
        self.in_lists: dict = {}

    def check(self, bad, ok, n: int, describe: Callable[[int], str]) -> None:
        """Raise ``OutOfRangeError`` when ``bad`` (a bool array, or a scalar for constants) holds
        for a row that is not NULL (``ok``) and is being evaluated. ``describe(i)`` words the
        error after failing row ``i``. The error carries the failing rows as a mask over the
        batch, so a job can send just them to the dead-letter output."""
        if not np.any(bad):  # the common case: one vectorised pass
            return
        rows = np.full(n, True) if np.ndim(bad) == 0 else np.array(bad, dtype=bool)
        ok = _norm_valid(ok)
        if ok is False:
            return
        if ok is not None:
            rows &= ok
        if self.active is not None:
            rows &= self.active
        if rows.any():
            raise OutOfRangeError(describe(int(np.argmax(rows))), rows=rows)

    def column(self, b: Bound, batch: Batch) -> Column:
        """Evaluate to a full-length Column."""
        if isinstance(b, BCol):
            return batch.columns[b.name]
        whole = COLUMN_OPS.get(b.fn) if type(b) is BCall else None
        if whole is not None:
            col = whole(self, b, batch)
            if col is not None:
                return col
        val = self.eval(b, batch)
        n = batch.length
        v, ok = val.v, _norm_valid(val.ok)
        if np.ndim(v) == 0:
            if ok is False or v is None or (isinstance(ok, np.ndarray) and not ok.any()):
                return Column.constant(None, b.type, n, self.strings)
            v = np.full(n, v, dtype=b.type.numpy_dtype)
        if ok is False:
            ok = np.zeros(n, dtype=bool)
        if v.dtype != b.type.numpy_dtype and b.type.kind != "NULL":
            v = v.astype(b.type.numpy_dtype)
        return Column(b.type, v, ok, strings=self.strings)

    def columns(self, outputs: list, batch: Batch) -> dict:
        """A select list (``[(name, bound), ...]``) over ``batch``: name -> ``column(bound)``. A
        select list can be 300,000 items (docs/SQL.md, "Limits"), so per batch a column reference
        is the batch's own column, and the constants of one type are one Arrow array of each
        repeated ``n`` times, a slice of it per item; anything else is evaluated one by one."""
        cached = self.in_lists.get(id(outputs))
        if cached is None or cached[0] is not outputs or cached[2] != len(outputs):
            refs = [b.name if type(b) is BCol else None for _, b in outputs]
            cached = self.in_lists[id(outputs)] = (
                outputs, _constant_runs(outputs), len(outputs), _shifted_runs(outputs),
                refs, [n for n, _ in outputs], [i for i, r in enumerate(refs) if r is None])
        _, constants, _, shifted, refs, names, computed = cached
        n = batch.length
        cols = batch.columns
        # the loops over the whole list run in C (comprehensions, zip): per item only a lookup
        vals = [None if r is None else cols[r] for r in refs]
        strings = self.strings
        for positions, t, values in constants if n else ():
            repeat = np.repeat(np.arange(len(values), dtype=np.int64), n)
            piece = values.take(numpy_to_arrow(repeat, None, _INT64_ARROW)).slice
            for i, lo in zip(positions, range(0, len(positions) * n, n)):
                vals[i] = _column(t, None, None, piece(lo, n), strings)
        for positions, name, op, t, consts in shifted if n else ():
            col = cols[name]
            rows = _shifted(col, op, t, consts)
            if rows is not None:
                # each item both ways: its row of the 2-D result, and a slice of one Arrow array
                # of them all (what leaves: one conversion, not one per item)
                valid = col.valid
                if rows.dtype != t.numpy_dtype:  # (never: numpy keeps the column's dtype)
                    for j, i in enumerate(positions):
                        vals[i] = Column(t, rows[j], valid, strings=strings)
                    continue
                whole = numpy_to_arrow(rows.reshape(-1), None if valid is None else
                                       np.tile(valid, len(positions)), _ARROW_OF_KIND[t.kind])
                piece = whole.slice
                for j, i in enumerate(positions):
                    vals[i] = _column(t, rows[j], valid, piece(j * n, n), strings)
        for i in computed:
            if vals[i] is None:
                vals[i] = self.column(outputs[i][1], batch)
        return dict(zip(names, vals))

    def mask(self, b: Bound, batch: Batch) -> np.ndarray:
        """A WHERE/HAVING condition as a row mask (NULL counts as false)."""
        if b.type.kind == "NULL":  # e.g. WHERE NULL, WHERE COALESCE(NULL, NULL)
            return np.zeros(batch.length, dtype=bool)
        val = self.eval(b, batch)
        v, ok = val.v, _norm_valid(val.ok)
        if np.ndim(v) == 0:
            keep = bool(v) and ok is not False and v is not None
            return np.full(batch.length, keep, dtype=bool)
        v = np.asarray(v, dtype=bool)
        if ok is None:
            return v
        if ok is False:
            return np.zeros(batch.length, dtype=bool)
        return v & ok

    # -- the interpreter: one numpy/Arrow call per node and batch
    def eval(self, b: Bound, batch: Batch) -> Val:
        if isinstance(b, BCol):
            c = batch.columns[b.name]
            return Val(c.values, c.valid, c.type)
        if isinstance(b, BConst):
            if b.value is None:
                return Val(np.int64(0), False, b.type)
            if b.type.kind == "STRING":
                return Val(np.int32(self.strings.code(b.value)), True, b.type)
            return Val(np.asarray(b.value, dtype=b.type.numpy_dtype)[()], True, b.type)
        fn = _OPS.get(b.fn)
        if fn is None:  # pragma: no cover - the binder only produces known functions
            raise UnsupportedError(f"function {b.fn} is not implemented")
        return fn(self, b, batch)

    # helpers for string work in Arrow
    def to_arrow_strings(self, val: Val, n: int) -> pa.Array:
        if val.is_scalar:
            if val.ok is False:
                return pa.nulls(n, pa.string())
            return pa.array([self.strings.values_of([int(val.v)])[0]] * n, pa.string())
        valid = None if (val.ok is None or val.ok is True) else val.ok
        return self.strings.decode(val.v, valid)

    def from_arrow_strings(self, arr: pa.Array) -> Val:
        codes, valid = self.strings.encode_arrow(arr)
        return Val(codes, valid, STRING)


# -- operator implementations ---------------------------------------------------------------

def _num(val: Val, target: SqlType):
    """Values of ``val`` in the representation of numeric type ``target``."""
    v = val.v
    if target.kind == "FLOAT64":
        if val.type.kind == "DECIMAL":
            return np.asarray(v, dtype=np.float64) / (10 ** val.type.scale)
        return v.astype(np.float64, copy=False) if isinstance(v, np.ndarray) else np.float64(v)
    if target.kind == "DECIMAL":
        s_from = val.type.scale if val.type.kind == "DECIMAL" else 0
        if val.type.kind == "FLOAT64":
            return _round_half_away(np.asarray(v, dtype=np.float64) * 10 ** target.scale).astype(np.int64)
        f = 10 ** (target.scale - s_from)
        return np.asarray(v, dtype=np.int64) * f if f != 1 else np.asarray(v, dtype=np.int64)
    return np.asarray(v, dtype=np.int64) if val.type.kind == "BOOL" else v


def _round_half_away(x):
    # copysign, not sign(x) * ...: ROUND(-0.2) and ROUND(-0.0) are -0.0 as in DuckDB
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


_INT64_MIN = np.int64(np.iinfo(np.int64).min)
_TWO_63 = 2.0 ** 63


def _at(v, i: int):
    """Row ``i`` of an operand (an array or a constant), as a Python number for messages."""
    return (v[i] if np.ndim(v) else v).item()


def _type_word(t: SqlType) -> str:
    """A type as DuckDB's messages name it."""
    if t.kind in ("INT64", "TIMESTAMP", "BOOL"):
        return "INT64"
    return "DOUBLE" if t.kind == "FLOAT64" else str(t)


def _check_rescale(ev, val: Val, t: SqlType, ok, n: int) -> None:
    """An integer or decimal operand brought to DECIMAL scale ``t.scale`` (multiplied by a power
    of ten) must still fit int64."""
    if val.type.kind == "FLOAT64":
        return
    s_from = val.type.scale if val.type.kind == "DECIMAL" else 0
    if t.scale <= s_from:
        return
    f = 10 ** (t.scale - s_from)
    v = np.asarray(val.v, dtype=np.int64)
    limit = np.iinfo(np.int64).max // f
    ev.check((v > limit) | (v < -limit), ok, n, lambda i: (
        f"Out of Range Error: Overflow in scaling {_at(v, i)} to {t}"))


def _overflow(what: str, sym: str, x, y, t: SqlType) -> Callable[[int], str]:
    return lambda i: (f"Out of Range Error: Overflow in {what} of {_type_word(t)} "
                      f"({_at(x, i)} {sym} {_at(y, i)})")


def _mul_overflows(x, y, r):
    """Rows where the int64 product ``x * y`` wrapped (``r`` is the wrapped product). The float
    product finds the few rows near the limit; those are checked exactly by dividing back."""
    f = np.multiply(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    near = np.abs(f) >= 2.0 ** 62
    if not np.any(near):
        return near
    if np.ndim(near) == 0:  # two constants
        x, y, r = np.asarray([x]), np.asarray([y]), np.asarray([r])
        return _mul_overflows(x, y, r)[0]
    xs = np.broadcast_to(x, near.shape)[near]
    ys = np.broadcast_to(y, near.shape)[near]
    rs = r[near]
    # r // x recovers y exactly when the product fit (x != 0 here: |x*y| >= 2**62); MIN * -1
    # wraps to MIN, whose quotient wraps back, so it is named apart
    bad = np.zeros(near.shape, dtype=bool)
    bad[near] = (np.floor_divide(rs, xs) != ys) | ((xs == -1) & (ys == _INT64_MIN))
    return bad


def _cast_failed(ev, bad, ok, n: int, try_: bool, describe: Callable[[int], str]):
    """Rows ``bad`` of a CAST that do not convert: NULL under TRY_CAST (the validity returned),
    else the first such row's error (``Evaluator.check``: a bad record in a job)."""
    if try_:
        return _and_valid(ok, ~bad)
    ev.check(bad, ok, n, describe)
    return ok


def _float_to_int(ev, v, ok, n: int, dst: SqlType, try_: bool):
    """DOUBLE -> BIGINT/TIMESTAMP: nearest, ties to even (DuckDB); NaN, inf and values beyond
    int64 are out of range (NULL under TRY_CAST)."""
    rv = np.rint(v)
    bad = ~((rv >= -_TWO_63) & (rv < _TWO_63))  # NaN fails both comparisons
    if np.any(bad):
        ok = _cast_failed(ev, bad, ok, n, try_, lambda i: (
            f"Conversion Error: Type DOUBLE with value {_at(v, i)!r} can't be cast because "
            f"the value is out of range for the destination type {_type_word(dst)}"))
        rv = np.where(bad, 0.0, rv)
    return Val(np.asarray(rv).astype(np.int64)[()], ok, dst)


_DEC38 = pa.decimal128(38, 0)


def _text_to_int(ev, arr: pa.Array, ok, n: int, dst: SqlType, try_: bool) -> Val:
    """Text -> BIGINT when not all of it is integer text within int64: integer text exactly
    (through DECIMAL(38, 0), out of range beyond int64), other numbers through DOUBLE."""
    whole = pc.fill_null(pc.match_substring_regex(arr, r"^[+-]?\d{1,38}$"), False)
    nums = pc.cast(pc.if_else(whole, pa.scalar("0", pa.string()), arr), pa.float64())
    f = nums.fill_null(0).to_numpy(zero_copy_only=False)
    ok = _and_valid(ok, _arrow_valid(nums))
    rv = _round_half_away(f)
    bad = ~((rv >= -_TWO_63) & (rv < _TWO_63))
    if pc.any(whole).as_py():
        zero = pa.scalar(decimal.Decimal(0), _DEC38)
        dec = pc.cast(pc.if_else(whole, arr, pa.scalar("0", pa.string())), _DEC38)
        out = pc.or_(pc.greater(dec, pa.scalar(decimal.Decimal(2**63 - 1), _DEC38)),
                     pc.less(dec, pa.scalar(decimal.Decimal(-2**63), _DEC38)))
        exact = pc.cast(pc.if_else(out, zero, dec), pa.int64()).to_numpy(zero_copy_only=False)
        w = whole.to_numpy(zero_copy_only=False)
        rv = np.where(w, 0.0, rv)
        bad = np.where(w, out.to_numpy(zero_copy_only=False), bad)
    else:
        w, exact = False, 0
    if np.any(bad):
        ok = _cast_failed(ev, bad, ok, n, try_, lambda i: (
            f"Conversion Error: Could not convert string '{arr[i].as_py()}' to "
            f"{_type_word(dst)}: out of range"))
        rv = np.where(bad, 0.0, rv)
    return Val(np.where(w, exact, rv.astype(np.int64)), ok, dst)


def _arith(ev: Evaluator, b: BCall, batch: Batch) -> Val:
    a, c = ev.eval(b.args[0], batch), ev.eval(b.args[1], batch)
    t, op = b.type, b.fn
    ok = _and_valid(a.ok, c.ok)
    with np.errstate(all="ignore"):
        if op == "/" or (op == "//" and t.kind == "FLOAT64"):
            x, y = _num(a, FLOAT64), _num(c, FLOAT64)
            return Val(np.true_divide(x, y), ok, t)
        n = batch.length
        if op == "//":
            return _int_divide(ev, _num(a, t), _num(c, t), ok, n, t)
        if t.kind == "DECIMAL" and op == "*":
            x = _num(a, DECIMAL(18, a.type.scale if a.type.kind == "DECIMAL" else 0))
            y = _num(c, DECIMAL(18, c.type.scale if c.type.kind == "DECIMAL" else 0))
            r = np.multiply(x, y)
            ev.check(_mul_overflows(x, y, r), ok, n, _overflow("multiplication", "*", x, y, t))
            return Val(r, ok, t)
        if t.kind == "DECIMAL":  # operands of a smaller scale are multiplied up first
            _check_rescale(ev, a, t, ok, n)
            _check_rescale(ev, c, t, ok, n)
        x, y = _num(a, t), _num(c, t)
        exact = t.kind != "FLOAT64"  # int64 values (BIGINT, DECIMAL): a wrapped result is an error
        if exact and op in "+-" and np.ndim(y) == 0 and np.ndim(x) == 1 and len(x):
            # a column plus or minus a constant (``_WINDOW_END - 1``, ``qty + 10``): one min/max
            # pass tells whether any row leaves BIGINT, instead of the sign test per row
            step = int(y) if op == "+" else -int(y)
            lo, hi = int(x.min()), int(x.max())
            if -2 ** 63 <= lo + step and hi + step <= 2 ** 63 - 1:
                return Val(np.add(x, step) if op == "+" else np.subtract(x, y), ok, t)
        if op == "+":
            r = np.add(x, y)
            if exact:  # the sign of the sum differs from both operands' signs
                ev.check(((x ^ r) & (y ^ r)) < 0, ok, n, _overflow("addition", "+", x, y, t))
            return Val(r, ok, t)
        if op == "-":
            r = np.subtract(x, y)
            if exact:  # operands of different signs, and the result's sign is not x's
                ev.check(((x ^ y) & (x ^ r)) < 0, ok, n, _overflow("subtraction", "-", x, y, t))
            return Val(r, ok, t)
        if op == "*":
            r = np.multiply(x, y)
            if exact:
                ev.check(_mul_overflows(x, y, r), ok, n, _overflow("multiplication", "*", x, y, t))
            return Val(r, ok, t)
        if op == "%":
            if t.kind == "FLOAT64":
                # DOUBLE x % 0 is NaN (fmod), as in DuckDB; an integer or decimal x % 0 is NULL
                return Val(np.fmod(x, y), ok, t)
            zero = np.equal(y, 0)
            r = np.fmod(x, np.where(zero, 1, y))
            if np.any(zero):
                ok = _and_valid(ok, ~zero if np.ndim(zero) else (not bool(zero)))
            return Val(r, ok, t)
    raise AssertionError(op)


def _int_divide(ev: "Evaluator", x, y, ok, n: int, t: SqlType) -> Val:
    """BIGINT ``x // y``: the quotient toward zero, as DuckDB; by zero NULL (as ``%``), and
    INT64_MIN // -1, which leaves BIGINT, an error."""
    ev.check((x == _INT64_MIN) & (y == -1), ok, n, _overflow("division", "//", x, y, t))
    zero = np.equal(y, 0)
    safe = np.where(zero | (y == -1), 1, y)  # (-1 apart: numpy's INT64_MIN // -1 traps)
    q = np.floor_divide(x, safe)
    q = np.where((q * safe != x) & ((x < 0) != (safe < 0)), q + 1, q)  # floor -> toward zero
    q = np.where(np.equal(y, -1), np.negative(np.where(x == _INT64_MIN, 0, x)), q)
    if np.any(zero):
        ok = _and_valid(ok, ~zero if np.ndim(zero) else (not bool(zero)))
    return Val(q, ok, t)


_COMPARISONS = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
                ">": np.greater, ">=": np.greater_equal}


def _compare(ev: Evaluator, b: BCall, batch: Batch) -> Val:
    a, c = ev.eval(b.args[0], batch), ev.eval(b.args[1], batch)
    op = b.fn
    ok = _and_valid(a.ok, c.ok)
    if a.type.kind == "STRING" and op not in ("=", "!="):
        n = batch.length
        x, y = ev.to_arrow_strings(a, n), ev.to_arrow_strings(c, n)
        fn = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}[op]
        r = fn(x, y)
        return Val(r.fill_null(False).to_numpy(zero_copy_only=False), ok, BOOL)
    x, y = a.v, c.v
    fn = _COMPARISONS[op]
    if a.type.kind == "FLOAT64" or c.type.kind == "FLOAT64":
        x, y = _num(a, FLOAT64), _num(c, FLOAT64)
        xn, yn = np.isnan(x), np.isnan(y)
        if np.any(xn) or np.any(yn):
            # DuckDB orders NaN above every number and equal to itself: compare (is_nan, value)
            x = np.where(xn, 0.0, x)
            y = np.where(yn, 0.0, y)
            eq = (xn == yn) & ((xn & yn) | (x == y))
            lt = (~xn & yn) | ((xn == yn) & ~xn & (x < y))
            r = {"=": eq, "!=": ~eq, "<": lt, "<=": lt | eq, ">": ~(lt | eq), ">=": ~lt}[op]
            return Val(r, ok, BOOL)
    return Val(fn(x, y), ok, BOOL)


def _truth(val: Val):
    """(definitely true, definitely false) masks of a three-valued boolean."""
    v, ok = val.v, val.ok
    if ok is False or val.type.kind == "NULL":
        # a NULL-typed operand (MIN(NULL)) holds placeholder int64 values: never a truth value
        return np.bool_(False), np.bool_(False)
    if ok is None or ok is True:
        return v, ~v if isinstance(v, np.ndarray) else np.bool_(not v)
    return v & ok, ~v & ok


def _and_or(ev: Evaluator, b: BCall, batch: Batch) -> Val:
    a0, a1 = b.args
    if (type(a0) is BCall and a0.fn == b.fn) or (type(a1) is BCall and a1.fn == b.fn):
        return _chain(ev, b, batch)
    a, c = ev.eval(a0, batch), ev.eval(a1, batch)
    at, af = _truth(a)
    ct, cf = _truth(c)
    if b.fn == "AND":
        t, f = at & ct, af | cf
    else:
        t, f = at | ct, af & cf
    if (a.ok is None or a.ok is True) and (c.ok is None or c.ok is True):
        return Val(t, None, BOOL)
    return Val(t, t | f, BOOL)


def _chain(ev: Evaluator, b: BCall, batch: Batch) -> Val:
    """A chain of ANDs (or of ORs), ``x1 AND x2 AND ...``, as one n-ary reduction over its terms
    in their order, not one node per pair: the parser keeps long chains balanced, and a megabyte
    holds 100,000 terms (docs/SQL.md, "Limits"). Three-valued: true where every term is true
    (any, for OR), false where any is false (every, for OR), NULL elsewhere, as the pairs give."""
    cached = ev.in_lists.get(id(b))  # the terms, found once per evaluator
    if cached is None or cached[0] is not b:
        terms, stack = [], [b]
        while stack:
            node = stack.pop()
            if type(node) is BCall and node.fn == b.fn:
                stack.append(node.args[1])
                stack.append(node.args[0])
            else:
                terms.append(node)
        cached = ev.in_lists[id(b)] = (b,) + _chain_memberships(ev, b.fn, terms)
    is_and = b.fn == "AND"
    t = f = None
    valid = True  # no term has a NULL
    for column, keys, null_key in cached[2]:
        col = batch.columns[column.name]
        hit = np.isin(np.asarray(col.values, dtype=np.int64), keys)
        yes, no = (~hit, hit) if is_and else (hit, ~hit)
        if col.valid is not None:
            yes, no = yes & col.valid, no & col.valid
            valid = False
        if null_key:  # a term = NULL (<> NULL) is NULL: the chain is never false (true)
            yes, no = (np.zeros_like(hit), no) if is_and else (yes, np.zeros_like(hit))
            valid = False
        t, f = (yes, no) if t is None else ((t & yes, f | no) if is_and else (t | yes, f & no))
    for term in cached[1]:
        val = ev.eval(term, batch)
        ok = val.ok
        if not (ok is None or ok is True):
            valid = False
        vt, vf = _truth(val)
        if t is None:
            t, f = vt, vf
        elif is_and:
            t, f = t & vt, f | vf
        else:
            t, f = t | vt, f & vf
    return Val(t, None, BOOL) if valid else Val(t, t | f, BOOL)


def _chain_memberships(ev: Evaluator, fn: str, terms: list) -> tuple[list, list]:
    """(the other terms, [(column, its constants as int64, whether one is NULL)]): the terms of
    an OR chain that are ``column = constant`` (of an AND chain, ``column <> constant``), two or
    more per column of a _LOOKUP_KINDS type, become one membership test of that column (the IN
    and NOT IN they equal in three-valued logic; they raise no error, so their order is free)."""
    op = "!=" if fn == "AND" else "="
    found: dict = {}
    for i, term in enumerate(terms):
        if type(term) is BCall and term.fn == op and len(term.args) == 2:
            x, k = term.args
            if type(x) is BConst:
                x, k = k, x
            if (type(x) is BCol and type(k) is BConst and x.type.kind in _LOOKUP_KINDS
                    and k.type.kind in (x.type.kind, "NULL")):
                found.setdefault(x, []).append((i, k.value))
    grouped = set()
    memberships = []
    for column, items in found.items():
        if len(items) < 2:
            continue
        grouped.update(i for i, _ in items)
        values = [v for _, v in items if v is not None]
        if column.type.kind == "STRING":
            keys = ev.strings.encode_arrow(list_to_arrow(values, pa.string()))[0].astype(np.int64)
        else:
            keys = np.array([int(v) for v in values], dtype=np.int64)
        memberships.append((column, np.unique(keys), len(values) < len(items)))
    return [x for i, x in enumerate(terms) if i not in grouped], memberships


def _not(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    if a.type.kind == "NULL":  # NOT of an all-NULL operand; ~ of its int64 placeholders is no answer
        return Val(np.bool_(False), False, BOOL)
    return Val(~a.v if isinstance(a.v, np.ndarray) else np.bool_(not a.v), a.ok, BOOL)


def _neg(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    v = _num(a, b.type)
    if b.type.kind != "FLOAT64":  # -(-2**63) does not fit
        ev.check(np.equal(v, _INT64_MIN), a.ok, batch.length, lambda i: (
            f"Out of Range Error: Overflow in negation of {_type_word(b.type)} (-({_at(v, i)}))"))
    with np.errstate(all="ignore"):
        return Val(np.negative(v), a.ok, b.type)


def _is_null(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    n = batch.length
    if a.ok is None or a.ok is True:
        r = np.zeros(n, dtype=bool)
    elif a.ok is False:
        r = np.ones(n, dtype=bool)
    else:
        r = ~a.ok
    return Val(~r if b.fn == "IS_NOT_NULL" else r, None, BOOL)


def _equal(x, y):
    """Element-wise ``x = y`` as DuckDB has it for IN and NULLIF: a NaN equals a NaN (and nothing
    else), as in ``_compare``."""
    eq = np.equal(x, y)
    if np.asarray(x).dtype.kind == "f" and np.asarray(y).dtype.kind == "f":
        eq = eq | (np.isnan(x) & np.isnan(y))
    return eq


def _in(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    if not a.is_scalar:
        # the constants of a long list (150,000 of them from a generated filter) are evaluated
        # into one array once, not once per item per batch
        cached = ev.in_lists.get(id(b))
        if cached is None or cached[0] is not b:
            cached = ev.in_lists[id(b)] = (b, _in_constants(ev, b, a, batch))
        vals = cached[1]
        if vals is not None:
            if a.type.kind == "FLOAT64":
                x = _num(a, FLOAT64)
                if np.isnan(vals).any():  # NaN IN (NaN) is true (np.isin says false)
                    return Val(np.isin(x, vals) | np.isnan(x), a.ok, BOOL)
                return Val(np.isin(x, vals), a.ok, BOOL)
            return Val(np.isin(a.v, vals), a.ok, BOOL)
    items = [ev.eval(x, batch) for x in b.args[1:]]
    if all(i.is_scalar and i.ok is not False for i in items) and not a.is_scalar:
        x = a.v
        vals = [i.v for i in items]
        if a.type.kind == "FLOAT64":
            x, vals = _num(a, FLOAT64), [_num(i, FLOAT64) for i in items]
            if np.isnan(vals).any():  # NaN IN (NaN) is true (np.isin says false)
                return Val(np.isin(x, np.array(vals)) | np.isnan(x), a.ok, BOOL)
        return Val(np.isin(x, np.array(vals)), a.ok, BOOL)
    # general three-valued form: OR of equalities
    acc = None
    for it in items:
        ok = _and_valid(a.ok, it.ok)
        v = _equal(a.v, it.v)
        cur = Val(v, ok, BOOL)
        acc = cur if acc is None else _or_vals(acc, cur)
    return acc


def _in_constants(ev, b, a: Val, batch) -> Optional[np.ndarray]:
    """The items of IN ``b`` as one array in the representation of its operand ``a``, when all
    are constants that are not NULL; else None (the general three-valued form)."""
    if not all(isinstance(x, BConst) and x.value is not None for x in b.args[1:]):
        return None
    if a.type.kind == "STRING" and all(x.type.kind == "STRING" for x in b.args[1:]):
        # interned all at once (one by one, a megabyte of strings takes a second)
        texts = list_to_arrow([x.value for x in b.args[1:]], pa.string())
        return ev.strings.encode_arrow(texts)[0]
    kinds = {x.type.kind for x in b.args[1:]}
    if a.type.kind == "INT64" and kinds == {"INT64"}:
        return np.array([x.value for x in b.args[1:]], dtype=np.int64)
    if a.type.kind == "FLOAT64" and kinds <= {"INT64", "FLOAT64"}:
        return np.array([x.value for x in b.args[1:]], dtype=np.float64)
    items = [ev.eval(x, batch) for x in b.args[1:]]
    if not all(i.is_scalar and i.ok is not False for i in items):
        return None
    if a.type.kind == "FLOAT64":
        return np.array([_num(i, FLOAT64) for i in items])
    return np.array([i.v for i in items])


def _or_vals(a: Val, c: Val) -> Val:
    at, af = _truth(a)
    ct, cf = _truth(c)
    t, f = at | ct, af & cf
    return Val(t, t | f, BOOL)


def like_pattern_for_arrow(pattern: str, escape: Optional[str] = None) -> str:
    """A SQL LIKE pattern in the syntax of Arrow's ``match_like``, where a backslash always
    escapes. SQL LIKE has no escape character unless ``ESCAPE`` names one (DuckDB), so a
    backslash of the pattern is a plain character; the ``escape`` character makes the next
    character plain (``%``, ``_``, itself or any other)."""
    out = []
    plain = False
    for ch in pattern:
        if plain:
            out.append("\\" + ch if ch in "%_\\" else ch)
            plain = False
        elif escape and ch == escape:
            plain = True
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    if plain:
        raise SqlError(f"the LIKE pattern {pattern!r} ends with its escape character {escape!r}")
    return "".join(out)


def _like(ev, b, batch):
    a, p = ev.eval(b.args[0], batch), ev.eval(b.args[1], batch)
    ignore_case = b.fn.startswith("ILIKE")
    escape = None
    if len(b.args) > 2:
        escape = b.args[2].value
        if escape is None:  # LIKE ... ESCAPE NULL is NULL
            return Val(np.bool_(False), False, BOOL)
    if p.is_scalar and p.ok is not False and not a.is_scalar:
        # Match the pattern against the dictionary's values once, then look rows up by code.
        pattern = like_pattern_for_arrow(ev.strings.values_of([int(p.v)])[0], escape)
        dv = ev.strings.arrow_values()
        table = pc.match_like(dv, pattern, ignore_case=ignore_case).to_numpy(zero_copy_only=False)
        return Val(table[a.v], a.ok, BOOL)
    # A pattern per row: the rows grouped by pattern (its dictionary code), one Arrow call per
    # distinct pattern, never one per row.
    n = batch.length
    ok = _norm_valid(_and_valid(a.ok, p.ok))
    r = np.zeros(n, dtype=bool)
    if ok is False:
        return Val(r, False, BOOL)
    x = ev.to_arrow_strings(a, n)
    codes = np.broadcast_to(np.asarray(p.v, dtype=np.int64), (n,))
    rows = np.arange(n) if ok is None else np.flatnonzero(ok)
    order = rows[np.argsort(codes[rows], kind="stable")]
    distinct, starts = np.unique(codes[order], return_index=True)
    for code, lo, hi in zip(distinct, starts, np.append(starts[1:], len(order))):
        pattern = like_pattern_for_arrow(ev.strings.values_of([int(code)])[0], escape)
        sel = order[lo:hi]
        r[sel] = pc.match_like(x.take(pa.array(sel)), pattern,
                               ignore_case=ignore_case).to_numpy(zero_copy_only=False)
    return Val(r, ok, BOOL)


def _case(ev, b, batch):
    cached = ev.in_lists.get(id(b))  # the lookup (or None) of this CASE, made once per evaluator
    if cached is None or cached[0] is not b:
        cached = ev.in_lists[id(b)] = (b, _case_lookup(ev, b))
    if cached[1] is not None:
        return _case_by_lookup(ev, b, batch, cached[1])
    n = batch.length
    args = b.args
    t = b.type
    out_v = None
    out_ok = None
    decided = np.zeros(n, dtype=bool)
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    outer = ev.active
    for cond, res in pairs + [(None, args[-1])]:
        # each WHEN and THEN is evaluated for the rows still undecided (DuckDB): an overflow in a
        # branch that a row does not take is no error for that row
        if cond is None:
            take = ~decided
        else:
            ev.active = ~decided if outer is None else outer & ~decided
            try:
                take = ev.mask(cond, batch) & ~decided
            finally:
                ev.active = outer
        if not take.any():
            continue
        ev.active = take if outer is None else outer & take
        try:
            col = ev.column(res, batch)
        finally:
            ev.active = outer
        if out_v is None:
            out_v = np.zeros(n, dtype=t.numpy_dtype)
            out_ok = np.zeros(n, dtype=bool)
        out_v[take] = col.values[take]
        out_ok[take] = col.valid_mask()[take]
        decided |= take
        if cond is not None and decided.all():
            break  # every row has its branch: the WHENs left would take none
    if out_v is None:
        return Val(np.zeros(n, dtype=t.numpy_dtype), np.zeros(n, dtype=bool), t)
    return Val(out_v, out_ok, t)


# From this many WHENs on, a CASE whose every WHEN is ``column = constant`` (a generated mapping,
# ``CASE x WHEN 1 THEN ... WHEN 2 THEN ...``) finds each row's branch by one sorted lookup per
# batch instead of one comparison per WHEN (docs/SQL.md, "Limits": 40,000 WHENs in a megabyte).
CASE_LOOKUP_WHENS = 8
# the column types whose equality is equality of their int64 representation (a STRING's code
# names one distinct string); DOUBLE (NaN) and DECIMAL (scales) keep the comparisons
_LOOKUP_KINDS = ("INT64", "TIMESTAMP", "BOOL", "STRING")


class _CaseLookup:
    __slots__ = ("column", "keys", "first", "values", "valid", "constant")

    def __init__(self, column, keys, first, values, valid, constant):
        self.column = column      # the column every WHEN compares (a BCol)
        self.keys = keys          # its constants, sorted and distinct (int64)
        self.first = first        # per key, the first WHEN that names it
        self.values = values      # per branch (the WHENs, then ELSE), a constant THEN's value
        self.valid = valid        # ... and whether it is not NULL
        self.constant = constant  # per branch, whether its THEN is a constant


def _case_lookup(ev, b) -> Optional[_CaseLookup]:
    """The lookup for CASE ``b`` when it has at least CASE_LOOKUP_WHENS WHENs, each ``c = k`` (or
    ``k = c``) of one column ``c`` of a _LOOKUP_KINDS type and a constant ``k``; else None. A NULL
    ``k`` is never true (three-valued ``=``), so it names no key. Only a plain column, evaluated
    once: it raises no error and has no side effects, so this is the same as the comparisons."""
    args = b.args
    whens = (len(args) - 1) // 2
    if whens < CASE_LOOKUP_WHENS:
        return None
    column = None
    consts = []
    for i in range(0, 2 * whens, 2):
        cond = args[i]
        if not (isinstance(cond, BCall) and cond.fn == "=" and len(cond.args) == 2):
            return None
        x, k = cond.args
        if isinstance(x, BConst):
            x, k = k, x
        if not (isinstance(x, BCol) and isinstance(k, BConst) and x.type.kind in _LOOKUP_KINDS
                and k.type.kind in (x.type.kind, "NULL")):
            return None
        if column is None:
            column = x
        elif x != column:
            return None
        consts.append(k)
    named = [(i, k.value) for i, k in enumerate(consts) if k.value is not None]
    if column.type.kind == "STRING":  # interned all at once, as IN's constants
        codes = ev.strings.encode_arrow(list_to_arrow([v for _, v in named], pa.string()))[0]
        keys = np.asarray(codes, dtype=np.int64)
    else:
        keys = np.array([int(v) for _, v in named], dtype=np.int64)
    order = np.array([i for i, _ in named], dtype=np.int64)
    keys, at = np.unique(keys, return_index=True)  # the first occurrence of each key
    first = order[at]
    results = [args[i + 1] for i in range(0, 2 * whens, 2)] + [args[-1]]
    constant = np.array([isinstance(r, BConst) for r in results], dtype=bool)
    t = b.type
    values = np.zeros(len(results), dtype=t.numpy_dtype)
    valid = np.zeros(len(results), dtype=bool)
    held = [(j, r.value) for j, r in enumerate(results) if isinstance(r, BConst) and r.value is not None]
    if held:
        at = np.array([j for j, _ in held], dtype=np.int64)
        if t.kind == "STRING":
            values[at] = ev.strings.encode_arrow(list_to_arrow([v for _, v in held],
                                                                pa.string()))[0]
        else:
            values[at] = np.array([v for _, v in held], dtype=t.numpy_dtype)
        valid[at] = True
    return _CaseLookup(column, keys, first, values, valid, constant)


def _case_by_lookup(ev, b, batch, lk: _CaseLookup) -> Val:
    """CASE by its lookup: each row's branch is the first WHEN whose constant equals the row's
    value (ELSE when none does, or the value is NULL). Constant THENs are gathered in one step;
    any other THEN is evaluated once, for the rows that take it (as in ``_case``), in WHEN order."""
    n = batch.length
    col = batch.columns[lk.column.name]
    x = np.asarray(col.values, dtype=np.int64)
    else_branch = len(lk.values) - 1
    branch = np.full(n, else_branch, dtype=np.int64)
    if len(lk.keys):
        at = np.minimum(np.searchsorted(lk.keys, x), len(lk.keys) - 1)
        hit = lk.keys[at] == x
        if col.valid is not None:
            hit &= col.valid
        branch[hit] = lk.first[at[hit]]
    out_v = lk.values[branch]
    out_ok = lk.valid[branch]
    computed = branch[~lk.constant[branch]]
    if len(computed):
        outer = ev.active
        for j in np.unique(computed):  # sorted: the WHEN order
            take = branch == j
            ev.active = take if outer is None else outer & take
            try:
                res = ev.column(b.args[2 * j + 1] if j < else_branch else b.args[-1], batch)
            finally:
                ev.active = outer
            out_v[take] = res.values[take]
            out_ok[take] = res.valid_mask()[take]
    return Val(out_v, out_ok, b.type)


# Text that Arrow's cast reads as a number (checked before a TRY_CAST so bad text becomes NULL).
_NUMBER_TEXT = r"^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)\s*$"
# Rows formatted per numpy call when DOUBLE becomes text (bounds the fixed-width temporary).
_FORMAT_CHUNK = 65536


def _doubles_as_text(values: np.ndarray, valid) -> pa.Array:
    """DOUBLE -> VARCHAR as DuckDB writes it: the shortest text that reads back the same, with a
    '.0' on whole numbers and an exponent from 1e16 on (``100.0``, ``1e+16``, ``2.5e-05``), which
    is numpy's ``str`` of a float64; Arrow's cast writes ``100`` and ``1e+15``."""
    parts = [pa.array(values[i:i + _FORMAT_CHUNK].astype(str), pa.string())
             for i in range(0, len(values), _FORMAT_CHUNK)] or [pa.array([], pa.string())]
    arr = pa.concat_arrays(parts)
    if valid is not None:
        arr = pc.if_else(pa.array(valid, pa.bool_()), arr, pa.scalar(None, pa.string()))
    return arr


# the TIMESTAMPs Arrow's strftime writes right: years 1 to 9999 (beyond, it writes garbage)
_STRFTIME_MS = (-62135596800000, 253402300799999)


def _timestamps_as_text(values: np.ndarray, valid) -> pa.Array:
    """TIMESTAMP -> VARCHAR as DuckDB writes it: ``2024-01-01 09:30:05``, the fraction of a
    second only when there is one and without trailing zeros (``...:05.5``); a year before 1
    as ``1200-02-15 (BC) 14:13:20``. Every TIMESTAMP, a column's or a computed one, is written
    the same way."""
    ms = np.ascontiguousarray(values, dtype=np.int64)
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    present = ms if mask is None else ms[~mask]
    if len(present) == 0 or (present.min() >= _STRFTIME_MS[0] and present.max() <= _STRFTIME_MS[1]):
        text = pc.strftime(pa.array(ms, pa.timestamp("ms"), mask=mask), format="%Y-%m-%d %H:%M:%S")
    else:  # numpy's calendar spans every int64 millisecond; ISO years (0 is 1 BC, -1 is 2 BC)
        iso = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms").astype(object)
        for i in np.flatnonzero(np.char.startswith(iso.astype(str), "-") |
                                np.char.startswith(iso.astype(str), "0000")):
            # years before 1, a handful of rows at most: DuckDB names them BC
            year, rest = iso[i].rsplit("-", 2)[0], iso[i][len(iso[i].rsplit("-", 2)[0]):]
            date, clock = rest[1:].split("T")
            iso[i] = f"{1 - int(year):04d}-{date} (BC)T{clock}"
        text = pa.array(iso, pa.string(), mask=mask)
        text = pc.replace_substring(text, pattern="T", replacement=" ")
    return pc.replace_substring_regex(text, pattern=r"\.0+$|(\.[0-9]*[1-9])0+$",
                                      replacement=r"\1")


def _cast(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    src, dst = a.type, b.type
    n = batch.length
    try_ = b.fn == "TRY_CAST"
    if src == dst:  # a column CAST to its own type (its output type is no longer its input's)
        return a
    if dst.kind == "STRING":
        if src.kind == "STRING":
            return a
        col = ev.column(b.args[0], batch)
        if src.kind == "FLOAT64":
            return ev.from_arrow_strings(_doubles_as_text(col.values, col.valid))
        if src.kind == "TIMESTAMP":
            return ev.from_arrow_strings(_timestamps_as_text(col.values, col.valid))
        if src.kind == "DATE":
            return ev.from_arrow_strings(dates_as_text(col.values, col.valid))
        arr = col.to_arrow()
        if src.kind == "BOOL":
            arr = pc.if_else(arr, "true", "false")
        return ev.from_arrow_strings(arr.cast(pa.string()))
    if dst.kind == "DATE":
        if src.kind == "STRING":
            ms, converts = text_to_date_ms(ev.to_arrow_strings(a, n))
            ok = a.ok
            bad = ~converts & (np.ones(n, dtype=bool) if ok is None or ok is True else
                               np.zeros(n, dtype=bool) if ok is False else ok)
            if bad.any():
                arr = ev.to_arrow_strings(a, n)
                ok = _cast_failed(ev, bad, ok, n, try_, lambda i: (
                    f"Conversion Error: Could not convert string '{arr[i].as_py()}' to DATE"))
            return Val(ms if np.ndim(a.v) else ms[0], ok, dst)
        # a TIMESTAMP's day: floor, so that a time before 1970 is in the day it is in
        return Val(np.floor_divide(a.v, MS_PER_DAY) * MS_PER_DAY, a.ok, dst)
    if src.kind == "DATE":  # to TIMESTAMP (the binder allows no other): its midnight
        return Val(a.v, a.ok, dst)
    if src.kind == "STRING":
        arr = ev.to_arrow_strings(a, n)
        if dst.kind not in _NUMBER_KINDS:
            return _text_to_bool_or_time(ev, arr, a.ok, n, dst, try_)
        arr = _plain_number_text(pc.utf8_trim_whitespace(arr), dst)  # ' 12 ' is 12 (DuckDB)
        if try_:  # text that is no number is NULL
            return _text_to(ev, *_numbers_only(arr, a.ok), n, dst, try_)
        try:
            return _text_to(ev, arr, a.ok, n, dst, try_)
        except ValueError:
            # text that is no number fails its row (a bad record in a job) ...
            number = _number_text(arr)
            ev.check(~number, a.ok, n, lambda i: (
                f"Conversion Error: Could not convert string '{arr[i].as_py()}' to "
                f"{_type_word(dst)}"))
            # ... unless the row is NULL or one a CASE does not take it to
            return _text_to(ev, *_numbers_only(arr, a.ok), n, dst, try_)
    with np.errstate(all="ignore"):
        if dst.kind == "FLOAT64":
            return Val(_num(a, FLOAT64), a.ok, dst)
        if dst.kind == "DECIMAL":
            return _to_decimal(ev, a, dst, n, try_)
        if dst.kind in ("INT64", "TIMESTAMP"):
            if src.kind == "FLOAT64":  # DuckDB: nearest, ties to even
                return _float_to_int(ev, a.v, a.ok, n, dst, try_)
            if src.kind == "DECIMAL":  # half away from zero, in integers (exact)
                f = 10 ** src.scale
                v = np.asarray(a.v, dtype=np.int64)
                return Val((np.sign(v) * ((np.abs(v) + f // 2) // f))[()], a.ok, dst)
            return Val(np.asarray(a.v, dtype=np.int64), a.ok, dst)
        if dst.kind == "BOOL":
            return Val(np.not_equal(a.v, 0), a.ok, dst)
    raise UnsupportedError(f"cannot CAST {src} to {dst}")


_NUMBER_KINDS = ("INT64", "FLOAT64", "DECIMAL")
# text DuckDB casts to BOOLEAN (case-insensitive, no trimming). Python tuples, made Arrow arrays
# where used: no Arrow array is built at import, or pyarrow would import pandas (a third of the
# CLI's start-up, docs/PERFORMANCE.md, "File to file")
_TRUE_TEXT = ("true", "t", "1", "yes", "y")
_FALSE_TEXT = ("false", "f", "0", "no", "n")


def _text_to_bool_or_time(ev, arr: pa.Array, ok, n: int, dst: SqlType, try_: bool) -> Val:
    """Text -> BOOLEAN or TIMESTAMP row by row: text that does not convert fails its row (a bad
    record in a job), or is NULL under TRY_CAST."""
    if dst.kind == "BOOL":
        low = pc.utf8_lower(arr)
        is_true = pc.is_in(low, value_set=pa.array(_TRUE_TEXT)).to_numpy(zero_copy_only=False)
        is_false = pc.is_in(low, value_set=pa.array(_FALSE_TEXT)).to_numpy(zero_copy_only=False)
        values, converts = is_true, is_true | is_false
    else:  # ISO-8601 (no zone means UTC) or epoch-ms digits, as at ingestion
        ms, bad_idx = text_to_epoch_ms(arr)
        converts = np.ones(n, dtype=bool)
        converts[np.asarray(bad_idx, dtype=np.int64)] = False
        values = pc.fill_null(ms.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    nulls = _arrow_valid(arr)
    bad = ~converts if nulls is None else (~converts & nulls)
    if bad.any():
        ok = _cast_failed(ev, bad, ok, n, try_, lambda i: (
            f"Conversion Error: Could not convert string '{arr[i].as_py()}' to {dst.kind}"))
    return Val(values, _and_valid(ok, nulls) if nulls is not None else ok, dst)


def _plain_number_text(arr: pa.Array, dst: SqlType) -> pa.Array:
    """DuckDB's other spellings of a number as plain digits: underscores between digits
    ('1_000', '1_0.0_1'), and for BIGINT hexadecimal and binary ('0x1F', '0b101', '0x1f_ff');
    a hexadecimal or binary number beyond BIGINT becomes text that is no number (NULL under
    TRY_CAST, an error under CAST), as in DuckDB."""
    if pc.any(pc.match_substring(arr, "_")).as_py():
        for _ in range(2):  # each match takes a digit on either side: twice covers '1_2_3'
            arr = pc.replace_substring_regex(arr, r"(\d)_(\d)", r"\1\2")
    if dst.kind != "INT64":
        return arr
    based = pc.fill_null(pc.match_substring_regex(arr, r"^0[xXbB][0-9a-fA-F_]+$"), False)
    if not pc.any(based).as_py():
        return arr
    # Rare text, so converted one row at a time (Python's int reads both spellings).
    rows = np.flatnonzero(based.to_numpy(zero_copy_only=False))
    text = arr.to_pylist()
    for i in rows:
        try:
            v = int(text[i], 0)
        except ValueError:
            continue  # e.g. '0b102': stays text that is no number
        text[i] = str(v) if -2 ** 63 <= v < 2 ** 63 else "out of range"
    return pa.array(text, pa.string())


def _number_text(arr: pa.Array) -> np.ndarray:
    """Rows of ``arr`` that read as a number (NULL rows count as numbers)."""
    m = pc.fill_null(pc.match_substring_regex(arr, _NUMBER_TEXT, ignore_case=True), True)
    return m.to_numpy(zero_copy_only=False)


def _numbers_only(arr: pa.Array, ok):
    """``arr`` with text that is no number made NULL (in ``ok``; '0' in the array)."""
    number = _number_text(arr)
    if number.all():
        return arr, ok
    return pc.if_else(pa.array(number), arr, pa.scalar("0", pa.string())), _and_valid(ok, number)


def _text_to(ev, arr: pa.Array, ok, n: int, dst: SqlType, try_: bool) -> Val:
    """Text -> a number type ``dst``; ValueError when Arrow cannot convert some row (BOOLEAN and
    TIMESTAMP: ``_text_to_bool_or_time``)."""
    try:
        if dst.kind == "INT64":
            try:  # integer text: exact (through DOUBLE, 2**53 + 1 would change)
                conv = pc.cast(arr, pa.int64())
            except pa.ArrowInvalid:  # '1.5', '1e30', '2**63': nearest, range-checked
                return _text_to_int(ev, arr, ok, n, dst, try_)
        elif dst.kind == "DECIMAL":
            return _text_to_decimal(ev, arr, ok, n, dst, try_)
        else:
            conv = arr.cast(pa.float64())
    except (pa.ArrowInvalid, ValueError) as exc:
        raise ValueError(f"CAST to {dst} failed: {exc}") from None
    c = Column(dst, arrow=conv)
    return Val(c.values, _and_valid(ok, c.valid), dst)


def _text_to_decimal(ev, arr: pa.Array, ok, n: int, dst: SqlType, try_: bool) -> Val:
    """Text -> DECIMAL(p, s) as DuckDB: rounded half away from zero to s places; a value with
    more than p - s integer digits is out of range (NULL under TRY_CAST, else its row fails)."""
    p, s = dst.precision, dst.scale
    try:
        conv = arr.cast(pa.decimal128(p, s))  # the usual text: exact, no rounding needed
    except pa.ArrowInvalid:
        try:  # up to 18 decimals and 20 integer digits: rounded by Arrow
            wide = pc.round(arr.cast(pa.decimal128(38, 18)), s, round_mode="half_towards_infinity")
            limit = pa.scalar(decimal.Decimal(10) ** (p - s), pa.decimal128(38, 18))
            bad = pc.fill_null(pc.greater_equal(pc.abs(wide), limit), False)
            bad = bad.to_numpy(zero_copy_only=False)
            conv = pc.cast(pc.if_else(pa.array(bad), pa.scalar(decimal.Decimal(0), wide.type),
                                      wide), pa.decimal128(p, s))
        except pa.ArrowInvalid:  # longer text (rare): one row at a time
            conv, bad = _text_to_decimal_rows(arr, p, s)
        ok = _cast_failed(ev, bad, ok, n, try_, lambda i: (
            f"Conversion Error: Could not convert string '{arr[i].as_py()}' to DECIMAL({p},{s})"))
    c = Column(dst, arrow=conv)
    return Val(c.values, _and_valid(ok, c.valid), dst)


def _text_to_decimal_rows(arr: pa.Array, p: int, s: int):
    """``_text_to_decimal`` row by row with Python's decimal: (the values, the rows out of range)."""
    quantum = decimal.Decimal(1).scaleb(-s)
    limit = decimal.Decimal(10) ** (p - s)
    out, bad = [], np.zeros(len(arr), dtype=bool)
    for i, text in enumerate(arr.to_pylist()):
        v = None
        if text is not None:
            try:
                v = decimal.Decimal(text).quantize(quantum, rounding=decimal.ROUND_HALF_UP,
                                                   context=decimal.Context(prec=80))
                if abs(v) >= limit:
                    v = None
            except (decimal.InvalidOperation, ValueError):
                v = None
            bad[i] = v is None
        out.append(v)
    return pa.array(out, pa.decimal128(p, s)), bad


def _arrow_valid(arr: pa.Array):
    return None if arr.null_count == 0 else arr.is_valid().to_numpy(zero_copy_only=False)


def _to_decimal(ev, a: Val, dst: SqlType, n: int, try_: bool) -> Val:
    """BIGINT or DOUBLE -> DECIMAL(p, s) as int64 scaled by 10^s: a value whose scaled form
    leaves int64 is out of range (NULL under TRY_CAST), never wrapped."""
    src = a.type
    f = 10 ** dst.scale
    if src.kind == "FLOAT64":
        scaled = _round_half_away(np.asarray(a.v, dtype=np.float64) * f)
        bad = ~((scaled >= -_TWO_63) & (scaled < _TWO_63))
    elif src.kind in ("INT64", "BOOL", "TIMESTAMP"):
        v = np.asarray(a.v, dtype=np.int64)
        limit = np.iinfo(np.int64).max // f
        bad = (v > limit) | (v < -limit)
        scaled = v
    else:  # DECIMAL -> DECIMAL: rescaled by _num
        return Val(_num(a, dst), a.ok, dst)
    ok = a.ok
    if np.any(bad):
        word = "DOUBLE" if src.kind == "FLOAT64" else "INT64"
        ok = _cast_failed(ev, bad, ok, n, try_, lambda i: (
            f"Conversion Error: Type {word} with value {_at(a.v, i)!r} can't be cast because "
            f"the value is out of range for the destination type {dst}"))
        scaled = np.where(bad, 0, scaled)
    if src.kind == "FLOAT64":
        return Val(np.asarray(scaled).astype(np.int64)[()], ok, dst)
    return Val((np.asarray(scaled, dtype=np.int64) * f)[()] if f != 1 else scaled[()], ok, dst)


def _math1(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    t, fn = b.type, b.fn
    v = a.v
    with np.errstate(all="ignore"):
        if fn == "ABS":
            v = _num(a, t)
            if t.kind != "FLOAT64":  # ABS(-2**63) does not fit
                ev.check(np.equal(v, _INT64_MIN), a.ok, batch.length, lambda i: (
                    f"Out of Range Error: Overflow in ABS of {_type_word(t)} ({_at(v, i)})"))
            return Val(np.abs(v), a.ok, t)
        if fn == "SIGN":
            return Val(np.sign(v).astype(np.int64), a.ok, t)
        if fn in ("FLOOR", "CEIL"):
            f = np.floor if fn == "FLOOR" else np.ceil
            if t.kind == "FLOAT64":
                return Val(f(v), a.ok, t)
            if t.kind == "DECIMAL":
                s = 10 ** t.scale
                return Val((f(np.asarray(v, dtype=np.float64) / s) * s).astype(np.int64), a.ok, t)
            return Val(v, a.ok, t)
        if fn == "SQRT":
            return Val(np.sqrt(v), a.ok, t)
        if fn == "EXP":
            return Val(np.exp(v), a.ok, t)
        if fn == "LN":
            return Val(np.log(v), a.ok, t)
        if fn == "LOG10":
            return Val(np.log10(v), a.ok, t)
    raise AssertionError(fn)


def _round(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    digits = 0
    if len(b.args) > 1:
        d = b.args[1]
        if not isinstance(d, BConst) or d.value is None:
            raise UnsupportedError("ROUND's second argument must be a constant")
        digits = int(d.value)
    t = b.type
    with np.errstate(all="ignore"):
        if t.kind == "FLOAT64":
            if digits == 0:
                return Val(_round_half_away(a.v), a.ok, t)
            x = np.asarray(a.v, dtype=np.float64)
            if digits > 0:
                # As DuckDB: scaled and rounded in extended precision (ROUND(20.45, 1) is 20.4:
                # the double 20.45 is 20.4499..., where a float64 x * 10 is the tie 204.5), the
                # whole number then divided in float64 (ROUND(71.6016612, 6) is 71.601661, not
                # the next double up); a value whose scaled form overflows stays as it is
                f = np.longdouble(10) ** digits
                v = _round_half_away(x.astype(np.longdouble) * f).astype(np.float64) / 10.0 ** digits
                v = np.where(np.isfinite(v) | ~np.isfinite(x), v, x)
            else:  # in multiples of 10^-digits; 0 where that overflows (DuckDB)
                m = 10.0 ** -digits
                v = _round_half_away(x / m) * m
                v = np.where(np.isfinite(v) | ~np.isfinite(x), v, 0.0)
            return Val(v if np.ndim(a.v) else np.float64(v), a.ok, t)
        if t.kind == "DECIMAL":
            drop = t.scale - digits
            if drop <= 0:
                return Val(a.v, a.ok, t)
            f = 10 ** drop
            v = np.asarray(a.v, dtype=np.int64)
            q = (np.abs(v) + f // 2) // f * f
            return Val(np.sign(v) * q, a.ok, t)
        if digits >= 0:
            return Val(a.v, a.ok, t)
        v = np.asarray(a.v, dtype=np.int64)
        if -digits > 18:  # 10**19 leaves int64: every value rounds to 0 or out of range
            q, bad = np.zeros_like(v), (v >= 5 * 10**18) | (v <= -5 * 10**18)
            f = 1
        else:
            # in multiples of f, half away from zero, without |v| (which -2**63 has not)
            f = 10 ** (-digits)
            q, rem = np.divmod(v, f)
            q = q + np.where(v >= 0, 2 * rem >= f, 2 * rem > f)
            bad = np.abs(q) > np.iinfo(np.int64).max // f
        ev.check(bad, a.ok, batch.length, lambda i: (
            f"Out of Range Error: Overflow in ROUND of INT64 ({_at(v, i)}, {digits})"))
        return Val(np.where(bad, 0, q * f)[()], a.ok, t)


def _power(ev, b, batch):
    a, c = ev.eval(b.args[0], batch), ev.eval(b.args[1], batch)
    with np.errstate(all="ignore"):
        r = np.power(a.v, c.v)
        # C's pow (DuckDB): (-inf) ** y is +inf for a y > 0 that is not an odd integer; numpy
        # says NaN there (and agrees everywhere else)
        r = np.where(np.isneginf(a.v) & (c.v > 0) & np.isnan(r), np.inf, r)
        return Val(r if np.ndim(r) else np.float64(r), _and_valid(a.ok, c.ok), FLOAT64)


def _string_fn(ev, b, batch):
    n = batch.length
    vals = [ev.eval(x, batch) for x in b.args]
    arr = ev.to_arrow_strings(vals[0], n)
    fn = b.fn
    if fn == "UPPER":
        return ev.from_arrow_strings(pc.utf8_upper(arr))
    if fn == "LOWER":
        return ev.from_arrow_strings(pc.utf8_lower(arr))
    if fn == "TRIM":
        return ev.from_arrow_strings(pc.utf8_trim_whitespace(arr))
    if fn == "LENGTH":
        r = pc.utf8_length(arr)
        return Val(r.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), vals[0].ok, INT64)
    if fn == "SUBSTRING":
        start = b.args[1]
        length = b.args[2] if len(b.args) > 2 else None
        if not isinstance(start, BConst) or (length is not None and not isinstance(length, BConst)):
            raise UnsupportedError("SUBSTRING's start and length must be constants")
        s = int(start.value)
        stop = None
        if s < 0:  # counted from the end, as DuckDB does
            begin = s
            if length is not None and s + int(length.value) < 0:
                stop = s + int(length.value)
        else:
            begin = s - 1 if s > 0 else 0
            if length is not None:
                stop = max(s - 1 + int(length.value), 0)
        return ev.from_arrow_strings(pc.utf8_slice_codeunits(arr, begin, stop))
    if fn in ("CONCAT", "CONCAT_STRICT"):
        arrs = [ev.to_arrow_strings(v, n) for v in vals]
        if fn == "CONCAT":  # CONCAT skips NULLs (DuckDB); || propagates them
            arrs = [x.fill_null("") for x in arrs]
        return ev.from_arrow_strings(pc.binary_join_element_wise(*arrs, ""))
    raise AssertionError(fn)


def _coalesce_like(ev, b, batch):
    n = batch.length
    t = b.type
    cols = [ev.column(x, batch) for x in b.args]
    if b.fn == "COALESCE":
        out = np.zeros(n, dtype=t.numpy_dtype)
        ok = np.zeros(n, dtype=bool)
        for c in cols:
            take = c.valid_mask() & ~ok
            out[take] = c.values[take]
            ok |= take
        return Val(out, ok, t)
    if t.kind == "STRING":
        arrs = [c.to_arrow() for c in cols]
        f = pc.min_element_wise if b.fn == "LEAST" else pc.max_element_wise
        return ev.from_arrow_strings(f(*arrs, skip_nulls=True))
    # DuckDB orders NaN above every number: LEAST skips a NaN (fmin), GREATEST returns it (maximum)
    pick = np.fmin if b.fn == "LEAST" else np.maximum
    out, ok = None, None
    for c in cols:
        v, m = c.values, c.valid_mask()
        if out is None:
            out, ok = v.copy(), m.copy()
            continue
        both = ok & m
        out = np.where(both, pick(out, v), np.where(m, v, out))
        ok = ok | m
    return Val(out, ok, t)


def _nullif(ev, b, batch):
    a, c = ev.eval(b.args[0], batch), ev.eval(b.args[1], batch)
    eq = _equal(a.v, c.v)
    if c.ok is not None and c.ok is not True:
        eq = eq & c.ok if c.ok is not False else np.zeros_like(eq)
    n = batch.length
    base = np.ones(n, dtype=bool) if a.ok is None or a.ok is True else (
        np.zeros(n, dtype=bool) if a.ok is False else a.ok)
    v = a.v if not a.is_scalar else np.full(n, a.v)
    return Val(v, base & ~eq, b.type)


def _date_add_days(ev, b, batch):
    """DATE ± n days (``b.args[2]``: the sign), a DATE still: beyond DuckDB's DATE range the
    row fails (an error, a bad record in a job), as DuckDB's 'date out of range'."""
    a, c = ev.eval(b.args[0], batch), ev.eval(b.args[1], batch)
    ok = _and_valid(a.ok, c.ok)
    sign = int(b.args[2].value)
    days = np.floor_divide(a.v, MS_PER_DAY)
    steps = np.asarray(c.v, dtype=np.int64)
    # a step beyond the range would wrap: clipped first (its row fails anyway)
    r = days + np.clip(steps, -2 ** 33, 2 ** 33) * sign
    bad = (r < _DATE_DAYS[0]) | (r > _DATE_DAYS[1])
    if np.any(bad):
        n = batch.length
        ev.check(np.broadcast_to(bad, (n,)), ok, n, lambda i: (
            f"Out of Range Error: the date {_at(days, i)} days after 1970-01-01 moved by "
            f"{_at(steps, i) * sign} days leaves the DATE range"))
    return Val(np.where(bad, 0, r) * MS_PER_DAY, ok, b.type)


def _date_diff_days(ev, b, batch):
    """DATE - DATE: the days between (BIGINT)."""
    a, c = ev.eval(b.args[0], batch), ev.eval(b.args[1], batch)
    return Val(np.floor_divide(a.v, MS_PER_DAY) - np.floor_divide(c.v, MS_PER_DAY),
               _and_valid(a.ok, c.ok), INT64)


_OPS: dict[str, Callable] = {
    "DATE_ADD_DAYS": _date_add_days, "DATE_DIFF_DAYS": _date_diff_days,
    "+": _arith, "-": _arith, "*": _arith, "/": _arith, "//": _arith, "%": _arith,
    "=": _compare, "!=": _compare, "<": _compare, "<=": _compare, ">": _compare, ">=": _compare,
    "AND": _and_or, "OR": _and_or, "NOT": _not, "NEG": _neg,
    "IS_NULL": _is_null, "IS_NOT_NULL": _is_null, "IN": _in, "LIKE": _like, "ILIKE": _like,
    "CASE": _case, "CAST": _cast, "TRY_CAST": _cast,
    "ABS": _math1, "SIGN": _math1, "FLOOR": _math1, "CEIL": _math1, "SQRT": _math1, "EXP": _math1,
    "LN": _math1, "LOG10": _math1, "ROUND": _round, "POWER": _power,
    "UPPER": _string_fn, "LOWER": _string_fn, "TRIM": _string_fn, "LENGTH": _string_fn,
    "SUBSTRING": _string_fn, "CONCAT": _string_fn, "CONCAT_STRICT": _string_fn,
    "COALESCE": _coalesce_like, "LEAST": _coalesce_like, "GREATEST": _coalesce_like,
    "NULLIF": _nullif,
}

# Where the function table (exec/functions.py, and vs.udf through it) plugs in: its evaluators
# go in _OPS, its names in FUNCTIONS, and its binder of a call in BIND_CALL (which answers None
# for a call this module binds itself). It registers when velostream.exec is imported, so that
# this module, which it builds on, never imports it.
FUNCTIONS: dict = {}
BIND_CALL: list[Callable] = []
# functions whose first argument, a time unit, may be written as a bare word (Flink SQL)
UNIT_WORD_FIRST = {"TIMESTAMPDIFF", "TIMESTAMPADD"}
# A function whose whole-column result can stay in Arrow form (a projected JSON extraction: its
# strings then reach the output without entering the string dictionary) plugs in here:
# ``fn(evaluator, bcall, batch) -> Column | None`` (None: evaluate it as usual).
COLUMN_OPS: dict[str, Callable] = {}


def columns_used(b: Bound) -> set[str]:
    """The batch columns a bound expression reads."""
    if isinstance(b, BCol):
        return {b.name}
    if isinstance(b, BCall):
        out = set()
        for a in b.args:
            out |= columns_used(a)
        return out
    return set()


def render(b: Bound) -> str:
    """A readable form of a bound expression, for explain()."""
    if isinstance(b, BCol):
        return b.name
    if isinstance(b, BConst):
        if b.type.kind == "DATE" and b.value is not None:
            return f"DATE '{dates_as_text(np.array([b.value]), None)[0].as_py()}'"
        return "NULL" if b.value is None else repr(b.value)
    if b.fn == "DATE_ADD_DAYS":  # date ± days
        sign = "+" if b.args[2].value > 0 else "-"
        return f"({render(b.args[0])} {sign} {render(b.args[1])})"
    if b.fn == "DATE_DIFF_DAYS":
        return f"({render(b.args[0])} - {render(b.args[1])})"
    if b.fn in ("+", "-", "*", "/", "//", "%", "=", "!=", "<", "<=", ">", ">=", "AND", "OR"):
        return f"({render(b.args[0])} {b.fn} {render(b.args[1])})"
    return f"{b.fn}({', '.join(render(a) for a in b.args)})"
