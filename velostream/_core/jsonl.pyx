"""JSON Lines into columns: flat objects with a known schema, decoded in one pass without the GIL.

This is the common case of a JSON source once its schema is fixed: every line an object whose
values are numbers, booleans, strings or NULL. ``decode_flat_lines`` walks the buffer once, matches
each key against the field names (unknown keys are skipped, their values validated all the same),
and appends each value to its column: numpy values + a uint8 validity mask, or for strings Arrow's
int32 offsets + UTF-8 bytes. Records are never Python objects.

The parser is strict where orjson is strict (RFC 8259: no NaN, no leading zeros, no raw control
characters, valid UTF-8 everywhere, paired surrogates, depth-limited nesting), because the Python
decoder builds the reject messages of the lines flagged here with orjson: a line accepted here must
be one orjson accepts. A line that is malformed, or whose value does not fit its field's type, is
"bad": it adds nothing to the columns (they hold the good rows only, in order) and is reported with
its position, an error code and the field at fault; parsing resumes after its newline.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy
from libcpp.vector cimport vector

cnp.import_array()

cdef extern from *:
    """
    #include <charconv>
    #include <system_error>
    #include <cstdint>

    // std::from_chars: exact, locale-free. 0 = parsed, 1 = out of range, 2 = not a number.
    static inline int vs_parse_i64(const char* a, const char* b, int64_t* out) {
        auto r = std::from_chars(a, b, *out);
        if (r.ec == std::errc::result_out_of_range) return 1;
        return (r.ec == std::errc() && r.ptr == b) ? 0 : 2;
    }

    // The same for a double (the text has passed the JSON number grammar). from_chars reports
    // underflow and overflow alike as out of range and leaves the value alone; orjson rounds an
    // underflow to a signed zero and rejects an overflow, so tell them apart by the decimal
    // magnitude: 10^(position of the first non-zero digit + exponent).
    static inline int vs_parse_f64(const char* a, const char* b, double* out) {
        auto r = std::from_chars(a, b, *out);
        if (r.ec == std::errc() && r.ptr == b) return 0;
        if (r.ec != std::errc::result_out_of_range) return 2;
        const char* p = a;
        bool neg = *p == '-';
        if (neg) ++p;
        long mag = 0, lead = 0;
        bool found = false;
        while (p < b && *p >= '0' && *p <= '9') {   // integer part
            if (*p != '0' || found) { if (found) ++mag; found = true; }
            ++p;
        }
        if (p < b && *p == '.') {
            ++p;
            while (p < b && *p >= '0' && *p <= '9') {
                if (!found) { ++lead; if (*p != '0') { found = true; mag = -lead; } }
                ++p;
            }
        }
        long e = 0;
        if (p < b && (*p == 'e' || *p == 'E')) {
            ++p;
            bool eneg = false;
            if (p < b && (*p == '+' || *p == '-')) { eneg = *p == '-'; ++p; }
            while (p < b && *p >= '0' && *p <= '9') { if (e < 100000000) e = e * 10 + (*p - '0'); ++p; }
            if (eneg) e = -e;
        }
        if (mag + e > 0) return 1;                  // overflow: orjson says "number is infinity"
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    """
    int vs_parse_i64(const char* a, const char* b, int64_t* out) noexcept nogil
    int vs_parse_f64(const char* a, const char* b, double* out) noexcept nogil


cdef extern from *:
    """
    #include <vector>
    #include <cstdint>

    /* C++ containers report allocation failure by throwing: these wrappers return -1 instead,
       so that no exception can escape the nogil pass (which then stops and raises MemoryError). */
    static inline int vs_append(std::vector<uint8_t>& v, const uint8_t* p, size_t n) noexcept {
        try { v.insert(v.end(), p, p + n); } catch (...) { return -1; }
        return 0;
    }
    static inline int vs_push(std::vector<uint8_t>& v, uint8_t c) noexcept {
        try { v.push_back(c); } catch (...) { return -1; }
        return 0;
    }
    static inline void vs_truncate(std::vector<uint8_t>& v, size_t n) noexcept {
        if (v.size() > n) v.erase(v.begin() + n, v.end());  // shrinking never allocates
    }
    static inline int vs_push_i64(std::vector<int64_t>& v, int64_t x) noexcept {
        try { v.push_back(x); } catch (...) { return -1; }
        return 0;
    }
    """
    int vs_append(vector[uint8_t]& v, const uint8_t* p, size_t n) noexcept nogil
    int vs_push(vector[uint8_t]& v, uint8_t c) noexcept nogil
    void vs_truncate(vector[uint8_t]& v, size_t n) noexcept nogil
    int vs_push_i64(vector[int64_t]& v, int64_t x) noexcept nogil


# Field kinds (what a column decodes as).
KIND_INT64 = 0
KIND_FLOAT64 = 1
KIND_BOOL = 2
KIND_STRING = 3
DEF K_INT64 = 0
DEF K_FLOAT64 = 1
DEF K_BOOL = 2
DEF K_STRING = 3

# Why a line is bad (the field index says which field, for the per-field ones).
ERR_EMPTY = 1          # a blank payload (payloads mode; blank lines of a file are skipped)
ERR_SYNTAX = 2         # not valid JSON: truncated, trailing garbage, bad escape or number, ...
ERR_UTF8 = 3           # invalid UTF-8 (or a lone surrogate escape)
ERR_NOT_OBJECT = 4     # valid JSON, maybe, but not an object
ERR_WRONG_TYPE = 5     # a value that does not fit its field's kind
ERR_INT_OVERFLOW = 6   # an integer outside int64 for an INT64 field
ERR_NUMBER_RANGE = 7   # a number that overflows a double (orjson rejects the line)
ERR_MISSING = 8        # a required field is missing
ERR_TOO_DEEP = 9       # nesting deeper than MAX_DEPTH
DEF E_EMPTY = 1
DEF E_SYNTAX = 2
DEF E_UTF8 = 3
DEF E_NOT_OBJECT = 4
DEF E_WRONG_TYPE = 5
DEF E_INT_OVERFLOW = 6
DEF E_NUMBER_RANGE = 7
DEF E_MISSING = 8
DEF E_TOO_DEEP = 9
DEF E_NOMEM = 100      # internal: an allocation failed, the pass stops (MemoryError)

# Per field and line: what the last occurrence of its key held (duplicate keys: the last wins).
DEF S_MISSING = 0
DEF S_NULL = 1
DEF S_VALUE = 2
# (an error state is the error code itself, >= E_WRONG_TYPE)

# Nested values below a skipped key: orjson refuses more than 1024 levels in all; stopping a little
# earlier is safe (the Python side re-checks every flagged line with orjson).
MAX_DEPTH = 1000
DEF DEPTH = 1000

# Byte classes inside a JSON string: 0 = plain ASCII, copied in runs; anything else needs a look.
cdef uint8_t STR_CLASS[256]
cdef int _i
for _i in range(256):
    STR_CLASS[_i] = 1 if (_i < 0x20 or _i == 0x22 or _i == 0x5C or _i >= 0x80) else 0

cdef uint8_t _EMPTY_BYTE = 0


cdef class _Bytes:
    """A std::vector's bytes exposed through the buffer protocol: string data goes to Arrow as it
    was grown, without a copy (``pa.py_buffer(obj)`` keeps this object alive)."""
    cdef vector[uint8_t] v
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __len__(self):
        return self.v.size()

    def __getbuffer__(self, Py_buffer* view, int flags):
        self.shape[0] = self.v.size()
        self.strides[0] = 1
        view.buf = <void*>(self.v.data() if self.v.size() else &_EMPTY_BYTE)
        view.obj = self
        view.len = self.v.size()
        view.readonly = 1
        view.itemsize = 1
        if flags & 0x0004:  # PyBUF_FORMAT
            view.format = b"B"
        else:
            view.format = NULL
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass


# ------------------------------------------------------------------------------ scanners
# Each takes the position and the end of the current line, returns the position after what it read
# or NULL with err[0] set. None of them reads at or past the line's end.

cdef inline const uint8_t* skip_ws(const uint8_t* p, const uint8_t* e) noexcept nogil:
    # JSON whitespace inside a line (newlines end the line before we get here)
    while p < e and (p[0] == 32 or p[0] == 9 or p[0] == 13):
        p += 1
    return p


cdef inline int utf8_len(const uint8_t* p, const uint8_t* e) noexcept nogil:
    """Length of the well-formed UTF-8 sequence at p (its first byte >= 0x80), or 0: overlong
    forms, UTF-16 surrogates and code points past U+10FFFF are refused, as Python and orjson do."""
    cdef uint8_t c = p[0], c1
    cdef Py_ssize_t left = e - p
    if c < 0xC2:
        return 0
    if left < 2:
        return 0
    c1 = p[1]
    if c < 0xE0:
        return 2 if (c1 & 0xC0) == 0x80 else 0
    if left < 3 or (p[2] & 0xC0) != 0x80:
        return 0
    if c < 0xF0:
        if c == 0xE0:
            return 3 if 0xA0 <= c1 <= 0xBF else 0
        if c == 0xED:
            return 3 if 0x80 <= c1 <= 0x9F else 0
        return 3 if (c1 & 0xC0) == 0x80 else 0
    if left < 4 or (p[3] & 0xC0) != 0x80:
        return 0
    if c == 0xF0:
        return 4 if 0x90 <= c1 <= 0xBF else 0
    if c < 0xF4:
        return 4 if (c1 & 0xC0) == 0x80 else 0
    if c == 0xF4:
        return 4 if 0x80 <= c1 <= 0x8F else 0
    return 0


cdef inline int hex4(const uint8_t* p) noexcept nogil:
    """The value of four hex digits, or -1."""
    cdef int v = 0, d, k
    cdef uint8_t c
    for k in range(4):
        c = p[k]
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            return -1
        v = (v << 4) | d
    return v


cdef inline int put_utf8(vector[uint8_t]* out, uint32_t cp) noexcept nogil:
    cdef uint8_t b[4]
    cdef size_t n
    if cp < 0x80:
        b[0] = <uint8_t>cp
        n = 1
    elif cp < 0x800:
        b[0] = <uint8_t>(0xC0 | (cp >> 6))
        b[1] = <uint8_t>(0x80 | (cp & 0x3F))
        n = 2
    elif cp < 0x10000:
        b[0] = <uint8_t>(0xE0 | (cp >> 12))
        b[1] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
        b[2] = <uint8_t>(0x80 | (cp & 0x3F))
        n = 3
    else:
        b[0] = <uint8_t>(0xF0 | (cp >> 18))
        b[1] = <uint8_t>(0x80 | ((cp >> 12) & 0x3F))
        b[2] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
        b[3] = <uint8_t>(0x80 | (cp & 0x3F))
        n = 4
    return vs_append(out[0], b, n)


cdef const uint8_t* scan_string(const uint8_t* p, const uint8_t* e, vector[uint8_t]* out,
                                int* err) noexcept nogil:
    """A string's body (p is just past the opening quote), unescaped into ``out`` (NULL: only
    validated). Returns the position after the closing quote."""
    cdef const uint8_t* run = p
    cdef uint8_t c
    cdef int n, cp, lo
    while True:
        while p < e and STR_CLASS[p[0]] == 0:  # the common case: a run of plain ASCII
            p += 1
        if p >= e:
            err[0] = E_SYNTAX  # no closing quote on this line
            return NULL
        c = p[0]
        if c == 34:  # '"'
            if out != NULL and p > run and vs_append(out[0], run, p - run) < 0:
                err[0] = E_NOMEM
                return NULL
            return p + 1
        if c == 92:  # backslash
            if out != NULL and p > run and vs_append(out[0], run, p - run) < 0:
                err[0] = E_NOMEM
                return NULL
            if p + 1 >= e:
                err[0] = E_SYNTAX
                return NULL
            c = p[1]
            p += 2
            if c == 117:  # \uXXXX, a surrogate pair as one code point
                if e - p < 4:
                    err[0] = E_SYNTAX
                    return NULL
                cp = hex4(p)
                if cp < 0:
                    err[0] = E_SYNTAX
                    return NULL
                p += 4
                if 0xD800 <= cp <= 0xDBFF:
                    if e - p < 6 or p[0] != 92 or p[1] != 117:
                        err[0] = E_UTF8
                        return NULL
                    lo = hex4(p + 2)
                    if lo < 0xDC00 or lo > 0xDFFF:
                        err[0] = E_UTF8 if lo >= 0 else E_SYNTAX
                        return NULL
                    p += 6
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                elif 0xDC00 <= cp <= 0xDFFF:
                    err[0] = E_UTF8
                    return NULL
                if out != NULL and put_utf8(out, <uint32_t>cp) < 0:
                    err[0] = E_NOMEM
                    return NULL
            else:
                if c == 34 or c == 92 or c == 47:  # \" \\ \/
                    pass
                elif c == 98:
                    c = 8
                elif c == 102:
                    c = 12
                elif c == 110:
                    c = 10
                elif c == 114:
                    c = 13
                elif c == 116:
                    c = 9
                else:
                    err[0] = E_SYNTAX
                    return NULL
                if out != NULL and vs_push(out[0], c) < 0:
                    err[0] = E_NOMEM
                    return NULL
            run = p
            continue
        if c < 0x20:  # raw control characters are not allowed in JSON strings
            err[0] = E_SYNTAX
            return NULL
        n = utf8_len(p, e)
        if n == 0:
            err[0] = E_UTF8
            return NULL
        p += n


cdef struct Num:
    bint is_int     # no fraction, no exponent
    bint has_exp
    int digits      # digits of the integer part
    int64_t value   # the integer, when is_int and digits <= 18 (no overflow possible)


cdef inline const uint8_t* scan_number(const uint8_t* p, const uint8_t* e, Num* num,
                                       int* err) noexcept nogil:
    """The JSON number grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; what follows it is
    the caller's to check (so 01 fails there: a value cannot be followed by a digit)."""
    cdef bint neg = False
    cdef uint64_t acc = 0
    cdef const uint8_t* d0
    num.is_int = True
    num.has_exp = False
    if p < e and p[0] == 45:  # '-'
        neg = True
        p += 1
    if p >= e or not (48 <= p[0] <= 57):
        err[0] = E_SYNTAX
        return NULL
    d0 = p
    if p[0] == 48:
        p += 1
    else:
        while p < e and 48 <= p[0] <= 57:
            acc = acc * 10 + (p[0] - 48)  # wraps past 19 digits: only used up to 18
            p += 1
    num.digits = <int>(p - d0)
    num.value = -<int64_t>acc if neg else <int64_t>acc
    if p < e and p[0] == 46:  # '.'
        num.is_int = False
        p += 1
        if p >= e or not (48 <= p[0] <= 57):
            err[0] = E_SYNTAX
            return NULL
        while p < e and 48 <= p[0] <= 57:
            p += 1
    if p < e and (p[0] == 101 or p[0] == 69):  # e E
        num.is_int = False
        num.has_exp = True
        p += 1
        if p < e and (p[0] == 43 or p[0] == 45):
            p += 1
        if p >= e or not (48 <= p[0] <= 57):
            err[0] = E_SYNTAX
            return NULL
        while p < e and 48 <= p[0] <= 57:
            p += 1
    return p


