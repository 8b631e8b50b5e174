"""The validator: XSD checks plus the rules an XSD cannot express.

:func:`validate` never raises for a bad package: it returns a
:class:`~docaxis.edxml.ValidationReport` whose findings each carry a stable code, a
severity, the element path and the line. Codes are listed in ``standards/README.md``.

How it stays fast (validation runs on every package at every hop): it does not build the
model. libxml2 does the structural work in C (the profile's XSD: element names,
cardinality, base64); Python then looks only at the leaves that carry a rule — found
with one C-filtered ``iter`` over their tag names — and judges each with the same
:func:`~docaxis.edxml._values.convert` the model readers use, so reading and validating
never disagree. Package-level rules (duplicate recipients, manifest ↔ attachments,
business block) work from facts collected during that one pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from docaxis.edxml import _model as m
from docaxis.edxml._errors import ParseError
from docaxis.edxml._findings import (
    PROFILES,
    Finding,
    Positions,
    Profile,
    Severity,
    ValidationReport,
    finding_at,
    severity_for,
)
from docaxis.edxml._namespaces import DSIG_NS, EDXML_NS, EDXML_PREFIX, local_name, q, strip_cid
from docaxis.edxml._parser import VN_TZ, ParsedPackage, ParseLimits, parse
from docaxis.edxml._schemagen import SCHEMA_FILES, generate_schema
from docaxis.edxml._spec import (
    ATTACHMENT,
    BUSINESS,
    DOCUMENT_HEADER,
    MANIFEST_REFERENCE,
    SPECS,
    STATUS_HEADER,
    TRACE_HEADER_LIST,
    Field,
    NodeSpec,
    spec_of,
)
from docaxis.edxml._stream import parse_file
from docaxis.edxml._values import convert


def standards_dir() -> Path | None:
    """Where the ``standards/`` files are: installed package data or the checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_standards", here.parent / "standards"):
        if (candidate / SCHEMA_FILES[("document", "strict")]).is_file():
            return candidate
    return None


_schemas: dict[tuple[str, str], etree.XMLSchema] = {}
_XS = "{http://www.w3.org/2001/XMLSchema}"
_IDENTITY_CONSTRAINTS = (f"{_XS}unique", f"{_XS}key", f"{_XS}keyref")
_schemas_lock = threading.Lock()


def schema_for(kind: m.PackageKind, profile: Profile) -> etree.XMLSchema:
    """The compiled XSD for a package kind and profile, loaded once per process.

    Schemas are read from the local ``standards/`` folder only (never the network); when
    the folder is not shipped they are generated in memory from the same spec tables.
    """
    key = (kind, profile)
    schema = _schemas.get(key)
    if schema is None:
        with _schemas_lock:
            schema = _schemas.get(key)
            if schema is None:
                folder = standards_dir()
                parser = etree.XMLParser(resolve_entities=False, no_network=True)
                if folder is not None:
                    text = (folder / SCHEMA_FILES[key]).read_bytes()
                else:  # pragma: no cover - only when installed without package data
                    text = generate_schema(kind, profile).encode()
                document = etree.fromstring(text, parser)
                # identity constraints (unique recipients, manifest keys) are checked by the
                # validator in linear time: libxml2 compares key sequences pairwise, so
                # 8,000 To entries cost it a second (the published XSDs keep them)
                for constraint in document.iter(*_IDENTITY_CONSTRAINTS):
                    constraint.getparent().remove(constraint)
                schema = etree.XMLSchema(document)
                _schemas[key] = schema
    return schema



#: A report stops after this many findings (and says so): the cost of validating a
#: package never grows with how many things are wrong in it.
MAX_FINDINGS = 200
#: lists longer than this are judged in Python before the XSD (see crowded_lists)
_CROWD = 64
_CROWDED = etree.XPath(f"//*[*[{_CROWD + 1}]]")  # has a child number _CROWD + 1

_ELEMENT_IN_MESSAGE = re.compile(r"Element '(\{[^}]*\}[^']+|[^']+)'")
_BLANK = etree.XPath("not(normalize-space(.))")


def _today() -> dt.date:
    return dt.datetime.now(VN_TZ).date()


