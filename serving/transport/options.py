"""The encoding options a request names, for the protocols that pass them by name: Open Inference
parameters and the OpenAI API's fields beside OpenAI's own. Each is the EncodeOptions field of
the same name; the type is the JSON (or parameter) type it takes. encoder.v1 has them as fields."""

from __future__ import annotations

OPTIONS: dict[str, type] = {"pooling": str, "normalize": bool, "truncation": str, "max_tokens": int}
