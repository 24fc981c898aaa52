"""JSON path extraction over the UTF-8 bytes of an Arrow string array, without the GIL.

``extract`` walks each payload once for one constant path: values off the path are skipped (but
validated: text that is not JSON gives NULL, docs/FUNCTIONS.md), the keys and indices of the path
are followed, and the byte span of the value found becomes the row's result, written straight
into Arrow's int32 offsets and UTF-8 bytes. No payload or value ever becomes a Python object.

The result must equal what the reference path (orjson: parse the payload, look the value up,
print it compactly, floats as DuckDB prints them) gives, so the scanner is strict where orjson
is strict (RFC 8259: no NaN, no leading zeros, no raw control characters, depth-limited nesting)
and a key given twice counts with its first value, as in DuckDB. Whatever it cannot decide
exactly is flagged
per row for the caller's reference path instead of being guessed: a run of 19 digits (the
reference reads such payloads with the ``json`` module, for integers beyond 64 bits), a lone
surrogate escape, an exponent that may overflow a double, nesting deeper than ``MAX_DEPTH``, and
an object or array as the result that has escaped keys (``write_compact``; one that gives a key
twice is printed with both, as DuckDB prints it). A float is printed as DuckDB prints the double it reads
(``jp_format_double``).
"""
import numpy as np
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy

# Row status (``extract``'s ``status`` output)
DEF ST_OK = 0        # valid JSON: the result is in the output
DEF ST_BAD = 1       # not valid JSON: NULL
DEF ST_FALLBACK = 2  # undecided here: the caller computes this row with its reference path

DEF MAX_DEPTH = 512  # orjson refuses 1024 levels; deeper than this is the reference path's call
DEF MAX_STEPS = 32   # path steps (a longer path is not compiled: see ``compile`` callers)
DEF MAX_BACK = 16    # largest n of a [#-n] step (the last n elements are remembered)
DEF FLOAT_ROOM = 32  # bytes a number's result may need beyond its text
DEF CONTAINER_ROOM = 64  # bytes an object's or array's result may need beyond its text
DEF DIGIT_RUN = 19   # the reference parses text holding this many digits in a row with ``json``

# Step kinds (``kinds`` input)
DEF STEP_KEY = 0      # an object key ($.a, $."a b", a bare key)
DEF STEP_INDEX = 1    # an array index: >= 0 from the start, < 0 from the end ([#-n])
DEF STEP_POINTER = 2  # a JSON pointer step: a key, or an index when the value is an array

# Modes (the function)
DEF MODE_EXISTS = 0
DEF MODE_VALUE = 1           # scalars as JSON text; null, objects and arrays NULL
DEF MODE_EXTRACT = 2         # JSON text
DEF MODE_EXTRACT_STRING = 3  # a string unquoted, null NULL, anything else JSON text

# for the caller (velostream/exec/functions.py)
FALLBACK = ST_FALLBACK
MODES = {"EXISTS": MODE_EXISTS, "VALUE": MODE_VALUE, "EXTRACT": MODE_EXTRACT,
         "EXTRACT_STRING": MODE_EXTRACT_STRING}
KEY, INDEX, POINTER = STEP_KEY, STEP_INDEX, STEP_POINTER
MAX_PATH_STEPS = MAX_STEPS
MAX_FROM_END = MAX_BACK

ctypedef const uint8_t* cptr

