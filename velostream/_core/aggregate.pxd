# Columnar aggregate state, indexed by the dense int32 *slot* that ``GroupTable`` hands out for
# each (window, group).
#
# One accumulator object per aggregate in a query. Its state lives in C++ vectors indexed by slot,
# grown by ``ensure_capacity`` (new slots start empty: every "empty" state is all zeros, so a plain
# value-initialising resize is the reset), cleared by ``reset`` when a window closes, and folded
# together by ``merge`` (session merges, two-phase aggregation across partitions).
#
# Division of labour, as in pandas' ``_libs/window/aggregations.pyx``: the ``def`` methods on
# ``Aggregate`` validate shapes and dtypes and allocate with the GIL held, then release it once and
# call a per-class ``noexcept nogil`` hook (``_update`` / ``_result`` / ``_reset`` / ``_merge``)
# that loops over the rows with the tiny inline per-element updates declared below. Hooks report
# failures as an ``AggStatus`` code; the wrapper raises once the GIL is back.

from libc.math cimport fabs, isfinite
from libc.stdint cimport int32_t, int64_t, uint8_t
from libcpp.unordered_set cimport unordered_set
from libcpp.vector cimport vector


cdef extern from *:
    # GCC/Clang 128-bit integer: the exact running sum behind SUM/AVG of BIGINT, so that sums
    # whose partial results leave the int64 range still come out exact (DuckDB sums into HUGEINT).
    # Cython only sees "a C integer"; it is never converted to a Python object.
    ctypedef long long int128_t "__int128"


# Values an aggregate can consume: BIGINT (and DECIMAL/TIMESTAMP, stored as int64) or DOUBLE.
ctypedef fused value_t:
    int64_t
    double


# Status codes returned by the nogil hooks; ``Aggregate`` raises the matching exception.
cdef enum AggStatus:
    AGG_OK = 0
    AGG_NO_MEMORY = 1          # a C++ container failed to allocate: MemoryError
    AGG_OVERFLOW = 2           # an exact BIGINT sum does not fit in int64: OutOfRangeError
    AGG_NO_STRINGS = 3         # a text MIN/MAX ran without its string view (a raw-pointer
                               # caller such as group_step): RuntimeError


cdef class Aggregate:
    cdef bint is_float         # input dtype: 1 for float64, 0 for int64
    cdef bint result_is_float  # result dtype: 1 for float64, 0 for int64
    cdef bint takes_values     # 0 for COUNT(*), which ignores values and validity
    cdef Py_ssize_t n_slots    # slots allocated in every state vector; valid slots are [0, n_slots)
    cdef int64_t next_seq      # arrival number given to the next row when update() gets no seq
    cdef bint busy             # set while a method runs without the GIL, so a second thread that
                               # enters the same object gets RuntimeError instead of torn state

    # Shared body of update/update_emit: validate and take pointers with the GIL, run _update
    # without it. out_values/out_valid are None for update. known_max: the largest slot when a
    # caller in this module has already scanned ``slots`` for it (update_all), else -2.
    cdef _run(self, slots, values, valid, seq, out_values, out_valid, int32_t known_max=*)
    # Hooks every concrete class overrides; slots reaching them are already < n_slots.
    cdef int _grow(self, Py_ssize_t n_slots) except -1
    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil
    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil
    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil
    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil


# ``Aggregate.update_emit`` on raw pointers, for kernels in other modules (group_step.pyx); see
# aggregate.pyx. ``out_valid`` NULL makes it ``update``.
cdef int update_emit_rows(Aggregate agg, Py_ssize_t n, const int32_t* slots, int32_t max_slot,
                          const void* values, const uint8_t* valid, void* out,
                          uint8_t* out_valid, bint release_gil) except -1


cdef class _CountBase(Aggregate):
    cdef vector[int64_t] counts    # rows (COUNT(*)) or valid values (COUNT(x)) per slot


cdef class CountStar(_CountBase):
    pass


cdef class Count(_CountBase):
    pass


cdef class _SumBase(Aggregate):
    cdef bint mean                 # 1 for AVG (result sum / nobs as float64), 0 for SUM
    cdef vector[int64_t] nobs      # valid values per slot; 0 means the result is NULL
    cdef vector[int128_t] isum     # int64 input: exact running sum (float input: unused, empty)
    cdef vector[double] fsum       # float64 input: Neumaier running sum (int input: empty)
    cdef vector[double] fcomp      # float64 input: Neumaier compensation term (int input: empty)


cdef class Sum(_SumBase):
    pass


cdef class Avg(_SumBase):
    pass


