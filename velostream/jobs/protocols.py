"""The reader and writer protocols every source and sink implements, and the in-memory ones.

The lifecycle follows the original engine: a reader hands out batches and is told to ``commit``
once everything derived from them is safely written; a writer buffers ``write_batch`` calls until
``flush`` and makes them durable on ``commit`` (or forgets them on ``rollback``).
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Protocol, runtime_checkable

import pyarrow as pa

from ..batch import to_record_batches


@runtime_checkable
class Reader(Protocol):
    def read(self) -> Optional[pa.RecordBatch]:
        """The next batch, or None when nothing is available right now (or the input ended)."""

    def has_more(self) -> bool:
        """False once a bounded input is exhausted; an unbounded one always has more."""

    def commit(self) -> None:
        """Everything read so far is accounted for downstream."""

    def seek(self, position: Any) -> None:
        """Continue reading from ``position`` (source-specific: an offset, a batch index)."""

    def close(self) -> None: ...


@runtime_checkable
class Writer(Protocol):
    def write_batch(self, batch: pa.RecordBatch) -> None: ...

    def flush(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


# -- what some connectors can do besides (docs/CONNECTORS.md, "Writing your own") --------------
# The job asks ``implements(x, Capability)`` once, when it starts, and calls the methods directly.


def implements(obj: Any, protocol: type) -> bool:
    """``isinstance(obj, protocol)`` for one of the protocols here, with the protocol's members
    listed once: Python 3.11's runtime-checkable ``isinstance`` walks the protocol's classes on
    every call (~25 us, several per job: a tenth of a one-batch ``vs.query``). A member is
    there when ``obj`` has it, a method when it is not None, as ``isinstance`` decides."""
    if protocol in type(obj).__mro__:
        return True
    return all(hasattr(obj, name) and (not method or getattr(obj, name) is not None)
               for name, method in _members(protocol))


@functools.cache
def _members(protocol: type) -> tuple:
    """(name, is a method) of each public member a protocol and its protocol bases declare."""
    names: dict = {}
    for base in protocol.__mro__:
        if base in (object, Protocol) or not getattr(base, "_is_protocol", False):
            continue
        for name in (*vars(base), *getattr(base, "__annotations__", {})):
            if not name.startswith("_"):
                names[name] = callable(getattr(protocol, name, None))
    return tuple(sorted(names.items()))


@runtime_checkable
class ReportsRejects(Protocol):
    """A reader that keeps the records it could not decode (``io.base.Reject``) instead of
    dropping them; the job counts them and routes them by its failure strategy."""

    def rejects(self) -> list:
        """The rejects since the last call (then forgotten by the reader)."""


@runtime_checkable
class PartitionedWatermark(Protocol):
    """A reader whose partitions are each in event-time order but not with each other: the
    watermark is kept per partition (docs/SQL.md, "The watermark of a Kafka source")."""

    watermark_by: str  # the column naming a record's source partition

    def watermark_partitions(self) -> tuple[list[int], list[int]]:
        """(active, idle) partitions, for the job-wide watermark."""


@runtime_checkable
class PartitionedSource(PartitionedWatermark, Protocol):
    """A source whose partitions a consumer group moves between processes (Kafka): the job keeps
    state per source partition and commits read positions per partition."""

    key_columns: Optional[list[str]]  # the columns the message key holds, if any

    def set_rebalance_listener(self, on_assign, on_revoke) -> None: ...

    def positions(self) -> dict[int, int]:
        """Each assigned partition's next offset."""

    def commit_offsets(self, offsets: dict[int, int]) -> None: ...


@runtime_checkable
class ReportsLag(Protocol):
    def lag(self) -> Optional[int]:
        """Messages not read yet (for the metrics), or None when it cannot tell."""


@runtime_checkable
class PositionedReader(Protocol):
    """A reader that says where it is (what ``seek`` takes back): a pipeline's checkpoint keeps
    it beside the state (jobs/pipeline_checkpoint.py)."""

    position: Any


@runtime_checkable
class CoalescingReader(Protocol):
    """A reader whose ``read()`` never waits (``coalesce = True``): what it has waiting may be
    taken in one step (Job._next_input)."""

    coalesce: bool


@runtime_checkable
class ResendingWriter(Protocol):
    """A sink whose failed flush names the undelivered messages (Kafka's ``DeliveryError``),
    which it can send again (RetryWithBackoff)."""

    def resend(self, messages: list) -> None: ...


@runtime_checkable
class DeadLetterOutput(Protocol):
    """Where bad records go, as ``Reject``s with their original bytes (a file, a topic). A
    plain ``Writer`` given as the dead-letter output gets record batches instead."""

    def write(self, rejects: list) -> None: ...

    def flush(self) -> None: ...


