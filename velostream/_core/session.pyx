"""Session-window bookkeeping for ``GROUP BY k WINDOW SESSION(gap)``.

Rules (docs/SQL.md §3-§5), per key slot ``k`` and for a row at time ``t`` whose watermark is
``w`` (the job's watermark just before the row):

* a session is *open* at the row while ``last + gap > w`` and close() has not returned it;
* the row joins every open session ``S`` of ``k`` with ``S.first - gap < t < S.last + gap``;
  joining sets ``first = min(first, t)`` and ``last = max(last, t)``;
* joining two or more sessions merges them into the one with the smallest ``first``;
* joining none opens ``[t, t + gap)``, unless ``t + gap <= w``: then the row is late (sid -1).

A session whose end a row's watermark has passed is not joinable any more even before close()
returns it, so the result never depends on how often the engine calls close().

This module only assigns ids; the engine owns the aggregate state the ids index. The loop of
assign() stops right after a row that merged sessions so the engine can fold the absorbed state
into the survivor before later rows touch it.
"""
from cython.operator cimport dereference as deref, preincrement as inc
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint8_t

import numpy as np
from .state_arrays import state_array as _state_array  # checks import_state input


cdef extern from *:
    """
    #include <iterator>
    #include <utility>
    // Growing a container can throw std::bad_alloc. These wrappers turn that into a status code
    // (0 ok, -1 out of memory) so the nogil loops carry no C++-to-Python exception plumbing.
    template <class V, class T>
    static inline int vs_push_back(V& v, const T& x) noexcept {
        try { v.push_back(x); } catch (...) { return -1; }
        return 0;
    }
    template <class V, class T>
    static inline int vs_insert_at(V& v, Py_ssize_t i, const T& x) noexcept {
        try { v.insert(v.begin() + i, x); } catch (...) { return -1; }
        return 0;
    }
    // Session ends mostly grow with the stream, so a new key usually goes last: hint end().
    template <class S>
    static inline int vs_set_insert(S& s, const typename S::value_type& x,
                                    typename S::iterator* pos) noexcept {
        try { *pos = s.insert(s.end(), x); } catch (...) { return -1; }
        return 0;
    }
    // Give the node at pos a new key without freeing or allocating it (C++17 node handles).
    template <class S>
    static inline typename S::iterator vs_set_rekey(S& s, typename S::iterator pos,
                                                    const typename S::value_type& x) noexcept {
        auto next = std::next(pos);
        auto node = s.extract(pos);
        node.value() = x;
        return s.insert((next != s.end() && x < *next) ? next : s.end(), std::move(node));
    }
    // Erasing elements of a trivially copyable type never throws.
    template <class V>
    static inline void vs_erase_range(V& v, Py_ssize_t i, Py_ssize_t j) noexcept {
        v.erase(v.begin() + i, v.begin() + j);
    }
    """
    int vs_push_back[V, T](V& v, const T& x) noexcept nogil
    int vs_insert_at[V, T](V& v, Py_ssize_t i, const T& x) noexcept nogil
    int vs_set_insert(cpp_set[EndKey]& s, const EndKey& x, EndPos* pos) noexcept nogil
    EndPos vs_set_rekey(cpp_set[EndKey]& s, EndPos pos, const EndKey& x) noexcept nogil
    void vs_erase_range[V](V& v, Py_ssize_t i, Py_ssize_t j) noexcept nogil


# Status codes of the nogil loop, turned into exceptions once the GIL is held again.
cdef enum:
    ST_OK = 0
    ST_NOMEM = -1
    ST_TOO_MANY_SIDS = -2




cdef inline EndKey end_key(int64_t end, int64_t first, int32_t sid) noexcept nogil:
    cdef EndKey key
    key.first = end
    key.second.first = first
    key.second.second = sid
    return key


cdef inline void raise_status(int status) except *:
    if status == ST_NOMEM:
        raise MemoryError("session windows: out of memory (this SessionWindows is now unusable)")
    if status == ST_TOO_MANY_SIDS:
        raise OverflowError("session windows: more than 2**31 - 1 sessions alive at once")


