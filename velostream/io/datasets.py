"""Parquet and Arrow IPC file sources, read by ``pyarrow.dataset`` row group by row group.

``DatasetSource`` reads a file, a directory (recursively), a glob, or a hive-partitioned directory
(``date=2024-01-01/part-0.parquet``: ``date`` becomes a column), locally or on S3 / another
``pyarrow.fs`` file system (``velostream.io.object_store``). Only the columns the query reads are
decoded (``columns``; ``open_source`` works them out from the job's SQL and the files' schema).
A Parquet file is read one row group at a time and an Arrow IPC file one record batch at a time,
by a read-ahead thread holding at most ``READ_AHEAD`` batches: memory stays bounded by a row group,
whatever the size of the input.

A file that cannot be read (not Parquet, truncated, a corrupt row group) is a bad record of the
source (docs/CONNECTORS.md, bad records): a ``Reject`` whose position names the file (and the row
group), counted and routed by the job's failure strategy; the other files and row groups are still
read. So is a row whose ``event.time.field`` is not a time (position ``path@row``).

>>> import os, tempfile
>>> import pyarrow as pa, pyarrow.parquet as pq
>>> from velostream.io.base import Properties
>>> d = tempfile.mkdtemp()
>>> for day, xs in (("2024-01-01", [1, 2]), ("2024-01-02", [3])):
...     os.makedirs(os.path.join(d, f"day={day}"))
...     pq.write_table(pa.table({"x": xs, "y": ["a"] * len(xs)}), os.path.join(d, f"day={day}", "part-0.parquet"))
>>> _ = open(os.path.join(d, "day=2024-01-03.parquet"), "w").write("not parquet")
>>> src = DatasetSource("t", Properties("t", {"path": d, "format": "parquet"}), columns={"x", "day"})
>>> while src.has_more():
...     rb = src.read()
...     if rb is not None: print(rb.to_pydict())
{'x': [1, 2], 'day': ['2024-01-01', '2024-01-01']}
{'x': [3], 'day': ['2024-01-02']}
>>> [(os.path.basename(r.position), r.error[:40]) for r in src.rejects()]
[('day=2024-01-03.parquet', 'cannot read the file as Parquet: Could n')]
"""
from __future__ import annotations

import os
import posixpath
import queue
import threading
import warnings
from typing import Iterator, Optional

import orjson
import pyarrow as pa

from .base import ConfigError, FilePosition, Properties, Reject, with_event_time
from .object_store import ObjectStore
from .parquet_local import open_file

__all__ = ["DatasetSource", "file_format", "columns_needed", "FORMAT_OF_EXTENSION"]

FORMAT_OF_EXTENSION = {
    ".parquet": "parquet", ".pq": "parquet",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow",
    ".csv": "csv", ".tsv": "csv",
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
}
FORMAT_NAMES = {"parquet": "parquet", "arrow": "arrow", "feather": "arrow", "ipc": "arrow",
                "csv": "csv", "jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl"}
_SHOWN = {"parquet": "Parquet", "arrow": "Arrow IPC"}


def file_format(name: str, props: Properties, *, sink: bool = False) -> str:
    """The format of a file source or sink: ``format`` if given, else the path's extension (for
    a source directory without one: the extension its files share). One of parquet, arrow, csv,
    jsonl."""
    given = props.values.get("format")
    if given is not None:
        fmt = FORMAT_NAMES.get(given.lower())
        if fmt is None:
            raise ConfigError(f"'{name}.format' must be parquet, arrow, csv or jsonl, got {given!r}")
        return fmt
    path = props.values.get("path", "")
    ext = posixpath.splitext(path.rstrip("/"))[1].lower()
    if ext in FORMAT_OF_EXTENSION:
        return FORMAT_OF_EXTENSION[ext]
    if not sink and path:
        store = ObjectStore.for_path(name, Properties(name, props.values), path)
        try:
            files = store.expand(path)[0]
        except OSError as e:  # nothing there: say so rather than ask for a format
            raise ConfigError(f"'{name}.path': cannot read {path}: {e}") from e
        if not files:
            raise ConfigError(f"'{name}.path': no file matches {path!r}")
        if store.is_dir(path):
            fmts = {FORMAT_OF_EXTENSION.get(posixpath.splitext(f)[1].lower()) for f in files}
            if len(fmts) == 1 and None not in fmts:
                return fmts.pop()
    raise ConfigError(f"'{name}.format' is required: cannot tell it from {path!r} "
                      f"(parquet, arrow, csv or jsonl)")


