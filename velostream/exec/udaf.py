"""Aggregate functions written in Python (``vs.udaf``, docs/FUNCTIONS.md, "Python aggregates").

A registered class gives ``init() -> state``, ``update(state, values, ...) -> state``,
``merge(a, b) -> state`` and ``finish(state) -> value``. ``PythonAggregator`` runs it behind the
interface of the Cython aggregates (``_core/aggregate.pyx``: ``ensure_capacity``, ``update``,
``update_emit``, ``result``, ``merge``, ``reset``, ``export_state`` / ``import_state``), so every
path that aggregates (GROUP BY, every window kind, a global aggregate, EMIT CHANGES and FINAL,
two-phase partials, snapshots) runs it unchanged. The kernel module knows nothing of this one.

- State: one Python object per group slot, in a list indexed by slot; a slot no row has reached
  holds ``_EMPTY`` and reads as ``finish(init())``.
- ``update`` sorts a batch's rows by slot once (numpy) and calls the user's ``update`` once per
  group of the batch with a zero-copy Arrow slice per argument: never once per row. Rows whose
  argument is NULL, or that fail the aggregate's FILTER, are not its input (docs/SQL.md §5: SQL
  aggregates skip NULLs), so ``values`` never holds a NULL.
- EMIT CHANGES emits the group's value after every input row: through the class's optional
  ``update_running(state, values) -> (state, results)`` once per group per batch, else by
  ``update`` and ``finish`` once per row (a row at a time is what the result is made of).
- Bad records (docs/SQL.md §7): before any state changes, ``check_rows`` runs the user's
  ``update`` once over the whole batch's input on a fresh state; if it raises, the rows it raises
  on alone are a ``UserFunctionError`` naming the function, which the job's failure strategy
  sends to the dead-letter output (``vs.query`` raises it). An exception that no row causes alone
  (in ``init``, ``merge``, ``finish``, or from the accumulated state) is an error of the job.
- Snapshots: each slot's state is pickled into a binary column (``state``).
"""
from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from .._core.aggregate import update_all as _kernels_update_all
from .._core.window import order_by_end
from ..batch import Column, SqlType, StringDict, _decimal_to_scaled, _scaled_to_decimal
from ..errors import UserFunctionError


@dataclass(frozen=True)
class PythonAggregate:
    """A registered aggregate: its SQL name, the user's class and the result type."""
    name: str
    cls: object
    returns: SqlType


# name (upper case) -> PythonAggregate; filled by ``velostream.udf.udaf``, read by the planner
REGISTRY: dict[str, PythonAggregate] = {}

_EMPTY = object()  # a slot no row has reached (its state would be init())


def lookup(name: str) -> Optional[PythonAggregate]:
    return REGISTRY.get(name)


def is_python(spec) -> bool:
    """Whether an ``AggSpec`` calls a Python aggregate."""
    return spec.func in REGISTRY


def _instance(entry: PythonAggregate):
    """The object whose methods are called: the class instantiated (no arguments), or the object
    given, when it was not a class."""
    return entry.cls() if isinstance(entry.cls, type) else entry.cls


def _fail(entry: PythonAggregate, method: str, exc: BaseException, rows=None) -> UserFunctionError:
    return UserFunctionError(f"Python aggregate {entry.name} raised {type(exc).__name__} in "
                             f"{method}: {exc}", rows=rows)


# ------------------------------------------------------------------------------- the input


def _arrow(col: Column) -> pa.Array:
    """A column as the Arrow array the user's ``update`` sees: text as strings, TIMESTAMP as
    ``timestamp[ms]``, DATE as ``date32``, DECIMAL as decimal128, numbers as int64 / float64 (as ``vs.udf``)."""
    kind = col.type.kind
    if kind == "STRING":
        return col.to_arrow()
    if kind == "NULL":
        return pa.nulls(len(col))
    values, valid = col.values, col.valid
    mask = None if valid is None else ~valid
    if kind == "DECIMAL":
        return _scaled_to_decimal(values, mask, col.type)
    if kind == "TIMESTAMP":
        return pa.array(values.astype(np.int64, copy=False), pa.int64(), mask=mask).cast(
            pa.timestamp("ms"))
    if kind == "DATE":  # as it leaves a query: date32
        from ..batch import dates_to_arrow
        return dates_to_arrow(values, valid)
    dtype = {"FLOAT64": pa.float64(), "BOOL": pa.bool_()}.get(kind, pa.int64())
    return pa.array(values, dtype, mask=mask)


