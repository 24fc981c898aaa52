"""Columnar batches: what flows between the source, the operators and the sink.

A ``Batch`` is a set of named ``Column``\\ s of equal length. A column is a numpy array of values plus
an optional validity mask (``None`` means no NULLs), typed by a ``SqlType`` (docs/SQL.md §2):

==========  ===============================================================
SQL type    values
==========  ===============================================================
INT64       int64
FLOAT64     float64
DECIMAL     int64 scaled by 10**scale (exact sums)
STRING      int32 codes into the job's ``StringDict`` (stable for the job)
BOOL        bool
TIMESTAMP   int64 epoch milliseconds
DATE        int64 epoch milliseconds of a UTC midnight (leaves as Arrow date32)
==========  ===============================================================

Columns arriving from Arrow convert lazily: a column the query never touches is never decoded, and
a column that is only projected is filtered in its Arrow form (late materialisation). Strings never
become per-row Python objects: Arrow's C++ dictionary encoder finds each batch's distinct values, and
only those (not the rows) are looked up in the job-wide dictionary.
"""
from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pyarrow as pa

from ._lazy import pc  # imported when first used: see the module

# --------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class SqlType:
    """A column's logical type. ``scale``/``precision`` only for DECIMAL. TIMESTAMP values are
    epoch milliseconds and go out as int64 (as ``_WINDOW_START`` does)."""
    kind: str  # INT64 FLOAT64 DECIMAL STRING BOOL TIMESTAMP DATE NULL
    scale: int = 0
    precision: int = 18

    def __str__(self) -> str:
        if self.kind == "DECIMAL":
            return f"DECIMAL({self.precision},{self.scale})"
        return self.kind

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("INT64", "FLOAT64", "DECIMAL", "TIMESTAMP", "BOOL", "NULL")

    @property
    def numpy_dtype(self) -> np.dtype:
        return _NUMPY_DTYPE[self.kind]


INT64 = SqlType("INT64")
FLOAT64 = SqlType("FLOAT64")
STRING = SqlType("STRING")
BOOL = SqlType("BOOL")
TIMESTAMP = SqlType("TIMESTAMP")
# a calendar day: held as TIMESTAMP is (epoch ms, always a UTC midnight), leaves as Arrow date32
# (docs/SQL.md §2). A source's date32/date64 column is a TIMESTAMP (its midnight), as it always
# was; only a DATE the engine made (CAST(ts AS DATE), DATE '...', CURRENT_DATE) is a DATE, and so
# is the date32 column it leaves as when a stream or CTE reads it (``type_of_arrow(t, dates=True)``).
DATE = SqlType("DATE")
MS_PER_DAY = 86_400_000
NULLTYPE = SqlType("NULL")


def DECIMAL(precision: int = 18, scale: int = 0) -> SqlType:
    return SqlType("DECIMAL", scale=scale, precision=min(precision, 18))


_NUMPY_DTYPE = {
    "INT64": np.dtype(np.int64), "FLOAT64": np.dtype(np.float64), "DECIMAL": np.dtype(np.int64),
    "STRING": np.dtype(np.int32), "BOOL": np.dtype(np.bool_), "TIMESTAMP": np.dtype(np.int64),
    "DATE": np.dtype(np.int64), "NULL": np.dtype(np.int64),
}


def type_of_arrow(t: pa.DataType, dates: bool = False) -> SqlType:
    """The SQL type an Arrow column maps to (raises TypeError for types we do not take). A date
    is a TIMESTAMP (a source's), or with ``dates`` a DATE (a relation the engine made: a DATE
    leaves as date32)."""
    if pa.types.is_dictionary(t):
        return type_of_arrow(t.value_type)
    if pa.types.is_integer(t):
        return INT64
    if pa.types.is_floating(t):
        return FLOAT64
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return STRING
    if pa.types.is_timestamp(t):
        return TIMESTAMP
    if pa.types.is_date(t):
        return DATE if dates else TIMESTAMP
    if pa.types.is_decimal(t):
        if t.scale > 18:
            raise TypeError(f"DECIMAL({t.precision},{t.scale}) has more than 18 digits after the "
                            f"point (DECIMAL is int64 scaled)")
        # a wider decimal (DuckDB and Spark write DECIMAL(38, s)) is held as DECIMAL(18, s): a
        # value that needs more digits is a bad record, taken out by the binding step
        # (velostream.binding, docs/SQL.md "Types at the boundary")
        return DECIMAL(t.precision, t.scale)
    if pa.types.is_null(t):
        return NULLTYPE
    raise TypeError(f"unsupported column type {t}")


