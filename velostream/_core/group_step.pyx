"""One compiled step for the common streaming GROUP BY: a whole ``Engine.push`` of an Arrow batch.

For plans of the shape ``SELECT keys..., aggregates... FROM s GROUP BY keys`` with EMIT CHANGES
(no window, WHERE, HAVING, LIMIT or expressions over the group row; see
``velostream.exec.push_fast`` for the exact conditions), ``GroupStep.push`` does in one call what
the general path does in a dozen Python-level steps: it reads the batch's buffers through the Arrow
C data interface (one ``_export_to_c`` call for every column), interns the string keys, finds or
inserts the group slots, updates every aggregate and writes each row's emitted values, all on raw
pointers. It works on *the same state objects* as the general path (the pipeline's
``GroupTable``, its ``Aggregate`` objects, the job's ``StringDict``), through their cdef entry
points, so the engine can switch between the two paths on any batch.

The emitted rows stay compiled (``GroupRows``: the aggregates' per-row values and validity in one
malloc'ed block, and the input's key columns, moved out of the export: the output's key columns are
the input's as they are, zero-copy, as in the general path) until someone asks for Arrow
(``Result.batches``, ``to_arrow``, iteration...), so a push of a few records costs a few
microseconds. ``GroupRows.to_batch`` hands all of it to Arrow in one C data interface import: the
record batch the general path would have emitted, without copying.

``GroupStep.push_rows(rb, rows)`` is the same push for some rows of a batch, as V2's partitions
take theirs of a batch they share: the numbers are gathered into the step's scratch, the strings
interned where they are, and the output's key columns made from the keys' codes; nothing is copied
out of the batch first.
"""
cimport cython
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy, memset

from velostream._core.aggregate cimport Aggregate, update_emit_rows
from velostream._core.group_table cimport GroupTable, find_or_insert_rows
from velostream._core.strings cimport StringInterner, intern_strings

import numpy as np

cnp.import_array()


# The Arrow C data interface (https://arrow.apache.org/docs/format/CDataInterface.html): a stable
# ABI, so this needs no Arrow headers and works with any pyarrow that exports it.
cdef struct ArrowArray:
    int64_t length
    int64_t null_count
    int64_t offset
    int64_t n_buffers
    int64_t n_children
    const void** buffers
    ArrowArray** children
    ArrowArray* dictionary
    void (*release)(ArrowArray*) noexcept nogil
    void* private_data


cdef enum:
    # column kinds
    K_STRING = 0
    K_INT64 = 1
    K_FLOAT64 = 2
    # group-key word layout items (``KeyCodec.layout``)
    W_PAIR = 0
    W_NARROW = 1
    W_WIDE = 2
    W_ZERO = 3
    W_NULLS = 4
    # batches from this many rows on run their kernels without the GIL
    RELEASE_ROWS = 8192

# the single NaN bit pattern ``KeyCodec`` folds every NaN key into (numpy's ``np.nan``)
cdef uint64_t CANONICAL_NAN = 0x7FF8000000000000ULL

_KINDS = {"STRING": K_STRING, "INT64": K_INT64, "FLOAT64": K_FLOAT64}


cdef inline int _grow(void** p, Py_ssize_t nbytes) except -1:
    cdef void* q = realloc(p[0], nbytes if nbytes > 0 else 1)
    if q == NULL:
        raise MemoryError()
    p[0] = q
    return 0


cdef extern from *:
    """
    static inline long vs_refs_add(long* p, long d) {
        return __atomic_add_fetch(p, d, __ATOMIC_ACQ_REL);
    }
    """
    long vs_refs_add(long* p, long d) noexcept nogil


# The aggregates' outputs of one push: one malloc'ed block, shared by the GroupRows that computed
# it and by every Arrow batch imported from it (each holds a reference; the last one frees it,
# from whichever thread Arrow releases its batch on).
cdef struct OutBlock:
    long refs
    long pad                      # keeps the data 16-byte aligned


cdef inline char* _out_data(OutBlock* b) noexcept nogil:
    return <char*>b + sizeof(OutBlock)


cdef inline void _out_decref(OutBlock* b) noexcept nogil:
    if b != NULL and vs_refs_add(&b.refs, -1) == 0:
        free(b)


cdef Py_ssize_t _pack_bits(const uint8_t* valid, Py_ssize_t n, uint8_t* bits) noexcept nogil:
    """Arrow's validity bitmap (LSB first) of n 0/1 bytes; returns the number of zeros."""
    cdef Py_ssize_t r, full = n >> 3, ones = 0
    cdef uint64_t x
    for r in range(full):
        memcpy(&x, valid + 8 * r, 8)
        # byte k (0 or 1) lands on bit k of the top byte
        bits[r] = <uint8_t>(((x & 0x0101010101010101ULL) * 0x0102040810204080ULL) >> 56)
    if n & 7:
        bits[full] = 0
        for r in range(full * 8, n):
            bits[full] |= <uint8_t>((valid[r] & 1) << (r & 7))
    for r in range((n + 7) >> 3):
        ones += _popcount8(bits[r])
    return n - ones


cdef inline int _popcount8(uint8_t b) noexcept nogil:
    b = b - ((b >> 1) & 0x55)
    b = (b & 0x33) + ((b >> 2) & 0x33)
    return (b + (b >> 4)) & 0x0F


