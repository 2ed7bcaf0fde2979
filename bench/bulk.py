"""`make bench-bulk`: encoder-bulk with 1 and 2 actors against the in-process Encoder, same run.

Texts/s exclude Ray's start-up, reported on its own; the in-process baseline is one process
calling Encoder.encode in batches of the same size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import run as bench
from bench.loadgen import load_texts
from zh_rnn_encoder import Encoder


def main() -> int:
    ap = argparse.ArgumentParser(prog="make bench-bulk", description=__doc__)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=256)
    a = ap.parse_args()
    bench.OUT.mkdir(parents=True, exist_ok=True)
    bundle, _ = bench.build_model("rnn", bench.Tokenizer(cache_dir=bench.CACHE))
    texts = load_texts()
    work = bench.OUT / "bulk"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    inp = work / "in.jsonl"
    with inp.open("w", encoding="utf-8") as f:
        for i in range(a.rows):
            f.write(json.dumps({"id": i, "text": texts[i % len(texts)]}, ensure_ascii=False) + "\n")
    enc = Encoder.from_bundle(bundle, threads=1, jieba_cache_dir=bench.CACHE)
    rows = [texts[i % len(texts)] for i in range(a.rows)]
    t0 = time.perf_counter()
    for i in range(0, len(rows), a.batch_size):
        enc.encode(rows[i : i + a.batch_size])
    base = a.rows / (time.perf_counter() - t0)
    out = [("in-process Encoder, 1 process, 1 thread", base, None)]
    for actors in (1, 2):
        cmd = [str(Path(sys.executable).parent / "encoder-bulk"), "--bundle", str(bundle),
               "--input", str(inp), "--output", str(work / f"out-{actors}"),
               "--actors", str(actors), "--batch-size", str(a.batch_size)]  # fmt: skip
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        out.append((f"encoder-bulk, {actors} actor(s)", r["texts_per_s"], r["ray_start_s"]))
        bench.log(f"bulk {actors} actors: {r}")
    print(f"{a.rows} rows of bench/texts_zh.txt, batches of {a.batch_size}:\n")
    print("| run | texts/s | vs in-process | Ray start s |")
    print("| --- | ---: | ---: | ---: |")
    for name, tps, start in out:
        print(f"| {name} | {tps:.0f} | {tps / base:.2f} | {'' if start is None else start} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
