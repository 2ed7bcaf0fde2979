"""The domain's exception hierarchy. Each error carries its kind; one table in the transport
layer (transport/status.py) gives each kind its gRPC code and HTTP status."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorKind(StrEnum):
    """What went wrong, in words no wire protocol owns."""

    INVALID_ARGUMENT = "invalid_argument"
    LIMIT_EXCEEDED = "limit_exceeded"  # invalid too, but a size: HTTP tells it apart (413)
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"  # a client sees a generic message; the log has the traceback


class EncoderError(Exception):
    """Base of every error the encoder raises on purpose."""

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL


class InvalidInput(EncoderError):
    """The request is malformed: an empty text, an unknown enum value, bad UTF-8."""

    kind = ErrorKind.INVALID_ARGUMENT


class LimitExceeded(InvalidInput):
    """A request exceeds a configured limit; the message names the limit and the value."""

    kind = ErrorKind.LIMIT_EXCEEDED

    def __init__(self, limit: str, value: int, maximum: int, where: str = "") -> None:
        at = f" at {where}" if where else ""
        super().__init__(f"{limit} exceeded{at}: {value} > {maximum}")
        self.limit, self.value, self.maximum = limit, value, maximum


class NotFound(InvalidInput):
    """The request names a model or version this server does not serve."""

    kind = ErrorKind.NOT_FOUND


class Overloaded(EncoderError):
    """Too much work is queued; retry later."""

    kind = ErrorKind.RESOURCE_EXHAUSTED


class DeadlineExceeded(EncoderError):
    """A server-side time limit ran out (a document's deadline)."""

    kind = ErrorKind.DEADLINE_EXCEEDED


class NotReady(EncoderError):
    """The model is not loaded yet, or the server is draining."""

    kind = ErrorKind.UNAVAILABLE


class BundleError(EncoderError):
    """A model bundle was refused; lists every problem found, each naming its file."""

    def __init__(self, path: object, problems: list[str]) -> None:
        self.path, self.problems = path, list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"bundle {path} refused ({len(self.problems)} problem(s)):\n{lines}")


class UnsafeSetting(EncoderError):
    """A setting the process refuses to run with, e.g. a cache directory others can write to."""


class ProviderUnavailable(EncoderError):
    """The requested onnxruntime execution provider is not in this installation."""
