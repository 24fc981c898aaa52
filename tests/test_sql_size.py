"""Big and dense SQL texts (docs/SQL.md §7, "Limits"): every shape the parser reads in bulk (long IN
lists, select lists and argument lists, AND/OR chains, CASE with many WHENs, runs of nested
parentheses, big literals and comments) gives the same answer as DuckDB, and the same syntax tree,
positions included, as the token-by-token path; an invalid text of a megabyte is a ``SqlError`` at
the right line and column. Times are measured by bench/sql_parse_size.py, never asserted here.
"""
from __future__ import annotations

import random

import duckdb
import pytest

import velostream as vs
from velostream.sql import ast
from velostream.sql import parser as sql_parser
from velostream.sql.parser import MAX_EXPRESSION_DEPTH

MB = 1_000_000


def make_data(seed: int = 13, n: int = 60) -> dict:
    """Seeded rows with NULLs and edge values."""
    rng = random.Random(seed)
    a = [rng.choice([None, 0, 1, -1, 2 ** 62, -(2 ** 62)] + list(range(-20, 40))) for _ in range(n)]
    b = [rng.choice([None, "", "s1", "s7", "it's", "x" * 50] + [f"s{i}" for i in range(40)])
         for _ in range(n)]
    return {"a": a, "b": b}


DATA = make_data()


def duck_rows(sql: str, data: dict = DATA) -> list:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a BIGINT, b VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(zip(data["a"], data["b"])))
    return con.execute(sql).fetchall()


def ours(sql: str, partitions: int = 1, data: dict = DATA) -> list:
    return [tuple(r.values()) for r in vs.query(sql, {"t": data}, partitions=partitions).to_pylist()]


def same_rows(got: list, want: list) -> None:
    key = repr
    assert sorted(map(tuple, got), key=key) == sorted(map(tuple, want), key=key)


def big_in_list(rng: random.Random, n: int) -> str:
    items = [rng.choice([str(rng.randint(-25, 45)), "NULL", str(2 ** 62), f"{rng.randint(0, 9)}.0"])
             for _ in range(n)]
    seps = [rng.choice([", ", ",", " ,\n", ",\r\n  ", ",\t"]) for _ in range(n - 1)]
    return "".join(i + s for i, s in zip(items, seps)) + items[-1]


# ------------------------------------------------------------------- valid shapes against DuckDB
def _shapes(rng: random.Random) -> dict[str, str]:
    strings = [f"'s{rng.randint(0, 45)}'" for _ in range(1500)] + ["'it''s'", "''"]
    return {
        "in_ints": f"SELECT a FROM t WHERE a IN ({big_in_list(rng, 3000)})",
        "not_in_ints": f"SELECT a, b FROM t WHERE a NOT IN ({', '.join(str(i) for i in range(0, 3000, 3))})",
        "in_strings": f"SELECT b FROM t WHERE b IN ({', '.join(strings)})",
        "or_chain": "SELECT a FROM t WHERE " + " OR ".join(f"a = {rng.randint(-30, 50)}"
                                                           for _ in range(2000)),
        # not one column and one constant type: stays a chain of comparisons
        "or_mixed": "SELECT a, b FROM t WHERE " + " OR ".join(
            rng.choice([f"a = {rng.randint(-30, 50)}", f"b = 's{rng.randint(0, 45)}'", "a = NULL",
                        f"{rng.randint(-30, 50)} = a", "a = 2.0"]) for _ in range(400)),
        "in_with_null": "SELECT a FROM t WHERE a NOT IN (" + ", ".join(
            ["NULL"] + [str(i) for i in range(100)]) + ") OR a IS NULL",
        "and_chain": "SELECT a, b FROM t WHERE " + " AND ".join(f"a != {i}" for i in range(0, 2000, 7)),
        "select_columns": "SELECT " + ", ".join(rng.choice(["a", "b", "A", "t.a"]) for _ in range(600))
                          + " FROM t",
        "select_literals": "SELECT " + ", ".join(rng.choice(["1", "-2", "NULL", "TRUE", "false", "'x'",
                                                             "2.5", "1e3", "a", "b", "'it''s'"])
                                                 for _ in range(600)) + " FROM t",
        "select_expressions": "SELECT " + ", ".join(f"a + {i} AS c{i}" for i in range(300)) + " FROM t",
        "case_whens": "SELECT CASE" + "".join(f" WHEN a = {i} THEN {i * 10}" for i in range(-20, 1500))
                      + " ELSE -1 END AS c FROM t",
        "simple_case": "SELECT CASE b" + "".join(f" WHEN 's{i}' THEN {i}" for i in range(1000))
                       + " END AS c FROM t",
        "coalesce_args": "SELECT COALESCE(" + ", ".join(["NULL"] * 60) + ", a, 7) AS c FROM t",
        "nested_parens": "SELECT " + ", ".join(
            "(" * d + "a" + ")" * d + (" + 1" if d % 2 else "")
            for d in (1, 2, MAX_EXPRESSION_DEPTH - 2, MAX_EXPRESSION_DEPTH - 1, 30)) + " FROM t",
        "spaced_parens": "SELECT " + "( " * 40 + "( a + 1 ) * 2" + " )" * 40 + " AS c FROM t",
        "parens_and_operators": "SELECT " + "((" * 10 + "a" + ") + 1)" * 10 + " AS c FROM t",
        "long_string": "SELECT b || '" + "ab''c" * 20_000 + "' AS c FROM t",
        "comments": "SELECT a /* " + "comment " * 10_000 + " */, -- line\n b FROM t",
    }


SHAPES = sorted(_shapes(random.Random(0)))


@pytest.mark.parametrize("shape", SHAPES)
def test_dense_shapes_agree_with_duckdb(shape, partitions):
    sql = _shapes(random.Random(0))[shape]
    same_rows(ours(sql, partitions), duck_rows(sql))


