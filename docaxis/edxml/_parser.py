"""The hardened edXML parser.

One call, :func:`parse`, turns bytes into a :class:`ParsedPackage`: the exact input bytes
and their SHA-256, the lxml tree (for the signature layer, so a package is parsed once),
the typed model, and the field-level findings met while reading it.

Defences (SECURITY.md): the size cap is checked before parsing; the prolog is scanned and
any DOCTYPE is refused before libxml2 sees it (no entities, no external DTD, no billion
laughs); the declared encoding must be UTF-8; libxml2 runs with
``resolve_entities=False, no_network=True, load_dtd=False`` and without any option that
changes what would be canonicalised; ``huge_tree`` is only switched on when an operator
raises the size cap above libxml2's 10 MB text-node limit (the cap still bounds it);
element nesting deeper than the cap is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lxml import etree

from docaxis.edxml import _model as m
from docaxis.edxml._errors import (
    BadEncoding,
    ForbiddenDoctype,
    LegacyFormat,
    MalformedXML,
    NestingTooDeep,
    NotAPackage,
    PackageTooLarge,
    WrongNamespace,
)
from docaxis.edxml._namespaces import (
    DSIG_NS,
    EDXML_NS,
    LEGACY_EDOC_NS,
    SOAP12_NS,
    SOAP_NS,
    q,
)
from docaxis.edxml._readers import READERS

#: libxml2 refuses text nodes larger than this unless ``huge_tree`` is set.
LIBXML2_TEXT_LIMIT: Final = 10_000_000
VN_TZ: Final = dt.timezone(dt.timedelta(hours=7), "Asia/Ho_Chi_Minh")

SignatureForm = Literal["xmldsig", "legacy"]


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Resource limits of the parser.

    Parameters
    ----------
    max_bytes:
        Largest accepted input (default 10 MiB). Above libxml2's 10 MB text-node limit the
        parser enables ``huge_tree``; the cap still bounds memory.
    max_depth:
        Deepest accepted element nesting (the standard needs 10; default 32).
    """

    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 32

    @property
    def huge_tree(self) -> bool:
        return self.max_bytes > LIBXML2_TEXT_LIMIT


_DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """Where a package carries a signature and in which form.

    ``form`` is ``"xmldsig"`` for ``ds:Signature`` in the XMLDSig namespace and
    ``"legacy"`` for ``<Signature>`` in the edXML namespace (present, not verifiable).
    """

    form: SignatureForm
    element: etree._Element = field(repr=False, compare=False)
    count: int = 1
    is_last_in_header: bool = True


@dataclass(slots=True)
class Locations:
    """The skeleton elements of a package, found once while parsing."""

    envelope: etree._Element
    header: etree._Element
    message_header: etree._Element
    trace_header_list: etree._Element | None = None
    body: etree._Element | None = None
    attachment_encoded: etree._Element | None = None


@dataclass(frozen=True, slots=True)
class ParsedPackage:
    """A parsed package: the exact bytes, the tree, and the typed model on demand.

    ``root`` is the tree the bytes parsed into; the signature layer verifies and reads
    from this same tree (parse once, no parser differential). :attr:`package` is built
    from the tree on first use; :attr:`sha256` likewise.
    """

    source: bytes = field(repr=False)
    root: etree._Element = field(repr=False, compare=False)
    kind: m.PackageKind
    signature: SignatureInfo | None
    locations: Locations = field(repr=False, compare=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of :attr:`source`."""
        digest = self._cache.get("sha256")
        if digest is None:
            digest = self._cache["sha256"] = hashlib.sha256(self.source).hexdigest()
        return digest  # type: ignore[no-any-return]

    @property
    def package(self) -> m.Package:
        """The typed model (built once, on first use)."""
        package = self._cache.get("package")
        if package is None:
            package = self._cache["package"] = _build_model(self.kind, self.locations)
        return package  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- prolog

_XML_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8_NAMES: Final = frozenset({b"utf-8", b"utf8"})


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def _check_declared_encoding(data: bytes, start: int, end: int) -> None:
    """The XML declaration in ``data[start:end]`` may name UTF-8 only."""
    at = data.find(b"encoding", start, end)
    if at < 0:
        return
    match = _XML_DECL_ENCODING.match(data, at, end)
    if match and match.group(1).lower() not in _UTF8_NAMES:
        raise BadEncoding(
            f"declared encoding {match.group(1).decode()!r} is not UTF-8",
            **_lc(data, match.start(1)),
        )


def _scan_prolog(data: bytes) -> None:
    """Check encoding and refuse a DOCTYPE, looking only at what precedes the root."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        raise BadEncoding("input is UTF-16/UTF-32 (byte order mark); edXML is UTF-8", line=1,
                          column=1)
    if data[:2] in (b"\x00<", b"<\x00"):
        raise BadEncoding("input looks like UTF-16 without a byte order mark", line=1,
                          column=1)
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    size = len(data)
    while pos < size:
        byte = data[pos]
        if byte in b" \t\r\n":
            pos += 1
            continue
        if data.startswith(b"<?", pos):
            end = data.find(b"?>", pos)
            if end < 0:
                raise MalformedXML("unterminated processing instruction", **_lc(data, pos))
            if data.startswith(b"<?xml", pos) and data[pos + 5 : pos + 6] in b" \t\r\n":
                _check_declared_encoding(data, pos, end)
            pos = end + 2
            continue
        if data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                raise MalformedXML("unterminated comment", **_lc(data, pos))
            pos = end + 3
            continue
        if data[pos : pos + 9].upper() == b"<!DOCTYPE":
            raise ForbiddenDoctype(
                "DOCTYPE declarations are not accepted (no DTDs, no entities)",
                **_lc(data, pos),
            )
        return
    raise MalformedXML("no root element (the input is empty or only a prolog)",
                       **_lc(data, size))


