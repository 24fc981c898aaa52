"""From a parsed statement and the input's schema to an executable plan.

The planner resolves names and types, pulls aggregates and analytic calls out of the select list
(replacing them by references to the columns the kernels will produce), decides the emission mode
from the query shape (docs/SQL.md §5), and records how the query may be spread over partitions
(the job server reads ``Plan.partitioning``).

Three plan shapes, named after what does the work:

* ``project``: WHERE + SELECT expressions, row for row (S0).
* ``aggregate``: GROUP BY and/or aggregates, optionally windowed (S2, S3a, S3b).
* ``rows``: analytic functions over ROWS WINDOW BUFFER (S1).

Namespaces: expressions before aggregation are bound over the input columns; the select list and
HAVING of an aggregate query are bound over the *group row*: ``__k<i>`` (GROUP BY values),
``__a<j>`` (aggregate results), ``_WINDOW_START`` and ``_WINDOW_END``.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Optional

from .batch import BOOL, FLOAT64, INT64, SqlType
from .errors import SqlError, UnsupportedError, VelostreamError, nearest
from .exec import udaf as _python_aggregates
from .exec.expressions import BCall, BCol, BConst, Bound, Scope, bind, columns_used, render
from .sql import ast
from .sql.function_names import AGGREGATES, ANALYTIC, PAIR_AGGREGATES, QUANTILE_AGGREGATES
from .sql.parser import gc_paused
from .batch import StringDict

# LAG's offset in the frames without a row buffer (UNBOUNDED, RANGE): each key keeps its last k
# values, so k is bounded like a buffer
MAX_LAG_OFFSET = 10_000
_CANONICAL = {"STDDEV_SAMP": "STDDEV", "VAR_SAMP": "VARIANCE", "MIN_BY": "ARG_MIN",
              "MAX_BY": "ARG_MAX", "QUANTILE_CONT": "PERCENTILE_CONT",
              "QUANTILE_DISC": "PERCENTILE_DISC", "QUANTILE": "PERCENTILE_DISC",
              "LISTAGG": "STRING_AGG", "GROUP_CONCAT": "STRING_AGG"}
SYSTEM_COLUMNS = ("_TIMESTAMP", "_PARTITION", "_OFFSET", "_KEY")
WINDOW_COLUMNS = ("_WINDOW_START", "_WINDOW_END")


# ------------------------------------------------------------------------------------- plan


@dataclass
class AggSpec:
    func: str                 # COUNT_STAR COUNT SUM AVG MIN MAX VARIANCE VAR_POP STDDEV STDDEV_POP
    #                           COUNT_DISTINCT APPROX_COUNT_DISTINCT FIRST_VALUE LAST_VALUE MEDIAN
    #                           COUNT_IF BOOL_AND BOOL_OR ARG_MIN ARG_MAX CORR COVAR_POP
    #                           COVAR_SAMP REGR_SLOPE REGR_INTERCEPT REGR_R2 PERCENTILE_CONT
    #                           PERCENTILE_DISC APPROX_QUANTILE STRING_AGG
    arg: Optional[Bound]      # over the input columns; None for COUNT(*)
    result_type: SqlType
    name: str                 # __a<j> in the group row
    # Decimal inputs are aggregated as scaled integers; results in value units are divided by
    # 10**(scale*power) when they leave the kernel (AVG/MEDIAN/STDDEV: 1, VARIANCE: 2).
    unscale: int = 0
    # ``FILTER (WHERE cond)`` over the input columns: rows where it is not TRUE are not this
    # aggregate's input (docs/SQL.md §5).
    filter: Optional[Bound] = None
    # The second argument of a PAIR_AGGREGATES call: ARG_MIN(arg, val)'s val, CORR(y, x)'s x...
    arg2: Optional[Bound] = None
    # The constant fraction of a QUANTILE_AGGREGATES call (0 <= fraction <= 1).
    fraction: Optional[float] = None
    # STRING_AGG's constant separator.
    separator: Optional[str] = None
    # A Python aggregate's arguments after the second (vs.udaf): one Arrow array each.
    more_args: tuple = ()

    @property
    def kernel_dtype(self) -> str:
        if self.func in PAIR_AGGREGATES:  # CORR...: (y, x) as float64; ARG_*: int64 words
            return "int64" if self.func in ("ARG_MIN", "ARG_MAX") else "float64"
        if self.arg is None or self.arg.type.kind != "FLOAT64":
            return "int64"
        return "float64"

    def describe(self) -> str:
        args = render(self.arg) if self.arg is not None else '*'
        if self.arg2 is not None:
            args += f", {render(self.arg2)}"
        for a in self.more_args:
            args += f", {render(a)}"
        if self.fraction is not None:
            args += f", {self.fraction!r}"
        if self.separator is not None:
            args += ", '" + self.separator.replace("'", "''") + "'"
        text = f"{self.func}({args})"
        if self.filter is not None:
            text += f" FILTER (WHERE {render(self.filter)})"
        return text


@dataclass
class WindowPlan:
    kind: str                 # TUMBLING SLIDING CUMULATE SESSION
    time: Bound               # event time (epoch ms) over the input columns
    size_ms: Optional[int] = None
    advance_ms: Optional[int] = None
    gap_ms: Optional[int] = None

    def describe(self) -> str:
        if self.kind == "TUMBLING":
            return f"TUMBLING size {self.size_ms} ms on {render(self.time)}"
        if self.kind == "SLIDING":
            return f"SLIDING size {self.size_ms} ms advance {self.advance_ms} ms on {render(self.time)}"
        if self.kind == "CUMULATE":
            return f"CUMULATE size {self.size_ms} ms step {self.advance_ms} ms on {render(self.time)}"
        return f"SESSION gap {self.gap_ms} ms on {render(self.time)}"


@dataclass
class AnalyticSpec:
    func: str                 # see rows.RowsWindow
    arg: Optional[Bound]
    offset: int               # LAG's k
    default: Optional[Bound]  # LAG's default
    result_type: SqlType
    name: str                 # __w<j> in the row namespace


@dataclass
class OverPlan:
    buffer_rows: int          # ROWS buffer (frame "ROWS"); 0 for the other frames
    partition_by: list[Bound]
    functions: list[AnalyticSpec] = field(default_factory=list)
    # docs/SQL.md §6: "ROWS" (a buffer of n rows), "UNBOUNDED" (running per key; RANK and
    # DENSE_RANK also live here) or "RANGE" (ORDER BY time in [t - range_ms, t])
    frame: str = "ROWS"
    range_ms: int = 0
    order_by: Optional[Bound] = None  # the ORDER BY value RANGE and RANK read

    def describe(self) -> str:
        if self.frame == "UNBOUNDED":
            order = f" ORDER BY {render(self.order_by)}" if self.order_by is not None else ""
            return "ROWS UNBOUNDED PRECEDING" + order
        if self.frame == "RANGE":
            return f"RANGE {self.range_ms} ms PRECEDING ORDER BY {render(self.order_by)}"
        return f"BUFFER {self.buffer_rows} ROWS"


@dataclass
class Partitioning:
    strategy: str             # round_robin | hash | two_phase | single
    keys: list[Bound]         # hash keys over the input columns
    reason: str


@dataclass
class Plan:
    statement: ast.Statement
    sql: str
    source: str
    input_schema: dict[str, SqlType]
    shape: str                                   # project | aggregate | rows
    where: Optional[Bound] = None
    outputs: list[tuple[str, Bound]] = field(default_factory=list)
    keys: list[Bound] = field(default_factory=list)
    aggs: list[AggSpec] = field(default_factory=list)
    window: Optional[WindowPlan] = None
    having: Optional[Bound] = None
    emit: Optional[str] = None                   # CHANGES | FINAL (aggregate plans)
    overs: list[OverPlan] = field(default_factory=list)
    distinct: bool = False
    limit: Optional[int] = None
    offset: int = 0                              # OFFSET: emitted rows skipped before LIMIT's
    lateness_ms: int = 0
    partitioning: Optional[Partitioning] = None
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def output_schema(self) -> list[tuple[str, SqlType]]:
        return [(n, b.type) for n, b in self.outputs]

    @property
    def input_columns_used(self) -> set[str]:
        used = set()
        for b in ([self.where] + self.keys + [a.arg for a in self.aggs] + [a.arg2 for a in self.aggs]
                  + [a.filter for a in self.aggs] + [m for a in self.aggs for m in a.more_args]):
            if b is not None:
                used |= columns_used(b)
        if self.window is not None:
            used |= columns_used(self.window.time)
        if self.shape != "aggregate":
            for _, b in self.outputs:
                used |= columns_used(b)
        for o in self.overs:
            for b in o.partition_by + ([o.order_by] if o.order_by is not None else []):
                used |= columns_used(b)
            for f in o.functions:
                if f.arg is not None:
                    used |= columns_used(f.arg)
        return {u for u in used if not u.startswith("__")}

    @property
    def routes_by_window(self) -> bool:
        """Whether a V2 job may route this plan by window instead of by key (exec/router.py):
        a hash-partitioned GROUP BY whose windows of a row all lie in one period of the window
        size (TUMBLING, CUMULATE)."""
        p, w = self.partitioning, self.window
        return (p is not None and p.strategy == "hash" and self.shape == "aggregate"
                and w is not None and w.kind in ("TUMBLING", "CUMULATE") and bool(w.size_ms))

    def why_not_compiled(self) -> Optional[str]:
        """None when the plan is a plain streaming GROUP BY that the compiled step
        (``_core/group_step.pyx``, exec/push_fast.py) runs, else the first reason it is not."""
        if self.shape != "aggregate":
            return f"a {self.shape} plan"
        for what, value in (("WINDOW", self.window), ("WHERE", self.where),
                            ("HAVING", self.having), ("LIMIT", self.limit),
                            ("OFFSET", self.offset or None)):
            if value is not None:
                return f"{what} is not compiled"
        if self.distinct:
            return "DISTINCT is not compiled"
        if self.emit != "CHANGES":
            return f"EMIT {self.emit}"
        for k in self.keys:
            if not isinstance(k, BCol) or k.name.startswith("__"):
                return "a GROUP BY key is an expression"
            if k.type.kind not in _COMPILED_KEYS:
                return f"a {k.type} GROUP BY key"
        for a in self.aggs:
            if a.func not in _COMPILED_AGGS:
                return f"{a.func} is not compiled"
            if a.filter is not None:
                return "FILTER (WHERE ...) is not compiled"
            if a.arg is None:
                continue
            if not isinstance(a.arg, BCol) or a.arg.name.startswith("__"):
                return "an aggregate of an expression"
            kinds = _COMPILED_ARGS | ({"STRING"} if a.func == "COUNT" else set())
            if a.arg.type.kind not in kinds or a.unscale:
                return f"{a.func} of a {a.arg.type} column"
        for name, b in self.outputs:
            if not isinstance(b, BCol) or not (
                    group_row_ref(b.name, "__k", len(self.keys)) is not None
                    or group_row_ref(b.name, "__a", len(self.aggs)) is not None):
                return f"output column {name} is an expression"
        return None

    @property
    def may_scan(self) -> bool:
        """Whether a V2 job may run this plan by the scan split (jobs/partition_scan.py): a
        compiled GROUP BY routed by key."""
        p = self.partitioning
        return (p is not None and p.strategy == "hash" and bool(self.keys)
                and self.why_not_compiled() is None)

    def explain(self) -> str:
        lines = [f"Source: {self.source}"]
        if self.where is not None:
            lines.append(f"Filter: {render(self.where)}")
        if self.shape == "aggregate":
            keys = ", ".join(render(k) for k in self.keys) or "(global)"
            lines.append(f"Aggregate: keys [{keys}]")
            if self.window is not None:
                lines.append(f"  window: {self.window.describe()}, allowed lateness {self.lateness_ms} ms")
            for a in self.aggs:
                lines.append(f"  {a.name} = {a.describe()} -> {a.result_type}")
            if self.having is not None:
                lines.append(f"Having: {render(self.having)}")
            lines.append(f"Emit: {self.emit}")
        if self.shape == "rows":
            for i, o in enumerate(self.overs):
                pb = ", ".join(render(p) for p in o.partition_by) or "(none)"
                lines.append(f"Rows window {i}: {o.describe()} PARTITION BY {pb}")
                for f in o.functions:
                    arg = render(f.arg) if f.arg is not None else ""
                    lines.append(f"  {f.name} = {f.func}({arg})")
        if self.distinct:
            lines.append("Distinct: first occurrence of each row")
        if self.limit is not None or self.offset:
            lines.append(f"Limit: {'all' if self.limit is None else self.limit}"
                         + (f", after the first {self.offset} rows" if self.offset else ""))
        words: dict = {}  # each type written once (a select list can be 300,000 items)
        lines.append("Output: " + ", ".join(
            [n + " " + (words.get(b.type) or words.setdefault(b.type, str(b.type)))
             for n, b in self.outputs]))
        if self.partitioning is not None:
            p = self.partitioning
            keys = f"({', '.join(render(k) for k in p.keys)})" if p.keys else ""
            lines.append(f"Partitioning: {p.strategy}{keys}: {p.reason}")
            if self.routes_by_window:
                lines.append("  or window: runs of whole windows dealt to the partitions, when "
                             "the job's first batch shows many windows (docs/ARCHITECTURE.md)")
            if self.may_scan:
                lines.append("  or scan: each step in contiguous pieces, one per thread, every "
                             "row's aggregates completed by the state before its piece, when the "
                             "job's first batch shows few groups (docs/ARCHITECTURE.md)")
        return "\n".join(lines)


# What the compiled GROUP BY step takes (Plan.why_not_compiled)
_COMPILED_AGGS = {"COUNT_STAR", "COUNT", "SUM", "AVG", "MIN", "MAX"}
_COMPILED_KEYS = {"STRING", "INT64", "FLOAT64"}
_COMPILED_ARGS = {"INT64", "FLOAT64"}


def group_row_ref(name: str, prefix: str, count: int) -> Optional[int]:
    """i when ``name`` is ``<prefix><i>`` with i < count (a group row's key ``__k<i>`` or
    aggregate ``__a<i>`` column), else None."""
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        i = int(name[len(prefix):])
        if i < count:
            return i
    return None


# ---------------------------------------------------------------------------------- planner


def parse_duration_ms(text: str) -> int:
    """'500ms', '5s', '1m', '2h', '1d' or a bare number of milliseconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)?\s*", str(text).lower())
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 5s, 1m)")
    n, unit = int(m.group(1)), m.group(2) or "ms"
    return n * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[unit]


