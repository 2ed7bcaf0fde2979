"""uvicorn's httptools protocol with the bounds it lacks: request-line size (414), header-block size
and header count (431), header and body read timeouts (408), each refusal closing the connection;
and what a client gets wrong logged at DEBUG, not WARNING.

Stock uvicorn with httptools bounds none of these: one connection sending header lines without end
took the server from 150 MB to 1.2 GB, and an endless request line made health 99x slower (its
URL is grown by `+=`, a copy per packet). Why httptools and not h11: docs/protocols.md."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from zh_rnn_encoder.transport.config import ServerConfig

log = logging.getLogger("encoder")

# Where the current request is: before its first byte, in its head, in its body, in the app.
_IDLE, _HEAD, _BODY, _APP = range(4)
# After a refusal the server keeps reading (and dropping) what the client still sends, up to
# this much for this long, so that the client reads the status instead of a reset.
_LINGER_BYTES = 1 << 18
_LINGER_S = 1.0


@dataclass(frozen=True)
class HttpLimits:
    """The HTTP port's bounds: ServerConfig's http_* fields (see config.py for each)."""

    max_connections: int
    max_request_line_bytes: int
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    keep_alive_s: float

    @classmethod
    def of(cls, cfg: ServerConfig | type[ServerConfig]) -> HttpLimits:
        """From a config's http_* fields; from the class itself, their defaults."""
        return cls(**{f.name: getattr(cfg, "http_" + f.name) for f in fields(cls)})


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; data_received answers with its status."""

    def __init__(self, status: int, message: str, flag: str) -> None:
        super().__init__(status, message, flag)


class BoundedProtocol(HttpToolsProtocol):
    """One connection of the HTTP port. ``release`` is called once when it closes (the
    Listener's count of open connections)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        limits: HttpLimits,
        release: Callable[[], None],
    ) -> None:
        super().__init__(config, server_state, app_state)
        self.limits, self._release = limits, release
        self._phase = _IDLE
        # Bytes received while the current request's head is incomplete: what bounds a header
        # line that never ends (the parser calls back only once a line is whole).
        self._head = 0
        # The current phase's deadline, watched by one timer that is re-armed lazily: a request
        # costs two loop.time() calls, not two timers made and cancelled.
        self._deadline = 0.0
        self._watching = False
        self._timer: asyncio.TimerHandle | None = None
        self._linger = -1  # bytes still to drop after a refusal; -1: none was sent

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s)  # a connection that sends nothing is closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)
        self._release()

    def data_received(self, data: bytes) -> None:
        if self._linger >= 0:
            self._linger -= len(data)
            if self._linger < 0:
                self.transport.abort()
            return
        self._unset_keepalive_if_required()
        if self._phase <= _HEAD:
            self._head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # no upgrade is served (ws="none")
            log.debug("HTTP: upgrade request ignored")
        except httptools.HttpParserError as e:
            why = e.__context__
            if isinstance(why, _Refused):
                self._refuse(*why.args)
            else:
                self._refuse(400, f"invalid HTTP request: {e}", None)
            return
        if self._phase <= _HEAD and self._head > self.limits.max_header_bytes:
            n = self.limits.max_header_bytes
            self._refuse(431, f"request head over {n} bytes", "http_max_header_bytes")

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD
        self._arm(self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > (n := self.limits.max_request_line_bytes):
            raise _Refused(414, f"request target over {n} bytes", "http_max_request_line_bytes")

    def on_headers_complete(self) -> None:
        # Checked once the head is whole, not per header line: a head over the limits spans
        # more packets than one (data_received cuts it there) or fits in one (256 KiB at most).
        limits = self.limits
        if len(self.headers) > (n := limits.max_headers):
            raise _Refused(431, f"more than {n} header fields", "http_max_headers")
        n = limits.max_header_bytes
        if self._head > n and len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers) > n:
            raise _Refused(431, f"request head over {n} bytes", "http_max_header_bytes")
        self._phase, self._head = _BODY, 0
        self._arm(limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase, self._head = _IDLE, 0
        self._disarm()  # the app runs; uvicorn's keep-alive timer starts once it has answered
        super().on_message_complete()

    def _unsupported_upgrade_warning(self) -> None:
        log.debug("HTTP: upgrade request ignored")  # uvicorn: a WARNING per request

    # timeouts and refusals

    def _arm(self, seconds: float) -> None:
        """The current phase must end within ``seconds``."""
        self._deadline, self._watching = self.loop.time() + seconds, True
        timer = self._timer
        if timer is None or timer.when() > self._deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(self._deadline, self._timed_out)

    def _disarm(self) -> None:
        self._watching = False  # the timer, if any, finds nothing to do

    def _cancel(self) -> None:
        self._watching = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if not self._watching:
            return
        if self.loop.time() < self._deadline:  # set for an earlier deadline: wait on
            self._timer = self.loop.call_at(self._deadline, self._timed_out)
        elif self._phase == _IDLE:  # nothing of a request came: nothing to answer
            self.transport.close()
        elif self._phase == _HEAD:
            s = self.limits.header_timeout_s
            self._refuse(408, f"request head not received within {s:g} s", "http_header_timeout_s")
        elif self._phase == _BODY:
            s = self.limits.body_timeout_s
            self._refuse(408, f"request body not received within {s:g} s", "http_body_timeout_s")

    def _refuse(self, status: int, message: str, flag: str | None) -> None:
        """Answers ``status`` with OpenAI's error JSON naming ``flag``, then closes."""
        log.debug("HTTP %d to %s: %s", status, self.client, message)
        self._cancel()
        cycle, in_body, self._phase = self.cycle, self._phase == _BODY, _APP
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app, if it runs, reads http.disconnect
            cycle.message_event.set()
        if in_body and cycle is not None and cycle.response_started:
            self.transport.close()  # it has its answer already (e.g. 413 on Content-Length)
            return
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": flag}
        body = json.dumps({"error": error}).encode()
        head = b"content-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
        self.transport.write(STATUS_LINE[status] + head % len(body) + body)
        self._linger = _LINGER_BYTES
        if not self.transport.can_write_eof():  # TLS: no half-close
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self._timer = self.loop.call_later(_LINGER_S, self.transport.abort)
