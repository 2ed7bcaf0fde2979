"""`make bench`: our server against baselines measured in the same run, reported as ratios.

Baselines: (1) an empty RPC (grpc.health Check) on the same server stack; (2) the tokenizer alone;
(3) the in-process Encoder (tokenize, onnxruntime, pooling; no gRPC), also against the sum of
its parts (bench/parts.py); (4) eager PyTorch of the same checkpoint behind the same gRPC server;
(5) the graph alone, onnxruntime vs eager, for rnn, lstm and gru. Then the protocols on one
server, the serving path's own CPU against its work (bench/serving_cost), and document
streaming by size (bench/document).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from bench import document, serving_cost
from bench.loadgen import load_texts
from bench.parts import encode_vs_parts
from bench.process import start_server
from bench.report import chart, markdown, targets
from zh_rnn_encoder import Encoder
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.export import Checkpoint, export_bundle, init_model
from zh_rnn_encoder.export import checkpoint as ckpt_io
from zh_rnn_encoder.export.cli import DEFAULT_CORPUS
from zh_rnn_encoder.runtime.cpus import available_cpus
from zh_rnn_encoder.runtime.session import open_session

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"
CACHE = OUT / "jieba-cache"


def set_out(path: Path) -> None:
    global OUT, CACHE
    OUT, CACHE = path.resolve(), path.resolve() / "jieba-cache"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


_BUILT: set[str] = set()


def build_model(spec: str, tok: Tokenizer) -> tuple[Path, Path]:
    """Exported afresh once per run, so the bench always measures the current exporter.
    ``spec`` is a cell, or CELL:FORMULATION for another formulation than the cell's default
    (``rnn:native``: the native RNN op, as for CUDA)."""
    cell, _, formulation = spec.partition(":")
    d = OUT / f"model-{spec.replace(':', '-')}"
    bundle, ckpt_path = d / "bundle", d / "checkpoint.pt"
    if spec not in _BUILT:
        _BUILT.add(spec)
        lines = DEFAULT_CORPUS.read_text(encoding="utf-8").splitlines()
        vocab = Vocab.build(tok.tokenize(x) for x in lines)
        ckpt = Checkpoint(
            init_model(ModelConfig(vocab_size=len(vocab), cell=cell), 0), vocab, tok.config
        )
        d.mkdir(parents=True, exist_ok=True)
        ckpt_io.save(ckpt, ckpt_path)
        # the bench checks it by use
        export_bundle(ckpt, bundle, "none", jieba_cache=CACHE, formulation=formulation or None)
    return bundle, ckpt_path


def timeit(f, seconds: float, min_runs: int = 5) -> float:
    """Mean seconds per call over at least ``seconds`` of calls."""
    f()
    n, t0 = 0, time.perf_counter()
    while n < min_runs or time.perf_counter() - t0 < seconds:
        f()
        n += 1
    return (time.perf_counter() - t0) / n


# --- in-process baselines ---------------------------------------------------------------------


def tokenizer_alone(tok: Tokenizer, texts: list[str], seconds: float) -> dict:
    n_tokens = sum(len(tok.tokenize(t)) for t in texts)
    per_pass = timeit(lambda: [tok.tokenize(t) for t in texts], seconds, 1)
    return {"texts_per_s": len(texts) / per_pass, "tokens_per_s": n_tokens / per_pass}


def pipeline_in_process(
    bundle_dir: Path, texts: list[str], batch: int, threads: int, seconds: float
) -> dict:
    """The public in-process Encoder, one call per ``batch`` texts: the server minus gRPC."""
    enc = Encoder.from_bundle(bundle_dir, threads=threads, jieba_cache_dir=CACHE)
    chunks = [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]

    def one_pass() -> None:
        for chunk in chunks:
            enc.encode(chunk)

    per_pass = timeit(one_pass, seconds, 1)
    return {"texts_per_s": len(chunks) * batch / per_pass}


def graph_only(cells: list[str], threads: int, seconds: float, tok: Tokenizer) -> list[dict]:
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for cell in cells:
        bundle_dir, ckpt_path = build_model(cell, tok)
        model = ckpt_io.load(ckpt_path).model
        session = open_session(load_bundle(bundle_dir), threads=threads)
        for b, s in ((1, 20), (32, 50)):
            ids = rng.integers(0, model.config.vocab_size, (b, s))
            lengths = rng.integers(max(1, s // 2), s + 1, b)
            lengths[0] = s
            ti, tl = torch.from_numpy(ids), torch.from_numpy(lengths)
            with torch.inference_mode():
                eager = timeit(partial(model, ti, tl), seconds)
            ours = timeit(partial(session.run, ids, lengths), seconds)
            rows.append(
                {
                    "cell": cell,
                    "shape": f"{b}x{s}",
                    "ort_ms": ours * 1e3,
                    "eager_ms": eager * 1e3,
                    "ratio": ours / eager,
                }
            )
            log(f"graph {cell} {b}x{s}: ort {ours * 1e3:.2f} ms, eager {eager * 1e3:.2f} ms")
    return rows


# --- servers -----------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, cmd: list[str], threads: int, http: bool = False) -> None:
        """``http``: also the OpenAI-compatible HTTP API, on ``self.http_target``."""
        self.name = name
        port_file, http_port_file = OUT / f"{name}.port", OUT / f"{name}.http-port"
        port_file.unlink(missing_ok=True)
        http_port_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PORT_FILE": str(port_file),
            "LISTEN": "127.0.0.1:0",
            "THREADS": str(threads),
            "JIEBA_CACHE_DIR": str(CACHE),
            "LOG_LEVEL": "INFO",
        }
        if http:
            env |= {"HTTP_LISTEN": "127.0.0.1:0", "HTTP_PORT_FILE": str(http_port_file)}
        self.err = open(OUT / f"{name}.log", "w")  # noqa: SIM115
        t0 = time.perf_counter()
        self.proc, self.target = start_server(cmd, port_file, self.err, env)
        self.http_target = f"127.0.0.1:{int(http_port_file.read_text())}" if http else None
        self.start_to_serving_s = time.perf_counter() - t0
        self.rss_idle_mb = self.rss_mb()

    def rss_mb(self, key: str = "VmRSS") -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.err.close()


# Stock tritonclient lives apart (it pins protobuf < 7): `make bench` installs it there.
STOCK_PYTHON = ROOT / ".venv" / "stock-clients" / "bin" / "python"


def load(target: str, mode: str, texts: int, concurrency: int, seconds: float) -> dict:
    """One load run; mode unary, stream or empty (encoder.v1 and health), http (OpenAI JSON
    over HTTP) or oip (ModelInfer with stock tritonclient)."""
    if mode == "oip":
        head = [str(STOCK_PYTHON), str(ROOT / "bench" / "loadgen_oip.py")]
    else:
        head = [sys.executable, "-m", "bench.loadgen", "--mode", mode]
    cmd = [
        *head,
        "--target",
        target,
        "--texts",
        str(texts),
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    r = json.loads(
        subprocess.run(
            cmd, cwd=ROOT, check=True, capture_output=True, text=True, timeout=seconds + 120
        ).stdout
    )
    lat = np.array(r.pop("latencies") or [np.nan]) * 1e3  # none: every request failed
    wall = r["seconds"]
    return {
        **r,
        "mode": mode,
        "texts_per_request": texts,
        "concurrency": concurrency,
        "requests_per_s": r["requests"] / wall,
        "texts_per_s": r["texts"] / wall,
        "tokens_per_s": r["tokens"] / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def run_matrix(server: Server, matrix: list[tuple[str, int, int]], seconds: float) -> list[dict]:
    rows = []
    for mode, texts, conc in matrix:
        target = server.http_target if mode == "http" else server.target
        r = load(target, mode, texts, conc, seconds)
        r["server"] = server.name
        rows.append(r)
        log(
            f"{server.name:6s} {mode:6s} {texts:2d} texts x{conc:2d}: "
            f"{r['requests_per_s']:8.0f} req/s {r['texts_per_s']:8.0f} texts/s "
            f"p50 {r['p50_ms']:6.2f} ms p99 {r['p99_ms']:6.2f} ms errors {r['errors']}"
        )
    server.rss_peak_mb = server.rss_mb("VmHWM")
    return rows


def protocols(bundle: Path, threads: int, concs: tuple, seconds: float, servers: dict) -> list:
    """encoder.v1, the Open Inference Protocol and OpenAI HTTP on one server, same workloads;
    then the same HTTP API on aiohttp (bench/http_aiohttp.py), the stack that uvicorn beat."""
    rows = []
    serve = ["-m", "zh_rnn_encoder.transport.app", "--bundle", str(bundle)]
    runner_up = ["-m", "bench.http_aiohttp", "--bundle", str(bundle)]
    wide = [(m, t, c) for t in (1, 32) for c in concs for m in ("unary", "oip", "http")]
    stack = [("http", t, c) for t in (1, 32) for c in concs]
    for name, args, mat in (("protocols", serve, wide), ("aiohttp", runner_up, stack)):
        srv = Server(name, [sys.executable, *args], threads, http=True)
        log(f"{name}: SERVING after {srv.start_to_serving_s:.2f}s, RSS {srv.rss_idle_mb:.0f} MB")
        try:
            rows += run_matrix(srv, mat, seconds)
        finally:
            srv.stop()
        servers[name] = {
            "start_to_serving_s": srv.start_to_serving_s,
            "rss_idle_mb": srv.rss_idle_mb,
            "rss_peak_mb": srv.rss_peak_mb,
        }
    return rows


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(prog="make bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter runs (under a minute)")
    ap.add_argument("--seconds", type=float, help="seconds per load run")
    ap.add_argument("--out", type=Path, default=OUT, help=f"results directory (default {OUT})")
    a = ap.parse_args()
    set_out(a.out)
    seconds = a.seconds or (1.5 if a.quick else 4.0)
    concs = (16,) if a.quick else (1, 16, 64)
    modes = ("unary",) if a.quick else ("unary", "stream")
    matrix = [(m, t, c) for m in modes for t in (1, 32) for c in concs]
    OUT.mkdir(parents=True, exist_ok=True)
    threads = available_cpus()
    tok = Tokenizer(cache_dir=CACHE)
    texts = load_texts()
    bundle, ckpt = build_model("rnn", tok)
    res: dict = {
        "machine": {
            "cpus": threads,
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
        },
        "quick": a.quick,
        "seconds_per_run": seconds,
        "threads": threads,
    }
    log(f"in-process baselines ({threads} threads)")
    res["baselines"] = {
        "tokenizer": tokenizer_alone(tok, texts, seconds),
        "pipeline_1": pipeline_in_process(bundle, texts, 1, threads, seconds),
        "pipeline_32": pipeline_in_process(bundle, texts, 32, threads, seconds),
    }
    enc = Encoder.from_bundle(bundle, threads=threads, jieba_cache_dir=CACHE)
    res["encode_parts"] = [encode_vs_parts(enc, texts, n, seconds) for n in (1, 32)]
    res["graph"] = graph_only(["rnn", "lstm", "gru"], 1, seconds / 4 if a.quick else 1.0, tok)
    res["server_runs"], res["servers"] = [], {}
    serve = [sys.executable, "-m", "zh_rnn_encoder.transport.app", "--bundle", str(bundle)]
    eager = [sys.executable, "-m", "bench.eager_server", str(ckpt), "--bundle", str(bundle)]
    for name, cmd, mat in (
        ("ours", serve, matrix),
        ("eager", eager, [x for x in matrix if x[2] == 16 or not a.quick]),
    ):
        srv = Server(name, cmd, threads)
        log(f"{name}: SERVING after {srv.start_to_serving_s:.2f}s, RSS {srv.rss_idle_mb:.0f} MB")
        try:
            if name == "ours":
                res["server_runs"] += [
                    {**load(srv.target, "empty", 0, c, seconds), "server": "empty"} for c in concs
                ]
            res["server_runs"] += run_matrix(srv, mat, seconds)
        finally:
            srv.stop()
        res["servers"][name] = {
            "start_to_serving_s": srv.start_to_serving_s,
            "rss_idle_mb": srv.rss_idle_mb,
            "rss_peak_mb": srv.rss_peak_mb,
        }
    res["server_runs"] += protocols(bundle, threads, concs, seconds, res["servers"])
    if (os.cpu_count() or 1) >= 2:  # the server on one core, its callers on another
        log("the serving path at the cost of its work (bench/serving_cost.py)")
        res["serving_cost"] = serving_cost.measure(bundle, CACHE, OUT, seconds)
    sizes = (1_000, 10_000) if a.quick else document.SIZES  # 100M characters: about 11 minutes
    res["document"] = document.main(["--sizes", *map(str, sizes), "--seconds", str(seconds)])
    res["targets"] = targets(res)
    stem = "bench-quick" if a.quick else "bench"
    (OUT / f"{stem}.json").write_text(json.dumps(res, indent=1))
    (OUT / f"{stem}.md").write_text(markdown(res))
    chart(res, OUT / f"{stem}.png")
    print(markdown(res))
    log(f"wrote {OUT}/{stem}.json, .md and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
