"""Admission: one budget of in-flight work, in bytes, for every request and stream of a server;
the Admission a request holds while it runs; and every estimate of the bytes that work holds.

``Encoder.admit`` checks a request's limits, estimates its bytes and takes them: at once or not
at all for a unary call (Overloaded, before any tokenization, like TEI's try_acquire_permit),
or waiting for them (a stream's request, like acquire_permit), which stops the stream reading
and lets HTTP/2 flow control push back on the client. The Admission it returns is passed to
``Encoder.encode_admitted`` and gives its bytes back once, when released. A request's estimates
are upper bounds computed from characters, before tokenizing (jieba never yields more tokens
than characters). A response's size is an upper bound too, counted from its tokens (their UTF-8
included: one token can be 20,000 letters) before the graph runs, in the form each transport
sends (a ResponseSize; response_bytes is encoder.v1's); each transport also checks the exact
size of what it is about to send, as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zh_rnn_encoder.core.errors import LimitExceeded, Overloaded

if TYPE_CHECKING:
    from types import TracebackType

    from zh_rnn_encoder.runtime.state import EncoderState
    from zh_rnn_encoder.runtime.types import EncodeOptions

MB = 1 << 20
# Bytes a token costs while in flight, besides its vectors: its str object, list slot and id.
TOKEN_BYTES = 96
# A character of request text: the received UTF-8 (<= 4) and the parsed str (<= 4).
CHAR_BYTES = 8
# Protobuf upper bounds (a varint of n bits takes ceil(n / 7) bytes). A token, in either response,
# besides its id (``id_bytes``: the varint of the vocabulary's largest id) and its UTF-8: its
# string's tag and length, 2 bytes, and 1 or 2 more for a token of 128 bytes or more, so at most
# 2 per token and 1 per 64 bytes of tokens (``_token_framing``).
# A text in an Encode response, besides its tokens and vectors: the framing of its message, of
# its ids and of its tensors, their shapes, truncated and original_token_count (<= 63).
RESPONSE_TEXT_BYTES = 96
# An EncodeResponse's own fields but request_id (the transport counts that): timing (<= 46).
RESPONSE_BYTES = 64
# A State in a response, besides its tensors' values: version, graph sha256, cell, sizes, the
# tensors' shapes and every field's framing (<= 166).
STATE_BYTES = 192
# A text in a Tokenize response, besides its tokens: its framing, its ids' and unknown_count's.
TOKENIZED_TEXT_BYTES = 24
# A Tokenize response's own field: its model_version, 64 hex digits with their tag and length (66).
TOKENIZE_RESPONSE_BYTES = 72
# The share of the budget kept for requests already past the header gate: the gate sheds calls
# when less than this is free (those past it are refused on their estimate if they do not fit).
RESERVE = 1 / 8
# The share of the budget one stream may hold, so that one unread stream cannot take it all.
STREAM_SHARE = 1 / 4


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
    """Upper bound of the bytes one Tokenize request holds."""
    chars = sum(len(t) for t in texts)
    return chars * (CHAR_BYTES + TOKEN_BYTES + 16)


@dataclass(frozen=True)
class ResponseShape:
    """What the size of an Encode response depends on, known once its texts are tokenized,
    before the graph runs: each transport sizes its own form of the response from it."""

    tokens: list[int]  # per text, after truncation
    token_bytes: int  # the UTF-8 of every token
    id_bytes: int  # the varint of the largest id (varint_bytes)
    dim: int  # values in a vector
    token_vectors: bool
    state_bytes: int  # one text's State in a response (state_bytes); 0 unless asked for


# A transport's upper bound of its response's bytes (Encoder.encode_admitted checks it).
ResponseSize = Callable[[ResponseShape], int]


def response_bytes(shape: ResponseShape) -> int:
    """Upper bound of an encoder.v1 EncodeResponse's bytes, but its request_id."""
    texts, tokens = len(shape.tokens), sum(shape.tokens)
    floats = (texts + (tokens if shape.token_vectors else 0)) * shape.dim
    each_text = texts * (RESPONSE_TEXT_BYTES + shape.state_bytes)
    each_token = _token_framing(tokens, shape.token_bytes) + tokens * shape.id_bytes
    return RESPONSE_BYTES + floats * 4 + each_text + each_token + shape.token_bytes


