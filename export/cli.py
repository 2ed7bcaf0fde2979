"""`encoder-export`: build a vocabulary, initialise a checkpoint, import the tutorial's saved
modules, export, verify, or all at once; write a bundle as a Triton model repository entry; set
a bundle's model-card quality figures."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import onnx

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.enums import Cell, Formulation, Nonlinearity, Whitespace
from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.manifest import ModelConfig, TokenizerConfig, sha256_file
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.export import checkpoint as ckpt_io
from zh_rnn_encoder.export import onnx_export, quantize, triton
from zh_rnn_encoder.export.bundle_writer import ExportReport, Verify, export_bundle
from zh_rnn_encoder.export.card import read_quality, set_quality
from zh_rnn_encoder.export.checkpoint import Checkpoint
from zh_rnn_encoder.export.model import init_model
from zh_rnn_encoder.export.state_import import load_state, modules_from_state
from zh_rnn_encoder.export.tutorial import checkpoint_from_modules
from zh_rnn_encoder.export.verify import GRIDS, VerificationError, verify
from zh_rnn_encoder.runtime.encoder import Encoder

DEFAULT_CORPUS = Path(__file__).parent / "data" / "corpus_zh.txt"


def log(msg: str) -> None:
    print(f"encoder-export: {msg}", file=sys.stderr, flush=True)


def _tokenizer_config(a: argparse.Namespace) -> TokenizerConfig:
    return TokenizerConfig(
        hmm=not a.no_hmm,
        user_dict=a.user_dict.name if a.user_dict else None,
        whitespace=a.whitespace,
    )


def _build_vocab(a: argparse.Namespace) -> Vocab:
    tok = Tokenizer(_tokenizer_config(a), a.user_dict)
    lines = Path(a.corpus).read_text(encoding="utf-8").splitlines()
    t0 = time.perf_counter()
    vocab = Vocab.build((tok.tokenize(x) for x in lines if x.strip()), a.min_freq, a.max_size)
    log(
        f"vocabulary: {len(vocab)} tokens from {len(lines)} lines in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    return vocab


def model_config(a: argparse.Namespace, vocab_size: int) -> ModelConfig:
    """The model flags (``_add_model_args``) as a ModelConfig."""
    return ModelConfig(
        vocab_size=vocab_size,
        cell=a.cell,
        embedding_dim=a.embedding_dim,
        hidden_size=a.hidden_size,
        num_layers=a.layers,
        bidirectional=a.bidirectional,
        nonlinearity=a.nonlinearity,
        bias=not a.no_bias,
    )


def _new_checkpoint(a: argparse.Namespace, vocab: Vocab) -> Checkpoint:
    config = model_config(a, len(vocab))
    user_dict = Path(a.user_dict).read_text(encoding="utf-8") if a.user_dict else None
    return Checkpoint(init_model(config, a.seed), vocab, _tokenizer_config(a), user_dict)


def _level(a: argparse.Namespace) -> Verify:
    return Verify.QUICK if a.quick else Verify.FULL


def _export(
    ckpt: Checkpoint,
    out: Path,
    level: Verify,
    quantized: str | None = None,
    formulation: str | None = None,
) -> None:
    report = export_bundle(
        ckpt, out, level, progress=log, quantized=quantized, formulation=formulation
    )
    _log_report(report)


def _log_report(r: ExportReport) -> None:
    log(f"wrote {r.path} in {r.write_s:.1f}s; pin it with --expect-bundle-sha256 {r.bundle_sha256}")
    log(f"{r.path}: hashes, graph I/O and golden samples ok (max err {r.golden_max_abs_err:.2e})")
    _log_parity(r.parity_cases, r.verify_s, r.parity_max_abs_err, r.invariance_max_abs_err)
    if q := r.quantization:
        log(
            f"{q.scheme} graph against the float graph: max abs err {q.float_max_abs_err:.2e} "
            f"(<= {q.float_atol:g}), batch invariance {q.invariance_max_abs_err:.2e} "
            f"(<= {q.invariance_atol:g}); its golden samples are its own outputs"
        )


def _log_parity(cases: int, seconds: float, err: float, invariance: float) -> None:
    bar = (
        f"<= {contract.PARITY_ATOL:g}"
        if err <= contract.PARITY_ATOL
        else f"over {contract.PARITY_ATOL:g} only where float64 eager shows float32 noise"
    )
    log(
        f"parity ok on {cases} shapes in {seconds:.1f}s: max abs err {err:.2e} ({bar}), "
        f"batch invariance {invariance:.2e} (<= {contract.BATCH_INVARIANCE_ATOL:g})"
    )


def _verify_bundle(path: Path, ckpt: Checkpoint | None, level: Verify) -> None:
    """An existing bundle: the runtime's start-up checks, then parity given the checkpoint."""
    enc = Encoder.from_bundle(path, threads=1)
    log(
        f"{path}: hashes, graph I/O and {len(enc.bundle.golden.texts)} golden samples ok "
        f"(max err {enc.golden_err:.2e}); bundle sha256 {enc.bundle.digest}"
    )
    if ckpt is None:
        return
    t0 = time.perf_counter()
    graph = onnx.load(path / contract.GRAPH_FILE)
    q, form = enc.bundle.manifest.graph.quantization, enc.bundle.manifest.graph.formulation
    if q:  # the float graph from the checkpoint against eager, the bundle's against it
        quantized = graph
        vocab_sha = sha256_file(path / contract.VOCAB_FILE)
        graph = onnx_export.build_graph(ckpt.model, vocab_sha, form)
    r = verify(graph, ckpt.model, progress=log, formulation=form, **GRIDS[level.value])
    _log_parity(r.cases, time.perf_counter() - t0, r.max_abs_err, r.max_invariance_err)
    if q:
        grid = GRIDS[level.value]
        err, inv = quantize.check_against_float(
            graph, quantized, q.float_atol, q.invariance_atol, grid["batches"], grid["seqs"]
        )
        log(
            f"{q.scheme} graph against the float graph: max abs err {err:.2e} "
            f"(<= {q.float_atol:g}), batch invariance {inv:.2e} (<= {q.invariance_atol:g})"
        )


