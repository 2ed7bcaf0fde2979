"""Padding and run planning, written once: ragged id rows -> padded runs within a token budget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad(rows: Sequence[np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 rows -> ids int64 [B, longest] padded with ``pad_id``, lengths int64 [B]."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    ids = np.full((len(rows), int(lengths.max())), pad_id, dtype=np.int64)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = r
    return ids, lengths


def plan_runs(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices sorted by length, cut into runs whose rows x longest stays within ``budget``.

    Runs of similar lengths waste little on padding; a row longer than the budget runs alone.
    The order inside a run is by length, so a caller scatters results back by index.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    runs: list[list[int]] = []
    run: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if run and (len(run) + 1) * max(longest, n) > budget:
            runs.append(run)
            run, longest = [], 0
        run.append(i)
        longest = max(longest, n)
    return runs + ([run] if run else [])
