"""Columnar aggregate accumulators indexed by slot; state layout in ``aggregate.pxd``.

Each class holds the state of one aggregate of a query for every slot (one slot per
(window, group), assigned by ``GroupTable``). ``update`` folds rows in, ``update_emit`` also writes
each row's post-update value (EMIT CHANGES), ``result`` reads slots out, ``reset`` empties slots
whose window closed, and ``merge`` folds one slot into another (session merges, two-phase
aggregation). NULL handling follows DuckDB: NULLs are skipped, SUM/AVG/MIN/MAX/... of no values is
NULL, COUNT of no values is 0, FIRST/LAST return the first/last row's value even when it is NULL.

>>> import numpy as np
>>> agg = Sum(np.float64)
>>> agg.ensure_capacity(2)
>>> agg.update(np.array([0, 1, 0, -1], np.int32), np.array([1.5, 2.0, 3.0, 9.0]),
...            np.array([True, False, True, True]))
>>> agg.result(np.array([0, 1], np.int32))
(array([4.5, 0. ]), array([ True, False]))
"""
import numpy as np
from .state_arrays import state_array as _state_array  # checks import_state input

# What an overflowing SUM of INT64 raises. A kernel never imports the package: the package sets
# its own OutOfRangeError here when it loads the kernel (velostream/exec/aggregators.py), so that
# the error is a bad record with its rows (docs/SQL.md §2, §7).
OutOfRangeError = OverflowError

cimport numpy as cnp
from libc.math cimport NAN, ceil, floor, isfinite, isinf, sqrt
from libc.stdint cimport INT32_MAX, INT64_MAX, INT64_MIN, int32_t, int64_t, uint8_t
from libc.string cimport memcmp, memcpy
from libcpp.unordered_set cimport unordered_set
from libcpp.vector cimport vector


cdef extern from *:
    """
    #include <algorithm>
    #include <cstdint>
    #include <unordered_set>
    #include <vector>

    /* C++ containers report allocation failure by throwing. These wrappers turn that into a
       status code so that no exception can escape a nogil kernel; every one leaves its container
       unchanged when it fails. */
    static inline int vs_set_insert(std::unordered_set<int64_t>& s, int64_t v) noexcept {
        try { s.insert(v); } catch (...) { return -1; }
        return 0;
    }
    static inline int vs_set_merge(std::unordered_set<int64_t>& dst,
                                   const std::unordered_set<int64_t>& src) noexcept {
        try { dst.insert(src.begin(), src.end()); } catch (...) { return -1; }
        return 0;
    }
    /* clear() keeps the bucket array; swapping with an empty set gives the memory back. */
    static inline void vs_set_free(std::unordered_set<int64_t>& s) noexcept {
        std::unordered_set<int64_t>().swap(s);
    }
    static inline int vs_heap_push(std::vector<double>& h, double v) noexcept {
        try { h.push_back(v); } catch (...) { return -1; }
        std::push_heap(h.begin(), h.end());
        return 0;
    }
    static inline void vs_heap_pop(std::vector<double>& h) noexcept {
        std::pop_heap(h.begin(), h.end());
        h.pop_back();
    }
    static inline void vs_vec_free(std::vector<double>& v) noexcept {
        std::vector<double>().swap(v);
    }
    static inline int vs_vec_append(std::vector<double>& v, double x) noexcept {
        try { v.push_back(x); } catch (...) { return -1; }
        return 0;
    }
    /* MEDIAN: split an unsorted bag (all in lo, hi empty) into the two heaps, len(lo) == target:
       nth_element leaves the target smallest values in front, O(n) in all. */
    static inline int vs_bag_to_heaps(std::vector<double>& lo, std::vector<double>& hi,
                                      size_t target) noexcept {
        try { hi.reserve(lo.size() - target); } catch (...) { return -1; }
        std::nth_element(lo.begin(), lo.begin() + target, lo.end());
        for (size_t j = target; j < lo.size(); ++j) hi.push_back(-lo[j]);
        lo.resize(target);
        std::make_heap(lo.begin(), lo.end());
        std::make_heap(hi.begin(), hi.end());
        return 0;
    }
    /* MEDIAN of a bag, read in place: the k-th smallest (reorders the bag, which is still a bag),
       and the smallest of what lies after it. */
    static inline double vs_bag_nth(std::vector<double>& v, size_t k) noexcept {
        std::nth_element(v.begin(), v.begin() + k, v.end());
        return v[k];
    }
    static inline double vs_min_from(const std::vector<double>& v, size_t k) noexcept {
        return *std::min_element(v.begin() + k, v.end());
    }
    """
    int vs_set_insert(unordered_set[int64_t]& s, int64_t v) noexcept nogil
    int vs_set_merge(unordered_set[int64_t]& dst, const unordered_set[int64_t]& src) noexcept nogil
    void vs_set_free(unordered_set[int64_t]& s) noexcept nogil
    int vs_heap_push(vector[double]& h, double v) noexcept nogil
    void vs_heap_pop(vector[double]& h) noexcept nogil
    void vs_vec_free(vector[double]& v) noexcept nogil
    int vs_vec_append(vector[double]& v, double x) noexcept nogil
    int vs_bag_to_heaps(vector[double]& lo, vector[double]& hi, size_t target) noexcept nogil
    double vs_bag_nth(vector[double]& v, size_t k) noexcept nogil
    double vs_min_from(const vector[double]& v, size_t k) noexcept nogil


cnp.import_array()


# ---- validation helpers (GIL held) -----------------------------------------------------------

cdef object _input_dtype(object dtype):
    dt = np.dtype(dtype)
    if dt != np.int64 and dt != np.float64:
        raise TypeError(f"aggregate input dtype must be int64 or float64, not {dt}")
    return dt


cdef inline object _as_u8(object mask):
    # numpy bool has buffer format '?', which a uint8 memoryview refuses: view it instead.
    # (PyArray_TYPE, not ``mask.dtype == np.bool_``: that comparison costs a microsecond.)
    if isinstance(mask, cnp.ndarray) and cnp.PyArray_TYPE(<cnp.ndarray>mask) == cnp.NPY_BOOL:
        return mask.view(np.uint8)
    return mask


cdef inline int _check_len(Py_ssize_t got, Py_ssize_t n, str what) except -1:
    if got != n:
        raise ValueError(f"{what} has {got} rows, slots has {n}")
    return 0


cdef inline int32_t _max_slot(const int32_t* slots, Py_ssize_t n) noexcept nogil:
    cdef int32_t mx = -1
    cdef Py_ssize_t i
    for i in range(n):
        if slots[i] > mx:
            mx = slots[i]
    return mx


cdef int _raise_status(int status) except -1:
    if status == AGG_NO_MEMORY:
        raise MemoryError("aggregate state could not grow")
    if status == AGG_NO_STRINGS:
        raise RuntimeError("a text MIN/MAX was updated without its string dictionary view")
    if status == AGG_OVERFLOW:  # docs/SQL.md §2: never a wrapped value
        raise OutOfRangeError("Out of Range Error: Overflow in SUM of INT64 (the exact total does "
                              "not fit in INT64)")
    return 0


cdef inline int _enter(Aggregate agg) except -1:
    if agg.busy:
        raise RuntimeError(f"{type(agg).__name__} is in use by another thread")
    agg.busy = True
    return 0


# ---- state export / import (snapshots) -------------------------------------------------------
#
# ``export_state(slots)`` copies the state of some slots out as plain numpy arrays (one entry per
# slot; variable-size state as flat values plus int64 offsets, ``<name>_offsets`` of length n + 1
# and ``<name>_values``), and ``import_state(slots, arrays)`` writes such arrays into slots,
# replacing what they held. Every field is copied bit for bit (Neumaier compensation, Welford m2,
# FIRST/LAST arrival numbers, MEDIAN bags and heaps as they are laid out), so a restored slot
# answers ``result``, ``merge`` and later ``update`` calls exactly as the original would. The
# object's arrival counter travels as ``next_seq`` (one element; import keeps the larger).

cdef extern from *:
    """
    static inline int64_t vs_i128_hi(__int128 x) noexcept { return (int64_t)(x >> 64); }
    static inline int64_t vs_i128_lo(__int128 x) noexcept { return (int64_t)(uint64_t)x; }
    static inline __int128 vs_i128_make(int64_t hi, int64_t lo) noexcept {
        return (__int128)(((unsigned __int128)(uint64_t)hi << 64) | (unsigned __int128)(uint64_t)lo);
    }
    static inline void vs_set_copy_out(const std::unordered_set<int64_t>& s, int64_t* out) noexcept {
        for (int64_t v : s) *out++ = v;
    }
    /* Replace a set's contents; on failure the set is left empty. */
    static inline int vs_set_assign(std::unordered_set<int64_t>& s, const int64_t* p,
                                    size_t n) noexcept {
        std::unordered_set<int64_t>().swap(s);
        try { s.reserve(n); s.insert(p, p + n); } catch (...) {
            std::unordered_set<int64_t>().swap(s);
            return -1;
        }
        return 0;
    }
    /* Replace a vector's contents (exact size, no spare capacity); unchanged on failure. */
    static inline int vs_vec_assign(std::vector<double>& v, const double* p, size_t n) noexcept {
        try { std::vector<double>(p, p + n).swap(v); } catch (...) { return -1; }
        return 0;
    }
    """
    int64_t vs_i128_hi(int128_t x) noexcept nogil
    int64_t vs_i128_lo(int128_t x) noexcept nogil
    int128_t vs_i128_make(int64_t hi, int64_t lo) noexcept nogil
    void vs_set_copy_out(const unordered_set[int64_t]& s, int64_t* out) noexcept nogil
    int vs_set_assign(unordered_set[int64_t]& s, const int64_t* p, size_t n) noexcept nogil
    int vs_vec_assign(vector[double]& v, const double* p, size_t n) noexcept nogil


ctypedef fused state_t:
    int64_t
    double
    uint8_t


cdef object _state_slots(Aggregate agg, object slots):
    """``slots`` as a C-contiguous int32 array; ValueError unless every one is in [0, capacity)."""
    arr = np.ascontiguousarray(slots, dtype=np.int32)
    if arr.ndim != 1:
        raise ValueError("slots must be one-dimensional")
    cdef const int32_t[::1] sl = arr
    cdef Py_ssize_t i, n = sl.shape[0]
    cdef int32_t lo = 0, hi = -1
    if n:
        with nogil:
            lo = sl[0]
            hi = sl[0]
            for i in range(n):
                if sl[i] < lo:
                    lo = sl[i]
                if sl[i] > hi:
                    hi = sl[i]
        if lo < 0:
            raise ValueError(f"state slot {lo} is negative")
        if hi >= agg.n_slots:
            raise ValueError(f"slot {hi} out of range: capacity is {agg.n_slots}")
    return arr


cdef inline const int32_t* _slot_ptr(const int32_t[::1] sl) noexcept:
    return &sl[0] if sl.shape[0] else NULL




cdef tuple _state_lists(object arrays, str name, Py_ssize_t n):
    """(offsets, values) of the variable-size field ``name``, checked."""
    off = _state_array(arrays, name + "_offsets", np.int64, n + 1)
    if off[0] != 0 or (n and (np.diff(off) < 0).any()):
        raise ValueError(f"state array '{name}_offsets' must start at 0 and never decrease")
    return off, int(off[n])


cdef dict _with_seq(Aggregate agg, dict d):
    d["next_seq"] = np.array([agg.next_seq], dtype=np.int64)
    return d


cdef int _take_seq(Aggregate agg, object arrays) except -1:
    cdef int64_t v
    if "next_seq" in arrays:
        v = int(np.asarray(arrays["next_seq"]).reshape(-1)[0])
        if v > agg.next_seq:
            agg.next_seq = v
    return 0


cdef object _gather(const state_t* src, const int32_t* sl, Py_ssize_t n):
    """``src[sl[i]]`` for every i, as a new numpy array."""
    cdef Py_ssize_t i
    cdef state_t[::1] o
    if state_t is double:
        out = np.empty(n, dtype=np.float64)
    elif state_t is int64_t:
        out = np.empty(n, dtype=np.int64)
    else:
        out = np.empty(n, dtype=np.uint8)
    o = out
    if n:
        with nogil:
            for i in range(n):
                o[i] = src[sl[i]]
    return out


cdef int _scatter(state_t* dst, const int32_t* sl, Py_ssize_t n, object values) except -1:
    """``dst[sl[i]] = values[i]`` for every i (``values`` already of the right dtype)."""
    cdef Py_ssize_t i
    cdef const state_t[::1] v = values
    if n:
        with nogil:
            for i in range(n):
                dst[sl[i]] = v[i]
    return 0


cdef tuple _export_i128(const int128_t* src, const int32_t* sl, Py_ssize_t n):
    hi = np.empty(n, dtype=np.int64)
    lo = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] h = hi
    cdef int64_t[::1] l = lo
    cdef Py_ssize_t i
    if n:
        with nogil:
            for i in range(n):
                h[i] = vs_i128_hi(src[sl[i]])
                l[i] = vs_i128_lo(src[sl[i]])
    return hi, lo


