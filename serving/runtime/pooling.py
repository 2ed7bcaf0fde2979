"""Sentence vectors from per-token states: last state, mean or max, optionally L2-normalised,
and, for a text continued from a state (runtime/state.py), over everything encoded so far."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from zh_rnn_encoder.core.enums import Pooling
from zh_rnn_encoder.core.errors import InvalidInput

if TYPE_CHECKING:
    from zh_rnn_encoder.runtime.state import EncoderState


OVERFLOW = (
    "the model's states left float32's range (a NaN or an infinity) on it: a relu cell's "
    "states are not bounded by the cell, and this model's grow on this text "
    "(tools/state_bound.py probes a bundle for this); a shorter text may pass"
)


class NotFinite(InvalidInput):
    """A pooled vector came out NaN or infinite; the message names the text (Rows.deliver)."""

    def __init__(self, where: str = "text") -> None:
        super().__init__(f"{where}: {OVERFLOW}")


def pool(
    states: np.ndarray,
    final: np.ndarray,
    mode: Pooling,
    normalize: bool,
    prior: EncoderState | None = None,
) -> np.ndarray:
    """states float32 [n, F] (the text's tokens only; unused by LAST), final [F] -> [F].

    With ``prior``, MEAN and MAX take in its running sum (float64) and maximum: the vector of
    the prior tokens and these together. NotFinite when the vector holds a NaN or an infinity
    (so a response never carries one): free where the norm is taken anyway."""
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
        if not math.isfinite(norm):  # also a finite vector whose norm overflows: it would be 0
            raise NotFinite
        v = v / norm if norm > 0 else v
    elif not np.isfinite(v).all():
        raise NotFinite
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
