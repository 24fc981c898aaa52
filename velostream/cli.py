"""The ``velostream`` command line: ``run``, ``explain``, ``validate``, ``demo``, ``bench``.

Exit codes: 0 done (a bounded input ended, or a graceful stop on SIGINT/SIGTERM); 1 the job failed
while running; 2 the job cannot start (bad SQL, bad properties, unreadable file, unknown topic);
3 a broker could not be reached.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from .errors import ConnectError, JobError, SqlError, UnsupportedError, VelostreamError

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START, EXIT_UNREACHABLE = 0, 1, 2, 3


def _fail(kind: str, exc: BaseException, code: int) -> int:
    print(f"velostream: {kind}: {exc}", file=sys.stderr)
    return code


def _start_errors(fn):
    """Map the errors a job can raise before it runs to messages and exit codes."""
    def wrapped(args) -> int:
        try:
            return fn(args)
        except (SqlError, UnsupportedError) as exc:
            return _fail("error in SQL", exc, EXIT_CANNOT_START)
        except ConnectError as exc:
            return _fail("cannot connect", exc, EXIT_UNREACHABLE)
        except JobError as exc:
            return _fail("job failed", exc, EXIT_FAILED)
        except (VelostreamError, OSError) as exc:
            return _fail("cannot start", exc, EXIT_CANNOT_START)
    return wrapped


# ---------------------------------------------------------------------------------------- run
class Progress:
    """The live progress line on stderr: rewritten in place on a terminal, one line per interval
    otherwise (logs)."""

    def __init__(self, job, interval: float, enabled: bool):
        self.job = job
        self.tty = sys.stderr.isatty()
        self.interval = interval if not self.tty else min(interval, 1.0)
        self.enabled = enabled
        self._last = (time.monotonic(), 0)

    def line(self) -> str:
        s = self.job.stats
        now = time.monotonic()
        t0, n0 = self._last
        rate = (s.records_read - n0) / max(now - t0, 1e-9)
        self._last = (now, s.records_read)
        lag = self.job.lag()
        return (f"{rate / 1e6:7.3f} M rec/s | {s.records_read:,} in | {s.records_emitted:,} out | "
                f"lag {'-' if lag is None else f'{lag:,}'} | late {s.records_late:,} | "
                f"failed {s.records_failed:,}")

    def tick(self) -> None:
        if self.enabled:
            end = "\r" if self.tty else "\n"
            print(f"[velostream] {self.line()}", end=end, file=sys.stderr, flush=True)

    def done(self) -> None:
        s = self.job.stats
        if self.tty and self.enabled:
            print(file=sys.stderr)
        print(f"[velostream] done: {s.records_read:,} records in, {s.records_emitted:,} rows out, "
              f"{s.records_failed:,} failed, {s.records_late:,} late, in {s.wall_s:.2f} s "
              f"({s.throughput / 1e6:.3f} M rec/s)", file=sys.stderr)


DEFAULT_CHECKPOINT_DIR = ".velostream/checkpoints"


def _int_property(spec, key: str, default: int) -> int:
    from .io import ConfigError
    value = spec.job.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def build_job(spec, *, partitions: int, bounded: bool, reset: bool = False):
    """A ``Job`` with the spec's source, sink and dead-letter output."""
    from .io import ConfigError, open_dead_letter, open_sink, open_source
    from .jobs import Job

    interval = _int_property(spec, "commit.interval.ms", 5000) / 1000
    replay_max_ms = _int_property(spec, "checkpoint.replay.max.ms", 3_600_000)
    tolerance = spec.job.get("fault.tolerance", "at_least_once").lower().replace("-", "_")
    if tolerance not in ("at_least_once", "none"):
        raise ConfigError(f"fault.tolerance must be at_least_once or none, got {tolerance!r}")
    source = open_source(spec, bounded=bounded)  # connectors last: the checks above are free
    sink = open_sink(spec)
    dead = open_dead_letter(spec)
    return Job(spec.sql, {spec.source_name: source}, sink, partitions=partitions,
               processor="v1" if partitions == 1 else "v2",
               failure_strategy=spec.job.get("failure.strategy"), dead_letter=dead, env={},
               commit_interval_s=interval,
               fault_tolerance=tolerance,
               checkpoint_dir=spec.job.get("checkpoint.dir", DEFAULT_CHECKPOINT_DIR), reset=reset,
               replay_max_ms=replay_max_ms)


