"""Prometheus metrics on --metrics-listen: requests by status, texts, runs, queue, readiness."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import pytest

from tests.support.harness import InProcessServer, scrape
from tests.support.samples import SMALL, TUTORIAL
from zh_rnn_encoder.client import EncoderClient


def test_metrics_endpoint(bundle_factory, jieba_cache) -> None:
    srv = InProcessServer(
        bundle_factory(cell="rnn", **SMALL)[0], jieba_cache, metrics_listen="127.0.0.1:0"
    )
    try:
        port = srv.app.metrics_port
        assert scrape(port)["encoder_ready"] == 0
        srv.load()
        with EncoderClient(srv.target) as c:
            c.encode([TUTORIAL, "你好"])
            with pytest.raises(grpc.RpcError):
                c.encode([""])
        m = scrape(port)
        assert m["encoder_ready"] == 1
        assert m['encoder_requests_total{code="OK",method="Encode"}'] == 1
        assert m['encoder_requests_total{code="INVALID_ARGUMENT",method="Encode"}'] == 1
        assert m["encoder_texts_total"] == 2 and m["encoder_tokens_total"] == 19 + 1
        assert m["encoder_run_texts_count"] >= 1 and m["encoder_queued_texts"] == 0
        assert m['encoder_stage_seconds_count{stage="inference"}'] == 1
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert e.value.code == 404
    finally:
        srv.stop()


@pytest.mark.parametrize("listen", [":9100", "9100", "[]:9100"])
def test_metrics_host_must_be_explicit(listen: str, capsys) -> None:
    from zh_rnn_encoder.transport.config import from_args

    with pytest.raises(SystemExit):
        from_args(["--bundle", "b", "--metrics-listen", listen], env={})
    assert "needs an explicit host" in capsys.readouterr().err
