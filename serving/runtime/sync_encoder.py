"""The Encoder's synchronous face, and what both faces share: loading and self-test, options
resolved against the bundle, tokenizing and truncating, and a run loop in the calling thread.

The public API for scripts, notebooks and bulk jobs (``Encoder.encode``, ``encode_document``,
``tokenize``): a list of any length, run in batches of at most max_batch_tokens padded tokens,
each text checked as the server checks it. Encoder (runtime/encoder.py) adds the serving face.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Self, cast

import numpy as np

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import Bundle, load_bundle
from zh_rnn_encoder.core.enums import Device, Pooling, Truncation
from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded
from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.runtime.delivery import OnState, Rows, encodings, run_inputs
from zh_rnn_encoder.runtime.document import DEFAULT_CHUNK_TOKENS, Document, DocumentEncoding
from zh_rnn_encoder.runtime.padding import plan_runs
from zh_rnn_encoder.runtime.selftest import run_golden
from zh_rnn_encoder.runtime.session import Session, open_session, provider_for
from zh_rnn_encoder.runtime.state import EncoderState, check_priors, stack_initial, state_maker
from zh_rnn_encoder.runtime.types import (
    EncodeOptions,
    EncoderInfo,
    RuntimeConfig,
    Segment,
    TextEncoding,
    Tokenized,
)

log = logging.getLogger("encoder")
# (bundle, device, threads) -> an object with run(ids, lengths), provider and threads.
SessionFactory = Callable[[Bundle, Device, int], Session]
OnRun = Callable[[int, int], None]  # (texts, padded tokens) of each onnxruntime run


class SyncEncoder:
    """A loaded, self-tested bundle and its synchronous face; Encoder (runtime/encoder.py) adds
    the serving face. Raises zh_rnn_encoder errors only."""

    def __init__(
        self,
        bundle: Bundle,
        tokenizer: Tokenizer,
        session: Session,
        golden_err: float,
        config: RuntimeConfig = RuntimeConfig(),
        on_run: OnRun | None = None,
    ) -> None:
        self.bundle, self.tokenizer, self.session = bundle, tokenizer, session
        self.config, self.limits, self.golden_err = config, config.limits, golden_err
        self._on_run = on_run  # each run of the serving face's batcher (metrics)

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        device: Device | str | None = None,
        threads: int | None = None,
        *,
        config: RuntimeConfig = RuntimeConfig(),
        on_run: OnRun | None = None,
        session_factory: SessionFactory = open_session,
        **settings: Any,
    ) -> Self:
        """Check the bundle, open the session and pass the golden samples, or raise.

        ``config`` with ``device``, ``threads`` and any other of its fields named here
        (``limits=``, ``max_batch_tokens=``, ``jieba_cache_dir=``...) replaced. ``threads`` 0
        means the CPUs this process may use; ``expect_bundle_sha256`` pins bundle.json (see
        load_bundle). ``session_factory`` replaces the onnxruntime session (the benchmark's
        eager-PyTorch baseline is the only other one); ``on_run`` sees every run (metrics).
        """
        t0 = time.perf_counter()
        settings |= {k: v for k, v in (("device", device), ("threads", threads)) if v is not None}
        config = dataclasses.replace(config, **settings)
        provider_for(config.device)  # an unknown or absent device is refused before any loading
        bundle = load_bundle(Path(path), config.expect_bundle_sha256 or None)
        tokenizer = Tokenizer(bundle.tokenizer, bundle.user_dict_path, config.jieba_cache_dir)
        session = session_factory(bundle, Device(config.device), config.intra_op_threads)
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
        return cls(bundle, tokenizer, session, err, config, on_run)

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
            quantization=self.bundle.manifest.graph.quantization,
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
        priors = check_priors(initial_states, texts, opt.return_state, *self._model_and_graph)
        segs = self._segment(texts, opt)
        rows = self._run_sync(self._rows([s.ids for s in segs], opt, priors))
        return encodings(segs, rows.states, rows.vectors, opt, priors, rows.continued)

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
        return doc.run(pieces, functools.partial(self._run_chunk, opt))

    def _run_chunk(
        self, opt: EncodeOptions, chunk: np.ndarray, prior: EncoderState | None
    ) -> tuple[EncoderState, np.ndarray]:
        rows = self._run_sync(self._rows([chunk], opt, [prior]))
        # return_state: the one row's state and vector, both set at delivery (Rows.deliver)
        return cast("list[EncoderState]", rows.continued)[0], cast(np.ndarray, rows.vectors[0])

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

    def _run_sync(self, rows: Rows) -> Rows:
        """The synchronous face's runs, within max_batch_tokens, one after another."""
        pad_id = self.bundle.vocab.pad_id
        for run in plan_runs([len(r) for r in rows.ids], self.config.max_batch_tokens):
            out = self.session.run_state(*run_inputs([(rows, i) for i in run], pad_id, self._stack))
            for j, i in enumerate(run):
                rows.deliver(i, out, j)
        return rows

    def _rows(
        self, ids: list[np.ndarray], opt: EncodeOptions, priors: list[EncoderState | None] | None
    ) -> Rows:
        """A request's rows for _run_sync (the batcher builds its own from the same parts)."""
        return Rows(ids, opt.token_vectors, opt.reducer(), priors, self._on_state(opt))

    # --- steps both faces take ----------------------------------------------------------

    def _segment(self, texts: list[str], opt: EncodeOptions) -> list[Segment]:
        """Tokenize and truncate (or refuse) each text."""
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
            out.append(Segment(toks, self.bundle.vocab.encode(toks), n))
        return out

    def _document(
        self, initial: EncoderState | None, chunk_tokens: int, max_tokens: int
    ) -> Document:
        vocab, tokenizer = self.bundle.vocab, self.tokenizer
        return Document.start(
            lambda text: vocab.encode(tokenizer.tokenize(text)),
            *self._model_and_graph,
            initial,
            chunk_tokens,
            max_tokens,
            self.limits.max_chars_per_text,
        )

    def _stack(self, priors: list[EncoderState | None]) -> dict[str, np.ndarray]:
        return stack_initial(priors, self.bundle.model)

    def _on_state(self, opt: EncodeOptions) -> OnState | None:
        """Makes a row's EncoderState at delivery, while its per-token states exist."""
        return state_maker(*self._model_and_graph) if opt.return_state else None

    @property
    def _model_and_graph(self) -> tuple[ModelConfig, str]:
        """The model, and the sha256 of its graph, that a state must come from."""
        return self.bundle.model, self.bundle.file_hashes[contract.GRAPH_FILE]
