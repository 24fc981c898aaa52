"""A pipeline as a graph of operators (docs/SQL.md §8, docs/ARCHITECTURE.md).

``Dataflow`` turns the statements of one SQL text (``CREATE STREAM x AS ...``, ``CREATE TABLE``,
CTEs, subqueries in FROM, UNION ALL, ORDER BY, top-N and deduplication, declared sources) into a
DAG of operators (``velostream.exec.operators``) and runs it: a batch from a source flows through
the graph in one *step*, node by node in topological order; at the end of a step every node learns
its inputs' watermark, so a window downstream closes in the same step as the window upstream that
completes it.

At N partitions each node keeping state per key runs on every partition behind an exchange
that hashes its rows on its keys (``partitioned.py``); the step still runs node by node.

Every relation is a node. A FROM name not defined in the text is an external source; each name is
visible after its definition. Derived rows carry their event time in the hidden ``_TIMESTAMP``
column (``operators.base.EVENT_TIME``) so the next statement's windows place them where their
source rows were.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pyarrow as pa

from .._lazy import pc  # imported when first used: see the module
from ..batch import Batch, StringDict
from ..binding import conform_types
from ..engine import Watermark, _AnySchema, _morsels
from ..errors import SqlError, UnsupportedError
from ..sql import ast
from .operators.base import EVENT_TIME, INT64_MIN, RelationSchema, sql_schema, visible
from .operators.dedup import Deduplicate
from .operators.sort import SortEmission
from .operators.stage import SelectStage
from .operators.top_n import WindowTopN
from .operators.union import UnionAll
from .partitioned import (Parallel, PartitionedOperator, PartitionedPipeline, exchange_line,
                          restore_operator)


INT64_MAX = 2 ** 63 - 1
OPEN = pa.schema([])  # a source's schema for explain without data (see bind_for_explain)


@dataclass(eq=False)
class Node:
    """One relation of the graph and the operator computing it."""
    name: str                       # the relation's name ('' for an anonymous one)
    kind: str                       # source | select | union | sort | top_n | dedup | join
    op: Any = None
    inputs: list["Node"] = field(default_factory=list)
    consumers: list[tuple["Node", int]] = field(default_factory=list)
    schema: Optional[pa.Schema] = None
    hidden: tuple = ()              # columns readers do not see (the derived event time)
    table_key: Optional[list[str]] = None  # a TABLE: its key columns (docs/SQL.md §8)
    group_key: Optional[list[str]] = None  # a GROUP BY's output key columns (a table's if named so)
    id: int = 0
    windowed: bool = False          # rows are a window's (their event time is its end - 1)
    changes_key: Optional[list[str]] = None  # a windowed aggregate emitting changes: its groups
    window_columns: tuple = ()      # output columns holding _WINDOW_START / _WINDOW_END
    declared: Optional[ast.Statement] = None  # a declared source's CREATE statement
    watermark: int = INT64_MIN
    pos: Any = None
    ready: bool = False             # the operator is built (its inputs' schemas were known)
    sort_spec: Any = None           # a sort: (ORDER BY items, the select items they name)
    rn_place: Any = None            # top_n / dedup: where the row number column goes
    time_column: Optional[str] = None  # dedup: the ORDER BY column, an event time
    join: Any = None                # a join: (ast.Join, left alias, right alias, temporal)
    qualify: Any = None             # a SELECT over a join: the sides' aliases (see _qualify)
    binder: Any = None              # a source: its SourceBinder (stream_rows, _table_rows)
    clock: Any = None               # a source: its event-time Watermark (_source_time)
    broadcast: Optional[int] = None  # a join: its input sent whole to every partition


def needs_graph(statements: list[ast.Statement]) -> bool:
    """Whether the text needs the graph, or is one SELECT the engine runs directly."""
    if len(statements) != 1:
        return True
    s = statements[0]
    return (s.declared or bool(s.ctes) or bool(s.union_all) or s.create_kind == "TABLE"
            or s.select.source.query is not None or bool(s.select.order_by)
            or bool(s.select.joins) or s.select.source.as_of is not None)


class Dataflow:
    """The graph of one SQL text, and its run: ``step(source, batch)`` takes one batch through
    every node and returns what each emitted; ``step(None, None, final=True)`` closes everything
    at the end of the input (``GraphEngine`` and ``run_query`` drive it)."""

    def __init__(self, statements: list[ast.Statement], sql: str, partitions: int = 1):
        self.sql = sql
        self.statements = statements
        # the job's partitions: a node keeping state per key runs on each (exec/partitioned.py)
        self.parallel = Parallel(partitions)
        # rows of a source known before it is read (a table given to vs.query): a small table
        # is broadcast to a join's partitions instead of hashed (_bind_join)
        self.source_rows: dict[str, int] = {}
        self.nodes: list[Node] = []
        self.relations: dict[str, Node] = {}     # lower-cased name -> node
        self.sources: dict[str, Node] = {}       # external and declared sources
        self.properties: dict[str, str] = {}
        self.result: Optional[Node] = None
        self.named_outputs: dict[str, Node] = {}  # CREATE STREAM|TABLE name AS ...
        self.explaining = False  # bound for explain only: sources bind from a schema, not a batch
        # every stage's strings: rows pass from stage to stage as codes (SelectStage.rows_out)
        self.strings = StringDict()
        self.written: set[str] = set()  # relations with a sink of their own (GraphEngine)
        self._waiting: dict = {}  # rows for a node not built yet: delivered once it is
        # set by a job (see GraphEngine): given to every stage's engine as it is built
        self.dead_letter_bad_rows = False
        # source rows whose values do not fit (stream_rows): their count and (reason, rows)
        self.failed_records = 0
        self.dead_letters: list[tuple[str, pa.RecordBatch]] = []
        self.watermark_by = None
        self.partitions = None
        self._merge_properties()
        try:  # a source's watermark is its largest event time less this (_source_time)
            self._lateness_ms = parse_duration_ms(self.properties.get("allowed.lateness", "0"))
        except ValueError as exc:
            raise SqlError(str(exc), sql) from None
        for i, stmt in enumerate(statements):
            self._statement(stmt, last=i == len(statements) - 1)
        if self.result is None:
            raise self._err(statements[-1].pos, "no query: the text only declares sources")

    # ----------------------------------------------------------------------------- building
    def _err(self, pos, msg) -> SqlError:
        return SqlError.at(self.sql, pos, msg)

    def _merge_properties(self) -> None:
        """All statements' WITH (...) properties form one job configuration (docs/SQL.md §8)."""
        seen: dict[str, tuple[str, Any]] = {}
        for stmt in self.statements:
            for k, v in stmt.properties:
                if k in seen and seen[k][0] != v:
                    raise self._err(stmt.pos, f"property '{k}' is given two values: "
                                              f"'{seen[k][0]}' and '{v}'")
                seen[k] = (v, stmt.pos)
                self.properties[k] = v

    def _add(self, node: Node) -> Node:
        node.id = len(self.nodes)
        for port, inp in enumerate(node.inputs):
            inp.consumers.append((node, port))
        self.nodes.append(node)
        return node

    def _statement(self, stmt: ast.Statement, last: bool) -> None:
        name = stmt.create_name
        if name is not None and name.lower() in self.relations:
            raise self._err(stmt.pos, f"'{name}' is already defined")
        if stmt.declared:
            node = self._add(Node(name, "source", declared=stmt, pos=stmt.pos,
                                  table_key=list(stmt.primary_key) or None))
            self.relations[name.lower()] = node
            self.sources[name.lower()] = node
            return
        if stmt.create_kind is None and not last:
            raise self._err(stmt.pos, "only the last statement may be a plain SELECT; name this "
                                      "one with CREATE STREAM name AS SELECT ... so that a later "
                                      "statement can read it")
        node = self._query(stmt.query, {}, name or "")
        if stmt.create_kind == "TABLE":
            if node.table_key is None:
                node.table_key = node.group_key
            if node.table_key is None:
                raise self._err(stmt.pos, f"CREATE TABLE {name} AS SELECT ...: a table is keyed "
                                          f"by its GROUP BY columns; add GROUP BY (or use CREATE "
                                          f"STREAM)")
        elif node.table_key is not None and stmt.create_kind == "STREAM":
            node.table_key = None  # CREATE STREAM over a changelog: its rows, as a stream
        if name is not None:
            node.name = name
            self.relations[name.lower()] = node
            self.named_outputs[name.lower()] = node
        self.result = node

    def _query(self, q: ast.Query, ctes: dict, name: str) -> Node:
        ctes = dict(ctes)
        for cte in q.ctes:
            if cte.name.lower() in ctes:
                raise self._err(cte.pos, f"duplicate WITH query name '{cte.name}'")
            ctes[cte.name.lower()] = self._query(cte.query, ctes, cte.name)
        selects = [q.select] + list(q.union_all)
        if len(selects) == 1:
            return self._select(q.select, ctes, name)
        # ORDER BY, LIMIT and OFFSET after the last SELECT of a UNION ALL apply to the whole union
        last = selects[-1]
        order, limit, offset = last.order_by, last.limit, last.offset
        selects[-1] = dataclasses.replace(last, order_by=(), limit=None, offset=0)
        branches = [self._select(s, ctes, "") for s in selects]
        node = self._add(Node(name, "union", UnionAll(self.sql, [s.pos for s in selects],
                                                       len(branches)),
                              inputs=branches, pos=q.pos, ready=True))
        if order:
            node = self._sort(node, order, [], last.pos)
        if limit is not None or offset:  # the union's first rows
            node = self._first_rows(node, limit, offset, last.pos)
        return node

    def _input(self, ref: ast.TableRef, ctes: dict) -> Node:
        if ref.query is not None:
            return self._query(ref.query, ctes, ref.alias or "")
        key = ref.name.lower()
        if key in ctes:
            return ctes[key]
        if key in self.relations:
            return self.relations[key]
        node = self.sources.get(key)
        if node is None:
            node = self._add(Node(ref.name, "source", pos=ref.pos))
            self.sources[key] = node
        return node

    def _select(self, sel: ast.Select, ctes: dict, name: str) -> Node:
        if sel.joins:
            return self._join_select(sel, ctes, name)
        pattern = self._row_number_form(sel)
        if pattern is not None:
            return self._top_n_or_dedup(sel, pattern, ctes, name)
        inp = self._input(sel.source, ctes)
        return self._stage(sel, inp, name)

    # -------------------------------------------------------------------------------- joins
    def _join_select(self, sel: ast.Select, ctes: dict, name: str) -> Node:
        """``FROM a JOIN b ON ... [JOIN c ON ...]``: a join node per JOIN, each joining the rows
        of the ones before (a left-deep chain), and the SELECT over the last one's rows
        (docs/SQL.md §9). Each join's kind, keys and time bound are decided when both sides'
        columns are known."""
        left = self._input(sel.source, ctes)
        la = (sel.source.alias or sel.source.name)
        aliases = [la]
        for j in sel.joins:
            right = self._input(j.right, ctes)
            ra = (j.right.alias or j.right.name)
            if any(a.lower() == ra.lower() for a in aliases):
                raise self._err(j.right.pos, f"both sides of the join are called '{ra}': give "
                                             f"one an alias")
            table = right.table_key is not None or j.right.as_of is not None
            if table and j.kind not in ("INNER", "LEFT"):
                raise UnsupportedError.at(self.sql, j.pos, f"a {j.kind} JOIN of a table: a "
                                          f"stream joins a table INNER or LEFT (docs/SQL.md §9)")
            left = self._add(Node("", "join", None, inputs=[left, right], pos=j.pos,
                                  join=(j, la, ra, table, sel)))
            aliases.append(ra)
        # the join's rows are a stream: the SELECT over them filters, projects, aggregates and
        # windows them like any other (their event time: the later of the two rows')
        outer = dataclasses.replace(sel, joins=(), source=ast.TableRef(
            f"#{left.id}", None, pos=sel.source.pos))
        top = self._stage(outer, left, name)
        (top if top.kind == "select" else top.inputs[0]).qualify = tuple(aliases)
        return top

    def _stage(self, sel: ast.Select, inp: Node, name: str) -> Node:
        order = sel.order_by
        # with ORDER BY, LIMIT (and OFFSET) keeps the first rows of the sorted emissions: it
        # comes after the sort, as a SELECT * ... LIMIT over it (as a UNION ALL's does), not
        # inside the stage
        limit, offset = (sel.limit, sel.offset) if order else (None, 0)
        sel = dataclasses.replace(sel, order_by=(), limit=None if order else sel.limit,
                                  offset=0 if order else sel.offset,
                                  source=dataclasses.replace(sel.source, name=_rel_id(inp),
                                                             query=None))
        stmt = ast.Statement(select=sel, properties=tuple(self.properties.items()), sql=self.sql,
                             pos=sel.pos)
        aggregate = bool(sel.group_by) or sel.window is not None or any(
            _has_aggregate(i.expr) for i in sel.items) or sel.having is not None
        if inp.table_key is not None and (aggregate or _has_over(sel)):
            raise UnsupportedError.at(self.sql, sel.pos, f"'{inp.name}' is a table: aggregating "
                                      f"or windowing a table's changes is not supported yet; read "
                                      f"it with a plain SELECT (or join it, docs/SQL.md §9)")
        node = self._add(Node(name, "select", SelectStage(stmt, _rel_id(inp),
                                                            inp.kind != "source", self.parallel),
                              inputs=[inp], pos=sel.pos))
        node.windowed = sel.window is not None
        if aggregate and sel.group_by:
            node.group_key = _group_outputs(sel)
            if node.windowed:
                node.window_columns = _window_outputs(sel)
                emit = sel.emit or "FINAL"
                if emit == "CHANGES":
                    node.changes_key = node.group_key
        elif inp.table_key is not None and not aggregate:
            kept = _kept_columns(sel, inp.table_key)
            node.table_key = kept  # a filter / projection of a table keeps its key when it can
        if order:
            node = self._sort(node, order, sel.items, sel.pos)
            if limit is not None or offset:
                node = self._first_rows(node, limit, offset, sel.pos)
        return node

    def _first_rows(self, node: Node, limit, offset: int, pos) -> Node:
        """``SELECT * FROM node LIMIT n OFFSET m``, under node's name: the rows it emits after
        its first m, n of them."""
        star = ast.Select(items=(ast.SelectItem(ast.Star(), pos=pos),),
                          source=ast.TableRef(_rel_id(node), pos=pos), limit=limit, pos=pos,
                          offset=offset)
        node.name, name = "", node.name
        return self._stage(star, node, name)

    def _sort(self, node: Node, order, items, pos) -> Node:
        keys = [(o.expr, o.descending, o.nulls_first) for o in order]
        out = self._add(Node(node.name, "sort", SortEmission([], node.windowed), inputs=[node],
                             pos=pos))
        out.windowed = node.windowed
        out.table_key, out.group_key = node.table_key, node.group_key
        out.changes_key = node.changes_key
        out.window_columns = node.window_columns
        out.sort_spec = (keys, items)
        node.name = ""
        return out

    # ------------------------------------------------------------------ ROW_NUMBER's forms
    def _row_number_form(self, sel: ast.Select):
        """``SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (PARTITION BY p ORDER BY c) AS rn
        FROM x) WHERE rn <= N``: (inner select, index of the rn item, N), or None."""
        ref = sel.source
        if ref.query is None or ref.query.union_all or ref.query.ctes:
            return None
        inner = ref.query.select
        idx = [i for i, it in enumerate(inner.items)
               if isinstance(it.expr, ast.FunctionCall) and it.expr.name == "ROW_NUMBER"
               and it.expr.over is not None and it.expr.over.buffer_rows is None
               and it.expr.over.frame is None]  # a written frame: a running ROW_NUMBER
        if not idx:
            return None
        item = inner.items[idx[0]]
        rn = item.alias or "row_number"
        limit = _rn_limit(sel.where, rn)
        if limit is None:
            raise UnsupportedError.at(self.sql, sel.pos, "a ROW_NUMBER() subquery needs an outer "
                                      f"WHERE {rn} <= N (or {rn} < N, {rn} = 1): supported are "
                                      + TOP_N_FORMS)
        return inner, idx[0], limit

    def _top_n_or_dedup(self, sel: ast.Select, pattern, ctes: dict, name: str) -> Node:
        inner, idx, limit = pattern
        call = inner.items[idx].expr
        over = call.over
        rn_name = inner.items[idx].alias or "row_number"
        if call.args:
            raise self._err(call.pos, "ROW_NUMBER takes no argument")
        if not over.order_by:
            raise UnsupportedError.at(self.sql, over.pos, "ROW_NUMBER() OVER (...) needs ORDER BY: "
                                      "supported are " + TOP_N_FORMS)
        x = self._input(inner.source, ctes)
        rest = [it for i, it in enumerate(inner.items) if i != idx]
        has_star_before = any(isinstance(it.expr, ast.Star) for it in inner.items[:idx])
        has_star_after = any(isinstance(it.expr, ast.Star) for it in inner.items[idx + 1:])
        projected = dataclasses.replace(inner, items=tuple(rest)) if rest else None
        if projected is None:
            raise self._err(inner.pos, "the ROW_NUMBER() subquery selects nothing but the row "
                                       "number")
        p = self._stage(projected, x, "")
        part = [_column_name(e, self.sql, "PARTITION BY") for e in over.partition_by]
        order = [(_column_name(o.expr, self.sql, "ORDER BY"), o.descending) for o in over.order_by]
        window_col = x.window_columns and any(c in x.window_columns for c in part)
        if x.windowed and window_col:
            op = WindowTopN(part, order, limit, rn_name, 0, x.changes_key)
            kind = "top_n"
        elif limit == 1 and len(order) == 1 and not order[0][1]:
            op = Deduplicate(part, rn_name, 0)
            kind = "dedup"
        else:
            raise UnsupportedError.at(self.sql, over.pos, "this ROW_NUMBER() form is not "
                                      "supported; supported are " + TOP_N_FORMS)
        node = self._add(Node("", kind, op, inputs=[p], pos=over.pos))
        node.windowed = p.windowed or x.windowed
        node.rn_place = (idx, len(inner.items), has_star_before, has_star_after)
        if kind == "dedup" and order[0][0].upper() not in (EVENT_TIME, "TIMESTAMP"):
            node.time_column = order[0][0]  # must be a TIMESTAMP column: checked at _bind
        outer = dataclasses.replace(sel, source=dataclasses.replace(sel.source, query=None))
        return self._stage(outer, node, name)

    # ------------------------------------------------------------------ event time of rows
    def _with_event_time(self, node: Node, schema: RelationSchema) -> None:
        """A stage read by another node (or a window's, for its sort, top-N or table key) carries
        its rows' event time (docs/SQL.md §8): ``_WINDOW_END - 1`` for a window's rows, else the
        input row's, hidden from its readers' SELECT *."""
        stage: SelectStage = node.op
        sel = stage.statement.select
        if not (node.consumers or node.windowed) or sel.distinct:
            return  # DISTINCT: a row stands for several input rows; it has no one time
        names = {(_out_name(i) or "").upper() for i in sel.items}
        star = any(isinstance(i.expr, ast.Star) and i.expr.table is None for i in sel.items)
        if EVENT_TIME in names or (star and EVENT_TIME in schema
                                   and EVENT_TIME not in schema.hidden and not node.windowed):
            return  # the rows show their time themselves
        if sel.window is not None:
            expr = ast.BinaryOp("-", ast.Column("_WINDOW_END"), ast.Literal(1, "INTEGER"))
        elif EVENT_TIME not in schema:
            return  # the input's rows have no event time: neither have these
        elif sel.group_by or any(_has_aggregate(i.expr) for i in sel.items):
            expr = ast.FunctionCall("LAST_VALUE", (ast.Column(EVENT_TIME),))
        else:
            expr = ast.Column(EVENT_TIME)
        sel = dataclasses.replace(sel, items=sel.items + (ast.SelectItem(expr, EVENT_TIME),))
        stage.statement = dataclasses.replace(stage.statement, select=sel)
        node.hidden = (EVENT_TIME,)

    # ------------------------------------------------------------------------------ binding
    def bind_source(self, name: str, schema: Optional[pa.Schema]) -> None:
        """The schema of source ``name`` is known (its first batch's, or declared)."""
        node = self.sources[name.lower()]
        if node.schema is not None:
            return
        if node.declared is not None and node.declared.columns is not None:
            from ..batch import arrow_type_of
            from .expressions import _cast_type
            node.schema = pa.schema([(c.name, arrow_type_of(_cast_type(c.type)))
                                     for c in node.declared.columns])
            if node.table_key is not None:  # its rows are bound here (_table_rows): their types
                node.schema = self._table_binder(node).fixed
            if node.table_key is not None and EVENT_TIME not in node.schema.names:
                # a table's rows are versions: their event time says from when (hidden)
                node.schema = node.schema.append(pa.field(EVENT_TIME, pa.int64()))
                node.hidden = (EVENT_TIME,)
        else:
            node.schema = schema
        node.ready = True
        self._bind_ready()

    def bind_for_explain(self, schemas: dict) -> None:
        """Bind every source to its schema in ``schemas`` (lower-cased name -> pa.Schema), or to
        an open one (every column known, typed NULL) when it has none."""
        self.explaining = True
        for key, node in self.sources.items():
            if node.schema is None:
                given = schemas.get(key)
                if given is None and (node.declared is None or node.declared.columns is None):
                    node.schema = OPEN
                    node.ready = True
                else:
                    if given is not None and node.declared is None:
                        # bound as its first batch would be (velostream.binding): a column of a
                        # type velostream does not take is left out, or the error if read
                        from ..binding import SourceBinder, check_left_out
                        binder = SourceBinder(node.name)
                        binder.bind(pa.RecordBatch.from_pylist([], schema=given))
                        check_left_out(self.sql, self.statements, node.name, binder.left_out)
                        given = binder.fixed
                    self.bind_source(node.name, given)
        self._bind_ready()

    def _table_rows(self, node: Node, rb: pa.RecordBatch) -> pa.RecordBatch:
        """A declared table's rows in its declared columns (``SchemaMismatch`` for a column of
        another type), with the system columns a table keeps: ``_TIMESTAMP``, and from a Kafka
        topic ``_KEY`` and ``_DELETED`` (a tombstone deletes its key: its key column, NULL in
        the row, comes from the message key)."""
        binder = self._table_binder(node)
        names = {n.lower(): n for n in rb.schema.names}
        cols, fields = [], []
        for f in binder.fixed:
            have = names.get(f.name.lower())
            cols.append(rb.column(have) if have is not None else pa.nulls(rb.num_rows, f.type))
            fields.append(pa.field(f.name, cols[-1].type))
        body = binder.bind(pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields)))
        out = dict(zip(body.schema.names, body.columns))
        if "_DELETED" in rb.schema.names and "_KEY" in rb.schema.names \
                and len(node.table_key) == 1:
            k = node.table_key[0]
            col = out[k]
            deleted = rb.column("_DELETED")
            key = rb.column("_KEY").cast(col.type) if not col.type.equals(pa.string()) \
                else rb.column("_KEY")
            out[k] = pc.if_else(pc.and_(deleted, col.is_null()), key, col)
        for sys_col in (EVENT_TIME, "_KEY", "_DELETED"):
            if sys_col in rb.schema.names and sys_col not in out:
                out[sys_col] = rb.column(sys_col)
        if EVENT_TIME not in out:  # no time: a version current from the start
            out[EVENT_TIME] = pa.nulls(rb.num_rows, pa.int64())
        return pa.RecordBatch.from_pydict(out)

    def stream_rows(self, node: Node, rb: pa.RecordBatch) -> pa.RecordBatch:
        """A stream source's batch through the one binding step every source's batches take
        (velostream.binding, docs/SQL.md §2 "Types at the boundary"): in the types its first
        batch (or its declaration) fixed, widened where nothing is lost, else SchemaMismatch
        naming the column and both types, before any node sees it. A SELECT's engine binds
        again (a no-op for a batch already bound); a join or a union reads the batch as bound
        here. A declared stream's columns are bound; the others (system columns such as
        ``_TIMESTAMP``) pass as they are."""
        if node.binder is None:
            from ..binding import SourceBinder
            declared = None
            if node.declared is not None and node.declared.columns is not None:
                from .expressions import _cast_type
                declared = {c.name: _cast_type(c.type) for c in node.declared.columns}
            node.binder = SourceBinder(node.name, declared)
        binder = node.binder
        first = binder.fixed is None
        bound = binder.bind(rb)
        if first and binder.left_out:  # a column of a type the engine does not take: unread?
            from ..binding import check_left_out
            try:
                check_left_out(self.sql, self.statements, node.name, binder.left_out)
            except BaseException:
                binder.fixed = None
                raise
        # values that do not fit the type the engine holds them in (a uint64 above 2^63-1, a
        # decimal of more than 18 digits): bad records, counted and dead-lettered once here,
        # before any node (a join, a union, every stage reading the source) sees them
        kept, rejected, keep = binder.set_aside(bound)
        if rejected is not None:
            self.failed_records += rejected.num_rows
            self.dead_letters.append((binder.bad_reason, rejected))
            rb = kept if bound is rb else rb.filter(keep)
            bound = kept
        if node.declared is None or node.declared.columns is None or bound is rb:
            return bound
        named = {n.lower() for n in bound.schema.names}
        extra = [i for i, n in enumerate(rb.schema.names) if n.lower() not in named]
        if not extra:
            return bound
        return pa.RecordBatch.from_arrays(
            bound.columns + [rb.column(i) for i in extra],
            schema=pa.schema(list(bound.schema) + [rb.schema.field(i) for i in extra]))

    @staticmethod
    def _table_binder(node: Node):
        if node.binder is None:
            from ..binding import SourceBinder
            from .expressions import _cast_type
            node.binder = SourceBinder(node.name, {c.name: _cast_type(c.type)
                                                   for c in node.declared.columns})
        return node.binder

    def table_sources(self) -> set[str]:
        """Sources read as tables: declared so, or feeding the table side of a temporal join."""
        out = {k for k, n in self.sources.items() if n.table_key is not None}
        for n in self.nodes:
            if n.kind == "join" and n.join[3]:
                todo = [n.inputs[1]]
                while todo:
                    x = todo.pop()
                    if x.kind == "source":
                        out.add(x.name.lower())
                    todo += x.inputs
        return out

    def _bind_ready(self) -> None:
        """Build every operator whose inputs' schemas are known."""
        for node in self.nodes:
            if node.kind == "source" or node.schema is not None:
                continue
            known = all(i.schema is not None for i in node.inputs)
            if node.kind == "union":  # ready from the start: holds rows until it knows its types
                if known:
                    node.schema = node.op.bind([i.schema for i in node.inputs],
                                               [i.hidden for i in node.inputs])
                    node.hidden = (EVENT_TIME,) if node.op.keep_time else ()
            elif not node.ready and known:
                self._bind(node)

    def _bind(self, node: Node) -> None:
        src = node.inputs[0]
        node.ready = True
        if node.kind == "select":
            stage: SelectStage = node.op
            if node.qualify is not None:
                self._qualify(node, src)
            if src.kind == "select" and src.op.rows_out:  # engine batches: the engine's types
                schema = RelationSchema(dict(src.op.plan.output_schema), src.hidden)
            else:
                schema = sql_schema(src.schema, src.hidden, dates=src.kind != "source")
            stage.rows_out = (bool(node.consumers) and node is not self.result
                              and all(c.kind == "select" for c, _ in node.consumers)
                              and node.name.lower() not in self.written)
            self._with_event_time(node, schema)
            if src.kind == "source" and src.schema is OPEN:
                stage.bind(_AnySchema(), self.strings)  # explain without data: columns typed NULL
            elif src.kind == "source" and src.declared is None and not self.explaining:
                stage.bind(None, self.strings)  # binds at the first batch, as vs.query's does
            else:
                declared = None
                if src.kind == "source" and src.declared is not None:  # as declared
                    from .expressions import _cast_type
                    declared = RelationSchema({c.name: _cast_type(c.type)
                                               for c in src.declared.columns})
                # a derived relation's columns in their Arrow types: one passing through
                # leaves in the type it came in with (velostream.binding, docs/SQL.md "Types
                # at the boundary"), as in the one-statement query
                stage.bind(declared if declared is not None else schema, self.strings,
                           src.schema if src.kind != "source" else None)
            eng = stage.engine
            eng.dead_letter_bad_rows = self.dead_letter_bad_rows
            if eng.pipeline is not None:
                eng.pipeline.dead_letter_bad_rows = self.dead_letter_bad_rows
            if src.kind == "source":
                eng.watermark_by = self.watermark_by
                if self.partitions is not None:
                    eng.source_partitions(*self.partitions)
            node.schema = stage.schema
        elif node.kind == "join":
            self._bind_join(node)
        elif node.kind == "sort":
            node.schema, node.hidden = src.schema, src.hidden
            keys_ast, items = node.sort_spec
            node.op.keys = [(_order_name(e, items, src, self.sql), d, nf)
                            for e, d, nf in keys_ast]
        elif node.kind in ("top_n", "dedup"):
            idx, n_items, star_before, star_after = node.rn_place
            names = [n for n in src.schema.names if n not in src.hidden]
            pos = idx if not star_before else (len(names) - (n_items - idx - 1)
                                               if not star_after else len(names))
            node.op.rn_pos = pos
            cols = node.op.partition if node.kind == "top_n" else node.op.keys
            for c in cols + [c for c, _ in getattr(node.op, "order", [])]:
                if c not in src.schema.names:
                    raise self._err(node.pos, f"'{c}' is not a column of the ROW_NUMBER() "
                                              f"subquery")
            if node.time_column is not None:
                t = src.schema.field(node.time_column).type if node.time_column in \
                    src.schema.names else None
                if t is None or not pa.types.is_timestamp(t):
                    raise UnsupportedError.at(self.sql, node.pos, f"ORDER BY {node.time_column}: "
                                              f"deduplication orders by the event time (a "
                                              f"TIMESTAMP column or _TIMESTAMP); supported are "
                                              + TOP_N_FORMS)
            fields = list(src.schema)
            fields.insert(pos, pa.field(node.op.rn_name, pa.int64()))
            node.schema, node.hidden = pa.schema(fields), src.hidden
            if self.parallel.n > 1 and cols:  # each key's rows in one partition
                op = node.op
                if node.kind == "top_n":
                    def make():
                        return WindowTopN(op.partition, op.order, op.limit, op.rn_name,
                                          op.rn_pos, op.changes_key)
                else:
                    def make():
                        return Deduplicate(op.keys, op.rn_name, op.rn_pos)
                node.op = PartitionedOperator(op, make, self.parallel, [list(cols)])
        else:
            raise AssertionError(node.kind)

    def _bind_join(self, node: Node) -> None:
        from .join_plan import plan_join  # imported late: it builds on the planner
        j, la, ra, table, sel = node.join
        left, right = node.inputs
        if self.explaining:  # a side without data knows the columns the query names on it
            sides = []
            for side, (alias, inp) in enumerate(((la, left), (ra, right))):
                if inp.schema is OPEN:
                    inp = Node(inp.name, inp.kind, schema=_named_columns(sel, j, alias, side == 0))
                sides.append(inp)
            left, right = sides
        def make():
            return plan_join(self.sql, j, la, ra, table, left, right,
                             self.properties.get("allowed.lateness", "0"),
                             self._table_idle(right))
        node.op = op = make()
        # over partitions: both sides hashed on the keys, or a small table broadcast
        node.broadcast = 1 if table and self._small_table(right) else None
        if self.parallel.n > 1:
            node.op = PartitionedOperator(op, make, self.parallel, list(op.keys),
                                          list(op.key_types), node.broadcast)
        node.schema = node.op.schema
        node.hidden = (EVENT_TIME,)

    def _small_table(self, table: Node) -> bool:
        """Whether the table side of a temporal join is known to be small: every source it
        reads has a known row count, together at most ``join.broadcast.max.rows`` (131,072 by
        default, as DataFusion's threshold for a single-partition hash join)."""
        try:
            limit = int(self.properties.get("join.broadcast.max.rows", "131072"))
        except ValueError:
            raise self._err(table.pos, "'join.broadcast.max.rows' takes a number of rows") from None
        todo, rows = [table], 0
        while todo:
            x = todo.pop()
            if x.kind == "source":
                known = self.source_rows.get(x.name.lower())
                if known is None:
                    return False
                rows += known
            todo += x.inputs
        return rows <= limit

    def _table_idle(self, table: Node) -> Optional[str]:
        """The ``watermark.idle.ms`` property of the source a joined table is read from."""
        todo = [table]
        while todo:
            x = todo.pop()
            if x.kind == "source":
                return self.properties.get(f"{x.name}.watermark.idle.ms")
            todo += x.inputs
        return None

    def _qualify(self, node: Node, join: Node) -> None:
        """The SELECT over a join reads ``alias.column`` names: its column references (and
        ``*``) are rewritten to them; a name on both sides must be qualified."""
        from .join_plan import qualify_select
        stage: SelectStage = node.op
        sel = qualify_select(self.sql, stage.statement.select, node.qualify, join.schema,
                             join.hidden, join.op.residual_ast)
        stage.statement = dataclasses.replace(stage.statement, select=sel)

    # ------------------------------------------------------------------------------ running
    def step(self, source: Optional[str], batch: Optional[pa.RecordBatch],
             final: bool = False) -> dict[Node, list[pa.RecordBatch]]:
        """One step: ``batch`` from ``source`` (or none) through every node, then the
        watermarks; with ``final``, every node closes. Returns what each node emitted."""
        pending: dict[Node, list[tuple[int, pa.RecordBatch]]] = {}
        emitted: dict[Node, list[pa.RecordBatch]] = {}
        if source is not None:
            node = self.sources[source.lower()]
            if node.declared is not None and node.table_key is not None \
                    and node.declared.columns is not None:
                if node.schema is None:
                    self.bind_source(source, batch.schema)
                batch = self._table_rows(node, batch)
            else:
                batch = self.stream_rows(node, batch)
                if node.schema is None:
                    self.bind_source(source, batch.schema)
            node.watermark = max(node.watermark, self._source_time(node, batch))
            for c, port in node.consumers:
                pending.setdefault(c, []).append((port, batch))
        for node in self.nodes:
            if node.kind == "source":
                continue
            if not node.ready:  # an input's schema is still unknown (a join's other side)
                if pending.get(node):
                    self._waiting.setdefault(node, []).extend(pending.pop(node))
                continue
            out: list[pa.RecordBatch] = []
            for port, rb in self._waiting.pop(node, []) + pending.pop(node, []):
                out += node.op.push(port, rb)
            if node.kind == "join" and node.join[3]:  # a temporal join: stream and table apart
                out += node.op.on_watermarks(*(i.watermark for i in node.inputs))
            else:
                out += node.op.on_watermark(min(i.watermark for i in node.inputs))
            if final:
                out += node.op.close()
            node.watermark = max(node.watermark, node.op.watermark)
            if node.kind == "select" and node.schema is None:
                node.schema = node.op.schema  # bound at its first batch
                if node.schema is not None:
                    self._bind_ready()  # its readers can be built now
            out = [rb for rb in out if len(rb)]
            schema = node.op.schema if node.kind == "select" else node.schema
            if schema is not None:
                # every node's rows in its one output schema, whatever path made them (engine
                # batches between stages stay as they are): a column passing through keeps the
                # Arrow type it came in with (docs/SQL.md, "Types at the boundary")
                out = [conform_types(rb, schema) if isinstance(rb, pa.RecordBatch) else rb
                       for rb in out]
            emitted[node] = out
            for c, port in node.consumers:
                if out:  # engine batches get a column dict per reader: a reader adds columns
                    pending.setdefault(c, []).extend(
                        (port, rb if isinstance(rb, pa.RecordBatch) else Batch(dict(rb.columns),
                                                                              rb.length))
                        for rb in out)
        return emitted

    def _source_time(self, node: Node, batch: pa.RecordBatch) -> int:
        """A source's watermark after ``batch``: its largest event time less the lateness; of a
        source of independently ordered partitions (Kafka: ``watermark_by``), the smallest of
        its partitions' largest times, as a SELECT over it keeps it (engine.Watermark)."""
        if node.clock is None:
            node.clock = Watermark(self._lateness_ms)
            if self.partitions is not None:
                node.clock.track(*self.partitions)
        if EVENT_TIME not in batch.schema.names or batch.num_rows == 0:
            return node.clock.current
        col = batch.column(EVENT_TIME)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ms")).cast(pa.int64())
        elif not pa.types.is_integer(col.type):
            return node.clock.current
        parts = None
        if self.watermark_by is not None and self.watermark_by in batch.schema.names:
            parts = batch.column(self.watermark_by)
        if col.null_count:  # a row without event time does not move the watermark
            keep = col.is_valid()
            col = col.filter(keep)
            parts = None if parts is None else parts.filter(keep)
        if len(col):
            node.clock.stamp(col.to_numpy(zero_copy_only=False),
                             None if parts is None else parts.to_numpy(zero_copy_only=False))
        return node.clock.current

    def result_rows(self, emitted: dict) -> list[pa.RecordBatch]:
        node = self.result
        return visible(emitted.get(node, []), node.hidden)

    def result_schema(self) -> pa.Schema:
        node = self.result
        # a stage's schema as it is now (a column typed NULL so far may have got its type)
        schema = node.op.schema if node.kind == "select" else None
        schema = schema if schema is not None else node.schema
        if schema is None:
            return pa.schema([])
        return pa.schema([f for f in schema if f.name not in node.hidden])

    # ------------------------------------------------------------------------------ explain
    def explain(self) -> str:
        ids = {id(n): i for i, n in enumerate(self.nodes)}
        lines = []
        for i, n in enumerate(self.nodes):
            ins = ", ".join(f"#{ids[id(x)]}" for x in n.inputs) or "-"
            label = f"#{i} {n.kind}"
            if n.name:
                label += f" {n.name}"
            if n.table_key is not None:
                label += f" (table, key {', '.join(n.table_key)})"
            lines.append(f"{label}  <- {ins}")
            if n.kind == "select" and n.op.plan is not None:
                # a stage's plan, its partitioning shown as the exchange in front of it
                lines += ["    " + l for l in n.op.plan.explain().splitlines()
                          if not l.startswith("Partitioning:")]
                lines.append("    " + n.op.engine.exchange())
            elif n.kind != "source" and hasattr(n.op, "describe"):
                lines.append("    " + n.op.describe())
                lines.append("    " + self._exchange(n))
        lines.append(f"Result: #{ids[id(self.result)]}" if self.result is not None else "Result: -")
        n = self.parallel.n
        lines.append(f"Partitioning: {n} partition{'s' if n > 1 else ''}: each node keeping "
                     f"state per key runs on every partition behind its exchange; the others "
                     f"run once (docs/ARCHITECTURE.md)")
        return "\n".join(lines)

    @staticmethod
    def _exchange(node: Node) -> str:
        if isinstance(node.op, PartitionedOperator):
            return node.op.exchange()
        keys = {"join": lambda op: list(op.keys), "top_n": lambda op: [op.partition],
                "dedup": lambda op: [op.keys]}.get(node.kind)
        if keys is None:
            return "Exchange: gather: one partition (it orders or merges all its rows)"
        return exchange_line(keys(node.op), node.broadcast, 1)

    def close(self) -> None:
        """Stop the partitions' threads."""
        self.parallel.close()


