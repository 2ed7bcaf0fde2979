"""encoder.v1.Encoder over gRPC: request -> convert -> the serving state's Encoder -> response."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from zh_rnn_encoder.core.errors import DeadlineExceeded, InvalidInput
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.runtime.admission import Admission, Budget
from zh_rnn_encoder.transport.encoder_v1 import convert
from zh_rnn_encoder.transport.gate import shed_by_size
from zh_rnn_encoder.transport.metrics import NO_METRICS, Metrics
from zh_rnn_encoder.transport.rpc import (
    Context,
    Unparsed,
    check_parsed,
    lenient,
    sent_as_is,
    serialize_checked,
    status_of,
    unary,
)
from zh_rnn_encoder.transport.serving_state import ServingState

log = logging.getLogger("encoder")
SERVICE = pb.DESCRIPTOR.services_by_name["Encoder"].full_name
MAX_STREAM_IN_FLIGHT = 64


class EncoderServicer:
    """Thin: every decision lives in the runtime's Encoder or the convert module."""

    def __init__(
        self,
        state: ServingState,
        metrics: Metrics = NO_METRICS,
        max_document_tokens: int = 0,
        document_deadline_s: float = 0.0,
    ) -> None:
        self.state, self.metrics = state, metrics
        self.max_document_tokens, self.document_deadline_s = (
            max_document_tokens,
            document_deadline_s,
        )

    @unary
    async def Encode(self, r: pb.EncodeRequest, context: Context) -> bytes:
        """The response serialized here (rpc.serialize_checked): its exact size is checked."""
        arrived = time.perf_counter()
        with self.state.hold(r.model) as model:
            encoder = model.encoder
            options, states = convert.options_of(r), convert.states_of(r)
            size = convert.response_size(r.request_id, model.version)
            admit = encoder.admit(r.texts, options, initial_states=states)
            with await admit as admitted:  # or shed
                result = await encoder.encode_admitted(admitted, size)
                self.metrics.observe(result)
                response = convert.encode_response(result, r.request_id, model.version, arrived)
                return serialize_checked(response, encoder.limits.max_message_bytes)

    async def _stream_item(
        self, request: pb.EncodeRequest | Unparsed, stream: Budget
    ) -> tuple[bytes, Admission]:
        """One request of a stream: waits for its share of the stream's and the server's budget
        (so an unread stream stops being read); returns the response's wire bytes and the
        Admission, held until the response is written."""
        arrived = time.perf_counter()
        r = check_parsed(request)
        with self.state.hold(r.model) as model:  # each request of a stream names its own
            encoder = model.encoder
            options, states = convert.options_of(r), convert.states_of(r)
            admitted = await encoder.admit(
                r.texts, options, wait=True, initial_states=states, stream=stream
            )
            try:
                size = convert.response_size(r.request_id, model.version)
                result = await encoder.encode_admitted(admitted, size)
                self.metrics.observe(result)
                response = convert.encode_response(result, r.request_id, model.version, arrived)
                return serialize_checked(response, encoder.limits.max_message_bytes), admitted
            except BaseException:
                admitted.release()
                raise

    async def EncodeStream(
        self, requests: AsyncIterator[pb.EncodeRequest | Unparsed], context: Context
    ) -> None:
        """Requests run concurrently (at most MAX_STREAM_IN_FLIGHT, and a quarter of the in-flight
        budget); responses keep their order. A request's budget comes back once its response is
        written, so a client that does not read stops the stream from reading more."""
        try:
            self.state.models.get()
        except Exception as e:  # not ready: the stream ends before it starts
            code, message = status_of(e)
            self.metrics.record("EncodeStream", code.name)
            await context.abort(code, message)
        stream = self.state.models.stream_share()  # shared by its requests, whatever models
        window: asyncio.Queue[asyncio.Future[tuple[bytes, Admission]] | None] = asyncio.Queue()
        in_flight = asyncio.Semaphore(MAX_STREAM_IN_FLIGHT)

        async def read() -> bool:
            """Schedules every request read; True if draining stopped it before the client
            finished sending."""
            it = requests.__aiter__()
            closed = asyncio.ensure_future(self.state.closed_event.wait())
            nxt: asyncio.Future[pb.EncodeRequest | Unparsed] | None = None
            try:
                while True:
                    nxt = asyncio.ensure_future(it.__anext__())
                    await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
                    if not nxt.done():  # draining: the finally cancels the read
                        return True
                    try:
                        r = nxt.result()
                    except StopAsyncIteration:
                        return False
                    await in_flight.acquire()
                    window.put_nowait(asyncio.ensure_future(self._stream_item(r, stream)))
            finally:
                closed.cancel()
                if nxt is not None:  # a read pending when the call ends (cancelled) ends too
                    _settle(nxt)
                window.put_nowait(None)  # the consumer never waits on a reader that is gone

        reader = asyncio.ensure_future(read())
        n = 0
        try:
            while (task := await window.get()) is not None:
                t0 = time.perf_counter()
                try:
                    response, admitted = await task
                except Exception as e:  # the stream ends with this request's status
                    code, message = status_of(e)
                    self.metrics.record("EncodeStream", code.name, t0)
                    await context.abort(code, f"request #{n}: {message}")
                self.metrics.record("EncodeStream", grpc.StatusCode.OK.name, t0)
                try:
                    await context.write(response)  # returns once written: the client is reading
                except Exception as e:  # only the transport fails a write: the call is over
                    log.debug("EncodeStream: call ended after %d responses (%r)", n, e)
                    return
                finally:
                    admitted.release()
                    in_flight.release()
                n += 1
            if await reader:  # re-raises a failure of the request stream itself
                self.metrics.record("EncodeStream", grpc.StatusCode.UNAVAILABLE.name)
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"server is shutting down: {n} requests answered, send the rest to another "
                    "replica",
                )
        finally:
            _settle(reader)
            while not window.empty():
                if (t := window.get_nowait()) is not None:
                    _cancel_or_release(t)

    @unary
    async def EncodeDocument(
        self, pieces: AsyncIterator[pb.DocumentPiece | Unparsed], context: Context
    ) -> bytes:
        """Pieces in, one DocumentEncoding out; the first piece carries the options. Errors map
        as for Encode; past document_deadline_s, DEADLINE_EXCEEDED."""
        self.state.models.get()  # UNAVAILABLE while loading, before a piece is read
        it = pieces.__aiter__()
        try:
            first = check_parsed(await it.__anext__())
        except StopAsyncIteration:
            raise InvalidInput("document: no pieces; send at least one") from None

        async def texts() -> AsyncIterator[str]:
            yield first.text
            async for piece in it:
                yield check_parsed(piece).text

        with self.state.hold(first.model) as model:
            encoder = model.encoder
            options = convert.document_options_of(first)
            initial = convert.state_of(first.initial_state, "initial_state")
            run = encoder.aencode_document(texts(), options, initial, self.max_document_tokens)
            try:
                doc = await asyncio.wait_for(run, self.document_deadline_s or None)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"document_deadline_s={self.document_deadline_s:g} exceeded"
                ) from None
            self.metrics.encoded(1, doc.tokens)
            response = convert.document_response(doc, first.request_id, model.version)
            return serialize_checked(response, encoder.limits.max_message_bytes)

    @unary
    async def Tokenize(self, r: pb.TokenizeRequest, context: Context) -> bytes:
        with self.state.hold(r.model) as model:
            async with model.encoder.tokenized(list(r.texts)) as out:
                response = convert.tokenize_response(out, model.version)
                return serialize_checked(response, model.encoder.limits.max_message_bytes)

    @unary
    async def GetModelInfo(self, r: pb.GetModelInfoRequest, context: Context) -> pb.ModelInfo:
        return convert.model_info(self.state.model(r.model))

    @unary
    async def ListModels(self, r: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        return convert.list_models(self.state.models)


def _settle(task: asyncio.Future[Any]) -> None:
    """A task no one will await: cancelled if pending; if done, its exception marked retrieved,
    so that asyncio logs no "Task exception was never retrieved" ERROR for a call that ended
    (a read that ends with StopAsyncIteration once the client cancels, for one)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()  # marks it retrieved


def _cancel_or_release(task: asyncio.Future[tuple[bytes, Admission]]) -> None:
    """A request the consumer will never send: cancel it, or release what a finished one holds."""
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        task.result()[1].release()


def add_to_server(servicer: EncoderServicer, server: grpc.aio.Server) -> None:
    """Like the generated add_EncoderServicer_to_server, with lenient request parsing; Encode
    and Tokenize also shed by size before parsing. Every method but GetModelInfo and ListModels
    answers wire bytes (rpc.serialize_checked), sent as they are."""
    ser = lambda m: m.SerializeToString()  # noqa: E731
    shed = functools.partial(shed_by_size, servicer.state)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Encode": grpc.unary_unary_rpc_method_handler(
            servicer.Encode, lenient(pb.EncodeRequest, shed), sent_as_is
        ),
        "EncodeStream": grpc.stream_stream_rpc_method_handler(
            servicer.EncodeStream, lenient(pb.EncodeRequest), sent_as_is
        ),
        "Tokenize": grpc.unary_unary_rpc_method_handler(
            servicer.Tokenize, lenient(pb.TokenizeRequest, shed), sent_as_is
        ),
        "GetModelInfo": grpc.unary_unary_rpc_method_handler(
            servicer.GetModelInfo, lenient(pb.GetModelInfoRequest), ser
        ),
        "EncodeDocument": grpc.stream_unary_rpc_method_handler(
            servicer.EncodeDocument, lenient(pb.DocumentPiece), sent_as_is
        ),
        "ListModels": grpc.unary_unary_rpc_method_handler(
            servicer.ListModels, lenient(pb.ListModelsRequest), ser
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
