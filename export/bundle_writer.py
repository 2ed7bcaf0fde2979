"""Export a checkpoint to a verified model bundle: graph, vocabulary, golden samples, bundle.json.

``export_bundle`` is the one entry point (the CLI, the README and the tests call it): it writes
the bundle beside its destination, verifies it there and only then moves it into place, so a
bundle at ``out`` has always passed the checks it was asked for.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import onnx

from zh_rnn_encoder import __version__
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.core.enums import Formulation
from zh_rnn_encoder.core.manifest import (
    GoldenInfo,
    GraphInfo,
    Manifest,
    Quantization,
    TokenizerConfig,
    VocabInfo,
    sha256_file,
)
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.export import onnx_export, quantize
from zh_rnn_encoder.export.card import manifest_text
from zh_rnn_encoder.export.checkpoint import Checkpoint
from zh_rnn_encoder.export.golden import write_golden
from zh_rnn_encoder.export.verify import GRIDS, verify
from zh_rnn_encoder.runtime.encoder import Encoder


class Verify(StrEnum):
    """How much of verification runs before a bundle is moved into place."""

    FULL = "full"  # golden self-test in the runtime, then parity on the full grid (the bar)
    QUICK = "quick"  # golden self-test, then parity on a small grid
    NONE = "none"  # nothing: only for bundles that a test or a benchmark builds and checks itself


@dataclass(frozen=True)
class ExportReport:
    path: Path
    verify: Verify
    write_s: float
    bundle_sha256: str  # of bundle.json: what --expect-bundle-sha256 pins
    golden_max_abs_err: float | None = None
    parity_cases: int = 0
    parity_max_abs_err: float | None = None
    invariance_max_abs_err: float | None = None
    verify_s: float = 0.0
    quantization: Quantization | None = None  # --quantize: the int8 graph against the float one


def export_bundle(
    ckpt: Checkpoint,
    out: str | Path,
    verify_level: Verify | str = Verify.FULL,
    *,
    jieba_cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
    quantized: str | None = None,
    formulation: Formulation | str | None = None,
) -> ExportReport:
    """Write, verify and move into place; raises BundleError or VerificationError listing every
    problem, and then nothing is left at ``out`` (an older bundle there is kept).

    ``quantized`` ("int8" or "int8-weights", export/quantize.py) writes the quantized graph,
    checked against the float graph (the one verified against eager PyTorch), with its own
    goldens. ``formulation`` ("scan" or "native", export/onnx_export.py) writes the recurrence
    that way; None: the cell's default. ValueError for one the cell does not have."""
    level, out = Verify(verify_level), Path(out)
    form = onnx_export.formulation_for(ckpt.model.config, formulation)
    tmp = out.with_name(out.name + ".partial")
    t0 = time.perf_counter()
    try:
        graph, q = _write(ckpt, tmp, jieba_cache, quantized, level, form)
        written = time.perf_counter()
        digest = bundle_digest(tmp)
        report = ExportReport(out, level, written - t0, digest, quantization=q)
        if level is not Verify.NONE:
            report = _verify(ckpt, tmp, graph, level, jieba_cache, progress, report, form)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _verify(
    ckpt: Checkpoint,
    path: Path,
    graph: onnx.ModelProto,
    level: Verify,
    jieba_cache: Path | None,
    progress: Callable[[str], None] | None,
    report: ExportReport,
    formulation: Formulation,
) -> ExportReport:
    """The runtime's own start-up checks, then parity of the float graph against eager PyTorch
    on a grid."""
    t0 = time.perf_counter()
    enc = Encoder.from_bundle(path, threads=1, jieba_cache_dir=jieba_cache)
    parity = verify(
        graph, ckpt.model, progress=progress, formulation=formulation, **GRIDS[level.value]
    )
    return ExportReport(
        report.path,
        level,
        report.write_s,
        report.bundle_sha256,
        golden_max_abs_err=enc.golden_err,
        parity_cases=parity.cases,
        parity_max_abs_err=parity.max_abs_err,
        invariance_max_abs_err=parity.max_invariance_err,
        verify_s=time.perf_counter() - t0,
        quantization=report.quantization,
    )


