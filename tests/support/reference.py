"""Eager PyTorch, the reference that served encodings are compared with."""

from __future__ import annotations

import numpy as np
import torch


def eager(ckpt, tokenizer, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each text alone through eager PyTorch: (states [n, F], final [F])."""
    out = []
    for t in texts:
        ids = ckpt.vocab.encode(tokenizer.tokenize(t))
        with torch.no_grad():
            s, f = ckpt.model(torch.from_numpy(ids[None]), torch.tensor([len(ids)]))
        out.append((s[0].numpy(), f[0].numpy()))
    return out
