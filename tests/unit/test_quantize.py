"""encoder-export bundle --quantize int8: the graph, its bound against float, the bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.manifest import ModelConfig, TokenizerConfig
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.export import Checkpoint, export_bundle, quantize, scan_rnn
from zh_rnn_encoder.export.cli import main
from zh_rnn_encoder.export.model import init_model
from zh_rnn_encoder.export.onnx_export import build_graph
from zh_rnn_encoder.export.verify import GRID_BATCHES, GRID_SEQS, VerificationError
from zh_rnn_encoder.runtime.encoder import Encoder
from zh_rnn_encoder.runtime.session import Session

CASES = [
    (cell, bidir, name)
    for cell, bidir in [("rnn", True), ("rnn", False), ("lstm", False), ("gru", False)]
    for name in quantize.OPTIONS
]


def _io(g: onnx.ModelProto) -> list[tuple[str, int]]:
    return [(v.name, v.type.tensor_type.elem_type) for v in (*g.graph.input, *g.graph.output)]


@pytest.mark.parametrize(("cell", "bidir", "name"), CASES)
def test_int8_graph_keeps_the_contract_and_the_bounds(
    monkeypatch: pytest.MonkeyPatch, cell: str, bidir: bool, name: str
) -> None:
    monkeypatch.setattr(scan_rnn, "MAX_FOLDED_TABLE_BYTES", 0)  # the default model's layout
    c = ModelConfig(vocab_size=3000, cell=cell, embedding_dim=32, hidden_size=24, num_layers=2,
                    bidirectional=bidir)  # fmt: skip
    graph = build_graph(init_model(c, seed=1), "0" * 64)
    q, opt = quantize.quantize_as(graph, name), quantize.OPTIONS[name]
    assert _io(q) == _io(graph)
    assert {p.key: p.value for p in q.metadata_props} == {
        p.key: p.value for p in graph.metadata_props
    }
    assert q.ir_version == graph.ir_version
    assert q.ByteSize() < graph.ByteSize() * 0.4  # the embedding dominates, now int8
    err, inv = quantize.check_against_float(
        graph, q, opt.float_atol, opt.invariance_atol, GRID_BATCHES, GRID_SEQS
    )  # raises over either bound
    assert 0 < err <= opt.float_atol and inv <= opt.invariance_atol
    if opt.scheme is quantize.Scheme.WEIGHTS or cell == "gru":  # no activation quantized
        assert inv == 0


def test_a_graph_over_the_bound_is_refused() -> None:
    graph = build_graph(init_model(ModelConfig(vocab_size=300, hidden_size=16), 0), "0" * 64)
    q = quantize.quantize_as(graph, "int8")
    with pytest.raises(VerificationError, match=r"\[parity\] 3x7: .* > atol 1e-09"):
        quantize.check_against_float(graph, q, 1e-9, 1.0, (3,), (7,))


def test_unknown_name_is_refused() -> None:
    graph = build_graph(init_model(ModelConfig(vocab_size=30, hidden_size=8), 0), "0" * 64)
    with pytest.raises(ValueError, match="choose one of"):
        quantize.quantize_as(graph, "int4")


@pytest.fixture(scope="module")
def checkpoint(tokenizer, default_corpus: Path) -> Checkpoint:
    lines = default_corpus.read_text(encoding="utf-8").splitlines()
    vocab = Vocab.build(tokenizer.tokenize(x) for x in lines)
    c = ModelConfig(vocab_size=len(vocab), embedding_dim=32, hidden_size=32)
    return Checkpoint(init_model(c, 0), vocab, TokenizerConfig())


@pytest.mark.parametrize("name", sorted(quantize.OPTIONS))
def test_quantized_bundle_records_it_and_self_tests_on_its_own_goldens(
    tmp_path: Path, checkpoint: Checkpoint, jieba_cache: Path, name: str
) -> None:
    flt, q8 = tmp_path / "float", tmp_path / name
    export_bundle(checkpoint, flt, "none", jieba_cache=jieba_cache)
    report = export_bundle(checkpoint, q8, "quick", jieba_cache=jieba_cache, quantized=name)
    m, opt = load_bundle(q8).manifest, quantize.OPTIONS[name]
    q = m.graph.quantization
    assert q == report.quantization and q is not None
    assert (q.scheme, q.method, q.float_atol) == (name, opt.method, opt.float_atol)
    assert 0 < q.float_max_abs_err <= opt.float_atol
    assert m.golden.atol == max(contract.GOLDEN_ATOL, opt.invariance_atol)
    assert load_bundle(flt).manifest.graph.quantization is None
    assert (q8 / contract.GRAPH_FILE).stat().st_size < (flt / contract.GRAPH_FILE).stat().st_size
    # the goldens are the int8 graph's own outputs (each text alone), not eager PyTorch's
    eager, own = load_bundle(flt).golden, load_bundle(q8).golden
    assert 0 < np.abs(eager.final - own.final).max() <= opt.float_atol
    s = Session(q8 / contract.GRAPH_FILE)
    for i, n in enumerate(own.lengths):
        _, final = s.run(own.ids[i : i + 1, :n], own.lengths[i : i + 1])
        assert np.array_equal(final[0], own.final[i])
    enc = Encoder.from_bundle(q8, threads=1, jieba_cache_dir=jieba_cache)
    assert enc.golden_err <= opt.invariance_atol
    assert enc.info.quantization == q


def test_cli_bundle_quantize(
    tmp_path: Path, checkpoint: Checkpoint, capsys: pytest.CaptureFixture
) -> None:
    from zh_rnn_encoder.export import checkpoint as ckpt_io

    c, b = tmp_path / "c.pt", tmp_path / "b"
    ckpt_io.save(checkpoint, c)
    assert main(["bundle", "--checkpoint", str(c), "--out", str(b), "--quick",
                 "--quantize", "int8"]) == 0  # fmt: skip
    assert main(["verify", "--bundle", str(b), "--checkpoint", str(c), "--quick"]) == 0
    err = capsys.readouterr().err
    assert "int8 graph against the float graph" in err and "parity ok" in err


def test_the_word_table_has_a_scale_per_row() -> None:
    """One word with large weights does not coarsen the others: each row is within half its own
    step (max |w| / 127 / 2) of the float row, whatever the other rows hold."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = rng.normal(0, 0.1, (50, 8)).astype(np.float32)
    table[7] *= 100  # an outlier row: one scale for the table would be 100x too coarse elsewhere
    table[9] = 0  # an all-zero row stays zero
    g = helper.make_model(
        helper.make_graph(
            [helper.make_node("Gather", ["table", "ids"], ["x0"], axis=0)],
            "t",
            [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
            [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [None, 8])],
            [numpy_helper.from_array(table, "table")],
        )
    )
    quantize._table_rows(g.graph)
    assert {i.name: i.data_type for i in g.graph.initializer} == {
        "table_int8": TensorProto.INT8, "table_row_scale": TensorProto.FLOAT,
    }  # fmt: skip
    import onnxruntime as ort

    ids = np.arange(50, dtype=np.int64)
    got = ort.InferenceSession(g.SerializeToString()).run(None, {"ids": ids})[0]
    step = np.abs(table).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(got - table) <= step / 2 + 1e-7)
    assert np.all(got[9] == 0)
    shared = np.abs(table).max() / 127 / 2  # the error one scale for the whole table would allow
    assert np.abs(got - table)[np.arange(50) != 7].max() < shared / 20
