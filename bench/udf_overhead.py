"""The cost a Python scalar function (``vs.udf``) adds per row over calling the same function on
the whole array directly, at 64 K-row batches (docs/FUNCTIONS.md, "Python functions").

    python bench/udf_overhead.py [rows] [repeats]

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


if __name__ == "__main__":
    print(json.dumps(main(*[int(a) for a in sys.argv[1:3]])))