cdef class _MinMaxBase(Aggregate):
    cdef bint is_max               # 1 for MAX, 0 for MIN
    cdef vector[uint8_t] has       # 1 once the slot has seen a valid value
    cdef vector[int64_t] ival      # current extreme, int64 input (float input: empty)
    cdef vector[double] fval       # current extreme, float64 input (int input: empty)


cdef class Min(_MinMaxBase):
    pass


cdef class Max(_MinMaxBase):
    pass


cdef class Variance(Aggregate):
    cdef bint samp                 # 1: divide by n - 1 (VAR_SAMP/STDDEV_SAMP); 0: by n (_POP)
    cdef bint root                 # 1: return the square root (STDDEV_*)
    cdef vector[int64_t] nobs      # Welford count of valid values per slot
    cdef vector[double] mean       # Welford running mean
    cdef vector[double] m2         # Welford sum of squared deviations from the mean


cdef class CountDistinct(Aggregate):
    # Distinct valid values per slot, as int64 keys (float64 by bit pattern, -0.0 folded into 0.0
    # and every NaN into one key). Reset swaps a slot's set with an empty one to free its buckets.
    cdef vector[unordered_set[int64_t]] sets


cdef class ApproxCountDistinct(CountDistinct):
    pass


cdef class _PickBase(Aggregate):
    # ``valid`` may also hold 2 for a row that is not the aggregate's input at all (it failed the
    # aggregate's FILTER): such a row is skipped, where a NULL (0) row can still be picked.
    cdef bint last                 # 1 for LAST (latest seq wins), 0 for FIRST (earliest wins)
    cdef vector[uint8_t] state     # 0 empty, 1 picked row was NULL, 2 picked row has a value
    cdef vector[int64_t] seq       # arrival number of the picked row, compared by merge
    cdef vector[int64_t] ival      # picked value, int64 input (float input: empty)
    cdef vector[double] fval       # picked value, float64 input (int input: empty)


cdef class First(_PickBase):
    pass


cdef class Last(_PickBase):
    pass


cdef class _TextMinMaxBase(_MinMaxBase):
    # MIN/MAX of text: ``ival`` holds string codes of the job's string dictionary, compared by
    # the strings' UTF-8 bytes (DuckDB's order, = code point order), never by code. The view of
    # the dictionary's buffers is taken with the GIL at the start of each update/merge call
    # (the dictionary only grows, so every code a call sees is in it) and dropped at the end.
    cdef object strings            # the StringDict (anything with ``arrow_values()``)
    cdef object view               # its pa.string() array, kept alive while the pointers are used
    cdef const int32_t* offsets    # the view's offsets (NULL outside update/merge)
    cdef const char* data          # the view's UTF-8 bytes
    cdef int _take_view(self) except -1
    cdef void _drop_view(self)


cdef class TextMin(_TextMinMaxBase):
    pass


cdef class TextMax(_TextMinMaxBase):
    pass


cdef class _PairBase(Aggregate):
    # Two inputs per row: ``values`` is an (n, 2) C-contiguous array of the input dtype (column 0
    # the SQL call's first argument), ``valid`` one entry per row (both inputs usable). Only
    # ``update``/``update_emit``/``update_all`` take pairs; ``update_emit_rows`` (group_step)
    # does not serve these classes.
    pass


cdef class Covariance(_PairBase):
    # COVAR_POP, COVAR_SAMP, CORR, REGR_SLOPE, REGR_INTERCEPT, REGR_R2 of (y, x) float64 pairs:
    # Welford running means and co-moments, Chan's pairwise merge.
    cdef int kind                  # index into COVARIANCE_KINDS (aggregate.pyx)
    cdef vector[int64_t] nobs
    cdef vector[double] mean_y
    cdef vector[double] mean_x
    cdef vector[double] m2_y       # sum of squared deviations of y
    cdef vector[double] m2_x
    cdef vector[double] c_xy       # sum of products of the deviations


cdef class _ArgPickBase(_PairBase):
    # ARG_MIN / ARG_MAX(arg, val) of int64 pairs: ``arg`` as int64 bits (float64 by bit pattern,
    # text as string codes), ``val`` by ``val_kind``: 0 an integer, 1 float64 bits (NaN sorts
    # last), 2 a string code compared by bytes through the dictionary view (as _TextMinMaxBase).
    # Ties keep the earliest row by arrival number, as DuckDB's scan does, also across merges.
    cdef bint is_max
    cdef int val_kind
    cdef vector[uint8_t] has
    cdef vector[int64_t] seq
    cdef vector[int64_t] arg
    cdef vector[int64_t] val
    cdef object strings
    cdef object view
    cdef const int32_t* offsets
    cdef const char* data
    cdef int _take_view(self) except -1
    cdef void _drop_view(self)


