"""Resumable encoding: where an encoding stopped, and how to continue it with the next tokens.

An RNN's whole memory of a text is its state. Encoding the tokens of A, then continuing from
A's returned state with the tokens of B, gives the states of encoding A+B at once (forward
direction; a bidirectional model's backward pass needs the whole text, so it refuses). For MEAN
and MAX pooling to continue too, a state carries the token count, the running sum (float64, so
that a very long text's mean stays exact to float32) and the running maximum of the top layer's
per-token states.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Cell
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.core.manifest import ModelConfig

STATE_VERSION = 1
# The largest magnitude a state value may have (the running sum: this much a token). No state a
# model returns comes near it: tanh and GRU states lie in [-1, 1], an LSTM's cell state grows by
# at most 1 a token (past 1e6 only after a million tokens with every gate saturated), and the
# relu default's states stay under 39 (tools/state_bound.py). From within it the graph's products
# start some 30 orders of magnitude inside float32's range; a relu model whose states then grow
# on their own is caught where the vector is pooled (pooling.NotFinite).
STATE_LIMIT = 1e6


@dataclass(frozen=True)
class EncoderState:
    graph_sha256: str  # the model.onnx it came from: another model's state is refused
    cell: Cell
    num_layers: int
    hidden_size: int
    h: np.ndarray  # float32 [num_layers, hidden_size]
    c: np.ndarray | None  # float32 [num_layers, hidden_size], LSTM only
    tokens: int  # tokens encoded so far
    token_sum: np.ndarray  # float64 [hidden_size]: sum of the top layer's per-token states
    token_max: np.ndarray  # float32 [hidden_size]: their maximum (-inf before any token)
    version: int = STATE_VERSION

    def initial(self) -> dict[str, np.ndarray]:
        """The graph's initial state inputs for this one row: {h0: [L, 1, H], c0: ...}."""
        out = {contract.INITIAL_H: self.h[:, None, :]}
        if self.c is not None:
            out[contract.INITIAL_C] = self.c[:, None, :]
        return out


def check_states(
    states: list[EncoderState | None], model: ModelConfig, graph_sha256: str, field: str
) -> None:
    """InvalidInput naming ``field[i]`` unless every state continues this very model."""
    for i, s in enumerate(states):
        if s is None:
            continue
        where = f"{field}[{i}]"
        if s.version != STATE_VERSION:
            raise InvalidInput(
                f"{where}: state version {s.version}, this server reads {STATE_VERSION}"
            )
        if s.graph_sha256 != graph_sha256:
            raise InvalidInput(
                f"{where}: the state comes from another model (graph sha256 "
                f"{s.graph_sha256[:12]}…, this server's {graph_sha256[:12]}…)"
            )
        shape = (model.num_layers, model.hidden_size)
        bad_c = (s.c is not None) != (model.cell is Cell.LSTM)  # c: LSTM only
        if s.cell is not model.cell or s.h.shape != shape or bad_c:
            raise InvalidInput(f"{where}: not a state of this {model.cell.value} {shape} model")
        if s.c is not None and s.c.shape != shape:
            raise InvalidInput(f"{where}.c: shape {s.c.shape}, want {shape}")
        if s.token_sum.shape != (model.hidden_size,) or s.token_max.shape != (model.hidden_size,):
            raise InvalidInput(f"{where}: running sum and max must have {model.hidden_size} values")
        if s.tokens < 0:
            raise InvalidInput(f"{where}.tokens: must not be negative")
        _check_values(s, where)


