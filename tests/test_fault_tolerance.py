"""Fault tolerance on Kafka with real processes and real signals: restarts, kill -9 failover and
a rebalance when a process joins. Nothing expected by DuckDB may be missing from the output;
duplicates are allowed (at-least-once) and counted, wrong rows (partial windows) are not."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from conftest import subprocess_env
from test_cli import job_file, velostream
from test_cli_kafka import _free_port, _metrics
from velostream.datagen import market_data

GROUP = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "300"}  # a dead member: 2 s
S3A = """CREATE STREAM out AS
SELECT trader_id, symbol, COUNT(*) AS trade_count, AVG(price) AS avg_price,
       SUM(quantity) AS total_quantity, _WINDOW_START AS ws
FROM trades
GROUP BY trader_id, symbol
WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)"""
DUCK_S3A = """SELECT trader_id, symbol, COUNT(*), AVG(price), SUM(quantity), trade_time // 60000 * 60000
FROM md GROUP BY ALL"""
LONG = S3A.replace("INTERVAL '1' MINUTE", "INTERVAL '2' HOUR")  # snapshotted, not replayed
DUCK_LONG = DUCK_S3A.replace("60000", "7200000")
TOTALS = """CREATE STREAM out AS
SELECT trader_id, symbol, COUNT(*) AS trade_count, AVG(price) AS avg_price,
       SUM(quantity) AS total_quantity, MAX(trade_time) AS ws
