"""File sources and sinks: CSV and JSON Lines, read in bounded chunks; stdout; dead-letter files.

``FileSource`` reads a file (or a sorted glob of files) in chunks of whole records, never the
whole file at once, and decodes each chunk with Arrow's multi-threaded parsers: no per-record
Python unless a chunk holds a bad record. A bad record (a CSV row with the wrong number of fields,
a value that does not convert to its column's type, invalid JSON, bytes that are not UTF-8, an
event time that is not a time) becomes a ``Reject`` with its ``path:line`` and original bytes,
and every good record of the chunk is still read (docs/CONNECTORS.md).

>>> import os, tempfile
>>> from velostream.io.base import Properties
>>> d = tempfile.mkdtemp()
>>> p = os.path.join(d, "t.csv")
>>> _ = open(p, "w").write("sym,price\\nA,1.5\\nB,abc\\nC,2\\n")
>>> src = FileSource("t", Properties("t", {"path": p, "schema": "price DOUBLE"}))
>>> src.read().to_pylist()
[{'sym': 'A', 'price': 1.5}, {'sym': 'C', 'price': 2.0}]
>>> [(r.position.split(os.sep)[-1], r.error) for r in src.rejects()]
[('t.csv:3', "column 'price': expected DOUBLE, got 'abc'")]
"""
from __future__ import annotations

import base64
import io
import os
import queue
import re
import sys
import threading
import warnings
from typing import Optional

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv

from .._lazy import call_function, pc  # pc: imported when first used (see the module)
from ..batch import _mask, failing_rows, text_to_epoch_ms
from .base import (ConfigError, FilePosition, Properties, Reject, wait_all,
                   with_event_time)
from .codecs import TIMESTAMP_MS, JsonDecoder, is_utf8, non_utf8_at, parse_schema, sql_type_name

__all__ = ["FileSource", "FileSink", "StdoutSink", "DeadLetterFile"]

#: Bytes read per chunk at least: Arrow parses a chunk on all cores, and chunks much smaller
#: than this spend more time in per-call overhead than in parsing.
MIN_CHUNK_BYTES = 8 << 20
MAX_CHUNK_BYTES = 64 << 20


def _format_of(name: str, props: Properties, path: str) -> str:
    fmt = props.get("format")
    if fmt is None:
        ext = os.path.splitext(path)[1].lower()
        fmt = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
               ".ndjson": "jsonl"}.get(ext)
        if fmt is None:
            raise ConfigError(f"'{name}.format' is required: cannot tell it from {path!r} "
                              f"(csv or jsonl)")
    fmt = fmt.lower()
    if fmt in ("json", "ndjson"):
        fmt = "jsonl"
    if fmt not in ("csv", "jsonl"):
        raise ConfigError(f"'{name}.format' must be csv or jsonl, got {fmt!r}")
    return fmt


def _warn_unused(name: str, props: Properties) -> None:
    unused = props.unused()
    if unused:
        warnings.warn(f"{name}: unknown properties ignored: {', '.join(sorted(unused))}",
                      stacklevel=3)


# ------------------------------------------------------------------------------ reading chunks

class _Chunker:
    """A file read in chunks that end on a record boundary.

    For CSV a newline inside a quoted field is not a boundary: a newline is one when the number
    of quote characters before it (in the pending bytes, which start on a boundary) is even;
    doubled quotes inside a field keep that parity, so counting is enough.
    """

    def __init__(self, path: str, quote: Optional[bytes], delimiter: bytes = b",", f=None):
        self.path = path
        self.f = open(path, "rb") if f is None else f
        self.quote = quote
        if quote is not None:
            # a quoted field opened at a field start and still open at the end of the text
            q, d = re.escape(quote), re.escape(delimiter)
            self._open_at_end = re.compile(rb"(?:\A|" + d + rb"|\n)" + q + rb"(?:[^" + q + rb"]|" + q + q + rb")*\Z")
        self.carry = b""
        self.eof = False
        self.line = 1  # the line number of the next chunk's first line
        #: (line number, bytes) of a last record cut short inside a quoted field, found at the
        #: end of the file: a bad record, not a value running to the end of the file.
        self.unterminated: Optional[tuple[int, bytes]] = None

    def next(self, nbytes: int) -> Optional[bytes]:
        while True:
            if not self.eof:
                more = self.f.read(nbytes)
                if len(more) < nbytes:
                    self.eof = True
                buf = self.carry + more if self.carry else more
            else:
                buf = self.carry
            if self.eof:
                self.carry = b""
                if self.quote is not None and _count_byte(buf, self.quote) % 2:
                    # Odd quotes: the last record may be cut short inside a quoted field (Arrow
                    # would take the rest of the file as its value), or hold a stray quote inside
                    # an unquoted field (a value as it is: leave it to Arrow).
                    cut = self._boundary(buf)
                    if self._open_at_end.search(buf, cut):
                        self.unterminated = (self.line + buf.count(b"\n", 0, cut), buf[cut:].rstrip(b"\r\n"))
                        buf = buf[:cut]
                if not buf:
                    return None
                if not buf.endswith(b"\n"):
                    buf += b"\n"
                return self._emit(buf)
            cut = self._boundary(buf)
            if cut > 0:
                self.carry = buf[cut:]
                return self._emit(buf[:cut])
            self.carry = buf  # one record longer than a chunk: read more

    def _emit(self, chunk: bytes) -> bytes:
        self.first_line = self.line
        self.line += _count_byte(chunk, b"\n")
        return chunk

    def _boundary(self, buf: bytes) -> int:
        end = len(buf)
        while True:
            nl = buf.rfind(b"\n", 0, end)
            if nl < 0:
                return 0
            if self.quote is None or _count_byte(buf, self.quote, nl) % 2 == 0:
                return nl + 1
            end = nl

    def close(self) -> None:
        self.f.close()


