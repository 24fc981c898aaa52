"""Latency of S2 (EMIT CHANGES) through the job server: V1, and V2 at 1 and 2 partitions.

    python bench/latency/run_job_latency.py                       # batches of 10 and 100
    python bench/latency/run_job_latency.py --batch-sizes 1,10,100 --rate 50000

``run_latency.py`` times ``vs.Engine.push`` in the calling thread. This one runs a ``vs.Job``
whose reader hands out batch ``k`` once its last record is due (open loop: ``k * size / rate``
seconds after the start), so the job's reading, routing, thread hand-offs and writing all count.
Latency is the job's own measure (``JobStats.latency_ms``): from the read of a batch to the write
of the rows it caused, p50 / p95 / p99 over the rows.
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


class PacedReader:
    """Batch ``k`` becomes readable when its last record is due at ``rate`` records/s."""

    def __init__(self, batches: list[pa.RecordBatch], rate: float):
        self.batches = batches
        self.rate = rate
        self.k = 0
        self.due = 0
        self.t0: float | None = None

    def read(self):
        if self.t0 is None:
            self.t0 = time.perf_counter()
        if self.k >= len(self.batches):
            return None
        if time.perf_counter() < self.t0 + (self.due + self.batches[self.k].num_rows) / self.rate:
            return None
        rb = self.batches[self.k]
        self.k += 1
        self.due += rb.num_rows
        return rb

    def has_more(self) -> bool:
        return self.k < len(self.batches)

    def commit(self) -> None:
        pass

    def seek(self, position) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100_000)
    p.add_argument("--batch-sizes", default="10,100")
    p.add_argument("--records", type=int, default=200_000)
    args = p.parse_args(argv)

    import velostream as vs

    whole = pa.Table.from_batches(market_data(args.records)).combine_chunks().to_batches()[0]
    print(f"S2 EMIT CHANGES through vs.Job, offered {args.rate:,.0f} rec/s, {args.records:,} "
          "records per row\n")
    print("| batch | job | p50 µs | p95 µs | p99 µs | achieved rec/s | kept up |")
    print("|---:|---|---:|---:|---:|---:|:---:|")
    for size in (int(x) for x in args.batch_sizes.split(",")):
        batches = [whole.slice(i, size) for i in range(0, args.records - size + 1, size)]
        for label, kw in (("V1", dict(processor="v1")),
                          ("V2, 1 partition", dict(processor="v2", partitions=1)),
                          ("V2, 2 partitions", dict(processor="v2", partitions=2))):
            job = vs.Job(S2_SQL, {"market_data": PacedReader(batches, args.rate)}, **kw)
            t0 = time.perf_counter()
            stats = job.run()
            rate = stats.records_read / (time.perf_counter() - t0)
            lat = stats.latency_ms
            print(f"| {size} | {label} | {lat['p50'] * 1e3:.0f} | {lat['p95'] * 1e3:.0f} | "
                  f"{lat['p99'] * 1e3:.0f} | {rate:,.0f} | {'yes' if rate >= 0.95 * args.rate else 'no'} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
