"""zh-rnn-encoder: a Chinese word-level RNN encoder served without PyTorch.

The public API, imported on first use so that ``zh_rnn_encoder.client`` stays free of
onnxruntime and jieba:

    from zh_rnn_encoder import Encoder
    enc = Encoder.from_bundle("bundles/default", device="cpu", threads=0)
    out = enc.encode(["北京冬奥的进度条已经过半"], pooling="mean", normalize=True)

Layers (docs/architecture.md): core (contract, manifest, tokenizer, vocabulary, enums, errors)
-> runtime (session, batcher, Encoder) -> transport (encoder.v1 and Open Inference gRPC, OpenAI
HTTP; `encoder-serve` is zh_rnn_encoder.transport.app) ; client ; export.
"""

from __future__ import annotations

from importlib import import_module, metadata

__version__ = metadata.version("zh-rnn-encoder")

_API = {
    "Encoder": "zh_rnn_encoder.runtime.encoder",
    "RuntimeConfig": "zh_rnn_encoder.runtime.types",
    "EncodeOptions": "zh_rnn_encoder.runtime.types",
    "TextEncoding": "zh_rnn_encoder.runtime.types",
    "Tokenized": "zh_rnn_encoder.runtime.types",
    "Limits": "zh_rnn_encoder.runtime.limits",
    "EncoderState": "zh_rnn_encoder.runtime.state",
    "split_text": "zh_rnn_encoder.core.boundaries",
    "Cell": "zh_rnn_encoder.core.enums",
    "Device": "zh_rnn_encoder.core.enums",
    "Pooling": "zh_rnn_encoder.core.enums",
    "Truncation": "zh_rnn_encoder.core.enums",
    "EncoderError": "zh_rnn_encoder.core.errors",
    "InvalidInput": "zh_rnn_encoder.core.errors",
    "LimitExceeded": "zh_rnn_encoder.core.errors",
    "Overloaded": "zh_rnn_encoder.core.errors",
    "NotReady": "zh_rnn_encoder.core.errors",
    "BundleError": "zh_rnn_encoder.core.errors",
    "ProviderUnavailable": "zh_rnn_encoder.core.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
