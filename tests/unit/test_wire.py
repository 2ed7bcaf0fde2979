"""encoder.v1 conversions without a server: proto enums, options, responses and their decoding."""

from __future__ import annotations

import numpy as np
import pytest

from zh_rnn_encoder.client import encode_request, from_response
from zh_rnn_encoder.core.enums import Pooling, Truncation
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto_convert import POOLING_TO_PB, TRUNCATION_TO_PB, pooling_of, truncation_of
from zh_rnn_encoder.runtime.encoder import EncodeResult, TextEncoding
from zh_rnn_encoder.transport.encoder_v1 import convert


def test_every_enum_member_has_its_proto_value_and_back() -> None:
    assert len(POOLING_TO_PB) == len(Pooling) and len(TRUNCATION_TO_PB) == len(Truncation)
    for p in Pooling:
        assert pooling_of(POOLING_TO_PB[p]) is p
    for t in Truncation:
        assert truncation_of(TRUNCATION_TO_PB[t]) is t
    # the zero values mean the documented defaults: for pooling, the model's (None: unresolved)
    assert pooling_of(pb.POOLING_UNSPECIFIED) is None
    assert truncation_of(pb.TRUNCATION_UNSPECIFIED) is Truncation.NONE
    with pytest.raises(InvalidInput, match="^pooling: unknown value 9$"):
        pooling_of(9)


def test_client_request_becomes_the_same_options() -> None:
    opts = {"pooling": "max", "normalize": True, "truncation": "first", "max_tokens": 3}
    r = encode_request(["你好"], token_vectors=True, **opts)
    o = convert.options_of(r)
    assert (o.pooling, o.truncation, o.max_tokens) == (Pooling.MAX, Truncation.KEEP_FIRST, 3)
    assert o.normalize and o.token_vectors and o.reducer() is None
    unset = convert.options_of(encode_request(["x"]))  # the model's defaults, resolved by Encoder
    assert unset.pooling is None and unset.normalize is None
    assert convert.options_of(encode_request(["x"], normalize=False)).normalize is False
    with pytest.raises(ValueError, match="pooling: unknown value 'avg'"):
        encode_request(["你好"], pooling="avg")


def test_response_decodes_to_the_same_arrays() -> None:
    rng = np.random.default_rng(0)
    vec, tok = rng.random(6, np.float32), rng.random((1, 6), np.float32)
    encs = [
        TextEncoding(["北京", "冬奥"], np.array([5, 9]), vec, None, False, 2),
        TextEncoding(["你"], np.array([1]), vec * 2, tok, True, 4),
    ]
    version = "0123abcd" * 8
    r = convert.encode_response(EncodeResult(encs, 0.001, 0.002, 0.003), "req-1", version, 0.0)
    assert r.request_id == "req-1" and r.timing.queue_us == 2000
    back = from_response(pb.EncodeResponse.FromString(r.SerializeToString()))
    assert [b.model_version for b in back] == [version, version]  # kept with every vector
    for e, b in zip(encs, back):
        assert b.tokens == e.tokens and b.ids.tolist() == e.ids.tolist()
        assert np.array_equal(b.vector, e.vector) and b.truncated == e.truncated
        assert (b.token_vectors is None) == (e.token_vectors is None)
    assert np.array_equal(back[1].token_vectors, encs[1].token_vectors)
