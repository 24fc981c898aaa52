"""GROUP BY aggregation, global or in TUMBLING / SLIDING / CUMULATE windows (docs/SQL.md §4, §5).

One ``GroupTable`` holds every group (and, windowed, every open window of every group: the
window word ends the key), and one kernel per aggregate (``_core/aggregate.pyx``) holds their
state by slot. Three modes, as DataFusion's aggregate has:

* ``full``: emit result rows (EMIT CHANGES: one per input row; EMIT FINAL: when a window closes,
  or at the end of input);
* ``partial``: a partition of a two-phase job, which hands its groups' state over as ``Partial``
  instead of rows when they would have been emitted;
* ``final``: the coordinator's side of a two-phase job, which ``absorb``s partials and emits.

What it emits are *group rows*: ``__k<i>`` key columns, ``__a<j>`` aggregate columns and, windowed,
``_WINDOW_START`` / ``_WINDOW_END`` (plus ``__end`` for ordering EMIT FINAL rows across
partitions); ``project.py`` applies HAVING and the select list to them.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ..._core.group_table import GroupTable
from ..._core.window import order_by_end
from ...batch import Batch, Column, SqlType, StringDict
from ...planner import Plan
from ..aggregators import (emitted_column, evaluate_arguments, export_states, imported_state,
                           kernel_input, make_aggregator, restore_next_seq, result_column)
from ..columns import END_COL, ROW_COL, SEQ_COL, TIME_COL, WM_COL
from ..keys import KeyCodec
from ..snapshots import column, key_from_arrow, key_to_arrow
from ..udaf import update_all  # the kernels' update_all, taking Python aggregates too
from .base import EvaluatesFirst
from .window_assign import assigner_for

_INT = SqlType("INT64")
_NO_END = np.iinfo(np.int64).max


class Partial:
    """Aggregate state of some groups, handed from a partition to the coordinator (two-phase
    aggregation): the groups' key words and one aggregator per aggregate holding their state in
    slots 0..n-1."""

    __slots__ = ("words", "aggs")

    def __init__(self, words: np.ndarray, aggs: list):
        self.words, self.aggs = words, aggs


class GroupAggregate(EvaluatesFirst):
    def __init__(self, plan: Plan, strings: StringDict, ev, mode: str = "full",
                 on_late: Optional[Callable[[Batch], None]] = None):
        self.plan = plan
        self.strings = strings
        self.ev = ev
        self.mode = mode
        self.on_late = on_late or (lambda rows: None)
        self.windows = assigner_for(plan.window)
        self.kernels = [make_aggregator(a, strings) for a in plan.aggs]
        self.codec = KeyCodec([k.type for k in plan.keys])
        self.min_open_end = _NO_END  # no window can close before the watermark reaches this
        self.flushed = False
        # an EMIT CHANGES row keeps its input row's position (ROW_COL): a V2 job routing by
        # window merges its partitions' changes back into input order by it (exec/router.py)
        self.keep_positions = False
        self.table = GroupTable(self.codec.n_words + (1 if self.windows is not None else 0))

    # -- input -------------------------------------------------------------------------------
    def _prepare(self, batch: Batch) -> tuple:
        """Every row-level expression of the batch (keys, arguments, FILTERs), before any state
        changes: a row failing here is the batch's bad record and leaves no trace."""
        return ([self.ev.column(k, batch) for k in self.plan.keys],
                evaluate_arguments(self.ev, self.plan.aggs, batch))

    def _apply(self, batch: Batch, prepared: tuple) -> list[Batch]:
        plan = self.plan
        keycols, argcols = prepared
        n = batch.length
        words = self.codec.encode(keycols, n)
        rows = None
        if self.windows is not None:
            rows, ww = self.windows.assign(batch[TIME_COL].values, batch[WM_COL].values)
            if rows is not None:
                self._late(batch, rows)
                if len(rows) == 0:
                    return []
                words = [w[rows] for w in words]
            words.append(ww)
        m = len(words[0])
        slots = np.empty(m, dtype=np.int32)
        self.table.find_or_insert(words, slots)
        cap = self.table.slot_capacity
        for a in self.kernels:
            a.ensure_capacity(cap)
        if self.windows is not None:
            self.min_open_end = min(self.min_open_end, self.windows.first_end(ww))
        seq = None
        if SEQ_COL in batch.columns:
            seq = batch[SEQ_COL].values if rows is None else batch[SEQ_COL].values[rows]
        if plan.emit != "CHANGES":
            # one call for every aggregate: the slots are range-checked once, not per aggregate
            inputs = [kernel_input(spec, arg, rows) for spec, arg in zip(plan.aggs, argcols)]
            update_all(self.kernels, slots, [v for v, _ in inputs], [ok for _, ok in inputs], seq)
            return []
        cols: dict[str, Column] = {}
        for spec, agg, arg in zip(plan.aggs, self.kernels, argcols):
            vals, valid = kernel_input(spec, arg, rows)
            if spec.func == "STRING_AGG":  # new text: emitted as Arrow, not added to the dictionary
                cols[spec.name] = Column(spec.result_type, strings=self.strings,
                                         arrow=agg.update_emit_text(slots, vals, valid, seq))
                continue
            out = np.empty(m, dtype=agg.result_dtype)
            out_ok = np.empty(m, dtype=np.uint8)
            agg.update_emit(slots, vals, valid, out, out_ok, seq)
            cols[spec.name] = emitted_column(spec, out, out_ok, self.strings)
        for i, c in enumerate(keycols):
            cols[f"__k{i}"] = c if rows is None else c.take(rows)
        arrival = batch.columns.get(WM_COL)  # a change keeps its input row's watermark: a
        if arrival is not None:              # pipeline's window downstream judges it by that
            cols[WM_COL] = arrival if rows is None else arrival.take(rows)
        position = batch.columns.get(ROW_COL) if self.keep_positions else None
        if position is not None:
            cols[ROW_COL] = position if rows is None else position.take(rows)
        if self.windows is not None:
            cols["_WINDOW_START"] = Column(_INT, self.windows.start_of(ww))
            cols["_WINDOW_END"] = Column(_INT, self.windows.end_of(ww))
        return [Batch(cols, m)]

    def _late(self, batch: Batch, rows: np.ndarray) -> None:
        """Rows of the batch in no open window (none of ``rows``) are late records."""
        present = np.zeros(batch.length, dtype=bool)
        present[rows] = True
        if not present.all():
            self.on_late(batch.filter(~present))

    def absorb(self, partial: Partial) -> None:
        """Merge a partition's partial state (``final`` mode)."""
        n = len(partial.words)
        if n == 0:
            return
        words = [np.ascontiguousarray(partial.words[:, w]) for w in range(partial.words.shape[1])]
        slots = np.empty(n, dtype=np.int32)
        self.table.find_or_insert(words, slots)
        src = np.arange(n, dtype=np.int32)
        for agg, snap in zip(self.kernels, partial.aggs):
            agg.ensure_capacity(self.table.slot_capacity)
            agg.merge(slots, snap, src)
        if self.windows is not None:
            self.min_open_end = min(self.min_open_end,
                                    self.windows.first_end(partial.words[:, -1]))

    # -- output --------------------------------------------------------------------------------
    def on_watermark(self, watermark: int) -> list:
        """Close the windows the watermark has passed; EMIT FINAL rows come out here."""
        if self.windows is None or watermark < self.min_open_end:
            return []
        return self._close_windows(watermark)

    def close(self) -> list:
        """End of input: every open window closes; without a window, EMIT FINAL emits every
        group (a global aggregate answers even for empty input)."""
        if self.windows is not None:
            return self._close_windows(None)
        if self.plan.emit != "FINAL":
            return []
        slots = self.table.live_slots()
        if self.mode == "partial":
            out = self._partial(slots)
            self._retire(slots)
            return out
        if len(slots) == 0 and not self.plan.keys and not self.flushed:
            slots = self._global_slot()
        self.flushed = True
        out = self._emit(slots)
        self._retire(slots)  # emitted once: a second close has nothing left to say
        return out

    def _close_windows(self, watermark: Optional[int]) -> list:
        live = self.table.live_slots()
        if len(live) == 0:
            self.min_open_end = _NO_END
            return []
        words = self.table.keys_of(live)  # read once: window words now, keys for the output
        ends = self.windows.end_of(words[:, -1])
        closing = np.ones(len(live), dtype=bool) if watermark is None else ends <= watermark
        rest = ends[~closing]
        self.min_open_end = int(rest.min()) if len(rest) else _NO_END
        picked = np.flatnonzero(closing)
        if len(picked) == 0:
            return []
        picked = picked.take(_order_by_end(ends.take(picked), self.windows.step))
        closed = live.take(picked)
        # take, not words[picked]: numpy's 2-D fancy indexing is several times slower per row
        if self.mode == "partial":
            out = self._partial(closed, words.take(picked, axis=0))
        else:
            out = (self._emit(closed, words.take(picked, axis=0))
                   if self.plan.emit == "FINAL" else [])
        self._retire(closed)
        return out

    def _emit(self, slots: np.ndarray, words: Optional[np.ndarray] = None) -> list[Batch]:
        slots = np.ascontiguousarray(slots, dtype=np.int32)
        n = len(slots)
        if n == 0:
            return []
        if words is None:
            words = self.table.keys_of(slots)
        cols: dict[str, Column] = {}
        for i, c in enumerate(self.codec.decode(words, self.strings)):
            cols[f"__k{i}"] = c
        for spec, agg in zip(self.plan.aggs, self.kernels):
            cols[spec.name] = result_column(spec, agg, slots, self.strings)
        if self.windows is not None:
            ww = np.ascontiguousarray(words[:, -1])
            cols["_WINDOW_START"] = Column(_INT, self.windows.start_of(ww))
            cols["_WINDOW_END"] = cols[END_COL] = Column(_INT, self.windows.end_of(ww))
        return [Batch(cols, n)]

    def _partial(self, slots: np.ndarray, words: Optional[np.ndarray] = None) -> list:
        """A ``Partial`` copy of these groups' state (the partition then frees them)."""
        idx = np.arange(len(slots), dtype=np.int32)
        snaps = []
        for spec, agg in zip(self.plan.aggs, self.kernels):
            snap = make_aggregator(spec, self.strings)
            snap.ensure_capacity(len(slots))
            snap.merge(idx, agg, slots)
            snaps.append(snap)
        return [Partial(self.table.keys_of(slots) if words is None else words, snaps)]

    def _retire(self, slots: np.ndarray) -> None:
        slots = np.ascontiguousarray(slots, dtype=np.int32)
        for a in self.kernels:
            a.reset(slots)
        self.table.remove(slots)

    def _global_slot(self) -> np.ndarray:
        slots = np.empty(1, dtype=np.int32)
        self.table.find_or_insert(self.codec.encode([], 1), slots)
        for a in self.kernels:
            a.ensure_capacity(self.table.slot_capacity)
        return slots

    # -- state -----------------------------------------------------------------------------------
    def snapshot(self) -> tuple[list, list, dict]:
        """(column names, arrays, metadata) of the state: one row per live group, the key
        columns ``__k<i>`` decoded to values (strings as strings, NULL keys as nulls, DECIMAL as
        decimal128), the window word (``__window_start``, or ``__window_end`` for CUMULATE),
        then each aggregate's ``export_state`` fields as ``__a<j>.<field>``."""
        import pyarrow as pa

        live = self.table.live_slots()
        words = self.table.keys_of(live)
        names: list[str] = []
        arrays: list = []
        for i, col in enumerate(self.codec.decode(words, self.strings)):
            names.append(f"__k{i}")
            arrays.append(key_to_arrow(col))
        if self.windows is not None:
            names.append(self.windows.word_name)
            arrays.append(pa.array(np.ascontiguousarray(words[:, -1]), type=pa.int64()))
        next_seq = export_states(self.plan.aggs, self.kernels, live, self.strings, names, arrays)
        return names, arrays, {"next_seq": next_seq, "min_open_end": int(self.min_open_end),
                               "flushed": bool(self.flushed)}

    def restore(self, table, meta: dict) -> None:
        if len(self.table):
            raise ValueError("restore needs a fresh pipeline (this one already holds groups)")
        n = table.num_rows
        if n:
            cols = [key_from_arrow(column(table, f"__k{i}"), k.type, self.strings)
                    for i, k in enumerate(self.plan.keys)]
            words = self.codec.encode(cols, n)
            if self.windows is not None:
                ww = column(table, self.windows.word_name).to_numpy(zero_copy_only=False)
                words.append(ww)
            words = [np.ascontiguousarray(w, dtype=np.int64) for w in words]
            slots = np.empty(n, dtype=np.int32)
            created = self.table.find_or_insert(words, slots)
            if created != n:
                raise ValueError(f"snapshot holds {n - created} duplicate group(s)")
            for j, (spec, agg) in enumerate(zip(self.plan.aggs, self.kernels)):
                agg.ensure_capacity(self.table.slot_capacity)
                agg.import_state(slots, imported_state(table, j, spec, self.strings))
        restore_next_seq(self.kernels, meta["next_seq"])
        self.min_open_end = int(meta["min_open_end"])
        self.flushed = bool(meta["flushed"])


def _order_by_end(ends: np.ndarray, step: int) -> np.ndarray:
    """A stable order of closed windows by end. Ends are multiples of the window step, so they
    usually compress into small ranks, which a counting sort orders in linear time."""
    order = order_by_end(np.ascontiguousarray(ends, dtype=np.int64), step)
    return np.argsort(ends, kind="stable") if order is None else order
