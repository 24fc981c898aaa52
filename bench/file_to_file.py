"""File to file: scenario S3a through ``velostream run --bounded`` against DuckDB, both as fresh
processes, for CSV -> JSON lines, CSV -> Parquet, Parquet -> JSON lines and Parquet -> Parquet.

    python bench/file_to_file.py --records 2000000
    python bench/file_to_file.py --records 200000 --pairs csv:jsonl -o out.md   # quick
    python bench/file_to_file.py --records 2000000 --repeat 5   # best and median of 5 rounds

Setup (untimed): the S3a input (``velostream.datagen.market_data``, without ``_TIMESTAMP``) as
``market_data.csv`` and ``market_data.parquet`` (row groups of 250,000 rows), and velostream's
modules compiled to bytecode (``compileall``), as an install has them, like DuckDB, numpy and
pyarrow: in a source checkout whose ``.pyc`` files are stale, with ``PYTHONDONTWRITEBYTECODE``
set, each process would otherwise compile the changed modules again (0.3 s). Timed, per pair: the
wall-clock time of a fresh ``python -m velostream run -q --bounded --partitions P job.sql`` for
P = 1 and 2 (the best counts), and of a fresh ``python -c`` process running DuckDB's
``COPY (<S3a in DuckDB SQL>) TO ...`` on the same file. Both processes start Python and import
their library. Each output is checked (rows, and the sum of ``trade_count``, against DuckDB's)
before its time counts. Ratio = DuckDB's time / velostream's: 1.0x or more means velostream is as
fast or faster.

``--repeat N`` (on a shared machine): each pair N rounds of (DuckDB, velostream p1, p2), one
after the other so that both see the same load; the table gives the best and the median of
each, velostream's of a round being the better of p1 and p2, and the ratio of the bests and of
the medians; and the median CPU time (user + system, all threads) of each side, which the load of
other work on the machine moves less than the wall-clock time.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import duckdb
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run directly, not from `python -m bench`
    sys.path.append(str(ROOT))

from bench.data import SCENARIOS  # noqa: E402
from velostream.datagen import market_data  # noqa: E402

SQL = SCENARIOS["s3a_tumbling"].sql
# S3a in DuckDB SQL: the 1-minute tumbling window is the event time floored to the minute
DUCK_SQL = ("SELECT trader_id, symbol, COUNT(*) AS trade_count, AVG(price) AS avg_price, "
            "SUM(quantity) AS total_quantity, SUM(price * quantity) AS total_value "
            "FROM {src} GROUP BY trader_id, symbol, trade_time // 60000")
PAIRS = [("csv", "jsonl"), ("csv", "parquet"), ("parquet", "jsonl"), ("parquet", "parquet")]


def write_inputs(d: Path, records: int) -> dict[str, Path]:
    table = pa.Table.from_batches([b.drop_columns(["_TIMESTAMP"]) for b in market_data(records)])
    paths = {"csv": d / "market_data.csv", "parquet": d / "market_data.parquet"}
    pcsv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"], row_group_size=250_000)
    return paths


def compile_velostream() -> None:
    """velostream's modules as bytecode next to their sources, as an install has them."""
    import velostream
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(velostream.__file__)],
                   check=True, stdout=subprocess.DEVNULL)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH")) if p)
    e["PYTHONSAFEPATH"] = "1"
    return e


