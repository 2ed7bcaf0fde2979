"""Recovery probes: what the server comes back to after a burst or a death. Memory after idle
streams that never reached the budget; readiness across workers while one restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.harness import free_port
from tools.stress.common import Result, Scale, Server, _never, channel, reference_vector
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc

IDLE_STREAMS_MB = 32  # RSS above idle allowed once the streams are gone
READY_WITHIN_S = 0.3  # encoder_ready 0 this soon after a worker dies
SAMPLE_EVERY_S = 0.02
WAVE = 100  # idle streams opened at once, each wave taken up before the next


def probe_idle_streams(bundle: Path, cache: Path, s: Scale) -> Result:
    """``s.idle_streams`` EncodeStream calls opened and cancelled without a message sent: they
    never touch the in-flight budget. RSS ``s.idle_wait_s`` later must be back near idle."""
    srv = Server(bundle, cache)
    try:

        async def go() -> tuple[float, int]:
            """Opens every stream, waits until the server holds them: RSS then (MB), and how
            many had ended before the client cancelled them. Some end CANCELLED with no message
            of ours (gRPC's own; cause not pinned down): 5,885 of 10,000 sent at once on a busy
            machine, 0-2,400 in waves of WAVE, each behind a health check that answers first."""
            async with channel(srv.target) as ch:
                stub = pb_grpc.EncoderStub(ch)
                health = health_pb2_grpc.HealthStub(ch)
                calls: list = []
                for n in range(0, s.idle_streams, WAVE):
                    wave = [
                        stub.EncodeStream(_never()) for _ in range(min(WAVE, s.idle_streams - n))
                    ]
                    opened = (c.wait_for_connection() for c in wave)
                    await asyncio.gather(*opened, return_exceptions=True)
                    await health.Check(health_pb2.HealthCheckRequest(), timeout=60)
                    calls += wave
                held = await _steady(srv)
                ended = sum(c.done() for c in calls)
                for c in calls:
                    c.cancel()
                return held, ended

        held, ended = asyncio.run(go())
        rss, t0 = [], time.monotonic()
        while (t := time.monotonic() - t0) < s.idle_wait_s:  # nothing sent meanwhile
            rss.append((round(t, 1), round(srv.rss_mb())))
            time.sleep(1.0)
        after = srv.rss_mb()
        bound = srv.idle_mb + IDLE_STREAMS_MB
        back = next((t for t, mb in rss if mb <= bound), None)
        alive = reference_vector(srv.target).shape[0] > 0
        m = {
            "streams": s.idle_streams,
            "ended_before_cancel": ended,
            "rss_idle_mb": round(srv.idle_mb),
            "rss_streams_open_mb": round(held),
            "rss_peak_mb": round(srv.peak_mb()),
            "rss_after_mb": round(after),
            "after_s": s.idle_wait_s,
            "within_bound_after_s": back,
            "serves_afterwards": alive,
        }
        return Result(
            "idle streams",
            m,
            {
                "memory after": (m["rss_after_mb"], "<=", round(bound)),
                "alive": (alive, "==", True),
            },
        )
    finally:
        srv.stop()


async def _steady(srv: Server, tolerance_mb: float = 1.0, timeout: float = 30.0) -> float:
    """Waits until the server's RSS stops moving (two reads 0.5 s apart); returns it."""
    last, t0 = srv.rss_mb(), time.monotonic()
    while time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.5)
        now = srv.rss_mb()
        if abs(now - last) <= tolerance_mb:
            return now
        last = now
    return last


