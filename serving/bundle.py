"""Read a model bundle and check it before anything runs: format, hashes, vocabulary, tokenizer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving import contract
from serving.errors import BundleError
from serving.tokenizer import TokenizerConfig, jieba_version
from serving.vocab import Vocab


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """The torch-free view of the model config recorded in bundle.json."""

    cell: str
    embedding_dim: int
    hidden_size: int
    num_layers: int
    directions: int
    vocab_size: int

    @property
    def output_dim(self) -> int:
        return self.directions * self.hidden_size


@dataclass(frozen=True)
class Golden:
    texts: list[str]
    tokens: list[list[str]]
    ids: np.ndarray  # int64 [N, S], padded
    lengths: np.ndarray  # int64 [N]
    states: np.ndarray  # float32 [N, S, F], eager PyTorch
    final: np.ndarray  # float32 [N, F], eager PyTorch
    atol: float


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict
    model: ModelInfo
    tokenizer: TokenizerConfig
    vocab: Vocab
    golden: Golden
    inputs: tuple[contract.TensorSpec, ...]
    outputs: tuple[contract.TensorSpec, ...]

    @property
    def graph_path(self) -> Path:
        return self.path / contract.GRAPH_FILE

    @property
    def user_dict_path(self) -> Path | None:
        name = self.tokenizer.user_dict
        return self.path / name if name else None

    @property
    def file_hashes(self) -> dict[str, str]:
        return dict(self.manifest["files"])


def load_bundle(path: Path) -> Bundle:
    """Load and check a bundle; raises BundleError listing every problem found."""
    path = Path(path)
    manifest = _read_manifest(path)
    problems = _check_files(path, manifest)
    if problems:
        raise BundleError(path, problems)
    try:
        bundle = _parse(path, manifest)
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(path, [f"{contract.MANIFEST_FILE}: malformed: {e!r}"]) from e
    problems = _check_consistency(bundle)
    if problems:
        raise BundleError(path, problems)
    return bundle


def _read_manifest(path: Path) -> dict:
    mf = path / contract.MANIFEST_FILE
    if not path.is_dir():
        raise BundleError(path, ["not a directory (build one with `make model`)"])
    if not mf.is_file():
        raise BundleError(path, [f"{contract.MANIFEST_FILE}: missing"])
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(path, [f"{contract.MANIFEST_FILE}: not valid JSON: {e}"]) from e
    fmt, ver = manifest.get("format"), manifest.get("format_version")
    if fmt != contract.BUNDLE_FORMAT or ver != contract.BUNDLE_FORMAT_VERSION:
        raise BundleError(
            path,
            [
                f"{contract.MANIFEST_FILE}: format {fmt!r} v{ver!r}, this server "
                f"reads {contract.BUNDLE_FORMAT!r} v{contract.BUNDLE_FORMAT_VERSION}"
            ],
        )
    if not isinstance(manifest.get("files"), dict):
        raise BundleError(path, [f"{contract.MANIFEST_FILE}: no 'files' table of hashes"])
    return manifest


def _check_files(path: Path, manifest: dict) -> list[str]:
    problems = []
    required = {
        contract.GRAPH_FILE,
        contract.VOCAB_FILE,
        contract.GOLDEN_TEXTS_FILE,
        contract.GOLDEN_ARRAYS_FILE,
    }
    user_dict = manifest.get("tokenizer", {}).get("user_dict")
    if user_dict:
        required.add(user_dict)
    for name in sorted(required - set(manifest["files"])):
        problems.append(f"{name}: required but not listed in {contract.MANIFEST_FILE} 'files'")
    for name, expected in sorted(manifest["files"].items()):
        f = path / name
        if Path(name).name != name:
            problems.append(f"{name}: file names must not contain directories")
        elif not f.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(f)) != expected:
            problems.append(
                f"{name}: sha256 mismatch (bundle.json {expected[:12]}…, "
                f"file {actual[:12]}…): the file was changed after export"
            )
    return problems


def _parse(path: Path, m: dict) -> Bundle:
    mc = m["model"]
    model = ModelInfo(
        mc["cell"],
        mc["embedding_dim"],
        mc["hidden_size"],
        mc["num_layers"],
        mc["directions"],
        mc["vocab_size"],
    )
    try:
        vocab = Vocab.load(path / contract.VOCAB_FILE)
    except ValueError as e:
        raise ValueError(f"{contract.VOCAB_FILE}: {e}") from e
    texts = json.loads((path / contract.GOLDEN_TEXTS_FILE).read_text(encoding="utf-8"))
    with np.load(path / contract.GOLDEN_ARRAYS_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("ids", "lengths", "states", "final")}
    golden = Golden(texts["texts"], texts["tokens"], atol=float(m["golden"]["atol"]), **arrays)
    return Bundle(
        path=path,
        manifest=m,
        model=model,
        tokenizer=TokenizerConfig.from_json(m["tokenizer"]),
        vocab=vocab,
        golden=golden,
        inputs=tuple(contract.TensorSpec.from_json(s) for s in m["graph"]["inputs"]),
        outputs=tuple(contract.TensorSpec.from_json(s) for s in m["graph"]["outputs"]),
    )


def _check_consistency(b: Bundle) -> list[str]:
    problems = []
    mv = b.manifest["vocab"]
    if len(b.vocab) != b.model.vocab_size or len(b.vocab) != mv["size"]:
        problems.append(
            f"{contract.VOCAB_FILE}: {len(b.vocab)} tokens, but the model embeds "
            f"{b.model.vocab_size} and bundle.json says {mv['size']}"
        )
    if (b.vocab.pad_id, b.vocab.unk_id) != (mv["pad_id"], mv["unk_id"]):
        problems.append(
            f"{contract.VOCAB_FILE}: reserved ids {b.vocab.pad_id}/{b.vocab.unk_id} "
            f"differ from bundle.json's {mv['pad_id']}/{mv['unk_id']}"
        )
    made_with = b.manifest["tokenizer"].get("jieba_version")
    if made_with != jieba_version():
        problems.append(
            f"{contract.MANIFEST_FILE}: made with jieba {made_with}, installed "
            f"{jieba_version()}: segmentation may differ"
        )
    expected = (*contract.INPUTS, *contract.output_specs(b.model.output_dim))
    if (*b.inputs, *b.outputs) != expected:
        problems.append(
            f"{contract.MANIFEST_FILE}: graph I/O {[s.to_json() for s in b.inputs]} "
            f"-> {[s.to_json() for s in b.outputs]} is not this server's contract"
        )
    g = b.golden
    n = len(g.texts)
    if not (len(g.tokens) == g.ids.shape[0] == g.lengths.shape[0] == g.final.shape[0] == n):
        problems.append(
            f"{contract.GOLDEN_ARRAYS_FILE}: sample counts disagree with "
            f"{contract.GOLDEN_TEXTS_FILE}"
        )
    return problems
