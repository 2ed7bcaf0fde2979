"""Documents of any length in constant memory: pieces in, one pooled vector and a state out
(``Encoder.encode_document``, and ``aencode_document`` for servers, are ``Document.run`` and
``arun`` with the Encoder's way of running a chunk).

Each piece joins what the previous one left unfinished; the text up to the last token boundary
(core/boundaries.py) is tokenized, and its ids run through the graph in chunks of at most
``chunk_tokens``, each chunk continuing from the previous one's state. Nothing grows with the
document but two counters: held are the unfinished tail (at most one piece and one run of word
characters), one chunk's ids and states, and the state (runtime/state.py).

A run of word characters longer than ``max_carry_chars`` (no boundary in it) is cut there, the
one place where the tokens may differ from the whole text's; real text has a boundary at least
every sentence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from zh_rnn_encoder.core.boundaries import last_boundary
from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded
from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.runtime.pooling import NotFinite
from zh_rnn_encoder.runtime.state import EncoderState, check_states, refuse_bidirectional

DEFAULT_CHUNK_TOKENS = 2048
# (a chunk's ids, the state it continues) -> (the state after it, the pooled vector so far)
RunChunk = Callable[[np.ndarray, EncoderState | None], tuple[EncoderState, np.ndarray]]
ARunChunk = Callable[[np.ndarray, EncoderState | None], Awaitable[tuple[EncoderState, np.ndarray]]]
# (texts, fn, *args) -> fn(*args), in a worker thread when the texts are long (Encoder._off_loop)
OffLoop = Callable[..., Awaitable[Any]]


@dataclass
class DocumentEncoding:
    vector: np.ndarray  # float32 [F], pooled over every token, normalised when asked
    state: EncoderState  # to continue the document later
    tokens: int  # tokens of this call (state.tokens also counts those before it)
    chars: int


class Document:
    """The text side of one document: pieces in, chunks of ids out; the caller runs each chunk
    from ``self.state`` and hands back the new state and vector with ``advance``."""

    def __init__(
        self,
        tokenize: Callable[[str], np.ndarray],
        initial: EncoderState | None,
        chunk_tokens: int,
        max_piece_chars: int,
        max_carry_chars: int,
        max_tokens: int = 0,
    ) -> None:
        self._tokenize, self.state = tokenize, initial
        self.chunk_tokens, self.max_piece_chars = chunk_tokens, max_piece_chars
        self.max_carry_chars, self.max_tokens = max_carry_chars, max_tokens
        self._carry = ""
        self.tokens = self.chars = self.pieces = 0
        self.vector: np.ndarray | None = None

    @classmethod
    def start(
        cls,
        tokenize: Callable[[str], np.ndarray],
        model: ModelConfig,
        graph_sha256: str,
        initial: EncoderState | None,
        chunk_tokens: int,
        max_tokens: int,
        max_chars: int,
    ) -> Document:
        """A document of this model continuing ``initial`` (None: from the start), checked as
        both faces check it; pieces and carried text of at most ``max_chars`` characters."""
        refuse_bidirectional(model)
        check_states([initial], model, graph_sha256, "initial_state")
        if chunk_tokens < 1 or max_tokens < 0:
            raise InvalidInput("chunk_tokens must be positive and max_tokens not negative")
        return cls(tokenize, initial, chunk_tokens, max_chars, max_chars, max_tokens)

    def run(self, pieces: Iterable[str], run_chunk: RunChunk) -> DocumentEncoding:
        """Every piece, then what is left, each chunk run from the state before it."""
        with self._named():
            for piece in pieces:
                for chunk in self.feed(piece):
                    self.advance(chunk, *run_chunk(chunk, self.state))
            for chunk in self.finish():
                self.advance(chunk, *run_chunk(chunk, self.state))
        return self.result()

    async def arun(
        self, pieces: AsyncIterator[str], run_chunk: ARunChunk, off_loop: OffLoop
    ) -> DocumentEncoding:
        """``run`` for servers: each piece tokenized by ``off_loop`` (off the event loop when
        long), each chunk awaited."""
        with self._named():
            async for piece in pieces:
                for chunk in await off_loop([piece], self._feed_all, piece):
                    self.advance(chunk, *await run_chunk(chunk, self.state))
            for chunk in list(self.finish()):
                self.advance(chunk, *await run_chunk(chunk, self.state))
        return self.result()

    @contextmanager
    def _named(self) -> Iterator[None]:
        """A chunk's NotFinite names the document and how far it got, not the chunk's row."""
        try:
            yield
        except NotFinite:
            raise NotFinite(f"document, past token {self.tokens}") from None

    def _feed_all(self, piece: str) -> list[np.ndarray]:
        return list(self.feed(piece))

    def feed(self, piece: str) -> Iterator[np.ndarray]:
        """The chunks of ids that ``piece`` completes (the unfinished tail waits)."""
        if len(piece) > self.max_piece_chars:
            raise LimitExceeded(
                "max_chars_per_text", len(piece), self.max_piece_chars, f"piece {self.pieces}"
            )
        self.pieces += 1
        self.chars += len(piece)
        text = self._carry + piece
        cut = last_boundary(text)
        if cut == 0 and len(text) > self.max_carry_chars:
            cut = len(text)  # a run with no boundary that long: cut it (see the module doc)
        self._carry = text[cut:]
        yield from self._chunks(text[:cut])

    def finish(self) -> Iterator[np.ndarray]:
        """The chunks of what is left; then the document must hold a token."""
        text, self._carry = self._carry, ""
        yield from self._chunks(text)

    def _chunks(self, text: str) -> Iterator[np.ndarray]:
        if not text:
            return
        ids = self._tokenize(text)
        for at in range(0, len(ids), self.chunk_tokens):
            chunk = ids[at : at + self.chunk_tokens]
            if self.max_tokens and self.tokens + len(chunk) > self.max_tokens:
                raise LimitExceeded(
                    "max_document_tokens", self.tokens + len(chunk), self.max_tokens, "document"
                )
            yield chunk

    def advance(self, chunk: np.ndarray, state: EncoderState, vector: np.ndarray) -> None:
        self.tokens += len(chunk)
        self.state, self.vector = state, vector

    def result(self) -> DocumentEncoding:
        if self.vector is None or self.state is None:  # set together by advance
            raise InvalidInput("document: no tokens in any piece; nothing to encode")
        return DocumentEncoding(self.vector, self.state, self.tokens, self.chars)