def arrow_type_of(t: SqlType) -> pa.DataType:
    return {
        "INT64": pa.int64(), "FLOAT64": pa.float64(), "STRING": pa.string(), "BOOL": pa.bool_(),
        "TIMESTAMP": pa.int64(), "DATE": pa.date32(), "NULL": pa.null(),
    }.get(t.kind) or pa.decimal128(max(t.precision, t.scale, 1), t.scale)


_SCHEMA_TYPES: dict = {}
_ARROW_TYPES = {t: arrow_type_of(t) for t in (INT64, FLOAT64, STRING, BOOL, TIMESTAMP, DATE)}

# ---------------------------------------------------------------------------- string dictionary


class StringDict:
    """The job-wide string dictionary: each distinct string gets a stable int32 code.

    Codes never change for the life of the job, so they can be hashed as group keys, stored in
    window state and compared across batches and partitions. The work is done by the compiled
    ``StringInterner`` straight from Arrow's string buffers (no per-row Python objects).

    >>> d = StringDict()
    >>> d.encode_arrow(pa.array(["x", None, "y", "x"]))[0].tolist()
    [0, 1, 2, 0]
    """

    def __init__(self) -> None:
        from ._core.strings import StringInterner
        self._interner = StringInterner()
        # Partition threads intern concurrently; the interner appends in a nogil loop, so
        # additions take turns (a waiting thread does not hold the GIL). Reads need no lock: the
        # stores are append-only and a full one is replaced, never changed in place.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._interner)

    def code(self, s: str) -> int:
        c = self._interner.lookup_bytes(s.encode())
        if c < 0:
            with self._lock:
                c = int(self._interner.encode_arrow(pa.array([s], pa.string()))[0])
        return c

    def lookup(self, s: str) -> int:
        """The code of ``s`` or -1 when the job has never seen it (no insertion)."""
        return self._interner.lookup_bytes(s.encode())

    def encode_arrow(self, arr: pa.Array, rows: Optional[np.ndarray] = None
                     ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Codes (int32) and validity (None when no NULLs) for an Arrow string array, or for
        its rows ``rows`` (int64) only."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        valid = _valid_of(arr) if arr.null_count else None
        if valid is not None and rows is not None:
            valid = valid[rows]
        if pa.types.is_dictionary(arr.type):
            with self._lock:
                mapping = self._interner.encode_arrow(arr.dictionary)  # per distinct value
            idx = arr.indices.fill_null(0).to_numpy(zero_copy_only=False)
            if rows is not None:
                idx = idx[rows]
            return (mapping[idx] if len(mapping) else np.zeros(len(idx), np.int32)), valid
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())
        with self._lock:
            return self._interner.encode_arrow(arr, rows), valid

    def arrow_values(self) -> pa.Array:
        """Every string in code order (a zero-copy view)."""
        return self._interner.values()

    def decode(self, codes: np.ndarray, valid: Optional[np.ndarray] = None) -> pa.Array:
        """An Arrow string array for ``codes`` (NULL where not ``valid``)."""
        codes = np.ascontiguousarray(codes, dtype=np.int32)
        if len(self) == 0:
            return pa.nulls(len(codes), type=pa.string())
        if valid is not None:
            codes = np.where(valid, codes, 0).astype(np.int32)
        return self._interner.decode(codes, valid)

    def values_of(self, codes) -> list[str]:
        return self.arrow_values().take(pa.array(np.asarray(codes, dtype=np.int32))).to_pylist()


# ---------------------------------------------------------------------------------- columns


