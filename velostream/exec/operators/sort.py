"""ORDER BY: sorts the rows of each emission, and never waits for more input (docs/SQL.md §8).

An emission is what the query emits for one input batch, or what a window emits when it closes:
the operator holds what its input emits during one step of the graph and sorts it when the step
ends (``on_watermark``). Rows of different windows stay in window order; NULLs sort last, as in
DuckDB, unless a key says NULLS FIRST.
"""
from __future__ import annotations

import pyarrow as pa

from .base import EVENT_TIME, HoldsRows, sort_indices


class SortEmission(HoldsRows):
    def __init__(self, keys: list[tuple[str, bool, bool]], by_window: bool):
        super().__init__()
        self.keys = keys            # (output column, descending, NULLS FIRST)
        self.by_window = by_window  # the input is a window's rows: each window sorted apart

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        self.watermark = max(self.watermark, watermark)
        return self._sorted()

    def close(self) -> list[pa.RecordBatch]:
        return self._sorted()

    def _sorted(self) -> list[pa.RecordBatch]:
        if not self._held:
            return []
        held, self._held = self._held, []
        table = pa.Table.from_batches(held)
        keys = [(EVENT_TIME, "ascending")] if self.by_window else []
        keys += [(name, "descending" if desc else "ascending", "at_start" if first else "at_end")
                 for name, desc, first in self.keys]
        order = sort_indices(table, keys)
        return table.take(order).combine_chunks().to_batches()

    def describe(self) -> str:
        keys = ", ".join(f"{n} {'DESC' if d else 'ASC'}{' NULLS FIRST' if f else ''}"
                         for n, d, f in self.keys)
        return f"Sort: each emission by {keys}" + (" (each window apart)" if self.by_window else "")
