# Session-window bookkeeping for ``GROUP BY k WINDOW SESSION(gap)`` (docs/SQL.md §4).
#
# A session of a key is the set of its records closer than ``gap`` to each other; it spans
# ``[first, last + gap)``. Each session owns a dense id (``sid``) that indexes aggregate state kept
# elsewhere; ids are recycled through a free list. See session.pyx for the rules.
from libc.stdint cimport int32_t, int64_t, uint8_t
from libcpp.set cimport set as cpp_set
from libcpp.utility cimport pair
from libcpp.vector cimport vector


cdef enum SidState:
    SID_FREE = 0      # on the free list, or never handed out
    SID_LIVE = 1      # open, present in its key's session vector and in ``ends``
    SID_EXPIRED = 2   # a row's watermark passed its end: no longer joinable, still in ``ends``
    SID_CLOSED = 3    # returned by close(); its aggregate state is being read until release()


cdef struct SessionEntry:
    int64_t first     # earliest record time of the session (ms)
    int64_t last      # latest record time of the session (ms); the session ends at last + gap
    int32_t sid       # session id


# (end, (first, sid)): std::pair orders lexicographically, so ``ends`` iterates in the order
# close() promises: by end, then start, then sid.
ctypedef pair[int64_t, int32_t] FirstSid
ctypedef pair[int64_t, FirstSid] EndKey
ctypedef cpp_set[EndKey].iterator EndPos


cdef struct SidInfo:
    EndPos pos        # the session's node in ``ends`` (valid while SID_LIVE or SID_EXPIRED):
                      # updates re-key that node in place instead of searching and reallocating
    int32_t key_slot  # key slot that owns the session (meaningless while SID_FREE)
    uint8_t state     # a SidState


cdef class SessionWindows:
    # session gap in ms (> 0)
    cdef readonly int64_t gap_ms
    # key slot -> its LIVE sessions sorted by first; consecutive ones satisfy
    # a.last + gap <= b.first, so they are sorted by last too and a row touches a contiguous run
    cdef vector[vector[SessionEntry]] by_key
    # every session not yet returned by close() (LIVE and EXPIRED), ordered by (end, first, sid)
    cdef cpp_set[EndKey] ends
    # sid -> owner, state and node in ``ends``; its size is sid_capacity
    cdef vector[SidInfo] sids
    # released sids, reused last-in first-out so the id space stays as small as possible
    cdef vector[int32_t] free_sids
    # flattened (dst, src) pairs of the merge that stopped the last assign() call
    cdef vector[int32_t] merge_buf

    cdef int _purge_expired(self, vector[SessionEntry]* sess, int64_t wm) noexcept nogil
    cdef int32_t _new_sid(self, int32_t key_slot) noexcept nogil
    cdef void _reindex(self, const SessionEntry* e) noexcept nogil
    cdef void _unlink(self, int32_t key_slot, int64_t first) noexcept nogil
    cdef tuple _close(self, int64_t watermark, bint everything)
