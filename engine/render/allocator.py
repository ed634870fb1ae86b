"""Keep freed host memory in the process, so batches do not pay the kernel for fresh pages.

Every kernel batch allocates and frees the same few temporaries of 1–30 MB. glibc's malloc
returns such blocks to the kernel on free (blocks above its mmap threshold are unmapped, and the
top of the heap is trimmed), so the next batch page-faults on freshly zeroed pages. On the 2-core
machine that was half of a small case's render: hkl_interpolate rendered in a median 75 ms with
265,000 page faults per process, 37 ms with 56,000 once the blocks were kept.

``keep_freed_memory`` raises the mmap threshold to glibc's maximum (32 MiB: larger blocks, such
as a big image, are still mapped on their own) and the trim threshold to ``TRIM_BYTES``. The peak
memory does not change; what a finished run freed stays with the process for its next batch or
run. Only glibc has ``mallopt``; elsewhere this does nothing. NB_ENGINE_KEEP_FREED=0 turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc accepts on 64-bit (4 MiB · sizeof(long)).
MMAP_BYTES = 32 * 1024 ** 2
#: Free memory at the top of the heap beyond this goes back to the kernel.
TRIM_BYTES = 1024 ** 3
ENV = "NB_ENGINE_KEEP_FREED"


@functools.cache
def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when they are in effect."""
    if os.environ.get(ENV, "1").strip() in ("0", "false", "no", "off"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):      # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))
