"""Shared fixtures: small corpora and bundles built once per session in temporary directories."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def jieba_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jieba-cache")


@pytest.fixture(scope="session")
def tokenizer(jieba_cache: Path):
    from zh_rnn_encoder.core.tokenizer import Tokenizer

    return Tokenizer(cache_dir=jieba_cache)


@pytest.fixture(scope="session")
def default_corpus() -> Path:
    from zh_rnn_encoder.export.cli import DEFAULT_CORPUS

    return DEFAULT_CORPUS


@pytest.fixture(scope="session")
def bundle_factory(tmp_path_factory: pytest.TempPathFactory, tokenizer, default_corpus: Path):
    """build(cell=..., num_layers=..., bidirectional=..., formulation=..., **sizes) -> (bundle
    dir, checkpoint)."""
    from zh_rnn_encoder.core.manifest import ModelConfig, TokenizerConfig
    from zh_rnn_encoder.core.vocab import Vocab
    from zh_rnn_encoder.export import Checkpoint, export_bundle, init_model

    lines = default_corpus.read_text(encoding="utf-8").splitlines()
    vocab = Vocab.build(tokenizer.tokenize(x) for x in lines)
    cache: dict = {}

    def build(seed: int = 0, formulation: str | None = None, **kw):
        key = (seed, formulation, tuple(sorted(kw.items())))
        if key not in cache:
            model = init_model(ModelConfig(vocab_size=len(vocab), **kw), seed)
            ckpt = Checkpoint(model, vocab, TokenizerConfig())
            out = tmp_path_factory.mktemp("bundle") / "b"
            # verified by the tests that use it (parity with eager PyTorch through the server)
            export_bundle(ckpt, out, "none", formulation=formulation)
            cache[key] = (out, ckpt)
        return cache[key]

    return build


@pytest.fixture(scope="session")
def scaled_relu(tmp_path_factory: pytest.TempPathFactory, bundle_factory):
    """scaled_relu(scale) -> the bundle of a small relu RNN with its recurrent matrix scaled:
    0.2 settles; above 1 it is ``scale`` x identity, so a state grows that much with every step
    where positive (4: past float32's range after about 64 tokens)."""
    import copy

    import torch

    from tests.support.samples import SMALL
    from zh_rnn_encoder.export import Checkpoint, export_bundle

    cache: dict = {}

    def build(scale: float) -> Path:
        if scale not in cache:
            _, ckpt = bundle_factory(nonlinearity="relu", **SMALL)
            model = copy.deepcopy(ckpt.model)  # the factory's own is shared
            with torch.no_grad():
                w = model.rnn.weight_hh_l0
                w.copy_(scale * torch.eye(w.shape[0]) if scale > 1 else scale * w)
            out = tmp_path_factory.mktemp("relu") / f"relu-{scale}"
            export_bundle(Checkpoint(model, ckpt.vocab, ckpt.tokenizer), out, "none")
            cache[scale] = out
        return cache[scale]

    return build


@pytest.fixture(scope="session")
def overflowing(tmp_path_factory: pytest.TempPathFactory, bundle_factory, tokenizer):
    """(bundle, text): a small relu RNN whose states are 0 on every word but one and grow
    fourfold a step after it (a bias of -1000 keeps every unit off, the recurrent matrix is 4 x
    identity, that word's embedding row is 1e38), and a text whose states pass float32's range
    a few tokens after that word. No golden sample holds the word: a model whose states overflow
    on its own golden samples never starts (the self-test refuses it)."""
    import copy

    import torch

    from tests.support.samples import OVERFLOWING_AFTER, SMALL
    from zh_rnn_encoder.export import Checkpoint, export_bundle
    from zh_rnn_encoder.export.golden import GOLDEN_TEXTS

    _, ckpt = bundle_factory(nonlinearity="relu", **SMALL)
    texts = [*GOLDEN_TEXTS, OVERFLOWING_AFTER]
    seen = {w for t in texts for w in tokenizer.tokenize(t)}
    word = next(w for w in ckpt.vocab.tokens[2:] if w not in seen and len(w) > 1)
    model = copy.deepcopy(ckpt.model)  # the factory's own is shared
    with torch.no_grad():
        model.rnn.bias_ih_l0.fill_(-1000.0)
        model.rnn.weight_hh_l0.copy_(4 * torch.eye(model.rnn.weight_hh_l0.shape[0]))
        model.embedding.weight[ckpt.vocab.index[word]] = 1e38
    out = tmp_path_factory.mktemp("overflowing") / "b"
    export_bundle(Checkpoint(model, ckpt.vocab, ckpt.tokenizer), out, "none")
    text = f"{word}，{OVERFLOWING_AFTER}"
    assert word in tokenizer.tokenize(text)
    return out, text
