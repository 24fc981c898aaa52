"""The V1/V2 job server: same answers at every partition count, failure strategies, robustness."""
from __future__ import annotations

import collections
import math
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.datagen import SCENARIOS, market_data, scenario_input
from velostream.errors import JobError
from velostream.jobs import MemoryWriter

pytestmark = pytest.mark.timeout(120)

QUERIES = {
    "filter": "SELECT symbol, price * 2 AS p2 FROM market_data WHERE quantity > 500",
    "group_changes": "SELECT symbol, COUNT(*) AS n, SUM(quantity) AS q, MAX(price) AS mx FROM market_data GROUP BY symbol",
    "group_final": "SELECT trader_id, AVG(price) AS a, STDDEV(price) AS sd, MEDIAN(quantity) AS med, "
                   "COUNT(DISTINCT symbol) AS ds FROM market_data GROUP BY trader_id EMIT FINAL",
    "tumbling": "SELECT symbol, COUNT(*) AS n, SUM(quantity) AS q, _WINDOW_END AS we FROM market_data "
                "GROUP BY symbol WINDOW TUMBLING(trade_time, INTERVAL '90' SECOND)",
    "sliding_having": "SELECT trader_id, COUNT(*) AS n, _WINDOW_START AS ws FROM market_data GROUP BY trader_id "
                      "WINDOW SLIDING(trade_time, 2m, 30s) HAVING COUNT(*) > 4",
    "session": "SELECT symbol, COUNT(*) AS n, _WINDOW_START AS ws, _WINDOW_END AS we FROM market_data "
               "GROUP BY symbol WINDOW SESSION(trade_time, 15s)",
    "rows": "SELECT symbol, price, AVG(price) OVER (ROWS WINDOW BUFFER 5 ROWS PARTITION BY symbol ORDER BY trade_time) AS ma, "
            "LAG(quantity, 2, -1) OVER (ROWS WINDOW BUFFER 5 ROWS PARTITION BY symbol ORDER BY trade_time) AS lq "
            "FROM market_data",
    "global_final": "SELECT COUNT(*) AS n, SUM(quantity) AS q, FIRST_VALUE(price) AS f, LAST_VALUE(price) AS l "
                    "FROM market_data EMIT FINAL",
    "global_window": "SELECT COUNT(*) AS n, MIN(price) AS lo, _WINDOW_START AS ws FROM market_data "
                     "WINDOW TUMBLING(trade_time, 5m)",
    "distinct": "SELECT DISTINCT trader_id, symbol FROM market_data",
}


def _rows(result: vs.Result) -> list[tuple]:
    return [tuple(r.values()) for r in result.to_pylist()]


def _norm(row):
    return tuple(round(v, 6) if isinstance(v, float) and not math.isnan(v) else v for v in row)


def _by_key(rows, key_index=0):
    out = collections.defaultdict(list)
    for r in rows:
        out[r[key_index]].append(_norm(r))
    return out


@pytest.fixture(scope="module")
def trades():
    return market_data(30_000, batch_rows=4_096)


@pytest.mark.parametrize("name", list(QUERIES))
@pytest.mark.parametrize("partitions", [2, 4, 8])
def test_v2_matches_v1(name, partitions, trades):
    sql = QUERIES[name]
    v1 = _rows(vs.query(sql, {"market_data": trades}))
    v2 = _rows(vs.query(sql, {"market_data": trades}, partitions=partitions))
    assert len(v1) > 0
    assert collections.Counter(map(_norm, v1)) == collections.Counter(map(_norm, v2))
    if name not in ("global_final", "global_window", "filter", "distinct"):
        assert _by_key(v1) == _by_key(v2)  # each key's rows in the same order


def test_v2_final_rows_in_window_end_order(trades):
    sql = QUERIES["tumbling"]
    rows = vs.query(sql, {"market_data": trades}, partitions=4).to_pylist()
    ends = [r["we"] for r in rows]
    assert ends == sorted(ends)


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_scenarios_same_at_every_partition_count(partitions):
    for name, (_, sql) in SCENARIOS.items():
        src, batches = scenario_input(name, 20_000)
        v1 = _rows(vs.query(sql, {src: batches}))
        v2 = _rows(vs.query(sql, {src: batches}, partitions=partitions))
        assert collections.Counter(map(_norm, v1)) == collections.Counter(map(_norm, v2)), name


