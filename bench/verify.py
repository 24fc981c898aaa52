"""Output verification: a run's time counts only once its output matches the reference.

The check is order-independent, because systems emit rows in different orders (docs/SQL.md §5
promises no order across keys). It compares:

- the row count;
- per column, the null count;
- per string column, the number of distinct values and a sum of stable per-row hashes (crc32);
- per numeric column, the plain sum and a key-weighted sum, where each row's weight (in [1, 2))
  comes from the hashes of its string (key) columns: a value attributed to the wrong key changes
  it.

Floats compare with a relative tolerance (``REL_TOL`` of the sum of absolute values), so
systems that sum in another order or with another algorithm still agree.

>>> import pyarrow as pa
>>> ref = pa.table({"k": ["a", "b"], "v": [1.0, 2.0]})
>>> verify(pa.table({"k": ["b", "a"], "v": [2.0, 1.0]}), checksum(ref, ["k", "v"]))
>>> try:
...     verify(pa.table({"k": ["a", "b"], "v": [2.0, 1.0]}), checksum(ref, ["k", "v"]))
... except VerificationError as exc:
...     print(exc)
output does not match the reference: column 'v': key-weighted sum 4.367988889 != 4.589566704
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REL_TOL = 1e-7
_MASK = (1 << 64) - 1


class VerificationError(AssertionError):
    """A system's output differs from the reference: its time must not be reported."""


@dataclass
class ColumnSum:
    kind: str                     # "string" or "number"
    nulls: int
    distinct: int = 0             # strings
    hash_sum: int = 0             # strings: sum of crc32 of the row values, mod 2**64
    total: float = 0.0            # numbers
    weighted: float = 0.0         # numbers: sum of value * row weight
    magnitude: float = 0.0        # numbers: sum of |value| * row weight, scales the tolerance


@dataclass
class Checksum:
    rows: int
    columns: dict[str, ColumnSum] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.rows} rows, columns {', '.join(self.columns)}"


def _find(table: pa.Table, name: str) -> pa.ChunkedArray:
    for actual in table.column_names:
        if actual.lower() == name.lower():
            return table.column(actual)
    raise VerificationError(f"output has no column {name!r} (it has {table.column_names})")


def _is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_string(t) or pa.types.is_large_string(t)
            or getattr(pa.types, "is_string_view", lambda _t: False)(t))


def _string_hashes(col: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Per-row crc32 of the values (0 for nulls) and the number of distinct values."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    encoded = pc.dictionary_encode(col.combine_chunks())
    dictionary = encoded.dictionary.to_pylist()
    table = np.array([zlib.crc32(s.encode()) for s in dictionary] or [0], dtype=np.uint64)
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    hashes = table[codes]
    if encoded.indices.null_count:
        hashes[np.asarray(encoded.indices.is_null())] = 0
    return hashes, len(dictionary)


def _numbers(col: pa.ChunkedArray) -> np.ndarray:
    if not pa.types.is_floating(col.type):
        col = col.cast(pa.float64())
    return col.fill_null(0.0).to_numpy().astype(np.float64, copy=False)


def checksum(table: pa.Table, columns) -> Checksum:
    """The order-independent fingerprint of ``table`` restricted to ``columns``."""
    rows = table.num_rows
    cols = {name: _find(table, name) for name in columns}
    result = Checksum(rows)
    weight_hash = np.zeros(rows, dtype=np.uint64)
    hashed = {}
    for pos, (name, col) in enumerate(cols.items()):
        if _is_string(col.type):
            hashes, distinct = _string_hashes(col)
            hashed[name] = (hashes, distinct)
            weight_hash += hashes * np.uint64(2 * pos + 1)
    weights = 1.0 + (weight_hash % np.uint64(65521)).astype(np.float64) / 65521.0
    for name, col in cols.items():
        if name in hashed:
            hashes, distinct = hashed[name]
            result.columns[name] = ColumnSum("string", col.null_count, distinct=distinct,
                                             hash_sum=int(hashes.sum(dtype=np.uint64)) & _MASK)
        else:
            x = _numbers(col)
            # multiply and sum, not np.dot: a dot product of this size runs on OpenBLAS's
            # threads, which then spin on the other cores for a while and slowed the next timed
            # run of every engine that uses two cores (V2 at two partitions: S3a 85 -> 110 ms,
            # docs/PERFORMANCE.md "Session 12")
            result.columns[name] = ColumnSum(
                "number", col.null_count, total=float(np.sum(x)),
                weighted=float(np.sum(x * weights)), magnitude=float(np.sum(np.abs(x) * weights)))
    return result


def _close(a: float, b: float, magnitude: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=REL_TOL * max(magnitude, 1.0))


def compare(got: Checksum, want: Checksum) -> list[str]:
    """The differences between two checksums, as readable strings (empty when they agree)."""
    problems = []
    if got.rows != want.rows:
        problems.append(f"{got.rows} rows != {want.rows}")
    for name, w in want.columns.items():
        g = got.columns.get(name)
        if g is None:
            problems.append(f"column {name!r} missing")
            continue
        if g.kind != w.kind:
            problems.append(f"column {name!r} is {g.kind}, expected {w.kind}")
            continue
        if g.nulls != w.nulls:
            problems.append(f"column {name!r}: {g.nulls} nulls != {w.nulls}")
        if w.kind == "string":
            if g.distinct != w.distinct:
                problems.append(f"column {name!r}: {g.distinct} distinct values != {w.distinct}")
            elif g.hash_sum != w.hash_sum:
                problems.append(f"column {name!r}: value multiset differs (hash sum)")
        else:
            mag = max(w.magnitude, g.magnitude)
            if not _close(g.total, w.total, mag):
                problems.append(f"column {name!r}: sum {g.total:.10g} != {w.total:.10g}")
            if not _close(g.weighted, w.weighted, mag):
                problems.append(f"column {name!r}: key-weighted sum {g.weighted:.10g} != "
                                f"{w.weighted:.10g}")
    return problems


def verify(table: pa.Table, reference: Checksum, *, system: str = "", scenario: str = "") -> None:
    """Raise :class:`VerificationError` unless ``table`` matches the ``reference`` checksum."""
    try:
        got = checksum(table, list(reference.columns))
    except VerificationError as exc:
        problems = [str(exc)]
    else:
        problems = compare(got, reference)
    if problems:
        where = " ".join(x for x in (scenario, system) if x)
        prefix = f"{where}: " if where else ""
        more = f"; and {len(problems) - 4} more differences" if len(problems) > 4 else ""
        raise VerificationError(f"{prefix}output does not match the reference: "
                                + "; ".join(problems[:4]) + more)
