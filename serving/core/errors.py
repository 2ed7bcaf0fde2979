"""The domain's exception hierarchy; each transport maps these classes to its status codes once."""

from __future__ import annotations


class EncoderError(Exception):
    """Base of every error the encoder raises on purpose."""


class InvalidInput(EncoderError):
    """The request is malformed: an empty text, an unknown enum value, bad UTF-8."""


class LimitExceeded(InvalidInput):
    """A request exceeds a configured limit; the message names the limit and the value."""

    def __init__(self, limit: str, value: int, maximum: int, where: str = "") -> None:
        at = f" at {where}" if where else ""
        super().__init__(f"{limit} exceeded{at}: {value} > {maximum}")
        self.limit, self.value, self.maximum = limit, value, maximum


class NotFound(InvalidInput):
    """The request names a model or version this server does not serve."""


class Overloaded(EncoderError):
    """Too much work is queued; retry later."""


class DeadlineExceeded(EncoderError):
    """A server-side time limit ran out (a document's deadline)."""


class NotReady(EncoderError):
    """The model is not loaded yet, or the server is draining."""


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
