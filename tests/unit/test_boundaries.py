"""The token-boundary rule, proven by generation against jieba.lcut: cutting a text where
is_boundary says so keeps its tokens, tokens(A) + tokens(B) == tokens(A+B)."""

from __future__ import annotations

import random

import jieba
import pytest
from hypothesis import HealthCheck, given, settings

from tools import unicode_mix
from zh_rnn_encoder.core.boundaries import is_boundary, last_boundary, split_text
from zh_rnn_encoder.core.tokenizer import Tokenizer

FAST = Tokenizer()


@settings(
    max_examples=1500,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(unicode_mix.strategy())
def test_a_cut_at_a_boundary_keeps_the_tokens(text: str) -> None:
    cuts = [k for k in range(1, len(text)) if is_boundary(text, k)]
    rng = random.Random(len(text))
    whole = jieba.lcut(text)
    for k in rng.sample(cuts, min(6, len(cuts))):
        assert jieba.lcut(text[:k]) + jieba.lcut(text[k:]) == whole, k
        assert FAST.tokenize(text[:k]) + FAST.tokenize(text[k:]) == whole, k


def test_the_rule_is_not_vacuous() -> None:
    """Cuts inside a run of word characters do change tokens, and the rule refuses them."""
    text = "北京冬奥的进度条\r\n已经过半"
    assert not is_boundary(text, 1) and jieba.lcut(text[:1]) + jieba.lcut(text[1:]) != jieba.lcut(
        text
    )
    assert not is_boundary(text, 9)  # between \r and \n, which jieba keeps as one token
    assert jieba.lcut(text[:9]) + jieba.lcut(text[9:]) != jieba.lcut(text)
    assert is_boundary(text, 8) and is_boundary(text, 10)


@pytest.mark.parametrize("max_chars", [1, 7, 50])
def test_split_text_pieces_concatenate_to_the_tokens(max_chars: int) -> None:
    for text in unicode_mix.texts(200, seed=5):
        pieces = split_text(text, max_chars)
        assert "".join(pieces) == text
        assert all(len(p) <= max_chars or not any(is_boundary(p, k) for k in range(1, len(p)))
                   for p in pieces)  # fmt: skip
        assert [t for p in pieces for t in FAST.tokenize(p)] == FAST.tokenize(text)


def test_last_boundary_keeps_back_the_unfinished_run() -> None:
    text = "今天天气很好，我们去公园"
    at = last_boundary(text)
    assert text[:at] == "今天天气很好，" and text[at:] == "我们去公园"
    assert last_boundary("一二三") == 0  # no cut: the whole text waits for more
