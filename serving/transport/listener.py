"""An accept loop with a cap on open connections, for the HTTP and metrics ports: beyond the cap a
new connection is reset at accept, before any TLS handshake or parsing, and counted, not logged.

asyncio's own loop (loop.create_server) cannot do this: it accepts whatever arrives, starts a TLS
handshake for each, and logs an ERROR with a traceback for every accept that fails for want of
file handles (tens of MB of log a second when they run out)."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import struct
from collections.abc import Callable

from zh_rnn_encoder.transport.fdlimit import Every

# ``factory(release)`` makes a connection's protocol; the protocol calls ``release()`` once the
# connection is gone (the listener calls it too where no protocol ever saw it: a failed handshake).
Factory = Callable[[Callable[[], None]], asyncio.BaseProtocol]
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST and keeps no TIME_WAIT
_ACCEPTS_PER_WAKE = 64  # then the event loop's other work (gRPC, health) gets its turn


class Listener:
    """Accepts on a bound socket while fewer than ``cap`` connections are open.

    ``close()`` and ``wait_closed()`` as asyncio.Server has them, so uvicorn can shut it down."""

    def __init__(
        self,
        sock: socket.socket,
        factory: Factory,
        cap: int,
        name: str,
        tls: ssl.SSLContext | None = None,
        handshake_s: float = 10.0,
        backlog: int = 2048,
    ) -> None:
        self.sock, self.factory, self.cap, self.name = sock, factory, cap, name
        self.tls, self.handshake_s = tls, handshake_s
        self.open = 0  # connections accepted and not yet closed (handshakes included)
        self.refused = 0
        self._warn = Every()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        sock.listen(backlog)
        self._loop.add_reader(sock.fileno(), self._accept)
        self._reading, self._closed = True, False

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _OUT_OF_FILES:  # the connection stays queued in the kernel
                    self._warn.warn("%s: cannot accept: %s; retrying in 1 s", self.name, e)
                    self._pause(1.0)
                    return
                continue  # e.g. ECONNABORTED: the client gave up while queued
            if self.open >= self.cap:
                self.refused += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                conn.close()
                self._warn.warn(
                    "%s: %d connections open, the cap; new ones are reset", self.name, self.cap
                )
                continue
            self.open += 1
            task = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1

        conn.setblocking(False)
        try:
            await self._loop.connect_accepted_socket(
                lambda: self.factory(release),
                conn,
                ssl=self.tls,
                ssl_handshake_timeout=self.handshake_s if self.tls else None,
            )
        except (TimeoutError, OSError, ssl.SSLError, asyncio.CancelledError):
            conn.close()  # a failed or unfinished handshake: the client's doing, not logged
            release()

    def _pause(self, seconds: float) -> None:
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False
            self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        if not self._reading and not self._closed:
            self._loop.add_reader(self.sock.fileno(), self._accept)
            self._reading = True

    def close(self) -> None:
        """Stops accepting (the socket stays open: its owner closes it); handshakes end."""
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
        self._reading, self._closed = False, True
        for t in self._tasks:
            t.cancel()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
