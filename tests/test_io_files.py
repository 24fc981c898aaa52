"""File sources and sinks, and the JSON decoder: real files in tmp_path, DuckDB and pyarrow as
the readers to agree with, every bad record a Reject with its position and text."""
import base64
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pj
import pytest

from conftest import subprocess_env

import velostream as vs
from velostream.datagen import market_data
from velostream.io.base import ConfigError, Properties, Reject
from velostream.io.codecs import JsonDecoder, parse_schema
from velostream.io.files import DeadLetterFile, FileSink, FileSource, StdoutSink, jsonl_bytes

duckdb = pytest.importorskip("duckdb")

S3A = """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       SUM(quantity) as total_quantity, SUM(price * quantity) as total_value
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)"""


def source(path, **props) -> FileSource:
    return FileSource("src", Properties("src", {"path": str(path), **{k.replace("_", "."): str(v) for k, v in props.items()}}))


def read_all(src: FileSource) -> pa.Table:
    batches = []
    while True:
        rb = src.read()
        if rb is None:
            assert not src.has_more()
            break
        batches.append(rb)
    return pa.Table.from_batches(batches) if batches else None


def write(path, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def sink_file(path, batches, **props) -> str:
    s = FileSink("out", Properties("out", {"path": str(path), **props}))
    for b in batches:
        s.write_batch(b)
    s.flush()
    s.commit()
    s.close()
    return str(path)


def by_key(rows, *keys):
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))


# ------------------------------------------------------------------------------ round trips

MIXED = pa.table({
    "id": pa.array([1, 2, 3, 4], pa.int64()),
    "price": pa.array([1.5, None, 100.0, -2.25], pa.float64()),
    "name": pa.array(['a, "quoted"', "line\nbreak", "", None], pa.string()),
    "ok": pa.array([True, False, None, True]),
})


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_round_trip_reads_back_identically(tmp_path, fmt):
    path = sink_file(tmp_path / f"t.{fmt}", MIXED.to_batches())
    got = read_all(source(path))
    assert got.schema == MIXED.schema
    assert got.to_pylist() == MIXED.to_pylist()
    # pyarrow and DuckDB read the file the same way
    if fmt == "csv":
        other = pcsv.read_csv(path)
        con = duckdb.connect()
        dd = con.sql(f"SELECT * FROM read_csv('{path}', header=true)").to_arrow_table()
        assert dd.column("id").to_pylist() == MIXED.column("id").to_pylist()
        assert dd.column("price").to_pylist() == MIXED.column("price").to_pylist()
    else:
        other = pj.read_json(path)
        dd = duckdb.connect().sql(f"SELECT * FROM read_json_auto('{path}')").to_arrow_table()
        assert dd.to_pylist() == MIXED.to_pylist()
    assert other.column("id").to_pylist() == MIXED.column("id").to_pylist()


def test_market_data_round_trip_and_batch_size(tmp_path):
    data = pa.Table.from_batches(market_data(10_000))
    for fmt in ("csv", "jsonl"):
        path = sink_file(tmp_path / f"m.{fmt}", data.to_batches())
        src = source(path, batch_size=3000)
        batches = []
        while (rb := src.read()) is not None:
            assert rb.num_rows <= 3000
            batches.append(rb)
        got = pa.Table.from_batches(batches)
        assert got.equals(data), fmt


def test_jsonl_writer_values():
    rb = pa.RecordBatch.from_pydict({
        "i": pa.array([1, None], pa.int64()), "f": [1.0, float("nan")], "g": [1e20, 0.1],
        "s": ['q"\\', "t\tab\x01"], "b": [True, None]})
    lines = [json.loads(x) for x in jsonl_bytes(rb).decode().splitlines()]
    assert lines == [{"i": 1, "f": 1.0, "g": 1e20, "s": 'q"\\', "b": True},
                     {"i": None, "f": None, "g": 0.1, "s": "t\tab\x01", "b": None}]
    assert b'"f":1.0' in jsonl_bytes(rb)  # a float stays a float



@pytest.mark.parametrize("order", [("d", "s", "e"), ("s", "d"), ("d",), ("e", "d"), ("i", "d", "e"),
                                   ("u", "n"), ("n", "i"), ("e", "u")])