def test_hot_key_skew(monkeypatch):
    rng = np.random.default_rng(7)
    n = 40_000
    keys = np.where(rng.random(n) < 0.9, "HOT", np.char.add("K", (rng.integers(0, 50, n)).astype(str)))
    data = pa.table({"k": keys, "x": rng.integers(0, 100, n), "_TIMESTAMP": np.arange(n) * 10})
    sql = "SELECT k, COUNT(*) AS n, SUM(x) AS s FROM t GROUP BY k WINDOW TUMBLING(10s)"
    v1 = collections.Counter(_rows(vs.query(sql, {"t": data})))
    # read as a live stream (batches of 5 s, inside a window): routed by key
    job = vs.Job(sql, {"t": data.to_batches(max_chunksize=500)}, partitions=4)
    stats = job.run()
    assert stats.strategy == "hash"
    assert collections.Counter(_rows(job.result())) == v1
    assert sum(stats.partition_records) == n
    # the hot key lives in one partition; key groups balance the other keys around it
    assert max(stats.partition_records) >= int((keys == "HOT").sum())
    # read whole (a batch over 40 windows): routed by window, in runs of about a step (made
    # 4,096 rows here), the hot key's windows spread over the partitions
    from velostream.jobs import partition_threads
    monkeypatch.setattr(partition_threads, "STEP_ROWS", 4096)
    job = vs.Job(sql, {"t": data}, partitions=4)
    stats = job.run()
    assert stats.strategy == "window"
    assert collections.Counter(_rows(job.result())) == v1
    assert sum(stats.partition_records) == n
    assert max(stats.partition_records) < int((keys == "HOT").sum())


def test_partitions_without_records_still_close_windows():
    # one key only: three of four partitions never see a record, yet every window closes on time
    data = {"k": ["only"] * 6, "x": [1, 2, 3, 4, 5, 6], "_TIMESTAMP": [0, 1000, 61_000, 62_000, 130_000, 200_000]}
    sql = "SELECT k, SUM(x) AS s, _WINDOW_START AS ws FROM t GROUP BY k WINDOW TUMBLING(1m)"
    eng_rows = vs.query(sql, {"t": data}).to_pylist()
    job = vs.Job(sql, {"t": [pa.RecordBatch.from_pydict({k: v[i:i + 1] for k, v in data.items()})
                             for i in range(6)]}, partitions=4)
    job.run()
    assert job.result().to_pylist() == eng_rows
    assert [r["ws"] for r in eng_rows] == [0, 60_000, 120_000, 180_000]
    assert job.stats.partition_records.count(0) == 3


class FlakyWriter(MemoryWriter):
    """Fails its first ``failures`` writes."""

    def __init__(self, failures: int):
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def write_batch(self, batch):
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise IOError("sink unavailable")
        super().write_batch(batch)


def _small_job(strategy, writer, partitions=2, **kw):
    data = market_data(5_000, batch_rows=1_000)
    return vs.Job("SELECT symbol, price FROM market_data", {"market_data": data}, writer,
                  partitions=partitions, failure_strategy=strategy, **kw)


def test_log_and_continue_dead_letters_failed_writes():
    w = FlakyWriter(2)
    job = _small_job("LogAndContinue", w)
    stats = job.run()
    written = sum(b.num_rows for b in w.batches)
    assert stats.records_failed == 5_000 - written > 0
    dead = sum(rb.num_rows for reason, rb in job.dead_letters if "sink write failed" in reason)
    assert dead == stats.records_failed  # nothing lost: every row is written or dead-lettered


