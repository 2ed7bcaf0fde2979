"""Per-epoch metrics as JSON lines, and a PNG of the curves beside them."""

from __future__ import annotations

import json
import os
from pathlib import Path

METRICS_FILE, CURVES_FILE = "metrics.jsonl", "curves.png"


def write_metrics(out: Path, history: list[dict]) -> None:
    tmp = out / f".{METRICS_FILE}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    os.replace(tmp, out / METRICS_FILE)


def plot(out: Path, history: list[dict]) -> None:
    """Loss terms on the left, validation accuracy (when labelled) on the right."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key in sorted({k for r in history for k in r if k.endswith("loss") or "train_" in k}):
        if key.endswith("texts_per_s"):
            continue
        left.plot(epochs, [r.get(key) for r in history], marker="o", label=key)
    left.set(xlabel="epoch", ylabel="loss", title="losses")
    left.legend(fontsize=8)
    if any("valid_accuracy" in r for r in history):
        right.plot(epochs, [r.get("valid_accuracy") for r in history], marker="o")
    right.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    fig.tight_layout()
    tmp = out / f".{CURVES_FILE}.tmp.png"
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, out / CURVES_FILE)
