"""The start of ``velostream run`` for file to file jobs (docs/PERFORMANCE.md, "File to file
start-up"): ``pyarrow.compute`` is imported only when a job calls one of its functions (25 ms of
CPU otherwise), and the command keeps numpy's OpenBLAS from starting threads it never uses. Each
check runs a fresh interpreter, as a user does, and each job's output is checked against DuckDB's.
"""
from __future__ import annotations

import decimal
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

SQL = ("SELECT trader, symbol, COUNT(*) AS n, SUM(qty) AS total_qty, AVG(price) AS avg_price, "
       "MIN(price) AS low FROM trades GROUP BY trader, symbol WINDOW TUMBLING (ts, INTERVAL '1' MINUTE)")
DUCK_SQL = ("SELECT trader, symbol, COUNT(*) AS n, SUM(qty) AS total_qty, AVG(price) AS avg_price, "
            "MIN(price) AS low FROM {src} GROUP BY trader, symbol, ts // 60000")

# at exit of the job's process: whether pyarrow.compute was imported, and pyarrow.parquet (with
# pyarrow.fs, its S3 and TLS support)
LIST_MODULES = ("import atexit, json, sys\n"
                "atexit.register(lambda: print(json.dumps(['pyarrow.compute' in sys.modules,\n"
                "    'pyarrow.parquet' in sys.modules or 'pyarrow.fs' in sys.modules])))\n"
                "sys.argv[0] = '-m'\n"  # as under python -m velostream, while the package loads
                "import velostream\n"
                "from velostream.cli import main\n"
                "sys.exit(main())\n")


def trades(rows: int, seed: int, symbols: list[str], nulls: bool) -> pa.Table:
    """Seeded trades in time order: edge prices (some NULL if ``nulls``), quantities at the
    int64 edges."""
    rng = np.random.default_rng(seed)
    price = rng.uniform(-1e6, 1e6, rows)
    price[rng.random(rows) < 0.05] = 0.0
    price[:4] = [1e300, -1e300, 5e-324, 100.0]
    qty = rng.integers(-2**40, 2**40, rows)
    qty[:3] = [0, 2**53, -2**53]
    return pa.table({
        "ts": pa.array(1_700_000_000_000 + np.arange(rows, dtype=np.int64) * 997),
        "trader": pa.array(rng.choice(["T1", "T2", "T\u00e9"], rows)),
        "symbol": pa.array(rng.choice(symbols, rows)),
        "price": pa.array(price, mask=(rng.random(rows) < 0.1) if nulls else None),
        "qty": pa.array(qty),
    })


def run_job(tmp_path: Path, table: pa.Table, out_fmt: str, partitions: int,
            src_fmt: str = "parquet", sql: str = SQL) -> tuple[list, Path, str]:
    """Runs the job through the CLI in a fresh process, over ``table`` as Parquet in row groups
    (or as CSV); whether that process imported pyarrow.compute and pyarrow.parquet, the output's
    path, and stderr."""
    src = tmp_path / f"trades.{src_fmt}"
    if src_fmt == "parquet":
        pq.write_table(table, src, row_group_size=700)
    else:
        pcsv.write_csv(table, src)
    out = tmp_path / f"out_{partitions}.{out_fmt}"
    job = tmp_path / "job.sql"
    job.write_text(f"CREATE STREAM out AS {sql}\nWITH ('trades.type' = 'file_source', "
                   f"'trades.path' = '{src}', 'out.type' = 'file_sink', 'out.path' = '{out}', "
                   f"'dead.letter.path' = '{tmp_path / 'dead.jsonl'}')\n")
    p = subprocess.run([sys.executable, "-c", LIST_MODULES, "run", "-q", "--bounded",
                        "--partitions", str(partitions), str(job)],
                       capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), out, p.stderr


def assert_same_as_duckdb(trades_table: pa.Table, out: Path, out_fmt: str) -> None:
    src = f"read_parquet('{out}')" if out_fmt == "parquet" else f"read_json('{out}', format='newline_delimited')"
    cols = "trader, symbol, n, total_qty, round(avg_price, 6), low"
    got = duckdb.sql(f"SELECT {cols} FROM {src} ORDER BY ALL").fetchall()
    want = duckdb.sql(f"SELECT {cols} FROM ({DUCK_SQL.format(src='trades_table')}) ORDER BY ALL").fetchall()
    assert got == want and len(got) > 10


