"""The bundle contract written down once: file names, the graph's I/O, metadata keys, tolerances.

Export writes from it, verification checks against it and the runtime reads by it.
"""

from __future__ import annotations

from dataclasses import dataclass

BUNDLE_FORMAT = "zh-rnn-encoder-bundle"
# 2: one typed manifest schema (core/manifest.py); version 1 bundles are refused, rebuild them.
BUNDLE_FORMAT_VERSION = 2

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


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, element type and axes (str = dynamic)."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]


IDS = TensorSpec("ids", "int64", (BATCH_AXIS, SEQ_AXIS))
LENGTHS = TensorSpec("lengths", "int64", (BATCH_AXIS,))
INPUTS = (IDS, LENGTHS)
STATES = "states"
FINAL = "final"


def output_specs(output_dim: int) -> tuple[TensorSpec, TensorSpec]:
    """Per-token states [batch, seq, D*H] (zeros past each length) and the final state [batch, D*H].

    The final state is the top layer's hidden state at each text's true end for the forward
    direction, concatenated with the backward direction's state at position 0.
    """
    return (
        TensorSpec(STATES, "float32", (BATCH_AXIS, SEQ_AXIS, output_dim)),
        TensorSpec(FINAL, "float32", (BATCH_AXIS, output_dim)),
    )


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
