"""Each validator rule: its code, severity, element path and line."""

from __future__ import annotations

import datetime as dt

import pytest

from docaxis.edxml import Finding, Severity, ValidationReport, validate


def _mutate(data: bytes, old: str, new: str, count: int = 1) -> bytes:
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), count)


def _only(report: ValidationReport, code: str) -> Finding:
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, report.findings
    return found[0]


def _line_of(data: bytes, needle: str) -> int:
    return data[: data.index(needle.encode())].count(b"\n") + 1


def test_a_built_package_is_valid_in_both_profiles(document_bytes: bytes) -> None:
    for profile in ("interop", "strict"):
        report = validate(document_bytes, profile=profile)
        assert report.valid, report.findings
        assert report.codes() == {"EDX-SIGNATURE-MISSING"}


def test_bad_agency_code_names_field_path_and_line(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "<edXML:OrganId>000.00.00.H41", "<edXML:OrganId>00.53.W00")
    finding = _only(validate(data), "EDX-ID-FORMAT")
    assert finding.severity is Severity.ERROR
    assert finding.path == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId"
    assert finding.line == _line_of(data, "00.53.W00")
    assert "To/OrganId" in finding.message and "found 3" in finding.message


def test_trace_header_agency_code_is_checked(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "<edXML:OrganId>000.00.00.G22</edXML:OrganId>\n          <edXML:Timestamp>",
                   "<edXML:OrganId>01.02.G22</edXML:OrganId>\n          <edXML:Timestamp>")
    finding = _only(validate(data), "EDX-ID-FORMAT")
    assert finding.path.endswith("TraceHeaderList/TraceHeader/OrganId")


def test_future_promulgation_date_is_an_error(document_bytes: bytes) -> None:
    report = validate(document_bytes, today=dt.date(2024, 5, 1))
    finding = _only(report, "EDX-DATE-FUTURE")
    assert finding.severity is Severity.ERROR
    assert finding.path.endswith("PromulgationInfo/PromulgationDate")
    assert validate(document_bytes, today=dt.date(2024, 5, 2)).valid


def test_legacy_date_form_is_a_warning_in_interop_and_an_error_in_strict(
    document_bytes: bytes,
) -> None:
    data = _mutate(document_bytes, "<edXML:PromulgationDate>2024/05/02",
                   "<edXML:PromulgationDate>02/05/2024")
    interop = validate(data)
    assert interop.valid
    assert _only(interop, "EDX-DATE-FORMAT-LEGACY").severity is Severity.WARNING
    assert interop.parsed.package.header.promulgation_info.promulgation_date == dt.date(2024, 5, 2)
    strict = validate(data, profile="strict")
    assert not strict.valid


@pytest.mark.parametrize("bad", ["2024/13/02", "2024-05-02", "yesterday", "2024/02/30"])
def test_unreadable_dates_are_errors(document_bytes: bytes, bad: str) -> None:
    data = _mutate(document_bytes, "<edXML:PromulgationDate>2024/05/02",
                   f"<edXML:PromulgationDate>{bad}")
    finding = _only(validate(data), "EDX-DATE-FORMAT")
    assert finding.severity is Severity.ERROR and bad in finding.message


def test_duplicate_recipient(document_bytes: bytes) -> None:
    to = ("<edXML:To>\n          <edXML:OrganId>000.00.00.H41</edXML:OrganId>\n"
          "          <edXML:OrganName>UBND tỉnh Nghệ An</edXML:OrganName>\n        </edXML:To>")
    data = _mutate(document_bytes, to, to + "\n        " + to)
    finding = _only(validate(data), "EDX-TO-DUPLICATE")
    assert finding.path.endswith("MessageHeader/To[2]")
    assert "000.00.00.H41" in finding.message


def test_manifest_and_attachments_match_after_stripping_cid(document_bytes: bytes) -> None:
    # "cid:1" in the manifest and "1" on the attachment are the same content id
    same = _mutate(document_bytes, "<edXML:ContentId>cid:1</edXML:ContentId>\n      <edXML:AttachmentName>",
                   "<edXML:ContentId>1</edXML:ContentId>\n      <edXML:AttachmentName>")
    assert validate(same).valid
    other = _mutate(document_bytes, "<edXML:ContentId>cid:1</edXML:ContentId>\n      <edXML:AttachmentName>",
                    "<edXML:ContentId>cid:2</edXML:ContentId>\n      <edXML:AttachmentName>")
    findings = [f for f in validate(other).findings if f.code == "EDX-MANIFEST-MISMATCH"]
    assert {f.path for f in findings} == {
        "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference",
        "/edXML/AttachmentEncoded/Attachment",
    }


