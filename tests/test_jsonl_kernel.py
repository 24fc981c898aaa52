"""The compiled JSON Lines decoder (velostream._core.jsonl) against a Python reference, and the
JsonDecoder's compiled path against its Arrow / orjson path.

The reference is orjson (the parser the slow path builds reject messages with) plus the slow path's
per-kind conversion: a line is good exactly when orjson parses it to an object whose values fit.
"""
import json
import math
import random
import struct

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from velostream._core import jsonl as J
from velostream.io.codecs import JsonDecoder

I, F, B, S = J.KIND_INT64, J.KIND_FLOAT64, J.KIND_BOOL, J.KIND_STRING


# ------------------------------------------------------------------------------ helpers

def reference(lines, names, kinds, required=None, payloads=False):
    """(rows, bad line indices) as orjson + the slow path's conversion see them."""
    required = required or [0] * len(names)
    rows, bad = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            if payloads:
                bad.append(i)
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(i)
            continue
        if type(obj) is not dict:
            bad.append(i)
            continue
        row, ok = [], True
        for name, kind, req in zip(names, kinds, required):
            if name not in obj:
                ok = not req
                row.append(None)
            else:
                v = obj[name]
                if v is None:
                    pass
                elif kind == I:
                    ok = type(v) is int and -(1 << 63) <= v < (1 << 63)
                elif kind == F:
                    ok = type(v) in (int, float)
                    v = float(v) if ok else v
                elif kind == B:
                    ok = type(v) is bool
                else:
                    v = v if type(v) is str else orjson.dumps(v).decode()
                row.append(v)
            if not ok:
                break
        if ok:
            rows.append(tuple(row))
        else:
            bad.append(i)
    return rows, bad


def kernel(lines, names, kinds, required=None, payloads=False, newline_at_end=True):
    """(rows, bad line indices, raw result) from the kernel, STRING fix-ups applied as codecs.py
    applies them."""
    buf = b"\n".join(lines)
    if newline_at_end and not payloads:
        buf += b"\n"
    r = J.decode_flat_lines(buf, names, np.asarray(kinds, dtype=np.uint8),
                            None if required is None else np.asarray(required, dtype=np.uint8), payloads)
    n = r["rows"]
    cols = []
    for f, (kind, col) in enumerate(zip(kinds, r["columns"])):
        valid = col[-1]
        assert valid.dtype == np.uint8 and len(valid) == n
        if kind == S:
            offs, data = col[0], bytes(col[1])
            assert offs.dtype == np.int32 and len(offs) == n + 1 and offs[0] == 0 and offs[-1] == len(data)
            vals = [data[offs[k]:offs[k + 1]].decode("utf-8") if valid[k] else None for k in range(n)]
            for row in r["fixup_row"][r["fixup_field"] == f].tolist():
                vals[row] = orjson.dumps(orjson.loads(vals[row])).decode()
        else:
            assert len(col[0]) == n
            vals = [(bool(v) if kind == B else v) if ok else None
                    for v, ok in zip(col[0].tolist(), valid.tolist())]
        cols.append(vals)
    rows = list(zip(*cols)) if cols else [()] * n
    bad = r["bad_line"].tolist()
    # the reported spans are the lines themselves
    for i, s, e in zip(bad, r["bad_start"].tolist(), r["bad_end"].tolist()):
        assert buf[s:e] == lines[i]
    return rows, bad, r


def check(lines, names, kinds, required=None, payloads=False):
    lines = [x.encode() if isinstance(x, str) else x for x in lines]
    got_rows, got_bad, r = kernel(lines, names, kinds, required, payloads)
    want_rows, want_bad = reference(lines, names, kinds, required, payloads)
    assert got_bad == want_bad
    assert got_rows == want_rows
    return r


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


# ------------------------------------------------------------------------------ unit tests

def test_kinds_and_values():
    r = check(['{"i": 1, "f": 2.5, "b": true, "s": "x"}', '{"i": -7, "f": -1, "b": false, "s": ""}'],
              ["i", "f", "b", "s"], [I, F, B, S])
    assert r["rows"] == 2 and r["records"] == 2 and len(r["bad_line"]) == 0
    assert r["columns"][0][0].dtype == np.int64 and r["columns"][1][0].dtype == np.float64


