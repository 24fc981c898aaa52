"""Test oracles shared by the differential and semantics suites.

* ``duck``: run a query on DuckDB (one thread, NULL for integer division by zero) over Arrow tables.
* ``assert_rows_equal``: multiset (or ordered) row comparison with float tolerance, NaN == NaN and
  None == None, with a readable diff.
* ``make_table`` / ``split_batches``: seeded generated data (NULLs in keys and values, one hot key)
  cut into record batches of varying sizes.
* ``ref_sessions`` / ``collapse_session_changes``: SESSION windows (docs/SQL.md §4) computed the
  obvious way, and a changelog folded to its final rows.
"""
from __future__ import annotations

import decimal
import math
from collections import defaultdict
from typing import Any, Iterable, Optional, Sequence

import duckdb
import numpy as np
import pyarrow as pa

REL = 1e-9
ABS = 1e-9


# ------------------------------------------------------------------------------------- DuckDB


_CON = None


def duck(sql: str, **tables: Any) -> list[tuple]:
    """Rows of ``sql`` run by DuckDB (one thread, so ``first``/``last`` follow the scan order;
    integer division by zero gives NULL) over the given tables (Arrow tables, batches or dicts)."""
    global _CON
    if _CON is None:
        _CON = duckdb.connect()
        _CON.execute("SET threads=1")
        _CON.execute("SET error_on_division_by_zero=false")
    con = _CON
    names = []
    try:
        for name, t in tables.items():
            if isinstance(t, dict):
                t = pa.table(t)
            elif isinstance(t, list):
                t = pa.Table.from_batches(t)
            con.register(name, t)
            names.append(name)
        return con.execute(sql).fetchall()
    finally:
        for name in names:
            con.unregister(name)


# --------------------------------------------------------------------------------- comparison


def _is_num(v) -> bool:
    return isinstance(v, (int, float, decimal.Decimal, np.integer, np.floating)) and not isinstance(v, bool)


def values_equal(a, b) -> bool:
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int) :
        return a == b
    if ta is float and type(b) is float and a == b:
        return True
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return (isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_)) and bool(a) == bool(b))
    if _is_num(a) and _is_num(b):
        if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
            return a == b
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        if math.isinf(fa) or math.isinf(fb):
            return fa == fb
        if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
            return int(a) == int(b)
        return math.isclose(fa, fb, rel_tol=REL, abs_tol=ABS)
    return a == b


def rows_equal(a: Sequence, b: Sequence) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))


def _sort_value(v):
    t = type(v)
    if t is str:
        return (4, 0.0, v)
    if v is None:
        return (0, 0.0, "")
    if t is bool or t is np.bool_:
        return (1, float(v), "")
    try:
        f = float(v)
    except (TypeError, ValueError):
        return (5, 0.0, str(v))
    if f != f:
        return (2, 0.0, "")
    # coarse, so values equal within tolerance almost always sort alike (misses are matched later)
    return (3, round(f, 4) if -1e12 < f < 1e12 else f, "")


def _sort_key(row):
    return tuple(map(_sort_value, row))


def as_tuples(rows: Iterable, columns: Optional[Sequence[str]] = None) -> list[tuple]:
    """Dicts (``Result.to_pylist()``) or sequences as tuples, optionally picking ``columns``."""
    out = []
    for r in rows:
        if isinstance(r, dict):
            out.append(tuple(r[c] for c in columns) if columns is not None else tuple(r.values()))
        else:
            out.append(tuple(r))
    return out


def _fmt(rows, limit=12) -> str:
    lines = [repr(r) for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"... ({len(rows) - limit} more)")
    return "\n    ".join(lines)


