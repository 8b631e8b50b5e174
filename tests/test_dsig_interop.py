"""Interop: Debian's xmlsec1 verifies what we sign and we verify what it signs; the
public XMLDSig vectors; the field samples' signatures get the right report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from docaxis.dsig import TrustStore, VerificationPolicy, Verifier
from docaxis.pki import DevPKI
from tests.conftest import INTEROP
from tests.dsig_support import XMLSEC1, package, signer_for, verifier_for, xmlsec1

needs_xmlsec1 = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 not installed "
                                   "(.ci/run installs it)")

TEMPLATE = (
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
    '<ds:CanonicalizationMethod Algorithm="{c14n}"/>'
    '<ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="">'
    '<ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    '<ds:Transform Algorithm="{c14n}"/></ds:Transforms>'
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>'
    "</ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo>"
    "</ds:Signature>"
)
EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


@needs_xmlsec1
def test_xmlsec1_verifies_what_we_sign(pki: DevPKI, tmp_path: Path) -> None:
    signed = tmp_path / "signed.edxml"
    signed.write_bytes(signer_for(pki, "000.00.00.G22").sign(package()))
    result = xmlsec1("--verify", "--enabled-reference-uris", "empty,same-doc",
                     "--enabled-key-data", "x509", "--trusted-pem", pki.root_path,
                     "--untrusted-pem", pki.ca_path("central"), signed)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout + result.stderr
    # and it is not a rubber stamp: a tampered copy fails there too
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(signed.read_bytes().replace("kết nối".encode(), "chuyển tiền".encode()))
    assert xmlsec1("--verify", "--enabled-reference-uris", "empty,same-doc",
                   "--enabled-key-data", "x509", "--trusted-pem", pki.root_path,
                   "--untrusted-pem", pki.ca_path("central"), tampered).returncode != 0


@needs_xmlsec1
@pytest.mark.parametrize("c14n", [EXC, INCLUSIVE], ids=["exc-c14n", "c14n"])
def test_we_verify_what_xmlsec1_signs(pki: DevPKI, tmp_path: Path, c14n: str) -> None:
    key, cert, _chain = pki.agency_paths("000.00.00.G22")
    is_rsa = b"RSA" in key.read_bytes() or "rsa" in str(pki.folder)
    method = ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" if is_rsa
              else "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256")
    template = tmp_path / "template.edxml"
    template.write_bytes(package().replace(
        b"</edXML:edXMLHeader>",
        TEMPLATE.format(c14n=c14n, method=method).encode() + b"</edXML:edXMLHeader>"))
    out = tmp_path / "out.edxml"
    result = xmlsec1("--sign", "--privkey-pem", f"{key},{cert},{pki.ca_path('central')}",
                     "--output", out, template)
    assert result.returncode == 0, result.stderr
    report = verifier_for(pki).verify(out.read_bytes())
    assert report.valid, report.failures
    assert report.signer is not None and report.signer.agency_code == "000.00.00.G22"


VECTORS = INTEROP / "xmldsig-vectors"


@pytest.fixture(scope="module")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.skip(f"XMLDSig vectors not present at {VECTORS}")
    return VECTORS


@pytest.mark.interop
@pytest.mark.parametrize("n", range(1, 9))
def test_aleksey_vectors_verify(vectors: Path, n: int) -> None:
    verifier = Verifier(VerificationPolicy(
        TrustStore.load([vectors / "aleksey-enveloped" / "cacert.pem"]),
        require_revocation=False, bind_signer=False))
    data = (vectors / "aleksey-enveloped" / f"enveloped-sha256-rsa-sha256-test-{n}.xml").read_bytes()
    report = verifier.verify_generic(data, id_attribute="ID")
    assert report.valid, report.failures
    assert report.algorithms["canonicalization"] == "c14n11"


@pytest.mark.interop
def test_aleksey_invalid_enveloped_transform_fails(vectors: Path) -> None:
    verifier = Verifier(VerificationPolicy(
        TrustStore.load([vectors / "aleksey-enveloped" / "cacert.pem"]),
        require_revocation=False, bind_signer=False))
    data = (vectors / "aleksey-enveloped" / "invalid_enveloped_transform.xml").read_bytes()
    assert not verifier.verify_generic(data, id_attribute="ID").valid


@pytest.mark.interop
@pytest.mark.parametrize(
    ("name", "with_sha1"),
    [("signature-rsa-enveloped.xml", True),
     ("signature-rsa-enveloped-bad-digest-val.xml", False),
     ("signature-rsa-enveloped-bad-sig.xml", False)],
)
def test_phaos_vectors(vectors: Path, name: str, with_sha1: bool) -> None:
    anchor = vectors / "phaos-enveloped" / "rsa-ca-cert.pem"
    data = (vectors / "phaos-enveloped" / name).read_bytes()

    def verify(allow_sha1: bool, at: dt.datetime | None) -> object:
        return Verifier(VerificationPolicy(TrustStore.load([anchor]), allow_sha1=allow_sha1,
                                           at=at, require_revocation=False,
                                           bind_signer=False)).verify_generic(data)

    in_2005 = dt.datetime(2005, 1, 1, tzinfo=dt.UTC)
    # our policy: SHA-1 refused without the legacy flag, expired certificates refused today
    assert "EDX-SIG-ALGORITHM" in verify(False, in_2005).codes()  # type: ignore[attr-defined]
    assert not verify(True, None).valid  # type: ignore[attr-defined]
    legacy = verify(True, in_2005)
    assert legacy.valid is with_sha1, legacy.failures  # type: ignore[attr-defined]
    if not with_sha1:
        # bad-sig's second Reference has no DigestValue: refused on structure, before any
        # digest is computed (bounded cost); bad-digest-val fails on its digest
        assert legacy.codes() & {"EDX-SIG-DIGEST", "EDX-SIG-VALUE",  # type: ignore[attr-defined]
                                 "EDX-SIG-STRUCTURE"}


@pytest.mark.interop
def test_field_samples_get_the_right_report(vpcp: Path, pki: DevPKI) -> None:
    verifier = verifier_for(pki)
    for path in sorted(vpcp.glob("*.edxml")):
        report = verifier.verify(path.read_bytes(), source=path.name)  # never a traceback
        if path.name.startswith("broken"):
            assert report.verdict == "invalid"
            assert report.codes() == {"EDX-XML-MALFORMED"}
        elif path.name.startswith("status"):
            assert report.verdict == "unsigned"
        else:
            assert report.verdict == "legacy", path
            assert "EDX-SIG-LEGACY" in report.codes()
            assert "EDX-SIG-CERTIFICATE" in report.codes()  # the truncated certificate
            assert report.algorithms.get("signature") == "rsa-sha1"
