import itertools

import numpy as np
import onnx
import pytest

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.enums import Formulation
from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.manifest import ModelConfig, TokenizerConfig
from zh_rnn_encoder.export import Verify, export_bundle, onnx_export, scan_rnn
from zh_rnn_encoder.export.model import init_model
from zh_rnn_encoder.export.onnx_export import build_graph
from zh_rnn_encoder.export.verify import (
    GRID_BATCHES,
    GRID_SEQS,
    VerificationError,
    check_structure,
    verify,
)

CONFIGS = list(itertools.product(["rnn", "lstm", "gru"], [1, 2], [False, True]))
# Shapes no export could have been traced with: the graph is built, not traced, and these
# deliberately include 1, odd lengths and the maxima of the quality bar.
BATCHES, SEQS = (1, 3, 64), (1, 2, 7, 33, 130, 512)


@pytest.mark.parametrize(("cell", "layers", "bidir"), CONFIGS)
def test_parity_and_batch_invariance(cell: str, layers: int, bidir: bool) -> None:
    c = ModelConfig(
        vocab_size=200,
        cell=cell,
        embedding_dim=16,
        hidden_size=24,
        num_layers=layers,
        bidirectional=bidir,
    )
    model = init_model(c, seed=layers)
    graph = build_graph(model, "0" * 64)
    report = verify(graph, model, batches=BATCHES, seqs=SEQS, n_random=3, invariance_every=1)
    assert report.max_abs_err <= contract.PARITY_ATOL
    assert report.max_invariance_err <= contract.BATCH_INVARIANCE_ATOL
    assert report.cases == len(BATCHES) * len(SEQS) + 3


@pytest.mark.parametrize("bidir", [False, True])
def test_rnn_without_folded_table(monkeypatch: pytest.MonkeyPatch, bidir: bool) -> None:
    """Large vocabularies keep Gather + MatMul instead of the folded table: same results."""
    monkeypatch.setattr(scan_rnn, "MAX_FOLDED_TABLE_BYTES", 0)
    c = ModelConfig(
        vocab_size=300, embedding_dim=16, hidden_size=24, num_layers=2, bidirectional=bidir
    )
    model = init_model(c, seed=3)
    graph = build_graph(model, "0" * 64)
    assert "embedding" in {i.name for i in graph.graph.initializer}
    report = verify(graph, model, batches=(1, 5), seqs=(1, 9, 130), n_random=2, invariance_every=1)
    assert report.max_abs_err <= contract.PARITY_ATOL


@pytest.mark.parametrize(
    ("layers", "bidir", "nonlinearity"), [(1, False, "tanh"), (2, True, "relu")]
)
def test_rnn_as_its_native_op(layers: int, bidir: bool, nonlinearity: str) -> None:
    """--formulation native: one ONNX RNN op per layer (cuDNN on CUDA), the same function as
    the Scans, checked as strictly."""
    c = ModelConfig(
        vocab_size=200,
        embedding_dim=16,
        hidden_size=24,
        num_layers=layers,
        bidirectional=bidir,
        nonlinearity=nonlinearity,
    )
    model = init_model(c, seed=layers)
    graph = build_graph(model, "0" * 64, Formulation.NATIVE)
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("RNN") == layers and "Scan" not in ops
    report = verify(
        graph,
        model,
        batches=BATCHES,
        seqs=SEQS,
        n_random=3,
        invariance_every=1,
        formulation=Formulation.NATIVE,
    )
    assert report.max_abs_err <= contract.PARITY_ATOL
    assert report.max_invariance_err <= contract.BATCH_INVARIANCE_ATOL
    # checked as the default formulation, the same graph is refused: the ops are counted
    assert [m.check for m in check_structure(graph, model)] == ["structure"]


def test_formulation_a_cell_lacks_is_refused() -> None:
    model = init_model(ModelConfig(vocab_size=50, cell="lstm", embedding_dim=8, hidden_size=8), 0)
    with pytest.raises(ValueError, match="formulation scan: the lstm cell is written as native"):
        build_graph(model, "0" * 64, "scan")
    with pytest.raises(ValueError, match="formulation: unknown value 'loop'"):
        onnx_export.formulation_for(model.config, "loop")


def test_default_sizes_parity() -> None:
    model = init_model(ModelConfig(vocab_size=500), seed=0)
    report = verify(
        build_graph(model, "0" * 64), model, batches=(1, 17), seqs=(1, 33, 257), n_random=1
    )
    assert report.max_abs_err <= contract.PARITY_ATOL


