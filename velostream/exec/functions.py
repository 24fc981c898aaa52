"""The scalar function table: every function's name, signature, result type, documentation,
binding and evaluation, in one place (docs/FUNCTIONS.md is generated from it).

Each ``Function`` says how to bind a call (``bind``: check arity and argument types at plan time,
raising ``SqlError`` with the call's position, and return a typed ``BCall`` named after the
function) and how to evaluate it over a whole batch (``evaluate``, registered in the evaluator's
dispatch table). The binder (``expressions._bind_function``) looks every name up here, so the
"unknown function X; did you mean Y" hint and the reference page know every function. The
original arithmetic, conditional and string functions (ABS ... CONCAT) are still bound and
evaluated by ``expressions``; their entries here carry their documentation (``bind=None``).

Semantics are DuckDB's (docs/FUNCTIONS.md), times in UTC. Evaluation is vectorised:

- date and time functions work on the int64 epoch milliseconds with numpy (calendar fields through
  ``datetime64``), and build text with Arrow kernels;
- text, STRPTIME and JSON functions with constant parameters run an Arrow kernel (JSON: the
  compiled path scanner velostream/_core/json_path.pyx, orjson for the rows it hands back)
  once per distinct string the job has given them: strings are codes into the job's
  ``StringDict``, stable for the job, so the results are kept by code (``_Memo``) and a batch of
  strings seen before costs a few numpy gathers; a batch of JSON payloads that are mostly new
  runs the scanner on every row instead (``_json_eval``);
- a parameter that is not a constant (a column as the pattern) groups the rows by its value, one
  kernel call per distinct value and distinct string of the batch, never one per row.
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import orjson
import pyarrow as pa

from .._lazy import pc  # imported when first used: see the module
from ..batch import BOOL, DATE, FLOAT64, INT64, MS_PER_DAY, STRING, TIMESTAMP, SqlType
from ..errors import SqlError, nearest
from . import expressions as X
from .expressions import BCall, BConst, Bound, Val, _and_valid, _month_start_days, _norm_valid


@dataclass(frozen=True)
class Function:
    """One scalar function. ``signature`` and ``summary`` are its documentation; ``example`` is
    an expression whose value (``result``, as Python shows it) docs/FUNCTIONS.md demonstrates and
    the tests check against DuckDB."""
    name: str
    signature: str
    summary: str
    example: str
    result: object
    bind: Optional[Callable] = None  # (Call) -> Bound; None: bound in expressions._bind_function
    evaluate: Optional[Callable] = None  # (Evaluator, BCall, Batch) -> Val
    aliases: tuple = ()
    group: str = "Numbers"


@dataclass
class Call:
    """A call being bound: its bound arguments and where to point errors."""
    name: str
    args: tuple
    sql: str
    pos: object
    strings: object = field(default=None, repr=False)

    def error(self, msg: str) -> SqlError:
        return SqlError.at(self.sql, self.pos, msg)

    def arity(self, lo: int, hi: Optional[int] = None) -> None:
        hi = lo if hi is None else hi
        n = len(self.args)
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise self.error(f"{self.name} takes {want} argument(s), got {n}")

    def text(self, i: int) -> Bound:
        """Argument ``i`` as text (other types are cast, as DuckDB does implicitly)."""
        return X._to_string(self.args[i])

    def time(self, i: int) -> Bound:
        a = self.args[i]
        if a.type.kind in ("TIMESTAMP", "NULL", "DATE"):
            # a DATE is its midnight: YEAR, DATE_PART, STRFTIME, DATEDIFF... of it are DuckDB's
            # of a DATE, DATE_TRUNC a TIMESTAMP as in DuckDB
            return X._convert(a, TIMESTAMP)
        used = X.columns_used(a) if a.type.kind == "INT64" else set()
        if used and used <= set(_WINDOW_BOUNDS):
            # a window's bounds (and window_time, the end - 1) are typed BIGINT by the planner,
            # but are times in epoch ms
            return BCall(TIMESTAMP, "EPOCH_MS", (a,))
        if isinstance(a, BConst) and a.type.kind == "STRING":
            ms = X.parse_timestamp_ms(a.value)
            if ms is None:
                raise self.error(f"{self.name}: cannot read '{a.value}' as a TIMESTAMP")
            return BConst(TIMESTAMP, ms)
        hint = " (EPOCH_MS(x) reads epoch milliseconds as a TIMESTAMP)" if a.type.kind == "INT64" else ""
        raise self.error(f"{self.name} needs a TIMESTAMP, found {a.type}{hint}")

    def integer(self, i: int) -> Bound:
        a = self.args[i]
        if a.type.kind not in ("INT64", "BOOL", "NULL"):
            raise self.error(f"{self.name} needs an integer, found {a.type}")
        return X._convert(a, INT64)

    def number(self, i: int) -> Bound:
        a = self.args[i]
        if not a.type.is_numeric or a.type.kind == "TIMESTAMP":
            raise self.error(f"{self.name} needs a number, found {a.type}")
        return a

    def constant_text(self, i: int, what: str) -> Optional[str]:
        a = self.args[i]
        if not isinstance(a, BConst) or a.type.kind not in ("STRING", "NULL"):
            raise self.error(f"{self.name}'s {what} must be a constant string")
        return a.value


# ------------------------------------------------------------------------------ helpers

_DAY = 86_400_000
# the planner's window bound columns (planner.WINDOW_COLUMNS; importing it here would be circular)
_WINDOW_BOUNDS = ("_WINDOW_START", "_WINDOW_END")


def _full(val: Val, n: int, dtype) -> tuple[np.ndarray, object]:
    """An operand's values as a length-n array and its validity (None, False or a bool array)."""
    v = np.asarray(val.v)
    if v.ndim == 0:
        v = np.full(n, v, dtype=dtype)
    return v.astype(dtype, copy=False), _norm_valid(val.ok)


def _null(t: SqlType, n: int) -> Val:
    return Val(np.zeros(n, dtype=t.numpy_dtype), np.zeros(n, dtype=bool), t)


def _ints_text(v: np.ndarray, width: int = 0) -> pa.Array:
    """Integers as decimal text, zero-padded to ``width`` (non-negative values)."""
    s = pc.cast(pa.array(v, pa.int64()), pa.string())
    return pc.utf8_lpad(s, width, "0") if width else s


class _Civil:
    """Calendar fields of epoch milliseconds (proleptic Gregorian, UTC), computed on demand."""

    def __init__(self, ms: np.ndarray):
        self.ms = ms
        self.days = ms // _DAY
        self.tod = ms - self.days * _DAY  # milliseconds into the day
        self._d = self.days.astype("datetime64[D]")

    @property
    def month_index(self):  # months since 1970-01
        return self._d.astype("datetime64[M]").astype(np.int64)

    @property
    def year(self):
        return self._d.astype("datetime64[Y]").astype(np.int64) + 1970

    @property
    def month(self):
        return self.month_index % 12 + 1

    @property
    def day(self):
        first = self._d.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        return self.days - first + 1

    @property
    def doy(self):
        first = self._d.astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
        return self.days - first + 1

    @property
    def dow(self):  # Sunday = 0 (1970-01-01 was a Thursday)
        return (self.days + 4) % 7

    @property
    def isodow(self):  # Monday = 1 ... Sunday = 7
        return (self.days + 3) % 7 + 1

    def iso_week(self):
        """(ISO year, ISO week): the week's Thursday decides the year."""
        thursday = _Civil((self.days - self.isodow + 4) * _DAY)
        return thursday.year, (thursday.doy - 1) // 7 + 1

    @property
    def hour(self):
        return self.tod // 3_600_000

    @property
    def minute(self):
        return self.tod // 60_000 % 60

    @property
    def second(self):
        return self.tod // 1000 % 60

    @property
    def milli(self):
        return self.tod % 1000


