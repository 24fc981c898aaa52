"""Decoding JSON records into Arrow record batches (shared by the JSONL file source and Kafka).

The fast path hands a whole block of newline-delimited JSON to Arrow's C++ parser
(``pyarrow.json``: multi-threaded, no per-record Python). Only a block that Arrow refuses (invalid
JSON, a value of the wrong type) or that needs a per-record check (``fail_on_missing_field`` with
NULLs present) goes through the slow path: every record is parsed by orjson and converted field by
field in Python, so each bad record becomes a ``Reject`` and every good one is still decoded.

Semantics follow Flink's JSON format:

- a field of the schema missing from a record is NULL (a ``Reject`` with ``fail_on_missing_field``);
- a value that does not fit its field's type is a ``Reject`` (``"price": "abc"`` for a DOUBLE), except
  that a STRING field takes any value (numbers, booleans, objects become their JSON text);
- invalid JSON, or JSON that is not an object, is a ``Reject``;
- fields not in the schema are ignored once the schema is fixed.

The schema is fixed by the first block: the explicit override (``schema=``) for the fields it names,
Arrow's inference for the others. Types then stay stable across batches, because the engine binds
its plan to the first batch's schema. A field that is NULL in every record of the first block is
typed STRING (any later value is kept as its text); TIMESTAMP is ``timestamp[ms]`` and takes ISO-8601
text or epoch milliseconds; nested (object or array) fields that were not declared are dropped.

>>> import pyarrow as pa
>>> dec = JsonDecoder("trades", pa.schema([("price", pa.float64())]))
>>> rb, rejects = dec.decode([b'{"sym": "A", "price": 1}', b'{"sym": "B", "price": "abc"}', b'{oops'],
...                          lambda i: f"trades/0@{i}")
>>> rb.to_pylist()
[{'price': 1.0, 'sym': 'A'}]
>>> for r in rejects:
...     print(r.position, r.error.split(",")[0])
trades/0@1 field 'price': expected DOUBLE
trades/0@2 invalid JSON: unexpected character
"""
from __future__ import annotations

import datetime as _dt
import io
import os
import re
from decimal import Decimal, InvalidOperation
from typing import Callable, Optional, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .base import ConfigError, Reject

__all__ = ["JsonDecoder", "parse_schema", "sql_type_name"]

TIMESTAMP_MS = pa.timestamp("ms")

# ------------------------------------------------------------------------------ schema text

_SQL_TYPES = {
    "TINYINT": pa.int64(), "SMALLINT": pa.int64(), "INT": pa.int64(), "INTEGER": pa.int64(),
    "BIGINT": pa.int64(), "FLOAT": pa.float64(), "REAL": pa.float64(), "DOUBLE": pa.float64(),
    "STRING": pa.string(), "VARCHAR": pa.string(), "TEXT": pa.string(), "CHAR": pa.string(),
    "BOOLEAN": pa.bool_(), "BOOL": pa.bool_(), "TIMESTAMP": TIMESTAMP_MS, "DATE": pa.date32(),
}
_FIELD_RE = re.compile(r"""\s*(?:`([^`]+)`|"([^"]+)"|([A-Za-z_][\w.]*))\s+([A-Za-z]+)\s*(\(\s*[\d\s,]*\))?\s*$""")


def parse_schema(text: str) -> pa.Schema:
    """A ``schema`` property (``'price DOUBLE, quantity BIGINT, ts TIMESTAMP'``) as an Arrow schema.

    >>> parse_schema("price DOUBLE, qty BIGINT, amount DECIMAL(10, 2), sym VARCHAR(8)").types
    [DataType(double), DataType(int64), Decimal128Type(decimal128(10, 2)), DataType(string)]
    """
    fields = []
    # Split on commas outside parentheses (DECIMAL(10, 2) holds one).
    for part in re.split(r",(?![^(]*\))", text):
        if not part.strip():
            continue
        m = _FIELD_RE.match(part)
        if m is None:
            raise ConfigError(f"schema: cannot read {part.strip()!r} (expected 'name TYPE')")
        name = m.group(1) or m.group(2) or m.group(3)
        kind, args = m.group(4).upper(), m.group(5)
        if kind in ("DECIMAL", "NUMERIC"):
            nums = [int(x) for x in re.findall(r"\d+", args or "")] or [18, 0]
            p, s = (nums + [0])[:2]
            if not 0 < p <= 18 or not 0 <= s <= p:
                raise ConfigError(f"schema: DECIMAL({p}, {s}) for '{name}': precision 1..18, scale 0..precision")
            t = pa.decimal128(p, s)
        elif kind in _SQL_TYPES:
            t = _SQL_TYPES[kind]
        else:
            raise ConfigError(f"schema: unknown type {kind} for '{name}' "
                              f"(known: {', '.join(sorted(_SQL_TYPES))}, DECIMAL(p, s))")
        fields.append(pa.field(name, t))
    if not fields:
        raise ConfigError("schema: no fields")
    return pa.schema(fields)