# --------------------------------------------------------------- fast paths = token-by-token path
def _tree(node):
    """A syntax tree as nested tuples, positions included (``==`` on nodes ignores them)."""
    if isinstance(node, tuple):
        return tuple(_tree(x) for x in node)
    if hasattr(node, "__dataclass_fields__"):
        return (type(node).__name__,) + tuple((name, _tree(getattr(node, name)))
                                              for name in node.__dataclass_fields__
                                              if name != "sql")
    return node


def _select_columns_unplaced(node):
    """``node`` with the position of each select item's plain column reference left out: the
    bulk reading of a select list shares one node among the repeats of a column in a run (its
    first place; each item keeps its own position), see
    test_repeated_columns_of_a_select_list_share_their_first_node."""
    if isinstance(node, tuple):
        if node and node[0] == "SelectItem":
            expr = node[1][1]
            if expr[0] == "Column":
                expr = tuple(f for f in expr if f[0] != "pos")
            return (node[0], ("expr", expr)) + tuple(_select_columns_unplaced(f) for f in node[2:])
        return tuple(_select_columns_unplaced(x) for x in node)
    return node


# the parser's bulk readings, each turned off by a stand-in that reads nothing
_BULK = {"simple_items": lambda self, items, select=False: None,
         "_paren_run": lambda self, pattern, most: 0,
         "simple_term": lambda self, min_prec: None,
         "chain_terms": lambda self, word, terms: 0}


def _both_ways(sql: str, monkeypatch):
    fast = _select_columns_unplaced(_tree(sql_parser.parse(sql, {})))
    with monkeypatch.context() as m:
        for name, off in _BULK.items():
            m.setattr(sql_parser._Parser, name, off)
        slow = _select_columns_unplaced(_tree(sql_parser.parse(sql, {})))
    return fast, slow


def _assert_same_tree_or_error(sql: str, monkeypatch, *bulk: str) -> None:
    """The tree of ``sql`` with the bulk readings equals the token path's; or, when ``sql`` is
    an error, the token path (``bulk`` readings off) fails with the same message and place."""
    try:
        fast, slow = _both_ways(sql, monkeypatch)
    except vs.SqlError as e:
        with monkeypatch.context() as m:
            for name in bulk:
                m.setattr(sql_parser._Parser, name, _BULK[name])
            with pytest.raises(vs.SqlError) as info:
                sql_parser.parse(sql, {})
        assert (info.value.message, info.value.line, info.value.column) == \
               (e.message, e.line, e.column)
        return
    assert fast == slow


@pytest.mark.parametrize("seed", range(8))
def test_bulk_reading_gives_the_tree_of_the_token_path(seed, monkeypatch):
    rng = random.Random(seed)
    items = ["1", "007", "9223372036854775807", "1.5", ".5", "2.", "1e3", "1E-2", "'a'", "''",
             "'it''s'", "'two\nlines'", "NULL", "true", "FALSE", "x", "X", "_key", "_TIMESTAMP",
             "\"Quoted\"", "t.x", "-1", "x + 1", "f(x)", "CAST(x AS INT)", "(x)", "x::INT",
             "/* c */ x", "x -- c\n", "INTERVAL '1' MINUTE", "5s", "é", "timestamp", "名前",
             "'😀'", "x😀", "a\u00a0",
             # column +/- integer [AS alias] (read in bulk in a select list) and near misses
             "x + 1 AS y", "x - 22 as Yy", "x+1", "x -\t3 AS z", "_TIMESTAMP - 5 AS t",
             "x + 1 AS select", "x + 1 y", "x + 1\nAS y", "x\n+ 1", "x + 1 * 2", "x + 1.5",
             "x - -1", "x + 1 AS é", "now + 1", "NULL + 1", "x + 007 AS \"Q\"", "x + 1 ASC",
             "x + 1 AS\ty", "x + 1 AS y z", "x --1", "x + 1 AS 2y", "x + 1AS y",
             "x + 99999999999999999999 AS big", "x + 1 /* c */ AS y", "now", "x + 1 AS yé"]
    seps = [", ", ",", " , ", ",\n", ",\r\n", ",\r", ",\t", ", /* c */ ", ",  \n\n  ", ",\u00a0",
            "\u2003,\u00a0\n", ",\u2028"]

    def lst(n):
        chosen = [rng.choice(items) for _ in range(n)]
        return "".join(c + rng.choice(seps) for c in chosen[:-1]) + chosen[-1]

    for sql in [f"SELECT {lst(200)} FROM t",
                f"SELECT x FROM t WHERE x IN ({lst(200)})",
                f"SELECT COALESCE({lst(50)}) FROM t",
                "SELECT " + "".join(rng.choice(["(", "( ", "(\t", "(\n", "(/**/"])
                                    for _ in range(60)) + "x"
                + "".join(rng.choice([")", " )", "\n)", ") + 1)", ")::INT", ") * (2)"])
                          .replace(") + 1)", ") + 1") for _ in range(60)) + " AS y FROM t"]:
        _assert_same_tree_or_error(sql, monkeypatch, *_BULK)


