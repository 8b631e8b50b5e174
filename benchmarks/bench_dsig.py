"""Sign and verify throughput: docaxis next to signxml and python-xmlsec (libxmlsec1).

One RSA-2048 dev PKI (root → central CA → agency), packages signed by docaxis
(enveloped, exc-c14n, RSA-SHA256, X509Data with the chain), in the same run:

* verify — **docaxis strict** (`Verifier.verify`: hardened parse, profile checks, digest,
  signature, chain to the anchor, CRL revocation, signer = From) next to **signxml plain**
  (`XMLVerifier().verify(data, ca_pem_file=root)`) and **python-xmlsec**
  (lxml parse + `SignatureContext.verify` with the root trusted and the CA untrusted);
* sign — **docaxis** (`Signer.sign`: parse, c14n, digest, SignedInfo, RSA, serialise)
  next to the **raw floor**: lxml parse + exclusive C14N of the package + SHA-256 +
  one RSA-2048 private-key operation.

Targets (issue #3): verify ≥ 2× signxml on small packages and ≥ 1.0× python-xmlsec on
both sizes; sign within 1.5× of the raw floor (ratio ≥ 0.67).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import xmlsec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml import XMLVerifier

from benchmarks._harness import compare, table
from benchmarks._packages import document_of_size
from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.pki import DevPKI, load_private_key

SIZES = {"small (~5 KB)": 5 * 1024, "large (~2.5 MB)": int(2.5 * 1024 * 1024)}


def run(quick: bool = False) -> str:
    folder = Path(tempfile.mkdtemp(prefix="docaxis-bench-pki-"))
    pki = DevPKI.init(folder, key_type="rsa2048")
    pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central", key_type="rsa2048")
    key_path, _cert, chain = pki.agency_paths("000.00.00.G22")
    signer = Signer.from_files(key_path, chain)
    key = load_private_key(key_path)
    verifier = Verifier(VerificationPolicy(
        TrustStore.load([pki.root_path], crls=[pki.crl_folder])))
    manager = xmlsec.KeysManager()
    manager.load_cert(str(pki.root_path), xmlsec.constants.KeyDataFormatPem,
                      xmlsec.constants.KeyDataTypeTrusted)
    manager.load_cert(str(pki.ca_path("central")), xmlsec.constants.KeyDataFormatPem,
                      xmlsec.constants.KeyDataTypeNone)
    root_pem = str(pki.root_path)
    rounds, seconds = (3, 0.1) if quick else (7, 0.3)
    out = []
    for label, size in SIZES.items():
        unsigned = document_of_size(size)
        signed = signer.sign(unsigned)
        assert verifier.verify(signed).valid

        def ours(data: bytes = signed) -> object:
            return verifier.verify(data)

        def plain_signxml(data: bytes = signed) -> object:
            return XMLVerifier().verify(data, ca_pem_file=root_pem)

        def libxmlsec(data: bytes = signed) -> object:
            tree = etree.fromstring(data)
            node = xmlsec.tree.find_node(tree, xmlsec.constants.NodeSignature)
            return xmlsec.SignatureContext(manager).verify(node)

        candidates = {"python-xmlsec verify (baseline)": libxmlsec,
                      "docaxis strict verify": ours,
                      "signxml plain verify": plain_signxml}
        results = compare(candidates, rounds=rounds, round_seconds=seconds)
        out.append(table(f"verify, {label}: {len(signed):,} bytes", results,
                         "python-xmlsec verify (baseline)"))
        ours_rate = next(r for r in results if r.name == "docaxis strict verify").per_second
        signxml_rate = next(r for r in results if r.name == "signxml plain verify").per_second
        out.append(f"docaxis / signxml: {ours_rate / signxml_rate:.2f}×\n")

        def ours_sign(data: bytes = unsigned) -> object:
            return signer.sign(data)

        def raw(data: bytes = unsigned) -> object:
            tree = etree.fromstring(data)
            digest = hashlib.sha256(etree.tostring(tree, method="c14n", exclusive=True)).digest()
            return key.sign(digest * 20, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg,union-attr]

        results = compare({"raw: parse + c14n + SHA-256 + RSA-2048 (baseline)": raw,
                           "docaxis sign": ours_sign}, rounds=rounds, round_seconds=seconds)
        out.append(table(f"sign, {label}: {len(unsigned):,} bytes", results,
                         "raw: parse + c14n + SHA-256 + RSA-2048 (baseline)"))
    return "\n".join(out)