def test_string_escapes_unicode_and_surrogates():
    lines = [r'{"s": "q\" b\\ s\/ \b\f\n\r\t"}', r'{"s": "\u00e9\u4e2d\ud83d\ude00\u0000\u001f"}',
             '{"s": "raw é 中 😀 \x7f"}', r'{"s": "\uD83D\uDE00 upper-case hex"}']
    rows, bad, _ = kernel([x.encode() for x in lines], ["s"], [S])
    assert bad == []
    assert [r[0] for r in rows] == ['q" b\\ s/ \b\f\n\r\t', "é中😀\x00\x1f", "raw é 中 😀 \x7f",
                                    "😀 upper-case hex"]
    check(lines, ["s"], [S])


def test_escaped_and_unicode_keys_match_fields():
    r = check([r'{"pr\u0069ce": 1.5, "sym\u00e9": "a", "é": 2}', '{"price": 2.5, "symé": "b"}'],
              ["price", "symé", "é"], [F, S, I])
    assert r["rows"] == 2


def test_whitespace_everywhere():
    line = ' \t{ \t"a" \t: \t1 \t, \r"b"\t:"x" , "c" : [ 1 , { "d" : null } ] }\t \r'
    rows, bad, _ = kernel([line.encode()], ["a", "b"], [I, S])
    assert bad == [] and rows == [(1, "x")]


def test_unknown_and_nested_values_are_skipped():
    lines = ['{"u": {"x": "}]\\"[{", "y": [1, [2.5e3, {"z": null}], true, false, -0]}, "a": 1, '
             '"v": [], "w": {}, "t": "\\u00e9\\"", "n": null, "a2": [[[[]]]]}',
             '{"a": 2, "deep": ' + "[" * 900 + "]" * 900 + "}"]
    r = check(lines, ["a"], [I])
    assert r["rows"] == 2


def test_missing_duplicate_and_null():
    r = check(['{"a": 1}', '{"b": "x"}', '{}', '{"a": null, "b": null}',
               '{"a": 1, "a": 2, "b": "x", "b": "yy"}', '{"a": "bad", "a": 3}', '{"a": 3, "a": "bad"}',
               '{"b": "x", "b": null}', '{"b": 1.50, "b": "z"}'],
              ["a", "b"], [I, S])
    assert r["rows"] == 8 and r["bad_line"].tolist() == [6]
    assert r["bad_code"].tolist() == [J.ERR_WRONG_TYPE] and r["bad_field"].tolist() == [0]
    assert r["fixup_row"].tolist() == []  # the duplicate replaced the float


def test_required_fields():
    r = check(['{"a": 1, "b": "x"}', '{"a": 1}', '{"b": "x"}', '{"a": null, "b": null}', '{"b": 1, "a": "x"}'],
              ["a", "b"], [I, S], required=[1, 1])
    assert r["bad_line"].tolist() == [1, 2, 4]
    assert r["bad_code"].tolist() == [J.ERR_MISSING, J.ERR_MISSING, J.ERR_WRONG_TYPE]
    assert r["bad_field"].tolist() == [1, 0, 0]  # the first error in field order
    check(['{"a": 1}', '{"b": "x"}'], ["a", "b"], [I, S], required=[0, 1])


def test_nulls_of_every_kind():
    rows, bad, r = kernel([b'{"i": null, "f": null, "b": null, "s": null}'], ["i", "f", "b", "s"], [I, F, B, S])
    assert bad == [] and rows == [(None, None, None, None)]
    assert all(c[-1].tolist() == [0] for c in r["columns"])


