"""``python -m bench``: run scenarios x systems, write the pyperf JSON, a Markdown table, a chart.

Each (scenario, system) pair runs as its own pyperf program (``bench/<folder>/run_benchmark.py``)
in a subprocess, so one system's failure (a verification mismatch, a crash) costs only its own
row, and pyperf's worker processes isolate the timings. ``--quick`` instead runs every pair once
on a tiny input, in one child process (restarted after a crash): a smoke test of the whole
pipeline, verification included, with no timing claims.

>>> main(["--quick", "--systems", "duckdb,python", "--scenarios", "S0", "--output-dir", "/tmp"])
... # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time

import pyperf

from bench import _harness, report
from bench.data import SCENARIOS, scenario as find_scenario

BENCH_DIR = pathlib.Path(__file__).resolve().parent
QUICK_RECORDS = 20_000

#: pyperf settings per mode: (processes, values, warmups) for ordinary and for slow systems
RUN_SETTINGS = {
    "default": ((5, 3, 1), (2, 2, 1)),
    "fast": ((2, 2, 1), (1, 1, 1)),
}


def _parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the velostream benchmark scenarios against their peers.")
    p.add_argument("--scenarios", default="all",
                   help="comma-separated scenario names or labels (S0,S1,S2,S2-final,S3a,S3b,"
                        "S2-HC) or 'all' (default)")
    p.add_argument("--systems", default="all",
                   help="comma-separated systems, or 'all' (default): "
                        + ", ".join(_harness.ALL_SYSTEMS))
    p.add_argument("--partitions", default="1,2,4",
                   help="V2 partition counts to run (default: 1,2,4)")
    p.add_argument("--records", type=int, default=None,
                   help=f"input records per scenario (default: {_harness.DEFAULT_RECORDS:,}, "
                        f"--quick: {QUICK_RECORDS:,})")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="smoke run: tiny input, one run per pair, no timing claims")
    mode.add_argument("--fast", action="store_true",
                      help="fewer pyperf processes and values: a rough local table")
    p.add_argument("--output-dir", type=pathlib.Path, default=BENCH_DIR / "results",
                   help="where to write <date>-<host>.json/.md/.png (default: bench/results)")
    p.add_argument("--name", help="file name stem instead of <date>-<host>")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds allowed per (scenario, system) pyperf program")
    p.add_argument("-v", "--verbose", action="store_true", help="show pyperf's own output")
    return p.parse_args(argv)


def _select_scenarios(spec: str):
    if spec.strip().lower() == "all":
        return list(SCENARIOS.values())
    try:
        return [find_scenario(name) for name in spec.split(",") if name.strip()]
    except KeyError as exc:
        raise SystemExit(f"python -m bench: {exc.args[0]}") from None


def _select_systems(spec: str, partitions: str) -> list[str]:
    counts = [int(x) for x in partitions.split(",") if x.strip()]
    everything = _harness.velostream_systems(counts) + list(_harness.PEER_SYSTEMS)
    if spec.strip().lower() == "all":
        return everything
    chosen = []
    for name in (s.strip() for s in spec.split(",")):
        if name == "velostream":
            chosen += _harness.velostream_systems(counts)
        elif _harness.is_known_system(name):
            chosen.append(name)
        elif name:
            raise SystemExit(f"python -m bench: unknown system {name!r}; choose from "
                             f"{', '.join(everything)} (or 'velostream' for all of its modes)")
    return list(dict.fromkeys(chosen))


def _stem(args) -> str:
    if args.name:
        return args.name
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", platform.node() or "host")
    stem = f"{datetime.date.today().isoformat()}-{host}"
    return stem + "-quick" if args.quick else stem


def _log(msg: str) -> None:
    print(msg, flush=True)


def _child_env() -> dict[str, str]:
    """Children resolve imports (``bench``, ``velostream``) exactly as this process does."""
    paths = [p or os.getcwd() for p in sys.path]
    if str(BENCH_DIR.parent) not in paths:
        paths.append(str(BENCH_DIR.parent))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


# --- quick: in a child process, restarted after a crash ----------------------------------------

def _run_quick(scenarios, systems, records, statuses):
    import json
    import signal

    benchmarks = []
    remaining = [_harness.benchmark_name(sc.name, system)
                 for sc in scenarios for system in systems]
    while remaining:
        cmd = [sys.executable, "-m", "bench._quick", str(records), *remaining]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_child_env())
        current = None
        for line in proc.stdout:
            if line.startswith("START "):
                current = line[6:].strip()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
                name = result["pair"]
                remaining.remove(name)
                current = None
                key = _harness.split_benchmark_name(name)
                statuses[key] = result["status"]
                if result["status"] != "ok":
                    _log(f"{name}: {result['status']}")
                    continue
                md = _harness.metadata(SCENARIOS[key[0]], key[1], records)
                md.update(name=name, loops=1, unit="second", quick_mode="yes")
                benchmarks.append(pyperf.Benchmark([pyperf.Run([result["elapsed"]],
                                                               metadata=md)]))
                _log(f"{name}: ok ({result['rows']:,} rows, {records / result['elapsed']:,.0f} "
                     "rec/s, quick mode: no timing claim)")
        stderr = proc.stderr.read()
        code = proc.wait()
        if not remaining:
            break
        crashed = current or remaining[0]
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        detail = _failure_reason(stderr)[len("failed: "):] if stderr.strip() else ""
        statuses[_harness.split_benchmark_name(crashed)] = \
            f"failed: process crashed ({how}) {detail}".strip()
        _log(f"{crashed}: {statuses[_harness.split_benchmark_name(crashed)]}")
        remaining.remove(crashed)
    return benchmarks


# --- ordinary: one pyperf program per pair -----------------------------------------------------

def _failure_reason(text: str) -> str:
    for line in reversed(text.splitlines()):
        if "VerificationError" in line:
            return "failed: " + line.split("VerificationError:", 1)[-1].strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tail = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln),
                lines[-1] if lines else "no output")
    return "failed: " + tail.strip()


def _run_pyperf(sc, system, records, settings, args, tmpdir, statuses):
    processes, values, warmups = settings
    out = pathlib.Path(tmpdir) / f"{sc.name}-{system}.json"
    cmd = [sys.executable, str(BENCH_DIR / sc.folder / "run_benchmark.py"),
           "--records", str(records), "--system", system,
           "--processes", str(processes), "--values", str(values), "--warmups", str(warmups),
           "--loops", "1", "-o", str(out)]
    if sum(s.folder == sc.folder for s in SCENARIOS.values()) > 1:
        cmd += ["--emit", sc.emit]
    if not args.verbose:
        cmd.append("--quiet")
    # pyperf workers only inherit the variables named here
    inherit = ["PYTHONPATH"] + [v for v in (_harness.CORRUPT_ENV,) if v in os.environ]
    cmd += ["--inherit-environ", ",".join(inherit)]
    name = _harness.benchmark_name(sc.name, system)
    _log(f"{name}: running ({processes} processes x {values} values, {warmups} warmup) ...")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=not args.verbose, text=True,
                              timeout=args.timeout, env=_child_env())
    except subprocess.TimeoutExpired:
        statuses[(sc.name, system)] = f"failed: timed out after {args.timeout:g} s"
        _log(f"{name}: TIMED OUT")
        return None
    text = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0 or not out.exists():
        statuses[(sc.name, system)] = _failure_reason(text) if proc.returncode else \
            "skipped: " + (text.strip().splitlines() or ["no result"])[-1]
        _log(f"{name}: {statuses[(sc.name, system)]}")
        return None
    bench = pyperf.Benchmark.load(str(out))
    if bench.get_name() != name:
        statuses[(sc.name, system)] = (f"failed: the pyperf program ran {bench.get_name()!r} "
                                       f"instead of {name!r}")
        _log(f"{name}: {statuses[(sc.name, system)]}")
        return None
    statuses[(sc.name, system)] = "ok"
    _log(f"{name}: {records / bench.mean():,.0f} rec/s (mean {bench.mean() * 1e3:.1f} ms, "
         f"{len(bench.get_values())} values, {time.perf_counter() - t0:.0f} s)")
    return bench


def _availability(systems: list[str]) -> dict[str, tuple[bool, str]]:
    """Peers are checked here; velostream systems in a child process (they run a probe query)."""
    import json
    import signal

    result = {s: _harness.available(s) for s in systems
              if not _harness.velostream_runner.is_velostream(s)}
    engine = [s for s in systems if s not in result]
    if engine:
        proc = subprocess.run([sys.executable, "-m", "bench._quick", "--probe", *engine],
                              capture_output=True, text=True, env=_child_env())
        for line in proc.stdout.splitlines():
            if line.startswith("AVAILABLE "):
                r = json.loads(line[10:])
                result[r["system"]] = (r["ok"], r["reason"])
        code = proc.returncode
        for s in engine:
            if s not in result:
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                result[s] = (False, f"failed: the availability probe crashed ({how})")
    return result


# --- entry point -------------------------------------------------------------------------------

def main(argv=None) -> int:
    """Run the suite; returns the exit status (1 when any verification or run failed)."""
    args = _parse_args(argv)
    scenarios = _select_scenarios(args.scenarios)
    systems = _select_systems(args.systems, args.partitions)
    records = args.records or (QUICK_RECORDS if args.quick else _harness.DEFAULT_RECORDS)

    statuses: dict[tuple[str, str], str] = {}
    runnable = []
    availability = _availability(systems)
    for system in systems:
        ok, reason = availability[system]
        if ok:
            runnable.append(system)
        else:
            _log(f"skipping {system}: {reason}")
            for sc in scenarios:
                statuses[(sc.name, system)] = reason if reason.startswith("failed") else \
                    f"skipped: {reason}"
    if "duckdb" not in runnable and _harness.peers.available("duckdb")[0] is False:
        raise SystemExit("python -m bench: DuckDB is required: it computes the reference output")

    host = _harness.host_description()
    _log(f"{len(scenarios)} scenarios x {len(runnable)} systems, {records:,} records; {host}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = _stem(args)
    paths = {ext: args.output_dir / f"{stem}.{ext}" for ext in ("json", "md", "png")}
    started = time.perf_counter()
    if args.quick:
        benchmarks = _run_quick(scenarios, runnable, records, statuses)
    else:
        settings = RUN_SETTINGS["fast" if args.fast else "default"]
        benchmarks = []
        with tempfile.TemporaryDirectory(prefix="velostream-bench-") as tmpdir:
            for sc in scenarios:
                for system in runnable:
                    slow = system in _harness.SLOW_SYSTEMS
                    bench = _run_pyperf(sc, system, records, settings[slow], args, tmpdir,
                                        statuses)
                    if bench is not None:
                        benchmarks.append(bench)
                        # saved as it goes: a long run interrupted keeps what it measured
                        pyperf.BenchmarkSuite(benchmarks).dump(str(paths["json"]), replace=True)

    suite = pyperf.BenchmarkSuite(benchmarks) if benchmarks else None
    if suite is not None:
        suite.dump(str(paths["json"]), replace=True)
    mode = "quick smoke run: tiny input, single runs, NO timing claims" if args.quick else \
        ("--fast: few pyperf values, rough figures" if args.fast else "pyperf default settings")
    notes = [f"Mode: {mode}. DuckDB and Polars use their own thread pools on all "
             f"{os.cpu_count()} CPUs; python and bytewax run in one thread; velostream-v1 in "
             "the calling thread, velostream-v2-pN on N partition threads."]
    rows = report.rows_from_suite(suite, statuses, systems=systems)
    title = f"velostream benchmarks {stem}"
    paths["md"].write_text(report.markdown(rows, title=title, host=host, notes=notes))
    report.chart(rows, paths["png"], title=title)
    failures = {k: v for k, v in statuses.items() if v.startswith("failed")}
    _log(f"done in {time.perf_counter() - started:.0f} s; wrote "
         + ", ".join(str(p) for p in paths.values() if p.exists()))
    for (scn, system), reason in failures.items():
        _log(f"FAILED {scn}/{system}: {reason}")
    return 1 if failures else 0
