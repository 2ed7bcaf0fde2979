"""`make fuzz-tokenizer`: the fast tokenizer path against jieba.lcut on generated strings.

Draws from the same table as the hypothesis test (tools/unicode_mix.py), seeded, on every core;
prints the count, the rate and every mismatch found; exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import time


def check(args: tuple[int, int]) -> tuple[int, list]:
    """Generate ``n`` strings from ``seed``; the mismatches among them."""
    import jieba

    from tools import unicode_mix
    from zh_rnn_encoder.core.tokenizer import Tokenizer

    n, seed = args
    jieba.setLogLevel(logging.WARNING)
    fast, bad = Tokenizer(), []
    for text in unicode_mix.texts(n, seed):
        got, want = fast.tokenize(text), jieba.lcut(text)
        if got != want:
            bad.append({"text": text, "fast": got, "jieba": want})
    return n, bad


def main() -> int:
    ap = argparse.ArgumentParser(prog="make fuzz-tokenizer", description=__doc__)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    ap.add_argument("--chunk", type=int, default=20_000)
    a = ap.parse_args()
    chunks = [(min(a.chunk, a.count - i), a.seed * 1_000_003 + k) for k, i in
              enumerate(range(0, a.count, a.chunk))]  # fmt: skip
    t0, done, mismatches = time.perf_counter(), 0, []
    with multiprocessing.Pool(a.jobs) as pool:
        for n, bad in pool.imap_unordered(check, chunks):
            done += n
            mismatches += bad
            print(f"fuzz-tokenizer: {done:,} strings, {len(mismatches)} mismatches", flush=True)
    took = time.perf_counter() - t0
    for m in mismatches[:20]:
        print(json.dumps(m, ensure_ascii=False))
    print(
        f"fuzz-tokenizer: {done:,} generated strings tried, {len(mismatches)} differ from "
        f"jieba.lcut ({took:.0f} s, {done / took:,.0f} strings/s, {a.jobs} processes, "
        f"seed {a.seed})"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