@pytest.mark.parametrize("seed", range(12))
def test_chain_terms_read_at_once_give_the_tree_of_the_token_path(seed, monkeypatch):
    """AND / OR chains whose terms are read in one step when they are ``x op y`` (simple_term),
    mixed with terms that are not (tighter operators after them, signs, casts, calls, qualified
    names, IS / IN / BETWEEN / LIKE, NOT, out-of-range numbers): the same tree, positions
    included, or the same error."""
    rng = random.Random(seed)
    operands = ["a", "b", "X", "_key", "1", "007", "1.5", "'s'", "'it''s'", "TRUE", "null", "é",
                "9223372036854775807", "-1", "\"Q\"", "t.a", "f(a)", "a::INT", "NOW",
                "current_timestamp", "5s", "(a)", "CASE WHEN a = 1 THEN 2 END",
                "INTERVAL '1' MINUTE", "exists", "'two\nlines'", "x😀", "'😀'", "''", "b''"]
    ops = ["=", "!=", "<>", "<", "<=", ">", ">=", "==", "+", "-", "*", "/", "%", "||", "->", "->>"]
    tails = [" IS NULL", " IS NOT NULL", " || 'x'", " + 1", "::INT", " NOT IN (1, 2)",
             " BETWEEN 1 AND 2", " LIKE 'x%'"]
    wrong = ["9223372036854775808", " AS c", " garbage", " = = 2", "SELECT", " <=> 1",
             " =- 1"]  # errors, rarely
    seps = [" ", "\n", " /* c */ ", "\r\n  "]

    def term():
        t = f"{rng.choice(operands)}{rng.choice(seps)}{rng.choice(ops)} {rng.choice(operands)}"
        if rng.random() < 0.2:
            t = "NOT " + t
        if rng.random() < 0.3:
            t += rng.choice(tails)
        return t + (rng.choice(wrong) if rng.random() < 0.004 else "")

    def chain(n):
        return "".join(term() + rng.choice([" OR ", " AND ", "\nOR ", " or ", "\tOr\t", " OR/* c */",
                                            " OR\r\n\n ", " AnD\n", " ORx ", " OR"])
                       for _ in range(n)) + term()

    for sql in [f"SELECT a FROM t WHERE {chain(40)}",
                f"SELECT ({chain(30)}) AS c, a FROM t WHERE ({chain(5)}) AND a = 1",
                f"SELECT CASE WHEN {chain(20)} THEN 1 ELSE 0 END AS c FROM t",
                f"SELECT COALESCE({chain(10)}, {chain(10)}) FROM t",
                "SELECT " + ", ".join(term() + rng.choice(["", " AS c", " c", "\n"])
                                      for _ in range(40)) + " FROM t"]:
        _assert_same_tree_or_error(sql, monkeypatch, "simple_term", "chain_terms")


@pytest.mark.parametrize("seed", range(8))
def test_runs_of_comparison_terms_read_in_c_give_the_tree_of_the_token_path(seed, monkeypatch):
    """Long AND / OR chains of ``operand comparison operand`` terms, read in runs without tokens
    (chain_terms, sql_lex.scan_terms), with near misses among them (another operator, a line
    break or comment inside a term, a float, NOW, a qualified name, a word glued to the chain's
    word, a string over two lines): the same tree, positions included, or the same error; and
    most terms are read in runs."""
    rng = random.Random(seed)
    plain = ["a", "b", "_key", "X", "1", "007", "'s'", "'it''s'", "''", "TRUE", "null",
             "123456789012345678"]
    odd = ["1.5", "NOW", "t.a", "é", "'two\nlines'", "1234567890123456789", "a + 1", "f(a)"]
    ops = ["=", "==", "!=", "<>", "<", "<=", ">", ">="]
    read = []
    original = sql_parser._Parser.chain_terms
    monkeypatch.setattr(sql_parser._Parser, "chain_terms",
                        lambda self, word, terms: read.append(original(self, word, terms))
                        or read[-1])

    def term():
        left, right = rng.choice(plain), rng.choice(plain)
        if rng.random() < 0.05:
            left = rng.choice(odd)
        if rng.random() < 0.05:
            right = rng.choice(odd)
        blank = rng.choice([" "] * 12 + ["", "\t", "\n", " /* c */ "])
        return f"{left}{blank}{rng.choice(ops)}{blank}{right}"

    def chain(n, word):
        glue = [f" {word} ", f"\n{word.lower()}\t", f" {word}\r\n  ", f" {word}/* c */ ",
                f" {word}("]
        out = term()
        for _ in range(n):
            g = rng.choice(glue[:4] * 10 + glue[4:])
            out += g + (term() + ")" if g.endswith("(") else term())
        return out

    for sql in [f"SELECT a FROM t WHERE {chain(300, 'OR')}",
                f"SELECT a FROM t WHERE ({chain(100, 'AND')}) OR ({chain(100, 'OR')})",
                f"SELECT CASE WHEN {chain(50, 'AND')} THEN 1 END AS c FROM t"]:
        _assert_same_tree_or_error(sql, monkeypatch, "chain_terms")
    assert sum(read) > 200


@pytest.mark.parametrize("seed", range(3))
def test_repeated_columns_of_a_select_list_share_their_first_node(seed, monkeypatch):
    """A run of plain column names in a select list is read in bulk, and the repeats of one
    column in it share one node (a generated select list repeats a few columns 300,000 times):
    each item keeps its own position, its column's node is written at or before it, and an
    unknown column is an error at its first place, as on the token path."""
    rng = random.Random(seed)
    names = ["a", "b", "A", "_key", "zz"]
    seps = [", ", ",\n", " ,\r\n", ",\t", ", /* c */ "]
    chosen = [rng.choice(names[:4]) for _ in range(300)]
    body = "".join(c + rng.choice(seps) for c in chosen[:-1]) + chosen[-1]
    sql = f"SELECT {body} FROM t"
    items = sql_parser.parse(sql, {}).select.items
    lines = sql.replace("\r\n", "\n").split("\n")

    def at(pos):
        line, col = pos
        return lines[line - 1][col - 1:]

    assert len(items) == len(chosen)
    shared = 0
    for item, text in zip(items, chosen):
        assert at(item.pos).startswith(text)
        assert at(item.expr.pos).startswith(text) and item.expr.pos <= item.pos
        assert item.expr == sql_parser.parse(f"SELECT {text} FROM t", {}).select.items[0].expr
        shared += item.expr.pos != item.pos
    assert shared > 50  # the runs do share
    # an unknown column, repeated: the error is at its first place, on both paths
    first = rng.randrange(50, 250)
    known = [c for c in chosen if c != "_key"]  # DATA has no _KEY column
    with_unknown = known[:first] + ["zz"] * 20 + known[first:]
    sql = "SELECT " + ", ".join(with_unknown) + " FROM t"
    err = _error(sql)
    assert (err.line, err.column) == (1, len("SELECT " + ", ".join(with_unknown[:first]) + ", ") + 1)
    monkeypatch.setattr(sql_parser._Parser, "simple_items", lambda self, items, select=False: None)
    slow = _error(sql)
    assert (slow.message, slow.line, slow.column) == (err.message, err.line, err.column)


