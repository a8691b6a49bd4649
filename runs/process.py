"""Process-wide settings every ``activegen`` command and study worker starts with."""

from __future__ import annotations

import ctypes
import ctypes.util


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse, rather than give each large block
    back to the kernel and fault it in afresh at the next allocation (``mallopt``; blocks
    of up to 1 GiB come from the heap, which is trimmed only past 1 GiB free). A training
    step allocates the same large activations every time: an RSSM update on 16 chunks of
    50 64x64 frames spent 43% of its time in page faults and ran 1.44x faster with this
    (benchmarks/bench_malloc.py). Returns whether it applied (glibc only)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    trim_threshold, mmap_threshold = -1, -3  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    return bool(mallopt(mmap_threshold, 1 << 30)) and bool(mallopt(trim_threshold, 1 << 30))