def assert_rows_equal(actual, expected, *, ordered: bool = False, what: str = "rows") -> None:
    """``actual`` == ``expected`` as multisets (or lists when ``ordered``) of tuples, with float
    tolerance. Dicts are turned into tuples of their values."""
    actual, expected = as_tuples(actual), as_tuples(expected)
    if ordered:
        for i, (x, y) in enumerate(zip(actual, expected)):
            if not rows_equal(x, y):
                raise AssertionError(f"{what}: row {i} differs:\n  engine:   {x!r}\n  expected: {y!r}"
                                     f"\n  ({len(actual)} vs {len(expected)} rows)")
        assert len(actual) == len(expected), (
            f"{what}: {len(actual)} rows from the engine, {len(expected)} expected\n  engine tail:\n    "
            f"{_fmt(actual[len(expected):])}\n  expected tail:\n    {_fmt(expected[len(actual):])}")
        return
    sa, se = sorted(actual, key=_sort_key), sorted(expected, key=_sort_key)
    if len(sa) == len(se) and all(rows_equal(x, y) for x, y in zip(sa, se)):
        return
    # Sorting may pair nearly-equal floats differently: match each row to an unused equal row
    # near its sorted position.
    used = [False] * len(se)
    extra = []
    width = 64
    for i, row in enumerate(sa):
        lo, hi = max(0, i - width), min(len(se), i + width + 1)
        for j in range(lo, hi):
            if not used[j] and rows_equal(row, se[j]):
                used[j] = True
                break
        else:
            extra.append(row)
    unmatched = [r for r, u in zip(se, used) if not u]
    if extra or unmatched:
        raise AssertionError(
            f"{what}: {len(actual)} rows from the engine, {len(expected)} expected;\n"
            f"  only in the engine ({len(extra)}):\n    {_fmt(extra)}\n"
            f"  only in the reference ({len(unmatched)}):\n    {_fmt(unmatched)}")


def assert_rows_by_id(actual, expected, names: Sequence[str], what: str = "rows") -> None:
    """Rows keyed by a unique first column (``seq``): same ids, and every column equal. On a
    mismatch, says which columns differ, how often, with examples."""
    actual, expected = as_tuples(actual), as_tuples(expected)
    a = {r[0]: r for r in actual}
    e = {r[0]: r for r in expected}
    assert len(a) == len(actual), f"{what}: duplicate ids in the engine's output"
    missing, extra = sorted(set(e) - set(a)), sorted(set(a) - set(e))
    assert not missing and not extra, (f"{what}: ids only in the reference {missing[:10]} "
                                       f"({len(missing)}), only in the engine {extra[:10]} ({len(extra)})")
    bad: dict[str, list] = defaultdict(list)
    for i, row in e.items():
        for j, (x, y) in enumerate(zip(a[i], row)):
            if not values_equal(x, y):
                bad[names[j]].append((i, x, y))
    if bad:
        lines = [f"{col}: {len(v)} of {len(e)} rows differ, e.g. " +
                 ", ".join(f"id {i}: engine {x!r} expected {y!r}" for i, x, y in v[:3])
                 for col, v in bad.items()]
        raise AssertionError(f"{what}:\n  " + "\n  ".join(lines))


def group_in_order(rows: Iterable[tuple], key_idx: Sequence[int]) -> dict[tuple, list[tuple]]:
    """Rows grouped by the columns ``key_idx`` (NaN-safe keys), each group in input order."""
    out: dict[tuple, list[tuple]] = defaultdict(list)
    for r in rows:
        out[tuple(_hashable(r[i]) for i in key_idx)].append(tuple(r))
    return dict(out)


def _hashable(v):
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return v


def assert_changelog_equal(actual, expected, key_idx: Sequence[int], what: str = "changelog") -> None:
    """Per key, the engine's rows in emission order equal the expected rows in order (across keys
    no order is promised)."""
    a = group_in_order(as_tuples(actual), key_idx)
    e = group_in_order(as_tuples(expected), key_idx)
    assert set(a) == set(e), (f"{what}: keys differ: only engine {set(a) - set(e)}, "
                              f"only expected {set(e) - set(a)}")
    for k in e:
        assert_rows_equal(a[k], e[k], ordered=True, what=f"{what} key {k!r}")


def rows_per_key(table, keys: Sequence[str]) -> dict:
    """An Arrow table's rows (dicts) by their values of ``keys``, each key's in table order."""
    out: dict = {}
    for row in table.to_pylist():
        out.setdefault(tuple(row[k] for k in keys), []).append(row)
    return out


def last_per_key(rows: Iterable[tuple], key_idx: Sequence[int]) -> list[tuple]:
    """The last row of every key (a changelog collapsed to its final state)."""
    return [v[-1] for v in group_in_order(rows, key_idx).values()]


# ----------------------------------------------------------------------------------- test data


