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

from docaxis.dsig._errors import Failure, SignatureError
from docaxis.dsig._sign import Signer
from docaxis.dsig._trust import ChainLink, TrustStore, fingerprint
from docaxis.dsig._verify import Signer as SignerIdentity
from docaxis.dsig._verify import (
    VerificationPolicy,
    VerificationReport,
    Verifier,
)

__all__ = [
    "ChainLink",
    "Failure",
    "SignatureError",
    "Signer",
    "SignerIdentity",
    "TrustStore",
    "VerificationPolicy",
    "VerificationReport",
    "Verifier",
    "fingerprint",
]
