"""Give the memory of freed columns back to the system, so that a long session's RSS is its data.

The model grows, splices and copies numpy columns for hours. glibc serves a large
allocation with mmap and unmaps it when freed, but after the first such free it
raises its mmap threshold to that size (up to 32 MiB): from then on arrays of a
few MB come from the heap, which fragments and does not shrink. An hour at
100 Hz x 8 threads held 31.5 MB of rows and grew RSS by 88 MB
(bench/bench_ingest.py); with the threshold fixed, by 34 MB.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3
"""mallopt's parameter (malloc.h); setting it also turns glibc's dynamic threshold off."""
THRESHOLD_BYTES = 128 * 1024
"""glibc's own default: small objects stay on the heap, every column of some size is mapped."""


def return_freed_memory() -> bool:
    """Fix the allocator's mmap threshold for this process; False where the C library has no mallopt."""
    try:
        return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc (macOS, a static build): nothing to tune
        return False
