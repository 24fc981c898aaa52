"""The ``velostream`` command line: ``demo``, ``explain``, ``validate``, ``bench``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import SqlError


def _read_sql(arg: str) -> str:
    p = Path(arg)
    return p.read_text() if p.suffix.lower() == ".sql" or p.is_file() else arg


def cmd_demo(args) -> int:
    """The embedded default: the five benchmark scenarios on generated trading data."""
    import velostream as vs
    from .datagen import SCENARIOS, scenario_input

    n = args.records
    print(f"velostream {vs.__version__} demo: the five scenarios of SCENARIOS.md on {n:,} generated "
          f"records each, {args.partitions} partition(s)\n")
    for name, (_, sql) in SCENARIOS.items():
        source, batches = scenario_input(name, n)
        t0 = time.perf_counter()
        res = vs.query(sql, {source: batches}, partitions=args.partitions)
        secs = time.perf_counter() - t0
        first_line = " ".join(sql.split())[:90]
        print(f"{name}: {first_line}...")
        print(f"    {n:,} records in {secs * 1000:.1f} ms = {n / secs / 1e6:.2f} M rec/s, "
              f"{len(res):,} rows out")
        for row in res.to_arrow().slice(0, 2).to_pylist():
            print("    ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
        print()
    return 0


def cmd_explain(args) -> int:
    import velostream as vs
    print(vs.explain(_read_sql(args.sql)))
    return 0


def cmd_validate(args) -> int:
    import velostream as vs
    vs.explain(_read_sql(args.sql))
    print("ok")
    return 0


def cmd_bench(args) -> int:
    sys.path.insert(0, str(Path.cwd()))  # the suite lives in the source checkout, not the wheel
    try:
        from bench.suite import main as bench_main
    except ImportError:
        print("the benchmark suite runs from a source checkout: cd into it and run "
              "`python -m bench` (pip install '.[bench]' first)", file=sys.stderr)
        return 2
    return bench_main(args.rest)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="velostream", description="Streaming SQL over event streams")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the five benchmark scenarios on generated data")
    d.add_argument("--records", type=int, default=1_000_000)
    d.add_argument("--partitions", type=int, default=1)
    d.set_defaults(fn=cmd_demo)
    e = sub.add_parser("explain", help="show the plan of a query (SQL text or a .sql file)")
    e.add_argument("sql")
    e.set_defaults(fn=cmd_explain)
    v = sub.add_parser("validate", help="parse and plan a query without running it")
    v.add_argument("sql")
    v.set_defaults(fn=cmd_validate)
    b = sub.add_parser("bench", help="run the benchmark suite (from a source checkout)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(fn=cmd_bench)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except SqlError as exc:
        print(f"SQL error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