def test_jsonl_numbers_read_back_exactly(order):
    """DOUBLE and integer columns (first, middle, last, alone; with NULLs or without): each
    value's text reads back as the very same number, a double with as few digits as Python's
    ``repr`` and keeping its ``.0``; NULL, NaN and the infinities are null."""
    rng = np.random.default_rng(29)
    n = 3_000
    bits = rng.integers(0, 2**64, n, dtype=np.uint64)  # doubles of every exponent
    d = bits.view(np.float64).copy()
    d[:10] = [0.0, -0.0, 1.0, 100.0, 1e16, 1e-7, 5e-324, 1.7976931348623157e308, np.inf, np.nan]
    scale = 10.0 ** rng.integers(0, 6, n)  # decimals as people write them, and integral values
    e = np.round(rng.normal(0, 1e4, n) * scale) / scale
    e[-1] = -np.inf
    rb = pa.RecordBatch.from_pydict({
        "d": pa.array(d, mask=rng.random(n) < 0.1), "e": pa.array(e),
        "s": pa.array(rng.choice(["x", 'y"', "é"], n)), "i": pa.array(rng.integers(-2**63, 2**63 - 1, n)),
        "u": pa.array(rng.integers(0, 2**64 - 1, n, dtype=np.uint64)),
        "n": pa.array(rng.integers(-9, 9, n).astype(np.int32), mask=rng.random(n) < 0.2)})
    rb = rb.select(list(order)).slice(7)  # an offset into the buffers too
    text = jsonl_bytes(rb).decode()
    assert text.endswith("\n")
    for line, want in zip(text.splitlines(), rb.to_pylist(), strict=True):
        got = json.loads(line)
        assert list(got) == list(order)
        for k in ("i", "u", "n"):
            if k in got:
                assert got[k] == want[k] and (want[k] is None or isinstance(got[k], int)), line
        for k in ("d", "e"):
            if k not in got:
                continue
            v = want[k]
            if v is None or not math.isfinite(v):
                assert got[k] is None, line
                continue
            assert isinstance(got[k], float) and got[k] == v and math.copysign(1, got[k]) == math.copysign(1, v), line
            shown = line.split(f'"{k}":', 1)[1].split(",", 1)[0].rstrip("}")
            assert "." in shown or "e" in shown, line  # never bare digits, which read as BIGINT
            assert _digits(shown) == _digits(repr(v)), line  # the shortest text of that double


def _digits(number: str) -> str:
    """The significant digits of a number's text (no sign, point, exponent, outer zeros)."""
    return number.split("e")[0].replace("-", "").replace(".", "").strip("0")

# ------------------------------------------------------------------------------ inference

def test_csv_inference_edge_cases(tmp_path):
    path = write(tmp_path / "e.csv", 'i,f,s,n,q\n1,1,,,"a,b"\n2,2.5,x,,"multi\nline"\n')
    t = read_all(source(path))
    assert t.schema.types == [pa.int64(), pa.float64(), pa.string(), pa.string(), pa.string()]
    assert t.to_pylist() == [{"i": 1, "f": 1.0, "s": None, "n": None, "q": "a,b"},
                             {"i": 2, "f": 2.5, "s": "x", "n": None, "q": "multi\nline"}]


def test_column_null_in_first_chunk_keeps_later_values(tmp_path):
    rows = ["a,b"] + [f"{i}," for i in range(70_000)] + ["70000,late"]
    path = write(tmp_path / "n.csv", "\n".join(rows) + "\n")
    t = read_all(source(path, batch_size=65536))
    assert t.schema.field("b").type == pa.string()
    assert t.num_rows == 70_001 and t.column("b").to_pylist()[-1] == "late"
    assert t.column("b").null_count == 70_000
    # more than a chunk (8 MB) of records before the first value of b
    lines = [json.dumps({"a": i, "b": None}) for i in range(500_000)] + ['{"a": 1, "b": 7}']
    path = write(tmp_path / "n.jsonl", "\n".join(lines) + "\n")
    src = source(path)
    t = read_all(src)
    assert t.schema.field("b").type == pa.string()
    assert t.num_rows == 500_001 and t.column("b").to_pylist()[-1] == "7"
    assert src.rejects() == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_iso_timestamps_and_event_time(tmp_path, fmt):
    times = ["2024-01-15T10:00:00", "2024-01-15T10:00:01.500", "2024-01-15T10:01:00Z"]
    if fmt == "csv":
        path = write(tmp_path / "t.csv", "k,ts\n" + "".join(f"a,{t}\n" for t in times))
    else:
        path = write(tmp_path / "t.jsonl", "".join(json.dumps({"k": "a", "ts": t}) + "\n" for t in times))
    t = read_all(source(path, event_time_field="ts", schema="ts TIMESTAMP"))
    base = 1705312800000
    assert t.column("_TIMESTAMP").to_pylist() == [base, base + 1500, base + 60000]
    # without a declared type, inference plus event.time.field gives the same event times
    t2 = read_all(source(path, event_time_field="ts"))
    assert t2.column("_TIMESTAMP").to_pylist() == [base, base + 1500, base + 60000]


