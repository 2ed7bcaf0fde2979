"""Nothing listens or connects where the user did not ask: every socket of a local encoder-bulk
run, of the Spark recipe's local session and of encoder-serve (its defaults, and loopback flags
with --workers 2) is on 127.0.0.0/8 or ::1, in the whole process tree, polled while it runs."""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.support.harness import ServerProcess, bulk, finish, free_port, wait_health
from tests.support.samples import SMALL, TUTORIAL
from zh_rnn_encoder.client import EncoderClient


def plain(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address, an IPv4-mapped IPv6 one (::ffff:127.0.0.1, dual-stack sockets) as IPv4."""
    a = ipaddress.ip_address(ip.split("%")[0])
    return a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1 (::ffff:127.x too); the wildcards 0.0.0.0 and :: are not."""
    return plain(ip).is_loopback


class Sockets:
    """Polls the inet sockets (TCP and UDP) of a process and all its descendants, in a thread,
    until stopped: ``seen`` holds (process name, status, local, remote) for every one found."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.root, self.every = psutil.Process(pid), every
        self.seen: set[tuple[str, str, str, str]] = set()
        self.names: set[str] = set()
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.every)

    def poll(self) -> None:
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in tree:
            try:
                name, conns = p.name(), p.net_connections(kind="inet")
            except psutil.Error:  # it ended meanwhile
                continue
            self.names.add(name)
            for c in conns:
                if not c.laddr or (c.laddr.port == 0 and not c.raddr):
                    continue  # created, never bound
                remote = f"{plain(c.raddr.ip)}:{c.raddr.port}" if c.raddr else ""
                self.seen.add((name, c.status, f"{plain(c.laddr.ip)}:{c.laddr.port}", remote))
        self.polls += 1

    def stop(self) -> Sockets:
        self._stop.set()
        self._thread.join(10)
        return self

    def listening(self) -> set[tuple[str, str]]:
        return {(n, local) for n, status, local, _ in self.seen if status == psutil.CONN_LISTEN}

    def off_loopback(self) -> list[tuple[str, str, str, str]]:
        def bad(address: str) -> bool:
            return bool(address) and not is_loopback(address.rsplit(":", 1)[0])

        return sorted(s for s in self.seen if bad(s[2]) or bad(s[3]))


def test_the_check_sees_a_wildcard_listener_two_processes_down() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2", "fe80::1"]))
    child = (
        "import socket, sys, time; s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); time.sleep(60)"
    )
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    p = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        sockets = Sockets(p.pid)
        time.sleep(0.3)
        sockets.stop()
        assert [(s[1], s[2]) for s in sockets.off_loopback()] == [("LISTEN", f"0.0.0.0:{port}")]
    finally:
        for c in psutil.Process(p.pid).children(recursive=True):
            c.kill()
        p.kill()
        p.wait(10)


def assert_loopback_only(sockets: Sockets, listeners: set[str]) -> None:
    """No socket off loopback, and the check saw what it checks: ``listeners`` listening, more
    than once."""
    assert sockets.polls >= 3, sockets.polls
    assert listeners <= {n for n, _ in sockets.listening()}, (sockets.names, sockets.seen)
    assert any(s[1] == psutil.CONN_ESTABLISHED for s in sockets.seen), sockets.seen
    assert not sockets.off_loopback(), sockets.off_loopback()


@pytest.fixture(scope="module")
def bundle(bundle_factory) -> Path:
    return bundle_factory(cell="gru", **SMALL)[0]


def test_a_local_bulk_run_stays_on_loopback(bundle, tmp_path) -> None:
    text = "\n".join(f"{TUTORIAL}{i}" for i in range(600)) + "\n"
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    p = bulk(bundle, tmp_path / "in.txt", tmp_path / "out", "--batch-size", "50")
    sockets = Sockets(p.pid)
    try:
        s = finish(p)
    finally:
        sockets.stop()
    assert s["rows"] == 600
    # the GCS, the raylet (node and object manager), the driver's and workers' gRPC servers
    assert_loopback_only(sockets, {"gcs_server", "raylet"})
    assert len(sockets.listening()) >= 4, sockets.listening()


SPARK_JOB = """
import sys
from zh_rnn_encoder.bulk.spark import encode_udf, local_session
spark = local_session(1)
spark.sparkContext.setLogLevel("ERROR")
df = spark.createDataFrame([(i, f"{sys.argv[2]}{i}") for i in range(60)], ["id", "text"])
rows = df.withColumn("vector", encode_udf(sys.argv[1], 20)("text")).collect()
print(len(rows), len(rows[0]["vector"]))
spark.stop()
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a JRE (java)")
def test_the_spark_recipe_stays_on_loopback(bundle) -> None:
    cmd = [sys.executable, "-c", SPARK_JOB, str(bundle), TUTORIAL]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sockets = Sockets(p.pid)
    try:
        out, err = p.communicate(timeout=300)
    finally:
        sockets.stop()
    assert p.returncode == 0, err[-3000:]
    assert out.split() == ["60", "24"]
    # the driver's RPC and block manager (java), and the Python worker daemon
    assert_loopback_only(sockets, {"java", "python"})


def test_encoder_serve_with_its_defaults_stays_on_loopback(bundle, jieba_cache) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 50051)) == 0:
            pytest.skip("127.0.0.1:50051, encoder-serve's default port, is taken here")
    proc = ServerProcess(
        "--bundle", str(bundle), "--jieba-cache-dir", str(jieba_cache), "--grace-period-s", "5"
    )  # fmt: skip
    sockets = Sockets(proc.proc.pid)
    try:
        assert proc.port() == 50051
        wait_health("127.0.0.1:50051", "SERVING")
        with EncoderClient("127.0.0.1:50051") as c:
            c.encode([TUTORIAL])
            for _ in range(3):  # while the connection is open, and so never fewer than 3 polls
                sockets.poll()
    finally:
        sockets.stop()
        proc.proc.send_signal(signal.SIGTERM)  # the workers stop with the parent
        assert proc.wait(30) == 0, proc.log
    assert {local for _, local in sockets.listening()} == {"127.0.0.1:50051"}, sockets.seen
    assert_loopback_only(sockets, set())


def test_encoder_serve_workers_http_and_metrics_stay_on_loopback(bundle, jieba_cache, tmp_path):
    mport = free_port()
    http_port_file = tmp_path / "http-port"
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--workers", "2",
        "--jieba-cache-dir", str(jieba_cache), "--metrics-listen", f"127.0.0.1:{mport}",
        "--http-listen", "127.0.0.1:0", "--http-port-file", str(http_port_file),
        "--grace-period-s", "5",
    )  # fmt: skip
    sockets = Sockets(proc.proc.pid)
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        http = f"http://127.0.0.1:{int(http_port_file.read_text())}/v1/embeddings"
        body = json.dumps({"model": "encoder", "input": TUTORIAL}).encode()
        with EncoderClient(target) as c:
            for _ in range(4):
                c.encode([TUTORIAL])
                urllib.request.urlopen(urllib.request.Request(http, body), timeout=30).read()
                urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read()
            for _ in range(3):  # while the connections are open: never fewer than 3 polls
                sockets.poll()
    finally:
        sockets.stop()
        proc.proc.send_signal(signal.SIGTERM)  # the workers stop with the parent
        assert proc.wait(30) == 0, proc.log
    ports = {local.rsplit(":", 1)[1] for _, local in sockets.listening()}
    assert {target.rsplit(":", 1)[1], str(mport)} <= ports, sockets.seen
    assert_loopback_only(sockets, set())