def timed(argv: list[str], cwd: Path) -> tuple[float, str, float]:
    """(wall-clock time, stderr, CPU time: user + system of the process and its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stderr}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, p.stderr, cpu


def check(out: Path, fmt: str) -> tuple[int, int]:
    """(rows, sum of trade_count) of an output."""
    src = f"read_parquet('{out}')" if fmt == "parquet" else f"read_json('{out}', format='newline_delimited')"
    return duckdb.sql(f"SELECT COUNT(*), SUM(trade_count) FROM {src}").fetchall()[0]


def run_velostream(d: Path, src: Path, out_fmt: str, partitions: int) -> tuple:
    out = d / f"vs_out.{out_fmt}"
    job = d / "job.sql"
    job.write_text(f"CREATE STREAM s3a_out AS {SQL}\nWITH ('market_data.type' = 'file_source', "
                   f"'market_data.path' = '{src}', 's3a_out.type' = 'file_sink', "
                   f"'s3a_out.path' = '{out}')")
    # without -q: the last line says how long the job itself ran (the rest is the process
    # starting, importing and planning, and ending)
    t, err, cpu = timed([sys.executable, "-m", "velostream", "run", "--progress-interval", "3600",
                         "--bounded", "--partitions", str(partitions), str(job)], d)
    m = re.search(r"done: .* in ([0-9.]+) s", err)
    return t, float(m.group(1)) if m else float("nan"), check(out, out_fmt), cpu


def run_duckdb(d: Path, src: Path, src_fmt: str, out_fmt: str) -> tuple:
    out = d / f"duck_out.{out_fmt}"
    reader = f"read_parquet('{src}')" if src_fmt == "parquet" else f"read_csv('{src}')"
    fmt = "PARQUET" if out_fmt == "parquet" else "JSON"
    copy = f"COPY ({DUCK_SQL.format(src=reader)}) TO '{out}' (FORMAT {fmt})"
    t, _, cpu = timed([sys.executable, "-c", f"import duckdb; duckdb.sql({copy!r})"], d)
    return t, check(out, out_fmt), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--pairs", default=",".join(f"{a}:{b}" for a, b in PAIRS),
                    help="source:sink pairs, comma-separated (default: all four)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds per pair; the table gives the best and the median (default 1)")
    ap.add_argument("-o", "--output", help="also write the table (Markdown) here")
    args = ap.parse_args()
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    if args.repeat == 1:
        lines = [f"S3a file to file, {args.records:,} records, {os.cpu_count()} cores; "
                 f"time of a fresh process, best of velostream at 1 and 2 partitions",
                 "", "| source -> sink | velostream p1 (s) | p2 (s) | of which the job, best (s) "
                 "| DuckDB (s) | ratio (DuckDB / velostream) |",
                 "|---|---|---|---|---|---|"]
    else:
        lines = [f"S3a file to file, {args.records:,} records, {os.cpu_count()} cores, "
                 f"{args.repeat} rounds; time of a fresh process (best / median), velostream's "
                 f"the better of 1 and 2 partitions in each round",
                 "", "| source -> sink | velostream (s) | of which the job (s) | DuckDB (s) "
                 "| ratio of the bests | ratio of the medians | CPU, median (s): velostream / DuckDB |",
                 "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="velostream-file-to-file-") as tmp:
        d = Path(tmp)
        inputs = write_inputs(d, args.records)
        compile_velostream()
        for src_fmt, out_fmt in pairs:
            # (DuckDB, {p: velostream}, {p: the job}, DuckDB's CPU, {p: velostream's CPU})
            rounds = []
            for _ in range(args.repeat):
                duck_t, want, duck_cpu = run_duckdb(d, inputs[src_fmt], src_fmt, out_fmt)
                times, job_times, cpus = {}, {}, {}
                for p in (1, 2):
                    times[p], job_times[p], got, cpus[p] = run_velostream(d, inputs[src_fmt], out_fmt, p)
                    if got != want:
                        raise AssertionError(f"{src_fmt} -> {out_fmt} at {p} partitions: velostream "
                                             f"wrote {got} (rows, trades), DuckDB {want}")
                rounds.append((duck_t, times, job_times, duck_cpu, cpus))
            if args.repeat == 1:
                duck_t, times, job_times = rounds[0][:3]
                best_p = min(times, key=times.get)
                best = times[best_p]
                lines.append(f"| {src_fmt} -> {out_fmt} | {times[1]:.2f} | {times[2]:.2f} | "
                             f"{job_times[best_p]:.2f} | {duck_t:.2f} | {duck_t / best:.2f}x |")
            else:
                duck = [r[0] for r in rounds]
                vs = [min(r[1].values()) for r in rounds]
                job = [r[2][min(r[1], key=r[1].get)] for r in rounds]
                # CPU time moves less than wall-clock time with the load of a shared machine
                cpu = [r[4][min(r[1], key=r[1].get)] for r in rounds]
                lines.append(f"| {src_fmt} -> {out_fmt} | {min(vs):.2f} / {median(vs):.2f} | "
                             f"{min(job):.2f} / {median(job):.2f} | {min(duck):.2f} / {median(duck):.2f} | "
                             f"{min(duck) / min(vs):.2f}x | {median(duck) / median(vs):.2f}x | "
                             f"{median(cpu):.2f} / {median(r[3] for r in rounds):.2f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