MALFORMED = [
    ('{"a": 1', J.ERR_SYNTAX), ('{"a": 1}}', J.ERR_SYNTAX), ('{"a": 1} x', J.ERR_SYNTAX),
    ('{"a": 1}{"a": 2}', J.ERR_SYNTAX), ('{"a" 1}', J.ERR_SYNTAX), ('{"a": 1,}', J.ERR_SYNTAX),
    ("{'a': 1}", J.ERR_SYNTAX), ('{a: 1}', J.ERR_SYNTAX), ('{"a": tru}', J.ERR_SYNTAX),
    ('{"a": nul}', J.ERR_SYNTAX), ('{"a": 01}', J.ERR_SYNTAX), ('{"a": -01}', J.ERR_SYNTAX),
    ('{"a": 1.}', J.ERR_SYNTAX), ('{"a": .5}', J.ERR_SYNTAX), ('{"a": +1}', J.ERR_SYNTAX),
    ('{"a": -}', J.ERR_SYNTAX), ('{"a": 1e}', J.ERR_SYNTAX), ('{"a": 1e+}', J.ERR_SYNTAX),
    ('{"a": NaN}', J.ERR_SYNTAX), ('{"a": Infinity}', J.ERR_SYNTAX), ('{"a": 1 2}', J.ERR_SYNTAX),
    ('{"s": "\\x"}', J.ERR_SYNTAX), ('{"s": "\\u12"}', J.ERR_SYNTAX), ('{"s": "\\u12g4"}', J.ERR_SYNTAX),
    ('{"s": "\\ud800"}', J.ERR_UTF8), ('{"s": "\\ud800\\u0041"}', J.ERR_UTF8), ('{"s": "\\udc00"}', J.ERR_UTF8),
    ('{"s": "a\tb"}', J.ERR_SYNTAX), ('{"s": "unterminated}', J.ERR_SYNTAX),
    (b'{"s": "\xff"}', J.ERR_UTF8), (b'{"u": "\xed\xa0\x80"}', J.ERR_UTF8), (b'{"u": "\xc0\x80"}', J.ERR_UTF8),
    (b'{"u": "\xf4\x90\x80\x80"}', J.ERR_UTF8), (b'{"u": "\xe2\x82"}', J.ERR_UTF8), (b'{"\xff": 1}', J.ERR_UTF8),
    ('[1, 2]', J.ERR_NOT_OBJECT), ('"str"', J.ERR_NOT_OBJECT), ('1', J.ERR_NOT_OBJECT),
    ('null', J.ERR_NOT_OBJECT), ('true', J.ERR_NOT_OBJECT), ('}', J.ERR_SYNTAX), ('\x0b{"a": 1}', J.ERR_SYNTAX),
    ('{"a": 1e400}', J.ERR_NUMBER_RANGE), ('{"f": -1e400}', J.ERR_NUMBER_RANGE),
    ('{"u": 1e400}', J.ERR_NUMBER_RANGE), ('{"s": [1e400]}', J.ERR_NUMBER_RANGE),
    ('{"u": [1, 2}', J.ERR_SYNTAX), ('{"u": {"x" 1}}', J.ERR_SYNTAX), ('{"u": {"x": 1,}}', J.ERR_SYNTAX),
    ('{"u": ' + "[" * 1100 + "]" * 1100 + "}", J.ERR_TOO_DEEP),
]


@pytest.mark.parametrize("line, code", MALFORMED, ids=[repr(m[0])[:40] for m in MALFORMED])
def test_malformed_lines(line, code):
    line = line.encode() if isinstance(line, str) else line
    with pytest.raises(orjson.JSONDecodeError):
        if not line.startswith((b"[", b'"', b"1", b"null", b"true")):
            orjson.loads(line)
        else:
            raise orjson.JSONDecodeError("not an object", "", 0)
    lines = [b'{"a": 1, "s": "ok"}', line, b'{"a": 2, "f": 0.5}']
    r = check(lines, ["a", "s", "f"], [I, S, F])
    assert r["bad_line"].tolist() == [1] and r["bad_code"].tolist() == [code]
    assert r["rows"] == 2  # parsing resumed at the next line


def test_int64_range_and_wrong_types():
    lines = ['{"a": 9223372036854775807}', '{"a": -9223372036854775808}', '{"a": 9223372036854775808}',
             '{"a": -9223372036854775809}', '{"a": 18446744073709551616}', '{"a": 1.5}', '{"a": 1e3}',
             '{"a": 1.0}', '{"a": -0}', '{"a": "1"}', '{"a": true}', '{"a": [1]}', '{"a": {}}']
    r = check(lines, ["a"], [I])
    assert r["columns"][0][0].tolist() == [2 ** 63 - 1, -2 ** 63, 0]
    assert r["bad_code"].tolist() == [J.ERR_INT_OVERFLOW] * 3 + [J.ERR_WRONG_TYPE] * 7
    assert set(r["bad_field"].tolist()) == {0}


