# Hash table behind GROUP BY, windows, ROWS partitions and the hash router.
#
# A group key is ``n_words`` int64 words per row. The table maps each distinct key to a dense
# int32 *slot* that indexes columnar aggregate state kept elsewhere; removed slots are reused.
#
# Layout (all buffers malloc'ed, freed in ``GroupTable.__dealloc__``):
#   keys[slot * n_words + w]   the stored words, slot-major so one key is one cache line or less
#   index[pos]                 open-addressing array of (slot, low 32 hash bits) entries, slot -1
#                              when empty; power-of-two size, linear probing, backward-shift
#                              deletion (no tombstones)
#
# The index entry carries the hash bits that place it, so growing and deleting work from the
# index alone (sequential, no key reads); only remove() recomputes the hash of the slot it drops.
#
# The hash is a multiply/xor-shift round per word followed by murmur3's fmix64 finaliser. It is
# inlined here so other kernels (the router) can cimport it and agree with ``hash_columns``.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t


# Status codes returned by the nogil routines; the ``def`` wrappers turn them into exceptions
# once the GIL is held again.
cdef enum GTStatus:
    GT_OK = 0
    GT_NO_MEMORY = 1          # malloc/realloc failed: MemoryError
    GT_TOO_MANY_GROUPS = 2    # slot ids would overflow int32: OverflowError
    GT_BAD_SLOT = 3           # a slot that is not live was passed in: ValueError


cdef struct GTEntry:
    int32_t slot              # group slot, -1 when the entry is empty
    uint32_t hash_lo          # low 32 bits of the key's hash. The home position is
                              # hash_lo & index_mask (the index never exceeds 2**32 entries);
                              # the bits above the mask reject almost every other key in a
                              # probe run without a dependent load of its words


cdef struct GTState:
    int n_words               # words per key, >= 1, fixed for the table's life
    int64_t* keys             # slot-major key words, slot_cap * n_words entries
    uint8_t* live             # 1 when the slot holds a group, 0 when free or never used; remove()
                              # briefly uses 2 to mark slots already seen in the same call
    int32_t* free_slots       # stack of freed slot ids, handed out again before new ids
    Py_ssize_t n_free         # entries on the free_slots stack
    Py_ssize_t slot_cap       # allocated length of keys / live / free_slots, in slots
    Py_ssize_t next_slot      # 1 + the largest slot id ever handed out (slot_capacity)
    Py_ssize_t n_groups       # live groups
    GTEntry* index            # open-addressing array, index_mask + 1 entries
    Py_ssize_t index_mask     # index length - 1; the length is a power of two >= 2 * n_groups


cdef class GroupTable:
    cdef GTState st           # all table state; a plain struct so the nogil code can take &st
    cdef bint busy            # set while a method runs without the GIL: a second Python thread
                              # entering the same table gets RuntimeError instead of a torn table


# ``GroupTable.find_or_insert`` on raw pointers (n_words int64 columns of n rows -> out slots);
# returns the number of groups created. For kernels in other modules (group_step.pyx).
cdef Py_ssize_t find_or_insert_rows(GroupTable t, const int64_t** cols, Py_ssize_t n,
                                    int32_t* out, bint release_gil) except -1


cdef inline uint64_t hash_start() noexcept nogil:
    """Seed of every key hash: a nonzero start keeps the all-zero key away from hash 0."""
    return 0x9E3779B97F4A7C15ULL


cdef inline uint64_t hash_round(uint64_t h, int64_t word) noexcept nogil:
    """Fold one key word into the running hash.

    One multiply by an odd constant and one xor-shift: a bijection of the state for a fixed word,
    so two keys only meet when their words conspire against a pseudo-random 64-bit difference.
    Cheaper than a murmur3 body round (one multiply instead of two, no rotates), which matters
    because hashing is about half the cost of a find_or_insert; hash_finish does the avalanche.
    """
    h = (h ^ <uint64_t>word) * 0x9FB21C651E98DF25ULL
    return h ^ (h >> 29)


cdef inline uint64_t hash_finish(uint64_t h, int n_words) noexcept nogil:
    """Close a key hash: mix in the word count, then fmix64 so every output bit (and so
    ``hash % n_partitions``) depends on every input bit, even for sequential small codes."""
    h ^= <uint64_t>n_words * 8
    h ^= h >> 33
    h *= 0xFF51AFD7ED558CCDULL
    h ^= h >> 33
    h *= 0xC4CEB9FE1A85EC53ULL
    h ^= h >> 33
    return h
