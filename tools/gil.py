"""How much of their working time the V2 partition threads run without the GIL.

    python tools/gil.py S3a --partitions 2 --records 4000000

Samples the job twice over with py-spy: once every active thread, once only threads holding the
GIL. For the partition threads, ``1 - gil_samples / active_samples`` is the fraction of their busy
time spent outside the GIL (in the nogil kernels, numpy and Arrow). Needs ``pip install py-spy``
and permission to ptrace (root, or kernel.yama.ptrace_scope = 0).
"""
from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

JOB = """
import sys
sys.path.insert(0, {root!r})
import velostream as vs
from velostream.datagen import SCENARIOS, scenario_input
src, batches = scenario_input({scenario!r}, {records})
for _ in range({repeat}):
    vs.query(SCENARIOS[{scenario!r}][1], {{src: batches}}, partitions={partitions})
"""


def samples_per_thread(raw: Path) -> collections.Counter:
    """py-spy raw output: 'thread (0x..) ;frame;frame count' lines -> samples per thread name."""
    counts: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        thread = stack.split(";", 1)[0]
        thread = thread.split("): ", 1)[1] if "): " in thread else thread  # ids differ per run
        counts[thread] += int(n)
    return counts


def record(script: Path, out: Path, gil: bool, rate: int) -> collections.Counter:
    cmd = ["py-spy", "record", "--format", "raw", "--threads", "--rate", str(rate), "-o", str(out)]
    if gil:
        cmd.append("--gil")
    subprocess.run(cmd + ["--", sys.executable, str(script)], check=True, capture_output=True)
    return samples_per_thread(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="S3a")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=int, default=500)
    args = ap.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "job.py"
        script.write_text(JOB.format(root=str(ROOT), scenario=args.scenario, records=args.records,
                                     partitions=args.partitions, repeat=args.repeat))
        active = record(script, Path(tmp) / "all.txt", False, args.rate)
        holding = record(script, Path(tmp) / "gil.txt", True, args.rate)
    names = sorted(k for k in active if k.startswith("velostream-partition"))
    a = sum(active[k] for k in names)
    g = sum(holding.get(k, 0) for k in names)
    if a == 0:
        print("no partition-thread samples: is py-spy allowed to ptrace?", file=sys.stderr)
        return 2
    print(f"{args.scenario}, {args.partitions} partitions: partition threads sampled {a} times "
          f"while active, {g} of them holding the GIL")
    print(f"time without the GIL: {100 * (1 - g / a):.1f} %")
    for k in names:
        print(f"  {k}: {active[k]} active, {holding.get(k, 0)} holding the GIL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
