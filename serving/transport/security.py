"""TLS, mutual TLS and bearer tokens, for every transport; health stays open.

Tokens come from a file (one a line, # comments) or a comma-separated setting; they are compared
in constant time against every key, and neither a token nor a key is ever logged or echoed. The
gRPC interceptor is interceptors.BearerAuth; the HTTP API asks ``bearer_ok`` itself.
"""

from __future__ import annotations

import base64
import hmac
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from zh_rnn_encoder.core.errors import UnsafeSetting

UNAUTHENTICATED = "unauthenticated"  # the whole message: no hint of which part was wrong
EXPIRY_WARNING_DAYS = 14
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18


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


def expiry_warning(
    name: str, pem: bytes, now: datetime | None = None, days: int = EXPIRY_WARNING_DAYS
) -> str | None:
    """What to warn about when a certificate in ``pem`` (the file ``name``) has expired or
    expires within ``days``, or cannot be read; None when every one is valid for longer."""
    try:
        ends = [not_after(base64.b64decode(b)) for b in _PEM.findall(pem)]
    except (ValueError, IndexError) as e:  # binascii.Error is a ValueError
        return f"TLS certificate file {name}: cannot read when it expires ({e})"
    if not ends:
        return None
    end = min(ends)
    left = end - (now or datetime.now(UTC))
    which = f"certificate {ends.index(end) + 1} of {len(ends)}" if len(ends) > 1 else "certificate"
    if left <= timedelta(0):
        return f"TLS {which} in {name} expired on {end:%Y-%m-%d %H:%M} UTC; serving it anyway"
    if left <= timedelta(days=days):
        return (
            f"TLS {which} in {name} expires on {end:%Y-%m-%d %H:%M} UTC, in "
            f"{left.total_seconds() / 86400:.1f} days"
        )
    return None


def not_after(der: bytes) -> datetime:
    """When a DER certificate stops being valid. Read by walking RFC 5280's structure
    (Certificate > TBSCertificate > Validity > notAfter): a dozen lines instead of a
    dependency (``cryptography``), or ssl's private ``_ssl._test_decode_cert``."""
    tbs = _tlv(der, 0)[1]
    i = _tlv(der, tbs)[1]  # the first field of TBSCertificate
    if der[i] == 0xA0:  # [0] version, absent from v1 certificates
        i = _tlv(der, i)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        i = _tlv(der, i)[2]
    validity = _tlv(der, i)[1]
    tag, start, end = _tlv(der, _tlv(der, validity)[2])  # notBefore's end: notAfter
    text = der[start:end].decode("ascii").rstrip("Z")
    if tag == _UTC_TIME:  # YYMMDDHHMMSS, years 1950-2049 (RFC 5280 4.1.2.5.1)
        text = str(int(text[:2]) + (1900 if int(text[:2]) >= 50 else 2000)) + text[2:]
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"notAfter has ASN.1 tag {tag:#x}, not a time")
    return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def _tlv(der: bytes, i: int) -> tuple[int, int, int]:
    """The DER element at ``i``: its tag, where its value starts and where it ends."""
    tag, n, i = der[i], der[i + 1], i + 2
    if n & 0x80:  # long form: the next n & 0x7f bytes hold the length
        k = n & 0x7F
        n, i = int.from_bytes(der[i : i + k], "big"), i + k
    if i + n > len(der):
        raise ValueError("truncated DER")
    return tag, i, i + n