cdef inline const uint8_t* skip_number(const uint8_t* p, const uint8_t* e, int* err) noexcept nogil:
    """A number whose value is not needed; one that overflows a double is an error (as in orjson).
    Without an exponent that takes more than 300 integer digits, so most numbers skip the check."""
    cdef Num num
    cdef double d
    cdef const uint8_t* s = p
    p = scan_number(p, e, &num, err)
    if p != NULL and (num.has_exp or num.digits > 300) \
            and vs_parse_f64(<const char*>s, <const char*>p, &d) == 1:
        err[0] = E_NUMBER_RANGE
        return NULL
    return p


cdef inline const uint8_t* scan_literal(const uint8_t* p, const uint8_t* e, const char* word,
                                        Py_ssize_t n, int* err) noexcept nogil:
    if e - p < n or memcmp(p, word, n) != 0:
        err[0] = E_SYNTAX
        return NULL
    return p + n


cdef inline const uint8_t* skip_value(const uint8_t* p, const uint8_t* e, int* err) noexcept nogil:
    """Validate one JSON value of any shape (p at its first byte) and return the position after it."""
    cdef uint8_t c = p[0]
    if c == 34:
        return scan_string(p + 1, e, NULL, err)
    if c == 45 or 48 <= c <= 57:
        return skip_number(p, e, err)
    if c == 116:
        return scan_literal(p, e, "true", 4, err)
    if c == 102:
        return scan_literal(p, e, "false", 5, err)
    if c == 110:
        return scan_literal(p, e, "null", 4, err)
    if c == 123 or c == 91:
        return skip_container(p, e, err)
    err[0] = E_SYNTAX
    return NULL


