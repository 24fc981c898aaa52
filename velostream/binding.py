"""Schema binding: the one step every input batch goes through before anything else sees it.

A source's schema is fixed by its first batch (a column of Arrow's null type is fixed by the first
batch that gives it a type) or by a declaration. Every later batch is checked against it here, once
per batch and never per row in Python (docs/SQL.md, "Types at the boundary"):

* the same type, or NULL-typed: taken as it is (a null column becomes the fixed type);
* a narrower number of the same kind (int8 where int64 was fixed, float32 where DOUBLE was), an
  integer where a float was fixed, a decimal of no more digits on either side of the point, any
  timestamp or date where a timestamp or date was fixed, any string layout where text was fixed:
  cast to the fixed type (nothing is lost that the engine keeps);
* anything else (a missing column, text where a number was fixed, a number where text was, a float
  where an integer was, a wider integer): the whole batch is rejected with ``SchemaMismatch``,
  naming the column and both types. Nothing of a rejected batch has touched any state.

Columns in a later batch that the first batch did not have are dropped (a source may add fields;
the query was bound without them). Columns are matched by name, case-insensitively as the planner
resolves them, and put in the fixed order.

A column of a type the engine does not take (a list, struct, map, binary, time of day, duration,
interval, a decimal with more than 18 digits after the point) is left out when the first batch
fixes the schema (``left_out``), so a query that never reads it runs; a query that reads it, by
name or through ``*``, is an error at the text naming the column and its type
(``check_left_out``). Later batches bind the same way: the column is not in the fixed schema.

A ``uint64`` value above 2^63-1 does not fit BIGINT, and a value of a decimal wider than 18 digits
(DECIMAL(38, s), as DuckDB and Spark write sums) that needs more than 18 does not fit DECIMAL(18,
s): its row is a bad record (``bad_rows``), counted and dead-lettered by the engine, and the rest of
the batch goes on.
"""
from __future__ import annotations

import dataclasses
import decimal
from typing import Optional

import numpy as np
import pyarrow as pa

from ._lazy import pc  # imported when first used: see the module
from .batch import SqlType, arrow_type_of, type_of_arrow
from .errors import SchemaMismatch, SqlError

INT64_MAX = np.iinfo(np.int64).max


_KINDS = {"INT64": "int", "FLOAT64": "float", "BOOL": "bool", "STRING": "text",
          "TIMESTAMP": "time", "DECIMAL": "decimal", "NULL": "null"}


def kind_of(t: pa.DataType) -> str:
    """The family an Arrow type belongs to, as the engine holds it (``type_of_arrow``), or
    "other" for a type the engine does not take."""
    try:
        return _KINDS[type_of_arrow(t).kind]
    except TypeError:  # a type the engine does not take (type_of_arrow says which)
        return "other"


def is_wide_decimal(t: pa.DataType) -> bool:
    """A decimal of more than 18 digits: held as DECIMAL(18, s), a value that needs more digits
    a bad record (docs/SQL.md, "Types at the boundary")."""
    return pa.types.is_decimal(t) and t.precision > 18


def _int_fits(got: pa.DataType, fixed: pa.DataType) -> bool:
    """Every value of integer type ``got`` is a value of integer type ``fixed``."""
    gs, fs = pa.types.is_signed_integer(got), pa.types.is_signed_integer(fixed)
    gw, fw = got.bit_width, fixed.bit_width
    if gs == fs:
        return gw <= fw
    if not gs and fs:  # unsigned into signed needs one more bit
        return gw < fw
    return False  # signed into unsigned: negative values do not fit


def _widening(got: pa.DataType, fixed: pa.DataType) -> Optional[str]:
    """None when ``got`` may be cast to ``fixed`` without losing what the engine keeps, else why
    not."""
    g, f = kind_of(got), kind_of(fixed)
    if g == "other":
        return UNSUPPORTED
    if g == f == "int":
        if pa.types.is_uint64(fixed) and pa.types.is_unsigned_integer(got):
            return None
        if pa.types.is_int64(fixed) and pa.types.is_uint64(got):
            return None  # values above 2^63-1 are bad records (SourceBinder.bad_rows)
        return None if _int_fits(got, fixed) else "a wider integer than the fixed one"
    if f == "time" and g == "int":
        return None  # epoch milliseconds, as the engine holds time (a declared TIMESTAMP)
    if f == "float" and g in ("int", "float"):
        if g == "float" and got.bit_width > fixed.bit_width:
            return "a wider float than the fixed one"
        return None
    if g == f == "decimal":
        if got.scale <= fixed.scale and got.precision - got.scale <= fixed.precision - fixed.scale:
            return None
        return "more digits than the fixed decimal holds"
    if g == f and g in ("text", "time", "bool"):
        return None
    if f == "int" and g == "float":
        return "a float where an integer was fixed"
    return "a different kind of value"