# Evaluation steps an expression may repeat (docs/SQL.md, "Limits"): BETWEEN evaluates its
# operand twice, so nesting it (or NULLIF, GREATEST, ...) doubles the work per level; without a
# bound, a short text could take hours per batch (and explain() print an exponential text).
MAX_REPEATED_STEPS = 10_000
MAX_GROUP_KEYS = 10_000
# ROW_NUMBER's forms without a row buffer (docs/SQL.md §8), named by every error about them
TOP_N_FORMS = ("window top-N (SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (PARTITION BY "
               "window_start, ... ORDER BY c [DESC]) AS rn FROM windowed_aggregate) WHERE rn <= N) "
               "and deduplication (... ROW_NUMBER() OVER (PARTITION BY k ORDER BY <event time>) "
               "AS rn ... WHERE rn = 1)")  # the group table's key holds at most 65,536 words


def plan_statement(stmt: ast.Statement, schemas: dict[str, dict[str, SqlType]],
                   strings: Optional[StringDict] = None) -> Plan:
    """Plan ``stmt`` against ``schemas`` (FROM name -> column -> type).

    Every error planning a statement is a ``SqlError`` (docs/SQL.md §7), raised here before any
    job starts, so it is the same at every partition count. Anything else escaping the planner
    is a bug; as a last line of defence it becomes a ``SqlError`` at the statement, never a
    RecursionError or IndexError from the middle of the engine."""
    try:
        with gc_paused(len(stmt.sql or "")):  # a 1 MB text makes as many objects here
            return _Planner(stmt, schemas, strings or StringDict()).plan()
    except VelostreamError:
        raise
    except RecursionError:
        raise SqlError.at(stmt.sql, stmt.select.pos, "expression nested too deeply for the call "
                          "stack here (see docs/SQL.md, Limits)") from None
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise SqlError.at(stmt.sql, stmt.select.pos, f"internal error planning this statement "
                          f"({type(exc).__name__}: {exc}); please report it") from exc