def columns_needed(spec, schema: pa.Schema) -> Optional[set[str]]:
    """The source columns the job's query reads, planned against ``schema``; None (all of them)
    when that cannot be told here (a job file of several statements, or a plan that fails: the
    job then reports the error as it would without projection)."""
    if spec.script is not None:
        return None
    from ..binding import SourceBinder, check_left_out
    from ..planner import plan_statement
    try:
        fields = [f for f in schema if f.name != "_TIMESTAMP"] + [pa.field("_TIMESTAMP", pa.int64())]
        binder = SourceBinder(spec.source_name)
        binder.bind(pa.RecordBatch.from_pylist([], schema=pa.schema(fields)))
        # a column of a type velostream does not take is left out of the plan: when the query
        # reads it (by name or *), every column is read, and the job reports the error
        check_left_out(spec.statement.sql, [spec.statement], spec.statement.select.source.name,
                       binder.left_out)
        plan = plan_statement(spec.statement, {spec.statement.select.source.name: binder.sql_schema()})
        return set(plan.input_columns_used)
    except Exception:  # noqa: BLE001 - read every column; the job reports the error itself
        return None


class DatasetSource(FilePosition):
    """A bounded source over Parquet or Arrow IPC files (see the module docstring).

    Properties: ``path`` (required: a file, a directory, a glob, ``s3://bucket/prefix``),
    ``format`` (parquet or arrow; default from the extension), ``batch.size`` (rows per batch at
    most, default 65536), ``event.time.field``, ``partitioning`` (``hive``, the default, or
    ``none``), ``s3.endpoint``, ``s3.region``. ``columns``: the columns to decode (None: all).

    ``position`` is ``(file index, rows of that file read)``, as for the CSV source; ``seek``
    takes one back, skipping whole row groups without decoding them.
    """

    READ_AHEAD = 4

    def __init__(self, name: str, props: Properties, columns: Optional[set[str]] = None):
        self.name = name
        path = props.require("path")
        self.format = file_format(name, props)
        props.get("format")
        if self.format not in ("parquet", "arrow"):
            raise ConfigError(f"'{name}.format': DatasetSource reads parquet or arrow, not {self.format}")
        self.store = ObjectStore.for_path(name, props, path)
        self.batch_size = props.get_int("batch.size", 65536)
        if self.batch_size < 1:
            raise ConfigError(f"'{name}.batch.size' must be at least 1")
        self.event_time_field = props.get("event.time.field")
        partitioning = (props.get("partitioning") or "hive").lower()
        if partitioning not in ("hive", "none"):
            raise ConfigError(f"'{name}.partitioning' must be hive or none, got {partitioning!r}")
        unused = props.unused()
        if unused:
            warnings.warn(f"{name}: unknown properties ignored: {', '.join(sorted(unused))}",
                          stacklevel=2)
        try:
            self.files, base = self.store.expand(path)
        except OSError as e:
            raise ConfigError(f"'{name}.path': cannot read {path}: {e}") from e
        if not self.files:
            raise ConfigError(f"'{name}.path': no file matches {path!r}")
        self._bad: dict[int, Reject] = {}  # files found unreadable while finding the schema
        self._fragments: dict = {}  # path -> pyarrow.dataset fragment (Arrow, hive, S3)
        # Local Parquet files without hive partition columns are read by pyarrow.parquet alone,
        # batch by batch: the first batch comes after a quarter of a row group is decoded (the
        # dataset scanner decodes the whole row group first), and pyarrow.dataset is not imported
        # (docs/PERFORMANCE.md, "File to file"). The rest goes through pyarrow.dataset.
        self._plain = (self.format == "parquet" and self.store.local
                       and (partitioning == "none" or not _partition_keys(self.files, base)))
        if self._plain:
            first = self._first_readable()
            self.schema = self._first_schema if first is not None else pa.schema([])
        else:
            import pyarrow.dataset as ds  # here, not at the top: a CSV job needs none of it
            first = self._first_readable()
            dataset = None
            if first is not None:
                order = [self.files[first]] + [f for i, f in enumerate(self.files)
                                               if i != first and i not in self._bad]
                part = (ds.HivePartitioning.discover(infer_dictionary=False)
                        if partitioning == "hive" else None)
                # the schema is the first readable file's, plus the partition columns of the paths
                dataset = ds.dataset(order, format=self._ds_format(), filesystem=self.store.fs,
                                     partitioning=part, partition_base_dir=base)
                self._fragments = {f.path: f for f in dataset.get_fragments()}
            self.schema = dataset.schema if dataset is not None else pa.schema([])
        self.columns: Optional[list[str]] = None
        self.project(columns)
        self._rejects: list[Reject] = []
        self._ready: list = []
        self._file = 0
        self._rows_in_file = 0
        self._done = False
        self._pump: Optional[_Pump] = None
        self._start = (0, 0)
        self.committed = (0, 0)

    def project(self, columns: Optional[set[str]]) -> None:
        """Decode only ``columns`` (and the event-time and ``_TIMESTAMP`` columns); None: all."""
        if columns is None:
            self.columns = None
            return
        keep = set(columns) | {"_TIMESTAMP"}
        if self.event_time_field:
            keep.add(self.event_time_field)
        names = [n for n in self.schema.names if n in keep]
        if not names and self.schema.names:
            names = self.schema.names[:1]  # COUNT(*) alone: one column carries the row count
        self.columns = names

    # -- finding the schema ---------------------------------------------------------------------
    def _ds_format(self):
        import pyarrow.dataset as ds
        return ds.ParquetFileFormat() if self.format == "parquet" else ds.IpcFileFormat()

    def _first_readable(self) -> Optional[int]:
        if not self._plain:
            fmt = self._ds_format()
        for i, f in enumerate(self.files):
            try:
                if self._plain:
                    self._first_schema = _parquet_file(f).schema_arrow
                else:
                    fmt.inspect(f, filesystem=self.store.fs)
                return i
            except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
                self._bad[i] = self._file_reject(f, exc)
        return None

    def _file_reject(self, path: str, exc: BaseException, where: str = "") -> Reject:
        shown = self.store.show(path)
        return Reject(self.name, shown + where,
                      f"cannot read the file as {_SHOWN[self.format]}: {_first_line(exc)}", b"")

    # -- Reader ---------------------------------------------------------------------------------
    def prefetch(self) -> None:
        """Start reading ahead now, before the first ``read`` (``velostream run`` calls it once
        the source is made, so the first batch is decoded while the job is being set up)."""
        if self._pump is None and not self._done:
            self._pump = _Pump(self, *self._start)

    def read(self) -> Optional[pa.RecordBatch]:
        while not self._ready:
            if self._done:
                return None
            self.prefetch()
            item = self._pump.get()
            if item is None:
                self._done = True
                self._pump = None
                return None
            fi, rb, consumed, rejects = item
            if fi != self._file:
                self._file, self._rows_in_file = fi, 0
            self._rejects.extend(rejects)
            if rb is None:  # rows read but none delivered: a bad row group, bad event times
                self._rows_in_file += consumed
                continue
            self._ready.append((rb, consumed))
        rb, consumed = self._ready.pop(0)
        self._rows_in_file += consumed
        return rb

    def seek(self, position) -> None:
        """Continue from ``(file index, rows of that file already read)``."""
        fi, rows = int(position[0]), int(position[1])
        self.close()
        self._start = (fi, rows)
        self._file, self._rows_in_file = fi, rows
        self._done = fi >= len(self.files)
        self._rejects = []

    def close(self) -> None:
        if self._pump is not None:
            self._pump.stop()
            self._pump = None
        self._ready = []

    def rejects(self) -> list[Reject]:
        """The rejects found since the last call."""
        out, self._rejects = self._rejects, []
        return out

    # -- decoding (runs in the read-ahead thread) -------------------------------------------------
    def items(self, start_file: int, skip: int) -> Iterator[tuple]:
        """(file index, batch or None, rows of the file it accounts for, rejects), in order."""
        for fi in range(start_file, len(self.files)):
            yield from self._file_items(fi, skip if fi == start_file else 0)

    def _file_items(self, fi: int, skip: int) -> Iterator[tuple]:
        path = self.files[fi]
        if fi in self._bad:
            yield fi, None, 0, [self._bad[fi]]
            return
        row = 0  # rows of the file read (or skipped) so far
        try:
            groups = self._row_groups(path)
        except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
            yield fi, None, 0, [self._file_reject(path, exc)]
            return
        group_start = 0
        for k, (n, batches) in enumerate(groups):
            start, group_start = group_start, group_start + (n or 0)
            if n is not None and start + n <= skip:  # seek: a whole row group before the position
                row = start + n
                continue
            try:
                for rb in batches():
                    if row + rb.num_rows <= skip:
                        row += rb.num_rows
                        continue
                    if row < skip:
                        rb, row = rb.slice(skip - row), skip
                    yield (fi, *self._deliver(rb, path, row))
                    row += rb.num_rows
            except (pa.ArrowInvalid, OSError, pa.ArrowNotImplementedError) as exc:
                # the rest of the row group (of an Arrow file: of the file) is lost: one reject
                where = f"#row-group-{k}" if self.format == "parquet" else f"@{row}"
                rest = max(start + n - row, 0) if n is not None else 0
                yield fi, None, rest, [self._file_reject(path, exc, where)]
                row += rest

    def _row_groups(self, path: str) -> list:
        """(rows or None, a function giving its batches) of each row group of the file (of an
        Arrow file: the file as one)."""
        frag = self._fragments.get(path)
        if self._plain:
            f = _parquet_file(path)
            names = self.columns if self.columns is not None else self.schema.names
            if _same_columns(f.schema_arrow, self.schema, names):
                return [(f.metadata.row_group(k).num_rows,
                         lambda k=k: self._parquet_batches(f, k, names))
                        for k in range(f.num_row_groups)]
            # other columns or types than the first file's: pyarrow.dataset casts them (or fills
            # a missing column with NULL), as it does for every file of a dataset
            import pyarrow.dataset as ds
            frag = next(iter(ds.dataset([path], schema=self.schema, format=self._ds_format())
                             .get_fragments()))
        if frag is None:  # pragma: no cover - every readable file is a fragment
            return []
        parts = frag.split_by_row_group() if self.format == "parquet" else [frag]
        return [(part.row_groups[0].num_rows if self.format == "parquet" else None,
                 lambda part=part: part.to_batches(schema=self.schema, columns=self.columns,
                                                   batch_size=self.batch_size, use_threads=True))
                for part in parts]

    def _parquet_batches(self, f, k: int, names: list[str]) -> Iterator[pa.RecordBatch]:
        for rb in f.iter_batches(self.batch_size, row_groups=[k], columns=names, use_threads=True):
            yield rb if rb.schema.names == names else rb.select(names)

    def _deliver(self, rb: pa.RecordBatch, path: str, first_row: int):
        """(batch or None, rows it accounts for, rejects) for ``rb``, rows ``first_row``... of
        ``path``: the event time set, rows without one rejected."""
        n = rb.num_rows
        rejects: list[Reject] = []
        if self.event_time_field:  # as the CSV source: without it the engine stamps the rows
            bad: list[tuple[int, str]] = []
            source = rb
            rb = with_event_time(rb, self.event_time_field, None, bad)
            if bad:
                shown = self.store.show(path)
                rejects = [Reject(self.name, f"{shown}@{first_row + i}", why,
                                  orjson.dumps(source.slice(i, 1).to_pylist()[0], default=str))
                           for i, why in bad]
        if rb.num_rows == 0 and n:
            return None, n, rejects
        return rb, n, rejects


