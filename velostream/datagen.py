"""The benchmark scenarios' data (bench/README.md), generated vectorised as Arrow record batches.

>>> from velostream.datagen import market_data
>>> batches = market_data(3)
>>> batches[0].column("trader_id").to_pylist()
['TRADER0', 'TRADER1', 'TRADER2']
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ._lazy import pc  # imported when first used: see the module

BATCH_ROWS = 65_536
BASE_TIME_MS = 1_700_000_000_000


def _labels(prefix: str, codes: np.ndarray, cardinality: int) -> pa.Array:
    """'PREFIX<n>' strings as a real string column (built via a small dictionary, then decoded)."""
    names = pa.array([f"{prefix}{k}" for k in range(cardinality)], pa.string())
    return names.take(pa.array(codes.astype(np.int32)))


def market_data(n: int, *, batch_rows: int = BATCH_ROWS, traders: int = 20, symbols: int = 10,
                start: int = 0) -> list[pa.RecordBatch]:
    """``n`` trades: trader_id, symbol, price, quantity, trade_time, _TIMESTAMP (one per second).
    ``traders=5000, symbols=97`` gives the high-cardinality variant."""
    out = []
    for lo in range(start, start + n, batch_rows):
        i = np.arange(lo, min(lo + batch_rows, start + n), dtype=np.int64)
        trade_time = BASE_TIME_MS + i * 1000
        out.append(pa.RecordBatch.from_arrays(
            [_labels("TRADER", i % traders, traders), _labels("SYM", i % symbols, symbols),
             pa.array(100.0 + (i % 50) + 10.0 * np.sin(i / 100.0)), pa.array(100 + (i % 1000)),
             pa.array(trade_time), pa.array(trade_time)],
            names=["trader_id", "symbol", "price", "quantity", "trade_time", "_TIMESTAMP"]))
    return out


def orders(n: int, *, batch_rows: int = BATCH_ROWS) -> list[pa.RecordBatch]:
    """``n`` orders: order_id, customer_id, order_date, total_amount."""
    out = []
    for lo in range(0, n, batch_rows):
        i = np.arange(lo, min(lo + batch_rows, n), dtype=np.int64)
        date = pc.cast(pa.array(np.zeros(len(i), dtype=np.int8)), pa.int32())
        out.append(pa.RecordBatch.from_arrays(
            [pa.array(i), pa.array(i % 1000), pa.array(["2024-01-15"], pa.string()).take(date),
             pa.array(150.0 + (i % 100))],
            names=["order_id", "customer_id", "order_date", "total_amount"]))
    return out


SCENARIOS = {
    "S0": ("orders", """SELECT order_id, customer_id, order_date, total_amount FROM orders WHERE total_amount > 100"""),
    "S1": ("market_data", """SELECT symbol, price,
  AVG(price) OVER (ROWS WINDOW BUFFER 100 ROWS PARTITION BY symbol ORDER BY timestamp) as moving_avg,
  MIN(price) OVER (ROWS WINDOW BUFFER 100 ROWS PARTITION BY symbol ORDER BY timestamp) as min_price,
  MAX(price) OVER (ROWS WINDOW BUFFER 100 ROWS PARTITION BY symbol ORDER BY timestamp) as max_price
FROM market_data"""),
    "S2": ("market_data", """SELECT symbol, COUNT(*) as trade_count, AVG(price) as avg_price, MIN(price) as min_price,
       MAX(price) as max_price, SUM(quantity) as total_quantity
FROM market_data GROUP BY symbol"""),
    "S3a": ("market_data", """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       SUM(quantity) as total_quantity, SUM(price * quantity) as total_value
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING (trade_time, INTERVAL '1' MINUTE)"""),
    "S3b": ("market_data", """SELECT trader_id, symbol, COUNT(*) as trade_count, AVG(price) as avg_price,
       SUM(quantity) as total_quantity, SUM(price * quantity) as total_value
FROM market_data
GROUP BY trader_id, symbol
WINDOW TUMBLING(1m)
EMIT CHANGES"""),
}


def scenario_input(name: str, n: int) -> tuple[str, list[pa.RecordBatch]]:
    """(source name, batches) for scenario ``name``."""
    source = SCENARIOS[name][0]
    return source, (orders(n) if source == "orders" else market_data(n))
