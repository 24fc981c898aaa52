"""Operations: the Prometheus endpoint a job serves (scraped over HTTP), ``velostream --version``,
sub-command help, the parser's refusals, exit codes and what ``demo`` leaves behind."""
from __future__ import annotations

import importlib.metadata
import socket
import urllib.request
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_cli import velostream
from velostream import cli
from velostream.jobs.spec import JobSpec
from velostream.metrics import LATENCY_BUCKETS, serve

ROWS, BAD = 20_000, (7, 5001, 19_998)


@pytest.fixture(scope="module")
def readings(tmp_path_factory) -> Path:
    """A CSV of ROWS rows (seeded; NULL temperatures) of which the BAD ones have a temperature
    that is not a number (bad records)."""
    d = tmp_path_factory.mktemp("ops")
    rng = np.random.default_rng(5)
    temp = [None if rng.random() < 0.03 else f"{v:.2f}" for v in rng.normal(20, 5, ROWS)]
    for i in BAD:
        temp[i] = "n/a"
    pcsv.write_csv(pa.table({"sensor": rng.choice(["s1", "s2", "s3", "s4"], ROWS),
                             "temp": pa.array(temp, pa.string()),
                             "ts": np.arange(ROWS) * 100}), d / "readings.csv")
    return d


def scrape(port: int) -> dict:
    """{(name, frozenset(labels)): value} of every sample the endpoint serves."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_metrics_endpoint_of_a_job(readings, tmp_path, partitions):
    out = tmp_path / "out.jsonl"
    dead = tmp_path / "dead.jsonl"
    spec = JobSpec.from_sql(
        "CREATE STREAM hot AS SELECT sensor, temp FROM readings WHERE temp > 20\nWITH ("
        f"'readings.type' = 'file_source', 'readings.path' = '{readings / 'readings.csv'}', "
        "'readings.schema' = 'temp DOUBLE', 'readings.batch.size' = '3000', "
        f"'hot.type' = 'file_sink', 'hot.path' = '{out}', 'hot.format' = 'jsonl', "
        f"'failure.strategy' = 'LogAndContinue', 'dead.letter.path' = '{dead}')", env={})
    job = cli.build_job(spec, partitions=partitions, bounded=True)
    port = free_port()
    server = serve(job, port, name="hot", source="readings", sink="hot")
    try:
        stats = job.run()
        cli._close_connectors(job)
        m = scrape(port)
    finally:
        server.stop()
    job_l = ("job", "hot")

    def value(name, **labels):
        return m[(name, frozenset({job_l, *labels.items()}))]

    want_out = duckdb.sql(f"SELECT count(*) FROM read_csv('{readings / 'readings.csv'}', "
                          "all_varchar=true) WHERE TRY_CAST(temp AS DOUBLE) > 20").fetchall()[0][0]
    assert value("velostream_records_in_total", source="readings") == ROWS - len(BAD)
    assert value("velostream_records_rejected_total", source="readings") == len(BAD)
    assert value("velostream_records_out_total", sink="hot") == want_out == stats.records_emitted
    assert len(dead.read_text().splitlines()) == len(BAD)
    # every partition thread is there, and together they processed every record read
    per_partition = {dict(k)["partition"]: v for (n, k), v in m.items()
                     if n == "velostream_partition_records_total"}
    assert sorted(per_partition) == [str(i) for i in range(partitions)]
    assert sum(per_partition.values()) == ROWS - len(BAD)
    # the latency histogram counts rows: cumulative buckets, +Inf = _count = rows written
    buckets = [(float(dict(k)["le"]), v) for (n, k), v in m.items()
               if n == "velostream_latency_seconds_bucket"]
    buckets.sort()
    assert [b for b, _ in buckets] == list(LATENCY_BUCKETS) + [float("inf")]
    counts = [c for _, c in buckets]
    assert counts == sorted(counts) and counts[-1] == want_out
    assert value("velostream_latency_seconds_count") == want_out
    assert value("velostream_latency_seconds_sum") > 0
    # prometheus_client's process collector
    assert m[("process_resident_memory_bytes", frozenset())] > 10_000_000
    assert ("process_cpu_seconds_total", frozenset()) in m


# ---------------------------------------------------------------------------------------- CLI

def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"velostream {importlib.metadata.version('velostream')}"


@pytest.mark.parametrize("command", ["run", "explain", "validate", "demo"])
def test_every_subcommand_help_has_examples(command, capsys):
    """(``velostream bench --help`` is the benchmark suite's own help: its arguments are the
    suite's, see bench/README.md.)"""
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"velostream {command}" in text.split("examples:")[1]


@pytest.mark.parametrize("argv, names", [
    (["--log-level", "LOUD", "validate", "x.sql"], "--log-level"),
    (["frobnicate"], "frobnicate"),
    (["run", "job.sql", "--partitions", "0"], "--partitions"),
    (["demo", "--records", "many"], "--records")])
def test_the_parser_refuses_unknown_choices(argv, names, capsys, monkeypatch):
    monkeypatch.delenv("VELOSTREAM_LOG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: velostream") and names in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["run", "validate"])
