import json
from pathlib import Path

import jieba
import pytest

from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.export.cli import main

SMALL_ARGS = ["--embedding-dim", "8", "--hidden-size", "8"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text("北京冬奥的进度条已经过半\n今天天气很好\n\n我们去公园吧\n", encoding="utf-8")
    return p


def test_step_by_step(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture) -> None:
    v, c, b = tmp_path / "v.json", tmp_path / "c.pt", tmp_path / "bundle"
    assert main(["vocab", "--corpus", str(corpus), "--out", str(v)]) == 0
    words = {
        w for line in corpus.read_text(encoding="utf-8").splitlines() for w in jieba.lcut(line)
    }
    assert json.loads(v.read_text(encoding="utf-8"))["size"] == 2 + len(words)
    assert main(["init", "--vocab", str(v), "--out", str(c), "--cell", "lstm", *SMALL_ARGS]) == 0
    assert main(["bundle", "--checkpoint", str(c), "--out", str(b), "--quick"]) == 0
    assert main(["verify", "--bundle", str(b), "--checkpoint", str(c), "--quick"]) == 0
    err = capsys.readouterr().err
    assert "parity ok" in err and "golden samples ok" in err
    assert load_bundle(b).model.cell == "lstm"


def test_build_with_user_dictionary(tmp_path: Path, corpus: Path) -> None:
    d = tmp_path / "words.txt"
    d.write_text("北京冬奥 1000 n\n", encoding="utf-8")
    out = tmp_path / "bundle"
    args = [
        "build",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--user-dict",
        str(d),
        "--whitespace",
        "drop",
        "--quick",
        *SMALL_ARGS,
    ]
    assert main(args) == 0
    b = load_bundle(out)
    assert b.tokenizer.user_dict == "user_dict.txt" and b.tokenizer.whitespace == "drop"
    assert "北京冬奥" in b.vocab.index
    assert "user_dict.txt" in b.file_hashes


def test_verify_reports_a_broken_bundle(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify", "--bundle", str(tmp_path)]) == 1
    assert "bundle.json: missing" in capsys.readouterr().err
