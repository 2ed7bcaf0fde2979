"""The serving state every transport consults: the models (runtime/models.py) once loaded,
readiness, and drain.

Draining (SIGTERM) has two moments. From the signal, calls still arriving for ADMIT_AFTER_SIGNAL_S
are served: they were sent before it, or so close to it that they were on their way. From then
on (``closed``), new calls are refused UNAVAILABLE on their headers, so clients retry elsewhere,
and streams stop reading: they answer what they read, then end UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from zh_rnn_encoder.runtime.models import Models, ServedModel
from zh_rnn_encoder.transport import logs

# Long enough for every call sent before the signal to reach the server and its headers to be
# read, even on a loaded event loop; short against a rolling deploy's patience.
ADMIT_AFTER_SIGNAL_S = 0.5


class ServingState:
    """Set by the app's lifecycle; read by every servicer, which gets it in its constructor."""

    def __init__(self, models: Models) -> None:
        self.models = models
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
        """Readiness as every protocol reports it: every model self-tested, and no drain begun."""
        return self.models.ready and self.drain_started is None

    def model(self, name: str = "", version: str = "") -> ServedModel:
        """The model a call names ("": the default), looked up once per call: NotFound
        (NOT_FOUND) for one not served, NotReady (UNAVAILABLE) while it loads. For what only
        reads the model's description; a call that runs it holds it (``hold``)."""
        return self.models.get(name, version)

    @contextmanager
    def hold(self, name: str = "", version: str = "") -> Iterator[ServedModel]:
        """``model``, held until the ``with`` ends: a hot swap closes the model it replaced only
        once no call holds it (Models.hold). The call's log records and span name it."""
        with self.models.hold(name, version) as model:
            logs.bind_model(model.name, model.version)
            spans = model.encoder.spans
            if spans.enabled and (span := spans.current()) is not None:
                spans.model_used(span, model.name, model.version)
            yield model
