"""SessionWindows kernel against a naive pure-Python reference of the same rules.

The driver below uses the kernel exactly as the engine will: assign() until ``end == n``, folding
aggregate state of merged sessions in between, close() at the watermark after each batch, read the
closed sessions' state, release() them.
"""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from velostream._core.session import SessionWindows

NO_WM = int(np.iinfo(np.int64).min)  # watermark before any record


# --------------------------------------------------------------------------------------------
# reference


class _RefSession:
    __slots__ = ("count", "first", "key", "last", "total")

    def __init__(self, key, t):
        self.key, self.first, self.last, self.count, self.total = key, t, t, 0, 0


class RefSessions:
    """The rules of docs/SQL.md §4 read literally, with linear scans and no cleverness."""

    def __init__(self, gap):
        self.gap = gap
        self.sessions: list[_RefSession] = []  # every session not yet closed

    def row(self, key, t, wm, value):
        """Returns (late, start, end, n_merged) of the row."""
        gap = self.gap
        touched = [
            s for s in self.sessions
            if s.key == key and s.last + gap > wm and s.first - gap < t < s.last + gap
        ]
        if not touched:
            if t + gap <= wm:
                return True, t, t + gap, 0
            s = _RefSession(key, t)
            self.sessions.append(s)
        else:
            s = min(touched, key=lambda x: x.first)
            for other in touched:
                if other is not s:
                    s.first = min(s.first, other.first)
                    s.last = max(s.last, other.last)
                    s.count += other.count
                    s.total += other.total
                    self.sessions.remove(other)
            s.first = min(s.first, t)
            s.last = max(s.last, t)
        s.count += 1
        s.total += value
        return False, s.first, s.last + gap, len(touched) - 1 if touched else 0

    def close(self, watermark=None):
        """Closed sessions as sorted (key, start, end, count, sum) tuples."""
        done = [s for s in self.sessions if watermark is None or s.last + self.gap <= watermark]
        self.sessions = [s for s in self.sessions if not any(s is d for d in done)]
        return sorted((s.key, s.first, s.last + self.gap, s.count, s.total) for s in done)


# --------------------------------------------------------------------------------------------
# engine-style driver


def watermarks(times, lateness):
    """wm[i] = max(times[:i]) - lateness: the job watermark just before row i."""
    wm = np.empty(len(times), np.int64)
    hi = None
    for i, t in enumerate(times):
        wm[i] = NO_WM if hi is None else hi - lateness
        hi = t if hi is None else max(hi, t)
    return wm


