"""Documents at scale and through gRPC: about 100k tokens equal eager PyTorch over the whole
sequence; EncodeDocument equals the in-process Encoder, carries its state, and refuses empty,
oversized and stalled streams with their status."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
import torch

from tests.support.harness import InProcessServer
from tests.support.samples import SMALL, corpus_document, cut_anywhere
from zh_rnn_encoder.client import EncoderClient, to_numpy
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.runtime.encoder import Encoder

ATOL = contract.PARITY_ATOL


@pytest.fixture(scope="module", params=[{"cell": "lstm", **SMALL}, {"cell": "gru", **SMALL}, {}],
                ids=["lstm", "gru", "rnn"])  # fmt: skip
def case(request, bundle_factory, jieba_cache):
    bundle, ckpt = bundle_factory(**request.param)
    return Encoder.from_bundle(bundle, jieba_cache_dir=jieba_cache), ckpt


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


def test_through_grpc(bundle_factory, jieba_cache) -> None:
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
