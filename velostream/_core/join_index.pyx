"""The key index of a join (docs/SQL.md §9): one side's rows grouped by key, each key's rows in
time order, and the probes of the other side's rows against it.

Keys are the engine's group-key words (``exec.pipeline.KeyCodec``: text as codes of the job's
string dictionary, numbers as their 64-bit words), so a probe compares integers and never hashes a
string; the key -> run map is the engine's ``GroupTable``. A key's *run* is its rows sorted by
(time, arrival). Both the build and the probes run without the GIL; the caller assembles the
output rows from the returned row numbers with Arrow ``take``.

* ``KeyRuns.as_of``: per probe row, the last row of its key whose time is at or before the probe
  row's (the temporal join's current version), or -1.
* ``KeyRuns.in_range``: every (probe row, indexed row) pair of equal keys whose time difference
  lies in [lo, hi] (the interval join's matches), by a binary search in the key's run.
* ``TextCodes``: the indexed side's strings numbered densely, and the probing side's strings
  looked up without being added (a temporal join's stream then never grows it).
"""

cimport numpy as cnp
from libc.stdint cimport INT64_MAX, INT64_MIN, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from velostream._core.group_table cimport GroupTable

import numpy as np

cnp.import_array()


cdef extern from *:
    """
    struct VsTimedRow {
        long long time;
        long long row;
        bool operator<(const VsTimedRow& o) const { return time < o.time; }
    };
    """
    ctypedef struct VsTimedRow:
        long long time
        long long row


cdef extern from "<algorithm>" namespace "std" nogil:
    # declared noexcept: libstdc++'s stable_sort falls back to an in-place merge when it cannot
    # get its buffer, so it never throws (libcpp.algorithm's declaration would need the GIL
    # around it to turn a C++ exception into a Python one)
    void stable_sort(VsTimedRow* first, VsTimedRow* last) noexcept


# Largest one-word key addressed directly (a 16 MB slot array at most); larger keys are hashed.
DEF DENSE_LIMIT = 1 << 22


cdef inline int64_t _add_sat(int64_t t, int64_t d) noexcept nogil:
    """``t + d`` clamped to the int64 range (a bound near the ends of time never wraps)."""
    if d > 0 and t > INT64_MAX - d:
        return INT64_MAX
    if d < 0 and t < INT64_MIN - d:
        return INT64_MIN
    return t + d


cdef list _words(object words, Py_ssize_t n_words, Py_ssize_t n):
    """The key word arrays, checked: ``n_words`` C-contiguous int64 arrays of length n."""
    cdef list out = [np.ascontiguousarray(w, dtype=np.int64) for w in words]
    if len(out) != n_words:
        raise ValueError(f"expected {n_words} key word arrays, got {len(out)}")
    for w in out:
        if w.ndim != 1 or w.shape[0] != n:
            raise ValueError(f"key words have shape {w.shape}, expected ({n},)")
    return out


cdef const uint8_t[::1] _mask(object m, Py_ssize_t n):
    if m is None:
        return np.ones(n, dtype=np.uint8)
    a = np.ascontiguousarray(m).view(np.uint8) if np.asarray(m).dtype == np.bool_ else \
        np.ascontiguousarray(m, dtype=np.uint8)
    if a.shape[0] != n:
        raise ValueError(f"mask has length {a.shape[0]}, expected {n}")
    return a