def _input_mask(cols: list, keep) -> Optional[np.ndarray]:
    """The rows that are the aggregate's input: every argument non-NULL and the FILTER true."""
    mask = None
    for c in cols:
        if c.type.kind == "NULL":
            return np.zeros(len(c), dtype=bool)
        if c.valid is not None:
            mask = c.valid if mask is None else mask & c.valid
    if keep is not None:
        mask = keep if mask is None else mask & keep
    return mask


def evaluate_arguments(ev, spec, batch, arg: tuple) -> tuple:
    """A Python aggregate's arguments over the batch, from ``aggregators.evaluate_arguments``'s
    ``(column, FILTER mask, second column)``: the arguments past the second evaluated too, all
    converted to Arrow once (``kernel_input`` of the whole batch), and ``check_rows`` run, all
    before any state changes."""
    col, keep, col2 = arg
    cols = [col] + ([] if col2 is None else [col2])
    cols += [ev.column(a, batch) for a in spec.more_args]
    mask = _input_mask(cols, keep)
    whole = (tuple(_arrow(c) for c in cols), None if mask is None else mask.view(np.uint8))
    check_rows(spec, whole)
    return whole


def kernel_input(spec, whole: tuple, rows: Optional[np.ndarray]):
    """``(values, valid)`` for ``PythonAggregator.update``: one Arrow array per argument (of
    ``rows`` of the batch, or all) and the uint8 mask of the rows that are input (None: all),
    from ``whole``, what ``evaluate_arguments`` gave."""
    if rows is None:
        return whole
    arrays, valid = whole
    idx = pa.array(rows)
    return tuple(a.take(idx) for a in arrays), None if valid is None else valid[rows]


# per thread (a job's partitions are threads): name -> (registration, the instance check_rows calls)
_CHECKERS = threading.local()


def check_rows(spec, whole: tuple) -> None:
    """Run the user's ``update`` once over the batch's whole input (``whole``: the batch's
    ``kernel_input``) on a fresh state, before any state changes; if it raises, the rows it
    raises on alone are bad records (``UserFunctionError`` with their mask over the batch).
    Nothing is flagged when no row fails alone (the failure then came from a combination of rows
    and surfaces, if real, from the per-group calls)."""
    entry = REGISTRY[spec.func]
    arrays, valid = whole
    n = len(arrays[0])
    if n == 0:
        return
    checkers = _CHECKERS.__dict__
    impl = checkers.get(entry.name)
    if impl is None or impl[0] is not entry:  # one instance per registration, not per batch
        impl = checkers[entry.name] = (entry, _instance(entry))
    impl = impl[1]
    rows = None if valid is None else np.flatnonzero(valid)
    picked = arrays if rows is None else tuple(a.take(pa.array(rows)) for a in arrays)
    if len(picked[0]) == 0:
        return
    try:
        state = impl.init()
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise _fail(entry, "init", exc) from exc
    try:
        impl.update(state, *picked)
        return
    except Exception as exc:  # noqa: BLE001 - the user's code: find the rows it fails on
        first = exc
    bad = np.zeros(n, dtype=bool)
    message = None
    for i in (range(n) if rows is None else rows.tolist()):  # only on this failure path
        try:
            impl.update(impl.init(), *(a.slice(i, 1) for a in arrays))
        except Exception as exc:  # noqa: BLE001
            bad[i] = True
            if message is None:
                message = exc
    if bad.any():
        raise _fail(entry, "update", message, rows=bad) from first


# ------------------------------------------------------------------------------ the results


def _result_target(t: SqlType) -> pa.DataType:
    from ..batch import arrow_type_of
    return pa.timestamp("ms") if t.kind == "TIMESTAMP" else arrow_type_of(t)


