"""Baseline 4: eager PyTorch of the same checkpoint behind the same gRPC server (bench only)."""

from __future__ import annotations

import sys

import numpy as np
import torch

from zh_rnn_encoder.core.bundle import Bundle
from zh_rnn_encoder.core.enums import Device
from zh_rnn_encoder.export import checkpoint as ckpt_io
from zh_rnn_encoder.transport.app import main


class EagerSession:
    """Quacks like zh_rnn_encoder.runtime.session.Session, running the torch module instead."""

    provider = "torch-eager"

    def __init__(self, checkpoint: str, bundle: Bundle, device: Device, threads: int) -> None:
        torch.set_num_threads(threads)
        self.model = ckpt_io.load(checkpoint).model.to(device.value).eval()
        self.device, self.threads = device.value, threads
        self.output_dim = bundle.model.output_dim

    def run(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            s, f = self.model(torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths))
        return s.cpu().numpy(), f.cpu().numpy()

    def run_state(self, ids: np.ndarray, lengths: np.ndarray, initial: dict | None = None) -> dict:
        """Session.run_state's outputs (the bench sends no initial states)."""
        states, final = self.run(ids, lengths)
        return {"states": states, "final": final}


if __name__ == "__main__":
    # usage: python -m bench.eager_server CHECKPOINT [encoder-serve flags]
    ckpt = sys.argv[1]
    sys.exit(main(sys.argv[2:], session_factory=lambda b, d, t: EagerSession(ckpt, b, d, t)))
