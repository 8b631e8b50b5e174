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
from docaxis.edxml._findings import Finding, Severity, finding_at
from docaxis.edxml._namespaces import (
    DSIG_NS,
    EDXML_NS,
    LEGACY_EDOC_NS,
    SOAP12_NS,
    SOAP_NS,
    q,
)
from docaxis.edxml._readers import AGENCY_OK, READERS
from docaxis.edxml._spec import (
    ATTACHMENT,
    DOCUMENT_HEADER,
    MANIFEST_REFERENCE,
    STATUS_HEADER,
    TRACE_HEADER_LIST,
    Field,
    NodeSpec,
)
from docaxis.identifiers import AgencyCode, InvalidAgencyCode

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
    """Elements the validator's package-level rules point at (found during the parse)."""

    message_header: etree._Element | None = None
    trace_header_list: etree._Element | None = None
    references: list[etree._Element] = field(default_factory=list)
    attachments: list[etree._Element] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ParsedPackage:
    """A parsed package: exact bytes, tree, typed model and field-level findings.

    ``root`` is the tree the bytes parsed into; the signature layer verifies and reads
    from this same tree (parse once, no parser differential).
    """

    source: bytes = field(repr=False)
    root: etree._Element = field(repr=False, compare=False)
    kind: m.PackageKind
    package: m.Package
    signature: SignatureInfo | None
    findings: tuple[Finding, ...] = ()
    locations: Locations | None = field(default=None, repr=False, compare=False)
    _digest: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of :attr:`source` (computed on first use)."""
        if not self._digest:
            self._digest.append(hashlib.sha256(self.source).hexdigest())
        return self._digest[0]

    @property
    def header_element(self) -> etree._Element:
        """The ``edXMLHeader`` element."""
        return self.root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")


# --------------------------------------------------------------------------- prolog

_XML_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8_NAMES: Final = frozenset({b"utf-8", b"utf8"})


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


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
                match = _XML_DECL_ENCODING.search(data, pos, end)
                if match and match.group(1).lower() not in _UTF8_NAMES:
                    raise BadEncoding(
                        f"declared encoding {match.group(1).decode()!r} is not UTF-8",
                        **_lc(data, match.start(1)),
                    )
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
    if not data.strip():
        raise MalformedXML("input is empty", line=1, column=1)
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


# ----------------------------------------------------------------------- extraction

_agency_problems: dict[str, str | None] = {}


def _agency_problem(text: str) -> str | None:
    """Why ``text`` is not an agency code, or ``None``; memoised (codes repeat a lot)."""
    try:
        return _agency_problems[text]
    except KeyError:
        pass
    try:
        AgencyCode.parse(text)
        problem = None
    except InvalidAgencyCode as exc:
        problem = exc.message
    if len(_agency_problems) > 50_000:
        _agency_problems.clear()
        AGENCY_OK.clear()
    _agency_problems[text] = problem
    if problem is None:
        AGENCY_OK[text] = True
    return problem


_BOOLEANS: Final = {"true": True, "false": False, "1": True, "0": False}


class _Reader:
    """Reads model objects from elements per the spec tables, collecting findings."""

    __slots__ = ("findings", "today")

    def __init__(self, today: dt.date) -> None:
        self.findings: list[Finding] = []
        self.today = today

    def add(self, code: str, severity: Severity, message: str, element: Any) -> None:
        self.findings.append(finding_at(code, severity, message, element))

    # leaves ---------------------------------------------------------------------
    def leaf(self, f: Field, el: etree._Element) -> object:
        text = el.text
        if f.kind == "base64":  # an empty element is an empty file, not an absent one
            return m.AttachmentContent.from_base64(text or "")
        if text is None:
            return None
        text = text.strip()
        if not text:
            return None
        kind = f.kind
        if kind == "text":
            if f.max_length is not None and len(text) > f.max_length:
                self.too_long(f, el, text)
            return text
        if kind == "agency":
            problem = _agency_problem(text)
            if problem is not None:
                self.add("EDX-ID-FORMAT", Severity.ERROR,
                         f"{_tag_of(el.getparent())}/{f.tag}: {problem}", el)
            return text
        if kind == "int":
            return self._int(f, el, text)
        if kind == "date":
            return self._date(f, el, text)
        if kind == "datetime":
            return self._datetime(f, el, text)
        if kind == "status":
            if f.values is not None and text not in f.values:
                known = ", ".join(sorted(f.values))  # type: ignore[arg-type]
                self.add("EDX-STATUS-CODE", Severity.ERROR,
                         f"status code {text!r} is not one of {known}", el)
            return text
        if kind == "bool":
            value = _BOOLEANS.get(text.lower())
            if value is None:
                self.add("EDX-VALUE", Severity.ERROR,
                         f"{f.tag} must be true/false/1/0, found {text!r}", el)
            return value
        raise AssertionError(kind)  # pragma: no cover - the spec only uses known kinds

    def _int(self, f: Field, el: etree._Element, text: str) -> int | None:
        body = text[1:] if text[:1] in "+-" else text
        if not (body.isascii() and body.isdigit()):
            self.add("EDX-VALUE", Severity.ERROR, f"{f.tag} must be an integer, found {text!r}",
                     el)
            return None
        value = int(text)
        if f.values is not None and value not in f.values:
            allowed = ", ".join(str(v) for v in sorted(f.values))  # type: ignore[type-var]
            self.add("EDX-CODE-UNKNOWN", Severity.ERROR,
                     f"{f.tag} {value} is not one of {allowed}", el)
        elif f.min_value is not None and value < f.min_value:
            self.add("EDX-VALUE", Severity.ERROR,
                     f"{f.tag} must be at least {f.min_value}, found {value}", el)
        return value

    def _date(self, f: Field, el: etree._Element, text: str) -> dt.date | None:
        value: dt.date | None = None
        legacy = False
        if len(text) == 10 and text[2] == "/" and text[5] == "/":
            legacy = True
            year, month, day = text[6:], text[3:5], text[:2]
        elif len(text) == 10 and text[4] == "/" and text[7] == "/":
            year, month, day = text[:4], text[5:7], text[8:]
        else:
            self.add("EDX-DATE-FORMAT", Severity.ERROR,
                     f"{f.tag} {text!r} is not a date in the form yyyy/MM/dd", el)
            return None
        try:
            value = dt.date(int(year), int(month), int(day))
        except ValueError:
            self.add("EDX-DATE-FORMAT", Severity.ERROR, f"{f.tag} {text!r} is not a real date",
                     el)
            return None
        if legacy:
            self.add("EDX-DATE-FORMAT-LEGACY", Severity.WARNING,
                     f"{f.tag} {text!r} uses dd/MM/yyyy; the standard form is "
                     f"{value:%Y/%m/%d}", el)
        if f.tag == "PromulgationDate" and value > self.today:
            self.add("EDX-DATE-FUTURE", Severity.ERROR,
                     f"{f.tag} {value:%Y/%m/%d} is in the future", el)
        return value

    def _datetime(self, f: Field, el: etree._Element, text: str) -> dt.datetime | None:
        date_part, _, time_part = text.partition(" ")
        date = self._date(Field(f.attr, f.tag, "date"), el, date_part) if time_part else None
        if date is None:
            if time_part:
                return None
            self.add("EDX-DATE-FORMAT", Severity.ERROR,
                     f"{f.tag} {text!r} is not a timestamp yyyy/MM/dd HH:mm:ss", el)
            return None
        try:
            clock = dt.time.fromisoformat(time_part.strip())
        except ValueError:
            self.add("EDX-DATE-FORMAT", Severity.ERROR,
                     f"{f.tag} {text!r} is not a timestamp yyyy/MM/dd HH:mm:ss", el)
            return None
        return dt.datetime.combine(date, clock.replace(microsecond=0, tzinfo=None))

    # nodes ----------------------------------------------------------------------
    def node(self, spec: NodeSpec, el: etree._Element) -> Any:
        """Read one node with its compiled reader (see :mod:`._readers`)."""
        return READERS[spec.cls](self, el)

    def too_long(self, f: Field, el: etree._Element, text: str) -> None:
        self.add("EDX-LENGTH", Severity.WARNING,
                 f"{f.tag} has {len(text)} characters, the limit is {f.max_length}", el)

    def duplicate(self, f: Field, parent: etree._Element, child: etree._Element) -> None:
        self.add("EDX-DUPLICATE", Severity.ERROR,
                 f"{f.tag} occurs more than once in {_tag_of(parent)}", child)

    def required(self, f: Field, parent: etree._Element, found: etree._Element | None) -> None:
        if found is None:
            self.add("EDX-REQUIRED", Severity.ERROR,
                     f"{f.tag} is required in {_tag_of(parent)}", parent)
        else:
            self.add("EDX-REQUIRED-EMPTY", Severity.ERROR, f"{f.tag} is required but empty",
                     found)


def _tag_of(el: etree._Element) -> str:
    tag = el.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else "?"


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


def _today() -> dt.date:
    return dt.datetime.now(VN_TZ).date()


def parse(
    data: bytes,
    *,
    limits: ParseLimits | None = None,
    today: dt.date | None = None,
) -> ParsedPackage:
    """Parse an edXML package (document or status) with the hardened settings.

    Parameters
    ----------
    data:
        The package bytes exactly as received; they are kept unchanged in the result.
    limits:
        Size and depth caps (:class:`ParseLimits` defaults when omitted).
    today:
        The date "in the future" is judged against (default: today in Vietnam, UTC+7).

    Returns
    -------
    ParsedPackage
        With the typed model and the field-level findings (agency codes, dates, lengths,
        required elements, ...). Use :func:`docaxis.edxml.validate` for a full report.

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
    limits = limits or ParseLimits()
    root = _parse_tree(data, limits)
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
    if header is None:
        raise NotAPackage("edXML/edXMLEnvelope/edXMLHeader is missing",
                          line=(envelope if envelope is not None else root).sourceline)
    message_header = trace_el = None
    for child in header:
        tag = child.tag
        if (tag in (_MESSAGE_HEADER, _STATUS)) and message_header is None:
            message_header = child
        elif tag == _TRACE_LIST and trace_el is None:
            trace_el = child
    if message_header is None:
        raise NotAPackage("edXMLHeader has no MessageHeader (or Status)",
                          line=header.sourceline)
    is_status = message_header.tag == _STATUS or message_header.find(_STATUS_CODE) is not None
    reader = _Reader(today or _today())
    trace = reader.node(TRACE_HEADER_LIST, trace_el) if trace_el is not None else None
    package: m.Package
    locations = Locations(message_header=message_header, trace_header_list=trace_el)
    if is_status:
        status_header = reader.node(STATUS_HEADER, message_header) or m.StatusHeader()
        package = m.StatusPackage(header=status_header, trace=trace)
    else:
        doc_header = reader.node(DOCUMENT_HEADER, message_header) or m.DocumentHeader()
        manifest_el = body.find(_MANIFEST) if body is not None else None
        locations.references = _children(manifest_el, _REFERENCE)
        locations.attachments = _children(attachments_el, _ATTACHMENT)
        package = m.DocumentPackage(
            header=doc_header,
            trace=trace,
            manifest=_read_many(reader, MANIFEST_REFERENCE, locations.references),
            attachments=_read_many(reader, ATTACHMENT, locations.attachments),
        )
    return ParsedPackage(
        source=data,
        root=root,
        kind="status" if is_status else "document",
        package=package,
        signature=_signature_info(root, header),
        findings=tuple(reader.findings),
        locations=locations,
    )


def _read_many(reader: _Reader, spec: NodeSpec, elements: list[etree._Element]) -> tuple:
    items = (reader.node(spec, el) for el in elements)
    return tuple(item for item in items if item is not None)

