"""Signing and strict verification: round trip, the auditor's report, and every attack
in SECURITY.md (each test fails if its defence is removed)."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import parse
from docaxis.pki import DevPKI, agency_uri, load_certificates, load_private_key
from tests.dsig_support import H41, package, signer_for, verifier_for

DS = "http://www.w3.org/2000/09/xmldsig#"


@pytest.fixture
def signed(pki: DevPKI) -> bytes:
    return signer_for(pki, "000.00.00.G22").sign(package())


def test_sign_then_verify_gives_the_full_report(pki: DevPKI, signed: bytes) -> None:
    report = verifier_for(pki).verify(signed, source="letter.edxml")
    assert report.verdict == "valid", report.failures
    assert report.signer is not None and report.signer.agency_code == "000.00.00.G22"
    assert [link.is_anchor for link in report.chain] == [False, False, True]
    assert [link.revocation for link in report.chain[:2]] == ["good", "good"]
    assert report.algorithms["digest"] == "sha256"
    assert report.algorithms["signature"] in ("ecdsa-sha256", "rsa-sha256")
    assert report.covers == ('the whole package (URI=""), transforms: enveloped-signature, '
                             "exc-c14n",)
    [attachment] = report.attachments
    assert attachment["sha256"] == parse(signed).package.attachments[0].content.sha256
    # downstream code gets the tree that was verified
    assert report.parsed is not None and report.parsed.source == signed
    assert report.to_dict()["signer"]["agency_code"] == "000.00.00.G22"


def test_signature_is_the_last_child_of_the_header_in_the_dsig_namespace(signed: bytes) -> None:
    parsed = parse(signed)
    header = parsed.locations.header
    assert header[-1].tag == f"{{{DS}}}Signature"
    assert parsed.signature is not None and parsed.signature.form == "xmldsig"


def test_signing_twice_is_refused(pki: DevPKI, signed: bytes) -> None:
    from docaxis.dsig import SignatureError

    with pytest.raises(SignatureError, match="already carries"):
        signer_for(pki, "000.00.00.G22").sign(signed)


def test_attachment_references_by_cid_are_checked(pki: DevPKI, signed: bytes) -> None:
    """A producer adding per-attachment references: each is checked against the bytes."""
    data = parse(package()).package.attachments[0].content.read()
    ref = (f'<ds:Reference xmlns:ds="{DS}" URI="cid:1"><ds:DigestMethod '
           'Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>'
           f"{base64.b64encode(__import__('hashlib').sha256(data).digest()).decode()}"
           "</ds:DigestValue></ds:Reference>")
    unsigned = package().replace(b"</edXML:edXMLHeader>", b"</edXML:edXMLHeader>")
    signer = signer_for(pki, "000.00.00.G22")
    signed_with_cid = _resign_with_extra_reference(signer, unsigned, ref)
    report = verifier_for(pki).verify(signed_with_cid)
    assert report.valid, report.failures
    assert report.attachments[0]["covered_by"].startswith("cid:1")
    tampered = _tamper_attachment(signed_with_cid)
    assert "EDX-SIG-DIGEST" in verifier_for(pki).verify(tampered).codes()


# ---------------------------------------------------------------------------- attacks
def test_signature_wrapping_is_rejected_and_forged_content_never_read(
    pki: DevPKI, signed: bytes
) -> None:
    tree = etree.fromstring(signed)
    signature = tree.find(f".//{{{DS}}}Signature")
    header = tree.find(".//{*}MessageHeader")
    # the signed original goes aside (into a ds:Object), a forged header takes its place
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    obj.append(etree.fromstring(etree.tostring(header)))
    header.find("{*}Subject").text = "Chuyển tiền gấp"  # forged
    forged = etree.tostring(tree.getroottree(), xml_declaration=True, encoding="UTF-8")
    report = verifier_for(pki).verify(forged)
    assert not report.valid
    assert report.parsed is None  # nothing of the forged package is handed downstream
    assert "EDX-SIG-STRUCTURE" in report.codes()


def test_wrapping_with_a_reference_to_the_moved_original_is_rejected(
    pki: DevPKI, signed: bytes
) -> None:
    forged = re.sub(rb'URI=""', b'URI="#original"', signed, count=1)
    forged = forged.replace(b"<edXML:MessageHeader>", b'<edXML:MessageHeader Id="original">', 1)
    report = verifier_for(pki).verify(forged)
    assert "EDX-SIG-REFERENCE" in report.codes()


def test_a_second_signature_is_rejected(pki: DevPKI, signed: bytes) -> None:
    tree = etree.fromstring(signed)
    signature = tree.find(f".//{{{DS}}}Signature")
    tree.find(".//{*}TraceHeaderList").append(etree.fromstring(etree.tostring(signature)))
    doubled = etree.tostring(tree.getroottree(), xml_declaration=True, encoding="UTF-8")
    assert "EDX-SIG-MULTIPLE" in verifier_for(pki).verify(doubled).codes()


def test_duplicate_ids_under_id_and_ID_are_rejected(pki: DevPKI) -> None:
    """Generic mode pins the ID attribute; the same value under another name is refused."""
    document = (b'<root ID="doc"><data>real</data><shadow Id="doc"><data>forged</data>'
                b"</shadow></root>")
    signed = _generic_sign(pki, document, "#doc")
    verifier = verifier_for(pki, bind_signer=False, require_revocation=False)
    report = verifier.verify_generic(signed, id_attribute="ID")
    assert "EDX-SIG-ID" in report.codes()
    clean = _generic_sign(pki, b'<root ID="doc"><data>real</data></root>', "#doc")
    assert verifier.verify_generic(clean, id_attribute="ID").valid


_METHOD = re.compile(rb'(<ds:SignatureMethod Algorithm=")[^"]+(")')


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.replace(b'<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
                             b'<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">'
                             b"<ds:XPath>1</ds:XPath></ds:Transform>"), "XPath transforms"),
        (lambda d: _METHOD.sub(rb"\1http://www.w3.org/2001/04/xmldsig-more#hmac-sha256\2", d),
         "HMAC"),
        (lambda d: _METHOD.sub(rb"\1http://www.w3.org/2000/09/xmldsig#hmac-sha1\2", d), "HMAC"),
        (lambda d: _METHOD.sub(rb"\1http://www.w3.org/2000/09/xmldsig#dsa-sha1\2", d), "DSA"),
        (lambda d: _METHOD.sub(rb"\1http://www.w3.org/2009/xmldsig11#dsa-sha256\2", d), "DSA"),
        (lambda d: d.replace(b"http://www.w3.org/2001/04/xmlenc#sha256",
                             b"http://www.w3.org/2000/09/xmldsig#sha1"), "SHA-1"),
    ],
    ids=["xpath-transform", "hmac-sha256", "hmac-sha1", "dsa-sha1", "dsa-sha256", "sha1-digest"],
)
def test_disallowed_algorithms(pki: DevPKI, signed: bytes, change, reason: str) -> None:  # type: ignore[no-untyped-def]
    tampered = change(signed)
    assert tampered != signed
    report = verifier_for(pki).verify(tampered)
    failures = [f for f in report.failures if f.code == "EDX-SIG-ALGORITHM"]
    assert failures and reason in " ".join(f.message for f in failures)


def test_sha1_only_behind_the_legacy_flag(rsa_pki: DevPKI) -> None:
    signed = _sign_sha1(rsa_pki, package())
    strict = verifier_for(rsa_pki).verify(signed)
    assert "EDX-SIG-ALGORITHM" in strict.codes()
    legacy = verifier_for(rsa_pki, allow_sha1=True).verify(signed)
    assert legacy.valid, legacy.failures
    assert legacy.legacy_sha1 is True
    assert legacy.to_dict()["legacy_sha1"] is True


def test_key_not_chaining_to_our_root(pki: DevPKI, tmp_path_factory: pytest.TempPathFactory) -> None:
    rogue = DevPKI.init(tmp_path_factory.mktemp("rogue"))
    rogue.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central")
    forged = signer_for(rogue, "000.00.00.G22").sign(package())
    report = verifier_for(pki).verify(forged)
    assert "EDX-SIG-UNTRUSTED" in report.codes()
    assert report.parsed is None


def test_same_subject_certificate_with_another_key(pki: DevPKI) -> None:
    """Identical subject and SAN as the real agency, signed by a look-alike CA."""
    real = load_certificates(pki.agency_paths("000.00.00.G22")[1])[0]
    real_ca = load_certificates(pki.ca_path("central"))[0]
    fake_ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    fake_ca = _cert(real_ca.subject, real_ca.subject, fake_ca_key.public_key(), fake_ca_key, now,
                    ca=True)
    fake = _cert(real.subject, real_ca.subject, key.public_key(), fake_ca_key, now, ca=False,
                 san=agency_uri("000.00.00.G22"))
    forged = Signer(key, [fake, fake_ca]).sign(package())
    report = verifier_for(pki).verify(forged)
    assert "EDX-SIG-UNTRUSTED" in report.codes()


def test_expired_certificate(pki: DevPKI) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    pki.issue_agency("000.00.00.H14", "UBND tỉnh Cao Bằng", days=10, now=past)
    signed = signer_for(pki, "000.00.00.H14").sign(
        package(sender=type(H41)(organ_id="000.00.00.H14", organ_name="UBND tỉnh Cao Bằng")))
    report = verifier_for(pki).verify(signed)
    assert "EDX-SIG-EXPIRED" in report.codes()
    assert "is not valid at" in " ".join(f.message for f in report.failures)


def test_revoked_certificate(pki: DevPKI) -> None:
    pki.issue_agency("000.00.00.H01", "UBND TP Hà Nội")
    sender = type(H41)(organ_id="000.00.00.H01", organ_name="UBND TP Hà Nội")
    signed = signer_for(pki, "000.00.00.H01").sign(package(sender=sender))
    assert verifier_for(pki).verify(signed).valid
    pki.revoke("000.00.00.H01")
    report = verifier_for(pki).verify(signed)
    assert "EDX-SIG-REVOKED" in report.codes()
    assert report.chain[0].revocation == "revoked"


def test_missing_crl_is_not_silently_good(pki: DevPKI, signed: bytes) -> None:
    store = TrustStore.load([pki.root_path])  # no CRLs
    report = Verifier(VerificationPolicy(store)).verify(signed)
    assert "EDX-SIG-REVOCATION-UNKNOWN" in report.codes()


def test_wrong_key_usage(pki: DevPKI) -> None:
    pki.issue_agency("000.00.00.H02", "UBND tỉnh Hà Giang", key_usage="encipherment")
    sender = type(H41)(organ_id="000.00.00.H02", organ_name="UBND tỉnh Hà Giang")
    signed = signer_for(pki, "000.00.00.H02").sign(package(sender=sender))
    assert "EDX-SIG-KEY-USAGE" in verifier_for(pki).verify(signed).codes()


def test_signer_must_be_the_from_agency(pki: DevPKI) -> None:
    signed = signer_for(pki, "000.00.00.G22").sign(package(sender=H41))
    report = verifier_for(pki).verify(signed)
    assert "EDX-SIG-SIGNER" in report.codes()
    assert "From 000.00.00.H41" in " ".join(f.message for f in report.failures)


def test_tampered_header(pki: DevPKI, signed: bytes) -> None:
    tampered = signed.replace("V/v kết nối liên thông".encode(), "V/v chuyển tiền".encode())
    assert "EDX-SIG-DIGEST" in verifier_for(pki).verify(tampered).codes()


def test_tampered_attachment_byte(pki: DevPKI, signed: bytes) -> None:
    assert "EDX-SIG-DIGEST" in verifier_for(pki).verify(_tamper_attachment(signed)).codes()


def test_re_serialised_package(pki: DevPKI, signed: bytes) -> None:
    tree = etree.fromstring(signed, etree.XMLParser(remove_blank_text=True))
    pretty = etree.tostring(tree, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    assert pretty != signed
    assert "EDX-SIG-DIGEST" in verifier_for(pki).verify(pretty).codes()


def test_tampered_signature_value(pki: DevPKI, signed: bytes) -> None:
    value = re.search(rb"<ds:SignatureValue>([^<]+)<", signed).group(1)  # type: ignore[union-attr]
    raw = bytearray(base64.b64decode(value))
    raw[5] ^= 0x01
    tampered = signed.replace(value, base64.b64encode(bytes(raw)))
    assert "EDX-SIG-VALUE" in verifier_for(pki).verify(tampered).codes()


# -------------------------------------------------------------------------- helpers
def _tamper_attachment(data: bytes) -> bytes:
    match = re.search(rb"<edXML:ContentTransferEncoded>([A-Za-z0-9+/]+)", data)
    assert match
    start = match.start(1) + 2
    flipped = b"B" if data[start:start + 1] != b"B" else b"C"
    return data[:start] + flipped + data[start + 1:]


def _resign_with_extra_reference(signer: Signer, unsigned: bytes, reference: str) -> bytes:
    """Sign, add a Reference to SignedInfo, and recompute SignatureValue."""
    from docaxis.dsig._algorithms import CANONICALIZATIONS, SIGN_C14N_URI
    from docaxis.dsig._c14n import canonical

    tree = etree.fromstring(signer.sign(unsigned))
    signed_info = tree.find(f".//{{{DS}}}SignedInfo")
    signed_info.append(etree.fromstring(reference))
    value = signer._sign_bytes(canonical(signed_info, CANONICALIZATIONS[SIGN_C14N_URI]))
    tree.find(f".//{{{DS}}}SignatureValue").text = base64.b64encode(value).decode()
    return etree.tostring(tree.getroottree(), xml_declaration=True, encoding="UTF-8")


def _generic_sign(pki: DevPKI, document: bytes, uri: str) -> bytes:
    """Sign a generic document with a detached-style reference (for ID tests)."""
    import hashlib

    from docaxis.dsig._algorithms import CANONICALIZATIONS, SIGN_C14N_URI
    from docaxis.dsig._c14n import canonical

    signer = signer_for(pki, "000.00.00.G22")
    root = etree.fromstring(document)
    method = CANONICALIZATIONS[SIGN_C14N_URI]
    digest = base64.b64encode(hashlib.sha256(canonical(root, method)).digest()).decode()
    signature = signer._signature_element(digest)
    signature.find(f".//{{{DS}}}Reference").set("URI", uri)
    root.append(signature)
    value = signer._sign_bytes(canonical(signature[0], method))
    signature[1].text = base64.b64encode(value).decode()
    return etree.tostring(root)


def _sign_sha1(pki: DevPKI, unsigned: bytes) -> bytes:
    """An RSA-SHA1 / SHA-1 signature, as legacy producers make."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import padding

    from docaxis.dsig._algorithms import CANONICALIZATIONS, SIGN_C14N_URI
    from docaxis.dsig._c14n import canonical

    key_path, _cert, chain = pki.agency_paths("000.00.00.G22")
    signer = Signer.from_files(key_path, chain)
    key = load_private_key(key_path)
    parsed = parse(unsigned)
    method = CANONICALIZATIONS[SIGN_C14N_URI]
    digest = base64.b64encode(hashlib.sha1(canonical(parsed.root.getroottree(), method,
                                                     with_comments=False)).digest()).decode()
    signature = signer._signature_element(digest)
    signature.find(f".//{{{DS}}}SignatureMethod").set("Algorithm", DS + "rsa-sha1")
    signature.find(f".//{{{DS}}}DigestMethod").set("Algorithm", DS + "sha1")
    parsed.locations.header.append(signature)
    value = key.sign(canonical(signature[0], method), padding.PKCS1v15(), hashes.SHA1())  # type: ignore[union-attr,call-arg]
    signature[1].text = base64.b64encode(value).decode()
    return etree.tostring(parsed.root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _cert(subject: x509.Name, issuer: x509.Name, public_key, key, now: dt.datetime, *,  # type: ignore[no-untyped-def]
          ca: bool, san: str | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                   encipher_only=False, decipher_only=False), critical=True))
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=False)
    return builder.sign(key, hashes.SHA256())

