"""`encoder-serve`: build_server() gives the server and its port; serve() adds loading, signals."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from zh_rnn_encoder.core.errors import EncoderError
from zh_rnn_encoder.runtime.cpus import available_cpus
from zh_rnn_encoder.runtime.encoder import SessionFactory
from zh_rnn_encoder.runtime.models import Models, ModelSpec, ServedModel, load_model
from zh_rnn_encoder.runtime.session import open_session
from zh_rnn_encoder.transport import config as config_mod
from zh_rnn_encoder.transport import fdlimit, logs, memory
from zh_rnn_encoder.transport.config import ServerConfig
from zh_rnn_encoder.transport.encoder_v1 import servicer as encoder_v1
from zh_rnn_encoder.transport.interceptors import BearerAuth, Guard, LoadGate
from zh_rnn_encoder.transport.metrics import NO_METRICS, Metrics
from zh_rnn_encoder.transport.oip import servicer as oip
from zh_rnn_encoder.transport.reload import Reloader
from zh_rnn_encoder.transport.rpc import server_credentials
from zh_rnn_encoder.transport.security import load_tokens
from zh_rnn_encoder.transport.serving_state import ADMIT_AFTER_SIGNAL_S, ServingState

if TYPE_CHECKING:  # imported at run time only with --http-listen (uvicorn: the `http` extra)
    from zh_rnn_encoder.transport.openai.http_server import HttpServer
    from zh_rnn_encoder.transport.tracing import Tracing  # only with --otlp-endpoint (`otel`)

log = logging.getLogger("encoder")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class App:
    """A server, its health and serving state; ``load`` makes it ready, ``drain`` winds it down."""

    def __init__(
        self,
        cfg: ServerConfig,
        server: grpc.aio.Server,
        port: int,
        state: ServingState,
        health_servicer: health.aio.HealthServicer,
        metrics: Metrics,
        session_factory: SessionFactory = open_session,
    ) -> None:
        self.cfg, self.server, self.port, self.state = cfg, server, port, state
        self.health, self.metrics, self.session_factory = health_servicer, metrics, session_factory
        self.metrics_port = (
            metrics.serve(cfg.metrics_listen, _metrics_tls(cfg)) if cfg.metrics_listen else None
        )
        self.http: HttpServer | None = None  # the OpenAI-compatible HTTP listener (--http-listen)
        self.http_port: int | None = None
        self.tracing: Tracing | None = None  # spans of every call (--otlp-endpoint)
        self.reloader = Reloader(cfg.served_models, state.models, self.load_model, metrics)

    async def start(self) -> None:
        """Both listeners accept connections; every call is NOT_SERVING / 503 until load()."""
        await self.server.start()
        if self.http is not None:
            self.http_port = await self.http.start(self.cfg.http_listen, self.cfg.reuse_port)

    async def stop(self, grace: float) -> None:
        """Stops both listeners; calls in progress get ``grace`` seconds."""
        stops = [self.server.stop(grace)]
        if self.http is not None:
            stops.append(self.http.stop(grace))
        await asyncio.gather(*stops)

    async def set_health(self, status: int) -> None:
        for name in ("", encoder_v1.SERVICE):
            await self.health.set(name, status)

    async def load(self) -> Models:
        """Load and self-test every model's bundle, one after another (health keeps answering
        NOT_SERVING until all of them pass); their work shares one budget."""
        models = self.state.models
        for spec in self.cfg.served_models:
            models.put(await self.load_model(spec))
        self._trim = asyncio.ensure_future(
            memory.trim_periodically(models.budget.active_since_asked)
        )
        await self.set_health(SERVING)
        self.metrics.serving(models)
        self.reloader.loaded.set()  # SIGHUP reloads from now on (reload.py)
        return models

    async def load_model(self, spec: ModelSpec) -> ServedModel:
        """One model, loaded and self-tested off the event loop, ready to serve: its work takes
        from the server's budget, its runs are recorded and traced. Not yet served (Models.put)."""
        load = functools.partial(
            load_model,
            spec,
            self.cfg.runtime,
            self.state.models.budget,
            on_run=self.metrics.on_run,
            session_factory=self.session_factory,
        )
        model = await asyncio.get_running_loop().run_in_executor(None, load)
        if self.tracing is not None:
            model.encoder.spans = self.tracing
        return model

    async def drain(
        self, grace: float | None = None, admit_s: float = ADMIT_AFTER_SIGNAL_S
    ) -> None:
        """NOT_SERVING at once; calls still arriving for ``admit_s`` are served (they were sent
        before the signal), later ones refused UNAVAILABLE; streams stop reading, answer what
        they read and end; everything accepted finishes within the grace period."""
        grace = self.cfg.grace_period_s if grace is None else grace
        self.state.start_draining(admit_s)
        self.metrics.draining()
        await self.health.enter_graceful_shutdown()  # NOT_SERVING to every check and watcher
        await self.state.closed_event.wait()
        await asyncio.sleep(min(0.1, admit_s))  # calls on their way now meet the closed gate
        await self.stop(max(0.0, grace - admit_s))
        await self.reloader.aclose()
        if self.state.models.ready:
            self._trim.cancel()
        await self.state.models.aclose()
        self.metrics.close()
        if self.tracing is not None:
            self.tracing.close()  # sends the spans still batched


