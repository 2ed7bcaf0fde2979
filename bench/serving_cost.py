"""The serving path at the cost of its work (issue 19): what the server spends around the work it
serves, from outside, against baselines measured in the same run.

The server runs on core 0 (one onnxruntime thread), the load generator (bench/loadgen.py) on
core 1, and the server's CPU is read from /proc/<pid>/stat around each measured load, so the
callers' own work never counts. The baselines: an empty RPC (grpc.health Check) on the same
server, and the in-process pipeline on core 0 alone: the tokenizer (rjieba, the vocabulary) and
the graph (``Session.run_state``) on the very padded runs the server would make of the same
32-text requests, with no asyncio, gRPC or Python serving code around them.

`python -m bench.serving_cost [--bundle B] [--seconds S]` prints a JSON line per load and the
table; `make bench` runs it and puts the table in its report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.loadgen import load_texts
from bench.process import start_server
from zh_rnn_encoder.runtime.encoder import Encoder
from zh_rnn_encoder.runtime.padding import pad, plan_runs

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE, CLIENT_CORE = 0, 1
TICK = os.sysconf("SC_CLK_TCK")
# The storm's requests: 64 texts of 240-510 tokens (30 lines of the bench's texts each, under
# the 512-token limit), so that 4 callers fit the default in-flight budget and 128 do not: most
# of the storm is refused.
STORM_TEXTS, STORM_JOIN = 64, 30
GOALS = {  # the goals: (op, bound)
    "encode_1_over_empty_cpu": ("<=", 1.5),
    "per_text_32_over_pipeline_cpu": ("<=", 1.3),
    "texts_per_s_32x16_over_pipeline": (">=", 0.9),
    "storm_goodput_over_unloaded": (">=", 0.9),
    # "a refusal should cost a small fraction of an Encode": ours, a tenth of the same call served
    "refusal_over_served_cpu": ("<=", 0.1),
}


def log(msg: str) -> None:
    print(f"serving_cost: {msg}", file=sys.stderr, flush=True)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15


def pipeline(bundle: Path, cache: Path, texts: list[str], batch: int, seconds: float) -> dict:
    """The in-process pipeline on core 0: CPU seconds and wall seconds per text."""
    os.sched_setaffinity(0, {SERVER_CORE})
    enc = Encoder.from_bundle(bundle, threads=1, jieba_cache_dir=cache)
    tokenize, ids_of = enc.tokenizer.tokenize, enc.bundle.vocab.encode
    pad_id, budget = enc.bundle.vocab.pad_id, enc.config.max_batch_tokens
    chunks = [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]

    spent = {"tokenizer": 0.0, "graph": 0.0}  # CPU seconds of each part

    def one_pass() -> None:
        for chunk in chunks:
            c0 = time.process_time()
            rows = [ids_of(tokenize(t)) for t in chunk]
            c1 = time.process_time()
            for r in plan_runs([len(x) for x in rows], budget):
                ids, lengths = pad([rows[i] for i in r], pad_id)
                enc.session.run_state(ids, lengths, None)
            spent["tokenizer"] += c1 - c0
            spent["graph"] += time.process_time() - c1

    one_pass()
    spent.update(tokenizer=0.0, graph=0.0)
    n, c0, t0 = 0, time.process_time(), time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        one_pass()
        n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = n * len(chunks) * batch
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {
        "cpu_s_per_text": cpu / done,
        "texts_per_s": done / wall,
        "tokenizer_cpu_s_per_text": spent["tokenizer"] / done,
        "graph_cpu_s_per_text": spent["graph"] / done,
    }


class Server:
    def __init__(self, bundle: Path, cache: Path, out: Path) -> None:
        port_file = out / "serving-cost.port"
        port_file.unlink(missing_ok=True)
        cmd = [
            "taskset", "-c", str(SERVER_CORE), sys.executable, "-m",
            "zh_rnn_encoder.transport.app", "--bundle", str(bundle), "--listen", "127.0.0.1:0",
            "--threads", "1", "--jieba-cache-dir", str(cache), "--port-file", str(port_file),
        ]  # fmt: skip
        self.err = open(out / "serving-cost.log", "w")  # noqa: SIM115
        self.proc, self.target = start_server(cmd, port_file, self.err)

    def load(self, mode: str, texts: int, concurrency: int, seconds: float, join: int = 1) -> dict:
        """One measured load (after a short unmeasured one): requests, texts and errors per
        second, and the server's CPU per request and per text. ``join``: lines per text."""
        cmd = [
            "taskset", "-c", str(CLIENT_CORE), sys.executable, "-m", "bench.loadgen",
            "--target", self.target, "--mode", mode, "--texts", str(texts),
            "--concurrency", str(concurrency), "--warmup", "0", "--join", str(join),
        ]  # fmt: skip
        run = lambda s: json.loads(  # noqa: E731
            subprocess.run([*cmd, "--seconds", str(s)], cwd=ROOT, check=True,
                           capture_output=True, text=True, timeout=s + 120).stdout
        )  # fmt: skip
        run(min(1.0, seconds))
        c0 = cpu_s(self.proc.pid)
        r = run(seconds)
        cpu = cpu_s(self.proc.pid) - c0
        calls = r["requests"] + r["errors"]
        out = {
            "mode": mode,
            "texts_per_request": texts,
            "concurrency": concurrency,
            "requests": r["requests"],
            "errors": r["errors"],
            "requests_per_s": r["requests"] / r["seconds"],
            "texts_per_s": r["texts"] / r["seconds"],
            "server_cpu_ms_per_call": cpu / max(1, calls) * 1e3,
            "server_cpu_ms_per_text": cpu / max(1, r["texts"]) * 1e3 if r["texts"] else None,
            "server_cpu_busy": cpu / r["seconds"],
            "server_cpu_s": cpu,
        }
        log(json.dumps(out))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.err.close()