cdef int _import_i128(int128_t* dst, const int32_t* sl, Py_ssize_t n, object hi,
                      object lo) except -1:
    cdef const int64_t[::1] h = hi
    cdef const int64_t[::1] l = lo
    cdef Py_ssize_t i
    if n:
        with nogil:
            for i in range(n):
                dst[sl[i]] = vs_i128_make(h[i], l[i])
    return 0


cdef tuple _export_vecs(vector[vector[double]]* vv, const int32_t* sl, Py_ssize_t n):
    """The vectors of slots ``sl`` flattened: (int64 offsets of length n + 1, float64 values)."""
    offsets = np.empty(n + 1, dtype=np.int64)
    cdef int64_t[::1] off = offsets
    cdef double[::1] vals
    cdef Py_ssize_t i
    cdef size_t m
    off[0] = 0
    if n:
        with nogil:
            for i in range(n):
                off[i + 1] = off[i] + <int64_t>vv[0][sl[i]].size()
    values = np.empty(off[n], dtype=np.float64)
    vals = values
    if off[n]:
        with nogil:
            for i in range(n):
                m = vv[0][sl[i]].size()
                if m:
                    memcpy(&vals[off[i]], vv[0][sl[i]].data(), m * sizeof(double))
    return offsets, values


cdef int _import_vecs(vector[vector[double]]* vv, const int32_t* sl, Py_ssize_t n, object arrays,
                      str name) except -1:
    off_arr, total = _state_lists(arrays, name, n)
    val_arr = _state_array(arrays, name + "_values", np.float64, total)
    cdef const int64_t[::1] off = off_arr
    cdef const double[::1] v = val_arr
    cdef const double* vp = &v[0] if v.shape[0] else NULL
    cdef Py_ssize_t i
    cdef int status = AGG_OK
    if n:
        with nogil:
            for i in range(n):
                if vs_vec_assign(vv[0][sl[i]], vp + off[i], <size_t>(off[i + 1] - off[i])) != 0:
                    status = AGG_NO_MEMORY
                    break
    return _raise_status(status)


# ---- base class: validation, allocation, GIL handling ----------------------------------------

cdef class Aggregate:
    """Base of every accumulator: validates with the GIL, then runs the class's nogil hook."""

    def __init__(self, dtype):
        if type(self) is Aggregate:
            raise TypeError("Aggregate is abstract; use Sum, Count, ...")
        if self.n_slots:
            # The state vectors were sized for the current dtype: switching it would index them
            # out of bounds.
            raise TypeError(f"{type(self).__name__} already holds state; create a new one")
        self.is_float = _input_dtype(dtype) == np.float64
        self.result_is_float = self.is_float
        self.takes_values = True

    @property
    def dtype(self):
        """Input dtype (int64 or float64)."""
        return np.dtype(np.float64 if self.is_float else np.int64)

    @property
    def result_dtype(self):
        """dtype of the values returned by ``result`` and written by ``update_emit``."""
        return np.dtype(np.float64 if self.result_is_float else np.int64)

    @property
    def capacity(self):
        """Number of slots allocated; valid slot ids are ``0 <= slot < capacity``."""
        return self.n_slots

    def __repr__(self):
        return f"{type(self).__name__}(dtype={self.dtype})"

    def ensure_capacity(self, Py_ssize_t n_slots):
        """Grow the state to at least ``n_slots`` slots; new slots start empty. Never shrinks."""
        if n_slots < 0 or n_slots > <Py_ssize_t>INT32_MAX + 1:
            raise ValueError(f"n_slots must be in [0, 2**31], got {n_slots}")
        if n_slots <= self.n_slots:
            return
        _enter(self)
        try:
            self._grow(n_slots)
            self.n_slots = n_slots
        finally:
            self.busy = False

    def update(self, slots, values, valid=None, seq=None):
        """Fold rows into their slots. ``slots``: int32 (``< 0`` skips the row); ``values``: the
        input dtype (ignored by CountStar); ``valid``: bool/uint8 mask or None (all valid);
        ``seq``: int64 arrival numbers (FIRST/LAST), or None to number rows in call order."""
        self._run(slots, values, valid, seq, None, None)

    def update_emit(self, slots, values, valid, out_values, out_valid, seq=None):
        """``update``, also writing for each row its slot's value right after that row
        (EMIT CHANGES): ``out_values`` of ``result_dtype`` and ``out_valid`` (uint8/bool), one
        entry per row; skipped rows (slot < 0) get ``out_valid = 0``."""
        if out_values is None or out_valid is None:
            raise TypeError("update_emit needs out_values and out_valid arrays")
        self._run(slots, values, valid, seq, out_values, out_valid)

    cdef _run(self, slots, values, valid, seq, out_values, out_valid, int32_t known_max=-2):
        cdef const int32_t[::1] sl = slots
        cdef const int64_t[::1] ivals
        cdef const double[::1] fvals
        cdef const uint8_t[::1] vmask
        cdef const int64_t[::1] seqs
        cdef int64_t[::1] iout
        cdef double[::1] fout
        cdef uint8_t[::1] omask
        cdef Py_ssize_t n = sl.shape[0]
        cdef const void* vp = NULL
        cdef const uint8_t* mp = NULL
        cdef const int64_t* qp = NULL
        cdef void* op = NULL
        cdef uint8_t* omp = NULL
        cdef int64_t seq0 = self.next_seq
        cdef int32_t mx = -1
        cdef int status = AGG_OK

        if self.takes_values:
            if values is None:
                raise TypeError(f"{type(self).__name__} needs a values array")
            if self.is_float:
                fvals = values
                _check_len(fvals.shape[0], n, "values")
                if n:
                    vp = &fvals[0]
            else:
                ivals = values
                _check_len(ivals.shape[0], n, "values")
                if n:
                    vp = &ivals[0]
            if valid is not None:
                vmask = _as_u8(valid)
                _check_len(vmask.shape[0], n, "valid")
                if n:
                    mp = &vmask[0]
        if seq is not None:
            seqs = seq
            _check_len(seqs.shape[0], n, "seq")
            if n:
                qp = &seqs[0]
        if out_valid is not None:
            if self.result_is_float:
                fout = out_values
                _check_len(fout.shape[0], n, "out_values")
                if n:
                    op = &fout[0]
            else:
                iout = out_values
                _check_len(iout.shape[0], n, "out_values")
                if n:
                    op = &iout[0]
            omask = _as_u8(out_valid)
            _check_len(omask.shape[0], n, "out_valid")
            if n:
                omp = &omask[0]
        if n == 0:
            return

        _enter(self)
        try:
            with nogil:
                mx = _max_slot(&sl[0], n) if known_max == -2 else known_max
                if mx < self.n_slots:
                    status = self._update(n, &sl[0], vp, mp, qp, seq0, op, omp)
        finally:
            self.busy = False
        if mx >= self.n_slots:
            raise ValueError(f"slot {mx} out of range: capacity is {self.n_slots}")
        self.next_seq = seq0 + n
        _raise_status(status)

    def result(self, slots):
        """Current values of ``slots`` as ``(values of result_dtype, valid as bool)``; a slot < 0
        reads as NULL."""
        cdef const int32_t[::1] sl = slots
        cdef Py_ssize_t n = sl.shape[0]
        cdef int64_t[::1] iout
        cdef double[::1] fout
        cdef uint8_t[::1] omask
        cdef void* op = NULL
        cdef int32_t mx = -1
        cdef int status = AGG_OK
        out = np.empty(n, dtype=self.result_dtype)
        ok = np.empty(n, dtype=np.uint8)
        if n == 0:
            return out, ok.view(np.bool_)
        if self.result_is_float:
            fout = out
            op = &fout[0]
        else:
            iout = out
            op = &iout[0]
        omask = ok
        _enter(self)
        try:
            with nogil:
                mx = _max_slot(&sl[0], n)
                if mx < self.n_slots:
                    status = self._result(n, &sl[0], op, &omask[0])
        finally:
            self.busy = False
        if mx >= self.n_slots:
            raise ValueError(f"slot {mx} out of range: capacity is {self.n_slots}")
        _raise_status(status)
        return out, ok.view(np.bool_)

    def reset(self, slots):
        """Make ``slots`` empty again (their window closed); entries < 0 are ignored."""
        cdef const int32_t[::1] sl = slots
        cdef Py_ssize_t n = sl.shape[0]
        cdef int32_t mx = -1
        if n == 0:
            return
        _enter(self)
        try:
            with nogil:
                mx = _max_slot(&sl[0], n)
                if mx < self.n_slots:
                    self._reset(n, &sl[0])
        finally:
            self.busy = False
        if mx >= self.n_slots:
            raise ValueError(f"slot {mx} out of range: capacity is {self.n_slots}")

    def merge(self, dst_slots, Aggregate other not None, src_slots):
        """Fold ``other``'s state of ``src_slots[i]`` into this object's ``dst_slots[i]``, pair by
        pair in order. ``other`` must be the same class and dtype and may be ``self``; the source
        slots are left as they were (reset them if they are done). Pairs with a negative slot, and
        a slot merged into itself, are skipped."""
        cdef const int32_t[::1] dst = dst_slots
        cdef const int32_t[::1] src = src_slots
        cdef Py_ssize_t n = dst.shape[0]
        cdef int32_t mxd = -1, mxs = -1
        cdef int status = AGG_OK
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other.is_float != self.is_float:
            raise TypeError(f"cannot merge {other.dtype} state into {self.dtype} state")
        _check_len(src.shape[0], n, "src_slots")
        if n == 0:
            return
        _enter(self)
        if other is not self:
            try:
                _enter(other)
            except RuntimeError:
                self.busy = False
                raise
        try:
            with nogil:
                mxd = _max_slot(&dst[0], n)
                mxs = _max_slot(&src[0], n)
                if mxd < self.n_slots and mxs < other.n_slots:
                    status = self._merge(other, n, &dst[0], &src[0])
        finally:
            self.busy = False
            other.busy = False
        if mxd >= self.n_slots:
            raise ValueError(f"dst slot {mxd} out of range: capacity is {self.n_slots}")
        if mxs >= other.n_slots:
            raise ValueError(f"src slot {mxs} out of range: capacity is {other.n_slots}")
        _raise_status(status)

    # Hooks, overridden by every concrete class. Slots reaching them are < capacity.

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        return AGG_OK

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        pass

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        return AGG_OK


cdef int update_emit_rows(Aggregate agg, Py_ssize_t n, const int32_t* slots, int32_t max_slot,
                          const void* values, const uint8_t* valid, void* out,
                          uint8_t* out_valid, bint release_gil) except -1:
    """``agg.update_emit`` (or ``update`` when ``out_valid`` is NULL) for kernels holding raw
    pointers (``group_step``), with the same state changes: rows numbered from ``next_seq``,
    which then moves on by n. ``values``: n values of the input dtype (ignored by CountStar);
    ``valid``: n uint8 or NULL; ``out``: n of ``result_dtype``. ``max_slot``: the largest slot in
    ``slots`` (the caller knows it), checked against the capacity. ``release_gil``: run without
    the GIL (worth it for large batches only)."""
    cdef int64_t seq0 = agg.next_seq
    cdef int status = AGG_OK
    if n <= 0:
        return 0
    if agg.takes_values and values == NULL:
        raise TypeError(f"{type(agg).__name__} needs a values array")
    if max_slot >= agg.n_slots:
        raise ValueError(f"slot {max_slot} out of range: capacity is {agg.n_slots}")
    _enter(agg)
    try:
        if release_gil:
            with nogil:
                status = agg._update(n, slots, values, valid, NULL, seq0, out, out_valid)
        else:
            status = agg._update(n, slots, values, valid, NULL, seq0, out, out_valid)
    finally:
        agg.busy = False
    agg.next_seq = seq0 + n
    _raise_status(status)
    return 0


def update_all(list aggs, slots, list values, list valids, seq=None):
    """``aggs[j].update(slots, values[j], valids[j], seq)`` for every j: one query's aggregates
    over the same rows. The slots are scanned for their largest value once for all of them
    (each ``update`` would scan them again), and each aggregate runs its own nogil loop.

    >>> import numpy as np
    >>> c, s = CountStar(), Sum(np.int64)
    >>> c.ensure_capacity(2); s.ensure_capacity(2)
    >>> update_all([c, s], np.array([0, 1, 0], np.int32), [None, np.array([1, 2, 3])], [None, None])
    >>> c.result(np.array([0, 1], np.int32))[0].tolist(), s.result(np.array([0, 1], np.int32))[0].tolist()
    ([2, 1], [4, 2])
    """
    cdef const int32_t[::1] sl = slots
    cdef Py_ssize_t j, n = sl.shape[0]
    cdef int32_t mx = -1
    if len(values) != len(aggs) or len(valids) != len(aggs):
        raise ValueError("update_all needs one values and one valid entry per aggregate")
    if n:
        with nogil:
            mx = _max_slot(&sl[0], n)
    for j in range(len(aggs)):
        (<Aggregate?>aggs[j])._run(slots, values[j], valids[j], seq, None, None, mx)


