"""The install and the layers: what each layer may import, torch-free serving, a lean client,
one installed import name, and generated protobuf code that matches protos/."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from protos.generate import generate, generated_text
from tests.harness import ROOT

DIST = "zh-rnn-encoder"
PKG = "zh_rnn_encoder"
SERVING, EXPORT = ROOT / "serving", ROOT / "export"

# layer (a folder under serving/, or a module there) -> top-level names it must never import
FORBIDDEN = {
    "core": {"torch", "grpc", "grpc_health", "grpc_reflection", "onnxruntime", "onnx"},
    "runtime": {"torch", "grpc", "grpc_health", "grpc_reflection", "onnx"},
    "client": {"torch", "onnxruntime", "onnx", "jieba", "rjieba"},
    "proto_convert": {"torch", "onnxruntime", "onnx", "jieba", "rjieba", "grpc"},
    "bulk": {"torch", "onnx", "grpc", "grpc_health", "grpc_reflection"},
    "eval": {"torch", "grpc", "grpc_health", "grpc_reflection"},
    "data": {"torch", "grpc", "onnxruntime", "onnx"},
}
# layer -> layers of ours it must never import (inner layers never reach outer ones)
FORBIDDEN_OURS = {
    "core": {"runtime", "transport", "client", "export", "proto_convert", "bulk", "eval", "data"},
    "runtime": {"transport", "client", "export", "proto_convert", "bulk", "eval"},
    "client": {"runtime", "transport", "export", "core.tokenizer", "core.bundle"},
    "proto_convert": {"runtime", "transport", "client", "export"},
    "transport": {"client", "export", "bulk", "eval"},
    "bulk": {"transport", "client", "export", "eval"},
    "eval": {"transport", "client", "export", "bulk"},
    "data": {"runtime", "transport", "client", "export", "proto_convert", "bulk", "eval"},
}
# The HTTP transport (OpenAI API) and every module of ours it reaches never import these.
HTTP = SERVING / "transport" / "openai"
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


def _module_name(path: Path) -> str:
    """The dotted name a source file is imported as."""
    if path.is_relative_to(EXPORT):
        parts = [PKG, "export", *path.relative_to(EXPORT).with_suffix("").parts]
    elif path.is_relative_to(SERVING):
        parts = [PKG, *path.relative_to(SERVING).with_suffix("").parts]
    else:  # bench, tests, protos: importable from the checkout under their folder names
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute dotted names imported by a file, wherever in it (lazy imports count too)."""
    out, here = set(), _module_name(path).split(".")
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _sources(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if "proto" not in p.relative_to(root).parts[:1]]


def _layer(path: Path) -> str:
    return path.relative_to(SERVING).parts[0].removesuffix(".py")


def test_layers_import_only_what_they_may() -> None:
    problems = []
    for path in _sources(SERVING):
        layer, names = _layer(path), _imports(path)
        tops = {n.split(".")[0] for n in names}
        ours = {n[len(PKG) + 1 :] for n in names if n.startswith(PKG + ".")}
        for bad in sorted(tops & FORBIDDEN.get(layer, set())):
            problems.append(f"{path.relative_to(ROOT)} ({layer}) imports {bad}")
        for bad in sorted(FORBIDDEN_OURS.get(layer, set())):
            if any(o == bad or o.startswith(bad + ".") for o in ours):
                problems.append(f"{path.relative_to(ROOT)} ({layer}) imports {PKG}.{bad}")
    assert problems == []


def test_nothing_imports_export_bench_tests_or_the_folder_names() -> None:
    """serving/ never reaches export, bench or tests (nor torch); nothing anywhere imports the
    folder names `serving` or `export`, which are not installed import names."""
    problems = []
    for path in _sources(SERVING):
        tops = {n.split(".")[0] for n in _imports(path)}
        ours = {n for n in _imports(path) if n.startswith(f"{PKG}.export")}
        if tops & {"torch", "bench", "tests", "export", "serving"} or ours:
            problems.append(str(path.relative_to(ROOT)))
    for root in (EXPORT, ROOT / "bench", ROOT / "tests", ROOT / "protos"):
        for path in root.rglob("*.py"):
            tops = {n.split(".")[0] for n in _imports(path)}
            if tops & {"serving", "export"}:
                problems.append(str(path.relative_to(ROOT)))
    assert problems == []


def test_the_import_direction_check_can_fail(tmp_path: Path) -> None:
    """The checker itself sees a forbidden import, lazy or relative."""
    bad = SERVING / "core" / "_probe_for_test.py"
    bad.write_text("def f():\n    import onnxruntime\n    from ..runtime import encoder\n")
    try:
        names = _imports(bad)
        assert "onnxruntime" in names and f"{PKG}.runtime.encoder" in names
        with pytest.raises(AssertionError):
            test_layers_import_only_what_they_may()
    finally:
        bad.unlink()


def _source(name: str) -> Path | None:
    """The file a dotted name of ours is imported from; None for a name inside a module."""
    base = SERVING / Path(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def test_http_transport_never_imports_grpc() -> None:
    """No module of the HTTP transport imports grpc, nor does any module of ours that it
    imports, however indirectly (lazy imports count); the closure reaches the shared modules."""
    seen: set[Path] = set()
    todo, problems = sorted(HTTP.glob("*.py")), []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        names = _imports(path)
        for bad in sorted({n.split(".")[0] for n in names} & GRPC):
            problems.append(f"{path.relative_to(ROOT)} imports {bad}")
        todo += [p for n in names if n.startswith(PKG + ".") and (p := _source(n)) is not None]
    assert problems == []
    shared = {p.relative_to(SERVING).as_posix() for p in seen}
    assert {"transport/gate.py", "transport/status.py", "transport/security.py"} <= shared


def test_http_transport_imports_without_grpc() -> None:
    """The OpenAI API and its listener import and build where grpc is absent."""
    pytest.importorskip("uvicorn")
    _run_blocked(
        sorted(GRPC),
        "from zh_rnn_encoder.transport.openai.api import OpenAIApi\n"
        "from zh_rnn_encoder.transport.openai.http_server import HttpServer\n"
        "from zh_rnn_encoder.transport.serving_state import Served, ServingState\n"
        "api = OpenAIApi(ServingState(), Served('m'), 1 << 20, [])\n"
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
    from tests.harness import InProcessServer

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
