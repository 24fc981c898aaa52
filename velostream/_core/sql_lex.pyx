"""The SQL lexer's scan of the common tokens, compiled (docs/SQL.md §1, §7, "Limits").

``scan`` reads a block of tokens from a text: without the GIL it walks the text's code points
(the str's own PEP 393 array: offsets, lines and columns are in characters, as in ``SqlError``),
skips whitespace and comments, and records each token's kind and span in C arrays; then it makes
the ``Token`` objects of the block. It recognises only what it can decide exactly on ASCII text:
words, integers of at most 18 digits, 'strings' and "quoted identifiers" (doubled quotes
included), the operators and punctuation, ``--`` and ``/* */`` comments, ASCII whitespace.
Anything else (a float, a duration, a character outside ASCII next to a token, an unterminated
string or comment, a stray character) stops the block at that token, and the caller
(``velostream.sql.lexer``) reads that one token with its regular expression, which also gives
every lexical error. Line breaks are ``\\r\\n``, ``\\r`` and ``\\n``.

It never imports velostream: the token kinds are plain strings, the same as
``velostream.sql.lexer``'s.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.stdlib cimport free, malloc
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)

# token kinds: the strings velostream.sql.lexer uses
WORD = "WORD"
QIDENT = "QIDENT"
INT = "INT"
FLOAT = "FLOAT"
DURATION = "DURATION"
STRING = "STRING"
OP = "OP"
PUNCT = "PUNCT"
EOF = "EOF"

cdef enum Stop:
    S_FULL = 0      # max_tokens tokens read: call again from ``pos``
    S_END = 1       # the end of the text
    S_FALLBACK = 2  # the token at ``pos`` is for the regular expression

# why a block ended (``scan``'s ``stop``)
BLOCK_FULL = S_FULL
AT_END = S_END
FALLBACK = S_FALLBACK

cdef enum Kind:
    K_WORD = 1
    K_INT = 2
    K_STRING = 3   # without doubled quotes
    K_STRING2 = 4  # with '' inside
    K_QIDENT = 5
    K_QIDENT2 = 6
    K_OP = 7       # the spelling: OPS[code]
    K_PUNCT = 8

cdef struct State:
    Py_ssize_t pos         # where the scan goes on
    Py_ssize_t line        # the line of ``pos``, 1-based
    Py_ssize_t line_start  # where that line starts
    Py_ssize_t end         # where the last token read ends
    Py_ssize_t end_line    # the line of ``end`` and where it starts
    Py_ssize_t end_line_start
    int stop


cdef struct Tok:
    int kind
    int code          # K_OP / K_PUNCT: index into OPS / PUNCTS
    Py_ssize_t at
    Py_ssize_t end
    Py_ssize_t line
    Py_ssize_t line_start
    long long ival    # K_INT

# operators as written, and their values ('<>' is '!=', '==' is '=')
OPS = ("->>", "->", "<>", "!=", "<=", ">=", "==", "||", "-", "+", "*", "/", "%", "<", ">", "=", "//")
OP_VALUES = ("->>", "->", "!=", "!=", "<=", ">=", "=", "||", "-", "+", "*", "/", "%", "<", ">", "=",
             "//")
PUNCTS = ("::", "(", ")", ",", ".", ";")
cdef enum OpCode:
    O_ARROW2 = 0
    O_ARROW = 1
    O_LTGT = 2
    O_NE = 3
    O_LE = 4
    O_GE = 5
    O_EQEQ = 6
    O_CONCAT = 7
    O_MINUS = 8
    O_PLUS = 9
    O_STAR = 10
    O_SLASH = 11
    O_PERCENT = 12
    O_LT = 13
    O_GT = 14
    O_EQ = 15
    O_DSLASH = 16  # // (DuckDB's integer division)
cdef enum PunctCode:
    P_CAST = 0
    P_OPEN = 1
    P_CLOSE = 2
    P_COMMA = 3
    P_DOT = 4
    P_SEMI = 5

# ASCII classes, as Python's re sees them in a str pattern (\s, \w, \d)
cdef unsigned char SPACE[128]
cdef unsigned char WORDCH[128]
cdef unsigned char DIGIT[128]


def _init_classes():
    import re
    s, w, d = re.compile(r"\s"), re.compile(r"\w"), re.compile(r"\d")
    for c in range(128):
        SPACE[c] = s.match(chr(c)) is not None
        WORDCH[c] = w.match(chr(c)) is not None
        DIGIT[c] = d.match(chr(c)) is not None


_init_classes()


cdef class Token:
    """One token: ``kind`` (above), the source ``text``, its ``value``, 1-based ``line`` and
    ``column``; ``upper`` is the keyword spelling of a WORD (upper case), '' for other kinds;
    ``offset`` is where it starts in the text (the parser scans runs of list items from there)."""

    cdef public object kind
    cdef public object text
    cdef public object value
    cdef public object upper
    cdef public Py_ssize_t line
    cdef public Py_ssize_t column
    cdef public Py_ssize_t offset

    def __init__(self, kind, text, value, Py_ssize_t line, Py_ssize_t column,
                 Py_ssize_t offset=-1):
        self.kind = kind
        self.text = text
        self.value = value
        self.line = line
        self.column = column
        self.upper = text.upper() if kind == WORD else ""
        self.offset = offset

    @property
    def pos(self):
        return (self.line, self.column)

    def describe(self):
        """How an error message names this token: 'FRM', string 'abc', end of input."""
        if self.kind == EOF:
            return "end of input"
        if self.kind == STRING:
            return f"string {_clip(self.text)}"
        return f"'{_clip(self.text)}'"

    def __repr__(self):
        return f"Token({self.kind}, {self.text!r}, {self.line}:{self.column})"


def _clip(text, limit=60):
    """A long token (a 1 MB string literal) is named by its start in messages."""
    return text if len(text) <= limit else text[:limit] + "..."


cdef inline uint32_t read_cp(int kind, const void* data, Py_ssize_t i) noexcept nogil:
    """Code point ``i`` of a str's data of ``kind`` bytes per character (PEP 393), read here so
    that the scan calls nothing of Python's."""
    if kind == 1:
        return (<const uint8_t*> data)[i]
    if kind == 2:
        return (<const uint16_t*> data)[i]
    return (<const uint32_t*> data)[i]


