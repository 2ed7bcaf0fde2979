"""The gate: calls refused on their headers while the server is full, or once it drains; and
requests shed by their size before they are parsed. Both answer a domain error (its kind says
the status) or None; each transport turns it into its own refusal (interceptors.LoadGate for
gRPC, OpenAIApi.admit for HTTP).

A refusal costs microseconds and the refused request's body is never received: under a storm,
the server spends its cores on the work it admitted, not on reading work it cannot take.
"""

from __future__ import annotations

from zh_rnn_encoder.core.errors import NotReady, Overloaded
from zh_rnn_encoder.runtime.admission import MB, at_least
from zh_rnn_encoder.transport.serving_state import ServingState

# The share of the in-flight budget kept for requests already past the gate: the gate closes
# when less than this is free (they are refused on size after parsing, if they do not fit).
RESERVE = 1 / 8


def refusal(state: ServingState, closes: bool, sheds: bool) -> NotReady | Overloaded | None:
    """Why a call is refused on its headers, or None: NotReady (UNAVAILABLE) once draining has
    closed (for a call that ``closes``), Overloaded (RESOURCE_EXHAUSTED) while the budget or the
    batcher's queue is nearly full (for one that ``sheds``). Every transport asks this before
    reading a body."""
    if closes and state.closed:
        return NotReady("server is shutting down; retry on another replica")
    encoder = state.encoder
    if encoder is None or not sheds:
        return None
    b, queued, most = encoder.budget, encoder.queued_texts, encoder.limits.max_queued_texts
    if b.used <= b.limit * (1 - RESERVE) and queued < most:
        return None
    return Overloaded(
        f"server full: {b.used / MB:.0f} of max_inflight_mb={b.limit // MB} MB in use, "
        f"{queued} of max_queued_texts={most} texts queued; retry with backoff"
    )


def shed_by_size(state: ServingState, request_bytes: int) -> Overloaded | None:
    """Sheds a unary request by its size before it is parsed, when even its smallest possible
    need does not fit the in-flight budget."""
    encoder = state.encoder
    if encoder is None or not encoder.budget.full_for(at_least(request_bytes)):
        return None
    b = encoder.budget
    return Overloaded(
        f"max_inflight_mb={b.limit // MB} in use ({b.used / MB:.0f} MB admitted); "
        "retry with backoff"
    )
