"""The Kafka source, sink and dead-letter topic against a real broker (Tansu, see kafka_broker.py).

Every group join costs about a second on Tansu (half the session timeout), so the tests share
topics where they can and use a short session timeout; group ids are unique per source.
"""
from __future__ import annotations

import io
import json
import math
import time
import uuid

import orjson
import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka")

from velostream.errors import ConnectError  # noqa: E402
from velostream.io.base import ConfigError, Properties  # noqa: E402
from velostream.io.kafka import (DeliveryError, KafkaDeadLetter, KafkaSink,  # noqa: E402
                                 KafkaSource)

#: Consumer settings passed through to librdkafka: a group join then takes ~1 s on Tansu.
FAST = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "300", "bounded.drain.ms": "500"}


def source(broker, topic, bounded=True, group=None, **props) -> KafkaSource:
    values = {"topic": topic, "bootstrap.servers": broker.bootstrap,
              "group.id": group or f"g-{uuid.uuid4().hex[:8]}", **FAST, **props}
    return KafkaSource("src", Properties("src", values), bounded=bounded)


def read_all(src: KafkaSource, timeout: float = 60.0) -> tuple[pa.Table, list]:
    """Everything a bounded source returns, and its rejects."""
    batches, rejects = [], []
    deadline = time.monotonic() + timeout
    while src.has_more():
        assert time.monotonic() < deadline, "bounded source did not finish"
        rb = src.read()
        rejects += src.rejects()
        if rb is not None:
            batches.append(rb)
    rejects += src.rejects()
    return (pa.Table.from_batches(batches) if batches else pa.table({})), rejects


def by_position(table: pa.Table) -> dict:
    return {(r["_PARTITION"], r["_OFFSET"]): r for r in table.to_pylist()}


# --------------------------------------------------------------------------------- the source

def test_json_bounded_round_trip_then_commit_and_resume(kafka_broker):
    topic = kafka_broker.unique_topic("json", partitions=4)
    n = 3000
    values = [orjson.dumps({"i": i, "sym": f"S{i % 7}", "price": i / 4}) for i in range(n)]
    keys = [None if i % 10 == 0 else f"K{i % 13}".encode() for i in range(n)]
    ts = [1_700_000_000_000 + i for i in range(n)]
    kafka_broker.produce(topic, values, keys=keys, timestamps=ts)
    produced = {(m.partition(), m.offset()): m for m in kafka_broker.consume_all(topic)}
    assert len(produced) == n and len({p for p, _ in produced}) == 4

    group = f"g-{uuid.uuid4().hex[:8]}"
    src = source(kafka_broker, topic, group=group)
    table, rejects = read_all(src)
    assert rejects == []
    assert table.num_rows == n                       # every message exactly once ...
    rows = by_position(table)
    assert set(rows) == set(produced)                # ... with the offsets the broker assigned
    assert table.schema.field("_KEY").type == pa.string()
    assert table.schema.field("_TIMESTAMP").type == pa.int64()
    for pos, m in produced.items():
        r = rows[pos]
        body = orjson.loads(m.value())
        assert (r["i"], r["sym"], r["price"]) == (body["i"], body["sym"], body["price"])
        assert r["_KEY"] == (None if m.key() is None else m.key().decode())
        assert r["_TIMESTAMP"] == m.timestamp()[1] == 1_700_000_000_000 + body["i"]
    assert not src.has_more() and src.read() is None
    assert src.positions() == {p: 1 + max(o for q, o in produced if q == p) for p in range(4)}
    src.commit()
    src.close()

    # a new source in the same group resumes after the committed offsets
    more = [orjson.dumps({"i": n + i, "sym": "NEW", "price": 0.5}) for i in range(200)]
    kafka_broker.produce(topic, more)
    again = source(kafka_broker, topic, group=group)
    table2, _ = read_all(again)
    again.close()
    assert sorted(table2.column("i").to_pylist()) == list(range(n, n + 200))


