"""Signed statements: what a node asserts to other nodes (hop receipts), signed with its
node certificate and verified against the trust anchors before anyone records it.

A statement is a small JSON body (bytes, exactly as signed) with a detached signature —
RSA-SHA256 (PKCS#1 v1.5) or ECDSA-SHA256 (DER) by the key's type — and the signer's
certificate chain. Verification builds the chain with the same :class:`TrustStore`,
revocation and KeyUsage rules as package signatures, and returns the node id the
certificate binds (``urn:vn-gov:axis-node:<id>`` in its subjectAltName).

Examples
--------
>>> signer = StatementSigner.from_files("keys/nodes/hanoi/key.pem",
...                                     "keys/nodes/hanoi/chain.pem")  # doctest: +SKIP
>>> statement = signer.sign(b'{"receipts": []}')  # doctest: +SKIP
>>> verify_statement(statement, store).node  # doctest: +SKIP
'hanoi'
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from docaxis.dsig._errors import Failure, SignatureError
from docaxis.dsig._names import agency_code_of, node_id_of
from docaxis.dsig._sign import Signer
from docaxis.dsig._trust import TrustStore

#: a statement carries at most this many certificates and this many body bytes
MAX_CHAIN = 10
MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class SignedStatement:
    """A body, its detached signature and the signer's chain (DER, leaf first)."""

    body: bytes
    signature: bytes
    chain: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        encode = base64.b64encode
        return {"body": encode(self.body).decode(), "signature": encode(self.signature).decode(),
                "chain": [encode(c).decode() for c in self.chain]}

    @classmethod
    def from_json(cls, raw: object) -> SignedStatement:
        """Raises ``ValueError`` when ``raw`` is not a statement's JSON form."""
        if not isinstance(raw, dict) or not isinstance(raw.get("chain"), list):
            raise ValueError("a signed statement is an object with body, signature, chain")
        chain = raw["chain"]
        if not 1 <= len(chain) <= MAX_CHAIN:
            raise ValueError(f"a statement carries 1 to {MAX_CHAIN} certificates")
        try:
            body = base64.b64decode(str(raw["body"]), validate=True)
            signature = base64.b64decode(str(raw["signature"]), validate=True)
            der = tuple(base64.b64decode(str(c), validate=True) for c in chain)
        except (KeyError, binascii.Error) as exc:
            raise ValueError(f"a statement's fields are not base64: {exc}") from None
        if len(body) > MAX_BODY:
            raise ValueError(f"a statement's body is over {MAX_BODY} bytes")
        return cls(body, signature, der)


@dataclass(frozen=True)
class StatementCheck:
    """The outcome of :func:`verify_statement`: the bound node id and every failure."""

    node: str | None
    failures: tuple[Failure, ...]

    @property
    def valid(self) -> bool:
        return not self.failures and self.node is not None


class StatementSigner:
    """Signs statements with a node's key (loaded once).

    Parameters
    ----------
    key:
        RSA (2048+) or EC private key of the node certificate.
    chain:
        The node certificate first, then its issuing CAs.

    Raises
    ------
    SignatureError
        When the key does not belong to the certificate or is not usable.
    """

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 chain: list[x509.Certificate]) -> None:
        if not chain:
            raise SignatureError("the node's certificate is required")
        if chain[0].public_key() != key.public_key():
            raise SignatureError("the private key does not belong to the first certificate")
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
            raise SignatureError("RSA keys must have at least 2048 bits")
        self._key = key
        self.node = node_id_of(chain[0])
        #: the agency that runs the node, when its certificate binds one too: the node
        #: signs, as that agency, the edXML status 02 of a package it refuses
        self.operator = agency_code_of(chain[0])
        self._chain = tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)
        self._certificates = list(chain)
        self._package_signer: Signer | None = None

    def package_signer(self) -> Signer | None:
        """An XMLDSig signer of edXML packages with the node's key and chain, for its
        operator agency (None when the certificate binds no agency)."""
        if self.operator is None:
            return None
        if self._package_signer is None:
            self._package_signer = Signer(self._key, self._certificates)
        return self._package_signer

    @classmethod
    def from_files(cls, key_path: Path | str, cert_path: Path | str) -> StatementSigner:
        """Load a PEM private key and its PEM certificate chain."""
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SignatureError("only RSA and EC keys can sign")
        return cls(key, x509.load_pem_x509_certificates(Path(cert_path).read_bytes()))

    def sign(self, body: bytes) -> SignedStatement:
        if isinstance(self._key, rsa.RSAPrivateKey):
            signature = self._key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = self._key.sign(body, ec.ECDSA(hashes.SHA256()))
        return SignedStatement(body, signature, self._chain)


