"""Keep glibc from returning large freed blocks to the OS between training steps.

A CPU training step allocates and frees a dozen embedding-sized buffers (10 MB on Gowalla).
With glibc's defaults such blocks are ``mmap``-ed and unmapped every time, so every step
page-faults ~40 MB in again (10k faults per step on Gowalla, about 10-20% of a step). Raising
the mmap and trim thresholds makes them reusable heap memory; the peak footprint is unchanged.
This is the effect the PyTorch CPU performance guide gets from jemalloc/tcmalloc, without a
preload. It is a no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper bound on 64-bit
_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap / trim thresholds once per process; returns whether it applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or an unusual libc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX))
    ok = bool(mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)) and ok
    _done = ok
    return ok
