from __future__ import annotations

import datetime as dt

import pytest

from docaxis.edxml import (
    BuildError,
    DocumentBuilder,
    Organization,
    StatusBuilder,
    parse,
    validate,
    write,
)
from tests.conftest import sample_document

G22 = Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ")
H41 = Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An")


def test_builder_is_immutable() -> None:
    base = DocumentBuilder().sender(G22)
    one = base.recipient(H41)
    assert base.recipient(H41) is not one
    with pytest.raises(BuildError, match="recipient"):
        base.code("1", "X").promulgation(dt.date(2024, 1, 1)).document_type(1, "CV") \
            .subject("s").build()


def test_built_package_defaults() -> None:
    package = sample_document()
    assert package.document_id == "000.00.00.G22,2024/05/02,7816/VPCP-TTĐT"
    assert package.header.content == package.header.subject
    assert package.business_doc_type == 0
    assert package.trace.trace_headers[0].organ_id == "000.00.00.G22"
    [reference] = package.manifest
    [attachment] = package.attachments
    assert reference.content_id == attachment.content_id == "cid:1"
    assert attachment.content.read() == b"%PDF-1.7 test"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.sender(Organization(organ_id="28.22.H17", organ_name="x")), "From/OrganId"),
        (lambda b: b.recipient(H41), "given twice"),
        (lambda b: b.recipient(Organization(organ_id="000.00.00.H14")), "OrganName"),
    ],
)
def test_builder_refuses_what_would_be_invalid(change, message: str) -> None:  # type: ignore[no-untyped-def]
    builder = (DocumentBuilder().sender(G22).recipient(H41).code("1", "X")
               .promulgation(dt.date(2024, 1, 1)).document_type(1, "CV").subject("s"))
    with pytest.raises(BuildError, match=message):
        change(builder).build()


def test_status_answers_a_document() -> None:
    document = sample_document()
    status = StatusBuilder().sender(H41).responding_to(document).status("06").build()
    data = write(status)
    report = validate(data, profile="strict")
    assert report.valid
    parsed = parse(data).package
    assert parsed.status_code == "06"
    assert parsed.header.description == "Hoàn thành"
    assert parsed.document_id == document.document_id
    assert parsed.header.response_for.code == "7816/VPCP-TTĐT"
    with pytest.raises(BuildError):
        StatusBuilder().status("07")
