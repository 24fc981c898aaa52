"""The compiled JSON path scanner (velostream/_core/json_path.pyx) and the way JSON functions
choose between it and the memo (velostream/exec/functions.py, section JSON).

Seeded random documents (nested objects and arrays, escapes, raw and escaped unicode, numbers in
every form, true/false/null, empty strings, random whitespace, keys given twice, invalid text,
NULL payloads) go through ``vs.query`` at partitions 1, 2 and 4 and through ``vs.Engine`` in
small batches, against DuckDB, which reads the same documents: a key given twice counts with its
first value in both (and an object result prints it twice). DuckDB differs in one documented way
(docs/FUNCTIONS.md, "Differences from DuckDB"): invalid JSON is NULL here (DuckDB raises), so
invalid documents are guarded with ``json_valid``.
Hypothesis then compares the compiled kernel with the orjson reference kernel row by row, on
documents that also hold what the scanner hands to the reference (floats of every magnitude,
19-digit runs, lone surrogates, deep nesting, objects and arrays to re-serialise).
"""
from __future__ import annotations

import json
import math
import random
import struct

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import velostream as vs
from velostream.exec import functions as F

# --------------------------------------------------------------------------- documents

_KEYS = ["a", "b", "n", "k y", "é", "tags"]
# numbers of every form and magnitude (a float prints as DuckDB prints it: 1e16 as
# 10000000000000000.0, 1e21 as 1e21, 1.234e-7 as 1.234e-7)
_NUMBERS = ["0", "-0", "7", "-12", "123456789012345678", "1.5", "-0.0", "1e2", "1E-3", "2.5e+10",
            "12.25", "0.0001", "-3.75E1", "1000000.0", "0.5e1", "-1.25E+2", "1e16", "1.5e20", "1e21",
            "-2.5E+22", "1.234e-6", "1.234e-7", "1e-300", "1.7976931348623157e308", "5e-324",
            "123456789.125e10", "0.1e-5"]
_LONG_NUMBERS = ["12345678901234567890", "1234567890123456789012"]  # beyond 64 bits: the reference's
_CHARS = ["a", "x", " ", "é", "€", "🙂", "\"", "\\", "/", "\n", "\t", "\u0001", "\u007f", "1", "9", "\u2028"]


def _value(rng: random.Random, depth: int = 0):
    """A JSON value as a tree: ("obj", [(key, value), ...]) (keys may repeat), ("arr", [...]),
    ("num", token), ("str", text), ("lit", "true" | "false" | "null")."""
    r = rng.random()
    if depth < 4 and r < 0.3:
        keys = rng.sample(_KEYS, rng.randint(0, 4))
        if keys and rng.random() < 0.25:
            keys.append(rng.choice(keys))  # a key given twice
        return ("obj", [(k, _value(rng, depth + 1)) for k in keys])
    if depth < 4 and r < 0.5:
        return ("arr", [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))])
    if r < 0.65:
        return ("num", rng.choice(_LONG_NUMBERS if rng.random() < 0.03 else _NUMBERS))
    if r < 0.9:
        text = "".join(rng.choice(_CHARS) for _ in range(rng.choice([0, 1, 3, 8])))
        if rng.random() < 0.02:
            text += "1234567890123456789"  # a 19-digit run: the reference reads it with json
        return ("str", text)
    return ("lit", rng.choice(["true", "false", "null"]))


def _string(text: str, rng: random.Random) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\t":
            out.append(rng.choice(["\\n" if ch == "\n" else "\\t", "\\u%04x" % ord(ch)]))
        elif ord(ch) < 0x20:
            out.append("\\u%04X" % ord(ch))
        elif ch == "/" and rng.random() < 0.5:
            out.append("\\/")
        elif ord(ch) > 0xFFFF and rng.random() < 0.5:  # a surrogate pair
            v = ord(ch) - 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)))
        elif 0x7F < ord(ch) <= 0xFFFF and rng.random() < 0.3:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out) + '"'