cdef const uint8_t* skip_container(const uint8_t* p, const uint8_t* e, int* err) noexcept nogil:
    """An object or array (p at its bracket), iteratively: a stack of the open brackets."""
    cdef uint8_t stack[DEPTH]  # closing bracket of each open container
    cdef int depth = 0
    cdef bint want_value = True
    cdef uint8_t c
    while True:
        if not want_value and depth == 0:
            return p  # the outermost container is closed
        p = skip_ws(p, e)
        if p >= e:
            err[0] = E_SYNTAX
            return NULL
        c = p[0]
        if want_value:
            if c == 123 or c == 91:  # { [
                if depth >= DEPTH:
                    err[0] = E_TOO_DEEP
                    return NULL
                stack[depth] = c + 2  # } or ]
                depth += 1
                p = skip_ws(p + 1, e)
                if p < e and p[0] == stack[depth - 1]:  # empty container
                    depth -= 1
                    p += 1
                    want_value = False
                elif c == 123:
                    p = skip_key(p, e, err)
                    if p == NULL:
                        return NULL
                continue
            p = skip_value(p, e, err)  # a scalar here
            if p == NULL:
                return NULL
            want_value = False
            continue
        # after a value inside a container: a comma or the closing bracket
        if c == 44:  # ','
            p += 1
            if stack[depth - 1] == 125:
                p = skip_key(skip_ws(p, e), e, err)
                if p == NULL:
                    return NULL
            want_value = True
        elif c == stack[depth - 1]:
            depth -= 1
            p += 1
        else:
            err[0] = E_SYNTAX
            return NULL


