"""OpenAI-compatible embeddings over HTTP, framework-neutral: an HTTP adapter (http_server.py)
asks ``on_headers`` whether to refuse a request before reading its body, then calls ``handle``.

Same serving state, gate, admission, limits, auth and metrics as the gRPC services; errors in
OpenAI's JSON shape with the HTTP status of each error's kind (convert.py, transport/status.py).
docs/protocols.md lists every field.
"""

from __future__ import annotations

import time

from zh_rnn_encoder.core.errors import ErrorKind, NotFound, NotReady
from zh_rnn_encoder.core.manifest import to_json
from zh_rnn_encoder.runtime.models import ServedModel
from zh_rnn_encoder.transport import logs
from zh_rnn_encoder.transport.gate import refusal, shed_by_size
from zh_rnn_encoder.transport.metrics import NO_METRICS, Metrics
from zh_rnn_encoder.transport.openai.convert import (
    MODEL_VERSION_HEADER,
    Embeddings,
    Reply,
    error,
    error_reply,
    json_reply,
    parse_request,
    response,
    response_size,
)
from zh_rnn_encoder.transport.security import UNAUTHENTICATED, bearer_ok
from zh_rnn_encoder.transport.serving_state import ServingState
from zh_rnn_encoder.transport.status import OK, STATUS

EMBEDDINGS = ("/v1/embeddings", "/embeddings")
MODELS = ("/v1/models", "/models")
HEALTH = "/health"
OWNER = "zh-rnn-encoder"
# The request metrics' label of each HTTP status: its kind's gRPC code name (status.py), shared
# with the gRPC services; a wrong method counts as an invalid argument.
_LABEL = {200: OK, 405: STATUS[ErrorKind.INVALID_ARGUMENT].grpc} | {
    s.http: s.grpc for s in STATUS.values()
}


class OpenAIApi:
    """Routes: POST /v1/embeddings (and /embeddings), GET /v1/models[/<name>], GET /health."""

    def __init__(
        self,
        state: ServingState,
        max_body_bytes: int,
        keys: list[bytes],
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.state, self.max_body_bytes = state, max_body_bytes
        self.keys, self.metrics = keys, metrics

    def _record(self, method: str, reply: Reply, started: float | None = None) -> Reply:
        status = _LABEL.get(reply.status, "UNKNOWN")
        self.metrics.record(method, status, started)
        logs.done(method, status, started)
        return reply

    def on_headers(
        self, method: str, path: str, authorization: str | None, length: int | None
    ) -> Reply | None:
        """The reply that refuses this request before its body is read, or None to read it."""
        if path == HEALTH or (method == "GET" and path.startswith(MODELS)):
            return self._auth(path, authorization)
        if path not in EMBEDDINGS:
            return error(404, f"no route {method} {path}; this server has POST {EMBEDDINGS[0]}")
        if method != "POST":
            return error(405, f"{path} takes POST, not {method}")
        if (denied := self._auth(path, authorization)) is not None:
            return self._record("Embeddings", denied)
        if (refused := refusal(self.state, closes=True, sheds=True)) is not None:
            return self._record("Embeddings", error_reply(refused))
        if length is not None and length > self.max_body_bytes:
            return self.too_large(length)
        if length is not None and (shed := shed_by_size(self.state, length)) is not None:
            return self._record("Embeddings", error_reply(shed))
        return None

    def too_large(self, length: int) -> Reply:
        """413 for a body over max_message_bytes: by its Content-Length, or as it is read."""
        return self._record(
            "Embeddings",
            error(
                STATUS[ErrorKind.LIMIT_EXCEEDED].http,
                f"max_message_bytes exceeded: request body of {length} bytes > "
                f"{self.max_body_bytes}",
                code="max_message_bytes",
            ),
        )

    def _auth(self, path: str, authorization: str | None) -> Reply | None:
        if not self.keys or path == HEALTH or bearer_ok(self.keys, authorization):
            return None
        status = STATUS[ErrorKind.UNAUTHENTICATED].http
        return error(status, UNAUTHENTICATED, code="invalid_api_key")

    async def handle(self, method: str, path: str, body: bytes) -> Reply:
        if path == HEALTH:
            ready = self.state.is_serving
            return json_reply(200 if ready else 503, {"status": "ok" if ready else "unavailable"})
        if path.startswith(MODELS):
            return self._models(path)
        t0 = time.perf_counter()
        logs.begin("Embeddings")  # on every record logged while it runs
        try:
            reply = await self._embeddings(body)
        except Exception as e:  # mapped by the one status table; unknown ones logged there
            reply = error_reply(e)
        return self._record("Embeddings", reply, t0)

    def _model_object(self, name: str) -> dict[str, object]:
        """OpenAI's model object, and ours beside it once the model is loaded: its version, the
        request defaults, the model card (null for an untrained model) and how its graph was
        quantized (null for the float graph)."""
        obj: dict[str, object] = {"id": name, "object": "model", "created": 0, "owned_by": OWNER}
        try:
            model = self.state.models.get(name)
        except NotReady:
            return obj
        info = model.encoder.info
        return obj | {
            "version": model.version,
            "default_pooling": info.defaults.pooling.value,
            "default_normalize": info.defaults.normalize,
            "model_card": to_json(info.card),
            "quantization": to_json(info.quantization),
        }

    def _models(self, path: str) -> Reply:
        name = path.split("/models", 1)[1].lstrip("/")
        if not name:  # every model, the default first
            data = [self._model_object(n) for n in self.state.models.names]
            return json_reply(200, {"object": "list", "data": data})
        try:
            self.state.models.get(name)
        except NotFound as e:
            return error_reply(e)
        except NotReady:
            pass  # listed by its name until it is loaded
        return json_reply(200, self._model_object(name))

    async def _embeddings(self, body: bytes) -> Reply:
        """Its response's size is checked before the graph runs (an upper bound) and once it is
        written (exact): over max_message_bytes, 413 naming it, as gRPC's INVALID_ARGUMENT.
        Every reply once the model is known names its version (MODEL_VERSION_HEADER)."""
        request = parse_request(body)
        with self.state.hold(request.model) as model:
            try:
                reply = await self._encode(model, request)
            except Exception as e:  # mapped by the one status table; unknown ones logged there
                reply = error_reply(e)
            reply.headers[MODEL_VERSION_HEADER] = model.version
            return reply

    async def _encode(self, model: ServedModel, request: Embeddings) -> Reply:
        encoder = model.encoder
        request.check_dimensions(encoder.output_dim)
        with await encoder.admit(request.texts, request.options) as admitted:  # or shed
            size = response_size(model.name, request.fmt)
            result = await encoder.encode_admitted(admitted, size)
            self.metrics.observe(result)
            reply = json_reply(200, response(result, model.name, request.fmt))
            encoder.limits.check_response(len(reply.body))
            return reply
