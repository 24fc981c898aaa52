"""Kafka source, sink and dead-letter topic (confluent-kafka / librdkafka).

    source = KafkaSource("trades", Properties("trades", {
        "topic": "trades", "bootstrap.servers": "localhost:9092",
        "event.time.field": "trade_time"}), bounded=True)
    while source.has_more():
        rb = source.read()            # a RecordBatch of many messages, or None
        ...
        source.commit()               # after the sink flushed: offsets of everything read

Messages are consumed and decoded many at a time (JSON with ``codecs.JsonDecoder``, Avro with
fastavro), then get the system columns ``_KEY`` (utf-8 string, NULL without a key),
``_TIMESTAMP`` (the message timestamp, or ``event.time.field``), ``_PARTITION`` and ``_OFFSET``.
A message that cannot become a row is a ``Reject`` (``rejects()``), never dropped silently.

Offsets are never auto-committed: ``commit()`` commits, synchronously, the next offset of every
partition read so far, and the job calls it only once the sink has flushed (at-least-once).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional, Sequence

import numpy as np
import pyarrow as pa

from .._lazy import pc  # imported when first used: see the module
from ..errors import ConnectError, JobError
from .base import ConfigError, Properties, Reject, with_event_time
from .codecs import JsonDecoder, parse_schema

log = logging.getLogger("velostream.kafka")

#: Group-membership settings that keep a rebalance short (a join takes seconds, not tens of them).
CONSUMER_DEFAULTS = {
    "auto.offset.reset": "earliest",
    "session.timeout.ms": "6000",
    "heartbeat.interval.ms": "500",
    "max.poll.interval.ms": "60000",
}
PRODUCER_DEFAULTS = {
    "linger.ms": "5",
    "batch.num.messages": "10000",
    "batch.size": "1048576",
    "compression.type": "none",
    "queue.buffering.max.messages": "1000000",
    "queue.buffering.max.kbytes": "1048576",
}
_SYSTEM = ("_KEY", "_TIMESTAMP", "_PARTITION", "_OFFSET")

from confluent_kafka import KafkaError as _KE  # noqa: E402 - ImportError: velostream.io says why

_EOF = _KE._PARTITION_EOF
_TRANSIENT = {_KE._TRANSPORT, _KE._ALL_BROKERS_DOWN, _KE._TIMED_OUT, _KE._MSG_TIMED_OUT,
              _KE.REQUEST_TIMED_OUT, _KE.NOT_COORDINATOR, _KE.COORDINATOR_NOT_AVAILABLE,
              _KE.COORDINATOR_LOAD_IN_PROGRESS, _KE.LEADER_NOT_AVAILABLE,
              _KE.NOT_LEADER_FOR_PARTITION}


class DeliveryError(JobError):
    """Some produced messages were not delivered. ``errors``: the librdkafka errors (the first
    ones), ``failed``: how many messages failed."""

    def __init__(self, topic: str, errors: list, failed: int, messages: Optional[list] = None):
        self.topic = topic
        self.errors = errors
        self.failed = failed
        #: (key, value, error) of the undelivered messages that were kept (up to a limit), so
        #: the job can dead-letter or resend them
        self.messages = messages or []
        shown = "; ".join(str(e) for e in errors[:3])
        super().__init__(f"{failed} message(s) to topic '{topic}' were not delivered: {shown}")


def _connect(client, bootstrap: str, timeout_ms: int, what: str):
    """Metadata from the cluster, retrying with backoff for ``timeout_ms``; raises
    ``ConnectError`` naming the servers when no broker answers."""
    deadline = time.monotonic() + timeout_ms / 1000
    delay = 0.25
    attempt = 0
    last: Optional[BaseException] = None
    while True:
        attempt += 1
        left = deadline - time.monotonic()
        try:
            return client.list_topics(timeout=max(min(left, 5.0), 0.2))
        except Exception as exc:  # noqa: BLE001 - KafkaException(_TRANSPORT / _TIMED_OUT)
            last = exc
        left = deadline - time.monotonic()
        if left <= 0:
            break
        log.warning("%s: Kafka broker %s not reachable yet (attempt %d), retrying", what,
                    bootstrap, attempt)
        time.sleep(min(delay, left))
        delay = min(delay * 2, 4.0)
    raise ConnectError(f"{what}: Kafka broker(s) {bootstrap} unreachable after {attempt} "
                       f"attempt(s) over {timeout_ms / 1000:g}s (connect.timeout.ms): {last}")


def _client_conf(props: Properties, defaults: dict, forced: dict) -> dict:
    conf = dict(defaults)
    conf.update(props.unused())
    conf.update(forced)
    conf["logger"] = log
    return conf


class KafkaSource:
    """A Kafka topic as a ``Reader`` (see the module docstring). ``bounded=True`` stops at the end
    offsets seen when the partitions were assigned."""

    def __init__(self, name: str, props: Properties, bounded: bool = False,
                 as_table: bool = False):
        from confluent_kafka import Consumer
        self.name = name
        self.topic = props.require("topic")
        self.bootstrap = props.require("bootstrap.servers")
        self.bounded = bounded
        group = props.get("group.id") or f"velostream-{name}"
        self.group_id = group
        fmt = (props.get("format") or "json").lower()
        if fmt not in ("json", "avro"):
            raise ConfigError(f"'{name}.format' must be json or avro, got {fmt!r}")
        if fmt != "avro" and "schema.registry.url" in props:
            raise ConfigError(f"'{name}.schema.registry.url' needs '{name}.format' = 'avro'")
        self.format = fmt
        schema_text = props.get("schema")
        self._schema = parse_schema(schema_text) if schema_text else None
        self.event_time_field = props.get("event.time.field")
        # read as a TABLE (docs/SQL.md §9): a message without a value (a compacted topic's
        # tombstone) deletes its key: a row with the key, no values and _DELETED true
        self.as_table = as_table
        self._fail_missing = props.get_bool("fail.on.missing.field", False)
        self._max_bytes = props.get_int("max.record.bytes", 1 << 20)
        self._batch = props.get_int("batch.max.messages", 50000)
        self._poll_s = props.get_int("poll.timeout.ms", 100) / 1000
        self._drain_idle_s = props.get_int("bounded.drain.ms", 10000) / 1000
        self._idle_s = props.get_int("watermark.idle.ms", 5000) / 1000
        self._assigned_time: dict[int, float] = {}
        # bounded: how long an empty assignment is waited out (see has_more): a dead member is
        # dropped after its session timeout, or (some brokers) when a rebalance times out
        self._empty_since = time.monotonic()
        self._empty_wait_s = (int(props.values.get("session.timeout.ms",
                                                   CONSUMER_DEFAULTS["session.timeout.ms"]))
                              + int(props.values.get("max.poll.interval.ms",
                                                     CONSUMER_DEFAULTS["max.poll.interval.ms"]))
                              ) / 1000 + 2
        #: the columns the topic is keyed by (pipe-joined), if declared: checked by the task runner
        kc = props.get("key.columns")
        self.key_columns = [c.strip() for c in kc.split(",") if c.strip()] if kc else None
        connect_ms = props.get_int("connect.timeout.ms", 12000)
        self._avro = None
        self._json = None
        if fmt == "avro":
            from .avro import AvroCodec
            if not props.values.get("avro.schema.file") and not props.values.get("schema.registry.url"):
                raise ConfigError(f"'{name}.avro.schema.file' (or '{name}.schema.registry.url') "
                                  f"is required for format avro")
            self._avro = AvroCodec.from_properties(props, topic=self.topic)
        conf = _client_conf(props, CONSUMER_DEFAULTS, {
            "bootstrap.servers": self.bootstrap, "group.id": group,
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "enable.partition.eof": True})
        conf.setdefault("auto.offset.reset", props.values.get("auto.offset.reset", "earliest"))
        try:
            self._c = Consumer(conf)
        except Exception as exc:  # noqa: BLE001 - KafkaException for a bad librdkafka property
            raise ConfigError(f"{name}: invalid Kafka consumer configuration: {exc}") from None
        try:
            md = _connect(self._c, self.bootstrap, connect_ms, f"source '{name}'")
            t = md.topics.get(self.topic)
            if t is None or t.error is not None:
                existing = sorted(k for k in md.topics if not k.startswith("__"))
                raise ConfigError(f"source '{name}': Kafka topic '{self.topic}' does not exist on "
                                  f"{self.bootstrap} (topics: {', '.join(existing) or 'none'})")
        except BaseException:
            self._c.close()
            raise
        self.partition_count = len(t.partitions)
        self._pos: dict[int, int] = {}          # partition -> next offset to hand out
        self._committed: dict[int, int] = {}
        self._end: dict[int, int] = {}          # bounded: end offsets seen at assignment
        self._done: set[int] = set()
        self._last_data: dict[int, float] = {}
        self._assigned: set[int] = set()
        self._new: list[int] = []
        self._ever_assigned = False
        #: ``time.perf_counter()`` when the group first assigned partitions (fetching starts)
        self.assigned_at: Optional[float] = None
        self._seek_to: dict[int, int] = {}
        self._rejects: list[Reject] = []
        self._closed = False
        self._listener = None
        self._c.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    # -- event time ----------------------------------------------------------------------------
    #: each partition is ordered on its own: the job's watermark is the minimum over partitions
    watermark_by = "_PARTITION"

    def watermark_partitions(self) -> tuple[list[int], list[int]]:
        """(assigned partitions, idle ones). Idle: finished (bounded) or nothing arrived for
        ``watermark.idle.ms``; an idle partition stops holding the job's watermark back until
        its next record."""
        now = time.monotonic()
        idle = [p for p in self._assigned if p in self._done
                or now - self._last_data.get(p, self._assigned_time.get(p, now)) >= self._idle_s]
        return sorted(self._assigned), idle

    # -- group membership ------------------------------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        self._empty_since = time.monotonic()
        if not self._ever_assigned:
            self.assigned_at = time.perf_counter()
        self._ever_assigned = True
        changed = False
        if self._listener is not None:
            for p, off in self._listener[0](sorted(tp.partition for tp in partitions)).items():
                self._seek_to[p] = off
                if off >= 0:
                    self._pos[p] = off
        for tp in partitions:
            self._assigned_time[tp.partition] = time.monotonic()
            self._assigned.add(tp.partition)
            self._new.append(tp.partition)
            if tp.partition in self._seek_to:
                tp.offset = self._seek_to.pop(tp.partition)
                changed = True
        if changed:
            consumer.assign(partitions)

    def set_rebalance_listener(self, on_assign, on_revoke) -> None:
        """Partition-scoped state (``velostream.jobs.tasks``): ``on_assign(partitions)`` returns
        {partition: offset to start at} (restored checkpoints); ``on_revoke(partitions)`` runs
        before the partitions leave, so their state can be checkpointed and committed."""
        self._listener = (on_assign, on_revoke)

    def _on_revoke(self, consumer, partitions) -> None:
        self._empty_since = time.monotonic()
        if self._listener is not None:
            self._listener[1](sorted(tp.partition for tp in partitions))
        for tp in partitions:
            p = tp.partition
            self._assigned.discard(p)
            # a later re-assignment starts from what was committed, not from where we were
            for d in (self._pos, self._end, self._last_data, self._committed):
                d.pop(p, None)
            self._done.discard(p)

    def _capture_new(self) -> None:
        """Start positions (and, bounded, end offsets) of newly assigned partitions."""
        from confluent_kafka import TopicPartition
        new, self._new = self._new, []
        tps = [TopicPartition(self.topic, p) for p in new]
        committed = {tp.partition: tp.offset for tp in self._c.committed(tps, timeout=10)}
        now = time.monotonic()
        for p in new:
            lo, hi = self._c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10,
                                                   cached=False)
            if p not in self._pos:
                c = committed.get(p, -1001)
                self._pos[p] = c if c >= 0 else lo
            if self.bounded and p not in self._end:
                self._end[p] = hi
                self._last_data[p] = now

    # -- reading -----------------------------------------------------------------------------
    def read(self) -> Optional[pa.RecordBatch]:
        if self._closed or (self.bounded and not self.has_more()):
            return None
        msgs = self._c.consume(self._batch, self._poll_s)
        if self._new:
            self._capture_new()
        eof: list[int] = []
        if msgs:
            msgs = self._errors(msgs, eof)
        rb = (self._table_batch(msgs) if self.as_table else self._to_batch(msgs)) if msgs else None
        if self.bounded:
            for p in eof:  # after the messages before it (same partition) advanced the position
                if p in self._end and self._pos.get(p, 0) >= self._end[p]:
                    self._done.add(p)
            if not msgs:
                self._check_drained(set())
        return rb

    def _errors(self, msgs: list, eof: list) -> list:
        """``msgs`` without error events; partition EOFs are appended to ``eof``."""
        from confluent_kafka import Message
        errs = [i for i, e in enumerate(map(Message.error, msgs)) if e is not None]
        if not errs:
            return msgs
        for i in errs:
            m = msgs[i]
            err = m.error()
            if err.code() == _EOF:
                eof.append(m.partition())
                continue
            if err.code() in _TRANSIENT or err.retriable():
                log.warning("source '%s': transient Kafka error: %s", self.name, err)
                continue
            raise JobError(f"source '{self.name}': Kafka error on topic '{self.topic}'"
                           f"{'' if m.partition() is None else f' partition {m.partition()}'}: "
                           f"{err.str()} ({err.name()})")
        bad = set(errs)
        return [m for i, m in enumerate(msgs) if i not in bad]

    def _to_batch(self, msgs: list) -> Optional[pa.RecordBatch]:
        from confluent_kafka import Message
        n = len(msgs)
        parts = np.fromiter(map(Message.partition, msgs), np.int32, count=n)
        offs = np.fromiter(map(Message.offset, msgs), np.int64, count=n)
        values = list(map(Message.value, msgs))
        self._advance(parts, offs)
        topic = self.topic

        def position(i: int) -> str:
            return f"{topic}/{parts[i]}@{offs[i]}"

        # oversized and null (tombstone) payloads never reach the decoder
        keep = None
        try:
            too_big = max(map(len, values)) > self._max_bytes
            nulls = False
        except TypeError:
            too_big, nulls = True, True
        if too_big or nulls:
            keep = []
            for i, v in enumerate(values):
                if v is None:
                    self._rejects.append(Reject(self.name, position(i), "message has no value", b""))
                elif len(v) > self._max_bytes:
                    self._rejects.append(Reject(
                        self.name, position(i),
                        f"message of {len(v)} bytes exceeds max.record.bytes {self._max_bytes}", v))
                else:
                    keep.append(i)
            values = [values[i] for i in keep]
            if not values:
                return None
        rb, rejects, good = self._decode(values, position if keep is None else
                                         (lambda j: position(keep[j])))
        self._rejects += rejects
        if rb is None or rb.num_rows == 0:
            return None
        # the rows kept, as indices into msgs
        if keep is not None:
            good = np.asarray(keep, np.int64)[good] if good is not None else np.asarray(keep)
        sel = None if good is None or len(good) == n else np.asarray(good, np.int64)
        if sel is not None and len(sel) != rb.num_rows:
            raise JobError(f"source '{self.name}': decoder returned {rb.num_rows} rows for "
                           f"{len(sel)} good messages")
        take = (lambda a: a) if sel is None else (lambda a: a[sel])
        rb = self._drop_system(rb)
        keys = pa.array(take(np.array(list(map(Message.key, msgs)), dtype=object)), pa.binary())
        try:
            keys = keys.cast(pa.string())
        except pa.ArrowInvalid:  # not utf-8: keep what can be read
            keys = pa.array([None if k is None else k.decode("utf-8", "replace")
                             for k in keys.to_pylist()], pa.string())
        rb = rb.append_column("_KEY", keys)
        if self.event_time_field is None:
            ts = np.fromiter((t for _, t in map(Message.timestamp, msgs)), np.int64, count=n)
            ts = take(ts)
            if (ts < 0).any():  # no timestamp on the message: ingestion time
                ts = np.where(ts < 0, int(time.time() * 1000), ts)
            rb = with_event_time(rb, None, ts)
        else:
            # an event time that is not a time is a bad record (docs/CONNECTORS.md): a reject
            # with the message's position and payload, and the other rows go on
            bad: list = []
            rb = with_event_time(rb, self.event_time_field, None, bad)
            if bad:
                rows = np.arange(n) if sel is None else sel
                for i, why in bad:
                    m = int(rows[i])
                    self._rejects.append(Reject(self.name, position(m), why, msgs[m].value() or b""))
                ok = np.ones(len(rows), dtype=bool)
                ok[[i for i, _ in bad]] = False
                sel = rows[ok]
                take = lambda a: a[sel]  # noqa: E731
                if rb.num_rows == 0:
                    return None
        rb = rb.append_column("_PARTITION", pa.array(take(parts).astype(np.int64)))
        return rb.append_column("_OFFSET", pa.array(take(offs)))

    def _table_batch(self, msgs: list) -> Optional[pa.RecordBatch]:
        """A table's messages: the rows as ``_to_batch`` reads them plus, for each tombstone,
        a deletion row (``_KEY``, the message time, NULL values, ``_DELETED`` true), in
        partition-offset order."""
        from confluent_kafka import Message
        tomb = [m for m in msgs if m.value() is None]
        rows = self._to_batch([m for m in msgs if m.value() is not None]) \
            if len(tomb) < len(msgs) else None
        if rows is not None:
            rows = rows.append_column("_DELETED", pa.array(np.zeros(rows.num_rows, bool)))
        if not tomb:
            return rows
        parts = np.fromiter(map(Message.partition, tomb), np.int64, count=len(tomb))
        offs = np.fromiter(map(Message.offset, tomb), np.int64, count=len(tomb))
        self._advance(parts, offs)
        keys = [None if m.key() is None else m.key().decode("utf-8", "replace") for m in tomb]
        ts = np.fromiter((t for _, t in map(Message.timestamp, tomb)), np.int64, count=len(tomb))
        system = {"_KEY": pa.array(keys, pa.string()), "_TIMESTAMP": pa.array(ts),
                  "_PARTITION": pa.array(parts), "_OFFSET": pa.array(offs),
                  "_DELETED": pa.array(np.ones(len(tomb), bool))}
        if rows is None:
            return pa.RecordBatch.from_pydict(system)
        cols = [system[f.name].cast(f.type) if f.name in system else pa.nulls(len(tomb), f.type)
                for f in rows.schema]
        both = pa.Table.from_batches([rows, pa.RecordBatch.from_arrays(cols, schema=rows.schema)])
        order = pc.sort_indices(both, sort_keys=[("_PARTITION", "ascending"),
                                                 ("_OFFSET", "ascending")])
        return both.take(order).combine_chunks().to_batches()[0]

    @staticmethod
    def _drop_system(rb: pa.RecordBatch) -> pa.RecordBatch:
        """A payload field named like a system column would shadow it: the message's wins."""
        for c in ("_KEY", "_TIMESTAMP", "_PARTITION", "_OFFSET"):
            if c in rb.schema.names:
                rb = rb.drop_columns([c])
        return rb

    def _decode(self, values: list, position: Callable[[int], str]):
        """(rows, rejects, indices of ``values`` that became rows or None for all)."""
        if self._avro is not None:
            rb, rejects, good = self._avro.decode(values, position, source=self.name)
            if rb is not None and self._schema is not None:
                rb = _apply_schema(rb, self._schema)
            return rb, rejects, (None if len(good) == len(values) else good)
        if self._json is None:
            self._json = JsonDecoder(self.name, schema=self._schema,
                                     fail_on_missing_field=self._fail_missing)
        rb, rejects = self._json.decode(values, position)
        kept = self._json.kept
        return rb, rejects, (None if kept is None else kept)

    def _advance(self, parts: np.ndarray, offs: np.ndarray) -> None:
        now = time.monotonic()
        if parts.size and (parts == parts[0]).all():
            seen = {int(parts[0]): int(offs.max())}
        else:
            seen = {int(p): int(offs[parts == p].max()) for p in np.unique(parts)}
        for p, last in seen.items():
            if last + 1 > self._pos.get(p, -1):
                self._pos[p] = last + 1
            self._last_data[p] = now
        if self.bounded:
            self._check_drained(set(seen))

    def _check_drained(self, active: set) -> None:
        """Bounded: a partition that reached its end offset is done at partition EOF, or once
        nothing more arrived for ``bounded.drain.ms`` (Tansu reports a high watermark below the
        real end, so reaching the reported end does not mean its last batch was read)."""
        now = time.monotonic()
        for p, end in self._end.items():
            if p in self._done or p in active or self._pos.get(p, 0) < end:
                continue
            if now - self._last_data.get(p, now) >= self._drain_idle_s:
                self._done.add(p)

    def has_more(self) -> bool:
        if self._closed:
            return False
        if not self.bounded:
            return True
        if not self._ever_assigned or self._new:
            return True
        if not self._assigned:
            # no partition (yet): a member that just died may still hold them until it is
            # dropped from the group, so wait that long for a rebalance before calling it done
            return time.monotonic() - self._empty_since < self._empty_wait_s
        return not all(p in self._done for p in self._assigned)

    def rejects(self) -> list[Reject]:
        """The rejected messages since the last call."""
        out, self._rejects = self._rejects, []
        return out

    # -- offsets -------------------------------------------------------------------------------
    def positions(self) -> dict[int, int]:
        """{partition: next offset} of everything ``read()`` returned so far."""
        return dict(self._pos)

    def commit(self) -> None:
        """Commit (synchronously) the next offsets of everything read so far."""
        self.commit_offsets(self._pos)

    def commit_offsets(self, offsets: dict[int, int]) -> None:
        """Commit (synchronously) these {partition: next offset} of assigned partitions."""
        from confluent_kafka import TopicPartition
        tps = [TopicPartition(self.topic, p, o) for p, o in offsets.items()
               if p in self._assigned and o >= 0 and self._committed.get(p) != o]
        if not tps or self._closed:
            return
        try:
            self._c.commit(offsets=tps, asynchronous=False)
        except Exception as exc:  # noqa: BLE001
            raise JobError(f"source '{self.name}': committing offsets failed: {exc}") from exc
        for tp in tps:
            self._committed[tp.partition] = tp.offset

    def seek(self, position) -> None:
        """Continue from ``position`` = {partition: offset} (as returned by ``positions()``)."""
        from confluent_kafka import TopicPartition
        for p, o in dict(position).items():
            p, o = int(p), int(o)
            self._pos[p] = o
            self._done.discard(p)
            if p in self._assigned:
                try:
                    self._c.seek(TopicPartition(self.topic, p, o))
                    continue
                except Exception:  # noqa: BLE001 - not fetching yet: apply on assignment
                    pass
            self._seek_to[p] = o

    def lag(self) -> Optional[int]:
        """Messages between the positions read and the (cached) high watermarks, or None."""
        from confluent_kafka import TopicPartition
        total = 0
        for p in list(self._assigned):
            try:
                _, hi = self._c.get_watermark_offsets(TopicPartition(self.topic, p), cached=True)
            except Exception:  # noqa: BLE001
                return None
            if hi < 0 or p not in self._pos:
                return None
            total += max(hi - self._pos[p], 0)
        return total

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._c.close()


