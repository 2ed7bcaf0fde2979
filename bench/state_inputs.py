"""`python -m bench.state_inputs`: the graph with and without its initial-state inputs (issue 19,
item 2), per cell and shape, in one run on this CPU with the server's threads.

Since the state inputs arrived, h0 (and c0) are initializers that are also graph inputs, so that
a caller may feed its own; onnxruntime warns at load that it will not treat them as constants
and that this "may prevent some of the graph optimizations". ``with`` is the bundle's graph as
served; ``without`` is the same graph with h0/c0 taken out of the graph's inputs, so that they are
plain constant initializers (what a stateless second session would run). Both run the same
padded batches, interleaved in rounds, so that drift on the machine hits both alike; the figure
is each one's median over the rounds; the ratio is the median of the rounds' paired ratios, with
their interquartile range as the noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx

from bench import run as bench
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.runtime.cpus import available_cpus
from zh_rnn_encoder.runtime.session import Session

SHAPES = ((1, 20), (32, 50), (8, 512))


def without_state_inputs(graph: Path) -> bytes:
    """The graph with its initial-state inputs made constants (their zero initializers stay)."""
    m = onnx.load(str(graph))
    keep = [i for i in m.graph.input if i.name not in (contract.INITIAL_H, contract.INITIAL_C)]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    return m.SerializeToString()


def per_call(session: Session, ids: np.ndarray, lengths: np.ndarray, seconds: float) -> float:
    """Seconds per run_state call (the Encoder's call), mean over ``seconds`` of calls."""
    return bench.timeit(lambda: session.run_state(ids, lengths, None), seconds, 3)


def measure(bundle: Path, threads: int, rounds: int, seconds: float, seed: int = 0) -> list[dict]:
    graph = bundle / contract.GRAPH_FILE
    sessions = {
        "with": Session(graph, threads=threads),
        "without": Session(without_state_inputs(graph), threads=threads),
    }
    assert sessions["without"].state_names == ()
    vocab = int(sessions["with"].ort.get_modelmeta().custom_metadata_map[contract.META_VOCAB_SIZE])
    rng, rows = np.random.default_rng(seed), []
    for b, s in SHAPES:
        ids = rng.integers(2, vocab, (b, s))
        lengths = rng.integers(max(1, s // 2), s + 1, b)
        lengths[0] = s
        a, z = (sessions[k].run_state(ids, lengths) for k in ("with", "without"))
        diff = max(float(np.abs(a[k] - z[k]).max()) for k in a)
        times: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(rounds):
            for k, sess in sessions.items():
                times[k].append(per_call(sess, ids, lengths, seconds))
        med = {k: statistics.median(v) for k, v in times.items()}
        paired = sorted(w / z for w, z in zip(times["with"], times["without"]))
        q = len(paired) // 4
        rows.append(
            {
                "shape": f"{b}x{s}",
                "with_ms": med["with"] * 1e3,
                "without_ms": med["without"] * 1e3,
                "ratio": statistics.median(paired),
                "ratio_iqr": (paired[q], paired[-1 - q]),
                "max_abs_diff": diff,
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.state_inputs", description=__doc__)
    ap.add_argument("--cells", nargs="*", default=["rnn", "lstm", "gru"])
    ap.add_argument("--bundle", type=Path, action="append", default=[], help="also this bundle")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=0.15, help="per round, per graph")
    ap.add_argument("--threads", type=int, default=0, help="0: the server's default")
    ap.add_argument("--out", type=Path, default=bench.ROOT / "bench" / "results" / "state-inputs")
    a = ap.parse_args()
    bench.set_out(a.out)
    threads = a.threads or available_cpus()
    tok = bench.Tokenizer(cache_dir=bench.CACHE)
    bundles = [(c, bench.build_model(c, tok)[0]) for c in a.cells]
    bundles += [(str(p), p) for p in a.bundle]
    print(f"{threads} intra-op threads, {a.rounds} rounds of {a.seconds}s per graph")
    print("| model | shape | with state inputs ms | without ms | with/without | IQR | diff |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    t0 = time.perf_counter()
    for name, path in bundles:
        for r in measure(path, threads, a.rounds, a.seconds):
            print(
                f"| {name} | {r['shape']} | {r['with_ms']:.3f} | {r['without_ms']:.3f} "
                f"| {r['ratio']:.3f} | {r['ratio_iqr'][0]:.2f}–{r['ratio_iqr'][1]:.2f} "
                f"| {r['max_abs_diff']:.1e} |",
                flush=True,
            )
    print(f"({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
