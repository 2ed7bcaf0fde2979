"""The one written-down contract between export and serving: bundle files, ONNX I/O, tolerances."""

from __future__ import annotations

from dataclasses import dataclass

BUNDLE_FORMAT = "zh-rnn-encoder-bundle"
BUNDLE_FORMAT_VERSION = 1

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
FEATURE_AXIS = "features"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, element type and axes (str = dynamic)."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> TensorSpec:
        return cls(d["name"], d["dtype"], tuple(d["shape"]))


IDS = TensorSpec("ids", "int64", (BATCH_AXIS, SEQ_AXIS))
LENGTHS = TensorSpec("lengths", "int64", (BATCH_AXIS,))


def output_specs(output_dim: int) -> tuple[TensorSpec, TensorSpec]:
    """Per-token states [batch, seq, D*H] (zeros past each length) and the final state [batch, D*H].

    The final state is the top layer's hidden state at each text's true end for the forward
    direction, concatenated with the backward direction's state at position 0.
    """
    return (
        TensorSpec("states", "float32", (BATCH_AXIS, SEQ_AXIS, output_dim)),
        TensorSpec("final", "float32", (BATCH_AXIS, output_dim)),
    )


INPUTS = (IDS, LENGTHS)
STATES = "states"
FINAL = "final"

# Keys of the graph's ONNX metadata_props: the graph itself says which vocabulary it was built for,
# so a bundle whose vocabulary file was swapped (hashes updated or not) is refused.
META_VOCAB_SIZE = "vocab_size"
META_VOCAB_SHA256 = "vocab_sha256"
META_OUTPUT_DIM = "output_dim"

# Parity: ORT vs eager PyTorch over the verification grid (DESIGN.md quality bar).
PARITY_ATOL = 1e-5
# Batch invariance: a text alone vs padded in a batch with longer texts.
BATCH_INVARIANCE_ATOL = 1e-6
# Golden samples at server start-up run on whatever hardware serves; recorded per bundle.
GOLDEN_ATOL = 1e-4

CELLS = ("rnn", "lstm", "gru")
