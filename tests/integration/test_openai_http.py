"""The OpenAI-compatible HTTP API: the stock openai client, unmodified, in its own process against
a real server; vectors equal encoder.v1's. HTTP edge cases through the standard library."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse

import numpy as np
import pytest

from tests.support import stock
from tests.support.harness import InProcessServer
from tests.support.samples import TEXTS
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.runtime.limits import Limits

ATOL = contract.BATCH_INVARIANCE_ATOL
KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def served(bundle_factory, jieba_cache):
    bundle, _ = bundle_factory()
    srv = InProcessServer(
        bundle,
        jieba_cache,
        model_name="zh-encoder",
        http_listen="127.0.0.1:0",
        auth_tokens=KEY,
        limits=Limits(max_texts_per_request=8, max_message_bytes=64 << 10),
    ).load()
    client = EncoderClient(srv.target, token=KEY)
    yield srv, client
    client.close()
    srv.stop()


def _vectors(client: EncoderClient, texts: list[str], **options: object) -> np.ndarray:
    return np.stack([e.vector for e in client.encode(texts, **options)])


def test_openai_client_unmodified(served) -> None:
    srv, client = served
    dim = client.info()["output_dim"]
    args = {"base_url": srv.http_url + "/v1", "api_key": KEY, "model": "zh-encoder",
            "texts": TEXTS, "dim": dim}  # fmt: skip
    got = stock.run("openai_embeddings", args)
    ref = _vectors(client, TEXTS)
    for how in ("float", "default"):  # default: the client asks for base64 and decodes it
        assert np.abs(np.array(got[how]) - ref).max() <= ATOL, how
    # asked for base64 explicitly, the client hands over the strings: little-endian float32
    b64 = np.stack([np.frombuffer(base64.b64decode(s), "<f4") for s in got["base64"]])
    assert np.abs(b64 - ref).max() <= ATOL
    assert np.abs(np.array(got["one"][0]) - ref[0]).max() <= ATOL
    assert np.abs(np.array(got["same_dimensions"][0]) - ref[0]).max() <= ATOL
    mean = _vectors(client, TEXTS, pooling="mean", normalize=True)
    assert np.abs(np.array(got["mean"]) - mean).max() <= ATOL
    tokens = sum(len(t.tokens) for t in client.tokenize(TEXTS))
    assert got["usage"] == {"prompt": tokens, "total": tokens} and got["model"] == "zh-encoder"
    assert got["models"] == ["zh-encoder"] and got["retrieve"] == "zh-encoder"

    def err(name: str) -> tuple[int, str]:
        e = got[name]
        return e["status"], e["body"]["message"] if e["body"] else ""

    assert err("unknown_model") == (404, "unknown model 'gpt-x'; this server serves 'zh-encoder'")
    assert got["unknown_model"]["body"]["code"] == "model_not_found"
    assert err("dimensions")[0] == 400 and "dimensions" in err("dimensions")[1]
    assert got["dimensions"]["body"]["param"] == "dimensions"
    assert got["empty_text"]["body"]["param"] == "input"
    assert err("tokens")[0] == 400 and "token arrays" in err("tokens")[1]
    assert err("empty_text")[0] == 400 and "texts[1]" in err("empty_text")[1]
    assert err("too_many")[0] == 413 and "max_texts_per_request" in err("too_many")[1]
    assert err("bad_pooling")[0] == 400 and "median" in err("bad_pooling")[1]
    assert err("bad_key") == (401, "unauthenticated")


def _call(url: str, method: str, path: str, body: bytes | None = None, **headers: str):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.headers, r.read()  # case-insensitive names
    finally:
        conn.close()


AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def test_health_needs_no_token_and_routes_are_checked(served) -> None:
    url = served[0].http_url
    status, _, body = _call(url, "GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert _call(url, "GET", "/v1/models")[0] == 401
    assert _call(url, "GET", "/v2/anything", **AUTH)[0] == 404
    status, _, body = _call(url, "GET", "/v1/embeddings", **AUTH)
    assert status == 405 and "takes POST" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"input": "a"}', "model: required"),
        (b'{"model": "zh-encoder", "input": "a", "temperature": 1}', "'temperature'"),
        (b'{"model": "zh-encoder", "input": "a", "encoding_format": "int8"}', "encoding_format"),
        (b'{"model": "zh-encoder", "input": "a", "normalize": "yes"}', "normalize"),
        (b'{"model": "zh-encoder", "input": 5}', "input: expected a string"),
        (b'{"model": "zh-encoder", "input": "a", "encoding_format": []}', "encoding_format"),
        (b'{"model": "zh-encoder", "input": "a", "truncation": {}}', "truncation: expected a"),
        (b'{"model": "zh-encoder", "input": "a", "user": ["x"]}', "user: expected a string"),
        (b'{"model": ["zh-encoder"], "input": "a"}', "model: expected a string"),
        (b'{"model": "zh-encoder", "input": "\\ud800"}', "not JSON: no low surrogate"),
    ],
)
def test_bad_requests_are_400_naming_the_field(served, body: bytes, words: str) -> None:
    status, headers, out = _call(served[0].http_url, "POST", "/v1/embeddings", body, **AUTH)
    err = json.loads(out)["error"]
    assert status == 400 and err["type"] == "invalid_request_error", out
    assert words in err["message"], err["message"]
    assert headers["Content-Type"] == "application/json"


def test_size_limits_are_413(served) -> None:
    url = served[0].http_url
    big = json.dumps({"model": "zh-encoder", "input": "好" * 40_000}).encode()  # > 64 KiB
    status, _, out = _call(url, "POST", "/v1/embeddings", big, **AUTH)
    assert status == 413 and "max_message_bytes" in json.loads(out)["error"]["message"]
    long_text = json.dumps({"model": "zh-encoder", "input": "好" * 9000}).encode()
    status, _, out = _call(url, "POST", "/embeddings", long_text, **AUTH)  # the alias route
    assert status == 413 and "max_tokens_per_text" in json.loads(out)["error"]["message"]


def test_a_chunked_body_is_capped_as_it_is_read(served) -> None:
    """No Content-Length to refuse on: the body is counted as it is read, refused past the limit."""
    u = urllib.parse.urlparse(served[0].http_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    chunks = iter([b'{"model": "encoder", "input": "'] + [b"a" * 8192] * 10 + [b'"}'])
    conn.request("POST", "/v1/embeddings", body=chunks, headers=AUTH, encode_chunked=True)
    r = conn.getresponse()
    status, out = r.status, json.loads(r.read())
    conn.close()
    assert status == 413 and "max_message_bytes exceeded" in out["error"]["message"]


def test_base64_is_little_endian_float32(served) -> None:
    srv, client = served
    body = json.dumps({"model": "zh-encoder", "input": TEXTS[:2], "encoding_format": "base64"})
    status, _, out = _call(srv.http_url, "POST", "/v1/embeddings", body.encode(), **AUTH)
    data = json.loads(out)["data"]
    got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in data])
    assert status == 200 and np.abs(got - _vectors(client, TEXTS[:2])).max() <= ATOL


def test_503_while_loading_and_draining_with_retry_after(bundle_factory, jieba_cache) -> None:
    bundle, _ = bundle_factory()
    srv = InProcessServer(bundle, jieba_cache, http_listen="127.0.0.1:0")
    body = json.dumps({"model": "encoder", "input": "你好"}).encode()
    status, headers, _ = _call(srv.http_url, "POST", "/v1/embeddings", body)
    assert status == 503 and headers["Retry-After"] == "1"
    assert _call(srv.http_url, "GET", "/health")[0] == 503
    srv.load()
    assert _call(srv.http_url, "POST", "/v1/embeddings", body)[0] == 200

    async def close() -> None:
        srv.app.state.start_draining(0.0)
        await srv.app.state.closed_event.wait()

    srv.call(close())
    status, headers, out = _call(srv.http_url, "POST", "/v1/embeddings", body)
    assert status == 503 and "shutting down" in json.loads(out)["error"]["message"]
    assert _call(srv.http_url, "GET", "/health")[0] == 503
    srv.stop()
