"""Job files: properties split between source, sink and job; ${VAR} substitution; errors."""
from __future__ import annotations

import pytest

from velostream.errors import SqlError
from velostream.io.base import ConfigError
from velostream.jobs.spec import JobSpec

JOB = """
-- trade statistics per minute
CREATE STREAM trade_stats AS
SELECT trader_id, symbol AS sym, COUNT(*) AS trades
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING(1m)
WITH ('market_data.type' = 'kafka_source',
      'market_data.topic' = '${TOPIC:-trades}',
      'market_data.bootstrap.servers' = '${BROKERS}',
      'market_data.group.id' = 'stats',
      'market_data.fetch.min.bytes' = '1000',
      'trade_stats.type' = 'kafka_sink',
      'trade_stats.topic' = 'stats',
      'trade_stats.bootstrap.servers' = '${BROKERS}',
      'allowed.lateness' = '5s',
      'failure.strategy' = 'FailBatch',
      'dead.letter.topic' = 'rejected')
"""


def test_properties_are_split_by_owner_with_the_prefix_removed():
    spec = JobSpec.from_sql(JOB, env={"BROKERS": "127.0.0.1:9"})
    assert spec.source_name == "market_data" and spec.sink_name == "trade_stats"
    assert spec.source.values == {"type": "kafka_source", "topic": "trades",
                                  "bootstrap.servers": "127.0.0.1:9", "group.id": "stats",
                                  "fetch.min.bytes": "1000"}
    assert spec.sink.values == {"type": "kafka_sink", "topic": "stats",
                                "bootstrap.servers": "127.0.0.1:9"}
    assert spec.job == {"allowed.lateness": "5s", "failure.strategy": "FailBatch",
                        "dead.letter.topic": "rejected"}


def test_env_default_and_override():
    assert JobSpec.from_sql(JOB, env={"BROKERS": "b"}).source.values["topic"] == "trades"
    assert JobSpec.from_sql(JOB, env={"BROKERS": "b", "TOPIC": "t2"}).source.values["topic"] == "t2"


def test_unset_variable_without_default_is_an_sql_error():
    with pytest.raises(SqlError, match="BROKERS"):
        JobSpec.from_sql(JOB, env={})


def test_message_key_is_the_group_by_columns_by_their_output_names():
    spec = JobSpec.from_sql(JOB, env={"BROKERS": "b"})
    assert spec.key_columns == ["trader_id", "sym"]
    explicit = JOB.replace("'trade_stats.topic' = 'stats',",
                           "'trade_stats.topic' = 'stats', 'trade_stats.key.columns' = 'sym',")
    assert JobSpec.from_sql(explicit, env={"BROKERS": "b"}).key_columns == ["sym"]


def test_plain_select_writes_to_stdout():
    spec = JobSpec.from_sql("SELECT x FROM s WITH ('s.type' = 'file_source', 's.path' = 'a.csv')")
    assert spec.sink_type == "stdout" and spec.source.values == {"type": "file_source", "path": "a.csv"}


@pytest.mark.parametrize("props, message", [
    ("'s.type' = 'ftp_source', 's.path' = 'x'", "not a source type"),
    ("'s.type' = 'file_source'", "'s.path' is required"),
    ("'s.type' = 'file_source', 's.path' = 'x', 'out.type' = 'kafka_sink', 'out.topic' = 't'",
     "'out.bootstrap.servers' is required"),
    ("'s.type' = 'file_source', 's.path' = 'x', 'out.type' = 'printer'", "not a sink type"),
    ("'s.type' = 'file_source', 's.path' = 'x', 'commit.intervall.ms' = '5'", "unknown property"),
    ("'s.type' = 'file_source', 's.path' = 'x', 'other.type' = 'file_sink'", "neither the source"),
])
def test_bad_properties_name_the_property(props, message):
    with pytest.raises((ConfigError, SqlError), match=message):
        JobSpec.from_sql(f"CREATE STREAM out AS SELECT x FROM s WITH ({props})")


def test_load_from_file_and_unreadable_file(tmp_path):
    p = tmp_path / "job.sql"
    p.write_text(JOB)
    assert JobSpec.load(str(p), env={"BROKERS": "b"}).sink_name == "trade_stats"
    with pytest.raises(ConfigError, match="cannot read job file"):
        JobSpec.load(str(tmp_path / "missing.sql"))


def test_describe_lists_source_sink_and_key():
    text = JobSpec.from_sql(JOB, env={"BROKERS": "b"}).describe()
    assert "Source: market_data (kafka_source)" in text
    assert "Sink: trade_stats (kafka_sink)" in text
    assert "message key: trader_id | sym" in text