def verify_statement(statement: SignedStatement, trust: TrustStore, *,
                     at: dt.datetime | None = None,
                     require_revocation: bool = True) -> StatementCheck:
    """Check a statement's chain (anchors, validity, revocation, KeyUsage) and signature;
    return the node id its certificate binds."""
    failures: list[Failure] = []
    try:
        infos = [trust.info(der) for der in statement.chain]
    except ValueError as exc:
        return StatementCheck(None, (Failure("EDX-SIG-CERTIFICATE", str(exc)),))
    leaf = infos[0]
    at = at or dt.datetime.now(dt.UTC)
    _chain, chain_failures = trust.build_chain(leaf, infos, at=at, allow_legacy=False,
                                               require_revocation=require_revocation)
    failures += chain_failures
    if not leaf.signing_usage:
        failures.append(Failure("EDX-SIG-KEY-USAGE", "the node certificate may not sign"))
    try:
        key = leaf.cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(statement.signature, statement.body, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(statement.signature, statement.body, ec.ECDSA(hashes.SHA256()))
        else:
            failures.append(Failure("EDX-SIG-ALGORITHM", "the node key is neither RSA nor EC"))
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        failures.append(Failure("EDX-SIG-VALUE", "the statement's signature does not verify"))
    node = node_id_of(leaf.cert)
    if node is None:
        failures.append(Failure("EDX-SIG-SIGNER", "the certificate names no axis node"))
    return StatementCheck(node, tuple(failures))


def sign_detached(signer: StatementSigner, data: bytes) -> bytes:
    """A CMS (PKCS #7) detached signature of ``data`` (DER) with the node's key, its chain
    embedded: how a node signs an evidence container's manifest (ETSI ASiC-E
    ``META-INF/signature.p7s``)."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(
        signer._certificates[0], signer._key, hashes.SHA256())
    for cert in signer._certificates[1:]:
        builder = builder.add_certificate(cert)
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature,
                                                     pkcs7.PKCS7Options.Binary])


def verify_detached(signature: bytes, data: bytes, trust: TrustStore, *,
                    at: dt.datetime | None = None,
                    require_revocation: bool = True) -> StatementCheck:
    """Check a CMS detached signature made by :func:`sign_detached`: one signer, SHA-256,
    its signed attributes' message digest equal to ``data``'s, the signature over them,
    and the signer's chain (anchors, validity at ``at``, revocation, KeyUsage) — the rules
    of :func:`verify_statement`, which does the signature and chain part."""
    import hashlib

    from asn1crypto import cms  # type: ignore[import-untyped]

    def refused(message: str) -> StatementCheck:
        return StatementCheck(None, (Failure("EDX-SIG-VALUE", message),))

    try:
        info = cms.ContentInfo.load(signature, strict=True)
        if info["content_type"].native != "signed_data":
            return refused("not a CMS SignedData")
        signed = info["content"]
        signers = list(signed["signer_infos"])
        if len(signers) != 1:
            return refused(f"{len(signers)} signers, not one")
        signer = signers[0]
        if signer["digest_algorithm"]["algorithm"].native != "sha256":
            return refused("the digest is not SHA-256")
        sid = signer["sid"]
        if sid.name != "issuer_and_serial_number":
            return refused("the signer is not named by issuer and serial number")
        certificates = [c.chosen for c in signed["certificates"] or ()]
        wanted = sid.chosen
        leaf = [c for c in certificates if c.serial_number == wanted["serial_number"].native
                and c.issuer == wanted["issuer"]]
        if len(leaf) != 1 or len(certificates) > MAX_CHAIN:
            return refused("the signer's certificate is not in the signature")
        attributes = signer["signed_attrs"]
        digests = [a["values"][0].native for a in attributes
                   if a["type"].native == "message_digest"]
        if digests != [hashlib.sha256(data).digest()]:
            return refused("the signed content is not this manifest (message digest)")
        chain = (leaf[0].dump(), *(c.dump() for c in certificates if c is not leaf[0]))
        statement = SignedStatement(attributes.untag().dump(), signer["signature"].native,
                                    chain)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return refused(f"unreadable CMS signature: {exc}")
    return verify_statement(statement, trust, at=at, require_revocation=require_revocation)
