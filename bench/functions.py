"""Scalar functions (docs/FUNCTIONS.md) against DuckDB with 2 threads, on the same Arrow input.

    python bench/functions.py                      # 2,000,000 rows, best of 3
    python bench/functions.py --rows 200000 --repeat 1 --families text,regex

One query per family: a date/time projection, a text projection, a regex filter, two JSON
extractions (payloads with few distinct values, and every payload distinct), and two aggregates
per key (100 keys) in a one-hour tumbling window: a percentile and a correlation. Each is timed as the best of ``--repeat`` runs of
``vs.query`` (partitions 1 and 2) and of DuckDB (``SET threads = 2``, result fetched as Arrow),
after checking that both give the same rows. The table shows seconds and DuckDB's time divided
by velostream's (above 1: velostream is faster). No assertions on time.
"""
from __future__ import annotations

import argparse
import time

import duckdb
import numpy as np
import pyarrow as pa

import velostream as vs

FAMILIES = {
    "datetime": ("SELECT DATE_TRUNC('hour', ts) AS h, DATE_PART('dow', ts) AS d, "
                 "STRFTIME(ts, '%Y-%m-%d %H:%M') AS f, DATEDIFF('minute', ts, ts2) AS m FROM t",
                 "SELECT epoch_ms(date_trunc('hour', ts)) AS h, date_part('dow', ts) AS d, "
                 "strftime(ts, '%Y-%m-%d %H:%M') AS f, datediff('minute', ts, ts2) AS m FROM t"),
    "text": ("SELECT SPLIT_PART(s, '-', 2) AS p, LPAD(s, 16, '*') AS l, REPLACE(s, 'user', 'u') AS r, "
             "STRPOS(s, '-7') AS x FROM t", None),
    "regex": ("SELECT s FROM t WHERE REGEXP_MATCHES(s, '-(1|2)[0-9]*7$')", None),
    "json": ("SELECT JSON_EXTRACT_STRING(j, '$.user.name') AS n, JSON_EXTRACT(j, '$.tags[0]') AS g FROM t",
             "SELECT json_extract_string(j, '$.user.name') AS n, json_extract(j, '$.tags[0]')::VARCHAR AS g "
             "FROM t"),
    "json_distinct": ("SELECT JSON_EXTRACT_STRING(u, '$.user.name') AS n, JSON_EXTRACT(u, '$.n') AS g "
                      "FROM t",
                      "SELECT json_extract_string(u, '$.user.name') AS n, "
                      "json_extract(u, '$.n')::VARCHAR AS g FROM t"),
    # rounded: both compute the same formulas, the last bits of a double may differ
    "percentile": ("SELECT k, ROUND(PERCENTILE_CONT(v, 0.9), 6) AS p, _WINDOW_START AS ws FROM t "
                   "GROUP BY k WINDOW TUMBLING(ts, INTERVAL '1' HOUR)",
                   "SELECT k, round(quantile_cont(v, 0.9), 6) AS p, "
                   "epoch_ms(time_bucket(INTERVAL 1 HOUR, ts)) AS ws FROM t GROUP BY k, ws"),
    "correlation": ("SELECT k, ROUND(CORR(v, w), 6) AS c, _WINDOW_START AS ws FROM t "
                    "GROUP BY k WINDOW TUMBLING(ts, INTERVAL '1' HOUR)",
                    "SELECT k, round(corr(v, w), 6) AS c, "
                    "epoch_ms(time_bucket(INTERVAL 1 HOUR, ts)) AS ws FROM t GROUP BY k, ws"),
}


def make_table(rows: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = 1_704_067_200_000  # 2024-01-01
    ts = start + np.sort(rng.integers(0, 30 * 86_400_000, rows))
    users = rng.integers(0, 20_000, rows)
    s = pa.array([f"user-{u}-{u % 97}" for u in range(20_000)]).take(pa.array(users))
    docs = pa.array([f'{{"user": {{"id": {u}, "name": "n{u % 500}"}}, "tags": ["t{u % 7}", "x"]}}'
                     for u in range(5_000)]).take(pa.array(users % 5_000))
    unique = pa.array([f'{{"user": {{"id": {i % 20_000}, "name": "n{i % 500}"}}, "n": {i}}}'
                       for i in range(rows)])
    v = rng.normal(100.0, 15.0, rows)
    return pa.table({"ts": pa.array(ts, pa.timestamp("ms")),
                     "k": pa.array(users % 100), "v": pa.array(v),
                     "w": pa.array(v * 0.5 + rng.normal(0.0, 5.0, rows)),
                     "ts2": pa.array(ts + rng.integers(-10**7, 10**7, rows), pa.timestamp("ms")),
                     "s": s, "j": docs, "u": unique})


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args(argv)
    table = make_table(args.rows)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    con.register("raw", table)
    # DuckDB's epoch_ms has no kernel for Arrow's TIMESTAMP_MS: the view reads microseconds
    con.execute("CREATE VIEW t AS SELECT * REPLACE (ts::TIMESTAMP AS ts, ts2::TIMESTAMP AS ts2) FROM raw")
    print(f"{args.rows:,} rows, best of {args.repeat}")
    print(f"{'family':<14} {'duckdb s':>9} {'vs p1 s':>9} {'ratio p1':>9} {'vs p2 s':>9} {'ratio p2':>9}")
    for name in args.families.split(","):
        ours, theirs = FAMILIES[name]
        theirs = theirs or ours
        d_time, d_out = _best(lambda: con.sql(theirs).to_arrow_table(), args.repeat)
        line = f"{name:<14} {d_time:>9.3f}"
        for p in (1, 2):
            v_time, v_out = _best(lambda: vs.query(ours, {"t": table}, partitions=p).to_arrow(), args.repeat)
            _check(v_out, d_out, name)  # the same rows (order aside) before a time counts
            line += f" {v_time:>9.3f} {d_time / v_time:>9.2f}"
        print(line, flush=True)


def _check(ours, theirs, name: str) -> None:
    a = ours if isinstance(ours, pa.Table) else pa.Table.from_batches(ours)
    b = theirs if isinstance(theirs, pa.Table) else theirs.read_all()
    assert a.num_rows == b.num_rows, (name, a.num_rows, b.num_rows)
    for col_a, col_b in zip(a.columns, b.columns):
        x = sorted(map(_nan_equal, col_a.to_pylist()), key=repr)
        y = sorted(map(_nan_equal, col_b.to_pylist()), key=repr)
        assert x == y, f"{name}: velostream and DuckDB differ"


def _nan_equal(v):
    """NaN (CORR of one row, in both) compares equal to NaN."""
    return "NaN" if isinstance(v, float) and v != v else v


if __name__ == "__main__":
    main()