@pytest.mark.parametrize("text", ["1e-7", "-0.0", "1.7976931348623157e308", "-1.7976931348623157e+308",
                                  "5e-324", "2.4703282292062328e-324", "2.5e-400", "-2.5e-400", "1E5", "1e+5",
                                  "0.1", "3.141592653589793238462643383279", "123456789012345678901234567890",
                                  "9007199254740993", "1", "-5", "0", "100e-2", "0.000000000000000000000001e24"])
def test_floats_exact(text):
    rows, bad, _ = kernel([f'{{"f": {text}}}'.encode()], ["f"], [F])
    assert bad == []
    assert bits(rows[0][0]) == bits(float(text))  # correctly rounded, sign of zero kept


def test_float_overflow_is_a_bad_line():
    for text in ["1.7976931348623159e308", "1e309", "-1e400", "0.1e310"]:
        _, bad, r = kernel([f'{{"f": {text}}}'.encode()], ["f"], [F])
        assert bad == [0] and r["bad_code"].tolist() == [J.ERR_NUMBER_RANGE]


def test_string_field_takes_any_value():
    lines = ['{"s": 6}', '{"s": -12}', '{"s": true}', '{"s": false}', '{"s": 1.50}', '{"s": -0}', '{"s": 1e3}',
             '{"s": 123456789012345678901234}', '{"s": {"a" : [1, 2.0, "x"]}}', '{"s": []}', '{"s": "7"}']
    rows, bad, r = kernel([x.encode() for x in lines], ["s"], [S])
    assert [x[0] for x in rows] == ["6", "-12", "true", "false", "1.5", "0", "1000.0",
                                    orjson.dumps(123456789012345678901234.0).decode(),
                                    '{"a":[1,2.0,"x"]}', "[]", "7"]
    assert r["nonstring"].tolist() == [10]
    assert r["fixup_row"].tolist() == [4, 5, 6, 7, 8, 9]
    check(lines, ["s"], [S])


def test_blank_lines_and_payload_mode():
    lines = [b'{"a": 1}', b"", b"  \t", b"\x0c \x0b\r", b'{"a": 2}\r', b'{"a": 3}']
    rows, bad, r = kernel(lines, ["a"], [I])
    assert rows == [(1,), (2,), (3,)] and bad == [] and r["records"] == 3
    rows, bad, r = kernel(lines, ["a"], [I], newline_at_end=False)
    assert rows == [(1,), (2,), (3,)] and r["records"] == 3
    rows, bad, r = kernel(lines, ["a"], [I], payloads=True)
    assert bad == [1, 2, 3] and r["records"] == 6 and r["bad_code"].tolist() == [J.ERR_EMPTY] * 3
    assert r["bad_record"].tolist() == [1, 2, 3]
    # a final empty payload is a payload
    r = J.decode_flat_lines(b'{"a": 1}\n', ["a"], np.array([I], np.uint8), None, True)
    assert r["rows"] == 1 and r["records"] == 2 and r["bad_line"].tolist() == [1]
    r = J.decode_flat_lines(b"", ["a"], np.array([I], np.uint8), None, True)
    assert r["rows"] == 0 and r["records"] == 1
    r = J.decode_flat_lines(b"", ["a"], np.array([I], np.uint8))
    assert r["rows"] == 0 and r["records"] == 0
    # record numbers skip blank lines in lines mode
    r = J.decode_flat_lines(b'\n{"a": 1}\n\n{oops\n{"a": 2}', ["a"], np.array([I], np.uint8))
    assert r["bad_line"].tolist() == [3] and r["bad_record"].tolist() == [1] and r["records"] == 3


def test_outputs_go_to_arrow_without_copies():
    r = J.decode_flat_lines(b'{"s": "ab"}\n{"s": null}\n{"s": "c"}\n', ["s"], np.array([S], np.uint8))
    offs, data, valid = r["columns"][0]
    buf = pa.py_buffer(data)
    assert buf.size == 3 and np.frombuffer(data, np.uint8).tobytes() == b"abc"
    arr = pa.StringArray.from_buffers(3, pa.py_buffer(offs), buf,
                                      pa.py_buffer(np.packbits(valid, bitorder="little")), 1)
    assert arr.to_pylist() == ["ab", None, "c"]
    assert buf.address == np.frombuffer(data, np.uint8).ctypes.data  # the vector's own bytes
    del r, data
    assert arr.to_pylist() == ["ab", None, "c"]  # Arrow keeps the owner alive


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        J.decode_flat_lines(b"{}", ["a"], np.array([I, I], np.uint8))
    with pytest.raises(ValueError):
        J.decode_flat_lines(b"{}", ["a"], np.array([9], np.uint8))
    r = J.decode_flat_lines(b'{"a": 1}\n{"b": [2]}\n', [], np.array([], np.uint8))
    assert r["rows"] == 2 and r["columns"] == []


