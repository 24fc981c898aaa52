"""Best-of-N wall time of the five seed scenarios through ``vs.query`` and ``vs.Engine.push``, as
JSON: run it with the Python of each build to compare (an old commit in one venv, the change in
another, alternated, on a quiet machine). ``bench/`` holds the pyperf programs against the peers;
this is the quick same-engine A/B used to check that a change keeps the scenarios' speed.

    python tools/ab_scenarios.py [records] [repeats]
"""
import gc
import json
import sys
import time

import velostream as vs
from velostream.datagen import SCENARIOS, scenario_input


def main(records: int = 1_000_000, repeats: int = 5) -> dict:
    out = {}
    for name, (_, sql) in SCENARIOS.items():
        source, batches = scenario_input(name, records)
        best_q = best_e = float("inf")
        for _ in range(repeats):
            gc.collect()
            t0 = time.perf_counter()
            vs.query(sql, {source: batches})
            best_q = min(best_q, time.perf_counter() - t0)
            eng = vs.Engine(sql)
            t0 = time.perf_counter()
            for b in batches:
                eng.push(source, b)
            eng.flush()
            best_e = min(best_e, time.perf_counter() - t0)
        out[name] = {"query_ms": round(best_q * 1000, 1), "push_ms": round(best_e * 1000, 1)}
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(main(*args)))
