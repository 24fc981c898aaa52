"""String interning for the hot path: Arrow string buffers in, stable int32 codes out.

Strings never become Python objects on the hot path. Each row's bytes are hashed and looked up in
an open-addressing table of the distinct strings seen so far; unseen strings are appended. Codes
are dense, start at 0 and never change for the life of the job, so they serve as group keys and
window state across batches and partition threads. Storage lives in numpy arrays that are only ever
appended to (a full one is replaced by a larger copy), so Arrow views of a prefix stay valid: that
is how codes decode back to strings without copying.
"""
import numpy as np
cimport numpy as cnp
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy

cnp.import_array()

# Kernels release the GIL from this many rows on. Below it the loop takes a few microseconds, and
# giving the GIL up and taking it back is an invitation for another thread to take it in between:
# the V2 partitions would swap it back and forth several times per small step.
DEF RELEASE_ROWS = 8192

DEF EMPTY = -1
# Front cache geometry: sets of two entries, indexed by the top CACHE_BITS bits of a
# multiply-shift hash. Key columns are mostly low-cardinality (traders, symbols, countries): their
# few distinct strings stay in the cache and skip the full hash and the table probe.
DEF CACHE_BITS = 11
DEF CACHE_SETS = 1 << CACHE_BITS


cdef inline Py_ssize_t _cache_set(uint64_t w0, uint64_t w1, Py_ssize_t n) noexcept nogil:
    # Two multiplies and a shift, several times cheaper than hash_string: the top bits of each
    # product depend on every bit of its word, and a collision only costs a miss.
    return <Py_ssize_t>((w0 * 0x9e3779b97f4a7c15ULL + (w1 ^ <uint64_t>n) * 0xc2b2ae3d27d4eb4fULL)
                        >> (64 - CACHE_BITS))


cdef inline uint64_t _mix(uint64_t h) noexcept nogil:
    # murmur3 fmix64: every input bit affects every output bit
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    h *= 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    return h


cdef inline uint64_t _load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)
    return w


cdef inline uint64_t _load32(const uint8_t* p) noexcept nogil:
    cdef uint32_t w
    memcpy(&w, p, 4)
    return w


cdef inline void head_words(const uint8_t* p, Py_ssize_t n, uint64_t* w0, uint64_t* w1) noexcept nogil:
    """Two words that, together with the length, identify a string of up to 16 bytes exactly
    (overlapping loads cover every byte without reading past the string). Longer strings get
    their first 16 bytes here and are compared in full on a match."""
    if n >= 16:
        w0[0] = _load64(p)
        w1[0] = _load64(p + 8)
    elif n >= 8:
        w0[0] = _load64(p)
        w1[0] = _load64(p + n - 8)
    elif n >= 4:
        w0[0] = _load32(p) | (_load32(p + n - 4) << 32)
        w1[0] = 0
    elif n > 0:
        w0[0] = p[0] | (<uint64_t>p[n >> 1] << 8) | (<uint64_t>p[n - 1] << 16)
        w1[0] = 0
    else:
        w0[0] = 0
        w1[0] = 0


cdef inline uint64_t hash_string(const uint8_t* p, Py_ssize_t n, uint64_t w0, uint64_t w1) noexcept nogil:
    # w0 goes through a full mix before w1 joins: a plain xor of the two products is linear, and
    # structured keys (TRADER0..TRADER499, where w0 == w1 at 8 bytes) collided.
    cdef uint64_t h = _mix(w0 ^ (<uint64_t>n * 0x9e3779b97f4a7c15ULL)) ^ (w1 * 0xc2b2ae3d27d4eb4fULL)
    cdef Py_ssize_t i = 16
    while i + 8 <= n:  # only strings longer than 16 bytes
        h = (h ^ _mix(_load64(p + i))) * 0x9fb21c651e98df25ULL
        i += 8
    if n > 16 and i < n:
        h = (h ^ _mix(_load64(p + n - 8))) * 0x9fb21c651e98df25ULL
    return _mix(h)


