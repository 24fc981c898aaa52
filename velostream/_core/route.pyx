"""The V2 hash router: which partition each row's key belongs to.

Each row's key hashes to one of 65,536 *key groups*; a shared table assigns key groups to
partitions. The partition threads route a batch together, each one slice of it (``route``), so
routing runs in parallel with nothing done serially in the coordinator; then each partition picks
out its own rows (``select_rows``).

A key group is assigned when first seen, to the partition that has received the fewest rows so far.
A plain ``hash % N`` leaves few-key streams lopsided (10 symbols over 2 partitions split 3/7 as
often as 5/5); assignment on first sight balances them. Two threads that meet a new key group at
once race with a compare-and-swap: one assignment wins and both use it. A key group never moves,
so each key's state lives in exactly one partition. The row counts behind the choice are a
heuristic and need not be exact.

Keys are hashed from their values, never from dictionary codes: each partition interns strings into
its own dictionary, so only the bytes mean the same thing everywhere. A key column is given as

- ``("s", offsets, data, valid)``: an Arrow string array's int32 offsets (already shifted by the
  array's offset, ``len(offsets) == n + 1``) and its data bytes;
- ``("w", words, valid)``: int64 words (integers, timestamps, float bits with -0.0 and NaN
  normalised by the caller);

``valid`` is a uint8 array (1 = not NULL) or None. NULL keys hash to a fixed value.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cnp.import_array()

DEF NULL_WORD = 0x6E756C6C6E756C6C  # 'nullnull': any fixed value


cdef struct KeyCol:
    int kind                  # 0: string, 1: int64 words
    const int32_t* offsets
    const uint8_t* data
    const int64_t* words
    const uint8_t* valid      # NULL: no NULLs


cdef inline uint64_t _load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)
    return w


cdef inline uint64_t _load32(const uint8_t* p) noexcept nogil:
    cdef uint32_t w
    memcpy(&w, p, 4)
    return w


cdef inline uint64_t _string_word(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """A 64-bit digest of a string's bytes: the overlapping head loads of the interner for up to
    16 bytes, then 8 bytes at a time. Multiplies by odd constants keep every bit in play; the
    final mix in ``_row_hash`` spreads them."""
    cdef uint64_t w0, w1
    cdef Py_ssize_t i
    if n >= 8:
        w0 = _load64(p)
        w1 = _load64(p + n - 8)
        i = 8
        while i + 8 < n:  # the middle of strings longer than 16 bytes
            w0 = (w0 ^ _load64(p + i)) * 0x9fb21c651e98df25ULL
            i += 8
    elif n >= 4:
        w0 = _load32(p) | (_load32(p + n - 4) << 32)
        w1 = 0
    elif n > 0:
        w0 = p[0] | (<uint64_t>p[n >> 1] << 8) | (<uint64_t>p[n - 1] << 16)
        w1 = 0
    else:
        w0 = 0
        w1 = 0
    return (w0 * 0x9e3779b97f4a7c15ULL) ^ (w1 * 0xc2b2ae3d27d4eb4fULL) ^ <uint64_t>n


cdef inline uint64_t _key_word(const KeyCol* key, Py_ssize_t r) noexcept nogil:
    if key.valid != NULL and not key.valid[r]:
        return NULL_WORD
    if key.kind == 0:
        return _string_word(key.data + key.offsets[r], key.offsets[r + 1] - key.offsets[r])
    return <uint64_t>key.words[r]


cdef inline uint64_t _row_hash(const KeyCol* keys, int n_keys, Py_ssize_t r) noexcept nogil:
    # Multiply-xorshift rounds: the top bits (the key group) depend on every bit of every word.
    cdef uint64_t h = _key_word(&keys[0], r) * 0x9e3779b97f4a7c15ULL
    cdef int k
    for k in range(1, n_keys):
        h = (h ^ (h >> 29) ^ _key_word(&keys[k], r)) * 0xc2b2ae3d27d4eb4fULL
    return (h ^ (h >> 32)) * 0xff51afd7ed558ccdULL


cdef Py_ssize_t _prepare(list keys, Py_ssize_t n, KeyCol* out) except -1:
    """Check each key column's shape and take its pointers (the arrays stay referenced by
    ``keys`` for the duration of the call)."""
    cdef int k
    cdef cnp.ndarray offsets, data, words, valid
    for k in range(len(keys)):
        spec = keys[k]
        kind = spec[0]
        out[k].valid = NULL
        out[k].offsets = NULL
        out[k].data = NULL
        out[k].words = NULL
        if kind == "s":
            offsets, data, v = spec[1], spec[2], spec[3]
            if offsets.dtype != np.int32 or not offsets.flags.c_contiguous or offsets.shape[0] != n + 1:
                raise ValueError("string key offsets must be contiguous int32 of length n + 1")
            if data.dtype != np.uint8 or not data.flags.c_contiguous:
                raise ValueError("string key data must be contiguous uint8")
            if n and (offsets[0] < 0 or offsets[n] > data.shape[0] or offsets[n] < offsets[0]):
                raise ValueError("string key offsets do not fit the data buffer")
            out[k].kind = 0
            out[k].offsets = <const int32_t*>offsets.data
            out[k].data = <const uint8_t*>data.data
        elif kind == "w":
            words, v = spec[1], spec[2]
            if words.dtype != np.int64 or not words.flags.c_contiguous or words.shape[0] != n:
                raise ValueError("key words must be contiguous int64 of length n")
            out[k].kind = 1
            out[k].words = <const int64_t*>words.data
        else:
            raise ValueError(f"unknown key kind {kind!r}")
        if v is not None:
            valid = v
            if valid.dtype != np.uint8 or not valid.flags.c_contiguous or valid.shape[0] != n:
                raise ValueError("key validity must be contiguous uint8 of length n")
            out[k].valid = <const uint8_t*>valid.data
    return 0



DEF GROUP_BITS = 16
DEF N_GROUPS = 1 << GROUP_BITS


cdef extern from *:
    """
    static inline int8_t vs_load_i8(const int8_t* p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED);
    }
    static inline int8_t vs_cas_i8(int8_t* p, int8_t expected, int8_t desired) {
        return __sync_val_compare_and_swap(p, expected, desired);
    }
    static inline void vs_add_i64(int64_t* p, int64_t v) {
        __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    }
    """
    int8_t vs_load_i8(const int8_t* p) nogil
    int8_t vs_cas_i8(int8_t* p, int8_t expected, int8_t desired) nogil
    void vs_add_i64(int64_t* p, int64_t v) nogil


DEF MAX_PARTS = 127


cdef inline void _tally(const int8_t* part, Py_ssize_t lo, Py_ssize_t hi, int64_t* counts,
                        int n_parts) noexcept nogil:
    # Rows per partition, counted after the fact: an increment per row in the routing loop
    # (counts[part]++) chains every row through one memory location and costs more than the hash.
    cdef Py_ssize_t r, c
    cdef int p
    for p in range(n_parts):
        c = 0
        for r in range(lo, hi):
            c += part[r] == p
        counts[p] += c


cdef class KeyRouter:
    """The key-group assignment of one job, shared by its partition threads (see the module
    docstring). ``route`` may run in several threads at once on different rows."""
    cdef int n_parts
    cdef int8_t[::1] assign      # key group -> partition, -1 until first seen
    cdef int64_t[::1] load       # rows routed to each partition so far (approximate)

    def __init__(self, int n_parts):
        if not 1 <= n_parts <= MAX_PARTS:
            raise ValueError(f"n_parts must be in 1..{MAX_PARTS}, got {n_parts}")
        self.n_parts = n_parts
        self.assign = np.full(N_GROUPS, -1, dtype=np.int8)
        self.load = np.zeros(n_parts, dtype=np.int64)

    @property
    def n_partitions(self):
        return self.n_parts

    def route(self, list keys, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi, int8_t[::1] out):
        """Write the partition of rows ``lo..hi-1`` (of ``n``) into ``out[lo:hi]``.

        >>> import numpy as np
        >>> out = np.empty(8, dtype=np.int8)
        >>> KeyRouter(2).route([("w", np.arange(8, dtype=np.int64), None)], 8, 0, 8, out)
        >>> sorted(set(out.tolist()))
        [0, 1]
        """
        if out.shape[0] != n or not 0 <= lo <= hi <= n:
            raise ValueError(f"rows {lo}..{hi} of {n} into {out.shape[0]}")
        cdef int n_keys = len(keys)
        if n_keys == 0:
            raise ValueError("no key columns to route on")
        cdef KeyCol* cols = <KeyCol*>malloc(n_keys * sizeof(KeyCol))
        if cols == NULL:
            raise MemoryError()
        cdef int64_t counts[MAX_PARTS]
        cdef int8_t* assign = &self.assign[0]
        cdef int64_t* load = &self.load[0]
        cdef Py_ssize_t r, g, tallied = lo
        cdef int8_t a
        cdef int p, best
        try:
            _prepare(keys, n, cols)
            with nogil:
                for p in range(self.n_parts):
                    counts[p] = 0
                for r in range(lo, hi):
                    g = <Py_ssize_t>(_row_hash(cols, n_keys, r) >> (64 - GROUP_BITS))
                    a = vs_load_i8(&assign[g])
                    if a < 0:  # first sight: to the partition with the fewest rows so far
                        _tally(&out[0], tallied, r, counts, self.n_parts)
                        tallied = r
                        best = 0
                        for p in range(1, self.n_parts):
                            if load[p] + counts[p] < load[best] + counts[best]:
                                best = p
                        a = vs_cas_i8(&assign[g], -1, <int8_t>best)
                        if a < 0:  # the swap happened: this thread's choice stands
                            a = <int8_t>best
                    out[r] = a
                _tally(&out[0], tallied, hi, counts, self.n_parts)
                for p in range(self.n_parts):
                    vs_add_i64(&load[p], counts[p])
        finally:
            free(cols)


def select_rows(const int8_t[::1] part, int p):
    """The rows (int64, ascending) whose partition is ``p``.

    >>> import numpy as np
    >>> select_rows(np.array([1, 0, 1, 1], dtype=np.int8), 1).tolist()
    [0, 2, 3]
    """
    cdef Py_ssize_t n = part.shape[0], r, m = 0
    out_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    cdef int8_t want = <int8_t>p
    if n:
        with nogil:
            for r in range(n):
                out[m] = r
                m += part[r] == want
    return out_arr[:m]
