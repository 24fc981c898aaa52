"""A hand-written recursive-descent parser for the velostream dialect (docs/SQL.md §1, §4, §6, §7).

``parse(sql, env)`` substitutes ``${VAR}`` / ``${VAR:-default}`` from ``env`` (default
``os.environ``), tokenizes, and returns an ``ast.Statement``. Every syntax error is an ``SqlError``
at the line and column of the offending token.

Expression precedence, loosest first::

    OR < AND < NOT < comparison (= != < <= > >= IS [NOT] NULL, [NOT] IN, [NOT] BETWEEN, [NOT] [I]LIKE)
       < || < + - < * / % < unary - + < postfix ::type < primary
"""
from __future__ import annotations

import dataclasses

import bisect
import contextlib
import gc
import itertools
import os
import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Mapping, Optional

from .._core import sql_lex as _sql_lex
from ..errors import SqlError, UnsupportedError, nearest
from . import ast
from .function_names import GROUP_WINDOW_AUX_PARTS, GROUP_WINDOW_NAMES
from .lexer import DURATION, EOF, FLOAT, INT, OP, PUNCT, QIDENT, STRING, WORD, Token, iter_tokens

__all__ = ["parse", "substitute_env"]

# ----------------------------------------------------------------------------- ${VAR} substitution
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# strings and quoted identifiers (substituted inside) and comments (left alone)
_SPAN_RE = re.compile(r"'(?:''|[^'])*'?|\"(?:\"\"|[^\"])*\"?|--[^\r\n]*|/\*.*?(?:\*/|\Z)", re.S)


