"""The standard OVER frames (docs/SQL.md §6): ROWS BETWEEN n PRECEDING AND CURRENT ROW (and
ROWS n PRECEDING) is a buffer of n + 1 rows, checked against DuckDB's window functions over the
same rows in arrival order, with NULLs and batch splits, at 1, 2 and 4 partitions; EMIT CHANGES
on a per-row query changes nothing."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import SqlError, UnsupportedError

from reference import assert_rows_equal, duck


def data(n=600, seed=4):
    rng = np.random.default_rng(seed)
    return pa.table({"id": pa.array(np.arange(n)),
                     "k": pa.array(rng.choice(["a", "b", "c"], n).astype(object),
                                   mask=rng.random(n) < 0.05, type=pa.string()),
                     "x": pa.array(rng.integers(-50, 50, n).astype(float),
                                   mask=rng.random(n) < 0.1)})


@pytest.mark.parametrize("frame,duck_frame", [
    ("ROWS BETWEEN 3 PRECEDING AND CURRENT ROW", "ROWS BETWEEN 3 PRECEDING AND CURRENT ROW"),
    ("ROWS 5 PRECEDING", "ROWS 5 PRECEDING"),
    ("ROWS BETWEEN 0 PRECEDING AND CURRENT ROW", "ROWS BETWEEN CURRENT ROW AND CURRENT ROW"),
])
def test_standard_frame_is_a_buffer(frame, duck_frame, partitions):
    t = data()
    fns = "SUM(x) OVER w AS s, AVG(x) OVER w AS a, MIN(x) OVER w AS lo, COUNT(x) OVER w AS n"
    ours = fns.replace("OVER w", f"OVER (PARTITION BY k ORDER BY id {frame})")
    got = vs.query(f"SELECT id, {ours} FROM t EMIT CHANGES",
                   {"t": t.to_batches(max_chunksize=70)}, partitions=partitions)
    ref = duck(f"SELECT id, {fns} FROM t WINDOW w AS (PARTITION BY k ORDER BY id {duck_frame})",
               t=t)
    assert_rows_equal(got.to_pylist(), ref)


def test_emit_changes_on_a_projection_changes_nothing():
    t = data(50)
    assert (vs.query("SELECT id, x FROM t WHERE x > 0 EMIT CHANGES", {"t": t}).to_pylist()
            == vs.query("SELECT id, x FROM t WHERE x > 0", {"t": t}).to_pylist())


@pytest.mark.parametrize("sql,exc,part", [
    ("SELECT SUM(x) OVER (PARTITION BY k ROWS UNBOUNDED PRECEDING) AS s FROM t",
     UnsupportedError, "UNBOUNDED"),
    ("SELECT SUM(x) OVER (ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS s FROM t",
     UnsupportedError, "CURRENT ROW"),
    ("SELECT id FROM t EMIT FINAL", SqlError, "EMIT FINAL applies to GROUP BY"),
])
def test_frames_not_kept_in_bounded_state_are_refused(sql, exc, part):
    with pytest.raises(exc, match=part):
        vs.query(sql, {"t": data(20)})
