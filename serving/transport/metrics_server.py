"""The metrics port: GET /metrics in prometheus_client's exposition, from one thread running its own
event loop, so an idle connection costs a few kB instead of a thread (ThreadingHTTPServer's: 500
idle connections made 514 threads). A capped Listener accepts; each request has a deadline; TLS
and mutual TLS with the server's certificate when asked for."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from zh_rnn_encoder.transport.config import ServerConfig
from zh_rnn_encoder.transport.listener import Listener

# Connections open at once and the seconds each may take. Part of --fd-reserve: a scraper needs
# one, and a scrape (head, body written) takes milliseconds.
MAX_CONNECTIONS = 64
TIMEOUT_S = 10.0
_MAX_HEAD = 8192  # request line and headers; beyond it the connection is dropped


def context_for(cfg: ServerConfig) -> ssl.SSLContext | None:
    """The metrics port's TLS: the server's own certificate (--tls-cert, --tls-key, and
    --tls-client-ca for mutual TLS) unless --metrics-tls off; None without --tls-*."""
    if not (cfg.metrics_tls and cfg.tls_cert and cfg.tls_key):
        return None
    return server_context(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca)


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """TLS 1.2 or later with ``cert`` and ``key``; with ``client_ca``, client certificates it
    signed are required (mutual TLS), as on the gRPC and HTTP ports."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Connection(asyncio.StreamReaderProtocol):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        release: Callable[[], None],
    ) -> None:
        super().__init__(reader, serve)
        self._release = release

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._release()


class MetricsServer:
    """Serves ``registry`` on host:port (port 0: a free one) from a daemon thread;
    ``server_port``, ``shutdown()`` and ``server_close()`` as ThreadingHTTPServer has them."""

    def __init__(
        self, registry: CollectorRegistry, listen: str, tls: ssl.SSLContext | None = None
    ) -> None:
        self.registry, self.tls = registry, tls
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, int(port)))  # here, so that a taken port fails the caller
        self.server_port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="metrics", daemon=True
        )
        self._thread.start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def listen() -> Listener:
            return Listener(self._sock, self._connection, MAX_CONNECTIONS, "metrics port",
                            tls=self.tls, handshake_s=TIMEOUT_S, backlog=128)  # fmt: skip

        listener = self._loop.run_until_complete(listen())
        started.set()
        self._loop.run_forever()
        listener.close()
        pending = asyncio.all_tasks(self._loop)
        for t in pending:
            t.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def _connection(self, release: Callable[[], None]) -> _Connection:
        reader = asyncio.StreamReader(limit=_MAX_HEAD)
        return _Connection(reader, self._serve, release)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
            writer.write(self._answer(head))
            await asyncio.wait_for(writer.drain(), TIMEOUT_S)
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            ssl.SSLError,
        ):  # what a client does wrong is not worth a log line
            writer.transport.abort()
            return
        writer.close()

    def _answer(self, head: bytes) -> bytes:
        method, target = ([*head.split(b"\r\n", 1)[0].split(b" "), b"", b""])[:2]
        if method not in (b"GET", b"HEAD"):
            status, ctype, body = b"405 Method Not Allowed", b"text/plain", b"GET /metrics only\n"
        elif target.split(b"?", 1)[0] != b"/metrics":
            status, ctype = b"404 Not Found", b"text/plain"
            body = b"only /metrics is served here\n"
        else:
            status, ctype = b"200 OK", CONTENT_TYPE_LATEST.encode()
            body = generate_latest(self.registry)
        head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        return head % (status, ctype, len(body)) + (b"" if method == b"HEAD" else body)

    def shutdown(self) -> None:
        """Stops serving; returns once the thread has ended."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def server_close(self) -> None:
        self._sock.close()
