"""The in-flight budget: estimates before tokenizing, refusal at once, waiting for streams, and
the Admission a request holds from ``Encoder.admit`` until it is released, once."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.samples import SMALL
from zh_rnn_encoder import EncodeOptions, Encoder
from zh_rnn_encoder.core.errors import LimitExceeded, Overloaded
from zh_rnn_encoder.runtime.admission import (
    MB,
    Budget,
    ResponseShape,
    at_least,
    chunk_bytes,
    estimate,
    response_bytes,
    state_bytes,
    take,
    tokenized_bytes,
    varint_bytes,
)


def test_estimates_bound_what_a_request_holds() -> None:
    texts = ["北京冬奥" * 100, "你好"]
    pooled = estimate(texts, token_limit=512, dim=256, token_vectors=False)
    with_vectors = estimate(texts, token_limit=512, dim=256, token_vectors=True)
    assert with_vectors - pooled == (400 + 2) * 12 * 256  # states three times per token
    assert estimate(texts, 10, 256, False) < pooled  # truncation caps the tokens counted
    assert at_least(4_000) == 8_000 <= estimate(["好" * 1333], 512, 1, False)


def test_budget_refuses_at_once_and_gives_back() -> None:
    async def go() -> None:
        b = Budget(10 * MB)
        async with b.hold(6 * MB):
            with pytest.raises(Overloaded, match="max_inflight_mb=10 in use"):
                async with b.hold(5 * MB):
                    pass
            assert b.used == 6 * MB
        assert b.used == 0 and b.active_since_asked() and not b.active_since_asked()
        with pytest.raises(LimitExceeded, match="max_inflight_mb exceeded at request"):
            b.try_take(11 * MB)

    asyncio.run(go())


def test_streams_wait_for_their_share() -> None:
    async def go() -> list[str]:
        b, order = Budget(10 * MB), []

        async def stream(name: str, need: int, hold_s: float) -> None:
            async with b.hold(need, wait=True):
                order.append(f"{name} in")
                await asyncio.sleep(hold_s)
            order.append(f"{name} out")

        first = asyncio.ensure_future(stream("a", 8 * MB, 0.05))
        await asyncio.sleep(0.01)
        await asyncio.gather(first, stream("b", 5 * MB, 0))
        return order

    assert asyncio.run(go()) == ["a in", "a out", "b in", "b out"]


def test_response_and_chunk_sizes() -> None:
    """Each term, by its own count (tests/unit/test_response_size.py: against real responses)."""
    # texts' framing; each token's tag and length (2), 1 a 64 bytes of them; ids; UTF-8
    assert tokenized_bytes([["北京", "好"], []]) == 72 + 2 * 24 + (2 * 2 + 1) + 2 * 10 + (6 + 3)
    assert tokenized_bytes([["北京", "好"], []], id_bytes=2) == 72 + 2 * 24 + 5 + 2 * 2 + 9
    shape = {"token_bytes": 130, "id_bytes": 3, "dim": 4}
    pooled = ResponseShape([4, 6], **shape, token_vectors=False, state_bytes=0)
    tokens = 10 * 2 + 3 + 10 * 3 + 130
    assert response_bytes(pooled) == 64 + 2 * 96 + 2 * 4 * 4 + tokens
    vectors = ResponseShape([4, 6], **shape, token_vectors=True, state_bytes=0)
    assert response_bytes(vectors) == 64 + 2 * 96 + (2 + 10) * 4 * 4 + tokens
    states = ResponseShape([4, 6], **shape, token_vectors=False, state_bytes=500)
    assert response_bytes(states) == response_bytes(pooled) + 2 * 500
    assert [varint_bytes(n) for n in (0, 127, 128, 16_383, 16_384, 2**63 - 1)] == [1, 1, 2, 2, 3, 9]
    assert state_bytes(2, 8, lstm=True) == 192 + 4 * 2 * 8 * 2 + (8 + 4) * 8
    assert chunk_bytes(100, 256) == 100 * (8 * 256 + 64)


def test_an_admission_gives_back_once_and_a_stream_its_share_too() -> None:
    async def go() -> None:
        b, opt = Budget(8 * MB), EncodeOptions()
        stream = b.stream_share()
        assert stream.limit == 2 * MB
        a = await take(b, 3 * MB, True, stream, ["x"], opt, None)
        assert (a.held, b.used, stream.used) == (3 * MB, 3 * MB, 2 * MB)  # the share is capped
        with a:
            pass
        a.release()
        assert a.released and b.used == stream.used == 0
        b.try_take(7 * MB)
        with pytest.raises(Overloaded):
            await take(b, 2 * MB, False, stream, ["x"], opt, None)
        assert b.used == 7 * MB and stream.used == 0  # a refusal holds nothing

    asyncio.run(go())


def test_encoder_admit_holds_the_estimate_until_released(bundle_factory, jieba_cache) -> None:
    enc = Encoder.from_bundle(
        bundle_factory(cell="gru", **SMALL)[0], threads=1, jieba_cache_dir=jieba_cache
    )
    texts = ["北京冬奥的进度条已经过半", "你好"]

    async def go() -> None:
        a = await enc.admit(texts, EncodeOptions())
        want = estimate(texts, enc.limits.max_tokens_per_text, enc.output_dim, False)
        assert a.held == want == enc.budget.used and a.options.pooling is not None  # resolved
        with a:
            res = await enc.encode_admitted(a)
        assert len(res.encodings) == 2 and a.released and enc.budget.used == 0
        with pytest.raises(RuntimeError, match="Admission was released"):
            await enc.encode_admitted(a)
        assert enc.overloaded() is None and enc.overloaded(request_bytes=1000) is None
        enc.budget.try_take(enc.budget.limit)
        with pytest.raises(Overloaded, match="max_inflight_mb=256 in use"):
            await enc.admit(texts, EncodeOptions())
        assert "server full" in str(enc.overloaded())
        assert "max_inflight_mb=256 in use" in str(enc.overloaded(request_bytes=1000))
        waiting = asyncio.ensure_future(enc.admit(texts, EncodeOptions(), wait=True))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # a stream's request waits for its bytes
        enc.budget.give(enc.budget.limit)
        (await waiting).release()
        assert enc.budget.used == 0
        await enc.aclose()

    asyncio.run(go())
