"""Join state stays bounded (docs/SQL.md §9): the peak memory of an interval join (+-5 s) of two
streams pushed through ``vs.Engine`` in time order stays flat as the input grows, because each
side's rows are dropped once the watermark passes their interval.

    python bench/join_memory.py [millions ...]      # e.g. 1 2 4 8

Each size runs in a fresh process; prints the peak RSS (VmHWM) per size, and the rows joined.
"""
from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import numpy as np, pyarrow as pa, velostream as vs, json, sys
n = int(sys.argv[1]); batch = 65_536
eng = vs.Engine("SELECT a.k, a.v, b.w FROM a JOIN b ON a.k = b.k "
                "AND b.ts BETWEEN a.ts - 5000 AND a.ts + 5000")
rng = np.random.default_rng(1)
joined = 0
for lo in range(0, n, batch):
    m = min(batch, n - lo)
    ts = (np.arange(lo, lo + m, dtype=np.int64) * 2)  # 500 rows per second per side
    for side, col in (("a", "v"), ("b", "w")):
        rb = pa.record_batch({"k": pa.array(rng.integers(0, 1000, m)),
                              col: pa.array(rng.integers(0, 100, m)),
                              "ts": pa.array(ts), "_TIMESTAMP": pa.array(ts)})
        joined += len(eng.push(side, rb))
joined += len(eng.flush())
with open("/proc/self/status") as f:
    hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
print(json.dumps({"rows_per_side": n, "joined": joined, "peak_rss_mb": round(hwm / 1024, 1)}))
"""


def main(sizes: list[float]) -> list[dict]:
    out = []
    for millions in sizes:
        n = int(millions * 1_000_000)
        r = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True,
                           check=True)
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


if __name__ == "__main__":
    sizes = [float(a) for a in sys.argv[1:]] or [1, 2, 4]
    for row in main(sizes):
        print(json.dumps(row))