class PythonAggregator:
    """One Python aggregate's state for every group slot, with the Cython aggregates' interface
    (see the module docstring)."""

    def __init__(self, entry: PythonAggregate, strings: Optional[StringDict] = None):
        self.entry = entry
        self.impl = _instance(entry)
        self.strings = strings
        self.states: list = []
        self.next_seq = 0
        kind = entry.returns.kind
        self.result_dtype = np.dtype(np.float64 if kind == "FLOAT64" else np.int64)
        self._target = _result_target(entry.returns)
        self._running = getattr(self.impl, "update_running", None)  # optional (EMIT CHANGES)

    def __repr__(self):
        return f"PythonAggregator({self.entry.name})"

    @property
    def capacity(self) -> int:
        return len(self.states)

    def ensure_capacity(self, n_slots: int) -> None:
        grow = int(n_slots) - len(self.states)
        if grow > 0:
            self.states.extend([_EMPTY] * grow)

    # -- the user's methods, with their failures named
    def _init(self):
        try:
            return self.impl.init()
        except Exception as exc:  # noqa: BLE001
            raise _fail(self.entry, "init", exc) from exc

    def _finish(self, state):
        try:
            value = self.impl.finish(self._init() if state is _EMPTY else state)
        except UserFunctionError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _fail(self.entry, "finish", exc) from exc
        return value.as_py() if isinstance(value, pa.Scalar) else value

    def _merge(self, a, b):
        try:
            return self.impl.merge(a, b)
        except Exception as exc:  # noqa: BLE001
            raise _fail(self.entry, "merge", exc) from exc

    # -- the aggregate interface
    def update(self, slots, values, valid=None, seq=None) -> None:
        """Fold each group's input rows of the batch into its state: one call of the user's
        ``update`` per group, with the group's rows (in arrival order) as Arrow slices."""
        slots = np.asarray(slots)
        n = len(slots)
        self.next_seq += n
        if n == 0:
            return
        take = slots >= 0
        if valid is not None:
            take &= np.asarray(valid).view(bool)
        rows = None if take.all() else np.flatnonzero(take)
        s = slots if rows is None else slots[rows]
        if len(s) == 0:
            return
        # stable (a group's rows keep their arrival order); slots are small non-negative
        # integers, which the window kernel's counting sort orders in linear time
        order = order_by_end(np.ascontiguousarray(s, dtype=np.int64), 1)
        if order is None:
            order = np.argsort(s, kind="stable")
        ordered = s[order]
        bounds = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(ordered)]))
        idx = order if rows is None else rows[order]
        arrays = [a.take(pa.array(idx)) for a in values]
        states, update = self.states, self.impl.update
        one = arrays[0] if len(arrays) == 1 else None
        try:
            for slot, lo, n_rows in zip(ordered[starts].tolist(), starts.tolist(),
                                        (ends - starts).tolist()):
                state = states[slot]
                if state is _EMPTY:
                    state = self._init()
                if one is not None:
                    states[slot] = update(state, one.slice(lo, n_rows))
                else:
                    states[slot] = update(state, *[a.slice(lo, n_rows) for a in arrays])
        except UserFunctionError:
            raise
        except Exception as exc:  # noqa: BLE001 - no row alone: check_rows ran first
            raise _fail(self.entry, "update", exc) from exc

    def update_emit(self, slots, values, valid, out_values, out_valid, seq=None) -> None:
        """``update``, writing each row's group value right after that row (EMIT CHANGES). With
        the class's optional ``update_running`` that is one call per group per batch; without
        it the result is one value per row, so ``update`` and ``finish`` run per row."""
        slots = np.asarray(slots)
        n = len(slots)
        self.next_seq += n
        if n == 0:
            return
        take = slots >= 0
        if valid is not None:
            take = take & np.asarray(valid).view(bool)
        if self._running is not None:
            self._update_running(slots, values, take, out_values, out_valid)
            return
        states, impl = self.states, self.impl
        current: dict = {}  # slot -> its value after the latest row of this batch
        out = [None] * n
        for i, (slot, add) in enumerate(zip(slots.tolist(), take.tolist())):
            if slot < 0:
                continue
            if add:
                state = states[slot]
                if state is _EMPTY:
                    state = self._init()
                try:
                    states[slot] = state = impl.update(state, *[a.slice(i, 1) for a in values])
                except Exception as exc:  # noqa: BLE001
                    raise _fail(self.entry, "update", exc) from exc
                current[slot] = self._finish(state)
            elif slot not in current:
                current[slot] = self._finish(states[slot])
            out[i] = current[slot]
        v, ok = self._kernel_values(out)
        ok &= (slots >= 0).view(np.uint8)
        np.copyto(np.asarray(out_values), v, casting="unsafe")
        np.copyto(np.asarray(out_valid).view(np.uint8), ok)

    def _update_running(self, slots, values, take, out_values, out_valid) -> None:
        """EMIT CHANGES through ``update_running(state, values) -> (state, results)``: the
        group's value after each of its input rows of the batch, in one call per group. A row
        that is not input (NULL, FILTER) repeats its group's latest value (``finish`` of the
        state before the batch when no input row of the group came before it)."""
        n = len(slots)
        live = np.flatnonzero(slots >= 0)
        if len(live) == 0:  # every row late: NULL
            np.asarray(out_valid).view(np.uint8)[:] = 0
            return
        s = slots[live]
        order = order_by_end(np.ascontiguousarray(s, dtype=np.int64), 1)
        if order is None:
            order = np.argsort(s, kind="stable")
        rows = live[order]  # live rows by slot, each slot's rows in arrival order
        ordered = s[order]
        inc = take[rows]
        bounds = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(rows)]))
        inc_before = np.concatenate(([0], np.cumsum(inc)))  # input rows before each position
        arrays = [a.take(pa.array(rows[inc])) for a in values]
        results: list = []
        before: list = []  # per group: finish of its state before the batch, when a row needs it
        states = self.states
        for slot, lo, hi in zip(ordered[starts].tolist(), starts.tolist(), ends.tolist()):
            state = states[slot]
            before.append(self._finish(state) if not inc[lo] else None)
            ilo, ihi = int(inc_before[lo]), int(inc_before[hi])
            if ihi == ilo:
                continue
            if state is _EMPTY:
                state = self._init()
            try:
                state, res = self._running(state, *[a.slice(ilo, ihi - ilo) for a in arrays])
            except Exception as exc:  # noqa: BLE001
                raise _fail(self.entry, "update_running", exc) from exc
            states[slot] = state
            res = (res.to_pylist() if isinstance(res, (pa.Array, pa.ChunkedArray)) else
                   res.tolist() if isinstance(res, np.ndarray) else list(res))
            if len(res) != ihi - ilo:
                raise UserFunctionError(f"Python aggregate {self.entry.name}: update_running "
                                        f"returned {len(res)} results for {ihi - ilo} rows")
            results += res
        # each position's value: the latest input row of its group so far, else ``before``
        last_input = inc_before[1:] - 1  # index in ``results`` of the latest input row so far
        group = np.repeat(np.arange(len(starts)), ends - starts)
        pick = np.where(last_input >= inc_before[starts][group], last_input, len(results) + group)
        v, ok = self._kernel_values(results + before)
        out = np.asarray(out_values)
        ok_out = np.asarray(out_valid).view(np.uint8)
        ok_out[:] = 0
        out[rows] = v[pick]
        ok_out[rows] = ok[pick]
        if n != len(rows):  # rows without a slot (late) are NULL
            out[slots < 0] = 0

    def result(self, slots):
        """Current values of ``slots`` as ``(values of result_dtype, valid as bool)``."""
        slots = np.asarray(slots)
        states = self.states
        v, ok = self._kernel_values([None if s < 0 else self._finish(states[s])
                                     for s in slots.tolist()])
        return v, ok.view(bool)

    def reset(self, slots) -> None:
        states = self.states
        for s in np.asarray(slots).tolist():
            if s >= 0:
                states[s] = _EMPTY

    def merge(self, dst_slots, other: "PythonAggregator", src_slots) -> None:
        """Fold ``other``'s state of ``src_slots[i]`` into ``dst_slots[i]`` with the user's
        ``merge`` (a partition's partial state into the coordinator's, two sessions into one).
        A state is never shared between slots: an empty destination merges into a fresh
        ``init()``, so the source may go on changing."""
        if not isinstance(other, PythonAggregator) or other.entry.name != self.entry.name:
            raise TypeError(f"cannot merge {other!r} into {self!r}")
        states, theirs = self.states, other.states
        for d, s in zip(np.asarray(dst_slots).tolist(), np.asarray(src_slots).tolist()):
            if d < 0 or s < 0 or (d == s and other is self):
                continue
            src = theirs[s]
            if src is _EMPTY:
                continue
            dst = states[d]
            states[d] = self._merge(self._init() if dst is _EMPTY else dst, src)

    # -- snapshots
    def export_state(self, slots) -> dict:
        """``state``: each slot's state pickled (None for an empty slot), for a snapshot."""
        out = []
        for s in np.asarray(slots).tolist():
            st = self.states[s]
            if st is _EMPTY:
                out.append(None)
                continue
            try:
                out.append(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception as exc:  # noqa: BLE001
                raise UserFunctionError(f"Python aggregate {self.entry.name}: its state "
                                        f"{type(st).__name__} cannot be pickled for a snapshot "
                                        f"({type(exc).__name__}: {exc})") from exc
        state = np.empty(len(out), dtype=object)
        state[:] = out
        return {"next_seq": np.array([self.next_seq], dtype=np.int64), "state": state}

    def import_state(self, slots, state: dict) -> None:
        if "next_seq" in state:
            self.next_seq = int(state["next_seq"][0])
        slots = np.asarray(slots).tolist()
        if not slots:
            return
        pickled = state["state"]
        self.ensure_capacity(max(slots) + 1)
        for s, b in zip(slots, pickled):
            self.states[s] = _EMPTY if b is None else pickle.loads(b)

    # -- values the user returned -> what finish_values takes
    def _kernel_values(self, values: list) -> tuple[np.ndarray, np.ndarray]:
        t = self.entry.returns
        try:
            arr = pa.array(values, type=self._target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError,
                ValueError, OverflowError):
            try:  # e.g. 2.0 for a BIGINT: a safe cast says whether it is exact
                arr = pa.array(values).cast(self._target)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError,
                    ValueError, OverflowError) as exc:
                sample = next((v for v in values if v is not None), None)
                raise UserFunctionError(f"Python aggregate {self.entry.name}: finish returned "
                                        f"{sample!r}, not {t} ({exc})") from None
        ok = (arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count
              else np.ones(len(arr), dtype=bool)).astype(np.uint8)
        kind = t.kind
        if kind == "STRING":
            codes, _ = self.strings.encode_arrow(arr)
            return codes.astype(np.int64), ok
        if kind == "DECIMAL":
            return _decimal_to_scaled(arr, t.scale).astype(np.int64), ok
        if kind == "TIMESTAMP":
            arr = arr.cast(pa.int64())
        elif kind == "DATE":  # held as its midnight's epoch ms
            arr = arr.cast(pa.timestamp("ms")).cast(pa.int64())
        elif kind == "BOOL":
            arr = arr.cast(pa.int64())
        filled = arr.fill_null(0) if arr.null_count else arr
        return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=self.result_dtype), ok


def make(spec, strings: Optional[StringDict] = None) -> PythonAggregator:
    """The aggregator for an ``AggSpec`` calling a registered Python aggregate."""
    return PythonAggregator(REGISTRY[spec.func], strings)


def update_all(aggs: list, slots, values: list, valids: list, seq=None) -> None:
    """``_core.aggregate.update_all`` for a list that may hold Python aggregates: the kernels go
    through it together (one scan of the slots), the Python ones one by one."""
    if not any(type(a) is PythonAggregator for a in aggs):
        _kernels_update_all(aggs, slots, values, valids, seq)
        return
    kernel = [j for j, a in enumerate(aggs) if type(a) is not PythonAggregator]
    if kernel:
        _kernels_update_all([aggs[j] for j in kernel], slots, [values[j] for j in kernel],
                           [valids[j] for j in kernel], seq)
    for a, v, ok in zip(aggs, values, valids):
        if type(a) is PythonAggregator:
            a.update(slots, v, ok, seq)
