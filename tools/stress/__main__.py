"""`python -m tools.stress`: runs the probes, prints and writes the table; 1 on a broken bound."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tests.support import ROOT
from tools.stress import MEMORY_PROBES, PROBES, common
from tools.stress.common import FULL, OUT, QUICK, Result, Scale


def run(bundle: Path, cache: Path, scale: Scale, only: list[str], budget_mb: float) -> list:
    out = []
    for name, probe in PROBES.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        args = (
            (bundle, cache, scale, budget_mb) if name in MEMORY_PROBES else (bundle, cache, scale)
        )
        r = probe(*args)
        r.measured["probe_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({"probe": r.probe, "ok": r.ok, **r.measured}, ensure_ascii=False),
              flush=True)  # fmt: skip
        out.append(r)
    return out


def markdown(results: list[Result]) -> str:
    lines = ["| probe | bound | measured | bound | met |", "| --- | --- | ---: | --- | --- |"]
    for r in results:
        for name, (v, op, b) in r.bounds.items():
            b = round(b) if isinstance(b, float) and b > 10 else b
            lines.append(
                f"| {r.probe} | {name} | {v} | {op} {b} | {'yes' if _ok(v, op, b) else 'NO'} |"
            )
    return "\n".join(lines)


def _ok(v: object, op: str, b: object) -> bool:
    return {"<=": v <= b, ">=": v >= b, "==": v == b}[op]


def main() -> int:
    ap = argparse.ArgumentParser(prog="make stress", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="the scale make test runs")
    ap.add_argument("--only", nargs="*", default=[], choices=list(PROBES))
    ap.add_argument("--bundle", type=Path, default=ROOT / "bundles" / "default")
    ap.add_argument(
        "--memory-mb",
        type=float,
        default=768.0,
        help="the bound on RSS above idle: max_inflight_mb (256) + twice the bytes of the "
        "uploads being received (64 of 4 MiB): the memory model of the README",
    )
    ap.add_argument(
        "--server-python",
        default=sys.executable,
        help="run the server with this interpreter (another checkout's .venv/bin/python)",
    )
    a = ap.parse_args()
    common.SERVER_PYTHON = a.server_python
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, common.CLIENT_CPUS)
    else:  # one CPU: server and clients share it, as the figures will show
        common.SERVER_CPUS = None
    cache = OUT / "jieba-cache"
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    results = run(a.bundle, cache, QUICK if a.quick else FULL, a.only, a.memory_mb)
    table = markdown(results)
    print(table)
    stem = "stress-quick" if a.quick else "stress"
    (OUT / f"{stem}.json").write_text(
        json.dumps([{"probe": r.probe, "ok": r.ok, **r.measured} for r in results], indent=1)
    )
    (OUT / f"{stem}.md").write_text(table + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
