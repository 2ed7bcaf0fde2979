import json
from pathlib import Path

import jieba
import pytest
import torch
from torch import nn

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


class TutorialModel(nn.Module):
    """What a tutorial user saves: an embedding and a recurrent layer in one module."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.emb = nn.Embedding(len(WORDS), rnn.input_size)
        self.encoder = rnn


WORDS = {"北京": 0, "冬奥": 1, "的": 2, "进度条": 3, "[UNK]": 4}


def _import(tmp_path: Path, state: object, *extra: str) -> tuple[int, Path]:
    (tmp_path / "words.json").write_text(json.dumps(WORDS, ensure_ascii=False), encoding="utf-8")
    torch.save(state, tmp_path / "model.pt")
    out = tmp_path / "bundle"
    args = ["import", "--state-dict", str(tmp_path / "model.pt"), "--words"]
    rc = main([*args, str(tmp_path / "words.json"), "--out", str(out), "--quick", *extra])
    return rc, out


@pytest.mark.parametrize(
    "rnn",
    [
        lambda: nn.RNN(8, 6, nonlinearity="relu"),
        lambda: nn.LSTM(8, 6, num_layers=2, bidirectional=True, bias=False),
        lambda: nn.GRU(8, 6, batch_first=True),
    ],
    ids=["relu-rnn", "bilstm2-nobias", "gru"],
)
def test_import_from_a_state_dict(tmp_path: Path, capsys, rnn) -> None:
    torch.manual_seed(0)
    m = TutorialModel(rnn())
    extra = ["--nonlinearity", "relu"] if getattr(m.encoder, "nonlinearity", "") == "relu" else []
    rc, out = _import(tmp_path, m.state_dict(), *extra)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "parity ok" in err and "unknown token: '[UNK]' (row 4) found in the dict" in err
    b = load_bundle(out)
    c = b.model
    assert (c.hidden_size, c.embedding_dim, c.vocab_size) == (6, 8, 6)  # + <pad> appended
    assert (c.cell, c.num_layers, c.bidirectional, c.bias) == (
        {nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru"}[type(m.encoder)],
        m.encoder.num_layers,
        m.encoder.bidirectional,
        m.encoder.bias,
    )
    assert c.nonlinearity == getattr(m.encoder, "nonlinearity", "tanh")
    assert b.vocab.unk == "[UNK]" and b.vocab.index["进度条"] == 3


def test_import_refusals_name_the_key(tmp_path: Path, capsys) -> None:
    state = TutorialModel(nn.GRU(8, 6, num_layers=2)).state_dict()
    del state["encoder.weight_hh_l1"]
    assert _import(tmp_path, state)[0] == 1
    assert 'Missing key(s) in state_dict: "encoder.weight_hh_l1"' in capsys.readouterr().err
    state = TutorialModel(nn.GRU(8, 6)).state_dict()
    state["emb.weight"] = torch.zeros(5, 7)
    assert _import(tmp_path, state)[0] == 1
    assert "encoder.weight_ih_l0 takes inputs of 8, but emb.weight has 7" in capsys.readouterr().err
    state["other.weight"] = torch.zeros(3, 3)
    assert _import(tmp_path, state)[0] == 1
    assert "embedding weight: several" in capsys.readouterr().err
    lstm = TutorialModel(nn.LSTM(8, 6, proj_size=3)).state_dict()
    assert _import(tmp_path, lstm)[0] == 1
    assert "encoder.weight_hr_l0: an LSTM with proj_size" in capsys.readouterr().err


def test_import_a_whole_module_only_when_allowed(tmp_path: Path, capsys) -> None:
    m = TutorialModel(nn.GRU(8, 6))
    assert _import(tmp_path, m)[0] == 1
    assert "pass --allow-pickle if you trust the file" in capsys.readouterr().err
    rc, out = _import(tmp_path, m, "--allow-pickle")
    assert rc == 0 and load_bundle(out).model.cell == "gru"


def test_build_a_relu_rnn_without_bias(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "bundle"
    args = ["build", "--corpus", str(corpus), "--out", str(out), "--quick", *SMALL_ARGS]
    assert main([*args, "--nonlinearity", "relu", "--no-bias", "--layers", "2"]) == 0
    c = load_bundle(out).model
    assert (c.cell, c.nonlinearity, c.bias, c.num_layers) == ("rnn", "relu", False, 2)
    gru = ["--cell", "gru", "--nonlinearity", "relu"]
    assert main([*args, *gru]) == 1  # relu is nn.RNN's only