def _blank(element: etree._Element) -> bool:
    """No non-whitespace text anywhere inside (such a node counts as absent)."""
    return bool(_BLANK(element))


# ---------------------------------------------------------------- per-kind rule tables

_PROMULGATION = (q("PromulgationInfo"), q("PromulgationDate"))
_DATE_TAGS = (q("PromulgationDate"), q("DueDate"), q("Timestamp"))
_CONTENT_ID, _REFERENCE, _ATTACHMENT = q("ContentId"), q("Reference"), q("Attachment")
_DUPLICATE_KEY = "Duplicate key-sequence"
_BUSINESS_TYPE_TAGS = frozenset({q("BussinessDocType"), q("BusinessDocType")})
_BUSINESS_INFO_TAGS = frozenset({q("BussinessDocumentInfo"), q("BusinessDocumentInfo")})
_DOCUMENT_ID, _REPLACEMENT_LIST = q("DocumentId"), q("ReplacementInfoList")
_TO, _ORGAN_ID = q("To"), q("OrganId")
_STATUS_ALIAS = q("Status")
#: leaves whose padding the VNPT library reads as part of the value (and the alias block)
_PADDING_SENSITIVE = (q("SteeringType"), q("Priority"), q("BussinessDocType"),
                      q("BusinessDocType"), q("DocumentId"), q("Business"))
_REPLACEMENT = q("ReplacementInfo")
_BUSSINESS, _BUSINESS_ALIAS, _CONTENT = q("Bussiness"), q("Business"), q("Content")


_Bounds = tuple[frozenset[str], frozenset[str], tuple[frozenset[str], ...],
                tuple[frozenset[str], ...]]


def _bounds(spec: NodeSpec) -> _Bounds:
    """Cardinality of a node's children: (tags that may repeat, required tags, required
    alias groups, optional alias groups)."""
    def names(f: Field) -> frozenset[str]:
        return frozenset(q(name) for name in (f.tag, *f.aliases))

    many = frozenset(tag for f in spec.fields if f.many for tag in names(f))
    required = frozenset(q(f.tag) for f in spec.fields if f.required and not f.aliases)
    # alias groups: exactly one spelling when required, at most one otherwise
    aliased = tuple(names(f) for f in spec.fields if f.aliases and not f.many and f.required)
    optional_aliased = tuple(names(f) for f in spec.fields
                             if f.aliases and not f.many and not f.required)
    return many, required, aliased, optional_aliased


_BOUNDS = {spec.cls: _bounds(spec) for spec in SPECS.values()}


@dataclass(frozen=True, slots=True)
class _Rules:
    """Where each field sits, for one package kind: (parent, child) Clark names → field."""

    fields: dict[tuple[str, str], Field]
    choice_nodes: dict[str, NodeSpec]
    #: parent → the (child tag, spec) of the structured entries it holds (To, TraceHeader…)
    lists: dict[str, tuple[tuple[str, NodeSpec], ...]]


def _rules_for(kind: m.PackageKind) -> _Rules:
    fields: dict[tuple[str, str], Field] = {}
    choice_nodes: dict[str, NodeSpec] = {}

    def visit(parents: tuple[str, ...], spec: NodeSpec) -> None:
        # nodes whose interop XSD cannot check cardinality: an unbounded choice (``To+``),
        # or a required child with alias spellings (``BussinessDocType``/``BusinessDocType``)
        if any(f.many or (f.required and f.aliases) for f in spec.fields):
            for parent in parents:
                choice_nodes[q(parent)] = spec
        for f in spec.fields:
            for name in (f.tag, *f.aliases):
                for parent in parents:
                    fields[(q(parent), q(name))] = f
                if f.item is not None:
                    if f.is_leaf:
                        fields[(q(name), q(f.item))] = f
                    else:
                        visit((f.item,), spec_of(f.kind))  # type: ignore[arg-type]
                elif not f.is_leaf:
                    visit((name,), spec_of(f.kind))  # type: ignore[arg-type]

    if kind == "document":
        visit(("MessageHeader",), DOCUMENT_HEADER)
        visit(("Reference",), MANIFEST_REFERENCE)
        visit(("Attachment",), ATTACHMENT)
    else:
        visit(("MessageHeader", "Status"), STATUS_HEADER)
    visit(("TraceHeaderList",), TRACE_HEADER_LIST)
    lists: dict[str, list[tuple[str, NodeSpec]]] = {}
    for (parent, child), f in fields.items():
        if not f.is_leaf and isinstance(f.kind, type):
            lists.setdefault(parent, []).append((child, spec_of(f.kind)))
    return _Rules(fields, choice_nodes, {k: tuple(v) for k, v in lists.items()})


