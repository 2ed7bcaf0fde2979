"""What JSON logs and tracing cost on the hot path, measured in one run: the same load against a
server without them, one with --log-format json and one with --otlp-endpoint (to an OTLP
receiver in this process that counts what it gets), in alternating rounds; then the tracing
hook's own cost per call, in process.

    python -m bench.observability [--bundle bundles/default] [--rounds 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bench import process
from zh_rnn_encoder.runtime.spans import NO_SPANS

ROOT = Path(__file__).resolve().parent.parent


class Sink(otlp_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans, self.lock = 0, threading.Lock()

    def Export(self, request, context):
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with self.lock:
            self.spans += n
        return otlp.ExportTraceServiceResponse()


def start_server(name: str, bundle: Path, extra: list[str], env: dict, log_dir: Path) -> tuple:
    port_file = log_dir / f"{name}.port"
    err = open(log_dir / f"{name}.log", "w")  # noqa: SIM115
    cmd = [sys.executable, "-m", "zh_rnn_encoder.transport.app", "--bundle", str(bundle),
           "--listen", "127.0.0.1:0", "--threads", "1", "--port-file", str(port_file),
           *extra]  # fmt: skip
    proc, target = process.start_server(cmd, port_file, err, {**os.environ, **env})
    return proc, target, err


def load(target: str, texts: int, concurrency: int, seconds: float) -> dict:
    cmd = [sys.executable, "-m", "bench.loadgen", "--mode", "unary", "--target", target,
           "--texts", str(texts), "--concurrency", str(concurrency),
           "--seconds", str(seconds)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    lat = sorted(r.pop("latencies"))
    return {"req_s": r["requests"] / r["seconds"], "p50_ms": lat[len(lat) // 2] * 1e3,
            "errors": r["errors"]}  # fmt: skip


class Drop(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def hook_cost(n: int = 20_000) -> dict:
    """Microseconds per call: the hook off (what a call pays without --otlp-endpoint), and on
    (a call span with its three stages; spans built, not exported)."""
    from zh_rnn_encoder.transport.tracing import Tracing

    t0 = time.perf_counter()
    for _ in range(n):
        if NO_SPANS.enabled:  # encoder and batcher: one check per call and per run
            NO_SPANS.current()
        if NO_SPANS.enabled:
            NO_SPANS.current()
    off = (time.perf_counter() - t0) / n
    tracing = Tracing("http://127.0.0.1:1", "bench", "encoder", exporter=Drop())
    t0 = time.perf_counter()
    for _ in range(n):
        with tracing.call("encoder.v1.Encoder/Encode", {}, {"rpc.method": "Encode"}):
            span = tracing.current()
            tracing.tokenized(span, 1.0, 1.1, 1, 19)
            tracing.queued(span, 1.1, 1.2)
            tracing.ran(span, 1.2, 1.3, 16, 304)
    on = (time.perf_counter() - t0) / n
    tracing.close()
    return {"off_us": off * 1e6, "on_us": on * 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundle", type=Path, default=ROOT / "bundles" / "default")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    sink, receiver = Sink(), grpc.server(futures.ThreadPoolExecutor(2))
    otlp_grpc.add_TraceServiceServicer_to_server(sink, receiver)
    port = receiver.add_insecure_port("127.0.0.1:0")
    receiver.start()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-observability-"))
    traced = ["--otlp-endpoint", f"http://127.0.0.1:{port}"]
    ratio = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    configs = {  # name: (flags, environment)
        "off": ([], {}),
        "json": (["--log-format", "json"], {}),
        "traced": (traced, {}),
        "traced 10%": (traced, ratio),  # the SDK's sampler: one call in ten
    }
    servers = {k: start_server(k, a.bundle, *v, log_dir) for k, v in configs.items()}
    results: dict[str, dict[int, list[dict]]] = {k: {1: [], 32: []} for k in configs}
    try:
        for r in range(a.rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for texts in (1, 32):
                for name in order:
                    res = load(servers[name][1], texts, a.concurrency, a.seconds)
                    results[name][texts].append(res)
                    print(f"round {r} {name:10s} {texts:2d} texts: {res}", file=sys.stderr)
    finally:
        for proc, _, err in servers.values():
            proc.terminate()
            proc.wait(30)
            err.close()
    receiver.stop(1)
    summary = {"hook": hook_cost(), "spans_received": sink.spans, "load": {}}
    for name in configs:
        for texts in (1, 32):
            runs = results[name][texts]
            base = statistics.median(x["req_s"] for x in results["off"][texts])
            med = statistics.median(x["req_s"] for x in runs)
            summary["load"][f"{name} {texts} texts"] = {
                "req_s": round(med, 1),
                "vs_off": round(med / base, 3),
                "p50_ms": round(statistics.median(x["p50_ms"] for x in runs), 2),
                "errors": sum(x["errors"] for x in runs),
            }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