class _Planner:
    def __init__(self, stmt: ast.Statement, schemas, strings: StringDict):
        self.stmt = stmt
        self.sel = stmt.select
        self.sql = stmt.sql
        self.schemas = schemas
        self.strings = strings

    def err(self, node, msg) -> SqlError:
        return SqlError.at(self.sql, getattr(node, "pos", None), msg)

    def _bind(self, e, scope: Scope, strings: StringDict) -> Bound:
        """``bind``, for every expression the planner binds: also refuses one whose evaluation
        repeats more than MAX_REPEATED_STEPS steps (see there)."""
        b = bind(e, scope, strings)
        total, distinct = _evaluation_steps(b)
        if total - distinct > MAX_REPEATED_STEPS:
            raise self.err(e, f"expression too large: evaluating it takes {total:,} steps, "
                              f"{total - distinct:,} of them repeats (BETWEEN, simple CASE, NULLIF, "
                              f"... evaluate an operand more than once, and nesting them "
                              f"multiplies it); at most {MAX_REPEATED_STEPS:,} repeats are allowed")
        return b

    def plan(self) -> Plan:
        sel = self.sel
        src = sel.source.name
        schema = self.schemas.get(src)
        if schema is None:
            lowered = {k.lower(): k for k in self.schemas}
            if src.lower() in lowered:
                schema = self.schemas[lowered[src.lower()]]
            else:
                hint = nearest(src, self.schemas)
                raise self.err(sel.source, f"unknown source '{src}'" +
                               (f"; did you mean '{hint}'?" if hint else
                                f" (sources: {', '.join(self.schemas) or 'none given'})"))
        props = self.stmt.props
        plan = Plan(self.stmt, self.sql, src, dict(schema), "project", properties=props)
        try:
            plan.lateness_ms = parse_duration_ms(props.get("allowed.lateness", "0"))
        except ValueError as exc:
            raise SqlError(str(exc), self.sql) from None
        if sel.window is not None and sel.window.grace_ms is not None:
            plan.lateness_ms = sel.window.grace_ms  # ksqlDB's GRACE PERIOD (docs/SQL.md §10)
        self.input_scope = Scope(self.sql, schema)
        # a derived stream's event-time column is there for its readers' windows, not for
        # SELECT * (velostream.exec.graph)
        self.hidden = getattr(schema, "hidden", ())
        if sel.source.query is not None or sel.order_by:
            raise AssertionError("a subquery or ORDER BY reaches the one-statement planner; "
                                 "velostream.exec.graph plans it")
        if getattr(schema, "open_schema", False):
            self.input_scope.open = True
        plan.where = self._bind_condition(sel.where, self.input_scope) if sel.where is not None else None
        plan.distinct = sel.distinct
        plan.limit = sel.limit
        plan.offset = sel.offset

        # leaves hold no calls (most of a generated select list of 300,000 items)
        calls = [i.expr for i in sel.items if type(i.expr) not in _LEAF_NODES]
        has_agg = bool(sel.group_by) or any(self._contains_aggregate(e) for e in calls) \
            or (sel.having is not None)
        has_over = any(self._contains_over(e) for e in calls)
        if sel.window is not None and not sel.group_by and not has_agg:
            raise self.err(sel.window, "a WINDOW needs GROUP BY or aggregates in the select list")
        if has_agg and has_over:
            raise UnsupportedError.at(self.sql, sel.pos, "aggregates and OVER (...) analytic "
                                      "functions cannot be mixed in one query yet")
        if has_agg:
            self._plan_aggregate(plan)
        elif has_over:
            self._plan_rows(plan)
        else:
            self._plan_project(plan)
        # after binding: an unknown function (COUNT_IF(...) read as no aggregate) is the error
        # to report, not the EMIT clause it makes look misplaced
        if sel.emit == "FINAL" and not has_agg:
            # EMIT CHANGES on a per-row query changes nothing (ksqlDB writes it on every push
            # query, docs/SQL.md §6); EMIT FINAL has no window to wait for
            raise self.err(sel, f"EMIT {sel.emit} applies to GROUP BY / aggregate queries")
        if plan.distinct and plan.shape != "project":
            raise UnsupportedError.at(self.sql, sel.pos, "SELECT DISTINCT is only supported "
                                      "without GROUP BY and analytic functions")
        plan.partitioning = self._partitioning(plan, props.get("partitioning.strategy"))
        return plan

    # -- shapes ---------------------------------------------------------------------------
    def _plan_project(self, plan: Plan) -> None:
        plan.shape = "project"
        plan.outputs = self._select_list(self.input_scope, rewrite=None)

    def _plan_rows(self, plan: Plan) -> None:
        plan.shape = "rows"
        overs: dict[tuple, OverPlan] = {}
        analytics: dict[ast.FunctionCall, str] = {}
        extra_cols: dict[str, SqlType] = {}

        def rewrite(e):
            if isinstance(e, ast.FunctionCall) and e.over is not None:
                if e in analytics:
                    return ast.Column(analytics[e], quoted=True, pos=e.pos)
                name = self._add_analytic(e, overs, extra_cols)
                analytics[e] = name
                return ast.Column(name, quoted=True, pos=e.pos)
            return self._rewrite_children(e, rewrite)

        rewritten = [dataclasses.replace(i, expr=rewrite(i.expr)) for i in self.sel.items]
        scope = Scope(self.sql, {**self.input_scope.columns, **extra_cols})
        plan.overs = list(overs.values())
        plan.outputs = self._select_list(scope, items=rewritten)

    def _add_analytic(self, e: ast.FunctionCall, overs, extra_cols) -> str:
        name = e.name
        if e.filter is not None:
            raise UnsupportedError.at(self.sql, e.pos, f"FILTER (WHERE ...) is not supported on "
                                      f"analytic functions ({name} ... OVER)")
        if name == "LEAD":
            raise UnsupportedError.at(self.sql, e.pos, "LEAD needs rows that have not arrived yet; "
                                      "a streaming ROWS window cannot look ahead (use LAG)")
        if name not in ANALYTIC:
            hint = nearest(name, sorted(ANALYTIC))
            raise self.err(e, f"unknown analytic function {name}" + (f"; did you mean {hint}?" if hint else ""))
        over = e.over
        rank = name in ("RANK", "DENSE_RANK")
        # LAG and ROW_NUMBER do not depend on the frame either, nor does FIRST_VALUE on where the
        # default frame ends (docs/SQL.md §6): written without one, as in Flink SQL and DuckDB,
        # they look back over the key's records so far
        frameless = over.buffer_rows is None and over.frame is None and name in (
            "LAG", "ROW_NUMBER", "FIRST_VALUE")
        if over.buffer_rows is None and over.frame is None and not rank and not frameless:
            msg = ("expected ROWS WINDOW BUFFER n ROWS in OVER (...), found ')': analytic functions "
                   "need a row buffer, OVER (ROWS WINDOW BUFFER n ROWS [PARTITION BY ...] "
                   "[ORDER BY ...])")
            msg += ("; the standard frames ROWS BETWEEN n PRECEDING AND CURRENT ROW, ROWS "
                    "UNBOUNDED PRECEDING and RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW "
                    "work too")
            raise SqlError.at(self.sql, over.close_pos, msg)
        if over.buffer_rows is not None and over.buffer_rows < 1:
            raise self.err(over, "ROWS WINDOW BUFFER needs at least 1 row")
        pkeys = tuple(self._bind(p, self.input_scope, self.strings) for p in over.partition_by)
        order = [self._bind(o.expr, self.input_scope, self.strings) for o in over.order_by]
        # RANK / DENSE_RANK (and LAG / ROW_NUMBER / FIRST_VALUE without a frame) live in an
        # UNBOUNDED spec
        frame = "UNBOUNDED" if rank or frameless else (over.frame or "ROWS")
        order_by = None
        if rank or frame == "RANGE" or (frameless and over.order_by):
            # (ORDER BY of a frameless LAG / ROW_NUMBER / FIRST_VALUE: each key's records must
            # come in that order, as RANK's must: one out of order is a bad record, not a wrong
            # answer)
            order_by = self._over_order(e, over, order, "RANGE frame" if frame == "RANGE" else name)
        key = (frame, over.buffer_rows if frame == "ROWS" else 0, over.range_ms, order_by, pkeys)
        op = overs.get(key)
        if op is None:
            op = overs[key] = OverPlan(over.buffer_rows if frame == "ROWS" else 0, list(pkeys),
                                       frame=frame, range_ms=over.range_ms, order_by=order_by)
        func = _CANONICAL.get(name, name)
        arg, offset, default = None, 1, None
        args = e.args
        if func in ("ROW_NUMBER", "RANK", "DENSE_RANK"):
            if args:
                raise self.err(e, f"{func} takes no argument")
        elif func == "COUNT" and (not args or isinstance(args[0], ast.Star)):
            func = "COUNT_STAR"
        else:
            if not args:
                raise self.err(e, f"{name} needs an argument")
            arg = self._bind_kernel_arg(args[0], func)
            if func == "LAG":
                if len(args) > 1:
                    if not isinstance(args[1], ast.Literal) or args[1].type != "INTEGER":
                        raise self.err(args[1], "LAG's offset must be an integer constant")
                    offset = int(args[1].value)
                if frame != "ROWS":
                    if not 1 <= offset <= MAX_LAG_OFFSET:
                        raise self.err(e, f"LAG offset must be between 1 and {MAX_LAG_OFFSET:,}")
                elif not 1 <= offset < over.buffer_rows:
                    raise self.err(e, f"LAG offset must be between 1 and {over.buffer_rows - 1} "
                                   f"(less than the buffer of {over.buffer_rows} rows)")
                if len(args) > 2:
                    default = self._bind(args[2], self.input_scope, self.strings)
                if len(args) > 3:
                    raise self.err(e, "LAG takes at most 3 arguments")
            elif len(args) > 1:
                raise self.err(e, f"{name} takes one argument")
        rt = self._analytic_type(func, arg)
        if default is not None and default.type != rt and default.type.kind != "NULL":
            from .exec.expressions import _coerce_compare
            _, default = _coerce_compare(BCol(rt, "__x"), default, e, self.sql)
        fname = f"__w{sum(len(o.functions) for o in overs.values())}"
        op.functions.append(AnalyticSpec(func, arg, offset, default, rt, fname))
        extra_cols[fname] = rt
        return fname

    def _over_order(self, e, over, order: list, what: str) -> Bound:
        """The one ascending ORDER BY value a RANGE frame or RANK reads (docs/SQL.md §6)."""
        if len(order) != 1:
            raise self.err(e, f"{what} needs ORDER BY one column in OVER (...)")
        if over.order_by[0].descending:
            raise UnsupportedError.at(self.sql, over.order_by[0].expr.pos, f"{what}: ORDER BY ... "
                                      "DESC is not supported (rows arrive in ascending order)")
        kinds = ("TIMESTAMP", "INT64") if over.frame == "RANGE" and what == "RANGE frame" else (
            "TIMESTAMP", "INT64", "DECIMAL")
        if order[0].type.kind not in kinds:
            raise self.err(over.order_by[0].expr, f"{what} needs ORDER BY a "
                           f"{' or '.join(kinds)} column, found {order[0].type}")
        return order[0]

    def _analytic_type(self, func: str, arg: Optional[Bound]) -> SqlType:
        if func in ("COUNT", "COUNT_STAR", "ROW_NUMBER", "RANK", "DENSE_RANK"):
            return INT64
        if func in ("AVG", "STDDEV", "STDDEV_POP", "VARIANCE", "VAR_POP"):
            return FLOAT64
        return arg.type  # SUM MIN MAX LAG FIRST_VALUE LAST_VALUE keep the input type

    def _bind_kernel_arg(self, e, func: str) -> Bound:
        b = self._bind(e, self.input_scope, self.strings)
        if b.type.kind in ("STRING", "BOOL") and func in QUANTILE_AGGREGATES:
            raise self.err(e, f"{func} needs a number, found {b.type}")
        if b.type.kind == "STRING" and func in ("SUM", "AVG", "STDDEV", "STDDEV_POP", "VARIANCE",
                                                "VAR_POP", "MEDIAN"):
            raise self.err(e, f"{func} needs a number, found STRING")
        if b.type.kind == "DATE" and func in ("SUM", "AVG", "STDDEV", "STDDEV_POP", "VARIANCE",
                                              "VAR_POP", "MEDIAN", "PERCENTILE_CONT"):
            # a DATE is held as epoch ms: summing or averaging those would be silently wrong
            # (DuckDB has no SUM of a DATE; its AVG and MEDIAN are TIMESTAMPs)
            raise self.err(e, f"{func} of a DATE is not supported (MIN, MAX, COUNT and "
                              "PERCENTILE_DISC are; DATE - DATE '1970-01-01' is its day number)")
        if func in ("COUNT_IF", "BOOL_AND", "BOOL_OR") and b.type.kind not in ("BOOL", "NULL"):
            raise self.err(e, f"{func} needs a boolean, found {b.type}")
        return b

    def _plan_aggregate(self, plan: Plan) -> None:
        sel = self.sel
        plan.shape = "aggregate"
        if len(sel.group_by) > MAX_GROUP_KEYS:
            raise UnsupportedError.at(self.sql, sel.group_by[MAX_GROUP_KEYS].pos,
                                      f"GROUP BY takes at most {MAX_GROUP_KEYS:,} expressions")
        group_by = [self._group_expr(g) for g in sel.group_by]
        for g in group_by:
            if self._contains_aggregate(g):
                raise self.err(g, "aggregates are not allowed in GROUP BY")
        plan.keys = [self._bind(g, self.input_scope, self.strings) for g in group_by]
        group_scope_cols: dict[str, SqlType] = {f"__k{i}": k.type for i, k in enumerate(plan.keys)}
        aggs: dict[tuple, AggSpec] = {}

        if sel.window is not None:
            w = sel.window
            tcol = w.time_column or ast.Column("_TIMESTAMP", pos=w.pos)
            tb = self._bind(tcol, self.input_scope, self.strings)
            if tb.type.kind == "STRING":  # ISO-8601 text: converted at ingestion
                from .exec.expressions import BCall
                from .batch import TIMESTAMP
                tb = BCall(TIMESTAMP, "CAST", (tb,))
            if tb.type.kind not in ("INT64", "TIMESTAMP", "NULL"):
                raise self.err(tcol, f"window time column must be a TIMESTAMP or epoch-ms integer, found {tb.type}")
            plan.window = WindowPlan(w.kind, tb, w.size_ms, w.advance_ms, w.gap_ms)
            if w.kind in ("SLIDING", "CUMULATE") and w.size_ms // w.advance_ms > 10_000:
                raise UnsupportedError.at(self.sql, w.pos, f"a {w.kind} window may overlap at "
                                          "most 10,000 windows per record")
            group_scope_cols["_WINDOW_START"] = INT64
            group_scope_cols["_WINDOW_END"] = INT64

        group_index: dict = {}  # a lookup, not a scan: a long select list by a long GROUP BY
        for i, g in enumerate(group_by):
            group_index.setdefault(g, i)

        def rewrite(e):
            i = group_index.get(e)
            if i is not None:
                return ast.Column(f"__k{i}", quoted=True, pos=getattr(e, "pos", None))
            if isinstance(e, ast.FunctionCall) and e.over is None and (
                    e.name in AGGREGATES or (e.name == "COUNT")):
                return ast.Column(self._add_agg(e, aggs, group_scope_cols), quoted=True, pos=e.pos)
            if isinstance(e, ast.FunctionCall) and e.over is not None:
                raise UnsupportedError.at(self.sql, e.pos, "analytic functions cannot be mixed with GROUP BY")
            if isinstance(e, ast.Column):
                if e.name in WINDOW_COLUMNS and not e.quoted:
                    if plan.window is None:
                        raise self.err(e, f"{e.name} needs a WINDOW clause")
                    return e
                self.input_scope.resolve(e)  # unknown column -> error with a hint
                raise self.err(e, f"column '{e.name}' must appear in GROUP BY or be used in an aggregate")
            if isinstance(e, ast.Star):
                raise self.err(e, "SELECT * is not allowed with GROUP BY; name the columns")
            return self._rewrite_children(e, rewrite)

        items = [dataclasses.replace(i, expr=rewrite(i.expr)) for i in sel.items]
        aliases = {i.alias: i.expr for i in sel.items if i.alias}

        def alias_to_expr(e):  # HAVING may name a select alias (as in DuckDB) unless a column has it
            if (isinstance(e, ast.Column) and e.table is None and e.name in aliases
                    and self.input_scope.lower.get(e.name.lower()) is None):
                return aliases[e.name]
            return self._rewrite_children(e, alias_to_expr)

        having = rewrite(alias_to_expr(sel.having)) if sel.having is not None else None
        plan.aggs = list(aggs.values())
        group_scope = Scope(self.sql, group_scope_cols)
        plan.outputs = self._select_list(group_scope, items=items)
        if having is not None:
            plan.having = self._bind_condition(having, group_scope)
        default = "FINAL" if plan.window is not None else "CHANGES"
        plan.emit = sel.emit or default

    def _group_expr(self, g):
        """A GROUP BY item: an expression, a select-list position (``GROUP BY 1``) or a
        select-list alias that is not an input column (DuckDB's rules, docs/SQL.md §10)."""
        items = self.sel.items
        if isinstance(g, ast.Literal) and g.type == "INTEGER":
            k = int(g.value)
            if not 1 <= k <= len(items) or isinstance(items[k - 1].expr, ast.Star):
                raise self.err(g, f"GROUP BY position {k} is not an expression of the select "
                                  f"list (1 to {len(items)})")
            return items[k - 1].expr
        if (isinstance(g, ast.Column) and g.table is None
                and self.input_scope.lower.get(g.name.lower()) is None
                and g.name not in WINDOW_COLUMNS):
            for item in items:
                if item.alias is not None and (item.alias == g.name or (
                        not g.quoted and item.alias.lower() == g.name.lower())):
                    return item.expr
        return g

    def _add_agg(self, e: ast.FunctionCall, aggs: dict, cols: dict) -> str:
        name = _CANONICAL.get(e.name, e.name)
        args = e.args
        for a in args:
            if self._contains_aggregate(a):
                raise self.err(a, "aggregates cannot be nested")
        if name == "COUNT" and e.distinct:
            name = "COUNT_DISTINCT"
        elif e.distinct and name not in ("COUNT_DISTINCT", "APPROX_COUNT_DISTINCT"):
            raise UnsupportedError.at(self.sql, e.pos, f"{name}(DISTINCT ...) is not supported; "
                                      "COUNT(DISTINCT x) is")
        arg2 = fraction = separator = None
        more_args: tuple = ()
        if name == "COUNT" and (not args or isinstance(args[0], ast.Star)):
            func, arg = "COUNT_STAR", None
        elif name == "STRING_AGG":
            if len(args) not in (1, 2) or any(isinstance(a, ast.Star) for a in args):
                raise self.err(e, f"{e.name} takes a text value and an optional separator")
            func = name
            arg = self._bind(args[0], self.input_scope, self.strings)
            if arg.type.kind not in ("STRING", "NULL"):
                raise self.err(args[0], f"{e.name} needs text, found {arg.type} (CAST it to VARCHAR)")
            separator = ","  # DuckDB's default
            if len(args) == 2:
                sep = args[1]
                if not isinstance(sep, ast.Literal) or sep.type != "STRING":
                    raise self.err(sep, f"{e.name}'s separator must be a constant string")
                separator = sep.value
        elif name in QUANTILE_AGGREGATES:
            if len(args) != 2 or any(isinstance(a, ast.Star) for a in args):
                raise self.err(e, f"{e.name} takes a value and a fraction: {e.name}(x, 0.5) or "
                                  f"{e.name}(0.5) WITHIN GROUP (ORDER BY x)")
            func = name
            arg = self._bind_kernel_arg(args[0], func)
            fraction = self._fraction(args[1], e.name)
        elif name in _python_aggregates.REGISTRY:  # vs.udaf: one Arrow array per argument
            if not args or any(isinstance(a, ast.Star) for a in args):
                raise self.err(e, f"{e.name} (a Python aggregate) takes one or more arguments")
            func = name
            bound = [self._bind(a, self.input_scope, self.strings) for a in args]
            arg, arg2, more_args = bound[0], (bound[1:2] or [None])[0], tuple(bound[2:])
        elif name in PAIR_AGGREGATES:
            if len(args) != 2 or any(isinstance(a, ast.Star) for a in args):
                raise self.err(e, f"{e.name} takes exactly two arguments")
            func = name
            arg, arg2 = (self._bind(a, self.input_scope, self.strings) for a in args)
            if func not in ("ARG_MIN", "ARG_MAX"):
                for a, b in zip(args, (arg, arg2)):
                    if b.type.kind not in ("INT64", "FLOAT64", "DECIMAL", "NULL"):
                        raise self.err(a, f"{func} needs numbers, found {b.type}")
        else:
            if len(args) != 1 or isinstance(args[0], ast.Star):
                raise self.err(e, f"{e.name} takes exactly one argument")
            func = name
            arg = self._bind_kernel_arg(args[0], func)
        filt = None
        if e.filter is not None:
            if self._contains_aggregate(e.filter):
                raise self.err(e.filter, "aggregates are not allowed in FILTER (WHERE ...)")
            filt = self._bind_condition(e.filter, self.input_scope)
        key = (func, arg, filt, arg2, fraction, separator, more_args)
        if key in aggs:
            return aggs[key].name
        rt, unscale = self._agg_type(func, arg)
        spec = AggSpec(func, arg, rt, f"__a{len(aggs)}", unscale, filt, arg2, fraction, separator,
                       more_args)
        aggs[key] = spec
        cols[spec.name] = rt
        return spec.name

    def _fraction(self, e, name: str) -> float:
        """The constant fraction of a quantile aggregate, between 0 and 1 (DuckDB's rule)."""
        neg = isinstance(e, ast.UnaryOp) and e.op == "-"
        lit = e.operand if neg else e
        if not isinstance(lit, ast.Literal) or lit.type not in ("INTEGER", "DOUBLE", "DECIMAL"):
            raise self.err(e, f"{name}'s fraction must be a constant number between 0 and 1")
        q = -float(lit.value) if neg else float(lit.value)
        if not 0.0 <= q <= 1.0:
            raise self.err(e, f"{name}'s fraction must be between 0 and 1, got {q:g}")
        return q

    def _agg_type(self, func: str, arg: Optional[Bound]) -> tuple[SqlType, int]:
        if func in ("COUNT_STAR", "COUNT", "COUNT_DISTINCT", "APPROX_COUNT_DISTINCT", "COUNT_IF"):
            return INT64, 0
        if func in ("BOOL_AND", "BOOL_OR"):
            return BOOL, 0
        if func == "STRING_AGG":
            return SqlType("STRING"), 0
        if func in PAIR_AGGREGATES and func not in ("ARG_MIN", "ARG_MAX"):
            return FLOAT64, 0  # the kernel takes real values (decimals unscaled on the way in)
        if func in _python_aggregates.REGISTRY:
            return _python_aggregates.REGISTRY[func].returns, 0
        t = arg.type
        dec = t.kind == "DECIMAL"
        if func == "SUM":
            return (t if t.kind in ("DECIMAL", "FLOAT64") else INT64), 0
        if func in ("AVG", "MEDIAN", "STDDEV", "STDDEV_POP", "PERCENTILE_CONT"):
            return FLOAT64, (1 if dec else 0)
        if func in ("VARIANCE", "VAR_POP"):
            return FLOAT64, (2 if dec else 0)
        if t.kind == "BOOL" and func in ("MIN", "MAX"):
            return BOOL, 0
        return t, 0  # MIN MAX FIRST_VALUE LAST_VALUE keep the input type

    # -- helpers ------------------------------------------------------------------------
    def _select_list(self, scope: Scope, items=None, rewrite=None) -> list[tuple[str, Bound]]:
        items = self.sel.items if items is None else items
        out: list[tuple[str, Bound]] = []
        used: dict[str, int] = {}
        # a column named again is bound once (a generated select list can be 300,000 items,
        # docs/SQL.md "Limits"); equal references (``==`` ignores positions) bind alike
        references: dict = {}
        column, literal, binary, originals = ast.Column, ast.Literal, ast.BinaryOp, self.sel.items
        unchanged = items is originals  # not rewritten: a column's default name is its own
        # ``column + integer`` / ``column - integer`` (the commonest computed item): binding one
        # decides the type of every other of that column and operator, so the others take the
        # first one's type and column and their own constant (what bind would make of them)
        shifts: dict = {}
        last = last_bound = None
        for lo, hi, run in _runs(items) if unchanged else ((0, len(items), None),):
            if run is not None:  # a run of items named and bound alike, at once
                if type(run) is column:  # one column, repeated
                    key = (run.name, run.table, run.quoted)
                    bound = references.get(key)
                    if bound is None:
                        b = self._bind(run, scope, self.strings)
                        bound = references[key] = (b, self._default_name(run, b, lo))
                    b, base = bound
                    last, last_bound = run, bound
                    # named as one by one: the base name if unused, then base_1, base_2, ...
                    k = used.get(base)
                    if k is None:
                        names = [base] + [f"{base}_{j}" for j in range(1, hi - lo)]
                        used[base] = hi - lo - 1
                    else:
                        names = [f"{base}_{j}" for j in range(k + 1, k + 1 + hi - lo)]
                        used[base] = k + hi - lo
                    out.extend(zip(names, [b] * (hi - lo)))
                else:  # integer constants (``run``: their values), named col<place>
                    names = [f"col{idx}" for idx in range(lo, hi)]
                    if not used.keys().isdisjoint(names):
                        run = None  # another item took such a name: one by one below
                    else:
                        used.update(dict.fromkeys(names, 0))
                        out.extend(zip(names, map(BConst, [INT64] * (hi - lo), map(int, run))))
                if run is not None:
                    continue
            for idx in range(lo, hi):
                item = items[idx]
                e = item.expr
                default = None
                if e is last:  # the parser shares a repeated column's node (sql_lex.scan_items)
                    b, default = last_bound
                elif type(e) is column:
                    key = (e.name, e.table, e.quoted)  # a tuple: hashed and compared in C
                    bound = references.get(key)
                    if bound is None:
                        b = self._bind(e, scope, self.strings)
                        bound = references[key] = (b, self._default_name(e, b, idx) if unchanged
                                                   else None)
                    b, default = bound
                    last, last_bound = e, bound
                elif type(e) is literal:
                    # a constant: no steps to count (_bind); an integer as bind makes it
                    b = (BConst(INT64, int(e.value)) if e.type == "INTEGER"
                         else bind(e, scope, self.strings))
                    if unchanged:
                        default = f"col{idx}"  # _default_name's, inline
                elif (type(e) is binary and (e.op == "+" or e.op == "-") and type(e.left) is column
                      and type(e.right) is literal and e.right.type == "INTEGER"):
                    left = e.left
                    key = (left.name, left.table, left.quoted, e.op)
                    first = shifts.get(key)
                    if first is None:
                        b = self._bind(e, scope, self.strings)
                        shifts[key] = (b if type(b) is BCall and len(b.args) == 2
                                       and type(b.args[1]) is BConst else False)
                    elif first is False:
                        b = self._bind(e, scope, self.strings)
                    else:
                        b = BCall(first.type, first.fn, (first.args[0], BConst(INT64, int(e.right.value))))
                elif isinstance(e, ast.Star):
                    for name, t in scope.columns.items():
                        if not name.startswith("__") and name not in self.hidden:
                            out.append((self._unique(name, used), BCol(t, name)))
                    continue
                else:
                    b = self._bind(e, scope, self.strings)
                name = item.alias or default or self._default_name(originals[idx].expr, b, idx)
                k = used.get(name)  # _unique, inline
                if k is None:
                    used[name] = 0
                else:
                    used[name] = k = k + 1
                    name = f"{name}_{k}"
                out.append((name, b))
        return out

    @staticmethod
    def _unique(name: str, used: dict[str, int]) -> str:
        if name not in used:
            used[name] = 0
            return name
        used[name] += 1
        return f"{name}_{used[name]}"

    def _default_name(self, e, b: Bound, idx: int) -> str:
        if isinstance(e, ast.Column):
            return b.name if isinstance(b, BCol) and not b.name.startswith("__") else e.name
        if isinstance(e, ast.FunctionCall):
            fname = e.name.lower()
            if e.name == "COUNT" and e.distinct:
                fname = "count_distinct"
            if not e.args or isinstance(e.args[0], ast.Star):
                return f"{fname}_star" if e.args else fname
            if all(isinstance(a, ast.Column) for a in e.args[:1]):
                return f"{fname}_{e.args[0].name.lower()}"
            return fname
        return f"col{idx}"

    def _bind_condition(self, e, scope: Scope) -> Bound:
        b = self._bind(e, scope, self.strings)
        if b.type.kind not in ("BOOL", "NULL"):
            raise self.err(e, f"expected a boolean condition, found {b.type}")
        return b

    def _contains_aggregate(self, e) -> bool:
        return _calls_in(e, self.__dict__.setdefault("_calls_memo", {}))[0]

    def _contains_over(self, e) -> bool:
        return _calls_in(e, self.__dict__.setdefault("_calls_memo", {}))[1]

    @staticmethod
    def _rewrite_children(e, fn):
        if not dataclasses.is_dataclass(e):
            return e
        changes = {}
        for f in dataclasses.fields(e):
            v = getattr(e, f.name)
            nv = _map_node(v, fn)
            if nv is not v:
                changes[f.name] = nv
        return dataclasses.replace(e, **changes) if changes else e

    def _partitioning(self, plan: Plan, override: Optional[str]) -> Partitioning:
        if plan.shape == "aggregate":
            if plan.keys:
                auto = Partitioning("hash", list(plan.keys), "GROUP BY keys: each group lives in one partition")
            elif plan.emit == "FINAL":
                auto = Partitioning("two_phase", [], "global aggregate: partial state per partition, "
                                    "merged by the coordinator")
            else:
                auto = Partitioning("single", [], "global aggregate with EMIT CHANGES: one changelog "
                                    "needs one partition")
        elif plan.shape == "rows":
            common = None
            for o in plan.overs:
                ks = set(o.partition_by)
                common = ks if common is None else (common & ks)
            keys = [k for k in plan.overs[0].partition_by if k in (common or set())]
            if keys:
                auto = Partitioning("hash", keys, "PARTITION BY keys: each buffer lives in one partition")
            else:
                auto = Partitioning("single", [], "ROWS window without PARTITION BY: one buffer")
        elif plan.distinct:
            auto = Partitioning("hash", [b for _, b in plan.outputs], "DISTINCT: equal rows meet in one partition")
        else:
            auto = Partitioning("round_robin", [], "row-by-row query: any record can go anywhere")
        if (plan.limit is not None or plan.offset) and auto.strategy == "hash":
            # hash partitions' rows are gathered partition by partition, which is not the order
            # one partition emits them in: LIMIT would keep other rows at other partition counts
            auto = Partitioning("single", [], "LIMIT: its first rows are those in the order one "
                                "partition emits them (docs/SQL.md §5)")
        if not override:
            return auto
        o = override.strip().lower().replace("-", "_")
        allowed = {"hash", "round_robin", "sticky", "two_phase", "single"}
        if o not in allowed:
            raise SqlError(f"unknown partitioning.strategy '{override}' (one of {', '.join(sorted(allowed))})", self.sql)
        if o == auto.strategy:
            return auto
        if o == "single" or (o in ("round_robin", "sticky") and auto.strategy == "round_robin"):
            return Partitioning(o, [], f"set by partitioning.strategy (automatic: {auto.strategy})")
        if o == "sticky" and auto.strategy == "hash":
            return Partitioning("sticky", [], "set by partitioning.strategy: records stay in their "
                                "source partition (input must be keyed by the GROUP BY columns)")
        raise SqlError(f"partitioning.strategy '{override}' would give wrong results for this query "
                       f"(it needs {auto.strategy}: {auto.reason})", self.sql)


