"""Job files of several statements (docs/SQL.md §8) through ``velostream run``, as a user runs
them: a subprocess, real files."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from test_cli import velostream  # the command as a subprocess, as a user runs it
from velostream.datagen import market_data

from reference import assert_rows_equal, duck


def jsonl_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def trades_csv(tmp_path_factory) -> tuple[Path, pa.Table]:
    table = pa.Table.from_batches(market_data(20_000))
    path = tmp_path_factory.mktemp("data") / "trades.csv"
    pcsv.write_csv(table, path)
    return path, table


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_two_statements_write_two_sinks(tmp_path, trades_csv, partitions):
    path, table = trades_csv
    m1, m5 = tmp_path / "m1.jsonl", tmp_path / "m5.jsonl"
    job = tmp_path / "cascade.sql"
    job.write_text(f"""
CREATE STREAM per_minute AS
  SELECT symbol, COUNT(*) AS trades, SUM(quantity) AS volume, _WINDOW_START AS ws
  FROM market_data GROUP BY symbol WINDOW TUMBLING(1m)
  WITH ('per_minute.type' = 'file_sink', 'per_minute.path' = '{m1}');

CREATE STREAM per_five AS
  SELECT symbol, SUM(trades) AS trades, SUM(volume) AS volume, _WINDOW_START AS ws
  FROM per_minute GROUP BY symbol WINDOW TUMBLING(5m)
  WITH ('market_data.type' = 'file_source', 'market_data.path' = '{path}',
        'per_five.type' = 'file_sink', 'per_five.path' = '{m5}');
""")
    r = velostream("run", str(job), "--bounded", "--partitions", str(partitions))
    assert r.returncode == 0, r.stderr
    one = duck("SELECT symbol, COUNT(*), SUM(quantity), (_TIMESTAMP // 60000) * 60000 AS ws "
               "FROM t GROUP BY symbol, ws", t=table)
    five = duck("SELECT symbol, COUNT(*), SUM(quantity), (_TIMESTAMP // 300000) * 300000 AS ws "
                "FROM t GROUP BY symbol, ws", t=table)
    assert len(five) > 10
    assert_rows_equal(jsonl_rows(m1), one)
    assert_rows_equal(jsonl_rows(m5), five)


def test_explain_shows_each_keyed_nodes_exchange_at_the_given_partitions(tmp_path, trades_csv):
    path, _ = trades_csv
    job = tmp_path / "rekeyed.sql"
    job.write_text(f"""
CREATE STREAM per_trader AS SELECT trader_id, symbol, COUNT(*) AS n FROM market_data
  GROUP BY trader_id, symbol WINDOW TUMBLING(1m);
SELECT symbol, SUM(n) AS n FROM per_trader GROUP BY symbol WINDOW TUMBLING(5m)
  WITH ('market_data.type' = 'file_source', 'market_data.path' = '{path}')
""")
    r = velostream("explain", str(job), "--partitions", "3")
    assert r.returncode == 0, r.stderr
    assert "Exchange: hash(trader_id, symbol) over 3 partitions" in r.stdout
    assert "Exchange: hash(symbol) over 3 partitions" in r.stdout
    assert "Partitioning: 3 partitions" in r.stdout


def test_final_select_of_a_pipeline_prints(tmp_path, trades_csv):
    path, table = trades_csv
    job = tmp_path / "top.sql"
    job.write_text(f"""
CREATE STREAM big AS SELECT symbol, quantity FROM market_data WHERE quantity >= 900
  WITH ('market_data.type' = 'file_source', 'market_data.path' = '{path}');
SELECT symbol, COUNT(*) AS n FROM big GROUP BY symbol ORDER BY n DESC LIMIT 3 EMIT CHANGES
""")
    r = velostream("run", str(job), "-q", "--bounded")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["symbol", "n"]
    assert len(lines) == 5  # header, rule, 3 rows


def test_a_job_file_reads_two_sources_into_a_union(tmp_path, trades_csv):
    path, table = trades_csv
    out = tmp_path / "both.jsonl"
    job = tmp_path / "two.sql"
    job.write_text(f"""
