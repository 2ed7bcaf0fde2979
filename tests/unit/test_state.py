"""Resumable encoding through the in-process Encoder: A, then B from A's state, equals A+B."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from tests.support.samples import SMALL
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.runtime.encoder import EncodeOptions, Encoder
from zh_rnn_encoder.runtime.state import STATE_LIMIT

A = "北京冬奥的进度条已经过半，"
B = "不少外国运动员在完成自己的比赛后踏上归途。"
C = "今天天气很好，我们去公园散步吧。"
ATOL = contract.PARITY_ATOL
UNIDIRECTIONAL = [
    {},
    {"nonlinearity": "relu", **SMALL},
    {"num_layers": 2, **SMALL},
    {"cell": "lstm", **SMALL},
    {"cell": "lstm", "num_layers": 2, **SMALL},
    {"cell": "gru", "num_layers": 2, **SMALL},
]


@pytest.fixture(scope="module", params=UNIDIRECTIONAL, ids=lambda kw: str(kw or "rnn"))
def enc(request, bundle_factory, jieba_cache) -> Encoder:
    return Encoder.from_bundle(bundle_factory(**request.param)[0], jieba_cache_dir=jieba_cache)


def test_the_split_points_are_token_boundaries(enc) -> None:
    """The premise of the comparisons below: A's tokens then B's are A+B's."""
    t = enc.tokenizer.tokenize
    assert t(A) + t(B) == t(A + B) and t(A + B) + t(C) == t(A + B + C)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_continuing_equals_encoding_at_once(enc, pooling: str) -> None:
    whole = enc.encode([A + B + C], pooling=pooling, token_vectors=True, return_state=True)[0]
    a = enc.encode([A], pooling=pooling, return_state=True)[0]
    b = enc.encode([B], pooling=pooling, initial_states=[a.state], return_state=True)[0]
    c = enc.encode([C], pooling=pooling, token_vectors=True, initial_states=[b.state],
                   return_state=True)[0]  # fmt: skip
    n = len(a.ids) + len(b.ids)
    assert np.abs(c.token_vectors - whole.token_vectors[n:]).max() <= ATOL
    assert np.abs(c.vector - whole.vector).max() <= ATOL
    for got, want in ((c.state.h, whole.state.h), (c.state.c, whole.state.c)):
        if want is not None:
            assert np.abs(got - want).max() <= ATOL
    assert c.state.tokens == whole.state.tokens == len(whole.ids)
    assert np.abs(c.state.token_sum - whole.state.token_sum).max() <= 1e-4
    assert np.array_equal(c.state.token_max, whole.state.token_max)


def test_normalized_pooling_continues_too(enc) -> None:
    whole = enc.encode([A + B], pooling="mean", normalize=True)[0]
    a = enc.encode([A], return_state=True)[0]  # any pooling: the state carries every running pool
    b = enc.encode([B], pooling="mean", normalize=True, initial_states=[a.state])[0]
    assert np.abs(b.vector - whole.vector).max() <= ATOL


def test_a_batch_of_mixed_states_equals_each_alone(enc) -> None:
    a, c = enc.encode([A, C], return_state=True)
    batch = enc.encode([B, B, C], pooling="mean", initial_states=[a.state, None, c.state],
                       return_state=True)  # fmt: skip
    for text, state, got in zip((B, B, C), (a.state, None, c.state), batch):
        alone = enc.encode([text], pooling="mean", initial_states=[state], return_state=True)[0]
        assert np.abs(got.vector - alone.vector).max() <= contract.BATCH_INVARIANCE_ATOL
        assert np.abs(got.state.h - alone.state.h).max() <= contract.BATCH_INVARIANCE_ATOL


def test_the_serving_face_continues_the_same_way(enc) -> None:
    a = enc.encode([A], return_state=True)[0]
    want = enc.encode([B], pooling="max", initial_states=[a.state], return_state=True)[0]

    async def go():
        try:
            opt = EncodeOptions(pooling="max", return_state=True)
            with await enc.admit([B, C], opt, initial_states=[a.state, None]) as admitted:
                return (await enc.encode_admitted(admitted)).encodings
        finally:
            await enc.aclose()

    got = asyncio.run(go())
    assert np.abs(got[0].vector - want.vector).max() <= contract.BATCH_INVARIANCE_ATOL
    assert np.abs(got[0].state.h - want.state.h).max() <= contract.BATCH_INVARIANCE_ATOL
    assert got[1].state.tokens == len(got[1].ids)


