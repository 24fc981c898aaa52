"""The string interner against Python and Arrow references."""
import random

import numpy as np
import pyarrow as pa
import pytest

from velostream._core.strings import StringInterner, take_strings


def _random_strings(rng, n, alphabet="abé€x"):
    return [None if rng.random() < 0.05 else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            for _ in range(n)]


@pytest.mark.parametrize("seed", range(4))
def test_codes_are_dense_stable_and_decode_back(seed):
    rng = random.Random(seed)
    si = StringInterner()
    ref: dict = {}
    for _ in range(5):
        vals = _random_strings(rng, 3_000)
        arr = pa.array(vals, pa.string())
        arr = arr.slice(7)  # sliced arrays have an offset
        codes = si.encode_arrow(arr)
        want = [ref.setdefault(v if v is not None else "", len(ref)) for v in vals[7:]]
        assert codes.tolist() == want
        valid = np.array([v is not None for v in vals[7:]])
        assert si.decode(codes, valid).to_pylist() == vals[7:]
    assert si.values().to_pylist() == list(ref)
    for s, c in list(ref.items())[:50]:
        assert si.lookup_bytes(s.encode()) == c
    assert si.lookup_bytes(b"not there at all") == -1
    with pytest.raises(IndexError):
        si.decode(np.array([len(ref)], dtype=np.int32))


def test_take_strings_matches_arrow():
    rng = random.Random(9)
    vals = _random_strings(rng, 2_000)
    arr = pa.array(vals, pa.string()).slice(3)
    idx = np.array([rng.randrange(len(arr)) for _ in range(5_000)], dtype=np.int64)
    assert take_strings(arr, idx).to_pylist() == arr.take(pa.array(idx)).to_pylist()
    with pytest.raises(IndexError):
        take_strings(arr, np.array([len(arr)], dtype=np.int64))


def test_encode_some_rows_of_an_array():
    from velostream.batch import StringDict

    arr = pa.array(["a", None, "bb", "a", "ccc", "bb"]).slice(1)  # an offset, and a NULL
    d = StringDict()
    rows = np.array([4, 0, 2, 1], dtype=np.int64)
    codes, valid = d.encode_arrow(arr, rows)
    assert d.decode(codes, valid).to_pylist() == [arr[int(r)].as_py() for r in rows]
    assert valid.tolist() == [True, False, True, True]
    assert len(d) == 3  # '' for the NULL, 'bb', 'a': 'ccc' (row 3) was not asked for
    with pytest.raises(IndexError):
        d.encode_arrow(arr, np.array([5], dtype=np.int64))