UNSUPPORTED = "velostream does not take this type"


def _cast(arr, fixed: pa.DataType):
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(fixed) and not pa.types.is_dictionary(arr.type):
        enc = pc.cast(arr, fixed.value_type).dictionary_encode()
        return pa.DictionaryArray.from_arrays(pc.cast(enc.indices, fixed.index_type), enc.dictionary)
    if kind_of(fixed) == "time" and pa.types.is_integer(arr.type):  # epoch milliseconds
        arr = pc.cast(pc.cast(arr, pa.int64()), pa.timestamp("ms"))
    if pa.types.is_integer(fixed) and (pa.types.is_date(arr.type)
                                       or pa.types.is_timestamp(arr.type)):
        # a date or timestamp leaving as the engine's TIMESTAMP: epoch milliseconds (a date has
        # no direct cast to an integer)
        arr = pc.cast(pc.cast(arr, pa.timestamp("ms"), safe=False), pa.int64())
    # unchecked: int -> float and finer time units -> ms lose only what the engine does not keep
    # anyway, and uint64 rows above 2^63-1 are bad records taken out before (bad_rows)
    return pc.cast(arr, fixed, safe=False)


class SourceBinder:
    """The fixed schema of one source, and the check every batch of it goes through.

    >>> b = SourceBinder("t")
    >>> b.bind(pa.record_batch({"x": pa.array([1], pa.int64())})).schema.types
    [DataType(int64)]
    >>> b.bind(pa.record_batch({"x": pa.array([2], pa.int8())})).schema.types
    [DataType(int64)]
    """

    def __init__(self, source: str, declared: Optional[dict[str, SqlType]] = None):
        self.source = source
        self.fixed: Optional[pa.Schema] = None
        self.checks_rows = False
        # columns of the null type whose type a later batch has just fixed (the plan rebinds)
        self.learned: list[str] = []
        # columns of the first batch of a type the engine does not take: name -> Arrow type
        # (left out of the fixed schema; check_left_out says when the query reads one)
        self.left_out: dict[str, pa.DataType] = {}
        # why the rows ``bad_rows`` last found do not fit (the dead-letter reason)
        self.bad_reason = ""
        if declared is not None:  # TIMESTAMP is declared as time, whatever it leaves as
            self._fix(pa.schema([(n, pa.timestamp("ms") if t.kind == "TIMESTAMP" else arrow_type_of(t))
                                    for n, t in declared.items()]))

    def _fix(self, schema: pa.Schema) -> None:
        """``fixed`` (a plain attribute: read on every batch) and ``checks_rows``: whether a
        column's values may not fit the type the engine holds them in (bad_rows), decided once
        per schema rather than per batch. A schema set from outside (a stage reading a derived
        relation: rows already checked at their source) keeps the flag it had."""
        self.fixed = schema
        self.checks_rows = any(pa.types.is_uint64(t.value_type if pa.types.is_dictionary(t) else t)
                               or is_wide_decimal(t) for t in schema.types)

    def sql_schema(self) -> dict[str, SqlType]:
        return {f.name: type_of_arrow(f.type) for f in self.fixed}

    def bind(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        """``rb`` in the fixed schema (see the module docstring), or ``SchemaMismatch``."""
        self.learned = []
        schema = rb.schema
        if self.fixed is None:
            return self._first(rb)
        if schema.equals(self.fixed):  # the usual case: one check per batch
            return rb
        return self._conform(rb)

    def _first(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        """The first batch fixes the schema: its columns of a type the engine does not take are
        left out (``left_out``), text as Arrow's string view (what Polars exports) is fixed as
        plain strings, the layout the kernels read (a later view batch is cast like any string
        layout); any other column is fixed as it came."""
        schema = rb.schema
        self.left_out = {f.name: f.type for f in schema if kind_of(f.type) == "other"}
        views = any(pa.types.is_string_view(t) for t in schema.types)
        if not self.left_out and not views:
            self._fix(schema)
            return rb
        self._fix(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_string_view(f.type)
                             else f for f in schema if f.name not in self.left_out],
                            metadata=schema.metadata))
        return self._conform(rb)

    def _conform(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        names = rb.schema.names
        index = {n: i for i, n in enumerate(names)}
        lower = {}
        for i, n in enumerate(names):
            lower.setdefault(n.lower(), i)
        arrays, fields, learned = [], [], []
        for f in self.fixed:
            i = index.get(f.name, lower.get(f.name.lower()))
            if i is None:
                if pa.types.is_null(f.type):  # never seen with a value: still unknown, still NULL
                    arrays.append(pa.nulls(rb.num_rows))
                    fields.append(f)
                    continue
                raise SchemaMismatch(self.source, f.name, f.type, None)
            arr, got = rb.column(i), rb.schema.types[i]
            if got.equals(f.type):
                pass
            elif pa.types.is_null(got):
                arr = pa.nulls(rb.num_rows, f.type)
            elif pa.types.is_null(f.type):  # the first batch that gives this column a type
                if kind_of(got) == "other":
                    raise SchemaMismatch(self.source, f.name, f.type, got, UNSUPPORTED)
                f = pa.field(f.name, got)
                learned.append(f.name)
            else:
                why = _widening(got, f.type)
                if why is not None:
                    raise SchemaMismatch(self.source, f.name, f.type, got, why)
                arr = _cast(arr, f.type)
            arrays.append(arr)
            fields.append(f)
        if learned:
            self._fix(pa.schema(fields, metadata=self.fixed.metadata))
            self.learned = learned
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=rb.schema.metadata))

    def set_aside(self, rb: pa.RecordBatch) -> tuple:
        """``rb`` (a batch this binder bound) split into (the rows that fit, the rows that do not
        or None, the mask of the rows kept or None): what a source's binding step dead-letters
        (with ``bad_reason``) before anything reads the batch."""
        if not self.checks_rows:
            return rb, None, None
        bad = self.bad_rows(rb)
        if bad is None:
            return rb, None, None
        keep = pa.array(~bad)
        return rb.filter(keep), rb.filter(pa.array(bad)), keep

    def bad_rows(self, rb: pa.RecordBatch) -> Optional[np.ndarray]:
        """Rows that cannot be held as the engine holds their column, as a bool mask, or None
        when every row fits (``bad_reason`` then says why they do not): a uint64 above 2^63-1
        (BIGINT), a value of a decimal wider than 18 digits that needs more than 18 (held as
        DECIMAL(18, s)). ``rb`` is a batch this binder bound."""
        bad, why = None, []
        for name, t in zip(rb.schema.names, rb.schema.types):
            vt = t.value_type if pa.types.is_dictionary(t) else t
            if pa.types.is_uint64(vt):
                col = rb.column(name)
                if pa.types.is_dictionary(t):
                    col = col.dictionary_decode()
                over = pc.greater(col, pa.scalar(INT64_MAX, pa.uint64()))
                what = f"column '{name}' is a uint64 above 2^63-1, which does not fit BIGINT"
            elif is_wide_decimal(vt) and not pa.types.is_dictionary(t):
                # DECIMAL(18, s) holds an unscaled value of at most 18 digits
                limit = pa.scalar(decimal.Decimal(10) ** (18 - vt.scale), vt)
                over = pc.greater_equal(pc.abs(rb.column(name)), limit)
                what = (f"column '{name}' ({vt}) has a value of more than 18 digits, which does "
                        f"not fit DECIMAL(18,{vt.scale})")
            else:
                continue
            over = pc.fill_null(over, False)
            if pc.any(over).as_py():
                m = over.to_numpy(zero_copy_only=False)
                bad = m if bad is None else (bad | m)
                why.append(what)
        self.bad_reason = "value out of range: " + "; ".join(why) if why else ""
        return bad