def _count_byte(buf: bytes, byte: bytes, end: Optional[int] = None) -> int:
    """How many times the one-byte ``byte`` occurs in ``buf[:end]``. numpy counts at memory speed
    without holding the GIL; ``bytes.count`` takes five times as long holding it, and the reading
    thread counts every chunk's quotes and newlines while the job computes (docs/PERFORMANCE.md,
    "File to file")."""
    a = np.frombuffer(buf, dtype=np.uint8, count=len(buf) if end is None else end)
    return int(np.count_nonzero(a == byte[0]))


def _records(chunk: bytes, quote: Optional[bytes]) -> list[tuple[int, bytes]]:
    """(line number offset, text) of each record of a chunk, a quoted newline kept inside its
    record: the slow path's map from rows back to their original text."""
    out = []
    lines = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        lines.pop()
    i = 0
    while i < len(lines):
        start, rec = i, lines[i]
        while quote is not None and rec.count(quote) % 2 == 1 and i + 1 < len(lines):
            i += 1
            rec = rec + b"\n" + lines[i]
        out.append((start, rec))
        i += 1
    return out


# ------------------------------------------------------------------------------ CSV decoding

class _CsvDecoder:
    """CSV chunks (whole records, no header) into batches of one fixed schema, with rejects."""

    def __init__(self, source: str, names: list[str], override: Optional[pa.Schema],
                 delimiter: str):
        self.source = source
        self.names = names
        self.override = {f.name: f.type for f in override} if override is not None else {}
        unknown = [n for n in self.override if n not in names]
        if unknown:
            raise ConfigError(f"{source}: schema names {', '.join(unknown)}, not columns of the "
                              f"file (columns: {', '.join(names)})")
        self.parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                       invalid_row_handler=self._invalid)
        self.schema: Optional[pa.Schema] = None
        self._invalid_rows: list = []

    def _invalid(self, row) -> str:
        self._invalid_rows.append(row)
        return "skip"

    def _read(self, chunk: bytes, types: dict) -> pa.Table:
        """The chunk (UTF-8 throughout: ``decode`` has checked every byte) through Arrow's reader."""
        self._invalid_rows = []
        ro = pcsv.ReadOptions(column_names=self.names, block_size=max(1 << 20, len(chunk) // 2 + 1))
        co = pcsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                 quoted_strings_can_be_null=False, check_utf8=False)
        # an Arrow buffer reader: Arrow's threads read the chunk without the GIL (a BytesIO is
        # read through Python calls)
        return pcsv.read_csv(pa.BufferReader(chunk), read_options=ro, parse_options=self.parse,
                             convert_options=co)

    def _types_for_parse(self) -> dict:
        # TIMESTAMP columns are read as text and converted here: the text may be ISO-8601 or
        # epoch milliseconds, which Arrow's timestamp parser does not take.
        if self.schema is None:
            return {n: (pa.string() if pa.types.is_timestamp(t) else t) for n, t in self.override.items()}
        return {f.name: (pa.string() if pa.types.is_timestamp(f.type) and f.name in self.override
                         else f.type) for f in self.schema}

    def _fix_schema(self, table: pa.Table, chunk: bytes) -> None:
        fields = []
        for f in table.schema:
            t = self.override.get(f.name, f.type)
            if pa.types.is_null(t):
                t = pa.string()  # empty in the whole first chunk: text keeps any later value
            elif pa.types.is_timestamp(t):
                t = TIMESTAMP_MS
            elif f.name not in self.override and pa.types.is_floating(t) \
                    and self._integers_past_int64(table.column(f.name), chunk, f.name):
                t = pa.int64()  # integer literals, some out of range: those rows are rejects
            fields.append(pa.field(f.name, t))
        self.schema = pa.schema(fields)

    def _integers_past_int64(self, col, chunk: bytes, name: str) -> bool:
        """Whether Arrow inferred DOUBLE for a column of integer literals only because some are
        beyond int64: it is a BIGINT column with values out of range, not a DOUBLE one."""
        # numpy, over the values that are not NULL: the first chunk of every CSV file comes here,
        # and pyarrow.compute would be imported for it alone (docs/PERFORMANCE.md, "File to
        # file start-up")
        values = _non_null_values(col)
        with np.errstate(invalid="ignore"):  # NaN: neither past int64 nor integral
            if not (np.abs(values) >= float(1 << 63)).any() or not (values == np.floor(values)).all():
                return False  # as usual: a DOUBLE column
        invalid = self._invalid_rows
        text = self._read(chunk, {name: pa.string()}).column(name)
        self._invalid_rows = invalid
        return bool(pc.all(pc.match_substring_regex(text, r"^\s*[+-]?\d+\s*$")).as_py())

    def decode(self, chunk: bytes, first_line: int, path: str) -> tuple[Optional[pa.RecordBatch], list[Reject]]:
        first = self.schema is None
        chunk, not_utf8 = self._without_non_utf8(chunk, first_line, path)
        try:
            table = self._read(chunk, self._types_for_parse())
            bad: dict[int, str] = {}
            if first and table.num_rows == 0:
                # nothing but bad records: the types are for a chunk with good ones to infer
                out = None
            else:
                if first:
                    self._fix_schema(table, chunk)
                out = self._conform(table)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out, bad = self._slow(chunk, first)
        rejects = self._rejects(chunk, first_line, path, bad) if (bad or self._invalid_rows) else []
        if not_utf8:
            rejects = sorted(rejects + not_utf8, key=_line_of)
        if out is None or out.num_rows == 0:
            return None, rejects
        return out, rejects

    def _without_non_utf8(self, chunk: bytes, first_line: int, path: str) -> tuple[bytes, list[Reject]]:
        """The chunk with each record holding bytes that are not UTF-8 blanked (its newlines kept,
        so the line numbers stay; Arrow skips empty lines), and those records as rejects. Arrow
        reads the chunk without its own UTF-8 check: this one pass over the bytes replaces it,
        and the records are looked at one by one only in a chunk that has such bytes."""
        if is_utf8(chunk):
            return chunk, []
        parts, rejects = [], []
        for off, rec in _records(chunk, b'"'):
            at = non_utf8_at(rec)
            if at < 0:
                parts.append(rec)
                continue
            line = first_line + off
            rejects.append(Reject(self.source, f"{path}:{line}",
                                  f"line {line}: text that is not UTF-8 (byte {at + 1} of the record)", rec))
            parts.append(b"\n" * rec.count(b"\n"))
        return b"\n".join(parts) + b"\n", rejects

    def _conform(self, table: pa.Table) -> pa.RecordBatch:
        cols = []
        for f in self.schema:
            col = table.column(f.name)
            if col.type != f.type:
                col = _convert_text(col, f.type) if pa.types.is_string(col.type) else col.cast(f.type)
            cols.append(col)
        t = pa.Table.from_arrays(cols, schema=self.schema).combine_chunks()
        batches = t.to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=self.schema)

    def _slow(self, chunk: bytes, first: bool) -> tuple[Optional[pa.RecordBatch], dict[int, str]]:
        """Read the chunk as text and convert column by column; the rows whose value does not
        convert are found by bisection (a few casts per bad row, never one per good row)."""
        if first:
            # Infer the columns the override does not name; read the named ones as text.
            table = self._read(chunk, {n: pa.string() for n in self.override})
            self._fix_schema(table, chunk)
        table = self._read(chunk, {n: pa.string() for n in self.names})
        rows = np.arange(table.num_rows)  # the rows left, as indices of Arrow's rows
        bad: dict[int, str] = {}
        wrong: dict[int, str] = {}
        for f in self.schema:
            if pa.types.is_string(f.type):
                continue
            col = table.column(f.name).combine_chunks()
            if pa.types.is_timestamp(f.type):
                failed = text_to_epoch_ms(col)[1].tolist()
            else:
                failed = failing_rows(col, lambda a, t=f.type: _convert_text(a, t))
            for i in failed:
                wrong.setdefault(i, f"column '{f.name}': expected {sql_type_name(f.type)}, "
                                    f"got {col[i].as_py()!r}")
        if wrong:
            bad = {int(rows[i]): err for i, err in wrong.items()}
            table, rows = _without(table, rows, wrong)
        cols = [_convert_text(table.column(f.name).combine_chunks(), f.type) for f in self.schema]
        return pa.RecordBatch.from_arrays(cols, schema=self.schema), bad

    def _rejects(self, chunk: bytes, first_line: int, path: str, bad: dict[int, str]) -> list[Reject]:
        """Rejects for the invalid rows (from Arrow's handler) and the rows that did not convert,
        in file order, each with its line number and original text."""
        invalid = {}
        for row in self._invalid_rows:
            invalid.setdefault(row.text, []).append(row)
        found: list[tuple[int, str, bytes]] = []
        k = 0  # index of the next row Arrow kept
        for off, rec in _records(chunk, b'"'):
            if rec in (b"", b"\r"):
                continue  # Arrow skips empty lines
            text = rec.decode("utf-8", "replace")
            rows = invalid.get(text) or invalid.get(text.rstrip("\r"))
            if rows:
                row = rows.pop(0)
                found.append((first_line + off, f"line {first_line + off}: expected "
                              f"{row.expected_columns} fields, got {row.actual_columns}", rec))
                continue
            if k in bad:
                found.append((first_line + off, bad[k], rec))
            k += 1
        return [Reject(self.source, f"{path}:{line}", err, text) for line, err, text in found]


