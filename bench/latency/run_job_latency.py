"""Latency of S2 (EMIT CHANGES) through the job server: V1, and V2 at 1 and 2 partitions.

    python bench/latency/run_job_latency.py                       # batches of 10 and 100
    python bench/latency/run_job_latency.py --batch-sizes 1,10,100 --rate 50000

``run_latency.py`` times ``vs.Engine.push`` in the calling thread. This one runs a ``vs.Job``
whose reader hands out batch ``k`` once its last record is due (open loop: ``k * size / rate``
seconds after the start), so the job's reading, routing, thread hand-offs and writing all count.

Latency is measured per output row, as ``run_latency.py`` does for the engine: from its input
batch's arrival (the moment the reader releases it) to the sink's ``write_batch`` of the row, so
time a batch waits in the reader behind a slow job counts too. (S2's output identifies its input
record: the row with ``trade_count = k`` for ``SYMs`` is record ``10 (k - 1) + s``.) The job's own
measure, ``JobStats.latency_ms``, starts at the read instead and is printed next to it.

The reader declares ``coalesce = True`` (its ``read()`` never waits), so a job that falls behind
takes what is waiting in one step (``vs.Job``, ``COALESCE_ROWS``).
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import pathlib
import sys
import time

if importlib.util.find_spec("bench") is None:
    sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench.data import S2_SQL, market_data  # noqa: E402


class PacedReader:
    """Batch ``k`` becomes readable when its last record is due at ``rate`` records/s."""

    coalesce = True  # read() never waits

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


class TimedWriter:
    """Keeps each written batch's (symbol, trade_count) columns with the time it was written."""

    def __init__(self):
        self.writes: list[tuple[float, pa.Array, pa.Array]] = []

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self.writes.append((time.perf_counter(), batch.column("symbol"), batch.column("trade_count")))

    def flush(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def arrival_to_write_us(reader: PacedReader, writer: TimedWriter, size: int) -> np.ndarray:
    """Per output row: write time minus its input batch's release time, in µs."""
    lat = []
    for t, sym, count in writer.writes:
        s = np.array([int(x[3:]) for x in sym.to_pylist()])
        record = 10 * (count.to_numpy() - 1) + s
        released = reader.t0 + (record // size + 1) * size / reader.rate
        lat.append((t - released) * 1e6)
    return np.concatenate(lat) if lat else np.zeros(0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100_000)
    p.add_argument("--batch-sizes", default="10,100")
    p.add_argument("--records", type=int, default=200_000)
    args = p.parse_args(argv)

    import velostream as vs

    whole = pa.Table.from_batches(market_data(args.records)).combine_chunks().to_batches()[0]
    # The input is held as one RecordBatch per record or so; a source would not keep them all
    # alive. Frozen, they are left out of the garbage collector's full passes, which otherwise
    # walk them all and stall whichever step triggers one by tens of ms.
    gc.collect()
    print(f"S2 EMIT CHANGES through vs.Job, offered {args.rate:,.0f} rec/s, {args.records:,} "
          "records per row\n")
    print("| batch | job | p50 µs | p95 µs | p99 µs | job's own p50 / p99 µs | achieved rec/s | kept up |")
    print("|---:|---|---:|---:|---:|---:|---:|:---:|")
    for size in (int(x) for x in args.batch_sizes.split(",")):
        batches = [whole.slice(i, size) for i in range(0, args.records - size + 1, size)]
        gc.freeze()
        for label, kw in (("V1", dict(processor="v1")),
                          ("V2, 1 partition", dict(processor="v2", partitions=1)),
                          ("V2, 2 partitions", dict(processor="v2", partitions=2))):
            reader, writer = PacedReader(batches, args.rate), TimedWriter()
            job = vs.Job(S2_SQL, {"market_data": reader}, writer, **kw)
            t0 = time.perf_counter()
            stats = job.run()
            rate = stats.records_read / (time.perf_counter() - t0)
            lat = arrival_to_write_us(reader, writer, size)
            assert len(lat) == stats.records_read, "one output row per input record"
            p50, p95, p99 = np.percentile(lat, [50, 95, 99])
            own = stats.latency_ms
            print(f"| {size} | {label} | {p50:.0f} | {p95:.0f} | {p99:.0f} | "
                  f"{own['p50'] * 1e3:.0f} / {own['p99'] * 1e3:.0f} | {rate:,.0f} | "
                  f"{'yes' if rate >= 0.95 * args.rate else 'no'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
