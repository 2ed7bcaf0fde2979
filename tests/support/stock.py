"""The ecosystem's stock clients, run unmodified in their own environment and process.

tritonclient and kserve both register the `inference.*` protobuf symbols (so they cannot share a
process with each other or with our server's generated module) and pin protobuf < 7, so they
live in .venv/stock-clients (`make test` installs tests/stock_clients.txt there). A script gets
its arguments as JSON on stdin and prints its result as JSON on stdout.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import ROOT

PYTHON = ROOT / ".venv" / "stock-clients" / "bin" / "python"
SCRIPTS = Path(__file__).resolve().parent / "stock_scripts"


def run(script: str, args: dict, timeout: float = 120) -> object:
    """Runs tests/support/stock_scripts/<script>.py with ``args``; its JSON result, or
    AssertionError carrying its stderr."""
    assert PYTHON.exists(), f"{PYTHON} is missing: `make test` installs tests/stock_clients.txt"
    p = subprocess.run(
        [str(PYTHON), str(SCRIPTS / f"{script}.py")],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert p.returncode == 0, f"{script} failed (rc {p.returncode}):\n{p.stderr[-4000:]}"
    return json.loads(p.stdout)
