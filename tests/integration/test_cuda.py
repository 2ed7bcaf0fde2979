"""GPU: runs only where onnxruntime has the CUDA execution provider (never in CI).

`bench/gpu_check.sh` runs these on the GPU machine with onnxruntime-gpu carried as a wheel.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tests.support import ROOT
from tests.support.harness import InProcessServer
from tests.support.reference import eager
from tests.support.samples import SMALL, TEXTS
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.runtime.encoder import Encoder
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

CONFIGS = [
    {},
    {"cell": "lstm", "bidirectional": True, "num_layers": 2, **SMALL},
    {"cell": "gru", **SMALL},
    {"formulation": "native"},  # the RNN op, cuDNN's kernel
]
IDS = ["rnn", "bilstm2", "gru", "rnn-native"]
# Many lengths in one batch: the GPU kernels see other batch sizes than the texts alone.
CORPUS = ROOT / "bench" / "texts_zh.txt"


def _texts(n: int) -> list[str]:
    lines = [x for x in CORPUS.read_text(encoding="utf-8").splitlines() if x.strip()]
    return lines[:n]


@pytest.mark.parametrize("kw", CONFIGS, ids=IDS)
def test_golden_parity_on_cuda(bundle_factory, tokenizer, kw: dict) -> None:
    bundle = load_bundle(bundle_factory(**kw)[0])
    session = open_session(bundle, device="cuda")
    assert session.provider == "CUDAExecutionProvider"
    err = run_golden(bundle, tokenizer, session)
    print(f"golden max abs err on CUDA ({kw or 'rnn'}): {err:.3g}")
    assert err <= contract.GOLDEN_ATOL


@pytest.mark.parametrize("kw", CONFIGS, ids=IDS)
def test_encoder_on_cuda_matches_cpu_and_is_batch_invariant(bundle_factory, jieba_cache, kw):
    path, _ = bundle_factory(**kw)
    gpu = Encoder.from_bundle(path, "cuda", jieba_cache_dir=jieba_cache)
    cpu = Encoder.from_bundle(path, "cpu", threads=1, jieba_cache_dir=jieba_cache)
    texts = _texts(96)
    on_gpu = gpu.encode(texts, token_vectors=True)
    on_cpu = cpu.encode(texts, token_vectors=True)
    vs_cpu = max(
        max(np.abs(g.vector - c.vector).max(), np.abs(g.token_vectors - c.token_vectors).max())
        for g, c in zip(on_gpu, on_cpu, strict=True)
    )
    alone = [gpu.encode([t])[0].vector for t in texts[:24]]
    invariance = max(np.abs(a - b.vector).max() for a, b in zip(alone, on_gpu, strict=False))
    print(f"{kw or 'rnn'}: CUDA vs CPU max abs {vs_cpu:.3g}; alone vs batch {invariance:.3g}")
    assert vs_cpu <= contract.GOLDEN_ATOL
    assert invariance <= contract.BATCH_INVARIANCE_ATOL


@pytest.mark.parametrize("kw", CONFIGS[:2], ids=IDS[:2])
def test_server_on_cuda_matches_eager(bundle_factory, jieba_cache, tokenizer, kw) -> None:
    """The whole path on the GPU: --device cuda, self-test at load, gRPC, batcher."""
    bundle, ckpt = bundle_factory(**kw)
    srv = InProcessServer(bundle, jieba_cache, device="cuda").load()
    client = EncoderClient(srv.target)
    try:
        ref = eager(ckpt, tokenizer, TEXTS)
        batch = client.encode(TEXTS, token_vectors=True)
        for i, text in enumerate(TEXTS):
            alone = client.encode([text], token_vectors=True)[0]
            for e in (alone, batch[i]):
                assert np.abs(e.vector - ref[i][1]).max() <= contract.GOLDEN_ATOL
                assert np.abs(e.token_vectors - ref[i][0]).max() <= contract.GOLDEN_ATOL
            assert np.abs(alone.vector - batch[i].vector).max() <= contract.BATCH_INVARIANCE_ATOL
    finally:
        client.close()
        srv.stop()


@pytest.mark.parametrize("kw", [CONFIGS[0], {"cell": "lstm", "num_layers": 2, **SMALL}],
                         ids=["rnn", "lstm2"])  # fmt: skip
def test_states_and_documents_on_cuda_match_cpu(bundle_factory, jieba_cache, kw) -> None:
    """The optional initial state inputs and h_n/c_n outputs on the GPU: continuing a text and
    streaming a document give what the CPU gives."""
    path, _ = bundle_factory(**kw)
    gpu = Encoder.from_bundle(path, "cuda", jieba_cache_dir=jieba_cache)
    cpu = Encoder.from_bundle(path, "cpu", threads=1, jieba_cache_dir=jieba_cache)
    text = "".join(_texts(200))
    got = {}
    for name, enc in (("gpu", gpu), ("cpu", cpu)):
        a = enc.encode([TEXTS[0]], return_state=True)[0]
        b = enc.encode([TEXTS[2]], pooling="mean", initial_states=[a.state], return_state=True)[0]
        doc = enc.encode_document([text[i : i + 700] for i in range(0, len(text), 700)],
                                  pooling="mean")  # fmt: skip
        got[name] = (b.vector, b.state.h, doc.vector)
    errs = [float(np.abs(g - c).max()) for g, c in zip(got["gpu"], got["cpu"], strict=True)]
    print(f"{kw or 'rnn'}: state and document, CUDA vs CPU max abs {max(errs):.3g}")
    assert max(errs) <= contract.GOLDEN_ATOL
