"""Bad records in files never end a job told to continue (docs/SQL.md §7, docs/CONNECTORS.md).

A corpus of bad CSV and JSON-lines files, generated here from a seed: bytes that are not UTF-8 in a
field and in a key, values of the wrong type or out of range, unparseable and out-of-range event
times, records with the wrong shape, a truncated last line, a 5 MB field, header-only and empty
files. Each file runs through ``velostream run`` (a subprocess, with a file sink and a dead-letter
file) and through ``vs.Job`` in-process at 1, 2 and 4 partitions. The expected aggregates come
from the good records, computed here record by record; every bad record must be in the
dead-letter file with its line and its raw bytes, and the job's counts must agree with both.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import random
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

import velostream as vs
from conftest import subprocess_env
from velostream.errors import JobError
from velostream.io.base import Properties
from velostream.io import files
from velostream.io.files import DeadLetterFile, FileSource

BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
KEYS = ["alpha", "beta", "gamma", "ünï", "日本"]
NOTES = ["x", "naïve", "two words", "long " * 8, ""]
SELECT = ("SELECT k, COUNT(*) AS n, SUM(v) AS s, SUM(_TIMESTAMP) AS t FROM src "
          "GROUP BY k EMIT FINAL")
PROPS = {"src.type": "file_source", "src.schema": "v BIGINT", "src.event.time.field": "ts"}


# ------------------------------------------------------------------------------ the corpus

def iso(ms: int, rng: random.Random) -> str:
    """``ms`` as ISO-8601 text in one of several forms (zone Z, an offset, none = UTC; with or
    without milliseconds)."""
    d = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    form = rng.randrange(4)
    if form == 1:
        d = d.astimezone(dt.timezone(dt.timedelta(hours=1)))
    text = d.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    if form == 0:
        return text.replace("+00:00", "Z")
    if form == 2:
        return text.replace("+00:00", "")
    return text


@dataclass
class Corpus:
    """A generated file: its bytes, the good records' aggregates and the bad records by line."""
    fmt: str
    lines: list = field(default_factory=list)      # raw bytes of each line, without the newline
    expected: dict = field(default_factory=dict)   # k -> {"n", "s", "t"}
    bad: dict = field(default_factory=dict)        # line number -> raw bytes
    trailing_newline: bool = True

    @property
    def good_count(self) -> int:
        return sum(e["n"] for e in self.expected.values())

    def write(self, path: Path) -> Path:
        data = b"\n".join(self.lines) + (b"\n" if self.trailing_newline else b"")
        path.write_bytes(data)
        return path

    def add_good(self, k: str, v, note: str, ms: int, ts_text) -> None:
        if self.fmt == "csv":
            self.lines.append(f"{k},{'' if v is None else v},{note},{ts_text}".encode())
        else:
            self.lines.append(orjson.dumps({"k": k, "v": v, "note": note, "ts": ts_text}))
        e = self.expected.setdefault(k, {"n": 0, "s": None, "t": 0})
        e["n"] += 1
        e["t"] += ms
        if v is not None:
            e["s"] = (e["s"] or 0) + v

    def add_bad(self, raw: bytes) -> None:
        self.lines.append(raw)
        self.bad[len(self.lines)] = raw  # its line number (the CSV header is line 1)


def good_values(rng: random.Random):
    k = rng.choice(KEYS)
    v = None if rng.random() < 0.1 else rng.choice([0, -1, 2 ** 40, rng.randint(-10 ** 9, 10 ** 9)])
    ms = BASE_MS + rng.randrange(3_600_000)
    return k, v, rng.choice(NOTES), ms


