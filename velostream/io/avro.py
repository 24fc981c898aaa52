"""Avro payloads: one record per Kafka message, schemaless or in Confluent's wire format.

Schemaless (``avro.schema.file``): the payload is the Avro binary record alone, the writer schema
comes from the file. With a Schema Registry (``schema.registry.url``), each payload is Confluent's
wire format: a magic byte 0, the writer schema's id (4 bytes, big-endian), then the Avro binary
record; the sink registers its writer schema under the subject ``<topic>-value``
(TopicNameStrategy) and the source looks up each id it meets, once (docs/CONNECTORS.md).

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
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import pyarrow as pa

from ..errors import ConnectError, JobError
from .base import ConfigError, Reject

if TYPE_CHECKING:
    from .base import Properties

_PRIMITIVE = {
    "null": pa.null(), "boolean": pa.bool_(), "int": pa.int64(), "long": pa.int64(),
    "float": pa.float64(), "double": pa.float64(), "string": pa.string(), "bytes": pa.binary(),
}
_LOGICAL = {
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}
#: Confluent's wire format: magic byte 0, then the schema id as a big-endian int32
_HEADER = struct.Struct(">bI")
#: an id the registry did not know is asked for again after this long (a flood of bad messages
#: must not become a flood of registry calls; a schema registered meanwhile is still found)
_UNKNOWN_ID_RETRY_S = 10.0


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
        if lt == "decimal" and t.get("type") in ("bytes", "fixed"):
            precision, scale = int(t["precision"]), int(t.get("scale", 0))
            if precision > 18:  # DECIMAL is an int64 scaled by 10**scale (docs/SQL.md)
                raise ConfigError(f"Avro field '{where}': decimal({precision}, {scale}) has more "
                                  f"than 18 digits")
            return pa.decimal128(precision, scale), False
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
    if pa.types.is_decimal(t):  # exact: the unscaled value as big-endian two's complement bytes
        return {"type": "bytes", "logicalType": "decimal", "precision": t.precision,
                "scale": t.scale}
    raise ConfigError(f"no Avro type for Arrow type {t}")


def avro_schema_from_arrow(schema: pa.Schema, name: str = "Row") -> dict:
    """A record schema with every field nullable (``["null", T]``)."""
    return {"type": "record", "name": name,
            "fields": [{"name": f.name, "type": ["null", _avro_type(f.type)], "default": None}
                       for f in schema]}


# ----------------------------------------------------------------------------- schema registry
_clients: dict = {}
_clients_lock = threading.Lock()


def registry_client(url: str, conf: Optional[dict] = None):
    """The process's client for the registry at ``url`` (one per URL and settings, shared by the
    job's source and sink). ``mock://scope`` is confluent_kafka's ``MockSchemaRegistryClient``:
    it keeps its schemas in memory, so sharing the client is what lets a source in this process
    read what a sink in this process registered."""
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:
        raise ConfigError("a schema registry needs confluent-kafka: "
                          "pip install 'velostream[kafka]'") from exc
    key = (url, tuple(sorted((conf or {}).items())))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = SchemaRegistryClient.new_client({"url": url, **(conf or {})})
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"schema.registry.url '{url}': {exc}") from None
            _clients[key] = client
        return client


def _registry_error(exc: BaseException) -> Optional[int]:
    """The HTTP status of a registry's answer, or None when no answer came (not reachable)."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    return exc.http_status_code if isinstance(exc, SchemaRegistryError) else None


