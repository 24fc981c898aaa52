"""Tokens for the parser (docs/SQL.md §1, §7).

A compiled scan (``velostream._core.sql_lex``) reads the common tokens left to right and makes
their ``Token`` objects in C (a 1 MB text tokenizes in a few hundredths of a second); one master
regular expression, the reference, reads each token the scan leaves (a float, a duration, a
character outside ASCII next to a token) and gives every lexical error. Its rules get this dialect
right where a generic SQL lexer (sqlparse's default one) would not:

- ``500ms`` is one duration token, not ``50`` + ``0ms``; ``a-5`` is ``a`` ``-`` ``5``;
- ``'C:\\'`` is a whole string (backslash is not an escape in SQL; ``''`` is);
- ``#`` does not start a comment; ``GROUP BY`` / ``NOT NULL`` / ``LEFT JOIN`` are separate words;
- ``/* ... */`` comments do not nest; one without ``*/`` is an error at its ``/*``.

Whitespace and comments are dropped; every token carries its 1-based line and column (lines end
at ``\\r\\n``, ``\\r`` or ``\\n``, as in ``SqlError``'s display). Keywords are not told apart from
identifiers here: a ``WORD`` is whatever the parser expects at that point (so ``timestamp``,
``date``, ``key``, ``window`` still work as column names).

Numbers are range-checked here, once: an integer literal must fit BIGINT. DuckDB would make a
larger one HUGEINT; velostream has no HUGEINT, so it is a ``SqlError`` at the literal rather than
a silent conversion (docs/SQL.md, "Literals"). The magnitude 2**63 is let through because
``-9223372036854775808`` is the smallest BIGINT; the parser rejects it unless negated.
"""
from __future__ import annotations

import re
from typing import Iterator

from .._core import sql_lex as _sql_lex
from ..errors import SqlError

# token kinds
WORD = "WORD"          # unquoted identifier or keyword; value: the text as written
QIDENT = "QIDENT"      # "double-quoted identifier"; value: the name, "" unescaped
INT = "INT"            # value: int (0 <= value <= 2**63)
FLOAT = "FLOAT"        # value: float (1e999 is inf, as in DuckDB)
DURATION = "DURATION"  # 500ms, 30s, 1m, 2h, 1d; value: milliseconds
STRING = "STRING"      # 'single-quoted'; value: the text, '' unescaped
OP = "OP"              # + - * / % || -> ->> = != < <= > >= ; value: the operator ('<>' -> '!=', '==' -> '=')
PUNCT = "PUNCT"        # ( ) , . ; ::
EOF = "EOF"

INT64_MAX = 2 ** 63 - 1
DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d)", re.IGNORECASE)

# The alternatives are tried in this order at each position; the group that matched names the rule.
# Each match is one token (or comment) with the whitespace before it, so the scan in C skips the
# whitespace and Python sees each token once.
_MASTER = re.compile(r"""\s*(?:
    (?P<line_comment>--[^\r\n]*)
  | (?P<comment>/\*.*?\*/)
  | (?P<open_comment>/\*)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:E[+-]?\d+)?(?!\w))
  | (?P<suffixed>\d+[^\W\d]\w*)
  | (?P<word>[^\W\d]\w*)
  | (?P<string>'[^']*(?:''[^']*)*')
  | (?P<qident>"[^"]*(?:""[^"]*)*")
  | (?P<unterminated>['"])
  | (?P<punct2>::)
  | (?P<op>->>|->|<>|!=|<=|>=|==|\|\||//|[-+*/%<>=])
  | (?P<punct>[(),.;])
  | (?P<other>\S)
)""", re.VERBOSE | re.IGNORECASE | re.DOTALL)
_RULES = [None] * (_MASTER.groups + 1)  # group index -> rule name
for _name, _index in _MASTER.groupindex.items():
    _RULES[_index] = _name
_COMMENT_GROUPS = (_MASTER.groupindex["line_comment"], _MASTER.groupindex["comment"])
_WORD_GROUP = _MASTER.groupindex["word"]
_OP_GROUP = _MASTER.groupindex["op"]
_PUNCT_GROUPS = (_MASTER.groupindex["punct"], _MASTER.groupindex["punct2"])
_NEWLINE = re.compile(r"\r\n|\r|\n")
_INT_RE = re.compile(r"\d+")
_OP_VALUES = {"<>": "!=", "==": "="}


