"""Any SQL text runs or raises SqlError (docs/SQL.md §7): never another exception, however long,
deep or strange the text, with line, column and caret, and the same error at every partition count
(``vs.query`` at 1, 2 and 4 partitions, ``vs.Engine``, ``vs.explain``, ``velostream validate``).

A seeded mutation fuzzer runs broken variants of valid queries of the dialect; explicit tests cover
nesting depth, literal ranges, window and buffer bounds, odd characters and 1 MB texts.
"""
from __future__ import annotations

import random
import re
import sys
import threading

import duckdb
import pyarrow as pa
import pytest

import velostream as vs
from velostream.errors import OutOfRangeError
from velostream.sql.parser import MAX_EXPRESSION_DEPTH

TOO_DEEP = f"expression nested too deeply (more than {MAX_EXPRESSION_DEPTH} levels)"


def make_data(seed: int = 7, n: int = 40) -> dict:
    """Seeded rows with NULLs and edge values; event times in order, a few seconds apart."""
    rng = random.Random(seed)
    pick = lambda vals: [rng.choice(vals) for _ in range(n)]  # noqa: E731
    return {
        "k": pick(["a", "b", "c", "ab", None]),
        "x": pick([0, 1, 2, 3, 5, -7, 2 ** 31, None]),
        "y": pick([0.0, 1.5, -2.25, 3.0, 1e300, None]),
        "s": pick(["abc", "B_d", "", "a_%", "12", None]),
        "_TIMESTAMP": sorted(rng.randrange(0, 10_000) for _ in range(n)),
    }


DATA = make_data()

# Valid queries of the dialect, in the shapes docs/SQL.md and tests/test_sql_parser.py use, over
# one source ``t`` (columns k, x, y, s and the event time).
CORPUS = [
    "SELECT k, x * 2 AS x2 FROM t WHERE y > 1.5 AND s LIKE 'a%'",
    "SELECT k, COUNT(*) AS n, SUM(x) AS sx, AVG(y) AS ay FROM t GROUP BY k",
    "SELECT k, COUNT(*) AS n FROM t GROUP BY k HAVING COUNT(*) > 1 EMIT FINAL",
    "SELECT k, MAX(y) AS m, _WINDOW_START AS ws FROM t GROUP BY k WINDOW TUMBLING(1s)",
    "SELECT k, MIN(x) AS m FROM t GROUP BY k WINDOW SLIDING(INTERVAL '2' SECOND, 1s)",
    "SELECT k, COUNT(*) AS n FROM t GROUP BY k WINDOW SESSION(500ms) EMIT CHANGES",
    "SELECT k, LAG(x, 1) OVER (ROWS WINDOW BUFFER 3 ROWS PARTITION BY k ORDER BY _TIMESTAMP) "
    "AS prev FROM t",
    "SELECT ROW_NUMBER() OVER (ROWS WINDOW BUFFER 5 ROWS PARTITION BY k) AS rn, x FROM t",
    "SELECT CASE WHEN x > 2 THEN 'big' WHEN x IS NULL THEN 'none' ELSE 'small' END AS c FROM t",
    "SELECT CASE k WHEN 'a' THEN 1 WHEN 'b' THEN 2 END AS c FROM t",
    "SELECT CAST(x AS DECIMAL(18, 2)) AS d, x::VARCHAR AS xs, TRY_CAST(s AS INTEGER) AS si FROM t",
    "SELECT DISTINCT k FROM t",
    "SELECT x FROM t WHERE x BETWEEN 1 AND 3 OR x NOT IN (4, 5) AND NOT (s IS NULL) LIMIT 5",
    "SELECT UPPER(s) || '-' || k AS u, COALESCE(y, 0) AS y0, ABS(x - 3) AS a FROM t",
    "SELECT SUBSTRING(s FROM 1 FOR 2) AS p, LENGTH(s) AS n, ROUND(y, 1) AS r FROM t "
    "WHERE s ILIKE '%B%'",
    "CREATE STREAM out AS SELECT k, x FROM t WHERE x > ${MINX:-0} WITH ('sink.topic' = 'out')",
    "SELECT k, COUNT(DISTINCT x) AS d, STDDEV(y) AS sd FROM t GROUP BY k",
    "SELECT x % 2 AS m, -x AS neg, x / 2 AS h, x - -1 AS p FROM t",
    "SELECT tt.x, \"k\" FROM t AS tt WHERE tt.x <> 1 -- trailing comment",
    "SELECT /* inline */ GREATEST(x, 2) AS g, NULLIF(x, 2) AS n, s LIKE 'a#_%' ESCAPE '#' AS l "
    "FROM t",
    "SELECT * FROM t WHERE _TIMESTAMP >= 1000 AND k IS NOT NULL",
    "SELECT k, SUM(x) AS sx FROM t GROUP BY k WINDOW TUMBLING(_TIMESTAMP, INTERVAL '1' MINUTE)",
]