FROM trades GROUP BY trader_id, symbol EMIT FINAL"""
DUCK_TOTALS = """SELECT trader_id, symbol, COUNT(*), AVG(price), SUM(quantity), MAX(trade_time)
FROM md GROUP BY ALL"""


def _data(n: int, traders: int = 40, symbols: int = 8):
    import duckdb
    table = pa.Table.from_batches(market_data(n, traders=traders, symbols=symbols)).drop_columns(["_TIMESTAMP"])
    con = duckdb.connect()
    con.register("md", table)
    return table, {q: con.sql(sql).fetchall()
                   for q, sql in (("s3a", DUCK_S3A), ("totals", DUCK_TOTALS), ("long", DUCK_LONG))}


QUERIES = {"s3a": S3A, "totals": TOTALS, "long": LONG}


class Scenario:
    """An input topic keyed trader_id|symbol, an output topic, a job file, a checkpoint dir."""

    def __init__(self, broker, tmp_path, sql, name):
        self.broker = broker
        self.topic = broker.unique_topic(f"ft-in-{name}", partitions=4)
        self.out = broker.unique_topic(f"ft-out-{name}", partitions=4)
        self.group = f"ft-{name}-{time.time_ns()}"
        props = {"trades.type": "kafka_source", "trades.topic": self.topic,
                 "trades.bootstrap.servers": broker.bootstrap, "trades.group.id": self.group,
                 **{f"trades.{k}": v for k, v in GROUP.items()},
                 "out.type": "kafka_sink", "out.topic": self.out,
                 "out.bootstrap.servers": broker.bootstrap,
                 "checkpoint.dir": str(tmp_path / "ckpt"), "commit.interval.ms": "300"}
        self.job = job_file(tmp_path, sql, props, name=f"{name}.sql")
        self.procs: list[subprocess.Popen] = []
        self.tmp_path = tmp_path

    def produce(self, rows, rate_per_s=None):
        """All rows (keyed trader_id|symbol), or at ``rate_per_s`` in the background."""
        values = [orjson.dumps(r) for r in rows]
        keys = [f"{r['trader_id']}|{r['symbol']}".encode() for r in rows]
        if rate_per_s is None:
            self.broker.produce(self.topic, values, keys=keys)
            return None

        def run():
            chunk = max(1, rate_per_s // 10)
            for i in range(0, len(values), chunk):
                self.broker.produce(self.topic, values[i:i + chunk], keys=keys[i:i + chunk])
                time.sleep(0.1)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def start(self, *extra) -> tuple[subprocess.Popen, int]:
        port = _free_port()
        p = subprocess.Popen([sys.executable, "-m", "velostream", "run", str(self.job), "-q",
                              "--metrics-port", str(port), *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             cwd=self.tmp_path, env=subprocess_env())
        self.procs.append(p)
        return p, port

    def finish(self) -> subprocess.CompletedProcess:
        """A bounded run with the same group: resumes from the checkpoints and committed offsets,
        reads to the end and closes every window (end of input)."""
        r = velostream("run", str(self.job), "--bounded", "--partitions", "2", timeout=180)
        assert r.returncode == 0, r.stderr
        return r

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def output(self) -> list[tuple]:
        rows = [orjson.loads(m.value()) for m in self.broker.consume_all(self.out, timeout=30)]
        cols = ("trader_id", "symbol", "trade_count", "avg_price", "total_quantity", "ws")
        return [tuple(r[c] for c in cols) for r in rows]


def _norm(row):
    return row[:3] + (round(row[3], 6),) + row[4:]


def check(got: list[tuple], expected: list[tuple]) -> int:
    """Every expected row is present; every row present is an expected one; returns duplicates."""
    want = Counter(_norm(r) for r in expected)
    have = Counter(_norm(r) for r in got)
    missing = want - have
    assert not missing, f"{sum(missing.values())} results lost, e.g. {list(missing)[:3]}"
    wrong = set(have) - set(want)
    assert not wrong, f"{len(wrong)} wrong rows (partial results), e.g. {list(wrong)[:3]}"
    return sum(have.values()) - sum(want.values())


def wait_metric(port, name, pred, timeout=60, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited: {proc.stderr.read()}")
        try:
            v = _metrics(port).get(name)
        except OSError:
            v = None
        if v is not None and pred(v):
            return v
        time.sleep(0.2)
    raise AssertionError(f"{name} never satisfied the condition")


IN = 'velostream_records_in_total{job="out",source="trades"}'


@pytest.mark.parametrize("query", ["s3a", "totals", "long"])
def test_restart_resumes_where_it_left_off(kafka_broker, tmp_path, query):
    """SIGTERM in the middle of the input, then a restart: nothing lost, duplicates bounded.
    s3a: one-minute windows rebuilt by replay; totals: GROUP BY state snapshotted; long:
    two-hour windows, longer than checkpoint.replay.max.ms, snapshotted."""
    n = 12_000
    table, expected = _data(n)
    rows = table.to_pylist()
    sc = Scenario(kafka_broker, tmp_path, QUERIES[query], f"restart-{query}")
    sc.produce(rows[: n // 2])
    p, port = sc.start("--partitions", "2")
    try:
        wait_metric(port, IN, lambda v: v >= n // 2, proc=p)
        assert _metrics(port)['velostream_source_partitions_assigned{job="out"}'] == 4
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        sc.produce(rows[n // 2:])
        r = sc.finish()
    finally:
        sc.kill_all()
    dups = check(sc.output(), expected[query])
    # a restart replays at most the windows open at the stop (one minute = 60 records per
    # partition here); checkpointed state replays nothing
    assert dups <= (4 * 60 * 2 if query == "s3a" else 0), dups
    print(f"restart {query}: {dups} duplicate rows; {r.stderr.strip().splitlines()[-1]}")


@pytest.mark.parametrize("query", ["s3a", "totals"])
def test_kill_9_failover_to_the_other_process(kafka_broker, tmp_path, query):
    """Two processes split a 4-partition topic while it is being produced; one is killed with
    SIGKILL mid-input; the other takes its partitions over (restoring their checkpoints)."""
    n = 24_000
    table, expected = _data(n)
    sc = Scenario(kafka_broker, tmp_path, QUERIES[query], f"kill-{query}")
    try:
        a, port_a = sc.start()
        b, port_b = sc.start()
        producer = sc.produce(table.to_pylist(), rate_per_s=4000)  # about 6 s of input
        wait_metric(port_a, IN, lambda v: v > 0, proc=a)
        wait_metric(port_b, IN, lambda v: v > 0, proc=b)  # both own partitions
        time.sleep(1.5)
        a.kill()  # SIGKILL: no flush, no commit, no checkpoint
        a.wait()
        producer.join(60)
        # b takes over a's partitions after the session timeout and reads everything
        wait_metric(port_b, IN, lambda v: v >= n // 2, proc=b, timeout=90)
        time.sleep(2)
        b.send_signal(signal.SIGTERM)
        _, err = b.communicate(timeout=60)
        assert b.returncode == 0, err
        sc.finish()
    finally:
        sc.kill_all()
    dups = check(sc.output(), expected[query])
    print(f"kill -9 {query}: {dups} duplicate rows")


def test_rebalance_when_a_third_process_joins(kafka_broker, tmp_path):
    n = 24_000
    table, expected = _data(n)
    sc = Scenario(kafka_broker, tmp_path, S3A, "join")
    try:
        a, port_a = sc.start()
        b, port_b = sc.start()
        producer = sc.produce(table.to_pylist(), rate_per_s=4000)
        wait_metric(port_a, IN, lambda v: v > 0, proc=a)
        wait_metric(port_b, IN, lambda v: v > 0, proc=b)
        c, port_c = sc.start()  # the group rebalances: partitions move to c
        wait_metric(port_c, IN, lambda v: v > 0, proc=c, timeout=60)
        producer.join(60)
        time.sleep(2)
        # one at a time, as a rolling stop: each leaver's partitions move to the others (another
        # rebalance to survive). All at once trips a Tansu bug: a generation whose leader left
        # before SyncGroup is never abandoned, and the next member waits forever.
        for p in (c, b, a):
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            time.sleep(2)
        sc.finish()
    finally:
        sc.kill_all()
    dups = check(sc.output(), expected["s3a"])
    print(f"join: {dups} duplicate rows")


def test_reset_starts_from_scratch(kafka_broker, tmp_path):
    table, expected = _data(4_000)
    sc = Scenario(kafka_broker, tmp_path, S3A, "reset")
    sc.produce(table.to_pylist())
    first = sc.finish()
    assert "done: 4,000 records in" in first.stderr
    again = velostream("run", str(sc.job), "--bounded", timeout=120)  # everything was committed
    assert again.returncode == 0 and "done: 0 records in" in again.stderr, again.stderr
    reset = velostream("run", str(sc.job), "--bounded", "--reset", timeout=120)
    assert reset.returncode == 0 and "done: 4,000 records in" in reset.stderr, reset.stderr
    out = sc.output()
    assert Counter(map(_norm, out)) == Counter(map(_norm, expected["s3a"] * 2))  # two full runs


def test_a_topic_not_keyed_by_the_group_by_columns_is_refused(kafka_broker, tmp_path):
    table, _ = _data(2_000)
    sc = Scenario(kafka_broker, tmp_path, S3A, "unkeyed")
    rows = table.to_pylist()
    kafka_broker.produce(sc.topic, [orjson.dumps(r) for r in rows],
                         keys=[str(i).encode() for i in range(len(rows))])  # keyed by row number
    r = velostream("run", str(sc.job), "--bounded", timeout=120)
    assert r.returncode == 1, r.stderr
    assert "not keyed by trader_id | symbol" in r.stderr and "fault.tolerance" in r.stderr


def test_a_topic_keyed_by_some_group_by_columns_declares_them(kafka_broker, tmp_path):
    """Keyed by trader_id only: every (trader_id, symbol) group still lives in one partition."""
    table, expected = _data(4_000)
    sc = Scenario(kafka_broker, tmp_path, S3A, "bytrader")
    rows = table.to_pylist()
    kafka_broker.produce(sc.topic, [orjson.dumps(r) for r in rows],
                         keys=[r["trader_id"].encode() for r in rows])
    sc.job.write_text(sc.job.read_text().replace(
        "'trades.group.id'", "'trades.key.columns' = 'trader_id', 'trades.group.id'"))
    r = sc.finish()
    assert "done: 4,000 records in" in r.stderr
    assert check(sc.output(), expected["s3a"]) == 0


def test_without_checkpoint_files_the_committed_offsets_alone_resume_open_windows(kafka_broker, tmp_path):
    """Python API, no checkpoint directory: the Kafka committed offset must stay at the oldest
    record of an open window, also through commits made while the source is idle, so that a
    crash (kill -9) loses nothing."""
    import velostream as vs
    from velostream.io.base import Properties
    from velostream.io.kafka import KafkaSink, KafkaSource
    table, expected = _data(6_000)
    sc = Scenario(kafka_broker, tmp_path, S3A, "nodir")
    sc.produce(table.to_pylist())
    sql = S3A.split("AS\n", 1)[1]
    # a short rebalance timeout too: the killed member is dropped from the group quickly
    src_props = {"topic": sc.topic, "bootstrap.servers": kafka_broker.bootstrap,
                 "group.id": sc.group, **GROUP, "max.poll.interval.ms": "6000"}
    sink_props = {"topic": sc.out, "bootstrap.servers": kafka_broker.bootstrap}
    first = f"""
