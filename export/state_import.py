"""`encoder-export import`: the tutorial's nn.Embedding + nn.RNN/LSTM/GRU rebuilt from saved files.

A ``torch.save``d state_dict (or whole module) is searched by key suffix: the recurrent weights
by ``weight_ih_l0`` and friends under one prefix, the embedding as the one other 2-D ``weight``.
Sizes, layers, directions, cell and bias are read from the shapes; every refusal names the key.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from zh_rnn_encoder.core.enums import Nonlinearity

_RECURRENT = re.compile(
    r"^(?P<prefix>.*?)(?:weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<layer>\d+)"
    r"(?P<reverse>_reverse)?$"
)
_GATES = {1: nn.RNN, 3: nn.GRU, 4: nn.LSTM}


def load_state(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A state_dict from a file holding one, or holding a whole module when ``allow_pickle``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not allow_pickle:
            raise ValueError(
                f"{path}: holds pickled objects (a whole module?), which run code when loaded; "
                "pass --allow-pickle if you trust the file, or save module.state_dict() instead"
            ) from e
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state_dict (a dict of tensors) nor an nn.Module")
    return obj


def modules_from_state(
    state: dict[str, torch.Tensor],
    *,
    embedding_key: str | None = None,
    nonlinearity: Nonlinearity | str = Nonlinearity.TANH,
) -> tuple[nn.Embedding, nn.RNNBase]:
    """The embedding and recurrent modules the state_dict was saved from, weights loaded."""
    prefix, rec = _recurrent_keys(state)
    emb_key = embedding_key or _embedding_key(state, prefix)
    if emb_key not in state or state[emb_key].dim() != 2:
        raise ValueError(f"{emb_key}: not a 2-D embedding weight in the state_dict")
    table = state[emb_key]
    layers = 1 + max(layer for layer, _ in rec.values())
    bidirectional = any(rev for _, rev in rec.values())
    w_ih, w_hh = state[f"{prefix}weight_ih_l0"], state[f"{prefix}weight_hh_l0"]
    hidden = w_hh.shape[1]
    if f"{prefix}weight_hr_l0" in state:
        raise ValueError(f"{prefix}weight_hr_l0: an LSTM with proj_size, which ONNX cannot express")
    cls = _GATES.get(w_ih.shape[0] // hidden) if w_ih.shape[0] % hidden == 0 else None
    if cls is None:
        raise ValueError(
            f"{prefix}weight_ih_l0: {w_ih.shape[0]} rows is not 1, 3 or 4 gates of hidden size "
            f"{hidden} ({prefix}weight_hh_l0 {tuple(w_hh.shape)})"
        )
    if w_ih.shape[1] != table.shape[1]:
        raise ValueError(
            f"{prefix}weight_ih_l0 takes inputs of {w_ih.shape[1]}, but {emb_key} has "
            f"{table.shape[1]} columns"
        )
    kw = {}
    if cls is nn.RNN:
        kw["nonlinearity"] = Nonlinearity.parse(nonlinearity, "nonlinearity").value
    bias = f"{prefix}bias_ih_l0" in state
    rnn = cls(table.shape[1], hidden, layers, bias=bias, bidirectional=bidirectional, **kw)
    embedding = nn.Embedding(*table.shape)
    _load(embedding, {"weight": table}, {"weight": emb_key})
    saved = {k[len(prefix) :]: v for k, v in state.items() if k in rec}
    _load(rnn, saved, {k: prefix + k for k in (*rnn.state_dict(), *saved)})
    return embedding.eval(), rnn.eval()


def _recurrent_keys(state: dict) -> tuple[str, dict[str, tuple[int, bool]]]:
    found: dict[str, dict[str, tuple[int, bool]]] = {}
    for key in state:
        if m := _RECURRENT.match(key):
            layer, rev = int(m["layer"]), bool(m["reverse"])
            found.setdefault(m["prefix"], {})[key] = (layer, rev)
    if not found:
        raise ValueError("no recurrent weights: no key ends in weight_ih_l0 (nn.RNN/LSTM/GRU)")
    if len(found) > 1:
        raise ValueError(f"recurrent weights under several prefixes {sorted(found)}: keep one")
    prefix, rec = next(iter(found.items()))
    for name in ("weight_ih_l0", "weight_hh_l0"):
        if prefix + name not in state:
            raise ValueError(f"{prefix}{name}: missing from the state_dict")
    return prefix, rec


def _embedding_key(state: dict, prefix: str) -> str:
    keys = [k for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    keys = [k for k in keys if not _RECURRENT.match(k)]
    if len(keys) != 1:
        what = f"several: {keys}" if keys else "none"
        raise ValueError(
            f"embedding weight: {what} (a 2-D key ending in 'weight'); name it: --embedding-key"
        )
    return keys[0]


def _load(module: nn.Module, weights: dict, names: dict[str, str]) -> None:
    """load_state_dict, with every missing, unexpected or misshapen key named as saved."""
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        detail = str(e).replace("\n", " ")
        for ours, theirs in names.items():
            detail = detail.replace(f'"{ours}"', f'"{theirs}"')
        raise ValueError(f"state_dict does not fit {type(module).__name__}: {detail}") from None