# ------------------------------------------------------------------------------------ helpers
from ..planner import TOP_N_FORMS, AGGREGATES, _children, parse_duration_ms  # noqa: E402


def _named_columns(sel: ast.Select, j: ast.Join, alias: str, left: bool) -> pa.Schema:
    """For explain without data: the columns a query names on one side of its join (typed
    NULL; unqualified names go to the left side), and the event time every source record has
    (docs/SQL.md §3), which WITHIN and the temporal join read."""
    names: list[str] = []

    def walk(e):
        if isinstance(e, ast.Column):
            if (e.table is not None and e.table.lower() == alias.lower()) or (
                    e.table is None and left and not e.name.startswith("_WINDOW")):
                if e.name not in names:
                    names.append(e.name)
        for c in _children(e):
            walk(c)
    for part in [i.expr for i in sel.items] + [sel.where, sel.having, *(x.on for x in sel.joins),
                                               *sel.group_by]:
        if part is not None:
            walk(part)
    fields = [(n, pa.null()) for n in names if n.upper() != EVENT_TIME]
    return pa.schema(fields + [(EVENT_TIME, pa.timestamp("ms"))])


def _rel_id(node: Node) -> str:
    return node.name or f"#{node.id}"


def _has_aggregate(e) -> bool:
    if isinstance(e, ast.FunctionCall) and e.over is None and e.name in AGGREGATES:
        return True
    return any(_has_aggregate(c) for c in _children(e))


