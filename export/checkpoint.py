"""Checkpoints: model config, weights, vocabulary and tokenizer settings in one torch file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from export.model import Encoder, ModelConfig
from serving.tokenizer import TokenizerConfig
from serving.vocab import Vocab

CHECKPOINT_FORMAT = "zh-rnn-encoder-checkpoint/1"


@dataclass
class Checkpoint:
    """Everything export needs: the model, its vocabulary and how text was segmented for it."""

    model: Encoder
    vocab: Vocab
    tokenizer: TokenizerConfig
    user_dict: str | None = None  # the user dictionary's text, when the tokenizer uses one

    def __post_init__(self) -> None:
        if len(self.vocab) != self.model.config.vocab_size:
            raise ValueError(
                f"vocabulary has {len(self.vocab)} tokens, "
                f"model embeds {self.model.config.vocab_size}"
            )


def save(ckpt: Checkpoint, path: Path) -> None:
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "config": ckpt.model.config.to_json(),
            "state_dict": ckpt.model.state_dict(),
            "vocab": ckpt.vocab.to_json(),
            "tokenizer": ckpt.tokenizer.to_json(),
            "user_dict": ckpt.user_dict,
        },
        Path(path),
    )


def load(path: Path) -> Checkpoint:
    d = torch.load(Path(path), map_location="cpu", weights_only=True)
    if d.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of format {CHECKPOINT_FORMAT!r}")
    model = Encoder(ModelConfig.from_json(d["config"]))
    model.load_state_dict(d["state_dict"])
    return Checkpoint(
        model=model.eval(),
        vocab=Vocab.from_json_text(d["vocab"]),
        tokenizer=TokenizerConfig.from_json(d["tokenizer"]),
        user_dict=d["user_dict"],
    )
