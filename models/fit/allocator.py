"""Keeping freed memory in the process: large tensors then skip the kernel's page faults.

Training allocates and frees tensors of tens of megabytes every step. glibc serves blocks
above 32 MB with fresh ``mmap`` pages and returns them to the kernel when freed, so each
step pays a page fault per 4 KB touched; on a full Kodak image that is about a fifth of the
step time. Telling glibc never to ``mmap`` and never to trim keeps those pages mapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1


@functools.cache
def keep_freed_memory() -> bool:
    """Configure glibc's ``malloc`` (once per process); False where it is not glibc.

    The process keeps its peak heap mapped until it exits: fine for an encoder, which is
    what calls this.
    """
    path = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(path).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
