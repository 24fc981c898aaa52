"""File sources and sinks on S3, against a real S3-compatible server: moto in server mode, on a
free port, reached through pyarrow.fs exactly as a job reaches AWS (credentials from the
standard AWS variables, ``'x.s3.endpoint'`` pointing at the server)."""
from __future__ import annotations

import json
import socket

import duckdb
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer  # the test extra's moto[server]

import velostream as vs
from test_io_parquet import (DUCK, SQL, assert_same, make_table, rows_of, run_job,
                             split_in_time)
from velostream.io import open_source
from velostream.io.base import ConfigError, Properties
from velostream.io.columnar_sink import ColumnarFileSink
from velostream.jobs.spec import JobSpec

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """(endpoint URL, pyarrow S3 file system) of a moto server with the bucket ``data``."""
    mp = pytest.MonkeyPatch()
    for k, v in AWS.items():
        mp.setenv(k, v)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                           access_key="testing", secret_key="testing", allow_bucket_creation=True)
    fs.create_dir("data")
    try:
        yield endpoint, fs
    finally:
        server.stop()
        mp.undo()


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return make_table(8_000, seed=23)


def _put_parquet(fs, key: str, t: pa.Table) -> None:
    with fs.open_output_stream(key) as f:
        pq.write_table(t, f, row_group_size=max(1, t.num_rows // 3))


def _duck(t: pa.Table) -> list[tuple]:
    con = duckdb.connect()
    con.register("data_t", t)
    return rows_of(con.sql(DUCK.format(src="data_t")).to_arrow_table())


@pytest.mark.parametrize("partitions", [1, 2])
def test_parquet_on_s3_prefix_to_parquet_on_s3(tmp_path, s3, data, partitions):
    endpoint, fs = s3
    for i, part in enumerate(split_in_time(data, 3)):
        _put_parquet(fs, f"data/pq{partitions}/day=0{i}/part-0.parquet", part)
    run_job(tmp_path, SQL, {"t.type": "file_source", "t.path": f"s3://data/pq{partitions}/",
                            "t.s3.endpoint": endpoint, "t.s3.region": "us-east-1",
                            "out.type": "file_sink", "out.path": f"s3://data/out{partitions}/",
                            "out.format": "parquet", "out.s3.endpoint": endpoint}, partitions)
    keys = [i.path for i in fs.get_file_info(pafs.FileSelector(f"data/out{partitions}", recursive=True))]
    assert keys and all(k.endswith(".parquet") and "/part-" in k for k in keys)
    got = pq.read_table(f"data/out{partitions}", filesystem=fs)
    assert got.schema.types == [pa.string(), pa.int64(), pa.int64(), pa.float64(), pa.float64(), pa.int64()]
    assert_same(rows_of(got), _duck(data))


def test_csv_on_s3_glob_to_local_jsonl(tmp_path, s3, data):
    endpoint, fs = s3
    for i, part in enumerate(split_in_time(data, 2)):
        with fs.open_output_stream(f"data/csv/p{i}.csv") as f:
            pcsv.write_csv(part, f)
    with fs.open_output_stream("data/csv/other.txt") as f:  # not matched by the glob
        f.write(b"not,csv\n")
    run_job(tmp_path, SQL, {"t.type": "file_source", "t.path": "s3://data/csv/p*.csv",
                            "t.s3.endpoint": endpoint,
                            "t.schema": "sym VARCHAR, qty BIGINT, price DOUBLE, ts BIGINT",
                            "out.type": "file_sink", "out.path": "out.jsonl"})
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert_same(rows_of(got), _duck(data))


def test_corrupt_object_is_a_dead_letter_naming_it(tmp_path, s3, data):
    endpoint, fs = s3
    _put_parquet(fs, "data/mixed/a.parquet", data)
    with fs.open_output_stream("data/mixed/b.parquet") as f:
        f.write(b"PAR1 but not really")
    run_job(tmp_path, SQL, {"t.type": "file_source", "t.path": "s3://data/mixed",
                            "t.s3.endpoint": endpoint, "out.type": "file_sink", "out.path": "out.jsonl",
                            "dead.letter.path": "dead.jsonl"})
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["position"] for d in dead] == ["s3://data/mixed/b.parquet"]
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert_same(rows_of(got), _duck(data))


def test_job_api_parquet_on_s3(s3, data):
    endpoint, fs = s3
    _put_parquet(fs, "data/api/t.parquet", data)
    spec = JobSpec.from_sql(SQL + f" WITH ('t.type' = 'file_source', 't.path' = 's3://data/api/t.parquet', "
                                  f"'t.s3.endpoint' = '{endpoint}')")
    src = open_source(spec)
    assert src.columns == ["sym", "qty", "price", "ts"]
    sink = ColumnarFileSink("o", Properties("o", {"path": "s3://data/api/out.parquet",
                                                  "s3.endpoint": endpoint}), "parquet")
    job = vs.Job(SQL, {"t": src}, sink, partitions=2)
    job.run()
    src.close()
    sink.close()
    assert_same(rows_of(pq.read_table("data/api/out.parquet", filesystem=fs)), _duck(data))


def test_missing_object_and_endpoint_on_a_local_path_are_clear_errors(tmp_path, s3):
    endpoint, _ = s3
    with pytest.raises(ConfigError, match="cannot read s3://data/nothing-here/"):
        open_source(JobSpec.from_sql("SELECT * FROM t WITH ('t.type' = 'file_source', "
                                     f"'t.path' = 's3://data/nothing-here/', 't.format' = 'parquet', "
                                     f"'t.s3.endpoint' = '{endpoint}')"))
    with pytest.raises(ConfigError, match="s3.endpoint"):
        open_source(JobSpec.from_sql("SELECT * FROM t WITH ('t.type' = 'file_source', "
                                     f"'t.path' = '{tmp_path}/x.parquet', 't.s3.endpoint' = '{endpoint}')"))
