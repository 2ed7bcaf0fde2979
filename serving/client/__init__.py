"""A Python client for encoder.v1: numpy arrays out, gRPC status errors unchanged.

Needs grpcio (with its health package), protobuf and numpy only: never onnxruntime or jieba.
The request and response messages are the public generated module ``zh_rnn_encoder.proto``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from zh_rnn_encoder.core.enums import Pooling, Truncation
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc
from zh_rnn_encoder.proto_convert import TRUNCATION_TO_PB, pooling_of, pooling_pb, to_numpy

# The retry policy the client ships, as a gRPC service config: UNAVAILABLE (a server draining or
# still loading) and RESOURCE_EXHAUSTED (shed by the gate) are retried after an exponential,
# jittered backoff. gRPC retries a call only while it is under its retry buffer (256 KiB by
# default) and has no response yet; it never retries other statuses.
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
}
# Calls are spread over every address the target resolves to (dns:///encoder.ns.svc:50051 with a
# headless Service: one connection per pod), not pinned to the first.
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {"name": [{"service": "encoder.v1.Encoder"}], "retryPolicy": RETRY_POLICY}
        ],
    }
)

__all__ = [
    "RETRY_POLICY",
    "SERVICE_CONFIG",
    "EncoderClient",
    "Encoded",
    "Tokenized",
    "encode_request",
    "from_response",
    "to_numpy",
    "wait_until_serving",
    "pb",
]


@dataclass
class Encoded:
    tokens: list[str]
    ids: np.ndarray  # int64 [n]
    vector: np.ndarray  # float32 [F]
    token_vectors: np.ndarray | None  # float32 [n, F]
    truncated: bool
    state: pb.State | None = None  # with return_state: send it back to continue the text
    # The version of the model that made the vector (hex sha256 of its bundle.json): vectors of
    # two versions are not comparable. "" from a server older than model versions.
    model_version: str = ""


@dataclass
class Tokenized:
    tokens: list[str]
    ids: np.ndarray  # int64 [n]
    unknown: int
    model_version: str = ""  # the model whose vocabulary gave the ids


def from_response(r: pb.EncodeResponse) -> list[Encoded]:
    return [
        Encoded(
            list(e.tokens),
            np.array(e.ids, dtype=np.int64),
            to_numpy(e.sentence_vector),
            to_numpy(e.token_vectors) if e.HasField("token_vectors") else None,
            e.truncated,
            e.state if e.HasField("state") else None,
            r.model_version,
        )
        for e in r.encodings
    ]


class RequestOptions(TypedDict, total=False):
    """encode_request's keywords, as EncoderClient.encode takes them."""

    pooling: Pooling | str | None
    normalize: bool | None
    truncation: Truncation | str
    max_tokens: int
    token_vectors: bool
    request_id: str
    initial_states: Sequence[pb.State | None] | None
    return_state: bool
    model: str


class ConnectOptions(TypedDict, total=False):
    """EncoderClient's keywords after ``target`` and ``timeout``."""

    max_message_bytes: int
    tls: bool
    tls_ca: str | Path | None
    tls_cert: str | Path | None
    tls_key: str | Path | None
    token: str | None
    retry: bool


def encode_request(
    texts: Sequence[str],
    pooling: Pooling | str | None = None,
    normalize: bool | None = None,
    truncation: Truncation | str = Truncation.NONE,
    max_tokens: int = 0,
    token_vectors: bool = False,
    request_id: str = "",
    initial_states: Sequence[pb.State | None] | None = None,
    return_state: bool = False,
    model: str = "",
) -> pb.EncodeRequest:
    """Options as in the in-process Encoder: pooling last|mean|max, truncation none|keep_first|
    keep_last (or first|last); ``pooling`` and ``normalize`` None leave them to the model's
    defaults (``info()["default_pooling"]`` and ``["default_normalize"]``). ``initial_states``
    (one per text; None starts a text afresh) are States from earlier responses, to continue
    those texts; ``return_state`` asks for them. ``model``: a name from ``list_models()``; ""
    the server's default."""
    states = [s if s is not None else pb.State() for s in initial_states or []]
    return pb.EncodeRequest(
        model=model,
        initial_states=states,
        return_state=return_state,
        texts=list(texts),
        pooling=pooling_pb(pooling),
        normalize=normalize,  # None: unset
        truncation=TRUNCATION_TO_PB[Truncation.parse(truncation, "truncation")],
        max_tokens=max_tokens,
        return_token_vectors=token_vectors,
        request_id=request_id,
    )


