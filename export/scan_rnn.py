"""The plain RNN (tanh or relu) as ONNX Scans: one H x H MatMul, Add, the activation and two
Wheres per step.

onnxruntime's native RNN kernel is slower than eager PyTorch on batches (measured 12.8 ms vs
10.6 ms at 32x50, docs/exporter.md); a Scan per layer and direction runs 5.5 ms. The input
projection of every step is taken out of the loop: for the first layer it is folded into the
embedding (a gathered table E W_ih^T + b_ih + b_hh, when that table stays small), for later
layers it is one MatMul over all steps. Masking by true length keeps the state past each text's
end, so the final state is the one at the true end and the backward pass starts there.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Nonlinearity
from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.export import graph_state
from zh_rnn_encoder.export.model import TorchEncoder
from zh_rnn_encoder.export.weights import layer_weights

# Fold the embedding into the first projection while the table stays below this size, or is no
# larger than the embedding it replaces (word vectors as wide as the hidden state).
MAX_FOLDED_TABLE_BYTES = 64 << 20


_ACTIVATIONS = {Nonlinearity.TANH: "Tanh", Nonlinearity.RELU: "Relu"}


def _step_body(hidden: int, nonlinearity: Nonlinearity) -> object:
    """h_prev [B, H], p_t [B, H], m_t bool [B, 1] -> h_new [B, H], y_t [B, H]."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("MatMul", ["h_prev", "R_t"], ["hr"]),
        helper.make_node("Add", ["hr", "p_t"], ["pre"]),
        helper.make_node(_ACTIVATIONS[nonlinearity], ["pre"], ["cand"]),
        helper.make_node("Where", ["m_t", "cand", "h_prev"], ["h_new"]),
        helper.make_node("Where", ["m_t", "cand", "zero_f"], ["y_t"]),
    ]
    return helper.make_graph(
        nodes,
        "rnn_step",
        [
            helper.make_tensor_value_info("h_prev", f, ["B", hidden]),
            helper.make_tensor_value_info("p_t", f, ["B", hidden]),
            helper.make_tensor_value_info("m_t", TensorProto.BOOL, ["B", 1]),
        ],
        [
            helper.make_tensor_value_info("h_new", f, ["B", hidden]),
            helper.make_tensor_value_info("y_t", f, ["B", hidden]),
        ],
    )


def fold_first_layer(model: TorchEncoder) -> bool:
    c = model.config
    folded = c.vocab_size * c.directions * c.hidden_size * 4
    return folded <= max(MAX_FOLDED_TABLE_BYTES, c.vocab_size * c.embedding_dim * 4)


def _mask_nodes(nodes: list, inits: list) -> None:
    """mask bool [S, B, 1]: step t < length."""
    inits += [
        numpy_helper.from_array(np.array(0, np.int64), "i_zero"),
        numpy_helper.from_array(np.array(1, np.int64), "i_one"),
        numpy_helper.from_array(np.array([0], np.int64), "axes_0"),
        numpy_helper.from_array(np.array([-1], np.int64), "axes_last"),
        numpy_helper.from_array(np.zeros((1,), np.float32), "zero_f"),
    ]
    nodes += [
        helper.make_node("Shape", [contract.IDS.name], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "i_one"], ["seq_len"], axis=0),
        helper.make_node("Range", ["i_zero", "seq_len", "i_one"], ["steps"]),
        helper.make_node("Unsqueeze", ["steps", "axes_last"], ["steps_col"]),  # [S, 1]
        helper.make_node("Unsqueeze", [contract.LENGTHS.name, "axes_0"], ["lengths_row"]),  # [1, B]
        helper.make_node("Less", ["steps_col", "lengths_row"], ["mask_sb"]),
        helper.make_node("Unsqueeze", ["mask_sb", "axes_last"], ["mask"]),  # [S, B, 1]
    ]