def test_graph_is_native_ops_with_dynamic_axes() -> None:
    model = init_model(
        ModelConfig(vocab_size=50, cell="lstm", num_layers=2, embedding_dim=8, hidden_size=8), 0
    )
    g = build_graph(model, "0" * 64)
    assert [n.op_type for n in g.graph.node].count("LSTM") == 2
    dims = [
        [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in g.graph.input
    ]
    # ids, lengths, then h0 and c0 [layers * directions, 1 or batch, hidden], optional: the graph
    # holds zeros of batch 1 for them
    assert dims == [["batch", "seq"], ["batch"], [2, "state_batch", 8], [2, "state_batch", 8]]
    defaults = {t.name: t.dims for t in g.graph.initializer if t.name in ("h0", "c0")}
    assert defaults == {"h0": [2, 1, 8], "c0": [2, 1, 8]}
    outputs = [
        [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in g.graph.output
    ]
    assert outputs == [["batch", "seq", 8], ["batch", 8], [2, "batch", 8], [2, "batch", 8]]
    assert check_structure(g, model) == []


def test_frozen_seq_axis_is_caught() -> None:
    """A graph whose seq axis was frozen at trace time (the dynamo exporter trap) is refused."""
    model = init_model(ModelConfig(vocab_size=50, embedding_dim=8, hidden_size=8), 0)
    g = build_graph(model, "0" * 64)
    g.graph.input[0].type.tensor_type.shape.dim[1].ClearField("dim_param")
    g.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 7
    with pytest.raises(VerificationError) as e:
        verify(g, model, batches=(2,), seqs=(7, 9), n_random=0)
    kinds = {m.check for m in e.value.mismatches}
    assert kinds == {"structure", "shape"}  # declared dims and onnxruntime refusing seq=9
    assert "seq=9" in str(e.value)


def test_every_mismatch_is_listed() -> None:
    c = ModelConfig(vocab_size=50, cell="gru", embedding_dim=8, hidden_size=8)
    g = build_graph(init_model(c, 0), "0" * 64)
    with pytest.raises(VerificationError) as e:
        verify(g, init_model(c, 1), batches=(1, 2), seqs=(3, 5), n_random=0)
    assert len(e.value.mismatches) == 12  # 4 shapes x (states, final, h_n)
    assert all(m.check == "parity" for m in e.value.mismatches)


def test_graph_records_vocab_and_passes_checker() -> None:
    g = build_graph(
        init_model(ModelConfig(vocab_size=42, cell="gru", embedding_dim=8, hidden_size=8), 0),
        "ab" * 32,
    )
    meta = {p.key: p.value for p in g.metadata_props}
    assert meta[contract.META_VOCAB_SIZE] == "42" and meta[contract.META_VOCAB_SHA256] == "ab" * 32
    onnx.checker.check_model(g, full_check=True)
    emb = next(i for i in g.graph.initializer if i.name == "embedding")
    assert list(emb.dims) == [42, 8]
    assert np.isfinite(onnx.numpy_helper.to_array(emb)).all()


def test_graph_that_ignores_lengths_is_caught() -> None:
    """Without sequence_lens, padding leaks into h_n and the backward direction."""
    c = ModelConfig(vocab_size=50, cell="lstm", embedding_dim=8, hidden_size=8, bidirectional=True)
    model = init_model(c, 0)
    g = build_graph(model, "0" * 64)
    lstm = next(n for n in g.graph.node if n.op_type == "LSTM")
    lstm.input[4] = ""  # drop sequence_lens
    with pytest.raises(VerificationError) as e:
        verify(g, model, batches=(3,), seqs=(9,), n_random=0, invariance_every=1)
    kinds = {m.check for m in e.value.mismatches}
    assert {"parity", "invariance"} <= kinds


def _tiny_checkpoint(seed: int = 0):
    from zh_rnn_encoder.core.vocab import Vocab
    from zh_rnn_encoder.export import Checkpoint

    vocab = Vocab.build([["北京", "冬奥", "的", "进度条"], ["你好"]])
    c = ModelConfig(vocab_size=len(vocab), cell="gru", embedding_dim=8, hidden_size=8)
    return Checkpoint(init_model(c, seed), vocab, TokenizerConfig())


def test_export_bundle_verifies_by_default(tmp_path) -> None:
    report = export_bundle(_tiny_checkpoint(), tmp_path / "b")
    assert report.verify is Verify.FULL and report.path == tmp_path / "b"
    assert report.parity_cases == len(GRID_BATCHES) * len(GRID_SEQS) + 8
    assert report.parity_max_abs_err <= contract.PARITY_ATOL
    assert report.invariance_max_abs_err <= contract.BATCH_INVARIANCE_ATOL
    assert report.golden_max_abs_err <= contract.PARITY_ATOL
    assert load_bundle(tmp_path / "b").model.cell == "gru"
    assert not (tmp_path / "b.partial").exists()


def test_the_bundle_records_its_formulation_and_verify_reads_it(tmp_path) -> None:
    """bundle.json says how the graph was written; `encoder-export verify --checkpoint` checks
    the bundle's graph for that formulation's ops, and `random --like` keeps it."""
    from zh_rnn_encoder.core.vocab import Vocab
    from zh_rnn_encoder.export import Checkpoint
    from zh_rnn_encoder.export import checkpoint as ckpt_io
    from zh_rnn_encoder.export.cli import main

    vocab = Vocab.build([["北京", "冬奥", "的", "进度条"], ["你好"]])
    c = ModelConfig(vocab_size=len(vocab), embedding_dim=8, hidden_size=8)
    ckpt = Checkpoint(init_model(c, 0), vocab, TokenizerConfig())
    ckpt_io.save(ckpt, tmp_path / "c.pt")
    export_bundle(ckpt, tmp_path / "native", "quick", formulation="native")
    export_bundle(ckpt, tmp_path / "scan", "quick")
    assert load_bundle(tmp_path / "native").manifest.graph.formulation is Formulation.NATIVE
    assert load_bundle(tmp_path / "scan").manifest.graph.formulation is Formulation.SCAN
    for name in ("native", "scan"):
        args = ["verify", "--bundle", str(tmp_path / name), "--checkpoint", str(tmp_path / "c.pt")]
        assert main([*args, "--quick"]) == 0
    assert main(["random", "--like", str(tmp_path / "native"), "--out", str(tmp_path / "r")]) == 0
    assert load_bundle(tmp_path / "r").manifest.graph.formulation is Formulation.NATIVE
    assert (
        main(
            [
                "bundle",
                "--checkpoint",
                str(tmp_path / "c.pt"),
                "--out",
                str(tmp_path / "x"),
                "--formulation",
                "scan",
                "--quick",
            ]
        )
        == 0
    )


def test_a_bundle_that_fails_verification_is_not_moved_into_place(tmp_path, monkeypatch) -> None:
    """A graph that is not the checkpoint's: refused, and the previous bundle stays."""
    out = tmp_path / "b"
    out.mkdir()
    (out / "previous").write_text("kept")
    other = _tiny_checkpoint(seed=1).model
    monkeypatch.setattr(
        onnx_export,
        "build_graph",
        lambda model, sha, form=None, real=onnx_export.build_graph: real(other, sha, form),
    )
    with pytest.raises(BundleError, match="golden.npz: sample 0"):
        export_bundle(_tiny_checkpoint(), out, "quick")
    assert (out / "previous").read_text() == "kept" and not (tmp_path / "b.partial").exists()


def test_parity_over_atol_is_judged_against_float64_eager() -> None:
    """Over PARITY_ATOL, onnxruntime passes only within NOISE_FACTOR of float32 PyTorch's own
    distance from float64 eager: amplified rounding passes, a wrong graph does not."""

    from zh_rnn_encoder.export.verify import NOISE_FACTOR, Report, _compare

    exact = {"states": np.zeros(4)}
    eager32 = {"states": np.full(4, 2e-5)}  # float32 PyTorch itself is 2e-5 off
    noisy = {"states": np.full(4, -2e-5)}  # 4e-5 from eager32, 2e-5 from the truth
    wrong = {"states": np.full(4, 2e-5 * NOISE_FACTOR * 1.5)}
    r = Report()
    _compare(r, "case", noisy, eager32, 1e-5, lambda: exact)
    assert r.mismatches == [] and r.noise_cases == 1 and r.max_abs_err == pytest.approx(4e-5)
    _compare(r, "case", wrong, eager32, 1e-5, lambda: exact)
    assert len(r.mismatches) == 1 and "against float64 eager" in str(r.mismatches[0])
    _compare(r, "case", noisy, eager32, 1e-5)  # no float64 reference: the plain bar
    assert len(r.mismatches) == 2
