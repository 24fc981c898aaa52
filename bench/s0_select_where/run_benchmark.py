"""S0: pure SELECT + WHERE over 'orders' (bench/README.md).

    python bench/s0_select_where/run_benchmark.py --records 2000000 --system duckdb -o out.json

Every pyperf option works (--fast, --rigorous, --debug-single-value, -p, -n, ...). Setup (data
generation, DuckDB's reference checksum) happens once per worker process, outside the timed
calls; each timed call is verified against the reference before its time counts.
"""
import importlib.util
import pathlib
import sys

if importlib.util.find_spec("bench") is None:  # run directly, not from `python -m bench`
    sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

from bench._harness import run_benchmark_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_benchmark_main("s0_select_where"))
