"""Write a TorchEncoder as an ONNX graph of the contract, in the formulation each cell runs best.

We build the graph from the module's weights instead of tracing it (docs/exporter.md says why):
the exporter's job for this model is a weight-layout translation, which is done here and proven
by export.verify against eager PyTorch on lengths and batch sizes of every kind.
"""

from __future__ import annotations

import platform
from types import ModuleType

import onnx
import onnxruntime
import torch
from onnx import TensorProto, helper

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Cell, Formulation
from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.export import native_ops, scan_rnn
from zh_rnn_encoder.export.model import TorchEncoder

OPSET = 17
# The IR version the opset needs, not the newest this onnx writes: onnxruntime refuses an IR newer
# than it knows (1.31 stops at 13, onnx 1.23 writes 14), and the graph uses nothing past IR 8.
IR_VERSION = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])
PRODUCER = "zh-rnn-encoder"
_DTYPES = {"int64": TensorProto.INT64, "float32": TensorProto.FLOAT}

# The formulations each cell can be written in, its default first: the plain RNN as Scans
# (faster on the CPU than onnxruntime's RNN kernel) or as the native op (cuDNN on CUDA); LSTM
# and GRU as their native ops (a GRU of Scans was slower, docs/exporter.md). Each formulation
# reads the contract's inputs and writes its outputs, nothing else in common.
FORMULATIONS: dict[Cell, dict[Formulation, ModuleType]] = {
    Cell.RNN: {Formulation.SCAN: scan_rnn, Formulation.NATIVE: native_ops},
    Cell.LSTM: {Formulation.NATIVE: native_ops},
    Cell.GRU: {Formulation.NATIVE: native_ops},
}


def formulation_for(config: ModelConfig, asked: Formulation | str | None = None) -> Formulation:
    """``asked``, checked against the cell, or the cell's default; ValueError names the choices."""
    choices = FORMULATIONS[config.cell]
    if asked is None:
        return next(iter(choices))
    f = Formulation.parse(asked, "formulation")
    if f not in choices:
        names = ", ".join(choices)
        raise ValueError(f"formulation {f}: the {config.cell} cell is written as {names} only")
    return f


def _value_info(spec: contract.TensorSpec) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(spec.name, _DTYPES[spec.dtype], list(spec.shape))


def expected_recurrent_ops(
    config: ModelConfig, formulation: Formulation | None = None
) -> dict[str, int]:
    """The loop ops a correct export holds (none unrolled), for verification's structure check;
    ``formulation`` None: the cell's default."""
    return FORMULATIONS[config.cell][formulation_for(config, formulation)].expected_ops(config)


def build_graph(
    model: TorchEncoder, vocab_sha256: str, formulation: Formulation | None = None
) -> onnx.ModelProto:
    """The whole graph, batch-major at its boundary, with dynamic batch and seq axes, in
    ``formulation`` (None: the cell's default)."""
    c = model.config
    nodes: list = []
    inits: list = []
    FORMULATIONS[c.cell][formulation_for(c, formulation)].layers(model, nodes, inits)
    graph = helper.make_graph(
        nodes,
        "encoder",
        [_value_info(s) for s in contract.input_specs(c)],
        [_value_info(s) for s in contract.output_specs(c)],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph,
        producer_name=PRODUCER,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
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
    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "opset": str(OPSET),
        "onnx_ir": str(IR_VERSION),
    }
