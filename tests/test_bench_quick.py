"""Smoke tests of the benchmark suite (``bench/``): it runs, it writes its files, it verifies.

No timing assertions: the numbers belong to ``python -m bench``, not to the test suite.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pa = pytest.importorskip("pyarrow")
pytest.importorskip("duckdb")
pyperf = pytest.importorskip("pyperf")  # the bench extra: velostream[bench]

from conftest import CHECKOUT, LOAD_FROM_CHECKOUT, load_from_checkout  # noqa: E402

load_from_checkout("bench", CHECKOUT)
from bench import _harness, peers  # noqa: E402
from bench.data import SCENARIOS  # noqa: E402
from bench.verify import VerificationError, checksum, verify  # noqa: E402

RECORDS = 3_000


def _suite(args, tmp_path, env=None, timeout=240):
    """Run ``python -m bench`` the way a user would, but resolving the installed velostream
    first (bench/ is loaded by its path; the checkout is not put on sys.path)."""
    code = (LOAD_FROM_CHECKOUT + "load_from_checkout('bench', %r)\n"
            "import sys; from bench.suite import main; sys.exit(main(sys.argv[1:]))" % CHECKOUT)
    return subprocess.run([sys.executable, "-c", code, *args, "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _peers():
    return [s for s in _harness.PEER_SYSTEMS if _harness.available(s)[0]]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_peers_agree_with_duckdb(name):
    sc = SCENARIOS[name]
    wl = _harness.workload(name, RECORDS)
    assert wl.reference.rows > 0
    for system in _peers():
        out = _harness.prepare(system, sc, wl.batches)()
        verify(out, wl.reference, system=system, scenario=name)


def test_verify_rejects_corrupted_results():
    sc = SCENARIOS["s3a_tumbling"]
    batches = sc.generate(RECORDS)
    good = peers.prepare_duckdb(sc, batches)()
    reference = checksum(good, sc.columns)

    verify(good.take(list(range(good.num_rows))[::-1]), reference)  # order does not matter

    dropped = good.slice(1)
    with pytest.raises(VerificationError, match="rows"):
        verify(dropped, reference)

    values = good.column("avg_price").to_pylist()
    values[7] += 0.5
    nudged = good.set_column(good.schema.get_field_index("avg_price"), "avg_price",
                             pa.array(values))
    with pytest.raises(VerificationError, match="avg_price"):
        verify(nudged, reference)

    # the same values under the wrong keys: sums are unchanged, the key-weighted sums are not
    counts = good.column("trade_count").to_pylist()
    traders = good.column("trader_id").to_pylist()
    i = next(k for k in range(1, len(counts))
             if counts[k] != counts[0] and traders[k] != traders[0])
    counts[0], counts[i] = counts[i], counts[0]
    swapped = good.set_column(good.schema.get_field_index("trade_count"), "trade_count",
                              pa.array(counts))
    with pytest.raises(VerificationError, match="key-weighted"):
        verify(swapped, reference)

    with pytest.raises(VerificationError, match="no column"):
        verify(good.drop_columns(["total_value"]), reference)


def test_quick_suite_writes_results(tmp_path):
    pytest.importorskip("matplotlib")
    proc = _suite(["--quick", "--records", str(RECORDS)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result] = tmp_path.glob("*-quick.json")
    assert result.with_suffix(".md").exists()
    assert result.with_suffix(".png").exists()
    suite = pyperf.BenchmarkSuite.load(str(result))
    names = set(suite.get_benchmark_names())
    for name in SCENARIOS:
        assert f"{name}/duckdb" in names
    bench = suite.get_benchmark("s2_group_by/duckdb")
    assert bench.get_metadata()["records"] == RECORDS
    table = result.with_suffix(".md").read_text()
    assert "| scenario |" in table and "duckdb" in table


def test_quick_suite_rejects_a_wrong_result(tmp_path):
    proc = _suite(["--quick", "--records", str(RECORDS), "--scenarios", "S2",
                   "--systems", "duckdb,python"], tmp_path,
                  env={_harness.CORRUPT_ENV: "python"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "does not match the reference" in proc.stdout
    [result] = tmp_path.glob("*-quick.json")
    names = pyperf.BenchmarkSuite.load(str(result)).get_benchmark_names()
    assert names == ["s2_group_by/duckdb"]  # the wrong row has no number
    assert "python" in result.with_suffix(".md").read_text().split("## Not measured")[1]


def test_run_benchmark_is_a_pyperf_program(tmp_path):
    out = tmp_path / "s0.json"
    script = ROOT / "bench" / "s0_select_where" / "run_benchmark.py"
    proc = subprocess.run([sys.executable, str(script), "--records", "2000", "--system",
                           "duckdb", "--debug-single-value", "--quiet", "-o", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bench = pyperf.Benchmark.load(str(out))
    md = bench.get_metadata()
    assert (md["scenario"], md["system"], md["records"]) == ("s0_select_where", "duckdb", 2000)
    json.loads(out.read_text())
