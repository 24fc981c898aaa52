"""The compiled lexer (velostream._core.sql_lex through velostream.sql.lexer.iter_tokens) gives
exactly the tokens and the lexical errors of the reference, the master regular expression alone
(``iter_tokens_regex``): kinds, texts, values, lines, columns, offsets, and each error's message,
line and column, on a seeded corpus of generated SQL (docs/SQL.md §1, §7)."""
from __future__ import annotations

import random

import pytest

import velostream as vs
from velostream.sql import lexer

# pieces of SQL the corpus is made of: everything the lexer has a rule for, and its edges
PIECES = [
    "SELECT", "a", "x_1", "_key", "_TIMESTAMP", "FROM", "t", "WHERE", "Straße", "é", "名前", "aé",
    "\"Quoted\"", "\"with \"\" quote\"", "\"é\"", "\"two\nlines\"", "\"\"\"\"",
    "'s'", "''", "'it''s'", "'C:\\'", "'two\r\nlines'", "'é ü'", "''''",
    "0", "7", "42", "007", "123456789012345678", "9223372036854775807", "9223372036854775808",
    "99999999999999999999", "1.5", ".5", "2.", "1e3", "1E-2", "1.5e+10", "1e999", "3.x",
    "500ms", "30s", "1m", "2h", "1d", "5S", "10MS", "12abc", "1_000", "1e3x",
    "0x1F", "0XFF", "X'1F'", "x'ab'", "0x", "1.5E+3", "2e-7", ".5e1", "1.e2",
    "+", "-", "*", "/", "%", "||", "->", "->>", "=", "==", "!=", "<>", "<", "<=", ">", ">=",
    "(", ")", ",", ".", ";", "::", "t.a", "a.*",
    "-- a comment", "-- é comment\n", "/* c */", "/* multi\nline\r\n comment */", "/**/", "/*/ x */",
    "${VAR}", "${VAR:-d}", "\u00a0", "\u2003", "\x0b", "\x0c", "\x1c", "٣", "a٣", "½",
    "'😀 emoji'", "\"😀\"", "x😀", "-- 😀\n", "/* 😀 */", "\u2028",
]
SEPS = [" ", "", "\n", "\r\n", "\r", "\t", "  \n\n ", " \r\r\n "]
# each of these, somewhere in a text, is a lexical error (or may be)
BAD = ["'unterminated", "\"unterminated", "\"\"", "/* open", "!", "|", ":", "#", "@", "?",
       "\x00", "\u200b", "9" * 30, "99999999999999999999ms", "1x"]


def _tokens(iterate, sql: str) -> list:
    out = []
    try:
        for t in iterate(sql):
            out.append((t.kind, t.text, t.value, t.upper, t.line, t.column, t.offset, t.pos))
    except vs.SqlError as e:
        out.append(("error", e.message, e.line, e.column, str(e)))
    return out


def _texts(seed: int, n: int, bad: bool):
    rng = random.Random(seed)
    for _ in range(n):
        parts = [rng.choice(PIECES) for _ in range(rng.randint(0, 40))]
        if bad and parts:
            parts.insert(rng.randrange(len(parts)), rng.choice(BAD))
        yield "".join(p + rng.choice(SEPS) for p in parts)


@pytest.mark.parametrize("seed", range(6))
def test_compiled_lexer_gives_the_reference_tokens(seed):
    for sql in _texts(seed, 300, bad=False):
        assert _tokens(lexer.iter_tokens, sql) == _tokens(lexer.iter_tokens_regex, sql), repr(sql)


@pytest.mark.parametrize("seed", range(6))
def test_compiled_lexer_gives_the_reference_errors(seed):
    errors = 0
    for sql in _texts(100 + seed, 300, bad=True):
        got = _tokens(lexer.iter_tokens, sql)
        assert got == _tokens(lexer.iter_tokens_regex, sql), repr(sql)
        errors += got[-1][0] == "error"
    assert errors > 50  # the corpus does reach the error paths


@pytest.mark.parametrize("seed", range(3))
def test_restarting_anywhere_gives_the_reference_tokens(seed):
    """The parser restarts the lexer after a run it read itself: from any token's start, on
    its line, both give the same rest."""
    rng = random.Random(seed)
    for sql in _texts(200 + seed, 60, bad=False):
        toks = _tokens(lexer.iter_tokens_regex, sql)
        for t in rng.sample(toks, min(5, len(toks))):
            if t[0] == "error":
                continue
            _, _, _, _, line, column, offset, _ = t
            args = (sql, offset, line, offset - column + 1)
            assert _tokens(lambda s: lexer.iter_tokens(*args), sql) == \
                   _tokens(lambda s: lexer.iter_tokens_regex(*args), sql)


def test_long_texts_cross_the_compiled_blocks():
    """Texts much longer than one block (the scan reads up to 4096 tokens at a time)."""
    rng = random.Random(7)
    sql = "SELECT " + ", ".join(rng.choice(["a", "'x''y'", "12", "\"Q\"\"q\"", "b -- c\n", "1.5",
                                            "/* é */ c", "é", "d\r\n"]) for _ in range(20_000))
    assert _tokens(lexer.iter_tokens, sql) == _tokens(lexer.iter_tokens_regex, sql)
    assert _tokens(lexer.iter_tokens, sql + " 'open") == \
           _tokens(lexer.iter_tokens_regex, sql + " 'open")


@pytest.mark.parametrize("sql", [
    "SELECT ${A} FROM t", "SELECT '${A}' AS s, \"${A}\" FROM t -- ${UNSET}\n",
    "SELECT ${B:-é} AS \"${A}x\" FROM t /* ${UNSET} */",
])
def test_substituted_variables_lex_alike(sql):
    from velostream.sql.parser import substitute_env
    text = substitute_env(sql, {"A": "a", "B": "'b''c'"})
    assert _tokens(lexer.iter_tokens, text) == _tokens(lexer.iter_tokens_regex, text)


def test_list_items_read_in_bulk_are_ordinary_frozen_nodes():
    """The compiled scan of a run of list items makes the nodes their dataclass would make:
    equal, same hash, same repr, frozen (docs/SQL.md §7)."""
    import dataclasses

    from velostream.sql import ast, parser

    sql = "SELECT a, \"Q\", B, _key, 1, 'it''s', NULL, TRUE, false, 007, x FROM t"
    items = parser.parse(sql, {}).select.items
    made = [ast.SelectItem(ast.Column("a", None, False, pos=(1, 8))),
            ast.SelectItem(ast.Column("Q", None, True, pos=(1, 11))),
            ast.SelectItem(ast.Column("b", None, False, pos=(1, 16))),
            ast.SelectItem(ast.Column("_KEY", None, False, pos=(1, 19))),
            ast.SelectItem(ast.Literal(1, "INTEGER")), ast.SelectItem(ast.Literal("it's", "STRING")),
            ast.SelectItem(ast.Literal(None, "NULL")), ast.SelectItem(ast.Literal(True, "BOOLEAN")),
            ast.SelectItem(ast.Literal(False, "BOOLEAN")), ast.SelectItem(ast.Literal(7, "INTEGER")),
            ast.SelectItem(ast.Column("x", None, False))]
    assert list(items) == made
    assert [hash(i) for i in items] == [hash(m) for m in made]
    assert [repr(i) for i in items] == [repr(m) for m in made]
    for item in items:
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.alias = "z"
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.expr.pos = (9, 9)
    assert [i.pos for i in items[:4]] == [(1, 8), (1, 11), (1, 16), (1, 19)]
