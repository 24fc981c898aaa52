from libc.stdint cimport int64_t

# Row gather of fixed-width items (1, 2, 4, 8 or any size): d[i] = s[rows[i]], without the GIL.
# route.take_rows uses it too.
cdef void _take(const char* s, char* d, const int64_t* rows, Py_ssize_t m, int size) noexcept nogil