cdef inline const uint8_t* skip_key(const uint8_t* p, const uint8_t* e, int* err) noexcept nogil:
    """``"key" :`` inside a skipped object (p at the quote); returns the position after the colon."""
    if p >= e or p[0] != 34:
        err[0] = E_SYNTAX
        return NULL
    p = scan_string(p + 1, e, NULL, err)
    if p == NULL:
        return NULL
    p = skip_ws(p, e)
    if p >= e or p[0] != 58:
        err[0] = E_SYNTAX
        return NULL
    return p + 1


cdef inline bint is_blank(const uint8_t* p, const uint8_t* e) noexcept nogil:
    # bytes.strip()'s whitespace: what the Python decoder calls a blank record
    while p < e:
        if not (p[0] == 32 or 9 <= p[0] <= 13):
            return False
        p += 1
    return True


cdef inline bint canonical_int(const uint8_t* p, const uint8_t* e) noexcept nogil:
    """Whether orjson writes this integer back exactly as it reads (so a STRING field can keep the
    text): not -0, and small enough to stay an integer (orjson turns > 64-bit ones into floats)."""
    if e - p == 2 and p[0] == 45 and p[1] == 48:
        return False
    return e - p - (1 if p[0] == 45 else 0) <= 18


cdef inline const uint8_t* line_end(const uint8_t* p, const uint8_t* e) noexcept nogil:
    """The '\n' ending the line at p, or e."""
    cdef const uint8_t* nl = <const uint8_t*>memchr(p, 10, e - p) if p < e else NULL
    return e if nl == NULL else nl


