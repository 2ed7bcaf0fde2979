"""encoder.v1.Encoder over gRPC: request -> wire -> the serving state's Encoder -> response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.runtime.encoder import EncodeResult
from zh_rnn_encoder.transport import wire
from zh_rnn_encoder.transport.state import ServingState
from zh_rnn_encoder.transport.status import check_parsed, lenient, status_of, unary

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are asked for
    from zh_rnn_encoder.transport.metrics import Metrics

SERVICE = pb.DESCRIPTOR.services_by_name["Encoder"].full_name
MAX_STREAM_IN_FLIGHT = 64


class EncoderServicer:
    """Thin: every decision lives in the runtime's Encoder or the wire module."""

    def __init__(self, state: ServingState, metrics: Metrics | None = None) -> None:
        self.state, self.metrics = state, metrics

    def record(self, method: str, code: grpc.StatusCode, t0: float) -> None:
        if self.metrics:
            self.metrics.request(method, code.name, time.perf_counter() - t0)

    def _observe(self, res: EncodeResult) -> None:
        if self.metrics:
            tokens = sum(len(e.ids) for e in res.encodings)
            self.metrics.encoded(
                len(res.encodings), tokens, res.tokenize_s, res.queue_s, res.inference_s
            )

    async def _encode(self, r: pb.EncodeRequest) -> pb.EncodeResponse:
        arrived = time.perf_counter()
        check_parsed(r)
        encoder = self.state.ready()
        result = await encoder.aencode(list(r.texts), wire.options_of(r))
        self._observe(result)
        return wire.encode_response(result, r.request_id, arrived)

    @unary
    async def Encode(self, r: pb.EncodeRequest, context: grpc.aio.ServicerContext):
        return await self._encode(r)

    async def EncodeStream(
        self,
        requests: AsyncIterator,
        context: grpc.aio.ServicerContext,
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
                except Exception as e:  # the stream ends with this request's status
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
    async def Tokenize(self, r: pb.TokenizeRequest, context: grpc.aio.ServicerContext):
        return wire.tokenize_response(await self.state.ready().atokenize(list(r.texts)))

    @unary
    async def GetModelInfo(self, r: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext):
        return wire.model_info(self.state.ready().info)


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
