"""Avro in Confluent's wire format with a Schema Registry (``schema.registry.url``).

Two registries: confluent_kafka's ``MockSchemaRegistryClient`` (a ``mock://scope`` URL), which
keeps its schemas in the memory of one process, so those end-to-end tests run ``velostream run``
in-process (``velostream.cli.main``); and ``FakeRegistry``, the registry's REST API over HTTP, so
``velostream run`` also runs as its own process through confluent_kafka's real HTTP client. Both
against the real broker of tests/kafka_broker.py, with Confluent's own ``AvroSerializer`` /
``AvroDeserializer`` producing the input and reading the output.
"""
from __future__ import annotations

import json
import random
import struct
import uuid
import zlib
from collections import Counter
from decimal import Decimal

import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka.schema_registry import Schema  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from velostream.io.avro import AvroCodec, registry_client  # noqa: E402
from velostream.io.base import Properties  # noqa: E402
from velostream.jobs.spec import JobSpec  # noqa: E402

TRADE = {"type": "record", "name": "Trade", "fields": [
    {"name": "symbol", "type": ["null", "string"], "default": None},
    {"name": "price", "type": ["null", {"type": "bytes", "logicalType": "decimal",
                                         "precision": 18, "scale": 4}], "default": None},
    {"name": "quantity", "type": ["null", "long"], "default": None},
    {"name": "trade_time", "type": "long"},
]}
#: the extremes of DECIMAL(18, 4) and values around zero
EDGE_PRICES = [Decimal("99999999999999.9999"), Decimal("-99999999999999.9999"), Decimal("0.0000"),
               Decimal("0.0001"), Decimal("-0.0001"), None]


def scope() -> str:
    return f"mock://{uuid.uuid4().hex[:12]}"


def trades(n: int, seed: int, edges: list = EDGE_PRICES) -> list[dict]:
    """Seeded rows with NULLs and ``edges`` first (by default the DECIMAL(18, 4) extremes);
    trade_time rises (one minute windows of a few hundred rows)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        price = edges[i] if i < len(edges) else (
            None if rnd.random() < 0.05 else
            Decimal(rnd.randint(-10**9, 10**9)).scaleb(-4))
        rows.append({"symbol": None if rnd.random() < 0.03 else rnd.choice("ABCDE"),
                     "price": price,
                     "quantity": None if rnd.random() < 0.05 else rnd.randint(-5, 10**6),
                     "trade_time": 1_700_000_000_000 + i * 150})
    return rows


def arrow_of(rows: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=pa.schema([
        ("symbol", pa.string()), ("price", pa.decimal128(18, 4)), ("quantity", pa.int64()),
        ("trade_time", pa.int64())]))


def codec(url: str, topic: str, **props) -> AvroCodec:
    return AvroCodec.from_properties(Properties("t", {"schema.registry.url": url, **props}),
                                     topic=topic)


# -------------------------------------------------------------------------------- the codec

def test_from_properties_of_a_job_spec_and_the_wire_format(tmp_path):
    url = scope()
    schema_file = tmp_path / "trade.avsc"
    schema_file.write_text(json.dumps(TRADE))
    spec = JobSpec.from_sql(
        "CREATE STREAM out AS SELECT symbol, price FROM trades WITH ("
        "'trades.type' = 'kafka_source', 'trades.topic' = 'in', 'trades.bootstrap.servers' = 'x',"
        f"'trades.format' = 'avro', 'trades.schema.registry.url' = '{url}',"
        f"'trades.avro.schema.file' = '{schema_file}',"
        "'out.type' = 'kafka_sink', 'out.topic' = 'out', 'out.bootstrap.servers' = 'x',"
        f"'out.format' = 'avro', 'out.schema.registry.url' = '{url}')", env={})
    sink = AvroCodec.from_properties(spec.sink, topic="out")
    rows = trades(200, seed=1)
    payloads = sink.encode(arrow_of(rows))
    # registered under the TopicNameStrategy subject, and every payload framed with its id
    registered = registry_client(url).get_latest_version("out-value")
    assert all(p[0] == 0 and struct.unpack(">I", p[1:5])[0] == registered.schema_id
               for p in payloads)
    assert "decimal" in registered.schema.schema_str  # DECIMAL stays a decimal, not a double
    # Confluent's deserializer reads what we wrote, exactly
    des = AvroDeserializer(registry_client(url))
    ctx = SerializationContext("out", MessageField.VALUE)
    assert [des(p, ctx) for p in payloads] == rows
    # and our source (the schema file as reader schema) reads it back
    source = AvroCodec.from_properties(spec.source, topic="out")
    rb, rejects, kept = source.decode(payloads, lambda i: f"out/0@{i}", source="trades")
    assert rejects == [] and kept == list(range(len(rows)))
    assert rb.to_pylist() == rows
    assert rb.schema.field("price").type == pa.decimal128(18, 4)


def test_reads_confluents_serializer_without_a_schema_file():
    """No avro.schema.file: the columns are the subject's latest schema."""
    url, topic = scope(), "trades"
    ser = AvroSerializer(registry_client(url), json.dumps(TRADE))
    ctx = SerializationContext(topic, MessageField.VALUE)
    rows = trades(300, seed=2)
    payloads = [ser(r, ctx) for r in rows]
    rb, rejects, _ = codec(url, topic).decode(payloads, str, source="trades")
    assert rejects == [] and rb.to_pylist() == rows