cdef class ArgMin(_ArgPickBase):
    pass


cdef class ArgMax(_ArgPickBase):
    pass


cdef class StringAgg(Aggregate):
    # STRING_AGG / LISTAGG: per slot the string codes of its non-NULL values with their arrival
    # numbers, in arrival order (merge interleaves two slots by arrival number). The joined text
    # is a new string, so ``result`` and ``update_emit`` build it with the GIL, through pyarrow,
    # and add it to the job's dictionary; their nogil part only gathers codes.
    cdef object strings            # the job's StringDict
    cdef object separator          # str
    cdef vector[vector[int64_t]] codes
    cdef vector[vector[int64_t]] seqs
    cdef object _join(self, object slots, object lengths)
    cdef object _codes(self, object text)


cdef class Median(Aggregate):
    # Exact median (or any quantile: see ``q`` below) of the non-NaN values per slot; NaNs sort after every number (as in DuckDB) and
    # are only counted. A slot is in one of two forms:
    #   bag   (heaped == 0): every value unsorted in ``lo``, ``hi`` empty. update() only appends,
    #         so EMIT FINAL costs an amortised O(1) per row plus one O(n) nth_element per read.
    #   heaps (heaped == 1): ``lo`` is a max-heap of the smaller values and ``hi`` holds the larger
    #         ones negated (a max-heap too, so both use std::push_heap's default order); every
    #         lo <= every hi and len(lo) == min(len(lo) + len(hi), ceil(N / 2)) with
    #         N = len(lo) + len(hi) + n_nan, so the middle value(s) are the heap tops (or a NaN).
    #         An update is O(log n) and a read O(1), which keeps EMIT CHANGES from going quadratic.
    # update_emit turns a slot's bag into heaps (O(n), once); result reads a bag with nth_element.
    cdef vector[vector[double]] lo
    cdef vector[vector[double]] hi
    cdef vector[int64_t] n_nan     # NaN values per slot
    cdef vector[uint8_t] heaped    # 0: slot in bag form, 1: in heap form (see above)
    # The quantile (MEDIAN: 0.5, continuous). In general the heaps split at the lower index k of
    # the quantile (PERCENTILE_CONT: floor(q (N - 1)), PERCENTILE_DISC: ceil(q N) - 1, DuckDB's):
    # len(lo) == min(len(lo) + len(hi), k + 1), so value k tops lo and value k + 1 tops hi.
    cdef double q
    cdef bint disc


# ---- per-element updates (pandas ``add_sum`` style: running state through pointers) ----------

cdef inline void add_sum(double x, double* s, double* comp) noexcept nogil:
    """Neumaier-compensated ``s += x``; the rounding error accumulates in ``comp``."""
    cdef double t = s[0] + x
    # Selects rather than an if: which operand is larger is a coin flip on real data, and a
    # mispredicted branch costs more than the whole update.
    cdef bint s_big = fabs(s[0]) >= fabs(x)
    cdef double big = s[0] if s_big else x
    cdef double small = x if s_big else s[0]
    comp[0] += (big - t) + small
    s[0] = t


cdef inline double sum_value(double s, double comp) noexcept nogil:
    # Once the plain sum is inf or NaN the compensation is NaN garbage (inf - inf) and the plain
    # sum is already the IEEE answer.
    if not isfinite(s):
        return s
    return s + comp


cdef inline void add_var(double x, int64_t* nobs, double* mean, double* m2) noexcept nogil:
    """Welford's update of (count, mean, sum of squared deviations); DuckDB uses the same one."""
    cdef double delta = x - mean[0]
    nobs[0] += 1
    mean[0] += delta / <double>nobs[0]
    m2[0] += delta * (x - mean[0])


cdef inline void merge_var(int64_t nb, double mb, double m2b,
                           int64_t* na, double* ma, double* m2a) noexcept nogil:
    """Chan et al.'s pairwise combination: fold (nb, mb, m2b) into (na, ma, m2a)."""
    cdef double n, delta
    if nb == 0:
        return
    if na[0] == 0:
        na[0] = nb
        ma[0] = mb
        m2a[0] = m2b
        return
    n = <double>(na[0] + nb)
    delta = mb - ma[0]
    ma[0] += delta * (<double>nb / n)
    m2a[0] += m2b + delta * delta * (<double>na[0] * <double>nb / n)
    na[0] += nb