class Column:
    """One column: ``values`` (numpy), ``valid`` (numpy bool or None = no NULLs), ``type``.

    A column may instead hold its original Arrow array (``arrow``) and convert on first access to
    ``values``/``valid``; ``to_arrow``/``take``/``filter`` work on either form without converting.
    """

    __slots__ = ("type", "_values", "_valid", "arrow", "strings")

    def __init__(self, type: SqlType, values: Optional[np.ndarray] = None,
                 valid: Optional[np.ndarray] = None, arrow: Optional[pa.Array] = None,
                 strings: Optional[StringDict] = None):
        self.type = type
        self._values = values
        self._valid = None if (valid is None or (values is not None and valid.all())) else valid
        self.arrow = arrow
        self.strings = strings

    # -- lazy conversion from Arrow
    def _convert(self) -> None:
        arr = self.arrow
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        kind = self.type.kind
        if kind == "STRING":
            self._values, self._valid = self.strings.encode_arrow(arr)
            return
        valid = None
        if arr.null_count:
            valid = _valid_of(arr)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if kind == "DECIMAL":
            values = _decimal_to_scaled(arr, self.type.scale)
        elif kind == "TIMESTAMP" or kind == "DATE":
            values = _timestamp_to_ms(arr)
        elif kind == "NULL":
            values = np.zeros(len(arr), dtype=np.int64)
            valid = np.zeros(len(arr), dtype=bool)
        else:
            if valid is not None:
                arr = arr.fill_null(_zero_of(arr.type))
            values = _numbers_of(arr)
            dtype = self.type.numpy_dtype
            if values.dtype != dtype:
                values = values.astype(dtype)
        self._values, self._valid = values, valid

    @property
    def values(self) -> np.ndarray:
        if self._values is None:
            self._convert()
        return self._values

    @property
    def valid(self) -> Optional[np.ndarray]:
        if self._values is None:
            self._convert()
        return self._valid

    def __len__(self) -> int:
        return len(self._values) if self._values is not None else len(self.arrow)

    def valid_mask(self) -> np.ndarray:
        """Validity as a bool array (all True when the column has no NULLs)."""
        v = self.valid
        return np.ones(len(self), dtype=bool) if v is None else v

    def valid_u8(self) -> Optional[np.ndarray]:
        """Validity as the uint8 view the kernels take, or None."""
        v = self.valid
        return None if v is None else v.view(np.uint8)

    # -- row selection, in whichever form the column is
    def take(self, idx: np.ndarray) -> "Column":
        if self._values is None and self.type.kind == "STRING":  # no need to encode to move rows
            return Column(self.type, arrow=_take_strings(self.arrow, idx), strings=self.strings)
        values, valid = self.values, self.valid  # numeric Arrow columns convert without a copy
        return Column(self.type, values[idx], None if valid is None else valid[idx],
                      strings=self.strings)

    def slice(self, lo: int, hi: int) -> "Column":
        """Rows lo..hi-1 without copying."""
        if self._values is None:
            return Column(self.type, arrow=self.arrow.slice(lo, hi - lo), strings=self.strings)
        valid = None if self._valid is None else self._valid[lo:hi]
        return Column(self.type, self._values[lo:hi], valid, strings=self.strings)

    def filter(self, mask: np.ndarray) -> "Column":
        if self._values is None:
            return Column(self.type, arrow=self.arrow.filter(_bool_arrow(mask)), strings=self.strings)
        valid = None if self._valid is None else self._valid[mask]
        return Column(self.type, self._values[mask], valid, strings=self.strings)

    def to_arrow(self) -> pa.Array:
        arr = self.arrow
        if type(arr) in _PLAIN_ARRAYS:  # (one set lookup: a select list can be 300,000 items)
            return arr
        if arr is not None:  # still the rows it arrived with: hand the original back
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            if self.type.kind == "STRING" and not pa.types.is_string(arr.type):
                arr = arr.cast(pa.string())
            return arr
        kind = self.type.kind
        mask = None if self._valid is None else ~self._valid
        if kind == "STRING":
            return self.strings.decode(self._values, self._valid)
        if kind == "DECIMAL":
            return _scaled_to_decimal(self._values, mask, self.type)
        if kind == "NULL":
            return pa.nulls(len(self._values))
        if kind == "DATE":
            return dates_to_arrow(self._values, self._valid)
        t = _ARROW_TYPES.get(self.type) or arrow_type_of(self.type)
        if self._values.dtype == _BUFFER_DTYPES.get(t):
            return numpy_to_arrow(self._values, self._valid, t)
        return pa.array(self._values, type=t, mask=mask)

    def to_pylist(self) -> list:
        return self.to_arrow().to_pylist()

    @staticmethod
    def constant(value: Any, type: SqlType, n: int, strings: Optional[StringDict] = None) -> "Column":
        """A column repeating one value (``None`` gives an all-NULL column)."""
        if value is None:
            return Column(type, np.zeros(n, dtype=type.numpy_dtype), np.zeros(n, dtype=bool),
                          strings=strings)
        if type.kind == "STRING":
            value = strings.code(value)
        return Column(type, np.full(n, value, dtype=type.numpy_dtype), strings=strings)


