"""Give freed memory back to the system, so that a burst leaves no lasting high-water mark.

glibc raises its mmap threshold as large blocks are freed (up to 32 MB), after which request-
sized buffers come from the heap and their pages stay with the process when freed. Fixing the
threshold keeps large buffers in mmap (returned at once on free), and a periodic malloc_trim
returns what small allocations leave free in the heap. Elsewhere than glibc, nothing happens.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger("encoder")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 << 10  # blocks from 256 KiB up are mapped and unmapped on their own
TRIM_THRESHOLD = 32 << 20  # the heap gives back free space at its top beyond 32 MiB
TRIM_EVERY_S = 2.0


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


LIBC = _libc()


def tune() -> bool:
    """Fix glibc's thresholds; False where this is not glibc."""
    if LIBC is None:
        return False
    return bool(
        LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


async def trim_periodically(busy: Callable[[], bool]) -> None:
    """malloc_trim every TRIM_EVERY_S while ``busy()`` says work happened since the last one."""
    if LIBC is None:
        return
    while True:
        await asyncio.sleep(TRIM_EVERY_S)
        if busy():
            await asyncio.get_running_loop().run_in_executor(None, LIBC.malloc_trim, 0)