def bad_record(fmt: str, kind: str, rng: random.Random) -> bytes:
    """One bad record of the given kind, built from good values."""
    k, v, note, ms = good_values(rng)
    ts = iso(ms, rng)
    v = 7 if v is None else v
    if fmt == "csv":
        cells = [k.encode(), str(v).encode(), note.encode(), ts.encode()]
        if kind == "utf8_key":
            cells[0] = b"al\xffpha"
        elif kind == "utf8_field":
            cells[2] = b"na\xc3\x28ve"           # a lead byte without its continuation
        elif kind == "wrong_type":
            cells[1] = b"abc"
        elif kind == "int_range":
            cells[1] = b"99999999999999999999"    # past int64
        elif kind == "bad_time":
            cells[3] = rng.choice([b"notatime", b"2024-02-30T00:00:00Z", b"2024-01-01T25:00:00"])
        elif kind == "time_range":
            cells[3] = rng.choice([b"99999-01-01T00:00:00Z", b"99999999999999999999"])
        elif kind == "shape":
            cells = cells[:2]                    # too few fields
        return b",".join(cells)
    obj = {"k": k, "v": v, "note": note, "ts": ts}
    if kind == "utf8_key":
        return orjson.dumps(obj).replace(b'"k"', b'"k\xfe"', 1)   # an object key
    if kind == "utf8_field":
        return orjson.dumps(obj).replace(b'"note":"', b'"note":"\xed\xa0\x80', 1)  # a UTF-16 surrogate
    if kind == "wrong_type":
        obj["v"] = "abc"
    elif kind == "int_range":
        return orjson.dumps(obj).replace(b'"v":' + str(v).encode(), b'"v":99999999999999999999', 1)
    elif kind == "bad_time":
        obj["ts"] = rng.choice(["notatime", "2024-02-30T00:00:00Z", "2024-01-01T25:00:00"])
    elif kind == "time_range":
        obj["ts"] = rng.choice(["99999-01-01T00:00:00Z", "99999999999999999999"])
    elif kind == "shape":
        return b"[1, 2, 3]"                     # JSON, but not an object
    return orjson.dumps(obj)


KINDS = ["utf8_key", "utf8_field", "wrong_type", "int_range", "bad_time", "time_range", "shape"]


