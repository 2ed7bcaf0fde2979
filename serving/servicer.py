"""The gRPC boundary: request -> domain objects -> pipeline -> response, and the one error map."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from serving import errors
from serving._proto.encoder.v1 import encoder_pb2 as pb
from serving.pipeline import EncodeResult, Pipeline
from serving.wire import Malformed, lenient, options_of, response_of

if TYPE_CHECKING:
    from serving.metrics import Metrics

log = logging.getLogger("encoder")
SERVICE = "encoder.v1.Encoder"
VERSION = "0.1.0"

# The one place where errors become status codes.
_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.NotReady, grpc.StatusCode.UNAVAILABLE),
]
MAX_STREAM_IN_FLIGHT = 64


def status_of(e: Exception) -> tuple[grpc.StatusCode, str]:
    for cls, code in _STATUS:
        if isinstance(e, cls):
            return code, str(e)
    log.exception("unexpected error while handling a request")
    return grpc.StatusCode.INTERNAL, "internal error; the server log has the details"


def _check(request: object) -> None:
    if isinstance(request, Malformed):
        raise errors.InvalidInput(request.reason)


def unary(handler: Callable) -> Callable:
    """Maps every error to its status and counts the request by method and status."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapped(self: EncoderServicer, request: object, context: grpc.aio.ServicerContext):
        t0, code = time.perf_counter(), grpc.StatusCode.OK
        try:
            _check(request)
            return await handler(self, request, context)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as e:  # noqa: BLE001 - mapped to a status, unknown ones logged
            code, message = status_of(e)
        finally:
            self.record(method, code, t0)
        await context.abort(code, message)

    return wrapped


class EncoderServicer:
    """encoder.v1.Encoder on top of a Pipeline, which ``server`` installs once it is self-tested."""

    def __init__(self, limits_info: pb.Limits, metrics: Metrics | None = None) -> None:
        self.pipeline: Pipeline | None = None
        self.draining = False
        self._limits = limits_info
        self.metrics = metrics

    def record(self, method: str, code: grpc.StatusCode, t0: float) -> None:
        if self.metrics:
            self.metrics.request(method, code.name, time.perf_counter() - t0)

    def _observe(self, res: EncodeResult) -> None:
        if self.metrics:
            tokens = sum(len(e.ids) for e in res.encodings)
            self.metrics.encoded(
                len(res.encodings), tokens, res.tokenize_s, res.queue_s, res.inference_s
            )

    def ready(self) -> Pipeline:
        if self.draining:
            raise errors.NotReady("server is shutting down; retry on another replica")
        if self.pipeline is None:
            raise errors.NotReady("model is loading; retry shortly")
        return self.pipeline

    async def _encode(self, r: pb.EncodeRequest) -> pb.EncodeResponse:
        arrived = time.perf_counter()
        _check(r)
        p = self.ready()
        result = await p.encode(list(r.texts), options_of(r))
        self._observe(result)
        return response_of(result, r.request_id, arrived)

    @unary
    async def Encode(self, r: pb.EncodeRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        return await self._encode(r)

    async def EncodeStream(
        self,
        requests: AsyncIterator,
        context: grpc.aio.ServicerContext,  # noqa: N802
    ) -> AsyncIterator[pb.EncodeResponse]:
        """Requests run concurrently (at most MAX_STREAM_IN_FLIGHT); responses keep their order."""
        window: asyncio.Queue = asyncio.Queue()
        in_flight = asyncio.Semaphore(MAX_STREAM_IN_FLIGHT)

        async def read() -> None:
            try:
                async for r in requests:
                    await in_flight.acquire()
                    window.put_nowait(asyncio.ensure_future(self._encode(r)))
            finally:
                window.put_nowait(None)  # the consumer never waits on a reader that is gone

        reader = asyncio.ensure_future(read())
        n = 0
        try:
            while (task := await window.get()) is not None:
                t0 = time.perf_counter()
                try:
                    response = await task
                except Exception as e:  # noqa: BLE001
                    code, message = status_of(e)
                    self.record("EncodeStream", code, t0)
                    await context.abort(code, f"request #{n}: {message}")
                self.record("EncodeStream", grpc.StatusCode.OK, t0)
                in_flight.release()
                yield response
                n += 1
            await reader  # re-raises a failure of the request stream itself
        finally:
            reader.cancel()
            while not window.empty():
                if (t := window.get_nowait()) is not None:
                    t.cancel()

    @unary
    async def Tokenize(self, r: pb.TokenizeRequest, context: grpc.aio.ServicerContext):  # noqa: N802
        out = self.ready().tokenize(list(r.texts))
        return pb.TokenizeResponse(
            texts=[
                pb.TokenizedText(tokens=t.tokens, ids=t.ids.tolist(), unknown_count=t.unknown)
                for t in out
            ]
        )

    @unary
    async def GetModelInfo(self, r: pb.GetModelInfoRequest, context):  # noqa: N802
        p = self.ready()
        b, m, tok = p.bundle, p.bundle.model, p.bundle.tokenizer
        return pb.ModelInfo(
            cell=m.cell,
            embedding_dim=m.embedding_dim,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            bidirectional=m.directions == 2,
            output_dim=m.output_dim,
            vocab_size=len(b.vocab),
            pad_id=b.vocab.pad_id,
            unk_id=b.vocab.unk_id,
            tokenizer=pb.TokenizerInfo(
                name="jieba",
                version=b.manifest["tokenizer"]["jieba_version"],
                hmm=tok.hmm,
                whitespace=tok.whitespace,
                user_dictionary=bool(tok.user_dict),
                backend=p.tokenizer.backend,
            ),
            bundle_sha256=b.file_hashes,
            execution_provider=p.session.provider,
            intra_op_threads=p.session.threads,
            limits=self._limits,
            golden_max_abs_err=p.golden_err,
            server_version=VERSION,
        )


def add_to_server(servicer: EncoderServicer, server: grpc.aio.Server) -> None:
    """Like the generated add_EncoderServicer_to_server, with lenient request parsing."""
    ser = lambda m: m.SerializeToString()  # noqa: E731
    handlers = {
        "Encode": grpc.unary_unary_rpc_method_handler(
            servicer.Encode, lenient(pb.EncodeRequest), ser
        ),
        "EncodeStream": grpc.stream_stream_rpc_method_handler(
            servicer.EncodeStream, lenient(pb.EncodeRequest), ser
        ),
        "Tokenize": grpc.unary_unary_rpc_method_handler(
            servicer.Tokenize, lenient(pb.TokenizeRequest), ser
        ),
        "GetModelInfo": grpc.unary_unary_rpc_method_handler(
            servicer.GetModelInfo, lenient(pb.GetModelInfoRequest), ser
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
