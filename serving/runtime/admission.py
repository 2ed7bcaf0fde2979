"""One budget of in-flight work, in bytes, for every request and stream of a server.

Unary requests take their share on admission or are refused at once (Overloaded, before any
tokenization); streams wait for it, which stops them reading and lets HTTP/2 flow control push
back on the client. Estimates are upper bounds computed from characters, before tokenizing:
jieba never yields more tokens than characters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from zh_rnn_encoder.core.errors import LimitExceeded, Overloaded

MB = 1 << 20
# Bytes a token costs while in flight, besides its vectors: its str object, list slot and id.
TOKEN_BYTES = 96
# A character of request text: the received UTF-8 (<= 4) and the parsed str (<= 4).
CHAR_BYTES = 8


def estimate(texts: Sequence[str], token_limit: int, dim: int, token_vectors: bool) -> int:
    """Upper bound of the bytes one Encode request holds from admission to its response.

    Per token: its ids and strings; with token vectors, its states three times (kept, in the
    response message, serialized). Per text: the sentence vector, likewise. Pooling happens as
    each run finishes, so pooled requests hold no per-token states.
    """
    per_token = TOKEN_BYTES + (12 * dim if token_vectors else 0)
    tokens = sum(min(len(t), token_limit) for t in texts)
    chars = sum(len(t) for t in texts)
    return chars * CHAR_BYTES + tokens * per_token + len(texts) * 12 * dim


def at_least(request_bytes: int) -> int:
    """A lower bound of any request's need from its size on the wire, before parsing it: each
    character takes at most 4 bytes of UTF-8 and costs CHAR_BYTES in flight."""
    return request_bytes // 4 * CHAR_BYTES


def estimate_tokenize(texts: Sequence[str]) -> int:
    chars = sum(len(t) for t in texts)
    return chars * (CHAR_BYTES + TOKEN_BYTES + 16)


class Budget:
    """``limit`` bytes shared by everything in flight; bound to the event loop that uses it."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._freed: asyncio.Condition | None = None
        self._active = False

    def active_since_asked(self) -> bool:
        """Whether anything was taken since the last call (for periodic housekeeping)."""
        active, self._active = self._active, False
        return active

    def _check_fits_alone(self, need: int) -> None:
        if need > self.limit:
            raise LimitExceeded(
                "max_inflight_mb",
                -(-need // MB),
                self.limit // MB,
                "request (alone it needs more than the whole in-flight budget, in MB; send "
                "fewer or shorter texts, or no token vectors)",
            )

    def full_for(self, need: int) -> bool:
        return self.used + need > self.limit

    def try_take(self, need: int) -> None:
        """Take ``need`` bytes now, or raise Overloaded without waiting."""
        self._check_fits_alone(need)
        if self.full_for(need):
            raise Overloaded(
                f"max_inflight_mb={self.limit // MB} in use ({self.used / MB:.0f} MB admitted, "
                f"this request needs {need / MB:.1f} MB); retry with backoff"
            )
        self.used += need
        self._active = True

    async def take(self, need: int) -> None:
        """Take ``need`` bytes, waiting for others to give theirs back."""
        self._check_fits_alone(need)
        if self._freed is None:
            self._freed = asyncio.Condition()
        async with self._freed:
            await self._freed.wait_for(lambda: self.used + need <= self.limit)
            self.used += need
            self._active = True

    def give(self, n: int) -> None:
        self.used -= n
        if self._freed is not None:
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._freed:
            self._freed.notify_all()

    @contextlib.asynccontextmanager
    async def hold(self, need: int, wait: bool = False) -> AsyncIterator[None]:
        if wait:
            await self.take(need)
        else:
            self.try_take(need)
        try:
            yield
        finally:
            self.give(need)