def cmd_vocab(a: argparse.Namespace) -> None:
    _build_vocab(a).save(a.out)
    log(f"wrote {a.out}")


def cmd_init(a: argparse.Namespace) -> None:
    ckpt_io.save(_new_checkpoint(a, Vocab.load(a.vocab)), a.out)
    log(f"wrote {a.out}")


def cmd_bundle(a: argparse.Namespace) -> None:
    _export(ckpt_io.load(a.checkpoint), a.out, _level(a), a.quantize, a.formulation)


def cmd_verify(a: argparse.Namespace) -> None:
    _verify_bundle(a.bundle, ckpt_io.load(a.checkpoint) if a.checkpoint else None, _level(a))


def cmd_import(a: argparse.Namespace) -> None:
    state = load_state(a.state_dict, a.allow_pickle)
    embedding, rnn = modules_from_state(
        state, embedding_key=a.embedding_key, nonlinearity=a.nonlinearity
    )
    words = json.loads(Path(a.words).read_text(encoding="utf-8"))
    if not isinstance(words, dict):
        raise ValueError(f"{a.words}: expected a JSON object of word -> index")
    log(
        f"{a.state_dict}: {type(rnn).__name__}({rnn.input_size}, {rnn.hidden_size}, "
        f"num_layers={rnn.num_layers}, bidirectional={rnn.bidirectional}, bias={rnn.bias}), "
        f"embedding {embedding.num_embeddings} x {embedding.embedding_dim}"
    )
    tokenizer = _tokenizer_config(a)
    ckpt = checkpoint_from_modules(
        embedding, rnn, words, tokenizer, pad_token=a.pad_token, unk_token=a.unk_token
    )  # logs how the dict was mapped
    ckpt.user_dict = Path(a.user_dict).read_text(encoding="utf-8") if a.user_dict else None
    if a.checkpoint_out:
        ckpt_io.save(ckpt, a.checkpoint_out)
        log(f"wrote {a.checkpoint_out}")
    _export(ckpt, a.out, _level(a))


def cmd_build(a: argparse.Namespace) -> None:
    ckpt = _new_checkpoint(a, _build_vocab(a))
    if a.checkpoint_out:
        ckpt_io.save(ckpt, a.checkpoint_out)
        log(f"wrote {a.checkpoint_out}")
    _export(ckpt, a.out, _level(a), formulation=a.formulation)


def cmd_triton(a: argparse.Namespace) -> None:
    """Exit 2 when the bundle, the destination or an option is refused, as usage errors do."""
    try:
        dest = triton.write_repository(
            a.bundle, a.out, a.name, a.kind, a.max_batch_size, force=a.force
        )
    except (BundleError, FileExistsError, ValueError) as e:
        log(f"error: {e}")
        raise SystemExit(2) from None
    log(f"wrote {dest}; serve it with: tritonserver --model-repository {a.out}")


def cmd_random(a: argparse.Namespace) -> None:
    """The same architecture, vocabulary and tokenizer as a bundle, randomly initialised: the
    baseline that shows what training added (encoder-eval --bundle random-init=OUT)."""
    b = load_bundle(a.like)
    user_dict = b.user_dict_path.read_text(encoding="utf-8") if b.user_dict_path else None
    tok = b.tokenizer
    if tok.user_dict:
        tok = TokenizerConfig(tok.hmm, contract.USER_DICT_FILE, tok.whitespace, tok.jieba_version)
    ckpt = Checkpoint(init_model(b.model, a.seed), b.vocab, tok, user_dict)
    _export(ckpt, a.out, _level(a), formulation=b.manifest.graph.formulation)


def cmd_card(a: argparse.Namespace) -> None:
    quality = read_quality(a.quality, a.model)
    digest = set_quality(a.bundle, quality)
    log(
        f"{a.bundle}: model card quality set ({', '.join(quality) or 'none'}); "
        f"bundle.json changed, pin it with --expect-bundle-sha256 {digest}"
    )


