"""Algorithm allowlists of the verification profile (SECURITY.md).

Anything not listed is refused with ``EDX-SIG-ALGORITHM``. SHA-1 is listed separately
and only admitted when a policy sets ``allow_sha1`` (legacy traffic); reports say so.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from cryptography.hazmat.primitives import hashes

DSIG: Final = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED: Final = DSIG + "enveloped-signature"


class C14N(NamedTuple):
    exclusive: bool
    with_comments: bool
    name: str


CANONICALIZATIONS: Final[dict[str, C14N]] = {
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": C14N(False, False, "c14n"),
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments":
        C14N(False, True, "c14n#WithComments"),
    "http://www.w3.org/2001/10/xml-exc-c14n#": C14N(True, False, "exc-c14n"),
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments":
        C14N(True, True, "exc-c14n#WithComments"),
    # C14N 1.1 differs from 1.0 only in how xml:id/xml:base/xml:lang are inherited into a
    # document *subset*; references here are whole documents or whole subtrees, for which
    # the two are identical, so 1.1 is computed with libxml2's 1.0.
    "http://www.w3.org/2006/12/xml-c14n11": C14N(False, False, "c14n11"),
    "http://www.w3.org/2006/12/xml-c14n11#WithComments": C14N(False, True, "c14n11#WithComments"),
}


class SignatureAlgorithm(NamedTuple):
    key: str  # "rsa" or "ecdsa"
    hash: type[hashes.HashAlgorithm]
    name: str
    legacy: bool = False


SIGNATURE_METHODS: Final[dict[str, SignatureAlgorithm]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":
        SignatureAlgorithm("rsa", hashes.SHA256, "rsa-sha256"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384":
        SignatureAlgorithm("rsa", hashes.SHA384, "rsa-sha384"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512":
        SignatureAlgorithm("rsa", hashes.SHA512, "rsa-sha512"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256":
        SignatureAlgorithm("ecdsa", hashes.SHA256, "ecdsa-sha256"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384":
        SignatureAlgorithm("ecdsa", hashes.SHA384, "ecdsa-sha384"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512":
        SignatureAlgorithm("ecdsa", hashes.SHA512, "ecdsa-sha512"),
    DSIG + "rsa-sha1": SignatureAlgorithm("rsa", hashes.SHA1, "rsa-sha1", legacy=True),
}


class DigestAlgorithm(NamedTuple):
    hash: str  # hashlib name
    name: str
    legacy: bool = False


DIGEST_METHODS: Final[dict[str, DigestAlgorithm]] = {
    "http://www.w3.org/2001/04/xmlenc#sha256": DigestAlgorithm("sha256", "sha256"),
    "http://www.w3.org/2001/04/xmldsig-more#sha384": DigestAlgorithm("sha384", "sha384"),
    "http://www.w3.org/2001/04/xmlenc#sha512": DigestAlgorithm("sha512", "sha512"),
    DSIG + "sha1": DigestAlgorithm("sha1", "sha1", legacy=True),
}

#: Named refusals, so a report says *why* (not just "unknown").
REFUSED: Final[dict[str, str]] = {
    DSIG + "hmac-sha1": "HMAC: a shared secret cannot bind a signature to an agency",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256":
        "HMAC: a shared secret cannot bind a signature to an agency",
    DSIG + "dsa-sha1": "DSA is not allowed",
    "http://www.w3.org/2009/xmldsig11#dsa-sha256": "DSA is not allowed",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-md5": "MD5 is broken",
    "http://www.w3.org/2001/04/xmldsig-more#md5": "MD5 is broken",
    "http://www.w3.org/2001/04/xmldsig-more#sha224": "SHA-224 is not in the profile",
    "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1": "RSA-PSS is not in the profile",
    "http://www.w3.org/TR/1999/REC-xpath-19991116": "XPath transforms are not allowed",
    "http://www.w3.org/TR/1999/REC-xslt-19991116": "XSLT transforms are not allowed",
    "http://www.w3.org/2000/09/xmldsig#base64": "base64 transforms are not allowed",
}

#: URIs to write when signing.
SIGN_METHOD_URI: Final = {
    "rsa": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "ecdsa": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}
SIGN_DIGEST_URI: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
SIGN_C14N_URI: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