# What one ``GroupRows.to_batch`` hands to Arrow: the parent (struct) array of the batch, its
# children (the moved key columns, then one per aggregate over the OutBlock) and their buffers,
# all in this one allocation, released by ``_release_parent``.
cdef struct ImportBlock:
    const void* no_validity       # the parent's one buffer pointer: NULL, no struct-level NULLs
    int n_children
    ArrowArray** child_ptrs
    ArrowArray* children
    OutBlock* out


cdef void _release_child(ArrowArray* a) noexcept nogil:
    a.release = NULL  # its memory belongs to the parent's ImportBlock


cdef void _release_parent(ArrowArray* a) noexcept nogil:
    cdef ImportBlock* blk = <ImportBlock*>a.private_data
    cdef int i
    for i in range(blk.n_children):
        if blk.children[i].release != NULL:
            blk.children[i].release(&blk.children[i])
    _out_decref(blk.out)
    a.release = NULL
    free(blk)


cdef Py_ssize_t _bits_at(const uint8_t* bits, int64_t off, const int64_t* rows, Py_ssize_t m,
                         uint8_t* out) noexcept nogil:
    """The validity bits of the rows as bytes; returns how many are NULL."""
    cdef Py_ssize_t i, zeros = 0
    cdef int64_t r
    for i in range(m):
        r = off + rows[i]
        out[i] = (bits[r >> 3] >> (r & 7)) & 1
        zeros += 1 - out[i]
    return zeros


cdef void _take8(const int64_t* src, const int64_t* rows, Py_ssize_t m, int64_t* dst) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(m):
        dst[i] = src[rows[i]]


cdef object _view_i32(const int32_t* p, Py_ssize_t n):
    """n int32 at p as a memoryview (read only by the callee)."""
    return <int32_t[:n]><int32_t*>p


cdef object _view_u8(const uint8_t* p, Py_ssize_t n):
    """n bytes at p (none: an empty array) as a memoryview."""
    if n <= 0 or p == NULL:
        return np.empty(0, dtype=np.uint8)
    return <uint8_t[:n]><uint8_t*>p


