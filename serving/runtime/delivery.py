"""Rows into a run and back out, written once for the synchronous face (SyncEncoder._run_sync) and
the batcher: a run's inputs from its rows, each row of the run's outputs handed to the request
it belongs to (``Rows.deliver``, the one copy-or-view rule), and the request's TextEncodings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numpy as np

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Pooling
from zh_rnn_encoder.runtime.padding import pad
from zh_rnn_encoder.runtime.pooling import NotFinite, pool_row
from zh_rnn_encoder.runtime.state import EncoderState
from zh_rnn_encoder.runtime.types import EncodeOptions, Reduce, Segment, TextEncoding

# (the row's prior state or None, its states [n, F], the run's outputs, its index in the run)
# -> what the request gets for that row beside its vector (the state to continue from)
OnState = Callable[[EncoderState | None, np.ndarray, dict[str, np.ndarray], int], EncoderState]
# the rows' prior states (None for a row without) -> the graph's initial state inputs for a run
Stack = Callable[[list[EncoderState | None]], dict[str, np.ndarray]]
Inputs = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray] | None]


class Rows:
    """One request's rows (int64 ids each) on their way through the graph, what it asks for
    each, and what it has got so far: ``states`` [n, F] per row (None unless ``keep_states``),
    ``vectors`` [F] per row (the final state, or what ``reduce`` made of the row: its pooled
    sentence vector), and with ``on_state`` each row's state to continue from (``continued``).
    ``priors`` gives each row's initial state (None: zeros)."""

    __slots__ = (
        "ids",
        "keep_states",
        "reduce",
        "priors",
        "on_state",
        "states",
        "vectors",
        "continued",
        "done",
    )

    def __init__(
        self,
        ids: list[np.ndarray],
        keep_states: bool = True,
        reduce: Reduce | None = None,
        priors: list[EncoderState | None] | None = None,
        on_state: OnState | None = None,
    ) -> None:
        n = len(ids)
        self.ids, self.keep_states, self.reduce = ids, keep_states, reduce
        self.priors, self.on_state = priors, on_state
        self.states: list[np.ndarray | None] = [None] * n
        self.vectors: list[np.ndarray | None] = [None] * n
        self.continued: list[EncoderState | None] | None = [None] * n if on_state else None
        self.done = 0  # rows delivered

    def deliver(self, i: int, out: dict[str, np.ndarray], j: int) -> None:
        """Row ``j`` of a run's outputs is this request's row ``i``.

        The copy-or-view rule: what the request keeps is copied out of the run, because it
        outlives the padded batch buffer (states [B, S, F]): its per-token states, when kept,
        and its final state. A view would pin the whole buffer (its padding and the other
        requests' rows too) until the response is built and sent, memory that the in-flight
        estimate (admission.py) does not count. What is consumed here reads views and keeps
        none of them: ``reduce`` (pooling, which returns a copy) and ``on_state`` (the running
        sum and maximum, and a copy of the final state).

        NotFinite naming ``texts[i]`` when the row's pooled vector holds a NaN or an infinity;
        the caller fails that request alone (Batcher._deliver) and nothing corrupt goes out.
        """
        n = len(self.ids[i])
        states, final = out[contract.STATES][j, :n], out[contract.FINAL][j]
        prior = self.priors[i] if self.priors else None
        if self.keep_states:
            self.states[i] = states.copy()
        try:
            self.vectors[i] = self.reduce(states, final, prior) if self.reduce else final.copy()
        except NotFinite:
            raise NotFinite(f"texts[{i}]") from None
        if self.on_state and self.continued is not None:
            self.continued[i] = self.on_state(prior, states, out, j)
        self.done += 1


def run_inputs(run: Sequence[tuple[Rows, int]], pad_id: int, stack: Stack | None) -> Inputs:
    """A run's (request, row) pairs -> ids int64 [B, S] padded, lengths int64 [B], and the
    graph's initial state inputs (None when no row of the run continues a state)."""
    ids, lengths = pad([rows.ids[i] for rows, i in run], pad_id)
    if stack is None or not any(rows.priors for rows, _ in run):
        return ids, lengths, None
    priors = [rows.priors[i] if rows.priors else None for rows, i in run]
    return ids, lengths, stack(priors) if any(p is not None for p in priors) else None


def encodings(
    segs: list[Segment],
    states: list[np.ndarray | None],
    vectors: list[np.ndarray | None],
    opt: EncodeOptions,
    priors: list[EncoderState | None] | None,
    continued: list[EncoderState | None] | None,
) -> list[TextEncoding]:
    """Each text's TextEncoding from its delivered row: ``vectors`` holds the pooled vector when
    opt.reducer() ran at delivery, else the final state, pooled here from the states kept."""
    delivered = cast("list[np.ndarray]", vectors)  # Rows.deliver set every one
    out = []
    for k, (s, st, v) in enumerate(zip(segs, states, delivered)):
        prior = priors[k] if priors else None
        if opt.token_vectors:
            # the row's states were kept (Rows.keep_states), and opt resolved before its run
            # (opt.reducer() refuses options that are not)
            mode, normalize = cast(Pooling, opt.pooling), cast(bool, opt.normalize)
            try:  # the token vectors go out too: each of them finite
                if not np.isfinite(cast(np.ndarray, st)).all():
                    raise NotFinite
                v = pool_row(cast(np.ndarray, st), v, prior, mode, normalize)
            except NotFinite:
                raise NotFinite(f"texts[{k}]") from None
        out.append(
            TextEncoding(
                s.tokens,
                s.ids,
                v,
                st if opt.token_vectors else None,
                len(s.ids) < s.original_count,
                s.original_count,
                continued[k] if continued else None,
            )
        )
    return out
