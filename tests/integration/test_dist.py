"""Release artifacts, as `make dist` builds them: the sdist, the wheel built from it, and that
wheel installed in a fresh venv outside the checkout, with the locked runtime dependencies and
nothing else (no torch), serving a bundle."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest

from tests.support import ROOT
from tests.support.samples import SMALL, TEXTS

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = PROJECT["version"]
NAME = "zh_rnn_encoder"
# `make install` puts uv into .venv from requirements/uv.txt; build uses it for its isolated env.
UV = Path(sys.executable).with_name("uv")


def _run(cmd: list, **kw: object) -> str:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{shlex.join(map(str, cmd))}: exit {p.returncode}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build`: the sdist, then the wheel from the unpacked sdist."""
    assert UV.is_file(), f"{UV} is missing: `make install` installs it (requirements/uv.txt)"
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--installer", "uv", "--outdir", out, ROOT])
    return out


def _wheel(dist: Path) -> Path:
    return dist / f"{NAME}-{VERSION}-py3-none-any.whl"


def test_twine_passes_both(dist: Path) -> None:
    sdist = dist / f"{NAME}-{VERSION}.tar.gz"
    assert sorted(dist.iterdir()) == [_wheel(dist), sdist]
    _run([sys.executable, "-m", "twine", "check", "--strict", _wheel(dist), sdist])
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "export/data/corpus_zh.txt"} <= names
    assert not [n for n in names if n.startswith("tests/")]  # they need the checkout to run


def test_wheel_holds_the_package_its_data_and_commands(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as whl:
        names = set(whl.namelist())
        info = f"{NAME}-{VERSION}.dist-info"
        meta = Parser().parsestr(whl.read(f"{info}/METADATA").decode())
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {NAME, info}  # one import name, nothing generic
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    for package in cfg["setuptools"]["packages"]:
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    assert {f"{NAME}/export/data/corpus_zh.txt", f"{NAME}/eval/data/ood_zh.jsonl"} <= names
    assert meta["Version"] == VERSION
    for script, target in PROJECT["scripts"].items():
        assert f"{script} = {target}" in entry_points
    base = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert base and not [r for r in base if r.startswith(("torch", "onnx "))]


def test_the_version_lives_in_pyproject() -> None:
    """pyproject.toml holds it; the package reads it back (importlib.metadata); the one other
    file that must repeat it, the Kubernetes image tag, follows it."""
    import zh_rnn_encoder

    assert zh_rnn_encoder.__version__ == VERSION
    deployment = (ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text(encoding="utf-8")
    assert f"image: zh-rnn-encoder:{VERSION}\n" in deployment


def _venv(where: Path) -> Path:
    """A fresh venv: the locked runtime set (requirements/runtime.txt), nothing from the checkout.

    The packages come from uv's cache, filled by `make install` from the same lock.
    """
    _run([UV, "venv", "-q", "--python", sys.executable, where])
    python = where / "bin" / "python"
    sources = shlex.split(_run([sys.executable, ROOT / "tools" / "pip_sources.py"]))
    lock = ROOT / "requirements" / "runtime.txt"
    install = [UV, "pip", "install", "-q", "--no-deps", "--python", python]
    _run([*install, "--require-hashes", *sources, "-r", lock])
    return python


def test_the_wheel_alone_serves(dist, bundle_factory, jieba_cache, tmp_path: Path) -> None:
    """encoder-serve from the wheel's venv, run from a folder outside the checkout, passes its
    golden self-test and gives the checkout's vectors; torch is not even installed there."""
    python = _venv(tmp_path / "venv")
    _run([UV, "pip", "install", "-q", "--no-deps", "--python", python, _wheel(dist)])
    _run([UV, "pip", "check", "-q", "--python", python])
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    where = _run(
        [python, "-c", "import importlib.util as u, zh_rnn_encoder as z\n"
         "print(z.__file__, z.__version__, u.find_spec('torch'))"],
        cwd=tmp_path, env=env,
    ).split()  # fmt: skip
    assert Path(where[0]).is_relative_to(tmp_path / "venv") and where[1:] == [VERSION, "None"]

    bundle = bundle_factory(**SMALL)[0]
    ready, log = tmp_path / "ready", tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [tmp_path / "venv" / "bin" / "encoder-serve", "--bundle", bundle, "--threads", "1",
             "--listen", "127.0.0.1:0", "--ready-file", ready, "--jieba-cache-dir", jieba_cache],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        _check_serving(proc, ready, log, bundle, jieba_cache)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _check_serving(proc: subprocess.Popen, ready: Path, log: Path, bundle, jieba_cache) -> None:
    from zh_rnn_encoder import Encoder
    from zh_rnn_encoder.client import EncoderClient

    deadline = time.monotonic() + 60
    while not ready.is_file():  # written once SERVING: the golden self-test passed
        assert proc.poll() is None, f"encoder-serve exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"not SERVING after 60 s:\n{log.read_text()}"
        time.sleep(0.05)
    local = Encoder.from_bundle(bundle, threads=1, jieba_cache_dir=jieba_cache)
    with EncoderClient(f"127.0.0.1:{int(ready.read_text())}") as client:
        assert client.health() == "SERVING"
        assert client.info()["server_version"] == VERSION
        remote = client.encode(TEXTS, pooling="mean")
    for r, e in zip(remote, local.encode(TEXTS, pooling="mean"), strict=True):
        assert r.tokens == e.tokens
        np.testing.assert_allclose(r.vector, e.vector, rtol=0, atol=1e-6)
