"""The entry points a user calls: ``vs.query``, ``vs.explain`` and ``vs.Engine``.

Each reads the SQL text once and picks what runs it: one statement's ``Engine`` (engine.py), a
pipeline's graph of operators (``exec/graph.py``, docs/SQL.md §8) for a text of several
statements, CTEs or subqueries, and the job server (``jobs/``) for ``vs.query`` at more than one
partition. Everything below this module builds on those and never on it.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Optional

import pyarrow as pa

from . import engine as _engine
from .batch import SqlType, StringDict, to_record_batches
from .binding import SourceBinder, check_left_out, conform
from .engine import _morsels, _pick_source, explain_plan
from .errors import DroppedRowsWarning
from .exec.graph import Dataflow, GraphEngine, needs_graph, rows_known, run_query
from .jobs import run_partitioned
from .jobs.partition_threads import INLINE_ROWS
from .result import Result, query_stats
from .sql import ast
from .sql.parser import parse_script


class Engine(_engine.Engine):
    """A query fed batch by batch (``push``), with its state (``snapshot`` / ``restore``).

    A text that needs a graph (several statements, CTEs, subqueries, joins, UNION ALL: see
    docs/SQL.md §8) gives a ``GraphEngine``, which takes the same calls.

    >>> import velostream as vs
    >>> eng = vs.Engine("SELECT k, COUNT(*) AS n FROM s GROUP BY k")
    >>> eng.push("s", {"k": ["a", "b", "a"]}).to_pylist()
    [{'k': 'a', 'n': 1}, {'k': 'b', 'n': 1}, {'k': 'a', 'n': 2}]
    """

    def __new__(cls, sql: str, schemas: Optional[Mapping[str, Mapping[str, SqlType]]] = None,
                *, env: Optional[Mapping[str, str]] = None,
                statement: Optional[ast.Statement] = None, strings: Optional[StringDict] = None,
                partitions: int = 1):
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        if statement is None:
            statements = parse_script(sql, env)
            if needs_graph(statements) or partitions != 1:
                # several statements, CTEs, ... (docs/SQL.md §8), or one statement over several
                # partitions: a graph, whose keyed nodes run on ``partitions`` threads each
                # (docs/ARCHITECTURE.md); one SELECT is a graph of one stage
                return GraphEngine(statements, statements[0].sql, schemas, partitions)
            obj = super().__new__(cls)
            obj._parsed = statements[0]  # parsed once: Engine.__init__ takes it
            return obj
        return super().__new__(cls)

    def __init__(self, sql: str, schemas: Optional[Mapping[str, Mapping[str, SqlType]]] = None,
                 *, env: Optional[Mapping[str, str]] = None,
                 statement: Optional[ast.Statement] = None, strings: Optional[StringDict] = None,
                 partitions: int = 1):
        super().__init__(sql, schemas, env=env, statement=statement, strings=strings)


def query(sql: str, sources: Mapping[str, Any], *, partitions: int = 1,
          processor: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Result:
    """Run ``sql`` over finite inputs to the end (end-of-input flush included).

    ``sources`` maps each FROM name to its data: a pyarrow Table or RecordBatch, a list of record
    batches, a pandas DataFrame, a dict of columns or a list of row dicts. ``partitions > 1`` runs
    the job server (N partition threads); ``processor="v2"`` runs even one partition as a job.

    >>> import velostream as vs
    >>> trades = {"symbol": ["A", "B", "A"], "price": [10.0, 20.0, 30.0],
    ...           "_TIMESTAMP": [0, 1_000, 61_000]}
    >>> sql = '''SELECT symbol, AVG(price) AS avg_price, _WINDOW_START AS ws FROM trades
    ...          GROUP BY symbol WINDOW TUMBLING(1m)'''
    >>> vs.query(sql, {"trades": trades}).to_pylist()
    [{'symbol': 'A', 'avg_price': 10.0, 'ws': 0}, {'symbol': 'B', 'avg_price': 20.0, 'ws': 0}, {'symbol': 'A', 'avg_price': 30.0, 'ws': 60000}]

    Rows the query sets aside (no event time, a value that does not fit, late) are not in the
    result: they are in ``result.dead_letters``, counted in ``result.stats``, and one
    ``DroppedRowsWarning`` says how many and why (docs/PYTHON_API.md, "vs.query").
    """
    result = _query(sql, sources, partitions, processor, env)
    _warn_set_aside(result)
    return result


def _query(sql: str, sources: Mapping[str, Any], partitions: int, processor: Optional[str],
           env: Optional[Mapping[str, str]]) -> Result:
    """``vs.query``'s rows, with ``dead_letters`` and ``stats`` set by whichever runs it."""
    statements = parse_script(sql, env)
    if needs_graph(statements):
        # a pipeline (docs/SQL.md §8): its keyed nodes run on ``partitions`` threads each
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        return run_query(statements, statements[0].sql, sources, partitions)
    eng = None
    if processor is None and partitions > 1:  # (processor="v2" asks for the job server itself)
        eng = _as_one_partition(statements[0], sources, env)
        if eng is not None:
            processor, partitions = "v1", 1
    processor = processor or ("v2" if partitions > 1 else "v1")
    if processor == "v2":
        return run_partitioned(sql, sources, partitions=partitions, env=env, statements=statements)
    if processor != "v1":
        raise ValueError("processor is 'v1' (one engine in this thread) or 'v2' (the job server)")
    if partitions != 1:
        raise ValueError("the V1 processor runs one partition; use processor='v2'")
    eng = eng or _engine.Engine(sql, env=env, statement=statements[0])
    data = _pick_source(eng, sources)
    result = Result(pa.schema([]))
    first = True
    read = 0  # rows read from the source, set-aside ones included (Result.stats)
    for rb in _morsels(to_record_batches(data)):
        read += rb.num_rows
        r = eng.push(eng.source, rb)
        r.batches  # rows the fast path holds compiled become Arrow now: the input can go
        if first:
            result = Result(r.schema)
            first = False
        result.extend(r)
        if eng.plan.limit is not None and eng._emitted >= eng.plan.limit:
            break
    if eng.plan is None:
        raise ValueError(f"source '{eng.source}' gave no record batch: its schema is unknown")
    tail = eng.flush()
    result.extend(tail)
    result.schema = eng.out_schema
    # rows emitted before a NULL-typed column got its type (velostream.binding) join the final types
    result.batches = [conform(rb, eng.out_schema) for rb in result.batches]
    result.dead_letters = eng.dead_letters
    result.stats = query_stats(read, len(result), eng.stats["late_records"],
                               eng.stats["failed_records"])
    return result


