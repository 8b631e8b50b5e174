"""Verifying signatures: the strict edXML profile and a generic XMLDSig mode.

Strict profile (what a node applies to every package, SECURITY.md):

* parse once with the hardened parser; verify and read from that same tree;
* exactly one ``ds:Signature``, the last child of ``edXMLHeader``; no ``ds:Object``;
* references: exactly one ``URI=""`` (the whole package, enveloped) plus ``cid:`` references
  to attachments, each checked against the attachment's decoded bytes; nothing else;
* algorithms, transforms and digests from allowlists; SHA-1 only with ``allow_sha1``;
* the key comes from ``X509Data`` but trust only from a chain to configured anchors, with
  KeyUsage digitalSignature/nonRepudiation, validity at the verification time, and CRLs;
* the signer's certificate must name the package's ``From/OrganId`` in its dedicated field
  (or satisfy the directory's binding callback) — never the CN alone;
* a ``<Signature>`` in the edXML namespace is reported as the legacy form: present, not
  XMLDSig, not verifiable.

Because the only whole-package reference is ``URI=""`` and nothing outside the signature
may be referenced, what downstream code reads (``report.parsed``, set only when the
verdict is valid) is exactly what was signed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from docaxis import __version__
from docaxis.dsig._algorithms import (
    C14N,
    CANONICALIZATIONS,
    DIGEST_METHODS,
    DSIG,
    ENVELOPED,
    REFUSED,
    SIGNATURE_METHODS,
)
from docaxis.dsig._binding import BindingPolicy
from docaxis.dsig._c14n import canonical, detached
from docaxis.dsig._errors import Failure
from docaxis.dsig._names import node_id_of
from docaxis.dsig._trust import CertInfo, ChainLink, TrustStore
from docaxis.edxml import (
    DocumentPackage,
    ParsedPackage,
    ParseError,
    ParseLimits,
    parse,
    parse_file,
    parse_xml,
)
from docaxis.edxml._namespaces import q
from docaxis.edxml._namespaces import strip_cid as _strip_cid

Verdict = Literal["valid", "invalid", "legacy", "unsigned"]
_DS = f"{{{DSIG}}}"
_DEFAULT_C14N = CANONICALIZATIONS["http://www.w3.org/TR/2001/REC-xml-c14n-20010315"]
_ID_ATTRIBUTES = ("Id", "ID", "id")


@dataclass(frozen=True)
class VerificationPolicy:
    """What a verifier accepts. Build once; the trust store inside is reused.

    Parameters
    ----------
    trust:
        Trust anchors, intermediates and CRLs (:class:`TrustStore`).
    allow_sha1:
        Admit RSA-SHA1 / SHA-1 (legacy traffic); reports flag it.
    require_revocation:
        Fail when a certificate's revocation cannot be checked (no usable CRL).
    at:
        Verification time (default: now); certificates must be valid then.
    bind_signer:
        Strict profile: the signer must be the package's From agency.
    bindings:
        Which certificates sign for which agency (pinned fingerprints, subject rules of a
        named CA, the SAN URI): :class:`BindingPolicy`, from the directory. The default
        binds by the SAN URI ``urn:vn-gov:agency:<code>`` alone.
    """

    trust: TrustStore
    allow_sha1: bool = False
    require_revocation: bool = True
    at: dt.datetime | None = None
    bind_signer: bool = True
    bindings: BindingPolicy = field(default_factory=BindingPolicy)


@dataclass(frozen=True)
class Signer:
    """Who signed: from the verified leaf certificate."""

    agency_code: str | None
    subject: str
    serial: str
    fingerprint: str
    #: the rule that bound the signer to the package's From (strict profile)
    binding: str | None = None
    #: the axis node the certificate also names (a node signing for its operator agency:
    #: the signed status 02 of a refusal)
    node: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class VerificationReport:
    """The auditor's report on one package."""

    verdict: Verdict
    failures: tuple[Failure, ...]
    source: str | None = None
    signer: Signer | None = None
    chain: tuple[ChainLink, ...] = ()
    algorithms: dict[str, str] = field(default_factory=dict)
    covers: tuple[str, ...] = ()
    referenced: frozenset[str] = frozenset()
    verification_time: str = ""
    checked_at: str = ""
    legacy_sha1: bool = False
    parsed: ParsedPackage | None = field(default=None, repr=False, compare=False)
    package: ParsedPackage | None = field(default=None, repr=False, compare=False)
    #: the bytes judged (hashed only when asked: a relay verifying at every hop never is)
    data: bytes | None = field(default=None, repr=False, compare=False)
    #: the trust inputs the verification used
    trust: TrustStore | None = field(default=None, repr=False, compare=False)

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the exact bytes judged: what ties this report to them."""
        if self.data is None and self.package is not None and self.package.streamed is not None:
            return self.package.sha256  # read by streaming: the file's
        data = self.data if self.data is not None else (
            self.package.source if self.package is not None else None)
        return hashlib.sha256(data).hexdigest() if data is not None else None

    @property
    def document_id(self) -> str | None:
        parsed = self.package or self.parsed
        return parsed.package.document_id if parsed is not None else None

    @property
    def sender(self) -> str | None:
        """``From/OrganId`` as the package states it (bound to the signer only if valid)."""
        parsed = self.package or self.parsed
        return parsed.package.sender if parsed is not None else None

    @property
    def attachments(self) -> tuple[dict[str, Any], ...]:
        """Each attachment's SHA-256 (of the decoded bytes) and what covers it.

        Computed on first use: a relay verifying at every hop does not pay for hashing
        megabytes of attachments that the whole-package digest already covers.
        """
        if self.package is None or not isinstance(self.package.package, DocumentPackage):
            return ()
        rows = []
        for attachment in self.package.package.attachments:
            content_id = _strip_cid(attachment.content_id)
            try:
                digest = attachment.content.sha256 if attachment.content else None
                size = attachment.content.size if attachment.content else None
            except ValueError:
                digest = size = None
            covered = (f"cid:{content_id} and URI=\"\"" if content_id in self.referenced
                       else "URI=\"\" (the package)")
            rows.append({"content_id": content_id, "name": attachment.attachment_name,
                         "sha256": digest, "size": size, "covered_by": covered})
        return tuple(rows)

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    def codes(self) -> set[str]:
        return {f.code for f in self.failures}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "document_id": self.document_id,
            "from": self.sender,
            "verdict": self.verdict,
            "valid": self.valid,
            "signer": self.signer.to_dict() if self.signer else None,
            "chain": [link.to_dict() for link in self.chain],
            "algorithms": self.algorithms,
            "covers": list(self.covers),
            "attachments": list(self.attachments),
            "legacy_sha1": self.legacy_sha1,
            "verification_time": self.verification_time,
            "revocation_checked_at": self.checked_at,
            "failures": [f.to_dict() for f in self.failures],
            "docaxis_version": __version__,
            "trust": self.trust.describe() if self.trust is not None else None,
        }


class _Run:
    """State of one verification."""

    def __init__(self, policy: VerificationPolicy) -> None:
        self.policy = policy
        self.failures: list[Failure] = []
        self.algorithms: dict[str, str] = {}
        self.covers: list[str] = []
        self.referenced: set[str] = set()
        self.package: ParsedPackage | None = None
        self.legacy = False
        self.at = policy.at or dt.datetime.now(dt.UTC)
        self.bound: tuple[str, str] | None = None  # (agency, the rule that bound it)
        self.data: bytes | None = None  # the bytes judged (for the report's SHA-256)
        #: a package read by streaming: its attachment text, spliced into digests
        self.streamed: Any = None

    def fail(self, code: str, message: str) -> None:
        self.failures.append(Failure(code, message))

    def algorithm(self, table: dict[str, Any], uri: str | None, what: str) -> Any:
        if uri is None:
            self.fail("EDX-SIG-STRUCTURE", f"{what} has no Algorithm")
            return None
        if uri in REFUSED:
            self.fail("EDX-SIG-ALGORITHM", f"{what} {uri}: {REFUSED[uri]}")
            return None
        found = table.get(uri)
        if found is None:
            self.fail("EDX-SIG-ALGORITHM", f"{what} {uri} is not allowed")
            return None
        if getattr(found, "legacy", False):
            if not self.policy.allow_sha1:
                self.fail("EDX-SIG-ALGORITHM",
                          f"{what} {found.name} uses SHA-1, allowed only with the legacy flag")
                return None
            self.legacy = True
        return found


class Verifier:
    """Verifies packages under one :class:`VerificationPolicy`.

    Examples
    --------
    >>> store = TrustStore.load(["keys/root/ca.pem"], crls=["keys/crl"])  # doctest: +SKIP
    >>> verifier = Verifier(VerificationPolicy(store))  # doctest: +SKIP
    >>> report = verifier.verify(package_bytes)  # doctest: +SKIP
    >>> report.verdict, report.signer.agency_code  # doctest: +SKIP
    ('valid', '000.00.00.G22')
    """

    def __init__(self, policy: VerificationPolicy) -> None:
        self.policy = policy

    # ------------------------------------------------------------------ edXML profile
    def verify(self, data: bytes | ParsedPackage | os.PathLike[str], *,
               source: str | None = None,
               limits: ParseLimits | None = None) -> VerificationReport:
        """Verify an edXML package under the strict profile.

        ``data`` is the package's bytes, the package parsed once, or the path of a
        package file (a large one is read by streaming: :func:`docaxis.edxml.parse_file`;
        every digest is the one the bytes in memory would give)."""
        run = _Run(self.policy)
        run.data = data if isinstance(data, bytes) else None
        try:
            if isinstance(data, ParsedPackage):
                parsed = data
            elif isinstance(data, os.PathLike):
                parsed = parse_file(data, limits=limits)
            else:
                parsed = parse(data, limits=limits)
        except ParseError as exc:
            run.fail(exc.code, exc.message)
            return self._report(run, "invalid", source)
        info = parsed.signature
        if info is None:
            run.fail("EDX-SIG-MISSING", "the package is not signed")
            return self._report(run, "unsigned", source)
        if info.form == "legacy":
            run.fail("EDX-SIG-LEGACY", "signature present but not XMLDSig (legacy form: "
                     "<Signature> in the edXML namespace) — it cannot be verified")
            self._describe_legacy(info.element, run)
            return self._report(run, "legacy", source)
        if info.count != 1:
            run.fail("EDX-SIG-MULTIPLE", f"{info.count} XMLDSig signatures; exactly one is "
                     "allowed (a second signature is a wrapping vector)")
            return self._report(run, "invalid", source)
        signature = info.element
        if signature.getparent() is not parsed.locations.header or not info.is_last_in_header:
            run.fail("EDX-SIG-PLACE", "the signature must be the last child of edXMLHeader")
            return self._report(run, "invalid", source)
        attachments = _LazyAttachments(parsed)
        run.streamed = parsed.streamed
        outcome = self._check(run, parsed.root, signature, strict=True, attachments=attachments,
                              id_attribute=None)
        run.package = parsed
        if outcome is not None and self.policy.bind_signer:
            self._bind(run, outcome, parsed)
        verdict: Verdict = "invalid" if run.failures else "valid"
        return self._report(run, verdict, source, outcome,
                            parsed if verdict == "valid" else None)

    # ---------------------------------------------------------------- generic XMLDSig
    def verify_generic(self, data: bytes, *, id_attribute: str = "ID",
                       source: str | None = None) -> VerificationReport:
        """Verify any enveloped XMLDSig document (interop vectors): one signature anywhere,
        references ``URI=""`` or ``#id`` by the pinned ``id_attribute``, no binding."""
        run = _Run(self.policy)
        run.data = data
        try:
            root = _parse_generic(data)
        except ParseError as exc:
            run.fail(exc.code, exc.message)
            return self._report(run, "invalid", source)
        signatures = list(root.iter(f"{_DS}Signature"))
        if len(signatures) != 1:
            run.fail("EDX-SIG-MULTIPLE" if signatures else "EDX-SIG-MISSING",
                     f"{len(signatures)} XMLDSig signatures; exactly one is required")
            return self._report(run, "unsigned" if not signatures else "invalid", source)
        outcome = self._check(run, root, signatures[0], strict=False, attachments=None,
                              id_attribute=id_attribute)
        verdict: Verdict = "invalid" if run.failures else "valid"
        return self._report(run, verdict, source, outcome)

    # ----------------------------------------------------------------------- checks
    def _check(self, run: _Run, root: etree._Element, signature: etree._Element, *,
               strict: bool, attachments: Any,
               id_attribute: str | None) -> _Outcome | None:
        """Structure first (cheap, bounded), then certificates, then digests and the
        signature value: a hostile signature is refused before any canonicalisation."""
        children = [c for c in signature if isinstance(c.tag, str)]
        tags = [c.tag for c in children]
        if tags[:2] != [f"{_DS}SignedInfo", f"{_DS}SignatureValue"] or any(
                t not in (f"{_DS}SignedInfo", f"{_DS}SignatureValue", f"{_DS}KeyInfo")
                for t in tags) or tags.count(f"{_DS}KeyInfo") > 1:
            run.fail("EDX-SIG-STRUCTURE", "Signature must hold SignedInfo, SignatureValue and "
                     "KeyInfo only (no Object, nothing else)")
            return None
        if not _within_limits(run, signature):
            return None
        signed_info, signature_value = children[0], children[1]
        key_info = children[2] if len(children) > 2 else None
        si = [c for c in signed_info if isinstance(c.tag, str)]
        if len(si) < 3 or si[0].tag != f"{_DS}CanonicalizationMethod" or \
                si[1].tag != f"{_DS}SignatureMethod" or \
                any(c.tag != f"{_DS}Reference" for c in si[2:]):
            run.fail("EDX-SIG-STRUCTURE", "SignedInfo must hold CanonicalizationMethod, "
                     "SignatureMethod and References")
            return None
        c14n: C14N | None = run.algorithm(CANONICALIZATIONS, si[0].get("Algorithm"),
                                          "CanonicalizationMethod")
        method = run.algorithm(SIGNATURE_METHODS, si[1].get("Algorithm"), "SignatureMethod")
        if c14n is not None:
            run.algorithms["canonicalization"] = c14n.name
        if method is not None:
            run.algorithms["signature"] = method.name
        plans = [self._reference_plan(run, root, signature, reference, strict=strict,
                                      id_attribute=id_attribute) for reference in si[2:]]
        whole = sum(1 for plan in plans if plan is not None and plan.uri == "")
        if strict and whole != 1:
            run.fail("EDX-SIG-REFERENCE", f"exactly one Reference URI=\"\" is required, "
                     f"found {whole}")
        if run.failures:  # structure or algorithms wrong: no digest is worth computing
            return None
        certificates = self._certificates(run, key_info)
        if not certificates:
            return None
        leaf = _leaf_of(certificates)
        chain, chain_failures = self.policy.trust.build_chain(
            leaf, certificates, at=run.at, allow_legacy=self.policy.allow_sha1,
            require_revocation=self.policy.require_revocation,
            rfc5280=strict)  # interop vectors (generic mode) carry v1 certificates
        run.failures += chain_failures
        self._key_usage(run, leaf, strict=strict)
        for plan in plans:
            assert plan is not None
            self._digest(run, signature, plan, attachments)
        if c14n is not None and method is not None:
            try:
                signed = canonical(signed_info, c14n)
            except etree.C14NError as exc:
                run.fail("EDX-SIG-STRUCTURE", f"SignedInfo cannot be canonicalised: {exc}")
            else:
                self._signature_value(run, leaf.cert, method, signed, signature_value.text)
        return _Outcome(leaf, tuple(chain))

    def _reference_plan(self, run: _Run, root: etree._Element, signature: etree._Element,
                        reference: etree._Element, *, strict: bool,
                        id_attribute: str | None) -> _ReferencePlan | None:
        """Check one Reference's structure and algorithms (no digest yet)."""
        uri = reference.get("URI")
        parts = [c for c in reference if isinstance(c.tag, str)]
        transforms_el = parts[0] if parts and parts[0].tag == f"{_DS}Transforms" else None
        rest = parts[1:] if transforms_el is not None else parts
        if len(rest) != 2 or rest[0].tag != f"{_DS}DigestMethod" or \
                rest[1].tag != f"{_DS}DigestValue":
            run.fail("EDX-SIG-STRUCTURE", f"Reference {uri!r} must hold DigestMethod and "
                     "DigestValue")
            return None
        digest_method = run.algorithm(DIGEST_METHODS, rest[0].get("Algorithm"), "DigestMethod")
        if digest_method is not None:
            run.algorithms.setdefault("digest", digest_method.name)
        transform_els = ([t for t in transforms_el if isinstance(t.tag, str)]
                         if transforms_el is not None else [])
        transforms = [t.get("Algorithm") for t in transform_els]
        enveloped = ENVELOPED in transforms
        c14n = _DEFAULT_C14N
        inclusive: list[str] | None = None
        for transform_el, transform in zip(transform_els, transforms, strict=True):
            if transform == ENVELOPED:
                continue
            found = run.algorithm(CANONICALIZATIONS, transform, "Transform")
            if found is None:
                return None
            c14n = found
            prefixes = transform_el.find("{http://www.w3.org/2001/10/xml-exc-c14n#}"
                                         "InclusiveNamespaces")
            if prefixes is not None:
                inclusive = (prefixes.get("PrefixList") or "").split()
        expected = _b64(rest[1].text)
        if uri is not None and uri.startswith("cid:"):
            if not strict:
                run.fail("EDX-SIG-REFERENCE", f"Reference {uri!r}: cid: is an edXML reference")
                return None
            if transforms:
                run.fail("EDX-SIG-TRANSFORM", f"Reference {uri!r}: attachment references take "
                         "no transforms")
                return None
            return _ReferencePlan(uri, None, "", False, c14n, inclusive, digest_method,
                                  expected, transforms)
        if uri == "":
            target: etree._Element | etree._ElementTree = root.getroottree()
            label = "the whole package (URI=\"\")" if strict else "the whole document (URI=\"\")"
            contains_signature = True
        elif uri is not None and uri.startswith("#") and not strict and id_attribute:
            target_el = self._by_id(run, root, uri[1:], id_attribute)
            if target_el is None:
                return None
            target = target_el
            label = f"element {uri} ({etree.QName(target_el).localname})"
            contains_signature = any(a is target_el for a in signature.iterancestors())
        else:
            run.fail("EDX-SIG-REFERENCE", f"Reference URI {uri!r} is not allowed: only "
                     "URI=\"\"" + (" and cid: attachments" if strict else " and #id") +
                     " (anything else is a wrapping vector)")
            return None
        if contains_signature and not enveloped:
            run.fail("EDX-SIG-TRANSFORM", f"Reference {uri!r} covers the signature itself but "
                     "has no enveloped-signature transform")
            return None
        return _ReferencePlan(uri, target, label, contains_signature, c14n, inclusive,
                              digest_method, expected, transforms)

    def _digest(self, run: _Run, signature: etree._Element, plan: _ReferencePlan,
                attachments: Any) -> None:
        """Compute and compare one planned reference's digest."""
        uri, digest_method = plan.uri, plan.digest_method
        if uri.startswith("cid:"):
            self._attachment_reference(run, uri, attachments, digest_method, plan.expected)
            return
        if digest_method is None or plan.target is None:
            return
        try:
            if plan.contains_signature:
                with detached(signature):
                    data = canonical(plan.target, plan.c14n, with_comments=False,
                                     inclusive_prefixes=plan.inclusive)
            else:
                data = canonical(plan.target, plan.c14n, with_comments=False,
                                 inclusive_prefixes=plan.inclusive)
        except etree.C14NError as exc:
            run.fail("EDX-SIG-DIGEST", f"{plan.label} cannot be canonicalised: {exc}")
            return
        if run.streamed is not None:  # the long attachment text streamed from the file
            computed = run.streamed.digest(data, digest_method.hash)
        else:
            computed = hashlib.new(digest_method.hash, data).digest()
        if computed != plan.expected:
            run.fail("EDX-SIG-DIGEST", f"digest of {plan.label} does not match: the signed "
                     "content was changed (or re-serialised) after signing")
        names = [("enveloped-signature" if t == ENVELOPED else CANONICALIZATIONS[t].name)
                 for t in plan.transforms if t in CANONICALIZATIONS or t == ENVELOPED]
        run.covers.append(f"{plan.label}, transforms: {', '.join(names) or 'none'}")

    def _attachment_reference(self, run: _Run, uri: str, attachments: Any,
                              digest_method: Any, expected: bytes | None) -> None:
        content_id = _strip_cid(uri)
        attachment = attachments.get(content_id)
        if attachment is None or attachment.content is None:
            run.fail("EDX-SIG-REFERENCE", f"Reference {uri!r} names no attachment")
            return
        try:
            digest = hashlib.new(digest_method.hash) if digest_method else None
            for chunk in attachment.content.iter_chunks():
                if digest is not None:
                    digest.update(chunk)
        except (binascii.Error, ValueError):
            run.fail("EDX-SIG-DIGEST", f"attachment {uri!r} is not valid base64")
            return
        if digest is not None and digest.digest() != expected:
            run.fail("EDX-SIG-DIGEST", f"attachment {uri!r} was changed after signing")
        run.covers.append(f"attachment {uri} (decoded bytes)")
        run.referenced.add(content_id)

    @staticmethod
    def _by_id(run: _Run, root: etree._Element, value: str,
               id_attribute: str) -> etree._Element | None:
        pinned = [el for el in root.iter() if isinstance(el.tag, str)
                  and el.get(id_attribute) == value]
        others = [el for el in root.iter() if isinstance(el.tag, str)
                  and any(el.get(a) == value for a in _ID_ATTRIBUTES if a != id_attribute)]
        if len(pinned) != 1 or others:
            run.fail("EDX-SIG-ID", f"ID {value!r} must name exactly one element by "
                     f"@{id_attribute} (found {len(pinned)}, and {len(others)} under other ID "
                     "attribute names)")
            return None
        return pinned[0]

    def _certificates(self, run: _Run, key_info: etree._Element | None) -> list[CertInfo]:
        if key_info is None:
            run.fail("EDX-SIG-CERTIFICATE", "no KeyInfo: the signer's certificate is required")
            return []
        certificates = []
        for element in key_info.iter(f"{_DS}X509Certificate"):
            try:
                certificates.append(self.policy.trust.info(_b64(element.text) or b""))
            except ValueError:
                run.fail("EDX-SIG-CERTIFICATE", "an X509Certificate cannot be read (truncated "
                         "or not DER)")
        if not certificates and not run.failures:
            run.fail("EDX-SIG-CERTIFICATE", "KeyInfo carries no X509Certificate")
        return certificates

    def _key_usage(self, run: _Run, leaf: CertInfo, *, strict: bool) -> None:
        if leaf.signing_usage is None:
            if strict:
                run.fail("EDX-SIG-KEY-USAGE", "the signer's certificate has no KeyUsage")
            return
        if not leaf.signing_usage:
            run.fail("EDX-SIG-KEY-USAGE", "the signer's certificate does not allow "
                     "digitalSignature or nonRepudiation")

    @staticmethod
    def _signature_value(run: _Run, leaf: x509.Certificate, method: Any, signed: bytes,
                         text: str | None) -> None:
        value = _b64(text)
        if value is None:
            run.fail("EDX-SIG-VALUE", "SignatureValue is not base64")
            return
        try:
            key = leaf.public_key()
            if method.key == "rsa" and isinstance(key, rsa.RSAPublicKey):
                key.verify(value, signed, padding.PKCS1v15(), method.hash())
            elif method.key == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
                half = len(value) // 2
                der = encode_dss_signature(int.from_bytes(value[:half], "big"),
                                           int.from_bytes(value[half:], "big"))
                key.verify(der, signed, ec.ECDSA(method.hash()))
            else:
                run.fail("EDX-SIG-ALGORITHM", f"{method.name} does not match the certificate's "
                         "key type")
                return
        except (InvalidSignature, ValueError, UnsupportedAlgorithm):
            run.fail("EDX-SIG-VALUE", "SignatureValue does not verify with the signer's key")

    def _bind(self, run: _Run, outcome: _Outcome, parsed: ParsedPackage) -> None:
        sender = _sender_of(parsed)
        if sender is None:
            run.fail("EDX-SIG-SIGNER", "the package names no From/OrganId to bind the signer to")
            return
        leaf = outcome.leaf
        issuer = outcome.chain[1].fingerprint if len(outcome.chain) > 1 else None
        rule = self.policy.bindings.binds(sender, leaf.cert, leaf.fingerprint, issuer)
        if rule is not None:
            run.bound = (sender, rule)
            return
        bound = leaf.agency_code
        if bound is not None and bound != sender:
            run.fail("EDX-SIG-SIGNER", f"signed by agency {bound}, but the package is From "
                     f"{sender}")
        else:
            run.fail("EDX-SIG-SIGNER", f"no binding rule ties this certificate to {sender}: "
                     "no pinned fingerprint or subject rule in the directory, no agency "
                     "subjectAltName (a CN is not a binding)")

    @staticmethod
    def _describe_legacy(element: etree._Element, run: _Run) -> None:
        method = element.find(f"{q('SignedInfo')}/{q('SignatureMethod')}")
        if method is not None and method.get("Algorithm"):
            run.algorithms["signature"] = method.get("Algorithm", "").rsplit("#", 1)[-1]
        for cert in element.iter(q("X509Certificate")):
            try:
                x509.load_der_x509_certificate(_b64(cert.text) or b"")
            except ValueError:
                run.fail("EDX-SIG-CERTIFICATE", "its X509Certificate is unreadable (truncated)")

    def _report(self, run: _Run, verdict: Verdict, source: str | None,
                outcome: _Outcome | None = None,
                parsed: ParsedPackage | None = None) -> VerificationReport:
        signer = None
        if outcome is not None:
            leaf = outcome.leaf
            agency, rule = run.bound if run.bound is not None else (leaf.agency_code, None)
            signer = Signer(agency, leaf.subject_text, f"{leaf.serial:x}", leaf.fingerprint,
                            rule, node_id_of(leaf.cert))
        now = dt.datetime.now(dt.UTC)
        return VerificationReport(
            verdict=verdict, failures=tuple(run.failures), source=source, signer=signer,
            chain=outcome.chain if outcome else (), algorithms=run.algorithms,
            covers=tuple(run.covers), referenced=frozenset(run.referenced),
            package=run.package,
            verification_time=run.at.isoformat(), checked_at=now.isoformat(),
            legacy_sha1=run.legacy, parsed=parsed, data=run.data, trust=self.policy.trust)


