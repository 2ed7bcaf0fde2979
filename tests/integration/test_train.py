"""encoder-train end to end: it learns, it resumes after SIGKILL to the same result, it refuses bad
input naming file, line and field and writes nothing, and its checkpoint exports and serves."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT

POS = ["喜欢", "满意", "推荐", "很棒", "舒服", "漂亮"]
NEG = ["失望", "糟糕", "退货", "难用", "生气", "后悔"]
FILLER = ["这个", "东西", "我们", "今天", "手机", "衣服", "价格", "朋友", "快递", "颜色"]
SMALL = ["--embedding-dim", "16", "--hidden-size", "24", "--threads", "1", "--no-progress"]
FAST = ["--batch-size", "16", "--lr", "0.01"]
RUN = ["--epochs", "6", "--save-every", "3", "--cell", "gru", *SMALL, *FAST]


def toy(path: Path, n: int, seed: int = 0) -> Path:
    """Texts whose label is told by one sentiment word among fillers."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = rng.sample(FILLER, 4) + [rng.choice(POS if label == "pos" else NEG)]
        rng.shuffle(words)
        rows.append({"text": "".join(words) + "。", "label": label})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


CLI = [sys.executable, "-m", "zh_rnn_encoder.export.training.cli"]


def train(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(r.stderr)
    return r


def metrics(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "train_texts_per_s")} for r in rows]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toy")
    return {"train": toy(d / "train.jsonl", 600, 0), "valid": toy(d / "valid.jsonl", 120, 1)}


def toy_run(data: dict[str, Path], out: Path) -> list[object]:
    """The GRU run on the toy data that the learning and resume tests share."""
    return ["--train", data["train"], "--valid", data["valid"], "--out", out, *RUN]


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "a"
    train(*toy_run(data, out))
    return out


def test_learns_a_separable_task(trained: Path) -> None:
    rows = metrics(trained)
    assert max(r["valid_accuracy"] for r in rows) >= 0.95, rows
    assert (trained / "curves.png").stat().st_size > 1000
    assert {"train_supervised", "train_bow", "valid_loss"} <= set(rows[0])