def _dump(v, rng: random.Random) -> str:
    """The tree as JSON text, with random whitespace and escapes."""
    def ws() -> str:
        return rng.choice(["", "", "", " ", "\n  ", "\t", " \r\n"])
    kind, body = v
    if kind == "obj":
        items = [f"{ws()}{_string(k, rng)}{ws()}:{ws()}{_dump(x, rng)}{ws()}" for k, x in body]
        return "{" + ",".join(items) + ws() + "}"
    if kind == "arr":
        return "[" + ",".join(f"{ws()}{_dump(x, rng)}{ws()}" for x in body) + ws() + "]"
    if kind == "str":
        return _string(body, rng)
    return body


def _invalid(text: str, rng: random.Random) -> str:
    """Text that no JSON reader takes (DuckDB's lenient extensions included)."""
    return rng.choice([
        lambda: text[:-1] if text[:1] in "{[" and len(text) > 2 else "{" + text,
        lambda: text + " x",
        lambda: "{'a': 1}",
        lambda: "{a: 1}",
        lambda: "",
        lambda: "tru",
        lambda: '{"a" 1}',
        lambda: '["x", 01]',
    ])()


def documents(seed: int, n: int, pool: int = 0) -> tuple[list, list]:
    """(payloads, what DuckDB reads for each): NULLs, invalid text, valid documents; with
    ``pool`` > 0 the rows repeat ``pool`` distinct documents."""
    rng = random.Random(seed)
    ours, theirs = [], []
    for i in range(pool or n):
        r = rng.random()
        if r < 0.06:
            ours.append(None)
            theirs.append(None)
        elif r < 0.14:
            bad = _invalid(_dump(_value(rng), rng), rng)
            ours.append(bad)
            theirs.append(bad)
        else:
            v = _value(rng)
            if rng.random() < 0.7:  # most documents are objects, as payloads are
                v = ("obj", [("n", ("num", str(i))), ("a", v), ("b", _value(rng))])
            ours.append(_dump(v, rng))
            theirs.append(_dump(v, random.Random(i)))
    if pool:
        pick = [rng.randrange(pool) for _ in range(n)]
        ours, theirs = [ours[p] for p in pick], [theirs[p] for p in pick]
    return ours, theirs


_PATHS = ["$.a", "$.b", "$.n", "$.a.b", "$.a.n", "$.b[0]", "$.a[1]", "$.a[#-1]", "$.a[#-2]",
          "$.b[1].a", '$."k y"', "$.é", "$.a.tags[0]", "/a/0", "/b", "/a/k y", "a", "$", "$[0]",
          "$[#-1]", "$.missing", "$.a[#]"]
_FUNCTIONS = [("JSON_EXTRACT", "json_extract", "::VARCHAR"), ("JSON_VALUE", "json_value", ""),
              ("JSON_EXTRACT_STRING", "json_extract_string", ""), ("JSON_EXISTS", "json_exists", "")]


def _cases(paths=_PATHS) -> list[tuple[str, str]]:
    return [(f"{ours}(j, '{p}')", f"CASE WHEN json_valid(jd) THEN {theirs}(jd, '{p}'){cast} END")
            for p in paths for ours, theirs, cast in _FUNCTIONS]


def _duck(cases, data: pa.Table) -> list[list]:
    con = duckdb.connect()
    con.register("t", data)
    cols = ", ".join(f"{d} AS r{k}" for k, (_, d) in enumerate(cases))
    rows = con.execute(f"SELECT {cols} FROM t ORDER BY i").fetchall()
    return [list(r) for r in zip(*rows)]


def _check(got_rows: list[dict], cases, data: pa.Table) -> None:
    got_rows = sorted(got_rows, key=lambda r: r["i"])
    want = _duck(cases, data)
    for k, (ours, theirs) in enumerate(cases):
        got = [r[f"r{k}"] for r in got_rows]
        bad = [(i, data["j"][i].as_py(), g, w) for i, (g, w) in enumerate(zip(got, want[k]))
               if g != w or type(g) is not type(w)]
        assert not bad, f"{ours} (DuckDB: {theirs}) differs (row, payload, ours, DuckDB): {bad[:3]}"


def _table(seed: int, n: int, pool: int = 0) -> pa.Table:
    ours, theirs = documents(seed, n, pool)
    return pa.table({"i": pa.array(range(n), pa.int64()), "j": pa.array(ours, pa.string()),
                     "jd": pa.array(theirs, pa.string())})


def _sql(cases) -> str:
    return "SELECT i, " + ", ".join(f"{o} AS r{k}" for k, (o, _) in enumerate(cases)) + " FROM t"