cdef class KeyRuns:
    """Rows of one side by key, each key's rows in (time, arrival) order.

    ``words``: the rows' key words (``n_words`` int64 arrays); ``times``: their int64 times;
    ``usable``: rows that take part (bool or uint8; a row with a NULL key never matches), None for
    all. Row numbers are positions in the given arrays.

    >>> import numpy as np
    >>> k = np.array([7, 8, 7, 7], dtype=np.int64)
    >>> runs = KeyRuns([k], np.array([30, 5, 10, 20], dtype=np.int64))
    >>> out = np.empty(3, dtype=np.int64)
    >>> runs.as_of([np.array([7, 7, 9], dtype=np.int64)], np.array([25, 5, 99]), None, out)
    >>> out.tolist()
    [3, -1, -1]
    """

    cdef GroupTable table
    cdef readonly Py_ssize_t n_rows
    cdef int n_words
    cdef int64_t[::1] run_start   # per key slot: first position of its run in ``sorted``
    cdef int64_t[::1] run_len     # per key slot: rows in its run
    cdef int64_t[::1] sorted_time  # runs one after another, each in (time, arrival) order
    cdef int64_t[::1] sorted_row
    # one-word keys that are small non-negative integers (text codes of the job's dictionary,
    # which are dense from 0): slot by direct address, no hashing at all; else None
    cdef object dense

    def __init__(self, words, times, usable=None):
        cdef Py_ssize_t n = len(times), i, s, p, n_slots
        cdef const int64_t[::1] t = np.ascontiguousarray(times, dtype=np.int64)
        cdef const uint8_t[::1] ok = _mask(usable, n)
        self.n_words = len(words)
        if self.n_words < 1:
            raise ValueError("a join index needs at least one key word")
        cdef list cols = _words(words, self.n_words, n)
        self.n_rows = n
        # the group table finds or inserts every row's key: its slots number the runs
        self.table = GroupTable(self.n_words, max(n, 1))
        cdef int32_t[::1] slot = np.empty(n, dtype=np.int32)
        if n:
            self.table.find_or_insert(cols, slot)
        n_slots = self.table.slot_capacity
        cdef int64_t[::1] start = np.zeros(n_slots + 1, dtype=np.int64)
        cdef int64_t[::1] length = np.zeros(n_slots + 1, dtype=np.int64)
        cdef int64_t[::1] fill = np.zeros(n_slots + 1, dtype=np.int64)
        cdef int64_t[::1] st = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] sr = np.empty(n, dtype=np.int64)
        buf = np.empty(max(n, 1) * sizeof(VsTimedRow), dtype=np.uint8)
        cdef VsTimedRow* rows = <VsTimedRow*>cnp.PyArray_DATA(buf)
        with nogil:
            # a counting sort by slot keeps arrival order inside a run ...
            for i in range(n):
                if ok[i]:
                    length[slot[i]] += 1
            p = 0
            for s in range(n_slots):
                start[s] = p
                fill[s] = p
                p += length[s]
            for i in range(n):
                if ok[i]:
                    s = slot[i]
                    rows[fill[s]].time = t[i]
                    rows[fill[s]].row = i
                    fill[s] += 1
            # ... and a stable sort by time inside each run keeps it among rows of one time
            for s in range(n_slots):
                if length[s] > 1:
                    stable_sort(rows + start[s], rows + start[s] + length[s])
            for i in range(p):
                st[i] = rows[i].time
                sr[i] = rows[i].row
        self.run_start, self.run_len, self.sorted_time, self.sorted_row = start, length, st, sr
        self.dense = None
        cdef const int64_t[::1] k0
        cdef int64_t lo_key = 0, hi_key = -1
        cdef int32_t[::1] dense
        if self.n_words == 1 and n:
            k0 = cols[0]
            with nogil:  # the range of the keys that can match (a NULL text code is -1)
                for i in range(n):
                    if ok[i]:
                        if hi_key < lo_key:
                            lo_key, hi_key = k0[i], k0[i]
                        elif k0[i] < lo_key:
                            lo_key = k0[i]
                        elif k0[i] > hi_key:
                            hi_key = k0[i]
            if 0 <= lo_key <= hi_key < DENSE_LIMIT:
                self.dense = np.full(hi_key + 1, -1, dtype=np.int32)
                dense = self.dense
                with nogil:
                    for i in range(n):
                        if ok[i]:
                            dense[k0[i]] = slot[i]

    @property
    def n_keys(self) -> int:
        """Distinct keys (including those of unusable rows)."""
        return self.table.n_groups

    cdef int32_t[::1] _slots(self, object words, Py_ssize_t n):
        cdef int32_t[::1] slot = np.empty(n, dtype=np.int32)
        cdef const int32_t[::1] dense
        cdef const int64_t[::1] k0
        cdef Py_ssize_t i, size
        cdef int64_t v
        if not n:
            return slot
        cols = _words(words, self.n_words, n)
        if self.dense is None:
            self.table.lookup(cols, slot)
            return slot
        dense = self.dense
        size = dense.shape[0]
        k0 = cols[0]
        with nogil:
            for i in range(n):
                v = k0[i]
                slot[i] = dense[v] if 0 <= v < size else -1
        return slot

    def as_of(self, words, times, usable, int64_t[::1] out):
        """``out[i]``: the last indexed row of probe row i's key whose time is at or before
        ``times[i]`` (its current version), or -1 (no such row, or ``usable[i]`` is 0)."""
        cdef Py_ssize_t n = out.shape[0], i, lo, hi, mid, start
        cdef const int64_t[::1] t = np.ascontiguousarray(times, dtype=np.int64)
        cdef const uint8_t[::1] ok = _mask(usable, n)
        if t.shape[0] != n:
            raise ValueError(f"times have length {t.shape[0]}, expected {n}")
        cdef int32_t[::1] slot = self._slots(words, n)
        cdef int32_t s
        cdef int64_t ti
        cdef const int64_t[::1] run_start = self.run_start
        cdef const int64_t[::1] run_len = self.run_len
        cdef const int64_t[::1] st = self.sorted_time
        cdef const int64_t[::1] sr = self.sorted_row
        with nogil:
            for i in range(n):
                s = slot[i]
                out[i] = -1
                if s < 0 or not ok[i]:
                    continue
                start = run_start[s]
                lo = 0
                hi = run_len[s]
                ti = t[i]
                # the first position whose time is after ti; the one before it is current
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if st[start + mid] <= ti:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo > 0:
                    out[i] = sr[start + lo - 1]

    def in_range(self, words, times, usable, int64_t lo_ms, int64_t hi_ms):
        """Every pair (probe row i, indexed row r) of equal keys with ``times[i] + lo_ms <=
        time(r) <= times[i] + hi_ms``, as two int64 arrays (probe rows ascending)."""
        cdef Py_ssize_t n = len(times), i, a, b, lo, hi, mid, start, total = 0, k, j
        cdef const int64_t[::1] t = np.ascontiguousarray(times, dtype=np.int64)
        cdef const uint8_t[::1] ok = _mask(usable, n)
        cdef int32_t[::1] slot = self._slots(words, n)
        cdef int64_t[::1] first = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] count = np.zeros(n, dtype=np.int64)
        cdef int32_t s
        cdef int64_t want_lo, want_hi
        cdef const int64_t[::1] run_start = self.run_start
        cdef const int64_t[::1] run_len = self.run_len
        cdef const int64_t[::1] st = self.sorted_time
        cdef const int64_t[::1] sr = self.sorted_row
        with nogil:
            for i in range(n):
                s = slot[i]
                if s < 0 or not ok[i]:
                    continue
                start = run_start[s]
                want_lo = _add_sat(t[i], lo_ms)
                want_hi = _add_sat(t[i], hi_ms)
                lo = 0
                hi = run_len[s]
                while lo < hi:  # the first time >= want_lo
                    mid = (lo + hi) >> 1
                    if st[start + mid] < want_lo:
                        lo = mid + 1
                    else:
                        hi = mid
                a = lo
                hi = run_len[s]
                while lo < hi:  # the first time > want_hi
                    mid = (lo + hi) >> 1
                    if st[start + mid] <= want_hi:
                        lo = mid + 1
                    else:
                        hi = mid
                first[i] = start + a
                count[i] = lo - a
                total += lo - a
        probe = np.empty(total, dtype=np.int64)
        found = np.empty(total, dtype=np.int64)
        cdef int64_t[::1] pv = probe
        cdef int64_t[::1] fv = found
        with nogil:
            k = 0
            for i in range(n):
                for j in range(count[i]):
                    pv[k] = i
                    fv[k] = sr[first[i] + j]
                    k += 1
        return probe, found


