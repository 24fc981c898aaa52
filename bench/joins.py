"""The three join scenarios of docs/PERFORMANCE.md ("Joins") against DuckDB (2 threads) on the
same Arrow input, best of N wall times in one run:

* enrichment: 2 M trades joined with a static 10,000-row instrument table (DuckDB: hash join);
* temporal: a LEFT join with a versioned table, 3 versions per instrument (DuckDB: ASOF LEFT JOIN);
* interval: 2 M trades joined with 500 K quotes of the same symbol within +-1 s (DuckDB: the same
  range condition).

velostream runs at 1 and 2 partitions and its best counts (the ratio is DuckDB's best time over
velostream's); each side's median over the repeats is reported too, as the machine may be shared.

    python bench/joins.py [trades] [repeats]
"""
from __future__ import annotations

import gc
import json
import sys
import time

import duckdb
import numpy as np
import pyarrow as pa

import velostream as vs

INSTRUMENTS = 10_000


def data(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    syms = np.array([f"S{i:05d}" for i in range(INSTRUMENTS)], dtype=object)
    ts = np.arange(n, dtype=np.int64) * 5  # 200 trades per second
    trades = pa.table({"sym": pa.array(syms[rng.integers(0, INSTRUMENTS, n)]),
                       "qty": pa.array(rng.integers(1, 1000, n)),
                       "ts": pa.array(ts), "_TIMESTAMP": pa.array(ts)})
    static = pa.table({"sym": pa.array(syms), "sector": pa.array([f"sec{i % 97}" for i in
                                                                 range(INSTRUMENTS)])})
    span = int(ts[-1]) if n else 1
    vt = np.sort(np.concatenate([np.zeros(INSTRUMENTS, np.int64),
                                 rng.integers(0, span, 2 * INSTRUMENTS)]))
    versions = pa.table({"sym": pa.array(np.concatenate([syms, syms[rng.integers(0, INSTRUMENTS,
                                                                                 2 * INSTRUMENTS)]])
                                         [np.argsort(np.argsort(vt))]),
                         "rating": pa.array(rng.integers(0, 10, 3 * INSTRUMENTS)),
                         "_TIMESTAMP": pa.array(vt)})
    nq = n // 4
    qts = np.sort(rng.integers(0, span + 1, nq)).astype(np.int64)
    quotes = pa.table({"sym": pa.array(syms[rng.integers(0, INSTRUMENTS, nq)]),
                       "bid": pa.array(rng.random(nq) * 100),
                       "ts": pa.array(qts), "_TIMESTAMP": pa.array(qts)})
    return trades, static, versions, quotes


SCENARIOS = {
    "enrichment": (
        "CREATE TABLE inst (sym VARCHAR, sector VARCHAR, PRIMARY KEY (sym));"
        "SELECT t.sym, t.qty, i.sector FROM trades t JOIN inst i ON t.sym = i.sym",
        "SELECT t.sym, t.qty, i.sector FROM trades t JOIN inst i ON t.sym = i.sym"),
    "temporal": (
        "CREATE TABLE inst (sym VARCHAR, rating BIGINT, _TIMESTAMP BIGINT, PRIMARY KEY (sym));"
        "SELECT t.sym, t.qty, i.rating FROM trades t LEFT JOIN inst i ON t.sym = i.sym",
        "SELECT t.sym, t.qty, i.rating FROM trades t ASOF LEFT JOIN inst i "
        "ON t.sym = i.sym AND t.ts >= i._TIMESTAMP"),
    "interval": (
        "SELECT t.sym, t.qty, q.bid FROM trades t JOIN quotes q ON t.sym = q.sym "
        "AND q.ts BETWEEN t.ts - 1000 AND t.ts + 1000",
        "SELECT t.sym, t.qty, q.bid FROM trades t JOIN quotes q ON t.sym = q.sym "
        "AND q.ts BETWEEN t.ts - 1000 AND t.ts + 1000"),
}


def timed(fn, repeats: int) -> tuple[list[float], int]:
    """Wall times of ``repeats`` runs of ``fn``, and the rows of the last."""
    times, rows = [], 0
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t0)
    return times, rows


def main(n: int = 2_000_000, repeats: int = 3) -> dict:
    trades, static, versions, quotes = data(n)
    con = duckdb.connect()
    con.execute("SET threads=2")
    results = {}
    for name, (sql, duck_sql) in SCENARIOS.items():
        inst = static if name == "enrichment" else versions
        sources = {"trades": trades, "inst": inst, "quotes": quotes}
        used = {k: v for k, v in sources.items() if k in sql}
        for k, v in used.items():
            con.register(k, v)
        d, d_rows = timed(lambda: con.sql(duck_sql).to_arrow_table().num_rows, repeats)
        v, v_rows = {}, 0
        for p in (1, 2):
            v[p], v_rows = timed(lambda: len(vs.query(sql, used, partitions=p)), repeats)
        v_all = v[1] + v[2]
        results[name] = {"velostream_s": round(min(v_all), 3),
                         "velostream_median_s": round(float(np.median(v_all)), 3),
                         "velostream_s_by_partitions": {p: round(min(t), 3) for p, t in v.items()},
                         "duckdb_s": round(min(d), 3),
                         "duckdb_median_s": round(float(np.median(d)), 3),
                         "ratio": round(min(d) / min(v_all), 2),
                         "median_ratio": round(float(np.median(d) / np.median(v_all)), 2),
                         "rows": v_rows, "duckdb_rows": d_rows,
                         "velostream_rows_per_s": round(n / min(v_all))}
    return results


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(main(*args), indent=1))
