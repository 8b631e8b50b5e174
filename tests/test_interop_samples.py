"""The VPCP field samples each give what ../shared/interop/README.md says they should."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from docaxis.edxml import (
    DocumentPackage,
    MalformedXML,
    Severity,
    StatusPackage,
    parse,
    schema_for,
    validate,
    write,
)

pytestmark = pytest.mark.interop


def _read(folder: Path, name: str) -> bytes:
    return (folder / name).read_bytes()


def test_edoc_new_fields_attachment_and_the_bad_recipient_code(vpcp: Path) -> None:
    data = _read(vpcp, "edoc_new.edxml")
    parsed = parse(data)
    package = parsed.package
    assert isinstance(package, DocumentPackage)
    assert parsed.source == data
    assert package.sender == "000.00.00.A80"
    assert package.recipients == ("28.22.H17",)
    assert package.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert package.header.code is not None
    assert str(package.header.code) == "74fass22/VPCP-TTĐT"
    assert package.header.promulgation_info.promulgation_date == dt.date(2019, 1, 16)
    assert package.header.subject == "V/v kết nối, liên thông phần mềm quản lý văn bản"
    assert package.header.to_places == ("Cac bo va co quan ngang bo",
                                        "Uy ban nhan dan cac tinh, TP")
    [attachment] = package.attachments
    assert attachment.content_id == "cid:209"
    with attachment.content.open() as stream:
        assert stream.read(4) == b"PK\x03\x04"  # the zip the manifest announces
    assert attachment.content.size == 270_823

    report = validate(data)
    assert not report.valid
    [error] = report.errors
    assert error.code == "EDX-ID-FORMAT"
    assert error.path == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId"
    assert error.line == 18
    assert "28.22.H17" in error.message
    assert report.codes(Severity.WARNING) == {"EDX-SIGNATURE-LEGACY"}
    assert parsed.signature is not None and parsed.signature.form == "legacy"


def test_variant_b_is_valid_except_the_date_form_and_the_legacy_signature(vpcp: Path) -> None:
    report = validate(_read(vpcp, "edoc_new-variant-b.edxml"))
    assert report.valid
    assert report.codes(Severity.WARNING) == {"EDX-DATE-FORMAT-LEGACY", "EDX-SIGNATURE-LEGACY"}
    date_warning = next(f for f in report.findings if f.code == "EDX-DATE-FORMAT-LEGACY")
    assert date_warning.line == 33
    assert date_warning.path.endswith("PromulgationInfo/PromulgationDate")
    package = report.parsed.package
    assert package.header.promulgation_info.promulgation_date == dt.date(2020, 10, 30)
    # empty optional elements are absent, not empty strings
    assert package.header.from_.organ_add is None
    assert package.header.signer_info is None
    assert package.header.due_date is None
    assert package.header.other_info.appendixes == ()


def test_update_carries_its_receiver_list(vpcp: Path) -> None:
    report = validate(_read(vpcp, "edoc_update.edxml"))
    assert report.valid
    package = report.parsed.package
    assert package.business_doc_type == 2
    info = package.business.business_document_info
    assert [(r.organ_id, r.receiver_type) for r in info.receivers] == [
        ("000.00.00.H41", 0), ("000.00.00.H14", 1)]


def test_replacement_lists_what_it_replaces(vpcp: Path) -> None:
    report = validate(_read(vpcp, "edoc_replacement.edxml"))
    assert report.valid
    package = report.parsed.package
    assert package.business_doc_type == 3
    assert len(package.business.replacements) == 2
    assert package.business.replacements[0].organ_ids == ("000.00.00.H41", "000.00.00.H14")


def test_revocation_is_a_recall(vpcp: Path) -> None:
    report = validate(_read(vpcp, "edoc_revocation.edxml"))
    assert report.valid
    assert report.parsed.package.business_doc_type == 1
    # no Bussiness/DocumentId: reported, not fatal
    assert "EDX-BUSINESS" in report.codes(Severity.WARNING)


def test_test_traffic_has_three_recipients_and_order_does_not_matter(vpcp: Path) -> None:
    report = validate(_read(vpcp, "test-traffic-dc0bdef0.edxml"))
    assert report.valid
    package = report.parsed.package
    assert len(package.recipients) == 3
    # Bussiness comes before TraceHeader in this producer's output
    assert package.trace.trace_headers[0].organ_id == "000.00.00.G22"
    assert package.business_doc_type == 0
    assert report.codes(Severity.WARNING) == {"EDX-SIGNATURE-LEGACY"}


STATUS_FILES = {
    "status.edxml": "01",
    "status_inbox_01.edxml": "01",
    "status_rejection_02.edxml": "02",
    "status_acceptance_03.edxml": "03",
    "status_assignment_04.edxml": "04",
    "status_processing_05.edxml": "05",
    "status_processing_05-variant-b.edxml": "05",
    "status_finish_06.edxml": "06",
    "status_cancellation_13.edxml": "13",
    "status_change-acceptance_15.edxml": "15",
    "status_change-rejection_16.edxml": "16",
}


@pytest.mark.parametrize(("name", "code"), sorted(STATUS_FILES.items()))
def test_status_packages_parse_with_their_code(vpcp: Path, name: str, code: str) -> None:
    report = validate(_read(vpcp, name))
    assert report.valid, report.findings
    package = report.parsed.package
    assert isinstance(package, StatusPackage)
    assert package.status_code == code
    # receipts come from the recipient; a recall request (13) from the original sender
    assert package.sender == ("000.00.00.G22" if code == "13" else "000.00.00.H41")
    assert package.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"


def test_the_status_corpus_covers_every_code(vpcp: Path) -> None:
    found = {parse(p.read_bytes()).package.status_code for p in vpcp.glob("status*.edxml")}
    assert found == {"01", "02", "03", "04", "05", "06", "13", "15", "16"}


def test_broken_nested_from_is_rejected_with_line_and_column(vpcp: Path) -> None:
    data = _read(vpcp, "broken-nested-from.edxml")
    with pytest.raises(MalformedXML) as caught:
        parse(data)
    assert caught.value.code == "EDX-XML-MALFORMED"
    assert (caught.value.line, caught.value.column) == (74, 29)
    report = validate(data)
    [finding] = report.findings
    assert (finding.code, finding.line, finding.column) == ("EDX-XML-MALFORMED", 74, 29)


def _well_formed(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.edxml") if not p.name.startswith("broken"))


def test_every_well_formed_sample_parses_in_the_interop_profile(vpcp: Path) -> None:
    files = _well_formed(vpcp)
    assert len(files) == 17
    for path in files:
        report = validate(path.read_bytes(), profile="interop")
        assert report.parsed is not None, path
        # the only errors in the corpus are the documented bad agency code
        assert report.codes(Severity.ERROR) <= {"EDX-ID-FORMAT"}, (path, report.findings)


def test_rewriting_every_sample_gives_strict_valid_canonical_bytes(vpcp: Path) -> None:
    for path in _well_formed(vpcp):
        original = validate(path.read_bytes())
        rewritten = write(original.parsed.package)
        schema = schema_for(original.parsed.kind, "strict")
        if original.valid:
            assert schema.validate(parse(rewritten).root), (path, schema.error_log)
        strict = validate(rewritten, profile="strict")
        # the content errors of the original survive (e.g. the bad code); nothing new appears
        assert strict.codes(Severity.ERROR) == original.codes(Severity.ERROR), path
        assert parse(rewritten).package == original.parsed.package, path
        # every descendant of the root is written with the edXML: prefix
        assert not re.search(rb"<(?!edXML:|/edXML|\?xml|edXML )", rewritten), path


def test_the_interop_schema_alone_accepts_the_clean_samples(vpcp: Path) -> None:
    """The published interop XSD is usable on its own, without our validator."""
    for path in _well_formed(vpcp):
        report = validate(path.read_bytes())
        clean = report.valid and not (report.codes() & {"EDX-DATE-FORMAT-LEGACY", "EDX-LENGTH"})
        if clean:
            schema = schema_for(report.parsed.kind, "interop")
            assert schema.validate(report.parsed.root), (path, schema.error_log)