import sys, time
import velostream as vs
from velostream.io.base import Properties
from velostream.io.kafka import KafkaSink, KafkaSource
src = KafkaSource("trades", Properties("trades", {src_props!r}))
sink = KafkaSink("out", Properties("out", {sink_props!r}), ["trader_id", "symbol"])
job = vs.Job({sql!r}, {{"trades": src}}, sink, commit_interval_s=0.2).start()
while job.stats.records_read < 6000:
    time.sleep(0.05)
commits = job.stats.commits
while job.stats.commits < commits + 3:  # commits while the source is idle
    time.sleep(0.05)
print("idle commits done", flush=True)
time.sleep(60)
"""
    p = subprocess.Popen([sys.executable, "-c", first], stdout=subprocess.PIPE, text=True,
                         cwd=tmp_path, env=subprocess_env())
    try:
        assert p.stdout.readline().strip() == "idle commits done"
    finally:
        p.kill()  # a crash: nothing is flushed or committed on the way out
        p.wait()
    src = KafkaSource("trades", Properties("trades", src_props), bounded=True)
    sink = KafkaSink("out", Properties("out", sink_props), ["trader_id", "symbol"])
    stats = vs.Job(sql, {"trades": src}, sink).run()
    src.close()
    sink.close()
    assert stats.records_read > 0  # the open windows were replayed
    assert check(sc.output(), expected["s3a"]) == 0


CASCADE = """CREATE STREAM per_minute AS
SELECT trader_id, symbol, COUNT(*) AS n, SUM(quantity) AS q
FROM trades GROUP BY trader_id, symbol WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE);
CREATE STREAM out AS
SELECT trader_id, symbol, SUM(n) AS trade_count, SUM(q) AS total_quantity, _WINDOW_START AS ws
FROM per_minute GROUP BY trader_id, symbol WINDOW TUMBLING(5m)"""
DUCK_CASCADE = """SELECT trader_id, symbol, COUNT(*), SUM(quantity), trade_time // 300000 * 300000
FROM md GROUP BY ALL"""


def kill_9_mid_input_and_finish(sc: Scenario, rows: list, in_metric: str,
                                partitions: int) -> None:
    """Half the rows in, the job running live at ``partitions`` (its keyed nodes split over
    them), SIGKILL after a few checkpoints of open windows; then the other half and a restarted
    bounded run of the same job at 2 partitions (``Scenario.finish``) to the end: its state
    moves to the new partition count when it differs."""
    n = len(rows)
    try:
        sc.produce(rows[: n // 2])
        p, port = sc.start("--partitions", str(partitions))
        wait_metric(port, in_metric, lambda v: v >= n // 4, proc=p)
        time.sleep(1.0)  # a few commits (every 300 ms) with open windows in the checkpoint
        p.kill()  # SIGKILL: no flush, no last commit
        p.wait()
        assert list((sc.tmp_path / "ckpt").glob("pipeline-*.ckpt")), \
            "no pipeline checkpoint written"
        sc.produce(rows[n // 2:])
        sc.finish()
    finally:
        sc.kill_all()


def assert_every_window_once(broker, topic: str, cols: tuple, expected: list) -> None:
    """The output topic holds each expected window row, and no partial or wrong one."""
    got = Counter(tuple(orjson.loads(m.value())[c] for c in cols)
                  for m in broker.consume_all(topic, timeout=30))
    want = Counter(tuple(r) for r in expected)
    missing = want - got
    assert not missing, f"{sum(missing.values())} windows lost, e.g. {list(missing)[:3]}"
    wrong = set(got) - set(want)
    assert not wrong, f"{len(wrong)} partial or wrong windows, e.g. {list(wrong)[:3]}"


def test_kill_9_of_a_two_statement_pipeline_loses_nothing(kafka_broker, tmp_path):
    """A pipeline job (docs/SQL.md §8) checkpoints its whole graph with its read positions at
    each commit: killed with SIGKILL mid-input and restarted at another partition count, no
    window is lost or partial."""
    import duckdb
    n = 20_000
    table = pa.Table.from_batches(market_data(n, traders=40, symbols=8)).drop_columns(["_TIMESTAMP"])
    con = duckdb.connect()
    con.register("md", table)
    expected = con.sql(DUCK_CASCADE).fetchall()
    sc = Scenario(kafka_broker, tmp_path, CASCADE, "pipeline-kill")
    kill_9_mid_input_and_finish(sc, table.to_pylist(), IN, partitions=1)
    assert_every_window_once(kafka_broker, sc.out,
                             ("trader_id", "symbol", "trade_count", "total_quantity", "ws"),
                             expected)


JOIN_WINDOWS = """CREATE TABLE desks (trader_id VARCHAR, desk VARCHAR, PRIMARY KEY (trader_id));
CREATE STREAM out AS
SELECT d.desk, t.symbol, COUNT(*) AS trade_count, SUM(t.quantity) AS total_quantity,
       _WINDOW_START AS ws
