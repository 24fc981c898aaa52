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
import threading
import time
from pathlib import Path
from typing import Optional

from .errors import ConnectError, JobError, SqlError, UnsupportedError, VelostreamError

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START, EXIT_UNREACHABLE = 0, 1, 2, 3


def _fail(kind: str, exc: BaseException, code: int) -> int:
    print(f"velostream: {kind}: {exc}", file=sys.stderr)
    return code


def _exit_code(exc: BaseException, *, running: bool) -> int:
    """The one place an error becomes its message on stderr and the exit code (docs/CLI.md,
    "Exit codes"). ``running``: the job had bound its plan, so whatever fails now fails a job
    that ran (1); before that, bad SQL (an unknown column or source included), a bad property
    or an unreadable file means the job cannot start (2). A JobError is always a failed job, a
    ConnectError an unreachable broker (3). Anything else before the job runs is a bug in
    velostream: raised, with its traceback."""
    if isinstance(exc, ConnectError):
        return _fail("cannot connect", exc, EXIT_UNREACHABLE)
    if isinstance(exc, JobError) or (running and isinstance(exc, Exception)):
        return _fail("job failed", exc, EXIT_FAILED)
    if isinstance(exc, (SqlError, UnsupportedError)):
        return _fail("error in SQL", exc, EXIT_CANNOT_START)
    if isinstance(exc, (VelostreamError, OSError, ValueError)):
        return _fail("cannot start", exc, EXIT_CANNOT_START)
    raise exc


def _start_errors(fn):
    """A subcommand whose errors map to messages and exit codes (``_exit_code``)."""
    def wrapped(args) -> int:
        try:
            return fn(args)
        except Exception as exc:  # noqa: BLE001 - _exit_code raises what it does not know
            return _exit_code(exc, running=False)
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


def _job_settings(spec) -> dict:
    """The job properties ``Job`` takes, checked (``validate`` checks them the same way)."""
    from .io import ConfigError

    tolerance = spec.job.get("fault.tolerance", "at_least_once").lower().replace("-", "_")
    if tolerance not in ("at_least_once", "none"):
        raise ConfigError(f"fault.tolerance must be at_least_once or none, got {tolerance!r}")
    return dict(failure_strategy=spec.job.get("failure.strategy"),
                commit_interval_s=_int_property(spec, "commit.interval.ms", 5000) / 1000,
                fault_tolerance=tolerance,
                checkpoint_dir=spec.job.get("checkpoint.dir", DEFAULT_CHECKPOINT_DIR),
                replay_max_ms=_int_property(spec, "checkpoint.replay.max.ms", 3_600_000))


def build_job(spec, *, partitions: int, bounded: bool, reset: bool = False):
    """A ``Job`` with the spec's source, sink and dead-letter output."""
    from .io import open_dead_letter, open_sink, open_source
    from .jobs import Job

    settings = _job_settings(spec)
    source = open_source(spec, bounded=bounded)  # connectors last: the checks above are free
    sources = {spec.source_name: source}
    if spec.other_sources:  # a pipeline reading several sources (docs/SQL.md §8, §9)
        from .jobs.protocols import MergedReader
        readers = {spec.source_name: source}
        for name in spec.other_sources:
            readers[name] = open_source(spec.source_spec(name), bounded=bounded)
        sources = {spec.source_name: MergedReader(readers, spec.table_sources)}
    sink = open_sink(spec)
    # a pipeline's other relations with sinks of their own (docs/SQL.md §8)
    side = {name: open_sink(spec.side_sink_spec(name)) for name in spec.side_sinks}
    if side:
        from .jobs.protocols import FanOutWriter
        sink = FanOutWriter(sink, side)
    dead = open_dead_letter(spec)
    if not spec.other_sources and hasattr(source, "prefetch"):
        # one file source, read from its start: its first rows are decoded while the job is set
        # up (a pipeline's sources may seek to a checkpoint first)
        source.prefetch()
    try:
        job = Job(spec.sql, sources, sink, partitions=partitions,
                  processor="v1" if partitions == 1 else "v2", dead_letter=dead, env={},
                  reset=reset, **settings)
    except BaseException:
        source.close()  # its read-ahead thread ends, the file is closed
        raise
    if side:
        job.engine.side_outputs = side
    if dead is None:  # nobody reads job.dead_letters of a job the command runs: log, count
        job.keep_dead_letters = False
    return job


