"""What ``velostream run`` imports: a file job loads neither the Kafka, Avro and Prometheus clients
nor pandas (docs/PERFORMANCE.md, "File to file": importing them was most of the start-up). Each
job runs in a fresh process, as a user runs it, and its output is checked against DuckDB's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from conftest import subprocess_env

UNUSED_BY_FILE_JOBS = ("confluent_kafka", "fastavro", "prometheus_client", "pandas",
                       "shutil")  # argparse's import for the width of a help text nobody asked for
CLIENTS_AND_PANDAS = UNUSED_BY_FILE_JOBS[:4]
# and by a job from CSV to JSON lines on the local disk: the Parquet, dataset and file-system
# (S3, TLS) parts of pyarrow; by any job over local files without hive partitions: the dataset
UNUSED_BY_TEXT_FILE_JOBS = ("pyarrow.parquet", "pyarrow.dataset", "pyarrow.fs")

# the CLI's main in a fresh interpreter, as the console script calls it (main() reads sys.argv,
# and ends the process) or as a program would (main([...])); at exit, the modules of
# UNUSED_BY_FILE_JOBS it loaded
RUN_AND_LIST_MODULES = f"""
import atexit, json, sys
from velostream.cli import main
atexit.register(lambda: print(json.dumps([m for m in {UNUSED_BY_FILE_JOBS + UNUSED_BY_TEXT_FILE_JOBS!r}
                                         if m in sys.modules])))
mode = sys.argv.pop(1)
sys.exit(main() if mode == "whole" else main(sys.argv[1:]))
"""

SQL = ("SELECT symbol, COUNT(*) AS n, SUM(qty) AS total_qty, AVG(price) AS avg_price "
       "FROM trades GROUP BY symbol WINDOW TUMBLING (ts, INTERVAL '1' MINUTE)")
DUCK_SQL = ("SELECT symbol, COUNT(*) AS n, SUM(qty) AS total_qty, AVG(price) AS avg_price "
            "FROM {src} GROUP BY symbol, ts // 60000")


def trades(rows: int = 5_000, seed: int = 17) -> pa.Table:
    """Seeded trades in time order, with NULL prices and quantities and edge values."""
    rng = np.random.default_rng(seed)
    price = rng.uniform(-1e6, 1e6, rows)
    price[rng.random(rows) < 0.05] = 0.0
    qty = rng.integers(-2**40, 2**40, rows)
    qty[:3] = [0, 2**53, -2**53]
    return pa.table({
        "ts": pa.array(1_700_000_000_000 + np.arange(rows, dtype=np.int64) * 137),
        "symbol": pa.array(rng.choice(["A", "BB", "c\u00e9", "D d", "e,\"q\""], rows)),
        "price": pa.array(price, mask=rng.random(rows) < 0.1),
        "qty": pa.array(qty, mask=rng.random(rows) < 0.1),
    })


def write_input(tmp_path: Path, fmt: str) -> Path:
    path = tmp_path / f"trades.{fmt}"
    if fmt == "csv":
        pcsv.write_csv(trades(), path)
    else:
        pq.write_table(trades(), path, row_group_size=1_000)
    return path


def run(tmp_path: Path, sql: str, props: dict, env: dict | None = None,
        whole_process: bool = True) -> list[str]:
    """Runs the job with the CLI's main in a fresh process; the unused modules it loaded."""
    job = tmp_path / "job.sql"
    job.write_text(f"CREATE STREAM out AS {sql}\nWITH ("
                   + ", ".join(f"'{k}' = '{v}'" for k, v in props.items()) + ")\n")
    p = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES,
                        "whole" if whole_process else "call", "run", "-q", "--bounded", str(job)],
                       capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(env),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def read_output(path: Path, fmt: str) -> list[tuple]:
    src = f"read_parquet('{path}')" if fmt == "parquet" else f"read_json('{path}', format='newline_delimited')"
    return duckdb.sql(f"SELECT symbol, n, total_qty, round(avg_price, 6) FROM {src} "
                      f"ORDER BY ALL").fetchall()


@pytest.mark.parametrize("src_fmt, out_fmt", [("csv", "jsonl"), ("csv", "parquet"),
                                              ("parquet", "jsonl"), ("parquet", "parquet")])
def test_a_file_job_imports_no_kafka_avro_prometheus_or_pandas(tmp_path, src_fmt, out_fmt):
    src = write_input(tmp_path, src_fmt)
    out = tmp_path / f"out.{out_fmt}"
    loaded = run(tmp_path, SQL, {"trades.type": "file_source", "trades.path": str(src),
                                 "out.type": "file_sink", "out.path": str(out)})
    assert [m for m in loaded if m in UNUSED_BY_FILE_JOBS] == []
    if (src_fmt, out_fmt) == ("csv", "jsonl"):
        assert loaded == []
    assert "pyarrow.dataset" not in loaded  # local Parquet files are read by pyarrow.parquet
    reader = f"read_parquet('{src}')" if src_fmt == "parquet" else f"read_csv('{src}')"
    want = duckdb.sql(f"SELECT symbol, n, total_qty, round(avg_price, 6) FROM "
                      f"({DUCK_SQL.format(src=reader)}) ORDER BY ALL").fetchall()
    assert read_output(out, out_fmt) == want


