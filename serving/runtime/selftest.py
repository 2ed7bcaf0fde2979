"""Start-up self-test: the bundle's golden samples through this process's tokenizer and session."""

from __future__ import annotations

import numpy as np

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import Bundle
from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.runtime.session import Session


def run_golden(bundle: Bundle, tokenizer: Tokenizer, session: Session) -> float:
    """Checks ids, then outputs alone and in one padded batch; returns the max abs error."""
    g, problems, worst = bundle.golden, [], 0.0
    for i, text in enumerate(g.texts):
        ids = bundle.vocab.encode(tokenizer.tokenize(text))
        if not np.array_equal(ids, g.ids[i, : g.lengths[i]]):
            problems.append(
                f"{contract.GOLDEN_TEXTS_FILE}: sample {i} segments to other ids here "
                "than at export (tokenizer or vocabulary differ)"
            )
    runs = [session.run(g.ids, g.lengths)]
    runs += [
        session.run(g.ids[i : i + 1, :n], g.lengths[i : i + 1]) for i, n in enumerate(g.lengths)
    ]
    for k, (states, final) in enumerate(runs):
        rows = range(len(g.texts)) if k == 0 else [k - 1]
        for j, i in enumerate(rows):
            n = g.lengths[i]
            err = max(
                float(np.abs(states[j, :n] - g.states[i, :n]).max()),
                float(np.abs(final[j] - g.final[i]).max()),
            )
            worst = max(worst, err)
            if not err <= g.atol:  # also catches NaN
                how = "in the padded batch" if k == 0 else "alone"
                problems.append(
                    f"{contract.GOLDEN_ARRAYS_FILE}: sample {i} {how} differs from "
                    f"eager PyTorch by {err:.3g} > atol {g.atol:g}"
                )
    if problems:
        raise BundleError(bundle.path, problems)
    return worst
