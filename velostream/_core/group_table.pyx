"""Hash table from multi-word int64 group keys to dense int32 slots, and its row hash
(``hash_columns``). The V2 router has its own kernel (``route.pyx``).

Every ``def`` validates its arguments and gathers raw pointers with the GIL held, runs the whole
batch ``with nogil:``, and raises from a status code once the GIL is back. The table layout and
the hash function are documented in ``group_table.pxd``.
"""

cimport numpy as cnp
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

import numpy as np

cnp.import_array()


# Rows hashed per block before probing: the block's hashes stay in L1 between the hashing loop
# (multiply-bound, independent per row, so it pipelines well) and the branchy probe loop.
# Software prefetching of later rows' index entries was measured: ~10% faster once the index
# outgrows L2 (>100k groups), 5-10% slower below that, where the engine mostly lives; left out.
cdef enum:
    CHUNK = 512
    # Smallest index, so tiny tables do not regrow on every other insert.
    MIN_INDEX = 16
    # Widest key accepted; far above any real GROUP BY, low enough that no size in bytes of a
    # buffer (up to 2**31 slots * MAX_WORDS * 8) can overflow.
    MAX_WORDS = 1 << 16


# ---------------------------------------------------------------------------------------------
# Argument gathering (GIL held)
# ---------------------------------------------------------------------------------------------

cdef tuple _as_columns(object columns, Py_ssize_t expected):
    """The key columns as a tuple, so that the arrays stay referenced while the GIL is released
    even if the caller's list is mutated by another thread."""
    cdef tuple cols = tuple(columns)
    if expected >= 0 and len(cols) != expected:
        raise ValueError(f"expected {expected} key columns, got {len(cols)}")
    if len(cols) == 0:
        raise ValueError("at least one key column is required")
    return cols


cdef Py_ssize_t _gather(tuple cols, const int64_t** ptrs) except -1:
    """Store each column's data pointer in ``ptrs`` and return the common length."""
    cdef Py_ssize_t k, n = -1
    cdef cnp.ndarray a
    for k in range(len(cols)):
        obj = cols[k]
        if not isinstance(obj, cnp.ndarray):
            raise TypeError(f"key column {k} is {type(obj).__name__}, expected numpy.ndarray")
        a = <cnp.ndarray>obj
        # Any signed 8-byte integer type (int64 is 'l' or 'q' depending on the platform).
        if not (cnp.PyArray_ISSIGNED(a) and cnp.PyArray_ITEMSIZE(a) == 8):
            raise TypeError(f"key column {k} has dtype {a.dtype}, expected int64")
        if cnp.PyArray_NDIM(a) != 1:
            raise ValueError(f"key column {k} has {cnp.PyArray_NDIM(a)} dimensions, expected 1")
        # Also rejects misaligned and byte-swapped arrays, which the loops would misread.
        if not cnp.PyArray_ISCARRAY_RO(a):
            raise ValueError(f"key column {k} must be C-contiguous, aligned, native byte order")
        if n < 0:
            n = cnp.PyArray_DIM(a, 0)
        elif cnp.PyArray_DIM(a, 0) != n:
            raise ValueError(
                f"key column {k} has length {cnp.PyArray_DIM(a, 0)}, column 0 has {n}")
        ptrs[k] = <const int64_t*>cnp.PyArray_DATA(a)
    return n


cdef inline int _check_out_len(Py_ssize_t got, Py_ssize_t n) except -1:
    if got != n:
        raise ValueError(f"output has length {got}, key columns have length {n}")
    return 0


cdef int _enter(GroupTable t) except -1:
    """Claim the table for a call that releases the GIL (cleared by the caller's finally)."""
    if t.busy:
        raise RuntimeError("GroupTable is in use by another thread")
    t.busy = True
    return 0


cdef int _raise_status(int status, Py_ssize_t bad_pos, const int32_t* bad_vals) except -1:
    if status == GT_NO_MEMORY:
        raise MemoryError("GroupTable could not grow")
    if status == GT_TOO_MANY_GROUPS:
        raise OverflowError("GroupTable cannot hold more than 2**31 - 1 groups")
    if status == GT_BAD_SLOT:
        raise ValueError(f"slot {bad_vals[bad_pos]} (position {bad_pos}) is not a live group")
    return 0


