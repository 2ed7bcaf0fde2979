"""A server process for the benchmarks: started, its port read from its port file, and SERVING."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import IO

from zh_rnn_encoder.client import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent


def start_server(
    cmd: list[str], port_file: Path, err: IO[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``cmd`` started from the checkout, its stderr to ``err``; once it has written
    ``port_file`` and answers SERVING: (the process, its 127.0.0.1:port target)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=err)
    while not port_file.is_file():
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} did not start; see {err.name}")
        time.sleep(0.005)
    target = f"127.0.0.1:{int(port_file.read_text())}"
    wait_until_serving(target, 120)
    return proc, target
