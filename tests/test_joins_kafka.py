"""A job file joining a Kafka stream with a compacted Kafka table (docs/SQL.md §9), run by
``velostream run`` against the real broker of the tests: each trade meets the instrument row
current at its time, and a tombstone (a message without a value) deletes its key."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import orjson
import pytest

from test_cli import velostream

# the job file docs/SQL.md §9 shows, run here as written (topics, brokers and output path aside)
SQL_MD = Path(__file__).resolve().parents[1] / "docs" / "SQL.md"


def documented_job() -> str:
    text = SQL_MD.read_text()
    at = text.index("(tests/test_joins_kafka.py):")
    return re.search(r"```sql\n(.*?)```", text[at:], re.S).group(1)


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


@pytest.mark.parametrize("partitions", [1, 2, 4])
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
    job.write_text(documented_job()
                   .replace("'instruments.topic' = 'instruments'",
                            f"'instruments.topic' = '{table_topic}'")
                   .replace("'trades.topic' = 'trades'", f"'trades.topic' = '{trade_topic}'")
                   .replace("${BROKERS:-localhost:9092}", b)
                   .replace("'enriched.jsonl'", f"'{out}'"))
    assert table_topic in job.read_text() and trade_topic in job.read_text()
    r = velostream("run", str(job), "--bounded", "--partitions", str(partitions))
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        got = sorted(((row["symbol"], row["qty"], row["sector"]) for row in map(json.loads, f)),
                     key=repr)
    assert got == reference(versions, trades)
    # the tombstone mattered: some IBM trades between 30 s and 50 s found no row
    assert any(s == "IBM" and sector is None for s, _, sector in got)
