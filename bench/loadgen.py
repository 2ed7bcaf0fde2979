"""A load generator process: N concurrent callers on loopback, bounded by count and time."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc

TEXTS = Path(__file__).parent / "texts_zh.txt"


def load_texts() -> list[str]:
    return [x for x in TEXTS.read_text(encoding="utf-8").splitlines() if x.strip()]


class Load:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        texts = load_texts()
        k, n = a.join, len(texts)  # each text k of the file's lines together (long texts)
        self.texts = ["".join(texts[(i + j) % n] for j in range(k)) for i in range(n)]
        self.latencies: list[float] = []
        self.n_texts = self.n_tokens = self.errors = 0
        self.sent = 0
        self.deadline = 0.0

    def next_request(self) -> pb.EncodeRequest | None:
        if self.sent >= self.a.max_requests or time.perf_counter() > self.deadline:
            return None
        k, n = self.sent * self.a.texts, len(self.texts)
        self.sent += 1
        return pb.EncodeRequest(texts=[self.texts[(k + i) % n] for i in range(self.a.texts)])

    def record(self, t0: float, r: object) -> None:
        self.latencies.append(time.perf_counter() - t0)
        if isinstance(r, pb.EncodeResponse):
            self.n_texts += len(r.encodings)
            self.n_tokens += sum(len(e.ids) for e in r.encodings)

    async def unary(self, ch: grpc.aio.Channel) -> None:
        if self.a.mode == "empty":
            call = health_pb2_grpc.HealthStub(ch).Check
            req = health_pb2.HealthCheckRequest()
            while self.next_request() is not None:
                t0 = time.perf_counter()
                self.record(t0, await call(req))
            return
        call = pb_grpc.EncoderStub(ch).Encode
        while (req := self.next_request()) is not None:
            t0 = time.perf_counter()
            try:
                self.record(t0, await call(req))
            except grpc.aio.AioRpcError:
                self.errors += 1

    async def stream(self, ch: grpc.aio.Channel) -> None:
        """One request in flight per stream, so latency is per request."""
        call = pb_grpc.EncoderStub(ch).EncodeStream()
        while (req := self.next_request()) is not None:
            t0 = time.perf_counter()
            await call.write(req)
            self.record(t0, await call.read())
        await call.done_writing()

    async def http(self, session: object) -> None:
        """POST /v1/embeddings (the OpenAI-compatible API) as the openai SDK sends it by default:
        base64 vectors, decoded here (--encoding float for JSON numbers)."""
        import aiohttp

        url = f"http://{self.a.target}/v1/embeddings"
        fmt = self.a.encoding
        while (req := self.next_request()) is not None:
            body = {"model": "encoder", "input": list(req.texts), "encoding_format": fmt}
            t0 = time.perf_counter()
            try:
                async with session.post(url, json=body) as r:
                    out = await r.json()
                    if r.status != 200:
                        self.errors += 1
                        continue
                if fmt == "base64":
                    for d in out["data"]:
                        np.frombuffer(base64.b64decode(d["embedding"]), "<f4")
                self.latencies.append(time.perf_counter() - t0)
                self.n_texts += len(out["data"])
                self.n_tokens += out["usage"]["total_tokens"]
            except aiohttp.ClientError:
                self.errors += 1

    async def run_http(self) -> None:
        import aiohttp

        limit = aiohttp.TCPConnector(limit=self.a.concurrency)
        async with aiohttp.ClientSession(connector=limit) as session:
            await asyncio.gather(*[self.http(session) for _ in range(self.a.concurrency)])

    async def run(self) -> dict:
        a = self.a
        if a.mode == "http":
            self.deadline = time.perf_counter() + a.seconds
            t0 = time.perf_counter()
            await self.run_http()
            return self.summary(time.perf_counter() - t0)
        # A local subchannel pool per channel: each is its own TCP connection, so that a server
        # with --workers (SO_REUSEPORT spreads connections, not requests) sees several.
        opts = [("grpc.use_local_subchannel_pool", 1)]
        chans = [grpc.aio.insecure_channel(a.target, options=opts) for _ in range(a.channels)]
        worker = self.stream if a.mode == "stream" else self.unary
        self.deadline = time.perf_counter() + a.seconds
        t0 = time.perf_counter()
        try:
            await asyncio.gather(*[worker(chans[i % a.channels]) for i in range(a.concurrency)])
        finally:
            wall = time.perf_counter() - t0
            for ch in chans:
                await ch.close()
        return self.summary(wall)

    def summary(self, wall: float) -> dict:
        return {
            "requests": len(self.latencies),
            "texts": self.n_texts,
            "tokens": self.n_tokens,
            "errors": self.errors,
            "seconds": wall,
            "latencies": self.latencies,
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--mode", choices=("unary", "stream", "empty", "http"), default="unary")
    ap.add_argument("--texts", type=int, default=1, help="texts per request")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--channels", type=int, default=1, help="connections the callers share")
    ap.add_argument("--encoding", choices=("base64", "float"), default="base64", help="http mode")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--max-requests", type=int, default=200_000)
    ap.add_argument("--join", type=int, default=1, help="lines of the text file per text")
    ap.add_argument("--warmup", type=int, default=20, help="requests sent before the measured run")
    a = ap.parse_args()
    if a.warmup:
        asyncio.run(Load(argparse.Namespace(**{**vars(a), "max_requests": a.warmup})).run())
    json.dump(asyncio.run(Load(a).run()), sys.stdout)


if __name__ == "__main__":
    main()