# Arrow array classes ``Column.to_arrow`` hands back as they are: every kind's own class (text
# as ``string``, not ``large_string`` or a dictionary, which it converts)
_PLAIN_ARRAYS = frozenset({pa.Int64Array, pa.DoubleArray, pa.BooleanArray, pa.StringArray,
                           pa.Decimal128Array, pa.NullArray, pa.Date32Array})


def dates_to_arrow(ms: np.ndarray, valid: Optional[np.ndarray]) -> pa.Array:
    """DATE values (epoch ms of UTC midnights) as Arrow date32 (days since the epoch). Floor
    division: a day before 1970 is a negative day number, not one rounded toward zero."""
    days = np.floor_divide(np.asarray(ms, dtype=np.int64), MS_PER_DAY).astype(np.int32)
    return pa.Array.from_buffers(pa.date32(), len(days), [
        None if valid is None else _bool_arrow(valid).buffers()[1], pa.py_buffer(days)],
        null_count=-1 if valid is not None else 0)


# The numpy dtype of each Arrow type ``numpy_to_arrow`` makes from its buffers
_BUFFER_DTYPES = {pa.int64(): np.dtype(np.int64), pa.float64(): np.dtype(np.float64),
                  pa.bool_(): np.dtype(np.bool_)}


def numpy_to_arrow(values: np.ndarray, valid: Optional[np.ndarray], t: pa.DataType) -> pa.Array:
    """``pa.array(values, t, mask=~valid)`` for a 1-D int64, float64 or bool ``values`` of
    ``t``'s dtype (``_BUFFER_DTYPES``), made from its buffers (zero-copy for numbers). pyarrow's
    own conversion first looks for pandas, which imports it: a tenth of a second of a fresh
    process's first query that never sees pandas data."""
    n = len(values)
    if t == _BOOL_ARROW:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
    else:
        data = pa.py_buffer(np.ascontiguousarray(values))
    if valid is None:
        return pa.Array.from_buffers(t, n, [None, data], null_count=0)
    bits = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(t, n, [bits, data], null_count=n - int(np.count_nonzero(valid)))


_BOOL_ARROW = pa.bool_()


def _bool_arrow(mask) -> pa.Array:
    """``pa.array(mask)`` for a numpy bool mask (``numpy_to_arrow``)."""
    if isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.ndim == 1:
        return numpy_to_arrow(mask, None, _BOOL_ARROW)
    return pa.array(mask)


def _numbers_of(arr: pa.Array) -> np.ndarray:
    """``arr.to_numpy(zero_copy_only=False)`` for a number or bool array without NULLs, read
    from its buffers where it can be (Arrow's conversion to numpy looks for pandas first:
    ``numpy_to_arrow``); a number array's values are not copied."""
    t = arr.type
    n, offset = len(arr), arr.offset
    if t == _BOOL_ARROW and n:
        bits = np.unpackbits(np.frombuffer(arr.buffers()[1], dtype=np.uint8), count=offset + n,
                             bitorder="little")
        return bits[offset:].view(bool)
    dtype = _NUMPY_OF_ARROW.get(t)
    data = arr.buffers()[1] if dtype is not None else None
    if data is None:
        return arr.to_numpy(zero_copy_only=False)
    return np.frombuffer(data, dtype=dtype)[offset:offset + n]