def test_item_positions_in_a_long_list_on_many_lines():
    lines = [", ".join(str(i * 10 + j) for j in range(10)) for i in range(3000)]
    sql = "SELECT a FROM t WHERE a IN (\n" + ",\n".join(lines) + ")"
    items = sql_parser.parse(sql, {}).select.where.items
    assert len(items) == 30_000
    for k in (0, 9, 10, 12_345, 29_999):
        line, col = items[k].pos
        text_line = sql.split("\n")[line - 1]
        assert text_line[col - 1:].split(",")[0].strip(") ") == str(k), (k, line, col)


# --------------------------------------------------------------------- invalid megabyte texts
def _where(sql: str, offset: int) -> tuple[int, int]:
    """(line, column) of ``offset``, lines ending at \\r\\n, \\r or \\n."""
    before = sql[:offset].replace("\r\n", "\n").replace("\r", "\n")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _error(sql: str) -> vs.SqlError:
    with pytest.raises(vs.SqlError) as info:
        vs.explain(sql, {"t": DATA})
    assert "^" in str(info.value).splitlines()[-1]
    return info.value


def _ints(n: int, sep: str = ", ") -> str:
    return sep.join(str(i) for i in range(n))


@pytest.mark.parametrize("sep", [", ", ",\r\n"])
def test_invalid_megabyte_texts_name_the_place(sep):
    n = MB // 8
    cases = [
        # (text, offset of the error)
        (f"SELECT a FROM t WHERE a IN ({_ints(n, sep)}) garbage here", None, "garbage"),
        (f"SELECT a FROM t WHERE a IN ({_ints(n, sep)}) !", None, "!"),
        (f"SELECT a FROM t WHERE a IN ({_ints(n, sep)}{sep}'unterminated", None, "'unterminated"),
        (f"SELECT a FROM t WHERE a IN ({_ints(n, sep)}{sep}1 2{sep}3)", None, "2" + sep + "3)"),
        (f"SELECT a FROM t WHERE a IN ({_ints(n, sep)}{sep}99999999999999999999{sep}1)", None,
         "99999999999999999999"),
        (f"SELECT a FROM t WHERE a IN ({_ints(n, sep)}{sep}9223372036854775808{sep}1)", None,
         "9223372036854775808"),
        (f"SELECT {_ints(n, sep)}{sep}FROM t", None, "FROM t"),
        (f"SELECT a FROM t WHERE a IN ({_ints(n, sep)}", "end", None),
        (f"SELECT COALESCE({_ints(n, sep)}) FROM t", None, "COALESCE"),
    ]
    for sql, at_end, marker in cases:
        err = _error(sql)
        if at_end:
            assert (err.line, err.column) == _where(sql, len(sql)), str(err)[:300]
        else:
            assert (err.line, err.column) == _where(sql, sql.rindex(marker)), (marker, str(err)[:300])