def _token_framing(tokens: int, utf8: int) -> int:
    """The most the tag and length of ``tokens`` strings of ``utf8`` bytes in all can take."""
    return 2 * tokens + -(-utf8 // 64)


def varint_bytes(n: int) -> int:
    """The bytes of a protobuf varint of ``n`` >= 0."""
    return max(1, -(-n.bit_length() // 7))


def state_bytes(num_layers: int, hidden_size: int, lstm: bool) -> int:
    """Upper bound of one State in a response: h (and LSTM's c) [layers, hidden] float32, the
    running sum float64 and maximum float32 [hidden], and the rest (STATE_BYTES)."""
    return STATE_BYTES + 4 * num_layers * hidden_size * (2 if lstm else 1) + 12 * hidden_size


def tokenized_bytes(texts: Sequence[Sequence[str]], id_bytes: int = 10) -> int:
    """Upper bound of a TokenizeResponse's bytes, from each text's tokens (``id_bytes``: as in
    ResponseShape; 10 fits any id)."""
    tokens = sum(len(x) for x in texts)
    utf8 = sum(len("".join(x).encode("utf-8")) for x in texts)
    each_text = TOKENIZED_TEXT_BYTES * len(texts)
    framing = _token_framing(tokens, utf8)
    return TOKENIZE_RESPONSE_BYTES + each_text + framing + tokens * id_bytes + utf8


def chunk_bytes(tokens: int, dim: int) -> int:
    """What one chunk of a document holds while it runs: its states and its ids, padded."""
    return tokens * (8 * dim + 64)


def shed_on_headers(budget: Budget, queued: int, max_queued: int) -> Overloaded | None:
    """The refusal of a call on its headers while the budget is past its reserve or the
    batcher's queue is full; None to let it in."""
    if not budget.past_reserve() and queued < max_queued:
        return None
    return Overloaded(
        f"server full: {budget.used / MB:.0f} of max_inflight_mb={budget.limit // MB} MB in "
        f"use, {queued} of max_queued_texts={max_queued} texts queued; retry with backoff"
    )


def shed_by_size(budget: Budget, request_bytes: int) -> Overloaded | None:
    """The refusal of a request by its size on the wire, before it is parsed, when even the
    least such a request needs does not fit the budget now; None to parse it."""
    if not budget.full_for(at_least(request_bytes)):
        return None
    return Overloaded(
        f"max_inflight_mb={budget.limit // MB} in use ({budget.used / MB:.0f} MB admitted); "
        "retry with backoff"
    )


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

    def past_reserve(self) -> bool:
        """Less than RESERVE of the budget is free: the header gate sheds new calls."""
        return self.used > self.limit * (1 - RESERVE)

    def stream_share(self) -> Budget:
        """A budget for one stream's requests, which take from it as well as from this one."""
        return Budget(int(self.limit * STREAM_SHARE))

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
            asyncio.get_running_loop().create_task(_notify(self._freed))

    @contextlib.asynccontextmanager
    async def hold(self, need: int, wait: bool = False) -> AsyncIterator[None]:
        """``need`` bytes for the block (the runtime's own work: Tokenize, a document's chunk)."""
        if wait:
            await self.take(need)
        else:
            self.try_take(need)
        try:
            yield
        finally:
            self.give(need)


async def _notify(freed: asyncio.Condition) -> None:
    async with freed:
        freed.notify_all()


class Admission:
    """A request admitted by ``Encoder.admit``: its texts, options (resolved against the bundle)
    and prior states, all checked, and the ``held`` bytes of the in-flight budget (and of its
    stream's share) that it holds until ``release``. Release gives them back once, however
    often it is called; as a context manager it releases on leaving the block. Build the
    response before releasing: the estimate counts it."""

    __slots__ = ("texts", "options", "priors", "held", "_budget", "_stream", "_stream_held")

    def __init__(
        self,
        texts: list[str],
        options: EncodeOptions,
        priors: list[EncoderState | None] | None,
        held: int,
        budget: Budget,
        stream: Budget | None = None,
        stream_held: int = 0,
    ) -> None:
        self.texts, self.options, self.priors, self.held = texts, options, priors, held
        self._budget: Budget | None = budget
        self._stream, self._stream_held = stream, stream_held

    @property
    def released(self) -> bool:
        return self._budget is None

    def release(self) -> None:
        budget, self._budget = self._budget, None
        if budget is None:
            return
        budget.give(self.held)
        if self._stream is not None:
            self._stream.give(self._stream_held)

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


async def take(
    budget: Budget,
    need: int,
    wait: bool,
    stream: Budget | None,
    texts: list[str],
    options: EncodeOptions,
    priors: list[EncoderState | None] | None,
) -> Admission:
    """``need`` bytes of ``budget`` (and at most the whole of ``stream``, first), at once or
    waiting for them; the Admission that holds them."""
    share = 0
    if stream is not None:
        share = min(need, stream.limit)
        if wait:
            await stream.take(share)
        else:
            stream.try_take(share)
    try:
        if wait:
            await budget.take(need)
        else:
            budget.try_take(need)
    except BaseException:
        if stream is not None:
            stream.give(share)
        raise
    return Admission(texts, options, priors, need, budget, stream, share)
