"""SESSION windows: per key, records closer than the gap form one session, and a late record
can merge two sessions (docs/SQL.md §4).

``_core/session.pyx``'s ``SessionWindows`` assigns each record a session id and reports merges;
the aggregate kernels hold each session's state by id. A key's slot in the group table only
names the key: its sessions index the kernels. Emits group rows as ``aggregate.py`` does.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ..._core.group_table import GroupTable
from ..._core.session import SessionWindows
from ...batch import Batch, Column, SqlType, StringDict
from ...planner import Plan
from ..aggregators import (emitted_column, evaluate_arguments, export_states, imported_state,
                           kernel_input, make_aggregator, restore_next_seq, result_column)
from ..columns import END_COL, TIME_COL, WM_COL
from ..keys import KeyCodec
from ..snapshots import column, key_from_arrow, key_to_arrow
from .base import EvaluatesFirst

_INT = SqlType("INT64")


class SessionAggregate(EvaluatesFirst):
    mode = "full"

    def __init__(self, plan: Plan, strings: StringDict, ev,
                 on_late: Optional[Callable[[Batch], None]] = None):
        self.plan = plan
        self.strings = strings
        self.ev = ev
        self.on_late = on_late or (lambda rows: None)
        self.kernels = [make_aggregator(a, strings) for a in plan.aggs]
        self.codec = KeyCodec([k.type for k in plan.keys])
        self.session = SessionWindows(int(plan.window.gap_ms))
        self.table = GroupTable(self.codec.n_words)  # key slots; sessions index the kernels
        self.flushed = False

    def _prepare(self, batch: Batch) -> tuple:
        """Every row-level expression, before any state changes (see aggregate.py)."""
        keycols = [self.ev.column(k, batch) for k in self.plan.keys]
        inputs = [kernel_input(spec, arg, None)
                  for spec, arg in zip(self.plan.aggs,
                                       evaluate_arguments(self.ev, self.plan.aggs, batch))]
        return keycols, inputs

    def _apply(self, batch: Batch, prepared: tuple) -> list[Batch]:
        plan = self.plan
        keycols, inputs = prepared
        n = batch.length
        key_slots = np.empty(n, dtype=np.int32)
        self.table.find_or_insert(self.codec.encode(keycols, n), key_slots)
        t = np.ascontiguousarray(batch[TIME_COL].values, dtype=np.int64)
        wm = np.ascontiguousarray(batch[WM_COL].values, dtype=np.int64)
        sid = np.empty(n, dtype=np.int32)
        starts = np.empty(n, dtype=np.int64)
        ends = np.empty(n, dtype=np.int64)
        changes = plan.emit == "CHANGES"
        outs = ([(np.empty(n, dtype=a.result_dtype), np.zeros(n, dtype=np.uint8))
                 for a in self.kernels] if changes else None)
        # STRING_AGG's change rows as Arrow text, one piece per segment (see result_column)
        texts = {j: [] for j, spec in enumerate(plan.aggs) if spec.func == "STRING_AGG"}

        def aggregate(lo: int, hi: int) -> None:
            if hi <= lo:
                return
            for a in self.kernels:
                a.ensure_capacity(self.session.sid_capacity)
            s = sid[lo:hi]
            for j, ((vals, valid), a) in enumerate(zip(inputs, self.kernels)):
                v = None if vals is None else vals[lo:hi]
                ok = None if valid is None else valid[lo:hi]
                if changes and j in texts:
                    texts[j].append(a.update_emit_text(s, v, ok))
                elif changes:
                    a.update_emit(s, v, ok, outs[j][0][lo:hi], outs[j][1][lo:hi])
                else:
                    a.update(s, v, ok)

        # A merge is applied where it happens: rows before it are aggregated into the sessions
        # as they were, then the merged-away session's state moves into the one that stays.
        start = seg = 0
        while start < n:
            end, merges = self.session.assign(key_slots, t, wm, sid, starts, ends, start)
            if len(merges):
                aggregate(seg, end - 1)
                for a in self.kernels:
                    a.ensure_capacity(self.session.sid_capacity)
                    dst = np.ascontiguousarray(merges[:, 0], dtype=np.int32)
                    src = np.ascontiguousarray(merges[:, 1], dtype=np.int32)
                    a.merge(dst, a, src)
                    a.reset(src)
                seg = end - 1  # the merging row itself is aggregated with the next segment
            else:
                aggregate(seg, end)
                seg = end
            start = end
        aggregate(seg, n)  # a merge on the batch's last row leaves that row pending
        late = sid < 0
        if late.any():
            self.on_late(batch.filter(late))
        if not changes:
            return []
        keep = ~late
        rows = None if keep.all() else np.flatnonzero(keep)
        cols: dict[str, Column] = {}
        for i, c in enumerate(keycols):
            cols[f"__k{i}"] = c if rows is None else c.take(rows)
        for j, (spec, (v, ok)) in enumerate(zip(plan.aggs, outs)):
            if j in texts:
                import pyarrow as pa
                text = pa.concat_arrays(texts[j]) if texts[j] else pa.nulls(n, pa.string())
                if rows is not None:
                    text = text.take(pa.array(rows))
                cols[spec.name] = Column(spec.result_type, arrow=text, strings=self.strings)
                continue
            if rows is not None:
                v, ok = v[rows], ok[rows]
            cols[spec.name] = emitted_column(spec, v, ok, self.strings)
        cols["_WINDOW_START"] = Column(_INT, starts if rows is None else starts[rows])
        cols["_WINDOW_END"] = Column(_INT, ends if rows is None else ends[rows])
        m = n if rows is None else len(rows)
        return [Batch(cols, m)] if m else []

    def on_watermark(self, watermark: int) -> list[Batch]:
        return self._emit(self.session.close(watermark))

    def close(self) -> list[Batch]:
        return self._emit(self.session.close_all())

    def _emit(self, closed) -> list[Batch]:
        sids, kslots, starts, ends = closed
        if len(sids) == 0:
            return []
        sids = np.ascontiguousarray(sids, dtype=np.int32)
        out = []
        if self.plan.emit == "FINAL":
            words = self.table.keys_of(np.ascontiguousarray(kslots, dtype=np.int32))
            cols: dict[str, Column] = {}
            for i, c in enumerate(self.codec.decode(words, self.strings)):
                cols[f"__k{i}"] = c
            for spec, agg in zip(self.plan.aggs, self.kernels):
                cols[spec.name] = result_column(spec, agg, sids, self.strings)
            cols["_WINDOW_START"] = Column(_INT, np.asarray(starts, dtype=np.int64))
            cols["_WINDOW_END"] = cols[END_COL] = Column(_INT, np.asarray(ends, dtype=np.int64))
            out = [Batch(cols, len(sids))]
        for a in self.kernels:
            a.reset(sids)
        self.session.release(sids)
        return out

    # -- state -----------------------------------------------------------------------------------
    def snapshot(self) -> tuple[list, list, dict]:
        """One row per session not yet emitted, in closing order: ``__k<i>``, ``__sid`` (the id
        its aggregate state is kept under, kept across the restore so that sessions and ids are
        handed out exactly as before), ``__first`` and ``__last`` (its earliest and latest record
        time: it spans ``[first, last + gap)``), ``__expired`` (a watermark passed its end: no
        longer joinable, awaiting close), then the ``__a<j>.*`` aggregate fields. The metadata
        adds ``sid_capacity`` and ``free_sids`` (released ids, next reused last)."""
        import pyarrow as pa

        st = self.session.export_state()
        sids = st["sid"]
        words = self.table.keys_of(np.ascontiguousarray(st["key_slot"], dtype=np.int32))
        names: list[str] = []
        arrays: list = []
        for i, col in enumerate(self.codec.decode(words, self.strings)):
            names.append(f"__k{i}")
            arrays.append(key_to_arrow(col))
        names += ["__sid", "__first", "__last", "__expired"]
        arrays += [pa.array(sids, type=pa.int32()), pa.array(st["first"], type=pa.int64()),
                   pa.array(st["last"], type=pa.int64()), pa.array(st["expired"].astype(bool))]
        next_seq = export_states(self.plan.aggs, self.kernels, sids, self.strings, names, arrays)
        return names, arrays, {"next_seq": next_seq, "flushed": bool(self.flushed),
                               "min_open_end": int(np.iinfo(np.int64).max),
                               "sid_capacity": int(st["sid_capacity"][0]),
                               "free_sids": st["free_sids"].tolist()}

    def restore(self, table, meta: dict) -> None:
        if len(self.table) or self.session.n_open or self.session.sid_capacity:
            raise ValueError("restore needs a fresh pipeline (this one already holds sessions)")
        n = table.num_rows
        cols = [key_from_arrow(column(table, f"__k{i}"), k.type, self.strings)
                for i, k in enumerate(self.plan.keys)]
        key_slots = np.empty(n, dtype=np.int32)
        if n:  # several sessions of a key share its slot
            words = [np.ascontiguousarray(w, dtype=np.int64) for w in self.codec.encode(cols, n)]
            self.table.find_or_insert(words, key_slots)

        def ints(name, dtype):
            return np.ascontiguousarray(column(table, name).to_numpy(zero_copy_only=False),
                                        dtype=dtype)

        sids = ints("__sid", np.int32)
        self.session.import_state({
            "sid": sids, "key_slot": key_slots, "first": ints("__first", np.int64),
            "last": ints("__last", np.int64),
            "expired": ints("__expired", bool).view(np.uint8),
            "free_sids": np.asarray(meta["free_sids"], dtype=np.int32),
            "sid_capacity": np.array([meta["sid_capacity"]], dtype=np.int64)})
        for j, (spec, agg) in enumerate(zip(self.plan.aggs, self.kernels)):
            agg.ensure_capacity(self.session.sid_capacity)
            if n:
                agg.import_state(sids, imported_state(table, j, spec, self.strings))
        restore_next_seq(self.kernels, meta["next_seq"])
        self.flushed = bool(meta["flushed"])
