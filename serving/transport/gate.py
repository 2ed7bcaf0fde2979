"""Shedding at the door: unary calls refused on their headers while the server is full.

A refusal costs microseconds and the refused request's body is never received: under a storm,
the server spends its cores on the work it admitted, not on reading work it cannot take.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from zh_rnn_encoder.runtime.admission import MB
from zh_rnn_encoder.transport.state import ServingState
from zh_rnn_encoder.transport.status import refusing

# The share of the in-flight budget kept for requests already past the gate: the gate closes
# when less than this is free (they are refused on size after parsing, if they do not fit).
RESERVE = 1 / 8


class LoadGate(grpc.aio.ServerInterceptor):
    """RESOURCE_EXHAUSTED for ``methods`` while the budget or the batcher's queue is nearly full."""

    def __init__(
        self,
        state: ServingState,
        methods: set[str],
        on_shed: Callable[[str], None] | None = None,
    ) -> None:
        self.state, self.methods, self.on_shed = state, methods, on_shed

    async def intercept_service(self, continuation: Callable, details: object) -> object:
        handler = await continuation(details)
        encoder = self.state.encoder
        if handler is None or encoder is None or details.method not in self.methods:
            return handler
        b, queued, most = encoder.budget, encoder.queued_texts, encoder.limits.max_queued_texts
        if b.used <= b.limit * (1 - RESERVE) and queued < most:
            return handler
        if self.on_shed:
            self.on_shed(details.method.rsplit("/", 1)[-1])
        return refusing(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"server full: {b.used / MB:.0f} of max_inflight_mb={b.limit // MB} MB in use, "
            f"{queued} of max_queued_texts={most} texts queued; retry with backoff",
        )