# A select list's runs of at least this many alike items are named and bound at once (_runs)
BULK_RUN = 16
_EXPR, _ALIAS = attrgetter("expr"), attrgetter("alias")
_TYPE, _VALUE = attrgetter("type"), attrgetter("value")


def _runs(items) -> list:
    """A select list cut into stretches ``(lo, hi, run)``: ``run`` None for items to plan one
    by one; a column node for a run of that one node repeated (the parser shares a repeated
    column's node, sql_lex.scan_items); a list of values for a run of integer constants; both
    runs without aliases and at least BULK_RUN long. A generated select list can be 300,000
    items (docs/SQL.md, "Limits"): the cuts are found by passes in C (maps, groupby, counts)."""
    n = len(items)
    if n < 4 * BULK_RUN:
        return [(0, n, None)]
    exprs = list(map(_EXPR, items))
    aliases = list(map(_ALIAS, items))
    out, lo, at = [], 0, 0
    column, literal = ast.Column, ast.Literal
    for kind, group in groupby(map(type, exprs)):
        m = len(list(group))
        if m >= BULK_RUN and (kind is column or kind is literal):
            if kind is literal:
                part = exprs[at:at + m]
                if (list(map(_TYPE, part)).count("INTEGER") == m
                        and aliases[at:at + m].count(None) == m):
                    pieces = [(at, at + m, list(map(_VALUE, part)))]
                else:
                    pieces = []
            else:  # runs of one node (equal nodes plan alike: == ignores positions)
                part = exprs[at:at + m]
                if part.count(part[0]) == m:  # the whole stretch: one count, in C
                    sizes = [m]
                else:
                    sizes = [len(list(same)) for _, same in groupby(part, key=id)]
                pieces, start = [], at
                for size in sizes:
                    if size >= BULK_RUN and aliases[start:start + size].count(None) == size:
                        pieces.append((start, start + size, exprs[start]))
                    start += size
            for a, b, run in pieces:
                if lo < a:
                    out.append((lo, a, None))
                out.append((a, b, run))
                lo = b
        at += m
    if lo < n:
        out.append((lo, n, None))
    return out


