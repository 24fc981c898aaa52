# The job-wide string dictionary: raw UTF-8 bytes of Arrow string arrays -> stable int32 codes.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t


# One entry of the interner's front cache: a string of up to 16 bytes is identified exactly by its
# length and head words (strings.pyx ``head_words``), so a match needs no byte comparison.
cdef struct CacheEntry:
    uint64_t w0
    uint64_t w1
    int32_t length           # -1: empty entry
    int32_t code

cdef class StringInterner:
    cdef object _data        # np.uint8 array: every distinct string's bytes, back to back
    cdef object _offsets     # np.int32 array: string c is _data[_offsets[c]:_offsets[c+1]]
    cdef object _hashes      # np.uint64 array: hash of string c (rehashing without rereading bytes)
    cdef object _heads       # np.uint64 array (2 per code): head_words of string c, compared before bytes
    cdef object _index       # np.int32 array, power-of-two size: open addressing, -1 = empty
    cdef Py_ssize_t count    # distinct strings so far (codes are 0..count-1)
    cdef Py_ssize_t nbytes   # bytes used in _data
    cdef Py_ssize_t mask     # len(_index) - 1
    cdef CacheEntry* _cache  # 2-way set-associative front cache (CACHE_SETS sets), see encode_buffers

    cdef void _reserve(self, Py_ssize_t more_strings, Py_ssize_t more_bytes)


# Codes for n strings given as raw Arrow buffers (offsets[0..n], data) into out; returns how many
# strings were new. The cdef entry behind ``encode_buffers`` (see strings.pyx).
cdef Py_ssize_t intern_strings(StringInterner si, const int32_t* offsets, const uint8_t* data,
                               Py_ssize_t n, int32_t* out, bint release_gil) except -1
