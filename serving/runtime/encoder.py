"""The Encoder: validate -> tokenize -> batch by token budget -> onnxruntime -> pool.

One loaded, self-tested bundle with two faces. The synchronous one (``encode``,
``encode_document``, ``tokenize``; runtime/sync_encoder.py, with loading and the steps both
faces share) is the public API for scripts, notebooks and bulk jobs. The serving one, here, is
what every transport calls: ``admit`` (the per-request limits and the in-flight budget,
runtime/admission.py) and ``encode_admitted`` with the Admission it returns, ``tokenized``,
``aencode_document``, and ``overloaded`` for the header gate. It shares one batcher
(runtime/batcher.py) between concurrent requests.

The values live in runtime/types.py, a row's way through the graph in runtime/delivery.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

import numpy as np

from zh_rnn_encoder.core.bundle import Bundle
from zh_rnn_encoder.core.enums import Cell
from zh_rnn_encoder.core.errors import NotReady, Overloaded
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.runtime import admission
from zh_rnn_encoder.runtime.admission import MB, Admission, Budget, ResponseShape, ResponseSize
from zh_rnn_encoder.runtime.batcher import Batcher
from zh_rnn_encoder.runtime.delivery import encodings
from zh_rnn_encoder.runtime.document import DocumentEncoding
from zh_rnn_encoder.runtime.session import Session
from zh_rnn_encoder.runtime.spans import NO_SPANS, Spans
from zh_rnn_encoder.runtime.state import EncoderState, check_priors
from zh_rnn_encoder.runtime.sync_encoder import OnRun, SessionFactory, SyncEncoder
from zh_rnn_encoder.runtime.types import (
    EncodeOptions,
    EncodeResult,
    EncoderInfo,
    RuntimeConfig,
    Segment,
    TextEncoding,
    Tokenized,
)

__all__ = [
    "EncodeOptions",
    "EncodeResult",
    "Encoder",
    "EncoderInfo",
    "OnRun",
    "RuntimeConfig",
    "SessionFactory",
    "TextEncoding",
    "Tokenized",
]

# Requests with more characters than this are tokenized in a worker thread (~1 ms of jieba-rs).
OFF_LOOP_CHARS = 2_000
T = TypeVar("T")


class Encoder(SyncEncoder):
    """A loaded, self-tested bundle. Raises zh_rnn_encoder errors only.

    >>> enc = Encoder.from_bundle("bundles/default")
    >>> enc.encode(["北京冬奥的进度条已经过半"], pooling="mean")[0].vector.shape
    (256,)
    """

    def __init__(
        self,
        bundle: Bundle,
        tokenizer: Tokenizer,
        session: Session,
        golden_err: float,
        config: RuntimeConfig = RuntimeConfig(),
        on_run: OnRun | None = None,
    ) -> None:
        super().__init__(bundle, tokenizer, session, golden_err, config, on_run)
        self.budget = Budget(int(config.max_inflight_mb * MB))
        self._batcher: Batcher | None = None
        self._tokenize_pool: ThreadPoolExecutor | None = None
        self._closed = False
        self.spans: Spans = NO_SPANS  # what a server traces with; set before it serves

    async def admit(
        self,
        texts: Sequence[str],
        options: EncodeOptions,
        *,
        wait: bool = False,
        initial_states: Sequence[EncoderState | None] | None = None,
        stream: Budget | None = None,
    ) -> Admission:
        """Checks a request against every limit it can be checked against before tokenizing,
        resolves its options and checks its states, then takes the bytes it needs in flight
        (an upper bound, runtime/admission.py): at once, or Overloaded when the budget is full;
        with ``wait``, waiting for them. A stream's requests also take from its ``stream``
        share (``stream_share``). The Admission holds them until released; pass it to
        ``encode_admitted`` and release it once the response is built (``with`` does both)."""
        texts = list(texts)
        self.limits.check_request(texts)
        self.limits.check_texts(texts)
        opt = self.resolve(options)
        limit = self.limits.token_limit(opt.max_tokens)
        priors = check_priors(initial_states, texts, opt.return_state, *self._model_and_graph)
        need = admission.estimate(texts, limit, self.output_dim, opt.token_vectors)
        return await admission.take(self.budget, need, wait, stream, texts, opt, priors)

    async def encode_admitted(
        self, admitted: Admission, response_size: ResponseSize = admission.response_bytes
    ) -> EncodeResult:
        """An admitted request (``admit``), while it holds its bytes: tokenize (off the event
        loop when long), refuse a response over max_message_bytes by the transport's
        ``response_size`` (encoder.v1's by default), then the shared batcher of this event
        loop, then pool."""
        if admitted.released:  # its bytes may be someone else's by now: a bug, not the client's
            raise RuntimeError("encode_admitted: the Admission was released")
        t0 = time.perf_counter()
        texts, opt, priors = admitted.texts, admitted.options, admitted.priors
        segs, shape = await self._off_loop(texts, self._segment_shaped, texts, opt)
        vectors = ", or no token vectors" if opt.token_vectors else ""
        self.limits.check_response(response_size(shape), f"send fewer or shorter texts{vectors}")
        tokenize_s = time.perf_counter() - t0
        if (span := self._span()) is not None:
            self.spans.tokenized(span, t0, t0 + tokenize_s, len(segs), sum(shape.tokens))
        b = await self._shared_batcher().submit(
            [s.ids for s in segs],
            keep_states=opt.token_vectors,
            reduce=opt.reducer(),
            initial=priors,
            on_state=self._on_state(opt),
            span=span,
        )
        out = encodings(segs, b.states, b.vectors, opt, priors, b.continued)
        return EncodeResult(out, tokenize_s, b.queue_s, b.inference_s)

    def _segment_shaped(
        self, texts: list[str], opt: EncodeOptions
    ) -> tuple[list[Segment], ResponseShape]:
        """_segment, and what its response's size depends on: both off the event loop for long
        texts (a token's UTF-8 is counted, not guessed: one token can be 20,000 letters)."""
        segs = self._segment(texts, opt)
        m = self.bundle.model
        state = admission.state_bytes(m.num_layers, m.hidden_size, m.cell is Cell.LSTM)
        shape = ResponseShape(
            tokens=[len(s.ids) for s in segs],
            token_bytes=sum(len("".join(s.tokens).encode("utf-8")) for s in segs),
            id_bytes=self._id_bytes,
            dim=self.output_dim,
            token_vectors=opt.token_vectors,
            state_bytes=state if opt.return_state else 0,
        )
        return segs, shape

    @property
    def _id_bytes(self) -> int:
        """The most bytes an id takes in a response: the varint of the largest."""
        return admission.varint_bytes(len(self.bundle.vocab) - 1)

    def overloaded(self, request_bytes: int | None = None) -> Overloaded | None:
        """Why a call arriving now is shed, or None (the header gate, transport/gate.py): on
        its headers, while the in-flight budget is past its reserve or the batcher's queue is
        full; by its ``request_bytes`` on the wire, when even the least a request that size
        needs does not fit the budget now."""
        if request_bytes is not None:
            return admission.shed_by_size(self.budget, request_bytes)
        most = self.limits.max_queued_texts
        return admission.shed_on_headers(self.budget, self.queued_texts, most)

    def stream_share(self) -> Budget:
        """The share of the in-flight budget one stream's requests may hold together (``admit``'s
        ``stream``), so one stream that is not read cannot hold it all."""
        return self.budget.stream_share()

    @contextlib.asynccontextmanager
    async def tokenized(self, texts: Sequence[str]) -> AsyncIterator[list[Tokenized]]:
        """Tokenize for a server: request limits, budget, off the loop when long, and a response
        that must fit max_message_bytes. Build the response inside the block."""
        texts = list(texts)
        self.limits.check_request(texts)
        self.limits.check_texts(texts, allow_empty=True)
        async with self.budget.hold(admission.estimate_tokenize(texts)):
            out, size = await self._off_loop(texts, self._tokenize_sized, texts)
            self.limits.check_response(size)
            yield out

    def _tokenize_sized(self, texts: list[str]) -> tuple[list[Tokenized], int]:
        """tokenize, and the bytes of its response: both off the event loop for long texts."""
        out = self.tokenize(texts)
        return out, admission.tokenized_bytes([x.tokens for x in out], self._id_bytes)

    async def aencode_document(
        self,
        pieces: AsyncIterator[str],
        opt: EncodeOptions,
        initial_state: EncoderState | None = None,
        max_tokens: int = 0,
    ) -> DocumentEncoding:
        """encode_document for servers: pieces tokenized off the event loop, chunks of
        max_batch_tokens through the shared batcher, each holding its share of the in-flight
        budget (waiting for it: a document is a stream, it slows down rather than fails)."""
        opt = self.resolve(EncodeOptions(opt.pooling, opt.normalize, return_state=True))
        doc = self._document(initial_state, self.config.max_batch_tokens, max_tokens)
        return await doc.arun(pieces, functools.partial(self._arun_chunk, opt), self._off_loop)

    async def _arun_chunk(
        self, opt: EncodeOptions, chunk: np.ndarray, prior: EncoderState | None
    ) -> tuple[EncoderState, np.ndarray]:
        need = admission.chunk_bytes(len(chunk), self.output_dim)
        async with self.budget.hold(min(need, self.budget.limit), wait=True):
            b = await self._shared_batcher().submit(
                [chunk],
                keep_states=False,
                reduce=opt.reducer(),
                initial=[prior],
                on_state=self._on_state(opt),
                span=self._span(),
            )
        # return_state: the one row's state and vector, both set at delivery (Rows.deliver)
        return cast("list[EncoderState]", b.continued)[0], cast(np.ndarray, b.vectors[0])

    async def _off_loop(self, texts: list[str], fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` inline for short texts; in the tokenizer thread when long, so that one
        large request never holds the event loop (and every other client) for long."""
        if sum(len(t) for t in texts) < OFF_LOOP_CHARS:
            return fn(*args)
        if self._tokenize_pool is None:
            self._tokenize_pool = ThreadPoolExecutor(1, thread_name_prefix="tokenize")
        return await asyncio.get_running_loop().run_in_executor(self._tokenize_pool, fn, *args)

    @property
    def queued_texts(self) -> int:
        """Texts accepted by the serving face and not yet run."""
        return self._batcher.queued_texts if self._batcher else 0

    async def aclose(self) -> None:
        """Finish everything the serving face accepted, then refuse more (NotReady)."""
        self._closed = True
        if self._batcher:
            await self._batcher.close()
        if self._tokenize_pool:
            self._tokenize_pool.shutdown(wait=True)

    def _span(self) -> object | None:
        """The current call's span when tracing (one attribute check when not)."""
        return self.spans.current() if self.spans.enabled else None

    def _shared_batcher(self) -> Batcher:
        if self._closed:
            raise NotReady("server is shutting down")
        if self._batcher is None:  # created in, and bound to, the first caller's event loop
            self._batcher = Batcher(
                lambda ids, lengths, feed: self.session.run_state(ids, lengths, feed),
                self.bundle.vocab.pad_id,
                self.config.max_batch_tokens,
                self.limits.max_queued_texts,
                self.config.batch_wait_ms / 1000,
                self._on_run,
                self._stack,
                self.spans,
            )
            self._batcher.start()
        return self._batcher