cdef inline const uint8_t* next_line(const uint8_t* nl, const uint8_t* e) noexcept nogil:
    """The start of the line after the one ending at nl (a '\n', or e)."""
    return nl + 1 if nl < e else e


cdef inline bint same_bytes(const uint8_t* a, Py_ssize_t na, const uint8_t* b, Py_ssize_t nb) noexcept nogil:
    # keys are short: a loop beats a call to memcmp
    cdef Py_ssize_t i
    if na != nb:
        return False
    for i in range(na):
        if a[i] != b[i]:
            return False
    return True


cdef inline uint8_t text_fixup(const uint8_t* p, const uint8_t* e) noexcept nogil:
    """For a non-string value kept as text in a STRING field: 2 when its text is what orjson writes
    (true, false, integers), 1 when Python must rewrite it (floats, -0, big integers, containers)."""
    cdef const uint8_t* s
    if p[0] == 116 or p[0] == 102:
        return 2
    if p[0] == 45 or 48 <= p[0] <= 57:
        s = p
        while s < e:
            if s[0] == 46 or s[0] == 101 or s[0] == 69:
                return 1
            s += 1
        return 2 if canonical_int(p, e) else 1
    return 1


cdef inline int push_bad(vector[int64_t]* bad, Py_ssize_t line, Py_ssize_t record, Py_ssize_t start,
                         Py_ssize_t stop, int code, int field) noexcept nogil:
    if (vs_push_i64(bad[0], line) < 0 or vs_push_i64(bad[0], record) < 0
            or vs_push_i64(bad[0], start) < 0 or vs_push_i64(bad[0], stop) < 0
            or vs_push_i64(bad[0], code) < 0 or vs_push_i64(bad[0], field) < 0):
        return -1
    return 0


# ------------------------------------------------------------------------------ the decoder

