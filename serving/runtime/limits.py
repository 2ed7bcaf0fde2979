"""Limits and the checks that apply them, so every face of the Encoder refuses the same input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded


@dataclass(frozen=True)
class Limits:
    """Per text: characters and tokens. Per request (the serving face): texts, response bytes and
    texts queued for the model across all requests."""

    max_texts_per_request: int = 256
    max_chars_per_text: int = 20_000
    max_tokens_per_text: int = 512
    # gRPC's own default. A request that size is received whole before anything can refuse it,
    # so this, times the calls receiving at once, is the memory that uploads can take.
    max_message_bytes: int = 4 << 20
    max_queued_texts: int = 4096

    def check_request(self, texts: Sequence[str]) -> None:
        if not texts:
            raise InvalidInput("texts: the request has no texts; send at least one")
        if len(texts) > self.max_texts_per_request:
            raise LimitExceeded("max_texts_per_request", len(texts), self.max_texts_per_request)

    def check_texts(self, texts: Sequence[str], allow_empty: bool = False) -> None:
        for i, t in enumerate(texts):
            if len(t) > self.max_chars_per_text:
                raise LimitExceeded(
                    "max_chars_per_text", len(t), self.max_chars_per_text, f"texts[{i}]"
                )
            if not allow_empty and not t.strip():
                raise InvalidInput(f"texts[{i}]: empty or whitespace only; nothing to encode")

    def token_limit(self, max_tokens: int) -> int:
        """The token limit a request asks for (0: this limit); refused above this limit."""
        if max_tokens > self.max_tokens_per_text:
            raise LimitExceeded(
                "max_tokens_per_text", max_tokens, self.max_tokens_per_text, "max_tokens"
            )
        return max_tokens or self.max_tokens_per_text

    def check_response(self, size: int, advice: str = "") -> None:
        """A response of ``size`` bytes (as admission.py sizes it) must fit max_message_bytes."""
        if size > self.max_message_bytes:
            where = f"response ({advice})" if advice else "response"
            raise LimitExceeded("max_message_bytes", size, self.max_message_bytes, where)
