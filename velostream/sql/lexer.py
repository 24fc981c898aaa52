"""Tokens for the parser (SEMANTICS.md §1, §7).

The scanning engine is sqlparse's ``Lexer`` (it also pairs ``/* ... */`` comments), but driven by a
private rule table instead of sqlparse's default one, which would get this dialect wrong in ways
that cannot be undone afterwards:

- ``500ms`` would come out as ``50`` + ``0ms``, ``a-5`` as ``a`` + ``-5``;
- ``'C:\\'`` would be an unterminated string (backslash is not an escape in SQL);
- ``# `` would start a comment, ``GROUP BY`` / ``NOT NULL`` / ``LEFT JOIN`` would be single tokens.

The private instance leaves sqlparse's global default lexer untouched. Whitespace and comments are
dropped; every token carries its 1-based line and column. Keywords are not told apart from
identifiers here: a ``WORD`` is whatever the parser expects at that point (so ``timestamp``,
``date``, ``key``, ``window`` still work as column names).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from sqlparse import tokens as T
from sqlparse.lexer import Lexer

from ..errors import SqlError

# token kinds
WORD = "WORD"          # unquoted identifier or keyword; value: the text as written
QIDENT = "QIDENT"      # "double-quoted identifier"; value: the name, "" unescaped
INT = "INT"            # value: int
FLOAT = "FLOAT"        # value: float
DURATION = "DURATION"  # 500ms, 30s, 1m, 2h, 1d; value: milliseconds
STRING = "STRING"      # 'single-quoted'; value: the text, '' unescaped
OP = "OP"              # + - * / % || = != < <= > >= ; value: the operator ('<>' -> '!=', '==' -> '=')
PUNCT = "PUNCT"        # ( ) , . ; ::
EOF = "EOF"

DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d)", re.IGNORECASE)

# Our marker types for the rule table (plain sqlparse token types, so sqlparse's tree is unchanged).
_T_SUFFIXED = T.Name.Builtin        # a number glued to letters: 500ms (or a bad literal: 12abc)
_T_UNTERMINATED = T.Error

_RULES = [
    (r"--[^\r\n]*", T.Comment.Single),
    (r"\s+", T.Text.Whitespace),
    (r"/\*", _T_UNTERMINATED),  # reached only when sqlparse found no closing */
    (r"(\d+\.\d*|\.\d+|\d+)(E[+-]?\d+)?(?!\w)", T.Number),
    (r"\d+[^\W\d]\w*", _T_SUFFIXED),
    (r"[^\W\d]\w*", T.Name),
    (r"'(''|[^'])*'", T.String.Single),
    (r"'", _T_UNTERMINATED),
    (r'"(""|[^"])*"', T.String.Symbol),
    (r'"', _T_UNTERMINATED),
    (r"::", T.Punctuation),
    (r"<>|!=|<=|>=|==|\|\||[-+*/%<>=]", T.Operator),
    (r"[(),.;]", T.Punctuation),
]

_lexer: Optional[Lexer] = None


def _get_lexer() -> Lexer:
    global _lexer
    if _lexer is None:
        lx = Lexer()
        lx.clear()
        lx.set_SQL_REGEX(_RULES)
        _lexer = lx
    return _lexer


@dataclass(frozen=True)
class Token:
    kind: str
    text: str       # the source text of the token
    value: object
    line: int       # 1-based
    column: int     # 1-based

    @property
    def pos(self) -> tuple[int, int]:
        return (self.line, self.column)

    @property
    def upper(self) -> str:
        """The keyword spelling of a WORD (upper case); '' for other kinds."""
        return self.text.upper() if self.kind == WORD else ""

    def describe(self) -> str:
        """How an error message names this token: 'FRM', string 'abc', end of input."""
        if self.kind == EOF:
            return "end of input"
        if self.kind == STRING:
            return f"string {self.text}"
        return f"'{self.text}'"


class _Position:
    """Maps a character offset to a 1-based (line, column)."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]

    def __call__(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:  # last line start <= offset
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.starts[lo] + 1


def tokenize(sql: str) -> list[Token]:
    """The tokens of ``sql`` without whitespace and comments, ending with an EOF token."""
    at = _Position(sql)
    out: list[Token] = []
    offset = 0
    end_of_last = None
    for ttype, text in _get_lexer().get_tokens(sql):
        start = offset
        offset += len(text)
        if ttype in T.Comment or ttype in T.Text.Whitespace:
            continue
        line, col = at(start)
        end_of_last = at(offset)
        out.append(_make(sql, ttype, text, line, col))
    line, col = end_of_last if end_of_last else (1, 1)
    out.append(Token(EOF, "", None, line, col))
    return out


def _make(sql: str, ttype, text: str, line: int, col: int) -> Token:
    if ttype is T.Name:
        return Token(WORD, text, text, line, col)
    if ttype is T.Number:
        if re.fullmatch(r"\d+", text):
            return Token(INT, text, int(text), line, col)
        return Token(FLOAT, text, float(text), line, col)
    if ttype is _T_SUFFIXED:
        m = _DURATION_RE.fullmatch(text)
        if m:
            ms = int(m.group(1)) * DURATION_UNITS_MS[m.group(2).lower()]
            return Token(DURATION, text, ms, line, col)
        raise SqlError.at(sql, (line, col),
                          f"invalid number or duration '{text}' (durations are written like "
                          f"500ms, 30s, 1m, 2h, 1d)")
    if ttype is T.String.Single:
        return Token(STRING, text, text[1:-1].replace("''", "'"), line, col)
    if ttype is T.String.Symbol:
        name = text[1:-1].replace('""', '"')
        if not name:
            raise SqlError.at(sql, (line, col), "empty quoted identifier \"\"")
        return Token(QIDENT, text, name, line, col)
    if ttype is T.Operator:
        value = {"<>": "!=", "==": "="}.get(text, text)
        return Token(OP, text, value, line, col)
    if ttype is T.Punctuation:
        return Token(PUNCT, text, text, line, col)
    if ttype is _T_UNTERMINATED:
        what = {"'": "unterminated string literal", '"': "unterminated quoted identifier",
                "/*": "unterminated comment (missing */)"}.get(text, f"unexpected character '{text}'")
        raise SqlError.at(sql, (line, col), what)
    # sqlparse's Error for a character no rule matches, or a $tag$ literal it recognised itself
    raise SqlError.at(sql, (line, col), f"unexpected character '{text[:1]}'")
