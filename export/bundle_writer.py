"""Write a model bundle directory: graph, vocabulary, golden samples and bundle.json with hashes."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import onnx

from export import onnx_export
from export.checkpoint import Checkpoint
from export.golden import write_golden
from serving import contract
from serving.bundle import sha256_file
from serving.tokenizer import Tokenizer

VERSION = "0.1.0"


def write_bundle(ckpt: Checkpoint, out_dir: Path, jieba_cache: Path | None = None) -> Path:
    """Write the bundle into a sibling temporary directory, then move it into place whole."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ckpt.vocab.save(tmp / contract.VOCAB_FILE)
    user_dict_path = None
    if ckpt.tokenizer.user_dict:
        user_dict_path = tmp / contract.USER_DICT_FILE
        user_dict_path.write_text(ckpt.user_dict or "", encoding="utf-8")
    graph = onnx_export.build_graph(ckpt.model, sha256_file(tmp / contract.VOCAB_FILE))
    onnx.save(graph, tmp / contract.GRAPH_FILE)
    tokenizer = Tokenizer(ckpt.tokenizer, user_dict_path, jieba_cache)
    write_golden(ckpt.model, tokenizer, ckpt.vocab, tmp)
    manifest = _manifest(ckpt, tmp)
    (tmp / contract.MANIFEST_FILE).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def _manifest(ckpt: Checkpoint, bundle_dir: Path) -> dict:
    c, v = ckpt.model.config, ckpt.vocab
    tok = ckpt.tokenizer
    if tok.user_dict:
        tok = type(tok)(hmm=tok.hmm, user_dict=contract.USER_DICT_FILE, whitespace=tok.whitespace)
    files = sorted(p.name for p in bundle_dir.iterdir() if p.is_file())
    return {
        "format": contract.BUNDLE_FORMAT,
        "format_version": contract.BUNDLE_FORMAT_VERSION,
        "model": c.to_json(),
        "tokenizer": tok.to_json(),
        "vocab": {
            "file": contract.VOCAB_FILE,
            "size": len(v),
            "pad_id": v.pad_id,
            "unk_id": v.unk_id,
        },
        "graph": {
            "file": contract.GRAPH_FILE,
            "opset": onnx_export.OPSET,
            "inputs": [s.to_json() for s in contract.INPUTS],
            "outputs": [s.to_json() for s in contract.output_specs(c.output_dim)],
            "dynamic_axes": [contract.BATCH_AXIS, contract.SEQ_AXIS],
        },
        "golden": {
            "texts": contract.GOLDEN_TEXTS_FILE,
            "arrays": contract.GOLDEN_ARRAYS_FILE,
            "atol": contract.GOLDEN_ATOL,
        },
        "files": {name: sha256_file(bundle_dir / name) for name in files},
        "tools": {**onnx_export.tool_versions(), "zh-rnn-encoder": VERSION},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