# ---- COUNT(*), COUNT(x) ----------------------------------------------------------------------

cdef class _CountBase(Aggregate):

    def __init__(self, dtype):
        Aggregate.__init__(self, dtype)
        self.result_is_float = False

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.counts.resize(n_slots)
        return 0

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        cdef int64_t* res = <int64_t*>out
        cdef int64_t* counts = self.counts.data()
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            res[i] = counts[s] if s >= 0 else 0
            out_valid[i] = s >= 0
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        # Through a local pointer: extensions build with -fno-strict-aliasing, so every store
        # would otherwise reload the vector's data pointer.
        cdef int64_t* counts = self.counts.data()
        cdef Py_ssize_t i
        for i in range(n):
            if slots[i] >= 0:
                counts[slots[i]] = 0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef int64_t* a = self.counts.data()
        cdef const int64_t* b = (<_CountBase>other).counts.data()
        cdef Py_ssize_t i
        for i in range(n):
            if dst[i] >= 0 and src[i] >= 0 and not (<void*>other == <void*>self
                                                    and dst[i] == src[i]):
                a[dst[i]] += b[src[i]]
        return AGG_OK
    def export_state(self, slots):
        """State of ``slots`` as numpy arrays: ``counts`` (int64) and ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        _enter(self)
        try:
            return _with_seq(self, {"counts": _gather(<const int64_t*>self.counts.data(),
                                                      _slot_ptr(sl), sl.shape[0])})
        finally:
            self.busy = False

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        counts = _state_array(arrays, "counts", np.int64, n)
        _enter(self)
        try:
            _scatter(<int64_t*>self.counts.data(), _slot_ptr(sl), n, counts)
        finally:
            self.busy = False
        _take_seq(self, arrays)


cdef class CountStar(_CountBase):
    """COUNT(*): rows per slot, int64, never NULL (an empty slot counts 0). Ignores values/valid.

    >>> import numpy as np
    >>> c = CountStar()
    >>> c.ensure_capacity(1)
    >>> c.update(np.zeros(3, np.int32), None)
    >>> c.result(np.array([0], np.int32))
    (array([3]), array([ True]))
    """

    def __init__(self, dtype=np.int64):
        _CountBase.__init__(self, np.int64)
        self.takes_values = False

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        cdef int64_t* counts = self.counts.data()
        cdef int64_t* res = <int64_t*>out
        cdef Py_ssize_t i
        cdef int32_t s
        if out_valid == NULL:
            for i in range(n):
                s = slots[i]
                if s >= 0:
                    counts[s] += 1
            return AGG_OK
        for i in range(n):
            s = slots[i]
            if s >= 0:
                counts[s] += 1
                res[i] = counts[s]
                out_valid[i] = 1
            else:
                res[i] = 0
                out_valid[i] = 0
        return AGG_OK


cdef class Count(_CountBase):
    """COUNT(x): valid (non-NULL) values per slot, int64, never NULL."""

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        cdef int64_t* counts = self.counts.data()
        cdef int64_t* res = <int64_t*>out
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s >= 0:
                counts[s] += valid == NULL or valid[i] != 0
            if out_valid != NULL:
                res[i] = counts[s] if s >= 0 else 0
                out_valid[i] = s >= 0
        return AGG_OK


# ---- SUM, AVG --------------------------------------------------------------------------------

cdef inline int _put_int_sum(int128_t total, int64_t nobs, bint mean, void* out, Py_ssize_t i,
                             uint8_t* out_valid) noexcept nogil:
    if nobs == 0:
        out_valid[i] = 0
        if mean:
            (<double*>out)[i] = 0.0
        else:
            (<int64_t*>out)[i] = 0
        return AGG_OK
    if mean:
        (<double*>out)[i] = <double>total / <double>nobs
        out_valid[i] = 1
        return AGG_OK
    if total > INT64_MAX or total < INT64_MIN:
        (<int64_t*>out)[i] = 0
        out_valid[i] = 0
        return AGG_OVERFLOW
    (<int64_t*>out)[i] = <int64_t>total
    out_valid[i] = 1
    return AGG_OK


cdef inline void _put_float_sum(double s, double comp, int64_t nobs, bint mean, double* out,
                                Py_ssize_t i, uint8_t* out_valid) noexcept nogil:
    if nobs == 0:
        out[i] = 0.0
        out_valid[i] = 0
        return
    out[i] = sum_value(s, comp) / <double>nobs if mean else sum_value(s, comp)
    out_valid[i] = 1


cdef class _SumBase(Aggregate):

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.nobs.resize(n_slots)
        if self.is_float:
            self.fsum.resize(n_slots)
            self.fcomp.resize(n_slots)
        else:
            self.isum.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        cdef int64_t* nobs = self.nobs.data()
        cdef int128_t* isum = self.isum.data()
        cdef double* fsum = self.fsum.data()
        cdef double* fcomp = self.fcomp.data()
        cdef const int64_t* iv = <const int64_t*>values
        cdef const double* fv = <const double*>values
        cdef Py_ssize_t i
        cdef int32_t s
        cdef int status = AGG_OK
        if out_valid == NULL and valid == NULL:
            # The common EMIT FINAL case (no NULLs, nothing to emit) without the per-row checks
            # of the general loops below (a quarter fewer instructions per row in S3a).
            if self.is_float:
                for i in range(n):
                    s = slots[i]
                    if s >= 0:
                        add_sum(fv[i], &fsum[s], &fcomp[s])
                        nobs[s] += 1
            else:
                for i in range(n):
                    s = slots[i]
                    if s >= 0:
                        isum[s] += iv[i]
                        nobs[s] += 1
            return AGG_OK
        if self.is_float:
            for i in range(n):
                s = slots[i]
                if s < 0:
                    if out_valid != NULL:
                        (<double*>out)[i] = 0.0
                        out_valid[i] = 0
                    continue
                if valid == NULL or valid[i]:
                    add_sum(fv[i], &fsum[s], &fcomp[s])
                    nobs[s] += 1
                if out_valid != NULL:
                    _put_float_sum(fsum[s], fcomp[s], nobs[s], self.mean, <double*>out, i,
                                   out_valid)
        else:
            for i in range(n):
                s = slots[i]
                if s < 0:
                    if out_valid != NULL:
                        _put_int_sum(0, 0, self.mean, out, i, out_valid)
                    continue
                if valid == NULL or valid[i]:
                    isum[s] += iv[i]
                    nobs[s] += 1
                if out_valid != NULL:
                    status |= _put_int_sum(isum[s], nobs[s], self.mean, out, i, out_valid)
        return status

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        # State pointers in locals and one loop per dtype: extensions build with
        # -fno-strict-aliasing, so each store through out/out_valid would otherwise make the
        # compiler reload the member vectors' data pointers on every row.
        cdef const int64_t* nobs = self.nobs.data()
        cdef const int128_t* isum = self.isum.data()
        cdef const double* fsum = self.fsum.data()
        cdef const double* fcomp = self.fcomp.data()
        cdef bint mean = self.mean
        cdef Py_ssize_t i
        cdef int32_t s
        cdef int status = AGG_OK
        if self.is_float:
            for i in range(n):
                s = slots[i]
                if s < 0:
                    _put_float_sum(0.0, 0.0, 0, mean, <double*>out, i, out_valid)
                else:
                    _put_float_sum(fsum[s], fcomp[s], nobs[s], mean, <double*>out, i, out_valid)
        else:
            for i in range(n):
                s = slots[i]
                if s < 0:
                    _put_int_sum(0, 0, mean, out, i, out_valid)
                else:
                    status |= _put_int_sum(isum[s], nobs[s], mean, out, i, out_valid)
        return status

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef int64_t* nobs = self.nobs.data()
        cdef int128_t* isum = self.isum.data()
        cdef double* fsum = self.fsum.data()
        cdef double* fcomp = self.fcomp.data()
        cdef Py_ssize_t i
        cdef int32_t s
        if self.is_float:
            for i in range(n):
                s = slots[i]
                if s >= 0:
                    nobs[s] = 0
                    fsum[s] = 0.0
                    fcomp[s] = 0.0
        else:
            for i in range(n):
                s = slots[i]
                if s >= 0:
                    nobs[s] = 0
                    isum[s] = 0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef int64_t* nobs = self.nobs.data()
        cdef int128_t* isum = self.isum.data()
        cdef double* fsum = self.fsum.data()
        cdef double* fcomp = self.fcomp.data()
        cdef const int64_t* o_nobs = (<_SumBase>other).nobs.data()
        cdef const int128_t* o_isum = (<_SumBase>other).isum.data()
        cdef const double* o_fsum = (<_SumBase>other).fsum.data()
        cdef const double* o_fcomp = (<_SumBase>other).fcomp.data()
        cdef bint same = <void*>other == <void*>self
        cdef Py_ssize_t i
        cdef int32_t d, s
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or (same and d == s):
                continue
            nobs[d] += o_nobs[s]
            if self.is_float:
                # Two compensated sums: add the plain parts with compensation, then the errors.
                add_sum(o_fsum[s], &fsum[d], &fcomp[d])
                fcomp[d] += o_fcomp[s]
            else:
                isum[d] += o_isum[s]
        return AGG_OK
    def export_state(self, slots):
        """State of ``slots``: ``nobs``, then ``fsum`` and ``fcomp`` (the Neumaier pair, float64
        input) or ``sum_hi`` and ``sum_lo`` (the exact 128-bit sum as its high and low 64-bit
        words, int64 input); and ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {"nobs": _gather(<const int64_t*>self.nobs.data(), sp, n)}
            if self.is_float:
                d["fsum"] = _gather(<const double*>self.fsum.data(), sp, n)
                d["fcomp"] = _gather(<const double*>self.fcomp.data(), sp, n)
            else:
                d["sum_hi"], d["sum_lo"] = _export_i128(self.isum.data(), sp, n)
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        nobs = _state_array(arrays, "nobs", np.int64, n)
        if self.is_float:
            a = _state_array(arrays, "fsum", np.float64, n)
            b = _state_array(arrays, "fcomp", np.float64, n)
        else:
            a = _state_array(arrays, "sum_hi", np.int64, n)
            b = _state_array(arrays, "sum_lo", np.int64, n)
        _enter(self)
        try:
            _scatter(<int64_t*>self.nobs.data(), sp, n, nobs)
            if self.is_float:
                _scatter(<double*>self.fsum.data(), sp, n, a)
                _scatter(<double*>self.fcomp.data(), sp, n, b)
            else:
                _import_i128(self.isum.data(), sp, n, a, b)
        finally:
            self.busy = False
        _take_seq(self, arrays)


cdef class Sum(_SumBase):
    """SUM(x): int64 (exact; OutOfRangeError if the total leaves int64) for int64 input,
    Neumaier-compensated float64 for float64 input. NULL when the slot has no valid value."""


cdef class Avg(_SumBase):
    """AVG(x) as float64: exact BIGINT sum / count, or compensated DOUBLE sum / count. NULL when
    the slot has no valid value."""

    def __init__(self, dtype):
        _SumBase.__init__(self, dtype)
        self.mean = True
        self.result_is_float = True


# ---- MIN, MAX --------------------------------------------------------------------------------

cdef inline bint _before(value_t a, value_t b) noexcept nogil:
    # Strictly-before in DuckDB's order, where NaN sorts after every number.
    if value_t is double:
        return a < b or (b != b and a == a)
    else:
        return a < b


cdef int _minmax_update(value_t* cur, uint8_t* has, bint is_max, Py_ssize_t n,
                        const int32_t* slots, const value_t* values, const uint8_t* valid,
                        value_t* out, uint8_t* out_valid) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t s
    cdef value_t v
    for i in range(n):
        s = slots[i]
        if s >= 0 and (valid == NULL or valid[i]):
            v = values[i]
            # Ties replace the held value, as DuckDB does (visible only for -0.0 vs 0.0).
            if not has[s] or not (_before(v, cur[s]) if is_max else _before(cur[s], v)):
                cur[s] = v
                has[s] = 1
        if out_valid != NULL:
            if s >= 0 and has[s]:
                out[i] = cur[s]
                out_valid[i] = 1
            else:
                out[i] = 0
                out_valid[i] = 0
    return AGG_OK


cdef void _minmax_merge(value_t* cur_d, uint8_t* has_d, const value_t* cur_s,
                        const uint8_t* has_s, bint is_max, Py_ssize_t n, const int32_t* dst,
                        const int32_t* src) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t d, s
    for i in range(n):
        d = dst[i]
        s = src[i]
        if d < 0 or s < 0 or not has_s[s]:
            continue
        if not has_d[d] or not (_before(cur_s[s], cur_d[d]) if is_max
                                else _before(cur_d[d], cur_s[s])):
            cur_d[d] = cur_s[s]
            has_d[d] = 1


