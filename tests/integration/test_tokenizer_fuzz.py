"""Tokenizer identity with jieba.lcut, proven by generation over every Unicode block and category
that can matter (tools/unicode_mix.py), in process and through the server."""

from __future__ import annotations

import jieba
import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.harness import InProcessServer
from tools import unicode_mix
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.runtime.limits import Limits

FAST = Tokenizer()  # the rjieba fast path, as the server runs it for the default bundle


@settings(
    max_examples=6000,  # about 16 s here; `make fuzz-tokenizer` runs a million
    derandomize=True,  # a fixed seed: the same strings in every run, CI included
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(unicode_mix.strategy())
def test_fast_path_equals_jieba_on_generated_text(text: str) -> None:
    assert FAST.backend == "rjieba"
    assert FAST.tokenize(text) == jieba.lcut(text)  # hypothesis prints the shrunk example


@pytest.mark.parametrize("text", ["a\ud800b", "你好\udfff世界"])
def test_lone_surrogates_are_cut_as_jieba_cuts_them(text: str) -> None:
    """Not UTF-8 (no transport can carry them), but in-process callers get jieba's answer."""
    assert FAST.tokenize(text) == jieba.lcut(text)


def test_identity_through_the_server(bundle_factory, jieba_cache) -> None:
    texts = unicode_mix.texts(600, seed=11)
    limits = Limits(max_tokens_per_text=4096, max_message_bytes=64 << 20)
    srv = InProcessServer(bundle_factory()[0], jieba_cache, limits=limits).load()
    try:
        with EncoderClient(srv.target) as c:
            for i in range(0, len(texts), 200):
                chunk = texts[i : i + 200]
                want = [jieba.lcut(t) for t in chunk]
                assert [t.tokens for t in c.tokenize(chunk)] == want
                encodable = [(t, w) for t, w in zip(chunk, want) if t.strip()]
                got = c.encode([t for t, _ in encodable])
                assert [e.tokens for e in got] == [w for _, w in encodable]
    finally:
        srv.stop()
