"""Every bad input gets its documented status; the next valid request is still answered right."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.support.harness import InProcessServer
from tests.support.samples import SMALL, TUTORIAL
from zh_rnn_encoder.client import EncoderClient, encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.runtime.limits import Limits

LIMITS = Limits(
    max_texts_per_request=8,
    max_chars_per_text=2000,
    max_tokens_per_text=64,
    max_message_bytes=32 << 10,
    max_queued_texts=8,
)
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def srv(bundle_factory, jieba_cache):
    bundle, _ = bundle_factory(cell="gru", **SMALL)
    # a short batch wait makes the queue observable for the overload case
    s = InProcessServer(bundle, jieba_cache, limits=LIMITS, batch_wait_ms=30).load()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv):
    with EncoderClient(srv.target, max_message_bytes=64 << 20) as c:
        yield c


@pytest.fixture(scope="module")
def reference(client) -> np.ndarray:
    return client.encode([TUTORIAL])[0].vector


@pytest.fixture(autouse=True)
def still_correct_afterwards(client, reference):
    yield
    assert np.array_equal(client.encode([TUTORIAL])[0].vector, reference)


def status_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        call(*args, **kwargs)
    return e.value.code(), e.value.details()


def raw_encode(srv, payload: bytes) -> tuple[grpc.StatusCode, str]:
    """Send bytes that no protobuf library would produce, through a generic call."""
    with grpc.insecure_channel(srv.target) as ch:
        call = ch.unary_unary(
            "/encoder.v1.Encoder/Encode", response_deserializer=pb.EncodeResponse.FromString
        )
        return status_of(call, payload, timeout=10)


CASES = {
    "empty request": ([], {}, "texts: the request has no texts"),
    "empty text": (["ok", ""], {}, "texts[1]: empty or whitespace only"),
    "whitespace only": ([" \t\n　"], {}, "texts[0]: empty or whitespace only"),
    "too many texts": (["好"] * 9, {}, "max_texts_per_request exceeded: 9 > 8"),
    "too many characters": (["好" * 2001], {}, "max_chars_per_text exceeded at texts[0]: 2001"),
    "too many tokens": (["你好，" * 40], {}, "max_tokens_per_text exceeded at texts[0] "),
    "max_tokens over the limit": (
        ["你好"],
        {"truncation": "first", "max_tokens": 65},
        "max_tokens_per_text exceeded at max_tokens: 65 > 64",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_invalid_requests(client, case: str) -> None:
    texts, opts, message = CASES[case]
    code, details = status_of(client.encode, texts, **opts)
    assert code == INVALID and message in details, details


def test_too_many_tokens_names_limit_and_length(client) -> None:
    _, details = status_of(client.encode, ["你好，" * 40])
    assert details.startswith("max_tokens_per_text exceeded at texts[0]") and "80 > 64" in details


@pytest.mark.parametrize("field", ["pooling", "truncation"])
def test_unknown_enum_value(client, field: str) -> None:
    req = encode_request(["你好"])
    setattr(req, field, 7)  # proto3 enums are open: any int reaches the server
    code, details = status_of(client.stub.Encode, req)
    assert code == INVALID and details == f"{field}: unknown value 7"


def test_invalid_utf8(srv) -> None:
    code, details = raw_encode(srv, b"\x0a\x02\xff\xfe")  # texts[0] = 0xFF 0xFE
    assert code == INVALID and "not a valid encoder.v1.EncodeRequest" in details


def test_not_protobuf_at_all(srv) -> None:
    code, details = raw_encode(srv, b"\xff\xff\xff\xff")
    assert code == INVALID and "not a valid encoder.v1.EncodeRequest" in details


def test_oversized_message(client) -> None:
    code, details = status_of(client.encode, ["好" * 1000] * 20)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details


def test_response_over_message_limit(client) -> None:
    # 8 x 48 tokens with their vectors, 392 x 24 floats: 37.6 KB > 32 KiB. (8 x 36 tokens, about
    # 32 KB, fit: they were refused only while a token was counted at 24 bytes beside its vector.)
    text = "今天天气很好，" * 12
    code, details = status_of(client.encode, [text] * 8, token_vectors=True, truncation="first")
    assert code == INVALID and "max_message_bytes exceeded at response" in details
    fits = client.encode([text[:63]] * 8, token_vectors=True)
    assert sum(len(e.tokens) for e in fits) == 8 * 36


# A request_id that fits a request (32 KiB here) but not the response that echoes it.
ECHOED = "r" * 32_700
OVER_LIMIT = "max_message_bytes exceeded at response"


def test_response_over_message_limit_on_every_method(client) -> None:
    """What gRPC itself would refuse to send (RESOURCE_EXHAUSTED "Sent message larger than max")
    is INVALID_ARGUMENT naming the limit, on every method that echoes what the client sent."""
    req = encode_request(["北京冬奥"], token_vectors=True, request_id=ECHOED)
    code, details = status_of(client.stub.Encode, req)
    assert code == INVALID and details.startswith(OVER_LIMIT), details
    code, details = status_of(lambda: next(client.stub.EncodeStream(iter([req]))))
    assert code == INVALID and details.startswith(f"request #0: {OVER_LIMIT}"), details
    piece = pb.DocumentPiece(text="北京冬奥", request_id=ECHOED)
    code, details = status_of(client.stub.EncodeDocument, iter([piece]))
    assert code == INVALID and details.startswith(OVER_LIMIT) and "> 32768" in details, details


@pytest.mark.parametrize("text", ["a\x00b\x01c\x7f", "表情😀👍🏽和\u200b零宽", "𠀀𪚥𫝀𬺰𰻝"])
def test_odd_characters_are_encoded(client, text: str) -> None:
    e = client.encode([text])[0]
    assert "".join(e.tokens) == text and np.isfinite(e.vector).all()


def test_overload_is_answered_fast(srv) -> None:
    with EncoderClient(srv.target, retry=False) as once:  # no retry policy: see every refusal
        futures = [
            once.stub.Encode.future(encode_request(["今天天气很好"] * 8), timeout=10)
            for _ in range(12)
        ]
        codes = _codes(futures)
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and grpc.StatusCode.OK in codes
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _codes(futures: list) -> list:
    codes = []
    for f in futures:
        try:
            f.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            codes.append(e.code())
            assert "max_queued_texts=8" in e.details()
    return codes


def test_bad_request_ends_a_stream_with_its_index(client) -> None:
    reqs = [encode_request(["你好"]), encode_request(["好"]), encode_request([""])]
    got = []
    with pytest.raises(grpc.RpcError) as e:
        for r in client.encode_stream(reqs):
            got.append(r)
    assert e.value.code() == INVALID and e.value.details().startswith("request #2: texts[0]")
    assert len(got) == 2


def test_tokenize_limits(client) -> None:
    code, details = status_of(client.tokenize, ["好"] * 9)
    assert code == INVALID and "max_texts_per_request" in details
    t = client.tokenize([""])[0]
    assert t.tokens == [] and t.ids.size == 0


def test_deadline_exceeded_leaves_server_healthy(client) -> None:
    code, _ = status_of(client.stub.Encode, encode_request(["你好"]), timeout=0.001)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_cancelling_a_stream_leaves_server_healthy(client) -> None:
    call = client.stub.EncodeStream(iter([encode_request(["你好"]) for _ in range(50)]))
    next(call)
    call.cancel()
    with pytest.raises(grpc.RpcError) as e:
        list(call)
    assert e.value.code() == grpc.StatusCode.CANCELLED


def test_malformed_message_in_a_stream(srv) -> None:
    with grpc.insecure_channel(srv.target) as ch:
        call = ch.stream_stream(
            "/encoder.v1.Encoder/EncodeStream", response_deserializer=pb.EncodeResponse.FromString
        )
        ok = encode_request(["你好"]).SerializeToString()
        with pytest.raises(grpc.RpcError) as e:
            list(call(iter([ok, b"\x0a\x02\xff\xfe"]), timeout=10))
    assert e.value.code() == INVALID and e.value.details().startswith("request #1: request is")


def test_a_text_whose_states_overflow_the_model(overflowing, jieba_cache) -> None:
    """A model whose states leave float32's range on a text (conftest's ``overflowing``): the
    request gets INVALID_ARGUMENT naming the text, on Encode, EncodeStream and OpenAI HTTP (HTTP
    400), never a vector of NaN; the other texts and the server carry on."""
    import http.client
    import json
    import urllib.parse

    bundle, text = overflowing
    srv = InProcessServer(bundle, jieba_cache, http_listen="127.0.0.1:0").load()
    try:
        with EncoderClient(srv.target) as c:
            ok = c.encode([TUTORIAL])[0].vector
            code, details = status_of(c.encode, [TUTORIAL, text])
            assert code == INVALID and "texts[1]: the model's states left float32" in details
            responses = c.encode_stream(iter([encode_request([text]), encode_request([TUTORIAL])]))
            with pytest.raises(grpc.RpcError) as e:
                list(responses)
            assert e.value.code() == INVALID and "texts[0]: the model's states" in e.value.details()
            u = urllib.parse.urlparse(srv.http_url)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            body = json.dumps({"model": "encoder", "input": [text]})
            conn.request("POST", "/v1/embeddings", body,
                         {"Content-Type": "application/json"})  # fmt: skip
            r = conn.getresponse()
            body = r.read().decode()
            conn.close()
            assert r.status == 400 and "the model's states left float32" in body, body
            assert np.array_equal(c.encode([TUTORIAL])[0].vector, ok)
    finally:
        srv.stop()