def _has_over(sel: ast.Select) -> bool:
    def has(e):
        if isinstance(e, ast.FunctionCall) and e.over is not None:
            return True
        return any(has(c) for c in _children(e))
    return any(has(i.expr) for i in sel.items)


def _out_name(item: ast.SelectItem) -> Optional[str]:
    if item.alias:
        return item.alias
    if isinstance(item.expr, ast.Column):
        return item.expr.name
    return None


def _group_outputs(sel: ast.Select) -> Optional[list[str]]:
    """The output names of the GROUP BY expressions (a table's key), or None when one is not
    selected."""
    out = []
    for g in sel.group_by:
        if isinstance(g, ast.Literal) and g.type == "INTEGER" and 1 <= g.value <= len(sel.items):
            g = sel.items[g.value - 1].expr  # GROUP BY 1
        name = next((_out_name(i) for i in sel.items if _out_name(i) and (
            i.expr == g or isinstance(g, ast.Column) and i.alias == g.name)), None)
        if name is None:
            return None
        out.append(name)
    for w in _window_outputs(sel):
        out.append(w)
    return out


def _window_outputs(sel: ast.Select) -> tuple:
    return tuple(_out_name(i) for i in sel.items if isinstance(i.expr, ast.Column)
                 and i.expr.name in ("_WINDOW_START", "_WINDOW_END") and _out_name(i))


