"""What every source and sink shares: rejected records, and the properties that configure them.

A source never drops a record it cannot decode: it keeps a ``Reject`` (the original bytes, where
they came from and why they failed) and hands it over through ``Reader.rejects()``; the job counts
it and routes it by its failure strategy (dead-letter file or topic, or fail the job).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import VelostreamError

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_NO_ROWS = np.zeros(0, dtype=np.int64)


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


_TS_MS = pa.timestamp("ms")
# Arrow parses ISO-8601 text one precision and one zone form per cast: text with a zone offset
# needs a zoned target, text with more than millisecond precision a finer unit.
_ISO_TARGETS = tuple(pa.timestamp(unit, tz=tz) for unit in ("ms", "us", "ns") for tz in (None, "UTC"))
_DIGITS_RE = r"^\s*[+-]?\d+\s*$"
_ZONED_RE = r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)\s*$"
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _iso_to_ms(col: pa.Array) -> pa.Array:
    """ISO-8601 text (one zone form) as int64 epoch ms; raises ``ArrowInvalid`` if a value does
    not parse. No zone means UTC."""
    for target in _ISO_TARGETS:
        try:
            ts = pc.cast(col, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if target.unit != "ms" or target.tz is not None:
            ts = pc.cast(ts, _TS_MS, safe=False)  # the zone is UTC already; finer units truncated
        return pc.cast(ts, pa.int64())
    raise pa.ArrowInvalid("not ISO-8601 text")


def _digits_to_ms(col: pa.Array) -> pa.Array:
    """Epoch-millisecond digits as int64; raises ``ArrowInvalid`` past the int64 range."""
    return pc.cast(pc.utf8_trim_whitespace(col), pa.int64())


def _one_text_to_ms(text: str) -> Optional[int]:
    """One value Arrow refused, by Python's parsers (odd ISO forms such as a mix of precisions),
    or None when it is not a time: not ISO-8601, a date out of range, digits past int64."""
    t = text.strip()
    if t.lstrip("+-").isdigit():
        v = int(t)
        return v if _INT64_MIN <= v <= _INT64_MAX else None
    try:
        d = _dt.datetime.fromisoformat(t)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return (d - _EPOCH) // _dt.timedelta(milliseconds=1)


def failing_rows(arr: pa.Array, convert: Callable[[pa.Array], pa.Array], lo: int = 0,
                 hi: Optional[int] = None) -> list[int]:
    """Indices in [lo, hi) of the values ``convert`` refuses, found by bisection: a few
    conversions per bad value, never one per good value."""
    if hi is None:
        hi = len(arr)
    if hi <= lo:
        return []
    try:
        convert(arr.slice(lo, hi - lo))
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError):
        if hi - lo == 1:
            return [lo]
    mid = (lo + hi) // 2
    return failing_rows(arr, convert, lo, mid) + failing_rows(arr, convert, mid, hi)


def _mask(arr) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def text_to_epoch_ms(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """ISO-8601 text or epoch-millisecond digits as int64 epoch ms, and the indices of the values
    that are neither (NULL in the result). NULL stays NULL. Arrow parses the column at once; only
    a column that holds a bad value or a mix of forms is split by form, and only the values Arrow
    refuses are looked at one by one."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    first = pc.drop_null(col.slice(0, 64))
    digits_first = len(first) > 0 and first[0].as_py().strip().lstrip("+-").isdigit()
    for convert in ((_digits_to_ms, _iso_to_ms) if digits_first else (_iso_to_ms,)):
        try:  # the usual case: one form for the whole column
            return convert(col), _NO_ROWS
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    n = len(col)
    out = np.zeros(n, dtype=np.int64)
    valid = _mask(pc.is_valid(col))
    digits = _mask(pc.match_substring_regex(col, _DIGITS_RE))
    zoned = _mask(pc.match_substring_regex(col, _ZONED_RE)) & ~digits
    bad: list[int] = []
    for group, convert in ((digits, _digits_to_ms), (zoned, _iso_to_ms),
                           (valid & ~digits & ~zoned, _iso_to_ms)):
        rows = np.flatnonzero(group)
        if not len(rows):
            continue
        part = col.take(pa.array(rows))
        refused = failing_rows(part, convert)
        if refused:
            keep = np.ones(len(rows), dtype=bool)
            keep[refused] = False
            for i in refused:
                ms = _one_text_to_ms(part[i].as_py())
                if ms is None:
                    bad.append(int(rows[i]))
                else:
                    out[rows[i]] = ms
            rows, part = rows[keep], part.filter(pa.array(keep))
        if len(rows):
            try:
                out[rows] = np.asarray(convert(part).to_numpy(zero_copy_only=False))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                # every value parses alone but not together (a date beside a date-time): one by
                # one, only for such a mixed column
                for r, text in zip(rows, part.to_pylist()):
                    ms = _one_text_to_ms(text)
                    if ms is None:
                        bad.append(int(r))
                    else:
                        out[r] = ms
    bad_rows = np.asarray(sorted(bad), dtype=np.int64)
    valid[bad_rows] = False
    return pa.array(out, pa.int64(), mask=~valid), bad_rows


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
    """Set the ``_TIMESTAMP`` system column (SEMANTICS §3).

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
