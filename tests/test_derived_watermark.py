"""A window over a derived stream judges lateness as the one-statement query does (docs/SQL.md
§8, "Time of derived rows"): rows that passed through a filter, a projection or an EMIT CHANGES
aggregate carry the watermark their source had just before each of them, so which rows are late
never depends on how the input was cut into batches or on the partition count; and a derived
stream whose rows have no event time (no ``_TIMESTAMP``) is windowed on its own time column, its
windows closing as its rows arrive.

Before, a derived stage judged a whole batch against the watermark of the step before it: a row
older than the lateness allowed, in the same batch as a newer one, was aggregated by a CTE, a
CREATE STREAM or a subquery and dropped by the same query over the source; and without
``_TIMESTAMP`` the derived windows closed only at the end of the input.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import velostream as vs

from reference import assert_rows_equal, duck

SECOND = 1000


def readings(n: int, seed: int, time_col: str = "_TIMESTAMP") -> pa.Table:
    """Event times that mostly advance, with some rows up to 90 s behind (late at a lateness of
    0 or 30 s, depending on the rows before them) and some NULL times; NULL keys and values."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.integers(0, 4 * SECOND, n))
    back = np.where(rng.random(n) < 0.15, rng.integers(0, 90 * SECOND, n), 0)
    ts = np.maximum(base - back, 0).astype(np.int64)
    k = rng.choice(["a", "b", "c"], n).astype(object)
    return pa.table({
        "i": pa.array(np.arange(n), type=pa.int64()),  # the arrival order, for DuckDB
        "k": pa.array(k, mask=rng.random(n) < 0.05, type=pa.string()),
        "x": pa.array(rng.integers(-50, 50, n), mask=rng.random(n) < 0.05, type=pa.int64()),
        time_col: pa.array(ts, mask=rng.random(n) < 0.03, type=pa.int64()),
    })


def split(t: pa.Table, seed: int) -> list[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, t.num_rows), 12, replace=False))
    bounds = [0, *cuts.tolist(), t.num_rows]
    return [t.slice(a, b - a).combine_chunks().to_batches()[0] for a, b in zip(bounds, bounds[1:])]


WINDOWED = ("SELECT k, COUNT(*) AS n, SUM(x) AS s, _WINDOW_START AS ws FROM {src} "
            "GROUP BY k WINDOW TUMBLING(1m){emit}")
FORMS = {
    "cte": "WITH w AS (SELECT k, x, _TIMESTAMP FROM t WHERE x IS NULL OR x > -40) {q}",
    "stream": "CREATE STREAM w AS SELECT * FROM t WHERE x IS NULL OR x > -40; {q}",
    "subquery": None,
}


def _query(form: str, emit: str, lateness: str) -> tuple[str, str]:
    """(the derived form, the same query over the source)."""
    direct = WINDOWED.format(src="t WHERE x IS NULL OR x > -40", emit=emit)
    if form == "subquery":
        derived = WINDOWED.format(src="(SELECT * FROM t WHERE x IS NULL OR x > -40) AS w", emit=emit)
    else:
        derived = FORMS[form].format(q=WINDOWED.format(src="w", emit=emit))
    with_ = f" WITH ('allowed.lateness' = '{lateness}')" if lateness else ""
    return derived + with_, direct + with_


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("emit, lateness", [("", ""), ("", "30s"), (" EMIT CHANGES", "")])
def test_a_window_over_a_derived_stream_drops_the_rows_the_direct_query_drops(
        form, emit, lateness, partitions):
    t = readings(1200, seed=len(form) + len(emit) + len(lateness))
    derived, direct = _query(form, emit, lateness)
    want = vs.query(direct, {"t": t}).to_pylist()
    for seed in (1, 2):
        got = vs.query(derived, {"t": split(t, seed)}, partitions=partitions).to_pylist()
        assert_rows_equal(got, want)
    # and the direct query itself is DuckDB's aggregate over the rows that were not late:
    # each row judged against the largest time before it, less the lateness
    if not emit:
        late_ms = 30 * SECOND if lateness else 0
        ref = duck(f"""
            WITH stamped AS (SELECT k, x, _TIMESTAMP AS ts,  -- every row moves the watermark
                   MAX(_TIMESTAMP) OVER (ORDER BY i ROWS BETWEEN UNBOUNDED PRECEDING
                                         AND 1 PRECEDING) - {late_ms} AS wm
                   FROM t)
            SELECT k, COUNT(*) AS n, SUM(x) AS s, (ts // 60000) * 60000 AS ws FROM stamped
            WHERE (x IS NULL OR x > -40) AND ts IS NOT NULL
              AND (wm IS NULL OR (ts // 60000) * 60000 + 60000 > wm)
            GROUP BY k, ws""", t=t)
        assert_rows_equal(want, ref)


