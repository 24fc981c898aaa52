"""The peers: each scenario's query computed by DuckDB, Polars, a plain-Python loop and Bytewax.

Every peer follows one protocol: ``prepare(scenario, batches)`` does the untimed setup and returns
a zero-argument callable; calling it is the timed work and returns a ``pyarrow.Table`` holding at
least the scenario's SELECT columns. What a call covers, per peer:

- **duckdb**: ``pa.Table.from_batches`` (zero-copy), appending an input-order ``seq`` column where
  the query needs order, registering the table, running the SQL, fetching the result as an Arrow
  table. The connection is opened in setup. DuckDB uses all cores (its default).
- **polars**: ``pl.from_arrow`` (string columns are converted to Polars' own layout), the
  expression query, ``DataFrame.to_arrow()``. Polars uses all cores (its default).
- **python**: per batch, ``Array.to_pylist()`` of the needed columns, then a record-at-a-time loop
  over dicts of per-key state, appending output rows to lists; finally ``pa.table`` of the lists.
- **bytewax**: a dataflow built and run with ``bytewax.testing.run_main`` (one worker): a source
  turning each Arrow batch into Python tuples, the stateful / windowing operators, a sink
  collecting rows, then ``pa.table`` of the collected rows.

Semantics shared by all (docs/SQL.md §5, §6): ROWS windows and EMIT CHANGES follow input order, which
here is also ``trade_time`` order; tumbling windows are epoch-aligned,
``window_start = trade_time // 60000 * 60000``.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Callable

import numpy as np
import pyarrow as pa

from bench.data import Scenario

WINDOW_MS = 60_000
ROWS_BUFFER = 100

Runner = Callable[[], pa.Table]


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(batches)


def _rows_to_table(rows: list[tuple], names) -> pa.Table:
    cols = list(zip(*rows)) if rows else [()] * len(names)
    return pa.table({n: list(c) for n, c in zip(names, cols)})


# --- DuckDB ------------------------------------------------------------------------------------

_RUNNING = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"

DUCKDB_SQL = {
    "s0_select_where":
        "SELECT order_id, customer_id, order_date, total_amount FROM orders "
        "WHERE total_amount > 100",
    "s1_rows_window": f"""
        SELECT symbol, price,
               AVG(price) OVER w AS moving_avg, MIN(price) OVER w AS min_price,
               MAX(price) OVER w AS max_price
        FROM market_data
        WINDOW w AS (PARTITION BY symbol ORDER BY seq
                     ROWS BETWEEN {ROWS_BUFFER - 1} PRECEDING AND CURRENT ROW)""",
    "s2_group_by": f"""
        SELECT symbol, COUNT(*) OVER w AS trade_count, AVG(price) OVER w AS avg_price,
               MIN(price) OVER w AS min_price, MAX(price) OVER w AS max_price,
               SUM(quantity) OVER w AS total_quantity
        FROM market_data
        WINDOW w AS (PARTITION BY symbol ORDER BY seq {_RUNNING})""",
    "s2_group_by_final": """
        SELECT symbol, COUNT(*) AS trade_count, AVG(price) AS avg_price, MIN(price) AS min_price,
               MAX(price) AS max_price, SUM(quantity) AS total_quantity
        FROM market_data GROUP BY symbol""",
    "s3a_tumbling": f"""
        SELECT trader_id, symbol, COUNT(*) AS trade_count, AVG(price) AS avg_price,
               SUM(quantity) AS total_quantity, SUM(price * quantity) AS total_value,
               (trade_time // {WINDOW_MS}) * {WINDOW_MS} AS window_start,
               (trade_time // {WINDOW_MS}) * {WINDOW_MS} + {WINDOW_MS} AS window_end
        FROM market_data
        GROUP BY trader_id, symbol, window_start""",
    "s3b_tumbling_changes": f"""
        SELECT trader_id, symbol, COUNT(*) OVER w AS trade_count, AVG(price) OVER w AS avg_price,
               SUM(quantity) OVER w AS total_quantity, SUM(price * quantity) OVER w AS total_value,
               (_TIMESTAMP // {WINDOW_MS}) * {WINDOW_MS} AS window_start,
               (_TIMESTAMP // {WINDOW_MS}) * {WINDOW_MS} + {WINDOW_MS} AS window_end
        FROM market_data
        WINDOW w AS (PARTITION BY trader_id, symbol, _TIMESTAMP // {WINDOW_MS}
                     ORDER BY seq {_RUNNING})""",
    "s2_high_cardinality": f"""
        SELECT trader_id, symbol, COUNT(*) OVER w AS trade_count, AVG(price) OVER w AS avg_price,
               MIN(price) OVER w AS min_price, MAX(price) OVER w AS max_price,
               SUM(quantity) OVER w AS total_quantity
        FROM market_data
        WINDOW w AS (PARTITION BY trader_id, symbol ORDER BY seq {_RUNNING})""",
}


def prepare_duckdb(sc: Scenario, batches: list[pa.RecordBatch]) -> Runner:
    import duckdb

    con = duckdb.connect()
    sql = DUCKDB_SQL[sc.name]
    needs_seq = " seq" in sql

    def run() -> pa.Table:
        table = _table(batches)
        if needs_seq:
            # Input order made explicit: SQL has no other notion of arrival order.
            table = table.append_column("seq", pa.array(np.arange(table.num_rows)))
        con.register(sc.source, table)
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.unregister(sc.source)

    return run


# --- Polars ------------------------------------------------------------------------------------

def _polars_query(sc: Scenario, pl):
    c = pl.col
    if sc.name == "s0_select_where":
        return lambda df: df.filter(c("total_amount") > 100).select(
            "order_id", "customer_id", "order_date", "total_amount")
    if sc.name == "s1_rows_window":
        def rolling(f, alias):
            return getattr(c("price"), f)(ROWS_BUFFER, min_samples=1).over("symbol").alias(alias)
        return lambda df: df.select(
            "symbol", "price", rolling("rolling_mean", "moving_avg"),
            rolling("rolling_min", "min_price"), rolling("rolling_max", "max_price"))

    def running(keys):
        n = c("price").cum_count().over(keys)
        return [c("price").cum_sum().over(keys).truediv(n).alias("avg_price"),
                c("price").cum_min().over(keys).alias("min_price"),
                c("price").cum_max().over(keys).alias("max_price"),
                c("quantity").cum_sum().over(keys).alias("total_quantity"),
                n.cast(pl.Int64).alias("trade_count")]

    if sc.name == "s2_group_by":
        return lambda df: df.select("symbol", *running("symbol"))
    if sc.name == "s2_high_cardinality":
        return lambda df: df.select("trader_id", "symbol", *running(["trader_id", "symbol"]))
    if sc.name == "s2_group_by_final":
        return lambda df: df.group_by("symbol").agg(
            pl.len().alias("trade_count"), c("price").mean().alias("avg_price"),
            c("price").min().alias("min_price"), c("price").max().alias("max_price"),
            c("quantity").sum().alias("total_quantity"))

    window_start = (c("trade_time") // WINDOW_MS * WINDOW_MS).alias("window_start")
    if sc.name == "s3a_tumbling":
        return lambda df: (
            df.group_by("trader_id", "symbol", window_start)
            .agg(pl.len().alias("trade_count"), c("price").mean().alias("avg_price"),
                 c("quantity").sum().alias("total_quantity"),
                 (c("price") * c("quantity")).sum().alias("total_value"))
            .with_columns((c("window_start") + WINDOW_MS).alias("window_end")))
    if sc.name == "s3b_tumbling_changes":
        keys = ["trader_id", "symbol", "window_start"]
        return lambda df: (
            df.with_columns((c("_TIMESTAMP") // WINDOW_MS * WINDOW_MS).alias("window_start"))
            .select("trader_id", "symbol",
                    c("price").cum_count().over(keys).cast(pl.Int64).alias("trade_count"),
                    (c("price").cum_sum().over(keys) / c("price").cum_count().over(keys))
                    .alias("avg_price"),
                    c("quantity").cum_sum().over(keys).alias("total_quantity"),
                    (c("price") * c("quantity")).cum_sum().over(keys).alias("total_value"),
                    "window_start", (c("window_start") + WINDOW_MS).alias("window_end")))
    raise KeyError(sc.name)


def prepare_polars(sc: Scenario, batches: list[pa.RecordBatch]) -> Runner:
    import polars as pl

    query = _polars_query(sc, pl)

    def run() -> pa.Table:
        return query(pl.from_arrow(_table(batches))).to_arrow()

    return run


# --- plain Python ------------------------------------------------------------------------------

def _columns(batch: pa.RecordBatch, names):
    return [batch.column(n).to_pylist() for n in names]


def _py_s0(batches):
    oid, cid, od, amt = [], [], [], []
    for b in batches:
        for o, c, d, a in zip(*_columns(b, ("order_id", "customer_id", "order_date",
                                            "total_amount"))):
            if a > 100:
                oid.append(o)
                cid.append(c)
                od.append(d)
                amt.append(a)
    return pa.table({"order_id": oid, "customer_id": cid, "order_date": od,
                     "total_amount": amt})


def _py_s1(batches):
    buffers: dict[str, deque] = {}
    sym_out, price_out, avg_out, min_out, max_out = [], [], [], [], []
    for b in batches:
        for s, p in zip(*_columns(b, ("symbol", "price"))):
            buf = buffers.get(s)
            if buf is None:
                buf = buffers[s] = deque(maxlen=ROWS_BUFFER)
            buf.append(p)
            sym_out.append(s)
            price_out.append(p)
            avg_out.append(sum(buf) / len(buf))
            min_out.append(min(buf))
            max_out.append(max(buf))
    return pa.table({"symbol": sym_out, "price": price_out, "moving_avg": avg_out,
                     "min_price": min_out, "max_price": max_out})


def _py_group_changes(batches, with_trader: bool):
    # state per key: [count, sum(price), min(price), max(price), sum(quantity)]
    groups: dict = {}
    out = {k: [] for k in ("trader_id", "symbol", "trade_count", "avg_price", "min_price",
                           "max_price", "total_quantity")}
    t_o, s_o, n_o, a_o, lo_o, hi_o, q_o = (out[k].append for k in out)
    for b in batches:
        for t, s, p, q in zip(*_columns(b, ("trader_id", "symbol", "price", "quantity"))):
            key = (t, s) if with_trader else s
            st = groups.get(key)
            if st is None:
                st = groups[key] = [1, p, p, p, q]
            else:
                st[0] += 1
                st[1] += p
                if p < st[2]:
                    st[2] = p
                if p > st[3]:
                    st[3] = p
                st[4] += q
            t_o(t)
            s_o(s)
            n_o(st[0])
            a_o(st[1] / st[0])
            lo_o(st[2])
            hi_o(st[3])
            q_o(st[4])
    if not with_trader:
        del out["trader_id"]
    return pa.table(out)


def _py_s2_final(batches):
    # The per-record group update is written out in each plain-Python peer (here, above, and in
    # bench/latency) on purpose: a shared helper would add a function call per record and make
    # the baseline slower than the loop a user would write by hand.
    groups: dict = {}
    for b in batches:
        for s, p, q in zip(*_columns(b, ("symbol", "price", "quantity"))):
            st = groups.get(s)
            if st is None:
                groups[s] = [1, p, p, p, q]
            else:
                st[0] += 1
                st[1] += p
                if p < st[2]:
                    st[2] = p
                if p > st[3]:
                    st[3] = p
                st[4] += q
    rows = [(s, n, sp / n, lo, hi, sq) for s, (n, sp, lo, hi, sq) in groups.items()]
    cols = list(zip(*rows)) if rows else [[]] * 6
    return pa.table(dict(zip(("symbol", "trade_count", "avg_price", "min_price", "max_price",
                              "total_quantity"), map(list, cols))))


_S3_COLUMNS = ("trader_id", "symbol", "trade_count", "avg_price", "total_quantity",
               "total_value", "window_start", "window_end")


def _py_s3(batches, changes: bool, time_column: str):
    # Open windows: window start -> {(trader, symbol): [count, sum(price), sum(qty), sum(p*q)]}.
    # A window closes (is emitted, when final, and freed) once the watermark, the largest
    # time seen, reaches its end.
    windows: dict[int, dict] = {}
    rows: list[tuple] = []
    emit = rows.append

    def close(start, groups):
        end = start + WINDOW_MS
        for (t, s), (n, sp, sq, sv) in groups.items():
            emit((t, s, n, sp / n, sq, sv, start, end))

    current = None
    watermark = -math.inf
    for b in batches:
        for t, s, p, q, ts in zip(*_columns(b, ("trader_id", "symbol", "price", "quantity",
                                                time_column))):
            if ts > watermark:
                watermark = ts
            ws = ts - ts % WINDOW_MS
            if ws != current:
                for start in [w for w in windows if w + WINDOW_MS <= watermark]:
                    closed = windows.pop(start)
                    if not changes:
                        close(start, closed)
                current = ws
                groups = windows.get(ws)
                if groups is None:
                    groups = windows[ws] = {}
            key = (t, s)
            st = groups.get(key)
            if st is None:
                st = groups[key] = [1, p, q, p * q]
            else:
                st[0] += 1
                st[1] += p
                st[2] += q
                st[3] += p * q
            if changes:
                emit((t, s, st[0], st[1] / st[0], st[2], st[3], ws, ws + WINDOW_MS))
    if not changes:  # end of input closes every window
        for start, closed in sorted(windows.items()):
            close(start, closed)
    return _rows_to_table(rows, _S3_COLUMNS)


_PYTHON = {
    "s0_select_where": _py_s0,
    "s1_rows_window": _py_s1,
    "s2_group_by": lambda b: _py_group_changes(b, with_trader=False),
    "s2_high_cardinality": lambda b: _py_group_changes(b, with_trader=True),
    "s2_group_by_final": _py_s2_final,
    "s3a_tumbling": lambda b: _py_s3(b, changes=False, time_column="trade_time"),
    "s3b_tumbling_changes": lambda b: _py_s3(b, changes=True, time_column="_TIMESTAMP"),
}


def prepare_python(sc: Scenario, batches: list[pa.RecordBatch]) -> Runner:
    func = _PYTHON[sc.name]
    return lambda: func(batches)


# --- Bytewax -----------------------------------------------------------------------------------

def bytewax_available() -> tuple[bool, str]:
    try:
        import bytewax  # noqa: F401
        from bytewax.testing import run_main  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the machine
        return False, f"bytewax is not importable: {exc}"
    return True, ""


def _bytewax_io():
    from bytewax.inputs import DynamicSource, StatelessSourcePartition
    from bytewax.outputs import DynamicSink, StatelessSinkPartition

    class _ArrowPartition(StatelessSourcePartition):
        def __init__(self, batches, names):
            self._batches = iter(batches)
            self._names = names

        def next_batch(self):
            batch = next(self._batches)  # StopIteration is end of input
            return list(zip(*_columns(batch, self._names)))

    class ArrowSource(DynamicSource):
        """Each Arrow batch becomes one Bytewax batch of row tuples (the conversion is timed)."""

        def __init__(self, batches, names):
            self._batches, self._names = batches, names

        def build(self, step_id, worker_index, worker_count):
            return _ArrowPartition(self._batches, self._names)

    class _ListPartition(StatelessSinkPartition):
        def __init__(self, rows):
            self._rows = rows

        def write_batch(self, items):
            self._rows.extend(items)

    class ListSink(DynamicSink):
        def __init__(self, rows):
            self._rows = rows

        def build(self, step_id, worker_index, worker_count):
            return _ListPartition(self._rows)

    return ArrowSource, ListSink


def prepare_bytewax(sc: Scenario, batches: list[pa.RecordBatch]) -> Runner:
    from datetime import datetime, timedelta, timezone

    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    ArrowSource, ListSink = _bytewax_io()
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    minute = timedelta(milliseconds=WINDOW_MS)
    md_cols = ("trader_id", "symbol", "price", "quantity", "trade_time")

    def event_time(r):
        return epoch + timedelta(milliseconds=r[4])

    def tumbling():
        return (win.EventClock(event_time, wait_for_system_duration=timedelta(0)),
                win.TumblingWindower(length=minute, align_to=epoch))

    def s0(flow, rows):
        s = op.input("in", flow, ArrowSource(batches, sc.columns))
        op.output("out", op.filter("where", s, lambda r: r[3] > 100), ListSink(rows))
        return sc.columns

    def s1(flow, rows):
        s = op.input("in", flow, ArrowSource(batches, ("symbol", "price")))
        keyed = op.key_on("key", s, lambda r: r[0])

        def step(buf, r):
            if buf is None:
                buf = deque(maxlen=ROWS_BUFFER)
            buf.append(r[1])
            return buf, (r[0], r[1], sum(buf) / len(buf), min(buf), max(buf))

        out = op.stateful_map("rows_window", keyed, step)
        op.output("out", op.key_rm("unkey", out), ListSink(rows))
        return sc.columns

    def group_changes(flow, rows, with_trader):
        s = op.input("in", flow, ArrowSource(batches, md_cols))
        keyed = op.key_on("key", s, (lambda r: r[0] + "|" + r[1]) if with_trader
                          else (lambda r: r[1]))

        def step(st, r):
            p, q = r[2], r[3]
            if st is None:
                st = [1, p, p, p, q]
            else:
                st[0] += 1
                st[1] += p
                st[2] = min(st[2], p)
                st[3] = max(st[3], p)
                st[4] += q
            return st, (r[0], r[1], st[0], st[1] / st[0], st[2], st[3], st[4])

        out = op.stateful_map("group_by", keyed, step)
        op.output("out", op.key_rm("unkey", out), ListSink(rows))
        return ("trader_id", "symbol", "trade_count", "avg_price", "min_price", "max_price",
                "total_quantity")

    def s2_final(flow, rows):
        s = op.input("in", flow, ArrowSource(batches, md_cols))
        keyed = op.key_on("key", s, lambda r: r[1])

        def fold(st, r):
            p = r[2]
            if st is None:
                return [1, p, p, p, r[3]]
            st[0] += 1
            st[1] += p
            st[2] = min(st[2], p)
            st[3] = max(st[3], p)
            st[4] += r[3]
            return st

        agg = op.fold_final("group_by", keyed, lambda: None, fold)
        out = op.map("row", agg, lambda kv: (kv[0], kv[1][0], kv[1][1] / kv[1][0], kv[1][2],
                                             kv[1][3], kv[1][4]))
        op.output("out", out, ListSink(rows))
        return ("symbol", "trade_count", "avg_price", "min_price", "max_price", "total_quantity")

    def s3a(flow, rows):
        s = op.input("in", flow, ArrowSource(batches, md_cols))
        keyed = op.key_on("key", s, lambda r: r[0] + "|" + r[1])
        clock, windower = tumbling()

        def fold(st, r):
            p, q = r[2], r[3]
            if st is None:
                return [1, p, q, p * q]
            st[0] += 1
            st[1] += p
            st[2] += q
            st[3] += p * q
            return st

        wo = win.fold_window("tumbling", keyed, clock, windower, lambda: None, fold,
                             lambda a, b: a, ordered=False)

        def row(kv):
            key, (wid, (n, sp, sq, sv)) = kv
            trader, symbol = key.split("|")
            start = wid * WINDOW_MS
            return trader, symbol, n, sp / n, sq, sv, start, start + WINDOW_MS

        op.output("out", op.map("row", wo.down, row), ListSink(rows))
        return _S3_COLUMNS

    def s3b(flow, rows):
        s = op.input("in", flow, ArrowSource(batches, md_cols))
        keyed = op.key_on("key", s, lambda r: r[0] + "|" + r[1])
        clock, windower = tumbling()

        class Changes(win.WindowLogic):
            """EMIT CHANGES: every value emits the updated aggregate of its window."""
            __slots__ = ("n", "sp", "sq", "sv")

            def __init__(self):
                self.n = 0
                self.sp = self.sq = self.sv = 0

            def on_value(self, r):
                self.n += 1
                self.sp += r[2]
                self.sq += r[3]
                self.sv += r[2] * r[3]
                return ((r[0], r[1], self.n, self.sp / self.n, self.sq, self.sv),)

            def on_merge(self, original):
                return ()

            def on_close(self):
                return ()

            def snapshot(self):
                return (self.n, self.sp, self.sq, self.sv)

        wo = win.window("tumbling", keyed, clock, windower, lambda _resume: Changes(),
                        ordered=False)

        def row(kv):
            _key, (wid, r) = kv
            start = wid * WINDOW_MS
            return r + (start, start + WINDOW_MS)

        op.output("out", op.map("row", wo.down, row), ListSink(rows))
        return _S3_COLUMNS

    builders = {
        "s0_select_where": s0,
        "s1_rows_window": s1,
        "s2_group_by": lambda f, r: group_changes(f, r, False),
        "s2_high_cardinality": lambda f, r: group_changes(f, r, True),
        "s2_group_by_final": s2_final,
        "s3a_tumbling": s3a,
        "s3b_tumbling_changes": s3b,
    }
    build = builders[sc.name]

    def run() -> pa.Table:
        rows: list[tuple] = []
        flow = Dataflow(sc.name)
        names = build(flow, rows)
        run_main(flow)
        return _rows_to_table(rows, names)

    return run


# --- registry ----------------------------------------------------------------------------------

PEERS: dict[str, Callable[[Scenario, list], Runner]] = {
    "duckdb": prepare_duckdb,
    "polars": prepare_polars,
    "python": prepare_python,
    "bytewax": prepare_bytewax,
}

#: What each peer's timed call covers, for metadata and reports.
TIMED = {
    "duckdb": "Table.from_batches + seq column + register + SQL + fetch Arrow table",
    "polars": "pl.from_arrow + expression query + to_arrow",
    "python": "to_pylist per batch + record loop over dict state + pa.table of output lists",
    "bytewax": "dataflow (Arrow batch -> tuples source, stateful/window operators, list sink) "
               "via run_main + pa.table of output rows",
}


def available(system: str) -> tuple[bool, str]:
    """Whether a peer can run here, and why not."""
    if system == "bytewax":
        return bytewax_available()
    if system in ("duckdb", "polars"):
        try:
            __import__(system)
        except Exception as exc:  # pragma: no cover
            return False, f"{system} is not importable: {exc}"
    return (system in PEERS), ("" if system in PEERS else f"unknown peer {system!r}")
