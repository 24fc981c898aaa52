"""The job watermark, plain and over independently ordered source partitions (Kafka)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import velostream as vs
from velostream.engine import Watermark
from velostream.exec.columns import INT64_MIN


def reference(batches, lateness, registered=()):
    """Row by row: the watermark before each row = min over partitions seen (or registered) of
    their max time, never decreasing, minus the lateness."""
    part_max, wm, out = {k: INT64_MIN for k in registered}, INT64_MIN, []
    for times, parts in batches:
        got = []
        for t, k in zip(times, parts):
            if part_max:
                wm = max(wm, min(part_max.values()))
            got.append(INT64_MIN if wm == INT64_MIN else wm - lateness)
            part_max[k] = max(part_max.get(k, INT64_MIN), t)
        out.append(got)
    return out


batch = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(batch, min_size=1, max_size=5), st.sampled_from([0, 7, 1000]),
       st.sampled_from([(), (0, 1), (0, 1, 2, 3)]))
def test_partitioned_watermark_matches_a_row_by_row_reference(batches, lateness, registered):
    arrays = [(np.array([t for t, _ in b], dtype=np.int64), np.array([k for _, k in b], dtype=np.int64))
              for b in batches]
    w = Watermark(lateness)
    w.track(registered)
    got = [w.stamp(t, k).tolist() for t, k in arrays]
    assert got == reference([(t.tolist(), k.tolist()) for t, k in arrays], lateness, registered)


def test_a_partition_read_ahead_does_not_make_another_late():
    # partition 0 is read to t=600 s before partition 1 starts at t=0: with one job-wide maximum
    # every record of partition 1 would be late; with the per-partition minimum none is
    sql = ("SELECT k, COUNT(*) AS n FROM s GROUP BY k WINDOW TUMBLING(1m) EMIT FINAL")
    t = list(range(0, 600_000, 1000))
    data = {"k": ["a"] * 600 + ["b"] * 600, "_TIMESTAMP": t + t, "_PARTITION": [0] * 600 + [1] * 600}
    eng = vs.Engine(sql)
    eng.watermark_by = "_PARTITION"
    eng.source_partitions([0, 1])
    rows = eng.push("s", data).to_pylist() + eng.flush().to_pylist()
    assert eng.stats["late_records"] == 0
    assert sorted((r["k"], r["n"]) for r in rows) == [("a", 60)] * 10 + [("b", 60)] * 10
    plain = vs.Engine(sql)
    plain.push("s", data)
    plain.flush()
    # the job-wide maximum drops every record of partition 1 but those of the last, open window
    assert plain.stats["late_records"] == 540
