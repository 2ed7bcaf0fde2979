"""Hygiene probes: what clients can cause leaves no ERROR in the log, and fuzzed wire input
never an INTERNAL or a 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from pathlib import Path

import grpc
import numpy as np

from tools.stress.common import (
    LONG,
    SENTENCE,
    Result,
    Scale,
    Server,
    _encode,
    channel,
    infer_request,
    reference_vector,
)
from zh_rnn_encoder.client import encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip_pb


def probe_log_hygiene(bundle: Path, cache: Path, s: Scale) -> Result:
    """Normal client behaviour (a cancelled blocked stream, a too-large request or response)
    leaves no ERROR line or traceback in the server log."""
    srv = Server(bundle, cache, "--max-message-bytes", str(1 << 20))
    try:

        async def go() -> None:
            async with channel(srv.target) as ch:
                stub = pb_grpc.EncoderStub(ch)
                req = encode_request([LONG] * 2, token_vectors=True, truncation="keep_first")
                call = stub.EncodeStream(iter([req] * 50))
                await asyncio.sleep(1.0)  # writes block: nothing reads
                call.cancel()
                await _encode(stub, encode_request(["好" * 1000] * 300))  # request too large
                await stub.Tokenize(pb.TokenizeRequest(texts=["好"] * 8), timeout=10)
                tok = pb.TokenizeRequest(texts=[LONG[:19_000]] * 40)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.Tokenize(tok, timeout=30)  # a response over the limit

        asyncio.run(go())
        time.sleep(0.5)
        log = srv.proc.log
        m = {
            "error_lines": sum(" ERROR " in x for x in log.splitlines()),
            "tracebacks": log.count("Traceback"),
        }
        return Result("log hygiene", m, {"no ERROR": (m["error_lines"], "==", 0),
                                          "no traceback": (m["tracebacks"], "==", 0)})  # fmt: skip
    finally:
        srv.stop()


def probe_wire_fuzz(bundle: Path, cache: Path, s: Scale) -> Result:
    """Mutated and random request bytes to every gRPC method of both services, and mutated JSON
    to /v1/embeddings: never INTERNAL (or HTTP 5xx), still correct after."""
    srv = Server(bundle, cache, http=True)
    rng = random.Random(0)
    encoder_seeds = [
        encode_request(
            ["北京冬奥", "你好"], pooling="mean", token_vectors=True
        ).SerializeToString(),
        encode_request([SENTENCE], truncation="keep_last", max_tokens=3).SerializeToString(),
        pb.TokenizeRequest(texts=["a\x00b", "😀"]).SerializeToString(),
        b"",
    ]
    infer = infer_request(["北京冬奥", "你好"], pooling="mean")
    infer_seeds = [
        infer.SerializeToString(),
        oip_pb.ModelMetadataRequest(name="encoder").SerializeToString(),
        b"",
    ]
    methods = {f"/encoder.v1.Encoder/{m}": encoder_seeds for m in
               ("Encode", "Tokenize", "GetModelInfo")}  # fmt: skip
    methods |= {f"/inference.GRPCInferenceService/{m}": infer_seeds for m in
                ("ModelInfer", "ModelMetadata", "ModelReady", "ServerReady")}  # fmt: skip
    json_seed = json.dumps(
        {"model": "encoder", "input": ["北京冬奥", "你好"], "encoding_format": "base64",
         "pooling": "max", "dimensions": 24}, ensure_ascii=False
    ).encode()  # fmt: skip

    def mutate(seed: bytes) -> bytes:
        data = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            if op < 0.4 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op < 0.7:
                data.insert(rng.randint(0, len(data)), rng.randrange(256))
            elif data:
                del data[rng.randrange(len(data))]
        return bytes(data) if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 64))

    counts: dict[str, int] = {}
    http_counts: dict[str, int] = {}
    try:
        before = reference_vector(srv.target)

        async def go() -> None:
            import aiohttp

            async with channel(srv.target) as ch, aiohttp.ClientSession() as session:
                calls = {m: ch.unary_unary(m) for m in methods}
                url = srv.http + "/v1/embeddings"

                async def worker(n: int) -> None:
                    for _ in range(n):
                        method = rng.choice(list(methods))
                        try:
                            await calls[method](mutate(rng.choice(methods[method])), timeout=10)
                            code = "OK"
                        except grpc.aio.AioRpcError as e:
                            code = e.code().name
                        counts[code] = counts.get(code, 0) + 1

                async def http_worker(n: int) -> None:
                    for _ in range(n):
                        async with session.post(url, data=mutate(json_seed)) as r:
                            await r.read()
                            http_counts[str(r.status)] = http_counts.get(str(r.status), 0) + 1

                await asyncio.gather(
                    *(worker(s.fuzz_cases // 32) for _ in range(32)),
                    *(http_worker(s.fuzz_cases // 64) for _ in range(8)),
                )

        asyncio.run(go())
        same = bool(np.array_equal(before, reference_vector(srv.target)))
        m = {
            "cases": sum(counts.values()),
            "codes": counts,
            "http_cases": sum(http_counts.values()),
            "http_statuses": http_counts,
            "same_vector_after": same,
        }
        http_5xx = sum(n for k, n in http_counts.items() if k.startswith("5"))
        return Result(
            "wire fuzz",
            m,
            {
                "no INTERNAL": (counts.get("INTERNAL", 0) + counts.get("UNKNOWN", 0), "==", 0),
                "no HTTP 5xx": (http_5xx, "==", 0),
                "same vector after": (same, "==", True),
            },
        )
    finally:
        srv.stop()
