"""Bring a model built as in the tutorial (nn.Embedding, nn.RNN/LSTM/GRU, a word->index dict)."""

from __future__ import annotations

import logging

from torch import nn

from zh_rnn_encoder.core.manifest import TokenizerConfig
from zh_rnn_encoder.core.vocab import PAD, UNK, Vocab
from zh_rnn_encoder.export.checkpoint import Checkpoint
from zh_rnn_encoder.export.model import TorchEncoder

log = logging.getLogger("encoder.export")
# Reserved-token spellings recognised in a user's dict. Only bracketed forms: jieba never yields a
# multi-character token that starts with "<" or "[", so none of these can be a real word.
PAD_NAMES = ("<pad>", "<PAD>", "[PAD]", "<blank>")
UNK_NAMES = ("<unk>", "<UNK>", "[UNK]", "<oov>", "<OOV>", "[OOV]")


def map_vocabulary(
    word_to_index: dict[str, int],
    rows: int,
    padding_idx: int | None = None,
    pad_token: str | None = None,
    unk_token: str | None = None,
) -> tuple[Vocab, list[str]]:
    """The Vocab whose ids are the user's embedding rows, and a line for every mapping made.

    Rows no word names become placeholder tokens ``<unused:ROW>`` (their ids keep their rows).
    The padding token is ``pad_token``, else the word at the embedding's ``padding_idx``, else a
    bracketed pad spelling in the dict, else ``<pad>`` appended as a new zero row; likewise unk.
    """
    _check_indices(word_to_index, rows)
    tokens = [f"<unused:{i}>" for i in range(rows)]
    for w, i in word_to_index.items():
        tokens[i] = w
    notes = []
    if len(word_to_index) < rows:
        gaps = _ranges(sorted(set(range(rows)) - set(word_to_index.values())))
        notes.append(f"rows {gaps} have no word: placeholders <unused:ROW> keep their ids")
    by_row = tokens[padding_idx] if padding_idx is not None else None
    pad = _reserved("pad", pad_token, by_row, PAD_NAMES, word_to_index, notes)
    unk = _reserved("unk", unk_token, None, UNK_NAMES, word_to_index, notes)
    for name, tok, default in (("padding", pad, PAD), ("unknown", unk, UNK)):
        if tok is None:
            tokens.append(default)
            row = len(tokens) - 1
            notes.append(f"{name} token: none in the dict, {default} appended as row {row} (zeros)")
    return Vocab(tokens, pad=pad or PAD, unk=unk or UNK), notes


def _check_indices(word_to_index: dict[str, int], rows: int) -> None:
    seen: dict[int, str] = {}
    for w, i in word_to_index.items():
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < rows:
            raise ValueError(f"word {w!r} has index {i!r}, not a row of the {rows}-row embedding")
        if i in seen:
            raise ValueError(f"words {seen[i]!r} and {w!r} both have index {i}")
        seen[i] = w


def _reserved(
    kind: str,
    given: str | None,
    by_row: str | None,
    names: tuple[str, ...],
    word_to_index: dict[str, int],
    notes: list[str],
) -> str | None:
    label = {"pad": "padding", "unk": "unknown"}[kind]
    if given is not None:
        if given not in word_to_index:
            raise ValueError(f"{kind}_token {given!r} is not in the word->index dict")
        notes.append(f"{label} token: {given!r} (row {word_to_index[given]}), as asked")
        return given
    if by_row is not None:
        notes.append(f"{label} token: {by_row!r}, the word at the embedding's padding_idx")
        return by_row
    for name in names:
        if name in word_to_index:
            notes.append(f"{label} token: {name!r} (row {word_to_index[name]}) found in the dict")
            return name
    return None


def _ranges(ids: list[int]) -> str:
    parts, start = [], None
    for k, i in enumerate(ids):
        start = i if start is None else start
        if k + 1 == len(ids) or ids[k + 1] != i + 1:
            parts.append(f"{start}" if start == i else f"{start}-{i}")
            start = None
    return ", ".join(parts[:8]) + (", …" if len(parts) > 8 else "")


def checkpoint_from_modules(
    embedding: nn.Embedding,
    rnn: nn.RNNBase,
    word_to_index: dict[str, int],
    tokenizer: TokenizerConfig | None = None,
    *,
    pad_token: str | None = None,
    unk_token: str | None = None,
) -> Checkpoint:
    """A checkpoint from tutorial-style modules; every id the user's model knew keeps its row.

    How the dict was mapped (gaps, reserved tokens found or appended) is logged on the
    ``encoder.export`` logger and is what ``encoder-export import`` prints.
    """
    vocab, notes = map_vocabulary(
        word_to_index, embedding.num_embeddings, embedding.padding_idx, pad_token, unk_token
    )
    for note in notes:
        log.info("vocabulary: %s", note)
    if rnn.num_layers > 1 and rnn.dropout:
        log.info("dropout %g between layers: a training-time op, not exported", rnn.dropout)
    extra = len(vocab) - embedding.num_embeddings
    model = TorchEncoder.from_modules(embedding, rnn, extra_rows=extra)
    return Checkpoint(model=model, vocab=vocab, tokenizer=tokenizer or TokenizerConfig())