# what a mutation may insert: words, operators, punctuation, literals at and past the limits,
# and characters a lexer may trip on
INSERTS = [
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "WINDOW", "TUMBLING", "SLIDING", "SESSION",
    "LIMIT", "EMIT", "WITH", "AND", "OR", "NOT", "IS", "NULL", "IN", "BETWEEN", "LIKE", "ESCAPE",
    "CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "TRY_CAST", "AS", "OVER", "ROWS", "BUFFER",
    "PARTITION", "ORDER", "INTERVAL", "DAY", "COUNT", "SUM", "LAG", "x", "k", "t", "*", "+", "-",
    "/", "%", "||", "=", "<>", "<", ">=", "::", "(", ")", ",", ".", ";", "'", '"', "/*", "*/", "--",
    "0", "1", "-1", "1.5", "1e999", "-1e999", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "99999999999999999999999999", "1" * 5000, "0." + "1" * 5000,
    "500ms", "99999999999999999999d", "0s", "12abc", "'it''s'", "''", "\"\"", "\"q\"\"x\"",
    "${", "${X", "${X:-1}", "${UNSET_VAR}", "$$", "#", "@", "?", "[", "]", "{", "}", "\\",
    "\x00", "\x0c", "\u2028", "\u200b", "\U0001F600", "\u00e9", "\r\n", "\t",
    "INTERVAL '99999999999999999999' DAY", "INTERVAL '1e400' HOUR", "INTERVAL '0.0001' SECOND",
]


def _words(sql: str) -> list[str]:
    return re.findall(r"'(?:''|[^'])*'|\"(?:\"\"|[^\"])*\"|\w+|::|<>|!=|<=|>=|\|\||\S", sql)


def mutate(rng: random.Random, sql: str) -> str:
    words = _words(sql)
    if not words:  # truncated to nothing by an earlier mutation
        return sql + rng.choice(INSERTS)
    op = rng.randrange(9)
    i = rng.randrange(len(words))
    if op == 0:
        del words[i]
    elif op == 1:
        words.insert(i, words[i])
    elif op == 2 and i + 1 < len(words):
        words[i], words[i + 1] = words[i + 1], words[i]
    elif op == 3:
        words.insert(i, rng.choice(INSERTS))
    elif op == 4:
        return sql[:rng.randrange(len(sql) + 1)]
    elif op == 5:  # nest one word deeply, around the limit or far past it
        d = rng.choice([MAX_EXPRESSION_DEPTH - 1, MAX_EXPRESSION_DEPTH + 1, 3000])
        opener = rng.choice(["(", "ABS(", "NOT ", "- "])
        closer = ")" if opener.endswith("(") else ""
        words[i] = opener * d + words[i] + closer * d
    elif op == 6:  # a long flat chain
        words[i] = rng.choice(["+", " OR ", "||", "*", "::INT"]).join([words[i]] * rng.choice([10, 70, 5000]))
    elif op == 7:
        nums = [j for j, w in enumerate(words) if w.isdigit()] or [i]
        words[rng.choice(nums)] = rng.choice(["99999999999999999999999999", "9223372036854775808",
                                              "1" * 4400, "1e999", "0"])
    else:  # random characters, any code point
        pos = rng.randrange(len(sql) + 1)
        junk = "".join(chr(rng.choice([rng.randrange(0, 128), rng.randrange(128, 0x3000),
                                       rng.randrange(0x10000, 0x10FFFF)]))
                       for _ in range(rng.randrange(1, 4)))
        junk = "".join(c for c in junk if not 0xD800 <= ord(c) < 0xE000)  # no lone surrogates
        return sql[:pos] + junk + sql[pos:]
    return " ".join(words)


