"""Time to parse and plan 1 MB SQL texts of many shapes (issue 13: "any SQL text runs or raises
SqlError within a second for texts up to 1 MB").

    python bench/sql_parse_size.py                 # every shape, best of 3, parse / explain / query
    python bench/sql_parse_size.py --repeat 5 --size 2000000 --shapes in_ints,or_chain

For each shape it prints the text's size and the best-of-N seconds of ``velostream.sql.parser.parse``
(parse), ``vs.explain(sql, {"t": table})`` (parse + plan) and ``vs.query(sql, {"t": table})``
(parse + plan + run over 3 rows; only for valid texts), then the median of the N queries and the
least CPU time (``time.process_time``) of one: on a shared machine the wall times wander with the
load, the CPU time much less. An invalid text must raise ``SqlError``; its time is reported under
every column it went through. The shapes are also in tests/test_sql_size.py (at small scale,
checked against DuckDB, and each at a megabyte through ``vs.query``), which asserts no times.
"""
from __future__ import annotations

import argparse
import statistics
import time

import velostream as vs
from velostream.errors import SqlError
from velostream.sql import parser as sql_parser

MB = 1_000_000


def _fill(head: str, unit, tail: str, size: int, sep: str = "") -> str:
    """``head`` + units ``unit(i)`` joined by ``sep`` until about ``size`` characters + ``tail``."""
    parts, n, i = [], len(head) + len(tail), 0
    while n < size:
        u = unit(i)
        parts.append(u)
        n += len(u) + len(sep)
        i += 1
    return head + sep.join(parts) + tail


def shapes(size: int) -> dict[str, tuple[str, bool]]:
    """name -> (sql, valid)."""
    depth = 60  # nested parentheses per item, under the depth limit (64)
    nested = "(" * depth + "a" + ")" * depth
    return {
        "in_ints": (_fill("SELECT a FROM t WHERE a IN (", lambda i: str(i), ")", size, ", "), True),
        "in_strings": (_fill("SELECT b FROM t WHERE b IN (", lambda i: f"'s{i}'", ")", size, ", "),
                       True),
        "or_chain": (_fill("SELECT a FROM t WHERE ", lambda i: f"a = {i}", "", size, " OR "), True),
        # two columns: stays a chain (not read as IN)
        "or_mixed": (_fill("SELECT a FROM t WHERE ", lambda i: f"a = {i}" if i % 2 else f"b = 's{i}'", "",
                           size, " OR "), True),
        "and_chain": (_fill("SELECT a FROM t WHERE ", lambda i: f"a != {i}", "", size, " AND "), True),
        "select_cols": (_fill("SELECT ", lambda i: "a", " FROM t", size, ", "), True),
        "select_ints": (_fill("SELECT ", lambda i: str(i), " FROM t", size, ", "), True),
        "select_exprs": (_fill("SELECT ", lambda i: f"a + {i} AS c{i}", " FROM t", size, ", "), True),
        "case_whens": (_fill("SELECT CASE", lambda i: f" WHEN a = {i} THEN {i}", " ELSE -1 END AS c FROM t",
                             size), True),
        "nested_parens": (_fill("SELECT ", lambda i: nested, " FROM t", size, ", "), True),
        "func_args": (_fill("SELECT COALESCE(", lambda i: str(i), ") AS c FROM t", size, ", "), False),
        "string_literal": ("SELECT '" + "x" * size + "' AS s FROM t", True),
        "comment": ("SELECT a /* " + "comment " * (size // 8) + " */ FROM t", True),
        "line_comments": (_fill("SELECT a ", lambda i: "-- a line comment\n", "FROM t", size), True),
        "many_lines": (_fill("SELECT a FROM t WHERE a IN (", lambda i: str(i), ")", size, ",\n"), True),
        "arith_chain": (_fill("SELECT a", lambda i: " + 1", " FROM t", size), False),
        "deep_parens": ("SELECT " + "(" * (size // 2) + "a" + ")" * (size // 2) + " FROM t", False),
        "trailing_garbage": (_fill("SELECT a FROM t WHERE a IN (", lambda i: str(i), ") garbage !",
                                   size, ", "), False),
        "unterminated_string": ("SELECT a FROM t WHERE b = '" + "x" * size, False),
        "missing_paren": (_fill("SELECT a FROM t WHERE a IN (", lambda i: str(i), "", size, ", "), False),
    }


def _times(fn, repeat: int) -> tuple[list[float], float]:
    """(the wall seconds of each of ``repeat`` runs, the least CPU seconds of one)."""
    wall, cpu = [], float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            fn()
        except SqlError:
            pass
        wall.append(time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def _best(fn, repeat: int) -> float:
    return min(_times(fn, repeat)[0])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=MB, help="characters per text (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    ap.add_argument("--shapes", default="", help="comma-separated shape names (default all)")
    args = ap.parse_args(argv)
    table = {"a": [1, 2, None], "b": ["s1", "x", None]}
    chosen = [s for s in args.shapes.split(",") if s]
    print(f"{'shape':<20} {'chars':>9} {'parse s':>8} {'explain s':>10} {'query s':>8} {'median':>7} "
          f"{'cpu s':>6}  outcome")
    for name, (sql, valid) in shapes(args.size).items():
        if chosen and name not in chosen:
            continue
        try:
            vs.explain(sql, {"t": table})
            outcome = "ok"
        except SqlError as e:
            outcome = f"SqlError at {e.line}:{e.column}"
        if outcome.startswith("SqlError") == valid:
            outcome += "  (UNEXPECTED)"
        parse_s = _best(lambda: sql_parser.parse(sql, {}), args.repeat)
        explain_s = _best(lambda: vs.explain(sql, {"t": table}), args.repeat)
        wall, cpu = (_times(lambda: vs.query(sql, {"t": table}), args.repeat) if valid
                     else ([float("nan")], float("nan")))
        print(f"{name:<20} {len(sql):>9,} {parse_s:>8.3f} {explain_s:>10.3f} {min(wall):>8.3f} "
              f"{statistics.median(wall):>7.3f} {cpu:>6.3f}  {outcome}", flush=True)


if __name__ == "__main__":
    main()
