"""TLS, mutual TLS and bearer tokens, for every transport; health stays open.

Tokens come from a file (one a line, # comments) or a comma-separated setting; they are compared
in constant time against every key, and neither a token nor a key is ever logged or echoed. The
gRPC interceptor is interceptors.BearerAuth; the HTTP API asks ``bearer_ok`` itself.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from zh_rnn_encoder.core.errors import UnsafeSetting

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


def read_tls(
    cert: Path, key: Path, client_ca: Path | None = None
) -> tuple[bytes, bytes, bytes | None]:
    """The certificate chain, the private key and the client CA (None: no mutual TLS), read
    now so that a file that cannot be read stops the server at start."""
    try:
        chain, private = Path(cert).read_bytes(), Path(key).read_bytes()
        ca = Path(client_ca).read_bytes() if client_ca else None
    except OSError as e:
        raise UnsafeSetting(f"TLS file {e.filename}: {e.strerror}") from None
    return chain, private, ca


def bearer_ok(keys: list[bytes], authorization: str | bytes | None) -> bool:
    """Whether an ``authorization`` header value is ``Bearer <one of keys>``."""
    value = authorization.encode() if isinstance(authorization, str) else authorization or b""
    presented = value[7:].strip() if value[:7].lower() == b"bearer " else b""
    ok = False
    for key in keys:  # every key compared: the time says nothing about which matched
        ok |= hmac.compare_digest(presented, key)
    return ok and bool(presented)
