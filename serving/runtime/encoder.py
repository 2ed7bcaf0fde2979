"""The in-process Encoder: validate -> tokenize -> batch by token budget -> onnxruntime -> pool.

One object with two faces. The synchronous one (``encode``, ``tokenize``) is the public API for
scripts, notebooks and bulk jobs. The asynchronous one (``aencode``, ``atokenize``) is what servers
call: it shares one batcher between concurrent requests and adds the per-request limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import Bundle, load_bundle
from zh_rnn_encoder.core.enums import Device, Pooling, Truncation
from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded, NotReady
from zh_rnn_encoder.core.manifest import Defaults, ModelCard, ModelConfig, TokenizerConfig
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.runtime.admission import MB, Budget, estimate, estimate_tokenize
from zh_rnn_encoder.runtime.batcher import Batcher
from zh_rnn_encoder.runtime.cpus import available_cpus
from zh_rnn_encoder.runtime.document import DEFAULT_CHUNK_TOKENS, Document, DocumentEncoding
from zh_rnn_encoder.runtime.limits import Limits
from zh_rnn_encoder.runtime.padding import pad, plan_runs
from zh_rnn_encoder.runtime.pooling import pool
from zh_rnn_encoder.runtime.selftest import run_golden
from zh_rnn_encoder.runtime.session import Session, open_session, provider_for
from zh_rnn_encoder.runtime.state import (
    EncoderState,
    check_states,
    continued,
    refuse_bidirectional,
    stack_initial,
)

log = logging.getLogger("encoder")
# (bundle, device, threads) -> an object with run(ids, lengths), provider and threads.
SessionFactory = Callable[[Bundle, Device, int], Session]
OnRun = Callable[[int, int], None]  # (texts, padded tokens) of each onnxruntime run
# Requests with more characters than this are tokenized in a worker thread (~1 ms of jieba-rs).
OFF_LOOP_CHARS = 2_000


@dataclass(frozen=True)
class EncodeOptions:
    """Per-request options; strings are accepted for the enums (``pooling="mean"``).

    ``pooling`` and ``normalize`` None: not named by the request, so the bundle's declared
    defaults apply (``Encoder.resolve``; last and not normalised for a bundle without them)."""

    pooling: Pooling | None = None
    normalize: bool | None = None
    truncation: Truncation = Truncation.NONE
    max_tokens: int = 0  # 0: the encoder's max_tokens_per_text
    token_vectors: bool = False
    return_state: bool = False  # each text's EncoderState, to continue it later

    def __post_init__(self) -> None:
        try:
            if self.pooling is not None:
                object.__setattr__(self, "pooling", Pooling.parse(self.pooling, "pooling"))
            object.__setattr__(self, "truncation", Truncation.parse(self.truncation, "truncation"))
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise InvalidInput(f"max_tokens: expected an integer, got {self.max_tokens!r}")
        if self.max_tokens < 0:
            raise InvalidInput(f"max_tokens: must not be negative, got {self.max_tokens}")

    def reducer(self) -> Callable[[np.ndarray, np.ndarray, object], np.ndarray] | None:
        """Pools a row as soon as its run is done, when its per-token states are not returned:
        then no request holds per-token states beyond its run. It takes (states [n, F],
        final [F], the row's prior EncoderState or None)."""
        if self.pooling is None or self.normalize is None:  # a bug, not a request's fault
            raise RuntimeError("EncodeOptions not resolved against the bundle (Encoder.resolve)")
        if self.token_vectors:
            return None
        return functools.partial(_pool_row, mode=self.pooling, normalize=self.normalize)


@dataclass
class TextEncoding:
    tokens: list[str]
    ids: np.ndarray  # int64 [n]
    vector: np.ndarray  # float32 [F]
    token_vectors: np.ndarray | None  # float32 [n, F], when asked for
    truncated: bool
    original_token_count: int
    state: EncoderState | None = None  # with return_state: where to continue from


@dataclass
class EncodeResult:
    """What the serving face returns: the encodings and where the time went."""

    encodings: list[TextEncoding]
    tokenize_s: float
    queue_s: float
    inference_s: float


@dataclass
class Tokenized:
    tokens: list[str]
    ids: np.ndarray  # int64 [n]
    unknown: int  # tokens mapped to unk_id


@dataclass(frozen=True)
class EncoderInfo:
    model: ModelConfig
    tokenizer: TokenizerConfig
    tokenizer_backend: str  # "rjieba" (the fast path) or "jieba"
    vocab_size: int
    pad_id: int
    unk_id: int
    file_hashes: dict[str, str]
    bundle_sha256: str  # of bundle.json: pins the whole bundle (--expect-bundle-sha256)
    provider: str
    threads: int
    limits: Limits
    golden_max_abs_err: float
    defaults: Defaults  # what a request that names no pooling or normalisation gets
    card: ModelCard | None  # how the model was trained and how good it is; None: untrained


@dataclass
class _Segment:
    tokens: list[str]  # after truncation
    ids: np.ndarray
    original_count: int  # before truncation


class Encoder:
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
        limits: Limits = Limits(),
        max_batch_tokens: int = 2048,
        batch_wait_ms: float = 0.0,
        on_run: OnRun | None = None,
        max_inflight_mb: float = 256,
    ) -> None:
        self.bundle, self.tokenizer, self.session = bundle, tokenizer, session
        self.limits, self.golden_err = limits, golden_err
        self.max_batch_tokens, self._batch_wait_s = max_batch_tokens, batch_wait_ms / 1000
        self._on_run = on_run
        self._batcher: Batcher | None = None
        self._tokenize_pool: ThreadPoolExecutor | None = None
        self._closed = False
        self.budget = Budget(int(max_inflight_mb * MB))

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        device: Device | str = Device.CPU,
        threads: int = 0,
        *,
        limits: Limits = Limits(),
        max_batch_tokens: int = 2048,
        batch_wait_ms: float = 0.0,
        max_inflight_mb: float = 256,
        jieba_cache_dir: Path | None = None,
        expect_sha256: str | None = None,
        on_run: OnRun | None = None,
        session_factory: SessionFactory = open_session,
    ) -> Encoder:
        """Check the bundle, open the session and pass the golden samples, or raise.

        ``threads`` 0 means the CPUs this process may use; ``expect_sha256`` pins bundle.json
        (see load_bundle). ``session_factory`` replaces the
        onnxruntime session (the benchmark's eager-PyTorch baseline is the only other one).
        """
        t0 = time.perf_counter()
        provider_for(device)  # an unknown or absent device is refused before any loading
        bundle = load_bundle(Path(path), expect_sha256)
        tokenizer = Tokenizer(bundle.tokenizer, bundle.user_dict_path, jieba_cache_dir)
        session = session_factory(bundle, Device(device), threads or available_cpus())
        err = run_golden(bundle, tokenizer, session)
        log.info(
            "bundle %s loaded and self-tested in %.2fs: %d golden samples, max abs err %.2e "
            "(atol %g)",
            bundle.path,
            time.perf_counter() - t0,
            len(bundle.golden.texts),
            err,
            bundle.golden.atol,
        )
        return cls(
            bundle,
            tokenizer,
            session,
            err,
            limits,
            max_batch_tokens,
            batch_wait_ms,
            on_run,
            max_inflight_mb,
        )

    @property
    def output_dim(self) -> int:
        return self.bundle.model.output_dim

    @property
    def info(self) -> EncoderInfo:
        v = self.bundle.vocab
        return EncoderInfo(
            model=self.bundle.model,
            tokenizer=self.bundle.tokenizer,
            tokenizer_backend=self.tokenizer.backend,
            vocab_size=len(v),
            pad_id=v.pad_id,
            unk_id=v.unk_id,
            file_hashes=self.bundle.file_hashes,
            bundle_sha256=self.bundle.digest,
            provider=self.session.provider,
            threads=self.session.threads,
            limits=self.limits,
            golden_max_abs_err=self.golden_err,
            defaults=self.bundle.manifest.defaults,
            card=self.bundle.manifest.card,
        )

    def resolve(self, opt: EncodeOptions) -> EncodeOptions:
        """``opt`` with the options it leaves unnamed taken from the bundle's declared defaults:
        every face calls this once, so a request means the same on every transport."""
        if opt.pooling is not None and opt.normalize is not None:
            return opt
        d = self.bundle.manifest.defaults
        return dataclasses.replace(
            opt,
            pooling=d.pooling if opt.pooling is None else opt.pooling,
            normalize=d.normalize if opt.normalize is None else opt.normalize,
        )

    # --- the synchronous face ---------------------------------------------------------------

    def encode(
        self,
        texts: Sequence[str],
        *,
        pooling: Pooling | str | None = None,
        normalize: bool | None = None,
        truncation: Truncation | str = Truncation.NONE,
        max_tokens: int = 0,
        token_vectors: bool = False,
        initial_states: Sequence[EncoderState | None] | None = None,
        return_state: bool = False,
    ) -> list[TextEncoding]:
        """Encode any number of texts, run in batches of at most ``max_batch_tokens`` padded
        tokens. Each text is checked as the server checks it (characters, tokens, empty).

        ``initial_states`` (one per text, None for a fresh start) continue earlier encodings,
        and ``return_state`` returns each text's state to continue from (unidirectional models;
        runtime/state.py): encoding A, then B from A's state, equals encoding A+B's tokens.
        ``pooling`` and ``normalize`` None: the bundle's defaults (``info.defaults``)."""
        opt = EncodeOptions(pooling, normalize, truncation, max_tokens, token_vectors, return_state)
        opt = self.resolve(opt)
        texts = list(texts)
        self.limits.check_texts(texts)
        priors = self._priors(texts, initial_states, opt)
        segs = self._segment(texts, opt)
        states, vectors, continued = self._run_all([s.ids for s in segs], opt, priors)
        return self._pool(segs, states, vectors, opt, priors, continued)

    def _priors(
        self, texts: list[str], initial: Sequence | None, opt: EncodeOptions
    ) -> list | None:
        """The rows' prior states, checked against this model; None when there are none."""
        initial = list(initial or [])
        if initial and len(initial) != len(texts):
            raise InvalidInput(
                f"initial_states: {len(initial)} given for {len(texts)} texts (one per text, "
                "or none)"
            )
        if all(s is None for s in initial):
            initial = []
        if not initial and not opt.return_state:
            return None
        refuse_bidirectional(self.bundle.model)
        check_states(initial, self.bundle.model, self._graph_sha256, "initial_states")
        return initial or None

    def encode_document(
        self,
        pieces: Iterable[str],
        *,
        pooling: Pooling | str | None = None,
        normalize: bool | None = None,
        initial_state: EncoderState | None = None,
        max_tokens: int = 0,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    ) -> DocumentEncoding:
        """One document of any length, given in pieces of at most max_chars_per_text characters
        (cut anywhere: a word split between pieces is joined), in constant memory: the pooled
        vector of all its tokens and the state to continue it (runtime/document.py).
        ``max_tokens`` caps the document's tokens (0: no cap). Unidirectional models only."""
        opt = self.resolve(EncodeOptions(pooling, normalize, return_state=True))
        doc = self._document(initial_state, chunk_tokens, max_tokens)
        for piece in pieces:
            for chunk in doc.feed(piece):
                self._run_chunk(doc, chunk, opt)
        for chunk in doc.finish():
            self._run_chunk(doc, chunk, opt)
        return doc.result()

    def _document(
        self, initial: EncoderState | None, chunk_tokens: int, max_tokens: int
    ) -> Document:
        refuse_bidirectional(self.bundle.model)
        check_states([initial], self.bundle.model, self._graph_sha256, "initial_state")
        if chunk_tokens < 1 or max_tokens < 0:
            raise InvalidInput("chunk_tokens must be positive and max_tokens not negative")
        vocab, tokenizer = self.bundle.vocab, self.tokenizer
        return Document(
            lambda text: vocab.encode(tokenizer.tokenize(text)),
            initial,
            chunk_tokens,
            max_piece_chars=self.limits.max_chars_per_text,
            max_carry_chars=self.limits.max_chars_per_text,
            max_tokens=max_tokens,
        )

    def _run_chunk(self, doc: Document, chunk: np.ndarray, opt: EncodeOptions) -> None:
        _, vectors, continued = self._run_all([chunk], opt, [doc.state])
        doc.advance(chunk, continued[0], vectors[0])

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
        doc = self._document(initial_state, self.max_batch_tokens, max_tokens)
        async for piece in pieces:
            for chunk in await self._off_loop([piece], lambda p=piece: list(doc.feed(p))):
                await self._arun_chunk(doc, chunk, opt)
        for chunk in list(doc.finish()):
            await self._arun_chunk(doc, chunk, opt)
        return doc.result()

    async def _arun_chunk(self, doc: Document, chunk: np.ndarray, opt: EncodeOptions) -> None:
        need = len(chunk) * (8 * self.output_dim + 64)  # the run's states and its ids, padded
        async with self.budget.hold(min(need, self.budget.limit), wait=True):
            b = await self._shared_batcher().submit(
                [chunk],
                keep_states=False,
                reduce=opt.reducer(),
                initial=[doc.state],
                on_state=self._on_state(opt),
            )
        doc.advance(chunk, b.continued[0], b.vectors[0])

    def tokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        """Tokens and ids of each text (empty texts allowed), and how many ids are unknown."""
        texts = list(texts)
        self.limits.check_texts(texts, allow_empty=True)
        vocab, out = self.bundle.vocab, []
        for t in texts:
            toks = self.tokenizer.tokenize(t)
            ids = vocab.encode(toks)
            out.append(Tokenized(toks, ids, int((ids == vocab.unk_id).sum())))
        return out

    def _run_all(
        self, rows: list[np.ndarray], opt: EncodeOptions, priors: list | None = None
    ) -> tuple[list, list, list | None]:
        """Runs within the token budget; returns per-token states (token_vectors only), per
        row a vector: the final state or, pooled at once, the sentence vector (see reducer), and
        with return_state each row's state to continue from."""
        states: list[np.ndarray | None] = [None] * len(rows)
        vectors: list[np.ndarray | None] = [None] * len(rows)
        continued = [None] * len(rows) if opt.return_state else None
        reduce, on_state = opt.reducer(), self._on_state(opt)
        for run in plan_runs([len(r) for r in rows], self.max_batch_tokens):
            ids, lengths = pad([rows[i] for i in run], self.bundle.vocab.pad_id)
            own = [priors[i] if priors else None for i in run]
            feed = self._stack(own) if any(p is not None for p in own) else None
            out = self.session.run_state(ids, lengths, feed)
            s, f = out[contract.STATES], out[contract.FINAL]
            for j, i in enumerate(run):
                n = len(rows[i])
                if opt.token_vectors:
                    states[i] = s[j, :n].copy()  # not a view pinning the whole run
                vectors[i] = reduce(s[j, :n], f[j], own[j]) if reduce else f[j].copy()
                if on_state:
                    continued[i] = on_state(own[j], s[j, :n], out, j)
        return states, vectors, continued

    def _stack(self, priors: list) -> dict[str, np.ndarray]:
        return stack_initial(priors, self.bundle.model)

    def _on_state(self, opt: EncodeOptions) -> Callable | None:
        """Makes a row's EncoderState at delivery, while its per-token states exist."""
        if not opt.return_state:
            return None
        model, sha = self.bundle.model, self._graph_sha256

        def make(prior: object, states: np.ndarray, out: dict, j: int) -> EncoderState:
            c_n = out.get(contract.FINAL_C)
            cell = None if c_n is None else c_n[:, j]
            return continued(prior, states, out[contract.FINAL_H][:, j], cell, model, sha)

        return make

    @property
    def _graph_sha256(self) -> str:
        return self.bundle.file_hashes[contract.GRAPH_FILE]

    # --- the serving face -------------------------------------------------------------------

    def admission(self, texts: list[str], opt: EncodeOptions) -> int:
        """Checks a request against every limit it can be checked against before tokenizing,
        and returns the bytes it needs in flight (an upper bound, runtime/admission.py)."""
        self.limits.check_request(texts)
        self.limits.check_texts(texts)
        limit = self.limits.token_limit(opt.max_tokens)
        return estimate(texts, limit, self.output_dim, opt.token_vectors)

    @contextlib.asynccontextmanager
    async def encoded(
        self,
        texts: Sequence[str],
        opt: EncodeOptions,
        wait: bool = False,
        initial_states: Sequence | None = None,
    ) -> AsyncIterator[EncodeResult]:
        """One request, holding its share of the in-flight budget until the block ends (build
        the response inside it). Without ``wait``, a full budget is Overloaded at once."""
        texts = list(texts)
        need = self.admission(texts, opt)
        async with self.budget.hold(need, wait):
            yield await self.encode_admitted(texts, opt, initial_states)

    async def aencode(self, texts: Sequence[str], opt: EncodeOptions) -> EncodeResult:
        async with self.encoded(texts, opt) as result:
            return result

    async def encode_admitted(
        self, texts: list[str], opt: EncodeOptions, initial_states: Sequence | None = None
    ) -> EncodeResult:
        """A request that passed ``admission`` and holds its budget: tokenize (off the event loop
        when long), then the shared batcher of this event loop, then pool."""
        t0 = time.perf_counter()
        opt = self.resolve(opt)
        priors = self._priors(texts, initial_states, opt)
        segs = await self._off_loop(texts, self._segment, texts, opt)
        tokens = sum(len(s.ids) for s in segs)
        self.limits.check_response(len(segs), tokens, self.output_dim, opt.token_vectors)
        tokenize_s = time.perf_counter() - t0
        batched = await self._shared_batcher().submit(
            [s.ids for s in segs],
            keep_states=opt.token_vectors,
            reduce=opt.reducer(),
            initial=priors,
            on_state=self._on_state(opt),
        )
        encodings = self._pool(
            segs, batched.states, batched.vectors, opt, priors, batched.continued
        )
        return EncodeResult(encodings, tokenize_s, batched.queue_s, batched.inference_s)

    @contextlib.asynccontextmanager
    async def tokenized(self, texts: Sequence[str]) -> AsyncIterator[list[Tokenized]]:
        """Tokenize for a server: request limits, budget, off the loop when long, and a response
        that must fit max_message_bytes."""
        texts = list(texts)
        self.limits.check_request(texts)
        self.limits.check_texts(texts, allow_empty=True)
        async with self.budget.hold(estimate_tokenize(texts)):
            out, size = await self._off_loop(texts, self._tokenize_sized, texts)
            if size > self.limits.max_message_bytes:
                raise LimitExceeded(
                    "max_message_bytes", size, self.limits.max_message_bytes, "response"
                )
            yield out

    def _tokenize_sized(self, texts: list[str]) -> tuple[list[Tokenized], int]:
        """tokenize, and the bytes of its response: both off the event loop for long texts."""
        out = self.tokenize(texts)
        return out, sum(len(t.encode("utf-8")) + 11 for x in out for t in x.tokens) + 8 * len(out)

    async def atokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        async with self.tokenized(texts) as out:
            return out

    async def _off_loop(self, texts: list[str], fn: Callable, *args: object) -> object:
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

    def _shared_batcher(self) -> Batcher:
        if self._closed:
            raise NotReady("server is shutting down")
        if self._batcher is None:  # created in, and bound to, the first caller's event loop
            self._batcher = Batcher(
                lambda ids, lengths, feed: self.session.run_state(ids, lengths, feed),
                self.bundle.vocab.pad_id,
                self.max_batch_tokens,
                self.limits.max_queued_texts,
                self._batch_wait_s,
                self._on_run,
                self._stack,
            )
            self._batcher.start()
        return self._batcher

    # --- shared steps -----------------------------------------------------------------------

    def _segment(self, texts: list[str], opt: EncodeOptions) -> list[_Segment]:
        limit = self.limits.token_limit(opt.max_tokens)
        out = []
        for i, t in enumerate(texts):
            toks = self.tokenizer.tokenize(t)
            n = len(toks)
            if n == 0:
                raise InvalidInput(f"texts[{i}]: no tokens after segmentation")
            if n > limit:
                if opt.truncation is Truncation.NONE:
                    raise LimitExceeded(
                        "max_tokens_per_text",
                        n,
                        limit,
                        f"texts[{i}] (set truncation to keep the first or last tokens)",
                    )
                toks = toks[:limit] if opt.truncation is Truncation.KEEP_FIRST else toks[-limit:]
            out.append(_Segment(toks, self.bundle.vocab.encode(toks), n))
        return out

    @staticmethod
    def _pool(
        segs: list[_Segment],
        states: list,
        vectors: list,
        opt: EncodeOptions,
        priors: list | None = None,
        continued: list | None = None,
    ) -> list:
        """``vectors`` holds each row's final state, or its pooled vector when opt.reducer() ran."""
        pooled = opt.reducer() is not None
        return [
            TextEncoding(
                s.tokens,
                s.ids,
                v
                if pooled
                else _pool_row(
                    st, v, priors[k] if priors else None, opt.pooling, opt.normalize
                ),  # fmt: skip
                st if opt.token_vectors else None,
                len(s.ids) < s.original_count,
                s.original_count,
                continued[k] if continued else None,
            )
            for k, (s, st, v) in enumerate(zip(segs, states, vectors))
        ]


def _pool_row(
    states: np.ndarray, final: np.ndarray, prior: object, mode: Pooling, normalize: bool
) -> np.ndarray:
    """The sentence vector of everything encoded so far: the prior state's running pools and
    this row's states; a copy, never a view of the run."""
    return np.array(pool(states, final, mode, normalize, prior))