cdef extern from *:
    """
    #include <charconv>
    #include <cmath>
    #include <cstring>
    #include <system_error>

    static inline int ctz64(unsigned long long x) { return __builtin_ctzll(x); }

    // The JSON number p..q (a float: it has a fraction or an exponent) as DuckDB prints the
    // double it reads (velostream/exec/functions.py, _json_float): the shortest digits that read
    // back to the same double, in decimal notation when the exponent is in [-6, 20] (with ".0"
    // when it has no fraction) and else as d.ddde21 / d.ddde-7. Returns the length written at out
    // (at most 26), or -1 when the text does not give a finite double. std::from_chars and
    // std::to_chars: exact and locale-free.
    static int jp_format_double(const unsigned char* p, const unsigned char* q, unsigned char* out) {
        double x;
        auto r = std::from_chars((const char*)p, (const char*)q, x);
        if (r.ec != std::errc() || (const unsigned char*)r.ptr != q || !std::isfinite(x)) return -1;
        char* o = (char*)out;
        if (x == 0) {
            if (std::signbit(x)) { memcpy(o, "-0.0", 4); return 4; }
            memcpy(o, "0.0", 3);
            return 3;
        }
        char buf[48];
        auto t = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
        if (t.ec != std::errc()) return -1;
        const char* b = buf;
        const char* be = t.ptr;
        char* start = o;
        if (*b == '-') { *o++ = '-'; b++; }
        char digits[24];
        int nd = 0;
        while (b < be && *b != 'e') { if (*b != '.' && nd < 24) digits[nd++] = *b; b++; }
        if (b >= be || nd == 0 || nd > 17) return -1;
        b++;  // e
        bool negative = *b == '-';
        b++;  // the exponent's sign
        int e10 = 0;
        while (b < be) e10 = e10 * 10 + (*b++ - '0');
        if (negative) e10 = -e10;
        if (-6 <= e10 && e10 <= 20) {
            if (e10 >= 0) {
                for (int i = 0; i <= e10; i++) *o++ = i < nd ? digits[i] : '0';
                *o++ = '.';
                if (nd > e10 + 1) { for (int i = e10 + 1; i < nd; i++) *o++ = digits[i]; }
                else *o++ = '0';
            } else {
                *o++ = '0';
                *o++ = '.';
                for (int i = 0; i < -e10 - 1; i++) *o++ = '0';
                for (int i = 0; i < nd; i++) *o++ = digits[i];
            }
        } else {
            *o++ = digits[0];
            if (nd > 1) { *o++ = '.'; for (int i = 1; i < nd; i++) *o++ = digits[i]; }
            *o++ = 'e';
            if (e10 < 0) *o++ = '-';
            int a = e10 < 0 ? -e10 : e10;
            char eb[4];
            int ne = 0;
            do { eb[ne++] = (char)('0' + a % 10); a /= 10; } while (a && ne < 4);
            while (ne) *o++ = eb[--ne];
        }
        return (int)(o - start);
    }
    #define LOW_BITS 0x0101010101010101ULL
    #define HIGH_BITS 0x8080808080808080ULL
    """
    int ctz64(unsigned long long x) noexcept nogil
    int jp_format_double(const uint8_t* p, const uint8_t* q, uint8_t* out) noexcept nogil
    const uint64_t LOW_BITS
    const uint64_t HIGH_BITS

cdef const char* HEX = b"0123456789abcdef"
# the letter of a control character's short escape (\b \t \n \f \r), as orjson.dumps writes them
cdef const char* SHORT_ESCAPE = b"........btn.fr"


cdef struct Scan:
    cptr end            # end of the payload
    int status          # ST_*
    Py_ssize_t nsteps
    const int8_t* kinds
    const int64_t* index
    const uint8_t* keys
    const int64_t* key_at  # step k's key is keys[key_at[k]:key_at[k + 1]]
    bint found
    cptr found_start
    cptr found_end
    cptr ring[MAX_STEPS * MAX_BACK]  # the last elements of the array at a [#-n] step


cdef inline cptr skip_ws(cptr p, cptr e) noexcept nogil:
    # (a byte above the space is never whitespace: one comparison for most tokens)
    while p < e and p[0] <= 32 and (p[0] == 32 or p[0] == 10 or p[0] == 13 or p[0] == 9):
        p += 1
    return p


