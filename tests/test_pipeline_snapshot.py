"""A pipeline's state (docs/SQL.md §8, §9) snapshotted mid-stream and restored in a fresh
engine continues exactly where it left off: the rows before the snapshot plus the restored
engine's rows equal one uninterrupted run, for every kind of operator."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs

from reference import assert_rows_equal


def stream(n, seed, col="v"):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 600_000, n)).astype(np.int64)
    return pa.table({"k": pa.array(rng.choice(["a", "b", "c", ""], n).astype(object),
                                   mask=rng.random(n) < 0.05, type=pa.string()),
                     col: pa.array(rng.integers(0, 100, n)), "ts": pa.array(ts),
                     "_TIMESTAMP": pa.array(ts)})


def interleaved(tables: dict, pieces=8):
    """(source, batch) in time order, as they would arrive."""
    out = []
    for name, t in tables.items():
        for b in t.to_batches(max_chunksize=max(1, t.num_rows // pieces)):
            out.append((b.column("_TIMESTAMP")[0].as_py(), name, b))
    return [(name, b) for _, name, b in sorted(out, key=lambda x: x[0])]


PIPELINES = {
    "cascade": ("CREATE STREAM m AS SELECT k, COUNT(*) AS n FROM a GROUP BY k "
                "WINDOW TUMBLING(1m); SELECT k, SUM(n) AS n, _WINDOW_START AS ws FROM m "
                "GROUP BY k WINDOW TUMBLING(5m)", ("a",)),
    "top_n": ("WITH w AS (SELECT k, SUM(v) AS s, _WINDOW_START AS ws FROM a GROUP BY k "
              "WINDOW TUMBLING(2m) EMIT CHANGES) SELECT ws, k, s, rn FROM (SELECT ws, k, s, "
              "ROW_NUMBER() OVER (PARTITION BY ws ORDER BY s DESC) AS rn FROM w) WHERE rn <= 2",
              ("a",)),
    "dedup": ("SELECT k, v FROM (SELECT k, v, _TIMESTAMP, ROW_NUMBER() OVER (PARTITION BY k "
              "ORDER BY _TIMESTAMP) AS rn FROM a) WHERE rn = 1", ("a",)),
    "union_sorted": ("SELECT k, v FROM a WHERE v > 50 UNION ALL SELECT k, w FROM b WHERE w < 20 "
                     "ORDER BY 2", ("a", "b")),
    "interval_join": ("SELECT a.k, a.v, b.w FROM a FULL JOIN b ON a.k = b.k "
                      "AND b.ts BETWEEN a.ts - 3000 AND a.ts + 3000", ("a", "b")),
    "temporal_join": ("CREATE TABLE b (k VARCHAR, w BIGINT, ts BIGINT, _TIMESTAMP BIGINT, "
                      "PRIMARY KEY (k)); SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k",
                      ("a", "b")),
}


@pytest.mark.parametrize("name", list(PIPELINES))
@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_snapshot_and_restore_continue_exactly(name, cut):
    sql, sources = PIPELINES[name]
    tables = {"a": stream(600, 1), "b": stream(300, 2, col="w")}
    events = interleaved({s: tables[s] for s in sources})
    whole = vs.Engine(sql)
    expected = []
    for src, b in events:
        expected += whole.push(src, b).to_pylist()
    expected += whole.flush().to_pylist()
    assert len(expected) >= 5

    first = vs.Engine(sql)
    split = int(len(events) * cut)
    got = []
    for src, b in events[:split]:
        got += first.push(src, b).to_pylist()
    data = first.snapshot()
    second = vs.Engine(sql)
    second.restore(data)
    for src, b in events[split:]:
        got += second.push(src, b).to_pylist()
    got += second.flush().to_pylist()
    assert_rows_equal(got, expected)


def test_restore_refuses_another_query_or_a_used_engine():
    sql = PIPELINES["cascade"][0]
    eng = vs.Engine(sql)
    eng.push("a", stream(50, 3))
    data = eng.snapshot()
    with pytest.raises(ValueError, match="another query"):
        vs.Engine(sql + " ").restore(data)
    with pytest.raises(ValueError, match="fresh engine"):
        eng.restore(data)
