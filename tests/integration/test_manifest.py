"""encoder-serve refuses a malformed bundle.json at startup in one line, without a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.harness import ServerProcess
from tests.support.samples import SMALL
from zh_rnn_encoder.core import contract


@pytest.fixture
def bundle_copy(bundle_factory, tmp_path: Path) -> Path:
    src, _ = bundle_factory(cell="gru", **SMALL)
    return Path(shutil.copytree(src, tmp_path / "b"))


def test_server_refuses_a_malformed_manifest_in_one_line(bundle_copy: Path) -> None:
    path = bundle_copy / contract.MANIFEST_FILE
    path.write_text(json.dumps([json.loads(path.read_text(encoding="utf-8"))]), encoding="utf-8")
    proc = ServerProcess("--bundle", str(bundle_copy), "--listen", "127.0.0.1:0")
    assert proc.wait(60) == 2
    assert "bundle.json: expected a JSON object, got list" in proc.log
    assert "Traceback" not in proc.log
