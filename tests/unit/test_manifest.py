"""bundle.json's one schema: written and read by the same dataclasses; malformed manifests and
unreadable files refused with one line that names the file and the field."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from tests.support.samples import SMALL
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.enums import Cell, Truncation, Whitespace
from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.manifest import Manifest, ModelConfig, from_json, sha256_file, to_json


@pytest.fixture
def bundle_copy(bundle_factory, tmp_path: Path) -> Path:
    src, _ = bundle_factory(cell="gru", **SMALL)
    return Path(shutil.copytree(src, tmp_path / "b"))


def _manifest(path: Path) -> dict:
    return json.loads((path / contract.MANIFEST_FILE).read_text(encoding="utf-8"))


def _write_manifest(path: Path, m: object) -> None:
    (path / contract.MANIFEST_FILE).write_text(json.dumps(m), encoding="utf-8")


def _rehash(path: Path, name: str) -> None:
    m = _manifest(path)
    m["files"][name] = sha256_file(path / name)
    _write_manifest(path, m)


def test_round_trip_is_exact(bundle_copy: Path) -> None:
    raw = _manifest(bundle_copy)
    m = Manifest.from_json(raw)
    assert m.to_json() == raw and Manifest.from_json(m.to_json()) == m
    assert m.model.cell is Cell.GRU and m.tokenizer.whitespace is Whitespace.KEEP
    # every key of the file is a field of the schema, and nothing derived is written
    assert set(raw) == {f.name for f in dataclasses.fields(Manifest)}
    assert set(raw["model"]) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_generic_codec_on_a_config() -> None:
    c = ModelConfig(vocab_size=9, cell="lstm", num_layers=2, bidirectional=True)
    assert from_json(ModelConfig, to_json(c)) == c and c.output_dim == 512
    with pytest.raises(ValueError, match="model.hidden_size: expected int, got str"):
        from_json(ModelConfig, {**to_json(c), "hidden_size": "256"}, "model")
    with pytest.raises(ValueError, match="model: hidden_size must be positive"):
        from_json(ModelConfig, {**to_json(c), "hidden_size": 0}, "model")
    with pytest.raises(ValueError, match="cell: unknown value 'transformer'"):
        ModelConfig(vocab_size=9, cell="transformer")


@pytest.mark.parametrize("value", [["keep_first"], {"keep": "first"}, 5, None])
def test_an_option_that_is_no_string_is_a_value_error_naming_it(value: object) -> None:
    # Truncation looks its aliases up in a dict: an unhashable value raised TypeError there.
    with pytest.raises(ValueError, match=r"^truncation: unknown value .*; choose one of none, "):
        Truncation.parse(value, "truncation")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: [m], "bundle.json: expected a JSON object, got list"),
        (lambda m: {**m, "model": "rnn"}, "bundle.json: model: expected object, got str"),
        (
            lambda m: {**m, "files": {**m["files"], "model.onnx": 7}},
            "bundle.json: files.model.onnx: expected str, got int 7",
        ),
        (lambda m: {**m, "extra": 1}, "bundle.json: extra: unknown field"),
        (lambda m: {k: v for k, v in m.items() if k != "graph"}, "bundle.json: graph: missing"),
        (
            lambda m: {**m, "tokenizer": {**m["tokenizer"], "hmm": "yes"}},
            "bundle.json: tokenizer.hmm: expected bool, got str",
        ),
        (
            lambda m: {**m, "format_version": 1},
            "v1, this runtime reads 'zh-rnn-encoder-bundle' v3",
        ),
    ],
)
def test_malformed_manifest_is_refused(bundle_copy: Path, mutate, message: str) -> None:
    _write_manifest(bundle_copy, mutate(_manifest(bundle_copy)))
    with pytest.raises(BundleError) as e:
        load_bundle(bundle_copy)
    assert len(e.value.problems) == 1 and message in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (contract.GOLDEN_ARRAYS_FILE, b"PK\x03\x04 truncated", "golden.npz: unreadable"),
        (contract.GOLDEN_TEXTS_FILE, b"{not json", "golden.json: unreadable"),
        (contract.GOLDEN_TEXTS_FILE, b"[1, 2]", "golden.json: unreadable"),
        (contract.VOCAB_FILE, b'"a string"', "vocab.json: unreadable"),
    ],
)
def test_unreadable_file_is_named(bundle_copy: Path, name: str, content: bytes, message) -> None:
    (bundle_copy / name).write_bytes(content)
    _rehash(bundle_copy, name)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)
