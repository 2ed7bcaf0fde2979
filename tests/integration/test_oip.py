"""The Open Inference Protocol (KServe v2) service: stock tritonclient and kserve clients, each in
its own process, against a real server; vectors equal encoder.v1's. Edge cases through our own
generated stub, which speaks the same wire."""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest

from tests.support import stock
from tests.support.harness import InProcessServer
from tests.support.samples import TEXTS
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.proto.inference import open_inference_pb2 as pb
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as pb_grpc
from zh_rnn_encoder.runtime.limits import Limits

BAD_UTF8 = b"\x02\x00\x00\x00\xff\xfe" + b"\x01\x00\x00\x00a"
ATOL = contract.BATCH_INVARIANCE_ATOL  # same encoder, other batch: batch invariance applies


@pytest.fixture(scope="module")
def served(bundle_factory, jieba_cache):
    bundle, _ = bundle_factory()
    srv = InProcessServer(
        bundle, jieba_cache, model_name="zh-encoder", limits=Limits(max_texts_per_request=8)
    ).load()
    client = EncoderClient(srv.target)
    yield srv, client
    client.close()
    srv.stop()


@pytest.fixture(scope="module")
def stub(served):
    with grpc.insecure_channel(served[0].target) as ch:
        yield pb_grpc.GRPCInferenceServiceStub(ch)


def _padded(rows: list[np.ndarray], fill: float) -> np.ndarray:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width, *rows[0].shape[1:]), fill, dtype=rows[0].dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def test_tritonclient_unmodified(served) -> None:
    srv, client = served
    args = {"target": srv.target, "model": "zh-encoder", "texts": TEXTS}
    got = stock.run("tritonclient_oip", args)
    assert got["live"] and got["ready"] and got["model_ready"]
    ref = client.encode(TEXTS, token_vectors=True)
    dim = ref[0].vector.shape[0]

    meta = got["metadata"]
    version = client.info()["model_version"]  # the hex sha256 of the bundle's bundle.json
    assert meta["name"] == "zh-encoder" and meta["versions"] == [version] and len(version) == 64
    assert meta["inputs"] == [{"name": "TEXT", "datatype": "BYTES", "shape": ["-1"]}]
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
    assert outputs["sentence_vector"] == ("FP32", ["-1", str(dim)])
    assert set(outputs) == {"sentence_vector", "token_vectors", "token_lengths", "ids"}
    assert got["server_metadata"]["name"] == "zh-rnn-encoder"

    every = got["all"]  # no outputs named: every output, request id echoed
    assert every["id"] == "req-7" and every["model_version"] == version
    assert every["names"] == ["sentence_vector", "token_vectors", "token_lengths", "ids"]
    a = {k: np.array(v) for k, v in every["arrays"].items()}
    assert np.abs(a["sentence_vector"] - np.stack([e.vector for e in ref])).max() <= ATOL
    assert a["token_lengths"].tolist() == [len(e.ids) for e in ref]
    pad_id = client.info()["pad_id"]
    assert (a["ids"] == _padded([e.ids for e in ref], pad_id)).all()
    assert np.abs(a["token_vectors"] - _padded([e.token_vectors for e in ref], 0.0)).max() <= ATOL

    n1 = got["n1"]  # shape [N, 1], one output asked for, parameters mean + normalize
    assert n1["names"] == ["sentence_vector"]
    mean = client.encode(TEXTS, pooling="mean", normalize=True)
    v = np.array(n1["arrays"]["sentence_vector"])
    assert np.abs(v - np.stack([e.vector for e in mean])).max() <= ATOL

    assert got["unknown_model"]["status"] == "StatusCode.NOT_FOUND"
    assert "unknown model 'nope'" in got["unknown_model"]["message"]
    assert got["unknown_version"]["status"] == "StatusCode.NOT_FOUND"
    assert got["bad_parameter"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "median" in got["bad_parameter"]["message"]
    assert got["typo_parameter"]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "parameters.poolng: unknown" in got["typo_parameter"]["message"]
    assert "'logits'" in got["unknown_output"]["message"]


def test_kserve_client_unmodified(served) -> None:
    srv, client = served
    got = stock.run("kserve_oip", {"target": srv.target, "model": "zh-encoder", "texts": TEXTS})
    assert got["live"] and got["ready"] and got["model_ready"] and got["id"] == "k-1"
    ref = np.stack([e.vector for e in client.encode(TEXTS)])
    for how in ("contents", "raw"):  # bytes_contents and raw_input_contents
        assert np.abs(np.array(got[how]["sentence_vector"]) - ref).max() <= ATOL, how
    assert got["unknown_model"] == "NOT_FOUND"


def _request(texts: list[str], **kw: object) -> pb.ModelInferRequest:
    r = pb.ModelInferRequest(model_name="zh-encoder", **kw)
    r.inputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)])
    r.raw_input_contents.append(
        b"".join(struct.pack("<I", len(b)) + b for b in (t.encode() for t in texts))
    )
    return r