def test_epoch_ms_timestamp_override(tmp_path):
    path = write(tmp_path / "t.csv", "k,ts\na,1700000000000\nb,1700000001000\n")
    t = read_all(source(path, schema="ts TIMESTAMP", event_time_field="ts"))
    assert t.schema.field("ts").type == pa.timestamp("ms")
    assert t.column("_TIMESTAMP").to_pylist() == [1700000000000, 1700000001000]


def test_explicit_schema_override(tmp_path):
    path = write(tmp_path / "o.csv", "id,qty,price\n1,2,3\n4,5,6\n")
    t = read_all(source(path, schema="qty DOUBLE, id STRING"))
    assert t.schema.types == [pa.string(), pa.float64(), pa.int64()]
    assert t.to_pylist()[0] == {"id": "1", "qty": 2.0, "price": 3}
    assert parse_schema("a DECIMAL(10, 2), b VARCHAR(3)").types == [pa.decimal128(10, 2), pa.string()]
    with pytest.raises(ConfigError, match="unknown type"):
        parse_schema("a BLOB")


def test_no_header_names_from_schema_or_generated(tmp_path):
    path = write(tmp_path / "h.csv", "1;x\n2;y\n")
    t = read_all(source(path, header="false", delimiter=";"))
    assert t.column_names == ["c0", "c1"]
    t = read_all(source(path, header="false", delimiter=";", schema="id BIGINT, name STRING"))
    assert t.to_pylist() == [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]


# ------------------------------------------------------------------------------ bad input

def test_csv_bad_rows_are_rejects_and_good_rows_kept(tmp_path):
    text = "sym,price,qty\nA,1.5,1\nB,2.5\nC,3.5,3,extra\nD,abc,4\nE,5.5,5\n"
    path = write(tmp_path / "bad.csv", text)
    src = source(path, schema="price DOUBLE, qty BIGINT")
    t = read_all(src)
    assert t.to_pylist() == [{"sym": "A", "price": 1.5, "qty": 1}, {"sym": "E", "price": 5.5, "qty": 5}]
    rejects = src.rejects()
    assert [(r.position, r.payload) for r in rejects] == [
        (f"{path}:3", b"B,2.5"), (f"{path}:4", b"C,3.5,3,extra"), (f"{path}:5", b"D,abc,4")]
    assert rejects[0].error == "line 3: expected 3 fields, got 2"
    assert rejects[1].error == "line 4: expected 3 fields, got 4"
    assert rejects[2].error == "column 'price': expected DOUBLE, got 'abc'"
    assert src.rejects() == []  # drained


def test_csv_wrong_type_in_a_later_chunk(tmp_path):
    rows = ["k,v"] + [f"a,{i}" for i in range(1_200_000)]  # more than one 8 MB chunk
    rows[1_100_001] = "a,oops"
    path = write(tmp_path / "late.csv", "\n".join(rows) + "\n")
    src = source(path)
    t = read_all(src)
    assert t.num_rows == 1_199_999 and t.schema.field("v").type == pa.int64()
    assert [(r.position, r.payload) for r in src.rejects()] == [(f"{path}:1100002", b"a,oops")]
    v = t.column("v").to_pylist()
    assert 1_100_000 not in v and v[-1] == 1_199_999 and v[1_099_999] == 1_099_999


def test_jsonl_bad_records(tmp_path):
    lines = ['{"sym": "A", "price": 1.5, "qty": 1}', '{"sym": "B", "price": "abc", "qty": 2}',
             '{not json', '', '[1, 2]', '{"sym": "C", "qty": 3}', '{"sym": "D", "price": 4, "qty": 4, "x": 1}']
    path = write(tmp_path / "bad.jsonl", "\n".join(lines) + "\n")
    src = source(path, schema="price DOUBLE, qty BIGINT, sym STRING")
    t = read_all(src)
    # x appears in the first block, so inference keeps it (later unknown fields are ignored)
    assert t.to_pylist() == [{"price": 1.5, "qty": 1, "sym": "A", "x": None},
                             {"price": None, "qty": 3, "sym": "C", "x": None},
                             {"price": 4.0, "qty": 4, "sym": "D", "x": 1}]
    rejects = src.rejects()
    assert [r.position for r in rejects] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert rejects[0].error == "field 'price': expected DOUBLE, got \"abc\""
    assert rejects[1].error.startswith("invalid JSON")
    assert rejects[2].error.startswith("not a JSON object")
    assert [r.payload for r in rejects] == [lines[1].encode(), lines[2].encode(), lines[4].encode()]
    # fail.on.missing.field: the record without price is a reject too
    src = source(path, schema="price DOUBLE, qty BIGINT, sym STRING", fail_on_missing_field="true")
    t = read_all(src)
    assert t.column("sym").to_pylist() == ["A", "D"]
    errs = {r.position: r.error for r in src.rejects()}
    assert errs[f"{path}:6"] == "missing field 'price'"