# ------------------------------------------------------------------------------ property test

NAMES = ["i", "f", "b", "s", "é"]
KINDS = [I, F, B, S, I]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 65), 1 << 65),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                      max_leaves=6)
keys = st.sampled_from(NAMES + ["u", "x\"y", "ii", ""])


@st.composite
def lines_st(draw):
    """A JSON Lines block: flat records (random keys, values, duplicate keys, spacing, escaping),
    some of them corrupted."""
    out = []
    for _ in range(draw(st.integers(0, 12))):
        items = draw(st.lists(st.tuples(keys, values), max_size=7))
        ascii_only = draw(st.booleans())
        sp = draw(st.sampled_from(["", " ", "\t", " \r "]))
        body = ("," + sp).join(f"{json.dumps(k, ensure_ascii=ascii_only)}{sp}:{sp}"
                               f"{json.dumps(v, ensure_ascii=ascii_only)}" for k, v in items)
        text = (sp + "{" + sp + body + sp + "}" + sp).encode()
        how = draw(st.sampled_from(["ok"] * 6 + ["truncate", "insert", "replace", "append", "blank", "array"]))
        if how == "truncate" and text:
            text = text[:draw(st.integers(0, len(text) - 1))]
        elif how in ("insert", "replace") and text:
            at = draw(st.integers(0, len(text) - 1))
            ch = draw(st.sampled_from([b"{", b"}", b'"', b"\\", b",", b":", b"x", b"\xff", b"\x01", b"1", b".", b"e", b" "]))
            text = text[:at] + ch + text[at + (how == "replace"):]
        elif how == "append":
            text += draw(st.sampled_from([b"x", b"}", b",", b"{}", b" 1"]))
        elif how == "blank":
            text = draw(st.sampled_from([b"", b" ", b"\t\r", b"\x0c"]))
        elif how == "array":
            text = b"[" + text + b"]"
        out.append(text.replace(b"\n", b" "))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines_st(), req=st.lists(st.integers(0, 1), min_size=5, max_size=5), payloads=st.booleans())
def test_property_against_reference(lines, req, payloads):
    payloads = payloads and bool(lines)  # b"" is one empty payload, not none
    got_rows, got_bad, r = kernel(lines, NAMES, KINDS, req, payloads)
    want_rows, want_bad = reference(lines, NAMES, KINDS, req, payloads)
    assert got_bad == want_bad
    assert len(got_rows) == len(want_rows)
    for g, w in zip(got_rows, want_rows):
        assert g == w
        # floats exactly (json.dumps writes repr, which round-trips), zero signs too unless the
        # text was the integer -0 (orjson makes it int 0; the kernel, like Arrow, gives -0.0)
        if g[1] is not None and w[1] is not None and g[1] != 0:
            assert bits(g[1]) == bits(w[1])
    assert r["records"] == sum(1 for x in lines if payloads or x.strip())


# ------------------------------------------------------------------------------ JsonDecoder: compiled = old path

def _both(make, call):
    """The same calls through a decoder using the compiled path and one that never does."""
    fast, old = make(), make()
    out_fast = [call(fast, k) for k in range(2)]
    old._setup_compiled = lambda: None  # never sets _kinds: Arrow + slow path only
    out_old = [call(old, k) for k in range(2)]
    assert fast._kinds is not None and old._kinds is None
    return out_fast, out_old, fast, old


def _same(a, b):
    (rb1, rej1), (rb2, rej2) = a, b
    assert (rb1 is None) == (rb2 is None)
    if rb1 is not None:
        assert rb1.schema == rb2.schema
        assert rb1.to_pylist() == rb2.to_pylist()
    assert [(r.source, r.position, r.error, r.payload) for r in rej1] == \
           [(r.source, r.position, r.error, r.payload) for r in rej2]


