"""pip's sources as pip itself reads them (`pip config list` in a child process): PIP_* variables
over [install] over [global]."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import pip_sources


def test_pip_variables_override_pip_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PIP_* beat [install], which beats [global], as in pip itself."""
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nfind-links = /g\nindex-url = /i\n[install]\nfind-links = /s\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    config = pip_sources.pip_config()
    assert config["find-links"] == "/s" and config["index-url"] == "/i"
    monkeypatch.setenv("PIP_FIND_LINKS", "/e1 /e2")
    assert pip_sources.pip_config()["find-links"] == "/e1 /e2"
