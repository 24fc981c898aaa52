"""Shared fixtures: the partition counts whole-engine tests run at.

``partitions`` > 1 runs the V2 job server (``velostream.jobs``). Until that module imports, those
parameters are expected failures (non-strict), so they flip to real tests as soon as V2 lands.
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py


def v2_available() -> bool:
    try:
        importlib.import_module("velostream.jobs")
    except ImportError:
        return False
    return True


_V2_XFAIL = pytest.mark.xfail(strict=False, reason="V2 job server not landed")


def partition_params(counts=(1, 2, 4)):
    """``pytest.param`` per partition count, the ones needing V2 marked xfail while it is missing."""
    ok = v2_available()
    return [pytest.param(p, id=f"p{p}", marks=() if p == 1 or ok else _V2_XFAIL) for p in counts]


@pytest.fixture(params=partition_params())
def partitions(request) -> int:
    """Partition count for ``vs.query(..., partitions=...)``: 1 (V1), 2 and 4 (V2)."""
    return request.param
