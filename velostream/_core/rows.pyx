"""Kernels of ROWS windows: ``f(x) OVER (ROWS WINDOW BUFFER n ROWS PARTITION BY k ORDER BY t)``.

Every input row produces one output row. Per partition slot the buffer is the last ``n`` rows of
that slot, the current one included, in arrival order (docs/SQL.md §6); the answers equal
DuckDB's ``f(x) OVER (PARTITION BY k ORDER BY seq ROWS BETWEEN n-1 PRECEDING AND CURRENT ROW)``.

One ``process`` call runs in passes, each a ``with nogil:`` loop over typed memoryviews:

1. ``_advance``: the slot row number and ring position of every row.
2. ``_push_ring``, once per argument that needs history: writes each row into its slot's ring and
   records what the write evicted, plus the LAG / FIRST_VALUE values, which need the ring as it is
   at that row.
3. One pass per function over (input, evicted) arrays with per-slot running state: add/remove
   sums (Neumaier-compensated for float64), Welford add/remove for the variance family
   (recomputed exactly from the slot's last n values once every n rows, so its drift stays
   bounded on an endless stream), and van Herk / Gil-Werman blocks for MIN/MAX. Cost per row
   does not depend on ``n``: where a pass does n steps, it does them once every n rows.

Results follow DuckDB also for NaN and infinities: NaN sorts above every value (MIN skips it
unless nothing else is there, MAX returns it), SUM/AVG follow IEEE over the whole buffer, and any
NaN or infinity makes a variance NaN except that one value alone has population variance 0.
"""
import numpy as np
from .state_arrays import state_array as _state_array  # checks import_state input

# What an overflowing SUM of INT64 raises; the package sets its OutOfRangeError here (see
# velostream/exec/aggregators.py): a kernel never imports the package.
OutOfRangeError = OverflowError

from libc.math cimport INFINITY, NAN, fabs, isfinite, sqrt
from libc.stdint cimport INT64_MAX, INT64_MIN, int32_t, int64_t, uint8_t, uint64_t
from libcpp.vector cimport vector

cdef enum:
    K_SUM = 0
    K_AVG = 1
    K_MIN = 2
    K_MAX = 3
    K_COUNT = 4
    K_COUNT_STAR = 5
    K_STDDEV = 6
    K_STDDEV_POP = 7
    K_VARIANCE = 8
    K_VAR_POP = 9
    K_LAG = 10
    K_ROW_NUMBER = 11
    K_FIRST_VALUE = 12
    K_LAST_VALUE = 13

_KINDS = {
    "SUM": K_SUM, "AVG": K_AVG, "MIN": K_MIN, "MAX": K_MAX, "COUNT": K_COUNT,
    "COUNT_STAR": K_COUNT_STAR, "STDDEV": K_STDDEV, "STDDEV_POP": K_STDDEV_POP,
    "VARIANCE": K_VARIANCE, "VAR_POP": K_VAR_POP, "LAG": K_LAG, "ROW_NUMBER": K_ROW_NUMBER,
    "FIRST_VALUE": K_FIRST_VALUE, "LAST_VALUE": K_LAST_VALUE,
}
# Functions that keep add/remove state and so read the values their buffer evicts.
_EVICTING = frozenset([K_SUM, K_AVG, K_COUNT, K_STDDEV, K_STDDEV_POP, K_VARIANCE, K_VAR_POP])
_VARIANCE = frozenset([K_STDDEV, K_STDDEV_POP, K_VARIANCE, K_VAR_POP])
_NO_ARG = frozenset([K_COUNT_STAR, K_ROW_NUMBER])

_INT64 = np.dtype(np.int64)
_FLOAT64 = np.dtype(np.float64)


# ---------------------------------------------------------------------------------------------
# Per-element updates

cdef inline void _neumaier(double* s, double* c, double v) noexcept nogil:
    # Kahan-Babuska: unlike plain Kahan it keeps a small sum that a large value passed over, so a
    # big value entering and later leaving the buffer does not wipe out what was there before.
    cdef double t = s[0] + v
    if fabs(s[0]) >= fabs(v):
        c[0] += (s[0] - t) + v
    else:
        c[0] += (v - t) + s[0]
    s[0] = t


cdef inline void add_sum(SumAcc* a, num_t v) noexcept nogil:
    a.nobs += 1
    cdef uint64_t lo
    if num_t is int64_t:
        # The exact sum in 128 bits (v sign-extended; unsigned arithmetic wraps, never UB): a
        # SUM that leaves int64 is an error and AVG stays right (docs/SQL.md §2).
        lo = <uint64_t>a.isum + <uint64_t>v
        a.ihi += (-1 if v < 0 else 0) + (1 if lo < <uint64_t>a.isum else 0)
        a.isum = <int64_t>lo
    else:
        if isfinite(v):
            _neumaier(&a.fsum, &a.fcomp, v)
        elif v != v:
            a.n_nan += 1
        elif v > 0:
            a.n_posinf += 1
        else:
            a.n_neginf += 1


cdef inline void remove_sum(SumAcc* a, num_t v) noexcept nogil:
    a.nobs -= 1
    if num_t is int64_t:
        a.ihi -= (-1 if v < 0 else 0) + (1 if <uint64_t>a.isum < <uint64_t>v else 0)
        a.isum = <int64_t>(<uint64_t>a.isum - <uint64_t>v)
    else:
        if isfinite(v):
            if a.nobs == a.n_nan + a.n_posinf + a.n_neginf:
                # No finite value left: restart from an exact zero so drift cannot outlive the data.
                a.fsum = 0.0
                a.fcomp = 0.0
            else:
                _neumaier(&a.fsum, &a.fcomp, -v)
        elif v != v:
            a.n_nan -= 1
        elif v > 0:
            a.n_posinf -= 1
        else:
            a.n_neginf -= 1


