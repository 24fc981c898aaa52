"""Exchanges inside a pipeline's graph: one node split over the job's partitions
(docs/ARCHITECTURE.md, "Exchanges in the graph").

A node that keeps state per key runs as N instances, one per partition; an exchange in front of
it sends each row to the instance that owns its key, and its instances run on a pool of native
threads (the kernels release the GIL). Their rows are gathered in partition order at the end of
each call, so a node's readers see one stream, as at one partition:

* ``PartitionedPipeline``: a SELECT stage's pipeline (GROUP BY, windows, sessions, OVER with
  PARTITION BY) hashed on the plan's partitioning keys by the same router as a one-statement job
  (``_core.route.KeyRouter``, on the keys' values). The stage's engine stays one: it binds,
  judges lateness against the job-wide watermark before the split, and applies DISTINCT and
  LIMIT after the gather.
* ``PartitionedOperator``: an operator of Arrow rows (a join, deduplication, window top-N), each
  input hashed on its own key columns, or, for the table of a temporal join the planner knows to
  be small, the table *broadcast* to every instance and the stream cut in slices.

A node without a key (a global aggregate, a sort per emission, a union) runs once: its exchange
*gathers*. Results never depend on the partition count (docs/SQL.md §8).

A snapshot holds each instance's state and the router's key assignment. Restored at the same
partition count it is put back as it was; at another, each key's state goes to the partition the
new router gives it (``snapshots.regroup`` for a stage's groups, sessions and OVER buffers; each
operator's ``regroup`` for a join's, a deduplication's and a top-N's rows).
"""
from __future__ import annotations

import base64
import json
import os
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa

from .._core.route import KeyRouter, select_rows
from .._core.strings import string_buffers
from ..batch import Batch, Column, SqlType, concat_batches
from ..errors import RowError
from ..planner import Plan
from .columns import END_COL, ROW_COL, may_be_late
from . import snapshots
from .expressions import Evaluator
from .pipeline import Pipeline, set_aside
from .router import Routed
from .snapshots import PARTITIONS_META, key_from_arrow


_INT = SqlType("INT64")

# A batch of at most this many rows runs its partitions in the calling thread, one after
# another: handing work to the pool and back costs about 35 us, more than such a batch's work
# (a stage reading a window's rows mostly gets batches this small).
INLINE_ROWS = 2048


