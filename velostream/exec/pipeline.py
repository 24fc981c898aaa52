"""One partition's operators for one SELECT (docs/ARCHITECTURE.md, "Operators").

A plan becomes a chain, decided once here: ``Filter`` (WHERE) -> the stateful operator the query
needs, if any -> ``Project`` (HAVING and the select list). The stateful operator is one of
``GroupAggregate`` (GROUP BY, global, TUMBLING / SLIDING / CUMULATE windows, in ``full``,
``partial`` or ``final`` mode for two-phase jobs), ``SessionAggregate`` or ``OverAnalytics``
(ROWS / OVER); each is its own module under ``operators/``, and each gives its state as
(column names, arrays, metadata) for the pipeline's snapshot table. A job runs one pipeline in
its own thread, or one per partition thread behind the hash router (jobs/partition_threads.py);
pipelines share nothing but the (append-only) string dictionary.

Time is decided outside (see ``columns.py``): ``process`` takes stamped rows, ``advance`` the
watermark after a batch, ``flush`` the end of input.
"""
from __future__ import annotations

import numpy as np

from ..batch import Batch, StringDict
from ..errors import RowError
from ..planner import Plan
from . import snapshots
from .expressions import Evaluator, render
from .operators.aggregate import GroupAggregate, Partial
from .operators.filter_project import Filter, Project
from .operators.over import OverAnalytics
from .operators.session_window import SessionAggregate

__all__ = ["Pipeline", "Partial"]


def _stateful_operator(plan: Plan, strings: StringDict, ev: Evaluator, mode: str, on_late):
    if plan.shape == "aggregate":
        if plan.window is not None and plan.window.kind == "SESSION":
            return SessionAggregate(plan, strings, ev, on_late)
        return GroupAggregate(plan, strings, ev, mode, on_late)
    if plan.shape == "rows":
        return OverAnalytics(plan, strings, ev)
    return None


def set_aside(owner, err: RowError, batch: Batch) -> Batch:
    """``batch`` without the rows ``err`` names, which ``owner`` (a pipeline, or a partitioned
    one routing its keys) counts as bad records and sends to its dead letters; ``err`` is raised
    again when the owner is not to go on past bad rows or the error names no row."""
    rows = err.rows
    if not owner.dead_letter_bad_rows or rows is None or len(rows) != batch.length:
        raise err
    owner.failed_records += int(rows.sum())
    owner.dead_letters.append((str(err), batch.filter(rows)))
    return batch.filter(~rows)