def test_event_time_field(kafka_broker):
    topic = kafka_broker.unique_topic("evt", partitions=1)
    kafka_broker.produce(topic, [b'{"v": 1, "t": 1700000000123}',
                                 b'{"v": 2, "t": 1700000060000}'], timestamps=[5, 6])
    src = source(kafka_broker, topic, **{"event.time.field": "t"})
    table, _ = read_all(src)
    src.close()
    assert table.column("_TIMESTAMP").to_pylist() == [1700000000123, 1700000060000]
    assert table.column("_OFFSET").to_pylist() == [0, 1]
    assert table.column("_PARTITION").to_pylist() == [0, 0]
    assert table.column("_KEY").to_pylist() == [None, None]



def test_a_bad_event_time_is_a_reject_and_the_rest_goes_on(kafka_broker):
    """An event time that is not a time (text that is no date, a month 13) is a bad record with
    the message's position and payload; the messages around it keep their offsets."""
    topic = kafka_broker.unique_topic("evtbad", partitions=1)
    payloads = [b'{"v": 1, "t": "2024-01-01T09:30:00Z"}', b'{"v": 2, "t": "yesterday"}',
                b'{"v": 3, "t": "2024-01-01T09:30:05Z"}', b'{"v": 4, "t": "2024-13-45T00:00:00Z"}',
                b'{"v": 5, "t": "2024-01-01T09:31:00Z"}']
    kafka_broker.produce(topic, payloads)
    src = source(kafka_broker, topic, **{"event.time.field": "t"})
    table, rejects = read_all(src)
    src.close()
    assert table.column("v").to_pylist() == [1, 3, 5]
    assert table.column("_OFFSET").to_pylist() == [0, 2, 4]
    assert table.column("_TIMESTAMP").to_pylist() == [1704101400000, 1704101405000, 1704101460000]
    assert [(r.position, r.payload) for r in rejects] == [(f"{topic}/0@1", payloads[1]),
                                                          (f"{topic}/0@3", payloads[3])]
    assert all("event.time.field 't'" in r.error for r in rejects)

AVRO_SCHEMA = {"type": "record", "name": "Trade", "fields": [
    {"name": "symbol", "type": "string"},
    {"name": "price", "type": "double"},
    {"name": "quantity", "type": "long"},
    {"name": "note", "type": ["null", "string"], "default": None},
]}


def test_avro_round_trip_and_undecodable_message(kafka_broker, tmp_path):
    import fastavro
    schema_file = tmp_path / "trade.avsc"
    schema_file.write_text(json.dumps(AVRO_SCHEMA))
    parsed = fastavro.parse_schema(AVRO_SCHEMA)
    records = [{"symbol": f"S{i % 5}", "price": 100 + i / 8, "quantity": i * 3,
                "note": None if i % 3 else f"n{i}"} for i in range(500)]
    payloads = []
    for r in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, r)
        payloads.append(buf.getvalue())
    topic = kafka_broker.unique_topic("avro", partitions=2)
    keys = [r["symbol"].encode() for r in records]
    kafka_broker.produce(topic, payloads + [b"\xff\xff\xff"], keys=keys + [b"bad"])
    produced = {(m.partition(), m.offset()): m for m in kafka_broker.consume_all(topic)}

    src = source(kafka_broker, topic, format="avro", **{"avro.schema.file": str(schema_file)})
    table, rejects = read_all(src)
    src.close()
    assert table.num_rows == 500
    assert [r.payload for r in rejects] == [b"\xff\xff\xff"]
    bad = next(pos for pos, m in produced.items() if m.value() == b"\xff\xff\xff")
    assert rejects[0].position == f"{topic}/{bad[0]}@{bad[1]}" and rejects[0].source == "src"
    rows = by_position(table)
    for pos, m in produced.items():
        if pos == bad:
            continue
        r = rows[pos]
        want = fastavro.schemaless_reader(io.BytesIO(m.value()), parsed)
        assert {k: r[k] for k in want} == want
        assert r["_KEY"] == m.key().decode() and r["_TIMESTAMP"] == m.timestamp()[1]