_RULES: dict[str, _Rules] = {kind: _rules_for(kind) for kind in ("document", "status")}


# ------------------------------------------------------------------------------ passes

class _Pass:
    """One validation run over one parsed package."""

    __slots__ = ("empty_reported", "findings", "positions", "rules", "truncated")

    def __init__(self, rules: _Rules) -> None:
        self.rules = rules
        self.truncated = False
        self.positions: Positions = {}
        self.findings: list[Finding] = []
        self.empty_reported: set[etree._Element] = set()

    def add(self, code: str, severity: Severity, message: str,
            element: etree._Element | None) -> None:
        if len(self.findings) >= MAX_FINDINGS:
            self.truncated = True
            return
        self.findings.append(finding_at(code, severity, message, element, self.positions))

    def crowded_lists(self, root: etree._Element, today: dt.date) -> bool:
        """Judge long repeated lists (over ``_CROWD`` items: ``To``, ``TraceHeader`` …) in
        Python before the XSD, stopping at the finding limit. libxml2 reports an XSD error
        at a cost that grows with the number of siblings, so thousands of bad entries
        would cost it far more than a valid package of the same size; judged here, each
        entry costs a few dictionary lookups. Returns True when the report is already
        full (the XSD is then not run: the package is refused either way)."""
        for parent in _CROWDED(root):
            for tag, spec in self.rules.lists.get(parent.tag, ()):
                for item in parent.iterchildren(tag):  # C-filtered: unknown tags never seen
                    self.judge_item(spec, item, today)
                    if self.truncated:
                        return True
        return False

    def judge_item(self, spec: NodeSpec, item: etree._Element, today: dt.date) -> None:
        """One entry of a list: known children only, required ones present, leaves valid."""
        seen: set[str] = set()
        for child in item:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            f = spec.by_tag.get(tag)
            if f is None:
                self.add("EDX-SCHEMA-UNEXPECTED", Severity.ERROR,
                         f"{local_name(tag)} is not expected in {local_name(item.tag)}", child)
                continue
            if f.is_leaf:
                self.judge_leaf(child, today)
            seen.add(f.attr)
        for f in spec.required:
            if f.attr not in seen and not f.aliases:
                self.add("EDX-REQUIRED", Severity.ERROR,
                         f"{f.tag} is required in {local_name(item.tag)}", item)

    def judge_leaf(self, element: etree._Element, today: dt.date) -> bool:
        """Judge one leaf with its Python rule; ``False`` when it is not a known leaf."""
        parent = element.getparent()
        if parent is None:
            return False
        key = (parent.tag, element.tag)
        f = self.rules.fields.get(key)
        if f is None or not f.is_leaf:
            return False
        text = (element.text or "").strip()
        if not text:
            if f.required and f.item is None:
                self.required_empty(element, parent)
            return True
        value, problems = convert(f, text)
        for problem in problems:
            message = problem.message
            if problem.code == "EDX-ID-FORMAT":
                message = f"{local_name(parent.tag)}/{f.tag}: {message}"
            self.add(problem.code, problem.severity, message, element)
        if key == _PROMULGATION and isinstance(value, dt.date) and value > today:
            self.add("EDX-DATE-FUTURE", Severity.ERROR,
                     f"PromulgationDate {value:%Y/%m/%d} is in the future", element)
        return True

    def leap_days(self, parsed: ParsedPackage, today: dt.date) -> None:
        """The XSD date pattern allows 02/29 in every year: judge those dates here."""
        if b"/02/29" in parsed.source:
            for element in parsed.root.iter(*_DATE_TAGS):
                self.judge_leaf(element, today)

    def required_empty(self, element: etree._Element, parent: etree._Element) -> None:
        """A required element is empty: report it, or its parent when all of it is."""
        if _blank(parent):
            # the parent node counts as absent: only a problem where the parent is required
            grandparent = parent.getparent()
            outer = (self.rules.fields.get((grandparent.tag, parent.tag))
                     if grandparent is not None else None)
            if outer is None or not outer.required:
                return
            element = parent
        if element in self.empty_reported:
            return
        self.empty_reported.add(element)
        self.add("EDX-REQUIRED-EMPTY", Severity.ERROR,
                 f"{local_name(element.tag)} is required but empty", element)

    def cardinality(self, spec: NodeSpec, node: etree._Element) -> dict[str, etree._Element]:
        """Required and at-most-once children of a node; returns the first child per tag.

        The common case (nothing wrong) costs one pass over the child tags; the detailed
        pass that names the offending element runs only when the counts are off.
        """
        children = list(node)
        tags = [child.tag for child in children]
        first = dict(zip(reversed(tags), reversed(children), strict=True))
        many, required, aliased, optional_aliased = _BOUNDS[spec.cls]
        fine = required.issubset(first)
        if fine and len(first) != len(tags):  # some tag repeats: is it one that may?
            fine = many.issuperset(tag for tag, n in Counter(tags).items() if n > 1)
        if fine and aliased:
            fine = all(len(group.intersection(first)) == 1 for group in aliased)
        if fine and optional_aliased:
            fine = all(len(group.intersection(first)) <= 1 for group in optional_aliased)
        if not fine:
            self.cardinality_details(spec, node, children)
        return first

    def cardinality_details(self, spec: NodeSpec, node: etree._Element,
                            children: list[etree._Element]) -> None:
        seen: dict[str, etree._Element] = {}
        for child in children:
            f = spec.by_tag.get(child.tag)
            if f is None:
                continue
            if f.attr in seen and not f.many:
                self.add("EDX-DUPLICATE", Severity.ERROR,
                         f"{f.tag} occurs more than once in {local_name(node.tag)}", child)
            seen.setdefault(f.attr, child)
        for f in spec.required:
            if f.attr not in seen:
                self.add("EDX-REQUIRED", Severity.ERROR,
                         f"{f.tag} is required in {local_name(node.tag)}", node)
        # (a required child node that is present but blank is reported through its own
        # required leaves, which the XSD flags: see required_empty)

    def schema(self, parsed: ParsedPackage, profile: Profile, today: dt.date) -> list[Finding]:
        """XSD findings mapped to stable codes; leaf errors are judged by the leaf's rule."""
        schema = schema_for(parsed.kind, profile)
        try:
            if schema.validate(parsed.root):
                return []
        except etree.XMLSchemaValidateError as exc:
            # libxml2 gives up (e.g. a text value over its 10 MB limit in a string facet):
            # the package cannot be judged, so it is refused with a code, never a crash
            return [Finding("EDX-XML-SIZE", Severity.ERROR,
                            f"the package cannot be schema-validated ({exc}); a text value "
                            "is probably larger than libxml2 accepts", None, None)]
        findings: list[Finding] = []
        judged: set[etree._Element] = set()
        where = _ElementIndex(parsed.root)
        for entry in schema.error_log:
            if len(findings) + len(self.findings) >= MAX_FINDINGS:
                self.truncated = True
                break
            message = entry.message
            element = where.element_of(entry)
            code = "EDX-SCHEMA"
            if "ContentTransferEncoded" in message and "base64Binary" in message:
                code = "EDX-ATTACHMENT-BASE64"
            elif element is not None and len(element) == 0 and (
                    "is not a valid value" in message or "is not accepted" in message
                    or "facet" in message):
                if element not in judged:
                    judged.add(element)
                    if self.judge_leaf(element, today):
                        continue  # the rule decided (possibly: nothing wrong)
            elif _DUPLICATE_KEY in message:
                code = "EDX-TO-DUPLICATE"
                organ_id = ""
                if element is not None:
                    organ_id = (element.findtext(q("OrganId")) or "").strip()
                message = f"To/OrganId {organ_id} is listed more than once"
            elif "Missing child element" in message:
                if element is not None and _blank(element):
                    parent = element.getparent()
                    if parent is not None:
                        self.required_empty(element, parent)
                    continue
                code = "EDX-REQUIRED" if profile == "interop" else "EDX-SCHEMA-MISSING"
            elif "is not expected" in message:
                code = "EDX-SCHEMA-UNEXPECTED"
                parent = element.getparent() if element is not None else None
                if (profile == "interop" and parent is not None and element is not None
                        and (parent.tag, element.tag) in self.rules.fields):
                    code = "EDX-DUPLICATE"
            text = message.replace(f"{{{EDXML_NS}}}", "").replace(f"{{{DSIG_NS}}}", "ds:")
            if element is None:
                findings.append(Finding(code, Severity.ERROR, text, None, entry.line or None))
            else:
                findings.append(finding_at(code, Severity.ERROR, text, element, self.positions))
        return findings

    def structure(self, parsed: ParsedPackage, today: dt.date) -> None:
        """Cardinality of the nodes the interop XSD leaves open, and package rules."""
        if self.truncated:  # the report is full: nothing more to say
            return
        where = parsed.locations
        choice = self.rules.choice_nodes
        header = where.message_header
        spec = choice.get(header.tag)
        first = self.cardinality(spec, header) if spec is not None else {}
        self.peer_compatibility(header)
        business = None
        if where.trace_header_list is not None:
            trace = self.cardinality(TRACE_HEADER_LIST, where.trace_header_list)
            business = trace.get(_BUSSINESS)
            if business is None:
                business = trace.get(_BUSINESS_ALIAS)
            if business is not None:
                self.cardinality(BUSINESS, business)
        if parsed.kind != "document":
            return
        content = first.get(_CONTENT)
        if content is None or not (content.text or "").strip():
            self.add("EDX-CONTENT-MISSING", Severity.WARNING,
                     "Content is absent (one national validator requires it)", header)
        promulgation = first.get(_PROMULGATION[0])
        if promulgation is not None:
            for child in promulgation:
                if child.tag == _PROMULGATION[1]:
                    self.judge_leaf(child, today)  # not in the future
        self.recipients(header)
        self.manifest(parsed.root)
        if business is not None:
            self.business(business)

    def peer_compatibility(self, header: etree._Element) -> None:
        """Forms docaxis reads but the official VNPT library misreads or crashes on."""
        if header.tag == _STATUS_ALIAS:
            self.add("EDX-PEER-COMPAT", Severity.WARNING,
                     "Status in place of MessageHeader: the VNPT library does not read it",
                     header)
        trace = header.getparent()
        for element in (trace.iter(*_PADDING_SENSITIVE) if trace is not None else ()):
            text = element.text or ""
            tag = local_name(element.tag)
            if tag == "Business":
                self.add("EDX-PEER-COMPAT", Severity.WARNING, "the block is spelt Business; "
                         "the standard (and the VNPT library) spell it Bussiness", element)
            elif text != text.strip():
                self.add("EDX-PEER-COMPAT", Severity.WARNING,
                         f"{tag} is padded with whitespace ({text[:20]!r}); the VNPT library "
                         "reads the padding as part of the value", element)
            elif not text and tag == "SteeringType":
                self.add("EDX-PEER-COMPAT", Severity.WARNING, "SteeringType is empty; the "
                         "VNPT library fails on an empty SteeringType", element)

    def recipients(self, header: etree._Element) -> None:
        """Each recipient (To/OrganId) is listed once."""
        seen: set[str] = set()
        for to in header.iterchildren(_TO):
            if self.truncated:
                return
            organ_id = (to.findtext(_ORGAN_ID) or "").strip()
            if not organ_id:
                continue
            if organ_id in seen:
                self.add("EDX-TO-DUPLICATE", Severity.ERROR,
                         f"To/OrganId {organ_id[:40]} is listed more than once", to)
            seen.add(organ_id)

    def manifest(self, root: etree._Element) -> None:
        """Manifest references and attachments match, compared after stripping ``cid:``."""
        references: list[tuple[str, etree._Element]] = []
        attachments: list[tuple[str, etree._Element]] = []
        for content_id in root.iter(_CONTENT_ID):
            parent = content_id.getparent()
            value = strip_cid(content_id.text)
            if parent.tag == _REFERENCE:
                references.append((value, parent))
            elif parent.tag == _ATTACHMENT:
                attachments.append((value, parent))
        announced = {value for value, _ in references}
        carried = {value for value, _ in attachments}
        if announced == carried:
            return
        for value, element in references:
            if value not in carried:
                self.add("EDX-MANIFEST-MISMATCH", Severity.ERROR,
                         f"manifest announces {value!r} but no attachment carries it", element)
        for value, element in attachments:
            if value not in announced:
                self.add("EDX-MANIFEST-MISMATCH", Severity.ERROR,
                         f"attachment {value!r} is not announced in the manifest", element)

    def business(self, business: etree._Element) -> None:
        """Consistency of the Bussiness block with its BussinessDocType."""
        kind: int | None = None
        has_target = has_info = has_replacements = False
        for child in business:
            tag = child.tag
            if tag in _BUSINESS_TYPE_TAGS:
                text = (child.text or "").strip()
                kind = int(text) if text.isascii() and text.isdigit() and len(text) < 4 \
                    else None
            elif tag == _DOCUMENT_ID:
                has_target = bool((child.text or "").strip())
            elif tag in _BUSINESS_INFO_TAGS:
                has_info = not _blank(child)
            elif tag == _REPLACEMENT_LIST:
                has_replacements = any(c.tag == _REPLACEMENT and not _blank(c) for c in child)
        if kind in (1, 2) and not has_target:
            self.add("EDX-BUSINESS", Severity.WARNING,
                     f"BussinessDocType {kind} ({'recall' if kind == 1 else 'update'}) does "
                     "not name the document it acts on (Bussiness/DocumentId); the "
                     "package's own DocumentId is taken", business)
        if kind == 2 and not has_info:
            self.add("EDX-BUSINESS", Severity.WARNING,
                     "update (BussinessDocType 2) without BussinessDocumentInfo", business)
        if kind == 3 and not has_replacements:
            self.add("EDX-BUSINESS", Severity.ERROR,
                     "replace (BussinessDocType 3) without ReplacementInfoList/ReplacementInfo",
                     business)
        if kind in (0, 1) and (has_info or has_replacements):
            self.add("EDX-BUSINESS", Severity.WARNING,
                     f"BussinessDocType {kind} carries update/replace details that will be "
                     "ignored", business)