def _write(
    ckpt: Checkpoint,
    tmp: Path,
    jieba_cache: Path | None,
    quantized: str | None,
    level: Verify,
    formulation: Formulation,
) -> tuple[onnx.ModelProto, Quantization | None]:
    """Writes the bundle's files; returns the float graph and, if quantized, how."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ckpt.vocab.save(tmp / contract.VOCAB_FILE)
    tok, user_dict_path = ckpt.tokenizer, None
    if tok.user_dict:
        user_dict_path = tmp / contract.USER_DICT_FILE
        user_dict_path.write_text(ckpt.user_dict or "", encoding="utf-8")
        tok = TokenizerConfig(tok.hmm, contract.USER_DICT_FILE, tok.whitespace, tok.jieba_version)
    graph = onnx_export.build_graph(ckpt.model, sha256_file(tmp / contract.VOCAB_FILE), formulation)
    served, q = graph, None
    if quantized:
        served, q = _quantize(graph, quantized, level)
    onnx.save(served, tmp / contract.GRAPH_FILE)
    own = served.SerializeToString() if q else None  # a quantized graph's goldens are its own
    write_golden(ckpt.model, Tokenizer(tok, user_dict_path, jieba_cache), ckpt.vocab, tmp, own)
    manifest = _manifest(ckpt, tok, tmp, q, formulation)
    (tmp / contract.MANIFEST_FILE).write_text(manifest_text(manifest), encoding="utf-8")
    return graph, q


def _quantize(
    graph: onnx.ModelProto, name: str, level: Verify
) -> tuple[onnx.ModelProto, Quantization]:
    """The quantized graph, checked against the float one on the level's grid (quick for none)."""
    q, opt = quantize.quantize_as(graph, name), quantize.OPTIONS[name]
    grid = GRIDS[Verify.FULL.value if level is Verify.FULL else Verify.QUICK.value]
    err, inv = quantize.check_against_float(
        graph, q, opt.float_atol, opt.invariance_atol, grid["batches"], grid["seqs"]
    )
    return q, Quantization(name, opt.method, err, opt.float_atol, inv, opt.invariance_atol)


def _manifest(
    ckpt: Checkpoint,
    tok: TokenizerConfig,
    bundle_dir: Path,
    q: Quantization | None,
    formulation: Formulation,
) -> Manifest:
    c, v = ckpt.model.config, ckpt.vocab
    files = sorted(p.name for p in bundle_dir.iterdir() if p.is_file())
    return Manifest(
        format=contract.BUNDLE_FORMAT,
        format_version=contract.BUNDLE_FORMAT_VERSION,
        model=c,
        tokenizer=tok,
        vocab=VocabInfo(contract.VOCAB_FILE, len(v), v.pad_id, v.unk_id),
        graph=GraphInfo(
            file=contract.GRAPH_FILE,
            opset=onnx_export.OPSET,
            inputs=contract.input_specs(c),
            outputs=contract.output_specs(c),
            dynamic_axes=(contract.BATCH_AXIS, contract.SEQ_AXIS),
            quantization=q,
            formulation=formulation,
        ),
        golden=GoldenInfo(  # a graph that is not batch invariant varies in the padded batch
            contract.GOLDEN_TEXTS_FILE,
            contract.GOLDEN_ARRAYS_FILE,
            max(contract.GOLDEN_ATOL, q.invariance_atol if q else 0.0),
        ),
        files={name: sha256_file(bundle_dir / name) for name in files},
        tools={**onnx_export.tool_versions(), "zh-rnn-encoder": __version__},
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        defaults=ckpt.defaults,
        card=ckpt.card,
    )
