"""How identities are written into certificates (shared by the issuer and the verifier).

An agency certificate carries its agency code in a dedicated field — a subjectAltName
URI ``urn:vn-gov:agency:<code>`` — besides the subject's UID attribute and CN. Trust
decisions read the SAN URI only (never the CN). Axis nodes get
``urn:vn-gov:axis-node:<node id>``.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509

AGENCY_URI_PREFIX: Final = "urn:vn-gov:agency:"
NODE_URI_PREFIX: Final = "urn:vn-gov:axis-node:"


def agency_uri(code: str) -> str:
    return AGENCY_URI_PREFIX + code


def node_uri(node_id: str) -> str:
    return NODE_URI_PREFIX + node_id


def _san_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def agency_code_of(cert: x509.Certificate) -> str | None:
    """The agency code bound in the certificate's dedicated field, if exactly one."""
    codes = [u[len(AGENCY_URI_PREFIX):] for u in _san_uris(cert) if u.startswith(AGENCY_URI_PREFIX)]
    return codes[0] if len(codes) == 1 else None


def node_id_of(cert: x509.Certificate) -> str | None:
    ids = [u[len(NODE_URI_PREFIX):] for u in _san_uris(cert) if u.startswith(NODE_URI_PREFIX)]
    return ids[0] if len(ids) == 1 else None