cdef inline double fsum_value(const SumAcc* a) noexcept nogil:
    # IEEE rules over the whole buffer, as DuckDB gives them: NaN wins, +inf and -inf make NaN.
    if a.n_nan or (a.n_posinf and a.n_neginf):
        return NAN
    if a.n_posinf:
        return INFINITY
    if a.n_neginf:
        return -INFINITY
    return a.fsum + a.fcomp


cdef inline void add_var(VarAcc* a, double v) noexcept nogil:
    cdef double delta
    if not isfinite(v):
        a.n_nonfinite += 1
        return
    if a.n_same and v == a.prev:
        a.n_same += 1
    else:
        a.n_same = 1
    a.prev = v
    a.nobs += 1
    delta = v - a.mean
    a.mean += delta / a.nobs
    a.ssqdm += delta * (v - a.mean)


cdef inline void remove_var(VarAcc* a, double v) noexcept nogil:
    cdef double delta
    if not isfinite(v):
        a.n_nonfinite -= 1
        return
    a.nobs -= 1
    if a.nobs == 0:
        a.mean = 0.0
        a.ssqdm = 0.0
    else:
        delta = v - a.mean
        a.mean -= delta / a.nobs
        a.ssqdm -= delta * (v - a.mean)


cdef inline void recompute_var(VarAcc* a, const double* vals, const uint8_t* ok,
                               int64_t n) noexcept nogil:
    # Exact state of a full buffer by the corrected two-pass formula. Run once every n rows of
    # a slot, it bounds the drift of add/remove to n steps whatever the length of the stream.
    cdef int64_t j, m = 0, nonfinite = 0
    cdef double total = 0.0, mean, d, ssq = 0.0, corr = 0.0
    for j in range(n):
        if ok[j]:
            if isfinite(vals[j]):
                total += vals[j]
                m += 1
            else:
                nonfinite += 1
    a.nobs = m
    a.n_nonfinite = nonfinite
    if m == 0:
        a.mean = 0.0
        a.ssqdm = 0.0
        return
    mean = total / m
    for j in range(n):
        if ok[j] and isfinite(vals[j]):
            d = vals[j] - mean
            ssq += d * d
            corr += d
    a.mean = mean + corr / m
    a.ssqdm = ssq - corr * corr / m


cdef inline num_t min_op(num_t a, num_t b) noexcept nogil:
    # DuckDB's order: NaN is greater than every other value, so NaN is MIN's neutral element.
    if num_t is double:
        return b if (b < a) | (a != a) else a
    else:
        return b if b < a else a


cdef inline num_t max_op(num_t a, num_t b) noexcept nogil:
    # NaN is the greatest value: once in, it stays the MAX.
    if num_t is double:
        return b if (b > a) | (b != b) else a
    else:
        return b if b > a else a


# ---------------------------------------------------------------------------------------------
# Passes

cdef void _slot_range(const int32_t[::1] slots, int64_t* lo, int64_t* hi) noexcept:
    cdef Py_ssize_t r
    cdef int32_t s, mn = 0, mx = -1
    if slots.shape[0]:
        mn = slots[0]
        mx = slots[0]
    with nogil:
        for r in range(slots.shape[0]):
            s = slots[r]
            if s < mn:
                mn = s
            if s > mx:
                mx = s
    lo[0] = mn
    hi[0] = mx


cdef void _advance(const int32_t[::1] slots,        # IN  slot per row
                   int64_t n,
                   int64_t* slot_rows,               # INOUT rows seen per slot
                   int32_t* slot_pos,                # INOUT next ring position per slot
                   int64_t[::1] row_seq,             # OUT 0-based row number of the row in its slot
                   int32_t[::1] row_pos) noexcept:   # OUT ring position of the row
    cdef Py_ssize_t r
    cdef int32_t s, p
    with nogil:
        for r in range(slots.shape[0]):
            s = slots[r]
            row_seq[r] = slot_rows[s]
            slot_rows[s] += 1
            p = slot_pos[s]
            row_pos[r] = p
            p += 1
            if p == n:
                p = 0
            slot_pos[s] = p


cdef void _push_ring(const int32_t[::1] slots,       # IN  slot per row
                     const int64_t[::1] row_seq,     # IN  row number in slot
                     const int32_t[::1] row_pos,     # IN  ring position
                     int64_t n,
                     const num_t[::1] x,             # IN  argument values
                     const uint8_t[::1] xv,          # IN  argument validity
                     num_t* ring,                    # INOUT ring values, slot * n + pos
                     uint8_t* ring_valid,            # INOUT ring validity
                     bint need_evicted,
                     num_t[::1] ev,                  # OUT evicted value (read only where evv)
                     uint8_t[::1] evv,               # OUT 1 where a valid value was evicted
                     const int64_t[::1] read_k,      # IN  per read: LAG offset, 0 for FIRST_VALUE
                     num_t[:, ::1] rd,               # OUT per read, per row: value
                     uint8_t[:, ::1] rdv) noexcept:  # OUT per read, per row: validity
    cdef Py_ssize_t r, j, nreads = read_k.shape[0]
    cdef int64_t q, k, p, base, idx
    cdef uint8_t valid
    with nogil:
        for r in range(slots.shape[0]):
            q = row_seq[r]
            base = <int64_t>slots[r] * n
            idx = base + row_pos[r]
            if need_evicted:
                if q >= n and ring_valid[idx]:
                    ev[r] = ring[idx]
                    evv[r] = 1
                else:
                    evv[r] = 0
            valid = xv[r] != 0
            ring_valid[idx] = valid
            ring[idx] = x[r] if valid else 0
            for j in range(nreads):
                k = read_k[j]
                if k == 0:
                    # Oldest row of the buffer: the slot's first row until the buffer is full,
                    # then the one the next row will overwrite.
                    p = 0
                    if q >= n - 1:
                        p = row_pos[r] + 1
                        if p == n:
                            p = 0
                elif q >= k:
                    p = row_pos[r] - k
                    if p < 0:
                        p += n
                else:
                    rd[j, r] = 0
                    rdv[j, r] = 0
                    continue
                rd[j, r] = ring[base + p]
                rdv[j, r] = ring_valid[base + p]


