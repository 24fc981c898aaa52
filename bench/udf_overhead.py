"""The cost a Python scalar function (``vs.udf``) adds per row over calling the same function on
the whole array directly, at 64 K-row batches (docs/FUNCTIONS.md, "Python functions").

    python bench/udf_overhead.py [rows] [repeats]
    python bench/udf_overhead.py udaf [rows] [repeats]   (vs.udaf against the built-in SUM)

overhead per row = (query with the function - the same query projecting the column - direct
calls of the function on the batches) / rows, each the best of ``repeats``.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import velostream as vs


def best(fn, repeats):
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out


def main(rows: int = 2_000_000, repeats: int = 5) -> dict:
    def f(x):
        return pc.multiply(x, 2.0)
    vs.udf("bench_twice", f, returns="DOUBLE")
    t = pa.table({"x": pa.array(np.random.default_rng(1).random(rows))})
    batches = t.to_batches(max_chunksize=65_536)
    direct = best(lambda: [f(b.column(0)) for b in batches], repeats)
    plain = best(lambda: vs.query("SELECT x AS y FROM t", {"t": batches}), repeats)
    with_udf = best(lambda: vs.query("SELECT bench_twice(x) AS y FROM t", {"t": batches}), repeats)
    over = (with_udf - plain - direct) / rows * 1e9
    return {"rows": rows, "direct_s": round(direct, 4), "plain_query_s": round(plain, 4),
            "udf_query_s": round(with_udf, 4), "overhead_ns_per_row": round(over, 2)}


class _PySum:
    """The trivial Python aggregate: a sum through pyarrow.compute."""

    def init(self):
        return 0.0

    def update(self, state, x):
        return state + (pc.sum(x).as_py() or 0.0)

    def merge(self, a, b):
        return a + b

    def finish(self, state):
        return state


class _PyRunningSum(_PySum):
    """The same sum with ``update_running`` (EMIT CHANGES in one call per group per batch)."""

    def update_running(self, state, x):
        sums = pc.add(pc.cumulative_sum(x), state)
        return sums[-1].as_py(), sums


def udaf_main(rows: int = 2_000_000, repeats: int = 3, groups=(20, 10_000)) -> dict:
    """The cost a Python aggregate (``vs.udaf``) adds per row over the built-in SUM: a GROUP BY
    ... EMIT FINAL over ``rows`` rows in 64 K-row batches, for each number of groups (one call of
    the class's ``update`` per group per batch, so more groups cost more)."""
    vs.udaf("bench_py_sum", _PySum)
    rng = np.random.default_rng(1)
    out = {"rows": rows}
    for g in groups:
        t = pa.table({"k": pa.array(rng.integers(0, g, rows)), "x": pa.array(rng.random(rows))})
        batches = t.to_batches(max_chunksize=65_536)
        builtin = best(lambda: vs.query("SELECT k, SUM(x) AS s FROM t GROUP BY k EMIT FINAL",
                                        {"t": batches}), repeats)
        python = best(lambda: vs.query("SELECT k, bench_py_sum(x) AS s FROM t GROUP BY k "
                                       "EMIT FINAL", {"t": batches}), repeats)
        out[f"groups_{g}"] = {"sum_s": round(builtin, 4), "udaf_s": round(python, 4),
                              "overhead_ns_per_row": round((python - builtin) / rows * 1e9, 1)}
    # EMIT CHANGES at 20 groups: with update_running, and without (per row: on fewer rows)
    vs.udaf("bench_py_running_sum", _PyRunningSum)
    t = pa.table({"k": pa.array(rng.integers(0, 20, rows)), "x": pa.array(rng.random(rows))})
    changes = {}
    for name, fn, n in (("SUM", "SUM", rows), ("update_running", "bench_py_running_sum", rows),
                        ("per_row", "bench_py_sum", min(rows, 50_000))):
        batches = t.slice(0, n).to_batches(max_chunksize=65_536)
        sql = f"SELECT k, {fn}(x) AS s FROM t GROUP BY k EMIT CHANGES"
        changes[f"{name}_ns_per_row"] = round(best(lambda: vs.query(sql, {"t": batches}),
                                                   repeats) / n * 1e9, 1)
    out["emit_changes_groups_20"] = changes
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["udaf"]:
        print(json.dumps(udaf_main(*[int(a) for a in sys.argv[2:4]])))
    else:
        print(json.dumps(main(*[int(a) for a in sys.argv[1:3]])))