def test_main_called_inside_a_program_leaves_pyarrows_pandas_support_alone(tmp_path):
    """``main([...])`` in a program that may use pandas afterwards: pyarrow finds pandas as
    usual (it imports it at its first conversion)."""
    src = write_input(tmp_path, "csv")
    loaded = run(tmp_path, SQL, {"trades.type": "file_source", "trades.path": str(src),
                                 "out.type": "file_sink", "out.path": str(tmp_path / "out.jsonl")},
                 whole_process=False)
    assert [m for m in loaded if m in CLIENTS_AND_PANDAS] == ["pandas"]


def test_a_python_function_returning_pandas_keeps_pandas_semantics(tmp_path):
    """A job with Python functions leaves pyarrow's pandas support alone: a pandas Series the
    function returns is converted as pandas data (NaN is NULL), although pandas is imported only
    inside the function, after the job started."""
    (tmp_path / "halves.py").write_text(
        "import velostream as vs\n"
        "def half_or_nan(x):\n"
        "    import pandas as pd\n"
        "    s = pd.Series(x.to_numpy(zero_copy_only=False).astype('float64') / 2)\n"
        "    return s.where(s < 0)  # NaN where not negative\n"
        "vs.udf('half_or_nan', half_or_nan, returns='DOUBLE')\n")
    src = write_input(tmp_path, "csv")
    out = tmp_path / "out.parquet"
    loaded = run(tmp_path, "SELECT ts, half_or_nan(qty) AS h FROM trades",
                 {"trades.type": "file_source", "trades.path": str(src), "out.type": "file_sink",
                  "out.path": str(out), "udf.modules": "halves"},
                 env={"PYTHONPATH": str(tmp_path)})
    assert "pandas" in loaded
    h = pq.read_table(out).column("h")
    qty = trades().column("qty").to_numpy(zero_copy_only=False)
    assert h.null_count == int(np.sum(~(qty < 0)))  # NULL qty (NaN) and the non-negative ones
    assert not np.isnan(h.drop_null().to_numpy()).any()


def test_python_m_velostream_ends_with_everything_written(tmp_path):
    """``python -m velostream`` leaves the interpreter's teardown to the OS: the rows printed to
    stdout (far more than a buffer holds) and the summary on stderr are all there, and the exit
    code is the job's."""
    src = write_input(tmp_path, "parquet")
    job = tmp_path / "job.sql"
    job.write_text(f"CREATE STREAM out AS SELECT ts, symbol, qty FROM trades\nWITH ("
                   f"'trades.type' = 'file_source', 'trades.path' = '{src}', 'out.format' = 'jsonl')\n")
    p = subprocess.run([sys.executable, "-m", "velostream", "run", "-q", "--bounded", str(job)],
                       capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    want = pq.read_table(src, columns=["ts", "symbol", "qty"]).to_pylist()
    assert sorted(rows, key=lambda r: r["ts"]) == want
    assert f"{len(want):,} rows out" in p.stderr
    bad = tmp_path / "bad.sql"
    bad.write_text(job.read_text().replace("qty FROM", "no_such_column FROM"))
    p = subprocess.run([sys.executable, "-m", "velostream", "run", "-q", "--bounded", str(bad)],
                       capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=120)
    assert p.returncode == 2 and "no_such_column" in p.stderr


@pytest.mark.parametrize("argv0, paused_and_frozen", [("-m", True), ("/venv/bin/velostream", True),
                                                      ("prog.py", False)])
def test_the_collector_is_paused_for_the_import_only_under_python_m(argv0, paused_and_frozen):
    """``python -m velostream`` (``sys.argv[0]`` is "-m" while the package is imported) and the
    ``velostream`` command import with the cyclic collector paused and freeze what the import
    made; a program importing velostream keeps its collector as it was. Either way it runs
    afterwards."""
    code = ("import gc, sys\n"
            f"sys.argv[0] = {argv0!r}\n"
            "seen = []\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and seen.append(info))\n"
            "import velostream\n"
            "print(json.dumps([gc.isenabled(), gc.get_freeze_count() > 0, len(seen)]))\n")
    p = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True,
                       text=True, env=subprocess_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    enabled, frozen, collections = json.loads(p.stdout)
    assert enabled and frozen == paused_and_frozen
    # importing numpy, pyarrow... collects dozens of times; paused, at most the one due when the
    # pause ends (over a young generation emptied by the freeze)
    assert collections <= 1 if paused_and_frozen else collections > 10
