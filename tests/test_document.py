"""Documents of any length: pieces cut anywhere, chunks carried by state, equal to the whole."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
import torch

from tests.conftest import SMALL, TEXTS
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded
from zh_rnn_encoder.export.cli import DEFAULT_CORPUS
from zh_rnn_encoder.runtime.encoder import EncodeOptions, Encoder
from zh_rnn_encoder.runtime.limits import Limits

ATOL = contract.PARITY_ATOL


def corpus_document(chars: int, seed: int = 0) -> str:
    lines = [x for x in DEFAULT_CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]
    rng, out, n = random.Random(seed), [], 0
    while n < chars:
        out.append(rng.choice(lines))
        n += len(out[-1])
    return "".join(out)[:chars]


def cut_anywhere(text: str, seed: int, most: int = 300) -> list[str]:
    """Pieces of 1..most characters, cut without regard to words."""
    rng, pieces, at = random.Random(seed), [], 0
    while at < len(text):
        n = rng.randint(1, most)
        pieces.append(text[at : at + n])
        at += n
    return pieces


@pytest.fixture(scope="module", params=[{"cell": "lstm", **SMALL}, {"cell": "gru", **SMALL}, {}],
                ids=["lstm", "gru", "rnn"])  # fmt: skip
def case(request, bundle_factory, jieba_cache):
    bundle, ckpt = bundle_factory(**request.param)
    return Encoder.from_bundle(bundle, jieba_cache_dir=jieba_cache), ckpt


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_pieces_cut_anywhere_equal_the_whole_text(case, pooling: str) -> None:
    enc, _ = case
    text = "".join(TEXTS) * 3
    whole = enc.encode([text], pooling=pooling, normalize=True, return_state=True)[0]
    doc = enc.encode_document(cut_anywhere(text, 1, 7), pooling=pooling, normalize=True,
                              chunk_tokens=5)  # fmt: skip
    assert doc.tokens == len(whole.ids) and doc.chars == len(text)
    assert np.abs(doc.vector - whole.vector).max() <= ATOL
    assert np.abs(doc.state.h - whole.state.h).max() <= ATOL


def test_a_long_document_equals_eager_pytorch(case) -> None:
    """About 100k tokens, in pieces cut anywhere, against eager PyTorch over the whole sequence."""
    enc, ckpt = case
    text = corpus_document(200_000, seed=3)
    doc = enc.encode_document(cut_anywhere(text, 2, 5000), pooling="mean")
    ids = ckpt.vocab.encode(enc.tokenizer.tokenize(text))
    assert doc.tokens == len(ids) > 90_000
    with torch.no_grad():
        states, final = ckpt.model(torch.from_numpy(ids[None]), torch.tensor([len(ids)]))
    assert np.abs(doc.vector - states[0].numpy().mean(0)).max() <= ATOL
    last = enc.encode_document(cut_anywhere(text[:50_000], 6, 5000), pooling="last")  # vs final
    ids = ckpt.vocab.encode(enc.tokenizer.tokenize(text[:50_000]))
    with torch.no_grad():
        _, final = ckpt.model(torch.from_numpy(ids[None]), torch.tensor([len(ids)]))
    assert np.abs(last.vector - final[0].numpy()).max() <= ATOL


def test_a_document_continues_from_a_state(case) -> None:
    enc, _ = case
    a, b = "".join(TEXTS[:3]), "".join(TEXTS[3:])
    whole = enc.encode_document([a + b], pooling="max")
    first = enc.encode_document([a], pooling="max")
    rest = enc.encode_document([b], pooling="max", initial_state=first.state)
    assert np.abs(rest.vector - whole.vector).max() <= ATOL and rest.state.tokens == whole.tokens


def test_the_serving_face_streams_the_same(case) -> None:
    enc, _ = case
    text = "".join(TEXTS) * 4
    want = enc.encode_document(cut_anywhere(text, 4, 9), pooling="mean")

    async def pieces():
        for p in cut_anywhere(text, 5, 11):
            yield p

    async def go():
        try:
            return await enc.aencode_document(pieces(), EncodeOptions(pooling="mean"))
        finally:
            await enc.aclose()

    got = asyncio.run(go())
    assert np.abs(got.vector - want.vector).max() <= ATOL and got.tokens == want.tokens


def test_limits(bundle_factory, jieba_cache) -> None:
    enc = Encoder.from_bundle(bundle_factory()[0], jieba_cache_dir=jieba_cache,
                              limits=Limits(max_chars_per_text=100))  # fmt: skip
    with pytest.raises(LimitExceeded, match=r"max_chars_per_text exceeded at piece 1: 101 > 100"):
        enc.encode_document(["好", "好" * 101])
    with pytest.raises(LimitExceeded, match=r"max_document_tokens exceeded at document"):
        enc.encode_document([TEXTS[0]] * 10, max_tokens=50)
    with pytest.raises(InvalidInput, match="no tokens"):
        enc.encode_document(["", ""])
    # a run of word characters longer than the limit is cut, not held without end
    assert enc.encode_document(["好" * 90] * 5).chars == 450


def test_through_grpc(bundle_factory, jieba_cache) -> None:
    import time

    import grpc

    from tests.harness import InProcessServer
    from zh_rnn_encoder.client import EncoderClient, to_numpy

    bundle = bundle_factory(cell="gru", **SMALL)[0]
    enc = Encoder.from_bundle(bundle, jieba_cache_dir=jieba_cache)
    text = corpus_document(30_000, seed=9)
    want = enc.encode_document(cut_anywhere(text, 7, 3000), pooling="mean", normalize=True)
    srv = InProcessServer(bundle, jieba_cache, document_deadline_s=1.0).load()
    try:
        with EncoderClient(srv.target) as c:
            got = c.encode_document(cut_anywhere(text, 8, 4000), pooling="mean", normalize=True,
                                    request_id="doc-1")  # fmt: skip
            assert got.request_id == "doc-1" and got.token_count == want.tokens
            assert got.char_count == len(text)
            assert np.abs(to_numpy(got.sentence_vector) - want.vector).max() <= ATOL
            more = c.encode_document(["继续写下去。"], initial_state=got.state)
            assert more.state.tokens == got.state.tokens + more.token_count

            def slow():
                yield "第一段。"
                time.sleep(1.5)
                yield "第二段。"

            for pieces, code, words in (
                ([], "INVALID_ARGUMENT", "document: no pieces"),
                (["好" * 20_001], "INVALID_ARGUMENT", "max_chars_per_text exceeded at piece 0"),
                (slow(), "DEADLINE_EXCEEDED", "document_deadline_s=1 exceeded"),
            ):
                with pytest.raises(grpc.RpcError) as e:
                    c.encode_document(pieces)
                assert e.value.code().name == code and words in e.value.details()
    finally:
        srv.stop()
