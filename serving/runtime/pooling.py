"""Sentence vectors from per-token states: last state, mean or max, optionally L2-normalised,
and, for a text continued from a state (runtime/state.py), over everything encoded so far."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from zh_rnn_encoder.core.enums import Pooling

if TYPE_CHECKING:
    from zh_rnn_encoder.runtime.state import EncoderState


def pool(
    states: np.ndarray,
    final: np.ndarray,
    mode: Pooling,
    normalize: bool,
    prior: EncoderState | None = None,
) -> np.ndarray:
    """states float32 [n, F] (the text's tokens only; unused by LAST), final [F] -> [F].

    With ``prior``, MEAN and MAX take in its running sum (float64) and maximum: the vector of
    the prior tokens and these together."""
    continued = prior if prior is not None and prior.tokens > 0 else None
    if mode is Pooling.LAST:
        v = final
    elif mode is Pooling.MEAN and continued:
        n = continued.tokens + states.shape[0]
        v = (continued.token_sum + states.sum(axis=0, dtype=np.float64)) / n
    elif mode is Pooling.MEAN:
        # states.mean(axis=0) to the bit (the same float32 sum, then / n), without ndarray.mean's
        # Python-level wrapper, the largest part of pooling (bench/profile_server.py)
        v = np.add.reduce(states, axis=0) / states.shape[0]
    elif continued:
        v = np.maximum(continued.token_max, states.max(axis=0))
    else:
        v = states.max(axis=0)
    if normalize:
        norm = float(np.sqrt(np.dot(v, v)))  # np.linalg.norm's own formula for a vector
        v = v / norm if norm > 0 else v
    return np.asarray(v, dtype=np.float32)


def pool_row(
    states: np.ndarray,
    final: np.ndarray,
    prior: EncoderState | None,
    mode: Pooling,
    normalize: bool,
) -> np.ndarray:
    """``pool`` for one row of a run: a copy, never a view that pins the run's outputs."""
    return np.array(pool(states, final, mode, normalize, prior))