def _years_in(year: np.ndarray, step: int) -> np.ndarray:
    """year / step truncated toward zero, as DuckDB counts decades, centuries and millennia
    (year -5 is in decade 0)."""
    return np.sign(year) * (np.abs(year) // step)


def _year_start_days(year: np.ndarray) -> np.ndarray:
    return (year - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)


# ------------------------------------------------------------------------------ date and time

_UNIT_WORDS = {
    "millennium": ("millennium", "millennia", "millenniums", "mil", "mils"),
    "century": ("century", "centuries", "c", "cent"),
    "decade": ("decade", "decades", "dec", "decs"),
    "year": ("year", "years", "y", "yr", "yrs", "yyyy"),
    "quarter": ("quarter", "quarters", "q"),
    "month": ("month", "months", "mon", "mons"),
    "week": ("week", "weeks", "w"),
    "day": ("day", "days", "d", "dayofmonth"),
    "hour": ("hour", "hours", "h", "hr", "hrs"),
    "minute": ("minute", "minutes", "m", "min", "mins"),
    "second": ("second", "seconds", "s", "sec", "secs"),
    "millisecond": ("millisecond", "milliseconds", "ms", "msec", "msecs"),
    "microsecond": ("microsecond", "microseconds", "us", "usec", "usecs"),
}
_UNITS = {w: unit for unit, words in _UNIT_WORDS.items() for w in words}
_PARTS = dict(_UNITS, **{p: p for p in (
    "dow", "isodow", "doy", "isoyear", "yearweek", "epoch", "era", "julian")},
    dayofweek="dow", weekday="dow", dayofyear="doy", weekofyear="week")


def _unit(c: Call, i: int, table: dict, allowed=None) -> str:
    word = c.constant_text(i, "unit")
    if word is None:
        return None
    unit = table.get(word.lower())
    if unit is None or (allowed is not None and unit not in allowed):
        choices = sorted(set(table.values()) & set(allowed or table.values()))
        hint = nearest(word.lower(), choices)
        raise c.error(f"{c.name}: unknown unit '{word}'" +
                      (f"; did you mean '{hint}'?" if hint else f" (units: {', '.join(choices)})"))
    return unit


def _bind_date_trunc(c: Call) -> Bound:
    c.arity(2)
    unit = _unit(c, 0, _UNITS)
    ts = c.time(1)
    if unit is None:
        return BConst(TIMESTAMP, None)
    return BCall(TIMESTAMP, "DATE_TRUNC", (BConst(STRING, unit), ts))


def _trunc_ms(ms: np.ndarray, unit: str) -> np.ndarray:
    fixed = {"millisecond": 1, "microsecond": 1, "second": 1000, "minute": 60_000,
             "hour": 3_600_000, "day": _DAY}
    if unit in fixed:
        f = fixed[unit]
        return ms // f * f
    c = _Civil(ms)
    if unit == "week":  # Monday (1970-01-05 is day 4)
        return ((c.days - 4) // 7 * 7 + 4) * _DAY
    if unit == "month":
        return _month_start_days(c.month_index) * _DAY
    if unit == "quarter":
        return _month_start_days(c.month_index // 3 * 3) * _DAY
    step = {"year": 1, "decade": 10, "century": 100, "millennium": 1000}[unit]
    return _year_start_days(_years_in(c.year, step) * step) * _DAY


def _eval_date_trunc(ev, b, batch):
    a = ev.eval(b.args[1], batch)
    return Val(_trunc_ms(np.asarray(a.v, dtype=np.int64), b.args[0].value), a.ok, TIMESTAMP)


_DOUBLE_PARTS = ("epoch", "julian")


def _bind_date_part(c: Call) -> Bound:
    c.arity(2)
    part = _unit(c, 0, _PARTS)
    ts = c.time(1)
    t = FLOAT64 if part in _DOUBLE_PARTS else INT64
    if part is None:
        return BConst(INT64, None)
    return BCall(t, "DATE_PART", (BConst(STRING, part), ts))


def _date_part(ms: np.ndarray, part: str):
    if part == "epoch":  # DuckDB's DOUBLE microseconds / 1e6 (past 2**53 microseconds they round)
        return ms.astype(np.float64) * 1000.0 / 1e6
    c = _Civil(ms)
    if part == "julian":  # the Julian day number and the fraction of the day, as a DOUBLE
        return (c.days + 2440588).astype(np.float64) + c.tod / _DAY
    if part == "year":
        return c.year
    if part == "month":
        return c.month
    if part == "day":
        return c.day
    if part == "hour":
        return c.hour
    if part == "minute":
        return c.minute
    if part == "second":
        return c.second
    if part == "millisecond":
        return c.second * 1000 + c.milli
    if part == "microsecond":
        return (c.second * 1000 + c.milli) * 1000
    if part == "quarter":
        return (c.month - 1) // 3 + 1
    if part == "dow":
        return c.dow
    if part == "isodow":
        return c.isodow
    if part == "doy":
        return c.doy
    if part in ("week", "isoyear", "yearweek"):
        iy, iw = c.iso_week()
        if part == "yearweek":  # the week takes the year's sign (DuckDB)
            return iy * 100 + np.where(iy < 0, -iw, iw)
        return iw if part == "week" else iy
    y = c.year
    if part == "decade":
        return _years_in(y, 10)
    if part == "century":  # the 21st century is 2001-2100
        return np.where(y > 0, (y - 1) // 100 + 1, -((-y) // 100 + 1))
    if part == "millennium":
        return np.where(y > 0, (y - 1) // 1000 + 1, -((-y) // 1000 + 1))
    if part == "era":
        return (y > 0).astype(np.int64)
    raise AssertionError(part)


def _eval_date_part(ev, b, batch):
    a = ev.eval(b.args[1], batch)
    v = _date_part(np.atleast_1d(np.asarray(a.v, dtype=np.int64)), b.args[0].value)
    v = v if np.ndim(a.v) else v[0]
    return Val(v, a.ok, b.type)


def _bind_datediff(c: Call) -> Bound:
    c.arity(3)
    unit = _unit(c, 0, _UNITS)
    x, y = c.time(1), c.time(2)
    if unit is None:
        return BConst(INT64, None)
    return BCall(INT64, "DATEDIFF", (BConst(STRING, unit), x, y))


def _diff(a: np.ndarray, b: np.ndarray, unit: str) -> np.ndarray:
    """DuckDB's date_diff: the number of unit boundaries between a and b (weeks: whole 7-day
    spans between the two dates, truncated toward zero)."""
    fixed = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": _DAY}
    if unit in fixed:
        f = fixed[unit]
        return b // f - a // f
    if unit == "microsecond":
        return (b - a) * 1000
    if unit == "week":
        d = b // _DAY - a // _DAY
        return np.sign(d) * (np.abs(d) // 7)
    ca, cb = _Civil(a), _Civil(b)
    if unit == "month":
        return cb.month_index - ca.month_index
    if unit == "quarter":  # months since year 0, divided by 3 toward zero (DuckDB)
        return (_years_in(cb.year * 12 + cb.month - 1, 3) - _years_in(ca.year * 12 + ca.month - 1, 3))
    step = {"year": 1, "decade": 10, "century": 100, "millennium": 1000}[unit]
    return _years_in(cb.year, step) - _years_in(ca.year, step)


def _eval_datediff(ev, b, batch):
    """DATEDIFF (unit boundaries crossed) and DATE_SUB / TIMESTAMPDIFF (whole units elapsed)."""
    n = batch.length
    x, y = ev.eval(b.args[1], batch), ev.eval(b.args[2], batch)
    xv, xok = _full(x, n, np.int64)
    yv, yok = _full(y, n, np.int64)
    count = _diff if b.fn == "DATEDIFF" else _whole_units
    with np.errstate(all="ignore"):
        return Val(count(xv, yv, b.args[0].value), _and_valid(xok, yok), INT64)


# the units DATE_SUB / TIMESTAMPDIFF count and TIMESTAMPADD moves by: fixed ones in milliseconds,
# calendar ones in months
_UNIT_MS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": _DAY,
            "week": 7 * _DAY}
_MONTHS_IN = {"month": 1, "quarter": 3, "year": 12, "decade": 120, "century": 1200,
              "millennium": 12000}


def _days_in_month(months: np.ndarray) -> np.ndarray:
    """The number of days of each month (``datetime64[M]``)."""
    return ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)


def _bind_timestampadd(c: Call) -> Bound:
    """Flink SQL's TIMESTAMPADD(unit, n, ts): ts moved by n units (the unit a bare word or
    text); months by the calendar, a day past the new month's end clamped to it, as DuckDB's
    ``ts + to_months(n)``."""
    c.arity(3)
    unit = _unit(c, 0, _UNITS, allowed=(*_UNIT_MS, *_MONTHS_IN))
    n, ts = c.integer(1), c.time(2)
    if unit is None:
        return BConst(TIMESTAMP, None)
    return BCall(TIMESTAMP, "TIMESTAMPADD", (BConst(STRING, unit), n, ts))


def _eval_timestampadd(ev, b, batch):
    rows = batch.length
    n, nok = _full(ev.eval(b.args[1], batch), rows, np.int64)
    t, tok = _full(ev.eval(b.args[2], batch), rows, np.int64)
    ok = _and_valid(nok, tok)
    unit = b.args[0].value
    if unit in _UNIT_MS:
        step = _UNIT_MS[unit]
        with np.errstate(all="ignore"):
            out = t + n * step
        # a result past the TIMESTAMP range fails its row (as CAST out of range does)
        bad = (np.abs(n) > (2 ** 62) // step) | ((n > 0) & (out < t)) | ((n < 0) & (out > t))
    else:
        per = _MONTHS_IN[unit]
        bad = np.abs(n) > (12 * 290_000) // per  # past DuckDB's TIMESTAMP range either way
        c = _Civil(t)
        months = c.month_index + np.where(bad, 0, n) * per
        first = months.astype("datetime64[M]")
        day = np.minimum(c.day, _days_in_month(first))
        out = (first.astype("datetime64[D]").astype(np.int64) + day - 1) * _DAY + c.tod
    ev.check(bad, ok, rows, lambda i: f"Out of Range Error: TIMESTAMPADD({unit}, {n[i]}) leaves the "
                                      "TIMESTAMP range")
    if bad.any():
        ok = _and_valid(ok, ~bad)
        out = np.where(bad, 0, out)
    return Val(out.astype(np.int64), ok, TIMESTAMP)


def _bind_date_sub(c: Call) -> Bound:
    """DuckDB's DATE_SUB(part, a, b) and Flink SQL's TIMESTAMPDIFF(unit, a, b): the number of
    whole units from a to b (TIMESTAMPDIFF's unit may be a bare word: SECOND)."""
    c.arity(3)
    unit = _unit(c, 0, _UNITS, allowed=(*_UNIT_MS, "microsecond", *_MONTHS_IN))
    x, y = c.time(1), c.time(2)
    if unit is None:
        return BConst(INT64, None)
    return BCall(INT64, "DATE_SUB", (BConst(STRING, unit), x, y))



def _whole_units(a: np.ndarray, b: np.ndarray, unit: str) -> np.ndarray:
    """DuckDB's date_sub: whole units elapsed from a to b, toward zero. Months: calendar months,
    with b on the last day of its month counting as any later day of a (Jan 31 to Feb 29 is one
    month), as DuckDB's MonthOperator does."""
    if unit == "microsecond":
        return (b - a) * 1000
    if unit in _UNIT_MS:
        d = b - a
        return np.sign(d) * (np.abs(d) // _UNIT_MS[unit])
    swap = a > b
    s, e = np.where(swap, b, a), np.where(swap, a, b)
    cs, ce = _Civil(s), _Civil(e)
    e_day = ce.day
    end_days = _days_in_month(ce._d.astype("datetime64[M]"))
    s_day = cs.day
    s_day = np.where((e_day == end_days) & (s_day > end_days), end_days, s_day)
    months = ce.month_index - cs.month_index
    months -= (e_day < s_day) | ((e_day == s_day) & (ce.tod < cs.tod))
    months = np.where(swap, -months, months)
    per = _MONTHS_IN[unit]
    return np.sign(months) * (np.abs(months) // per)



# strftime: DuckDB's specifiers (docs/FUNCTIONS.md lists them). The names are Python tuples, made
# Arrow arrays where used: an Arrow array built at import would make pyarrow import pandas (a third
# of the CLI's start-up, docs/PERFORMANCE.md, "File to file")
_DAY_ABBR = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_DAY_NAME = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MON_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MON_NAME = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")
_SPEC = re.compile(r"%(-?)(.)", re.S)
_FORMAT_LETTERS = set("YymdHMSIjgfnaAbBhpzZuwUWVGxXc%")
_UNPADDED = set("ymdHMSIj")


def _parse_format(c: Call, fmt: str, letters=_FORMAT_LETTERS) -> list:
    """A strftime/strptime format as [(literal text) or ('%', letter, unpadded)]."""
    out, at = [], 0
    for m in _SPEC.finditer(fmt):
        if m.start() > at:
            out.append(fmt[at:m.start()])
        dash, letter = m.group(1), m.group(2)
        if letter not in letters or (dash and letter not in _UNPADDED):
            raise c.error(f"{c.name}: unsupported format specifier %{dash}{letter} in '{fmt}'")
        if letter in "xXc":  # locale forms, as DuckDB writes them
            out += _parse_format(c, {"x": "%Y-%m-%d", "X": "%H:%M:%S", "c": "%Y-%m-%d %H:%M:%S"}[letter])
        else:
            out.append(("%", letter, bool(dash)))
        at = m.end()
    if at < len(fmt):
        if fmt.endswith("%") and not fmt.endswith("%%"):
            raise c.error(f"{c.name}: the format '{fmt}' ends with a lone '%'")
        out.append(fmt[at:])
    return out


# Flink SQL's DATE_FORMAT takes a Java date pattern: letter runs -> STRFTIME specifiers
_JAVA_LETTERS = {"y": {2: "%y"}, "M": {1: "%-m", 2: "%m", 3: "%b"}, "d": {1: "%-d", 2: "%d"},
                 "H": {1: "%-H", 2: "%H"}, "h": {1: "%-I", 2: "%I"}, "m": {1: "%-M", 2: "%M"},
                 "s": {1: "%-S", 2: "%S"}, "S": {3: "%g"}, "a": {1: "%p"}, "E": {3: "%a"},
                 "D": {1: "%-j", 3: "%j"}}
_JAVA_LONGER = {"y": "%Y", "M": "%B", "E": "%A"}  # 4 or more letters (y: 1, 3 and 4+ too)


def _java_format(c: Call, fmt: str) -> str:
    """A Java date pattern (``yyyy-MM-dd HH:mm:ss.SSS``, ``'quoted'`` text) as a STRFTIME format.
    A letter run without a meaning here is an error: never printed as itself."""
    out, i, n = [], 0, len(fmt)
    while i < n:
        ch = fmt[i]
        if ch == "'":  # quoted text; '' is one quote
            j = fmt.find("'", i + 1)
            if j == i + 1:
                out.append("'")
                i += 2
                continue
            if j < 0:
                raise c.error(f"{c.name}: unterminated quote in the pattern '{fmt}'")
            out.append(fmt[i + 1:j].replace("%", "%%"))
            i = j + 1
            continue
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z"):
            out.append("%%" if ch == "%" else ch)
            i += 1
            continue
        j = i
        while j < n and fmt[j] == ch:
            j += 1
        count = j - i
        spec = _JAVA_LETTERS.get(ch, {}).get(count)
        if spec is None and ch in _JAVA_LONGER and (count >= 4 or (ch == "y" and count != 2)):
            spec = _JAVA_LONGER[ch]
        if spec is None:
            raise c.error(f"{c.name}: the pattern letters '{fmt[i:j]}' in '{fmt}' are not supported "
                          "(yyyy yy MM M MMM MMMM dd d HH H hh h mm m ss s SSS a EEE EEEE DDD D, "
                          "'quoted text'; or STRFTIME's %-specifiers)")
        out.append(spec)
        i = j
    return "".join(out)


def _bind_strftime(c: Call) -> Bound:
    c.arity(2)
    ts = c.time(0)
    fmt = c.constant_text(1, "format")
    if fmt is None:
        return BConst(STRING, None)
    if c.name == "DATE_FORMAT" and "%" not in fmt and re.search("[A-Za-z]", fmt):
        # Flink SQL's DATE_FORMAT(ts, 'yyyy-MM-dd'): a Java pattern (printing it as literal text,
        # as STRFTIME would, is a silently wrong answer); with %-specifiers it is MySQL's
        fmt = _java_format(c, fmt)
    _parse_format(c, fmt)  # checked at plan time
    return BCall(STRING, "STRFTIME", (ts, BConst(STRING, fmt)))


def _strftime_pieces(ms: np.ndarray, tokens: list) -> list:
    c = _Civil(ms)
    pieces = []
    for tok in tokens:
        if isinstance(tok, str):
            pieces.append(pa.scalar(tok, pa.string()))
            continue
        _, k, unpadded = tok
        if k in "aA":
            pieces.append(pa.array(_DAY_ABBR if k == "a" else _DAY_NAME).take(pa.array(c.dow)))
        elif k in "bBh":
            pieces.append(pa.array(_MON_NAME if k == "B" else _MON_ABBR).take(pa.array(c.month - 1)))
        elif k == "p":
            pieces.append(pa.array(np.where(c.hour < 12, "AM", "PM")))
        elif k == "z":
            pieces.append(pa.scalar("+00", pa.string()))
        elif k == "Z":
            pieces.append(pa.scalar("", pa.string()))
        elif k == "%":
            pieces.append(pa.scalar("%", pa.string()))
        else:
            if k == "Y":
                v, w = c.year, 4
            elif k == "y":  # of a year before year 0 too: -5 is '05' (DuckDB)
                v, w = np.abs(c.year) % 100, 2
            elif k == "m":
                v, w = c.month, 2
            elif k == "d":
                v, w = c.day, 2
            elif k == "H":
                v, w = c.hour, 2
            elif k == "I":
                v, w = (c.hour + 11) % 12 + 1, 2
            elif k == "M":
                v, w = c.minute, 2
            elif k == "S":
                v, w = c.second, 2
            elif k == "j":
                v, w = c.doy, 3
            elif k == "g":
                v, w = c.milli, 3
            elif k == "f":
                v, w = c.milli * 1000, 6
            elif k == "n":
                v, w = c.milli * 1_000_000, 9
            elif k == "u":
                v, w = c.isodow, 0
            elif k == "w":
                v, w = c.dow, 0
            elif k == "U":  # weeks starting on Sunday; days before the first Sunday: week 0
                v, w = (c.doy - 1 - c.dow + 7) // 7, 2
            elif k == "W":  # weeks starting on Monday
                v, w = (c.doy - 1 - (c.dow + 6) % 7 + 7) // 7, 2
            elif k == "V":
                v, w = c.iso_week()[1], 2
            elif k == "G":
                v, w = c.iso_week()[0], 4
            else:  # pragma: no cover - _parse_format admits only the letters above
                raise AssertionError(k)
            if k == "Y" or k == "G":  # a year before year 0 is not padded: -5 is '-5' (DuckDB)
                txt = _ints_text(v, 0 if unpadded else w)
                neg = v < 0
                if neg.any():
                    txt = pc.if_else(pa.array(neg), _ints_text(v), txt)
                pieces.append(txt)
            else:
                pieces.append(_ints_text(v, 0 if unpadded else w))
    return pieces


# the finest unit (ms) a format specifier shows: the text changes no faster than that
_RESOLUTION = dict.fromkeys("gfn", 1) | dict.fromkeys("S", 1000) | dict.fromkeys("M", 60_000) \
    | dict.fromkeys("HIp", 3_600_000)


def _format_times(ms: np.ndarray, tokens: list) -> pa.Array:
    pieces = _strftime_pieces(ms, tokens)
    if not any(isinstance(p, pa.Array) for p in pieces):
        return pa.array(["".join(p.as_py() for p in pieces)] * len(ms), pa.string())
    if len(pieces) == 1:
        return pieces[0]
    return pc.binary_join_element_wise(*pieces, "")


def _eval_strftime(ev, b, batch):
    n = batch.length
    a = ev.eval(b.args[0], batch)
    ms, ok = _full(a, n, np.int64)
    if ok is False:
        return _null(STRING, n)
    tokens = _parse_format(None, b.args[1].value)
    step = min([_RESOLUTION.get(t[1], _DAY) for t in tokens if isinstance(t, tuple)], default=_DAY)
    # Times of a batch often share their text (a format to the minute, rows a second apart):
    # format each distinct (time // step) once when that saves most of the work
    units = ms // step
    enc = pc.dictionary_encode(pa.array(units))
    if len(enc.dictionary) * 4 <= n:
        distinct = enc.dictionary.to_numpy(zero_copy_only=False) * step
        codes, _ = ev.strings.encode_arrow(_format_times(distinct, tokens))
        return Val(codes[enc.indices.to_numpy(zero_copy_only=False)], ok, STRING)
    codes, _ = ev.strings.encode_arrow(_format_times(ms, tokens))
    return Val(codes, ok, STRING)


def _bind_strptime(c: Call) -> Bound:
    c.arity(2)
    text = c.text(0)
    fmt = c.constant_text(1, "format")
    if fmt is None:
        return BConst(TIMESTAMP, None)
    _strptime_plan(c, fmt)
    return BCall(TIMESTAMP, "TRY_STRPTIME" if c.name == "TRY_STRPTIME" else "STRPTIME",
                 (text, BConst(STRING, fmt)))


_FRACTION_DIGITS = {"g": "{1,3}", "f": "{1,6}", "n": "{1,9}"}
_FRACTION_TO_MS = {"g": 1, "f": 1_000, "n": 1_000_000}


def _strptime_plan(c: Optional[Call], fmt: str):
    """(Arrow strptime format, fraction letter or None): DuckDB's %g / %f / %n (milli-, micro-,
    nanoseconds) must end the format; the rest goes to Arrow's strptime."""
    tokens = _parse_format(c, fmt, _FORMAT_LETTERS - set("UWVGuwZ"))
    fraction = None
    if tokens and isinstance(tokens[-1], tuple) and tokens[-1][1] in "gfn":
        fraction = tokens.pop()[1]
    head = []
    for tok in tokens:
        if isinstance(tok, str):
            head.append(tok.replace("%", "%%"))
        elif tok[1] in "gfn":
            if c is not None:
                raise c.error(f"{c.name}: %{tok[1]} (a fraction of a second) must end the format")
        else:
            head.append("%" + tok[1])
    return "".join(head), fraction


# what each specifier reads, for finding the day, month and year fields in the text
_FIELD_REGEX = dict.fromkeys("ymdHIMS", "[0-9]{1,2}") | dict.fromkeys("aAbBh", "[A-Za-z]+") | {
    "Y": "[0-9]{1,4}", "j": "[0-9]{1,3}", "p": "[AaPp][Mm]", "z": "(?:[+-][0-9]{2}:?[0-9]{2}|Z)",
    "%": "%"}
_MONTH_ABBR = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _date_fields_regex(fmt: str) -> Optional[str]:
    """A regex with named groups Y / y / m / b / d / j over text in the format (without its
    fraction), or None when the format has no day of month and no day of year."""
    tokens = _parse_format(None, fmt, _FORMAT_LETTERS - set("UWVGuwZ"))
    if tokens and isinstance(tokens[-1], tuple) and tokens[-1][1] in "gfn":
        tokens.pop()
    letters = {t[1] for t in tokens if isinstance(t, tuple)}
    if not letters & set("dj"):
        return None
    out, named = [], set()
    for tok in tokens:
        if isinstance(tok, str):  # whitespace matches any run of it (or none), as in strptime
            out.append("".join(r"\s*" if ch.isspace() else re.escape(ch) for ch in tok))
            continue
        k = tok[1]
        name = {"B": "b", "h": "b"}.get(k, k)
        if name in "Yymbdj" and name not in named:
            named.add(name)
            out.append(f"(?P<{name}>{_FIELD_REGEX[k]})")
        else:
            out.append(f"(?:{_FIELD_REGEX[k]})")
    return r"\A\s*" + "".join(out) + r"\s*\z"


def _impossible_dates(text: pa.Array, regex: str) -> np.ndarray:
    """Rows whose day of month is past the end of its month (2024-02-30), or whose day of year
    is past the end of its year: Arrow's strptime rolls them over into the next month or year,
    DuckDB rejects them."""
    fields = pc.extract_regex(text, regex)
    names = {fields.type.field(i).name for i in range(fields.type.num_fields)}

    def number(name, default):
        if name not in names:
            return np.full(len(text), default, dtype=np.int64)
        v = pc.cast(pc.fill_null(pc.struct_field(fields, name), str(default)), pa.int64())
        return v.to_numpy(zero_copy_only=False).astype(np.int64)

    if "Y" in names:
        year = number("Y", 1900)
    elif "y" in names:  # as strptime reads two digits: 69-99 are 19xx, 00-68 are 20xx
        yy = number("y", 0)
        year = np.where(yy < 69, 2000 + yy, 1900 + yy)
    else:
        year = np.full(len(text), 1900, dtype=np.int64)
    if "b" in names:
        month = pc.index_in(pc.utf8_lower(pc.utf8_slice_codeunits(pc.struct_field(fields, "b"), 0, 3)),
                            value_set=pa.array(_MONTH_ABBR))
        month = pc.fill_null(month, 0).to_numpy(zero_copy_only=False).astype(np.int64) + 1
    else:
        month = number("m", 1)
    month = np.clip(month, 1, 12)
    first = _month_start_days((year - 1970) * 12 + month - 1)
    bad = np.zeros(len(text), dtype=bool)
    if "d" in names:
        bad |= number("d", 1) > _month_start_days((year - 1970) * 12 + month) - first
    if "j" in names:
        bad |= number("j", 1) > _year_start_days(year + 1) - _year_start_days(year)
    return bad


def _strptime_kernel(fmt: str):
    head_fmt, fraction = _strptime_plan(None, fmt)
    dates = _date_fields_regex(fmt)

    def kernel(arr: pa.Array):
        frac_ms = None
        text = arr
        if fraction is not None:
            parts = pc.extract_regex(arr, rf"(?s)^(?P<head>.*?)(?P<frac>\d{_FRACTION_DIGITS[fraction]})$")
            # (struct_field: a row the pattern does not match is NULL in both fields)
            text = pc.struct_field(parts, "head")
            digits = pc.struct_field(parts, "frac")
            width = {"g": 3, "f": 6, "n": 9}[fraction]
            scaled = pc.cast(pc.utf8_rpad(digits, width, "0"), pa.int64())
            frac_ms = pc.divide(scaled, _FRACTION_TO_MS[fraction])
        parsed = pc.strptime(text, format=head_fmt, unit="ms", error_is_null=True)
        ms = pc.cast(parsed.cast(pa.timestamp("ms")), pa.int64())
        if dates is not None:
            impossible = _impossible_dates(text, dates)
            if impossible.any():
                ms = pc.if_else(pa.array(impossible), pa.scalar(None, pa.int64()), ms)
        if frac_ms is not None:
            ms = pc.add(ms, frac_ms)
        bad = pc.and_(pc.is_valid(arr), pc.is_null(ms)).to_numpy(zero_copy_only=False)
        return ms, bad, lambda j: (f"Invalid Input Error: Could not parse string "
                                   f"\"{arr[j].as_py()}\" according to format specifier \"{fmt}\"")
    return kernel


def _bind_to_timestamp(c: Call) -> Bound:
    """TO_TIMESTAMP(epoch seconds) as DuckDB; Flink SQL's TO_TIMESTAMP(text [, pattern]) reads
    text as CAST(text AS TIMESTAMP) does, or in a Java pattern (DATE_FORMAT's) as STRPTIME."""
    if c.args and c.args[0].type.kind == "STRING":
        c.arity(1, 2)
        if len(c.args) == 1:
            return X._convert(c.args[0], TIMESTAMP, explicit=True)
        pattern = c.constant_text(1, "pattern")
        if pattern is None:
            return BConst(TIMESTAMP, None)
        fmt = pattern if "%" in pattern else _java_format(c, pattern)
        _strptime_plan(c, fmt)
        return BCall(TIMESTAMP, "STRPTIME", (c.args[0], BConst(STRING, fmt)))
    c.arity(1)
    return BCall(TIMESTAMP, "TO_TIMESTAMP", (X._convert(c.number(0), FLOAT64),))


def _eval_to_timestamp(ev, b, batch):
    n = batch.length
    a = ev.eval(b.args[0], batch)
    sec, ok = _full(a, n, np.float64)
    with np.errstate(all="ignore"):
        micros = np.rint(sec * 1e6)
        bad = ~((micros > -2.0 ** 63) & (micros < 2.0 ** 63))  # NaN and infinities too
    ev.check(bad, ok, n, lambda i: "Conversion Error: Epoch seconds out of range for "
                                   f"TIMESTAMP WITH TIME ZONE ({sec[i]!r})")
    if bad.any():
        ok = _and_valid(ok, ~bad)
        micros = np.where(bad, 0.0, micros)
    # to the nearest millisecond, half away from zero (DuckDB's EPOCH_MS of its microseconds)
    return Val(X._round_half_away(micros / 1000).astype(np.int64), ok, TIMESTAMP)


def _bind_epoch_ms(c: Call) -> Bound:
    c.arity(1)
    a = c.args[0]
    if a.type.kind in ("TIMESTAMP", "DATE"):
        return BCall(INT64, "EPOCH_MS", (X._convert(a, TIMESTAMP),))
    if a.type.kind in ("INT64", "BOOL", "NULL"):
        return BCall(TIMESTAMP, "EPOCH_MS", (X._convert(a, INT64),))
    raise c.error(f"EPOCH_MS takes a TIMESTAMP or an integer (milliseconds), found {a.type}")


def _eval_retype(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    return Val(a.v, a.ok, b.type)


def _bind_epoch(c: Call) -> Bound:
    c.arity(1)
    return BCall(FLOAT64, "DATE_PART", (BConst(STRING, "epoch"), c.time(0)))


def _bind_unix_timestamp(c: Call) -> Bound:
    c.arity(0, 1)
    ts = c.time(0) if c.args else BCall(TIMESTAMP, "NOW", ())
    return BCall(INT64, "UNIX_TIMESTAMP", (ts,))


def _eval_unix_timestamp(ev, b, batch):
    a = ev.eval(b.args[0], batch)
    return Val(np.floor_divide(a.v, 1000), a.ok, INT64)


def _bind_now(c: Call) -> Bound:
    c.arity(0)
    return BCall(TIMESTAMP, "NOW", ())


def _eval_now(ev, b, batch):
    # processing time: one value per batch (each batch is evaluated at once)
    return Val(np.int64(time.time_ns() // 1_000_000), True, TIMESTAMP)


def _eval_current_date(ev, b, batch):
    # processing time's UTC day, one value per batch as NOW()
    return Val(np.int64(time.time_ns() // 1_000_000 // MS_PER_DAY * MS_PER_DAY), True, DATE)


# ------------------------------------------------------------------------------ text


def _per_distinct(ev, val: Val, n: int, kernel, out: SqlType, rows=None) -> Val:
    """``kernel`` (an Arrow string array -> an Arrow array, or (array, bad, describe)) applied
    once per distinct string of ``val``, the results mapped back to its rows. ``rows``: the
    batch rows ``val`` holds (when it is a group of them), for errors."""
    ok = _norm_valid(val.ok)
    m = n if rows is None else len(rows)
    if ok is False or len(ev.strings) == 0:
        return _null(out, m)
    codes = np.asarray(val.v, dtype=np.int32)
    if codes.ndim == 0:
        codes = np.full(m, codes, dtype=np.int32)
    if ok is not None:  # a NULL row's code is a placeholder: any valid code will do
        codes = np.where(ok, codes, 0).astype(np.int32)
    enc = pc.dictionary_encode(pa.array(codes))
    idx = enc.indices.to_numpy(zero_copy_only=False)
    distinct = ev.strings.decode(enc.dictionary.to_numpy(zero_copy_only=False))
    try:
        res = kernel(distinct)
    except pa.ArrowInvalid as exc:
        # a parameter read from a column (a pattern) that Arrow rejects: its rows fail
        message = f"Invalid Input Error: {exc}"
        full = np.zeros(n, dtype=bool)
        live = np.ones(m, dtype=bool) if ok is None else ok
        if rows is None:
            full = live
        else:
            full[rows] = live
        ev.check(full, None, n, lambda i: message)
        return _null(out, m)
    if isinstance(res, tuple):
        res, bad, describe = res
        if bad.any():
            bad_rows = bad[idx]
            if rows is None:
                ev.check(bad_rows, ok, n, lambda i: describe(int(idx[i])))
            else:
                full = np.zeros(n, dtype=bool)
                full[rows] = bad_rows & (True if ok is None else ok)
                ev.check(full, None, n, lambda i: describe(int(idx[np.searchsorted(rows, i)])))
    res = _one_per_input(res, len(distinct))
    if out.kind == "STRING":
        rc, rvalid = ev.strings.encode_arrow(res)
        values = rc[idx]
    else:
        rvalid = None if res.null_count == 0 else res.is_valid().to_numpy(zero_copy_only=False)
        res = res.fill_null(False if out.kind == "BOOL" else 0)
        values = res.to_numpy(zero_copy_only=False).astype(out.numpy_dtype, copy=False)[idx]
    if rvalid is not None:
        ok = _and_valid(ok, rvalid[idx])
    return Val(values, ok, out)


def _one_per_input(res, n: int) -> pa.Array:
    """A kernel's result as one array, checked to hold one value per input string: a kernel
    that dropped a row (as Arrow's join with null_handling='skip' does for all-NULL rows) would
    shift every later result onto the wrong row."""
    if isinstance(res, pa.ChunkedArray):
        res = res.combine_chunks()
    if len(res) != n:
        raise RuntimeError(f"internal error: a function kernel returned {len(res)} values for {n} strings")
    return res


class _Memo:
    """A text function's results (for constant parameters) by the codes of the job's string
    dictionary: codes are stable for the job, so a string seen in an earlier batch is never
    computed again, and a batch of known strings costs a few numpy gathers. Only the strings the
    function was applied to are computed (NOT the whole dictionary, which holds every column's
    strings and the results themselves). A result that is an error is never kept."""

    def __init__(self, out: SqlType):
        self.out = out
        self.values = np.zeros(0, dtype=out.numpy_dtype)
        self.state = np.zeros(0, dtype=np.uint8)  # 0 unknown, 1 a value, 2 NULL
        self.lock = threading.Lock()

    def apply(self, ev, codes: np.ndarray, ok, kernel) -> Optional[tuple]:
        """(values, valid) for ``codes`` (of the rows ``ok``: None = all), or None when some
        string's result is an error."""
        top = int(codes.max()) + 1 if len(codes) else 0
        with self.lock:
            if top > len(self.state):
                size = max(top, len(ev.strings), 2 * len(self.state))
                values = np.zeros(size, dtype=self.values.dtype)
                state = np.zeros(size, dtype=np.uint8)
                values[:len(self.values)] = self.values
                state[:len(self.state)] = self.state
                self.values, self.state = values, state
            values, state = self.values, self.state
            st = state[codes]
            missing = st == 0
            if ok is not None:  # a NULL row's code is no string of the function's
                missing &= ok
            if missing.any():
                new = np.unique(codes[missing])
                res = kernel(ev.strings.decode(new))
                if isinstance(res, tuple):
                    res, bad, _ = res
                    if bad.any():
                        return None
                res = _one_per_input(res, len(new))
                valid = res.is_valid().to_numpy(zero_copy_only=False)
                if self.out.kind == "STRING":
                    got, _ = ev.strings.encode_arrow(res)
                else:
                    got = res.fill_null(False if self.out.kind == "BOOL" else 0).to_numpy(
                        zero_copy_only=False).astype(self.out.numpy_dtype, copy=False)
                values[new] = got
                state[new] = np.where(valid, 1, 2)
                st = state[codes]
        return values[codes], st == 1


def _memo_map(ev, b, val: Val, n: int, kernel, params: tuple) -> Val:
    """``_per_distinct`` for constant parameters, through the job's memo of the function."""
    ok = _norm_valid(val.ok)
    if ok is False or len(ev.strings) == 0 or val.is_scalar:
        return _per_distinct(ev, val, n, kernel, b.type)
    memos = ev.__dict__.setdefault("_function_memos", {})
    key = (b.fn, params)
    memo = memos.get(key)
    if memo is None:
        memo = memos.setdefault(key, _Memo(b.type))
    codes = np.asarray(val.v, dtype=np.int32)
    if ok is not None:  # a NULL row's code is a placeholder: read code 0 instead
        codes = np.where(ok, codes, 0).astype(np.int32)
    got = memo.apply(ev, codes, ok, kernel)
    if got is None:  # some row fails: the uncached path reports it
        return _per_distinct(ev, val, n, kernel, b.type)
    values, valid = got
    return Val(values, valid if ok is None else (valid & ok), b.type)


def _scalar_of(ev, val: Val):
    """A constant operand as a Python value (None for NULL)."""
    if val.ok is False or _norm_valid(val.ok) is False:
        return None
    if val.type.kind == "STRING":
        return ev.strings.values_of([int(val.v)])[0]
    return val.v.item() if hasattr(val.v, "item") else val.v


def _text_eval(ev, b, batch):
    """Evaluate a text function: ``_KERNELS[name](params...)`` builds the kernel for the
    parameters (every argument after the first); rows are grouped by their parameter values
    when these are not constants."""
    n = batch.length
    vals = [ev.eval(x, batch) for x in b.args]
    make = _KERNELS[b.fn]
    first, params = vals[0], vals[1:]
    if all(p.is_scalar for p in params):
        py = [_scalar_of(ev, p) for p in params]
        if any(p is None for p in py):  # NULL in, NULL out
            return _null(b.type, n)
        return _memo_map(ev, b, first, n, make(*py), tuple(py))
    # Parameters per row: one kernel per distinct parameter tuple (as LIKE does for patterns).
    keys, oks = [], []
    for p in params:
        v, ok = _full(p, n, np.int64)
        keys.append(v)
        oks.append(ok)
    ok_all = _norm_valid(_and_valid(_norm_valid(first.ok), *oks))
    out_v = np.zeros(n, dtype=b.type.numpy_dtype)
    out_ok = np.zeros(n, dtype=bool)
    if ok_all is False:
        return Val(out_v, out_ok, b.type)
    live = np.arange(n) if ok_all is None else np.flatnonzero(ok_all)
    if len(live) == 0:
        return Val(out_v, out_ok, b.type)
    key = np.stack([k[live] for k in keys], axis=1)
    distinct, inverse = np.unique(key, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    fv, _ = _full(first, n, first.type.numpy_dtype)
    for g, tup in enumerate(distinct):
        rows = live[inverse == g]
        py = []
        for p, k in zip(params, tup):
            if p.type.kind == "STRING":
                py.append(ev.strings.values_of([int(k)])[0])
            else:
                py.append(int(k))
        r = _per_distinct(ev, Val(fv[rows], None, first.type), n, make(*py), b.type, rows=rows)
        out_v[rows] = r.v
        rok = _norm_valid(r.ok)
        out_ok[rows] = True if rok is None else (False if rok is False else rok)
    return Val(out_v, out_ok, b.type)


def _text_fn(*types: str, returns: SqlType = STRING, lo: Optional[int] = None, defaults=()):
    """A binder for a text function whose first argument is text and whose parameters have the
    given kinds ('text' or 'int'); ``lo``: fewer arguments allowed, ``defaults`` filling them."""
    def bind(c: Call) -> Bound:
        total = 1 + len(types)
        c.arity(total if lo is None else lo, total)
        args = [c.text(0)]
        for i, kind in enumerate(types, start=1):
            if i >= len(c.args):
                args.append(defaults[i - (total - len(defaults))])
                continue
            args.append(c.text(i) if kind == "text" else c.integer(i))
        fn = _CANONICAL.get(c.name, c.name)
        check = _CHECKS.get(fn)
        if check is not None:
            check(c, args)
        return BCall(returns, fn, tuple(args))
    return bind


def _replace(old: str, new: str):
    if old == "":  # DuckDB: an empty search string changes nothing
        return lambda arr: arr
    return lambda arr: pc.replace_substring(arr, old, new)


def _trim(side: str):
    def make(chars: str = " "):
        f = {"both": pc.utf8_trim, "left": pc.utf8_ltrim, "right": pc.utf8_rtrim}[side]
        if chars == "":
            return lambda arr: arr
        return lambda arr: f(arr, chars)
    return make


def _split_part(delim: str, index: int):
    if delim == "":  # DuckDB splits into characters: part k is character k
        if index > 0:
            return lambda arr: pc.utf8_slice_codeunits(arr, index - 1, index)
        if index < 0:
            return lambda arr: pc.utf8_slice_codeunits(arr, index, index + 1 if index < -1 else None)
        return lambda arr: pc.utf8_slice_codeunits(arr, 0, 0)
    return lambda arr: _list_pick(pc.split_pattern(arr, delim), index)


def _list_pick(parts: pa.ListArray, index: int) -> pa.Array:
    """Element ``index`` (1-based; negative from the end) of each list, '' when out of range."""
    if isinstance(parts, pa.ChunkedArray):
        parts = parts.combine_chunks()
    lengths = pc.list_value_length(parts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = parts.offsets.to_numpy(zero_copy_only=False)[:-1].astype(np.int64)
    if index > 0:
        pos = index - 1
        inside = pos < lengths
        at = offsets + pos
    elif index < 0:
        inside = -index <= lengths
        at = offsets + lengths + index
    else:
        inside = np.zeros(len(lengths), dtype=bool)
        at = offsets
    values = parts.values
    at = np.where(inside, at, 0)
    if len(values) == 0:
        picked = pa.array([""] * len(lengths), pa.string())
    else:
        picked = values.take(pa.array(at))
    out = pc.if_else(pa.array(inside), picked, pa.scalar("", pa.string()))
    if parts.null_count:
        out = pc.if_else(parts.is_valid(), out, pa.scalar(None, pa.string()))
    return out


_MAX_PAD = 1 << 24  # characters: a padded text must stay far below Arrow's 2 GB per array


def _pad(side: str):
    def make(length: int, fill: str):
        def kernel(arr: pa.Array):
            width = max(length, 0)
            if width > _MAX_PAD:
                return arr, arr.is_valid().to_numpy(zero_copy_only=False), lambda j: (
                    f"Out of Range Error: {side[0].upper()}PAD to {length} characters is over "
                    f"the limit of {_MAX_PAD}")
            lens = pc.utf8_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            need = np.maximum(width - lens, 0)
            body = pc.utf8_slice_codeunits(arr, 0, width)
            bad = (need > 0) & (fill == "")
            if not need.any():
                return body
            # the padding depends only on how much is missing: one string per distinct amount
            amounts, inverse = np.unique(need, return_inverse=True)
            fill_ = fill or " "
            pads = pa.array([(fill_ * (a // len(fill_) + 1))[:a] for a in amounts.tolist()], pa.string())
            pad = pads.take(pa.array(inverse.reshape(-1)))
            parts = (pad, body) if side == "left" else (body, pad)
            out = pc.binary_join_element_wise(*parts, "")
            if bad.any():
                return out, bad, lambda j: ("Invalid Input Error: Insufficient padding in "
                                            f"{side[0].upper()}PAD.")
            return out
        return kernel
    return make


def _left(count: int):
    if count >= 0:
        return lambda arr: pc.utf8_slice_codeunits(arr, 0, count)
    return lambda arr: pc.utf8_slice_codeunits(arr, 0, max(count, -2 ** 31))


def _right(count: int):
    if count > 0:
        return lambda arr: pc.utf8_slice_codeunits(arr, -min(count, 2 ** 31))
    if count == 0:
        return lambda arr: pc.utf8_slice_codeunits(arr, 0, 0)
    return lambda arr: pc.utf8_slice_codeunits(arr, min(-count, 2 ** 31))


def _strpos(needle: str):
    def kernel(arr: pa.Array):
        if needle == "":
            return pc.if_else(arr.is_valid(), pa.scalar(1, pa.int64()), pa.scalar(None, pa.int64()))
        parts = pc.split_pattern(arr, needle, max_splits=1)
        found = pc.equal(pc.list_value_length(parts), 2)
        before = pc.utf8_length(pc.list_element(parts, 0))
        return pc.if_else(found, pc.add(pc.cast(before, pa.int64()), 1), pa.scalar(0, pa.int64()))
    return kernel


# DuckDB's regex options: i / c (case-insensitive / -sensitive), s (. matches a line break too)
# / m, n, p (newline-sensitive: the default), the last of a pair winning; g (every match) for
# REPLACE
_REGEX_OPTIONS = set("icsmnp")


def _regex_flags(options: str) -> str:
    """The RE2 inline flags, such as '(?is)', of DuckDB's regex options."""
    ignore = dot_nl = False
    for ch in options:
        if ch in "ic":
            ignore = ch == "i"
        elif ch in "smnp":  # the last of s (on) and m / n / p (off) wins
            dot_nl = ch == "s"
    flags = ("i" if ignore else "") + ("s" if dot_nl else "")
    return f"(?{flags})" if flags else ""


def _regexp_matches(pattern: str, options: str = ""):
    regex = _regex_flags(options) + pattern
    return lambda arr: pc.match_substring_regex(arr, regex)


def _regexp_replace(pattern: str, replacement: str, options: str = ""):
    regex = _regex_flags(options) + pattern
    limit = None if "g" in options else 1
    return lambda arr: pc.replace_substring_regex(arr, regex, replacement, max_replacements=limit)


def _capture_groups(pattern: str) -> int:
    """The number of capturing groups of an RE2 pattern: '(' not escaped, not in a character
    class, and not '(?' unless a named group '(?P<'."""
    count, i, in_class = 0, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "^":
                i += 1
            if pattern[i + 1:i + 2] == "]":  # a ']' first in a class is a plain character
                i += 1
        elif ch == "(":
            named = pattern[i + 1:i + 4] == "?P<" or (pattern[i + 1:i + 3] == "?<"
                                                       and pattern[i + 3:i + 4] not in ("=", "!"))
            if pattern[i + 1:i + 2] != "?" or named:
                count += 1
        i += 1
    return count


def _regexp_extract(pattern: str, group: int = 0, options: str = ""):
    flags = _regex_flags(options)
    # The whole text is matched by a lazy prefix, the pattern (as group 1) and the rest, and
    # replaced by the wanted group: RE2's leftmost-first search of the pattern, group by number.
    # Only the prefix and the rest let '.' match a line break; the pattern keeps its options.
    whole = f"(?s:\\A.*?)({flags}{pattern})(?s:.*\\z)"
    detect = flags + pattern
    if group > _capture_groups(pattern):
        return lambda arr: pc.if_else(arr.is_valid(), pa.scalar("", pa.string()),
                                      pa.scalar(None, pa.string()))

    def kernel(arr: pa.Array):
        hit = pc.match_substring_regex(arr, detect)
        got = pc.replace_substring_regex(arr, whole, f"\\{group + 1}", max_replacements=1)
        return pc.if_else(hit, got, pa.scalar("", pa.string()))
    return kernel


def _check_regex(c: Call, args: list) -> None:
    """A constant pattern is compiled at plan time; options and group are checked too."""
    name = _CANONICAL.get(c.name, c.name)
    pattern = args[1]
    if isinstance(pattern, BConst) and pattern.value is not None:
        try:
            pc.match_substring_regex(pa.array([""]), pattern.value)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise c.error(f"{name}: invalid regular expression '{pattern.value}': {exc}") from None
    opt_at = {"REGEXP_MATCHES": 2, "REGEXP_REPLACE": 3, "REGEXP_EXTRACT": 3}[name]
    if len(c.args) > opt_at:
        opt = c.constant_text(opt_at, "options")
        bad = sorted(set(opt or "") - (_REGEX_OPTIONS | ({"g"} if name == "REGEXP_REPLACE" else set())))
        if bad:
            raise c.error(f"{name}: unsupported regex option(s) {''.join(bad)!r} (options: i, c, s, m, n, p"
                          + (", g" if name == "REGEXP_REPLACE" else "") + ")")
    if name == "REGEXP_EXTRACT" and len(c.args) > 2:
        g = args[2]
        if not isinstance(g, BConst):
            raise c.error("REGEXP_EXTRACT's group must be an integer constant")
        if g.value is not None and not 0 <= g.value <= 9:
            raise c.error("REGEXP_EXTRACT: the group index must be between 0 and 9")


# ------------------------------------------------------------------------------ JSON

_MISSING = object()
_JSON_STEP = re.compile(r'\.(?:"((?:[^"\\]|\\.)*)"|([^.\[\]"]+))|\[(#-)?(\d+)\]|\[(#)\]')


def _json_path(c: Optional[Call], path: str) -> list:
    """A JSON path as steps: str (object key) or int (array index; negative from the end).
    '$.a.b[0]', '$."a b"', '$[#-1]'; '/a/0' (JSON pointer); 'a' (one key), as DuckDB reads them."""
    if path.startswith("/"):
        return [_Pointer(p.replace("~1", "/").replace("~0", "~")) for p in path[1:].split("/")]
    if not path.startswith("$"):
        return [path]
    steps, at = [], 1
    while at < len(path):
        m = _JSON_STEP.match(path, at)
        if m is None:
            if c is None:
                raise ValueError(path)
            raise c.error(f"{c.name}: invalid JSON path '{path}' at character {at + 1}")
        quoted, plain, back, digits, _ = m.groups()
        if quoted is not None:
            steps.append(json.loads(f'"{quoted}"'))
        elif plain is not None:
            if plain == "*":
                raise c.error(f"{c.name}: the wildcard '*' in a JSON path is not supported")
            steps.append(plain)
        else:
            # '[#]' is the place after the last element: never a value
            steps.append(math.inf if digits is None else (-int(digits) if back else int(digits)))
        at = m.end()
    return steps


class _Pointer(str):
    """A JSON pointer's step: a key, or an index when the value is an array."""


def _json_get(doc, steps: list):
    for s in steps:
        if isinstance(s, _Pointer) and isinstance(doc, list):
            if not s.isdigit() or int(s) >= len(doc):
                return _MISSING
            doc = doc[int(s)]
        elif isinstance(s, str):
            if not isinstance(doc, dict) or s not in doc:
                return _MISSING
            doc = doc[s]
        else:
            if not isinstance(doc, list) or not -len(doc) <= s < len(doc):
                return _MISSING
            doc = doc[s]
    return doc


def _no_constants(name):
    raise ValueError(name)


def _json_dumps(value) -> str:
    """A value as JSON text, printed as DuckDB prints it: compact, floats as ``_json_float``."""
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, dict):
        items = value.pairs if isinstance(value, _JsonObject) else value.items()
        return "{" + ",".join(orjson.dumps(k).decode() + ":" + _json_dumps(v)
                              for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_dumps(v) for v in value) + "]"
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_float(x: float) -> str:
    """A double as DuckDB prints it in JSON: the shortest digits that read back to it (repr's),
    in decimal notation when its exponent is in [-6, 20] (with '.0' when it has no fraction),
    else as d.ddde21 / d.ddde-7. json_path's jp_format_double prints the same."""
    if not math.isfinite(x):  # (only the json module reads 1e400, as inf)
        return "null"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    if exponent:
        digits, e10 = (whole + fraction).rstrip("0"), int(exponent) + len(whole) - 1
    elif whole != "0":
        digits, e10 = (whole + fraction).rstrip("0"), len(whole) - 1
    else:
        significant = fraction.lstrip("0")
        digits, e10 = significant.rstrip("0"), len(significant) - len(fraction) - 1
    if -6 <= e10 <= 20:
        if e10 < 0:
            return f"{sign}0.{'0' * (-e10 - 1)}{digits}"
        return f"{sign}{digits[:e10 + 1].ljust(e10 + 1, '0')}.{digits[e10 + 1:] or '0'}"
    return f"{sign}{digits[0]}{'.' + digits[1:] if len(digits) > 1 else ''}e{e10}"


def _json_getter(steps: list) -> Callable:
    """The value at ``steps`` of a document, or _MISSING (a fast path for object keys only)."""
    if not steps or any(type(st) is not str for st in steps):
        return lambda doc: _json_get(doc, steps)

    def get(doc):
        try:
            for st in steps:
                doc = doc[st]
        except (KeyError, TypeError, IndexError):  # no such key, or not an object
            return _MISSING
        return doc
    return get


def _json_result(kind: str) -> Callable:
    """The function's result from the value found (never _MISSING)."""
    if kind == "EXTRACT":
        return _json_dumps
    if kind == "VALUE":
        return lambda v: None if v is None or isinstance(v, (dict, list)) else _json_dumps(v)
    return lambda v: None if v is None else (v if isinstance(v, str) else _json_dumps(v))


class _JsonObject(dict):
    """An object of a payload as DuckDB reads it: a key given twice keeps its first value when
    a path looks it up, and is printed twice (``pairs``, in order) when the object is a result."""

    __slots__ = ("pairs",)


def _first_value_per_key(pairs: list) -> dict:
    obj = _JsonObject()
    for k, v in pairs:
        obj.setdefault(k, v)
    obj.pairs = pairs
    return obj


def _json_reference_kernel(kind: str, path: str):
    """The function over payloads parsed in Python: the reference the compiled scanner
    (``_json_kernel``) must equal, and what it hands the rows it cannot decide (rare, so the
    payload is parsed twice: orjson says whether it is valid JSON, the json module reads it
    keeping a repeated key's first value)."""
    get = _json_getter(_json_path(None, path))
    result = _json_result(kind)
    exists = kind == "EXISTS"

    def kernel(arr: pa.Array):
        out = []
        append, loads = out.append, orjson.loads
        # a run of 19 digits found by one Arrow pass, not a regex per string in Python
        exact = pc.fill_null(pc.match_substring_regex(arr, r"\d{19}"), False).to_pylist()
        # (the rows json_path hands back, or every row for a path beyond its limits)
        for text, big in zip(arr.to_pylist(), exact):
            if text is None:
                append(None)
                continue
            try:
                if not big:
                    loads(text)  # what orjson refuses (RFC 8259 strictly) is invalid JSON
                # a key given twice counts with its first value, as DuckDB reads it
                doc = json.loads(text, parse_constant=_no_constants,
                                 object_pairs_hook=_first_value_per_key)
            except (ValueError, RecursionError):  # invalid JSON: NULL (DuckDB raises an error)
                append(None)
                continue
            v = get(doc)
            if exists:
                append(v is not _MISSING)
            else:
                append(None if v is _MISSING else result(v))
        return pa.array(out, pa.bool_() if exists else pa.string())
    return kernel


_NO_NULLS = np.zeros(0, dtype=np.uint8)


def _json_compiled_steps(steps: list) -> Optional[tuple]:
    """``steps`` as the arrays json_path.extract takes (kinds, index, keys, key offsets), or None
    when the path is beyond its limits (then the reference kernel serves the function)."""
    from .._core import json_path as J

    if len(steps) > J.MAX_PATH_STEPS:
        return None
    kinds, index, keys = [], [], []
    for st in steps:
        if isinstance(st, str):
            pointer = isinstance(st, _Pointer)
            ix = -1
            if pointer and st.isdigit():
                if not st.isascii():  # int() reads other scripts' digits: the reference's case
                    return None
                ix = int(st) if len(st) <= 15 else -1  # no array is that long
            try:
                key = st.encode()
            except UnicodeEncodeError:  # a lone surrogate from a quoted step's escape
                return None
            kinds.append(J.POINTER if pointer else J.KEY)
            index.append(ix)
            keys.append(key)
        elif st == math.inf:  # '[#]': never a value
            kinds.append(J.INDEX)
            index.append(2 ** 62)
            keys.append(b"")
        else:
            if st < -J.MAX_FROM_END:  # json_path remembers the last elements of an array
                return None
            kinds.append(J.INDEX)
            index.append(st)
            keys.append(b"")
    key_at = np.zeros(len(keys) + 1, dtype=np.int64)
    key_at[1:] = np.cumsum([len(k) for k in keys])
    return (np.array(kinds, dtype=np.int8), np.array(index, dtype=np.int64),
            np.frombuffer(b"".join(keys) or b"\0", dtype=np.uint8), key_at)


def _json_kernel(kind: str, path: str):
    """The function over an Arrow string array: each payload walked once by the compiled
    scanner (velostream/_core/json_path.pyx), without Python objects; the rows it flags (19-digit
    runs, lone surrogates, exponents that may overflow, deep nesting, keys with escapes in an
    object to print) go through the reference kernel, so the results are always the
    reference's."""
    from .._core.json_path import FALLBACK, MODES, extract

    reference = _json_reference_kernel(kind, path)
    compiled = _json_compiled_steps(_json_path(None, path))
    if compiled is None:
        return reference
    mode = MODES[kind]
    exists = kind == "EXISTS"

    def kernel(arr) -> pa.Array:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        n = len(arr)
        if n == 0:
            return pa.array([], pa.bool_() if exists else pa.string())
        _, off_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(off_buf, dtype=np.int32)[arr.offset:arr.offset + n + 1]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else _NO_NULLS
        valid = (arr.is_valid().to_numpy(zero_copy_only=False).view(np.uint8) if arr.null_count
                 else _NO_NULLS)
        out_offsets, out_data, out_valid, status = extract(offsets, data, valid, *compiled, mode)
        bitmap = pa.py_buffer(np.packbits(out_valid, bitorder="little"))
        nulls = n - int(np.count_nonzero(out_valid))
        if exists:
            values = pa.py_buffer(np.packbits(out_data, bitorder="little"))
            res = pa.Array.from_buffers(pa.bool_(), n, [bitmap, values], null_count=nulls)
        else:
            res = pa.Array.from_buffers(pa.string(), n, [bitmap, pa.py_buffer(out_offsets),
                                                         pa.py_buffer(out_data)], null_count=nulls)
        fallback = status == FALLBACK
        if fallback.any():
            rows = np.flatnonzero(fallback)
            res = pc.replace_with_mask(res, pa.array(fallback), reference(arr.take(pa.array(rows))))
        return res
    return kernel


class _JsonPlan:
    """One JSON call of a job (a function and a path): its kernel, how many batches it saw and
    whether its payloads looked mostly new when last looked at (None: not yet)."""

    __slots__ = ("kernel", "batches", "mostly_new")

    def __init__(self, kernel):
        self.kernel = kernel
        self.batches = 0
        self.mostly_new = None


# Whether a JSON call's payloads are mostly new is looked at again every _JSON_RECHECK batches
# (a sample costs about as much as the memo's work on a batch of known payloads). Every
# _JSON_PROBE_EVERY batches a call whose payloads looked new goes through the memo once more,
# which records them in the job's dictionary and the memo: a later sample then tells whether
# they repeat.
_JSON_RECHECK = 8
_JSON_PROBE_EVERY = 32
_JSON_SAMPLE = 16
_JSON_HEAD = 16384


def _json_eval(ev, b, batch):
    """Evaluate a JSON function. Payloads that repeat (a few thousand distinct documents) are
    computed once each through the job's memo (``_text_eval``). Payloads that are mostly new
    (every event its own document) would pay more for the memo (entering each payload in the
    job's dictionary, finding the batch's distinct codes, decoding them again) than the
    compiled scanner takes to walk every row: those batches run the kernel on every row of the
    column, in its Arrow form when it still has it (``_json_every_row``). Either way gives the
    same results."""
    res = _json_every_row(ev, b, batch)
    if res is None:
        return _text_eval(ev, b, batch)
    if b.type.kind == "BOOL":
        valid = res.is_valid().to_numpy(zero_copy_only=False) if res.null_count else None
        return Val(res.fill_null(False).to_numpy(zero_copy_only=False), valid, b.type)
    return ev.from_arrow_strings(res)


def _json_column(ev, b, batch):
    """A JSON call that is a whole output column (expressions.COLUMN_OPS): when its batch runs the
    kernel on every row, the results stay in Arrow form, entering the job's string dictionary
    only if a later step needs their codes. None: the usual evaluation."""
    from ..batch import Column

    res = _json_every_row(ev, b, batch)
    return None if res is None else Column(b.type, arrow=res, strings=ev.strings)


def _json_every_row(ev, b, batch) -> Optional[pa.Array]:
    """The function's results for the batch from the kernel run on every row, or None when the
    batch should go through the memo instead (``_json_mostly_new`` decides)."""
    arg, path = b.args[0], b.args[1]
    if not isinstance(arg, X.BCol) or not isinstance(path, BConst) or path.value is None:
        return None
    plans = ev.__dict__.setdefault("_json_plans", {})
    plan = plans.get((b.fn, path.value))
    if plan is None:
        plan = plans.setdefault((b.fn, path.value), _JsonPlan(_KERNELS[b.fn](path.value)))
    seen = plan.batches
    plan.batches += 1
    if seen % _JSON_PROBE_EVERY == _JSON_PROBE_EVERY - 1:
        return None
    col = batch.columns[arg.name]
    if plan.mostly_new is None or seen % _JSON_RECHECK == 0:
        plan.mostly_new = _json_mostly_new(ev, b, col, path.value, first=seen == 0)
    if not plan.mostly_new or len(col) == 0:
        return None
    arr = col.arrow
    if arr is None:  # already codes into the job's dictionary
        arr = ev.strings.decode(col.values, col.valid)
    elif isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):  # the distinct payloads are given: one pass over them
        return plan.kernel(arr.dictionary).take(arr.indices)
    return plan.kernel(arr)


def _json_mostly_new(ev, b, col, path: str, first: bool) -> bool:
    """Whether the column's batch should run the kernel on every row: not when most payloads
    are known (to the memo, or to the job's dictionary for a column still in Arrow form), nor,
    for a batch that tells nothing yet, when at least half of its rows repeat another row. A
    dictionary-encoded column always should (its distinct payloads are given)."""
    arr = col.arrow
    if arr is not None:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if len(arr) == 0:
            return False
        if pa.types.is_dictionary(arr.type):
            return True
        if first:  # the repeats within a slice of the batch (hashing it all costs a kernel pass)
            head = arr.slice(0, _JSON_HEAD)
            return 2 * len(head.unique()) > len(head)
        rows = _sample_rows(len(arr))
        texts = [t for t in arr.take(pa.array(rows)).to_pylist() if t is not None]
        known = sum(ev.strings.lookup(t) >= 0 for t in texts)
        return 2 * known < len(texts)
    codes, valid = col.values, col.valid
    if len(codes) == 0:
        return False
    memo = ev.__dict__.get("_function_memos", {}).get((b.fn, (path,)))
    if memo is not None:
        rows = _sample_rows(len(codes))
        if valid is not None:
            rows = rows[valid[rows]]
        sample = codes[rows]
        state = memo.state  # replaced, never changed in place, when it grows
        known = int(np.count_nonzero(state[sample[sample < len(state)]]))
        if 2 * known >= len(sample):
            return False
    live = codes if valid is None else codes[valid]
    if len(live) == 0:
        return False
    lo, hi = int(live.min()), int(live.max())
    if hi - lo < 16 * len(live):  # (new payloads have recent, close codes) a bitmap of the span
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[live - lo] = True
        distinct = int(np.count_nonzero(present))
    else:
        distinct = len(np.unique(live))
    return 2 * distinct > len(live)


def _sample_rows(n: int) -> np.ndarray:
    return np.linspace(0, n - 1, min(n, _JSON_SAMPLE)).astype(np.int64)


X.COLUMN_OPS.update(dict.fromkeys(
    ["JSON_VALUE", "JSON_EXTRACT", "JSON_EXTRACT_STRING", "JSON_EXISTS"], _json_column))


def _check_json(c: Call, args: list) -> None:
    path = args[1]
    if not isinstance(path, BConst):
        raise c.error(f"{c.name}'s path must be a constant string")
    if path.value is not None:
        _json_path(c, path.value)


# ------------------------------------------------------------------------------ CONCAT_WS


def _bind_concat_ws(c: Call) -> Bound:
    c.arity(2, 64)
    return BCall(STRING, "CONCAT_WS", tuple(c.text(i) for i in range(len(c.args))))


def _eval_concat_ws(ev, b, batch):
    n = batch.length
    vals = [ev.eval(x, batch) for x in b.args]
    sep = vals[0]
    if sep.is_scalar and _norm_valid(sep.ok) is False:
        return _null(STRING, n)
    arrays = [ev.to_arrow_strings(v, n) for v in vals[1:]]
    separator = ev.to_arrow_strings(sep, n) if not sep.is_scalar else _scalar_of(ev, sep)
    # Arrow's join with null_handling='skip' drops the rows whose values are all NULL (instead
    # of giving ''): such rows get one '' value, which joins to ''
    all_null = None
    for a in arrays:
        all_null = a.is_null() if all_null is None else pc.and_(all_null, a.is_null())
    arrays[0] = pc.if_else(all_null, pa.scalar("", pa.string()), arrays[0])
    text = _one_per_input(pc.binary_join_element_wise(*arrays, separator, null_handling="skip"), n)
    return ev.from_arrow_strings(text)


# ------------------------------------------------------------------------------ the table

_KERNELS: dict = {
    "REPLACE": _replace, "LTRIM": _trim("left"), "RTRIM": _trim("right"), "TRIM": _trim("both"),
    "SPLIT_PART": _split_part, "LPAD": _pad("left"), "RPAD": _pad("right"),
    "LEFT": _left, "RIGHT": _right, "STRPOS": _strpos, "REVERSE": lambda: pc.utf8_reverse,
    "STARTS_WITH": lambda prefix: (lambda arr: pc.starts_with(arr, prefix)),
    "CONTAINS": lambda part: (lambda arr: pc.match_substring(arr, part)),
    "REPEAT": lambda times: (lambda arr: pc.binary_repeat(arr, max(times, 0))),
    "ASCII": lambda: _ascii,
    "ENDS_WITH": lambda suffix: (lambda arr: pc.ends_with(arr, suffix)),
    "REGEXP_MATCHES": _regexp_matches, "REGEXP_REPLACE": _regexp_replace,
    "REGEXP_EXTRACT": _regexp_extract,
    "STRPTIME": _strptime_kernel,
    "JSON_VALUE": lambda p: _json_kernel("VALUE", p),
    "JSON_EXTRACT": lambda p: _json_kernel("EXTRACT", p),
    "JSON_EXTRACT_STRING": lambda p: _json_kernel("EXTRACT_STRING", p),
    "JSON_EXISTS": lambda p: _json_kernel("EXISTS", p),
}
_CHECKS = {"REGEXP_MATCHES": _check_regex, "REGEXP_REPLACE": _check_regex,
           "REGEXP_EXTRACT": _check_regex, "JSON_VALUE": _check_json, "JSON_EXTRACT": _check_json,
           "JSON_EXTRACT_STRING": _check_json, "JSON_EXISTS": _check_json}


def _eval_strptime(ev, b, batch):
    n = batch.length
    text = ev.eval(b.args[0], batch)
    kernel = _strptime_kernel(b.args[1].value)
    if b.fn == "TRY_STRPTIME":
        inner = kernel
        kernel = lambda arr: inner(arr)[0]  # noqa: E731 - unparsable text is NULL
    return _memo_map(ev, b, text, n, kernel, (b.args[1].value,))


def _bind_trim(c: Call) -> Bound:
    c.arity(1, 2)
    args = (c.text(0),) + ((c.text(1),) if len(c.args) > 1 else (BConst(STRING, " "),))
    return BCall(STRING, c.name, args)


# ------------------------------------------------------------------------- more numbers
# DOUBLE in, DOUBLE out, NaN / infinity outside the domain as DuckDB gives them (no error)
_FLOAT1 = {"SIN": np.sin, "COS": np.cos, "TAN": np.tan, "COT": lambda x: 1.0 / np.tan(x),
           "ASIN": np.arcsin, "ACOS": np.arccos, "ATAN": np.arctan, "CBRT": np.cbrt,
           "DEGREES": np.degrees, "RADIANS": np.radians, "LOG2": np.log2}


def _bind_float1(c: Call) -> Bound:
    c.arity(1)
    return BCall(FLOAT64, c.name, (X._convert(c.number(0), FLOAT64),))


def _eval_float1(ev, b, batch) -> Val:
    v, ok = _full(ev.eval(b.args[0], batch), batch.length, np.float64)
    with np.errstate(all="ignore"):
        return Val(_FLOAT1[b.fn](v), ok, FLOAT64)


# DuckDB's tests of a number's kind (BOOLEAN; NULL for NULL; a BIGINT is never NaN or infinite)
_FLOAT_TESTS = {"ISNAN": np.isnan, "ISINF": np.isinf, "ISFINITE": np.isfinite}


def _bind_float_test(c: Call) -> Bound:
    c.arity(1)
    return BCall(BOOL, c.name, (X._convert(c.number(0), FLOAT64),))


def _eval_float_test(ev, b, batch) -> Val:
    v, ok = _full(ev.eval(b.args[0], batch), batch.length, np.float64)
    return Val(_FLOAT_TESTS[b.fn](v), ok, BOOL)


def _bind_float2(c: Call) -> Bound:
    c.arity(2)
    return BCall(FLOAT64, c.name, tuple(X._convert(c.number(i), FLOAT64) for i in range(2)))


def _eval_float2(ev, b, batch) -> Val:
    n = batch.length
    (y, ok1), (x, ok2) = (_full(ev.eval(a, batch), n, np.float64) for a in b.args)
    with np.errstate(all="ignore"):
        out = np.arctan2(y, x) if b.fn == "ATAN2" else np.log(x) / np.log(y)  # LOG(base, x)
    return Val(out, _norm_valid(_and_valid(ok1, ok2)), FLOAT64)


def _bind_log(c: Call) -> Bound:
    """LOG(x) is LOG10(x), as in DuckDB; LOG(b, x) the logarithm of x to base b."""
    c.arity(1, 2)
    if len(c.args) == 1:
        return BCall(FLOAT64, "LOG10", (X._convert(c.number(0), FLOAT64),))
    return _bind_float2(c)


def _bind_pi(c: Call) -> Bound:
    c.arity(0)
    return BConst(FLOAT64, math.pi)


def _bind_trunc(c: Call) -> Bound:
    """TRUNC(x): toward zero; an integer stays itself, a DECIMAL is FLOOR or CEIL by its sign
    (their DECIMAL handling), a DOUBLE numpy's trunc."""
    c.arity(1)
    x = c.number(0)
    if x.type.kind in ("INT64", "BOOL"):
        return X._convert(x, INT64)
    if x.type.kind == "DECIMAL":
        negative = BCall(BOOL, "<", (x, X._convert(BConst(INT64, 0), x.type)))
        return BCall(x.type, "CASE", (negative, BCall(x.type, "CEIL", (x,)),
                                      BCall(x.type, "FLOOR", (x,))))
    return BCall(FLOAT64, "TRUNC", (X._convert(x, FLOAT64),))


def _eval_trunc(ev, b, batch) -> Val:
    v, ok = _full(ev.eval(b.args[0], batch), batch.length, np.float64)
    return Val(np.trunc(v), ok, FLOAT64)


def _ascii(arr: pa.Array) -> pa.Array:
    """The code point of each string's first character (0 for '', as DuckDB), per distinct
    string (_memo_map)."""
    return pa.array([None if s is None else (ord(s[0]) if s else 0) for s in arr.to_pylist()],
                    pa.int64())


def _bind_if(c: Call) -> Bound:
    """IF(cond, a, b) (Flink SQL, DuckDB, MySQL) is CASE WHEN cond THEN a ELSE b END."""
    c.arity(3)
    cond, a, b = c.args
    X._expect_bool(cond, c, c.sql)
    rt = X._common_type([a.type, b.type])
    return BCall(rt, "CASE", (cond, X._convert(a, rt), X._convert(b, rt)))


def _bind_ifnull(c: Call) -> Bound:
    """IFNULL(a, b) (Flink SQL, DuckDB, MySQL) is COALESCE(a, b)."""
    c.arity(2)
    rt = X._common_type([a.type for a in c.args])
    return BCall(rt, "COALESCE", tuple(X._convert(a, rt) for a in c.args))


# ------------------------------------------------------------------ more Flink SQL and DuckDB


def _bind_date_part_of(part: str):
    """YEAR(ts), HOUR(ts), ...: DATE_PART('part', ts), one implementation (_date_part)."""
    def bind(c: Call) -> Bound:
        c.arity(1)
        return BCall(INT64, "DATE_PART", (BConst(STRING, part), c.time(0)))
    return bind


# Flink's epoch range for TO_TIMESTAMP_LTZ: 0000-01-01 00:00:00 to 9999-12-31 23:59:59.999 UTC;
# outside it Flink gives NULL
_LTZ_MIN_MS, _LTZ_MAX_MS = -62_167_219_200_000, 253_402_300_799_999


def _bind_to_timestamp_ltz(c: Call) -> Bound:
    """Flink SQL's TO_TIMESTAMP_LTZ(n [, precision]): n epoch seconds (precision 0) or
    milliseconds (3, the default); text is read as TO_TIMESTAMP reads it (UTC)."""
    if c.args and c.args[0].type.kind == "STRING":
        return _bind_to_timestamp(c)
    c.arity(1, 2)
    x = c.number(0)
    precision = 3
    if len(c.args) > 1:
        p = c.args[1]
        if not (isinstance(p, BConst) and p.type.kind == "INT64") or p.value not in (0, 3):
            raise c.error("TO_TIMESTAMP_LTZ's precision must be the constant 0 (epoch seconds) or "
                          "3 (epoch milliseconds)")
        precision = p.value
    if x.type.kind == "BOOL":
        x = X._convert(x, INT64)
    return BCall(TIMESTAMP, "TO_TIMESTAMP_LTZ", (x, BConst(INT64, precision)))


def _eval_to_timestamp_ltz(ev, b, batch):
    """As Flink's DateTimeUtils.toTimestampData: a fraction of a millisecond is cut off (toward
    zero), a DECIMAL is converted exactly, and a time outside years 0 to 9999 is NULL."""
    n = batch.length
    a = ev.eval(b.args[0], batch)
    per = 1000 if b.args[1].value == 0 else 1  # milliseconds per unit of n
    lo, hi = _LTZ_MIN_MS, _LTZ_MAX_MS
    kind = a.type.kind
    if kind == "FLOAT64":
        v, ok = _full(a, n, np.float64)
        with np.errstate(all="ignore"):
            ms_f = np.trunc(v * per)
        inside = (ms_f >= lo) & (ms_f <= hi)  # NaN and infinities are outside
        ms = np.where(inside, ms_f, 0).astype(np.int64)
    elif kind == "DECIMAL":  # n * per / 10**scale toward zero, in integers (|n| < 10**18)
        v, ok = _full(a, n, np.int64)
        f = 10 ** a.type.scale
        whole, rest = np.abs(v) // f, np.abs(v) % f
        part = rest // (f // per) if f >= per else rest * per // f
        # (a whole past the range is clamped to just past it: never an int64 overflow)
        ms = np.sign(v) * (np.minimum(whole, hi // per + 1) * per + part)
        inside = (ms >= lo) & (ms <= hi)
    else:  # compared before multiplying: no int64 overflow
        v, ok = _full(a, n, np.int64)
        inside = (v >= lo // per) & (v <= hi // per)
        ms = np.where(inside, v, 0) * per
    return Val(np.where(inside, ms, 0), _and_valid(_norm_valid(ok), inside), TIMESTAMP)


# Java's Character.isWhitespace: what Flink's SPLIT_INDEX splits at when the separator is ''
_JAVA_WHITESPACE = ("[\t\n\x0b\f\r\x1c-\x1f \u1680\u2000-\u2006\u2008-\u200a\u2028\u2029"
                    "\u205f\u3000]")


def _split_index(sep: str, index: int):
    """Flink's SPLIT_INDEX: part ``index`` (0-based) of s split at sep (commons-lang's
    splitByWholeSeparatorPreserveAllTokens: '' splits at whitespace); NULL for a negative index,
    one past the parts, and for '' (which has no parts)."""
    def kernel(arr: pa.Array):
        if index < 0:
            return pa.nulls(len(arr), pa.string())
        parts = pc.split_pattern_regex(arr, _JAVA_WHITESPACE) if sep == "" else pc.split_pattern(arr, sep)
        if isinstance(parts, pa.ChunkedArray):
            parts = parts.combine_chunks()
        lengths = pc.list_value_length(parts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        nonempty = pc.fill_null(pc.greater(pc.binary_length(arr), 0), False).to_numpy(zero_copy_only=False)
        inside = (index < lengths) & nonempty
        offsets = parts.offsets.to_numpy(zero_copy_only=False)[:-1].astype(np.int64)
        values = parts.values
        if len(values) == 0 or not inside.any():
            return pa.nulls(len(arr), pa.string())
        picked = values.take(pa.array(np.where(inside, offsets + index, 0)))
        return pc.if_else(pa.array(inside), picked, pa.scalar(None, pa.string()))
    return kernel


def _bind_locate(c: Call) -> Bound:
    """Flink SQL's LOCATE(needle, s [, from]): STRPOS from character ``from`` on."""
    c.arity(2, 3)
    start = c.integer(2) if len(c.args) > 2 else BConst(INT64, 1)
    return BCall(INT64, "LOCATE", (c.text(1), c.text(0), start))


def _locate(needle: str, start: int):
    """Flink's BinaryStringData.indexOf(needle, start - 1) + 1: an empty needle is at 1, a start
    below 1 searches from the beginning, one past the end finds nothing (0)."""
    skip = min(max(start - 1, 0), 2 ** 31)
    find = _strpos(needle)

    def kernel(arr: pa.Array):
        if needle == "":
            return pc.if_else(arr.is_valid(), pa.scalar(1, pa.int64()), pa.scalar(None, pa.int64()))
        at = find(pc.utf8_slice_codeunits(arr, skip) if skip else arr)
        return pc.if_else(pc.equal(at, 0), at, pc.add(at, skip))
    return kernel


def _string_buffers(arr: pa.Array) -> tuple:
    """(offsets from 0, UTF-8 bytes) of a string array, without copying."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    n = len(arr)
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int32)[arr.offset:arr.offset + n + 1].astype(np.int64) \
        if off_buf is not None else np.zeros(n + 1, dtype=np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    data = data[offsets[0]:offsets[-1]]
    return arr, offsets - offsets[0], data


def _string_array(arr: Optional[pa.Array], offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A string array of the given offsets and bytes, NULL where ``arr`` is (None: no NULLs)."""
    validity, nulls = None, 0
    if arr is not None and arr.null_count:
        nulls = arr.null_count
        validity = arr.buffers()[0]
        if arr.offset:  # the bitmap of a slice: rebuilt from 0
            validity = pa.py_buffer(np.packbits(arr.is_valid().to_numpy(zero_copy_only=False),
                                                bitorder="little"))
    return pa.Array.from_buffers(pa.string(), len(offsets) - 1, [validity, pa.py_buffer(
        offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(data, dtype=np.uint8))],
        null_count=nulls)


def _code_points(arr: pa.Array) -> tuple:
    """Each string's characters as code points (UTF-8 decoded with numpy): (arr, code points,
    the row of each)."""
    arr, offsets, data = _string_buffers(arr)
    starts = np.flatnonzero((data & 0xC0) != 0x80)  # the first byte of each character
    padded = np.concatenate([data, np.zeros(3, np.uint8)]).astype(np.int64)
    b0, b1, b2, b3 = (padded[starts + k] for k in range(4))
    width = 1 + (b0 >= 0xC0) + (b0 >= 0xE0) + (b0 >= 0xF0)
    cont = lambda x: x & 0x3F  # noqa: E731
    cp = np.select([width == 1, width == 2, width == 3],
                   [b0, ((b0 & 0x1F) << 6) | cont(b1), ((b0 & 0x0F) << 12) | (cont(b1) << 6) | cont(b2)],
                   ((b0 & 0x07) << 18) | (cont(b1) << 12) | (cont(b2) << 6) | cont(b3))
    rows = np.searchsorted(offsets, starts, side="right") - 1
    return arr, cp, rows


def _utf8_bytes(cp: np.ndarray) -> tuple:
    """Code points (valid ones) as UTF-8: (bytes, the end of each character in them)."""
    cp = cp.astype(np.int64)
    width = 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)
    ends = np.cumsum(width)
    starts = ends - width
    out = np.zeros(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    lead = np.select([width == 1, width == 2, width == 3],
                     [cp, 0xC0 | (cp >> 6), 0xE0 | (cp >> 12)], 0xF0 | (cp >> 18))
    out[starts] = lead
    for k in (1, 2, 3):  # continuation byte k of the characters at least k + 1 bytes wide
        m = width > k
        out[starts[m] + k] = 0x80 | ((cp[m] >> (6 * (width[m] - 1 - k))) & 0x3F)
    return out, ends


def _from_code_points(arr: pa.Array, cp: np.ndarray, rows: np.ndarray) -> pa.Array:
    """Strings made of the code points ``cp`` (in row order; ``rows``: the row of each)."""
    data, ends = _utf8_bytes(cp)
    counts = np.bincount(rows, minlength=len(arr)) if len(rows) else np.zeros(len(arr), np.int64)
    last = np.cumsum(counts)  # characters up to the end of each row
    offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    offsets[1:] = np.concatenate([[0], ends])[last]
    return _string_array(arr, offsets, data)


def _translate(old: str, new: str):
    """DuckDB's TRANSLATE: each character of ``old`` becomes the one at its place in ``new`` (the
    first place when it occurs twice), or is removed when ``new`` is shorter; code points mapped
    with numpy."""
    mapping: dict = {}
    for i, ch in enumerate(old):
        mapping.setdefault(ord(ch), ord(new[i]) if i < len(new) else -1)
    keys = np.array(sorted(mapping), dtype=np.int64)
    values = np.array([mapping[k] for k in keys.tolist()], dtype=np.int64)

    def kernel(arr: pa.Array):
        if not len(keys):
            return arr
        arr, cp, rows = _code_points(arr)
        at = np.minimum(np.searchsorted(keys, cp), len(keys) - 1)
        hit = keys[at] == cp
        cp = np.where(hit, values[at], cp)
        keep = cp >= 0
        return _from_code_points(arr, cp[keep], rows[keep])
    return kernel


def _initcap(arr: pa.Array) -> pa.Array:
    """Flink's INITCAP (Calcite's): a word is a run of ASCII letters and digits; its first letter
    upper case, its other letters lower case; other characters (non-ASCII ones too) unchanged.
    On the UTF-8 bytes with numpy: no byte of a multi-byte character is ASCII."""
    arr, offsets, data = _string_buffers(pc.ascii_lower(arr))
    lower = (data >= 0x61) & (data <= 0x7A)
    alnum = lower | ((data >= 0x30) & (data <= 0x39)) | ((data >= 0x41) & (data <= 0x5A))
    after_alnum = np.zeros(len(data), dtype=bool)
    after_alnum[1:] = alnum[:-1]
    after_alnum[offsets[:-1][offsets[:-1] < len(data)]] = False  # each string starts a word
    data = np.where(lower & ~after_alnum, data - 32, data).astype(np.uint8)
    return _string_array(arr, offsets, data)


def _bind_chr(c: Call) -> Bound:
    c.arity(1)
    return BCall(STRING, "CHR", (c.integer(0),))


def _eval_chr(ev, b, batch):
    """DuckDB's CHR: the character of a code point; one that is not a character (negative,
    past U+10FFFF, a surrogate) fails its row."""
    n = batch.length
    v, ok = _full(ev.eval(b.args[0], batch), n, np.int64)
    if ok is False:
        return _null(STRING, n)
    bad = (v < 0) | (v > 0x10FFFF) | ((v >= 0xD800) & (v <= 0xDFFF))
    ev.check(bad, ok, n, lambda i: f"Invalid Input Error: Invalid UTF8 Codepoint {v[i]}")
    cp = np.where(bad, 0, v)
    distinct, inverse = np.unique(cp, return_inverse=True)  # one string per distinct character
    data, ends = _utf8_bytes(distinct)
    offsets = np.concatenate([[0], ends])
    text = _string_array(None, offsets, data)
    codes, _ = ev.strings.encode_arrow(text)
    return Val(codes[inverse.reshape(-1)], _and_valid(ok, ~bad) if bad.any() else ok, STRING)


# TYPEOF: each type by the name velostream's SQL gives it (docs/SQL.md §2)
_TYPE_NAMES = {"INT64": "BIGINT", "FLOAT64": "DOUBLE", "STRING": "VARCHAR", "BOOL": "BOOLEAN",
               "TIMESTAMP": "TIMESTAMP", "DATE": "DATE", "NULL": "NULL"}


def _bind_typeof(c: Call) -> Bound:
    c.arity(1)
    t = c.args[0].type
    return BConst(STRING, _TYPE_NAMES.get(t.kind, str(t)))  # DECIMAL(p,s) as DuckDB names it


def _bind_no_args(fn: str, t: SqlType):
    def bind(c: Call) -> Bound:
        c.arity(0)
        return BCall(t, fn, ())
    return bind


def _eval_random(ev, b, batch):
    # a generator seeded from the OS per batch: fresh values in every partition and process
    # (a module-level generator would repeat its sequence in forked processes)
    return Val(np.random.default_rng().random(batch.length), None, FLOAT64)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# where the 32 hex digits go in the 36 characters of 8-4-4-4-12
_UUID_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def _uuids(n: int) -> pa.Array:
    """n random (version 4) UUIDs as text, formatted with numpy over all rows at once."""
    raw = np.frombuffer(np.random.default_rng().bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # the RFC 4122 variant
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS] = digits
    offsets = np.arange(0, 36 * n + 1, 36, dtype=np.int64)
    return _string_array(None, offsets, text.reshape(-1))


def _eval_uuid(ev, b, batch):
    return ev.from_arrow_strings(_uuids(batch.length))


def _uuid_column(ev, b, batch):
    """UUID() as a whole output column stays in Arrow form: each value is new, and entering
    every one in the job's string dictionary would grow it by a row's worth per row."""
    from ..batch import Column

    return Column(STRING, arrow=_uuids(batch.length), strings=ev.strings)


X.COLUMN_OPS["UUID"] = _uuid_column
_KERNELS.update({"SPLIT_INDEX": _split_index, "LOCATE": _locate, "TRANSLATE": _translate,
                 "INITCAP": lambda: _initcap})


S = "Text"
T = "Date and time"
J = "JSON"
N = "Numbers"
G = "Conditional"

FUNCTIONS: list[Function] = [
    # -- numbers (bound in expressions)
    Function("ABS", "ABS(x) -> same type", "Absolute value.", "ABS(-3)", 3),
    Function("SIGN", "SIGN(x) -> BIGINT", "-1, 0 or 1 after the sign of x.", "SIGN(-2.5)", -1),
    Function("ROUND", "ROUND(x [, places INTEGER]) -> same type",
             "Rounds half away from zero to the given decimal places (negative: tens, hundreds).",
             "ROUND(2.5)", 3.0),
    Function("FLOOR", "FLOOR(x) -> DOUBLE or DECIMAL", "Largest whole number not above x.", "FLOOR(-1.5)",
             -2.0),
    Function("CEIL", "CEIL(x) -> DOUBLE or DECIMAL", "Smallest whole number not below x.", "CEIL(1.2)", 2.0,
             aliases=("CEILING",)),
    Function("SQRT", "SQRT(x) -> DOUBLE", "Square root (NaN below zero).", "SQRT(16)", 4.0),
    Function("POWER", "POWER(x, y) -> DOUBLE", "x raised to the power y.", "POWER(2, 10)", 1024.0,
             aliases=("POW",)),
    Function("MOD", "MOD(x, y) -> numeric", "Truncating remainder, as x % y (NULL for an integer 0).",
             "MOD(-7, 3)", -1),
    Function("EXP", "EXP(x) -> DOUBLE", "e raised to the power x.", "EXP(0)", 1.0),
    Function("LN", "LN(x) -> DOUBLE", "Natural logarithm.", "LN(1)", 0.0),
    Function("LOG10", "LOG10(x) -> DOUBLE", "Base-10 logarithm.", "LOG10(1000)", 3.0),
    Function("LOG", "LOG(x) or LOG(base, x) -> DOUBLE", "LOG10(x); with a base, the logarithm "
             "of x to that base.", "LOG(2, 1024)", 10.0, bind=_bind_log, evaluate=_eval_float2),
    Function("LOG2", "LOG2(x) -> DOUBLE", "Base-2 logarithm.", "LOG2(8)", 3.0, bind=_bind_float1,
             evaluate=_eval_float1),
    Function("CBRT", "CBRT(x) -> DOUBLE", "Cube root.", "CBRT(-8)", -2.0, bind=_bind_float1,
             evaluate=_eval_float1),
    Function("TRUNC", "TRUNC(x) -> same type", "x with its fraction cut off (toward zero).",
             "TRUNC(-2.7)", -2.0, bind=_bind_trunc, evaluate=_eval_trunc),
    Function("PI", "PI() -> DOUBLE", "π.", "PI()", math.pi, bind=_bind_pi),
    Function("ISNAN", "ISNAN(x) -> BOOLEAN", "Whether x is NaN.", "ISNAN(CAST('NaN' AS DOUBLE))",
             True, bind=_bind_float_test, evaluate=_eval_float_test),
    Function("ISINF", "ISINF(x) -> BOOLEAN", "Whether x is infinite (either sign).",
             "ISINF(-1e999)", True, bind=_bind_float_test, evaluate=_eval_float_test),
    Function("ISFINITE", "ISFINITE(x) -> BOOLEAN", "Whether x is neither NaN nor infinite.",
             "ISFINITE(1.5)", True, bind=_bind_float_test, evaluate=_eval_float_test),
    Function("DEGREES", "DEGREES(x) -> DOUBLE", "Radians to degrees.", "DEGREES(PI())", 180.0,
             bind=_bind_float1, evaluate=_eval_float1),
    Function("RADIANS", "RADIANS(x) -> DOUBLE", "Degrees to radians.", "RADIANS(180)", math.pi,
             bind=_bind_float1, evaluate=_eval_float1),
    Function("SIN", "SIN(x) -> DOUBLE", "Sine (radians).", "SIN(0)", 0.0, bind=_bind_float1,
             evaluate=_eval_float1),
    Function("COS", "COS(x) -> DOUBLE", "Cosine (radians).", "COS(0)", 1.0, bind=_bind_float1,
             evaluate=_eval_float1),
    Function("TAN", "TAN(x) -> DOUBLE", "Tangent (radians).", "TAN(0)", 0.0, bind=_bind_float1,
             evaluate=_eval_float1),
    Function("COT", "COT(x) -> DOUBLE", "Cotangent (radians).", "COT(1)", 1.0 / math.tan(1),
             bind=_bind_float1, evaluate=_eval_float1),
    Function("ASIN", "ASIN(x) -> DOUBLE", "Arcsine (NaN outside [-1, 1]).", "ASIN(1)", math.pi / 2,
             bind=_bind_float1, evaluate=_eval_float1),
    Function("ACOS", "ACOS(x) -> DOUBLE", "Arccosine (NaN outside [-1, 1]).", "ACOS(1)", 0.0,
             bind=_bind_float1, evaluate=_eval_float1),
    Function("ATAN", "ATAN(x) -> DOUBLE", "Arctangent.", "ATAN(0)", 0.0, bind=_bind_float1,
             evaluate=_eval_float1),
    Function("ATAN2", "ATAN2(y, x) -> DOUBLE", "The angle of the point (x, y).", "ATAN2(1, 0)",
             math.pi / 2, bind=_bind_float2, evaluate=_eval_float2),
    Function("RANDOM", "RANDOM() -> DOUBLE",
             "A random number in [0, 1), a new one for every row.", "RANDOM() < 1", True,
             bind=_bind_no_args("RANDOM", FLOAT64), evaluate=_eval_random, aliases=("RAND",)),
    Function("TYPEOF", "TYPEOF(x) -> VARCHAR",
             "The name of x's SQL type: BIGINT, DOUBLE, DECIMAL(p,s), VARCHAR, BOOLEAN, "
             "TIMESTAMP, DATE, or NULL for an untyped NULL.", "TYPEOF(CAST(2.5 AS DOUBLE))", "DOUBLE",
             bind=_bind_typeof, group="Other"),
    # -- conditional
    Function("COALESCE", "COALESCE(a, b, ...) -> common type", "The first argument that is not NULL.",
             "COALESCE(NULL, 2, 3)", 2, group=G),
    Function("NULLIF", "NULLIF(a, b) -> type of a", "NULL when a = b, else a.", "NULLIF(1, 1)", None, group=G),
    Function("IF", "IF(cond, a, b) -> common type", "a when cond is true, else b (also when cond is "
             "NULL): CASE WHEN cond THEN a ELSE b END.", "IF(2 > 1, 'yes', 'no')", "yes", bind=_bind_if,
             group=G),
    Function("IFNULL", "IFNULL(a, b) -> common type", "a unless it is NULL, else b: COALESCE(a, b).",
             "IFNULL(NULL, 7)", 7, bind=_bind_ifnull, group=G),
    Function("LEAST", "LEAST(a, b, ...) -> common type", "The smallest argument (NULLs skipped).",
             "LEAST(3, 1, 2)", 1, group=G),
    Function("GREATEST", "GREATEST(a, b, ...) -> common type", "The largest argument (NULLs skipped).",
             "GREATEST(3, 1, 2)", 3, group=G),
    # -- text, bound in expressions
    Function("UPPER", "UPPER(s) -> VARCHAR", "Upper case.", "UPPER('héllo')", "HÉLLO", group=S),
    Function("LOWER", "LOWER(s) -> VARCHAR", "Lower case.", "LOWER('HÉLLO')", "héllo", group=S),
    Function("LENGTH", "LENGTH(s) -> BIGINT", "Number of characters.", "LENGTH('héllo')", 5, group=S,
             aliases=("LEN", "CHAR_LENGTH")),
    Function("SUBSTRING", "SUBSTRING(s, start [, length]) -> VARCHAR",
             "Characters from start (1-based; negative: from the end), length of them.",
             "SUBSTRING('velostream', 1, 4)", "velo", group=S, aliases=("SUBSTR",)),
    Function("CONCAT", "CONCAT(a, b, ...) -> VARCHAR", "The arguments as text, joined (NULLs skipped; "
             "a || b is NULL when either is).", "CONCAT('a', NULL, 1)", "a1", group=S),
    # -- text, bound here
    Function("TRIM", "TRIM(s [, characters]) -> VARCHAR",
             "Removes the characters (default: spaces) from both ends.", "TRIM('  x  ')", "x",
             bind=_bind_trim, evaluate=_text_eval, group=S),
    Function("LTRIM", "LTRIM(s [, characters]) -> VARCHAR",
             "Removes the characters (default: spaces) from the start.", "LTRIM('xxaxx', 'x')", "axx",
             bind=_bind_trim, evaluate=_text_eval, group=S),
    Function("RTRIM", "RTRIM(s [, characters]) -> VARCHAR",
             "Removes the characters (default: spaces) from the end.", "RTRIM('xxaxx', 'x')", "xxa",
             bind=_bind_trim, evaluate=_text_eval, group=S),
    Function("REPLACE", "REPLACE(s, from VARCHAR, to VARCHAR) -> VARCHAR",
             "Every occurrence of from replaced by to.", "REPLACE('a-b-c', '-', '+')", "a+b+c",
             bind=_text_fn("text", "text"), evaluate=_text_eval, group=S),
    Function("SPLIT_PART", "SPLIT_PART(s, delimiter VARCHAR, index BIGINT) -> VARCHAR",
             "Part index (1-based; negative: from the end) of s split at delimiter; '' when there "
             "is none.", "SPLIT_PART('a,b,c', ',', -1)", "c", bind=_text_fn("text", "int"),
             evaluate=_text_eval, group=S),
    Function("LPAD", "LPAD(s, length BIGINT, fill VARCHAR) -> VARCHAR",
             "s padded at the start with fill (repeated) to length characters, or cut to it.",
             "LPAD('7', 3, '0')", "007", bind=_text_fn("int", "text"), evaluate=_text_eval, group=S),
    Function("RPAD", "RPAD(s, length BIGINT, fill VARCHAR) -> VARCHAR",
             "s padded at the end with fill (repeated) to length characters, or cut to it.",
             "RPAD('ab', 5, 'xy')", "abxyx", bind=_text_fn("int", "text"), evaluate=_text_eval, group=S),
    Function("LEFT", "LEFT(s, n BIGINT) -> VARCHAR",
             "The first n characters (negative n: all but the last -n).", "LEFT('velostream', 4)", "velo",
             bind=_text_fn("int"), evaluate=_text_eval, group=S),
    Function("RIGHT", "RIGHT(s, n BIGINT) -> VARCHAR",
             "The last n characters (negative n: all but the first -n).", "RIGHT('velostream', 6)",
             "stream", bind=_text_fn("int"), evaluate=_text_eval, group=S),
    Function("STRPOS", "STRPOS(s, needle VARCHAR) -> BIGINT",
             "Position (1-based, in characters) of the first needle in s; 0 when absent.",
             "STRPOS('héllo', 'l')", 3, bind=_text_fn("text", returns=INT64),
             evaluate=_text_eval, group=S, aliases=("INSTR",)),
    Function("REVERSE", "REVERSE(s) -> VARCHAR", "The characters in reverse order.", "REVERSE('abc')",
             "cba", bind=_text_fn(), evaluate=_text_eval, group=S),
    Function("CONTAINS", "CONTAINS(s, part VARCHAR) -> BOOLEAN", "Whether part occurs in s.",
             "CONTAINS('velostream', 'ost')", True, bind=_text_fn("text", returns=BOOL),
             evaluate=_text_eval, group=S),
    Function("REPEAT", "REPEAT(s, n INTEGER) -> VARCHAR", "s written n times ('' for n <= 0).",
             "REPEAT('ab', 3)", "ababab", bind=_text_fn("int"), evaluate=_text_eval, group=S),
    Function("ASCII", "ASCII(s) -> BIGINT", "The code point of the first character (0 for '').",
             "ASCII('é')", 233, bind=_text_fn(returns=INT64), evaluate=_text_eval, group=S),
    Function("STARTS_WITH", "STARTS_WITH(s, prefix VARCHAR) -> BOOLEAN", "Whether s begins with prefix.",
             "STARTS_WITH('velostream', 'velo')", True, bind=_text_fn("text", returns=BOOL),
             evaluate=_text_eval, group=S,
             aliases=("PREFIX",)),
    Function("ENDS_WITH", "ENDS_WITH(s, suffix VARCHAR) -> BOOLEAN", "Whether s ends with suffix.",
             "ENDS_WITH('velostream', 'eam')", True, bind=_text_fn("text", returns=BOOL),
             evaluate=_text_eval, group=S,
             aliases=("SUFFIX",)),
    Function("CONCAT_WS", "CONCAT_WS(separator, a, b, ...) -> VARCHAR",
             "The arguments as text joined by separator, NULLs skipped (NULL separator: NULL).",
             "CONCAT_WS('-', 'a', NULL, 'b')", "a-b", bind=_bind_concat_ws, evaluate=_eval_concat_ws,
             group=S),
    Function("REGEXP_MATCHES", "REGEXP_MATCHES(s, pattern [, options]) -> BOOLEAN",
             "Whether the RE2 pattern matches anywhere in s (REGEXP is Flink SQL's spelling). "
             "Options (all REGEXP functions): 'i' "
             "ignore case, 'c' respect case, 's' '.' matches a line break, 'm' / 'n' / 'p' it does "
             "not (the default).",
             "REGEXP_MATCHES('order-42', '[0-9]+$')", True,
             bind=_text_fn("text", "text", returns=BOOL, lo=2, defaults=(BConst(STRING, ""),)),
             evaluate=_text_eval, group=S,
             aliases=("REGEXP_LIKE", "REGEXP")),
    Function("REGEXP_REPLACE", "REGEXP_REPLACE(s, pattern, replacement [, options]) -> VARCHAR",
             "The first match (every match with option 'g') replaced; \\1 names a group.",
             "REGEXP_REPLACE('a1b22', '[0-9]+', '#', 'g')", "a#b#",
             bind=_text_fn("text", "text", "text", lo=3, defaults=(BConst(STRING, ""),)),
             evaluate=_text_eval, group=S),
    Function("REGEXP_EXTRACT", "REGEXP_EXTRACT(s, pattern [, group [, options]]) -> VARCHAR",
             "Group (default 0: the whole match) of the first match; '' when nothing matches.",
             "REGEXP_EXTRACT('id=42;', 'id=([0-9]+)', 1)", "42",
             bind=_text_fn("text", "int", "text", lo=2, defaults=(BConst(INT64, 0), BConst(STRING, ""))),
             evaluate=_text_eval, group=S),
    Function("SPLIT_INDEX", "SPLIT_INDEX(s, separator VARCHAR, index BIGINT) -> VARCHAR",
             "Flink SQL's: part index (0-based) of s split at separator (at whitespace when the "
             "separator is ''); NULL for a negative index, one past the last part, and for ''.",
             "SPLIT_INDEX('a,b,c', ',', 1)", "b", bind=_text_fn("text", "int"),
             evaluate=_text_eval, group=S),
    Function("LOCATE", "LOCATE(needle VARCHAR, s [, from BIGINT]) -> BIGINT",
             "Flink SQL's: the position (1-based, in characters) of the first needle in s at or "
             "after character from (default 1); 0 when absent; 1 for an empty needle.",
             "LOCATE('l', 'héllo', 4)", 4, bind=_bind_locate, evaluate=_text_eval, group=S),
    Function("INITCAP", "INITCAP(s) -> VARCHAR",
             "Flink SQL's: each word (a run of ASCII letters and digits) with its first letter in "
             "upper case and its other letters in lower case; other characters unchanged.",
             "INITCAP('hello wORLD 2nd-tIME')", "Hello World 2nd-Time", bind=_text_fn(),
             evaluate=_text_eval, group=S),
    Function("TRANSLATE", "TRANSLATE(s, from VARCHAR, to VARCHAR) -> VARCHAR",
             "Each character of from in s replaced by the character at its place in to, or "
             "removed when to is shorter.", "TRANSLATE('12-34', '-3', '.')", "12.4",
             bind=_text_fn("text", "text"), evaluate=_text_eval, group=S),
    Function("CHR", "CHR(code BIGINT) -> VARCHAR",
             "The character of a Unicode code point (one that is no character fails its row).",
             "CHR(233)", "é", bind=_bind_chr, evaluate=_eval_chr, group=S),
    Function("UUID", "UUID() -> VARCHAR",
             "A random (version 4) UUID as text, a new one for every row.",
             "LENGTH(UUID())", 36, bind=_bind_no_args("UUID", STRING), evaluate=_eval_uuid,
             group=S, aliases=("GEN_RANDOM_UUID",)),
    # -- date and time
    Function("DATE_TRUNC", "DATE_TRUNC(unit VARCHAR, ts TIMESTAMP) -> TIMESTAMP",
             "ts truncated to the unit: millennium, century, decade, year, quarter, month, week "
             "(Monday), day, hour, minute, second, millisecond.",
             "STRFTIME(DATE_TRUNC('hour', CAST('2024-02-29 13:45:12' AS TIMESTAMP)), '%Y-%m-%d %H:%M')",
             "2024-02-29 13:00", bind=_bind_date_trunc, evaluate=_eval_date_trunc, group=T,
             aliases=("DATETRUNC",)),
    Function("DATE_PART", "DATE_PART(part VARCHAR, ts TIMESTAMP) -> BIGINT (epoch, julian: DOUBLE)",
             "A field of ts: year, quarter, month, day, hour, minute, second, millisecond, "
             "microsecond, dow (Sunday 0), isodow, doy, week (ISO), isoyear, yearweek, decade, "
             "century, millennium, era, epoch (seconds), julian.",
             "DATE_PART('doy', CAST('2024-12-31' AS TIMESTAMP))", 366, bind=_bind_date_part,
             evaluate=_eval_date_part, group=T, aliases=("EXTRACT", "DATEPART")),
    Function("STRFTIME", "STRFTIME(ts TIMESTAMP, format VARCHAR) -> VARCHAR",
             "ts as text: %Y %y %m %d %H %I %M %S %p %j, %g / %f / %n (milli-, micro-, nanoseconds), "
             "%a %A %b %B %h, %u %w %U %W %V %G, %z %Z, %x %X %c, %%; %-d etc. without padding.",
             "STRFTIME(CAST('2024-02-29 08:05:09.250' AS TIMESTAMP), '%a %-d %b %Y %H:%M:%S.%g')",
             "Thu 29 Feb 2024 08:05:09.250", bind=_bind_strftime, evaluate=_eval_strftime, group=T),
    Function("DATE_FORMAT", "DATE_FORMAT(ts TIMESTAMP, format VARCHAR) -> VARCHAR",
             "STRFTIME; a format without % is Flink SQL's Java pattern (yyyy yy MM M MMM MMMM dd d "
             "HH H hh h mm m ss s SSS a EEE EEEE DDD D, 'quoted text').",
             "DATE_FORMAT(CAST('2024-02-29 08:05:09.250' AS TIMESTAMP), 'yyyy-MM-dd HH:mm:ss.SSS')",
             "2024-02-29 08:05:09.250", bind=_bind_strftime, evaluate=_eval_strftime, group=T),
    Function("STRPTIME", "STRPTIME(text VARCHAR, format VARCHAR) -> TIMESTAMP",
             "Reads text in the format (STRFTIME's specifiers; %g / %f / %n only at the end). Text "
             "that does not match fails its row (TRY_STRPTIME: NULL).",
             "EPOCH_MS(STRPTIME('29/02/2024 10:00', '%d/%m/%Y %H:%M'))", 1709200800000,
             bind=_bind_strptime, evaluate=_eval_strptime, group=T),
    Function("TRY_STRPTIME", "TRY_STRPTIME(text VARCHAR, format VARCHAR) -> TIMESTAMP",
             "As STRPTIME, NULL for text that does not match.",
             "TRY_STRPTIME('not a date', '%Y-%m-%d')", None,
             bind=_bind_strptime, evaluate=_eval_strptime, group=T),
    Function("TO_TIMESTAMP", "TO_TIMESTAMP(seconds DOUBLE) or TO_TIMESTAMP(text [, pattern]) -> TIMESTAMP",
             "The time the given seconds after 1970-01-01 00:00 UTC (negative: before). Text (Flink "
             "SQL's form) is read as CAST(text AS TIMESTAMP), or with a pattern (a Java one as "
             "DATE_FORMAT's, or STRPTIME's %-specifiers) as STRPTIME: text that does not match "
             "fails its row.",
             "EPOCH_MS(TO_TIMESTAMP(-1.5))", -1500, bind=_bind_to_timestamp, evaluate=_eval_to_timestamp,
             group=T, aliases=("FROM_UNIXTIME",)),
    Function("EPOCH_MS", "EPOCH_MS(ts TIMESTAMP) -> BIGINT; EPOCH_MS(ms BIGINT) -> TIMESTAMP",
             "Milliseconds since 1970-01-01 UTC, or the time of such a count.",
             "EPOCH_MS(CAST('1970-01-01 00:00:01' AS TIMESTAMP))", 1000, bind=_bind_epoch_ms,
             evaluate=_eval_retype, group=T),
    Function("EPOCH", "EPOCH(ts TIMESTAMP) -> DOUBLE", "Seconds since 1970-01-01 UTC, with fraction.",
             "EPOCH(CAST('1970-01-01 00:00:01.5' AS TIMESTAMP))", 1.5, bind=_bind_epoch, group=T),
    Function("UNIX_TIMESTAMP", "UNIX_TIMESTAMP([ts TIMESTAMP]) -> BIGINT",
             "Whole seconds since 1970-01-01 UTC (rounded down) of ts, or of now.",
             "UNIX_TIMESTAMP(CAST('1970-01-01 00:00:01.5' AS TIMESTAMP))", 1, bind=_bind_unix_timestamp,
             evaluate=_eval_unix_timestamp, group=T),
    Function("DATEDIFF", "DATEDIFF(unit VARCHAR, start TIMESTAMP, end TIMESTAMP) -> BIGINT",
             "How many unit boundaries lie between start and end (week: whole weeks between the "
             "dates); negative when end is before start.",
             "DATEDIFF('month', CAST('2024-01-31' AS TIMESTAMP), CAST('2024-02-01' AS TIMESTAMP))", 1,
             bind=_bind_datediff, evaluate=_eval_datediff, group=T, aliases=("DATE_DIFF",)),
    Function("DATE_SUB", "DATE_SUB(unit VARCHAR, start TIMESTAMP, end TIMESTAMP) -> BIGINT",
             "How many whole units elapsed from start to end, toward zero (months: calendar "
             "months, end on the last day of its month counting as any later day of start).",
             "DATE_SUB('month', CAST('2024-01-31' AS TIMESTAMP), CAST('2024-02-29' AS TIMESTAMP))", 1,
             bind=_bind_date_sub, evaluate=_eval_datediff, group=T, aliases=("DATESUB",)),
    Function("TIMESTAMPDIFF", "TIMESTAMPDIFF(unit, start TIMESTAMP, end TIMESTAMP) -> BIGINT",
             "Flink SQL's: DATE_SUB, with the unit a word (SECOND, MINUTE, HOUR, DAY, MONTH, ...) "
             "or text.",
             "TIMESTAMPDIFF(HOUR, CAST('2024-01-01 10:30' AS TIMESTAMP), CAST('2024-01-01 12:29' AS TIMESTAMP))",
             1, bind=_bind_date_sub, evaluate=_eval_datediff, group=T),
    Function("TIMESTAMPADD", "TIMESTAMPADD(unit, n BIGINT, ts TIMESTAMP) -> TIMESTAMP",
             "Flink SQL's: ts moved by n units (SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, YEAR, ...; "
             "a word or text); months by the calendar, a day past the new month's end becoming "
             "its last day.",
             "TIMESTAMPADD(MONTH, 1, CAST('2024-01-31 10:00' AS TIMESTAMP))", 1709200800000,
             bind=_bind_timestampadd, evaluate=_eval_timestampadd, group=T),
    Function("YEAR", "YEAR(ts TIMESTAMP) -> BIGINT",
             "The year. DATE_PART('year', ts).",
             "YEAR(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 2024, bind=_bind_date_part_of("year"), group=T),
    Function("QUARTER", "QUARTER(ts TIMESTAMP) -> BIGINT",
             "The quarter of the year, 1 to 4. DATE_PART('quarter', ts).",
             "QUARTER(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 1, bind=_bind_date_part_of("quarter"), group=T),
    Function("MONTH", "MONTH(ts TIMESTAMP) -> BIGINT",
             "The month, 1 to 12. DATE_PART('month', ts).",
             "MONTH(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 2, bind=_bind_date_part_of("month"), group=T),
    Function("WEEK", "WEEK(ts TIMESTAMP) -> BIGINT",
             "The ISO week of the year, 1 to 53 (weeks start on Monday; week 1 holds the year's first Thursday). DATE_PART('week', ts).",
             "WEEK(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 9, bind=_bind_date_part_of("week"), group=T, aliases=('WEEKOFYEAR',)),
    Function("DAY", "DAY(ts TIMESTAMP) -> BIGINT",
             "The day of the month, 1 to 31. DATE_PART('day', ts).",
             "DAY(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 29, bind=_bind_date_part_of("day"), group=T, aliases=('DAYOFMONTH',)),
    Function("DAYOFWEEK", "DAYOFWEEK(ts TIMESTAMP) -> BIGINT",
             "The day of the week, Sunday 0 to Saturday 6, as DuckDB (Flink SQL's DAYOFWEEK counts Sunday 1 to Saturday 7: add 1). DATE_PART('dow', ts).",
             "DAYOFWEEK(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 4, bind=_bind_date_part_of("dow"), group=T, aliases=('WEEKDAY',)),
    Function("ISODOW", "ISODOW(ts TIMESTAMP) -> BIGINT",
             "The ISO day of the week, Monday 1 to Sunday 7. DATE_PART('isodow', ts).",
             "ISODOW(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 4, bind=_bind_date_part_of("isodow"), group=T),
    Function("DAYOFYEAR", "DAYOFYEAR(ts TIMESTAMP) -> BIGINT",
             "The day of the year, 1 to 366. DATE_PART('doy', ts).",
             "DAYOFYEAR(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 60, bind=_bind_date_part_of("doy"), group=T),
    Function("HOUR", "HOUR(ts TIMESTAMP) -> BIGINT",
             "The hour, 0 to 23. DATE_PART('hour', ts).",
             "HOUR(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 13, bind=_bind_date_part_of("hour"), group=T),
    Function("MINUTE", "MINUTE(ts TIMESTAMP) -> BIGINT",
             "The minute, 0 to 59. DATE_PART('minute', ts).",
             "MINUTE(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 45, bind=_bind_date_part_of("minute"), group=T),
    Function("SECOND", "SECOND(ts TIMESTAMP) -> BIGINT",
             "The whole seconds, 0 to 59. DATE_PART('second', ts).",
             "SECOND(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 12, bind=_bind_date_part_of("second"), group=T),
    Function("MILLISECOND", "MILLISECOND(ts TIMESTAMP) -> BIGINT",
             "The seconds and milliseconds in milliseconds, 0 to 59999 (DuckDB's: 12.250 seconds is 12250). DATE_PART('millisecond', ts).",
             "MILLISECOND(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 12250, bind=_bind_date_part_of("millisecond"), group=T),
    Function("MICROSECOND", "MICROSECOND(ts TIMESTAMP) -> BIGINT",
             "The seconds and their fraction in microseconds, 0 to 59999999. DATE_PART('microsecond', ts).",
             "MICROSECOND(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 12250000, bind=_bind_date_part_of("microsecond"), group=T),
    Function("ISOYEAR", "ISOYEAR(ts TIMESTAMP) -> BIGINT",
             "The year of the ISO week. DATE_PART('isoyear', ts).",
             "ISOYEAR(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 2024, bind=_bind_date_part_of("isoyear"), group=T),
    Function("YEARWEEK", "YEARWEEK(ts TIMESTAMP) -> BIGINT",
             "The ISO year times 100 plus the ISO week. DATE_PART('yearweek', ts).",
             "YEARWEEK(CAST('2024-02-29 13:45:12.250' AS TIMESTAMP))", 202409, bind=_bind_date_part_of("yearweek"), group=T),
    Function("TO_TIMESTAMP_LTZ", "TO_TIMESTAMP_LTZ(n [, precision INTEGER]) -> TIMESTAMP",
             "Flink SQL's: the time n epoch seconds (precision 0) or milliseconds (3, the "
             "default) after 1970-01-01 00:00 UTC; a fraction of a millisecond is cut off, and "
             "a time outside the years 0 to 9999 is NULL (as in Flink). Text is read as "
             "TO_TIMESTAMP reads it. velostream's TIMESTAMP is UTC, so this is Flink's "
             "TIMESTAMP_LTZ in a UTC session.",
             "EPOCH_MS(TO_TIMESTAMP_LTZ(1709200800, 0))", 1709200800000,
             bind=_bind_to_timestamp_ltz, evaluate=_eval_to_timestamp_ltz, group=T),
    Function("NOW", "NOW() -> TIMESTAMP",
             "Processing time: the wall clock when the batch is evaluated (one value per batch).",
             "NOW() > CAST('2024-01-01' AS TIMESTAMP)", True, bind=_bind_now, evaluate=_eval_now,
             group=T, aliases=("CURRENT_TIMESTAMP", "GET_CURRENT_TIMESTAMP")),
    Function("CURRENT_DATE", "CURRENT_DATE() -> DATE",
             "Processing time's UTC date (a bare `CURRENT_DATE` or `CURRENT_DATE()`), one value "
             "per batch as NOW().",
             "CURRENT_DATE() >= DATE '2024-01-01'", True, bind=_bind_no_args("CURRENT_DATE", DATE),
             evaluate=_eval_current_date, group=T, aliases=("TODAY",)),
    # -- JSON
    Function("JSON_EXTRACT", "JSON_EXTRACT(json VARCHAR, path VARCHAR) -> VARCHAR (JSON text)",
             "The JSON at path ('$.a.b[0]', '$[#-1]', '/a/0'), as JSON text; NULL when absent or "
             "when json is not valid JSON.", """JSON_EXTRACT('{"a": {"b": [1, "x"]}}', '$.a.b[1]')""",
             '"x"', bind=_text_fn("text"), evaluate=_json_eval, group=J, aliases=("JSON_EXTRACT_PATH",)),
    Function("JSON_VALUE", "JSON_VALUE(json VARCHAR, path VARCHAR) -> VARCHAR",
             "The scalar at path as JSON text (a string keeps its quotes); NULL for an object, an "
             "array, null, a missing path or invalid JSON.",
             """JSON_VALUE('{"user": {"id": 42}}', '$.user.id')""", "42", bind=_text_fn("text"),
             evaluate=_json_eval, group=J),
    Function("JSON_EXTRACT_STRING", "JSON_EXTRACT_STRING(json VARCHAR, path VARCHAR) -> VARCHAR",
             "The JSON at path as text: a string without quotes, anything else as JSON text.",
             """JSON_EXTRACT_STRING('{"user": {"name": "ana"}}', '$.user.name')""", "ana",
             bind=_text_fn("text"), evaluate=_json_eval, group=J,
             aliases=("JSON_EXTRACT_PATH_TEXT",)),
    Function("JSON_EXISTS", "JSON_EXISTS(json VARCHAR, path VARCHAR) -> BOOLEAN",
             "Whether path exists in json (NULL for invalid JSON).",
             """JSON_EXISTS('{"a": null}', '$.a')""", True, bind=_text_fn("text", returns=BOOL),
             evaluate=_json_eval, group=J),
]

# what each name (and alias) refers to
TABLE: dict[str, Function] = {}
for _f in FUNCTIONS:
    for _name in (_f.name,) + _f.aliases:
        TABLE[_name] = _f
# an alias binds as its function (the BCall and the per-function checks use the main name)
_CANONICAL = {alias: f.name for f in FUNCTIONS for alias in f.aliases}

# evaluation: each function's binder produces a BCall named after the function (EPOCH is
# bound as DATE_PART('epoch', ...))
EVALUATORS: dict[str, Callable] = {f.name: f.evaluate for f in FUNCTIONS if f.evaluate is not None}
assert set(_KERNELS) <= set(EVALUATORS), set(_KERNELS) - set(EVALUATORS)


def bind_call(name: str, args: tuple, sql: str, pos, strings) -> Optional[Bound]:
    """Bind a call of a function of the table; None when ``expressions`` binds it."""
    f = TABLE[name]
    if f.bind is None:
        return None
    return f.bind(Call(name, args, sql, pos, strings))


X._OPS.update(EVALUATORS)
X.FUNCTIONS = TABLE  # the same dict: functions vs.udf adds are seen by the binder too
X.BIND_CALL[:] = [bind_call]


# ------------------------------------------------------------------------------ reference page

_GROUPS = ("Date and time", "Text", "JSON", "Numbers", "Conditional", "Other")


def reference_markdown() -> str:
    """docs/FUNCTIONS.md, generated from the table (tests/test_functions.py keeps them equal)."""
    out = [
        "# Scalar functions",
        "",
        "Every scalar function velostream knows, generated from the function table",
        "(`velostream/exec/functions.py`). The reference for their meaning is DuckDB's, times in UTC;",
        "the differences are listed at the end. Aggregates are in [SQL.md](SQL.md).",
        "",
        "Each example is run by the tests, through the helper below (one row in, one value out):",
        "",
        "```python",
        ">>> import velostream as vs",
        ">>> def show(expr):",
        "...     return vs.query(f\"SELECT {expr} AS r FROM t\", {\"t\": {\"x\": [1]}}).to_pylist()[0][\"r\"]",
        "```",
        "",
        "A TIMESTAMP is epoch milliseconds in results; `STRFTIME` shows it as text. A window's",
        "bounds (`_WINDOW_START`, `_WINDOW_END`, Flink's `window_start`, `window_end`, `window_time`)",
        "are BIGINT columns that the date and time functions take as times; another BIGINT of epoch",
        "milliseconds becomes a TIMESTAMP with `EPOCH_MS(x)`.",
        "",
    ]
    for group in _GROUPS:
        out += [f"## {group}", ""]
        for f in FUNCTIONS:
            if f.group != group:
                continue
            aka = f" (also {', '.join(f.aliases)})" if f.aliases else ""
            call = f"show({f.example!r})" if f.result is not None else f"print(show({f.example!r}))"
            out += [f"### {f.name}{aka}", "", f"`{f.signature}`", "", f.summary, "", "```python",
                    f">>> {call}", repr(f.result), "```", ""]
    out += [
        "## Differences from DuckDB",
        "",
        "- Text that is not valid JSON makes the JSON functions NULL (DuckDB raises an error).",
        "  JSON is read strictly (RFC 8259): DuckDB also reads `NaN`, `Infinity` and trailing",
        "  commas. A key given twice in one object counts with its first value, as in DuckDB.",
        "- JSON paths: `$.key`, `$.\"quoted key\"`, `$[n]`, `$[#-n]`, JSON pointers `/a/0` and a",
        "  bare key; the wildcard `*` is not supported.",
        "- The pattern, format, unit and path arguments are constants (a pattern may also be a",
        "  column for REPLACE, SPLIT_PART, LPAD, RPAD, LEFT, RIGHT, STRPOS, STARTS_WITH, ENDS_WITH and",
        "  the REGEXP functions; the rows are then grouped by its value).",
        "- A function that takes a TIMESTAMP takes a DATE as its midnight (UTC) and gives what DuckDB",
        "  gives for the DATE: `YEAR(DATE '2024-03-05')` is 2024, `DATE_TRUNC` a TIMESTAMP,",
        "  `STRFTIME` the time as 00:00:00.",
        "- TIMESTAMPs have millisecond precision: %f and %n print the milliseconds followed by zeros,",
        "  STRPTIME drops digits past the milliseconds, TO_TIMESTAMP rounds to the nearest millisecond.",
        "- STRPTIME is more lenient than DuckDB in two ways: %b and %B both read a month's short or",
        "  full name, and a format's trailing whitespace matches none.",
        "- UNIX_TIMESTAMP and FROM_UNIXTIME are not DuckDB functions: they are",
        "  `CAST(FLOOR(EPOCH(ts)) AS BIGINT)` and TO_TIMESTAMP.",
        "- TRIM, LTRIM and RTRIM remove spaces only (as DuckDB), not tabs or line breaks.",
        "- REVERSE reverses characters (code points), not grapheme clusters.",
        "- The standard spellings are read as DuckDB reads them: `EXTRACT(part FROM ts)` is",
        "  DATE_PART, `POSITION(a IN b)` is STRPOS(b, a), a bare `CURRENT_TIMESTAMP` is NOW(),",
        "  a bare `CURRENT_DATE` is CURRENT_DATE(),",
        "  `j -> path` is JSON_EXTRACT and `j ->> path` JSON_EXTRACT_STRING.",
        "  `TRIM([BOTH | LEADING | TRAILING] [characters] FROM s)` is TRIM, LTRIM or RTRIM(s,",
        "  characters). `TIMESTAMP '2024-01-01 10:00:00'` is `CAST('2024-01-01 10:00:00' AS",
        "  TIMESTAMP)`, read when the query is planned: text that is no timestamp is an error there.",
        "  `DATE '2024-03-05'` is a DATE; `TIME '...'` is an error: velostream has no TIME type.",
        "- Flink SQL's functions (TO_TIMESTAMP_LTZ, SPLIT_INDEX, LOCATE, INITCAP, REGEXP, DATE_FORMAT,",
        "  TIMESTAMPADD, TIMESTAMPDIFF) are not DuckDB's: they follow Flink. REGEXP takes RE2",
        "  patterns (as REGEXP_MATCHES), not Java ones. DAYOFWEEK is DuckDB's (Sunday 0); Flink's",
        "  counts Sunday as 1.",
        "- TYPEOF names velostream's types: an integer constant is a BIGINT (DuckDB: INTEGER), a",
        "  decimal constant a DOUBLE, an untyped NULL `NULL` (DuckDB: `\"NULL\"`).",
        "",
        "## Python functions",
        "",
        "`vs.udf(name, fn, returns=\"DOUBLE\")` registers a scalar function written in Python. It is",
        "called once per batch with one Arrow array per argument (text as strings, TIMESTAMP as",
        "`timestamp[ms]`, DATE as `date32`, constants repeated) and returns an array of the same length (or anything",
        "`pyarrow.array` takes), cast to `returns`. A job file loads the modules that register its",
        "functions with `'udf.modules' = 'my_pkg.my_functions'`. An exception inside the function is",
        "a bad record: the batch's rows are then tried one by one to find the ones it fails on, which",
        "go to the job's failure strategy with the function's name (`vs.query` raises",
        "`UserFunctionError`); the other rows keep their values. The function adds about 1.5 ns per",
        "row over calling it on the whole array directly (`python bench/udf_overhead.py`).",
        "",
        "```python",
        ">>> import pyarrow.compute as pc",
        ">>> _ = vs.udf(\"double_it\", lambda x: pc.multiply(x, 2), returns=\"BIGINT\")",
        ">>> vs.query(\"SELECT double_it(x) AS y FROM t\", {\"t\": {\"x\": [1, 2, None]}}).to_pylist()",
        "[{'y': 2}, {'y': 4}, {'y': None}]",
        "```",
        "",
        "## Python aggregates",
        "",
        "`vs.udaf(name, cls, returns=\"DOUBLE\")` registers an aggregate function written in Python,",
        "called by name wherever an aggregate may be: GROUP BY, every window kind, a global aggregate,",
        "EMIT CHANGES and EMIT FINAL, with `FILTER (WHERE ...)`. `cls` (instantiated without",
        "arguments; an object with the methods also works) gives:",
        "",
        "- `init() -> state`: the state of a group that has no rows yet;",
        "- `update(state, values) -> state`: `values` is an Arrow array of one group's input rows of",
        "  a batch, in arrival order (text as strings, TIMESTAMP as `timestamp[ms]`, DATE as `date32`, DECIMAL as",
        "  decimal128). It is called once per group per batch, never once per row. As for SQL's",
        "  aggregates, rows whose argument is NULL, or that fail the FILTER, are not input, so",
        "  `values` holds no NULL. With several arguments, `update(state, a, b, ...)` gets one",
        "  array per argument, rows where any of them is NULL left out;",
        "- `merge(a, b) -> state`: two partial states of one group as one (a global aggregate's",
        "  partitions, merging sessions); it may change and return `a`;",
        "- `finish(state) -> value`: the result, cast to `returns`; `None` is NULL. A group whose",
        "  rows were all NULL gets `finish(init())`;",
        "- optionally `update_running(state, values) -> (state, results)`: `update` that also gives",
        "  the group's value after each of the rows (`results`: as many values as rows, an Arrow",
        "  array, a numpy array or a list).",
        "",
        "Under EMIT CHANGES each input row emits its group's value after it: with",
        "`update_running` that is one call per group per batch; without it `update` and `finish`",
        "run once per row (a sum: 5 to 15 microseconds per row, against 0.08 to 0.25 with",
        "`update_running`, at 20 groups). The state must pickle: a snapshot (`Engine.snapshot()`, a",
        "job's checkpoint) holds it pickled. A job file loads the modules that register aggregates",
        "with `'udf.modules'`, as for scalar functions.",
        "",
        "Before a batch changes any state, `update` also runs once on a fresh `init()` state with",
        "the batch's whole input: if it raises, the rows it raises on alone are bad records, sent",
        "to the job's failure strategy with the function's name (`vs.query` raises",
        "`UserFunctionError`), and leave no trace in any aggregate. An exception no row causes",
        "alone (in `init`, `merge` or `finish`, or from the accumulated state) fails the job with",
        "an error naming the function.",
        "",
        "Cost: one Python call per group per batch. A sum through `pyarrow.compute` costs 8 to 20",
        "ns per row more than the built-in SUM with 20 groups, and 0.7 to 1.5 microseconds per row",
        "with 10,000 groups in 64 K-row batches (a call per group: 5 to 9 microseconds each,",
        "mostly the sum's own), at 2 M rows on 2 shared cores (`python bench/udf_overhead.py",
        "udaf`).",
        "",
        "```python",
        ">>> import numpy as np",
        ">>> class GeoMean:",
        "...     def init(self): return [0.0, 0]",
        "...     def update(self, s, x): return [s[0] + float(np.log(x).sum()), s[1] + len(x)]",
        "...     def merge(self, a, b): return [a[0] + b[0], a[1] + b[1]]",
        "...     def finish(self, s): return float(np.exp(s[0] / s[1])) if s[1] else None",
        ">>> _ = vs.udaf(\"geo_mean\", GeoMean)",
        ">>> vs.query(\"SELECT k, geo_mean(x) AS g FROM t GROUP BY k EMIT FINAL\",",
        "...          {\"t\": {\"k\": [\"a\", \"a\", \"b\"], \"x\": [2.0, 8.0, None]}}).to_pylist()",
        "[{'k': 'a', 'g': 4.0}, {'k': 'b', 'g': None}]",
        "```",
        "",
    ]
    return "\n".join(out)