def _as_one_partition(statement: ast.Statement, sources: Mapping[str, Any],
                      env: Optional[Mapping[str, str]]) -> Optional[_engine.Engine]:
    """The engine to run this query as one partition when the V2 job would run it exactly so: a
    row-by-row plan (no state to partition, strategy ``round_robin``) over in-memory batches (a
    table or a list of record batches) none larger than ``partition_threads.INLINE_ROWS``, each
    of which the job would push through its own engine in its own thread. ``vs.query`` then
    runs it without the job's machinery around it, which is all the job would add (S0:
    docs/PERFORMANCE.md, "Session 12"). None: run the job. The engine returned has its plan
    bound by the first batch and nothing else done."""
    eng = _engine.Engine(statement.sql, env=env, statement=statement)
    try:
        data = _pick_source(eng, sources)
    except Exception:  # noqa: BLE001 - the run itself reports it
        return None
    if isinstance(data, pa.Table):
        batches = data.to_batches()
    elif isinstance(data, list) and data and all(type(b) is pa.RecordBatch for b in data):
        batches = data
    else:
        return None
    if not batches or any(b.num_rows > INLINE_ROWS for b in batches):
        return None
    try:
        eng.bind_input(batches[0])
    except Exception:  # noqa: BLE001 - the run itself reports it
        return None
    if eng.plan.partitioning.strategy != "round_robin":
        return None
    # the run binds the first batch again: what binding set aside is set aside then, once
    eng.dead_letters.clear()
    eng.stats["failed_records"] = 0
    return eng


# the reason the engine gives a late row (exec/pipeline.py, Pipeline._late)
_LATE = "late"


def _warn_set_aside(result: Result) -> None:
    """One ``DroppedRowsWarning`` when ``vs.query`` set rows aside: a one-shot call that quietly
    returns fewer rows than it was given is easy to mistake for a complete answer.

    Late rows warn too. Dropping them is the documented streaming rule (docs/SQL.md, "Late
    data"), but over a finite table nothing else tells the caller that rows are missing, and
    the fix (``allowed.lateness``) is one WITH option away: the warning names it."""
    dead = result.dead_letters
    if not dead:
        return
    counts: dict[str, int] = {}  # reason -> rows, in the order first found
    for reason, rows in dead:
        counts[reason] = counts.get(reason, 0) + rows.num_rows
    total = sum(counts.values())
    parts = []
    for reason, n in counts.items():
        part = f"{n} {reason!r}"
        if reason == _LATE:
            part += (" (their windows had closed when they arrived; WITH ('allowed.lateness' "
                     "= '1m') keeps rows up to a minute late)")
        parts.append(part)
    warnings.warn(
        f"vs.query set {total} row{'s' if total != 1 else ''} aside, not in the result: "
        f"{'; '.join(parts)}. The rows are in Result.dead_letters, the counts in Result.stats.",
        DroppedRowsWarning, stacklevel=3)


def explain(sql: str, sources: Optional[Mapping[str, Any]] = None, *,
            env: Optional[Mapping[str, str]] = None, partitions: int = 1) -> str:
    """A readable plan: operators, emission mode and partitioning strategy (and why).

    Without ``sources`` the column types are unknown and shown as NULL (any). A pipeline's
    graph shows each node's exchange as it would run at ``partitions``.

    >>> import velostream as vs
    >>> print(vs.explain("SELECT k, COUNT(*) AS n FROM s GROUP BY k", {"s": {"k": ["a"]}}))
    Source: s
    Aggregate: keys [k]
      __a0 = COUNT_STAR(*) -> INT64
    Emit: CHANGES
    Output: k STRING, n INT64
    Partitioning: hash(k): GROUP BY keys: each group lives in one partition
      or scan: each step in contiguous pieces, one per thread, every row's aggregates completed by the state before its piece, when the job's first batch shows few groups (docs/ARCHITECTURE.md)
    """
    statements = parse_script(sql, env)
    if needs_graph(statements):
        flow = Dataflow(statements, statements[0].sql, partitions)
        given = {}
        for name, data in (sources or {}).items():
            rows = rows_known(data)
            if rows is not None:
                flow.source_rows[name.lower()] = rows
            rb = next(iter(to_record_batches(data)), None)
            if rb is not None:
                given[name.lower()] = rb.schema
        flow.bind_for_explain(given)
        return flow.explain()
    schemas = None
    if sources is not None:
        schemas = {}
        for name, data in sources.items():
            rb = next(iter(to_record_batches(data)), None)
            if rb is not None:
                # bound as the query binds its first batch (velostream.binding): a column of a
                # type velostream does not take is left out, or the clear error if it is read
                binder = SourceBinder(name)
                binder.bind(rb.slice(0, 0))
                check_left_out(statements[0].sql, statements, name, binder.left_out)
                schemas[name] = binder.sql_schema()
    return explain_plan(statements[0], schemas)
