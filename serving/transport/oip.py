"""inference.GRPCInferenceService (Open Inference Protocol v2, KServe v2, Triton's gRPC API) on the
same serving state, admission, limits, error map and metrics as encoder.v1, on the same port."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from zh_rnn_encoder import __version__
from zh_rnn_encoder.proto.inference import open_inference_pb2 as pb
from zh_rnn_encoder.transport import oip_wire
from zh_rnn_encoder.transport.state import Served, ServingState
from zh_rnn_encoder.transport.status import lenient, unary

if TYPE_CHECKING:
    from zh_rnn_encoder.transport.metrics import Metrics

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVER_NAME = "zh-rnn-encoder"


class InferenceServicer:
    """Readiness is the serving state's: the self-test passed and no drain has begun."""

    def __init__(self, state: ServingState, served: Served, metrics: Metrics | None = None) -> None:
        self.state, self.served, self.metrics = state, served, metrics

    def record(self, method: str, code: grpc.StatusCode, t0: float) -> None:
        if self.metrics:
            self.metrics.request(method, code.name, time.perf_counter() - t0)

    @unary
    async def ServerLive(self, r: pb.ServerLiveRequest, context: grpc.aio.ServicerContext):
        return pb.ServerLiveResponse(live=True)

    @unary
    async def ServerReady(self, r: pb.ServerReadyRequest, context: grpc.aio.ServicerContext):
        return pb.ServerReadyResponse(ready=self.state.serving)

    @unary
    async def ModelReady(self, r: pb.ModelReadyRequest, context: grpc.aio.ServicerContext):
        self.served.check(r.name, r.version)
        return pb.ModelReadyResponse(ready=self.state.serving)

    @unary
    async def ServerMetadata(self, r: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=[])

    @unary
    async def ModelMetadata(self, r: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext):
        self.served.check(r.name, r.version)
        return oip_wire.model_metadata(self.state.ready().info, self.served)

    @unary
    async def ModelInfer(self, r: pb.ModelInferRequest, context: grpc.aio.ServicerContext):
        self.served.check(r.model_name, r.model_version)
        encoder = self.state.ready()
        outputs = oip_wire.requested_outputs(r)
        options = oip_wire.options_of(r, outputs)
        async with encoder.encoded(oip_wire.texts_of(r), options) as result:  # or shed
            if self.metrics:
                self.metrics.observe(result)
            pad_id = encoder.bundle.vocab.pad_id
            return oip_wire.infer_response(result, outputs, self.served, r.id, pad_id)


def add_to_server(
    servicer: InferenceServicer,
    server: grpc.aio.Server,
    door: Callable[[int], Exception | None],
) -> None:
    """Every method with lenient parsing; ModelInfer also sheds by size before parsing."""
    ser = lambda m: m.SerializeToString()  # noqa: E731
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
            lenient(cls, door if name == "ModelInfer" else None),
            ser,
        )
        for name, cls in requests.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