def _line_of(r: Reject) -> int:
    """The line number of a file source's reject (its position is ``path:line``)."""
    return int(r.position.rsplit(":", 1)[1])


def _without(table: pa.Table, rows: np.ndarray, drop: dict) -> tuple[pa.Table, np.ndarray]:
    """``table`` and its row map without the rows (indices of ``table``) that are keys of ``drop``."""
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(drop)] = False
    return table.filter(pa.array(keep)), rows[keep]


def _convert_text(col: pa.Array, t: pa.DataType) -> pa.Array:
    """Text to ``t``: a cast, except TIMESTAMP, which takes epoch ms digits or ISO-8601 (the
    event-time conversion's rules); raises ``ArrowInvalid`` if a value does not convert."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_string(t) or col.type == t:
        return col
    if pa.types.is_timestamp(t):
        if pa.types.is_integer(col.type):
            return col.cast(t)
        ms, bad = text_to_epoch_ms(col)
        if len(bad):
            raise pa.ArrowInvalid(f"not a time: {col[int(bad[0])].as_py()!r}")
        return ms.cast(t)
    return pc.cast(col, t)


# ------------------------------------------------------------------------------ the source

class FileSource(FilePosition):
    """A bounded source over a CSV or JSON Lines file, or a sorted glob of them.

    Properties: ``path`` (required; a glob reads its files in sorted order), ``format`` (csv or
    jsonl; default from the extension), ``schema`` (SQL types of some or all columns, the others
    inferred from the first chunk), ``header`` and ``delimiter`` (csv), ``batch.size`` (rows per
    batch at most, default 65536), ``event.time.field``, ``fail.on.missing.field`` (jsonl).

    A background thread decodes the next chunk while the job processes the current one (Arrow's
    parsers release the GIL); at most ``READ_AHEAD`` decoded chunks wait, so memory stays
    bounded whatever the file size. ``position`` is ``(file index, rows read from that file)``;
    ``seek`` takes one back.
    """

    READ_AHEAD = 2

    def __init__(self, name: str, props: Properties):
        self.name = name
        pattern = props.require("path")
        # a local file, a directory (its files, sorted), a glob, or the same on S3 / another
        # pyarrow file system (docs/CONNECTORS.md, object stores)
        from .object_store import ObjectStore
        self._store = ObjectStore.for_path(name, props, pattern)
        try:
            found, _ = self._store.expand(pattern)
        except OSError as e:
            raise ConfigError(f"'{name}.path': cannot read {pattern}: {e}") from e
        self.paths = found if self._store.local else [self._store.show(f) for f in found]
        if not self.paths:
            raise ConfigError(f"'{name}.path': no file matches {pattern!r}")
        for p in self.paths:
            try:
                with self._open_bytes(p) as f:
                    f.read(1)
            except OSError as e:
                raise ConfigError(f"'{name}.path': cannot read {p}: {getattr(e, 'strerror', None) or e}") from e
        self.format = _format_of(name, props, self.paths[0])
        schema_text = props.get("schema")
        self.override = parse_schema(schema_text) if schema_text else None
        self.header = props.get_bool("header", True)
        delim = props.get("delimiter", "\t" if self.paths[0].lower().endswith(".tsv") else ",")
        delim = {"\\t": "\t", "tab": "\t"}.get(delim, delim)
        if len(delim) != 1:
            raise ConfigError(f"'{name}.delimiter' must be one character, got {delim!r}")
        self.delimiter = delim
        self.batch_size = props.get_int("batch.size", 65536)
        if self.batch_size < 1:
            raise ConfigError(f"'{name}.batch.size' must be at least 1")
        self.event_time_field = props.get("event.time.field")
        self.fail_on_missing = props.get_bool("fail.on.missing.field", False)
        _warn_unused(name, props)
        self._json = (JsonDecoder(name, self.override, self.fail_on_missing)
                      if self.format == "jsonl" else None)
        self._csv: Optional[_CsvDecoder] = None
        self._rejects: list[Reject] = []
        self._ready: list[pa.RecordBatch] = []
        self._file = 0
        self._rows_in_file = 0
        self._done = False
        self.committed = (0, 0)
        self._producer: Optional[_Producer] = None
        self._start_file = 0

    # -- Reader -------------------------------------------------------------------------------
    def prefetch(self) -> None:
        """Start reading ahead now, before the first ``read`` (``velostream run`` calls it once
        the source is made, so the first chunk is decoded while the job is being set up)."""
        if self._producer is None and not self._done:
            self._producer = _Producer(self, self._start_file)

    def read(self) -> Optional[pa.RecordBatch]:
        while not self._ready:
            if self._done:
                return None
            self.prefetch()
            item = self._producer.get()
            if item is None:
                self._done = True
                self._producer = None
                return None
            fi, batches, rejects = item
            if fi != self._file:
                self._file, self._rows_in_file = fi, 0
            self._ready.extend(batches)
            self._rejects.extend(rejects)
        rb = self._ready.pop(0)
        self._rows_in_file += rb.num_rows
        return rb

    def seek(self, position) -> None:
        """Continue from ``(file index, rows of that file already read)``."""
        fi, rows = int(position[0]), int(position[1])
        self.close()
        self._start_file, self._file, self._rows_in_file = fi, fi, 0
        self._done = fi >= len(self.paths)
        while rows > 0:
            rb = self.read()
            if rb is None:
                break
            if self._file != fi:  # the file was shorter: continue with the next one
                self._ready.insert(0, rb)
                self._rows_in_file -= rb.num_rows
                break
            if rb.num_rows > rows:
                self._ready.insert(0, rb.slice(rows))
                self._rows_in_file -= rb.num_rows - rows
            rows -= min(rows, rb.num_rows)
        self._rejects = []

    def close(self) -> None:
        if self._producer is not None:
            self._producer.stop()
            self._producer = None
        self._ready = []

    def rejects(self) -> list[Reject]:
        """The rejects found since the last call (in the chunks read so far)."""
        out, self._rejects = self._rejects, []
        return out

    # -- decoding (runs in the producer thread) ------------------------------------------------
    def _open_bytes(self, path: str):
        return self._store.open_read(self._store.fs_path(path))

    def _open(self, fi: int) -> _Chunker:
        path = self.paths[fi]
        ch = _Chunker(path, b'"' if self.format == "csv" else None, self.delimiter.encode(),
                      self._open_bytes(path))
        if self.format == "csv":
            self._open_csv(path, ch)
        return ch

    def _open_csv(self, path: str, ch: _Chunker) -> None:
        """Read the header (or take the names from the schema) and, for the second and later
        files of a glob, check they have the first one's columns."""
        names = None
        if self.header:
            first = b""
            while True:  # the first record, which may hold quoted newlines
                line = ch.f.readline()
                ch.line += 1
                first += line
                if not line or first.count(b'"') % 2 == 0:
                    break
            if first.strip():
                if not is_utf8(first):
                    raise ConfigError(f"{self.name}: the header line of {path} is not UTF-8 text")
                # a header alone, without its newline, is a header still (Arrow needs the newline)
                t = pcsv.read_csv(io.BytesIO(first if first.endswith(b"\n") else first + b"\n"),
                                  parse_options=pcsv.ParseOptions(delimiter=self.delimiter))
                names = t.column_names
        if names is None:
            with self._open_bytes(path) as f:  # count the fields of the first row
                sample = f.readline()
            ncols = len(pcsv.read_csv(
                io.BytesIO(sample), read_options=pcsv.ReadOptions(autogenerate_column_names=True),
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter)).column_names) if sample.strip() else 0
            # no header (or an empty file, which has none): the names come from the schema
            given = self.override.names if self.override is not None and (not self.header or not ncols) else []
            names = given[:max(ncols, len(given))] + [f"c{i}" for i in range(len(given), ncols)]
        if self._csv is None:
            self._csv = _CsvDecoder(self.name, names, self.override, self.delimiter)
        elif names != self._csv.names:
            raise ConfigError(f"{self.name}: {path} has columns {', '.join(names)}, not those of "
                              f"{self.paths[0]} ({', '.join(self._csv.names)})")

    def _decode(self, fi: int, ch: _Chunker, chunk_bytes: int):
        """The next chunk of file ``fi`` as (batches, rejects), or None at its end."""
        chunk = ch.next(chunk_bytes)
        path = self.paths[fi]
        cut_short = []
        if ch.unterminated is not None:
            line, text = ch.unterminated
            ch.unterminated = None
            cut_short = [Reject(self.name, f"{path}:{line}", f"line {line}: a quoted field is not "
                                f"closed before the end of the file", text)]
        if chunk is None:
            return ([], cut_short, 0) if cut_short else None
        if self._json is not None:
            rb, rejects = self._json.decode_lines(chunk, ch.first_line, f"{path}:",
                                                  n_lines=ch.line - ch.first_line)
        elif self._csv.names:
            rb, rejects = self._csv.decode(chunk, ch.first_line, path)
        else:
            rb, rejects = None, []
        batches = []
        if rb is not None and rb.num_rows:
            if self.event_time_field:
                bad_times: list[tuple[int, str]] = []
                rb = with_event_time(rb, self.event_time_field, None, bad_times)
                if bad_times:
                    rejects = self._row_rejects(chunk, ch.first_line, path, rejects, bad_times)
            batches = [rb.slice(lo, self.batch_size) for lo in range(0, rb.num_rows, self.batch_size)]
        return batches, rejects + cut_short, (len(chunk) / rb.num_rows if rb is not None and rb.num_rows else 0)

    def _row_rejects(self, chunk: bytes, first_line: int, path: str, rejects: list[Reject],
                     bad: list[tuple[int, str]]) -> list[Reject]:
        """Rejects for rows of a decoded chunk (row index, why), with their line and text, merged
        in file order with the chunk's other rejects. The rows are the chunk's records that are
        neither blank nor already rejected, in order; this map is built only for a chunk that has
        such rows."""
        taken = {_line_of(r) for r in rejects}
        if self._json is not None:
            lines = chunk.split(b"\n")
            if chunk.endswith(b"\n"):
                lines.pop()
            records = [(first_line + i, rec) for i, rec in enumerate(lines) if rec.strip()]
        else:
            records = [(first_line + off, rec) for off, rec in _records(chunk, b'"')
                       if rec not in (b"", b"\r")]  # Arrow skips empty lines
        rows = [(line, rec) for line, rec in records if line not in taken]
        found = [Reject(self.name, f"{path}:{rows[i][0]}", err, rows[i][1]) for i, err in bad]
        return sorted(rejects + found, key=_line_of)


