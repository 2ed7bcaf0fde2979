"""Write an Encoder as an ONNX graph: Gather, one LSTM/GRU op (or tanh-RNN Scan) per layer.

We build the graph from the module's weights instead of tracing it (docs/exporter.md says why):
the exporter's job for this model is a weight-layout translation, which is done here and proven
by export.verify against eager PyTorch on lengths and batch sizes of every kind.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from export import scan_rnn
from export.model import Encoder, ModelConfig
from export.weights import layer_weights
from serving import contract

OPSET = 17
PRODUCER = "zh-rnn-encoder"

_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
_DTYPES = {"int64": TensorProto.INT64, "float32": TensorProto.FLOAT}


def _const(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _value_info(spec: contract.TensorSpec) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(spec.name, _DTYPES[spec.dtype], list(spec.shape))


def _recurrent_layer(
    model: Encoder, layer: int, x: str, nodes: list, inits: list
) -> tuple[str, str]:
    """Append one native recurrent op; returns the names of Y [S, D, B, H] and Y_h [D, B, H]."""
    c = model.config
    w, r, b = layer_weights(model, layer)
    names = [f"l{layer}_{k}" for k in ("W", "R", "B")]
    inits += [numpy_helper.from_array(a, n) for a, n in zip((w, r, b), names)]
    y, y_h = f"l{layer}_Y", f"l{layer}_Y_h"
    outputs = [y, y_h] + ([f"l{layer}_Y_c"] if c.cell == "lstm" else [])
    attrs = {
        "hidden_size": c.hidden_size,
        "direction": "bidirectional" if c.bidirectional else "forward",
    }
    if c.cell == "gru":
        attrs["linear_before_reset"] = 1  # torch applies the reset gate after the R product
    nodes.append(
        helper.make_node(
            _OP[c.cell], [x, *names, "lengths_i32"], outputs, name=f"l{layer}_{c.cell}", **attrs
        )
    )
    return y, y_h


def native_layers(model: Encoder, nodes: list, inits: list) -> None:
    """Append Gather and one native LSTM/GRU op per layer; writes STATES and FINAL."""
    c = model.config
    emb = model.embedding.weight.detach().cpu().numpy().astype(np.float32)
    inits += [
        numpy_helper.from_array(emb, "embedding"),
        _const("shape_bsf", [0, 0, -1]),
        _const("shape_bf", [0, -1]),
    ]
    nodes += [
        helper.make_node("Gather", ["embedding", "ids_t"], ["x0"], axis=0),
        helper.make_node("Cast", ["lengths"], ["lengths_i32"], to=TensorProto.INT32),
    ]
    x = "x0"
    for layer in range(c.num_layers):
        y, y_h = _recurrent_layer(model, layer, x, nodes, inits)
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


def expected_recurrent_ops(config: ModelConfig) -> dict[str, int]:
    """The loop ops a correct export holds: none unrolled, one per layer (and direction)."""
    if config.cell == "rnn":
        return {"Scan": config.num_layers * config.directions}
    return {_OP[config.cell]: config.num_layers}


def build_graph(model: Encoder, vocab_sha256: str) -> onnx.ModelProto:
    """The whole graph, batch-major at its boundary, with dynamic batch and seq axes.

    The tanh RNN runs as Scans (export/scan_rnn.py: faster than onnxruntime's RNN kernel);
    LSTM and GRU use the native ops, whose kernels beat eager PyTorch already.
    """
    c = model.config
    nodes = [helper.make_node("Transpose", ["ids"], ["ids_t"], perm=[1, 0])]
    inits: list = []
    if c.cell == "rnn":
        scan_rnn.rnn_layers(model, nodes, inits)
    else:
        native_layers(model, nodes, inits)
    graph = helper.make_graph(
        nodes,
        "encoder",
        [_value_info(s) for s in contract.INPUTS],
        [_value_info(s) for s in contract.output_specs(c.output_dim)],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph, producer_name=PRODUCER, opset_imports=[helper.make_opsetid("", OPSET)]
    )
    helper.set_model_props(
        onnx_model,
        {
            contract.META_VOCAB_SIZE: str(c.vocab_size),
            contract.META_VOCAB_SHA256: vocab_sha256,
            contract.META_OUTPUT_DIM: str(c.output_dim),
        },
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def tool_versions() -> dict[str, str]:
    import platform

    import onnxruntime

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "opset": str(OPSET),
    }