def _kept_columns(sel: ast.Select, key: list[str]) -> Optional[list[str]]:
    if any(isinstance(i.expr, ast.Star) for i in sel.items):
        return list(key)
    out = []
    for k in key:
        name = next((_out_name(i) for i in sel.items if isinstance(i.expr, ast.Column)
                     and i.expr.name.lower() == k.lower()), None)
        if name is None:
            return None
        out.append(name)
    return out


def _rn_limit(where, rn: str) -> Optional[int]:
    """N of ``WHERE rn <= N`` / ``rn < N`` / ``rn = 1`` (also as one conjunct of an AND)."""
    if where is None:
        return None
    if isinstance(where, ast.BinaryOp) and where.op == "AND":
        return _rn_limit(where.left, rn) or _rn_limit(where.right, rn)
    if not (isinstance(where, ast.BinaryOp) and isinstance(where.left, ast.Column)
            and where.left.name.lower() == rn.lower() and isinstance(where.right, ast.Literal)
            and where.right.type == "INTEGER"):
        return None
    n = int(where.right.value)
    limit = {"<=": n, "<": n - 1, "=": n if n == 1 else None}.get(where.op)
    return limit if limit is not None and limit >= 1 else None


def _column_name(e, sql: str, what: str) -> str:
    if not isinstance(e, ast.Column):
        raise UnsupportedError.at(sql, getattr(e, "pos", None), f"{what} of ROW_NUMBER() takes "
                                  f"column names here")
    return e.name


