"""Which plans ``Engine.push`` can run through the compiled ``GroupStep`` (``_core/group_step.pyx``).

Decided once, when the engine binds its plan. A plan qualifies when it is a plain streaming GROUP BY:

* shape ``aggregate`` without WINDOW, WHERE, HAVING, LIMIT or DISTINCT, emitting CHANGES;
* every GROUP BY key is an input column of type STRING, INT64 or FLOAT64 (named directly, not an
  expression); no keys at all (a global aggregate) also qualifies;
* every aggregate is COUNT(*), or COUNT/SUM/AVG/MIN/MAX of an input column named directly, of type
  INT64 or FLOAT64 (COUNT also of a STRING column);
* every output column is a GROUP BY key or an aggregate as it is (no expression over them).

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

from .expressions import BCol
from .operators.aggregate import GroupAggregate

ENABLED = os.environ.get("VELOSTREAM_PUSH_FAST", "1") != "0"

_AGGS = {"COUNT_STAR", "COUNT", "SUM", "AVG", "MIN", "MAX"}
_KEY_KINDS = {"STRING", "INT64", "FLOAT64"}
_ARG_KINDS = {"INT64", "FLOAT64"}


def why_not(plan, pipeline) -> Optional[str]:
    """None when the plan qualifies, else the first reason it does not."""
    if plan.shape != "aggregate":
        return f"a {plan.shape} plan"
    for what, value in (("WINDOW", plan.window), ("WHERE", plan.where), ("HAVING", plan.having),
                        ("LIMIT", plan.limit), ("OFFSET", plan.offset or None)):
        if value is not None:
            return f"{what} is not compiled"
    if plan.distinct:
        return "DISTINCT is not compiled"
    if plan.emit != "CHANGES":
        return f"EMIT {plan.emit}"
    if pipeline.role != "full" or not isinstance(pipeline.stateful, GroupAggregate):
        return "not a plain pipeline"
    for k in plan.keys:
        if not isinstance(k, BCol) or k.name.startswith("__"):
            return "a GROUP BY key is an expression"
        if k.type.kind not in _KEY_KINDS:
            return f"a {k.type} GROUP BY key"
    for a in plan.aggs:
        if a.func not in _AGGS:
            return f"{a.func} is not compiled"
        if a.filter is not None:
            return "FILTER (WHERE ...) is not compiled"
        if a.arg is None:
            continue
        if not isinstance(a.arg, BCol) or a.arg.name.startswith("__"):
            return "an aggregate of an expression"
        kinds = _ARG_KINDS | ({"STRING"} if a.func == "COUNT" else set())
        if a.arg.type.kind not in kinds or a.unscale:
            return f"{a.func} of a {a.arg.type} column"
    for name, b in plan.outputs:
        if not isinstance(b, BCol) or not (_ref(b.name, "__k", len(plan.keys)) is not None
                                           or _ref(b.name, "__a", len(plan.aggs)) is not None):
            return f"output column {name} is an expression"
    return None


def _ref(name: str, prefix: str, count: int) -> Optional[int]:
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        i = int(name[len(prefix):])
        if i < count:
            return i
    return None


def group_step_for(engine):
    """A ``GroupStep`` for the engine's bound plan and pipeline, or None when it does not qualify."""
    return step_for(engine.plan, engine.pipeline, engine.strings, engine.stats, engine.internal_schema)


def step_for(plan, pipeline, strings, stats: dict, out_schema):
    """A ``GroupStep`` updating ``pipeline``'s state (a V2 partition's, or the engine's), or None
    when the plan does not qualify. ``stats`` gets the step's record counts."""
    if not ENABLED or why_not(plan, pipeline) is not None:
        return None
    from .._core.group_step import GroupStep
    from ..batch import type_of_arrow
    from ..result import Result

    agg = pipeline.stateful
    codec = agg.codec
    outputs = []
    for _, b in plan.outputs:
        k = _ref(b.name, "__k", len(plan.keys))
        outputs.append(("k", k) if k is not None else ("a", _ref(b.name, "__a", len(plan.aggs))))
    return GroupStep(
        agg.table, agg.kernels, strings, stats,
        [(k.name, k.type.kind) for k in plan.keys], list(codec.layout), list(codec.wide),
        [None if a.arg is None else (a.arg.name, a.arg.type.kind) for a in plan.aggs],
        outputs, out_schema, Result, type_of_arrow)
