"""Prometheus metrics of one server, in a registry of its own, served on --metrics-listen.

Under --workers, each worker records into prometheus_client's multiprocess directory and the
supervisor serves their sum (``serve_workers``): one endpoint for the port. Imported only when
metrics are asked for, after PROMETHEUS_MULTIPROC_DIR is set (prometheus_client reads it then).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from zh_rnn_encoder.transport.metrics import Metrics
from zh_rnn_encoder.transport.metrics_server import MetricsServer

if TYPE_CHECKING:
    import ssl

    from prometheus_client.registry import Collector

    from zh_rnn_encoder.runtime.models import Models
    from zh_rnn_encoder.runtime.types import EncodeResult

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class PrometheusMetrics(Metrics):
    def __init__(self, multiprocess: bool = False) -> None:
        """``multiprocess``: gauges as the supervisor sums them (queued: live sum; ready: live
        minimum, capped by the supervisor's slots: WorkersReady); their values are then set."""
        self.multiprocess = multiprocess
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "encoder_requests",
            "Requests by method and gRPC status code",
            ["method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "encoder_request_seconds",
            "Request latency in the server",
            ["method"],
            buckets=_LATENCY,
            registry=r,
        )
        self.texts = Counter("encoder_texts", "Texts encoded", registry=r)
        self.tokens = Counter("encoder_tokens", "Tokens encoded (after truncation)", registry=r)
        self.stage = Histogram(
            "encoder_stage_seconds",
            "Per-request time by stage",
            ["stage"],
            buckets=_LATENCY,
            registry=r,
        )
        self.run_rows = Histogram(
            "encoder_run_texts", "Texts per onnxruntime run", buckets=_ROWS, registry=r
        )
        self.run_padded = Histogram(
            "encoder_run_padded_tokens",
            "Padded tokens (texts x longest) per onnxruntime run",
            buckets=tuple(16 * b for b in _ROWS),
            registry=r,
        )
        self.queued = Gauge(
            "encoder_queued_texts",
            "Texts accepted and not yet run",
            registry=r,
            multiprocess_mode="livesum" if multiprocess else "all",  # "all": Gauge's default
        )
        self.versions = Gauge(
            "encoder_model_version",
            "1 for each served model's name and version (under --workers: how many workers "
            "serve it); a version replaced by a reload reads 0",
            ["model", "version"],
            registry=r,
            multiprocess_mode="livesum" if multiprocess else "all",
        )
        self.reloads = Counter(
            "encoder_model_reloads",
            "Bundle reloads (SIGHUP) by model and outcome: swapped, unchanged, refused",
            ["model", "outcome"],
            registry=r,
        )
        self.ready = Gauge(
            "encoder_ready",
            "1 while the server reports SERVING",
            registry=r,
            multiprocess_mode="livemin" if multiprocess else "all",
        )

        # labelled children resolved once: labels() costs more than the observation itself
        self._stages = {k: self.stage.labels(k) for k in ("tokenize", "queue", "inference")}
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._http: MetricsServer | None = None
        self._watch: asyncio.Task[None] | None = None

    def record(self, method: str, code: str, started: float | None = None) -> None:
        key = (method, code)
        if key not in self._children:
            self._children[key] = (self.requests.labels(method, code), self.latency.labels(method))
        count, latency = self._children[key]
        count.inc()
        latency.observe(0.0 if started is None else time.perf_counter() - started)

    def observe(self, res: EncodeResult) -> None:
        tokens = sum(len(e.ids) for e in res.encodings)
        self.encoded(len(res.encodings), tokens, res.tokenize_s, res.queue_s, res.inference_s)

    def encoded(
        self,
        texts: int,
        tokens: int,
        tokenize_s: float = 0.0,
        queue_s: float = 0.0,
        inference_s: float = 0.0,
    ) -> None:
        self.texts.inc(texts)
        self.tokens.inc(tokens)
        self._stages["tokenize"].observe(tokenize_s)
        self._stages["queue"].observe(queue_s)
        self._stages["inference"].observe(inference_s)

    def on_run(self, rows: int, padded_tokens: int) -> None:
        self.run_rows.observe(rows)
        self.run_padded.observe(padded_tokens)

    def serving(self, models: Models) -> None:
        if self.multiprocess:  # the supervisor reads files: no callback to call
            self._watch = asyncio.ensure_future(_every(1.0, self.queued.set, models))
        else:
            self.queued.set_function(lambda: models.queued_texts)
        for m in models:
            self.model_served(m.name, m.version)
        self.ready.set(1)

    def model_served(self, name: str, version: str, replaces: str = "") -> None:
        if replaces:  # 0, not removed: a worker's file keeps every series it ever wrote
            self.versions.labels(name, replaces).set(0)
        self.versions.labels(name, version).set(1)

    def reloaded(self, name: str, outcome: str) -> None:
        self.reloads.labels(name, outcome).inc()

    def draining(self) -> None:
        self.ready.set(0)

    def serve(self, listen: str, tls: ssl.SSLContext | None = None) -> int:
        """Serve GET /metrics on host:port (see serve_registry); returns the port."""
        self._http = serve_registry(self.registry, listen, tls)
        return self._http.server_port

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


async def _every(seconds: float, setter: Callable[[float], None], models: Models) -> None:
    while True:
        setter(models.queued_texts)
        await asyncio.sleep(seconds)


def serve_workers(
    directory: str,
    listen: str,
    serving: Callable[[], bool] = lambda: True,
    tls: ssl.SSLContext | None = None,
) -> MetricsServer:
    """The sum of the workers' metrics in ``directory`` (PROMETHEUS_MULTIPROC_DIR), with
    encoder_ready 0 unless ``serving()`` (the supervisor: every worker slot is up and serving)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    workers = multiprocess.MultiProcessCollector(None, path=directory)
    registry.register(WorkersReady(workers, serving))
    return serve_registry(registry, listen, tls)


class WorkersReady:
    """The workers' metrics, encoder_ready capped by the supervisor's view of its slots. The
    files alone cannot say a worker is missing: a dead worker's gauge is removed, so the minimum
    over the live ones stays 1 until its replacement writes 0 (measured: 11 of 15 samples)."""

    def __init__(self, workers: Collector, serving: Callable[[], bool]) -> None:
        self.workers, self.serving = workers, serving

    def collect(self) -> Iterator[Metric]:
        up, seen = float(self.serving()), False
        for metric in self.workers.collect():
            if metric.name == "encoder_ready":
                seen = True
                metric.samples = [x._replace(value=min(x.value, up)) for x in metric.samples]
            yield metric
        if not seen:  # no worker has written its gauge yet: none serves
            yield GaugeMetricFamily("encoder_ready", "1 while the server reports SERVING", 0.0)


def serve_registry(
    registry: CollectorRegistry, listen: str, tls: ssl.SSLContext | None = None
) -> MetricsServer:
    """Serve GET /metrics (and nothing else: 404) on host:port, the host explicit (0.0.0.0
    to mean every interface); port 0 picks a free one. One thread, however many connections
    (metrics_server.py); with ``tls``, TLS only."""
    return MetricsServer(registry, listen, tls)