def make_corpus(fmt: str, seed: int, n: int, bad_share: float = 0.1, truncated: bool = True,
                huge_field: bool = False) -> Corpus:
    """``n`` records, about ``bad_share`` of them bad (every kind at least once), mixed at random;
    optionally a 5 MB field in one good record and a last line cut short."""
    rng = random.Random(seed)
    c = Corpus(fmt)
    if fmt == "csv":
        c.lines.append(b"k,v,note,ts")
    kinds = KINDS + [rng.choice(KINDS) for _ in range(int(n * bad_share))]
    slots = set(rng.sample(range(n), len(kinds)))
    huge_at = rng.randrange(n) if huge_field else -1
    for i in range(n):
        if i in slots:
            c.add_bad(bad_record(fmt, kinds.pop(), rng))
            continue
        k, v, note, ms = good_values(rng)
        if i == huge_at:
            note = "z" * (5 << 20)
        # CSV event times may also be epoch-millisecond digits, in the same column as ISO text
        ts = str(ms) if fmt == "csv" and rng.random() < 0.2 else iso(ms, rng)
        c.add_good(k, v, note, ms, ts)
        if fmt == "jsonl" and rng.random() < 0.02:
            c.lines.append(b"   ")  # a blank line: skipped, not a record
    if truncated:  # the last line cut short, without its newline
        k, v, note, ms = good_values(rng)
        whole = orjson.dumps({"k": k, "v": v, "note": note, "ts": iso(ms, rng)})
        c.add_bad(f"{k},{v},na".encode() if fmt == "csv" else whole[:len(whole) // 2])
        c.trailing_newline = False
    return c


# ------------------------------------------------------------------------------ running it

def velostream(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "velostream", *args], capture_output=True,
                          cwd=cwd, env=subprocess_env(), timeout=120)


def run_cli(tmp_path: Path, data: Path, strategy: str = "LogAndContinue", extra: dict = None):
    """The job through ``velostream run``: (process, sink rows by key, dead letters)."""
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    props = {**PROPS, "src.path": data.name, "out.type": "file_sink", "out.path": out.name,
             "dead.letter.path": dead.name, "failure.strategy": strategy, **(extra or {})}
    with_clause = ",\n      ".join(f"'{k}' = '{v}'" for k, v in props.items())
    job = tmp_path / "job.sql"
    job.write_text(f"CREATE STREAM out AS\n{SELECT}\nWITH ({with_clause})\n")
    r = velostream("run", "-q", job.name, cwd=tmp_path)
    rows = ({row["k"]: row for row in map(json.loads, out.read_text().splitlines())}
            if out.exists() else {})
    return r, rows, read_dead(dead)


def read_dead(path: Path) -> list[tuple[int, bytes, dict]]:
    """(line, raw payload, record) of each dead letter."""
    if not path.exists():
        return []
    out = []
    for text in path.read_text().splitlines():
        rec = json.loads(text)
        raw = (base64.b64decode(rec["payload_base64"]) if "payload_base64" in rec
               else rec["payload"].encode())
        out.append((int(rec["position"].rsplit(":", 1)[1]), raw, rec))
    return out


def summary(stderr: bytes) -> tuple[int, int]:
    """(records in, failed) from the final summary line."""
    m = re.search(rb"done: ([\d,]+) records in, [\d,]+ rows out, ([\d,]+) failed", stderr)
    assert m, stderr.decode(errors="replace")
    return int(m.group(1).replace(b",", b"")), int(m.group(2).replace(b",", b""))


def check_rows(rows: dict, corpus: Corpus) -> None:
    assert set(rows) == set(corpus.expected)
    for k, e in corpus.expected.items():
        assert (rows[k]["n"], rows[k]["s"], rows[k]["t"]) == (e["n"], e["s"], e["t"]), k


def check_dead(dead: list, corpus: Corpus, name: str) -> None:
    assert sorted((line, raw) for line, raw, _ in dead) == sorted(corpus.bad.items())
    for line, _, rec in dead:
        assert rec["source"] == "src" and rec["position"] == f"{name}:{line}" and rec["error"]


# ------------------------------------------------------------------------------ the command

def run_and_check(tmp_path, corpus, fmt: str) -> None:
    """``velostream run`` over the corpus goes on: every good record in the result, every bad
    one in the dead-letter file, and the summary's counts agree."""
    data = corpus.write(tmp_path / f"data.{fmt}")
    r, rows, dead = run_cli(tmp_path, data)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    check_rows(rows, corpus)
    check_dead(dead, corpus, data.name)
    assert summary(r.stderr) == (corpus.good_count, len(corpus.bad))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_run_continues_past_every_kind_of_bad_record(tmp_path, fmt):
    run_and_check(tmp_path, make_corpus(fmt, seed=11 if fmt == "csv" else 12, n=600), fmt)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_run_fails_under_fail_batch_naming_the_first_bad_record(tmp_path, fmt):
    corpus = make_corpus(fmt, seed=21, n=200)
    data = corpus.write(tmp_path / f"data.{fmt}")
    r, _, dead = run_cli(tmp_path, data, strategy="FailBatch")
    assert r.returncode == 1, r.stderr.decode(errors="replace")
    first = min(corpus.bad)
    assert f"job failed: bad input record at {data.name}:{first}:".encode() in r.stderr
    assert dead == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_5_mb_field_among_bad_records(tmp_path, fmt):
    run_and_check(tmp_path, make_corpus(fmt, seed=31, n=60, huge_field=True), fmt)


@pytest.mark.parametrize("content", [b"k,v,note,ts\n", b"k,v,note,ts", b""], ids=["header", "header-no-newline", "empty"])
def test_header_only_or_empty_csv_is_an_empty_input(tmp_path, content):
    data = tmp_path / "data.csv"
    data.write_bytes(content)
    r, rows, dead = run_cli(tmp_path, data)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert rows == {} and dead == []
    assert summary(r.stderr) == (0, 0)


def test_empty_jsonl_is_an_empty_input(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"")
    r, rows, dead = run_cli(tmp_path, data)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert rows == {} and dead == []
    assert summary(r.stderr) == (0, 0)


def test_csv_integer_literal_past_int64_in_an_inferred_column(tmp_path):
    """Without a schema the column of integer literals is BIGINT, and the one past int64 is a bad
    record (not a reason to make the whole column DOUBLE)."""
    rng = random.Random(51)
    lines, expected, bad = [b"k,v,note,ts"], {}, {}
    for i in range(300):
        k, v, _, ms = good_values(rng)
        if i in (5, 150):
            raw = f"{k},{rng.choice(['99999999999999999999', '-9223372036854775809'])},x,{ms}".encode()
            lines.append(raw)
            bad[len(lines)] = raw
            continue
        v = 0 if v is None else v
        lines.append(f"{k},{v},x,{ms}".encode())
        e = expected.setdefault(k, {"n": 0, "s": 0, "t": 0})
        e["n"], e["s"], e["t"] = e["n"] + 1, e["s"] + v, e["t"] + ms
    data = tmp_path / "data.csv"
    data.write_bytes(b"\n".join(lines) + b"\n")
    r, rows, dead = run_cli(tmp_path, data, extra={"src.schema": "note STRING"})
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert {k: {"n": row["n"], "s": row["s"], "t": row["t"]} for k, row in rows.items()} == expected
    assert all(type(row["s"]) is int for row in rows.values())
    assert sorted((line, raw) for line, raw, _ in dead) == sorted(bad.items())


def test_csv_record_cut_short_inside_quotes_at_the_end(tmp_path):
    rng = random.Random(61)
    c = make_corpus("csv", seed=61, n=50, bad_share=0.0, truncated=False)
    k, v, _, ms = good_values(rng)
    c.add_bad(f'{k},1,"an open quote,{ms}'.encode())
    c.trailing_newline = False
    data = c.write(tmp_path / "data.csv")
    r, rows, dead = run_cli(tmp_path, data)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    check_rows(rows, c)
    check_dead(dead, c, data.name)


@pytest.mark.parametrize("last", [b"b,5\" tv,x,1000", b'b,"5"" tv",x,1000'], ids=["stray-quote", "doubled-quote"])
def test_csv_quote_inside_a_complete_last_record_is_a_value(tmp_path, last):
    """Odd quotes at the end are not always a record cut short: a quote inside an unquoted field
    is part of the value."""
    data = tmp_path / "data.csv"
    data.write_bytes(b"k,v,note,ts\na,1,x,1000\n" + last)
    src = FileSource("src", Properties("src", {"path": str(data)}))
    rows = []
    while (rb := src.read()) is not None:
        rows += rb.to_pylist()
    assert src.rejects() == []
    assert [r["v"] for r in rows] == ["1", '5" tv']


def test_csv_first_file_of_only_bad_records_does_not_fix_the_types(tmp_path):
    """The column types come from good records: a first file holding only records that are not
    UTF-8 leaves them to the next file (v stays BIGINT, so SUM(v) is an integer sum)."""
    (tmp_path / "d1.csv").write_bytes(b"k,v,note,ts\nal\xffpha,1,x,1000\nbe\xfeta,2,y,2000\n")
    (tmp_path / "d2.csv").write_bytes(b"k,v,note,ts\nalpha,3,x,3000\nalpha,4,y,4000\n")
    r, rows, dead = run_cli(tmp_path, tmp_path / "d*.csv", extra={"src.schema": "note STRING"})
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert rows == {"alpha": {"k": "alpha", "n": 2, "s": 7, "t": 7000}}
    assert [(line, raw) for line, raw, _ in dead] == [(2, b"al\xffpha,1,x,1000"), (3, b"be\xfeta,2,y,2000")]
    assert summary(r.stderr) == (2, 2)


# ------------------------------------------------------------------------------ in-process

@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_job_in_process_counts_and_dead_letters(tmp_path, monkeypatch, fmt, partitions):
    """Small chunks (16 KB): the first fixes the schema, the later ones take the other decoding
    paths (CSV with fixed types, the compiled JSON-lines decoder), bad records in many of them."""
    monkeypatch.setattr(files, "MIN_CHUNK_BYTES", 16 << 10)
    corpus = make_corpus(fmt, seed=71 + partitions, n=4000, bad_share=0.02)
    data = corpus.write(tmp_path / f"data.{fmt}")
    assert data.stat().st_size > 10 * files.MIN_CHUNK_BYTES
    src = FileSource("src", Properties("src", {"path": str(data), "schema": "v BIGINT",
                                               "event.time.field": "ts", "batch.size": "64"}))
    dead_path = tmp_path / "dead.jsonl"
    dead = DeadLetterFile(str(dead_path))
    job = vs.Job(SELECT, {"src": src}, partitions=partitions, dead_letter=dead)
    stats = job.run()
    dead.close()
    check_rows({row["k"]: row for row in job.result().to_pylist()}, corpus)
    check_dead(read_dead(dead_path), corpus, str(data))
    assert stats.records_rejected == stats.records_failed == len(corpus.bad)
    assert stats.records_read == corpus.good_count


def test_job_in_process_fail_batch_raises_job_error_with_the_position(tmp_path):
    corpus = make_corpus("jsonl", seed=81, n=100)
    data = corpus.write(tmp_path / "data.jsonl")
    src = FileSource("src", Properties("src", {"path": str(data), "schema": "v BIGINT",
                                               "event.time.field": "ts"}))
    job = vs.Job(SELECT, {"src": src}, failure_strategy="FailBatch")
    with pytest.raises(JobError, match=rf"bad input record at {re.escape(str(data))}:{min(corpus.bad)}:"):
        job.run()
    assert job.stats.records_rejected >= 1
