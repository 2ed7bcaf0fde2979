"""Checkpoints: model config, weights, vocabulary and tokenizer settings in one torch file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from zh_rnn_encoder.core.manifest import (
    Defaults,
    ModelCard,
    ModelConfig,
    TokenizerConfig,
    from_json,
    to_json,
)
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.export.model import TorchEncoder

CHECKPOINT_FORMAT = "zh-rnn-encoder-checkpoint/1"
# Written by 0.1 checkpoints and derivable from the rest; dropped on load.
_LEGACY_KEYS = {"config": ("directions", "output_dim"), "tokenizer": ("name",)}


@dataclass
class Checkpoint:
    """Everything export needs: the model, its vocabulary and how text was segmented for it;
    for a trained model, the request defaults it was trained for and its model card, which
    export copies into bundle.json unchanged."""

    model: TorchEncoder
    vocab: Vocab
    tokenizer: TokenizerConfig
    user_dict: str | None = None  # the user dictionary's text, when the tokenizer uses one
    defaults: Defaults = Defaults()
    card: ModelCard | None = None

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
            "config": to_json(ckpt.model.config),
            "state_dict": ckpt.model.state_dict(),
            "vocab": ckpt.vocab.to_json(),
            "tokenizer": to_json(ckpt.tokenizer),
            "user_dict": ckpt.user_dict,
            "defaults": to_json(ckpt.defaults),
            "card": to_json(ckpt.card),
        },
        Path(path),
    )


def load(path: Path) -> Checkpoint:
    d = torch.load(Path(path), map_location="cpu", weights_only=True)
    if d.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint of format {CHECKPOINT_FORMAT!r}")
    for section, keys in _LEGACY_KEYS.items():
        d[section] = {k: v for k, v in d[section].items() if k not in keys}
    model = TorchEncoder(from_json(ModelConfig, d["config"], "config"))
    model.load_state_dict(d["state_dict"])
    return Checkpoint(
        model=model.eval(),
        vocab=Vocab.from_json_text(d["vocab"]),
        tokenizer=from_json(TokenizerConfig, d["tokenizer"], "tokenizer"),
        user_dict=d["user_dict"],
        # absent from checkpoints older than the model card: the documented defaults, no card
        defaults=from_json(Defaults, d.get("defaults", {}), "defaults"),
        card=from_json(ModelCard | None, d.get("card"), "card"),
    )