def test_json_decoder_payloads():
    dec = JsonDecoder("k", fail_on_missing_field=True)
    rb, rejects = dec.decode([b'{"a": 1, "b": "x"}', b'{"a": 2, "b": null}'], lambda i: f"t/0@{i}")
    assert rb.to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": None}] and rejects == []
    assert dec.kept is None
    payloads = [b'{"a": 3,\n "b": "y"}', b'{"b": "z"}', b"\xff", b'{"a": 5, "b": 6, "c": 1}']
    rb, rejects = dec.decode(payloads, lambda i: f"t/0@{100 + i}")
    assert rb.to_pylist() == [{"a": 3, "b": "y"}, {"a": 5, "b": "6"}]  # STRING takes any value
    assert dec.kept.tolist() == [0, 3]
    assert [(r.position, r.payload) for r in rejects] == [("t/0@101", payloads[1]), ("t/0@102", b"\xff")]
    assert rejects[0].error == "missing field 'a'"
    rb, rejects = dec.decode([b"nope"], str)
    assert rb is None and len(rejects) == 1


# ------------------------------------------------------------------------------ dead letters, sinks

def test_dead_letter_file(tmp_path):
    path = tmp_path / "dlq.jsonl"
    dl = DeadLetterFile(str(path))
    dl.write([Reject("s", "f.csv:3", "bad", b"A,1"), Reject("s", "t/0@5", "invalid JSON", b"\xff\x00")])
    dl.flush()
    dl.close()
    DeadLetterFile(str(path)).write([Reject("s", "x", "e", b"p")])  # appends (closed at exit)
    lines = [json.loads(x) for x in path.read_text().splitlines()[:2]]
    assert lines[0] == {"source": "s", "position": "f.csv:3", "error": "bad", "payload": "A,1"}
    assert base64.b64decode(lines[1]["payload_base64"]) == b"\xff\x00"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_file_sink_rollback_truncates(tmp_path, fmt):
    path = str(tmp_path / f"s.{fmt}")
    rb = MIXED.to_batches()[0]
    s = FileSink("out", Properties("out", {"path": path}))
    s.write_batch(rb.slice(0, 2))
    s.flush()
    s.commit()
    committed = open(path, "rb").read()
    s.write_batch(rb.slice(2))
    s.flush()
    assert os.path.getsize(path) > len(committed)
    s.write_batch(rb)  # never flushed
    s.rollback()
    assert open(path, "rb").read() == committed
    s.write_batch(rb.slice(2))
    s.flush()
    s.commit()
    s.close()
    assert read_all(source(path)).to_pylist() == MIXED.to_pylist()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_file_sink_commits_exactly_the_flushed_rows(tmp_path, fmt):
    """The text is written on the sink's thread as batches come: a commit keeps the rows flushed
    before it, not the rows handed over after the flush (written already, but the next commit's),
    and a rollback truncates those; synced every few bytes on its other thread."""
    path = str(tmp_path / f"s.{fmt}")
    rb = MIXED.to_batches()[0]
    a, b, c, d = rb.slice(0, 1), rb.slice(1, 1), rb.slice(2, 1), rb.slice(1)
    s = FileSink("out", Properties("out", {"path": path}))
    s.SYNC_BYTES = 1
    s.write_batch(a)
    s.flush()
    s.commit()
    s.write_batch(b)
    s.flush()
    s.write_batch(c)  # after the flush: not part of the commit below
    s.commit()
    s.rollback()
    assert read_all(source(path)).to_pylist() == pa.concat_tables(
        [pa.Table.from_batches([x]) for x in (a, b)]).to_pylist()
    s.write_batch(d)
    s.rollback()  # never flushed: dropped whether written yet or not
    s.write_batch(d)
    s.flush()
    s.commit()
    s.close()
    want = pa.concat_tables([pa.Table.from_batches([x]) for x in (a, b, d)])
    assert read_all(source(path)).to_pylist() == want.to_pylist()
    if fmt == "csv":
        header = ",".join(f'"{n}"' for n in MIXED.schema.names)
        assert open(path).read().count(header) == 1  # one header, though rolled back twice


