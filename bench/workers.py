"""`python -m bench.workers`: --workers 1 vs 2 (vs more where the host has the cores).

For each worker count: server CPU per request (all its processes, from /proc) and throughput at
concurrency 64 over 8 connections per load generator. The load generators are pinned to the last
CPUs (taskset), one each, and on a host with more than 4 CPUs the server to the others, so that
neither takes the other's cores; scaling efficiency = throughput ratio / worker ratio.
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


def load(target: str, texts: int, seconds: float, cpus: list[int]) -> dict:
    """One load generator per CPU in ``cpus``, all at once; their requests summed."""
    procs = [
        subprocess.Popen(
            [
                "taskset",
                "-c",
                str(cpu),
                sys.executable,
                "-m",
                "bench.loadgen",
                "--target",
                target,
                "--texts",
                str(texts),
                "--concurrency",
                "64",
                "--seconds",
                str(seconds),
            ],
            cwd=bench.ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for cpu in cpus
    ]
    rs = [json.loads(p.communicate()[0]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a load generator failed")
    return {
        "requests": sum(r["requests"] for r in rs),
        "errors": sum(r["errors"] for r in rs),
        "seconds": max(r["seconds"] for r in rs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--workers", type=int, nargs="*", help="counts to try (default 1, 2, ...)")
    ap.add_argument("--loadgens", type=int, help="load generator processes (default CPUs / 4)")
    a = ap.parse_args()
    cpus = available_cpus()
    k = a.loadgens or max(1, cpus // 4)
    mine = sorted(os.sched_getaffinity(0))
    gen_cpus = mine[-k:]
    # With few CPUs the server keeps them all (the loadgen's one is shared); else it gets the rest.
    srv_cpus = mine if cpus <= 4 else mine[:-k]
    counts = a.workers or [n for n in (1, 2, 4, 8, 16) if n <= len(srv_cpus)]
    bench.log(f"{cpus} CPUs: server on {len(srv_cpus)}, {k} load generator(s) on {gen_cpus}")
    bench.OUT.mkdir(parents=True, exist_ok=True)
    bundle, _ = bench.build_model("rnn", bench.Tokenizer(cache_dir=bench.CACHE))
    rows = []
    for n in counts:
        pin = ["taskset", "-c", ",".join(map(str, srv_cpus))]
        cmd = [*pin, sys.executable, "-m", "zh_rnn_encoder.transport.app", "--bundle", str(bundle),
               "--workers", str(n)]  # fmt: skip
        srv = bench.Server(f"workers-{n}", cmd, len(srv_cpus))
        try:
            for texts in (1, 32):
                load(srv.target, texts, 1.0, gen_cpus)  # warm every worker's connections
                c0 = cpu_seconds(srv.proc.pid)
                r = load(srv.target, texts, a.seconds, gen_cpus)
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
