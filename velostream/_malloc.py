"""Keep freed batch memory in the process instead of handing it back to the kernel.

Every batch allocates and frees a few megabytes of column arrays. With glibc's defaults, blocks
that large are mmap'ed and unmapped each time, and every page of the next batch's arrays is a fresh
page fault: a quarter of the run time of an EMIT CHANGES query went to the kernel. Raising the mmap
and trim thresholds makes freed blocks reusable (the same effect as ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_``). Peak memory is unchanged; memory is simply returned later.

The V2 partition threads would each get an arena of their own, whose heaps glibc unmaps as soon
as they are empty, which they are after every step: 4,600 page faults and a fifth more time per S2
run at one partition. One arena for the process (``MALLOC_ARENA_MAX=1``) keeps that memory too; the
threads allocate a few large blocks per batch, so sharing the arena's lock costs nothing measurable.

Only glibc is touched; ``VELOSTREAM_MALLOC_TUNING=0`` turns it off.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune() -> bool:
    """Apply the thresholds once; returns whether they were applied."""
    if os.environ.get("VELOSTREAM_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        # the process's own symbols, libc's among them: ctypes.util.find_library("c") would import
        # subprocess and tempfile and run ldconfig, 20-40 ms of every start (docs/PERFORMANCE.md,
        # "File to file")
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): leave the allocator alone
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(M_MMAP_THRESHOLD, 256 << 20) == 1
    ok &= mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1
    ok &= mallopt(M_ARENA_MAX, 1) == 1
    return bool(ok)


TUNED = tune()
