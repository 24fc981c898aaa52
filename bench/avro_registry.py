"""Avro codec throughput: Confluent's wire format with a Schema Registry against plain
(schemaless) Avro, on the same rows.

    python bench/avro_registry.py                 # 200,000 rows, best of 5
    python bench/avro_registry.py --records 1000000 --repeat 3

Each mode encodes the rows into one payload per row (``AvroCodec.encode``) and decodes them back
(``AvroCodec.decode``), as the Kafka sink and source do; the registry is confluent_kafka's
in-process ``MockSchemaRegistryClient`` (``mock://``), so the figure is the codec's own cost:
the schema ids are cached, and no registry call is made per message. Prints records/s of each mode
and the registry's share of plain Avro's throughput (the bar in docs/CONNECTORS.md: >= 90 %).
"""
from __future__ import annotations

import argparse
import time
import uuid
from decimal import Decimal

import numpy as np
import pyarrow as pa

from velostream.io.avro import AvroCodec, registry_client


def rows(n: int, seed: int = 0) -> pa.RecordBatch:
    """Trades: a symbol, a DECIMAL(18, 4) price, a quantity and an epoch-ms time (5 % NULLs)."""
    rng = np.random.default_rng(seed)
    nulls = rng.random(n) < 0.05
    price = pa.array([None if null else Decimal(int(v)).scaleb(-4) for v, null in
                      zip(rng.integers(-10**9, 10**9, n), nulls)], pa.decimal128(18, 4))
    return pa.RecordBatch.from_pydict({
        "symbol": pa.array(rng.choice(["AAPL", "MSFT", "GOOG", "AMZN"], n)),
        "price": price,
        "quantity": pa.array(rng.integers(1, 10_000, n)),
        "trade_time": pa.array(1_700_000_000_000 + np.arange(n) * 10, pa.int64()),
    })


def _codecs():
    url = f"mock://bench-{uuid.uuid4().hex[:8]}"
    plain = AvroCodec.from_arrow(rows(1).schema)
    schema = plain.schema
    client = registry_client(url)
    writer = AvroCodec(schema, registry=client, subject="trades-value", url=url)
    reader = AvroCodec(schema, registry=client, subject="trades-value", url=url)
    return {"plain": (plain, plain), "registry": (writer, reader)}


def measure(n: int, repeat: int = 5) -> dict[str, float]:
    """Best-of-``repeat`` seconds to encode and decode ``n`` rows, per mode; raises if a mode
    does not read back exactly the rows it wrote."""
    rb = rows(n)
    best: dict[str, float] = {}
    codecs = _codecs()
    for _ in range(repeat):  # the modes take turns, so a busy moment of the machine hits both
        for mode, (enc, dec) in codecs.items():
            t0 = time.perf_counter()
            payloads = enc.encode(rb)
            back, rejects, _ = dec.decode(payloads, str, source="bench")
            dt = time.perf_counter() - t0
            if rejects or not back.equals(rb):
                raise AssertionError(f"{mode}: the rows read back differ from those written")
            best[mode] = min(best.get(mode, dt), dt)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    best = measure(args.records, args.repeat)
    for mode, secs in best.items():
        print(f"{mode:9s} {args.records / secs / 1e3:8.1f} k records/s (encode + decode, "
              f"best of {args.repeat})")
    print(f"registry / plain throughput: {best['plain'] / best['registry'] * 100:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
