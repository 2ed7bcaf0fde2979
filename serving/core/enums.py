"""The option vocabularies, defined once: every transport, the client and export read them here."""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class _Choice(StrEnum):
    """A string-valued choice; ``parse`` turns a value or an alias into a member."""

    @classmethod
    def parse(cls, value: object, field: str) -> Self:
        """The member for ``value``; ValueError naming ``field`` and the choices otherwise."""
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(m.value for m in cls)
        raise ValueError(f"{field}: unknown value {value!r}; choose one of {names}")


class Cell(_Choice):
    RNN = "rnn"  # tanh, the tutorial's
    LSTM = "lstm"
    GRU = "gru"


class Formulation(_Choice):
    """How the exporter writes the recurrence into the graph (docs/exporter.md): the cell's
    native ONNX op (RNN, LSTM, GRU; cuDNN's kernels on CUDA), or one Scan per layer and
    direction (the plain RNN only; faster on the CPU)."""

    NATIVE = "native"
    SCAN = "scan"


class Nonlinearity(_Choice):
    """The activation of the plain RNN cell (nn.RNN's ``nonlinearity``)."""

    TANH = "tanh"  # the tutorial's
    RELU = "relu"


class Pooling(_Choice):
    """How a text's per-token states become one sentence vector."""

    LAST = "last"  # the final state: forward at the true end, backward at position 0
    MEAN = "mean"
    MAX = "max"


class Truncation(_Choice):
    """What to do with a text longer than the token limit."""

    NONE = "none"  # refuse it, naming the limit
    KEEP_FIRST = "keep_first"
    KEEP_LAST = "keep_last"

    @classmethod
    def _missing_(cls, value: object) -> Truncation | None:
        # the short spellings of earlier releases and of encoder-client
        aliases = {"first": cls.KEEP_FIRST, "last": cls.KEEP_LAST}
        return aliases.get(value) if isinstance(value, str) else None


class Device(_Choice):
    """Where onnxruntime runs the graph; each maps to one execution provider, never a fallback."""

    CPU = "cpu"
    CUDA = "cuda"

    @property
    def provider(self) -> str:
        return {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}[self.value]


class Whitespace(_Choice):
    """Whitespace tokens: kept, as jieba.lcut returns them, or dropped."""

    KEEP = "keep"
    DROP = "drop"
