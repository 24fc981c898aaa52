"""WHERE, HAVING and the select list (docs/SQL.md §1): the stateless operators at either end of
a stage. ``Filter`` runs first, on the input rows; ``Project`` last, on the input rows of a
per-row query or on the group rows an aggregate emits (after HAVING)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...batch import Batch, Column
from ...planner import Plan
from ..columns import END_COL, ROW_COL, WM_COL


class Filter:
    def __init__(self, plan: Plan, ev):
        self.where = plan.where
        self.ev = ev

    def push(self, batch: Batch) -> tuple[Batch, Optional[np.ndarray]]:
        """(the rows that pass, their mask over the batch, or None when there is no WHERE)."""
        if self.where is None:
            return batch, None
        keep = self.ev.mask(self.where, batch)
        return batch.filter(keep), keep


class Project:
    def __init__(self, plan: Plan, ev):
        self.outputs = plan.outputs
        self.having = plan.having
        self.ev = ev

    def rows(self, batch: Batch) -> Batch:
        """The select list over ``batch``'s rows. A row keeps the watermark it arrived with
        (``__wm``, unselected): a pipeline's window downstream judges it by that (docs/SQL.md
        §8)."""
        out = Batch(self.ev.columns(self.outputs, batch), batch.length)
        wm: Optional[Column] = batch.columns.get(WM_COL)
        if wm is not None:
            out.columns[WM_COL] = wm
        return out

    def groups(self, batches: list) -> list[Batch]:
        """HAVING and the select list over an aggregate's group rows. An EMIT FINAL row keeps
        its window end (``__end``, unselected) for ordering rows across partitions, and an EMIT
        CHANGES row the input position the aggregate kept for it (``__row``), likewise."""
        out = []
        for gb in batches:
            if self.having is not None:
                gb = gb.filter(self.ev.mask(self.having, gb))
                if gb.length == 0:
                    continue
            rows = self.rows(gb)  # an EMIT CHANGES row keeps its input row's watermark too
            for name in (END_COL, ROW_COL):
                kept: Optional[Column] = gb.columns.get(name)
                if kept is not None:
                    rows.columns[name] = kept
            out.append(rows)
        return out
