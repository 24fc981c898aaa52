"""The benchmark inputs and queries of the original engine's scenarios (bench/README.md).

Data is generated vectorised (numpy, pyarrow) as a list of ``pyarrow.RecordBatch`` of
``BATCH_ROWS`` rows. String columns are real strings (``pa.string()``), not codes: turning
them into whatever a system wants is that system's (timed) work.

>>> batches = market_data(10)
>>> batches[0].column("symbol").to_pylist()[:3]
['SYM0', 'SYM1', 'SYM2']
>>> SCENARIOS["s2_group_by"].source
'market_data'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

BATCH_ROWS = 65_536
#: First trade_time (epoch ms); one record per second after it.
T0_MS = 1_700_000_000_000

ORDERS_SCHEMA = pa.schema([
    ("order_id", pa.int64()),
    ("customer_id", pa.int64()),
    ("order_date", pa.string()),
    ("total_amount", pa.float64()),
])

MARKET_DATA_SCHEMA = pa.schema([
    ("trader_id", pa.string()),
    ("symbol", pa.string()),
    ("price", pa.float64()),
    ("quantity", pa.int64()),
    ("trade_time", pa.int64()),
    ("_TIMESTAMP", pa.int64()),
])


def _ranges(n: int, batch_rows: int):
    for start in range(0, n, batch_rows):
        yield np.arange(start, min(start + batch_rows, n), dtype=np.int64)


def _labels(prefix: str, i: np.ndarray, modulus: int) -> pa.Array:
    # A dictionary of `modulus` labels, decoded to a plain string array: vectorised and exact.
    dictionary = pa.array([f"{prefix}{k}" for k in range(modulus)], pa.string())
    codes = pa.array(i % modulus, pa.int32())
    return pa.DictionaryArray.from_arrays(codes, dictionary).cast(pa.string())


def orders(n: int, batch_rows: int = BATCH_ROWS) -> list[pa.RecordBatch]:
    """S0 input: ``order_id = i``, ``customer_id = i % 1000``, ``order_date = '2024-01-15'``,
    ``total_amount = 150 + (i % 100)``.

    >>> orders(3)[0].to_pydict()["total_amount"]
    [150.0, 151.0, 152.0]
    """
    out = []
    for i in _ranges(n, batch_rows):
        out.append(pa.RecordBatch.from_arrays([
            pa.array(i),
            pa.array(i % 1000),
            pa.array(np.full(len(i), "2024-01-15", dtype=object), pa.string()),
            pa.array(150.0 + (i % 100)),
        ], schema=ORDERS_SCHEMA))
    return out


def market_data(n: int, batch_rows: int = BATCH_ROWS, *, traders: int = 20,
                symbols: int = 10) -> list[pa.RecordBatch]:
    """S1-S3 input: ``trader_id = 'TRADER' || (i % traders)``, ``symbol = 'SYM' || (i % symbols)``,
    ``price = 100 + (i % 50) + 10 * sin(i / 100)``, ``quantity = 100 + (i % 1000)``,
    ``trade_time = _TIMESTAMP = 1_700_000_000_000 + i * 1000``.

    >>> b = market_data(2)[0]
    >>> b.column("trader_id").to_pylist(), b.column("trade_time").to_pylist()
    (['TRADER0', 'TRADER1'], [1700000000000, 1700000001000])
    """
    out = []
    for i in _ranges(n, batch_rows):
        ts = pa.array(T0_MS + i * 1000)
        out.append(pa.RecordBatch.from_arrays([
            _labels("TRADER", i, traders),
            _labels("SYM", i, symbols),
            pa.array(100.0 + (i % 50) + 10.0 * np.sin(i / 100.0)),
            pa.array(100 + (i % 1000)),
            ts,
            ts,
        ], schema=MARKET_DATA_SCHEMA))
    return out


def market_data_high_cardinality(n: int, batch_rows: int = BATCH_ROWS) -> list[pa.RecordBatch]:
    """market_data with ``trader_id = 'TRADER' || (i % 5000)`` and ``symbol = 'SYM' || (i % 97)``.

    5000 and 97 are coprime, so every one of the first 485,000 records opens a new
    (trader_id, symbol) group; after that the groups repeat.
    """
    return market_data(n, batch_rows, traders=5000, symbols=97)


# --- the queries, exactly as the original engine's scenarios give them -------------------------------------------

S0_SQL = ("SELECT order_id, customer_id, order_date, total_amount FROM orders "
          "WHERE total_amount > 100")

S1_SQL = """SELECT symbol, price,
  AVG(price) OVER (ROWS WINDOW BUFFER 100 ROWS PARTITION BY symbol ORDER BY timestamp) as moving_avg,
  MIN(price) OVER (ROWS WINDOW BUFFER 100 ROWS PARTITION BY symbol ORDER BY timestamp) as min_price,
  MAX(price) OVER (ROWS WINDOW BUFFER 100 ROWS PARTITION BY symbol ORDER BY timestamp) as max_price
