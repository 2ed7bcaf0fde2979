"""Rows of a bulk job through the Encoder, where a refused row is named with its reason instead
of failing its batch: the one rule encoder-bulk (Ray, bulk/job.py) and ``encode_frame(...,
error_col=...)`` (Spark, bulk/spark.py) share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.runtime.encoder import Encoder, TextEncoding


def encode_rows(
    encoder: Encoder, texts: Sequence[object], options: dict[str, Any]
) -> tuple[list[TextEncoding | None], list[str | None]]:
    """Each row's encoding, or None and the reason it was refused (a value that is not a string,
    or what the Encoder says, with ``texts[0]`` read as ``text``). The strings go in one call,
    checked as the server checks a request; only if that call refuses a text, each alone, so
    that only the refused rows are errors."""
    out: list[TextEncoding | None] = [None] * len(texts)
    reasons: list[str | None] = [None] * len(texts)
    strings: dict[int, str] = {}  # row -> its text
    for k, t in enumerate(texts):
        if isinstance(t, str):
            strings[k] = t
        else:
            reasons[k] = f"text: not a string ({type(t).__name__})"
    try:
        batch = list(strings.values())
        for k, e in zip(strings, encoder.encode(batch, **options) if batch else []):
            out[k] = e
        return out, reasons
    except InvalidInput:
        pass
    for k, t in strings.items():
        try:
            out[k] = encoder.encode([t], **options)[0]
        except InvalidInput as e:
            reasons[k] = str(e).replace("texts[0]", "text")
    return out, reasons