class Driver:
    """Plays the engine: per-sid count/sum state, merges, close, release, with invariant checks."""

    def __init__(self, gap):
        self.sw = SessionWindows(gap)
        self.count = np.zeros(0, np.int64)
        self.total = np.zeros(0, np.int64)
        self.in_use: dict[int, int] = {}  # sid -> key slot, for sids handed out and not released
        self.peak = 0
        self.n_merges = self.n_late = 0  # how much of the interesting paths a stream exercised
        self.closes: list[list[tuple]] = []

    def _grow(self):
        cap = self.sw.sid_capacity
        if cap > len(self.count):
            self.count = np.concatenate([self.count, np.zeros(cap - len(self.count), np.int64)])
            self.total = np.concatenate([self.total, np.zeros(cap - len(self.total), np.int64)])

    def _aggregate(self, sid, keys, values, lo, hi):
        for r in range(lo, hi):
            s = int(sid[r])
            if s >= 0:
                self.count[s] += 1
                self.total[s] += int(values[r])

    def batch(self, keys, times, wm, values):
        n = len(keys)
        keys = np.ascontiguousarray(keys, np.int32)
        times = np.ascontiguousarray(times, np.int64)
        wm = np.ascontiguousarray(wm, np.int64)
        sid = np.full(n, -7, np.int32)
        lo = np.zeros(n, np.int64)
        hi = np.zeros(n, np.int64)
        start = seg = 0
        self.merged = {}  # row of this batch -> number of merge pairs it produced
        while True:
            end, merges = self.sw.assign(keys, times, wm, sid, lo, hi, start)
            assert start < end <= n or start == end == n
            assert merges.dtype == np.int32 and merges.ndim == 2 and merges.shape[1] == 2
            self._grow()
            for r in range(start, end):
                s = int(sid[r])
                if s < 0:
                    assert s == -1
                    self.n_late += 1
                    continue
                if s not in self.in_use:  # a fresh session: its state must have been reset
                    assert self.count[s] == 0 and self.total[s] == 0
                    self.in_use[s] = int(keys[r])
                assert self.in_use[s] == keys[r]
            self.peak = max(self.peak, len(self.in_use))
            if len(merges) == 0:
                assert end == n
                self._aggregate(sid, keys, values, seg, n)
                break
            self._aggregate(sid, keys, values, seg, end - 1)
            self.n_merges += len(merges)
            self.merged[end - 1] = len(merges)
            for dst, src in merges.tolist():
                assert dst == sid[end - 1] and dst != src
                assert self.in_use[dst] == self.in_use[src] == keys[end - 1]
                self.count[dst] += self.count[src]
                self.total[dst] += self.total[src]
                self.count[src] = self.total[src] = 0
                del self.in_use[src]
            start, seg = end, end - 1  # row end-1 belongs to dst: aggregate it after the merge
        return sid, lo, hi

    def close(self, watermark=None):
        res = self.sw.close_all() if watermark is None else self.sw.close(watermark)
        sids, keys, starts, ends = res
        assert (sids.dtype, keys.dtype, starts.dtype, ends.dtype) == (
            np.int32, np.int32, np.int64, np.int64)
        order = list(zip(ends.tolist(), starts.tolist()))
        assert order == sorted(order)
        if watermark is not None:
            assert (ends <= watermark).all()
        out = []
        for s, k, a, b in zip(sids.tolist(), keys.tolist(), starts.tolist(), ends.tolist()):
            assert self.in_use.pop(s) == k
            out.append((k, a, b, int(self.count[s]), int(self.total[s])))
            self.count[s] = self.total[s] = 0
        self.sw.release(sids)
        out.sort()
        self.closes.append(out)
        return out


def run_both(gap, keys, times, values, lateness, cuts, flushes=(), ahead=0):
    """Feed the same rows to kernel (in batches split at ``cuts``) and reference; compare.
    After a batch ending at a row in ``flushes`` every session closes (a mid-stream flush()).
    ``ahead > 0`` closes at a watermark beyond the next rows' (the kernel must cope)."""
    n = len(keys)
    wm = watermarks(times, lateness)
    ref = RefSessions(gap)
    drv = Driver(gap)
    bounds = [0, *sorted({c for c in cuts if 0 < c < n}), n]
    for b0, b1 in itertools.pairwise(bounds):
        sid, lo, hi = drv.batch(keys[b0:b1], times[b0:b1], wm[b0:b1], values[b0:b1])
        for r in range(b0, b1):
            late, a, b, n_merged = ref.row(int(keys[r]), int(times[r]), int(wm[r]), int(values[r]))
            assert (sid[r - b0] == -1) == late, r
            assert (lo[r - b0], hi[r - b0]) == (a, b), r
            assert drv.merged.get(r - b0, 0) == n_merged, r
        if b1 < n:
            w = None if b1 in flushes else int(wm[b1]) + ahead  # the watermark after the batch
            assert drv.close(w) == ref.close(w)
            assert drv.sw.n_open == len(ref.sessions)
    assert drv.close() == ref.close()
    assert drv.sw.n_open == 0
    assert drv.sw.sid_capacity == drv.peak
    assert not drv.in_use
    return drv


