"""TLS, mutual TLS and bearer tokens on real channels, with certificates made here (trustme)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.harness import InProcessServer, ServerProcess, wait_health
from tests.support.samples import SMALL, TUTORIAL
from zh_rnn_encoder.client import EncoderClient, encode_request
from zh_rnn_encoder.client.cli import main as client_main
from zh_rnn_encoder.transport.interceptors import BearerAuth
from zh_rnn_encoder.transport.security import load_tokens

KEYS = ("s3cret-one", "s3cret-two")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A server CA and certificate for 127.0.0.1, and a client CA with one client certificate."""
    d = tmp_path_factory.mktemp("pki")
    server_ca, client_ca = trustme.CA(), trustme.CA()
    server = server_ca.issue_cert("127.0.0.1", "localhost")
    client = client_ca.issue_cert("client@example.com")
    files = {
        "ca": server_ca.cert_pem,
        "cert": server.cert_chain_pems[0],
        "key": server.private_key_pem,
        "client_ca": client_ca.cert_pem,
        "client_cert": client.cert_chain_pems[0],
        "client_key": client.private_key_pem,
    }
    out = {}
    for name, blob in files.items():
        out[name] = d / f"{name}.pem"
        blob.write_to_path(str(out[name]))
    return out


@pytest.fixture(scope="module")
def bundle(bundle_factory) -> Path:
    return bundle_factory(cell="gru", **SMALL)[0]


