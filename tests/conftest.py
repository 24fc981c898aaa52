"""Shared fixtures: the partition counts whole-engine tests run at, and the Kafka broker.

``partitions`` > 1 runs the partition threads of the job server (``velostream.jobs``); 1 runs one
engine in the calling thread.
"""
from __future__ import annotations

import os

import pytest

# tests/ itself is importable (reference.py, kafka_broker.py): pytest puts a rootdir conftest's
# folder on sys.path (the default "prepend" import mode); the source tree never goes there
pytest_plugins = ["kafka_broker"]  # a real Kafka-protocol broker (Tansu), started by the tests


def pytest_configure(config) -> None:
    """The tests run against the installed package (README: ``pip install ".[test,bench]"``).
    A checkout on sys.path without its compiled kernels (e.g. ``python -m pytest`` before any
    install) would shadow it and fail everywhere: say so once, clearly."""
    try:
        import velostream._core.aggregate  # noqa: F401  the compiled kernels
    except ImportError as exc:
        import velostream
        raise pytest.UsageError(
            f"velostream imported from {os.path.dirname(velostream.__file__)} has no compiled "
            f"kernels ({exc}); install it first: pip install \".[test,bench]\" and run pytest "
            "(not python -m pytest from a checkout)") from None


def partition_params(counts=(1, 2, 4)):
    """``pytest.param`` per partition count, with readable ids."""
    return [pytest.param(p, id=f"p{p}") for p in counts]


@pytest.fixture(params=partition_params())
def partitions(request) -> int:
    """Partition count for ``vs.query(..., partitions=...)``: 1 (V1), 2 and 4 (V2).

    At 2 partitions the job's steps are made small (64 rows): a windowed GROUP BY whose windows
    hold at most half a step is routed by window in runs of about a step (exec/router.py), so a
    test's few thousand rows make many runs over both partitions; larger windows are routed by
    key. A compiled GROUP BY emitting changes takes the scan split (jobs/partition_scan.py)
    when its first batch has at most one group per 2 rows, and its batches of more than 16 rows
    go to the threads. At 4 the sizes are the defaults, as a user's job runs."""
    if request.param == 2:
        from velostream.jobs import partition_scan, partition_threads
        mp = request.getfixturevalue("monkeypatch")
        mp.setattr(partition_threads, "STEP_ROWS", 64)
        mp.setattr(partition_scan, "STEP_ROWS", 64)
        mp.setattr(partition_scan, "INLINE_ROWS", 16)
        mp.setattr(partition_scan, "SCAN_ROWS_PER_GROUP", 2)
    return request.param


CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Loads the checkout's bench/ package (or a tools/ script) by its path, for the tests of those
# folders. Written as source so a subprocess can run it too: the checkout never goes on sys.path,
# where its uncompiled velostream/ could shadow the installed package.
LOAD_FROM_CHECKOUT = """
def load_from_checkout(name, checkout):
    import importlib.util, os, sys
    path = os.path.join(checkout, name)
    if os.path.isdir(path):
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(path, "__init__.py"), submodule_search_locations=[path])
    else:
        spec = importlib.util.spec_from_file_location(os.path.basename(name), path + ".py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
"""
exec(LOAD_FROM_CHECKOUT)


def subprocess_env(extra: dict | None = None) -> dict:
    """Environment for a ``python -m velostream`` subprocess of this interpreter: it imports the
    installed velostream, as the tests do (nothing is added to PYTHONPATH)."""
    env = dict(os.environ, **(extra or {}))
    env.pop("VELOSTREAM_LOG", None)
    # ``python -m velostream`` puts its working directory first on sys.path: from a checkout that
    # would import the uncompiled source tree. Python >= 3.11 leaves it out with this.
    env["PYTHONSAFEPATH"] = "1"
    return env


