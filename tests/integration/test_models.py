"""Several models on one server (--model NAME=PATH), two real bundles of different seeds: each
model's vectors equal its bundle's in-process Encoder; every response of every protocol carries
the version that made it; an unknown model is NOT_FOUND / 404 on every protocol."""

from __future__ import annotations

import http.client
import json
import signal
import struct
import urllib.parse

import grpc
import numpy as np
import pytest

from tests.support.harness import InProcessServer, ServerProcess, wait_health
from tests.support.samples import SMALL, TEXTS
from zh_rnn_encoder.client import EncoderClient, encode_request, from_response, to_numpy
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as oip_grpc
from zh_rnn_encoder.runtime.encoder import Encoder
from zh_rnn_encoder.runtime.models import ModelSpec

ATOL = contract.BATCH_INVARIANCE_ATOL  # same graph, another batch


@pytest.fixture(scope="module")
def bundles(bundle_factory) -> dict[str, object]:
    """Two bundles that differ in seed and cell: "general" (the default) and "news"."""
    return {
        "general": bundle_factory(**SMALL)[0],
        "news": bundle_factory(seed=7, cell="gru", **SMALL)[0],
    }


@pytest.fixture(scope="module")
def encoders(bundles, jieba_cache) -> dict[str, Encoder]:
    return {
        n: Encoder.from_bundle(p, threads=1, jieba_cache_dir=jieba_cache)
        for n, p in bundles.items()
    }


@pytest.fixture(scope="module")
def versions(bundles) -> dict[str, str]:
    return {n: bundle_digest(p) for n, p in bundles.items()}


@pytest.fixture(scope="module")
def served(bundles, jieba_cache):
    specs = tuple(ModelSpec(n, p) for n, p in bundles.items())
    srv = InProcessServer(None, jieba_cache, models=specs, http_listen="127.0.0.1:0").load()
    client = EncoderClient(srv.target)
    yield srv, client
    client.close()
    srv.stop()


def _close(a: object, b: object) -> bool:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) <= ATOL


def _refused(call, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        call(*args, **kw)
    return e.value.code(), e.value.details()


def test_the_two_bundles_differ(versions, encoders) -> None:
    assert versions["general"] != versions["news"]
    assert all(encoders[n].bundle.digest == versions[n] for n in versions)  # the one digest
    a, b = (encoders[n].encode(TEXTS[:2])[0].vector for n in ("general", "news"))
    assert a.shape == b.shape and not _close(a, b)


def test_each_model_equals_its_bundles_encoder(served, encoders, versions) -> None:
    _, client = served
    for name, model in (("general", "general"), ("news", "news"), ("general", "")):
        want = encoders[name].encode(TEXTS, token_vectors=True)
        got = client.encode(TEXTS, token_vectors=True, model=model)
        for w, g in zip(want, got):
            assert g.tokens == w.tokens and g.ids.tolist() == w.ids.tolist()
            assert _close(g.vector, w.vector) and _close(g.token_vectors, w.token_vectors)
            assert g.model_version == versions[name]


def test_list_models_and_info_name_every_version(served, versions) -> None:
    _, client = served
    assert client.list_models() == [
        {"name": "general", "version": versions["general"], "is_default": True},
        {"name": "news", "version": versions["news"], "is_default": False},
    ]
    for name, model in (("general", ""), ("news", "news")):
        info = client.info(model)
        assert info["model_name"] == name and info["model_version"] == versions[name]
    assert client.info("news")["cell"] == "gru" and client.info()["cell"] == "rnn"


def test_every_encoder_v1_response_carries_its_version(served, encoders, versions) -> None:
    _, client = served
    reqs = [encode_request(TEXTS[:2], model=m, request_id=str(i))
            for i, m in enumerate(["news", "", "general", "news"])]  # fmt: skip
    for r, resp in zip(reqs, client.encode_stream(reqs)):
        name = r.model or "general"
        assert resp.model_version == versions[name]
        want = encoders[name].encode(TEXTS[:2])
        assert all(_close(g.vector, w.vector) for g, w in zip(from_response(resp), want))
    doc = client.encode_document([TEXTS[0][:5], TEXTS[0][5:]], pooling="mean", model="news")
    assert doc.model_version == versions["news"]
    want = encoders["news"].encode_document([TEXTS[0]], pooling="mean").vector
    assert _close(to_numpy(doc.sentence_vector), want)
    for name in versions:
        tok = client.tokenize(TEXTS[:2], model=name)
        assert [t.model_version for t in tok] == [versions[name]] * 2
        assert [t.ids.tolist() for t in tok] == [
            t.ids.tolist() for t in encoders[name].tokenize(TEXTS[:2])
        ]


def test_unknown_model_is_not_found_on_encoder_v1(served) -> None:
    _, client = served
    calls = [
        lambda: client.encode(["你好"], model="nope"),
        lambda: client.tokenize(["你好"], model="nope"),
        lambda: client.info("nope"),
        lambda: client.encode_document(["你好"], model="nope"),
        lambda: list(client.encode_stream([encode_request(["你好"], model="nope")])),
    ]
    for call in calls:
        code, message = _refused(call)
        assert code == grpc.StatusCode.NOT_FOUND, message
        assert "unknown model 'nope'; this server serves 'general', 'news'" in message


def _infer(name: str, texts: list[str], version: str = "") -> oip.ModelInferRequest:
    r = oip.ModelInferRequest(model_name=name, model_version=version, id="i-1")
    r.inputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)])
    r.raw_input_contents.append(b"".join(struct.pack("<I", len(b)) + b for b in
                                         (t.encode() for t in texts)))  # fmt: skip
    r.outputs.add(name="sentence_vector")
    return r


