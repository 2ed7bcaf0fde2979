"""The flooders of tools/stress/http_front.py, in a process of their own (`python -m
tools.stress.flooder NAME PORT CONNS SECONDS` prints the statuses answered and the most bytes one
connection sent), so that they can run at the lowest priority beside the health prober."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

HEADER_FLOOD_BYTES = 1 << 30  # the most one connection sends
_CHUNK = 1 << 16
_LINE = b"X-Flood: " + b"a" * 90 + b"\r\n"
# what each flood sends: a head's start, then one chunk after another
FLOODS = {
    "header flood": (b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                     _LINE * (_CHUNK // len(_LINE))),
    "url flood": (b"GET /", b"a" * _CHUNK),
}  # fmt: skip


def _flooders(name: str, port: int, conns: int, seconds: float) -> tuple[dict[str, int], int]:
    """``conns`` threads, each sending flood ``name`` once and again for ``seconds``: the count
    of each status answered, and the most bytes one connection sent."""
    head, chunk = FLOODS[name]
    stop = time.monotonic() + seconds
    results: list[dict] = []

    def flooder() -> None:
        while True:
            results.append(_send_until_closed(port, head, chunk, HEADER_FLOOD_BYTES))
            if time.monotonic() >= stop:
                return

    threads = [threading.Thread(target=flooder) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return statuses, max(r["sent"] for r in results)


def _send_until_closed(port: int, head: bytes, chunk: bytes, most: int) -> dict:
    """Sends ``head`` then ``chunk`` after ``chunk`` until the server stops reading (or ``most``
    bytes); returns the bytes sent and the status it answered ("closed": none)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        try:
            c.sendall(head)
            while sent < most:
                c.sendall(chunk)
                sent += len(chunk)
        except OSError:  # reset or broken pipe: the server closed it
            pass
        return {"sent": sent, "status": _status(c)}


def _status(c: socket.socket) -> str:
    try:
        data = c.recv(64)
    except OSError:
        return "reset"
    parts = data.split(b" ", 2)
    return parts[1].decode() if data.startswith(b"HTTP/") and len(parts) > 1 else "closed"


if __name__ == "__main__":  # the flooders' process: NAME PORT CONNS SECONDS
    name, port, conns, seconds = sys.argv[1:]
    print(json.dumps(_flooders(name, int(port), int(conns), float(seconds))))
