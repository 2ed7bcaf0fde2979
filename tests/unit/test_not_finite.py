"""No vector holding a NaN or an infinity goes out. A relu cell's states are not bounded by the
cell, so a model's states may leave float32's range on some input; that text's request gets
INVALID_ARGUMENT naming the text, whatever the pooling, in process, through the batcher (the
other requests of its run unharmed) and in a document.
The model: conftest's ``overflowing``."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.support.samples import OVERFLOWING_AFTER as SHORT
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.runtime.encoder import EncodeOptions, Encoder

OVERFLOW = r"the model's states left float32's range"
OPTIONS = [
    {},
    {"normalize": False},
    {"pooling": "max"},
    {"pooling": "last"},
    {"pooling": "max", "normalize": False},
    {"token_vectors": True},
]


@pytest.fixture(scope="module")
def blowup(overflowing, jieba_cache) -> tuple[Encoder, str]:
    path, text = overflowing
    enc = Encoder.from_bundle(path, jieba_cache_dir=jieba_cache)
    assert SHORT in text and len(enc.tokenize([text])[0].ids) > len(enc.tokenize([SHORT])[0].ids)
    return enc, text


@pytest.mark.parametrize("kw", OPTIONS, ids=lambda kw: str(kw or "defaults"))
def test_a_text_whose_states_overflow_is_refused_by_name(blowup, kw) -> None:
    enc, text = blowup
    assert np.isfinite(enc.encode([SHORT], **kw)[0].vector).all()
    with pytest.raises(InvalidInput, match=rf"texts\[1\]: {OVERFLOW}"):
        enc.encode([SHORT, text], **kw)


def test_through_the_batcher_the_request_fails_alone(blowup) -> None:
    enc, text = blowup

    async def go():
        async def one(texts):
            with await enc.admit(texts, EncodeOptions()) as admitted:
                return (await enc.encode_admitted(admitted)).encodings

        try:  # gathered: the batcher runs their rows together
            return await asyncio.gather(one([SHORT]), one([SHORT, text]), one([SHORT]),
                                        return_exceptions=True)  # fmt: skip
        finally:
            await enc.aclose()

    first, bad, last = asyncio.run(go())
    assert isinstance(bad, InvalidInput) and "texts[1]: " in str(bad), bad
    want = enc.encode([SHORT])[0].vector
    for ok in (first, last):
        assert not isinstance(ok, BaseException), ok
        assert np.array_equal(ok[0].vector, want)


def test_a_document_whose_states_overflow_is_refused(blowup) -> None:
    enc, text = blowup
    pieces = [SHORT * 20, text, SHORT]  # the word in the second chunk of 64 tokens or later
    with pytest.raises(InvalidInput, match=rf"document, past token [1-9]\d*: {OVERFLOW}"):
        enc.encode_document(pieces, chunk_tokens=16)