@_start_errors
def cmd_run(args) -> int:
    from .jobs.spec import JobSpec

    spec = JobSpec.load(args.job)
    job = build_job(spec, partitions=args.partitions, bounded=args.bounded, reset=args.reset)
    if args.metrics_port is not None:
        from .metrics import serve
        serve(job, args.metrics_port, name=spec.sink_name or spec.source_name, addr=args.metrics_host)
        print(f"[velostream] metrics on http://{args.metrics_host}:{args.metrics_port}/metrics",
              file=sys.stderr)
    stopping = threading.Event()

    def on_signal(signum, _frame):
        if stopping.is_set():  # a second signal: the user insists
            print("[velostream] stopping now", file=sys.stderr)
            os._exit(130)
        stopping.set()
        print(f"\n[velostream] {signal.Signals(signum).name}: stopping (flush, commit)...",
              file=sys.stderr)
        job.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    progress = Progress(job, args.progress_interval, enabled=not args.quiet)
    job.start()
    try:
        while job._thread.is_alive():
            job._thread.join(progress.interval)
            if job._thread.is_alive():
                progress.tick()
        job.join()
    except Exception as exc:  # noqa: BLE001 - anything raised once running: the job failed
        return _fail("job failed", exc, EXIT_FAILED)
    finally:
        job.reader.close()
        job.sink.close()
        if job.dead_letter is not None:
            job.dead_letter.close()
    progress.done()
    return EXIT_OK


# ------------------------------------------------------------------------------ explain, validate
@_start_errors
def cmd_explain(args) -> int:
    import velostream as vs
    from .jobs.spec import JobSpec

    spec = JobSpec.load(args.job)
    sample = None
    if spec.source_type == "file_source":  # read-only: the first batch gives the column types
        from .io import open_source
        src = open_source(spec)
        try:
            rb = src.read()
        finally:
            src.close()
        if rb is not None:
            sample = {spec.source_name: rb.slice(0, 0)}
    print(vs.explain(spec.sql, sample, env={}))
    print(spec.describe())
    return EXIT_OK


@_start_errors
def cmd_validate(args) -> int:
    """Parse, plan and check the properties; connects to nothing and writes nothing."""
    import velostream as vs
    from .jobs.spec import JobSpec

    spec = JobSpec.load(args.job)
    vs.explain(spec.sql, env={})
    print(f"ok: {spec.source_name} ({spec.source_type or 'no source type'}) -> "
          f"{spec.sink_name or 'stdout'} ({spec.sink_type})")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ demo
def _demo_job(name: str, sql: str, source: str, data_path: Path, out_path: Path) -> str:
    """A scenario query as a job file: file source in, JSON-lines file out."""
    # CSV writes 150.0 as "150": the schema says which columns are floating point
    schema = {"orders": "total_amount DOUBLE", "market_data": "price DOUBLE"}[source]
    props = {f"{source}.type": "file_source", f"{source}.path": str(data_path),
             f"{source}.schema": schema,
             f"{name.lower()}_out.type": "file_sink", f"{name.lower()}_out.path": str(out_path)}
    with_clause = ",\n      ".join(f"'{k}' = '{v}'" for k, v in props.items())
    return f"CREATE STREAM {name.lower()}_out AS\n{sql.strip()}\nWITH ({with_clause})"