def check_left_out(sql: str, statements, source: str, left_out: dict) -> None:
    """A ``SqlError`` at the first place the text ``statements`` reads a column of ``source``
    that binding left out (``SourceBinder.left_out``: name -> Arrow type, a type the engine
    does not take): by name (in any clause, qualified by the source's name or alias or not), or
    through ``*`` / ``alias.*`` over the source, which would otherwise leave the column out of
    the result silently (docs/SQL.md, "Types at the boundary"). A query that never reads such a
    column runs without it."""
    if not left_out:
        return
    from .sql import ast
    exact = dict(left_out)
    lower = {n.lower(): n for n in left_out}
    src = source.lower()

    def unsupported(name: str) -> str:
        return (f"column '{name}' of '{source}' is {left_out[name]}: velostream does not take "
                f"this type (docs/SQL.md, \"Types at the boundary\")")

    def columns(e):
        todo = [e]
        while todo:
            x = todo.pop()
            if isinstance(x, ast.Column):
                yield x
            elif isinstance(x, (tuple, list)):
                todo.extend(reversed(x))
            elif dataclasses.is_dataclass(x) and not isinstance(x, (type, ast.Select, ast.Query)):
                todo.extend(reversed([getattr(x, f.name) for f in dataclasses.fields(x)
                                      if f.name != "pos"]))

    def check_select(sel, scope: set) -> None:
        refs = [sel.source] + [j.right for j in sel.joins]
        aliases = set()
        for ref in refs:
            if ref.query is not None:
                check_query(ref.query, scope)
            elif ref.name.lower() == src and ref.name.lower() not in scope:
                aliases |= {ref.name.lower(), (ref.alias or ref.name).lower()}
        if not aliases:
            return
        outputs = {(i.alias or "").lower() for i in sel.items if i.alias}
        early = [i.expr for i in sel.items if not isinstance(i.expr, ast.Star)]
        early += [sel.where, sel.window, [j.on for j in sel.joins],
                  [(r.window, r.as_of) for r in refs]]
        late = [sel.group_by, sel.having, [o.expr for o in sel.order_by]]
        for part, aliased in ((early, False), (late, True)):
            for col in columns(part):
                name = col.name if col.name in exact else (
                    None if col.quoted else lower.get(col.name.lower()))
                if name is None or (col.table is not None and col.table.lower() not in aliases):
                    continue
                if aliased and col.table is None and col.name.lower() in outputs:
                    continue  # an output column's alias (GROUP BY / ORDER BY alias)
                raise SqlError.at(sql, col.pos, unsupported(name) + "; a query can read the "
                                  "source's other columns")
        for item in sel.items:
            star = item.expr
            if isinstance(star, ast.Star) and (star.table is None or star.table.lower() in aliases):
                which = ", ".join(f"'{n}' ({t})" for n, t in left_out.items())
                raise SqlError.at(sql, star.pos, f"* would read column{'s' if len(left_out) > 1 else ''} "
                                  f"{which} of '{source}': velostream does not take "
                                  f"{'these types' if len(left_out) > 1 else 'this type'} "
                                  f"(docs/SQL.md, \"Types at the boundary\"); list the columns "
                                  f"you want instead of *")

    def check_query(q, scope: set) -> None:
        scope = set(scope)
        for cte in q.ctes:
            check_query(cte.query, scope)
            scope.add(cte.name.lower())
        for sel in (q.select, *q.union_all):
            check_select(sel, scope)

    defined: set = set()  # relations the earlier statements define shadow a source's name
    for stmt in statements:
        if stmt.select is not None:
            check_query(stmt.query, defined)
        if stmt.create_name is not None and not stmt.declared:
            defined.add(stmt.create_name.lower())


