"""The gate: calls refused on their headers while the server is full, or once it drains; and
requests shed by their size before they are parsed. Both answer a domain error (its kind says
the status) or None; each transport turns it into its own refusal (interceptors.LoadGate for
gRPC, OpenAIApi.on_headers for HTTP). Whether the server is full is the runtime's answer
(``Models.overloaded``, from the in-flight budget every model shares and their batchers' queues).

A refusal costs microseconds and the refused request's body is never received: under a storm,
the server spends its cores on the work it admitted, not on reading work it cannot take.
"""

from __future__ import annotations

from zh_rnn_encoder.core.errors import NotReady, Overloaded
from zh_rnn_encoder.transport.serving_state import ServingState


def refusal(state: ServingState, closes: bool, sheds: bool) -> NotReady | Overloaded | None:
    """Why a call is refused on its headers, or None: NotReady (UNAVAILABLE) once draining has
    closed (for a call that ``closes``), Overloaded (RESOURCE_EXHAUSTED) while the budget or the
    batchers' queues are nearly full (for one that ``sheds``). Every transport asks this before
    reading a body."""
    if closes and state.closed:
        return NotReady("server is shutting down; retry on another replica")
    return state.models.overloaded() if sheds else None


def shed_by_size(state: ServingState, request_bytes: int) -> Overloaded | None:
    """Sheds a unary request by its size before it is parsed, when even its smallest possible
    need does not fit the in-flight budget."""
    return state.models.overloaded(request_bytes)
