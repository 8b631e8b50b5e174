"""Development/test PKI: root → tier CAs → agency and node certificates, CRLs.

It only issues. Trust decisions are :mod:`docaxis.dsig`'s.
"""

from docaxis.dsig._names import (
    AGENCY_URI_PREFIX,
    NODE_URI_PREFIX,
    agency_code_of,
    agency_uri,
    node_id_of,
    node_uri,
)
from docaxis.pki._pki import (
    KEY_TYPES,
    TIERS,
    DevPKI,
    IssuedCertificate,
    KeyType,
    PKIError,
    PrivateKey,
    generate_key,
    load_certificates,
    load_private_key,
)
from docaxis.pki._tsa import (
    DEV_TSA_POLICY,
    TSA_FOLDER,
    DevTimestampAuthority,
    TimestampServer,
    serve_tsa,
)

__all__ = [
    "AGENCY_URI_PREFIX",
    "DEV_TSA_POLICY",
    "KEY_TYPES",
    "NODE_URI_PREFIX",
    "TIERS",
    "TSA_FOLDER",
    "DevPKI",
    "DevTimestampAuthority",
    "IssuedCertificate",
    "KeyType",
    "PKIError",
    "PrivateKey",
    "TimestampServer",
    "agency_code_of",
    "agency_uri",
    "generate_key",
    "load_certificates",
    "load_private_key",
    "node_id_of",
    "node_uri",
    "serve_tsa",
]
