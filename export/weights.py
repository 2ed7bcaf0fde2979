"""The torch module's recurrent weights in ONNX layout, for every formulation of the graph."""

from __future__ import annotations

import numpy as np

from zh_rnn_encoder.core.enums import Cell
from zh_rnn_encoder.export.model import TorchEncoder

# torch gate order -> ONNX gate order, as row blocks of the stacked weight matrices.
_GATE_ORDER = {
    Cell.RNN: [0],  # single tanh gate
    Cell.LSTM: [0, 3, 1, 2],  # torch (i, f, g, o) -> ONNX (i, o, f, c)
    Cell.GRU: [1, 0, 2],  # torch (r, z, n) -> ONNX (z, r, h)
}


def _reorder(w: np.ndarray, cell: Cell, hidden: int) -> np.ndarray:
    blocks = [w[g * hidden : (g + 1) * hidden] for g in _GATE_ORDER[cell]]
    return np.concatenate(blocks, axis=0)


def layer_weights(model: TorchEncoder, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX W [D, G*H, in], R [D, G*H, H], B [D, 2*G*H] for one layer of the torch module."""
    c, sd = model.config, model.rnn.state_dict()
    suffixes = [""] + (["_reverse"] if c.bidirectional else [])
    ws, rs, bs = [], [], []
    for s in suffixes:

        def get(name: str, s: str = s) -> np.ndarray:
            w = sd[f"{name}_l{layer}{s}"].detach().cpu().numpy().astype(np.float32)
            return _reorder(w, c.cell, c.hidden_size)

        ws.append(get("weight_ih"))
        rs.append(get("weight_hh"))
        if c.bias:
            bs.append(np.concatenate([get("bias_ih"), get("bias_hh")]))
        else:  # no bias in the module: ONNX's B input as zeros, the same function
            bs.append(np.zeros(2 * rs[-1].shape[0], dtype=np.float32))
    return np.stack(ws), np.stack(rs), np.stack(bs)
