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
from typing import Any, Final, Literal, cast

from lxml import etree

from docaxis.edxml import _model as m
from docaxis.edxml._errors import (
    BadEncoding,
    DuplicateBlock,
    ForbiddenDoctype,
    HiddenMarkup,
    LegacyFormat,
    MalformedXML,
    NestingTooDeep,
    NotAPackage,
    PackageTooLarge,
    RelativeNamespace,
    TooManyElements,
    WrongNamespace,
)
from docaxis.edxml._namespaces import (
    DSIG_NS,
    EDXML_NS,
    LEGACY_EDOC_NS,
    SOAP12_NS,
    SOAP_NS,
    local_name,
    q,
    strip_cid,
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
    max_elements:
        Most elements in one package (a real one has a few hundred; default 10,000).
    max_children:
        Most child elements of one element (recipients, attachments; default 2,000).
    stream_above:
        A package file larger than this (default 8 MiB) is read by streaming
        (:func:`docaxis.edxml.parse_file`): attachment content stays in the file.
    max_structure_bytes:
        Read by streaming, the largest structure accepted: everything but long attachment
        text (default 2 MiB: a quarter of ``stream_above``, so that a crafted file whose
        bytes all stay in the structure costs at most ≈ 2.4× a valid one of its size:
        ``python -m benchmarks hostile``).
    """

    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 32
    max_elements: int = 10_000
    max_children: int = 2_000
    #: a package *file* larger than this is read by streaming (:func:`parse_file`)
    stream_above: int = 8 * 1024 * 1024
    #: read by streaming, the most its structure (everything but long attachment text)
    #: may take
    max_structure_bytes: int = 2 * 1024 * 1024

    @property
    def huge_tree(self) -> bool:
        return self.max_bytes > LIBXML2_TEXT_LIMIT

    def in_memory(self) -> ParseLimits:
        """These limits for a package held whole in memory: ``max_bytes`` at most
        :data:`IN_MEMORY_MAX_BYTES` (a node taking packages of hundreds of MiB reads them
        from files, by streaming; never a hop message or a VXP body that large)."""
        if self.max_bytes <= IN_MEMORY_MAX_BYTES:
            return self
        return ParseLimits(IN_MEMORY_MAX_BYTES, self.max_depth, self.max_elements,
                           self.max_children, self.stream_above, self.max_structure_bytes)


_DEFAULT_LIMITS = ParseLimits()
#: the most any path parses held whole in memory (a larger package is read by streaming
#: from a file, or refused): :meth:`ParseLimits.in_memory`
IN_MEMORY_MAX_BYTES: Final = 10 * 1024 * 1024


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
    #: a package read from a file by streaming (:func:`docaxis.edxml.parse_file`): the
    #: file, and the attachment text left in it (``source`` is then the *skeleton*, the
    #: file with that text replaced by markers)
    streamed: Any = field(default=None, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the package's bytes (:attr:`source`, or the streamed file)."""
        if self.streamed is not None:
            return str(self.streamed.sha256)
        digest = self._cache.get("sha256")
        if digest is None:
            digest = self._cache["sha256"] = hashlib.sha256(self.source).hexdigest()
        return str(digest)

    @property
    def size(self) -> int:
        """Bytes in the package (the file's size when streamed)."""
        return int(self.streamed.size) if self.streamed is not None else len(self.source)

    @property
    def package(self) -> m.Package:
        """The typed model (built once, on first use)."""
        package = self._cache.get("package")
        if package is None:
            package = _build_model(self.kind, self.locations)
            if self.streamed is not None:
                package = self.streamed.with_contents(package)
            self._cache["package"] = package
        return cast(m.Package, package)


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


def _check_first_bytes(data: bytes) -> None:
    """UTF-8 only, judged from the first bytes (XML 1.0 Appendix F), before libxml2 runs:
    libxml2 would otherwise detect UTF-16/UTF-32 (with or without a byte order mark) or
    EBCDIC itself and parse the document. A UTF-8 document starts with an optional UTF-8
    BOM and then ``<`` or whitespace, and never contains a NUL byte."""
    if data.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        raise BadEncoding("input is UTF-32 (byte order mark); edXML is UTF-8", line=1, column=1)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BadEncoding("input is UTF-16 (byte order mark); edXML is UTF-8", line=1, column=1)
    head = data[:4]
    if b"\x00" in head:
        width = "UTF-16" if head.count(b"\x00") <= 2 else "UTF-32"
        raise BadEncoding(f"input looks like {width} without a byte order mark; edXML is UTF-8",
                          line=1, column=1)
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if len(data) > start and data[start] not in b"< \t\r\n":
        raise BadEncoding(f"input does not start like UTF-8 XML (first byte 0x{data[start]:02X}"
                          "; EBCDIC or another encoding?)", line=1, column=1)


def _scan_prolog(data: bytes) -> None:
    """Check encoding and refuse a DOCTYPE, looking only at what precedes the root."""
    _check_first_bytes(data)
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

def _first_invalid_utf8(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def _parse_tree(data: bytes, limits: ParseLimits, *, comments: bool = False) -> etree._Element:
    if len(data) > limits.max_bytes:
        raise PackageTooLarge(
            f"package is {len(data)} bytes, the limit is {limits.max_bytes} bytes"
        )
    _scan_prolog(data)
    # libxml2 parses a tag with tens of thousands of attributes or namespace declarations
    # slowly: a large input is refused on the count of '=' before parsing (each has one;
    # base64 text carries '=' only as padding); after parsing, namespaces are counted
    # exactly (at most MAX_NAMESPACE_DECLARATIONS)
    if len(data) > _SMALL_INPUT:
        assignments = data.count(b"=")
        if assignments > 2 * limits.max_elements + _MARKUP_SLACK:
            raise TooManyElements(f"the package writes '=' {assignments} times (attributes "
                                  f"and namespace declarations); at most "
                                  f"{2 * limits.max_elements} are accepted")
    # a '<' in XML is always markup (text and attribute values must escape it), so this
    # count bounds the elements before libxml2 builds any: the parse below is bounded
    markup = data.count(b"<")
    if markup > 2 * limits.max_elements + _MARKUP_SLACK:
        raise TooManyElements(f"the package has {markup} tags, comments and other markup; "
                              f"at most {limits.max_elements} elements are accepted")
    try:
        return _whole(data, limits, comments=comments)
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
        lowered = message.lower()
        if "huge text node" in lowered or "huge input" in lowered or "too long" in lowered:
            raise PackageTooLarge(f"text node too large ({message.strip()})", line=line,
                                  column=column) from None
        raise MalformedXML(f"not well-formed XML: {message.strip()}", line=line,
                           column=column) from None
    except ValueError as exc:  # e.g. lxml refusing unicode input with a declaration
        raise MalformedXML(f"cannot parse input: {exc}") from None


#: libxml2's settings (SECURITY.md): never its own encoding detection, no entities, no
#: network, no DTD; nothing that changes what would be canonicalised
PARSER_OPTIONS: Final[dict[str, Any]] = {
    "encoding": "utf-8", "resolve_entities": False, "no_network": True, "load_dtd": False,
    "dtd_validation": False,
}
#: namespace declarations in one package (real ones have two or three)
MAX_NAMESPACE_DECLARATIONS: Final = 256
_MARKUP_SLACK = 64
_SMALL_INPUT = 64 * 1024
_local = threading.local()


def _one_shot_parser(huge_tree: bool) -> etree.XMLParser:
    name = "huge" if huge_tree else "normal"
    parser = getattr(_local, name, None)
    if parser is None:
        parser = etree.XMLParser(huge_tree=huge_tree, **PARSER_OPTIONS)
        setattr(_local, name, parser)
    return parser


_shape_checks: dict[tuple[int, int, int, bool], tuple[etree.XPath, ...]] = {}
_HIDDEN = etree.XPath("(//comment() | //processing-instruction())[parent::*][1]")
#: a namespace declaration whose value does not start with a URI scheme (``xmlns:x="u"``);
#: a hint on the raw bytes (text may match too): the tree confirms it
_RELATIVE_NS_HINT = re.compile(
    rb"""xmlns(?::[^\s=]+)?\s*=\s*(["'])(?![A-Za-z][A-Za-z0-9+.-]*:)(?!\1)""")


def _whole(data: bytes, limits: ParseLimits, *, comments: bool) -> etree._Element:
    """Parse in one call, then judge the shape in C (XPath): depth, element count,
    children per element, comments and processing instructions (unless ``comments``),
    relative namespace URIs. One XPath answers "anything wrong?" for the common case."""
    root = etree.fromstring(data, _one_shot_parser(limits.huge_tree))
    key = (limits.max_depth, limits.max_children, limits.max_elements, comments)
    checks = _shape_checks.get(key)
    if checks is None:
        deep_path = "/" + "/".join(["*"] * (limits.max_depth + 1))
        crowded_path = f"//*[count(*) > {limits.max_children}]"
        hidden = "" if comments else " or //*/comment() or //*/processing-instruction()"
        checks = _shape_checks[key] = (
            # one evaluation for the common case (nothing wrong); details only if needed
            # (no element can have too many children while the whole has fewer elements)
            etree.XPath(f"boolean({deep_path} or count(//*) > {limits.max_elements} "
                        f"or (count(//*) > {limits.max_children} and {crowded_path})"
                        f"{hidden})"),
            etree.XPath(f"({deep_path})[1]"), etree.XPath(f"({crowded_path})[1]"))
    suspect, too_deep, crowded = checks
    if not suspect(root):
        _check_namespaces(data, root)
        return root
    deep = too_deep(root)
    if deep:
        raise NestingTooDeep(f"elements nest deeper than {limits.max_depth} levels",
                             line=deep[0].sourceline, column=None)
    if root.xpath("count(//*)") > limits.max_elements:
        raise TooManyElements(f"the package has more than {limits.max_elements} elements")
    full = crowded(root)
    if full:
        raise TooManyElements(f"{local_name(full[0].tag)} has more than {limits.max_children} "
                              "child elements", line=full[0].sourceline)
    if not comments:
        hidden = _HIDDEN(root)
        if hidden:
            _refuse_hidden(hidden[0], "comment" if isinstance(hidden[0], etree._Comment)
                           else "pi")
    return root  # pragma: no cover - the quick check and the details agree


def _check_namespaces(data: bytes, root: etree._Element) -> None:
    """At most ``MAX_NAMESPACE_DECLARATIONS``, none with a relative URI.

    A small input is searched for ``xmlns`` (memmem from one to the next; the tree is
    walked only if one may be relative); a large one — mostly attachment text — is
    judged on the tree, whose elements the caps bound, instead of scanning megabytes.
    """
    if len(data) <= _SMALL_INPUT:
        count, hint, at = 0, False, data.find(b"xmlns")
        while at >= 0:
            count += 1
            hint = hint or _RELATIVE_NS_HINT.match(data, at) is not None
            at = data.find(b"xmlns", at + 5)
        if count > MAX_NAMESPACE_DECLARATIONS:
            _too_many_namespaces()
        if not hint:
            return
    walk = etree.iterwalk(root, events=("start-ns",))
    for count, (_event, (prefix, uri)) in enumerate(walk, start=1):
        if count > MAX_NAMESPACE_DECLARATIONS:
            _too_many_namespaces()
        _check_namespace(prefix, uri)


def _too_many_namespaces() -> None:
    raise TooManyElements(f"the package declares more than {MAX_NAMESPACE_DECLARATIONS} "
                          "namespaces")


def _check_namespace(prefix: str, uri: str) -> None:
    if uri and not _SCHEME.match(uri):
        name = f"xmlns:{prefix}" if prefix else "xmlns"
        raise RelativeNamespace(f"namespace declaration {name}={uri!r} is a relative URI; "
                                "namespace names must be absolute")


def _refuse_hidden(node: etree._Element, event: str) -> None:
    parent = node.getparent()
    where = local_name(parent.tag) if parent is not None else "the document"
    what = "a comment" if event == "comment" else "a processing instruction"
    raise HiddenMarkup(f"{what} inside {where}: C14N drops it, so it could hide part of a "
                       "signed value; edXML packages carry none", line=node.sourceline)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


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
_BUSSINESS, _BUSINESS_ALIAS, _CONTENT_ID = q("Bussiness"), q("Business"), q("ContentId")


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
    """Any XML document (not only edXML), with the same hardened settings as :func:`parse`
    except that comments and processing instructions are allowed (XMLDSig vectors carry
    them; C14N without comments drops them and generic mode reads no values).

    Raises
    ------
    ParseError
        As :func:`parse`, except the edXML namespace and structure checks.
    """
    return _parse_tree(bytes(data), limits or _DEFAULT_LIMITS, comments=True)


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
    envelope = _single(root, _ENVELOPE)
    attachments_el = _single(root, _ATTACHMENTS)
    header = _single(envelope, _HEADER) if envelope is not None else None
    body = _single(envelope, _BODY) if envelope is not None else None
    if envelope is None or header is None:
        raise NotAPackage("edXML/edXMLEnvelope/edXMLHeader is missing",
                          line=(envelope if envelope is not None else root).sourceline)
    message_header = _single(header, _MESSAGE_HEADER, _STATUS)
    trace_el = _single(header, _TRACE_LIST)
    if message_header is None:
        raise NotAPackage("edXMLHeader has no MessageHeader (or Status)",
                          line=header.sourceline)
    if trace_el is not None:
        _single(trace_el, _BUSSINESS, _BUSINESS_ALIAS)
    if attachments_el is not None:
        _unique_content_ids(attachments_el)
    is_status = (message_header.tag == _STATUS
                 or next(message_header.iterchildren(_STATUS_CODE), None) is not None)
    return ParsedPackage(
        source=data,
        root=root,
        kind="status" if is_status else "document",
        signature=_signature_info(root, header),
        locations=Locations(envelope, header, message_header, trace_el, body, attachments_el),
    )


def _single(parent: etree._Element, *tags: str) -> etree._Element | None:
    """The one child of ``parent`` with one of ``tags`` (spellings of one block), or None.

    Raises
    ------
    DuplicateBlock
        When there are two: docaxis would read one copy, another implementation the other.
    """
    found = None
    for child in parent.iterchildren(*tags):
        if found is not None:
            raise DuplicateBlock(
                f"{local_name(child.tag)} occurs more than once in {local_name(parent.tag)} (line "
                f"{found.sourceline} and line {child.sourceline}); it must occur once",
                line=child.sourceline)
        found = child
    return found


def _unique_content_ids(attachments: etree._Element) -> None:
    seen: dict[str, int | None] = {}
    for attachment in attachments.iterchildren(_ATTACHMENT):
        for content_id in attachment.iterchildren(_CONTENT_ID):
            value = strip_cid(content_id.text)
            if value in seen:
                raise DuplicateBlock(
                    f"two attachments have ContentId {value!r} (line {seen[value]} and line "
                    f"{content_id.sourceline}); each must be unique",
                    line=content_id.sourceline)
            seen[value] = content_id.sourceline


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
