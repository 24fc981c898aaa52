"""Which partition each record goes to: the plan's strategy, computed by compiled kernels.

``hash``: one nogil pass over the key columns (``_core.route.KeyRouter``: key groups assigned to
the least-loaded partition on first sight) gives each row its partition. Every partition receives
the batch with its partition-per-row array (``Routed``) and picks out and gathers its own rows
itself, in parallel (its number columns by one compiled call, ``take_rows``).

When every key is a plain input column (``raw``, the usual case) the router hashes the columns'
own values, string bytes included, and the strings stay un-interned: each partition interns only
its own rows, into its own dictionary, so the job's most expensive per-row step runs in parallel
and no partition shares state with another. Keys computed by expressions are evaluated by the
coordinator, interned into the job's dictionary and routed on their codes (``KeyCodec`` words);
the partitions then share that dictionary.

``window`` (chosen at run time for a TUMBLING or CUMULATE GROUP BY): every window of a row lies in
one *period* of the window size from the epoch, and the window is part of each group's key, so
routing a row by its period keeps each group of each window in one partition, as routing by key
does. Time is cut into runs of whole periods of about a step's rows each (``run_rows``), dealt to
the partitions in turn (``_core.route.route_by_time``): each partition takes whole steps in turn,
its batches as they are (nothing copied, its text interned by its own pipeline as at one
partition), while the next partition works on the next step; a hot key no longer loads one
partition, and no key is hashed. The router routes by window when the job's first batch shows at
most half a step's rows per window (a replay, a backfill, a file; or a stream slow enough that
one partition at a time keeps up with it many times over). A faster stream, whose window holds
more rows than that, or a first batch inside one window, keeps ``hash`` routing, which spreads
one window's rows over the partitions. Each partition interns its own rows into its own
dictionary, as raw routing does.

``sticky`` keeps records in their source partition (``_PARTITION``); ``round_robin`` and
``two_phase`` cut the batch into contiguous slices (any row may go anywhere); ``single`` sends
everything to partition 0.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._core.gather import take_segments
from .._core.route import KeyRouter, route_by_time, select_rows, select_runs, take_rows
from .._core.strings import string_buffers
from ..batch import Batch, Column, StringDict, concat_batches
from .columns import TIME_COL
from .expressions import BCol, Evaluator
from .keys import KeyCodec
from ..planner import Plan

# A partition's rows of a routed batch are taken as runs of consecutive rows when they make at
# most one run per this many rows (routed by window: a few runs per batch): each column is then
# copied a slice at a time and its text interned a slice at a time, no row numbers made or read
RUN_ROWS = 256

class Router:
    def __init__(self, plan: Plan, n_partitions: int, evaluator: Evaluator,
                 first: Optional[Batch] = None, run_rows: int = 0):
        """``first``: the job's first stamped batch, which decides ``window`` routing, with runs
        of about ``run_rows`` rows (none: never by window)."""
        self.n = n_partitions
        self.strategy = plan.partitioning.strategy
        self.keys = list(plan.partitioning.keys)
        self.ev = evaluator
        self.codec = KeyCodec([k.type for k in self.keys]) if self.keys else None
        # route by time: the run length in ms (see the module docstring), or None
        self.run_ms = window_run_ms(plan, n_partitions, first, run_rows)
        if self.run_ms is not None:
            self.strategy = "window"
        self.key_router = KeyRouter(n_partitions) if self.strategy == "hash" and n_partitions > 1 else None
        # route on the key columns' own values (see the module docstring); routing by time
        # leaves the strings to the partitions likewise
        self.raw = self.run_ms is not None or (
            self.key_router is not None and all(isinstance(k, BCol) for k in self.keys))

    def split(self, batch: Batch) -> list:
        """Per partition: a Batch, the ``Routed`` batch every partition takes its rows from, or
        None (no rows for that partition)."""
        n = self.n
        if n == 1:
            return [batch]
        if self.strategy == "single":
            return [batch] + [None] * (n - 1)
        if self.strategy == "window":
            part = np.empty(batch.length, dtype=np.int8)
            route_by_time(batch.columns[TIME_COL].values, self.run_ms, n, part)
            return [Routed(batch, part)] * n
        if self.strategy == "hash":
            part = np.empty(batch.length, dtype=np.int8)
            if self.raw:
                self.key_router.route_raw([_raw_key(batch.columns[k.name]) for k in self.keys], part)
            else:
                cols = [self.ev.column(k, batch) for k in self.keys]
                self.key_router.route(self.codec.encode(cols, batch.length), part)
            return [Routed(batch, part)] * n
        if self.strategy == "sticky":
            name = batch.resolve("_PARTITION")
            if name is not None:
                part = (batch[name].values.astype(np.int64) % n).astype(np.int8)
                return [Routed(batch, part)] * n
        bounds = np.linspace(0, batch.length, n + 1).astype(np.int64)
        return [batch.slice(bounds[i], bounds[i + 1]) if bounds[i + 1] > bounds[i] else None
                for i in range(n)]


def window_run_ms(plan: Plan, n: int, first: Optional[Batch], run_rows: int) -> Optional[int]:
    """The run length (ms, whole periods of the window size, about ``run_rows`` rows at the
    first batch's rate) for ``window`` routing of ``plan`` at ``n`` partitions; None: route as
    the plan says (a window holds more than half a run, or the batch is inside one window)."""
    if (n < 2 or not plan.routes_by_window or first is None or first.length == 0
            or TIME_COL not in first.columns or run_rows < 2):
        return None
    w = plan.window
    t = first.columns[TIME_COL].values
    periods = int(t.max()) // w.size_ms - int(t.min()) // w.size_ms + 1
    per_period = first.length / periods
    if periods < 2 or 2 * per_period > run_rows:
        return None
    return min(w.size_ms * max(1, int(run_rows / per_period)), 1 << 62)


class Routed:
    """A batch every partition receives whole, with each row's partition (``part``); each
    partition gathers its own rows itself (``rows_for``), so the copying runs in parallel."""

    __slots__ = ("batch", "part")

    def __init__(self, batch: Batch, part: np.ndarray):
        self.batch = batch
        self.part = part

    @property
    def length(self) -> int:
        return self.batch.length

    def rows_for(self, p: int, strings: Optional[StringDict] = None) -> Batch:
        """Partition ``p``'s rows; with ``strings`` (the partition's own dictionary, raw routing),
        its rows of each string column are interned there, straight from the Arrow column."""
        rows = select_rows(self.part, p)
        cols = {}
        numbers = []  # (name, column) gathered by one compiled call, each array once (event
        for name, c in self.batch.columns.items():  # time is often an input column as well)
            if c.type.kind == "STRING" and strings is not None and c.strings is not strings:
                # interned straight out of the whole Arrow column: the strings are never copied
                codes, valid = strings.encode_arrow(c.to_arrow(), rows)
                cols[name] = Column(c.type, codes, valid, strings=strings)
            elif (c.type.kind == "STRING" and c._values is None) or c.values.ndim != 1 \
                    or c.values.dtype.hasobject:
                cols[name] = c.take(rows)  # Arrow strings move by the compiled string gather
            else:
                numbers.append((name, c))
        if numbers:
            arrays = {}
            for _, c in numbers:
                for a in (c.values, c.valid):
                    if a is not None:
                        arrays.setdefault(id(a), a)
            taken = dict(zip(arrays, take_rows(list(arrays.values()), rows)))
            for name, c in numbers:
                cols[name] = Column(c.type, taken[id(c.values)],
                                    None if c.valid is None else taken[id(c.valid)],
                                    strings=c.strings)
        return Batch(cols, len(rows))


def rows_of_pieces(pieces: list, p: int, strings: Optional[StringDict] = None) -> Batch:
    """Partition ``p``'s rows of several routed batches (a step's batches held together), as
    one batch: each value is written once, into its place (a gather per piece and then a
    concatenation would copy every value twice). ``strings`` as for ``Routed.rows_for``.
    Pieces whose columns differ (one carries ``__row``, the next not) are gathered one by one
    and concatenated."""
    names = list(pieces[0].batch.columns)
    if any(list(r.batch.columns) != names for r in pieces[1:]) or any(
            not _segmentable([r.batch.columns[n] for r in pieces], strings) for n in names):
        return concat_batches([r.rows_for(p, strings) for r in pieces])
    runs = [select_runs(r.part, p, max(1, r.length // RUN_ROWS)) for r in pieces]
    if all(x is not None for x in runs):
        # a few runs of consecutive rows per piece: copied, and their text interned, a slice at
        # a time, no row numbers made or read
        spans = [list(zip(starts.tolist(), stops.tolist())) for starts, stops in runs]
        total = sum(b - a for piece in spans for a, b in piece)
        return _rows_batch(
            pieces, names, total, strings,
            lambda arrays: np.concatenate([a[lo:hi] for a, piece in zip(arrays, spans)
                                           for lo, hi in piece]) if total else arrays[0][:0].copy(),
            lambda arr, i: [strings.encode_arrow(arr.slice(lo, hi - lo)) for lo, hi in spans[i]])
    rows = [select_rows(r.part, p) for r in pieces]
    return _rows_batch(pieces, names, sum(len(x) for x in rows), strings,
                       lambda arrays: take_segments(arrays, rows),
                       lambda arr, i: [strings.encode_arrow(arr, rows[i])])


def _rows_batch(pieces: list, names: list, total: int, strings: Optional[StringDict],
                take, encode) -> Batch:
    """The ``total`` rows ``rows_of_pieces`` takes of each piece, as one batch: ``take(arrays)``
    gives one array's rows of every piece (the same arrays are taken once: a column that shares
    its memory with another, event time and its input column, is not copied twice);
    ``encode(arrow, i)`` gives piece i's rows of a text column as (codes, validity) parts,
    interned into ``strings``, in order."""
    cols = {}
    taken: dict = {}  # arrays taken so far, by the memory they came from

    def once(arrays: list) -> np.ndarray:
        key = tuple((a.__array_interface__["data"][0], a.strides, a.shape, a.dtype.str)
                    for a in arrays)
        if key not in taken:
            taken[key] = take(arrays)
        return taken[key]
    for name in names:
        parts = [r.batch.columns[name] for r in pieces]
        c = parts[0]
        if c.type.kind == "STRING" and strings is not None:
            codes = np.empty(total, dtype=np.int32)
            valid = None
            at = 0
            for i, part in enumerate(parts):
                for piece_codes, piece_valid in encode(part.to_arrow(), i):
                    m = len(piece_codes)
                    codes[at:at + m] = piece_codes
                    if piece_valid is not None:
                        if valid is None:
                            valid = np.ones(total, dtype=bool)
                        valid[at:at + m] = piece_valid
                    at += m
            cols[name] = Column(c.type, codes, valid, strings=strings)
            continue
        values = once([x.values for x in parts])
        valid = None
        if any(x.valid is not None for x in parts):
            valid = once([x.valid_mask() for x in parts])
        cols[name] = Column(c.type, values, valid, strings=c.strings)
    return Batch(cols, total)


def _segmentable(parts: list, strings: Optional[StringDict]) -> bool:
    """Whether ``rows_of_pieces`` gathers this column of every piece by itself: text interned
    into the partition's dictionary, or 1-D arrays of one fixed-width dtype."""
    if parts[0].type.kind == "STRING" and strings is not None:
        return True
    if any(c._values is None and c.type.kind == "STRING" for c in parts):
        return False  # (un-interned text, no dictionary to intern it into: Column.take)
    dtypes = {c.values.dtype for c in parts}
    return len(dtypes) == 1 and all(c.values.ndim == 1 for c in parts) \
        and not parts[0].values.dtype.hasobject


def _raw_key(c: Column) -> tuple:
    """One key column as ``KeyRouter.route_raw`` reads it: strings as their Arrow buffers (not
    interned), numbers as the engine's values (so every input type of a key hashes alike)."""
    if c.type.kind == "STRING":
        arr = c.to_arrow()  # the original array while un-interned
        offsets, data = string_buffers(arr)
        valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else None
        return ("string", offsets, data, valid)
    values = c.values
    if c.type.kind == "FLOAT64":
        return ("float", values, c.valid)
    return ("int", values.astype(np.int64, copy=False), c.valid)


def own_dictionary(shared: StringDict) -> StringDict:
    """A partition's own string dictionary, starting as a copy of ``shared`` (the plan's literals
    keep their codes)."""
    own = StringDict()
    if len(shared):
        own.encode_arrow(shared.arrow_values())
    return own