def measure(bundle: Path, cache: Path, out: Path, seconds: float) -> dict:
    texts = load_texts()
    base = pipeline(bundle, cache, texts, 32, seconds)
    log(f"in-process pipeline, 32 texts a call: {json.dumps(base)}")
    srv = Server(bundle, cache, out)
    try:
        empty = srv.load("empty", 0, 16, seconds)
        one = srv.load("unary", 1, 16, seconds)
        many = srv.load("unary", 32, 16, seconds)
        calm = srv.load("unary", STORM_TEXTS, 4, seconds, STORM_JOIN)
        storm = srv.load("unary", STORM_TEXTS, 128, seconds, STORM_JOIN)
    finally:
        srv.stop()
    ratios = {
        "encode_1_over_empty_cpu": one["server_cpu_ms_per_call"] / empty["server_cpu_ms_per_call"],
        "per_text_32_over_pipeline_cpu": many["server_cpu_ms_per_text"]
        / (base["cpu_s_per_text"] * 1e3),
        "texts_per_s_32x16_over_pipeline": many["texts_per_s"] / base["texts_per_s"],
        "storm_goodput_over_unloaded": storm["texts_per_s"] / calm["texts_per_s"],
        "refusal_over_served_cpu": refusal_ms(calm, storm) / calm["server_cpu_ms_per_call"],
    }
    return {
        "pipeline": base,
        "loads": [empty, one, many, calm, storm],
        "ratios": ratios,
    }


def refusal_ms(calm: dict, storm: dict) -> float:
    """Server CPU per refused call of the storm: its CPU less what its served calls cost at the
    calm load's rate, over its refusals."""
    served = storm["requests"] * calm["server_cpu_ms_per_call"] / 1e3
    return max(0.0, storm["server_cpu_s"] - served) / max(1, storm["errors"]) * 1e3


def table(r: dict) -> str:
    """The issue's table: each measure, its figures and its goal."""
    base, (empty, one, many, calm, storm) = r["pipeline"], r["loads"]
    rows = [
        (
            "encode_1_over_empty_cpu",
            "server CPU of `Encode` of 1 text ÷ an empty RPC's (16 callers)",
            f"{one['server_cpu_ms_per_call']:.3f} ms vs {empty['server_cpu_ms_per_call']:.3f} ms",
        ),
        (
            "per_text_32_over_pipeline_cpu",
            "server CPU per text at 32 texts/request ÷ the in-process pipeline's",
            f"{many['server_cpu_ms_per_text']:.4f} ms vs {base['cpu_s_per_text'] * 1e3:.4f} ms",
        ),
        (
            "texts_per_s_32x16_over_pipeline",
            "texts/s at 32 texts/request, 16 callers ÷ the in-process pipeline's",
            f"{many['texts_per_s']:.0f} vs {base['texts_per_s']:.0f}",
        ),
        (
            "storm_goodput_over_unloaded",
            "texts/s under 128 callers retrying at once, no backoff ÷ 4 callers "
            f"({STORM_TEXTS} texts of ~330 tokens a request)",
            f"{storm['texts_per_s']:.0f} vs {calm['texts_per_s']:.0f}; "
            f"{storm['errors'] / (storm['requests'] + storm['errors'] or 1):.0%} refused",
        ),
        (
            "refusal_over_served_cpu",
            "server CPU of a call refused in the storm ÷ the same call served (an empty RPC: "
            f"{empty['server_cpu_ms_per_call']:.3f} ms)",
            f"{refusal_ms(calm, storm):.3f} ms vs {calm['server_cpu_ms_per_call']:.1f} ms",
        ),
    ]
    lines = ["| measure | figures | ratio | goal | met |", "| --- | --- | ---: | --- | --- |"]
    for key, what, figures in rows:
        op, bound = GOALS[key]
        v = r["ratios"][key]
        met = v <= bound if op == "<=" else v >= bound
        lines.append(f"| {what} | {figures} | {v:.2f} | {op} {bound} | {'yes' if met else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serving_cost", description=__doc__)
    ap.add_argument("--bundle", type=Path, default=ROOT / "bundles" / "default")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    r = measure(a.bundle, a.out / "jieba-cache", a.out, a.seconds)
    (a.out / "serving_cost.json").write_text(json.dumps(r, indent=1))
    print(table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
