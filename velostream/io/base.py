"""What every source and sink shares: rejected records, and the properties that configure them.

A source never drops a record it cannot decode: it keeps a ``Reject`` (the original bytes, where
they came from and why they failed) and hands it over through ``Reader.rejects()``; the job counts
it and routes it by its failure strategy (dead-letter file or topic, or fail the job).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import pyarrow as pa

from .._lazy import pc  # imported when first used: see the module
from ..batch import _INT64_MAX, _TS_MS, _mask, text_to_epoch_ms
from ..errors import VelostreamError



@dataclass(frozen=True)
class Reject:
    """One input record a source could not turn into a row."""
    source: str        # the source's name in the job (the FROM name)
    position: str      # human-readable origin: "trades.csv:1043" (line), "trades/2@1045" (topic/partition@offset)
    error: str         # what was wrong, e.g. "line 1043: expected 5 fields, got 3"
    payload: bytes     # the original record, byte for byte

    @staticmethod
    def to_arrow(rejects: "list[Reject]") -> pa.RecordBatch:
        """Rejects as a record batch (source, position, error, payload): the dead-letter shape."""
        return pa.RecordBatch.from_pydict({
            "source": pa.array([r.source for r in rejects], pa.string()),
            "position": pa.array([r.position for r in rejects], pa.string()),
            "error": pa.array([r.error for r in rejects], pa.string()),
            "payload": pa.array([r.payload for r in rejects], pa.binary()),
        })


class ConfigError(VelostreamError, ValueError):
    """A source or sink property is missing or wrong; the message names the property."""


class Properties:
    """The ``WITH`` properties of one source or sink, with the ``name.`` prefix removed.

    ``get``/``require``/``get_int``/``get_bool`` read and *mark* a key as used, so ``unused()``
    can list the rest (passed through to librdkafka by the Kafka source and sink, reported as
    unknown by the others).
    """

    def __init__(self, name: str, values: Mapping[str, str]):
        self.name = name
        self.values = dict(values)
        self._used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        self._used.add(key)
        return self.values.get(key, default)

    def require(self, key: str) -> str:
        self._used.add(key)
        if key not in self.values:
            raise ConfigError(f"'{self.name}.{key}' is required for {self.name} "
                              f"(type {self.values.get('type', '?')})")
        return self.values[key]

    def get_int(self, key: str, default: int) -> int:
        v = self.get(key)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise ConfigError(f"'{self.name}.{key}' must be an integer, got {v!r}") from None

    def get_bool(self, key: str, default: bool) -> bool:
        v = self.get(key)
        if v is None:
            return default
        if v.lower() in ("true", "1", "yes", "on"):
            return True
        if v.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"'{self.name}.{key}' must be true or false, got {v!r}")

    def unused(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k not in self._used and k != "type"}


def event_time_ms(col: pa.Array, what: str) -> tuple[pa.Array, list[tuple[int, str]]]:
    """An event-time column as int64 epoch milliseconds: integers pass as they are (already ms),
    floats are floored, timestamps and ISO-8601 text (or epoch-ms digits as text) converted.

    A value that is not a time (unparseable text, NaN, a number past the int64 range) is a bad
    record (docs/CONNECTORS.md, bad records): it is NULL in the result and listed, with why, in
    the second item. Raises ``ConfigError`` for a column type that cannot hold a time at all.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    bad: list[tuple[int, str]] = []
    if pa.types.is_integer(t):
        if pa.types.is_unsigned_integer(t) and t.bit_width == 64:
            over = _mask(pc.greater(col, pa.scalar(_INT64_MAX, t)))
            if over.any():
                bad = [(int(i), f"{what}: {col[i].as_py()} is out of range for epoch milliseconds")
                       for i in np.flatnonzero(over)]
                col = pc.if_else(over, pa.scalar(None, t), col)
        return col.cast(pa.int64()), bad
    if pa.types.is_floating(t):
        ok = pc.and_(pc.is_finite(col), pc.less(pc.abs(col), float(1 << 63)))
        refused = _mask(pc.invert(ok))
        if refused.any():
            bad = [(int(i), f"{what}: {col[i].as_py()!r} is out of range for epoch milliseconds")
                   for i in np.flatnonzero(refused)]
            col = pc.if_else(refused, pa.scalar(None, t), col)
        return pc.cast(pc.floor(col), pa.int64()), bad
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        ms, rows = text_to_epoch_ms(col)
        return ms, [(int(i), f"{what}: cannot read {_show_text(col[i].as_py())} as a time "
                             f"(epoch milliseconds or ISO-8601 text)") for i in rows]
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return pc.cast(pc.cast(col, _TS_MS, safe=False), pa.int64()), bad
    raise ConfigError(f"{what} must be epoch milliseconds, a timestamp or ISO-8601 text, not {t}")


def _show_text(v: str) -> str:
    return repr(v if len(v) <= 60 else v[:57] + "...")


def with_event_time(rb: pa.RecordBatch, field: Optional[str], fallback_ms=None,
                    bad_rows: Optional[list[tuple[int, str]]] = None) -> pa.RecordBatch:
    """Set the ``_TIMESTAMP`` system column (docs/SQL.md §3).

    ``field`` (the ``event.time.field`` property) names the payload column holding event time;
    without it an existing ``_TIMESTAMP`` column is kept, else ``fallback_ms`` is used (the Kafka
    message timestamps as an int64 array, or None for ingestion time: the wall clock now).
    A row whose event time is not a time is a bad record: with a ``bad_rows`` list it is left out
    of the result and appended there as (row index in ``rb``, why); without one, ``ValueError``.
    """
    import time
    names = rb.schema.names
    if field is not None:
        if field not in names:
            raise ConfigError(f"event.time.field '{field}' is not a field of the input "
                              f"(fields: {', '.join(names)})")
        ts, bad = event_time_ms(rb.column(field), f"event.time.field '{field}'")
        if bad:
            if bad_rows is None:
                raise ValueError(bad[0][1])
            bad_rows.extend(bad)
            keep = np.ones(rb.num_rows, dtype=bool)
            keep[[i for i, _ in bad]] = False
            keep_arr = pa.array(keep)
            rb, ts = rb.filter(keep_arr), ts.filter(keep_arr)
    elif "_TIMESTAMP" in names:
        return rb
    elif fallback_ms is not None:
        ts = pa.array(fallback_ms, pa.int64())
    else:
        ts = pa.array(np.full(rb.num_rows, int(time.time() * 1000), dtype=np.int64))
    if "_TIMESTAMP" in names:
        return rb.set_column(names.index("_TIMESTAMP"), "_TIMESTAMP", ts)
    return rb.append_column("_TIMESTAMP", ts)


class FilePosition:
    """What a file source (CSV / JSON lines, Parquet / Arrow) says about where it is: the file it
    reads (an index into its files) and how many of that file's rows it has delivered, read ahead
    batches in ``_ready``; ``seek`` (the source's own) continues from such a position."""

    _file: int
    _rows_in_file: int
    _done: bool
    _ready: list

    def has_more(self) -> bool:
        return not self._done or bool(self._ready)

    @property
    def position(self) -> tuple[int, int]:
        return (self._file, self._rows_in_file)

    def commit(self) -> None:
        self.committed = self.position


def wait_all(pending: list) -> None:
    """Until every future of ``pending`` (a sink's writes handed to its thread) has ended;
    raises the first one's error, after all ended."""
    error = None
    for f in pending:
        try:
            f.result()
        except Exception as exc:  # noqa: BLE001 - the first one is raised, after all ended
            error = error or exc
    if error is not None:
        raise error
