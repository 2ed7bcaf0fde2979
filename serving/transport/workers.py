"""`--workers N`: N server processes on one port (SO_REUSEPORT), under a supervising parent.

One Python gRPC process saturates about one core in the gRPC stack, so a host with more cores
runs more processes. The kernel spreads connections over the workers' listening sockets. The
parent keeps the port bound (so a restart finds it free of strangers), restarts a worker that
dies with a growing backoff, and on SIGTERM/SIGINT forwards the signal so that every worker
drains as one server does (zero accepted requests lost), then exits 0. SIGHUP (reload the
bundles, reload.py) goes to every worker that serves, and to one still starting once it serves
(before then its handler may not be installed, and SIGHUP's default would end it). Each worker
has its own onnxruntime session and batcher, with its share of the CPUs as threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zh_rnn_encoder.transport.app import write_port_file
from zh_rnn_encoder.transport.config import ServerConfig

log = logging.getLogger("encoder")
BACKOFF_S, MAX_BACKOFF_S, STABLE_S = 1.0, 30.0, 60.0


def reserve_port(listen: str) -> tuple[socket.socket, str, int]:
    """A socket bound (not listening) to ``listen``, SO_REUSEPORT: the workers join its group."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, int(port)))
    return sock, host, sock.getsockname()[1]