def test_attachment_that_is_not_base64(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "JVBERi0xLjcgdGVzdA==", "${__StringFromFile(test.txt,,,)}")
    finding = _only(validate(data), "EDX-ATTACHMENT-BASE64")
    assert finding.path.endswith("Attachment/ContentTransferEncoded")


def test_unknown_status_code(document_bytes: bytes) -> None:
    from docaxis.edxml import StatusBuilder, parse, write
    from tests.conftest import sample_document

    status = write(StatusBuilder()
                   .sender(__import__("docaxis.edxml").edxml.Organization(
                       organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"))
                   .responding_to(sample_document()).status("03").build())
    assert validate(status).valid
    data = _mutate(status, "<edXML:StatusCode>03", "<edXML:StatusCode>07")
    finding = _only(validate(data), "EDX-STATUS-CODE")
    assert "07" in finding.message and finding.path.endswith("MessageHeader/StatusCode")
    assert parse(data).package.status_code == "07"


def test_unknown_codes_of_priority_and_business_type(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "<edXML:BussinessDocType>0", "<edXML:BussinessDocType>7")
    finding = _only(validate(data), "EDX-CODE-UNKNOWN")
    assert finding.path.endswith("Bussiness/BussinessDocType")


def test_replace_without_replacement_info_is_an_error(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "<edXML:BussinessDocType>0", "<edXML:BussinessDocType>3")
    finding = _only(validate(data), "EDX-BUSINESS")
    assert finding.severity is Severity.ERROR
    assert finding.path.endswith("TraceHeaderList/Bussiness")


def test_business_spelling_is_accepted(document_bytes: bytes) -> None:
    data = document_bytes.replace(b"edXML:Bussiness>", b"edXML:Business>")
    report = validate(data)
    assert report.valid
    assert report.parsed.package.business.business_doc_type == 0


def test_over_long_text_is_a_warning_in_interop_and_an_error_in_strict(
    document_bytes: bytes,
) -> None:
    data = _mutate(document_bytes, "<edXML:CodeNumber>7816", "<edXML:CodeNumber>781678167816")
    interop = validate(data)
    assert interop.valid
    assert _only(interop, "EDX-LENGTH").severity is Severity.WARNING
    strict = validate(data, profile="strict")
    assert not strict.valid
    assert any(f.code == "EDX-LENGTH" and f.severity is Severity.ERROR for f in strict.findings)


def test_missing_and_empty_required_elements(document_bytes: bytes) -> None:
    missing = _mutate(document_bytes,
                      "<edXML:Subject>V/v kết nối, liên thông phần mềm quản lý văn bản</edXML:Subject>", "")
    finding = _only(validate(missing), "EDX-REQUIRED")
    assert "Subject" in finding.message and finding.path.endswith("/MessageHeader")
    empty = _mutate(document_bytes,
                    "<edXML:Subject>V/v kết nối, liên thông phần mềm quản lý văn bản</edXML:Subject>",
                    "<edXML:Subject>  </edXML:Subject>")
    finding = _only(validate(empty), "EDX-REQUIRED-EMPTY")
    assert finding.path.endswith("/MessageHeader/Subject")


def test_repeated_single_element(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "<edXML:Subject>", "<edXML:Subject>Again</edXML:Subject><edXML:Subject>")
    finding = _only(validate(data), "EDX-DUPLICATE")
    assert finding.path.endswith("MessageHeader/Subject[2]")


def test_unknown_element_is_reported_by_the_schema(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "<edXML:Subject>", "<edXML:Colour>red</edXML:Colour><edXML:Subject>")
    finding = _only(validate(data), "EDX-SCHEMA-UNEXPECTED")
    assert finding.path.endswith("MessageHeader/Colour")
    assert finding.line == _line_of(data, "<edXML:Colour>")


def test_any_order_and_prefix_style_in_interop_but_not_strict(document_bytes: bytes) -> None:
    # move DocumentId after Content and write children unprefixed
    doc_id = "<edXML:DocumentId>000.00.00.G22,2024/05/02,7816/VPCP-TTĐT</edXML:DocumentId>"
    data = _mutate(document_bytes, doc_id, "")
    data = _mutate(data, "</edXML:MessageHeader>", doc_id + "</edXML:MessageHeader>")
    data = data.replace(b"<edXML:OrganName>", b"<OrganName>").replace(
        b"</edXML:OrganName>", b"</OrganName>")
    interop = validate(data)
    assert interop.valid, interop.findings
    strict = validate(data, profile="strict")
    assert "EDX-PREFIX" in strict.codes(Severity.ERROR)
    assert "EDX-SCHEMA-UNEXPECTED" in strict.codes(Severity.ERROR)  # order


def test_legacy_signature_warns_and_two_xmldsig_signatures_are_errors(
    document_bytes: bytes,
) -> None:
    legacy = _mutate(document_bytes, "</edXML:edXMLHeader>",
                     "<Signature><SignedInfo/></Signature></edXML:edXMLHeader>")
    report = validate(legacy)
    assert report.valid
    assert _only(report, "EDX-SIGNATURE-LEGACY").severity is Severity.WARNING
    ds = '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    two = _mutate(document_bytes, "</edXML:edXMLHeader>", ds + ds + "</edXML:edXMLHeader>")
    assert "EDX-SIGNATURE-MULTIPLE" in validate(two).codes(Severity.ERROR)
    misplaced = _mutate(document_bytes, "<edXML:TraceHeaderList>", ds + "<edXML:TraceHeaderList>")
    assert "EDX-SIGNATURE-PLACE" in validate(misplaced).codes(Severity.ERROR)
    nested = _mutate(document_bytes, "</edXML:Code>", ds + "</edXML:Code>")
    assert not validate(nested).valid


def test_report_json_shape(document_bytes: bytes) -> None:
    report = validate(document_bytes, source="x.edxml")
    data = report.to_dict()
    assert data["valid"] is True and data["kind"] == "document" and data["source"] == "x.edxml"
    assert data["sha256"] == report.parsed.sha256 and len(data["sha256"]) == 64
    assert data["findings"][0]["code"] == "EDX-SIGNATURE-MISSING"


def test_unknown_profile_is_a_usage_error(document_bytes: bytes) -> None:
    with pytest.raises(ValueError):
        validate(document_bytes, profile="lenient")  # type: ignore[arg-type]


def test_empty_optional_blocks_count_as_absent(document_bytes: bytes) -> None:
    empty = ("<edXML:ResponseFor><edXML:OrganId></edXML:OrganId><edXML:Code/>"
             "<edXML:PromulgationDate></edXML:PromulgationDate><edXML:DocumentId/>"
             "</edXML:ResponseFor><edXML:SignerInfo><edXML:FullName/></edXML:SignerInfo>")
    data = _mutate(document_bytes, "</edXML:MessageHeader>", empty + "</edXML:MessageHeader>")
    report = validate(data)
    assert report.valid, report.findings
    assert report.parsed.package.header.response_for == ()
    assert report.parsed.package.header.signer_info is None


def test_an_empty_required_block_is_reported_once_at_the_block(document_bytes: bytes) -> None:
    data = _mutate(document_bytes,
                   "<edXML:OrganId>000.00.00.H41</edXML:OrganId>\n          <edXML:OrganName>UBND tỉnh Nghệ An</edXML:OrganName>",
                   "<edXML:OrganId> </edXML:OrganId><edXML:OrganName/>")
    finding = _only(validate(data), "EDX-REQUIRED-EMPTY")
    assert finding.path.endswith("MessageHeader/To")


def test_an_empty_required_leaf_in_a_filled_block(document_bytes: bytes) -> None:
    data = _mutate(document_bytes, "<edXML:OrganName>UBND tỉnh Nghệ An</edXML:OrganName>",
                   "<edXML:OrganName> </edXML:OrganName>")
    finding = _only(validate(data), "EDX-REQUIRED-EMPTY")
    assert finding.path.endswith("MessageHeader/To/OrganName")


def test_leap_days(document_bytes: bytes) -> None:
    ok = _mutate(document_bytes, "2024/05/02</edXML:PromulgationDate>", "2024/02/29</edXML:PromulgationDate>")
    assert validate(ok).valid
    bad = _mutate(document_bytes, "2024/05/02 09:00:00", "2023/02/29 09:00:00")
    finding = _only(validate(bad), "EDX-DATE-FORMAT")
    assert finding.path.endswith("TraceHeader/Timestamp")
