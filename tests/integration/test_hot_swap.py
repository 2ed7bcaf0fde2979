"""Hot swap (SIGHUP, transport/reload.py) with real bundles behind a symlink that is repointed:
zero failed calls on every protocol while the model changes under 8 callers, the version going
from A's to B's within a second of the signal and each vector equal to its version's in-process
Encoder; a corrupt bundle or a broken pin is refused while A (or B) serves on; calls that hold
the old model finish on it; --workers forwards the signal to every worker."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.support.harness import (
    InProcessServer,
    ServerProcess,
    free_port,
    health,
    scrape,
    wait_health,
)
from tests.support.samples import SMALL, TEXTS
from tools.stress.swap import point, versions_of
from zh_rnn_encoder.client import EncoderClient, encode_request, from_response
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.core.errors import NotReady
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as oip_grpc
from zh_rnn_encoder.runtime.encoder import Encoder
from zh_rnn_encoder.runtime.models import ModelSpec
from zh_rnn_encoder.runtime.types import EncodeOptions

from .test_models import _infer

ATOL = contract.BATCH_INVARIANCE_ATOL
SWAP_WITHIN_S = 1.0  # the bound: every call that starts later gets B


@pytest.fixture(scope="module")
def ab(bundle_factory, tmp_path_factory) -> dict[str, Path]:
    """A and B (same shapes, other seeds), and "bad": B re-dated (so a new version) with one
    byte of its graph changed (a reload whose bundle.json is unchanged reads nothing more)."""
    a, b = bundle_factory(**SMALL)[0], bundle_factory(seed=11, **SMALL)[0]
    _, bad = versions_of(b, tmp_path_factory.mktemp("corrupt"))
    graph = bad / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    return {"A": a, "B": b, "bad": bad}


@pytest.fixture(scope="module")
def want(ab, jieba_cache) -> dict[str, tuple[str, np.ndarray]]:
    """Each good bundle's version and the vectors of TEXTS[:2] from its in-process Encoder."""
    out = {}
    for k in ("A", "B"):
        enc = Encoder.from_bundle(ab[k], threads=1, jieba_cache_dir=jieba_cache)
        out[k] = (bundle_digest(ab[k]), np.stack([e.vector for e in enc.encode(TEXTS[:2])]))
    assert out["A"][0] != out["B"][0] and not np.allclose(out["A"][1], out["B"][1], atol=ATOL)
    return out