def substitute_env(sql: str, env: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` outside comments; unset without default -> error."""
    comments = [(m.start(), m.end()) for m in _SPAN_RE.finditer(sql)
                if m.group().startswith(("--", "/*"))]
    comment_starts = [a for a, _ in comments]  # sorted, not overlapping: found left to right
    out: list[str] = []
    i = 0
    for start in (m.start() for m in re.finditer(r"\$\{", sql)):
        if start < i:
            continue
        k = bisect.bisect_right(comment_starts, start) - 1  # the comment starting last before
        if k >= 0 and start < comments[k][1]:
            continue
        m = _VAR_RE.match(sql, start)
        if not m:
            raise SqlError.at(sql, _line_col(sql, start),
                              "malformed variable reference, expected ${NAME} or ${NAME:-default}")
        name, default = m.group(1), m.group(2)
        if name in env:
            value = env[name]
        elif default is not None:
            value = default
        else:
            raise SqlError.at(sql, _line_col(sql, start),
                              f"environment variable '{name}' is not set and has no default "
                              f"(write ${{{name}:-default}} to give one)")
        out.append(sql[i:start])
        out.append(value)
        i = m.end()
    out.append(sql[i:])
    return "".join(out)


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset].replace("\r\n", "\n").replace("\r", "\n")
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


def parse(sql: str, env: Optional[Mapping[str, str]] = None) -> ast.Statement:
    """Parse one statement. ``env`` (default ``os.environ``) feeds ``${VAR}`` substitution."""
    text = substitute_env(sql, os.environ if env is None else env)
    parser = _Parser(text)
    try:
        with gc_paused(len(text)):
            return parser.statement()
    except RecursionError:
        # Last line of defence (docs/SQL.md §7): the depth limit below keeps the parser's own
        # recursion bounded, but a caller that is itself deep in the stack can still run out.
        raise parser.error(parser.tok, "expression nested too deeply for the call stack here "
                                       f"(at most {MAX_EXPRESSION_DEPTH} levels are allowed)") from None


def parse_script(sql: str, env: Optional[Mapping[str, str]] = None) -> list[ast.Statement]:
    """Parse one or more statements separated by ``;`` (docs/SQL.md §8)."""
    text = substitute_env(sql, os.environ if env is None else env)
    parser = _Parser(text)
    statements: list[ast.Statement] = []
    try:
        with gc_paused(len(text)):
            while True:
                while parser.accept_punct(";"):
                    pass
                if parser.tok.kind == EOF and statements:
                    return statements
                statements.append(parser.statement(script=True))
    except RecursionError:
        raise parser.error(parser.tok, "expression nested too deeply for the call stack here "
                                       f"(at most {MAX_EXPRESSION_DEPTH} levels are allowed)") from None


# The nodes the parser makes by the hundred thousand for a megabyte of SQL, made as their
# dataclass __init__ makes them (each field set as object.__setattr__ sets it), in C: a frozen
# dataclass's __init__ costs a Python call per field (docs/SQL.md, "Limits").
_new_binary, _new_column = _sql_lex.new_binary, _sql_lex.new_column
_new_literal, _new_select_item = _sql_lex.new_literal, _sql_lex.new_select_item

# ----------------------------------------------------------------------------------- limits
# How deeply expressions may nest (docs/SQL.md, "Limits"). DuckDB allows 1000, but every stage
# here walks the tree recursively in Python under its default limit of 1000 frames (this parser
# spends about 12 frames per parenthesis, binding, evaluation and explain's rendering 2 to 6 per
# level, evaluation runs on partition threads): 64 levels leave room for the caller's own stack.
MAX_EXPRESSION_DEPTH = 64
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
# a window's size, advance or gap: its end (start + size) must stay far inside BIGINT milliseconds
MAX_WINDOW_MS = 36_500 * 86_400_000  # 36,500 days, about 100 years
# ROWS WINDOW BUFFER n ROWS keeps n rows per partition key in memory, allocated up front
MAX_BUFFER_ROWS = 1_000_000

# ----------------------------------------------------------------------------------- vocabulary
SYSTEM_COLUMNS = {"_TIMESTAMP", "_PARTITION", "_OFFSET", "_KEY", "_WINDOW_START", "_WINDOW_END"}

# Words that can never be a bare column reference (an expression is expected but one of these is
# found -> "expected an expression"). Everything else, e.g. timestamp, date, key, window, symbol,
# is a column name where an expression is expected.
RESERVED = {
    "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "LIMIT", "AND", "OR", "NOT", "IS", "IN",
    "BETWEEN", "LIKE", "ILIKE", "CASE", "WHEN", "THEN", "ELSE", "END", "AS", "BY", "ORDER", "ON",
    "JOIN", "UNION", "DISTINCT", "OVER", "WITH", "CREATE", "NULL", "TRUE", "FALSE", "INTERVAL",
    "CAST",
}
# Clause and join words that cannot be an alias written without AS.
CLAUSE_WORDS = {"FROM", "WHERE", "GROUP", "WINDOW", "HAVING", "LIMIT", "OFFSET", "EMIT", "WITH",
                "ORDER"}
JOIN_WORDS = {"JOIN", "LEFT", "RIGHT", "INNER", "FULL", "CROSS", "OUTER", "NATURAL", "ON", "UNION",
              "USING", "WITHIN", "FOR"}
NO_IMPLICIT_ALIAS = RESERVED | CLAUSE_WORDS | JOIN_WORDS

COMPARISON_OPS = {"=", "!=", "<", "<=", ">", ">="}

INTERVAL_UNITS_MS = {
    "MILLISECOND": 1, "MILLISECONDS": 1,
    "SECOND": 1000, "SECONDS": 1000,
    "MINUTE": 60_000, "MINUTES": 60_000,
    "HOUR": 3_600_000, "HOURS": 3_600_000,
    "DAY": 86_400_000, "DAYS": 86_400_000,
    "WEEK": 7 * 86_400_000, "WEEKS": 7 * 86_400_000,
}
# calendar units: a number of months, added by the calendar (INTERVAL '1' MONTH)
INTERVAL_UNITS_MONTHS = {"MONTH": 1, "MONTHS": 1, "QUARTER": 3, "QUARTERS": 3,
                         "YEAR": 12, "YEARS": 12}
# DuckDB's TIMESTAMP spans about 290,000 years either way; a calendar interval beyond that
# could only leave the range
MAX_INTERVAL_MONTHS = 12 * 290_000
_SHORTHAND_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

# CAST type names: spelling -> canonical name (ast.TypeName)
TYPE_NAMES = {
    "INTEGER": "INTEGER", "INT": "INTEGER", "INT4": "INTEGER", "SIGNED": "INTEGER",
    "BIGINT": "BIGINT", "INT8": "BIGINT", "LONG": "BIGINT",
    "DOUBLE": "DOUBLE", "FLOAT8": "DOUBLE",
    "FLOAT": "FLOAT", "FLOAT4": "FLOAT", "REAL": "FLOAT",
    "DECIMAL": "DECIMAL", "NUMERIC": "DECIMAL",
    "VARCHAR": "VARCHAR", "TEXT": "VARCHAR", "CHAR": "VARCHAR",
    "STRING": "STRING",
    "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMP", "DATETIME": "TIMESTAMP",
    "DATE": "DATE",
}
DECIMAL_DEFAULT = (18, 3)  # DuckDB's DECIMAL without parameters
DECIMAL_MAX_PRECISION = 38

# clause -> rank: a clause may not follow one of a higher rank (GROUP BY, WINDOW, HAVING share one)
_CLAUSE_RANK = {"WHERE": 1, "GROUP BY": 2, "WINDOW": 2, "HAVING": 2, "ORDER BY": 3, "LIMIT": 4,
                "OFFSET": 4, "EMIT": 4, "WITH": 5}
_CLAUSE_LIST = "WHERE, GROUP BY, WINDOW, HAVING, ORDER BY, LIMIT, OFFSET, EMIT, WITH"


# ----------------------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, sql: str):
        self.sql = sql
        self._pending = iter_tokens(sql)  # tokens are read as the parser reaches them
        self.toks: list[Token] = [next(self._pending)]
        self.i = 0
        self.tok: Token = self.toks[0]  # the current token, self.toks[self.i]
        # tokens consumed before self.toks[0]: a scanned run of list items (simple_items)
        # restarts the token list; base + i counts tokens from the start of the text
        self.base = 0
        self._block = 1024  # tokens read ahead per block (smaller just after a restart)
        self.implicit_alias: Optional[Token] = None
        self.nesting = 0  # expr() calls in progress (see expr)
        # per outermost expression: the deepest nesting reached and the links its loops added;
        # their sum bounds the tree's depth, so the exact walk is needed only beyond the limit
        self.deepest = 0
        self.links = 0
        # the height of the expression tree the last expression-level method returned (an upper
        # bound: folding a sign into a literal can make the tree lower); see expr
        self.height = 0
        # calls to Flink's group window functions (TUMBLE, TUMBLE_START, ...) read so far: a
        # SELECT that read none skips looking for them (see _group_window)
        self.group_window_calls = 0

    # ---------------------------------------------------------------------------- token helpers
    def _read_to(self, j: int) -> None:
        """Tokenize up to token ``j`` (or EOF, the last token), a block at a time."""
        toks = self.toks
        while len(toks) <= j and toks[-1].kind != EOF:
            toks.extend(itertools.islice(self._pending, self._block))
            self._block = min(2 * self._block, 1024)

    def _restart(self, offset: int, line: int, line_start: int, consumed: int) -> None:
        """Go on tokenizing at ``offset`` (on ``line``, which starts at ``line_start``), after
        ``consumed`` tokens' worth of text was read without the token list. The block read
        ahead starts small and doubles, so the tokens thrown away here (read but not reached)
        are never more than those reached since the last restart, plus 16."""
        self.base += self.i + consumed
        self._pending = iter_tokens(self.sql, offset, line, line_start)
        self.toks = [next(self._pending)]
        self.i = 0
        self.tok = self.toks[0]
        self._block = 16

    def peek(self, k: int = 1) -> Token:
        if self.i + k >= len(self.toks):
            self._read_to(self.i + k)
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        t = self.tok
        if t.kind != EOF:
            i = self.i = self.i + 1
            if i == len(self.toks):
                self._read_to(i)
            self.tok = self.toks[i]
        return t

    def error(self, tok: Token, message: str) -> SqlError:
        return SqlError.at(self.sql, tok.pos, message)

    def unsupported(self, tok: Token, message: str) -> UnsupportedError:
        return UnsupportedError(message, self.sql, tok.line, tok.column)

    def expected(self, what: str, tok: Optional[Token] = None) -> SqlError:
        tok = tok or self.tok
        return self.error(tok, f"expected {what}, found {tok.describe()}")

    @staticmethod
    def is_kw(tok: Token, *words: str) -> bool:
        return tok.kind == WORD and tok.upper in words

    def at_kw(self, *words: str) -> bool:
        return self.is_kw(self.tok, *words)

    def accept_kw(self, *words: str) -> Optional[Token]:
        if self.at_kw(*words):
            return self.advance()
        return None

    def expect_kw(self, word: str, what: Optional[str] = None) -> Token:
        if not self.at_kw(word):
            raise self.expected(what or word)
        return self.advance()

    def at_punct(self, p: str) -> bool:
        return self.tok.kind == PUNCT and self.tok.value == p

    def accept_punct(self, p: str) -> Optional[Token]:
        if self.at_punct(p):
            return self.advance()
        return None

    def expect_punct(self, p: str, what: Optional[str] = None) -> Token:
        if not self.at_punct(p):
            raise self.expected(what or f"'{p}'")
        return self.advance()

    @staticmethod
    def is_punct(tok: Token, p: str) -> bool:
        return tok.kind == PUNCT and tok.value == p

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == OP and self.tok.value in ops

    # ------------------------------------------------------------------------------- identifiers
    @staticmethod
    def ident_of(tok: Token) -> tuple[str, bool]:
        """(name, quoted) of an identifier token: unquoted names are lower-cased."""
        if tok.kind == QIDENT:
            return tok.value, True
        return tok.text.lower(), False

    def is_identifier(self, tok: Token, reserved=RESERVED) -> bool:
        return tok.kind == QIDENT or (tok.kind == WORD and tok.upper not in reserved)

    def identifier(self, what: str = "an identifier", reserved=RESERVED) -> tuple[str, bool, Token]:
        tok = self.tok
        if not self.is_identifier(tok, reserved):
            raise self.expected(what)
        self.advance()
        name, quoted = self.ident_of(tok)
        return name, quoted, tok

    @staticmethod
    def column_name(tok: Token) -> str:
        if tok.kind == WORD and tok.upper in SYSTEM_COLUMNS:
            return tok.upper
        return tok.value if tok.kind == QIDENT else tok.text.lower()

    # -------------------------------------------------------------------------------- statement
    def statement(self, script: bool = False) -> ast.Statement:
        """One statement; with ``script`` it may be followed by ``;`` and more statements
        (docs/SQL.md §8), else it must end the text."""
        start = self.tok
        create_kind = create_name = None
        columns = None
        primary_key: tuple[str, ...] = ()
        if self.at_kw("CREATE"):
            self.advance()
            kind = self.tok
            if not self.is_kw(kind, "STREAM", "TABLE"):
                raise self.expected("STREAM or TABLE after CREATE")
            self.advance()
            create_kind = kind.upper
            create_name, _, _ = self.identifier(f"a {create_kind.lower()} name")
            if self.at_punct("("):
                columns, primary_key = self.column_defs(create_kind)
            if not self.accept_kw("AS"):
                return self.declared_source(start, create_kind, create_name, columns,
                                            primary_key, script)
            if columns is not None:
                raise self.error(start, f"CREATE {create_kind} {create_name} (...) AS SELECT: a "
                                        f"derived {create_kind.lower()} takes its columns from its "
                                        f"query; drop the column list")
        if not self.at_kw("SELECT", "WITH"):
            raise self.expected("SELECT" if create_kind else "SELECT or CREATE")
        if self.at_kw("WITH") and self.is_punct(self.peek(), "("):
            raise self.expected("SELECT" if create_kind else "SELECT or CREATE")
        query, properties = self.query(nested=False)
        self.end_statement(script)
        return ast.Statement(select=query.select, create_kind=create_kind, create_name=create_name,
                             properties=properties, sql=self.sql, union_all=query.union_all,
                             ctes=query.ctes, pos=start.pos)

    def end_statement(self, script: bool) -> None:
        if self.accept_punct(";") and script:
            return
        if self.tok.kind != EOF:
            if script:
                raise self.expected("';' between statements")
            raise self.expected("end of statement")

    def declared_source(self, start: Token, kind: str, name: str, columns, primary_key,
                        script: bool) -> ast.Statement:
        """``CREATE STREAM name [(col TYPE, ...)] [WITH (...)]`` or ``CREATE TABLE name ([col
        TYPE, ...,] PRIMARY KEY (k, ...)) [WITH (...)]``: a source and its schema (§8)."""
        if kind == "TABLE" and not primary_key:
            raise self.error(start, f"CREATE TABLE {name} declares a table source: give its key "
                                    f"as CREATE TABLE {name} (..., PRIMARY KEY (column)), or define "
                                    f"it with CREATE TABLE {name} AS SELECT ...")
        properties: tuple = ()
        if self.at_kw("SELECT"):
            raise self.expected("AS")  # CREATE STREAM s SELECT ...: the AS is missing
        if self.at_kw("WITH"):
            self.advance()
            properties = self.properties()
        elif self.tok.kind != EOF and not self.at_punct(";"):
            raise self.expected("AS, WITH (...) or the end of the statement")
        self.end_statement(script)
        return ast.Statement(select=None, create_kind=kind, create_name=name,
                             properties=properties, sql=self.sql, columns=columns,
                             primary_key=primary_key, pos=start.pos)

    def column_defs(self, kind: str) -> tuple[Optional[tuple[ast.ColumnDef, ...]], tuple[str, ...]]:
        self.expect_punct("(")
        cols: list[ast.ColumnDef] = []
        key: tuple[str, ...] = ()
        seen: set[str] = set()
        while True:
            tok = self.tok
            if self.is_kw(tok, "PRIMARY"):
                self.advance()
                self.expect_kw("KEY", "KEY after PRIMARY")
                if kind != "TABLE":
                    raise self.error(tok, "PRIMARY KEY belongs to a CREATE TABLE; a stream has "
                                          "no key")
                if key:
                    raise self.error(tok, "duplicate PRIMARY KEY")
                self.expect_punct("(", "'(' after PRIMARY KEY")
                names = [self.column_name(self.identifier("a key column")[2])]
                while self.accept_punct(","):
                    names.append(self.column_name(self.identifier("a key column")[2]))
                self.expect_punct(")", "',' or ')'")
                key = tuple(names)
            else:
                ident = self.identifier("a column name or PRIMARY KEY")[2]
                cname = self.column_name(ident)
                if cname.lower() in seen:
                    raise self.error(ident, f"duplicate column '{cname}'")
                seen.add(cname.lower())
                cols.append(ast.ColumnDef(cname, self.type_name(), pos=ident.pos))
            if self.accept_punct(")"):
                break
            self.expect_punct(",", "',' or ')'")
        if key and cols:
            names = {c.name.lower() for c in cols}
            for k in key:
                if k.lower() not in names:
                    raise self.error(self.tok, f"PRIMARY KEY column '{k}' is not among the "
                                               f"declared columns")
        return (tuple(cols) if cols else None), key

    def query(self, nested: bool) -> tuple[ast.Query, tuple[tuple[str, str], ...]]:
        """``[WITH name AS (query), ...] SELECT ... [UNION ALL SELECT ...]``; the WITH (...)
        properties follow the last SELECT of a top-level query only."""
        start = self.tok
        ctes: list[ast.Cte] = []
        if self.at_kw("WITH") and not self.is_punct(self.peek(), "("):
            self.advance()
            seen: set[str] = set()
            while True:
                name, _, name_tok = self.identifier("a name for the WITH query")
                if name.lower() in seen:
                    raise self.error(name_tok, f"duplicate WITH query name '{name}'")
                seen.add(name.lower())
                self.expect_kw("AS", f"AS after WITH {name}")
                self.expect_punct("(", f"'(' after WITH {name} AS")
                q, _ = self.query(nested=True)
                self.expect_punct(")", "')' to close the WITH query")
                ctes.append(ast.Cte(name, q, pos=name_tok.pos))
                if not self.accept_punct(","):
                    break
        if not self.at_kw("SELECT"):
            raise self.expected("SELECT")
        first, properties = self.select(nested)
        branches: list[ast.Select] = []
        while self.at_kw("UNION"):
            union = self.advance()
            if not self.accept_kw("ALL"):
                raise self.unsupported(self.tok, "UNION without ALL (a union that removes "
                                                 "duplicates) is not supported; write UNION ALL")
            if properties:
                raise self.error(union, "WITH (...) properties go after the last SELECT of a "
                                        "UNION ALL")
            if not self.at_kw("SELECT"):
                raise self.expected("SELECT after UNION ALL")
            sel, properties = self.select(nested)
            branches.append(sel)
        return ast.Query(first, tuple(branches), tuple(ctes), pos=start.pos), properties

    def select(self, nested: bool = False) -> tuple[ast.Select, tuple[tuple[str, str], ...]]:
        select_tok = self.expect_kw("SELECT")
        group_window_calls = self.group_window_calls
        distinct = bool(self.accept_kw("DISTINCT"))
        if not distinct:
            self.accept_kw("ALL")
        items = [self.select_item()]
        while self.accept_punct(","):
            self.simple_items(items, select=True)
            items.append(self.select_item())
        if not self.at_kw("FROM"):
            # 'SELECT a, b FRM t': 'FRM' was taken for an alias of b, but it is the misspelt FROM
            if self.is_identifier(self.tok) and self.implicit_alias is not None:
                raise self.expected("FROM", self.implicit_alias)
            raise self.expected("FROM" if self.tok.kind == EOF or self.is_kw(self.tok, *CLAUSE_WORDS)
                                else "',' or FROM")
        self.advance()
        source = self.table_ref()
        joins = []
        while self.at_kw("JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "NATURAL"):
            joins.append(self.join())

        clauses: dict[str, object] = {}
        seen_rank = 0
        while True:
            tok = self.tok
            if self.is_kw(tok, "GROUP") and self.is_kw(self.peek(), "BY"):
                name = "GROUP BY"
            elif self.is_kw(tok, "ORDER") and self.is_kw(self.peek(), "BY"):
                name = "ORDER BY"
            elif self.is_kw(tok, "WHERE", "WINDOW", "HAVING", "LIMIT", "OFFSET", "EMIT", "WITH"):
                name = tok.upper
            elif self.is_kw(tok, "GROUP"):
                self.advance()
                raise self.expected("BY after GROUP")
            else:
                break
            if name == "WITH" and nested:
                raise self.error(tok, "WITH (...) properties belong to the whole statement, not "
                                      "to a query in parentheses")
            if name in clauses:
                raise self.error(tok, f"duplicate {name} clause")
            rank = _CLAUSE_RANK[name]
            if rank < seen_rank:
                later = [c for c in clauses if _CLAUSE_RANK[c] > rank]
                raise self.error(tok, f"{name} must come before {later[0]}")
            if name != "WINDOW":  # WINDOW may also stand before WHERE, as ksqlDB writes it
                seen_rank = max(seen_rank, rank)
            clauses[name] = self.clause(name)

        if (self.tok.kind != EOF and not self.at_punct(";") and not self.at_kw("UNION")
                and not (nested and self.at_punct(")"))):
            tok = self.tok
            if self.at_punct(","):
                raise self.unsupported(tok, "FROM a, b is not supported: join ON an equality of "
                                            "keys (docs/SQL.md §9)")
            if tok.kind == WORD and tok.upper not in RESERVED:
                hint = nearest(tok.text, ["WHERE", "GROUP", "WINDOW", "HAVING", "ORDER", "LIMIT",
                                          "OFFSET", "EMIT", "WITH"])
                if hint:
                    raise self.error(tok, f"expected {_CLAUSE_LIST} or end of statement, found "
                                          f"{tok.describe()} (did you mean {hint}?)")
            raise self.expected("')' to close the query" if nested else "end of statement")

        if self.group_window_calls != group_window_calls:  # GROUP BY TUMBLE(ts, size), ...
            items, clauses = _group_window(self.sql, items, clauses, source.window, joins)
        if source.window is not None:
            if "WINDOW" in clauses:
                raise self.error(select_tok, "a window table function in FROM and a WINDOW "
                                             "clause: give the window once")
            items, clauses = _window_columns(items, clauses)
            clauses["WINDOW"] = source.window
        select = ast.Select(
            items=tuple(items), source=source, distinct=distinct,
            where=clauses.get("WHERE"), group_by=clauses.get("GROUP BY", ()),
            window=clauses.get("WINDOW"), having=clauses.get("HAVING"),
            limit=clauses.get("LIMIT"), emit=clauses.get("EMIT"), pos=select_tok.pos,
            order_by=clauses.get("ORDER BY", ()), joins=tuple(joins),
            offset=clauses.get("OFFSET", 0))
        return select, clauses.get("WITH", ())

    def clause(self, name: str):
        self.advance()
        if name == "WHERE":
            return self.expr()
        if name == "GROUP BY":
            self.advance()  # BY
            exprs = [self.expr()]
            while self.accept_punct(","):
                exprs.append(self.expr())
            return tuple(exprs)
        if name == "ORDER BY":
            self.advance()  # BY
            items = [self.order_item()]
            while self.accept_punct(","):
                items.append(self.order_item())
            return tuple(items)
        if name == "WINDOW":
            return self.window_spec()
        if name == "HAVING":
            return self.expr()
        if name in ("LIMIT", "OFFSET"):
            tok = self.tok
            if tok.kind != INT:
                raise self.expected(f"a non-negative integer after {name}")
            if tok.value > INT64_MAX:
                raise self.error(tok, f"{name} must be at most {INT64_MAX}, got {tok.text}")
            self.advance()
            return tok.value
        if name == "EMIT":
            tok = self.tok
            if self.is_kw(tok, "ON"):  # RisingWave's EMIT ON WINDOW CLOSE is EMIT FINAL (§10)
                self.advance()
                self.expect_kw("WINDOW", "WINDOW CLOSE after EMIT ON")
                self.expect_kw("CLOSE", "CLOSE after EMIT ON WINDOW")
                return "FINAL"
            if not self.is_kw(tok, "CHANGES", "FINAL"):
                raise self.expected("CHANGES, FINAL or ON WINDOW CLOSE after EMIT")
            self.advance()
            return tok.upper
        if name == "WITH":
            return self.properties()
        raise AssertionError(name)

    # ------------------------------------------------------------------------- select list, FROM
    def select_item(self) -> ast.SelectItem:
        tok = self.tok
        if self.at_op("*"):
            self.advance()
            self.implicit_alias = None
            return ast.SelectItem(ast.Star(pos=tok.pos), pos=tok.pos)
        if (self.is_identifier(tok) and self.peek().kind == PUNCT and self.peek().value == "."
                and self.peek(2).kind == OP and self.peek(2).value == "*"):
            self.advance()
            self.advance()
            self.advance()
            self.implicit_alias = None
            return ast.SelectItem(ast.Star(table=self.ident_of(tok)[0], pos=tok.pos), pos=tok.pos)
        expr = self.expr()
        alias = None
        implicit = None
        if self.accept_kw("AS"):
            alias, _, _ = self.identifier("an alias after AS")
        elif self.is_identifier(self.tok, NO_IMPLICIT_ALIAS):
            implicit = self.advance()
            alias = self.ident_of(implicit)[0]
        self.implicit_alias = implicit  # for the 'FRM' hint in select()
        return _new_select_item(ast.SelectItem, expr, alias, (tok.line, tok.column))

    def table_ref(self) -> ast.TableRef:
        tok = self.tok
        if self.at_punct("("):
            if not self.is_kw(self.peek(), "SELECT", "WITH"):
                raise self.expected("a source name or a (SELECT ...) subquery")
            self.advance()
            q, _ = self.query(nested=True)
            self.expect_punct(")", "')' to close the subquery")
            alias = None
            if self.accept_kw("AS") or self.is_identifier(self.tok, NO_IMPLICIT_ALIAS):
                alias, _, _ = self.identifier("an alias for the subquery")
            return ast.TableRef(alias or "(subquery)", alias, pos=tok.pos, query=q)
        if self.at_kw("TABLE") and self.is_punct(self.peek(), "("):
            return self.window_table_function()
        name, _, _ = self.identifier("a source name")
        if self.at_punct("."):
            raise self.unsupported(self.tok, "qualified source names (a.b) are not supported")
        as_of = None
        if self.at_kw("FOR") and self.is_kw(self.peek(), "SYSTEM_TIME"):
            self.advance()
            self.advance()
            self.expect_kw("AS", "AS OF after FOR SYSTEM_TIME")
            self.expect_kw("OF", "OF after FOR SYSTEM_TIME AS")
            as_of = self.additive()
        alias = None
        if self.accept_kw("AS"):
            alias, _, _ = self.identifier("an alias after AS")
        elif self.is_identifier(self.tok, NO_IMPLICIT_ALIAS):
            alias_tok = self.tok
            # 'FROM t WHER x > 1': a misspelt clause word, not an alias
            nxt = self.peek()
            if nxt.kind not in (EOF,) and not (nxt.kind == PUNCT and nxt.value == ";") \
                    and not self.is_kw(nxt, *CLAUSE_WORDS, "GROUP", *JOIN_WORDS):
                hint = nearest(alias_tok.text, ["WHERE", "GROUP", "WINDOW", "HAVING", "LIMIT",
                                                "EMIT", "WITH"])
                if hint:
                    raise self.error(alias_tok, f"expected {_CLAUSE_LIST} or end of statement, "
                                                f"found {alias_tok.describe()} (did you mean {hint}?)")
            self.advance()
            alias = self.ident_of(alias_tok)[0]
        return ast.TableRef(name, alias, pos=tok.pos, as_of=as_of)

    def join(self) -> ast.Join:
        """``[INNER | LEFT [OUTER] | RIGHT [OUTER] | FULL [OUTER]] JOIN source [FOR SYSTEM_TIME
        AS OF expr] [alias] ON condition [WITHIN duration]`` (docs/SQL.md §9)."""
        start = self.tok
        if self.is_kw(start, "CROSS", "NATURAL"):
            raise self.unsupported(start, f"{start.upper} JOIN is not supported: join ON an "
                                          f"equality of keys (docs/SQL.md §9)")
        kind = "INNER"
        if self.is_kw(start, "LEFT", "RIGHT", "FULL", "INNER"):
            kind = self.advance().upper
            if kind != "INNER":
                self.accept_kw("OUTER")
        self.expect_kw("JOIN", f"JOIN after {kind}")
        right = self.table_ref()
        if not self.at_kw("ON"):
            if self.at_kw("USING"):
                raise self.unsupported(self.tok, "JOIN ... USING is not supported: write ON "
                                                 "a.k = b.k")
            raise self.expected("ON and the join condition")
        self.advance()
        on = self.expr()
        within = None
        if self.accept_kw("WITHIN"):  # ksqlDB: the two rows' times at most this far apart
            within = self.ksql_duration("WITHIN", allow_zero=True)
        return ast.Join(kind, right, on, within, pos=start.pos)

    def window_table_function(self) -> ast.TableRef:
        """Flink's window table functions (docs/SQL.md §10): ``TABLE(TUMBLE(TABLE t,
        DESCRIPTOR(ts), size))``, ``HOP(..., slide, size)``, ``CUMULATE(..., step, size)``,
        ``SESSION(TABLE t [PARTITION BY k], DESCRIPTOR(ts), gap)``; the select list and GROUP BY
        name ``window_start`` and ``window_end``."""
        self.advance()  # TABLE
        self.expect_punct("(")
        fn = self.tok
        if not self.is_kw(fn, "TUMBLE", "HOP", "SESSION", "CUMULATE"):
            raise self.expected("TUMBLE, HOP, CUMULATE or SESSION in TABLE(...)")
        self.advance()
        self.expect_punct("(", f"'(' after {fn.upper}")
        self.expect_kw("TABLE", f"TABLE name as the first argument of {fn.upper}")
        name, _, name_tok = self.identifier("a source name")
        if fn.upper == "SESSION" and self.accept_kw("PARTITION"):
            self.expect_kw("BY", "BY after PARTITION")  # the groups come from GROUP BY
            self.column_ref()
            while self.at_punct(",") and not self.is_kw(self.peek(), "DESCRIPTOR"):
                self.advance()
                self.column_ref()
        self.expect_punct(",", "',' and DESCRIPTOR(time column)")
        self.expect_kw("DESCRIPTOR", "DESCRIPTOR(time column)")
        self.expect_punct("(", "'(' after DESCRIPTOR")
        time_column = self.column_ref()
        self.expect_punct(")", "')' after the time column")
        durations = []
        while self.accept_punct(","):
            ms, tok = self.duration()
            if ms <= 0 or ms > MAX_WINDOW_MS:
                raise self.error(tok, f"a window duration must be between 1 ms and 36,500 days, "
                                      f"got {ms} ms")
            durations.append((ms, tok))
        self.expect_punct(")", f"')' to close {fn.upper}(...)")
        self.expect_punct(")", "')' to close TABLE(...)")
        want = {"TUMBLE": 1, "HOP": 2, "CUMULATE": 2, "SESSION": 1}[fn.upper]
        if len(durations) != want:
            shape = {"TUMBLE": "size", "HOP": "slide, size", "CUMULATE": "step, size",
                     "SESSION": "gap"}[fn.upper]
            raise self.error(fn, f"{fn.upper}(TABLE t, DESCRIPTOR(ts), {shape}) takes {want} "
                                 f"duration(s), got {len(durations)}")
        if fn.upper == "TUMBLE":
            window = ast.WindowSpec("TUMBLING", time_column, size_ms=durations[0][0], pos=fn.pos)
        elif fn.upper == "HOP":
            (slide, _), (size, size_tok) = durations
            if slide > size:
                raise self.error(size_tok, f"HOP's slide ({slide} ms) must not exceed its size "
                                           f"({size} ms)")
            window = ast.WindowSpec("SLIDING", time_column, size_ms=size, advance_ms=slide,
                                    pos=fn.pos)
        elif fn.upper == "CUMULATE":  # windows from each k * size growing by step up to size
            (step, _), (size, size_tok) = durations
            if size % step:
                raise self.error(size_tok, f"CUMULATE's size ({size} ms) must be a whole multiple "
                                           f"of its step ({step} ms)")
            window = ast.WindowSpec("CUMULATE", time_column, size_ms=size, advance_ms=step,
                                    pos=fn.pos)
        else:
            window = ast.WindowSpec("SESSION", time_column, gap_ms=durations[0][0], pos=fn.pos)
        alias = None
        if self.accept_kw("AS") or self.is_identifier(self.tok, NO_IMPLICIT_ALIAS):
            alias, _, _ = self.identifier("an alias")
        return ast.TableRef(name, alias, pos=name_tok.pos, window=window)

    # ----------------------------------------------------------------------------------- WINDOW
    def window_spec(self) -> ast.WindowSpec:
        kind_tok = self.tok
        if not self.is_kw(kind_tok, "TUMBLING", "SLIDING", "SESSION", "HOPPING"):
            raise self.expected("TUMBLING, SLIDING, HOPPING or SESSION after WINDOW")
        self.advance()
        kind = kind_tok.upper
        self.expect_punct("(", f"'(' after {kind}")
        if self.at_kw("SIZE") or kind == "HOPPING" or (
                kind == "SESSION" and self.tok.kind == INT and self.peek().kind == WORD
                and self.peek().upper in INTERVAL_UNITS_MS):
            return self.ksql_window(kind_tok)
        time_column = None
        if self.is_identifier(self.tok) and not self.at_kw("INTERVAL"):
            time_column = self.column_ref()
            self.expect_punct(",", f"',' after the time column of {kind}")
        durations: list[tuple[int, Token]] = []
        while True:
            durations.append(self.duration())
            if not self.accept_punct(","):
                break
        self.expect_punct(")", "',' or ')'")
        want = {"TUMBLING": ("size",), "SLIDING": ("size", "advance"), "SESSION": ("gap",)}[kind]
        if len(durations) != len(want):
            shape = ", ".join(want)
            raise self.error(kind_tok, f"{kind} takes ({shape}) or (time_column, {shape}), "
                                       f"got {len(durations)} duration(s)")
        for (ms, tok), what in zip(durations, want):
            if ms <= 0:
                raise self.error(tok, f"window {what} must be positive, got {ms} ms")
            if ms > MAX_WINDOW_MS:
                raise self.error(tok, f"window {what} must be at most 36,500 days "
                                      f"({MAX_WINDOW_MS} ms), got {ms} ms")
        if kind == "TUMBLING":
            return ast.WindowSpec(kind, time_column, size_ms=durations[0][0], pos=kind_tok.pos)
        if kind == "SLIDING":
            (size, _), (advance, adv_tok) = durations
            if advance > size:
                raise self.error(adv_tok, f"window advance ({advance} ms) must not exceed its size "
                                          f"({size} ms)")
            return ast.WindowSpec(kind, time_column, size_ms=size, advance_ms=advance,
                                  pos=kind_tok.pos)
        return ast.WindowSpec(kind, time_column, gap_ms=durations[0][0], pos=kind_tok.pos)

    def ksql_window(self, kind_tok: Token) -> ast.WindowSpec:
        """ksqlDB's windows (docs/SQL.md §10): TUMBLING (SIZE d [, GRACE PERIOD d]), HOPPING
        (SIZE d, ADVANCE BY d [, GRACE PERIOD d]), SESSION (d [, GRACE PERIOD d]); ``d`` is
        ``n UNIT`` (``1 MINUTE``, ``30 SECONDS``) or any duration."""
        kind = kind_tok.upper
        size = advance = gap = grace = None
        if kind == "SESSION":
            gap = self.ksql_duration("the session gap")
        else:
            self.expect_kw("SIZE", f"SIZE after {kind} (")
            size = self.ksql_duration("the window size")
        while self.accept_punct(","):
            if self.accept_kw("ADVANCE"):
                self.expect_kw("BY", "BY after ADVANCE")
                advance = self.ksql_duration("the advance")
            elif self.accept_kw("GRACE"):
                self.expect_kw("PERIOD", "PERIOD after GRACE")
                grace = self.ksql_duration("the grace period", allow_zero=True)
            else:
                raise self.expected("ADVANCE BY or GRACE PERIOD")
        self.expect_punct(")", "',' or ')'")
        if kind == "HOPPING" and advance is None:
            raise self.error(kind_tok, "HOPPING needs ADVANCE BY: HOPPING (SIZE 1 MINUTE, "
                                       "ADVANCE BY 10 SECONDS)")
        if kind != "HOPPING" and advance is not None:
            raise self.error(kind_tok, f"ADVANCE BY belongs to a HOPPING window, not {kind}")
        if kind == "HOPPING":
            if advance > size:
                raise self.error(kind_tok, f"window advance ({advance} ms) must not exceed its "
                                           f"size ({size} ms)")
            return ast.WindowSpec("SLIDING", None, size_ms=size, advance_ms=advance,
                                  pos=kind_tok.pos, grace_ms=grace)
        if kind == "SESSION":
            return ast.WindowSpec("SESSION", None, gap_ms=gap, pos=kind_tok.pos, grace_ms=grace)
        return ast.WindowSpec(kind, None, size_ms=size, pos=kind_tok.pos, grace_ms=grace)

    def ksql_duration(self, what: str, allow_zero: bool = False) -> int:
        tok = self.tok
        if tok.kind == INT and self.peek().kind == WORD and self.peek().upper in INTERVAL_UNITS_MS:
            self.advance()
            unit = self.advance().upper
            ms = tok.value * INTERVAL_UNITS_MS[unit]
        else:
            ms, tok = self.duration()
        if ms < 0 or (ms == 0 and not allow_zero):
            raise self.error(tok, f"{what} must be positive, got {ms} ms")
        if ms > MAX_WINDOW_MS:
            raise self.error(tok, f"{what} must be at most 36,500 days ({MAX_WINDOW_MS} ms), got "
                                  f"{ms} ms")
        return ms

    def duration(self) -> tuple[int, Token]:
        tok = self.tok
        if tok.kind == DURATION:
            self.advance()
            return tok.value, tok
        if self.is_kw(tok, "INTERVAL"):
            return self.interval().millis, tok
        raise self.expected("a duration (INTERVAL '1' MINUTE or 500ms, 30s, 1m, 2h, 1d)")

    def interval(self, calendar: bool = False) -> ast.IntervalLiteral:
        """``INTERVAL 'n' UNIT``, ``INTERVAL n UNIT``, ``INTERVAL 'n unit'``, ``INTERVAL '1m'``.
        With ``calendar`` (an interval in an expression) the unit may also be MONTH, QUARTER or
        YEAR; a window's size or a frame needs a fixed length."""
        start = self.expect_kw("INTERVAL")
        tok = self.tok
        units = "MILLISECOND, SECOND, MINUTE, HOUR, DAY or WEEK"
        if calendar:
            units = "MILLISECOND, SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, QUARTER or YEAR"
        known = {**INTERVAL_UNITS_MS, **INTERVAL_UNITS_MONTHS}
        if tok.kind in (INT, FLOAT):
            self.advance()
            amount_text = tok.text
            unit_tok = self.tok
            if unit_tok.kind != WORD or unit_tok.upper not in known:
                raise self.expected(f"an interval unit ({units})")
            self.advance()
            unit = unit_tok.upper
        elif tok.kind == STRING:
            self.advance()
            text = tok.value.strip()
            m = re.fullmatch(r"([-+]?(?:\d+\.?\d*|\.\d+))\s*([A-Za-z]*)", text)
            if not m:
                raise self.error(tok, f"invalid interval {tok.text}: expected a number, "
                                      f"e.g. INTERVAL '5' MINUTE")
            amount_text, inner_unit = m.group(1), m.group(2)
            if inner_unit:
                if inner_unit.upper() in known:
                    unit = inner_unit.upper()
                elif inner_unit.lower() in _SHORTHAND_MS and re.fullmatch(r"\d+", amount_text):
                    return ast.IntervalLiteral(int(amount_text) * _SHORTHAND_MS[inner_unit.lower()],
                                               pos=start.pos)
                else:
                    raise self.error(tok, f"invalid interval unit '{inner_unit}' in {tok.text}, "
                                          f"expected {units}")
                if self.is_kw(self.tok, *known):
                    raise self.expected("end of interval (the unit is already in the string)")
            else:
                unit_tok = self.tok
                if unit_tok.kind != WORD or unit_tok.upper not in known:
                    raise self.expected(f"an interval unit ({units})")
                self.advance()
                unit = unit_tok.upper
        else:
            raise self.expected("an interval amount, e.g. INTERVAL '5' MINUTE")
        if unit in INTERVAL_UNITS_MONTHS:
            return self.calendar_interval(start, tok, amount_text, unit, calendar)
        scale = INTERVAL_UNITS_MS[unit]
        # Decimal, not int/float: exact, and no limit on the digits a text may have (Python's
        # int() refuses more than 4300); the range is checked before anything large is built
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:  # pragma: no cover - the token rules admit only numbers
            raise self.error(tok, f"invalid interval amount {amount_text}") from None
        if amount.is_infinite() or abs(amount) > Decimal(INT64_MAX) / scale:
            raise self.error(tok, f"interval {_clip(amount_text)} {unit} is out of range (at most "
                                  f"{INT64_MAX} milliseconds)")
        with localcontext() as ctx:
            ctx.prec = len(amount_text) + 30  # exact: the product has no more digits than this
            exact = amount * scale
        if exact != exact.to_integral_value():
            raise self.error(tok, f"interval {_clip(amount_text)} {unit} is not a whole number "
                                  f"of milliseconds")
        return ast.IntervalLiteral(int(exact), pos=start.pos)

    def calendar_interval(self, start: Token, tok: Token, amount_text: str, unit: str,
                          allowed: bool) -> ast.IntervalLiteral:
        """``INTERVAL 'n' MONTH`` (QUARTER, YEAR): a whole number of months."""
        if not allowed:
            raise self.error(tok, f"a {unit.rstrip('S')} has no fixed length: a window's size, "
                                  f"advance or gap and a RANGE frame take MILLISECOND to WEEK "
                                  f"units (e.g. INTERVAL '30' DAY)")
        if not re.fullmatch(r"[-+]?\d+", amount_text):
            raise self.error(tok, f"interval {_clip(amount_text)} {unit} is not a whole number "
                                  f"of {unit.rstrip('S').lower()}s")
        months = int(amount_text[:40]) * INTERVAL_UNITS_MONTHS[unit] if len(amount_text) <= 40 \
            else MAX_INTERVAL_MONTHS + 1
        if abs(months) > MAX_INTERVAL_MONTHS:
            raise self.error(tok, f"interval {_clip(amount_text)} {unit} is out of range (at most "
                                  f"{MAX_INTERVAL_MONTHS} months)")
        return ast.IntervalLiteral(0, pos=start.pos, months=months)

    # ------------------------------------------------------------------------------------- WITH
    def properties(self) -> tuple[tuple[str, str], ...]:
        self.expect_punct("(", "'(' after WITH")
        props: list[tuple[str, str]] = []
        seen: set[str] = set()
        while True:
            key_tok = self.tok
            if key_tok.kind != STRING:
                raise self.expected("a property name in single quotes")
            self.advance()
            key = key_tok.value
            if key in seen:
                raise self.error(key_tok, f"duplicate property '{key}'")
            seen.add(key)
            if not self.at_op("="):
                raise self.expected(f"'=' after property '{key}'")
            self.advance()
            props.append((key, self.property_value()))
            if self.accept_punct(")"):
                break
            self.expect_punct(",", "',' or ')'")
        return tuple(props)

    def property_value(self) -> str:
        tok = self.tok
        if tok.kind == STRING:
            self.advance()
            return tok.value
        sign = ""
        if self.at_op("-", "+"):
            sign = tok.text
            self.advance()
            tok = self.tok
            if tok.kind not in (INT, FLOAT):
                raise self.expected("a number after the sign")
        if tok.kind in (INT, FLOAT, DURATION, WORD):
            self.advance()
            return sign + tok.text
        raise self.expected("a property value (a 'string', number or word)")

    # ------------------------------------------------------------------------------ expressions
    def expr(self) -> ast.Expr:
        """Every expression is parsed through here, so the depth limit is enforced here, once.

        Two depths are limited to MAX_EXPRESSION_DEPTH: the parser's own recursion (one level per
        nested ``(``, function call, CASE, CAST, ...: every nested expression comes back here),
        checked on entry before it can exhaust the stack; and the depth of the finished tree,
        which also grows without recursion (``a + b + ... + z`` and ``NOT NOT ... x`` are built
        in loops), checked once when the outermost expression is complete. Leaves the tree's
        height in self.height."""
        if self.nesting >= MAX_EXPRESSION_DEPTH:
            raise self.error(self.tok, _too_deep())
        self.nesting += 1
        try:
            e = self.expr_body()
        finally:
            self.nesting -= 1
        # Every method below leaves the height of the tree it built in self.height (exact but
        # for folded signs), so the walk that finds the node to blame runs only for a tree that
        # is too deep.
        if self.nesting == 0 and self.height > MAX_EXPRESSION_DEPTH:
            deep = _too_deep_node(e)
            if deep is not None:
                raise SqlError.at(self.sql, getattr(deep, "pos", None) or self.tok.pos, _too_deep())
        return e

    def expr_body(self) -> ast.Expr:
        """expr() without its checks: for an expression level already counted (parenthesized)."""
        tok = self.tok
        k = tok.kind
        if k in _OPERAND_KINDS or (k == WORD and tok.upper != "NOT"):
            nxt = self.peek()
            if _ends_expression(nxt):
                # one token and done (``x,``  ``1)``  ``'a' AS``): no operator to look for
                return self.primary()
            if nxt.kind == OP:  # ``a + 1 AS c``, ``x = 'y')``: three tokens and done
                e = self.simple_term(_OR)
                if e is not None:
                    return e
        return self.binary(_OR)

    def binary(self, min_prec: int) -> ast.Expr:
        """The expression at precedence ``min_prec`` or tighter (precedence climbing: one call
        per operand and per operator, instead of one per precedence level per operand; see the
        table at _PREC). Operators of one level associate to the left; AND and OR collect their
        terms into a balanced tree (_balanced)."""
        tok = self.tok
        if min_prec <= _NOT and tok.kind == WORD and tok.upper == "NOT":
            nots = []  # a loop, not recursion: NOT NOT ... x must not exhaust the stack
            while tok.kind == WORD and tok.upper == "NOT":
                self.chained(len(nots), tok)
                nots.append(self.advance())
                tok = self.tok
            left = self.binary(_CMP)
            for t in reversed(nots):
                left = ast.UnaryOp("NOT", left, pos=t.pos)
            self.height += len(nots)
        elif tok.kind == OP and (tok.value == "-" or tok.value == "+"):
            left = self.unary()
        else:  # postfix() inline: most operands have no sign and no cast
            left = self.primary()
            tok = self.tok
            if tok.kind == PUNCT and tok.value == "::":
                left = self._casts(left)
        return self._climb(left, self.height, min_prec)

    def _climb(self, left: ast.Expr, height: int, min_prec: int) -> ast.Expr:
        """binary() from its first operand on: ``left``, of ``height``."""
        links = 0  # operators applied to ``left`` in this call: each adds one level to the tree
        while True:
            tok = self.tok
            k = tok.kind
            if k == OP:
                prec = _OP_PREC.get(tok.value, 0)
            elif k == WORD:
                prec = _WORD_PREC.get(tok.upper, 0)
            else:
                prec = 0
            if prec < min_prec or prec == 0:
                self.height = height
                return left
            if prec == _OR or prec == _AND:
                word = tok.upper
                terms = [left]
                simple_term = self.simple_term
                while True:
                    t = self.tok
                    if not (t.kind == WORD and t.upper == word):
                        break
                    self.advance()
                    if self.chain_terms(word, terms):  # a run of them, read in C
                        height = height if height > 2 else 2
                    term = simple_term(prec + 1)
                    terms.append(self.binary(prec + 1) if term is None else term)
                    if self.height > height:
                        height = self.height
                height += (len(terms) - 1).bit_length()  # the balanced tree's height
                left = _as_in_list(word, terms) or _balanced(word, terms)
                continue
            if k == WORD and tok.upper == "NOT":
                nxt = self.peek()
                if not self.is_kw(nxt, "IN", "BETWEEN", "LIKE", "ILIKE"):
                    self.height = height
                    return left
            links = self.chained(links, tok)
            self.advance()
            if k == OP:
                right = self.binary(prec + 1)
                fn = _JSON_OPS.get(tok.value)
                left = (ast.FunctionCall(fn, (left, right), pos=left.pos) if fn is not None
                        else _new_binary(ast.BinaryOp, tok.value, left, right, left.pos))
            else:
                left = self._comparison_word(tok, left)
            height = (height if height > self.height else self.height) + 1

    def chain_terms(self, word: str, terms: list) -> int:
        """Append to ``terms`` the run of chain terms that starts at the current token, each
        followed by ``word`` (the chain's OR or AND, consumed): ``simple_term``'s terms of
        comparisons, read from the text without making tokens (velostream._core.sql_lex.
        scan_terms: a megabyte of ``a = 1 OR b = 's2' OR ...`` in a fraction of a second,
        docs/SQL.md "Limits"). The term after the last word is left to the caller; returns
        how many were read."""
        tok = self.tok
        if tok.kind not in _RUN_KINDS or self.peek().kind != OP:
            return 0
        found: list = []
        count, end, line, line_start = _sql_lex.scan_terms(
            self.sql, tok.offset, tok.line, tok.offset - tok.column + 1, word, ast.Column,
            ast.Literal, ast.BinaryOp, RESERVED, SYSTEM_COLUMNS, found)
        if count:
            terms.extend(found)
            self.links += count  # simple_term's link per term
            self._restart(end, line, line_start, 4 * count)
        return count

    def simple_term(self, min_prec: int) -> Optional[ast.Expr]:
        """``binary(min_prec)`` (min_prec at most _CMP) for the commonest term of a long AND /
        OR chain or select list, ``x = 1`` or ``a + 1``: an operand, a binary operator (not
        ``->``/``->>``), an operand, then a token that ends the term at ``min_prec`` (OR,
        AND, ``)``, ``,``, ``;``, AS, a clause word, the end; never an operator, all of which
        bind tighter). Operands are plain column names and literals (numbers, strings, TRUE,
        FALSE, NULL). The same node, height and links as the token-by-token path, in one step
        instead of a dozen calls (a megabyte of ``a = 1 OR b = 's2' OR ...``, docs/SQL.md
        "Limits"); None (nothing consumed) for anything else."""
        i = self.i
        toks = self.toks
        if i + 3 >= len(toks):
            self._read_to(i + 3)
            toks = self.toks
            if i + 3 >= len(toks):
                return None
        op, after = toks[i + 1], toks[i + 3]
        if op.kind != OP or op.value not in _SIMPLE_TERM_OPS:
            return None
        k = after.kind
        if k == OP:
            return None  # a tighter operator, or a looser one the caller reads anyway
        if k == WORD:
            p = _WORD_PREC.get(after.upper, 0)
            if p and p >= min_prec:
                return None
        elif k == PUNCT:
            if after.value not in (")", ",", ";"):
                return None  # x = y.z, x = f(...), x = 1::INT
        elif k != EOF:
            return None
        left = _leaf(toks[i])
        if left is None:
            return None
        right = _leaf(toks[i + 2])
        if right is None:
            return None
        self.links += 1  # the operator's link (see chained): 1, never near the limit
        self.i = i + 3
        self.tok = after
        self.height = 2
        return _new_binary(ast.BinaryOp, op.value, left, right, left.pos)

    def _comparison_word(self, tok: Token, left: ast.Expr) -> ast.Expr:
        """``left`` with a comparison written in words: IS [NOT] NULL, [NOT] IN (...),
        [NOT] BETWEEN ... AND ..., [NOT] [I]LIKE ... [ESCAPE ...]; ``tok`` (consumed) is its
        first word. Leaves in self.height the height of its operands other than ``left``."""
        if tok.upper == "IS":
            negated = bool(self.accept_kw("NOT"))
            if self.accept_kw("DISTINCT"):
                self.expect_kw("FROM", "FROM in IS [NOT] DISTINCT FROM")
                return _distinct_from(left, self.binary(_CONCAT), negated)
            if not self.accept_kw("NULL"):
                raise self.expected("NULL, NOT NULL or [NOT] DISTINCT FROM after IS")
            self.height = 0  # no operand but ``left``
            return ast.IsNull(left, negated, pos=left.pos)
        negated = tok.upper == "NOT"
        op = self.advance() if negated else tok
        if op.upper == "IN":
            return ast.InList(left, self.in_list(), negated, pos=left.pos)
        if op.upper == "BETWEEN":
            low = self.binary(_CONCAT)
            low_height = self.height
            self.expect_kw("AND", "AND in BETWEEN ... AND ...")
            high = self.binary(_CONCAT)
            self.height = max(self.height, low_height)
            return ast.Between(left, low, high, negated, pos=left.pos)
        pattern = self.binary(_CONCAT)
        escape = None
        if self.accept_kw("ESCAPE"):
            pattern_height = self.height
            escape = self.binary(_CONCAT)
            self.height = max(self.height, pattern_height)
        return ast.Like(left, pattern, negated, op.upper == "ILIKE", pos=left.pos, escape=escape)

    # The levels of the grammar by name, for callers that want one (the climb does them all)
    def or_expr(self) -> ast.Expr:
        return self.binary(_OR)

    def and_expr(self) -> ast.Expr:
        return self.binary(_AND)

    def not_expr(self) -> ast.Expr:
        return self.binary(_NOT)

    def comparison(self) -> ast.Expr:
        return self.binary(_CMP)

    def concat(self) -> ast.Expr:
        return self.binary(_CONCAT)

    def additive(self) -> ast.Expr:
        return self.binary(_ADD)

    def multiplicative(self) -> ast.Expr:
        return self.binary(_MUL)

    def chained(self, links: int, tok: Token) -> int:
        """An early exit from the loops that deepen the tree without recursion (``a + b + ...``,
        ``NOT NOT ...``, ``- - ...``, ``x::INT::TEXT...``): ``tok`` would add link ``links + 1``,
        and a chain of 64 links is already 65 levels deep. It makes a 1 MB chain fail at once,
        at the operator past the limit; expr() still makes the exact check on the whole tree.
        Returns the new number of links."""
        if links + 1 >= MAX_EXPRESSION_DEPTH:
            raise self.error(tok, _too_deep())
        self.links += 1
        return links + 1

    def in_list(self) -> tuple[ast.Expr, ...]:
        self.expect_punct("(", "'(' after IN")
        if self.at_kw("SELECT"):
            raise self.unsupported(self.tok, "subqueries are not supported in IN")
        items = [self.expr()]
        height = self.height
        while self.accept_punct(","):
            self.simple_items(items)
            items.append(self.expr())
            if self.height > height:
                height = self.height
        self.expect_punct(")", "',' or ')'")
        self.height = height  # of the tallest item
        return tuple(items)

    def simple_items(self, items: list, select: bool = False) -> None:
        """Append to ``items`` the run of simple list items that starts at the current token:
        numbers, strings, NULL, TRUE, FALSE and plain column names, each followed by a comma
        (the item after the last comma is left to the caller). They are read from the text
        without making tokens (a compiled scan, and a regular expression for the items it
        leaves), so an IN list or select list of a megabyte takes a fraction of a second
        (docs/SQL.md, "Limits"). Anything else (a sign, an
        operator, a comment, a reserved word, a number out of range) ends the run, and the
        usual parsing goes on from there. With ``select``, items are select items (no alias),
        and the repeats of a column name in the run share its first node (each item keeps its
        own position); ``column + integer [AS alias]`` and ``column - integer [AS alias]`` are
        read too (a generated select list's commonest computed item), each with its own
        nodes."""
        tok = self.tok
        nxt = self.peek()
        if tok.kind not in _RUN_KINDS or not (
                self.is_punct(nxt, ",") or (select and tok.kind == WORD and nxt.kind == OP
                                            and (nxt.value == "+" or nxt.value == "-"))):
            return
        sql = self.sql
        at = tok.offset
        line, line_start = tok.line, at - tok.column + 1
        found = []
        append = found.append
        # the compiled scan reads the items it can decide (velostream._core.sql_lex.scan_items);
        # the one it stops at (a float, a longer number, a character outside ASCII) is read
        # here with the regular expression, then the compiled scan goes on after it
        scan, match = _sql_lex.scan_items, _RUN_ITEM.match
        # the nodes are made as their dataclass __init__ would make them (every field, in order),
        # their __dict__ filled in one call: frozen dataclasses set each field through
        # object.__setattr__, a third of the time of a run of 300,000 items
        new = object.__new__
        literal, column, select_item = ast.Literal, ast.Column, ast.SelectItem
        reserved, system = RESERVED, SYSTEM_COLUMNS
        end = at
        tokens = 0  # the run's tokens, commas included
        binary = ast.BinaryOp if select else None  # column + integer items, in a select list
        while True:
            spanned, end, line, line_start = scan(sql, end, line, line_start, select, column,
                                                  literal, select_item, reserved, system, found,
                                                  binary)
            tokens += spanned
            m = match(sql, end)
            if m is None:
                break
            kind = m.lastgroup
            text = m.group(kind)
            start = m.start()
            pos = (line, start - line_start + 1)
            if kind == "word":
                upper = text.upper()
                if upper in reserved:
                    if upper == "NULL":
                        value, typ = None, "NULL"
                    elif upper == "TRUE" or upper == "FALSE":
                        value, typ = upper == "TRUE", "BOOLEAN"
                    else:
                        break
                    e = new(literal)
                    e.__dict__.update(value=value, type=typ, pos=pos)
                else:
                    e = new(column)
                    e.__dict__.update(name=upper if upper in system else text.lower(), table=None,
                                      quoted=False, pos=pos)
            else:
                if kind == "int":
                    if len(text) > 18:
                        digits = text.lstrip("0") or "0"
                        if len(digits) > 19 or int(digits) > INT64_MAX:
                            break  # out of range: the usual path says so at this literal
                    value, typ = int(text), "INTEGER"
                elif kind == "str":
                    value, typ = text[1:-1].replace("''", "'"), "STRING"
                else:
                    value, typ = float(text), "DOUBLE"
                e = new(literal)
                e.__dict__.update(value=value, type=typ, pos=pos)
            if select:
                item = new(select_item)
                item.__dict__.update(expr=e, alias=None, pos=pos)
                append(item)
            else:
                append(e)
            tokens += 2
            end = m.end()
            whole = m.group()
            if "\n" in whole or "\r" in whole:  # lines end at \r\n, \r or \n (as in the lexer)
                line += whole.count("\n") + whole.count("\r") - whole.count("\r\n")
                line_start = start + max(whole.rfind("\n"), whole.rfind("\r")) + 1
        if found:
            items.extend(found)
            self._restart(end, line, line_start, tokens)

    def unary(self) -> ast.Expr:
        tok = self.tok
        if not (tok.kind == OP and (tok.value == "-" or tok.value == "+")):
            return self.postfix()
        height = 1  # when the smallest BIGINT is read whole
        signs = []  # a loop, not recursion: - - - ... x must not exhaust the stack
        while self.at_op("-", "+"):
            self.chained(len(signs), self.tok)
            signs.append(self.advance())
        if (signs and signs[-1].value == "-" and self.tok.kind == INT
                and self.tok.value == INT64_MAX + 1 and not self.is_punct(self.peek(), "::")):
            # -9223372036854775808, the smallest BIGINT: its magnitude alone is out of range
            self.advance()
            operand: ast.Expr = ast.Literal(INT64_MIN, "INTEGER", pos=signs.pop().pos)
        else:
            operand = self.postfix()
            height = self.height
        self.height = height + len(signs)  # a bound: signs folded into a literal add no level
        for tok in reversed(signs):
            # fold signs into numeric literals: -5 is Literal(-5), not UnaryOp('-', Literal(5))
            if isinstance(operand, ast.Literal) and operand.type in ("INTEGER", "DOUBLE"):
                value = -operand.value if tok.value == "-" else operand.value
                if operand.type == "INTEGER" and value > INT64_MAX:
                    raise self.error(tok, f"integer {value} is out of range for BIGINT")
                operand = ast.Literal(value, operand.type, pos=tok.pos)
            elif isinstance(operand, ast.IntervalLiteral):
                sign = -1 if tok.value == "-" else 1
                operand = ast.IntervalLiteral(sign * operand.millis, pos=tok.pos,
                                              months=sign * operand.months)
            else:
                operand = ast.UnaryOp(tok.value, operand, pos=tok.pos)
        return operand

    def postfix(self) -> ast.Expr:
        e = self.primary()
        tok = self.tok
        if not (tok.kind == PUNCT and tok.value == "::"):
            return e
        return self._casts(e)

    def _casts(self, e: ast.Expr) -> ast.Expr:
        """``e::type::type...`` (postfix from its operand on)."""
        height = self.height
        links = 0
        while self.at_punct("::"):
            links = self.chained(links, self.advance())
            e = ast.Cast(e, self.type_name(), pos=e.pos)
        self.height = height + links
        return e

    def primary(self) -> ast.Expr:
        tok = self.tok
        k = tok.kind
        self.height = 1  # a leaf; ( expr ), CASE, CAST and calls set their own
        if k == INT:
            if tok.value > INT64_MAX:  # 2**63: only as -9223372036854775808 (see unary)
                raise self.error(tok, f"integer literal {tok.text} is out of range for BIGINT "
                                      f"(at most {INT64_MAX}; velostream has no HUGEINT: write a "
                                      f"DOUBLE such as 9.3e18)")
            self.advance()
            return _new_literal(ast.Literal, tok.value, "INTEGER", (tok.line, tok.column))
        if k == FLOAT:
            self.advance()
            return _new_literal(ast.Literal, tok.value, "DOUBLE", (tok.line, tok.column))
        if k == STRING:
            self.advance()
            return _new_literal(ast.Literal, tok.value, "STRING", (tok.line, tok.column))
        if k == DURATION:
            self.advance()
            return ast.IntervalLiteral(tok.value, pos=tok.pos)
        if k == PUNCT and tok.value == "(":
            return self.parenthesized()
        if k == WORD:
            u = tok.upper
            nxt = self.peek()
            if u in ("TRUE", "FALSE"):
                self.advance()
                return ast.Literal(u == "TRUE", "BOOLEAN", pos=tok.pos)
            if u == "NULL":
                self.advance()
                return ast.Literal(None, "NULL", pos=tok.pos)
            if u == "CASE":
                return self.case()
            if u == "INTERVAL":
                return self.interval(calendar=True)
            if nxt.kind == STRING and u in ("TIMESTAMP", "DATETIME", "DATE", "TIME"):
                # a typed literal: TIMESTAMP '2024-01-01 10:00:00' is CAST('...' AS TIMESTAMP),
                # DATE '2024-03-05' a DATE, folded when bound (docs/SQL.md §2); there is no TIME
                # type to make
                if u == "TIME":
                    raise self.unsupported(tok, "TIME '...' literals are not supported: velostream "
                                                "has no TIME type (TIMESTAMP '2024-01-01 00:00:00' "
                                                "is a TIMESTAMP)")
                self.advance()
                return ast.Literal(self.advance().value, "DATE" if u == "DATE" else "TIMESTAMP",
                                   pos=tok.pos)
            if u in ("CURRENT_TIMESTAMP", "NOW", "CURRENT_DATE") \
                    and not (nxt.kind == PUNCT and nxt.value == "("):
                self.advance()  # the SQL standard's bare CURRENT_TIMESTAMP: NOW()
                return ast.FunctionCall("CURRENT_DATE" if u == "CURRENT_DATE" else "NOW", (),
                                        pos=tok.pos)
            if u in ("CAST", "TRY_CAST") and nxt.kind == PUNCT and nxt.value == "(":
                return self.cast()
            if u == "EXISTS" and nxt.kind == PUNCT and nxt.value == "(":
                raise self.unsupported(tok, "EXISTS subqueries are not supported")
            if u in RESERVED:
                raise self.expected("an expression")
            if nxt.kind == PUNCT:
                if nxt.value == "(":
                    return self.function_call()
                if nxt.value == ".":
                    return self.column_ref()
            self.advance()  # a plain column name (column_ref, without its checks)
            return _new_column(ast.Column, u if u in SYSTEM_COLUMNS else tok.text.lower(),
                               (tok.line, tok.column))
        if k == QIDENT:
            return self.column_ref()
        raise self.expected("an expression")

    def parenthesized(self) -> ast.Expr:
        """``( expr )``, and a run of them: ``((((x) + 1)))`` is read in one loop here, not one
        recursion through every precedence level per parenthesis (a megabyte of nested-but-legal
        parentheses). Each ``(`` is an expression level of its own, as if expr() were called
        for it: it counts toward the nesting limit, checked at the token after it."""
        opened = 0
        try:
            while self.tok.kind == PUNCT and self.tok.value == "(":
                run = self._paren_run(_OPEN_RUN, MAX_EXPRESSION_DEPTH - self.nesting)
                if run:  # n of them read from the text at once (no SELECT can follow but the last)
                    self.nesting += run
                    opened += run
                    continue
                self.advance()
                if self.at_kw("SELECT"):
                    raise self.unsupported(self.tok, "subqueries are not supported")
                if self.nesting >= MAX_EXPRESSION_DEPTH:
                    raise self.error(self.tok, _too_deep())
                self.nesting += 1
                opened += 1
            if self.at_kw("SELECT"):
                raise self.unsupported(self.tok, "subqueries are not supported")
            e = self.expr_body()
            while True:
                run = self._paren_run(_CLOSE_RUN, opened) if opened > 1 else 0
                if run:
                    closed = run
                else:
                    self.expect_punct(")", "')'")
                    closed = 1
                self.nesting -= closed
                opened -= closed
                if not opened:
                    return e  # a parenthesis adds no node: self.height is the inner one's
                # the enclosing level goes on after its (...) operand: casts, then operators
                tok = self.tok
                if tok.kind == PUNCT and tok.value == ")":
                    continue
                if tok.kind == PUNCT and tok.value == "::":
                    e = self._casts(e)
                e = self._climb(e, self.height, _OR)
        finally:
            self.nesting -= opened

    def _paren_run(self, pattern: re.Pattern, most: int) -> int:
        """Read up to ``most`` of the parentheses of a run (``pattern``: ``( ( (`` or ``) ) )``
        with spaces between) from the text at the current token, and go on tokenizing after
        them; their number, or 0 (fewer than two, a line break or comment among them: the
        caller reads them one token at a time)."""
        tok = self.tok
        m = pattern.match(self.sql, tok.offset)
        if m is None:
            return 0
        text = m.group()
        if "\n" in text or "\r" in text:
            return 0
        blanks = text.count(" ") + text.count("\t")
        n = min(len(text) - blanks, most)
        if n < 2:
            return 0
        if n == len(text) - blanks:
            end = m.end()
        elif not blanks:
            end = tok.offset + n
        else:  # just after the n-th parenthesis
            end = tok.offset + [i for i, c in enumerate(text) if c in "()"][n - 1] + 1
        self._restart(end, tok.line, tok.offset - tok.column + 1, n)
        return n

    def column_ref(self) -> ast.Column:
        tok = self.tok
        if not self.is_identifier(tok):
            raise self.expected("a column name")
        self.advance()
        if self.at_punct("."):
            self.advance()
            col = self.tok
            if self.at_op("*"):
                raise self.error(col, f"{tok.text}.* is only allowed as a select item")
            if not self.is_identifier(col):
                raise self.expected("a column name after '.'")
            self.advance()
            if self.at_punct("."):
                raise self.unsupported(self.tok, "names with more than two parts (a.b.c) are not "
                                                 "supported")
            table = self.ident_of(tok)[0]
            return ast.Column(self.column_name(col), table, col.kind == QIDENT, pos=tok.pos)
        return ast.Column(self.column_name(tok), None, tok.kind == QIDENT, pos=tok.pos)

    def case(self) -> ast.Case:
        start = self.expect_kw("CASE")
        height = 0  # of the tallest operand
        operand = None
        if not self.at_kw("WHEN"):
            operand = self.expr()
            height = self.height
        whens = []
        while self.accept_kw("WHEN"):
            cond = self.expr()
            cond_height = self.height
            self.expect_kw("THEN")
            whens.append((cond, self.expr()))
            height = max(height, cond_height, self.height)
        if not whens:
            raise self.expected("WHEN")
        else_ = None
        if self.accept_kw("ELSE"):
            else_ = self.expr()
            height = max(height, self.height)
        self.expect_kw("END", "WHEN, ELSE or END")
        self.height = height + 1
        return ast.Case(operand, tuple(whens), else_, pos=start.pos)

    def cast(self) -> ast.Cast:
        start = self.advance()  # CAST or TRY_CAST
        self.expect_punct("(")
        operand = self.expr()
        height = self.height
        self.expect_kw("AS", f"AS in {start.upper}(... AS type)")
        type_ = self.type_name()
        self.expect_punct(")", "')'")
        self.height = height + 1
        return ast.Cast(operand, type_, pos=start.pos, try_=start.upper == "TRY_CAST")

    def type_name(self) -> ast.TypeName:
        tok = self.tok
        if tok.kind != WORD or tok.upper not in TYPE_NAMES:
            raise self.expected("a type name (" + ", ".join(
                ["INTEGER", "BIGINT", "DOUBLE", "FLOAT", "DECIMAL(p, s)", "VARCHAR", "STRING",
                 "BOOLEAN", "TIMESTAMP", "DATE"]) + ")")
        self.advance()
        name = TYPE_NAMES[tok.upper]
        if tok.upper == "DOUBLE":
            self.accept_kw("PRECISION")
        params: list[int] = []
        if self.at_punct("(") and name in ("DECIMAL", "VARCHAR"):
            self.advance()
            while True:
                p = self.tok
                if p.kind != INT:
                    raise self.expected("an integer type parameter")
                self.advance()
                params.append(p.value)
                if not self.accept_punct(","):
                    break
            self.expect_punct(")", "')'")
            limit = 2 if name == "DECIMAL" else 1
            if len(params) > limit:
                raise self.error(tok, f"{tok.upper} takes at most {limit} parameter(s)")
        if name == "DECIMAL":
            if not params:
                params = list(DECIMAL_DEFAULT)
            elif len(params) == 1:
                params.append(0)
            precision, scale = params
            if not 1 <= precision <= DECIMAL_MAX_PRECISION:
                raise self.error(tok, f"DECIMAL precision must be between 1 and "
                                      f"{DECIMAL_MAX_PRECISION}, got {precision}")
            if not 0 <= scale <= precision:
                raise self.error(tok, f"DECIMAL scale must be between 0 and the precision "
                                      f"({precision}), got {scale}")
            return ast.TypeName("DECIMAL", (precision, scale))
        return ast.TypeName(name)  # VARCHAR(n): the length is not enforced (as in DuckDB)

    def function_call(self) -> ast.FunctionCall:
        name_tok = self.advance()
        name = name_tok.upper
        if name in _GROUP_WINDOW_NAMES:
            self.group_window_calls += 1
        self.expect_punct("(")
        distinct = False
        args: list[ast.Expr] = []
        height = 1  # of the tallest argument (or of COUNT(*)'s star)
        if self.at_op("*"):
            star = self.advance()
            args.append(ast.Star(pos=star.pos))
            self.expect_punct(")", "')' after *")
        elif self.accept_punct(")"):
            pass
        else:
            if self.accept_kw("DISTINCT"):
                distinct = True
            elif self.at_kw("ALL") and not (self.peek().kind in (PUNCT, OP)):
                self.advance()
            trim_height = 0
            if name == "POSITION":  # POSITION(needle IN text): STRPOS(text, needle)
                needle = self.binary(_CONCAT)
                self.expect_kw("IN", "IN after POSITION's first argument")
                args.append(self.expr())
                args.append(needle)
                name = "STRPOS"
            elif name == "TRIM" and (self.at_kw("FROM") or self._at_trim_side()):
                # TRIM([BOTH | LEADING | TRAILING] [chars] FROM s): TRIM, LTRIM or RTRIM(s, chars)
                side = "BOTH" if self.at_kw("FROM") else self.advance().upper
                chars = None
                if not self.at_kw("FROM"):
                    chars = self.expr()
                    trim_height = self.height
                self.expect_kw("FROM", f"FROM in TRIM({side} characters FROM text)")
                args.append(self.expr())
                if chars is not None:
                    args.append(chars)
                name = {"BOTH": "TRIM", "LEADING": "LTRIM", "TRAILING": "RTRIM"}[side]
            else:
                args.append(self.expr())
            height = self.height
            if trim_height > height:  # TRIM's characters, taller than its text
                height = trim_height
            if name == "EXTRACT" and self.at_kw("FROM"):
                # EXTRACT(part FROM ts): DATE_PART('part', ts) (docs/FUNCTIONS.md)
                part = args[0]
                if isinstance(part, ast.Column) and part.table is None:
                    part = ast.Literal(part.name.lower(), "STRING", pos=part.pos)
                self.advance()
                args = [part, self.expr()]
                height = max(height, self.height)
                name = "DATE_PART"
            elif name == "TRIM" and self.at_kw("FROM"):
                # TRIM(chars FROM s): TRIM(s, chars)
                self.advance()
                args = [self.expr(), args[0]]
                height = max(height, self.height)
            elif name == "SUBSTRING" and self.at_kw("FROM"):
                self.advance()
                args.append(self.expr())
                height = max(height, self.height)
                if self.accept_kw("FOR"):
                    args.append(self.expr())
                    height = max(height, self.height)
            else:
                while self.accept_punct(","):
                    self.simple_items(args)
                    args.append(self.expr())
                    if self.height > height:
                        height = self.height
            self.expect_punct(")", "',' or ')'")
        if self.at_kw("WITHIN") and self.is_kw(self.peek(), "GROUP"):
            # f(fraction) WITHIN GROUP (ORDER BY x): the standard spelling of f(x, fraction)
            self.advance()
            self.advance()
            self.expect_punct("(", "'(' after WITHIN GROUP")
            self.expect_kw("ORDER", "ORDER BY in WITHIN GROUP (...)")
            self.expect_kw("BY", "BY after ORDER")
            ordered = self.expr()
            height = max(height, self.height)
            if self.at_kw("DESC"):
                raise self.unsupported(self.tok, "WITHIN GROUP (ORDER BY ... DESC) is not "
                                                 "supported (ORDER BY ... ASC is)")
            self.accept_kw("ASC")
            self.expect_punct(")", "')' after WITHIN GROUP (ORDER BY ...")
            if len(args) != 1 or distinct:
                raise self.error(name_tok, f"{name}(...) WITHIN GROUP takes one argument, the "
                                           "fraction")
            args.insert(0, ordered)
        filt = None
        if self.at_kw("FILTER") and self.peek().kind == PUNCT and self.peek().value == "(":
            self.advance()  # agg(...) FILTER (WHERE cond): one aggregate's input (docs/SQL.md §5)
            self.advance()
            self.expect_kw("WHERE", "WHERE after FILTER (")
            filt = self.expr()
            height = max(height, self.height)
            self.expect_punct(")", "')' after the FILTER condition")
        over = None
        if self.at_kw("OVER"):
            over = self.over()
            height = max(height, self.height)
        self.height = height + 1
        return ast.FunctionCall(name, tuple(args), distinct, over, pos=name_tok.pos, filter=filt)

    def _at_trim_side(self) -> bool:
        """At BOTH, LEADING or TRAILING as TRIM's keyword, not a column of that name: a
        column would be followed by ',', ')' or an operator, the keyword by FROM or the
        characters to trim."""
        if not self.at_kw("BOTH", "LEADING", "TRAILING"):
            return False
        nxt = self.peek()
        if nxt.kind == WORD:
            return nxt.upper not in _WORD_PREC
        return nxt.kind in (STRING, INT, FLOAT, QIDENT) or (nxt.kind == PUNCT and nxt.value == "(")

    def over(self) -> ast.RowsOver:
        over_tok = self.advance()
        shape = "OVER (ROWS WINDOW BUFFER n ROWS [PARTITION BY ...] [ORDER BY ...])"
        if not self.at_punct("("):
            raise self.expected(f"'(' after OVER: {shape}")
        self.advance()
        buffer_rows = None
        frame, range_ms = None, 0  # the frames without a row buffer (ast.RowsOver)
        partition_by: Optional[tuple] = None
        order_by: Optional[tuple] = None
        height = 0  # of the tallest PARTITION BY expression or ORDER BY item
        while not self.at_punct(")"):
            tok = self.tok
            if self.is_kw(tok, "ROWS", "RANGE") and (buffer_rows is not None or frame is not None):
                raise self.error(tok, "duplicate frame (ROWS / RANGE) in OVER (...)")
            if self.is_kw(tok, "ROWS"):
                self.advance()
                standard = self.standard_frame(shape)
                if standard == "UNBOUNDED":  # ROWS [BETWEEN] UNBOUNDED PRECEDING [AND CURRENT ROW]
                    frame = standard
                    continue
                if standard is not None:  # ROWS BETWEEN n PRECEDING AND CURRENT ROW
                    buffer_rows = standard
                    continue
                self.expect_kw("WINDOW", "WINDOW BUFFER n ROWS after ROWS")
                self.expect_kw("BUFFER", "BUFFER n ROWS after ROWS WINDOW")
                n = self.tok
                if n.kind != INT:
                    raise self.expected("the buffer size (a positive integer) after ROWS WINDOW BUFFER")
                if n.value < 1:
                    raise self.error(n, f"the ROWS WINDOW BUFFER size must be at least 1, got {n.value}")
                if n.value > MAX_BUFFER_ROWS:
                    raise self.error(n, f"the ROWS WINDOW BUFFER size must be at most "
                                        f"{MAX_BUFFER_ROWS:,} rows, got {n.value}")
                self.advance()
                self.expect_kw("ROWS", "ROWS after the buffer size")
                buffer_rows = n.value
            elif self.is_kw(tok, "PARTITION"):
                if partition_by is not None:
                    raise self.error(tok, "duplicate PARTITION BY in OVER (...)")
                self.advance()
                self.expect_kw("BY", "BY after PARTITION")
                items = [self.expr()]
                height = max(height, self.height)
                while self.accept_punct(","):
                    items.append(self.expr())
                    height = max(height, self.height)
                partition_by = tuple(items)
            elif self.is_kw(tok, "ORDER"):
                if order_by is not None:
                    raise self.error(tok, "duplicate ORDER BY in OVER (...)")
                self.advance()
                self.expect_kw("BY", "BY after ORDER")
                order = [self.order_item(in_over=True)]
                height = max(height, self.height)
                while self.accept_punct(","):
                    order.append(self.order_item(in_over=True))
                    height = max(height, self.height)
                order_by = tuple(order)
            elif self.is_kw(tok, "RANGE"):
                self.advance()
                frame, range_ms = "RANGE", self.range_frame()
            elif self.is_kw(tok, "GROUPS"):
                raise self.unsupported(tok, f"{tok.upper} frames are not supported: {shape}")
            else:
                if tok.kind == EOF:
                    raise self.expected("')' to close OVER (")
                raise self.expected("ROWS WINDOW BUFFER, PARTITION BY, ORDER BY or ')' in OVER (...)")
        close = self.advance()
        self.height = height + 1
        # without a buffer: ROW_NUMBER's top-N and deduplication forms (docs/SQL.md §8), else
        # the planner's error (planner._add_analytic)
        return ast.RowsOver(buffer_rows, partition_by or (), order_by or (), pos=over_tok.pos,
                            close_pos=close.pos, frame=frame, range_ms=range_ms)

    def range_frame(self) -> int:
        """After RANGE: ``BETWEEN INTERVAL '...' PRECEDING AND CURRENT ROW`` (or ``INTERVAL
        '...' PRECEDING``), the rows of the key whose ORDER BY time lies in [t - d, t]
        (docs/SQL.md §6); returns d in milliseconds."""
        between = bool(self.accept_kw("BETWEEN"))
        if not self.at_kw("INTERVAL"):
            raise self.unsupported(self.tok, "a RANGE frame must be RANGE BETWEEN INTERVAL '...' "
                                             "PRECEDING AND CURRENT ROW (state bounded by time)")
        width = self.interval()
        if width.millis < 0:
            raise self.error(self.tok, "a RANGE frame's INTERVAL must not be negative")
        self.expect_kw("PRECEDING", "PRECEDING after the RANGE interval")
        if between:
            self.frame_end()
        return width.millis

    def frame_end(self) -> None:
        """``AND CURRENT ROW``, the only end a frame may have: the rows after the current one
        have not arrived yet."""
        self.expect_kw("AND", "AND CURRENT ROW")
        if not self.at_kw("CURRENT"):
            raise self.unsupported(self.tok, "a frame must end at CURRENT ROW: the rows after it "
                                             "have not arrived yet")
        self.advance()
        self.expect_kw("ROW", "ROW after CURRENT")

    def standard_frame(self, shape: str):
        """After ROWS: the standard ``BETWEEN n PRECEDING AND CURRENT ROW`` (or ``n PRECEDING``),
        which is a buffer of n + 1 rows (docs/SQL.md §6); ``"UNBOUNDED"`` for ``[BETWEEN]
        UNBOUNDED PRECEDING [AND CURRENT ROW]`` (running aggregates); None when ROWS WINDOW
        BUFFER follows. Frames this engine cannot keep in bounded state are refused."""
        if self.at_kw("WINDOW"):
            return None
        between = bool(self.accept_kw("BETWEEN"))
        tok = self.tok
        if self.at_kw("UNBOUNDED"):
            self.advance()
            self.expect_kw("PRECEDING", "PRECEDING after UNBOUNDED")
            if between:
                self.frame_end()
            return "UNBOUNDED"
        if self.at_kw("CURRENT"):
            raise self.unsupported(tok, f"ROWS {'BETWEEN ' if between else ''}CURRENT ROW ... "
                                        f"frames are not supported: use ROWS BETWEEN n "
                                        f"PRECEDING AND CURRENT ROW or {shape}")
        if tok.kind != INT:
            raise self.expected("n PRECEDING (or WINDOW BUFFER n ROWS) after ROWS")
        n = self.advance()
        self.expect_kw("PRECEDING", "PRECEDING after the row count")
        if between:
            self.frame_end()
        if n.value + 1 > MAX_BUFFER_ROWS:
            raise self.error(n, f"a frame of {n.value} preceding rows keeps more than "
                                f"{MAX_BUFFER_ROWS:,} rows per key")
        return n.value + 1

    def order_item(self, in_over: bool = False) -> ast.OrderItem:
        e = self.expr()
        self.height += 1  # the OrderItem's own level
        descending = False
        if self.at_kw("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        nulls_first = False
        if self.at_kw("NULLS"):
            if in_over:
                raise self.unsupported(self.tok, "NULLS FIRST/LAST is not supported in OVER (...)")
            self.advance()
            if not self.at_kw("FIRST", "LAST"):
                raise self.expected("FIRST or LAST after NULLS")
            nulls_first = self.advance().upper == "FIRST"
        return ast.OrderItem(e, descending, nulls_first)


# ------------------------------------------------------------------ window table functions
_TVF_COLUMNS = {"window_start": "_WINDOW_START", "window_end": "_WINDOW_END"}


def _window_columns(items, clauses):
    """A window table function's ``window_start`` / ``window_end`` (and ``window_time``, its end
    - 1) become the window columns; they leave GROUP BY, where the window already groups."""
    def tvf_name(e):
        return (isinstance(e, ast.Column) and not e.quoted
                and e.name.lower() in (*_TVF_COLUMNS, "window_time"))

    def window_column(e):
        if not tvf_name(e):
            return None  # its children are visited (CASE's WHEN / THEN pairs too)
        if e.name.lower() == "window_time":
            return ast.BinaryOp("-", ast.Column("_WINDOW_END", pos=e.pos),
                                ast.Literal(1, "INTEGER", pos=e.pos), pos=e.pos)
        return ast.Column(_TVF_COLUMNS[e.name.lower()], pos=e.pos)

    def rewrite(e):
        return _replace_nodes(e, window_column)

    new_items = []
    for item in items:
        alias = item.alias
        if alias is None and tvf_name(item.expr):
            alias = item.expr.name.lower()
        new_items.append(dataclasses.replace(item, expr=rewrite(item.expr), alias=alias))
    clauses = dict(clauses)
    if "GROUP BY" in clauses:
        clauses["GROUP BY"] = tuple(g for g in clauses["GROUP BY"] if not tvf_name(g))
    for name in ("HAVING", "ORDER BY"):
        if name in clauses:
            clauses[name] = (tuple(rewrite(x) for x in clauses[name]) if name == "ORDER BY"
                             else rewrite(clauses[name]))
    return new_items, clauses


# ------------------------------------------------------------ Flink's group window functions
# GROUP BY TUMBLE(ts, size) / HOP(ts, slide, size) / SESSION(ts, gap): the native window kind
# each means and the durations it takes after its time column (docs/SQL.md §10)
_GROUP_WINDOWS = {"TUMBLE": ("TUMBLING", ("size",)), "HOP": ("SLIDING", ("slide", "size")),
                  "SESSION": ("SESSION", ("gap",))}
# their auxiliary functions (TUMBLE_START, HOP_END, SESSION_ROWTIME, ...): window, part
_GROUP_WINDOW_AUX = {f"{w}_{part}": (w, part) for w in _GROUP_WINDOWS
                     for part in GROUP_WINDOW_AUX_PARTS}
_GROUP_WINDOW_NAMES = GROUP_WINDOW_NAMES
_DURATION_UNITS = (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000),
                   ("SECOND", 1000), ("MILLISECOND", 1))


def _group_window(sql: str, items, clauses, tvf_window, joins):
    """Flink's group window functions (docs/SQL.md §10): ``GROUP BY TUMBLE(ts, size), k`` is
    ``GROUP BY k WINDOW TUMBLING(ts, size)``, ``HOP(ts, slide, size)`` is ``SLIDING(ts, size,
    slide)`` and ``SESSION(ts, gap)`` is ``SESSION(ts, gap)``: the same WindowSpec the WINDOW
    clause builds, so planning and emission are the WINDOW clause's. In the select list, HAVING
    and ORDER BY, ``TUMBLE_START`` / ``_END`` / ``_ROWTIME`` (with the group window's arguments)
    are ``_WINDOW_START``, ``_WINDOW_END`` and ``_WINDOW_END - 1``. Anywhere else these
    functions are an error."""
    group_by = clauses.get("GROUP BY", ())
    calls = [g for g in group_by if isinstance(g, ast.FunctionCall) and g.name in _GROUP_WINDOWS]
    window_call = calls[0] if calls else None
    if window_call is not None:
        if len(calls) > 1:
            raise SqlError.at(sql, calls[1].pos, f"a second group window {calls[1].name}(...) in "
                                                 f"GROUP BY: a query has one window")
        if tvf_window is not None:
            raise SqlError.at(sql, window_call.pos, f"a window table function in FROM and the "
                                                    f"group window {window_call.name}(...) in "
                                                    f"GROUP BY: give the window once")
        if "WINDOW" in clauses:
            raise SqlError.at(sql, window_call.pos, f"the group window {window_call.name}(...) "
                                                    f"in GROUP BY and a WINDOW clause: give the "
                                                    f"window once")
        window = _group_window_spec(sql, window_call)

    def replace(e, where):
        """The window column a TUMBLE_START(...) call names (None: look inside ``e``)."""
        if type(e) is not ast.FunctionCall:
            return None
        if e.name in _GROUP_WINDOWS:
            raise SqlError.at(sql, e.pos, f"{e.name}(...) is a group window: it stands alone in "
                                          f"GROUP BY (GROUP BY {e.name}(...), k), and "
                                          f"{e.name}_START(...) / {e.name}_END(...) select its "
                                          f"bounds")
        if e.name not in _GROUP_WINDOW_AUX:
            return None
        family, part = _GROUP_WINDOW_AUX[e.name]
        if e.distinct or e.filter is not None or e.over is not None:
            raise SqlError.at(sql, e.pos, f"{e.name}(...) takes no DISTINCT, FILTER or OVER")
        if part == "PROCTIME":
            raise UnsupportedError.at(sql, e.pos, f"{e.name}: processing time is not supported; "
                                                  f"windows run on event time (docs/SQL.md §3): "
                                                  f"select {family}_ROWTIME(...) or "
                                                  f"{family}_END(...)")
        if where is not None:
            raise SqlError.at(sql, e.pos, f"{e.name}(...) is not allowed in {where}: it names "
                                          f"the window of an emitted row (select list, HAVING, "
                                          f"ORDER BY)")
        if window_call is None:
            raise SqlError.at(sql, e.pos, f"{e.name}(...) needs the group window {family}(...) "
                                          f"in GROUP BY, with the same arguments (with a WINDOW "
                                          f"clause, select _WINDOW_START / _WINDOW_END)")
        _check_same_window(sql, e, family, window_call)
        end = ast.Column("_WINDOW_END", pos=e.pos)
        if part == "START":
            return ast.Column("_WINDOW_START", pos=e.pos)
        if part == "END":
            return end
        # Flink's rowtime: the last millisecond inside the window (an emitted row's event time)
        return ast.BinaryOp("-", end, ast.Literal(1, "INTEGER", pos=e.pos), pos=e.pos)

    def rewrite(e, where=None):
        return _replace_nodes(e, lambda n: replace(n, where))

    new_items = []
    for item in items:
        alias = item.alias
        if (alias is None and type(item.expr) is ast.FunctionCall
                and item.expr.name in _GROUP_WINDOW_AUX):
            alias = item.expr.name.lower()  # as window_start is named (a TVF's column)
        new_items.append(dataclasses.replace(item, expr=rewrite(item.expr), alias=alias))
    clauses = dict(clauses)
    for name in ("WHERE", "HAVING", "ORDER BY"):
        if name in clauses:
            clauses[name] = rewrite(clauses[name], "WHERE" if name == "WHERE" else None)
    for join in joins:
        rewrite(join.on, "a JOIN condition")
    for g in group_by:
        if g is not window_call:
            rewrite(g, "GROUP BY")
    if window_call is not None:
        clauses["GROUP BY"] = tuple(g for g in group_by if g is not window_call)
        clauses["WINDOW"] = window
    return new_items, clauses


def _group_window_spec(sql: str, call: ast.FunctionCall) -> ast.WindowSpec:
    """The WindowSpec of ``TUMBLE(ts, size)``, ``HOP(ts, slide, size)`` or ``SESSION(ts, gap)``
    in GROUP BY; the time column is a column, as in a window table function's DESCRIPTOR."""
    kind, durations = _GROUP_WINDOWS[call.name]
    shape = f"{call.name}(time column, {', '.join(durations)})"
    if call.distinct or call.filter is not None or call.over is not None:
        raise SqlError.at(sql, call.pos, f"{shape} takes no DISTINCT, FILTER or OVER")
    if len(call.args) != 1 + len(durations):
        raise SqlError.at(sql, call.pos, f"{shape} takes {1 + len(durations)} arguments, got "
                                         f"{len(call.args)}")
    time_column = call.args[0]
    if type(time_column) is not ast.Column:
        at = getattr(time_column, "pos", None) or call.pos
        if type(time_column) is ast.FunctionCall and time_column.name == "PROCTIME":
            raise UnsupportedError.at(sql, at, f"{call.name}(PROCTIME(), ...): processing time "
                                               f"is not supported; windows run on event time: "
                                               f"name the event-time column (docs/SQL.md §3)")
        raise SqlError.at(sql, at, f"the first argument of {shape} must be the event-time column "
                                   f"(a column name), not an expression")
    ms = []
    for arg, what in zip(call.args[1:], durations):
        at = getattr(arg, "pos", None) or call.pos
        if type(arg) is not ast.IntervalLiteral:
            raise SqlError.at(sql, at, f"the {what} of {shape} must be an interval, e.g. "
                                       f"INTERVAL '1' MINUTE")
        if getattr(arg, "months", 0):
            raise SqlError.at(sql, at, f"the {what} of {shape} must have a fixed length "
                                       f"(MILLISECOND to DAY), not a number of months")
        if arg.millis <= 0 or arg.millis > MAX_WINDOW_MS:
            raise SqlError.at(sql, at, f"a window duration must be between 1 ms and 36,500 days, "
                                       f"got {arg.millis} ms")
        ms.append(arg.millis)
    if call.name == "TUMBLE":
        return ast.WindowSpec(kind, time_column, size_ms=ms[0], pos=call.pos)
    if call.name == "HOP":
        slide, size = ms
        if slide > size:
            raise SqlError.at(sql, call.args[2].pos or call.pos, f"HOP's slide ({slide} ms) must "
                                                                 f"not exceed its size ({size} ms)")
        return ast.WindowSpec(kind, time_column, size_ms=size, advance_ms=slide, pos=call.pos)
    return ast.WindowSpec(kind, time_column, gap_ms=ms[0], pos=call.pos)


def _check_same_window(sql: str, aux: ast.FunctionCall, family: str,
                       window_call: ast.FunctionCall) -> None:
    """Flink requires TUMBLE_START(...) and its kin to repeat the group window's own call: the
    same function, time column and durations (an interval may be spelt another way)."""
    line, column = window_call.pos or (1, 1)
    written = f"GROUP BY {_call_text(window_call)} (line {line}, column {column})"
    if family != window_call.name:
        raise SqlError.at(sql, aux.pos, f"{aux.name}(...) belongs to a {family}(...) window, but "
                                        f"the group window is {written}")
    if len(aux.args) != len(window_call.args):
        raise SqlError.at(sql, aux.pos, f"{aux.name}(...) must repeat the arguments of "
                                        f"{written}, got {len(aux.args)} argument(s)")
    names = ("time column",) + _GROUP_WINDOWS[family][1]
    for a, w, what in zip(aux.args, window_call.args, names):
        if not _same_window_arg(a, w):
            raise SqlError.at(sql, getattr(a, "pos", None) or aux.pos,
                              f"the {what} of {aux.name}(...) must be the one of {written}")


def _same_window_arg(a, w) -> bool:
    if type(w) is ast.Column:  # ts and t.ts name the same column
        return (type(a) is ast.Column and a.name == w.name and a.quoted == w.quoted
                and (a.table is None or w.table is None or a.table == w.table))
    return a == w  # IntervalLiteral: equal milliseconds, however written


def _call_text(call: ast.FunctionCall) -> str:
    """``TUMBLE(ts, INTERVAL '1' MINUTE)``: a group window call as SQL, for messages."""
    args = []
    for a in call.args:
        if type(a) is ast.Column:
            args.append(f"{a.table}.{a.name}" if a.table else a.name)
        elif type(a) is ast.IntervalLiteral:
            unit, scale = next((u, s) for u, s in _DURATION_UNITS if a.millis % s == 0)
            args.append(f"INTERVAL '{a.millis // scale}' {unit}")
        else:
            args.append("...")
    return f"{call.name}({', '.join(args)})"


def _replace_nodes(e, replace):
    """``e`` (a node or a tuple of them) with each node for which ``replace`` returns a node
    replaced by it; where it returns None the node's children are visited (CASE's pairs too)."""
    if isinstance(e, tuple):
        new = tuple(_replace_nodes(x, replace) for x in e)
        return e if all(a is b for a, b in zip(new, e)) else new
    new = replace(e)
    if new is not None:
        return new
    if not hasattr(e, "__dataclass_fields__") or type(e) in (ast.Star, ast.TypeName):
        return e
    changes = {}
    for name in e.__dataclass_fields__:
        v = getattr(e, name)
        if isinstance(v, tuple) or hasattr(v, "__dataclass_fields__"):
            nv = _replace_nodes(v, replace)
            if nv is not v:
                changes[name] = nv
    return dataclasses.replace(e, **changes) if changes else e


# ------------------------------------------------------------------------------------ depth
_OPERAND_KINDS = (INT, FLOAT, STRING, QIDENT, DURATION)

# Precedence of the binary operators for _Parser.binary, loosest first (the module docstring):
# OR < AND < NOT (prefix) < comparison (= != < <= > >= IS IN BETWEEN LIKE ILIKE, and NOT before
# IN / BETWEEN / LIKE / ILIKE) < || -> ->> < + - < * / %; 0: not a binary operator.
_OR, _AND, _NOT, _CMP, _CONCAT, _ADD, _MUL = 1, 2, 3, 4, 5, 6, 7
_OP_PREC = {"=": _CMP, "!=": _CMP, "<": _CMP, "<=": _CMP, ">": _CMP, ">=": _CMP, "||": _CONCAT,
            "->": _CONCAT, "->>": _CONCAT, "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "//": _MUL, "%": _MUL}
# JSON's operators are calls (docs/FUNCTIONS.md): j -> '$.a' is JSON_EXTRACT, ->> the text
_JSON_OPS = {"->": "JSON_EXTRACT", "->>": "JSON_EXTRACT_STRING"}
def _distinct_from(left: ast.Expr, right: ast.Expr, negated: bool) -> ast.Expr:
    """``left IS [NOT] DISTINCT FROM right`` (standard SQL, Flink, DuckDB): equality in which
    NULL equals NULL and never gives NULL, written as ``COALESCE(left = right, left IS NULL AND
    right IS NULL)``; ``IS DISTINCT FROM`` (``negated`` False) is its NOT."""
    pos = left.pos
    same = ast.FunctionCall("COALESCE", (
        ast.BinaryOp("=", left, right, pos=pos),
        ast.BinaryOp("AND", ast.IsNull(left, pos=pos), ast.IsNull(right, pos=pos), pos=pos)), pos=pos)
    return same if negated else ast.UnaryOp("NOT", same, pos=pos)


_WORD_PREC = {"OR": _OR, "AND": _AND, "IS": _CMP, "IN": _CMP, "BETWEEN": _CMP, "LIKE": _CMP,
              "ILIKE": _CMP, "NOT": _CMP}

# One simple list item and the comma after it (_Parser.simple_items): the same spellings as the
# lexer's number, string and word rules; an item followed by anything but a comma is not simple.
_RUN_KINDS = (INT, FLOAT, STRING, WORD)
# A run of parentheses (_Parser._paren_run): only blanks between them
_OPEN_RUN = re.compile(r"\((?:[ \t]*\()*")
_CLOSE_RUN = re.compile(r"\)(?:[ \t]*\))*")
_RUN_ITEM = re.compile(r"""
    (?: (?P<int>\d+(?![.\w]))
      | (?P<float>(?:\d+\.\d*|\.\d+|\d+)(?:E[+-]?\d+)?(?!\w))
      | (?P<str>'[^']*(?:''[^']*)*')
      | (?P<word>[^\W\d]\w*)
    )\s*,\s*""", re.VERBOSE | re.IGNORECASE)


# the operators of _Parser.simple_term: every binary one that makes a BinaryOp
_SIMPLE_TERM_OPS = frozenset(_OP_PREC) - frozenset(_JSON_OPS)


def _leaf(tok: Token) -> Optional[ast.Expr]:
    """The node ``_Parser.primary`` makes of ``tok`` alone when it is a plain column name or a
    literal (number in range, string, TRUE, FALSE, NULL) with an operator after it; else None."""
    k = tok.kind
    if k == WORD:
        u = tok.upper
        if u in RESERVED:
            if u == "NULL":
                return _new_literal(ast.Literal, None, "NULL", (tok.line, tok.column))
            if u == "TRUE" or u == "FALSE":
                return _new_literal(ast.Literal, u == "TRUE", "BOOLEAN", (tok.line, tok.column))
            return None
        if u == "CURRENT_TIMESTAMP" or u == "NOW" or u == "CURRENT_DATE":
            return None  # NOW(), CURRENT_DATE()
        return _new_column(ast.Column, u if u in SYSTEM_COLUMNS else tok.text.lower(),
                           (tok.line, tok.column))
    if k == INT:
        if tok.value > INT64_MAX:
            return None
        return _new_literal(ast.Literal, tok.value, "INTEGER", (tok.line, tok.column))
    if k == STRING:
        return _new_literal(ast.Literal, tok.value, "STRING", (tok.line, tok.column))
    if k == FLOAT:
        return _new_literal(ast.Literal, tok.value, "DOUBLE", (tok.line, tok.column))
    return None


def _ends_expression(tok: Token) -> bool:
    """Whether ``tok`` cannot continue an expression (so one before it is complete)."""
    return (tok.kind == EOF or (tok.kind == PUNCT and tok.value in (",", ")", ";"))
            or (tok.kind == WORD and tok.upper in ("FROM", "AS")))


def _balanced(op: str, terms: list) -> ast.Expr:
    """``t0 op t1 op ... op tn`` as a balanced tree, terms kept in order. AND and OR are
    associative in three-valued logic, so the answer is that of the left-deep tree, but the depth
    is log2(n): a generated filter of thousands of ``x = 1 OR x = 2 ...`` terms stays far below
    the depth limit (docs/SQL.md, "Limits")."""
    while len(terms) > 1:
        terms = [_new_binary(ast.BinaryOp, op, terms[i], terms[i + 1], terms[i].pos)
                 if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


# From this many terms on, an OR of equalities (an AND of inequalities) of one column and constants
# of one type is read as the IN (NOT IN) list it is equal to (_as_in_list)
IN_LIST_FROM_TERMS = 32


def _as_in_list(word: str, terms: list) -> Optional[ast.InList]:
    """``x = c1 OR x = c2 OR ...`` as ``x IN (c1, c2, ...)``, ``x != c1 AND x != c2 AND ...`` as
    ``x NOT IN (c1, c2, ...)``, when there are many terms and each compares the same column with
    a constant of one type (INTEGER or STRING); else None. SQL defines IN as that OR of
    equalities, in three-valued logic too (NULL when nothing is equal and a side is NULL), so
    the answer is the same; a generated filter of 90,000 terms is then one vectorised
    membership test instead of 90,000 comparisons per batch (docs/SQL.md, "Limits")."""
    if len(terms) < IN_LIST_FROM_TERMS:
        return None
    op = "=" if word == "OR" else "!="
    first = terms[0]
    if not (type(first) is ast.BinaryOp and first.op == op and type(first.left) is ast.Column
            and type(first.right) is ast.Literal and first.right.type in ("INTEGER", "STRING")):
        return None
    column, kind = first.left, first.right.type
    binary, col, lit = ast.BinaryOp, ast.Column, ast.Literal
    for t in terms:
        if not (type(t) is binary and t.op == op and type(t.right) is lit
                and t.right.type == kind and type(t.left) is col and t.left == column):
            return None
    return ast.InList(column, tuple(t.right for t in terms), word == "AND", pos=first.pos)


def _too_deep() -> str:
    return f"expression nested too deeply (more than {MAX_EXPRESSION_DEPTH} levels)"


def _too_deep_node(root) -> Optional[object]:
    """The first node (in post-order) at which the tree under ``root`` is deeper than
    MAX_EXPRESSION_DEPTH, or None. Iterative: the tree may be thousands of levels deep."""
    depth: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        kids = _child_nodes(node)
        if not done:
            stack.append((node, True))
            stack.extend((k, False) for k in kids)
            continue
        d = 1 + max((depth[id(k)] for k in kids), default=0)
        if d > MAX_EXPRESSION_DEPTH:
            return node
        depth[id(node)] = d
    return None


def _child_nodes(node) -> list:
    """The syntax-tree nodes directly under ``node`` (in fields, tuples of them, CASE pairs)."""
    out = []
    for name in getattr(node, "__dataclass_fields__", ()):
        v = getattr(node, name)
        if isinstance(v, tuple):
            for x in v:
                if isinstance(x, tuple):
                    out.extend(y for y in x if hasattr(y, "__dataclass_fields__"))
                elif hasattr(x, "__dataclass_fields__"):
                    out.append(x)
        elif hasattr(v, "__dataclass_fields__") and not isinstance(v, ast.TypeName):
            out.append(v)
    return out


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# A text this long or longer is parsed and planned with the cyclic garbage collector paused
GC_PAUSE_CHARS = 20_000


@contextlib.contextmanager
def gc_paused(text_length: int):
    """Pause Python's cyclic garbage collector while a text of ``text_length`` characters is
    parsed or planned, when it is long. Both make hundreds of thousands of small objects for a
    megabyte of SQL and free none of them; the collector would scan them again and again as
    they accumulate (half the time of parsing such a text). They make no reference cycles, so
    nothing is left for it to do, and it runs as usual afterwards. Nesting is fine: only the
    outermost pause turns it back on."""
    if text_length < GC_PAUSE_CHARS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        # What the pause made is alive (a tree, a plan, a pipeline): it goes to the oldest
        # generation at once (freeze + unfreeze: two list splices), or the first collections
        # after the pause would scan all of it, young then middle-aged (a third of the time of
        # a megabyte query). Not when something else froze objects on purpose.
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()
