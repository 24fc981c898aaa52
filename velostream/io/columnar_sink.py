"""Parquet and Arrow IPC file sinks: columns keep their Arrow types, and no reader ever sees a
torn file.

Two layouts (docs/CONNECTORS.md, Parquet and Arrow sinks):

- **one file** (``path`` ends in ``.parquet`` / ``.arrow`` / ``.feather``): committed rows are
  written, as row groups (record batches), to a hidden temporary file next to it, which is
  closed and renamed to ``path`` when the sink closes at the end of the job: the file appears
  whole or not at all.
- **a directory** (``path`` is a directory, or ends in ``/``): each commit writes the rows
  committed since the previous one as a file of its own, ``part-00000.parquet``,
  ``part-00001.parquet``, ... written under a hidden name and renamed when complete, so a
  long-running job's output can be read while it runs.

Rows reach a file only at ``commit``: ``rollback`` forgets everything since the last commit, so
a failed job never leaves rows it rolled back. On S3 a file is written under its final key: an
object becomes visible only once its upload completes.

>>> import os, tempfile
>>> import pyarrow as pa, pyarrow.parquet as pq
>>> from velostream.io.base import Properties
>>> d = tempfile.mkdtemp()
>>> sink = ColumnarFileSink("out", Properties("out", {"path": os.path.join(d, "out") + "/", "format": "parquet"}))
>>> sink.write_batch(pa.record_batch({"sym": ["A", None], "n": pa.array([1, 2], pa.int64())}))
>>> sink.flush(); sink.commit()
>>> sink.write_batch(pa.record_batch({"sym": ["B"], "n": pa.array([3], pa.int64())}))
>>> sink.flush(); sink.rollback(); sink.close()
>>> sorted(os.listdir(os.path.join(d, "out")))
['part-00000.parquet']
>>> pq.read_table(os.path.join(d, "out")).to_pydict()
{'sym': ['A', None], 'n': [1, 2]}
"""
from __future__ import annotations

import os
import posixpath
import re
import uuid
import warnings
from typing import Optional

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .base import ConfigError, Properties
from .object_store import ObjectStore

__all__ = ["ColumnarFileSink"]

_EXT = {"parquet": ".parquet", "arrow": ".arrow"}
_COMPRESSION = ("snappy", "zstd", "gzip", "lz4", "brotli", "none")


