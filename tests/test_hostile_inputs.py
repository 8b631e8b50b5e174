"""Hostile inputs (SECURITY.md): each rejected with its own code, without a blow-up.

Every test here fails if its defence is removed: the DOCTYPE pre-scan, the libxml2
settings (no entities, no network, no DTD loading), the size and depth caps, the UTF-8
check, the root-namespace and legacy-format checks.
"""

from __future__ import annotations

import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from docaxis.edxml import (
    EDXML_NS,
    BadEncoding,
    EdxmlError,
    ForbiddenDoctype,
    LegacyFormat,
    MalformedXML,
    NestingTooDeep,
    PackageTooLarge,
    ParseLimits,
    WrongNamespace,
    parse,
    validate,
)
from docaxis.edxml._parser import PARSER_OPTIONS

ROOT_OPEN = f'<edXML xmlns="{EDXML_NS}">'.encode()
#: Peak Python-side allocation allowed while rejecting a hostile input.
MEMORY_CEILING = 4 * 1024 * 1024


def _rejects(data: bytes, error: type[EdxmlError], code: str, **limits: int) -> EdxmlError:
    """Parse ``data``; assert the specific rejection and a bounded memory peak."""
    tracemalloc.start()
    try:
        with pytest.raises(error) as caught:
            parse(data, limits=ParseLimits(**limits) if limits else None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == code
    assert peak < MEMORY_CEILING + len(data), f"peak {peak} bytes while rejecting"
    report = validate(data, limits=ParseLimits(**limits) if limits else None)
    assert [f.code for f in report.findings] == [code]  # the validator reports, not raises
    return caught.value


@pytest.fixture
def listener() -> Iterator[tuple[int, Callable[[], int]]]:
    """A loopback TCP listener that counts connection attempts (the XXE canary)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.05)
    connections = 0
    stop = threading.Event()

    def accept() -> None:
        nonlocal connections
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections += 1
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], lambda: connections
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_xxe_file_is_refused_and_nothing_is_read(tmp_path: pytest.TempPathFactory) -> None:
    secret = tmp_path / "secret.txt"  # type: ignore[operator]
    secret.write_text("TOP-SECRET-CONTENT")
    data = (b'<?xml version="1.0"?>\n<!DOCTYPE edXML [<!ENTITY x SYSTEM "file://'
            + str(secret).encode() + b'">]>\n' + ROOT_OPEN + b"&x;</edXML>")
    error = _rejects(data, ForbiddenDoctype, "EDX-XML-DOCTYPE")
    assert (error.line, error.column) == (2, 1)
    # defence in depth: even libxml2 itself, as configured, does not expand it
    root = _parser_tree(data)
    assert b"TOP-SECRET" not in _text_of(root)


def test_xxe_network_is_refused_and_no_connection_is_made(listener) -> None:  # type: ignore[no-untyped-def]
    port, connections = listener
    data = (f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'.encode()
            + ROOT_OPEN + b"&x;</edXML>")
    _rejects(data, ForbiddenDoctype, "EDX-XML-DOCTYPE")
    _parser_tree(data)  # libxml2 as configured: no network either
    assert connections() == 0


def test_external_dtd_is_refused_and_not_fetched(listener) -> None:  # type: ignore[no-untyped-def]
    port, connections = listener
    data = (f'<!DOCTYPE edXML SYSTEM "http://127.0.0.1:{port}/edxml.dtd">'.encode()
            + ROOT_OPEN + b"</edXML>")
    _rejects(data, ForbiddenDoctype, "EDX-XML-DOCTYPE")
    _parser_tree(data)
    assert connections() == 0


def test_billion_laughs_is_refused_before_expansion() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    data = (b'<?xml version="1.0"?><!DOCTYPE edXML [' + "".join(entities).encode() + b"]>"
            + ROOT_OPEN + b"&lol9;</edXML>")
    _rejects(data, ForbiddenDoctype, "EDX-XML-DOCTYPE")
    assert len(_text_of(_parser_tree(data))) < 1000  # libxml2 as configured: not expanded


def test_quadratic_blowup_is_refused() -> None:
    big = "A" * 50_000
    data = (f'<!DOCTYPE edXML [<!ENTITY a "{big}">]>'.encode() + ROOT_OPEN
            + b"&a;" * 5_000 + b"</edXML>")
    _rejects(data, ForbiddenDoctype, "EDX-XML-DOCTYPE")
    assert len(_text_of(_parser_tree(data))) < 1000


def test_doctype_behind_comments_and_processing_instructions_is_still_found() -> None:
    data = (b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n<!-- note -->\n'
            b"<?pi x?>\n<!DOCTYPE edXML>" + ROOT_OPEN + b"</edXML>")
    error = _rejects(data, ForbiddenDoctype, "EDX-XML-DOCTYPE")
    assert error.line == 4


def test_nesting_deeper_than_the_cap_is_refused() -> None:
    data = ROOT_OPEN + b"<a>" * 40 + b"</a>" * 40 + b"</edXML>"
    error = _rejects(data, NestingTooDeep, "EDX-XML-DEPTH")
    assert error.line == 1
    # and the cap is the configured one, not libxml2's
    with pytest.raises(NestingTooDeep):
        parse(ROOT_OPEN + b"<a>" * 10 + b"</a>" * 10 + b"</edXML>",
              limits=ParseLimits(max_depth=8))


def test_pathological_nesting_stops_inside_libxml2() -> None:
    data = ROOT_OPEN + b"<a>" * 8_000 + b"</a>" * 8_000 + b"</edXML>"
    _rejects(data, NestingTooDeep, "EDX-XML-DEPTH")


def test_more_markup_than_the_element_cap_is_refused_before_parsing() -> None:
    from docaxis.edxml import TooManyElements

    data = ROOT_OPEN + b"<a>" * 200_000 + b"</a>" * 200_000 + b"</edXML>"
    _rejects(data, TooManyElements, "EDX-XML-LIMIT")


def test_oversized_input_is_refused_before_parsing() -> None:
    data = ROOT_OPEN + b"<x>" + b"A" * 2_000 + b"</x></edXML>"
    error = _rejects(data, PackageTooLarge, "EDX-XML-SIZE", max_bytes=1_000)
    assert str(len(data)) in error.message


def test_huge_text_node_is_bounded_by_the_size_cap() -> None:
    data = ROOT_OPEN + b"<x>" + b"A" * (10 * 1024 * 1024) + b"</x></edXML>"
    _rejects(data, PackageTooLarge, "EDX-XML-SIZE")


def test_invalid_utf8_is_refused_with_its_position() -> None:
    data = ROOT_OPEN + b"\n<x>caf\xe9</x></edXML>"
    error = _rejects(data, BadEncoding, "EDX-XML-ENCODING")
    assert (error.line, error.column) == (2, 7)
    assert "0xE9" in error.message


def test_declared_non_utf8_encoding_is_refused() -> None:
    data = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + ROOT_OPEN + b"<x>caf\xe9</x></edXML>"
    error = _rejects(data, BadEncoding, "EDX-XML-ENCODING")
    assert "ISO-8859-1" in error.message


def test_utf16_is_refused() -> None:
    data = ("\ufeff" + ROOT_OPEN.decode() + "</edXML>").encode("utf-16-le")
    _rejects(data, BadEncoding, "EDX-XML-ENCODING")


def test_invalid_xml_characters_are_malformed() -> None:
    data = ROOT_OPEN + b"<x>\x01</x></edXML>"
    error = _rejects(data, MalformedXML, "EDX-XML-MALFORMED")
    assert error.line == 1 and error.column is not None


def test_wrong_root_namespace_is_refused() -> None:
    data = b'<edXML xmlns="http://example.org/not-edxml"><x/></edXML>'
    error = _rejects(data, WrongNamespace, "EDX-XML-NAMESPACE")
    assert "http://example.org/not-edxml" in error.message
    _rejects(b"<edXML><x/></edXML>", WrongNamespace, "EDX-XML-NAMESPACE")


@pytest.mark.parametrize(
    "data",
    [
        b'<edoc:Envelope xmlns:edoc="http://www.e-doc.vn/Schema/"><edoc:Header/></edoc:Envelope>',
        b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<SOAP-ENV:Body><e:MessageHeader xmlns:e="http://www.e-doc.vn/Schema/"/>'
        b"</SOAP-ENV:Body></SOAP-ENV:Envelope>",
    ],
    ids=["e-doc", "soap"],
)
def test_legacy_edoc_format_is_recognised_and_refused(data: bytes) -> None:
    error = _rejects(data, LegacyFormat, "EDX-XML-LEGACY")
    assert "legacy" in error.message


def test_not_well_formed_reports_line_and_column() -> None:
    data = ROOT_OPEN + b"\n  <a>\n  </b>\n</edXML>"
    error = _rejects(data, MalformedXML, "EDX-XML-MALFORMED")
    assert error.line == 3 and error.column is not None


def test_empty_input_is_malformed() -> None:
    _rejects(b"  \n", MalformedXML, "EDX-XML-MALFORMED")


# helpers ------------------------------------------------------------------------------
def _parser_tree(data: bytes):  # type: ignore[no-untyped-def]
    """Parse with the production libxml2 settings, bypassing the DOCTYPE pre-scan."""
    from lxml import etree

    try:
        return etree.fromstring(data, etree.XMLParser(**PARSER_OPTIONS))
    except etree.XMLSyntaxError:
        return etree.fromstring(b"<empty/>")


def _text_of(root) -> bytes:  # type: ignore[no-untyped-def]
    return "".join(root.itertext()).encode()