_FIELD_NAMES: dict = {}  # node class -> its field names (dataclasses.fields is slow per node)
_LEAF_NODES = (ast.Column, ast.Literal, ast.IntervalLiteral, ast.Star, ast.RowsOver)


def _is_node(v) -> bool:
    return hasattr(type(v), "__dataclass_fields__")


def _children(e):
    cls = type(e)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        # leaves hold no nodes, and no node is in a 'pos' (a 1 MB select list is mostly leaves)
        names = _FIELD_NAMES[cls] = (() if not hasattr(cls, "__dataclass_fields__")
                                     or cls in _LEAF_NODES else
                                     tuple(n for n in cls.__dataclass_fields__ if n != "pos"))
    if not names:
        return []
    out = []
    for name in names:
        v = getattr(e, name)
        if isinstance(v, tuple):
            for x in v:
                if isinstance(x, tuple):
                    out.extend(y for y in x if _is_node(y))
                elif _is_node(x):
                    out.append(x)
        elif _is_node(v):
            out.append(v)
    return out


def _calls_in(e, memo: dict) -> tuple[bool, bool]:
    """(whether ``e`` holds an aggregate call, whether it holds an analytic call with OVER), by
    one iterative walk, remembered in ``memo`` (id -> (expression, answer)): the planner asks
    both of every select item, and a 1 MB CASE has hundreds of thousands of nodes."""
    if type(e) in _LEAF_NODES:
        return False, False
    if type(e) is ast.BinaryOp and type(e.left) in _LEAF_NODES and type(e.right) in _LEAF_NODES:
        return False, False  # a + 1: the commonest computed item of a generated select list
    hit = memo.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    agg = over = False
    stack = [e]
    while stack:
        node = stack.pop()
        if type(node) is ast.FunctionCall:
            if node.over is None:
                agg = agg or node.name in AGGREGATES
            else:
                over = True
        stack.extend(_children(node))
    memo[id(e)] = (e, (agg, over))
    return agg, over


