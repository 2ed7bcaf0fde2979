"""The HTTP front's bounds on real sockets: oversized heads (414, 431), slow heads and bodies (408),
idle keep-alive, the connection cap, the metrics port's TLS; and the stress probes, small."""

from __future__ import annotations

import contextlib
import functools
import logging
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import trustme

from tests.support.harness import InProcessServer, ServerProcess, free_port, health
from tests.support.samples import SMALL
from tools import stress

SCALE = stress.Scale(32, 2.0, 32, 4, 1, 6, 2_000, flood_seconds=1.0, idle_connections=1_100)


@pytest.fixture(scope="module")
def bundle(bundle_factory) -> Path:
    return bundle_factory(cell="gru", **SMALL)[0]


@pytest.fixture(scope="module")
def served(bundle, jieba_cache):
    srv = InProcessServer(
        bundle, jieba_cache, http_listen="127.0.0.1:0", http_header_timeout_s=0.5,
        http_body_timeout_s=0.5, http_keep_alive_s=0.5, http_max_connections=6,
    ).load()  # fmt: skip
    yield srv, srv.app.http_port
    srv.stop()


def _exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[bytes, bool]:
    """Sends ``data``, reads until the server closes; (what it answered, closed within wait)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as c:
        with contextlib.suppress(OSError):  # closed while we sent: the answer is still there
            c.sendall(data)
        out = b""
        try:
            while chunk := c.recv(65536):
                out += chunk
        except TimeoutError:
            return out, False
        except OSError:  # reset after the answer
            pass
        return out, True


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


GET = b"GET /health HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    "head, status, names",
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, b"http_max_request_line_bytes"),
        (GET + b"X-A: b\r\n" * 101 + b"\r\n", 431, b"http_max_headers"),
        (GET + b"X-A: " + b"b" * 40_000 + b"\r\n\r\n", 431, b"http_max_header_bytes"),
        (GET + b"X-A: b\r\n" * 99 + b"\r\n", 200, b'"ok"'),
        (GET + b"No colon here\r\n\r\n", 400, b"invalid HTTP request"),
    ],
)
def test_heads_over_a_limit_get_their_status_and_close(served, head, status, names) -> None:
    _, port = served
    answer, closed = _exchange(port, head, wait=3)
    assert _status(answer) == status and names in answer, answer[:300]
    if status != 200:
        assert closed and b"connection: close" in answer


def test_endless_head_is_cut_short(served) -> None:
    """Header lines without end: 431 after about the limit, not after the client gives up."""
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(GET)
        sent = 0
        with pytest.raises(OSError):  # reset or broken pipe once the server has answered
            for _ in range(1 << 14):
                c.sendall(b"X-Flood: " + b"a" * 1000 + b"\r\n")
                sent += 1011
        assert sent < 16 << 20  # the rest of the GB never left: the server had closed
        try:
            answer = c.recv(64)
        except OSError:  # the answer lost to the reset: the kernel's choice, not the server's
            answer = b"HTTP/1.1 431"
        assert _status(answer) == 431, answer


def test_slow_head_and_body_get_408_and_close(served) -> None:
    _, port = served
    answer, closed = _exchange(port, GET, wait=3)  # the head never ends
    assert _status(answer) == 408 and b"http_header_timeout_s" in answer and closed
    post = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    answer, closed = _exchange(port, post, wait=3)
    assert _status(answer) == 408 and b"http_body_timeout_s" in answer and closed
    answer, closed = _exchange(port, b"", wait=3)  # nothing at all: closed without a word
    assert answer == b"" and closed


def test_idle_keep_alive_connection_is_closed(served) -> None:
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
        c.sendall(GET + b"\r\n")
        t0 = time.monotonic()
        answer = b""
        while chunk := c.recv(65536):  # until the server closes it
            answer += chunk
        assert _status(answer) == 200 and answer.endswith(b'{"status":"ok"}')
        assert 0.3 < time.monotonic() - t0 < 2.5


def test_connections_beyond_the_cap_are_reset_quietly(served, caplog) -> None:
    srv, port = served
    with caplog.at_level(logging.DEBUG, logger="encoder"):
        conns, reset_at_connect = [], 0
        for _ in range(10):
            try:
                conns.append(socket.create_connection(("127.0.0.1", port), timeout=3))
            except ConnectionResetError:  # reset before connect() returned: refused all the same
                reset_at_connect += 1
        for c in conns:
            c.setblocking(False)
        t0, reset = time.monotonic(), reset_at_connect
        while reset < 4 and time.monotonic() - t0 < 5:  # until the server has accepted all
            time.sleep(0.05)
            reset = reset_at_connect + sum(_was_reset(c) for c in conns)
        assert reset == 4, reset  # the other six are open
        assert health(srv.target) == "SERVING"  # gRPC accepts meanwhile
        for c in conns:
            c.close()
        time.sleep(0.2)
        answer, _ = _exchange(port, GET + b"Connection: close\r\n\r\n")
        assert _status(answer) == 200  # room again once they are gone
    warnings = [r for r in caplog.records if "the cap" in r.getMessage()]
    assert len(warnings) <= 1, warnings  # four refusals, at most one line


def test_soft_limit_is_raised_to_the_hard_one() -> None:
    code = (
        "import resource; from zh_rnn_encoder.transport.fdlimit import raise_soft_limit; "
        "print(raise_soft_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    limit = functools.partial(resource.setrlimit, resource.RLIMIT_NOFILE, (512, 1024))
    out = subprocess.run([sys.executable, "-c", code], preexec_fn=limit,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.split() == ["1024", "1024"]


def _was_reset(c: socket.socket) -> bool:
    """Reset by the server (reported once; an end of stream after that)."""
    try:
        return c.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True
    except OSError:  # nothing to read yet: open
        return False


# --- the metrics port: one thread, TLS with the server's certificate -------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("metrics-pki")
    ca, client_ca = trustme.CA(), trustme.CA()
    server, client = ca.issue_cert("127.0.0.1"), client_ca.issue_cert("prometheus@example.com")
    blobs = {"ca": ca.cert_pem, "cert": server.cert_chain_pems[0], "key": server.private_key_pem,
             "client_ca": client_ca.cert_pem, "client_cert": client.cert_chain_pems[0],
             "client_key": client.private_key_pem}  # fmt: skip
    out = {k: d / f"{k}.pem" for k in blobs}
    for k, blob in blobs.items():
        blob.write_to_path(str(out[k]))
    return out


def _scrape(url: str, ctx: ssl.SSLContext | None = None) -> int:
    try:
        return urllib.request.urlopen(url, timeout=5, context=ctx).status
    except urllib.error.HTTPError as e:
        return e.code


def test_metrics_port_speaks_the_servers_tls(bundle, jieba_cache, pki) -> None:
    tls = {"tls_cert": pki["cert"], "tls_key": pki["key"]}
    srv = InProcessServer(bundle, jieba_cache, metrics_listen="127.0.0.1:0", **tls)
    try:
        port = srv.app.metrics_port
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        assert _scrape(f"https://127.0.0.1:{port}/metrics", ctx) == 200
        assert _scrape(f"https://127.0.0.1:{port}/other", ctx) == 404
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _scrape(f"http://127.0.0.1:{port}/metrics")  # plaintext is refused
        with pytest.raises(urllib.error.URLError):  # a client that does not trust its CA
            _scrape(f"https://127.0.0.1:{port}/metrics", ssl.create_default_context())
    finally:
        srv.stop()
    srv = InProcessServer(bundle, jieba_cache, metrics_listen="127.0.0.1:0", metrics_tls=False,
                          **tls)  # fmt: skip
    try:
        assert _scrape(f"http://127.0.0.1:{srv.app.metrics_port}/metrics") == 200
    finally:
        srv.stop()


def test_metrics_port_mutual_tls(bundle, jieba_cache, pki) -> None:
    srv = InProcessServer(bundle, jieba_cache, metrics_listen="127.0.0.1:0", tls_cert=pki["cert"],
                          tls_key=pki["key"], tls_client_ca=pki["client_ca"])  # fmt: skip
    try:
        url = f"https://127.0.0.1:{srv.app.metrics_port}/metrics"
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            _scrape(url, ctx)  # no client certificate
        ctx.load_cert_chain(pki["client_cert"], pki["client_key"])
        assert _scrape(url, ctx) == 200
    finally:
        srv.stop()


def test_the_supervisors_metrics_port_speaks_tls_too(bundle, jieba_cache, pki) -> None:
    """--workers: the parent serves every worker's metrics, on the same terms as one process."""
    mport = free_port()
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--workers", "2",
        "--jieba-cache-dir", str(jieba_cache), "--metrics-listen", f"127.0.0.1:{mport}",
        "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"]),
    )  # fmt: skip
    try:
        proc.port()  # written once every worker serves
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        assert _scrape(f"https://127.0.0.1:{mport}/metrics", ctx) == 200
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _scrape(f"http://127.0.0.1:{mport}/metrics")  # plaintext is refused
    finally:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.log


# --- the stress probes, small: what they prove about correctness ------------------------------


def test_header_flood_is_refused_431(bundle, jieba_cache) -> None:
    r = stress.probe_header_flood(bundle, jieba_cache, SCALE)
    assert r.measured["statuses"] == {"431": 1}, r.measured
    assert r.measured["sent_mb_per_connection_max"] < 16 and r.measured["error_lines"] == 0


def test_url_flood_is_refused_414(bundle, jieba_cache) -> None:
    r = stress.probe_url_flood(bundle, jieba_cache, SCALE)
    assert set(r.measured["statuses"]) == {"414"}, r.measured
    assert r.measured["error_lines"] == 0


def test_idle_connections_past_the_file_limit_leave_grpc_answering(bundle, jieba_cache) -> None:
    r = stress.probe_idle_connections(bundle, jieba_cache, SCALE)
    m = r.measured
    assert m["grpc_ok"] == m["grpc_calls"] and m["http_connections_refused"] > 0, m
    assert m["error_lines"] == 0 and m["threads_during"] <= m["threads_before"] + 4, m
