"""Avro payloads (schemaless: one record per Kafka message, the writer schema from a file).

>>> import pyarrow as pa
>>> codec = AvroCodec.from_arrow(pa.schema([("symbol", pa.string()), ("price", pa.float64())]))
>>> payloads = codec.encode(pa.RecordBatch.from_pydict({"symbol": ["AAPL"], "price": [190.5]}))
>>> rb, rejects, kept = codec.decode(payloads, lambda i: f"row {i}", source="trades")
>>> rb.to_pylist(), rejects, kept
([{'symbol': 'AAPL', 'price': 190.5}], [], [0])
"""
from __future__ import annotations

import io
import json
from typing import Any, Callable, Optional, Sequence

import pyarrow as pa

from .base import ConfigError, Reject

_PRIMITIVE = {
    "null": pa.null(), "boolean": pa.bool_(), "int": pa.int64(), "long": pa.int64(),
    "float": pa.float64(), "double": pa.float64(), "string": pa.string(), "bytes": pa.binary(),
}
_LOGICAL = {
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


def _arrow_type(t: Any, where: str) -> tuple[pa.DataType, bool]:
    """(Arrow type, nullable) of an Avro type."""
    if isinstance(t, list):  # a union: only [null, T] (either order) maps to a column
        others = [x for x in t if x != "null"]
        if len(others) != 1:
            raise ConfigError(f"Avro field '{where}': only unions of null and one type are "
                              f"supported, got {t}")
        return _arrow_type(others[0], where)[0], True
    if isinstance(t, dict):
        lt = t.get("logicalType")
        if lt in _LOGICAL:
            return _LOGICAL[lt], False
        if t.get("type") == "enum":
            return pa.string(), False
        if t.get("type") in _PRIMITIVE:
            return _PRIMITIVE[t["type"]], False
        raise ConfigError(f"Avro field '{where}': type {t.get('type')!r} is not supported "
                          f"(records, arrays and maps cannot be columns)")
    if t in _PRIMITIVE:
        return _PRIMITIVE[t], False
    raise ConfigError(f"Avro field '{where}': type {t!r} is not supported")


def arrow_schema(avro_schema: dict) -> pa.Schema:
    """The columns of an Avro record schema."""
    if avro_schema.get("type") != "record":
        raise ConfigError("an Avro schema for a stream must be a record")
    fields = []
    for f in avro_schema["fields"]:
        t, _ = _arrow_type(f["type"], f["name"])
        fields.append(pa.field(f["name"], t, nullable=True))
    return pa.schema(fields)


def _avro_type(t: pa.DataType) -> Any:
    if pa.types.is_integer(t):
        return "long"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_timestamp(t):
        return {"type": "long", "logicalType": "timestamp-millis"}
    if pa.types.is_date(t):
        return {"type": "int", "logicalType": "date"}
    if pa.types.is_decimal(t):
        return "double"
    raise ConfigError(f"no Avro type for Arrow type {t}")


def avro_schema_from_arrow(schema: pa.Schema, name: str = "Row") -> dict:
    """A record schema with every field nullable (``["null", T]``)."""
    return {"type": "record", "name": name,
            "fields": [{"name": f.name, "type": ["null", _avro_type(f.type)], "default": None}
                       for f in schema]}


class AvroCodec:
    """Encodes record batches into schemaless Avro payloads and decodes them back, many at once."""

    def __init__(self, schema: dict):
        import fastavro
        self.schema = schema
        self.parsed = fastavro.parse_schema(schema)
        self.arrow = arrow_schema(schema)
        self._read = fastavro.schemaless_reader
        self._write = fastavro.schemaless_writer

    @classmethod
    def from_file(cls, path: str) -> "AvroCodec":
        try:
            with open(path) as f:
                schema = json.load(f)
        except OSError as exc:
            raise ConfigError(f"avro.schema.file '{path}': {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"avro.schema.file '{path}' is not valid JSON: {exc}") from None
        return cls(schema)

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> "AvroCodec":
        return cls(avro_schema_from_arrow(schema))

    def decode(self, payloads: Sequence[bytes], position: Callable[[int], str], source: str = ""
               ) -> tuple[Optional[pa.RecordBatch], list[Reject], list[int]]:
        """(rows, rejects, indices of the payloads that became rows)."""
        read, parsed, BytesIO = self._read, self.parsed, io.BytesIO
        rows: list[dict] = []
        good: list[int] = []
        rejects: list[Reject] = []
        for i, p in enumerate(payloads):
            try:
                buf = BytesIO(p)
                rows.append(read(buf, parsed))
                if buf.tell() != len(p):
                    raise ValueError(f"{len(p) - buf.tell()} trailing bytes after the record")
                good.append(i)
            except Exception as exc:  # noqa: BLE001 - any undecodable payload is a reject
                if len(rows) > len(good):
                    rows.pop()
                rejects.append(Reject(source, position(i), f"undecodable Avro: {exc}",
                                      bytes(p) if p is not None else b""))
        if not rows:
            return None, rejects, good
        try:
            rb = pa.RecordBatch.from_pylist(rows, schema=self.arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise ConfigError(f"Avro records do not fit the schema: {exc}") from None
        return rb, rejects, good

    def encode(self, rb: pa.RecordBatch) -> list[bytes]:
        """One payload per row."""
        write, parsed = self._write, self.parsed
        buf = io.BytesIO()
        out = []
        for row in rb.to_pylist():
            buf.seek(0)
            buf.truncate()
            write(buf, parsed, row)
            out.append(buf.getvalue())
        return out
