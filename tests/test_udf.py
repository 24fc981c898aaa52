"""Python scalar functions (``vs.udf``, docs/FUNCTIONS.md): called on whole Arrow arrays, right
against calling the function directly, at 1 and 2 partitions and through vs.Engine; a raising
function makes bad records under a job's failure strategy, named in the dead-letter entry; a job
file loads them with 'udf.modules'."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import velostream as vs
from velostream.errors import UserFunctionError

from conftest import subprocess_env
from reference import assert_rows_equal

CALLS = []


def scaled(x, factor):
    CALLS.append(len(x))
    return pc.multiply(pc.cast(x, pa.float64()), factor)


def initials(s):
    return pc.utf8_slice_codeunits(pc.utf8_upper(s), 0, 1)


def hour_of(ts):
    return pc.hour(ts)


vs.udf("scaled", scaled, returns="DOUBLE")
vs.udf("initials", initials, returns="VARCHAR")
vs.udf("hour_of", hour_of, returns="BIGINT")


def data(n=3000, seed=5):
    rng = np.random.default_rng(seed)
    return pa.table({"x": pa.array(rng.integers(-100, 100, n), mask=rng.random(n) < 0.1),
                     "s": pa.array(rng.choice(["alpha", "beta", "", "gamma"], n).astype(object),
                                   mask=rng.random(n) < 0.1, type=pa.string()),
                     "ts": pa.array(rng.integers(0, 10 ** 10, n), pa.int64())})


def test_udf_equals_the_function_on_the_whole_column(partitions):
    t = data()
    CALLS.clear()
    got = vs.query("SELECT scaled(x, 2.5) AS y, initials(s) AS i, hour_of(EPOCH_MS(ts)) AS h "
                   "FROM t WHERE scaled(x, 1) > -50", {"t": t.to_batches(max_chunksize=512)},
                   partitions=partitions).to_pylist()
    keep = pc.fill_null(pc.greater(pc.cast(t["x"], pa.float64()), -50), False)
    k = t.filter(keep)
    want = list(zip(pc.multiply(pc.cast(k["x"], pa.float64()), 2.5).to_pylist(),
                    initials(k["s"]).to_pylist(),
                    pc.hour(pc.cast(k["ts"], pa.timestamp("ms"))).to_pylist()))
    assert_rows_equal(got, want)
    assert max(CALLS) > 1  # whole arrays, not one call per row


def test_udf_through_an_engine_and_in_an_aggregate():
    eng = vs.Engine("SELECT initials(s) AS i, SUM(scaled(x, 1)) AS total FROM t GROUP BY i "
                    "EMIT FINAL")
    t = data(500)
    for b in t.to_batches(max_chunksize=100):
        eng.push("t", b)
    got = eng.flush().to_pylist()
    ref = t.append_column("i", initials(t["s"])).group_by("i").aggregate([("x", "sum")])
    want = {i: (None if x is None else float(x))
            for i, x in zip(ref["i"].to_pylist(), ref["x_sum"].to_pylist())}
    assert {r["i"]: r["total"] for r in got} == pytest.approx(want)


def fragile(x):
    vals = x.to_pylist()
    return pa.array([None if v is None else 10 / v for v in vals], pa.float64())


vs.udf("fragile", fragile)


def test_a_raising_function_is_a_bad_record_not_a_dead_job():
    t = {"x": [1.0, 0.0, 2.0, None, 0.0]}
    with pytest.raises(UserFunctionError, match="FRAGILE raised ZeroDivisionError"):
        vs.query("SELECT fragile(x) AS y FROM t", {"t": t})
    job = vs.Job("SELECT x, fragile(x) AS y FROM t", {"t": t})
    stats = job.run()
    assert job.result().to_pylist() == [{"x": 1.0, "y": 10.0}, {"x": 2.0, "y": 5.0},
                                        {"x": None, "y": None}]
    assert stats.records_failed == 2
    reasons = [reason for reason, _ in job.dead_letters]
    assert reasons and all("FRAGILE" in r for r in reasons)


def test_bad_registrations_are_refused():
    with pytest.raises(ValueError, match="built-in"):
        vs.udf("upper", lambda s: s, returns="VARCHAR")
    with pytest.raises(ValueError, match="not a SQL type"):
        vs.udf("f2", lambda x: x, returns="COLOR")


def test_a_job_file_loads_its_functions_with_udf_modules(tmp_path):
    mod = tmp_path / "my_functions.py"
    mod.write_text("import pyarrow.compute as pc\nimport velostream as vs\n"
                   "vs.udf('plus_one', lambda x: pc.add(x, 1), returns='BIGINT')\n")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"x": i}) + "\n" for i in range(5)))
    out = tmp_path / "out.jsonl"
    job = tmp_path / "job.sql"
    job.write_text(f"""CREATE STREAM o AS SELECT plus_one(x) AS y FROM s
WITH ('s.type' = 'file_source', 's.path' = '{src}', 'o.type' = 'file_sink',
      'o.path' = '{out}', 'udf.modules' = 'my_functions')""")
    r = subprocess.run([sys.executable, "-m", "velostream", "run", str(job)], capture_output=True,
                       text=True, cwd=tempfile.gettempdir(), timeout=120,
                       env=subprocess_env({"PYTHONPATH": str(tmp_path)}))
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["y"] for line in out.read_text().splitlines()] == [1, 2, 3, 4, 5]
