"""The gRPC server's refusals on headers, before a request's body is read: bearer-token auth
(security.py) and the load gate (gate.py), recorded in the request metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

import grpc

from zh_rnn_encoder.core.errors import ErrorKind
from zh_rnn_encoder.transport import logs
from zh_rnn_encoder.transport.gate import refusal
from zh_rnn_encoder.transport.metrics import NO_METRICS, Metrics
from zh_rnn_encoder.transport.rpc import refusing
from zh_rnn_encoder.transport.security import UNAUTHENTICATED, bearer_ok
from zh_rnn_encoder.transport.serving_state import ServingState
from zh_rnn_encoder.transport.status import label

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)  # probes carry no credentials
Req = TypeVar("Req")
Resp = TypeVar("Resp")
# What grpc.aio.ServerInterceptor.intercept_service is given and returns, generic in a method's
# request and response (a refusal, ``refusing``, answers any method); None: no such method.
Handler: TypeAlias = "grpc.RpcMethodHandler[Req, Resp]"
Next: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler[Req, Resp] | None]]"


def _method(full: str) -> str:
    return full.rsplit("/", 1)[-1]


class BearerAuth(grpc.aio.ServerInterceptor):
    """``authorization: Bearer <token>`` on every call but the open ones, else UNAUTHENTICATED."""

    def __init__(self, keys: list[bytes], metrics: Metrics = NO_METRICS) -> None:
        self._keys, self._metrics = keys, metrics

    def allowed(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        value = None
        for k, v in metadata or ():
            if k == "authorization":
                value = v
        return bearer_ok(self._keys, value)

    async def intercept_service(
        self, continuation: Next[Req, Resp], details: grpc.HandlerCallDetails
    ) -> Handler[Req, Resp] | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        if self.allowed(details.invocation_metadata):
            return handler
        self._metrics.record(_method(details.method), label(ErrorKind.UNAUTHENTICATED))
        logs.done(_method(details.method), label(ErrorKind.UNAUTHENTICATED))
        return refusing(ErrorKind.UNAUTHENTICATED, UNAUTHENTICATED)


@dataclass(frozen=True)
class Guard:
    """A service's methods the gate closes once draining stops admitting (None: every one), and
    those it sheds while the server is full."""

    closes: frozenset[str] | None
    sheds: frozenset[str]


class LoadGate(grpc.aio.ServerInterceptor):
    """UNAVAILABLE for a guarded service's closing methods once draining has closed;
    RESOURCE_EXHAUSTED for its shed methods while the budget or the batcher's queue is nearly
    full. ``guards`` maps a service's full name to its Guard."""

    def __init__(
        self, state: ServingState, guards: dict[str, Guard], metrics: Metrics = NO_METRICS
    ) -> None:
        self.state, self.guards, self.metrics = state, guards, metrics

    async def intercept_service(
        self, continuation: Next[Req, Resp], details: grpc.HandlerCallDetails
    ) -> Handler[Req, Resp] | None:
        handler = await continuation(details)
        service, _, method = details.method.lstrip("/").rpartition("/")
        guard = self.guards.get(service)
        if handler is None or guard is None:
            return handler
        closes = guard.closes is None or method in guard.closes
        refused = refusal(self.state, closes, method in guard.sheds)
        if refused is None:
            return handler
        self.metrics.record(method, label(refused.kind))
        logs.done(method, label(refused.kind))
        return refusing(refused.kind, str(refused))
