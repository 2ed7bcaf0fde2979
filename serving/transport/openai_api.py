"""OpenAI-compatible embeddings over HTTP, framework-neutral: an HTTP adapter (http_server.py)
asks ``admit`` on a request's headers, reads the body only if admitted, then calls ``handle``.

Same serving state, admission, limits, auth and metrics as the gRPC services; errors in OpenAI's
JSON shape with the HTTP status each domain error maps to. docs/protocols.md lists every field.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import numpy as np
import orjson

from zh_rnn_encoder.core.errors import InvalidInput, LimitExceeded, NotFound
from zh_rnn_encoder.core.manifest import to_json
from zh_rnn_encoder.runtime.encoder import EncodeOptions, EncodeResult
from zh_rnn_encoder.transport.gate import refusal
from zh_rnn_encoder.transport.security import bearer_ok
from zh_rnn_encoder.transport.state import Served, ServingState
from zh_rnn_encoder.transport.status import status_of

if TYPE_CHECKING:
    from zh_rnn_encoder.transport.metrics import Metrics

EMBEDDINGS = ("/v1/embeddings", "/embeddings")
MODELS = ("/v1/models", "/models")
HEALTH = "/health"
OWNER = "zh-rnn-encoder"
# Our encoding options, accepted beside OpenAI's fields (openai's extra_body sends them).
OPTIONS = ("pooling", "normalize", "truncation", "max_tokens")
ACCEPTED = ("input", "model", "encoding_format", "dimensions", "user", *OPTIONS)
RETRY_AFTER_S = "1"
_FIELD = re.compile(r"([a-z_]+)(?:\[\d+\])?: ")
_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}
# For the request counters, which gRPC and HTTP share: each HTTP status as its gRPC code's name.
_CODE_NAME = {200: "OK", 405: "INVALID_ARGUMENT", 413: "INVALID_ARGUMENT"} | {
    v: k.name for k, v in _HTTP.items()
}
_TYPE = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, obj: object, **headers: str) -> Reply:
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
    return _json(status, body, **retry)


def _from_exception(e: Exception) -> Reply:
    if isinstance(e, LimitExceeded):  # a size limit: too many texts, characters or tokens
        return error(413, str(e), param="input", code=e.limit)
    if isinstance(e, NotFound):
        return error(404, str(e), param="model", code="model_not_found")
    code, message = status_of(e)
    return error(_HTTP.get(code, 500), message, param=_param_of(message))


def _param_of(message: str) -> str | None:
    """The request field an InvalidInput message starts with ("dimensions: ...", "texts[1]: ...")
    in OpenAI's terms, for the error's ``param``."""
    m = _FIELD.match(message)
    if m is None:
        return None
    name = {"texts": "input"}.get(m.group(1), m.group(1))
    return name if name in ACCEPTED else None


class OpenAIApi:
    """Routes: POST /v1/embeddings (and /embeddings), GET /v1/models[/<name>], GET /health."""

    def __init__(
        self,
        state: ServingState,
        served: Served,
        max_body_bytes: int,
        keys: list[bytes],
        door: Callable[[int], Exception | None],
        metrics: Metrics | None = None,
    ) -> None:
        self.state, self.served, self.max_body_bytes = state, served, max_body_bytes
        self.keys, self.door, self.metrics = keys, door, metrics

    def _record(self, method: str, status: int, t0: float) -> None:
        if self.metrics:
            name = _CODE_NAME.get(status, "UNKNOWN")
            self.metrics.request(method, name, time.perf_counter() - t0)

    def admit(self, method: str, path: str, authorization: str | None, length: int | None):
        """The reply that refuses this request before its body is read, or None to read it."""
        if path == HEALTH or (method == "GET" and path.startswith(MODELS)):
            return self._auth(path, authorization)
        if path not in EMBEDDINGS:
            return error(404, f"no route {method} {path}; this server has POST {EMBEDDINGS[0]}")
        if method != "POST":
            return error(405, f"{path} takes POST, not {method}")
        if (denied := self._auth(path, authorization)) is not None:
            return self._counted("Embeddings", denied)
        if (refused := refusal(self.state, closes=True, sheds=True)) is not None:
            return self._counted("Embeddings", error(_HTTP[refused[0]], refused[1]))
        if length is not None and length > self.max_body_bytes:
            return self.too_large(length)
        if length is not None and (shed := self.door(length)) is not None:
            return self._counted("Embeddings", _from_exception(shed))
        return None

    def too_large(self, length: int) -> Reply:
        """413 for a body over max_message_bytes: by its Content-Length, or as it is read."""
        return self._counted(
            "Embeddings",
            error(
                413,
                f"max_message_bytes exceeded: request body of {length} bytes > "
                f"{self.max_body_bytes}",
                code="max_message_bytes",
            ),
        )

    def _counted(self, method: str, reply: Reply) -> Reply:
        self._record(method, reply.status, time.perf_counter())
        return reply

    def _auth(self, path: str, authorization: str | None) -> Reply | None:
        if not self.keys or path == HEALTH or bearer_ok(self.keys, authorization):
            return None
        return error(401, "unauthenticated", code="invalid_api_key")

    async def handle(self, method: str, path: str, body: bytes) -> Reply:
        if path == HEALTH:
            ready = self.state.serving
            return _json(200 if ready else 503, {"status": "ok" if ready else "unavailable"})
        if path.startswith(MODELS):
            return self._models(path)
        t0 = time.perf_counter()
        try:
            reply = await self._embeddings(body)
        except Exception as e:  # mapped like gRPC's status map; unknown ones logged there
            reply = _from_exception(e)
        self._record("Embeddings", reply.status, t0)
        return reply

    def _model_object(self) -> dict:
        """OpenAI's model object, and ours beside it once the bundle is loaded: the request
        defaults and the model card (null for an untrained model)."""
        obj = {"id": self.served.name, "object": "model", "created": 0, "owned_by": OWNER}
        if self.state.encoder is None:
            return obj
        info = self.state.encoder.info
        return obj | {
            "default_pooling": info.defaults.pooling.value,
            "default_normalize": info.defaults.normalize,
            "model_card": to_json(info.card),
        }

    def _models(self, path: str) -> Reply:
        name = path.split("/models", 1)[1].lstrip("/")
        if not name:
            return _json(200, {"object": "list", "data": [self._model_object()]})
        if name != self.served.name:
            return error(404, f"unknown model {name!r}", param="model", code="model_not_found")
        return _json(200, self._model_object())

    async def _embeddings(self, body: bytes) -> Reply:
        encoder = self.state.ready()
        texts, options, fmt = parse_request(body, self.served, encoder.output_dim)
        async with encoder.encoded(texts, options) as result:
            if self.metrics:
                self.metrics.observe(result)
            return _json(200, response(result, self.served.name, fmt))


def parse_request(body: bytes, served: Served, dim: int) -> tuple[list[str], EncodeOptions, str]:
    try:
        r = orjson.loads(body)
    except orjson.JSONDecodeError as e:  # invalid UTF-8 and lone surrogates too
        raise InvalidInput(f"request body is not JSON: {e}") from None
    if not isinstance(r, dict):
        raise InvalidInput("request body: expected a JSON object")
    if unknown := sorted(set(r) - set(ACCEPTED)):
        raise InvalidInput(f"unrecognized request argument(s): {unknown}; accepted: {ACCEPTED}")
    if "model" not in r:
        raise InvalidInput("model: required")
    served.check(r["model"], "")
    texts = r.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput(
            "input: expected a string or a list of strings (token arrays are not accepted: "
            "this model tokenizes with jieba)"
        )
    fmt = r.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidInput(f"encoding_format: expected 'float' or 'base64', got {fmt!r}")
    if "dimensions" in r and r["dimensions"] != dim:
        raise InvalidInput(f"dimensions: this model's vectors have {dim}, got {r['dimensions']!r}")
    if r.get("normalize") is not None and not isinstance(r["normalize"], bool):
        raise InvalidInput(f"normalize: expected true or false, got {r['normalize']!r}")
    kw = {k: r[k] for k in OPTIONS if k in r}  # pooling, normalize absent or null: the model's
    return texts, EncodeOptions(**kw), fmt


def response(res: EncodeResult, model: str, fmt: str) -> dict:
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
