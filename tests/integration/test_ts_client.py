"""The TypeScript client (clients/typescript) under node against a real server: its vectors,
tokens, model info and health equal the Python client's; it retries as the Python client does."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import trustme

from tests.support import ROOT
from tests.support.harness import InProcessServer, scrape
from tests.support.samples import TEXTS, TUTORIAL
from zh_rnn_encoder.client import SERVICE_CONFIG, EncoderClient

BUILT = ROOT / "clients" / "typescript" / "dist" / "index.js"
SCRIPT = ROOT / "tests" / "support" / "ts_client.mjs"
CONFIG = ROOT / "protos" / "encoder" / "v1" / "encoder_grpc_service_config.json"
ATOL = 1e-6


def run_ts(target: str, calls: list[dict], timeout: float = 60, **options: object) -> list[dict]:
    """Each call's {"ok": value} or {"error": {"code", "details"}}, with its "ms"."""
    node = shutil.which("node")
    assert node, "node is missing: the TypeScript client's test needs Node.js 20 and npm"
    assert BUILT.is_file(), f"{BUILT} is missing: `make test` installs and builds it"
    args = {"target": target, "options": options, "calls": calls}
    p = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(args, ensure_ascii=False),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert p.returncode == 0, f"node {SCRIPT.name} failed (rc {p.returncode}):\n{p.stderr[-4000:]}"
    return json.loads(p.stdout)


def ok(result: dict) -> object:
    assert "ok" in result, result
    return result["ok"]


@pytest.fixture(scope="module")
def served(bundle_factory, jieba_cache):
    srv = InProcessServer(bundle_factory()[0], jieba_cache).load()
    client = EncoderClient(srv.target)
    yield srv, client
    client.close()
    srv.stop()


def test_service_config_is_the_python_clients() -> None:
    assert json.loads(CONFIG.read_text(encoding="utf-8")) == json.loads(SERVICE_CONFIG)


# The TypeScript client's encode options, and the same options as the Python client names them.
OPTIONS = [
    ({}, {}),
    (
        {"pooling": "mean", "normalize": True, "tokenVectors": True},
        {"pooling": "mean", "normalize": True, "token_vectors": True},
    ),
    (
        {"pooling": "max", "truncation": "keep_last", "maxTokens": 3},
        {"pooling": "max", "truncation": "keep_last", "max_tokens": 3},
    ),
]


def test_vectors_tokens_info_and_health_equal_the_python_clients(served) -> None:
    srv, client = served
    calls = [
        {"method": "health"},
        {"method": "info"},
        {"method": "tokenize", "args": [TEXTS]},
        *({"method": "encode", "args": [TEXTS, ts]} for ts, _ in OPTIONS),
    ]
    health, info, tokenized, *encoded = map(ok, run_ts(srv.target, calls))
    assert health == "SERVING"

    want = client.info()
    assert info.pop("golden_max_abs_err") == pytest.approx(want.pop("golden_max_abs_err"))
    assert info == want

    ref = client.tokenize(TEXTS)
    assert [t["tokens"] for t in tokenized] == [t.tokens for t in ref]
    assert [t["ids"] for t in tokenized] == [t.ids.tolist() for t in ref]
    assert [t["unknown"] for t in tokenized] == [t.unknown for t in ref]

    for got, (_, py) in zip(encoded, OPTIONS, strict=True):
        ref = client.encode(TEXTS, **py)
        assert len(got) == len(ref) == len(TEXTS)
        for g, r in zip(got, ref, strict=True):
            assert g["tokens"] == r.tokens and g["ids"] == r.ids.tolist()
            assert g["truncated"] == r.truncated
            assert np.abs(np.array(g["vector"], np.float32) - r.vector).max() <= ATOL
            if r.token_vectors is None:
                assert g["tokenVectors"] is None
            else:
                rows = np.array(g["tokenVectors"], np.float32)
                assert rows.shape == r.token_vectors.shape
                assert np.abs(rows - r.token_vectors).max() <= ATOL


def test_status_errors_come_through_unchanged(served) -> None:
    srv, _ = served
    (empty,) = run_ts(srv.target, [{"method": "encode", "args": [[""]]}])
    assert empty["error"]["code"] == "INVALID_ARGUMENT"
    assert "texts[0]" in empty["error"]["details"]