class AvroCodec:
    """Encodes record batches into Avro payloads and decodes them back, many at once.

    ``schema``: the Avro record schema, the writer schema when encoding and the reader schema
    (the columns) when decoding; None to take it from the first batch encoded (a sink without
    ``avro.schema.file``) or, with a registry, from the subject's latest version when decoding.
    ``registry``: a schema registry client (``registry_client``) for Confluent's wire format;
    ``subject``: where the writer schema is registered (``<topic>-value``).
    """

    def __init__(self, schema: Optional[dict], registry=None, subject: Optional[str] = None,
                 url: str = ""):
        import fastavro
        self._fastavro = fastavro
        self.registry = registry
        self.subject = subject
        self.url = url
        self.schema: Optional[dict] = None
        self.parsed = None
        self.arrow: Optional[pa.Schema] = None
        self._read = fastavro.schemaless_reader
        self._write = fastavro.schemaless_writer
        self._schema_id: Optional[int] = None    # the registered id of ``schema``
        self._header = b""                       # what precedes each encoded record
        #: schema id -> (parsed writer schema, parsed reader schema), or None when the writer
        #: schema is ``schema`` itself
        self._writers: dict[int, Any] = {}
        self._unknown: dict[int, float] = {}     # schema id -> when the registry did not know it
        if schema is not None:
            self._set_schema(schema)

    def _set_schema(self, schema: dict) -> None:
        self.arrow = arrow_schema(schema)
        self.schema = schema
        self.parsed = self._fastavro.parse_schema(schema)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str, **kw) -> "AvroCodec":
        try:
            with open(path) as f:
                schema = json.load(f)
        except OSError as exc:
            raise ConfigError(f"avro.schema.file '{path}': {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"avro.schema.file '{path}' is not valid JSON: {exc}") from None
        return cls(schema, **kw)

    @classmethod
    def from_arrow(cls, schema: pa.Schema, **kw) -> "AvroCodec":
        return cls(avro_schema_from_arrow(schema), **kw)

    @classmethod
    def from_properties(cls, props: "Properties", topic: Optional[str] = None) -> "AvroCodec":
        """The codec a Kafka source or sink's properties describe (``JobSpec.source`` /
        ``.sink``): ``avro.schema.file`` (optional with a registry), ``schema.registry.url`` and
        any ``schema.registry.*`` client setting (``schema.registry.basic.auth.user.info``, ...)."""
        topic = topic or props.get("topic")
        url = props.get("schema.registry.url")
        path = props.get("avro.schema.file")
        kw: dict = {}
        if url:
            conf = {k[len("schema.registry."):]: props.get(k) for k in list(props.values)
                    if k.startswith("schema.registry.") and k != "schema.registry.url"}
            if not topic:
                raise ConfigError(f"'{props.name}.topic' is required with schema.registry.url")
            kw = dict(registry=registry_client(url, conf), subject=f"{topic}-value", url=url)
        if path:
            return cls.from_file(path, **kw)
        return cls(None, **kw)

    # -- the registry ---------------------------------------------------------------------------
    def _register(self) -> None:
        """Register the writer schema under the subject (once; the id is kept)."""
        from confluent_kafka.schema_registry import Schema
        try:
            self._schema_id = int(self.registry.register_schema(
                self.subject, Schema(json.dumps(self.schema), "AVRO")))
        except Exception as exc:  # noqa: BLE001 - the client raises httpx and its own errors
            status = _registry_error(exc)
            if status is None:
                raise ConnectError(f"schema registry {self.url} unreachable: {exc}") from None
            raise JobError(f"schema registry {self.url} refused the schema for subject "
                           f"'{self.subject}': {exc}") from None
        self._header = _HEADER.pack(0, self._schema_id)
        self._writers[self._schema_id] = None

    def _reader_from_subject(self, ids: list) -> None:
        """No ``avro.schema.file``: the columns are the subject's latest schema (or, with no
        subject yet, that of the first message whose schema id the registry knows)."""
        try:
            reg = self.registry.get_latest_version(self.subject)
            schema, sid = reg.schema.schema_str, reg.schema_id
        except Exception as exc:  # noqa: BLE001
            status = _registry_error(exc)
            if status is None:
                raise ConnectError(f"schema registry {self.url} unreachable: {exc}") from None
            if status != 404:
                raise JobError(f"schema registry {self.url}: reading subject "
                               f"'{self.subject}' failed: {exc}") from None
            for sid in ids:
                try:
                    schema = self.registry.get_schema(sid).schema_str
                    break
                except Exception as exc2:  # noqa: BLE001
                    if _registry_error(exc2) != 404:
                        raise JobError(f"schema registry {self.url}: looking up schema id "
                                       f"{sid} failed: {exc2}") from None
            else:
                return  # none known: the caller rejects the batch
        self._set_schema(json.loads(schema))
        self._writers[sid] = None

    def _writer(self, schema_id: int):
        """(writer, reader) schemas of an id, parsed, asked once of the registry (``decode``
        keeps them). Raises KeyError for an id the registry does not know (a bad record)."""
        when = self._unknown.get(schema_id)
        if when is not None and time.monotonic() - when < _UNKNOWN_ID_RETRY_S:
            raise KeyError(schema_id)
        try:
            text = self.registry.get_schema(schema_id).schema_str
        except Exception as exc:  # noqa: BLE001
            status = _registry_error(exc)
            if status == 404:
                self._unknown[schema_id] = time.monotonic()
                raise KeyError(schema_id) from None
            if status is None:
                raise ConnectError(f"schema registry {self.url} unreachable: {exc}") from None
            raise JobError(f"schema registry {self.url}: looking up schema id {schema_id} "
                           f"failed: {exc}") from None
        writer = json.loads(text)
        arrow_schema(writer)  # a writer schema whose fields cannot be columns is refused here
        parsed = self._fastavro.parse_schema(writer)
        self._unknown.pop(schema_id, None)
        canonical = self._fastavro.schema.to_parsing_canonical_form
        if canonical(parsed) == canonical(self.parsed):
            pair = None  # the reader schema itself: decoded without resolution (faster)
        else:
            # the subject, not the record's name, says what a message is: a writer record named
            # otherwise (a sink's derived schema is "Row") resolves through an alias
            reader = self.schema
            if writer.get("name") != reader.get("name"):
                reader = dict(reader, aliases=list(reader.get("aliases", [])) + [writer["name"]])
            pair = (parsed, self._fastavro.parse_schema(reader))
        self._writers[schema_id] = pair
        return pair

    # -- decoding -------------------------------------------------------------------------------
    def decode(self, payloads: Sequence[bytes], position: Callable[[int], str], source: str = ""
               ) -> tuple[Optional[pa.RecordBatch], list[Reject], list[int]]:
        """(rows, rejects, indices of the payloads that became rows)."""
        if self.registry is not None:
            return self._decode_framed(payloads, position, source)
        if self.parsed is None:
            raise ConfigError("schemaless Avro needs its schema: give avro.schema.file "
                              "(or schema.registry.url for Confluent's wire format)")
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
        return self._batch(rows, rejects, good)

    def _decode_framed(self, payloads: Sequence[bytes], position: Callable[[int], str],
                       source: str) -> tuple[Optional[pa.RecordBatch], list[Reject], list[int]]:
        """Confluent's wire format; a payload too short for the header, with another magic byte,
        an id the registry does not know or an undecodable record is a reject."""
        if not payloads:
            return None, [], []
        if self.schema is None:
            ids = dict.fromkeys(_HEADER.unpack_from(p)[1] for p in payloads
                                if p is not None and len(p) >= 5 and p[0] == 0)
            self._reader_from_subject(list(ids))
            if self.schema is None:  # no known schema yet: every payload is a reject
                return self._batch([], [Reject(source, position(i), "undecodable Avro: no schema "
                                               f"of subject '{self.subject}' or of the message's "
                                               f"id in the registry {self.url}",
                                               bytes(p) if p is not None else b"")
                                        for i, p in enumerate(payloads)], [])
        read, reader, BytesIO, unpack = self._read, self.parsed, io.BytesIO, _HEADER.unpack_from
        writers = self._writers
        rows: list[dict] = []
        good: list[int] = []
        rejects: list[Reject] = []
        for i, p in enumerate(payloads):
            try:
                if len(p) < 5:
                    raise ValueError(f"{len(p)} bytes, too short for the 5-byte Confluent header")
                magic, sid = unpack(p)
                if magic != 0:
                    raise ValueError(f"magic byte {magic & 0xFF} (Confluent's wire format starts "
                                     f"with 0)")
                try:
                    writer = writers[sid]
                except KeyError:
                    try:
                        writer = self._writer(sid)
                    except KeyError:
                        raise ValueError(f"schema id {sid} is not in the registry "
                                         f"{self.url}") from None
                buf = BytesIO(p)
                buf.seek(5)
                # the reader's own id decodes directly; another writer resolves to the reader
                rows.append(read(buf, reader) if writer is None else read(buf, *writer))
                if buf.tell() != len(p):
                    raise ValueError(f"{len(p) - buf.tell()} trailing bytes after the record")
                good.append(i)
            except Exception as exc:  # noqa: BLE001 - any undecodable payload is a reject
                if isinstance(exc, (JobError, ConnectError)):
                    raise  # the registry is down or failing: not this record's fault
                if len(rows) > len(good):
                    rows.pop()
                rejects.append(Reject(source, position(i), f"undecodable Avro: {exc}",
                                      bytes(p) if p is not None else b""))
        return self._batch(rows, rejects, good)

    def _batch(self, rows: list, rejects: list, good: list):
        if not rows:
            return None, rejects, good
        try:
            rb = pa.RecordBatch.from_pylist(rows, schema=self.arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise ConfigError(f"Avro records do not fit the schema: {exc}") from None
        return rb, rejects, good

    # -- encoding -------------------------------------------------------------------------------
    def encode(self, rb: pa.RecordBatch) -> list[bytes]:
        """One payload per row (with a registry: each framed with the registered schema's id)."""
        if self.schema is None:
            self._set_schema(avro_schema_from_arrow(rb.schema))
        if self.registry is not None and self._schema_id is None:
            self._register()
        write, parsed, header = self._write, self.parsed, self._header
        buf = io.BytesIO()
        out = []
        for row in rb.to_pylist():
            buf.seek(0)
            buf.truncate()
            buf.write(header)
            write(buf, parsed, row)
            out.append(buf.getvalue())
        return out
