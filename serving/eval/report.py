"""The results as a Markdown table, a JSON record of figures and data, and a grouped bar chart."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from zh_rnn_encoder.eval.run import Scores

FORMAT = "zh-rnn-encoder-eval/1"
# metric key -> column header ({k}: the neighbours' k), in table order
COLUMNS = {
    "probe_accuracy": "probe acc",
    "probe_macro_f1": "probe macro-F1",
    "label_p_at_k": "P@{k}",
    "label_mrr": "MRR",
    "topic_p_at_k": "topic P@{k}",
    "label_v_measure": "V label",
    "topic_v_measure": "V topic",
    "pairs_spearman": "pairs Spearman",
    "pairs_auc": "pairs AUC",
    "ood_accuracy": "OOD acc",
}
VERSIONS = ("zh-rnn-encoder", "numpy", "scikit-learn", "scipy", "onnxruntime", "onnx", "jieba")


def columns(results: Sequence[Scores]) -> list[str]:
    """The metrics any model has, in table order."""
    return [m for m in COLUMNS if any(m in r.metrics for r in results)]


def markdown(results: Sequence[Scores], k: int) -> str:
    cols = columns(results)
    head = ["model", *(COLUMNS[c].format(k=k) for c in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", *("---:" for _ in cols)]) + "|"]
    for r in results:
        cells = [r.name, *(f"{r.metrics[c]:.3f}" if c in r.metrics else "–" for c in cols)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def document(results: Sequence[Scores], rec: dict[str, Any]) -> str:
    """quality.md: the table, what each row is, and the data it was measured on."""
    k = rec["settings"]["k"]
    rows = "\n".join(f"- **{r.name}** ({r.kind}): {r.about}" for r in results)
    data = "\n".join(
        f"- {name}: {d['size']} ({', '.join(d['files'])})" for name, d in rec["data"].items()
    )
    return (
        f"# encoder-eval\n\n{markdown(results, k)}\nModels:\n{rows}\n\nData:\n{data}\n\n"
        f"Settings: {json.dumps(rec['settings'], sort_keys=True)}\n"
    )


def build_record(
    results: Sequence[Scores], data: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """quality.json: per model per metric, the chosen C, the data (files, sha256, sizes) and
    the settings. Nothing timed, so the same input gives the same file."""
    models = [
        {
            "name": r.name,
            "kind": r.kind,
            "about": r.about,
            "metrics": r.metrics,
            "probe_c": r.probe.c if r.probe else None,
            "valid_accuracy_by_c": {str(c): a for c, a in r.probe.valid_accuracy.items()}
            if r.probe
            else None,
        }
        for r in results
    ]
    return {
        "format": FORMAT,
        "settings": settings,
        "data": data,
        "models": models,
        "versions": {d: _version(d) for d in VERSIONS},
    }


def plot(results: Sequence[Scores], k: int, path: Path) -> None:
    """A grouped bar chart: one group per metric, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = columns(results)
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(cols) + 2), 4.5))
    for i, r in enumerate(results):
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(cols))]
        ax.bar(xs, [r.metrics.get(c, 0.0) for c in cols], width, label=r.name)
    ax.set_xticks(range(len(cols)), [COLUMNS[c].format(k=k) for c in cols], rotation=20)
    low = min([0.0, *(v for r in results for v in r.metrics.values())])
    ax.set_ylim(low, 1.0)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title("encoder-eval (test split)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def write(out: Path, results: Sequence[Scores], rec: dict[str, Any]) -> dict[str, Path]:
    """quality.md, quality.json and quality.png in ``out``, each written whole or not at all."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"quality.{kind}" for kind in ("md", "json", "png")}
    _atomic(paths["md"], lambda p: p.write_text(document(results, rec), encoding="utf-8"))
    text = json.dumps(rec, ensure_ascii=False, indent=2) + "\n"
    _atomic(paths["json"], lambda p: p.write_text(text, encoding="utf-8"))
    _atomic(paths["png"], lambda p: plot(results, rec["settings"]["k"], p))
    return paths


def _atomic(path: Path, write_to: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write_to(tmp)
    os.replace(tmp, path)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
