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
                self.mm_iblk.resize(n_slots * n, _mm_identity(self.kind, self.is_text))
                self.mm_iprefix.resize(n_slots)
            self.mm_last_valid.resize(n_slots, -n - 1)
        return 0


cdef inline int64_t _mm_identity(int kind, bint is_text) noexcept:
    # the neutral element of a MIN/MAX over int64 values or string codes
    if is_text:
        return -1
    return INT64_MAX if kind == K_MIN else INT64_MIN


cdef inline int64_t _text_pick(bint is_min, int64_t a, int64_t b, const int32_t* off,
                               const char* data) noexcept nogil:
    # MIN/MAX of two string codes by their bytes; -1 (no value) is neutral
    if a < 0:
        return b
    if b < 0:
        return a
    if is_min:
        return b if _text_cmp(off, data, b, a) < 0 else a
    return b if _text_cmp(off, data, b, a) > 0 else a


cdef void _minmax_pass_text(bint is_min, int64_t n,
                            const int32_t[::1] slots, const int64_t[::1] row_seq,
                            const int32_t[::1] row_pos, const int64_t[::1] x,
                            const uint8_t[::1] xv, int64_t* blk, int64_t* prefix,
                            int64_t* last_valid, int64_t[::1] out, uint8_t[::1] outv,
                            const int32_t* toff, const char* tdata) noexcept:
    # _minmax_pass over string codes (van Herk / Gil-Werman blocks, see there), comparing the
    # strings; NULL rows contribute the neutral code -1
    cdef Py_ssize_t r
    cdef int64_t q, base, i, j, v, p, res
    cdef int32_t s
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
                v = -1
            p = v if i == 0 else _text_pick(is_min, prefix[s], v, toff, tdata)
            prefix[s] = p
            blk[base + i] = v
            if i + 1 < n:
                res = _text_pick(is_min, p, blk[base + i + 1], toff, tdata)
            else:
                res = p
                j = n - 2
                while j >= 0:
                    blk[base + j] = _text_pick(is_min, blk[base + j], blk[base + j + 1], toff, tdata)
                    j -= 1
            if last_valid[s] > q - n and res >= 0:
                out[r] = res
                outv[r] = 1
            else:
                out[r] = 0
                outv[r] = 0


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

    def __init__(self, int buffer_rows, list functions, list arg_dtypes, arg_text=None,
                 strings=None):
        # arg_text: per argument, True for string codes of ``strings`` (MIN/MAX compare them
        # by their bytes, docs/SQL.md §6)
        cdef int kind, arg, offset
        cdef _Ring ring
        cdef _FuncState fst
        self.arg_text = [bool(t) for t in (arg_text or [False] * len(arg_dtypes))]
        if any(self.arg_text) and strings is None:
            raise TypeError("text arguments need the job's string dictionary")
        self.strings = strings
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
                fst = _FuncState(kind, is_float)
                fst.is_text = arg >= 0 and self.arg_text[arg] and kind in (K_MIN, K_MAX)
                self.states.append(fst)
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
                elif st.is_text:
                    self._text_minmax(kind == K_MIN, n, sl, row_seq, row_pos, values[a],
                                      valids[a], st, out, outv)
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
                if st.is_float:
                    blk.reshape(-1, n)[sl] = np.nan if st.kind == K_MIN else -np.inf
                else:
                    blk.reshape(-1, n)[sl] = _mm_identity(st.kind, st.is_text)
                blk[_block_index(sl, m, off, n)] = d["block"]
                prefix[sl] = d["prefix"]
                _vec_view(st.mm_last_valid.data(), st.mm_last_valid.size(), _INT64)[sl] = \
                    d["last_valid"]

    def _text_minmax(self, bint is_min, int64_t n, sl, row_seq, row_pos, x, xv,
                     _FuncState st, out, outv):
        # pa.string() (int32 offsets) over the dictionary's own buffers; the dictionary only
        # grows, so every code the state holds is in this view
        view = self.strings.arrow_values()
        if str(view.type) != "string" or view.offset != 0:
            raise TypeError(f"string dictionary view must be an unsliced pa.string() array, "
                            f"got {view.type}")
        bufs = view.buffers()
        cdef const int32_t* toff = <const int32_t*><size_t>bufs[1].address
        cdef const char* tdata = (<const char*><size_t>bufs[2].address
                                  if bufs[2] is not None else NULL)
        _minmax_pass_text(is_min, n, sl, row_seq, row_pos, x, xv, st.mm_iblk.data(),
                          st.mm_iprefix.data(), st.mm_last_valid.data(), out, outv, toff, tdata)

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




# =============================================================================================
# The standard frames without a row buffer (docs/SQL.md §6)

from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memmove

cdef enum:
    K_RANK = 14
    K_DENSE_RANK = 15

_FRAME_KINDS = dict(_KINDS, RANK=K_RANK, DENSE_RANK=K_DENSE_RANK)
_FRAME_ORDERED = frozenset([K_RANK, K_DENSE_RANK])
_FRAME_SLOT_FIELDS = ("rows", "newest", "last_rank", "dense", "popped")


cdef inline double _d(int64_t bits) noexcept nogil:
    cdef double v
    memcpy(&v, &bits, 8)
    return v


cdef inline int64_t _bits(double v) noexcept nogil:
    cdef int64_t b
    memcpy(&b, &v, 8)
    return b


cdef inline int _text_cmp(const int32_t* off, const char* data, int64_t a, int64_t b) noexcept nogil:
    # <0, 0, >0 as string a sorts before, with, after string b: bytes, then length (a prefix
    # first), which for UTF-8 is code point order, DuckDB's (as aggregate.pyx's text MIN/MAX)
    cdef int32_t la, lb, m
    cdef int c
    if a == b:  # the dictionary interns: equal codes are the only equal strings
        return 0
    la = off[a + 1] - off[a]
    lb = off[b + 1] - off[b]
    m = la if la < lb else lb
    c = memcmp(data + off[a], data + off[b], <size_t>m) if m > 0 else 0
    if c != 0:
        return c
    return (la > lb) - (la < lb)


