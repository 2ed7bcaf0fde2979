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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what __getattr__ returns, for type checkers: the same names as _API
    from zh_rnn_encoder.core.boundaries import split_text as split_text
    from zh_rnn_encoder.core.enums import Cell as Cell
    from zh_rnn_encoder.core.enums import Device as Device
    from zh_rnn_encoder.core.enums import Pooling as Pooling
    from zh_rnn_encoder.core.enums import Truncation as Truncation
    from zh_rnn_encoder.core.errors import BundleError as BundleError
    from zh_rnn_encoder.core.errors import EncoderError as EncoderError
    from zh_rnn_encoder.core.errors import InvalidInput as InvalidInput
    from zh_rnn_encoder.core.errors import LimitExceeded as LimitExceeded
    from zh_rnn_encoder.core.errors import NotReady as NotReady
    from zh_rnn_encoder.core.errors import Overloaded as Overloaded
    from zh_rnn_encoder.core.errors import ProviderUnavailable as ProviderUnavailable
    from zh_rnn_encoder.runtime.encoder import Encoder as Encoder
    from zh_rnn_encoder.runtime.limits import Limits as Limits
    from zh_rnn_encoder.runtime.state import EncoderState as EncoderState
    from zh_rnn_encoder.runtime.types import EncodeOptions as EncodeOptions
    from zh_rnn_encoder.runtime.types import RuntimeConfig as RuntimeConfig
    from zh_rnn_encoder.runtime.types import TextEncoding as TextEncoding
    from zh_rnn_encoder.runtime.types import Tokenized as Tokenized

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
