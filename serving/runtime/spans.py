"""The serving face's tracing hook: what a call spent in tokenization, in the batcher's queue and
in each onnxruntime run, reported to a Spans object.

This base records nothing and is what runs unless the server traces (--otlp-endpoint): callers
check ``enabled`` once and skip the rest. transport/tracing.py records OpenTelemetry spans; the
runtime imports no tracing library. Times are perf_counter seconds.
"""

from __future__ import annotations


class Spans:
    """The null implementation: disabled, every method does nothing."""

    enabled = False

    def current(self) -> object | None:
        """The span of the call the current task serves, to hang its stages on; None: none."""
        return None

    def model_used(self, span: object, name: str, version: str) -> None:
        """The call runs model ``name`` at ``version`` (its span named the default model)."""

    def tokenized(self, span: object, start: float, end: float, texts: int, tokens: int) -> None:
        """The call's texts were tokenized into ``tokens`` tokens between ``start`` and ``end``."""

    def queued(self, span: object, start: float, end: float) -> None:
        """The call waited in the batcher's queue from ``start`` until its first run."""

    def ran(self, span: object, start: float, end: float, texts: int, padded_tokens: int) -> None:
        """An onnxruntime run with some of the call's texts: the run's ``texts`` (every call's)
        and ``padded_tokens`` (texts x longest)."""


NO_SPANS = Spans()
