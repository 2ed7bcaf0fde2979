"""The in-process Encoder without a server: parity with eager PyTorch, batching by token budget,
pooling, truncation, limits and errors, both faces."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tests.support.samples import SMALL, TEXTS, TUTORIAL, TUTORIAL_TOKENS
from zh_rnn_encoder import EncodeOptions, Encoder, Limits
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Pooling
from zh_rnn_encoder.core.errors import (
    BundleError,
    InvalidInput,
    LimitExceeded,
    NotReady,
    ProviderUnavailable,
)
from zh_rnn_encoder.runtime.padding import pad, plan_runs
from zh_rnn_encoder.runtime.pooling import pool_row
from zh_rnn_encoder.runtime.session import open_session


@pytest.fixture(scope="module")
def bundle(bundle_factory):
    return bundle_factory(cell="lstm", bidirectional=True, **SMALL)


@pytest.fixture(scope="module")
def enc(bundle, jieba_cache) -> Encoder:
    return Encoder.from_bundle(bundle[0], threads=1, jieba_cache_dir=jieba_cache)


def eager(ckpt, tokenizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    ids = ckpt.vocab.encode(tokenizer.tokenize(text))
    with torch.no_grad():
        s, f = ckpt.model(torch.from_numpy(ids[None]), torch.tensor([len(ids)]))
    return s[0].numpy(), f[0].numpy()


def test_parity_with_eager_pytorch(bundle, enc, tokenizer) -> None:
    _, ckpt = bundle
    out = enc.encode(TEXTS, token_vectors=True)
    for text, e in zip(TEXTS, out):
        states, final = eager(ckpt, tokenizer, text)
        assert np.abs(e.vector - final).max() <= contract.PARITY_ATOL
        assert np.abs(e.token_vectors - states).max() <= contract.PARITY_ATOL
    assert out[0].tokens == TUTORIAL_TOKENS


class CountingSession:
    """The real session, recording the shape of every run."""

    def __init__(self, session) -> None:
        self.inner, self.shapes = session, []
        self.provider, self.threads = session.provider, session.threads

    def run(self, ids, lengths):
        self.shapes.append(ids.shape)
        return self.inner.run(ids, lengths)

    def run_state(self, ids, lengths, initial=None):
        self.shapes.append(ids.shape)
        return self.inner.run_state(ids, lengths, initial)


def test_a_large_list_runs_within_the_token_budget(bundle, jieba_cache) -> None:
    sessions = []

    def factory(b, device, threads):
        sessions.append(CountingSession(open_session(b, device, threads)))
        return sessions[-1]

    enc = Encoder.from_bundle(
        bundle[0], threads=1, jieba_cache_dir=jieba_cache, max_batch_tokens=64,
        session_factory=factory,
    )  # fmt: skip
    texts = [TEXTS[i % len(TEXTS)] * (1 + i % 3) for i in range(300)]  # > max_texts_per_request
    counting = sessions[0]
    counting.shapes.clear()  # the self-test's runs
    out = enc.encode(texts, pooling="mean")
    assert len(out) == 300 and len(counting.shapes) > 1
    assert all(rows * seq <= 64 or rows == 1 for rows, seq in counting.shapes)
    assert sum(rows for rows, _ in counting.shapes) == 300
    for i in (0, 7, 299):  # the same text alone: batch invariance through the public API
        alone = enc.encode([texts[i]], pooling="mean")[0].vector
        assert np.abs(out[i].vector - alone).max() <= contract.BATCH_INVARIANCE_ATOL


def test_pooling_and_normalisation_from_token_vectors(enc) -> None:
    base = enc.encode(TEXTS, token_vectors=True)
    for mode, f in (("mean", lambda s: s.mean(0)), ("max", lambda s: s.max(0))):
        for e, b in zip(enc.encode(TEXTS, pooling=mode), base):
            assert np.abs(e.vector - f(b.token_vectors)).max() <= 1e-6
        for e in enc.encode(TEXTS, pooling=mode, normalize=True):
            assert abs(np.linalg.norm(e.vector) - 1) < 1e-5
    assert all(b.vector.shape == (enc.output_dim,) for b in base)


def test_truncation_keeps_first_or_last(enc, tokenizer) -> None:
    toks = tokenizer.tokenize(TUTORIAL)
    first = enc.encode([TUTORIAL], truncation="keep_first", max_tokens=5)[0]
    last = enc.encode([TUTORIAL], truncation="last", max_tokens=5)[0]  # the short alias
    assert first.tokens == toks[:5] and last.tokens == toks[-5:]
    assert first.truncated and first.original_token_count == len(toks)
    assert not enc.encode(["你好"], truncation="keep_first", max_tokens=5)[0].truncated


@pytest.mark.parametrize(
    ("texts", "options", "error", "message"),
    [
        (["ok", " \t"], {}, InvalidInput, "texts[1]: empty or whitespace only"),
        (["好" * 20_001], {}, LimitExceeded, "max_chars_per_text exceeded at texts[0]: 20001"),
        (["你好，" * 300], {}, LimitExceeded, "max_tokens_per_text exceeded at texts[0]"),
        (["你好"], {"max_tokens": 513}, LimitExceeded, "at max_tokens: 513 > 512"),
        (["你好"], {"pooling": "avg"}, InvalidInput, "pooling: unknown value 'avg'"),
        (["你好"], {"truncation": "middle"}, InvalidInput, "truncation: unknown value"),
        (["你好"], {"max_tokens": -1}, InvalidInput, "max_tokens: must not be negative"),
    ],
)
def test_bad_input_raises_typed_errors(enc, texts, options, error, message) -> None:
    with pytest.raises(error) as e:
        enc.encode(texts, **options)
    assert message in str(e.value)
    assert enc.encode(["你好"])[0].vector.shape == (enc.output_dim,)  # still fine afterwards


def test_serving_face_adds_request_limits(bundle, jieba_cache) -> None:
    limits = Limits(max_texts_per_request=3, max_message_bytes=2_000)
    enc = Encoder.from_bundle(bundle[0], threads=1, jieba_cache_dir=jieba_cache, limits=limits)

    async def serve(texts: list[str], opt: EncodeOptions):
        with await enc.admit(texts, opt) as admitted:
            return await enc.encode_admitted(admitted)

    async def go() -> None:
        with pytest.raises(InvalidInput, match="texts: the request has no texts"):
            await serve([], EncodeOptions())
        with pytest.raises(LimitExceeded, match="max_texts_per_request exceeded: 4 > 3"):
            await serve(["你好"] * 4, EncodeOptions())
        with pytest.raises(LimitExceeded, match="max_message_bytes exceeded at response"):
            await serve([TUTORIAL] * 3, EncodeOptions(token_vectors=True))
        with pytest.raises(LimitExceeded, match="max_texts_per_request"):
            async with enc.tokenized(["你好"] * 4):
                pass
        res = await serve([TUTORIAL, "你好"], EncodeOptions(pooling="mean"))
        assert res.inference_s > 0 and res.tokenize_s > 0
        sync = enc.encode([TUTORIAL, "你好"], pooling="mean")
        assert all(np.array_equal(a.vector, b.vector) for a, b in zip(res.encodings, sync))
        assert enc.budget.used == 0  # every admission released
        await enc.aclose()
        with pytest.raises(NotReady):
            await serve(["你好"], EncodeOptions())

    asyncio.run(go())
    assert len(enc.encode(["你好"] * 4)) == 4  # the sync face has no per-request limits


def test_tokenize_and_info(enc) -> None:
    t = enc.tokenize([TUTORIAL, "", "魑魅魍魉"])
    assert t[0].tokens == TUTORIAL_TOKENS and t[1].tokens == [] and t[1].ids.size == 0
    assert t[2].unknown == int((t[2].ids == enc.bundle.vocab.unk_id).sum()) >= 1
    info = enc.info
    assert (info.model.cell, info.model.output_dim, info.provider) == (
        "lstm",
        48,
        "CPUExecutionProvider",
    )
    assert info.vocab_size == len(enc.bundle.vocab) and info.tokenizer_backend == "rjieba"
    assert info.golden_max_abs_err <= contract.PARITY_ATOL


def test_refusals_at_load(tmp_path, bundle) -> None:
    with pytest.raises(BundleError, match="not a directory"):
        Encoder.from_bundle(tmp_path / "nowhere")
    with pytest.raises(ProviderUnavailable, match="unknown device 'tpu'"):
        Encoder.from_bundle(bundle[0], device="tpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ProviderUnavailable, match="available providers"):
            Encoder.from_bundle(bundle[0], device="cuda")


def test_pad_and_plan_runs() -> None:
    rows = [np.array([5, 6, 7]), np.array([8])]
    ids, lengths = pad(rows, pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    assert ids.dtype == lengths.dtype == np.int64
    runs = plan_runs([9, 1, 5, 5, 2], budget=10)
    assert sorted(i for r in runs for i in r) == [0, 1, 2, 3, 4]
    assert runs == [[1, 4], [2, 3], [0]]  # by length; 2 x 5 fits 10, 3 x 5 would not
    assert plan_runs([20], budget=4) == [[0]]  # a row over the budget still runs, alone
    row = np.array([5, 6, 7], dtype=np.int32)
    ids, lengths = pad([row], pad_id=0)  # one row: its own batch, a copy in int64
    assert ids.tolist() == [[5, 6, 7]] and lengths.tolist() == [3]
    assert ids.dtype == lengths.dtype == np.int64 and not np.shares_memory(ids, row)


def test_pooling_is_numpys_mean_and_norm_to_the_bit() -> None:
    """pool's shortcuts (runtime/pooling.py) give what ndarray.mean and np.linalg.norm give."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50, 512):
        states = np.tanh(rng.standard_normal((n, 64)) * 3).astype(np.float32)
        final = states[-1]
        mean = states.mean(axis=0, dtype=np.float32)
        assert np.array_equal(pool_row(states, final, None, Pooling.MEAN, False), mean)
        unit = pool_row(states, final, None, Pooling.MEAN, True)
        assert np.array_equal(unit, mean / np.float32(np.linalg.norm(mean)))
        last = pool_row(states, final, None, Pooling.LAST, False)
        assert np.array_equal(last, final) and not np.shares_memory(last, states)