class _Producer:
    """The read-ahead thread of a FileSource: decodes chunks into a bounded queue; an exception
    is handed over to the reader, raised by ``get``."""

    def __init__(self, src: FileSource, start_file: int):
        self.src = src
        self.q: queue.Queue = queue.Queue(maxsize=src.READ_AHEAD)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(start_file,),
                                       name=f"velostream-file-{src.name}", daemon=True)
        self.thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def _run(self, start_file: int) -> None:
        src = self.src
        try:
            bytes_per_row = 0.0
            for fi in range(start_file, len(src.paths)):
                ch = src._open(fi)
                try:
                    while not self._stop.is_set():
                        want = int(min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, bytes_per_row * src.batch_size)))
                        out = src._decode(fi, ch, want)
                        if out is None:
                            break
                        batches, rejects, bpr = out
                        bytes_per_row = bpr or bytes_per_row
                        if (batches or rejects) and not self._put((fi, batches, rejects)):
                            return
                finally:
                    ch.close()
            self._put(None)
        except BaseException as e:  # handed to the reader's thread
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


# ------------------------------------------------------------------------------ JSON text of columns

def _json_column(col: pa.Array) -> pa.Array:
    """Each value's JSON text (``null`` for NULL), vectorised: no per-row Python for numbers,
    booleans and strings without control characters."""
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_decimal(t):
        text = col.cast(pa.string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(col)
        text = pc.if_else(finite, col.cast(pa.string()), pa.scalar(None, pa.string()))
        # "100" would read back as an integer: keep it a float ("100.0"), as orjson does. Only
        # an integral value can be written as bare digits (any other has a "." or an "e-"), so
        # only those rows' text is looked at.
        integral = np.flatnonzero(_mask(pc.and_(finite, pc.equal(col, pc.floor(col)))))
        if len(integral):
            bare = pc.invert(pc.match_substring_regex(text.take(integral), r"[.eEn]"))
            plain = np.zeros(len(col), dtype=bool)
            plain[integral[_mask(bare)]] = True
            if plain.any():
                text = pc.if_else(pa.array(plain), pc.binary_join_element_wise(text, ".0", ""), text)
    elif pa.types.is_boolean(t):
        text = pc.if_else(col, "true", "false")
    elif _is_text(t):
        s = col.cast(pa.string())
        esc = _escaped_text(s)
        if esc is None:
            text = pa.array([None if v is None else orjson.dumps(v).decode() for v in s.to_pylist()],
                            pa.string())
        else:
            text = pc.binary_join_element_wise('"', esc, '"', "")
    else:
        text = pa.array([None if v is None else orjson.dumps(v, default=str).decode()
                         for v in col.to_pylist()], pa.string())
    return pc.fill_null(text, "null")


def _non_null_values(col) -> np.ndarray:
    """The values of a numeric Arrow array or chunked array that are not NULL, as numpy, read
    from its validity bitmap (without pyarrow.compute)."""
    parts = []
    for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]):
        values = c.to_numpy(zero_copy_only=False)
        if c.null_count:
            bits = np.unpackbits(np.frombuffer(c.buffers()[0], dtype=np.uint8), bitorder="little")
            values = values[bits[c.offset:c.offset + len(c)].astype(bool)]
        parts.append(values)
    return np.concatenate(parts) if parts else np.empty(0)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)