def one_batch(sw, keys, times, wm=None, start=0):
    n = len(keys)
    keys = np.asarray(keys, np.int32)
    times = np.asarray(times, np.int64)
    wm = np.full(n, NO_WM, np.int64) if wm is None else np.asarray(wm, np.int64)
    sid = np.full(n, -7, np.int32)
    lo = np.zeros(n, np.int64)
    hi = np.zeros(n, np.int64)
    end, merges = sw.assign(keys, times, wm, sid, lo, hi, start)
    return end, merges.tolist(), sid.tolist(), lo.tolist(), hi.tolist()


def closed(res):
    return [a.tolist() for a in res]


# --------------------------------------------------------------------------------------------
# hand-computed cases


def test_bridge_merges_two_sessions():
    sw = SessionWindows(10)
    end, merges, sid, lo, hi = one_batch(sw, [0, 0, 0, 0], [100, 118, 109, 125])
    # 109 is within 10 of 100 and of 118: it stops the loop right after itself
    assert (end, merges) == (3, [[0, 1]])
    assert sid[:3] == [0, 1, 0]
    assert lo[:3] == [100, 118, 100] and hi[:3] == [110, 128, 128]
    assert sw.n_open == 1 and sw.sid_capacity == 2
    # resume after the merge row: 125 joins the merged session
    keys = np.zeros(4, np.int32)
    times = np.array([100, 118, 109, 125], np.int64)
    wm = np.full(4, NO_WM, np.int64)
    out = [np.zeros(4, np.int32), np.zeros(4, np.int64), np.zeros(4, np.int64)]
    end, merges = sw.assign(keys, times, wm, *out, 3)
    assert end == 4 and merges.shape == (0, 2)
    assert (out[0][3], out[1][3], out[2][3]) == (0, 100, 135)
    # the absorbed sid 1 was released: the next new session reuses it
    end, merges, sid, lo, hi = one_batch(sw, [0], [500])
    assert sid == [1] and sw.sid_capacity == 2
    assert closed(sw.close(135)) == [[0], [0], [100], [135]]


def test_three_sessions_merge_in_a_chain():
    # Sessions of a key are >= gap apart, so one row can touch at most two of them: bridging three
    # sessions takes two rows, each stopping assign() with one merge pair.
    sw = SessionWindows(10)
    keys = np.zeros(5, np.int32)
    times = np.array([100, 115, 130, 107, 122], np.int64)
    wm = np.full(5, NO_WM, np.int64)
    sid = np.zeros(5, np.int32)
    lo = np.zeros(5, np.int64)
    hi = np.zeros(5, np.int64)
    end, merges = sw.assign(keys, times, wm, sid, lo, hi, 0)
    assert end == 4 and merges.tolist() == [[0, 1]]  # 107 bridges [100] and [115]
    assert (sid[3], lo[3], hi[3]) == (0, 100, 125)
    end, merges = sw.assign(keys, times, wm, sid, lo, hi, 4)
    assert end == 5 and merges.tolist() == [[0, 2]]  # 122 bridges [100..115] and [130]
    assert (sid[4], lo[4], hi[4]) == (0, 100, 140)
    assert sw.n_open == 1
    assert closed(sw.close_all()) == [[0], [0], [100], [140]]
    # the survivor is the earliest session even when the bridging row reaches it last
    sw = SessionWindows(10)
    end, merges, sid, lo, hi = one_batch(sw, [0, 0, 0], [135, 120, 128])
    assert (end, merges, sid) == (3, [[1, 0]], [0, 1, 1])
    assert (lo[2], hi[2]) == (120, 145)


