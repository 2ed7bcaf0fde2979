"""A load generator for the Open Inference Protocol, with stock tritonclient's asyncio client.

Runs under .venv/stock-clients (tritonclient pins protobuf < 7), so it imports nothing of ours;
its arguments and its JSON output are bench.loadgen's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as tc

TEXTS = Path(__file__).parent / "texts_zh.txt"


async def run(a: argparse.Namespace, max_requests: int) -> dict:
    texts = [x for x in TEXTS.read_text(encoding="utf-8").splitlines() if x.strip()]
    client = tc.InferenceServerClient(a.target)
    outputs = [tc.InferRequestedOutput("sentence_vector"), tc.InferRequestedOutput("token_lengths")]
    latencies: list[float] = []
    counts = {"sent": 0, "texts": 0, "tokens": 0, "errors": 0}
    deadline = time.perf_counter() + a.seconds

    async def caller() -> None:
        while counts["sent"] < max_requests and time.perf_counter() < deadline:
            k = counts["sent"] * a.texts
            counts["sent"] += 1
            batch = [texts[(k + i) % len(texts)] for i in range(a.texts)]
            x = tc.InferInput("TEXT", [len(batch)], "BYTES")
            x.set_data_from_numpy(np.array(batch, dtype=object))
            t0 = time.perf_counter()
            try:
                r = await client.infer(a.model, [x], outputs=outputs)
            except tc.InferenceServerException:
                counts["errors"] += 1
                continue
            latencies.append(time.perf_counter() - t0)
            counts["texts"] += len(batch)
            counts["tokens"] += int(r.as_numpy("token_lengths").sum())

    t0 = time.perf_counter()
    await asyncio.gather(*[caller() for _ in range(a.concurrency)])
    wall = time.perf_counter() - t0
    await client.close()
    return {
        "requests": len(latencies),
        "texts": counts["texts"],
        "tokens": counts["tokens"],
        "errors": counts["errors"],
        "seconds": wall,
        "latencies": latencies,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--model", default="encoder")
    ap.add_argument("--texts", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--max-requests", type=int, default=200_000)
    a = ap.parse_args()
    asyncio.run(run(a, 20))  # warm
    json.dump(asyncio.run(run(a, a.max_requests)), sys.stdout)


if __name__ == "__main__":
    main()