cdef inline bint _lt(int mode, int64_t a, int64_t b, const int32_t* off,
                     const char* data) noexcept nogil:
    # a sorts before b: integers, floats with NaN above everything (DuckDB), or strings by bytes
    cdef double da, db
    if mode == 0:
        return a < b
    if mode == 1:
        da = _d(a)
        db = _d(b)
        return da < db or (db != db and da == da)
    return _text_cmp(off, data, a, b) < 0


# -- Ring64 ------------------------------------------------------------------------------------

cdef inline int64_t* _rec(Ring64* g, int stride, int64_t i) noexcept nogil:
    cdef int64_t j = g.head + i
    if j >= g.cap:
        j -= g.cap
    return g.data + j * stride


# Set when a RANGE frame's buffer could not grow inside a nogil loop: the loop's caller raises
# MemoryError once it holds the GIL again (the kernels never touch Python in their loops).
cdef int _out_of_memory = 0


cdef int _reserve(Ring64* g, int stride, int64_t cap) noexcept nogil:
    # a fresh buffer of ``cap`` records holding the current ones from position 0; -1 (and
    # _out_of_memory) when it cannot be had
    global _out_of_memory
    cdef int64_t* new = <int64_t*>malloc(<size_t>(cap * stride * 8))
    cdef int64_t i
    if new == NULL:
        _out_of_memory = 1
        return -1
    for i in range(g.count):
        memcpy(new + i * stride, _rec(g, stride, i), <size_t>(stride * 8))
    free(g.data)
    g.data = new
    g.cap = cap
    g.head = 0
    return 0


cdef inline int _push_back(Ring64* g, int stride, const int64_t* rec) noexcept nogil:
    if g.count == g.cap and _reserve(g, stride, 4 if g.cap < 2 else 2 * g.cap) < 0:
        return -1
    memcpy(_rec(g, stride, g.count), rec, <size_t>(stride * 8))
    g.count += 1
    return 0


cdef inline void _pop_front(Ring64* g) noexcept nogil:
    g.head += 1
    if g.head == g.cap:
        g.head = 0
    g.count -= 1


cdef int _insert(Ring64* g, int stride, int64_t pos, const int64_t* rec) noexcept nogil:
    # O(count): only late rows insert (docs/SQL.md §6). A full or wrapped ring is copied out
    # to a linear one sized by what it holds (never by its old size: repeated late rows must
    # not keep doubling it)
    if (g.count == g.cap or g.head + g.count >= g.cap) and \
            _reserve(g, stride, max(4, 2 * (g.count + 1))) < 0:
        return -1
    memmove(g.data + (g.head + pos + 1) * stride, g.data + (g.head + pos) * stride,
            <size_t>((g.count - pos) * stride * 8))
    memcpy(g.data + (g.head + pos) * stride, rec, <size_t>(stride * 8))
    g.count += 1
    return 0


cdef inline int64_t _upper_bound(Ring64* g, int stride, int64_t t) noexcept nogil:
    # the first record whose time (word 0) is greater than t
    cdef int64_t lo = 0, hi = g.count, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _rec(g, stride, mid)[0] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


# -- per-function answers ------------------------------------------------------------------------

cdef inline bint _sum_out(int kind, bint is_float, const SumAcc* a, int64_t* out,
                          int* overflow) noexcept nogil:
    if a.nobs == 0:
        out[0] = 0
        return 0
    if is_float:
        out[0] = _bits(fsum_value(a) if kind == K_SUM else fsum_value(a) / a.nobs)
    elif kind == K_SUM:
        if a.ihi != (-1 if a.isum < 0 else 0):
            overflow[0] = 1
            out[0] = 0
        else:
            out[0] = a.isum
    elif a.ihi == (-1 if a.isum < 0 else 0):
        out[0] = _bits(<double>a.isum / a.nobs)
    else:
        out[0] = _bits((<double>a.ihi * 18446744073709551616.0 + <double>(<uint64_t>a.isum))
                       / a.nobs)
    return 1


cdef inline bint _var_out(int kind, const VarAcc* a, int64_t* out) noexcept nogil:
    cdef int ddof = 0 if kind == K_STDDEV_POP or kind == K_VAR_POP else 1
    cdef double v
    if a.nobs + a.n_nonfinite <= ddof:
        out[0] = 0
        return 0
    if a.nobs + a.n_nonfinite == 1:
        v = 0.0  # DuckDB: the population variance of one value is 0, even of NaN or inf
    elif a.n_nonfinite:
        v = NAN
    elif a.n_same >= a.nobs:
        v = 0.0
    else:
        v = a.ssqdm / (a.nobs - ddof)
        if v < 0.0:
            v = 0.0
    out[0] = _bits(sqrt(v) if kind == K_STDDEV or kind == K_STDDEV_POP else v)
    return 1


cdef inline void _acc_add(int kind, bint is_float, SumAcc* s, VarAcc* w, int64_t x) noexcept nogil:
    if kind == K_COUNT:
        s.nobs += 1
    elif kind == K_SUM or kind == K_AVG:
        if is_float:
            add_sum(s, _d(x))
        else:
            add_sum(s, x)
    else:
        add_var(w, _d(x) if is_float else <double>x)


cdef inline void _acc_remove(int kind, bint is_float, SumAcc* s, VarAcc* w,
                             int64_t x) noexcept nogil:
    if kind == K_COUNT:
        s.nobs -= 1
    elif kind == K_SUM or kind == K_AVG:
        if is_float:
            remove_sum(s, _d(x))
        else:
            remove_sum(s, x)
    else:
        remove_var(w, _d(x) if is_float else <double>x)


cdef inline bint _is_acc(int kind) noexcept nogil:
    return (kind == K_SUM or kind == K_AVG or kind == K_COUNT or kind == K_STDDEV
            or kind == K_STDDEV_POP or kind == K_VARIANCE or kind == K_VAR_POP)


