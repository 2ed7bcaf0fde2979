"""A resumable state through gRPC: returned, passed back, equal to encoding at once; a state from
another model or a cut one refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.harness import InProcessServer
from tests.support.samples import SMALL
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb

A = "北京冬奥的进度条已经过半，"
B = "不少外国运动员在完成自己的比赛后踏上归途。"
C = "今天天气很好，我们去公园散步吧。"
ATOL = contract.PARITY_ATOL


def _poisoned(data: bytes, value: float) -> bytes:
    """A tensor's float32 bytes with its second value replaced."""
    x = np.frombuffer(data, dtype="<f4").copy()
    x[1] = value
    return x.tobytes()


def test_through_grpc_the_state_round_trips(bundle_factory, jieba_cache) -> None:
    srv = InProcessServer(bundle_factory(cell="lstm", **SMALL)[0], jieba_cache).load()
    try:
        with EncoderClient(srv.target) as c:
            whole = c.encode([A + B], pooling="mean", token_vectors=True)[0]
            a = c.encode([A], return_state=True)[0]
            assert a.state.version == 1 and a.state.cell == "lstm" and a.state.tokens == len(a.ids)
            b = c.encode([B, C], pooling="mean", token_vectors=True,
                         initial_states=[a.state, None], return_state=True)  # fmt: skip
            assert np.abs(b[0].vector - whole.vector).max() <= ATOL
            assert np.abs(b[0].token_vectors - whole.token_vectors[len(a.ids) :]).max() <= ATOL
            assert b[1].state.tokens == len(b[1].ids)
            other = pb.State()
            other.CopyFrom(a.state)
            other.graph_sha256 = "f" * 64
            broken = pb.State()
            broken.CopyFrom(a.state)
            broken.h.data = broken.h.data[:-1]
            nan_h, inf_c, huge_h = pb.State(), pb.State(), pb.State()
            nan_h.CopyFrom(a.state)
            nan_h.h.data = _poisoned(nan_h.h.data, float("nan"))
            inf_c.CopyFrom(a.state)
            inf_c.c.data = _poisoned(inf_c.c.data, float("-inf"))
            huge_h.CopyFrom(a.state)  # finite, but the graph's first product would overflow
            huge_h.h.data = _poisoned(huge_h.h.data, 3e38)
            for bad, words in ((other, "initial_states[0]: the state comes from another model"),
                               (broken, "initial_states[0].h: "),
                               (nan_h, "initial_states[0].h: values must be finite"),
                               (inf_c, "initial_states[0].c: values must be finite"),
                               (huge_h, "initial_states[0].h: values must lie")):  # fmt: skip
                with pytest.raises(Exception) as e:
                    c.encode([B], initial_states=[bad])
                assert e.value.code().name == "INVALID_ARGUMENT" and words in e.value.details()
    finally:
        srv.stop()
