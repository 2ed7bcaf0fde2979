"""encoder.v1.Encoder over gRPC: request -> wire -> the serving state's Encoder -> response."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from zh_rnn_encoder.core.errors import DeadlineExceeded, InvalidInput, Overloaded
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.runtime.admission import MB, Budget, at_least
from zh_rnn_encoder.runtime.encoder import EncodeResult
from zh_rnn_encoder.transport import wire
from zh_rnn_encoder.transport.state import ServingState
from zh_rnn_encoder.transport.status import check_parsed, lenient, status_of, unary

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are asked for
    from zh_rnn_encoder.transport.metrics import Metrics

log = logging.getLogger("encoder")
SERVICE = pb.DESCRIPTOR.services_by_name["Encoder"].full_name
MAX_STREAM_IN_FLIGHT = 64


class EncoderServicer:
    """Thin: every decision lives in the runtime's Encoder or the wire module."""

    def __init__(
        self,
        state: ServingState,
        metrics: Metrics | None = None,
        max_document_tokens: int = 0,
        document_deadline_s: float = 0.0,
    ) -> None:
        self.state, self.metrics = state, metrics
        self.max_document_tokens, self.document_deadline_s = (
            max_document_tokens,
            document_deadline_s,
        )

    def door(self, request_bytes: int) -> Exception | None:
        """Sheds a unary request by its size before it is parsed, when even its smallest
        possible need does not fit the in-flight budget."""
        encoder = self.state.encoder
        if encoder is None or not encoder.budget.full_for(at_least(request_bytes)):
            return None
        b = encoder.budget
        return Overloaded(
            f"max_inflight_mb={b.limit // MB} in use ({b.used / MB:.0f} MB admitted); "
            "retry with backoff"
        )

    def record(self, method: str, code: grpc.StatusCode, t0: float) -> None:
        if self.metrics:
            self.metrics.request(method, code.name, time.perf_counter() - t0)

    def _observe(self, res: EncodeResult) -> None:
        if self.metrics:
            self.metrics.observe(res)

    @unary
    async def Encode(self, r: pb.EncodeRequest, context: grpc.aio.ServicerContext):
        arrived = time.perf_counter()
        encoder = self.state.ready()
        options, states = wire.options_of(r), wire.states_of(r)
        async with encoder.encoded(list(r.texts), options, initial_states=states) as result:
            self._observe(result)
            return wire.encode_response(result, r.request_id, arrived)

    async def _stream_item(self, r: pb.EncodeRequest, stream_budget: Budget) -> tuple:
        """One request of a stream: waits for its share of the stream's and the server's budget
        (so an unread stream stops being read), returns (response, bytes held)."""
        arrived = time.perf_counter()
        check_parsed(r)
        encoder = self.state.ready()
        options, texts, states = wire.options_of(r), list(r.texts), wire.states_of(r)
        need = encoder.admission(texts, options)
        await stream_budget.take(min(need, stream_budget.limit))
        try:
            await encoder.budget.take(need)
        except BaseException:
            stream_budget.give(min(need, stream_budget.limit))
            raise
        try:
            result = await encoder.encode_admitted(texts, options, states)
            self._observe(result)
            return wire.encode_response(result, r.request_id, arrived), need
        except BaseException:
            self._give(need, stream_budget)
            raise

    def _give(self, need: int, stream_budget: Budget) -> None:
        stream_budget.give(min(need, stream_budget.limit))
        self.state.encoder.budget.give(need)

    async def EncodeStream(self, requests: AsyncIterator, context: grpc.aio.ServicerContext):
        """Requests run concurrently (at most MAX_STREAM_IN_FLIGHT, and a quarter of the in-flight
        budget); responses keep their order. A request's budget comes back once its response is
        written, so a client that does not read stops the stream from reading more."""
        try:
            stream_budget = Budget(self.state.ready().budget.limit // 4)
        except Exception as e:  # not ready: the stream ends before it starts
            code, message = status_of(e)
            self.record("EncodeStream", code, time.perf_counter())
            await context.abort(code, message)
        window: asyncio.Queue = asyncio.Queue()
        in_flight = asyncio.Semaphore(MAX_STREAM_IN_FLIGHT)

        async def read() -> bool:
            """Schedules every request read; True if draining stopped it before the client
            finished sending."""
            it = requests.__aiter__()
            closed = asyncio.ensure_future(self.state.closed_event.wait())
            try:
                while True:
                    nxt = asyncio.ensure_future(it.__anext__())
                    await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
                    if not nxt.done():
                        nxt.cancel()
                        return True
                    try:
                        r = nxt.result()
                    except StopAsyncIteration:
                        return False
                    await in_flight.acquire()
                    window.put_nowait(asyncio.ensure_future(self._stream_item(r, stream_budget)))
            finally:
                closed.cancel()
                window.put_nowait(None)  # the consumer never waits on a reader that is gone

        reader = asyncio.ensure_future(read())
        n = 0
        try:
            while (task := await window.get()) is not None:
                t0 = time.perf_counter()
                try:
                    response, need = await task
                except Exception as e:  # the stream ends with this request's status
                    code, message = status_of(e)
                    self.record("EncodeStream", code, t0)
                    await context.abort(code, f"request #{n}: {message}")
                self.record("EncodeStream", grpc.StatusCode.OK, t0)
                try:
                    await context.write(response)  # returns once written: the client is reading
                except Exception as e:  # only the transport fails a write: the call is over
                    log.debug("EncodeStream: call ended after %d responses (%r)", n, e)
                    return
                finally:
                    self._give(need, stream_budget)
                    in_flight.release()
                n += 1
            if await reader:  # re-raises a failure of the request stream itself
                self.record("EncodeStream", grpc.StatusCode.UNAVAILABLE, time.perf_counter())
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"server is shutting down: {n} requests answered, send the rest to another "
                    "replica",
                )
        finally:
            reader.cancel()
            while not window.empty():
                if (t := window.get_nowait()) is not None:
                    _cancel_or_give_back(t, self._give, stream_budget)

    @unary
    async def EncodeDocument(self, pieces: AsyncIterator, context: grpc.aio.ServicerContext):
        """Pieces in, one DocumentEncoding out; the first piece carries the options. Errors map
        as for Encode; past document_deadline_s, DEADLINE_EXCEEDED."""
        encoder = self.state.ready()
        it = pieces.__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            raise InvalidInput("document: no pieces; send at least one") from None
        check_parsed(first)

        async def texts():
            yield first.text
            async for piece in it:
                check_parsed(piece)
                yield piece.text

        options = wire.document_options_of(first)
        initial = wire.state_of(first.initial_state, "initial_state")
        run = encoder.aencode_document(texts(), options, initial, self.max_document_tokens)
        try:
            doc = await asyncio.wait_for(run, self.document_deadline_s or None)
        except TimeoutError:
            raise DeadlineExceeded(
                f"document_deadline_s={self.document_deadline_s:g} exceeded"
            ) from None
        if self.metrics:
            self.metrics.encoded(1, doc.tokens, 0.0, 0.0, 0.0)
        return wire.document_response(doc, first.request_id)

    @unary
    async def Tokenize(self, r: pb.TokenizeRequest, context: grpc.aio.ServicerContext):
        async with self.state.ready().tokenized(list(r.texts)) as out:
            return wire.tokenize_response(out)

    @unary
    async def GetModelInfo(self, r: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext):
        return wire.model_info(self.state.ready().info)