CREATE STREAM both_ AS SELECT symbol, quantity FROM a WHERE quantity < 150
  UNION ALL SELECT symbol, quantity FROM b WHERE quantity > 1050
WITH ('a.type' = 'file_source', 'a.path' = '{path}', 'b.type' = 'file_source', 'b.path' = '{path}',
      'both_.type' = 'file_sink', 'both_.path' = '{out}')
""")
    r = velostream("run", str(job), "--bounded")
    assert r.returncode == 0, r.stderr
    ref = duck("SELECT symbol, quantity FROM t WHERE quantity < 150 UNION ALL "
               "SELECT symbol, quantity FROM t WHERE quantity > 1050", t=table)
    assert len(ref) > 100
    assert_rows_equal(jsonl_rows(out), ref)


def test_explain_and_validate_a_pipeline(tmp_path, trades_csv):
    path, _ = trades_csv
    job = tmp_path / "p.sql"
    job.write_text(f"""
CREATE STREAM big AS SELECT symbol, quantity FROM market_data WHERE quantity >= 900;
SELECT symbol, COUNT(*) AS n FROM big GROUP BY symbol
WITH ('market_data.type' = 'file_source', 'market_data.path' = '{path}')
""")
    r = velostream("explain", str(job))
    assert r.returncode == 0, r.stderr
    assert "#1 select big  <- #0" in r.stdout and "Filter: (quantity >= 900)" in r.stdout
    r = velostream("validate", str(job))
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.sql"
    bad.write_text(job.read_text().replace("COUNT(*) AS n FROM big", "COUNT(*) AS n FROM big2"))
    r = velostream("validate", str(bad))
    assert r.returncode != 0


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_a_job_file_joins_a_stream_with_a_table_file(tmp_path, trades_csv, partitions):
    path, table = trades_csv
    symbols = sorted(set(table.column("symbol").to_pylist()))
    inst = tmp_path / "instruments.csv"
    # two versions of some symbols: the later row replaces the earlier one from its time on
    start = table.column("_TIMESTAMP")[0].as_py()
    mid = table.column("_TIMESTAMP")[table.num_rows // 2].as_py()
    rows = [(s, f"sector-{i % 3}", start - 1) for i, s in enumerate(symbols)]
    rows += [(s, "moved", mid) for s in symbols[::2]]
    inst_table = pa.table({"symbol": [r[0] for r in rows], "sector": [r[1] for r in rows],
                           "_TIMESTAMP": pa.array([r[2] for r in rows], pa.int64())})
    pcsv.write_csv(inst_table, inst)
    out = tmp_path / "enriched.jsonl"
    job = tmp_path / "join.sql"
    job.write_text(f"""
CREATE TABLE instruments (symbol VARCHAR, sector VARCHAR, _TIMESTAMP BIGINT, PRIMARY KEY (symbol));
CREATE STREAM enriched AS
  SELECT t.symbol, t.quantity, i.sector FROM market_data t JOIN instruments i
  ON t.symbol = i.symbol
WITH ('market_data.type' = 'file_source', 'market_data.path' = '{path}',
      'instruments.type' = 'file_source', 'instruments.path' = '{inst}',
      'enriched.type' = 'file_sink', 'enriched.path' = '{out}');
""")
    r = velostream("run", str(job), "--bounded", "--partitions", str(partitions))
    assert r.returncode == 0, r.stderr
    ref = duck("SELECT t.symbol, t.quantity, i.sector FROM t ASOF JOIN i ON t.symbol = i.symbol "
               "AND t._TIMESTAMP >= i._TIMESTAMP", t=table, i=inst_table)
    assert len(ref) == table.num_rows
    assert_rows_equal(jsonl_rows(out), ref)
