"""Event-time kernels: the per-row watermark stamp, tumbling-window assignment and the order in
which closed windows are emitted.

Each replaces a chain of numpy passes and temporaries (running maximum, shifted maximum, floor
division, multiply, add, compare, ``all``; remainder, division, cast and argsort) with one nogil
pass over the batch, which is what these steps cost per record in S3a-like queries.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport INT64_MAX, int64_t, uint16_t, uint64_t
from libc.stdlib cimport free, malloc

cnp.import_array()


def running_max_before(const int64_t[::1] times, int64_t start, int64_t[::1] out):
    """``out[i] = max(start, times[0], ..., times[i - 1])`` (the watermark just before row i, before
    lateness); returns the maximum over ``start`` and every time."""
    cdef Py_ssize_t i, n = times.shape[0]
    cdef int64_t m = start
    if out.shape[0] != n:
        raise ValueError("out must have one entry per row")
    with nogil:
        for i in range(n):
            out[i] = m
            if times[i] > m:
                m = times[i]
    return m


def tumbling_starts(const int64_t[::1] t, const int64_t[::1] wm, int64_t size, int64_t[::1] ws):
    """``ws[i]`` = start of the tumbling window of ``size`` ms holding time ``t[i]`` (floor
    division, so negative times fall in the window before zero). Returns ``(late, min_start)``:
    how many rows' windows the watermark ``wm[i]`` had already closed (``ws + size <= wm``), and
    the smallest start among the other rows (INT64_MAX when there are none)."""
    cdef Py_ssize_t i, n = t.shape[0], late = 0
    cdef int64_t q, s = 0, lo = INT64_MAX
    cdef bint have = False
    if size <= 0:
        raise ValueError("window size must be positive")
    if wm.shape[0] != n or ws.shape[0] != n:
        raise ValueError("wm and ws must have one entry per row")
    with nogil:
        for i in range(n):
            # Event time mostly moves forward: a row usually falls in the previous row's window,
            # which two compares decide without a division.
            if not (have and t[i] >= s and <uint64_t>t[i] - <uint64_t>s < <uint64_t>size):
                q = t[i] / size  # C division truncates: step down for negative non-multiples
                if t[i] < 0 and q * size != t[i]:
                    q -= 1
                s = q * size
                have = True
            ws[i] = s
            # Wrapping add, as numpy's int64 ``ws + size > wm`` does (no signed overflow).
            if <int64_t>(<uint64_t>s + <uint64_t>size) > wm[i]:
                if s < lo:
                    lo = s
            else:
                late += 1
    return late, lo


def order_by_end(const int64_t[::1] ends, int64_t step):
    """A stable order (int64 indices) of closed windows by end, or None when the ends are not
    all multiples of ``step`` apart within 65,536 steps (the caller then sorts). Ends of one
    query are multiples of its window step, so a counting sort over (end - lowest) / step ranks
    does it in two linear passes."""
    cdef Py_ssize_t i, n = ends.shape[0], nb
    cdef int64_t lo, hi
    cdef uint64_t d
    cdef int64_t* count
    cdef uint16_t* rank
    cdef bint ok = True
    if n == 0 or step <= 0:
        return None if n else np.empty(0, dtype=np.int64)
    order_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] order = order_arr
    with nogil:
        lo = ends[0]
        hi = ends[0]
        for i in range(n):
            if ends[i] < lo:
                lo = ends[i]
            if ends[i] > hi:
                hi = ends[i]
        # Differences from lo in unsigned arithmetic: they can exceed INT64_MAX.
        if (<uint64_t>hi - <uint64_t>lo) / <uint64_t>step >= 65_536:
            ok = False
    if not ok:
        return None
    nb = <Py_ssize_t>((<uint64_t>hi - <uint64_t>lo) / <uint64_t>step) + 1
    count = <int64_t*>malloc((nb + 1) * sizeof(int64_t))
    rank = <uint16_t*>malloc(n * sizeof(uint16_t))
    if count == NULL or rank == NULL:
        free(count)
        free(rank)
        raise MemoryError()
    with nogil:
        for i in range(nb + 1):
            count[i] = 0
        # One division per row: the rank, checked to be exact, then reused by the scatter.
        for i in range(n):
            d = (<uint64_t>ends[i] - <uint64_t>lo) / <uint64_t>step
            if d * <uint64_t>step != <uint64_t>ends[i] - <uint64_t>lo:
                ok = False
                break
            rank[i] = <uint16_t>d
            count[d + 1] += 1
        if ok:
            for i in range(nb):
                count[i + 1] += count[i]
            for i in range(n):
                order[count[rank[i]]] = i
                count[rank[i]] += 1
    free(count)
    free(rank)
    return order_arr if ok else None
