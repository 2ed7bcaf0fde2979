"""OpenAI's embeddings API as JSON <-> domain objects: the request, the response, and errors in
OpenAI's shape with the HTTP status of each error's kind (transport/status.py)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

import numpy as np
import orjson

from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded, NotFound
from zh_rnn_encoder.runtime.admission import ResponseShape, ResponseSize
from zh_rnn_encoder.runtime.types import EncodeOptions, EncodeResult
from zh_rnn_encoder.transport.options import OPTIONS
from zh_rnn_encoder.transport.status import STATUS, classify

# Our encoding options, accepted beside OpenAI's fields (openai's extra_body sends them).
ACCEPTED = ("input", "model", "encoding_format", "dimensions", "user", *OPTIONS)
# The JSON type of every field but input (a string or a list of strings): null means absent,
# except for model, which is required. Python's bool is an int: a JSON true is no integer here.
TYPES: dict[str, type] = {"model": str, "encoding_format": str, "dimensions": int, "user": str}
TYPES |= OPTIONS
_JSON_TYPE = {str: "a string", int: "an integer", bool: "true or false"}
SHOWN_CHARS = 40
# A float32 as orjson writes it, and its comma: at most 9 digits, a sign, "0.00000" before
# them ("-0.0000030996646": 16 characters, the longest of 1.7 million drawn at every exponent).
FLOAT_CHARS = 18
# An embedding object besides its vector; the response's other fields besides the model's name.
EMBEDDING_BYTES, RESPONSE_BYTES = 64, 128
RETRY_AFTER_S = "1"
# The header that names the version of the model that made a response's vectors (every reply of
# an embeddings call once its model is known): the hex sha256 of its bundle.json.
MODEL_VERSION_HEADER = "x-model-version"
_FIELD = re.compile(r"([a-z_]+)(?:\[\d+\])?: ")
_TYPE = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}


@dataclass(frozen=True)
class Embeddings:
    """A parsed /v1/embeddings request; its model is looked up, and ``dimensions`` checked
    against it, by the caller."""

    model: str
    texts: list[str]
    options: EncodeOptions
    fmt: str  # "float" or "base64"
    dimensions: int | None

    def check_dimensions(self, dim: int) -> None:
        if self.dimensions not in (None, dim):
            raise InvalidInput(
                f"dimensions: this model's vectors have {dim}, got {self.dimensions}"
            )


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, obj: object, **headers: str) -> Reply:
    """orjson writes float32 arrays in their shortest exact form, 25x faster than json.dumps of
    lists (0.15 vs 3.7 ms for 32 vectors of 256), and refuses lone surrogates when parsing."""
    body = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    return Reply(status, body, {"Content-Type": "application/json", **headers})


def error(status: int, message: str, param: str | None = None, code: str | None = None) -> Reply:
    """OpenAI's error object; 429 and 503 say when to retry."""
    retry = {"Retry-After": RETRY_AFTER_S} if status in (429, 503) else {}
    kind = _TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if status == 429:
        kind = "rate_limit_exceeded"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_reply(status, body, **retry)


def error_reply(e: BaseException) -> Reply:
    """Any exception as OpenAI's error, with its kind's HTTP status; unknown ones are logged."""
    kind, message = classify(e)
    status = STATUS[kind].http
    if isinstance(e, LimitExceeded):  # a size limit: too many texts, characters or tokens
        return error(status, message, param="input", code=e.limit)
    if isinstance(e, NotFound):
        return error(status, message, param="model", code="model_not_found")
    return error(status, message, param=_param_of(message))


def _param_of(message: str) -> str | None:
    """The request field an InvalidInput message starts with ("dimensions: ...", "texts[1]: ...")
    in OpenAI's terms, for the error's ``param``."""
    m = _FIELD.match(message)
    if m is None:
        return None
    name = {"texts": "input"}.get(m.group(1), m.group(1))
    return name if name in ACCEPTED else None


def parse_request(body: bytes) -> Embeddings:
    """The model, texts, options and encoding format of a request body; InvalidInput naming the
    field (OpenAI's ``param``) for anything else, a wrong JSON type included."""
    try:
        r = orjson.loads(body)
    except orjson.JSONDecodeError as e:  # invalid UTF-8 and lone surrogates too
        raise InvalidInput(f"request body is not JSON: {e}") from None
    if not isinstance(r, dict):
        raise InvalidInput("request body: expected a JSON object")
    if unknown := sorted(set(r) - set(ACCEPTED)):
        raise InvalidInput(f"unrecognized request argument(s): {unknown}; accepted: {ACCEPTED}")
    if r.get("model") is None:
        raise InvalidInput("model: required")
    for name, kind in TYPES.items():
        _check_type(name, r.get(name), kind)
    if not r["model"]:
        raise InvalidInput("model: required, one of GET /v1/models")
    texts = r.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput(
            "input: expected a string or a list of strings (token arrays are not accepted: "
            "this model tokenizes with jieba)"
        )
    fmt = r.get("encoding_format")
    fmt = "float" if fmt is None else fmt
    if fmt not in ("float", "base64"):
        raise InvalidInput(f"encoding_format: expected 'float' or 'base64', got {_shown(fmt)}")
    # pooling, normalize absent or null: the model's; truncation, max_tokens: the defaults
    kw = {k: r[k] for k in OPTIONS if r.get(k) is not None}
    return Embeddings(r["model"], texts, EncodeOptions(**kw), fmt, r.get("dimensions"))


def _check_type(name: str, value: object, kind: type) -> None:
    """InvalidInput naming the field unless ``value`` is null or of JSON type ``kind`` (a
    JSON true is no integer here, though Python's bool is an int)."""
    if value is None or (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        return
    raise InvalidInput(f"{name}: expected {_JSON_TYPE[kind]}, got {_shown(value)}")


def _shown(value: object) -> str:
    """A JSON value for an error message, cut short: a message never echoes a whole body."""
    text = orjson.dumps(value).decode()
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def response_size(model: str, fmt: str) -> ResponseSize:
    """The upper bound of a response's JSON bytes: with ``fmt``, each vector's values as decimal
    text or as base64."""
    fixed = RESPONSE_BYTES + len(orjson.dumps(model))

    def size(shape: ResponseShape) -> int:
        per_vector = 4 * -(-4 * shape.dim // 3) if fmt == "base64" else shape.dim * FLOAT_CHARS
        return fixed + len(shape.tokens) * (EMBEDDING_BYTES + per_vector)

    return size


def response(res: EncodeResult, model: str, fmt: str) -> dict[str, object]:
    def vector(v: np.ndarray) -> np.ndarray | str:
        if fmt == "base64":  # little-endian float32, as OpenAI's clients decode it
            return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
        return v

    tokens = sum(len(e.ids) for e in res.encodings)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector(e.vector)}
            for i, e in enumerate(res.encodings)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
