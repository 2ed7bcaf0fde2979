"""Training text, streamed: one checking pass (vocabulary, labels, document frequencies), then
shuffled, length-bucketed batches from a bounded buffer, the same for the same seed and epoch.

Memory is bounded by ``buffer`` texts, not by the corpus: every epoch reads the file again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.data.records import DataError, Example, Fields, read
from zh_rnn_encoder.data.split import VALID, key_of, split_of

BUCKET_BATCHES = 32  # batches sorted by length together: less padding, still well shuffled


@dataclass(frozen=True)
class Source:
    """A data file and how to read it; ``fields.label`` empty for unlabelled text."""

    path: Path
    fields: Fields = Fields()
    fmt: str = ""
    part: str = ""  # "": every example; VALID: the rule's validation groups; TRAIN: the others

    def examples(self) -> Iterator[Example]:
        rows = read(self.path, self.fields, self.fmt)
        if not self.part:
            return rows
        want_valid = self.part == VALID
        return (x for x in rows if (split_of(key_of(x.text)) == VALID) == want_valid)


@dataclass
class Survey:
    """What the checking pass learnt: token counts, document frequencies, labels, size."""

    texts: int = 0
    tokens: int = 0
    counts: Counter = field(default_factory=Counter)
    doc_freq: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)


def survey(src: Source, tok: Tokenizer, max_tokens: int) -> Survey:
    """Read every example once (so bad input fails before anything is written)."""
    s = Survey()
    for ex in src.examples():
        toks = tok.tokenize(ex.text)[:max_tokens]
        if not toks:
            raise DataError(f"{ex.where}: field {src.fields.text!r} has no tokens")
        s.texts += 1
        s.tokens += len(toks)
        s.counts.update(toks)
        s.doc_freq.update(set(toks))
        if ex.label:
            s.labels[ex.label] += 1
    if not s.texts:
        raise DataError(f"{src.path}: no texts")
    if src.fields.label and len(s.labels) < 2:
        only = next(iter(s.labels), "")
        raise DataError(f"{src.path}: field {src.fields.label!r} has one class only ({only!r})")
    return s


def idf_weights(s: Survey, vocab: Vocab) -> np.ndarray:
    """float32 [V]: log(N / df) per id, 0 for the reserved ids (never a bag-of-words target)."""
    w = np.zeros(len(vocab), dtype=np.float32)
    for i, t in enumerate(vocab.tokens):
        if i not in (vocab.pad_id, vocab.unk_id):
            w[i] = math.log(s.texts / max(1, s.doc_freq[t]))
    return w


@dataclass(frozen=True)
class Batch:
    ids: np.ndarray  # int64 [B, S], padded with pad_id
    lengths: np.ndarray  # int64 [B]
    labels: np.ndarray  # int64 [B]; -1 where unlabelled
    soft: np.ndarray | None = None  # float32 [B, classes] teacher log-probabilities; NaN: none

    def __len__(self) -> int:
        return len(self.lengths)


class Batches:
    """Batches of one source; ``epoch(e)`` is a pure function of (seed, e) and the file."""

    def __init__(
        self,
        src: Source,
        tok: Tokenizer,
        vocab: Vocab,
        classes: list[str],
        batch_size: int,
        max_tokens: int,
        buffer: int,
        seed: int,
        soft: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.src, self.tok, self.vocab, self.soft = src, tok, vocab, soft
        self.class_id = {c: i for i, c in enumerate(classes)}
        self.batch_size, self.max_tokens = batch_size, max_tokens
        self.buffer, self.seed = max(buffer, batch_size), seed

    def epoch(self, e: int, shuffle: bool = True) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, e]) if shuffle else None
        rows: list[tuple[np.ndarray, int, np.ndarray | None]] = []
        for ex in self.src.examples():
            ids = self.vocab.encode(self.tok.tokenize(ex.text)[: self.max_tokens])
            soft = self.soft.get(ex.text) if self.soft is not None else None
            rows.append((ids, self.class_id.get(ex.label, -1), soft))
            if len(rows) >= self.buffer:
                yield from self._drain(rows, rng)
                rows = []
        if rows:
            yield from self._drain(rows, rng)

    def _drain(self, rows: list, rng: np.random.Generator | None) -> Iterator[Batch]:
        order = list(range(len(rows)) if rng is None else rng.permutation(len(rows)))
        span = self.batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            if rng is not None:
                chunk.sort(key=lambda i: len(rows[i][0]))
            for b in range(0, len(chunk), self.batch_size):
                batches.append(self._batch([rows[i] for i in chunk[b : b + self.batch_size]]))
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        yield from batches

    def _batch(self, rows: list[tuple[np.ndarray, int, np.ndarray | None]]) -> Batch:
        lengths = np.array([len(r[0]) for r in rows], dtype=np.int64)
        ids = np.full((len(rows), int(lengths.max())), self.vocab.pad_id, dtype=np.int64)
        for j, (r, _, _) in enumerate(rows):
            ids[j, : len(r)] = r
        soft = None
        if self.soft is not None:
            soft = np.full((len(rows), len(self.class_id)), np.nan, dtype=np.float32)
            for j, (_, _, q) in enumerate(rows):
                if q is not None:
                    soft[j] = q
        return Batch(ids, lengths, np.array([r[1] for r in rows], dtype=np.int64), soft)