def _arrow_without_pandas(args) -> None:
    """Have pyarrow take pandas as absent, before the job (or explain, validate) converts its
    first value to Arrow.

    pyarrow looks for pandas the first time it converts a Python or numpy value (``pa.array``,
    ``pa.scalar``, a compute function given a Python number; importing ``pyarrow.dataset`` does
    one), and importing pandas is a third of the start-up of ``velostream run``
    (docs/PERFORMANCE.md, "File to file"). A job's data comes from files or Kafka as Arrow, so
    pyarrow never gets a pandas object to recognise. Not done when pandas is loaded already
    (nothing to save), nor when the job has Python functions (``vs.udf``): one may return a pandas
    Series, which pyarrow must convert as pandas data (NaN as NULL), nor when ``main`` is called
    inside a program (``args.whole_process`` false), which may hand pyarrow pandas objects later.
    ``Table.to_pandas`` still works afterwards: pyarrow imports pandas when asked for it."""
    from .udf import _REGISTRY
    if not getattr(args, "whole_process", False) or "pandas" in sys.modules or _REGISTRY:
        return
    import pyarrow as pa

    class NoPandas:  # an import finder: while it is first, `import pandas` fails
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "pandas":
                raise ModuleNotFoundError("No module named 'pandas'", name=name)
            return None

    sys.meta_path.insert(0, NoPandas)
    try:
        pa.scalar(0)  # pyarrow's first conversion: it tries pandas once and remembers
    finally:
        sys.meta_path.remove(NoPandas)


@_start_errors
def cmd_run(args) -> int:
    from .jobs.spec import JobSpec

    spec = JobSpec.load(args.job)
    _arrow_without_pandas(args)
    job = build_job(spec, partitions=args.partitions, bounded=args.bounded, reset=args.reset)
    metrics = None
    if args.metrics_port is not None:
        from .metrics import serve
        try:
            metrics = serve(job, args.metrics_port, name=spec.sink_name or spec.source_name,
                            addr=args.metrics_host, source=spec.source_name,
                            sink=spec.sink_name or "stdout")
        except BaseException:
            _close_connectors(job)
            raise
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

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(job, args.progress_interval, enabled=not args.quiet)
    code = EXIT_OK
    try:
        job.start()
        while job._thread.is_alive():
            job._thread.join(progress.interval)
            if job._thread.is_alive():
                progress.tick()
        job.join()
    except Exception as exc:  # noqa: BLE001 - every error maps to an exit code
        # the plan binds on the first batch: an error in SQL found there (a column the file's
        # header does not have) means the job could not start, as validate says
        code = _exit_code(exc, running=job.engine.plan is not None)
    finally:
        if metrics is not None:  # its thread ends with the job, also when the job failed
            metrics.stop()
        if not _close_connectors(job) and code == EXIT_OK:
            code = EXIT_FAILED  # the sink could not finish writing: the output is not whole
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == EXIT_OK:
        progress.done()
    return code


def _close_connectors(job) -> bool:
    """Close the source, the sink and the dead-letter output (the file source's read-ahead
    thread ends); False when one failed to (reported; the others are closed all the same)."""
    ok = True
    for what, obj in (("source", job.reader), ("sink", job.sink), ("dead-letter output", job.dead_letter)):
        if obj is None:
            continue
        try:
            obj.close()
        except Exception as exc:  # noqa: BLE001 - reported, and the exit code says so
            print(f"velostream: closing the {what} failed: {exc}", file=sys.stderr)
            ok = False
    return ok


# ------------------------------------------------------------------------------ explain, validate
@_start_errors
def cmd_explain(args) -> int:
    import velostream as vs
    from .jobs.spec import JobSpec

    spec = JobSpec.load(args.job)
    _arrow_without_pandas(args)
    print(vs.explain(spec.sql, _input_sample(spec), env={}, partitions=args.partitions))
    print(spec.describe())
    return EXIT_OK


def _input_sample(spec) -> Optional[dict]:
    """A file source's columns and types, from its first batch (read-only), to plan with as
    ``run`` does when that batch arrives: so explain and validate find a column the file does not
    have. None for a Kafka source: they connect to nothing, so its columns are unknown."""
    from .io import open_source
    out = {}
    for name in [spec.source_name, *spec.other_sources]:
        one = spec.source_spec(name)
        if one.source_type != "file_source":
            continue
        src = open_source(one)
        try:
            rb = src.read()
        finally:
            src.close()
        if rb is not None:
            out[name] = rb.slice(0, 0)
    return out or None


