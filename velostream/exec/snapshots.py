"""Snapshot tables: operator state as Arrow tables another process can read (another string
dictionary, another slot numbering), as ``Engine.snapshot`` / ``restore`` carry it
(docs/ARCHITECTURE.md "State and checkpoints"). Each stateful operator writes its own columns;
these are the pieces they share."""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from ..batch import Column, SqlType, StringDict

SNAPSHOT_FORMAT = 1
SNAPSHOT_META = b"velostream.pipeline"
# a stage split over partitions (exec/partitioned.py): each partition's table, and the router's
PARTITIONS_META = b"velostream.partitions"


def key_to_arrow(col: Column):
    """A decoded key column as Arrow values a process with another string dictionary can read."""
    import pyarrow as pa

    k = col.type.kind
    if k in ("STRING", "DECIMAL"):
        return col.to_arrow()
    mask = None if col.valid is None else ~col.valid
    dtype = {"FLOAT64": pa.float64(), "BOOL": pa.bool_()}.get(k, pa.int64())
    return pa.array(col.values, type=dtype, mask=mask)


def key_from_arrow(arr, t: SqlType, strings: StringDict) -> Column:
    """The inverse of ``key_to_arrow``: a key column in this process's encoding."""
    if t.kind == "STRING":
        codes, valid = strings.encode_arrow(arr)
        return Column(t, codes, valid, strings=strings)
    valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else None
    if t.kind == "DECIMAL":
        from ..batch import _decimal_to_scaled
        values = _decimal_to_scaled(arr, t.scale)
    else:
        if arr.null_count:
            arr = arr.fill_null(False if t.kind == "BOOL" else 0)
        values = arr.to_numpy(zero_copy_only=False).astype(t.numpy_dtype)
    if valid is not None:
        values = np.where(valid, values, np.zeros(1, dtype=values.dtype))
    return Column(t, np.ascontiguousarray(values), valid, strings=strings)


def column(table, name: str):
    """One column of a snapshot table as a single Arrow array."""
    if name not in table.column_names:
        raise ValueError(f"snapshot column '{name}' is missing")
    col = table.column(name)
    return col.combine_chunks() if hasattr(col, "combine_chunks") else col


def table_of(names: list, arrays: list, meta: dict):
    """A snapshot table: the columns, and ``meta`` (JSON) in the schema metadata."""
    import pyarrow as pa

    schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays)],
                       metadata={SNAPSHOT_META: json.dumps({"format": SNAPSHOT_FORMAT,
                                                            **meta}).encode()})
    return pa.Table.from_arrays(arrays, schema=schema)


def meta_of(table, signature: dict) -> dict:
    """A snapshot table's metadata, checked against the ``signature`` of the plan restoring it."""
    raw = (table.schema.metadata or {}).get(SNAPSHOT_META)
    if raw is None:
        raise ValueError("not a pipeline snapshot: schema metadata 'velostream.pipeline' missing")
    meta = json.loads(raw)
    if meta.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unsupported snapshot format {meta.get('format')!r}")
    for k, want in signature.items():
        if meta.get(k) != json.loads(json.dumps(want)):
            raise ValueError(f"snapshot of a different plan: {k} is {meta.get(k)!r}, this "
                             f"pipeline has {want!r}")
    return meta


# ------------------------------------------------- a stage's state at another partition count
def partition_tables(table) -> tuple[list, Optional[tuple]]:
    """The snapshot tables of each partition of a stage's snapshot (exec/partitioned.py), and
    its router's state; a one-partition snapshot is its own one table (router None)."""
    import base64

    import pyarrow as pa

    raw = (table.schema.metadata or {}).get(PARTITIONS_META) if table is not None else None
    if raw is None:
        return [table], None
    meta = json.loads(raw)
    tables = [pa.ipc.open_stream(pa.py_buffer(blob)).read_all()
              for blob in table.column("partition_state").to_pylist()]
    assign = np.frombuffer(base64.b64decode(meta["assign"]), dtype=np.int8)
    return tables, (assign, meta["load"])


def regroup(tables: list, parts: list, n: int) -> list:
    """Snapshot tables of one plan taken at ``len(tables)`` partitions, as ``n`` tables: row r
    of ``tables[i]`` goes to table ``parts[i][r]``. Each group (a GROUP BY's group, an open
    session, an OVER spec's buffer of one PARTITION BY value) is one row of one table, so the
    rows move whole; the operator's scalars merge (the next arrival number: the largest, so
    every group's later rows come after its earlier ones; the earliest open window: the
    smallest; late records counted once, in the first table)."""
    import pyarrow as pa

    metas = [json.loads(t.schema.metadata[SNAPSHOT_META]) for t in tables]
    merged = dict(metas[0])
    if "next_seq" in merged:
        merged["next_seq"] = max(m["next_seq"] for m in metas)
    if "min_open_end" in merged:
        merged["min_open_end"] = min(m["min_open_end"] for m in metas)
    if "flushed" in merged:
        merged["flushed"] = all(m["flushed"] for m in metas)
    late = sum(m.get("late_records", 0) for m in metas)
    out = []
    for j in range(n):
        pieces = [t.replace_schema_metadata(None).filter(pa.array(p == j))
                  for t, p in zip(tables, parts)]
        whole = pa.concat_tables(pieces, promote_options="permissive").combine_chunks()
        meta = {**merged, "late_records": late if j == 0 else 0}
        if "__sid" in whole.column_names:  # sessions: ids numbered afresh, in closing order
            whole, meta = _sessions_renumbered(whole, meta)
        if "__over" in whole.column_names:  # OVER buffers: each spec's rows together
            order = np.argsort(whole.column("__over").to_numpy(zero_copy_only=False),
                               kind="stable")
            whole = whole.take(pa.array(order))
        out.append(whole.replace_schema_metadata({SNAPSHOT_META: json.dumps(meta).encode()}))
    return out


def _sessions_renumbered(table, meta: dict):
    """Open sessions gathered from several partitions' snapshots: each partition numbered its
    own ids, so the rows get ids 0..n-1 here, in the order the sessions close (by their latest
    record time, stable), and no id is free."""
    import pyarrow as pa

    order = np.argsort(table.column("__last").to_numpy(zero_copy_only=False), kind="stable")
    table = table.take(pa.array(order))
    sids = pa.array(np.arange(table.num_rows, dtype=np.int32))
    table = table.set_column(table.column_names.index("__sid"), "__sid", sids)
    return table, {**meta, "sid_capacity": max(int(table.num_rows), 1), "free_sids": []}
