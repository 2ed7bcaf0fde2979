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
