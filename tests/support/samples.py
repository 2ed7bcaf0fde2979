"""Sample texts, documents and a small model size that the tests share."""

from __future__ import annotations

import random

TUTORIAL = "北京冬奥的进度条已经过半，不少外国运动员在完成自己的比赛后踏上归途。"
TUTORIAL_TOKENS = [
    "北京",
    "冬奥",
    "的",
    "进度条",
    "已经",
    "过半",
    "，",
    "不少",
    "外国",
    "运动员",
    "在",
    "完成",
    "自己",
    "的",
    "比赛",
    "后",
    "踏上",
    "归途",
    "。",
]
SMALL = {"embedding_dim": 16, "hidden_size": 24}
# conftest's ``overflowing`` model: a text after its one overflowing word (0 states without it)
OVERFLOWING_AFTER = "今天天气很好，我们去公园散步吧。"
# A mixed sample: the tutorial, one token, Latin and digits, unknown words, traditional.
TEXTS = [
    TUTORIAL,
    "你好",
    "今天天气很好，我们去公园散步吧。",
    "iPhone 15的价格是5999元",
    "魑魅魍魉在犄角旮旯里嘀嘀咕咕",
    "臺灣的夜市很熱鬧",
]


def corpus_document(chars: int, seed: int = 0) -> str:
    """About ``chars`` characters of the default corpus's lines, drawn with ``seed``."""
    from zh_rnn_encoder.export.cli import DEFAULT_CORPUS  # imports torch: only when asked

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