cdef inline bint _is_var(int kind) noexcept nogil:
    return (kind == K_STDDEV or kind == K_STDDEV_POP or kind == K_VARIANCE or kind == K_VAR_POP)


cdef class FrameWindow:
    """State and kernels of one OVER spec with a frame that keeps no row buffer
    (docs/SQL.md §6), and all the functions computed over it.

    ``frame`` is ``"UNBOUNDED"`` (running state per slot: the frame is every row of the slot so
    far) or ``"RANGE"`` (the slot's rows whose ORDER BY time lies in ``[t - range_ms, t]``;
    rows are freed once older than the slot's newest time minus ``range_ms``). ``functions``
    as ``RowsWindow``'s, plus ``RANK`` and ``DENSE_RANK``; ``LAG``'s offset is any k >= 1
    (each slot keeps its last k values). ``arg_kinds``: per argument ``"int64"``,
    ``"float64"`` or ``"text"`` (string codes of ``strings``, compared by their bytes).

    A row whose ORDER BY time is older than its slot's newest (a late row) is answered over the
    rows that arrived before it that are still held and lie in ``[t - range_ms, t]``, itself
    included, and joins the held rows when not older than the newest time minus ``range_ms``.
    RANK needs each slot's rows in ORDER BY order: ``late_rows`` names those that are not.

    >>> import numpy as np
    >>> w = FrameWindow("RANGE", 10, [("SUM", 0, 0), ("COUNT_STAR", -1, 0)], ["int64"])
    >>> slots = np.zeros(4, dtype=np.int32)
    >>> t = np.array([0, 5, 12, 30], dtype=np.int64)
    >>> (s, _), (n, _) = w.process(slots, t, [(np.array([1, 2, 3, 4]), None)])
    >>> s.tolist(), n.tolist()
    ([1, 3, 5, 4], [1, 2, 2, 1])
    """

    def __init__(self, str frame, int64_t range_ms, list functions, list arg_kinds,
                 strings=None):
        if frame not in ("UNBOUNDED", "RANGE"):
            raise ValueError(f"frame must be UNBOUNDED or RANGE, got {frame!r}")
        if range_ms < 0:
            raise ValueError("a RANGE frame's width must not be negative")
        self.is_range = frame == "RANGE"
        self.range_ms = range_ms
        self.capacity = 0
        self.na = len(arg_kinds)
        self.stride = 1 + 2 * self.na
        self.arg_float = [k == "float64" for k in arg_kinds]
        self.arg_text = [k == "text" for k in arg_kinds]
        cdef int mode
        for ak in arg_kinds:
            if ak not in ("int64", "float64", "text"):
                raise TypeError(f"argument kinds are int64, float64 or text, got {ak!r}")
            mode = 0
            if ak == "float64":
                mode = 1
            elif ak == "text":
                mode = 2
            self.cmode.push_back(mode)
        if any(self.arg_text) and strings is None:
            raise TypeError("text arguments need the job's string dictionary")
        self.strings = strings
        self.kinds, self.arg_of, self.offsets = [], [], []
        self.has_rank = False
        lag_k = [0] * self.na
        for name, arg, offset in functions:
            key = str(name).upper()
            if key not in _FRAME_KINDS:
                raise ValueError(f"unsupported window function {name!r}")
            kind = _FRAME_KINDS[key]
            if kind in _NO_ARG or kind in _FRAME_ORDERED:
                arg = -1
            elif not 0 <= arg < self.na:
                raise ValueError(f"{key}: argument index {arg} out of range")
            if kind in _FRAME_ORDERED:
                self.has_rank = True
            if kind == K_LAG:
                if offset < 1:
                    raise ValueError(f"LAG offset must be at least 1, got {offset}")
                lag_k[arg] = max(lag_k[arg], offset)
            else:
                offset = 0
            if self.arg_text[arg] if arg >= 0 else False:
                if kind in (K_SUM, K_AVG) or _is_var(kind):
                    raise TypeError(f"{key} needs a number, found text")
            self.kinds.append(kind)
            self.arg_of.append(arg)
            self.offsets.append(offset)
            self.ckind.push_back(kind)
            self.carg.push_back(arg)
            self.coff.push_back(offset)
        self.nf = len(self.kinds)
        self.lagw = 0
        for a in range(self.na):
            self.lag_k.push_back(lag_k[a])
            self.lag_off.push_back(self.lagw)
            self.lagw += lag_k[a]

    def __dealloc__(self):
        cdef size_t i
        for i in range(self.held.size()):
            free(self.held[i].data)
        for i in range(self.mono.size()):
            free(self.mono[i].data)

    def result_dtypes(self):
        """The dtype of each function's values, in order (string codes as int64)."""
        out = []
        for kind, arg in zip(self.kinds, self.arg_of):
            if kind in (K_COUNT, K_COUNT_STAR, K_ROW_NUMBER, K_RANK, K_DENSE_RANK):
                out.append(_INT64)
            elif kind == K_AVG or kind in _VARIANCE or self.arg_float[arg]:
                out.append(_FLOAT64)
            else:
                out.append(_INT64)
        return out

    cdef int _grow(self, int64_t n_slots) except -1:
        cdef int64_t cap, old = self.capacity
        cdef Ring64 empty
        if n_slots <= old:
            return 0
        cap = max(n_slots, 2 * old)
        empty.data = NULL
        empty.cap = 0
        empty.head = 0
        empty.count = 0
        self.slot_rows.resize(cap)
        self.newest.resize(cap)
        self.last_rank.resize(cap)
        self.dense.resize(cap)
        self.popped.resize(cap)
        if self.is_range:
            self.held.resize(cap, empty)
            self.mono.resize(cap * self.nf, empty)
        self.sums.resize(cap * self.nf)
        self.vars.resize(cap * self.nf)
        self.var_ops.resize(cap * self.nf)
        self.best.resize(cap * self.nf)
        self.best_ok.resize(cap * self.nf)
        self.lag_v.resize(cap * self.lagw)
        self.lag_ok.resize(cap * self.lagw)
        self.capacity = cap
        return 0

    def late_rows(self, slots, times):
        """Which rows' ORDER BY value is older than their slot's newest so far (rows earlier in
        the batch included), without changing any state; None when there are none."""
        cdef const int32_t[::1] sl = np.ascontiguousarray(slots, dtype=np.int32)
        cdef const int64_t[::1] tm = np.ascontiguousarray(times, dtype=np.int64)
        cdef Py_ssize_t r, n = sl.shape[0]
        cdef int32_t s
        if n and np.asarray(sl).max() >= 0:
            self._grow(int(np.asarray(sl).max()) + 1)
        late = np.zeros(n, dtype=np.uint8)
        saved = np.empty(n, dtype=np.int64)
        saved_rows = np.empty(n, dtype=np.int64)
        cdef uint8_t[::1] lt = late
        cdef int64_t[::1] sv = saved
        cdef int64_t[::1] sr = saved_rows
        cdef int64_t* newest = self.newest.data()
        cdef int64_t* rows = self.slot_rows.data()
        cdef bint any_late = False
        with nogil:
            for r in range(n):  # advance a copy of the state, then put it back
                s = sl[r]
                sv[r] = newest[s]
                sr[r] = rows[s]
                if rows[s] and tm[r] < newest[s]:
                    lt[r] = 1
                    any_late = True
                else:
                    newest[s] = tm[r]
                rows[s] += 1
            for r in range(n - 1, -1, -1):
                s = sl[r]
                newest[s] = sv[r]
                rows[s] = sr[r]
        return late.view(np.bool_) if any_late else None

    def process(self, slots, times, list args):
        """Push one batch; return one ``(values, valid)`` pair per function, in order.

        ``slots``: contiguous int32 partition slot per row. ``times``: int64 ORDER BY value per
        row (RANGE and RANK; never NULL), else None. ``args``: one ``(values, valid)`` per
        argument: int64 (string codes for text) or float64 values, validity or None."""
        cdef const int32_t[::1] sl = np.ascontiguousarray(slots, dtype=np.int32)
        cdef Py_ssize_t nrows = sl.shape[0]
        if len(args) != self.na:
            raise ValueError(f"expected {self.na} argument columns, got {len(args)}")
        if (self.is_range or self.has_rank) and times is None:
            raise ValueError("RANGE frames and RANK need the ORDER BY values")
        tm_arr = (np.ascontiguousarray(times, dtype=np.int64) if times is not None
                  else np.zeros(nrows, dtype=np.int64))
        if tm_arr.shape[0] != nrows:
            raise ValueError(f"expected {nrows} ORDER BY values")
        xs = np.zeros((max(self.na, 1), nrows), dtype=np.int64)
        xv = np.ones((max(self.na, 1), nrows), dtype=np.uint8)
        for a, (v, m) in enumerate(args):
            v = np.asarray(v)
            if v.shape != (nrows,):
                raise ValueError(f"argument {a}: expected {nrows} values")
            if self.arg_float[a]:
                xs[a] = np.asarray(v, dtype=np.float64).view(np.int64)
            else:
                xs[a] = v
            if m is not None:
                xv[a] = np.asarray(m).astype(np.uint8, copy=False)
        if nrows and np.asarray(sl).min() < 0:
            raise ValueError("partition slots must be >= 0")
        if nrows:
            self._grow(int(np.asarray(sl).max()) + 1)
        out = np.zeros((max(self.nf, 1), nrows), dtype=np.int64)
        outv = np.zeros((max(self.nf, 1), nrows), dtype=np.uint8)
        view = None
        cdef const int32_t* toff = NULL
        cdef const char* tdata = NULL
        if any(self.arg_text):
            # pa.string() (int32 offsets) over the dictionary's own buffers; the dictionary only
            # grows, so every code of this batch is in this view
            view = self.strings.arrow_values()
            if str(view.type) != "string" or view.offset != 0:
                raise TypeError(f"string dictionary view must be an unsliced pa.string() array, "
                                f"got {view.type}")
            bufs = view.buffers()
            toff = <const int32_t*><size_t>bufs[1].address
            tdata = <const char*><size_t>bufs[2].address if bufs[2] is not None else NULL
        cdef const int64_t[::1] tm = tm_arr
        cdef const int64_t[:, ::1] X = xs
        cdef const uint8_t[:, ::1] XV = xv
        cdef int64_t[:, ::1] O = out
        cdef uint8_t[:, ::1] OV = outv
        cdef int overflow = 0
        self._run(sl, tm, X, XV, O, OV, toff, tdata, &overflow)
        if overflow:
            raise OutOfRangeError("Out of Range Error: Overflow in SUM of INT64 (the exact total "
                                  "of a window frame does not fit in INT64)")
        results = []
        for i, dt in enumerate(self.result_dtypes()):
            vals = out[i].view(np.float64) if dt == _FLOAT64 else out[i]
            results.append((vals, outv[i].view(np.bool_)))
        return results

    cdef int _run(self, const int32_t[::1] sl, const int64_t[::1] tm,
                  const int64_t[:, ::1] X, const uint8_t[:, ::1] XV,
                  int64_t[:, ::1] O, uint8_t[:, ::1] OV,
                  const int32_t* toff, const char* tdata, int* overflow) except -1:
        cdef Py_ssize_t r, nrows = sl.shape[0]
        cdef int f, a, kind, nf = self.nf, na = self.na, stride = self.stride, mode
        cdef int32_t s
        cdef int64_t q, t, cutoff, i, m, pos, k, K, abs_pos, j, x, d = self.range_ms
        cdef bint in_order, is_min, inserted, ok
        cdef int64_t* rec = <int64_t*>malloc(<size_t>(stride * 8))
        cdef int64_t* fr
        cdef Ring64* h
        cdef Ring64* mq
        cdef SumAcc* sa
        cdef VarAcc* va
        cdef SumAcc tmp_s
        cdef VarAcc tmp_v
        cdef int64_t cur
        cdef bint cur_ok
        cdef bint is_range = self.is_range
        cdef bint track_order = self.is_range or self.has_rank
        cdef int64_t* rows = self.slot_rows.data()
        cdef int64_t* newest = self.newest.data()
        cdef int64_t* last_rank = self.last_rank.data()
        cdef int64_t* dense = self.dense.data()
        cdef int64_t* popped = self.popped.data()
        cdef SumAcc* sums = self.sums.data()
        cdef VarAcc* vars_ = self.vars.data()
        cdef int64_t* var_ops = self.var_ops.data()
        cdef int64_t* best = self.best.data()
        cdef uint8_t* best_ok = self.best_ok.data()
        cdef int64_t* lag_v = self.lag_v.data()
        cdef uint8_t* lag_ok = self.lag_ok.data()
        cdef int64_t lagw = self.lagw
        cdef const int* ckind = self.ckind.data()
        cdef const int* carg = self.carg.data()
        cdef const int64_t* coff = self.coff.data()
        cdef const int* cmode = self.cmode.data()
        cdef const int64_t* lag_k = self.lag_k.data()
        cdef const int64_t* lag_off = self.lag_off.data()
        cdef Ring64* held = self.held.data() if is_range else NULL
        cdef Ring64* mono = self.mono.data() if is_range else NULL
        if rec == NULL:
            raise MemoryError()
        try:
            with nogil:
                for r in range(nrows):
                    s = sl[r]
                    q = rows[s]
                    rows[s] = q + 1
                    t = tm[r]
                    in_order = True
                    if track_order:
                        if q == 0 or t >= newest[s]:
                            if q == 0 or t > newest[s]:
                                last_rank[s] = q + 1
                                dense[s] += 1
                            newest[s] = t
                        else:
                            in_order = False
                    inserted = False
                    m = 0
                    if is_range:
                        h = &held[s]
                        cutoff = newest[s] - d if newest[s] >= INT64_MIN + d else INT64_MIN
                        # free the rows older than the newest time minus d
                        while h.count and _rec(h, stride, 0)[0] < cutoff:
                            fr = _rec(h, stride, 0)
                            for f in range(nf):
                                kind = ckind[f]
                                a = carg[f]
                                if _is_acc(kind) and fr[2 + 2 * a]:
                                    _acc_remove(kind, cmode[a] == 1, &sums[s * nf + f],
                                                &vars_[s * nf + f], fr[1 + 2 * a])
                                    if _is_var(kind):
                                        var_ops[s * nf + f] += 1
                            _pop_front(h)
                            popped[s] += 1
                        if h.count == 0:
                            h.head = 0
                        rec[0] = t
                        for a in range(na):
                            rec[1 + 2 * a] = X[a, r] if XV[a, r] else 0
                            rec[2 + 2 * a] = XV[a, r] != 0
                        if in_order:
                            _push_back(h, stride, rec)
                            inserted = True
                            m = h.count
                        elif t >= cutoff:
                            pos = _upper_bound(h, stride, t)
                            _insert(h, stride, pos, rec)
                            inserted = True
                            m = pos + 1
                        for f in range(nf):
                            kind = ckind[f]
                            a = carg[f]
                            if inserted and _is_acc(kind) and XV[a, r]:
                                _acc_add(kind, cmode[a] == 1, &sums[s * nf + f],
                                         &vars_[s * nf + f], X[a, r])
                            if _is_var(kind) and var_ops[s * nf + f] > h.count + 32:
                                # add/remove drift stays bounded: an exact restart from the
                                # held rows, amortised over as many removals
                                va = &vars_[s * nf + f]
                                memset_var(va)
                                for i in range(h.count):
                                    fr = _rec(h, stride, i)
                                    if fr[2 + 2 * a]:
                                        add_var(va, _d(fr[1 + 2 * a]) if cmode[a] == 1
                                                else <double>fr[1 + 2 * a])
                                var_ops[s * nf + f] = 0
                            if kind == K_MIN or kind == K_MAX:
                                is_min = kind == K_MIN
                                mq = &mono[s * nf + f]
                                mode = cmode[a]
                                if in_order:
                                    while mq.count and mq.data[mq.head] < popped[s]:
                                        _pop_front(mq)
                                    if XV[a, r]:
                                        while mq.count:
                                            x = _rec(h, stride, _rec(mq, 1, mq.count - 1)[0]
                                                     - popped[s])[1 + 2 * a]
                                            if (_lt(mode, X[a, r], x, toff, tdata) if is_min
                                                    else _lt(mode, x, X[a, r], toff, tdata)):
                                                mq.count -= 1
                                            elif x == X[a, r]:
                                                mq.count -= 1
                                            else:
                                                break
                                        abs_pos = popped[s] + h.count - 1
                                        _push_back(mq, 1, &abs_pos)
                                elif inserted:
                                    # a late row moved positions: rebuild from the held rows
                                    mq.count = 0
                                    mq.head = 0
                                    for i in range(h.count):
                                        fr = _rec(h, stride, i)
                                        if not fr[2 + 2 * a]:
                                            continue
                                        while mq.count:
                                            x = _rec(h, stride, _rec(mq, 1, mq.count - 1)[0]
                                                     - popped[s])[1 + 2 * a]
                                            if (_lt(mode, fr[1 + 2 * a], x, toff, tdata) if is_min
                                                    else _lt(mode, x, fr[1 + 2 * a], toff, tdata)):
                                                mq.count -= 1
                                            elif x == fr[1 + 2 * a]:
                                                mq.count -= 1
                                            else:
                                                break
                                        abs_pos = popped[s] + i
                                        _push_back(mq, 1, &abs_pos)
                    # answers
                    for f in range(nf):
                        kind = ckind[f]
                        a = carg[f]
                        if kind == K_ROW_NUMBER:
                            O[f, r] = q + 1
                            OV[f, r] = 1
                        elif kind == K_RANK:
                            O[f, r] = last_rank[s]
                            OV[f, r] = 1
                        elif kind == K_DENSE_RANK:
                            O[f, r] = dense[s]
                            OV[f, r] = 1
                        elif kind == K_LAST_VALUE:
                            O[f, r] = X[a, r] if XV[a, r] else 0
                            OV[f, r] = XV[a, r]
                        elif kind == K_LAG:
                            k = coff[f]
                            K = lag_k[a]
                            if q >= k:
                                j = s * lagw + lag_off[a] + (q - k) % K
                                O[f, r] = lag_v[j]
                                OV[f, r] = lag_ok[j]
                            else:
                                O[f, r] = 0
                                OV[f, r] = 0
                        elif not is_range:
                            # running state over every row of the slot so far
                            if kind == K_COUNT_STAR:
                                O[f, r] = q + 1
                                OV[f, r] = 1
                            elif _is_acc(kind):
                                sa = &sums[s * nf + f]
                                va = &vars_[s * nf + f]
                                if XV[a, r]:
                                    _acc_add(kind, cmode[a] == 1, sa, va, X[a, r])
                                if kind == K_COUNT:
                                    O[f, r] = sa.nobs
                                    OV[f, r] = 1
                                elif _is_var(kind):
                                    OV[f, r] = _var_out(kind, va, &O[f, r])
                                else:
                                    OV[f, r] = _sum_out(kind, cmode[a] == 1, sa, &O[f, r],
                                                        overflow)
                            elif kind == K_FIRST_VALUE:
                                if q == 0:
                                    best[s * nf + f] = X[a, r] if XV[a, r] else 0
                                    best_ok[s * nf + f] = XV[a, r]
                                O[f, r] = best[s * nf + f]
                                OV[f, r] = best_ok[s * nf + f]
                            else:  # MIN / MAX
                                j = s * nf + f
                                if XV[a, r] and (not best_ok[j] or (
                                        _lt(cmode[a], X[a, r], best[j], toff, tdata)
                                        if kind == K_MIN
                                        else _lt(cmode[a], best[j], X[a, r], toff, tdata))):
                                    best[j] = X[a, r]
                                    best_ok[j] = 1
                                O[f, r] = best[j]
                                OV[f, r] = best_ok[j]
                        elif in_order:
                            # RANGE, in order: the held rows are the frame
                            if kind == K_COUNT_STAR:
                                O[f, r] = h.count
                                OV[f, r] = 1
                            elif kind == K_COUNT:
                                O[f, r] = sums[s * nf + f].nobs
                                OV[f, r] = 1
                            elif _is_var(kind):
                                OV[f, r] = _var_out(kind, &vars_[s * nf + f], &O[f, r])
                            elif kind == K_SUM or kind == K_AVG:
                                OV[f, r] = _sum_out(kind, cmode[a] == 1, &sums[s * nf + f],
                                                    &O[f, r], overflow)
                            elif kind == K_FIRST_VALUE:
                                fr = _rec(h, stride, 0)
                                O[f, r] = fr[1 + 2 * a]
                                OV[f, r] = fr[2 + 2 * a]
                            else:  # MIN / MAX: the monotonic deque's front
                                mq = &mono[s * nf + f]
                                if mq.count:
                                    O[f, r] = _rec(h, stride, mq.data[mq.head] - popped[s])[1 + 2 * a]
                                    OV[f, r] = 1
                                else:
                                    O[f, r] = 0
                                    OV[f, r] = 0
                        else:
                            # RANGE, a late row: the held rows up to its time (the first m),
                            # or, when older than every held row may be, itself alone
                            memset_sum(&tmp_s)
                            memset_var(&tmp_v)
                            cur = 0
                            cur_ok = False
                            for i in range(m if inserted else 1):
                                fr = _rec(h, stride, i) if inserted else rec
                                if kind == K_COUNT_STAR:
                                    tmp_s.nobs += 1
                                    continue
                                if kind == K_FIRST_VALUE:
                                    if i == 0:
                                        cur = fr[1 + 2 * a]
                                        cur_ok = fr[2 + 2 * a] != 0
                                    continue
                                if not fr[2 + 2 * a]:
                                    continue
                                x = fr[1 + 2 * a]
                                if _is_acc(kind):
                                    _acc_add(kind, cmode[a] == 1, &tmp_s, &tmp_v, x)
                                elif not cur_ok or (_lt(cmode[a], x, cur, toff, tdata)
                                                    if kind == K_MIN
                                                    else _lt(cmode[a], cur, x, toff, tdata)):
                                    cur = x
                                    cur_ok = True
                            if kind == K_COUNT_STAR or kind == K_COUNT:
                                O[f, r] = tmp_s.nobs
                                OV[f, r] = 1
                            elif _is_var(kind):
                                OV[f, r] = _var_out(kind, &tmp_v, &O[f, r])
                            elif kind == K_SUM or kind == K_AVG:
                                OV[f, r] = _sum_out(kind, cmode[a] == 1, &tmp_s, &O[f, r],
                                                    overflow)
                            else:
                                O[f, r] = cur
                                OV[f, r] = cur_ok
                    # LAG rings take the row after every read
                    for a in range(na):
                        K = lag_k[a]
                        if K:
                            j = s * lagw + lag_off[a] + q % K
                            lag_v[j] = X[a, r] if XV[a, r] else 0
                            lag_ok[j] = XV[a, r]
        finally:
            free(rec)
        _raise_if_out_of_memory()
        return 0

    # -- durable state -----------------------------------------------------------------------

    def code_fields(self):
        """The ``export_state`` fields that hold string codes (a snapshot stores strings)."""
        out = set()
        for a in range(self.na):
            if self.arg_text[a]:
                out |= {f"lag{a}", f"held{a}"}
        for i, (kind, a) in enumerate(zip(self.kinds, self.arg_of)):
            if a >= 0 and self.arg_text[a] and kind in (K_MIN, K_MAX, K_FIRST_VALUE):
                out.add(f"f{i}.value")
        return out

    def export_state(self, slots):
        """State of ``slots`` as numpy arrays (``import_state`` takes them back).

        Per slot ``rows``, ``newest``, ``last_rank``, ``dense``, ``popped``. Lists (cut by
        ``<name>_offsets``, one more than slots; ``<name>_valid`` beside ``<name>_values`` for
        argument values): ``lag<a>`` the slot's last ``min(rows, k)`` values of argument ``a``
        oldest first; RANGE: ``held_t`` the held rows' times, ``held<a>`` their values. Per
        function ``f<i>.``: ``w0``..``w7`` (SUM/AVG/COUNT accumulator words), ``v0``..``v5``
        and ``ops`` (variance family), ``value`` and ``valid`` (UNBOUNDED MIN/MAX and
        FIRST_VALUE). Floats bit for bit."""
        sl = _slot_array(slots)
        k = sl.shape[0]
        if k:
            self._grow(int(sl.max()) + 1)
        cap = self.capacity
        nf = self.nf
        out = {}
        for name in _FRAME_SLOT_FIELDS:
            out[name] = self._slot_field(name)[sl].copy()
        rows = out["rows"]
        for a in range(self.na):
            K = self.lag_k[a]
            if not K:
                continue
            m = np.minimum(rows, K)
            off = np.zeros(k + 1, np.int64)
            np.cumsum(m, out=off[1:])
            owner = np.repeat(np.arange(k), m)
            seq = rows[owner] - m[owner] + (np.arange(int(off[k])) - off[owner])
            idx = sl[owner] * self.lagw + self.lag_off[a] + seq % K
            lv = _vec_view(self.lag_v.data(), self.lag_v.size(), _INT64)
            lo = _vec_view(self.lag_ok.data(), self.lag_ok.size(), np.uint8)
            vals = lv[idx].copy()
            out[f"lag{a}_values"] = vals.view(_FLOAT64) if self.arg_float[a] else vals
            out[f"lag{a}_valid"] = lo[idx].copy()
            out[f"lag{a}_offsets"] = off
        if self.is_range:
            counts = np.zeros(k, np.int64)
            recs = []
            for j in range(k):
                rec_j = self._held_records(int(sl[j]))
                recs.append(rec_j)
                counts[j] = rec_j.shape[0]
            allrec = (np.concatenate(recs) if recs else np.zeros((0, self.stride), np.int64))
            off = np.zeros(k + 1, np.int64)
            np.cumsum(counts, out=off[1:])
            out["held_t_values"] = allrec[:, 0].copy()
            out["held_t_offsets"] = off
            for a in range(self.na):
                vals = allrec[:, 1 + 2 * a].copy()
                out[f"held{a}_values"] = vals.view(_FLOAT64) if self.arg_float[a] else vals
                out[f"held{a}_valid"] = allrec[:, 2 + 2 * a].astype(np.uint8)
                out[f"held{a}_offsets"] = off.copy()
        fi = sl[:, None] * nf
        for i, (kind, a) in enumerate(zip(self.kinds, self.arg_of)):
            p = f"f{i}."
            j = sl * nf + i
            if kind in (K_SUM, K_AVG, K_COUNT):
                acc = _vec_view(self.sums.data(), self.sums.size() * 8, _INT64).reshape(-1, 8)[j]
                for w in range(8):
                    out[p + f"w{w}"] = acc[:, w].copy()
            elif kind in _VARIANCE:
                acc = _vec_view(self.vars.data(), self.vars.size() * 6, _INT64).reshape(-1, 6)[j]
                for w in range(6):
                    out[p + f"v{w}"] = acc[:, w].copy()
                out[p + "ops"] = _vec_view(self.var_ops.data(), self.var_ops.size(), _INT64)[j]
            elif not self.is_range and kind in (K_MIN, K_MAX, K_FIRST_VALUE):
                vals = _vec_view(self.best.data(), self.best.size(), _INT64)[j].copy()
                out[p + "value"] = vals.view(_FLOAT64) if self.arg_float[a] else vals
                out[p + "valid"] = _vec_view(self.best_ok.data(), self.best_ok.size(),
                                             np.uint8)[j].copy()
        return out

    def _slot_field(self, name):
        """A numpy view of one per-slot state vector (valid until the next growth)."""
        cdef vector[int64_t]* v
        if name == "rows":
            v = &self.slot_rows
        elif name == "newest":
            v = &self.newest
        elif name == "last_rank":
            v = &self.last_rank
        elif name == "dense":
            v = &self.dense
        else:
            v = &self.popped
        return _vec_view(v.data(), self.capacity, _INT64)

    cdef object _held_records(self, int64_t s):
        cdef Ring64* h = &self.held[s]
        cdef int64_t i
        res = np.empty((h.count, self.stride), np.int64)
        cdef int64_t[:, ::1] R = res
        for i in range(h.count):
            memcpy(&R[i, 0], _rec(h, self.stride, i), <size_t>(self.stride * 8))
        return res

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into fresh ``slots``; processing then continues
        exactly as it would have in the exporting window."""
        sl = _slot_array(slots)
        k = sl.shape[0]
        if k and len(np.unique(sl)) != k:
            raise ValueError("import_state: slots must be distinct")
        nf = self.nf
        got = {name: _state_array(arrays, name, _INT64, k)
               for name in ("rows", "newest", "last_rank", "dense", "popped")}
        rows = got["rows"]
        lags = {}
        for a in range(self.na):
            K = self.lag_k[a]
            if not K:
                continue
            m = np.minimum(rows, K)
            off = np.zeros(k + 1, np.int64)
            np.cumsum(m, out=off[1:])
            if not np.array_equal(_state_array(arrays, f"lag{a}_offsets", _INT64, k + 1), off):
                raise ValueError(f"import_state: lag{a}_offsets do not match the row counts")
            vals = np.asarray(arrays[f"lag{a}_values"])
            vals = (np.ascontiguousarray(vals, _FLOAT64).view(_INT64) if self.arg_float[a]
                    else np.ascontiguousarray(vals, _INT64))
            lags[a] = (m, off, vals, _state_array(arrays, f"lag{a}_valid", np.uint8, int(off[k])))
        held = None
        if self.is_range:
            off = _state_array(arrays, "held_t_offsets", _INT64, k + 1)
            total = int(off[k]) if k else 0
            rec = np.zeros((total, self.stride), np.int64)
            rec[:, 0] = _state_array(arrays, "held_t_values", _INT64, total)
            for a in range(self.na):
                vals = np.asarray(arrays[f"held{a}_values"])
                vals = (np.ascontiguousarray(vals, _FLOAT64).view(_INT64) if self.arg_float[a]
                        else np.ascontiguousarray(vals, _INT64))
                if vals.shape[0] != total:
                    raise ValueError(f"import_state: held{a}_values has {vals.shape[0]} values")
                rec[:, 1 + 2 * a] = vals
                rec[:, 2 + 2 * a] = _state_array(arrays, f"held{a}_valid", np.uint8, total)
            held = (off, rec)
        if k == 0:
            return
        self._grow(int(sl.max()) + 1)
        cap = self.capacity
        for name in _FRAME_SLOT_FIELDS:
            self._slot_field(name)[sl] = got[name]
        lv = _vec_view(self.lag_v.data(), self.lag_v.size(), _INT64)
        lo = _vec_view(self.lag_ok.data(), self.lag_ok.size(), np.uint8)
        for a, (m, off, vals, valid) in lags.items():
            K = self.lag_k[a]
            owner = np.repeat(np.arange(k), m)
            seq = rows[owner] - m[owner] + (np.arange(int(off[k])) - off[owner])
            idx = sl[owner] * self.lagw + self.lag_off[a] + seq % K
            lv[idx] = vals
            lo[idx] = valid
        for i, (kind, a) in enumerate(zip(self.kinds, self.arg_of)):
            p = f"f{i}."
            j = sl * nf + i
            if kind in (K_SUM, K_AVG, K_COUNT):
                acc = _vec_view(self.sums.data(), self.sums.size() * 8, _INT64).reshape(-1, 8)
                for w in range(8):
                    acc[j, w] = _state_array(arrays, p + f"w{w}", _INT64, k)
            elif kind in _VARIANCE:
                acc = _vec_view(self.vars.data(), self.vars.size() * 6, _INT64).reshape(-1, 6)
                for w in range(6):
                    acc[j, w] = _state_array(arrays, p + f"v{w}", _INT64, k)
                _vec_view(self.var_ops.data(), self.var_ops.size(), _INT64)[j] = \
                    _state_array(arrays, p + "ops", _INT64, k)
            elif not self.is_range and kind in (K_MIN, K_MAX, K_FIRST_VALUE):
                vals = np.asarray(arrays[p + "value"])
                vals = (np.ascontiguousarray(vals, _FLOAT64).view(_INT64) if self.arg_float[a]
                        else np.ascontiguousarray(vals, _INT64))
                _vec_view(self.best.data(), self.best.size(), _INT64)[j] = vals
                _vec_view(self.best_ok.data(), self.best_ok.size(), np.uint8)[j] = \
                    _state_array(arrays, p + "valid", np.uint8, k)
        if held is not None:
            off, rec = held
            for x in range(k):
                self._load_held(int(sl[x]), rec[off[x]:off[x + 1]])

    cdef int _load_held(self, int64_t s, object recs) except -1:
        # the slot's held rows, then its MIN / MAX deques rebuilt from them
        cdef Ring64* h = &self.held[s]
        cdef int64_t[:, ::1] R = np.ascontiguousarray(recs, dtype=np.int64)
        cdef int64_t i, abs_pos, x
        cdef int f, a, stride = self.stride
        cdef Ring64* mq
        h.count = 0
        h.head = 0
        for i in range(R.shape[0]):
            _push_back(h, stride, &R[i, 0])
        view = None
        cdef const int32_t* toff = NULL
        cdef const char* tdata = NULL
        if any(self.arg_text):
            view = self.strings.arrow_values()
            bufs = view.buffers()
            toff = <const int32_t*><size_t>bufs[1].address
            tdata = <const char*><size_t>bufs[2].address if bufs[2] is not None else NULL
        for f in range(self.nf):
            if self.ckind[f] != K_MIN and self.ckind[f] != K_MAX:
                continue
            a = self.carg[f]
            mq = &self.mono[s * self.nf + f]
            mq.count = 0
            mq.head = 0
            for i in range(h.count):
                if not _rec(h, stride, i)[2 + 2 * a]:
                    continue
                x = _rec(h, stride, i)[1 + 2 * a]
                while mq.count:
                    y = _rec(h, stride, _rec(mq, 1, mq.count - 1)[0] - self.popped[s])[1 + 2 * a]
                    if (_lt(self.cmode[a], x, y, toff, tdata) if self.ckind[f] == K_MIN
                            else _lt(self.cmode[a], y, x, toff, tdata)) or x == y:
                        mq.count -= 1
                    else:
                        break
                abs_pos = self.popped[s] + i
                _push_back(mq, 1, &abs_pos)
        _raise_if_out_of_memory()
        return 0


cdef int _raise_if_out_of_memory() except -1:
    global _out_of_memory
    if _out_of_memory:
        _out_of_memory = 0
        raise MemoryError("RANGE frame state could not grow")
    return 0


cdef inline void memset_sum(SumAcc* a) noexcept nogil:
    a.nobs = 0
    a.isum = 0
    a.fsum = 0.0
    a.fcomp = 0.0
    a.n_nan = 0
    a.n_posinf = 0
    a.n_neginf = 0
    a.ihi = 0


cdef inline void memset_var(VarAcc* a) noexcept nogil:
    a.nobs = 0
    a.n_nonfinite = 0
    a.mean = 0.0
    a.ssqdm = 0.0
    a.n_same = 0
    a.prev = 0.0