class Callers:
    """8 threads calling without pause, each on its own connection: Encode x4, one long
    EncodeStream, Tokenize, Open Inference ModelInfer and OpenAI HTTP, and one watching health;
    each answer is (start, end, version, vectors)."""

    def __init__(self, target: str, http_port: int) -> None:
        self.target, self.http_port = target, http_port
        self.stop = threading.Event()
        self.answers: list[tuple[float, float, str, np.ndarray | None]] = []
        self.errors: list[str] = []
        self.health: list[str] = []
        self._lock = threading.Lock()
        kinds = ["encode"] * 4 + ["stream", "tokenize", "oip", "http"]
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in kinds]
        self.threads.append(threading.Thread(target=self._watch_health))

    def __enter__(self) -> Callers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _add(self, t0: float, version: str, vectors: np.ndarray | None) -> None:
        with self._lock:
            self.answers.append((t0, time.monotonic(), version, vectors))

    def _watch_health(self) -> None:
        while not self.stop.is_set():
            try:
                self.health.append(health(self.target))
            except grpc.RpcError as e:
                self.health.append(e.code().name)
            time.sleep(0.02)

    def _run(self, kind: str) -> None:
        try:
            getattr(self, "_" + kind)()
        except Exception as e:
            self.errors.append(f"{kind}: {e!r}")

    def _encode(self) -> None:
        with EncoderClient(self.target, timeout=30) as c:
            while not self.stop.is_set():
                t0 = time.monotonic()
                got = c.encode(TEXTS[:2])
                self._add(t0, got[0].model_version, np.stack([g.vector for g in got]))

    def _stream(self) -> None:
        """One stream across the swap: each request is looked up on its own."""
        sent: list[float] = []

        def requests():
            while not self.stop.is_set():
                sent.append(time.monotonic())
                yield encode_request(TEXTS[:2])
                time.sleep(0.005)

        with EncoderClient(self.target, timeout=120) as c:
            for i, resp in enumerate(c.encode_stream(requests())):
                vectors = np.stack([e.vector for e in from_response(resp)])
                self._add(sent[i], resp.model_version, vectors)

    def _tokenize(self) -> None:
        with EncoderClient(self.target, timeout=30) as c:
            while not self.stop.is_set():
                t0 = time.monotonic()
                self._add(t0, c.tokenize(TEXTS[:2])[0].model_version, None)

    def _oip(self) -> None:
        with grpc.insecure_channel(self.target) as ch:
            stub = oip_grpc.GRPCInferenceServiceStub(ch)
            while not self.stop.is_set():
                t0 = time.monotonic()
                r = stub.ModelInfer(_infer("general", TEXTS[:2]), timeout=30)
                got = np.frombuffer(r.raw_output_contents[0], "<f4").reshape(2, -1)
                self._add(t0, r.model_version, got)

    def _http(self) -> None:
        body = json.dumps({"model": "general", "input": TEXTS[:2]}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        while not self.stop.is_set():
            t0 = time.monotonic()
            conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = json.loads(r.read())
            if r.status != 200:
                raise AssertionError(f"HTTP {r.status}: {data}")
            vectors = np.array([d["embedding"] for d in data["data"]], np.float32)
            self._add(t0, r.headers["x-model-version"], vectors)
        conn.close()

    def after(self, t: float) -> list[tuple[float, float, str, np.ndarray | None]]:
        with self._lock:
            return [a for a in self.answers if a[0] >= t]


def _wait(predicate, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)


def _vectors_match(answers, want) -> None:
    by_version = {v: vec for v, vec in want.values()}
    for _, _, version, vectors in answers:
        assert version in by_version, version
        if vectors is not None:
            assert np.abs(vectors - by_version[version]).max() <= ATOL, version


def test_swap_under_load_fails_no_call_and_refuses_a_corrupt_bundle(
    ab, want, jieba_cache, tmp_path
) -> None:
    link = tmp_path / "current"
    point(link, ab["A"])
    mport, http_port_file = free_port(), tmp_path / "http-port"
    proc = ServerProcess(
        "--model", f"general={link}", "--listen", "127.0.0.1:0", "--threads", "1",
        "--jieba-cache-dir", str(jieba_cache), "--metrics-listen", f"127.0.0.1:{mport}",
        "--http-listen", "127.0.0.1:0", "--http-port-file", str(http_port_file),
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING")
        _wait(http_port_file.exists, 60, "the HTTP port")
        (va, _), (vb, _) = want["A"], want["B"]
        with Callers(target, int(http_port_file.read_text())) as callers:
            _wait(lambda: len(callers.answers) > 50, 60, "calls before the swap")
            point(link, ab["B"])
            signalled = time.monotonic()
            proc.proc.send_signal(signal.SIGHUP)
            _wait(lambda: len(callers.after(signalled + SWAP_WITHIN_S)) > 50, 60, "calls after")
            late = callers.after(signalled + SWAP_WITHIN_S)
            assert {a[2] for a in late} == {vb}, "calls that started 1 s after the signal got A"
            _wait(lambda: "released after its last call" in proc.log, 30, "A released")

            # A corrupt bundle: refused, B serves on, nothing fails.
            point(link, ab["bad"])
            refused = time.monotonic()
            proc.proc.send_signal(signal.SIGHUP)
            _wait(lambda: "refused bundle" in proc.log, 30, "the refusal")
            logged = time.monotonic()
            _wait(lambda: len(callers.after(logged)) > 30, 60, "calls after the refusal")
            assert {a[2] for a in callers.after(refused)} == {vb}
        assert callers.errors == [], callers.errors[:3]
        assert set(callers.health) == {"SERVING"}, "health left SERVING during a reload"
        kinds = {a[2] for a in callers.answers}
        assert kinds == {va, vb}
        _vectors_match(callers.answers, want)
        assert f"swapped sha256:{va} -> sha256:{vb}" in proc.log
        assert "still referenced" not in proc.log  # A's memory was given back
        record = proc.log[proc.log.index("refused bundle") :][:2000]  # the problems follow
        assert f"still serving sha256:{vb}" in record and str(ab["bad"]) in record, record
        assert "model.onnx" in record, record
        samples = scrape(mport)
        key = 'encoder_model_reloads_total{model="general",outcome="%s"}'
        assert samples[key % "swapped"] == 1 and samples[key % "refused"] == 1
        version = 'encoder_model_version{model="general",version="%s"}'
        assert samples[version % vb] == 1 and samples[version % va] == 0
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()


@pytest.fixture
def served(ab, jieba_cache, tmp_path):
    """An in-process server of one model behind a symlink to A."""
    link = tmp_path / "current"
    point(link, ab["A"])
    srv = InProcessServer(None, jieba_cache, models=(ModelSpec("general", link),)).load()
    yield srv, link
    srv.stop()


def test_a_call_holding_the_old_model_finishes_on_it(served, ab, want) -> None:
    srv, link = served
    models, reloader = srv.app.state.models, srv.app.reloader

    async def scenario() -> None:
        assert await reloader.reload() == {"general": "unchanged"}
        with models.hold() as held:
            point(link, ab["B"])
            assert await reloader.reload() == {"general": "swapped"}
            assert models.get().version == want["B"][0] != held.version
            await asyncio.sleep(0.1)  # a retirement that did not wait would close it now
            with await held.encoder.admit(TEXTS[:2], EncodeOptions()) as admitted:
                out = await held.encoder.encode_admitted(admitted)
            got = np.stack([e.vector for e in out.encodings])
            assert np.abs(got - want["A"][1]).max() <= ATOL
        await asyncio.sleep(0.2)  # released: the retirement closes it
        admitted = await held.encoder.admit(TEXTS[:1], EncodeOptions())
        with admitted, pytest.raises(NotReady):
            await held.encoder.encode_admitted(admitted)

    srv.call(scenario())


def test_refused_reloads_keep_the_model(served, ab, want, tmp_path) -> None:
    srv, link = served
    reloader, models = srv.app.reloader, srv.app.state.models
    for target in (ab["bad"], tmp_path / "nowhere"):
        point(link, target)
        assert srv.call(reloader.reload()) == {"general": "refused"}
        assert models.get().version == want["A"][0]
    # a pinned model refuses any other bundle: a new version needs a new pin (a restart)
    reloader.specs = (ModelSpec("general", link, want["A"][0]),)
    point(link, ab["B"])
    assert srv.call(reloader.reload()) == {"general": "refused"}
    assert models.get().version == want["A"][0]


def test_workers_forward_sighup_to_every_worker(ab, want, jieba_cache, tmp_path) -> None:
    link = tmp_path / "current"
    point(link, ab["A"])
    mport = free_port()
    proc = ServerProcess(
        "--model", f"general={link}", "--listen", "127.0.0.1:0", "--workers", "2",
        "--jieba-cache-dir", str(jieba_cache), "--metrics-listen", f"127.0.0.1:{mport}",
    )  # fmt: skip
    version = 'encoder_model_version{model="general",version="%s"}'
    try:
        target = f"127.0.0.1:{proc.port()}"
        (va, _), (vb, _) = want["A"], want["B"]
        _wait(lambda: scrape(mport).get(version % va) == 2, 60, "both workers on A")
        point(link, ab["B"])
        proc.proc.send_signal(signal.SIGHUP)
        _wait(lambda: scrape(mport).get(version % vb) == 2, 30, "both workers on B")
        assert scrape(mport)[version % va] == 0
        for _ in range(8):  # new connections, spread over the workers by the kernel
            with EncoderClient(target, timeout=30) as c:
                assert c.encode(TEXTS[:1])[0].model_version == vb
        assert proc.log.count("swapped sha256:") == 2, proc.log
        _wait(lambda: proc.log.count("released after its last call") == 2, 30, "A released")
        assert "still referenced" not in proc.log
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        proc.kill()
