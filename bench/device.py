"""`python -m bench.device`: the in-process Encoder on CPU vs CUDA, same bundle, same texts.

Texts per second for batches of 1, 32 and 512 texts (tokenization included, as a user calls it),
and the largest difference between the two devices' vectors. Needs onnxruntime's CUDA provider.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench import run as bench
from bench.loadgen import load_texts
from zh_rnn_encoder.runtime.cpus import available_cpus
from zh_rnn_encoder.runtime.encoder import Encoder


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.device", description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument(
        "--cells",
        nargs="*",
        default=["rnn", "rnn:native", "lstm"],
        help="cells, or CELL:FORMULATION (rnn:native, the RNN op that runs on cuDNN)",
    )
    a = ap.parse_args()
    texts = load_texts()
    tok = bench.Tokenizer(cache_dir=bench.CACHE)
    cpus = available_cpus()
    print(f"| cell | texts/call | CPU ({cpus} threads) texts/s | CUDA texts/s | CUDA/CPU |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for cell in a.cells:
        bundle, _ = bench.build_model(cell, tok)
        enc = {
            d: Encoder.from_bundle(bundle, d, jieba_cache_dir=bench.CACHE) for d in ("cpu", "cuda")
        }
        diff = max(
            np.abs(g.vector - c.vector).max()
            for g, c in zip(enc["cuda"].encode(texts), enc["cpu"].encode(texts), strict=True)
        )
        for n in (1, 32, 512):
            batch = (texts * (n // len(texts) + 1))[:n]
            tps = {
                d: n / bench.timeit(lambda e=e, b=batch: e.encode(b), a.seconds)
                for d, e in enc.items()
            }
            print(
                f"| {cell} | {n} | {tps['cpu']:.0f} | {tps['cuda']:.0f} | "
                f"{tps['cuda'] / tps['cpu']:.2f} |"
            )
        print(f"{cell}: CUDA vs CPU max abs difference over {len(texts)} texts: {diff:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