def passthrough_types(plan, fixed: pa.Schema) -> list[Optional[pa.DataType]]:
    """Per output column, the Arrow type it leaves with when it passes an input column through
    unchanged (a bare column in SELECT, a GROUP BY key): the type it came in with (docs/SQL.md,
    "Types at the boundary"); None for a computed column (the engine's own type). Timestamps leave
    as epoch-ms BIGINT, the one documented way, whatever unit they came in."""
    bounds = [b for _, b in plan.outputs]
    ids = list(map(id, bounds))
    seen = passthrough_by_bound(plan, fixed, dict(zip(ids, bounds)))
    return list(map(seen.__getitem__, ids))


def passthrough_by_bound(plan, fixed: pa.Schema, bounds: dict) -> dict:
    """``passthrough_types`` per distinct bound item: ``bounds`` maps a key (the item's id) to
    the bound item, and the answer maps the same key to its type (or None)."""
    from .exec.expressions import BCol
    # per input column, the type it leaves with (looked up once: a select list can be 300,000
    # items long, and Schema.names builds a new list on every call)
    kept = {f.name: (f.type if kind_of(f.type) in ("int", "float", "text", "bool", "decimal")
                     else None) for f in fixed}

    def leaves_as(b):  # per distinct bound item (a select list's repeated column shares one)
        src = None
        if isinstance(b, BCol):
            if b.name.startswith("__k") and plan.shape == "aggregate":
                k = plan.keys[int(b.name[3:])]
                src = k.name if isinstance(k, BCol) else None
            elif not b.name.startswith("__"):
                src = b.name
        return None if src is None else kept.get(src)

    return {k: leaves_as(b) for k, b in bounds.items()}


def conform(rb: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``rb`` (the engine's own output types) in ``schema``: passthrough columns back in the
    types they came in with. Values came from those types, so every cast is exact."""
    if rb.schema.equals(schema):
        return rb
    arrays = []
    for f in schema:
        arr = rb.column(f.name)
        arrays.append(arr if arr.type.equals(f.type) else _cast(arr, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def conform_types(rb: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``conform`` for a batch of a relation whose columns are ``schema``'s (same names, same
    order: a node of a pipeline's graph, velostream.exec.graph): the columns in ``schema``'s
    types. A batch of other columns is left as it is."""
    if rb.schema.equals(schema) or rb.schema.names != schema.names:
        return rb
    return conform(rb, schema)
