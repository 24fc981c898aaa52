"""S3a from files: a CSV file and a JSON Lines file of market_data through FileSource into a Job.

    python bench/file_source/run_benchmark.py --records 2000000 -o out.json
    python bench/file_source/run_benchmark.py --fast --records 500000   # quick

Setup (generating the data and writing both files to a temp dir, the in-memory reference result)
happens once per worker process, outside the timed calls. Timed: FileSource open + read + Job run
with partitions=1 to the last output row. Each call's output is checked against the in-memory run
(row count and a checksum) after its time is taken. Throughput = records / seconds.
"""
import functools
import importlib.util
import os
import pathlib
import sys
import tempfile
import time

if importlib.util.find_spec("bench") is None:  # run directly, not from `python -m bench`
    sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

import velostream as vs  # noqa: E402
from bench.data import SCENARIOS  # noqa: E402
from velostream.datagen import market_data  # noqa: E402
from velostream.io.base import Properties  # noqa: E402
from velostream.io.files import FileSink, FileSource  # noqa: E402

SQL = SCENARIOS["s3a_tumbling"].sql
FORMATS = ("csv", "jsonl")


def _checksum(t: pa.Table) -> tuple:
    return (t.num_rows, round(pc.sum(t.column("total_value")).as_py(), 3),
            pc.sum(t.column("trade_count")).as_py())


@functools.lru_cache(maxsize=2)
def workload(records: int):
    """The two files (written once per process) and the reference checksum."""
    d = tempfile.mkdtemp(prefix="velostream-bench-files-")
    batches = [b.drop_columns(["_TIMESTAMP"]) for b in market_data(records)]
    paths = {}
    for fmt in FORMATS:
        paths[fmt] = os.path.join(d, f"market_data.{fmt}")
        sink = FileSink("out", Properties("out", {"path": paths[fmt]}))
        for b in batches:
            sink.write_batch(b)
        sink.flush()
        sink.commit()
        sink.close()
    ref = _checksum(vs.query(SQL, {"market_data": pa.Table.from_batches(batches)}).to_arrow())
    return paths, ref


def run_once(path: str) -> pa.Table:
    src = FileSource("market_data", Properties("market_data", {"path": path}))
    job = vs.Job(SQL, sources={"market_data": src}, partitions=1)
    job.run()
    src.close()
    return job.result().to_arrow()


def timed(loops: int, fmt: str, records: int) -> float:
    paths, ref = workload(records)
    total = 0.0
    for _ in range(loops):
        t0 = time.perf_counter()
        out = run_once(paths[fmt])
        total += time.perf_counter() - t0
        got = _checksum(out)
        if got != ref:
            raise AssertionError(f"{fmt}: output {got} differs from the in-memory run {ref}")
    return total


def main() -> None:
    import pyperf

    def add_cmdline_args(cmd, args):
        cmd.extend(("--records", str(args.records)))

    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args, loops=1)
    runner.argparser.add_argument("--records", type=int, default=2_000_000)
    args = runner.parse_args()
    for fmt in FORMATS:
        runner.metadata["description"] = f"S3a from a {fmt} file: FileSource + Job(partitions=1), {args.records:,} records"
        bench = runner.bench_time_func(f"file_source/{fmt}", timed, fmt, args.records,
                                       metadata={"records": args.records, "format": fmt})
        if bench is not None and not runner.args.worker:
            print(f"  {fmt}: {args.records / bench.mean() / 1e6:.2f} M records/s")


if __name__ == "__main__":
    main()