def _check_values(s: EncoderState, where: str) -> None:
    """InvalidInput naming the field unless every value is a number the model could have made.

    A NaN or an infinity would come back in the vector (NaN through tanh; for a relu cell a
    state grows as it is fed). So would a finite value too large for the graph's products: h of
    3e38 overflows float32 in the first recurrent matrix product and the vector comes back NaN,
    and a running sum of 1e300 makes the normalised vector zeros. Every value is therefore held
    within STATE_LIMIT (the running sum within STATE_LIMIT a token). token_max is -inf before
    any token, and only then."""
    for name, values in (("h", s.h), ("c", s.c), ("token_sum", s.token_sum)):
        if values is not None and not np.isfinite(values).all():
            raise InvalidInput(f"{where}.{name}: values must be finite (NaN or infinity given)")
    top = s.token_max
    ok = np.isneginf(top).all() if s.tokens == 0 else np.isfinite(top).all()
    if not ok:
        want = "-infinity, as no token has been seen" if s.tokens == 0 else "finite"
        raise InvalidInput(f"{where}.token_max: values must be {want}")
    bounds = [("h", s.h, STATE_LIMIT), ("c", s.c, STATE_LIMIT)]
    bounds.append(("token_sum", s.token_sum, STATE_LIMIT * max(s.tokens, 1)))
    if s.tokens:
        bounds.append(("token_max", s.token_max, STATE_LIMIT))
    for name, values, limit in bounds:
        worst = 0.0 if values is None or not values.size else float(np.abs(values).max())
        if worst > limit:
            per = f" ({STATE_LIMIT:g} a token)" if name == "token_sum" else ""
            raise InvalidInput(
                f"{where}.{name}: values must lie within ±{limit:g}{per}, far beyond any "
                f"state a model returns; {worst:.3g} given"
            )


def check_priors(
    initial: Sequence[EncoderState | None] | None,
    texts: Sequence[str],
    return_state: bool,
    model: ModelConfig,
    graph_sha256: str,
) -> list[EncoderState | None] | None:
    """A request's ``initial_states`` (one per text, or none), checked against this model; None
    when there are none. Asking for states back (``return_state``) needs a unidirectional model
    too."""
    priors = list(initial or [])
    if priors and len(priors) != len(texts):
        raise InvalidInput(
            f"initial_states: {len(priors)} given for {len(texts)} texts (one per text, or none)"
        )
    if all(s is None for s in priors):
        priors = []
    if not priors and not return_state:
        return None
    refuse_bidirectional(model)
    check_states(priors, model, graph_sha256, "initial_states")
    return priors or None


def refuse_bidirectional(model: ModelConfig) -> None:
    if model.bidirectional:
        raise InvalidInput(
            "initial and returned states: this model is bidirectional, and its backward direction "
            "needs the whole text, so an encoding cannot be continued; send the whole text"
        )


def stack_initial(rows: list[EncoderState | None], model: ModelConfig) -> dict[str, np.ndarray]:
    """The graph's initial state inputs for a run: zeros for rows without a state."""
    shape = (model.num_layers, len(rows), model.hidden_size)
    names = [contract.INITIAL_H] + ([contract.INITIAL_C] if model.cell is Cell.LSTM else [])
    out = {n: np.zeros(shape, np.float32) for n in names}
    for j, s in enumerate(rows):
        if s is not None:
            for n, v in s.initial().items():
                out[n][:, j] = v[:, 0]
    return out


def continued(
    prior: EncoderState | None,
    states: np.ndarray,
    h_n: np.ndarray,
    c_n: np.ndarray | None,
    model: ModelConfig,
    graph_sha256: str,
) -> EncoderState:
    """The state after ``prior`` (None: the start) and this row's per-token states [n, H]."""
    n = states.shape[0]
    total = states.sum(axis=0, dtype=np.float64)
    most = states.max(axis=0) if n else np.full(model.hidden_size, -np.inf, np.float32)
    if prior is not None:
        total = total + prior.token_sum
        most = np.maximum(most, prior.token_max)
    return EncoderState(
        graph_sha256=graph_sha256,
        cell=model.cell,
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        h=np.ascontiguousarray(h_n, dtype=np.float32),
        c=None if c_n is None else np.ascontiguousarray(c_n, dtype=np.float32),
        tokens=(prior.tokens if prior else 0) + n,
        token_sum=total,
        token_max=most.astype(np.float32),
    )


def state_maker(
    model: ModelConfig, graph_sha256: str
) -> Callable[[EncoderState | None, np.ndarray, dict[str, np.ndarray], int], EncoderState]:
    """Makes a row's state to continue from as its run is delivered (delivery.OnState), while
    its per-token states exist: from its prior, its states [n, H] and row ``j`` of the run's
    final states."""

    def make(
        prior: EncoderState | None, states: np.ndarray, out: dict[str, np.ndarray], j: int
    ) -> EncoderState:
        c_n = out.get(contract.FINAL_C)
        cell = None if c_n is None else c_n[:, j]
        return continued(prior, states, out[contract.FINAL_H][:, j], cell, model, graph_sha256)

    return make