class _ElementIndex:
    """Finds the element each XSD error is about (named in the message, on its line).

    The first few are found by a C-filtered walk over that element name; from the
    ``_WALKS``-th on, an index by (name, line) built in one pass answers: a few errors
    cost a few walks, many cost one pass (16,000 would otherwise cost 16,000 walks)."""

    _WALKS = 8

    def __init__(self, root: etree._Element) -> None:
        self._root = root
        self._walks = 0
        self._index: dict[tuple[str, int], etree._Element] | None = None

    def element_of(self, entry: etree._LogEntry) -> etree._Element | None:
        match = _ELEMENT_IN_MESSAGE.search(entry.message)
        if not match:
            return None
        tag, line = match.group(1), entry.line
        if self._index is None and self._walks < self._WALKS:
            self._walks += 1
            return next((el for el in self._root.iter(tag) if el.sourceline == line), None)
        if self._index is None:
            self._index = {}
            for element in self._root.iter(etree.Element):
                self._index.setdefault((element.tag, element.sourceline or 0), element)
        return self._index.get((tag, line))


def _signature_findings(parsed: ParsedPackage) -> list[Finding]:
    signature = parsed.signature
    if signature is None:
        return [Finding("EDX-SIGNATURE-MISSING", Severity.WARNING, "package is not signed")]
    findings: list[Finding] = []
    if signature.form == "legacy":
        findings.append(finding_at(
            "EDX-SIGNATURE-LEGACY", Severity.WARNING,
            "signature present but not XMLDSig (legacy form: <Signature> in the edXML "
            "namespace) — it cannot be verified", signature.element))
        return findings
    if signature.count > 1:
        findings.append(finding_at("EDX-SIGNATURE-MULTIPLE", Severity.ERROR,
                                   f"{signature.count} XMLDSig signatures; exactly one allowed",
                                   signature.element))
    if not signature.is_last_in_header or signature.element.getparent().tag != q("edXMLHeader"):
        findings.append(finding_at("EDX-SIGNATURE-PLACE", Severity.ERROR,
                                   "the XMLDSig signature must be the last child of edXMLHeader",
                                   signature.element))
    return findings


