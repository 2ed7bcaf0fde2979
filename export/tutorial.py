"""Bring a model built as in the tutorial (nn.Embedding, seq-first nn.RNN, a word->index dict)."""

from __future__ import annotations

from torch import nn

from zh_rnn_encoder.core.manifest import TokenizerConfig
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.export.checkpoint import Checkpoint
from zh_rnn_encoder.export.model import TorchEncoder


def checkpoint_from_modules(
    embedding: nn.Embedding,
    rnn: nn.RNNBase,
    word_to_index: dict[str, int],
    tokenizer: TokenizerConfig | None = None,
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
    model = TorchEncoder.from_modules(embedding, rnn, extra_rows=len(vocab) - len(word_to_index))
    return Checkpoint(model=model, vocab=vocab, tokenizer=tokenizer or TokenizerConfig())
