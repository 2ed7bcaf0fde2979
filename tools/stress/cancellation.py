"""Cancellation probe: clients that cancel their streams and drop their HTTP requests leave no
ERROR in the log and a server that serves the same vector after."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np

from tools.stress.common import (
    LONG,
    Result,
    Scale,
    Server,
    channel,
    clean_log,
    log_errors,
    reference_vector,
)
from tools.stress.errors import infer_outputs
from zh_rnn_encoder.client import encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as oip_grpc


def probe_cancelled_streams(bundle: Path, cache: Path, s: Scale) -> Result:
    """Clients that cancel their calls: EncodeStream while the server waits for the next
    request (the issue's case), EncodeStream before the server read anything, EncodeDocument
    while it waits for the next piece; Encode, Tokenize and ModelInfer, and HTTP requests
    dropped, while they run. None of it is the server's error: 0 ERROR lines."""
    srv = Server(bundle, cache, http=True)
    try:
        before = reference_vector(srv.target)
        kinds = {
            "EncodeStream waiting for its next request": s.cancelled_streams,
            "EncodeStream at once": s.cancelled_streams // 4,
            "EncodeDocument waiting for its next piece": s.cancelled_streams // 4,
            "Encode, Tokenize, ModelInfer while they run": s.cancelled_streams // 4,
        }
        cancelled = asyncio.run(_cancel_all(srv.target, kinds))
        kinds["/v1/embeddings dropped while it runs"] = s.cancelled_streams // 4
        cancelled |= asyncio.run(_drop_http(srv.http, s.cancelled_streams // 4))
        t0 = time.perf_counter()
        after = _when_served(srv.target)  # a dropped HTTP request's work still runs to its end
        same = bool(np.array_equal(before, after))
        m = {
            "cancelled": cancelled,
            "same_vector_after": same,
            "served_again_after_s": round(time.perf_counter() - t0, 2),
            **log_errors(srv.proc.log),
        }
        bounds = {
            "all cancelled": (sum(cancelled.values()), "==", sum(kinds.values())),
            "same vector after": (same, "==", True),
            **clean_log(m),
        }
        return Result("cancelled streams", m, bounds)
    finally:
        srv.stop()


async def _cancel_all(target: str, kinds: dict[str, int], clients: int = 32) -> dict[str, int]:
    done = dict.fromkeys(kinds, 0)
    async with channel(target) as ch:
        stub = pb_grpc.EncoderStub(ch)
        running = _Running(stub, oip_grpc.GRPCInferenceServiceStub(ch))
        cancel = {
            "EncodeStream waiting for its next request": _cancel_waiting_stream,
            "EncodeStream at once": _cancel_stream_at_once,
            "EncodeDocument waiting for its next piece": _cancel_waiting_document,
            "Encode, Tokenize, ModelInfer while they run": running.cancel,
        }
        for kind, n in kinds.items():
            for at in range(0, n, clients):
                batch = range(min(clients, n - at))
                await asyncio.gather(*(cancel[kind](stub) for _ in batch))
                done[kind] += len(batch)
    return done


class _Running:
    """Unary calls of every service, each cancelled 0-30 ms after it starts, in turn."""

    def __init__(self, stub: pb_grpc.EncoderStub, oip: oip_grpc.GRPCInferenceServiceStub) -> None:
        encode = encode_request([LONG] * 4, truncation="keep_first", token_vectors=True)
        tokenize = pb.TokenizeRequest(texts=[LONG] * 8)
        infer = infer_outputs([LONG[:500]] * 4, "token_vectors")
        self.calls = [lambda: stub.Encode(encode), lambda: stub.Tokenize(tokenize),
                      lambda: oip.ModelInfer(infer)]  # fmt: skip
        self.rng, self.n = random.Random(0), 0

    async def cancel(self, stub: object) -> None:
        self.n += 1
        call = self.calls[self.n % len(self.calls)]()
        await asyncio.sleep(self.rng.uniform(0, 0.03))
        call.cancel()
        await call.code()


def _when_served(target: str, timeout: float = 120) -> np.ndarray | None:
    """The reference vector once the server takes a request again (None if it never does)."""
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        try:
            return reference_vector(target)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            time.sleep(0.2)
    return None


async def _drop_http(url: str, n: int, clients: int = 32) -> dict[str, int]:
    """HTTP requests whose client hangs up 1-30 ms after sending."""
    import aiohttp

    rng = random.Random(0)
    body = {"model": "encoder", "input": [LONG[:1000]] * 4, "truncation": "keep_first"}
    async with aiohttp.ClientSession() as session:

        async def drop() -> None:
            post = session.post(url + "/v1/embeddings", json=body)
            with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                await asyncio.wait_for(post, rng.uniform(0.001, 0.03))

        for at in range(0, n, clients):
            await asyncio.gather(*(drop() for _ in range(min(clients, n - at))))
    return {"/v1/embeddings dropped while it runs": n}


async def _then_wait(first: object) -> AsyncIterator[object]:
    """One message, then nothing: the server waits for the next until the client cancels."""
    yield first
    await asyncio.Event().wait()


async def _cancel_waiting_stream(stub: pb_grpc.EncoderStub) -> None:
    call = stub.EncodeStream(_then_wait(encode_request(["你好"])))
    await call.read()  # answered: the server now waits for request #1
    call.cancel()
    await call.code()


async def _cancel_stream_at_once(stub: pb_grpc.EncoderStub) -> None:
    call = stub.EncodeStream(_then_wait(encode_request(["你好"])))
    await asyncio.sleep(0.01)  # the call started, its request perhaps read
    call.cancel()
    await call.code()


async def _cancel_waiting_document(stub: pb_grpc.EncoderStub) -> None:
    call = stub.EncodeDocument(_then_wait(pb.DocumentPiece(text="北京冬奥的进度条已经过半")))
    await asyncio.sleep(0.05)  # the first piece read and encoded: the server waits for more
    call.cancel()
    await call.code()