# --------------------------------------------------------------------------- against DuckDB


@pytest.mark.parametrize("pool", [0, 40], ids=["distinct", "repeating"])
def test_json_functions_against_duckdb(partitions, pool):  # partitions 1, 2 and 4 (conftest)
    data = _table(11 + pool, 700, pool)
    cases = _cases()
    _check(vs.query(_sql(cases), {"t": data}, partitions=partitions).to_pylist(), cases, data)


@pytest.mark.parametrize("pool", [0, 40], ids=["distinct", "repeating"])
def test_json_functions_in_small_batches(pool):
    """Many batches: the choice between the memo and every row is made again for each batch
    (samples, the periodic trip through the memo), and a filtered column arrives as codes."""
    data = _table(23 + pool, 2400, pool)
    cases = _cases(["$.a", "$.n", "$.a[#-1]", "/b", "$"])
    for sql in (_sql(cases), _sql(cases) + " WHERE j IS NULL OR j <> '{}'"):
        eng = vs.Engine(sql)
        rows = []
        for b in data.to_batches(max_chunksize=60):
            rows += eng.push("t", b).to_pylist()
        kept = data if "WHERE" not in sql else data.filter(
            pc.or_kleene(data["j"].is_null(), pc.not_equal(data["j"], "{}")))
        _check(rows, cases, kept)


@pytest.mark.parametrize("partitions", [1, 2])
def test_json_results_feed_later_steps(partitions):
    """Results kept in Arrow form for the output also group, filter and concatenate right."""
    data = _table(41, 3000)
    ours = vs.query("SELECT JSON_EXTRACT_STRING(j, '$.a') AS a, COUNT(*) AS c FROM t "
                    "WHERE JSON_EXISTS(j, '$.b') GROUP BY JSON_EXTRACT_STRING(j, '$.a') EMIT FINAL",
                    {"t": data}, partitions=partitions).to_pylist()
    con = duckdb.connect()
    con.register("t", data)
    want = con.execute("SELECT json_extract_string(jd, '$.a') AS a, count(*) AS c FROM t "
                       "WHERE CASE WHEN json_valid(jd) THEN json_exists(jd, '$.b') END GROUP BY 1").fetchall()
    assert sorted(((r["a"], r["c"]) for r in ours), key=repr) == sorted(want, key=repr)
    ours = vs.query("SELECT i, JSON_EXTRACT(j, '$.n') || '!' AS x FROM t", {"t": data},
                    partitions=partitions).to_pylist()
    want = con.execute("SELECT CASE WHEN json_valid(jd) THEN json_extract(jd, '$.n')::VARCHAR || '!' END "
                       "FROM t ORDER BY i").fetchall()
    assert [r["x"] for r in sorted(ours, key=lambda r: r["i"])] == [w[0] for w in want]


@pytest.mark.parametrize("kind", ["dictionary", "large_string", "string_view"])
def test_json_functions_on_every_string_type(kind):
    data = _table(31, 500, 60)
    j = data["j"].combine_chunks()
    j = j.dictionary_encode() if kind == "dictionary" else j.cast(getattr(pa, kind)())
    data = data.set_column(1, "j", j)
    cases = _cases(["$.a", "$.b[0]", "/a/0", "$"])
    _check(vs.query(_sql(cases), {"t": data}).to_pylist(), cases, data)


@pytest.mark.parametrize("partitions", [1, 2])
def test_floats_print_as_duckdb_prints_them(partitions):
    """Doubles of every magnitude and bit pattern, written the shortest way and other ways."""
    rng = random.Random(3)
    texts = []
    for _ in range(3000):
        if rng.random() < 0.5:
            x = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        else:
            x = rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30)
        if math.isfinite(x):
            texts.append(rng.choice([repr(x), "%.17g" % x, "%.3e" % x, "%.6f" % x]))
    docs = [rng.choice(['{"a": %s}', '[%s]', '{"a": [%s, {"b": %s}]}']).replace("%s", t) for t in texts]
    data = pa.table({"i": pa.array(range(len(docs)), pa.int64()), "j": pa.array(docs), "jd": pa.array(docs)})
    cases = [(f"{o}(j, '{p}')", f"{d}(jd, '{p}'){c}") for p in ["$.a", "$[0]", "$.a[1]"]
             for o, d, c in _FUNCTIONS[:3]]
    _check(vs.query(_sql(cases), {"t": data}, partitions=partitions).to_pylist(), cases, data)


