"""Generated text for tokenizer identity: every Unicode block and category that can matter, mixed
with real Chinese and the ASCII runs jieba treats specially. One table, two front ends: a
hypothesis strategy (tests) and a seeded random generator (`make fuzz-tokenizer`, the server test).
"""

from __future__ import annotations

import random
import sys
import unicodedata
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ["tests/data/segmentation_zh.txt", "export/data/corpus_zh.txt", "bench/texts_zh.txt"]

# Named code point ranges (inclusive) that jieba or jieba-rs could treat differently.
BLOCKS: dict[str, list[tuple[int, int]]] = {
    "cjk unified": [(0x4E00, 0x9FFF)],
    "cjk ext A": [(0x3400, 0x4DBF)],
    "cjk ext B-F": [(0x20000, 0x2A6DF), (0x2A700, 0x2EBEF)],
    "cjk ext G-I": [(0x2EBF0, 0x2EE5F), (0x30000, 0x323AF)],
    "cjk compatibility": [(0xF900, 0xFAFF), (0x2F800, 0x2FA1F)],
    "radicals and strokes": [(0x2E80, 0x2FDF), (0x2FF0, 0x2FFF), (0x31C0, 0x31EF)],
    "cjk symbols and punctuation": [(0x3000, 0x303F), (0xFE30, 0xFE4F)],
    "bopomofo": [(0x3100, 0x312F), (0x31A0, 0x31BF)],
    "kana": [(0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF65, 0xFF9F)],
    "hangul": [(0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F)],
    "fullwidth and halfwidth forms": [(0xFF01, 0xFF64), (0xFFA0, 0xFFEF)],
    "enclosed and circled": [(0x2460, 0x24FF), (0x3200, 0x32FF), (0x3300, 0x33FF)],
    "latin with marks": [(0x00C0, 0x024F), (0x1E00, 0x1EFF)],
    "combining marks": [(0x0300, 0x036F), (0x20D0, 0x20FF)],
    "emoji": [(0x1F300, 0x1FAFF), (0x2600, 0x27BF), (0x1F1E6, 0x1F1FF)],
    "emoji modifiers and joiners": [(0x1F3FB, 0x1F3FF), (0x200D, 0x200D), (0xFE0E, 0xFE0F)],
    "tags": [(0xE0020, 0xE007F)],
    "private use": [(0xE000, 0xF8FF), (0xF0000, 0xF00FF)],
    "ascii": [(0x20, 0x7E)],
    "controls": [(0x00, 0x1F), (0x7F, 0x9F)],
}
# General categories drawn from the whole of Unicode (surrogates excluded: no UTF-8 carries them).
CATEGORIES = ["Nd", "No", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Mn", "Mc", "Me", "Sk", "Sm", "So"]
CATEGORIES += ["Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Lm", "Lo", "Lu", "Ll", "Lt", "Nl"]
WHITESPACE = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0"]
WHITESPACE += ["\u1680", "\u2000", "\u2007", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f"]
WHITESPACE += ["\u3000", "\ufeff", "  ", "\r\n\r\n"]
# What jieba splits or keeps specially inside its Han blocks: ASCII words with + # & . _ % -
ASCII_SPECIAL = "-._+#&%"
ASCII_BITS = [
    "COVID-19", "example.com", "user_name", "v2.3.1", "3.14", "2026-11-26", "a.b@c.com",
    "AT&T", "C++", "c#", "C#", ".NET", "100%", "1.5%", "0-100km", "ResNet-50", "GPT-4o",
    "__init__", "...", "--", "a-", "-b", ".5", "5.", "1.2.3.4", "ERR_X", "T恤", "A股", "Wi-Fi",
    "3.5mm", "x+y", "#1", "R&D", "50%off", "%%", "++", "a_b-c.d+e#f&g%h",
]  # fmt: skip


@cache
def corpus_lines() -> tuple[str, ...]:
    lines: list[str] = []
    for f in CORPORA:
        lines += [x for x in (ROOT / f).read_text(encoding="utf-8").splitlines() if x.strip()]
    return tuple(lines)


@cache
def by_category() -> dict[str, list[str]]:
    """Every assigned code point of each category in CATEGORIES (one scan, about a second)."""
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat in out:
            out[cat].append(chr(cp))
    return out


def classes() -> list[str]:
    """The names a generated piece is drawn from, one list for both front ends."""
    return [*BLOCKS, *(f"category {c}" for c in CATEGORIES), "whitespace", "ascii special"]


def _char(rng: random.Random, name: str) -> str:
    if name in BLOCKS:
        lo, hi = rng.choice(BLOCKS[name])
        return chr(rng.randint(lo, hi))
    if name == "whitespace":
        return rng.choice(WHITESPACE)
    if name == "ascii special":
        return rng.choice(ASCII_SPECIAL + "aZ09")
    return rng.choice(by_category()[name.removeprefix("category ")])


def piece(rng: random.Random) -> str:
    """One run: a real Chinese fragment, an ASCII pattern, or 1-5 characters of one class."""
    kind = rng.random()
    if kind < 0.35:
        line = rng.choice(corpus_lines())
        i = rng.randrange(len(line))
        return line[i : i + rng.randint(1, 12)]
    if kind < 0.5:
        return rng.choice(ASCII_BITS)
    name = rng.choice(classes())
    return "".join(_char(rng, name) for _ in range(rng.randint(1, 5)))


def text(rng: random.Random) -> str:
    return "".join(piece(rng) for _ in range(rng.randint(1, 8)))


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [text(rng) for _ in range(n)]


def strategy() -> object:
    """The same mix as a hypothesis strategy, so that a failure shrinks to a minimal example."""
    from hypothesis import strategies as st

    chars = {
        name: st.sampled_from(BLOCKS[name]).flatmap(lambda r: st.integers(*r).map(chr))
        for name in BLOCKS
    }
    chars |= {f"category {c}": st.sampled_from(by_category()[c]) for c in CATEGORIES}
    chars["whitespace"] = st.sampled_from(WHITESPACE)
    chars["ascii special"] = st.sampled_from(ASCII_SPECIAL + "aZ09")
    runs = st.sampled_from(sorted(chars)).flatmap(
        lambda name: st.lists(chars[name], min_size=1, max_size=5).map("".join)
    )
    fragments = st.sampled_from(corpus_lines()).flatmap(
        lambda line: st.tuples(st.integers(0, len(line) - 1), st.integers(1, 12)).map(
            lambda ij: line[ij[0] : ij[0] + ij[1]]
        )
    )
    pieces = st.one_of(fragments, st.sampled_from(ASCII_BITS), runs)
    return st.lists(pieces, min_size=1, max_size=8).map("".join)
