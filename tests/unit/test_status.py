"""The one status table: every error kind has a gRPC code and an HTTP status, each domain error
its kind, and the metrics' null object has every method the Prometheus one has."""

from __future__ import annotations

import grpc
import pytest

from zh_rnn_encoder.core import errors
from zh_rnn_encoder.core.errors import ErrorKind
from zh_rnn_encoder.transport.metrics import Metrics
from zh_rnn_encoder.transport.rpc import status_of
from zh_rnn_encoder.transport.status import INTERNAL_MESSAGE, STATUS, classify


def test_every_kind_has_a_grpc_code_and_an_http_status() -> None:
    assert set(STATUS) == set(ErrorKind)
    for s in STATUS.values():
        assert grpc.StatusCode[s.grpc] is not grpc.StatusCode.OK and 400 <= s.http < 600


@pytest.mark.parametrize(
    ("error", "code", "http"),
    [
        (errors.InvalidInput("texts[0]: empty"), "INVALID_ARGUMENT", 400),
        (errors.LimitExceeded("max_chars_per_text", 9, 8), "INVALID_ARGUMENT", 413),
        (errors.NotFound("unknown model 'x'"), "NOT_FOUND", 404),
        (errors.Overloaded("queue full"), "RESOURCE_EXHAUSTED", 429),
        (errors.NotReady("model is loading"), "UNAVAILABLE", 503),
        (errors.DeadlineExceeded("document_deadline_s=1 exceeded"), "DEADLINE_EXCEEDED", 504),
    ],
)
def test_each_domain_error_answers_its_kinds_status(error, code, http) -> None:
    kind, message = classify(error)
    assert (STATUS[kind].grpc, STATUS[kind].http, message) == (code, http, str(error))
    assert status_of(error) == (grpc.StatusCode[code], str(error))


def test_a_message_that_echoes_a_long_value_is_cut() -> None:
    """gRPC would fail the call RESOURCE_EXHAUSTED on the trailers' size instead."""
    kind, message = classify(errors.NotFound(f"unknown model {'好' * 10_000!r}"))
    assert kind is ErrorKind.NOT_FOUND and len(message) == 512 and message.endswith("好…")
    assert message.startswith("unknown model '好")


@pytest.mark.parametrize("error", [ValueError("secret"), errors.BundleError("b", ["x"])])
def test_unexpected_errors_are_internal_with_a_generic_message(error, caplog) -> None:
    assert classify(error) == (ErrorKind.INTERNAL, INTERNAL_MESSAGE)
    assert status_of(error) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    assert "unexpected error" in caplog.text  # with the traceback, in the log only


def test_null_metrics_has_every_method_prometheus_has() -> None:
    from zh_rnn_encoder.transport.prometheus import PrometheusMetrics

    public = {n for n in vars(PrometheusMetrics) if callable(getattr(PrometheusMetrics, n))}
    assert {n for n in public if not n.startswith("_")} <= set(vars(Metrics))
