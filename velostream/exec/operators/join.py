"""Joins (docs/SQL.md §9): the interval join of two streams and the temporal join of a stream
with a table.

Both work on whole batches. Keys become the engine's group-key words (``KeyCodec``: text as
codes of the join's own string dictionary); the compiled ``_core.join_index.KeyRuns`` indexes one
side's rows by key and time and probes the other side's without the GIL (NULL keys never match).
Output rows are assembled with Arrow ``take``, never row by row in Python. Output columns are named
``alias.column`` (the stage above the join reads them under the names the query uses) plus the
joined row's event time in the hidden ``_TIMESTAMP``.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
import pyarrow as pa

from .base import EVENT_TIME, INT64_MIN

INT64_MAX = 2 ** 63 - 1


def times_of(col) -> np.ndarray:
    """Epoch milliseconds (int64) of an integer or timestamp column; NULL -> INT64_MIN."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ms")).cast(pa.int64())
    elif not pa.types.is_integer(col.type):
        col = col.cast(pa.int64())
    if col.null_count:
        col = col.fill_null(INT64_MIN)
    return col.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


class _Output:
    """Builds joined rows: left columns, right columns (NULL where a side is missing), time."""

    def __init__(self, left: pa.Schema, right: pa.Schema, left_alias: Optional[str],
                 right_alias: str, left_hidden=(), right_hidden=(), aliases=None):
        """``left_alias`` None: the left rows are an earlier join's, already ``alias.column``;
        ``aliases``: then every relation's alias in FROM order (the chain's and the right's)."""
        self.left_names = [n for n in left.names if n not in left_hidden]
        self.right_names = [n for n in right.names if n not in right_hidden]
        self.aliases = tuple(aliases) if aliases is not None else (left_alias, right_alias)
        lp = "" if left_alias is None else f"{left_alias}."
        fields = [pa.field(f"{lp}{n}", left.field(n).type) for n in self.left_names]
        fields += [pa.field(f"{right_alias}.{n}", right.field(n).type) for n in self.right_names]
        fields.append(pa.field(EVENT_TIME, pa.int64()))
        self.schema = pa.schema(fields)

    def rows(self, left: pa.Table, li: np.ndarray, right: pa.Table, ri: np.ndarray,
             times: np.ndarray, every_left: bool = False) -> list[pa.RecordBatch]:
        """Rows ``li`` of ``left`` beside rows ``ri`` of ``right`` (-1: NULL); ``every_left``:
        ``li`` is known to be every left row in order."""
        if len(li) == 0:
            return []
        lt, rt = _Gather(li, left.num_rows, every_left), _Gather(ri, right.num_rows)
        cols = [lt.take(left.column(n)) for n in self.left_names]
        cols += [rt.take(right.column(n)) for n in self.right_names]
        cols.append(pa.array(times, type=pa.int64()))
        return pa.Table.from_arrays(cols, schema=self.schema).combine_chunks().to_batches()


class _Gather:
    """Rows ``idx`` (-1: NULL) of one side's columns, by Arrow ``take``; the index is examined
    once for all the side's columns, and every row in order takes the columns uncopied."""

    def __init__(self, idx: np.ndarray, n: int, everything: bool = False):
        self.idx = idx
        self.everything = everything or (
            len(idx) == n and n > 0 and idx[0] == 0 and idx[-1] == n - 1 and (
                n < 2 or bool(np.all(np.diff(idx) == 1))))
        self.missing = not self.everything and bool((idx < 0).any())
        self._arrow = None

    def take(self, col):
        if self.everything:
            return col
        if not self.missing and pa.types.is_string(col.type) and len(self.idx) >= 4096:
            # text gathered by memcpy: about twice as fast as Arrow's take for wide enrichment
            from ..._core.strings import take_strings
            return take_strings(_chunk(col), self.idx)
        if self._arrow is None:
            self._arrow = (pa.array(self.idx, mask=self.idx < 0, type=pa.int64()) if self.missing
                           else pa.array(self.idx, type=pa.int64()))
        return col.take(self._arrow)


