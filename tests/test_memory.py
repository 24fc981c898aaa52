"""Closed windows are freed: a long S3a run keeps its memory flat once warm."""
import gc

import pytest

import velostream as vs
from velostream.datagen import SCENARIOS, market_data

pytestmark = pytest.mark.timeout(600)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource
    return pages * resource.getpagesize() / 2**20


def test_s3a_ten_million_records_rss_flat():
    eng = vs.Engine(SCENARIOS["S3a"][1])
    batch = 65_536
    total = 10_000_000
    samples = []
    emitted = 0
    for i, start in enumerate(range(0, total, batch)):
        rb = market_data(min(batch, total - start), start=start)[0]
        emitted += len(eng.push("market_data", rb))
        if i % 20 == 0:
            gc.collect()
            samples.append(rss_mb())
    emitted += len(eng.flush())
    assert eng.stats["records_in"] == total
    assert emitted == (total // 60) * 20 + min(total % 60, 20)  # 20 groups per minute
    warm = samples[len(samples) // 5]  # after ~2 M records
    peak_after_warm = max(samples[len(samples) // 5:])
    assert peak_after_warm - warm < 64, (warm, peak_after_warm, samples)
    # the group table only ever holds the open windows, not every window seen
    assert len(eng.pipeline.stateful.table) <= 2 * 20