def _escaped_text(s: pa.Array) -> Optional[pa.Array]:
    """A string array's values with ``\\`` and ``"`` escaped, ready to go between quotes; None
    when some value has a control character (then orjson writes each value)."""
    # one numpy pass over the text bytes says which escapes are needed (most text has none)
    raw = _value_bytes(s)
    if (raw < 0x20).any():
        return None
    if ((raw == 0x5C) | (raw == 0x22)).any():  # backslash, double quote
        return pc.replace_substring(pc.replace_substring(s, "\\", "\\\\"), '"', '\\"')
    return s


def _value_bytes(s: pa.Array) -> np.ndarray:
    """The bytes of a string array's values (those of NULL slots too, if any), without a copy."""
    data = s.buffers()[2]
    if data is None or len(s) == 0:
        return np.empty(0, dtype=np.uint8)
    offsets = np.frombuffer(s.buffers()[1], dtype=np.int32, count=len(s) + 1, offset=s.offset * 4)
    return np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]


def _number_texts(col: pa.Array, end: str) -> Optional[pa.Array]:
    """The JSON text of a DOUBLE column, or of an integer column without NULLs, each value
    followed by the character ``end`` (the ``,`` or ``}`` after it in its line); None when this
    way does not apply (``_json_column`` then writes the column).

    orjson writes the whole column from its numpy values at once: integers as Arrow writes them,
    doubles in the shortest form that reads back as the same double, a float keeping its ``.0``,
    NULL (NaN in numpy), NaN and the infinities as ``null``, as ``_json_column`` does; two and a
    half times faster than Arrow's float formatting (the largest part of writing S3a's JSON
    lines), four times for integers (docs/PERFORMANCE.md, "File to file"). The separators of its
    array text are where the values end: each value's text runs to its separator, which becomes
    ``end``, so the text array is made without a copy per value.
    """
    t = col.type
    if not (pa.types.is_float64(t) or (pa.types.is_integer(t) and col.null_count == 0)):
        return None
    values = col.to_numpy(zero_copy_only=False)
    n = len(values)
    if n == 0:
        return None
    text = np.frombuffer(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY), dtype=np.uint8)
    seps = np.flatnonzero(text == 0x2C)  # "[v0,v1,...]": no number (nor null) has a comma
    if len(seps) != n - 1 or len(text) >= 1 << 31:
        return None
    data = text[1:].copy()  # without "[": the separator after value i is at seps[i] - 1
    data[-1] = ord(end)     # "]"
    if end != ",":
        data[seps - 1] = ord(end)
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0], offsets[-1] = 0, len(data)
    offsets[1:-1] = seps
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def jsonl_bytes(rb: pa.RecordBatch) -> bytes:
    """A batch as JSON Lines, one object per row, built column-wise by Arrow (``jsonl_buffer``).

    >>> jsonl_bytes(pa.RecordBatch.from_pydict({"a": [1, None], "b": ['x"', "y"], "c": [1.0, 2.5]}))
    b'{"a":1,"b":"x\\\\"","c":1.0}\\n{"a":null,"b":"y","c":2.5}\\n'
    """
    return jsonl_buffer(rb).to_pybytes()


