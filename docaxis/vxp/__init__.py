"""VXP, the national document axis protocol that agency document systems already speak
(their ``SDKVXP`` / ``VPCPXRoadSdk`` clients): signing, ``hash-file``, the envelope, and a
client written from the protocol description. The server side is in ``docaxis.api``."""

from docaxis.vxp._client import VxpClient
from docaxis.vxp._protocol import (
    PREFIX,
    SignedRequest,
    VxpError,
    envelope,
    hash_file,
    lossy_hex,
    sign_header_value,
    signature,
    signed_headers,
    strip_crlf,
    timestamp,
)

__all__ = [
    "PREFIX",
    "SignedRequest",
    "VxpClient",
    "VxpError",
    "envelope",
    "hash_file",
    "lossy_hex",
    "sign_header_value",
    "signature",
    "signed_headers",
    "strip_crlf",
    "timestamp",
]
