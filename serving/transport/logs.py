"""The server's logging: text or JSON (--log-format), every logger through one root handler, and
the call in progress (method, request id) on each record logged while it runs.

JSON is python-json-logger's formatter: a stdlib logging.Formatter, so uvicorn's, grpc's and
asyncio's loggers need no adapter, only to propagate to the root handler (docs/observability.md).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger("encoder")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The call a task is serving: (method, request id or ""), set by each transport as it starts one.
_CALL: ContextVar[tuple[str, str] | None] = ContextVar("encoder_call", default=None)
_MODEL: ContextVar[tuple[str, str] | None] = ContextVar("encoder_model", default=None)
# Loggers that bring their own stderr handler when imported; in JSON they propagate instead.
_OWN_HANDLERS = ("jieba", "uvicorn", "uvicorn.error", "uvicorn.access")
RELAYED = "ENCODER_STDERR_RELAY"  # set once stderr goes through the relay (workers inherit it)
_RELAY: list[subprocess.Popen[bytes]] = []  # kept, never waited for: it outlives the server


def request_id(request: object) -> str:
    """A request message's own id (encoder.v1's request_id, the Open Inference Protocol's id)."""
    rid = getattr(request, "request_id", None) or getattr(request, "id", None)
    return rid if isinstance(rid, str) else ""


def begin(method: str, request_id: str = "") -> None:
    """Marks the current task as serving ``method``: records logged from it carry the call."""
    _CALL.set((method, request_id))


def bind_model(name: str, version: str) -> None:
    """The current task's call runs model ``name`` at ``version``: its records say so (else they
    name the default model)."""
    _MODEL.set((name, version))


def done(method: str, status: str, started: float | None = None, request_id: str = "") -> None:
    """One line per finished call, at DEBUG (off at the default INFO: one cached level check);
    ``started`` None: refused on its headers."""
    if log.isEnabledFor(logging.DEBUG):
        ms = 0.0 if started is None else (time.perf_counter() - started) * 1000
        fields = {"method": method, "status": status, "duration_ms": round(ms, 3)}
        if request_id:
            fields["request_id"] = request_id
        log.debug("%s %s %.1f ms", method, status, ms, extra=fields)


class CallFields(logging.Filter):
    """Adds the call in progress (method, request id) and its model (``bind_model``; the default
    model until the call has looked its model up) to each record."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def filter(self, record: logging.LogRecord) -> bool:
        call, fields = _CALL.get(), record.__dict__
        if call is not None:
            method, request_id = call
            fields.setdefault("method", method)
            if request_id:
                fields.setdefault("request_id", request_id)
        if "method" in fields:
            model = _MODEL.get()
            if model is None:
                fields.setdefault("model", self.model)
            else:
                fields.setdefault("model", model[0])
                fields.setdefault("model_version", model[1])
        return True


def json_formatter() -> logging.Formatter:
    """time, level, logger and message first, then the record's extra fields (the call's)."""
    from pythonjsonlogger.json import JsonFormatter

    class Formatter(JsonFormatter):
        def add_fields(
            self, log_data: dict[str, Any], record: logging.LogRecord, message: dict[str, Any]
        ) -> None:
            log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
            super().add_fields(log_data, record, message)

    return Formatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger", "exc_info": "traceback"},
        # uvicorn's colour copy of each message; the rest are LogRecord's own attributes
        reserved_attrs=[*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "color_message"],
    )


def setup(level: str, fmt: str = "text", model: str = "", relay: bool = False) -> None:
    """The root handler on stderr, in ``fmt``, for every logger of the process; with ``relay``
    (JSON), what is written to stderr natively is wrapped too (stderr_relay.py)."""
    if fmt == "json" and relay:
        _relay_stderr()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(CallFields(model))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if fmt != "json":
        return
    import jieba  # noqa: F401  (its handler is added on import: import it now, then remove it)

    for name in _OWN_HANDLERS:  # uvicorn is started with log_config=None: it adds none later
        own = logging.getLogger(name)
        own.handlers.clear()
        own.propagate = True
    logging.captureWarnings(True)  # warnings.warn: a "py.warnings" record, not a bare line
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda a: _log_uncaught(a.exc_type, a.exc_value, a.exc_traceback)


def _relay_stderr() -> None:
    """File descriptor 2 becomes a pipe into stderr_relay.py, whose output is the real stderr."""
    if os.environ.get(RELAYED):  # a worker: its stderr is its supervisor's relay already
        return
    script = Path(__file__).with_name("stderr_relay.py")
    sys.stderr.flush()
    relay = subprocess.Popen(  # its output: the real stderr; its own session: a terminal's ^C
        [sys.executable, "-I", "-S", str(script)],  # reaches the server alone
        stdin=subprocess.PIPE,
        stdout=2,
        start_new_session=True,
    )
    _RELAY.append(relay)
    assert relay.stdin is not None
    os.dup2(relay.stdin.fileno(), 2)
    relay.stdin.close()  # fd 2 holds the pipe now; the relay ends when every holder exits
    os.environ[RELAYED] = "1"


def _log_uncaught(
    typ: type[BaseException], value: BaseException | None, tb: TracebackType | None
) -> None:
    """An uncaught exception as one record with its traceback, not lines of bare text."""
    log.critical("uncaught exception", exc_info=(typ, value or typ(), tb))