def test_bad_input_becomes_rejects_and_goes_to_the_dead_letter_topic(kafka_broker):
    topic = kafka_broker.unique_topic("bad", partitions=1)
    big = orjson.dumps({"sym": "X" * 400, "price": 1.0})
    msgs = [b'{"sym": "A", "price": 1.5}', b'{"sym": "B", "price": "abc"}', b'{"sym": "C", pri',
            big, b'{"sym": "D", "price": 4}', b"[1, 2]", b'{"sym": "E", "price": 5.25}']
    kafka_broker.produce(topic, msgs)
    src = source(kafka_broker, topic, schema="sym VARCHAR, price DOUBLE",
                 **{"max.record.bytes": "200"})
    table, rejects = read_all(src)
    src.close()
    # every good message decoded, with its own offset
    assert table.select(["sym", "price", "_OFFSET"]).to_pylist() == [
        {"sym": "A", "price": 1.5, "_OFFSET": 0}, {"sym": "D", "price": 4.0, "_OFFSET": 4},
        {"sym": "E", "price": 5.25, "_OFFSET": 6}]
    got = sorted(rejects, key=lambda r: int(r.position.rsplit("@", 1)[1]))
    assert [r.position for r in got] == [f"{topic}/0@{o}" for o in (1, 2, 3, 5)]
    assert [r.payload for r in got] == [msgs[1], msgs[2], msgs[3], msgs[5]]
    assert "price" in got[0].error and "max.record.bytes" in got[2].error

    dlq_topic = kafka_broker.unique_topic("dlq", partitions=1)
    dlq = KafkaDeadLetter(kafka_broker.bootstrap, dlq_topic)
    dlq.write(got)
    dlq.flush()
    dlq.close()
    out = kafka_broker.consume_all(dlq_topic)
    assert [m.value() for m in out] == [r.payload for r in got]
    for m, r in zip(out, got):
        h = dict(m.headers())
        assert h == {"error": r.error.encode(), "source": b"src", "position": r.position.encode()}


def test_unreachable_broker_is_a_clear_error_within_the_timeout():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    props = {"topic": "t", "bootstrap.servers": f"127.0.0.1:{port}", "connect.timeout.ms": "1500"}
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port} unreachable"):
        KafkaSource("src", Properties("src", dict(props)))
    with pytest.raises(ConnectError, match="unreachable"):
        KafkaSink("out", Properties("out", dict(props)), [])
    assert time.monotonic() - t0 < 10


def test_unknown_topic_is_a_clear_error(kafka_broker):
    with pytest.raises(ConfigError, match="topic 'no-such-topic' does not exist"):
        source(kafka_broker, "no-such-topic")


def test_missing_properties_name_the_property(kafka_broker):
    with pytest.raises(ConfigError, match="src.topic"):
        KafkaSource("src", Properties("src", {"bootstrap.servers": kafka_broker.bootstrap}))


# ----------------------------------------------------------------------------------- the sink

def test_sink_keys_values_and_avro(kafka_broker):
    rb = pa.RecordBatch.from_pydict({
        "trader_id": ["T1", "T2", None], "symbol": ["AAPL", "MSFT", "X"],
        "n": [1, 2, 3], "avg": [1.5, None, 2.25]})
    topic = kafka_broker.unique_topic("sink", partitions=2)
    sink = KafkaSink("out", Properties("out", {"topic": topic,
                                                "bootstrap.servers": kafka_broker.bootstrap}),
                     ["symbol", "trader_id"])
    sink.write_batch(rb)
    sink.flush()
    sink.commit()
    sink.close()
    out = kafka_broker.consume_all(topic)
    got = sorted((m.key(), orjson.loads(m.value())) for m in out)
    assert got == sorted([(b"AAPL|T1", rb.slice(0, 1).to_pylist()[0]),
                          (b"MSFT|T2", rb.slice(1, 1).to_pylist()[0]),
                          (b"X|", rb.slice(2, 1).to_pylist()[0])])

    import fastavro
    topic2 = kafka_broker.unique_topic("sink-avro", partitions=1)
    sink = KafkaSink("out", Properties("out", {"topic": topic2, "format": "avro",
                                                "bootstrap.servers": kafka_broker.bootstrap}), [])
    sink.write_batch(rb)
    sink.flush()
    sink.close()
    out = kafka_broker.consume_all(topic2)
    assert [m.key() for m in out] == [None] * 3
    from velostream.io.avro import avro_schema_from_arrow
    parsed = fastavro.parse_schema(avro_schema_from_arrow(rb.schema))
    assert [fastavro.schemaless_reader(io.BytesIO(m.value()), parsed) for m in out] == rb.to_pylist()


