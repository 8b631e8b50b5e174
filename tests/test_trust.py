"""Issue #10: trust exactly what was verified.

Each test here fails when the defence it names is removed: one reading of every leaf
(no comments or processing instructions hiding in a signed value), one of each block,
UTF-8 only, no crash for any input, bounded work, bounded request bodies.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import (
    DuplicateBlock,
    HiddenMarkup,
    ParseError,
    StatusBuilder,
    parse,
    validate,
    write,
)
from docaxis.edxml._validator import MAX_FINDINGS
from docaxis.pki import DevPKI
from tests.dsig_support import G22, H41, package

DS = "http://www.w3.org/2000/09/xmldsig#"


@pytest.fixture(scope="module")
def trust_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    pki = DevPKI.init(tmp_path_factory.mktemp("trust-pki"), key_type="ec-p256")
    for org, tier in ((G22, "central"), (H41, "province")):
        pki.issue_agency(org.organ_id or "", org.organ_name or "", tier=tier,
                         key_type="ec-p256")
    return pki


@pytest.fixture(scope="module")
def signer(trust_pki: DevPKI) -> Signer:
    key, _cert, chain = trust_pki.agency_paths("000.00.00.G22")
    return Signer.from_files(key, chain)


@pytest.fixture(scope="module")
def verifier(trust_pki: DevPKI) -> Verifier:
    return Verifier(VerificationPolicy(TrustStore.load([trust_pki.root_path],
                                                       crls=[trust_pki.crl_folder])))


@pytest.fixture(scope="module")
def signed(signer: Signer) -> bytes:
    return signer.sign(package())


@pytest.fixture(scope="module")
def signed_status(trust_pki: DevPKI, signed: bytes) -> bytes:
    key, _cert, chain = trust_pki.agency_paths("000.00.00.H41")
    status = (StatusBuilder().sender(H41).responding_to(parse(signed).package)  # type: ignore[arg-type]
              .status("03").build())
    return Signer.from_files(key, chain).sign(write(status))


def _refused_everywhere(data: bytes, verifier: Verifier, code: str) -> None:
    """Refused by the parser, by both validation profiles and by the verifier."""
    with pytest.raises(ParseError) as raised:
        parse(data)
    assert raised.value.code == code, raised.value
    for profile in ("interop", "strict"):
        report = validate(data, profile=profile)  # type: ignore[arg-type]
        assert not report.valid and code in report.codes(), report.codes()
    verification = verifier.verify(data)
    assert not verification.valid and code in verification.codes()


# 1. one reading of every leaf ---------------------------------------------------------
def _insert_after(data: bytes, pattern: str, insertion: str) -> bytes:
    text = data.decode()
    match = re.search(pattern, text)
    assert match is not None, pattern
    return (text[:match.end()] + insertion + text[match.end():]).encode()


@pytest.mark.parametrize("where", [
    r"<edXML:Subject>V/v",                       # Subject
    r"<edXML:DocumentId>000\.00",                # DocumentId
    r"<edXML:To>\s*<edXML:OrganId>000\.00",      # To/OrganId
    r"<edXML:ContentTransferEncoded>....",       # an attachment's base64
])
@pytest.mark.parametrize("markup", ["<!---->", "<?x y?>"])
def test_a_comment_or_pi_inside_a_signed_value_is_refused(
        signed: bytes, verifier: Verifier, where: str, markup: str) -> None:
    assert verifier.verify(signed).valid
    altered = _insert_after(signed, where, markup)
    _refused_everywhere(altered, verifier, "EDX-XML-COMMENT")


def test_a_comment_inside_a_status_code_is_refused(signed_status: bytes,
                                                   verifier: Verifier) -> None:
    altered = _insert_after(signed_status, r"<edXML:StatusCode>0", "<!---->")
    _refused_everywhere(altered, verifier, "EDX-XML-COMMENT")


def test_comments_are_still_read_in_generic_xmldsig_documents() -> None:
    from docaxis.edxml import parse_xml

    assert parse_xml(b"<a><!-- fine in generic mode --><b/></a>").tag == "a"


# 2. one of each block ----------------------------------------------------------------
@pytest.mark.parametrize("block", ["MessageHeader", "TraceHeaderList", "edXMLBody",
                                   "AttachmentEncoded", "Bussiness"])
def test_a_duplicated_singleton_block_is_refused(signed: bytes, verifier: Verifier,
                                                 block: str) -> None:
    text = signed.decode()
    match = re.search(rf"<edXML:{block}>.*?</edXML:{block}>", text, re.S)
    assert match is not None, block
    doubled = (text[:match.end()] + match.group(0) + text[match.end():]).encode()
    _refused_everywhere(doubled, verifier, "EDX-XML-DUPLICATE")


def test_a_second_header_and_envelope_are_refused(signed: bytes) -> None:
    text = signed.decode()
    for block in ("edXMLHeader", "edXMLEnvelope"):
        match = re.search(rf"<edXML:{block}>.*?</edXML:{block}>", text, re.S)
        assert match is not None
        with pytest.raises(DuplicateBlock):
            parse((text[:match.end()] + match.group(0) + text[match.end():]).encode())


def test_duplicate_attachment_content_ids_are_refused(verifier: Verifier) -> None:
    from docaxis.edxml import DocumentBuilder

    builder = (DocumentBuilder().sender(G22).recipient(H41).code("1", "VPCP")
               .promulgation(dt.date(2024, 5, 2), "Hà Nội").document_type(1, "Công văn")
               .subject("V/v").attach("a.pdf", b"a", content_id="cid:1"))
    data = write(builder.build())
    text = data.decode()
    match = re.search(r"<edXML:Attachment>.*?</edXML:Attachment>", text, re.S)
    assert match is not None
    doubled = (text[:match.end()] + match.group(0) + text[match.end():]).encode()
    _refused_everywhere(doubled, verifier, "EDX-XML-DUPLICATE")


# 3. UTF-8 only ------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-32-be", "utf-32-le", "utf-16-be", "utf-16-le",
                                      "cp500"])
def test_a_signed_package_in_another_encoding_is_refused(signed: bytes, verifier: Verifier,
                                                         encoding: str) -> None:
    text = signed.decode()
    if encoding == "cp500":  # EBCDIC: keep only characters it has
        text = text.encode("ascii", "xmlcharrefreplace").decode()
    data = text.encode(encoding)
    _refused_everywhere(data, verifier, "EDX-XML-ENCODING")
    with pytest.raises(ParseError) as raised:  # judged from the first bytes, before libxml2
        parse(data)
    expected = {"utf-32-be": "UTF-32", "utf-32-le": "UTF-32", "utf-16-be": "UTF-16",
                "utf-16-le": "UTF-16", "cp500": "EBCDIC"}[encoding]
    assert expected in raised.value.message and raised.value.line == 1


def test_utf32_with_a_doctype_is_refused_as_an_encoding(verifier: Verifier) -> None:
    data = '<!DOCTYPE x [<!ENTITY e "boom">]><edXML>&e;</edXML>'.encode("utf-32-le")
    assert verifier.verify(data).codes() == {"EDX-XML-ENCODING"}


# 4. never crash ------------------------------------------------------------------------
def test_a_relative_namespace_uri_is_refused_not_a_crash(signed: bytes,
                                                         verifier: Verifier) -> None:
    altered = signed.replace(b"<edXML:edXMLEnvelope", b'<edXML:edXMLEnvelope xmlns:x="u"', 1)
    _refused_everywhere(altered, verifier, "EDX-XML-NAMESPACE-URI")
    generic = verifier.verify_generic(b'<a xmlns:x="rel"><x:b/></a>')
    assert generic.codes() == {"EDX-XML-NAMESPACE-URI"}


def test_a_text_node_over_libxml2s_limit_is_a_finding(signed: bytes,
                                                      verifier: Verifier) -> None:
    altered = signed.replace(b"<edXML:Subject>", b"<edXML:Subject>" + b"x" * 10_100_000, 1)
    report = validate(altered)  # once an internal XSD error (a 500); now a length finding
    assert "EDX-LENGTH" in report.codes()
    assert validate(altered, profile="strict").codes() >= {"EDX-LENGTH"}
    assert verifier.verify(altered).codes() == {"EDX-SIG-DIGEST"}


@pytest.mark.parametrize("value", ["²", "①", "١", "9" * 5000, "1" * 19])
def test_odd_digits_in_integer_fields_are_findings(signed: bytes, value: str) -> None:
    for tag in ("BussinessDocType", "Priority", "SteeringType"):
        pattern = rf"<edXML:{tag}>[^<]*</edXML:{tag}>"
        text = signed.decode()
        if not re.search(pattern, text):
            continue
        altered = re.sub(pattern, f"<edXML:{tag}>{value}</edXML:{tag}>", text, count=1).encode()
        report = validate(altered)
        assert not report.valid, (tag, value)
        parse(altered).package  # the model reads it without raising  # noqa: B018


def test_unicode_digits_are_not_a_date(signed: bytes) -> None:
    altered = re.sub(r"<edXML:PromulgationDate>[^<]*<", "<edXML:PromulgationDate>٢٠٢٤/٠٥/٠٢<",
                     signed.decode(), count=1).encode()
    assert "EDX-DATE-FORMAT" in validate(altered).codes()


def _replace_certificate(data: bytes, der: bytes) -> bytes:
    text = data.decode()
    return re.sub(r"<ds:X509Certificate>[^<]*</ds:X509Certificate>",
                  f"<ds:X509Certificate>{base64.b64encode(der).decode()}</ds:X509Certificate>",
                  text, count=1).encode()


def _leaf_der(trust_pki: DevPKI) -> bytes:
    _key, cert, _chain = trust_pki.agency_paths("000.00.00.G22")
    return x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)


def test_a_certificate_with_an_unknown_signature_algorithm_is_a_failure(
        signed: bytes, trust_pki: DevPKI, verifier: Verifier) -> None:
    der = _leaf_der(trust_pki)
    ecdsa_sha256 = bytes.fromhex("06082a8648ce3d040302")
    assert ecdsa_sha256 in der
    odd = der.replace(ecdsa_sha256, bytes.fromhex("06082a8648ce3d040309"))
    report = verifier.verify(_replace_certificate(signed, odd))
    assert not report.valid and report.failures


def test_a_certificate_with_an_invalid_public_key_is_a_failure(
        signed: bytes, trust_pki: DevPKI, verifier: Verifier) -> None:
    der = _leaf_der(trust_pki)
    cert = x509.load_der_x509_certificate(der)
    point = cert.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    broken = der.replace(point, point[:-1] + bytes([point[-1] ^ 1]))  # off the curve
    report = verifier.verify(_replace_certificate(signed, broken))
    assert not report.valid
    assert "EDX-SIG-CERTIFICATE" in report.codes()


# 5. bounded work ------------------------------------------------------------------------
def test_structure_is_judged_before_any_digest(signed: bytes, verifier: Verifier) -> None:
    text = signed.decode()
    reference = re.search(r"<ds:Reference URI=\"\">.*?</ds:Reference>", text, re.S)
    assert reference is not None
    twice = text.replace(reference.group(0), reference.group(0) * 2, 1).encode()
    report = verifier.verify(twice)  # two URI="" references: the "exactly one" rule
    assert report.codes() == {"EDX-SIG-REFERENCE"}
    assert report.covers == () and report.chain == ()  # no digest, no chain was worked out


def test_thousands_of_references_are_refused_before_any_digest(signed: bytes,
                                                              verifier: Verifier) -> None:
    text = signed.decode()
    reference = re.search(r"<ds:Reference URI=\"\">.*?</ds:Reference>", text, re.S)
    assert reference is not None
    many = text.replace(reference.group(0), reference.group(0) * 1_000, 1).encode()
    report = verifier.verify(many)
    assert report.codes() == {"EDX-SIG-LIMIT"} and report.covers == ()


@pytest.mark.parametrize("attack", ["attributes", "certificates", "transforms"])
def test_signature_shape_caps(signed: bytes, verifier: Verifier, attack: str) -> None:
    text = signed.decode()
    if attack == "attributes":
        text = text.replace("<ds:SignedInfo>", "<ds:SignedInfo " + " ".join(
            f'a{i}="{i}"' for i in range(500)) + ">", 1)
    elif attack == "certificates":
        cert = re.search(r"<ds:X509Certificate>.*?</ds:X509Certificate>", text, re.S)
        assert cert is not None
        text = text.replace(cert.group(0), cert.group(0) * 50, 1)
    else:
        text = text.replace("<ds:Transforms>", "<ds:Transforms>" + (
            f'<ds:Transform Algorithm="{DS}enveloped-signature"/>' * 10), 1)
    assert "EDX-SIG-LIMIT" in verifier.verify(text.encode()).codes()


def test_element_count_and_namespace_caps(signed: bytes, verifier: Verifier) -> None:
    dense = signed.replace(b"</edXML:edXMLBody>", b"<edXML:X/>" * 30_000 + b"</edXML:edXMLBody>")
    assert verifier.verify(dense).codes() == {"EDX-XML-LIMIT"}
    # many elements, none with too many children and few enough tags to be parsed: the
    # element cap judged on the tree
    many = signed.replace(b"</edXML:edXMLBody>",
                          (b"<x>" + b"<y/>" * 900 + b"</x>") * 12 + b"</edXML:edXMLBody>")
    with pytest.raises(ParseError) as raised:
        parse(many)
    assert raised.value.code == "EDX-XML-LIMIT"
    assert "more than 10000 elements" in raised.value.message
    namespaces = signed.replace(b"<edXML:Subject>", b"<edXML:Subject " + b" ".join(
        f'xmlns:n{i}="urn:n:{i}"'.encode() for i in range(300)) + b">", 1)
    assert verifier.verify(namespaces).codes() == {"EDX-XML-LIMIT"}
    # large inputs are counted before libxml2 parses them: namespaces and attributes
    padding = b"QUFB" * 30_000
    for tag in (b" ".join(f'xmlns:n{i}="urn:n:{i}"'.encode() for i in range(300)),
                b" ".join(f'a{i}="{i}"'.encode() for i in range(25_000))):
        crowded = signed.replace(b"<ds:SignedInfo>", b"<ds:SignedInfo " + tag + b">", 1) \
            .replace(b"<edXML:ContentTransferEncoded>",
                     b"<edXML:ContentTransferEncoded>" + padding, 1)
        with pytest.raises(ParseError) as raised:
            parse(crowded)
        assert raised.value.code == "EDX-XML-LIMIT"


def test_a_report_stops_after_its_finding_limit(signed: bytes) -> None:
    bad = "<edXML:To><edXML:OrganId>28.22.H17</edXML:OrganId></edXML:To>"
    text = signed.decode().replace("<edXML:To>", bad * 1_000 + "<edXML:To>", 1)
    report = validate(text.encode())
    assert len(report.findings) <= MAX_FINDINGS + 1
    assert "EDX-FINDINGS-TRUNCATED" in report.codes()


def test_duplicate_recipients_are_found_without_the_xsd_key(signed: bytes) -> None:
    text = signed.decode()
    to = re.search(r"<edXML:To>.*?</edXML:To>", text, re.S)
    assert to is not None
    doubled = text.replace(to.group(0), to.group(0) * 2, 1).encode()
    assert "EDX-TO-DUPLICATE" in validate(doubled).codes()


def test_hidden_markup_error_names_the_element_and_line(signed: bytes) -> None:
    altered = _insert_after(signed, r"<edXML:Subject>V/v", "<!---->")
    with pytest.raises(HiddenMarkup) as raised:
        parse(altered)
    assert "Subject" in raised.value.message and raised.value.line is not None


def test_fixture_paths_exist(trust_pki: DevPKI) -> None:
    assert Path(trust_pki.root_path).is_file()


# 12. tolerances that break peers become warnings ------------------------------------
@pytest.mark.parametrize(("pattern", "replacement"), [
    (r"<edXML:SteeringType>(\d)</", r"<edXML:SteeringType> \1 </"),
    (r"<edXML:SteeringType>\d</", r"<edXML:SteeringType></"),
    (r"<edXML:BussinessDocType>(\d)</", r"<edXML:BussinessDocType>\1 </"),
    (r"<edXML:DocumentId>([^<]*)</", r"<edXML:DocumentId> \1</"),
    (r"<(/?)edXML:Bussiness>", r"<\1edXML:Business>"),
])
def test_forms_the_vnpt_library_misreads_are_interop_warnings(
        pattern: str, replacement: str) -> None:
    from docaxis.edxml import DocumentBuilder

    data = write(DocumentBuilder().sender(G22).recipient(H41).code("1", "VPCP")
                 .promulgation(dt.date(2024, 5, 2), "Hà Nội").document_type(1, "Công văn")
                 .subject("V/v").steering_type(1).build()).decode()
    assert re.search(pattern, data), pattern
    altered = re.sub(pattern, replacement, data).encode()
    interop = validate(altered)
    assert interop.valid and "EDX-PEER-COMPAT" in interop.codes(), interop.codes()
    assert "EDX-PEER-COMPAT" in {f.code for f in validate(altered, profile="strict").errors}


def test_status_in_place_of_message_header_is_a_warning(signed_status: bytes) -> None:
    text = signed_status.decode()
    start = text.index("<edXML:MessageHeader>")
    end = text.index("</edXML:MessageHeader>")
    body = text[start:end + len("</edXML:MessageHeader>")]
    altered = text.replace(body, body.replace("edXML:MessageHeader", "edXML:Status")).encode()
    assert "EDX-PEER-COMPAT" in validate(altered).codes()


def test_the_builder_never_writes_padded_text() -> None:
    from docaxis.edxml import DocumentBuilder

    package = (DocumentBuilder().sender(G22).recipient(H41).code(" 12 ", " VPCP ")
               .promulgation(dt.date(2024, 5, 2), " Hà Nội ").document_type(1, "Công văn")
               .subject(" V/v ").build())
    data = write(package)
    assert b"> 12 <" not in data and b"<edXML:CodeNumber>12</edXML:CodeNumber>" in data
    again = parse(data).package
    assert write(again) == data  # the round trip holds


# 7. revocation that takes effect ------------------------------------------------------
def test_a_stale_crl_is_never_good(trust_pki: DevPKI, signed: bytes) -> None:
    crl = x509.load_pem_x509_crl(next(Path(trust_pki.crl_folder).glob("*central*")).read_bytes()) \
        if list(Path(trust_pki.crl_folder).glob("*central*")) else None
    store = TrustStore.load([trust_pki.root_path], crls=[trust_pki.crl_folder])
    assert crl is not None and crl.next_update_utc is not None
    late = crl.next_update_utc + dt.timedelta(hours=1)
    strict = Verifier(VerificationPolicy(store, at=late)).verify(signed)
    assert "EDX-SIG-CRL-STALE" in strict.codes()
    assert all(link.revocation != "good" for link in strict.chain)
    lenient = Verifier(VerificationPolicy(store, at=late, require_revocation=False)).verify(signed)
    assert all(link.revocation != "good" for link in lenient.chain)
    graced = TrustStore.load([trust_pki.root_path], crls=[trust_pki.crl_folder],
                             crl_grace=dt.timedelta(days=1))
    within = Verifier(VerificationPolicy(graced, at=late)).verify(signed)
    assert within.valid
    assert any("within the configured grace" in link.revocation for link in within.chain)
