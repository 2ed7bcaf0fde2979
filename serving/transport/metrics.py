"""What every transport records, as one interface: this base records nothing (the server runs
without metrics); prometheus.PrometheusMetrics records into Prometheus. Transports call it
unconditionally, so none of them checks whether metrics are on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    from zh_rnn_encoder.runtime.models import Models
    from zh_rnn_encoder.runtime.types import EncodeResult


class Metrics:
    """The null implementation: every method does nothing."""

    def record(self, method: str, code: str, started: float | None = None) -> None:
        """One request by method and status (``code``: a gRPC code's name, status.label, for
        every transport), and its latency since ``started`` (perf_counter; None: 0 s, a call
        refused on its headers)."""

    def observe(self, res: EncodeResult) -> None:
        """An EncodeResult's texts, tokens and stage times."""

    def encoded(
        self,
        texts: int,
        tokens: int,
        tokenize_s: float = 0.0,
        queue_s: float = 0.0,
        inference_s: float = 0.0,
    ) -> None:
        """Texts and tokens encoded outside an EncodeResult (a document), with stage times."""

    def on_run(self, rows: int, padded_tokens: int) -> None:
        """One onnxruntime run's texts and padded tokens (texts x longest)."""

    def serving(self, models: Models) -> None:
        """The server reports SERVING with these models: readiness, and their queue from now on."""

    def model_served(self, name: str, version: str, replaces: str = "") -> None:
        """Model ``name`` is served at ``version`` from now on, in place of ``replaces``."""

    def reloaded(self, name: str, outcome: str) -> None:
        """A reload (SIGHUP) of model ``name``: "swapped", "unchanged" or "refused"."""

    def draining(self) -> None:
        """The server reports NOT_SERVING from now on."""

    def serve(self, listen: str, tls: ssl.SSLContext | None = None) -> int | None:
        """Serve GET /metrics on host:port (``tls``: TLS only); the port, or None where nothing
        is recorded."""
        return None

    def close(self) -> None:
        """Stop serving and watching."""


NO_METRICS = Metrics()
