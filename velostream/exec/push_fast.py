"""Which plans ``Engine.push`` can run through the compiled ``GroupStep`` (``_core/group_step.pyx``).

Decided once, when the engine binds its plan. A plan qualifies when it is a plain streaming GROUP BY:

* shape ``aggregate`` without WINDOW, WHERE, HAVING, LIMIT or DISTINCT, emitting CHANGES;
* every GROUP BY key is an input column of type STRING, INT64 or FLOAT64 (named directly, not an
  expression); no keys at all (a global aggregate) also qualifies;
* every aggregate is COUNT(*), or COUNT/SUM/AVG/MIN/MAX of an input column named directly, of type
  INT64 or FLOAT64 (COUNT also of a STRING column);
* every output column is a GROUP BY key or an aggregate as it is (no expression over them).

(``Plan.why_not_compiled`` says which condition a plan misses.)

Each batch is then checked against the Arrow types the step reads (``string``, ``int64``,
``float64``); a batch of other types (``int32``, dictionary or large strings...), an empty one, or
one longer than ``GroupStep.max_rows``, goes through the general path, which shares every piece of
state with the step.

``VELOSTREAM_PUSH_FAST=0`` in the environment (or ``ENABLED = False`` here, before an engine binds
its plan) turns the fast path off: every batch then takes the general path (tests compare the two).
"""
from __future__ import annotations

import os
from typing import Optional

from ..planner import group_row_ref
from .operators.aggregate import GroupAggregate

ENABLED = os.environ.get("VELOSTREAM_PUSH_FAST", "1") != "0"


def why_not(plan, pipeline) -> Optional[str]:
    """None when the plan qualifies, else the first reason it does not."""
    reason = plan.why_not_compiled()
    if reason is not None:
        return reason
    if pipeline.role != "full" or not isinstance(pipeline.stateful, GroupAggregate):
        return "not a plain pipeline"
    return None


def group_step_for(engine):
    """A ``GroupStep`` for the engine's bound plan and pipeline, or None when it does not qualify."""
    return step_for(engine.plan, engine.pipeline, engine.strings, engine.stats, engine.internal_schema)


def step_for(plan, pipeline, strings, stats: dict, out_schema):
    """A ``GroupStep`` updating ``pipeline``'s state (a V2 partition's, or the engine's), or None
    when the plan does not qualify. ``stats`` gets the step's record counts."""
    if not ENABLED or why_not(plan, pipeline) is not None:
        return None
    agg = pipeline.stateful
    return step_over(plan, agg.table, agg.kernels, agg.codec, strings, stats, out_schema)


def step_over(plan, table, kernels: list, codec, strings, stats: dict, out_schema):
    """The ``GroupStep`` of a qualifying plan over this state: its group table, aggregate
    kernels (plan order) and key codec, interning into ``strings``."""
    from .._core.group_step import GroupStep
    from ..batch import type_of_arrow
    from ..result import Result

    return GroupStep(
        table, kernels, strings, stats,
        [(k.name, k.type.kind) for k in plan.keys], list(codec.layout), list(codec.wide),
        [None if a.arg is None else (a.arg.name, a.arg.type.kind) for a in plan.aggs],
        step_outputs(plan), out_schema, Result, type_of_arrow)


def step_outputs(plan) -> list:
    """Per output column of a qualifying plan, what ``GroupStep`` writes there: ``("k", i)``,
    the i-th GROUP BY key, or ``("a", j)``, the j-th aggregate."""
    outputs = []
    for _, b in plan.outputs:
        k = group_row_ref(b.name, "__k", len(plan.keys))
        outputs.append(("k", k) if k is not None else ("a", group_row_ref(b.name, "__a", len(plan.aggs))))
    return outputs
