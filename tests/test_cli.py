"""The ``velostream`` command, run as a user runs it: a subprocess, real files, real signals."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

import velostream as vs
from conftest import subprocess_env
from velostream.datagen import SCENARIOS, market_data

S3A = SCENARIOS["S3a"][1]


def velostream(*args, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "velostream", *args], capture_output=True,
                          text=True, cwd=cwd or tempfile.gettempdir(), env=subprocess_env(env),
                          timeout=timeout)


def job_file(tmp_path: Path, sql: str, props: dict, name="job.sql") -> Path:
    with_clause = ", ".join(f"'{k}' = '{v}'" for k, v in props.items())
    p = tmp_path / name
    p.write_text(f"{sql}\nWITH ({with_clause})\n")
    return p


def rows_of_jsonl(path: Path) -> Counter:
    def norm(row):
        return tuple(sorted((k, round(v, 6) if isinstance(v, float) else v) for k, v in row.items()))
    with open(path) as f:
        return Counter(norm(json.loads(line)) for line in f)


def rows_of(result) -> Counter:
    def norm(row):
        return tuple(sorted((k, round(v, 6) if isinstance(v, float) else v) for k, v in row.items()))
    return Counter(norm(r) for r in result.to_pylist())


@pytest.fixture(scope="module")
def trades_csv(tmp_path_factory) -> tuple[Path, pa.Table]:
    table = pa.Table.from_batches(market_data(30_000))
    path = tmp_path_factory.mktemp("data") / "trades.csv"
    pcsv.write_csv(table, path)
    return path, table


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_run_csv_to_jsonl_matches_the_in_memory_query(tmp_path, trades_csv, partitions):
    path, table = trades_csv
    out = tmp_path / "out.jsonl"
    job = job_file(tmp_path, f"CREATE STREAM stats AS\n{S3A}",
                   {"market_data.type": "file_source", "market_data.path": str(path),
                    "stats.type": "file_sink", "stats.path": str(out)})
    r = velostream("run", str(job), "--partitions", str(partitions), "--bounded")
    assert r.returncode == 0, r.stderr
    assert "done: 30,000 records in" in r.stderr
    expected = vs.query(S3A, {"market_data": table})
    assert len(expected) == 501 * 20  # 501 epoch-aligned minutes, 20 (trader, symbol) pairs in each
    assert rows_of_jsonl(out) == rows_of(expected)


def test_plain_select_prints_a_table_to_stdout(tmp_path, trades_csv):
    path, _ = trades_csv
    job = job_file(tmp_path, "SELECT symbol, price FROM market_data WHERE quantity = 100 LIMIT 3",
                   {"market_data.type": "file_source", "market_data.path": str(path)})
    r = velostream("run", str(job), "-q")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["symbol", "price"]
    assert len(lines) == 5 and set(lines[1]) <= set("-+")  # header, rule, 3 rows
    assert all(line.split("|")[0].strip() == "SYM0" for line in lines[2:])


def test_validate_checks_without_side_effects(tmp_path, trades_csv):
    path, _ = trades_csv
    out = tmp_path / "never.jsonl"
    job = job_file(tmp_path, f"CREATE STREAM stats AS\n{S3A}",
                   {"market_data.type": "file_source", "market_data.path": str(path),
                    "stats.type": "file_sink", "stats.path": str(out)})
    r = velostream("validate", str(job))
    assert r.returncode == 0, r.stderr
    assert "ok: market_data (file_source) -> stats (file_sink)" in r.stdout
    assert not out.exists()


def test_explain_shows_plan_strategy_source_and_sink(tmp_path, trades_csv):
    path, _ = trades_csv
    job = job_file(tmp_path, f"CREATE STREAM stats AS\n{S3A}",
                   {"market_data.type": "file_source", "market_data.path": str(path),
                    "stats.type": "file_sink", "stats.path": str(tmp_path / "o.jsonl")})
    r = velostream("explain", str(job))
    assert r.returncode == 0, r.stderr
    assert "Partitioning: hash(trader_id, symbol)" in r.stdout
    # the file's first batch gives the column types
    assert "Output: trader_id STRING, symbol STRING, trade_count INT64, avg_price FLOAT64" in r.stdout
    assert "Source: market_data (file_source)" in r.stdout
    assert "Sink: stats (file_sink)" in r.stdout


def test_bad_sql_exit_2_with_line_and_caret(tmp_path):
    p = tmp_path / "bad.sql"
    p.write_text("SELECT symbol,\n  COUNT(*) AS n\nFRM market_data GROUP BY symbol\n")
    for cmd in ("validate", "run", "explain"):
        r = velostream(cmd, str(p))
        assert r.returncode == 2, (cmd, r.stderr)
        assert "error in SQL" in r.stderr and "line 3, column 1" in r.stderr
        assert "FRM market_data" in r.stderr and "^" in r.stderr


def test_unreadable_file_exit_2_names_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    job = job_file(tmp_path, "SELECT * FROM t", {"t.type": "file_source", "t.path": str(missing)})
    r = velostream("run", str(job))
    assert r.returncode == 2 and str(missing) in r.stderr, r.stderr
    r = velostream("run", str(tmp_path / "no_such_job.sql"))
    assert r.returncode == 2 and "cannot read job file" in r.stderr


def _bad_input(tmp_path: Path) -> Path:
    p = tmp_path / "mixed.jsonl"
    good = [{"symbol": f"S{i % 3}", "qty": i} for i in range(100)]
    lines = [json.dumps(r) for r in good]
    lines.insert(10, '{"symbol": "S1", "qty": ')          # truncated JSON
    lines.insert(50, '{"symbol": "S2", "qty": "many"}')    # wrong type
    p.write_text("\n".join(lines) + "\n")
    return p


def test_bad_records_go_to_the_dead_letter_file_and_good_ones_are_processed(tmp_path):
    src = _bad_input(tmp_path)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    job = job_file(tmp_path, "CREATE STREAM totals AS SELECT symbol, SUM(qty) AS total, "
                             "COUNT(*) AS n FROM t GROUP BY symbol EMIT FINAL",
                   {"t.type": "file_source", "t.path": str(src), "t.schema": "qty BIGINT",
                    "totals.type": "file_sink", "totals.path": str(out),
                    "dead.letter.path": str(dlq)})
    r = velostream("run", str(job))
    assert r.returncode == 0, r.stderr
    assert "100 records in" in r.stderr and "2 failed" in r.stderr
    got = {row["symbol"]: (row["total"], row["n"]) for row in map(json.loads, out.read_text().splitlines())}
    assert got == {f"S{k}": (sum(i for i in range(100) if i % 3 == k), len(range(k, 100, 3)))
                   for k in range(3)}
    dead = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert len(dead) == 2
    assert {d["payload"] for d in dead} == {'{"symbol": "S1", "qty": ', '{"symbol": "S2", "qty": "many"}'}
    assert all(d["source"] == "t" and d["error"] and "mixed.jsonl:" in d["position"] for d in dead)


def test_fail_batch_stops_with_exit_1_on_a_bad_record(tmp_path):
    src = _bad_input(tmp_path)
    job = job_file(tmp_path, "SELECT symbol FROM t",
                   {"t.type": "file_source", "t.path": str(src), "t.schema": "qty BIGINT",
                    "failure.strategy": "FailBatch"})
    r = velostream("run", str(job), "-q")
    assert r.returncode == 1, r.stderr
    assert "job failed" in r.stderr and "mixed.jsonl:11" in r.stderr


def test_demo_runs_the_five_scenarios_through_files(tmp_path):
    r = velostream("demo", "--records", "20000", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for name in SCENARIOS:
        assert f"{name}: " in r.stdout
        assert (tmp_path / f"{name.lower()}.sql").exists()
    assert "M rec/s" in r.stdout
    # the S0 output is every order (all amounts are > 100): 20,000 rows
    assert sum(1 for _ in open(tmp_path / "s0_out.jsonl")) == 20_000


def test_help_and_module_entry_point():
    r = velostream("--help")
    assert r.returncode == 0
    for cmd in ("run", "explain", "validate", "demo", "bench"):
        assert cmd in r.stdout


def test_bench_runs_the_suite_from_a_source_checkout(tmp_path):
    """``velostream bench`` runs the suite of the checkout it is started in (the suite is not in
    the wheel), passing it every option after ``bench``."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "bench").symlink_to(root / "bench")  # a checkout's bench/, without its sources
    out = tmp_path / "results"
    r = velostream("bench", "--quick", "--records", "2000", "--scenarios", "S0",
                   "--systems", "velostream-v1,duckdb", "--output-dir", str(out),
                   cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    [result] = out.glob("*-quick.json")
    assert "velostream-v1" in result.read_text()
