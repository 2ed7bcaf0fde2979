"""The door: calls refused on their headers while the server is full, or once it drains.

A refusal costs microseconds and the refused request's body is never received: under a storm,
the server spends its cores on the work it admitted, not on reading work it cannot take.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from zh_rnn_encoder.runtime.admission import MB
from zh_rnn_encoder.transport.state import ServingState
from zh_rnn_encoder.transport.status import refusing

# The share of the in-flight budget kept for requests already past the gate: the gate closes
# when less than this is free (they are refused on size after parsing, if they do not fit).
RESERVE = 1 / 8


@dataclass(frozen=True)
class Guard:
    """A service's methods the gate closes once draining stops admitting (None: every one), and
    those it sheds while the server is full."""

    closes: frozenset[str] | None
    sheds: frozenset[str]


def refusal(state: ServingState, closes: bool, sheds: bool) -> tuple[grpc.StatusCode, str] | None:
    """Why a call is refused on its headers, or None: UNAVAILABLE once draining has closed (for
    a call that ``closes``), RESOURCE_EXHAUSTED while the budget or the batcher's queue is
    nearly full (for one that ``sheds``). Every transport asks this before reading a body."""
    if closes and state.closed:
        return grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another replica"
    encoder = state.encoder
    if encoder is None or not sheds:
        return None
    b, queued, most = encoder.budget, encoder.queued_texts, encoder.limits.max_queued_texts
    if b.used <= b.limit * (1 - RESERVE) and queued < most:
        return None
    return (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"server full: {b.used / MB:.0f} of max_inflight_mb={b.limit // MB} MB in use, "
        f"{queued} of max_queued_texts={most} texts queued; retry with backoff",
    )


class LoadGate(grpc.aio.ServerInterceptor):
    """UNAVAILABLE for a guarded service's closing methods once draining has closed;
    RESOURCE_EXHAUSTED for its shed methods while the budget or the batcher's queue is nearly
    full. ``guards`` maps a service's full name to its Guard."""

    def __init__(
        self,
        state: ServingState,
        guards: dict[str, Guard],
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.state, self.guards = state, guards
        self.on_refused = on_refused  # (method, status name), for metrics

    async def intercept_service(self, continuation: Callable, details: object) -> object:
        handler = await continuation(details)
        service, _, method = details.method.lstrip("/").rpartition("/")
        guard = self.guards.get(service)
        if handler is None or guard is None:
            return handler
        closes = guard.closes is None or method in guard.closes
        refused = refusal(self.state, closes, method in guard.sheds)
        return handler if refused is None else self._refuse(details.method, *refused)

    def _refuse(self, method: str, code: grpc.StatusCode, message: str) -> object:
        if self.on_refused:
            self.on_refused(method.rsplit("/", 1)[-1], code.name)
        return refusing(code, message)
