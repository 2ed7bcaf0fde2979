"""The bundle contract written down once: file names, the graph's I/O, metadata keys, tolerances.

Export writes from it, verification checks against it and the runtime reads by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zh_rnn_encoder.core.manifest import ModelConfig

BUNDLE_FORMAT = "zh-rnn-encoder-bundle"
# 2: one typed manifest schema (core/manifest.py).
# 3: the graph takes an initial state and returns the final state of every layer (stateful
#    encoding); older bundles are refused, rebuild them.
BUNDLE_FORMAT_VERSION = 3

# Files of a bundle directory.
MANIFEST_FILE = "bundle.json"
GRAPH_FILE = "model.onnx"
VOCAB_FILE = "vocab.json"
USER_DICT_FILE = "user_dict.txt"
GOLDEN_TEXTS_FILE = "golden.json"
GOLDEN_ARRAYS_FILE = "golden.npz"

# Symbolic names of the dynamic axes.
BATCH_AXIS = "batch"
SEQ_AXIS = "seq"
# An initial state's batch axis: the batch's size, or 1 for one state that every row starts from.
STATE_BATCH_AXIS = "state_batch"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, element type and axes (str = dynamic)."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]


IDS = TensorSpec("ids", "int64", (BATCH_AXIS, SEQ_AXIS))
LENGTHS = TensorSpec("lengths", "int64", (BATCH_AXIS,))
STATES = "states"
FINAL = "final"
# The recurrent state, laid out as PyTorch's h_0/h_n: [layers * directions, batch, hidden], row
# l * directions + d for layer l, direction d (1: backward). The initial state inputs are
# optional: the graph holds zeros of batch 1 for them (an overridable initializer), broadcast.
INITIAL_H, INITIAL_C = "h0", "c0"  # c: LSTM's cell state
FINAL_H, FINAL_C = "h_n", "c_n"


def _state_names(m: ModelConfig, h: str, c: str) -> tuple[str, ...]:
    return (h, c) if m.cell.value == "lstm" else (h,)


def input_specs(m: ModelConfig) -> tuple[TensorSpec, ...]:
    """ids [batch, seq], lengths [batch], then the optional initial state(s)."""
    shape = (m.num_layers * m.directions, STATE_BATCH_AXIS, m.hidden_size)
    states = (TensorSpec(n, "float32", shape) for n in _state_names(m, INITIAL_H, INITIAL_C))
    return (IDS, LENGTHS, *states)


def output_specs(m: ModelConfig) -> tuple[TensorSpec, ...]:
    """Per-token states [batch, seq, D*H] (zeros past each length), the final vector [batch, D*H],
    then the final state(s) [layers * D, batch, H].

    The final vector is the top layer's hidden state at each text's true end for the forward
    direction, concatenated with the backward direction's state at position 0; the final state
    holds every layer's, at the same points.
    """
    shape = (m.num_layers * m.directions, BATCH_AXIS, m.hidden_size)
    states = (TensorSpec(n, "float32", shape) for n in _state_names(m, FINAL_H, FINAL_C))
    return (
        TensorSpec(STATES, "float32", (BATCH_AXIS, SEQ_AXIS, m.output_dim)),
        TensorSpec(FINAL, "float32", (BATCH_AXIS, m.output_dim)),
        *states,
    )


def batch_major(specs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """The tensors whose first axis is the batch (what Triton's batcher can stack)."""
    return tuple(s for s in specs if s.shape and s.shape[0] == BATCH_AXIS)


# Keys of the graph's ONNX metadata_props: the graph itself says which vocabulary and output size
# it was built for, so a bundle with a swapped vocabulary (hashes updated or not) is refused.
META_VOCAB_SIZE = "vocab_size"
META_VOCAB_SHA256 = "vocab_sha256"
META_OUTPUT_DIM = "output_dim"

# Parity: ORT vs eager PyTorch over the verification grid (the quality bar of the design).
PARITY_ATOL = 1e-5
# Batch invariance: a text alone vs padded in a batch with longer texts.
BATCH_INVARIANCE_ATOL = 1e-6
# Golden samples at server start-up run on whatever hardware serves; recorded per bundle.
GOLDEN_ATOL = 1e-4
