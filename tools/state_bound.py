"""How large can a bundle's states grow? A tanh or gated cell's state is bounded by its
activation; a relu RNN's is bounded only by what its weights do, so a trained relu bundle is
probed here before it is served (`make model` runs this on the default; other cells pass at
once):

1. every word of the vocabulary repeated ``--repeat`` times (one row each), the largest state
   component each reaches;
2. the ``--top`` words that reached the largest, repeated ``--long`` times: a state still growing
   there (more than 1 % above step ``--repeat``'s) is a failure;
3. ``--texts`` random texts of ``--text-tokens`` words;
4. for a one-layer unidirectional RNN (the Scan formulation), a greedy search: ``--greedy`` times
   over, the word that makes the next state largest, the recurrence recomputed in numpy from the
   graph's own tables (checked against onnxruntime first).

Exit 1 if a state is not finite or still grows; the figures go to stdout. Build-side: reads the
graph with onnx (the export extra) for step 4.

    python -m tools.state_bound --bundle bundles/default
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.enums import Cell, Nonlinearity

RUN_TOKENS = 25_600  # tokens per run (256 rows of 100): the states it returns stay ~26 MB


def _session(bundle: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3  # the state-input warning is known (serving/runtime/session.py)
    return ort.InferenceSession(
        str(bundle / contract.GRAPH_FILE), so, providers=["CPUExecutionProvider"]
    )


def _largest(s: ort.InferenceSession, ids: np.ndarray) -> np.ndarray:
    """Rows of ids [B, S] -> the largest |state component| each reaches, over all steps."""
    out, rows = [], max(1, RUN_TOKENS // ids.shape[1])
    for i in range(0, len(ids), rows):
        run = ids[i : i + rows]
        lengths = np.full(len(run), run.shape[1], dtype=np.int64)
        states = s.run([contract.STATES], {contract.IDS.name: run, contract.LENGTHS.name: lengths})
        out.append(np.abs(states[0]).max(axis=(1, 2)))
    return np.concatenate(out)


def _greedy(bundle: Path, s: ort.InferenceSession, steps: int) -> float | None:
    """The greedy search on a one-layer relu Scan graph; None where the graph is not one."""
    import onnx
    from onnx import numpy_helper

    weights = {
        i.name: numpy_helper.to_array(i)
        for i in onnx.load(str(bundle / contract.GRAPH_FILE)).graph.initializer
    }
    table, r_t = weights.get("l0_table"), weights.get("l0_R_t")
    if table is None or r_t is None:
        return None
    table, r_t = table.astype(np.float64), r_t.astype(np.float64)
    probe = np.array([[5, 9, 2, 2, 7, 3]], dtype=np.int64) % len(table)
    got = s.run([contract.STATES], {contract.IDS.name: probe, contract.LENGTHS.name: [6]})[0][0]
    h, mine = np.zeros(r_t.shape[0]), []
    for w in probe[0]:
        h = np.maximum(h @ r_t + table[w], 0)
        mine.append(h)
    if np.abs(np.array(mine) - got).max() > 1e-4:  # not relu(h R_t + table[w]): not ours to read
        return None
    # float32 as the graph runs, into one buffer: no page faults for a fresh 67k x 256 each step
    table, r_t = table[2:].astype(np.float32), r_t.astype(np.float32)  # no <pad>, no <unk>
    h, most = np.zeros(r_t.shape[0], dtype=np.float32), 0.0
    cand = np.empty_like(table)
    for _ in range(steps):
        np.add(table, h @ r_t, out=cand)
        np.maximum(cand, 0, out=cand)
        h = cand[np.argmax(np.einsum("ij,ij->i", cand, cand))].copy()
        most = max(most, float(np.abs(h).max()))
    return most


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="state_bound", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--top", type=int, default=200)
    ap.add_argument("--long", type=int, default=4000)
    ap.add_argument("--texts", type=int, default=32)
    ap.add_argument("--text-tokens", type=int, default=10000)
    ap.add_argument("--greedy", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    model = load_bundle(a.bundle).manifest.model
    if model.cell is not Cell.RNN or model.nonlinearity is not Nonlinearity.RELU:
        bounded = "states are bounded by the cell's activation (|h| <= 1)"
        print(f"{a.bundle}: {model.cell.value} {bounded}")
        return 0
    s = _session(a.bundle)
    t0 = time.perf_counter()
    words = np.arange(2, model.vocab_size, dtype=np.int64)  # after <pad> and <unk>
    short = _largest(s, np.repeat(words[:, None], a.repeat, axis=1))
    top = words[np.argsort(-short)[: a.top]]
    long = _largest(s, np.repeat(top[:, None], a.long, axis=1))
    rng = np.random.default_rng(a.seed)
    texts = _largest(s, rng.integers(2, model.vocab_size, (a.texts, a.text_tokens)))
    one_layer = model.num_layers == 1 and model.directions == 1
    greedy = _greedy(a.bundle, s, a.greedy) if one_layer and a.greedy else None
    worst = int(top[0])
    print(f"{a.bundle}: {model.cell.value} {model.nonlinearity.value}, largest |state component|")
    print(f"  each of {len(words)} words x{a.repeat}: {short.max():.2f} (word id {worst})")
    print(f"  the {len(top)} largest of those x{a.long}: {long.max():.2f}")
    print(f"  {a.texts} random texts x{a.text_tokens}: {texts.max():.2f}")
    print(f"  greedy, {a.greedy} steps: " + ("n/a" if greedy is None else f"{greedy:.2f}"))
    print(f"  ({time.perf_counter() - t0:.0f} s)")
    figures = [short.max(), long.max(), texts.max(), greedy or 0.0]
    if not np.isfinite(figures).all():
        print("state_bound: a state is not finite", file=sys.stderr)
        return 1
    grows = long > 1.01 * short[np.argsort(-short)[: a.top]] + 1e-6
    if grows.any():
        print(f"state_bound: {int(grows.sum())} words' states still grow after {a.repeat} "
              f"repeats (word id {int(top[np.argmax(grows)])})", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
