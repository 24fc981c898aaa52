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


CALENDAR_BOUND = ("a MONTH, QUARTER or YEAR interval has no fixed length, and a join keeps each "
                  "side's rows for as long as its time bound reaches: give the bound in DAYs "
                  "(INTERVAL '31' DAY)")


def _conjuncts(e) -> list:
    if isinstance(e, ast.BinaryOp) and e.op == "AND":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


@dataclasses.dataclass
class _Relation:
    """One aliased relation of a FROM: the side of the join it is on, the prefix its columns
    carry there (``alias.`` in the rows of an earlier join of the chain, else none), its
    visible column names and all of them (hidden ones too)."""
    alias: str
    side: int
    prefix: str
    names: list
    all_names: list


class _Sides:
    """The relations of a join by alias, and which one a column reference names (the same rules
    and errors for the ON condition and for the SELECT over the join). The left side of a join
    in a chain (``FROM a JOIN b ON ... JOIN c ON ...``) holds every relation joined before."""

    def __init__(self, sql, relations: list[_Relation], schemas=None):
        self.sql = sql
        self.relations = relations
        self.aliases = tuple(r.alias for r in relations)
        self.schemas = schemas
        self.calendar_pos = None  # where ON compared times across a MONTH / YEAR interval

    @classmethod
    def of_join(cls, sql, la: str, ra: str, left, right) -> "_Sides":
        """The two inputs of a join (graph nodes); a left input that is itself a join brings
        the relations it joined, its columns named ``alias.column``."""
        rels = []
        if left.kind == "join":
            rels += _chained(left.op.out.aliases, left.schema, left.hidden)
        else:
            rels.append(_Relation(la, 0, "", [n for n in left.schema.names
                                              if n not in left.hidden], list(left.schema.names)))
        rels.append(_Relation(ra, 1, "", [n for n in right.schema.names if n not in right.hidden],
                              list(right.schema.names)))
        return cls(sql, rels, (left.schema, right.schema))

    @staticmethod
    def find(rel: _Relation, name: str, quoted: bool, everything=False) -> Optional[str]:
        """The column of ``rel`` that ``name`` names, as the input row calls it."""
        names = rel.all_names if everything else rel.names
        if name in names:
            return rel.prefix + name
        if not quoted:
            for n in names:
                if n.lower() == name.lower():
                    return rel.prefix + n
        if name.upper() == EVENT_TIME and EVENT_TIME in rel.all_names:
            return rel.prefix + EVENT_TIME
        return None

    def resolve(self, col: ast.Column, missing_ok: bool = False):
        """(relation index, column as the input row calls it) of ``col``; None for an
        unqualified name no relation has when ``missing_ok`` (a system column such as
        _WINDOW_START)."""
        if col.table is not None:
            for i, rel in enumerate(self.relations):
                if col.table.lower() == rel.alias.lower():
                    name = self.find(rel, col.name, col.quoted)
                    if name is None:
                        raise SqlError.at(self.sql, col.pos, f"unknown column '{col.name}' of "
                                          f"'{rel.alias}' (columns: {', '.join(rel.names)})")
                    return i, name
            raise SqlError.at(self.sql, col.pos, f"unknown table or alias '{col.table}' (the "
                              f"join reads {_listed(self.aliases)})")
        found = [(i, self.find(rel, col.name, col.quoted))
                 for i, rel in enumerate(self.relations)]
        found = [(i, n) for i, n in found if n is not None]
        if len(found) > 1:
            raise SqlError.at(self.sql, col.pos, f"column '{col.name}' is on both sides of the "
                              f"join: qualify it (" + " or ".join(
                                  f"{self.relations[i].alias}.{col.name}" for i, _ in found)
                              + ")")
        if not found:
            if missing_ok:
                return None
            raise SqlError.at(self.sql, col.pos, f"unknown column '{col.name}' (the join's "
                              f"columns: {', '.join(self._qualified())})")
        return found[0]

    def side_of(self, col: ast.Column) -> tuple[int, str]:
        """(side of the join, column as that side's rows call it) of ``col``."""
        i, name = self.resolve(col)
        return self.relations[i].side, name

    def _qualified(self) -> list[str]:
        return [f"{r.alias}.{n}" for r in self.relations for n in r.names]

    def is_time(self, side: int, name: str) -> bool:
        t = self.schemas[side].field(name).type
        return pa.types.is_timestamp(t) or name == EVENT_TIME


def _chained(aliases, schema: pa.Schema, hidden) -> list[_Relation]:
    """The relations of a join's rows (columns ``alias.column``), all on one side (0)."""
    rels = []
    for alias in aliases:
        prefix = f"{alias}."
        names = [n[len(prefix):] for n in schema.names if n.startswith(prefix)]
        rels.append(_Relation(alias, 0, prefix, [n for n in names if prefix + n not in hidden],
                              names))
    return rels