def test_out_of_order_rows_extend_first_backwards():
    sw = SessionWindows(10)
    end, merges, sid, lo, hi = one_batch(sw, [0, 0, 0, 0, 0], [100, 95, 92, 85, 101])
    assert (end, merges) == (5, [])
    assert sid == [0, 0, 0, 0, 0]
    assert lo == [100, 95, 92, 85, 85]
    assert hi == [110, 110, 110, 110, 111]
    assert closed(sw.close(110)) == [[], [], [], []]
    assert closed(sw.close(111)) == [[0], [0], [85], [111]]
    # exactly gap apart does not join (strict inequalities on both sides)
    sw.release(np.array([0], np.int32))
    sw = SessionWindows(10)
    end, merges, sid, lo, hi = one_batch(sw, [0, 0, 0], [100, 110, 90])
    assert sid == [0, 1, 2] and hi == [110, 120, 100]


def test_late_rows_and_watermark_closing_sessions_mid_batch():
    sw = SessionWindows(10)
    times = [100, 50, 95, 200, 99, 105]
    wm = [0, 100, 105, 105, 110, 110]
    end, merges, sid, lo, hi = one_batch(sw, [0] * 6, times, wm)
    assert end == 6 and merges == []
    assert sid[0] == 0 and (lo[0], hi[0]) == (100, 110)
    assert sid[1] == -1 and (lo[1], hi[1]) == (50, 60)       # 60 <= 100: late
    assert sid[2] == 0 and (lo[2], hi[2]) == (95, 110)       # older than wm - gap, but joins
    assert sid[3] == 1
    # at wm 110 session [95, 110) is closed even though close() has not returned it yet:
    assert sid[4] == -1                                      # 99 would have joined it: late
    assert sid[5] == 2 and (lo[5], hi[5]) == (105, 115)      # 105 opens a fresh session
    assert sw.n_open == 3
    assert closed(sw.close(110)) == [[0], [0], [95], [110]]
    assert sw.n_open == 2
    assert closed(sw.close_all()) == [[2, 1], [0, 0], [105, 200], [115, 210]]


def test_keys_are_independent():
    sw = SessionWindows(10)
    keys = [0, 7, 3, 0, 7, 3, 7]
    times = [100, 105, 100, 108, 140, 300, 112]
    end, merges, sid, lo, hi = one_batch(sw, keys, times)
    assert end == 7 and merges == []
    assert sid == [0, 1, 2, 0, 3, 4, 1]
    assert list(zip(lo, hi)) == [(100, 110), (105, 115), (100, 110), (100, 118),
                                 (140, 150), (300, 310), (105, 122)]
    assert closed(sw.close(150)) == [[2, 0, 1, 3], [3, 0, 7, 7], [100, 100, 105, 140],
                                     [110, 118, 122, 150]]
    assert sw.n_open == 1


def test_rows_after_a_flush_open_new_sessions():
    # close() ahead of the rows' watermark: later rows must not join what it closed
    sw = SessionWindows(10)
    one_batch(sw, [0, 0], [100, 200])
    assert closed(sw.close(150)) == [[0], [0], [100], [110]]
    end, merges, sid, lo, hi = one_batch(sw, [0], [105])
    assert (end, merges, sid, lo, hi) == (1, [], [2], [105], [115])
    # flush() closes sessions the watermark has not reached; later rows must not join them
    sw = SessionWindows(10)
    one_batch(sw, [0, 1], [100, 100])
    assert closed(sw.close_all()) == [[0, 1], [0, 1], [100, 100], [110, 110]]
    end, merges, sid, lo, hi = one_batch(sw, [0, 0], [105, 97])
    assert (end, merges, sid) == (2, [], [2, 2]) and (lo[1], hi[1]) == (97, 115)
    sw.release(np.array([0, 1], np.int32))
    _, _, sid, lo, hi = one_batch(sw, [1], [101])
    assert sid == [1] and (lo, hi) == ([101], [111])
    assert sw.n_open == 2 and sw.sid_capacity == 3