# ---------------------------------------------------------------------------------------------
# Hashing kernels (nogil)
# ---------------------------------------------------------------------------------------------

# Key widths as types, so that Cython emits one copy of each hot kernel per common width: with
# n_words a compile-time constant the C compiler unrolls the per-word hashing and comparison
# loops and keeps the column pointers in registers. _WN is the generic copy (runtime n_words).
# The structs are never instantiated; kernels take a NULL pointer of one of them.
ctypedef struct _W1:
    char unused
ctypedef struct _W2:
    char unused
ctypedef struct _W3:
    char unused
ctypedef struct _WN:
    char unused
ctypedef fused _Width:
    _W1
    _W2
    _W3
    _WN


cdef inline int _nw(_Width* width, int n_words) noexcept nogil:
    if _Width is _W1:
        return 1
    elif _Width is _W2:
        return 2
    elif _Width is _W3:
        return 3
    else:
        return n_words


cdef inline void _hash_block(_Width* width, const int64_t** cols, int n_cols, Py_ssize_t start,
                             Py_ssize_t m, uint64_t* h) noexcept nogil:
    """h[i] = hash of row start + i. Rows are independent, so the CPU overlaps their multiplies;
    the fixed widths hash row by row from registers, the generic one column by column."""
    cdef Py_ssize_t i
    cdef int w
    cdef uint64_t seed = hash_start()
    cdef const int64_t* c0 = cols[0] + start
    cdef const int64_t* c1
    cdef const int64_t* c2
    if _Width is _W1:
        for i in range(m):
            h[i] = hash_finish(hash_round(seed, c0[i]), 1)
    elif _Width is _W2:
        c1 = cols[1] + start
        for i in range(m):
            h[i] = hash_finish(hash_round(hash_round(seed, c0[i]), c1[i]), 2)
    elif _Width is _W3:
        c1 = cols[1] + start
        c2 = cols[2] + start
        for i in range(m):
            h[i] = hash_finish(hash_round(hash_round(hash_round(seed, c0[i]), c1[i]), c2[i]), 3)
    else:
        for i in range(m):
            h[i] = hash_round(seed, c0[i])
        for w in range(1, n_cols):
            c1 = cols[w] + start
            for i in range(m):
                h[i] = hash_round(h[i], c1[i])
        for i in range(m):
            h[i] = hash_finish(h[i], n_cols)


cdef void _hash_rows(const int64_t** cols, int n_cols, Py_ssize_t start, Py_ssize_t m,
                     uint64_t* h) noexcept nogil:
    if n_cols == 1:
        _hash_block(<_W1*>NULL, cols, n_cols, start, m, h)
    elif n_cols == 2:
        _hash_block(<_W2*>NULL, cols, n_cols, start, m, h)
    elif n_cols == 3:
        _hash_block(<_W3*>NULL, cols, n_cols, start, m, h)
    else:
        _hash_block(<_WN*>NULL, cols, n_cols, start, m, h)


cdef inline bint _key_eq(const int64_t* stored, const int64_t** cols, int nw,
                         Py_ssize_t row) noexcept nogil:
    cdef int w
    for w in range(nw):
        if stored[w] != cols[w][row]:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Table kernels (nogil)
# ---------------------------------------------------------------------------------------------

cdef int _alloc(GTState* t, int n_words, Py_ssize_t capacity) noexcept nogil:
    cdef Py_ssize_t index_len = MIN_INDEX
    while index_len < 2 * capacity:
        index_len *= 2
    if capacity < 1:
        capacity = 1
    t.n_words = n_words
    t.keys = <int64_t*>malloc(capacity * n_words * sizeof(int64_t))
    t.live = <uint8_t*>malloc(capacity * sizeof(uint8_t))
    t.free_slots = <int32_t*>malloc(capacity * sizeof(int32_t))
    t.index = <GTEntry*>malloc(index_len * sizeof(GTEntry))
    if t.keys == NULL or t.live == NULL or t.free_slots == NULL or t.index == NULL:
        return GT_NO_MEMORY
    t.slot_cap = capacity
    t.index_mask = index_len - 1
    _reset(t)
    return GT_OK


