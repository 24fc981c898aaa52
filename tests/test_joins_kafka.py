"""A job file joining a Kafka stream with a compacted Kafka table (docs/SQL.md §9), run by
``velostream run`` against the real broker of the tests: each trade meets the instrument row
current at its time, and a tombstone (a message without a value) deletes its key."""
from __future__ import annotations

import json
import time

import orjson
import pytest

from test_cli import velostream


def reference(versions, trades):
    """LEFT temporal join by hand: the latest version of the symbol at or before the trade."""
    out = []
    for sym, qty, t in trades:
        current = None
        for vsym, sector, vt in versions:  # in time order; a later one replaces an earlier one
            if vsym == sym and vt <= t:
                current = sector  # None: deleted
        out.append((sym, qty, current))
    return sorted(out, key=repr)


@pytest.mark.parametrize("partitions", [1, 2])
def test_kafka_stream_joins_a_compacted_kafka_table(kafka_broker, tmp_path, partitions):
    table_topic = kafka_broker.create_topic(f"inst-{time.time_ns()}", partitions=1,
                                            config={"cleanup.policy": "compact"})
    trade_topic = kafka_broker.unique_topic("trades-join", partitions=2)
    versions = [("AAPL", "tech", 1_000), ("MSFT", "software", 1_000), ("IBM", "services", 1_000),
                ("AAPL", "devices", 20_000), ("IBM", None, 30_000), ("IBM", "cloud", 50_000)]
    kafka_broker.produce(
        table_topic,
        [None if sector is None else orjson.dumps({"symbol": sym, "sector": sector})
         for sym, sector, _ in versions],
        keys=[sym.encode() for sym, _, _ in versions], partition=0,
        timestamps=[t for _, _, t in versions])
    trades = [(sym, 10 * i, 5_000 + 1_000 * i) for i, sym in
              enumerate(["AAPL", "MSFT", "IBM", "ORCL"] * 15)]
    kafka_broker.produce(trade_topic, [orjson.dumps({"symbol": s, "qty": q}) for s, q, _ in trades],
                         keys=[s.encode() for s, _, _ in trades], timestamps=[t for _, _, t in trades])
    out = tmp_path / "enriched.jsonl"
    b = kafka_broker.bootstrap
    job = tmp_path / "enrich.sql"
    job.write_text(f"""
CREATE TABLE instruments (symbol VARCHAR, sector VARCHAR, PRIMARY KEY (symbol))
WITH ('instruments.type' = 'kafka_source', 'instruments.topic' = '{table_topic}',
      'instruments.bootstrap.servers' = '{b}', 'instruments.group.id' = 'g-{time.time_ns()}');

CREATE STREAM enriched AS
  SELECT t.symbol, t.qty, i.sector FROM trades t LEFT JOIN instruments i ON t.symbol = i.symbol
WITH ('trades.type' = 'kafka_source', 'trades.topic' = '{trade_topic}',
      'trades.bootstrap.servers' = '{b}', 'trades.group.id' = 'g-{time.time_ns()}',
      'enriched.type' = 'file_sink', 'enriched.path' = '{out}',
      'fault.tolerance' = 'none');
""")
    r = velostream("run", str(job), "--bounded", "--partitions", str(partitions))
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        got = sorted(((row["symbol"], row["qty"], row["sector"]) for row in map(json.loads, f)),
                     key=repr)
    assert got == reference(versions, trades)
    # the tombstone mattered: some IBM trades between 30 s and 50 s found no row
    assert any(s == "IBM" and sector is None for s, _, sector in got)
