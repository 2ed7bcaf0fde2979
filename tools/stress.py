"""`make stress`: the reliability suite. Each probe starts a real server process, does to it what
an unkind client or an operator does, measures, and checks the bound it promises.

`python -m tools.stress [--quick] [--only NAME ...]` prints one JSON line per probe and a
markdown table, writes bench/results/stress.json, and exits 1 if a bound is broken. The quick
scale is what `make test` runs (tests/integration/test_stress.py); every probe targets only
127.0.0.1 and is bounded in requests and time. A later transport adds its own calls to the same
probes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import ROOT
from tests.support.harness import ServerProcess, wait_health
from zh_rnn_encoder.client import RETRY_POLICY, encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip_pb

OUT = ROOT / "bench" / "results"
# The server gets core 0 and the load generator core 1, so that what the clients burn (their
# retries, their serialization) does not count against the server's throughput.
SERVER_CPUS, CLIENT_CPUS = {0}, {1}
SERVER_PYTHON = sys.executable  # --server-python: another build's interpreter, to compare
SENTENCE = "北京冬奥的进度条已经过半，不少外国运动员在完成自己的比赛后踏上归途。"
LONG = SENTENCE * 27  # about 500 tokens
BIG = 1 << 26  # client-side message cap, above any server limit


@dataclass
class Scale:
    """How hard each probe pushes; `quick` keeps the whole suite within a minute or so."""

    storm_clients: int
    storm_seconds: float
    storm_texts: int
    big_requests: int
    unread_streams: int
    sigterm_clients: int
    fuzz_cases: int


FULL = Scale(256, 20.0, 256, 64, 3, 16, 100_000)
QUICK = Scale(64, 4.0, 64, 16, 2, 8, 3_000)


@dataclass
class Result:
    probe: str
    measured: dict
    bounds: dict  # name -> (value, op, bound)
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        ops = {"<=": lambda v, b: v <= b, ">=": lambda v, b: v >= b, "==": lambda v, b: v == b}
        self.ok = all(ops[op](v, b) for v, op, b in self.bounds.values())


class Server:
    """encoder-serve as a subprocess (torch not importable), with RSS read from /proc; with
    ``http``, the OpenAI-compatible API too, at ``self.http`` (http://host:port)."""

    def __init__(self, bundle: Path, cache: Path, *flags: str, http: bool = False) -> None:
        if http:
            port_file = Path(tempfile.mkdtemp(prefix="encoder-http-")) / "port"
            flags = (*flags, "--http-listen", "127.0.0.1:0", "--http-port-file", str(port_file))
        self.proc = ServerProcess(
            "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--jieba-cache-dir", str(cache),
            *flags, cpus=SERVER_CPUS, python=SERVER_PYTHON,
        )  # fmt: skip
        self.target = f"127.0.0.1:{self.proc.port()}"
        wait_health(self.target, "SERVING")
        self.http = f"http://127.0.0.1:{int(port_file.read_text())}" if http else None
        self.idle_mb = self.rss_mb()

    def rss_mb(self, key: str = "VmRSS") -> float:
        status = Path(f"/proc/{self.proc.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith(key + ":"))
        return int(line.split()[1]) / 1024

    def peak_mb(self) -> float:
        return self.rss_mb("VmHWM")

    def stop(self) -> None:
        self.proc.kill()


def channel(target: str) -> grpc.aio.Channel:
    opts = [("grpc.max_receive_message_length", BIG), ("grpc.max_send_message_length", BIG)]
    return grpc.aio.insecure_channel(target, options=opts)


async def _encode(stub: object, req: pb.EncodeRequest | bytes, timeout: float = 30):
    """(status code name, seconds). ``stub`` is an EncoderStub, or a raw Encode call (from
    raw_encode) fed serialized bytes, so that a load client does not spend the shared cores
    serializing the same request again and again."""
    t0 = time.perf_counter()
    call = stub if isinstance(req, bytes) else stub.Encode
    try:
        await call(req, timeout=timeout)
        return "OK", time.perf_counter() - t0
    except grpc.aio.AioRpcError as e:
        return e.code().name, time.perf_counter() - t0


def backoff(attempt: int) -> float:
    """The upper bound of the wait before retry ``attempt`` in zh_rnn_encoder.client's policy."""
    p, seconds = RETRY_POLICY, lambda v: float(v.rstrip("s"))
    grown = seconds(p["initialBackoff"]) * p["backoffMultiplier"] ** (attempt - 1)
    return min(grown, seconds(p["maxBackoff"]))


def raw_encode(ch: grpc.aio.Channel) -> object:
    return ch.unary_unary("/encoder.v1.Encoder/Encode")


def infer_request(texts: list[str], **parameters: object) -> oip_pb.ModelInferRequest:
    """An Open Inference ModelInfer request for the served model, texts in raw form."""
    r = oip_pb.ModelInferRequest(model_name="encoder")
    r.inputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)])
    raw = b"".join(len(b).to_bytes(4, "little") + b for b in (t.encode() for t in texts))
    r.raw_input_contents.append(raw)
    r.outputs.add(name="sentence_vector")
    for k, v in parameters.items():
        r.parameters[k].string_param = v
    return r