def thread_count(partitions: int) -> int:
    """Threads for a job of ``partitions`` partitions: one per partition, at most one per core
    this process may run on. More threads than cores would take turns at the cores and at the
    GIL, each turn a stall for the others (docs/PERFORMANCE.md, "Session 11"); the partition
    count stays what the user asked for (each key's state in one partition), as Kafka Streams
    runs its tasks on fewer stream threads."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # (not Linux)
        cores = os.cpu_count() or 1
    return max(1, min(partitions, cores))


class Parallel:
    """The job's partitions: how many, and the threads that run a node's instances (at most
    one per core: ``thread_count``)."""

    def __init__(self, n: int):
        self.n = n
        self._pool = None  # a concurrent.futures.ThreadPoolExecutor, made at first use

    def run(self, fn: Callable, items: list, inline: bool = False) -> list:
        """``fn(item)`` for each item, on the pool when there are several (``inline``: in this
        thread, when the work is too small to be worth a hand-over); results in order."""
        if len(items) <= 1 or inline:
            return [fn(x) for x in items]
        if self._pool is None:  # (imported here: a one-partition job's start never needs it)
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(thread_count(self.n),
                                            thread_name_prefix="velostream-partition")
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def splits(plan: Plan) -> bool:
    """Whether a stage of ``plan`` runs over several partitions: it keeps state per key."""
    return plan.partitioning.strategy == "hash" and plan.shape in ("aggregate", "rows")


class PartitionedPipeline:
    """A stage's ``Pipeline`` split over ``parallel.n`` partitions by the plan's keys; it takes
    the pipeline's calls (``process``, ``advance``, ``flush``, the counters, ``snapshot`` /
    ``restore``), so the stage's engine is the same at any partition count."""

    role = "full"
    stateful = None  # not one operator: the compiled single-pipeline step does not apply

    def __init__(self, plan: Plan, strings, parallel: Parallel):
        self.plan = plan
        self.strings = strings
        self.parallel = parallel
        self.ev = Evaluator(strings)  # the job thread's: event time and routing keys
        self.parts = [Pipeline(plan, strings) for _ in range(parallel.n)]
        self.keys = list(plan.partitioning.keys)
        # routed on the keys' values (text by a hash of its bytes, not by its code in this
        # process's dictionary), so a restored stage sends each key where its state was put back
        self.router = KeyRouter(parallel.n)
        self.text_words = TextWords(strings)
        self.failed_records = 0
        self.dead_letters: list = []
        self._dead_letter_bad_rows = False

    @property
    def dead_letter_bad_rows(self) -> bool:
        return self._dead_letter_bad_rows

    @dead_letter_bad_rows.setter
    def dead_letter_bad_rows(self, value: bool) -> None:
        self._dead_letter_bad_rows = value
        for p in self.parts:
            p.dead_letter_bad_rows = value

    @property
    def late_records(self) -> int:
        return sum(p.late_records for p in self.parts)

    # -- running -----------------------------------------------------------------------------
    def process(self, batch: Batch) -> list[Batch]:
        # Only the columns the plan reads travel, converted once here: text interned into the
        # shared dictionary in one pass, so each partition moves codes, not strings, and the
        # partitions never take turns at the dictionary's lock.
        used = self.plan.input_columns_used
        whole = batch
        batch = Batch({k: c for k, c in batch.columns.items()
                       if k in used or k.startswith("__")}, batch.length)
        for c in batch.columns.values():
            c.values
        if self.plan.window is not None and may_be_late(batch):  # set aside whole (_whole_rows)
            batch.columns[ROW_COL] = Column(_INT, np.arange(batch.length, dtype=np.int64))
        dead = len(self.dead_letters)
        batch, part = self._route(batch)
        if part is None:
            out = self._gather([])
        else:
            routed = Routed(batch, part)

            def one(i: int) -> list:
                rows = routed.rows_for(i)
                return self.parts[i].process(rows) if rows.length else []
            out = self._gather(self.parallel.run(one, list(range(len(self.parts))),
                                                 inline=batch.length <= INLINE_ROWS))
        self._whole_rows(whole, dead)
        return out

    def _whole_rows(self, whole: Batch, start: int) -> None:
        """The rows set aside since ``dead_letters[start]`` as they reached the stage, every
        column (only the columns the plan reads travel to the partitions): as one pipeline
        sets them aside, whatever the partition count."""
        dead = self.dead_letters
        for i in range(start, len(dead)):
            reason, rows = dead[i]
            if ROW_COL in rows.columns:
                dead[i] = (reason, whole.take(np.asarray(rows.columns[ROW_COL].values)))

    def _route(self, batch: Batch) -> tuple[Batch, Optional[np.ndarray]]:
        """The batch and each row's partition (None: no row left). A row whose key fails to
        evaluate (a value out of range) is a bad record, set aside as a pipeline sets its own
        aside (``Pipeline.process``)."""
        while batch.length:
            try:
                cols = [self.ev.column(k, batch) for k in self.keys]
            except RowError as err:
                batch = set_aside(self, err, batch)
                continue
            part = np.empty(batch.length, dtype=np.int8)
            self.router.route([self._word(c) for c in cols], part)
            return batch, part
        return batch, None

    def _word(self, c) -> np.ndarray:
        """One key column as an int64 word per row that depends on its value only."""
        kind = c.type.kind
        if kind == "STRING":
            words = self.text_words.of(c.values)
        elif kind == "FLOAT64":  # -0.0 and 0.0 are one key, and every NaN is
            v = np.asarray(c.values, dtype=np.float64) + 0.0
            words = np.where(np.isnan(v), np.nan, v).view(np.int64)
        else:  # integers, booleans, timestamps and decimals: the engine's int64 values
            words = np.asarray(c.values).astype(np.int64, copy=False)
        if c.valid is not None:  # every NULL key one word
            words = np.where(c.valid, words, NULL_WORD)
        return words

    def advance(self, watermark: int) -> list:
        return self._gather(self.parallel.run(lambda p: p.advance(watermark), self.parts))

    def flush(self) -> list:
        return self._gather(self.parallel.run(lambda p: p.flush(), self.parts))

    def _gather(self, outs: list[list]) -> list:
        """The partitions' rows in partition order; a window's final rows in window-end order
        (stable), as one pipeline emits them, so a reader sees windows close in order."""
        for p in self.parts:  # each partition's bad and late rows, counted once here
            self.failed_records += p.failed_records
            p.failed_records = 0
            self.dead_letters += p.dead_letters
            p.dead_letters = []
        batches = [b for out in outs for b in out if b.length]
        if sum(1 for out in outs if any(b.length for b in out)) > 1 \
                and END_COL in batches[0].columns:
            whole = concat_batches(batches)
            return [whole.take(np.argsort(whole.columns[END_COL].values, kind="stable"))]
        return batches

    # -- state -------------------------------------------------------------------------------
    def snapshot(self) -> pa.Table:
        """One table: each partition's snapshot table as Arrow IPC bytes, and the router's key
        assignment (a restored stage must send each key where its state is)."""
        blobs = []
        for p in self.parts:
            table = p.snapshot()
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            blobs.append(sink.getvalue().to_pybytes())
        assign, load = self.router.state()
        meta = {"partitions": len(self.parts), "assign": base64.b64encode(assign.tobytes()).decode(),
                "load": load.tolist()}
        return pa.table({"partition_state": pa.array(blobs, pa.binary())}).replace_schema_metadata(
            {PARTITIONS_META: json.dumps(meta).encode()})

    def restore(self, table) -> None:
        """Load a snapshot taken at this partition count, or at another: then each group goes
        to the partition this stage's router gives its key (``snapshots.regroup``)."""
        tables, router = snapshots.partition_tables(table)
        n = len(self.parts)
        if router is not None and len(tables) == n:
            for p, t in zip(self.parts, tables):
                p.restore(t)
            self.router.restore(*router)
            return
        parts = []
        for t in tables:
            part = np.zeros(t.num_rows, dtype=np.int8)
            if t.num_rows:
                self.router.route(self._state_words(t), part)
            parts.append(part)
        for p, t in zip(self.parts, snapshots.regroup(tables, parts, n)):
            p.restore(t)

    def _state_words(self, t: pa.Table) -> list[np.ndarray]:
        """The routing words of a snapshot table's rows, as ``_route`` makes them for the rows
        of the same keys: a group's (or session's) key columns ``__k<i>``; an OVER buffer's
        PARTITION BY columns ``__o<spec>.k<i>`` that are the plan's partitioning keys."""
        def key(name: str, k) -> np.ndarray:
            return self._word(key_from_arrow(t.column(name).combine_chunks(), k.type,
                                             self.strings))
        if self.plan.shape != "rows":
            return [key(f"__k{i}", k) for i, k in enumerate(self.plan.keys)]
        spec = t.column("__over").to_numpy(zero_copy_only=False)
        words = [np.zeros(t.num_rows, dtype=np.int64) for _ in self.keys]
        for i, over in enumerate(self.plan.overs):
            rows = spec == i
            for w, k in zip(words, self.keys):
                w[rows] = key(f"__o{i}.k{over.partition_by.index(k)}", k)[rows]
        return words


