"""Every protocol's estimate of its response, made before the graph runs, against the response
itself as its serializer writes it: never less (a response that passes the check fits), and not
so much more that a response that fits is refused."""

from __future__ import annotations

import numpy as np
import pytest

from zh_rnn_encoder.core.enums import Cell
from zh_rnn_encoder.runtime.admission import (
    ResponseShape,
    state_bytes,
    tokenized_bytes,
    varint_bytes,
)
from zh_rnn_encoder.runtime.state import EncoderState
from zh_rnn_encoder.runtime.types import EncodeResult, TextEncoding, Tokenized
from zh_rnn_encoder.transport.encoder_v1 import convert as v1
from zh_rnn_encoder.transport.oip import convert as oip
from zh_rnn_encoder.transport.openai import convert as openai

# Ids as large as an int64 varint gets (10 bytes), times as long as a day.
BIG_ID = (1 << 63) - 1
DAY_S = 86_400.0
VERSION = "f" * 64  # a model version: the hex sha256 of a bundle.json
# The issue's case: one Latin token of 16,000 letters a text; and the widest UTF-8 there is.
TOKENS = {
    "long latin": lambda i: ["a" * 16_000],
    "long emoji": lambda i: ["😀" * 5_000],
    "many short": lambda i: ["北京", "，", "a", " "] * 50,
    "one each": lambda i: [chr(0x4E00 + i)],
}


def _state(layers: int, hidden: int, cell: Cell) -> EncoderState:
    h = np.full((layers, hidden), -3.0996646e-06, np.float32)
    return EncoderState(
        graph_sha256="f" * 64,
        cell=cell,
        num_layers=layers,
        hidden_size=hidden,
        h=h,
        c=h.copy() if cell is Cell.LSTM else None,
        tokens=BIG_ID,
        token_sum=np.full(hidden, -1.2345678901234e-300),
        token_max=h[0].copy(),
    )


def _result(kind: str, n: int, dim: int, token_vectors: bool, state: bool) -> EncodeResult:
    encs = []
    for i in range(n):
        toks = TOKENS[kind](i)
        vec = np.full(dim, -3.0996646e-06, np.float32)
        tv = np.full((len(toks), dim), -1.1754944e-38, np.float32) if token_vectors else None
        st = _state(2, dim, Cell.LSTM) if state else None
        ids = np.full(len(toks), BIG_ID, np.int64)
        encs.append(TextEncoding(toks, ids, vec, tv, True, 2**32 - 1, st))
    return EncodeResult(encs, DAY_S, DAY_S, DAY_S)


def _shape(res: EncodeResult, dim: int, token_vectors: bool, state: bool) -> ResponseShape:
    encs = res.encodings
    return ResponseShape(
        tokens=[len(e.tokens) for e in encs],
        token_bytes=sum(len(t.encode("utf-8")) for e in encs for t in e.tokens),
        id_bytes=varint_bytes(int(max(e.ids.max() for e in encs))),
        dim=dim,
        token_vectors=token_vectors,
        state_bytes=state_bytes(2, dim, lstm=True) if state else 0,
    )


CASES = [
    (kind, n, dim, tv, st)
    for kind in TOKENS
    for n, dim in ((1, 8), (16, 256))
    for tv, st in ((False, False), (True, False), (False, True))
]


@pytest.mark.parametrize(("kind", "n", "dim", "tv", "st"), CASES)
def test_encode_response_never_exceeds_its_estimate(kind, n, dim, tv, st) -> None:
    res, request_id = _result(kind, n, dim, tv, st), "請求" * 300
    encoded = v1.encode_response(res, request_id, VERSION, arrived=-DAY_S)
    actual = len(encoded.SerializeToString())
    shape = _shape(res, dim, tv, st)
    bound = v1.response_size(request_id, VERSION)(shape)
    # framing counted generously: a long token's length as if 1 byte in 64 of it
    slack = n * (160 + 24 * len(res.encodings[0].tokens)) + 128 + shape.token_bytes // 64
    assert actual <= bound <= actual + slack