class _KeyWords:
    """A join's key columns as group-table words (the engine's ``KeyCodec``: text as codes, so
    the index compares integers), and which rows have a key without NULL (only those can match).

    Text is coded by a dictionary of the join's own, not the job's: the codes only need to agree
    between the rows indexed and the rows probing them, and a dictionary the join can start
    afresh keeps its memory bounded by the rows it holds, however many distinct keys pass by."""

    def __init__(self, key_types: list):
        from ...batch import type_of_arrow
        from ..keys import KeyCodec
        self.arrow_types = key_types
        self.sql_types = [type_of_arrow(t) for t in key_types]
        self.codec = KeyCodec(self.sql_types)
        self.text = any(t.kind == "STRING" for t in self.sql_types)
        self.text_codes: dict = {}  # key column -> TextCodes of the indexed rows (of(text=...))
        self.fresh()

    def fresh(self) -> None:
        """Start an empty dictionary: words coded before are void."""
        from ...batch import StringDict
        self.strings = StringDict()

    def crowded(self, live_rows: int) -> bool:
        """The dictionary holds many more strings than the ``live_rows`` whose words are kept
        (the rest came from rows since gone): time to start afresh and code those again."""
        return self.text and len(self.strings) > 2 * live_rows + 65_536

    def of(self, t, names: list[str], text: Optional[str] = None
           ) -> tuple[list[np.ndarray], Optional[np.ndarray]]:
        """The key words of ``t``'s columns ``names``, and which rows have no NULL key. Text is
        coded by the dictionary (``text`` None), or, for an index rebuilt whenever its rows
        change, numbered afresh from these rows (``"index"``) and then looked up by the rows
        probing it (``"probe"``: a string the index lacks gets a code no row has; nothing is
        added, so the probing stream never grows anything)."""
        from ...batch import Column
        n = t.num_rows
        cols, usable = [], None
        for i, (name, at, st) in enumerate(zip(names, self.arrow_types, self.sql_types)):
            arr = _chunk(t.column(name))
            is_text = st.kind == "STRING" and (pa.types.is_string(arr.type) or
                                               pa.types.is_dictionary(arr.type))
            if not is_text and not arr.type.equals(at):
                arr = arr.cast(at)
            valid = None
            if arr.null_count:
                valid = arr.is_valid().to_numpy(zero_copy_only=False)
                usable = valid if usable is None else usable & valid
            if st.kind == "STRING" and text is not None:
                cols.append(Column(st, self._text_codes(i, arr, valid, text), valid))
            else:
                cols.append(Column(st, arrow=arr, strings=self.strings))
        return self.codec.encode(cols, n), usable

    def _text_codes(self, i: int, arr, valid, mode: str) -> np.ndarray:
        from ..._core.join_index import TextCodes
        from ..._core.strings import string_buffers
        if not pa.types.is_string(arr.type):
            arr = arr.cast(pa.string())  # a dictionary or large string: plain text
        offsets, data = string_buffers(arr)
        if mode == "index":
            self.text_codes[i] = TextCodes(offsets, data, valid)
            return self.text_codes[i].codes
        out = np.empty(len(arr), dtype=np.int32)
        self.text_codes[i].lookup(offsets, data, valid, out)
        return out