def _code(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        call(*args, **kwargs)
    return e.value.code(), e.value.details()


def test_tls_only(bundle, jieba_cache, pki) -> None:
    srv = InProcessServer(bundle, jieba_cache, tls_cert=pki["cert"], tls_key=pki["key"]).load()
    try:
        with EncoderClient(srv.target, tls_ca=pki["ca"]) as c:
            assert c.encode([TUTORIAL])[0].vector.shape == (24,)
        with EncoderClient(srv.target, timeout=3, retry=False) as plain:
            assert _code(plain.encode, ["你好"])[0] == grpc.StatusCode.UNAVAILABLE
        with EncoderClient(srv.target, timeout=3, retry=False, tls_ca=pki["client_ca"]) as wrong_ca:
            assert _code(wrong_ca.encode, ["你好"])[0] == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop()


def test_mutual_tls(bundle, jieba_cache, pki) -> None:
    srv = InProcessServer(
        bundle,
        jieba_cache,
        tls_cert=pki["cert"],
        tls_key=pki["key"],
        tls_client_ca=pki["client_ca"],
    ).load()
    try:
        mine = {"tls_cert": pki["client_cert"], "tls_key": pki["client_key"]}
        with EncoderClient(srv.target, tls_ca=pki["ca"], **mine) as c:
            assert c.encode(["你好"])[0].tokens == ["你好"]
        with EncoderClient(srv.target, timeout=3, retry=False, tls_ca=pki["ca"]) as anonymous:
            assert _code(anonymous.encode, ["你好"])[0] == grpc.StatusCode.UNAVAILABLE
        # a certificate from the server's own CA is not one the client CA signed
        theirs = {"tls_cert": pki["cert"], "tls_key": pki["key"]}
        with EncoderClient(srv.target, timeout=3, retry=False, tls_ca=pki["ca"], **theirs) as other:
            assert _code(other.encode, ["你好"])[0] == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def authed(bundle, jieba_cache, tmp_path_factory, pki):
    tokens = tmp_path_factory.mktemp("auth") / "tokens"
    tokens.write_text(f"# keys\n{KEYS[0]}\n\n{KEYS[1]}\n", encoding="utf-8")
    srv = InProcessServer(
        bundle,
        jieba_cache,
        tls_cert=pki["cert"],
        tls_key=pki["key"],
        auth_tokens_file=tokens,
        metrics_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
    ).load()
    yield srv
    srv.stop()


@pytest.mark.parametrize("token", [None, "wrong", KEYS[0] + "x", ""])
def test_every_call_needs_a_valid_token(authed, pki, token) -> None:
    with EncoderClient(authed.target, tls_ca=pki["ca"], token=token) as c:
        for call in (lambda: c.encode(["你好"]), lambda: c.tokenize(["你好"]), c.info):
            assert _code(call) == (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")
        stream = c.encode_stream([encode_request(["你好"])])
        assert _code(list, stream) == (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")
        assert c.health() == "SERVING"  # probes carry no credentials


@pytest.mark.parametrize("key", KEYS)
def test_each_key_is_accepted(authed, pki, key, caplog) -> None:
    with (
        caplog.at_level(logging.DEBUG),
        EncoderClient(authed.target, tls_ca=pki["ca"], token=key) as c,
    ):
        assert c.encode(["你好"])[0].tokens == ["你好"]
        assert len(list(c.encode_stream([encode_request(["好"])] * 3))) == 3
        assert c.info()["cell"] == "gru"
    assert not any(k in caplog.text for k in KEYS)


def test_reflection_needs_the_token_too(authed, pki) -> None:
    creds = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    with grpc.secure_channel(authed.target, creds) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        code, _ = _code(lambda: list(stub.ServerReflectionInfo(iter([req]), timeout=5)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        md = (("authorization", f"Bearer {KEYS[1]}"),)
        names = {
            s.name
            for r in stub.ServerReflectionInfo(iter([req]), timeout=5, metadata=md)
            for s in r.list_services_response.service
        }
    assert "encoder.v1.Encoder" in names


def test_denied_calls_are_counted(authed, pki) -> None:
    import urllib.request

    with EncoderClient(authed.target, tls_ca=pki["ca"], token="nope") as c:
        _code(c.encode, ["你好"])
    import ssl

    url = f"https://127.0.0.1:{authed.app.metrics_port}/metrics"  # the server's TLS (--tls-*)
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    body = urllib.request.urlopen(url, timeout=5, context=ctx).read().decode()
    assert 'encoder_requests_total{code="UNAUTHENTICATED",method="Encode"}' in body


def test_http_has_the_same_tls_and_tokens(authed, pki) -> None:
    import http.client
    import ssl

    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    body = json.dumps({"model": "encoder", "input": "你好"})

    def post(token: str | None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", authed.app.http_port, context=ctx)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("POST", "/v1/embeddings", body, headers)
        r = conn.getresponse()
        out = r.status, r.read()
        conn.close()
        return out

    assert post(KEYS[0])[0] == 200 and post(KEYS[1])[0] == 200
    for token in (None, "wrong", KEYS[0] + "x"):
        status, out = post(token)
        assert status == 401 and json.loads(out)["error"]["message"] == "unauthenticated"
    plain = http.client.HTTPConnection("127.0.0.1", authed.app.http_port, timeout=5)
    with pytest.raises((ConnectionError, http.client.HTTPException)):  # TLS only
        plain.request("GET", "/health")
        plain.getresponse()
    plain.close()


def test_reflection_off(bundle, jieba_cache) -> None:
    srv = InProcessServer(bundle, jieba_cache, reflection=False).load()
    try:
        with grpc.insecure_channel(srv.target) as ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            req = reflection_pb2.ServerReflectionRequest(list_services="")
            code, _ = _code(lambda: list(stub.ServerReflectionInfo(iter([req]), timeout=5)))
        assert code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        srv.stop()


def test_encoder_client_cli_with_tls_and_token(authed, pki, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TOKEN", KEYS[0])
    args = ["--target", authed.target, "--tls-ca", str(pki["ca"])]
    assert client_main([*args, "encode", "你好"]) == 0
    assert '"tokens": ["你好"]' in capsys.readouterr().out
    monkeypatch.setenv("TOKEN", "wrong")
    assert client_main([*args, "encode", "你好"]) == 2
    assert "UNAUTHENTICATED: unauthenticated" in capsys.readouterr().err


def test_token_settings() -> None:
    assert load_tokens(None, " a, b ,,") == [b"a", b"b"]
    assert load_tokens(None, "") == []
    auth = BearerAuth([b"k1", b"k2"])
    assert auth.allowed((("authorization", "Bearer k2"),))
    assert auth.allowed((("authorization", "bearer  k1 "),))
    assert not auth.allowed((("authorization", "Basic k1"),))
    assert not auth.allowed((("authorization", "Bearer "),)) and not auth.allowed(None)


def test_misconfigured_security_exits_2(bundle, tmp_path, pki) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("# nothing\n", encoding="utf-8")
    cases = [
        (["--auth-tokens-file", str(empty)], "none is set"),
        (["--tls-cert", str(pki["cert"]), "--tls-key", str(tmp_path / "no.pem")], "no.pem"),
    ]
    for extra, message in cases:
        proc = ServerProcess("--bundle", str(bundle), "--listen", "127.0.0.1:0", *extra)
        assert proc.wait(60) == 2, proc.log
        assert message in proc.log and "Traceback" not in proc.log


def test_tls_server_process_with_env_tokens(bundle, jieba_cache, pki) -> None:
    env = {
        "BUNDLE": str(bundle),
        "LISTEN": "127.0.0.1:0",
        "JIEBA_CACHE_DIR": str(jieba_cache),
        "TLS_CERT": str(pki["cert"]),
        "TLS_KEY": str(pki["key"]),
        "AUTH_TOKENS": ",".join(KEYS),
    }
    proc = ServerProcess(env=env)
    try:
        target = f"127.0.0.1:{proc.port()}"
        wait_health(target, "SERVING", tls_ca=pki["ca"])
        with EncoderClient(target, tls_ca=pki["ca"], token=KEYS[1]) as c:
            assert c.encode(["你好"])[0].tokens == ["你好"]
        assert "TLS, bearer-token auth" in proc.log
        assert not any(k in proc.log for k in KEYS)
    finally:
        proc.kill()


@pytest.mark.parametrize("days, said", [(-1, "expired on"), (5, "expires on")])
def test_a_certificate_at_its_end_is_named_at_start(
    bundle, jieba_cache, tmp_path, days, said
) -> None:
    """Expired or within 14 days: one WARNING naming the file and the date; it serves anyway."""
    ca = trustme.CA()
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=days)
    leaf = ca.issue_cert("127.0.0.1", not_before=end - timedelta(days=90), not_after=end)
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    proc = ServerProcess(
        "--bundle", str(bundle), "--listen", "127.0.0.1:0", "--jieba-cache-dir", str(jieba_cache),
        "--tls-cert", str(cert), "--tls-key", str(key),
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{proc.port()}"
        t0 = time.monotonic()
        while "serving encoder.v1" not in proc.log:
            assert time.monotonic() - t0 < 60 and proc.proc.poll() is None, proc.log
            time.sleep(0.05)
        named = [x for x in proc.log.splitlines() if str(cert) in x]
        assert len(named) == 1 and " WARNING " in named[0], proc.log
        assert f"in {cert} {said} {end:%Y-%m-%d %H:%M} UTC" in named[0], named
        if days > 0:  # still valid: clients connect
            with EncoderClient(target, tls_ca=ca_file) as c:
                assert c.encode([TUTORIAL])[0].vector.shape == (24,)
    finally:
        proc.kill()
