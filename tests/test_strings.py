"""The string interner against Python and Arrow references."""
import random

import numpy as np
import pyarrow as pa
import pytest

from velostream._core.strings import StringInterner, hash_arrow, take_strings


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


def test_hash_arrow_agrees_for_equal_strings_and_spreads():
    words = [f"TRADER{i}" for i in range(500)]
    a = pa.array(words * 3)
    h = np.empty(len(a), dtype=np.uint64)
    hash_arrow(a, h)
    assert (h[:500] == h[500:1000]).all() and (h[:500] == h[1000:]).all()
    assert len(set(h[:500].tolist())) == 500
    counts = np.bincount((h[:500] % 4).astype(np.int64), minlength=4)
    assert counts.min() > 80  # roughly even over 4 partitions
    n = pa.array(["x", None])
    hn = np.empty(2, dtype=np.uint64)
    hash_arrow(n, hn)
    assert hn[0] != hn[1]
