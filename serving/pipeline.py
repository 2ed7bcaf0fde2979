"""The data plane: validate, tokenize, batch through the model, pool. Knows nothing of gRPC."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.batcher import Batcher
from serving.bundle import Bundle, load_bundle
from serving.config import Limits, ServerConfig
from serving.errors import InvalidInput, LimitExceeded
from serving.pooling import POOLINGS, pool
from serving.selftest import run_golden
from serving.session import EncoderSession
from serving.tokenizer import Tokenizer

log = logging.getLogger("encoder")
Backend = Callable[[Bundle, str, int], EncoderSession]
TRUNCATIONS = ("none", "first", "last")


@dataclass(frozen=True)
class EncodeOptions:
    pooling: str = "last"
    normalize: bool = False
    truncation: str = "none"  # or keep the "first" / "last" max_tokens tokens
    max_tokens: int = 0  # 0: the server's max_tokens_per_text
    token_vectors: bool = False


@dataclass
class TextEncoding:
    tokens: list[str]
    ids: np.ndarray
    vector: np.ndarray  # float32 [F]
    token_vectors: np.ndarray | None  # float32 [n, F]
    truncated: bool
    original_token_count: int


@dataclass
class EncodeResult:
    encodings: list[TextEncoding]
    tokenize_s: float
    queue_s: float
    inference_s: float


@dataclass
class Tokenized:
    tokens: list[str]
    ids: np.ndarray
    unknown: int  # tokens mapped to unk_id


@dataclass
class Segment:
    tokens: list[str]  # after truncation
    ids: np.ndarray
    original_count: int  # before truncation


class Pipeline:
    """A loaded, self-tested bundle; ``encode`` and ``tokenize`` raise serving.errors only."""

    def __init__(
        self,
        bundle: Bundle,
        tokenizer: Tokenizer,
        session: EncoderSession,
        limits: Limits,
        golden_err: float,
    ) -> None:
        self.bundle, self.tokenizer, self.session = bundle, tokenizer, session
        self.limits, self.golden_err = limits, golden_err
        self.batcher: Batcher | None = None

    @classmethod
    def load(cls, cfg: ServerConfig, backend: Backend = EncoderSession) -> Pipeline:
        """Check the bundle, open the session and run the golden samples (blocking).

        ``backend`` builds the session from (bundle, device, threads); only the benchmark's
        eager-PyTorch baseline passes another one.
        """
        t0 = time.perf_counter()
        bundle = load_bundle(Path(cfg.bundle))
        tokenizer = Tokenizer(bundle.tokenizer, bundle.user_dict_path, cfg.jieba_cache_dir)
        session = backend(bundle, cfg.device, cfg.intra_op_threads)
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
        return cls(bundle, tokenizer, session, cfg.limits, err)

    def start_batcher(
        self, cfg: ServerConfig, on_run: Callable[[int, int], None] | None = None
    ) -> None:
        self.batcher = Batcher(
            self.session.run,
            self.bundle.vocab.pad_id,
            cfg.max_batch_tokens,
            cfg.limits.max_queued_texts,
            cfg.batch_wait_ms / 1000,
            on_run,
        )
        self.batcher.start()

    def check_texts(self, texts: list[str], allow_empty: bool = False) -> None:
        lim = self.limits
        if not texts:
            raise InvalidInput("texts: the request has no texts; send at least one")
        if len(texts) > lim.max_texts_per_request:
            raise LimitExceeded("max_texts_per_request", len(texts), lim.max_texts_per_request)
        for i, t in enumerate(texts):
            if len(t) > lim.max_chars_per_text:
                raise LimitExceeded(
                    "max_chars_per_text", len(t), lim.max_chars_per_text, f"texts[{i}]"
                )
            if not allow_empty and not t.strip():
                raise InvalidInput(f"texts[{i}]: empty or whitespace only; nothing to encode")

    def tokenize(self, texts: list[str]) -> list[Tokenized]:
        self.check_texts(texts, allow_empty=True)
        out = []
        for t in texts:
            toks = self.tokenizer.tokenize(t)
            ids = self.bundle.vocab.encode(toks)
            out.append(Tokenized(toks, ids, int((ids == self.bundle.vocab.unk_id).sum())))
        return out

    def check_options(self, opt: EncodeOptions) -> int:
        """Validates the options; returns the token limit that applies."""
        if opt.pooling not in POOLINGS:
            raise InvalidInput(f"pooling: unknown value {opt.pooling!r}")
        if opt.truncation not in TRUNCATIONS:
            raise InvalidInput(f"truncation: unknown value {opt.truncation!r}")
        limit = self.limits.max_tokens_per_text
        if opt.max_tokens > limit:
            raise LimitExceeded("max_tokens_per_text", opt.max_tokens, limit, "max_tokens")
        return opt.max_tokens or limit

    def _segment(self, texts: list[str], opt: EncodeOptions, limit: int) -> list[Segment]:
        out = []
        for i, t in enumerate(texts):
            toks = self.tokenizer.tokenize(t)
            n = len(toks)
            if n == 0:
                raise InvalidInput(f"texts[{i}]: no tokens after segmentation")
            if n > limit:
                if opt.truncation == "none":
                    raise LimitExceeded(
                        "max_tokens_per_text",
                        n,
                        limit,
                        f"texts[{i}] (set truncation to keep the first or last tokens)",
                    )
                toks = toks[:limit] if opt.truncation == "first" else toks[-limit:]
            out.append(Segment(toks, self.bundle.vocab.encode(toks), n))
        return out

    def _check_response_size(self, segs: list[Segment], opt: EncodeOptions) -> None:
        dim, tokens = self.session.output_dim, sum(len(s.ids) for s in segs)
        floats = (len(segs) + (tokens if opt.token_vectors else 0)) * dim
        size = floats * 4 + tokens * 24  # 24 bytes a token for its id and string, generously
        if size > self.limits.max_message_bytes:
            raise LimitExceeded(
                "max_message_bytes",
                size,
                self.limits.max_message_bytes,
                "response (send fewer texts or no token vectors)",
            )

    async def encode(self, texts: list[str], opt: EncodeOptions) -> EncodeResult:
        t0 = time.perf_counter()
        self.check_texts(texts)
        limit = self.check_options(opt)
        segs = self._segment(texts, opt, limit)
        self._check_response_size(segs, opt)
        tokenize_s = time.perf_counter() - t0
        keep = opt.token_vectors or opt.pooling != "last"
        batched = await self.batcher.submit([s.ids for s in segs], keep_states=keep)
        encs = [
            TextEncoding(
                s.tokens,
                s.ids,
                pool(st, fi, opt.pooling, opt.normalize),
                st if opt.token_vectors else None,
                len(s.ids) < s.original_count,
                s.original_count,
            )
            for s, st, fi in zip(segs, batched.states, batched.final)
        ]
        return EncodeResult(encs, tokenize_s, batched.queue_s, batched.inference_s)