class Pipeline:
    """``role`` is ``"full"`` (emit results), ``"partial"`` (two-phase: ``advance``/``flush``
    hand back ``Partial`` state instead of rows) or ``"final"`` (the coordinator's side:
    ``absorb`` partials, then ``advance``/``flush`` emit as usual)."""

    # A job told to go on past bad records (LogAndContinue, SendToDLQ) sets this: a row whose
    # evaluation fails (an OutOfRangeError naming its rows, docs/SQL.md §2 and §7) is counted in
    # failed_records and sent to dead_letters, and the batch's other rows go on. Every operator
    # evaluates its row-level expressions before any state changes, so a failing row leaves no
    # trace. Otherwise (vs.query, Engine.push, FailBatch) the error is raised.
    dead_letter_bad_rows = False

    def __init__(self, plan: Plan, strings: StringDict, role: str = "full"):
        self.plan = plan
        self.role = role
        self.strings = strings
        self.ev = Evaluator(strings)
        self.late_records = 0
        self.failed_records = 0  # rows set aside as bad records (dead_letter_bad_rows)
        self.dead_letters: list[tuple[str, Batch]] = []  # (reason, rows)
        self.filter = Filter(plan, self.ev)
        self.stateful = _stateful_operator(plan, strings, self.ev, role, self._late)
        self.project = Project(plan, self.ev)

    def _late(self, rows: Batch) -> None:
        self.late_records += rows.length
        self.dead_letters.append(("late", rows))

    # -- input ---------------------------------------------------------------------------------
    def process(self, batch: Batch) -> list[Batch]:
        """Rows the batch emits (projected to the output columns)."""
        while True:
            try:
                return self._process(batch)
            except RowError as err:
                batch = set_aside(self, err, batch)

    def _process(self, batch: Batch) -> list[Batch]:
        """A ``RowError`` out of here names rows of ``batch`` only when no state changed."""
        kept, keep = self.filter.push(batch)
        if kept.length == 0:
            return []
        try:
            if self.stateful is None:
                return [self.project.rows(kept)]
            out = self.stateful.push(kept)
        except RowError as err:
            if err.rows is not None and keep is not None:  # rows of the kept ones: of the batch
                rows = np.zeros(batch.length, dtype=bool)
                rows[keep] = err.rows
                err.rows = rows
            raise
        return self._emitted(out)

    def absorb(self, partial: Partial) -> None:
        """Merge a partition's partial state into this (``final``) pipeline."""
        self.stateful.absorb(partial)

    # -- output --------------------------------------------------------------------------------
    def advance(self, watermark: int) -> list:
        """Close the windows the watermark has passed; EMIT FINAL rows come out here."""
        if self.stateful is None:
            return []
        return self._emitted(self.stateful.on_watermark(watermark))

    def flush(self) -> list:
        """End of input: every open window closes; non-windowed EMIT FINAL emits every group."""
        if self.stateful is None:
            return []
        return self._emitted(self.stateful.close())

    def _emitted(self, out: list) -> list:
        """An aggregate's group rows through HAVING and the select list (OVER projects its own
        rows; a partial hands over state). State has changed: an error names no input row."""
        if not out or self.plan.shape != "aggregate" or self.role == "partial":
            return out
        try:
            return self.project.groups(out)
        except RowError as err:
            err.rows = None
            raise

    # -- durable state snapshots -----------------------------------------------------------------
    def _signature(self) -> dict:
        """What a snapshot must agree on with the pipeline restoring it."""
        plan = self.plan
        w = plan.window
        sig = {"keys": [str(k.type) for k in plan.keys],
               "aggs": [[a.func, a.kernel_dtype, str(a.arg.type) if a.arg is not None else None]
                        + ([str(a.arg2.type)] if a.arg2 is not None else [])
                        + ([a.fraction] if a.fraction is not None else [])
                        + ([a.separator] if a.separator is not None else [])
                        + ([render(a.filter)] if a.filter is not None else []) for a in plan.aggs],
               "window": None if w is None else [w.kind, w.size_ms, w.advance_ms]}
        if w is not None and w.kind == "SESSION":
            sig["window"].append(w.gap_ms)
        if plan.shape == "rows":
            sig["overs"] = self.stateful.signature()
        return sig

    def snapshot(self):
        """This partition's state as an Arrow table (``None`` for a stateless projection), to be
        given to ``restore`` in another process (another string dictionary and slot numbering).
        The columns are the stateful operator's (see its ``snapshot``); the schema metadata
        ``velostream.pipeline`` (JSON) holds its scalars, ``late_records`` and the plan
        signature ``restore`` checks."""
        if self.stateful is None:
            return None
        names, arrays, meta = self.stateful.snapshot()
        return snapshots.table_of(names, arrays, {**self._signature(), **meta,
                                                  "late_records": int(self.late_records)})

    def restore(self, table) -> None:
        """Load a ``snapshot`` table into this (fresh) pipeline: keys are re-encoded with this
        pipeline's string dictionary and key codec, and each operator's state imported into new
        slots; processing then continues exactly as the snapshotted pipeline would have."""
        if self.stateful is None:
            if table is not None and table.num_rows:
                raise ValueError("a stateless pipeline takes no snapshot rows")
            return
        if table is None:
            raise ValueError("a stateful pipeline needs a snapshot table to restore")
        tables, _ = snapshots.partition_tables(table)
        if len(tables) > 1:  # taken split over partitions (exec/partitioned.py): all here now
            table = snapshots.regroup(tables, [np.zeros(t.num_rows, np.int8) for t in tables],
                                      1)[0]
        meta = snapshots.meta_of(table, self._signature())
        self.stateful.restore(table, meta)
        self.late_records = int(meta["late_records"])
