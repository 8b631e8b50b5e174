"""How identities are written into certificates: the rules live in :mod:`docaxis.dsig`
(they decide trust); the PKI only writes them when it issues."""

from docaxis.dsig._names import (
    AGENCY_URI_PREFIX,
    NODE_URI_PREFIX,
    agency_code_of,
    agency_uri,
    node_id_of,
    node_uri,
)

__all__ = ["AGENCY_URI_PREFIX", "NODE_URI_PREFIX", "agency_code_of", "agency_uri",
           "node_id_of", "node_uri"]
