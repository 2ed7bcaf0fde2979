"""`python -m bench.device_parts`: where Encoder.encode's time goes, per device (issue 19, item 6).

For each cell and texts per call: end to end (``Encoder.encode``), the tokenizer alone
(``Encoder.tokenize``), and the graph alone on the Encoder's own padded runs (``plan_runs`` within
max_batch_tokens, ``pad``, ``Session.run_state`` as the Encoder calls it), all in texts/s. Also
the graph on all texts as one run, and for CUDA the graph through IOBinding: outputs left on the
device (``iob``), and inputs already there too (``dev``). The CUDA columns need onnxruntime-gpu.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import onnxruntime as ort

from bench import run as bench
from bench.loadgen import load_texts
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.runtime.cpus import available_cpus
from zh_rnn_encoder.runtime.encoder import Encoder
from zh_rnn_encoder.runtime.padding import pad, plan_runs
from zh_rnn_encoder.runtime.session import Session


def padded_runs(enc: Encoder, texts: list[str], budget: int) -> list[tuple]:
    """The (ids, lengths) runs the Encoder builds for ``texts`` under a token budget."""
    rows = [t.ids for t in enc.tokenize(texts)]
    pad_id = enc.bundle.vocab.pad_id
    return [pad([rows[i] for i in r], pad_id) for r in plan_runs([len(x) for x in rows], budget)]


def bound(sess: ort.InferenceSession, runs: list[tuple], inputs_on_device: bool) -> list:
    """One IOBinding per run, every output bound to CUDA memory (left there)."""
    out = []
    for ids, lengths in runs:
        io = sess.io_binding()
        for name, arr in ((contract.IDS.name, ids), (contract.LENGTHS.name, lengths)):
            if inputs_on_device:
                io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
            else:
                io.bind_cpu_input(name, arr)
        for o in sess.get_outputs():
            io.bind_output(o.name, "cuda")
        out.append(io)
    return out


def graph(session: Session, runs: list[tuple]) -> None:
    for ids, lengths in runs:
        session.run_state(ids, lengths, None)


def run_bound(sess: ort.InferenceSession, ios: list) -> None:
    for io in ios:
        sess.run_with_iobinding(io)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.device_parts", description=__doc__)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument(
        "--cells",
        nargs="*",
        default=["rnn", "rnn:native", "lstm", "gru"],
        help="cells, or CELL:FORMULATION (rnn:native, the RNN op that runs on cuDNN)",
    )
    ap.add_argument("--sizes", nargs="*", type=int, default=[32, 512])
    ap.add_argument("--devices", nargs="*", default=["cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=bench.ROOT / "bench" / "results" / "device-parts")
    a = ap.parse_args()
    bench.set_out(a.out)
    texts, tok = load_texts(), bench.Tokenizer(cache_dir=bench.CACHE)
    print(
        f"onnxruntime {ort.__version__}, {ort.get_available_providers()}, {available_cpus()} CPUs"
    )
    print(
        "| cell | texts/call | device | runs (tokens padded) | e2e texts/s | tokenize texts/s "
        "| tokenize share | graph texts/s | graph share | graph 1 run (tokens) | iob | dev |"
    )
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for cell in a.cells:
        bundle, _ = bench.build_model(cell, tok)
        enc = {d: Encoder.from_bundle(bundle, d, jieba_cache_dir=bench.CACHE) for d in a.devices}
        for n in a.sizes:
            batch = (texts * (n // len(texts) + 1))[:n]
            tps = {}
            for d, e in enc.items():
                runs = padded_runs(e, batch, e.config.max_batch_tokens)
                one = padded_runs(e, batch, 10**9)
                padded = sum(ids.size for ids, _ in runs)
                e2e = bench.timeit(partial(e.encode, batch), a.seconds)
                tk = bench.timeit(partial(e.tokenize, batch), a.seconds)
                g = bench.timeit(partial(graph, e.session, runs), a.seconds)
                g1 = bench.timeit(partial(graph, e.session, one), a.seconds)
                extra = ["", ""]
                if d == "cuda":
                    for k, on_dev in enumerate((False, True)):
                        ios = bound(e.session.ort, runs, on_dev)
                        t = bench.timeit(partial(run_bound, e.session.ort, ios), a.seconds)
                        extra[k] = f"{n / t:.0f}"
                tps[d] = (n / e2e, n / g)
                print(
                    f"| {cell} | {n} | {d} | {len(runs)} ({padded}) | {n / e2e:.0f} | {n / tk:.0f} "
                    f"| {tk / e2e:.0%} | {n / g:.0f} | {g / e2e:.0%} "
                    f"| {n / g1:.0f} ({one[0][0].size}) "
                    f"| {extra[0]} | {extra[1]} |",
                    flush=True,
                )
            if "cpu" in tps and "cuda" in tps:
                c, g = tps["cpu"], tps["cuda"]
                ratios.append(f"| {cell} | {n} | {g[0] / c[0]:.2f} | {g[1] / c[1]:.2f} |")
    if ratios:
        print(
            "\n| cell | texts/call | CUDA/CPU e2e | CUDA/CPU graph |\n| --- | ---: | ---: | ---: |"
        )
        print("\n".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