def jsonl_buffer(rb: pa.RecordBatch) -> pa.Buffer:
    """``jsonl_bytes`` as the Arrow buffer the text was built in: a file is written from it
    without copying it into ``bytes`` first."""
    if rb.num_rows == 0:
        return pa.py_buffer(b"")
    parts: list = []  # the text of each line: literals between columns' texts, joined by Arrow
    literal = ""
    last = rb.num_columns - 1
    ended = False  # the previous column's text ends with the separator after it
    for i, (name, col) in enumerate(zip(rb.schema.names, rb.columns)):
        literal += ("{" if i == 0 else "" if ended else ",") + orjson.dumps(name).decode() + ":"
        ended = False
        esc = None
        if col.null_count == 0 and _is_text(col.type) and not pa.types.is_dictionary(col.type):
            esc = _escaped_text(col if pa.types.is_string(col.type) else col.cast(pa.string()))
        if esc is not None:  # no NULL: the quotes join the literals around it (one join less)
            parts += [literal + '"', esc]
            literal = '"'
            continue
        text = _number_texts(col, "," if i < last else "}")
        ended = text is not None
        parts += [literal, text if ended else _json_column(col)]
        literal = ""
    parts.append(literal + ("\n" if ended else "}\n"))
    if len(parts) == 1:
        return pa.py_buffer(b"{}\n" * rb.num_rows)
    # by name: the one kernel every batch needs, without importing pyarrow.compute for it
    # (velostream/_lazy.py)
    lines = call_function("binary_join_element_wise", parts + [""])
    # The rows are contiguous in the result's value buffer: write it as it is.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def csv_bytes(rb: pa.RecordBatch, header: bool) -> bytes:
    buf = io.BytesIO()
    pcsv.write_csv(rb, buf, pcsv.WriteOptions(include_header=header))
    return buf.getvalue()


