"""Document streaming (EncodeDocument): tokens/s and the server's peak RSS by document size.

Each size streams one document, generated lazily from the corpus (so the client holds one piece
at a time), over gRPC to a fresh server, and reads that server's peak RSS (VmHWM) after it. The
baseline, in the same run: ordinary batched encoding, 32 corpus lines per in-process call.
`python -m bench.document [--sizes 1000 10000 ...]`; `make bench` runs it (without 100M in
--quick).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator

from bench import run as bench
from zh_rnn_encoder import Encoder
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.export.cli import DEFAULT_CORPUS

PIECE_CHARS = 16_000
SIZES = (1_000, 10_000, 1_000_000, 100_000_000)


def document(chars: int, seed: int = 0) -> Iterator[str]:
    """``chars`` characters of corpus lines in random order, as pieces of PIECE_CHARS."""
    lines = [x for x in DEFAULT_CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]
    rng, buf, left = random.Random(seed), [], chars
    size = 0
    while left > 0:
        line = rng.choice(lines)[:left]
        buf.append(line)
        size += len(line)
        left -= len(line)
        if size >= PIECE_CHARS or left == 0:
            text = "".join(buf)
            for at in range(0, len(text), PIECE_CHARS):
                yield text[at : at + PIECE_CHARS]
            buf, size = [], 0


def batched_baseline(bundle: object, seconds: float) -> float:
    """Tokens/s of Encoder.encode on 32 corpus lines per call, in process."""
    enc = Encoder.from_bundle(bundle, jieba_cache_dir=bench.CACHE)
    lines = [x for x in DEFAULT_CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]
    batch = lines[:32]
    tokens = sum(len(e.ids) for e in enc.encode(batch))
    return tokens / bench.timeit(lambda: enc.encode(batch, pooling="mean"), seconds)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python -m bench.document", description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--seconds", type=float, default=3.0, help="for the batched baseline")
    a = ap.parse_args(argv)
    bench.OUT.mkdir(parents=True, exist_ok=True)
    bundle, _ = bench.build_model("rnn", bench.Tokenizer(cache_dir=bench.CACHE))
    base = batched_baseline(bundle, a.seconds)
    bench.log(f"document: ordinary batched encoding {base:.0f} tokens/s in process")
    rows = []
    cmd = [sys.executable, "-m", "zh_rnn_encoder.transport.app", "--bundle", str(bundle)]
    for chars in a.sizes:
        srv = bench.Server(f"document-{chars}", cmd, bench.available_cpus())
        try:
            with EncoderClient(srv.target, timeout=None) as c:
                t0 = time.perf_counter()
                r = c.encode_document(document(chars), pooling="mean")
                took = time.perf_counter() - t0
            row = {
                "chars": chars,
                "tokens": r.token_count,
                "seconds": round(took, 2),
                "tokens_per_s": r.token_count / took,
                "vs_batched": r.token_count / took / base,
                "rss_idle_mb": srv.rss_idle_mb,
                "rss_peak_mb": srv.rss_mb("VmHWM"),
            }
        finally:
            srv.stop()
        rows.append(row)
        bench.log(f"document {chars:>11,} chars: {json.dumps(row)}")
    print("| characters | tokens | seconds | tokens/s | vs batched | RSS idle MB | RSS peak MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['chars']:,} | {r['tokens']:,} | {r['seconds']} | {r['tokens_per_s']:.0f} | "
            f"{r['vs_batched']:.2f} | {r['rss_idle_mb']:.1f} | {r['rss_peak_mb']:.1f} |"
        )
    return rows


if __name__ == "__main__":
    main()
