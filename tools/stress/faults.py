"""Fault probes: a stalled client, SIGTERM under mixed load."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.stress.common import (
    SENTENCE,
    Result,
    Scale,
    Server,
    _encode,
    _never,
    channel,
    http_post,
    infer_request,
)
from zh_rnn_encoder.client import encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc


def probe_stall(bundle: Path, cache: Path, s: Scale) -> Result:
    """One request of the largest legal size (256 texts of 5,000 characters, just under the
    4 MiB message limit) while a probe checks health and encodes one short text every 10 ms:
    how long the probe waits."""
    srv = Server(bundle, cache)
    try:
        big = (SENTENCE * 300)[:5_000]
        waits: dict[str, list[float]] = {"health": [], "encode": []}

        async def go() -> dict:
            async with channel(srv.target) as ch:
                stub, health = pb_grpc.EncoderStub(ch), health_pb2_grpc.HealthStub(ch)
                done = asyncio.Event()

                async def prober() -> None:
                    while not done.is_set():
                        t0 = time.perf_counter()
                        await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                        waits["health"].append(time.perf_counter() - t0)
                        waits["encode"].append((await _encode(stub, encode_request(["你好"])))[1])
                        await asyncio.sleep(0.01)

                task = asyncio.ensure_future(prober())
                await asyncio.sleep(0.2)
                results = {}
                for name, call in (
                    ("tokenize", stub.Tokenize(pb.TokenizeRequest(texts=[big] * 256), timeout=60)),
                    ("encode", stub.Encode(
                        encode_request([big] * 256, truncation="keep_first"), timeout=60)),
                ):  # fmt: skip
                    t0 = time.perf_counter()
                    try:
                        await call
                        results[name] = ("OK", time.perf_counter() - t0)
                    except grpc.aio.AioRpcError as e:
                        results[name] = (e.code().name, time.perf_counter() - t0)
                done.set()
                await task
                return results

        results = asyncio.run(go())
        worst = max(max(waits["health"]), max(waits["encode"]))
        m = {
            "big_tokenize": results["tokenize"][0],
            "big_tokenize_s": round(results["tokenize"][1], 2),
            "big_encode": results["encode"][0],
            "big_encode_s": round(results["encode"][1], 2),
            "probe_calls": len(waits["health"]),
            "max_health_ms": round(max(waits["health"]) * 1e3, 1),
            "max_small_encode_ms": round(max(waits["encode"]) * 1e3, 1),
        }
        return Result(
            "stall",
            m,
            {
                "no stall over 100 ms": (worst * 1e3, "<=", 100.0),
                "tokenize answered": (m["big_tokenize"] in ("OK", "INVALID_ARGUMENT"), "==", True),
            },
        )
    finally:
        srv.stop()


def probe_sigterm(bundle: Path, cache: Path, s: Scale) -> Result:
    """SIGTERM under concurrent clients of every protocol (encoder.v1 unary and stream, Open
    Inference ModelInfer, OpenAI HTTP): requests sent before the signal must all be answered OK;
    an idle open stream must not hold the process until the grace ends."""
    srv = Server(bundle, cache, "--grace-period-s", "8", http=True)
    per_protocol: dict[str, list[str]] = {}  # outcomes before the signal, by protocol
    sent_before: list[str] = []  # outcome of each request sent before the signal
    sent_after: list[str] = []
    t_signal = [float("inf")]
    req = encode_request([SENTENCE, "你好"])

    async def unary_client(stub: pb_grpc.EncoderStub, stop: float) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            code, _ = await _encode(stub, req, timeout=15)
            (sent_before if t0 < t_signal[0] else sent_after).append(code)
            if code != "OK" and t0 >= t_signal[0]:
                return  # told to go elsewhere: a well-behaved client does

    oip_req = infer_request([SENTENCE, "你好"]).SerializeToString()
    body = {"model": "encoder", "input": [SENTENCE, "你好"]}

    def outcome(protocol: str, t0: float, code: str) -> None:
        (sent_before if t0 < t_signal[0] else sent_after).append(code)
        if t0 < t_signal[0]:
            per_protocol.setdefault(protocol, []).append(code)

    async def oip_client(call: object, stop: float) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            code, _ = await _encode(call, oip_req, timeout=15)
            outcome("oip", t0, code)
            if code != "OK" and t0 >= t_signal[0]:
                return

    async def http_client(stop: float) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                code, _ = await http_post(session, srv.http + "/v1/embeddings", body, 15)
                outcome("http", t0, "OK" if code == "200" else code)
                if code != "200" and t0 >= t_signal[0]:
                    return

    async def stream_client(stub: pb_grpc.EncoderStub, stop: float) -> None:
        times: list[float] = []

        async def requests():
            while time.perf_counter() < stop:
                times.append(time.perf_counter())
                yield req
                await asyncio.sleep(0.005)

        got = 0
        try:
            async for _ in stub.EncodeStream(requests(), timeout=20):
                got += 1
        except grpc.aio.AioRpcError:
            pass
        before = sum(t < t_signal[0] for t in times)
        sent_before.extend(["OK"] * min(got, before) + ["LOST"] * max(0, before - got))

    async def go() -> float:
        async with channel(srv.target) as ch, channel(srv.target) as idle_ch:
            stub = pb_grpc.EncoderStub(ch)
            idle = pb_grpc.EncoderStub(idle_ch).EncodeStream(_never())  # an idle open stream
            stop = time.perf_counter() + 3.0
            infer = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            quarter = max(1, s.sigterm_clients // 4)
            tasks = [unary_client(stub, stop) for _ in range(s.sigterm_clients)]
            tasks += [stream_client(stub, stop) for _ in range(quarter)]
            tasks += [oip_client(infer, stop) for _ in range(quarter)]
            tasks += [http_client(stop) for _ in range(quarter)]
            runner = asyncio.gather(*tasks)
            await asyncio.sleep(1.0)
            t_signal[0] = time.perf_counter()
            srv.proc.proc.send_signal(signal.SIGTERM)
            await runner
            idle.cancel()
            return t_signal[0]

    exited: list[float] = []

    def watch() -> None:
        srv.proc.proc.wait()
        exited.append(time.perf_counter())

    try:
        threading.Thread(target=watch, daemon=True).start()
        t0 = asyncio.run(go())
        rc = srv.proc.wait(30)
        exit_s = exited[0] - t0
        lost = sum(c != "OK" for c in sent_before)
        m = {
            "sent_before_signal": len(sent_before),
            "lost": lost,
            "before_signal_by_protocol": {k: len(v) for k, v in sorted(per_protocol.items())},
            "after_signal_codes": sorted(set(sent_after)),
            "exit_code": rc,
            "exit_after_s": round(exit_s, 2),
        }
        return Result(
            "sigterm",
            m,
            {
                "nothing lost": (lost, "==", 0),
                "exit 0": (rc, "==", 0),
                "idle stream closed promptly": (exit_s, "<=", 4.0),
            },
        )
    finally:
        srv.stop()