cdef void _release(GTState* t) noexcept nogil:
    free(t.keys)
    free(t.live)
    free(t.free_slots)
    free(t.index)
    t.keys = NULL
    t.live = NULL
    t.free_slots = NULL
    t.index = NULL
    t.slot_cap = 0


cdef inline void _clear_index(GTEntry* index, Py_ssize_t length) noexcept nogil:
    # All-ones bytes make slot -1 (empty); the hash bits of an empty entry are never read.
    memset(index, 0xFF, length * sizeof(GTEntry))


cdef void _reset(GTState* t) noexcept nogil:
    _clear_index(t.index, t.index_mask + 1)
    memset(t.live, 0, t.slot_cap * sizeof(uint8_t))
    t.n_free = 0
    t.next_slot = 0
    t.n_groups = 0


cdef int _grow_slots(GTState* t) noexcept nogil:
    """Double the per-slot buffers. Each pointer is kept as soon as its realloc succeeds, and
    slot_cap only moves once all have, so a failure leaves a consistent (if roomier) table."""
    cdef Py_ssize_t cap = t.slot_cap * 2
    cdef void* p
    if cap > INT32_MAX:
        cap = INT32_MAX
    p = realloc(t.keys, cap * t.n_words * sizeof(int64_t))
    if p == NULL:
        return GT_NO_MEMORY
    t.keys = <int64_t*>p
    p = realloc(t.free_slots, cap * sizeof(int32_t))
    if p == NULL:
        return GT_NO_MEMORY
    t.free_slots = <int32_t*>p
    p = realloc(t.live, cap * sizeof(uint8_t))
    if p == NULL:
        return GT_NO_MEMORY
    t.live = <uint8_t*>p
    memset(t.live + t.slot_cap, 0, (cap - t.slot_cap) * sizeof(uint8_t))
    t.slot_cap = cap
    return GT_OK


cdef int _grow_index(GTState* t) noexcept nogil:
    """Double the index, re-placing every entry from its own hash bits (keys are not read)."""
    cdef Py_ssize_t old_len = t.index_mask + 1
    cdef Py_ssize_t new_mask = 2 * old_len - 1
    cdef GTEntry* old = t.index
    cdef GTEntry* idx = <GTEntry*>malloc(2 * old_len * sizeof(GTEntry))
    cdef Py_ssize_t p, pos
    if idx == NULL:
        return GT_NO_MEMORY
    _clear_index(idx, 2 * old_len)
    for p in range(old_len):
        if old[p].slot >= 0:
            pos = <Py_ssize_t>(old[p].hash_lo & new_mask)
            while idx[pos].slot >= 0:
                pos = (pos + 1) & new_mask
            idx[pos] = old[p]
    free(old)
    t.index = idx
    t.index_mask = new_mask
    return GT_OK


cdef inline Py_ssize_t _probe(_Width* width, const GTEntry* index, Py_ssize_t mask, uint64_t h,
                              const int64_t* keys, int nw, const int64_t** cols,
                              Py_ssize_t row) noexcept nogil:
    """Position of the row's key in the index, or of the empty entry that ends its probe run."""
    cdef Py_ssize_t pos = <Py_ssize_t>(h & <uint64_t>mask)
    cdef uint32_t lo = <uint32_t>h
    cdef GTEntry e = index[pos]
    while e.slot >= 0:
        if e.hash_lo == lo and _key_eq(keys + <Py_ssize_t>e.slot * nw, cols, _nw(width, nw), row):
            break
        pos = (pos + 1) & mask
        e = index[pos]
    return pos


