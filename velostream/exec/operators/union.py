"""UNION ALL: the rows of every input, in one schema (docs/SQL.md §8).

Names come from the first input; each column's type is the inputs' common type as DuckDB unifies
them (an integer and a double make a double, anything with text makes text); its watermark is the
smallest of its inputs', so a window downstream waits for the slowest input.
"""
from __future__ import annotations

from typing import Optional

import pyarrow as pa

from ...batch import arrow_type_of, type_of_arrow
from ...errors import SqlError
from ..expressions import _common_type
from .base import EVENT_TIME, HoldsRows


def _conform(col, t: pa.DataType):
    """An input's column in the union's type; a DATE (date32) meeting a TIMESTAMP is its
    midnight in epoch ms (Arrow has no direct date -> integer cast)."""
    if pa.types.is_date(col.type) and pa.types.is_integer(t):
        return col.cast(pa.timestamp("ms")).cast(t)
    return col.cast(t)


class UnionAll(HoldsRows):
    def __init__(self, sql: str, positions: list, n_inputs: int):
        self.sql = sql
        self.positions = positions  # each input SELECT's (line, column), for errors
        self.n_inputs = n_inputs
        self.schema: Optional[pa.Schema] = None
        super().__init__()  # its held rows: (port, batch) until every input's schema is known

    def bind(self, schemas: list[pa.Schema], hidden: list[tuple]) -> pa.Schema:
        """The output schema from the inputs' (each None while unknown: then rows are held).
        Hidden columns (the derived event time) are compared apart: they stay when every input
        has them."""
        if any(s is None for s in schemas):
            return None
        self.keep_time = all(EVENT_TIME in h for h in hidden)
        self.hidden = hidden
        schemas = [pa.schema([f for f in s if f.name not in h]) for s, h in zip(schemas, hidden)]
        first = schemas[0]
        for i, s in enumerate(schemas[1:], start=1):
            if len(s) != len(first):
                raise SqlError.at(self.sql, self.positions[i],
                                  f"UNION ALL: this query gives {len(s)} columns, the first gives "
                                  f"{len(first)}; each query must give the same number")
        fields = []
        for j, f in enumerate(first):
            types = [s.field(j).type for s in schemas]
            if all(t.equals(types[0]) for t in types):
                fields.append(pa.field(f.name, types[0]))
                continue
            # a union's inputs are relations the engine made: a date32 column is a DATE
            sql_types = [type_of_arrow(t, dates=True) for t in types]
            kinds = {t.kind for t in sql_types if t.kind != "NULL"}
            if "TIMESTAMP" in kinds and len(kinds) > 1:
                raise SqlError.at(self.sql, self.positions[0],
                                  f"UNION ALL: column {j + 1} ('{f.name}') is a TIMESTAMP in one "
                                  f"query and {', '.join(sorted(kinds - {'TIMESTAMP'}))} in "
                                  f"another; CAST one side")
            if "DATE" in kinds and len(kinds) > 1:
                if kinds != {"DATE", "INT64"}:
                    raise SqlError.at(self.sql, self.positions[0],
                                      f"UNION ALL: column {j + 1} ('{f.name}') is a DATE in one "
                                      f"query and {', '.join(sorted(kinds - {'DATE'}))} in "
                                      f"another; CAST one side")
                # a TIMESTAMP leaves its query as epoch-ms BIGINT: DATE with TIMESTAMP is a
                # TIMESTAMP (DuckDB), the DATE's midnight (push converts)
                fields.append(pa.field(f.name, pa.int64()))
                continue
            fields.append(pa.field(f.name, arrow_type_of(_common_type(sql_types))))
        if self.keep_time:
            fields.append(pa.field(EVENT_TIME, pa.int64()))
        self.schema = pa.schema(fields)
        return self.schema

    def push(self, port: int, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        if self.schema is None:
            self._held.append((port, batch))
            return []
        out = []
        if self._held:
            held, self._held = self._held, []
            for p, b in held:
                out += self.push(p, b)
        if batch.schema.equals(self.schema):
            out.append(batch)
            return out
        hidden = self.hidden[port]
        shown = [c for c, name in zip(batch.columns, batch.schema.names) if name not in hidden]
        if self.keep_time:
            shown.append(batch.column(EVENT_TIME))
        cols = [c if c.type.equals(f.type) else _conform(c, f.type)
                for c, f in zip(shown, self.schema)]
        out.append(pa.RecordBatch.from_arrays(cols, schema=self.schema))
        return out

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        self.watermark = max(self.watermark, watermark)
        return []

    def close(self) -> list[pa.RecordBatch]:
        if self._held and self.schema is None:
            raise SqlError.at(self.sql, self.positions[0], "UNION ALL: an input gave no rows and "
                              "no schema, so the union's column types are unknown")
        return []

    def describe(self) -> str:
        return f"UnionAll: {self.n_inputs} inputs, watermark = the smallest of theirs"
