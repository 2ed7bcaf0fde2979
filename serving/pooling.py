"""Sentence vectors from per-token states: last state, mean or max, optionally L2-normalised."""

from __future__ import annotations

import numpy as np

POOLINGS = ("last", "mean", "max")


def pool(states: np.ndarray | None, final: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """states float32 [n, F] (the text's tokens only; unused by "last"), final [F] -> [F]."""
    if mode == "last":
        v = final
    elif mode == "mean":
        v = states.mean(axis=0, dtype=np.float32)
    elif mode == "max":
        v = states.max(axis=0)
    else:
        raise ValueError(f"unknown pooling {mode!r}; choose one of {POOLINGS}")
    if normalize:
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
    return np.asarray(v, dtype=np.float32)