cdef inline uint64_t hash_bytes(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t w0, w1
    head_words(p, n, &w0, &w1)
    return hash_string(p, n, w0, w1)


# The interner's stores as raw pointers, for the nogil encoding loop (``_encode_rows``).
cdef struct _Stores:
    uint8_t* store
    int32_t* soff
    uint64_t* shash
    uint64_t* heads
    int32_t* idx
    Py_ssize_t mask
    Py_ssize_t limit
    Py_ssize_t count
    Py_ssize_t nbytes
    CacheEntry* cache


cdef Py_ssize_t _encode_rows(_Stores* st, const int32_t* offsets, const uint8_t* src,
                             const int64_t* rows, Py_ssize_t i, Py_ssize_t n,
                             int32_t* out) noexcept nogil:
    """Codes of strings i.. (``rows[i]``.. when ``rows`` is not NULL) into ``out[i]``..; returns
    the first one not done (n, or the one whose new string needs a larger index: grow it with
    the GIL and call again from there)."""
    cdef uint64_t w0, w1, h
    cdef Py_ssize_t pos, length, c, r
    cdef const uint8_t* p
    cdef int32_t hit
    cdef CacheEntry* cache = st.cache
    cdef CacheEntry* e = NULL
    cdef uint8_t* store = st.store
    cdef int32_t* soff = st.soff
    cdef uint64_t* shash = st.shash
    cdef uint64_t* heads = st.heads
    cdef int32_t* idx = st.idx
    cdef Py_ssize_t m = st.mask
    while i < n:
        r = rows[i] if rows != NULL else i
        p = src + offsets[r]
        length = offsets[r + 1] - offsets[r]
        head_words(p, length, &w0, &w1)
        if length <= 16:
            # Front cache: the set's two entries, most recent first. Codes never
            # change, so an entry is valid for the life of the interner.
            e = &cache[2 * _cache_set(w0, w1, length)]
            if e[0].w0 == w0 and e[0].w1 == w1 and e[0].length == length:
                out[i] = e[0].code
                i += 1
                continue
            if e[1].w0 == w0 and e[1].w1 == w1 and e[1].length == length:
                out[i] = e[1].code
                i += 1
                continue
        h = hash_string(p, length, w0, w1)
        pos = h & m
        while True:
            hit = idx[pos]
            if hit == EMPTY:
                break
            if (heads[2 * hit] == w0 and heads[2 * hit + 1] == w1
                    and soff[hit + 1] - soff[hit] == length
                    and (length <= 16 or memcmp(&store[soff[hit]], p, length) == 0)):
                break
            pos = (pos + 1) & m
        if hit == EMPTY:
            if st.count >= st.limit:
                break  # grow the index with the GIL, then resume at row i
            c = st.count
            soff[c + 1] = soff[c] + <int32_t>length
            if length:
                memcpy(&store[soff[c]], p, length)
            shash[c] = h
            heads[2 * c] = w0
            heads[2 * c + 1] = w1
            idx[pos] = <int32_t>c
            st.count += 1
            st.nbytes += length
            hit = <int32_t>c
        if length <= 16:
            # The older entry makes room, so two strings that share a set (or
            # alternate in it) both stay cached.
            e[1] = e[0]
            e[0].w0 = w0
            e[0].w1 = w1
            e[0].length = <int32_t>length
            e[0].code = hit
        out[i] = hit
        i += 1
    return i


cdef Py_ssize_t intern_strings(StringInterner si, const int32_t* offsets, const uint8_t* data,
                               Py_ssize_t n, int32_t* out, bint release_gil) except -1:
    """Codes for the strings ``data[offsets[i]:offsets[i+1]]``, i < n, into ``out``; returns how
    many new strings were added. The cdef entry behind ``encode_buffers``, for kernels that hold
    raw Arrow buffer pointers (``group_step``): the offsets must be valid for ``data`` (Arrow's
    guarantee); the caller takes the ``StringDict`` lock as ``encode_buffers`` callers do.
    ``release_gil``: run the loop without the GIL (worth it for large batches only)."""
    if n <= 0:
        return 0
    return _intern_rows(si, offsets, data, n, out, release_gil, NULL, offsets[n] - offsets[0])


cdef bint _rows_in_range(const int64_t* rows, Py_ssize_t n, Py_ssize_t limit) noexcept:
    # without the GIL for large batches: the V2 partitions check their rows here in parallel
    if n >= RELEASE_ROWS:
        with nogil:
            return _rows_ok(rows, n, limit)
    return _rows_ok(rows, n, limit)


cdef bint _rows_ok(const int64_t* rows, Py_ssize_t n, Py_ssize_t limit) noexcept nogil:
    cdef Py_ssize_t i
    cdef int64_t lo = rows[0], hi = rows[0]
    for i in range(1, n):
        lo = rows[i] if rows[i] < lo else lo
        hi = rows[i] if rows[i] > hi else hi
    return lo >= 0 and hi < limit


cdef Py_ssize_t _intern_rows(StringInterner si, const int32_t* offsets, const uint8_t* data,
                             Py_ssize_t n, int32_t* out, bint release_gil, const int64_t* rows,
                             Py_ssize_t span) except -1:
    """``intern_strings`` of strings ``rows[i]`` (i < n; every i when ``rows`` is NULL);
    ``span``: the bytes they may add at most (the store makes room for them up front)."""
    if n <= 0:
        return 0
    if offsets[0] < 0 or span < 0:
        raise ValueError("string offsets are not ascending")
    if si.nbytes + span > 2_000_000_000:
        raise OverflowError("string dictionary exceeds 2 GB")
    si._reserve(n, span)
    cdef _Stores st
    cdef Py_ssize_t before = si.count, i = 0
    st.store = <uint8_t*>cnp.PyArray_DATA(<cnp.ndarray>si._data)
    st.soff = <int32_t*>cnp.PyArray_DATA(<cnp.ndarray>si._offsets)
    st.shash = <uint64_t*>cnp.PyArray_DATA(<cnp.ndarray>si._hashes)
    st.heads = <uint64_t*>cnp.PyArray_DATA(<cnp.ndarray>si._heads)
    st.cache = si._cache
    while i < n:
        if 2 * (si.count + 1) > len(si._index):
            si._rehash(4 * (si.count + 1))
        st.idx = <int32_t*>cnp.PyArray_DATA(<cnp.ndarray>si._index)
        st.mask = si.mask
        st.limit = (si.mask + 1) // 2  # load factor at most 1/2
        st.count = si.count
        st.nbytes = si.nbytes
        if release_gil:
            with nogil:
                i = _encode_rows(&st, offsets, data, rows, i, n, out)
        else:
            i = _encode_rows(&st, offsets, data, rows, i, n, out)
        si.count = st.count
        si.nbytes = st.nbytes
    return si.count - before


cdef class StringInterner:
    """Distinct strings -> dense int32 codes.

    >>> import pyarrow as pa
    >>> si = StringInterner()
    >>> si.encode_arrow(pa.array(["b", "a", "b"]))
    array([0, 1, 0], dtype=int32)
    >>> si.values().to_pylist()
    ['b', 'a']
    """

    def __cinit__(self):
        self._data = np.empty(1 << 12, dtype=np.uint8)
        self._offsets = np.zeros(1 << 10, dtype=np.int32)
        self._hashes = np.empty(1 << 10, dtype=np.uint64)
        self._heads = np.empty(2 << 10, dtype=np.uint64)
        self._index = np.full(1 << 11, EMPTY, dtype=np.int32)
        self.count = 0
        self.nbytes = 0
        self.mask = (1 << 11) - 1
        self._cache = <CacheEntry*>malloc(2 * CACHE_SETS * sizeof(CacheEntry))
        if self._cache == NULL:
            raise MemoryError()
        cdef Py_ssize_t k
        for k in range(2 * CACHE_SETS):
            self._cache[k].length = -1

    def __dealloc__(self):
        free(self._cache)

    def __len__(self):
        return self.count

    cdef void _reserve(self, Py_ssize_t more_strings, Py_ssize_t more_bytes):
        """Room for ``more_strings`` new strings of ``more_bytes`` bytes in the stores. The index is
        sized by the strings actually present (small and cache-resident); the nogil loop stops
        when it fills up and ``encode_buffers`` grows it and resumes."""
        cdef Py_ssize_t need_s = self.count + more_strings
        cdef Py_ssize_t need_b = self.nbytes + more_bytes
        if need_b > len(self._data):
            new = np.empty(max(need_b, 2 * len(self._data)), dtype=np.uint8)
            new[:self.nbytes] = self._data[:self.nbytes]
            self._data = new
        if need_s + 1 > len(self._offsets):
            size = max(need_s + 1, 2 * len(self._offsets))
            new_o = np.zeros(size, dtype=np.int32)
            new_o[:self.count + 1] = self._offsets[:self.count + 1]
            self._offsets = new_o
            new_h = np.empty(size, dtype=np.uint64)
            new_h[:self.count] = self._hashes[:self.count]
            self._hashes = new_h
            new_w = np.empty(2 * size, dtype=np.uint64)
            new_w[:2 * self.count] = self._heads[:2 * self.count]
            self._heads = new_w

    def _rehash(self, Py_ssize_t at_least):
        cdef Py_ssize_t size = len(self._index)
        while size < at_least:
            size *= 2
        index = np.full(size, EMPTY, dtype=np.int32)
        cdef int32_t[::1] idx = index
        cdef const uint64_t[::1] hashes = self._hashes
        cdef Py_ssize_t m = size - 1, c, pos
        with nogil:
            for c in range(self.count):
                pos = hashes[c] & m
                while idx[pos] != EMPTY:
                    pos = (pos + 1) & m
                idx[pos] = <int32_t>c
        self._index = index
        self.mask = m

    def encode_buffers(self, const int32_t[::1] offsets, const uint8_t[::1] data, int32_t[::1] out,
                       rows=None):
        """Codes for the strings ``data[offsets[i]:offsets[i+1]]`` (i < len(out)); returns how many
        new strings were added. ``offsets`` has len(out) + 1 entries.

        With ``rows`` (int64), ``out[i]`` is the code of string ``rows[i]`` instead, and
        ``offsets`` describes every string of the array: some rows of a batch are interned
        without being copied out first."""
        cdef Py_ssize_t n = out.shape[0]
        cdef Py_ssize_t n_strings = offsets.shape[0] - 1
        cdef const int64_t[::1] sel
        cdef const int64_t* rp = NULL
        if rows is None:
            if n_strings != n:
                raise ValueError("offsets must have one more entry than out")
        else:
            sel = rows
            if sel.shape[0] != n:
                raise ValueError("rows must have one entry per output code")
            if n:
                rp = &sel[0]
                if not _rows_in_range(rp, n, n_strings):
                    raise IndexError("row index out of range")
        if n == 0:
            return 0
        cdef Py_ssize_t span = offsets[n_strings] - offsets[0]
        if offsets[0] < 0 or span < 0 or offsets[n_strings] > data.shape[0]:
            raise ValueError("offsets do not fit the data buffer")
        return _intern_rows(self, &offsets[0], &data[0] if data.shape[0] else NULL, n, &out[0],
                            n >= RELEASE_ROWS, rp, span)

    def lookup_bytes(self, bytes s):
        """The code of ``s`` or -1 (no insertion)."""
        cdef const uint8_t* p = <const uint8_t*> s
        cdef Py_ssize_t length = len(s)
        cdef uint64_t h = hash_bytes(p, length)
        cdef Py_ssize_t pos = h & self.mask
        cdef int32_t[::1] idx = self._index
        cdef const int32_t[::1] soff = self._offsets
        cdef const uint64_t[::1] shash = self._hashes
        cdef const uint8_t[::1] store = self._data
        cdef int32_t hit
        while True:
            hit = idx[pos]
            if hit == EMPTY:
                return -1
            if shash[hit] == h and soff[hit + 1] - soff[hit] == length and (
                    length == 0 or memcmp(&store[soff[hit]], p, length) == 0):
                return hit
            pos = (pos + 1) & self.mask

    def encode_arrow(self, arr, rows=None):
        """Codes (int32) for a pyarrow string array (nulls get the code of ''; callers keep the
        validity apart); with ``rows`` (int64), for those rows of it only."""
        n = len(arr)
        out = np.empty(n if rows is None else len(rows), dtype=np.int32)
        if n == 0 or len(out) == 0:
            return out
        offsets, data = string_buffers(arr)
        self.encode_buffers(offsets, data, out, rows)
        return out

    def values(self):
        """Every distinct string, in code order, as a pyarrow string array (zero-copy view)."""
        import pyarrow as pa
        n = self.count
        offsets = self._offsets[:n + 1]
        data = self._data[:max(self.nbytes, 1)]
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])

    def decode(self, const int32_t[::1] codes, valid=None):
        """A pyarrow string array holding the strings of ``codes`` (NULL where ``valid`` is False)."""
        index = np.asarray(codes, dtype=np.int64)
        validity = None if valid is None else np.asarray(valid, dtype=bool)
        return _gather(self._offsets[:self.count + 1], self._data, index,
                       validity, "string code out of range")