@cython.final
cdef class GroupStep:
    """The compiled push of a qualifying GROUP BY plan (built by ``velostream.exec.push_fast``).

    ``push(rb)`` returns the push's ``Result`` (rows held lazily), or None when this batch must go
    through the general path (other column types, an empty batch, more than ``max_rows`` rows).
    """

    # -- state shared with the general path
    cdef GroupTable table
    cdef list aggs                # the pipeline's Aggregate objects, plan order
    cdef StringInterner interner
    cdef object strings           # the job's StringDict (its lock, and decoding)
    cdef object lock              # StringDict._lock: taken while interning, as StringDict does
    cdef object stats             # the engine's stats dict (records_in, batches, records_out)

    # -- the plan, fixed at construction
    cdef int n_cols               # input columns used (keys and aggregate arguments)
    cdef int n_keys
    cdef int n_aggs
    cdef int n_words
    cdef int* col_kind            # per used column
    cdef int* col_index           # per used column: its position in the accepted schema
    cdef int* key_col             # per key: used-column number
    cdef int* agg_col             # per aggregate: used-column number, -1 for COUNT(*)
    cdef int* w_kind              # per key word: W_*
    cdef int* w_a                 # per key word: first key (PAIR: high half)
    cdef int* w_b                 # per key word: second key (PAIR: low half)
    cdef int* wide_bit            # per key: its bit in the NULL word, -1 when narrow
    cdef bint any_string_key
    cdef readonly list names      # used column names
    cdef readonly list expected   # used columns' pyarrow types
    cdef readonly list outputs    # per output column: (is_key, key or aggregate number, kind)
    cdef readonly list key_names  # per key: its input column
    cdef int n_moved              # distinct key columns, moved out of each export
    cdef int* moved_col           # per moved key column: its used-column number
    cdef readonly object import_schema  # what to_batch imports: moved keys, then aggregates
    cdef readonly object reorder  # None when import_schema is out_schema's layout, else the
                                  # import columns in output order
    cdef readonly object out_schema
    cdef public Py_ssize_t max_rows  # larger batches go through the general path
    cdef readonly Py_ssize_t batches  # pushes this step handled (the engine reports it)
    cdef object schema            # the last schema accepted
    cdef object rejected          # the last schema refused
    cdef object result_cls
    cdef object type_of_arrow     # velostream.batch.type_of_arrow (see __init__)
    cdef bint busy                # set during a push: a second thread gets RuntimeError

    # -- per push
    cdef ArrowArray c_arr
    cdef object c_addr            # &c_arr as a Python int, for RecordBatch._export_to_c
    cdef Py_ssize_t cap           # rows the scratch buffers hold
    cdef int64_t* words           # n_words x cap
    cdef const int64_t** word_ptrs
    cdef int32_t* slots
    cdef int32_t* codes           # n_keys x cap: string keys' codes
    cdef uint8_t* masks           # n_cols x cap: expanded validity
    cdef const uint8_t** col_mask     # per used column: masks row or NULL (no NULLs)
    cdef const char** col_values      # per used column: values (numeric) or offsets (string)
    cdef const uint8_t** col_data     # per used column: string bytes
    cdef int64_t* gathered        # n_cols x cap: push_rows' number columns at its rows

    def __cinit__(self):
        self.c_arr.release = NULL

    def __init__(self, GroupTable table not None, list aggs, strings, stats, list keys,
                 list layout, list wide, list agg_cols, list outputs, out_schema,
                 result_cls, type_of_arrow):
        """``keys``: (column name, kind) per GROUP BY key; ``layout``/``wide``: the pipeline's
        ``KeyCodec.layout`` and ``.wide``; ``agg_cols``: per aggregate, (column name, kind) of
        its argument or None (COUNT(*)); ``outputs``: per output column, ``("k", i)`` or
        ``("a", j)``; ``out_schema``: the engine's output schema. The caller gives the class
        of what ``push`` returns (``velostream.result.Result``) and the check of an input
        column's Arrow type (``velostream.batch.type_of_arrow``): a kernel never imports the
        package."""
        import pyarrow as pa
        self.result_cls = result_cls
        self.type_of_arrow = type_of_arrow
        self.table = table
        self.aggs = list(aggs)
        self.strings = strings
        self.interner = strings._interner
        self.lock = strings._lock
        self.stats = stats
        self.out_schema = out_schema
        self.max_rows = 1 << 62
        self.c_addr = <uintptr_t>&self.c_arr
        if len(agg_cols) != len(self.aggs):
            raise ValueError("one argument entry per aggregate")
        for a in self.aggs:
            if not isinstance(a, Aggregate):
                raise TypeError(f"not an aggregate: {a!r}")

        names: list = []
        kinds: list = []

        def col(name, kind):
            if name in names:
                if kinds[names.index(name)] != kind:
                    raise ValueError(f"column {name} used as two kinds")
                return names.index(name)
            names.append(name)
            kinds.append(kind)
            return len(names) - 1

        key_cols = [col(name, _KINDS[kind]) for name, kind in keys]
        arg_cols = [-1 if a is None else col(a[0], _KINDS[a[1]]) for a in agg_cols]
        self.names = names
        arrow = {K_STRING: pa.string(), K_INT64: pa.int64(), K_FLOAT64: pa.float64()}
        self.expected = [arrow[k] for k in kinds]
        self.n_cols = len(names)
        self.n_keys = len(keys)
        self.n_aggs = len(self.aggs)
        self.key_names = [name for name, _ in keys]
        items = list(layout) + ([("nulls",)] if wide else [])
        self.n_words = len(items)
        if self.n_words != table.n_words:
            raise ValueError(f"the key layout has {self.n_words} words, the table {table.n_words}")
        cdef int i
        self.col_kind = <int*>malloc(max(1, self.n_cols) * sizeof(int))
        self.col_index = <int*>malloc(max(1, self.n_cols) * sizeof(int))
        self.key_col = <int*>malloc(max(1, self.n_keys) * sizeof(int))
        self.wide_bit = <int*>malloc(max(1, self.n_keys) * sizeof(int))
        self.agg_col = <int*>malloc(max(1, self.n_aggs) * sizeof(int))
        self.w_kind = <int*>malloc(self.n_words * sizeof(int))
        self.w_a = <int*>malloc(self.n_words * sizeof(int))
        self.w_b = <int*>malloc(self.n_words * sizeof(int))
        self.word_ptrs = <const int64_t**>malloc(self.n_words * sizeof(int64_t*))
        self.col_mask = <const uint8_t**>malloc(max(1, self.n_cols) * sizeof(uint8_t*))
        self.col_values = <const char**>malloc(max(1, self.n_cols) * sizeof(char*))
        self.col_data = <const uint8_t**>malloc(max(1, self.n_cols) * sizeof(uint8_t*))
        if (self.col_kind == NULL or self.col_index == NULL or self.key_col == NULL
                or self.wide_bit == NULL or self.agg_col == NULL or self.w_kind == NULL
                or self.w_a == NULL or self.w_b == NULL or self.word_ptrs == NULL
                or self.col_mask == NULL or self.col_values == NULL or self.col_data == NULL):
            raise MemoryError()
        for i in range(self.n_cols):
            self.col_kind[i] = kinds[i]
            self.col_index[i] = -1
        self.any_string_key = False
        for i in range(self.n_keys):
            self.key_col[i] = key_cols[i]
            self.wide_bit[i] = wide.index(i) if i in wide else -1
            if kinds[key_cols[i]] == K_STRING:
                self.any_string_key = True
        for i in range(self.n_aggs):
            self.agg_col[i] = arg_cols[i]
        for i, item in enumerate(items):
            self.w_a[i] = self.w_b[i] = -1
            if item[0] == "pair":
                self.w_kind[i], self.w_a[i], self.w_b[i] = W_PAIR, item[1], item[2]
            elif item[0] == "narrow":
                self.w_kind[i], self.w_a[i] = W_NARROW, item[1]
            elif item[0] == "wide":
                self.w_kind[i], self.w_a[i] = W_WIDE, item[1]
            elif item[0] == "zero":
                self.w_kind[i] = W_ZERO
            elif item[0] == "nulls":
                self.w_kind[i] = W_NULLS
            else:
                raise ValueError(f"unknown key layout item {item!r}")
            if self.w_kind[i] in (W_PAIR, W_NARROW) and kinds[key_cols[self.w_a[i]]] != K_STRING:
                raise ValueError("only string keys are packed as narrow words here")
            if self.w_kind[i] == W_PAIR and kinds[key_cols[self.w_b[i]]] != K_STRING:
                raise ValueError("only string keys are packed as narrow words here")
        self.outputs = []
        for kind, idx in outputs:
            if kind == "k":
                self.outputs.append((True, idx, kinds[key_cols[idx]]))
            else:
                self.outputs.append((False, idx, K_FLOAT64 if (<Aggregate>self.aggs[idx]).result_is_float
                                     else K_INT64))
        if len(self.outputs) != len(out_schema):
            raise ValueError("one output entry per output column")
        moved = []  # distinct key columns, in key order
        for i in range(self.n_keys):
            if key_cols[i] not in moved:
                moved.append(key_cols[i])
        self.n_moved = len(moved)
        self.moved_col = <int*>malloc(max(1, self.n_moved) * sizeof(int))
        if self.moved_col == NULL:
            raise MemoryError()
        for i in range(self.n_moved):
            self.moved_col[i] = moved[i]
        fields = [pa.field(names[u], arrow[kinds[u]]) for u in moved]
        fields += [pa.field(f"__a{j}", pa.float64() if (<Aggregate>self.aggs[j]).result_is_float
                            else pa.int64()) for j in range(self.n_aggs)]
        order = [moved.index(key_cols[idx]) if is_key else self.n_moved + idx
                 for is_key, idx, _ in self.outputs]
        if order == list(range(len(fields))) and all(
                f.type == o.type for f, o in zip(fields, out_schema)):
            self.import_schema = out_schema
            self.reorder = None
        else:
            self.import_schema = pa.schema(fields)
            self.reorder = order

    def __dealloc__(self):
        if self.c_arr.release != NULL:
            self.c_arr.release(&self.c_arr)
        free(self.moved_col)
        free(self.col_kind)
        free(self.col_index)
        free(self.key_col)
        free(self.wide_bit)
        free(self.agg_col)
        free(self.w_kind)
        free(self.w_a)
        free(self.w_b)
        free(self.word_ptrs)
        free(self.col_mask)
        free(self.col_values)
        free(self.col_data)
        free(self.words)
        free(self.slots)
        free(self.codes)
        free(self.masks)
        free(self.gathered)

    # -- schema ------------------------------------------------------------------------------
    cdef bint _accept(self, schema) except -1:
        """Whether batches of ``schema`` can take this path; remembers the column positions."""
        if self.rejected is not None and schema.equals(self.rejected):
            return False
        for t in schema.types:  # a column the engine cannot take: the general path says so
            try:
                self.type_of_arrow(t)
            except TypeError:
                self.rejected = schema
                return False
        idx = []
        for name, want in zip(self.names, self.expected):
            i = schema.get_field_index(name)  # -1 when missing or ambiguous
            if i < 0 or schema.field(i).type != want:
                self.rejected = schema
                return False
            idx.append(i)
        cdef int u
        for u in range(self.n_cols):
            self.col_index[u] = idx[u]
        self.schema = schema
        return True

    def accepts(self, schema) -> bool:
        """Whether batches of this Arrow schema take the compiled step."""
        if schema is self.schema or (self.schema is not None and schema.equals(self.schema)):
            return True
        return self._accept(schema)

    # -- the step ----------------------------------------------------------------------------
    cpdef object push(self, object rb):
        """The rows ``rb`` emits as a ``Result``, or None: take the general path."""
        rows = self._whole(rb, True)
        return None if rows is None else self._counted(rows, rb.num_rows)

    cdef GroupRows _whole(self, object rb, bint emit):
        """``_run`` over all of ``rb`` (exported for the call), or None: the general path."""
        cdef Py_ssize_t n = rb.num_rows
        if n == 0 or n > self.max_rows:
            return None
        if self.busy:
            raise RuntimeError("this compiled step is in use by another thread")
        self.busy = True
        try:
            if not self._export(rb, n):
                return None
            try:
                return self._run(rb, n, emit)
            finally:
                self._release()
        finally:
            self.busy = False

    # -- the scan split (V2's exchange for few groups: velostream.jobs.partition_scan) ------------
    def aggregate(self, object rb):
        """The first pass over ``rb``, a contiguous piece of the job's input: its groups found
        (or added) and every aggregate's state updated by its rows, nothing emitted. Returns the
        rows (``GroupRows``: the key columns moved out of the batch, zero-copy, and each row's
        slot) for ``emit_rows`` to fill in, or None: take the general path."""
        return self._whole(rb, False)

    def emit_rows(self, GroupRows rows not None, object rb, slot_map, list aggs):
        """The second pass: the values of ``rows`` (``aggregate``'s of ``rb``), each aggregate
        ``aggs[j]`` (of this step's classes, holding each group's state before the piece at
        ``slot_map[row slot]``) updated row by row as a push updates the step's own state. The
        same rows, NULLs and errors (OutOfRangeError) as one push over the state before."""
        cdef const int32_t[::1] smap = slot_map
        cdef Py_ssize_t n = rows.num_rows, i, n_map = smap.shape[0]
        cdef int j, u
        cdef int32_t s, top = -1
        cdef Aggregate agg
        cdef const void* values
        cdef const uint8_t* m
        if rows.row_slots == NULL or rows.step is not self:
            raise ValueError("these rows are not this step's first pass")
        if rb.num_rows != n:
            raise ValueError("the batch is not the rows' batch")
        if len(aggs) != self.n_aggs:
            raise ValueError("one aggregate per aggregate of the step")
        for j in range(self.n_aggs):
            if type(aggs[j]) is not type(self.aggs[j]):
                raise TypeError(f"aggregate {j} is a {type(aggs[j]).__name__}, "
                                f"not a {type(self.aggs[j]).__name__}")
        if n == 0:
            return
        if self.busy:
            raise RuntimeError("this compiled step is in use by another thread")
        self.busy = True
        cdef bint release = n >= RELEASE_ROWS
        cdef char* base = _out_data(rows.block)
        cdef uint8_t* vbase = <uint8_t*>(base + 8 * n * self.n_aggs)
        try:
            if not self._export(rb, n):
                raise ValueError("the batch no longer takes the compiled step")
            try:
                self._reserve(n)
                self._columns(n)
                for i in range(n):
                    s = rows.row_slots[i]
                    if s < 0 or s >= n_map or smap[s] < 0:
                        raise ValueError("a row's group has no slot in the given state")
                    self.slots[i] = smap[s]
                    if smap[s] > top:
                        top = smap[s]
                for j in range(self.n_aggs):
                    agg = <Aggregate>aggs[j]
                    u = self.agg_col[j]
                    if u < 0:
                        values = <const void*>self.slots
                        m = NULL
                    else:
                        values = <const void*>self.col_values[u]
                        m = self.col_mask[u]
                    update_emit_rows(agg, n, self.slots, top, values, m, base + 8 * n * j,
                                     vbase + n * j, release)
            finally:
                self._release()
        finally:
            self.busy = False

    # -- one batch shared by partitions (V2's hash exchange) ----------------------------------
    def push_rows(self, object rb, object rows):
        """``push`` of the rows ``rows`` (int64, each < ``rb.num_rows``) of ``rb``, without
        copying them out first (V2's partitions each take their rows of a shared batch): the
        numbers are gathered into the step's scratch, the strings interned where they are, and
        the output's key columns made from the keys' codes. None: take the general path."""
        cdef const int64_t[::1] sel = rows
        cdef Py_ssize_t n = rb.num_rows, m = sel.shape[0]
        cdef GroupRows out
        if m == 0:
            return self._result([])
        if m > self.max_rows:
            return None
        # numpy's reductions vectorise (a compiled min/max loop here ran ~7x slower)
        rows_np = np.asarray(sel)
        if rows_np.min() < 0 or rows_np.max() >= n:
            raise IndexError("a row number is out of the batch's range")
        if self.busy:
            raise RuntimeError("this compiled step is in use by another thread")
        self.busy = True
        try:
            if not self._export(rb, n):
                return None
            try:
                out = self._new_rows(m)
                self._run_rows(n, rows, &sel[0], m, out)
                self._made_keys(out, m)
            finally:
                self._release()
        finally:
            self.busy = False
        return self._counted(out, m)

    cdef bint _export(self, object rb, Py_ssize_t n) except -1:
        """``rb`` exported to ``c_arr`` for a step, or False (its schema does not qualify: take
        the general path). ``_release`` ends the export."""
        schema = rb.schema
        if schema is not self.schema and (self.schema is None or not schema.equals(self.schema)):
            if not self._accept(schema):
                return False
        rb._export_to_c(self.c_addr)
        if self.c_arr.length != n:
            self._release()
            raise ValueError("the exported batch does not match its row count")
        return True

    cdef void _release(self) noexcept:
        if self.c_arr.release != NULL:
            self.c_arr.release(&self.c_arr)

    cdef object _counted(self, GroupRows out, Py_ssize_t n):
        """The ``Result`` of one step's ``n`` rows, counted in the stats."""
        self.batches += 1
        stats = self.stats
        stats["records_in"] += n
        stats["batches"] += 1
        stats["records_out"] += n
        return self._result([out])

    cdef object _result(self, list parts):
        r = self.result_cls.__new__(self.result_cls)
        r.schema = self.out_schema
        r._parts = parts
        return r

    cdef int _made_keys(self, GroupRows out, Py_ssize_t m) except -1:
        """``out``'s key columns from the rows' key values: strings decoded from their codes
        (the dictionary's bytes are few and in cache; the batch's are spread over its rows),
        numbers from the gathered values. Handed over as Arrow exports, as ``_run`` moves them."""
        import pyarrow as pa
        cdef int i, k, u
        cdef const uint8_t* mk
        for i in range(self.n_moved):
            u = self.moved_col[i]
            mk = self.col_mask[u]
            valid = None
            if mk != NULL:
                valid = np.frombuffer(_view_u8(mk, m), dtype=np.uint8).astype(bool)
            if self.col_kind[u] == K_STRING:
                k = self.key_col_of(u)
                self.lock.acquire()
                try:
                    arr = self.interner.decode(<int32_t[:m]>(self.codes + m * k), valid)
                finally:
                    self.lock.release()
            else:
                values = np.frombuffer(_view_u8(<const uint8_t*>self.col_values[u], 8 * m),
                                       dtype=np.int64 if self.col_kind[u] == K_INT64
                                       else np.float64).copy()
                arr = pa.array(values, mask=None if valid is None else ~valid)
            arr._export_to_c(<uintptr_t>&out.keys[i])
        return 0

    cdef int key_col_of(self, int u) except -1:
        cdef int k
        for k in range(self.n_keys):
            if self.key_col[k] == u:
                return k
        raise ValueError("not a key column")

    cdef GroupRows _new_rows(self, Py_ssize_t n):
        """An output of n rows: the aggregates' block (unfilled) and room for the moved keys."""
        cdef GroupRows out = GroupRows.__new__(GroupRows)
        cdef int i
        out.step = self
        out.num_rows = n
        out.keys = <ArrowArray*>malloc(max(1, self.n_moved) * sizeof(ArrowArray))
        out.block = <OutBlock*>malloc(sizeof(OutBlock) + 9 * n * max(1, self.n_aggs))
        if out.keys == NULL or out.block == NULL:
            raise MemoryError()
        for i in range(self.n_moved):
            out.keys[i].release = NULL
        out.block.refs = 1
        return out

    cdef int _run_rows(self, Py_ssize_t n, object rows_obj, const int64_t* rows, Py_ssize_t m,
                       GroupRows out) except -1:
        """``_run`` of rows ``rows`` (m of them) of the exported batch of n rows, into ``out``
        (m rows; its key columns are made afterwards, ``_made_keys``)."""
        cdef bint release = m >= RELEASE_ROWS
        cdef int u, i, j
        cdef Py_ssize_t zeros
        cdef ArrowArray* ch
        cdef const uint8_t* bits
        cdef uint8_t* mk
        cdef int64_t* dst
        cdef const int64_t* src
        cdef int n_aggs = self.n_aggs
        self._reserve(m)
        # used columns at the rows: validity as bytes (NULL: no NULLs among them), numbers
        # gathered; strings stay where they are (interned by row below)
        for u in range(self.n_cols):
            if self.col_index[u] >= self.c_arr.n_children:
                raise ValueError("the exported batch has fewer columns than its schema")
            ch = self.c_arr.children[self.col_index[u]]
            if ch.length != n:
                raise ValueError("an exported column does not match the batch's row count")
            self.col_mask[u] = NULL
            bits = <const uint8_t*>ch.buffers[0]
            if bits != NULL and ch.null_count != 0:
                mk = self.masks + u * m
                if release:
                    with nogil:
                        zeros = _bits_at(bits, ch.offset, rows, m, mk)
                else:
                    zeros = _bits_at(bits, ch.offset, rows, m, mk)
                if zeros:
                    self.col_mask[u] = mk
            if self.col_kind[u] == K_STRING:
                self.col_values[u] = <const char*>(<const int32_t*>ch.buffers[1] + ch.offset)
                self.col_data[u] = <const uint8_t*>ch.buffers[2]
            else:
                src = <const int64_t*>ch.buffers[1] + ch.offset
                dst = self.gathered + u * m
                if release:
                    with nogil:
                        _take8(src, rows, m, dst)
                else:
                    _take8(src, rows, m, dst)
                self.col_values[u] = <const char*>dst

        # string keys: codes of the rows' strings, read in place
        cdef const int32_t* offs
        if self.any_string_key:
            self.lock.acquire()
            try:
                for i in range(self.n_keys):
                    u = self.key_col[i]
                    if self.col_kind[u] == K_STRING:
                        offs = <const int32_t*>self.col_values[u]
                        self.interner.encode_buffers(
                            _view_i32(offs, n + 1), _view_u8(self.col_data[u], offs[n]),
                            <int32_t[:m]>(self.codes + m * i), rows_obj)
            finally:
                self.lock.release()

        self._key_words(m)
        find_or_insert_rows(self.table, self.word_ptrs, m, self.slots, release)
        cdef Py_ssize_t slot_cap = self.table.st.next_slot

        # aggregates, each writing its per-row output (EMIT CHANGES)
        cdef Aggregate agg
        cdef const void* values
        cdef const uint8_t* vmask
        cdef char* base = _out_data(out.block)
        cdef uint8_t* vbase = <uint8_t*>(base + 8 * m * n_aggs)
        for j in range(n_aggs):
            agg = <Aggregate>self.aggs[j]
            if agg.n_slots < slot_cap:
                agg.ensure_capacity(slot_cap)
            u = self.agg_col[j]
            if u < 0:
                values = <const void*>self.slots
                vmask = NULL
            else:
                values = <const void*>self.col_values[u]
                vmask = self.col_mask[u]
            update_emit_rows(agg, m, self.slots, <int32_t>(slot_cap - 1), values, vmask,
                             base + 8 * m * j, vbase + m * j, release)
        return 0

    cdef int _reserve(self, Py_ssize_t n) except -1:
        if n <= self.cap:
            return 0
        cdef Py_ssize_t cap = max(n, 2 * self.cap, 64)
        _grow(<void**>&self.words, cap * self.n_words * sizeof(int64_t))
        _grow(<void**>&self.slots, cap * sizeof(int32_t))
        _grow(<void**>&self.codes, cap * max(1, self.n_keys) * sizeof(int32_t))
        _grow(<void**>&self.masks, cap * max(1, self.n_cols) * sizeof(uint8_t))
        _grow(<void**>&self.gathered, cap * max(1, self.n_cols) * sizeof(int64_t))
        self.cap = cap
        return 0

    cdef int _columns(self, Py_ssize_t n) except -1:
        """The exported batch's used columns: buffer pointers at the array offset, validity as
        bytes (NULL: no NULLs)."""
        cdef int u
        cdef Py_ssize_t r, zeros, off
        cdef ArrowArray* ch
        cdef const uint8_t* bits
        cdef uint8_t* m
        for u in range(self.n_cols):
            if self.col_index[u] >= self.c_arr.n_children:
                raise ValueError("the exported batch has fewer columns than its schema")
            ch = self.c_arr.children[self.col_index[u]]
            if ch.length != n:
                raise ValueError("an exported column does not match the batch's row count")
            off = ch.offset
            self.col_mask[u] = NULL
            bits = <const uint8_t*>ch.buffers[0]
            if bits != NULL and ch.null_count != 0:
                m = self.masks + u * n
                zeros = 0
                for r in range(n):
                    m[r] = (bits[(off + r) >> 3] >> ((off + r) & 7)) & 1
                    zeros += 1 - m[r]
                if zeros:
                    self.col_mask[u] = m
            if self.col_kind[u] == K_STRING:
                self.col_values[u] = <const char*>(<const int32_t*>ch.buffers[1] + off)
                self.col_data[u] = <const uint8_t*>ch.buffers[2]
            else:
                self.col_values[u] = <const char*>ch.buffers[1] + 8 * off
        return 0

    cdef GroupRows _run(self, object rb, Py_ssize_t n, bint emit=True):
        """The step over the exported batch: its groups, every aggregate updated, and (``emit``)
        each row's values written; without ``emit`` (the scan split's first pass) the rows keep
        their slots for ``emit_rows`` instead."""
        cdef bint release = n >= RELEASE_ROWS
        cdef int u, i, j
        cdef ArrowArray* ch
        cdef uint8_t* m
        cdef int n_aggs = self.n_aggs
        self._reserve(n)

        # the output: per aggregate 8n bytes of values, then per aggregate n validity bytes
        cdef GroupRows out = self._new_rows(n)
        cdef char* base = _out_data(out.block)
        cdef uint8_t* vbase = <uint8_t*>(base + 8 * n * n_aggs)

        self._columns(n)

        # string keys: codes from the job's dictionary
        if self.any_string_key:
            self.lock.acquire()
            try:
                for i in range(self.n_keys):
                    u = self.key_col[i]
                    if self.col_kind[u] == K_STRING:
                        intern_strings(self.interner, <const int32_t*>self.col_values[u],
                                       self.col_data[u], n, self.codes + n * i, release)
            finally:
                self.lock.release()

        # group-key words, exactly as KeyCodec.encode lays them out
        self._key_words(n)
        find_or_insert_rows(self.table, self.word_ptrs, n, self.slots, release)
        cdef Py_ssize_t slot_cap = self.table.st.next_slot
        if not emit:  # the scan split's first pass: the rows' slots, for the second
            out.row_slots = <int32_t*>malloc(max(1, n) * sizeof(int32_t))
            if out.row_slots == NULL:
                raise MemoryError()
            memcpy(out.row_slots, self.slots, n * sizeof(int32_t))

        # aggregates, each writing its per-row output (EMIT CHANGES)
        cdef Aggregate agg
        cdef const void* values
        for j in range(n_aggs):
            agg = <Aggregate>self.aggs[j]
            if agg.n_slots < slot_cap:
                agg.ensure_capacity(slot_cap)
            u = self.agg_col[j]
            if u < 0:
                values = <const void*>self.slots  # COUNT(*) reads no values
                m = NULL
            else:
                values = <const void*>self.col_values[u]  # COUNT(x) only reads the validity
                m = <uint8_t*>self.col_mask[u]
            update_emit_rows(agg, n, self.slots, <int32_t>(slot_cap - 1), values, m,
                             base + 8 * n * j, vbase + n * j if emit else NULL, release)
        # the key columns, moved out of the export (zero-copy): the output's key columns
        for i in range(self.n_moved):
            ch = self.c_arr.children[self.col_index[self.moved_col[i]]]
            out.keys[i] = ch[0]
            ch.release = NULL
        return out

    cdef void _key_words(self, Py_ssize_t n) noexcept:
        cdef int w, a, b, i
        cdef Py_ssize_t r
        cdef int64_t* dst
        cdef const int32_t* ca
        cdef const int32_t* cb
        cdef const uint8_t* va
        cdef const uint8_t* vb
        cdef const int64_t* iv
        cdef const double* fv
        cdef double x
        cdef uint64_t bitsx
        cdef int32_t ka, kb
        for w in range(self.n_words):
            dst = self.words + w * n
            self.word_ptrs[w] = dst
            a = self.w_a[w]
            b = self.w_b[w]
            va = vb = NULL
            if a >= 0:
                va = self.col_mask[self.key_col[a]]
            if b >= 0:
                vb = self.col_mask[self.key_col[b]]
            if self.w_kind[w] == W_PAIR:  # key a in the high half, key b in the low, NULL = -1
                ca = self.codes + n * a
                cb = self.codes + n * b
                for r in range(n):
                    ka = ca[r] if va == NULL or va[r] else -1
                    kb = cb[r] if vb == NULL or vb[r] else -1
                    dst[r] = <int64_t>((<uint64_t><uint32_t>ka << 32) | <uint64_t><uint32_t>kb)
            elif self.w_kind[w] == W_NARROW:
                ca = self.codes + n * a
                for r in range(n):
                    dst[r] = ca[r] if va == NULL or va[r] else -1
            elif self.w_kind[w] == W_WIDE:
                if self.col_kind[self.key_col[a]] == K_FLOAT64:
                    fv = <const double*>self.col_values[self.key_col[a]]
                    for r in range(n):
                        x = fv[r] + 0.0  # -0.0 -> 0.0
                        if x != x:
                            bitsx = CANONICAL_NAN
                        else:
                            memcpy(&bitsx, &x, 8)
                        dst[r] = <int64_t>bitsx if va == NULL or va[r] else 0
                else:
                    iv = <const int64_t*>self.col_values[self.key_col[a]]
                    if va == NULL:
                        memcpy(dst, iv, 8 * n)
                    else:
                        for r in range(n):
                            dst[r] = iv[r] if va[r] else 0
            elif self.w_kind[w] == W_ZERO:
                memset(dst, 0, 8 * n)
            else:  # W_NULLS: bit k set when the k-th wide key is NULL
                memset(dst, 0, 8 * n)
                for i in range(self.n_keys):
                    va = self.col_mask[self.key_col[i]]
                    if self.wide_bit[i] >= 0 and va != NULL:
                        for r in range(n):
                            dst[r] |= <int64_t>(1 - va[r]) << self.wide_bit[i]


