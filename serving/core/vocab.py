"""The vocabulary: word -> id with reserved padding and unknown ids, stored as readable JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

VOCAB_FORMAT = "zh-rnn-encoder-vocab/1"
PAD = "<pad>"
UNK = "<unk>"


class Vocab:
    """Token list where a token's id is its position. ``pad_id`` and ``unk_id`` are reserved."""

    def __init__(self, tokens: Sequence[str], pad: str = PAD, unk: str = UNK) -> None:
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            dupes = [t for t, n in Counter(self.tokens).items() if n > 1]
            raise ValueError(f"vocabulary has duplicate tokens: {dupes[:5]}")
        for name, tok in (("pad", pad), ("unk", unk)):
            if tok not in self.index:
                raise ValueError(f"vocabulary lacks its reserved {name} token {tok!r}")
        self.pad, self.unk = pad, unk
        self.pad_id, self.unk_id = self.index[pad], self.index[unk]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Token strings -> int64 ids, unknown words mapped to ``unk_id``."""
        get, unk = self.index.get, self.unk_id
        return np.array([get(t, unk) for t in tokens], dtype=np.int64)

    @classmethod
    def build(
        cls, texts_tokens: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Reserved tokens first, then words by descending count, ties broken by the word itself.

        The order depends only on the counts, so the same corpus always gives the same ids.
        ``max_size`` counts the reserved tokens.
        """
        counts: Counter[str] = Counter()
        for toks in texts_tokens:
            counts.update(toks)
        return cls.from_counts(counts, min_freq, max_size)

    @classmethod
    def from_counts(
        cls, counts: Counter[str], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """As ``build``, from token counts already taken."""
        words = sorted(
            (w for w, n in counts.items() if n >= min_freq and w not in (PAD, UNK)),
            key=lambda w: (-counts[w], w),
        )
        if max_size is not None:
            if max_size < 2:
                raise ValueError("max_size must leave room for the two reserved tokens")
            words = words[: max_size - 2]
        return cls([PAD, UNK, *words])

    def to_json(self) -> str:
        # One token a line keeps the file readable and diffable; JSON escapes whitespace tokens.
        head = {"format": VOCAB_FORMAT, "size": len(self), "pad": self.pad, "unk": self.unk}
        lines = ",\n".join("  " + json.dumps(t, ensure_ascii=False) for t in self.tokens)
        head_json = json.dumps(head, ensure_ascii=False)[:-1]
        return f'{head_json}, "tokens": [\n{lines}\n]}}\n'

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_json_text(cls, text: str) -> Vocab:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != VOCAB_FORMAT:
            raise ValueError(f"not a vocabulary of format {VOCAB_FORMAT!r}")
        if d.get("size") != len(d["tokens"]):
            raise ValueError(f"header says {d.get('size')} tokens, file has {len(d['tokens'])}")
        return cls(d["tokens"], pad=d["pad"], unk=d["unk"])

    @classmethod
    def load(cls, path: Path) -> Vocab:
        try:
            return cls.from_json_text(Path(path).read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from e