def test_bad_records_unknown_id_wrong_magic_truncated():
    url, topic = scope(), "bad"
    sink = codec(url, topic)
    rows = trades(20, seed=3)
    good = sink.encode(arrow_of(rows))
    unknown = b"\x00" + struct.pack(">I", 4242) + good[7][5:]
    wrong_magic = b"\x01" + good[8][1:]
    truncated = good[9][:-3]
    short = b"\x00\x00"
    payloads = good[:7] + [unknown, wrong_magic, truncated, short] + good[11:]
    src = codec(url, topic)
    rb, rejects, kept = src.decode(payloads, lambda i: f"{topic}/0@{i}", source="bad")
    assert kept == [i for i in range(len(payloads)) if i not in (7, 8, 9, 10)]
    assert rb.to_pylist() == rows[:7] + rows[11:]
    assert [(r.position, r.payload) for r in rejects] == [
        ("bad/0@7", unknown), ("bad/0@8", wrong_magic), ("bad/0@9", truncated), ("bad/0@10", short)]
    assert "schema id 4242" in rejects[0].error and "magic byte 1" in rejects[1].error
    assert "too short" in rejects[3].error


def test_no_schema_anywhere_rejects_and_a_later_schema_is_found():
    """No avro.schema.file, no subject, unknown ids: every message is a reject (none is lost);
    once a sink registered the subject, the same source reads."""
    url, topic = scope(), "late"
    src = codec(url, topic)
    stray = [b"\x00" + struct.pack(">I", 31337) + b"\x02", b"\x05junk"]
    rb, rejects, kept = src.decode(stray, lambda i: f"late/0@{i}", source="late")
    assert rb is None and kept == [] and [(r.position, r.payload) for r in rejects] == [
        ("late/0@0", stray[0]), ("late/0@1", stray[1])]
    rows = trades(10, seed=8)
    rb, rejects, _ = src.decode(codec(url, topic).encode(arrow_of(rows)), str, source="late")
    assert rejects == [] and rb.to_pylist() == rows


