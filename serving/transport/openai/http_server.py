"""The HTTP listener for the OpenAI-compatible API: OpenAIApi as a plain ASGI app under uvicorn
(httptools), in the event loop that runs gRPC, so both share one Encoder and batcher.

uvicorn was chosen over aiohttp by measurement (docs/protocols.md; `make bench` runs the
runner-up, bench/http_aiohttp.py, beside it). Its accept loop is a capped Listener and its
protocol a BoundedProtocol (limits and timeouts). It is imported only when --http-listen is set
(the `http` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

import uvicorn

from zh_rnn_encoder.transport.config import ServerConfig
from zh_rnn_encoder.transport.fdlimit import connection_cap, soft_limit
from zh_rnn_encoder.transport.listener import Listener
from zh_rnn_encoder.transport.openai.api import OpenAIApi
from zh_rnn_encoder.transport.openai.convert import Reply
from zh_rnn_encoder.transport.openai.http_protocol import BoundedProtocol, HttpLimits

log = logging.getLogger("encoder")

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
    def __init__(self, config: uvicorn.Config, limits: HttpLimits) -> None:
        super().__init__(config)
        self.limits = limits
        self.listener: Listener | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """The encoder's SIGTERM drain stays in charge: uvicorn installs no signal handlers."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup for the one socket HttpServer passes, with its accept loop replaced by
        a capped Listener and each connection served by a BoundedProtocol."""
        assert sockets, "HttpServer passes its bound socket"
        await self.lifespan.startup()
        config, limits, state = self.config, self.limits, self.server_state

        def protocol(release: Callable[[], None]) -> BoundedProtocol:
            return BoundedProtocol(config, state, self.lifespan.state, limits, release)

        self.listener = Listener(
            sockets[0],
            protocol,
            limits.max_connections,
            "HTTP port",
            tls=config.ssl,
            handshake_s=limits.header_timeout_s,
            backlog=config.backlog,
        )
        # uvicorn's shutdown calls close() and wait_closed(), which Listener has
        self.servers = [self.listener]  # type: ignore[list-item]
        self.started = True


class HttpServer:
    """start() listens, stop() drains; TLS and mutual TLS like the gRPC port's."""

    def __init__(
        self,
        api: OpenAIApi,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_client_ca: Path | None = None,
        limits: HttpLimits | None = None,
        fd_reserve: int = ServerConfig.fd_reserve,
    ) -> None:
        self.api = api
        self.app: Callable[[Scope, Receive, Send], Awaitable[None]] = self.asgi  # tracing wraps it
        self.limits = limits or HttpLimits.of(ServerConfig)
        self.fd_reserve = fd_reserve
        self.max_connections = 0  # the cap in force, once started
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
        limits = self.limits
        cap = connection_cap(limits.max_connections, self.fd_reserve)
        if cap < limits.max_connections:
            log.warning(
                "the open-files limit (%d) leaves room for %d HTTP connections, fewer than "
                "--http-max-connections %d, with --fd-reserve %d kept free for gRPC and files; "
                "raise the hard limit (ulimit -Hn, LimitNOFILE) for more",
                soft_limit(), cap, limits.max_connections, self.fd_reserve,
            )  # fmt: skip
        self.max_connections = cap
        config = uvicorn.Config(
            self.app,
            interface="asgi3",
            http=BoundedProtocol,
            ws="none",
            lifespan="off",
            # uvicorn annotates it int; it is a timeout (loop.call_later), and a float one works
            timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
            access_log=False,
            proxy_headers=False,
            server_header=False,
            log_level="warning",
            log_config=None,  # uvicorn's loggers go through the server's handler (logs.py)
            **self._tls,
        )
        self._server = _Server(config, replace(limits, max_connections=cap))
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
                if msg["type"] == "http.disconnect":  # gone, or refused by a timeout
                    return
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