def _parquet_file(path: str):
    """A local Parquet file to read: without importing pyarrow.parquet where it can be
    (``parquet_local``)."""
    f = open_file(path)
    if f is None:
        import pyarrow.parquet as pq
        f = pq.ParquetFile(path)
    return f


def _partition_keys(files: list[str], base: Optional[str]) -> bool:
    """Whether a path below ``base`` has a hive partition directory (``key=value``)."""
    if base is None:
        return False
    return any("=" in part for f in files for part in os.path.relpath(f, base).split(os.sep)[:-1])


def _same_columns(got: pa.Schema, want: pa.Schema, names: list[str]) -> bool:
    """Whether a file has the columns ``names`` of ``want``, once each, of the same types."""
    for n in names:
        i, j = got.get_field_index(n), want.get_field_index(n)  # -1: missing, or named twice
        if i < 0 or j < 0 or not got.field(i).type.equals(want.field(j).type):
            return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class _Pump:
    """The read-ahead thread of a DatasetSource: runs ``src.items`` into a bounded queue; an
    exception is handed over to the reader, raised by ``get``."""

    def __init__(self, src: DatasetSource, start_file: int, skip: int):
        self.q: queue.Queue = queue.Queue(maxsize=src.READ_AHEAD)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(src, start_file, skip),
                                       name=f"velostream-dataset-{src.name}", daemon=True)
        self.thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _run(self, src: DatasetSource, start_file: int, skip: int) -> None:
        try:
            for item in src.items(start_file, skip):
                if not self._put(item):
                    return
            self._put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the reader's thread
            self._put(e)

    def get(self):
        item = self.q.get()
        if isinstance(item, BaseException):
            self.stop()
            raise item
        return item

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()

