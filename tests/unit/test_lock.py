"""The lockfiles every venv installs from (requirements/*.txt, `make lock`): each pin hashed,
each still satisfying what the project asks for, torch the CPU build, and pip's package sources
passed to uv as pip would use them."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT
from tools import pip_sources

LOCKS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
# Locked for CPython 3.11 on Linux x86_64 (the Makefile's LOCK): markers are judged there.
TARGET = {"python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64"}


def _pins(name: str) -> dict[str, tuple[str, int]]:
    """requirements/NAME.txt -> {canonical name: (version, number of sha256 hashes)}."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (LOCKS / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        if m := PIN.match(line):
            current = canonicalize_name(m[1])
            pins[current] = (m[2], 0)
        elif current and (hashes := re.findall(r"--hash=sha256:[0-9a-f]{64}", line)):
            version, n = pins[current]
            pins[current] = (version, n + len(hashes))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"requirements/{name}.txt: not a hashed pin: {line!r}")
    return pins


def _makefile_var(name: str) -> str:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return re.search(rf"^{name}\s*:=\s*(.*)$", text, re.M)[1].strip()


def _project_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def _stock_requirements() -> list[Requirement]:
    lines = (ROOT / "tests" / "stock_clients.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(x) for x in lines if x.strip() and not x.startswith("#")]


# lock -> what it is compiled from (the Makefile's lock target)
INPUTS = {
    "dev": lambda: _project_requirements(*_makefile_var("EXTRAS").split()),
    "runtime": lambda: _project_requirements("http"),
    "docs": lambda: _project_requirements("docs"),
    "stock-clients": _stock_requirements,
    "uv": lambda: [Requirement(f"uv=={_makefile_var('UV_VERSION')}")],
}


def test_every_lock_is_made_by_make_lock() -> None:
    assert {p.stem for p in LOCKS.glob("*.txt")} == set(INPUTS)


@pytest.mark.parametrize("lock", sorted(INPUTS))
def test_every_pin_is_hashed_and_still_fits_its_inputs(lock: str) -> None:
    """A requirement changed in pyproject.toml (or stock_clients.txt) without `make lock`
    fails here, naming it, before an install does."""
    pins = _pins(lock)
    assert pins and not [n for n, (_, hashes) in pins.items() if hashes == 0]
    stale = []
    for req in INPUTS[lock]():
        if req.marker and not req.marker.evaluate(TARGET):
            continue
        version = pins.get(canonicalize_name(req.name), ("missing", 0))[0]
        if version == "missing" or not req.specifier.contains(version, prereleases=True):
            stale.append(f"{req} (locked: {version})")
    assert stale == [], f"requirements/{lock}.txt is stale: run `make lock`"


def test_the_subsets_agree_with_dev() -> None:
    """The runtime and docs locks are held to dev's pins (-c), so one venv can hold them all."""
    dev = _pins("dev")
    for lock in ("runtime", "docs"):
        differ = {n: v for n, (v, _) in _pins(lock).items() if n in dev and dev[n][0] != v}
        assert differ == {}, lock


def test_torch_is_the_cpu_build_and_only_for_export() -> None:
    torch = [r for r in _project_requirements("export") if r.name == "torch"]
    assert [str(r.specifier) for r in torch] == ["==2.13.0"]
    assert _pins("dev")["torch"][0] == "2.13.0+cpu"
    for lock in INPUTS:
        pins = _pins(lock)
        assert not [n for n in pins if n.startswith("nvidia-") or n == "triton"], lock
        if lock != "dev":
            assert "torch" not in pins, lock


def test_uv_gets_pips_sources() -> None:
    uv_args = pip_sources.uv_args
    config = {
        "index-url": "https://mirror.example/simple",
        "extra-index-url": "file:///a/simple file:///b/simple",
        "find-links": "/wheels",
        "constraint": "/caps.txt",
    }
    assert uv_args(config) == [
        "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "file:///a/simple", "--extra-index-url", "file:///b/simple",
        "--find-links", "/wheels",
        "--index-strategy", "unsafe-best-match",
    ]  # fmt: skip
    # locking: pip's constraints, and not the extra indexes (partial mirrors; the module says why)
    assert uv_args(config, resolve=True) == [
        "--index-url", "https://mirror.example/simple",
        "--find-links", "/wheels",
        "--constraints", "/caps.txt",
    ]  # fmt: skip
    assert uv_args({"no-index": "true", "find-links": "/w"}) == ["--find-links", "/w", "--no-index"]
    assert uv_args({}) == []
