"""Freed memory goes back to the system after a burst that never touched the in-flight budget."""

from __future__ import annotations

import gc

import pytest

from zh_rnn_encoder.transport import memory

glibc = pytest.mark.skipif(
    memory.LIBC is None or not hasattr(memory.LIBC, "mallinfo2"), reason="glibc 2.33+ only"
)


@glibc
def test_a_burst_freed_into_the_heap_is_trimmed_without_budget_activity() -> None:
    # Free memory other tests of this process left in the heap first: otherwise the burst below
    # can reuse those resident pages, and RSS does not grow (seen under `make test`, where the
    # integration tests run first in the same process).
    gc.collect()
    assert memory.LIBC is not None  # @glibc
    memory.LIBC.malloc_trim(0)
    trimmer = memory.Trimmer()
    blocks = [(bytearray(16_000), bytearray(1_000)) for _ in range(4_000)]  # ~64 MB of malloc
    assert trimmer.due(busy=False) == "grown"  # RSS rose: trimmed, but no full gc yet
    trimmer.trim(ended=False)
    kept = [small for _, small in blocks]  # pins the heap: no hole reaches its top
    del blocks
    held = memory.rss()
    assert memory.heap_free() > 48 << 20
    assert trimmer.due(busy=False) == "ended"  # freed while RSS held still
    trimmer.trim(ended=True)
    assert memory.rss() < held - (32 << 20)
    assert trimmer.due(busy=False) == "ended"  # it gave back much: once more, in case
    trimmer.trim(ended=True)
    assert trimmer.due(busy=False) == ""  # that one gave back nothing, and nothing is new
    assert trimmer.trims == 3 and kept


@glibc
def test_budget_activity_trims_without_a_full_collection() -> None:
    assert memory.Trimmer().due(busy=True) == "busy"
