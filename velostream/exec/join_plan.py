"""Planning a join (docs/SQL.md §9): which kind it is, its keys and time bound, read from the ON
condition once both sides' columns are known; and the names the SELECT over it reads.

* A **temporal join** (the right side is a table, or ``FOR SYSTEM_TIME AS OF``): each stream row
  meets the table's version current at its event time.
* An **interval join** of two streams: equal keys and a bound on the two rows' times, written as
  ``b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '5' SECOND``, as ``>=`` / ``<=``
  pairs, as an equality of two TIMESTAMP columns, or as ``WITHIN 5 SECONDS``.

Other conditions of an INNER join's ON are filters on its rows (they move to WHERE).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import pyarrow as pa

from ..batch import arrow_type_of, type_of_arrow
from ..errors import SqlError, UnsupportedError
from ..planner import parse_duration_ms
from ..sql import ast
from .expressions import _common_type
from .operators.base import EVENT_TIME
from .operators.join import IntervalJoin, TemporalJoin, _Output

UNBOUNDED = ("an unbounded join of two streams would keep every row forever: bound the rows' "
             "times, e.g. ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + "
             "INTERVAL '5' SECOND, or ON a.k = b.k WITHIN 5 SECONDS (or join a TABLE)")


def _conjuncts(e) -> list:
    if isinstance(e, ast.BinaryOp) and e.op == "AND":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


class _Sides:
    """The two sides of a join by alias, and which side a column reference names (the same
    rules and errors for the ON condition and for the SELECT over the join)."""

    def __init__(self, sql, la, ra, left: Optional[pa.Schema], right: Optional[pa.Schema], lh=(),
                 rh=(), names=None):
        self.sql = sql
        self.aliases = (la, ra)
        if names is not None:  # the SELECT over the join: each side's visible column names
            self.names = self.all_names = names
            self.schemas = None
            return
        self.names = ([n for n in left.names if n not in lh], [n for n in right.names if n not in rh])
        self.all_names = (list(left.names), list(right.names))
        self.schemas = (left, right)

    def find(self, side: int, name: str, quoted: bool, everything=False) -> Optional[str]:
        names = self.all_names[side] if everything else self.names[side]
        if name in names:
            return name
        if not quoted:
            for n in names:
                if n.lower() == name.lower():
                    return n
        if name.upper() == EVENT_TIME and EVENT_TIME in self.all_names[side]:
            return EVENT_TIME
        return None

    def resolve(self, col: ast.Column, missing_ok: bool = False) -> Optional[tuple[int, str]]:
        """(side, column) of ``col``; None for an unqualified name neither side has when
        ``missing_ok`` (a system column such as _WINDOW_START)."""
        if col.table is not None:
            for side, alias in enumerate(self.aliases):
                if col.table.lower() == alias.lower():
                    name = self.find(side, col.name, col.quoted)
                    if name is None:
                        raise SqlError.at(self.sql, col.pos, f"unknown column '{col.name}' of "
                                          f"'{alias}' (columns: {', '.join(self.names[side])})")
                    return side, name
            raise SqlError.at(self.sql, col.pos, f"unknown table or alias '{col.table}' (the "
                              f"join reads {self.aliases[0]} and {self.aliases[1]})")
        found = [(side, self.find(side, col.name, col.quoted)) for side in (0, 1)]
        found = [(side, n) for side, n in found if n is not None]
        if len(found) == 2:
            raise SqlError.at(self.sql, col.pos, f"column '{col.name}' is on both sides of the "
                              f"join: qualify it ({self.aliases[0]}.{col.name} or "
                              f"{self.aliases[1]}.{col.name})")
        if not found:
            if missing_ok:
                return None
            raise SqlError.at(self.sql, col.pos, f"unknown column '{col.name}' (the join's "
                              f"columns: {', '.join(self._qualified())})")
        return found[0]

    def _qualified(self) -> list[str]:
        return [f"{a}.{n}" for a, names in zip(self.aliases, self.names) for n in names]

    def is_time(self, side: int, name: str) -> bool:
        t = self.schemas[side].field(name).type
        return pa.types.is_timestamp(t) or name == EVENT_TIME


def _term(e, sides: _Sides) -> Optional[tuple[int, str, int]]:
    """``col``, ``col + c`` or ``col - c`` (c an interval or integer milliseconds) as (side,
    column, c); None for anything else."""
    if isinstance(e, ast.Column):
        side, name = sides.resolve(e)
        return side, name, 0
    if isinstance(e, ast.BinaryOp) and e.op in "+-" and isinstance(e.left, ast.Column):
        c = e.right
        if isinstance(c, ast.IntervalLiteral):
            ms = c.millis
        elif isinstance(c, ast.Literal) and c.type == "INTEGER":
            ms = int(c.value)
        else:
            return None
        side, name = sides.resolve(e.left)
        return side, name, ms if e.op == "+" else -ms
    return None


_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">", "=": "="}


def plan_join(sql: str, j: ast.Join, la: str, ra: str, temporal: bool, left, right,
              lateness_text: str, idle_text: Optional[str] = None):
    sides = _Sides(sql, la, ra, left.schema, right.schema, left.hidden, right.hidden)
    keys: list[tuple[str, str]] = []
    lo, hi = None, None
    time_cols: Optional[tuple[str, str]] = None
    residual = []

    def bound(op: str, k: int, cols) -> None:
        nonlocal lo, hi, time_cols
        if time_cols is not None and time_cols != cols:
            raise UnsupportedError.at(sql, j.pos, "the join's time bound names two pairs of time "
                                      "columns; bound one pair")
        time_cols = cols
        if op in (">=", ">", "="):
            lo = max(lo if lo is not None else k, k + (op == ">"))
        if op in ("<=", "<", "="):
            hi = min(hi if hi is not None else k, k - (op == "<"))

    def comparison(op: str, a, b) -> bool:
        """``a op b`` over terms of both sides: a key or a time bound; False if neither."""
        ta, tb = _term(a, sides), _term(b, sides)
        if ta is None or tb is None or ta[0] == tb[0]:
            return False
        if op == "=" and ta[2] == 0 and tb[2] == 0 and not (
                sides.is_time(ta[0], ta[1]) and sides.is_time(tb[0], tb[1])):
            l, r = (ta, tb) if ta[0] == 0 else (tb, ta)
            keys.append((l[1], r[1]))
            return True
        if ta[0] == 0:  # write it as right op left
            ta, tb, op = tb, ta, _FLIP[op]
        # r.col + offR  op  l.col + offL   <=>   r.col - l.col  op  offL - offR
        bound(op, tb[2] - ta[2], (tb[1], ta[1]))
        return True

    for c in _conjuncts(j.on):
        if isinstance(c, ast.BinaryOp) and c.op in ("=", ">=", "<=", ">", "<"):
            if comparison(c.op, c.left, c.right):
                continue
        elif isinstance(c, ast.Between) and not c.negated:
            if _term(c.operand, sides) is not None and comparison(">=", c.operand, c.low) \
                    and comparison("<=", c.operand, c.high):
                continue
        residual.append(c)
    if not keys:
        raise UnsupportedError.at(sql, j.pos, "a join needs an equality of keys in ON (a.k = b.k)")
    if residual and j.kind != "INNER":
        raise UnsupportedError.at(sql, getattr(residual[0], "pos", j.pos),
                                  f"a {j.kind} JOIN's ON takes key equalities and a time bound "
                                  f"only; filter the rows in WHERE")
    key_types = []
    for lk, rk in keys:
        lt, rt = left.schema.field(lk).type, right.schema.field(rk).type
        if lt.equals(rt):
            key_types.append(lt)
        else:
            common = _common_type([type_of_arrow(lt), type_of_arrow(rt)])
            key_types.append(arrow_type_of(common))
    out = _Output(left.schema, right.schema, la, ra, left.hidden, right.hidden)
    lkeys, rkeys = [k for k, _ in keys], [k for _, k in keys]
    if temporal:
        if time_cols is not None or j.within_ms is not None:
            raise UnsupportedError.at(sql, j.pos, "a join with a table meets the version current "
                                      "at the stream row's time; it takes no time bound")
        stream_time = None
        if j.right.as_of is not None:
            term = _term(j.right.as_of, sides)
            if term is None or term[0] != 0 or term[2] != 0:
                raise UnsupportedError.at(sql, getattr(j.right.as_of, "pos", j.pos),
                                          "FOR SYSTEM_TIME AS OF takes a time column of the "
                                          "stream")
            stream_time = term[1]
        elif EVENT_TIME in left.schema.names:
            stream_time = EVENT_TIME
        table_time = EVENT_TIME if EVENT_TIME in right.schema.names else None
        idle = parse_duration_ms(idle_text) if idle_text is not None else None
        op = TemporalJoin(j.kind, lkeys, rkeys, stream_time, table_time, out, key_types,
                          idle_ms=idle)
    else:
        if j.within_ms is not None:
            for side, node in ((0, left), (1, right)):
                if EVENT_TIME not in node.schema.names:
                    raise SqlError.at(sql, j.pos, f"WITHIN compares the rows' event times, and "
                                      f"'{sides.aliases[side]}' has none (_TIMESTAMP)")
            bound(">=", -j.within_ms, (EVENT_TIME, EVENT_TIME))
            bound("<=", j.within_ms, (EVENT_TIME, EVENT_TIME))
        if lo is None or hi is None:
            raise UnsupportedError.at(sql, j.pos, UNBOUNDED)
        if lo > hi:
            raise SqlError.at(sql, j.pos, f"the join's time bound is empty ({lo} ms to {hi} ms)")
        rcol, lcol = time_cols
        op = IntervalJoin(j.kind, lkeys, rkeys, lcol, rcol, lo, hi,
                          parse_duration_ms(lateness_text), out, key_types)
    op.residual_ast = residual
    return op


# ------------------------------------------------------------------- the SELECT over the join
def _map(e, fn):
    new = fn(e)
    if new is not e:
        return new
    if not dataclasses.is_dataclass(e) or isinstance(e, type):
        return e
    changes = {}
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            nv = _map(v, fn)
        elif isinstance(v, tuple) and v and dataclasses.is_dataclass(v[0]):
            nv = tuple(_map(x, fn) for x in v)
        else:
            continue
        if nv is not v:
            changes[f.name] = nv
    return dataclasses.replace(e, **changes) if changes else e


def qualify_select(sql: str, sel: ast.Select, aliases: tuple[str, str], schema: pa.Schema,
                   hidden, residual=()) -> ast.Select:
    la, ra = aliases
    prefix = (f"{la}.", f"{ra}.")
    names = [n for n in schema.names if n not in hidden]
    by_side = ([n[len(prefix[0]):] for n in names if n.startswith(prefix[0])],
               [n[len(prefix[1]):] for n in names if n.startswith(prefix[1])])
    sides = _Sides(sql, la, ra, None, None, names=by_side)

    def column(e):
        if not isinstance(e, ast.Column):
            return e
        found = sides.resolve(e, missing_ok=True)
        return e if found is None else ast.Column(prefix[found[0]] + found[1], quoted=True,
                                                  pos=e.pos)

    items = []
    for item in sel.items:
        if isinstance(item.expr, ast.Star):
            t = item.expr.table
            for side in (0, 1):
                if t is None or t.lower() == aliases[side].lower():
                    items += [ast.SelectItem(ast.Column(prefix[side] + n, quoted=True), n,
                                             pos=item.pos) for n in by_side[side]]
            continue
        alias = item.alias
        if alias is None and isinstance(item.expr, ast.Column):
            alias = item.expr.name
        items.append(ast.SelectItem(_map(item.expr, column), alias, pos=item.pos))
    where = sel.where
    for r in residual:  # an INNER join's other ON conditions filter its rows
        where = r if where is None else ast.BinaryOp("AND", where, r, pos=getattr(r, "pos", None))
    m = (lambda e: _map(e, column) if e is not None else None)
    window = sel.window
    if window is not None and window.time_column is not None:
        window = dataclasses.replace(window, time_column=m(window.time_column))
    return dataclasses.replace(
        sel, items=tuple(items), where=m(where), group_by=tuple(m(g) for g in sel.group_by),
        having=m(sel.having), window=window,
        order_by=tuple(dataclasses.replace(o, expr=m(o.expr)) for o in sel.order_by))