FROM trades t JOIN desks d ON t.trader_id = d.trader_id
GROUP BY d.desk, t.symbol WINDOW TUMBLING (t.trade_time, INTERVAL '5' MINUTE)"""
DUCK_JOIN_WINDOWS = """SELECT d.desk, m.symbol, COUNT(*), SUM(m.quantity),
    m.trade_time // 300000 * 300000 FROM md m JOIN desks d ON m.trader_id = d.trader_id
GROUP BY ALL"""


def test_kill_9_of_a_join_job_loses_nothing(kafka_broker, tmp_path):
    """A Kafka stream joined with a table read from a file, then windowed (docs/SQL.md §9): the
    checkpoint holds the join's table and the open windows with the read positions, so a job
    killed with SIGKILL mid-input and restarted loses no window and emits no partial one."""
    import duckdb
    n = 20_000
    table = pa.Table.from_batches(market_data(n, traders=40, symbols=8)).drop_columns(["_TIMESTAMP"])
    traders = sorted(set(table.column("trader_id").to_pylist()))
    desks = pa.table({"trader_id": traders, "desk": [f"D{i % 3}" for i in range(len(traders))]})
    desks_csv = tmp_path / "desks.csv"
    pacsv.write_csv(desks, desks_csv)
    con = duckdb.connect()
    con.register("md", table)
    con.register("desks", desks)
    expected = con.sql(DUCK_JOIN_WINDOWS).fetchall()
    sc = Scenario(kafka_broker, tmp_path, JOIN_WINDOWS, "join-kill")
    # the table's source joins the job's one WITH (docs/SQL.md §8: one configuration); the
    # trades' event time is their trade_time, the time the join's rows carry and the window reads
    sc.job.write_text(sc.job.read_text().replace(
        "WITH (", f"WITH ('desks.type' = 'file_source', 'desks.path' = '{desks_csv}', "
                  "'trades.event.time.field' = 'trade_time', ", 1))
    # the job's first declared source names its metrics: the table's (read first)
    kill_9_mid_input_and_finish(sc, table.to_pylist(), IN.replace('"trades"', '"desks"'),
                                partitions=2)
    assert_every_window_once(kafka_broker, sc.out,
                             ("desk", "symbol", "trade_count", "total_quantity", "ws"), expected)