def test_resume_after_sigkill_gives_the_same_result(
    trained: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    args = toy_run(data, out)
    cmd = [*CLI, *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / "train-state.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.02)  # wait for the first epoch, then kill inside the second
    mtime = state.stat().st_mtime_ns
    while time.monotonic() < deadline and state.stat().st_mtime_ns == mtime:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "checkpoint.pt").exists()
    r = train(*args, "--resume")
    assert "resumed at epoch 2, step" in r.stderr and "step 0" not in r.stderr, r.stderr
    assert metrics(out) == metrics(trained)
    import torch

    a = torch.load(trained / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_exports_with_its_defaults_and_card(trained: Path, tmp_path: Path) -> None:
    from zh_rnn_encoder.export import checkpoint as ckpt_io
    from zh_rnn_encoder.export import export_bundle
    from zh_rnn_encoder.runtime.encoder import Encoder

    ckpt = ckpt_io.load(trained / "checkpoint.pt")
    assert ckpt.defaults.pooling == "mean" and ckpt.defaults.normalize
    assert ckpt.card.objective == "supervised:1+bow:1" and ckpt.card.examples["train"] == 600
    assert ckpt.card.data[0].file.endswith("train.jsonl") and len(ckpt.card.data[0].sha256) == 64
    export_bundle(ckpt, tmp_path / "bundle", "quick")
    enc = Encoder.from_bundle(tmp_path / "bundle", threads=1)
    v = enc.encode(["我很喜欢这个东西"])[0].vector
    explicit = enc.encode(["我很喜欢这个东西"], pooling="mean", normalize=True)[0].vector
    assert (v == explicit).all() and abs(float((v**2).sum()) - 1) < 1e-5
    assert enc.info.card == ckpt.card


@pytest.mark.parametrize("objective", ["bow", "contrastive"])
def test_unsupervised_objectives_on_plain_text(objective: str, tmp_path: Path) -> None:
    lines = [json.loads(x)["text"] for x in toy(tmp_path / "t.jsonl", 200).read_text().splitlines()]
    (tmp_path / "plain.txt").write_text("\n".join(lines) + "\n", "utf-8")
    out = tmp_path / "run"
    train(
        "--train",
        tmp_path / "plain.txt",
        "--label-field",
        "",
        "--objective",
        objective,
        "--out",
        out,
        "--epochs",
        "2",
        *SMALL,
    )
    rows = metrics(out)
    assert len(rows) == 2 and f"train_{objective}" in rows[0] and "valid_accuracy" not in rows[0]
    assert rows[1]["valid_loss"] < rows[0]["valid_loss"] * 1.05


BAD = {
    "empty text": ('{"text": "", "label": "pos"}\n', "bad.jsonl:2: field 'text' is empty"),
    "blank text": ('{"text": "  ", "label": "pos"}\n', "bad.jsonl:2: field 'text' is empty"),
    "no label": ('{"text": "很好"}\n', "bad.jsonl:2: field 'label' is missing"),
    "not json": ("{oops\n", "bad.jsonl:2: not JSON"),
    "undecodable": (b"\xff\xfe\n", "bad.jsonl:2: not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_line_and_field(case: str, tmp_path: Path) -> None:
    body, want = BAD[case]
    good = b'{"text": "\xe5\xa5\xbd", "label": "neg"}\n'
    (tmp_path / "bad.jsonl").write_bytes(
        good + (body if isinstance(body, bytes) else body.encode())
    )
    r = train("--train", tmp_path / "bad.jsonl", "--out", tmp_path / "out", *SMALL, check=False)
    assert r.returncode == 2 and want in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_one_class_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("text,label\n很好,pos\n不错,pos\n", "utf-8")
    r = train("--train", one, "--out", tmp_path / "o1", *SMALL, check=False)
    assert r.returncode == 2 and "one class only ('pos')" in r.stderr, r.stderr
    r = train("--train", tmp_path, "--out", tmp_path / "o2", *SMALL, check=False)
    assert r.returncode == 2 and "no such file, or not a file" in r.stderr, r.stderr
    r = train("--train", one, "--label-field", "y", "--out", tmp_path / "o3", *SMALL, check=False)
    assert r.returncode == 2 and "one.csv:2: field 'y' is missing" in r.stderr, r.stderr
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def test_supervised_contrastive_term(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--train", data["train"], "--valid", data["valid"], "--out", out, *SMALL, *FAST]
    train(*args, "--objective", "supervised+supcon:0.5", "--epochs", "3", "--final-lr", "0.1")
    rows = metrics(out)
    assert rows[-1]["train_supcon"] < rows[0]["train_supcon"] and "train_bow" not in rows[0]
    r = train(*args, "--objective", "supcon+oops", "--epochs", "1", check=False)
    assert r.returncode == 1 and "unknown term 'oops'" in r.stderr


def test_composed_word_vectors_are_a_word_and_its_characters() -> None:
    import torch
    from torch import nn

    from zh_rnn_encoder.core.vocab import Vocab
    from zh_rnn_encoder.export.training.compose import Composed, char_dropout

    vocab = Vocab(["<pad>", "<unk>", "喜欢", "满意", "。"])
    emb = Composed(nn.Embedding(len(vocab), 4), vocab, seed=0)
    again = Composed(emb.word, vocab, seed=0)
    assert torch.equal(emb.chars.weight, again.chars.weight)
    W, C, ix = emb.word.weight, emb.chars.weight, emb.char_index
    table = emb.table().detach()
    assert table.shape == (10, 4)
    assert torch.allclose(table[2], (W[2] + C[ix["喜"]] + C[ix["欢"]]) / 3)
    assert torch.allclose(table[5 + 2], (C[ix["喜"]] + C[ix["欢"]]) / 2)
    assert torch.allclose(table[1], W[1]) and torch.allclose(table[5 + 1], torch.zeros(4))
    plain, extended = emb.export(vocab, ["满欢"])
    assert extended.tokens[-1] == "满欢" and plain.weight.shape == (6, 4)
    assert torch.allclose(plain.weight[5], (C[ix["满"]] + C[ix["欢"]]) / 2)
    assert torch.allclose(plain.weight[:5], table[:5])
    assert emb.spellable("欢喜") and not emb.spellable("好") and not emb.spellable("")
    ids = torch.tensor([[2, 3, 4, 1, 0, 0]] * 200)
    noisy = char_dropout(ids, 0.5, 5, (1, 0))
    assert ((noisy == ids) | (noisy == ids + 5)).all() and (noisy != ids).any()
    assert (noisy[:, 3:] == ids[:, 3:]).all()  # <unk> and <pad> have no characters


def test_composed_run_learns_and_exports_dictionary_words(
    data: dict[str, Path], tmp_path: Path
) -> None:
    from zh_rnn_encoder.export import checkpoint as ckpt_io
    from zh_rnn_encoder.export import export_bundle
    from zh_rnn_encoder.runtime.encoder import Encoder

    out = tmp_path / "run"
    args = ["--train", data["train"], "--valid", data["valid"], "--out", out, *SMALL, *FAST]
    compose = ["--compose", "--char-dropout", "0.2", "--dictionary-words", "100"]
    train(*args, "--cell", "rnn", "--epochs", "4", *compose)
    assert max(r["valid_accuracy"] for r in metrics(out)) >= 0.95
    again = [tmp_path / "again" if x == out else x for x in args]
    train(*again, "--cell", "rnn", "--epochs", "1", *compose)
    assert metrics(tmp_path / "again")[0] == metrics(out)[0]  # deterministic for a seed
    trained = json.loads((out / "vocab.json").read_text("utf-8"))["tokens"]
    ckpt = ckpt_io.load(out / "checkpoint.pt")
    extra = ckpt.vocab.tokens[len(trained) :]
    assert ckpt.vocab.tokens[: len(trained)] == trained and len(extra) == 100
    chars = {c for t in trained[2:] for c in t}
    assert not set(extra) & set(trained) and all(set(w) <= chars for w in extra)
    assert ckpt.model.embedding.weight.shape[0] == len(ckpt.vocab)
    assert "100 words of jieba's dictionary" in ckpt.card.notes
    export_bundle(ckpt, tmp_path / "bundle", "quick")
    enc = Encoder.from_bundle(tmp_path / "bundle", threads=1)
    served = [t for t in enc.tokenize(extra) if len(t.tokens) == 1 and len(t.tokens[0]) == 2]
    assert served and all(t.unknown == 0 for t in served)
    assert [int(t.ids[0]) for t in served] == [ckpt.vocab.index[t.tokens[0]] for t in served]


def test_distillation_from_the_tfidf_teacher(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--train", data["train"], "--valid", data["valid"], "--out", out, *SMALL, *FAST]
    r = train(
        *args,
        "--cell",
        "rnn",
        "--epochs",
        "3",
        "--objective",
        "supervised+distill",
        "--teacher",
        "tfidf",
        "--crop",
        "0.3",
    )
    rows = metrics(out)
    assert max(x["valid_accuracy"] for x in rows) >= 0.95, rows
    assert all(0 < x["train_distill"] < 10 for x in rows), rows  # T^2 x cross-entropy, 2 classes
    assert "teacher tfidf: 717 texts scored" in r.stderr, r.stderr  # the toy's distinct texts
    for objective, teacher, says in [
        ("supervised+distill", [], "objective 'distill' and --teacher go together"),
        ("supervised", ["--teacher", "tfidf"], "objective 'distill' and --teacher go together"),
        ("bow+distill", ["--teacher", "tfidf"], "'distill' trains the supervised head"),
    ]:
        bad = [tmp_path / "bad" if x == out else x for x in args]
        r = train(*bad, "--objective", objective, *teacher, "--epochs", "1", check=False)
        assert r.returncode == 2 and says in r.stderr, r.stderr
        assert not (tmp_path / "bad").exists()


def test_teacher_scores_train_out_of_fold() -> None:
    """A training text's soft label comes from a fold that never saw it. Here each text's label
    is random and told only by a number unique to that text: a teacher that had seen a text
    would give its label almost all the probability; out of fold it can only guess."""
    import numpy as np

    from zh_rnn_encoder.core.tokenizer import Tokenizer
    from zh_rnn_encoder.export.training.teacher import soft_labels

    rng = random.Random(0)

    def rows(n: int, offset: int) -> list[tuple[str, str]]:
        out = []
        for i in range(n):
            words = rng.sample(FILLER, 4) + [str(70000 + offset + i)]
            out.append(("".join(words), rng.choice(["neg", "pos"])))
        return out

    train, valid = rows(300, 0), rows(60, 1000)
    soft = soft_labels(train, valid, ["neg", "pos"], Tokenizer(), seed=0)
    assert set(soft) == {t for t, _ in train} | {t for t, _ in valid}
    probs = np.exp(np.stack(list(soft.values())))
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and probs.shape[1] == 2
    right = np.exp([soft[t][["neg", "pos"].index(y)] for t, y in train])
    assert right.mean() < 0.6, right.mean()  # in fold, C=100 would give about 1.0


def test_crop_keeps_a_span_of_each_text() -> None:
    import torch

    from zh_rnn_encoder.export.training.objectives import CROP_MIN_TOKENS, crop

    torch.manual_seed(0)
    lengths = torch.tensor([12, 3, 7, 1] * 50)
    ids = torch.zeros(len(lengths), 12, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        ids[i, :n] = torch.arange(1, n + 1) + 100 * i
    same, same_len = crop(ids, lengths, 0.0, 0)
    assert torch.equal(same, ids) and torch.equal(same_len, lengths)
    out, span = crop(ids, lengths, 1.0, 0)
    assert (span <= lengths).all() and (span >= lengths.clamp(max=CROP_MIN_TOKENS)).all()
    assert (span < lengths).any()
    for i in range(len(lengths)):
        n, s = int(lengths[i]), int(span[i])
        row = out[i, :s]
        assert (row[1:] - row[:-1] == 1).all() and int(row[0]) - 100 * i >= 1  # contiguous
        assert int(row[-1]) - 100 * i <= n and (out[i, s:] == 0).all()


def test_every_make_quality_run_is_a_valid_set_of_flags() -> None:
    """make quality adds each cell's flags to the Makefile's TRAIN_ARGS; each combination must
    pass encoder-train's flag checks (a bow ablation once asked for 'supervised' beside the
    recipe's --teacher, and make quality stopped there)."""
    import re
    import shlex

    from zh_rnn_encoder.export.training.cli import check_flags, parser
    from zh_rnn_encoder.export.training.quality import CELLS

    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^TRAIN_ARGS \?= ((?:.*\\\n)*.*)$", make, re.M)
    assert recipe, "TRAIN_ARGS not found in the Makefile"
    args = shlex.split(recipe.group(1).replace("\\\n", " "))
    assert "--teacher" in args
    for name, flags in CELLS.items():
        a = parser().parse_args(["--data", "default", "--out", "x", *args, *flags])
        assert check_flags(a), name


def test_model_flags_that_cannot_go_together_are_refused_before_any_data() -> None:
    """The recipe's relu belongs to the rnn cell: a GRU asked for with it is refused at once,
    by name, not after the survey and the teacher have run."""
    from zh_rnn_encoder.data.records import DataError
    from zh_rnn_encoder.export.training.cli import check_flags, parser

    base = ["--data", "default", "--out", "x", "--objective", "supervised"]
    a = parser().parse_args([*base, "--cell", "gru", "--nonlinearity", "relu"])
    with pytest.raises(DataError, match=r"model flags: nonlinearity relu is for the rnn cell"):
        check_flags(a)
    a = parser().parse_args([*base, "--cell", "rnn", "--nonlinearity", "relu"])
    assert check_flags(a) == {"supervised": 1.0}