class EncoderClient:
    """``with EncoderClient("127.0.0.1:50051") as c: c.encode(["北京冬奥"])[0].vector``.

    TLS: ``tls_ca`` (a PEM file; or ``tls=True`` for the system's roots), and ``tls_cert`` with
    ``tls_key`` for a client certificate (mutual TLS). ``token`` is sent as a bearer token.
    ``retry`` applies RETRY_POLICY.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        timeout: float = 30.0,
        max_message_bytes: int = 64 << 20,
        *,
        tls: bool = False,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        token: str | None = None,
        retry: bool = True,
    ) -> None:
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.enable_retries", int(retry)),
        ]
        if retry:
            options.append(("grpc.service_config", SERVICE_CONFIG))
        if tls or tls_ca or tls_cert:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca),
                private_key=_read(tls_key),
                certificate_chain=_read(tls_cert),
            )
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.EncoderStub(self.channel)
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None

    def __enter__(self) -> EncoderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def encode(self, texts: Sequence[str], **options: Unpack[RequestOptions]) -> list[Encoded]:
        """Options: model, pooling, normalize, truncation, max_tokens, token_vectors
        (encode_request). Each Encoded keeps the ``model_version`` that made it."""
        return from_response(self.encode_raw(texts, **options))

    def encode_raw(
        self, texts: Sequence[str], **options: Unpack[RequestOptions]
    ) -> pb.EncodeResponse:
        return self.stub.Encode(
            encode_request(texts, **options), timeout=self.timeout, metadata=self.metadata
        )

    def encode_stream(self, requests: Iterable[pb.EncodeRequest]) -> Iterator[pb.EncodeResponse]:
        return self.stub.EncodeStream(iter(requests), timeout=self.timeout, metadata=self.metadata)

    def encode_document(
        self,
        pieces: Iterable[str],
        pooling: Pooling | str | None = None,
        normalize: bool | None = None,
        initial_state: pb.State | None = None,
        request_id: str = "",
        model: str = "",
    ) -> pb.DocumentEncoding:
        """A document of any length in pieces (each at most the server's max_chars_per_text,
        cut anywhere); vector: to_numpy(result.sentence_vector); result.state continues it;
        result.model_version the model's version. ``pooling`` and ``normalize`` None: the
        model's defaults; ``model`` "": the server's default."""

        def requests() -> Iterator[pb.DocumentPiece]:
            first = True
            for text in pieces:
                if first:
                    yield pb.DocumentPiece(
                        text=text,
                        pooling=pooling_pb(pooling),
                        normalize=normalize,
                        initial_state=initial_state,
                        request_id=request_id,
                        model=model,
                    )
                    first = False
                else:
                    yield pb.DocumentPiece(text=text)

        return self.stub.EncodeDocument(requests(), metadata=self.metadata)

    def tokenize(self, texts: Sequence[str], model: str = "") -> list[Tokenized]:
        r = self.stub.Tokenize(
            pb.TokenizeRequest(texts=list(texts), model=model),
            timeout=self.timeout,
            metadata=self.metadata,
        )
        return [
            Tokenized(
                list(t.tokens), np.array(t.ids, dtype=np.int64), t.unknown_count, r.model_version
            )
            for t in r.texts
        ]

    def list_models(self) -> list[dict[str, Any]]:
        """The server's models, the default first: ``{"name", "version", "is_default"}``."""
        r = self.stub.ListModels(
            pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata
        )
        return [
            {"name": m.name, "version": m.version, "is_default": m.is_default} for m in r.models
        ]

    def info(self, model: str = "") -> dict[str, Any]:
        """GetModelInfo of ``model`` ("": the default) as a dict of the proto's field names;
        ``default_pooling`` as the option value ("mean"), ``model_card`` None for an untrained
        model, ``model_version`` the hex sha256 of its bundle.json, ``quantization`` None for a
        float graph."""
        r = self.stub.GetModelInfo(
            pb.GetModelInfoRequest(model=model), timeout=self.timeout, metadata=self.metadata
        )
        d = MessageToDict(
            r, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        for key in ("pad_id", "unk_id"):  # proto3 JSON writes 64-bit integers as strings
            d[key] = int(d[key])
        d["limits"]["max_message_bytes"] = int(d["limits"]["max_message_bytes"])
        pooling = pooling_of(r.default_pooling)
        d["default_pooling"] = pooling.value if pooling else None  # None: an older server
        d["model_card"] = _card(d["model_card"]) if r.HasField("model_card") else None
        d["quantization"] = d.get("quantization")  # None: the float graph
        return d

    def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING or SERVICE_UNKNOWN (raises grpc.RpcError if unreachable)."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


def _card(d: dict[str, Any]) -> dict[str, Any]:
    d["seed"] = int(d["seed"])
    d["examples"] = {k: int(v) for k, v in d["examples"].items()}
    return d


def _read(path: str | Path | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def wait_until_serving(
    target: str, timeout: float = 60.0, want: str = "SERVING", **client: Unpack[ConnectOptions]
) -> float:
    """Seconds until the health check of ``target`` says ``want``; TimeoutError otherwise.
    ``client`` takes EncoderClient's TLS arguments."""
    t0 = time.monotonic()
    with EncoderClient(target, timeout=1, **client) as c:
        while time.monotonic() - t0 < timeout:
            try:
                if c.health() == want:
                    return time.monotonic() - t0
            except grpc.RpcError:
                pass
            time.sleep(0.01)
    raise TimeoutError(f"{target} not {want} after {timeout}s")
