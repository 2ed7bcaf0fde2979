"""Start-up, readiness and shutdown of real servers, in process and as torch-free subprocesses."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.harness import InProcessServer, ServerProcess, health, wait_health
from tests.support.samples import SMALL, TUTORIAL
from zh_rnn_encoder.client import EncoderClient, encode_request
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.manifest import sha256_file


@pytest.fixture(scope="module")
def small_bundle(bundle_factory):
    return bundle_factory(cell="rnn", **SMALL)


def test_not_serving_until_self_test_passes(small_bundle, jieba_cache) -> None:
    srv = InProcessServer(small_bundle[0], jieba_cache)
    try:
        assert health(srv.target) == "NOT_SERVING"
        with EncoderClient(srv.target) as c, pytest.raises(grpc.RpcError) as e:
            c.encode(["你好"])
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "loading" in e.value.details()
        srv.load()
        assert health(srv.target) == "SERVING"
    finally:
        srv.stop()


def test_serves_where_torch_cannot_be_imported(small_bundle, tokenizer, jieba_cache) -> None:
    bundle, ckpt = small_bundle
    # configured through environment variables only, as in a container
    proc = ServerProcess(
        env={
            "BUNDLE": str(bundle),
            "LISTEN": "127.0.0.1:0",
            "THREADS": "1",
            "JIEBA_CACHE_DIR": str(jieba_cache),
        }
    )
    try:
        target = f"127.0.0.1:{proc.port()}"
        startup = wait_health(target, "SERVING")
        with EncoderClient(target) as c:
            got = c.encode([TUTORIAL])[0].vector
        ids = ckpt.vocab.encode(tokenizer.tokenize(TUTORIAL))
        import torch

        with torch.no_grad():
            want = ckpt.model(torch.from_numpy(ids[None]), torch.tensor([len(ids)]))[1][0].numpy()
        assert np.abs(got - want).max() <= contract.PARITY_ATOL
        assert "provider=CPUExecutionProvider threads=1" in proc.log
        assert startup < 30
    finally:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_sigterm_finishes_accepted_requests_then_exits(small_bundle, jieba_cache) -> None:
    proc = ServerProcess(
        "--bundle",
        str(small_bundle[0]),
        "--listen",
        "127.0.0.1:0",
        "--batch-wait-ms",
        "800",
        "--grace-period-s",
        "5",
        "--jieba-cache-dir",
        str(jieba_cache),
    )
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        with grpc.insecure_channel(target) as ch:
            watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest())
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            with EncoderClient(target) as c:
                pending = c.stub.Encode.future(encode_request([TUTORIAL]), timeout=10)
                time.sleep(0.3)  # the request now waits in the batcher
                t0 = time.monotonic()
                proc.proc.send_signal(signal.SIGTERM)
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
                watch.cancel()
                assert len(pending.result().encodings) == 1  # accepted before SIGTERM: answered
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
        assert "draining" in proc.log and "stopped" in proc.log
    finally:
        proc.kill()


def test_tampered_bundle_is_refused_at_startup(small_bundle, tmp_path, jieba_cache) -> None:
    bundle = shutil.copytree(small_bundle[0], tmp_path / "b")
    vocab = bundle / "vocab.json"
    vocab.write_text(
        vocab.read_text(encoding="utf-8").replace('"<unk>",', '"<UNK>",', 1), encoding="utf-8"
    )
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--jieba-cache-dir", str(jieba_cache)
    )
    assert proc.wait(60) == 2
    assert "vocab.json: sha256 mismatch" in proc.log and "refusing to serve" in proc.log


def test_missing_bundle_is_refused_at_startup(tmp_path) -> None:
    proc = ServerProcess("--bundle", str(tmp_path / "nowhere"), "--listen", "127.0.0.1:0")
    assert proc.wait(60) == 2
    assert "nowhere refused" in proc.log and "not a directory" in proc.log


def test_golden_mismatch_is_refused_at_startup(small_bundle, tmp_path, jieba_cache) -> None:
    bundle = shutil.copytree(small_bundle[0], tmp_path / "b")
    with np.load(bundle / "golden.npz") as z:
        arrays = dict(z)
    arrays["states"][0, 0, 0] += 0.01  # as if the graph computed something else than eager
    np.savez(bundle / "golden.npz", **arrays)
    manifest = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    manifest["files"]["golden.npz"] = sha256_file(bundle / "golden.npz")
    (bundle / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--jieba-cache-dir", str(jieba_cache)
    )
    assert proc.wait(60) == 2
    assert "golden.npz: sample 0" in proc.log


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(),
    reason="this onnxruntime has CUDA; tests/integration/test_cuda.py covers it",
)
def test_cuda_without_provider_is_a_startup_error(small_bundle) -> None:
    proc = ServerProcess(
        "--bundle", str(small_bundle[0]), "--listen", "127.0.0.1:0", "--device", "cuda"
    )
    assert proc.wait(60) == 2
    assert "CUDAExecutionProvider" in proc.log and "available providers: " in proc.log


def test_port_in_use_is_a_startup_error(small_bundle) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        proc = ServerProcess(
            "--bundle", str(small_bundle[0]), "--listen", f"127.0.0.1:{s.getsockname()[1]}"
        )
        assert proc.wait(60) == 2
        assert "cannot start" in proc.log
    finally:
        s.close()


def test_concurrent_clients_get_their_own_answers(small_bundle, jieba_cache) -> None:
    srv = InProcessServer(small_bundle[0], jieba_cache).load()
    texts = ["你好", TUTORIAL, "今天天气很好", "我们去公园吧", "臺灣的夜市很熱鬧"]
    try:
        with EncoderClient(srv.target) as c:
            want = {t: c.encode([t])[0].vector for t in texts}
            errors: list[str] = []

            def worker(k: int) -> None:
                for i in range(20):
                    batch = [texts[(k + i + j) % len(texts)] for j in range(1 + (k + i) % 4)]
                    for t, e in zip(batch, c.encode(batch)):
                        if np.abs(e.vector - want[t]).max() > contract.BATCH_INVARIANCE_ATOL:
                            errors.append(t)

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
        assert errors == []
    finally:
        srv.stop()


def test_unexpected_failure_is_internal_with_traceback_in_log(
    small_bundle, jieba_cache, caplog
) -> None:
    srv = InProcessServer(small_bundle[0], jieba_cache).load()
    encoder = srv.app.state.model().encoder
    healthy = encoder.session

    class Broken:
        def run_state(self, ids, lengths, initial=None):
            raise RuntimeError("simulated onnxruntime failure with a secret path /srv/x")

    try:
        with EncoderClient(srv.target) as c:
            encoder.session = Broken()
            with pytest.raises(grpc.RpcError) as e:
                c.encode(["你好"])
            assert e.value.code() == grpc.StatusCode.INTERNAL
            assert e.value.details() == "internal error; the server log has the details"
            assert "simulated onnxruntime failure" in caplog.text and "Traceback" in caplog.text
            encoder.session = healthy
            assert c.encode(["你好"])[0].vector.shape == (24,)
    finally:
        srv.stop()


def test_drain_serves_the_admit_window_then_refuses_on_headers(small_bundle, jieba_cache) -> None:
    srv = InProcessServer(small_bundle[0], jieba_cache).load()
    with EncoderClient(srv.target, retry=False) as c:
        assert c.encode(["你好"])[0].tokens == ["你好"]
        srv.loop.call_soon_threadsafe(srv.app.state.start_draining, 0.3)
        time.sleep(0.05)
        assert c.encode(["你好"])[0].tokens == ["你好"]  # within the window: still served
        time.sleep(0.4)
        with pytest.raises(grpc.RpcError) as e:
            c.encode(["你好"])
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in e.value.details()
        assert c.health() == "SERVING"  # the app's drain sets health; the gate is the state's
    srv.stop()