_NUMPY_OF_ARROW = {pa.int8(): np.dtype(np.int8), pa.int16(): np.dtype(np.int16),
                   pa.int32(): np.dtype(np.int32), pa.int64(): np.dtype(np.int64),
                   pa.uint8(): np.dtype(np.uint8), pa.uint16(): np.dtype(np.uint16),
                   pa.uint32(): np.dtype(np.uint32), pa.uint64(): np.dtype(np.uint64),
                   pa.float32(): np.dtype(np.float32), pa.float64(): np.dtype(np.float64)}


def _valid_of(arr: pa.Array) -> np.ndarray:
    """``arr.is_valid()`` as a numpy bool array: for a plain (not dictionary, not null-typed)
    array, unpacked from its validity bitmap, since converting Arrow's bool array to numpy
    looks for pandas (``numpy_to_arrow``)."""
    bitmap = arr.buffers()[0]
    t = arr.type
    if bitmap is None or pa.types.is_dictionary(t) or pa.types.is_null(t):
        return arr.is_valid().to_numpy(zero_copy_only=False)
    n, offset = len(arr), arr.offset
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=offset + n, bitorder="little")
    return bits[offset:].view(bool)
_ZEROS: dict = {}


def _zero_of(t: pa.DataType) -> pa.Scalar:
    """0 (False) as a scalar of the number (bool) type ``t``, made without pyarrow's look for
    pandas (``numpy_to_arrow``): what a column's NULL rows hold once converted to numpy."""
    zero = _ZEROS.get(t)
    if zero is None:
        if t == _BOOL_ARROW:
            zero = numpy_to_arrow(np.zeros(1, dtype=bool), None, t)[0]
        else:
            zero = numpy_to_arrow(np.zeros(1, dtype=np.int64), None, pa.int64()).cast(t)[0]
        zero = _ZEROS[t] = zero
    return zero


def list_to_arrow(values: list, t: Optional[pa.DataType] = None) -> pa.Array:
    """``pa.array(values, t)`` for a list of Python ints, floats, bools or strings (one kind,
    with Nones), without pyarrow's look for pandas (``numpy_to_arrow``); anything else, and
    anything these would convert otherwise than pyarrow (an int beyond BIGINT, a string that
    is not UTF-8), goes to ``pa.array``."""
    kinds = set(map(type, values))
    nulls = type(None) in kinds
    kinds.discard(type(None))
    if len(kinds) == 1:
        kind = next(iter(kinds))
        want = _LIST_KINDS.get(kind)
        if want is not None and (t is None or t == want):
            try:
                return _list_of_kind(values, kind, want, nulls)
            except (OverflowError, UnicodeError, ValueError, TypeError):
                pass  # pyarrow's conversion: its own answer or error
    return pa.array(values, t)


_LIST_KINDS = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def _list_of_kind(values: list, kind: type, t: pa.DataType, nulls: bool) -> pa.Array:
    import operator
    n = len(values)
    valid = None
    if nulls:
        valid = np.fromiter(map(operator.is_not, values, [None] * n), dtype=bool, count=n)
    if kind is str:
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        if offsets[-1] > np.iinfo(np.int32).max:
            raise ValueError("over 2 GiB of text: pyarrow's conversion splits it")
        bits = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
        return pa.Array.from_buffers(
            t, n, [bits, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))],
            null_count=0 if valid is None else n - int(np.count_nonzero(valid)))
    dtype = _BUFFER_DTYPES[t]
    if valid is None:
        data = np.array(values, dtype=dtype)
    else:
        filled = np.array(values, dtype=object)
        filled[~valid] = kind()
        data = filled.astype(dtype)
    if kind is int and data.dtype.kind != "i":
        raise OverflowError("not an int64")
    return numpy_to_arrow(data, valid, t)


def _take_strings(arr, idx: np.ndarray) -> pa.Array:
    from ._core.strings import take_strings
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type):
        return take_strings(arr, np.ascontiguousarray(idx, dtype=np.int64))
    return arr.take(pa.array(idx))  # dictionary, large or view strings: Arrow's own take


