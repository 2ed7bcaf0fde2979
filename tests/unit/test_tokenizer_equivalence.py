"""The fast path segments exactly as jieba.lcut, on a large mixed corpus; it stays in CI."""

from __future__ import annotations

import random
from pathlib import Path

import jieba
import pytest

from tests.support import ROOT
from zh_rnn_encoder.core.manifest import TokenizerConfig
from zh_rnn_encoder.core.tokenizer import Tokenizer

FILES = ["tests/data/segmentation_zh.txt", "export/data/corpus_zh.txt", "bench/texts_zh.txt"]
ASCII_BITS = [
    "COVID-19",
    "example.com",
    "user_name",
    "v2.3.1",
    "3.14",
    "2026-11-26",
    "12:30",
    "a.b@c.com",
    "e-mail",
    "x_y.z",
    "AT&T.com",
    "C++_lib",
    "c#.net",
    "100%",
    "1.5%",
    "0-100km",
    "ResNet-50",
    "GPT-4o",
    "__init__",
    "...",
    "--",
    "a-",
    "-b",
    ".5",
    "5.",
    "1.2.3.4",
    "ERR_X",
    "http://a.b/c_d",
    "iPhone15",
    "T恤",
    "A股",
    "Wi-Fi",
    "3.5mm",
]
SPACES = [" ", "\t", "  ", "\u3000", "\r\n", "\n"]
PUNCT = list("，。！？、；：（）《》“”…—·,.!?;:()[]{}<>/\\|@#$%^&*+=~`'\"")
EMOJI = ["😀", "👍🏽", "🇨🇳", "❤️"]


def corpus_lines() -> list[str]:
    lines = []
    for f in FILES:
        lines += (ROOT / f).read_text(encoding="utf-8").splitlines()
    return lines


def mixed_lines(base: list[str], n: int, seed: int = 0) -> list[str]:
    """Deterministic mixes of corpus fragments with ASCII runs, spaces, punctuation, emoji."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(2, 8)):
            kind = rng.random()
            if kind < 0.45:
                line = rng.choice(base)
                i = rng.randrange(len(line))
                parts.append(line[i : i + rng.randint(1, 12)])
            elif kind < 0.7:
                parts.append(rng.choice(ASCII_BITS))
            elif kind < 0.8:
                parts.append(rng.choice(SPACES))
            elif kind < 0.95:
                parts.append(rng.choice(PUNCT))
            else:
                parts.append(rng.choice(EMOJI))
        out.append("".join(parts))
    return out


@pytest.fixture(scope="module")
def lines() -> list[str]:
    base = corpus_lines()
    return base + mixed_lines(base, 4000)


def test_fast_path_equals_jieba(lines: list[str], jieba_cache: Path) -> None:
    fast = Tokenizer(cache_dir=jieba_cache)
    assert fast.backend == "rjieba"
    assert len(lines) > 5000
    diffs = [(x, fast.tokenize(x), jieba.lcut(x)) for x in lines]
    diffs = [d for d in diffs if d[1] != d[2]]
    assert diffs == [], f"{len(diffs)} lines differ, e.g. {diffs[:3]}"


def test_whitespace_drop_on_the_fast_path(jieba_cache: Path) -> None:
    text = "我 爱\t北京 COVID-19"
    fast = Tokenizer(TokenizerConfig(whitespace="drop"), cache_dir=jieba_cache)
    ref = Tokenizer(TokenizerConfig(whitespace="drop"), cache_dir=jieba_cache, backend="jieba")
    assert fast.backend == "rjieba" and fast.tokenize(text) == ref.tokenize(text)


def test_settings_the_fast_path_cannot_honour_use_jieba(tmp_path: Path, jieba_cache: Path) -> None:
    assert Tokenizer(TokenizerConfig(hmm=False), cache_dir=jieba_cache).backend == "jieba"
    d = tmp_path / "d.txt"
    d.write_text("北京冬奥 1000 n\n", encoding="utf-8")
    tok = Tokenizer(TokenizerConfig(user_dict="d.txt"), d, cache_dir=jieba_cache)
    assert tok.backend == "jieba"
    with pytest.raises(ValueError, match="backend"):
        Tokenizer(backend="fast")


# Han characters outside jieba's Han class (U+4E00-U+9FD5, `re_han_default`) that jieba-rs counts
# as Han: jieba emits each one alone, jieba-rs's HMM may join a run of them into one token.
OUTSIDE_JIEBA_HAN = [
    (0x3400, 0x4DBF),  # Extension A
    (0x9FD6, 0x9FFF),  # the end of the Unified block, past jieba's bound
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2EBEF),  # Extensions C-F
    (0x2F800, 0x2FA1F),  # compatibility supplement
    (0x30000, 0x3134F),  # Extension G
]


RUNS = ["㐀㐁㐂", "鿖鿗好", "𠀀𠀁", "我们𠀀𠀁𠀂在一起", "豈更車賈", "𰀀𰀁"]


@pytest.mark.parametrize("text", RUNS)
def test_runs_of_han_outside_jiebas_class(text: str, jieba_cache: Path) -> None:
    assert Tokenizer(cache_dir=jieba_cache).tokenize(text) == jieba.lcut(text)


def test_generated_mixes_with_every_han_extension(jieba_cache: Path) -> None:
    rng = random.Random(7)
    base = corpus_lines()
    fast = Tokenizer(cache_dir=jieba_cache)
    texts = []
    for _ in range(2000):
        parts = []
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.5:
                lo, hi = rng.choice(OUTSIDE_JIEBA_HAN)
                parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4))))
            else:
                line = rng.choice(base)
                i = rng.randrange(len(line))
                parts.append(line[i : i + rng.randint(1, 8)])
        texts.append("".join(parts))
    diffs = [(t, fast.tokenize(t), jieba.lcut(t)) for t in texts]
    diffs = [d for d in diffs if d[1] != d[2]]
    assert diffs == [], f"{len(diffs)} of {len(texts)} differ, e.g. {diffs[:3]}"
