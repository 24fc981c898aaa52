"""Mean cost of one ``vs.Engine.push`` of an S2 batch, in a tight loop (no pacing).

    python bench/latency/push_cost.py                   # batch sizes 1, 10, 100
    python bench/latency/push_cost.py --sizes 1,10,100,1000 --seconds 1

Each size pushes consecutive slices of one S2 input (``bench.data.market_data``) into a fresh
engine, after a warm-up, and reports the mean microseconds per push and per record.
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

if importlib.util.find_spec("bench") is None:
    sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import pyarrow as pa  # noqa: E402

from bench.data import S2_SQL, market_data  # noqa: E402


def push_cost(size: int, seconds: float, records: int = 200_000) -> float:
    import velostream as vs
    whole = pa.Table.from_batches(market_data(records)).combine_chunks().to_batches()[0]
    slices = [whole.slice(i, size) for i in range(0, records - size + 1, size)]
    eng = vs.Engine(S2_SQL)
    push = eng.push
    for rb in slices[:200]:  # warm-up (binds the plan)
        push("market_data", rb)
    n = 0
    k = 200 % len(slices)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(100):
            push("market_data", slices[k])
            k += 1
            if k == len(slices):
                k = 0
        n += 100
        if time.perf_counter() > deadline:
            break
    return (time.perf_counter() - t0) / n * 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1,10,100")
    p.add_argument("--seconds", type=float, default=1.0)
    args = p.parse_args(argv)
    for size in (int(x) for x in args.sizes.split(",")):
        us = push_cost(size, args.seconds)
        print(f"push of {size:>5} rows: {us:8.2f} us mean ({us / size:.3f} us/record)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
