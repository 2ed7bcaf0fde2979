"""OpenTelemetry tracing (--otlp-endpoint; the otel extra), imported only when it is asked for.

A SERVER span per call on every protocol (a gRPC interceptor, an ASGI wrapper), continuing the
caller's W3C ``traceparent``; the runtime reports each call's tokenization, wait in the queue
and onnxruntime runs through the Spans hook (runtime/spans.py), recorded here as child spans
after the fact, with the times the runtime measured. Spans leave in batches over OTLP/gRPC.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from zh_rnn_encoder import __version__
from zh_rnn_encoder.runtime.spans import Spans
from zh_rnn_encoder.transport.interceptors import Handler, Next, Req, Resp

W3C = TraceContextTextMapPropagator()
UNTRACED = ("/grpc.health.v1.Health/", "/grpc.reflection.")  # probes and tools, not calls
# gRPC codes that are the server's failure (OpenTelemetry's RPC conventions); a client's own
# error (INVALID_ARGUMENT, UNAUTHENTICATED...) leaves a server span's status unset.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Tracing(Spans):
    """The server's tracer: spans of calls, and of the runtime's stages (Spans)."""

    enabled = True

    def __init__(
        self, endpoint: str, service_name: str, model: str, exporter: SpanExporter | None = None
    ) -> None:
        resource = Resource.create({"service.name": service_name, "service.version": __version__})
        self.provider = TracerProvider(resource=resource)
        exporter = exporter or OTLPSpanExporter(endpoint=endpoint)  # http: plaintext
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("zh_rnn_encoder", __version__)
        self.model = model
        self._epoch_ns = time.time_ns() - time.perf_counter_ns()  # perf_counter -> wall clock

    def close(self) -> None:
        """Sends the spans still batched, then stops."""
        self.provider.shutdown()

    @contextmanager
    def call(
        self, name: str, carrier: Mapping[str, str], attributes: dict[str, Any]
    ) -> Iterator[Span]:
        """The SERVER span of one call, current while it runs, child of the caller's
        ``traceparent`` in ``carrier`` (a new trace without one)."""
        parent = W3C.extract(carrier) if "traceparent" in carrier else Context()
        attributes["encoder.model"] = self.model
        with self.tracer.start_as_current_span(
            name,
            parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            # the status is the call's (_status), not whether an exception passed: gRPC's abort
            # is one, for a client's error too
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    # Spans: the runtime's stages, as children of the call's span
    def current(self) -> object | None:
        span = trace.get_current_span()
        return span if span.is_recording() else None

    def model_used(self, span: object, name: str, version: str) -> None:
        assert isinstance(span, Span)  # what current() returned
        span.set_attributes({"encoder.model": name, "encoder.model_version": version})

    def tokenized(self, span: object, start: float, end: float, texts: int, tokens: int) -> None:
        counts = {"encoder.texts": texts, "encoder.tokens": tokens}
        self._child(span, "tokenize", start, end, counts)
        _add(span, counts)  # a stream's requests add up on its one span

    def queued(self, span: object, start: float, end: float) -> None:
        self._child(span, "queue", start, end, {})

    def ran(self, span: object, start: float, end: float, texts: int, padded_tokens: int) -> None:
        attributes = {"encoder.batch.texts": texts, "encoder.batch.padded_tokens": padded_tokens}
        self._child(span, "onnxruntime.run", start, end, attributes)

    def _child(
        self, parent: object, name: str, start: float, end: float, attributes: dict[str, int]
    ) -> None:
        assert isinstance(parent, Span)  # what current() returned
        child = self.tracer.start_span(
            name,
            trace.set_span_in_context(parent),
            attributes=attributes,
            start_time=self._epoch_ns + int(start * 1e9),
        )
        child.end(self._epoch_ns + int(end * 1e9))

    def interceptor(self) -> GrpcTracing:
        return GrpcTracing(self)

    def asgi(self, app: Asgi) -> Asgi:
        """``app`` (the OpenAI-compatible API) with a span per request but /health."""
        from zh_rnn_encoder.transport.openai.api import EMBEDDINGS, HEALTH, MODELS

        routes = (*EMBEDDINGS, *MODELS)

        async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
            path = scope.get("path", "")
            if scope["type"] != "http" or path == HEALTH:
                return await app(scope, receive, send)
            method = scope["method"]
            headers = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in scope["headers"]
                if k in (b"traceparent", b"tracestate")
            }
            route = path if path in routes else ""  # unknown paths: no name per path
            attributes = {"http.request.method": method, "url.path": path}
            with self.call(f"{method} {route}".rstrip(), headers, attributes) as span:

                async def send_status(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                    await send(message)

                try:
                    await app(scope, receive, send_status)
                except Exception as e:  # uvicorn answers 500
                    span.record_exception(e)
                    span.set_status(Status(StatusCode.ERROR, type(e).__name__))
                    raise

        return traced


def _add(span: object, counts: dict[str, int]) -> None:
    assert isinstance(span, Span)
    have = getattr(span, "attributes", None) or {}  # the SDK's span keeps what it was given
    for k, n in counts.items():
        span.set_attribute(k, int(have.get(k, 0)) + n)


def _carrier(metadata: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {
        k: v if isinstance(v, str) else v.decode("latin-1")
        for k, v in metadata or ()
        if k in ("traceparent", "tracestate")
    }


class GrpcTracing(grpc.aio.ServerInterceptor):
    """The outermost interceptor: every call but health and reflection runs in its span, so a
    call refused by auth or the load gate is traced with its status too."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    async def intercept_service(
        self, continuation: Next[Req, Resp], details: grpc.HandlerCallDetails
    ) -> Handler[Req, Resp] | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(UNTRACED):
            return handler
        service, _, method = details.method.lstrip("/").rpartition("/")
        carrier = _carrier(details.invocation_metadata)
        for kind in ("unary_unary", "stream_unary", "unary_stream", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is not None and not inspect.isasyncgenfunction(behavior):
                traced = self._traced(behavior, service, method, carrier)
                return handler._replace(**{kind: traced})  # type: ignore[attr-defined]
        return handler  # an async generator (no such method here): untraced

    def _traced(
        self,
        behavior: Callable[[Any, Any], Awaitable[Any]],
        service: str,
        method: str,
        carrier: dict[str, str],
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with self.tracing.call(f"{service}/{method}", carrier, dict(attributes)) as span:
                if request_id := getattr(request, "request_id", "") or getattr(request, "id", ""):
                    span.set_attribute("encoder.request_id", str(request_id))
                code = grpc.StatusCode.OK
                try:
                    return await behavior(request, context)
                except BaseException as e:
                    code = _code(context, e)
                    if code is grpc.StatusCode.UNKNOWN:  # not an abort: unexpected
                        span.record_exception(e)
                    raise
                finally:
                    _status(span, code)

        return traced


def _code(context: grpc.aio.ServicerContext[Any, Any], e: BaseException) -> grpc.StatusCode:
    """The status a failed handler ends its call with: the one it aborted with, if any."""
    if isinstance(e, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code() if isinstance(e, grpc.aio.AbortError) else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _status(span: Span, code: grpc.StatusCode) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    span.set_attribute("encoder.status", code.name)
    if code in SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