class ColumnarFileSink:
    """Writes Parquet or Arrow IPC (see the module docstring). Properties: ``path`` (required),
    ``format`` (parquet or arrow; default from the extension), ``compression`` (parquet:
    ``snappy`` default, ``zstd``, ``gzip``, ``lz4``, ``brotli``, ``none``), ``s3.endpoint``,
    ``s3.region``."""

    def __init__(self, name: str, props: Properties, fmt: Optional[str] = None):
        self.name = name
        self.path = props.require("path")
        if fmt is None:  # from the properties, as open_sink does
            from .datasets import file_format
            fmt = file_format(name, props, sink=True)
        props.get("format")
        if fmt not in _EXT:
            raise ConfigError(f"'{name}.format': a columnar sink writes parquet or arrow, not {fmt}")
        self.format = fmt
        self.compression = (props.get("compression") or "snappy").lower()
        if self.compression not in _COMPRESSION:
            raise ConfigError(f"'{name}.compression' must be one of {', '.join(_COMPRESSION)}, "
                              f"got {self.compression!r}")
        self.store = ObjectStore.for_path(name, props, self.path)
        unused = props.unused()
        if unused:
            warnings.warn(f"{name}: unknown properties ignored: {', '.join(sorted(unused))}",
                          stacklevel=2)
        target = self.store.fs_path(self.path)
        ext = posixpath.splitext(target.rstrip("/"))[1].lower()
        self.directory = (self.path.endswith("/") or self.store.is_dir(self.path)
                          or ext not in (".parquet", ".pq", ".arrow", ".feather", ".ipc"))
        self.target = target.rstrip("/") if self.directory else target
        try:
            self._prepare()
        except OSError as e:
            raise ConfigError(f"'{name}.path': cannot write {self.path}: {e}") from e
        self.schema: Optional[pa.Schema] = None
        self._pending: list[pa.RecordBatch] = []   # written, not flushed
        self._flushed: list[pa.RecordBatch] = []   # flushed, not committed
        self._part = 0
        self._writer = None   # one-file layout: the open writer of the temporary file
        self._out = None
        self._tmp: Optional[str] = None

    def _prepare(self) -> None:
        """The directory made and emptied of the parts of an earlier run (the CSV sink empties
        its file likewise); one file's directory made."""
        if self.directory:
            if self.store.local:
                os.makedirs(self.target, exist_ok=True)
                old = [os.path.join(self.target, f) for f in os.listdir(self.target)]
            else:
                old = self.store.expand(self.path)[0] if self.store.is_dir(self.path) else []
            pattern = re.compile(r"part-\d{5,}" + re.escape(_EXT[self.format]) + "$")
            for f in old:
                if pattern.search(f):
                    self.store.delete(f)
        elif self.store.local:
            parent = os.path.dirname(self.target)
            if parent:
                os.makedirs(parent, exist_ok=True)
            if os.path.exists(self.target):  # emptied when the job starts, as the CSV sink
                os.remove(self.target)
            probe = self._tmp_name(self.target)
            with open(probe, "wb"):
                pass  # can we write there? a clear error now, not at the end of the job
            os.remove(probe)

    @staticmethod
    def _tmp_name(final: str) -> str:
        head, tail = posixpath.split(final) if "/" in final else ("", final)
        name = f".{tail}.{uuid.uuid4().hex[:8]}.tmp"
        return posixpath.join(head, name) if head else name

    # -- Writer ---------------------------------------------------------------------------------
    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)

    def flush(self) -> None:
        self._flushed.extend(self._pending)
        self._pending = []

    def commit(self) -> None:
        rows, self._flushed = self._flushed, []
        if not rows:
            return
        table = self._conform(rows)
        if self.directory:
            self._write_part(table)
        else:
            self._append(table)

    def rollback(self) -> None:
        self._pending = []
        self._flushed = []

    def close(self) -> None:
        """Write what was flushed, and publish the one file (complete, under its name)."""
        self.flush()
        self.commit()
        if self.directory:
            return
        if self._writer is None and self.schema is not None:
            self._open_file()  # rows never came, a schema did: an empty file with the columns
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            self._out.close()
            if self._tmp != self.target:
                self.store.publish(self._tmp, self.target)

    # -- writing --------------------------------------------------------------------------------
    def _conform(self, batches: list[pa.RecordBatch]) -> pa.Table:
        """The batches as one table in the sink's schema, fixed by the first batch; a column all
        NULL there takes its type from a later batch while nothing is written yet."""
        if self.schema is None:
            self.schema = batches[0].schema
        if self._writer is None and self._part == 0:
            for b in batches:
                if b.schema.names == self.schema.names:
                    self.schema = pa.schema([g if pa.types.is_null(f.type) else f
                                             for f, g in zip(self.schema, b.schema)])
        tables = []
        for b in batches:
            t = pa.Table.from_batches([b])
            if not t.schema.equals(self.schema):
                try:
                    t = t.select(self.schema.names).cast(self.schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError, ValueError) as exc:
                    raise ConfigError(f"{self.name}: rows of schema {b.schema} do not fit the "
                                      f"file's schema {self.schema}: {exc}") from exc
            tables.append(t)
        return pa.concat_tables(tables)

    def _new_writer(self, out):
        if self.format == "parquet":
            return pq.ParquetWriter(out, self.schema,
                                    compression=None if self.compression == "none" else self.compression)
        return ipc.new_file(out, self.schema)

    def _open_file(self) -> None:
        self._tmp = self._tmp_name(self.target) if self.store.local else self.target
        self._out = self.store.open_write(self._tmp)
        self._writer = self._new_writer(self._out)

    def _append(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open_file()
        self._write(self._writer, table)

    def _write(self, writer, table: pa.Table) -> None:
        if self.format == "parquet":
            writer.write_table(table)
        else:
            for rb in table.to_batches():
                writer.write_batch(rb)

    def _write_part(self, table: pa.Table) -> None:
        final = posixpath.join(self.target, f"part-{self._part:05d}{_EXT[self.format]}")
        self._part += 1
        tmp = self._tmp_name(final) if self.store.local else final
        out = self.store.open_write(tmp)
        try:
            writer = self._new_writer(out)
            self._write(writer, table)
            writer.close()
        finally:
            out.close()
        if tmp != final:
            self.store.publish(tmp, final)
