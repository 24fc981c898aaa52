"""Counts and errors from jobs tell the truth.

- A reader or writer that raises stops the job with a ``JobError`` naming it, the method and the
  cause (the connector's own exception chained), at 1, 2 and 4 partitions, under every failure
  strategy where it matters; no velostream thread outlives the job; ``stop()`` midway returns.
- ``records_emitted`` counts the rows the sink accepted; rows it refused are failed and
  dead-lettered (sink rows + dead-lettered rows = the query's rows, checked against DuckDB).
- ``velostream`` exits 0 / 1 / 2 as docs/CLI.md says, for ``run`` and ``validate``.
- ``velostream demo`` leaves (almost) nothing in the temporary directory.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

import velostream as vs
import velostream.cli as cli
from conftest import subprocess_env
from velostream.errors import ConnectError, JobError
from velostream.jobs import MemoryWriter

SQL = "SELECT k, x FROM t WHERE x > 0 OR x IS NULL"
STRATEGIES = ["LogAndContinue", "SendToDLQ", "FailBatch", "RetryWithBackoff"]


# ------------------------------------------------------------------------------------ helpers
def seeded_batches(seed: int, sizes=(700, 1, 0, 333, 1500, 64)) -> list[pa.RecordBatch]:
    """Batches of uneven sizes (an empty one too): strings with NULLs and non-ASCII, int64 with
    NULLs and the extremes."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        k = rng.choice(np.array(["a", "b", "é", "", "long key " * 3], dtype=object), n)
        k[rng.random(n) < 0.1] = None
        x = rng.integers(-1000, 1000, n)
        x[rng.random(n) < 0.05] = np.iinfo(np.int64).max
        x[rng.random(n) < 0.05] = np.iinfo(np.int64).min
        out.append(pa.RecordBatch.from_pydict(
            {"k": pa.array(k, pa.string()), "x": pa.array(x, pa.int64(), mask=rng.random(n) < 0.1)}))
    return out


def expected_rows(batches: list[pa.RecordBatch]) -> Counter:
    t = pa.Table.from_batches(batches)  # noqa: F841 - DuckDB reads it by name
    return Counter(duckdb.sql(SQL).fetchall())


def rows_in(batches) -> Counter:
    return Counter((r["k"], r["x"]) for rb in batches for r in rb.to_pylist())