def test_sink_delivery_failure_raises_delivery_error():
    from kafka_broker import Broker
    with Broker() as b:
        topic = b.create_topic("doomed", partitions=1)
        sink = KafkaSink("out", Properties("out", {
            "topic": topic, "bootstrap.servers": b.bootstrap, "message.timeout.ms": "1000"}), [])
        b.stop()  # the broker goes away before anything is delivered
        sink.write_batch(pa.RecordBatch.from_pydict({"a": list(range(5))}))
        with pytest.raises(DeliveryError) as info:
            sink.flush()
        assert info.value.failed == 5 and info.value.errors
        sink.rollback()


# -------------------------------------------------------------------------- end to end: S3a

S3A = """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       SUM(quantity) as total_quantity, SUM(price * quantity) as total_value
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)"""

DUCK_S3A = """SELECT trader_id, symbol, COUNT(*) AS trade_count, AVG(price) AS avg_price,
       SUM(quantity) AS total_quantity, SUM(price * quantity) AS total_value
FROM md GROUP BY trader_id, symbol, trade_time // 60000"""

E2E_RECORDS = 24_000


@pytest.fixture(scope="module")
def market_topic(kafka_broker):
    """S3a market_data as JSON on a 4-partition topic keyed trader_id|symbol, and DuckDB's
    answer on the same rows."""
    import duckdb
    from velostream.datagen import market_data
    table = pa.Table.from_batches(market_data(E2E_RECORDS)).drop_columns(["_TIMESTAMP"])
    rows = table.to_pylist()
    topic = kafka_broker.unique_topic("market", partitions=4)
    kafka_broker.produce(topic, [orjson.dumps(r) for r in rows],
                         keys=[f"{r['trader_id']}|{r['symbol']}".encode() for r in rows])
    md = table  # noqa: F841 - read by DuckDB's replacement scan
    expected = duckdb.sql(DUCK_S3A).arrow()
    expected = expected.read_all() if hasattr(expected, "read_all") else expected
    return topic, expected.to_pylist()


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    """Equal as multisets: integers and strings exactly, floats to 1e-9 relative."""
    def order(r):
        return (r["trader_id"], r["symbol"], r["trade_count"], r["total_quantity"], r["avg_price"])
    assert len(got) == len(expected)
    for g, e in zip(sorted(got, key=order), sorted(expected, key=order)):
        assert {k: g[k] for k in ("trader_id", "symbol", "trade_count", "total_quantity")} == \
               {k: e[k] for k in ("trader_id", "symbol", "trade_count", "total_quantity")}
        assert math.isclose(g["avg_price"], e["avg_price"], rel_tol=1e-9)
        assert math.isclose(g["total_value"], e["total_value"], rel_tol=1e-9)


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_s3a_from_kafka_to_kafka_matches_duckdb(kafka_broker, market_topic, partitions):
    import velostream as vs
    topic, expected = market_topic
    out_topic = kafka_broker.unique_topic(f"s3a-out-p{partitions}", partitions=4)
    src = source(kafka_broker, topic, **{"event.time.field": "trade_time"})
    sink = KafkaSink("out", Properties("out", {"topic": out_topic,
                                                "bootstrap.servers": kafka_broker.bootstrap}),
                     ["trader_id", "symbol"])
    job = vs.Job(S3A, sources={"market_data": src}, sink=sink, partitions=partitions)
    stats = job.run()
    src.close()
    sink.close()
    assert stats.records_read == E2E_RECORDS and stats.records_late == 0
    out = kafka_broker.consume_all(out_topic)
    rows = [orjson.loads(m.value()) for m in out]
    assert len(rows) == len(expected) == stats.records_emitted
    assert_same_rows(rows, expected)
    for m, r in zip(out, rows):
        assert m.key() == f"{r['trader_id']}|{r['symbol']}".encode()