def _listed(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _term(e, sides: _Sides) -> Optional[tuple[int, str, int]]:
    """``col``, ``col + c`` or ``col - c`` (c an interval or integer milliseconds) as (side,
    column, c); None for anything else."""
    if isinstance(e, ast.Column):
        side, name = sides.side_of(e)
        return side, name, 0
    if isinstance(e, ast.BinaryOp) and e.op in "+-" and isinstance(e.left, ast.Column):
        c = e.right
        if isinstance(c, ast.IntervalLiteral) and c.months:
            # no time bound: a join keeps each side's rows as long as its bound reaches, so the
            # bound needs a fixed length (plan_join says so if there is no other bound)
            sides.calendar_pos = c.pos
            return None
        if isinstance(c, ast.IntervalLiteral):
            ms = c.millis
        elif isinstance(c, ast.Literal) and c.type == "INTEGER":
            ms = int(c.value)
        else:
            return None
        side, name = sides.side_of(e.left)
        return side, name, ms if e.op == "+" else -ms
    return None


_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">", "=": "="}


def plan_join(sql: str, j: ast.Join, la: str, ra: str, temporal: bool, left, right,
              lateness_text: str, idle_text: Optional[str] = None):
    """The operator of join ``j`` of ``left`` (a graph node: a relation called ``la``, or an
    earlier join of the same FROM) with ``right`` (called ``ra``)."""
    sides = _Sides.of_join(sql, la, ra, left, right)
    chained = left.kind == "join"
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
    out = _Output(left.schema, right.schema, None if chained else la, ra, left.hidden,
                  right.hidden, (tuple(left.op.out.aliases) if chained else (la,)) + (ra,))
    named = (_listed(out.aliases[:-1]), ra)  # the two sides in messages
    if chained and left.op.residual_ast and j.kind in ("RIGHT", "FULL"):
        # the earlier join's other conditions filter its rows, after the whole chain: a right
        # row whose only partners they drop would lose its NULL-padded row
        raise UnsupportedError.at(sql, j.pos, f"a {j.kind} JOIN after a join whose ON has "
                                  f"conditions other than keys and a time bound: join the "
                                  f"first ones in a WITH query")
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
                                      f"'{named[side]}' has none (_TIMESTAMP)")
            bound(">=", -j.within_ms, (EVENT_TIME, EVENT_TIME))
            bound("<=", j.within_ms, (EVENT_TIME, EVENT_TIME))
        if lo is None or hi is None:
            if sides.calendar_pos is not None:
                raise UnsupportedError.at(sql, sides.calendar_pos, CALENDAR_BOUND)
            raise UnsupportedError.at(sql, j.pos, UNBOUNDED)
        if lo > hi:
            raise SqlError.at(sql, j.pos, f"the join's time bound is empty ({lo} ms to {hi} ms)")
        lcol, rcol = time_cols  # bound() records (left column, right column)
        derived = (_after_join(left), _after_join(right))
        for side, col in ((0, lcol), (1, rcol)):
            if derived[side] and col != EVENT_TIME:
                # a join's rows come in the order of their event time only (each when its later
                # row arrives): another of their times has no watermark to free rows by
                raise UnsupportedError.at(sql, j.pos, f"'{named[side]}' holds the rows of a "
                                          f"join: bound this join on their event time, e.g. "
                                          f"WITHIN 5 SECONDS (not on '{col}')")
        op = IntervalJoin(j.kind, lkeys, rkeys, lcol, rcol, lo, hi,
                          parse_duration_ms(lateness_text), out, key_types, derived=derived)
    # an INNER join's other conditions filter the chain's rows (the SELECT's WHERE)
    op.residual_ast = (list(left.op.residual_ast) if chained else []) + residual
    return op


def _after_join(node) -> bool:
    """Whether ``node``'s rows come out of a join (directly, or through stages reading one)."""
    todo, seen = [node], set()
    while todo:
        x = todo.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if x.kind == "join":
            return True
        todo += x.inputs
    return False


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


def qualify_select(sql: str, sel: ast.Select, aliases: tuple, schema: pa.Schema,
                   hidden, residual=()) -> ast.Select:
    """``sel`` over the rows of a join (of two relations, or a chain of several) named
    ``aliases``: its column references become the rows' ``alias.column`` names."""
    relations = _chained(aliases, schema, hidden)
    sides = _Sides(sql, relations)

    def column(e):
        if not isinstance(e, ast.Column):
            return e
        found = sides.resolve(e, missing_ok=True)
        return e if found is None else ast.Column(found[1], quoted=True, pos=e.pos)

    items = []
    for item in sel.items:
        if isinstance(item.expr, ast.Star):
            t = item.expr.table
            for rel in relations:
                if t is None or t.lower() == rel.alias.lower():
                    items += [ast.SelectItem(ast.Column(rel.prefix + n, quoted=True), n,
                                             pos=item.pos) for n in rel.names]
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