def test_close_order_and_release_reuse():
    sw = SessionWindows(5)
    one_batch(sw, [0, 1, 2, 3], [30, 10, 20, 10])
    sids, keys, starts, ends = sw.close(25)
    assert ends.tolist() == [15, 15, 25] and starts.tolist() == [10, 10, 20]
    assert keys.tolist() == [1, 3, 2]
    # closed but not released: not reused yet
    _, _, sid, _, _ = one_batch(sw, [5], [100])
    assert sid == [4] and sw.sid_capacity == 5
    sw.release(sids)
    _, _, sid, _, _ = one_batch(sw, [6, 6, 6], [200, 300, 400])
    assert sorted(sid) == sorted(sids.tolist()) and sw.sid_capacity == 5


def test_release_rejects_bad_sids_and_releases_none():
    sw = SessionWindows(10)
    one_batch(sw, [0, 1], [100, 200])
    sids = sw.close(110)[0]
    assert sids.tolist() == [0]
    with pytest.raises(ValueError):
        sw.release(np.array([1], np.int32))         # still open
    with pytest.raises(ValueError):
        sw.release(np.array([0, 0], np.int32))      # listed twice
    with pytest.raises(ValueError):
        sw.release(np.array([0, 99], np.int32))     # never handed out
    with pytest.raises(ValueError):
        sw.release(np.array([-1], np.int32))
    sw.release(sids)                                # all of the above left sid 0 closed
    with pytest.raises(ValueError):
        sw.release(sids)                            # already released
    sw.release(np.array([], np.int32))


def test_argument_validation():
    with pytest.raises(ValueError):
        SessionWindows(0)
    with pytest.raises(ValueError):
        SessionWindows(-5)
    sw = SessionWindows(10)
    assert sw.gap_ms == 10
    i32, i64 = np.zeros(3, np.int32), np.zeros(3, np.int64)
    with pytest.raises(ValueError):
        sw.assign(i32, i64, np.zeros(2, np.int64), i32.copy(), i64.copy(), i64.copy(), 0)
    with pytest.raises(IndexError):
        sw.assign(i32, i64, i64, i32.copy(), i64.copy(), i64.copy(), 4)
    with pytest.raises(ValueError):
        sw.assign(np.array([0, -1, 0], np.int32), i64, i64, i32.copy(), i64.copy(), i64.copy(), 0)
    with pytest.raises((ValueError, TypeError)):
        sw.assign(i64, i64, i64, i32.copy(), i64.copy(), i64.copy(), 0)   # wrong dtype
    assert sw.n_open == 0
    end, merges = sw.assign(i32, i64, i64, i32.copy(), i64.copy(), i64.copy(), 3)
    assert end == 3 and merges.shape == (0, 2) and merges.dtype == np.int32
    e = np.zeros(0, np.int32)
    end, merges = sw.assign(e, e.astype(np.int64), e.astype(np.int64), e.copy(),
                            e.astype(np.int64), e.astype(np.int64), 0)
    assert end == 0 and merges.shape == (0, 2)
    assert [len(a) for a in sw.close_all()] == [0, 0, 0, 0]


def test_engine_driver_on_hand_case():
    keys = np.array([0, 0, 1, 0, 1, 0, 0], np.int32)
    times = np.array([100, 118, 100, 109, 300, 50, 400], np.int64)
    values = np.array([1, 2, 3, 4, 5, 6, 7], np.int64)
    # lateness 100: the first close (watermark 18) closes nothing, the merge happens in batch 2
    drv = run_both(10, keys, times, values, lateness=100, cuts=[2, 5])
    assert drv.closes[-2:] == [[(0, 100, 128, 3, 7), (1, 100, 110, 1, 3)],
                               [(0, 400, 410, 1, 7), (1, 300, 310, 1, 5)]]


# --------------------------------------------------------------------------------------------
# randomized against the reference


