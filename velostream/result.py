"""Query results: a sequence of Arrow record batches with convenient views."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa


class Result:
    """Rows a query (or one ``Engine.push``) emitted, in emission order.

    >>> import velostream as vs
    >>> r = vs.query("SELECT a * 2 AS b FROM t WHERE a > 1", {"t": {"a": [1, 2, 3]}})
    >>> len(r), r.to_pylist()
    (2, [{'b': 4}, {'b': 6}])

    A result may hold some of its rows in a compiled form (what the fast path of ``Engine.push``
    computed, see ``velostream._core.group_step``) until Arrow is asked for: ``len()`` is cheap,
    and ``batches`` (and everything built on it) converts them, once.

    ``vs.query``'s result also says what the query set aside rather than return
    (docs/PYTHON_API.md, "vs.query"): ``dead_letters``, ``[(reason, pyarrow.RecordBatch)]``, and
    ``stats``, ``{records_in, records_out, late_records, failed_records}``. A result of
    ``Engine.push`` / ``flush`` has neither (``[]`` and None): the engine keeps them
    (``engine.dead_letters``, ``engine.stats``).
    """

    # _parts: record batches, or lazy parts (objects with ``num_rows`` and ``to_batch()``).
    # _dead, _stats: set by vs.query only. Left unset otherwise, so the Result of every
    # Engine.push (the hot path) costs nothing more to make; the properties give the defaults.
    __slots__ = ("schema", "_parts", "_dead", "_stats")

    def __init__(self, schema: pa.Schema, batches: list[pa.RecordBatch] | None = None):
        self.schema = schema
        self._parts = [b for b in (batches or []) if b.num_rows]

    @property
    def dead_letters(self) -> list[tuple[str, pa.RecordBatch]]:
        """The rows ``vs.query`` set aside, as ``(reason, rows)`` in the order they were found:
        ``'NULL event time'``, ``'late'``, a value out of range (the reasons of
        ``Engine.dead_letters``). Empty when nothing was set aside, and for a result of
        ``Engine.push`` (the engine keeps them)."""
        try:
            return self._dead
        except AttributeError:
            return []

    @dead_letters.setter
    def dead_letters(self, value: list[tuple[str, pa.RecordBatch]]) -> None:
        self._dead = list(value)

    @property
    def stats(self) -> dict | None:
        """``vs.query``'s counters: ``records_in`` (rows read from the sources), ``records_out``
        (rows in this result), ``late_records`` and ``failed_records`` (rows set aside, see
        ``dead_letters``). None for a result of ``Engine.push`` (see ``engine.stats``)."""
        try:
            return self._stats
        except AttributeError:
            return None

    @stats.setter
    def stats(self, value: dict | None) -> None:
        self._stats = value

    @property
    def batches(self) -> list[pa.RecordBatch]:
        """The rows as Arrow record batches (lazy parts are converted here, once)."""
        parts = self._parts
        for i, p in enumerate(parts):
            if not isinstance(p, pa.RecordBatch):
                parts[i] = p.to_batch()
        return parts

    @batches.setter
    def batches(self, value: list[pa.RecordBatch]) -> None:
        self._parts = list(value)

    def __reduce__(self):  # pickles as Arrow (compiled parts are converted first)
        extra = {k: getattr(self, k) for k in ("_dead", "_stats") if hasattr(self, k)}
        if extra:  # (None, slots): how pickle restores the slots of an object without __dict__
            return (Result, (self.schema, self.batches), (None, extra))
        return (Result, (self.schema, self.batches))

    def __len__(self) -> int:
        return sum(p.num_rows for p in self._parts)

    def __iter__(self) -> Iterator[dict]:
        for b in self.batches:
            yield from b.to_pylist()

    def __repr__(self) -> str:
        return f"<Result {len(self)} rows: {', '.join(self.schema.names)}>"

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def to_arrow(self) -> pa.Table:
        """All rows as one ``pyarrow.Table``."""
        return pa.Table.from_batches(self.batches, schema=self.schema)

    def __arrow_c_stream__(self, requested_schema=None):
        """The Arrow PyCapsule stream interface: ``pyarrow.table(r)``, ``polars.DataFrame(r)``,
        DuckDB's ``SELECT * FROM r`` and any other Arrow consumer read the batches themselves,
        not a copy."""
        return self.to_arrow().__arrow_c_stream__(requested_schema)

    def to_polars(self):
        """A ``polars.DataFrame`` (needs polars), built from the Arrow batches.

        >>> import velostream as vs
        >>> vs.query("SELECT a FROM t", {"t": {"a": [1, 2]}}).to_polars()["a"].to_list()
        [1, 2]
        """
        import polars as pl
        return pl.DataFrame(self)

    def to_pylist(self) -> list[dict]:
        """Rows as dicts; NULL is ``None``."""
        return self.to_arrow().to_pylist()

    def to_pandas(self):
        """A ``pandas.DataFrame`` (needs pandas)."""
        return self.to_arrow().to_pandas()

    def columns(self) -> dict[str, np.ndarray]:
        """Each column as a numpy array (NULLs become NaN for floats, None in object arrays)."""
        t = self.to_arrow()
        return {name: t.column(name).to_numpy() for name in t.column_names}

    def extend(self, other: "Result") -> None:
        """Append ``other``'s rows (lazy parts stay lazy)."""
        self._parts.extend(p for p in other._parts if p.num_rows)


class EngineStats(dict):
    """Counters of one engine (records_in, records_out, late_records, failed_records, batches),
    and of ``vs.query`` (``Result.stats``): keys, or attributes."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def query_stats(records_in: int, records_out: int, late: int, failed: int) -> dict:
    """``Result.stats`` of ``vs.query``: the same four counters whichever path runs the query
    (one engine, the job server, a pipeline's graph), read as keys or attributes as
    ``engine.stats`` is."""
    return EngineStats(records_in=int(records_in), records_out=int(records_out),
                       late_records=int(late), failed_records=int(failed))