def test_send_to_dlq_needs_and_uses_a_dead_letter_writer():
    with pytest.raises(ValueError):
        _small_job("SendToDLQ", FlakyWriter(1))
    dlq = MemoryWriter()
    w = FlakyWriter(1)
    stats = _small_job("SendToDLQ", w, dead_letter=dlq).run()
    assert sum(b.num_rows for b in dlq.batches) == stats.records_failed > 0
    assert sum(b.num_rows for b in w.batches) + stats.records_failed == 5_000


def test_fail_batch_rolls_back_and_fails():
    w = FlakyWriter(1)
    with pytest.raises(JobError, match="sink write failed"):
        _small_job(vs.FailBatch(), w).run()
    assert w.batches == []  # rolled back: nothing committed


def test_retry_with_backoff_recovers_then_gives_up():
    w = FlakyWriter(2)
    stats = _small_job(vs.RetryWithBackoff(max_retries=3, base_delay_s=0.001), w).run()
    assert sum(b.num_rows for b in w.batches) == 5_000 and stats.records_failed == 0
    w = FlakyWriter(100)
    with pytest.raises(JobError):
        _small_job(vs.RetryWithBackoff(max_retries=2, base_delay_s=0.001), w).run()
    assert w.attempts == 3


def test_exception_in_a_partition_is_raised_with_its_partition(monkeypatch):
    """A bug inside a partition (not a bad record: those are dead-lettered) stops the job with
    JobError naming the partition, and no partition thread is left."""
    from velostream.exec.pipeline import Pipeline
    real = Pipeline.process

    def crash(self, batch):
        if threading.current_thread().name.startswith("velostream-partition"):
            raise RuntimeError("boom")
        return real(self, batch)

    monkeypatch.setattr(Pipeline, "process", crash)
    # DISTINCT, more rows than a step the job's thread runs itself: the rows go through the
    # partition threads (partition_threads.INLINE_ROWS, INLINE_STEP_ROWS)
    data = {"s": ["1", "2", "x", "4"] * 1000}
    job = vs.Job("SELECT DISTINCT s FROM t", {"t": data}, partitions=2)
    with pytest.raises(JobError, match=r"partition \d failed.*boom"):
        job.run()
    time.sleep(0.05)
    assert not any(t.name.startswith("velostream-partition") for t in threading.enumerate())


class EndlessReader:
    """An unbounded source: always has more."""

    def __init__(self):
        self.i = 0

    def read(self):
        rb = market_data(1_000, start=self.i)[0]
        self.i += 1_000
        return rb

    def has_more(self):
        return True

    def commit(self):
        pass

    def seek(self, position):
        self.i = position

    def close(self):
        pass


@pytest.mark.parametrize("processor,partitions", [("v1", 1), ("v2", 2)])
def test_stop_in_the_middle_of_a_long_input(processor, partitions):
    sql = "SELECT symbol, COUNT(*) AS n FROM market_data GROUP BY symbol WINDOW TUMBLING(trade_time, 1m)"
    job = vs.Job(sql, {"market_data": EndlessReader()}, partitions=partitions, processor=processor)
    job.start()
    time.sleep(0.5)
    job.stop()
    stats = job.join(timeout=30)
    assert stats.records_read > 0
    # everything read was processed and flushed: the counts add up to the records read
    assert sum(r["n"] for r in job.result().to_pylist()) == stats.records_read
    assert not any(t.name.startswith("velostream-partition") for t in threading.enumerate())


def test_stats_and_explain_show_strategy(monkeypatch):
    from velostream.jobs import partition_scan
    data = market_data(10_000, batch_rows=2_000)
    job = vs.Job(QUERIES["group_changes"], {"market_data": data}, partitions=2)
    st = job.run().to_dict()
    assert st["records_read"] == 10_000 and st["records_emitted"] == 10_000
    # a few symbols in the first batch: the scan split (jobs/partition_scan.py)
    assert st["strategy"] == "scan" and st["batches"] == 5
    assert "or scan" in vs.explain(QUERIES["group_changes"], {"market_data": data})
    monkeypatch.setattr(partition_scan, "ENABLED", False)
    job = vs.Job(QUERIES["group_changes"], {"market_data": data}, partitions=2)
    st = job.run().to_dict()
    assert st["strategy"] == "hash" and st["batches"] == 5
    assert set(st["latency_ms"]) == {"p50", "p95", "p99"}
    assert st["throughput"] > 0
    assert "Partitioning: hash(symbol)" in vs.explain(QUERIES["group_changes"], {"market_data": data})
    assert "two_phase" in vs.explain(QUERIES["global_final"], {"market_data": data})


