"""Namespace URIs and qualified-name helpers used across the edXML layer."""

from __future__ import annotations

from typing import Final

#: The edXML namespace of QCVN 102:2016 (conventional prefix ``edXML``).
EDXML_NS: Final = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
#: W3C XML Signature namespace.
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
#: The pre-2016 "e-doc" format, recognised only to be rejected clearly.
LEGACY_EDOC_NS: Final = "http://www.e-doc.vn/Schema/"
SOAP_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS: Final = "http://www.w3.org/2003/05/soap-envelope"
EDXML_PREFIX: Final = "edXML"


def q(local: str) -> str:
    """Clark name ``{edXML namespace}local``."""
    return f"{{{EDXML_NS}}}{local}"


def strip_cid(content_id: object) -> str:
    """A ContentId without its ``cid:`` scheme (producers write it either way)."""
    value = str(content_id or "").strip()
    return value[4:] if value.lower().startswith("cid:") else value


def local_name(tag: object) -> str:
    """Local part of an lxml tag (``""`` for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]
