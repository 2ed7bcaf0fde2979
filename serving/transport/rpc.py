"""What every gRPC service of the server shares: the gRPC side of the status table, lenient
request parsing, handlers that refuse on headers, the error map around each handler, and TLS."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from zh_rnn_encoder.core.errors import EncoderError, ErrorKind, InvalidInput, LimitExceeded
from zh_rnn_encoder.transport import logs
from zh_rnn_encoder.transport.metrics import Metrics
from zh_rnn_encoder.transport.security import expiry_warning, read_tls
from zh_rnn_encoder.transport.status import STATUS, classify

log = logging.getLogger("encoder")
# Sheds a request by its size in bytes before it is parsed: the error to answer, or None.
Shed = Callable[[int], EncoderError | None]
M = TypeVar("M", bound=Message)
S = TypeVar("S", bound="Recorded")
Q = TypeVar("Q")
R = TypeVar("R")
# A handler's context (its type arguments would be the method's messages)
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class Recorded(Protocol):
    """A servicer whose handlers ``unary`` wraps: it records them in its ``metrics``."""

    metrics: Metrics


def code_of(kind: ErrorKind) -> grpc.StatusCode:
    return grpc.StatusCode[STATUS[kind].grpc]


def status_of(e: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and message a client sees; unknown errors are logged with their traceback."""
    kind, message = classify(e)
    return code_of(kind), message


class Unparsed:
    """Stands in for a request that was not parsed: the error the handler raises instead."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def lenient(message_class: type[M], shed: Shed | None = None) -> Callable[[bytes], M | Unparsed]:
    """A deserializer that lets the handler answer INVALID_ARGUMENT instead of gRPC's INTERNAL
    for bytes that do not parse, and, with ``shed``, refuses by size before parsing at all."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> M | Unparsed:
        if shed and (refused := shed(len(data))):
            return Unparsed(refused)
        try:
            return message_class.FromString(data)
        except DecodeError as e:
            return Unparsed(InvalidInput(f"request is not a valid {name}: {e}"))

    return parse


def check_parsed(request: Q | Unparsed) -> Q:
    """The request, or the error it stands for when it was not parsed."""
    if isinstance(request, Unparsed):
        raise request.error
    return request


def serialize_checked(message: Message, max_message_bytes: int) -> bytes:
    """A response, serialized by its handler (its method's serializer is ``sent_as_is``) so that
    its exact size is checked once it is known: over the limit it is LimitExceeded naming
    max_message_bytes (INVALID_ARGUMENT), where gRPC's own check would answer
    RESOURCE_EXHAUSTED "Sent message larger than max" and log an ERROR. The estimates made
    before the work (runtime/admission.py) make this a backstop; it costs nothing, as gRPC
    would serialize the message anyway."""
    data = message.SerializeToString()
    if len(data) > max_message_bytes:
        raise LimitExceeded("max_message_bytes", len(data), max_message_bytes, "response")
    return data


def sent_as_is(data: bytes) -> bytes:
    """The response serializer of a method whose handler returns (or writes) ``wire`` bytes."""
    return data


def refusing(kind: ErrorKind, message: str) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that answers ``kind``'s code without reading the request, for interceptors that
    refuse a call on its headers. It is request-streaming whatever the method, so the request's
    message is never received (a unary handler would receive it whole first, and a storm of
    refused 1 MB requests costs the server their bytes); on the wire a unary call is a stream
    of one message, and every client sees just the status."""
    code = code_of(kind)

    async def refuse(requests: object, context: Context) -> None:
        await context.abort(code, message)

    return grpc.stream_stream_rpc_method_handler(refuse)


def unary(
    handler: Callable[[S, Q, Context], Awaitable[R]],
) -> Callable[[S, Q, Context], Awaitable[R]]:
    """Maps every error to its status and records the request by method and status; for
    unary and client-streaming handlers (a stream of requests is never an Unparsed).

    The servicer provides ``metrics`` (transport/metrics.py).
    """
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapped(self: S, request: Q, context: Context) -> R:
        t0, code = time.perf_counter(), grpc.StatusCode.OK
        request_id = logs.request_id(request)
        logs.begin(method, request_id)  # on every record logged while it runs
        try:
            check_parsed(request)
            return await handler(self, request, context)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as e:  # mapped to a status, unknown ones logged
            code, message = status_of(e)
        finally:
            self.metrics.record(method, code.name, t0)
            logs.done(method, code.name, t0, request_id)
        await context.abort(code, message)

    return wrapped


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None
) -> grpc.ServerCredentials:
    """TLS with this certificate chain and key; with ``client_ca``, clients must present a
    certificate that it signed (mutual TLS)."""
    chain, private, ca = read_tls(cert, key, client_ca)
    for name, pem in ((cert, chain), (client_ca, ca)):
        if pem and (warning := expiry_warning(str(name), pem)):
            log.warning("%s", warning)  # expired too: see docs/security.md, why not refused
    return grpc.ssl_server_credentials(
        [(private, chain)], root_certificates=ca, require_client_auth=ca is not None
    )
