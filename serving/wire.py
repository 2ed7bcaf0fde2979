"""Wire conversions: request bytes and messages to domain objects, results to responses."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from google.protobuf.message import DecodeError

from serving import errors
from serving._proto.encoder.v1 import encoder_pb2 as pb
from serving.pipeline import EncodeOptions, EncodeResult

_POOLING = {
    pb.POOLING_UNSPECIFIED: "last",
    pb.POOLING_LAST: "last",
    pb.POOLING_MEAN: "mean",
    pb.POOLING_MAX: "max",
}
_TRUNCATION = {
    pb.TRUNCATION_UNSPECIFIED: "none",
    pb.TRUNCATION_NONE: "none",
    pb.TRUNCATION_KEEP_FIRST: "first",
    pb.TRUNCATION_KEEP_LAST: "last",
}


class Malformed:
    """Stands in for a request protobuf could not parse (e.g. a text that is not UTF-8)."""

    def __init__(self, message_type: str, error: Exception) -> None:
        self.reason = f"request is not a valid {message_type}: {error}"


def lenient(message_class: type) -> Callable[[bytes], object]:
    """A deserializer that lets the handler answer INVALID_ARGUMENT instead of gRPC's INTERNAL."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> object:
        try:
            return message_class.FromString(data)
        except DecodeError as e:
            return Malformed(name, e)

    return parse


def fill_tensor(t: pb.Tensor, a: np.ndarray) -> None:
    """Write ``a`` into ``t`` as shape + little-endian float32 bytes."""
    t.shape.extend(a.shape)
    t.data = np.ascontiguousarray(a, dtype="<f4").tobytes()


def options_of(r: pb.EncodeRequest) -> EncodeOptions:
    if r.pooling not in _POOLING:
        raise errors.InvalidInput(f"pooling: unknown value {r.pooling}")
    if r.truncation not in _TRUNCATION:
        raise errors.InvalidInput(f"truncation: unknown value {r.truncation}")
    return EncodeOptions(
        _POOLING[r.pooling],
        r.normalize,
        _TRUNCATION[r.truncation],
        r.max_tokens,
        r.return_token_vectors,
    )


def response_of(res: EncodeResult, request_id: str, arrived: float) -> pb.EncodeResponse:
    # Filling messages in place is about twice as fast as building them from keyword arguments.
    r = pb.EncodeResponse(request_id=request_id)
    add = r.encodings.add
    for e in res.encodings:
        m = add(
            tokens=e.tokens,
            ids=e.ids.tolist(),
            truncated=e.truncated,
            original_token_count=e.original_token_count,
        )
        fill_tensor(m.sentence_vector, e.vector)
        if e.token_vectors is not None:
            fill_tensor(m.token_vectors, e.token_vectors)
    us = 1e6
    t = r.timing
    t.tokenize_us = int(res.tokenize_s * us)
    t.queue_us = int(res.queue_s * us)
    t.inference_us = int(res.inference_s * us)
    t.total_us = int((time.perf_counter() - arrived) * us)
    return r