def test_importing_velostream_does_not_import_pyarrow_compute():
    p = subprocess.run([sys.executable, "-c", "import sys, velostream\n"
                        "print('pyarrow.compute' in sys.modules)"],
                       capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False"]


@pytest.mark.parametrize("out_fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_a_parquet_job_runs_without_pyarrow_compute(tmp_path, out_fmt, partitions):
    """Parquet without NULLs in, an aggregate out as Parquet or JSON lines (text needing no
    escapes, like S3a's): at one partition the job calls no function of pyarrow.compute, so it
    is not imported. (With several, putting the partitions' rows of a window end in order takes
    rows with Arrow's ``take``, which may import it.) The local files are read and written
    without pyarrow.parquet and pyarrow.fs."""
    table = trades(5_000, seed=3, symbols=["A", "BB", "c\u00e9", "D d"], nulls=False)
    (compute, parquet), out, _ = run_job(tmp_path, table, out_fmt, partitions)
    assert not compute or partitions > 1
    assert not parquet
    assert_same_as_duckdb(table, out, out_fmt)


@pytest.mark.parametrize("out_fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("partitions", [1, 2])
def test_a_csv_job_runs_without_pyarrow_compute(tmp_path, out_fmt, partitions):
    """CSV without NULLs in, as S3a's: the check of the first chunk's DOUBLE columns for integer
    literals past int64 is made with numpy, and at one partition nothing else needs
    pyarrow.compute."""
    table = trades(5_000, seed=5, symbols=["A", "BB", "c\u00e9", "D d"], nulls=False)
    (compute, _), out, _ = run_job(tmp_path, table, out_fmt, partitions, src_fmt="csv")
    assert not compute or partitions > 1
    assert_same_as_duckdb(table, out, out_fmt)


@pytest.mark.parametrize("partitions", [1, 2])
def test_csv_integers_past_int64_beside_nulls_make_a_bigint_column(tmp_path, partitions):
    """A CSV column of integer literals with empty (NULL) values and two literals past int64,
    which make Arrow infer DOUBLE: the column is BIGINT, the two records are bad records, and the
    NULLs are NULLs (the numpy check reads them from the validity bitmap)."""
    rng = np.random.default_rng(6)
    n = 3_000
    qty = rng.integers(-2**40, 2**40, n).astype(object)
    qty[rng.random(n) < 0.2] = None
    past = [17, 2_001]
    lines = ["ts,trader,symbol,price,qty"]
    for i in range(n):
        v = ("99999999999999999999" if i == past[0] else "-9223372036854775809" if i == past[1]
             else "" if qty[i] is None else str(qty[i]))
        lines.append(f"{1_700_000_000_000 + i * 997},T{i % 3},S{i % 4},{i % 13}.5,{v}")
    (tmp_path / "trades.csv").write_text("\n".join(lines) + "\n")
    sql = "SELECT trader, COUNT(*) AS n, COUNT(qty) AS known, SUM(qty) AS total FROM trades GROUP BY trader"
    job = tmp_path / "job.sql"
    out = tmp_path / "out.jsonl"
    job.write_text(f"CREATE STREAM out AS {sql}\nWITH ('trades.type' = 'file_source', "
                   f"'trades.path' = 'trades.csv', 'out.type' = 'file_sink', 'out.path' = '{out}', "
                   f"'dead.letter.path' = 'dead.jsonl')\n")
    p = subprocess.run([sys.executable, "-m", "velostream", "run", "-q", "--bounded",
                        "--partitions", str(partitions), str(job)],
                       capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    assert "2 failed" in p.stderr
    want: dict = {}
    for i in range(n):
        if i in past:
            continue
        w = want.setdefault(f"T{i % 3}", {"n": 0, "known": 0, "total": 0})
        w["n"] += 1
        if qty[i] is not None:
            w["known"] += 1
            w["total"] += int(qty[i])
    # a running aggregate: each key's last row is its final value
    got = {row["trader"]: {k: row[k] for k in ("n", "known", "total")}
           for row in map(json.loads, out.read_text().splitlines())}
    assert got == want
    assert all(type(row["total"]) is int for row in got.values())
    assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("symbols, nulls", [
    (["A", "BB", "c\u00e9", "D d"], True),  # NULL prices: the input's validity, through Arrow
    (['e,"q"', "back\\slash", "tab\there", "plain"], False),  # the writer escapes text
])
@pytest.mark.parametrize("out_fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("partitions", [1, 2])
def test_pyarrow_compute_is_imported_when_first_needed(tmp_path, symbols, nulls, out_fmt, partitions):
    """Where a job needs pyarrow.compute's functions (NULLs in the input, on the engine's
    threads; text with quotes, backslashes and a control character, which the JSON lines writer
    escapes on its own thread), the first use imports it and the output is right."""
    table = trades(5_000, seed=4, symbols=symbols, nulls=nulls)
    (compute, _), out, _ = run_job(tmp_path, table, out_fmt, partitions)
    if not nulls and out_fmt == "jsonl":
        assert compute  # the escaping (pc.replace_substring) ran: the lazy import was exercised
    assert_same_as_duckdb(table, out, out_fmt)


def test_lazy_module_behaves_as_the_module():
    from velostream._lazy import LazyModule
    import pyarrow.compute as pc
    lazy = LazyModule("pyarrow.compute")
    assert lazy.add is pc.add and lazy.CastOptions is pc.CastOptions
    assert "add" in vars(lazy)  # copied: later look-ups are plain attribute reads
    with pytest.raises(AttributeError):
        lazy.no_such_function
    assert lazy.sum(pa.array([1, None, 2])).as_py() == pc.sum(pa.array([1, None, 2])).as_py() == 3


OPENBLAS = ("import os, sys, json\n"
            "sys.argv[0] = {argv0!r}\n"
            "import velostream, numpy\n"
            "task = '/proc/self/task'\n"
            "comm = lambda t: open(f'{{task}}/{{t}}/comm').read()\n"
            "main = comm(os.getpid()) if os.path.isdir(task) else None\n"
            "# OpenBLAS's threads carry the main thread's name (others, like jemalloc's, their own)\n"
            "same = sum(comm(t) == main for t in os.listdir(task)) if main else None\n"
            "print(json.dumps([same, os.environ.get('OPENBLAS_NUM_THREADS')]))\n")


@pytest.mark.parametrize("argv0, user_value", [("-m", None), ("/venv/bin/velostream", None),
                                               ("-m", "2"), ("prog.py", None)])
def test_the_command_starts_no_blas_threads_and_leaves_the_environment_as_it_was(argv0, user_value):
    """Under ``python -m velostream`` and the ``velostream`` command, numpy's OpenBLAS is loaded
    with one thread (the main one); the variable that says so is gone again after the import, and
    a value the user set is kept. A program importing velostream is left alone."""
    env = subprocess_env()
    env.pop("OPENBLAS_NUM_THREADS", None)
    if user_value is not None:
        env["OPENBLAS_NUM_THREADS"] = user_value
    p = subprocess.run([sys.executable, "-c", OPENBLAS.format(argv0=argv0)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    threads, value = json.loads(p.stdout)
    assert value == user_value
    if argv0 != "prog.py" and user_value is None:
        assert threads in (1, None)  # None: no /proc to count threads in (not Linux)


def typed_table(rows: int, seed: int, nested: bool) -> pa.Table:
    """Seeded columns of many Arrow types, with NULLs, NaN and the edges of their ranges."""
    rng = np.random.default_rng(seed)
    cols = {
        "i8": pa.array(rng.integers(-128, 128, rows), pa.int8()),
        "u64": pa.array(rng.integers(0, 2**63, rows, dtype=np.uint64) * 2, pa.uint64()),
        "i": pa.array(np.r_[[-2**63, 2**63 - 1], rng.integers(-2**62, 2**62, rows - 2)],
                      mask=rng.random(rows) < 0.1),
        "f": pa.array(np.where(rng.random(rows) < 0.05, np.nan, rng.normal(size=rows) * 1e300)),
        "s": pa.array(rng.choice(["a", "bb", "\u00e9", "", 'q"'], rows), mask=rng.random(rows) < 0.1),
        "b": pa.array(rng.random(rows) < 0.5, mask=rng.random(rows) < 0.1),
        "ts": pa.array(rng.integers(0, 2**40, rows), pa.timestamp("us", tz="UTC")),
        "d": pa.array(rng.integers(0, 20_000, rows).astype("int32"), pa.date32()),
        "dec": pa.array([decimal.Decimal(int(x)).scaleb(-2) for x in rng.integers(-10**17, 10**17, rows)],
                        pa.decimal128(18, 2)),
        "dict": pa.array(rng.choice(["x", "y"], rows)).dictionary_encode(),
    }
    if hasattr(pa, "uuid"):  # an extension type: read back as one, as ParquetFile does
        cols["id"] = pa.ExtensionArray.from_storage(
            pa.uuid(), pa.array([rng.bytes(16) for _ in range(rows)], pa.binary(16)))
    if nested:
        cols["lst"] = pa.array([[int(x)] * (int(x) % 3) for x in rng.integers(0, 10, rows)],
                               pa.list_(pa.int64()))
        cols["st"] = pa.array([{"a": int(x), "b": str(x)} for x in rng.integers(0, 10, rows)])
    return pa.table(cols)


@pytest.mark.parametrize("use_dictionary, compression", [(True, "snappy"), (["i", "s"], None),
                                                         (False, "zstd")])
def test_the_local_parquet_writer_writes_the_bytes_pyarrow_parquet_writes(tmp_path, use_dictionary,
                                                                         compression):
    """The compiled writer with ParquetWriter's arguments (parquet_local) writes byte for byte
    the file pyarrow.parquet.ParquetWriter writes: a pyarrow changing its defaults fails here."""
    from velostream.io.parquet_local import open_writer
    table = typed_table(1_000, seed=7, nested=True)
    ours, theirs = tmp_path / "ours.parquet", tmp_path / "theirs.parquet"
    writer = open_writer(str(ours), table.schema, use_dictionary=use_dictionary, compression=compression)
    assert writer is not None  # this pyarrow's compiled writer takes ParquetWriter's arguments
    reference = pq.ParquetWriter(theirs, table.schema, use_dictionary=use_dictionary,
                                 compression=compression)
    for w in (writer, reference):
        w.write_table(table.slice(0, 600))  # two row groups, as the sink writes them
        w.write_table(table.slice(600))
        w.close()
    assert ours.read_bytes() == theirs.read_bytes()
    assert pq.read_metadata(ours).num_rows == table.num_rows


def test_the_local_parquet_reader_reads_what_parquetfile_reads(tmp_path):
    """Schema (extension types included), metadata and the batches of some columns in another
    order and some row groups, as pyarrow.parquet.ParquetFile gives them; a file with nested
    columns is left to ParquetFile (None)."""
    from velostream.io.parquet_local import open_file
    flat, nested = tmp_path / "flat.parquet", tmp_path / "nested.parquet"
    pq.write_table(typed_table(2_000, seed=8, nested=False), flat, row_group_size=300)
    pq.write_table(typed_table(100, seed=9, nested=True), nested)
    ours, theirs = open_file(str(flat)), pq.ParquetFile(flat)
    assert ours is not None
    assert ours.schema_arrow.equals(theirs.schema_arrow, check_metadata=True)
    assert ours.num_row_groups == theirs.num_row_groups == 7
    assert ours.metadata.equals(theirs.metadata)
    columns = ["s", "dec", "i", "f"] + (["id"] if hasattr(pa, "uuid") else [])
    got = list(ours.iter_batches(128, row_groups=[1, 6], columns=columns))
    want = list(theirs.iter_batches(128, row_groups=[1, 6], columns=columns))
    assert len(got) == len(want) and sum(b.num_rows for b in got) == 300 + 200
    # as IPC bytes: a NaN equals itself there (not in RecordBatch.equals)
    assert all(g.schema.equals(w.schema) and g.serialize().equals(w.serialize())
               for g, w in zip(got, want))
    assert open_file(str(nested)) is None
    with pytest.raises((pa.ArrowInvalid, OSError)):  # not Parquet: what ParquetFile raises
        (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
        open_file(str(tmp_path / "bad.parquet"))
