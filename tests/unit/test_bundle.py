import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.samples import SMALL, TUTORIAL_TOKENS
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.manifest import sha256_file
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.runtime.selftest import run_golden
from zh_rnn_encoder.runtime.session import open_session


@pytest.fixture
def bundle_copy(bundle_factory, tmp_path: Path) -> Path:
    src, _ = bundle_factory(cell="gru", bidirectional=True, **SMALL)
    return Path(shutil.copytree(src, tmp_path / "b"))


def _rehash(path: Path, name: str) -> None:
    m = json.loads((path / contract.MANIFEST_FILE).read_text(encoding="utf-8"))
    m["files"][name] = sha256_file(path / name)
    (path / contract.MANIFEST_FILE).write_text(json.dumps(m), encoding="utf-8")


def test_good_bundle_passes_every_check(bundle_copy: Path, tokenizer: Tokenizer) -> None:
    b = load_bundle(bundle_copy)
    assert b.model.output_dim == 48 and b.model.cell == "gru"
    assert b.golden.tokens[0] == TUTORIAL_TOKENS
    assert set(b.file_hashes) == {"model.onnx", "vocab.json", "golden.json", "golden.npz"}
    assert run_golden(b, tokenizer, open_session(b)) <= contract.PARITY_ATOL
    tools = b.manifest.tools
    assert tools["torch"].startswith("2.13.0") and tools["opset"] == "17"
    # IR 8 is what opset 17 needs: onnxruntime 1.14 and later load it (1.31 refused IR 14).
    graph = onnx.load(bundle_copy / "model.onnx", load_external_data=False)
    assert graph.ir_version == 8 and tools["onnx_ir"] == "8"


def test_changed_byte_is_refused_naming_the_file(bundle_copy: Path) -> None:
    data = bytearray((bundle_copy / "model.onnx").read_bytes())
    data[-100] ^= 1
    (bundle_copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 mismatch"):
        load_bundle(bundle_copy)


def test_every_problem_is_listed(bundle_copy: Path) -> None:
    (bundle_copy / "vocab.json").unlink()
    (bundle_copy / "golden.json").write_text("{}", encoding="utf-8")
    with pytest.raises(BundleError) as e:
        load_bundle(bundle_copy)
    assert len(e.value.problems) == 2
    assert "vocab.json: missing" in str(e.value) and "golden.json: sha256" in str(e.value)


def test_missing_directory_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(BundleError, match="bundle.json: missing"):
        load_bundle(tmp_path)


def test_vocabulary_that_does_not_fit_the_graph(bundle_copy: Path) -> None:
    """Hashes updated by hand do not help: the graph itself records its vocabulary."""
    v = Vocab.load(bundle_copy / "vocab.json")
    tokens = v.tokens[:]
    tokens[5], tokens[6] = tokens[6], tokens[5]  # same size, other ids
    Vocab(tokens).save(bundle_copy / "vocab.json")
    _rehash(bundle_copy, "vocab.json")
    b = load_bundle(bundle_copy)
    with pytest.raises(BundleError, match="vocab.json: is not the vocabulary model.onnx"):
        open_session(b)


def test_smaller_vocabulary_is_refused(bundle_copy: Path) -> None:
    v = Vocab.load(bundle_copy / "vocab.json")
    Vocab(v.tokens[:-3]).save(bundle_copy / "vocab.json")
    _rehash(bundle_copy, "vocab.json")
    with pytest.raises(BundleError, match="but the model embeds"):
        load_bundle(bundle_copy)


def test_failing_golden_samples_are_refused(bundle_copy: Path, tokenizer: Tokenizer) -> None:
    with np.load(bundle_copy / "golden.npz") as z:
        arrays = dict(z)
    arrays["final"][2, 0] += 1e-3
    np.savez(bundle_copy / "golden.npz", **arrays)
    _rehash(bundle_copy, "golden.npz")
    b = load_bundle(bundle_copy)
    with pytest.raises(BundleError, match=r"golden.npz: sample 2 in the padded batch differs"):
        run_golden(b, tokenizer, open_session(b))


def test_graph_built_for_another_output_size_is_refused(bundle_copy: Path) -> None:
    """The graph's own metadata must agree with bundle.json's model (checked, not just written)."""
    import onnx

    g = onnx.load(bundle_copy / "model.onnx")
    meta = next(p for p in g.metadata_props if p.key == contract.META_OUTPUT_DIM)
    meta.value = "7"
    onnx.save(g, bundle_copy / "model.onnx")
    _rehash(bundle_copy, "model.onnx")
    with pytest.raises(BundleError, match="model.onnx: built for output size 7"):
        open_session(load_bundle(bundle_copy))


def test_pinned_digest(bundle_copy: Path) -> None:
    digest = sha256_file(bundle_copy / "bundle.json")
    assert load_bundle(bundle_copy, expect_sha256=digest).digest == digest
    assert load_bundle(bundle_copy, expect_sha256="sha256:" + digest.upper()).digest == digest
    with pytest.raises(BundleError, match="not the bundle that was pinned"):
        load_bundle(bundle_copy, expect_sha256="0" * 64)


def test_a_consistent_forgery_fails_only_the_pin(bundle_copy: Path, tokenizer) -> None:
    """Rewritten golden arrays with every hash updated pass the self-referential checks (this is
    why the pin exists); the pinned digest refuses them."""
    pinned = sha256_file(bundle_copy / "bundle.json")
    with np.load(bundle_copy / "golden.npz") as z:
        arrays = dict(z)
    np.savez(bundle_copy / "golden.npz", **arrays, extra=np.zeros(1))
    _rehash(bundle_copy, "golden.npz")
    assert load_bundle(bundle_copy).digest != pinned
    with pytest.raises(BundleError, match="expected"):
        load_bundle(bundle_copy, expect_sha256=pinned)