def test_stdout_sink(capsys):
    s = StdoutSink("out", Properties("out", {}))
    s.write_batch(pa.RecordBatch.from_pydict({"sym": ["A", "BB"], "n": [1, 22]}))
    s.flush()
    s.write_batch(pa.RecordBatch.from_pydict({"sym": ["C"], "n": [None]}))
    s.flush()
    assert capsys.readouterr().out.splitlines() == [
        "sym | n", "----+---", "A   |  1", "BB  | 22", "C   | NULL"]
    s = StdoutSink("out", Properties("out", {"format": "jsonl"}))
    s.write_batch(pa.RecordBatch.from_pydict({"a": [1]}))
    s.flush()
    assert capsys.readouterr().out == '{"a":1}\n'


# ------------------------------------------------------------------------------ paths

def test_glob_reads_files_in_sorted_order(tmp_path):
    for i in (2, 0, 1):
        write(tmp_path / f"part-{i}.csv", f"i\n{i * 10}\n{i * 10 + 1}\n")
    src = source(tmp_path / "part-*.csv")
    assert read_all(src).column("i").to_pylist() == [0, 1, 10, 11, 20, 21]
    src.seek((1, 1))
    assert read_all(src).column("i").to_pylist() == [11, 20, 21]


def test_missing_files_and_bad_properties(tmp_path):
    with pytest.raises(ConfigError, match="nope.csv"):
        source(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="no file matches"):
        source(tmp_path / "*.jsonl")
    with pytest.raises(ConfigError, match="required"):
        FileSource("src", Properties("src", {}))
    write(tmp_path / "x.txt", "a\n")
    with pytest.raises(ConfigError, match="format"):
        source(tmp_path / "x.txt")
    assert read_all(source(tmp_path / "x.txt", format="csv")) is None  # a header, no rows


# ------------------------------------------------------------------------------ bounded memory

def test_huge_csv_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "huge.csv"
    block = pa.Table.from_batches(market_data(200_000)).drop_columns(["_TIMESTAMP"])
    buf = pa.BufferOutputStream()
    pcsv.write_csv(block, buf, pcsv.WriteOptions(include_header=False))
    body = buf.getvalue().to_pybytes()
    copies = 0
    with open(path, "wb") as f:
        f.write(b"trader_id,symbol,price,quantity,trade_time\n")
        while f.tell() < 200 << 20:
            f.write(body)
            copies += 1
    size = os.path.getsize(path)
    code = textwrap.dedent(f"""
        from velostream.io.base import Properties
        from velostream.io.files import FileSource
        def hwm():
            for line in open('/proc/self/status'):
                if line.startswith('VmHWM'):
                    return int(line.split()[1]) * 1024
        src = FileSource('m', Properties('m', {{'path': {str(path)!r}}}))
        rb = src.read(); n = rb.num_rows; base = hwm()
        while (rb := src.read()) is not None:
            n += rb.num_rows
        print(n, hwm() - base)
    """)
    # not from the source checkout's root, which would import the uncompiled source tree
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env=subprocess_env())
    n, growth = map(int, out.stdout.split())
    assert n == copies * 200_000
    # chunks of 8 MB, two decoded ahead, Arrow's allocator caching: tens of MB, not the file
    assert growth < 96 << 20, f"peak RSS grew by {growth >> 20} MB reading a {size >> 20} MB file"


# ------------------------------------------------------------------------------ end to end

@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_s3a_from_files_matches_in_memory(tmp_path, fmt, partitions):
    data = pa.Table.from_batches(market_data(150_000)).drop_columns(["_TIMESTAMP"])
    path = sink_file(tmp_path / f"md.{fmt}", data.to_batches())
    expected = by_key(vs.query(S3A, {"market_data": data}).to_pylist(), "trader_id", "symbol", "total_value")
    src = FileSource("market_data", Properties("market_data", {"path": path, "batch.size": "20000"}))
    job = vs.Job(S3A, sources={"market_data": src}, partitions=partitions)
    job.run()
    got = by_key(job.result().to_pylist(), "trader_id", "symbol", "total_value")
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
        assert g.keys() == e.keys()
        for k in g:
            if isinstance(e[k], float):
                assert g[k] == pytest.approx(e[k], rel=1e-12), k
            else:
                assert g[k] == e[k], k
