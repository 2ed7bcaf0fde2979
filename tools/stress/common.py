"""What every probe shares: the server under test, its scale and result, the clients' helpers."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from tests.support import ROOT
from tests.support.harness import ServerProcess, wait_health
from zh_rnn_encoder.client import RETRY_POLICY, encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip_pb

OUT = ROOT / "bench" / "results"
# The server gets core 0 and the load generator core 1, so that what the clients burn (their
# retries, their serialization) does not count against the server's throughput.
SERVER_CPUS: set[int] | None = {0}
CLIENT_CPUS = {1}
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
    idle_streams: int = 10_000  # opened and closed without a message
    idle_wait_s: float = 30.0  # after them, until RSS is read
    worker_kills: int = 3  # SIGKILLs of a worker under --workers 2
    flood_seconds: float = 20.0  # the HTTP URL flood
    idle_connections: int = 1_100  # HTTP connections that each send one request line
    cancelled_streams: int = 2_000  # EncodeStreams cancelled while the server waits for more
    swaps: int = 6  # hot swaps (SIGHUP) under load, alternating between two versions


FULL = Scale(
    256, 20.0, 256, 64, 3, 16, 100_000, idle_streams=10_000, idle_wait_s=30.0, worker_kills=3,
    flood_seconds=20.0, idle_connections=1_100, cancelled_streams=2_000,
)  # fmt: skip
QUICK = Scale(
    64, 4.0, 64, 16, 2, 8, 3_000, idle_streams=2_000, idle_wait_s=10.0, worker_kills=1,
    flood_seconds=5.0, idle_connections=1_100, cancelled_streams=400, swaps=2,
)  # fmt: skip


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

    def __init__(
        self, bundle: Path, cache: Path, *flags: str, http: bool = False, nofile: int | None = None
    ) -> None:
        if http:
            port_file = Path(tempfile.mkdtemp(prefix="encoder-http-")) / "port"
            flags = (*flags, "--http-listen", "127.0.0.1:0", "--http-port-file", str(port_file))
        self.proc = ServerProcess(
            "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--jieba-cache-dir", str(cache),
            *flags, cpus=SERVER_CPUS, python=SERVER_PYTHON, nofile=nofile,
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


async def _never():
    await asyncio.sleep(3600)
    yield pb.EncodeRequest()


def log_errors(log: str) -> dict[str, int]:
    """ERROR lines and tracebacks in a server's log."""
    return {
        "error_lines": sum(" ERROR " in x for x in log.splitlines()),
        "tracebacks": log.count("Traceback"),
    }


def clean_log(m: dict) -> dict:
    return {"no ERROR": (m["error_lines"], "==", 0), "no traceback": (m["tracebacks"], "==", 0)}
