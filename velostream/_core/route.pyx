"""The V2 hash router: which partition each row's key belongs to.

The coordinator hands ``KeyRouter.route`` each batch's key words (the group-table words of the key
columns: string codes of the job's dictionary, integers, float bits; see
``exec.pipeline.KeyCodec``) and gets back each row's partition in one nogil pass. Every partition
then picks out its own rows with ``select_rows``, in parallel.

Each key hashes to one of 65,536 *key groups*, and a key group is assigned to a partition when
first seen: to the partition that has received the fewest rows so far. A plain ``hash % N`` leaves
few-key streams lopsided (S1/S2's ten symbols split 3/7 over two partitions as often as 5/5);
assignment on first sight balances them, and a hot key still lives in exactly one partition. A key
group never moves, so each key's state stays in one partition for the life of the job.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from .gather cimport _take

cnp.import_array()


cdef extern from *:
    int __builtin_ctzll(unsigned long long x) nogil

DEF GROUP_BITS = 16
DEF N_GROUPS = 1 << GROUP_BITS
DEF MAX_PARTS = 127
DEF RAW_BLOCK = 1024
# Kernels release the GIL from this many rows on (small steps would hand it around; see strings.pyx)
DEF RELEASE_ROWS = 8192


cdef inline uint64_t _row_hash(const int64_t** words, int n_words, Py_ssize_t r) noexcept nogil:
    # Multiply-xorshift rounds: the top bits (the key group) depend on every bit of every word.
    cdef uint64_t h = <uint64_t>words[0][r] * 0x9e3779b97f4a7c15ULL
    cdef int k
    for k in range(1, n_words):
        h = (h ^ (h >> 29) ^ <uint64_t>words[k][r]) * 0xc2b2ae3d27d4eb4fULL
    return (h ^ (h >> 32)) * 0xff51afd7ed558ccdULL


# One key column as the raw router reads it: a string column's Arrow buffers, or a number column's
# values (the engine's representation: int64 for integers, booleans, timestamps and decimals).
cdef struct RawCol:
    int kind                      # RAW_STRING, RAW_INT or RAW_FLOAT
    const int32_t* offsets        # RAW_STRING: n + 1 offsets into data
    const uint8_t* data
    int64_t nbytes                # RAW_STRING: bytes in data
    const int64_t* ivalues        # RAW_INT
    const double* fvalues         # RAW_FLOAT
    const uint8_t* valid          # 1 byte per row, or NULL (no NULLs)


cdef enum:
    RAW_STRING = 0
    RAW_INT = 1
    RAW_FLOAT = 2


cdef inline uint64_t _bytes_hash(const uint8_t* p, Py_ssize_t n, const uint8_t* end) noexcept nogil:
    # Equal strings must hash equal wherever their bytes sit in whichever buffer (a collision
    # only puts two keys in the same partition). Up to 8 bytes, the common key: one word, one
    # multiply; longer ones 8 bytes per multiply. ``end``: the end of the buffer ``p`` points into.
    cdef uint64_t h, w
    if n <= 8:
        return (_tail_word(p, n, end) ^ (<uint64_t>n << 59)) * 0x9e3779b97f4a7c15ULL
    h = <uint64_t>n * 0x9e3779b97f4a7c15ULL
    while n >= 8:
        memcpy(&w, p, 8)
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL
        h ^= h >> 31
        p += 8
        n -= 8
    if n > 0:
        h = (h ^ _tail_word(p, n, end)) * 0x94d049bb133111ebULL
        h ^= h >> 29
    return h


cdef inline uint64_t _tail_word(const uint8_t* p, Py_ssize_t n, const uint8_t* end) noexcept nogil:
    # The n <= 8 bytes at p as a little-endian word, zero above: one 8-byte load with the bytes
    # past the string masked off, or byte by byte at the very end of the buffer.
    cdef uint64_t w = 0
    if p + 8 <= end:
        memcpy(&w, p, 8)
        return w & ((1ULL << (8 * n)) - 1) if n < 8 else w
    while n > 0:
        n -= 1
        w = (w << 8) | p[n]
    return w


cdef inline void _tally(const int8_t* part, Py_ssize_t lo, Py_ssize_t hi, int64_t* counts,
                        int n_parts) noexcept nogil:
    # Rows per partition, counted after the fact: an increment per row inside the routing loop
    # (counts[part]++) chains every row through one memory location and costs more than the hash.
    cdef Py_ssize_t r, c
    cdef int p
    for p in range(n_parts):
        c = 0
        for r in range(lo, hi):
            c += part[r] == p
        counts[p] += c


cdef inline int8_t _first_sight(const int8_t* out, Py_ssize_t r, Py_ssize_t* tallied,
                                int64_t* counts, const int64_t* load, int n_parts) noexcept nogil:
    # A key group seen for the first time at row r goes to the partition with the fewest rows so
    # far: rows routed before this batch (load) plus this batch's rows before r (tallied lazily).
    cdef int p, best = 0
    _tally(out, tallied[0], r, counts, n_parts)
    tallied[0] = r
    for p in range(1, n_parts):
        if load[p] + counts[p] < load[best] + counts[best]:
            best = p
    return <int8_t>best


cdef class KeyRouter:
    """One job's key-group assignment (see the module docstring). Not thread-safe: the
    coordinator alone routes."""
    cdef int n_parts
    cdef int8_t[::1] assign      # key group -> partition, -1 until first seen
    cdef int64_t[::1] load       # rows routed to each partition so far

    def __init__(self, int n_parts):
        if not 1 <= n_parts <= MAX_PARTS:
            raise ValueError(f"n_parts must be in 1..{MAX_PARTS}, got {n_parts}")
        self.n_parts = n_parts
        self.assign = np.full(N_GROUPS, -1, dtype=np.int8)
        self.load = np.zeros(n_parts, dtype=np.int64)

    @property
    def n_partitions(self):
        return self.n_parts

    @property
    def rows_routed(self):
        """Rows sent to each partition so far."""
        return np.asarray(self.load).copy()

    def state(self):
        """The assignment and the loads, for a snapshot: a restored router must send every key
        to the partition that holds its state."""
        return np.asarray(self.assign).copy(), np.asarray(self.load).copy()

    def restore(self, assign, load):
        """Load a ``state()`` of a router with as many partitions."""
        assign = np.ascontiguousarray(assign, dtype=np.int8)
        load = np.ascontiguousarray(load, dtype=np.int64)
        if assign.shape[0] != N_GROUPS or load.shape[0] != self.n_parts:
            raise ValueError(f"a router state of {load.shape[0]} partitions cannot be restored "
                             f"into {self.n_parts}")
        np.asarray(self.assign)[:] = assign
        np.asarray(self.load)[:] = load

    def route(self, list words, int8_t[::1] out):
        """Write each row's partition into ``out``; ``words``: one or more int64 arrays of
        ``len(out)`` rows that together identify each row's key.

        >>> import numpy as np
        >>> out = np.empty(8, dtype=np.int8)
        >>> KeyRouter(2).route([np.arange(8, dtype=np.int64) % 4], out)
        >>> out.tolist()  # four keys, two per partition, in order of first sight
        [0, 1, 0, 1, 0, 1, 0, 1]
        """
        cdef Py_ssize_t n = out.shape[0]
        cdef int n_words = len(words), k
        if n_words == 0:
            raise ValueError("no key words to route on")
        arrays = [np.ascontiguousarray(w, dtype=np.int64) for w in words]
        for w in arrays:
            if w.ndim != 1 or w.shape[0] != n:
                raise ValueError(f"key words must be 1-D with {n} rows")
        cdef const int64_t** ptrs = <const int64_t**>malloc(n_words * sizeof(int64_t*))
        if ptrs == NULL:
            raise MemoryError()
        cdef cnp.ndarray arr
        for k in range(n_words):
            arr = arrays[k]
            ptrs[k] = <const int64_t*>arr.data
        cdef int64_t counts[MAX_PARTS]
        cdef int8_t* assign = &self.assign[0]
        cdef int64_t* load = &self.load[0]
        cdef Py_ssize_t r, tallied = 0
        cdef uint64_t g
        cdef int8_t a
        cdef int p
        try:
            if n:
                with nogil:
                    for p in range(self.n_parts):
                        counts[p] = 0
                    for r in range(n):
                        g = _row_hash(ptrs, n_words, r) >> (64 - GROUP_BITS)
                        a = assign[g]
                        if a < 0:
                            a = assign[g] = _first_sight(&out[0], r, &tallied, counts, load,
                                                         self.n_parts)
                        out[r] = a
                    _tally(&out[0], tallied, n, counts, self.n_parts)
                    for p in range(self.n_parts):
                        load[p] += counts[p]
        finally:
            free(ptrs)

    def route_raw(self, list columns, int8_t[::1] out):
        """``route`` on the key columns' own values, without interning strings first: each
        entry of ``columns`` is ``("string", offsets int32[n + 1], data uint8, valid)``,
        ``("int", int64[n], valid)`` or ``("float", float64[n], valid)``, ``valid`` a uint8[n]
        or None. Equal keys get the same partition in every batch (string bytes hashed, floats
        folded as GROUP BY compares them), so the partitions can intern their own strings.

        >>> import numpy as np
        >>> out = np.empty(4, dtype=np.int8)
        >>> offs = np.array([0, 1, 2, 3, 4], np.int32); data = np.frombuffer(b"abab", np.uint8)
        >>> KeyRouter(2).route_raw([("string", offs, data, None)], out)
        >>> out.tolist()
        [0, 1, 0, 1]
        """
        cdef Py_ssize_t n = out.shape[0]
        cdef int n_cols = len(columns), k
        if n_cols == 0:
            raise ValueError("no key columns to route on")
        keep = []  # the arrays the pointers below point into
        cdef RawCol* cols = <RawCol*>malloc(n_cols * sizeof(RawCol))
        if cols == NULL:
            raise MemoryError()
        cdef cnp.ndarray a
        try:
            for k in range(n_cols):
                spec = columns[k]
                cols[k].valid = NULL
                valid = spec[len(spec) - 1]  # (this module compiles without wraparound)
                if valid is not None:
                    a = np.ascontiguousarray(valid).view(np.uint8)
                    if a.shape[0] != n:
                        raise ValueError(f"key column {k}: validity must have {n} rows")
                    keep.append(a)
                    cols[k].valid = <const uint8_t*>a.data
                if spec[0] == "string":
                    a = np.ascontiguousarray(spec[1], dtype=np.int32)
                    if a.shape[0] != n + 1:
                        raise ValueError(f"key column {k}: {n + 1} string offsets expected")
                    keep.append(a)
                    cols[k].kind = RAW_STRING
                    cols[k].offsets = <const int32_t*>a.data
                    a = np.ascontiguousarray(spec[2], dtype=np.uint8)
                    keep.append(a)
                    cols[k].data = <const uint8_t*>a.data
                    cols[k].nbytes = a.shape[0]
                elif spec[0] in ("int", "float"):
                    a = np.ascontiguousarray(spec[1], dtype=np.int64 if spec[0] == "int" else np.float64)
                    if a.shape[0] != n:
                        raise ValueError(f"key column {k}: {n} values expected")
                    keep.append(a)
                    cols[k].kind = RAW_INT if spec[0] == "int" else RAW_FLOAT
                    cols[k].ivalues = <const int64_t*>a.data
                    cols[k].fvalues = <const double*>a.data
                else:
                    raise ValueError(f"unknown key column kind {spec[0]!r}")
            if n:
                scratch = np.empty(2 * RAW_BLOCK, dtype=np.uint64)
                a = scratch
                if n >= RELEASE_ROWS:
                    with nogil:
                        _route_raw(cols, n_cols, n, &out[0], &self.assign[0], &self.load[0],
                                   self.n_parts, <uint64_t*>a.data, <uint64_t*>a.data + RAW_BLOCK)
                else:
                    _route_raw(cols, n_cols, n, &out[0], &self.assign[0], &self.load[0],
                               self.n_parts, <uint64_t*>a.data, <uint64_t*>a.data + RAW_BLOCK)
        finally:
            free(cols)


cdef void _column_words(const RawCol* c, Py_ssize_t lo, Py_ssize_t hi, uint64_t* w) noexcept nogil:
    # Rows lo..hi-1 of one column into w[0..]: one tight loop per column kind (a kind test per
    # row would keep the compiler from pipelining the rows).
    cdef Py_ssize_t r
    cdef int64_t a, b
    cdef const uint8_t* end = c.data + c.nbytes
    cdef double x
    if c.kind == RAW_STRING:
        for r in range(lo, hi):
            a = c.offsets[r]
            b = c.offsets[r + 1]
            if a < 0 or b > c.nbytes or b < a:  # not a valid Arrow array: never read outside it
                w[r - lo] = 0
            else:
                w[r - lo] = _bytes_hash(c.data + a, b - a, end)
    elif c.kind == RAW_INT:
        memcpy(w, c.ivalues + lo, 8 * (hi - lo))
    else:
        for r in range(lo, hi):
            x = c.fvalues[r] + 0.0  # -0.0 and 0.0 are one key
            if x != x:
                w[r - lo] = 0x7FF8000000000000ULL  # every NaN is one key
            else:
                memcpy(&w[r - lo], &x, 8)
    if c.valid != NULL:
        for r in range(lo, hi):
            if not c.valid[r]:
                w[r - lo] = 0x5bd1e9955bd1e995ULL  # NULL: one key of its own


cdef void _route_raw(const RawCol* cols, int n_cols, Py_ssize_t n, int8_t* out, int8_t* assign,
                     int64_t* load, int n_parts, uint64_t* h, uint64_t* w) noexcept nogil:
    # In blocks of RAW_BLOCK rows, so that the per-row hashes stay in the L1 cache between passes.
    cdef int64_t counts[MAX_PARTS]
    cdef Py_ssize_t r, lo, hi, tallied = 0
    cdef uint64_t g
    cdef int8_t a
    cdef int p, k
    for p in range(n_parts):
        counts[p] = 0
    lo = 0
    while lo < n:
        hi = min(lo + RAW_BLOCK, n)
        _column_words(&cols[0], lo, hi, h)
        for k in range(1, n_cols):
            _column_words(&cols[k], lo, hi, w)
            for r in range(hi - lo):
                h[r] = (h[r] * 0x9e3779b97f4a7c15ULL) ^ (h[r] >> 29) ^ w[r]
        for r in range(lo, hi):
            g = ((h[r - lo] ^ (h[r - lo] >> 32)) * 0xff51afd7ed558ccdULL) >> (64 - GROUP_BITS)
            a = assign[g]
            if a < 0:
                a = assign[g] = _first_sight(out, r, &tallied, counts, load, n_parts)
            out[r] = a
        lo = hi
    _tally(out, tallied, n, counts, n_parts)
    for p in range(n_parts):
        load[p] += counts[p]


def select_rows(const int8_t[::1] part, int p):
    """The rows (int64, ascending) whose partition is ``p``.

    >>> import numpy as np
    >>> select_rows(np.array([1, 0, 1, 1], dtype=np.int8), 1).tolist()
    [0, 2, 3]
    """
    cdef Py_ssize_t n = part.shape[0], m = 0
    out_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    if n >= RELEASE_ROWS:
        with nogil:
            m = _select(&part[0], n, <int8_t>p, &out[0])
    elif n:
        m = _select(&part[0], n, <int8_t>p, &out[0])
    return out_arr[:m]


cdef inline uint64_t _eq_mask64(const int8_t* p, int8_t want) noexcept nogil:
    # Bit k set when p[k] == want, k < 64: eight rows per 8-byte word, each byte compared by
    # bit arithmetic (a zero byte of w ^ want gets its top bit set, exactly), and the eight top
    # bits packed into a byte by one multiply.
    cdef uint64_t bits = 0, w, x, y
    cdef uint64_t rep = <uint64_t><uint8_t>want * 0x0101010101010101ULL
    cdef int j
    for j in range(8):
        memcpy(&w, p + 8 * j, 8)
        x = w ^ rep
        y = ~(((x & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | x | 0x7F7F7F7F7F7F7F7FULL)
        bits |= (((y >> 7) * 0x0102040810204080ULL) >> 56) << (8 * j)
    return bits


cdef Py_ssize_t _select(const int8_t* part, Py_ssize_t n, int8_t want, int64_t* out) noexcept nogil:
    # 64 rows at a time: a bit mask of this partition's rows, then one store per selected row,
    # found by counting trailing zeros.
    cdef Py_ssize_t r, base = 0, m = 0
    cdef uint64_t bits
    while base + 64 <= n:
        bits = _eq_mask64(part + base, want)
        while bits:
            out[m] = base + __builtin_ctzll(bits)
            m += 1
            bits &= bits - 1
        base += 64
    for r in range(base, n):
        out[m] = r
        m += part[r] == want
    return m


def take_rows(list arrays, rows_in):
    """Each of ``arrays`` (1-D numpy arrays of 1-, 2-, 4- or 8-byte items, e.g. a partition's
    number columns and validity) at ``rows``, as new arrays of the same dtypes: one tight loop
    per array (numpy's fancy indexing costs about twice as much per row).

    >>> import numpy as np
    >>> [a.tolist() for a in take_rows([np.arange(5.0), np.array([1, 0, 1, 0, 1], bool)],
    ...                                np.array([0, 3, 4], np.int64))]
    [[0.0, 3.0, 4.0], [True, False, True]]
    """
    rows_arr = np.ascontiguousarray(rows_in, dtype=np.int64)
    if rows_arr.ndim != 1:
        raise ValueError("rows must be 1-D")
    cdef const int64_t[::1] rows = rows_arr
    cdef Py_ssize_t m = rows.shape[0]
    cdef int64_t hi = -1
    cdef const int64_t* rp = &rows[0] if m else NULL
    if m:  # numpy's reductions vectorise (a compiled min/max loop here ran ~7x slower)
        if rows_arr.min() < 0:
            raise IndexError(f"row {rows_arr.min()} is out of range")
        hi = rows_arr.max()
    out = []
    cdef cnp.ndarray src, dst
    cdef int size
    cdef char* d
    cdef const char* s
    for a in arrays:
        src = np.ascontiguousarray(a)
        if src.ndim != 1:
            raise ValueError("take_rows takes 1-D arrays")
        if m and hi >= src.shape[0]:
            raise IndexError(f"row {hi} is out of range for {src.shape[0]} rows")
        size = src.dtype.itemsize
        if size not in (1, 2, 4, 8) or src.dtype.hasobject:
            out.append(src[rows_arr])
            continue
        dst = np.empty(m, dtype=src.dtype)
        d = <char*>dst.data
        s = <const char*>src.data
        if m >= RELEASE_ROWS:
            with nogil:
                _take(s, d, rp, m, size)
        elif m:
            _take(s, d, rp, m, size)
        out.append(dst)
    return out


def route_by_time(const int64_t[::1] t, int64_t run_ms, int n_parts, int8_t[::1] out):
    """Each row's partition when rows are routed by event time (``exec.router``, strategy
    ``window``): time is cut into runs of ``run_ms`` from the epoch (floor division, so a
    negative time falls in the run before zero), and the runs are dealt to the partitions in
    turn: ``out[i] = (t[i] // run_ms) % n_parts``.

    >>> import numpy as np
    >>> out = np.empty(6, dtype=np.int8)
    >>> route_by_time(np.array([0, 9, 10, 25, 31, -1]), 10, 2, out)
    >>> out.tolist()
    [0, 0, 1, 0, 1, 1]
    """
    cdef Py_ssize_t i, n = t.shape[0]
    cdef int64_t q, lo = 0, r
    cdef int8_t cur = 0
    cdef bint have = False
    cdef int64_t INT64_MIN_ = -0x7FFFFFFFFFFFFFFF - 1
    if run_ms <= 0:
        raise ValueError("run_ms must be positive")
    if n_parts < 1 or n_parts > MAX_PARTS:
        raise ValueError(f"n_parts must be in 1..{MAX_PARTS}")
    if out.shape[0] != n:
        raise ValueError("out must have one entry per row")
    with nogil:
        for i in range(n):
            # Event time mostly moves forward: a row usually falls in the previous row's run,
            # which two compares decide without a division.
            if not (have and t[i] >= lo and <uint64_t>t[i] - <uint64_t>lo < <uint64_t>run_ms):
                q = t[i] / run_ms  # C division truncates: step down for negative non-multiples
                if t[i] < 0 and q * run_ms != t[i]:
                    q -= 1
                lo = q * run_ms
                r = q % n_parts
                cur = <int8_t>(r + n_parts if r < 0 else r)
                # (q * run_ms cannot wrap below the smallest time by less than a run)
                have = t[i] >= INT64_MIN_ + run_ms
            out[i] = cur


def select_runs(const int8_t[::1] part, int p, Py_ssize_t max_runs):
    """The rows whose partition is ``p`` as runs of consecutive rows, ``(starts, stops)`` (int64
    arrays, ascending), or None when they make more than ``max_runs`` runs (then take them row
    by row: ``select_rows``). A partition's rows of a batch routed by window are a few runs.

    >>> import numpy as np
    >>> [a.tolist() for a in select_runs(np.array([1, 1, 0, 1, 0, 0, 1], dtype=np.int8), 1, 4)]
    [[0, 3, 6], [2, 4, 7]]
    >>> select_runs(np.array([1, 0, 1, 0, 1], dtype=np.int8), 1, 2) is None
    True
    """
    cdef Py_ssize_t n = part.shape[0], i = 0, k = 0
    cdef int8_t want = <int8_t>p
    starts_arr = np.empty(max_runs + 1, dtype=np.int64)
    stops_arr = np.empty(max_runs + 1, dtype=np.int64)
    cdef int64_t[::1] starts = starts_arr, stops = stops_arr
    if max_runs < 0:
        raise ValueError("max_runs must be >= 0")
    with nogil:
        while i < n:
            while i < n and part[i] != want:
                i += 1
            if i == n:
                break
            if k == max_runs:
                k = -1
                break
            starts[k] = i
            while i < n and part[i] == want:
                i += 1
            stops[k] = i
            k += 1
    if k < 0:
        return None
    return starts_arr[:k], stops_arr[:k]