def test_the_issues_case_is_counted_by_its_letters() -> None:
    """256 texts of one 16,000-letter token: over 4 MiB with their tokens, whatever the 24 bytes
    a token the old estimate counted made of it (about 0.3 MB)."""
    shape = ResponseShape([1] * 256, 256 * 16_000, 3, 256, False, 0)
    assert v1.response_size("", VERSION)(shape) > 4 << 20


def test_short_tokens_are_not_counted_much_above_their_size() -> None:
    """256 texts of 512 two-character tokens, ids of a 50,000-word vocabulary: about 1.7 MB,
    well within 4 MiB, and the estimate must say so (24 bytes a token beside their UTF-8
    would have made it 4.2 MB)."""
    rng = np.random.default_rng(0)
    vec = np.zeros(256, np.float32)
    encs = [
        TextEncoding(["北京"] * 512, rng.integers(0, 50_000, 512), vec, None, False, 512)
        for _ in range(256)
    ]
    res = EncodeResult(encs, 0.01, 0.01, 0.01)
    actual = len(v1.encode_response(res, "", VERSION, 0.0).SerializeToString())
    shape = ResponseShape([512] * 256, 256 * 512 * 6, varint_bytes(49_999), 256, False, 0)
    assert actual <= v1.response_size("", VERSION)(shape) <= 1.1 * actual < 4 << 20


@pytest.mark.parametrize(("kind", "n", "dim"), [(k, n, d) for k, n, d, tv, st in CASES[::3]])
def test_open_inference_response_never_exceeds_its_estimate(kind, n, dim) -> None:
    res, outputs = _result(kind, n, dim, True, False), list(oip.OUTPUTS)
    actual = len(oip.infer_response(res, outputs, "m", VERSION, "id-9", 0).SerializeToString())
    bound = oip.response_size(outputs, "m", VERSION, "id-9")(_shape(res, dim, True, False))
    assert actual <= bound <= actual + 4 * oip.OUTPUT_BYTES + 64


def test_open_inference_counts_the_padding() -> None:
    """One text of 500 tokens pads 63 of one token each to 500: 64 x 500 token vectors."""
    shape = ResponseShape([500] + [1] * 63, 600, 2, 256, True, 0)
    size = oip.response_size([oip.TOKEN_VECTORS], "m", VERSION, "")(shape)
    assert size >= 64 * 500 * 256 * 4


@pytest.mark.parametrize("fmt", ["float", "base64"])
@pytest.mark.parametrize("dim", [1, 256])
def test_embeddings_json_never_exceeds_its_estimate(fmt: str, dim: int) -> None:
    rng = np.random.default_rng(0)
    res = _result("one each", 64, dim, False, False)
    for e, scale in zip(res.encodings, 10.0 ** rng.integers(-40, 36, 64)):
        e.vector = (rng.standard_normal(dim) * scale).astype(np.float32)
    res.encodings[0].vector[:] = -3.0996646e-06  # the longest a float32 is written (16)
    body = openai.json_reply(200, openai.response(res, "zh-encoder", fmt)).body
    bound = openai.response_size("zh-encoder", fmt)(_shape(res, dim, False, False))
    assert len(body) <= bound


def test_tokenize_response_never_exceeds_its_estimate() -> None:
    texts = [TOKENS[k](i) for i, k in enumerate(TOKENS)] + [[]]
    out = [Tokenized(t, np.full(len(t), BIG_ID, np.int64), 2**32 - 1) for t in texts]
    actual = len(v1.tokenize_response(out, VERSION).SerializeToString())
    bound = tokenized_bytes(texts, varint_bytes(BIG_ID))
    utf8 = sum(len(t.encode()) for x in texts for t in x)
    assert actual <= bound <= actual + 24 * len(texts) + utf8 // 64 + 64