def test_retries_unavailable_as_the_service_config_says(bundle_factory, jieba_cache) -> None:
    """A server still loading answers UNAVAILABLE: the client tries maxAttempts times in all, then
    fails with it; retry=false tries once. Attempts are counted by the server's own metrics."""
    attempts = json.loads(SERVICE_CONFIG)["methodConfig"][0]["retryPolicy"]["maxAttempts"]
    srv = InProcessServer(bundle_factory()[0], jieba_cache, metrics_listen="127.0.0.1:0")
    key = 'encoder_requests_total{code="UNAVAILABLE",method="Encode"}'
    try:
        calls = [{"method": "health"}, {"method": "encode", "args": [[TUTORIAL]]}]
        health, retried = run_ts(srv.target, calls)
        assert ok(health) == "NOT_SERVING"
        assert retried["error"]["code"] == "UNAVAILABLE"
        assert scrape(srv.app.metrics_port)[key] == attempts
        (once,) = run_ts(srv.target, calls[1:], retry=False)
        assert once["error"]["code"] == "UNAVAILABLE"
        assert scrape(srv.app.metrics_port)[key] == attempts + 1

        srv.load()
        health, encoded = run_ts(srv.target, calls)
        assert ok(health) == "SERVING" and len(ok(encoded)[0]["vector"]) > 0
    finally:
        srv.stop()


def test_tls_and_bearer_token(bundle_factory, jieba_cache, tmp_path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = {"ca": ca.cert_pem, "cert": cert.cert_chain_pems[0], "key": cert.private_key_pem}
    for name, blob in files.items():
        blob.write_to_path(str(tmp_path / f"{name}.pem"))
    (tmp_path / "tokens").write_text("s3cret\n", encoding="utf-8")
    srv = InProcessServer(
        bundle_factory()[0],
        jieba_cache,
        tls_cert=tmp_path / "cert.pem",
        tls_key=tmp_path / "key.pem",
        auth_tokens_file=tmp_path / "tokens",
    ).load()
    calls = [{"method": "health"}, {"method": "encode", "args": [["你好"]]}]
    tls = {"tlsCa": str(tmp_path / "ca.pem")}
    try:
        health, encoded = run_ts(srv.target, calls, token="s3cret", **tls)
        assert ok(health) == "SERVING" and ok(encoded)[0]["tokens"] == ["你好"]
        health, refused = run_ts(srv.target, calls, **tls)
        assert ok(health) == "SERVING"  # probes carry no credentials
        assert refused["error"] == {"code": "UNAUTHENTICATED", "details": "unauthenticated"}
        (plain,) = run_ts(srv.target, calls[1:], retry=False, timeoutMs=3000)
        assert plain["error"]["code"] == "UNAVAILABLE"  # plaintext to a TLS port
    finally:
        srv.stop()


def test_selects_a_model_and_keeps_its_version(bundle_factory, jieba_cache) -> None:
    """Two models: the TypeScript client names one, gets its vectors and its version, lists
    them as the Python client does, and gets NOT_FOUND for one not served."""
    from zh_rnn_encoder.runtime.models import ModelSpec

    specs = (
        ModelSpec("general", bundle_factory()[0]),
        ModelSpec("news", bundle_factory(seed=7)[0]),
    )
    srv = InProcessServer(None, jieba_cache, models=specs).load()
    client = EncoderClient(srv.target)
    try:
        calls = [
            {"method": "listModels"},
            {"method": "encode", "args": [TEXTS, {"model": "news"}]},
            {"method": "encode", "args": [TEXTS]},
            {"method": "tokenize", "args": [TEXTS[:2], "news"]},
            {"method": "info", "args": ["news"]},
            {"method": "encode", "args": [TEXTS, {"model": "nope"}]},
        ]
        listed, news, default, tokenized, info, unknown = run_ts(srv.target, calls)
        want = client.list_models()
        assert ok(listed) == [
            {"name": m["name"], "version": m["version"], "isDefault": m["is_default"]} for m in want
        ]
        versions = {m["name"]: m["version"] for m in want}
        for got, name in ((ok(news), "news"), (ok(default), "general")):
            ref = client.encode(TEXTS, model=name)
            assert {g["modelVersion"] for g in got} == {versions[name]}
            for g, r in zip(got, ref, strict=True):
                assert np.abs(np.array(g["vector"], np.float32) - r.vector).max() <= ATOL
        assert {t["modelVersion"] for t in ok(tokenized)} == {versions["news"]}
        assert ok(info)["model_name"] == "news" and ok(info)["model_version"] == versions["news"]
        assert unknown["error"]["code"] == "NOT_FOUND" and "'nope'" in unknown["error"]["details"]
    finally:
        client.close()
        srv.stop()