def probe_worker_readiness(bundle: Path, cache: Path, s: Scale) -> Result:
    """``--workers 2``; ``s.worker_kills`` times, one worker is SIGKILLed while /metrics of the
    parent is read every 20 ms and gRPC health asked on a new connection every 100 ms. Bound:
    encoder_ready 0 within 0.3 s of the death, and 0 until the replacement serves."""
    mport = free_port()
    srv = Server(bundle, cache, "--workers", "2", "--metrics-listen", f"127.0.0.1:{mport}")
    try:
        ready: list[tuple[float, float]] = []  # (time.time(), encoder_ready)
        health: list[tuple[float, str]] = []
        stop = threading.Event()
        samplers = [
            threading.Thread(target=_sample_ready, args=(mport, ready, stop), daemon=True),
            threading.Thread(target=_sample_health, args=(srv.target, health, stop), daemon=True),
        ]
        for t in samplers:
            t.start()
        _wait(lambda: len(ready) >= 10)
        kills = []
        for k in range(s.worker_kills):
            served = srv.proc.log.count("serving encoder.v1")
            workers = _children(srv.proc.proc.pid)
            killed_at = time.time()
            os.kill(workers[k % len(workers)], signal.SIGKILL)
            _wait(lambda n=served: srv.proc.log.count("serving encoder.v1") > n)
            time.sleep(0.5)
            kills.append((killed_at, _served_at(srv.proc.log, served)))
        stop.set()
        for t in samplers:
            t.join(10)
        m = _readiness(ready, health, kills)
        return Result(
            "worker readiness",
            m,
            {
                "ready 0 after a death (s)": (m["first_zero_s_max"], "<=", READY_WITHIN_S),
                "ready 1 while a worker is down": (m["ones_while_down"], "==", 0),
                "ready again after": (m["ready_at_end"], "==", True),
            },
        )
    finally:
        _stop_supervised(srv)


def _stop_supervised(srv: Server) -> None:
    """SIGTERM, which the parent forwards to its workers; a SIGKILL would orphan them."""
    proc = srv.proc.proc
    workers = _children(proc.pid) if proc.poll() is None else []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        for pid in [*workers, proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)


def _readiness(
    ready: list[tuple[float, float]], health: list[tuple[float, str]], kills: list
) -> dict:
    """Per kill: how soon encoder_ready read 0, and any 1 read after that before the
    replacement served (its ready file is written just before that log line: 50 ms margin);
    gRPC health answers on new connections while a worker was down."""
    first_zero, ones, down_health, down_s = [], 0, {}, []
    for killed, served in kills:
        after = [(t, v) for t, v in ready if killed <= t < served - 0.05]
        zero = next((t for t, v in after if v == 0), None)
        first_zero.append(round(zero - killed, 3) if zero is not None else float("inf"))
        ones += sum(1 for t, v in after if v == 1 and zero is not None and t > zero)
        down_s.append(round(served - killed, 2))
        for t, status in health:
            if killed <= t < served:
                down_health[status] = down_health.get(status, 0) + 1
    return {
        "kills": len(kills),
        "down_s": down_s,
        "first_zero_s": first_zero,
        "first_zero_s_max": max(first_zero),
        "ones_while_down": ones,
        "samples": len(ready),
        "ready_at_end": bool(ready) and ready[-1][1] == 1,
        "health_while_down": down_health,
    }


def _sample_ready(port: int, out: list, stop: threading.Event) -> None:
    """(time.time() once answered, encoder_ready): the value held at some moment before then."""
    url = f"http://127.0.0.1:{port}/metrics"
    while not stop.is_set():
        t0 = time.time()
        try:
            body = urllib.request.urlopen(url, timeout=2).read().decode()
            line = next(x for x in body.splitlines() if x.startswith("encoder_ready"))
            out.append((time.time(), float(line.rsplit(" ", 1)[1])))
        except (OSError, StopIteration):
            out.append((time.time(), -1.0))  # no answer, or no gauge: neither 0 nor 1
        time.sleep(max(0.0, SAMPLE_EVERY_S - (time.time() - t0)))


def _sample_health(target: str, out: list, stop: threading.Event) -> None:
    """A new connection each time (a channel of its own subchannel pool): the kernel picks the
    worker, as it does for a load balancer's probe."""
    while not stop.is_set():
        t = time.time()
        opts = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=opts) as ch:
            try:
                r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                out.append((t, health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)))
            except grpc.RpcError as e:
                out.append((t, e.code().name))
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    return sorted(int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def _served_at(log: str, before: int) -> float:
    """The time.time() of the first "serving encoder.v1" line after the first ``before``."""
    line = [x for x in log.splitlines() if "serving encoder.v1" in x][before]
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _wait(predicate, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the server did not get there in time")
        time.sleep(0.02)