cdef inline uint32_t at_or_0(int kind, const void* data, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    return read_cp(kind, data, i) if i < n else 0


cdef inline void count_break(int kind, const void* data, Py_ssize_t i, Py_ssize_t n,
                             Py_ssize_t* line, Py_ssize_t* line_start) noexcept nogil:
    """Count a line break ending at code point ``i`` (``\\r\\n`` counts at its ``\\n``)."""
    cdef uint32_t c = read_cp(kind, data, i)
    if c == 10 or (c == 13 and at_or_0(kind, data, i + 1, n) != 10):
        line[0] += 1
        line_start[0] = i + 1


cdef Py_ssize_t scan_block(int kind, const void* data, Py_ssize_t n, State* st, Tok* out,
                           Py_ssize_t max_tokens) noexcept nogil:
    """Tokens from ``st.pos`` into ``out`` (at most ``max_tokens``); returns how many, and
    leaves in ``st`` where the scan stopped and why."""
    cdef Py_ssize_t count = 0, j, at, i = st.pos
    cdef Py_ssize_t* line = &st.line
    cdef Py_ssize_t* line_start = &st.line_start
    cdef int* stop = &st.stop
    cdef uint32_t c, d, q
    cdef long long v
    cdef int doubled
    stop[0] = S_FULL
    while count < max_tokens:
        # whitespace
        while i < n:
            c = read_cp(kind, data, i)
            if c >= 128:
                stop[0] = S_FALLBACK
                st.pos = i
                return count
            if not SPACE[c]:
                break
            count_break(kind, data, i, n, line, line_start)
            i += 1
        if i >= n:
            stop[0] = S_END
            break
        at = i
        c = read_cp(kind, data, i)
        d = at_or_0(kind, data, i + 1, n)
        if c == 45 and d == 45:  # -- line comment
            i += 2
            while i < n:
                q = read_cp(kind, data, i)
                if q == 10 or q == 13:
                    break
                i += 1
            continue
        if c == 47 and d == 42:  # /* comment */ (not nested)
            j = i + 2
            while j + 1 < n and not (read_cp(kind, data, j) == 42
                                     and read_cp(kind, data, j + 1) == 47):
                j += 1
            if j + 1 >= n:  # unterminated: the regular expression's error
                stop[0] = S_FALLBACK
                break
            while i < j + 2:
                count_break(kind, data, i, n, line, line_start)
                i += 1
            continue
        out[count].at = at
        out[count].line = line[0]
        out[count].line_start = line_start[0]
        if WORDCH[c] and not DIGIT[c]:  # a word: [^\W\d]\w*
            j = i + 1
            while j < n:
                q = read_cp(kind, data, j)
                if q >= 128:  # a word may go on with any letter: the regular expression's
                    stop[0] = S_FALLBACK
                    break
                if not WORDCH[q]:
                    break
                j += 1
            if stop[0] == S_FALLBACK:
                break
            out[count].kind = K_WORD
        elif DIGIT[c]:  # an integer: \d+ not followed by '.' or a word character
            j = i
            v = 0
            while j < n and j - i <= 18:
                q = read_cp(kind, data, j)
                if q >= 128 or not DIGIT[q]:
                    break
                j += 1
            q = at_or_0(kind, data, j, n)
            if j - i > 18 or q >= 128 or WORDCH[q] or q == 46:  # BIGINT's range: checked there
                stop[0] = S_FALLBACK
                break
            for at in range(i, j):
                v = v * 10 + (read_cp(kind, data, at) - 48)
            at = i
            out[count].kind = K_INT
            out[count].ival = v
        elif c == 39 or c == 34:  # 'string' or "quoted identifier", the quote doubled inside
            j = i + 1
            doubled = 0
            while True:
                while j < n and read_cp(kind, data, j) != c:
                    j += 1
                if j >= n:
                    break
                if at_or_0(kind, data, j + 1, n) == c:
                    doubled = 1
                    j += 2
                    continue
                break
            if j >= n or (c == 34 and j == i + 1):  # unterminated, or "": the errors
                stop[0] = S_FALLBACK
                break
            j += 1
            if c == 39:
                out[count].kind = K_STRING2 if doubled else K_STRING
            else:
                out[count].kind = K_QIDENT2 if doubled else K_QIDENT
            while i < j:
                count_break(kind, data, i, n, line, line_start)
                i += 1
        else:
            j = i + 1
            out[count].kind = K_OP
            if c == 45:  # - -> ->>
                if d == 62:
                    if at_or_0(kind, data, i + 2, n) == 62:
                        out[count].code = O_ARROW2
                        j = i + 3
                    else:
                        out[count].code = O_ARROW
                        j = i + 2
                else:
                    out[count].code = O_MINUS
            elif c == 60:  # < <> <=
                if d == 62:
                    out[count].code = O_LTGT
                    j = i + 2
                elif d == 61:
                    out[count].code = O_LE
                    j = i + 2
                else:
                    out[count].code = O_LT
            elif c == 62:  # > >=
                if d == 61:
                    out[count].code = O_GE
                    j = i + 2
                else:
                    out[count].code = O_GT
            elif c == 61:  # = ==
                if d == 61:
                    out[count].code = O_EQEQ
                    j = i + 2
                else:
                    out[count].code = O_EQ
            elif c == 33 and d == 61:
                out[count].code = O_NE
                j = i + 2
            elif c == 124 and d == 124:
                out[count].code = O_CONCAT
                j = i + 2
            elif c == 43:
                out[count].code = O_PLUS
            elif c == 42:
                out[count].code = O_STAR
            elif c == 47:
                if d == 47:
                    out[count].code = O_DSLASH
                    j = i + 2
                else:
                    out[count].code = O_SLASH
            elif c == 37:
                out[count].code = O_PERCENT
            else:
                out[count].kind = K_PUNCT
                if c == 58 and d == 58:
                    out[count].code = P_CAST
                    j = i + 2
                elif c == 40:
                    out[count].code = P_OPEN
                elif c == 41:
                    out[count].code = P_CLOSE
                elif c == 44:
                    out[count].code = P_COMMA
                elif c == 59:
                    out[count].code = P_SEMI
                elif c == 46 and not (d >= 128 or (d < 128 and DIGIT[d])):  # not .5
                    out[count].code = P_DOT
                else:  # a stray character, .5, ! or | or : alone: the regular expression's
                    stop[0] = S_FALLBACK
                    break
        out[count].end = j
        i = j
        st.end = j
        st.end_line = line[0]
        st.end_line_start = line_start[0]
        count += 1
    st.pos = i
    return count


def scan(str sql, Py_ssize_t pos, Py_ssize_t line, Py_ssize_t line_start,
         Py_ssize_t max_tokens, dict uppers):
    """Up to ``max_tokens`` tokens of ``sql`` from offset ``pos``, which is on ``line``, a line
    that starts at offset ``line_start``. Returns ``(tokens, stop, pos, line, line_start, end,
    end_line, end_line_start)``: ``stop`` is BLOCK_FULL, AT_END or FALLBACK (the token at ``pos``
    is not read here); ``pos``/``line``/``line_start`` say where to go on; ``end`` is where the
    last token read ends, on line ``end_line`` starting at ``end_line_start`` (-1 when no token
    was read). ``uppers`` caches each word's upper-case spelling (one string per distinct word)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(sql)
    cdef int kind = PyUnicode_KIND(sql)
    cdef const void* data = PyUnicode_DATA(sql)
    cdef State st
    cdef Py_ssize_t count, k
    cdef Tok* toks
    cdef Tok* t
    cdef Token tok
    if max_tokens < 1:
        max_tokens = 1
    toks = <Tok*> malloc(max_tokens * sizeof(Tok))
    if toks == NULL:
        raise MemoryError()
    try:
        st.pos, st.line, st.line_start, st.end, st.stop = pos, line, line_start, -1, S_END
        st.end_line = st.end_line_start = -1
        if pos > n:
            st.pos = n
        with nogil:
            count = scan_block(kind, data, n, &st, toks, max_tokens)
        out = [None] * count
        for k in range(count):
            t = &toks[k]
            tok = Token.__new__(Token)
            tok.line = t.line
            tok.column = t.at - t.line_start + 1
            tok.offset = t.at
            if t.kind == K_WORD:
                text = PyUnicode_Substring(sql, t.at, t.end)
                upper = uppers.get(text)
                if upper is None:
                    upper = uppers[text] = text.upper()
                tok.kind, tok.text, tok.value, tok.upper = WORD, text, text, upper
            elif t.kind == K_OP:
                tok.kind, tok.text, tok.value, tok.upper = OP, OPS[t.code], OP_VALUES[t.code], ""
            elif t.kind == K_PUNCT:
                text = PUNCTS[t.code]
                tok.kind, tok.text, tok.value, tok.upper = PUNCT, text, text, ""
            elif t.kind == K_INT:
                tok.kind, tok.text, tok.value, tok.upper = (
                    INT, PyUnicode_Substring(sql, t.at, t.end), t.ival, "")
            else:
                text = PyUnicode_Substring(sql, t.at, t.end)
                value = PyUnicode_Substring(sql, t.at + 1, t.end - 1)
                if t.kind == K_STRING or t.kind == K_STRING2:
                    if t.kind == K_STRING2:
                        value = value.replace("''", "'")
                    tok.kind = STRING
                else:
                    if t.kind == K_QIDENT2:
                        value = value.replace('""', '"')
                    tok.kind = QIDENT
                tok.text, tok.value, tok.upper = text, value, ""
            out[k] = tok
    finally:
        free(toks)
    return out, st.stop, st.pos, st.line, st.line_start, st.end, st.end_line, st.end_line_start


from cpython.object cimport PyTypeObject

cdef extern from "Python.h":
    int PyObject_GenericSetAttr(object o, object name, object value) except -1

cdef extern from "Python.h":
    bint Py_UNICODE_ISSPACE(uint32_t ch)

cdef tuple NO_ARGS = ()


cdef inline bint is_space(uint32_t c):
    """Whether ``c`` is whitespace as Python's re sees ``\\s`` in a str pattern."""
    return SPACE[c] if c < 128 else Py_UNICODE_ISSPACE(c)


cdef inline object new_node(type cls):
    """A bare instance of ``cls`` (a frozen dataclass), as ``object.__new__(cls)`` makes it."""
    return (<PyTypeObject*> cls).tp_new(cls, <PyObject*> NO_ARGS, NULL)


cdef inline object column_node(type cls, str name, tuple at):
    """``cls(name, None, False, pos=at)`` (ast.Column): the fields set as its ``__init__`` sets
    them (object.__setattr__), without a Python call per field."""
    obj = new_node(cls)
    PyObject_GenericSetAttr(obj, "name", name)
    PyObject_GenericSetAttr(obj, "table", None)
    PyObject_GenericSetAttr(obj, "quoted", False)
    PyObject_GenericSetAttr(obj, "pos", at)
    return obj


cdef inline object literal_node(type cls, object value, str type_name, tuple at):
    """``cls(value, type_name, pos=at)`` (ast.Literal)."""
    obj = new_node(cls)
    PyObject_GenericSetAttr(obj, "value", value)
    PyObject_GenericSetAttr(obj, "type", type_name)
    PyObject_GenericSetAttr(obj, "pos", at)
    return obj


cdef inline object item_node(type cls, object expr, tuple at):
    """``cls(expr, None, pos=at)`` (ast.SelectItem)."""
    return aliased_item_node(cls, expr, None, at)


def new_binary(type cls, str op, left, right, tuple at):
    """``cls(op, left, right, pos=at)`` (ast.BinaryOp) without a Python call per field: the
    parser makes one per operator of a megabyte of expressions."""
    return binary_node(cls, op, left, right, at)


cdef inline object binary_node(type cls, str op, object left, object right, tuple at):
    obj = new_node(cls)
    PyObject_GenericSetAttr(obj, "op", op)
    PyObject_GenericSetAttr(obj, "left", left)
    PyObject_GenericSetAttr(obj, "right", right)
    PyObject_GenericSetAttr(obj, "pos", at)
    return obj


cdef inline object aliased_item_node(type cls, object expr, object alias, tuple at):
    """``cls(expr, alias, pos=at)`` (ast.SelectItem)."""
    obj = new_node(cls)
    PyObject_GenericSetAttr(obj, "expr", expr)
    PyObject_GenericSetAttr(obj, "alias", alias)
    PyObject_GenericSetAttr(obj, "pos", at)
    return obj


cdef inline Py_ssize_t skip_blanks(int kind, const void* data, Py_ssize_t i, Py_ssize_t n,
                                   bint line_breaks) noexcept:
    """The first code point at or after ``i`` that is not a blank (spaces and tabs only, or any
    whitespace with ``line_breaks``)."""
    cdef uint32_t c
    while i < n:
        c = read_cp(kind, data, i)
        if not (c == 32 or c == 9 or (line_breaks and is_space(c))):
            break
        i += 1
    return i


cdef inline Py_ssize_t word_end(int kind, const void* data, Py_ssize_t j, Py_ssize_t n) noexcept:
    """The end of the ASCII word going on at ``j`` (WORDCH characters), or -1 when a non-ASCII
    character follows it: such a word is left to the token path."""
    cdef uint32_t q
    while j < n:
        q = read_cp(kind, data, j)
        if q >= 128 or not WORDCH[q]:
            break
        j += 1
    if j < n and read_cp(kind, data, j) >= 128:
        return -1
    return j


cdef inline Py_ssize_t digits_end(int kind, const void* data, Py_ssize_t i, Py_ssize_t n) noexcept:
    """The end of the integer of at most 18 digits at ``i`` that the lexer reads as one INT token
    (no word character, '.' or character outside ASCII right after it), or -1."""
    cdef Py_ssize_t j = i
    cdef uint32_t q
    while j < n and j - i <= 18:
        q = read_cp(kind, data, j)
        if q >= 128 or not DIGIT[q]:
            break
        j += 1
    q = at_or_0(kind, data, j, n)
    if j == i or j - i > 18 or q >= 128 or WORDCH[q] or q == 46:
        return -1
    return j


cdef inline long long digits_value(int kind, const void* data, Py_ssize_t i, Py_ssize_t j) noexcept:
    cdef long long v = 0
    while i < j:
        v = v * 10 + <long long> (read_cp(kind, data, i) - 48)
        i += 1
    return v


def new_column(type cls, str name, tuple at):
    """``cls(name, None, False, pos=at)`` (ast.Column, unqualified, unquoted)."""
    return column_node(cls, name, at)


def new_literal(type cls, value, str type_name, tuple at):
    """``cls(value, type_name, pos=at)`` (ast.Literal)."""
    return literal_node(cls, value, type_name, at)


def new_select_item(type cls, expr, alias, tuple at):
    """``cls(expr, alias, pos=at)`` (ast.SelectItem)."""
    obj = new_node(cls)
    PyObject_GenericSetAttr(obj, "expr", expr)
    PyObject_GenericSetAttr(obj, "alias", alias)
    PyObject_GenericSetAttr(obj, "pos", at)
    return obj


def scan_items(str sql, Py_ssize_t pos, Py_ssize_t line, Py_ssize_t line_start, bint select,
               type column, type literal, type select_item, reserved, system, list out,
               type binary=None):
    """A run of simple list items from offset ``pos`` (on ``line``, starting at ``line_start``),
    each followed by a comma: the parser's ``simple_items`` in C. Appends to ``out`` their syntax
    tree nodes (``column`` / ``literal`` instances, in ``select_item`` ones with ``select``),
    exactly as the parser makes them: integers of at most 18 digits, 'strings', NULL, TRUE,
    FALSE and column names (``system`` ones in upper case, the others lower-cased; a word of
    ``reserved`` other than those ends the run). In a select list the repeats of a column name
    in the run share one column node, the first (a generated select list repeats a few columns
    hundreds of thousands of times; each select item keeps its own position, and an error about
    the column is at its first place, as when it is read token by token). With ``binary`` (the
    ``BinaryOp`` class), a select list's items also include ``column + integer`` and ``column -
    integer`` with ``AS alias`` or none (the commonest computed item of a generated select
    list): the column, operator and integer on one line, the alias a plain word outside
    ``reserved``; each such item has its own nodes, as the token-by-token path makes them.
    Stops before the first item it cannot decide
    (a float, a longer integer, a character outside ASCII, an item without a comma after it),
    which the caller reads with its regular expression. Returns ``(tokens, end, line,
    line_start)``: the tokens the run spans (commas included); ``end`` is just after the last
    comma's blanks, on ``line``."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(sql)
    cdef int kind = PyUnicode_KIND(sql)
    cdef const void* data = PyUnicode_DATA(sql)
    cdef Py_ssize_t i = pos, j, k, start, tokens = 0
    cdef Py_ssize_t op_at = 0, int_at = 0, int_end = 0, alias_at = -1, alias_end = -1
    cdef uint32_t c, q
    cdef long long v
    cdef int doubled = 0, what
    cdef bint shifted, shifts = select and binary is not None
    cdef dict words = {}  # word -> (0, column name) / (1, value, type) / (2,): ends the run
    while i < n:
        start = i
        c = read_cp(kind, data, i)
        if c >= 128:
            break
        if DIGIT[c]:
            j = digits_end(kind, data, i, n)
            if j < 0:
                break
            what = 0
        elif c == 39:
            j = i + 1
            doubled = 0
            while True:
                while j < n and read_cp(kind, data, j) != 39:
                    j += 1
                if j >= n:
                    break
                if at_or_0(kind, data, j + 1, n) == 39:
                    doubled = 1
                    j += 2
                    continue
                break
            if j >= n:
                break
            j += 1
            what = 1
        elif WORDCH[c]:
            j = word_end(kind, data, i + 1, n)
            if j < 0:
                break
            what = 2
        else:
            break
        # the comma after it, blanks around (any the regular expression's \s takes: a run of
        # items separated by ',\u00a0' must not end at each item)
        k = j
        while k < n and is_space(read_cp(kind, data, k)):
            k += 1
        if k >= n:
            break
        shifted = False
        if read_cp(kind, data, k) != 44:
            # ``column + integer [AS alias]``: the column, operator and integer on one line (so
            # the integer's position is on the item's line), no comment between them
            if not shifts or what != 2:
                break
            op_at = skip_blanks(kind, data, j, n, False)
            q = at_or_0(kind, data, op_at, n)
            if q != 43 and q != 45:  # + -
                break
            int_at = skip_blanks(kind, data, op_at + 1, n, False)
            if not DIGIT[at_or_0(kind, data, int_at, n)]:  # (also ends at -- and ->)
                break
            int_end = digits_end(kind, data, int_at, n)
            if int_end < 0:
                break
            k = skip_blanks(kind, data, int_end, n, True)
            alias_at = alias_end = -1
            q = at_or_0(kind, data, k, n)
            if q == 65 or q == 97:  # AS alias
                q = at_or_0(kind, data, k + 1, n)
                if not (q == 83 or q == 115):
                    break
                alias_at = skip_blanks(kind, data, k + 2, n, True)
                if alias_at == k + 2:
                    break
                q = at_or_0(kind, data, alias_at, n)
                if q == 0 or q >= 128 or not WORDCH[q] or DIGIT[q]:
                    break
                alias_end = word_end(kind, data, alias_at + 1, n)
                if alias_end < 0:
                    break
                k = skip_blanks(kind, data, alias_end, n, True)
            if at_or_0(kind, data, k, n) != 44:
                break
            shifted = True
        k += 1
        while k < n and is_space(read_cp(kind, data, k)):
            k += 1
        at = (line, start - line_start + 1)
        if what == 0:
            e = literal_node(literal, digits_value(kind, data, i, j), "INTEGER", at)
        elif what == 1:
            value = PyUnicode_Substring(sql, start + 1, j - 1)
            if doubled:
                value = value.replace("''", "'")
            e = literal_node(literal, value, "STRING", at)
        else:
            text = PyUnicode_Substring(sql, start, j)
            rec = words.get(text)
            if rec is None:
                upper = text.upper()
                if upper in reserved:
                    if upper == "NULL":
                        rec = (1, None, "NULL")
                    elif upper == "TRUE" or upper == "FALSE":
                        rec = (1, upper == "TRUE", "BOOLEAN")
                    else:
                        rec = (2,)
                else:
                    rec = (0, upper if upper in system else text.lower())
                words[text] = rec
            if rec[0] == 2:
                break
            if shifted:
                if rec[0] != 0 or rec[1] == "now" or rec[1] == "current_timestamp":
                    break  # NULL + 1, NOW + 1 (a call): the usual path
                alias = None
                if alias_at >= 0:
                    alias = PyUnicode_Substring(sql, alias_at, alias_end)
                    if alias.upper() in reserved:  # the usual path says why
                        break
                    alias = alias.lower()
                e = binary_node(binary, "+" if read_cp(kind, data, op_at) == 43 else "-",
                                column_node(column, rec[1], at),
                                literal_node(literal, digits_value(kind, data, int_at, int_end),
                                             "INTEGER", (line, int_at - line_start + 1)), at)
                out.append(aliased_item_node(select_item, e, alias, at))
                tokens += 6 if alias is not None else 4
                i = start
                while i < k:  # line breaks after the integer and the blanks
                    count_break(kind, data, i, n, &line, &line_start)
                    i += 1
                continue
            if rec[0] == 0:
                if select and len(rec) == 3:  # the column's node in this run, shared
                    e = rec[2]
                else:
                    e = column_node(column, rec[1], at)
                    if select:
                        words[text] = (0, rec[1], e)
            else:
                e = literal_node(literal, rec[1], rec[2], at)
        out.append(item_node(select_item, e, at) if select else e)
        tokens += 2
        i = start
        while i < k:  # line breaks in the item (a string) and the blanks
            count_break(kind, data, i, n, &line, &line_start)
            i += 1
    return tokens, i, line, line_start


cdef inline Py_ssize_t leaf_end(int kind, const void* data, Py_ssize_t i, Py_ssize_t n,
                                int* what, int* doubled) noexcept:
    """The end of the operand at ``i`` of a chain term (``scan_terms``): a word (``what`` 2), an
    integer of at most 18 digits (0) or a 'string' on one line (1, ``doubled`` when it holds
    ''); -1 for anything else."""
    cdef uint32_t c = at_or_0(kind, data, i, n), q
    cdef Py_ssize_t j
    doubled[0] = 0
    if c == 0 or c >= 128:
        return -1
    if DIGIT[c]:
        what[0] = 0
        return digits_end(kind, data, i, n)
    if c == 39:
        what[0] = 1
        j = i + 1
        while True:
            while j < n:
                q = read_cp(kind, data, j)
                if q == 39 or q == 10 or q == 13:
                    break
                j += 1
            if j >= n or read_cp(kind, data, j) != 39:
                return -1  # unterminated, or a line break inside: the usual path
            if at_or_0(kind, data, j + 1, n) == 39:
                doubled[0] = 1
                j += 2
                continue
            return j + 1
    if WORDCH[c]:
        what[0] = 2
        return word_end(kind, data, i + 1, n)
    return -1


cdef object leaf_node(str sql, int kind, const void* data, Py_ssize_t i, Py_ssize_t j, int what,
                      int doubled, tuple at, type column, type literal, reserved, system):
    """The node ``_leaf`` makes of the operand at ``i:j`` (``leaf_end``), or None where it makes
    none (a reserved word but NULL, TRUE, FALSE; NOW and CURRENT_TIMESTAMP, which are calls)."""
    if what == 0:
        return literal_node(literal, digits_value(kind, data, i, j), "INTEGER", at)
    if what == 1:
        value = PyUnicode_Substring(sql, i + 1, j - 1)
        if doubled:
            value = value.replace("''", "'")
        return literal_node(literal, value, "STRING", at)
    text = PyUnicode_Substring(sql, i, j)
    upper = text.upper()
    if upper in reserved:
        if upper == "NULL":
            return literal_node(literal, None, "NULL", at)
        if upper == "TRUE" or upper == "FALSE":
            return literal_node(literal, upper == "TRUE", "BOOLEAN", at)
        return None
    if upper == "CURRENT_TIMESTAMP" or upper == "NOW":
        return None
    return column_node(column, upper if upper in system else text.lower(), at)


def scan_terms(str sql, Py_ssize_t pos, Py_ssize_t line, Py_ssize_t line_start, str word,
               type column, type literal, type binary, reserved, system, list out):
    """A run of the terms of an AND / OR chain from offset ``pos`` (on ``line``, starting at
    ``line_start``), each followed by the chain's ``word`` (``OR`` or ``AND``): the parser's
    ``simple_term`` in C, for the terms it reads most (a megabyte of ``a = 1 OR b = 's2' OR
    ...``, docs/SQL.md "Limits"). A term here is ``operand comparison operand`` on one line
    (``=``, ``==``, ``!=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``), its operands column names,
    integers of at most 18 digits, 'strings', NULL, TRUE or FALSE; ``out`` gets its
    ``binary`` node (``BinaryOp``) as ``simple_term`` makes it. Stops before the first term it
    cannot read or that is not followed by ``word`` (blanks around it, no comment), which the
    parser reads as usual. Returns ``(count, end, line, line_start)``: ``end`` is where the term
    after the last word read starts, on ``line``."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(sql)
    cdef int kind = PyUnicode_KIND(sql)
    cdef const void* data = PyUnicode_DATA(sql)
    cdef Py_ssize_t i = pos, start, left_end, op_at, op_end, right_at, right_end, k, w, count = 0
    cdef Py_ssize_t words = PyUnicode_GET_LENGTH(word)
    cdef int left_what = 0, right_what = 0, left_doubled = 0, right_doubled = 0
    cdef uint32_t c, q
    cdef uint32_t lower[8]  # the word in lower case (ASCII)
    if words > 8:
        return 0, pos, line, line_start
    for k in range(words):
        lower[k] = ord(word[k].lower())
    while i < n:
        start = i
        left_end = leaf_end(kind, data, start, n, &left_what, &left_doubled)
        if left_end < 0:
            break
        op_at = skip_blanks(kind, data, left_end, n, False)
        c = at_or_0(kind, data, op_at, n)
        q = at_or_0(kind, data, op_at + 1, n)
        op_end = op_at + 1
        if c == 61:  # = ==
            op = "="
            if q == 61:
                op_end += 1
        elif c == 33 and q == 61:  # !=
            op, op_end = "!=", op_at + 2
        elif c == 60:  # < <= <>
            op = "<"
            if q == 61:
                op, op_end = "<=", op_at + 2
            elif q == 62:
                op, op_end = "!=", op_at + 2
        elif c == 62:  # > >=
            op = ">"
            if q == 61:
                op, op_end = ">=", op_at + 2
        else:
            break
        right_at = skip_blanks(kind, data, op_end, n, False)
        right_end = leaf_end(kind, data, right_at, n, &right_what, &right_doubled)
        if right_end < 0:
            break
        # the chain's word after the term, then the next term's start
        w = skip_blanks(kind, data, right_end, n, True)
        if w == right_end and at_or_0(kind, data, w, n) != 0:
            break  # no blank between (x = 'a'OR ...): the usual path
        if w + words > n:
            break
        k = 0
        while k < words and (read_cp(kind, data, w + k) | 32) == lower[k]:
            k += 1
        if k != words:
            break
        q = at_or_0(kind, data, w + words, n)
        if q == 0 or q >= 128 or WORDCH[q]:
            break
        k = skip_blanks(kind, data, w + words, n, True)
        if k >= n:
            break
        left = leaf_node(sql, kind, data, start, left_end, left_what, left_doubled,
                         (line, start - line_start + 1), column, literal, reserved, system)
        if left is None:
            break
        right = leaf_node(sql, kind, data, right_at, right_end, right_what, right_doubled,
                          (line, right_at - line_start + 1), column, literal, reserved, system)
        if right is None:
            break
        out.append(binary_node(binary, op, left, right, (line, start - line_start + 1)))
        count += 1
        i = start
        while i < k:  # the line breaks around the word
            count_break(kind, data, i, n, &line, &line_start)
            i += 1
    return count, i, line, line_start
