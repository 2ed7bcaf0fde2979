"""The HTTP listener for the OpenAI-compatible API: OpenAIApi as a plain ASGI app under uvicorn
(httptools), in the event loop that runs gRPC, so both share one Encoder and batcher.

uvicorn was chosen over aiohttp by measurement (docs/protocols.md; `make bench` runs the
runner-up, bench/http_aiohttp.py, beside it). It is imported only when --http-listen is set
(the `http` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import uvicorn

from zh_rnn_encoder.transport.openai.api import OpenAIApi
from zh_rnn_encoder.transport.openai.convert import Reply

# ASGI's scope, receive and send (asgiref's typing, loosely)
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Tls(TypedDict, total=False):
    """uvicorn.Config's TLS arguments."""

    ssl_certfile: str
    ssl_keyfile: str
    ssl_ca_certs: str
    ssl_cert_reqs: int


def bind(listen: str, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``listen`` (port 0: a free one), not yet listening."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. Without it a response written in two parts (headers,
    # body) waits for the client's delayed ACK: 44 ms per keep-alive request, measured.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, int(port)))
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """The encoder's SIGTERM drain stays in charge: uvicorn installs no signal handlers."""
        yield


class HttpServer:
    """start() listens, stop() drains; TLS and mutual TLS like the gRPC port's."""

    def __init__(
        self,
        api: OpenAIApi,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_client_ca: Path | None = None,
    ) -> None:
        self.api = api
        self._tls: _Tls = {}
        if tls_cert:
            self._tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
            if tls_client_ca:
                self._tls |= {
                    "ssl_ca_certs": str(tls_client_ca),
                    "ssl_cert_reqs": ssl.CERT_REQUIRED,
                }
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, listen: str, reuse_port: bool = False) -> int:
        """Listens on ``listen``; returns the bound port."""
        sock = bind(listen, reuse_port)
        config = uvicorn.Config(
            self.asgi,
            interface="asgi3",
            http="httptools",
            lifespan="off",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            log_level="warning",
            **self._tls,
        )
        self._server = _Server(config)
        self._task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():  # e.g. a TLS file it cannot read
                self._task.result()
                raise RuntimeError("the HTTP listener stopped while starting")
            await asyncio.sleep(0.005)
        return sock.getsockname()[1]

    async def stop(self, grace: float) -> None:
        """No new connections; requests in progress get ``grace`` seconds to finish."""
        if self._server is None or self._task is None:
            return
        # uvicorn annotates it int; it is a timeout (asyncio.wait_for), and a float one works
        self._server.config.timeout_graceful_shutdown = grace  # type: ignore[assignment]
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        api = self.api
        method, path = scope["method"], scope["path"]
        auth = length = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                auth = v.decode("latin-1")
            elif k == b"content-length":
                length = int(v) if v.isdigit() else None
        reply = api.on_headers(method, path, auth, length)
        if reply is None:
            chunks: list[bytes] = []
            size, more = 0, True
            while more:  # chunked bodies are capped too
                msg = await receive()
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > api.max_body_bytes:
                    reply = api.too_large(size)
                    break
                chunks.append(chunk)
                more = msg.get("more_body", False)
            else:
                reply = await api.handle(method, path, b"".join(chunks))
        await _send(send, reply)


async def _send(send: Send, reply: Reply) -> None:
    headers = [(b"content-length", str(len(reply.body)).encode())]  # not chunked
    headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
