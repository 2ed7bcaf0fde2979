"""HTTP front probes: floods of the request head (header lines, request line) and idle connections
past the open-files limit. Each holds the gRPC port to its promise while the HTTP port is abused:
memory near idle, health near its unloaded speed, Encode and health answering, a quiet log."""

from __future__ import annotations

import errno
import json
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import ROOT
from tests.support.harness import free_port
from tools.stress.common import SENTENCE, Result, Scale, Server
from zh_rnn_encoder.client import encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc

FLOOD_MB = 64  # RSS above idle a flood may add
FLOOD_SLOWDOWN = 5.0  # health p50 during a flood, at most this many times the unloaded one
NOFILE = 1024  # the server's open-files limit in the idle-connections probe, soft and hard
METRICS_IDLE = 500  # idle connections to the metrics port in that probe
LOG_GROWTH_MB = 1.0


def probe_header_flood(bundle: Path, cache: Path, s: Scale) -> Result:
    """One connection sends header lines without end (up to 1 GB, until the server closes it)."""
    return _flood("header flood", bundle, cache, 1, 0.0)


def probe_url_flood(bundle: Path, cache: Path, s: Scale) -> Result:
    """Two connections send an endless request line for ``s.flood_seconds``; each reconnects
    whenever the server closes it."""
    return _flood("url flood", bundle, cache, 2, s.flood_seconds)


def _flood(name: str, bundle: Path, cache: Path, conns: int, seconds: float) -> Result:
    srv = Server(bundle, cache, http=True)
    port = int(srv.http.rpartition(":")[2])
    try:
        before = _health_p50(srv.target, lambda: True, 200)
        _reset_peak(srv)
        # The flooders run in a process of their own at the lowest priority: they share the
        # clients' core with the health prober, which must not wait for them to be measured.
        args = [name, str(port), str(conns), str(seconds)]
        flood = subprocess.Popen(
            ["nice", "-n", "19", sys.executable, "-m", "tools.stress.flooder", *args],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        during = _health_p50(srv.target, lambda: flood.poll() is not None, 50)
        statuses, most = json.loads(flood.communicate(timeout=600)[0])
        time.sleep(1.0)  # anything still held shows in RSS now
        m = {
            "connections": sum(statuses.values()),
            "statuses": statuses,
            "sent_mb_per_connection_max": round(most / (1 << 20), 2),
            "health_p50_ms_before": round(before * 1e3, 3),
            "health_p50_ms_during": round(during * 1e3, 3),
            "health_slowdown": round(during / before, 2),
            "rss_idle_mb": round(srv.idle_mb),
            "rss_peak_mb": round(srv.peak_mb()),
            "rss_after_mb": round(srv.rss_mb()),
            "error_lines": sum(" ERROR " in x for x in srv.proc.log.splitlines()),
        }
        want = "414" if name == "url flood" else "431"
        return Result(
            name,
            m,
            {
                "memory": (m["rss_peak_mb"], "<=", round(srv.idle_mb + FLOOD_MB)),
                "health p50": (m["health_slowdown"], "<=", FLOOD_SLOWDOWN),
                f"every connection {want}": (statuses.get(want, 0), "==", m["connections"]),
                "no ERROR": (m["error_lines"], "==", 0),
            },
        )
    finally:
        srv.stop()


def probe_idle_connections(bundle: Path, cache: Path, s: Scale) -> Result:
    """A server started under ``ulimit -n 1024`` (soft and hard, so raising cannot hide it):
    ``s.idle_connections`` HTTP connections that each sent one request line, and 500 idle
    connections to the metrics port. gRPC Encode and health must keep answering, the metrics
    port must not grow a thread per connection, and the log must stay quiet."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this client holds them all
    metrics = free_port()
    srv = Server(bundle, cache, "--metrics-listen", f"127.0.0.1:{metrics}", http=True,
                 nofile=NOFILE)  # fmt: skip
    port = int(srv.http.rpartition(":")[2])
    held: list[socket.socket] = []
    try:
        log0, threads0 = len(srv.proc.log), _threads(srv)
        opened = 0
        for _ in range(s.idle_connections):
            c = _connect(port, b"GET /v1/models HTTP/1.1\r\n")
            opened += c is not None
            held += [c] if c else []
        held += [c for _ in range(METRICS_IDLE) if (c := _connect(metrics, b""))]
        time.sleep(1.0)
        open_http = sum(_alive(c) for c in held[:opened])
        codes, took = _grpc_calls(srv.target, 20)
        m = {
            "http_connections_tried": s.idle_connections,
            "http_connections_open": open_http,
            "http_connections_refused": s.idle_connections - open_http,
            "metrics_connections": METRICS_IDLE,
            "threads_before": threads0,
            "threads_during": _threads(srv),
            "grpc_ok": codes.count("OK"),
            "grpc_calls": len(codes),
            "grpc_p50_ms": round(statistics.median(took) * 1e3, 2),
            "log_growth_kb": round((len(srv.proc.log) - log0) / 1024, 1),
            "error_lines": sum(" ERROR " in x for x in srv.proc.log.splitlines()),
        }
        return Result(
            "idle connections",
            m,
            {
                "gRPC answers": (m["grpc_ok"], "==", m["grpc_calls"]),
                "log growth": (m["log_growth_kb"], "<=", LOG_GROWTH_MB * 1024),
                "no ERROR": (m["error_lines"], "==", 0),
                "no thread per connection": (m["threads_during"], "<=", threads0 + 4),
            },
        )
    finally:
        for c in held:
            c.close()
        srv.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- helpers ----------------------------------------------------------------------------------


def _health_p50(target: str, done: Callable[[], bool], least: int) -> float:
    """Median seconds of a health check, one after another every 5 ms, until ``done()`` and at
    least ``least`` of them."""
    took = []
    with grpc.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        req = health_pb2.HealthCheckRequest()
        stub.Check(req, timeout=10)  # connected
        while len(took) < least or not done():
            t0 = time.perf_counter()
            stub.Check(req, timeout=10)
            took.append(time.perf_counter() - t0)
            time.sleep(0.005)
    return statistics.median(took)


def _grpc_calls(target: str, n: int) -> tuple[list[str], list[float]]:
    """``n`` Encode and ``n`` health calls, each on a new connection (what a file handle costs)."""
    codes, took = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        with grpc.insecure_channel(target) as ch:
            try:
                pb_grpc.EncoderStub(ch).Encode(encode_request([SENTENCE]), timeout=5)
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
        took.append(time.perf_counter() - t0)
    return codes, took


def _connect(port: int, first: bytes) -> socket.socket | None:
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first:
            c.sendall(first)
        return c
    except OSError:
        return None


def _alive(c: socket.socket) -> bool:
    """Still open at the server's end: nothing to read yet, no reset, no end of stream."""
    c.setblocking(False)
    try:
        return c.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError as e:
        return e.errno not in (errno.ECONNRESET, errno.EPIPE)


def _threads(srv: Server) -> int:
    status = Path(f"/proc/{srv.proc.proc.pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("Threads:")).split()[1])


def _reset_peak(srv: Server) -> None:
    """VmHWM from now on (Linux: 5 to clear_refs), so the peak is the flood's, not start-up's."""
    Path(f"/proc/{srv.proc.proc.pid}/clear_refs").write_text("5")