def random_stream(rng, n, n_keys, gap, spacing, disorder):
    """``n`` rows over ``n_keys`` sparse key slots, a key's rows about ``spacing * gap`` apart on
    average, each arriving up to ``disorder * gap`` late: sessions form, merge and close."""
    keys = np.array([3 * rng.randrange(n_keys) for _ in range(n)], np.int32)
    step = max(1, round(2 * spacing * gap / n_keys))
    clock = np.cumsum([rng.randrange(step + 1) for _ in range(n)])
    times = np.array([c - rng.randrange(int(disorder * gap) + 1) for c in clock], np.int64)
    values = np.array([rng.randrange(-50, 100) for _ in range(n)], np.int64)
    return keys, times, values


@pytest.mark.parametrize("seed", range(16))
def test_random_streams_match_reference(seed):
    rng = random.Random(seed)
    n = rng.choice([50, 400, 2000])
    gap = rng.choice([1, 3, 10, 50])
    keys, times, values = random_stream(rng, n, rng.choice([1, 3, 20]), gap,
                                        spacing=rng.choice([0.3, 1, 2]),
                                        disorder=rng.choice([0, 1, 3, 10]))
    cuts = [rng.randrange(n) for _ in range(rng.choice([0, 3, n // 10]))]
    run_both(gap, keys, times, values, lateness=gap * rng.choice([0, 2, 10, 10]), cuts=cuts)


def test_close_cadence_does_not_change_results():
    rng = random.Random(99)
    keys, times, values = random_stream(rng, 1500, 4, 10, spacing=1, disorder=5)
    every_row = run_both(10, keys, times, values, lateness=15, cuts=list(range(1500)))
    once = run_both(10, keys, times, values, lateness=15, cuts=[])
    assert sorted(x for c in every_row.closes for x in c) == once.closes[-1]
    # the stream exercises merges, late rows and sid reuse
    assert every_row.n_merges > 20 and every_row.n_late > 20
    assert every_row.sw.sid_capacity < len(once.closes[-1]) // 10


# (key, clock step, how late the row arrives, value): the time is clock - lateness of the row
rows = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(0, 40), st.integers(-9, 9)),
    min_size=4, max_size=80)


@settings(max_examples=200, deadline=None)
@given(rows=rows, gap=st.integers(1, 15), lateness=st.integers(0, 60),
       cuts=st.lists(st.integers(0, 80), max_size=6),
       ahead=st.sampled_from([0, 0, 0, 5, 30]))
def test_hypothesis_matches_reference(rows, gap, lateness, cuts, ahead):
    keys = np.array([r[0] for r in rows], np.int32)
    clock = np.cumsum([r[1] for r in rows])
    times = (clock - np.array([r[2] for r in rows])).astype(np.int64)
    values = np.array([r[3] for r in rows], np.int64)
    drv = run_both(gap, keys, times, values, lateness, cuts, flushes=cuts[:1], ahead=ahead)
    target(float(drv.n_merges), label="merges")
    event("merges" if drv.n_merges else "no merge")
    event("late rows" if drv.n_late else "no late row")


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.integers(0, 100), min_size=8, max_size=60),
       n_keys=st.integers(1, 3), gap=st.integers(1, 15), lateness=st.integers(0, 120),
       cuts=st.lists(st.integers(0, 60), max_size=6), data=st.data())
def test_hypothesis_shuffled_times_match_reference(times, n_keys, gap, lateness, cuts, data):
    # arrival order unrelated to time: many sessions open at once, many bridges
    keys = np.array(data.draw(st.lists(st.integers(0, n_keys - 1), min_size=len(times),
                                       max_size=len(times))), np.int32)
    times = np.array(times, np.int64)
    values = np.arange(len(times), dtype=np.int64) % 7
    drv = run_both(gap, keys, times, values, lateness, cuts)
    target(float(drv.n_merges), label="merges")
    event("merges" if drv.n_merges else "no merge")
    event("late rows" if drv.n_late else "no late row")


def test_docstring_example_runs():
    import doctest

    import velostream._core.session as mod

    assert doctest.testmod(mod).failed == 0
