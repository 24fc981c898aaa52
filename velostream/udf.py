"""Scalar functions written in Python (docs/FUNCTIONS.md, "Python functions").

``vs.udf("name", fn, returns="DOUBLE")`` makes ``NAME(...)`` callable from SQL in ``vs.query``,
``vs.Engine`` and job files (``'udf.modules' = 'my_pkg.functions'`` imports modules that register
their functions). ``fn`` is called once per batch with one Arrow array per argument (TEXT as
strings, TIMESTAMP as ``timestamp[ms]``, DATE as ``date32``, constants broadcast) and returns an Arrow array (or
anything ``pyarrow.array`` takes) of the same length, cast to ``returns``.

An exception inside ``fn`` is a bad record, not a dead job: the batch's rows are tried one by one
(only then) to find the rows it fails on; those go to the job's failure strategy with the
function's name (``UserFunctionError``), the others keep their values.

``vs.udaf("name", cls, returns="DOUBLE")`` registers an aggregate function (its class gives
``init``, ``update``, ``merge`` and ``finish``; run by ``velostream/exec/udaf.py``).
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from .batch import arrow_type_of
from .errors import SqlError, UserFunctionError
from .exec import expressions as X
from .exec import functions as F
from .exec import udaf as U
from .sql.function_names import GROUP_WINDOW_NAMES
from .sql import ast

_LOCK = threading.Lock()


@dataclass(frozen=True)
class PythonFunction:
    name: str
    fn: Callable
    returns: object  # SqlType


_REGISTRY: dict[str, PythonFunction] = {}


def _not_a_group_window(key: str) -> None:
    """The parser reads Flink's group window functions (TUMBLE, TUMBLE_START, ...) as the
    statement's window (docs/SQL.md §10): a Python function of such a name would never be
    called, or be silently replaced by the window's start or end."""
    if key in GROUP_WINDOW_NAMES:
        raise ValueError(f"{key} is a group window function (GROUP BY TUMBLE(ts, size) and its "
                         f"_START / _END / _ROWTIME); give the Python function another name")


def udf(name: str, fn: Callable, returns: str = "DOUBLE") -> Callable:
    """Register ``fn`` as the scalar SQL function ``name`` (case-insensitive) returning
    ``returns`` (a SQL type name: BIGINT, DOUBLE, VARCHAR, BOOLEAN, TIMESTAMP, DATE, DECIMAL(p, s)).

    >>> import velostream as vs, pyarrow.compute as pc
    >>> _ = vs.udf("double_it", lambda x: pc.multiply(x, 2), returns="BIGINT")
    >>> vs.query("SELECT double_it(x) AS y FROM t", {"t": {"x": [1, 2, None]}}).to_pylist()
    [{'y': 2}, {'y': 4}, {'y': None}]
    """
    from . import planner
    key = _name(name)
    builtin = F.TABLE.get(key)
    if builtin is not None and key not in _REGISTRY:
        raise ValueError(f"{key} is a built-in function; give the Python function another name")
    if key in U.REGISTRY:
        raise ValueError(f"{key} is a Python aggregate (vs.udaf); give the function another name")
    if key in planner.AGGREGATES or key in planner.ANALYTIC or key == "COUNT_DISTINCT":
        # the planner reads these names as aggregates: a scalar function of that name is never called
        raise ValueError(f"{key} is a built-in aggregate; give the Python function another name")
    _not_a_group_window(key)
    t = _type(returns)
    entry = PythonFunction(key, fn, t)
    with _LOCK:
        _REGISTRY[key] = entry
        F.TABLE[key] = F.Function(key, f"{key}(...) -> {returns}", "a Python function (vs.udf)",
                                  "", None, bind=_binder(entry), evaluate=_evaluate,
                                  group="Python")
        X._OPS[key] = _evaluate
    return fn


def udaf(name: str, cls, returns: str = "DOUBLE"):
    """Register the aggregate SQL function ``name`` (case-insensitive) returning ``returns``.

    ``cls`` (a class, instantiated without arguments, or an object) gives ``init() -> state``,
    ``update(state, values) -> state`` (``values``: an Arrow array of one group's non-NULL input
    rows of a batch; with several arguments, ``update(state, a, b, ...)`` gets one array per
    argument, rows where any is NULL left out), ``merge(a, b) -> state`` (two partial states of one
    group), ``finish(state) -> value`` and optionally ``update_running(state, values) ->
    (state, results)`` (EMIT CHANGES: the value after each row). The state must pickle. See
    docs/FUNCTIONS.md, "Python aggregates".

    >>> import velostream as vs, pyarrow.compute as pc
    >>> class SumSq:
    ...     def init(self): return 0.0
    ...     def update(self, s, x): return s + pc.sum(pc.multiply(x, x)).as_py() if len(x) else s
    ...     def merge(self, a, b): return a + b
    ...     def finish(self, s): return s
    >>> _ = vs.udaf("sum_sq", SumSq)
    >>> vs.query("SELECT k, sum_sq(x) AS s FROM t GROUP BY k EMIT FINAL",
    ...          {"t": {"k": [1, 1, 2], "x": [1.0, 2.0, None]}}).to_pylist()
    [{'k': 1, 's': 5.0}, {'k': 2, 's': 0.0}]
    """
    from . import planner
    key = _name(name)
    if (key in F.TABLE and key not in _REGISTRY) or (
            key in planner.AGGREGATES and key not in U.REGISTRY) or key in planner.ANALYTIC:
        raise ValueError(f"{key} is a built-in function; give the Python aggregate another name")
    if key in _REGISTRY:
        raise ValueError(f"{key} is a Python scalar function (vs.udf); give the aggregate "
                         "another name")
    _not_a_group_window(key)
    obj = cls() if isinstance(cls, type) else cls
    missing = [m for m in ("init", "update", "merge", "finish")
               if not callable(getattr(obj, m, None))]
    if missing:
        raise ValueError(f"a Python aggregate's class needs init, update, merge and finish "
                         f"methods; {getattr(cls, '__name__', cls)!r} lacks {', '.join(missing)}")
    t = _type(returns)
    if t.kind == "NULL":
        raise ValueError(f"returns={returns!r}: an aggregate returns a value type")
    with _LOCK:
        U.REGISTRY[key] = U.PythonAggregate(key, cls, t)
        planner.AGGREGATES.add(key)  # the planner binds it (and "did you mean" offers it)
    return cls


