"""Profile one benchmark scenario: ``python tools/profile.py S3a [--records N] [--partitions P]``.

Prints a cProfile summary (CPU time, so a busy machine does not distort it) and, when py-spy is
installed, writes a flame graph to ``profile-<scenario>.svg``. Cython kernels show up inside the
Python functions that call them (they are compiled without profiling hooks).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import velostream as vs  # noqa: E402
from velostream.datagen import SCENARIOS, scenario_input  # noqa: E402


def run(scenario: str, records: int, partitions: int) -> None:
    src, batches = scenario_input(scenario, records)
    vs.query(SCENARIOS[scenario][1], {src: batches}, partitions=partitions)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", choices=list(SCENARIOS))
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--flame", action="store_true", help="also record a py-spy flame graph")
    args = ap.parse_args(argv)
    if args.flame:
        if shutil.which("py-spy") is None:
            print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
            return 2
        out = f"profile-{args.scenario}.svg"
        subprocess.run(["py-spy", "record", "--native", "-o", out, "--", sys.executable, __file__,
                        args.scenario, "--records", str(args.records), "--partitions",
                        str(args.partitions)], check=True)
        print("flame graph:", out)
        return 0
    src, batches = scenario_input(args.scenario, args.records)
    sql = SCENARIOS[args.scenario][1]
    vs.query(sql, {src: batches[:2]})  # warm up
    prof = cProfile.Profile(time.process_time)
    t0 = time.perf_counter()
    prof.enable()
    vs.query(sql, {src: batches}, partitions=args.partitions)
    prof.disable()
    wall = time.perf_counter() - t0
    print(f"{args.scenario}: {args.records:,} records, {wall:.3f} s wall "
          f"({args.records / wall / 1e6:.2f} M rec/s)")
    pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