def _projection(
    model: TorchEncoder,
    name: str,
    w: np.ndarray,
    b: np.ndarray,
    x: str | None,
    nodes: list,
    inits: list,
) -> str:
    """p [S, B, H] = x W_ih^T + b for every step at once; with ``x`` None, a gathered table."""
    if x is None:  # the first layer, folded: E W_ih^T + b, one row per vocabulary entry
        emb = model.embedding.weight.detach().cpu().numpy().astype(np.float64)
        table = (emb @ w.T.astype(np.float64) + b).astype(np.float32)
        inits.append(numpy_helper.from_array(table, f"{name}_table"))
        nodes.append(helper.make_node("Gather", [f"{name}_table", "ids_t"], [f"{name}_p"], axis=0))
        return f"{name}_p"
    inits += [
        numpy_helper.from_array(np.ascontiguousarray(w.T), f"{name}_W_t"),
        numpy_helper.from_array(b, f"{name}_b"),
    ]
    nodes += [
        helper.make_node("MatMul", [x, f"{name}_W_t"], [f"{name}_xw"]),
        helper.make_node("Add", [f"{name}_xw", f"{name}_b"], [f"{name}_p"]),
    ]
    return f"{name}_p"


def _scan(
    model: TorchEncoder,
    name: str,
    d: int,
    weights: tuple,
    x: str | None,
    h0: str,
    nodes: list,
    inits: list,
):
    """Direction ``d`` (1: backward) of one layer from ``h0`` [B, H]: Y [S, B, H] in time
    order, final h [B, H] (at each text's true end; for the backward direction, at position 0)."""
    w, r, b = (a[d] for a in weights)
    hidden = model.config.hidden_size
    p = _projection(model, name, w, b[:hidden] + b[hidden:], x, nodes, inits)
    body = _step_body(hidden, model.config.nonlinearity)
    # the body reads its H x H matrix from the outer scope
    inits.append(numpy_helper.from_array(np.ascontiguousarray(r.T), f"{name}_R_t"))
    body.node.insert(0, helper.make_node("Identity", [f"{name}_R_t"], ["R_t"]))
    nodes.append(
        helper.make_node(
            "Scan",
            [h0, p, "mask"],
            [f"{name}_h", f"{name}_Y"],
            name=f"{name}_scan",
            num_scan_inputs=2,
            body=body,
            scan_input_directions=[d, d],
            scan_output_directions=[d],
        )
    )
    return f"{name}_Y", f"{name}_h"


def expected_ops(config: ModelConfig) -> dict[str, int]:
    """The loop ops a correct export holds: one Scan per layer and direction, none unrolled."""
    return {"Scan": config.num_layers * config.directions}


def layers(model: TorchEncoder, nodes: list, inits: list) -> None:
    """Append the whole plain RNN: contract.IDS and LENGTHS in, contract.STATES and FINAL out."""
    c = model.config
    nodes.append(helper.make_node("Transpose", [contract.IDS.name], ["ids_t"], perm=[1, 0]))
    _mask_nodes(nodes, inits)
    h0_all = graph_state.initial_states(c, nodes, inits)[contract.INITIAL_H]  # [L*D, B, H]
    finals: list[str] = []
    x = None  # the first layer gathers its projection from the folded table
    if not fold_first_layer(model):
        emb = model.embedding.weight.detach().cpu().numpy().astype(np.float32)
        inits.append(numpy_helper.from_array(emb, "embedding"))
        nodes.append(helper.make_node("Gather", ["embedding", "ids_t"], ["x0"], axis=0))
        x = "x0"
    for layer in range(c.num_layers):
        weights = layer_weights(model, layer)
        outs = []
        for d in range(c.directions):
            name = f"l{layer}" + ("_reverse" if d else "")
            row = layer * c.directions + d  # this layer and direction's row of h0
            inits.append(numpy_helper.from_array(np.array(row, np.int64), f"{name}_row"))
            nodes.append(helper.make_node("Gather", [h0_all, f"{name}_row"], [f"{name}_h0"]))
            outs.append(_scan(model, name, d, weights, x, f"{name}_h0", nodes, inits))
            nodes.append(helper.make_node("Unsqueeze", [outs[-1][1], "axes_0"], [f"{name}_hn"]))
            finals.append(f"{name}_hn")
        ys, hs = [o[0] for o in outs], [o[1] for o in outs]
        x = f"x{layer + 1}"
        nodes.append(
            helper.make_node("Concat", ys, [x], axis=2)
            if len(ys) > 1
            else helper.make_node("Identity", ys, [x])
        )
    nodes.append(helper.make_node("Transpose", [x], [contract.STATES], perm=[1, 0, 2]))
    nodes.append(
        helper.make_node("Concat", hs, [contract.FINAL], axis=1)
        if len(hs) > 1
        else helper.make_node("Identity", hs, [contract.FINAL])
    )
    graph_state.final_states({contract.FINAL_H: finals}, nodes)