def test_which_rows_are_late_does_not_depend_on_the_batches():
    """The same pipeline over the whole table, over uneven batches and row by row through
    ``vs.Engine``: the same windows."""
    t = readings(400, seed=5)
    sql = "WITH w AS (SELECT * FROM t) " + WINDOWED.format(src="w", emit="")
    whole = vs.query(sql, {"t": t}).to_pylist()
    assert_rows_equal(vs.query(sql, {"t": split(t, 9)}).to_pylist(), whole)
    eng = vs.Engine(sql)
    rows = []
    for i in range(t.num_rows):
        rows += eng.push("t", t.slice(i, 1)).to_pylist()
    rows += eng.flush().to_pylist()
    assert_rows_equal(rows, whole)


def test_a_derived_stream_without_event_time_is_windowed_on_its_own_column(partitions):
    """No ``_TIMESTAMP`` in the source: the window over the derived stream uses its time column,
    as the direct query does, and its windows close as rows arrive (not only at the end)."""
    t = readings(600, seed=3, time_col="ts")
    t = t.set_column(3, "ts", t["ts"].cast(pa.timestamp("ms")))
    q = ("SELECT k, COUNT(*) AS n, _WINDOW_START AS ws FROM {src} GROUP BY k "
         "WINDOW TUMBLING(ts, INTERVAL '1' MINUTE)")
    direct = vs.query(q.format(src="t"), {"t": t}).to_pylist()
    derived = "WITH w AS (SELECT * FROM t WHERE TRUE) " + q.format(src="w")
    got = vs.query(derived, {"t": split(t, 4)}, partitions=partitions).to_pylist()
    assert_rows_equal(got, direct)
    # pushed batch by batch, the pipeline emits each window when the direct query does
    batches = split(t, 4)
    one, two = vs.Engine(q.format(src="t")), vs.Engine(derived)
    emitted = 0
    for rb in batches[:-1]:
        a, b = one.push("t", rb).to_pylist(), two.push("t", rb).to_pylist()
        assert_rows_equal(b, a)
        emitted += len(a)
    assert emitted > 0


def test_a_cascade_of_changes_keeps_the_changes_its_first_stage_accepted():
    """An EMIT CHANGES window feeding a 5-minute window, with 30 s of lateness: a change caused
    by a row the first stage accepted late (within the lateness) is not dropped by the second
    stage (its row carries the watermark the first stage judged it by), so the second stage's
    MAX equals DuckDB's over the first stage's changes."""
    t = readings(900, seed=8)
    first = ("SELECT k, COUNT(*) AS n, _WINDOW_START AS ws FROM t GROUP BY k "
             "WINDOW TUMBLING(1m) EMIT CHANGES")
    changes = vs.query(first + " WITH ('allowed.lateness' = '30s')", {"t": t}).to_arrow()
    sql = (f"CREATE STREAM m AS {first}; "
           "SELECT k, MAX(n) AS top, _WINDOW_START AS ws5 FROM m GROUP BY k WINDOW TUMBLING(5m) "
           "WITH ('allowed.lateness' = '30s')")
    got = vs.query(sql, {"t": split(t, 6)}).to_pylist()
    ref = duck("SELECT k, MAX(n) AS top, (ws // 300000) * 300000 AS ws5 FROM c GROUP BY k, ws5",
               c=changes)
    assert_rows_equal(got, ref)


@pytest.mark.parametrize("window", ["WINDOW SLIDING(2m, 30s)", "WINDOW SESSION(20s)",
                                    "WINDOW SESSION(20s) EMIT CHANGES"])
@pytest.mark.parametrize("lateness", ["", " WITH ('allowed.lateness' = '30s')"])
def test_sliding_and_session_windows_over_a_derived_stream_equal_the_direct_query(
        window, lateness, partitions):
    t = readings(1000, seed=4)
    q = f"SELECT k, COUNT(*) AS n, SUM(x) AS s, _WINDOW_START AS ws FROM {{}} GROUP BY k {window}"
    want = vs.query(q.format("t") + lateness, {"t": t}).to_pylist()
    for derived in ("WITH w AS (SELECT k, x, _TIMESTAMP FROM t WHERE TRUE) " + q.format("w"),
                    q.format("(SELECT * FROM t) AS w")):
        got = vs.query(derived + lateness, {"t": split(t, 3)}, partitions=partitions).to_pylist()
        assert_rows_equal(got, want)