cdef int _sum_pass(int kind,
                    const int32_t[::1] slots,        # IN  slot per row
                    const num_t[::1] x,              # IN  values
                    const uint8_t[::1] xv,           # IN  validity
                    const num_t[::1] ev,             # IN  evicted values
                    const uint8_t[::1] evv,          # IN  1 where a valid value was evicted
                    SumAcc* acc,                     # INOUT per-slot state
                    num_t[::1] out_sum,              # OUT SUM (kind K_SUM)
                    double[::1] out_avg,             # OUT AVG (kind K_AVG)
                    uint8_t[::1] outv) noexcept:     # OUT validity
    # returns 1 when a BIGINT SUM of some row's window leaves int64 (its output is then 0)
    cdef Py_ssize_t r
    cdef SumAcc* a
    cdef int overflow = 0
    with nogil:
        for r in range(slots.shape[0]):
            a = &acc[slots[r]]
            if evv[r]:
                remove_sum(a, ev[r])
            if xv[r]:
                add_sum(a, x[r])
            if a.nobs == 0:
                outv[r] = 0
                if kind == K_SUM:
                    out_sum[r] = 0
                else:
                    out_avg[r] = 0.0
                continue
            outv[r] = 1
            if num_t is int64_t:
                if kind == K_SUM:
                    # fits int64 when the high word is the low word's sign extension
                    if a.ihi != (-1 if a.isum < 0 else 0):
                        overflow = 1
                        out_sum[r] = 0
                    else:
                        out_sum[r] = a.isum
                elif a.ihi == (-1 if a.isum < 0 else 0):
                    out_avg[r] = <double>a.isum / a.nobs
                else:  # a total beyond int64: from both words
                    out_avg[r] = (<double>a.ihi * 18446744073709551616.0
                                  + <double>(<uint64_t>a.isum)) / a.nobs
            else:
                if kind == K_SUM:
                    out_sum[r] = fsum_value(a)
                else:
                    out_avg[r] = fsum_value(a) / a.nobs
    return overflow


cdef void _count_pass(const int32_t[::1] slots,      # IN  slot per row
                      const uint8_t[::1] xv,         # IN  validity
                      const uint8_t[::1] evv,        # IN  1 where a valid value was evicted
                      SumAcc* acc,                   # INOUT per-slot state (nobs only)
                      int64_t[::1] out) noexcept:    # OUT COUNT(x)
    cdef Py_ssize_t r
    cdef SumAcc* a
    with nogil:
        for r in range(slots.shape[0]):
            a = &acc[slots[r]]
            a.nobs += (xv[r] != 0) - <int64_t>evv[r]
            out[r] = a.nobs


cdef void _var_pass(int ddof, bint take_sqrt, int64_t n,
                    const int32_t[::1] slots,        # IN  slot per row
                    const int32_t[::1] row_pos,      # IN  position in the slot's block (seq % n)
                    const num_t[::1] x,              # IN  values
                    const uint8_t[::1] xv,           # IN  validity
                    const num_t[::1] ev,             # IN  evicted values
                    const uint8_t[::1] evv,          # IN  1 where a valid value was evicted
                    VarAcc* acc,                     # INOUT per-slot state
                    double* blk,                     # INOUT per slot: its current block's values
                    uint8_t* blk_ok,                 # INOUT per slot: their validity
                    double[::1] out,                 # OUT variance or standard deviation
                    uint8_t[::1] outv) noexcept:     # OUT validity
    cdef Py_ssize_t r
    cdef VarAcc* a
    cdef double v
    cdef int64_t base, i
    with nogil:
        for r in range(slots.shape[0]):
            a = &acc[slots[r]]
            if evv[r]:
                remove_var(a, <double>ev[r])
            if xv[r]:
                add_var(a, <double>x[r])
            base = <int64_t>slots[r] * n
            i = row_pos[r]
            blk[base + i] = <double>x[r]
            blk_ok[base + i] = xv[r]
            if i == n - 1:
                # The block is the whole buffer now: replace the running state by an exact one.
                recompute_var(a, &blk[base], &blk_ok[base], n)
            if a.nobs + a.n_nonfinite <= ddof:
                out[r] = 0.0
                outv[r] = 0
                continue
            outv[r] = 1
            if a.nobs + a.n_nonfinite == 1:
                # DuckDB: the population variance of one value is 0, even of NaN or inf.
                v = 0.0
            elif a.n_nonfinite:
                v = NAN
            elif a.n_same >= a.nobs:
                # Equal values: exactly 0, not the rounding residue of add/remove.
                v = 0.0
            else:
                v = a.ssqdm / (a.nobs - ddof)
                if v < 0.0:
                    v = 0.0
            out[r] = sqrt(v) if take_sqrt else v