def _prefix_findings(parsed: ParsedPackage) -> list[Finding]:
    """Strict profile: every descendant of the root written ``edXML:``."""
    findings: list[Finding] = []
    for element in parsed.root.iterdescendants():
        tag = element.tag
        if not isinstance(tag, str) or not tag.startswith(f"{{{EDXML_NS}}}"):
            continue
        if element.prefix != EDXML_PREFIX:
            findings.append(finding_at(
                "EDX-PREFIX", Severity.ERROR,
                f"element {element.tag.rpartition('}')[2]} is not written with the "
                f"{EDXML_PREFIX}: prefix", element))
            if len(findings) >= 20:
                break
    return findings


_SEVERITY_OVERRIDES_STRICT = {"EDX-SIGNATURE-LEGACY"}


def validate(
    data: bytes | ParsedPackage | os.PathLike[str],
    *,
    profile: Profile = "interop",
    limits: ParseLimits | None = None,
    today: dt.date | None = None,
    source: str | None = None,
) -> ValidationReport:
    """Validate a package and return every finding.

    Parameters
    ----------
    data:
        Package bytes, a :class:`ParsedPackage` already parsed (parse once), or the path
        of a package file (:func:`docaxis.edxml.parse_file`: a large one is read by
        streaming, its attachment content never held in memory).
    profile:
        ``"interop"`` (what a node accepts: any order/prefix, lengths as warnings) or
        ``"strict"`` (what docaxis writes: canonical order, prefixes, limits as errors).
    limits:
        Passed to :func:`docaxis.edxml.parse`.
    today:
        The date "in the future" is judged against (default: today in Vietnam, UTC+7).
    source:
        A label (file name) carried into the report.

    Examples
    --------
    >>> report = validate(package_bytes)  # doctest: +SKIP
    >>> report.valid, [f.code for f in report.errors]  # doctest: +SKIP
    (False, ['EDX-ID-FORMAT'])
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    if isinstance(data, ParsedPackage):
        parsed = data
    else:
        try:
            parsed = (parse_file(data, limits=limits) if isinstance(data, os.PathLike)
                      else parse(data, limits=limits))
        except ParseError as exc:
            finding = Finding(exc.code, Severity.ERROR, exc.message, None, exc.line, exc.column)
            return ValidationReport(profile, (finding,), None, source)
    today = today or _today()
    run = _Pass(_RULES[parsed.kind])
    full = run.crowded_lists(parsed.root, today)
    schema = [] if full else run.schema(parsed, profile, today)
    run.structure(parsed, today)
    run.leap_days(parsed, today)
    run.findings += _signature_findings(parsed)
    if profile == "strict":
        run.findings += _prefix_findings(parsed)
    if run.truncated:
        run.findings.append(Finding(
            "EDX-FINDINGS-TRUNCATED", Severity.ERROR,
            f"more than {MAX_FINDINGS} findings: the report stops here (fix these first)"))
    located = {f.line for f in run.findings if f.line is not None}
    combined = [f for f in schema if f.line not in located] + run.findings
    findings: list[Finding] = []
    unique: set[tuple[str, str | None, int | None, str]] = set()
    for finding in sorted(combined, key=lambda f: (f.line or 0, f.code)):
        key = (finding.code, finding.path, finding.line, finding.message)
        if key in unique:
            continue
        unique.add(key)
        severity = severity_for(finding.code, finding.severity, profile)
        if profile == "strict" and finding.code in _SEVERITY_OVERRIDES_STRICT:
            severity = Severity.ERROR
        if severity is not finding.severity:
            finding = Finding(finding.code, severity, finding.message, finding.path,
                              finding.line, finding.column)
        findings.append(finding)
    if parsed.streamed is not None:  # lines of the skeleton → lines of the file
        findings = [dataclasses.replace(f, line=parsed.streamed.file_line(f.line))
                    for f in findings]
    return ValidationReport(profile, tuple(findings), parsed, source)
