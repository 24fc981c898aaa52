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

A ``uint64`` value above 2^63-1 does not fit BIGINT: its row is a bad record (``bad_rows``), counted
and dead-lettered by the engine, and the rest of the batch goes on.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from ._lazy import pc  # imported when first used: see the module
from .batch import SqlType, arrow_type_of, type_of_arrow
from .errors import SchemaMismatch

INT64_MAX = np.iinfo(np.int64).max


_KINDS = {"INT64": "int", "FLOAT64": "float", "BOOL": "bool", "STRING": "text",
          "TIMESTAMP": "time", "DECIMAL": "decimal", "NULL": "null"}


def kind_of(t: pa.DataType) -> str:
    """The family an Arrow type belongs to, as the engine holds it (``type_of_arrow``), or
    "other" for a type the engine does not take."""
    try:
        return _KINDS[type_of_arrow(t).kind]
    except TypeError:  # more than 18 digits is still a decimal (type_of_arrow says why not)
        return "decimal" if pa.types.is_decimal(t) else "other"


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
        # columns of the null type whose type a later batch has just fixed (the plan rebinds)
        self.learned: list[str] = []
        if declared is not None:  # TIMESTAMP is declared as time, whatever it leaves as
            self.fixed = pa.schema([(n, pa.timestamp("ms") if t.kind == "TIMESTAMP" else arrow_type_of(t))
                                    for n, t in declared.items()])

    def sql_schema(self) -> dict[str, SqlType]:
        return {f.name: type_of_arrow(f.type) for f in self.fixed}

    def bind(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        """``rb`` in the fixed schema (see the module docstring), or ``SchemaMismatch``."""
        self.learned = []
        schema = rb.schema
        if self.fixed is None:
            for f in schema:
                if kind_of(f.type) == "other":
                    raise SchemaMismatch(self.source, f.name, f.type, f.type,
                                         "velostream does not take this type")
                if pa.types.is_decimal(f.type):
                    type_of_arrow(f.type)  # more than 18 digits: a clear error
            if any(pa.types.is_string_view(t) for t in schema.types):
                # text as Arrow's string view (what Polars exports) is fixed as plain strings,
                # the layout the kernels read; a later view batch is cast like any string layout
                schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_string_view(f.type)
                                    else f for f in schema], metadata=schema.metadata)
                self.fixed = schema
                return self._conform(rb)
            self.fixed = schema
            return rb
        if schema.equals(self.fixed):  # the usual case: one check per batch
            return rb
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
                    raise SchemaMismatch(self.source, f.name, f.type, got,
                                         "velostream does not take this type")
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
            self.fixed = pa.schema(fields, metadata=self.fixed.metadata)
            self.learned = learned
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=rb.schema.metadata))

    def bad_rows(self, rb: pa.RecordBatch) -> Optional[np.ndarray]:
        """Rows that cannot be held as the engine holds their column (a uint64 above 2^63-1),
        as a bool mask, or None when every row fits."""
        bad = None
        for name, t in zip(rb.schema.names, rb.schema.types):
            vt = t.value_type if pa.types.is_dictionary(t) else t
            if not pa.types.is_uint64(vt):
                continue
            col = rb.column(name)
            if pa.types.is_dictionary(t):
                col = col.dictionary_decode()
            over = pc.fill_null(pc.greater(col, pa.scalar(INT64_MAX, pa.uint64())), False)
            if pc.any(over).as_py():
                m = over.to_numpy(zero_copy_only=False)
                bad = m if bad is None else (bad | m)
        return bad


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
