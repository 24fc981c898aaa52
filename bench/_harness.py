"""What every ``bench/<scenario>/run_benchmark.py`` shares: systems, workloads, the timed loop.

A workload (the input batches and the reference checksum from DuckDB) is built once per process,
lazily, so the pyperf manager process that only spawns workers never builds one. The timed
function times each call of the system's runner on its own and verifies that call's output
afterwards, so verification is outside the timed region but no unverified time is ever returned.
"""
from __future__ import annotations

import functools
import os
import platform
import sys
import time
from dataclasses import dataclass

import pyarrow as pa

from bench import peers, velostream_runner
from bench.data import BATCH_ROWS, SCENARIOS, Scenario
from bench.verify import Checksum, checksum, verify

DEFAULT_RECORDS = 2_000_000
PEER_SYSTEMS = ("duckdb", "polars", "python", "bytewax")
#: Systems whose runs take seconds at 2 M records: the suite gives them fewer pyperf runs.
SLOW_SYSTEMS = ("python", "bytewax")


def velostream_systems(partitions=velostream_runner.DEFAULT_PARTITIONS) -> list[str]:
    return ["velostream-v1"] + [velostream_runner.system_name(p) for p in partitions]


ALL_SYSTEMS = tuple(velostream_systems()) + PEER_SYSTEMS


def is_known_system(system: str) -> bool:
    if system in PEER_SYSTEMS:
        return True
    try:
        velostream_runner.parse_system(system)
    except ValueError:
        return False
    return True


def available(system: str) -> tuple[bool, str]:
    """Whether ``system`` can run on this machine now, and if not, why."""
    if velostream_runner.is_velostream(system):
        return velostream_runner.available(system)
    return peers.available(system)


#: Self-test of the verification path: the named system's output loses its last row.
CORRUPT_ENV = "VELOSTREAM_BENCH_CORRUPT"


def prepare(system: str, sc: Scenario, batches: list[pa.RecordBatch]):
    """Untimed setup; returns the zero-argument callable whose call is the timed work."""
    if velostream_runner.is_velostream(system):
        run = velostream_runner.prepare(system, sc, batches)
    else:
        run = peers.PEERS[system](sc, batches)
    if os.environ.get(CORRUPT_ENV) == system:
        clean = run
        def run():  # noqa: E306
            out = clean()
            return out.slice(0, max(out.num_rows - 1, 0))
    return run


def partitions_of(system: str) -> int:
    if velostream_runner.is_velostream(system):
        p = velostream_runner.parse_system(system)
        return 1 if p is None else p
    return 0  # peers: not partitioned by us (DuckDB and Polars use their own thread pools)


@dataclass
class Workload:
    scenario: Scenario
    records: int
    batches: list[pa.RecordBatch]
    reference: Checksum


@functools.lru_cache(maxsize=4)
def workload(scenario_name: str, records: int) -> Workload:
    """The input and DuckDB's reference checksum for one scenario (cached per process)."""
    sc = SCENARIOS[scenario_name]
    batches = sc.generate(records)
    reference = checksum(peers.prepare_duckdb(sc, batches)(), sc.columns)
    return Workload(sc, records, batches, reference)


def timed_runs(loops: int, system: str, scenario_name: str, records: int) -> float:
    """pyperf time function: ``loops`` verified runs, returns their summed wall time."""
    wl = workload(scenario_name, records)
    run = prepare(system, wl.scenario, wl.batches)
    perf_counter = time.perf_counter
    total = 0.0
    for _ in range(loops):
        t0 = perf_counter()
        out = run()
        total += perf_counter() - t0
        verify(out, wl.reference, system=system, scenario=scenario_name)
        del out
    return total


def benchmark_name(scenario_name: str, system: str) -> str:
    return f"{scenario_name}/{system}"


def split_benchmark_name(name: str) -> tuple[str, str]:
    scenario_name, _, system = name.partition("/")
    return scenario_name, system


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "none"


def metadata(sc: Scenario, system: str, records: int) -> dict:
    """pyperf metadata describing one benchmark's workload."""
    md = {
        "description": f"{sc.label} {sc.description}: {system} on {records:,} records",
        "scenario": sc.name,
        "scenario_label": sc.label,
        "system": system,
        "records": records,
        "partitions": partitions_of(system),
        "batch_rows": BATCH_ROWS,
        "emit": sc.emit,
        "timed": (peers.TIMED.get(system) or "vs.query(...) + Result.to_arrow()"),
        "pyarrow_version": pa.__version__,
    }
    if system in ("duckdb", "polars", "bytewax"):
        md[f"{system}_version"] = _version(system)
    elif velostream_runner.is_velostream(system):
        md["velostream_version"] = _version("velostream")
    return md


def host_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} logical CPUs, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


# --- the body of every run_benchmark.py --------------------------------------------------------

def run_benchmark_main(folder: str, argv=None) -> int:
    """pyperf program for the scenario(s) in ``bench/<folder>``."""
    import pyperf

    in_folder = [s for s in SCENARIOS.values() if s.folder == folder]
    emits = [s.emit for s in in_folder]

    def add_cmdline_args(cmd, args):
        cmd.extend(("--records", str(args.records)))
        for system in args.system:
            cmd.extend(("--system", system))
        if len(in_folder) > 1:
            cmd.extend(("--emit", args.emit))

    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args, loops=1)
    runner.argparser.add_argument("--records", type=int, default=DEFAULT_RECORDS,
                                  help="input records (default: %(default)s)")
    runner.argparser.add_argument(
        "--system", action="append", default=None, metavar="SYSTEM",
        help=f"system to run, repeatable (default: every available one of {', '.join(ALL_SYSTEMS)};"
             " velostream-v2-pN for any N)")
    if len(in_folder) > 1:
        runner.argparser.add_argument("--emit", choices=emits + ["all"], default=emits[0],
                                      help="which variant to run (default: %(default)s)")
    args = runner.parse_args(argv)
    scenarios = in_folder
    if len(in_folder) > 1 and args.emit != "all":
        scenarios = [s for s in in_folder if s.emit == args.emit]

    requested = args.system or list(ALL_SYSTEMS)
    args.system = []
    for system in requested:
        if not is_known_system(system):
            runner.argparser.error(f"unknown system {system!r}; choose from "
                                   f"{', '.join(ALL_SYSTEMS)} (or velostream-v2-pN)")
        ok, reason = available(system)
        if ok:
            args.system.append(system)
        elif not args.worker:
            print(f"skipping {system}: {reason}", file=sys.stderr)

    for sc in scenarios:
        for system in args.system:
            runner.bench_time_func(benchmark_name(sc.name, system), timed_runs,
                                   system, sc.name, args.records,
                                   metadata=metadata(sc, system, args.records))
    return 0