def _decimal_to_scaled(arr: pa.Array, scale: int) -> np.ndarray:
    """decimal128 -> int64 scaled by 10**scale, by reading the low 64 bits of each value."""
    t = arr.type
    if t.scale != scale:
        arr = arr.cast(pa.decimal128(t.precision + max(0, scale - t.scale), scale))
    if not pa.types.is_decimal128(arr.type):
        arr = arr.cast(pa.decimal128(18, scale))
    buf = arr.buffers()[1]
    words = np.frombuffer(buf, dtype=np.int64, count=2 * (len(arr) + arr.offset))
    return words[2 * arr.offset::2].copy()


def _scaled_to_decimal(values: np.ndarray, mask, t: SqlType) -> pa.Array:
    precision = max(t.precision, t.scale, 1)
    # Build the 128-bit little-endian words directly: low word = value, high word = sign.
    words = np.empty(2 * len(values), dtype=np.int64)
    words[0::2] = values
    words[1::2] = values >> 63
    validity = None if mask is None else pa.array(~mask).buffers()[1]
    null_count = 0 if mask is None else int(mask.sum())
    return pa.Array.from_buffers(pa.decimal128(precision, t.scale), len(values),
                                 [validity, pa.py_buffer(words)], null_count=null_count)


# ------------------------------------------------------------------ text to event time

# Text to epoch milliseconds, shared by the sources (event-time fields, TIMESTAMP columns) and by
# CAST(text AS TIMESTAMP): ISO-8601 with or without a zone offset (none means UTC), or epoch-ms
# digits. A value that is neither is reported by its row, never a whole batch's error.
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_NO_ROWS = np.zeros(0, dtype=np.int64)
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


def _timestamp_to_ms(arr: pa.Array) -> np.ndarray:
    t = arr.type
    if pa.types.is_date(t):
        arr = arr.cast(pa.timestamp("ms"))
    elif t.unit != "ms":
        arr = pc.cast(arr, pa.timestamp("ms"), safe=False)
    if arr.null_count:
        arr = arr.fill_null(0)
    return arr.cast(pa.int64()).to_numpy(zero_copy_only=False)


# ------------------------------------------------------------------------------------ batches


class Batch:
    """Named columns of one length. Column lookup is case-insensitive (exact match wins)."""

    __slots__ = ("columns", "length", "_lower")

    def __init__(self, columns: dict[str, Column], length: int):
        self.columns = columns
        self.length = length
        self._lower = None

    def __len__(self) -> int:
        return self.length

    def resolve(self, name: str) -> Optional[str]:
        if name in self.columns:
            return name
        if self._lower is None:
            self._lower = {}
            for k in self.columns:
                self._lower.setdefault(k.lower(), k)
        return self._lower.get(name.lower())

    def __getitem__(self, name: str) -> Column:
        return self.columns[name]

    def take(self, idx: np.ndarray) -> "Batch":
        return Batch({k: c.take(idx) for k, c in self.columns.items()}, len(idx))

    def slice(self, lo: int, hi: int) -> "Batch":
        return Batch({k: c.slice(lo, hi) for k, c in self.columns.items()}, hi - lo)

    def filter(self, mask: np.ndarray) -> "Batch":
        n = int(np.count_nonzero(mask))
        if n == self.length:
            return self
        return Batch({k: c.filter(mask) for k, c in self.columns.items()}, n)

    @classmethod
    def from_arrow(cls, rb: pa.RecordBatch, strings: StringDict, dates: bool = False) -> "Batch":
        """``rb`` as engine columns; ``dates``: its date columns are DATEs (a derived relation's,
        ``type_of_arrow``), else TIMESTAMPs (a source's)."""
        schema = rb.schema
        key = (schema, True) if dates else schema  # the usual case: no tuple made per batch
        types = _SCHEMA_TYPES.get(key)
        if types is None:  # a stream repeats one schema: map it once
            types = _SCHEMA_TYPES[key] = [(n, type_of_arrow(t, dates))
                                          for n, t in zip(schema.names, schema.types)]
        cols = {name: Column(t, arrow=arr, strings=strings) for (name, t), arr in zip(types, rb.columns)}
        return cls(cols, rb.num_rows)

    def to_arrow(self, names: Optional[list[str]] = None) -> pa.RecordBatch:
        names = list(self.columns) if names is None else names
        arrays = [self.columns[n].to_arrow() for n in names]
        return pa.RecordBatch.from_arrays(arrays, names=names)