def _add_tokenizer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-hmm", action="store_true", help="jieba without HMM for unseen words")
    p.add_argument("--user-dict", type=Path, help="jieba user dictionary, shipped in the bundle")
    p.add_argument(
        "--whitespace",
        choices=[w.value for w in Whitespace],
        default="keep",
        help="keep whitespace tokens (as jieba.lcut does) or drop them",
    )


def _add_vocab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="UTF-8, one text a line")
    p.add_argument("--min-freq", type=int, default=1)
    p.add_argument("--max-size", type=int, default=None, help="including <pad> and <unk>")
    _add_tokenizer_args(p)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cell", choices=[c.value for c in Cell], default="rnn")
    p.add_argument("--embedding-dim", type=int, default=128)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--nonlinearity", choices=[n.value for n in Nonlinearity], default="tanh")
    p.add_argument("--no-bias", action="store_true", help="recurrent layers without biases")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed")


def _add_formulation_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--formulation",
        choices=[f.value for f in Formulation],
        help="how the recurrence is written: scan (the rnn's default, faster on CPU) or native "
        "(the op of each cell, cuDNN on CUDA; the only one for lstm and gru); docs/exporter.md",
    )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="encoder-export", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("vocab", help="build a vocabulary from a corpus")
    _add_vocab_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_vocab)
    p = sub.add_parser("init", help="initialise a checkpoint from a vocabulary and a seed")
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    _add_model_args(p)
    _add_tokenizer_args(p)
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("bundle", help="export a checkpoint to a verified bundle")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="verify on a small grid")
    p.add_argument(
        "--quantize",
        choices=sorted(quantize.OPTIONS),
        help="serve an int8 graph made from the verified one: int8 (faster for rnn and lstm, "
        "not batch invariant) or int8-weights (smaller only); docs/exporter.md",
    )
    _add_formulation_arg(p)
    p.set_defaults(func=cmd_bundle)
    p = sub.add_parser("verify", help="check a bundle; with --checkpoint, parity against eager")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--quick", action="store_true", help="verify on a small grid")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser(
        "import", help="a verified bundle from a saved state_dict and a word->index JSON"
    )
    p.add_argument("--state-dict", type=Path, required=True, help="torch.save'd state_dict")
    p.add_argument("--words", type=Path, required=True, help='JSON {"word": index, ...}')
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--embedding-key", help="the embedding weight's key, if not found alone")
    p.add_argument(
        "--nonlinearity",
        choices=[n.value for n in Nonlinearity],
        default="tanh",
        help="of an nn.RNN (shapes cannot tell)",
    )
    p.add_argument("--pad-token", help="the dict's padding word (default: found by name)")
    p.add_argument("--unk-token", help="the dict's unknown word (default: found by name)")
    p.add_argument("--allow-pickle", action="store_true", help="load a whole pickled module")
    p.add_argument("--checkpoint-out", type=Path, help="also keep the checkpoint here")
    p.add_argument("--quick", action="store_true", help="verify on a small grid")
    _add_tokenizer_args(p)
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("build", help="vocabulary + seeded model + bundle in one step")
    _add_vocab_args(p)
    _add_model_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint-out", type=Path, help="also keep the checkpoint here")
    p.add_argument("--quick", action="store_true", help="verify on a small grid")
    _add_formulation_arg(p)
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("triton", help="a bundle as a Triton model repository (onnxruntime backend)")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the model repository")
    p.add_argument("--name", default=triton.DEFAULT_NAME, help="the model's name and directory")
    p.add_argument("--kind", choices=[k.value for k in triton.Kind], default="cpu")
    p.add_argument("--max-batch-size", type=int, default=triton.DEFAULT_MAX_BATCH_SIZE)
    p.add_argument("--force", action="store_true", help="replace an existing OUT/NAME")
    p.set_defaults(func=cmd_triton)
    p = sub.add_parser(
        "card", help="set a bundle's model-card quality figures (after encoder-eval)"
    )
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument(
        "--quality",
        type=Path,
        required=True,
        help='encoder-eval\'s quality.json, {"quality": {metric: number}} or {metric: number}',
    )
    p.add_argument("--model", default="", help="the model's name in quality.json (default: first)")
    p.set_defaults(func=cmd_card)
    p = sub.add_parser("random", help="a bundle's architecture and vocabulary, untrained")
    p.add_argument("--like", type=Path, required=True, help="the bundle to copy")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0, help="initialisation seed")
    p.add_argument("--quick", action="store_true", help="verify on a small grid")
    p.set_defaults(func=cmd_random)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)  # the library's notes, in this CLI's voice
    handler.setFormatter(logging.Formatter("encoder-export: %(message)s"))
    library_log = logging.getLogger("encoder.export")
    library_log.addHandler(handler)
    library_log.setLevel(logging.INFO)
    try:
        a.func(a)
    except (BundleError, VerificationError, ValueError, TypeError, OSError) as e:
        log(f"error: {e}")
        return 1
    finally:
        library_log.removeHandler(handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