def test_distinct_payloads_take_every_row_and_repeating_ones_the_memo(monkeypatch):
    """The choice itself: batches of new payloads run the kernel on every row, batches of
    repeated payloads go through the memo (the results are checked by the tests above)."""
    taken = []
    choose = F._json_mostly_new

    def spy(*args, **kwargs):
        taken.append(choose(*args, **kwargs))
        return taken[-1]
    monkeypatch.setattr(F, "_json_mostly_new", spy)
    for pool, expect in [(0, True), (20, False)]:
        taken.clear()
        data = _table(5, 3000, pool)
        eng = vs.Engine("SELECT JSON_VALUE(j, '$.a') AS v FROM t")
        for b in data.to_batches(max_chunksize=500):
            eng.push("t", b)
        assert taken and sum(taken) == (len(taken) if expect else 0), (pool, taken)


# --------------------------------------------------------------------------- kernel vs reference

_KINDS = ["VALUE", "EXTRACT", "EXTRACT_STRING", "EXISTS"]

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(["", "1234567890123456789", "\\", '"', "\x00", "\u2028", "🙂"]))
_values = st.recursive(_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4),
    st.lists(st.tuples(st.sampled_from(_KEYS + ["", "0", "1"]), kids), max_size=4)),
    max_leaves=12)


def _text_of(v, style: int) -> str:
    """A Hypothesis value as JSON text; a list of pairs is an object (keys may repeat)."""
    sep = [(",", ":"), (", ", ": "), (" ,\n", " :\t")][style % 3]
    if isinstance(v, list) and v and isinstance(v[0], tuple):
        return "{" + sep[0].join(json.dumps(k, ensure_ascii=style % 2 == 0) + sep[1] + _text_of(x, style)
                                 for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + sep[0].join(_text_of(x, style) for x in v) + "]"
    return json.dumps(v, ensure_ascii=style % 2 == 0)


# numbers written every way JSON allows (leading zeros of the exponent, trailing zeros, E, +)
_number_texts = st.builds(
    lambda sign, whole, frac, e, esign, exp: sign + whole + (("." + frac) if frac else "")
    + ((e + esign + exp) if exp else ""),
    st.sampled_from(["", "-"]), st.sampled_from(["0", "1", "7", "10", "123", "999999999999999", "12345678"]),
    st.sampled_from(["", "0", "5", "50", "000", "0001", "123456789", "999999999999999999"]),
    st.sampled_from(["e", "E"]), st.sampled_from(["", "+", "-"]),
    st.sampled_from(["", "0", "1", "05", "16", "15", "22", "5", "6", "7", "300", "308", "309", "324", "250", "251"]))
_payloads = st.one_of(
    st.builds(_text_of, _values, st.integers(0, 5)),
    st.builds(lambda t, style: ["%s", '{"a": %s}', '{"b": [%s, 1]}'][style] % t, _number_texts,
              st.integers(0, 2)),
    st.text(max_size=12),  # mostly invalid text
    st.sampled_from(['"\\ud800"', '["\\udc00", 1]', '{"a": "\\ud83d\\ude42"}', "[" * 600 + "]" * 600,
                     '{"a": 1e400}', '{"a": 1e-400}', '{"a": 12345678901234567890123}', "\ufeff{}",
                     '{"a": 1}\n', ' {"a": [1, 2]} ', '{"a": {"b": 1, "b": 2}}', "[1,]", "nul"]),
    st.none())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_payloads, min_size=1, max_size=12), st.sampled_from(_PATHS + ["/0", "$[#-0]", "/1/a"]),
       st.sampled_from(_KINDS), st.integers(0, 2))
def test_kernel_equals_the_orjson_reference(payloads, path, kind, cut):
    arr = pa.array(payloads, pa.string()).slice(min(cut, len(payloads) - 1))  # offsets not from 0
    want = F._json_reference_kernel(kind, path)(arr)
    got = F._json_kernel(kind, path)(arr)
    assert got.type == want.type
    assert got.to_pylist() == want.to_pylist()