# ----------------------------------------------------------------------------------- ingestion


def to_record_batches(data: Any) -> Iterator[pa.RecordBatch]:
    """Every accepted input shape as Arrow record batches.

    Accepts a pyarrow Table or RecordBatch, a pandas DataFrame, any object with
    ``__arrow_c_stream__`` (a Polars DataFrame, a DuckDB relation, a pyarrow RecordBatchReader),
    a dict of sequences or arrays, a list of dicts (rows), or an iterable of any of those (a
    stream of micro-batches).

    >>> [rb.num_rows for rb in to_record_batches({"a": [1, 2, 3]})]
    [3]
    """
    if isinstance(data, pa.RecordBatch):
        yield data
    elif isinstance(data, pa.Table):
        batches = data.to_batches()
        if batches:
            yield from batches
        else:  # an empty table still says what its columns are
            yield pa.RecordBatch.from_pylist([], schema=data.schema)
    elif isinstance(data, dict):
        yield _dict_to_batch(data)
    elif _is_pandas(data):
        yield pa.RecordBatch.from_pandas(data, preserve_index=False)
    elif hasattr(type(data), "__arrow_c_stream__"):
        # the Arrow PyCapsule stream interface (a Polars DataFrame, a DuckDB relation, a
        # RecordBatchReader, a velostream Result): the producer's buffers, not copies
        reader = pa.RecordBatchReader.from_stream(data)
        empty = True
        for rb in reader:
            empty = False
            yield rb
        if empty:  # no rows still says what the columns are
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)
    elif isinstance(data, (list, tuple)) and (not data or isinstance(data[0], dict)):
        if data:
            yield pa.RecordBatch.from_pylist(list(data))
    elif hasattr(data, "__iter__"):
        for part in data:
            yield from to_record_batches(part)
    else:
        raise TypeError(f"cannot read a {type(data).__name__} as input: give a pyarrow Table or "
                        "RecordBatch, a pandas DataFrame, an object with __arrow_c_stream__ "
                        "(Polars, DuckDB), a dict of columns or a list of dicts")


def _dict_to_batch(data: dict) -> pa.RecordBatch:
    arrays = {}
    for k, v in data.items():
        if isinstance(v, (pa.Array, pa.ChunkedArray)):
            arrays[k] = v
        elif isinstance(v, np.ndarray) and v.dtype.kind in "iufb":
            arrays[k] = pa.array(v)
        elif isinstance(v, np.ndarray) and v.dtype.kind == "M":
            arrays[k] = pa.array(v.astype("datetime64[ms]"))
        else:
            arrays[k] = list_to_arrow(list(v) if not isinstance(v, list) else v)
    return pa.RecordBatch.from_pydict(arrays)


def _is_pandas(obj) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pandas") and type(obj).__name__ == "DataFrame"


def concat_batches(batches: list[Batch]) -> Batch:
    """One batch holding the rows of ``batches`` in order (same column names in each)."""
    batches = [b for b in batches if b.length]
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return Batch({}, 0)
    cols = {}
    for name in batches[0].columns:
        parts = [b.columns[name] for b in batches]
        t = parts[0].type
        if all(p._values is not None for p in parts):
            values = np.concatenate([p._values for p in parts])
            valid = None
            if any(p._valid is not None for p in parts):
                valid = np.concatenate([p.valid_mask() for p in parts])
            cols[name] = Column(t, values, valid, strings=parts[0].strings)
        else:
            arrays = [p.to_arrow() for p in parts]
            cols[name] = Column(t, arrow=pa.concat_arrays(arrays), strings=parts[0].strings)
    return Batch(cols, sum(b.length for b in batches))
