"""The validator: XSD checks plus the rules an XSD cannot express.

:func:`validate` never raises for a bad package: it returns a
:class:`~docaxis.edxml.ValidationReport` whose findings each carry a stable code, a
severity, the element path and the line. Codes are listed in ``standards/README.md``.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

from lxml import etree

from docaxis.edxml import _model as m
from docaxis.edxml._errors import ParseError
from docaxis.edxml._findings import (
    PROFILES,
    Finding,
    Profile,
    Severity,
    ValidationReport,
    finding_at,
    severity_for,
)
from docaxis.edxml._namespaces import DSIG_NS, EDXML_NS, EDXML_PREFIX, q
from docaxis.edxml._parser import Locations, ParsedPackage, ParseLimits, parse
from docaxis.edxml._schemagen import SCHEMA_FILES, generate_schema


def standards_dir() -> Path | None:
    """Where the ``standards/`` files are: installed package data or the checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_standards", here.parent / "standards"):
        if (candidate / SCHEMA_FILES[("document", "strict")]).is_file():
            return candidate
    return None


_schemas: dict[tuple[str, str], etree.XMLSchema] = {}
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
                schema = etree.XMLSchema(etree.fromstring(text, parser))
                _schemas[key] = schema
    return schema


_ELEMENT_IN_MESSAGE = re.compile(r"Element '(\{[^}]*\}[^']+|[^']+)'")


def _schema_findings(parsed: ParsedPackage, profile: Profile) -> list[Finding]:
    schema = schema_for(parsed.kind, profile)
    if schema.validate(parsed.root):
        return []
    findings: list[Finding] = []
    for entry in schema.error_log:
        message = entry.message
        match = _ELEMENT_IN_MESSAGE.search(message)
        element = None
        if match:
            tag = match.group(1)
            for candidate in parsed.root.iter(tag):
                if candidate.sourceline == entry.line:
                    element = candidate
                    break
        code = "EDX-SCHEMA"
        if "ContentTransferEncoded" in message and "base64Binary" in message:
            code = "EDX-ATTACHMENT-BASE64"
        elif "is not expected" in message:
            code = "EDX-SCHEMA-UNEXPECTED"
        elif "Missing child element" in message:
            code = "EDX-SCHEMA-MISSING"
        text = message.replace(f"{{{EDXML_NS}}}", "").replace(f"{{{DSIG_NS}}}", "ds:")
        found = finding_at(code, Severity.ERROR, text, element)
        if element is None:
            found = Finding(code, Severity.ERROR, text, None, entry.line or None)
        findings.append(found)
    return findings


def _strip_cid(content_id: str | None) -> str:
    value = (content_id or "").strip()
    return value[4:] if value.lower().startswith("cid:") else value


def _document_rules(parsed: ParsedPackage, package: m.DocumentPackage) -> list[Finding]:
    findings: list[Finding] = []
    where = parsed.locations or Locations()
    header = package.header

    recipients = [org.organ_id for org in header.to if org.organ_id is not None]
    if len(set(recipients)) != len(recipients):
        seen: set[str] = set()
        header_el = where.message_header
        to_elements = header_el.findall(q("To")) if header_el is not None else []
        for org, element in zip(header.to, to_elements, strict=False):
            if org.organ_id in seen:
                findings.append(finding_at(
                    "EDX-TO-DUPLICATE", Severity.ERROR,
                    f"To/OrganId {org.organ_id} is listed more than once", element))
            if org.organ_id is not None:
                seen.add(org.organ_id)

    if header.content is None:
        findings.append(finding_at("EDX-CONTENT-MISSING", Severity.WARNING,
                                   "Content is absent (one national validator requires it)",
                                   where.message_header))

    # manifest <-> attachments, compared after stripping "cid:"
    announced = {_strip_cid(r.content_id) for r in package.manifest}
    carried = {_strip_cid(a.content_id) for a in package.attachments}
    if announced != carried:
        for reference, element in zip(package.manifest, where.references, strict=False):
            if _strip_cid(reference.content_id) not in carried:
                findings.append(finding_at(
                    "EDX-MANIFEST-MISMATCH", Severity.ERROR,
                    f"manifest announces {reference.content_id!r} but no attachment carries it",
                    element))
        for attachment, element in zip(package.attachments, where.attachments, strict=False):
            if _strip_cid(attachment.content_id) not in announced:
                findings.append(finding_at(
                    "EDX-MANIFEST-MISMATCH", Severity.ERROR,
                    f"attachment {attachment.content_id!r} is not announced in the manifest",
                    element))

    business = package.business
    if business is not None:
        findings += _business_rules(business, where)
    return findings


def _business_rules(business: m.Business, where: Locations) -> list[Finding]:
    """Consistency of the Bussiness block with its BussinessDocType."""
    findings: list[Finding] = []
    kind = business.business_doc_type
    problems: list[tuple[Severity, str]] = []
    if kind in (1, 2) and business.document_id is None:
        problems.append((Severity.WARNING,
                         f"BussinessDocType {kind} ({'recall' if kind == 1 else 'update'}) does "
                         "not name the document it acts on (Bussiness/DocumentId); the "
                         "package's own DocumentId is taken"))
    if kind == 2 and business.business_document_info is None:
        problems.append((Severity.WARNING,
                         "update (BussinessDocType 2) without BussinessDocumentInfo"))
    if kind == 3 and not business.replacements:
        problems.append((Severity.ERROR,
                         "replace (BussinessDocType 3) without ReplacementInfoList/"
                         "ReplacementInfo"))
    if kind in (0, 1) and (business.replacements or business.business_document_info):
        problems.append((Severity.WARNING,
                         f"BussinessDocType {kind} carries update/replace details that will "
                         "be ignored"))
    if problems:
        element = None
        if where.trace_header_list is not None:
            element = where.trace_header_list.find(q("Bussiness"))
            if element is None:
                element = where.trace_header_list.find(q("Business"))
        for severity, message in problems:
            findings.append(finding_at("EDX-BUSINESS", severity, message, element))
    return findings


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
    data: bytes | ParsedPackage,
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
        Package bytes, or a :class:`ParsedPackage` already parsed (parse once).
    profile:
        ``"interop"`` (what a node accepts: any order/prefix, lengths as warnings) or
        ``"strict"`` (what docaxis writes: canonical order, prefixes, limits as errors).
    limits, today:
        Passed to :func:`docaxis.edxml.parse`.
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
            parsed = parse(data, limits=limits, today=today)
        except ParseError as exc:
            finding = Finding(exc.code, Severity.ERROR, exc.message, None, exc.line, exc.column)
            return ValidationReport(profile, (finding,), None, source)
    rule_findings = list(parsed.findings)
    if isinstance(parsed.package, m.DocumentPackage):
        rule_findings += _document_rules(parsed, parsed.package)
    rule_findings += _signature_findings(parsed)
    if profile == "strict":
        rule_findings += _prefix_findings(parsed)
    located = {f.line for f in rule_findings if f.line is not None}
    schema = [f for f in _schema_findings(parsed, profile) if f.line not in located]
    findings = []
    for finding in sorted(schema + rule_findings, key=lambda f: (f.line or 0, f.code)):
        severity = severity_for(finding.code, finding.severity, profile)
        if profile == "strict" and finding.code in _SEVERITY_OVERRIDES_STRICT:
            severity = Severity.ERROR
        if severity is not finding.severity:
            finding = Finding(finding.code, severity, finding.message, finding.path,
                              finding.line, finding.column)
        findings.append(finding)
    return ValidationReport(profile, tuple(findings), parsed, source)
