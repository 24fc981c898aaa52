"""Local Parquet files through pyarrow's compiled Parquet module, without ``pyarrow.parquet``.

``pyarrow.parquet`` is a Python layer over ``pyarrow._parquet`` that finds the file system of a
path. Importing it imports ``pyarrow.fs``: the S3, GCS, Azure and HDFS bindings and ``ssl``,
11 ms of every start of a job reading or writing Parquet, which a local path does not need
(docs/PERFORMANCE.md, "File to file start-up"). For a local file these open the compiled reader
and writer with the arguments ``pyarrow.parquet.ParquetFile`` and ``ParquetWriter`` give them;
``tests/test_file_to_file_startup.py`` compares the files written and the batches read with
theirs, so that a pyarrow changing those defaults is noticed. When the compiled module does not
take these arguments (another pyarrow), or the file has nested columns (which ``ParquetFile``
selects by their leaf paths), they return None and the caller uses ``pyarrow.parquet``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyarrow as pa

# what pyarrow.parquet.ParquetWriter passes the compiled writer besides the caller's options
# (flavor None: the schema as it is)
_WRITER_DEFAULTS = dict(version="2.6", write_statistics=True,
                        use_deprecated_int96_timestamps=False, writer_engine_version="V2",
                        data_page_version="1.0", use_compliant_nested_type=True, store_schema=True)


class LocalParquetFile:
    """What DatasetSource uses of ``pyarrow.parquet.ParquetFile``, over the compiled reader."""

    def __init__(self, reader):
        self._reader = reader

    @property
    def schema_arrow(self) -> pa.Schema:
        return self._reader.schema_arrow

    @property
    def metadata(self):
        return self._reader.metadata

    @property
    def num_row_groups(self) -> int:
        return self._reader.num_row_groups

    def iter_batches(self, batch_size: int, row_groups: Sequence[int], columns: Sequence[str],
                     use_threads: bool = True):
        indices = [self._reader.column_name_idx(c) for c in columns]
        return self._reader.iter_batches(batch_size, row_groups=row_groups,
                                         column_indices=indices, use_threads=use_threads)


def open_file(path: str) -> Optional[LocalParquetFile]:
    """``pyarrow.parquet.ParquetFile(path)`` for a local file with flat columns, else None.
    Raises what ``ParquetFile`` raises for a file that is not Parquet."""
    try:
        from pyarrow._parquet import ParquetReader
    except ImportError:  # pragma: no cover - every pyarrow with Parquet support has it
        return None
    reader = ParquetReader()
    try:
        # ParquetFile's own defaults (pyarrow >= 20; an older one has no extension types here)
        reader.open(path, pre_buffer=True, arrow_extensions_enabled=True)
    except TypeError:
        return None
    if any(pa.types.is_nested(t) for t in reader.schema_arrow.types):
        reader.close()
        return None
    return LocalParquetFile(reader)


def open_writer(path: str, schema: pa.Schema, *, use_dictionary, compression: Optional[str]):
    """``pyarrow.parquet.ParquetWriter(path, schema, ...)`` for a local file, or None. The writer
    has ``write_table(table)`` and ``close()``, as ParquetWriter."""
    try:
        from pyarrow._parquet import ParquetWriter
        return ParquetWriter(path, schema, use_dictionary=use_dictionary, compression=compression,
                             **_WRITER_DEFAULTS)
    except (ImportError, TypeError):
        return None
