"""Observability of a real server: --log-format json (every line of its stderr one JSON object,
under good calls, errors and load, with --workers too) and --otlp-endpoint (spans received by a
real OTLP/gRPC receiver here, continuing the caller's traceparent, with the runtime's stages)."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import struct
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import trustme
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.harness import ServerProcess, wait_health
from tests.support.samples import SMALL, TUTORIAL
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as oip_grpc

KEY = "observability-test-token"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
REQUIRED = {"time", "level", "logger", "message"}


@pytest.fixture(scope="module")
def bundle(bundle_factory) -> Path:
    return bundle_factory(cell="gru", **SMALL)[0]


def _encode(stub: pb_grpc.EncoderStub, texts: list[str], **metadata: str) -> pb.EncodeResponse:
    md = tuple(metadata.items()) + (("authorization", f"Bearer {KEY}"),)
    return stub.Encode(pb.EncodeRequest(texts=texts, request_id="req-7"), metadata=md, timeout=30)


def _post(port: int, body: dict, **headers: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/embeddings", json.dumps(body), {"authorization": f"Bearer {KEY}",
                 "content-type": "application/json", **headers})  # fmt: skip
    r = conn.getresponse()
    out = r.status, r.read()
    conn.close()
    return out


def _http_port(proc: ServerProcess, path: Path, timeout: float = 60) -> int:
    t0 = time.monotonic()
    while not path.is_file():
        assert proc.proc.poll() is None and time.monotonic() - t0 < timeout, proc.log
        time.sleep(0.02)
    return int(path.read_text())


def _stop(proc: ServerProcess) -> None:
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, proc.log


# --- JSON logs ---------------------------------------------------------------------------------


def _records(proc: ServerProcess) -> list[dict]:
    """Every stderr line as JSON with the required keys; fails naming the first line that is not."""
    out = []
    for line in proc.lines:
        try:
            rec = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n--- whole log:\n{proc.log[-4000:]}")
        assert isinstance(rec, dict) and rec.keys() >= REQUIRED, line
        out.append(rec)
    return out


def _drive(target: str, http_port: int) -> None:
    """Good calls, bad input, unauthenticated calls and a little load, on gRPC and HTTP."""
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.EncoderStub(ch)
        assert len(_encode(stub, [TUTORIAL]).encodings) == 1
        with pytest.raises(grpc.RpcError) as e:  # bad input: no texts
            _encode(stub, [])
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as e:  # no token
            stub.Encode(pb.EncodeRequest(texts=[TUTORIAL]), timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with futures.ThreadPoolExecutor(8) as pool:  # a little load
            done = list(pool.map(lambda i: _encode(stub, [TUTORIAL] * (1 + i % 4)), range(200)))
        assert len(done) == 200
    assert _post(http_port, {"input": [TUTORIAL], "model": "encoder"})[0] == 200
    assert _post(http_port, {"input": 7, "model": "encoder"})[0] == 400
    assert _post(http_port, {"input": "x"}, authorization="Bearer wrong")[0] == 401


@pytest.mark.parametrize("workers", [1, 2])
def test_json_logs_every_line_under_calls_errors_and_load(bundle, jieba_cache, workers) -> None:
    http_file = Path(tempfile.mkdtemp(prefix="encoder-http-")) / "port"
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--http-port-file", str(http_file), "--jieba-cache-dir", str(jieba_cache),
        "--workers", str(workers), "--log-level", "DEBUG",
        env={"LOG_FORMAT": "json", "AUTH_TOKENS": KEY},  # the flag's env variable works too
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        _drive(target, _http_port(proc, http_file))
    finally:
        _stop(proc)
    records = _records(proc)
    messages = [r["message"] for r in records]
    assert any(m.startswith("serving encoder.v1") for m in messages), messages
    assert "stopped" in messages[-1] and len({r["logger"] for r in records}) >= 2
    calls = [r for r in records if "status" in r]  # one DEBUG line a call
    by_status = {(r["method"], r["status"]) for r in calls}
    assert {("Encode", "OK"), ("Encode", "INVALID_ARGUMENT"), ("Encode", "UNAUTHENTICATED"),
            ("Embeddings", "OK"), ("Embeddings", "INVALID_ARGUMENT"),
            ("Embeddings", "UNAUTHENTICATED")} <= by_status  # fmt: skip
    assert all(r["model"] == "encoder" for r in calls)
    assert any(r.get("request_id") == "req-7" for r in calls)
    assert sum(r["method"] == "Encode" and r["status"] == "OK" for r in calls) >= 201


# --- tracing -----------------------------------------------------------------------------------


class Receiver(otlp_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: keeps every span with its resource's service.name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        self.lock = threading.Lock()

    def Export(
        self, request: otlp.ExportTraceServiceRequest, context
    ) -> otlp.ExportTraceServiceResponse:
        with self.lock:
            for rs in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    self.spans += [(attrs.get("service.name", ""), s) for s in ss.spans]
        return otlp.ExportTraceServiceResponse()

    def wait(self, predicate, timeout: float = 30) -> list[Span]:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                found = [s for _, s in self.spans if predicate(s)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no such span in {[s.name for _, s in self.spans]}")


@pytest.fixture()
def receiver():
    server = grpc.server(futures.ThreadPoolExecutor(2))
    rcv = Receiver()
    otlp_grpc.add_TraceServiceServicer_to_server(rcv, server)
    rcv.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield rcv
    server.stop(0)


def _attrs(span: Span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.int_value if v.HasField("int_value") else v.string_value
    return out


def _traceparent(parent_id: str) -> str:
    return f"00-{TRACE_ID}-{parent_id}-01"


def _server_span(receiver: Receiver, name: str, parent_id: str) -> Span:
    """The SERVER span ``name`` that continues the traceparent with ``parent_id``."""
    return receiver.wait(
        lambda s: (
            s.name == name
            and s.trace_id.hex() == TRACE_ID
            and s.parent_span_id.hex() == parent_id
            and s.kind == Span.SPAN_KIND_SERVER
        )
    )[0]


def _children(receiver: Receiver, span: Span) -> dict[str, list[Span]]:
    receiver.wait(lambda s: s.parent_span_id == span.span_id and s.name == "onnxruntime.run")
    out: dict[str, list[Span]] = {}
    for _, s in receiver.spans:
        if s.parent_span_id == span.span_id:
            out.setdefault(s.name, []).append(s)
            assert s.trace_id == span.trace_id
            assert span.start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano
            assert s.end_time_unix_nano <= span.end_time_unix_nano
    return out


def test_spans_reach_a_real_otlp_receiver_on_every_protocol(bundle, jieba_cache, receiver):
    http_file = Path(tempfile.mkdtemp(prefix="encoder-http-")) / "port"
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--http-port-file", str(http_file), "--jieba-cache-dir", str(jieba_cache),
        "--otlp-endpoint", f"http://127.0.0.1:{receiver.port}", "--otlp-service-name", "enc-test",
        "--model-name", "zh-encoder", "--auth-tokens", KEY,
        env={"OTEL_BSP_SCHEDULE_DELAY": "100"},  # the SDK's batch delay, 5 s by default
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        http_port = _http_port(proc, http_file)
        with grpc.insecure_channel(target) as ch:
            texts = [TUTORIAL, "你好"]
            _encode(pb_grpc.EncoderStub(ch), texts, traceparent=_traceparent("00f067aa0ba902b7"))
            with pytest.raises(grpc.RpcError):
                _encode(pb_grpc.EncoderStub(ch), [], traceparent=_traceparent("00f067aa0ba902b8"))
            infer = oip.ModelInferRequest(model_name="zh-encoder", id="infer-1")
            infer.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
            infer.raw_input_contents.append(struct.pack("<I", len(TUTORIAL.encode())) +
                                            TUTORIAL.encode())  # fmt: skip
            md = (("traceparent", _traceparent("00f067aa0ba902b9")),
                  ("authorization", f"Bearer {KEY}"))  # fmt: skip
            oip_grpc.GRPCInferenceServiceStub(ch).ModelInfer(infer, metadata=md, timeout=30)
        body = {"input": [TUTORIAL], "model": "zh-encoder"}
        assert _post(http_port, body, traceparent=_traceparent("00f067aa0ba902ba"))[0] == 200

        encode = _server_span(receiver, "encoder.v1.Encoder/Encode", "00f067aa0ba902b7")
        a = _attrs(encode)
        assert a["encoder.model"] == "zh-encoder" and a["encoder.texts"] == 2
        assert a["encoder.tokens"] == 19 + 1 and a["encoder.request_id"] == "req-7"
        assert a["rpc.grpc.status_code"] == 0 and a["encoder.status"] == "OK"
        assert a["rpc.system"] == "grpc" and a["rpc.method"] == "Encode"
        stages = _children(receiver, encode)
        assert set(stages) == {"tokenize", "queue", "onnxruntime.run"}, stages
        assert _attrs(stages["tokenize"][0]) == {"encoder.texts": 2, "encoder.tokens": 20}
        run = _attrs(stages["onnxruntime.run"][0])
        assert run["encoder.batch.texts"] >= 2 and run["encoder.batch.padded_tokens"] >= 20
        assert all(name == "enc-test" for name, _ in receiver.spans)

        bad = _server_span(receiver, "encoder.v1.Encoder/Encode", "00f067aa0ba902b8")
        assert _attrs(bad)["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert _attrs(bad)["encoder.status"] == "INVALID_ARGUMENT"

        name = "inference.GRPCInferenceService/ModelInfer"
        infer_span = _server_span(receiver, name, "00f067aa0ba902b9")
        assert _attrs(infer_span)["encoder.request_id"] == "infer-1"
        assert {"tokenize", "queue", "onnxruntime.run"} <= set(_children(receiver, infer_span))

        post = _server_span(receiver, "POST /v1/embeddings", "00f067aa0ba902ba")
        a = _attrs(post)
        assert a["http.response.status_code"] == 200 and a["encoder.texts"] == 1
        assert a["encoder.tokens"] == 19 and a["encoder.model"] == "zh-encoder"
        assert {"tokenize", "queue", "onnxruntime.run"} <= set(_children(receiver, post))
    finally:
        _stop(proc)


def test_a_call_without_traceparent_starts_its_own_trace(bundle, jieba_cache, receiver) -> None:
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--jieba-cache-dir", str(jieba_cache),
        "--otlp-endpoint", f"http://127.0.0.1:{receiver.port}", "--auth-tokens", KEY,
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        with grpc.insecure_channel(target) as ch:
            _encode(pb_grpc.EncoderStub(ch), [TUTORIAL])
            with pytest.raises(grpc.RpcError):  # refused by auth: traced with its status
                pb_grpc.EncoderStub(ch).Encode(pb.EncodeRequest(texts=[TUTORIAL]), timeout=30)
    finally:
        _stop(proc)  # SIGTERM sends what is batched: no wait on the 5 s default delay
    spans = receiver.wait(lambda s: s.name == "encoder.v1.Encoder/Encode", timeout=5)
    assert len(spans) == 2 and all(not s.parent_span_id for s in spans)
    assert {_attrs(s)["encoder.status"] for s in spans} == {"OK", "UNAUTHENTICATED"}
    assert not [s for _, s in receiver.spans if s.name.startswith("grpc.health")]  # probes


def test_native_stderr_is_wrapped_too(bundle, jieba_cache, tmp_path) -> None:
    """gRPC's C-core writes to stderr itself: at its default verbosity, a failed TLS handshake
    (here a plaintext client on a TLS port) and a port that is taken. Both come out as JSON."""
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    args = ["--bundle", str(bundle), "--jieba-cache-dir", str(jieba_cache), "--log-format", "json"]
    tls = ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")]
    proc = ServerProcess(*args, *tls, "--listen", "127.0.0.1:0")
    try:
        target = f"127.0.0.1:{proc.port()}"
        with grpc.insecure_channel(target) as ch, pytest.raises(grpc.RpcError) as e:
            pb_grpc.EncoderStub(ch).Encode(pb.EncodeRequest(texts=[TUTORIAL]), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        time.sleep(0.5)
    finally:
        _stop(proc)
    handshake = [r for r in _records(proc) if r["logger"] == "grpc.core"]
    assert handshake and "Handshake failed" in handshake[0]["message"], proc.log
    assert handshake[0]["source"].startswith("ssl_transport_security.cc:")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = ServerProcess(*args, "--listen", f"127.0.0.1:{taken.getsockname()[1]}")
        assert proc.wait(60) == 2
    records = _records(proc)
    assert any(r["logger"] == "grpc.core" and r["level"] == "ERROR" for r in records), records
    assert records[-1]["message"].startswith("cannot start")


def test_logs_and_spans_name_the_model_each_call_runs(
    bundle, bundle_factory, jieba_cache, receiver
) -> None:
    """Two models: a call on the second one logs and traces its name and version, not the
    default's."""
    from zh_rnn_encoder.core.bundle import bundle_digest

    news = bundle_factory(seed=5, **SMALL)[0]
    http_file = Path(tempfile.mkdtemp(prefix="encoder-http-")) / "port"
    proc = ServerProcess(
        "--model", f"general={bundle}", "--model", f"news={news}", "--listen", "127.0.0.1:0",
        "--http-listen", "127.0.0.1:0", "--http-port-file", str(http_file),
        "--jieba-cache-dir", str(jieba_cache), "--log-level", "DEBUG", "--log-format", "json",
        "--otlp-endpoint", f"http://127.0.0.1:{receiver.port}", "--auth-tokens", KEY,
        env={"OTEL_BSP_SCHEDULE_DELAY": "100"},
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        md = (("traceparent", _traceparent("00f067aa0ba902c1")), ("authorization", f"Bearer {KEY}"))
        with grpc.insecure_channel(target) as ch:
            r = pb.EncodeRequest(texts=[TUTORIAL], model="news", request_id="on-news")
            pb_grpc.EncoderStub(ch).Encode(r, metadata=md, timeout=30)
            _encode(pb_grpc.EncoderStub(ch), [TUTORIAL])  # the default model
        body = {"input": [TUTORIAL], "model": "news"}
        assert _post(_http_port(proc, http_file), body)[0] == 200
        span = _server_span(receiver, "encoder.v1.Encoder/Encode", "00f067aa0ba902c1")
        a = _attrs(span)
        assert a["encoder.model"] == "news" and a["encoder.model_version"] == bundle_digest(news)
    finally:
        _stop(proc)
    calls = {(r["method"], r.get("request_id", "")): r for r in _records(proc) if "status" in r}
    on_news, on_default = calls[("Encode", "on-news")], calls[("Encode", "req-7")]
    assert (on_news["model"], on_news["model_version"]) == ("news", bundle_digest(news))
    assert on_default["model"] == "general"
    assert on_default["model_version"] == bundle_digest(bundle)
    assert calls[("Embeddings", "")]["model"] == "news"