@dataclass(frozen=True)
class _ReferencePlan:
    """One Reference, checked for structure and algorithms, with what its digest needs."""

    uri: str
    target: etree._Element | etree._ElementTree | None
    label: str
    contains_signature: bool
    c14n: C14N
    inclusive: list[str] | None
    digest_method: Any
    expected: bytes | None
    transforms: list[str | None]


#: Caps on the signature's shape, checked before any digest (SECURITY.md, bounded cost):
#: a strict signature has one ``URI=""`` reference plus one per attachment, at most two
#: transforms per reference, a short chain in KeyInfo and a handful of attributes.
MAX_REFERENCES = 101
MAX_TRANSFORMS = 4
MAX_CERTIFICATES = 10
MAX_SIGNATURE_ELEMENTS = 2_000
MAX_ATTRIBUTES = 16


def _within_limits(run: _Run, signature: etree._Element) -> bool:
    """The signature's size and shape are within the caps (each breach has its code)."""
    signed_info = signature[0]
    if len(signed_info) > MAX_REFERENCES + 2:  # counted by libxml2, before any Python walk
        run.fail("EDX-SIG-LIMIT", f"SignedInfo holds {len(signed_info)} elements; at most "
                 f"{MAX_REFERENCES} references")
        return False
    references = certificates = elements = 0
    for element in signature.iter():
        elements += 1
        if elements > MAX_SIGNATURE_ELEMENTS:
            run.fail("EDX-SIG-LIMIT", f"the signature holds more than {MAX_SIGNATURE_ELEMENTS} "
                     "elements")
            return False
        tag = element.tag
        if not isinstance(tag, str):
            continue
        if len(element.attrib) > MAX_ATTRIBUTES or len(element.nsmap) > 2 * MAX_ATTRIBUTES:
            run.fail("EDX-SIG-LIMIT", f"{etree.QName(tag).localname} carries "
                     f"{len(element.attrib)} attributes and {len(element.nsmap)} namespaces "
                     f"in scope; at most {MAX_ATTRIBUTES} and {2 * MAX_ATTRIBUTES}")
            return False
        if tag == f"{_DS}Reference":
            references += 1
        elif tag == f"{_DS}X509Certificate":
            certificates += 1
        elif tag == f"{_DS}Transforms" and len(element) > MAX_TRANSFORMS:
            run.fail("EDX-SIG-LIMIT", f"a Reference has {len(element)} transforms; at most "
                     f"{MAX_TRANSFORMS}")
            return False
    if references > MAX_REFERENCES:
        run.fail("EDX-SIG-LIMIT", f"SignedInfo holds {references} references; at most "
                 f"{MAX_REFERENCES}")
        return False
    if certificates > MAX_CERTIFICATES:
        run.fail("EDX-SIG-LIMIT", f"KeyInfo carries {certificates} certificates; at most "
                 f"{MAX_CERTIFICATES}")
        return False
    return True


