"""Decoding JSON records into Arrow record batches (shared by the JSONL file source and Kafka).

Once the schema is fixed and every field is BIGINT, DOUBLE, BOOLEAN, STRING or TIMESTAMP, a block
goes through the compiled decoder (``velostream._core.jsonl``: flat objects, one pass without the
GIL, ~600 MB/s on one core, several times Arrow's rate): it returns the good rows as columns and flags the bad lines, and
only those are looked at again in Python (below) for their reject messages. Otherwise (the first
block, whose schema is inferred; DATE / DECIMAL fields) the fast path hands the whole block to
Arrow's C++ parser (``pyarrow.json``: multi-threaded, no per-record Python). Only a block that
Arrow refuses (invalid JSON, a value of the wrong type), that holds bytes that are not UTF-8
(which Arrow's reader would keep as they are) or that needs a per-record check
(``fail_on_missing_field`` with NULLs present) goes through the slow path: every record is parsed
by orjson and converted field by field in Python, so each bad record becomes a ``Reject`` and every
good one is still decoded.

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
import pyarrow.json as pj

from .._lazy import pc  # imported when first used: see the module
from .base import ConfigError, Reject

try:
    from velostream._core import jsonl as _jsonl
except ImportError:  # not built: every block takes the Arrow path
    _jsonl = None

__all__ = ["JsonDecoder", "parse_schema", "sql_type_name", "is_utf8", "non_utf8_at"]

TIMESTAMP_MS = pa.timestamp("ms")

# ------------------------------------------------------------------------------ UTF-8 checks

def non_utf8_at(buf: bytes) -> int:
    """The offset of the first byte of ``buf`` that is not part of UTF-8 text, or -1: one pass
    of the compiled checker (GB/s on ASCII)."""
    if _jsonl is not None:
        return _jsonl.utf8_invalid_offset(buf)
    try:
        bytes(buf).decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return -1


def is_utf8(buf: bytes) -> bool:
    """Whether ``buf`` is UTF-8 text throughout."""
    return non_utf8_at(buf) < 0


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


def _text_to_timestamp(arr: pa.Array) -> Optional[pa.Array]:
    """ISO-8601 text as timestamp[ms], as Arrow's JSON reader converts it (a zone offset is
    applied, giving UTC), or None if some value does not convert."""
    try:
        return arr.cast(TIMESTAMP_MS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # every value with a zone offset ("...Z", "...+01:00")
        return arr.cast(pa.timestamp("ms", "UTC")).cast(TIMESTAMP_MS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _invalid_json(rec: bytes, e: Exception) -> str:
    """Why orjson refused a record; for bytes that are not UTF-8 (orjson's message then names a
    surrogate at char 0), where they are."""
    at = non_utf8_at(rec)
    if at >= 0:
        return f"text that is not UTF-8 (byte {at + 1} of the record)"
    return f"invalid JSON: {e}"


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
        #: The compiled decoder's field kinds (None: the schema is not fixed, or not flat).
        self._kinds: Optional[np.ndarray] = None
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
        if self._kinds is not None:
            out = self._compiled(block, True, lambda i, s, e: original[i], lambda i: i, position)
            if out is not None:
                return out
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
        if self._kinds is not None:
            out = self._compiled(buf, False, lambda i, s, e: buf[s:e], lambda i: first_line + i,
                                 lambda no: f"{position_prefix}{no}")
            if out is not None:
                return out
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
        if not is_utf8(block):
            # Arrow's JSON reader does not check UTF-8: it would keep the bytes as they are.
            # orjson refuses such a record, as the compiled decoder does.
            return None
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
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
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
        self._setup_compiled()

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

    # -- the compiled path: flat records, known schema -----------------------------------------
    def _setup_compiled(self) -> None:
        """The compiled decoder's field kinds, when every field of the fixed schema has one."""
        self._kinds = None
        if _jsonl is None or not len(self.schema):
            return
        kinds = []
        for f, pf in zip(self.schema, self._parse_schema):
            t, pt = f.type, pf.type
            if pt == pa.int64() and (t == pa.int64() or t == TIMESTAMP_MS):
                kinds.append(_jsonl.KIND_INT64)  # TIMESTAMP of epoch ms: the same int64 buffer
            elif pt == pa.float64() and t == pa.float64():
                kinds.append(_jsonl.KIND_FLOAT64)
            elif pt == pa.bool_() and t == pa.bool_():
                kinds.append(_jsonl.KIND_BOOL)
            elif pt == pa.string() and t == pa.string():
                kinds.append(_jsonl.KIND_STRING)
            elif pt == TIMESTAMP_MS and t == TIMESTAMP_MS:
                kinds.append(_jsonl.KIND_STRING)  # ISO-8601 text, converted by Arrow after
            else:
                return  # DATE, DECIMAL, ...: the Arrow path
        required = set(self._required)
        self._kinds = np.asarray(kinds, dtype=np.uint8)
        self._required_mask = np.asarray([n in required for n in self.schema.names], dtype=np.uint8)

    def _compiled(self, buf: bytes, payloads: bool, record_of: Callable, id_of: Callable,
                  position: Callable) -> Optional[tuple[Optional[pa.RecordBatch], list[Reject]]]:
        """The block through the compiled decoder; None when the old path must decide the block
        (a line it flags that Python finds good, values it leaves to Arrow that Arrow refuses).
        ``record_of(line, start, end)``: the record of a bad line as the slow path sees it."""
        try:
            r = _jsonl.decode_flat_lines(buf, self.schema.names, self._kinds,
                                         self._required_mask if self.fail_on_missing_field else None,
                                         payloads)
        except ValueError:
            return None
        rejects = []
        lines = r["bad_line"]
        if len(lines):
            # The reject messages are the slow path's, record by record: same text for the same input.
            for i, s, e in zip(lines.tolist(), r["bad_start"].tolist(), r["bad_end"].tolist()):
                rec = record_of(i, s, e)
                err = self._record_error(rec, skip_blank=not payloads)
                if err is None:
                    return None  # stricter than orjson here (deep nesting): the old path decides
                rejects.append(Reject(self.source, position(id_of(i)), err, bytes(rec)))
        n = r["rows"]
        arrays = self._arrays(r) if n else []
        if arrays is None:
            return None
        if len(lines):
            self.kept = np.delete(np.arange(r["records"], dtype=np.int64), r["bad_record"])
        if n == 0:
            return None, rejects
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema), rejects

    def _arrays(self, r: dict) -> Optional[list]:
        """The compiled decoder's columns as Arrow arrays of the output schema (zero copy but for
        the validity bitmaps), or None when a TIMESTAMP text column does not convert."""
        n = r["rows"]
        fix_rows, fix_fields = r["fixup_row"], r["fixup_field"]
        out = []
        for i, (f, kind, col) in enumerate(zip(self.schema, self._kinds, r["columns"])):
            valid = col[-1]
            nulls = n - int(np.count_nonzero(valid))
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
            if kind == _jsonl.KIND_STRING:
                arr = pa.StringArray.from_buffers(n, pa.py_buffer(col[0]), pa.py_buffer(col[1]),
                                                  bitmap, nulls)
                if pa.types.is_timestamp(f.type):
                    if r["nonstring"][i]:
                        return None  # a number for ISO text: the slow path's conversion decides
                    arr = _text_to_timestamp(arr)
                    if arr is None:
                        return None
                elif len(fix_rows) and (fix_fields == i).any():
                    # Non-text values orjson writes differently (1.50 -> 1.5, {"a" : 1} -> {"a":1}):
                    # the slow path's text, for those few cells.
                    vals = arr.to_pylist()
                    try:
                        for row in fix_rows[fix_fields == i].tolist():
                            vals[row] = orjson.dumps(orjson.loads(vals[row])).decode()
                    except orjson.JSONDecodeError:
                        return None
                    arr = pa.array(vals, pa.string())
            else:
                values = col[0]
                if kind == _jsonl.KIND_BOOL:
                    values = np.packbits(values, bitorder="little")
                arr = pa.Array.from_buffers(f.type, n, [bitmap, pa.py_buffer(values)], null_count=nulls)
            out.append(arr)
        return out

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
                bad.append((i, _invalid_json(rec, e)))
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
            row, error = self._convert(obj, names, required)
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

    def _convert(self, obj: dict, names: list[str], required: set) -> tuple[list, Optional[str]]:
        """One object's row of values (Arrow's input), or the reason it is a reject."""
        row = []
        for name, conv in zip(names, self._convs):
            v = obj.get(name, _MISSING)
            if v is _MISSING:
                if self.fail_on_missing_field and name in required:
                    return row, f"missing field '{name}'"
                v = None
            elif v is not None:
                try:
                    v = conv(v)
                except _Bad as e:
                    return row, f"field '{name}': {e}"
            row.append(v)
        return row, None

    def _record_error(self, rec: bytes, skip_blank: bool) -> Optional[str]:
        """Why the slow path rejects this one record (the schema being fixed), or None."""
        if not rec.strip():
            return None if skip_blank else "empty payload"
        try:
            obj = orjson.loads(rec)
        except orjson.JSONDecodeError as e:
            return _invalid_json(rec, e)
        if type(obj) is not dict:
            return f"not a JSON object: {_show(obj)}"
        return self._convert(obj, self.schema.names, set(self._required))[1]

    def _rejects(self, bad, records, ids, position) -> list[Reject]:
        bad.sort()
        return [Reject(self.source, position(ids[i]), err, bytes(records[i])) for i, err in bad]