async def http_post(session: object, url: str, body: dict, timeout: float = 30) -> tuple:
    """(status as text: "200", "429", ... or the client error's name, seconds)."""
    import aiohttp

    t0 = time.perf_counter()
    try:
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(timeout)) as r:
            await r.read()
            return str(r.status), time.perf_counter() - t0
    except (TimeoutError, aiohttp.ClientError) as e:
        return type(e).__name__, time.perf_counter() - t0


def reference_vector(target: str) -> np.ndarray:
    async def go() -> bytes:
        async with channel(target) as ch:
            r = await pb_grpc.EncoderStub(ch).Encode(encode_request([SENTENCE]), timeout=10)
            return r.encodings[0].sentence_vector.data

    return np.frombuffer(asyncio.run(go()), "<f4")


# --- probes -----------------------------------------------------------------------------------


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


async def _never():
    await asyncio.sleep(3600)
    yield pb.EncodeRequest()


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


PROBES: dict[str, Callable] = {
    "storm": probe_storm,
    "http storm": probe_http_storm,
    "big requests": probe_big_requests,
    "unread streams": probe_unread_streams,
    "stall": probe_stall,
    "sigterm": probe_sigterm,
    "log hygiene": probe_log_hygiene,
    "wire fuzz": probe_wire_fuzz,
}
MEMORY_PROBES = {"storm", "http storm", "big requests", "unread streams"}


def run(bundle: Path, cache: Path, scale: Scale, only: list[str], budget_mb: float) -> list:
    out = []
    for name, probe in PROBES.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        args = (
            (bundle, cache, scale, budget_mb) if name in MEMORY_PROBES else (bundle, cache, scale)
        )
        r = probe(*args)
        r.measured["probe_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({"probe": r.probe, "ok": r.ok, **r.measured}, ensure_ascii=False),
              flush=True)  # fmt: skip
        out.append(r)
    return out


def markdown(results: list[Result]) -> str:
    lines = ["| probe | bound | measured | bound | met |", "| --- | --- | ---: | --- | --- |"]
    for r in results:
        for name, (v, op, b) in r.bounds.items():
            b = round(b) if isinstance(b, float) and b > 10 else b
            lines.append(
                f"| {r.probe} | {name} | {v} | {op} {b} | {'yes' if _ok(v, op, b) else 'NO'} |"
            )
    return "\n".join(lines)


def _ok(v: object, op: str, b: object) -> bool:
    return {"<=": v <= b, ">=": v >= b, "==": v == b}[op]


def main() -> int:
    ap = argparse.ArgumentParser(prog="make stress", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="the scale make test runs")
    ap.add_argument("--only", nargs="*", default=[], choices=list(PROBES))
    ap.add_argument("--bundle", type=Path, default=ROOT / "bundles" / "default")
    ap.add_argument(
        "--memory-mb",
        type=float,
        default=768.0,
        help="the bound on RSS above idle: max_inflight_mb (256) + twice the bytes of the "
        "uploads being received (64 of 4 MiB): the memory model of the README",
    )
    ap.add_argument(
        "--server-python",
        default=sys.executable,
        help="run the server with this interpreter (another checkout's .venv/bin/python)",
    )
    a = ap.parse_args()
    globals()["SERVER_PYTHON"] = a.server_python
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, CLIENT_CPUS)
    else:  # one CPU: server and clients share it, as the figures will show
        globals()["SERVER_CPUS"] = None
    cache = OUT / "jieba-cache"
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    results = run(a.bundle, cache, QUICK if a.quick else FULL, a.only, a.memory_mb)
    table = markdown(results)
    print(table)
    stem = "stress-quick" if a.quick else "stress"
    (OUT / f"{stem}.json").write_text(
        json.dumps([{"probe": r.probe, "ok": r.ok, **r.measured} for r in results], indent=1)
    )
    (OUT / f"{stem}.md").write_text(table + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
