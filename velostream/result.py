"""Query results: a sequence of Arrow record batches with convenient views."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa


class Result:
    """Rows a query (or one ``Engine.push``) emitted, in emission order.

    >>> import velostream as vs
    >>> r = vs.query("SELECT a * 2 AS b FROM t WHERE a > 1", {"t": {"a": [1, 2, 3]}})
    >>> len(r), r.to_pylist()
    (2, [{'b': 4}, {'b': 6}])
    """

    __slots__ = ("schema", "batches")

    def __init__(self, schema: pa.Schema, batches: list[pa.RecordBatch] | None = None):
        self.schema = schema
        self.batches = [b for b in (batches or []) if b.num_rows]

    def __len__(self) -> int:
        return sum(b.num_rows for b in self.batches)

    def __iter__(self) -> Iterator[dict]:
        for b in self.batches:
            yield from b.to_pylist()

    def __repr__(self) -> str:
        return f"<Result {len(self)} rows: {', '.join(self.schema.names)}>"

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def to_arrow(self) -> pa.Table:
        """All rows as one ``pyarrow.Table``."""
        return pa.Table.from_batches(self.batches, schema=self.schema)

    def to_pylist(self) -> list[dict]:
        """Rows as dicts; NULL is ``None``."""
        return self.to_arrow().to_pylist()

    def to_pandas(self):
        """A ``pandas.DataFrame`` (needs pandas)."""
        return self.to_arrow().to_pandas()

    def columns(self) -> dict[str, np.ndarray]:
        """Each column as a numpy array (NULLs become NaN for floats, None in object arrays)."""
        t = self.to_arrow()
        return {name: t.column(name).to_numpy() for name in t.column_names}

    def extend(self, other: "Result") -> None:
        self.batches.extend(b for b in other.batches if b.num_rows)