class IntervalJoin:
    """Two streams joined on equal keys where the right row's time lies in [left time + lo, left
    time + hi]. Each side keeps its rows until the join's watermark (the smaller of the two
    sides' largest times, less the lateness) passes the end of their interval; an outer side's
    rows that never matched are then emitted NULL-padded."""

    def __init__(self, kind: str, left_keys: list[str], right_keys: list[str], left_time: str,
                 right_time: str, lo: int, hi: int, lateness: int, out: _Output,
                 key_types: list, derived=(False, False)):
        self.kind = kind
        self.keys = (left_keys, right_keys)
        self.times = (left_time, right_time)
        self.lo, self.hi = lo, hi
        self.lateness = lateness
        self.out = out
        self.key_types = key_types
        self.schema = out.schema
        self.watermark = INT64_MIN
        self.clock = [INT64_MIN, INT64_MIN]
        # a side fed by a join: its rows are in event-time order only up to the join's own
        # watermark, so its clock is that watermark (its time column is the event time), not
        # the largest time seen
        self.derived = derived
        self.stored: list[Optional[pa.Table]] = [None, None]
        self.stored_t = [np.empty(0, np.int64), np.empty(0, np.int64)]
        self.matched = [np.empty(0, bool), np.empty(0, bool)]
        self._key_words = _KeyWords(key_types)
        self._index: list = [None, None]  # each side's stored rows as KeyRuns, when unchanged
        # each side's stored rows' key words and whether they can match (not snapshotted: text
        # codes belong to this join's dictionary; coded again from the rows after a restore)
        self._words: list = [None, None]

    def _keys_of(self, side: int, rows: pa.Table, t: np.ndarray):
        words, usable = self._key_words.of(rows, self.keys[side])
        return words, (t != INT64_MIN) if usable is None else usable & (t != INT64_MIN)

    def _runs(self, side: int):
        """The stored rows of ``side`` by key and time (built again after they changed)."""
        if self._index[side] is None:
            from ..._core.join_index import KeyRuns
            if self._words[side] is None:
                self._words[side] = self._keys_of(side, self.stored[side], self.stored_t[side])
            words, usable = self._words[side]
            self._index[side] = KeyRuns(words, self.stored_t[side], usable)
        return self._index[side]

    def push(self, port: int, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        if batch.num_rows == 0:
            return []
        new = pa.Table.from_batches([batch])
        t_new = times_of(new.column(self.times[port]))
        other = 1 - port
        out: list[pa.RecordBatch] = []
        matched_new = np.zeros(new.num_rows, dtype=bool)
        if self._key_words.crowded(sum(len(t) for t in self.stored_t)):
            self._key_words.fresh()
            self._words, self._index = [None, None], [None, None]
        words, usable = self._keys_of(port, new, t_new)
        if self.stored[other] is not None and self.stored[other].num_rows:
            # the new rows probe the other side's: right time - left time in [lo, hi]
            lo, hi = (self.lo, self.hi) if port == 0 else (-self.hi, -self.lo)
            mine, theirs = self._runs(other).in_range(words, t_new, usable, lo, hi)
            ia, ib = (mine, theirs) if port == 0 else (theirs, mine)
            a, b = (new, self.stored[other]) if port == 0 else (self.stored[other], new)
            ta, tb = (t_new, self.stored_t[other]) if port == 0 else (self.stored_t[other], t_new)
            times = np.maximum(ta[ia], tb[ib])
            out += self.out.rows(a, ia, b, ib, times)
            matched_new[mine] = True
            self.matched[other][theirs] = True
        # store the new rows (their matches so far remembered)
        kept = self._words[port]
        if self.stored[port] is None or self.stored[port].num_rows == 0:
            self._words[port] = (words, usable)
        elif kept is not None:
            self._words[port] = ([np.concatenate([a, b]) for a, b in zip(kept[0], words)],
                                 np.concatenate([kept[1], usable]))
        if self.stored[port] is None:
            self.stored[port] = new
        else:
            self.stored[port] = pa.concat_tables([self.stored[port], new]).combine_chunks()
        self.stored_t[port] = np.concatenate([self.stored_t[port], t_new])
        self.matched[port] = np.concatenate([self.matched[port], matched_new])
        self._index[port] = None
        if len(t_new) and not self.derived[port]:
            self.clock[port] = max(self.clock[port], int(t_new.max()))
        return out

    @staticmethod
    def align(instances: list["IntervalJoin"], port: int) -> None:
        """The instances of one join split over partitions (exec/partitioned.py) after rows of
        ``port``: each side's clock is the largest time any instance saw, as one join over all
        the rows keeps it, so rows expire at every partition count alike."""
        clock = max(op.clock[port] for op in instances)
        for op in instances:
            op.clock[port] = clock

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        if watermark != INT64_MIN:
            for side in (0, 1):
                if self.derived[side]:  # the inputs' watermark, already less the lateness
                    self.clock[side] = max(self.clock[side],
                                           min(watermark + self.lateness, INT64_MAX))
        if min(self.clock) == INT64_MIN:
            return []
        wm = min(self.clock) - self.lateness
        self.watermark = max(self.watermark, wm)
        # a left row can meet no future right row once its interval ended; a right row no
        # future left row once wm passed its time - lo
        return self._expire(0, self.stored_t[0] + self.hi < wm) + \
            self._expire(1, self.stored_t[1] - self.lo < wm)

    def close(self) -> list[pa.RecordBatch]:
        out = []
        for side in (0, 1):
            if self.stored[side] is not None:
                out += self._expire(side, np.ones(self.stored[side].num_rows, dtype=bool))
        return out

    def _expire(self, side: int, done: np.ndarray) -> list[pa.RecordBatch]:
        table = self.stored[side]
        if table is None or not done.any():
            return []
        out = []
        outer = self.kind == "FULL" or (self.kind == "LEFT" and side == 0) or (
            self.kind == "RIGHT" and side == 1)
        if outer:
            lonely = np.nonzero(done & ~self.matched[side])[0]
            if len(lonely):
                none = np.full(len(lonely), -1, dtype=np.int64)
                other = self.stored[1 - side]
                if other is None:  # the other side never had a row: its columns are all NULL
                    other = _empty_like(self.out, 1 - side)
                li, ri = (lonely, none) if side == 0 else (none, lonely)
                left, right = (table, other) if side == 0 else (other, table)
                out += self.out.rows(left, li, right, ri, self.stored_t[side][lonely])
        keep = ~done
        self._index[side] = None
        if self._words[side] is not None:
            words, usable = self._words[side]
            self._words[side] = ([w[keep] for w in words], usable[keep])
        self.stored[side] = table.filter(pa.array(keep))
        self.stored_t[side] = self.stored_t[side][keep]
        self.matched[side] = self.matched[side][keep]
        return out

    _STATE = ("clock", "stored", "stored_t", "matched", "watermark")

    @staticmethod
    def regroup(states: list, route, n: int, was_broadcast=None, broadcast=None) -> list:
        """The states of this join's instances at one partition count as ``n`` states
        (exec/partitioned.py): each side's stored rows go where ``route(side, rows)`` sends
        them, with their match marks; clocks and the watermark are the instances' latest."""
        out = [{"clock": [max(s["clock"][side] for s in states) for side in (0, 1)],
                "stored": [None, None], "stored_t": [np.empty(0, np.int64)] * 2,
                "matched": [np.empty(0, bool)] * 2,
                "watermark": max(s["watermark"] for s in states)} for _ in range(n)]
        for side in (0, 1):
            held = [s for s in states if s["stored"][side] is not None]
            if not held:
                continue
            rows = pa.concat_tables([s["stored"][side] for s in held]).combine_chunks()
            t = np.concatenate([s["stored_t"][side] for s in held])
            matched = np.concatenate([s["matched"][side] for s in held])
            part = route(side, rows)
            for j, st in enumerate(out):
                mine = part == j
                st["stored"][side] = rows.filter(pa.array(mine))
                st["stored_t"][side], st["matched"][side] = t[mine], matched[mine]
        return out

    def snapshot(self):
        return {k: getattr(self, k) for k in self._STATE}

    def restore(self, state) -> None:
        for k in self._STATE:
            setattr(self, k, state[k])
        self._index, self._words = [None, None], [None, None]

    def describe(self) -> str:
        return (f"IntervalJoin {self.kind}: keys {', '.join(self.keys[0])} = "
                f"{', '.join(self.keys[1])}, {self.times[1]} - {self.times[0]} in "
                f"[{self.lo}, {self.hi}] ms; rows kept until the watermark passes their interval")


def _empty_like(out: _Output, side: int) -> pa.Table:
    names = out.left_names if side == 0 else out.right_names
    every = list(out.schema)  # (a pa.Schema takes no slice)
    fields = every[:len(out.left_names)] if side == 0 else \
        every[len(out.left_names):len(out.left_names) + len(out.right_names)]
    return pa.schema([pa.field(n, f.type) for n, f in zip(names, fields)]).empty_table()


class TemporalJoin:
    """A stream (port 0) joined with the version of a table (port 1) current at each stream
    row's time: the table's latest row of that key whose time is at or before it (DuckDB's ASOF
    JOIN ... AND t.ts >= i.ts). A stream row waits until the table's watermark reaches its time
    (a table without event time is always current); versions older than the stream's watermark,
    except the current one per key, are dropped."""

    def __init__(self, kind: str, stream_keys: list[str], table_keys: list[str],
                 stream_time: Optional[str], table_time: Optional[str], out: _Output,
                 key_types: list, idle_ms: Optional[int] = None):
        self.kind = kind  # INNER | LEFT
        self.keys = (stream_keys, table_keys)
        self.stream_time = stream_time
        self.table_time = table_time
        self.out = out
        self.key_types = key_types
        self.schema = out.schema
        self.watermark = INT64_MIN
        self.table_watermark = INT64_MIN if table_time is not None else INT64_MAX
        self.stream_watermark = INT64_MIN
        self.versions: Optional[pa.Table] = None
        self.version_t = np.empty(0, np.int64)
        # the latest time of any table row pushed, None before the first: INT64_MIN means the
        # table's rows have no event time, and then it is always current
        self.table_time_seen: Optional[int] = None
        self.held: list[pa.RecordBatch] = []
        self._key_words = _KeyWords(key_types)
        self._lookup = None  # the versions' KeyRuns, rebuilt when they change (see _as_of)
        # a table that sends nothing for idle_ms (processing time) stops holding rows back
        self.idle_ms = idle_ms
        self._table_seen = time.monotonic()
        self._pruned_at = INT64_MIN  # the stream watermark of the last _prune

    def push(self, port: int, batch: pa.RecordBatch) -> list[pa.RecordBatch]:
        if batch.num_rows == 0:
            return []
        if port == 1:
            self._table_seen = time.monotonic()
            t = (times_of(batch.column(self.table_time)) if self.table_time is not None
                 else np.full(batch.num_rows, INT64_MIN, dtype=np.int64))
            new = pa.Table.from_batches([batch])
            self.table_time_seen = max(int(t.max()), self.table_time_seen
                                       if self.table_time_seen is not None else INT64_MIN)
            self.versions = new if self.versions is None else \
                pa.concat_tables([self.versions, new]).combine_chunks()
            self.version_t = np.concatenate([self.version_t, t])
            self._lookup = None
            self._pruned_at = INT64_MIN
            return []
        self.held.append(batch)
        return self._release(self._table_progress())

    @staticmethod
    def align(instances: list["TemporalJoin"], port: int) -> None:
        """The instances of one join split over partitions (exec/partitioned.py): the table was
        seen when any instance saw it (``idle_ms``), as one join over all the rows sees it."""
        seen = max(op._table_seen for op in instances)
        times = [op.table_time_seen for op in instances if op.table_time_seen is not None]
        for op in instances:
            op._table_seen = seen
            op.table_time_seen = max(times) if times else None

    def _table_progress(self) -> int:
        """How far the stream may be joined: the table's watermark, or every time once the
        table has been idle for ``idle_ms``."""
        if self.idle_ms is not None and (time.monotonic() - self._table_seen) * 1000 >= self.idle_ms:
            return INT64_MAX
        if self.table_time_seen == INT64_MIN:
            return INT64_MAX  # versions without event time: the table is always current
        return self.table_watermark

    def on_watermarks(self, stream_wm: int, table_wm: int) -> list[pa.RecordBatch]:
        if self.table_time is not None:
            self.table_watermark = max(self.table_watermark, table_wm)
        self.stream_watermark = max(self.stream_watermark, stream_wm)
        progress = self._table_progress()
        self.watermark = max(self.watermark, min(stream_wm, progress))
        out = self._release(progress)
        self._prune()
        return out

    def on_watermark(self, watermark: int) -> list[pa.RecordBatch]:
        return self.on_watermarks(watermark, watermark)

    def close(self) -> list[pa.RecordBatch]:
        return self._release(INT64_MAX)

    def _stream_times(self, t: pa.Table) -> np.ndarray:
        if self.stream_time is None:
            return np.full(t.num_rows, INT64_MAX, dtype=np.int64)  # no time: the latest version
        return times_of(t.column(self.stream_time))

    def _release(self, upto: int) -> list[pa.RecordBatch]:
        if not self.held:
            return []
        rows = pa.Table.from_batches(self.held).combine_chunks()
        t = self._stream_times(rows)
        # a stream without event time does not wait: it meets the latest version there is
        ready = (t <= upto) if self.stream_time is not None else np.ones(len(t), dtype=bool)
        if not ready.all():
            rest = rows.filter(pa.array(~ready))
            self.held = rest.to_batches()
            rows, t = rows.filter(pa.array(ready)), t[ready]
        else:
            self.held = []
        if rows.num_rows == 0:
            return []
        version = self._as_of(rows, t)
        if self.versions is not None and "_DELETED" in self.versions.schema.names:
            # the current version is a deletion (a tombstone): the key has no row then
            gone = self.versions.column("_DELETED").fill_null(False).to_numpy(
                zero_copy_only=False)
            version = np.where((version >= 0) & gone[np.maximum(version, 0)], -1, version)
        found = version >= 0
        every = self.kind != "INNER" or bool(found.all())  # each stream row is in the output
        if every:
            rows_i = np.arange(rows.num_rows)
        else:
            rows_i = np.nonzero(found)[0]
            version = version[found]
        if self.stream_time is None:
            times = np.full(len(rows_i), INT64_MIN)
        else:
            times = t if every else t[rows_i]
        versions = self.versions if self.versions is not None else _empty_like(self.out, 1)
        return self.out.rows(rows, rows_i, versions, version, times, every_left=every)

    def _as_of(self, rows: pa.Table, t: np.ndarray) -> np.ndarray:
        """Per stream row, the index of the current table version of its key, or -1: a
        compiled binary search in the key's versions sorted by (time, arrival), so at one time
        the later arrival is current and a version with time ``<= t`` counts (``t >= i.ts``)."""
        n = rows.num_rows
        if self.versions is None or self.versions.num_rows == 0:
            return np.full(n, -1, dtype=np.int64)
        index = self._index()
        words, usable = self._key_words.of(rows, self.keys[0], text="probe")
        out = np.empty(n, dtype=np.int64)
        index.as_of(words, t, usable, out)
        return out

    def _index(self):
        """The versions' ``KeyRuns`` (and their key words), built when the versions changed;
        their text is numbered afresh each time, and the stream only looks it up."""
        if self._lookup is None:
            from ..._core.join_index import KeyRuns
            words, usable = self._key_words.of(self.versions, self.keys[1], text="index")
            self._version_words = (words, usable)
            self._lookup = KeyRuns(words, self.version_t, usable)
        return self._lookup

    def _prune(self) -> None:
        """Versions the stream can no longer ask for: older than the stream's watermark and not
        the current one of their key."""
        if (self.versions is None or self.stream_watermark == INT64_MIN or self.held
                or self.stream_watermark == self._pruned_at):
            return
        if self._pruned_at != INT64_MIN and not np.any(
                (self.version_t > self._pruned_at) & (self.version_t <= self.stream_watermark)):
            # no new version since the last prune, and none became old since: nothing to drop
            self._pruned_at = self.stream_watermark
            return
        self._pruned_at = self.stream_watermark
        m = self.versions.num_rows
        index = self._index()
        words, usable = self._version_words
        # the current version of a key at the watermark: the last old one in (time, arrival)
        # order; every other old version (and every old one with a NULL key) can go
        current = np.empty(m, dtype=np.int64)
        index.as_of(words, np.full(m, self.stream_watermark, dtype=np.int64), usable, current)
        drop = (self.version_t <= self.stream_watermark) & (current != np.arange(m))
        if drop.any():
            keep = ~drop
            self.versions = self.versions.filter(pa.array(keep))
            self.version_t = self.version_t[keep]
            self._lookup = None

    _STATE = ("versions", "version_t", "held", "table_watermark", "stream_watermark",
              "watermark", "table_time_seen")

    @staticmethod
    def regroup(states: list, route, n: int, was_broadcast=None, broadcast=None) -> list:
        """The states of this join's instances at one partition count as ``n`` states
        (exec/partitioned.py): the table's versions (one copy of a broadcast table) hashed on
        the table's keys, or all of them to every instance when the table is now broadcast;
        the waiting stream rows hashed on the stream's keys, or cut in slices."""
        times = [s["table_time_seen"] for s in states if s.get("table_time_seen") is not None]
        out = [{"versions": None, "version_t": np.empty(0, np.int64), "held": [],
                "table_watermark": max(s["table_watermark"] for s in states),
                "stream_watermark": max(s["stream_watermark"] for s in states),
                "watermark": max(s["watermark"] for s in states),
                "table_time_seen": max(times) if times else None} for _ in range(n)]
        owners = states[:1] if was_broadcast is not None else states
        tables = [s for s in owners if s["versions"] is not None]
        if tables:
            versions = pa.concat_tables([s["versions"] for s in tables]).combine_chunks()
            vt = np.concatenate([s["version_t"] for s in tables])
            part = (np.zeros(len(vt), np.int8) if broadcast is not None
                    else route(1, versions))
            for j, st in enumerate(out):
                mine = (part == 0) if broadcast is not None else (part == j)
                st["versions"], st["version_t"] = versions.filter(pa.array(mine)), vt[mine]
        held = [b for s in states for b in s["held"] if b.num_rows]
        if held:
            rows = pa.Table.from_batches(held).combine_chunks()
            if broadcast is not None:
                bounds = np.linspace(0, rows.num_rows, n + 1).astype(np.int64)
                part = np.repeat(np.arange(n, dtype=np.int8), np.diff(bounds))
            else:
                part = route(0, rows)
            for j, st in enumerate(out):
                st["held"] = rows.filter(pa.array(part == j)).to_batches()
        return out

    def snapshot(self):
        return {k: getattr(self, k) for k in self._STATE}

    def restore(self, state) -> None:
        for k in self._STATE:
            setattr(self, k, state[k])
        self._lookup = None
        self._pruned_at = INT64_MIN

    def describe(self) -> str:
        return (f"TemporalJoin {self.kind}: keys {', '.join(self.keys[0])} = "
                f"{', '.join(self.keys[1])}, the table version current at "
                f"{self.stream_time or 'the latest'}; stream rows wait for the table's watermark")


def _chunk(col):
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