class MemoryReader:
    """Reads any in-memory input ``vs.query`` accepts, batch by batch (a bounded source)."""

    def __init__(self, data: Any):
        self._batches = list(to_record_batches(data))
        self.position = 0
        self.committed = 0

    def read(self) -> Optional[pa.RecordBatch]:
        if self.position >= len(self._batches):
            return None
        rb = self._batches[self.position]
        self.position += 1
        return rb

    def has_more(self) -> bool:
        return self.position < len(self._batches)

    def commit(self) -> None:
        self.committed = self.position

    def seek(self, position: int) -> None:
        self.position = int(position)

    def close(self) -> None:
        pass


class MemoryWriter:
    """Keeps written batches in memory: ``batches`` holds what was committed."""

    def __init__(self):
        self.batches: list[pa.RecordBatch] = []
        self._pending: list[pa.RecordBatch] = []
        self.flushes = 0
        self.closed = False

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)

    def flush(self) -> None:
        self.flushes += 1

    def commit(self) -> None:
        self.batches.extend(self._pending)
        self._pending = []

    def rollback(self) -> None:
        self._pending = []

    def close(self) -> None:
        self.closed = True


class FanOutWriter:
    """The sink of a job whose pipeline writes several relations (docs/SQL.md §8): the result's
    rows go to ``primary``; the other relations' writers get theirs from the pipeline directly
    (``GraphEngine.side_outputs``). Flush, commit, rollback and close reach every writer, so all
    outputs are durable before the source's offsets are committed."""

    def __init__(self, primary, others: dict):
        self.primary = primary
        self.others = dict(others)
        self.name = getattr(primary, "name", None)

    def _all(self):
        return [self.primary, *self.others.values()]

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self.primary.write_batch(batch)

    def flush(self) -> None:
        for w in self._all():
            w.flush()

    def commit(self) -> None:
        for w in self._all():
            w.commit()

    def rollback(self) -> None:
        for w in self._all():
            w.rollback()

    def close(self) -> None:
        _close_all(self._all())


class MergedReader:
    """Several sources read as one, for a job whose pipeline reads several (docs/SQL.md §8, §9):
    ``current`` names the source of the batch ``read()`` returned last. Table sources are read
    to their end first (a bounded one) or taken whenever they have rows; among the streams, a
    bounded input goes in the order of its batches' first event times (as they would arrive
    live), an unbounded one round-robin."""

    def __init__(self, readers: dict, tables=()):
        self.readers = dict(readers)
        self.tables = {t.lower() for t in tables}
        self.current: Optional[str] = None
        self._peeked: dict[str, Optional[pa.RecordBatch]] = {}
        self._turn = 0

    def read(self) -> Optional[pa.RecordBatch]:
        names = list(self.readers)
        for name in names:  # tables first
            if name.lower() in self.tables:
                rb = self._take(name)
                if rb is not None:
                    return rb
        streams = [n for n in names if n.lower() not in self.tables]
        heads = []
        for name in streams:
            if self._peeked.get(name) is None:  # nothing held from this one: ask it again
                self._peeked[name] = self.readers[name].read()
            if self._peeked[name] is not None:
                heads.append(name)
        if not heads:
            return None
        name = min(heads, key=lambda n: (_first_time(self._peeked[n]), streams.index(n)))
        rb = self._peeked.pop(name)
        self.current = name
        return rb

    def _take(self, name: str) -> Optional[pa.RecordBatch]:
        rb = self.readers[name].read()
        if rb is not None:
            self.current = name
        return rb

    def has_more(self) -> bool:
        return any(v is not None for v in self._peeked.values()) or any(
            r.has_more() for r in self.readers.values())

    def commit(self) -> None:
        for r in self.readers.values():
            r.commit()

    def seek(self, position) -> None:
        for name, pos in dict(position).items():
            self.readers[name].seek(pos)

    def _partitioned(self):
        """The one reader of independently ordered partitions (a Kafka stream), if there is
        exactly one: its partitions are the ones the pipeline's watermark is kept over."""
        found = [r for r in self.readers.values() if implements(r, PartitionedWatermark)]
        return found[0] if len(found) == 1 else None

    @property
    def watermark_by(self) -> str:
        """As that reader's (``PartitionedWatermark``); no such attribute without one."""
        r = self._partitioned()
        if r is None:
            raise AttributeError("watermark_by")
        return r.watermark_by

    def watermark_partitions(self) -> tuple[list[int], list[int]]:
        return self._partitioned().watermark_partitions()

    def rejects(self) -> list:
        out = []
        for r in self.readers.values():
            if implements(r, ReportsRejects):
                out += r.rejects()
        return out

    def close(self) -> None:
        _close_all(self.readers.values())


def _first_time(rb: pa.RecordBatch) -> int:
    if "_TIMESTAMP" not in rb.schema.names or rb.num_rows == 0:
        return -2 ** 63
    col = rb.column("_TIMESTAMP")
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ms")).cast(pa.int64())
    v = col[0].as_py()
    return -2 ** 63 if v is None else int(v)


def _close_all(connectors) -> None:
    """Close every one of ``connectors``, then raise the first error if any failed."""
    errors = []
    for c in connectors:
        try:
            c.close()
        except Exception as exc:  # noqa: BLE001 - the others are closed all the same
            errors.append(exc)
    if errors:
        raise errors[0]
