"""An int8 bundle (encoder-export bundle --quantize) served by encoder-serve in a process without
torch: it passes its own golden self-test and answers Encode with its own graph's vectors."""

from __future__ import annotations

import dataclasses
import json
import signal
import urllib.request

import grpc
import numpy as np
import pytest

from tests.support.harness import InProcessServer, ServerProcess, wait_health
from tests.support.samples import SMALL, TEXTS, TUTORIAL
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.export import export_bundle, quantize
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as oip_grpc
from zh_rnn_encoder.runtime.session import Session


@pytest.mark.parametrize("name", sorted(quantize.OPTIONS))
def test_int8_bundle_serves(bundle_factory, tmp_path, jieba_cache, name: str) -> None:
    flt, ckpt = bundle_factory(cell="lstm", **SMALL)
    out = tmp_path / name
    export_bundle(ckpt, out, "quick", jieba_cache=jieba_cache, quantized=name)
    proc = ServerProcess(
        "--bundle", str(out), "--listen", "127.0.0.1:0", "--threads", "1",
        "--jieba-cache-dir", str(jieba_cache),
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        with EncoderClient(target) as c:
            alone = c.encode([TUTORIAL])[0].vector
            batch = [e.vector for e in c.encode([TUTORIAL, *TEXTS])]
    finally:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.log
    ids = ckpt.vocab.encode(Tokenizer(cache_dir=jieba_cache).tokenize(TUTORIAL))[None]
    lengths = np.array([ids.shape[1]])
    own = Session(out / contract.GRAPH_FILE).run(ids, lengths)[1][0]
    float_ = Session(flt / contract.GRAPH_FILE).run(ids, lengths)[1][0]
    opt = quantize.OPTIONS[name]
    np.testing.assert_allclose(alone, own, rtol=0, atol=contract.BATCH_INVARIANCE_ATOL)
    np.testing.assert_allclose(batch[0], own, rtol=0, atol=opt.invariance_atol)
    assert 0 < np.abs(alone - float_).max() <= opt.float_atol


def test_every_protocol_says_the_graph_is_quantized(bundle_factory, tmp_path, jieba_cache) -> None:
    """GetModelInfo, Open Inference model metadata and /v1/models carry the bundle's record of
    its quantization: the scheme and the bounds export checked."""
    _, ckpt = bundle_factory(cell="rnn", **SMALL)
    out = tmp_path / "int8"
    export_bundle(ckpt, out, "quick", jieba_cache=jieba_cache, quantized="int8")
    want = dataclasses.asdict(load_bundle(out).manifest.graph.quantization)
    assert want["scheme"] == "int8" and 0 < want["float_max_abs_err"] <= want["float_atol"]
    srv = InProcessServer(out, jieba_cache, model_name="q", http_listen="127.0.0.1:0").load()
    try:
        with EncoderClient(srv.target) as c:
            info = c.info()["quantization"]
        with grpc.insecure_channel(srv.target) as ch:
            meta = oip_grpc.GRPCInferenceServiceStub(ch).ModelMetadata(
                oip.ModelMetadataRequest(name="q"), timeout=30
            )
        with urllib.request.urlopen(srv.http_url + "/v1/models/q", timeout=30) as r:
            models = json.loads(r.read())
    finally:
        srv.stop()
    floats = [k for k, v in want.items() if isinstance(v, float)]
    assert {k: info[k] for k in ("scheme", "method")} == {k: want[k] for k in ("scheme", "method")}
    for k in floats:  # float32 on the wire
        assert np.isclose(info[k], want[k], rtol=1e-6, atol=0), k
    assert json.loads(meta.properties["quantization"]) == want
    assert models["quantization"] == want
