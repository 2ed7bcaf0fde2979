"""The in-flight budget: estimates before tokenizing, refusal at once, waiting for streams."""

from __future__ import annotations

import asyncio

import pytest

from zh_rnn_encoder.core.errors import LimitExceeded, Overloaded
from zh_rnn_encoder.runtime.admission import MB, Budget, at_least, estimate


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
