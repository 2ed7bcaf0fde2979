"""Word vectors built from characters in training, a plain word table at export.

A word-level model trained on 14k reviews knows ~17k words; a text from another domain meets
words it never saw (13 % of the out-of-domain set's tokens) and each becomes ``<unk>``. Chinese
words share characters (难用, 难吃, 难看), so in training each word's vector is its own vector
plus its characters' (fastText's subword model with characters as the subwords):

    v(w) = (W[w] + sum of C[c] over the characters c of w) / (1 + len(w))

At export the table is written out in full, and extended with words of jieba's dictionary that
training never saw, each the mean of its characters' vectors. The served model is unchanged:
``nn.Embedding`` -> RNN, one row a word; only the rows are many more and the unknown-word rate
falls.

In training a share of tokens (``char_dropout``) is replaced by its characters alone: ids
``V..2V`` index the same words without their own vector, so the recurrent layer learns to read
the vectors that the dictionary's unseen words will have.
"""

from __future__ import annotations

import importlib.resources

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zh_rnn_encoder.core.vocab import Vocab


def _chars_of(token: str, special: set[str]) -> str:
    return "" if token in special else token


class Composed(nn.Module):
    """An embedding of ``2 * len(vocab)`` rows: word + characters, then characters alone."""

    def __init__(self, word: nn.Embedding, vocab: Vocab, seed: int) -> None:
        super().__init__()
        special = {vocab.pad, vocab.unk}
        chars = sorted({c for t in vocab.tokens for c in _chars_of(t, special)})
        self.char_index = {c: i for i, c in enumerate(chars)}
        self.word = word
        self.chars = nn.Embedding(len(chars), word.embedding_dim)
        std = float(word.weight.detach().std())
        with torch.no_grad():  # its own generator: the same vectors for the same seed
            gen = torch.Generator().manual_seed(seed)
            self.chars.weight.copy_(torch.randn(self.chars.weight.shape, generator=gen) * std)
        sums, counts = self._sums([_chars_of(t, special) for t in vocab.tokens])
        self.register_buffer("sums", sums, persistent=False)  # [V, C] sparse, 1 a character
        self.register_buffer("counts", counts, persistent=False)  # [V] characters a word

    def _sums(self, words: list[str]) -> tuple[Tensor, Tensor]:
        rows, cols = [], []
        for i, w in enumerate(words):
            for c in w:
                rows.append(i)
                cols.append(self.char_index[c])
        values = torch.ones(len(rows))
        shape = (len(words), len(self.char_index))
        index = torch.tensor([rows, cols], dtype=torch.int64).reshape(2, -1)
        sums = torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()
        counts = torch.tensor([len(w) for w in words], dtype=torch.float32)
        return sums, counts

    @property
    def size(self) -> int:
        return self.word.num_embeddings

    def table(self) -> Tensor:
        """[2V, d]: rows 0..V the trained words, rows V..2V the same words by characters alone."""
        chars = torch.sparse.mm(self.sums, self.chars.weight)
        full = (self.word.weight + chars) / (1 + self.counts)[:, None]
        alone = chars / self.counts.clamp_min(1)[:, None]
        return torch.cat([full, alone])

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.table())

    def spellable(self, word: str) -> bool:
        return bool(word) and all(c in self.char_index for c in word)

    @torch.no_grad()
    def export(self, vocab: Vocab, extra: list[str]) -> tuple[nn.Embedding, Vocab]:
        """The plain table for ``vocab`` + ``extra`` (each extra word by its characters)."""
        sums, counts = self._sums(extra)
        rows = torch.sparse.mm(sums, self.chars.weight) / counts.clamp_min(1)[:, None]
        weight = torch.cat([self.table()[: self.size], rows])
        out = nn.Embedding(weight.shape[0], weight.shape[1])
        out.weight.copy_(weight)
        return out, Vocab([*vocab.tokens, *extra], pad=vocab.pad, unk=vocab.unk)


def dictionary_words(known: Composed, vocab: Vocab, limit: int) -> list[str]:
    """Up to ``limit`` words of jieba's dictionary, most frequent first, that the vocabulary
    lacks and whose every character training saw. jieba's dictionary is MIT-licenced."""
    if limit <= 0:
        return []
    text = importlib.resources.files("jieba").joinpath("dict.txt").read_text(encoding="utf-8")
    ranked: list[tuple[int, str]] = []
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) >= 2 and parts[0] not in vocab.index and known.spellable(parts[0]):
            ranked.append((-int(parts[1]), parts[0]))
    ranked.sort()
    return [w for _, w in ranked[:limit]]


def char_dropout(ids: Tensor, share: float, size: int, special: tuple[int, int]) -> Tensor:
    """Each token, with probability ``share``, read by its characters alone (id + ``size``)."""
    if share <= 0:
        return ids
    pick = torch.rand(ids.shape) < share
    for s in special:
        pick &= ids != s
    return torch.where(pick, ids + size, ids)
