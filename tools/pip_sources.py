"""Print uv's flags for the package sources pip is configured with (uv never reads pip.conf).

This machine's pip takes torch's CPU build from a find-links folder and PyPI mirrors from extra
indexes (pip.conf, PIP_* variables); uv would otherwise see PyPI alone and resolve, or refuse,
torch differently. Run it with the interpreter whose pip to ask (the Makefile: .venv's).

`--resolve` (for `uv pip compile`) adds pip's constraint files, which a hashed install refuses,
and leaves out the extra indexes: uv takes all of a version's files from the first index that
lists it, and these mirrors hold one wheel per version, so resolving through them made the lock
depend on the mirror (cryptography 50.0.2 is mirrored as a manylinux_2_34 wheel only, outside
the manylinux_2_28 target, and a re-lock then fell back to 50.0.1). Locked from the index and
find-links, each pin carries every hash PyPI has, so an install may take a mirror's copy.
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys

# pip option -> uv flag; each value may hold several whitespace-separated entries, as in pip.
INSTALL_FLAGS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
}
RESOLVE_FLAGS = {
    "index-url": "--index-url",
    "find-links": "--find-links",
    "constraint": "--constraints",
}
# pip applies [global], then [install], then PIP_* variables (`:env:`), each overriding the last.
SECTIONS = ("global", "install", ":env:")


def pip_config(python: str = sys.executable) -> dict[str, str]:
    """The options pip install would take from configuration files and the environment."""
    out = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    items: dict[tuple[str, str], str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.rpartition(".")
        items[section, name] = ast.literal_eval(value)  # pip writes repr()
    merged: dict[str, str] = {}
    for section in SECTIONS:
        merged |= {name: v for (s, name), v in items.items() if s == section}
    return merged


def uv_args(config: dict[str, str], resolve: bool = False) -> list[str]:
    args = []
    for option, flag in (RESOLVE_FLAGS if resolve else INSTALL_FLAGS).items():
        for value in config.get(option, "").split():
            args += [flag, value]
    if str(config.get("no-index", "")).lower() in {"1", "true", "yes", "on"}:
        args.append("--no-index")
    if "extra-index-url" in config and not resolve:
        # pip weighs every index alike and takes the best version from any of them; uv would
        # take a package from the first index that has it (here a partial PyPI mirror).
        args += ["--index-strategy", "unsafe-best-match"]
    return args


if __name__ == "__main__":
    print(shlex.join(uv_args(pip_config(), resolve="--resolve" in sys.argv[1:])))