@_start_errors
def cmd_validate(args) -> int:
    """Parse, plan (with a file source's columns) and check the properties; connects to nothing
    and writes nothing."""
    import velostream as vs
    from .jobs.spec import JobSpec

    spec = JobSpec.load(args.job)
    _arrow_without_pandas(args)
    _job_settings(spec)
    vs.explain(spec.sql, _input_sample(spec), env={})
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


@_start_errors
def cmd_demo(args) -> int:
    """The embedded default: the five benchmark scenarios (bench/README.md), from generated files, through
    the file source and the job server, into JSON-lines files. Without ``--dir`` they go to a
    temporary directory that is removed at the end, on an error or Ctrl-C too (at a million
    records a scenario it holds hundreds of MB)."""
    if args.dir:
        workdir = Path(args.dir)
        workdir.mkdir(parents=True, exist_ok=True)
        _demo(args, workdir)
        print(f"The job files are in {workdir} (velostream run {workdir / 's3a.sql'} runs one again).")
        return EXIT_OK
    import tempfile  # here: only demo needs it, run starts without it
    with tempfile.TemporaryDirectory(prefix="velostream-demo-") as tmp:
        _demo(args, Path(tmp))
    print("The data, job files and results were in a temporary directory, now removed: "
          "velostream demo --dir DIR keeps them.")
    return EXIT_OK