def string_buffers(arr):
    """A pyarrow string array's (offsets int32[len + 1], data uint8) as numpy views, at the
    array's offset (other string types are cast first); ``data`` has at least one byte."""
    import pyarrow as pa
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=arr.offset + n + 1)[arr.offset:]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else None
    return offsets, data if data is not None and len(data) else np.zeros(1, np.uint8)


def take_strings(arr, index):
    """``arr.take(index)`` for a pyarrow string array, by memcpy (the V2 partitions use it to
    collect their rows)."""
    offsets, data = string_buffers(arr)
    index = np.ascontiguousarray(index, dtype=np.int64)
    validity = None
    if arr.null_count:
        validity = arr.is_valid().to_numpy(zero_copy_only=False)[index]
    return _gather(offsets, data, index, validity,
                   "row index out of range")


def _gather(const int32_t[::1] offs, const uint8_t[::1] data, const int64_t[::1] index, valid,
            str what):
    """Strings number ``index[i]`` of (offsets, data) as a new pyarrow string array: lengths and
    output offsets in one pass, the bytes in a second, both without the GIL for large gathers.
    ``valid``: bool per output row."""
    import pyarrow as pa
    cdef Py_ssize_t n = offs.shape[0] - 1, m = index.shape[0], total = 0
    out_off_arr = np.empty(m + 1, dtype=np.int32)
    cdef int32_t[::1] out_off = out_off_arr
    if m >= RELEASE_ROWS:
        with nogil:
            total = _gather_offsets(&offs[0], n, &index[0], m, &out_off[0])
    elif m:
        total = _gather_offsets(&offs[0], n, &index[0], m, &out_off[0])
    else:
        out_off[0] = 0
    if total < 0:
        raise IndexError(what)
    # 16 bytes of slack at the end, so short strings copy as two fixed 8-byte words (a memcpy
    # call per row costs more than the copy); the slack is never part of a string.
    out_data_arr = np.empty(total + 16, dtype=np.uint8)
    cdef uint8_t[::1] out_data = out_data_arr
    if m >= RELEASE_ROWS:
        with nogil:
            _gather_bytes(&offs[0], &data[0], data.shape[0], &index[0], m, &out_off[0], &out_data[0])
    elif m:
        _gather_bytes(&offs[0], &data[0], data.shape[0], &index[0], m, &out_off[0], &out_data[0])
    validity = None
    null_count = 0
    if valid is not None:
        null_count = int(m - np.count_nonzero(valid))
        if null_count:
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), m, [validity, pa.py_buffer(out_off_arr),
                                                  pa.py_buffer(out_data_arr[:max(total, 1)])],
                                 null_count=null_count)


cdef Py_ssize_t _gather_offsets(const int32_t* offs, Py_ssize_t n, const int64_t* index,
                                Py_ssize_t m, int32_t* out_off) noexcept nogil:
    """The output offsets of strings ``index[0..m)``; their total length, or -1 when an index is
    out of range."""
    cdef Py_ssize_t i, total = 0
    cdef int64_t r
    out_off[0] = 0
    for i in range(m):
        r = index[i]
        if r < 0 or r >= n:
            return -1
        total += offs[r + 1] - offs[r]
        out_off[i + 1] = <int32_t>total
    return total


cdef void _gather_bytes(const int32_t* offs, const uint8_t* src, Py_ssize_t n_data,
                        const int64_t* index, Py_ssize_t m, const int32_t* out_off,
                        uint8_t* dst) noexcept nogil:
    cdef Py_ssize_t i, length, start
    cdef int64_t r
    for i in range(m):
        r = index[i]
        start = offs[r]
        length = offs[r + 1] - start
        if length <= 16 and start + 16 <= n_data:
            memcpy(dst + out_off[i], src + start, 16)
        elif length > 0:
            memcpy(dst + out_off[i], src + start, length)
