"""The V2 exchange's gathers from several sources (velostream._core.gather) and the merge of the
partitions' EMIT FINAL rows by window end, against numpy / Arrow on seeded random data with
NULLs, every fixed width and the fallbacks."""
import decimal

import numpy as np
import pyarrow as pa
import pytest

from velostream._core.gather import (merge_order, take_interleaved, take_segments,
                                     take_strings_interleaved)
from velostream.jobs.partition_threads import END_COL, ROW_COL, _merge_by


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.int64, np.float64, "V16"])
@pytest.mark.parametrize("seed", range(3))
def test_take_segments_equals_concatenated_fancy_indexing(dtype, seed):
    rng = np.random.default_rng(seed)
    sources = []
    for n in rng.integers(0, 9000, 3):
        raw = rng.integers(0, 255, int(n) * np.dtype(dtype).itemsize, dtype=np.uint8)
        sources.append(raw.view(dtype))
    rows = [np.sort(rng.choice(len(s), rng.integers(0, len(s) + 1), replace=False)) if len(s)
            else np.empty(0, np.int64) for s in sources]
    want = np.concatenate([s[r] for s, r in zip(sources, rows)])
    got = take_segments(sources, rows)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_take_segments_refuses_rows_outside_and_mixed_dtypes():
    with pytest.raises(IndexError):
        take_segments([np.arange(3)], [np.array([3])])
    with pytest.raises(IndexError):
        take_segments([np.arange(3)], [np.array([-1])])
    with pytest.raises(ValueError):
        take_segments([np.arange(3), np.arange(3.0)], [np.array([0]), np.array([0])])


def _runs(rng, k):
    return [np.sort(rng.integers(0, 40, rng.integers(0, 300))) for _ in range(k)]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(5))
def test_merge_order_is_the_stable_sort_of_the_runs(k, seed):
    rng = np.random.default_rng(seed)
    ends = _runs(rng, k)
    which, rows = merge_order(ends)
    tags = np.concatenate([np.full(len(e), j) for j, e in enumerate(ends)]).astype(np.int8)
    pos = np.concatenate([np.arange(len(e)) for e in ends]).astype(np.int64)
    order = np.argsort(np.concatenate(ends), kind="stable")
    assert which.tolist() == tags[order].tolist() and rows.tolist() == pos[order].tolist()


@pytest.mark.parametrize("seed", range(4))
def test_interleaved_gathers_equal_arrow_take(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 4))
    sizes = [int(x) for x in rng.integers(1, 12000, k)]
    which = rng.integers(0, k, 20000).astype(np.int8)
    rows = np.array([rng.integers(0, sizes[w]) for w in which], dtype=np.int64)
    nums = [rng.normal(size=n) for n in sizes]
    got = take_interleaved(nums, which, rows)
    assert got.tolist() == [nums[w][r] for w, r in zip(which, rows)]
    words = [pa.array([None if rng.random() < 0.1 else "x" * int(rng.integers(0, 20)) + str(i)
                       for i in range(n)]) for n in sizes]
    got = take_strings_interleaved(words, which, rows)
    assert got.to_pylist() == [words[w][int(r)].as_py() for w, r in zip(which, rows)]
    got.validate(full=True)


def test_interleaved_gathers_refuse_a_row_or_source_outside():
    with pytest.raises(IndexError):
        take_interleaved([np.arange(3)], np.array([0], np.int8), np.array([3]))
    with pytest.raises(IndexError):
        take_interleaved([np.arange(3)], np.array([1], np.int8), np.array([0]))
    with pytest.raises(IndexError):
        take_strings_interleaved([pa.array(["a"])], np.array([0], np.int8), np.array([1]))


def _final_rows(rng, n, end_values):
    ends = np.sort(rng.choice(end_values, n))
    nulls = rng.random(n) < 0.2
    return pa.RecordBatch.from_arrays([
        pa.array(["k" + str(int(x)) for x in rng.integers(0, 50, n)], mask=nulls),
        pa.array(rng.integers(-10**12, 10**12, n), pa.int64(), mask=rng.random(n) < 0.2),
        pa.array(rng.normal(size=n), mask=nulls),
        pa.array([decimal.Decimal(int(x)) / 100 for x in rng.integers(-10**6, 10**6, n)],
                 pa.decimal128(18, 2)),
        pa.array(rng.integers(0, 10**15, n), pa.timestamp("us")),
        pa.array(rng.random(n) < 0.5, mask=nulls),  # booleans: Arrow's take
        pa.array(ends, pa.int64()),
    ], names=["k", "i", "d", "dec", "ts", "b", END_COL])


@pytest.mark.parametrize("seed", range(6))
def test_merge_by_end_equals_a_stable_sort_by_end(seed):
    """Each partition's rows are in end order; the merge gives every partition's rows in end
    order, partition order within one end, the end column left out."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 5))
    outs = [_final_rows(rng, int(rng.integers(0, 400)), np.arange(100)) for _ in range(k)]
    got = pa.Table.from_batches(_merge_by(outs, END_COL)) if any(o.num_rows for o in outs) else None
    whole = pa.Table.from_batches(outs)
    want = whole.take(pa.array(np.argsort(whole.column(END_COL).to_numpy(), kind="stable")))
    want = want.drop_columns([END_COL])
    if got is None:
        assert want.num_rows == 0
        return
    assert got.schema.equals(want.schema)
    assert got.to_pylist() == want.to_pylist()
