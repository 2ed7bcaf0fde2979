"""The runtime's values: how an Encoder runs (RuntimeConfig), what a request asks for
(EncodeOptions), and what it gets back (TextEncoding, EncodeResult, Tokenized, EncoderInfo)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zh_rnn_encoder.core.enums import Device, Pooling, Truncation
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.core.manifest import (
    Defaults,
    ModelCard,
    ModelConfig,
    Quantization,
    TokenizerConfig,
)
from zh_rnn_encoder.runtime.cpus import available_cpus
from zh_rnn_encoder.runtime.limits import Limits
from zh_rnn_encoder.runtime.pooling import pool_row
from zh_rnn_encoder.runtime.state import EncoderState

# (states [n, F], final [F], the row's prior EncoderState or None) -> its sentence vector [F]
Reduce = Callable[[np.ndarray, np.ndarray, EncoderState | None], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """How an Encoder runs a bundle, built once and passed whole: to ``Encoder.from_bundle``,
    and inside encoder-serve's ServerConfig (``.runtime``). The names are the flags'
    (transport/config.py), so each is also an environment variable there."""

    device: Device = Device.CPU
    threads: int = 0  # onnxruntime intra-op threads; 0: the CPUs this process may use
    limits: Limits = Limits()
    max_batch_tokens: int = 2048  # padded tokens (rows x longest) per onnxruntime run
    batch_wait_ms: float = 0.0  # extra wait to fill a batch; 0 batches only what is queued
    max_inflight_mb: float = 256  # the in-flight budget of admitted work (runtime/admission.py)
    jieba_cache_dir: Path | None = None
    expect_bundle_sha256: str = ""  # pins bundle.json (and through it every file); empty: off

    @property
    def intra_op_threads(self) -> int:
        return self.threads or available_cpus()


@dataclass(frozen=True, init=False)
class EncodeOptions:
    """Per-request options, parsed and checked by the constructor (InvalidInput), which also
    takes strings for the enums (``pooling="mean"``): the fields hold the enums.

    ``pooling`` and ``normalize`` None: not named by the request, so the bundle's declared
    defaults apply (``Encoder.resolve``; last and not normalised for a bundle without them)."""

    pooling: Pooling | None
    normalize: bool | None
    truncation: Truncation
    max_tokens: int  # 0: the encoder's max_tokens_per_text
    token_vectors: bool
    return_state: bool  # each text's EncoderState, to continue it later

    def __init__(
        self,
        pooling: Pooling | str | None = None,
        normalize: bool | None = None,
        truncation: Truncation | str = Truncation.NONE,
        max_tokens: int = 0,
        token_vectors: bool = False,
        return_state: bool = False,
    ) -> None:
        try:
            parsed = None if pooling is None else Pooling.parse(pooling, "pooling")
            truncate = Truncation.parse(truncation, "truncation")
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise InvalidInput(f"max_tokens: expected an integer, got {max_tokens!r}")
        if max_tokens < 0:
            raise InvalidInput(f"max_tokens: must not be negative, got {max_tokens}")
        # frozen: set as the generated __init__ of a frozen dataclass sets them
        object.__setattr__(self, "pooling", parsed)
        object.__setattr__(self, "normalize", normalize)
        object.__setattr__(self, "truncation", truncate)
        object.__setattr__(self, "max_tokens", max_tokens)
        object.__setattr__(self, "token_vectors", token_vectors)
        object.__setattr__(self, "return_state", return_state)

    def reducer(self) -> Reduce | None:
        """Pools a row as soon as its run is done, when its per-token states are not returned:
        then no request holds per-token states beyond its run."""
        if self.pooling is None or self.normalize is None:  # a bug, not a request's fault
            raise RuntimeError("EncodeOptions not resolved against the bundle (Encoder.resolve)")
        if self.token_vectors:
            return None
        return functools.partial(pool_row, mode=self.pooling, normalize=self.normalize)


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


@dataclass
class Segment:
    """A text after tokenizing and truncation, before the graph."""

    tokens: list[str]  # after truncation
    ids: np.ndarray  # int64 [n]
    original_count: int  # tokens before truncation


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
    quantization: Quantization | None = None  # how model.onnx was quantized; None: float32