# One token: ``kind`` (above), the source ``text``, its ``value``, 1-based ``line`` and ``column``;
# ``upper`` is the keyword spelling of a WORD (upper case), '' for other kinds; ``offset`` is where
# it starts in the text (the parser scans runs of list items from there). A compiled class: a
# megabyte of SQL makes hundreds of thousands of them.
Token = _sql_lex.Token


def _clip(text: str, limit: int = 60) -> str:
    """A long token (a 1 MB string literal) is named by its start in messages."""
    return text if len(text) <= limit else text[:limit] + "..."


def tokenize(sql: str) -> list[Token]:
    """The tokens of ``sql`` without whitespace and comments, ending with an EOF token."""
    return list(iter_tokens(sql))


def iter_tokens(sql: str, start: int = 0, line: int = 1, line_start: int = 0) -> Iterator[Token]:
    """``tokenize`` a block at a time: the parser pulls tokens as it goes, so a text that fails
    early (1 MB of '(' nested too deeply) fails without tokenizing the rest first. It can start
    anywhere: at offset ``start``, which is on ``line``, a line that begins at offset
    ``line_start`` (the parser resumes here after scanning a run of list items itself).

    The compiled scan (``velostream._core.sql_lex``) reads the common tokens; the one token it
    leaves at a time (a float, a duration, a character outside ASCII next to a token, a lexical
    error) is read here with the master regular expression, so every token and every error is
    exactly what ``iter_tokens_regex`` (the reference) gives."""
    scan, full, at_end = _sql_lex.scan, _sql_lex.BLOCK_FULL, _sql_lex.AT_END
    uppers: dict = {}
    pos = start
    end, end_line, end_line_start = start, line, line_start  # the last token's end (EOF's place)
    # grows from the parser's own read-ahead after a restart (_Parser._restart): a text that
    # fails early, or a run of list items the parser reads itself, is not scanned far ahead
    block = 16
    while True:
        toks, stop, pos, line, line_start, e, el, els = scan(sql, pos, line, line_start, block,
                                                             uppers)
        if e >= 0:
            end, end_line, end_line_start = e, el, els
        yield from toks
        if stop == full:
            block = min(2 * block, 4096)
            continue
        if stop == at_end:
            break
        m = _MASTER.match(sql, pos)  # the token at pos, for the regular expression
        if m is None:  # only (non-ASCII) whitespace is left
            break
        g = m.lastindex
        at, tend = m.span(g)
        line, line_start = _count_lines(sql, pos, at, line, line_start)
        if g not in _COMMENT_GROUPS:
            text = m.group(g)
            yield _make(sql, _RULES[g], text, line, at - line_start + 1, at)
        line, line_start = _count_lines(sql, at, tend, line, line_start)
        if g not in _COMMENT_GROUPS:
            end, end_line, end_line_start = tend, line, line_start
        pos = tend
    yield Token(EOF, "", None, end_line, end - end_line_start + 1, len(sql))


def _count_lines(sql: str, a: int, b: int, line: int, line_start: int) -> tuple[int, int]:
    """(line, line_start) after the line breaks in ``sql[a:b]``."""
    if a == b or (sql.find("\n", a, b) < 0 and sql.find("\r", a, b) < 0):
        return line, line_start
    for brk in _NEWLINE.finditer(sql, a, b):
        line += 1
        line_start = brk.end()
    return line, line_start


