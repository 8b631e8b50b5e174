"""RFC 3161 timestamps (dấu thời gian): the request a node sends a timestamping authority
and the policy that decides whether a token proves a digest existed at its time.

The protocol and the token's cryptography are ``rfc3161-client``'s (Trail of Bits, used by
sigstore): the CMS signature, the TSA certificate's chain up to an anchor, its
``timeStamping`` extended key usage, the nonce. This module adds what docaxis decides on
top: which anchors, SHA-256 imprints only, and a stable code for every refusal.

Examples
--------
>>> request = timestamp_request(b"the bytes to stamp")
>>> verifier = TimestampVerifier.load(["keys/root/ca.pem"])  # doctest: +SKIP
>>> verifier.verify(response, request.digest, nonce=request.nonce)  # doctest: +SKIP
datetime.datetime(2026, 11, 30, 3, 35, 49, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import rfc3161_client
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from docaxis._errors import DocaxisError

__all__ = ["TimestampError", "TimestampRequest", "TimestampVerifier", "timestamp_request"]


class TimestampError(DocaxisError):
    """A timestamp token that proves nothing: unreadable, not granted, not signed by a
    trusted TSA, or over another digest. Codes: ``TSA-REFUSED`` (the TSA did not grant
    it), ``TSA-TOKEN-INVALID`` (everything else)."""

    default_code = "TSA-TOKEN-INVALID"


@dataclass(frozen=True)
class TimestampRequest:
    """A ``TimeStampReq`` for a message's SHA-256, with a nonce."""

    der: bytes
    digest: bytes
    nonce: int


def timestamp_request(message: bytes) -> TimestampRequest:
    """A request to stamp ``message`` (its SHA-256), asking for the TSA's certificate."""
    request = (rfc3161_client.TimestampRequestBuilder().data(message)
               .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
               .nonce(nonce=True).cert_request(cert_request=True).build())
    return TimestampRequest(request.as_bytes(), hashlib.sha256(message).digest(),
                            int(request.nonce or 0))


@dataclass(frozen=True)
class TimestampVerifier:
    """Which TSAs a node (or an auditor) believes: their roots.

    Parameters
    ----------
    anchors:
        Root certificates a TSA certificate must chain to.
    """

    anchors: tuple[x509.Certificate, ...]

    @classmethod
    def load(cls, paths: Iterable[Path | str]) -> TimestampVerifier:
        """Anchors from PEM files (several certificates to a file allowed).

        Raises
        ------
        TimestampError
            ``TSA-ANCHORS`` when a file cannot be read or holds no certificate.
        """
        anchors: list[x509.Certificate] = []
        for path in paths:
            try:
                found = x509.load_pem_x509_certificates(Path(path).read_bytes())
            except (OSError, ValueError) as exc:
                raise TimestampError(f"TSA anchor {path}: {exc}", code="TSA-ANCHORS") from None
            anchors += found
        if not anchors:
            raise TimestampError("no TSA anchor given", code="TSA-ANCHORS")
        return cls(tuple(anchors))

    def verify(self, response: bytes, digest: bytes, *, nonce: int | None = None,
               ) -> dt.datetime:
        """The time a token says ``digest`` (a SHA-256) existed.

        Raises
        ------
        TimestampError
            ``TSA-REFUSED`` when the response is not a granted token;
            ``TSA-TOKEN-INVALID`` when it is unreadable, its signature or chain does not
            verify against the anchors, its signer is not a timestamping certificate, or
            it stamps another digest (or nonce).
        """
        try:
            decoded = rfc3161_client.decode_timestamp_response(response)
        except ValueError as exc:
            raise TimestampError(f"not a timestamp response: {exc}") from None
        if rfc3161_client.PKIStatus(decoded.status) not in (
                rfc3161_client.PKIStatus.GRANTED, rfc3161_client.PKIStatus.GRANTED_WITH_MODS):
            raise TimestampError(f"the TSA did not grant the timestamp (status "
                                 f"{decoded.status})", code="TSA-REFUSED")
        if decoded.tst_info.message_imprint.hash_algorithm.dotted_string != _SHA256:
            raise TimestampError("the token's imprint is not a SHA-256")
        builder = rfc3161_client.VerifierBuilder(roots=list(self.anchors))
        if nonce is not None:
            builder = builder.nonce(nonce)
        try:
            builder.build().verify(decoded, digest)
        except (rfc3161_client.VerificationError, ValueError) as exc:
            raise TimestampError(f"the token does not verify: {_short(exc)}") from None
        signer = _signer_certificate(decoded)
        try:
            usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            usages = None
        if usages is None or not usages.critical or list(usages.value) != [
                ExtendedKeyUsageOID.TIME_STAMPING]:
            raise TimestampError("the token's signer is not a timestamping certificate "
                                 "(RFC 3161 §2.3: extended key usage timeStamping only, "
                                 "critical)")
        return decoded.tst_info.gen_time.astimezone(dt.UTC)


_SHA256 = "2.16.840.1.101.3.4.2.1"


def _signer_certificate(decoded: rfc3161_client.TimeStampResponse) -> x509.Certificate:
    info = next(iter(decoded.signed_data.signer_infos))
    for der in decoded.signed_data.certificates:
        cert = x509.load_der_x509_certificate(der)
        if cert.issuer == info.issuer and cert.serial_number == info.serial_number:
            return cert
    raise TimestampError("the token does not carry its signer's certificate")


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"