def check_sql_error(err: vs.SqlError, sql: str) -> None:
    assert err.line >= 1 and err.column >= 1, (err, sql)
    if sql:  # an empty text has no line to show
        assert "^" in str(err).splitlines()[-1], (str(err)[:500], sql[:200])


def outcome(run, sql: str):
    """('ok',), ('SqlError', type, message, line, column) or ('OutOfRange',); any other
    exception fails the test with the text that caused it."""
    try:
        run()
        return ("ok",)
    except vs.SqlError as err:
        check_sql_error(err, sql)
        return ("SqlError", type(err).__name__, err.message, err.line, err.column)
    except OutOfRangeError:  # a value of the data out of range (docs/SQL.md §2), not the text
        return ("OutOfRange",)
    except BaseException as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{type(exc).__name__}: {str(exc)[:300]}\n  for SQL {sql[:300]!r}")


def outcomes(sql: str, data=DATA, partitions=(1, 2)):
    env = {"X": "1"}
    got = {p: outcome(lambda: vs.query(sql, {"t": data}, partitions=p, env=env), sql)
           for p in partitions}
    got["explain"] = outcome(lambda: vs.explain(sql, {"t": data}, env=env), sql)
    return got


def assert_consistent(sql: str, got: dict) -> None:
    first = got[1]
    for p, o in got.items():
        if p == "explain":  # no data: a run-time OutOfRange or a source check may differ
            assert (o[0] == "SqlError") == (first[0] == "SqlError"), (sql[:300], got)
        else:
            assert o == first, (sql[:300], got)


# ------------------------------------------------------------------------------------- fuzzer
def test_corpus_runs():
    for sql in CORPUS:
        got = outcomes(sql)
        assert got[1] == ("ok",), (sql, got)
        assert_consistent(sql, got)


@pytest.mark.parametrize("seed", range(6))
def test_mutated_queries_run_or_raise_the_same_sql_error(seed):
    rng = random.Random(seed)
    for _ in range(50):
        sql = rng.choice(CORPUS)
        for _ in range(rng.choice([1, 1, 2, 3])):
            sql = mutate(rng, sql)
        assert_consistent(sql, outcomes(sql))


# --------------------------------------------------------------------------------- nesting depth
def _at_every_entry(sql: str, message: str, data=DATA):
    """The same SqlError from every entry point; returns it."""
    errors = []
    for run in (lambda: vs.query(sql, {"t": data}), lambda: vs.query(sql, {"t": data}, partitions=2),
                lambda: vs.query(sql, {"t": data}, partitions=4),
                lambda: vs.Engine(sql).push("t", data), lambda: vs.explain(sql),
                lambda: vs.explain(sql, {"t": data})):
        with pytest.raises(vs.SqlError) as info:
            run()
        check_sql_error(info.value, sql)
        errors.append(info.value)
    assert {(e.message, e.line, e.column) for e in errors} == {(message, errors[0].line,
                                                                errors[0].column)}
    return errors[0]


def test_deep_parentheses():
    sql = "SELECT " + "(" * 3000 + "x" + ")" * 3000 + " AS y FROM t"
    err = _at_every_entry(sql, TOO_DEEP)
    assert err.column == len("SELECT ") + MAX_EXPRESSION_DEPTH + 1  # the first token too deep


@pytest.mark.parametrize("chain,unit", [("+", "x"), ("||", "s"), ("*", "x")])
def test_long_operator_chain(chain, unit):
    sql = "SELECT " + chain.join([unit] * 5000) + " AS y FROM t"
    err = _at_every_entry(sql, TOO_DEEP)
    # at the operator that makes the tree one level too deep
    offsets = [m.start() for m in re.finditer(re.escape(chain.strip()), sql)]
    assert err.column - 1 in offsets[:MAX_EXPRESSION_DEPTH]


