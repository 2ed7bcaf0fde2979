"""The README's Python examples run as they stand (paths pointed at temporary bundles)."""

from __future__ import annotations

import re

import pytest

from tests.support import ROOT


def block_after(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(heading)
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_tutorial_export_example(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(block_after("### Export the tutorial's model"), scope)
    assert scope["report"].parity_max_abs_err <= 1e-5
    assert (tmp_path / "bundles" / "tutorial" / "bundle.json").is_file()


def test_in_process_example(bundle_factory) -> None:
    code = block_after("### In process, without a server")
    assert '"bundles/default"' in code
    scope: dict = {}
    exec(code.replace('"bundles/default"', repr(str(bundle_factory()[0]))), scope)
    out = scope["out"][0]
    assert out.vector.shape == (256,) and out.token_vectors.shape == (len(out.tokens), 256)
