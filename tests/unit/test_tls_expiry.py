"""The expiry date read from a certificate without a dependency, checked against cryptography's
(a dev dependency), and the warning a server gives at start."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509

from zh_rnn_encoder.transport.security import _PEM, expiry_warning, not_after

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _leaf(end: datetime, ca: trustme.CA | None = None) -> bytes:
    ca = ca or trustme.CA()
    cert = ca.issue_cert("127.0.0.1", not_before=end - timedelta(days=90), not_after=end)
    return cert.cert_chain_pems[0].bytes()


@pytest.mark.parametrize(
    "end",
    [
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),  # UTCTime, 19xx
        datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # UTCTime, the last year it holds
        datetime(2050, 1, 1, tzinfo=UTC),  # GeneralizedTime from here on (RFC 5280)
        datetime(2126, 6, 7, 8, 9, 10, tzinfo=UTC),
    ],
)
def test_not_after_agrees_with_cryptography(end: datetime) -> None:
    pem = _leaf(end)
    der = base64.b64decode(_PEM.findall(pem)[0])
    assert not_after(der) == x509.load_pem_x509_certificate(pem).not_valid_after_utc == end


def test_a_ca_certificate_too() -> None:
    pem = trustme.CA().cert_pem.bytes()
    der = base64.b64decode(_PEM.findall(pem)[0])
    assert not_after(der) == x509.load_pem_x509_certificate(pem).not_valid_after_utc


def test_warnings_name_the_file_and_the_date() -> None:
    expired = expiry_warning("/tls/cert.pem", _leaf(NOW - timedelta(days=1)), NOW)
    assert expired == (
        "TLS certificate in /tls/cert.pem expired on 2026-11-29 12:00 UTC; serving it anyway"
    )
    soon = expiry_warning("/tls/cert.pem", _leaf(NOW + timedelta(days=5)), NOW)
    assert soon == "TLS certificate in /tls/cert.pem expires on 2026-12-05 12:00 UTC, in 5.0 days"
    assert expiry_warning("c.pem", _leaf(NOW + timedelta(days=15)), NOW) is None


def test_the_first_certificate_of_a_chain_to_expire_is_named() -> None:
    chain = _leaf(NOW + timedelta(days=300)) + _leaf(NOW + timedelta(days=3))
    warning = expiry_warning("chain.pem", chain, NOW)
    assert warning is not None and warning.startswith("TLS certificate 2 of 2 in chain.pem")


def test_what_cannot_be_read_is_said_and_nothing_is_not() -> None:
    broken = b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"
    assert "cannot read when it expires" in (expiry_warning("bad.pem", broken, NOW) or "")
    assert expiry_warning("empty.pem", b"", NOW) is None