cdef void _copy_out(const value_t* cur, const uint8_t* present, uint8_t want, Py_ssize_t n,
                    const int32_t* slots, value_t* out, uint8_t* out_valid) noexcept nogil:
    # result() of MIN/MAX/FIRST/LAST: the held value where present[s] == want, else NULL.
    cdef Py_ssize_t i
    cdef int32_t s
    for i in range(n):
        s = slots[i]
        if s >= 0 and present[s] == want:
            out[i] = cur[s]
            out_valid[i] = 1
        else:
            out[i] = 0
            out_valid[i] = 0


cdef class _MinMaxBase(Aggregate):

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.has.resize(n_slots)
        if self.is_float:
            self.fval.resize(n_slots)
        else:
            self.ival.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        if self.is_float:
            return _minmax_update(self.fval.data(), self.has.data(), self.is_max, n, slots,
                                  <const double*>values, valid, <double*>out, out_valid)
        return _minmax_update(self.ival.data(), self.has.data(), self.is_max, n, slots,
                              <const int64_t*>values, valid, <int64_t*>out, out_valid)

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        if self.is_float:
            _copy_out(<const double*>self.fval.data(), self.has.data(), 1, n, slots,
                      <double*>out, out_valid)
        else:
            _copy_out(<const int64_t*>self.ival.data(), self.has.data(), 1, n, slots,
                      <int64_t*>out, out_valid)
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(n):
            if slots[i] >= 0:
                self.has[slots[i]] = 0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        if self.is_float:
            _minmax_merge(self.fval.data(), self.has.data(),
                          <const double*>(<_MinMaxBase>other).fval.data(),
                          (<_MinMaxBase>other).has.data(), self.is_max, n, dst, src)
        else:
            _minmax_merge(self.ival.data(), self.has.data(),
                          <const int64_t*>(<_MinMaxBase>other).ival.data(),
                          (<_MinMaxBase>other).has.data(), self.is_max, n, dst, src)
        return AGG_OK
    def export_state(self, slots):
        """State of ``slots``: ``has`` (uint8), ``value`` (input dtype) and ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {"has": _gather(<const uint8_t*>self.has.data(), sp, n)}
            if self.is_float:
                d["value"] = _gather(<const double*>self.fval.data(), sp, n)
            else:
                d["value"] = _gather(<const int64_t*>self.ival.data(), sp, n)
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        has = _state_array(arrays, "has", np.uint8, n)
        value = _state_array(arrays, "value", self.dtype, n)
        _enter(self)
        try:
            _scatter(<uint8_t*>self.has.data(), sp, n, has)
            if self.is_float:
                _scatter(<double*>self.fval.data(), sp, n, value)
            else:
                _scatter(<int64_t*>self.ival.data(), sp, n, value)
        finally:
            self.busy = False
        _take_seq(self, arrays)


cdef class Min(_MinMaxBase):
    """MIN(x), same dtype as the input; NaN sorts after every number. NULL when no valid value."""


cdef class Max(_MinMaxBase):
    """MAX(x), same dtype as the input; NaN sorts after every number. NULL when no valid value."""

    def __init__(self, dtype):
        _MinMaxBase.__init__(self, dtype)
        self.is_max = True


# ---- MIN, MAX of text ------------------------------------------------------------------------

cdef inline int _text_cmp(const int32_t* off, const char* data, int64_t a, int64_t b) noexcept nogil:
    """<0, 0, >0 as string ``a`` sorts before, with, after string ``b``: bytes, then length
    (a prefix first), which for UTF-8 is code point order."""
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


cdef class _TextMinMaxBase(_MinMaxBase):

    def __init__(self, strings):
        _MinMaxBase.__init__(self, np.int64)
        if not hasattr(strings, "arrow_values"):
            raise TypeError("a text MIN/MAX needs the job's string dictionary")
        self.strings = strings

    def __repr__(self):
        return f"{type(self).__name__}()"

    cdef int _take_view(self) except -1:
        # pa.string() (int32 offsets), as StringInterner.values() gives; Arrow's own buffer
        # addresses, so no copy. Sliced views are not expected: the offset is checked anyway.
        view = self.strings.arrow_values()
        if str(view.type) != "string" or view.offset != 0:
            raise TypeError(f"string dictionary view must be an unsliced pa.string() array, "
                            f"got {view.type}")
        bufs = view.buffers()
        self.view = view
        self.offsets = <const int32_t*><size_t>bufs[1].address
        self.data = <const char*><size_t>bufs[2].address if bufs[2] is not None else NULL
        return 0

    cdef void _drop_view(self):
        self.offsets = NULL
        self.data = NULL
        self.view = None

    cdef _run(self, slots, values, valid, seq, out_values, out_valid, int32_t known_max=-2):
        self._take_view()
        try:
            return _MinMaxBase._run(self, slots, values, valid, seq, out_values, out_valid,
                                    known_max)
        finally:
            self._drop_view()

    def merge(self, dst_slots, Aggregate other not None, src_slots):
        """As ``Aggregate.merge``; strings compare through this object's dictionary, which
        ``other`` must share (one job, one dictionary)."""
        if type(other) is type(self) and (<_TextMinMaxBase>other).strings is not self.strings:
            raise ValueError("cannot merge text MIN/MAX states of different string dictionaries")
        self._take_view()
        try:
            _MinMaxBase.merge(self, dst_slots, other, src_slots)
        finally:
            self._drop_view()

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        cdef const int32_t* off = self.offsets
        cdef const char* data = self.data
        cdef int64_t* cur = self.ival.data()
        cdef uint8_t* has = self.has.data()
        cdef const int64_t* vals = <const int64_t*>values
        cdef int64_t* res = <int64_t*>out
        cdef bint is_max = self.is_max
        cdef Py_ssize_t i
        cdef int32_t s
        cdef int c
        if off == NULL:
            return AGG_NO_STRINGS
        for i in range(n):
            s = slots[i]
            if s >= 0 and (valid == NULL or valid[i]):
                if not has[s]:
                    cur[s] = vals[i]
                    has[s] = 1
                else:
                    c = _text_cmp(off, data, vals[i], cur[s])
                    if (c > 0) if is_max else (c < 0):
                        cur[s] = vals[i]
            if out_valid != NULL:
                if s >= 0 and has[s]:
                    res[i] = cur[s]
                    out_valid[i] = 1
                else:
                    res[i] = 0
                    out_valid[i] = 0
        return AGG_OK

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef const int32_t* off = self.offsets
        cdef const char* data = self.data
        cdef int64_t* cur_d = self.ival.data()
        cdef uint8_t* has_d = self.has.data()
        cdef const int64_t* cur_s = (<_MinMaxBase>other).ival.data()
        cdef const uint8_t* has_s = (<_MinMaxBase>other).has.data()
        cdef bint is_max = self.is_max
        cdef Py_ssize_t i
        cdef int32_t d, s
        cdef int c
        if off == NULL:
            return AGG_NO_STRINGS
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or not has_s[s]:
                continue
            if not has_d[d]:
                cur_d[d] = cur_s[s]
                has_d[d] = 1
                continue
            c = _text_cmp(off, data, cur_s[s], cur_d[d])
            if (c > 0) if is_max else (c < 0):
                cur_d[d] = cur_s[s]
        return AGG_OK


cdef class TextMin(_TextMinMaxBase):
    """MIN(x) of text: ``x`` as int64 codes of ``strings`` (a StringDict); the result is the code
    of the smallest string by UTF-8 bytes (DuckDB's VARCHAR order). NULL when no valid value.

    >>> import numpy as np, pyarrow as pa
    >>> from velostream.batch import StringDict
    >>> d = StringDict()
    >>> codes = d.encode_arrow(pa.array(["b", "", "ab"]))[0].astype(np.int64)
    >>> m = TextMin(d)
    >>> m.ensure_capacity(1)
    >>> m.update(np.zeros(3, np.int32), codes)
    >>> d.values_of(m.result(np.array([0], np.int32))[0])
    ['']
    """


cdef class TextMax(_TextMinMaxBase):
    """MAX(x) of text; see ``TextMin``."""

    def __init__(self, strings):
        _TextMinMaxBase.__init__(self, strings)
        self.is_max = True


# ---- VAR_SAMP, VAR_POP, STDDEV_SAMP, STDDEV_POP ----------------------------------------------

cdef inline void _put_var(int64_t nobs, double m2, bint sample, bint root, double* out,
                          Py_ssize_t i, uint8_t* out_valid) noexcept nogil:
    cdef double v
    if nobs < 1 + sample:
        out[i] = 0.0
        out_valid[i] = 0
        return
    if nobs == 1 and not sample:  # DuckDB: one value's population variance is 0, even NaN or inf
        out[i] = 0.0
        out_valid[i] = 1
        return
    v = m2 / <double>(nobs - sample)
    out[i] = sqrt(v) if root else v
    out_valid[i] = 1


cdef int _var_update(int64_t* nobs, double* mean, double* m2, bint sample, bint root,
                     Py_ssize_t n, const int32_t* slots, const value_t* values,
                     const uint8_t* valid, double* out, uint8_t* out_valid) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t s
    for i in range(n):
        s = slots[i]
        if s >= 0 and (valid == NULL or valid[i]):
            add_var(<double>values[i], &nobs[s], &mean[s], &m2[s])
        if out_valid != NULL:
            if s >= 0:
                _put_var(nobs[s], m2[s], sample, root, out, i, out_valid)
            else:
                _put_var(0, 0.0, sample, root, out, i, out_valid)
    return AGG_OK


cdef class Variance(Aggregate):
    """VAR_SAMP / VAR_POP / STDDEV_SAMP / STDDEV_POP as float64 (Welford; Chan for merge).
    ``sample``: divide by n - 1 (NULL below 2 values) rather than n (NULL at 0 values);
    ``sqrt``: standard deviation instead of variance."""

    def __init__(self, dtype, sample=True, sqrt=False):
        Aggregate.__init__(self, dtype)
        self.result_is_float = True
        self.samp = bool(sample)
        self.root = bool(sqrt)

    @property
    def sample(self):
        return bool(self.samp)

    @property
    def sqrt(self):
        return bool(self.root)

    def __repr__(self):
        return f"Variance(dtype={self.dtype}, sample={self.sample}, sqrt={self.sqrt})"

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.nobs.resize(n_slots)
        self.mean.resize(n_slots)
        self.m2.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        if self.is_float:
            return _var_update(self.nobs.data(), self.mean.data(), self.m2.data(), self.samp,
                               self.root, n, slots, <const double*>values, valid,
                               <double*>out, out_valid)
        return _var_update(self.nobs.data(), self.mean.data(), self.m2.data(), self.samp,
                           self.root, n, slots, <const int64_t*>values, valid,
                           <double*>out, out_valid)

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s >= 0:
                _put_var(self.nobs[s], self.m2[s], self.samp, self.root, <double*>out, i,
                         out_valid)
            else:
                _put_var(0, 0.0, self.samp, self.root, <double*>out, i, out_valid)
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s >= 0:
                self.nobs[s] = 0
                self.mean[s] = 0.0
                self.m2[s] = 0.0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef int64_t* nobs = self.nobs.data()
        cdef double* mean = self.mean.data()
        cdef double* m2 = self.m2.data()
        cdef const int64_t* o_nobs = (<Variance>other).nobs.data()
        cdef const double* o_mean = (<Variance>other).mean.data()
        cdef const double* o_m2 = (<Variance>other).m2.data()
        cdef bint same = <void*>other == <void*>self
        cdef Py_ssize_t i
        cdef int32_t d, s
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or (same and d == s):
                continue
            merge_var(o_nobs[s], o_mean[s], o_m2[s], &nobs[d], &mean[d], &m2[d])
        return AGG_OK
    def export_state(self, slots):
        """State of ``slots``: Welford ``nobs`` (int64), ``mean`` and ``m2`` (float64), and
        ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {"nobs": _gather(<const int64_t*>self.nobs.data(), sp, n),
                 "mean": _gather(<const double*>self.mean.data(), sp, n),
                 "m2": _gather(<const double*>self.m2.data(), sp, n)}
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        nobs = _state_array(arrays, "nobs", np.int64, n)
        mean = _state_array(arrays, "mean", np.float64, n)
        m2 = _state_array(arrays, "m2", np.float64, n)
        _enter(self)
        try:
            _scatter(<int64_t*>self.nobs.data(), sp, n, nobs)
            _scatter(<double*>self.mean.data(), sp, n, mean)
            _scatter(<double*>self.m2.data(), sp, n, m2)
        finally:
            self.busy = False
        _take_seq(self, arrays)


# ---- COUNT(DISTINCT x), APPROX_COUNT_DISTINCT ------------------------------------------------

cdef inline int64_t _distinct_key(value_t v) noexcept nogil:
    cdef int64_t k
    cdef double d
    if value_t is double:
        if v != v:
            return 0x7FF8000000000000        # one key for every NaN payload
        d = 0.0 if v == 0.0 else v             # -0.0 and 0.0 are one value
        memcpy(&k, &d, sizeof(k))
        return k
    else:
        return v


cdef int _distinct_update(vector[unordered_set[int64_t]]* sets, Py_ssize_t n,
                          const int32_t* slots, const value_t* values, const uint8_t* valid,
                          int64_t* out, uint8_t* out_valid) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t s
    for i in range(n):
        s = slots[i]
        if s >= 0 and (valid == NULL or valid[i]):
            if vs_set_insert(sets[0][s], _distinct_key(values[i])) != 0:
                return AGG_NO_MEMORY
        if out_valid != NULL:
            out[i] = <int64_t>sets[0][s].size() if s >= 0 else 0
            out_valid[i] = s >= 0
    return AGG_OK


cdef class CountDistinct(Aggregate):
    """COUNT(DISTINCT x): exact number of distinct valid values per slot, int64, never NULL.
    Floats compare by value with -0.0 == 0.0 and all NaNs equal."""

    def __init__(self, dtype):
        Aggregate.__init__(self, dtype)
        self.result_is_float = False

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.sets.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        if self.is_float:
            return _distinct_update(&self.sets, n, slots, <const double*>values, valid,
                                    <int64_t*>out, out_valid)
        return _distinct_update(&self.sets, n, slots, <const int64_t*>values, valid,
                                <int64_t*>out, out_valid)

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        cdef int64_t* res = <int64_t*>out
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            res[i] = <int64_t>self.sets[s].size() if s >= 0 else 0
            out_valid[i] = s >= 0
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(n):
            if slots[i] >= 0:
                vs_set_free(self.sets[slots[i]])

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef vector[unordered_set[int64_t]]* o_sets = &(<CountDistinct>other).sets
        cdef bint same = <void*>other == <void*>self
        cdef Py_ssize_t i
        cdef int32_t d, s
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or (same and d == s):
                continue
            if vs_set_merge(self.sets[d], o_sets[0][s]) != 0:
                return AGG_NO_MEMORY
        return AGG_OK
    def export_state(self, slots):
        """State of ``slots``: each slot's distinct keys flattened, ``set_values`` (int64 keys:
        the value itself for int64 input, the canonical float64 bit pattern for float64 input) with
        ``set_offsets`` (int64, length n + 1), and ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0], i
        cdef const int32_t* sp = _slot_ptr(sl)
        offsets = np.empty(n + 1, dtype=np.int64)
        cdef int64_t[::1] off = offsets
        cdef int64_t[::1] vals
        off[0] = 0
        _enter(self)
        try:
            if n:
                with nogil:
                    for i in range(n):
                        off[i + 1] = off[i] + <int64_t>self.sets[sp[i]].size()
            values = np.empty(off[n], dtype=np.int64)
            vals = values
            if off[n]:
                with nogil:
                    for i in range(n):
                        if off[i + 1] > off[i]:
                            vs_set_copy_out(self.sets[sp[i]], &vals[off[i]])
        finally:
            self.busy = False
        return _with_seq(self, {"set_offsets": offsets, "set_values": values})

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their sets."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0], i
        cdef const int32_t* sp = _slot_ptr(sl)
        off_arr, total = _state_lists(arrays, "set", n)
        val_arr = _state_array(arrays, "set_values", np.int64, total)
        cdef const int64_t[::1] off = off_arr
        cdef const int64_t[::1] v = val_arr
        cdef const int64_t* vp = &v[0] if v.shape[0] else NULL
        cdef int status = AGG_OK
        _enter(self)
        try:
            if n:
                with nogil:
                    for i in range(n):
                        if vs_set_assign(self.sets[sp[i]], vp + off[i],
                                         <size_t>(off[i + 1] - off[i])) != 0:
                            status = AGG_NO_MEMORY
                            break
        finally:
            self.busy = False
        _raise_status(status)
        _take_seq(self, arrays)


cdef class ApproxCountDistinct(CountDistinct):
    """APPROX_COUNT_DISTINCT(x), answered exactly (same as COUNT(DISTINCT x))."""


# ---- FIRST_VALUE, LAST_VALUE -----------------------------------------------------------------

cdef int _pick_update(value_t* val, uint8_t* state, int64_t* pseq, bint last, Py_ssize_t n,
                      const int32_t* slots, const value_t* values, const uint8_t* valid,
                      const int64_t* seq, int64_t seq0, value_t* out,
                      uint8_t* out_valid) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t s
    cdef int64_t q
    cdef bint ok
    for i in range(n):
        s = slots[i]
        if s >= 0 and (valid == NULL or valid[i] != 2):  # 2: filtered out (aggregate.pxd)
            q = seq[i] if seq != NULL else seq0 + i
            # On equal seq LAST takes the newer row and FIRST keeps the older one.
            if state[s] == 0 or (q >= pseq[s] if last else q < pseq[s]):
                ok = valid == NULL or valid[i] != 0
                state[s] = 2 if ok else 1
                val[s] = values[i] if ok else 0
                pseq[s] = q
        if out_valid != NULL:
            if s >= 0 and state[s] == 2:
                out[i] = val[s]
                out_valid[i] = 1
            else:
                out[i] = 0
                out_valid[i] = 0
    return AGG_OK


cdef void _pick_merge(value_t* val_d, uint8_t* state_d, int64_t* seq_d, const value_t* val_s,
                      const uint8_t* state_s, const int64_t* seq_s, bint last, Py_ssize_t n,
                      const int32_t* dst, const int32_t* src) noexcept nogil:
    cdef Py_ssize_t i
    cdef int32_t d, s
    for i in range(n):
        d = dst[i]
        s = src[i]
        if d < 0 or s < 0 or state_s[s] == 0:
            continue
        # The source counts as the newer side on equal seq, as an incoming row does in update.
        if state_d[d] == 0 or (seq_s[s] >= seq_d[d] if last else seq_s[s] < seq_d[d]):
            val_d[d] = val_s[s]
            state_d[d] = state_s[s]
            seq_d[d] = seq_s[s]


cdef class _PickBase(Aggregate):

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.state.resize(n_slots)
        self.seq.resize(n_slots)
        if self.is_float:
            self.fval.resize(n_slots)
        else:
            self.ival.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        if self.is_float:
            return _pick_update(self.fval.data(), self.state.data(), self.seq.data(), self.last,
                                n, slots, <const double*>values, valid, seq, seq0,
                                <double*>out, out_valid)
        return _pick_update(self.ival.data(), self.state.data(), self.seq.data(), self.last,
                            n, slots, <const int64_t*>values, valid, seq, seq0,
                            <int64_t*>out, out_valid)

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        if self.is_float:
            _copy_out(<const double*>self.fval.data(), self.state.data(), 2, n, slots,
                      <double*>out, out_valid)
        else:
            _copy_out(<const int64_t*>self.ival.data(), self.state.data(), 2, n, slots,
                      <int64_t*>out, out_valid)
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(n):
            if slots[i] >= 0:
                self.state[slots[i]] = 0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef const uint8_t* o_state = (<_PickBase>other).state.data()
        cdef const int64_t* o_seq = (<_PickBase>other).seq.data()
        if self.is_float:
            _pick_merge(self.fval.data(), self.state.data(), self.seq.data(),
                        <const double*>(<_PickBase>other).fval.data(), o_state, o_seq,
                        self.last, n, dst, src)
        else:
            _pick_merge(self.ival.data(), self.state.data(), self.seq.data(),
                        <const int64_t*>(<_PickBase>other).ival.data(), o_state, o_seq,
                        self.last, n, dst, src)
        return AGG_OK
    def export_state(self, slots):
        """State of ``slots``: ``state`` (uint8: 0 empty, 1 picked a NULL, 2 picked a value),
        ``seq`` (int64 arrival number of the picked row), ``value`` (input dtype) and
        ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {"state": _gather(<const uint8_t*>self.state.data(), sp, n),
                 "seq": _gather(<const int64_t*>self.seq.data(), sp, n)}
            if self.is_float:
                d["value"] = _gather(<const double*>self.fval.data(), sp, n)
            else:
                d["value"] = _gather(<const int64_t*>self.ival.data(), sp, n)
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        state = _state_array(arrays, "state", np.uint8, n)
        seq = _state_array(arrays, "seq", np.int64, n)
        value = _state_array(arrays, "value", self.dtype, n)
        _enter(self)
        try:
            _scatter(<uint8_t*>self.state.data(), sp, n, state)
            _scatter(<int64_t*>self.seq.data(), sp, n, seq)
            if self.is_float:
                _scatter(<double*>self.fval.data(), sp, n, value)
            else:
                _scatter(<int64_t*>self.ival.data(), sp, n, value)
        finally:
            self.busy = False
        _take_seq(self, arrays)


cdef class First(_PickBase):
    """FIRST_VALUE(x): the value of the earliest row by arrival (``seq``), NULL if that row's
    value is NULL or the slot is empty. Without ``seq`` rows are numbered per object in call
    order, so pass ``seq`` when states from different objects will be merged."""


cdef class Last(_PickBase):
    """LAST_VALUE(x): the value of the latest row by arrival (``seq``); see ``First``."""

    def __init__(self, dtype):
        _PickBase.__init__(self, dtype)
        self.last = True


# ---- MEDIAN ----------------------------------------------------------------------------------

cdef inline size_t _quantile_index(size_t total, double q, bint disc, double* frac) noexcept nogil:
    # The lower index k (0-based, NaNs sorted last) of quantile q of ``total`` values, and how far
    # towards index k + 1 a continuous quantile lies: DuckDB's quantile_disc takes the value at
    # ceil(q N) - 1, quantile_cont interpolates at q (N - 1). MEDIAN (q = 0.5) is k = ceil(N / 2) - 1.
    cdef double rn, fl
    frac[0] = 0.0
    if total == 0:
        return 0
    if disc:
        rn = ceil(q * <double>total) - 1.0
        return <size_t>rn if rn > 0.0 else 0
    rn = q * <double>(total - 1)
    fl = floor(rn)
    frac[0] = rn - fl
    return <size_t>fl


cdef inline size_t _median_target(size_t m, int64_t n_nan, double q, bint disc) noexcept nogil:
    # Size of ``lo`` in heap form: the k + 1 smallest of N values (k the quantile's lower index),
    # or all m numbers when index k reaches into the NaNs.
    cdef double frac
    cdef size_t need = _quantile_index(m + <size_t>n_nan, q, disc, &frac) + 1
    if m + <size_t>n_nan == 0:
        return 0
    return m if m < need else need


cdef inline int _median_push(vector[double]& lo, vector[double]& hi, double x) noexcept nogil:
    # Heap form. Keeps every lo <= every hi whatever the heap sizes; _median_balance then fixes
    # the sizes.
    if lo.size() > 0 and x <= lo.front():
        return vs_heap_push(lo, x)
    return vs_heap_push(hi, -x)


cdef int _median_balance(vector[double]& lo, vector[double]& hi, int64_t n_nan, double q,
                         bint disc) noexcept nogil:
    cdef size_t target = _median_target(lo.size() + hi.size(), n_nan, q, disc)
    # Push before pop: a failed push leaves both heaps intact.
    while lo.size() > target:
        if vs_heap_push(hi, -lo.front()) != 0:
            return AGG_NO_MEMORY
        vs_heap_pop(lo)
    while lo.size() < target:
        if vs_heap_push(lo, -hi.front()) != 0:
            return AGG_NO_MEMORY
        vs_heap_pop(hi)
    return AGG_OK


cdef inline double _interpolate_middle(double a, double b, double frac) noexcept nogil:
    # DuckDB's quantile_cont interpolation: lo + (hi - lo) * frac (frac 0.5 for a median), exact
    # when lo == hi (so median(inf, inf) is inf) and free of the overflow of (lo + hi) / 2. With
    # one side infinite the result is that infinity (-inf and 1 give -inf; -inf and inf NaN), as
    # in DuckDB, where lo + (hi - lo) * frac would give NaN.
    if a == b:
        return a
    if isinf(a) or isinf(b):
        return a + b
    return a + (b - a) * frac


cdef inline void _put_median(vector[double]& lo, vector[double]& hi, int64_t n_nan, bint heaped,
                             double q, bint disc, double* out, Py_ssize_t i,
                             uint8_t* out_valid) noexcept nogil:
    # With N values sorted (NaNs last) the quantile is index k (_quantile_index), interpolated
    # towards index k + 1 when it lies between; an index at or past the m numbers is a NaN.
    cdef size_t m = lo.size() + hi.size()
    cdef size_t total = m + <size_t>n_nan
    cdef size_t k
    cdef double a, b, frac
    if total == 0:
        out[i] = 0.0
        out_valid[i] = 0
        return
    out_valid[i] = 1
    k = _quantile_index(total, q, disc, &frac)
    if k >= m:
        out[i] = NAN
        return
    if heaped:
        a = lo.front()                         # the invariant puts index k on top of lo
    else:
        a = vs_bag_nth(lo, k)
    if frac == 0.0:
        out[i] = a
    elif k + 1 >= m:
        out[i] = NAN
    else:
        b = -hi.front() if heaped else vs_min_from(lo, k + 1)
        out[i] = _interpolate_middle(a, b, frac)


cdef inline int _median_heapify(Median m, int32_t s) noexcept nogil:
    # Bag form -> heap form (no-op when already heaps).
    if m.heaped[s]:
        return AGG_OK
    if vs_bag_to_heaps(m.lo[s], m.hi[s],
                       _median_target(m.lo[s].size(), m.n_nan[s], m.q, m.disc)) != 0:
        return AGG_NO_MEMORY
    m.heaped[s] = 1
    return AGG_OK


cdef inline int _median_add(Median m, int32_t s, double x) noexcept nogil:
    if x != x:
        m.n_nan[s] += 1
        if not m.heaped[s]:
            return AGG_OK
    elif not m.heaped[s]:
        return AGG_NO_MEMORY if vs_vec_append(m.lo[s], x) != 0 else AGG_OK
    elif _median_push(m.lo[s], m.hi[s], x) != 0:
        return AGG_NO_MEMORY
    return _median_balance(m.lo[s], m.hi[s], m.n_nan[s], m.q, m.disc)


cdef class Median(Aggregate):
    """MEDIAN(x) as float64, exact: the middle value, or DuckDB's ``quantile_cont(x, 0.5)``
    interpolation of the two middle values for an even count; NaN sorts last. NULL when the slot
    has no valid value. ``fraction`` makes it PERCENTILE_CONT(x, fraction) (DuckDB's
    ``quantile_cont``), and ``discrete`` PERCENTILE_DISC (``quantile_disc``: the value at index
    ceil(fraction N) - 1, as float64).

    >>> import numpy as np
    >>> p = Median(np.float64, fraction=0.3, discrete=True)
    >>> p.ensure_capacity(1)
    >>> p.update(np.zeros(4, np.int32), np.array([4.0, 1.0, 3.0, 2.0]))
    >>> p.result(np.array([0], np.int32))
    (array([2.]), array([ True]))
    """

    def __init__(self, dtype, fraction=0.5, discrete=False):
        Aggregate.__init__(self, dtype)
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"a quantile fraction must be between 0 and 1, got {fraction}")
        self.q = fraction
        self.disc = bool(discrete)
        self.result_is_float = True

    @property
    def fraction(self):
        return self.q

    @property
    def discrete(self):
        return self.disc

    def __repr__(self):
        return f"Median(dtype={self.dtype}, fraction={self.q}, discrete={self.disc})"

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.lo.resize(n_slots)
        self.hi.resize(n_slots)
        self.n_nan.resize(n_slots)
        self.heaped.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        cdef const int64_t* iv = <const int64_t*>values
        cdef const double* fv = <const double*>values
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s < 0:
                if out_valid != NULL:
                    (<double*>out)[i] = 0.0
                    out_valid[i] = 0
                continue
            if out_valid != NULL and _median_heapify(self, s) != AGG_OK:
                return AGG_NO_MEMORY
            if valid == NULL or valid[i]:
                if _median_add(self, s, fv[i] if self.is_float else <double>iv[i]) != AGG_OK:
                    return AGG_NO_MEMORY
            if out_valid != NULL:
                _put_median(self.lo[s], self.hi[s], self.n_nan[s], True, self.q, self.disc,
                            <double*>out, i, out_valid)
        return AGG_OK

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s < 0:
                (<double*>out)[i] = 0.0
                out_valid[i] = 0
                continue
            # A bag is read with nth_element and stays a bag: after EMIT FINAL's one read the
            # slot is reset, so building heaps would be wasted.
            _put_median(self.lo[s], self.hi[s], self.n_nan[s], self.heaped[s], self.q, self.disc,
                        <double*>out, i, out_valid)
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s >= 0:
                vs_vec_free(self.lo[s])
                vs_vec_free(self.hi[s])
                self.n_nan[s] = 0
                self.heaped[s] = 0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        # Values are copied one by one through _add, so the destination keeps its form (a bag
        # stays a bag) whatever the source's form; a heap-form source's hi holds negated values.
        cdef vector[vector[double]]* o_lo = &(<Median>other).lo
        cdef vector[vector[double]]* o_hi = &(<Median>other).hi
        cdef const int64_t* o_nan = (<Median>other).n_nan.data()
        cdef bint same = <void*>other == <void*>self
        cdef Py_ssize_t i
        cdef size_t j
        cdef int64_t k
        cdef int32_t d, s
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or (same and d == s):
                continue
            for j in range(o_lo[0][s].size()):
                if _median_add(self, d, o_lo[0][s][j]) != AGG_OK:
                    return AGG_NO_MEMORY
            for j in range(o_hi[0][s].size()):
                if _median_add(self, d, -o_hi[0][s][j]) != AGG_OK:
                    return AGG_NO_MEMORY
            for k in range(o_nan[s]):
                if _median_add(self, d, NAN) != AGG_OK:
                    return AGG_NO_MEMORY
        return AGG_OK

    def export_state(self, slots):
        """State of ``slots`` exactly as laid out: ``n_nan`` (int64), ``heaped`` (uint8), the
        ``lo`` and ``hi`` vectors flattened (``lo_values``/``hi_values`` float64, in storage order:
        a bag, or heaps with hi negated) with ``lo_offsets``/``hi_offsets``; and ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {"n_nan": _gather(<const int64_t*>self.n_nan.data(), sp, n),
                 "heaped": _gather(<const uint8_t*>self.heaped.data(), sp, n)}
            d["lo_offsets"], d["lo_values"] = _export_vecs(&self.lo, sp, n)
            d["hi_offsets"], d["hi_values"] = _export_vecs(&self.hi, sp, n)
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        n_nan = _state_array(arrays, "n_nan", np.int64, n)
        heaped = _state_array(arrays, "heaped", np.uint8, n)
        _enter(self)
        try:
            _import_vecs(&self.lo, sp, n, arrays, "lo")
            _import_vecs(&self.hi, sp, n, arrays, "hi")
            _scatter(<int64_t*>self.n_nan.data(), sp, n, n_nan)
            _scatter(<uint8_t*>self.heaped.data(), sp, n, heaped)
        finally:
            self.busy = False
        _take_seq(self, arrays)


# ---- two-input aggregates: CORR, COVAR_*, REGR_*, ARG_MIN, ARG_MAX ----------------------------

cdef class _PairBase(Aggregate):
    """Base of the aggregates of two arguments; see aggregate.pxd for the ``values`` layout."""

    cdef _run(self, slots, values, valid, seq, out_values, out_valid, int32_t known_max=-2):
        # Aggregate._run with (n, 2) values: the same checks, GIL handling and arrival numbers.
        cdef const int32_t[::1] sl = slots
        cdef const int64_t[:, ::1] ivals
        cdef const double[:, ::1] fvals
        cdef const uint8_t[::1] vmask
        cdef const int64_t[::1] seqs
        cdef int64_t[::1] iout
        cdef double[::1] fout
        cdef uint8_t[::1] omask
        cdef Py_ssize_t n = sl.shape[0]
        cdef const void* vp = NULL
        cdef const uint8_t* mp = NULL
        cdef const int64_t* qp = NULL
        cdef void* op = NULL
        cdef uint8_t* omp = NULL
        cdef int64_t seq0 = self.next_seq
        cdef int32_t mx = -1
        cdef int status = AGG_OK
        if values is None:
            raise TypeError(f"{type(self).__name__} needs an (n, 2) values array")
        if self.is_float:
            fvals = values
            if fvals.shape[0] != n or fvals.shape[1] != 2:
                raise ValueError(f"values has shape ({fvals.shape[0]}, {fvals.shape[1]}), "
                                 f"expected ({n}, 2)")
            if n:
                vp = &fvals[0, 0]
        else:
            ivals = values
            if ivals.shape[0] != n or ivals.shape[1] != 2:
                raise ValueError(f"values has shape ({ivals.shape[0]}, {ivals.shape[1]}), "
                                 f"expected ({n}, 2)")
            if n:
                vp = &ivals[0, 0]
        if valid is not None:
            vmask = _as_u8(valid)
            _check_len(vmask.shape[0], n, "valid")
            if n:
                mp = &vmask[0]
        if seq is not None:
            seqs = seq
            _check_len(seqs.shape[0], n, "seq")
            if n:
                qp = &seqs[0]
        if out_valid is not None:
            if self.result_is_float:
                fout = out_values
                _check_len(fout.shape[0], n, "out_values")
                if n:
                    op = &fout[0]
            else:
                iout = out_values
                _check_len(iout.shape[0], n, "out_values")
                if n:
                    op = &iout[0]
            omask = _as_u8(out_valid)
            _check_len(omask.shape[0], n, "out_valid")
            if n:
                omp = &omask[0]
        if n == 0:
            return
        _enter(self)
        try:
            with nogil:
                mx = _max_slot(&sl[0], n) if known_max == -2 else known_max
                if mx < self.n_slots:
                    status = self._update(n, &sl[0], vp, mp, qp, seq0, op, omp)
        finally:
            self.busy = False
        if mx >= self.n_slots:
            raise ValueError(f"slot {mx} out of range: capacity is {self.n_slots}")
        self.next_seq = seq0 + n
        _raise_status(status)


# Covariance.kind, in this order.
COVARIANCE_KINDS = ("COVAR_POP", "COVAR_SAMP", "CORR", "REGR_SLOPE", "REGR_INTERCEPT", "REGR_R2")
cdef enum:
    K_COVAR_POP = 0
    K_COVAR_SAMP = 1
    K_CORR = 2
    K_REGR_SLOPE = 3
    K_REGR_INTERCEPT = 4
    K_REGR_R2 = 5


cdef inline void _put_cov(int kind, int64_t n, double my, double mx, double m2y, double m2x,
                          double cxy, double* out, uint8_t* ok) noexcept nogil:
    # DuckDB's results and NULLs: no pairs -> NULL; COVAR_SAMP needs 2; CORR and REGR_SLOPE are
    # plain IEEE ratios (NaN when a variance is 0); REGR_INTERCEPT is NULL unless the slope is
    # finite; REGR_R2 is NULL when x's variance is 0 (or there is one pair), 1 when y's is, else
    # CORR squared.
    cdef double slope, r
    out[0] = 0.0
    ok[0] = 0
    if n == 0 or (kind == K_COVAR_SAMP and n < 2):
        return
    ok[0] = 1
    if kind == K_COVAR_POP:
        out[0] = cxy / <double>n
    elif kind == K_COVAR_SAMP:
        out[0] = cxy / <double>(n - 1)
    elif kind == K_CORR:
        out[0] = cxy / (sqrt(m2x) * sqrt(m2y))
    elif kind == K_REGR_SLOPE:
        out[0] = cxy / m2x
    elif kind == K_REGR_INTERCEPT:
        slope = cxy / m2x
        if not isfinite(slope):
            ok[0] = 0
        else:
            out[0] = my - slope * mx
    else:
        if n == 1 or m2x == 0.0:  # DuckDB: one value's VAR_POP is 0, even a NaN's
            ok[0] = 0
        elif m2y == 0.0:
            out[0] = 1.0
        else:
            r = cxy / (sqrt(m2x) * sqrt(m2y))
            out[0] = r * r


cdef class Covariance(_PairBase):
    """COVAR_POP / COVAR_SAMP / CORR / REGR_SLOPE / REGR_INTERCEPT / REGR_R2 of (y, x) float64
    pairs (``values[:, 0]`` is y, the SQL call's first argument), float64, DuckDB's NULLs.

    >>> import numpy as np
    >>> c = Covariance("CORR")
    >>> c.ensure_capacity(1)
    >>> c.update(np.zeros(3, np.int32), np.array([[1.0, 2.0], [2.0, 4.0], [5.0, 1.0]]))
    >>> round(float(c.result(np.array([0], np.int32))[0][0]), 6)
    -0.576557
    """

    def __init__(self, kind):
        Aggregate.__init__(self, np.float64)
        if kind not in COVARIANCE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(COVARIANCE_KINDS)}, not {kind!r}")
        self.kind = COVARIANCE_KINDS.index(kind)

    @property
    def kind_name(self):
        return COVARIANCE_KINDS[self.kind]

    def __repr__(self):
        return f"Covariance({self.kind_name!r})"

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.nobs.resize(n_slots)
        self.mean_y.resize(n_slots)
        self.mean_x.resize(n_slots)
        self.m2_y.resize(n_slots)
        self.m2_x.resize(n_slots)
        self.c_xy.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        cdef const double* v = <const double*>values
        cdef double* res = <double*>out
        cdef int64_t* nobs = self.nobs.data()
        cdef double* my = self.mean_y.data()
        cdef double* mx = self.mean_x.data()
        cdef double* m2y = self.m2_y.data()
        cdef double* m2x = self.m2_x.data()
        cdef double* cxy = self.c_xy.data()
        cdef Py_ssize_t i
        cdef int32_t s
        cdef double y, x, dx, dy, k
        for i in range(n):
            s = slots[i]
            if s >= 0 and (valid == NULL or valid[i]):
                y = v[2 * i]
                x = v[2 * i + 1]
                nobs[s] += 1
                k = <double>nobs[s]
                dx = x - mx[s]
                dy = y - my[s]
                mx[s] += dx / k
                my[s] += dy / k
                m2x[s] += dx * (x - mx[s])
                m2y[s] += dy * (y - my[s])
                cxy[s] += dx * (y - my[s])
            if out_valid != NULL:
                if s >= 0:
                    _put_cov(self.kind, nobs[s], my[s], mx[s], m2y[s], m2x[s], cxy[s],
                             &res[i], &out_valid[i])
                else:
                    res[i] = 0.0
                    out_valid[i] = 0
        return AGG_OK

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        cdef double* res = <double*>out
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s >= 0:
                _put_cov(self.kind, self.nobs[s], self.mean_y[s], self.mean_x[s], self.m2_y[s],
                         self.m2_x[s], self.c_xy[s], &res[i], &out_valid[i])
            else:
                res[i] = 0.0
                out_valid[i] = 0
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s >= 0:
                self.nobs[s] = 0
                self.mean_y[s] = 0.0
                self.mean_x[s] = 0.0
                self.m2_y[s] = 0.0
                self.m2_x[s] = 0.0
                self.c_xy[s] = 0.0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef int64_t* nobs = self.nobs.data()
        cdef double* my = self.mean_y.data()
        cdef double* mx = self.mean_x.data()
        cdef double* m2y = self.m2_y.data()
        cdef double* m2x = self.m2_x.data()
        cdef double* cxy = self.c_xy.data()
        cdef const int64_t* o_nobs = (<Covariance>other).nobs.data()
        cdef const double* o_my = (<Covariance>other).mean_y.data()
        cdef const double* o_mx = (<Covariance>other).mean_x.data()
        cdef const double* o_m2y = (<Covariance>other).m2_y.data()
        cdef const double* o_m2x = (<Covariance>other).m2_x.data()
        cdef const double* o_cxy = (<Covariance>other).c_xy.data()
        cdef bint same = <void*>other == <void*>self
        cdef Py_ssize_t i
        cdef int32_t d, s
        cdef int64_t na, nb
        cdef double tot, dx, dy, w
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or (same and d == s):
                continue
            nb = o_nobs[s]
            if nb == 0:
                continue
            na = nobs[d]
            if na == 0:
                nobs[d] = nb
                my[d] = o_my[s]
                mx[d] = o_mx[s]
                m2y[d] = o_m2y[s]
                m2x[d] = o_m2x[s]
                cxy[d] = o_cxy[s]
                continue
            # Chan et al.: the co-moment gains dx * dy * na * nb / n, as m2 does in merge_var.
            tot = <double>(na + nb)
            dx = o_mx[s] - mx[d]
            dy = o_my[s] - my[d]
            w = <double>na * <double>nb / tot
            m2x[d] += o_m2x[s] + dx * dx * w
            m2y[d] += o_m2y[s] + dy * dy * w
            cxy[d] += o_cxy[s] + dx * dy * w
            mx[d] += dx * (<double>nb / tot)
            my[d] += dy * (<double>nb / tot)
            nobs[d] = na + nb
        return AGG_OK

    def export_state(self, slots):
        """State of ``slots``: ``nobs`` (int64), ``mean_y``, ``mean_x``, ``m2_y``, ``m2_x``,
        ``c_xy`` (float64, bit for bit), and ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {"nobs": _gather(<const int64_t*>self.nobs.data(), sp, n),
                 "mean_y": _gather(<const double*>self.mean_y.data(), sp, n),
                 "mean_x": _gather(<const double*>self.mean_x.data(), sp, n),
                 "m2_y": _gather(<const double*>self.m2_y.data(), sp, n),
                 "m2_x": _gather(<const double*>self.m2_x.data(), sp, n),
                 "c_xy": _gather(<const double*>self.c_xy.data(), sp, n)}
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        nobs = _state_array(arrays, "nobs", np.int64, n)
        fields = [_state_array(arrays, f, np.float64, n)
                  for f in ("mean_y", "mean_x", "m2_y", "m2_x", "c_xy")]
        _enter(self)
        try:
            _scatter(<int64_t*>self.nobs.data(), sp, n, nobs)
            _scatter(<double*>self.mean_y.data(), sp, n, fields[0])
            _scatter(<double*>self.mean_x.data(), sp, n, fields[1])
            _scatter(<double*>self.m2_y.data(), sp, n, fields[2])
            _scatter(<double*>self.m2_x.data(), sp, n, fields[3])
            _scatter(<double*>self.c_xy.data(), sp, n, fields[4])
        finally:
            self.busy = False
        _take_seq(self, arrays)


cdef inline bint _val_before(int kind, const int32_t* off, const char* data, int64_t a,
                             int64_t b) noexcept nogil:
    # ARG_MIN/ARG_MAX: value a strictly before value b in DuckDB's order (see _ArgPickBase).
    cdef double fa, fb
    if kind == 0:
        return a < b
    if kind == 1:
        memcpy(&fa, &a, sizeof(double))
        memcpy(&fb, &b, sizeof(double))
        return _before(fa, fb)
    return _text_cmp(off, data, a, b) < 0


cdef inline bint _arg_wins(bint is_max, int kind, const int32_t* off, const char* data,
                           int64_t v, int64_t q, int64_t cur_v, int64_t cur_q) noexcept nogil:
    # The candidate (v, seq q) replaces the held (cur_v, cur_q): a strictly better value, or an
    # equal one that arrived earlier.
    if is_max:
        if _val_before(kind, off, data, cur_v, v):
            return True
        if _val_before(kind, off, data, v, cur_v):
            return False
    else:
        if _val_before(kind, off, data, v, cur_v):
            return True
        if _val_before(kind, off, data, cur_v, v):
            return False
    return q < cur_q


cdef class _ArgPickBase(_PairBase):

    def __init__(self, arg_dtype, val_kind, strings=None):
        Aggregate.__init__(self, np.int64)
        self.result_is_float = _input_dtype(arg_dtype) == np.float64
        if val_kind not in ("int", "float", "text"):
            raise ValueError(f"val_kind must be 'int', 'float' or 'text', not {val_kind!r}")
        self.val_kind = ("int", "float", "text").index(val_kind)
        if self.val_kind == 2 and not hasattr(strings, "arrow_values"):
            raise TypeError("ARG_MIN/ARG_MAX by text needs the job's string dictionary")
        self.strings = strings

    def __repr__(self):
        return (f"{type(self).__name__}(arg_dtype={self.result_dtype}, "
                f"val_kind={('int', 'float', 'text')[self.val_kind]!r})")

    cdef int _take_view(self) except -1:
        if self.val_kind != 2:
            return 0
        view = self.strings.arrow_values()
        if str(view.type) != "string" or view.offset != 0:
            raise TypeError(f"string dictionary view must be an unsliced pa.string() array, "
                            f"got {view.type}")
        bufs = view.buffers()
        self.view = view
        self.offsets = <const int32_t*><size_t>bufs[1].address
        self.data = <const char*><size_t>bufs[2].address if bufs[2] is not None else NULL
        return 0

    cdef void _drop_view(self):
        self.offsets = NULL
        self.data = NULL
        self.view = None

    cdef _run(self, slots, values, valid, seq, out_values, out_valid, int32_t known_max=-2):
        self._take_view()
        try:
            return _PairBase._run(self, slots, values, valid, seq, out_values, out_valid,
                                  known_max)
        finally:
            self._drop_view()

    def merge(self, dst_slots, Aggregate other not None, src_slots):
        """As ``Aggregate.merge``; ``other`` must compare values the same way."""
        if type(other) is type(self) and (
                (<_ArgPickBase>other).val_kind != self.val_kind
                or (<_ArgPickBase>other).result_is_float != self.result_is_float
                or (self.val_kind == 2 and (<_ArgPickBase>other).strings is not self.strings)):
            raise TypeError(f"cannot merge {other!r} into {self!r}")
        self._take_view()
        try:
            _PairBase.merge(self, dst_slots, other, src_slots)
        finally:
            self._drop_view()

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.has.resize(n_slots)
        self.seq.resize(n_slots)
        self.arg.resize(n_slots)
        self.val.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        cdef const int64_t* v = <const int64_t*>values
        cdef int64_t* res = <int64_t*>out  # float64 results are the same 8 bytes
        cdef uint8_t* has = self.has.data()
        cdef int64_t* pseq = self.seq.data()
        cdef int64_t* parg = self.arg.data()
        cdef int64_t* pval = self.val.data()
        cdef int kind = self.val_kind
        cdef Py_ssize_t i
        cdef int32_t s
        cdef int64_t q
        if kind == 2 and self.offsets == NULL:
            return AGG_NO_STRINGS
        for i in range(n):
            s = slots[i]
            if s >= 0 and (valid == NULL or valid[i]):
                q = seq[i] if seq != NULL else seq0 + i
                if not has[s] or _arg_wins(self.is_max, kind, self.offsets, self.data,
                                           v[2 * i + 1], q, pval[s], pseq[s]):
                    has[s] = 1
                    parg[s] = v[2 * i]
                    pval[s] = v[2 * i + 1]
                    pseq[s] = q
            if out_valid != NULL:
                if s >= 0 and has[s]:
                    res[i] = parg[s]
                    out_valid[i] = 1
                else:
                    res[i] = 0
                    out_valid[i] = 0
        return AGG_OK

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        _copy_out(<const int64_t*>self.arg.data(), self.has.data(), 1, n, slots,
                  <int64_t*>out, out_valid)
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(n):
            if slots[i] >= 0:
                self.has[slots[i]] = 0

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef uint8_t* has = self.has.data()
        cdef int64_t* pseq = self.seq.data()
        cdef int64_t* parg = self.arg.data()
        cdef int64_t* pval = self.val.data()
        cdef const uint8_t* o_has = (<_ArgPickBase>other).has.data()
        cdef const int64_t* o_seq = (<_ArgPickBase>other).seq.data()
        cdef const int64_t* o_arg = (<_ArgPickBase>other).arg.data()
        cdef const int64_t* o_val = (<_ArgPickBase>other).val.data()
        cdef int kind = self.val_kind
        cdef Py_ssize_t i
        cdef int32_t d, s
        if kind == 2 and self.offsets == NULL:
            return AGG_NO_STRINGS
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or not o_has[s]:
                continue
            if not has[d] or _arg_wins(self.is_max, kind, self.offsets, self.data,
                                       o_val[s], o_seq[s], pval[d], pseq[d]):
                has[d] = 1
                parg[d] = o_arg[s]
                pval[d] = o_val[s]
                pseq[d] = o_seq[s]
        return AGG_OK

    def export_state(self, slots):
        """State of ``slots``: ``has`` (uint8), ``seq`` (int64 arrival number of the picked
        row), ``arg`` and ``val`` (int64 words: float64 bits, string codes), and ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {"has": _gather(<const uint8_t*>self.has.data(), sp, n),
                 "seq": _gather(<const int64_t*>self.seq.data(), sp, n),
                 "arg": _gather(<const int64_t*>self.arg.data(), sp, n),
                 "val": _gather(<const int64_t*>self.val.data(), sp, n)}
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        has = _state_array(arrays, "has", np.uint8, n)
        seq = _state_array(arrays, "seq", np.int64, n)
        arg = _state_array(arrays, "arg", np.int64, n)
        val = _state_array(arrays, "val", np.int64, n)
        _enter(self)
        try:
            _scatter(<uint8_t*>self.has.data(), sp, n, has)
            _scatter(<int64_t*>self.seq.data(), sp, n, seq)
            _scatter(<int64_t*>self.arg.data(), sp, n, arg)
            _scatter(<int64_t*>self.val.data(), sp, n, val)
        finally:
            self.busy = False
        _take_seq(self, arrays)


cdef class ArgMin(_ArgPickBase):
    """ARG_MIN(arg, val): the ``arg`` of the row with the smallest ``val`` (the earliest such
    row on ties), ``arg``'s dtype. ``values[:, 0]`` holds ``arg`` as int64 words (float64 bit
    patterns for a float64 ``arg_dtype``), ``values[:, 1]`` ``val`` as ``val_kind`` says: 'int',
    'float' (bit patterns) or 'text' (codes of ``strings``). Rows where either is NULL are
    skipped (DuckDB). NULL when no row qualifies.

    >>> import numpy as np
    >>> a = ArgMin(np.int64, "float")
    >>> a.ensure_capacity(1)
    >>> vals = np.array([3.0, 1.0, 1.0]).view(np.int64)
    >>> a.update(np.zeros(3, np.int32), np.stack([np.array([10, 20, 30]), vals], axis=1))
    >>> a.result(np.array([0], np.int32))
    (array([20]), array([ True]))
    """


cdef class ArgMax(_ArgPickBase):
    """ARG_MAX(arg, val); see ``ArgMin``."""

    def __init__(self, arg_dtype, val_kind, strings=None):
        _ArgPickBase.__init__(self, arg_dtype, val_kind, strings)
        self.is_max = True


# ---- STRING_AGG / LISTAGG --------------------------------------------------------------------

cdef extern from *:
    """
    /* STRING_AGG: append (code, seq) to a slot's two vectors; both unchanged on failure. */
    static inline int vs_pair_push(std::vector<int64_t>& a, int64_t x, std::vector<int64_t>& b,
                                   int64_t y) noexcept {
        try { a.push_back(x); } catch (...) { return -1; }
        try { b.push_back(y); } catch (...) { a.pop_back(); return -1; }
        return 0;
    }
    /* Interleave src's (code, seq) pairs into dst's by seq (both sorted, stable: on equal seq
       dst's pair first); dst unchanged on failure. */
    static inline int vs_pair_merge(std::vector<int64_t>& dc, std::vector<int64_t>& ds,
                                    const std::vector<int64_t>& sc,
                                    const std::vector<int64_t>& ss) noexcept {
        if (sc.empty()) return 0;
        try {
            std::vector<int64_t> c, q;
            c.reserve(dc.size() + sc.size());
            q.reserve(ds.size() + ss.size());
            size_t i = 0, j = 0;
            while (i < dc.size() || j < sc.size()) {
                if (j >= sc.size() || (i < dc.size() && ds[i] <= ss[j])) {
                    c.push_back(dc[i]); q.push_back(ds[i]); ++i;
                } else {
                    c.push_back(sc[j]); q.push_back(ss[j]); ++j;
                }
            }
            dc.swap(c);
            ds.swap(q);
        } catch (...) { return -1; }
        return 0;
    }
    static inline void vs_ivec_free(std::vector<int64_t>& v) noexcept {
        std::vector<int64_t>().swap(v);
    }
    static inline int vs_ivec_assign(std::vector<int64_t>& v, const int64_t* p, size_t n) noexcept {
        try { std::vector<int64_t>(p, p + n).swap(v); } catch (...) { return -1; }
        return 0;
    }
    """
    int vs_pair_push(vector[int64_t]& a, int64_t x, vector[int64_t]& b, int64_t y) noexcept nogil
    int vs_pair_merge(vector[int64_t]& dc, vector[int64_t]& ds, const vector[int64_t]& sc,
                      const vector[int64_t]& ss) noexcept nogil
    void vs_ivec_free(vector[int64_t]& v) noexcept nogil
    int vs_ivec_assign(vector[int64_t]& v, const int64_t* p, size_t n) noexcept nogil


cdef tuple _export_ivecs(vector[vector[int64_t]]* vv, const int32_t* sl, Py_ssize_t n):
    """The int64 vectors of slots ``sl`` flattened: (int64 offsets of length n + 1, values)."""
    offsets = np.empty(n + 1, dtype=np.int64)
    cdef int64_t[::1] off = offsets
    cdef int64_t[::1] vals
    cdef Py_ssize_t i
    cdef size_t m
    off[0] = 0
    if n:
        with nogil:
            for i in range(n):
                off[i + 1] = off[i] + <int64_t>vv[0][sl[i]].size()
    values = np.empty(off[n], dtype=np.int64)
    vals = values
    if off[n]:
        with nogil:
            for i in range(n):
                m = vv[0][sl[i]].size()
                if m:
                    memcpy(&vals[off[i]], vv[0][sl[i]].data(), m * sizeof(int64_t))
    return offsets, values


cdef int _import_ivecs(vector[vector[int64_t]]* vv, const int32_t* sl, Py_ssize_t n, object arrays,
                       str name) except -1:
    off_arr, total = _state_lists(arrays, name, n)
    val_arr = _state_array(arrays, name + "_values", np.int64, total)
    cdef const int64_t[::1] off = off_arr
    cdef const int64_t[::1] v = val_arr
    cdef const int64_t* vp = &v[0] if v.shape[0] else NULL
    cdef Py_ssize_t i
    cdef int status = AGG_OK
    if n:
        with nogil:
            for i in range(n):
                if vs_ivec_assign(vv[0][sl[i]], vp + off[i], <size_t>(off[i + 1] - off[i])) != 0:
                    status = AGG_NO_MEMORY
                    break
    return _raise_status(status)


cdef class StringAgg(Aggregate):
    """STRING_AGG(x, separator) / LISTAGG: the non-NULL values of a slot joined by ``separator``
    in arrival order (``seq``, as FIRST/LAST), NULL when there are none. ``x`` comes as int64
    codes of ``strings`` (the job's StringDict); results are codes of that dictionary too, for
    the joined strings it is given.

    >>> import numpy as np, pyarrow as pa
    >>> from velostream.batch import StringDict
    >>> d = StringDict()
    >>> codes = d.encode_arrow(pa.array(["b", "", "a"]))[0].astype(np.int64)
    >>> g = StringAgg(d, "+")
    >>> g.ensure_capacity(2)
    >>> g.update(np.array([0, 0, 0], np.int32), codes, np.array([True, True, True]))
    >>> out, ok = g.result(np.array([0, 1], np.int32))
    >>> d.values_of(out[:1]), ok.tolist()
    (['b++a'], [True, False])
    """

    def __init__(self, strings, separator=","):
        Aggregate.__init__(self, np.int64)
        if not hasattr(strings, "encode_arrow") or not hasattr(strings, "decode"):
            raise TypeError("STRING_AGG needs the job's string dictionary")
        if not isinstance(separator, str):
            raise TypeError(f"separator must be a str, not {type(separator).__name__}")
        self.strings = strings
        self.separator = separator

    def __repr__(self):
        return f"StringAgg(separator={self.separator!r})"

    @property
    def sep(self):
        return self.separator

    cdef int _grow(self, Py_ssize_t n_slots) except -1:
        self.codes.resize(n_slots)
        self.seqs.resize(n_slots)
        return 0

    cdef int _update(self, Py_ssize_t n, const int32_t* slots, const void* values,
                     const uint8_t* valid, const int64_t* seq, int64_t seq0,
                     void* out, uint8_t* out_valid) noexcept nogil:
        # out (update_emit): each row's slot length right after it; update_emit turns the
        # lengths into joined strings.
        cdef const int64_t* v = <const int64_t*>values
        cdef int64_t* res = <int64_t*>out
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            if s >= 0 and (valid == NULL or valid[i]):
                if vs_pair_push(self.codes[s], v[i], self.seqs[s],
                                seq[i] if seq != NULL else seq0 + i) != 0:
                    return AGG_NO_MEMORY
            if out_valid != NULL:
                res[i] = <int64_t>self.codes[s].size() if s >= 0 else 0
                out_valid[i] = s >= 0 and self.codes[s].size() > 0
        return AGG_OK

    cdef int _result(self, Py_ssize_t n, const int32_t* slots, void* out,
                     uint8_t* out_valid) noexcept nogil:
        # Lengths, as _update writes them; result() joins.
        cdef int64_t* res = <int64_t*>out
        cdef Py_ssize_t i
        cdef int32_t s
        for i in range(n):
            s = slots[i]
            res[i] = <int64_t>self.codes[s].size() if s >= 0 else 0
            out_valid[i] = res[i] > 0
        return AGG_OK

    cdef void _reset(self, Py_ssize_t n, const int32_t* slots) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(n):
            if slots[i] >= 0:
                vs_ivec_free(self.codes[slots[i]])
                vs_ivec_free(self.seqs[slots[i]])

    cdef int _merge(self, Aggregate other, Py_ssize_t n, const int32_t* dst,
                    const int32_t* src) noexcept nogil:
        cdef vector[vector[int64_t]]* o_codes = &(<StringAgg>other).codes
        cdef vector[vector[int64_t]]* o_seqs = &(<StringAgg>other).seqs
        cdef bint same = <void*>other == <void*>self
        cdef Py_ssize_t i
        cdef int32_t d, s
        for i in range(n):
            d = dst[i]
            s = src[i]
            if d < 0 or s < 0 or (same and d == s):
                continue
            if vs_pair_merge(self.codes[d], self.seqs[d], o_codes[0][s], o_seqs[0][s]) != 0:
                return AGG_NO_MEMORY
        return AGG_OK

    def merge(self, dst_slots, Aggregate other not None, src_slots):
        """As ``Aggregate.merge``; both must share one string dictionary."""
        if type(other) is type(self) and (<StringAgg>other).strings is not self.strings:
            raise ValueError("cannot merge STRING_AGG states of different string dictionaries")
        Aggregate.merge(self, dst_slots, other, src_slots)

    cdef object _join(self, object slots, object lengths):
        """The first ``lengths[i]`` values of ``slots[i]`` joined, as a pa.string() array (NULL
        where the length is 0): a gather of codes (nogil), then pyarrow's list join."""
        import pyarrow as pa
        import pyarrow.compute as pc
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        ok = lengths > 0
        n = len(lengths)
        if not ok.any():
            return pa.nulls(n, pa.string())
        rows = np.flatnonzero(ok)
        sl = np.ascontiguousarray(np.asarray(slots)[rows], dtype=np.int32)
        lens = lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        flat = np.empty(int(offsets[len(rows)]), dtype=np.int64)
        cdef const int32_t[::1] s_v = sl
        cdef const int64_t[::1] l_v = lens
        cdef const int64_t[::1] o_v = offsets
        cdef int64_t[::1] f_v = flat
        cdef Py_ssize_t i, m = len(rows)
        _enter(self)
        try:
            with nogil:
                for i in range(m):
                    memcpy(&f_v[o_v[i]], self.codes[s_v[i]].data(), l_v[i] * sizeof(int64_t))
        finally:
            self.busy = False
        texts = self.strings.decode(flat.astype(np.int32))
        joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()),
                                                              texts), self.separator)
        joined = joined.cast(pa.string())
        if len(rows) == n:
            return joined
        # back to one entry per row, NULL for the empty ones: take with a null index
        index = np.full(n, -1, dtype=np.int64)
        index[rows] = np.arange(len(rows))
        return joined.take(pa.array(index, mask=~ok))

    def result_text(self, slots):
        """Current joined strings of ``slots`` as a pa.string() array (NULL for an empty slot),
        without adding them to the dictionary: the way a pipeline emits them, so that results
        do not grow the job's dictionary."""
        lengths, ok = Aggregate.result(self, slots)
        return self._join(slots, np.where(ok, lengths, 0))

    def update_emit_text(self, slots, values, valid, seq=None):
        """``update``, returning each row's joined string right after it (EMIT CHANGES) as a
        pa.string() array, outside the dictionary (see ``result_text``)."""
        lengths = np.empty(len(slots), dtype=np.int64)
        ok = np.empty(len(slots), dtype=np.uint8)
        self._run(slots, values, valid, seq, lengths, ok)
        return self._join(slots, np.where(ok.view(np.bool_), lengths, 0))

    cdef object _codes(self, object text):
        codes, valid = self.strings.encode_arrow(text)
        codes = codes.astype(np.int64)
        ok = np.ones(len(codes), dtype=np.bool_) if valid is None else np.asarray(valid)
        codes[~ok] = 0
        return codes, ok

    def result(self, slots):
        """Current joined strings of ``slots`` as ``(int64 codes, valid as bool)`` (the joined
        strings are added to the dictionary; ``result_text`` does not)."""
        return self._codes(self.result_text(slots))

    def update_emit(self, slots, values, valid, out_values, out_valid, seq=None):
        """``update``, also writing each row's joined string right after it (EMIT CHANGES), as
        codes of the dictionary (``update_emit_text`` gives them as text)."""
        if out_values is None or out_valid is None:
            raise TypeError("update_emit needs out_values and out_valid arrays")
        codes, good = self._codes(self.update_emit_text(slots, values, valid, seq))
        out_values[:] = codes
        _as_u8(out_valid)[:] = good

    def export_state(self, slots):
        """State of ``slots``: ``codes_offsets``/``codes_values`` (each slot's string codes in
        arrival order) and ``seqs_offsets``/``seqs_values`` (their arrival numbers), and
        ``next_seq``."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            d = {}
            d["codes_offsets"], d["codes_values"] = _export_ivecs(&self.codes, sp, n)
            d["seqs_offsets"], d["seqs_values"] = _export_ivecs(&self.seqs, sp, n)
        finally:
            self.busy = False
        return _with_seq(self, d)

    def import_state(self, slots, arrays):
        """Write ``export_state`` arrays into ``slots`` (within capacity), replacing their state."""
        sl_arr = _state_slots(self, slots)
        cdef const int32_t[::1] sl = sl_arr
        cdef Py_ssize_t n = sl.shape[0]
        cdef const int32_t* sp = _slot_ptr(sl)
        _enter(self)
        try:
            _import_ivecs(&self.codes, sp, n, arrays, "codes")
            _import_ivecs(&self.seqs, sp, n, arrays, "seqs")
        finally:
            self.busy = False
        _take_seq(self, arrays)
