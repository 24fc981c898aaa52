"""Snapshot tables: operator state as Arrow tables another process can read (another string
dictionary, another slot numbering), as ``Engine.snapshot`` / ``restore`` carry it
(docs/ARCHITECTURE.md "State and checkpoints"). Each stateful operator writes its own columns;
these are the pieces they share."""
from __future__ import annotations

import json

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
    if raw is None and PARTITIONS_META in (table.schema.metadata or {}):
        n = json.loads(table.schema.metadata[PARTITIONS_META])["partitions"]
        raise ValueError(f"this checkpoint was taken at {n} partitions; the job now runs one: "
                         f"run it with {n}, or start afresh")
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