# ---------------------------------------------------------------------------------------------
# Text keys: the indexed side's strings -> dense codes; the probing side only looks up
# ---------------------------------------------------------------------------------------------

cdef struct TextEntry:
    int32_t code              # -1: empty
    uint32_t hash_lo          # low bits of the string's hash: rejects almost every other string


cdef struct TextHead:
    uint64_t w0               # a string's first 16 bytes, zero-padded: strings of up to 16 bytes
    uint64_t w1               # compare by these and their length alone
    int64_t length


cdef inline void _head(const uint8_t* p, Py_ssize_t n, const uint8_t* end,
                       TextHead* out) noexcept nogil:
    """The first 16 bytes of the string at ``p`` (``n`` bytes; ``end``: the end of its buffer,
    past which nothing is read), zero-padded."""
    cdef uint64_t w
    out.length = n
    out.w0 = 0
    out.w1 = 0
    if n >= 16 or p + 16 <= end:
        memcpy(&out.w0, p, 8)  # whole words (fixed-size copies compile to plain loads) ...
        memcpy(&out.w1, p + 8, 8)
        if n < 16:  # ... with the bytes past the string cleared
            if n <= 8:
                out.w0 = out.w0 & ((<uint64_t>1 << (8 * n)) - 1) if n < 8 else out.w0
                out.w1 = 0
            else:
                out.w1 = out.w1 & ((<uint64_t>1 << (8 * (n - 8))) - 1)
    else:  # near the end of the buffer: byte by byte
        memcpy(&out.w0, p, n if n < 8 else 8)
        if n > 8:
            memcpy(&out.w1, p + 8, n - 8)