def velostream_threads() -> list[str]:
    """Live threads the job may have started (partitions, the job, file read-ahead, metrics)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("velostream")]


def processor_for(partitions: int) -> str:
    return "v1" if partitions == 1 else "v2"  # as `velostream run --partitions N` does


class ScriptedReader:
    """A bounded reader of ``batches`` whose ``fail_in`` method raises ``self.error`` from its
    ``fail_at``-th call on."""

    def __init__(self, batches, fail_in=None, fail_at=1):
        self.batches = batches
        self.i = 0
        self.fail_in = fail_in
        self.fail_at = fail_at
        self.calls = Counter()
        self.error = RuntimeError(f"boom in {fail_in}")

    def _call(self, method):
        self.calls[method] += 1
        if method == self.fail_in and self.calls[method] >= self.fail_at:
            raise self.error

    def read(self):
        self._call("read")
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return self.batches[self.i - 1]

    def has_more(self):
        return self.i < len(self.batches)

    def commit(self):
        self._call("commit")

    def seek(self, position):
        self.i = position

    def close(self):
        pass


class FailingWriter(MemoryWriter):
    """A MemoryWriter whose ``fail_in`` method raises ``self.error`` on the calls ``refuse``
    says (a set of call numbers, or a seeded random share)."""

    def __init__(self, fail_in, refuse=None, share=0.0, seed=0, error=None):
        super().__init__()
        self.fail_in = fail_in
        self.refuse = refuse
        self.share = share
        self.rng = np.random.default_rng(seed)
        self.calls = Counter()
        self.error = error or OSError(f"disk gone in {fail_in}")

    def _call(self, method):
        self.calls[method] += 1
        if method != self.fail_in:
            return
        if (self.refuse is not None and self.calls[method] in self.refuse) or \
                (self.refuse is None and self.rng.random() < self.share):
            raise self.error

    def write_batch(self, batch):
        self._call("write_batch")
        super().write_batch(batch)

    def flush(self):
        self._call("flush")
        super().flush()


def job_for(reader, writer, partitions, strategy, dead=None):
    if strategy == "RetryWithBackoff":
        strategy = vs.RetryWithBackoff(max_retries=2, base_delay_s=0.001)
    if strategy == "SendToDLQ" and dead is None:
        dead = MemoryWriter()
    return vs.Job(SQL, {"t": reader}, writer, partitions=partitions,
                  processor=processor_for(partitions), failure_strategy=strategy, dead_letter=dead)


# ------------------------------------------------------------------------ failing connectors
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("method,fail_at", [("read", 3), ("commit", 1)])
def test_a_failing_reader_stops_the_job_with_a_job_error(partitions, strategy, method, fail_at):
    reader = ScriptedReader(seeded_batches(1), fail_in=method, fail_at=fail_at)
    sink = MemoryWriter()
    job = job_for(reader, sink, partitions, strategy)
    with pytest.raises(JobError) as info:
        job.run()
    err = info.value
    assert f"reader 't' failed in {method}()" in str(err)
    assert repr(reader.error) in str(err)  # the cause, named
    assert err.__cause__ is reader.error  # and chained
    if method == "read":  # a reader failure is not a record: nothing dead-lettered or committed
        assert job.stats.records_failed == 0 and sink.batches == []
    # commit() fails after the sink committed: the rows stay written, and counted
    assert job.stats.records_emitted == sum(rb.num_rows for rb in sink.batches)
    assert velostream_threads() == []


def test_a_reader_raising_a_velostream_error_keeps_its_type(partitions):
    reader = ScriptedReader(seeded_batches(2), fail_in="read", fail_at=2)
    reader.error = ConnectError("broker gone")
    with pytest.raises(ConnectError, match="broker gone"):
        job_for(reader, MemoryWriter(), partitions, "LogAndContinue").run()
    assert velostream_threads() == []


@pytest.mark.parametrize("commit_interval_s", [None, 0.0])
@pytest.mark.parametrize("strategy", ["FailBatch", "RetryWithBackoff"])
def test_a_refused_write_fails_the_job_under_fail_batch_and_retry(partitions, strategy,
                                                                   commit_interval_s):
    writer = FailingWriter("write_batch", refuse=range(3, 10_000))
    job = job_for(ScriptedReader(seeded_batches(3)), writer, partitions, strategy)
    job.commit_interval_s = commit_interval_s  # 0: a commit after every batch
    with pytest.raises(JobError, match=rf"sink write failed \({strategy}\)") as info:
        job.run()
    assert "writer 'FailingWriter' failed in write_batch()" in str(info.value)
    assert info.value.__cause__ is writer.error
    if commit_interval_s is None:
        assert writer.batches == []  # rolled back
    # rows rolled back are not emitted; rows committed before the failure are
    assert job.stats.records_emitted == sum(rb.num_rows for rb in writer.batches)
    assert velostream_threads() == []


@pytest.mark.parametrize("strategy", ["LogAndContinue", "SendToDLQ"])
@pytest.mark.parametrize("seed", [4, 5])
def test_records_emitted_counts_only_the_rows_the_sink_accepted(partitions, strategy, seed):
    batches = seeded_batches(seed)
    writer = FailingWriter("write_batch", share=0.4, seed=seed)
    dead = MemoryWriter() if strategy == "SendToDLQ" else None
    job = job_for(ScriptedReader(batches), writer, partitions, strategy, dead=dead)
    stats = job.run()
    accepted = rows_in(writer.batches)
    refused = rows_in(dead.batches) if dead is not None else rows_in(
        rb for reason, rb in job.dead_letters if reason.startswith("sink write failed"))
    assert stats.records_emitted == sum(accepted.values())
    assert stats.records_failed == sum(refused.values())
    assert accepted + refused == expected_rows(batches)  # every row written or dead-lettered
    assert velostream_threads() == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_failing_flush_fails_the_job_under_every_strategy(partitions, strategy):
    # a flush that fails without saying which rows were lost: neither emitted nor failed is true
    writer = FailingWriter("flush", refuse={1})
    job = job_for(ScriptedReader(seeded_batches(6)), writer, partitions, strategy)
    with pytest.raises(JobError) as info:
        job.run()
    assert "writer 'FailingWriter' failed in flush()" in str(info.value)
    assert info.value.__cause__ is writer.error
    assert velostream_threads() == []


class PartialDelivery(Exception):
    """A flush failure that says how many rows did not arrive (like Kafka's DeliveryError)."""

    def __init__(self, failed):
        super().__init__(f"{failed} rows not delivered")
        self.failed = failed


def test_undelivered_rows_at_flush_are_failed_not_emitted(partitions):
    batches = seeded_batches(7)
    writer = FailingWriter("flush", refuse={1}, error=PartialDelivery(5))
    stats = job_for(ScriptedReader(batches), writer, partitions, "LogAndContinue").run()
    total = sum(expected_rows(batches).values())
    assert stats.records_emitted == total - 5 and stats.records_failed == 5


# -------------------------------------------------------------------------------- stop midway
class EndlessReader:
    """An unbounded reader. ``sleeps``: each read takes 10 ms and returns a batch; ``blocks``:
    each read waits 200 ms for records that never come (a long poll); ``raises``: the 5th read
    raises."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.reads = 0
        self.batch = seeded_batches(8, sizes=(50,))[0]
        self.error = RuntimeError("connection reset")

    def read(self):
        self.reads += 1
        if self.behaviour == "blocks":
            threading.Event().wait(0.2)
            return None
        if self.behaviour == "raises" and self.reads >= 5:
            raise self.error
        time.sleep(0.01)
        return self.batch

    def has_more(self):
        return True

    def commit(self):
        pass

    def seek(self, position):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("behaviour", ["sleeps", "blocks", "raises"])
def test_stop_midway_returns(partitions, behaviour):
    reader = EndlessReader(behaviour)
    job = vs.Job(SQL, {"t": reader}, MemoryWriter(), partitions=partitions,
                 processor=processor_for(partitions)).start()
    started = 5 if behaviour == "raises" else 3  # "raises": its failing read has begun
    deadline = time.monotonic() + 10
    while reader.reads < started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.reads >= started
    job.stop()
    error = None
    try:
        job.join(timeout=10)  # TimeoutError if the job did not stop
    except JobError as exc:
        error = exc
    assert not job._thread.is_alive()
    if behaviour == "raises":
        assert error is not None and error.__cause__ is reader.error
        assert "reader 't' failed in read()" in str(error)
    else:
        assert error is None
        assert job.stats.records_emitted == sum(rb.num_rows for rb in job.sink.batches)
    assert velostream_threads() == []


# ---------------------------------------------------------------------------------- the command
def velostream(*args, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "velostream", *args], capture_output=True,
                          text=True, cwd=cwd, env=subprocess_env(env), timeout=120)


@pytest.fixture(scope="module")
def readings(tmp_path_factory) -> Path:
    """A CSV of 3,000 rows whose row 2,500 has a value that is not a DOUBLE."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(9)
    temp = [f"{v:.2f}" for v in rng.normal(20, 5, 3000)]
    temp[2500] = "oops"
    pcsv.write_csv(pa.table({"sensor": rng.choice(["s1", "s2", "s3"], 3000),
                             "temp": temp, "ts": np.arange(3000) * 1000}), d / "readings.csv")
    return d


def job_text(select: str, **props) -> str:
    props = {"readings.type": "file_source", "readings.path": "readings.csv",
             "readings.schema": "temp DOUBLE", **props}
    return select + "\nWITH (" + ", ".join(f"'{k}' = '{v}'" for k, v in props.items()) + ")"


GOOD = "SELECT sensor, temp FROM readings WHERE temp > 20"
START_ERRORS = {  # the job cannot start: 2, for run and validate alike
    "bad SQL": (job_text("SELECT sensor, temp FRM readings"), "error in SQL"),
    "unknown column in the CSV header": (job_text("SELECT sensor, tmep FROM readings"),
                                         "unknown column 'tmep'"),
    "unknown source": (job_text("SELECT sensor FROM sensors"), "neither the source"),
    "bad failure.strategy": (job_text(GOOD, **{"failure.strategy": "Sometimes"}),
                             "unknown failure strategy"),
    "bad commit.interval.ms": (job_text(GOOD, **{"commit.interval.ms": "soon"}),
                               "commit.interval.ms must be an integer"),
    "missing input file": (job_text(GOOD, **{"readings.path": "nowhere.csv"}), "cannot read"),
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", list(START_ERRORS))
def test_a_job_that_cannot_start_exits_2(readings, case, command):
    text, message = START_ERRORS[case]
    r = velostream(command, text, *(["-q", "--partitions", "2"] if command == "run" else []),
                   cwd=readings)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_good_job_exits_0(readings, command):
    r = velostream(command, job_text(GOOD), *(["-q"] if command == "run" else []), cwd=readings)
    assert r.returncode == 0, r.stderr
    if command == "run":
        expected = duckdb.sql(f"SELECT count(*) FROM read_csv('{readings / 'readings.csv'}', "
                              "all_varchar=true) WHERE TRY_CAST(temp AS DOUBLE) > 20").fetchall()[0][0]
        assert f"{expected:,} rows out" in r.stderr


@pytest.mark.parametrize("partitions", ["1", "2"])
@pytest.mark.parametrize("case", ["unwritable sink", "input fails mid-way"])
def test_a_job_that_fails_while_running_exits_1(readings, case, partitions):
    if case == "unwritable sink":  # /dev/full opens, then every write fails (ENOSPC)
        text = job_text("CREATE STREAM out AS " + GOOD, **{"out.type": "file_sink",
                                                            "out.path": "/dev/full",
                                                            "out.format": "jsonl"})
        message = "writer 'out' failed in flush()"
    else:  # the bad value of row 2,500 under FailBatch
        text = job_text(GOOD, **{"failure.strategy": "FailBatch", "readings.batch.size": "500"})
        message = "bad input record at readings.csv:2502"
    r = velostream("run", "-q", "--partitions", partitions, text, cwd=readings)
    assert r.returncode == 1, r.stderr
    assert "velostream: job failed:" in r.stderr and message in r.stderr
    assert "Traceback" not in r.stderr


def test_run_leaves_no_thread_behind_the_metrics_server_included(readings, monkeypatch, capsys):
    monkeypatch.chdir(readings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for text, code in [(job_text(GOOD), 0),
                       (job_text(GOOD, **{"failure.strategy": "FailBatch"}), 1)]:
        assert cli.main(["run", "-q", "--partitions", "2", "--metrics-port", str(port), text]) == code
        assert velostream_threads() == []
        with socket.socket() as s:  # the port is free again
            s.bind(("127.0.0.1", port))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_demo_leaves_nothing_in_the_temporary_directory(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = velostream("demo", "--records", "20000", cwd=tmp_path, env={"TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    assert "S3b:" in r.stdout and "20,000 records in" in r.stdout
    assert dir_bytes(tmp) < 10_000_000


@pytest.mark.parametrize("interruption", [JobError("sink gone"), KeyboardInterrupt()])
def test_demo_removes_its_directory_on_an_error_or_ctrl_c(tmp_path, monkeypatch, capsys,
                                                          interruption):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    made = []

    def failing_build_job(spec, **kw):  # the data files are written by now
        made.extend(tmp.iterdir())
        raise interruption

    monkeypatch.setattr(cli, "build_job", failing_build_job)
    if isinstance(interruption, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            cli.main(["demo", "--records", "1000"])
    else:
        assert cli.main(["demo", "--records", "1000"]) == 1
    assert made and list(tmp.iterdir()) == []
