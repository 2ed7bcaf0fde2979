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

_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [  # the first match wins
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.NotReady, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
]
INTERNAL_MESSAGE = "internal error; the server log has the details"


def status_of(e: Exception) -> tuple[grpc.StatusCode, str]:
    """The status and message a client sees; unknown errors are logged with their traceback."""
    for cls, code in _STATUS:
        if isinstance(e, cls):
            return code, str(e)
    log.exception("unexpected error while handling a request")
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


class Unparsed:
    """Stands in for a request that was not parsed: the error the handler raises instead."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def lenient(
    message_class: type, door: Callable[[int], Exception | None] | None = None
) -> Callable[[bytes], object]:
    """A deserializer that lets the handler answer INVALID_ARGUMENT instead of gRPC's INTERNAL
    for bytes that do not parse, and, with ``door``, refuses by size before parsing at all."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> object:
        if door and (refused := door(len(data))):
            return Unparsed(refused)
        try:
            return message_class.FromString(data)
        except DecodeError as e:
            return Unparsed(errors.InvalidInput(f"request is not a valid {name}: {e}"))

    return parse


def check_parsed(request: object) -> None:
    if isinstance(request, Unparsed):
        raise request.error


def refusing(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler that answers ``code`` without reading the request, for interceptors that
    refuse a call on its headers. It is request-streaming whatever the method, so the request's
    message is never received (a unary handler would receive it whole first, and a storm of
    refused 1 MB requests costs the server their bytes); on the wire a unary call is a stream
    of one message, and every client sees just the status."""

    async def refuse(requests: object, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    return grpc.stream_stream_rpc_method_handler(refuse)


def unary(handler: Callable) -> Callable:
    """Maps every error to its status and records the request by method and status; for
    unary and client-streaming handlers (a stream of requests is never an Unparsed).

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
