"""Parquet and Arrow IPC sources and sinks, end to end: ``velostream run`` (a subprocess, real
files) and the job API, against DuckDB reading the same files."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import velostream as vs
from conftest import subprocess_env
from velostream.io import open_sink, open_source
from velostream.io.base import Properties
from velostream.io.columnar_sink import ColumnarFileSink
from velostream.io.datasets import DatasetSource
from velostream.jobs.spec import JobSpec

SQL = ("SELECT sym, COUNT(*) AS n, SUM(qty) AS total_qty, AVG(price) AS avg_price, "
       "MAX(price) AS max_price, _WINDOW_START AS ws FROM t GROUP BY sym "
       "WINDOW TUMBLING (ts, INTERVAL '1' MINUTE)")
# the same aggregate as DuckDB writes it (a tumbling window's start: ts floored to the minute)
DUCK = ("SELECT sym, COUNT(*) AS n, SUM(qty) AS total_qty, AVG(price) AS avg_price, "
        "MAX(price) AS max_price, (ts // 60000) * 60000 AS ws FROM {src} GROUP BY sym, ws")


def make_table(n: int, seed: int, t0: int = 1_700_000_000_000) -> pa.Table:
    """Seeded rows with NULLs in every column but the event time, which never decreases (no
    record is late) and spans several one-minute windows; text with non-ASCII and empty values."""
    rng = np.random.default_rng(seed)
    syms = np.array(["A", "B", "é", "", "a long symbol name"], dtype=object)
    sym = syms[rng.integers(0, len(syms), n)]
    sym[rng.random(n) < 0.1] = None
    qty = rng.integers(-1_000_000, 1_000_000, n)
    qty[:3] = [0, 2**40, -(2**40)]
    price = rng.normal(100, 50, n)
    return pa.table({
        "sym": pa.array(sym, pa.string()),
        "qty": pa.array(qty, pa.int64(), mask=rng.random(n) < 0.1),
        "price": pa.array(price, pa.float64(), mask=rng.random(n) < 0.1),
        "ts": pa.array(t0 + np.sort(rng.integers(0, 5 * 60_000, n)), pa.int64()),
        "note": pa.array(rng.integers(0, 9, n).astype(str), pa.string()),  # never read by SQL
    })


def write_files(d: Path, fmt: str, tables: list[pa.Table], names: list[str]) -> list[Path]:
    paths = []
    for t, name in zip(tables, names):
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            pq.write_table(t, p, row_group_size=max(1, t.num_rows // 3))
        else:
            feather.write_feather(t, p, chunksize=max(1, t.num_rows // 3), compression="uncompressed")
        paths.append(p)
    return paths


def split_in_time(t: pa.Table, parts: int) -> list[pa.Table]:
    step = math.ceil(t.num_rows / parts)
    return [t.slice(i, step) for i in range(0, t.num_rows, step)]


def velostream(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "velostream", *args], capture_output=True,
                          text=True, cwd=cwd, env=subprocess_env(), timeout=120)


def job_file(d: Path, sql: str, props: dict) -> Path:
    sink = "out" if any(k.startswith("out.") for k in props) else None
    text = (f"CREATE STREAM {sink} AS " if sink else "") + sql + " WITH (" + ", ".join(
        f"'{k}' = '{v}'" for k, v in props.items()) + ")"
    p = d / "job.sql"
    p.write_text(text)
    return p


def run_job(d: Path, sql: str, props: dict, partitions: int = 1, expect: int = 0):
    p = velostream("run", "-q", "--bounded", "--partitions", str(partitions), str(job_file(d, sql, props)),
                   cwd=d)
    assert p.returncode == expect, p.stderr
    return p


def rows_of(table_or_rows) -> list[tuple]:
    rows = table_or_rows.to_pylist() if hasattr(table_or_rows, "to_pylist") else table_or_rows
    return sorted((tuple(r.values()) for r in rows),
                  key=lambda r: tuple((v is None, v if not isinstance(v, float) else round(v, 6))
                                      for v in r))


def assert_same(got: list[tuple], want: list[tuple]) -> None:
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want):
        assert len(g) == len(w)
        for a, b in zip(g, w):
            if isinstance(a, float) or isinstance(b, float):
                assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (g, w)
            else:
                assert a == b, (g, w)


def duck(src: str, **tables) -> list[tuple]:
    """DuckDB's result of the aggregate over ``src`` (a table function, or the name of one of
    ``tables``: Arrow tables registered under those names)."""
    con = duckdb.connect()
    for name, t in tables.items():
        con.register(name, t)
    return rows_of(con.sql(DUCK.format(src=src)).to_arrow_table())


def jsonl_rows(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return make_table(20_000, seed=17)


# ------------------------------------------------------------------------------ sources
@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("fmt,ext", [("parquet", "parquet"), ("arrow", "arrow"), ("arrow", "feather")])
def test_file_to_jsonl_matches_duckdb(tmp_path, data, fmt, ext, partitions):
    write_files(tmp_path, fmt, [data], [f"t.{ext}"])
    run_job(tmp_path, SQL, {"t.type": "file_source", "t.path": f"t.{ext}",
                            "out.type": "file_sink", "out.path": "out.jsonl"}, partitions)
    # DuckDB reads Parquet itself; an Arrow IPC file it takes from pyarrow's reader
    want = (duck(f"read_parquet('{tmp_path}/t.{ext}')") if fmt == "parquet"
            else duck("arrow_file", arrow_file=feather.read_table(tmp_path / f"t.{ext}")))
    assert_same(rows_of(jsonl_rows(tmp_path / "out.jsonl")), want)


@pytest.mark.parametrize("partitions", [1, 2])
def test_hive_directory_glob_and_format_property(tmp_path, data, partitions):
    parts = split_in_time(data, 3)
    names = [f"hive/day=2024-01-0{i + 1}/part-0.parquet" for i in range(3)]
    write_files(tmp_path, "parquet", parts, names)
    (tmp_path / "hive" / "_SUCCESS").write_text("")  # not data: left out as Spark and DuckDB do
    sql = SQL.replace("SELECT sym,", "SELECT sym, day,").replace("GROUP BY sym", "GROUP BY sym, day")
    want = rows_of(duckdb.sql(
        DUCK.replace("SELECT sym,", "SELECT sym, day,").replace("GROUP BY sym", "GROUP BY sym, day").format(
            src=f"read_parquet('{tmp_path}/hive/*/*.parquet', hive_partitioning = true, "
                f"hive_types_autocast = false)")).to_arrow_table())
    for path, extra in (("hive", {"t.format": "parquet"}), ("hive", {}),
                        ("hive/day=*/*.parquet", {})):
        run_job(tmp_path, sql, {"t.type": "file_source", "t.path": path, **extra,
                                "out.type": "file_sink", "out.path": "out.jsonl"}, partitions)
        got = jsonl_rows(tmp_path / "out.jsonl")
        assert_same(rows_of([{k: r[k] for k in ("sym", "day", "n", "total_qty", "avg_price",
                                                 "max_price", "ws")} for r in got]), want)


def test_csv_directory_through_the_same_path_rules(tmp_path, data):
    """A directory of CSV files ('format' = 'csv') is read like a glob of them."""
    import pyarrow.csv as pcsv
    (tmp_path / "csvs").mkdir()
    for i, part in enumerate(split_in_time(data, 2)):
        pcsv.write_csv(part, tmp_path / "csvs" / f"p{i}.csv")
    run_job(tmp_path, SQL, {"t.type": "file_source", "t.path": "csvs", "t.format": "csv",
                            "t.schema": "sym VARCHAR, qty BIGINT, price DOUBLE, ts BIGINT, note VARCHAR",
                            "out.type": "file_sink", "out.path": "out.jsonl"})
    # against the data written (DuckDB's CSV reader takes a quoted "" for NULL, velostream for
    # the empty text it is, docs/CONNECTORS.md)
    assert_same(rows_of(jsonl_rows(tmp_path / "out.jsonl")), duck("data_t", data_t=data))


@pytest.mark.parametrize("partitions", [1, 2])
def test_job_api_reads_only_the_columns_used(tmp_path, data, partitions):
    write_files(tmp_path, "parquet", split_in_time(data, 2), ["d/a.parquet", "d/b.parquet"])
    spec = JobSpec.from_sql(SQL + f" WITH ('t.type' = 'file_source', 't.path' = '{tmp_path}/d')")
    src = open_source(spec)
    assert src.columns == ["sym", "qty", "price", "ts"]  # 'note' is not decoded
    first = src.read()
    assert first.schema.names == ["sym", "qty", "price", "ts"]
    src.close()
    everything = open_source(JobSpec.from_sql(
        f"SELECT * FROM t WITH ('t.type' = 'file_source', 't.path' = '{tmp_path}/d')"))
    assert everything.columns == ["sym", "qty", "price", "ts", "note"]
    everything.close()
    src = open_source(spec)
    job = vs.Job(SQL, {"t": src}, partitions=partitions)
    job.run()
    src.close()
    assert_same(rows_of(job.result().to_arrow()), duck(f"read_parquet('{tmp_path}/d/*.parquet')"))


def test_event_time_field_and_bad_times_are_rejects(tmp_path, data):
    n = data.num_rows
    ms = 1_704_067_200_000 + np.arange(n, dtype=np.int64) * 250
    text = np.char.add(np.datetime_as_string(ms.astype("datetime64[ms]")), "Z").astype(object)
    bad = [i for i in range(n) if i % 1009 == 7]
    text[bad] = "not a time"
    t = data.select(["sym", "qty"]).append_column("at", pa.array(text, pa.string()))
    write_files(tmp_path, "parquet", [t], ["e.parquet"])
    sql = "SELECT sym, COUNT(*) AS n, SUM(qty) AS q, _WINDOW_START AS ws FROM t GROUP BY sym WINDOW TUMBLING(1m)"
    src = DatasetSource("t", Properties("t", {"path": str(tmp_path / "e.parquet"), "event.time.field": "at"}))
    job = vs.Job(sql, {"t": src}, failure_strategy="LogAndContinue")
    job.run()
    src.close()
    assert job.stats.records_rejected == len(bad)
    positions = sorted(p for _, rb in job.dead_letters for p in rb.column("position").to_pylist())
    assert positions == sorted(f"{tmp_path / 'e.parquet'}@{i}" for i in bad)
    keep = np.ones(n, dtype=bool)
    keep[bad] = False
    good = pa.table({"sym": data.column("sym"), "qty": data.column("qty"), "ms": ms}).filter(pa.array(keep))
    con = duckdb.connect()
    con.register("good", good)
    want = con.sql("SELECT sym, COUNT(*) AS n, SUM(qty) AS q, (ms // 60000) * 60000 AS ws "
                   "FROM good GROUP BY sym, ws").to_arrow_table()
    assert_same(rows_of(job.result().to_arrow()), rows_of(want))


def _corrupt_dir(d: Path, data: pa.Table) -> Path:
    good = split_in_time(data, 2)
    write_files(d, "parquet", good, ["in/b-good.parquet", "in/d-good.parquet"])
    (d / "in" / "a-garbage.parquet").write_bytes(b"this is not a parquet file at all\n" * 10)
    whole = (d / "in" / "b-good.parquet").read_bytes()
    (d / "in" / "c-truncated.parquet").write_bytes(whole[: len(whole) // 2])
    return d / "in"


@pytest.mark.parametrize("partitions", [1, 2])
def test_corrupt_files_log_and_continue(tmp_path, data, partitions):
    _corrupt_dir(tmp_path, data)
    run_job(tmp_path, SQL, {"t.type": "file_source", "t.path": "in",
                            "out.type": "file_sink", "out.path": "out.jsonl",
                            "failure.strategy": "LogAndContinue", "dead.letter.path": "dead.jsonl"},
            partitions)
    want = duck(f"read_parquet(['{tmp_path}/in/b-good.parquet', '{tmp_path}/in/d-good.parquet'])")
    assert_same(rows_of(jsonl_rows(tmp_path / "out.jsonl")), want)
    dead = jsonl_rows(tmp_path / "dead.jsonl")
    assert sorted(os.path.basename(r["position"]) for r in dead) == ["a-garbage.parquet",
                                                                    "c-truncated.parquet"]
    assert all(r["source"] == "t" and "Parquet" in r["error"] for r in dead)
    # the job API counts them
    src = open_source(JobSpec.from_sql(SQL + f" WITH ('t.type' = 'file_source', 't.path' = '{tmp_path}/in')"))
    job = vs.Job(SQL, {"t": src}, partitions=partitions)
    job.run()
    src.close()
    assert job.stats.records_rejected == 2


def test_corrupt_file_fail_batch_fails_the_job(tmp_path, data):
    _corrupt_dir(tmp_path, data)
    p = run_job(tmp_path, SQL, {"t.type": "file_source", "t.path": "in", "failure.strategy": "FailBatch"},
                expect=1)
    assert "a-garbage.parquet" in p.stderr and "Traceback" not in p.stderr
    src = open_source(JobSpec.from_sql(SQL + f" WITH ('t.type' = 'file_source', 't.path' = '{tmp_path}/in')"))
    job = vs.Job(SQL, {"t": src}, failure_strategy="FailBatch")
    with pytest.raises(vs.JobError, match="a-garbage.parquet"):
        job.run()
    src.close()


@pytest.mark.parametrize("partitions", [1, 2])
def test_corrupt_row_group_is_one_reject_the_others_are_read(tmp_path, data, partitions):
    pq.write_table(data, tmp_path / "t.parquet", row_group_size=data.num_rows // 4)
    md = pq.ParquetFile(tmp_path / "t.parquet").metadata
    assert md.num_row_groups == 4
    raw = bytearray((tmp_path / "t.parquet").read_bytes())
    at = md.row_group(2).column(0).data_page_offset  # garbage over row group 2's first page header
    raw[at:at + 16] = b"\xff" * 16
    (tmp_path / "t.parquet").write_bytes(bytes(raw))
    lost = range(2 * md.row_group(0).num_rows, 3 * md.row_group(0).num_rows)
    keep = np.ones(data.num_rows, dtype=bool)
    keep[lost.start:lost.stop] = False
    want = duck("kept", kept=data.filter(pa.array(keep)))
    src = DatasetSource("t", Properties("t", {"path": str(tmp_path / "t.parquet")}))
    job = vs.Job(SQL, {"t": src}, partitions=partitions, failure_strategy="LogAndContinue")
    job.run()
    src.close()
    assert job.stats.records_rejected == 1
    [(_, dead)] = job.dead_letters
    assert dead.column("position").to_pylist() == [f"{tmp_path / 't.parquet'}#row-group-2"]
    assert_same(rows_of(job.result().to_arrow()), want)
    assert src.position == (0, data.num_rows)  # the lost rows are behind the position too


@pytest.mark.parametrize("partitioning", ["hive", "none"])
def test_files_of_other_columns_and_types_read_in_the_first_files_schema(tmp_path, data, partitioning):
    """Local Parquet files read batch by batch (pyarrow.parquet): a later file whose columns come
    in another order, with one more, one missing (NULL) or a narrower type, is read in the
    first readable file's schema, as Arrow's dataset reads it; with row groups and a seek."""
    a, b, c = split_in_time(data, 3)
    d = tmp_path / "d=1"  # a key=value name above the files is no partition of theirs
    d.mkdir()
    pq.write_table(a, d / "a.parquet", row_group_size=1_500)
    b2 = b.select(["ts", "price", "sym", "note", "qty"]).append_column("extra", pa.array(range(b.num_rows)))
    b2 = b2.set_column(4, "qty", b2.column("qty").cast(pa.int32(), safe=False))
    pq.write_table(b2, d / "b.parquet", row_group_size=1_000)
    pq.write_table(c.drop_columns(["note"]), d / "c.parquet", row_group_size=2_000)
    (d / "x.parquet").write_text("not parquet")
    want = pa.concat_tables([a, b.set_column(1, "qty", b.column("qty").cast(pa.int32(), safe=False)
                                             .cast(pa.int64())),
                             c.set_column(4, "note", pa.nulls(c.num_rows, pa.string()))])
    props = {"path": str(d), "batch.size": "700", "partitioning": partitioning}

    def read_all(src):
        out = []
        while src.has_more():
            rb = src.read()
            if rb is not None:
                out.append(rb)
        src.close()
        return out

    src = DatasetSource("t", Properties("t", props))
    got = read_all(src)
    assert all(rb.num_rows <= 700 and rb.schema.equals(data.schema) for rb in got)
    assert pa.Table.from_batches(got).to_pylist() == want.to_pylist()
    assert [r.position.rsplit(os.sep, 1)[-1] for r in src.rejects()] == ["x.parquet"]
    src = DatasetSource("t", Properties("t", props), columns={"qty", "ts"})
    src.seek((1, 2_345))  # into b.parquet's third row group
    got = pa.Table.from_batches(read_all(src))
    assert got.schema.names == ["qty", "ts"]
    assert got.to_pylist() == want.select(["qty", "ts"]).slice(a.num_rows + 2_345).to_pylist()


def test_seek_resumes_at_a_file_and_row(tmp_path, data):
    write_files(tmp_path, "parquet", split_in_time(data, 2), ["d/a.parquet", "d/b.parquet"])
    src = DatasetSource("t", Properties("t", {"path": str(tmp_path / "d"), "batch.size": "1000"}))
    src.prefetch()  # reading ahead before the first read (velostream run) changes nothing
    first = pa.Table.from_batches([src.read() for _ in range(5)])
    src.commit()
    assert src.committed == (0, first.num_rows) and first.num_rows >= 4000
    rest = []
    src.seek((0, 7777))
    src.prefetch()
    while src.has_more():
        rb = src.read()
        if rb is not None:
            rest.append(rb)
    src.close()
    assert first.to_pylist() == data.slice(0, first.num_rows).to_pylist()
    assert pa.Table.from_batches(rest).to_pylist() == data.slice(7777).to_pylist()


# ------------------------------------------------------------------------------ sinks
@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("out", ["out.parquet", "out.arrow", "outdir/"])
def test_sink_keeps_types(tmp_path, data, out, partitions):
    write_files(tmp_path, "parquet", [data], ["t.parquet"])
    props = {"t.type": "file_source", "t.path": "t.parquet", "out.type": "file_sink", "out.path": out}
    if out.endswith("/"):
        props["out.format"] = "parquet"
    run_job(tmp_path, SQL, props, partitions)
    if out.endswith(".arrow"):
        with ipc.open_file(tmp_path / out) as f:
            got = f.read_all()
    else:
        got = pq.read_table(tmp_path / out)
    assert got.schema.types == [pa.string(), pa.int64(), pa.int64(), pa.float64(), pa.float64(), pa.int64()]
    assert_same(rows_of(got), duck(f"read_parquet('{tmp_path}/t.parquet')"))
    assert not [f for f in os.listdir(tmp_path / out.rstrip("/") if out.endswith("/") else tmp_path)
                if f.endswith(".tmp")]


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_no_torn_files(tmp_path, data, fmt):
    """A reader sees a file only once it is complete: a directory's part appears at commit,
    written under a hidden name and renamed; one file appears at close; rolled back rows never."""
    ext = ".parquet" if fmt == "parquet" else ".arrow"
    d = tmp_path / "parts"
    sink = ColumnarFileSink("o", Properties("o", {"path": str(d) + "/"}), fmt)
    read = (lambda p: pq.read_table(p)) if fmt == "parquet" else (lambda p: feather.read_table(p))
    visible = lambda: sorted(f for f in os.listdir(d) if not f.startswith("."))  # noqa: E731
    batches = data.to_batches(max_chunksize=4000)
    for i, rb in enumerate(batches):
        sink.write_batch(rb)
        sink.flush()
        assert len(visible()) == i  # flushed, not committed: no new file
        sink.commit()
        assert visible()[-1] == f"part-{i:05d}{ext}"
        assert read(d / visible()[-1]).to_pylist() == rb.to_pylist()  # whole, readable
    sink.write_batch(batches[0])
    sink.flush()
    sink.rollback()
    sink.close()
    assert len(visible()) == len(batches) and not [f for f in os.listdir(d) if f.startswith(".")]
    assert pa.concat_tables([read(d / f) for f in visible()]).to_pylist() == data.to_pylist()

    one = tmp_path / f"one{ext}"
    sink = ColumnarFileSink("o", Properties("o", {"path": str(one)}), fmt)
    for rb in batches:
        sink.write_batch(rb)
        sink.flush()
        sink.commit()
        assert not one.exists()  # only the hidden temporary file so far
    sink.write_batch(batches[0])
    sink.flush()
    sink.rollback()
    sink.close()
    assert read(one).to_pylist() == data.to_pylist()
    assert sorted(os.listdir(tmp_path)) == sorted(["parts", one.name])


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
@pytest.mark.parametrize("layout", ["one", "directory"])
def test_rows_encoded_before_the_commit_obey_rollback_and_commit(tmp_path, data, fmt, layout):
    """Rows are written to the hidden temporary file as they come (row groups of
    ROW_GROUP_ROWS): a rollback still drops every row since the last commit, a commit keeps
    exactly the flushed rows (rows written after the flush go to the next commit), and the
    published file(s) hold the committed rows in order, nothing else."""
    ext = ".parquet" if fmt == "parquet" else ".arrow"
    path = tmp_path / ("out" + ext if layout == "one" else "parts/")
    sink = ColumnarFileSink("o", Properties("o", {"path": str(path) + ("/" if layout != "one" else "")}), fmt)
    sink.ROW_GROUP_ROWS = 1_000
    folder = path.parent if layout == "one" else path
    hidden = lambda: [f for f in os.listdir(folder) if f.startswith(".")]  # noqa: E731
    batches = data.to_batches(max_chunksize=700)
    want = []

    def write(bs):
        for rb in bs:
            sink.write_batch(rb)

    write(batches[0:4])  # 2,800 rows: two groups written before any flush
    assert hidden()  # encoded into the temporary file already
    sink.flush()
    sink.commit()
    want += batches[0:4]
    write(batches[4:9])
    sink.flush()
    sink.rollback()  # those rows were in the temporary file: they must go
    write(batches[9:11])
    sink.flush()
    write(batches[11:14])  # after the flush, before the commit: not part of this commit
    sink.commit()
    want += batches[9:11]
    if layout == "directory":
        parts = sorted(f for f in os.listdir(folder) if not f.startswith("."))
        assert len(parts) == 2
        read = pq.read_table if fmt == "parquet" else feather.read_table
        assert read(folder / parts[-1]).to_pylist() == pa.Table.from_batches(batches[9:11]).to_pylist()
    sink.flush()
    sink.commit()
    want += batches[11:14]
    write(batches[14:20])
    sink.flush()
    sink.rollback()
    sink.close()
    assert not hidden()
    if layout == "one":
        got = pq.read_table(path) if fmt == "parquet" else feather.read_table(path)
    else:
        read = pq.read_table if fmt == "parquet" else feather.read_table
        got = pa.concat_tables([read(folder / f) for f in sorted(os.listdir(folder))])
        assert len(os.listdir(folder)) == 3
    assert got.to_pylist() == pa.Table.from_batches(want).to_pylist()


def test_a_job_rolled_back_before_any_commit_writes_no_file(tmp_path, data):
    """Rows encoded early and then rolled back, nothing committed: no file appears (as a job
    that writes no row)."""
    one = tmp_path / "one.parquet"
    sink = ColumnarFileSink("o", Properties("o", {"path": str(one)}), "parquet")
    sink.ROW_GROUP_ROWS = 1_000
    for rb in data.to_batches(max_chunksize=3_000):
        sink.write_batch(rb)
    sink.rollback()
    sink.close()
    assert os.listdir(tmp_path) == []


def test_sink_from_job_spec_and_no_rows(tmp_path, data):
    write_files(tmp_path, "parquet", [data], ["t.parquet"])
    spec = JobSpec.from_sql(f"CREATE STREAM out AS SELECT sym, qty FROM t WHERE qty > 9000000000000 "
                            f"WITH ('t.type' = 'file_source', 't.path' = '{tmp_path}/t.parquet', "
                            f"'out.type' = 'file_sink', 'out.path' = '{tmp_path}/o.parquet')")
    assert isinstance(open_sink(spec), ColumnarFileSink)
    run_job(tmp_path, "SELECT sym, qty FROM t WHERE qty > 9000000000000",
            {"t.type": "file_source", "t.path": "t.parquet", "out.type": "file_sink", "out.path": "o.parquet"})
    # no row, so no columns to write a file with (docs/CONNECTORS.md): no file, no leftovers
    assert sorted(os.listdir(tmp_path)) == ["job.sql", "t.parquet"]


# ------------------------------------------------------------------------------ memory, examples
# runs ``velostream`` in this process and reports its peak RSS (MB) on stderr's last line: the
# kernel's VmHWM of this process image (ru_maxrss would also count the forking parent's pages)
PEAK_RSS = ("import atexit, runpy, sys\n"
            "def peak():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM:'):\n"
            "            print(int(line.split()[1]) / 1024, file=sys.stderr)\n"
            "atexit.register(peak)\n"
            "sys.argv = ['velostream'] + sys.argv[1:]\n"
            "runpy.run_module('velostream', run_name='__main__')\n")


def test_three_million_rows_in_twelve_row_groups_stay_under_400_mb(tmp_path):
    """Bounded memory: a row group at a time, never the whole file (a whole-file read of this
    input peaks near 500 MB)."""
    from velostream.datagen import market_data
    t = pa.Table.from_batches([b.drop_columns(["_TIMESTAMP"]) for b in market_data(3_000_000)])
    pq.write_table(t, tmp_path / "big.parquet", row_group_size=250_000)
    assert pq.ParquetFile(tmp_path / "big.parquet").metadata.num_row_groups == 12
    del t
    sql = ("SELECT trader_id, symbol, COUNT(*) AS trade_count, AVG(price) AS avg_price, "
           "SUM(quantity) AS total_quantity FROM t GROUP BY trader_id, symbol "
           "WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)")
    job = job_file(tmp_path, sql, {"t.type": "file_source", "t.path": "big.parquet",
                                   "out.type": "file_sink", "out.path": "o.parquet"})
    p = subprocess.run([sys.executable, "-c", PEAK_RSS, "run", "-q", str(job)], capture_output=True,
                       text=True, cwd=tmp_path, env=subprocess_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    peak_mb = float(p.stderr.strip().splitlines()[-1])
    assert peak_mb < 400, peak_mb
    assert pq.read_metadata(tmp_path / "o.parquet").num_rows == duckdb.sql(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM read_parquet('{tmp_path}/big.parquet') "
        f"GROUP BY trader_id, symbol, trade_time // 60000)").fetchall()[0][0]


@pytest.mark.parametrize("name", ["velostream.io.datasets", "velostream.io.columnar_sink",
                                  "velostream.io.object_store"])
def test_docstring_examples(name):
    import doctest
    import importlib
    failures, tried = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