def _lc(data: bytes, offset: int) -> dict[str, int]:
    line, column = _line_col(data, offset)
    return {"line": line, "column": column}


# ------------------------------------------------------------------------- libxml2

_local = threading.local()


def _xml_parser(huge_tree: bool) -> etree.XMLParser:
    attr = "huge" if huge_tree else "normal"
    parser = getattr(_local, attr, None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=huge_tree,
        )
        setattr(_local, attr, parser)
    return parser


_depth_checks: dict[int, etree.XPath] = {}


def _too_deep(root: etree._Element, max_depth: int) -> etree._Element | None:
    check = _depth_checks.get(max_depth)
    if check is None:
        check = etree.XPath("(/" + "/".join(["*"] * (max_depth + 1)) + ")[1]")
        _depth_checks[max_depth] = check
    found = check(root)
    return found[0] if found else None


def _first_invalid_utf8(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def _parse_tree(data: bytes, limits: ParseLimits) -> etree._Element:
    if len(data) > limits.max_bytes:
        raise PackageTooLarge(
            f"package is {len(data)} bytes, the limit is {limits.max_bytes} bytes"
        )
    _scan_prolog(data)
    try:
        root = etree.fromstring(data, _xml_parser(limits.huge_tree))
    except etree.XMLSyntaxError as exc:
        bad = _first_invalid_utf8(data)
        if bad is not None:
            raise BadEncoding(
                f"input is not valid UTF-8 (byte 0x{data[bad]:02X})", **_lc(data, bad)
            ) from None
        line, column = exc.position
        message = exc.msg or "not well-formed"
        if "Excessive depth" in message or "exceeds maximum depth" in message:
            raise NestingTooDeep(
                f"elements nest deeper than the parser allows ({message.strip()})",
                line=line, column=column,
            ) from None
        if "huge text node" in message.lower() or "huge input" in message.lower():
            raise PackageTooLarge(f"text node too large ({message.strip()})", line=line,
                                  column=column) from None
        raise MalformedXML(f"not well-formed XML: {message.strip()}", line=line,
                           column=column) from None
    except ValueError as exc:  # e.g. lxml refusing unicode input with a declaration
        raise MalformedXML(f"cannot parse input: {exc}") from None
    deep = _too_deep(root, limits.max_depth)
    if deep is not None:
        raise NestingTooDeep(
            f"elements nest deeper than {limits.max_depth} levels", line=deep.sourceline,
            column=None,
        )
    return root


# ------------------------------------------------------------------------ structure

def _children(el: etree._Element | None, tag: str) -> list[etree._Element]:
    if el is None:
        return []
    return [child for child in el if child.tag == tag]


_ENVELOPE, _HEADER, _BODY = q("edXMLEnvelope"), q("edXMLHeader"), q("edXMLBody")
_MESSAGE_HEADER, _STATUS, _STATUS_CODE = q("MessageHeader"), q("Status"), q("StatusCode")
_TRACE_LIST, _MANIFEST, _REFERENCE = q("TraceHeaderList"), q("edXMLManifest"), q("Reference")
_ATTACHMENTS, _ATTACHMENT = q("AttachmentEncoded"), q("Attachment")
_LEGACY_SIGNATURE, _DS_SIGNATURE = q("Signature"), f"{{{DSIG_NS}}}Signature"


def _check_root(root: etree._Element) -> None:
    tag = root.tag
    if tag == q("edXML"):
        return
    ns = tag[1:].partition("}")[0] if tag.startswith("{") else ""
    local = tag.rpartition("}")[2]
    if ns in (LEGACY_EDOC_NS, SOAP_NS, SOAP12_NS) or ns.startswith("http://www.e-doc.vn"):
        raise LegacyFormat(
            f"root {local!r} in {ns!r} is the legacy pre-2016 e-doc/SOAP format; "
            f"send QCVN 102:2016 edXML instead",
            line=root.sourceline, column=None,
        )
    expected = f"edXML in {EDXML_NS!r}"
    found = f"{local!r} in " + (f"namespace {ns!r}" if ns else "no namespace")
    raise WrongNamespace(f"root element must be {expected}, found {found}",
                         line=root.sourceline, column=None)


def parse_xml(data: bytes, *, limits: ParseLimits | None = None) -> etree._Element:
    """Any XML document (not only edXML), with the same hardened settings as :func:`parse`.

    Raises
    ------
    ParseError
        As :func:`parse`, except the edXML namespace and structure checks.
    """
    return _parse_tree(bytes(data), limits or _DEFAULT_LIMITS)


def _signature_info(root: etree._Element, header: etree._Element) -> SignatureInfo | None:
    signatures = list(root.iter(_DS_SIGNATURE, _LEGACY_SIGNATURE))
    if not signatures:
        return None
    xmldsig = [s for s in signatures if s.tag == _DS_SIGNATURE]
    chosen = xmldsig[0] if xmldsig else signatures[0]
    last = None
    for child in reversed(header):
        if isinstance(child.tag, str):
            last = child
            break
    return SignatureInfo(
        form="xmldsig" if xmldsig else "legacy",
        element=chosen,
        count=len(xmldsig) if xmldsig else len(signatures),
        is_last_in_header=last is chosen,
    )


def parse(
    data: bytes,
    *,
    limits: ParseLimits | None = None,
) -> ParsedPackage:
    """Parse an edXML package (document or status) with the hardened settings.

    Parameters
    ----------
    data:
        The package bytes exactly as received; they are kept unchanged in the result.
    limits:
        Size and depth caps (:class:`ParseLimits` defaults when omitted).

    Returns
    -------
    ParsedPackage
        The bytes, the tree and (on first use of ``.package``) the typed model. Parsing
        does not judge content: use :func:`docaxis.edxml.validate` for findings.

    Raises
    ------
    ParseError
        One of its subclasses when the input is not a readable edXML package: not
        well-formed, DOCTYPE present, too large, too deep, not UTF-8, wrong root
        namespace, legacy format, or no envelope/header.

    Examples
    --------
    >>> parsed = parse(open("package.edxml", "rb").read())  # doctest: +SKIP
    >>> parsed.package.sender  # doctest: +SKIP
    '000.00.00.G22'
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("parse() takes the package bytes")
    data = bytes(data)
    root = _parse_tree(data, limits or _DEFAULT_LIMITS)
    _check_root(root)
    envelope = attachments_el = None
    for child in root:
        if child.tag == _ENVELOPE and envelope is None:
            envelope = child
        elif child.tag == _ATTACHMENTS and attachments_el is None:
            attachments_el = child
    header = body = None
    for child in envelope if envelope is not None else ():
        if child.tag == _HEADER and header is None:
            header = child
        elif child.tag == _BODY and body is None:
            body = child
    if envelope is None or header is None:
        raise NotAPackage("edXML/edXMLEnvelope/edXMLHeader is missing",
                          line=(envelope if envelope is not None else root).sourceline)
    message_header = trace_el = None
    for child in header:
        tag = child.tag
        if tag in (_MESSAGE_HEADER, _STATUS) and message_header is None:
            message_header = child
        elif tag == _TRACE_LIST and trace_el is None:
            trace_el = child
    if message_header is None:
        raise NotAPackage("edXMLHeader has no MessageHeader (or Status)",
                          line=header.sourceline)
    is_status = (message_header.tag == _STATUS
                 or next(message_header.iterchildren(_STATUS_CODE), None) is not None)
    return ParsedPackage(
        source=data,
        root=root,
        kind="status" if is_status else "document",
        signature=_signature_info(root, header),
        locations=Locations(envelope, header, message_header, trace_el, body, attachments_el),
    )


def _build_model(kind: m.PackageKind, where: Locations) -> m.Package:
    trace = (READERS[m.TraceHeaderList](where.trace_header_list)
             if where.trace_header_list is not None else None)
    if kind == "status":
        header = READERS[m.StatusHeader](where.message_header) or m.StatusHeader()
        return m.StatusPackage(header=header, trace=trace)
    manifest = where.body.find(_MANIFEST) if where.body is not None else None
    return m.DocumentPackage(
        header=READERS[m.DocumentHeader](where.message_header) or m.DocumentHeader(),
        trace=trace,
        manifest=_read_many(m.ManifestReference, _children(manifest, _REFERENCE)),
        attachments=_read_many(m.Attachment, _children(where.attachment_encoded, _ATTACHMENT)),
    )


def _read_many(cls: type, elements: list[etree._Element]) -> tuple[Any, ...]:
    read = READERS[cls]
    items = (read(el) for el in elements)
    return tuple(item for item in items if item is not None)