cdef int _find_or_insert(_Width* width, GTState* t, const int64_t** cols, Py_ssize_t n,
                         int32_t* out, Py_ssize_t* created) noexcept nogil:
    cdef uint64_t hbuf[CHUNK]
    cdef int nw = _nw(width, t.n_words)
    cdef int w, status
    cdef Py_ssize_t blk, start, m, i, row, pos, mask
    cdef uint64_t h
    cdef int32_t s
    # Local copies: stores through ``out`` would otherwise force the compiler to reload them.
    cdef GTEntry* index
    cdef const int64_t* keys
    cdef int64_t* dst
    created[0] = 0
    for blk in range((n + CHUNK - 1) // CHUNK):
        start = blk * CHUNK
        m = n - start if n - start < CHUNK else CHUNK
        _hash_block(width, cols, nw, start, m, hbuf)
        index = t.index
        mask = t.index_mask
        keys = t.keys
        for i in range(m):
            h = hbuf[i]
            row = start + i
            pos = _probe(width, index, mask, h, keys, nw, cols, row)
            s = index[pos].slot
            if s < 0:
                # New key. Keep the load at most 1/2 so probe runs stay short.
                if 2 * (t.n_groups + 1) > mask + 1:
                    status = _grow_index(t)
                    if status != GT_OK:
                        return status
                    index = t.index
                    mask = t.index_mask
                    pos = <Py_ssize_t>(h & <uint64_t>mask)
                    while index[pos].slot >= 0:
                        pos = (pos + 1) & mask
                if t.n_free > 0:
                    t.n_free -= 1
                    s = t.free_slots[t.n_free]
                else:
                    if t.next_slot >= INT32_MAX:
                        return GT_TOO_MANY_GROUPS
                    if t.next_slot == t.slot_cap:
                        status = _grow_slots(t)
                        if status != GT_OK:
                            return status
                        keys = t.keys
                    s = <int32_t>t.next_slot
                    t.next_slot += 1
                dst = t.keys + <Py_ssize_t>s * nw
                for w in range(nw):
                    dst[w] = cols[w][row]
                t.live[s] = 1
                index[pos].slot = s
                index[pos].hash_lo = <uint32_t>h
                t.n_groups += 1
                created[0] += 1
            out[row] = s
    return GT_OK


cdef void _lookup(_Width* width, const GTState* t, const int64_t** cols, Py_ssize_t n,
                  int32_t* out) noexcept nogil:
    cdef uint64_t hbuf[CHUNK]
    cdef int nw = _nw(width, t.n_words)
    cdef Py_ssize_t blk, start, m, i
    cdef Py_ssize_t mask = t.index_mask
    cdef const GTEntry* index = t.index
    cdef const int64_t* keys = t.keys
    for blk in range((n + CHUNK - 1) // CHUNK):
        start = blk * CHUNK
        m = n - start if n - start < CHUNK else CHUNK
        _hash_block(width, cols, nw, start, m, hbuf)
        for i in range(m):
            # slot -1 when the probe ended on an empty entry
            out[start + i] = index[_probe(width, index, mask, hbuf[i], keys, nw, cols,
                                          start + i)].slot


cdef int _find_or_insert_any(GTState* t, const int64_t** cols, Py_ssize_t n, int32_t* out,
                             Py_ssize_t* created) noexcept nogil:
    if t.n_words == 1:
        return _find_or_insert(<_W1*>NULL, t, cols, n, out, created)
    elif t.n_words == 2:
        return _find_or_insert(<_W2*>NULL, t, cols, n, out, created)
    elif t.n_words == 3:
        return _find_or_insert(<_W3*>NULL, t, cols, n, out, created)
    return _find_or_insert(<_WN*>NULL, t, cols, n, out, created)


cdef void _lookup_any(const GTState* t, const int64_t** cols, Py_ssize_t n,
                      int32_t* out) noexcept nogil:
    if t.n_words == 1:
        _lookup(<_W1*>NULL, t, cols, n, out)
    elif t.n_words == 2:
        _lookup(<_W2*>NULL, t, cols, n, out)
    elif t.n_words == 3:
        _lookup(<_W3*>NULL, t, cols, n, out)
    else:
        _lookup(<_WN*>NULL, t, cols, n, out)


cdef inline uint64_t _stored_hash(const GTState* t, int32_t s) noexcept nogil:
    """The hash of the key held by slot ``s``, recomputed from its words as _hash_block would."""
    cdef const int64_t* key = t.keys + <Py_ssize_t>s * t.n_words
    cdef uint64_t h = hash_start()
    cdef int w
    for w in range(t.n_words):
        h = hash_round(h, key[w])
    return hash_finish(h, t.n_words)


cdef void _unlink(GTState* t, int32_t s) noexcept nogil:
    """Take live slot ``s`` out of the index with backward-shift deletion: later entries of the
    same probe run slide back into the hole, so lookups never need tombstones."""
    cdef Py_ssize_t mask = t.index_mask
    cdef GTEntry* index = t.index
    cdef Py_ssize_t hole = <Py_ssize_t>(_stored_hash(t, s) & <uint64_t>mask)
    cdef Py_ssize_t j, home
    while index[hole].slot != s:
        hole = (hole + 1) & mask
    j = hole
    while True:
        j = (j + 1) & mask
        if index[j].slot < 0:
            break
        home = <Py_ssize_t>(index[j].hash_lo & mask)
        # The entry may fill the hole only if the hole lies on its probe path, between its home
        # and j (cyclically): its distance from home is at least the hole's distance back from j.
        if ((j - home) & mask) >= ((j - hole) & mask):
            index[hole] = index[j]
            hole = j
    index[hole].slot = -1


cdef int _remove(GTState* t, const int32_t* slots, Py_ssize_t m, Py_ssize_t* bad) noexcept nogil:
    """All or nothing: every slot is checked (live, not repeated) before any is removed."""
    cdef Py_ssize_t k, j
    cdef int32_t s
    for k in range(m):
        s = slots[k]
        if s < 0 or s >= t.next_slot or t.live[s] != 1:
            for j in range(k):
                t.live[slots[j]] = 1
            bad[0] = k
            return GT_BAD_SLOT
        t.live[s] = 2  # seen in this call: a repeat fails the check above
    cdef GTEntry* keep = NULL
    if m * 8 >= t.index_mask + 1:
        # Removing a large share (a batch of closed windows): one sequential pass that rebuilds
        # the index from the survivors beats m random-access backward shifts.
        keep = <GTEntry*>malloc((t.n_groups - m + 1) * sizeof(GTEntry))
    for k in range(m):
        s = slots[k]
        if keep == NULL:
            _unlink(t, s)
        t.live[s] = 0
        t.free_slots[t.n_free] = s
        t.n_free += 1
    t.n_groups -= m
    if keep != NULL:
        _rebuild_index(t, keep)
        free(keep)
    return GT_OK


cdef void _rebuild_index(GTState* t, GTEntry* keep) noexcept nogil:
    """Re-place every entry whose slot is still live; ``keep`` has room for n_groups entries.
    Any insertion order gives a valid linear-probing table."""
    cdef Py_ssize_t i, kept = 0, pos, length = t.index_mask + 1
    cdef GTEntry e
    for i in range(length):
        e = t.index[i]
        if e.slot >= 0 and t.live[e.slot] == 1:
            keep[kept] = e
            kept += 1
        t.index[i].slot = -1
    for i in range(kept):
        pos = keep[i].hash_lo & t.index_mask
        while t.index[pos].slot != -1:
            pos = (pos + 1) & t.index_mask
        t.index[pos] = keep[i]


cdef int _check_live(const GTState* t, const int32_t* slots, Py_ssize_t m,
                     Py_ssize_t* bad) noexcept nogil:
    cdef Py_ssize_t k
    cdef int32_t s
    for k in range(m):
        s = slots[k]
        if s < 0 or s >= t.next_slot or t.live[s] != 1:
            bad[0] = k
            return GT_BAD_SLOT
    return GT_OK


# ---------------------------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------------------------

cdef class GroupTable:
    """Map multi-word int64 group keys to dense int32 slots.

    Each key is ``n_words`` int64 words, given column-wise (one array per word). Slots are
    handed out densely from 0, and slots of removed groups are reused by later inserts, so
    aggregate state kept in arrays of length ``slot_capacity`` stays compact. ``capacity`` is
    the number of groups to make room for up front; the table grows past it as needed.

    Methods release the GIL while they work. A table belongs to one thread at a time: a call
    that overlaps another call on the same table raises RuntimeError rather than racing it.

    >>> import numpy as np
    >>> t = GroupTable(2)
    >>> a = np.array([1, 2, 1, 3], dtype=np.int64)
    >>> b = np.array([7, 7, 7, 7], dtype=np.int64)
    >>> slots = np.empty(4, dtype=np.int32)
    >>> t.find_or_insert([a, b], slots)
    3
    >>> slots.tolist()
    [0, 1, 0, 2]
    >>> t.remove(np.array([1], dtype=np.int32))
    >>> t.lookup([a, b], slots); slots.tolist()
    [0, -1, 0, 2]
    >>> t.keys_of(np.array([2], dtype=np.int32)).tolist()
    [[3, 7]]
    """

    def __cinit__(self, int n_words, Py_ssize_t capacity=1024):
        if n_words < 1 or n_words > MAX_WORDS:
            raise ValueError(f"n_words must be in [1, {MAX_WORDS}], got {n_words}")
        if capacity < 0 or capacity > INT32_MAX:
            raise ValueError(f"capacity must be in [0, 2**31 - 1], got {capacity}")
        if _alloc(&self.st, n_words, capacity) != GT_OK:
            _release(&self.st)
            raise MemoryError("GroupTable could not allocate its buffers")

    def __dealloc__(self):
        _release(&self.st)

    @property
    def n_words(self) -> int:
        """Number of int64 words per key."""
        return self.st.n_words

    @property
    def n_groups(self) -> int:
        """Number of live groups."""
        return self.st.n_groups

    @property
    def slot_capacity(self) -> int:
        """1 + the largest slot id handed out since creation (or the last ``clear``): the
        length aggregate state arrays need."""
        return self.st.next_slot

    def __len__(self):
        return self.st.n_groups

    def find_or_insert(self, columns, int32_t[::1] out_slots):
        """Write each row's slot to ``out_slots``, inserting keys not yet in the table.

        ``columns`` holds ``n_words`` int64 arrays of one length n; ``out_slots`` is int32[n].
        Returns how many groups were created. If growing fails (MemoryError) the rows before
        the failing one have been inserted.
        """
        cdef tuple cols = _as_columns(columns, self.st.n_words)
        cdef const int64_t** ptrs = <const int64_t**>malloc(len(cols) * sizeof(int64_t*))
        cdef Py_ssize_t n, created = 0
        cdef int status = GT_OK
        if ptrs == NULL:
            raise MemoryError()
        try:
            n = _gather(cols, ptrs)
            _check_out_len(out_slots.shape[0], n)
            _enter(self)
            try:
                with nogil:
                    status = _find_or_insert_any(&self.st, ptrs, n,
                                                 &out_slots[0] if n else NULL, &created)
            finally:
                self.busy = False
            _raise_status(status, 0, NULL)
            return created
        finally:
            free(ptrs)

    def lookup(self, columns, int32_t[::1] out_slots):
        """Write each row's slot to ``out_slots``, -1 where the key is not in the table."""
        cdef tuple cols = _as_columns(columns, self.st.n_words)
        cdef const int64_t** ptrs = <const int64_t**>malloc(len(cols) * sizeof(int64_t*))
        cdef Py_ssize_t n
        if ptrs == NULL:
            raise MemoryError()
        try:
            n = _gather(cols, ptrs)
            _check_out_len(out_slots.shape[0], n)
            _enter(self)
            try:
                with nogil:
                    _lookup_any(&self.st, ptrs, n, &out_slots[0] if n else NULL)
            finally:
                self.busy = False
        finally:
            free(ptrs)

    def remove(self, const int32_t[::1] slots):
        """Delete the groups held by ``slots``; their slots are reused by later inserts.

        Raises ValueError, and removes nothing, if any slot is not live or appears twice.
        """
        cdef Py_ssize_t m = slots.shape[0], bad = 0
        cdef int status
        if m == 0:
            return
        _enter(self)
        try:
            with nogil:
                status = _remove(&self.st, &slots[0], m, &bad)
        finally:
            self.busy = False
        _raise_status(status, bad, &slots[0])

    def keys_of(self, const int32_t[::1] slots):
        """The stored key words of ``slots`` as an int64 array of shape (len(slots), n_words).

        Raises ValueError if any slot is not live.
        """
        cdef Py_ssize_t m = slots.shape[0], bad = 0, k
        cdef int nw = self.st.n_words, w
        cdef const int64_t* src
        cdef int64_t* dst
        cdef int status = GT_OK
        out_arr = np.empty((m, nw), dtype=np.int64)
        cdef int64_t[:, ::1] out = out_arr
        if m == 0:
            return out_arr
        _enter(self)
        try:
            with nogil:
                status = _check_live(&self.st, &slots[0], m, &bad)
                if status == GT_OK:
                    # Word by word: keys are a few words, and a memcpy call per row costs more.
                    dst = &out[0, 0]
                    for k in range(m):
                        src = self.st.keys + <Py_ssize_t>slots[k] * nw
                        for w in range(nw):
                            dst[k * nw + w] = src[w]
        finally:
            self.busy = False
        _raise_status(status, bad, &slots[0])
        return out_arr

    def live_slots(self):
        """The live slots, ascending, as int32."""
        out_arr = np.empty(self.st.n_groups, dtype=np.int32)
        cdef int32_t[::1] out = out_arr
        cdef Py_ssize_t s, k = 0
        _enter(self)
        try:
            with nogil:
                for s in range(self.st.next_slot):
                    if self.st.live[s]:
                        out[k] = <int32_t>s
                        k += 1
        finally:
            self.busy = False
        return out_arr

    def clear(self):
        """Remove every group and restart slot numbering at 0 (``slot_capacity`` becomes 0).
        Allocated memory is kept for reuse."""
        _enter(self)
        try:
            with nogil:
                _reset(&self.st)
        finally:
            self.busy = False

    def __repr__(self):
        return (f"GroupTable(n_words={self.st.n_words}, n_groups={self.st.n_groups}, "
                f"slot_capacity={self.st.next_slot})")


cdef Py_ssize_t find_or_insert_rows(GroupTable t, const int64_t** cols, Py_ssize_t n,
                                    int32_t* out, bint release_gil) except -1:
    """``GroupTable.find_or_insert`` for kernels holding raw pointers (``group_step``): ``cols``
    are ``t.n_words`` int64 arrays of ``n`` rows, ``out`` gets each row's slot. Returns how many
    groups were created. ``release_gil``: run without the GIL (worth it for large batches only)."""
    cdef Py_ssize_t created = 0
    cdef int status = GT_OK
    if n <= 0:
        return 0
    _enter(t)
    try:
        if release_gil:
            with nogil:
                status = _find_or_insert_any(&t.st, cols, n, out, &created)
        else:
            status = _find_or_insert_any(&t.st, cols, n, out, &created)
    finally:
        t.busy = False
    _raise_status(status, 0, NULL)
    return created


def hash_columns(columns, uint64_t[::1] out):
    """Hash each row of the int64 key ``columns`` into ``out`` (uint64[n]).

    The same hash ``GroupTable`` uses for a key of ``len(columns)`` words; ``hash % N`` spreads
    even sequential small codes evenly over N partitions.

    >>> import numpy as np
    >>> h = np.empty(3, dtype=np.uint64)
    >>> hash_columns([np.arange(3, dtype=np.int64)], h)
    >>> len(set(h.tolist()))
    3
    """
    cdef tuple cols = _as_columns(columns, -1)
    cdef int n_cols = <int>len(cols)
    cdef const int64_t** ptrs = <const int64_t**>malloc(n_cols * sizeof(int64_t*))
    cdef Py_ssize_t n, blk, start
    if ptrs == NULL:
        raise MemoryError()
    try:
        n = _gather(cols, ptrs)
        _check_out_len(out.shape[0], n)
        with nogil:
            for blk in range((n + CHUNK - 1) // CHUNK):
                start = blk * CHUNK
                _hash_rows(ptrs, n_cols, start, n - start if n - start < CHUNK else CHUNK,
                           &out[start])
    finally:
        free(ptrs)
