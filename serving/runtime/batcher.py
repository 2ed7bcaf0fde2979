"""Cross-request batching: a bounded queue, a padded-token budget per run, one run at a time.

Each cycle takes every queued text, sorts them by length and cuts runs of similar lengths, so
little of a run is padding; texts queued during a cycle wait for the next one (no starvation).
Safe because the graph is batch invariant: a text's encoding does not depend on its batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.errors import NotReady, Overloaded
from zh_rnn_encoder.runtime.padding import pad, plan_runs

# (ids [B, S], lengths [B], initial state inputs or None) -> every output of the graph by name
RunFn = Callable[[np.ndarray, np.ndarray, dict | None], dict[str, np.ndarray]]
# (states [n, F], final [F], the row's prior state or None) -> its vector (pooling, at delivery)
Reduce = Callable[[np.ndarray, np.ndarray, object], np.ndarray]
# (the row's prior state or None, its states [n, F], the run's outputs, its index in the run)
# -> what the request gets for that row beside its vector (the state to continue from)
OnState = Callable[[object, np.ndarray, dict, int], object]
# the rows' prior states (None for a row without) -> the graph's initial state inputs for a run
Stack = Callable[[list], dict[str, np.ndarray]]


@dataclass
class Batched:
    """A request's rows from the model: states [n, F] per row (None unless kept), a vector [F]
    per row (its final state, or what ``reduce`` made of it: the pooled sentence vector), and,
    when asked for, each row's state to continue from."""

    states: list[np.ndarray | None]
    vectors: list[np.ndarray]
    queue_s: float
    inference_s: float
    continued: list | None = None


@dataclass
class _Item:
    rows: list[np.ndarray]
    future: asyncio.Future
    enqueued: float
    keep_states: bool = True
    reduce: Reduce | None = None
    initial: list | None = None  # each row's prior state, or None
    on_state: OnState | None = None
    continued: list | None = None
    states: list = field(default_factory=list)
    vectors: list = field(default_factory=list)
    started: float | None = None
    inference_s: float = 0.0
    done_rows: int = 0


