"""`encoder-serve`: build_server() gives the server and its port; serve() adds loading, signals."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serving import config as config_mod
from serving._proto.encoder.v1 import encoder_pb2 as pb
from serving.config import ServerConfig
from serving.errors import EncoderError
from serving.pipeline import Backend, Pipeline
from serving.servicer import SERVICE, EncoderServicer, add_to_server
from serving.session import EncoderSession

log = logging.getLogger("encoder")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class App:
    """A server, its health and its servicer; ``load`` makes it ready, ``drain`` winds it down."""

    def __init__(
        self,
        cfg: ServerConfig,
        server: grpc.aio.Server,
        port: int,
        servicer: EncoderServicer,
        health_servicer: health.aio.HealthServicer,
        backend: Backend = EncoderSession,
    ) -> None:
        self.cfg, self.server, self.port = cfg, server, port
        self.servicer, self.health, self.backend = servicer, health_servicer, backend
        self.metrics = servicer.metrics
        self.metrics_port = self.metrics.serve(cfg.metrics_listen) if self.metrics else None

    async def set_health(self, status: int) -> None:
        for name in ("", SERVICE):
            await self.health.set(name, status)

    async def load(self) -> Pipeline:
        """Load and self-test the bundle off the event loop (health keeps answering NOT_SERVING)."""
        loop = asyncio.get_running_loop()
        pipeline = await loop.run_in_executor(None, Pipeline.load, self.cfg, self.backend)
        pipeline.start_batcher(self.cfg, self.metrics.on_run if self.metrics else None)
        self.servicer.pipeline = pipeline
        await self.set_health(SERVING)
        if self.metrics:
            self.metrics.queued.set_function(lambda: pipeline.batcher.queued_texts)
            self.metrics.ready.set(1)
        return pipeline

    async def drain(self, grace: float | None = None) -> None:
        """NOT_SERVING, refuse new RPCs, finish accepted ones within the grace period."""
        self.servicer.draining = True
        if self.metrics:
            self.metrics.ready.set(0)
        await self.health.enter_graceful_shutdown()  # NOT_SERVING to every check and watcher
        await self.server.stop(self.cfg.grace_period_s if grace is None else grace)
        if self.servicer.pipeline and self.servicer.pipeline.batcher:
            await self.servicer.pipeline.batcher.close()
        if self.metrics:
            self.metrics.close()


def limits_info(cfg: ServerConfig) -> pb.Limits:
    lim = cfg.limits
    return pb.Limits(
        max_texts_per_request=lim.max_texts_per_request,
        max_chars_per_text=lim.max_chars_per_text,
        max_tokens_per_text=lim.max_tokens_per_text,
        max_message_bytes=lim.max_message_bytes,
        max_queued_texts=lim.max_queued_texts,
    )


async def build_server(cfg: ServerConfig, backend: Backend = EncoderSession) -> App:
    """A started-able server bound to cfg.listen (port 0: a free one), health NOT_SERVING."""
    size = cfg.limits.max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0),
        ]
    )
    metrics = None
    if cfg.metrics_listen:  # prometheus_client is imported only when metrics are asked for
        from serving.metrics import Metrics

        metrics = Metrics()
    servicer = EncoderServicer(limits_info(cfg), metrics)
    add_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(cfg.listen)
    app = App(cfg, server, port, servicer, health_servicer, backend)
    await app.set_health(NOT_SERVING)
    return app


async def serve(cfg: ServerConfig, backend: Backend = EncoderSession) -> int:
    t0 = time.perf_counter()
    app = await build_server(cfg, backend)
    await app.server.start()
    host = cfg.listen.rsplit(":", 1)[0]
    if app.metrics_port:
        log.info(
            "metrics on http://%s:%d/metrics",
            cfg.metrics_listen.rpartition(":")[0],
            app.metrics_port,
        )
    log.info(
        "listening on %s:%d, NOT_SERVING until bundle %s passes its self-test",
        host,
        app.port,
        cfg.bundle,
    )
    try:
        pipeline = await app.load()
    except EncoderError as e:
        log.error("refusing to serve: %s", e)
        await app.server.stop(0)
        return 2
    log.info(
        "serving encoder.v1 on %s:%d bundle=%s provider=%s threads=%d tokenizer=%s ready_in=%.2fs",
        host,
        app.port,
        cfg.bundle,
        pipeline.session.provider,
        pipeline.session.threads,
        pipeline.tokenizer.backend,
        time.perf_counter() - t0,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: draining (grace %.1fs)", cfg.grace_period_s)
    await app.drain()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None, backend: Backend = EncoderSession) -> int:
    cfg = config_mod.from_args(argv)
    logging.basicConfig(
        level=cfg.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(serve(cfg, backend))
    except EncoderError as e:  # e.g. --device cuda without the CUDA provider
        log.error("refusing to serve: %s", e)
        return 2
    except RuntimeError as e:  # e.g. the address is taken
        log.error("cannot start: %s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