def _cancel_or_give_back(task: asyncio.Future, give: Callable, stream_budget: Budget) -> None:
    """A request the consumer will never send: cancel it, or return what a finished one holds."""
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        give(task.result()[1], stream_budget)


def add_to_server(servicer: EncoderServicer, server: grpc.aio.Server) -> None:
    """Like the generated add_EncoderServicer_to_server, with lenient request parsing."""
    ser = lambda m: m.SerializeToString()  # noqa: E731
    handlers = {
        "Encode": grpc.unary_unary_rpc_method_handler(
            servicer.Encode, lenient(pb.EncodeRequest, servicer.door), ser
        ),
        "EncodeStream": grpc.stream_stream_rpc_method_handler(
            servicer.EncodeStream, lenient(pb.EncodeRequest), ser
        ),
        "Tokenize": grpc.unary_unary_rpc_method_handler(
            servicer.Tokenize, lenient(pb.TokenizeRequest, servicer.door), ser
        ),
        "GetModelInfo": grpc.unary_unary_rpc_method_handler(
            servicer.GetModelInfo, lenient(pb.GetModelInfoRequest), ser
        ),
        "EncodeDocument": grpc.stream_unary_rpc_method_handler(
            servicer.EncodeDocument, lenient(pb.DocumentPiece), ser
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
