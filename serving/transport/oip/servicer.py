"""inference.GRPCInferenceService (Open Inference Protocol v2, KServe v2, Triton's gRPC API) on the
same serving state, admission, limits, error map and metrics as encoder.v1, on the same port."""

from __future__ import annotations

import functools

import grpc

from zh_rnn_encoder import __version__
from zh_rnn_encoder.core.errors import NotReady
from zh_rnn_encoder.proto.inference import open_inference_pb2 as pb
from zh_rnn_encoder.transport.gate import shed_by_size
from zh_rnn_encoder.transport.metrics import NO_METRICS, Metrics
from zh_rnn_encoder.transport.oip import convert
from zh_rnn_encoder.transport.rpc import Context, lenient, sent_as_is, serialize_checked, unary
from zh_rnn_encoder.transport.serving_state import ServingState

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVER_NAME = "zh-rnn-encoder"


class InferenceServicer:
    """Readiness is the serving state's: every model's self-test passed and no drain has begun.
    A request names its model by ``model_name`` ("": the default) and may name its version, the
    hex sha256 of its bundle.json, which must then be the one served (NOT_FOUND otherwise)."""

    def __init__(self, state: ServingState, metrics: Metrics = NO_METRICS) -> None:
        self.state, self.metrics = state, metrics

    @unary
    async def ServerLive(self, r: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @unary
    async def ServerReady(
        self, r: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.state.is_serving)

    @unary
    async def ModelReady(self, r: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        try:
            self.state.model(r.name, r.version)  # NOT_FOUND for a model or version not served
        except NotReady:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.state.is_serving)

    @unary
    async def ServerMetadata(
        self, r: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=[])

    @unary
    async def ModelMetadata(
        self, r: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        return convert.model_metadata(self.state.model(r.name, r.version))

    @unary
    async def ModelInfer(self, r: pb.ModelInferRequest, context: Context) -> bytes:
        """The response serialized here (rpc.serialize_checked), so that its exact size is checked;
        its padded outputs' size is checked before the graph runs (convert.response_size)."""
        with self.state.hold(r.model_name, r.model_version) as model:
            encoder = model.encoder
            outputs = convert.requested_outputs(r)
            options = convert.options_of(r, outputs)
            size = convert.response_size(outputs, model.name, model.version, r.id)
            with await encoder.admit(convert.texts_of(r), options) as admitted:  # or shed
                result = await encoder.encode_admitted(admitted, size)
                self.metrics.observe(result)
                pad_id = encoder.bundle.vocab.pad_id
                response = convert.infer_response(
                    result, outputs, model.name, model.version, r.id, pad_id
                )
                return serialize_checked(response, encoder.limits.max_message_bytes)


def add_to_server(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    """Every method with lenient parsing; ModelInfer also sheds by size before parsing, and
    answers wire bytes (rpc.serialize_checked), sent as they are."""
    ser = lambda m: m.SerializeToString()  # noqa: E731
    shed = functools.partial(shed_by_size, servicer.state)
    requests = {
        "ServerLive": pb.ServerLiveRequest,
        "ServerReady": pb.ServerReadyRequest,
        "ModelReady": pb.ModelReadyRequest,
        "ServerMetadata": pb.ServerMetadataRequest,
        "ModelMetadata": pb.ModelMetadataRequest,
        "ModelInfer": pb.ModelInferRequest,
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            lenient(cls, shed if name == "ModelInfer" else None),
            sent_as_is if name == "ModelInfer" else ser,
        )
        for name, cls in requests.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
