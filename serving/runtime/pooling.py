"""Sentence vectors from per-token states: last state, mean or max, optionally L2-normalised."""

from __future__ import annotations

import numpy as np

from zh_rnn_encoder.core.enums import Pooling


def pool(
    states: np.ndarray | None, final: np.ndarray, mode: Pooling, normalize: bool
) -> np.ndarray:
    """states float32 [n, F] (the text's tokens only; unused by LAST), final [F] -> [F]."""
    if mode is Pooling.LAST:
        v = final
    elif mode is Pooling.MEAN:
        v = states.mean(axis=0, dtype=np.float32)
    else:
        v = states.max(axis=0)
    return pool_vector(v, normalize)


def pool_vector(v: np.ndarray, normalize: bool) -> np.ndarray:
    """A pooled vector as float32, L2-normalised when asked (a zero vector stays zero)."""
    if normalize:
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
    return np.asarray(v, dtype=np.float32)
