"""The one map from domain errors to gRPC status codes: unparsable requests, handler errors."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

import grpc
from google.protobuf.message import DecodeError

from zh_rnn_encoder.core import errors

log = logging.getLogger("encoder")

_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.NotReady, grpc.StatusCode.UNAVAILABLE),
]
INTERNAL_MESSAGE = "internal error; the server log has the details"


def status_of(e: Exception) -> tuple[grpc.StatusCode, str]:
    """The status and message a client sees; unknown errors are logged with their traceback."""
    for cls, code in _STATUS:
        if isinstance(e, cls):
            return code, str(e)
    log.exception("unexpected error while handling a request")
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


class Malformed:
    """Stands in for a request protobuf could not parse (e.g. a text that is not UTF-8)."""

    def __init__(self, message_type: str, error: Exception) -> None:
        self.reason = f"request is not a valid {message_type}: {error}"


def lenient(message_class: type) -> Callable[[bytes], object]:
    """A deserializer that lets the handler answer INVALID_ARGUMENT instead of gRPC's INTERNAL."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> object:
        try:
            return message_class.FromString(data)
        except DecodeError as e:
            return Malformed(name, e)

    return parse


def check_parsed(request: object) -> None:
    if isinstance(request, Malformed):
        raise errors.InvalidInput(request.reason)


def unary(handler: Callable) -> Callable:
    """Maps every error to its status and records the request by method and status.

    The servicer provides ``record(method, code, t0)``.
    """
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapped(self: object, request: object, context: grpc.aio.ServicerContext) -> object:
        t0, code = time.perf_counter(), grpc.StatusCode.OK
        try:
            check_parsed(request)
            return await handler(self, request, context)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as e:  # mapped to a status, unknown ones logged
            code, message = status_of(e)
        finally:
            self.record(method, code, t0)
        await context.abort(code, message)

    return wrapped