def test_partitioning_override():
    data = market_data(2_000)
    sql = QUERIES["group_changes"] + " WITH ('partitioning.strategy' = 'single')"
    assert "single" in vs.explain(sql, {"market_data": data})
    bad = QUERIES["group_changes"] + " WITH ('partitioning.strategy' = 'round_robin')"
    with pytest.raises(vs.SqlError, match="wrong results"):
        vs.explain(bad, {"market_data": data})


def test_partitions_intern_strings_concurrently():
    # round-robin partitions each intern new strings (LIKE, UPPER) into the job's one dictionary
    n = 120_000
    s = pa.array([f"user{i}" for i in range(n)])
    data = pa.table({"s": s, "x": np.arange(n)}).to_batches(max_chunksize=4_000)
    sql = "SELECT UPPER(s) AS u, x FROM t WHERE s LIKE 'user1%' OR x % 7 = 0"
    v1 = collections.Counter(_rows(vs.query(sql, {"t": data})))
    for _ in range(3):
        v2 = collections.Counter(_rows(vs.query(sql, {"t": data}, partitions=4)))
        assert v2 == v1


def test_v2_partition_takes_the_compiled_step_for_whole_batches(monkeypatch):
    # one partition runs the job's engine in the job's thread (no thread hop for an identity
    # exchange): a plain GROUP BY runs through the compiled step of Engine.push (exec.push_fast)
    src, batches = scenario_input("S2", 50_000)
    sql = SCENARIOS["S2"][1]
    job = vs.Job(sql, {src: batches}, processor="v2", partitions=1)
    job.run()
    assert job.engine.fast_batches == len(batches)
    assert _rows(job.result()) == _rows(vs.query(sql, {src: batches}))
    # at two partitions routed by key (not the scan split, tests/test_scan_split.py), each
    # interns its own rows into its own dictionary (raw routing), so its rows of every batch
    # take the compiled step too; same rows per key
    from velostream.jobs import partition_scan
    monkeypatch.setattr(partition_scan, "ENABLED", False)
    two = vs.Job(sql, {src: batches}, partitions=2)
    two.run()
    assert two.exchange.raw and all(w.fast.batches == len(batches) for w in two.exchange.parts)
    assert two.exchange.parts[0].pipeline.strings is not two.exchange.parts[1].pipeline.strings
    assert _by_key(_rows(two.result())) == _by_key(_rows(job.result()))


def test_v2_small_routed_batches_take_the_compiled_step():
    # batches of a few hundred records: each partition takes its rows out of the Arrow batch and
    # runs them through the compiled step (the general path's per-batch cost would dominate)
    src, batches = scenario_input("S2", 20_000)
    small = pa.Table.from_batches(batches).to_batches(max_chunksize=300)
    sql = SCENARIOS["S2"][1]
    v1 = _rows(vs.query(sql, {src: small}))
    for partitions in (2, 4):
        job = vs.Job(sql, {src: small}, partitions=partitions)
        job.run()
        assert all(w.fast is not None and w.fast.batches > 0 for w in job.exchange.parts)
        assert sum(w.records for w in job.exchange.parts) == 20_000
        assert _by_key(_rows(job.result())) == _by_key(v1)


class _TrickleReader:
    """A never-waiting reader (``coalesce = True``) that has ``per_read`` one-row batches waiting
    at each read of the job, a schema change in the middle, and NULL-time rows."""

    coalesce = True

    def __init__(self, batches, per_read):
        self.batches, self.i, self.per_read, self.commits = batches, 0, per_read, 0
        self.waiting = 0

    def read(self):
        if self.i >= len(self.batches):
            return None
        if self.waiting == 0:  # nothing waiting: the next read finds per_read batches
            self.waiting = self.per_read
            return None
        self.waiting -= 1
        self.i += 1
        return self.batches[self.i - 1]

    def has_more(self):
        return self.i < len(self.batches)

    def commit(self):
        self.commits += 1

    def seek(self, position):
        self.i = int(position)

    def close(self):
        pass


