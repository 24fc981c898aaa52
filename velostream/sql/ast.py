"""The typed syntax tree the parser produces and the planner consumes (docs/SQL.md §1, §4, §6).

Nodes are frozen dataclasses, so they hash and compare structurally: the planner matches a SELECT
expression against a GROUP BY expression with ``==``. ``pos`` is the (line, column) of the node's
first token, 1-based; it is excluded from comparison so that equal expressions at different places
compare equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional, Union

Pos = Optional[tuple[int, int]]


def _pos():
    return field(default=None, compare=False, repr=False)


def _node(cls):
    """``dataclass(frozen=True)`` with the repr it would generate made here from shared code:
    dataclass compiles each method it generates from source, and creating the node classes is
    a part of importing velostream (at every ``velostream run``). ``==`` and the hash stay
    dataclass's own: the planner compares and hashes nodes, and compiled per class they are
    the fastest."""
    cls = dataclass(frozen=True, repr=False)(cls)
    shown = tuple(f.name for f in fields(cls) if f.repr)

    def __repr__(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{self.__class__.__qualname__}({inner})"

    __repr__.__qualname__ = f"{cls.__qualname__}.__repr__"
    cls.__repr__ = __repr__
    return cls


# ----------------------------------------------------------------------------------------- types
@_node
class TypeName:
    """A SQL type in CAST: name is upper case (INTEGER, BIGINT, DOUBLE, FLOAT, DECIMAL, VARCHAR,
    STRING, BOOLEAN, TIMESTAMP); params are DECIMAL's (precision, scale), else ()."""
    name: str
    params: tuple[int, ...] = ()


# ----------------------------------------------------------------------------------- expressions
@_node
class Column:
    """A column reference. ``name`` is lower-cased unless ``quoted`` (double quotes keep case).
    System columns keep their canonical upper-case names: _TIMESTAMP, _PARTITION, _OFFSET, _KEY,
    _WINDOW_START, _WINDOW_END. ``table`` is the qualifier in ``t.col`` (lower-cased) or None."""
    name: str
    table: Optional[str] = None
    quoted: bool = False
    pos: Pos = _pos()


@_node
class Literal:
    """A constant. ``type`` is one of INTEGER (int), DOUBLE (float), STRING (str), BOOLEAN (bool),
    NULL (value None), DECIMAL (value is the literal text, e.g. '12.50', only from CAST folding)."""
    value: object
    type: str
    pos: Pos = _pos()


@_node
class IntervalLiteral:
    """``INTERVAL '5' MINUTE`` or a shorthand duration (``5m``) as milliseconds; a calendar
    interval (``INTERVAL '1' MONTH``, QUARTER, YEAR) as months, its ``millis`` 0: a month has no
    fixed length, so it is only added to or subtracted from a TIMESTAMP (docs/SQL.md §2)."""
    millis: int
    pos: Pos = _pos()
    months: int = 0


@_node
class Star:
    """``*`` or ``t.*`` in a select list, and the argument of ``COUNT(*)``."""
    table: Optional[str] = None
    pos: Pos = _pos()


@_node
class UnaryOp:
    """op: '-', '+', 'NOT'."""
    op: str
    operand: "Expr"
    pos: Pos = _pos()


@_node
class BinaryOp:
    """op: '+', '-', '*', '/', '%', '||', '=', '!=' ('<>' is normalised to '!='), '<', '<=', '>',
    '>=', 'AND', 'OR'."""
    op: str
    left: "Expr"
    right: "Expr"
    pos: Pos = _pos()


@_node
class IsNull:
    operand: "Expr"
    negated: bool = False
    pos: Pos = _pos()


@_node
class InList:
    operand: "Expr"
    items: tuple["Expr", ...]
    negated: bool = False
    pos: Pos = _pos()


@_node
class Between:
    operand: "Expr"
    low: "Expr"
    high: "Expr"
    negated: bool = False
    pos: Pos = _pos()


@_node
class Like:
    """``x [NOT] LIKE pattern [ESCAPE c]`` (``%`` and ``_`` wildcards; no escape character
    unless ``escape`` names one); ``case_insensitive`` for ILIKE."""
    operand: "Expr"
    pattern: "Expr"
    negated: bool = False
    case_insensitive: bool = False
    pos: Pos = _pos()
    escape: Optional["Expr"] = None


@_node
class Case:
    """``CASE [operand] WHEN w THEN t ... [ELSE e] END``; ``operand`` None for the searched form."""
    operand: Optional["Expr"]
    whens: tuple[tuple["Expr", "Expr"], ...]
    else_: Optional["Expr"] = None
    pos: Pos = _pos()


@_node
class Cast:
    """``CAST(x AS type)``, or ``TRY_CAST`` (``try_``: a value that does not convert is NULL)."""
    operand: "Expr"
    type: TypeName
    pos: Pos = _pos()
    try_: bool = False


@_node
class OrderItem:
    expr: "Expr"
    descending: bool = False
    nulls_first: bool = False  # NULLS FIRST; NULLs sort last otherwise, as in DuckDB


@_node
class RowsOver:
    """``OVER (ROWS WINDOW BUFFER n ROWS [PARTITION BY ...] [ORDER BY ...])`` (docs/SQL.md §6)."""
    buffer_rows: Optional[int]  # None: not given (only ROW_NUMBER's forms of docs/SQL.md §8)
    partition_by: tuple["Expr", ...] = ()
    order_by: tuple[OrderItem, ...] = ()
    pos: Pos = _pos()
    close_pos: Pos = _pos()
    # the standard frames that keep no row buffer (docs/SQL.md §6): "UNBOUNDED" (ROWS
    # UNBOUNDED PRECEDING) or "RANGE" (RANGE BETWEEN INTERVAL range_ms PRECEDING AND CURRENT ROW)
    frame: Optional[str] = None
    range_ms: int = 0


