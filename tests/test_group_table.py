"""GroupTable and hash_columns (velostream._core.group_table).

The table is checked against a pure-Python dict model after every operation. Slot numbering is
partly the table's choice (which freed slot comes back first), so the model checks the contract
instead of exact ids: a key keeps its slot while live, distinct live keys have distinct slots,
new groups take a freed slot while there is one and otherwise the next new id, and
``slot_capacity`` is one more than the largest id ever handed out. Every key column passed in is
read-only.
"""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from velostream._core.group_table import (
    GroupTable,
    hash_columns,
)

I64 = np.iinfo(np.int64)


def ro(a, dtype=np.int64):
    """A read-only C-contiguous copy, as the engine hands key columns over."""
    a = np.array(a, dtype=dtype)
    a.setflags(write=False)
    return a


def columns(keys, n_words):
    """Column-wise read-only arrays for a list of key tuples."""
    arr = np.array(keys, dtype=np.int64).reshape(len(keys), n_words)
    return [ro(arr[:, w]) for w in range(n_words)]


def random_keys(rng, n_rows, n_words, n_distinct, skew):
    """Rows drawn from ``n_distinct`` keys with words spanning negatives and the int64 extremes."""
    pool = rng.integers(I64.min, I64.max, size=(n_distinct, n_words), dtype=np.int64,
                        endpoint=True)
    pool[: n_distinct // 3] = rng.integers(-5, 5, size=(n_distinct // 3, n_words))
    pool[0] = I64.min
    if n_distinct > 1:
        pool[1] = I64.max
    if skew:
        pick = (rng.zipf(1.3, n_rows) - 1) % n_distinct
    else:
        pick = rng.integers(0, n_distinct, n_rows)
    return [tuple(int(v) for v in pool[i]) for i in pick]


class Model:
    """Dict reference for a GroupTable, checking the slot contract on every call."""

    def __init__(self, n_words):
        self.n_words = n_words
        self.slot_of = {}       # key tuple -> slot
        self.key_of = {}        # slot -> key tuple
        self.free = set()       # slots freed and not yet reused
        self.capacity = 0       # 1 + largest slot ever handed out

    def find_or_insert(self, table, keys):
        out = np.full(len(keys), -7, dtype=np.int32)
        created = table.find_or_insert(columns(keys, self.n_words), out)
        new = 0
        for key, slot in zip(keys, out.tolist()):
            if key in self.slot_of:
                assert slot == self.slot_of[key], (key, slot)
                continue
            assert slot not in self.key_of, f"slot {slot} handed to {key} is held by another key"
            if self.free:
                assert slot in self.free, f"new slot {slot} while freed {sorted(self.free)} wait"
                self.free.discard(slot)
            else:
                assert slot == self.capacity, (slot, self.capacity)
                self.capacity += 1
            self.slot_of[key] = slot
            self.key_of[slot] = key
            new += 1
        assert created == new
        return out

    def remove(self, table, slots):
        table.remove(ro(slots, np.int32))
        for s in slots:
            key = self.key_of.pop(s)
            del self.slot_of[key]
            self.free.add(s)

    def clear(self, table):
        table.clear()
        self.__init__(self.n_words)

    def check(self, table, probe_keys=()):
        assert len(table) == table.n_groups == len(self.slot_of)
        assert table.slot_capacity == self.capacity
        live = table.live_slots()
        assert live.dtype == np.int32
        assert live.tolist() == sorted(self.key_of)
        stored = table.keys_of(live)
        assert stored.dtype == np.int64 and stored.shape == (len(live), self.n_words)
        assert [tuple(r) for r in stored.tolist()] == [self.key_of[s] for s in live.tolist()]
        keys = list(self.slot_of) + list(probe_keys)
        if keys:
            out = np.full(len(keys), -7, dtype=np.int32)
            table.lookup(columns(keys, self.n_words), out)
            assert out.tolist() == [self.slot_of.get(k, -1) for k in keys]


# ------------------------------------------------------------------------------------------
# GroupTable against the model


@pytest.mark.parametrize("n_words", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("skew", [True, False], ids=["skewed", "uniform"])
@pytest.mark.parametrize("n_distinct", [1, 20, 3000])
def test_random_batches_match_dict(n_words, skew, n_distinct):
    rng = np.random.default_rng(n_words * 1000 + n_distinct + skew)
    table, model = GroupTable(n_words, capacity=4), Model(n_words)
    for _ in range(6):
        keys = random_keys(rng, int(rng.integers(0, 3000)), n_words, n_distinct, skew)
        model.find_or_insert(table, keys)
        model.check(table)
        live = sorted(model.key_of)
        if live:
            doomed = rng.choice(live, size=int(rng.integers(0, len(live) + 1)), replace=False)
            model.remove(table, [int(s) for s in doomed])
            model.check(table, probe_keys=keys[:50])


def test_growth_past_many_resizes_with_interleaved_removal():
    # Starts with room for one group; 200k inserts force ~15 doublings of the index and of the
    # slot buffers, each while a third of the table has just been deleted and reused.
    rng = np.random.default_rng(7)
    table, model = GroupTable(2, capacity=0), Model(2)
    next_key = 0
    for _ in range(10):
        keys = [(k, -k) for k in range(next_key, next_key + 20000)]
        next_key += 20000
        model.find_or_insert(table, keys)
        live = np.array(sorted(model.key_of))
        doomed = rng.choice(live, size=len(live) // 3, replace=False)
        model.remove(table, [int(s) for s in doomed])
    model.check(table, probe_keys=[(k, -k) for k in range(next_key, next_key + 100)])
    assert table.slot_capacity < 200000  # freed slots were reused instead of new ids


def test_sequential_keys_dense_table_then_drain():
    # Sequential codes: the case the engine produces for dictionary-encoded strings.
    table, model = GroupTable(1, capacity=16), Model(1)
    keys = [(k,) for k in range(50000)]
    model.find_or_insert(table, keys)
    model.check(table)
    for lo in range(0, 50000, 5000):
        model.remove(table, list(range(lo, lo + 5000)))
        model.check(table, probe_keys=keys[lo: lo + 10])
    assert len(table) == 0
    # Everything reinserted comes back on the freed ids, none new.
    model.find_or_insert(table, [(k + 1,) for k in range(50000)])
    assert table.slot_capacity == 50000
    model.check(table)


def colliding_keys(n_words, index_len, homes, count, start=0):
    """``count`` keys whose home position in an index of ``index_len`` entries is in ``homes``,
    found by hashing candidates: they pile into one probe run, wrapping past the array end when
    the homes straddle it."""
    found = []
    cand = start
    h = np.empty(4096, dtype=np.uint64)
    while len(found) < count:
        base = np.arange(cand, cand + 4096, dtype=np.int64)
        cols = [ro(base * (w + 1)) for w in range(n_words)]
        hash_columns(cols, h)
        for i in np.flatnonzero(np.isin(h % np.uint64(index_len), homes)):
            found.append(tuple(int(c[i]) for c in cols))
        cand += 4096
    return found[:count]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n_words=st.integers(1, 4))
def test_backward_shift_deletion_in_one_wrapping_probe_run(data, n_words):
    # capacity=0 gives the smallest index (16 entries, grows past 8 groups). Seven keys homed at
    # 14, 15 and 0 fill one probe run that wraps around the end of the array; deleting from its
    # middle must shift the later entries back without stranding any of them.
    keys = colliding_keys(n_words, 16, [14, 15, 0], 7)
    order = data.draw(st.permutations(keys))
    table, model = GroupTable(n_words, capacity=0), Model(n_words)
    model.find_or_insert(table, list(order))
    for _ in range(data.draw(st.integers(1, 7))):
        live = sorted(model.key_of)
        victim = data.draw(st.sampled_from(live))
        model.remove(table, [victim])
        model.check(table, probe_keys=keys)
    model.find_or_insert(table, data.draw(st.permutations(keys)))
    model.check(table)


def test_many_forced_collisions_in_a_big_table():
    # 4000 keys sharing 4 home positions in a 2**16 index: probe runs thousands long, lookups
    # and deletions must still be exact (only slow).
    keys = colliding_keys(3, 1 << 16, [5, 6, 1000, (1 << 16) - 1], 4000)
    table, model = GroupTable(3, capacity=1 << 15), Model(3)
    model.find_or_insert(table, keys)
    model.check(table)
    rng = np.random.default_rng(3)
    doomed = rng.choice(sorted(model.key_of), size=2500, replace=False)
    model.remove(table, [int(s) for s in doomed])
    model.check(table, probe_keys=keys)
    model.find_or_insert(table, keys[::-1])
    model.check(table)


class TableMachine(RuleBasedStateMachine):
    """Random interleavings of insert / remove / lookup / clear on a small key domain, so that
    keys are removed and come back often."""

    @initialize(n_words=st.integers(1, 4))
    def setup(self, n_words):
        self.table = GroupTable(n_words, capacity=0)
        self.model = Model(n_words)

    def _key(self, draw_ints):
        return tuple(draw_ints[: self.model.n_words])

    @rule(rows=st.lists(st.lists(st.integers(-3, 3), min_size=4, max_size=4), max_size=40))
    def insert(self, rows):
        self.model.find_or_insert(self.table, [self._key(r) for r in rows])

    @precondition(lambda self: self.model.key_of)
    @rule(data=st.data())
    def remove(self, data):
        live = sorted(self.model.key_of)
        doomed = data.draw(st.lists(st.sampled_from(live), unique=True, min_size=1))
        self.model.remove(self.table, doomed)

    @precondition(lambda self: self.model.capacity > 0)
    @rule(data=st.data())
    def remove_invalid_is_atomic(self, data):
        live = sorted(self.model.key_of)
        dead = sorted(set(range(self.model.capacity + 2)) - set(live)) + [-1]
        bad = data.draw(st.sampled_from(dead))
        slots = data.draw(st.lists(st.sampled_from(live), unique=True)) if live else []
        slots.insert(data.draw(st.integers(0, len(slots))), bad)
        with pytest.raises(ValueError, match="not a live group"):
            self.table.remove(ro(slots, np.int32))

    @precondition(lambda self: self.model.key_of)
    @rule(data=st.data())
    def remove_duplicate_is_atomic(self, data):
        s = data.draw(st.sampled_from(sorted(self.model.key_of)))
        with pytest.raises(ValueError):
            self.table.remove(ro([s, s], np.int32))

    @rule()
    def clear(self):
        self.model.clear(self.table)

    @invariant()
    def agrees(self):
        self.model.check(self.table, probe_keys=[(1, 2, 3, 4)[: self.model.n_words]])


TableMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30,
                                          deadline=None)
test_table_state_machine = TableMachine.TestCase


def test_batch_with_repeated_new_keys_creates_each_once():
    table = GroupTable(2)
    out = np.empty(6, dtype=np.int32)
    a, b = ro([5, 5, 6, 5, 6, 7]), ro([1, 1, 1, 1, 1, 1])
    assert table.find_or_insert([a, b], out) == 3
    assert out.tolist() == [0, 0, 1, 0, 1, 2]
    assert table.find_or_insert([a, b], out) == 0


def test_chunk_boundaries():
    # Batches are hashed in blocks; keys first seen late in a long batch and batch lengths around
    # the block size must behave like any other row.
    table, model = GroupTable(3), Model(3)
    for n in (511, 512, 513, 1025, 4097):
        keys = [(i % 700, n, -i % 3) for i in range(n)]
        model.find_or_insert(table, keys)
    model.check(table)


def test_keys_of_rejects_dead_slots_and_handles_empty():
    table = GroupTable(2)
    out = np.empty(2, dtype=np.int32)
    table.find_or_insert([ro([1, 2]), ro([3, 4])], out)
    assert table.keys_of(ro([], np.int32)).shape == (0, 2)
    with pytest.raises(ValueError, match="not a live group"):
        table.keys_of(ro([0, 2], np.int32))
    table.remove(ro([0], np.int32))
    with pytest.raises(ValueError, match="not a live group"):
        table.keys_of(ro([0], np.int32))
    assert table.keys_of(ro([1], np.int32)).tolist() == [[2, 4]]


def test_clear_restarts_numbering_and_keeps_working():
    table, model = GroupTable(1), Model(1)
    model.find_or_insert(table, [(k,) for k in range(3000)])
    model.remove(table, [5, 6])
    model.clear(table)
    model.check(table, probe_keys=[(1,), (5,)])
    model.find_or_insert(table, [(k,) for k in range(10, 20)])
    model.check(table)


def test_empty_batches():
    table = GroupTable(2)
    out = np.empty(0, dtype=np.int32)
    assert table.find_or_insert([ro([]), ro([])], out) == 0
    table.lookup([ro([]), ro([])], out)
    table.remove(ro([], np.int32))
    assert table.live_slots().tolist() == []
    assert table.slot_capacity == 0


def test_constructor_and_attributes():
    table = GroupTable(3, capacity=10)
    assert (table.n_words, table.n_groups, table.slot_capacity, len(table)) == (3, 0, 0, 0)
    assert "n_words=3" in repr(table)
    with pytest.raises(ValueError):
        GroupTable(0)
    with pytest.raises(ValueError):
        GroupTable(1 << 20)
    with pytest.raises(ValueError):
        GroupTable(1, capacity=-1)
    with pytest.raises(AttributeError):
        table.n_words = 2


def test_argument_validation():
    table = GroupTable(2)
    good = ro([1, 2, 3])
    out = np.empty(3, dtype=np.int32)
    with pytest.raises(ValueError, match="expected 2 key columns"):
        table.find_or_insert([good], out)
    with pytest.raises(TypeError, match="dtype"):
        table.find_or_insert([good, good.astype(np.int32)], out)
    with pytest.raises(TypeError, match="dtype"):
        table.lookup([good, good.astype(np.float64)], out)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        table.find_or_insert([good, [1, 2, 3]], out)
    with pytest.raises(ValueError, match="C-contiguous"):
        table.find_or_insert([good, np.arange(6, dtype=np.int64)[::2]], out)
    with pytest.raises(ValueError, match="C-contiguous"):
        table.find_or_insert([good, good.astype(">i8")], out)
    with pytest.raises(ValueError, match="dimensions"):
        table.find_or_insert([good, np.zeros((3, 1), dtype=np.int64)], out)
    with pytest.raises(ValueError, match="length"):
        table.find_or_insert([good, ro([1, 2])], out)
    with pytest.raises(ValueError, match="output has length"):
        table.find_or_insert([good, good], np.empty(2, dtype=np.int32))
    with pytest.raises(ValueError):  # read-only output buffer
        table.lookup([good, good], ro([0, 0, 0], np.int32))
    with pytest.raises(ValueError):  # wrong output dtype
        table.find_or_insert([good, good], np.empty(3, dtype=np.int64))
    assert len(table) == 0
    # int64 spelled 'q' (long long) is accepted like 'l'.
    assert table.find_or_insert([good.astype("q"), good], out) == 3


def test_concurrent_use_from_threads_is_safe():
    # Each call either runs alone or is refused: the table must never be corrupted.
    table, n = GroupTable(1), 200_000
    keys = ro(np.arange(n) % 5000)
    errors = []

    def work():
        out = np.empty(n, dtype=np.int32)
        for _ in range(5):
            try:
                table.find_or_insert([keys], out)
            except RuntimeError as e:
                errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(table) == 5000
    out = np.empty(n, dtype=np.int32)
    table.lookup([keys], out)
    assert (table.keys_of(out)[:, 0] == keys).all()


# ------------------------------------------------------------------------------------------
# hash_columns


def test_hash_columns_deterministic_and_row_local():
    rng = np.random.default_rng(1)
    cols = [ro(rng.integers(-1000, 1000, 5000)) for _ in range(3)]
    h1, h2 = np.empty(5000, np.uint64), np.empty(5000, np.uint64)
    hash_columns(cols, h1)
    hash_columns([np.array(c) for c in cols], h2)  # writable copies: same answer
    assert (h1 == h2).all()
    # A row's hash does not depend on its neighbours or on where the batch is cut.
    part = np.empty(777, np.uint64)
    hash_columns([ro(c[1000:1777]) for c in cols], part)
    assert (part == h1[1000:1777]).all()
    # Equal rows hash equal; the words' order and the word count matter.
    same = np.empty(2, np.uint64)
    hash_columns([ro([4, 4]), ro([9, 9])], same)
    assert same[0] == same[1]
    swapped, one, two = np.empty(1, np.uint64), np.empty(1, np.uint64), np.empty(1, np.uint64)
    hash_columns([ro([9]), ro([4])], swapped)
    hash_columns([ro([4])], one)
    hash_columns([ro([4]), ro([0])], two)
    assert len({int(same[0]), int(swapped[0]), int(one[0]), int(two[0])}) == 4


@pytest.mark.parametrize("n_cols", [1, 2, 3, 4, 6])
def test_hash_columns_no_collisions_on_structured_keys(n_cols):
    # A grid of small codes, the adversarial-looking but common case.
    side = {1: 200_000, 2: 450, 3: 60, 4: 22, 6: 8}[n_cols]
    grids = np.meshgrid(*[np.arange(side, dtype=np.int64)] * n_cols, indexing="ij")
    cols = [ro(g.ravel()) for g in grids]
    h = np.empty(len(cols[0]), np.uint64)
    hash_columns(cols, h)
    assert len(np.unique(h)) == len(h)


def chi_square(counts):
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


# 99.99th percentile of chi-square with k-1 degrees of freedom, k = number of buckets.
CHI2_LIMIT = {2: 15.1, 4: 21.1, 7: 27.9, 16: 44.3, 64: 115.0}


@pytest.mark.parametrize("n_buckets", [2, 4, 7, 16, 64])
@pytest.mark.parametrize("start,step", [(0, 1), (-50_000, 1), (0, 1024), (1 << 40, 1 << 32)])
def test_hash_mod_spreads_sequential_codes(n_buckets, start, step):
    n = 100_000
    codes = ro(start + step * np.arange(n, dtype=np.int64))
    h = np.empty(n, np.uint64)
    hash_columns([codes], h)
    counts = np.bincount((h % np.uint64(n_buckets)).astype(np.int64), minlength=n_buckets)
    assert len(counts) == n_buckets
    assert chi_square(counts) < CHI2_LIMIT[n_buckets], counts
    # Also with a second, constant word (window start) and a NULL-mask word of zeros.
    hash_columns([codes, ro(np.full(n, 1_700_000_000)), ro(np.zeros(n))], h)
    counts = np.bincount((h % np.uint64(n_buckets)).astype(np.int64), minlength=n_buckets)
    assert chi_square(counts) < CHI2_LIMIT[n_buckets], counts


def test_hash_low_bits_avalanche():
    # Flipping any one input bit flips each of the low 8 output bits about half the time: the
    # table's home position and hash % N both live in the low bits.
    rng = np.random.default_rng(5)
    base = rng.integers(-(1 << 62), 1 << 62, 4000)
    h0 = np.empty(4000, np.uint64)
    hash_columns([ro(base), ro(base[::-1].copy())], h0)
    for word in (0, 1):
        for bit in range(64):
            flipped = [base.copy(), base[::-1].copy()]
            flipped[word] ^= np.int64(1) << np.int64(bit) if bit < 63 else np.int64(I64.min)
            h1 = np.empty(4000, np.uint64)
            hash_columns([ro(f) for f in flipped], h1)
            diff = h0 ^ h1
            for out_bit in range(8):
                frac = float(((diff >> np.uint64(out_bit)) & np.uint64(1)).mean())
                assert 0.42 < frac < 0.58, (word, bit, out_bit, frac)


def test_hash_columns_validation():
    with pytest.raises(ValueError, match="at least one"):
        hash_columns([], np.empty(0, np.uint64))
    with pytest.raises(ValueError, match="output has length"):
        hash_columns([ro([1, 2])], np.empty(3, np.uint64))
    with pytest.raises(ValueError):  # int64 output instead of uint64
        hash_columns([ro([1, 2])], np.empty(2, np.int64))


@pytest.mark.parametrize("share", [0.01, 0.5, 0.999])
def test_remove_small_and_bulk_paths_keep_lookups_right(share):
    # a small removal unlinks entry by entry; a large one rebuilds the index from survivors
    rng = np.random.default_rng(int(share * 1000))
    n = 20_000
    a = rng.integers(-50, 50, n).astype(np.int64)
    b = rng.integers(0, 10**12, n).astype(np.int64)
    t = GroupTable(2)
    slots = np.empty(n, dtype=np.int32)
    t.find_or_insert([a, b], slots)
    live = t.live_slots()
    gone = np.sort(rng.choice(live, size=max(1, int(share * len(live))), replace=False)).astype(np.int32)
    t.remove(gone)
    again = np.empty(n, dtype=np.int32)
    t.lookup([a, b], again)
    removed = np.isin(slots, gone)
    assert (again[removed] == -1).all()
    assert (again[~removed] == slots[~removed]).all()
    assert len(t) == len(live) - len(gone)
