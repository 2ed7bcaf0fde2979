"""End to end against a real server on port 0: encodings equal eager PyTorch."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.harness import InProcessServer, health
from tests.support.reference import eager
from tests.support.samples import SMALL, TEXTS, TUTORIAL, TUTORIAL_TOKENS
from zh_rnn_encoder.client import EncoderClient, encode_request, from_response
from zh_rnn_encoder.core import contract


@pytest.fixture(
    scope="module",
    params=[{}, {"cell": "lstm", "bidirectional": True, "num_layers": 2, **SMALL}],
    ids=["rnn", "bilstm2"],
)
def served(request, bundle_factory, jieba_cache):
    bundle, ckpt = bundle_factory(**request.param)
    srv = InProcessServer(bundle, jieba_cache).load()
    client = EncoderClient(srv.target)
    yield srv, client, ckpt
    client.close()
    srv.stop()


def test_parity_with_eager_alone_and_in_batch(served, tokenizer) -> None:
    _, client, ckpt = served
    ref = eager(ckpt, tokenizer, TEXTS)
    batch = client.encode(TEXTS, token_vectors=True)
    for i, text in enumerate(TEXTS):
        alone = client.encode([text], token_vectors=True)[0]
        for e in (alone, batch[i]):
            assert np.abs(e.vector - ref[i][1]).max() <= contract.PARITY_ATOL
            assert np.abs(e.token_vectors - ref[i][0]).max() <= contract.PARITY_ATOL
        # a text alone equals the same text padded in a batch with longer ones
        assert np.abs(alone.vector - batch[i].vector).max() <= contract.BATCH_INVARIANCE_ATOL


def test_tutorial_sentence_tokens(served) -> None:
    _, client, ckpt = served
    e = client.encode([TUTORIAL])[0]
    assert e.tokens == TUTORIAL_TOKENS
    assert e.ids.tolist() == [ckpt.vocab.index.get(t, ckpt.vocab.unk_id) for t in TUTORIAL_TOKENS]
    t = client.tokenize([TUTORIAL])[0]
    assert t.tokens == TUTORIAL_TOKENS and t.ids.tolist() == e.ids.tolist()


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_pooling_and_normalisation(served, tokenizer, pooling: str) -> None:
    _, client, ckpt = served
    ref = eager(ckpt, tokenizer, TEXTS[:3])
    want = {"last": lambda s, f: f, "mean": lambda s, f: s.mean(0), "max": lambda s, f: s.max(0)}
    got = client.encode(TEXTS[:3], pooling=pooling)
    normed = client.encode(TEXTS[:3], pooling=pooling, normalize=True)
    for (s, f), e, n in zip(ref, got, normed):
        v = want[pooling](s, f)
        assert np.abs(e.vector - v).max() <= contract.PARITY_ATOL
        assert np.abs(n.vector - v / np.linalg.norm(v)).max() <= contract.PARITY_ATOL
        assert abs(np.linalg.norm(n.vector) - 1) < 1e-5


def test_truncation_keeps_first_or_last(served, tokenizer) -> None:
    _, client, ckpt = served
    toks = tokenizer.tokenize(TUTORIAL)
    first = client.encode([TUTORIAL], truncation="first", max_tokens=5)[0]
    last = client.encode([TUTORIAL], truncation="last", max_tokens=5, token_vectors=True)[0]
    assert first.tokens == toks[:5] and last.tokens == toks[-5:]
    assert first.truncated and last.truncated and last.token_vectors.shape[0] == 5
    ref_first = eager(ckpt, tokenizer, ["".join(toks[:5])])[0][1]
    assert np.abs(first.vector - ref_first).max() <= contract.PARITY_ATOL
    untouched = client.encode(["你好"], truncation="first", max_tokens=5)[0]
    assert not untouched.truncated


def test_stream_answers_in_order(served) -> None:
    _, client, _ = served
    reqs = [encode_request(TEXTS[i % len(TEXTS) :], request_id=f"r{i}") for i in range(40)]
    responses = list(client.encode_stream(reqs))
    assert [r.request_id for r in responses] == [f"r{i}" for i in range(40)]
    for i, r in enumerate(responses):
        assert [e.tokens for e in from_response(r)] == [
            e.tokens for e in client.encode(TEXTS[i % len(TEXTS) :])
        ]


def test_timing_is_reported(served) -> None:
    _, client, _ = served
    t = client.encode_raw(TEXTS).timing
    assert t.total_us >= t.tokenize_us + t.inference_us > 0


def test_info_health_and_reflection(served) -> None:
    srv, client, ckpt = served
    info = client.info()
    c = ckpt.model.config
    assert (info["cell"], info["output_dim"], info["vocab_size"]) == (
        c.cell,
        c.output_dim,
        c.vocab_size,
    )
    assert info["bidirectional"] == c.bidirectional and info["num_layers"] == c.num_layers
    assert info["execution_provider"] == "CPUExecutionProvider"
    assert info["tokenizer"]["backend"] == "rjieba"
    assert info["limits"]["max_tokens_per_text"] == 512
    assert set(info["bundle_sha256"]) >= {"model.onnx", "vocab.json"}
    assert info["golden_max_abs_err"] <= contract.PARITY_ATOL
    assert health(srv.target) == "SERVING" and health(srv.target, "encoder.v1.Encoder") == "SERVING"
    with grpc.insecure_channel(srv.target) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        names = {
            s.name
            for r in stub.ServerReflectionInfo(iter([req]))
            for s in r.list_services_response.service
        }
    assert {"encoder.v1.Encoder", "grpc.health.v1.Health"} <= names
