"""The batcher alone, with a deterministic numpy model standing in for the graph."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from zh_rnn_encoder.core.errors import NotReady, Overloaded
from zh_rnn_encoder.runtime.batcher import Batcher


class Model:
    """states[b, t] = cumulative sum of ids up to t (zeros past length); final = last state."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def __call__(self, ids: np.ndarray, lengths: np.ndarray, initial=None) -> dict:
        self.shapes.append(ids.shape)
        mask = np.arange(ids.shape[1])[None] < lengths[:, None]
        states = (np.cumsum(ids * mask, axis=1) * mask)[..., None].astype(np.float32)
        return {"states": states, "final": states[np.arange(len(ids)), lengths - 1]}


def rows(*lengths: int) -> list[np.ndarray]:
    return [np.arange(1, n + 1, dtype=np.int64) for n in lengths]


def run(coro):
    return asyncio.run(coro)


def test_results_go_back_to_their_requests() -> None:
    async def go():
        b = Batcher(Model(), pad_id=0, max_batch_tokens=1000, max_queued_texts=100)
        b.start()
        out = await asyncio.gather(b.submit(rows(3, 1)), b.submit(rows(5)))
        await b.close()
        return out

    first, second = run(go())
    assert [f[0] for f in first.vectors] == [6, 1] and second.vectors[0][0] == 15
    assert [s.shape for s in first.states] == [(3, 1), (1, 1)]
    assert first.queue_s >= 0 and first.inference_s > 0


def test_padded_token_budget_splits_runs() -> None:
    model = Model()

    async def go():
        b = Batcher(model, pad_id=0, max_batch_tokens=10, max_queued_texts=100)
        b.start()
        out = await b.submit(rows(5, 5, 5, 2))
        await b.close()
        return out

    out = run(go())
    assert all(r * s <= 10 for r, s in model.shapes) and sum(r for r, _ in model.shapes) == 4
    assert [f[0] for f in out.vectors] == [15, 15, 15, 3]


def test_a_row_over_the_budget_still_runs_alone() -> None:
    model = Model()

    async def go():
        b = Batcher(model, pad_id=0, max_batch_tokens=4, max_queued_texts=10)
        b.start()
        out = await b.submit(rows(9))
        await b.close()
        return out

    assert run(go()).vectors[0][0] == 45 and model.shapes == [(1, 9)]


def test_full_queue_is_overloaded_and_closed_is_not_ready() -> None:
    async def go():
        b = Batcher(Model(), pad_id=0, max_batch_tokens=100, max_queued_texts=3, wait_s=0.05)
        b.start()
        first = asyncio.ensure_future(b.submit(rows(1, 1)))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="max_queued_texts=3"):
            await b.submit(rows(1, 1))
        await b.close()
        assert len((await first).vectors) == 2  # queued work finishes on close
        with pytest.raises(NotReady):
            await b.submit(rows(1))

    run(go())


def test_model_failure_reaches_every_waiting_request() -> None:
    def broken(ids, lengths, initial=None):
        raise RuntimeError("boom")

    async def go():
        b = Batcher(broken, pad_id=0, max_batch_tokens=100, max_queued_texts=10)
        b.start()
        results = await asyncio.gather(b.submit(rows(1)), b.submit(rows(2)), return_exceptions=True)
        await b.close()
        return results

    assert [str(r) for r in run(go())] == ["boom", "boom"]


def test_a_cycle_groups_texts_of_similar_length() -> None:
    """Queued texts are run shortest first in runs of similar length, not padded FIFO."""
    model = Model()

    async def go():
        b = Batcher(model, pad_id=0, max_batch_tokens=18, max_queued_texts=100, wait_s=0.01)
        b.start()
        out = await asyncio.gather(b.submit(rows(9, 1)), b.submit(rows(9, 1)))
        await b.close()
        return out

    first, second = run(go())
    assert model.shapes == [(2, 1), (2, 9)]  # FIFO would have run (2, 9) twice
    assert [f[0] for f in first.vectors] == [45, 1] and [f[0] for f in second.vectors] == [45, 1]


def test_states_are_dropped_unless_kept() -> None:
    async def go():
        b = Batcher(Model(), pad_id=0, max_batch_tokens=100, max_queued_texts=10)
        b.start()
        out = await asyncio.gather(b.submit(rows(3), keep_states=False), b.submit(rows(3)))
        await b.close()
        return out

    lean, full = run(go())
    assert lean.states == [None] and lean.vectors[0][0] == 6
    assert full.states[0].shape == (3, 1) and full.vectors[0][0] == 6


def test_a_small_request_does_not_wait_for_a_large_one() -> None:
    """Texts that arrive during a long cycle run between its runs, alternating with it."""
    entered, release = threading.Event(), threading.Event()

    class Gated(Model):
        def __call__(self, ids, lengths, initial=None):
            if not self.shapes:  # the large request's first run holds until the small one queued
                entered.set()
                release.wait(5)
            return super().__call__(ids, lengths, initial)

    model = Gated()

    async def go():
        b = Batcher(model, pad_id=0, max_batch_tokens=10, max_queued_texts=1000)
        b.start()
        large = asyncio.ensure_future(b.submit(rows(*[5] * 40)))  # 20 runs of 2 x 5
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 5)
        small = asyncio.ensure_future(b.submit(rows(3)))
        await asyncio.sleep(0.01)
        release.set()
        out = await asyncio.gather(small, large)
        await b.close()
        return out

    small, large = run(go())
    assert small.vectors[0][0] == 6 and [f[0] for f in large.vectors] == [15] * 40
    assert model.shapes[:3] == [(2, 5), (1, 3), (2, 5)] and len(model.shapes) == 21
