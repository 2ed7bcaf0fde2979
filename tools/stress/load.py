"""Load probes: gRPC and HTTP storms, big requests, unread streams; each bounds memory."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path

import numpy as np

from tools.stress.common import (
    LONG,
    SENTENCE,
    Result,
    Scale,
    Server,
    _encode,
    backoff,
    channel,
    http_post,
    raw_encode,
    reference_vector,
)
from zh_rnn_encoder.client import encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc


def probe_storm(bundle: Path, cache: Path, s: Scale, budget_mb: float) -> Result:
    """Many clients of long texts (MEAN pooling), retrying RESOURCE_EXHAUSTED as the client's
    retry policy does (exponential backoff, jittered):
    the refusal must come in milliseconds, admitted work keep near the unloaded rate (8 clients,
    no refusals: at least 0.8 of it), memory stay bounded."""
    srv = Server(bundle, cache)
    try:
        before = reference_vector(srv.target)
        req = encode_request(
            [LONG] * s.storm_texts, pooling="mean", truncation="keep_first"
        ).SerializeToString()

        async def run(clients: int, seconds: float) -> tuple[dict, float]:
            """Codes and latencies, and the seconds until the last answer: the requests still
            in flight when sending stops are waited for and counted, over their whole time."""
            codes: dict[str, list[float]] = {}
            start = time.perf_counter()
            stop = start + seconds
            async with channel(srv.target) as ch:
                stub = raw_encode(ch)

                async def client() -> None:
                    refused = 0
                    while time.perf_counter() < stop:
                        code, took = await _encode(stub, req)
                        codes.setdefault(code, []).append(took)
                        refused = refused + 1 if code == "RESOURCE_EXHAUSTED" else 0
                        if refused:  # the shipped retry policy: exponential backoff, jittered
                            await asyncio.sleep(random.uniform(0, backoff(refused)))

                await asyncio.gather(*(client() for _ in range(clients)))
            return codes, time.perf_counter() - start

        calm, calm_s = asyncio.run(run(8, s.storm_seconds / 2))  # 8: enough to saturate
        calm_rate = len(calm.get("OK", [])) * s.storm_texts / calm_s
        storm, storm_s = asyncio.run(run(s.storm_clients, s.storm_seconds))
        rate = len(storm.get("OK", [])) * s.storm_texts / storm_s
        shed = storm.get("RESOURCE_EXHAUSTED", [])
        after = reference_vector(srv.target)
        m = {
            "unloaded_texts_per_s": round(calm_rate),
            "storm_texts_per_s": round(rate),
            "throughput_ratio": round(rate / calm_rate, 3) if calm_rate else 0.0,
            "resource_exhausted": len(shed),
            "resource_exhausted_median_ms": round(statistics.median(shed) * 1e3, 2) if shed else 0,
            "deadline_exceeded": len(storm.get("DEADLINE_EXCEEDED", [])),
            "other_errors": sum(len(v) for k, v in storm.items() if k not in _EXPECTED),
            "codes": {k: len(v) for k, v in storm.items()},
            "rss_idle_mb": round(srv.idle_mb),
            "rss_peak_mb": round(srv.peak_mb()),
            "post_storm_vector_identical": bool(np.array_equal(before, after)),
        }
        return Result(
            "storm",
            m,
            {
                "shed fast": (m["resource_exhausted_median_ms"], "<=", 50.0),
                # 0.8, as for HTTP: over 12 runs on the 2-vCPU box it measured 0.82-0.97 while the
                # unloaded rate itself moved 456-638 texts/s; 0.9 sat inside that noise
                "throughput kept": (m["throughput_ratio"], ">=", 0.8),
                "memory": (m["rss_peak_mb"], "<=", srv.idle_mb + budget_mb),
                "no deadline hit": (m["deadline_exceeded"], "==", 0),
                "no other error": (m["other_errors"], "==", 0),
                "same vector after": (m["post_storm_vector_identical"], "==", True),
            },
        )
    finally:
        srv.stop()


_EXPECTED = {"OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}


def probe_http_storm(bundle: Path, cache: Path, s: Scale, budget_mb: float) -> Result:
    """The storm over the OpenAI-compatible HTTP API: 429 (with Retry-After) in milliseconds,
    clients backing off as the gRPC retry policy does, admitted work near the unloaded rate,
    memory bounded, nothing but 200 and 429."""
    import aiohttp

    srv = Server(bundle, cache, http=True)
    body = {"model": "encoder", "input": [LONG] * s.storm_texts, "pooling": "mean",
            "truncation": "keep_first", "encoding_format": "base64"}  # fmt: skip
    url = srv.http + "/v1/embeddings"
    try:
        before = reference_vector(srv.target)

        async def run(clients: int, seconds: float) -> tuple[dict, float]:
            codes: dict[str, list[float]] = {}
            start = time.perf_counter()
            stop = start + seconds
            limit = aiohttp.TCPConnector(limit=clients)
            async with aiohttp.ClientSession(connector=limit) as session:

                async def client() -> None:
                    refused = 0
                    while time.perf_counter() < stop:
                        code, took = await http_post(session, url, body)
                        codes.setdefault(code, []).append(took)
                        refused = refused + 1 if code == "429" else 0
                        if refused:
                            await asyncio.sleep(random.uniform(0, backoff(refused)))

                await asyncio.gather(*(client() for _ in range(clients)))
            return codes, time.perf_counter() - start

        calm, calm_s = asyncio.run(run(8, s.storm_seconds / 2))
        calm_rate = len(calm.get("200", [])) * s.storm_texts / calm_s
        storm, storm_s = asyncio.run(run(s.storm_clients, s.storm_seconds))
        rate = len(storm.get("200", [])) * s.storm_texts / storm_s
        shed = storm.get("429", [])
        m = {
            "unloaded_texts_per_s": round(calm_rate),
            "storm_texts_per_s": round(rate),
            "throughput_ratio": round(rate / calm_rate, 3) if calm_rate else 0.0,
            "status_429": len(shed),
            "status_429_median_ms": round(statistics.median(shed) * 1e3, 2) if shed else 0,
            "codes": {k: len(v) for k, v in storm.items()},
            "rss_idle_mb": round(srv.idle_mb),
            "rss_peak_mb": round(srv.peak_mb()),
            "post_storm_vector_identical": bool(
                np.array_equal(before, reference_vector(srv.target))
            ),
        }
        others = sum(len(v) for k, v in storm.items() if k not in ("200", "429"))
        return Result(
            "http storm",
            m,
            {
                "shed fast": (m["status_429_median_ms"], "<=", 50.0),
                "throughput kept": (m["throughput_ratio"], ">=", 0.8),
                "memory": (m["rss_peak_mb"], "<=", srv.idle_mb + budget_mb),
                "only 200 and 429": (others, "==", 0),
                "same vector after": (m["post_storm_vector_identical"], "==", True),
            },
        )
    finally:
        srv.stop()


def probe_big_requests(bundle: Path, cache: Path, s: Scale, budget_mb: float) -> Result:
    """Concurrent requests of the largest legal size (just under max_message_bytes: 256 texts
    of 5,000 characters, truncated); and one of 14.6 MB, over it."""
    srv = Server(bundle, cache)
    try:
        over = encode_request([(SENTENCE * 600)[:19_000]] * 256, truncation="keep_first")
        text = (SENTENCE * 300)[:5_000]
        req = encode_request([text] * 256, truncation="keep_first", max_tokens=64)
        size_mb = req.ByteSize() / (1 << 20)
        req = req.SerializeToString()

        async def go() -> list[tuple[str, float]]:
            async with channel(srv.target) as ch:
                stub = raw_encode(ch)
                return await asyncio.gather(
                    *(_encode(stub, req, timeout=120) for _ in range(s.big_requests))
                )

        out = asyncio.run(go())
        codes = [c for c, _ in out]

        async def too_big() -> tuple[str, float]:
            async with channel(srv.target) as ch:
                return await _encode(raw_encode(ch), over.SerializeToString())

        over_code, over_s = asyncio.run(too_big())
        time.sleep(3.0)  # one periodic trim
        m = {
            "request_mb": round(size_mb, 1),
            "requests": len(out),
            "served": codes.count("OK"),
            "resource_exhausted": codes.count("RESOURCE_EXHAUSTED"),
            "other_errors": sum(c not in ("OK", "RESOURCE_EXHAUSTED") for c in codes),
            "codes": {c: codes.count(c) for c in set(codes)},
            "rss_idle_mb": round(srv.idle_mb),
            "rss_peak_mb": round(srv.peak_mb()),
            "rss_after_mb": round(srv.rss_mb()),
            "over_limit_14.6_mb": over_code,
            "over_limit_ms": round(over_s * 1e3, 1),
        }
        return Result(
            "big requests",
            m,
            {
                "memory": (m["rss_peak_mb"], "<=", srv.idle_mb + budget_mb),
                "no other error": (m["other_errors"], "==", 0),
                "some served": (m["served"], ">=", 1),
            },
        )
    finally:
        srv.stop()


def probe_unread_streams(bundle: Path, cache: Path, s: Scale, budget_mb: float) -> Result:
    """Streams asking for token vectors of long texts whose responses are never read."""
    srv = Server(bundle, cache)
    try:
        req = encode_request([LONG] * 8, token_vectors=True, truncation="keep_first")

        async def go() -> None:
            async with channel(srv.target) as ch:
                stub = pb_grpc.EncoderStub(ch)
                calls = [stub.EncodeStream(iter([req] * 400)) for _ in range(s.unread_streams)]
                await asyncio.sleep(s.storm_seconds / 2)  # reads nothing meanwhile
                for c in calls:
                    c.cancel()

        asyncio.run(go())
        time.sleep(0.5)
        alive = reference_vector(srv.target).shape[0] > 0
        m = {
            "streams": s.unread_streams,
            "response_mb": round(8 * 512 * 256 * 4 / (1 << 20), 1),
            "rss_idle_mb": round(srv.idle_mb),
            "rss_peak_mb": round(srv.peak_mb()),
            "serves_afterwards": alive,
        }
        return Result(
            "unread streams",
            m,
            {
                "memory": (m["rss_peak_mb"], "<=", srv.idle_mb + budget_mb),
                "alive": (alive, "==", True),
            },
        )
    finally:
        srv.stop()
