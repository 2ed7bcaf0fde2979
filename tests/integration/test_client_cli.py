"""`encoder-client` against a real server: JSON lines out, statuses as exit codes."""

from __future__ import annotations

import io
import json

import pytest

from tests.support.harness import InProcessServer
from tests.support.samples import SMALL, TUTORIAL, TUTORIAL_TOKENS
from zh_rnn_encoder.client.cli import main


@pytest.fixture(scope="module")
def target(bundle_factory, jieba_cache):
    srv = InProcessServer(bundle_factory(cell="gru", **SMALL)[0], jieba_cache).load()
    yield srv.target
    srv.stop()


def lines(capsys: pytest.CaptureFixture) -> list[dict]:
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_encode_arguments(target, capsys) -> None:
    assert main(["--target", target, "encode", TUTORIAL, "你好", "--token-vectors"]) == 0
    out = lines(capsys)
    assert [o["text"] for o in out] == [TUTORIAL, "你好"]
    assert out[0]["tokens"] == TUTORIAL_TOKENS and len(out[0]["vector"]) == 24
    assert len(out[0]["token_vectors"]) == 19


def test_encode_stdin_in_batches(target, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("今天天气很好\n\n我们去公园吧\n你好\n"))
    assert main(["--target", target, "encode", "--batch", "2", "--normalize"]) == 0
    out = lines(capsys)
    assert [o["text"] for o in out] == ["今天天气很好", "我们去公园吧", "你好"]
    assert all(abs(sum(v * v for v in o["vector"]) - 1) < 1e-4 for o in out)


def test_tokenize_info_health(target, capsys) -> None:
    assert main(["--target", target, "tokenize", TUTORIAL]) == 0
    assert lines(capsys)[0]["tokens"] == TUTORIAL_TOKENS
    assert main(["--target", target, "info"]) == 0
    info = lines(capsys)[0]
    assert info["cell"] == "gru" and info["pad_id"] == 0 and info["output_dim"] == 24
    assert main(["--target", target, "health"]) == 0
    assert lines(capsys)[0]["status"] == "SERVING"


def test_errors_are_reported_with_their_status(target, capsys) -> None:
    assert main(["--target", target, "encode", "   "]) == 2
    assert "INVALID_ARGUMENT: texts[0]" in capsys.readouterr().err
    assert main(["--target", "127.0.0.1:1", "--timeout", "2", "health"]) == 2
    assert "UNAVAILABLE" in capsys.readouterr().err
