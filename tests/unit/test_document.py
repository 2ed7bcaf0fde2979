"""Documents of any length: pieces cut anywhere, chunks carried by state, equal to the whole."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.support.samples import SMALL, TEXTS, cut_anywhere
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded
from zh_rnn_encoder.runtime.encoder import EncodeOptions, Encoder
from zh_rnn_encoder.runtime.limits import Limits

ATOL = contract.PARITY_ATOL


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
