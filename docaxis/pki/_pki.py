"""A development/test PKI shaped like the government's dedicated-signature CA.

Layout under the chosen folder (``keys/`` by default)::

    root/ca.pem, root/ca.key                national root CA (self-signed)
    ca-<tier>/ca.pem, ca-<tier>/ca.key      one intermediate CA per tier
    agencies/<code>/cert.pem, key.pem, chain.pem
    nodes/<node id>/cert.pem, key.pem, chain.pem
    crl/<ca name>.crl.pem                   one CRL per CA
    index.json                              every issued certificate, revocations

Private keys are written with mode 0600 and never committed (``keys/.gitignore``).
This module only *issues*; trust decisions belong to :mod:`docaxis.dsig`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from docaxis._errors import DocaxisError
from docaxis.dsig._names import agency_uri, node_uri
from docaxis.identifiers import AgencyCode, InvalidAgencyCode

KeyType = Literal["rsa2048", "rsa3072", "ec-p256"]
KEY_TYPES: tuple[KeyType, ...] = ("rsa2048", "rsa3072", "ec-p256")
TIERS: tuple[str, ...] = ("central", "province", "district", "commune")
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class PKIError(DocaxisError):
    default_code = "PKI-ERROR"


def generate_key(key_type: KeyType) -> PrivateKey:
    """A new private key of the given type."""
    if key_type == "rsa2048":
        return rsa.generate_private_key(65537, 2048)
    if key_type == "rsa3072":
        return rsa.generate_private_key(65537, 3072)
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise PKIError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")


def _write_private(path: Path, key: PrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, *certs: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))


def load_private_key(path: Path | str) -> PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path}: only RSA and EC keys are supported")
    return key


def load_certificates(path: Path | str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


@dataclass
class IssuedCertificate:
    """One row of ``index.json``."""

    serial: str
    kind: Literal["root", "ca", "agency", "node"]
    name: str
    subject: str
    issuer: str
    not_before: str
    not_after: str
    key_type: str
    path: str
    agency_code: str | None = None
    tier: str | None = None
    revoked_at: str | None = None
    revocation_reason: str | None = None


@dataclass
class DevPKI:
    """A dev/test PKI in a folder. Create with :meth:`init`, open with :meth:`open`.

    Examples
    --------
    >>> pki = DevPKI.init(tmp_path)  # doctest: +SKIP
    >>> pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central")  # doctest: +SKIP
    """

    folder: Path
    index: list[IssuedCertificate] = field(default_factory=list)

    # -- creation ------------------------------------------------------------------
    @classmethod
    def init(cls, folder: Path | str, *, key_type: KeyType = "rsa2048",
             now: dt.datetime | None = None, force: bool = False) -> DevPKI:
        """Create the root CA, one intermediate per tier, and empty CRLs."""
        folder = Path(folder)
        if (folder / "root" / "ca.pem").exists() and not force:
            raise PKIError(f"{folder} already holds a PKI (use force to replace it)")
        now = now or dt.datetime.now(dt.UTC)
        pki = cls(folder)
        root_key = generate_key(key_type)
        root_name = _name("Vietnam Government Root CA (docaxis dev)", "root")
        root = _ca_certificate(root_name, root_key.public_key(), root_name, root_key, now,
                               years=20, path_length=1)
        _write_private(folder / "root" / "ca.key", root_key)
        _write_cert(folder / "root" / "ca.pem", root)
        pki._record(root, "root", "root", key_type, "root/ca.pem")
        for tier in TIERS:
            key = generate_key(key_type)
            name = _name(f"Government Signing CA — {tier} tier (docaxis dev)", tier)
            cert = _ca_certificate(name, key.public_key(), root_name, root_key, now, years=10,
                                   path_length=0)
            _write_private(folder / f"ca-{tier}" / "ca.key", key)
            _write_cert(folder / f"ca-{tier}" / "ca.pem", cert)
            pki._record(cert, "ca", f"ca-{tier}", key_type, f"ca-{tier}/ca.pem", tier=tier)
        pki._save()
        for ca in ["root", *[f"ca-{t}" for t in TIERS]]:
            pki.write_crl(ca, now=now)
        return pki

    @classmethod
    def open(cls, folder: Path | str) -> DevPKI:
        folder = Path(folder)
        index_path = folder / "index.json"
        if not index_path.exists():
            raise PKIError(f"{folder} holds no PKI (run: docaxis keys init --dir {folder})")
        rows = json.loads(index_path.read_text(encoding="utf-8"))
        return cls(folder, [IssuedCertificate(**row) for row in rows])

    # -- issuing -------------------------------------------------------------------
    def issue_agency(self, code: str, name: str, *, tier: str = "province",
                     key_type: KeyType = "rsa2048", days: int = 730,
                     now: dt.datetime | None = None, key_usage: str = "signing",
                     ) -> IssuedCertificate:
        """Issue a signing certificate for an agency, its code bound in the SAN URI.

        ``key_usage="encipherment"`` issues a certificate *without* digitalSignature and
        nonRepudiation (for tests of the verifier's KeyUsage check).
        """
        try:
            AgencyCode.parse(code)
        except InvalidAgencyCode as exc:
            raise PKIError(exc.message, code=exc.code) from None
        folder = f"agencies/{code}"
        extra = [x509.NameAttribute(NameOID.USER_ID, code)]
        return self._issue_leaf(kind="agency", label=code, common_name=name, tier=tier,
                                key_type=key_type, days=days, now=now, folder=folder,
                                uri=agency_uri(code), extra=extra, key_usage=key_usage,
                                agency_code=code)

    def issue_node(self, node_id: str, *, tier: str = "province", key_type: KeyType = "rsa2048",
                   days: int = 730, now: dt.datetime | None = None,
                   operator: str | None = None) -> IssuedCertificate:
        """Issue a certificate for an axis node.

        ``operator``: the agency that runs the node, bound in the certificate too (a second
        SAN URI): the node then signs, as that agency, the edXML status 02 that tells a
        sending agency its package was refused at the node.
        """
        if operator is not None:
            try:
                AgencyCode.parse(operator)
            except InvalidAgencyCode as exc:
                raise PKIError(exc.message, code=exc.code) from None
        return self._issue_leaf(kind="node", label=node_id, common_name=f"docaxis node {node_id}",
                                tier=tier, key_type=key_type, days=days, now=now,
                                folder=f"nodes/{node_id}", uri=node_uri(node_id), extra=[],
                                key_usage="signing", agency_code=operator,
                                also=(agency_uri(operator),) if operator else ())

    def _issue_leaf(self, *, kind: Literal["agency", "node"], label: str, common_name: str,
                    tier: str, key_type: KeyType, days: int, now: dt.datetime | None,
                    folder: str, uri: str, extra: list[x509.NameAttribute[Any]], key_usage: str,
                    agency_code: str | None, also: tuple[str, ...] = ()) -> IssuedCertificate:
        if tier not in TIERS:
            raise PKIError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
        now = now or dt.datetime.now(dt.UTC)
        ca_key = load_private_key(self.folder / f"ca-{tier}" / "ca.key")
        ca_cert = load_certificates(self.folder / f"ca-{tier}" / "ca.pem")[0]
        root_cert = load_certificates(self.folder / "root" / "ca.pem")[0]
        key = generate_key(key_type)
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
            *extra,
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ])
        signing = key_usage == "signing"
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=signing, content_commitment=signing,
                key_encipherment=not signing, data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(u) for u in (uri, *also)]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
        )
        cert = builder.sign(ca_key, _hash_for(ca_key))
        _write_private(self.folder / folder / "key.pem", key)
        _write_cert(self.folder / folder / "cert.pem", cert)
        _write_cert(self.folder / folder / "chain.pem", cert, ca_cert, root_cert)
        row = self._record(cert, kind, label, key_type, f"{folder}/cert.pem", tier=tier,
                           agency_code=agency_code)
        self._save()
        return row

    # -- revocation ----------------------------------------------------------------
    def revoke(self, serial_or_name: str, *, reason: str = "keyCompromise",
               now: dt.datetime | None = None) -> IssuedCertificate:
        """Mark a certificate revoked and reissue its CA's CRL."""
        now = now or dt.datetime.now(dt.UTC)
        matches = [r for r in self.index if r.kind in ("agency", "node")
                   and serial_or_name in (r.serial, r.name) and r.revoked_at is None]
        if not matches:
            raise PKIError(f"no unrevoked agency/node certificate {serial_or_name!r}")
        row = matches[-1]
        row.revoked_at = now.isoformat()
        row.revocation_reason = reason
        self._save()
        self.write_crl(f"ca-{row.tier}", now=now)
        return row

    def write_crl(self, ca: str, *, now: dt.datetime | None = None, days: int = 7) -> Path:
        """(Re)issue the CRL of ``ca`` (``root`` or ``ca-<tier>``) from the index."""
        now = now or dt.datetime.now(dt.UTC)
        ca_dir = "root" if ca == "root" else ca
        key = load_private_key(self.folder / ca_dir / "ca.key")
        cert = load_certificates(self.folder / ca_dir / "ca.pem")[0]
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(cert.subject)
                   .last_update(now - dt.timedelta(minutes=1))
                   .next_update(now + dt.timedelta(days=days))
                   # RFC 5280 §5.2.3: a CRL carries a number that grows with each issue
                   # (microseconds since the epoch: monotonic across re-issues)
                   .add_extension(x509.CRLNumber(int(now.timestamp() * 1_000_000)),
                                  critical=False))
        issuer = cert.subject.rfc4514_string()
        for row in self.index:
            if row.issuer == issuer and row.revoked_at:
                revoked = (x509.RevokedCertificateBuilder()
                           .serial_number(int(row.serial, 16))
                           .revocation_date(dt.datetime.fromisoformat(row.revoked_at))
                           .build())
                builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(key, _hash_for(key))
        path = self.folder / "crl" / f"{ca}.crl.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path

    def write_all_crls(self, *, now: dt.datetime | None = None) -> list[Path]:
        return [self.write_crl(ca, now=now) for ca in ["root", *[f"ca-{t}" for t in TIERS]]]

    # -- paths ---------------------------------------------------------------------
    @property
    def root_path(self) -> Path:
        return self.folder / "root" / "ca.pem"

    def ca_path(self, tier: str) -> Path:
        return self.folder / f"ca-{tier}" / "ca.pem"

    @property
    def crl_folder(self) -> Path:
        return self.folder / "crl"

    def agency_paths(self, code: str) -> tuple[Path, Path, Path]:
        """(key, certificate, chain) of an agency."""
        base = self.folder / "agencies" / code
        return base / "key.pem", base / "cert.pem", base / "chain.pem"

    # -- bookkeeping ---------------------------------------------------------------
    def _record(self, cert: x509.Certificate, kind: str, name: str, key_type: str, path: str,
                *, tier: str | None = None, agency_code: str | None = None) -> IssuedCertificate:
        row = IssuedCertificate(
            serial=f"{cert.serial_number:x}", kind=kind, name=name,  # type: ignore[arg-type]
            subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
            not_before=cert.not_valid_before_utc.isoformat(),
            not_after=cert.not_valid_after_utc.isoformat(), key_type=key_type, path=path,
            agency_code=agency_code, tier=tier)
        self.index.append(row)
        return row

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "index.json").write_text(
            json.dumps([asdict(r) for r in self.index], ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8")


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "docaxis development PKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _hash_for(key: PrivateKey) -> hashes.SHA256:
    return hashes.SHA256()


def _ca_certificate(subject: x509.Name, public_key: object, issuer: x509.Name,
                    issuer_key: PrivateKey, now: dt.datetime, *, years: int,
                    path_length: int) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, _hash_for(issuer_key))