@cython.final
@cython.no_gc
cdef class GroupRows:
    """The rows one ``GroupStep.push`` emitted, held until Arrow is asked for: the aggregates'
    values in one block, and the input's key columns (moved out of its C data export)."""

    cdef GroupStep step
    cdef OutBlock* block
    cdef ArrowArray* keys         # step.n_moved moved key columns (release NULL once imported)
    cdef object batch             # the record batch, once built
    cdef readonly Py_ssize_t num_rows
    cdef int32_t* row_slots       # each row's group slot (GroupStep.aggregate), or NULL

    def __dealloc__(self):
        cdef int i
        if self.keys != NULL:
            for i in range(self.step.n_moved if self.step is not None else 0):
                if self.keys[i].release != NULL:
                    self.keys[i].release(&self.keys[i])
            free(self.keys)
        free(self.row_slots)
        _out_decref(self.block)

    def __len__(self):
        return self.num_rows

    def to_batch(self):
        """The rows as the ``pyarrow.RecordBatch`` the general path emits for them (built once,
        by one Arrow C data interface import: no copies)."""
        if self.batch is not None:
            return self.batch
        import pyarrow as pa
        cdef GroupStep step = self.step
        cdef Py_ssize_t n = self.num_rows, nulls, r
        cdef int n_aggs = step.n_aggs, n_moved = step.n_moved, j, m = n_moved + n_aggs
        cdef Py_ssize_t nbits = (n + 7) >> 3
        cdef char* base = _out_data(self.block)
        cdef const uint8_t* valid
        cdef uint8_t* bits
        cdef ArrowArray* ch
        # one allocation: the block, child pointers, children, 2 buffers and a bitmap per aggregate
        cdef Py_ssize_t head = sizeof(ImportBlock) + m * sizeof(ArrowArray*)
        head = (head + 15) & ~15
        cdef Py_ssize_t size = head + m * sizeof(ArrowArray) + 2 * n_aggs * sizeof(void*) \
            + n_aggs * nbits
        cdef char* mem = <char*>malloc(size)
        if mem == NULL:
            raise MemoryError()
        cdef ImportBlock* blk = <ImportBlock*>mem
        blk.n_children = m
        blk.child_ptrs = <ArrowArray**>(mem + sizeof(ImportBlock))
        blk.children = <ArrowArray*>(mem + head)
        cdef const void** buffers = <const void**>(mem + head + m * sizeof(ArrowArray))
        cdef uint8_t* bitmaps = <uint8_t*>(mem + head + m * sizeof(ArrowArray)
                                           + 2 * n_aggs * sizeof(void*))
        for j in range(n_moved):  # the key columns, as they came
            blk.children[j] = self.keys[j]
            self.keys[j].release = NULL
        for j in range(n_aggs):
            ch = &blk.children[n_moved + j]
            valid = <const uint8_t*>base + 8 * n * n_aggs + n * j
            bits = bitmaps + nbits * j
            nulls = 0
            if memchr(valid, 0, n) != NULL:  # some NULLs: Arrow's bitmap, 8 rows per step
                nulls = _pack_bits(valid, n, bits)
            buffers[2 * j] = bits if nulls else NULL
            buffers[2 * j + 1] = base + 8 * n * j
            ch.length = n
            ch.null_count = nulls
            ch.offset = 0
            ch.n_buffers = 2
            ch.n_children = 0
            ch.buffers = &buffers[2 * j]
            ch.children = NULL
            ch.dictionary = NULL
            ch.release = _release_child
            ch.private_data = NULL
        for j in range(m):
            blk.child_ptrs[j] = &blk.children[j]
        vs_refs_add(&self.block.refs, 1)
        blk.out = self.block
        blk.no_validity = NULL
        cdef ArrowArray parent  # handed over (moved) by the import; on our stack, so that we can
        parent.length = n       # tell afterwards whether it was taken
        parent.null_count = 0
        parent.offset = 0
        parent.n_buffers = 1
        parent.n_children = m
        parent.buffers = &blk.no_validity
        parent.children = blk.child_ptrs
        parent.dictionary = NULL
        parent.release = _release_parent
        parent.private_data = blk
        try:
            batch = pa.RecordBatch._import_from_c(<uintptr_t>&parent, step.import_schema)
        finally:
            if parent.release != NULL:  # not taken over: give everything back
                _release_parent(&parent)
        if step.reorder is not None:
            batch = pa.RecordBatch.from_arrays([batch.column(i) for i in step.reorder],
                                               names=step.out_schema.names)
        self.batch = batch
        return batch

    def __repr__(self):
        return f"<GroupRows {self.num_rows} rows>"
