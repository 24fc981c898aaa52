"""Child processes of ``python -m bench``, so that a crash in a compiled extension costs one row.

    python -m bench._quick RECORDS SCENARIO/SYSTEM [SCENARIO/SYSTEM ...]
    python -m bench._quick --probe SYSTEM [SYSTEM ...]

The first form runs each (scenario, system) pair once (``--quick`` mode).
Prints ``START <scenario/system>`` before each run and ``RESULT <json>`` after it, so that the
parent can tell which pair a crash (a segfault in a compiled extension, say) happened in, and
carry on with the remaining pairs in a fresh process. The second form prints
``AVAILABLE <json>`` per system: whether it can run here (velostream systems are probed with a
tiny query, which the suite's own process should not risk).
"""
from __future__ import annotations

import json
import sys
import time


def probe(systems: list[str]) -> int:
    from bench import _harness

    for system in systems:
        ok, reason = _harness.available(system)
        print("AVAILABLE " + json.dumps({"system": system, "ok": ok, "reason": reason}),
              flush=True)
    return 0


def main(argv: list[str]) -> int:
    from bench import _harness
    from bench.verify import verify

    if argv and argv[0] == "--probe":
        return probe(argv[1:])
    records = int(argv[0])
    for pair in argv[1:]:
        scenario_name, system = _harness.split_benchmark_name(pair)
        print(f"START {pair}", flush=True)
        result = {"pair": pair}
        try:
            wl = _harness.workload(scenario_name, records)
            run = _harness.prepare(system, wl.scenario, wl.batches)
            t0 = time.perf_counter()
            out = run()
            result["elapsed"] = time.perf_counter() - t0
            result["rows"] = out.num_rows
            verify(out, wl.reference, system=system, scenario=scenario_name)
            result["status"] = "ok"
        except Exception as exc:
            result["status"] = f"failed: {type(exc).__name__}: {exc}".replace("\n", " ")
        print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