class Batcher:
    """``await submit(rows)`` -> Batched; raises Overloaded when the queue is full."""

    def __init__(
        self,
        run: RunFn,
        pad_id: int,
        max_batch_tokens: int,
        max_queued_texts: int,
        wait_s: float = 0.0,
        on_run: Callable[[int, int], None] | None = None,
        stack: Stack | None = None,
    ) -> None:
        self._run, self._pad, self._stack = run, pad_id, stack
        self._budget, self._max_queued, self._wait_s = max_batch_tokens, max_queued_texts, wait_s
        self._pending: deque[tuple[_Item, int]] = deque()  # (item, row index)
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self._task: asyncio.Task | None = None
        self._closing = False
        self._in_cycle = 0
        self._on_run = on_run  # (texts, padded tokens) of each run, for metrics

    @property
    def queued_texts(self) -> int:
        """Texts accepted and not yet run (queued, or waiting in a cycle)."""
        return len(self._pending) + self._in_cycle

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work(), name="batcher")

    async def submit(
        self,
        rows: list[np.ndarray],
        keep_states: bool = True,
        reduce: Reduce | None = None,
        initial: list | None = None,
        on_state: OnState | None = None,
    ) -> Batched:
        """Encode ``rows`` (int64 ids each). Without ``keep_states`` only the final states come
        back, so a run's [rows, seq, F] output is freed as soon as it is delivered; ``reduce``
        turns each row's (states [n, F], final [F], prior) into the vector returned in its stead,
        at delivery (pooling), so per-token states never outlive their run. ``initial`` gives
        each row's prior state (None: zeros), which the constructor's ``stack`` feeds to the
        graph; ``on_state`` makes each row's state to continue from, returned in ``continued``."""
        if self._closing:
            raise NotReady("server is shutting down")
        if self.queued_texts + len(rows) > self._max_queued:
            raise Overloaded(
                f"queue full: {self.queued_texts} texts waiting, "
                f"max_queued_texts={self._max_queued}; retry with backoff"
            )
        item = _Item(
            rows,
            asyncio.get_running_loop().create_future(),
            time.perf_counter(),
            keep_states=keep_states,
            reduce=reduce,
            initial=initial,
            on_state=on_state,
            continued=[None] * len(rows) if on_state else None,
            states=[None] * len(rows),
            vectors=[None] * len(rows),
        )
        self._pending.extend((item, i) for i in range(len(rows)))
        self._wakeup.set()
        return await item.future

    async def close(self) -> None:
        """Finish everything queued, then stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._task:
            await self._task
        self._executor.shutdown(wait=True)

    def _take_cycle(self) -> list[list[tuple[_Item, int]]]:
        """Every live queued row, by length, cut into runs of rows x longest <= the budget."""
        rows = [r for r in self._pending if not r[0].future.done()]  # skip cancelled requests
        self._pending.clear()
        runs = plan_runs([len(item.rows[i]) for item, i in rows], self._budget)
        return [[rows[k] for k in run] for run in runs]

    async def _work(self) -> None:
        """Runs cycles; texts that arrive during a long cycle (one large request is many runs)
        get their own cycle between its runs, alternating with it, so a small request waits for
        about one run, not for the whole large one, and the large one still progresses."""
        loop = asyncio.get_running_loop()
        older: deque[list] = deque()  # runs of the cycle in progress
        newer: deque[list] = deque()  # runs of a cycle taken while it was in progress
        newer_next = False
        while True:
            if not self._pending and not older and not newer:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not older and self._wait_s:
                await asyncio.sleep(self._wait_s)
            if self._pending and not newer:
                fresh = self._take_cycle()
                (newer if older else older).extend(fresh)
                self._in_cycle += sum(len(r) for r in fresh)
                newer_next = bool(newer)  # the newcomers go first, then turns alternate
                if not older:  # every queued request was cancelled
                    continue
            if older and newer:
                run = (newer if newer_next else older).popleft()
                newer_next = not newer_next
            else:
                run = older.popleft()
            if not older:
                older, newer = newer, older  # the newer cycle is now the one in progress
            self._in_cycle -= len(run)  # counted as run from here on
            await self._run_one(loop, run)

    async def _run_one(self, loop: asyncio.AbstractEventLoop, run: list) -> None:
        run = [(item, i) for item, i in run if not item.future.done()]
        if not run:
            return
        ids, lengths = pad([item.rows[i] for item, i in run], self._pad)
        priors = [item.initial[i] if item.initial else None for item, i in run]
        feed = self._stack(priors) if self._stack and any(p is not None for p in priors) else None
        if self._on_run:
            self._on_run(ids.shape[0], ids.size)
        started = time.perf_counter()
        try:
            out = await loop.run_in_executor(self._executor, self._run, ids, lengths, feed)
        except Exception as e:  # handed to every waiting request
            for item, _ in run:
                if not item.future.done():
                    item.future.set_exception(e)
            return
        self._deliver(run, out, started, time.perf_counter() - started)

    @staticmethod
    def _deliver(batch: list, out: dict, started: float, took: float) -> None:
        states, final = out[contract.STATES], out[contract.FINAL]
        seen: set[int] = set()
        for j, (item, i) in enumerate(batch):
            if item.future.done():
                continue
            if id(item) not in seen:  # a request split over runs pays each run once
                seen.add(id(item))
                item.inference_s += took
                item.started = item.started or started
            n = len(item.rows[i])
            prior = item.initial[i] if item.initial else None
            if item.keep_states:
                item.states[i] = states[j, :n]
            if item.reduce:
                item.vectors[i] = item.reduce(states[j, :n], final[j], prior)
            else:
                item.vectors[i] = final[j].copy()  # a row, not a view that pins the run's array
            if item.on_state:
                item.continued[i] = item.on_state(prior, states[j, :n], out, j)
            item.done_rows += 1
            if item.done_rows == len(item.rows):
                item.future.set_result(
                    Batched(
                        item.states,
                        item.vectors,
                        item.started - item.enqueued,
                        item.inference_s,
                        item.continued,
                    )
                )
