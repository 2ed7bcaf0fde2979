"""TLS, mutual TLS and bearer-token auth for every gRPC service of the server; health stays open.

Tokens come from a file (one a line, # comments) or a comma-separated setting; they are compared
in constant time against every key, and neither a token nor a key is ever logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path

import grpc

from zh_rnn_encoder.core.errors import UnsafeSetting
from zh_rnn_encoder.transport.status import refusing

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)  # probes carry no credentials
UNAUTHENTICATED = "unauthenticated"  # the whole message: no hint of which part was wrong


def load_tokens(file: Path | None, inline: str = "") -> list[bytes]:
    """The accepted keys, from a file and/or a comma-separated string; blank entries skipped."""
    keys = [k.strip() for k in inline.split(",")]
    if file:
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise UnsafeSetting(f"auth tokens file {file}: {e.strerror}") from None
        keys += [x.strip() for x in lines if not x.lstrip().startswith("#")]
    keys = [k for k in keys if k]
    if (file or inline) and not keys:
        raise UnsafeSetting("auth tokens were configured, but none is set: refusing an open server")
    return [k.encode() for k in keys]


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None
) -> grpc.ServerCredentials:
    """TLS with this certificate chain and key; with ``client_ca``, clients must present a
    certificate that it signed (mutual TLS)."""
    try:
        chain, private = Path(cert).read_bytes(), Path(key).read_bytes()
        ca = Path(client_ca).read_bytes() if client_ca else None
    except OSError as e:
        raise UnsafeSetting(f"TLS file {e.filename}: {e.strerror}") from None
    return grpc.ssl_server_credentials(
        [(private, chain)], root_certificates=ca, require_client_auth=ca is not None
    )


def bearer_ok(keys: list[bytes], authorization: str | bytes | None) -> bool:
    """Whether an ``authorization`` header value is ``Bearer <one of keys>``."""
    value = authorization.encode() if isinstance(authorization, str) else authorization or b""
    presented = value[7:].strip() if value[:7].lower() == b"bearer " else b""
    ok = False
    for key in keys:  # every key compared: the time says nothing about which matched
        ok |= hmac.compare_digest(presented, key)
    return ok and bool(presented)


class BearerAuth(grpc.aio.ServerInterceptor):
    """``authorization: Bearer <token>`` on every call but the open ones, else UNAUTHENTICATED."""

    def __init__(self, keys: list[bytes], on_denied: Callable[[str], None] | None = None) -> None:
        self._keys, self._on_denied = keys, on_denied

    def allowed(self, metadata: tuple | None) -> bool:
        value = None
        for k, v in metadata or ():
            if k == "authorization":
                value = v
        return bearer_ok(self._keys, value)

    async def intercept_service(self, continuation: Callable, details: object) -> object:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        if self.allowed(details.invocation_metadata):
            return handler
        if self._on_denied:
            self._on_denied(details.method.rsplit("/", 1)[-1])
        return refusing(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)
