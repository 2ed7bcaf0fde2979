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
from dataclasses import dataclass

import numpy as np

from zh_rnn_encoder.core.errors import EncoderError, NotReady, Overloaded
from zh_rnn_encoder.runtime.delivery import OnState, Rows, Stack, run_inputs
from zh_rnn_encoder.runtime.padding import plan_runs
from zh_rnn_encoder.runtime.spans import NO_SPANS, Spans
from zh_rnn_encoder.runtime.state import EncoderState
from zh_rnn_encoder.runtime.types import Reduce

# (ids [B, S], lengths [B], initial state inputs or None) -> every output of the graph by name
RunFn = Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray] | None], dict[str, np.ndarray]]


@dataclass
class Batched:
    """A request's rows from the model (delivery.Rows): states [n, F] per row (None unless
    kept), a vector [F] per row (its final state, or what ``reduce`` made of it: the pooled
    sentence vector), and, when asked for, each row's state to continue from."""

    states: list[np.ndarray | None]
    vectors: list[np.ndarray | None]  # every one set once the request is done
    queue_s: float
    inference_s: float
    continued: list[EncoderState | None] | None = None


class _Item(Rows):
    """A request in the batcher: its rows, and when it was queued, first run and how long it ran."""

    __slots__ = ("future", "enqueued", "started", "inference_s", "span")

    def __init__(
        self,
        future: asyncio.Future[Batched],
        ids: list[np.ndarray],
        keep_states: bool,
        reduce: Reduce | None,
        priors: list[EncoderState | None] | None,
        on_state: OnState | None,
        span: object | None = None,
    ) -> None:
        super().__init__(ids, keep_states, reduce, priors, on_state)
        self.future, self.enqueued = future, time.perf_counter()
        self.started = 0.0  # perf_counter of its first run; 0: none yet
        self.inference_s = 0.0
        self.span = span  # its call's span (runtime/spans.py); None: not traced


Run = list[tuple[_Item, int]]  # (request, row index) of one onnxruntime run


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
        spans: Spans = NO_SPANS,
    ) -> None:
        self._run, self._pad, self._stack, self._spans = run, pad_id, stack, spans
        self._budget, self._max_queued, self._wait_s = max_batch_tokens, max_queued_texts, wait_s
        self._pending: deque[tuple[_Item, int]] = deque()  # (item, row index)
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self._task: asyncio.Task[None] | None = None
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
        initial: list[EncoderState | None] | None = None,
        on_state: OnState | None = None,
        span: object | None = None,
    ) -> Batched:
        """Encode ``rows`` (int64 ids each), delivered as delivery.Rows says. Without
        ``keep_states`` only the final states come back, so a run's [rows, seq, F] output is
        freed as soon as it is delivered; ``reduce`` turns each row's (states [n, F], final [F],
        prior) into the vector returned in its stead, at delivery (pooling), so per-token states
        never outlive their run. ``initial`` gives each row's prior state (None: zeros), which
        the constructor's ``stack`` feeds to the graph; ``on_state`` makes each row's state to
        continue from, returned in ``continued``. ``span`` (Spans.current) gets the request's
        wait and runs."""
        if self._closing:
            raise NotReady("server is shutting down")
        if self.queued_texts + len(rows) > self._max_queued:
            raise Overloaded(
                f"queue full: {self.queued_texts} texts waiting, "
                f"max_queued_texts={self._max_queued}; retry with backoff"
            )
        future = asyncio.get_running_loop().create_future()
        item = _Item(future, rows, keep_states, reduce, initial, on_state, span)
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

    def _take_cycle(self) -> list[Run]:
        """Every live queued row, by length, cut into runs of rows x longest <= the budget."""
        rows = [r for r in self._pending if not r[0].future.done()]  # skip cancelled requests
        self._pending.clear()
        runs = plan_runs([len(item.ids[i]) for item, i in rows], self._budget)
        return [[rows[k] for k in run] for run in runs]

    async def _work(self) -> None:
        """Runs cycles; texts that arrive during a long cycle (one large request is many runs)
        get their own cycle between its runs, alternating with it, so a small request waits for
        about one run, not for the whole large one, and the large one still progresses."""
        loop = asyncio.get_running_loop()
        older: deque[Run] = deque()  # runs of the cycle in progress
        newer: deque[Run] = deque()  # runs of a cycle taken while it was in progress
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

    async def _run_one(self, loop: asyncio.AbstractEventLoop, run: Run) -> None:
        run = [(item, i) for item, i in run if not item.future.done()]
        if not run:
            return
        ids, lengths, feed = run_inputs(run, self._pad, self._stack)
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
        finally:
            if self._spans.enabled:
                self._trace(run, started, ids.shape[0], ids.size)
        self._deliver(run, out, started, time.perf_counter() - started)

    def _trace(self, run: Run, started: float, texts: int, padded_tokens: int) -> None:
        """Each traced request of the run: its wait in the queue (before its first run), and
        the run."""
        ended, seen = time.perf_counter(), set[int]()
        for item, _ in run:
            if item.span is None or id(item) in seen:
                continue
            seen.add(id(item))
            if not item.started:  # set by _deliver, after this
                self._spans.queued(item.span, item.enqueued, started)
            self._spans.ran(item.span, started, ended, texts, padded_tokens)

    @staticmethod
    def _deliver(run: Run, out: dict[str, np.ndarray], started: float, took: float) -> None:
        """Each row to its request (Rows.deliver); a request is done with its last row."""
        seen: set[int] = set()
        for j, (item, i) in enumerate(run):
            if item.future.done():
                continue
            if id(item) not in seen:  # a request split over runs pays each run once
                seen.add(id(item))
                item.inference_s += took
                item.started = item.started or started
            try:
                item.deliver(i, out, j)
            except EncoderError as e:  # this request's row (pooling.NotFinite): it alone fails
                item.future.set_exception(e)
                continue
            if item.done == len(item.ids):
                item.future.set_result(
                    Batched(
                        item.states,
                        item.vectors,
                        item.started - item.enqueued,
                        item.inference_s,
                        item.continued,
                    )
                )