cdef void _minmax_pass(bint is_min, int64_t n,
                       const int32_t[::1] slots,     # IN  slot per row
                       const int64_t[::1] row_seq,   # IN  row number in slot
                       const int32_t[::1] row_pos,   # IN  position in the slot's block (seq % n)
                       const num_t[::1] x,           # IN  values
                       const uint8_t[::1] xv,        # IN  validity
                       num_t identity,               # neutral element (NULL rows contribute it)
                       num_t* blk,                   # INOUT per slot n entries, see below
                       num_t* prefix,                # INOUT per slot: MIN/MAX of its block so far
                       int64_t* last_valid,          # INOUT per slot: row number of last non-NULL
                       num_t[::1] out,               # OUT MIN or MAX
                       uint8_t[::1] outv) noexcept:  # OUT validity
    # van Herk / Gil-Werman: a slot's rows are cut into blocks of n (block position = seq % n).
    # The buffer of the row at position i is positions 0..i of the current block (``prefix``)
    # plus positions i+1..n-1 of the previous block, whose suffix MIN/MAX ``blk`` still holds
    # there; positions 0..i of ``blk`` already hold this block's values. When a block ends its
    # suffix MIN/MAX is built in place: n steps every n rows. No data-dependent branch per row,
    # unlike a monotonic deque, whose pop loop mispredicts about once per row on noisy data.
    cdef Py_ssize_t r
    cdef int64_t q, base, i, j
    cdef int32_t s
    cdef num_t v, p, res
    with nogil:
        for r in range(slots.shape[0]):
            s = slots[r]
            q = row_seq[r]
            i = row_pos[r]
            base = <int64_t>s * n
            if xv[r]:
                v = x[r]
                last_valid[s] = q
            else:
                v = identity
            if i == 0:
                p = v
            elif is_min:
                p = min_op(prefix[s], v)
            else:
                p = max_op(prefix[s], v)
            prefix[s] = p
            blk[base + i] = v
            if i + 1 < n:
                res = min_op(p, blk[base + i + 1]) if is_min else max_op(p, blk[base + i + 1])
            else:
                res = p
                j = n - 2
                if is_min:
                    while j >= 0:
                        blk[base + j] = min_op(blk[base + j], blk[base + j + 1])
                        j -= 1
                else:
                    while j >= 0:
                        blk[base + j] = max_op(blk[base + j], blk[base + j + 1])
                        j -= 1
            if last_valid[s] > q - n:
                out[r] = res
                outv[r] = 1
            else:
                out[r] = 0
                outv[r] = 0


cdef void _row_number_pass(int64_t n, bint clamp,
                           const int64_t[::1] row_seq,   # IN  row number in slot
                           int64_t[::1] out) noexcept:   # OUT ROW_NUMBER, or COUNT(*) if clamp
    cdef Py_ssize_t r
    cdef int64_t v
    with nogil:
        for r in range(row_seq.shape[0]):
            v = row_seq[r] + 1
            if clamp and v > n:
                v = n
            out[r] = v


# ---------------------------------------------------------------------------------------------
# State objects

cdef class _Ring:
    def __cinit__(self, bint is_float):
        self.is_float = is_float
        self.need_evicted = False
        self.reads = []

    cdef int grow(self, int64_t n_slots, int64_t n) except -1:
        if self.is_float:
            self.fvalues.resize(n_slots * n)
        else:
            self.ivalues.resize(n_slots * n)
        self.valid.resize(n_slots * n)
        return 0


cdef class _FuncState:
    def __cinit__(self, int kind, bint is_float):
        self.kind = kind
        self.is_float = is_float

    cdef int grow(self, int64_t n_slots, int64_t n) except -1:
        if self.kind in (K_SUM, K_AVG, K_COUNT):
            self.sums.resize(n_slots)
        elif self.kind in (K_STDDEV, K_STDDEV_POP, K_VARIANCE, K_VAR_POP):
            self.vars.resize(n_slots)
            self.var_blk.resize(n_slots * n)
            self.var_blk_ok.resize(n_slots * n)
        elif self.kind in (K_MIN, K_MAX):
            # New slots start from the neutral element everywhere and no non-NULL row.
            if self.is_float:
                self.mm_fblk.resize(n_slots * n, NAN if self.kind == K_MIN else -INFINITY)
                self.mm_fprefix.resize(n_slots)
            else:
                self.mm_iblk.resize(n_slots * n, INT64_MAX if self.kind == K_MIN else INT64_MIN)
                self.mm_iprefix.resize(n_slots)
            self.mm_last_valid.resize(n_slots, -n - 1)
        return 0


cdef object _bool_view(object a):
    return a.view(np.bool_)


cdef object _scratch(object buf, Py_ssize_t nrows, object dtype):
    # Scratch arrays are kept between batches: fresh ones cost a page fault per 4 KiB.
    if buf is None or buf.shape[0] < nrows:
        return np.empty(max(nrows, 1024), dtype=dtype)
    return buf