def _map_node(v, fn):
    if isinstance(v, tuple):
        new = tuple(_map_node(x, fn) for x in v)
        return v if all(a is b for a, b in zip(new, v)) else new
    if dataclasses.is_dataclass(v) and not isinstance(v, (ast.TypeName, ast.RowsOver)):
        return fn(v)
    return v


def _evaluation_steps(root: Bound) -> tuple[int, int]:
    """(steps, distinct nodes) of evaluating ``root``: a node shared by several parents (the
    binder reuses BETWEEN's operand) is evaluated once per use. Counted over the shared graph
    with a memo, so the count itself takes linear time."""
    if not isinstance(root, BCall):  # a column or a constant (most items of a 1 MB list)
        return 1, 1
    # a tree (no call under two parents: the common case, a long AND/OR chain or CASE too) is
    # counted in one pass without the memo; a shared call sends it to the walk below
    seen: set[int] = set()
    leaves: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            break
        seen.add(id(node))
        total += 1
        for a in node.args:
            if type(a) is BCall:
                stack.append(a)
            elif isinstance(a, Bound):
                total += 1
                leaves.add(id(a))
    else:
        return total, len(seen) + len(leaves)
    steps: dict[int, int] = {}
    leaves: set[int] = set()  # columns and constants: one step each (IN lists have 100,000s)
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in steps:
            continue
        args = node.args
        if not done:
            stack.append((node, True))
            stack.extend((a, False) for a in args if type(a) is BCall and id(a) not in steps)
            continue
        total = 1
        for a in args:
            if type(a) is BCall:
                total += steps[id(a)]
            elif isinstance(a, Bound):
                total += 1
                leaves.add(id(a))
        steps[id(node)] = total
    return steps[id(root)], len(steps) + len(leaves)
