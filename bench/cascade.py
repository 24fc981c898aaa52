"""A two-statement cascade (1-minute tumbling windows into 5-minute ones, docs/SQL.md §8) against
the 1-minute stage alone, through ``vs.query`` on the same input: how much the second statement
costs (issue 14's bar: within 1.3x). Best of ``repeats``.

    python bench/cascade.py [records] [repeats] [partitions]

At ``partitions`` > 1 both run their keyed stages split over that many partitions (the graph's
exchanges, docs/ARCHITECTURE.md), so the ratio is the second statement's cost there too.
"""
from __future__ import annotations

import json
import sys
import time

import velostream as vs
from velostream.datagen import market_data

ONE = ("SELECT trader_id, symbol, COUNT(*) AS n, SUM(quantity) AS vol, MIN(price) AS lo, "
       "MAX(price) AS hi FROM market_data GROUP BY trader_id, symbol WINDOW TUMBLING(1m)")
CASCADE = ("CREATE STREAM m1 AS " + ONE + ";\n"
           "SELECT trader_id, symbol, SUM(n) AS n, SUM(vol) AS vol, MIN(lo) AS lo, MAX(hi) AS hi, "
           "_WINDOW_START AS ws FROM m1 GROUP BY trader_id, symbol WINDOW TUMBLING(5m)")


def main(records: int = 2_000_000, repeats: int = 5, partitions: int = 1) -> dict:
    batches = market_data(records)
    out = {"partitions": partitions}
    for name, sql in (("one_minute_s", ONE), ("cascade_s", CASCADE)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            vs.query(sql, {"market_data": batches}, partitions=partitions)
            best = min(best, time.perf_counter() - t0)
        out[name] = round(best, 4)
    out["ratio"] = round(out["cascade_s"] / out["one_minute_s"], 3)
    return out


if __name__ == "__main__":
    print(json.dumps(main(*[int(a) for a in sys.argv[1:4]])))