class CountingRegistry:
    """A registry client that counts the calls made of it."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(*a, **kw):
            self.calls.append(name)
            return method(*a, **kw)
        return call


def test_schema_ids_are_cached_not_looked_up_per_message():
    url, topic = scope(), "cached"
    client = CountingRegistry(registry_client(url))
    sink = AvroCodec(None, registry=client, subject=f"{topic}-value", url=url)
    rb = arrow_of(trades(500, seed=4))
    payloads = sink.encode(rb) + sink.encode(rb)
    assert client.calls == ["register_schema"]
    # a second writer schema (an added field) under the same subject
    v2 = dict(TRADE, fields=TRADE["fields"] + [{"name": "venue", "type": ["null", "string"],
                                                 "default": None}])
    v2_id = registry_client(url).register_schema(f"{topic}-value", Schema(json.dumps(v2), "AVRO"))
    ser = AvroSerializer(registry_client(url), json.dumps(v2), conf={"auto.register.schemas": False,
                                                                     "use.latest.version": True})
    ctx = SerializationContext(topic, MessageField.VALUE)
    v2_rows = [dict(r, venue="X") for r in trades(50, seed=5)]
    v2_payloads = [ser(r, ctx) for r in v2_rows]
    assert struct.unpack(">I", v2_payloads[0][1:5])[0] == v2_id
    reader = CountingRegistry(registry_client(url))
    src = AvroCodec(TRADE, registry=reader, subject=f"{topic}-value", url=url)
    for _ in range(3):
        out, rejects, _ = src.decode(payloads + v2_payloads, str, source="s")
        assert rejects == []
    # one lookup per schema id, whatever the number of messages and batches
    assert sorted(reader.calls) == ["get_schema", "get_schema"]
    # the v2 rows resolve to the reader schema (the file's columns): venue is not a column
    assert out.to_pylist() == rb.to_pylist() * 2 + [
        {k: v for k, v in r.items() if k != "venue"} for r in v2_rows]


def test_unknown_id_flood_asks_the_registry_once():
    url = scope()
    reader = CountingRegistry(registry_client(url))
    src = AvroCodec(TRADE, registry=reader, subject="x-value", url=url)
    bad = [b"\x00" + struct.pack(">I", 77) + b"\x02" for _ in range(1000)]
    rb, rejects, kept = src.decode(bad, str, source="s")
    assert rb is None and kept == [] and len(rejects) == 1000
    assert reader.calls == ["get_schema"]


# ------------------------------------------------------------------------- end to end (Kafka)

WINDOWED = """SELECT symbol, COUNT(*) AS n, SUM(price) AS total, MIN(price) AS lo,
       SUM(quantity) AS qty
FROM trades
GROUP BY symbol
WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)"""
DUCK = """SELECT symbol, COUNT(*) AS n, SUM(price) AS total, MIN(price) AS lo,
       SUM(quantity) AS qty
FROM t GROUP BY symbol, trade_time // 60000"""
RECORDS = 3000
FAST = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "300", "bounded.drain.ms": "500"}