def sql_type_name(t: pa.DataType) -> str:
    """The SQL name of an Arrow type, for error messages."""
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "STRING"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    return str(t).upper()


# ------------------------------------------------------------------- per-value conversion (slow path)

class _Bad(Exception):
    """A value that does not fit its field's type (the message is the reason)."""


def _show(v) -> str:
    s = orjson.dumps(v).decode()
    return s if len(s) <= 60 else s[:57] + "..."


def _iso_to_ms(s: str) -> int:
    d = _dt.datetime.fromisoformat(s.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return round(d.timestamp() * 1000)


def _converter(t: pa.DataType) -> Callable:
    """A Python function that checks one JSON value against ``t`` and returns what Arrow takes."""
    name = sql_type_name(t)

    def bad(v):
        raise _Bad(f"expected {name}, got {_show(v)}")

    if pa.types.is_integer(t):
        def conv(v):
            if type(v) is int and -(1 << 63) <= v < (1 << 63):
                return v
            bad(v)
    elif pa.types.is_floating(t):
        def conv(v):
            if type(v) is float or type(v) is int:
                return float(v)
            bad(v)
    elif pa.types.is_boolean(t):
        def conv(v):
            if type(v) is bool:
                return v
            bad(v)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        def conv(v):  # Flink: a STRING field takes any JSON value, non-text as its JSON text
            return v if type(v) is str else orjson.dumps(v).decode()
    elif pa.types.is_timestamp(t):
        def conv(v):  # epoch milliseconds or ISO-8601 text, as int64 ms
            if type(v) is int:
                return v
            if type(v) is str:
                try:
                    return _iso_to_ms(v)
                except ValueError:
                    pass
            bad(v)
    elif pa.types.is_date(t):
        def conv(v):
            if type(v) is str:
                try:
                    return _dt.date.fromisoformat(v.strip())
                except ValueError:
                    pass
            bad(v)
    elif pa.types.is_decimal(t):
        def conv(v):
            if type(v) in (int, float, str):
                try:
                    d = Decimal(str(v))
                    pa.scalar(d, t)  # raises if it does not fit precision / scale
                    return d
                except (InvalidOperation, pa.ArrowInvalid, ValueError):
                    pass
            bad(v)
    else:
        def conv(v):
            try:
                pa.scalar(v, t)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                bad(v)
            return v
    return conv


def _python_type(values: list) -> Optional[pa.DataType]:
    """Inference for the slow path (first block had a bad record): the first non-null value's type,
    int widened to double when a double follows. None for nested values (the field is dropped)."""
    t = None
    for v in values:
        if v is None:
            continue
        vt = type(v)
        if vt is bool:
            cand = pa.bool_()
        elif vt is int:
            cand = pa.int64()
        elif vt is float:
            cand = pa.float64()
        elif vt is str:
            cand = pa.string()
        else:
            return None
        if t is None:
            t = cand
        elif t == pa.int64() and cand == pa.float64():
            t = cand
    return pa.string() if t is None else t


# ------------------------------------------------------------------------------ the decoder

_MISSING = object()


class JsonDecoder:
    """JSON objects (one per payload, or one per line of a block) into Arrow record batches.

    ``schema`` overrides the types of the fields it names (the others are inferred from the first
    block); ``fail_on_missing_field`` makes a record without one of the declared fields (all the
    schema's fields when none are declared) a reject.
    After each call ``kept`` is None when every payload became a row, else the int64 indices of the
    payloads (or non-blank lines) that did: the Kafka source uses it to align message timestamps,
    keys and offsets with the rows.
    """

    def __init__(self, source: str, schema: Optional[pa.Schema] = None,
                 fail_on_missing_field: bool = False):
        self.source = source
        self.override = schema
        self.fail_on_missing_field = fail_on_missing_field
        #: The output schema, fixed by the first block decoded.
        self.schema: Optional[pa.Schema] = None
        #: What Arrow parses into: a TIMESTAMP field seen as numbers is parsed as int64 and cast.
        self._parse_schema: Optional[pa.Schema] = None
        self._convs: list = []
        self.kept: Optional[np.ndarray] = None
        self._threads = (os.cpu_count() or 1) > 1

    # -- public ---------------------------------------------------------------------------------
    def decode(self, payloads: Sequence[bytes], position: Callable[[int], str]
               ) -> tuple[Optional[pa.RecordBatch], list[Reject]]:
        """Many JSON objects (one per payload) -> one record batch (None if all were bad) and the
        rejects; ``position(i)`` names payload i's origin ("trades/2@1045")."""
        self.kept = None
        n = len(payloads)
        if n == 0:
            return None, []
        original = payloads
        block = b"\n".join(payloads)
        # Raw newlines in JSON can only be whitespace, so replacing them keeps each payload whole
        # on one line; counting first avoids a per-payload scan when (as usual) there are none.
        if block.count(b"\n") != n - 1:
            payloads = [p.replace(b"\n", b" ").replace(b"\r", b" ") for p in payloads]
            block = b"\n".join(payloads)
        rb = self._fast(block, n)
        if rb is not None:
            return rb, []
        return self._slow(list(original), list(range(n)), position, skip_blank=False)

    def decode_lines(self, buf: bytes, first_line: int, position_prefix: str,
                     n_lines: Optional[int] = None) -> tuple[Optional[pa.RecordBatch], list[Reject]]:
        """A block of newline-delimited JSON (whole lines) -> one record batch and the rejects.
        Blank lines are skipped; a reject's position is ``f"{position_prefix}{line number}"``,
        counting from ``first_line`` for the block's first line. ``n_lines``: the block's line
        count when the caller knows it (saves a pass over the bytes)."""
        self.kept = None
        if not buf:
            return None, []
        if n_lines is None:
            n_lines = buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
        rb = self._fast(buf, n_lines)
        if rb is not None:
            return rb, []
        lines = buf.split(b"\n")
        if buf.endswith(b"\n"):
            lines.pop()
        line_nos = list(range(first_line, first_line + len(lines)))
        return self._slow(lines, line_nos, lambda no: f"{position_prefix}{no}", skip_blank=True)

    # -- the fast path: the whole block through Arrow -------------------------------------------
    def _read_options(self, nbytes: int) -> pj.ReadOptions:
        # Arrow parses blocks in parallel: a block per core, but not so small that the per-block
        # overhead shows, nor so large that one line could span past it (it must hold a line).
        size = 1 << 20 if nbytes > (2 << 20) else max(64 << 10, nbytes // 2 + 1)
        return pj.ReadOptions(use_threads=self._threads, block_size=size)

    def _fast(self, block: bytes, expected_rows: int) -> Optional[pa.RecordBatch]:
        """The block decoded by Arrow, or None when the slow path must look at its records."""
        first = self.schema is None
        if first:
            explicit = None
            if self.override is not None:
                # TIMESTAMP fields are inferred first: the data may hold epoch ms or ISO text.
                explicit = pa.schema([f for f in self.override if not pa.types.is_timestamp(f.type)])
            opts = pj.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="infer",
                                   newlines_in_values=False)
        else:
            opts = pj.ParseOptions(explicit_schema=self._parse_schema,
                                   unexpected_field_behavior="ignore", newlines_in_values=False)
        try:
            table = pj.read_json(io.BytesIO(block), read_options=self._read_options(len(block)),
                                 parse_options=opts)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        # Fewer rows: blank payloads (each a reject) or blank lines; more: two objects on a line.
        if table.num_rows != expected_rows:
            return None
        if first:
            try:
                self._fix_schema(table.schema, None)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        if self.fail_on_missing_field and any(
                n not in table.column_names or table.column(n).null_count for n in self._required):
            return None  # tell a missing field from an explicit null, record by record
        try:
            return self._shape(table)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None

    def _fix_schema(self, inferred: Optional[pa.Schema], values: Optional[dict]) -> None:
        """Fix the output and parse schemas from the first block: Arrow's inferred schema, or
        (slow path) the Python values of each field in order of first appearance."""
        override = {f.name: f.type for f in self.override} if self.override is not None else {}
        names: list[str] = []
        kinds: dict[str, Optional[pa.DataType]] = {}
        if inferred is not None:
            for f in inferred:
                names.append(f.name)
                kinds[f.name] = f.type
        else:
            for name, vals in values.items():
                names.append(name)
                kinds[name] = _python_type(vals)
        out, parse = [], []
        for name in list(override) + [n for n in names if n not in override]:
            seen = kinds.get(name)
            if name in override:
                t = override[name]
                if pa.types.is_timestamp(t):
                    # Numbers are parsed as int64 (epoch ms) and cast; text as timestamps directly.
                    pt = pa.int64() if seen is not None and pa.types.is_integer(seen) else TIMESTAMP_MS
                else:
                    pt = t
            else:
                if seen is None or pa.types.is_nested(seen):
                    continue  # nested values: not an engine type, dropped unless declared
                if pa.types.is_null(seen):
                    seen = pa.string()  # all NULL so far: STRING keeps any later value as text
                elif pa.types.is_timestamp(seen):
                    seen = TIMESTAMP_MS
                t = pt = seen
            out.append(pa.field(name, t))
            parse.append(pa.field(name, pt))
        self.schema = pa.schema(out)
        self._parse_schema = pa.schema(parse)
        self._convs = [_converter(f.type) for f in self.schema]
        # fail_on_missing_field applies to the declared fields, or (none declared) to all of them
        self._required = list(override) if override else self.schema.names

    def _shape(self, table: pa.Table) -> Optional[pa.RecordBatch]:
        """Arrow's table as one batch of exactly the output schema (order, types)."""
        if table.num_rows == 0:
            return None
        cols = []
        for f, pf in zip(self.schema, self._parse_schema):
            if f.name in table.column_names:
                col = table.column(f.name)
                if col.type != f.type:
                    col = col.cast(f.type)
            else:
                col = pa.nulls(table.num_rows, f.type)
            cols.append(col)
        out = pa.Table.from_arrays(cols, schema=self.schema)
        batches = out.combine_chunks().to_batches()
        return batches[0] if len(batches) == 1 else pa.Table.from_batches(batches).combine_chunks().to_batches()[0]

    # -- the slow path: record by record -------------------------------------------------------
    def _slow(self, records: list[bytes], ids: list[int], position: Callable[[int], str],
              skip_blank: bool) -> tuple[Optional[pa.RecordBatch], list[Reject]]:
        """Every record parsed by orjson and converted field by field: the bad ones become
        rejects (in input order), the good ones one batch."""
        bad: list[tuple[int, str]] = []      # (index in records, error)
        objs: list[tuple[int, int, dict]] = []  # (index in records, index among non-blank, object)
        k = 0  # records that count as input (blank lines of a file do not)
        for i, rec in enumerate(records):
            if not rec.strip():
                if not skip_blank:
                    bad.append((i, "empty payload"))
                    k += 1
                continue
            try:
                obj = orjson.loads(rec)
            except orjson.JSONDecodeError as e:
                bad.append((i, f"invalid JSON: {e}"))
            else:
                if type(obj) is dict:
                    objs.append((i, k, obj))
                else:
                    bad.append((i, f"not a JSON object: {_show(obj)}"))
            k += 1
        if self.schema is None:
            if not objs:
                return None, self._rejects(bad, records, ids, position)
            values: dict[str, list] = {}
            for _, _, o in objs:
                for key, v in o.items():
                    values.setdefault(key, []).append(v)
            self._fix_schema(None, values)
        names = self.schema.names
        required = set(self._required)
        columns: list[list] = [[] for _ in names]
        good: list[int] = []
        for i, kk, obj in objs:
            row = []
            error = None
            for name, conv in zip(names, self._convs):
                v = obj.get(name, _MISSING)
                if v is _MISSING:
                    if self.fail_on_missing_field and name in required:
                        error = f"missing field '{name}'"
                        break
                    v = None
                elif v is not None:
                    try:
                        v = conv(v)
                    except _Bad as e:
                        error = f"field '{name}': {e}"
                        break
                row.append(v)
            if error is not None:
                bad.append((i, error))
                continue
            for col, v in zip(columns, row):
                col.append(v)
            good.append(kk)
        rejects = self._rejects(bad, records, ids, position)
        if len(good) != k:
            self.kept = np.asarray(good, dtype=np.int64)
        if not good:
            return None, rejects
        arrays = []
        for f, vals in zip(self.schema, columns):
            if pa.types.is_timestamp(f.type):
                arrays.append(pa.array(vals, pa.int64()).cast(f.type))
            else:
                arrays.append(pa.array(vals, f.type))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema), rejects

    def _rejects(self, bad, records, ids, position) -> list[Reject]:
        bad.sort()
        return [Reject(self.source, position(ids[i]), err, bytes(records[i])) for i, err in bad]
