"""Every cell as ONNX's native ops: Gather, then one RNN/LSTM/GRU op per layer with
sequence_lens.

onnxruntime's LSTM and GRU kernels beat eager PyTorch already (docs/exporter.md), and the op takes
each text's true length, so padding never reaches the state. The plain RNN is written this way
only when asked (``--formulation native``): its CPU kernel is slower than the Scans of
scan_rnn.py, but on CUDA the native ops run through cuDNN.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Cell, Nonlinearity
from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.export import graph_state
from zh_rnn_encoder.export.model import TorchEncoder
from zh_rnn_encoder.export.weights import layer_weights

OPS = {Cell.RNN: "RNN", Cell.LSTM: "LSTM", Cell.GRU: "GRU"}
_ACTIVATIONS = {Nonlinearity.TANH: "Tanh", Nonlinearity.RELU: "Relu"}


def expected_ops(config: ModelConfig) -> dict[str, int]:
    """The loop ops a correct export holds: one native op per layer (both directions in it)."""
    return {OPS[config.cell]: config.num_layers}


def _const(name: str, values: list[int]) -> object:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _recurrent_layer(
    model: TorchEncoder, layer: int, x: str, states: dict[str, str], nodes: list, inits: list
) -> tuple[str, str, str | None]:
    """Append one native recurrent op, starting from this layer's rows of the initial states;
    returns the names of Y [S, D, B, H], Y_h [D, B, H] and (LSTM) Y_c [D, B, H]."""
    c = model.config
    w, r, b = layer_weights(model, layer)
    names = [f"l{layer}_{k}" for k in ("W", "R", "B")]
    inits += [numpy_helper.from_array(a, n) for a, n in zip((w, r, b), names)]
    d = c.directions
    inits += [
        _const(f"l{layer}_rows_from", [layer * d]),
        _const(f"l{layer}_rows_to", [layer * d + d]),
    ]
    initial = []
    for key, full in states.items():  # h0 (and c0): rows l*D .. l*D+D-1 of [L*D, B, H]
        part = f"l{layer}_{key}"
        nodes.append(
            helper.make_node(
                "Slice", [full, f"l{layer}_rows_from", f"l{layer}_rows_to", "axes_0"], [part]
            )
        )
        initial.append(part)
    y, y_h = f"l{layer}_Y", f"l{layer}_Y_h"
    y_c = f"l{layer}_Y_c" if c.cell is Cell.LSTM else None
    outputs = [y, y_h] + ([y_c] if y_c else [])
    attrs = {
        "hidden_size": c.hidden_size,
        "direction": "bidirectional" if c.bidirectional else "forward",
    }
    if c.cell is Cell.GRU:
        attrs["linear_before_reset"] = 1  # torch applies the reset gate after the R product
    if c.cell is Cell.RNN:  # one activation per direction
        attrs["activations"] = [_ACTIVATIONS[c.nonlinearity]] * d
    nodes.append(
        helper.make_node(
            OPS[c.cell],
            [x, *names, "lengths_i32", *initial],
            outputs,
            name=f"l{layer}_{c.cell}",
            **attrs,
        )
    )
    return y, y_h, y_c


def layers(model: TorchEncoder, nodes: list, inits: list) -> None:
    """Append the whole recurrence: contract.IDS and LENGTHS in, contract.STATES and FINAL out."""
    c = model.config
    emb = model.embedding.weight.detach().cpu().numpy().astype(np.float32)
    inits += [
        numpy_helper.from_array(emb, "embedding"),
        _const("shape_bsf", [0, 0, -1]),
        _const("shape_bf", [0, -1]),
        _const("axes_0", [0]),
    ]
    nodes += [
        helper.make_node("Transpose", [contract.IDS.name], ["ids_t"], perm=[1, 0]),
        helper.make_node("Gather", ["embedding", "ids_t"], ["x0"], axis=0),
        helper.make_node("Cast", [contract.LENGTHS.name], ["lengths_i32"], to=TensorProto.INT32),
    ]
    states = graph_state.initial_states(c, nodes, inits)
    finals: dict[str, list[str]] = {contract.FINAL_H: []}
    if c.cell is Cell.LSTM:
        finals[contract.FINAL_C] = []
    x = "x0"
    for layer in range(c.num_layers):
        y, y_h, y_c = _recurrent_layer(model, layer, x, states, nodes, inits)
        finals[contract.FINAL_H].append(y_h)
        if y_c:
            finals[contract.FINAL_C].append(y_c)
        if layer + 1 < c.num_layers:  # [S, D, B, H] -> [S, B, D*H], the next layer's input
            nodes.append(helper.make_node("Transpose", [y], [f"{y}_t"], perm=[0, 2, 1, 3]))
            x = f"x{layer + 1}"
            nodes.append(helper.make_node("Reshape", [f"{y}_t", "shape_bsf"], [x]))
    nodes += [
        helper.make_node("Transpose", [y], ["states_t"], perm=[2, 0, 1, 3]),
        helper.make_node("Reshape", ["states_t", "shape_bsf"], [contract.STATES]),
        helper.make_node("Transpose", [y_h], ["final_t"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["final_t", "shape_bf"], [contract.FINAL]),
    ]
    graph_state.final_states(finals, nodes)