@pytest.fixture(scope="module")
def registry_topic(kafka_broker):
    """RECORDS trades serialised by Confluent's AvroSerializer on one partition, with an unknown
    schema id, a wrong magic byte and a truncated message among them."""
    url, topic = scope(), kafka_broker.unique_topic("sr-in", partitions=1)
    ser = AvroSerializer(registry_client(url), json.dumps(TRADE))
    ctx = SerializationContext(topic, MessageField.VALUE)
    # sums of a window must fit DECIMAL(18, 4) (beyond, the engine raises: docs/SQL.md)
    rows = trades(RECORDS, seed=6, edges=[Decimal("9999999999999.9999"),
                                          Decimal("-9999999999999.9999"), Decimal("0.0001"), None])
    payloads = [ser(r, ctx) for r in rows]
    bad = {500: b"\x00" + struct.pack(">I", 9999) + payloads[500][5:],
           1500: b"\x07" + payloads[1500][1:],
           2500: payloads[2500][:4]}
    values = [bad.get(i, p) for i, p in enumerate(payloads)]
    # keyed by the GROUP BY column, as a job with state recovery requires
    kafka_broker.produce(topic, values, keys=[(r["symbol"] or "").encode() for r in rows])
    good = [r for i, r in enumerate(rows) if i not in bad]
    return url, topic, good, bad


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_run_kafka_registry_to_kafka_registry_matches_duckdb(kafka_broker, registry_topic,
                                                            tmp_path, capsys, partitions):
    import duckdb

    from velostream import cli
    url, topic, good, bad = registry_topic
    out = kafka_broker.unique_topic("sr-out", partitions=1)
    dead = tmp_path / "dead.jsonl"
    props = {"trades.type": "kafka_source", "trades.topic": topic,
             "trades.bootstrap.servers": kafka_broker.bootstrap,
             "trades.group.id": f"sr-{uuid.uuid4().hex[:8]}", "trades.format": "avro",
             "trades.schema.registry.url": url, "trades.event.time.field": "trade_time",
             **{f"trades.{k}": v for k, v in FAST.items()},
             "agg.type": "kafka_sink", "agg.topic": out, "agg.bootstrap.servers": kafka_broker.bootstrap,
             "agg.format": "avro", "agg.schema.registry.url": url,
             "failure.strategy": "LogAndContinue", "dead.letter.path": str(dead)}
    job = tmp_path / "job.sql"
    job.write_text("CREATE STREAM agg AS\n" + WINDOWED + "\nWITH (" +
                   ", ".join(f"'{k}' = '{v}'" for k, v in props.items()) + ")\n")
    code = cli.main(["run", str(job), "--bounded", "--partitions", str(partitions), "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"done: {RECORDS - len(bad):,} records in" in err and f"{len(bad)} failed" in err
    # the output: framed with the id registered under agg's subject, read by Confluent's reader
    msgs = kafka_broker.consume_all(out)
    sid = registry_client(url).get_latest_version(f"{out}-value").schema_id
    assert msgs and all(struct.unpack(">bI", m.value()[:5]) == (0, sid) for m in msgs)
    des = AvroDeserializer(registry_client(url))
    ctx = SerializationContext(out, MessageField.VALUE)
    got = Counter(tuple(des(m.value(), ctx).values()) for m in msgs)
    t = arrow_of(good)  # noqa: F841 - read by DuckDB's replacement scan
    want = Counter(tuple(r) for r in duckdb.sql(DUCK).fetchall())
    assert got == want  # DECIMAL sums and minimums exact, as Decimal values
    # the three bad messages: dead-lettered with their position and original bytes
    import base64
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted((d["position"], base64.b64decode(d["payload_base64"]) if "payload_base64" in d
                   else d["payload"].encode()) for d in letters) == sorted(
        (f"{topic}/0@{i}", p) for i, p in bad.items())


def test_codec_throughput_bench_runs():
    """bench/avro_registry.py (the registry vs plain Avro comparison) runs on a small input."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parent.parent / "bench" / "avro_registry.py"
    spec = importlib.util.spec_from_file_location("avro_registry", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    timings = mod.measure(2000, repeat=1)
    assert set(timings) == {"plain", "registry"} and all(v > 0 for v in timings.values())


def test_an_unreachable_registry_is_a_connect_error():
    """Not a bad record: the job fails (exit code 3 from velostream run, docs/CLI.md)."""
    import socket

    from velostream.errors import ConnectError
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ConnectError, match="unreachable"):
        codec(url, "t").encode(arrow_of(trades(3, seed=9)))
    with pytest.raises(ConnectError, match="unreachable"):
        AvroCodec(TRADE, registry=registry_client(url), subject="t-value", url=url).decode(
            [b"\x00\x00\x00\x00\x01\x02"], str, source="t")


@pytest.mark.parametrize("side", ["source", "sink"])
def test_a_registry_needs_format_avro(side):
    from velostream.io.base import ConfigError
    from velostream.io.kafka import KafkaSink, KafkaSource
    props = Properties("k", {"topic": "t", "bootstrap.servers": "127.0.0.1:1",
                             "schema.registry.url": scope()})
    with pytest.raises(ConfigError, match="needs 'k.format' = 'avro'"):
        KafkaSource("k", props) if side == "source" else KafkaSink("k", props)


# ----------------------------------------- `velostream run` as a process, over HTTP to a registry

class FakeRegistry:
    """The part of Confluent's Schema Registry REST API the Avro serializers use (register a
    schema under a subject, a schema by id, a subject's latest version), in memory, served over
    HTTP on a free port: so ``velostream run`` in its own process and the test share a registry,
    through confluent_kafka's real HTTP client."""

    def __init__(self):
        import http.server
        import threading
        self.schemas: list[str] = []                  # id - 1 -> schema text
        self.subjects: dict[str, list[int]] = {}      # subject -> ids, one per version
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - http.server's name
                parts = self.path.split("?")[0].strip("/").split("/")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
                    self._send(200, {"id": registry.register(parts[1], body["schema"])})
                else:
                    self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

            def do_GET(self):  # noqa: N802
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                    sid = int(parts[2])
                    if 1 <= sid <= len(registry.schemas):
                        return self._send(200, {"schema": registry.schemas[sid - 1]})
                    return self._send(404, {"error_code": 40403, "message": "Schema not found"})
                if len(parts) == 4 and parts[0] == "subjects" and parts[3] == "latest":
                    ids = registry.subjects.get(parts[1])
                    if ids:
                        return self._send(200, {"subject": parts[1], "version": len(ids),
                                                "id": ids[-1],
                                                "schema": registry.schemas[ids[-1] - 1]})
                    return self._send(404, {"error_code": 40401, "message": "Subject not found"})
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def register(self, subject: str, schema: str) -> int:
        if schema in self.schemas:
            sid = self.schemas.index(schema) + 1
        else:
            self.schemas.append(schema)
            sid = len(self.schemas)
        ids = self.subjects.setdefault(subject, [])
        if sid not in ids:
            ids.append(sid)
        return sid

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def http_registry():
    reg = FakeRegistry()
    yield reg
    reg.close()


def test_velostream_run_process_with_an_http_registry(kafka_broker, http_registry, tmp_path):
    """``velostream run --bounded`` as its own process: Confluent-framed Avro in (written by
    Confluent's AvroSerializer), Confluent-framed Avro out, against DuckDB; the bad messages
    (an id the registry answers 404 for, a wrong magic byte, a truncated one) dead-lettered."""
    import base64

    import duckdb
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from test_cli import velostream
    client = SchemaRegistryClient({"url": http_registry.url})
    topic = kafka_broker.unique_topic("sr-http-in", partitions=2)
    ser = AvroSerializer(client, json.dumps(TRADE))
    ctx = SerializationContext(topic, MessageField.VALUE)
    rows = trades(2000, seed=12, edges=[Decimal("1.0001"), Decimal("-0.0001"), None])
    payloads = [ser(r, ctx) for r in rows]
    bad = {100: b"\x00" + struct.pack(">I", 777) + payloads[100][5:],
           900: b"\x01" + payloads[900][1:], 1700: payloads[1700][:3]}
    keys = [(r["symbol"] or "").encode() for r in rows]
    for part in (0, 1):  # each symbol in one partition, as the job's state recovery requires
        idx = [i for i, k in enumerate(keys) if zlib.crc32(k) % 2 == part]
        kafka_broker.produce(topic, [bad.get(i, payloads[i]) for i in idx],
                             keys=[keys[i] for i in idx], partition=part)
    out = kafka_broker.unique_topic("sr-http-out", partitions=1)
    dead = tmp_path / "dead.jsonl"
    props = {"trades.type": "kafka_source", "trades.topic": topic,
             "trades.bootstrap.servers": kafka_broker.bootstrap,
             "trades.group.id": f"sr-http-{uuid.uuid4().hex[:8]}", "trades.format": "avro",
             "trades.schema.registry.url": http_registry.url,
             "trades.event.time.field": "trade_time",
             **{f"trades.{k}": v for k, v in FAST.items()},
             "agg.type": "kafka_sink", "agg.topic": out,
             "agg.bootstrap.servers": kafka_broker.bootstrap, "agg.format": "avro",
             "agg.schema.registry.url": http_registry.url,
             "failure.strategy": "LogAndContinue", "dead.letter.path": str(dead)}
    job = tmp_path / "job.sql"
    job.write_text("CREATE STREAM agg AS\n" + WINDOWED + "\nWITH (" +
                   ", ".join(f"'{k}' = '{v}'" for k, v in props.items()) + ")\n")
    r = velostream("run", str(job), "--bounded", "--partitions", "2", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{len(bad)} failed" in r.stderr
    msgs = kafka_broker.consume_all(out)
    sid = client.get_latest_version(f"{out}-value").schema_id
    assert msgs and all(struct.unpack(">bI", m.value()[:5]) == (0, sid) for m in msgs)
    des = AvroDeserializer(client)
    octx = SerializationContext(out, MessageField.VALUE)
    got = Counter(tuple(des(m.value(), octx).values()) for m in msgs)
    t = arrow_of([row for i, row in enumerate(rows) if i not in bad])  # noqa: F841 - DuckDB reads it
    assert got == Counter(tuple(x) for x in duckdb.sql(DUCK).fetchall())
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    got_bad = sorted(base64.b64decode(d["payload_base64"]) if "payload_base64" in d
                     else d["payload"].encode() for d in letters)
    assert got_bad == sorted(bad.values())
    assert any("schema id 777 is not in the registry" in d["error"] for d in letters)