BLOCK2 = [b'{"sym": "B", "price": 2, "qty": 20, "ok": false, "ts": 1700000000500, "n": 7}',
          b'', b'{"sym": "C", "price": "abc", "qty": 3}', b'{oops', b'[1]',
          b'{"sym": "D", "price": 4.25, "qty": 1.5}', b'{"sym": "E\\u00e9", "qty": 99999999999999999999}',
          b'{"sym": 5, "price": null, "ts": 1700000001000, "n": {"a" : 1.50}}', b'{"price": 1e400}',
          b'  {"sym" : "F" , "price" : 6 , "extra": [1, {"x": "y"}] }  ', b'{"qty": 7}\r', b'{"sym": "G", "sym": "H"}']


@pytest.mark.parametrize("fail_on_missing", [False, True])
@pytest.mark.parametrize("schema", [None, "ts TIMESTAMP, qty BIGINT"])
def test_decoder_lines_same_as_old_path(fail_on_missing, schema):
    from velostream.io.codecs import parse_schema
    first = b'{"sym": "A", "price": 1.5, "qty": 10, "ok": true, "ts": 1700000000000, "n": null}\n'
    blocks = [first, b"\n".join(BLOCK2) + b"\n"]

    def make():
        return JsonDecoder("src", parse_schema(schema) if schema else None, fail_on_missing)

    def call(dec, k):
        out = dec.decode_lines(blocks[k], 1 + 10 * k, "f.jsonl:")
        return out, None if dec.kept is None else dec.kept.tolist()

    fast, old, _, _ = _both(make, call)
    for (a, ka), (b, kb) in zip(fast, old):
        _same(a, b)
        assert ka == kb


def test_decoder_payloads_same_as_old_path():
    first = [b'{"a": 1, "b": "x", "c": 0.5}']
    later = [b'{"a": 3,\n "b": "y"}', b'{"b": "z"}', b"\xff", b"", b'{"a": 5, "b": 6, "c": 1}',
             b'{"a": 1.5}', b'{"c": -0.0, "b": [true]}']

    def make():
        return JsonDecoder("k", fail_on_missing_field=False)

    def call(dec, k):
        out = dec.decode(first if k == 0 else later, lambda i: f"t/0@{100 * k + i}")
        return out, None if dec.kept is None else dec.kept.tolist()

    fast, old, dec, _ = _both(make, call)
    for (a, ka), (b, kb) in zip(fast, old):
        _same(a, b)
        assert ka == kb
    assert fast[1][1] == [0, 1, 4, 6]


def test_decoder_iso_timestamps_through_compiled_path():
    lines = [b'{"k": "a", "ts": "2024-01-15T10:00:00"}', b'{"k": "b", "ts": "2024-01-15T10:00:01.500"}']
    later = [b'{"k": "c", "ts": "2024-01-15T10:01:00"}', b'{"k": "d", "ts": null}', b'{"k": "e", "ts": "nope"}']
    later_z = [b'{"k": "c", "ts": "2024-01-15T10:01:00Z"}', b'{"k": "d", "ts": "2024-01-15T10:01:00+01:00"}']
    from velostream.io.codecs import parse_schema
    for second in (later, later_z, [b'{"k": "f", "ts": 1705312800000}']):
        def make():
            return JsonDecoder("s", parse_schema("ts TIMESTAMP"))

        def call(dec, k):
            return dec.decode_lines(b"\n".join(lines if k == 0 else second) + b"\n", 1, "t:")

        fast, old, _, _ = _both(make, call)
        for a, b in zip(fast, old):
            _same(a, b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines_st(), fail_on_missing=st.booleans())
def test_property_decoder_same_as_old_path(lines, fail_on_missing):
    first = b'{"i": 1, "f": 1.5, "b": true, "s": "x", "\\u00e9": 2}\n'
    # values the two paths legitimately differ on: Arrow keeps -0.0 for an integer -0 in a DOUBLE
    # field where the slow path gives 0.0; compared by == below, which does not see the sign

    def make():
        return JsonDecoder("p", None, fail_on_missing)

    def call(dec, k):
        buf = first if k == 0 else b"\n".join(lines) + b"\n"
        out = dec.decode_lines(buf, 1, "p:")
        return out, None if dec.kept is None else dec.kept.tolist()

    fast, old, _, _ = _both(make, call)
    for (a, ka), (b, kb) in zip(fast, old):
        _same(a, b)
        assert ka == kb
