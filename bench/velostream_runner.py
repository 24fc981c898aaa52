"""velostream through its public API, in the same protocol as the peers (see ``bench.peers``).

Systems:

- ``velostream-v1``: ``vs.query(sql, sources, partitions=1)``: one engine in the calling thread.
- ``velostream-v2-pN``: the V2 job server with N partition threads. For N > 1 that is
  ``vs.query(sql, sources, partitions=N)``. V2 at one partition needs a way to ask for the job
  server explicitly; :func:`_v2_kwargs` looks for one in ``vs.query``'s signature and the system
  is reported unavailable until there is one.

Timed: the whole ``vs.query`` call (string encoding, planning, execution, end-of-input flush)
plus ``Result.to_arrow()``. The input is the same list of Arrow record batches the peers get.

Until ``import velostream`` works (the engine is being built), every velostream system reports
itself unavailable and the suite leaves it out with that reason.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

import pyarrow as pa

from bench.data import S0_SQL, Scenario, orders

DEFAULT_PARTITIONS = (1, 2, 4)

#: keyword arguments of ``vs.query`` that could select the V2 job server, tried in this order
_V2_SWITCHES = (("processor", "v2"),)  # vs.query(..., processor="v2") runs the job server


def system_name(partitions: int | None) -> str:
    """``None`` is V1; an int is V2 with that many partitions."""
    return "velostream-v1" if partitions is None else f"velostream-v2-p{partitions}"


def parse_system(system: str) -> int | None:
    """The inverse of :func:`system_name`: ``None`` for V1, else the V2 partition count."""
    if system == "velostream-v1":
        return None
    prefix = "velostream-v2-p"
    if system.startswith(prefix) and system[len(prefix):].isdigit():
        return int(system[len(prefix):])
    raise ValueError(f"not a velostream system: {system!r}")


def is_velostream(system: str) -> bool:
    return system.startswith("velostream-")


def _import():
    import velostream as vs  # noqa: PLC0415 - optional until the engine lands
    if not hasattr(vs, "query"):
        raise ImportError("velostream has no query() yet")
    return vs


def _v2_kwargs(vs) -> dict[str, Any] | None:
    try:
        params = inspect.signature(vs.query).parameters
    except (TypeError, ValueError):
        return None
    for name, value in _V2_SWITCHES:
        if name in params:
            return {name: value}
    return None


@functools.lru_cache(maxsize=None)
def available(system: str) -> tuple[bool, str]:
    """Whether this velostream system can run here, and why not.

    Besides importing, it runs S0 on two rows: a mode that raises ImportError or
    NotImplementedError (e.g. V2 before the job server lands) is reported as not available yet.
    Any other error counts as available, so that the real run fails loudly on it.
    """
    try:
        vs = _import()
    except Exception as exc:
        return False, f"velostream is not importable yet ({type(exc).__name__}: {exc})"
    partitions = parse_system(system)
    if partitions == 1 and _v2_kwargs(vs) is None:
        return False, ("vs.query has no switch to run the V2 job server at 1 partition "
                       "(see bench/velostream_runner.py:_V2_SWITCHES)")
    try:
        vs.query(S0_SQL, {"orders": orders(2)}, **query_kwargs(system))
    except (ImportError, NotImplementedError) as exc:
        return False, f"not available yet ({type(exc).__name__}: {exc})"
    except Exception:
        pass
    return True, ""


def query_kwargs(system: str) -> dict[str, Any]:
    vs = _import()
    partitions = parse_system(system)
    if partitions is None:
        return {"partitions": 1}
    kwargs: dict[str, Any] = {"partitions": partitions}
    if partitions == 1:
        kwargs.update(_v2_kwargs(vs) or {})
    return kwargs


def prepare(system: str, sc: Scenario, batches: list[pa.RecordBatch]):
    """Untimed setup for one velostream system; returns the timed zero-argument callable."""
    vs = _import()
    kwargs = query_kwargs(system)
    sources = {sc.source: batches}
    sql = sc.sql

    def run() -> pa.Table:
        return vs.query(sql, sources, **kwargs).to_arrow()

    return run


def engine(sql: str):
    """A push-based ``vs.Engine`` (for the latency bench), or ImportError before the engine."""
    vs = _import()
    if not hasattr(vs, "Engine"):
        raise ImportError("velostream has no Engine yet")
    return vs.Engine(sql)
