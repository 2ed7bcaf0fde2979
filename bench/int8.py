"""int8 against float, per cell and shape: graph time (as bench/run.py's graph_only measures it),
parity with the float graph, batch invariance and size; for the bench's models and a bundle.

    .venv/bin/python -m bench.int8 [--bundle bundles/default] [--seconds 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import onnx

from bench.run import timeit
from zh_rnn_encoder.core.manifest import ModelConfig, TokenizerConfig
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.export import onnx_export
from zh_rnn_encoder.export.cli import DEFAULT_CORPUS
from zh_rnn_encoder.export.model import init_model
from zh_rnn_encoder.export.quantize import Scheme, quantize
from zh_rnn_encoder.runtime.session import Session

SHAPES = ((1, 20), (32, 50))


def log(msg: str) -> None:
    print(f"int8: {msg}", file=sys.stderr, flush=True)


def bench_graph(cell: str) -> onnx.ModelProto:
    """The bench's model of ``cell``: default corpus vocabulary, seed 0 (bench/run.py)."""
    tok = Tokenizer(TokenizerConfig())
    lines = DEFAULT_CORPUS.read_text(encoding="utf-8").splitlines()
    vocab = Vocab.build(tok.tokenize(x) for x in lines)
    model = init_model(ModelConfig(vocab_size=len(vocab), cell=cell), 0)
    return onnx_export.build_graph(model, "0" * 64)


def _batch(rng: np.random.Generator, vocab: int, b: int, s: int) -> tuple:
    ids = rng.integers(0, vocab, (b, s))
    lengths = rng.integers(max(1, s // 2), s + 1, b)
    lengths[0] = s
    return ids, lengths


def _err(a: tuple, b: tuple) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def compare(name: str, graph: onnx.ModelProto, vocab: int, seconds: float) -> list[dict]:
    rows = []
    fs = Session(graph.SerializeToString())
    for scheme in Scheme:
        q = quantize(graph, scheme)
        qs = Session(q.SerializeToString())
        rng = np.random.default_rng(0)
        for b, s in SHAPES:
            ids, lengths = _batch(rng, vocab, b, s)
            t_f = timeit(partial(fs.run, ids, lengths), seconds)
            t_q = timeit(partial(qs.run, ids, lengths), seconds)
            parity = _err(fs.run(ids, lengths), qs.run(ids, lengths))
            alone = qs.run(ids[:1, : lengths[0]], lengths[:1])
            batched = qs.run(ids, lengths)
            inv = _err((alone[0][0], alone[1][0]), (batched[0][0, : lengths[0]], batched[1][0]))
            row = {
                "model": name,
                "scheme": str(scheme),
                "shape": f"{b}x{s}",
                "float_ms": t_f * 1e3,
                "int8_ms": t_q * 1e3,
                "speedup": t_f / t_q,
                "parity": parity,
                "invariance": inv,
                "float_mb": graph.ByteSize() / 1e6,
                "int8_mb": q.ByteSize() / 1e6,
            }
            rows.append(row)
            log(
                f"{name} {scheme} {b}x{s}: float {t_f * 1e3:.3f} ms, int8 {t_q * 1e3:.3f} ms "
                f"(x{t_f / t_q:.2f}), parity {parity:.2e}, invariance {inv:.2e}, "
                f"{row['float_mb']:.1f} -> {row['int8_mb']:.1f} MB"
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench.int8")
    ap.add_argument("--bundle", type=Path, help="also a bundle's graph (e.g. bundles/default)")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--cells", default="rnn,lstm,gru")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    rows = []
    for cell in a.cells.split(","):
        g = bench_graph(cell)
        vocab = int({p.key: p.value for p in g.metadata_props}["vocab_size"])
        rows += compare(cell, g, vocab, a.seconds)
    if a.bundle:
        g = onnx.load(a.bundle / "model.onnx")
        vocab = int({p.key: p.value for p in g.metadata_props}["vocab_size"])
        rows += compare(str(a.bundle), g, vocab, a.seconds)
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
