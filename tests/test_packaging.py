"""The runtime needs no torch; the generated protobuf code matches protos/."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from protos.generate import generate, generated_text
from tests.harness import ROOT

DIST = "zh-rnn-encoder"


def _closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Names of every installed distribution the base install of ``name`` pulls in."""
    seen, todo = set(), [(name, extras)]
    while todo:
        n, ex = todo.pop()
        key = re.sub(r"[-_.]+", "-", n).lower()
        if key in seen:
            continue
        seen.add(key)
        for r in metadata.requires(n) or []:
            req = Requirement(r)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *ex}):
                todo.append((req.name, frozenset(req.extras)))
    return seen


def test_base_install_does_not_pull_torch() -> None:
    runtime = _closure(DIST)
    assert {"onnxruntime", "jieba", "grpcio", "numpy"} <= runtime
    assert "torch" not in runtime and "onnx" not in runtime
    assert "torch" in _closure(DIST, frozenset({"export"}))  # the check can see torch at all


def test_serving_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; import pkgutil, importlib, serving; "
        "[importlib.import_module('serving.' + m.name) for m in "
        "pkgutil.iter_modules(serving.__path__)]; "
        "assert not [m for m, v in sys.modules.items() "
        "if v is not None and m.startswith(('torch', 'export'))]"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_no_torch_import_in_serving_sources() -> None:
    for p in (ROOT / "serving").rglob("*.py"):
        text = p.read_text(encoding="utf-8")
        assert not re.search(
            r"^\s*(import torch|from torch|from export|import export)", text, re.M
        ), p


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    generate(tmp_path)
    assert generated_text(tmp_path) == generated_text(ROOT / "serving" / "_proto"), (
        "serving/_proto is stale: run `make proto`"
    )
