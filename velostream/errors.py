"""Errors users see. ``SqlError`` points at the line and column of the offending SQL text."""
from __future__ import annotations

import difflib
import re
from typing import Iterable, Optional


class VelostreamError(Exception):
    """Base class of every error velostream raises on purpose."""


class SqlError(VelostreamError, ValueError):
    """A SQL text that cannot be parsed or planned.

    ``line`` and ``column`` are 1-based. ``str(err)`` shows the message, the offending line and a
    caret under the column, e.g.::

        expected FROM, found 'FRM' at line 1, column 13
          SELECT a, b FRM t
                      ^
    """

    def __init__(self, message: str, sql: Optional[str] = None, line: int = 1, column: int = 1):
        self.message = message
        # None: no statement to show (a property error); "" is a text, an empty one
        self._has_text = sql is not None
        self.sql = "" if sql is None else sql
        self.line = line
        self.column = column
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.message} at line {self.line}, column {self.column}"
        # lines end where the lexer ends them (\r\n, \r, \n): str.splitlines() also breaks at
        # form feed, U+2028 and others, which SQL reads as whitespace (the caret would be lost)
        lines = re.split(r"\r\n|\r|\n", self.sql)
        if not self._has_text or not (1 <= self.line <= len(lines)):
            return head
        text = lines[self.line - 1]
        at = self.column - 1
        if len(text) > 160:  # a generated line of a megabyte: show the part around the column
            start = max(0, min(at - 80, len(text) - 160))
            text = ("..." if start else "") + text[start:start + 160] + \
                ("..." if start + 160 < len(text) else "")
            at = at - start + (3 if start else 0)
        caret = " " * at + "^"
        return f"{head}\n  {text}\n  {caret}"

    @classmethod
    def at(cls, sql: str, pos: Optional[tuple[int, int]], message: str) -> "SqlError":
        line, column = pos if pos else (1, 1)
        return cls(message, sql, line, column)


class UnsupportedError(SqlError):
    """Valid SQL that this version of the engine does not execute yet (never a silent wrong answer)."""


class RowError(VelostreamError):
    """Evaluating some rows of a batch failed (``rows``: a bool mask of them, or None when no row
    alone caused it). A job told to go on sends just those rows to the dead-letter output as bad
    records (docs/SQL.md §7); elsewhere the error is raised."""

    def __init__(self, message: str, rows=None):
        super().__init__(message)
        self.rows = rows


class UserFunctionError(RowError):
    """A Python function registered with ``vs.udf`` raised on some rows (named in the message)."""


class OutOfRangeError(RowError, OverflowError):
    """A value does not fit its type: BIGINT ``+ - *``, unary minus, ABS or SUM that overflow int64,
    or a CAST out of range (DuckDB's "Out of Range Error"; docs/SQL.md §2). Never a wrapped value.

    ``rows``, when known, is a bool mask over the rows of the batch being evaluated marking the
    rows that failed (only rows whose operands were not NULL), so a job under LogAndContinue can
    send just those rows to the dead-letter output. It is None for an error that no row alone
    caused (a SUM whose total leaves int64).

    >>> import velostream as vs
    >>> vs.query("SELECT x + x AS y FROM t", {"t": {"x": [2**62]}})
    Traceback (most recent call last):
    ...
    velostream.errors.OutOfRangeError: Out of Range Error: Overflow in addition of INT64 (4611686018427387904 + 4611686018427387904)
    """


class SchemaMismatch(VelostreamError, TypeError):
    """A batch whose columns do not fit its source's fixed schema (docs/SQL.md, "Types at the
    boundary and schema drift"); ``column``, ``fixed`` and ``got`` say which column and which
    two Arrow types (``got`` None: the column is missing). Nothing of the batch was applied."""

    def __init__(self, source: str, column: str, fixed, got, why: str = ""):
        self.source, self.column, self.fixed, self.got = source, column, fixed, got
        if got is None:
            msg = f"source '{source}': column '{column}' ({fixed}) is missing from this batch"
        else:
            msg = (f"source '{source}': column '{column}' was fixed as {fixed} by the first batch"
                   f" and this batch has {got}" + (f" ({why})" if why else ""))
        super().__init__(msg + "; the batch is rejected, nothing of it was applied")


class JobError(VelostreamError, RuntimeError):
    """A job failed at run time (bad records under FailBatch, a failing sink, a crashed partition)."""


class DroppedRowsWarning(UserWarning):
    """``vs.query`` set rows aside instead of putting them into the result: rows without an event
    time, values that do not fit (a uint64 above 2^63-1), late rows (docs/SQL.md, "Late data").
    One warning per call says how many and why; the rows themselves are in the result's
    ``dead_letters`` and the counts in its ``stats`` (docs/PYTHON_API.md, "vs.query").
    ``warnings.simplefilter("ignore", vs.DroppedRowsWarning)`` silences it,
    ``"error"`` makes it raise."""


def nearest(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The closest valid name to ``name`` (case-insensitive), for 'did you mean' hints."""
    cands = list(candidates)
    lowered = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[hits[0]] if hits else None


class ConnectError(VelostreamError):
    """A broker (or other service) a job needs could not be reached, after retrying."""