cdef class SessionWindows:
    """Per-key session windows: assigns each row a dense session id, tracks merges and closes.

    >>> import numpy as np
    >>> sw = SessionWindows(10)
    >>> keys = np.array([0, 0, 0], np.int32)
    >>> times = np.array([100, 118, 109], np.int64)   # 109 bridges [100, 110) and [118, 128)
    >>> wm = np.full(3, -10**15, np.int64)
    >>> sid = np.empty(3, np.int32); lo = np.empty(3, np.int64); hi = np.empty(3, np.int64)
    >>> end, merges = sw.assign(keys, times, wm, sid, lo, hi, 0)
    >>> end, merges.tolist(), sid.tolist(), int(lo[2]), int(hi[2])
    (3, [[0, 1]], [0, 1, 0], 100, 128)
    >>> sw.n_open
    1
    >>> closed = sw.close(128)
    >>> [a.tolist() for a in closed]
    [[0], [0], [100], [128]]
    >>> sw.release(closed[0])
    """

    def __init__(self, long long gap_ms):
        if gap_ms <= 0:
            raise ValueError(f"session gap must be positive, got {gap_ms} ms")
        self.gap_ms = gap_ms

    @property
    def n_open(self):
        """Sessions not yet returned by close() / close_all()."""
        return <Py_ssize_t>self.ends.size()

    @property
    def sid_capacity(self):
        """1 + the largest sid ever handed out: the size aggregate state arrays need."""
        return <Py_ssize_t>self.sids.size()

    def assign(self,
               const int32_t[::1] key_slots,   # IN  dense key slot of each row (>= 0)
               const int64_t[::1] times,       # IN  event time of each row (ms)
               const int64_t[::1] wm,          # IN  watermark just before each row, non-decreasing
               int32_t[::1] out_sid,           # OUT session id of each row, -1 when late
               int64_t[::1] out_start,         # OUT the row's session start after the row
               int64_t[::1] out_end,           # OUT the row's session end after the row
               Py_ssize_t start):
        """Assign rows ``start, start + 1, ...`` to sessions; stop after a row that merges.

        Returns ``(end, merges)``: rows ``[start, end)`` were processed. When row ``end - 1``
        merged sessions, ``merges`` is an int32 array of shape ``(m, 2)`` of ``(dst, src)``
        pairs (every src absorbed into dst, src already released for reuse) and the caller
        must fold src state into dst before aggregating row ``end - 1`` (assigned to dst).
        Otherwise ``merges`` has shape ``(0, 2)`` and ``end == len(key_slots)``. A late row
        gets sid -1 and the bounds ``[t, t + gap)`` of the session it could not open.
        """
        cdef Py_ssize_t n = key_slots.shape[0]
        cdef Py_ssize_t i, lo, hi, mid, j, m
        cdef int32_t k, sid, src, kmin = 0, kmax = -1
        cdef int64_t t, w, new_first, new_last
        cdef int64_t gap = self.gap_ms
        cdef int status = ST_OK
        cdef vector[SessionEntry]* sess
        cdef SessionEntry* data
        cdef SessionEntry* e
        cdef SessionEntry fresh

        if (times.shape[0] != n or wm.shape[0] != n or out_sid.shape[0] != n
                or out_start.shape[0] != n or out_end.shape[0] != n):
            raise ValueError("assign: all seven arrays must have the same length")
        if start < 0 or start > n:
            raise IndexError(f"assign: start {start} outside [0, {n}]")
        self.merge_buf.clear()
        if start == n:
            return n, np.empty((0, 2), np.int32)

        with nogil:
            kmin = key_slots[start]
            kmax = kmin
            for i in range(start + 1, n):
                kmin = min(kmin, key_slots[i])
                kmax = max(kmax, key_slots[i])
        if kmin < 0:
            raise ValueError(f"assign: negative key slot {kmin}")
        if <size_t>kmax >= self.by_key.size():
            self.by_key.resize(<size_t>kmax + 1)

        i = start
        with nogil:
            while i < n:
                k = key_slots[i]
                t = times[i]
                w = wm[i]
                sess = &self.by_key[k]
                self._purge_expired(sess, w)
                m = <Py_ssize_t>sess.size()
                data = sess.data()
                # Sessions of a key are >= gap apart, so the ones within gap of t are a run
                # [lo, hi): lo is the first that does not end at or before t.
                lo = 0
                hi = m
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if data[mid].last + gap > t:
                        hi = mid
                    else:
                        lo = mid + 1
                hi = lo
                while hi < m and data[hi].first < t + gap:
                    hi += 1

                if hi == lo:
                    if t + gap <= w:
                        out_sid[i] = -1
                        out_start[i] = t
                        out_end[i] = t + gap
                        i += 1
                        continue
                    sid = self._new_sid(k)
                    if sid < 0:
                        status = sid
                        break
                    fresh.first = t
                    fresh.last = t
                    fresh.sid = sid
                    if (vs_insert_at(sess[0], lo, fresh) != 0
                            or vs_set_insert(self.ends, end_key(t + gap, t, sid),
                                             &self.sids[sid].pos) != 0):
                        status = ST_NOMEM
                        break
                    out_sid[i] = sid
                    out_start[i] = t
                    out_end[i] = t + gap
                    i += 1
                    continue

                e = &data[lo]
                if hi == lo + 1:
                    if t < e.first or t > e.last:
                        e.first = min(e.first, t)
                        e.last = max(e.last, t)
                        self._reindex(e)
                    out_sid[i] = e.sid
                    out_start[i] = e.first
                    out_end[i] = e.last + gap
                    i += 1
                    continue

                # t bridges sessions lo .. hi-1: the earliest absorbs the others.
                new_first = min(e.first, t)
                new_last = data[hi - 1].last
                new_last = max(new_last, t)
                for j in range(lo + 1, hi):
                    src = data[j].sid
                    self.ends.erase(self.sids[src].pos)
                    self.sids[src].state = SID_FREE
                    if (vs_push_back(self.merge_buf, e.sid) != 0
                            or vs_push_back(self.merge_buf, src) != 0
                            or vs_push_back(self.free_sids, src) != 0):
                        status = ST_NOMEM
                        break
                if status != ST_OK:
                    break
                e.first = new_first
                e.last = new_last
                self._reindex(e)
                out_sid[i] = e.sid
                out_start[i] = new_first
                out_end[i] = new_last + gap
                vs_erase_range(sess[0], lo + 1, hi)   # e stays valid: nothing before lo+1 moves
                i += 1
                break

        raise_status(status)
        m = <Py_ssize_t>self.merge_buf.size() // 2
        merges = np.empty((m, 2), np.int32)
        cdef int32_t[:, ::1] mv = merges
        for j in range(m):
            mv[j, 0] = self.merge_buf[2 * j]
            mv[j, 1] = self.merge_buf[2 * j + 1]
        return i, merges

    def close(self, long long watermark):
        """Close every session with ``end <= watermark``.

        Returns ``(sids, key_slots, starts, ends)`` (int32, int32, int64, int64) sorted by end,
        then start. The sids stay reserved until release(sids): the caller reads their aggregate
        state first.
        """
        return self._close(watermark, False)

    def close_all(self):
        """Close every session (end of input). Same return value as close()."""
        return self._close(0, True)

    def release(self, const int32_t[::1] sids):
        """Make closed sids available for reuse. Raises ValueError, releasing none, if any sid
        is not closed (never handed out, still open, already released, or listed twice)."""
        cdef Py_ssize_t n = sids.shape[0]
        cdef Py_ssize_t i, bad = -1
        cdef size_t cap = self.sids.size()
        cdef int32_t s
        self.free_sids.reserve(self.free_sids.size() + <size_t>n)
        with nogil:
            for i in range(n):
                s = sids[i]
                if s < 0 or <size_t>s >= cap or self.sids[s].state != SID_CLOSED:
                    bad = i
                    break
                self.sids[s].state = SID_FREE   # a duplicate later in sids now fails the check
            if bad >= 0:
                for i in range(bad):
                    self.sids[sids[i]].state = SID_CLOSED
            else:
                for i in range(n):
                    vs_push_back(self.free_sids, sids[i])   # cannot fail: reserved above
        if bad >= 0:
            raise ValueError(f"release: sid {sids[bad]} is not a closed session; none released")

    # -- durable state -----------------------------------------------------------------------

    def export_state(self):
        """Everything that decides future assignments, as numpy arrays (the sids stay valid:
        aggregate state indexed by them is exported with the same numbers).

        ``sid`` (int32), ``key_slot`` (int32), ``first`` and ``last`` (int64, record times) and
        ``expired`` (uint8: a row's watermark passed its end, no longer joinable) of every
        session not yet returned by close(), in close() order (end, start, sid); ``free_sids``
        (int32), the released sids in the order they will be reused (next one last);
        ``sid_capacity`` (int64, one entry). Raises ValueError while sids are closed but not
        released (between close() and release(): the caller is reading them).
        """
        cdef Py_ssize_t m = <Py_ssize_t>self.ends.size(), i = 0, j
        cdef Py_ssize_t cap = <Py_ssize_t>self.sids.size()
        cdef Py_ssize_t nfree = <Py_ssize_t>self.free_sids.size()
        cdef cpp_set[EndKey].iterator it
        cdef EndKey key
        cdef int32_t sid
        if m + nfree != cap:
            raise ValueError("export_state: some sessions are closed but not released yet")
        sids = np.empty(m, np.int32)
        keys = np.empty(m, np.int32)
        firsts = np.empty(m, np.int64)
        lasts = np.empty(m, np.int64)
        expired = np.empty(m, np.uint8)
        free = np.empty(nfree, np.int32)
        cdef int32_t[::1] o_sid = sids
        cdef int32_t[::1] o_key = keys
        cdef int64_t[::1] o_first = firsts
        cdef int64_t[::1] o_last = lasts
        cdef uint8_t[::1] o_exp = expired
        cdef int32_t[::1] o_free = free
        with nogil:
            it = self.ends.begin()
            while it != self.ends.end():
                key = deref(it)
                sid = key.second.second
                o_sid[i] = sid
                o_key[i] = self.sids[sid].key_slot
                o_first[i] = key.second.first
                o_last[i] = key.first - self.gap_ms
                o_exp[i] = self.sids[sid].state == SID_EXPIRED
                i += 1
                inc(it)
            for j in range(nfree):
                o_free[j] = self.free_sids[j]
        return {"sid": sids, "key_slot": keys, "first": firsts, "last": lasts,
                "expired": expired, "free_sids": free,
                "sid_capacity": np.array([cap], np.int64)}

    def import_state(self, arrays):
        """Load ``export_state`` arrays into this fresh SessionWindows (same gap), with the key
        slots of this process in ``key_slot``. Every sid below ``sid_capacity`` must be either
        a session or free, and a key's joinable sessions must be at least the gap apart."""
        if not self.sids.empty():
            raise ValueError("import_state needs a fresh SessionWindows")
        sids_a = _state_array(arrays, "sid", np.int32, -1)
        cdef Py_ssize_t m = sids_a.shape[0]
        keys_a = _state_array(arrays, "key_slot", np.int32, m)
        first_a = _state_array(arrays, "first", np.int64, m)
        last_a = _state_array(arrays, "last", np.int64, m)
        exp_a = _state_array(arrays, "expired", np.uint8, m)
        free_a = _state_array(arrays, "free_sids", np.int32, -1)
        cap_a = _state_array(arrays, "sid_capacity", np.int64, 1)
        cdef int64_t cap = cap_a[0]
        cdef const int32_t[::1] sid_v = sids_a
        cdef const int32_t[::1] key_v = keys_a
        cdef const int64_t[::1] first_v = first_a
        cdef const int64_t[::1] last_v = last_a
        cdef const uint8_t[::1] exp_v = exp_a
        cdef const int32_t[::1] free_v = free_a
        cdef Py_ssize_t i, j, nfree = free_v.shape[0]
        cdef int32_t s, kmax = -1
        cdef SidInfo info
        cdef SessionEntry e
        if cap < 0 or cap > INT32_MAX or m + nfree != cap:
            raise ValueError(f"import_state: {m} sessions and {nfree} free sids do not make up "
                             f"sid_capacity {cap}")
        for i in range(m):
            if key_v[i] < 0:
                raise ValueError(f"import_state: negative key slot {key_v[i]}")
            if last_v[i] < first_v[i]:
                raise ValueError(f"import_state: session {sid_v[i]} ends before it starts")
            kmax = max(kmax, key_v[i])
        seen = np.zeros(cap, np.uint8)
        cdef uint8_t[::1] seen_v = seen
        for i in range(m + nfree):
            s = sid_v[i] if i < m else free_v[i - m]
            if s < 0 or s >= cap or seen_v[s]:
                raise ValueError(f"import_state: sid {s} out of range or listed twice")
            seen_v[s] = 1
        # A key's joinable sessions in start order, at least the gap apart (the invariant assign
        # relies on).
        live = np.flatnonzero(exp_a == 0)
        live = live[np.lexsort((first_a[live], keys_a[live]))]
        if len(live) > 1:
            prev, nxt = live[:len(live) - 1], live[1:]
            same = keys_a[nxt] == keys_a[prev]
            if (same & (last_a[prev] + self.gap_ms > first_a[nxt])).any():
                raise ValueError("import_state: joinable sessions of a key closer than the gap")
        cdef const int64_t[::1] order = np.ascontiguousarray(live, dtype=np.int64)
        info.key_slot = 0
        info.state = SID_FREE
        self.sids.assign(<size_t>cap, info)
        self.by_key.resize(<size_t>(kmax + 1))
        for j in range(nfree):
            self.free_sids.push_back(free_v[j])
        for i in range(m):
            s = sid_v[i]
            self.sids[s].key_slot = key_v[i]
            self.sids[s].state = SID_EXPIRED if exp_v[i] else SID_LIVE
            if vs_set_insert(self.ends, end_key(last_v[i] + self.gap_ms, first_v[i], s),
                             &self.sids[s].pos) != 0:
                raise MemoryError("session windows: out of memory")
        for j in range(order.shape[0]):
            i = order[j]
            e.first = first_v[i]
            e.last = last_v[i]
            e.sid = sid_v[i]
            self.by_key[key_v[i]].push_back(e)

    # -- internals ---------------------------------------------------------------------------

    cdef int _purge_expired(self, vector[SessionEntry]* sess, int64_t wm) noexcept nogil:
        """Drop from ``sess`` the sessions whose end ``wm`` has reached; they stay in ``ends``
        (EXPIRED) until close() returns them. Being sorted by last, they are a prefix."""
        cdef Py_ssize_t m = <Py_ssize_t>sess.size()
        cdef Py_ssize_t j = 0
        cdef SessionEntry* data = sess.data()
        while j < m and data[j].last + self.gap_ms <= wm:
            self.sids[data[j].sid].state = SID_EXPIRED
            j += 1
        if j:
            vs_erase_range(sess[0], 0, j)
        return <int>j

    cdef int32_t _new_sid(self, int32_t key_slot) noexcept nogil:
        """A LIVE sid for ``key_slot``: the most recently released one, else a new one.
        Returns a negative status on failure."""
        cdef int32_t sid
        cdef SidInfo info
        info.key_slot = key_slot
        info.state = SID_LIVE
        if not self.free_sids.empty():
            sid = self.free_sids.back()
            self.free_sids.pop_back()
            self.sids[sid] = info
            return sid
        if self.sids.size() >= <size_t>INT32_MAX:
            return ST_TOO_MANY_SIDS
        sid = <int32_t>self.sids.size()
        if vs_push_back(self.sids, info) != 0:
            return ST_NOMEM
        return sid

    cdef void _reindex(self, const SessionEntry* e) noexcept nogil:
        """Move ``e`` in ``ends`` after its first/last changed."""
        cdef SidInfo* info = &self.sids[e.sid]
        info.pos = vs_set_rekey(self.ends, info.pos, end_key(e.last + self.gap_ms, e.first, e.sid))

    cdef void _unlink(self, int32_t key_slot, int64_t first) noexcept nogil:
        """Remove the session starting at ``first`` from its key's session vector."""
        cdef vector[SessionEntry]* sess = &self.by_key[key_slot]
        cdef SessionEntry* data = sess.data()
        cdef Py_ssize_t lo = 0, hi = <Py_ssize_t>sess.size(), mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if data[mid].first < first:
                lo = mid + 1
            else:
                hi = mid
        vs_erase_range(sess[0], lo, lo + 1)

    cdef tuple _close(self, int64_t watermark, bint everything):
        cdef Py_ssize_t m = 0, i
        cdef cpp_set[EndKey].iterator it
        cdef EndKey key
        cdef int32_t sid
        cdef SidInfo* info
        with nogil:
            it = self.ends.begin()
            while it != self.ends.end() and (everything or deref(it).first <= watermark):
                m += 1
                inc(it)
        sids = np.empty(m, np.int32)
        keys = np.empty(m, np.int32)
        starts = np.empty(m, np.int64)
        ends = np.empty(m, np.int64)
        cdef int32_t[::1] o_sid = sids
        cdef int32_t[::1] o_key = keys
        cdef int64_t[::1] o_start = starts
        cdef int64_t[::1] o_end = ends
        with nogil:
            for i in range(m):
                it = self.ends.begin()
                key = deref(it)
                sid = key.second.second
                info = &self.sids[sid]
                o_sid[i] = sid
                o_key[i] = info.key_slot
                o_start[i] = key.second.first
                o_end[i] = key.first
                if info.state == SID_LIVE and not everything:
                    self._unlink(info.key_slot, key.second.first)
                info.state = SID_CLOSED
                self.ends.erase(it)
            if everything:
                for i in range(<Py_ssize_t>self.by_key.size()):
                    self.by_key[i].clear()
        return sids, keys, starts, ends