def _order_name(e, items, src: Node, sql: str) -> str:
    names = [n for n in src.schema.names if n not in src.hidden]
    if isinstance(e, ast.Literal) and e.type == "INTEGER":
        k = int(e.value)
        if not 1 <= k <= len(names):
            raise SqlError.at(sql, getattr(e, "pos", None), f"ORDER BY position {k} is not in "
                              f"the select list (1 to {len(names)})")
        return names[k - 1]
    if isinstance(e, ast.Column) and e.table is None:
        for n in names:
            if n == e.name or (not e.quoted and n.lower() == e.name.lower()):
                return n
    for i, it in enumerate(items):
        if it.expr == e and not any(isinstance(x.expr, ast.Star) for x in items[:i]):
            return names[i]
    raise SqlError.at(sql, getattr(e, "pos", None), "ORDER BY takes a column of the select list "
                      f"(its name, alias or position); columns: {', '.join(names)}")


class GraphEngine:
    """``vs.Engine`` for a text that needs the graph (``needs_graph``): push batches from any
    of its sources, get the result relation's new rows. A job (``velostream.jobs.Job``) runs it
    as it runs one engine: the members below the public API are the ones a job uses."""

    def __init__(self, statements: list[ast.Statement], sql: str,
                 schemas: Optional[dict] = None, partitions: int = 1):
        self.flow = Dataflow(statements, sql, partitions)
        self.sql = sql
        self.statements = statements
        self.statement = statements[-1]
        self.counts = {"records_in": 0, "records_out": 0, "batches": 0}
        self.dead_letters: list[tuple[str, pa.RecordBatch]] = []
        # relations with a sink of their own besides the result (velostream run): name -> writer
        self._side_outputs: dict[str, Any] = {}
        self.current_source: Optional[str] = None  # see source
        if schemas:
            for name, cols in schemas.items():
                if name.lower() in self.flow.sources:
                    from ..batch import arrow_type_of
                    self.flow.bind_source(name, pa.schema([(c, arrow_type_of(t))
                                                           for c, t in cols.items()]))

    # -- public API -------------------------------------------------------------------------
    @property
    def sources(self) -> list[str]:
        return [n.name for n in self.flow.sources.values()]

    @property
    def out_schema(self) -> pa.Schema:
        return self.flow.result_schema()

    @property
    def stats(self) -> dict:
        engines = self._engines()
        return {**self.counts,
                "late_records": sum(e.stats["late_records"] for e in engines),
                "failed_records": self.flow.failed_records
                + sum(e.stats["failed_records"] for e in engines)}

    def push(self, source: str, data: Any):
        from ..batch import to_record_batches
        from ..result import Result
        if source.lower() not in self.flow.sources:
            raise SqlError(f"no source '{source}' in this query (sources: "
                           f"{', '.join(self.sources)})", self.sql)
        out: list[pa.RecordBatch] = []
        for rb in to_record_batches(data):
            self.counts["records_in"] += rb.num_rows
            self.counts["batches"] += 1
            out += self._deliver(self.flow.step(source, rb))
        self.counts["records_out"] += sum(rb.num_rows for rb in out)
        return Result(self.out_schema, out)

    def flush(self):
        from ..result import Result
        out = self._deliver(self.flow.step(None, None, final=True))
        self.counts["records_out"] += sum(rb.num_rows for rb in out)
        return Result(self.out_schema, out)

    def explain(self) -> str:
        return self.flow.explain()

    def close(self) -> None:
        """Stop the partitions' threads (a job does at its end)."""
        self.flow.close()

    def partition_records(self) -> list[int]:
        """Rows each partition's instances were given, over every keyed node (all the rows
        in one count at one partition)."""
        n = self.flow.parallel.n
        if n == 1:
            return [self.counts["records_in"]]
        rows = np.zeros(n, dtype=np.int64)
        for node in self.flow.nodes:
            op = node.op.engine.pipeline if node.kind == "select" and node.op.engine else node.op
            router = getattr(op, "router", None) if isinstance(
                op, (PartitionedPipeline, PartitionedOperator)) else None
            if router is not None:
                rows += router.rows_routed
        return rows.tolist()

    SNAPSHOT_FORMAT = 1

    def snapshot(self) -> bytes:
        """The whole pipeline's state, for ``restore`` in another process running the same
        text: every operator's (``Operator.snapshot``), the sources' schemas and watermarks,
        rows waiting for a node, and the counters. Pickled: it holds Arrow tables and numpy
        arrays of the engine's own making."""
        import pickle
        flow = self.flow
        state = {"format": self.SNAPSHOT_FORMAT, "sql": self.sql, "counts": dict(self.counts),
                 "partitions": flow.parallel.n,
                 "sources": {k: (n.schema, n.watermark) for k, n in flow.sources.items()
                             if n.schema is not None and n.schema is not OPEN},
                 "nodes": {n.id: {"watermark": n.watermark,
                                  "op": n.op.snapshot() if n.ready and n.op is not None else None}
                           for n in flow.nodes if n.kind != "source"},
                 "waiting": {n.id: items for n, items in flow._waiting.items()}}
        return pickle.dumps(state, protocol=5)

    def restore(self, data: bytes) -> None:
        """Load ``snapshot`` bytes into this engine, which must be fresh and run the same text;
        results then continue where the snapshotted engine's left off."""
        import pickle
        state = pickle.loads(data)
        if state.get("format") != self.SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported pipeline snapshot format {state.get('format')!r}")
        if state["sql"] != self.sql:
            raise ValueError("the snapshot is of another query:\n  " + state["sql"])
        if self.counts["batches"]:
            raise ValueError("restore needs a fresh engine (this one has taken input)")
        flow = self.flow
        for key, (schema, watermark) in state["sources"].items():
            node = flow.sources[key]
            flow.bind_source(node.name, schema)
            node.watermark = watermark
        by_id = {n.id: n for n in flow.nodes}
        for node in flow.nodes:  # in topological order: a node is built once its inputs are
            st = state["nodes"].get(node.id)
            if node.kind == "source" or st is None:
                continue
            flow._bind_ready()
            node.watermark = st["watermark"]
            if st["op"] is not None:  # (taken at this partition count or another)
                if node.kind == "select":
                    node.op.restore(st["op"])
                else:
                    restore_operator(node.op, st["op"])
                if node.kind == "select" and node.schema is None:
                    node.schema = node.op.schema
        flow._bind_ready()
        flow._waiting = {by_id[i]: items for i, items in state["waiting"].items()}
        self.counts.update(state["counts"])

    @property
    def side_outputs(self) -> dict:
        return self._side_outputs

    @side_outputs.setter
    def side_outputs(self, writers: dict) -> None:
        self._side_outputs = dict(writers)
        self.flow.written = {name.lower() for name in writers}

    def _deliver(self, emitted: dict) -> list[pa.RecordBatch]:
        for name, writer in self.side_outputs.items():
            node = self.flow.named_outputs[name.lower()]
            for rb in visible(emitted.get(node, []), node.hidden):
                writer.write_batch(rb)
        while self.flow.dead_letters:  # source rows whose values do not fit (stream_rows)
            self.dead_letters.append(self.flow.dead_letters.pop(0))
        for eng in self._engines():  # late records, rows without event time, failed rows
            if eng.plan is not None:
                eng._sync_counters()
            while eng.dead_letters:
                self.dead_letters.append(eng.dead_letters.pop(0))
        return self.flow.result_rows(emitted)

    def _engines(self) -> list:
        return [n.op.engine for n in self.flow.nodes
                if n.kind == "select" and n.op.engine is not None]

    # -- what a job uses --------------------------------------------------------------------
    @property
    def source(self) -> str:
        """The source of the batch a job is handling: its one source, or the one its
        ``MergedReader`` read last (``current_source``)."""
        if self.current_source is not None:
            return self.current_source
        names = self.sources
        return names[0] if len(names) == 1 else "+".join(names)

    @property
    def plan(self):
        """Bound (not None) once the source's first batch has been read."""
        bound = [e.plan for e in self._engines() if e.plan is not None]
        return bound[0] if bound else None

    @property
    def dead_letter_bad_rows(self) -> bool:
        return self.flow.dead_letter_bad_rows

    @dead_letter_bad_rows.setter
    def dead_letter_bad_rows(self, value: bool) -> None:
        self.flow.dead_letter_bad_rows = value

    @property
    def watermark_by(self):
        return self.flow.watermark_by

    @watermark_by.setter
    def watermark_by(self, value) -> None:
        self.flow.watermark_by = value

    def source_partitions(self, active, idle=()) -> None:
        self.flow.partitions = (list(active), list(idle))
        for n in self.flow.sources.values():
            if n.clock is not None:
                n.clock.track(active, idle)
        for n in self.flow.nodes:
            if n.kind == "select" and n.inputs[0].kind == "source" and n.op.engine is not None:
                n.op.engine.source_partitions(active, idle)

    def bind_input(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        """The source's binding step (velostream.binding) as its first reader does it: raises
        SchemaMismatch for a batch that does not fit, before any state changes."""
        node = self.flow.sources[self.source.lower()]
        if node.table_key is None or node.declared is None or node.declared.columns is None:
            rb = self.flow.stream_rows(node, rb)
        if node.schema is None:
            self.flow.bind_source(node.name, rb.schema)
        for c, _ in node.consumers:
            if c.kind == "select" and c.op.engine is not None:
                return c.op.engine.bind_input(rb)
        return rb


def _first_time(rb: pa.RecordBatch) -> int:
    if EVENT_TIME not in rb.schema.names or rb.num_rows == 0:
        return INT64_MIN
    from .operators.join import times_of
    return int(times_of(rb.column(EVENT_TIME)[:1])[0])


def final_state(batches: list[pa.RecordBatch], schema: pa.Schema, key: list[str]) -> list:
    """A table's changelog reduced to its last row per key (docs/SQL.md §8, Tables)."""
    if not batches:
        return []
    table = pa.Table.from_batches(batches, schema=schema)
    from .operators.top_n import group_codes
    codes = group_codes(table, key)
    last = np.full(codes.max() + 1, -1, dtype=np.int64)
    last[codes] = np.arange(len(codes))
    return table.take(pa.array(np.sort(last))).combine_chunks().to_batches()


def run_query(statements: list[ast.Statement], sql: str, sources, partitions: int = 1) -> "Any":
    """``vs.query`` over a text that needs the graph: every source's input to its end."""
    flow = Dataflow(statements, sql, partitions)
    try:
        return _run(flow, sql, sources)
    finally:
        flow.close()


def rows_known(data) -> Optional[int]:
    """The rows of an input given to ``vs.query`` when known without reading it."""
    n = getattr(data, "num_rows", None)
    if isinstance(n, int):
        return n
    if isinstance(data, (list, tuple)):  # record batches, or one dict per row
        if all(isinstance(b, pa.RecordBatch) for b in data):
            return sum(b.num_rows for b in data)
        return len(data) if all(isinstance(r, dict) for r in data) else None
    shape = getattr(data, "shape", None)  # a pandas or Polars DataFrame
    if isinstance(shape, tuple) and shape and isinstance(shape[0], int):
        return shape[0]
    if isinstance(data, dict):
        first = next(iter(data.values()), None)
        return len(first) if first is not None and hasattr(first, "__len__") else None
    return None


def _run(flow: Dataflow, sql: str, sources) -> "Any":
    from ..batch import to_record_batches
    from ..binding import conform
    from ..result import Result, query_stats
    given = {k.lower(): v for k, v in sources.items()}
    for key, node in flow.sources.items():
        if key not in given:
            raise SqlError.at(sql, node.pos, f"no input for source '{node.name}' (given: "
                              f"{', '.join(sources) or 'none'})")
        rows = rows_known(given[key])
        if rows is not None:
            flow.source_rows[key] = rows
    full: list[pa.RecordBatch] = []  # the result relation's rows, hidden columns too
    read = 0  # rows read from the sources, set-aside ones included (Result.stats)
    # tables first, each read to its end (docs/SQL.md §9): then its watermark is past every time
    tables = flow.table_sources()
    for key, node in flow.sources.items():
        if key in tables:
            for rb in _morsels(to_record_batches(given[key])):
                read += rb.num_rows
                full += flow.step(node.name, rb).get(flow.result, [])
            node.watermark = INT64_MAX
    # the streams interleaved by time, as they would arrive live: a join or a union keeps only
    # the rows its watermark has not passed
    heads = []
    for key, node in flow.sources.items():
        if key not in tables:
            it = _morsels(to_record_batches(given[key]))
            heads.append([node, it, next(it, None)])
    while True:
        live = [h for h in heads if h[2] is not None]
        if not live:
            break
        head = min(live, key=lambda h: _first_time(h[2]))
        read += head[2].num_rows
        full += flow.step(head[0].name, head[2]).get(flow.result, [])
        head[2] = next(head[1], None)
    full += flow.step(None, None, final=True).get(flow.result, [])
    res = flow.result
    if res.table_key is not None and full:
        key = list(res.table_key)
        if res.windowed and not res.window_columns and EVENT_TIME in res.schema.names:
            key.append(EVENT_TIME)  # the window tells a key's versions apart
        full = final_state(full, res.schema, key)
    schema = flow.result_schema()
    # passthrough columns back in the types they came in with (a uint64 column the stages held
    # as BIGINT), as one engine's vs.query and a job's result() give them (binding.conform)
    result = Result(schema, [conform(rb, schema) for rb in visible(full, res.hidden)])
    # what the SELECT stages set aside (rows without event time, out of range, late), each row
    # once: a stage split over partitions gathers its partitions' rows (PartitionedPipeline)
    late, failed = 0, flow.failed_records
    dead: list[tuple[str, pa.RecordBatch]] = list(flow.dead_letters)  # rows that do not fit
    for node in flow.nodes:
        eng = node.op.engine if node.kind == "select" and node.op is not None else None
        if eng is None or eng.plan is None:
            continue
        eng._sync_counters()
        late += eng.stats["late_records"]
        failed += eng.stats["failed_records"]
        dead += eng.dead_letters
    result.dead_letters = dead
    result.stats = query_stats(read, len(result), late, failed)
    return result
