"""The install: the base install pulls no torch, serving imports where torch cannot, the HTTP
transport where grpc cannot, the client where onnxruntime and jieba cannot; one installed import
name; generated protobuf code that matches protos/."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from protos.generate import generate, generated_text
from tests.support import ROOT
from tests.support.harness import InProcessServer

DIST = "zh-rnn-encoder"
PKG = "zh_rnn_encoder"
SERVING, EXPORT = ROOT / "serving", ROOT / "export"
GRPC = {"grpc", "grpc_health", "grpc_reflection"}


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


def test_http_transport_imports_without_grpc() -> None:
    """The OpenAI API and its listener import and build where grpc is absent."""
    pytest.importorskip("uvicorn")
    _run_blocked(
        sorted(GRPC),
        "from zh_rnn_encoder.transport.openai.api import OpenAIApi\n"
        "from zh_rnn_encoder.transport.openai.http_server import HttpServer\n"
        "from zh_rnn_encoder.runtime.models import Models\n"
        "from zh_rnn_encoder.transport.serving_state import ServingState\n"
        "api = OpenAIApi(ServingState(Models(['m'])), 1 << 20, [])\n"
        "HttpServer(api)\n"
        "assert api.on_headers('POST', '/v1/embeddings', None, 10) is None\n"
        "assert not [m for m in sys.modules if m.partition('.')[0] in BLOCKED]\n",
    )


def test_base_install_does_not_pull_torch() -> None:
    runtime = _closure(DIST)
    assert {"onnxruntime", "jieba", "grpcio", "numpy"} <= runtime
    assert "torch" not in runtime and "onnx" not in runtime
    assert "torch" in _closure(DIST, frozenset({"export"}))  # the check can see torch at all


# A finder that refuses the blocked names, as an install without them would. Not
# sys.modules[name] = None: scipy (under scikit-learn, zh_rnn_encoder.eval) takes a name present
# there for an imported torch and fails on the None.
_BLOCKER = """import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, _Blocked())
"""


def _run_blocked(blocked: list[str], code: str) -> None:
    prelude = f"BLOCKED = {set(blocked)!r}\n" + _BLOCKER
    subprocess.run([sys.executable, "-c", prelude + code], cwd="/", check=True)


def test_serving_imports_without_torch() -> None:
    _run_blocked(
        ["torch"],
        "import pkgutil, importlib, zh_rnn_encoder as z\n"
        "skip = ('zh_rnn_encoder.export',)\n"
        "for m in pkgutil.walk_packages(z.__path__, 'zh_rnn_encoder.'):\n"
        "    if not m.name.startswith(skip): importlib.import_module(m.name)\n"
        "z.Encoder\n"
        "assert not [m for m, v in sys.modules.items() if v is not None\n"
        "            and m.startswith(('torch', 'zh_rnn_encoder.export'))]\n",
    )


def test_client_works_without_onnxruntime_or_jieba(bundle_factory, jieba_cache) -> None:
    """Imported and used against a real server where onnxruntime, jieba and rjieba fail."""
    srv = InProcessServer(bundle_factory()[0], jieba_cache).load()
    try:
        _run_blocked(
            ["onnxruntime", "jieba", "rjieba", "torch"],
            "from zh_rnn_encoder.client import EncoderClient, Encoded\n"
            "import zh_rnn_encoder.client.cli\n"
            f"with EncoderClient({srv.target!r}) as c:\n"
            "    e = c.encode(['北京冬奥的进度条已经过半'], pooling='mean')[0]\n"
            "    assert type(e) is Encoded and e.vector.shape == (256,), e\n"
            "    assert c.tokenize(['你好'])[0].tokens == ['你好']\n"
            "    assert c.health() == 'SERVING'\n",
        )
    finally:
        srv.stop()


def test_one_installed_import_name() -> None:
    """The folders install as zh_rnn_encoder only, and every package folder is listed."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    st = cfg["setuptools"]
    assert {p.split(".")[0] for p in st["packages"]} == {PKG}
    dirs = {SERVING: PKG, EXPORT: f"{PKG}.export"}
    found = {
        ".".join([name, *p.parent.relative_to(root).parts])
        for root, name in dirs.items()
        for p in root.rglob("__init__.py")
        if not (root == SERVING and p.is_relative_to(EXPORT))
    }
    assert set(st["packages"]) == found
    # outside the checkout, the folder names are not importable: nothing generic was installed
    _run_blocked(
        [],
        "import importlib.util as u\n"
        "assert u.find_spec('zh_rnn_encoder.export') is not None\n"
        "assert u.find_spec('serving') is None and u.find_spec('export') is None\n",
    )


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    generate(tmp_path)
    assert generated_text(tmp_path) == generated_text(SERVING / "proto"), (
        "serving/proto is stale: run `make proto`"
    )