def cmd_demo(args) -> int:
    """The embedded default: the five scenarios of SCENARIOS.md, from generated files, through
    the file source and the job server, into JSON-lines files."""
    import pyarrow.csv as pcsv

    import velostream as vs
    from .datagen import SCENARIOS, scenario_input
    from .jobs.spec import JobSpec

    n = args.records
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="velostream-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"velostream {vs.__version__} demo: the five scenarios of SCENARIOS.md, {n:,} generated "
          f"records each, read from CSV files in {workdir}, {args.partitions} partition(s)\n")
    written: dict[str, Path] = {}
    for name, (_, sql) in SCENARIOS.items():
        source, batches = scenario_input(name, n)
        path = workdir / f"{source}.csv"
        if source not in written:
            import pyarrow as pa
            pcsv.write_csv(pa.Table.from_batches(batches), path)
            written[source] = path
        out = workdir / f"{name.lower()}_out.jsonl"
        out.unlink(missing_ok=True)
        job_sql = _demo_job(name, sql, source, written[source], out)
        (workdir / f"{name.lower()}.sql").write_text(job_sql + "\n")
        spec = JobSpec.from_sql(job_sql, env={})
        job = build_job(spec, partitions=args.partitions, bounded=True)
        stats = job.run()
        job.sink.close()
        first_line = " ".join(sql.split())[:90]
        print(f"{name}: {first_line}...")
        print(f"    {n:,} records in {stats.wall_s * 1000:.1f} ms = {stats.throughput / 1e6:.2f} M rec/s "
              f"(CSV file -> {args.partitions} partition(s) -> JSON lines), "
              f"{stats.records_emitted:,} rows out to {out.name}")
        with open(out) as f:
            for _, line in zip(range(2), f):
                row = json.loads(line)
                print("    ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
        print()
    print(f"The job files are in {workdir} (velostream run {workdir / 's3a.sql'} runs one again).")
    return EXIT_OK


def cmd_bench(args) -> int:
    sys.path.insert(0, str(Path.cwd()))  # the suite lives in the source checkout, not the wheel
    try:
        from bench.suite import main as bench_main
    except ImportError:
        print("the benchmark suite runs from a source checkout: cd into it and run "
              "`python -m bench` (pip install '.[bench]' first)", file=sys.stderr)
        return EXIT_CANNOT_START
    return bench_main(args.rest)


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="velostream", description="Streaming SQL over event streams")
    ap.add_argument("--log-level", default=os.environ.get("VELOSTREAM_LOG", "WARNING"))
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a job file until stopped (or to the end with --bounded)")
    r.add_argument("job", help="a .sql job file (or the SQL text)")
    r.add_argument("--partitions", type=int, default=1, help="partition threads (default 1)")
    r.add_argument("--bounded", action="store_true",
                   help="read each Kafka partition to the end offset seen at start, then exit")
    r.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics")
    r.add_argument("--metrics-host", default="127.0.0.1",
                   help="address the metrics server binds (default 127.0.0.1; 0.0.0.0 for all)")
    r.add_argument("--reset", action="store_true",
                   help="start from scratch: forget checkpoints and committed offsets (Kafka)")
    r.add_argument("--progress-interval", type=float, default=10.0,
                   help="seconds between progress lines when stderr is not a terminal")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    r.set_defaults(fn=cmd_run)
    e = sub.add_parser("explain", help="show the plan, strategy, source and sink of a job")
    e.add_argument("job")
    e.set_defaults(fn=cmd_explain)
    v = sub.add_parser("validate", help="check a job file without running it (no side effects)")
    v.add_argument("job")
    v.set_defaults(fn=cmd_validate)
    d = sub.add_parser("demo", help="the five benchmark scenarios on generated files")
    d.add_argument("--records", type=int, default=1_000_000)
    d.add_argument("--partitions", type=int, default=2)
    d.add_argument("--dir", default=None, help="where to write the data and results (default: a temp dir)")
    d.set_defaults(fn=cmd_demo)
    b = sub.add_parser("bench", help="run the benchmark suite (from a source checkout)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)
    argv = sys.argv[1:] if argv is None else list(argv)
    # the subcommand: the first word that is not an option or the value of --log-level
    cmd = next((k for k, a in enumerate(argv)
                if not a.startswith("-") and (k == 0 or argv[k - 1] != "--log-level")), None)
    if cmd is not None and argv[cmd] == "bench":
        # everything after ``bench`` belongs to the suite's own parser (--quick, --scenarios...)
        args = ap.parse_args(argv[:cmd + 1])
        args.rest = argv[cmd + 1:]
    else:
        args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="[velostream] %(levelname)s %(message)s")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
