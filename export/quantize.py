"""int8 graphs: an exported float graph with its word table stored as int8, and for ``dynamic``
post-processed by onnxruntime's quantizer.

Two schemes, measured in docs/performance.md ("int8") and offered as two --quantize values:

- ``weights``: the embedding (or folded projection) table stored as int8 with a scale per row
  (per word), dequantized after the Gather (``_table_rows``). The recurrence stays float, so the
  graph stays batch invariant; the bundle is up to 4x smaller, the graph no faster.
- ``dynamic``: that table, and every MatMul, inside the Scan bodies too, and LSTM's kernel
  quantized by onnxruntime's dynamic quantization, with activations quantized per call. A
  per-call activation scale makes a text's encoding depend on the other texts in its batch, by
  up to the quantization error.

The table is ours, not onnxruntime's Gather quantization: that takes one scale for the whole
table, so the word with the largest weight sets every word's step. On the trained default (256-wide
words distilled from TF-IDF) that put the graph 0.55 from the float one (weights alone) and 0.93
(dynamic), over the 0.5 bound; a scale per row gives 0.19 and 0.38, and costs 4 bytes a word.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.export.verify import Mismatch, VerificationError
from zh_rnn_encoder.runtime.session import Session

# Bounds against the float graph on the full verification grid, every output. Measured: the
# trained default 0.28 (int8) and 0.19 (int8-weights), batch variance 0.030 (int8); the bench's
# random models at most 0.014 (docs/performance.md, "int8"). About twice that, for other models.
FLOAT_ATOL = 0.5
INVARIANCE_ATOL_DYNAMIC = 0.1


class Scheme(StrEnum):
    WEIGHTS = "weights"
    DYNAMIC = "dynamic"


_OPS = {Scheme.WEIGHTS: [], Scheme.DYNAMIC: ["MatMul", "LSTM"]}  # onnxruntime's, after the table


FLOAT = onnx.TensorProto.FLOAT


def _table_rows(graph: onnx.GraphProto) -> None:
    """Every Gather from a float [V, E] initializer (the word table) -> Gather of its int8 rows,
    Cast, times the Gather of each row's scale (max |w| / 127, symmetric): the same output name,
    so the rest of the graph is unchanged. Rows are independent, so batch invariance holds."""
    inits = {i.name: i for i in graph.initializer}
    nodes = []
    for n in graph.node:
        table = inits.get(n.input[0]) if n.op_type == "Gather" else None
        if table is None or table.data_type != FLOAT or len(table.dims) != 2:
            nodes.append(n)
            continue
        w = numpy_helper.to_array(table)
        scale = (np.abs(w).max(axis=1, keepdims=True) / 127.0).astype(np.float32)
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        name, ids, out = table.name, n.input[1], n.output[0]
        graph.initializer.remove(table)
        graph.initializer.extend(
            [
                numpy_helper.from_array(q, f"{name}_int8"),
                numpy_helper.from_array(scale, f"{name}_row_scale"),
            ]
        )
        nodes += [
            helper.make_node("Gather", [f"{name}_int8", ids], [f"{out}_rows_int8"], axis=0),
            helper.make_node("Cast", [f"{out}_rows_int8"], [f"{out}_rows"], to=FLOAT),
            helper.make_node("Gather", [f"{name}_row_scale", ids], [f"{out}_rows_scale"], axis=0),
            helper.make_node("Mul", [f"{out}_rows", f"{out}_rows_scale"], [out]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)


def _outer_weights(graph: onnx.GraphProto) -> None:
    """A Scan body reads its H x H matrix through Identity(outer name); the quantizer finds only
    initializers, so the MatMul is pointed at the outer name itself (the same tensor)."""
    for node in graph.node:
        for attr in node.attribute:
            if attr.type != onnx.AttributeProto.GRAPH:
                continue
            body = attr.g
            alias = {
                n.output[0]: n.input[0]
                for n in body.node
                if n.op_type == "Identity" and n.input[0] not in {i.name for i in body.input}
            }
            for n in body.node:
                if n.op_type == "MatMul":
                    n.input[:] = [alias.get(x, x) for x in n.input]
            kept = [n for n in body.node if not (n.op_type == "Identity" and n.output[0] in alias)]
            del body.node[:]
            body.node.extend(kept)


@dataclass(frozen=True)
class Option:
    """What ``encoder-export bundle --quantize NAME`` does, and the bounds its graph must keep
    against the float graph on the verification grid (docs/exporter.md has the measurements)."""

    scheme: Scheme
    method: str
    float_atol: float  # every output, against the float graph
    invariance_atol: float  # a text alone against the same text in a padded batch


OPTIONS = {
    "int8": Option(
        Scheme.DYNAMIC,
        "the word table int8 with a scale per row; onnxruntime quantize_dynamic, ops MatMul (in "
        "the Scan bodies too) and LSTM: weights int8 per tensor, activations uint8 per call",
        FLOAT_ATOL,
        INVARIANCE_ATOL_DYNAMIC,
    ),
    "int8-weights": Option(
        Scheme.WEIGHTS,
        "the word table int8 with a scale per row, dequantized after the gather; the "
        "recurrence in float32",
        FLOAT_ATOL,
        contract.BATCH_INVARIANCE_ATOL,
    ),
}


def quantize_as(graph: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """``graph`` quantized as ``encoder-export bundle --quantize name`` does."""
    if name not in OPTIONS:
        raise ValueError(f"--quantize {name!r}: choose one of {sorted(OPTIONS)}")
    return quantize(graph, OPTIONS[name].scheme)


def quantize(graph: onnx.ModelProto, scheme: Scheme | str) -> onnx.ModelProto:
    """The graph with int8 weights by ``scheme``; inputs, outputs and metadata unchanged."""
    scheme = Scheme(scheme)
    q = onnx.ModelProto()
    q.CopyFrom(graph)
    _table_rows(q.graph)
    if _OPS[scheme]:
        _outer_weights(q.graph)
        # its hint to pre-process (shape inference, fusions) is for traced graphs: ours is built
        # with its shapes, and onnxruntime fuses at load
        hint = _NoPreprocessHint()
        logging.getLogger().addFilter(hint)
        try:
            with tempfile.TemporaryDirectory() as d:
                out = Path(d) / "int8.onnx"
                quantize_dynamic(
                    q,
                    out,
                    op_types_to_quantize=_OPS[scheme],
                    weight_type=QuantType.QInt8,
                    extra_options={"EnableSubgraph": True},
                )
                q = onnx.load(out)
        finally:
            logging.getLogger().removeFilter(hint)
    q.ir_version = graph.ir_version  # the quantizer writes its onnx's newest; ORT reads ours
    q.producer_name, q.producer_version = graph.producer_name, graph.producer_version
    del q.metadata_props[:]
    helper.set_model_props(q, {p.key: p.value for p in graph.metadata_props})
    onnx.checker.check_model(q)
    return q


def check_against_float(
    float_graph: onnx.ModelProto,
    graph: onnx.ModelProto,
    atol: float,
    invariance_atol: float,
    batches: tuple[int, ...],
    seqs: tuple[int, ...],
    seed: int = 0,
) -> tuple[float, float]:
    """Max abs error of ``graph`` against ``float_graph`` over every output on a grid of random
    ids and mixed lengths, and of a text alone against the same text in the batch; raises
    VerificationError listing every case over ``atol`` or ``invariance_atol``."""
    fs, qs = Session(float_graph.SerializeToString()), Session(graph.SerializeToString())
    vocab = int(_meta(float_graph)[contract.META_VOCAB_SIZE])
    rng, worst, worst_inv, problems = np.random.default_rng(seed), 0.0, 0.0, []
    for b in batches:
        for s in seqs:
            ids = rng.integers(0, vocab, (b, s))
            lengths = rng.integers(1, s + 1, b)
            lengths[0] = s
            want, got = fs.run_state(ids, lengths), qs.run_state(ids, lengths)
            err = max(float(np.abs(got[k] - want[k]).max()) for k in want)
            worst = max(worst, err)
            if not err <= atol:
                problems.append(Mismatch("parity", f"{b}x{s}", f"{err:.3g} > atol {atol:g}"))
            alone = qs.run(ids[:1], lengths[:1])
            inv = max(
                float(np.abs(alone[0][0] - got[contract.STATES][0]).max()),
                float(np.abs(alone[1][0] - got[contract.FINAL][0]).max()),
            )
            worst_inv = max(worst_inv, inv)
            if not inv <= invariance_atol:
                problems.append(
                    Mismatch(
                        "invariance",
                        f"{b}x{s}",
                        f"{inv:.3g} > {invariance_atol:g}",
                    )
                )
    if problems:
        raise VerificationError(problems)
    return worst, worst_inv


class _NoPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _meta(graph: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in graph.metadata_props}
