"""Parity of every tutorial module option after export, on the full verification grid.

`python -m bench.module_parity` builds each module at the tutorial's sizes (embedding 128, hidden
256), brings it over with checkpoint_from_modules and verifies the graph against eager PyTorch on
batch {1, 3, 17, 64} x seq {1, 2, 7, 33, 128, 512} plus 8 random shapes; prints a markdown table.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from zh_rnn_encoder.export import checkpoint_from_modules
from zh_rnn_encoder.export.onnx_export import build_graph
from zh_rnn_encoder.export.verify import GRIDS, verify

E, H, ROWS = 128, 256, 500
OPTIONS = {
    "nn.RNN(nonlinearity='relu')": (lambda: nn.RNN(E, H, nonlinearity="relu"), {}),
    "nn.RNN(relu, 2 layers, bidirectional)": (
        lambda: nn.RNN(E, H, 2, nonlinearity="relu", bidirectional=True),
        {},
    ),
    "nn.RNN(bias=False)": (lambda: nn.RNN(E, H, bias=False), {}),
    "nn.LSTM(bias=False, 2 layers)": (lambda: nn.LSTM(E, H, 2, bias=False), {}),
    "nn.GRU(bias=False, bidirectional)": (lambda: nn.GRU(E, H, bias=False, bidirectional=True), {}),
    "nn.GRU(batch_first=True)": (lambda: nn.GRU(E, H, batch_first=True), {}),
    "nn.LSTM(2 layers, dropout=0.5)": (lambda: nn.LSTM(E, H, 2, dropout=0.5), {}),
    "nn.Embedding(padding_idx=0) + nn.RNN": (lambda: nn.RNN(E, H), {"padding_idx": 0}),
    "nn.Embedding(max_norm=1.0) + nn.RNN": (lambda: nn.RNN(E, H), {"max_norm": 1.0}),
}


def main() -> None:
    print("| module | max abs err | batch invariance | shapes | verify s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (make_rnn, emb_kw) in OPTIONS.items():
        torch.manual_seed(0)
        rnn, embedding = make_rnn(), nn.Embedding(ROWS, E, **emb_kw)
        ckpt = checkpoint_from_modules(embedding, rnn, {f"w{i}": i for i in range(ROWS)})
        t0 = time.perf_counter()
        r = verify(build_graph(ckpt.model, "0" * 64), ckpt.model, **GRIDS["full"])
        took = time.perf_counter() - t0
        print(
            f"| `{name}` | {r.max_abs_err:.2e} | {r.max_invariance_err:.2e} | {r.cases} | "
            f"{took:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