def _refused(stub, r: pb.ModelInferRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(r, timeout=30)
    return e.value.code(), e.value.details()


def test_outputs_in_the_order_asked(stub) -> None:
    r = _request(TEXTS[:2])
    r.outputs.add(name="token_lengths")
    r.outputs.add(name="sentence_vector")
    resp = stub.ModelInfer(r, timeout=30)
    assert [o.name for o in resp.outputs] == ["token_lengths", "sentence_vector"]
    assert len(resp.raw_output_contents) == 2 and not resp.outputs[0].HasField("contents")
    lengths = np.frombuffer(resp.raw_output_contents[0], "<i8")
    assert list(resp.outputs[0].shape) == [2] and (lengths > 0).all()


def test_empty_batch_is_refused_like_encoder_v1(stub, served) -> None:
    _, client = served
    code, _ = _refused(stub, _request([]))
    with pytest.raises(grpc.RpcError) as e:
        client.encode([])
    assert code == e.value.code()


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda r: r.inputs[0].__setattr__("name", "text"), "exactly one input named 'TEXT'"),
        (lambda r: r.inputs[0].__setattr__("datatype", "FP32"), "expected BYTES"),
        (lambda r: r.inputs[0].shape.__setitem__(0, 5), "says 5 elements, the data holds 2"),
        (lambda r: r.inputs[0].shape.extend([2]), "expected [N] or [N, 1]"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"\xff\x00\x00\x00ab"), "claims 255"),
        (lambda r: r.raw_input_contents.__setitem__(0, BAD_UTF8), "[TEXT][0]: not valid UTF-8"),
        (lambda r: r.raw_input_contents.append(b""), "expected one entry"),
        (lambda r: r.parameters["max_tokens"].__setattr__("string_param", "5"), "int64_param"),
        (lambda r: r.outputs.add(name="ids") and r.outputs.add(name="ids"), "named once"),
    ],
)
def test_malformed_requests_name_the_field(stub, mutate, words: str) -> None:
    r = _request(["你好", "世界"])
    mutate(r)
    code, message = _refused(stub, r)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and words in message, message


def test_limits_apply_unchanged(stub) -> None:
    code, message = _refused(stub, _request(["你好"] * 9))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_texts_per_request" in message
    ok = stub.ModelInfer(_request(["你好"] * 8, parameters={}), timeout=30)
    assert list(ok.outputs[0].shape) == [8, ok.outputs[0].shape[1]]


def test_ready_turns_false_while_draining(bundle_factory, jieba_cache) -> None:
    bundle, _ = bundle_factory()
    srv = InProcessServer(bundle, jieba_cache)
    with grpc.insecure_channel(srv.target) as ch:
        s = pb_grpc.GRPCInferenceServiceStub(ch)
        assert s.ServerLive(pb.ServerLiveRequest()).live
        assert not s.ServerReady(pb.ServerReadyRequest()).ready  # bundle not loaded yet
        srv.load()
        assert s.ServerReady(pb.ServerReadyRequest()).ready
        assert s.ModelReady(pb.ModelReadyRequest(name="encoder")).ready
        srv.call(_start_draining(srv))
        assert not s.ServerReady(pb.ServerReadyRequest()).ready
        assert not s.ModelReady(pb.ModelReadyRequest(name="encoder")).ready
        r = pb.ModelInferRequest(model_name="encoder")
        r.inputs.add(name="TEXT", datatype="BYTES", shape=[1], contents={"bytes_contents": [b"a"]})
        code, message = _refused(s, r)
        assert code == grpc.StatusCode.UNAVAILABLE and "shutting down" in message
        assert s.ServerLive(pb.ServerLiveRequest()).live  # metadata and liveness still answer
    srv.stop()


async def _start_draining(srv: InProcessServer) -> None:
    srv.app.state.start_draining(0.0)
    await srv.app.state.closed_event.wait()
