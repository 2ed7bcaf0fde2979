"""Where the server's CPU goes under load (issue 19): py-spy samples the server (core 0, one
onnxruntime thread) while bench/loadgen.py drives it from core 1.

`python -m bench.profile_server [--texts 1 32] [--seconds S] [--svg]` prints, per load, the share
of on-CPU samples in each stage of the serving path (the stage of a sample is the first of STAGES,
in order, that one of its frames matches), the same without the graph and the tokenizer (the
serving path around the work: see ``profile``), and the heaviest leaf functions; with ``--svg``
it also writes a flame graph per load to the output folder.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.serving_cost import CLIENT_CORE, ROOT, Server

PY_SPY = Path(sys.executable).with_name("py-spy")
# (stage, substrings of a frame): a sample belongs to the first stage one of its frames matches.
STAGES = [
    ("onnxruntime run", ("onnxruntime", "run_state", "MlasSgemm")),
    ("tokenizer (rjieba, vocabulary)", ("rjieba", "core/tokenizer.py", "core/vocab.py")),
    ("pooling, delivery, padding", ("runtime/delivery.py", "runtime/pooling.py",
                                    "runtime/padding.py", "runtime/state.py")),
    ("response building (protobuf)", ("encoder_v1/convert.py", "proto_convert.py",
                                      "serialize_checked", "_message.abi3")),
    ("admission and limits", ("runtime/admission.py", "runtime/limits.py", "transport/gate.py",
                              "transport/interceptors.py")),
    ("batcher and executor hops", ("runtime/batcher.py", "concurrent/futures",
                                   "run_in_executor", "call_soon_threadsafe")),
    ("encoder request path", ("runtime/encoder.py", "sync_encoder.py", "servicer.py",
                              "transport/rpc.py", "serving_state.py", "runtime/models.py")),
    ("gRPC core and its Python layer", ("grpc/", "cygrpc")),
    ("asyncio event loop", ("asyncio/", "selectors.py", "_asynciomodule")),
]  # fmt: skip


# Frames of a thread that waits: for a lock, a condition, a poll, a sleep.
WAITS = ("acquire_lock", "cond_wait", "cond_timedwait", "epoll_wait", "select_epoll_poll",
         "poll (", "nanosleep", "sem_wait", "sem_timedwait", "futex_wait")  # fmt: skip


def stage_of(frames: list[str]) -> str:
    for name, keys in STAGES:
        if any(k in f for f in frames for k in keys):
            return name
    return "other (interpreter, idle threads)"


def profile(srv: Server, texts: int, seconds: float, out: Path, svg: bool) -> dict:
    """Samples of the server under 16 callers of ``texts`` texts a request."""
    raw = out / f"profile-{texts}.txt"
    load = subprocess.Popen(
        ["taskset", "-c", str(CLIENT_CORE), sys.executable, "-m", "bench.loadgen",
         "--target", srv.target, "--mode", "unary", "--texts", str(texts), "--concurrency", "16",
         "--seconds", str(seconds + 3)],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    # Native frames, so that threads waiting in C (executor queues, epoll) can be told from
    # work (WAITS); without them py-spy counts those threads as busy. py-spy drops most samples
    # taken inside onnxruntime, though (it cannot merge their native and Python frames: 23 of
    # ~1,500 on-CPU samples of a 32-text load showed the graph), so the graph's and the
    # tokenizer's own cost come from bench/serving_cost.py, and the shares here are read as
    # shares of the rest: the serving path around the work.
    spy = [str(PY_SPY), "record", "--native", "--rate", "200", "--pid", str(srv.proc.pid),
           "--duration", str(int(seconds))]  # fmt: skip
    subprocess.run([*spy, "--format", "raw", "-o", str(raw)], check=True, capture_output=True)
    if svg:
        svg_path = out / f"profile-{texts}.svg"
        subprocess.run([*spy, "--format", "flamegraph", "-o", str(svg_path)], check=True,
                       capture_output=True)  # fmt: skip
    load.wait(120)
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        if any(w in f for f in frames for w in WAITS):
            continue  # a thread waiting (py-spy --native samples them too): not CPU
        total += n
        stages[stage_of(frames)] += n
        leaves[frames[-1]] += n
    work = {STAGES[0][0], STAGES[1][0]}
    rest = sum(v for k, v in stages.items() if k not in work)
    return {
        "texts": texts,
        "samples": total,
        "stages": {k: v / total for k, v in stages.most_common()},
        "around_the_work": {k: v / rest for k, v in stages.most_common() if k not in work},
        "top_leaves": [(k, v / total) for k, v in leaves.most_common(15)],
    }


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_server", description=__doc__)
    ap.add_argument("--bundle", type=Path, default=ROOT / "bundles" / "default")
    ap.add_argument("--texts", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="profile-")))
    ap.add_argument("--svg", action="store_true", help="a flame graph per load too")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    srv = Server(a.bundle, a.out / "jieba-cache", a.out)
    try:
        for texts in a.texts:
            r = profile(srv, texts, a.seconds, a.out, a.svg)
            print(f"\n{texts} text(s) a request, {r['samples']} samples on CPU:")
            for k, v in r["stages"].items():
                print(f"  {v:6.1%}  {k}")
            print("  of the serving path around the graph and the tokenizer:")
            for k, v in r["around_the_work"].items():
                print(f"  {v:6.1%}  {k}")
            print("  heaviest leaves:")
            for k, v in r["top_leaves"]:
                print(f"  {v:6.1%}  {k[:110]}")
    finally:
        srv.stop()
    print(f"\nraw stacks{' and flame graphs' if a.svg else ''} in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
