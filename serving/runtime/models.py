"""The models one server serves: name -> ServedModel, an immutable record of one loaded,
self-tested bundle and its version, the first model the default; one in-flight budget for all.

Every call that runs a model holds its record for the whole call (``Models.hold``), so that
replacing a record (``put``: a hot swap) serves the new one to the calls that start after it
while the calls in flight finish on the one they hold; ``retire`` closes the old one once the
last of them has returned. docs/models.md says why the budget is shared.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from zh_rnn_encoder.core.errors import NotFound, NotReady, Overloaded
from zh_rnn_encoder.runtime import admission
from zh_rnn_encoder.runtime.admission import MB, Budget
from zh_rnn_encoder.runtime.encoder import Encoder
from zh_rnn_encoder.runtime.session import open_session
from zh_rnn_encoder.runtime.sync_encoder import OnRun, SessionFactory
from zh_rnn_encoder.runtime.types import RuntimeConfig

# NAME=PATH, optionally pinned: NAME=PATH@sha256:HEX (or @HEX), the digest encoder-export prints.
_PIN = re.compile(r"^(?P<path>.+)@(?:sha256:)?(?P<pin>[0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class ModelSpec:
    """A model as configured: its name, its bundle directory, and the sha256 its bundle.json
    must have ("": not pinned)."""

    name: str
    path: Path
    pin: str = ""

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``NAME=PATH`` or ``NAME=PATH@sha256:HEX``; ValueError saying what is wrong."""
        name, eq, rest = text.partition("=")
        name = name.strip()
        if not eq or not name or not rest:
            raise ValueError(f"--model {text!r}: expected NAME=PATH (e.g. general=bundles/default)")
        check_name(name, "--model")
        pinned = _PIN.match(rest)
        if pinned:
            return cls(name, Path(pinned["path"]), pinned["pin"].lower())
        return cls(name, Path(rest))


def check_name(name: str, flag: str) -> None:
    """A model's name goes into URLs (/v1/models/NAME) and lists: non-empty, without '/' or ','."""
    if not name or "/" in name or "," in name or name != name.strip():
        raise ValueError(
            f"{flag}: a model name must be non-empty, without '/', ',' or spaces at its ends, "
            f"got {name!r}"
        )


class Holders:
    """How many calls hold a model now (``Models.hold``): touched on the event loop only."""

    def __init__(self) -> None:
        self.n = 0


@dataclass(frozen=True)
class ServedModel:
    """One loaded, self-tested bundle under its name; ``version`` is its bundle's digest (the
    hex sha256 of bundle.json, ``core.bundle.bundle_digest``), which every response carries.
    ``path`` is the configured path (a symlink stays one: a reload reads where it points then)."""

    name: str
    encoder: Encoder
    path: Path
    holders: Holders = field(default_factory=Holders, compare=False, repr=False)

    @property
    def version(self) -> str:
        return self.encoder.bundle.digest


def load_model(
    spec: ModelSpec,
    config: RuntimeConfig,
    budget: Budget,
    on_run: OnRun | None = None,
    session_factory: SessionFactory = open_session,
) -> ServedModel:
    """Check the bundle of ``spec`` (its pin too), open its session and pass its golden samples,
    or raise; its admitted work takes from ``budget``, the server's one in-flight budget. A path
    that is a symlink is resolved once, so that every file comes from the one directory it
    pointed to then, even if it is repointed while this reads (as Kubernetes updates volumes)."""
    config = dataclasses.replace(config, expect_bundle_sha256=spec.pin)
    encoder = Encoder.from_bundle(
        spec.path.resolve(), config=config, on_run=on_run, session_factory=session_factory
    )
    encoder.budget = budget  # before it serves: every model's work counts against one bound
    return ServedModel(spec.name, encoder, spec.path)


class Models:
    """The configured names (the first the default) and the records loaded so far; the budget
    and queue bound that all of them share."""

    def __init__(self, names: Sequence[str], config: RuntimeConfig = RuntimeConfig()) -> None:
        if not names or len(set(names)) != len(names):
            raise ValueError(f"model names must be one or more and distinct, got {list(names)}")
        self.names, self.default = tuple(names), names[0]
        self.budget = Budget(int(config.max_inflight_mb * MB))
        self.max_queued_texts = config.limits.max_queued_texts
        self._records: dict[str, ServedModel] = {}

    def put(self, model: ServedModel) -> ServedModel | None:
        """Serve ``model`` under its name from the next lookup on (one assignment: atomic);
        returns the record it replaced (None at start-up), still held by the calls in flight:
        ``retire`` it."""
        if model.name not in self.names:
            raise ValueError(f"{model.name!r} is not one of the configured models {self.names}")
        old = self._records.get(model.name)
        self._records[model.name] = model
        return old

    @contextmanager
    def hold(self, name: str = "", version: str = "") -> Iterator[ServedModel]:
        """``get``, held until the ``with`` ends: a call that runs the model holds it from its
        lookup to its response, so that a swap never closes a model under a call."""
        model = self.get(name, version)
        model.holders.n += 1
        try:
            yield model
        finally:
            model.holders.n -= 1

    @staticmethod
    async def retire(old: ServedModel, poll_s: float = 0.01) -> None:
        """Once no call holds ``old`` (replaced by ``put``), finish what its batcher accepted
        and close it; its memory goes with the last reference to the record."""
        while old.holders.n:
            await asyncio.sleep(poll_s)
        await old.encoder.aclose()

    def get(self, name: str = "", version: str = "") -> ServedModel:
        """The model called ``name`` ("": the default), of ``version`` if one is named: NotFound
        for a name or version not served, NotReady while that model loads."""
        name = name or self.default
        if name not in self.names:
            served = ", ".join(repr(n) for n in self.names)
            raise NotFound(f"unknown model {name!r}; this server serves {served}")
        model = self._records.get(name)
        if model is None:
            raise NotReady("model is loading; retry shortly")
        if version not in ("", model.version):
            raise NotFound(
                f"unknown version {version!r} of model {name!r}; served: {model.version!r}"
            )
        return model

    @property
    def ready(self) -> bool:
        """Every configured model is loaded and self-tested."""
        return len(self._records) == len(self.names)

    def __iter__(self) -> Iterator[ServedModel]:
        """The loaded models, in the configured order (the default first)."""
        return (self._records[n] for n in self.names if n in self._records)

    @property
    def queued_texts(self) -> int:
        """Texts accepted and not yet run, every model's batcher together."""
        return sum(m.encoder.queued_texts for m in self)

    def overloaded(self, request_bytes: int | None = None) -> Overloaded | None:
        """Why a call arriving now is shed, or None (the header gate, which cannot know the
        model before the body is read): on its headers, while the shared budget is past its
        reserve or every model's queue together holds max_queued_texts; by its
        ``request_bytes``, when even the least such a request needs does not fit the budget."""
        if request_bytes is not None:
            return admission.shed_by_size(self.budget, request_bytes)
        return admission.shed_on_headers(self.budget, self.queued_texts, self.max_queued_texts)

    def stream_share(self) -> Budget:
        """The share of the budget one stream's requests may hold together, whatever models
        they name."""
        return self.budget.stream_share()

    async def aclose(self) -> None:
        """Finish everything every model accepted, then refuse more."""
        for m in self:
            await m.encoder.aclose()