NULL_WORD = -0x3c6ef372fe94f82b


class TextWords:
    """A word per string of a dictionary that depends on the string's bytes only (the same in
    every process, unlike its code), computed once per string as the dictionary grows: routing
    text then costs one lookup per row, not a hash of its bytes."""

    # a multiplier per byte position (mod 64): odd 64-bit constants, splitmix64 of 1..64 (made
    # here rather than by numpy.random, whose import costs a job's start 8 ms)
    with np.errstate(over="ignore"):
        _z = np.arange(1, 65, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        _z = (_z ^ (_z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        _z = (_z ^ (_z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        _MULT = (_z ^ (_z >> np.uint64(31))) | np.uint64(1)
    del _z

    def __init__(self, strings):
        self.strings = strings
        self.words = np.empty(0, dtype=np.int64)

    def of(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if len(codes) and int(codes.max()) >= len(self.words):
            new = self.strings.arrow_values()[len(self.words):]
            self.words = np.concatenate([self.words, self._hash(new)])
        return self.words[codes]

    @classmethod
    def _hash(cls, arr) -> np.ndarray:
        offsets, data = string_buffers(arr)
        offsets = offsets.astype(np.int64)
        lens = np.diff(offsets)
        base = offsets[0]
        total = int(offsets[-1] - base)
        with np.errstate(over="ignore"):
            h = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            if total:
                pos = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1] - base, lens)
                part = data[base:base + total].astype(np.uint64) * cls._MULT[pos & 63]
                run = np.concatenate([np.zeros(1, np.uint64), np.cumsum(part, dtype=np.uint64)])
                h ^= run[offsets[1:] - base] - run[offsets[:-1] - base]
            h *= np.uint64(0xBF58476D1CE4E5B9)
        return h.view(np.int64)


class PartitionedOperator:
    """``parallel.n`` instances of an operator of Arrow rows (``make()`` builds one). Each input
    port is hashed on its key columns (``keys[port]``: equal keys of every port meet in one
    instance), except a ``broadcast`` port, whose rows every instance gets, while the other
    port's rows are cut in contiguous slices.

    Operators that keep progress of their own inputs (a join's clocks) have it aligned over the
    instances after each batch (``align``), so that every instance judges time as one operator
    over all rows would."""

    def __init__(self, first, make: Callable[[], Any], parallel: Parallel,
                 keys: list[Optional[list[str]]], key_types: Optional[list] = None,
                 broadcast: Optional[int] = None):
        self.parallel = parallel
        self.instances = [first] + [make() for _ in range(parallel.n - 1)]
        self.keys = keys
        self.key_types = key_types  # Arrow types both sides' keys are hashed as
        self.broadcast = broadcast
        self.router = KeyRouter(parallel.n)
        # what the graph reads of a join's operator (its rows' columns, a chained join's
        # conditions and aliases: docs/SQL.md §9)
        self.schema = getattr(first, "schema", None)
        self.residual_ast = getattr(first, "residual_ast", None)
        self.out = getattr(first, "out", None)

    def exchange(self) -> str:
        """How rows reach the instances (explain)."""
        return exchange_line(self.keys, self.broadcast, len(self.instances))

    @property
    def watermark(self) -> int:
        return min(i.watermark for i in self.instances)

    def push(self, port: int, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        n = len(self.instances)
        if batch.num_rows == 0:
            return []
        if self.broadcast is not None:
            if port == self.broadcast:
                pieces = [batch] * n
            else:
                bounds = np.linspace(0, batch.num_rows, n + 1).astype(np.int64)
                pieces = [batch.slice(bounds[i], bounds[i + 1] - bounds[i]) for i in range(n)]
        else:
            part = np.empty(batch.num_rows, dtype=np.int8)
            types = self.key_types or [None] * len(self.keys[port])
            self.router.route_raw([_raw_arrow(batch.column(k), t)
                                   for k, t in zip(self.keys[port], types)], part)
            pieces = [_rows(batch, select_rows(part, i)) for i in range(n)]
        work = [i for i in range(n) if pieces[i].num_rows]
        outs = self.parallel.run(lambda i: self.instances[i].push(port, pieces[i]), work)
        align = getattr(type(self.instances[0]), "align", None)
        if align is not None:
            align(self.instances, port)
        return [rb for out in outs for rb in out]

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        return self._all(lambda op: op.on_watermark(watermark))

    def on_watermarks(self, *watermarks: int) -> list[pa.RecordBatch]:
        return self._all(lambda op: op.on_watermarks(*watermarks))

    def close(self) -> list[pa.RecordBatch]:
        return self._all(lambda op: op.close())

    def _all(self, fn) -> list[pa.RecordBatch]:
        return [rb for out in self.parallel.run(fn, self.instances) for rb in out]

    def snapshot(self):
        return {"partitions": [op.snapshot() for op in self.instances],
                "router": self.router.state(), "broadcast": self.broadcast}

    def restore(self, state) -> None:
        """Load a snapshot taken at this partition count, or at another: then the instances'
        rows are hashed again by this operator's router (each operator's ``regroup``)."""
        n = len(self.instances)
        if is_split(state) and len(state["partitions"]) == n:
            for op, st in zip(self.instances, state["partitions"]):
                op.restore(st)
            self.router.restore(*state["router"])
            return
        states, was = (state["partitions"], state["broadcast"]) if is_split(state) \
            else ([state], None)
        kind = type(self.instances[0])
        for op, st in zip(self.instances, kind.regroup(states, self._route, n, was,
                                                        self.broadcast)):
            op.restore(st)

    def _route(self, port: int, rows: pa.Table) -> np.ndarray:
        part = np.zeros(rows.num_rows, dtype=np.int8)
        if rows.num_rows:
            types = self.key_types or [None] * len(self.keys[port])
            self.router.route_raw([_raw_arrow(rows.column(k), t)
                                   for k, t in zip(self.keys[port], types)], part)
        return part

    def describe(self) -> str:
        return self.instances[0].describe()


def exchange_line(keys: list, broadcast: Optional[int], n: int) -> str:
    """Explain's line for the exchange in front of a node of Arrow rows: ``keys`` per input."""
    where = f"over {n} partitions" if n > 1 else "at more than one partition"
    if broadcast is not None:
        return (f"Exchange: broadcast {where}: the table to every partition (small: at most "
                f"'join.broadcast.max.rows' rows), the stream in slices")
    if len(keys) == 1:
        return f"Exchange: hash({', '.join(keys[0])}) {where}"
    return "Exchange: " + "; ".join(f"input {i + 1} hash({', '.join(k)})"
                                    for i, k in enumerate(keys)) + f" {where}"


def is_split(state) -> bool:
    """Whether an operator's snapshot is a ``PartitionedOperator``'s (its instances')."""
    return isinstance(state, dict) and "partitions" in state and "router" in state


def restore_operator(op, state) -> None:
    """``op.restore(state)``, also when ``state`` was taken split over partitions and ``op``
    now runs once: the instances' states regrouped into one."""
    if is_split(state) and not isinstance(op, PartitionedOperator):
        state = type(op).regroup(state["partitions"],
                                 lambda port, rows: np.zeros(rows.num_rows, np.int8), 1,
                                 state["broadcast"], None)[0]
    op.restore(state)


def _rows(batch: pa.RecordBatch, rows: np.ndarray) -> pa.RecordBatch:
    if len(rows) == batch.num_rows:
        return batch
    return batch.take(pa.array(rows))


def _raw_arrow(col, as_type: Optional[pa.DataType]) -> tuple:
    """One key column as ``KeyRouter.route_raw`` reads it, from Arrow: text as its buffers,
    numbers as int64 (timestamps and booleans too) or float64; ``as_type``: the type both sides
    of a join compare keys in (so 1 and 1.0 meet)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_date(col.type):  # a day as epoch ms, as the engine holds it (Arrow has no
        col = col.cast(pa.timestamp("ms"))  # date -> int64 cast)
    if as_type is not None and not col.type.equals(as_type):
        col = col.cast(pa.timestamp("ms") if pa.types.is_date(as_type) else as_type)
    valid = (col.is_valid().to_numpy(zero_copy_only=False).view(np.uint8)
             if col.null_count else None)
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        offsets, data = string_buffers(col)
        return ("string", offsets, data, valid)
    if pa.types.is_floating(t):
        return ("float", np.ascontiguousarray(col.fill_null(0).to_numpy(zero_copy_only=False),
                                              dtype=np.float64), valid)
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        col = col.cast(pa.int64())
    elif pa.types.is_boolean(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
        col = col.cast(pa.int64()) if not pa.types.is_decimal(t) else col.cast(pa.float64())
        if pa.types.is_floating(col.type):
            return ("float", np.ascontiguousarray(col.fill_null(0).to_numpy(
                zero_copy_only=False), dtype=np.float64), valid)
    return ("int", np.ascontiguousarray(col.fill_null(0).to_numpy(zero_copy_only=False),
                                        dtype=np.int64), valid)
