"""The one table from an error's kind to what each transport answers, and the kind and message a
client sees for any exception. No wire library here: the gRPC side turns a code's name into its
grpc.StatusCode (rpc.py), the HTTP side reads the status (openai/)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from zh_rnn_encoder.core.errors import EncoderError, ErrorKind

log = logging.getLogger("encoder")


@dataclass(frozen=True)
class Status:
    grpc: str  # the gRPC status code's name; every transport's request metrics use it as label
    http: int


STATUS: dict[ErrorKind, Status] = {
    ErrorKind.INVALID_ARGUMENT: Status("INVALID_ARGUMENT", 400),
    ErrorKind.LIMIT_EXCEEDED: Status("INVALID_ARGUMENT", 413),
    ErrorKind.NOT_FOUND: Status("NOT_FOUND", 404),
    ErrorKind.UNAUTHENTICATED: Status("UNAUTHENTICATED", 401),
    ErrorKind.RESOURCE_EXHAUSTED: Status("RESOURCE_EXHAUSTED", 429),
    ErrorKind.UNAVAILABLE: Status("UNAVAILABLE", 503),
    ErrorKind.DEADLINE_EXCEEDED: Status("DEADLINE_EXCEEDED", 504),
    ErrorKind.INTERNAL: Status("INTERNAL", 500),
}
INTERNAL_MESSAGE = "internal error; the server log has the details"
# The longest message a client gets. One may echo what the client sent (an unknown model's
# name, a pooling of 10,000 characters), and gRPC sends it percent-encoded in the trailers,
# which a client caps (grpcio: over 16 KiB the call fails RESOURCE_EXHAUSTED "received metadata
# size exceeds hard limit", measured from 2,000 CJK characters). 512 encode to at most 6 KiB.
MAX_MESSAGE_CHARS = 512
# Metric labels of the outcomes that are not errors.
OK, CANCELLED = "OK", "CANCELLED"


def label(kind: ErrorKind) -> str:
    """The ``code`` label of the request metrics for a kind: its gRPC code's name."""
    return STATUS[kind].grpc


def classify(e: BaseException) -> tuple[ErrorKind, str]:
    """The kind and message a client sees; unexpected errors (and every INTERNAL one) are logged
    with their traceback and answered with a generic message."""
    if isinstance(e, EncoderError) and e.kind is not ErrorKind.INTERNAL:
        message = str(e)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        return e.kind, message
    log.error("unexpected error while handling a request", exc_info=e, extra={"status": "INTERNAL"})
    return ErrorKind.INTERNAL, INTERNAL_MESSAGE
