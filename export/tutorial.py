"""Bring a model built as in the tutorial (nn.Embedding, seq-first nn.RNN, a word->index dict)."""

from __future__ import annotations

from torch import nn

from export.checkpoint import Checkpoint
from export.model import Encoder
from serving.tokenizer import TokenizerConfig
from serving.vocab import Vocab


def checkpoint_from_modules(
    embedding: nn.Embedding,
    rnn: nn.RNNBase,
    word_to_index: dict[str, int],
    tokenizer: TokenizerConfig = TokenizerConfig(),
) -> Checkpoint:
    """A checkpoint from tutorial-style modules.

    The tutorial's dict has no padding or unknown entries; when absent they are appended after
    the last index with zero embeddings, so every id the user's model knew keeps its meaning.
    """
    if len(word_to_index) != embedding.num_embeddings:
        raise ValueError(
            f"{len(word_to_index)} words but the embedding has {embedding.num_embeddings} rows"
        )
    vocab = Vocab.from_mapping(word_to_index)
    model = Encoder.from_modules(embedding, rnn, extra_rows=len(vocab) - len(word_to_index))
    return Checkpoint(model=model, vocab=vocab, tokenizer=tokenizer)