def worker_argv(
    argv: Sequence[str],
    address: str,
    threads: int,
    ready: Path,
    metrics: Path | None,
    http_address: str = "",
) -> list[str]:
    """The parent's own flags, then the overrides that make a worker of it (last flag wins)."""
    return [
        *argv,
        "--listen", address,
        "--http-listen", http_address,
        "--http-port-file", "",
        "--workers", "1",
        "--reuse-port", "on",
        "--threads", str(threads),
        "--port-file", "",
        "--ready-file", str(ready),
        "--metrics-listen", "",  # the parent serves the sum of every worker's
        "--metrics-dir", str(metrics or ""),
    ]  # fmt: skip


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Supervisor:
    def __init__(self, cfg: ServerConfig, argv: Sequence[str], workers: int, cpus: int) -> None:
        self.cfg, self.argv, self.n = cfg, list(argv), workers
        self.threads = max(1, cpus // workers)
        self.procs: list[asyncio.subprocess.Process | None] = [None] * workers
        self.stopping = False
        self._dir = Path(tempfile.mkdtemp(prefix="encoder-workers-"))
        self.ready = [self._dir / f"worker-{i}.ready" for i in range(workers)]
        self.metrics_dir = self._dir / "metrics" if cfg.metrics_listen else None
        self.http_address = ""  # the shared HTTP port, once reserved
        self.reload_due = [False] * workers  # a SIGHUP not yet passed on to worker i

    async def run(self) -> int:
        sock, host, port = reserve_port(self.cfg.listen)
        address = _address(host, port)
        http_sock, self.http_address, http_port = None, "", None
        if self.cfg.http_listen:  # the HTTP port is shared the same way
            http_sock, http_host, http_port = reserve_port(self.cfg.http_listen)
            self.http_address = _address(http_host, http_port)
        log.info(
            "supervising %d workers on %s (SO_REUSEPORT), %d onnxruntime threads each",
            self.n,
            address,
            self.threads,
        )
        metrics = None
        if self.metrics_dir:
            self.metrics_dir.mkdir()
            from zh_rnn_encoder.transport.metrics_server import context_for
            from zh_rnn_encoder.transport.prometheus import serve_workers

            tls = context_for(self.cfg)  # the server's certificate, as one process's metrics
            metrics = serve_workers(
                str(self.metrics_dir), self.cfg.metrics_listen, self.serving, tls
            )
            log.info("metrics of every worker on port %d /metrics", metrics.server_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        forwarder = asyncio.ensure_future(self._forward_reloads())
        keepers = [asyncio.ensure_future(self._keep(i, address)) for i in range(self.n)]
        asyncio.ensure_future(self._announce(port, http_port))
        done = asyncio.ensure_future(asyncio.gather(*keepers))
        either: set[asyncio.Future[Any]] = {done, asyncio.ensure_future(stop.wait())}
        await asyncio.wait(either, return_when="FIRST_COMPLETED")
        if not self.stopping:
            log.info("signal received: draining %d workers", self.n)
            self._stop_all()
        codes = await done
        forwarder.cancel()
        sock.close()
        if http_sock:
            http_sock.close()
        if metrics:
            metrics.shutdown()
        shutil.rmtree(self._dir, ignore_errors=True)
        log.info("stopped (workers exited %s)", codes)
        return max(codes)

    async def _announce(self, port: int, http_port: int | None) -> None:
        """Port file and ready file once every worker serves: a reader then finds them all up."""
        while not all(r.exists() for r in self.ready):
            if self.stopping:
                return
            await asyncio.sleep(0.05)
        log.info("all %d workers serving", self.n)
        for f in (self.cfg.port_file, self.cfg.ready_file):
            if f:
                write_port_file(f, port)
        if http_port and self.cfg.http_port_file:
            write_port_file(self.cfg.http_port_file, http_port)

    def serving(self) -> bool:
        """Whether every slot has a live worker that serves: its ready file is written once it
        serves and removed the moment the parent learns that it exited (metrics thread)."""
        return not self.stopping and all(r.exists() for r in self.ready)

    def _reload(self) -> None:
        """SIGHUP: every worker reloads its bundles, each on its own (reload.py)."""
        if self.stopping:
            return
        log.info("SIGHUP: asking %d workers to reload their bundles", self.n)
        self.reload_due = [True] * self.n
        self._pass_reloads()

    def _pass_reloads(self) -> None:
        for i, p in enumerate(self.procs):
            if self.reload_due[i] and p and p.returncode is None and self.ready[i].exists():
                p.send_signal(signal.SIGHUP)
                self.reload_due[i] = False

    async def _forward_reloads(self) -> None:
        """A reload due to a worker that was still starting, once it serves."""
        while not self.stopping:
            await asyncio.sleep(0.05)
            if any(self.reload_due):
                self._pass_reloads()

    def _stop_all(self) -> None:
        self.stopping = True
        for p in self.procs:
            if p and p.returncode is None:
                p.send_signal(signal.SIGTERM)

    async def _keep(self, i: int, address: str) -> int:
        """Runs worker ``i``; restarts it after a crash with a backoff until stopping."""
        backoff = BACKOFF_S
        while True:
            started = time.monotonic()
            self.ready[i].unlink(missing_ok=True)
            self.reload_due[i] = False  # a new worker reads every bundle as it is now
            p = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "zh_rnn_encoder.transport.app",
                *worker_argv(
                    self.argv,
                    address,
                    self.threads,
                    self.ready[i],
                    self.metrics_dir,
                    self.http_address,
                ),
                env={**os.environ, "ENCODER_WORKER": str(i)},
            )
            self.procs[i] = p
            log.info("worker %d started (pid %d)", i, p.pid)
            code = await p.wait()
            self.ready[i].unlink(missing_ok=True)  # encoder_ready 0 until a replacement serves
            if self.metrics_dir:  # its live gauges (ready, queued) no longer count
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(p.pid, str(self.metrics_dir))
            if self.stopping:
                return code
            if code == 2:  # refused to serve (bundle, settings): restarting cannot help
                log.error("worker %d refused to serve; stopping every worker", i)
                self._stop_all()
                return code
            if time.monotonic() - started > STABLE_S:
                backoff = BACKOFF_S
            log.warning(
                "worker %d (pid %d) exited %d; restarting in %.0fs", i, p.pid, code, backoff
            )
            await asyncio.sleep(backoff)
            if self.stopping:
                return code
            backoff = min(backoff * 2, MAX_BACKOFF_S)
