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

Rows reach a published file only at ``commit``: ``rollback`` forgets everything since the last
commit, so a failed job never leaves rows it rolled back. On the local disk the rows are encoded
into the hidden temporary file as they come, as row groups of ``ROW_GROUP_ROWS`` rows, on the
sink's own thread while the job computes the next rows (Arrow's Parquet writer releases the GIL):
not all of them at the commit while the job waits (docs/PERFORMANCE.md, "File to file"). A commit
ends on a row-group boundary, so a rollback keeps the temporary file's committed row groups and
drops the others (the rare case: a failed job). On S3 a file is written under its final key, only
at ``commit``: an object becomes visible only once its upload completes.

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

from .base import ConfigError, Properties, wait_all
from .object_store import ObjectStore
from .parquet_local import open_writer

__all__ = ["ColumnarFileSink"]

_EXT = {"parquet": ".parquet", "arrow": ".arrow"}
_COMPRESSION = ("snappy", "zstd", "gzip", "lz4", "brotli", "none")


class ColumnarFileSink:
    """Writes Parquet or Arrow IPC (see the module docstring). Properties: ``path`` (required),
    ``format`` (parquet or arrow; default from the extension), ``compression`` (parquet:
    ``snappy`` default, ``zstd``, ``gzip``, ``lz4``, ``brotli``, ``none``), ``s3.endpoint``,
    ``s3.region``."""

    #: Rows per row group (Parquet) or record batches written at once (Arrow) when rows are
    #: encoded as they come; a commit writes what is left as a smaller one. DuckDB's default row
    #: group is 122,880 rows.
    ROW_GROUP_ROWS = 131_072

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
        # Rows in order: [committed | flushed | written after the last flush]. The temporary file
        # (one file: the whole output; a directory: the part being written) holds a prefix of
        # them, ``_written`` rows, handed to the writer thread in order; ``_tail`` the rest.
        # Encoding as rows come needs a local temporary file (see rollback): on S3 the rows wait
        # in ``_tail`` for the commit, as they always did.
        self._early = self.store.local
        self._tail: list[pa.RecordBatch] = []
        self._tail_rows = 0
        self._tail_flushed = 0  # batches of ``_tail`` that were flushed
        self._written = 0    # rows of the temporary file
        self._flushed = 0    # rows of it (or about to be) that were flushed
        self._committed = 0  # rows of it committed
        self._part = 0
        self._writer = None   # the open writer of the temporary file
        self._out = None      # its output stream (S3); a local writer opens the file itself
        self._tmp: Optional[str] = None
        self._pool = None     # the writer thread (a one-thread executor: groups stay in order)
        self._pending: list = []  # futures of the groups handed to it

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
        self._tail.append(batch)
        self._tail_rows += batch.num_rows
        if self._early and self._tail_rows >= self.ROW_GROUP_ROWS and self._schema_settled():
            self._hand_over(len(self._tail))

    def flush(self) -> None:
        if self._early:
            self._hand_over(len(self._tail))
        self._tail_flushed = len(self._tail)
        self._flushed = self._written + self._tail_rows

    def commit(self) -> None:
        if not self._early:  # S3: the flushed rows only now (a rollback could not take them back)
            self._hand_over(self._tail_flushed)
        self._wait()
        if self._flushed == self._committed:
            return
        if self.directory:
            self._commit_part()
        else:
            self._committed = self._flushed

    def rollback(self) -> None:
        self._tail, self._tail_rows, self._tail_flushed = [], 0, 0
        self._flushed = self._committed
        try:
            self._wait()
        finally:
            # (on S3 rows reach the writer only at a commit: a commit that failed there leaves
            # the upload as the old code did, and it is not read back)
            if self._written > self._committed and self._early:
                self._drop_uncommitted()

    def close(self) -> None:
        """Write what was flushed, and publish the one file (complete, under its name)."""
        self.flush()
        self.commit()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self.directory:
            return
        if self._writer is None and self.schema is not None:
            self._open_file()  # rows never came, a schema did: an empty file with the columns
        if self._writer is not None:
            self._close_writer()
            if self._tmp != self.target:
                self.store.publish(self._tmp, self.target)

    # -- handing rows to the writer thread --------------------------------------------------------
    def _schema_settled(self) -> bool:
        """Whether the file's schema is known for good: a column all NULL so far may still take
        its type from a later batch until the first rows are written (``_conform``)."""
        if self._writer is not None or self._part:
            return True
        first = self.schema if self.schema is not None else self._tail[0].schema
        return not any(pa.types.is_null(t) for t in first.types)

    def _hand_over(self, batches: int) -> None:
        """The first ``batches`` batches of ``_tail`` to the writer thread, as the next rows of
        the temporary file."""
        if not batches:
            return
        table = self._conform(self._tail[:batches])
        self._tail = self._tail[batches:]
        self._tail_rows -= table.num_rows
        self._tail_flushed = max(self._tail_flushed - batches, 0)
        if self._writer is None:
            self._open_file()
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"velostream-sink-{self.name}")
        self._pending.append(self._pool.submit(self._write, self._writer, table))
        self._written += table.num_rows

    def _wait(self) -> None:
        """Until the writer thread has written every row handed to it; raises its error."""
        pending, self._pending = self._pending, []
        wait_all(pending)

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

    def _new_writer(self, path: str):
        """A writer of a new file at ``path``. A local file is opened by Arrow itself: written
        without taking the GIL for every block, as a Python file object would."""
        out = path if self.store.local else self.store.open_write(path)
        try:
            if self.format == "parquet":
                # No dictionary for floating-point columns: their values seldom repeat, and the
                # writer would build one per row group before falling back to plain values
                # (a third of the time of writing S3a's output); text and integers keep theirs.
                flat = all(not pa.types.is_nested(t) for t in self.schema.types)
                dictionary = ([f.name for f in self.schema if not pa.types.is_floating(f.type)]
                              if flat else True)
                compression = None if self.compression == "none" else self.compression
                # a local file without importing pyarrow.parquet (parquet_local), else as usual
                writer = (open_writer(out, self.schema, use_dictionary=dictionary,
                                      compression=compression) if out is path else None)
                if writer is None:
                    import pyarrow.parquet as pq
                    writer = pq.ParquetWriter(out, self.schema, use_dictionary=dictionary,
                                              compression=compression)
            else:
                import pyarrow.ipc as ipc
                writer = ipc.new_file(out, self.schema)
        except BaseException:
            if out is not path:
                out.close()
            raise
        return writer, (None if out is path else out)

    def _open_file(self) -> None:
        """The temporary file of the output (one file) or of the next part (a directory)."""
        final = self._part_name(self._part) if self.directory else self.target
        self._tmp = self._tmp_name(final) if self.store.local else final
        self._writer, self._out = self._new_writer(self._tmp)

    def _close_writer(self) -> None:
        writer, out, self._writer, self._out = self._writer, self._out, None, None
        try:
            writer.close()
        finally:
            if out is not None:
                out.close()

    def _write(self, writer, table: pa.Table) -> None:
        if self.format == "parquet":
            writer.write_table(table)  # row groups of at most 1 Mi rows: ends stay boundaries
        else:
            for rb in table.to_batches():
                writer.write_batch(rb)

    def _part_name(self, k: int) -> str:
        return posixpath.join(self.target, f"part-{k:05d}{_EXT[self.format]}")

    def _commit_part(self) -> None:
        """Publish the part being written with the rows flushed; rows written after the flush
        (a caller that wrote without flushing before the commit) start the next part."""
        after = self._written - self._flushed
        self._close_writer()
        written, final = self._tmp, self._part_name(self._part)
        self._part += 1
        self._tmp = None
        if after:
            done, writer, out = self._copy(written, 0, self._flushed, final)
            writer.close()
            if out is not None:
                out.close()
            # the rest: the first rows of the next part, open for more
            self._tmp, self._writer, self._out = self._copy(written, self._flushed, self._written,
                                                            self._part_name(self._part))
            self.store.delete(written)
            written = done
        self._written, self._flushed, self._committed = after, 0, 0
        if written != final:
            self.store.publish(written, final)

    def _drop_uncommitted(self) -> None:
        """Rollback: the temporary file back to its committed rows (only a local temporary file
        ever holds rows not committed)."""
        self._close_writer()
        old, self._tmp = self._tmp, None
        if self._committed:  # one file: its committed row groups, open for more rows
            self._tmp, self._writer, self._out = self._copy(old, 0, self._committed, self.target)
        elif self._part == 0:
            self.schema = None  # no row ever committed: still no file, as before the rows came
        self.store.delete(old)
        self._written = self._committed

    def _copy(self, src: str, lo: int, hi: int, final: str):
        """A new temporary file for ``final`` with rows ``lo:hi`` of the closed file ``src``,
        copied a row group (record batch) at a time: (its name, its open writer, its stream).
        ``lo`` and ``hi`` are on row-group boundaries: every commit and flush ends on one."""
        if self.format == "parquet":
            import pyarrow.parquet as pq
            f = pq.ParquetFile(src)
            sizes = [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)]
            read = f.read_row_group
        else:
            import pyarrow.ipc as ipc
            f = ipc.open_file(src)
            sizes = [f.get_batch(i).num_rows for i in range(f.num_record_batches)]
            read = lambda i: pa.Table.from_batches([f.get_batch(i)])  # noqa: E731
        tmp = self._tmp_name(final)
        writer, out = self._new_writer(tmp)
        row = 0
        try:
            for i, n in enumerate(sizes):
                if lo <= row and row + n <= hi:
                    self._write(writer, read(i))
                elif row < hi and row + n > lo:  # a commit in the middle of a row group: a bug
                    raise RuntimeError(f"{self.name}: rows {lo}:{hi} of {src} are not whole row groups")
                row += n
        except BaseException:
            writer.close()
            if out is not None:
                out.close()
            self.store.delete(tmp)
            raise
        return tmp, writer, out