def _apply_schema(rb: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    for f in schema:
        if f.name in rb.schema.names:
            i = rb.schema.get_field_index(f.name)
            rb = rb.set_column(i, f.name, pc.cast(rb.column(i), f.type))
    return rb


def _json_default(v):
    """What orjson cannot serialise itself: DECIMAL values (as numbers), bytes (as text)."""
    from decimal import Decimal
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


class KafkaSink:
    """Query results to a Kafka topic, one message per row (a ``Writer``).

    The key is the ``key_columns`` values joined with ``|`` (``AAPL|TRADER1``), none without key
    columns. ``flush()`` waits for delivery and raises ``DeliveryError`` if any message failed.
    """

    def __init__(self, name: str, props: Properties, key_columns: Sequence[str] = ()):
        from confluent_kafka import Producer
        self.name = name
        self.topic = props.require("topic")
        self.bootstrap = props.require("bootstrap.servers")
        self.key_columns = list(key_columns)
        fmt = (props.get("format") or "json").lower()
        if fmt not in ("json", "avro"):
            raise ConfigError(f"'{name}.format' must be json or avro, got {fmt!r}")
        if fmt != "avro" and "schema.registry.url" in props:
            raise ConfigError(f"'{name}.schema.registry.url' needs '{name}.format' = 'avro'")
        self.format = fmt
        self._avro = None
        if fmt == "avro":  # without avro.schema.file the schema comes from the first batch
            from .avro import AvroCodec
            self._avro = AvroCodec.from_properties(props, topic=self.topic)
        props.get("key.columns")  # read by the job spec (message keys), not a librdkafka setting
        connect_ms = props.get_int("connect.timeout.ms", 12000)
        self._flush_s = props.get_int("flush.timeout.ms", 60000) / 1000
        conf = _client_conf(props, PRODUCER_DEFAULTS, {
            "bootstrap.servers": self.bootstrap, "on_delivery": self._on_delivery,
            "delivery.report.only.error": True})
        try:
            self._p = Producer(conf)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"{name}: invalid Kafka producer configuration: {exc}") from None
        md = _connect(self._p, self.bootstrap, connect_ms, f"sink '{name}'")
        if self.topic not in md.topics:
            log.info("sink '%s': topic '%s' does not exist yet (the broker may create it)",
                     name, self.topic)
        self._errors: list = []
        self._failed = 0
        self._failed_msgs: list = []
        self.produced = 0

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._failed += 1
            if len(self._errors) < 100:
                self._errors.append(err)
            if len(self._failed_msgs) < self.MAX_KEPT_FAILED:
                self._failed_msgs.append((msg.key(), msg.value(), str(err)))

    MAX_KEPT_FAILED = 100_000

    def resend(self, messages: list) -> None:
        """Produce again the (key, value, error) messages of a ``DeliveryError``."""
        for key, value, _ in messages:
            while True:
                try:
                    self._p.produce(self.topic, value, key)
                    break
                except BufferError:
                    self._p.poll(0.05)
        self._p.poll(0)

    def _keys(self, rb: pa.RecordBatch) -> Optional[list]:
        if not self.key_columns:
            return None
        missing = [k for k in self.key_columns if k not in rb.schema.names]
        if missing:
            raise ConfigError(f"sink '{self.name}': key column(s) {', '.join(missing)} not in the "
                              f"output (columns: {', '.join(rb.schema.names)})")
        cols = [pc.cast(rb.column(k), pa.string()) for k in self.key_columns]
        if len(cols) == 1:
            joined = pc.fill_null(cols[0], "")
        else:
            joined = pc.binary_join_element_wise(*cols, "|", null_handling="replace",
                                                 null_replacement="")
        return joined.to_pylist()

    def _values(self, rb: pa.RecordBatch) -> list[bytes]:
        if self._avro is not None:
            return self._avro.encode(rb)
        import orjson
        dumps = orjson.dumps
        return [dumps(r, default=_json_default) for r in rb.to_pylist()]

    def write_batch(self, rb: pa.RecordBatch) -> None:
        if rb.num_rows == 0:
            return
        values = self._values(rb)
        keys = self._keys(rb)
        produce, poll, topic = self._p.produce, self._p.poll, self.topic
        for i, v in enumerate(values):
            k = None if keys is None else keys[i]
            while True:
                try:
                    produce(topic, v, k)
                    break
                except BufferError:  # the local queue is full: serve deliveries, retry
                    poll(0.05)
        poll(0)
        self.produced += len(values)

    def flush(self) -> None:
        remaining = self._p.flush(self._flush_s)
        failed, errors, messages = self._failed, self._errors, self._failed_msgs
        self._failed, self._errors, self._failed_msgs = 0, [], []
        if remaining:
            failed += remaining
            errors = errors + [f"{remaining} message(s) still queued after "
                               f"{self._flush_s:g}s (flush.timeout.ms)"]
        if failed:
            raise DeliveryError(self.topic, errors, failed, messages)

    def commit(self) -> None:
        """Delivered messages are already durable (``flush``); nothing more to do."""

    def rollback(self) -> None:
        """Drop what is still queued locally (sent messages cannot be taken back)."""
        try:
            self._p.purge(in_queue=True, in_flight=False)
            self._p.poll(0)
        finally:
            self._failed, self._errors, self._failed_msgs = 0, [], []

    def close(self) -> None:
        self._p.flush(self._flush_s)


class KafkaDeadLetter:
    """Rejected records to a dead-letter topic: the original payload as the value, headers
    ``error``, ``source`` and ``position``."""

    def __init__(self, bootstrap: str, topic: str, extra: Optional[dict] = None):
        from confluent_kafka import Producer
        self.topic = topic
        self.bootstrap = bootstrap
        conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "logger": log}
        conf.update(extra or {})
        self._p = Producer(conf)
        self._errors: list = []
        self.written = 0

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._errors.append(err)

    def write(self, rejects: list[Reject]) -> None:
        for r in rejects:
            headers = [("error", r.error.encode()), ("source", r.source.encode()),
                       ("position", r.position.encode())]
            while True:
                try:
                    self._p.produce(self.topic, r.payload, headers=headers,
                                    on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self._p.poll(0.05)
        self._p.poll(0)
        self.written += len(rejects)

    def flush(self) -> None:
        remaining = self._p.flush(30)
        errors, self._errors = self._errors, []
        if remaining or errors:
            raise DeliveryError(self.topic, errors, len(errors) + remaining)

    def commit(self) -> None:
        self.flush()

    def close(self) -> None:
        self._p.flush(30)
