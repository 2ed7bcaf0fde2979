"""The recurrent state at the graph's boundary, shared by both formulations: the optional initial
state inputs (contract.INITIAL_H/C, zeros by default) broadcast to the batch, and the final state
outputs (contract.FINAL_H/C) gathered from every layer and direction.
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Cell
from zh_rnn_encoder.core.manifest import ModelConfig


def initial_states(c: ModelConfig, nodes: list, inits: list) -> dict[str, str]:
    """{contract name: the node output holding it [L*D, B, H]}. Each input's default is zeros of
    batch 1 (an initializer of the input's name, so a caller may feed its own), then expanded to
    the batch: a state of batch 1 starts every row."""
    n = c.num_layers * c.directions
    names = [contract.INITIAL_H] + ([contract.INITIAL_C] if c.cell is Cell.LSTM else [])
    inits += [
        numpy_helper.from_array(np.zeros((n, 1, c.hidden_size), np.float32), x) for x in names
    ]
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "state_axes_0"),
        numpy_helper.from_array(np.array([1], np.int64), "state_one"),
        numpy_helper.from_array(np.array([n], np.int64), "state_rows"),
        numpy_helper.from_array(np.array([c.hidden_size], np.int64), "state_hidden"),
    ]
    nodes += [
        helper.make_node("Shape", [contract.IDS.name], ["state_ids_shape"]),
        helper.make_node("Slice", ["state_ids_shape", "state_axes_0", "state_one"], ["state_b"]),
        helper.make_node(
            "Concat", ["state_rows", "state_b", "state_hidden"], ["state_shape"], axis=0
        ),
    ]
    out = {}
    for x in names:
        nodes.append(helper.make_node("Expand", [x, "state_shape"], [f"{x}_b"]))
        out[x] = f"{x}_b"
    return out


def final_states(parts: dict[str, list[str]], nodes: list) -> None:
    """Concatenates each kind's [k, B, H] parts, in layer-then-direction order, along axis 0
    into the contract's output of that name (FINAL_H, FINAL_C)."""
    for name, xs in parts.items():
        nodes.append(
            helper.make_node("Concat", xs, [name], axis=0)
            if len(xs) > 1
            else helper.make_node("Identity", xs, [name])
        )