cdef inline uint64_t _hash_text(const uint8_t* p, const TextHead* head) noexcept nogil:
    """A string's hash from its head (and, past 16 bytes, the rest of its bytes): a
    multiply/xor-shift round per 8 bytes, then murmur3's fmix64."""
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ (<uint64_t>head.length * 0xC2B2AE3D27D4EB4FULL)
    cdef uint64_t w
    cdef Py_ssize_t i = 16, n = head.length
    h = (h ^ head.w0) * 0x9FB21C651E98DF25ULL
    h ^= h >> 29
    h = (h ^ head.w1) * 0x9FB21C651E98DF25ULL
    h ^= h >> 29
    while i < n:
        w = 0
        memcpy(&w, p + i, n - i if n - i < 8 else 8)
        h = (h ^ w) * 0x9FB21C651E98DF25ULL
        h ^= h >> 29
        i += 8
    h ^= h >> 33
    h *= 0xFF51AFD7ED558CCDULL
    h ^= h >> 33
    h *= 0xC4CEB9FE1A85EC53ULL
    h ^= h >> 33
    return h


cdef class TextCodes:
    """The distinct strings of one Arrow string array (given as its offsets and data buffers,
    ``valid`` per row or None) numbered densely from 0 in order of first appearance; ``codes``
    holds each row's (-1: NULL). ``lookup`` codes another array's strings without adding any:
    a string the indexed side never had gets -1, so probing rows never grow the table.

    >>> import numpy as np
    >>> data = np.frombuffer(b"abcab", dtype=np.uint8)  # "a", "bc", "a", "b"
    >>> t = TextCodes(np.array([0, 1, 3, 4, 5], dtype=np.int32), data, None)
    >>> t.codes.tolist(), t.n_codes
    ([0, 1, 0, 2], 3)
    >>> out = np.empty(2, dtype=np.int32)
    >>> t.lookup(np.array([0, 2, 4], dtype=np.int32), np.frombuffer(b"bcx!", dtype=np.uint8),
    ...          None, out)
    >>> out.tolist()
    [1, -1]
    """

    cdef object _keep                 # the indexed strings' buffers, which these point into
    cdef const int32_t* offsets
    cdef const uint8_t* data
    cdef object _index                # TextEntry array, power-of-two length
    cdef object _heads                # per code: its TextHead, and the row of its first sight
    cdef TextHead* heads
    cdef object _first
    cdef int32_t* first_row
    cdef readonly object codes
    cdef readonly Py_ssize_t n_codes
    cdef Py_ssize_t mask

    def __init__(self, const int32_t[::1] offsets, const uint8_t[::1] data, valid):
        cdef Py_ssize_t n = offsets.shape[0] - 1, size = 16, i, pos
        cdef const uint8_t[::1] ok = _mask(valid, n)
        while size < 2 * n:
            size *= 2
        # raw pointers for the loops (memoryview attributes cost a reference count per use)
        self._keep = (offsets, data)
        self.offsets, self.data, self.mask = &offsets[0], &data[0], size - 1
        self._index = np.empty(size * sizeof(TextEntry), dtype=np.uint8)
        cdef TextEntry* index = <TextEntry*>cnp.PyArray_DATA(self._index)
        self._heads = np.empty(max(n, 1) * sizeof(TextHead), dtype=np.uint8)
        self.heads = <TextHead*>cnp.PyArray_DATA(self._heads)
        self._first = np.empty(max(n, 1), dtype=np.int32)
        self.first_row = <int32_t*>cnp.PyArray_DATA(self._first)
        self.codes = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] codes = self.codes
        cdef int32_t count = 0, c
        cdef uint64_t h
        cdef const uint8_t* p
        cdef const uint8_t* end = &data[0] + data.shape[0]
        cdef TextHead head
        with nogil:
            for i in range(size):
                index[i].code = -1
            for i in range(n):
                if not ok[i]:
                    codes[i] = -1
                    continue
                p = self.data + offsets[i]
                _head(p, offsets[i + 1] - offsets[i], end, &head)
                h = _hash_text(p, &head)
                pos = h & self.mask
                while True:
                    c = index[pos].code
                    if c < 0:
                        index[pos].code = count
                        index[pos].hash_lo = <uint32_t>h
                        self.heads[count] = head
                        self.first_row[count] = <int32_t>i
                        codes[i] = count
                        count += 1
                        break
                    if index[pos].hash_lo == <uint32_t>h and self._same(c, p, &head):
                        codes[i] = c
                        break
                    pos = (pos + 1) & self.mask
        self.n_codes = count

    cdef inline bint _same(self, int32_t c, const uint8_t* p, const TextHead* head) noexcept nogil:
        cdef const TextHead* mine = self.heads + c
        if mine.length != head.length or mine.w0 != head.w0 or mine.w1 != head.w1:
            return False
        return head.length <= 16 or memcmp(self.data + self.offsets[self.first_row[c]] + 16,
                                           p + 16, head.length - 16) == 0

    def lookup(self, const int32_t[::1] offsets, const uint8_t[::1] data, valid,
               int32_t[::1] out):
        """``out[i]``: the code of string i of (offsets, data), -1 when NULL or never indexed."""
        cdef Py_ssize_t n = out.shape[0], i, pos
        if offsets.shape[0] < n + 1:
            raise ValueError(f"{offsets.shape[0]} offsets for {n} strings")
        if data.shape[0] < 1:
            raise ValueError("the string data buffer is empty (give at least one byte)")
        cdef const uint8_t[::1] ok = _mask(valid, n)
        cdef const TextEntry* index = <const TextEntry*>cnp.PyArray_DATA(self._index)
        cdef const int32_t* off = &offsets[0]
        cdef const uint8_t* base = &data[0]
        cdef const uint8_t* end = base + data.shape[0]
        cdef const uint8_t* p
        cdef Py_ssize_t mask = self.mask
        cdef uint64_t h
        cdef int32_t c
        cdef TextHead head
        with nogil:
            for i in range(n):
                out[i] = -1
                if not ok[i]:
                    continue
                p = base + off[i]
                _head(p, off[i + 1] - off[i], end, &head)
                h = _hash_text(p, &head)
                pos = h & mask
                while True:
                    c = index[pos].code
                    if c < 0:
                        break
                    if index[pos].hash_lo == <uint32_t>h and self._same(c, p, &head):
                        out[i] = c
                        break
                    pos = (pos + 1) & mask
