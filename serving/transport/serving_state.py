"""The serving state every transport consults: the self-tested Encoder once loaded, readiness,
drain, and the served model's name (Served).

Draining (SIGTERM) has two moments. From the signal, calls still arriving for ADMIT_AFTER_SIGNAL_S
are served: they were sent before it, or so close to it that they were on their way. From then
on (``closed``), new calls are refused UNAVAILABLE on their headers, so clients retry elsewhere,
and streams stop reading: they answer what they read, then end UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from zh_rnn_encoder.core.errors import NotFound, NotReady
from zh_rnn_encoder.runtime.encoder import Encoder

# Long enough for every call sent before the signal to reach the server and its headers to be
# read, even on a loaded event loop; short against a rolling deploy's patience.
ADMIT_AFTER_SIGNAL_S = 0.5


class ServingState:
    """Set by the app's lifecycle; read by every servicer, which gets it in its constructor."""

    def __init__(self) -> None:
        self.encoder: Encoder | None = None
        self.drain_started: float | None = None
        self._closed: asyncio.Event | None = None

    @property
    def closed_event(self) -> asyncio.Event:
        """Set once draining stops admitting; streams wait on it (bound to the running loop)."""
        if self._closed is None:
            self._closed = asyncio.Event()
        return self._closed

    @property
    def closed(self) -> bool:
        return self._closed is not None and self._closed.is_set()

    def start_draining(self, admit_s: float = ADMIT_AFTER_SIGNAL_S) -> None:
        self.drain_started = time.monotonic()
        asyncio.get_running_loop().call_later(admit_s, self.closed_event.set)

    @property
    def is_serving(self) -> bool:
        """Readiness as every protocol reports it: self-tested, and no drain begun."""
        return self.encoder is not None and self.drain_started is None

    def require_encoder(self) -> Encoder:
        """The Encoder, or NotReady (UNAVAILABLE) while the bundle loads."""
        if self.encoder is None:
            raise NotReady("model is loading; retry shortly")
        return self.encoder


VERSION = "1"  # the one version served; a request may name it or leave it empty


@dataclass(frozen=True)
class Served:
    """What the server calls its model in the Open Inference and OpenAI protocols (--model-name),
    and its one version."""

    name: str
    version: str = VERSION

    def check(self, name: str, version: str) -> None:
        if name != self.name:
            raise NotFound(f"unknown model {name!r}; this server serves {self.name!r}")
        if version not in ("", self.version):
            raise NotFound(
                f"unknown version {version!r} of model {name!r}; served: {self.version!r}"
            )
