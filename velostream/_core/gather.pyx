"""Gathers from several sources at once, for the V2 exchange (docs/PERFORMANCE.md, "Session 11").

A partition's rows of a step come from several input batches, and the rows the partitions emit
for one step come back as one run per partition. Gathering them source by source and then
concatenating the pieces copies every value twice; these kernels write each value once, into
its place in one output array, without the GIL:

* ``take_segments``: the rows ``rows[k]`` of ``sources[k]``, one segment after the other (a
  partition's rows of the batches held into one step);
* ``merge_order``: the stable merge of runs sorted by window end (EMIT FINAL rows of every
  partition, in end order; partition order within one end), as (run, row) per output row;
* ``take_interleaved`` / ``take_strings_interleaved``: each output row ``i`` is row ``rows[i]``
  of source ``which[i]``.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport INT64_MAX, int8_t, int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cnp.import_array()

# Kernels release the GIL from this many rows on (small steps would hand it around; see strings.pyx)
DEF RELEASE_ROWS = 8192
DEF MAX_SOURCES = 127


cdef void _take(const char* s, char* d, const int64_t* rows, Py_ssize_t m, int size) noexcept nogil:
    cdef Py_ssize_t i
    if size == 8:
        for i in range(m):
            (<int64_t*>d)[i] = (<const int64_t*>s)[rows[i]]
    elif size == 4:
        for i in range(m):
            (<int32_t*>d)[i] = (<const int32_t*>s)[rows[i]]
    elif size == 2:
        for i in range(m):
            (<short*>d)[i] = (<const short*>s)[rows[i]]
    elif size == 1:
        for i in range(m):
            (<uint8_t*>d)[i] = (<const uint8_t*>s)[rows[i]]
    else:
        for i in range(m):
            memcpy(d + i * size, s + rows[i] * size, size)


def take_segments(list sources, list rows):
    """``np.concatenate([s[r] for s, r in zip(sources, rows)])``, each value copied once.

    >>> import numpy as np
    >>> take_segments([np.arange(5.0), np.arange(10.0, 13.0)],
    ...               [np.array([4, 0]), np.array([2])]).tolist()
    [4.0, 0.0, 12.0]
    """
    if len(sources) != len(rows):
        raise ValueError("one row array per source")
    srcs = [np.ascontiguousarray(a) for a in sources]
    rws = [np.ascontiguousarray(r, dtype=np.int64) for r in rows]
    dtype = srcs[0].dtype if srcs else np.dtype(np.int64)
    for a in srcs:
        if a.ndim != 1 or a.dtype != dtype or dtype.hasobject:
            raise ValueError("sources must be 1-D arrays of one fixed-width dtype")
    cdef Py_ssize_t total = sum(len(r) for r in rws), at = 0, m, n
    out = np.empty(total, dtype=dtype)
    cdef cnp.ndarray src, dst = out, r
    cdef int size = out.dtype.itemsize
    cdef bint ok = True
    for src, r in zip(srcs, rws):
        m = r.shape[0]
        n = src.shape[0]
        if m >= RELEASE_ROWS:
            with nogil:
                ok = _take_checked(<const char*>src.data, n, <char*>dst.data + at * size,
                                   <const int64_t*>r.data, m, size)
        elif m:
            ok = _take_checked(<const char*>src.data, n, <char*>dst.data + at * size,
                               <const int64_t*>r.data, m, size)
        if not ok:
            raise IndexError("row index out of range")
        at += m
    return out


cdef bint _take_checked(const char* s, Py_ssize_t n, char* d, const int64_t* rows, Py_ssize_t m,
                        int size) noexcept nogil:
    # The range check rides along the gather (no extra pass over memory): each block of rows
    # is checked, while in cache, before it is copied.
    # A block of consecutive rows (a partition's rows of a batch routed by window,
    # exec/router.py) is one memcpy.
    cdef Py_ssize_t lo = 0, hi, i
    cdef bint ok, consecutive
    cdef int64_t first
    while lo < m:
        hi = lo + 4096 if lo + 4096 < m else m
        ok = True
        consecutive = True
        first = rows[lo]
        for i in range(lo, hi):
            ok &= (rows[i] >= 0) & (rows[i] < n)
            consecutive &= rows[i] == first + (i - lo)
        if not ok:
            return False
        if consecutive:
            memcpy(d + lo * size, s + first * size, (hi - lo) * size)
        else:
            _take(s, d + lo * size, rows + lo, hi - lo, size)
        lo = hi
    return True


def merge_order(list ends):
    """The stable merge of ``ends`` (int64 arrays, each sorted ascending): for each output row,
    its run (int8) and its row in that run (int64). Equal ends keep run order.

    >>> import numpy as np
    >>> w, r = merge_order([np.array([1, 3, 3]), np.array([2, 3])])
    >>> list(zip(w.tolist(), r.tolist()))
    [(0, 0), (1, 0), (0, 1), (0, 2), (1, 1)]
    """
    cdef int k = len(ends), j, best
    if k > MAX_SOURCES:
        raise ValueError(f"at most {MAX_SOURCES} runs")
    runs = [np.ascontiguousarray(e, dtype=np.int64) for e in ends]
    cdef Py_ssize_t total = sum(len(e) for e in runs), i
    which_arr = np.empty(total, dtype=np.int8)
    rows_arr = np.empty(total, dtype=np.int64)
    cdef int8_t[::1] which = which_arr
    cdef int64_t[::1] rows = rows_arr
    cdef const int64_t** ptr = <const int64_t**>malloc(k * sizeof(int64_t*) + 1)
    cdef Py_ssize_t* pos = <Py_ssize_t*>malloc(k * sizeof(Py_ssize_t) + 1)
    cdef Py_ssize_t* size = <Py_ssize_t*>malloc(k * sizeof(Py_ssize_t) + 1)
    cdef cnp.ndarray a
    cdef int64_t v, bv
    if ptr == NULL or pos == NULL or size == NULL:
        free(ptr); free(pos); free(size)
        raise MemoryError()
    try:
        for j in range(k):
            a = runs[j]
            ptr[j] = <const int64_t*>a.data
            pos[j] = 0
            size[j] = a.shape[0]
        with nogil:
            _merge(ptr, pos, size, k, &which[0] if total else NULL, &rows[0] if total else NULL)
    finally:
        free(ptr); free(pos); free(size)
    return which_arr, rows_arr


cdef void _merge(const int64_t** ptr, Py_ssize_t* pos, const Py_ssize_t* size, int k,
                 int8_t* which, int64_t* rows) noexcept nogil:
    # A run at a time: the run with the smallest head (the first such run on a tie) gives every
    # row up to the other runs' heads in one tight loop (a row of an earlier run goes before an
    # equal row of a later one), so a row costs one compare, not a scan of every run's head.
    cdef Py_ssize_t i = 0, p, n
    cdef int j, best
    cdef int64_t v, bv, lim_le, lim_lt
    cdef const int64_t* e
    while True:
        best = -1
        bv = 0
        for j in range(k):
            if pos[j] < size[j]:
                v = ptr[j][pos[j]]
                if best < 0 or v < bv:
                    best = j
                    bv = v
        if best < 0:
            return
        lim_le = INT64_MAX  # rows up to a later run's head (ties: this run first)
        lim_lt = INT64_MAX  # rows below an earlier run's head
        for j in range(k):
            if j != best and pos[j] < size[j]:
                v = ptr[j][pos[j]]
                if j > best and v < lim_le:
                    lim_le = v
                elif j < best and v < lim_lt:
                    lim_lt = v
        e = ptr[best]
        p = pos[best]
        n = size[best]
        while True:
            which[i] = <int8_t>best
            rows[i] = p
            i += 1
            p += 1
            if p >= n or e[p] > lim_le or e[p] >= lim_lt:
                break
        pos[best] = p


def take_interleaved(list sources, which, rows):
    """Output row ``i`` is ``sources[which[i]][rows[i]]`` (1-D arrays of one fixed-width dtype).

    >>> import numpy as np
    >>> take_interleaved([np.array([1, 2]), np.array([7])], np.array([1, 0, 0], np.int8),
    ...                  np.array([0, 1, 0])).tolist()
    [7, 2, 1]
    """
    cdef const int8_t[::1] w = np.ascontiguousarray(which, dtype=np.int8)
    cdef const int64_t[::1] r = np.ascontiguousarray(rows, dtype=np.int64)
    cdef Py_ssize_t m = w.shape[0], i
    if r.shape[0] != m:
        raise ValueError("which and rows must have one entry per output row")
    srcs = [np.ascontiguousarray(a) for a in sources]
    cdef int k = len(srcs), j
    if k == 0 or k > MAX_SOURCES:
        raise ValueError(f"1 to {MAX_SOURCES} sources")
    dtype = srcs[0].dtype
    for a in srcs:
        if a.ndim != 1 or a.dtype != dtype or dtype.hasobject:
            raise ValueError("sources must be 1-D arrays of one fixed-width dtype")
    out = np.empty(m, dtype=dtype)
    cdef cnp.ndarray dst = out, a_
    cdef const char** ptr = <const char**>malloc(k * sizeof(char*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>malloc(k * sizeof(Py_ssize_t))
    if ptr == NULL or sizes == NULL:
        free(ptr); free(sizes)
        raise MemoryError()
    cdef int size = dtype.itemsize
    cdef bint ok = True
    for j in range(k):
        a_ = srcs[j]
        ptr[j] = <const char*>a_.data
        sizes[j] = a_.shape[0]
    try:
        if m >= RELEASE_ROWS:
            with nogil:
                ok = _rows_ok(&w[0], &r[0], m, sizes, k)
                if ok:
                    _take_interleaved(ptr, &w[0], &r[0], m, size, <char*>dst.data)
        elif m:
            ok = _rows_ok(&w[0], &r[0], m, sizes, k)
            if ok:
                _take_interleaved(ptr, &w[0], &r[0], m, size, <char*>dst.data)
    finally:
        free(ptr); free(sizes)
    if not ok:
        raise IndexError("source or row index out of range")
    return out


cdef bint _rows_ok(const int8_t* w, const int64_t* r, Py_ssize_t m, const Py_ssize_t* sizes,
                   int k) noexcept nogil:
    """Every (which, row) names a row of a source."""
    cdef Py_ssize_t i
    cdef bint ok = True
    for i in range(m):
        ok &= (w[i] >= 0) & (w[i] < k)
        if not ok:
            return False
        ok &= (r[i] >= 0) & (r[i] < sizes[w[i]])
    return ok


cdef void _take_interleaved(const char** ptr, const int8_t* w, const int64_t* r, Py_ssize_t m,
                            int size, char* d) noexcept nogil:
    cdef Py_ssize_t i
    if size == 8:
        for i in range(m):
            (<int64_t*>d)[i] = (<const int64_t*>ptr[w[i]])[r[i]]
    elif size == 4:
        for i in range(m):
            (<int32_t*>d)[i] = (<const int32_t*>ptr[w[i]])[r[i]]
    elif size == 1:
        for i in range(m):
            (<uint8_t*>d)[i] = (<const uint8_t*>ptr[w[i]])[r[i]]
    else:
        for i in range(m):
            memcpy(d + i * size, ptr[w[i]] + r[i] * size, size)


def take_strings_interleaved(list arrays, which, rows):
    """Output row ``i`` is row ``rows[i]`` of the pyarrow string array ``arrays[which[i]]``, as
    one new string array (NULLs kept): the output offsets in one pass, the bytes in a second.

    >>> import pyarrow as pa, numpy as np
    >>> take_strings_interleaved([pa.array(["a", None]), pa.array(["bc"])],
    ...                          np.array([1, 0, 0], np.int8), np.array([0, 1, 0])).to_pylist()
    ['bc', None, 'a']
    """
    import pyarrow as pa
    from .strings import string_buffers
    cdef const int8_t[::1] w = np.ascontiguousarray(which, dtype=np.int8)
    cdef const int64_t[::1] r = np.ascontiguousarray(rows, dtype=np.int64)
    cdef Py_ssize_t m = w.shape[0], i, total = 0
    if r.shape[0] != m:
        raise ValueError("which and rows must have one entry per output row")
    cdef int k = len(arrays), j
    if k == 0 or k > MAX_SOURCES:
        raise ValueError(f"1 to {MAX_SOURCES} sources")
    bufs = [string_buffers(a) for a in arrays]
    cdef Py_ssize_t* sizes = <Py_ssize_t*>malloc(k * sizeof(Py_ssize_t))
    if sizes == NULL:
        raise MemoryError()
    for j in range(k):
        sizes[j] = len(bufs[j][0]) - 1
    try:
        ok = m == 0 or _rows_ok(&w[0], &r[0], m, sizes, k)
    finally:
        free(sizes)
    if not ok:
        raise IndexError("source or row index out of range")
    cdef const int32_t** offs = <const int32_t**>malloc(k * sizeof(int32_t*))
    cdef const uint8_t** data = <const uint8_t**>malloc(k * sizeof(uint8_t*))
    if offs == NULL or data == NULL:
        free(offs); free(data)
        raise MemoryError()
    cdef cnp.ndarray o_, d_
    cdef uint8_t* out_data
    out_off_arr = np.empty(m + 1, dtype=np.int32)
    cdef int32_t[::1] out_off = out_off_arr
    try:
        for j in range(k):
            o_ = np.ascontiguousarray(bufs[j][0], dtype=np.int32)
            d_ = np.ascontiguousarray(bufs[j][1], dtype=np.uint8)
            bufs[j] = (o_, d_)
            offs[j] = <const int32_t*>o_.data
            data[j] = <const uint8_t*>d_.data
        with nogil:
            out_off[0] = 0
            for i in range(m):
                total += offs[w[i]][r[i] + 1] - offs[w[i]][r[i]]
                if total > 0x7fffffff:
                    break
                out_off[i + 1] = <int32_t>total
        if total > 0x7fffffff:
            raise OverflowError("more than 2 GiB of strings in one output array")
        out_data_arr = np.empty(max(total, 1), dtype=np.uint8)
        out_data = <uint8_t*>cnp.PyArray_DATA(out_data_arr)
        if m >= RELEASE_ROWS:
            with nogil:
                _copy_strings(offs, data, &w[0], &r[0], m, &out_off[0], out_data)
        elif m:
            _copy_strings(offs, data, &w[0], &r[0], m, &out_off[0], out_data)
    finally:
        free(offs); free(data)
    validity = None
    null_count = 0
    if any(a.null_count for a in arrays):
        valids = [a.is_valid().to_numpy(zero_copy_only=False).view(np.uint8) for a in arrays]
        valid = take_interleaved(valids, which, rows).view(bool)
        null_count = int(m - np.count_nonzero(valid))
        if null_count:
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), m, [validity, pa.py_buffer(out_off_arr),
                                                  pa.py_buffer(out_data_arr)],
                                 null_count=null_count)


cdef void _copy_strings(const int32_t** offs, const uint8_t** data, const int8_t* w,
                        const int64_t* r, Py_ssize_t m, const int32_t* out_off,
                        uint8_t* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t a
    for i in range(m):
        a = offs[w[i]][r[i]]
        memcpy(out + out_off[i], data[w[i]] + a, out_off[i + 1] - out_off[i])