def iter_tokens_regex(sql: str, start: int = 0, line: int = 1,
                      line_start: int = 0) -> Iterator[Token]:
    """``iter_tokens`` with the master regular expression alone: the reference the compiled scan
    is tested against (tests/test_sql_lexer.py)."""
    ops = _OP_VALUES
    # lines are counted as tokens pass the line breaks: next_line is where the next line starts,
    # or (is_line False) a checkpoint where to look further, so that a restart does not scan
    # the whole rest of a text without line breaks
    next_line, is_line = _next_line(sql, start)
    word, op, number = _WORD_GROUP, _OP_GROUP, _MASTER.groupindex["number"]
    comments, puncts = _COMMENT_GROUPS, _PUNCT_GROUPS
    end = start  # where the last token ended: the position of EOF
    for m in _MASTER.finditer(sql, start):
        g = m.lastindex
        if g in comments:
            continue
        at, end = m.span(g)
        while next_line <= at:  # the token is on a later line (whitespace, comments, a string)
            if is_line:
                line += 1
                line_start = next_line
            next_line, is_line = _next_line(sql, next_line)
        text = m.group(g)
        # the common kinds inline (a 1 MB text has hundreds of thousands of tokens)
        if g == word:
            yield Token(WORD, text, text, line, at - line_start + 1, at)
        elif g in puncts:
            yield Token(PUNCT, text, text, line, at - line_start + 1, at)
        elif g == op:
            yield Token(OP, text, ops.get(text, text), line, at - line_start + 1, at)
        elif g == number and len(text) < 19 and text.isdecimal():  # fits BIGINT: no check
            yield Token(INT, text, int(text), line, at - line_start + 1, at)
        else:
            yield _make(sql, _RULES[g], text, line, at - line_start + 1, at)
    while next_line <= end:  # EOF after a string that spans lines
        if is_line:
            line += 1
            line_start = next_line
        next_line, is_line = _next_line(sql, next_line)
    yield Token(EOF, "", None, line, end - line_start + 1, len(sql))


def _next_line(sql: str, at: int, window: int = 4096) -> tuple[int, bool]:
    """(where the line after offset ``at`` starts, True), or (a checkpoint, False) when no line
    break is in the next ``window`` characters; (past the end, False) at the end."""
    if at >= len(sql):
        return len(sql) + 1, False
    brk = _NEWLINE.search(sql, at, at + window)
    if brk is None:
        return at + window, False
    end = brk.end()
    if end < len(sql) and sql[end] == "\n" and brk.group() == "\r":
        end += 1  # a \r\n cut by the window's end
    return end, True


def _make(sql: str, rule: str, text: str, line: int, col: int, at: int = -1) -> Token:
    if rule == "word":
        return Token(WORD, text, text, line, col, at)
    if rule == "number":
        if _INT_RE.fullmatch(text):
            return Token(INT, text, _int_literal(sql, text, line, col), line, col, at)
        return Token(FLOAT, text, float(text), line, col, at)
    if rule == "op":
        return Token(OP, text, {"<>": "!=", "==": "="}.get(text, text), line, col, at)
    if rule in ("punct", "punct2"):
        return Token(PUNCT, text, text, line, col, at)
    if rule == "string":
        return Token(STRING, text, text[1:-1].replace("''", "'"), line, col, at)
    if rule == "qident":
        name = text[1:-1].replace('""', '"')
        if not name:
            raise SqlError.at(sql, (line, col), "empty quoted identifier \"\"")
        return Token(QIDENT, text, name, line, col, at)
    if rule == "suffixed":
        m = _DURATION_RE.fullmatch(text)
        if m:
            amount = _int_literal(sql, m.group(1), line, col, what="duration")
            ms = amount * DURATION_UNITS_MS[m.group(2).lower()]
            if ms > INT64_MAX:
                raise SqlError.at(sql, (line, col), f"duration '{_clip(text)}' is out of range "
                                  f"(at most {INT64_MAX} milliseconds)")
            return Token(DURATION, text, ms, line, col, at)
        raise SqlError.at(sql, (line, col),
                          f"invalid number or duration '{_clip(text)}' (durations are written "
                          f"like 500ms, 30s, 1m, 2h, 1d)")
    if rule == "unterminated":
        what = "unterminated string literal" if text == "'" else "unterminated quoted identifier"
        raise SqlError.at(sql, (line, col), what)
    if rule == "open_comment":
        raise SqlError.at(sql, (line, col), "unterminated comment (missing */)")
    raise SqlError.at(sql, (line, col), f"unexpected character {_show_char(text)}")


def _int_literal(sql: str, digits: str, line: int, col: int, what: str = "integer literal") -> int:
    """The value of a run of digits, at most 2**63 (see the module docstring). Checked on the
    text first: Python refuses to convert more than 4300 digits, and a huge literal is an error
    anyway."""
    significant = digits.lstrip("0")
    if len(significant) <= 19:
        value = int(significant or "0")
        if value <= INT64_MAX + 1:
            return value
    raise SqlError.at(sql, (line, col),
                      f"{what} {_clip(digits)} is out of range for BIGINT (at most {INT64_MAX}; "
                      f"velostream has no HUGEINT: write a DOUBLE such as 1e20 for a larger number)")


def _show_char(ch: str) -> str:
    """A character for a message: itself in quotes when printable, else its code point."""
    return f"'{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"
