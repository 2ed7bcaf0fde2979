"""Read a model bundle and check it before anything runs: format, hashes, vocabulary, tokenizer."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.manifest import Manifest, ModelConfig, TokenizerConfig, sha256_file
from zh_rnn_encoder.core.manifest import jieba_version as installed_jieba
from zh_rnn_encoder.core.vocab import Vocab

_GOLDEN_ARRAYS = ("ids", "lengths", "states", "final")
_T = TypeVar("_T")


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
    manifest: Manifest
    vocab: Vocab
    golden: Golden
    digest: str  # the version: sha256 of bundle.json (bundle_digest)

    @property
    def model(self) -> ModelConfig:
        return self.manifest.model

    @property
    def tokenizer(self) -> TokenizerConfig:
        return self.manifest.tokenizer

    @property
    def graph_path(self) -> Path:
        return self.path / self.manifest.graph.file

    @property
    def user_dict_path(self) -> Path | None:
        name = self.tokenizer.user_dict
        return self.path / name if name else None

    @property
    def file_hashes(self) -> dict[str, str]:
        return dict(self.manifest.files)


def load_bundle(path: Path, expect_sha256: str | None = None) -> Bundle:
    """Load and check a bundle; raises BundleError listing every problem found.

    The hashes in bundle.json prove the files match bundle.json, not that bundle.json is the one
    you exported: ``expect_sha256`` pins it (and so every file), as printed by encoder-export.
    """
    path = Path(path)
    digest = _check_pin(path, expect_sha256)
    manifest = _read_manifest(path)
    problems = _check_files(path, manifest)
    if problems:
        raise BundleError(path, problems)
    vocab = _read(path, manifest.vocab.file, Vocab.load)
    texts, tokens = _read(path, manifest.golden.texts, _golden_texts)
    arrays = _read(path, manifest.golden.arrays, _golden_arrays)
    golden = Golden(texts, tokens, atol=manifest.golden.atol, **arrays)
    bundle = Bundle(path, manifest, vocab, golden, digest)
    problems = _check_consistency(bundle)
    if problems:
        raise BundleError(path, problems)
    return bundle


def bundle_digest(path: Path) -> str:
    """The bundle's version: the hex sha256 of its bundle.json, which holds the sha256 of every
    other file (what encoder-export prints, --expect-bundle-sha256 pins and every response
    carries as model_version); "" when there is none."""
    mf = Path(path) / contract.MANIFEST_FILE
    return sha256_file(mf) if mf.is_file() else ""


def _check_pin(path: Path, expect_sha256: str | None) -> str:
    digest = bundle_digest(path)
    want = (expect_sha256 or "").removeprefix("sha256:").lower()
    if want and digest != want:
        raise BundleError(
            path,
            [
                f"{contract.MANIFEST_FILE}: sha256 {digest[:16] or '(missing)'}…, expected "
                f"{want[:16]}… (--expect-bundle-sha256): not the bundle that was pinned"
            ],
        )
    return digest


def _read_manifest(path: Path) -> Manifest:
    mf = path / contract.MANIFEST_FILE
    if not path.is_dir():
        raise BundleError(path, ["not a directory (build one with `make model`)"])
    if not mf.is_file():
        raise BundleError(path, [f"{contract.MANIFEST_FILE}: missing"])
    try:
        return Manifest.from_json(json.loads(mf.read_text(encoding="utf-8")))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise BundleError(path, [f"{contract.MANIFEST_FILE}: {e}"]) from e


def _read(path: Path, name: str, reader: Callable[[Path], _T]) -> _T:
    """``reader(path / name)``, any failure to parse reported as a problem with that file."""
    try:
        return reader(path / name)
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise BundleError(path, [f"{name}: unreadable: {e}"]) from e


def _check_files(path: Path, m: Manifest) -> list[str]:
    problems = []
    required = {m.graph.file, m.vocab.file, m.golden.texts, m.golden.arrays}
    if m.tokenizer.user_dict:
        required.add(m.tokenizer.user_dict)
    for name in sorted(required - set(m.files)):
        problems.append(f"{name}: required but not listed in {contract.MANIFEST_FILE} 'files'")
    for name, expected in sorted(m.files.items()):
        f = path / name
        if Path(name).name != name:
            problems.append(f"{name}: file names must not contain directories")
        elif not f.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(f)) != expected:
            problems.append(
                f"{name}: sha256 mismatch ({contract.MANIFEST_FILE} {expected[:12]}…, "
                f"file {actual[:12]}…): the file was changed after export"
            )
    return problems


def _golden_texts(path: Path) -> tuple[list[str], list[list[str]]]:
    d = json.loads(path.read_text(encoding="utf-8"))
    return list(d["texts"]), [list(t) for t in d["tokens"]]


def _golden_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in _GOLDEN_ARRAYS}


def _check_consistency(b: Bundle) -> list[str]:
    problems = []
    m, mv = b.manifest, b.manifest.vocab
    if len(b.vocab) != m.model.vocab_size or len(b.vocab) != mv.size:
        problems.append(
            f"{contract.VOCAB_FILE}: {len(b.vocab)} tokens, but the model embeds "
            f"{m.model.vocab_size} and {contract.MANIFEST_FILE} says {mv.size}"
        )
    if (b.vocab.pad_id, b.vocab.unk_id) != (mv.pad_id, mv.unk_id):
        problems.append(
            f"{contract.VOCAB_FILE}: reserved ids {b.vocab.pad_id}/{b.vocab.unk_id} "
            f"differ from {contract.MANIFEST_FILE}'s {mv.pad_id}/{mv.unk_id}"
        )
    if m.tokenizer.jieba_version != installed_jieba():
        problems.append(
            f"{contract.MANIFEST_FILE}: made with jieba {m.tokenizer.jieba_version}, installed "
            f"{installed_jieba()}: segmentation may differ"
        )
    expected = (*contract.input_specs(m.model), *contract.output_specs(m.model))
    if (*m.graph.inputs, *m.graph.outputs) != expected:
        problems.append(
            f"{contract.MANIFEST_FILE}: graph I/O {m.graph.inputs} -> {m.graph.outputs} "
            "is not this runtime's contract"
        )
    g = b.golden
    n = len(g.texts)
    if not (len(g.tokens) == g.ids.shape[0] == g.lengths.shape[0] == g.final.shape[0] == n):
        problems.append(
            f"{contract.GOLDEN_ARRAYS_FILE}: sample counts disagree with "
            f"{contract.GOLDEN_TEXTS_FILE}"
        )
    return problems