async def build_server(cfg: ServerConfig, session_factory: SessionFactory = open_session) -> App:
    """A server bound to cfg.listen (port 0: a free one), not yet started, health NOT_SERVING."""
    size = cfg.runtime.limits.max_message_bytes
    metrics: Metrics = NO_METRICS
    if cfg.metrics_listen or cfg.metrics_dir:  # prometheus_client is imported only then
        if cfg.metrics_dir:  # read by prometheus_client when it is imported, just below
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(cfg.metrics_dir)
        from zh_rnn_encoder.transport.prometheus import PrometheusMetrics

        metrics = PrometheusMetrics(multiprocess=bool(cfg.metrics_dir))
    keys = load_tokens(cfg.auth_tokens_file, cfg.auth_tokens)
    tracing = _tracing(cfg)
    state = ServingState(Models([m.name for m in cfg.served_models], cfg.runtime))
    guards = {
        encoder_v1.SERVICE: Guard(
            closes=None, sheds=frozenset({"Encode", "Tokenize", "EncodeDocument"})
        ),
        # Readiness and metadata keep answering while draining (ready: false); inference closes.
        oip.SERVICE: Guard(closes=frozenset({"ModelInfer"}), sheds=frozenset({"ModelInfer"})),
    }
    gate = LoadGate(state, guards, metrics)
    server = grpc.aio.server(
        # tracing outermost: a call refused by auth or the gate is traced with its status too
        interceptors=([tracing.interceptor()] if tracing else [])
        + ([BearerAuth(keys, metrics)] if keys else [])
        + [gate],
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", int(cfg.reuse_port)),
            # Without BDP probing a stream's window stays small, so a call refused on its
            # headers costs the server little of its body (measured: storm 0.80 -> 0.95).
            ("grpc.http2.bdp_probe", 0),
        ]
        # Calls one connection may have open at once (HTTP/2 SETTINGS); clients that open more
        # get UNAVAILABLE for the excess, so it is off unless asked for.
        + ([("grpc.max_concurrent_streams", n)] if (n := cfg.max_streams_per_connection) else []),
    )
    encoder_v1.add_to_server(
        encoder_v1.EncoderServicer(
            state, metrics, cfg.max_document_tokens, cfg.document_deadline_s
        ),
        server,
    )
    oip.add_to_server(oip.InferenceServicer(state, metrics), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if cfg.reflection:
        reflection.enable_server_reflection(
            (encoder_v1.SERVICE, oip.SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server,
        )
    if cfg.tls_cert:
        key = cast(Path, cfg.tls_key)  # set with tls_cert (config.validate)
        creds = server_credentials(cfg.tls_cert, key, cfg.tls_client_ca)
        port = server.add_secure_port(cfg.listen, creds)
    else:
        port = server.add_insecure_port(cfg.listen)
    app = App(cfg, server, port, state, health_servicer, metrics, session_factory)
    app.tracing = tracing
    if cfg.http_listen:  # uvicorn is imported only then (the `http` extra)
        try:
            from zh_rnn_encoder.transport.openai import http_server
            from zh_rnn_encoder.transport.openai.api import OpenAIApi
            from zh_rnn_encoder.transport.openai.http_protocol import HttpLimits
        except ImportError as e:
            raise EncoderError(
                f"--http-listen needs the http extra (pip install 'zh-rnn-encoder[http]'): {e}"
            ) from None

        api = OpenAIApi(state, size, keys, metrics)
        app.http = http_server.HttpServer(
            api,
            cfg.tls_cert,
            cfg.tls_key,
            cfg.tls_client_ca,
            limits=HttpLimits.of(cfg),
            fd_reserve=cfg.fd_reserve,
        )
        if tracing is not None:
            app.http.app = tracing.asgi(app.http.app)
    await app.set_health(NOT_SERVING)
    return app


def _metrics_tls(cfg: ServerConfig) -> ssl.SSLContext | None:
    from zh_rnn_encoder.transport.metrics_server import context_for  # prometheus_client: lazily

    return context_for(cfg)


def _tracing(cfg: ServerConfig) -> Tracing | None:
    """The tracer of --otlp-endpoint; None (and no OpenTelemetry import) without it."""
    if not cfg.otlp_endpoint:
        return None
    try:
        from zh_rnn_encoder.transport.tracing import Tracing
    except ImportError as e:
        raise EncoderError(
            f"--otlp-endpoint needs the otel extra (pip install 'zh-rnn-encoder[otel]'): {e}"
        ) from None
    log.info("tracing: spans to %s as %s", cfg.otlp_endpoint, cfg.otlp_service_name)
    return Tracing(cfg.otlp_endpoint, cfg.otlp_service_name, cfg.served_models[0].name)


def _log_serving(models: Models, host: str, port: int, ready_in: float) -> None:
    """The line that says the server serves. A function of its own, so that no local of the
    long-lived serve() keeps a model that a reload replaces (and its memory) alive."""
    default = models.get()
    log.info(
        "serving encoder.v1 on %s:%d %s provider=%s threads=%d tokenizer=%s ready_in=%.2fs",
        host,
        port,
        " ".join(f"model={m.name} bundle={m.path} (sha256:{m.version})" for m in models),
        default.encoder.session.provider,
        default.encoder.session.threads,
        default.encoder.tokenizer.backend,
        ready_in,
    )


def write_port_file(path: Path, port: int) -> None:
    """Atomically, so a reader never sees a half-written number."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


async def serve(cfg: ServerConfig, session_factory: SessionFactory = open_session) -> int:
    t0 = time.perf_counter()
    memory.tune()
    fdlimit.raise_soft_limit()  # the HTTP port's connection cap is derived from it
    # The event loop answers probes while tokenizer and ORT threads work: hand it the GIL often.
    sys.setswitchinterval(0.0005)
    app = await build_server(cfg, session_factory)
    # From here SIGHUP reloads the bundles (once they have loaded) rather than ending the process.
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, app.reloader.request)
    await app.start()
    host = cfg.listen.rsplit(":", 1)[0]
    if cfg.port_file:
        write_port_file(cfg.port_file, app.port)
    if app.http_port is not None:
        if cfg.http_port_file:
            write_port_file(cfg.http_port_file, app.http_port)
        log.info(
            "OpenAI-compatible HTTP on %s://%s:%d/v1/embeddings (at most %d connections)",
            "https" if cfg.tls_cert else "http",
            cfg.http_listen.rpartition(":")[0],
            app.http_port,
            app.http.max_connections if app.http else 0,
        )
    if app.metrics_port:
        log.info(
            "metrics on http://%s:%d/metrics",
            cfg.metrics_listen.rpartition(":")[0],
            app.metrics_port,
        )
    log.info(
        "listening on %s:%d (%s, %s), NOT_SERVING until %s passes its self-test",
        host,
        app.port,
        ("mutual TLS" if cfg.tls_client_ca else "TLS") if cfg.tls_cert else "plaintext",
        "bearer-token auth" if cfg.auth_tokens or cfg.auth_tokens_file else "no auth",
        ", ".join(f"bundle {m.path}" for m in cfg.served_models),
    )
    try:
        models = await app.load()
    except EncoderError as e:
        log.error("refusing to serve: %s", e)
        await app.stop(0)
        return 2
    if cfg.ready_file:
        write_port_file(cfg.ready_file, app.port)
    _log_serving(models, host, app.port, time.perf_counter() - t0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: draining (grace %.1fs)", cfg.grace_period_s)
    await app.drain()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None, session_factory: SessionFactory = open_session) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = config_mod.from_args(argv)
    logs.setup(cfg.log_level, cfg.log_format, cfg.served_models[0].name, relay=True)
    workers = cfg.workers or available_cpus()
    try:
        if workers > 1:
            from zh_rnn_encoder.transport.workers import Supervisor

            return asyncio.run(Supervisor(cfg, argv, workers, available_cpus()).run())
        return asyncio.run(serve(cfg, session_factory))
    except EncoderError as e:  # e.g. --device cuda without the CUDA provider
        log.error("refusing to serve: %s", e)
        return 2
    except (RuntimeError, OSError) as e:  # e.g. the address is taken
        log.error("cannot start: %s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