def _name(name: str) -> str:
    key = str(name).upper()
    if not key.replace("_", "").isalnum() or key[0].isdigit():
        raise ValueError(f"not a function name: {name!r}")
    return key


def load_modules(names: str) -> None:
    """``'udf.modules' = 'a.b, c'``: import each module (it registers its functions)."""
    for mod in (m.strip() for m in names.split(",")):
        if mod:
            try:
                importlib.import_module(mod)
            except ImportError as exc:
                raise ValueError(f"udf.modules: cannot import {mod!r}: {exc}") from None


def _type(returns: str):
    from .sql.parser import TYPE_NAMES, _Parser
    p = _Parser(str(returns))
    try:
        tn = p.type_name()
    except SqlError:
        raise ValueError(f"returns={returns!r} is not a SQL type (one of "
                         f"{', '.join(sorted(set(TYPE_NAMES.values())))})") from None
    return X._cast_type(tn if isinstance(tn, ast.TypeName) else tn)


def _binder(entry: PythonFunction):
    def bind(c: F.Call):
        return X.BCall(entry.returns, entry.name, tuple(c.args))
    return bind


def _arrow(ev, b, val, n: int) -> pa.Array:
    """An argument's value as an Arrow array of the batch's length."""
    t = b.type
    if t.kind == "STRING":
        return ev.to_arrow_strings(val, n)
    v, ok = val.v, X._norm_valid(val.ok)
    if np.ndim(v) == 0:
        if ok is False or v is None:
            return pa.nulls(n, arrow_type_of(t) if t.kind != "NULL" else pa.null())
        v = np.full(n, v)
    mask = None if ok is None or ok is True else ~np.asarray(ok, dtype=bool)
    if t.kind == "TIMESTAMP":
        return pa.array(np.asarray(v, dtype=np.int64), pa.int64(), mask=mask).cast(
            pa.timestamp("ms"))
    if t.kind == "DATE":  # as it leaves a query: date32
        from .batch import dates_to_arrow
        return dates_to_arrow(np.asarray(v, dtype=np.int64), None if mask is None else ~mask)
    if t.kind == "DECIMAL":
        from .batch import _scaled_to_decimal
        return _scaled_to_decimal(np.asarray(v, dtype=np.int64), mask, t)
    if t.kind == "NULL":
        return pa.nulls(n)
    return pa.array(v, arrow_type_of(t), mask=mask)


def _result(ev, entry: PythonFunction, out, n: int) -> X.Val:
    arr = out if isinstance(out, (pa.Array, pa.ChunkedArray)) else pa.array(out)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) != n:
        raise UserFunctionError(f"Python function {entry.name} returned {len(arr)} values for "
                                f"{n} rows", rows=np.ones(n, dtype=bool))
    t = entry.returns
    if t.kind == "STRING":
        return ev.from_arrow_strings(arr.cast(pa.string()))
    target = pa.timestamp("ms") if t.kind == "TIMESTAMP" else arrow_type_of(t)
    try:
        arr = arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise UserFunctionError(f"Python function {entry.name} returned {arr.type}, not "
                                f"{t}: {exc}", rows=np.ones(n, dtype=bool)) from None
    valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else None
    if t.kind == "TIMESTAMP":
        arr = arr.cast(pa.int64())
    if t.kind == "DATE":  # held as its midnight's epoch ms
        arr = arr.cast(pa.timestamp("ms")).cast(pa.int64())
    if t.kind == "DECIMAL":
        from .batch import _decimal_to_scaled
        values = _decimal_to_scaled(arr, t.scale)
    else:
        values = arr.fill_null(0 if t.kind != "BOOL" else False).to_numpy(zero_copy_only=False)
    return X.Val(values, valid, t)


def _evaluate(ev, b, batch) -> X.Val:
    entry = _REGISTRY[b.fn]
    n = batch.length
    args = [_arrow(ev, a, ev.eval(a, batch), n) for a in b.args]
    try:
        out = entry.fn(*args)
    except Exception as exc:  # noqa: BLE001 - the user's code: its failing rows are bad records
        raise _failing_rows(entry, args, n, exc) from exc
    return _result(ev, entry, out, n)


def _failing_rows(entry: PythonFunction, args: list, n: int, first: Exception):
    """The function raised on the batch: find the rows it raises on alone (one call per row,
    only on this path) and name the first failure."""
    rows = np.zeros(n, dtype=bool)
    message = None
    for i in range(n):
        try:
            entry.fn(*[a.slice(i, 1) for a in args])
        except Exception as exc:  # noqa: BLE001
            rows[i] = True
            if message is None:
                message = f"{type(exc).__name__}: {exc}"
    if not rows.any():  # fails on the whole batch only: every row is its bad record
        rows[:] = True
        message = f"{type(first).__name__}: {first}"
    return UserFunctionError(f"Python function {entry.name} raised {message}", rows=rows)