@pytest.mark.parametrize("processor,partitions", [("v1", 1), ("v2", 1), ("v2", 2), ("v2", 4)])
def test_a_coalescing_reader_has_waiting_batches_taken_in_one_step(processor, partitions):
    # what is waiting at the reader goes through in one step (up to COALESCE_ROWS rows); a batch
    # of another schema is held for the next step; the rows are those of one batch at a time
    from velostream.jobs.coordinator import COALESCE_ROWS
    src, batches = scenario_input("S2", 3_000)
    one = [b for rb in batches for b in pa.Table.from_batches([rb]).to_batches(max_chunksize=1)]
    wide = [rb.append_column("extra", pa.array([1.5] * rb.num_rows)) for rb in one[1_510:]]
    stream = one[:1_510] + wide  # the new schema arrives mid-step: that batch is held
    sql = SCENARIOS["S2"][1]
    reader = _TrickleReader(stream, per_read=50)
    job = vs.Job(sql, {src: reader}, processor=processor, partitions=partitions,
                 commit_interval_s=0.0)
    stats = job.run()
    assert stats.records_read == 3_000 and stats.records_emitted == 3_000
    assert stats.batches < 3_000 / 10  # gathered, not a step per record
    assert reader.commits > 0
    expected = _rows(vs.query(sql, {src: stream}))
    assert _by_key(_rows(job.result())) == _by_key(expected)
    assert COALESCE_ROWS >= 1_000


def test_implements_answers_as_isinstance_for_every_connector_and_capability():
    """``protocols.implements`` (the job's capability checks, members listed once) gives what
    ``isinstance`` gives, for every reader and writer class velostream ships and objects that
    have a capability's members only as instance attributes, or with a method set to None."""
    import importlib
    import inspect
    import pkgutil

    import velostream.io
    from velostream.jobs import protocols as P
    capabilities = [P.Reader, P.Writer, P.ReportsRejects, P.PartitionedWatermark,
                    P.PartitionedSource, P.ReportsLag, P.PositionedReader, P.CoalescingReader,
                    P.ResendingWriter, P.DeadLetterOutput]
    classes = {P.MemoryReader, P.MemoryWriter, P.FanOutWriter, P.MergedReader}
    for mod in pkgutil.walk_packages(velostream.io.__path__, "velostream.io."):
        try:
            m = importlib.import_module(mod.name)
        except ImportError:  # an optional dependency
            continue
        classes.update(c for _, c in inspect.getmembers(m, inspect.isclass)
                       if c.__module__.startswith("velostream")
                       and not issubclass(c, BaseException))
    assert len(classes) > 10

    class Loose:  # members as instance attributes
        def __init__(self):
            self.coalesce = True
            self.position = 3
            self.watermark_by = "_PARTITION"

    class NoneMethod:
        rejects = None
        def lag(self):
            return 0

    objects = [Loose(), NoneMethod(), object(), [], {}]
    for c in classes:
        try:
            objects.append(object.__new__(c))
        except TypeError:  # (a builtin-based class: not a connector)
            continue
    checked = 0
    for obj in objects:
        for cap in capabilities:
            assert P.implements(obj, cap) == isinstance(obj, cap), (type(obj), cap)
            checked += 1
    class Partitioned(Loose):  # the base protocol's members too
        key_columns = None
        def watermark_partitions(self): ...
        def set_rebalance_listener(self, on_assign, on_revoke): ...
        def positions(self): ...
        def commit_offsets(self, offsets): ...
    assert P.implements(Partitioned(), P.PartitionedSource) and isinstance(Partitioned(),
                                                                           P.PartitionedSource)
    assert not P.implements(Loose(), P.PartitionedSource)
    assert P.implements(Loose(), P.CoalescingReader) and not P.implements(NoneMethod(),
                                                                          P.ReportsRejects)
