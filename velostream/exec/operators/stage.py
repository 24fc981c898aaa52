"""A SELECT over one input relation: filter, project, window, aggregate, ROWS analytics, DISTINCT
and LIMIT, run by one ``Engine`` (docs/ARCHITECTURE.md, "Operators").

A stage reading a source judges its records' time itself, as a one-statement query does. A stage
reading a derived stream takes its input's watermark instead (docs/SQL.md §8: "a derived
stream's watermark follows its input's"): its rows are never late against their own arrival
order, only against the upstream progress, so a window's changes arriving out of order are not
dropped. A row that passed through a filter, projection or EMIT CHANGES aggregate upstream
carries the watermark its source had just before it (``__wm``) and is judged by that, exactly
as the one-statement query judges it, whatever the batches; rows a window emits when it closes
are judged by the watermark before the step. A derived stream whose rows have no event time
(its source has no ``_TIMESTAMP``) has no watermark to follow: a window over it judges its own
time column, as over a source.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from ...engine import Engine
from ...sql import ast
from ..expressions import render
from ..partitioned import Parallel, PartitionedPipeline, splits
from .base import EVENT_TIME, INT64_MIN


class UpstreamWatermark:
    """The watermark of a stage that reads a derived stream: its input's, set by the graph."""

    lateness = 0

    def __init__(self) -> None:
        self.max_time = INT64_MIN
        self.partition_max: dict[int, int] = {}

    @property
    def current(self) -> int:
        return self.max_time

    def advance(self, watermark: int) -> None:
        if watermark > self.max_time:
            self.max_time = watermark

    def stamp(self, times: np.ndarray, partitions: Optional[np.ndarray] = None) -> np.ndarray:
        return np.full(len(times), self.max_time, dtype=np.int64)

    def stamp_arrival(self, arrival: np.ndarray) -> np.ndarray:
        """Rows that carry the watermark their input had just before them (``__wm``): that
        one, never below this stage's own (a window it closed stays closed)."""
        return np.maximum(arrival, self.max_time)

    def track(self, active, idle=()) -> None:
        pass


class StageEngine(Engine):
    """A stage's engine: one binding, one clock, one DISTINCT and LIMIT, and its pipeline split
    over the job's partitions when the plan keeps state per key (exec/partitioned.py)."""

    carries_arrival = True  # its rows carry their watermark to the stages reading them

    def __init__(self, statement: ast.Statement, schemas, strings, parallel: Parallel,
                 input_arrow: Optional[pa.Schema] = None):
        self.parallel = parallel  # before Engine.__init__: it may bind (make_pipeline) at once
        # the Arrow types of the derived relation read, so that a column passing through leaves
        # in the type it came in with, as in the one-statement query (docs/SQL.md, "Types at
        # the boundary"), not in the engine's own type its SQL type maps to
        self.input_arrow = input_arrow
        super().__init__(statement.sql, schemas, statement=statement, strings=strings)

    def _bind(self, schemas: dict) -> None:
        if self.input_arrow is not None and self.plan is None:
            self.binder.fixed = self.input_arrow
        super()._bind(schemas)

    def make_pipeline(self):
        if self.parallel.n > 1 and splits(self.plan):
            p = PartitionedPipeline(self.plan, self.strings, self.parallel)
            p.dead_letter_bad_rows = self.dead_letter_bad_rows
            return p
        return super().make_pipeline()

    def exchange(self) -> str:
        """How rows reach the stage's operators (explain)."""
        part = self.plan.partitioning
        if isinstance(self.pipeline, PartitionedPipeline):
            return (f"Exchange: hash({', '.join(render(k) for k in part.keys)}) over "
                    f"{self.parallel.n} partitions: {part.reason}")
        if splits(self.plan):
            return f"Exchange: hash({', '.join(render(k) for k in part.keys)}) at more " \
                   f"than one partition: {part.reason}"
        if self.plan.shape in ("aggregate", "rows"):
            return f"Exchange: gather: one partition ({part.reason})"
        return "Exchange: none: row by row, in the job's thread"


