"""Latency of S2 (GROUP BY symbol, EMIT CHANGES) fed record by record or in small batches.

    python bench/latency/run_latency.py                      # velostream, 100,000 rec/s offered
    python bench/latency/run_latency.py --rate 50000 --batch-sizes 1,10,100,1000
    python bench/latency/run_latency.py --engine python      # the plain-Python baseline

Open-loop load: record ``j`` is scheduled to arrive at ``t0 + j / rate``. A batch of ``b`` records
is pushed (``vs.Engine.push``) as soon as its last record has arrived (busy-waiting on
``time.perf_counter``), or at once if the engine is behind. A record's latency is the time from
its scheduled arrival to the return of the ``push`` that emitted its row, so batching delay and
any backlog count (no coordinated omission). Every push must return one row per record (EMIT
CHANGES). The first ``--warmup`` fraction of records is left out of the percentiles.

Skips with exit status 0 while ``vs.Engine`` does not exist yet.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import time

if importlib.util.find_spec("bench") is None:
    sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench.data import S2_SQL, market_data  # noqa: E402

#: The original engine's latency targets (SCENARIOS.md), microseconds.
TARGETS_US = {"p50": 200, "p95": 500, "p99": 1000}


class PythonS2Engine:
    """The plain-Python dict loop of ``bench.peers`` behind the ``vs.Engine`` push interface."""

    def __init__(self):
        self._groups: dict = {}

    def push(self, source: str, batch: pa.RecordBatch) -> list[tuple]:
        out = []
        groups = self._groups
        for s, p, q in zip(batch.column("symbol").to_pylist(), batch.column("price").to_pylist(),
                           batch.column("quantity").to_pylist()):
            st = groups.get(s)
            if st is None:
                st = groups[s] = [1, p, p, p, q]
            else:
                st[0] += 1
                st[1] += p
                if p < st[2]:
                    st[2] = p
                if p > st[3]:
                    st[3] = p
                st[4] += q
            out.append((s, st[0], st[1] / st[0], st[2], st[3], st[4]))
        return out

    def flush(self) -> list[tuple]:
        return []


def make_engine(name: str):
    if name == "python":
        return PythonS2Engine()
    from bench import velostream_runner
    return velostream_runner.engine(S2_SQL)


def measure(engine, batches: list[pa.RecordBatch], batch_size: int, rate: float,
            warmup: float, max_seconds: float = 30.0) -> dict:
    """Push ``batches`` at ``rate`` records/s; returns percentiles in microseconds.

    Stops early (``truncated``) once ``max_seconds`` have passed, so that an engine far slower
    than the offered rate does not run for ever."""
    n_batches = len(batches)
    interval = 1.0 / rate
    emitted = np.empty(n_batches)
    service = np.empty(n_batches)
    perf_counter = time.perf_counter
    push = engine.push
    t0 = perf_counter() + 0.01
    deadline = t0 + max_seconds
    done = n_batches
    for k in range(n_batches):
        due = t0 + ((k + 1) * batch_size - 1) * interval
        now = perf_counter()
        while now < due:
            now = perf_counter()
        result = push("market_data", batches[k])
        emitted[k] = end = perf_counter()
        service[k] = end - now
        if len(result) != batch_size:
            raise AssertionError(f"push of {batch_size} records emitted {len(result)} rows; "
                                 "S2 EMIT CHANGES emits one row per record")
        if end > deadline:
            done = k + 1
            break
    engine.flush()
    emitted, service = emitted[:done], service[:done]
    n = done * batch_size
    arrival = t0 + np.arange(n) * interval
    latency = (np.repeat(emitted, batch_size) - arrival) * 1e6
    kept = latency[int(n * warmup):]
    elapsed = emitted[-1] - t0
    return {
        "batch_size": batch_size,
        "records": n,
        "offered_rate": rate,
        "achieved_rate": n / elapsed,
        "kept_up": bool(n / elapsed >= 0.95 * rate),
        "p50_us": float(np.percentile(kept, 50)),
        "p95_us": float(np.percentile(kept, 95)),
        "p99_us": float(np.percentile(kept, 99)),
        "max_us": float(kept.max()),
        "push_mean_us": float(service.mean() * 1e6),
        "truncated": done < n_batches,
    }


def _slices(records: int, batch_size: int) -> list[pa.RecordBatch]:
    whole = pa.Table.from_batches(market_data(records)).combine_chunks().to_batches()[0]
    return [whole.slice(i, batch_size) for i in range(0, records - batch_size + 1, batch_size)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=("velostream", "python"), default="velostream")
    p.add_argument("--rate", type=float, default=100_000, help="offered records/s (%(default)s)")
    p.add_argument("--batch-sizes", default="1,10,100,1000")
    p.add_argument("--records", type=int, default=200_000,
                   help="records pushed per batch size (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=0.1,
                   help="fraction of records left out as warm-up (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="stop a batch size after this long (default: %(default)s)")
    p.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = p.parse_args(argv)

    try:
        make_engine(args.engine)
    except Exception as exc:
        print(f"skipped: {args.engine} push engine not available ({type(exc).__name__}: {exc})")
        return 0

    results = []
    for size in (int(x) for x in args.batch_sizes.split(",")):
        batches = _slices(args.records, size)
        results.append(measure(make_engine(args.engine), batches, size, args.rate, args.warmup,
                               args.max_seconds))
        r = results[-1]
        print(f"batch {size:>5}: p50 {r['p50_us']:10.1f} us  p95 {r['p95_us']:10.1f} us  "
              f"p99 {r['p99_us']:10.1f} us  push {r['push_mean_us']:.1f} us  "
              f"({r['achieved_rate']:,.0f} rec/s"
              f"{'' if r['kept_up'] else ', did NOT keep up'})", flush=True)

    print(f"\nS2 EMIT CHANGES latency, {args.engine}, offered {args.rate:,.0f} rec/s, "
          f"{args.records:,} records per batch size (first {args.warmup:.0%} excluded)\n")
    print("| batch | p50 µs | p95 µs | p99 µs | max µs | push µs (mean) | achieved rec/s "
          "| kept up |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for r in results:
        cut = f" (stopped after {r['records']:,} records)" if r["truncated"] else ""
        print(f"| {r['batch_size']} | {r['p50_us']:.0f} | {r['p95_us']:.0f} | {r['p99_us']:.0f} "
              f"| {r['max_us']:.0f} | {r['push_mean_us']:.1f} | {r['achieved_rate']:,.0f} | "
              f"{'yes' if r['kept_up'] else 'no'}{cut} |")
    print(f"| original targets | {TARGETS_US['p50']} | {TARGETS_US['p95']} | "
          f"{TARGETS_US['p99']} | | | | |")
    if args.json:
        args.json.write_text(json.dumps({"engine": args.engine, "sql": S2_SQL,
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
