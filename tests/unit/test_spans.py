"""Tracing without sockets: the batcher reports each request's wait and runs to the Spans hook,
and Tracing turns them into child spans of the call's span (the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_batcher import Model, rows
from zh_rnn_encoder.runtime.batcher import Batcher
from zh_rnn_encoder.runtime.spans import NO_SPANS, Spans


class Recorder(Spans):
    enabled = True

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def queued(self, span: object, start: float, end: float) -> None:
        assert start <= end
        self.events.append(("queued", span))

    def ran(self, span: object, start: float, end: float, texts: int, padded: int) -> None:
        assert start <= end
        self.events.append(("ran", span, texts, padded))


def test_the_batcher_reports_each_traced_requests_wait_and_runs() -> None:
    spans = Recorder()

    async def go() -> None:
        b = Batcher(Model(), pad_id=0, max_batch_tokens=10, max_queued_texts=100, spans=spans)
        b.start()
        await asyncio.gather(
            b.submit(rows(5, 5, 4), span="a"),  # two runs: 5+5 then 4 (budget 10)
            b.submit(rows(1)),  # not traced
        )
        await b.close()

    asyncio.run(go())
    a = [e for e in spans.events if e[1] == "a"]
    assert [e[0] for e in a] == ["queued", "ran", "ran"]  # one wait, then each run
    assert all(e[1] == "a" for e in spans.events)
    assert sorted(e[2] for e in a[1:]) == [2, 2] and sorted(e[3] for e in a[1:]) == [8, 10]


def test_off_is_the_null_hook() -> None:
    assert NO_SPANS.enabled is False and NO_SPANS.current() is None


otel = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


def test_stages_become_child_spans_of_the_call() -> None:
    from zh_rnn_encoder.transport.tracing import Tracing

    exporter = otel.InMemorySpanExporter()
    tracing = Tracing("http://127.0.0.1:1", "svc", "zh-encoder", exporter=exporter)
    carrier = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    with tracing.call("encoder.v1.Encoder/Encode", carrier, {"rpc.method": "Encode"}):
        span = tracing.current()
        assert span is not None
        tracing.tokenized(span, 1.0, 1.5, texts=2, tokens=20)
        tracing.tokenized(span, 1.5, 1.6, texts=1, tokens=3)  # a stream's second request
        tracing.queued(span, 1.6, 1.7)
        tracing.ran(span, 1.7, 2.0, texts=4, padded_tokens=40)
    assert tracing.current() is None  # no call: nothing to hang stages on
    tracing.close()
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    call = by_name["encoder.v1.Encoder/Encode"]
    assert f"{call.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert f"{call.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert call.attributes["encoder.texts"] == 3 and call.attributes["encoder.tokens"] == 23
    assert call.attributes["encoder.model"] == "zh-encoder"
    assert call.resource.attributes["service.name"] == "svc"
    run = by_name["onnxruntime.run"]
    assert run.parent.span_id == call.context.span_id
    assert run.end_time - run.start_time == pytest.approx(0.3e9, abs=1e3)
    assert dict(run.attributes) == {"encoder.batch.texts": 4, "encoder.batch.padded_tokens": 40}
    assert by_name["queue"].end_time == run.start_time
