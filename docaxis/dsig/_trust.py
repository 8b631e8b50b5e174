"""Trust anchors, certificate chains and CRL revocation checking.

A :class:`TrustStore` is loaded once (anchors only from configured files — never a web
bundle) and reused: signature checks of certificate and CRL links are memoised by
fingerprint, so verifying the thousandth package of an agency costs dictionary lookups,
while validity dates and revocation are judged at each verification time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from docaxis.dsig._errors import Failure
from docaxis.dsig._names import agency_code_of

_LEGACY_CERT_HASHES = (hashes.SHA1, hashes.MD5)
_log = logging.getLogger("docaxis.dsig")


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


@dataclass(frozen=True, eq=False)
class CertInfo:
    """A certificate with what verification needs from it, extracted once."""

    cert: x509.Certificate
    fingerprint: str
    subject: x509.Name
    issuer: x509.Name
    subject_text: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    agency_code: str | None
    signing_usage: bool | None  # None: no KeyUsage extension at all

    @classmethod
    def of(cls, cert: x509.Certificate, der: bytes | None = None) -> CertInfo:
        der = der if der is not None else cert.public_bytes(serialization.Encoding.DER)
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            signing: bool | None = usage.digital_signature or usage.content_commitment
        except x509.ExtensionNotFound:
            signing = None
        return cls(cert, hashlib.sha256(der).hexdigest(), cert.subject, cert.issuer,
                   cert.subject.rfc4514_string(), cert.serial_number,
                   cert.not_valid_before_utc, cert.not_valid_after_utc, agency_code_of(cert),
                   signing)


@dataclass(frozen=True)
class _Plan:
    """The time-independent part of a chain: the path found and what was wrong with it."""

    path: tuple[CertInfo, ...]
    anchored: bool
    failures: tuple[Failure, ...]


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
    _store_infos: list[CertInfo] = field(default_factory=list, repr=False)
    _infos: dict[bytes, CertInfo] = field(default_factory=dict, repr=False)
    _plans: dict[tuple[object, ...], _Plan] = field(default_factory=dict, repr=False)
    _crl_of: dict[str, x509.CertificateRevocationList | None] = field(default_factory=dict,
                                                                      repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: where the CRLs were read from (files or folders), for :meth:`refresh_crls`
    crl_sources: tuple[Path, ...] = ()
    #: how often (seconds) :meth:`refresh_crls` looks at the CRL files for a change; a
    #: changed file set is read at once, an unchanged one again every ``crl_reload``
    crl_check: float = 10.0
    crl_reload: float = 300.0
    #: a CRL past its nextUpdate is accepted this long (reported as "stale, within
    #: grace"); beyond it, never "good": ``EDX-SIG-CRL-STALE``
    crl_grace: dt.timedelta = dt.timedelta(0)
    _crl_stamp: tuple[tuple[str, int, int], ...] = field(default=(), repr=False)
    _crl_checked: float = field(default=0.0, repr=False)
    _crl_loaded: float = field(default=0.0, repr=False)
    #: when the CRLs in use were read (ISO time) and how many times they were re-read
    crls_read_at: str = field(default="", repr=False)
    crl_reloads: int = field(default=0, repr=False)

    def describe(self) -> dict[str, Any]:
        """The trust inputs a verification used, for an auditor's report: each anchor's and
        intermediate's subject and SHA-256 fingerprint, each CRL's issuer, number,
        thisUpdate and nextUpdate, and when the CRLs were read."""
        def certificate(cert: x509.Certificate) -> dict[str, str]:
            info = CertInfo.of(cert)
            return {"subject": info.subject_text, "sha256": info.fingerprint}

        def crl(revocations: x509.CertificateRevocationList) -> dict[str, Any]:
            try:
                number: int | None = revocations.extensions.get_extension_for_class(
                    x509.CRLNumber).value.crl_number
            except x509.ExtensionNotFound:
                number = None
            next_update = revocations.next_update_utc
            return {"issuer": revocations.issuer.rfc4514_string(), "number": number,
                    "this_update": revocations.last_update_utc.isoformat(),
                    "next_update": next_update.isoformat() if next_update else None}

        return {"anchors": [certificate(c) for c in self.anchors],
                "intermediates": [certificate(c) for c in self.intermediates],
                "crls": [crl(c) for c in self.crls], "crls_read_at": self.crls_read_at or None}

    def __post_init__(self) -> None:
        anchors = [CertInfo.of(c) for c in self.anchors]
        self._anchor_fps = {info.fingerprint for info in anchors}
        self._store_infos = [*(CertInfo.of(c) for c in self.intermediates), *anchors]
        now = time.monotonic()
        self._crl_checked = self._crl_loaded = now
        self._crl_stamp = _stamp(self.crl_sources)
        self.crls_read_at = dt.datetime.now(dt.UTC).isoformat()

    @classmethod
    def load(cls, anchors: Iterable[Path | str], *, intermediates: Iterable[Path | str] = (),
             crls: Iterable[Path | str] = (), crl_check: float = 10.0,
             crl_reload: float = 300.0,
             crl_grace: dt.timedelta = dt.timedelta(0)) -> TrustStore:
        """Read PEM/DER certificates (files or folders) and CRLs (files or folders).

        Parameters
        ----------
        crl_check, crl_reload:
            Seconds between looks at the CRL files for a change (a change is read at
            once) and between unconditional re-reads; see :meth:`refresh_crls`.
        crl_grace:
            How long past its nextUpdate a CRL still counts (say so in the report).
        """
        sources = tuple(Path(p) for p in crls)
        return cls(_read_certs(anchors), _read_certs(intermediates), _read_crls(sources),
                   crl_sources=sources, crl_check=crl_check, crl_reload=crl_reload,
                   crl_grace=crl_grace)

    def refresh_crls(self, *, force: bool = False) -> bool:
        """Re-read the CRLs if their files changed (looked at every ``crl_check`` s) or
        every ``crl_reload`` s; returns whether they were re-read. Cheap when nothing is
        due (a clock read), so verification calls it every time: ``docaxis keys revoke``
        reaches a running node within ``crl_check`` seconds, without a restart.

        A CRL file that cannot be read keeps the CRLs in use (and raises nothing): the
        failure is logged and retried at the next check.
        """
        if not self.crl_sources:
            return False
        now = time.monotonic()
        if not force and now - self._crl_checked < self.crl_check:
            return False
        self._crl_checked = now
        stamp = _stamp(self.crl_sources)
        if not force and stamp == self._crl_stamp and now - self._crl_loaded < self.crl_reload:
            return False
        try:
            crls = _read_crls(self.crl_sources)
        except (OSError, ValueError) as exc:
            _log.warning("crl.reload_failed", extra={"code": "EDX-SIG-CRL-READ",
                                                      "error": str(exc)})
            return False
        changed = stamp != self._crl_stamp
        with self._lock:
            self.crls, self._crl_of = crls, {}
            self._crl_stamp, self._crl_loaded = stamp, now
            self.crls_read_at = dt.datetime.now(dt.UTC).isoformat()
            self.crl_reloads += 1
        _log.info("crl.reloaded", extra={"crls": len(crls), "changed": changed})
        return True

    def info(self, der: bytes) -> CertInfo:
        """Parse a DER certificate once; later calls with the same bytes are lookups.

        Raises
        ------
        ValueError
            If the bytes are not a certificate.
        """
        found = self._infos.get(der)
        if found is None:
            try:
                cert = x509.load_der_x509_certificate(der)
                found = CertInfo.of(cert, der)
                cert.public_key()  # an unreadable key is an unreadable certificate
            except (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
                    x509.UnsupportedGeneralNameType) as exc:
                raise ValueError(f"unreadable certificate: {exc}") from None
            with self._lock:
                if len(self._infos) > 10_000:
                    self._infos.clear()
                self._infos[der] = found
        return found

    def is_anchor(self, info: CertInfo) -> bool:
        return info.fingerprint in self._anchor_fps

    def build_chain(
        self, leaf: CertInfo, untrusted: list[CertInfo], *,
        at: dt.datetime, allow_legacy: bool, require_revocation: bool,
        rfc5280: bool = True,
    ) -> tuple[list[ChainLink], list[Failure]]:
        """Chain ``leaf`` to an anchor; return the links and every failure met.

        The path and its signatures are worked out once per distinct certificate set and
        remembered; validity at ``at`` and revocation are judged on every call.
        """
        self.refresh_crls()
        key = (leaf.fingerprint, tuple(u.fingerprint for u in untrusted), allow_legacy, rfc5280)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(leaf, untrusted, allow_legacy, rfc5280)
            with self._lock:
                if len(self._plans) > 10_000:
                    self._plans.clear()
                self._plans[key] = plan
        failures = list(plan.failures)
        links: list[ChainLink] = []
        path = plan.path
        for index, info in enumerate(path):
            anchor = plan.anchored and index == len(path) - 1
            if not info.not_before <= at <= info.not_after:
                what = "trust anchor" if anchor else "certificate"
                failures.append(Failure(
                    "EDX-SIG-EXPIRED",
                    f"{what} {info.subject_text!r} is not valid at {at:%Y-%m-%d %H:%M}Z "
                    f"(valid {info.not_before:%Y-%m-%d} – {info.not_after:%Y-%m-%d})"))
            if anchor:
                links.append(_link(info, True, "anchor"))
            elif index + 1 < len(path):
                status, this_update = self._revocation(info, path[index + 1], at,
                                                       require_revocation, failures)
                links.append(_link(info, False, status, this_update))
            else:
                links.append(_link(info, False, "not checked (no issuer)"))
        return links, failures

    def _plan(self, leaf: CertInfo, untrusted: list[CertInfo], allow_legacy: bool,
              rfc5280: bool) -> _Plan:
        failures: list[Failure] = []
        pool = [*untrusted, *self._store_infos]
        path = [leaf]
        info = leaf
        seen = {leaf.fingerprint}
        for _depth in range(8):
            if self.is_anchor(info):
                if rfc5280 and not failures:
                    failures += _rfc5280(tuple(path), allow_legacy)
                return _Plan(tuple(path), True, tuple(failures))
            issuer = (None if info.subject == info.issuer  # self-signed and not an anchor
                      else self._find_issuer(info, pool, allow_legacy, failures))
            if issuer is None:
                failures.append(Failure(
                    "EDX-SIG-UNTRUSTED",
                    f"no path from {info.subject_text!r} to a configured trust anchor"))
                return _Plan(tuple(path), False, tuple(failures))
            if issuer.fingerprint in seen:
                failures.append(Failure("EDX-SIG-CHAIN", "certificate chain loops"))
                return _Plan(tuple(path), False, tuple(failures))
            seen.add(issuer.fingerprint)
            if not self.is_anchor(issuer):
                _check_ca(issuer.cert, failures)
            path.append(issuer)
            info = issuer
        failures.append(Failure("EDX-SIG-CHAIN", "certificate chain is too long"))
        return _Plan(tuple(path), False, tuple(failures))

    def _find_issuer(self, info: CertInfo, pool: list[CertInfo], allow_legacy: bool,
                     failures: list[Failure]) -> CertInfo | None:
        # anchors first: a look-alike with the same subject must not shadow them
        candidates = sorted((c for c in pool if c.subject == info.issuer),
                            key=lambda c: not self.is_anchor(c))
        for candidate in candidates:
            if _signed_by(info.cert, candidate.cert, allow_legacy, failures):
                return candidate
        return None

    def _revocation(self, info: CertInfo, issuer: CertInfo, at: dt.datetime, required: bool,
                    failures: list[Failure]) -> tuple[str, str | None]:
        crl_of = self._crl_of  # one generation of CRLs for this whole check
        if issuer.fingerprint not in crl_of:
            crl_of[issuer.fingerprint] = self._best_crl(issuer)
        crl = crl_of[issuer.fingerprint]
        if crl is None:
            if required:
                failures.append(Failure(
                    "EDX-SIG-REVOCATION-UNKNOWN",
                    f"no CRL from {issuer.subject_text!r}: revocation of serial "
                    f"{info.serial:x} cannot be checked"))
            return "not checked (no CRL)", None
        this_update = crl.last_update_utc.isoformat()
        revoked = crl.get_revoked_certificate_by_serial_number(info.serial)
        if revoked is not None and revoked.revocation_date_utc <= at:
            failures.append(Failure(
                "EDX-SIG-REVOKED",
                f"certificate serial {info.serial:x} was revoked on "
                f"{revoked.revocation_date_utc:%Y-%m-%d %H:%M}Z (CRL of "
                f"{crl.last_update_utc:%Y-%m-%d %H:%M}Z)"))
            return "revoked", this_update
        next_update = crl.next_update_utc
        if next_update is not None and next_update < at:
            if at <= next_update + self.crl_grace:
                return (f"good by a stale CRL (past nextUpdate {next_update:%Y-%m-%d %H:%M}Z, "
                        f"within the configured grace of {self.crl_grace})"), this_update
            if required:
                failures.append(Failure(
                    "EDX-SIG-CRL-STALE",
                    f"the newest CRL of {issuer.subject_text!r} was due to be replaced on "
                    f"{next_update:%Y-%m-%d %H:%M}Z: revocation cannot be judged"))
            return "not checked (stale CRL)", this_update
        return "good", this_update

    def _best_crl(self, issuer: CertInfo) -> x509.CertificateRevocationList | None:
        usable = []
        for crl in self.crls:
            if crl.issuer != issuer.subject:
                continue
            try:
                if crl.is_signature_valid(issuer.cert.public_key()):  # type: ignore[arg-type]
                    usable.append(crl)
            except (TypeError, UnsupportedAlgorithm):
                continue
        return max(usable, key=lambda c: c.last_update_utc) if usable else None


#: extended key usages a signing certificate may carry (if it has the extension at all):
#: document signing (RFC 9336 and Microsoft's), e-mail protection, client authentication
#: (Vietnamese token certificates carry these), any
SIGNING_EKUS: frozenset[x509.ObjectIdentifier] = frozenset({
    x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),        # id-kp-documentSigning
    x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"),    # Microsoft document signing
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ExtendedKeyUsageOID.CLIENT_AUTH,
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
})
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def _leaf_basic_constraints(_policy: object, _cert: x509.Certificate,
                            ext: x509.BasicConstraints | None) -> None:
    if ext is not None and ext.ca:
        raise ValueError("a signing (end-entity) certificate must not be a CA")


def _leaf_eku(_policy: object, _cert: x509.Certificate,
              ext: x509.ExtendedKeyUsage | None) -> None:
    if ext is not None and not SIGNING_EKUS.intersection(ext):
        raise ValueError("its extended key usage allows no document signing "
                         f"({', '.join(oid.dotted_string for oid in ext)})")


def _rfc5280(path: tuple[CertInfo, ...], allow_legacy: bool) -> list[Failure]:
    """RFC 5280 path validation of a found path, by cryptography's maintained validator:
    basicConstraints and pathLen, keyCertSign, NameConstraints, unknown critical
    extensions, signature algorithms; plus our end-entity policy (not a CA; an EKU, if
    any, that allows document signing) and key sizes (RSA ≥ 2048; P-256/384/521).

    The check is time-independent (it runs at an instant where every certificate of the
    path is valid), so its outcome is cached with the path; validity at the verification
    time and revocation are judged on every verification.
    """
    failures: list[Failure] = []
    for info in path:
        try:
            key = info.cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            failures.append(Failure("EDX-SIG-CERTIFICATE", f"{info.subject_text!r}: "
                                    "unreadable public key"))
            continue
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            failures.append(Failure("EDX-SIG-CHAIN", f"{info.subject_text!r} has a "
                                    f"{key.key_size}-bit RSA key (at least 2048)"))
        elif isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, _CURVES):
            failures.append(Failure("EDX-SIG-CHAIN", f"{info.subject_text!r} uses curve "
                                    f"{key.curve.name} (only P-256, P-384, P-521)"))
        elif not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            failures.append(Failure("EDX-SIG-CHAIN", f"{info.subject_text!r}: only RSA and "
                                    "EC keys sign"))
    if failures:
        return failures
    if allow_legacy and any(_legacy_signed(info.cert) for info in path[:-1]):
        return []  # SHA-1 chains (legacy flag): the maintained validator refuses them
    start = max(info.not_before for info in path)
    if start > min(info.not_after for info in path):
        return []  # never valid all at once: reported as expired at every verification
    ee_policy = (verification.ExtensionPolicy.permit_all()
                 .may_be_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC,
                                 _leaf_basic_constraints)
                 .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC,
                                 _leaf_eku))
    verifier = (verification.PolicyBuilder()
                .store(verification.Store([path[-1].cert]))
                .time(start)
                .max_chain_depth(8)
                .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=ee_policy)
                .build_client_verifier())
    try:
        verifier.verify(path[0].cert, [info.cert for info in path[1:-1]])
    except verification.VerificationError as exc:
        failures.append(Failure("EDX-SIG-CHAIN", f"the certificate path breaks RFC 5280: "
                                f"{exc}"))
    return failures


def _legacy_signed(cert: x509.Certificate) -> bool:
    try:
        return isinstance(cert.signature_hash_algorithm, _LEGACY_CERT_HASHES)
    except UnsupportedAlgorithm:
        return False


def _stamp(sources: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    """What identifies the current CRL files: (path, size, mtime) of each."""
    stamp = []
    for path in _files(sources, (".pem", ".crl", ".der")):
        try:
            info = path.stat()
        except OSError:
            continue
        stamp.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(stamp)


def _link(info: CertInfo, anchor: bool, status: str,
          this_update: str | None = None) -> ChainLink:
    return ChainLink(info.subject_text, f"{info.serial:x}", info.fingerprint,
                     info.not_before.isoformat(), info.not_after.isoformat(), anchor, status,
                     this_update)


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
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        failures.append(Failure(
            "EDX-SIG-ALGORITHM",
            f"certificate {cert.subject.rfc4514_string()!r} is signed with an unknown "
            f"algorithm (OID {cert.signature_algorithm_oid.dotted_string})"))
        return False
    if isinstance(algorithm, _LEGACY_CERT_HASHES) and not allow_legacy:
        failures.append(Failure(
            "EDX-SIG-ALGORITHM",
            f"certificate {cert.subject.rfc4514_string()!r} is signed with "
            f"{algorithm.name.upper()} (only with the legacy flag)"))
        return False
    try:
        key = issuer.public_key()
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