def test_bad_states_are_refused_by_name(enc, bundle_factory, jieba_cache) -> None:
    a = enc.encode([A], return_state=True)[0].state
    with pytest.raises(InvalidInput, match=r"initial_states: 1 given for 2 texts"):
        enc.encode([B, C], initial_states=[a])
    with pytest.raises(InvalidInput, match=r"initial_states\[0\]: the state comes from another"):
        enc.encode([B], initial_states=[dataclasses.replace(a, graph_sha256="0" * 64)])
    with pytest.raises(InvalidInput, match=r"initial_states\[1\]: state version 9"):
        enc.encode([B, C], initial_states=[None, dataclasses.replace(a, version=9)])
    with pytest.raises(InvalidInput, match=r"initial_states\[0\]: not a state of this"):
        enc.encode([B], initial_states=[dataclasses.replace(a, h=a.h[:, :3])])


def test_states_holding_nan_or_infinity_are_refused_by_field(enc) -> None:
    """A NaN or an infinity in a state would come back in the vector (and a relu cell's state
    grows as it is fed), so each is refused, naming its field; -inf is token_max's value before
    any token, and only then."""
    a = enc.encode([A], return_state=True)[0].state

    def poisoned(name: str, value: float) -> np.ndarray:
        x = np.array(getattr(a, name), copy=True)
        x.flat[1] = value
        return x

    bad = [
        ("h", dataclasses.replace(a, h=poisoned("h", np.nan))),
        ("h", dataclasses.replace(a, h=poisoned("h", np.inf))),
        ("token_sum", dataclasses.replace(a, token_sum=poisoned("token_sum", -np.inf))),
        ("token_max", dataclasses.replace(a, token_max=poisoned("token_max", np.nan))),
        ("token_max", dataclasses.replace(a, token_max=poisoned("token_max", -np.inf))),
        ("token_max", dataclasses.replace(a, tokens=0)),  # no token seen, yet a maximum
    ]
    if a.c is not None:
        bad.append(("c", dataclasses.replace(a, c=poisoned("c", np.nan))))
    for field, state in bad:
        with pytest.raises(InvalidInput, match=rf"initial_states\[1\]\.{field}: values must be"):
            enc.encode([C, B], initial_states=[None, state])
    # a state before any token: its pools are empty, its h continues
    empty = {
        "token_sum": np.zeros_like(a.token_sum),
        "token_max": np.full_like(a.token_max, -np.inf),
    }
    start = dataclasses.replace(a, tokens=0, **empty)
    assert enc.encode([B], initial_states=[start])[0].vector.shape == a.token_max.shape
    assert enc.encode([B], initial_states=[a])[0].vector.shape == a.token_max.shape


def test_states_too_large_for_the_graph_are_refused_by_field(enc) -> None:
    """A finite value can still overflow the graph: h of 3e38 makes the first recurrent product
    infinite and the vector NaN; a running sum of 1e300 makes the normalised vector zeros. Each
    value is held within STATE_LIMIT (the running sum within STATE_LIMIT a token), and a state
    at the limit still encodes to a finite vector."""
    a = enc.encode([A], return_state=True)[0].state

    def scaled(name: str, value: float) -> np.ndarray:
        x = np.array(getattr(a, name), copy=True)
        x.flat[1] = value
        return x

    over = STATE_LIMIT * 1.5
    bad = [
        ("h", dataclasses.replace(a, h=scaled("h", 3e38))),
        ("h", dataclasses.replace(a, h=scaled("h", -over))),
        ("token_sum", dataclasses.replace(a, token_sum=scaled("token_sum", 1e300))),
        ("token_sum", dataclasses.replace(a, token_sum=scaled("token_sum", over * a.tokens))),
        ("token_max", dataclasses.replace(a, token_max=scaled("token_max", over))),
    ]
    if a.c is not None:
        bad.append(("c", dataclasses.replace(a, c=scaled("c", -3e38))))
    for field, state in bad:
        with pytest.raises(InvalidInput, match=rf"initial_states\[1\]\.{field}: values must lie "):
            enc.encode([C, B], initial_states=[None, state], return_state=True)
    at_limit = dataclasses.replace(
        a,
        h=np.full_like(a.h, STATE_LIMIT),
        c=None if a.c is None else np.full_like(a.c, -STATE_LIMIT),
        token_sum=np.full_like(a.token_sum, STATE_LIMIT * a.tokens),
    )
    got = enc.encode([B], initial_states=[at_limit], return_state=True)[0]
    assert np.isfinite(got.vector).all() and np.linalg.norm(got.vector) > 0.99
    assert np.isfinite(got.state.h).all() and np.isfinite(got.state.token_sum).all()


def test_a_bidirectional_model_refuses_states(bundle_factory, jieba_cache) -> None:
    bi = Encoder.from_bundle(
        bundle_factory(cell="gru", bidirectional=True, **SMALL)[0], jieba_cache_dir=jieba_cache
    )
    with pytest.raises(InvalidInput, match="bidirectional.*backward direction needs the whole"):
        bi.encode([A], return_state=True)
    assert bi.encode([A])[0].state is None  # without states, as before
