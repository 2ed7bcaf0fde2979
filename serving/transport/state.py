"""The serving state every transport consults: the self-tested Encoder once loaded, draining."""

from __future__ import annotations

from zh_rnn_encoder.core.errors import NotReady
from zh_rnn_encoder.runtime.encoder import Encoder


class ServingState:
    """Set by the app's lifecycle; read by every servicer, which gets it in its constructor."""

    def __init__(self) -> None:
        self.encoder: Encoder | None = None
        self.draining = False

    def ready(self) -> Encoder:
        """The Encoder, or NotReady while the bundle loads or the server drains."""
        if self.draining:
            raise NotReady("server is shutting down; retry on another replica")
        if self.encoder is None:
            raise NotReady("model is loading; retry shortly")
        return self.encoder
