"""The encoder.v1 value conversions both ends need: proto enums <-> core.enums, Tensor <-> numpy.
The server's message conversions (transport/encoder_v1/convert.py) and the client build on it.
Proto enum values are named after the domain's (POOLING_MEAN <-> Pooling.MEAN)."""

from __future__ import annotations

from typing import cast

import numpy as np

from zh_rnn_encoder.core.enums import Pooling, Truncation
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb

# protoc's .pyi types an enum field as the enum's class, while Value() is typed as a plain int.
POOLING_TO_PB = {p: cast(pb.Pooling, pb.Pooling.Value(f"POOLING_{p.name}")) for p in Pooling}
TRUNCATION_TO_PB = {
    t: cast(pb.Truncation, pb.Truncation.Value(f"TRUNCATION_{t.name}")) for t in Truncation
}
# The zero value of each proto enum means the documented default: for pooling, the model's
# (None here: the runtime resolves it against the bundle's declared defaults).
_POOLING_FROM_PB: dict[int, Pooling | None] = {
    **{v: k for k, v in POOLING_TO_PB.items()},
    pb.POOLING_UNSPECIFIED: None,
}
_TRUNCATION_FROM_PB: dict[int, Truncation] = {
    **{v: k for k, v in TRUNCATION_TO_PB.items()},
    pb.TRUNCATION_UNSPECIFIED: Truncation.NONE,
}


def pooling_of(value: int) -> Pooling | None:
    """The domain's pooling; None for POOLING_UNSPECIFIED (the model's default)."""
    if value not in _POOLING_FROM_PB:  # proto3 enums are open: any int arrives
        raise InvalidInput(f"pooling: unknown value {value}")
    return _POOLING_FROM_PB[value]


def pooling_pb(value: Pooling | str | None) -> pb.Pooling:
    """The proto value of a pooling; None: POOLING_UNSPECIFIED, the server's default."""
    return (
        pb.POOLING_UNSPECIFIED if value is None else POOLING_TO_PB[Pooling.parse(value, "pooling")]
    )


def truncation_of(value: int) -> Truncation:
    if value not in _TRUNCATION_FROM_PB:
        raise InvalidInput(f"truncation: unknown value {value}")
    return _TRUNCATION_FROM_PB[value]


def fill_tensor(t: pb.Tensor, a: np.ndarray) -> None:
    """Write ``a`` into ``t`` as shape + little-endian float32 bytes."""
    t.shape.extend(a.shape)
    t.data = np.ascontiguousarray(a, dtype="<f4").tobytes()


def to_numpy(t: pb.Tensor) -> np.ndarray:
    """A Tensor message as a float32 array of its shape."""
    return np.frombuffer(t.data, dtype="<f4").reshape(tuple(t.shape))
