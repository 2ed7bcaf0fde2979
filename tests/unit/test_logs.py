"""--log-format: the JSON formatter, the call's fields on each record, every logger through the
one root handler, and the flags."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest

from zh_rnn_encoder.transport import logs
from zh_rnn_encoder.transport.config import from_args


@pytest.fixture()
def stderr():
    """A buffer for setup()'s handler (pytest swaps sys.stderr at each phase); the root logger,
    hooks, warnings capture and call restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, sys.excepthook, threading.excepthook
    yield io.StringIO()
    root.handlers[:], _, sys.excepthook, threading.excepthook = saved
    root.setLevel(saved[1])
    logging.captureWarnings(False)
    logs._CALL.set(None)


def _setup(buf: io.StringIO, *args: str, **kw: str) -> None:
    logs.setup(*args, **kw)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buf)


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_carry_the_call_in_progress(stderr: io.StringIO) -> None:
    _setup(stderr, "DEBUG", "json", model="zh-encoder")
    log = logging.getLogger("encoder")
    log.info("outside a call")
    logs.begin("Encode", "req-1")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("inside a call")
    logs.done("Encode", "OK", None, "req-1")
    first, second, third = _lines(stderr)
    assert list(first)[:4] == ["time", "level", "logger", "message"]
    assert first["level"] == "INFO" and first["logger"] == "encoder" and "method" not in first
    assert first["time"].endswith("+00:00")  # ISO 8601, UTC
    assert second["method"] == "Encode" and second["request_id"] == "req-1"
    assert second["model"] == "zh-encoder" and "ValueError: boom" in second["traceback"]
    assert third["status"] == "OK" and third["duration_ms"] == 0 and third["level"] == "DEBUG"


def test_other_libraries_loggers_go_through_the_same_handler(stderr: io.StringIO) -> None:
    _setup(stderr, "INFO", "json")
    for name in ("uvicorn.error", "grpc._cython.cygrpc", "asyncio", "jieba"):
        logging.getLogger(name).warning("from %s", name, extra={"color_message": "\x1b[1m"})
    import warnings

    warnings.warn("a warning", UserWarning, stacklevel=1)
    sys.excepthook(RuntimeError, RuntimeError("uncaught"), None)
    lines = _lines(stderr)  # every line JSON: jieba's own handler is gone, not printing twice
    assert [x["logger"] for x in lines] == [
        "uvicorn.error", "grpc._cython.cygrpc", "asyncio", "jieba", "py.warnings", "encoder",
    ]  # fmt: skip
    assert "color_message" not in lines[0] and "a warning" in lines[4]["message"]
    assert lines[5]["level"] == "CRITICAL" and "RuntimeError: uncaught" in lines[5]["traceback"]


def test_text_stays_the_default(stderr: io.StringIO) -> None:
    _setup(stderr, "INFO")
    logging.getLogger("encoder").info("hello")
    assert stderr.getvalue().rstrip().endswith("INFO encoder: hello")


def test_done_logs_nothing_above_debug(stderr: io.StringIO) -> None:
    _setup(stderr, "INFO", "json")
    logs.done("Encode", "OK", 0.0)
    assert stderr.getvalue() == ""


def test_request_ids_of_each_protocol() -> None:
    from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2
    from zh_rnn_encoder.proto.inference import open_inference_pb2

    assert logs.request_id(encoder_pb2.EncodeRequest(request_id="a")) == "a"
    assert logs.request_id(open_inference_pb2.ModelInferRequest(id="b")) == "b"
    assert logs.request_id(open_inference_pb2.ServerLiveRequest()) == ""
    assert logs.request_id(object()) == ""


def test_flags_and_env() -> None:
    cfg = from_args(["--bundle", "b"], env={})
    assert (cfg.log_format, cfg.otlp_endpoint, cfg.otlp_service_name) == (
        "text",
        "",
        "zh-rnn-encoder",
    )
    env = {"LOG_FORMAT": "json", "OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    cfg = from_args(["--bundle", "b", "--otlp-service-name", "enc"], env=env)
    assert (cfg.log_format, cfg.otlp_endpoint, cfg.otlp_service_name) == (
        "json",
        "http://127.0.0.1:4317",
        "enc",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-format", "xml"],
        ["--otlp-endpoint", "127.0.0.1:4317"],
        ["--otlp-endpoint", "grpc://collector:4317"],
        ["--otlp-endpoint", "http://"],
    ],
)
def test_bad_values_are_refused(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        from_args(["--bundle", "b", *argv], env={})
    assert e.value.code == 2 and argv[0] in capsys.readouterr().err


def test_the_relay_wraps_what_is_not_json() -> None:
    from zh_rnn_encoder.transport.stderr_relay import wrap

    line = b'{"time": "t", "level": "INFO", "logger": "encoder", "message": "m"}\n'
    assert wrap(line) == line
    absl = b"E0000 00:00:1764521000.123456    4242 chttp2_server.cc:1052] No address added\n"
    rec = json.loads(wrap(absl))
    assert (rec["level"], rec["logger"], rec["source"]) == (
        "ERROR",
        "grpc.core",
        "chttp2_server.cc:1052",
    )
    assert rec["message"] == "No address added" and rec["time"].endswith("+00:00")
    for raw in (b"Segmentation fault\n", b"{not json\n", "你好".encode() + b"\xff\n"):
        rec = json.loads(wrap(raw))
        assert rec["logger"] == "stderr" and rec["level"] == "WARNING" and rec["message"]