@pytest.mark.parametrize("prefix", ["NOT ", "- ", "+ "])
def test_long_prefix_chain(prefix):
    target = "x > 1" if prefix == "NOT " else "x"
    _at_every_entry("SELECT " + prefix * 3000 + target + " AS y FROM t", TOO_DEEP)


def test_long_cast_chain():
    _at_every_entry("SELECT x" + "::BIGINT" * 3000 + " AS y FROM t", TOO_DEEP)


def test_deep_functions_case_and_subtrees():
    for sql in ["SELECT " + "ABS(" * 300 + "x" + ")" * 300 + " AS y FROM t",
                "SELECT " + "CASE WHEN x > 0 THEN " * 100 + "x" + " END" * 100 + " AS y FROM t",
                "SELECT " + "COALESCE(" * 100 + "x" + ", 1)" * 100 + " AS y FROM t",
                "SELECT x FROM t WHERE " + "x IN (" * 100 + "1" + ")" * 100,
                # deep only as a whole: parentheses keep each operator chain short
                "SELECT " + "(x + " * 70 + "x" + ")" * 70 + " AS y FROM t"]:
        _at_every_entry(sql, TOO_DEEP)


def _nested(depth: int) -> str:
    """An expression whose tree is exactly ``depth`` levels deep: (((x + 1) + 1) ...)."""
    e = "x"
    for _ in range(depth - 1):
        e = f"({e} + 1)"
    return e


def _duck(sql: str, data: dict) -> list:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (k VARCHAR, x BIGINT, y DOUBLE, s VARCHAR, _TIMESTAMP BIGINT)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                    list(zip(data["k"], data["x"], data["y"], data["s"], data["_TIMESTAMP"])))
    return con.execute(sql).fetchall()


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_depth_limit_itself_runs_and_agrees_with_duckdb(partitions):
    data = {**DATA, "x": [v if v is None or abs(v) < 2 ** 40 else 1 for v in DATA["x"]]}
    sql = f"SELECT {_nested(MAX_EXPRESSION_DEPTH)} AS y FROM t"
    got = sorted((r["y"] is None, r["y"]) for r in vs.query(sql, {"t": data},
                                                            partitions=partitions))
    want = sorted((r[0] is None, r[0]) for r in _duck(sql, data))
    assert got == want
    _at_every_entry(f"SELECT {_nested(MAX_EXPRESSION_DEPTH + 1)} AS y FROM t", TOO_DEEP)


def test_depth_limit_runs_from_a_deep_caller_and_a_thread():
    """The limit leaves room for the caller's own stack (here 150 frames) and for a thread."""
    sql = "SELECT " + "ABS(" * (MAX_EXPRESSION_DEPTH - 1) + "x" + ")" * (MAX_EXPRESSION_DEPTH - 1) \
        + " AS y, " + _nested(MAX_EXPRESSION_DEPTH) + " AS z FROM t"

    def deep(n):
        if n:
            return deep(n - 1)
        return (vs.query(sql, {"t": DATA}, partitions=2).to_pylist(), vs.explain(sql))

    assert len(deep(150)[0]) == len(DATA["x"])
    box = []
    th = threading.Thread(target=lambda: box.append(deep(0)))
    th.start()
    th.join()
    assert box and len(box[0][0]) == len(DATA["x"])


def test_exponential_repetition_is_refused():
    """BETWEEN evaluates its operand twice: nested 20 levels it would take a million steps per
    batch (and explain would print a text of that size); a SqlError says so at once."""
    e = "x"
    for _ in range(20):
        e = f"CAST(({e} BETWEEN 1 AND 2) AS INT)"
    for run in (lambda: vs.query(f"SELECT {e} AS y FROM t", {"t": DATA}, partitions=2),
                lambda: vs.explain(f"SELECT {e} AS y FROM t")):
        with pytest.raises(vs.SqlError, match="expression too large"):
            run()
    # a few levels still run, and agree with DuckDB
    small = "x"
    for _ in range(3):
        small = f"CAST(({small} BETWEEN 1 AND 2) AS INT)"
    sql = f"SELECT {small} AS y FROM t"
    assert sorted(str(r["y"]) for r in vs.query(sql, {"t": DATA})) == \
        sorted(str(r[0]) for r in _duck(sql, DATA))
    # a simple CASE evaluates its operand once per WHEN: nested, that multiplies too; refused at
    # once (binding it is linear: the binder binds the operand once per CASE)
    case = "x"
    for _ in range(40):
        case = f"CASE {case} WHEN 1 THEN 2 WHEN 2 THEN 3 ELSE 0 END"
    with pytest.raises(vs.SqlError, match="expression too large"):
        vs.query(f"SELECT {case} AS y FROM t", {"t": DATA})
    case = "x"
    for _ in range(4):
        case = f"CASE {case} WHEN 1 THEN 2 WHEN 2 THEN 3 ELSE 0 END"
    sql = f"SELECT {case} AS y FROM t"
    assert sorted(str(r["y"]) for r in vs.query(sql, {"t": DATA}, partitions=2)) == \
        sorted(str(r[0]) for r in _duck(sql, DATA))


