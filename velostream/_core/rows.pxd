# cython: language_level=3
"""State of ROWS windows: ``f(x) OVER (ROWS WINDOW BUFFER n ROWS PARTITION BY k ...)``.

Per-slot state lives in C++ vectors indexed by the dense partition slot the engine assigns;
buffers of ``n`` entries per slot are laid out slot-major (``slot * n + pos``) so that growing
the number of slots keeps every existing entry where it is.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t
from libcpp.vector cimport vector

ctypedef fused num_t:
    int64_t
    double


cdef struct SumAcc:
    # Running SUM / AVG / COUNT state of one slot over its buffer.
    int64_t nobs        # valid (non-NULL) values in the buffer, NaN and infinities included
    int64_t isum        # int64 input: low 64 bits of the exact sum (wrapping mod 2**64)
    double fsum         # float64 input: Neumaier running sum of the finite values
    double fcomp        # float64 input: Neumaier compensation; the sum is fsum + fcomp
    int64_t n_nan       # float64 input: NaN values in the buffer
    int64_t n_posinf    # float64 input: +inf values in the buffer
    int64_t n_neginf    # float64 input: -inf values in the buffer
    int64_t ihi         # int64 input: high 64 bits of the exact sum, ihi * 2**64 + (uint64)isum


cdef struct VarAcc:
    # Welford add/remove state of one slot over its buffer (as pandas add_var/remove_var),
    # replaced by an exact recomputation every n rows of the slot.
    int64_t nobs        # finite valid values in the buffer (those that are in mean/ssqdm)
    int64_t n_nonfinite # NaN/inf valid values in the buffer: any makes the result NaN, as in DuckDB
    double mean         # running mean of the finite values
    double ssqdm        # running sum of squared differences from the mean
    int64_t n_same      # length of the run of equal finite values added last (run >= nobs: var is 0)
    double prev         # last finite value added (meaningless while n_same is 0)


cdef class _Ring:
    # The last n values of one argument column per slot, for evictions, LAG and FIRST_VALUE.
    cdef bint is_float              # values live in fvalues (float64) rather than ivalues (int64)
    cdef bint need_evicted          # some add/remove function on this argument reads evictions
    cdef list reads                 # function indices answered by a ring read (LAG, FIRST_VALUE)
    cdef vector[int64_t] ivalues    # int64 values, slot * n + pos
    cdef vector[double] fvalues     # float64 values, slot * n + pos
    cdef vector[uint8_t] valid      # 1 where the stored value is not NULL, slot * n + pos
    cdef object ev_buf              # scratch ndarray reused across batches: evicted values
    cdef object evv_buf             # scratch ndarray reused across batches: evicted validity

    cdef int grow(self, int64_t n_slots, int64_t n) except -1


cdef class _FuncState:
    # Per-slot running state of one function (only the vectors its kind uses are sized).
    cdef int kind                   # function code (K_SUM ... K_LAST_VALUE in rows.pyx)
    cdef bint is_float              # argument dtype is float64
    cdef bint is_text               # MIN/MAX of string codes: compared by their bytes, and the
                                    #   neutral element is the code -1 (no value)
    cdef vector[SumAcc] sums        # SUM, AVG, COUNT: one accumulator per slot
    cdef vector[VarAcc] vars        # STDDEV, STDDEV_POP, VARIANCE, VAR_POP: one per slot
    cdef vector[double] var_blk     # variance family: the slot's current block of n values (as
                                    #   float64), recomputed from exactly when it is full
    cdef vector[uint8_t] var_blk_ok # variance family: validity of var_blk entries
    cdef vector[int64_t] mm_iblk    # MIN/MAX of int64: per slot n entries; at block position i,
                                    #   0..i hold this block's values, i+1.. the previous block's
                                    #   suffix MIN/MAX (van Herk / Gil-Werman), slot * n + pos
    cdef vector[double] mm_fblk     # MIN/MAX of float64: the same
    cdef vector[int64_t] mm_iprefix # MIN/MAX of int64: per slot, MIN/MAX of its block so far
    cdef vector[double] mm_fprefix  # MIN/MAX of float64: the same
    cdef vector[int64_t] mm_last_valid  # MIN/MAX: per slot, row number of its last non-NULL row

    cdef int grow(self, int64_t n_slots, int64_t n) except -1


cdef class RowsWindow:
    cdef readonly int64_t buffer_rows   # n: rows in each partition's buffer, current row included
    cdef int64_t capacity               # slots with allocated state (grown geometrically)
    cdef vector[int64_t] slot_rows      # rows seen so far per slot (ROW_NUMBER of its latest row)
    cdef vector[int32_t] slot_pos       # ring position of each slot's next row (slot_rows % n)
    cdef list kinds                     # function code per function
    cdef list arg_of                    # argument index per function (-1: none)
    cdef list offsets                   # LAG offset per function (0 for the others)
    cdef list arg_dtypes                # np.dtype per argument column (int64 or float64)
    cdef list rings                     # per argument: _Ring, or None when no function needs history
    cdef list states                    # per function: _FuncState, or None when it keeps no state
    cdef object seq_buf                 # scratch ndarray reused across batches: row_seq (int64)
    cdef object pos_buf                 # scratch ndarray reused across batches: row_pos (int32)
    cdef object ones_buf                # scratch ndarray reused across batches: all-valid mask
    cdef list arg_text                  # per argument: string codes (MIN/MAX compare the strings)
    cdef object strings                 # the StringDict those codes come from

    cdef int _grow(self, int64_t n_slots) except -1
    cdef object _ring_values(self, _Ring ring)


cdef struct Ring64:
    # A growable ring of records of ``stride`` int64 words (one per slot and use): the held rows
    # of a RANGE frame (time, then value bits and validity per argument) or a monotonic deque of
    # their absolute positions. Empty rings allocate nothing.
    int64_t* data
    int64_t cap         # records allocated
    int64_t head        # record index of the front
    int64_t count       # records held


cdef class FrameWindow:
    # The standard frames without a row buffer (docs/SQL.md §6): ROWS UNBOUNDED PRECEDING
    # (running state per slot, plus RANK / DENSE_RANK) and RANGE BETWEEN INTERVAL d PRECEDING
    # AND CURRENT ROW (the slot's rows held while within d of its newest time).
    cdef readonly bint is_range
    cdef readonly int64_t range_ms
    cdef int64_t capacity               # slots with allocated state
    cdef int nf                         # functions
    cdef int na                         # argument columns
    cdef int stride                     # words per held record: 1 + 2 * na
    cdef list kinds, arg_of, offsets
    cdef list arg_float                 # per argument: float64 (else int64 or a string code)
    cdef list arg_text                  # per argument: string codes, compared by their bytes
    cdef object strings                 # the StringDict text arguments' codes come from
    cdef vector[int] ckind              # the same three lists as C vectors, for nogil loops
    cdef vector[int] carg
    cdef vector[int64_t] coff
    cdef vector[int] cmode              # per argument: 0 int64, 1 float64, 2 string code
    cdef bint has_rank                  # RANK / DENSE_RANK among the functions
    cdef vector[int64_t] lag_k          # per argument: LAG ring length (0: no LAG)
    cdef vector[int64_t] lag_off        # per argument: offset of its ring in a slot's LAG words
    cdef int64_t lagw                   # LAG words per slot (sum of lag_k)
    cdef vector[int64_t] slot_rows      # rows seen per slot
    cdef vector[int64_t] newest         # per slot: newest ORDER BY value seen (RANGE, RANK)
    cdef vector[int64_t] last_rank      # per slot: RANK of its newest value
    cdef vector[int64_t] dense          # per slot: DENSE_RANK of its newest value
    cdef vector[int64_t] popped         # per slot: held rows freed so far (absolute positions)
    cdef vector[Ring64] held            # per slot: held rows, in ORDER BY time order (RANGE)
    cdef vector[SumAcc] sums            # slot * nf + f: SUM / AVG / COUNT
    cdef vector[VarAcc] vars            # slot * nf + f: variance family
    cdef vector[int64_t] var_ops        # slot * nf + f: removals since the last recomputation
    cdef vector[int64_t] best           # slot * nf + f: running MIN / MAX, FIRST_VALUE (UNBOUNDED)
    cdef vector[uint8_t] best_ok        # slot * nf + f: best holds a value
    cdef vector[Ring64] mono            # slot * nf + f: MIN / MAX monotonic deque (RANGE)
    cdef vector[int64_t] lag_v          # slot * lagw + lag_off[a] + seq % lag_k[a]
    cdef vector[uint8_t] lag_ok

    cdef int _grow(self, int64_t n_slots) except -1
    cdef int _run(self, const int32_t[::1] sl, const int64_t[::1] tm,
                  const int64_t[:, ::1] X, const uint8_t[:, ::1] XV,
                  int64_t[:, ::1] O, uint8_t[:, ::1] OV,
                  const int32_t* toff, const char* tdata, int* overflow) except -1
    cdef object _held_records(self, int64_t s)
    cdef int _load_held(self, int64_t s, object recs) except -1