FROM market_data"""

S2_SQL = """SELECT symbol, COUNT(*) as trade_count, AVG(price) as avg_price, MIN(price) as min_price,
       MAX(price) as max_price, SUM(quantity) as total_quantity
FROM market_data GROUP BY symbol"""

S2_FINAL_SQL = S2_SQL + "\nEMIT FINAL"

S3A_SQL = """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       SUM(quantity) as total_quantity, SUM(price * quantity) as total_value
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)"""

S3B_SQL = """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       SUM(quantity) as total_quantity, SUM(price * quantity) as total_value
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING(1m)
EMIT CHANGES"""

# Not in the original: S2's aggregates grouped by (trader_id, symbol) over the high-cardinality
# data, so the group table grows to 485,000 keys (EMIT CHANGES, the default without a window).
S2_HC_SQL = """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       MIN(price) as min_price, MAX(price) as max_price, SUM(quantity) as total_quantity
FROM market_data GROUP BY trader_id, symbol"""


@dataclass(frozen=True)
class Scenario:
    """One benchmark workload: a query over generated data, and how to check its output."""
    name: str                     #: benchmark name, also the key of SCENARIOS
    folder: str                   #: bench/<folder>/run_benchmark.py runs it
    label: str                    #: short label used in tables (S0, S1, ...)
    description: str
    source: str                   #: the table name the SQL reads
    generate: Callable[[int], list]
    sql: str
    columns: tuple[str, ...]      #: the SELECT aliases every system must produce
    original_v2: float | None     #: the original engine's published V2 rec/s, if any
    emit: str = "changes"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("s0_select_where", "s0_select_where", "S0", "pure SELECT + WHERE", "orders",
             orders, S0_SQL, ("order_id", "customer_id", "order_date", "total_amount"),
             693_838, emit="rows"),
    Scenario("s1_rows_window", "s1_rows_window", "S1", "ROWS WINDOW, 3 analytic functions",
             "market_data", market_data, S1_SQL,
             ("symbol", "price", "moving_avg", "min_price", "max_price"), 169_500, emit="rows"),
    Scenario("s2_group_by", "s2_group_by", "S2", "GROUP BY symbol, EMIT CHANGES",
             "market_data", market_data, S2_SQL,
             ("symbol", "trade_count", "avg_price", "min_price", "max_price", "total_quantity"),
             570_934),
    Scenario("s2_group_by_final", "s2_group_by", "S2-final", "GROUP BY symbol, EMIT FINAL",
             "market_data", market_data, S2_FINAL_SQL,
             ("symbol", "trade_count", "avg_price", "min_price", "max_price", "total_quantity"),
             None, emit="final"),
    Scenario("s3a_tumbling", "s3a_tumbling", "S3a", "TUMBLING 1 min + GROUP BY (final)",
             "market_data", market_data, S3A_SQL,
             ("trader_id", "symbol", "trade_count", "avg_price", "total_quantity", "total_value"),
             1_041_883, emit="final"),
    Scenario("s3b_tumbling_changes", "s3b_tumbling_changes", "S3b",
             "TUMBLING 1 min + GROUP BY + EMIT CHANGES", "market_data", market_data, S3B_SQL,
             ("trader_id", "symbol", "trade_count", "avg_price", "total_quantity", "total_value"),
             2_277),
    Scenario("s2_high_cardinality", "s2_high_cardinality", "S2-HC",
             "GROUP BY trader_id, symbol over 5000 x 97 keys, EMIT CHANGES", "market_data",
             market_data_high_cardinality, S2_HC_SQL,
             ("trader_id", "symbol", "trade_count", "avg_price", "min_price", "max_price",
              "total_quantity"), None),
]}

_ALIASES = {s.label.lower(): s.name for s in SCENARIOS.values()}
_ALIASES.update({"s2f": "s2_group_by_final", "s2hc": "s2_high_cardinality",
                 "s3a": "s3a_tumbling", "s3b": "s3b_tumbling_changes"})


def scenario(name: str) -> Scenario:
    """Look a scenario up by name (``s3a_tumbling``) or label (``S3a``), case-insensitively."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return SCENARIOS[key]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)} "
                       f"or {', '.join(s.label for s in SCENARIOS.values())}") from None