# ------------------------------------------------------------------------------------ literals
def test_integer_literals_beyond_bigint():
    for lit in ["99999999999999999999999999", "9223372036854775808", "1" * 5000]:
        sql = f"SELECT x + {lit} AS y FROM t"
        err = _at_every_entry(sql, _at_every_entry_message(sql))
        assert err.column == sql.index(lit) + 1
        assert "out of range for BIGINT" in err.message
    # the extremes themselves are BIGINT, as in DuckDB
    sql = "SELECT -9223372036854775808 AS lo, 9223372036854775807 AS hi FROM t LIMIT 1"
    assert [tuple(r.values()) for r in vs.query(sql, {"t": DATA})] == _duck(sql, DATA)
    for sql in ["SELECT - -9223372036854775808 AS y FROM t", "SELECT +9223372036854775808 AS y FROM t",
                "SELECT -9223372036854775808::VARCHAR AS y FROM t"]:
        _at_every_entry(sql, _at_every_entry_message(sql))


def _at_every_entry_message(sql: str) -> str:
    with pytest.raises(vs.SqlError) as info:
        vs.explain(sql)
    return info.value.message


def test_double_literal_out_of_range_is_infinity_as_in_duckdb():
    sql = "SELECT 1e999 AS a, -1e999 AS b FROM t LIMIT 1"
    for p in (1, 2):
        assert [tuple(r.values()) for r in vs.query(sql, {"t": DATA}, partitions=p)] == \
            _duck(sql, DATA)
    assert vs.query("SELECT 0." + "1" * 100_000 + " AS a FROM t LIMIT 1",
                    {"t": DATA}).to_pylist() == [{"a": 0.1111111111111111}]