def test_unknown_csv_column_exits_2_naming_line_and_column(readings, command):
    text = ("SELECT sensor,\n       tmep FROM readings\nWITH ('readings.type' = 'file_source', "
            "'readings.path' = 'readings.csv')")
    r = velostream(command, text, *(["-q"] if command == "run" else []), cwd=readings)
    assert r.returncode == 2, r.stderr
    assert "unknown column 'tmep'" in r.stderr and "line 2, column 8" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_bad_log_level_in_the_environment_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("VELOSTREAM_LOG", "chatty")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["validate", "x.sql"])
    assert exit_.value.code == 2 and "VELOSTREAM_LOG" in capsys.readouterr().err


def test_demo_of_100000_records_leaves_at_most_10_mb(tmp_path):
    """In the temporary directory (TMPDIR) and in the working directory alike."""
    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    tmp.mkdir()
    cwd.mkdir()
    r = velostream("demo", "--records", "100000", "--partitions", "1", cwd=cwd,
                   env={"TMPDIR": str(tmp)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "100,000 records in" in r.stdout
    left = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
    assert left <= 10_000_000, sorted(tmp_path.rglob("*"))


@pytest.mark.parametrize("partitions", [1, 2])
def test_a_job_without_a_dead_letter_output_keeps_no_failed_rows(tmp_path, caplog, partitions):
    """`velostream run` without dead.letter.path: late rows and rows without event time are
    counted and each kind logged once, but kept nowhere (docs/CLI.md), so a long run does not
    hold every late row it ever saw."""
    n = 3000
    ts = [i * 1000 - (90_000 if i % 7 == 3 else 0) for i in range(n)]  # every 7th row is late
    lines = ["sensor,temp,ts"] + [f"s{i % 3},{i % 40},{'' if i % 11 == 5 else t}"
                                  for i, t in enumerate(ts)]
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    spec = JobSpec.from_sql(
        "SELECT sensor, COUNT(*) AS n FROM r GROUP BY sensor WINDOW TUMBLING(1m)\nWITH ("
        f"'r.type' = 'file_source', 'r.path' = '{tmp_path / 'r.csv'}', 'r.schema' = 'ts BIGINT', "
        "'r.event.time.field' = 'ts', 'r.batch.size' = '256', 'failure.strategy' = 'LogAndContinue')",
        env={})
    job = cli.build_job(spec, partitions=partitions, bounded=True)
    with caplog.at_level("WARNING", logger="velostream"):
        stats = job.run()
    cli._close_connectors(job)
    assert stats.records_late > 100 and stats.records_failed > 100
    assert job.dead_letters == [] and job.engine.dead_letters == []
    set_aside = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(set_aside) == 2, set_aside  # one per kind: late, no event time
    assert any("late" in m for m in set_aside) and any("event time" in m for m in set_aside)