def decode_flat_lines(const uint8_t[::1] buf, field_names, const uint8_t[::1] kinds,
                      required=None, bint payloads=False):
    """Decode newline-delimited flat JSON objects into columns.

    ``field_names``: the fields (str), ``kinds``: a KIND_* per field, ``required``: a uint8 flag per
    field (or None): a line without a required key is bad (ERR_MISSING), else a missing field is NULL.
    ``payloads``: every '\\n'-separated segment is one record and a blank one is bad (ERR_EMPTY),
    as for Kafka payloads; otherwise blank lines are skipped (not counted as records) and a final
    newline ends the last line.

    Returns a dict:
      ``rows``: good rows; ``records``: records counted (non-blank lines, or every payload);
      ``columns``: per field ``(values, valid)`` (int64 / float64 / uint8 for BOOL, uint8 mask) or
      for STRING ``(offsets int32[rows+1], data buffer, valid)``, all exactly ``rows`` long;
      ``bad_line``, ``bad_record``, ``bad_start``, ``bad_end`` (int64: line index, record index,
      byte span of the line without its newline), ``bad_code``, ``bad_field`` (int32; field -1 when
      not about a field), in line order;
      ``nonstring``: per field, good rows whose STRING value was not a JSON string (its JSON text
      kept); ``fixup_row``, ``fixup_field``: those of them whose text is not the one orjson would
      write (floats, -0, big integers, objects and arrays): Python rewrites them.
    """
    cdef Py_ssize_t nf = len(field_names)
    if kinds.shape[0] != nf:
        raise ValueError("kinds must have one entry per field")
    cdef Py_ssize_t size = buf.shape[0]
    if size >= 0x7FFFFFFF:  # string data never outgrows the input, and offsets are int32
        raise ValueError("buffer too large for int32 string offsets (split it)")
    names = [n.encode("utf-8") if isinstance(n, str) else bytes(n) for n in field_names]
    name_blob = b"".join(names)
    cdef const uint8_t[::1] nb = name_blob if name_blob else b"\0"
    name_off_arr = np.zeros(nf + 1, dtype=np.int64)
    name_off_arr[1:] = np.cumsum([len(n) for n in names], dtype=np.int64)
    cdef const int64_t[::1] name_off = name_off_arr
    req_arr = np.zeros(nf, dtype=np.uint8) if required is None else np.ascontiguousarray(required, dtype=np.uint8)
    if req_arr.shape[0] != nf:
        raise ValueError("required must have one entry per field")
    cdef const uint8_t[::1] req = req_arr
    cdef Py_ssize_t f, k
    for f in range(nf):
        if kinds[f] > K_STRING:
            raise ValueError(f"unknown kind {kinds[f]} for field {f}")

    cdef const uint8_t* base = &buf[0] if size else &_EMPTY_BYTE
    cdef const uint8_t* end = base + size
    cdef const uint8_t* q
    # Rows <= lines, so the fixed-width outputs are sized once; only string bytes grow.
    cdef Py_ssize_t cap = 1, nseg
    with nogil:
        q = base
        while q < end:
            q = <const uint8_t*>memchr(q, 10, end - q)
            if q == NULL:
                break
            cap += 1
            q += 1
    # '\n'-separated segments; a file's final newline ends its last line rather than starting one
    nseg = cap if payloads or (size and base[size - 1] != 10) else cap - 1

    # Each field's column: a row of its kind's 2-D array, and a row of the validity array.
    counts = [0, 0, 0, 0]
    slot_of = []
    for f in range(nf):
        slot_of.append(counts[kinds[f]])
        counts[kinds[f]] += 1
    ints_np = np.zeros((counts[K_INT64], cap), dtype=np.int64)
    floats_np = np.zeros((counts[K_FLOAT64], cap), dtype=np.float64)
    bools_np = np.zeros((counts[K_BOOL], cap), dtype=np.uint8)
    offs_np = np.zeros((counts[K_STRING], cap + 1), dtype=np.int32)
    valid_np = np.zeros((nf, cap), dtype=np.uint8)
    cdef vector[int64_t*] ipt
    cdef vector[double*] fpt
    cdef vector[uint8_t*] bpt, vpt
    cdef vector[int32_t*] opt
    cdef vector[vector[uint8_t]] data
    ipt.resize(nf)
    fpt.resize(nf)
    bpt.resize(nf)
    vpt.resize(nf)
    opt.resize(nf)
    data.resize(nf)  # only the STRING fields' are used
    cdef int64_t[:, ::1] iv2 = ints_np
    cdef double[:, ::1] fv2 = floats_np
    cdef uint8_t[:, ::1] bv2 = bools_np
    cdef int32_t[:, ::1] ov2 = offs_np
    cdef uint8_t[:, ::1] vv2 = valid_np
    for f in range(nf):
        vpt[f] = &vv2[f, 0]
        if kinds[f] == K_INT64:
            ipt[f] = &iv2[slot_of[f], 0]
        elif kinds[f] == K_FLOAT64:
            fpt[f] = &fv2[slot_of[f], 0]
        elif kinds[f] == K_BOOL:
            bpt[f] = &bv2[slot_of[f], 0]
        else:
            opt[f] = &ov2[slot_of[f], 0]
            data[f].reserve(size // max(1, 2 * counts[K_STRING]) + 64)

    # Per field, the current line's state (reset for each line).
    cdef vector[int32_t] state_v
    cdef vector[int64_t] cur_i_v, nonstr_v
    cdef vector[double] cur_f_v
    cdef vector[size_t] row_start_v
    cdef vector[uint8_t] fix_v
    state_v.resize(nf + 1)
    cur_i_v.resize(nf + 1)
    nonstr_v.resize(nf + 1)
    cur_f_v.resize(nf + 1)
    row_start_v.resize(nf + 1)
    fix_v.resize(nf + 1)
    cdef int32_t* state = state_v.data()
    cdef int64_t* cur_i = cur_i_v.data()
    cdef int64_t* nonstr = nonstr_v.data()
    cdef double* cur_f = cur_f_v.data()
    cdef size_t* row_start = row_start_v.data()
    cdef uint8_t* fix = fix_v.data()
    cdef const uint8_t* kind_of = &kinds[0] if nf else &_EMPTY_BYTE
    cdef const uint8_t* req_of = &req[0] if nf else &_EMPTY_BYTE
    cdef const uint8_t* names_p = &nb[0]
    cdef const int64_t* noff = &name_off[0]
    # A name matches raw key bytes when it has nothing JSON would escape ('"', '\\', controls).
    plain_arr = np.asarray([not any(b < 0x20 or b in (0x22, 0x5C) for b in n) for n in names] + [False],
                           dtype=np.uint8)
    cdef const uint8_t[::1] plain_mv = plain_arr
    cdef const uint8_t* plain_of = &plain_mv[0]

    cdef vector[int64_t] bad      # 6 per bad line: line, record, start, end, code, field
    cdef vector[int64_t] fixups   # 2 per cell: row, field
    cdef vector[uint8_t] key_buf
    cdef vector[uint8_t]* sd = NULL
    cdef const uint8_t* p = base
    cdef const uint8_t* ls
    cdef const uint8_t* le
    cdef const uint8_t* ks
    cdef const uint8_t* kp
    cdef const uint8_t* vs
    cdef Py_ssize_t kn, rows = 0, records = 0, line, hint = 0, j
    cdef int err, err_field, kind
    cdef bint more, oom = False
    cdef uint8_t c
    cdef int64_t iv
    cdef double dv
    cdef Num num

    with nogil:
        for line in range(nseg):
            # Scanners stop at a '\n' (it cannot be part of any token), so they are bounded by
            # the buffer's end and the line's end is found only for lines that need it.
            ls = p
            q = skip_ws(ls, end)
            if q >= end or q[0] == 10 or ((q[0] == 11 or q[0] == 12) and is_blank(q, line_end(q, end))):
                p = next_line(line_end(q, end), end)
                if payloads:
                    records += 1
                    if push_bad(&bad, line, records - 1, ls - base, line_end(ls, end) - base, E_EMPTY, -1) < 0:
                        oom = True
                        break
                continue

            for f in range(nf):
                state[f] = S_MISSING
                fix[f] = 0
                if kind_of[f] == K_STRING:
                    row_start[f] = data[f].size()
            err = 0
            err_field = -1
            c = q[0]
            if c != 123:  # '{'
                err = E_NOT_OBJECT if (c == 91 or c == 34 or c == 45 or 48 <= c <= 57
                                       or c == 116 or c == 102 or c == 110) else E_SYNTAX
            else:
                q = skip_ws(q + 1, end)
                if q < end and q[0] == 125:  # {}
                    q += 1
                else:
                    more = True
                    while more:
                        # the key
                        if q >= end or q[0] != 34:
                            err = E_SYNTAX
                            break
                        ks = q + 1
                        # Records mostly list their keys in one order: try the field after the
                        # previous key first, its name and the closing quote compared in place.
                        f = -1
                        if hint < nf and plain_of[hint]:
                            kn = noff[hint + 1] - noff[hint]
                            if end - ks > kn and ks[kn] == 34 and same_bytes(names_p + noff[hint], kn, ks, kn):
                                f = hint
                                q = ks + kn + 1
                        if f < 0:
                            q = ks
                            while q < end and STR_CLASS[q[0]] == 0:
                                q += 1
                            if q < end and q[0] == 34:
                                kp = ks
                                kn = q - ks
                                q += 1
                            else:  # escapes or non-ASCII: unescape into key_buf
                                key_buf.clear()
                                q = scan_string(ks, end, &key_buf, &err)
                                if q == NULL:
                                    break
                                kp = key_buf.data() if key_buf.size() else &_EMPTY_BYTE
                                kn = key_buf.size()
                            for j in range(nf):
                                if same_bytes(names_p + noff[j], noff[j + 1] - noff[j], kp, kn):
                                    f = j
                                    break
                        q = skip_ws(q, end)
                        if q >= end or q[0] != 58:  # ':'
                            err = E_SYNTAX
                            break
                        q = skip_ws(q + 1, end)
                        if q >= end:
                            err = E_SYNTAX
                            break
                        # the value
                        c = q[0]
                        if f < 0:
                            q = skip_value(q, end, &err)
                        else:
                            hint = f + 1
                            kind = kind_of[f]
                            fix[f] = 0
                            if kind == K_STRING:
                                sd = &data[f]
                                vs_truncate(sd[0], row_start[f])  # a duplicate key replaces the value
                            if c == 110:  # null
                                q = scan_literal(q, end, "null", 4, &err)
                                state[f] = S_NULL
                            elif kind == K_INT64:
                                if c == 45 or 48 <= c <= 57:
                                    vs = q
                                    q = scan_number(q, end, &num, &err)
                                    if q == NULL:
                                        pass
                                    elif not num.is_int:
                                        state[f] = E_WRONG_TYPE
                                        if num.has_exp and vs_parse_f64(<const char*>vs, <const char*>q, &dv) == 1:
                                            err = E_NUMBER_RANGE
                                            q = NULL
                                    elif num.digits <= 18:
                                        cur_i[f] = num.value
                                        state[f] = S_VALUE
                                    elif vs_parse_i64(<const char*>vs, <const char*>q, &iv) == 0:
                                        cur_i[f] = iv
                                        state[f] = S_VALUE
                                    else:
                                        state[f] = E_INT_OVERFLOW
                                        if num.digits > 300 and vs_parse_f64(<const char*>vs, <const char*>q, &dv) == 1:
                                            err = E_NUMBER_RANGE
                                            q = NULL
                                else:
                                    q = skip_value(q, end, &err)
                                    state[f] = E_WRONG_TYPE
                            elif kind == K_FLOAT64:
                                if c == 45 or 48 <= c <= 57:
                                    vs = q
                                    q = scan_number(q, end, &num, &err)
                                    if q != NULL:
                                        if vs_parse_f64(<const char*>vs, <const char*>q, &dv) == 0:
                                            cur_f[f] = dv
                                            state[f] = S_VALUE
                                        else:
                                            err = E_NUMBER_RANGE
                                            q = NULL
                                else:
                                    q = skip_value(q, end, &err)
                                    state[f] = E_WRONG_TYPE
                            elif kind == K_BOOL:
                                if c == 116:
                                    q = scan_literal(q, end, "true", 4, &err)
                                    cur_i[f] = 1
                                    state[f] = S_VALUE
                                elif c == 102:
                                    q = scan_literal(q, end, "false", 5, &err)
                                    cur_i[f] = 0
                                    state[f] = S_VALUE
                                else:
                                    q = skip_value(q, end, &err)
                                    state[f] = E_WRONG_TYPE
                            else:  # STRING
                                if c == 34:
                                    q = scan_string(q + 1, end, sd, &err)
                                    state[f] = S_VALUE
                                else:
                                    # Flink: any other value is kept as its JSON text
                                    vs = q
                                    q = skip_value(q, end, &err)
                                    if q != NULL:
                                        if vs_append(sd[0], vs, q - vs) < 0:
                                            err = E_NOMEM
                                            break
                                        state[f] = S_VALUE
                                        fix[f] = text_fixup(vs, q)
                        if q == NULL:
                            break
                        q = skip_ws(q, end)
                        if q < end and q[0] == 44:  # ','
                            q = skip_ws(q + 1, end)
                        elif q < end and q[0] == 125:  # '}'
                            q += 1
                            more = False
                        else:
                            err = E_SYNTAX
                            break
                if err == 0:
                    q = skip_ws(q, end)
                    if q < end and q[0] != 10:
                        err = E_SYNTAX  # trailing garbage
            if err == E_NOMEM:
                oom = True
                break
            if err == 0:
                # field errors and missing required fields, first in field order (as Python does)
                for f in range(nf):
                    if state[f] >= E_WRONG_TYPE:
                        err = state[f]
                        err_field = f
                        break
                    if state[f] == S_MISSING and req_of[f]:
                        err = E_MISSING
                        err_field = f
                        break
            if err != 0:
                for f in range(nf):
                    if kind_of[f] == K_STRING:
                        vs_truncate(data[f], row_start[f])
                le = line_end(ls, end)
                p = next_line(le, end)
                if push_bad(&bad, line, records, ls - base, le - base, err, err_field) < 0:
                    oom = True
                    break
            else:
                p = next_line(q, end)  # q is at the '\n' (or the end)
                for f in range(nf):
                    kind = kind_of[f]
                    if state[f] == S_VALUE:
                        vpt[f][rows] = 1
                        if kind == K_INT64:
                            ipt[f][rows] = cur_i[f]
                        elif kind == K_FLOAT64:
                            fpt[f][rows] = cur_f[f]
                        elif kind == K_BOOL:
                            bpt[f][rows] = <uint8_t>cur_i[f]
                    if kind == K_STRING:
                        opt[f][rows + 1] = <int32_t>data[f].size()
                        if fix[f]:
                            nonstr[f] += 1
                            if fix[f] == 1 and (vs_push_i64(fixups, rows) < 0 or vs_push_i64(fixups, f) < 0):
                                oom = True
                rows += 1
            records += 1
            if oom:
                break
    if oom:
        raise MemoryError("decode_flat_lines: out of memory")

    columns = []
    for f in range(nf):
        kind = kinds[f]
        sl = slot_of[f]
        v = valid_np[f, :rows]
        if kind == K_INT64:
            columns.append((ints_np[sl, :rows], v))
        elif kind == K_FLOAT64:
            columns.append((floats_np[sl, :rows], v))
        elif kind == K_BOOL:
            columns.append((bools_np[sl, :rows], v))
        else:
            owner = _Bytes()
            owner.v.swap(data[f])
            columns.append((offs_np[sl, :rows + 1], owner, v))
    cdef Py_ssize_t nbad = bad.size() // 6, nfix = fixups.size() // 2
    bad_np = np.asarray(<int64_t[:bad.size()]>bad.data()).reshape(nbad, 6).copy() if nbad else np.zeros((0, 6), np.int64)
    fix_np = np.asarray(<int64_t[:fixups.size()]>fixups.data()).reshape(nfix, 2).copy() if nfix else np.zeros((0, 2), np.int64)
    return {
        "rows": rows, "records": records, "columns": columns,
        "bad_line": bad_np[:, 0].copy(), "bad_record": bad_np[:, 1].copy(),
        "bad_start": bad_np[:, 2].copy(), "bad_end": bad_np[:, 3].copy(),
        "bad_code": bad_np[:, 4].astype(np.int32), "bad_field": bad_np[:, 5].astype(np.int32),
        "nonstring": np.asarray(<int64_t[:nf + 1]>nonstr_v.data())[:nf].copy(),
        "fixup_row": fix_np[:, 0].copy(), "fixup_field": fix_np[:, 1].astype(np.int32),
    }


# ------------------------------------------------------------------------------ UTF-8 checks
# The file readers check each chunk with this before Arrow reads it (docs/CONNECTORS.md, bad
# records): Arrow's JSON reader does not check UTF-8, and its CSV reader says that a column holds
# bytes that are not UTF-8, not where.

cdef inline Py_ssize_t first_bad_utf8(const uint8_t* p, const uint8_t* e) noexcept nogil:
    """Offset from p of the first byte that does not start a well-formed UTF-8 sequence, or -1."""
    cdef const uint8_t* s = p
    cdef int n
    cdef uint64_t w
    while p < e:
        while e - p >= 8:  # plain ASCII, eight bytes at a time
            memcpy(&w, p, 8)
            if w & 0x8080808080808080ULL:
                break
            p += 8
        if p >= e:
            break
        if p[0] < 0x80:
            p += 1
            continue
        n = utf8_len(p, e)
        if n == 0:
            return p - s
        p += n
    return -1


def utf8_invalid_offset(buf) -> int:
    """The offset of the first byte of ``buf`` that is not part of well-formed UTF-8, or -1."""
    cdef const uint8_t[::1] mv = np.frombuffer(buf, dtype=np.uint8)  # bytes or an Arrow buffer
    cdef Py_ssize_t n = mv.shape[0], r
    if n == 0:
        return -1
    with nogil:
        r = first_bad_utf8(&mv[0], &mv[0] + n)
    return r