@pytest.mark.parametrize("sql,part", [
    ("SELECT x FROM t LIMIT 99999999999999999999999", "out of range for BIGINT"),
    ("SELECT x FROM t LIMIT 9223372036854775808", "LIMIT must be at most"),
    ("SELECT x + INTERVAL '99999999999999999999' DAY AS y FROM t", "out of range"),
    ("SELECT x + INTERVAL '1" + "0" * 5000 + "' DAY AS y FROM t", "out of range"),
    ("SELECT x + INTERVAL 1e400 HOUR AS y FROM t", "out of range"),
    ("SELECT x + INTERVAL '0.0001' SECOND AS y FROM t", "not a whole number of milliseconds"),
    ("SELECT x + 99999999999999999999d AS y FROM t", "out of range"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k WINDOW TUMBLING(99999999999999999999 DAY)",
     "out of range"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k WINDOW TUMBLING(INTERVAL '99999999999999999999' DAY)",
     "out of range"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k WINDOW TUMBLING(INTERVAL '36501' DAY)",
     "at most 36,500 days"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k WINDOW SLIDING(1d, 0s)", "must be positive"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k WINDOW SESSION(INTERVAL '-5' MINUTE)",
     "must be positive"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k WINDOW TUMBLING(0ms)", "must be positive"),
    ("SELECT LAG(x) OVER (ROWS WINDOW BUFFER 99999999999999999999999 ROWS) AS l FROM t",
     "out of range"),
    ("SELECT LAG(x) OVER (ROWS WINDOW BUFFER 2000000 ROWS) AS l FROM t", "at most 1,000,000"),
    ("SELECT LAG(x, 99999999999999999999) OVER (ROWS WINDOW BUFFER 3 ROWS) AS l FROM t",
     "out of range"),
    ("SELECT LAG(x, 9223372036854775807) OVER (ROWS WINDOW BUFFER 3 ROWS) AS l FROM t",
     "LAG offset must be between"),
    ("SELECT CAST(x AS DECIMAL(99999999999999999999, 2)) AS d FROM t", "out of range for BIGINT"),
])
def test_numbers_out_of_range_are_sql_errors(sql, part):
    err = _at_every_entry(sql, _at_every_entry_message(sql))
    assert part in err.message


# ---------------------------------------------------------------------------- strange texts
@pytest.mark.parametrize("sql,part", [
    ("", "expected SELECT or CREATE"),
    ("   \n\t ", "expected SELECT or CREATE"),
    ("-- only a comment", "expected SELECT or CREATE"),
    ("SELECT 'abc FROM t", "unterminated string literal"),
    ('SELECT "abc FROM t', "unterminated quoted identifier"),
    ("SELECT x FROM t /* never closed", "unterminated comment"),
    ("SELECT x FROM t /*/", "unterminated comment"),
    ("SELECT x\x00 FROM t", "unexpected character U+0000"),
    ("SELECT x\u200b FROM t", "unexpected character U+200B"),
    ("SELECT x \U0001F600 FROM t", "unexpected character"),
    ("SELECT ${ FROM t", "malformed variable reference"),
    ("SELECT ${X FROM t", "malformed variable reference"),
    ("SELECT ${1X} FROM t", "malformed variable reference"),
    ("SELECT ${UNSET_SURELY_NOT_SET_VAR} FROM t", "is not set"),
    ("SELECT x FROM t WHERE x = ${QUOTE}", "unterminated string literal"),
    ("SELECT x + FROM t", "expected an expression"),
    ("SELECT x FROM t WHERE x +", "expected an expression"),
    ("SELECT x FROM t WHERE (x > 1", "expected ')'"),
    ("SELECT CASE WHEN x > 1 THEN 1 FROM t", "expected WHEN, ELSE or END"),
    ("SELECT CASE x END FROM t", "expected WHEN"),
    ("SELECT CAST(x INTEGER) FROM t", "AS in CAST"),
    ("SELECT COUNT(*) AS n FROM t GROUP BY k WINDOW TUMBLING(", "expected a duration"),
    ("SELECT x FROM t WHERE x IN ()", "expected an expression"),
    ("SELECT x FROM t LIMIT -1", "non-negative integer"),
    ("SELECT x\x0cFROM t WHERE \u2028 nope", "unknown column"),
])
def test_strange_texts(sql, part):
    env_sql = sql  # ${QUOTE} is substituted by env below, as every entry point takes env
    errors = []
    for run in (lambda: vs.query(env_sql, {"t": DATA}, env={"QUOTE": "'"}),
                lambda: vs.query(env_sql, {"t": DATA}, partitions=2, env={"QUOTE": "'"}),
                lambda: vs.explain(env_sql, {"t": DATA}, env={"QUOTE": "'"}),
                lambda: vs.Engine(env_sql, env={"QUOTE": "'"}).push("t", DATA)):
        with pytest.raises(vs.SqlError) as info:
            run()
        check_sql_error(info.value, sql)
        errors.append((info.value.message, info.value.line, info.value.column))
    assert len(set(errors)) == 1, errors
    assert part in errors[0][0]


def test_caret_is_on_the_line_the_error_names():
    sql = "SELECT x\x0c,\u2028 y\r\nFROM t\rWHERE nope > 1"
    with pytest.raises(vs.SqlError) as info:
        vs.query(sql, {"t": DATA})
    err = info.value
    assert (err.line, err.column) == (3, 7)
    shown, caret = str(err).splitlines()[-2:]
    assert shown.strip() == "WHERE nope > 1" and caret.index("^") - 2 == 6


# ------------------------------------------------------------------------------------- 1 MB texts
MB = 1_000_000


def test_one_megabyte_texts_finish():
    """No timing assertion (the pytest timeout guards): each 1 MB text parses or fails."""
    texts_failing = [
        "SELECT " + "(" * MB + "x",
        "SELECT " + "+".join(["x"] * (MB // 2)) + " AS y FROM t",
        "SELECT " + "NOT " * (MB // 4) + "TRUE FROM t",
        "SELECT x FROM t " + "/**/${X:-1}" * (MB // 11),
        "SELECT " + "x, " * (MB // 3) + " FRM t",
        "SELECT x FROM t WHERE x = '" + "a" * MB,
        "SELECT x FROM t" + "\x00" * MB,
        "SELECT " + "9" * MB + " AS y FROM t",
    ]
    for sql in texts_failing:
        with pytest.raises(vs.SqlError) as info:
            vs.explain(sql, {"t": DATA}, env={"X": "1"})
        check_sql_error(info.value, sql)
    # these run
    big_string = "SELECT '" + "a''b" * (MB // 4) + "' AS s FROM t LIMIT 1"
    assert vs.query(big_string, {"t": DATA}).to_pylist() == [{"s": "a'b" * (MB // 4)}]
    comment = "SELECT x FROM t /*" + " " * MB + "*/ LIMIT 2"
    assert len(vs.query(comment, {"t": DATA}, partitions=2)) == 2
    in_list = "SELECT x FROM t WHERE x IN (" + ", ".join(["1"] * (MB // 3)) + ")"
    assert len(vs.query(in_list, {"t": DATA})) == DATA["x"].count(1)


# -------------------------------------------------------------------------------------------- CLI
def test_cli_validate_and_run_report_sql_errors(tmp_path):
    import subprocess

    from conftest import subprocess_env

    data = tmp_path / "in.csv"
    data.write_text("x\n1\n2\n")
    for expr, part in [("(" * 3000 + "x" + ")" * 3000, "nested too deeply"),
                       ("x + 99999999999999999999999999", "out of range for BIGINT")]:
        job = tmp_path / "job.sql"
        job.write_text(f"CREATE STREAM out AS SELECT {expr} AS y FROM src\n"
                       f"WITH ('src.type' = 'file_source', 'src.path' = '{data}', "
                       f"'src.format' = 'csv', 'out.type' = 'file_sink', "
                       f"'out.path' = '{tmp_path / 'out.jsonl'}')\n")
        for cmd in ("validate", "run"):
            # cwd away from the checkout: ``-m`` would import its uncompiled source tree first
            r = subprocess.run([sys.executable, "-m", "velostream", cmd, str(job)], cwd=tmp_path,
                               capture_output=True, text=True, env=subprocess_env(None), timeout=120)
            assert r.returncode == 2, (cmd, r.returncode, r.stderr[-2000:])
            assert part in r.stderr and "^" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("op,cond", [("OR", "x = {i}"), ("AND", "x <> {i}")])
def test_long_and_or_chains_run_as_duckdb(op, cond, partitions):
    """AND / OR chains of thousands of terms (generated filters) run: they are kept balanced,
    so they stay far below the depth limit, and the answer is DuckDB's."""
    from reference import assert_rows_equal, duck
    t = pa.table({"x": pa.array([1, 2, 9999, None, 3000, -5], pa.int64())})
    where = f" {op} ".join(cond.format(i=i) for i in range(3, 3003))
    got = vs.query(f"SELECT x FROM t WHERE {where}", {"t": t}, partitions=partitions).to_pylist()
    want = duck(f"SELECT x FROM t WHERE {where}", t=t)
    assert_rows_equal([(r["x"],) for r in got], want)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_text_is_a_sql_error_with_a_caret(text):
    with pytest.raises(vs.SqlError) as err:
        vs.query(text, {"t": {"x": [1]}})
    assert err.value.line >= 1 and err.value.column >= 1 and "^" in str(err.value)


def test_an_unknown_function_is_reported_before_a_misplaced_emit(partitions):
    # (COUNT_IF was the example here until it became an aggregate: docs/SQL.md §5)
    with pytest.raises(vs.SqlError, match="unknown function COUNT_WHEN"):
        vs.query("SELECT COUNT_WHEN(x > 1) AS n FROM t EMIT FINAL", {"t": {"x": [1]}},
                 partitions=partitions)