@dataclass(frozen=True)
class _Outcome:
    leaf: CertInfo
    chain: tuple[ChainLink, ...]


def _leaf_of(certificates: list[CertInfo]) -> CertInfo:
    """The certificate that issued none of the others (the first such)."""
    issuers = {c.issuer for c in certificates}
    for cert in certificates:
        if cert.subject not in issuers or (cert.subject == cert.issuer and len(certificates) == 1):
            return cert
    return certificates[0]


class _LazyAttachments:
    """ContentId → attachment, built (with the model) only if a cid: reference asks."""

    def __init__(self, parsed: ParsedPackage) -> None:
        self._parsed = parsed
        self._map: dict[str, Any] | None = None

    def get(self, content_id: str) -> Any:
        if self._map is None:
            package = self._parsed.package
            attachments = package.attachments if isinstance(package, DocumentPackage) else ()
            self._map = {_strip_cid(a.content_id): a for a in attachments}
        return self._map.get(content_id)


def _sender_of(parsed: ParsedPackage) -> str | None:
    """From/OrganId, read straight from the verified tree."""
    for child in parsed.locations.message_header:
        if child.tag == _FROM:
            for leaf in child:
                if leaf.tag == _ORGAN_ID:
                    return (leaf.text or "").strip() or None
    return None


_FROM, _ORGAN_ID = q("From"), q("OrganId")


def _b64(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse_generic(data: bytes) -> etree._Element:
    """Any XML document, with the same hardened settings as the edXML parser."""
    return parse_xml(data)


def summarize(reports: list[VerificationReport]) -> dict[str, Any]:
    """Several reports' summary, for an auditor: counts by verdict and by first failure
    code, with the docaxis version that judged them."""
    verdicts: dict[str, int] = {}
    codes: dict[str, int] = {}
    for report in reports:
        verdicts[report.verdict] = verdicts.get(report.verdict, 0) + 1
        if report.failures:
            codes[report.failures[0].code] = codes.get(report.failures[0].code, 0) + 1
    good = sum(r.valid for r in reports)
    return {"packages": len(reports), "verified": good, "not_verified": len(reports) - good,
            "verdicts": verdicts, "first_failure_codes": codes,
            "docaxis_version": __version__}