@_node
class FunctionCall:
    """A scalar, aggregate or analytic call. ``name`` is upper case. ``COUNT(*)`` has
    ``args == (Star(),)``; ``COUNT(DISTINCT x)`` has ``distinct=True``; analytic calls carry
    ``over``; ``agg(...) FILTER (WHERE cond)`` carries ``filter`` (docs/SQL.md §5)."""
    name: str
    args: tuple["Expr", ...] = ()
    distinct: bool = False
    over: Optional[RowsOver] = None
    pos: Pos = _pos()
    filter: Optional["Expr"] = None


Expr = Union[Column, Literal, IntervalLiteral, Star, UnaryOp, BinaryOp, IsNull, InList, Between,
             Like, Case, Cast, FunctionCall]


# ------------------------------------------------------------------------------------ statements
@_node
class SelectItem:
    expr: Expr
    alias: Optional[str] = None  # lower-cased unless quoted
    pos: Pos = _pos()


@_node
class TableRef:
    """A FROM item: a relation's name, or a subquery ``(query) [AS] alias`` (docs/SQL.md §8),
    whose ``name`` is then its alias."""
    name: str  # lower-cased unless quoted
    alias: Optional[str] = None
    pos: Pos = _pos()
    query: Optional["Query"] = None
    window: Optional["WindowSpec"] = None  # Flink's FROM TABLE(TUMBLE(TABLE t, ...)) (§10)
    as_of: Optional["Expr"] = None  # JOIN t FOR SYSTEM_TIME AS OF expr (§9)


@_node
class Join:
    """``[INNER | LEFT | RIGHT | FULL] JOIN right ON on [WITHIN duration]`` (docs/SQL.md §9)."""
    kind: str  # 'INNER' | 'LEFT' | 'RIGHT' | 'FULL'
    right: TableRef
    on: "Expr"
    within_ms: Optional[int] = None
    pos: Pos = _pos()


@_node
class WindowSpec:
    """``WINDOW TUMBLING|SLIDING|SESSION (...)``. ``time_column`` None means ``_TIMESTAMP``.
    TUMBLING: size_ms. SLIDING: size_ms and advance_ms. CUMULATE (Flink's window table function
    only): size_ms (the largest) and advance_ms (the step). SESSION: gap_ms (size_ms is None)."""
    kind: str  # 'TUMBLING' | 'SLIDING' | 'CUMULATE' | 'SESSION'
    time_column: Optional[Column] = None
    size_ms: Optional[int] = None
    advance_ms: Optional[int] = None
    gap_ms: Optional[int] = None
    pos: Pos = _pos()
    grace_ms: Optional[int] = None  # ksqlDB's GRACE PERIOD: the allowed lateness of this window


@_node
class Select:
    items: tuple[SelectItem, ...]
    source: TableRef
    distinct: bool = False
    where: Optional[Expr] = None
    group_by: tuple[Expr, ...] = ()
    window: Optional[WindowSpec] = None
    having: Optional[Expr] = None
    limit: Optional[int] = None
    emit: Optional[str] = None  # 'CHANGES' | 'FINAL' | None (the default for the query shape)
    pos: Pos = _pos()
    order_by: tuple[OrderItem, ...] = ()  # sorts the rows of each emission (docs/SQL.md §8)
    joins: tuple[Join, ...] = ()           # docs/SQL.md §9
    offset: int = 0  # OFFSET m: the first m rows emitted are skipped (before LIMIT's n)


@_node
class Query:
    """``SELECT ... [UNION ALL SELECT ...]`` with its CTEs (``WITH name AS (...)``)."""
    select: Select
    union_all: tuple[Select, ...] = ()
    ctes: tuple["Cte", ...] = ()
    pos: Pos = _pos()


@_node
class Cte:
    name: str
    query: Query
    pos: Pos = _pos()


@_node
class ColumnDef:
    """A column of a declared source: ``CREATE STREAM name (col TYPE, ...)``."""
    name: str
    type: TypeName
    pos: Pos = _pos()


@_node
class Statement:
    """A whole statement: an optional ``CREATE STREAM|TABLE name AS``, the SELECT, and the
    ``WITH (...)`` properties (keys and values as written, after ``${VAR}`` substitution).

    A declared source (``CREATE STREAM name [(col TYPE, ...)] WITH (...)``, ``CREATE TABLE name
    ([col TYPE, ...,] PRIMARY KEY (k, ...)) WITH (...)``) has no SELECT: ``select`` is None and
    ``columns`` (None when not listed) and ``primary_key`` describe it (docs/SQL.md §8)."""
    select: Optional[Select]
    create_kind: Optional[str] = None  # 'STREAM' | 'TABLE'
    create_name: Optional[str] = None
    properties: tuple[tuple[str, str], ...] = ()
    sql: str = field(default="", compare=False, repr=False)  # the text after substitution
    union_all: tuple[Select, ...] = ()
    ctes: tuple[Cte, ...] = ()
    columns: Optional[tuple[ColumnDef, ...]] = None
    primary_key: tuple[str, ...] = ()
    pos: Pos = _pos()

    @property
    def props(self) -> dict[str, str]:
        return dict(self.properties)

    @property
    def declared(self) -> bool:
        return self.select is None

    @property
    def query(self) -> Query:
        return Query(self.select, self.union_all, self.ctes, pos=self.pos)