def test_megabyte_string_and_comment_errors():
    sql = "SELECT a FROM t WHERE b = '" + "x" * MB
    err = _error(sql)
    assert (err.line, err.column, err.message) == (1, sql.index("'") + 1, "unterminated string literal")
    sql = "SELECT a /* " + "no end " * (MB // 7)
    err = _error(sql)
    assert (err.line, err.column) == (1, sql.index("/*") + 1)


def test_long_chains_fail_at_the_operator_past_the_depth_limit():
    for chain in ["a + 1", "a = 1", "a IS NULL", "a || 'x'"]:
        head, op_tail = chain.split(" ", 1)
        sql = "SELECT " + head + (" " + op_tail) * (MB // len(op_tail)) + " FROM t"
        err = _error(sql)
        assert err.message.startswith("expression nested too deeply")
        op = op_tail.split(" ")[0]
        offsets = [i for i in range(len(sql)) if sql.startswith(op, i)][:MAX_EXPRESSION_DEPTH + 1]
        assert err.column - 1 in offsets, (chain, err.column)


@pytest.mark.parametrize("blank", ["", " ", "\t", "\n"])
def test_runs_of_parentheses_keep_the_depth_limit(blank):
    ok = "SELECT " + ("(" + blank) * (MAX_EXPRESSION_DEPTH - 1) + "a" + (blank + ")") * (
        MAX_EXPRESSION_DEPTH - 1) + " AS c FROM t"
    same_rows(ours(ok), duck_rows(ok))
    deep = "SELECT " + ("(" + blank) * MB + "a"
    err = _error(deep)
    # at the token after the 64th '(', where the 65th expression level would begin
    assert (err.line, err.column) == _where(deep, len("SELECT ") + MAX_EXPRESSION_DEPTH * (1 + len(blank)))
    assert err.message.startswith("expression nested too deeply")
    many = "SELECT " + ", ".join(["(" * 60 + "a" + ")" * 60] * 2000) + " FROM t"
    plan = vs.explain(many, {"t": DATA})
    assert plan.count("\n") >= 2


def test_a_long_select_list_and_a_megabyte_in_list_run():
    n = MB // 40
    sql = "SELECT " + ", ".join(["a"] * n) + " FROM t LIMIT 2"
    rows = vs.query(sql, {"t": DATA}).to_pylist()
    assert len(rows) == 2 and len(rows[0]) == n
    values = sorted({v for v in DATA["a"] if v is not None})[:3]
    sql = "SELECT a FROM t WHERE a IN (" + ", ".join(str(10 ** 6 + i) for i in range(MB // 9)) \
        + ", " + ", ".join(map(str, values)) + ")"
    assert sorted(r["a"] for r in vs.query(sql, {"t": DATA}).to_pylist()) == \
        sorted(v for v in DATA["a"] if v in values)
    assert isinstance(sql_parser.parse(sql, {}).select.where, ast.InList)


# ------------------------------------------------ CASE with many WHENs: the lookup = the WHENs
def _many_whens(rng: random.Random, n: int, column: str, constant, result) -> str:
    return "".join(f" WHEN {column} = {constant(rng)} THEN {result(rng)}" for _ in range(n))


def _case_texts(rng: random.Random) -> list[str]:
    ints = lambda r: r.choice([str(r.randint(-25, 45)), "NULL", str(2 ** 62), str(-(2 ** 62))])
    strs = lambda r: r.choice([f"'s{r.randint(0, 45)}'", "''", "'it''s'", "NULL"])
    small = lambda r: str(r.randint(-50, 50))
    return [
        # constant THENs (gathered in one step), duplicate and NULL keys: the first WHEN wins
        "SELECT a, CASE" + _many_whens(rng, 300, "a", ints, small) + " ELSE -1 END AS c FROM t",
        "SELECT a, CASE" + _many_whens(rng, 300, "a", ints, lambda r: r.choice(["NULL", "7"]))
        + " END AS c FROM t",
        "SELECT b, CASE" + _many_whens(rng, 300, "b", strs, lambda r: f"'r{r.randint(0, 9)}'")
        + " ELSE b END AS c FROM t",
        # the constant on the left, a simple CASE, no ELSE
        "SELECT a, CASE" + "".join(f" WHEN {ints(rng)} = a THEN {small(rng)}" for _ in range(50))
        + " END AS c FROM t",
        "SELECT b, CASE b" + "".join(f" WHEN {strs(rng)} THEN {small(rng)}" for _ in range(50))
        + " ELSE 0 END AS c FROM t",
        "SELECT a, CASE a" + "".join(f" WHEN {ints(rng)} THEN {small(rng)}" for _ in range(50))
        + " END AS c FROM t",
        # THENs and ELSE that are computed, of a wider type: evaluated for the rows taking them
        "SELECT a, CASE" + _many_whens(rng, 100, "a", ints, lambda r: r.choice(
            ["a + 1", "2.5e0", "a - 3", "NULL"])) + " ELSE a - 1 END AS c FROM t",
        # a boolean column, and WHENs of two columns (the comparisons, not the lookup)
        "SELECT a, CASE" + _many_whens(rng, 20, "(a > 3)", lambda r: r.choice(["TRUE", "FALSE", "NULL"]),
                                       small) + " ELSE 9 END AS c FROM t",
        "SELECT a, b, CASE" + "".join(rng.choice([f" WHEN a = {ints(rng)} THEN 1",
                                                  f" WHEN b = {strs(rng)} THEN 2"]) for _ in range(60))
        + " ELSE 3 END AS c FROM t",
    ]


@pytest.mark.parametrize("seed", [0])
def test_case_with_many_whens_agrees_with_duckdb(seed, partitions):
    data = make_data(seed, 200)
    for sql in _case_texts(random.Random(seed)):
        same_rows(ours(sql, partitions, data), duck_rows(sql, data))


def test_case_lookup_evaluates_a_computed_then_only_for_the_rows_taking_it():
    # 2**62 * 4 overflows BIGINT: an error when a row takes that branch, none when no row does
    data = {"a": [1, 2, None, 2 ** 62], "b": ["s1", "x", None, "y"]}
    whens = "".join(f" WHEN a = {i} THEN a * 4" for i in range(-40, 40))
    sql = f"SELECT CASE{whens} WHEN a = {2 ** 62} THEN a * 4 ELSE 0 END AS c FROM t"
    with pytest.raises(vs.OutOfRangeError if hasattr(vs, "OutOfRangeError") else Exception):
        vs.query(sql, {"t": data})
    sql = f"SELECT CASE{whens} WHEN a = {2 ** 62} THEN 5 ELSE a * 4 END AS c FROM t"
    assert [r["c"] for r in vs.query(sql, {"t": data}).to_pylist()] == [4, 8, None, 5]


def _in_batches(data: dict, sizes: list[int]) -> list:
    import pyarrow as pa
    out, at = [], 0
    for n in sizes:
        out.append(pa.record_batch({"a": pa.array(data["a"][at:at + n], pa.int64()),
                                    "b": pa.array(data["b"][at:at + n], pa.string())}))
        at += n
    assert at == len(data["a"])
    return out


def test_wide_select_lists_of_constants_across_batch_splits(partitions):
    # constants of every type made in bulk per batch (one Arrow array per type), columns shared,
    # computed items one by one: the same rows as DuckDB in every batch
    rng = random.Random(5)
    data = make_data(5, 100)
    items = [rng.choice(["1", "-2", "NULL", "TRUE", "false", "'x'", "''", "2.5e0", "-0.0e0", "1e3",
                         "a", "b", "'it''s'", "a + 1", "NULL", "CAST(NULL AS VARCHAR)",
                         "CAST(NULL AS DOUBLE)", str(2 ** 62)]) for _ in range(800)]
    sql = "SELECT " + ", ".join(items) + " FROM t"
    want = duck_rows(sql, data)
    batches = _in_batches(data, [1, 0, 37, 50, 12])
    got = [tuple(r.values()) for r in vs.query(sql, {"t": batches}, partitions=partitions).to_pylist()]
    same_rows(got, want)
    case = "SELECT a, CASE" + "".join(f" WHEN a = {i} THEN {i * 3}" for i in range(-30, 30)) \
        + " ELSE a END AS c FROM t"
    got = [tuple(r.values()) for r in vs.query(case, {"t": batches}, partitions=partitions).to_pylist()]
    same_rows(got, duck_rows(case, data))


def test_wide_select_lists_keep_the_types_of_passed_columns(partitions):
    # a bare column leaves in the type it came in with (int32, float32, a string), next to
    # computed items and constants in the engine's types: per column, the type of the same
    # item selected alone, and the rows DuckDB gives, in every batch
    import pyarrow as pa
    rng = random.Random(11)
    data = make_data(11, 90)
    small = [None if v is None else v % 1000 for v in data["a"]]
    table = pa.table({"a": pa.array(data["a"], pa.int64()), "b": pa.array(data["b"], pa.string()),
                      "c": pa.array(small, pa.int32()),
                      "f": pa.array([None if v is None else v / 4 for v in small], pa.float32())})
    con = duckdb.connect()
    con.register("t", table)
    batches = table.to_batches(max_chunksize=25)
    every = ["a", "b", "c", "f", "c + 1", "f * 2", "1", "'x'", "NULL", "2.5e0", "c = 3"]
    # with a NULL column; passed columns of other types, filtered (the engine holds them in its
    # own types then: int64 for an int32 input); only the engine's own types
    for kinds, where in ((every, ""), ([k for k in every if k != "NULL"], " WHERE c > 3"),
                         (["a", "b", "c + 1", "f * 2", "1", "'x'", "2.5e0", "c = 3"], "")):
        items = [rng.choice(kinds) for _ in range(3000)]
        sql = "SELECT " + ", ".join(items) + " FROM t" + where
        result = vs.query(sql, {"t": batches}, partitions=partitions)
        alone = {k: vs.query(f"SELECT {k} FROM t", {"t": table}).schema.field(0).type for k in kinds}
        assert result.schema.types == [alone[k] for k in items]
        assert all(rb.schema.types == result.schema.types for rb in result.batches)
        same_rows([tuple(r.values()) for r in result.to_pylist()], con.execute(sql).fetchall())


# ------------------------------ long AND / OR chains: one n-ary reduction = the pairs, with NULLs
def _chain_texts(rng: random.Random) -> list[str]:
    def term(word, n):
        eq, ne = ("=", "!=") if word == "OR" else ("!=", "=")
        wide = 4 * n  # constants spread wide enough that a long chain does not decide every row
        r = rng.random()
        if r < 0.8:  # the terms taken together as one membership test per column
            return rng.choice([f"a {eq} {rng.randint(-wide, wide)}", f"{rng.randint(-wide, wide)} {eq} a",
                               f"b {eq} 's{rng.randint(0, wide)}'", f"b {eq} ''"])
        if r < 0.83:
            return rng.choice([f"a {eq} NULL", f"b {eq} NULL"])
        return rng.choice([f"a > {rng.randint(30, 45)}" if word == "OR" else f"a > {rng.randint(-25, -15)}",
                           f"a + 1 = {rng.randint(0, 9)}", f"a {ne} {rng.randint(-5, 5)}",
                           f"(a < -20 {'AND' if word == 'OR' else 'OR'} b = 's3')",
                           "b IS NULL" if word == "OR" else "b IS NOT NULL"]
                          + (["NULL", "TRUE", "FALSE"] if n < 5 else []))
    texts = []
    for word in ("OR", "AND"):
        for n in (3, 40, 600):
            chain = lambda: f" {word} ".join(term(word, n) for _ in range(n))
            texts.append(f"SELECT a, b FROM t WHERE {chain()}")
            texts.append(f"SELECT a, b, ({chain()}) AS c FROM t")
            texts.append(f"SELECT a, b FROM t WHERE NOT ({chain()})")
    return texts


@pytest.mark.parametrize("seed", [0])
def test_long_and_or_chains_with_nulls_agree_with_duckdb(seed, partitions):
    data = make_data(seed + 20, 200)
    for sql in _chain_texts(random.Random(seed)):
        same_rows(ours(sql, partitions, data), duck_rows(sql, data))


# --------------------------------------- every shape of bench/sql_parse_size.py at a megabyte
from conftest import CHECKOUT, load_from_checkout  # noqa: E402

_bench = load_from_checkout("bench", CHECKOUT)
from bench import sql_parse_size  # noqa: E402

_TABLE = {"a": [1, 2, None], "b": ["s1", "x", None]}
_ROWS = list(zip(_TABLE["a"], _TABLE["b"]))


def _select_items(sql: str) -> list[str]:
    return sql[len("SELECT "):sql.rindex(" FROM t")].split(", ")


def _megabyte_reference(name: str, sql: str) -> list:
    """The rows of a bench shape over _TABLE, worked out from its text in Python (DuckDB takes
    minutes over some of these texts)."""
    import re
    where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else ""
    if name in ("in_ints", "many_lines", "or_chain"):
        keys = {int(x) for x in re.findall(r"-?\d+", where)}
        return [(a,) for a, _ in _ROWS if a in keys]
    if name == "in_strings":
        keys = set(re.findall(r"'([^']*)'", where))
        return [(b,) for _, b in _ROWS if b in keys]
    if name == "or_mixed":
        ints = {int(x) for x in re.findall(r"a = (-?\d+)", where)}
        strs = set(re.findall(r"b = '([^']*)'", where))
        return [(a,) for a, b in _ROWS if a in ints or b in strs]
    if name == "and_chain":
        keys = {int(x) for x in re.findall(r"-?\d+", where)}
        return [(a,) for a, _ in _ROWS if a is not None and a not in keys]
    if name in ("select_cols", "nested_parens"):
        n = len(_select_items(sql))
        return [(a,) * n for a, _ in _ROWS]
    if name == "select_ints":
        values = tuple(int(x) for x in _select_items(sql))
        return [values for _ in _ROWS]
    if name == "select_exprs":
        adds = [int(re.match(r"a \+ (\d+) AS", x).group(1)) for x in _select_items(sql)]
        return [tuple(None if a is None else a + k for k in adds) for a, _ in _ROWS]
    if name == "case_whens":
        pairs = re.findall(r"WHEN a = (-?\d+) THEN (-?\d+)", sql)
        mapping = {}
        for k, v in pairs:
            mapping.setdefault(int(k), int(v))
        return [(mapping.get(a, -1) if a is not None else -1,) for a, _ in _ROWS]
    if name == "string_literal":
        return [(sql[len("SELECT '"):sql.rindex("' AS s")],) for _ in _ROWS]
    if name in ("comment", "line_comments"):
        return [(a,) for a, _ in _ROWS]
    raise AssertionError(f"no reference for shape {name}")


_MEGABYTE = sql_parse_size.shapes(MB)


@pytest.mark.parametrize("shape", sorted(n for n, (_, valid) in _MEGABYTE.items() if valid))
@pytest.mark.parametrize("partitions", [1, 2])
def test_every_megabyte_shape_runs_to_its_answer(shape, partitions):
    sql = _MEGABYTE[shape][0]
    assert len(sql) >= MB - 100
    got = [tuple(r.values()) for r in vs.query(sql, {"t": _TABLE}, partitions=partitions).to_pylist()]
    same_rows(got, _megabyte_reference(shape, sql))


@pytest.mark.parametrize("shape", sorted(n for n, (_, valid) in _MEGABYTE.items() if not valid))
def test_every_invalid_megabyte_shape_is_a_sql_error(shape):
    sql = _MEGABYTE[shape][0]
    for partitions in (1, 2):
        with pytest.raises(vs.SqlError) as info:
            vs.query(sql, {"t": _TABLE}, partitions=partitions)
        assert "^" in str(info.value).splitlines()[-1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_run_of_column_plus_constant_items_equals_duckdb_and_overflows_alike(seed):
    """Many ``a + k`` / ``a - k`` items of one column are computed as one 2-D operation per
    batch (Evaluator.columns): the same values as DuckDB, NULLs kept, and a value leaving
    BIGINT raises the error the item alone raises (docs/SQL.md §2)."""
    import numpy as np
    import pyarrow as pa
    from reference import assert_rows_equal, duck

    rng = np.random.default_rng(seed)
    n = 50
    a = pa.array(rng.integers(-10 ** 12, 10 ** 12, n), mask=rng.random(n) < 0.2)
    f = pa.array(rng.random(n) * 100 - 50, mask=rng.random(n) < 0.2)
    t = pa.table({"a": a, "f": f})
    ks = rng.integers(-10 ** 15, 10 ** 15, 40).tolist() + [0, -1, 1]
    items = [f"a {'+' if i % 2 else '-'} {k} AS c{i}" for i, k in enumerate(ks)]
    items += [f"f + {k / 7:.4f} AS d{i}" for i, k in enumerate(ks[:10])]
    sql = f"SELECT {', '.join(items)} FROM t"
    assert_rows_equal(vs.query(sql, {"t": t}).to_pylist(), duck(sql, t=t))
    big = pa.table({"a": pa.array([1, None, 2 ** 63 - 10], pa.int64())})
    alone = "SELECT a + 20 AS x FROM t"
    with pytest.raises(vs.VelostreamError) as one:
        vs.query(alone, {"t": big})
    with pytest.raises(vs.VelostreamError) as many:
        vs.query("SELECT a + 1 AS y, a + 20 AS x, a - 5 AS z FROM t", {"t": big})
    assert str(many.value) == str(one.value)


def test_column_plus_integer_items_bind_as_each_alone():
    """The planner binds the first ``column +/- integer`` item of each column and operator and
    makes the others from it: every item's bound expression equals what binding it alone makes,
    for every column type, and a type that takes no ``+`` is the error binding it alone gives,
    at the first such item."""
    from velostream.batch import DECIMAL, SqlType
    from velostream.exec.expressions import Scope, bind
    from velostream.planner import plan_statement

    schema = {"i": SqlType("INT64"), "f": SqlType("FLOAT64"), "d": DECIMAL(10, 2),
              "ts": SqlType("TIMESTAMP"), "n": SqlType("NULL"), "s": SqlType("STRING")}
    rng = random.Random(5)
    items = [f"{rng.choice('ifd')}{'' if rng.random() < 0.5 else 's'} {rng.choice('+-')} "
             f"{rng.choice([0, 1, 7, 9223372036854775807])}" for _ in range(300)]
    items = [it.replace("is ", "ts ").replace("fs ", "n ").replace("ds ", "d ") for it in items]
    sql = "SELECT " + ", ".join(f"{it} AS c{k}" for k, it in enumerate(items)) + " FROM t"
    stmt = sql_parser.parse(sql, {})
    plan = plan_statement(stmt, {"t": schema})
    scope = Scope(stmt.sql, schema)
    alone = [bind(item.expr, scope, None) for item in stmt.select.items]
    assert [b for _, b in plan.outputs] == alone
    assert [n for n, _ in plan.outputs] == [f"c{k}" for k in range(len(items))]
    bad = "SELECT i + 1 AS a, s + 1 AS b, i - 2 AS c, s + 2 AS d FROM t"
    with pytest.raises(vs.SqlError) as many:
        plan_statement(sql_parser.parse(bad, {}), {"t": schema})
    with pytest.raises(vs.SqlError) as one:
        plan_statement(sql_parser.parse("SELECT i + 1 AS a, s + 1 AS b FROM t", {}),
                       {"t": schema})
    assert (many.value.message, many.value.line, many.value.column) == \
           (one.value.message, one.value.line, one.value.column)


@pytest.mark.parametrize("seed", range(4))
def test_conversions_without_pandas_give_what_pyarrow_gives(seed):
    """A query's own conversions (a dict of Python lists, a computed column, NULLs and values
    of an input column) are made from buffers rather than by pa.array / to_numpy, which import
    pandas: the same arrays and numpy values as pyarrow's, the same error for what they do not
    take (an int beyond BIGINT, text that is not UTF-8)."""
    import numpy as np
    import pyarrow as pa
    from velostream import batch as vb

    rng = random.Random(seed)
    pools = [
        [0, 1, -1, 2 ** 63 - 1, -2 ** 63, 12345],
        [0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e308],
        ["", "a", "é😀", "it's", "x" * 50],
        [True, False],
        [1, 2.5], [True, 1], [2 ** 63], [-2 ** 63 - 1], ["\ud800"], [np.int64(3)], [],
    ]
    for pool in pools:
        for _ in range(5):
            n = rng.randint(0, 40)
            values = [None if pool == [] or rng.random() < 0.2 else rng.choice(pool)
                      for _ in range(n)] if pool else []
            try:
                want = pa.array(values)
            except Exception as e:  # noqa: BLE001 - the same error, whatever it is
                with pytest.raises(type(e)):
                    vb.list_to_arrow(values)
                continue
            got = vb.list_to_arrow(values)
            got.validate(full=True)
            assert got.type == want.type
            assert got.to_pylist().__repr__() == want.to_pylist().__repr__()  # NaN alike
    for dtype, t in [(np.int64, pa.int64()), (np.float64, pa.float64()), (np.bool_, pa.bool_())]:
        n = rng.randint(1, 70)
        values = (np.array([rng.randint(-99, 99) for _ in range(n)]) % (2 if dtype is np.bool_
                                                                          else 1000)).astype(dtype)
        for valid in [None, np.array([rng.random() < 0.7 for _ in range(n)])]:
            got = vb.numpy_to_arrow(values, valid, t)
            got.validate(full=True)
            want = pa.array(values, t, mask=None if valid is None else ~valid)
            assert got.equals(want) and got.null_count == want.null_count
            for lo in range(0, n, 7):  # back to numpy, from an offset
                part = want.slice(lo, rng.randint(0, n))
                assert np.array_equal(vb._valid_of(part) if part.null_count else
                                      np.ones(len(part), bool),
                                      part.is_valid().to_numpy(zero_copy_only=False))
                filled = part.fill_null(vb._zero_of(t))
                assert np.array_equal(vb._numbers_of(filled),
                                      filled.to_numpy(zero_copy_only=False))


def test_a_fresh_process_runs_a_query_of_python_lists_without_importing_pandas():
    """pyarrow imports pandas the first time it converts a Python or numpy value (0.1-0.2 s of a
    fresh process's first query); a query's own conversions do without, so a program that never
    uses pandas does not pay for it."""
    import subprocess
    import sys

    code = "\n".join([
        "import sys, velostream as vs",
        "t = {'a': [1, 2, None], 'b': ['s1', 'x', None], 'f': [0.5, None, 2.0]}",
        "for sql in ['SELECT a, a + 1 AS c1, a - 2 AS c2, 5, b, f FROM t',",
        "            \"SELECT a FROM t WHERE a = 1 OR b = 's1' OR a = 2 OR b = 'x'\",",
        "            'SELECT a FROM t WHERE a IN (1, 2, 3)', 'SELECT b FROM t WHERE a > 1']:",
        "    vs.query(sql, {'t': t}).to_pylist()",
        "print('pandas' in sys.modules)",
    ])
    from conftest import subprocess_env  # the installed package, never the checkout
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("seed", range(6))
def test_runs_of_a_select_list_planned_at_once_name_and_bind_as_one_by_one(seed, monkeypatch):
    """The planner names and binds a run of one repeated column, or of integer constants, at
    once (planner._runs): the same names (duplicates numbered, clashes with aliases and with
    other items' default names) and the same bound items as planning them one by one."""
    from velostream import planner as planner_module
    from velostream.batch import SqlType

    rng = random.Random(seed)
    schema = {"a": SqlType("INT64"), "b": SqlType("FLOAT64"), "a_3": SqlType("INT64")}
    pool = ["a", "b", "a_3", "7", "-1", "9223372036854775807", "a AS col45", "1 AS a_3",
            "b AS a_1", "2.5", "'s'", "NULL", "a + 1", "a AS a", "col7", "3 AS col2"]

    def select_list():
        out = []
        while len(out) < 400:
            item = rng.choice(pool)
            if item == "col7":
                continue  # not a column of t
            out += [item] * rng.choice([1, 1, 2, 15, 16, 40])
        return out

    runs = 0
    for _ in range(4):
        sql = f"SELECT {', '.join(select_list())} FROM t"
        stmt = sql_parser.parse(sql, {})
        at_once = planner_module.plan_statement(stmt, {"t": schema}).outputs
        with monkeypatch.context() as m:
            m.setattr(planner_module, "_runs", lambda items: [(0, len(items), None)])
            one_by_one = planner_module.plan_statement(stmt, {"t": schema}).outputs
        assert at_once == one_by_one
        runs += sum(run is not None for _, _, run in planner_module._runs(stmt.select.items))
    assert runs  # the runs were there to plan at once
