"""The layers: what each layer may import, read from every import statement (lazy ones too);
serving/ never reaches export, bench, tests or tools; the HTTP transport never reaches grpc."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

PKG = "zh_rnn_encoder"
SERVING, EXPORT = ROOT / "serving", ROOT / "export"

# layer (a folder under serving/, or a module there) -> top-level names it must never import
FORBIDDEN = {
    "core": {"torch", "grpc", "grpc_health", "grpc_reflection", "onnxruntime", "onnx"},
    # opentelemetry: the runtime reports to a hook (runtime/spans.py), the transport traces
    "runtime": {"torch", "grpc", "grpc_health", "grpc_reflection", "onnx", "opentelemetry"},
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


def _module_name(path: Path) -> str:
    """The dotted name a source file is imported as."""
    if path.is_relative_to(EXPORT):
        parts = [PKG, "export", *path.relative_to(EXPORT).with_suffix("").parts]
    elif path.is_relative_to(SERVING):
        parts = [PKG, *path.relative_to(SERVING).with_suffix("").parts]
    else:  # bench, tests, tools, protos: importable from the checkout under their folder names
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


def test_nothing_imports_export_bench_tests_tools_or_the_folder_names() -> None:
    """serving/ never reaches export, bench, tests or tools (nor torch); nothing anywhere
    imports the folder names `serving` or `export`, which are not installed import names."""
    problems = []
    for path in _sources(SERVING):
        tops = {n.split(".")[0] for n in _imports(path)}
        ours = {n for n in _imports(path) if n.startswith(f"{PKG}.export")}
        if tops & {"torch", "bench", "tests", "tools", "export", "serving"} or ours:
            problems.append(str(path.relative_to(ROOT)))
    for root in (EXPORT, ROOT / "bench", ROOT / "tests", ROOT / "tools", ROOT / "protos"):
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