cdef class RowsWindow:
    """State and kernels of one ROWS window spec (buffer size and PARTITION BY) and all the
    functions computed over it.

    ``functions`` is a list of ``(name, arg_index, offset)``: ``arg_index`` indexes
    ``arg_dtypes`` and the ``args`` given to :meth:`process` (-1 for ``COUNT_STAR`` and
    ``ROW_NUMBER``); ``offset`` is LAG's ``k`` (``1 <= k < buffer_rows``), ignored otherwise.

    >>> import numpy as np
    >>> w = RowsWindow(2, [("SUM", 0, 0), ("LAG", 0, 1), ("ROW_NUMBER", -1, 0)], [np.int64])
    >>> slots = np.array([0, 1, 0, 0], dtype=np.int32)
    >>> x = np.array([1, 10, 2, 3], dtype=np.int64)
    >>> (s, sv), (lag, lv), (rn, _) = w.process(slots, [(x, None)])
    >>> s.tolist(), lag.tolist(), lv.tolist(), rn.tolist()
    ([1, 10, 3, 5], [0, 0, 1, 2], [False, False, True, True], [1, 1, 2, 3])
    """

    def __init__(self, int buffer_rows, list functions, list arg_dtypes):
        cdef int kind, arg, offset
        cdef _Ring ring
        if buffer_rows < 1:
            raise ValueError(f"ROWS WINDOW BUFFER must be at least 1 row, got {buffer_rows}")
        self.buffer_rows = buffer_rows
        self.capacity = 0
        self.arg_dtypes = []
        for d in arg_dtypes:
            d = np.dtype(d)
            if d != _INT64 and d != _FLOAT64:
                raise TypeError(f"ROWS window arguments must be int64 or float64, got {d}")
            self.arg_dtypes.append(d)
        self.kinds = []
        self.arg_of = []
        self.offsets = []
        self.rings = [None] * len(self.arg_dtypes)
        self.states = []
        for i, spec in enumerate(functions):
            name, arg, offset = spec
            key = str(name).upper()
            if key not in _KINDS:
                raise ValueError(f"unsupported ROWS window function {name!r}")
            kind = _KINDS[key]
            if kind in _NO_ARG:
                arg = -1
            elif not 0 <= arg < len(self.arg_dtypes):
                raise ValueError(f"{key}: argument index {arg} out of range")
            if kind == K_LAG:
                if not 1 <= offset < buffer_rows:
                    raise ValueError(
                        f"LAG offset must satisfy 1 <= k < buffer size {buffer_rows}, got {offset}")
            else:
                offset = 0
            self.kinds.append(kind)
            self.arg_of.append(arg)
            self.offsets.append(offset)
            is_float = arg >= 0 and self.arg_dtypes[arg] == _FLOAT64
            if kind in _EVICTING or kind == K_LAG or kind == K_FIRST_VALUE:
                ring = self.rings[arg]
                if ring is None:
                    ring = _Ring(is_float)
                    self.rings[arg] = ring
                if kind in _EVICTING:
                    ring.need_evicted = True
                else:
                    ring.reads.append(i)
            if kind in _EVICTING or kind == K_MIN or kind == K_MAX:
                self.states.append(_FuncState(kind, is_float))
            else:
                self.states.append(None)

    def result_dtypes(self):
        """The dtype of each function's values, in order."""
        out = []
        for kind, arg in zip(self.kinds, self.arg_of):
            if kind in (K_COUNT, K_COUNT_STAR, K_ROW_NUMBER):
                out.append(_INT64)
            elif kind == K_AVG or kind in _VARIANCE:
                out.append(_FLOAT64)
            else:
                out.append(self.arg_dtypes[arg])
        return out

    cdef int _grow(self, int64_t n_slots) except -1:
        cdef int64_t cap
        if n_slots <= self.capacity:
            return 0
        cap = max(n_slots, 2 * self.capacity)
        self.slot_rows.resize(cap)
        self.slot_pos.resize(cap)
        for ring in self.rings:
            if ring is not None:
                (<_Ring>ring).grow(cap, self.buffer_rows)
        for st in self.states:
            if st is not None:
                (<_FuncState>st).grow(cap, self.buffer_rows)
        self.capacity = cap
        return 0

    def process(self, slots, list args):
        """Push one batch; return one ``(values, valid)`` pair per function, in order.

        ``slots``: contiguous int32 array, the partition slot of each row (>= 0).
        ``args``: one ``(values, valid)`` per argument column: contiguous int64/float64 values
        and a uint8/bool validity array or None (all valid). Inputs may be read-only.
        """
        cdef const int32_t[::1] sl = slots
        cdef Py_ssize_t nrows = sl.shape[0]
        cdef int64_t n = self.buffer_rows, lo, hi
        cdef int kind, a
        cdef _Ring ring
        cdef _FuncState st
        if len(args) != len(self.arg_dtypes):
            raise ValueError(f"expected {len(self.arg_dtypes)} argument columns, got {len(args)}")
        values = []
        valids = []
        ones = None
        for i, item in enumerate(args):
            v, m = item
            v = np.asarray(v)
            if v.dtype != self.arg_dtypes[i]:
                raise TypeError(f"argument {i}: expected {self.arg_dtypes[i]}, got {v.dtype}")
            if v.ndim != 1 or v.shape[0] != nrows or not v.flags.c_contiguous:
                raise ValueError(f"argument {i}: expected a contiguous array of {nrows} values")
            if m is None:
                if ones is None:
                    if self.ones_buf is None or self.ones_buf.shape[0] < nrows:
                        self.ones_buf = np.ones(max(nrows, 1024), dtype=np.uint8)
                    ones = self.ones_buf[:nrows]
                m = ones
            else:
                m = np.asarray(m)
                if m.dtype == np.bool_:
                    m = m.view(np.uint8)
                elif m.dtype != np.uint8:
                    raise TypeError(f"argument {i}: validity must be bool or uint8, got {m.dtype}")
                if m.ndim != 1 or m.shape[0] != nrows or not m.flags.c_contiguous:
                    raise ValueError(f"argument {i}: expected a contiguous validity mask of {nrows}")
            values.append(v)
            valids.append(m)

        _slot_range(sl, &lo, &hi)
        if lo < 0:
            raise ValueError(f"partition slots must be >= 0, got {lo}")
        self._grow(hi + 1)

        # Everything is validated: from here on state changes.
        self.seq_buf = _scratch(self.seq_buf, nrows, _INT64)
        self.pos_buf = _scratch(self.pos_buf, nrows, np.int32)
        row_seq = self.seq_buf[:nrows]
        row_pos = self.pos_buf[:nrows]
        _advance(sl, n, self.slot_rows.data(), self.slot_pos.data(), row_seq, row_pos)

        results = [None] * len(self.kinds)
        evicted = [None] * len(self.arg_dtypes)
        for a in range(len(self.arg_dtypes)):
            if self.rings[a] is None:
                continue
            ring = self.rings[a]
            dt = self.arg_dtypes[a]
            if ring.need_evicted:
                ring.ev_buf = _scratch(ring.ev_buf, nrows, dt)
                ring.evv_buf = _scratch(ring.evv_buf, nrows, np.uint8)
                ev = ring.ev_buf[:nrows]
                evv = ring.evv_buf[:nrows]
                evicted[a] = (ev, evv)
            else:
                ev = np.empty(0, dtype=dt)
                evv = np.empty(0, dtype=np.uint8)
            read_k = np.array([self.offsets[i] for i in ring.reads], dtype=np.int64)
            rd = np.empty((len(ring.reads), nrows), dtype=dt)
            rdv = np.empty((len(ring.reads), nrows), dtype=np.uint8)
            if ring.is_float:
                _push_ring[double](sl, row_seq, row_pos, n, values[a], valids[a],
                                   ring.fvalues.data(), ring.valid.data(),
                                   ring.need_evicted, ev, evv, read_k, rd, rdv)
            else:
                _push_ring[int64_t](sl, row_seq, row_pos, n, values[a], valids[a],
                                    ring.ivalues.data(), ring.valid.data(),
                                    ring.need_evicted, ev, evv, read_k, rd, rdv)
            for j, i in enumerate(ring.reads):
                results[i] = (rd[j], _bool_view(rdv[j]))

        for i in range(len(self.kinds)):
            kind = self.kinds[i]
            a = self.arg_of[i]
            if kind == K_LAG or kind == K_FIRST_VALUE:
                continue
            if kind == K_ROW_NUMBER or kind == K_COUNT_STAR:
                out = np.empty(nrows, dtype=np.int64)
                _row_number_pass(n, kind == K_COUNT_STAR, row_seq, out)
                results[i] = (out, np.ones(nrows, dtype=np.bool_))
                continue
            if kind == K_LAST_VALUE:
                results[i] = (values[a].copy(), valids[a].astype(np.bool_))
                continue
            st = self.states[i]
            dt = self.arg_dtypes[a]
            outv = np.empty(nrows, dtype=np.uint8)
            if kind == K_COUNT:
                ev, evv = evicted[a]
                out = np.empty(nrows, dtype=np.int64)
                _count_pass(sl, valids[a], evv, st.sums.data(), out)
                results[i] = (out, np.ones(nrows, dtype=np.bool_))
                continue
            if kind == K_SUM or kind == K_AVG:
                ev, evv = evicted[a]
                out = np.empty(nrows, dtype=dt if kind == K_SUM else _FLOAT64)
                # The unused output gets a zero-length stand-in of the right type.
                if st.is_float:
                    _sum_pass[double](kind, sl, values[a], valids[a], ev, evv, st.sums.data(),
                                      out if kind == K_SUM else np.empty(0, _FLOAT64),
                                      out if kind == K_AVG else np.empty(0, _FLOAT64), outv)
                else:
                    if _sum_pass[int64_t](kind, sl, values[a], valids[a], ev, evv, st.sums.data(),
                                          out if kind == K_SUM else np.empty(0, _INT64),
                                          out if kind == K_AVG else np.empty(0, _FLOAT64), outv):
                        raise OutOfRangeError("Out of Range Error: Overflow in SUM of INT64 (the "
                                              "exact total of a ROWS window does not fit in INT64)")
            elif kind in _VARIANCE:
                ev, evv = evicted[a]
                out = np.empty(nrows, dtype=_FLOAT64)
                ddof = 0 if kind == K_STDDEV_POP or kind == K_VAR_POP else 1
                take_sqrt = kind == K_STDDEV or kind == K_STDDEV_POP
                if st.is_float:
                    _var_pass[double](ddof, take_sqrt, n, sl, row_pos, values[a], valids[a],
                                      ev, evv, st.vars.data(), st.var_blk.data(),
                                      st.var_blk_ok.data(), out, outv)
                else:
                    _var_pass[int64_t](ddof, take_sqrt, n, sl, row_pos, values[a], valids[a],
                                       ev, evv, st.vars.data(), st.var_blk.data(),
                                       st.var_blk_ok.data(), out, outv)
            else:  # MIN / MAX
                out = np.empty(nrows, dtype=dt)
                if st.is_float:
                    _minmax_pass[double](kind == K_MIN, n, sl, row_seq, row_pos, values[a],
                                         valids[a], NAN if kind == K_MIN else -INFINITY,
                                         st.mm_fblk.data(), st.mm_fprefix.data(),
                                         st.mm_last_valid.data(), out, outv)
                else:
                    _minmax_pass[int64_t](kind == K_MIN, n, sl, row_seq, row_pos, values[a],
                                          valids[a], INT64_MAX if kind == K_MIN else INT64_MIN,
                                          st.mm_iblk.data(), st.mm_iprefix.data(),
                                          st.mm_last_valid.data(), out, outv)
            results[i] = (out, _bool_view(outv))
        return results

    # -- durable state -----------------------------------------------------------------------

    def export_state(self, slots):
        """State of partition ``slots`` as numpy arrays (``import_state`` takes them back).

        ``rows`` (int64): rows seen per slot. Per argument ``a`` with a history:
        ``arg<a>_values`` (its dtype) and ``arg<a>_valid`` (uint8, 0 for NULL, whose value is
        0), the slot's last ``min(rows, n)`` values oldest first, cut by ``arg<a>_offsets``
        (int64, one more than slots). Per function ``i`` with running state, ``f<i>.`` then:
        SUM/AVG/COUNT ``nobs``, plus ``isum`` and ``ihi`` (int64 argument: the exact sum's low and high words) or ``fsum``, ``fcomp`` (the
        Neumaier pair), ``n_nan``, ``n_posinf``, ``n_neginf`` (float64 argument), except COUNT;
        variance family ``nobs``, ``n_nonfinite``, ``mean``, ``ssqdm``, ``n_same``, ``prev``
        (its block of values is the argument's history); MIN/MAX ``block_values`` (per slot
        the van Herk / Gil-Werman block's first ``min(rows, n)`` entries, cut by
        ``block_offsets``: the rest hold the neutral element), ``prefix`` and
        ``last_valid``. Floats are exported bit for bit, so results continue exactly.
        """
        cdef int64_t n = self.buffer_rows
        sl = _slot_array(slots)
        k = sl.shape[0]
        if k:
            self._grow(int(sl.max()) + 1)
        rows = _vec_view(self.slot_rows.data(), self.capacity, _INT64)[sl]
        out = {"rows": rows}
        m = np.minimum(rows, n)
        off = np.zeros(k + 1, np.int64)
        np.cumsum(m, out=off[1:])
        idx, pos = _history_index(sl, rows, m, off, n)
        cdef _Ring ring
        cdef _FuncState st
        for a, r in enumerate(self.rings):
            if r is None:
                continue
            ring = r
            out[f"arg{a}_values"] = self._ring_values(ring)[idx]
            out[f"arg{a}_valid"] = _vec_view(ring.valid.data(), ring.valid.size(), np.uint8)[idx]
            out[f"arg{a}_offsets"] = off.copy()
        for i, f in enumerate(self.states):
            if f is None:
                continue
            st = f
            p = f"f{i}."
            if st.kind in (K_SUM, K_AVG, K_COUNT):
                acc = _vec_view(st.sums.data(), st.sums.size() * 8, _INT64).reshape(-1, 8)[sl]
                out[p + "nobs"] = acc[:, 0].copy()
                if st.kind != K_COUNT:
                    if st.is_float:
                        out[p + "fsum"] = acc[:, 2].copy().view(_FLOAT64)
                        out[p + "fcomp"] = acc[:, 3].copy().view(_FLOAT64)
                        out[p + "n_nan"] = acc[:, 4].copy()
                        out[p + "n_posinf"] = acc[:, 5].copy()
                        out[p + "n_neginf"] = acc[:, 6].copy()
                    else:
                        out[p + "isum"] = acc[:, 1].copy()
                        out[p + "ihi"] = acc[:, 7].copy()
            elif st.kind in _VARIANCE:
                acc = _vec_view(st.vars.data(), st.vars.size() * 6, _INT64).reshape(-1, 6)[sl]
                for c, name in enumerate(_VAR_FIELDS):
                    col = acc[:, c].copy()
                    out[p + name] = col.view(_FLOAT64) if name in _VAR_FLOATS else col
            else:  # MIN / MAX
                blk, prefix = _minmax_views(st)
                out[p + "block_values"] = blk[_block_index(sl, m, off, n)]
                out[p + "block_offsets"] = off.copy()
                out[p + "prefix"] = prefix[sl]
                out[p + "last_valid"] = _vec_view(st.mm_last_valid.data(), st.mm_last_valid.size(),
                                                  _INT64)[sl]
        return out

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays (same buffer size and functions) into ``slots``,
        replacing whatever those slots held; processing then continues exactly as it would
        have in the exporting window. Slots must be distinct."""
        cdef int64_t n = self.buffer_rows
        cdef _Ring ring
        cdef _FuncState st
        sl = _slot_array(slots)
        k = sl.shape[0]
        if k and len(np.unique(sl)) != k:
            raise ValueError("import_state: slots must be distinct")
        rows = _state_array(arrays, "rows", _INT64, k)
        if k and rows.min() < 0:
            raise ValueError("import_state: negative row count")
        m = np.minimum(rows, n)
        off = np.zeros(k + 1, np.int64)
        np.cumsum(m, out=off[1:])
        idx, pos = _history_index(sl, rows, m, off, n)
        total = int(off[k])
        # Read and check everything before any state changes.
        hist = {}
        for a, r in enumerate(self.rings):
            if r is None:
                continue
            got = _state_array(arrays, f"arg{a}_offsets", _INT64, k + 1)
            if not np.array_equal(got, off):
                raise ValueError(f"import_state: arg{a}_offsets do not match the row counts and "
                                 f"buffer size {n}")
            hist[a] = (_state_array(arrays, f"arg{a}_values", self.arg_dtypes[a], total),
                       _state_array(arrays, f"arg{a}_valid", np.uint8, total))
        fields = []
        for i, f in enumerate(self.states):
            if f is None:
                fields.append(None)
                continue
            st = f
            p = f"f{i}."
            d = {}
            if st.kind in (K_SUM, K_AVG, K_COUNT):
                d["nobs"] = _state_array(arrays, p + "nobs", _INT64, k)
                if st.kind != K_COUNT:
                    if st.is_float:
                        for name in ("fsum", "fcomp"):
                            d[name] = _state_array(arrays, p + name, _FLOAT64, k)
                        for name in ("n_nan", "n_posinf", "n_neginf"):
                            d[name] = _state_array(arrays, p + name, _INT64, k)
                    else:
                        d["isum"] = _state_array(arrays, p + "isum", _INT64, k)
                        try:
                            d["ihi"] = _state_array(arrays, p + "ihi", _INT64, k)
                        except KeyError:  # a snapshot from before the 128-bit sum
                            d["ihi"] = (d["isum"] < 0).astype(_INT64) * -1
            elif st.kind in _VARIANCE:
                for name in _VAR_FIELDS:
                    d[name] = _state_array(arrays, p + name,
                                           _FLOAT64 if name in _VAR_FLOATS else _INT64, k)
            else:
                dt = self.arg_dtypes[self.arg_of[i]]
                got = _state_array(arrays, p + "block_offsets", _INT64, k + 1)
                if not np.array_equal(got, off):
                    raise ValueError(f"import_state: {p}block_offsets do not match the row "
                                     f"counts and buffer size {n}")
                d["block"] = _state_array(arrays, p + "block_values", dt, total)
                d["prefix"] = _state_array(arrays, p + "prefix", dt, k)
                d["last_valid"] = _state_array(arrays, p + "last_valid", _INT64, k)
            fields.append(d)

        if k == 0:
            return
        self._grow(int(sl.max()) + 1)
        _vec_view(self.slot_rows.data(), self.capacity, _INT64)[sl] = rows
        _vec_view(self.slot_pos.data(), self.capacity, np.int32)[sl] = (rows % n).astype(np.int32)
        cur = pos < (rows % n)[np.repeat(np.arange(k), m)]   # entries of the current block
        for a, r in enumerate(self.rings):
            if r is None:
                continue
            ring = r
            vals = self._ring_values(ring)
            valid = _vec_view(ring.valid.data(), ring.valid.size(), np.uint8)
            vals.reshape(-1, n)[sl] = 0
            valid.reshape(-1, n)[sl] = 0
            vals[idx] = np.where(hist[a][1] != 0, hist[a][0], 0)
            valid[idx] = hist[a][1] != 0
        for i, f in enumerate(self.states):
            if f is None:
                continue
            st = f
            d = fields[i]
            if st.kind in (K_SUM, K_AVG, K_COUNT):
                acc = _vec_view(st.sums.data(), st.sums.size() * 8, _INT64).reshape(-1, 8)
                acc[sl] = 0
                acc[sl, 0] = d["nobs"]
                if "isum" in d:
                    acc[sl, 1] = d["isum"]
                    acc[sl, 7] = d["ihi"]
                if "fsum" in d:
                    acc[sl, 2] = d["fsum"].view(_INT64)
                    acc[sl, 3] = d["fcomp"].view(_INT64)
                    acc[sl, 4] = d["n_nan"]
                    acc[sl, 5] = d["n_posinf"]
                    acc[sl, 6] = d["n_neginf"]
            elif st.kind in _VARIANCE:
                acc = _vec_view(st.vars.data(), st.vars.size() * 6, _INT64).reshape(-1, 6)
                for c, name in enumerate(_VAR_FIELDS):
                    acc[sl, c] = d[name].view(_INT64)
                # The block of values the kernel recomputes from: the current block's part of
                # the history (later positions are rewritten before they are read).
                a = self.arg_of[i]
                blk = _vec_view(st.var_blk.data(), st.var_blk.size(), _FLOAT64)
                blk_ok = _vec_view(st.var_blk_ok.data(), st.var_blk_ok.size(), np.uint8)
                blk.reshape(-1, n)[sl] = 0.0
                blk_ok.reshape(-1, n)[sl] = 0
                blk[idx[cur]] = hist[a][0][cur].astype(_FLOAT64)
                blk_ok[idx[cur]] = hist[a][1][cur] != 0
            else:
                blk, prefix = _minmax_views(st)
                if st.kind == K_MIN:
                    blk.reshape(-1, n)[sl] = np.nan if st.is_float else INT64_MAX
                else:
                    blk.reshape(-1, n)[sl] = -np.inf if st.is_float else INT64_MIN
                blk[_block_index(sl, m, off, n)] = d["block"]
                prefix[sl] = d["prefix"]
                _vec_view(st.mm_last_valid.data(), st.mm_last_valid.size(), _INT64)[sl] = \
                    d["last_valid"]

    cdef object _ring_values(self, _Ring ring):
        if ring.is_float:
            return _vec_view(ring.fvalues.data(), ring.fvalues.size(), _FLOAT64)
        return _vec_view(ring.ivalues.data(), ring.ivalues.size(), _INT64)


_VAR_FIELDS = ("nobs", "n_nonfinite", "mean", "ssqdm", "n_same", "prev")
_VAR_FLOATS = frozenset(["mean", "ssqdm", "prev"])
assert sizeof(SumAcc) == 8 * 8 and sizeof(VarAcc) == 6 * 8


cdef object _vec_view(void* data, Py_ssize_t count, object dtype):
    """A numpy array over ``count`` items of ``dtype`` at ``data`` (a C++ vector's storage: valid
    until the vector is resized), without copying."""
    dt = np.dtype(dtype)
    if count == 0:
        return np.empty(0, dt)
    return np.asarray(<uint8_t[:count * dt.itemsize]> <uint8_t*>data).view(dt)


cdef tuple _minmax_views(_FuncState st):
    """A MIN/MAX function's van Herk / Gil-Werman blocks and prefixes, as numpy views."""
    if st.is_float:
        return (_vec_view(st.mm_fblk.data(), st.mm_fblk.size(), _FLOAT64),
                _vec_view(st.mm_fprefix.data(), st.mm_fprefix.size(), _FLOAT64))
    return (_vec_view(st.mm_iblk.data(), st.mm_iblk.size(), _INT64),
            _vec_view(st.mm_iprefix.data(), st.mm_iprefix.size(), _INT64))


cdef object _slot_array(object slots):
    sl = np.ascontiguousarray(slots, dtype=np.int32)
    if sl.ndim != 1:
        raise ValueError("slots must be one-dimensional")
    if sl.shape[0] and sl.min() < 0:
        raise ValueError("slots must be >= 0")
    return sl.astype(np.int64)


cdef tuple _history_index(object sl, object rows, object m, object off, int64_t n):
    """(ring index, ring position) of every buffered value of ``slots``, oldest first: the
    slot's last ``m = min(rows, n)`` rows, row ``q`` being at position ``q % n``."""
    k = sl.shape[0]
    owner = np.repeat(np.arange(k), m)
    j = np.arange(int(off[k]), dtype=np.int64) - off[owner]
    pos = (rows[owner] - m[owner] + j) % n
    return sl[owner] * n + pos, pos


cdef object _block_index(object sl, object m, object off, int64_t n):
    """Index of the first ``m = min(rows, n)`` entries of each slot's MIN/MAX block (the rest
    still hold the neutral element while a slot has seen fewer than n rows)."""
    k = sl.shape[0]
    owner = np.repeat(np.arange(k), m)
    return sl[owner] * n + (np.arange(int(off[k]), dtype=np.int64) - off[owner])


