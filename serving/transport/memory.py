"""Give freed memory back to the system, so that a burst leaves no lasting high-water mark.

glibc raises its mmap threshold as large blocks are freed (up to 32 MB), after which request-
sized buffers come from the heap and their pages stay with the process when freed. Fixing the
threshold keeps large buffers in mmap (returned at once on free), and a periodic malloc_trim
returns what small allocations leave free in the heap: after budget activity, and after any
burst that grew RSS or the heap's free bytes (Trimmer), since bursts that never reach the
budget (idle streams, connections, headers) leave their small blocks too. Elsewhere than glibc,
nothing happens.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("encoder")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 << 10  # blocks from 256 KiB up are mapped and unmapped on their own
TRIM_THRESHOLD = 32 << 20  # the heap gives back free space at its top beyond 32 MiB
TRIM_EVERY_S = 2.0
TRIM_GROWTH = 8 << 20  # RSS or free heap this much above its least since the last trim: trim
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


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


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
        + ("uordblks", "fordblks", "keepcost")
    ]


if LIBC is not None and hasattr(LIBC, "mallinfo2"):  # glibc 2.33 and later
    LIBC.mallinfo2.restype = _Mallinfo2


def rss() -> int:
    """This process's resident bytes (Linux: /proc/self/statm); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def heap_free() -> int:
    """Bytes free inside malloc's arenas, all of them (glibc's mallinfo2); 0 where unknown."""
    if LIBC is None or not hasattr(LIBC, "mallinfo2"):
        return 0
    return int(LIBC.mallinfo2().fordblks)


class Trimmer:
    """When to trim, and how. After budget activity, or once RSS grew by TRIM_GROWTH above its
    least since the last trim: malloc_trim. Once the heap's free bytes grew so (freeing does not
    lower RSS: only they tell that a burst which never reached the budget has ended) while RSS
    holds still: a full gc first, because such a burst often leaves cycles (10,000 cancelled
    idle streams: asyncio tasks and their exceptions) that hold Python's own arenas until the
    next full collection, which an idle server never reaches. Not while RSS still rises: a full
    collection over 10,000 open streams takes 300 ms of the event loop (the first as they
    unwind: 40-440 ms, then 23-56). Again at the next step while one gives back TRIM_GROWTH or
    more: a burst's end can take a few seconds to unwind."""

    def __init__(self) -> None:
        self.rss, self.free = rss(), heap_free()
        self.last = self.rss  # RSS at the previous step
        self.again = False  # the last collection gave back TRIM_GROWTH or more
        self.trims = 0

    def due(self, busy: bool) -> str:
        """Why to trim now: "busy", "grown" (RSS), "ended" (free bytes: gc first); "" for not."""
        mem, free = rss(), heap_free()
        rising, self.last = mem > self.last + (1 << 20), mem
        grown, freed = mem > self.rss + TRIM_GROWTH, free > self.free + TRIM_GROWTH
        self.rss, self.free = min(self.rss, mem), min(self.free, free)
        if (freed or self.again) and not rising and not busy:  # under load gc runs by itself
            return "ended"
        return "busy" if busy else "grown" if grown else ""

    def trim(self, ended: bool) -> None:
        """malloc_trim (off the event loop: it may take milliseconds). The free bytes count
        from here only after a burst ended: until then, frees while RSS rose still add up."""
        if LIBC is not None:
            LIBC.malloc_trim(0)
        mem, self.trims = rss(), self.trims + 1
        self.again = ended and mem <= self.last - TRIM_GROWTH  # self.last: RSS before the gc
        self.rss = self.last = mem
        if ended:
            self.free = heap_free()


async def release() -> None:
    """Give back what was just freed (a model a reload replaced): a full collection on the event
    loop (asyncio objects' finalizers belong there), then malloc_trim off it."""
    gc.collect()
    if LIBC is not None:
        await asyncio.get_running_loop().run_in_executor(None, LIBC.malloc_trim, 0)


async def trim_periodically(busy: Callable[[], bool]) -> None:
    """Every TRIM_EVERY_S, asks the Trimmer; ``busy()`` says whether work was admitted since
    the last call. Idle, a step costs a read of /proc/self/statm and one mallinfo2 (~20 us)."""
    if LIBC is None:
        return
    trimmer = Trimmer()
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(TRIM_EVERY_S)
        why = trimmer.due(busy())
        if not why:
            continue
        t0, before = time.perf_counter(), rss()
        if why == "ended":  # on the loop: finalizers of asyncio objects belong there
            gc.collect()
        await loop.run_in_executor(None, trimmer.trim, why == "ended")
        log.debug(
            "trimmed (%s) in %.1f ms: RSS %d -> %d MB",
            why,
            (time.perf_counter() - t0) * 1e3,
            before >> 20,
            trimmer.rss >> 20,
        )
