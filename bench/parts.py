"""`Encoder.encode` against the sum of its parts (issue 19, item 3), in process, same run.

The parts are the work itself: the tokenizer alone (segmentation and the vocabulary lookup, ids
per text) and the graph alone (``Session.run_state``, as the Encoder calls it) on the very padded
runs the Encoder builds for the same texts (``plan_runs`` within max_batch_tokens, then ``pad``).
The ratio is parts / whole: 1.0 means encode costs nothing beyond its work. Whole and parts are
timed in interleaved rounds, so that drift on the machine hits them alike; each is the median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from zh_rnn_encoder.runtime.encoder import Encoder
from zh_rnn_encoder.runtime.padding import pad, plan_runs


def _tokenize(enc: Encoder, texts: list[str]) -> list[np.ndarray]:
    tokenize, encode = enc.tokenizer.tokenize, enc.bundle.vocab.encode
    return [encode(tokenize(t)) for t in texts]


def _graph(enc: Encoder, runs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for ids, lengths in runs:
        enc.session.run_state(ids, lengths, None)


def _per_pass(f: Callable[[], object], seconds: float) -> float:
    f()
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        f()
        n += 1
    return (time.perf_counter() - t0) / n


def encode_vs_parts(
    enc: Encoder, texts: list[str], batch: int, seconds: float, rounds: int = 3
) -> dict:
    """Seconds per pass over ``texts`` in calls of ``batch`` texts: encode, tokenize and graph,
    and ``ratio`` = (tokenize + graph) / encode."""
    chunks = [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    pad_id, budget = enc.bundle.vocab.pad_id, enc.config.max_batch_tokens
    runs = []
    for chunk in chunks:
        rows = _tokenize(enc, chunk)
        runs += [pad([rows[i] for i in r], pad_id) for r in plan_runs(list(map(len, rows)), budget)]
    work = {
        "encode_s": lambda: [enc.encode(c) for c in chunks],
        "tokenize_s": lambda: [_tokenize(enc, c) for c in chunks],
        "graph_s": partial(_graph, enc, runs),
    }
    times: dict[str, list[float]] = {k: [] for k in work}
    for _ in range(rounds):
        for k, f in work.items():
            times[k].append(_per_pass(f, seconds / rounds))
    out = {k: statistics.median(v) for k, v in times.items()}
    return {
        "texts_per_call": batch,
        **out,
        "ratio": (out["tokenize_s"] + out["graph_s"]) / out["encode_s"],
    }