def _demo(args, workdir: Path) -> None:
    import pyarrow.csv as pcsv

    import velostream as vs
    from .datagen import SCENARIOS, scenario_input
    from .jobs.spec import JobSpec

    n = args.records
    print(f"velostream {vs.__version__} demo: the five benchmark scenarios (bench/README.md), {n:,} generated "
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
        try:
            stats = job.run()
        finally:
            _close_connectors(job)
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


def cmd_bench(args) -> int:
    sys.path.insert(0, str(Path.cwd()))  # the suite lives in the source checkout, not the wheel
    try:
        from bench.suite import main as bench_main
    except ImportError:
        print("the benchmark suite runs from a source checkout: cd into it and run "
              "`python -m bench` (pip install '.[bench]' first)", file=sys.stderr)
        return EXIT_CANNOT_START
    return bench_main(args.rest)


def _positive(text: str) -> int:
    """An argument that must be a whole number >= 1 (argparse reports anything else: exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _VersionAction(argparse.Action):
    """``--version``, as argparse's own, but the version is looked up only when asked for: the
    lookup (importlib.metadata) would add about 20 ms to every start of ``velostream run``."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"velostream {_version()}")
        parser.exit()


def _version() -> str:
    """The installed distribution's version (what pip installed), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("velostream")
    except PackageNotFoundError:
        from . import __version__
        return __version__


#: each sub-command's examples, shown at the end of its --help (docs/CLI.md has them all)
EXAMPLES = {
    "run": """examples:
  velostream run jobs/trade_stats.sql                     # until Ctrl-C / SIGTERM
  velostream run jobs/backfill.sql --bounded -q           # to the end of the input, then exit
  velostream run jobs/trade_stats.sql --partitions 4 --metrics-port 9464
  velostream run "SELECT * FROM t WITH ('t.type' = 'file_source', 't.path' = 't.csv')"

exit codes: 0 done, 1 the job failed, 2 it cannot start (bad SQL or properties), 3 broker unreachable""",
    "explain": """examples:
  velostream explain jobs/trade_stats.sql                 # plan, strategy, source and sink
  velostream explain jobs/pipeline.sql --partitions 4     # each keyed node's exchange""",
    "validate": """examples:
  velostream validate jobs/trade_stats.sql && echo ok     # exit 0, or 2 with the error""",
    "demo": """examples:
  velostream demo                                         # 1,000,000 records a scenario
  velostream demo --records 100000 --partitions 1
  velostream demo --dir /tmp/vs-demo                      # keep the data, jobs and results""",
    "bench": """examples (from a source checkout, with pip install '.[bench]'):
  velostream bench --quick
  velostream bench --scenarios S2,S3a --systems duckdb,velostream""",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _TerminalWidth:
    """argparse's formatters without their import of ``shutil`` for the terminal width: argparse
    makes a formatter for every argument it is given, help or not, and ``shutil`` brings ``bz2``
    and ``lzma`` with it, 5 ms of every start of ``velostream run`` (docs/PERFORMANCE.md, "File to
    file"). The width as ``shutil`` finds it: ``$COLUMNS``, else the terminal's, else 80; argparse
    then leaves two columns free."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            try:
                width = int(os.environ["COLUMNS"])
            except (KeyError, ValueError):
                width = 0
            if width <= 0:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns
                except (AttributeError, ValueError, OSError):
                    width = 0
            width = (width or 80) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _HelpFormatter(_TerminalWidth, argparse.HelpFormatter):
    pass


class _ExamplesFormatter(_TerminalWidth, argparse.RawDescriptionHelpFormatter):
    """A sub-command's help: its examples as written."""


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="velostream", description="Streaming SQL over event streams",
                                 formatter_class=_HelpFormatter,
                                 epilog="`velostream COMMAND --help` shows a command's options "
                                        "and examples; docs/CLI.md has everything.")
    ap.add_argument("--version", action=_VersionAction)
    ap.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
                    default=os.environ.get("VELOSTREAM_LOG", "WARNING").upper(),
                    help=f"log messages from this level on: {', '.join(LOG_LEVELS)} (default "
                         f"WARNING, or $VELOSTREAM_LOG)")
    sub = ap.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                              epilog=EXAMPLES[name],
                              formatter_class=_ExamplesFormatter)

    r = command("run", "run a job file until stopped (or to the end with --bounded)")
    r.add_argument("job", help="a .sql job file (or the SQL text)")
    r.add_argument("--partitions", type=_positive, default=1, help="partition threads (default 1)")
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
    e = command("explain", "show the plan, strategy, source and sink of a job")
    e.add_argument("job", help="a .sql job file (or the SQL text)")
    e.add_argument("--partitions", type=_positive, default=1,
                   help="show a pipeline's exchanges as `run --partitions N` runs them")
    e.set_defaults(fn=cmd_explain)
    v = command("validate", "check a job file without running it (no side effects)")
    v.add_argument("job", help="a .sql job file (or the SQL text)")
    v.set_defaults(fn=cmd_validate)
    d = command("demo", "the five benchmark scenarios on generated files")
    d.add_argument("--records", type=_positive, default=1_000_000,
                   help="generated records per scenario (default 1,000,000)")
    d.add_argument("--partitions", type=_positive, default=2, help="partition threads (default 2)")
    d.add_argument("--dir", default=None, help="where to write the data and results (default: a temp dir)")
    d.set_defaults(fn=cmd_demo)
    b = command("bench", "run the benchmark suite (from a source checkout)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)
    # the command is the whole process (the console script, python -m velostream), not a call
    # of main([...]) inside a program: only then may pyarrow be told pandas is absent, and the
    # process end without the interpreter's teardown (exit_process)
    whole_process = argv is None
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
    if args.log_level not in LOG_LEVELS:  # argparse checks choices of given values, not defaults
        ap.error(f"VELOSTREAM_LOG: invalid choice: {args.log_level!r} "
                 f"(choose from {', '.join(LOG_LEVELS)})")
    logging.basicConfig(level=args.log_level, format="[velostream] %(levelname)s %(message)s")
    args.whole_process = whole_process
    code = args.fn(args)
    if whole_process:
        exit_process(code)
    return code


def exit_process(code: int) -> None:
    """End the process with ``code`` when the command is done (``main()`` of the console script or
    ``python -m velostream``) as a normal exit does (atexit handlers run, the standard streams
    flushed), but leave the freeing of every module and object to the operating system: the
    interpreter's own teardown takes 40-150 ms after a job of a few million rows
    (docs/PERFORMANCE.md, "File to file"). A normal exit when another thread that is not a
    daemon still runs (the exit waits for it) or when the job loaded Python functions (their
    modules may count on finalizers, such as a file that is flushed when it is collected)."""
    import atexit

    from .udf import _REGISTRY
    if _REGISTRY or any(t is not threading.main_thread() and not t.daemon and t.is_alive()
                        for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()  # logging.shutdown and the like, as at a normal exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be written
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
