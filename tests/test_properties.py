"""Property-based tests over generated models (hypothesis)."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docaxis.edxml import (
    DocumentPackage,
    EdxmlError,
    ParseLimits,
    Severity,
    parse,
    schema_for,
    validate,
    write,
)
from tests.strategies import packages

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TODAY = dt.date(2030, 1, 1)


@FUZZ
@given(packages())
def test_round_trip(package: DocumentPackage) -> None:
    data = write(package)
    parsed = parse(data)
    assert parsed.package == package
    # and what we write is what the strict schema describes
    assert schema_for(parsed.kind, "strict").validate(parsed.root), \
        schema_for(parsed.kind, "strict").error_log
    assert write(parsed.package) == data


@FUZZ
@given(packages())
def test_written_packages_have_no_structural_findings(package: DocumentPackage) -> None:
    report = validate(write(package), profile="strict", today=TODAY)
    structural = {"EDX-SCHEMA", "EDX-SCHEMA-UNEXPECTED", "EDX-SCHEMA-MISSING", "EDX-PREFIX",
                  "EDX-DUPLICATE", "EDX-LENGTH", "EDX-DATE-FORMAT"}
    assert not (report.codes(Severity.ERROR) & structural), report.findings


def _mutations() -> st.SearchStrategy[list[tuple[str, int, bytes]]]:
    op = st.tuples(st.sampled_from(["replace", "insert", "delete", "truncate"]),
                   st.integers(0, 10**7), st.binary(min_size=1, max_size=8)
                   | st.sampled_from([b"<", b">", b"&", b"<!DOCTYPE x>", b"\xff", b"\x00",
                                      b"</edXML:To>", b"<edXML:To>", b"]]>", b"&#0;"]))
    return st.lists(op, min_size=1, max_size=4)


def _apply(data: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    for operation, position, chunk in mutations:
        at = position % (len(data) + 1)
        if operation == "replace":
            data = data[:at] + chunk + data[at + len(chunk):]
        elif operation == "insert":
            data = data[:at] + chunk + data[at:]
        elif operation == "delete":
            data = data[:at] + data[at + len(chunk):]
        else:
            data = data[:at]
    return data


@FUZZ
@given(packages(), _mutations())
def test_mutated_bytes_raise_only_documented_errors(
    package: DocumentPackage, mutations: list[tuple[str, int, bytes]]
) -> None:
    data = _apply(write(package), mutations)
    limits = ParseLimits(max_bytes=1 << 20)
    try:
        parsed = parse(data, limits=limits)
    except EdxmlError as exc:
        assert exc.code.startswith("EDX-XML")
    else:
        assert parsed.source == data
    report = validate(data, limits=limits)  # never raises
    assert all(f.code.startswith("EDX-") for f in report.findings)


def test_empty_attachment_round_trips() -> None:
    from docaxis.edxml import DocumentBuilder
    from tests.conftest import sample_document

    package = sample_document()
    builder = DocumentBuilder().sender(package.header.from_).recipient(package.header.to[0])
    empty = (builder.code("1", "X").promulgation(dt.date(2024, 1, 1)).document_type(1, "CV")
             .subject("s").attach("empty.txt", b"", content_id="cid:e").build())
    parsed = parse(write(empty)).package
    assert parsed == empty
    assert parsed.attachments[0].content.size == 0
