"""Signatures: strict XMLDSig signing and verification, trust store, chains, CRLs.

Examples
--------
>>> from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
>>> signer = Signer.from_files("key.pem", "chain.pem")  # doctest: +SKIP
>>> store = TrustStore.load(["root.pem"], crls=["crl/"])  # doctest: +SKIP
>>> verifier = Verifier(VerificationPolicy(store))  # doctest: +SKIP
>>> verifier.verify(signer.sign(package)).verdict  # doctest: +SKIP
'valid'
"""

from docaxis.dsig._binding import AgencyBinding, BindingPolicy, SubjectRule, attribute_oid
from docaxis.dsig._errors import Failure, SignatureError
from docaxis.dsig._keys import (
    KeyLoadError,
    Pkcs11Key,
    SigningKey,
    SoftwareKey,
    load_signing_key,
    password_from,
)
from docaxis.dsig._names import agency_code_of, node_id_of
from docaxis.dsig._sign import Signer
from docaxis.dsig._statements import (
    SignedStatement,
    StatementCheck,
    StatementSigner,
    sign_detached,
    verify_detached,
    verify_statement,
)
from docaxis.dsig._timestamps import (
    TimestampError,
    TimestampRequest,
    TimestampVerifier,
    timestamp_request,
)
from docaxis.dsig._trust import ChainLink, TrustStore, fingerprint
from docaxis.dsig._verify import Signer as SignerIdentity
from docaxis.dsig._verify import (
    VerificationPolicy,
    VerificationReport,
    Verifier,
    summarize,
)

__all__ = [
    "AgencyBinding",
    "BindingPolicy",
    "ChainLink",
    "Failure",
    "KeyLoadError",
    "Pkcs11Key",
    "SignatureError",
    "SignedStatement",
    "Signer",
    "SignerIdentity",
    "SigningKey",
    "SoftwareKey",
    "StatementCheck",
    "StatementSigner",
    "SubjectRule",
    "TimestampError",
    "TimestampRequest",
    "TimestampVerifier",
    "TrustStore",
    "VerificationPolicy",
    "VerificationReport",
    "Verifier",
    "agency_code_of",
    "attribute_oid",
    "fingerprint",
    "load_signing_key",
    "node_id_of",
    "password_from",
    "sign_detached",
    "summarize",
    "timestamp_request",
    "verify_detached",
    "verify_statement",
]
