"""The in-process Encoder and a real server give the same encodings, option set by option set."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.harness import InProcessServer
from tests.support.samples import SMALL, TEXTS
from zh_rnn_encoder import Encoder
from zh_rnn_encoder.client import EncoderClient

OPTION_SETS = [
    {},
    {"pooling": "mean", "normalize": True, "token_vectors": True},
    {"pooling": "max", "truncation": "keep_last", "max_tokens": 5},
]


@pytest.fixture(scope="module")
def bundle(bundle_factory):
    return bundle_factory(cell="lstm", bidirectional=True, **SMALL)


@pytest.fixture(scope="module")
def enc(bundle, jieba_cache) -> Encoder:
    return Encoder.from_bundle(bundle[0], threads=1, jieba_cache_dir=jieba_cache)


def test_same_vectors_as_the_grpc_path(bundle, enc, jieba_cache) -> None:
    srv = InProcessServer(bundle[0], jieba_cache).load()
    try:
        with EncoderClient(srv.target) as c:
            for opts in OPTION_SETS:
                remote, local = c.encode(TEXTS, **opts), enc.encode(TEXTS, **opts)
                for r, e in zip(remote, local):
                    assert r.tokens == e.tokens and np.array_equal(r.ids, e.ids)
                    assert np.array_equal(r.vector, e.vector), opts
                    assert r.truncated == e.truncated
                    if opts.get("token_vectors"):
                        assert np.array_equal(r.token_vectors, e.token_vectors)
                    else:
                        assert r.token_vectors is None and e.token_vectors is None
    finally:
        srv.stop()
