"""``velostream run`` against a real Kafka-protocol broker, as a subprocess: bounded runs compared
with DuckDB, a SIGTERM during an unbounded run, Prometheus metrics, and the start-up errors."""
from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import orjson
import pyarrow as pa
import pytest

from conftest import subprocess_env
from test_cli import job_file, velostream
from test_io_kafka import DUCK_S3A, S3A
from velostream.datagen import market_data

RECORDS = 12_000
S3A_JOB = "CREATE STREAM s3a_out AS\n" + S3A
GROUP = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "300"}


@pytest.fixture(scope="module")
def trades(kafka_broker):
    """market_data as JSON on a 4-partition topic keyed trader_id|symbol, and DuckDB's S3a."""
    import duckdb
    table = pa.Table.from_batches(market_data(RECORDS)).drop_columns(["_TIMESTAMP"])
    rows = table.to_pylist()
    topic = kafka_broker.unique_topic("cli-trades", partitions=4)
    kafka_broker.produce(topic, [orjson.dumps(r) for r in rows],
                         keys=[f"{r['trader_id']}|{r['symbol']}".encode() for r in rows])
    md = table  # noqa: F841 - read by DuckDB's replacement scan
    expected = duckdb.sql(DUCK_S3A).fetchall()
    return topic, expected


def kafka_job(tmp_path, broker, in_topic, out_topic, group, extra=None):
    props = {"market_data.type": "kafka_source", "market_data.topic": in_topic,
             "market_data.bootstrap.servers": broker.bootstrap, "market_data.group.id": group,
             **{f"market_data.{k}": v for k, v in GROUP.items()},
             "s3a_out.type": "kafka_sink", "s3a_out.topic": out_topic,
             "s3a_out.bootstrap.servers": broker.bootstrap, **(extra or {})}
    return job_file(tmp_path, S3A_JOB, props)


def output_rows(broker, topic):
    msgs = broker.consume_all(topic)
    rows = [orjson.loads(m.value()) for m in msgs]
    for m, r in zip(msgs, rows):  # the message key is the GROUP BY columns, pipe-joined
        assert m.key() == f"{r['trader_id']}|{r['symbol']}".encode()
    return rows


def assert_same(rows, expected):
    cols = ("trader_id", "symbol", "trade_count", "avg_price", "total_quantity", "total_value")
    got = sorted(tuple(r[c] for c in cols) for r in rows)
    want = sorted(expected)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[:3] == w[:3] and g[4] == w[4]
        assert math.isclose(g[3], w[3], rel_tol=1e-9) and math.isclose(g[5], w[5], rel_tol=1e-9)


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_run_bounded_kafka_to_kafka_matches_duckdb(tmp_path, kafka_broker, trades, partitions):
    topic, expected = trades
    out = kafka_broker.unique_topic("cli-out", partitions=2)
    job = kafka_job(tmp_path, kafka_broker, topic, out, f"cli-bounded-{partitions}-{time.time()}")
    r = velostream("run", str(job), "--bounded", "--partitions", str(partitions))
    assert r.returncode == 0, r.stderr
    assert f"done: {RECORDS:,} records in" in r.stderr and "0 late" in r.stderr
    assert_same(output_rows(kafka_broker, out), expected)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("velostream_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_sigterm_stops_an_unbounded_run_gracefully_with_metrics(tmp_path, kafka_broker, trades):
    """Unbounded, without fault tolerance (one process, state not recoverable): the job keeps
    running after the input is consumed; Prometheus shows the counters; SIGTERM flushes the open
    windows as end of input, commits, and exits 0."""
    topic, expected = trades
    out = kafka_broker.unique_topic("cli-sigterm", partitions=2)
    group = f"cli-sigterm-{time.time()}"
    job = kafka_job(tmp_path, kafka_broker, topic, out, group, {"fault.tolerance": "none"})
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "velostream", "run", str(job), "--partitions", "2",
                             "--metrics-port", str(port), "--progress-interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=subprocess_env())
    try:
        deadline = time.monotonic() + 60
        m = {}
        while time.monotonic() < deadline:
            time.sleep(0.3)
            assert proc.poll() is None, proc.communicate()[1]
            try:
                m = _metrics(port)
            except OSError:
                continue
            if (m.get('velostream_records_in_total{job="s3a_out",source="market_data"}') == RECORDS
                    and m.get('velostream_records_out_total{job="s3a_out",sink="s3a_out"}')):
                break
        assert m['velostream_records_in_total{job="s3a_out",source="market_data"}'] == RECORDS
        assert m['velostream_records_out_total{job="s3a_out",sink="s3a_out"}'] > 0
        assert m['velostream_records_failed_total{job="s3a_out"}'] == 0
        assert m['velostream_records_late_total{job="s3a_out"}'] == 0
        assert m['velostream_consumer_lag{job="s3a_out"}'] == 0
        assert 'velostream_partition_queue_depth{job="s3a_out",partition="1"}' in m
        assert 'velostream_latency_quantile_seconds{job="s3a_out",quantile="0.99"}' in m
        assert 'velostream_throughput_records_per_second{job="s3a_out"}' in m
        time.sleep(0.5)
        assert proc.poll() is None  # unbounded: still running with nothing to read
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping" in err and f"done: {RECORDS:,} records in" in err
    assert "M rec/s | " in err  # the progress line
    # every window, the open ones flushed at the stop, is in the output
    assert_same(output_rows(kafka_broker, out), expected)
    # and the offsets were committed: the group has nothing left to read
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(4)]
    finally:
        c.close()
    assert sum(tp.offset for tp in committed) == RECORDS
    assert all(tp.offset >= end for tp, end in zip(committed, ends))


def test_unreachable_broker_exit_3(tmp_path):
    port = _free_port()  # nothing listens there
    job = job_file(tmp_path, "SELECT * FROM t",
                   {"t.type": "kafka_source", "t.topic": "x", "t.bootstrap.servers": f"127.0.0.1:{port}",
                    "t.connect.timeout.ms": "2000"})
    t0 = time.monotonic()
    r = velostream("run", str(job))
    assert r.returncode == 3, r.stderr
    assert "cannot connect" in r.stderr and f"127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - t0 < 30


def test_unknown_topic_exit_2(tmp_path, kafka_broker):
    job = job_file(tmp_path, "SELECT * FROM t",
                   {"t.type": "kafka_source", "t.topic": "no-such-topic-here",
                    "t.bootstrap.servers": kafka_broker.bootstrap})
    r = velostream("run", str(job))
    assert r.returncode == 2, r.stderr
    assert "no-such-topic-here" in r.stderr
