"""Hot swap on SIGHUP: every model's bundle path is read again, and a bundle that changed is
loaded and self-tested beside the one it replaces, then served from the next call on (one
assignment, Models.put). Calls in flight finish on the old one, which is closed once the last of
them has returned, and its memory given back. A bundle that fails to load, to match its pin or
its self-test is refused: the old one keeps serving, the log names the file and the reason, and
``encoder_model_reloads_total{outcome="refused"}`` counts it. Health stays SERVING throughout.

A path may be a symlink that was repointed (Kubernetes volumes, a `current` link): it is read
where it points at the signal. docs/models.md#hot-swap is the user's side of this.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence

from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.runtime.models import Models, ModelSpec, ServedModel
from zh_rnn_encoder.transport import memory
from zh_rnn_encoder.transport.metrics import Metrics

log = logging.getLogger("encoder")
Load = Callable[[ModelSpec], Awaitable[ServedModel]]


class Reloader:
    """``request()`` from the signal handler: a reload runs once every model has loaded, one at
    a time; a signal during a reload runs one more after it, so the last signal is always
    honoured."""

    def __init__(
        self, specs: Sequence[ModelSpec], models: Models, load: Load, metrics: Metrics
    ) -> None:
        self.specs, self.models, self.load, self.metrics = tuple(specs), models, load, metrics
        self.loaded = asyncio.Event()  # set by the app once every model serves
        self.stopped = False
        self._again = False
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    def request(self) -> None:
        if self.stopped:
            log.info("SIGHUP while draining: not reloading")
            return
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        await self.loaded.wait()  # a signal during start-up: reload once it has served
        while self._again and not self.stopped:
            self._again = False
            await self.reload()

    async def reload(self) -> dict[str, str]:
        """Each model's outcome: "swapped", "unchanged" or "refused"."""
        log.info("reload: reading %d bundle paths again", len(self.specs))
        return {spec.name: await self._reload(spec) for spec in self.specs}

    async def _reload(self, spec: ModelSpec) -> str:
        old = self.models.get(spec.name)
        outcome = "refused"
        try:
            if bundle_digest(spec.path) == old.version:
                outcome = "unchanged"
            else:
                t0 = time.perf_counter()
                new = await self.load(spec)  # checked, pinned, self-tested: or it raises
                if self.stopped:  # drained while it loaded: it never serves
                    await new.encoder.aclose()
                    return "refused"
                self.models.put(new)
                self.metrics.model_served(spec.name, new.version, replaces=old.version)
                log.info(
                    "reload: model %s swapped sha256:%s -> sha256:%s (bundle %s -> %s, "
                    "loaded and self-tested in %.2fs)",
                    spec.name,
                    old.version,
                    new.version,
                    spec.path,
                    spec.path.resolve(),
                    time.perf_counter() - t0,
                )
                self._retire(old)
                outcome = "swapped"
        except Exception as e:  # whatever it was, the old model keeps serving
            log.error(
                "reload: model %s refused bundle %s, still serving sha256:%s: %s",
                spec.name,
                spec.path,
                old.version,
                e,
            )
        self.metrics.reloaded(spec.name, outcome)
        return outcome

    def _retire(self, old: ServedModel) -> None:
        task = asyncio.ensure_future(self._release(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _release(self, old: ServedModel) -> None:
        t0, before = time.perf_counter(), memory.rss()
        await self.models.retire(old)
        name, version, encoder = old.name, old.version, weakref.ref(old.encoder)
        del old  # the last reference but this frame's: the session goes with it
        await memory.release()
        if encoder() is not None:  # a bug: something still refers to the old model
            log.warning(
                "reload: model %s sha256:%s is still referenced after its last call: its "
                "memory was not given back",
                name,
                version,
            )
            return
        log.info(
            "reload: model %s sha256:%s released after its last call (%.2fs); RSS %d -> %d MB",
            name,
            version,
            time.perf_counter() - t0,
            before >> 20,
            memory.rss() >> 20,
        )

    async def aclose(self) -> None:
        """No reload from now on (draining); the models being retired are closed."""
        self.stopped = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