class SelectStage:
    """One SELECT of a pipeline (``statement`` reads ``input_name``)."""

    def __init__(self, statement: ast.Statement, input_name: str, derived_input: bool,
                 parallel: Optional[Parallel] = None):
        self.statement = statement
        self.input_name = input_name
        self.derived_input = derived_input
        self.parallel = parallel if parallel is not None else Parallel(1)
        self.engine = None
        self.watermark = INT64_MIN
        # every reader is another stage sharing the strings: emit engine batches, not Arrow
        self.rows_out = False
        # the stage judges its rows' time with its own clock: it reads a source, or a derived
        # stream without event time (known at binding)
        self.own_clock = not derived_input

    # -- binding ----------------------------------------------------------------------------
    def bind(self, input_schema, strings=None, input_arrow: Optional[pa.Schema] = None
             ) -> pa.Schema:
        """Plan against ``input_schema`` (a RelationSchema, or None to bind at the first batch;
        ``input_arrow``: a derived relation's Arrow schema); returns the output schema (None
        until bound)."""
        schemas = None if input_schema is None else {self.input_name: input_schema}
        if self.derived_input and input_schema is not None:
            self.own_clock = EVENT_TIME not in input_schema
        eng = StageEngine(self.statement, schemas, strings, self.parallel, input_arrow)
        self.engine = eng
        if eng.plan is not None:
            self._bound()
        return self.schema

    def _bound(self) -> None:
        if not self.own_clock:
            self.engine.watermark = UpstreamWatermark()

    @property
    def schema(self) -> Optional[pa.Schema]:
        eng = self.engine
        return eng.out_schema if eng is not None and eng.plan is not None else None

    @property
    def plan(self):
        return self.engine.plan if self.engine is not None else None

    # -- running ------------------------------------------------------------------------------
    def push(self, port: int, batch) -> list:
        """Rows in: an Arrow batch, or an engine ``Batch`` from a stage sharing the strings.
        Rows out: engine batches when ``rows_out``, else Arrow batches."""
        eng = self.engine
        unbound = eng.plan is None
        if unbound and self.derived_input:  # bound at its first batch: has it event time?
            names = batch.schema.names if isinstance(batch, pa.RecordBatch) else batch.columns
            self.own_clock = EVENT_TIME not in names
        if self.rows_out or not isinstance(batch, pa.RecordBatch):
            out = eng.push_rows(batch)
            if not self.rows_out:
                out = self._arrow(out)
        else:
            out = eng.push(self.input_name, batch).batches
        if unbound and eng.plan is not None:
            self._bound()
        if self.own_clock and eng.plan is not None and eng.plan.window is not None:
            self.watermark = max(self.watermark, eng.watermark.current)
        return out

    def _arrow(self, batches) -> list[pa.RecordBatch]:
        eng = self.engine
        return eng._in_out_schema([eng.output_arrow(b) for b in batches])

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        eng = self.engine
        if eng.plan is None:
            return []
        if self.own_clock:
            # a windowed stage over a source keeps its own clock (the window's time column)
            if eng.plan.window is None:
                self.watermark = max(self.watermark, watermark)
            return []
        self.watermark = max(self.watermark, watermark)
        eng.watermark.advance(watermark)
        if eng.plan.window is None:
            return []
        out = eng.finish_rows(eng.pipeline.advance(eng.watermark.current))
        eng._sync_counters()
        return out if self.rows_out else self._arrow(out)

    def close(self) -> list:
        eng = self.engine
        if eng.plan is None:
            return []
        out = eng.flush_rows()
        return out if self.rows_out else self._arrow(out)

    # -- state --------------------------------------------------------------------------------
    def snapshot(self):
        eng = self.engine
        return {"engine": eng.snapshot() if eng is not None else None,
                "watermark": self.watermark}

    def restore(self, state) -> None:
        if state["engine"] is not None:
            self.engine.restore(state["engine"])
            if not self.own_clock:  # the engine rebuilt its clock: the input's it is
                kept = self.engine.watermark.max_time
                self._bound()
                self.engine.watermark.advance(kept)
        self.watermark = state["watermark"]

    def describe(self) -> str:
        plan = self.plan
        if plan is None:
            return "Select (unbound)"
        return plan.explain()
