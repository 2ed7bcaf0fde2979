"""Real servers for tests, in process (a thread with its own event loop) or as a subprocess; their
metrics endpoint; encoder-bulk runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import fields
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import ROOT
from zh_rnn_encoder.client import wait_until_serving
from zh_rnn_encoder.runtime.types import RuntimeConfig
from zh_rnn_encoder.transport.app import App, build_server
from zh_rnn_encoder.transport.config import ServerConfig

BIN = Path(sys.executable).parent
# Makes `import torch` fail in the child: serving must never need it.
NO_TORCH = (
    "import sys; sys.modules['torch'] = None; "
    "from zh_rnn_encoder.transport.app import main; sys.exit(main(sys.argv[1:]))"
)


class InProcessServer:
    """build_server() on 127.0.0.1:0 in a background event loop; load() runs the self-test.
    ``overrides`` name fields of ServerConfig or of its RuntimeConfig (``limits=``...)."""

    def __init__(self, bundle: Path, jieba_cache: Path, **overrides: object) -> None:
        runtime = {
            f.name: overrides.pop(f.name) for f in fields(RuntimeConfig) if f.name in overrides
        }
        self.cfg = ServerConfig(
            bundle=bundle,
            listen="127.0.0.1:0",
            runtime=RuntimeConfig(**{"threads": 1, "jieba_cache_dir": jieba_cache, **runtime}),
            grace_period_s=5.0,
            **overrides,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app: App = self.call(build_server(self.cfg))
        self.call(self.app.start())
        self.port = self.app.port
        self.target = f"127.0.0.1:{self.port}"
        self.http_url = f"http://127.0.0.1:{self.app.http_port}" if self.app.http_port else None

    def call(self, coro: object, timeout: float = 120) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def load(self) -> InProcessServer:
        self.call(self.app.load())
        return self

    def stop(self) -> None:
        self.call(self.app.drain(grace=1.0, admit_s=0.01))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def free_port() -> int:
    """A loopback port free now, for a flag that needs a number (e.g. --metrics-listen)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(target: str, service: str = "", timeout: float = 5) -> str:
    with grpc.insecure_channel(target) as ch:
        r = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


def wait_health(target: str, want: str, timeout: float = 60, **client: object) -> float:
    """Seconds until the health check says ``want``; raises TimeoutError otherwise."""
    return wait_until_serving(target, timeout, want, **client)


def _limit_files(n: int) -> None:
    """In the child before exec: its open-files limit, soft and hard (what `ulimit -n` sets)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


class ServerProcess:
    """encoder-serve in a child process where importing torch fails; stderr collected.

    The server writes its bound port to a --port-file (PORT_FILE) that this class chooses.
    """

    def __init__(
        self,
        *args: str,
        env: dict | None = None,
        no_torch: bool = True,
        cpus: set[int] | None = None,
        python: str = sys.executable,
        nofile: int | None = None,
    ) -> None:
        cmd = (
            [python, "-c", NO_TORCH] if no_torch else [python, "-m", "zh_rnn_encoder.transport.app"]
        )
        if cpus:  # pinned before it starts, so its thread counts see only these CPUs
            cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
        self.port_file = Path(tempfile.mkdtemp(prefix="encoder-port-")) / "port"
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PORT_FILE": str(self.port_file),
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [*cmd, *args],
            cwd=ROOT,
            env=full_env,
            text=True,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            # its own process group, so that kill() takes its workers and log relay with it
            start_new_session=True,
            preexec_fn=None if nofile is None else functools.partial(_limit_files, nofile),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def port(self, timeout: float = 60) -> int:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.port_file.is_file():
                return int(self.port_file.read_text())
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log}")
            time.sleep(0.01)
        raise TimeoutError(f"no port file after {timeout}s:\n{self.log}")

    def wait(self, timeout: float = 60) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        """SIGKILL to the server and every process it started (workers, the log relay)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def scrape(port: int) -> dict[str, float]:
    """The samples of a Prometheus endpoint on 127.0.0.1:``port``, by name with labels."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def bulk(bundle: Path, inp: Path, out: Path, *extra: str, **popen) -> subprocess.Popen:
    """encoder-bulk started in a child process, its output piped; finish() waits for it."""
    cmd = [BIN / "encoder-bulk", "--bundle", bundle, "--input", inp, "--output", out, *extra]
    return subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)  # fmt: skip


def finish(p: subprocess.Popen) -> dict:
    """The summary line of a bulk run that must succeed."""
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])
