"""Type stub for the compiled ``velostream._core.group_step`` module."""
from typing import Any

import pyarrow as pa

from .group_table import GroupTable

class GroupStep:
    """The compiled ``Engine.push`` of a plain streaming GROUP BY (see ``velostream.exec.push_fast``)."""

    names: list[str]
    expected: list[pa.DataType]
    outputs: list[tuple[bool, int, int]]
    key_names: list[str]
    import_schema: pa.Schema
    reorder: list[int] | None
    out_schema: pa.Schema
    max_rows: int
    batches: int
    def __init__(
        self,
        table: GroupTable,
        aggs: list[Any],
        strings: Any,
        stats: dict,
        keys: list[tuple[str, str]],
        layout: list[tuple],
        wide: list[int],
        agg_cols: list[tuple[str, str] | None],
        outputs: list[tuple[str, int]],
        out_schema: pa.Schema,
        result_cls: type,
        type_of_arrow: Any,
    ) -> None: ...
    def push(self, rb: pa.RecordBatch) -> Any:
        """The push's ``Result``, or None: this batch takes the general path."""
    def push_rows(self, rb: pa.RecordBatch, rows: Any) -> Any:
        """``push`` of rows ``rows`` (int64) of ``rb`` without copying them out first (the
        output's key columns are made from the keys' codes), or None: the general path."""
    def accepts(self, schema: pa.Schema) -> bool:
        """Whether batches of this schema take the compiled step."""
    def aggregate(self, rb: pa.RecordBatch) -> "GroupRows | None":
        """The scan split's first pass: groups found, every aggregate updated, nothing emitted;
        the rows (key columns and slots) for ``emit_rows``, or None: the general path."""
    def emit_rows(self, rows: "GroupRows", rb: pa.RecordBatch, slot_map: Any,
                  aggs: list[Any]) -> None:
        """The second pass: the rows' values, updating ``aggs`` (the state before the piece,
        at ``slot_map[row slot]``) row by row."""

class GroupRows:
    """Rows one ``GroupStep.push`` emitted, held until Arrow is asked for."""

    num_rows: int
    def __len__(self) -> int: ...
    def to_batch(self) -> pa.RecordBatch: ...