def test_open_inference_selects_by_name_and_version(served, encoders, versions) -> None:
    srv, _ = served
    with grpc.insecure_channel(srv.target) as ch:
        stub = oip_grpc.GRPCInferenceServiceStub(ch)
        for name in versions:
            for version in ("", versions[name]):
                resp = stub.ModelInfer(_infer(name, TEXTS, version), timeout=30)
                assert (resp.model_name, resp.model_version) == (name, versions[name])
                got = np.frombuffer(resp.raw_output_contents[0], "<f4").reshape(len(TEXTS), -1)
                assert _close(got, np.stack([e.vector for e in encoders[name].encode(TEXTS)]))
            meta = stub.ModelMetadata(oip.ModelMetadataRequest(name=name), timeout=30)
            assert list(meta.versions) == [versions[name]]
            assert stub.ModelReady(oip.ModelReadyRequest(name=name, version=versions[name])).ready
        for r in (
            _infer("nope", TEXTS),
            _infer("news", TEXTS, versions["general"]),
            _infer("news", TEXTS, "1"),
        ):
            code, message = _refused(stub.ModelInfer, r, timeout=30)
            assert code == grpc.StatusCode.NOT_FOUND, message
        assert "unknown model 'nope'" in _refused(stub.ModelInfer, _infer("nope", TEXTS))[1]
        code, _ = _refused(stub.ModelMetadata, oip.ModelMetadataRequest(name="nope"))
        assert code == grpc.StatusCode.NOT_FOUND


def _http(url: str, method: str, path: str, body: object = None):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.headers, json.loads(r.read())
    finally:
        conn.close()


def test_openai_selects_by_model_and_names_the_version(served, encoders, versions) -> None:
    srv, _ = served
    for name in versions:
        status, headers, body = _http(srv.http_url, "POST", "/v1/embeddings",
                                      {"model": name, "input": TEXTS})  # fmt: skip
        assert status == 200 and body["model"] == name
        assert headers["x-model-version"] == versions[name]
        want = np.stack([e.vector for e in encoders[name].encode(TEXTS)])
        assert _close([d["embedding"] for d in body["data"]], want)
    # an error once the model is known names its version too
    wrong = {"model": "news", "input": ["你好"], "dimensions": 3}
    status, headers, body = _http(srv.http_url, "POST", "/v1/embeddings", wrong)
    assert status == 400 and headers["x-model-version"] == versions["news"]
    status, headers, body = _http(srv.http_url, "POST", "/v1/embeddings",
                                  {"model": "nope", "input": ["你好"]})  # fmt: skip
    assert status == 404 and body["error"]["code"] == "model_not_found"
    assert "unknown model 'nope'" in body["error"]["message"] and "x-model-version" not in headers
    status, _, listed = _http(srv.http_url, "GET", "/v1/models")
    assert status == 200
    assert [(m["id"], m["version"]) for m in listed["data"]] == list(versions.items())
    assert _http(srv.http_url, "GET", "/v1/models/news")[2]["version"] == versions["news"]
    status, _, body = _http(srv.http_url, "GET", "/v1/models/nope")
    assert status == 404 and "unknown model 'nope'" in body["error"]["message"]


def test_one_in_flight_budget_for_every_model(served) -> None:
    srv, _ = served
    models = srv.app.state.models
    assert all(m.encoder.budget is models.budget for m in models)
    assert models.budget.limit == int(srv.cfg.runtime.max_inflight_mb * (1 << 20))


def test_model_variable_and_workers(bundles, versions, jieba_cache) -> None:
    """MODEL as the variable of --model, inherited by every --workers process."""
    listed = ",".join(f"{n}={p}" for n, p in bundles.items())
    proc = ServerProcess("--listen", "127.0.0.1:0", "--workers", "2", "--jieba-cache-dir",
                         str(jieba_cache), env={"MODEL": listed})  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        for _ in range(6):  # new connections: both workers answer with both models
            with EncoderClient(target) as c:
                assert [m["version"] for m in c.list_models()] == list(versions.values())
                assert c.encode(["你好"], model="news")[0].model_version == versions["news"]
    finally:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.log


def test_a_model_that_fails_its_pin_refuses_the_server(bundles, jieba_cache) -> None:
    specs = ("--model", f"general={bundles['general']}", "--model",
             f"news={bundles['news']}@sha256:{'0' * 64}")  # fmt: skip
    proc = ServerProcess(*specs, "--listen", "127.0.0.1:0", "--jieba-cache-dir", str(jieba_cache))
    assert proc.wait(60) == 2
    assert "refusing to serve" in proc.log and "not the bundle that was pinned" in proc.log
