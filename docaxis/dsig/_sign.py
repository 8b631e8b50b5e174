"""Signing edXML packages: enveloped XMLDSig over the whole package.

The signature goes in the XMLDSig namespace as the last child of ``edXMLHeader``, with one
``Reference URI=""`` (enveloped-signature + exclusive C14N, SHA-256), RSA-SHA256 or
ECDSA-SHA256 by the key's type, and ``X509Data`` carrying the signer's chain.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from docaxis.dsig._algorithms import (
    CANONICALIZATIONS,
    DSIG,
    ENVELOPED,
    SIGN_C14N_URI,
    SIGN_DIGEST_URI,
    SIGN_METHOD_URI,
)
from docaxis.dsig._c14n import canonical
from docaxis.dsig._errors import SignatureError
from docaxis.dsig._keys import SigningKey, SoftwareKey, load_signing_key
from docaxis.edxml import ParsedPackage, ParseLimits, parse, parse_file

_DS = f"{{{DSIG}}}"


class Signer:
    """Signs packages with one key, loaded once and reused.

    Parameters
    ----------
    key:
        RSA (2048+) or EC P-256/P-384 private key.
    chain:
        The signer's certificate first, then its issuing CAs (the root may be omitted).

    Examples
    --------
    >>> signer = Signer.from_files("keys/agencies/000.00.00.G22/key.pem",
    ...                            "keys/agencies/000.00.00.G22/chain.pem")  # doctest: +SKIP
    >>> signed = signer.sign(package_bytes)  # doctest: +SKIP
    """

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | SigningKey,
                 chain: list[x509.Certificate]) -> None:
        if not chain:
            raise SignatureError("the signer's certificate is required")
        if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            key = SoftwareKey(key)
        public = key.public_key()
        if chain[0].public_key() != public:
            raise SignatureError("the private key does not belong to the first certificate")
        if isinstance(public, rsa.RSAPublicKey):
            if public.key_size < 2048:
                raise SignatureError("RSA keys must have at least 2048 bits")
        elif not isinstance(public, ec.EllipticCurvePublicKey):
            raise SignatureError("only RSA and EC keys can sign")
        self._kind = key.kind
        self._key: SigningKey = key
        self.chain = list(chain)
        self._x509_b64 = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                          for c in chain]

    @classmethod
    def from_files(cls, key_path: Path | str, cert_path: Path | str | None = None, *,
                   password: bytes | None = None) -> Signer:
        """Load a PEM private key (plain or encrypted) and a PEM certificate (or chain)
        file, or a PKCS#12 file (``cert_path`` optional).

        Raises
        ------
        KeyLoadError
            Wrong password, unknown format, unreadable file (one sentence).
        """
        key, chain = load_signing_key(key_path, password=password, certificates=cert_path)
        return cls(key, chain)

    @property
    def method_uri(self) -> str:
        return SIGN_METHOD_URI[self._kind]

    def sign(self, data: bytes | ParsedPackage, *, limits: ParseLimits | None = None) -> bytes:
        """Return the signed package bytes.

        Raises
        ------
        SignatureError
            If the package already carries a signature.
        docaxis.edxml.ParseError
            If ``data`` is not a readable edXML package.
        """
        parsed = data if isinstance(data, ParsedPackage) else parse(data, limits=limits)
        return bytes(etree.tostring(self._signed_tree(parsed), xml_declaration=True,
                                    encoding="UTF-8"))

    def sign_file(self, source: str | os.PathLike[str], target: str | os.PathLike[str], *,
                  limits: ParseLimits | None = None) -> int:
        """Sign the package in file ``source`` into file ``target``; return its size.

        A large package is read by streaming (:func:`docaxis.edxml.parse_file`) and its
        attachment text copied from ``source`` to ``target`` in chunks: memory holds the
        package's structure, never its attachments. ``target`` appears complete or not at
        all (written beside it, flushed, then renamed).

        Raises
        ------
        SignatureError
            If the package already carries a signature.
        docaxis.edxml.ParseError
            If ``source`` is not a readable edXML package.
        OSError
            If a file cannot be read or written.
        """
        parsed = parse_file(source, limits=limits)
        signed = etree.tostring(self._signed_tree(parsed), xml_declaration=True,
                                encoding="UTF-8")
        destination = Path(target)
        partial = destination.with_name(f".{destination.name}.partial")
        try:
            with partial.open("wb") as out:
                if parsed.streamed is None:
                    out.write(signed)
                else:
                    parsed.streamed.splice(signed, out)
                out.flush()
                os.fsync(out.fileno())
            size = partial.stat().st_size
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)
        return size

    def _signed_tree(self, parsed: ParsedPackage) -> etree._ElementTree:
        """The package's tree with the signature appended to its header."""
        if parsed.signature is not None:
            raise SignatureError(f"the package already carries a {parsed.signature.form} "
                                 "signature; signed bytes are never re-signed")
        root = parsed.root
        method = CANONICALIZATIONS[SIGN_C14N_URI]
        whole = canonical(root.getroottree(), method, with_comments=False)
        digest = (parsed.streamed.digest(whole, "sha256") if parsed.streamed is not None
                  else hashlib.sha256(whole).digest())
        signature = self._signature_element(base64.b64encode(digest).decode())
        parsed.locations.header.append(signature)
        signed_info = signature[0]
        value = self._sign_bytes(canonical(signed_info, method))
        signature[1].text = base64.b64encode(value).decode()
        return root.getroottree()

    def _sign_bytes(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def _signature_element(self, digest_b64: str) -> etree._Element:
        signature = etree.Element(f"{_DS}Signature", nsmap={"ds": DSIG})
        signed_info = etree.SubElement(signature, f"{_DS}SignedInfo")
        etree.SubElement(signed_info, f"{_DS}CanonicalizationMethod", Algorithm=SIGN_C14N_URI)
        etree.SubElement(signed_info, f"{_DS}SignatureMethod", Algorithm=self.method_uri)
        reference = etree.SubElement(signed_info, f"{_DS}Reference", URI="")
        transforms = etree.SubElement(reference, f"{_DS}Transforms")
        etree.SubElement(transforms, f"{_DS}Transform", Algorithm=ENVELOPED)
        etree.SubElement(transforms, f"{_DS}Transform", Algorithm=SIGN_C14N_URI)
        etree.SubElement(reference, f"{_DS}DigestMethod", Algorithm=SIGN_DIGEST_URI)
        etree.SubElement(reference, f"{_DS}DigestValue").text = digest_b64
        etree.SubElement(signature, f"{_DS}SignatureValue")
        key_info = etree.SubElement(signature, f"{_DS}KeyInfo")
        x509_data = etree.SubElement(key_info, f"{_DS}X509Data")
        etree.SubElement(x509_data, f"{_DS}X509SubjectName").text = \
            self.chain[0].subject.rfc4514_string()
        for b64 in self._x509_b64:
            etree.SubElement(x509_data, f"{_DS}X509Certificate").text = b64
        return signature
