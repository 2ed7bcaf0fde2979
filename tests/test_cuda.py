"""GPU parity: runs only where onnxruntime has the CUDA execution provider (never in CI)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from tests.conftest import SMALL
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.runtime.selftest import run_golden
from zh_rnn_encoder.runtime.session import open_session

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(),
        reason="onnxruntime here has no CUDAExecutionProvider "
        "(install onnxruntime-gpu on a CUDA host to run this)",
    ),
]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"cell": "lstm", "bidirectional": True, "num_layers": 2, **SMALL},
        {"cell": "gru", **SMALL},
    ],
)
def test_golden_parity_on_cuda(bundle_factory, tokenizer, kw: dict) -> None:
    bundle = load_bundle(bundle_factory(**kw)[0])
    session = open_session(bundle, device="cuda")
    assert session.provider == "CUDAExecutionProvider"
    assert run_golden(bundle, tokenizer, session) <= contract.GOLDEN_ATOL
