"""Python aggregate functions (``vs.udaf``, docs/FUNCTIONS.md "Python aggregates") against DuckDB's
equivalents: in GROUP BY (EMIT FINAL, and EMIT CHANGES row by row against DuckDB's running
window aggregates), TUMBLING, SLIDING and SESSION windows and a global aggregate (two-phase at 2
and 4 partitions: partial states merged with the class's ``merge``) and Flink's CUMULATE, with FILTER, at 1, 2 and 4
partitions with batch splits; state through engine and pipeline snapshots; a job file loading
them with 'udf.modules'; an exception in ``update`` as bad records under LogAndContinue."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import velostream as vs
from velostream.errors import SqlError, UserFunctionError

from conftest import subprocess_env
from reference import (as_tuples, assert_changelog_equal, assert_rows_equal, collapse_session_changes,
                       duck, split_batches)

CALLS: list[int] = []  # lengths of the arrays update got


class GeoMean:
    """exp(mean(ln x)): state (sum of logs, count)."""

    def init(self):
        return [0.0, 0]

    def update(self, state, x):
        CALLS.append(len(x))
        state[0] += pc.sum(pc.ln(x)).as_py() or 0.0
        state[1] += len(x)
        return state

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1]]

    def finish(self, state):
        return math.exp(state[0] / state[1]) if state[1] else None


class Median:
    """Holds the values (a list of numpy arrays)."""

    def init(self):
        return []

    def update(self, state, x):
        state.append(x.to_numpy())
        return state

    def merge(self, a, b):
        return a + b

    def finish(self, state):
        return float(np.median(np.concatenate(state))) if state else None


class WeightedSum:
    """Two arguments: sum(x * w) over rows where both are non-NULL."""

    def init(self):
        return None

    def update(self, state, x, w):
        s = pc.sum(pc.multiply(x, w)).as_py()
        return s if state is None else state + s

    def merge(self, a, b):
        return b if a is None else a if b is None else a + b

    def finish(self, state):
        return state


class DistinctText:
    """Text in, BIGINT out."""

    def init(self):
        return set()

    def update(self, state, s):
        state.update(s.to_pylist())
        return state

    def merge(self, a, b):
        return a | b

    def finish(self, state):
        return len(state)


class RunningSum:
    """A sum that also gives ``update_running`` (EMIT CHANGES: one call per group per batch)."""

    def init(self):
        return None

    def update(self, state, x):
        s = pc.sum(x).as_py()
        return s if state is None else state + s

    def update_running(self, state, x):
        CALLS.append(len(x))
        sums = pc.add(pc.cumulative_sum(x), state or 0.0)
        return sums[-1].as_py(), sums

    def merge(self, a, b):
        return b if a is None else a if b is None else a + b

    def finish(self, state):
        return state


vs.udaf("rsum", RunningSum)
vs.udaf("geomean_py", GeoMean)
vs.udaf("median_py", Median)
vs.udaf("wsum", WeightedSum)
vs.udaf("ndistinct", DistinctText, returns="BIGINT")

N = 900
SPLIT = [1, 13, 150, 400]
GAP = 4_000


def _table(n: int = N, seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)

    def nulls(frac=0.12):
        return rng.random(n) < frac

    keys = np.array(["a", "b", "c", "d", "é"])[np.where(rng.random(n) < 0.4, 0,
                                                        rng.integers(0, 5, n))].astype(object)
    keys[-2:] = ["solo", "allnull"]  # a one-row group; a group whose values are all NULL
    keys[rng.random(n) < 0.01] = "allnull"
    alln = keys == "allnull"
    x = np.round(np.exp(rng.normal(1.0, 1.0, n)), 3)
    x[rng.random(n) < 0.05] = 1.0
    words = np.array(["", "apple", "Apple", "é", "zz", "a b"])
    ts = 1_700_000_000_000 + np.cumsum(rng.integers(0, 1500, n)).astype(np.int64)
    return pa.table({
        "seq": pa.array(np.arange(n, dtype=np.int64)),
        "k": pa.array(keys.tolist(), pa.string(), mask=nulls(0.05) & ~alln),
        "x": pa.array(x, pa.float64(), mask=nulls() | alln),
        "w": pa.array(rng.integers(1, 5, n).astype(np.float64), mask=nulls(0.1)),
        "xi": pa.array(rng.integers(-30, 60, n), pa.int64(), mask=nulls() | alln),
        "s": pa.array(words[rng.integers(0, len(words), n)].tolist(), pa.string(),
                      mask=nulls() | alln),
        "ts": pa.array(ts),
    })


T = _table()

# (velostream, DuckDB)
AGGS = [
    ("geomean_py(x)", "exp(avg(ln(x)))"),
    ("median_py(xi)", "median(xi)::DOUBLE"),
    ("wsum(x, w)", "sum(x * w)"),
    ("ndistinct(s)", "count(DISTINCT s)"),
    ("geomean_py(x) FILTER (WHERE xi > 0)", "exp(avg(ln(x)) FILTER (WHERE xi > 0))"),
    ("median_py(x) FILTER (WHERE s <> '')", "median(x) FILTER (WHERE s <> '')"),
    ("sum(xi)", "sum(xi)"),  # a built-in beside them
    ("rsum(x)", "sum(x)"),
    ("rsum(x) FILTER (WHERE xi > 0)", "sum(x) FILTER (WHERE xi > 0)"),
]
OURS = ", ".join(f"{a} AS a{i}" for i, (a, _) in enumerate(AGGS))
THEIRS = ", ".join(d for _, d in AGGS)


def run(sql: str, partitions: int = 1, seed: int = 0, table: pa.Table = T) -> list[tuple]:
    batches = split_batches(table, SPLIT, seed=seed)
    return as_tuples(vs.query(sql, {"t": batches}, partitions=partitions).to_pylist())


def test_group_by_final(partitions):
    CALLS.clear()
    got = run(f"SELECT k, {OURS} FROM t GROUP BY k EMIT FINAL", partitions)
    assert {"allnull", "solo", None} <= {r[0] for r in got}
    assert_rows_equal(got, duck(f"SELECT k, {THEIRS} FROM t GROUP BY k", t=T))
    assert max(CALLS) > 1  # a group's rows of a batch in one call, not one call per row


def test_group_by_changes_row_by_row(partitions):
    """EMIT CHANGES: each row emits its group's value after it, per key in input order: DuckDB's
    running aggregates over the rows so far (ROWS UNBOUNDED PRECEDING)."""
    CALLS.clear()
    got = run(f"SELECT k, {OURS} FROM t GROUP BY k EMIT CHANGES", partitions, seed=2)
    assert len(got) == N
    assert max(CALLS) > 1  # update_running: a group's rows of a batch in one call
    running = ("exp(avg(ln(x)) OVER w), (median(xi) OVER w)::DOUBLE, sum(x * w) OVER w, "
               "count(DISTINCT s) OVER w, exp(avg(ln(x)) FILTER (WHERE xi > 0) OVER w), "
               "median(x) FILTER (WHERE s <> '') OVER w, sum(xi) OVER w, sum(x) OVER w, "
               "sum(x) FILTER (WHERE xi > 0) OVER w")
    want = duck(f"SELECT k, {running} FROM t WINDOW w AS (PARTITION BY k ORDER BY seq ROWS "
                "BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) ORDER BY seq", t=T)
    assert_changelog_equal(got, want, [0])


def test_global_two_phase(partitions):
    got = run(f"SELECT {OURS} FROM t EMIT FINAL", partitions, seed=3)
    assert_rows_equal(got, duck(f"SELECT {THEIRS} FROM t", t=T))
    assert "two_phase" in vs.explain(f"SELECT {OURS} FROM t EMIT FINAL", {"t": T})


def test_global_over_no_rows(partitions):
    got = run(f"SELECT {OURS} FROM t WHERE xi > 1000 EMIT FINAL", partitions)
    assert_rows_equal(got, duck(f"SELECT {THEIRS} FROM t WHERE xi > 1000", t=T))


@pytest.mark.parametrize("key", ["k", None])
def test_tumbling(partitions, key):
    size = 20_000
    kcol = f"{key}, " if key else ""
    group = f"GROUP BY {key} " if key else ""
    got = run(f"SELECT {kcol}_WINDOW_START AS ws, {OURS} FROM t {group}"
              f"WINDOW TUMBLING(ts, INTERVAL '20' SECOND) EMIT FINAL", partitions, seed=1)
    want = duck(f"SELECT {kcol}ws, {THEIRS} FROM (SELECT *, (ts // {size}) * {size} AS ws "
                f"FROM t) GROUP BY {kcol}ws", t=T)
    assert len(want) > 20
    assert_rows_equal(got, want)


def test_tumbling_changes_end_in_final_rows(partitions):
    sql = (f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k "
           f"WINDOW TUMBLING(ts, INTERVAL '20' SECOND) EMIT ")
    changes = run(sql + "CHANGES", partitions, seed=5)
    assert len(changes) == N
    last = {}
    for r in changes:
        last[(r[0], r[1])] = r
    assert_rows_equal(list(last.values()), run(sql + "FINAL", partitions))


def test_sliding(partitions):
    size, adv = 30_000, 10_000
    got = run(f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k "
              f"WINDOW SLIDING(ts, 30s, 10s) EMIT FINAL", partitions, seed=2)
    want = duck(f"SELECT k, ws, {THEIRS} FROM (SELECT t.*, w.ws FROM t, "
                f"(SELECT DISTINCT (ts // {adv}) * {adv} - o AS ws FROM t, "
                f"(SELECT unnest([0, {adv}, {2 * adv}]) AS o)) w "
                f"WHERE t.ts >= w.ws AND t.ts < w.ws + {size}) GROUP BY k, ws", t=T)
    assert_rows_equal(got, want)


def test_cumulate(partitions):
    size, step = 30_000, 10_000
    got = run(f"SELECT k, window_start, window_end, {OURS} FROM TABLE(CUMULATE(TABLE t, "
              "DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '30' SECOND)) "
              "GROUP BY window_start, window_end, k", partitions, seed=7)
    want = duck(f"SELECT k, ws, ws + e, {THEIRS} FROM (SELECT t.*, (ts // {size}) * {size} AS ws, "
                f"e FROM t, (SELECT unnest([{step}, {2 * step}, {3 * step}]) AS e) "
                f"WHERE (ts // {size}) * {size} + e > ts) GROUP BY k, ws, e", t=T)
    assert len(want) > 30
    assert_rows_equal(got, want)


def test_session(partitions):
    got = run(f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k "
              f"WINDOW SESSION(ts, {GAP}ms) EMIT FINAL", partitions, seed=4)
    sessions = (f"SELECT *, min(ts) OVER (PARTITION BY k, sid) AS ws FROM (SELECT *, "
                f"sum(CASE WHEN ts - prev >= {GAP} THEN 1 ELSE 0 END) OVER (PARTITION BY k "
                f"ORDER BY seq) AS sid FROM (SELECT *, lag(ts, 1, -{GAP}) OVER (PARTITION BY k "
                f"ORDER BY seq) AS prev FROM t))")
    want = duck(f"SELECT k, ws, {THEIRS} FROM ({sessions}) GROUP BY k, ws", t=T)
    assert len(want) > 30
    assert_rows_equal(got, want)


def test_session_changes_end_in_final_rows():
    """Sessions merge (the user's merge folds one into the other) while rows arrive."""
    sql = (f"SELECT k, _WINDOW_START AS ws, _WINDOW_END AS we, {OURS} FROM t GROUP BY k "
           f"WINDOW SESSION(ts, {GAP}ms) EMIT ")
    final = run(sql + "FINAL", seed=6)
    changes = run(sql + "CHANGES", seed=6)
    assert len(changes) == N
    assert_rows_equal(collapse_session_changes(changes, [0], 1, 2), final)


SNAP_SQL = {
    "tumbling": f"SELECT k, _WINDOW_START AS ws, {OURS} FROM t GROUP BY k WINDOW TUMBLING(ts, 20s) "
                "EMIT FINAL",
    "group_by": f"SELECT k, {OURS} FROM t GROUP BY k EMIT FINAL",
    "changes": f"SELECT k, {OURS} FROM t GROUP BY k EMIT CHANGES",
    "global": f"SELECT {OURS} FROM t EMIT FINAL",
    "session": f"SELECT k, {OURS} FROM t GROUP BY k WINDOW SESSION(ts, {GAP}ms) EMIT FINAL",
}


@pytest.mark.parametrize("name", list(SNAP_SQL))
def test_snapshot_restore_round_trip(name):
    """The states pickled mid-stream into an engine with another string dictionary (and a
    snapshot of that one restored again) answer exactly as the uninterrupted engine."""
    sql = SNAP_SQL[name]

    def rows(results):
        return [r for res in results for r in as_tuples(res.to_pylist())]

    first, rest = T.slice(0, N // 2), T.slice(N // 2)
    ref = vs.Engine(sql)
    want = rows([ref.push("t", first), ref.push("t", rest), ref.flush()])
    eng = vs.Engine(sql)
    got = rows([eng.push("t", first)])
    blob = eng.snapshot()
    fresh = vs.Engine(sql)
    for s in ("zzz", "apple", "", "é", "k"):
        fresh.strings.code(s)
    fresh.restore(blob)
    again = vs.Engine(sql)
    again.restore(fresh.snapshot())
    got += rows([again.push("t", rest), again.flush()])
    assert len(want) > 0
    assert_rows_equal(got, want)


def test_pipeline_snapshot_of_a_cascade():
    """A two-stage pipeline with a Python aggregate in each stage, snapshotted mid-stream."""
    sql = ("CREATE STREAM m AS SELECT k, median_py(xi) AS med, wsum(x, w) AS ws FROM t "
           "GROUP BY k WINDOW TUMBLING(10s); "
           "SELECT k, geomean_py(ws) AS g, median_py(med) AS mm FROM m GROUP BY k "
           "WINDOW TUMBLING(1m)")
    t = T.append_column("_TIMESTAMP", T["ts"])
    batches = split_batches(t, 60)
    whole = vs.Engine(sql)
    want = [r for b in batches for r in whole.push("t", b).to_pylist()] + whole.flush().to_pylist()
    assert len(want) > 10
    cut = len(batches) // 2
    first = vs.Engine(sql)
    got = [r for b in batches[:cut] for r in first.push("t", b).to_pylist()]
    second = vs.Engine(sql)
    second.restore(first.snapshot())
    got += [r for b in batches[cut:] for r in second.push("t", b).to_pylist()]
    got += second.flush().to_pylist()
    assert_rows_equal(as_tuples(got), as_tuples(want))


class Unlucky:
    """A sum whose update raises on a 13 (rows with 13 are bad records)."""

    def init(self):
        return 0

    def update(self, state, x):
        if pc.any(pc.equal(x, 13)).as_py():
            raise ValueError("13 is unlucky")
        return state + pc.sum(x).as_py()

    def merge(self, a, b):
        return a + b

    def finish(self, state):
        return state


vs.udaf("unlucky_sum", Unlucky, returns="BIGINT")


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_an_exception_in_update_is_a_bad_record(partitions):
    """The rows update raises on leave no trace (not in any aggregate, no group of their own):
    counted as failed and dead-lettered with the function's name; vs.query raises."""
    t = T.append_column("v", pc.if_else(pc.equal(T["seq"], 7), 13, T["xi"]))
    bad = pc.fill_null(pc.equal(t["v"], 13), False)
    assert 1 < pc.sum(bad).as_py() < 30
    sql = "SELECT k, unlucky_sum(v) AS s, count(*) AS n, median_py(x) AS m FROM t GROUP BY k"
    with pytest.raises(UserFunctionError, match="UNLUCKY_SUM raised ValueError in update: 13"):
        vs.query(sql + " EMIT FINAL", {"t": t})
    job = vs.Job(sql + " EMIT FINAL", {"t": split_batches(t, SPLIT)}, partitions=partitions,
                 failure_strategy="LogAndContinue")
    stats = job.run()
    assert stats.records_failed == pc.sum(bad).as_py()
    reasons = [reason for reason, _ in job.dead_letters]
    assert reasons and all("UNLUCKY_SUM" in r for r in reasons)
    failed = pa.concat_tables([pa.Table.from_batches([b]) for _, b in job.dead_letters])
    assert failed["v"].to_pylist() == [13] * pc.sum(bad).as_py()
    got = as_tuples(job.result().to_pylist())
    assert_rows_equal(got, duck("SELECT k, coalesce(sum(v), 0), count(*), median(x) FROM t "
                                "WHERE v IS DISTINCT FROM 13 GROUP BY k", t=t))


class FailsToFinish(Unlucky):
    def finish(self, state):
        raise RuntimeError("no")


vs.udaf("fails_to_finish", FailsToFinish)


def test_errors_name_the_function():
    with pytest.raises(UserFunctionError, match="FAILS_TO_FINISH raised RuntimeError in finish"):
        vs.query("SELECT fails_to_finish(w) FROM t EMIT FINAL", {"t": T})
    with pytest.raises(SqlError, match="takes one or more arguments"):
        vs.query("SELECT wsum(*) FROM t", {"t": T})
    with pytest.raises(UserFunctionError, match="WSUM raised TypeError in update"):
        vs.query("SELECT wsum(x, w, x) FROM t", {"t": T})  # one array per argument: 3 for 2
    with pytest.raises(SqlError, match="did you mean GEOMEAN_PY"):
        vs.query("SELECT geomean_pi(x) FROM t", {"t": T})
    with pytest.raises(SqlError, match="aggregate MEDIAN_PY is not allowed here"):
        vs.query("SELECT x FROM t WHERE median_py(x) > 1", {"t": T})


def test_bad_registrations_are_refused():
    with pytest.raises(ValueError, match="built-in"):
        vs.udaf("sum", GeoMean)
    with pytest.raises(ValueError, match="built-in"):
        vs.udaf("upper", GeoMean)
    with pytest.raises(ValueError, match="lacks merge, finish"):
        vs.udaf("half", type("Half", (), {"init": lambda s: 0, "update": lambda s, a, x: a}))
    with pytest.raises(ValueError, match="not a SQL type"):
        vs.udaf("g2", GeoMean, returns="COLOR")
    with pytest.raises(ValueError, match="Python aggregate"):
        vs.udf("geomean_py", lambda x: x)
    with pytest.raises(ValueError, match="built-in aggregate"):
        vs.udf("median", lambda x: x)
    with pytest.raises(ValueError, match="Python scalar function"):
        vs.udf("scalar_only", lambda x: x)
        vs.udaf("scalar_only", GeoMean)
    # Flink's group window functions are read as the statement's window (docs/SQL.md §10): a
    # Python function of that name would never run, or be replaced by the window's start
    for name in ("tumble_start", "HOP", "session_rowtime", "Tumble_End"):
        with pytest.raises(ValueError, match="group window function"):
            vs.udf(name, lambda x: x)
        with pytest.raises(ValueError, match="group window function"):
            vs.udaf(name, GeoMean)


def test_a_job_file_loads_aggregates_and_dead_letters_their_failures(tmp_path):
    mod = tmp_path / "my_aggregates.py"
    mod.write_text(
        "import pyarrow.compute as pc\nimport velostream as vs\n\n"
        "class Total:\n"
        "    def init(self): return 0\n"
        "    def update(self, s, x):\n"
        "        if pc.any(pc.less(x, 0)).as_py():\n"
        "            raise ValueError('negative')\n"
        "        return s + pc.sum(x).as_py()\n"
        "    def merge(self, a, b): return a + b\n"
        "    def finish(self, s): return s\n\n"
        "vs.udaf('positive_total', Total, returns='BIGINT')\n")
    rows = [{"k": "ab"[i % 2], "x": (-1 if i == 5 else i)} for i in range(20)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    job = tmp_path / "job.sql"
    job.write_text(f"""CREATE STREAM o AS SELECT k, positive_total(x) AS total FROM s GROUP BY k
EMIT FINAL WITH ('s.type' = 'file_source', 's.path' = '{src}', 'o.type' = 'file_sink',
      'o.path' = '{out}', 'udf.modules' = 'my_aggregates',
      'failure.strategy' = 'LogAndContinue', 'dead.letter.path' = '{dead}')""")
    r = subprocess.run([sys.executable, "-m", "velostream", "run", str(job)], capture_output=True,
                       text=True, cwd=tempfile.gettempdir(), timeout=120,
                       env=subprocess_env({"PYTHONPATH": str(tmp_path)}))
    assert r.returncode == 0, r.stderr
    got = {d["k"]: d["total"] for d in map(json.loads, out.read_text().splitlines())}
    want = {}
    for row in rows:
        if row["x"] >= 0:
            want[row["k"]] = want.get(row["k"], 0) + row["x"]
    assert got == want
    entries = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(entries) == 1 and "POSITIVE_TOTAL" in entries[0]["error"], entries


class Latest:
    """TIMESTAMP in (as timestamp[ms]), TIMESTAMP out."""

    def init(self):
        return None

    def update(self, state, t):
        m = pc.max(t).as_py()
        return m if state is None or m > state else state

    def merge(self, a, b):
        return b if a is None else a if b is None else max(a, b)

    def finish(self, state):
        return state


class MaxText:
    """Text in, text out."""

    def init(self):
        return None

    def update(self, state, s):
        m = max(s.to_pylist())
        return m if state is None else max(state, m)

    def merge(self, a, b):
        return b if a is None else a if b is None else max(a, b)

    def finish(self, state):
        return state


class DecimalSum:
    """DECIMAL in (decimal128), DECIMAL out."""

    def init(self):
        return None

    def update(self, state, d):
        s = pc.sum(d).as_py()
        return s if state is None else state + s

    def merge(self, a, b):
        return b if a is None else a if b is None else a + b

    def finish(self, state):
        return state


vs.udaf("latest", Latest, returns="TIMESTAMP")
vs.udaf("max_text", MaxText, returns="VARCHAR")
vs.udaf("dsum", DecimalSum, returns="DECIMAL(18, 2)")


def test_argument_and_result_types(partitions):
    t = T.append_column("d", pc.cast(pc.divide(pc.cast(T["xi"], pa.float64()), 4),
                                     pa.decimal128(9, 2)))
    got = run("SELECT k, latest(EPOCH_MS(ts)) = max(EPOCH_MS(ts)) AS same_time, max_text(s), "
              "dsum(d) FROM t GROUP BY k EMIT FINAL", partitions, table=t)
    want = duck("SELECT k, true, max(s), sum(d) FROM t GROUP BY k", t=t)
    assert_rows_equal(got, want)


class Product3:
    """Three arguments: sum(a * b * c) over rows where none is NULL."""

    def init(self):
        return None

    def update(self, state, a, b, c):
        s = pc.sum(pc.multiply(pc.multiply(a, b), pc.cast(c, pa.float64()))).as_py()
        return s if state is None else state + s

    def merge(self, a, b):
        return b if a is None else a if b is None else a + b

    def finish(self, state):
        return state


vs.udaf("product3", Product3)


def test_three_arguments(partitions):
    """One Arrow array per argument; calls differing only in their third argument are two
    aggregates."""
    got = run("SELECT k, product3(x, w, xi) AS a, product3(x, w, w) AS b, "
              "product3(x, w, xi) FILTER (WHERE s <> '') AS c FROM t GROUP BY k EMIT FINAL",
              partitions, seed=8)
    want = duck("SELECT k, sum(x * w * xi), sum(x * w * w), sum(x * w * xi) FILTER (WHERE s <> '') "
                "FROM t GROUP BY k", t=T)
    assert_rows_equal(got, want)
    assert "PRODUCT3(x, w, xi)" in vs.explain("SELECT product3(x, w, xi) FROM t", {"t": T})


@pytest.mark.parametrize("emit", ["CHANGES", "FINAL"])
def test_late_rows_in_windows_match_the_built_ins(partitions, emit):
    """Out-of-order input: rows later than the watermark are dropped for the Python aggregates
    exactly as for the built-in ones beside them (per-row and update_running paths)."""
    rng = np.random.default_rng(21)
    ts = T["ts"].to_numpy() - rng.integers(0, 40_000, N) * (rng.random(N) < 0.3)
    t = T.set_column(T.schema.get_field_index("ts"), "ts", pa.array(ts))
    got = vs.query(f"SELECT k, _WINDOW_START AS ws, sum(x) AS a, rsum(x) AS b, "
                   f"sum(x * w) AS c, wsum(x, w) AS d FROM t GROUP BY k "
                   f"WINDOW TUMBLING(ts, 10s) EMIT {emit}", {"t": split_batches(t, SPLIT)},
                   partitions=partitions).to_pylist()
    assert len(got) > 50
    for r in got:
        for ours, theirs in (("b", "a"), ("d", "c")):
            assert (r[ours] is None) == (r[theirs] is None), r
            if r[ours] is not None:
                assert r[ours] == pytest.approx(r[theirs], rel=1e-9, abs=1e-9), r
