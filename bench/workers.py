"""`python -m bench.workers`: --workers 1 vs 2 (vs more where the host has the cores).

For each worker count: server CPU per request (all its processes, from /proc) and throughput at
concurrency 64, with the load generator pinned to the last CPU (taskset) so that it takes one
core whatever the server does; scaling efficiency = throughput ratio / worker ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench import run as bench
from zh_rnn_encoder.runtime.cpus import available_cpus

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and all its live descendants."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
    return total


def load(target: str, texts: int, seconds: float, cpu: int) -> dict:
    cmd = ["taskset", "-c", str(cpu), sys.executable, "-m", "bench.loadgen", "--target", target,
           "--texts", str(texts), "--concurrency", "64", "--seconds", str(seconds)]  # fmt: skip
    out = subprocess.run(cmd, cwd=bench.ROOT, check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return {"requests": r["requests"], "errors": r["errors"], "seconds": r["seconds"]}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--workers", type=int, nargs="*", help="counts to try (default 1, 2, ...)")
    a = ap.parse_args()
    cpus = available_cpus()
    counts = a.workers or [n for n in (1, 2, 4, 8, 16) if n <= cpus]
    bench.OUT.mkdir(parents=True, exist_ok=True)
    bundle, _ = bench.build_model("rnn", bench.Tokenizer(cache_dir=bench.CACHE))
    rows = []
    for n in counts:
        cmd = [sys.executable, "-m", "zh_rnn_encoder.transport.app", "--bundle", str(bundle),
               "--workers", str(n)]  # fmt: skip
        srv = bench.Server(f"workers-{n}", cmd, cpus)
        try:
            for texts in (1, 32):
                load(srv.target, texts, 1.0, cpus - 1)  # warm every worker's connections
                c0 = cpu_seconds(srv.proc.pid)
                r = load(srv.target, texts, a.seconds, cpus - 1)
                cpu = cpu_seconds(srv.proc.pid) - c0
                rows.append({"workers": n, "texts": texts, "req_s": r["requests"] / r["seconds"],
                             "cpu_ms_per_req": 1e3 * cpu / max(1, r["requests"]),
                             "errors": r["errors"]})  # fmt: skip
                bench.log(f"workers {n}, {texts} text(s)/req: {rows[-1]}")
        finally:
            srv.stop()
    print(
        "| workers | texts/req | req/s | texts/s | server CPU ms/req | vs 1 worker | efficiency |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        base = next(x for x in rows if x["workers"] == counts[0] and x["texts"] == r["texts"])
        ratio = r["req_s"] / base["req_s"]
        eff = ratio * counts[0] / r["workers"]
        tps = r["req_s"] * r["texts"]
        print(
            f"| {r['workers']} | {r['texts']} | {r['req_s']:.0f} | {tps:.0f} | "
            f"{r['cpu_ms_per_req']:.2f} | {ratio:.2f} | {eff:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
