"""Trust anchors, certificate chains and CRL revocation checking.

A :class:`TrustStore` is loaded once (anchors only from configured files — never a web
bundle) and reused: signature checks of certificate and CRL links are memoised by
fingerprint, so verifying the thousandth package of an agency costs dictionary lookups,
while validity dates and revocation are judged at each verification time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from docaxis.dsig._errors import Failure

_LEGACY_CERT_HASHES = (hashes.SHA1, hashes.MD5)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class ChainLink:
    """One certificate of a verified chain, leaf first."""

    subject: str
    serial: str
    fingerprint: str
    not_before: str
    not_after: str
    is_anchor: bool
    revocation: str  # "good", "revoked", "not checked (no CRL)", "anchor"
    crl_this_update: str | None = None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class TrustStore:
    """Configured trust anchors, extra intermediates and CRLs.

    Examples
    --------
    >>> store = TrustStore.load(["keys/root/ca.pem"], crls=["keys/crl"])  # doctest: +SKIP
    """

    anchors: list[x509.Certificate] = field(default_factory=list)
    intermediates: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    _anchor_fps: set[str] = field(default_factory=set, repr=False)
    _link_ok: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    _crl_ok: dict[tuple[bytes, str], bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._anchor_fps = {fingerprint(c) for c in self.anchors}

    @classmethod
    def load(cls, anchors: Iterable[Path | str], *, intermediates: Iterable[Path | str] = (),
             crls: Iterable[Path | str] = ()) -> TrustStore:
        """Read PEM/DER certificates (files or folders) and CRLs (files or folders)."""
        return cls(_read_certs(anchors), _read_certs(intermediates), _read_crls(crls))

    def is_anchor(self, cert: x509.Certificate) -> bool:
        return fingerprint(cert) in self._anchor_fps

    def build_chain(
        self, leaf: x509.Certificate, untrusted: list[x509.Certificate], *,
        at: dt.datetime, allow_legacy: bool, require_revocation: bool,
    ) -> tuple[list[ChainLink], list[Failure]]:
        """Chain ``leaf`` to an anchor; return the links and every failure met."""
        failures: list[Failure] = []
        links: list[ChainLink] = []
        pool = [*untrusted, *self.intermediates, *self.anchors]
        cert = leaf
        seen: set[str] = set()
        for _depth in range(8):
            fp = fingerprint(cert)
            if fp in seen:
                failures.append(Failure("EDX-SIG-CHAIN", "certificate chain loops"))
                break
            seen.add(fp)
            anchor = fp in self._anchor_fps
            self._check_validity(cert, at, failures, anchor=anchor)
            if anchor:
                links.append(_link(cert, True, "anchor"))
                return links, failures
            issuer = (None if cert.subject == cert.issuer  # self-signed, not an anchor
                      else self._find_issuer(cert, pool, allow_legacy, failures))
            if issuer is None:
                links.append(_link(cert, False, "not checked (no issuer)"))
                failures.append(Failure(
                    "EDX-SIG-UNTRUSTED",
                    f"no path from {cert.subject.rfc4514_string()!r} to a configured trust "
                    "anchor"))
                return links, failures
            if cert is not leaf:
                _check_ca(cert, failures)
            status, this_update = self._revocation(cert, issuer, at, require_revocation,
                                                   failures)
            links.append(_link(cert, False, status, this_update))
            if not self.is_anchor(issuer):
                _check_ca(issuer, failures)
            cert = issuer
        failures.append(Failure("EDX-SIG-CHAIN", "certificate chain is too long"))
        return links, failures

    def _find_issuer(self, cert: x509.Certificate, pool: list[x509.Certificate],
                     allow_legacy: bool, failures: list[Failure]) -> x509.Certificate | None:
        # anchors first: a look-alike with the same subject must not shadow them
        candidates = sorted((c for c in pool if c.subject == cert.issuer),
                            key=lambda c: not self.is_anchor(c))
        for candidate in candidates:
            key = (fingerprint(cert), fingerprint(candidate))
            ok = self._link_ok.get(key)
            if ok is None:
                ok = _signed_by(cert, candidate, allow_legacy, failures)
                self._link_ok[key] = ok
            if ok:
                return candidate
        return None

    @staticmethod
    def _check_validity(cert: x509.Certificate, at: dt.datetime, failures: list[Failure], *,
                        anchor: bool) -> None:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            what = "trust anchor" if anchor else "certificate"
            failures.append(Failure(
                "EDX-SIG-EXPIRED",
                f"{what} {cert.subject.rfc4514_string()!r} is not valid at {at:%Y-%m-%d %H:%M}Z "
                f"(valid {cert.not_valid_before_utc:%Y-%m-%d} – "
                f"{cert.not_valid_after_utc:%Y-%m-%d})"))

    def _revocation(self, cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime,
                    required: bool, failures: list[Failure]) -> tuple[str, str | None]:
        crls = [c for c in self.crls if c.issuer == issuer.subject]
        usable = []
        for crl in crls:
            key = (crl.fingerprint(hashes.SHA256()), fingerprint(issuer))
            ok = self._crl_ok.get(key)
            if ok is None:
                try:
                    ok = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
                except (TypeError, UnsupportedAlgorithm):
                    ok = False
                self._crl_ok[key] = ok
            if ok:
                usable.append(crl)
        if not usable:
            if required:
                failures.append(Failure(
                    "EDX-SIG-REVOCATION-UNKNOWN",
                    f"no CRL from {issuer.subject.rfc4514_string()!r}: revocation of "
                    f"serial {cert.serial_number:x} cannot be checked"))
            return "not checked (no CRL)", None
        crl = max(usable, key=lambda c: c.last_update_utc)
        this_update = crl.last_update_utc.isoformat()
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None and revoked.revocation_date_utc <= at:
            failures.append(Failure(
                "EDX-SIG-REVOKED",
                f"certificate serial {cert.serial_number:x} was revoked on "
                f"{revoked.revocation_date_utc:%Y-%m-%d %H:%M}Z (CRL of "
                f"{crl.last_update_utc:%Y-%m-%d %H:%M}Z)"))
            return "revoked", this_update
        if crl.next_update_utc is not None and crl.next_update_utc < at and required:
            failures.append(Failure(
                "EDX-SIG-REVOCATION-UNKNOWN",
                f"the newest CRL of {issuer.subject.rfc4514_string()!r} expired on "
                f"{crl.next_update_utc:%Y-%m-%d %H:%M}Z"))
            return "not checked (stale CRL)", this_update
        return "good", this_update


def _link(cert: x509.Certificate, anchor: bool, status: str,
          this_update: str | None = None) -> ChainLink:
    return ChainLink(cert.subject.rfc4514_string(), f"{cert.serial_number:x}", fingerprint(cert),
                     cert.not_valid_before_utc.isoformat(), cert.not_valid_after_utc.isoformat(),
                     anchor, status, this_update)


def _check_ca(cert: x509.Certificate, failures: list[Failure]) -> None:
    """An issuing (non-anchor) certificate must be a v3 CA allowed to sign certificates."""
    name = cert.subject.rfc4514_string()
    if cert.version is not x509.Version.v3:
        failures.append(Failure("EDX-SIG-CHAIN", f"intermediate {name!r} is not an X.509 v3 CA"))
        return
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        failures.append(Failure("EDX-SIG-CHAIN", f"{name!r} issues certificates but is not a CA"))
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            failures.append(Failure("EDX-SIG-CHAIN", f"{name!r} may not sign certificates"))
    except x509.ExtensionNotFound:
        pass


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate, allow_legacy: bool,
               failures: list[Failure]) -> bool:
    algorithm = cert.signature_hash_algorithm
    if isinstance(algorithm, _LEGACY_CERT_HASHES) and not allow_legacy:
        failures.append(Failure(
            "EDX-SIG-ALGORITHM",
            f"certificate {cert.subject.rfc4514_string()!r} is signed with "
            f"{algorithm.name.upper()} (only with the legacy flag)"))
        return False
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       algorithm)  # type: ignore[arg-type]
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(algorithm))  # type: ignore[arg-type]
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, TypeError, ValueError):
        return False
    return True


def _read_certs(sources: Iterable[Path | str]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in _files(sources, (".pem", ".crt", ".cer", ".der")):
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            certs += x509.load_pem_x509_certificates(data)
        else:
            certs.append(x509.load_der_x509_certificate(data))
    return certs


def _read_crls(sources: Iterable[Path | str]) -> list[x509.CertificateRevocationList]:
    crls: list[x509.CertificateRevocationList] = []
    for path in _files(sources, (".pem", ".crl", ".der")):
        data = path.read_bytes()
        if b"-----BEGIN X509 CRL-----" in data:
            crls.append(x509.load_pem_x509_crl(data))
        elif b"-----BEGIN" not in data:
            crls.append(x509.load_der_x509_crl(data))
    return crls


def _files(sources: Iterable[Path | str], suffixes: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes
                            and not p.name.endswith(".key"))
        else:
            files.append(path)
    return files


def public_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