def make_table(n: int, seed: int, *, nkeys: int = 8, null_frac: float = 0.1, hot: float = 0.4,
               t0: int = 1_700_000_000_000, max_step_ms: int = 1500) -> pa.Table:
    """Generated records in event-time order.

    Columns: ``seq`` (0..n-1), ``ks`` (string key, NULLs, one hot key 'k0'), ``ki`` (int key,
    NULLs, hot key 0), ``xi`` (int64 values with NULLs), ``xf`` (float64 values with NULLs, some
    duplicated), ``s`` (short strings with NULLs), ``ts`` (epoch ms, non-decreasing) and
    ``_TIMESTAMP`` (= ts).
    """
    rng = np.random.default_rng(seed)
    kidx = np.where(rng.random(n) < hot, 0, rng.integers(0, nkeys, n))

    def nulls():
        return rng.random(n) < null_frac

    ks = pa.array([f"k{i}" for i in kidx], type=pa.string(), mask=nulls())
    ki = pa.array(kidx.astype(np.int64) * 7 - 14, type=pa.int64(), mask=nulls())
    xi = pa.array(rng.integers(-50, 200, n).astype(np.int64), type=pa.int64(), mask=nulls())
    xf_vals = np.round(rng.normal(20.0, 40.0, n), 2)
    xf_vals[rng.random(n) < 0.1] = 2.5  # ties for MIN/MAX/MEDIAN/COUNT DISTINCT
    xf = pa.array(xf_vals, type=pa.float64(), mask=nulls())
    words = np.array(["apple", "Banana", "cherry", "date", "Elder", "fig", "grape", "", "a_b", "x%y"])
    s = pa.array(words[rng.integers(0, len(words), n)].tolist(), type=pa.string(), mask=nulls())
    ts = t0 + np.cumsum(rng.integers(0, max_step_ms, n)).astype(np.int64)
    return pa.table({"seq": pa.array(np.arange(n, dtype=np.int64)), "ks": ks, "ki": ki, "xi": xi,
                     "xf": xf, "s": s, "ts": pa.array(ts), "_TIMESTAMP": pa.array(ts)})


def split_batches(table: pa.Table, sizes: Sequence[int] | int, seed: int = 0) -> list[pa.RecordBatch]:
    """``table`` as record batches: a fixed size, or sizes cycling through ``sizes``, shuffled."""
    if isinstance(sizes, int):
        sizes = [sizes]
    rng = np.random.default_rng(seed)
    out, off, i = [], 0, 0
    n = table.num_rows
    order = list(sizes)
    while off < n:
        size = order[i % len(order)] if len(order) == 1 else int(rng.choice(order))
        part = table.slice(off, size).combine_chunks()
        out.extend(part.to_batches() or [])
        off += size
        i += 1
    return [b for b in out if b.num_rows]


# ----------------------------------------------------------------------------- SESSION windows


def ref_sessions(records: Iterable[tuple[Any, int, Any]], gap: int) -> list[tuple]:
    """Final SESSION windows with no lateness: ``records`` are (key, t, value).

    Returns (key, start, end, count, sum of non-NULL values or None) per session, where per key
    records closer than ``gap`` (sorted by time) form one session ``[first, last + gap)``.
    """
    by_key: dict[Any, list[tuple[int, Any]]] = defaultdict(list)
    for k, t, v in records:
        by_key[k].append((t, v))
    out = []
    for k, rs in by_key.items():
        rs.sort(key=lambda r: r[0])
        cur = None
        for t, v in rs:
            if cur is not None and t - cur[1] < gap:
                cur[1] = t
                cur[2].append(v)
            else:
                if cur is not None:
                    out.append(_session_row(k, cur, gap))
                cur = [t, t, [v]]
        out.append(_session_row(k, cur, gap))
    return out


def _session_row(k, cur, gap):
    vals = [v for v in cur[2] if v is not None]
    return (k, cur[0], cur[1] + gap, len(cur[2]), sum(vals) if vals else None)


def collapse_session_changes(rows: Iterable[tuple], key_idx: Sequence[int], start_idx: int,
                             end_idx: int) -> list[tuple]:
    """Fold a SESSION changelog: a change row replaces every earlier row of its key whose
    ``[start, end)`` overlaps it (the same session, grown or merged). What remains per key are the
    sessions' final rows."""
    live: dict[tuple, list[tuple]] = defaultdict(list)
    for r in rows:
        k = tuple(_hashable(r[i]) for i in key_idx)
        s, e = r[start_idx], r[end_idx]
        live[k] = [o for o in live[k] if not (o[start_idx] < e and s < o[end_idx])] + [tuple(r)]
    return [r for rs in live.values() for r in rs]