# ------------------------------------------------------------------------------ sinks

class FileSink:
    """Writes CSV or JSON Lines. ``write_batch`` hands the rows over, ``flush`` returns once they
    are written, ``commit`` makes the flushed bytes durable (fsync) and remembers the size,
    ``rollback`` drops what was not flushed and truncates the file back to the last commit. The
    file is created (or emptied) when the sink is made. Properties: ``path`` (required),
    ``format`` (default from the extension), ``header`` (csv, default true).

    The text of each batch is made and written to the file on the sink's own thread (Arrow's
    kernels and the writes release the GIL), while the job computes its next rows: not all of it
    at the flush, while the job waits (docs/PERFORMANCE.md, "File to file"). One thread: the
    texts come in order. Every ``SYNC_BYTES`` written, a second thread has the operating system
    write them to the disk (fdatasync), so the fsync of a commit has little left to do."""

    SYNC_BYTES = 16 << 20

    def __init__(self, name: str, props: Properties):
        self.name = name
        self.path = props.require("path")
        self.format = _format_of(name, props, self.path)
        self.header = props.get_bool("header", True)
        _warn_unused(name, props)
        try:
            self._f = open(self.path, "wb")
        except OSError as e:
            raise ConfigError(f"'{name}.path': cannot write {self.path}: {e.strerror or e}") from e
        self.schema: Optional[pa.Schema] = None
        self._pending: list = []  # Futures of the batches handed to the writer thread
        self._writer = None   # the writer thread (a one-thread executor)
        self._syncer = None   # the thread that syncs what was written (idem)
        self._syncing = None  # its Future, while it syncs
        self._unsynced = 0    # bytes written since the last sync was started
        self.committed_size = 0
        self._flushed_size = 0
        self._header_done = False       # the header is in the file (the writer thread's)
        self._header_flushed = False
        self._header_committed = False

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self.schema is None:
            self.schema = batch.schema
        if self._writer is None:
            from concurrent.futures import ThreadPoolExecutor
            self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"velostream-sink-{self.name}")
            self._syncer = ThreadPoolExecutor(1, thread_name_prefix=f"velostream-sync-{self.name}")
        self._pending.append(self._writer.submit(self._write, batch))

    def _write(self, rb: pa.RecordBatch) -> None:
        """One batch's text to the file (the writer thread)."""
        if self.format == "jsonl":
            text = jsonl_buffer(rb)
        else:
            text = csv_bytes(rb, False)
            if self.header and not self._header_done:
                self._f.write(csv_bytes(rb.slice(0, 0), True))
            self._header_done = True
        self._f.write(text)
        self._unsynced += len(text)
        if self._unsynced >= self.SYNC_BYTES and (self._syncing is None or self._syncing.done()):
            self._unsynced = 0
            self._syncing = self._syncer.submit(os.fdatasync, self._f.fileno())

    def _wait(self) -> None:
        """Until the writer thread has written every batch handed to it; raises its error."""
        pending, self._pending = self._pending, []
        wait_all(pending)

    def flush(self) -> None:
        self._wait()
        self._f.flush()
        self._flushed_size = self._f.tell()
        self._header_flushed = self._header_done

    def commit(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        # rows handed over after the flush may be written already: they are the next commit's
        self.committed_size = self._flushed_size
        self._header_committed = self._header_flushed

    def rollback(self) -> None:
        for f in self._pending:
            f.cancel()  # not written yet: never will be
        try:
            self._wait()
        except Exception:  # noqa: BLE001 - rows being dropped: their error does not matter
            pass
        self._f.flush()
        self._f.truncate(self.committed_size)
        self._f.seek(self.committed_size)
        self._flushed_size = self.committed_size
        self._header_done = self._header_flushed = self._header_committed

    def close(self) -> None:
        try:
            if not self._f.closed:
                self.flush()
                if self._syncing is not None:  # not on a closed (or reused) descriptor
                    self._syncing.exception()
                self._f.close()
        finally:
            for pool in (self._writer, self._syncer):
                if pool is not None:
                    pool.shutdown()
            self._writer = self._syncer = None


class StdoutSink:
    """Prints results to ``sys.stdout`` at flush: ``format`` = ``table`` (aligned columns, the
    header once, widths from the first batch) or ``jsonl``."""

    def __init__(self, name: str, props: Properties):
        self.name = name
        self.format = (props.get("format") or "table").lower()
        if self.format in ("json", "ndjson"):
            self.format = "jsonl"
        if self.format not in ("table", "jsonl"):
            raise ConfigError(f"'{name}.format' must be table or jsonl, got {self.format!r}")
        _warn_unused(name, props)
        self._pending: list[pa.RecordBatch] = []
        self._widths: Optional[list[int]] = None
        self._numeric: list[bool] = []

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)

    @staticmethod
    def _cell(v) -> str:
        return "NULL" if v is None else (repr(v) if isinstance(v, float) else str(v))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        out = sys.stdout
        for rb in pending:
            if rb.num_rows == 0:
                continue
            if self.format == "jsonl":
                out.write(jsonl_bytes(rb).decode())
                continue
            cols = [[self._cell(v) for v in c.to_pylist()] for c in rb.columns]
            if self._widths is None:
                names = rb.schema.names
                self._widths = [max([len(n)] + [len(v) for v in c]) for n, c in zip(names, cols)]
                self._numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
                                 for t in rb.schema.types]
                out.write(" | ".join(n.ljust(w) for n, w in zip(names, self._widths)).rstrip() + "\n")
                out.write("-+-".join("-" * w for w in self._widths) + "\n")
            for row in zip(*cols):
                out.write(" | ".join(v.rjust(w) if num else v.ljust(w) for v, w, num
                                     in zip(row, self._widths, self._numeric)).rstrip() + "\n")
        out.flush()

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        self._pending = []

    def close(self) -> None:
        self.flush()


class DeadLetterFile:
    """Appends rejects to a JSON Lines file, one object per reject:
    ``{"source", "position", "error", "payload"}`` (or ``"payload_base64"`` when the payload is
    not UTF-8 text)."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._f = open(path, "ab")
        except OSError as e:
            raise ConfigError(f"dead-letter file: cannot write {path}: {e.strerror or e}") from e

    def write(self, rejects: list[Reject]) -> None:
        for r in rejects:
            rec = {"source": r.source, "position": r.position, "error": r.error}
            try:
                rec["payload"] = bytes(r.payload).decode("utf-8")
            except UnicodeDecodeError:
                rec["payload_base64"] = base64.b64encode(r.payload).decode("ascii")
            self._f.write(orjson.dumps(rec) + b"\n")

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
