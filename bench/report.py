"""The report of a bench run: targets as ratios, a markdown table and a PNG chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pick(rows: list[dict], server: str, mode: str, texts: int, conc: int) -> dict | None:
    return next(
        (
            r
            for r in rows
            if (r["server"], r["mode"], r["texts_per_request"], r["concurrency"])
            == (server, mode, texts, conc)
        ),
        None,
    )


def targets(res: dict) -> list[dict]:
    rows, out = res["server_runs"], []

    def add(name: str, value: float | None, op: str, bound: float) -> None:
        ok = None if value is None else (value <= bound if op == "<=" else value >= bound)
        out.append({"target": name, "value": value, "bound": f"{op} {bound:g}", "met": ok})

    for g in res["graph"]:
        add(
            f"graph {g['cell']} {g['shape']}: ort/eager time",
            g["ratio"],
            "<=",
            0.6 if g["shape"] == "1x20" else 1.0,
        )
    for p in res.get("encode_parts", []):
        add(
            f"Encoder.encode {p['texts_per_call']} text(s)/call: (tokenizer + graph) / encode",
            p["ratio"],
            ">=",
            0.8,
        )
    one, empty = pick(rows, "ours", "unary", 1, 16), pick(rows, "empty", "empty", 0, 16)
    add(
        "1 text/req x16: ours / empty-RPC req/s",
        one and empty and one["requests_per_s"] / empty["requests_per_s"],
        ">=",
        0.6,
    )
    b32 = pick(rows, "ours", "unary", 32, 16)
    add(
        "32 texts/req x16: ours / in-process Encoder texts/s",
        b32 and b32["texts_per_s"] / res["baselines"]["pipeline_32"]["texts_per_s"],
        ">=",
        0.8,
    )
    for texts in (1, 32):
        o, e = pick(rows, "ours", "unary", texts, 16), pick(rows, "eager", "unary", texts, 16)
        add(
            f"{texts} text(s)/req x16: ours / eager throughput",
            o and e and o["texts_per_s"] / e["texts_per_s"],
            ">=",
            2.0,
        )
        add(
            f"{texts} text(s)/req x16: ours / eager p99",
            o and e and o["p99_ms"] / e["p99_ms"],
            "<=",
            0.5,
        )
    for texts in (1, 32):  # each protocol against encoder.v1 on the same server, same run
        v1 = pick(rows, "protocols", "unary", texts, 16)
        for mode, label in (
            ("oip", "Open Inference ModelInfer"),
            ("http", "OpenAI /v1/embeddings"),
        ):
            r = pick(rows, "protocols", mode, texts, 16)
            add(
                f"{texts} text(s)/req x16: {label} / encoder.v1 texts/s",
                r and v1 and r["texts_per_s"] / v1["texts_per_s"],
                ">=",
                0.8 if texts == 32 else 0.0,
            )
    u, a = pick(rows, "protocols", "http", 1, 16), pick(rows, "aiohttp", "http", 1, 16)
    add(
        "1 text/req x16: HTTP on uvicorn / aiohttp req/s",
        a and u and u["requests_per_s"] / a["requests_per_s"],
        ">=",
        1.0,
    )
    docs = {d["chars"]: d for d in res.get("document", [])}
    if 1_000 in docs and len(docs) > 1:  # the largest document's server against a 1,000-char one's
        big = docs[max(docs)]
        add(
            f"document {max(docs):,} chars: server RSS peak over a 1,000-char one's (MB)",
            big["rss_peak_mb"] - docs[1_000]["rss_peak_mb"],
            "<=",
            16,
        )
        if max(docs) >= 1_000_000:  # a short document is mostly its stream's set-up (0.3-0.5)
            add(f"document {max(docs):,} chars: tokens/s vs batched", big["vs_batched"], ">=", 0.5)
    s = res["servers"]
    for name in ("protocols", "aiohttp"):  # what an HTTP listener adds to the idle server
        added = s[name]["rss_idle_mb"] - s["ours"]["rss_idle_mb"]
        add(
            f"RSS idle added by HTTP on {name.replace('protocols', 'uvicorn')} (MB)",
            added,
            "<=",
            30,
        )
    add("RSS peak: ours / eager", s["ours"]["rss_peak_mb"] / s["eager"]["rss_peak_mb"], "<=", 0.4)
    add("RSS peak: ours (MB)", s["ours"]["rss_peak_mb"], "<=", 150)
    add("start-to-SERVING, warm cache: ours (s)", s["ours"]["start_to_serving_s"], "<=", 1.0)
    return out


def markdown(res: dict) -> str:
    lines = [
        "| server | mode | texts/req | conc | req/s | texts/s | tokens/s | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["server_runs"]:
        lines.append(
            f"| {r['server']} | {r['mode']} | {r['texts_per_request']} | "
            f"{r['concurrency']} | {r['requests_per_s']:.0f} | {r['texts_per_s']:.0f} | "
            f"{r['tokens_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    b = res["baselines"]
    lines += [
        "",
        "| in-process baseline | texts/s |",
        "| --- | ---: |",
        f"| tokenizer alone ({b['tokenizer']['tokens_per_s']:.0f} tokens/s) | "
        f"{b['tokenizer']['texts_per_s']:.0f} |",
        f"| in-process Encoder.encode, 1 text/call | {b['pipeline_1']['texts_per_s']:.0f} |",
        f"| in-process Encoder.encode, 32 texts/call | {b['pipeline_32']['texts_per_s']:.0f} |",
        "",
        "| Encoder.encode, per pass | encode ms | tokenizer ms | graph ms | parts / encode |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {p['texts_per_call']} text(s)/call | {p['encode_s'] * 1e3:.1f} | "
            f"{p['tokenize_s'] * 1e3:.1f} | {p['graph_s'] * 1e3:.1f} | {p['ratio']:.2f} |"
            for p in res.get("encode_parts", [])
        ),
        "",
        "| graph | ort ms | eager ms | ort/eager |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {g['cell']} {g['shape']} | {g['ort_ms']:.3f} | {g['eager_ms']:.3f} | {g['ratio']:.2f} |"
        for g in res["graph"]
    ]
    s = res["servers"]
    lines += [
        "",
        "| server | start-to-SERVING s | RSS idle MB | RSS peak MB |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {k} | {v['start_to_serving_s']:.2f} | {v['rss_idle_mb']:.0f} | {v['rss_peak_mb']:.0f} |"
        for k, v in s.items()
    ]
    if res.get("document"):
        lines += [
            "",
            "| document characters | tokens | seconds | tokens/s | vs batched | RSS peak MB |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {d['chars']:,} | {d['tokens']:,} | {d['seconds']} | {d['tokens_per_s']:.0f} | "
            f"{d['vs_batched']:.2f} | {d['rss_peak_mb']:.1f} |"
            for d in res["document"]
        ]
    if res.get("serving_cost"):  # issue 19's table: server CPU from /proc, same run
        from bench.serving_cost import table

        lines += ["", "Serving path at the cost of its work (server on core 0, callers on 1):", ""]
        lines += [table(res["serving_cost"])]
    lines += ["", "| target | value | bound | met |", "| --- | ---: | --- | --- |"]
    lines += [
        f"| {t['target']} | {'n/a' if t['value'] is None else format(t['value'], '.2f')} "
        f"| {t['bound']} | {'n/a' if t['met'] is None else ('yes' if t['met'] else 'NO')} |"
        for t in res["targets"]
    ]
    return "\n".join(lines) + "\n"


def chart(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in res["server_runs"] if r["server"] != "empty"]
    keys = sorted({(r["mode"], r["texts_per_request"], r["concurrency"]) for r in runs})
    labels = [f"{m}\n{t}x{c}" for m, t, c in keys]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, len(keys) * 0.9), 8))
    for ax, metric, title in (
        (axes[0], "texts_per_s", "throughput (texts/s)"),
        (axes[1], "p99_ms", "p99 latency (ms, lower is better)"),
    ):
        for k, (server, color) in enumerate((("ours", "tab:blue"), ("eager", "tab:orange"))):
            vals = [(pick(runs, server, *key) or {}).get(metric, 0) for key in keys]
            ax.bar(np.arange(len(keys)) + (k - 0.5) * 0.4, vals, 0.4, label=server, color=color)
        if metric == "texts_per_s":
            ax.axhline(
                res["baselines"]["pipeline_32"]["texts_per_s"],
                ls="--",
                color="gray",
                label="in-process Encoder, 32/call",
            )
        ax.set_xticks(np.arange(len(keys)), labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"zh-rnn-encoder vs eager PyTorch, same gRPC stack ({res['machine']['cpus']} CPUs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