cdef inline int hex_digit(uint8_t c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20
    if 97 <= c <= 102:
        return c - 87
    return -1


cdef inline int read_hex4(cptr p) noexcept nogil:
    """The value of four hex digits at p (the caller checked that they are there), or -1."""
    cdef int a = hex_digit(p[0]), b = hex_digit(p[1]), c = hex_digit(p[2]), d = hex_digit(p[3])
    if a < 0 or b < 0 or c < 0 or d < 0:
        return -1
    return (a << 12) | (b << 8) | (c << 4) | d


cdef inline uint64_t load8(cptr p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)
    return w


cdef inline uint64_t string_stops(uint64_t w) noexcept nogil:
    """A mask whose lowest set bit marks the first of the 8 bytes (little-endian) that ends a
    string's plain run: '"', '\\' or a control character (bytes above it may be marked too)."""
    cdef uint64_t q = w ^ 0x2222222222222222ULL, b = w ^ 0x5C5C5C5C5C5C5C5CULL
    return (((q - LOW_BITS) & ~q) | ((b - LOW_BITS) & ~b)
            | ((w - 0x2020202020202020ULL) & ~w)) & HIGH_BITS


cdef inline cptr scan_string(Scan* s, cptr p, bint* escaped) noexcept nogil:
    """Validate a string whose opening quote is before p; the position after its closing quote,
    or NULL (``s.status`` says why). ``escaped``: whether it holds a backslash escape."""
    cdef cptr e = s.end
    cdef uint8_t c
    cdef uint64_t stops
    cdef int u, lo, i
    for i in range(6):  # most keys and many values end within a few bytes: one at a time first
        if p >= e:
            break
        c = p[0]
        if c == 34:
            return p + 1
        if c == 92 or c < 0x20:
            break
        p += 1
    while True:
        while e - p >= 8:  # eight plain bytes at a time
            stops = string_stops(load8(p))
            if stops:
                p += ctz64(stops) >> 3
                break
            p += 8
        if p >= e:
            s.status = ST_BAD
            return NULL
        c = p[0]
        if c == 34:  # "
            return p + 1
        if c == 92:  # \
            escaped[0] = True
            p += 1
            if p >= e:
                s.status = ST_BAD
                return NULL
            c = p[0]
            if c == 117:  # \uXXXX
                if e - p < 5:
                    s.status = ST_BAD
                    return NULL
                u = read_hex4(p + 1)
                if u < 0:
                    s.status = ST_BAD
                    return NULL
                p += 5
                if 0xD800 <= u <= 0xDBFF:
                    # a high surrogate must be followed by a low one; a lone one is the
                    # reference's (orjson and json disagree about it)
                    if e - p < 6 or p[0] != 92 or p[1] != 117:
                        s.status = ST_FALLBACK
                        return NULL
                    lo = read_hex4(p + 2)
                    if lo < 0:
                        s.status = ST_BAD
                        return NULL
                    if not 0xDC00 <= lo <= 0xDFFF:
                        s.status = ST_FALLBACK
                        return NULL
                    p += 6
                elif 0xDC00 <= u <= 0xDFFF:
                    s.status = ST_FALLBACK
                    return NULL
                continue
            if (c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114
                    or c == 116):  # " \\ / b f n r t
                p += 1
                continue
            s.status = ST_BAD
            return NULL
        if c < 0x20:  # a raw control character
            s.status = ST_BAD
            return NULL
        p += 1  # (a byte below one that stopped the 8-byte skip)


cdef inline cptr scan_digits(Scan* s, cptr p, int* count) noexcept nogil:
    cdef cptr e = s.end
    cdef int n = 0
    while p < e and 48 <= p[0] <= 57:
        p += 1
        n += 1
    count[0] = n
    return p


cdef inline cptr scan_number(Scan* s, cptr p) noexcept nogil:
    """Validate a number at p (RFC 8259); the position after it, or NULL."""
    cdef cptr e = s.end
    cdef int n = 0, exp_digits = 0
    cdef int64_t exponent = 0
    cdef cptr q
    if p[0] == 45:  # -
        p += 1
    if p >= e:
        s.status = ST_BAD
        return NULL
    if p[0] == 48:  # a leading 0 stands alone (what follows must not be a digit: the caller checks)
        p += 1
        n = 1
    else:
        p = scan_digits(s, p, &n)
        if n == 0:
            s.status = ST_BAD
            return NULL
    if n >= DIGIT_RUN:
        s.status = ST_FALLBACK
        return NULL
    if p < e and p[0] == 46:  # .
        p = scan_digits(s, p + 1, &n)
        if n == 0:
            s.status = ST_BAD
            return NULL
        if n >= DIGIT_RUN:
            s.status = ST_FALLBACK
            return NULL
    if p < e and (p[0] == 101 or p[0] == 69):  # e E
        p += 1
        if p < e and (p[0] == 43 or p[0] == 45):
            p += 1
        q = p
        while p < e and 48 <= p[0] <= 57:
            if exp_digits < 6:
                exponent = exponent * 10 + (p[0] - 48)
            exp_digits += 1
            p += 1
        if exp_digits == 0:
            s.status = ST_BAD
            return NULL
        if exponent > 250 or exp_digits >= DIGIT_RUN:
            # the double may overflow, which orjson refuses and json reads as inf
            s.status = ST_FALLBACK
            return NULL
    return p


cdef inline cptr scan_integer(Scan* s, cptr p) noexcept nogil:
    """A number whose first byte at p is 1-9: its digits read here, scan_number for the rest
    when it has a fraction or an exponent (the common plain integer costs no call)."""
    cdef cptr q = p + 1
    cdef cptr e = s.end
    while q < e and 48 <= q[0] <= 57:
        q += 1
    if q < e and (q[0] == 46 or q[0] == 101 or q[0] == 69):
        return scan_number(s, p)
    return q  # (a run of DIGIT_RUN digits was looked for before the walk)


cdef inline cptr scan_word(Scan* s, cptr p, const char* word, int n) noexcept nogil:
    if s.end - p < n or memcmp(p, word, n) != 0:
        s.status = ST_BAD
        return NULL
    return p + n


cdef inline uint32_t unescape(cptr* at) noexcept nogil:
    """The code point of the escape after the backslash at at[0] (a valid one: the string was
    scanned), advancing at[0] past it."""
    cdef cptr p = at[0]
    cdef uint8_t c = p[1]
    cdef uint32_t u, lo
    if c == 117:
        u = <uint32_t>read_hex4(p + 2)
        if 0xD800 <= u <= 0xDBFF:
            lo = <uint32_t>read_hex4(p + 8)
            at[0] = p + 12
            return 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
        at[0] = p + 6
        return u
    at[0] = p + 2
    if c == 98:
        return 8
    if c == 102:
        return 12
    if c == 110:
        return 10
    if c == 114:
        return 13
    if c == 116:
        return 9
    return c  # " \ /


cdef inline int put_utf8(uint8_t* o, uint32_t cp) noexcept nogil:
    if cp < 0x80:
        o[0] = <uint8_t>cp
        return 1
    if cp < 0x800:
        o[0] = <uint8_t>(0xC0 | (cp >> 6))
        o[1] = <uint8_t>(0x80 | (cp & 0x3F))
        return 2
    if cp < 0x10000:
        o[0] = <uint8_t>(0xE0 | (cp >> 12))
        o[1] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
        o[2] = <uint8_t>(0x80 | (cp & 0x3F))
        return 3
    o[0] = <uint8_t>(0xF0 | (cp >> 18))
    o[1] = <uint8_t>(0x80 | ((cp >> 12) & 0x3F))
    o[2] = <uint8_t>(0x80 | ((cp >> 6) & 0x3F))
    o[3] = <uint8_t>(0x80 | (cp & 0x3F))
    return 4


cdef inline bint key_equals(Scan* s, cptr p, cptr q, bint escaped, Py_ssize_t k) noexcept nogil:
    """Whether the raw key text p..q (between the quotes) decodes to step k's key."""
    cdef const uint8_t* key = s.keys + s.key_at[k]
    cdef Py_ssize_t n = s.key_at[k + 1] - s.key_at[k], at = 0, m, i
    cdef uint8_t buf[4]
    if not escaped:
        return q - p == n and memcmp(p, key, n) == 0
    while p < q:
        if p[0] != 92:
            if at >= n or key[at] != p[0]:
                return False
            at += 1
            p += 1
            continue
        m = put_utf8(buf, unescape(&p))
        if at + m > n:
            return False
        for i in range(m):
            if key[at + i] != buf[i]:
                return False
        at += m
    return at == n


cdef cptr scan_value(Scan* s, cptr p, int depth, Py_ssize_t k) noexcept nogil:
    """The value at p (no whitespace before it); its end, or NULL (``s.status`` says why).
    ``k``: the index of the path step to apply to this value when it is on the path (``nsteps``:
    it is the value sought), else -1. Objects and arrays recurse (one function: Cython has no
    forward declarations of mutually recursive nogil functions in one module)."""
    cdef cptr e = s.end
    cdef cptr q
    cdef cptr key
    cdef cptr* ring = NULL
    cdef bint escaped = False, on
    cdef Py_ssize_t on_path
    cdef int64_t target = -1, back = 0, count = 0
    cdef uint8_t c
    if k == s.nsteps:
        q = scan_value(s, p, depth, -1)
        if q != NULL:
            s.found = True
            s.found_start = p
            s.found_end = q
        return q
    if p >= e:
        s.status = ST_BAD
        return NULL
    c = p[0]
    if c == 34:
        return scan_string(s, p + 1, &escaped)
    if c == 45 or 48 <= c <= 57:
        return scan_number(s, p)
    if c == 116:
        return scan_word(s, p, b"true", 4)
    if c == 102:
        return scan_word(s, p, b"false", 5)
    if c == 110:
        return scan_word(s, p, b"null", 4)
    if c != 123 and c != 91:
        s.status = ST_BAD
        return NULL
    depth += 1
    if depth > MAX_DEPTH:
        s.status = ST_FALLBACK
        return NULL
    p = skip_ws(p + 1, e)
    if c == 123:  # {
        on = k >= 0 and (s.kinds[k] == STEP_KEY or s.kinds[k] == STEP_POINTER)
        if p < e and p[0] == 125:  # }
            return p + 1
        while True:
            if p >= e or p[0] != 34:
                s.status = ST_BAD
                return NULL
            key = p + 1
            escaped = False
            p = scan_string(s, key, &escaped)
            if p == NULL:
                return NULL
            if on and key_equals(s, key, p - 1, escaped, k):
                # a key given twice counts with its first value, as DuckDB reads it: the
                # later ones are off the path
                on = False
                on_path = k + 1
            else:
                on_path = -1
            p = skip_ws(p, e)
            if p >= e or p[0] != 58:  # :
                s.status = ST_BAD
                return NULL
            p = skip_ws(p + 1, e)
            # a string or number off the path is validated here, saving a call of this function
            if on_path < 0 and p < e and p[0] == 34:
                p = scan_string(s, p + 1, &escaped)
            elif on_path < 0 and p < e and 49 <= p[0] <= 57:
                p = scan_integer(s, p)
            elif on_path < 0 and p < e and (p[0] == 45 or p[0] == 48):
                p = scan_number(s, p)
            else:
                p = scan_value(s, p, depth, on_path)
            if p == NULL:
                return NULL
            p = skip_ws(p, e)
            if p >= e:
                s.status = ST_BAD
                return NULL
            if p[0] == 44:  # ,
                p = skip_ws(p + 1, e)
                continue
            if p[0] == 125:
                return p + 1
            s.status = ST_BAD
            return NULL
    # [
    if k >= 0 and s.kinds[k] != STEP_KEY:
        target = s.index[k]
        if target < 0 and s.kinds[k] == STEP_INDEX:
            back = -target
            ring = &s.ring[k * MAX_BACK]
    if p < e and p[0] == 93:  # ]
        return p + 1
    while True:
        if back:
            ring[count % back] = p
        on_path = k + 1 if count == target else -1
        if on_path < 0 and p < e and p[0] == 34:
            p = scan_string(s, p + 1, &escaped)
        elif on_path < 0 and p < e and 49 <= p[0] <= 57:
            p = scan_integer(s, p)
        elif on_path < 0 and p < e and (p[0] == 45 or p[0] == 48):
            p = scan_number(s, p)
        else:
            p = scan_value(s, p, depth, on_path)
        if p == NULL:
            return NULL
        count += 1
        p = skip_ws(p, e)
        if p >= e:
            s.status = ST_BAD
            return NULL
        if p[0] == 44:
            p = skip_ws(p + 1, e)
            continue
        if p[0] == 93:
            break
        s.status = ST_BAD
        return NULL
    if back and count >= back:
        # the element [#-n] is known once the array has ended: walk it again, on the path
        scan_value(s, ring[(count - back) % back], depth, k + 1)
    return p + 1


cdef inline bint all_digits(uint64_t w) noexcept nogil:
    return ((w & 0xF0F0F0F0F0F0F0F0ULL) == 0x3030303030303030ULL
            and ((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) == 0x3030303030303030ULL)


cdef bint has_digit_run(cptr p, cptr e) noexcept nogil:
    """Whether p..e holds DIGIT_RUN ASCII digits in a row (anywhere: in strings too, as the
    reference's regex looks). Such a run covers a whole aligned 8-byte word of digits, so the
    words are looked at first and the bytes only around a word of digits."""
    cdef cptr w = <cptr>((<size_t>p + 7) & ~(<size_t>7))
    cdef cptr x
    cdef int run
    while w + 8 <= e:
        if all_digits(load8(w)):
            run = 0
            x = w - 1
            while x >= p and 48 <= x[0] <= 57:  # digits before the word
                run += 1
                x -= 1
            x = w
            while x < e and 48 <= x[0] <= 57:
                run += 1
                x += 1
            if run >= DIGIT_RUN:
                return True
            w = <cptr>((<size_t>x + 7) & ~(<size_t>7))
            continue
        w += 8
    return False


cdef int scan_payload(Scan* s, cptr p, cptr e) noexcept nogil:
    """Walk one payload; ST_* (``s.found`` and its span say what the path found)."""
    cdef cptr q
    if has_digit_run(p, e):
        # the reference reads such text with json, not orjson: let it decide
        return ST_FALLBACK
    s.end = e
    s.status = ST_OK
    s.found = False
    q = scan_value(s, skip_ws(p, e), 0, 0)
    if q != NULL and skip_ws(q, e) != e:
        s.status = ST_BAD
    return s.status


cdef Py_ssize_t write_string(cptr p, cptr q, uint8_t* o, bint as_json) noexcept nogil:
    """The string whose raw text (between the quotes) is p..q, decoded; as JSON text (quoted,
    escaped as orjson.dumps escapes) when ``as_json``. Never longer than q - p + 2."""
    cdef uint8_t* start = o
    cdef uint32_t cp
    cdef cptr b
    if as_json:
        o[0] = 34
        o += 1
    while p < q:
        b = <cptr>memchr(p, 92, q - p)
        if b == NULL:
            b = q
        # raw bytes are never '"', '\' or control characters in valid JSON: copied as they are
        memcpy(o, p, b - p)
        o += b - p
        p = b
        if p >= q:
            break
        cp = unescape(&p)
        if not as_json:
            o += put_utf8(o, cp)
        elif cp == 34 or cp == 92:
            o[0] = 92
            o[1] = <uint8_t>cp
            o += 2
        elif cp == 8 or cp == 12 or cp == 10 or cp == 13 or cp == 9:
            o[0] = 92
            o[1] = SHORT_ESCAPE[cp]
            o += 2
        elif cp < 0x20:
            memcpy(o, b"\\u00", 4)
            o[4] = <uint8_t>(48 + (cp >> 4))
            o[5] = HEX[cp & 15]
            o += 6
        else:
            o += put_utf8(o, cp)
    if as_json:
        o[0] = 34
        o += 1
    return o - start


cdef inline Py_ssize_t result_room(cptr v, cptr e) noexcept nogil:
    """Bytes reserved for the result of the value v..e: its text, and room for what printing it
    adds (a float may print longer than its text: 1e15 is 1000000000000000.0)."""
    if v[0] == 45 or 48 <= v[0] <= 57:
        return (e - v) + FLOAT_ROOM
    if v[0] == 123 or v[0] == 91:
        return (e - v) + CONTAINER_ROOM  # a container beyond this room is the reference's
    return e - v


cdef inline cptr string_end(cptr p) noexcept nogil:
    """The position after the closing quote of the (valid) string whose text starts at p."""
    while p[0] != 34:
        p += 2 if p[0] == 92 else 1
    return p + 1


cdef inline cptr number_end(cptr p, cptr q) noexcept nogil:
    while p < q and (48 <= p[0] <= 57 or p[0] == 45 or p[0] == 43 or p[0] == 46 or p[0] == 101
                     or p[0] == 69):
        p += 1
    return p


cdef Py_ssize_t write_number(cptr p, cptr q, uint8_t* o) noexcept nogil:
    """The number p..q as the reference prints it (at most FLOAT_ROOM bytes beyond its text), or
    -1."""
    cdef cptr x = p
    while x < q:
        if x[0] == 46 or x[0] == 101 or x[0] == 69:  # a float: the shortest form
            return jp_format_double(p, q, o)
        x += 1
    if q - p == 2 and p[0] == 45 and p[1] == 48:  # -0 is the integer 0
        o[0] = 48
        return 1
    memcpy(o, p, q - p)
    return q - p


cdef Py_ssize_t write_compact(cptr p, cptr q, uint8_t* o, uint8_t* limit) noexcept nogil:
    """The (valid) object or array p..q as the reference prints what orjson.loads reads from it:
    no whitespace, strings re-escaped, numbers as write_number; a key given twice is printed
    twice, as DuckDB prints it. Returns the length written, or -1 for the reference's cases: an
    object whose keys hold escapes (told apart only once decoded), nesting beyond the stack
    below, or a result that would pass ``limit``."""
    cdef uint8_t* start = o
    cdef bint frame_object[64]
    cdef int depth = 0
    cdef bint want_key = False
    cdef cptr end
    cdef Py_ssize_t w
    cdef uint8_t c
    while p < q:
        c = p[0]
        if c == 32 or c == 10 or c == 13 or c == 9:
            p += 1
            continue
        if c == 34:
            end = string_end(p + 1)
            if want_key:
                if memchr(p + 1, 92, end - 1 - (p + 1)) != NULL:
                    return -1
                want_key = False
            if limit - o < end - p:
                return -1
            o += write_string(p + 1, end - 1, o, True)
            p = end
            continue
        if limit - o < FLOAT_ROOM + 8:
            return -1
        if c == 123 or c == 91:
            if depth == 64:
                return -1
            frame_object[depth] = c == 123
            depth += 1
            want_key = c == 123
        elif c == 125 or c == 93:
            depth -= 1
        elif c == 44:
            want_key = frame_object[depth - 1]
        elif c == 116 or c == 110:
            memcpy(o, p, 4)
            o += 4
            p += 4
            continue
        elif c == 102:
            memcpy(o, p, 5)
            o += 5
            p += 5
            continue
        elif c != 58:  # a number
            end = number_end(p, q)
            w = write_number(p, end, o)
            if w < 0:
                return -1
            o += w
            p = end
            continue
        o[0] = c
        o += 1
        p += 1
    return o - start


cdef inline int write_result(cptr p, cptr q, int mode, uint8_t* o, uint8_t* limit,
                             Py_ssize_t* n) noexcept nogil:
    """The result for the value p..q: ST_OK (n[0] bytes written at o, never past limit; n[0] =
    -1 for NULL) or ST_FALLBACK."""
    cdef uint8_t c = p[0]
    if c == 34:
        n[0] = write_string(p + 1, q - 1, o, mode != MODE_EXTRACT_STRING)
        return ST_OK
    if c == 123 or c == 91:
        if mode == MODE_VALUE:
            n[0] = -1
            return ST_OK
        n[0] = write_compact(p, q, o, limit)
        return ST_OK if n[0] >= 0 else ST_FALLBACK
    if c == 110:
        if mode == MODE_EXTRACT:
            memcpy(o, p, 4)
            n[0] = 4
        else:
            n[0] = -1
        return ST_OK
    if c == 116 or c == 102:
        memcpy(o, p, q - p)
        n[0] = q - p
        return ST_OK
    n[0] = write_number(p, q, o)
    return ST_OK if n[0] >= 0 else ST_FALLBACK


def extract(const int32_t[::1] offsets, const uint8_t[::1] data, const uint8_t[::1] valid,
            const int8_t[::1] kinds, const int64_t[::1] index, const uint8_t[::1] keys,
            const int64_t[::1] key_at, int mode):
    """One function over every row of a string array, for the path given as steps.

    offsets (IN, n + 1), data (IN): the Arrow string array's int32 offsets (already shifted by
    the array's offset) and UTF-8 bytes; valid (IN, n, or empty: no NULLs): 1 where a payload is
    given. kinds, index (IN, one per step): STEP_* and the index (a key step: -1; a pointer
    step: its index or -1); keys, key_at (IN): the steps' UTF-8 keys. mode: MODE_*.

    Returns ``(out_offsets, out_data, out_valid, status)``: for MODE_EXISTS ``out_data`` holds
    one 0/1 per row and ``out_offsets`` is None; ``status`` holds ST_* per row (ST_FALLBACK rows'
    results are left NULL for the caller to fill).
    """
    cdef Py_ssize_t n = offsets.shape[0] - 1, i, total = 0, w
    cdef Py_ssize_t nsteps = kinds.shape[0]
    cdef bint has_valid = valid.shape[0] > 0
    cdef Scan s
    cdef cptr base
    cdef int st
    if nsteps > MAX_STEPS:
        raise ValueError("path too long for the compiled scanner")
    status = np.zeros(n, dtype=np.uint8)
    out_valid = np.zeros(n, dtype=np.uint8)
    start = np.zeros(n, dtype=np.int64)
    stop = np.zeros(n, dtype=np.int64)
    cdef uint8_t[::1] st_v = status, ok_v = out_valid
    cdef int64_t[::1] start_v = start, stop_v = stop
    cdef uint8_t dummy_key = 0
    s.nsteps = nsteps
    s.kinds = &kinds[0] if nsteps else NULL
    s.index = &index[0] if nsteps else NULL
    s.keys = &keys[0] if keys.shape[0] else &dummy_key
    s.key_at = &key_at[0]
    base = &data[0] if data.shape[0] else &dummy_key
    with nogil:
        for i in range(n):
            if has_valid and not valid[i]:
                continue
            st = scan_payload(&s, base + offsets[i], base + offsets[i + 1])
            st_v[i] = <uint8_t>st
            if st == ST_OK and s.found:
                start_v[i] = s.found_start - base
                stop_v[i] = s.found_end - base
                total += result_room(s.found_start, s.found_end)
                ok_v[i] = 1
            elif st == ST_OK and mode == MODE_EXISTS:
                ok_v[i] = 1
                start_v[i] = -1
            else:
                start_v[i] = -1
    if mode == MODE_EXISTS:
        found = (start >= 0).view(np.uint8)
        return None, found, out_valid, status
    if total > 0x7FFFFFFF - 1:
        raise OverflowError("JSON results exceed 2 GiB in one batch")
    out_offsets = np.zeros(n + 1, dtype=np.int32)
    out_data = np.empty(total + 1, dtype=np.uint8)
    cdef int32_t[::1] off_v = out_offsets
    cdef uint8_t[::1] out_v = out_data
    cdef Py_ssize_t at = 0, reserved = 0
    with nogil:
        for i in range(n):
            off_v[i] = <int32_t>at
            if ok_v[i]:
                # results before this one may have used less than their room, never more
                reserved += result_room(base + start_v[i], base + stop_v[i])
                st = write_result(base + start_v[i], base + stop_v[i], mode, &out_v[at],
                                  &out_v[0] + reserved, &w)
                if st == ST_FALLBACK:
                    st_v[i] = ST_FALLBACK
                    ok_v[i] = 0
                elif w < 0:
                    ok_v[i] = 0
                else:
                    at += w
        off_v[n] = <int32_t>at
    return out_offsets, out_data[:at], out_valid, status
