"""The JSON log's last line of defence: a small process between the server's stderr and the real
one that passes JSON lines through and wraps every other line (gRPC's C-core logging natively,
onnxruntime's, a crash's last words) as one JSON object.

A process rather than a thread, so that it outlives the server: what a server writes just before
it aborts still comes out. Run as a script with ``python -I -S`` (nothing of the package imported);
logs.py starts it for --log-format json.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from datetime import UTC, datetime

# abseil's prefix, which gRPC's C-core writes: "E0000 00:00:1764521000.123456  4242 file.cc:12] "
ABSL = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ (\S+:\d+)\] ?(.*)$", re.S)
LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "CRITICAL"}


def wrap(line: bytes) -> bytes:
    """A line as it goes out: unchanged if it is a JSON object already, else wrapped in one."""
    if line.startswith(b"{") and _is_json(line):
        return line if line.endswith(b"\n") else line + b"\n"
    text = line.decode("utf-8", "replace").rstrip("\n")
    record = {"time": datetime.now(UTC).isoformat(), "level": "WARNING", "logger": "stderr"}
    if m := ABSL.match(text):
        record |= {"level": LEVELS[m[1]], "logger": "grpc.core", "source": m[2]}
        text = m[3]
    record["message"] = text
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def _is_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def main() -> None:
    # The server drains (or reloads: SIGHUP) on these and logs on; the relay ends with its
    # input (EOF).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        out.write(wrap(line))
        out.flush()


if __name__ == "__main__":
    main()
