"""Generate the XSDs and code lists in ``standards/`` from the spec tables.

Run ``python -m docaxis.edxml._schemagen standards/`` after changing ``_spec.py`` or
``_codes.py``; ``tests/test_standards.py`` fails while the committed files differ from
what this module generates.

Two profiles per package kind:

* **strict** — what docaxis writes: ``xs:sequence`` in canonical order, typed leaves with
  length limits, date patterns and code enumerations, only XMLDSig signatures.
* **interop** — what docaxis accepts: any order (``xs:all`` / unbounded ``xs:choice``),
  text leaves, alias spellings (``Business``, ``Status``), unknown attributes, and a
  signature in either namespace. Rules the XSD cannot express are the validator's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from docaxis.edxml._codes import BUSINESS_DOC_TYPES, PRIORITIES, STATUS_CODES, STEERING_TYPES
from docaxis.edxml._namespaces import DSIG_NS, EDXML_NS
from docaxis.edxml._spec import (
    ATTACHMENT,
    DOCUMENT_HEADER,
    MANIFEST_REFERENCE,
    STATUS_HEADER,
    TRACE_HEADER_LIST,
    Field,
    NodeSpec,
    spec_of,
)
from docaxis.identifiers import GROUP_LETTERS
from docaxis.identifiers import XSD_PATTERN as AGENCY_PATTERN

Kind = Literal["document", "status"]
SchemaProfile = Literal["strict", "interop"]

SCHEMA_FILES: dict[tuple[str, str], str] = {
    ("document", "strict"): "edxml-document.strict.xsd",
    ("document", "interop"): "edxml-document.interop.xsd",
    ("status", "strict"): "edxml-status.strict.xsd",
    ("status", "interop"): "edxml-status.interop.xsd",
}
CODELISTS_FILE = "codelists.json"
#: Names of the identity constraints that tie the manifest to the attachments.
MANIFEST_KEYS = ("AttachmentIds", "ManifestNamesAttachment", "ManifestIds",
                 "AttachmentAnnounced")

_DATE = r"[0-9]{4}/(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])"
_NOT_BLANK = r"\s*\S[\s\S]*"  # one non-space; this form is linear for libxml2
_DATETIME = _DATE + r" ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"


class _Schema:
    def __init__(self, profile: SchemaProfile) -> None:
        self.profile = profile
        self.types: dict[str, str] = {}

    @property
    def strict(self) -> bool:
        return self.profile == "strict"

    # leaves -----------------------------------------------------------------------
    def leaf_type(self, f: Field) -> tuple[str, str]:
        """(type attribute, inline simpleType) for a leaf field."""
        if f.kind == "base64":
            return ' type="xs:base64Binary"', ""
        return self.strict_leaf(f) if self.strict else self.interop_leaf(f)

    def strict_leaf(self, f: Field) -> tuple[str, str]:
        kind = f.kind
        facets: list[str] = []
        base = "xs:string"
        if kind == "text":
            facets.append('<xs:minLength value="1"/>')
            if f.max_length is not None:
                facets.append(f'<xs:maxLength value="{f.max_length}"/>')
        elif kind == "agency":
            facets.append(f'<xs:pattern value="{AGENCY_PATTERN}"/>')
        elif kind == "int":
            base = "xs:integer"
            facets += self.int_facets(f)
        elif kind == "bool":
            return ' type="xs:boolean"', ""
        elif kind == "date":
            facets.append(f'<xs:pattern value="{_DATE}"/>')
        elif kind == "datetime":
            facets.append(f'<xs:pattern value="{_DATETIME}"/>')
        elif kind == "status":
            facets += [f'<xs:enumeration value="{v}"/>' for v in sorted(f.values or ())]  # type: ignore[type-var]
        if not facets:
            return f' type="{base}"', ""
        inner = "".join(facets)
        restriction = f'<xs:restriction base="{base}">{inner}</xs:restriction>'
        return "", f"<xs:simpleType>{restriction}</xs:simpleType>"

    @staticmethod
    def int_facets(f: Field) -> list[str]:
        if f.values is not None:
            return [f'<xs:enumeration value="{v}"/>' for v in sorted(f.values)]  # type: ignore[type-var]
        if f.min_value is not None:
            return [f'<xs:minInclusive value="{f.min_value}"/>']
        return []

    def named(self, name: str, definition: str) -> str:
        """Register a named simple type; return the ``type=`` attribute for it."""
        self.types.setdefault(name, f'<xs:simpleType name="{name}">{definition}</xs:simpleType>')
        return f' type="edXML:{name}"'

    def interop_leaf(self, f: Field) -> tuple[str, str]:
        """Interop leaves accept surrounding whitespace and, when optional, emptiness.

        The validator treats an XSD error on a leaf as a prompt to judge that leaf with
        its Python rule, which decides code and severity (length → warning, dd/MM/yyyy →
        warning, bad agency code → error with the precise reason).
        """
        kind, required = f.kind, f.required and f.item is None
        self.named("Empty", '<xs:restriction base="xs:string"><xs:pattern value="\\s*"/>'
                            "</xs:restriction>")

        def optional(name: str, base: str, facets: str) -> str:
            restriction = f'<xs:restriction base="{base}">{facets}</xs:restriction>'
            if required:
                return self.named(name, restriction)
            member = f"<xs:simpleType>{restriction}</xs:simpleType>"
            return self.named(f"Optional{name}",
                              f'<xs:union memberTypes="edXML:Empty">{member}</xs:union>')

        if kind == "text":
            facets = (f'<xs:pattern value="{_NOT_BLANK}"/>' if required else "")
            if f.max_length is not None:
                facets += f'<xs:maxLength value="{f.max_length}"/>'
            if not facets:
                return ' type="xs:string"', ""
            name = ("Required" if required else "") + f"Text{f.max_length or ''}"
            return self.named(name, f'<xs:restriction base="xs:string">{facets}'
                                    "</xs:restriction>"), ""
        if kind == "agency":
            pattern = f'<xs:pattern value="\\s*{AGENCY_PATTERN}\\s*"/>'
            return optional("AgencyCode", "xs:string", pattern), ""
        if kind == "date":
            return optional("Date", "xs:string", f'<xs:pattern value="\\s*{_DATE}\\s*"/>'), ""
        if kind == "datetime":
            pattern = f'<xs:pattern value="\\s*{_DATETIME}\\s*"/>'
            return optional("Timestamp", "xs:string", pattern), ""
        if kind == "bool":
            return optional("Boolean", "xs:boolean", ""), ""
        if kind == "status":
            values = "".join(f'<xs:enumeration value="{v}"/>' for v in sorted(f.values or ()))  # type: ignore[type-var]
            return optional("StatusCode", "xs:token", values), ""
        if kind == "int":
            facets = "".join(self.int_facets(f))
            name = f"{f.tag}Value" if facets else "Integer"
            return optional(name, "xs:integer", facets), ""
        raise AssertionError(kind)

    # nodes ------------------------------------------------------------------------
    def type_name(self, spec: NodeSpec) -> str:
        name = f"{spec.cls.__name__}Type"
        if name not in self.types:
            self.types[name] = ""  # reserve (recursion guard)
            self.types[name] = self.complex_type(name, spec)
        return name

    def element(self, f: Field, tag: str, *, occurs: str) -> str:
        if f.is_leaf:
            attr, inline = self.leaf_type(f)
            if inline:
                return f'<xs:element name="{tag}"{occurs}>{inline}</xs:element>'
            return f'<xs:element name="{tag}"{attr}{occurs}/>'
        return f'<xs:element name="{tag}" type="edXML:{self.type_name(spec_of(f.kind))}"{occurs}/>'  # type: ignore[arg-type]

    def wrapped_list(self, f: Field, tag: str, occurs: str) -> str:
        item = self.element(f, f.item or "", occurs=' minOccurs="0" maxOccurs="unbounded"')
        extra = "" if self.strict else '<xs:anyAttribute processContents="skip"/>'
        return (f'<xs:element name="{tag}"{occurs}><xs:complexType><xs:sequence>{item}'
                f"</xs:sequence>{extra}</xs:complexType></xs:element>")

    def child(self, f: Field, tag: str, *, occurs: str) -> str:
        if f.item is not None:
            return self.wrapped_list(f, tag, occurs)
        return self.element(f, tag, occurs=occurs)

    def particles(self, spec: NodeSpec) -> str:
        parts: list[str] = []
        if self.strict:
            for f in spec.fields:
                low = "" if f.required else ' minOccurs="0"'
                high = ' maxOccurs="unbounded"' if f.many else ""
                parts.append(self.child(f, f.tag, occurs=low + high))
            return "<xs:sequence>" + "".join(parts) + "</xs:sequence>"
        # Any order: xs:all where no child repeats (it also checks cardinality: required
        # children minOccurs 1, the rest at most once); an unbounded choice otherwise,
        # whose cardinality the validator checks. Alias spellings are alternatives.
        repeated = any(f.many for f in spec.fields)
        for f in spec.fields:
            for tag in (f.tag, *f.aliases):
                required = f.required and not f.aliases
                occurs = "" if repeated or required else ' minOccurs="0"'
                parts.append(self.child(f, tag, occurs=occurs))
        group = "xs:choice" if repeated else "xs:all"
        bounds = ' minOccurs="0" maxOccurs="unbounded"' if repeated else ""
        return f"<{group}{bounds}>" + "".join(parts) + f"</{group}>"

    def complex_type(self, name: str, spec: NodeSpec, attributes: str = "") -> str:
        extra = attributes if self.strict else '<xs:anyAttribute processContents="skip"/>'
        return f'<xs:complexType name="{name}">{self.particles(spec)}{extra}</xs:complexType>'


def _document_parts(schema: _Schema) -> tuple[str, str, str]:
    """(header extra particles, body element, root attachments element)."""
    reference = schema.type_name(MANIFEST_REFERENCE)
    attachment = schema.type_name(ATTACHMENT)
    any_attr = "" if schema.strict else '<xs:anyAttribute processContents="skip"/>'
    version = ('<xs:attribute name="version" type="xs:string" fixed="1.0"/>' if schema.strict
               else any_attr)
    body = (
        '<xs:element name="edXMLBody"' + ("" if schema.strict else ' minOccurs="0"') + ">"
        "<xs:complexType><xs:sequence>"
        '<xs:element name="edXMLManifest"' + ("" if schema.strict else ' minOccurs="0"') + ">"
        "<xs:complexType><xs:sequence>"
        f'<xs:element name="Reference" type="edXML:{reference}" minOccurs="0" '
        'maxOccurs="unbounded"/>'
        f"</xs:sequence>{version}</xs:complexType></xs:element>"
        f"</xs:sequence>{any_attr}</xs:complexType></xs:element>"
    )
    attachments = (
        '<xs:element name="AttachmentEncoded" minOccurs="0"><xs:complexType><xs:sequence>'
        f'<xs:element name="Attachment" type="edXML:{attachment}" minOccurs="0" '
        'maxOccurs="unbounded"/>'
        f"</xs:sequence>{any_attr}</xs:complexType></xs:element>"
    )
    return "", body, attachments


def generate_schema(kind: Kind, profile: SchemaProfile) -> str:
    """The XSD text for one package kind in one profile."""
    schema = _Schema(profile)
    header_spec = DOCUMENT_HEADER if kind == "document" else STATUS_HEADER
    header_type = schema.type_name(header_spec)
    trace_type = schema.type_name(TRACE_HEADER_LIST)
    any_attr = "" if schema.strict else '<xs:anyAttribute processContents="skip"/>'
    trace_attrs = ('<xs:attribute name="id" type="xs:string"/>'
                   '<xs:attribute name="version" type="xs:string"/>')
    if schema.strict:
        schema.types[trace_type] = schema.types[trace_type].replace(
            "</xs:sequence></xs:complexType>", f"</xs:sequence>{trace_attrs}</xs:complexType>"
        )
    # a recipient is listed once: duplicate To/OrganId → "Duplicate key-sequence"
    unique = ('<xs:unique name="UniqueRecipient"><xs:selector xpath="edXML:To"/>'
              '<xs:field xpath="edXML:OrganId"/></xs:unique>') if kind == "document" else ""
    ds_any = f'<xs:any namespace="{DSIG_NS}" processContents="skip"'
    if schema.strict:
        header = (
            "<xs:sequence>"
            f'<xs:element name="MessageHeader" type="edXML:{header_type}">{unique}</xs:element>'
            f'<xs:element name="TraceHeaderList" type="edXML:{trace_type}" minOccurs="0"/>'
            f'{ds_any} minOccurs="0"/>'
            "</xs:sequence>"
        )
    else:
        legacy_alias = (f'<xs:element name="Status" type="edXML:{header_type}"/>'
                        if kind == "status" else "")
        header = (
            '<xs:choice minOccurs="1" maxOccurs="unbounded">'
            f'<xs:element name="MessageHeader" type="edXML:{header_type}">{unique}</xs:element>'
            f"{legacy_alias}"
            f'<xs:element name="TraceHeaderList" type="edXML:{trace_type}"/>'
            '<xs:element name="Signature" type="edXML:LegacySignatureType"/>'
            f"{ds_any}/>"
            "</xs:choice>"
        )
        schema.types["LegacySignatureType"] = (
            '<xs:complexType name="LegacySignatureType" mixed="true"><xs:sequence>'
            '<xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>'
            '</xs:sequence><xs:anyAttribute processContents="skip"/></xs:complexType>'
        )
    body = attachments = ""
    if kind == "document":
        _, body, attachments = _document_parts(schema)
    envelope = (
        '<xs:element name="edXMLEnvelope"><xs:complexType><xs:sequence>'
        f'<xs:element name="edXMLHeader"><xs:complexType>{header}{any_attr}</xs:complexType>'
        f"</xs:element>{body}</xs:sequence>{any_attr}</xs:complexType></xs:element>"
    )
    # manifest <-> attachments: an exact match is proved here in C; anything else sends
    # the validator to compare the ids itself (it forgives a "cid:" on one side only)
    references = ("edXML:edXMLEnvelope/edXML:edXMLBody/edXML:edXMLManifest/edXML:Reference")
    attached = "edXML:AttachmentEncoded/edXML:Attachment"
    manifest_keys = (
        f'<xs:key name="{MANIFEST_KEYS[0]}"><xs:selector xpath="{attached}"/>'
        '<xs:field xpath="edXML:ContentId"/></xs:key>'
        f'<xs:keyref name="{MANIFEST_KEYS[1]}" refer="edXML:{MANIFEST_KEYS[0]}">'
        f'<xs:selector xpath="{references}"/><xs:field xpath="edXML:ContentId"/></xs:keyref>'
        f'<xs:key name="{MANIFEST_KEYS[2]}"><xs:selector xpath="{references}"/>'
        '<xs:field xpath="edXML:ContentId"/></xs:key>'
        f'<xs:keyref name="{MANIFEST_KEYS[3]}" refer="edXML:{MANIFEST_KEYS[2]}">'
        f'<xs:selector xpath="{attached}"/><xs:field xpath="edXML:ContentId"/></xs:keyref>'
    ) if kind == "document" else ""
    root = (
        '<xs:element name="edXML"><xs:complexType><xs:sequence>'
        f"{envelope}{attachments}</xs:sequence>{any_attr}</xs:complexType>"
        f"{manifest_keys}</xs:element>"
    )
    title = f"edXML (QCVN 102:2016) {kind} package, {profile} profile"
    lines = [
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"'
        f' xmlns:edXML="{EDXML_NS}" targetNamespace="{EDXML_NS}"'
        ' elementFormDefault="qualified" attributeFormDefault="unqualified">',
        f"  {root}",
    ]
    lines += [f"  {schema.types[name]}" for name in sorted(schema.types)]
    lines.append("</xs:schema>")
    tree = etree.fromstring("\n".join(lines).encode(), etree.XMLParser(remove_blank_text=True))
    etree.indent(tree, space="  ")
    comment = (f"<!-- {title}.\n     Generated by docaxis.edxml._schemagen from "
               "docaxis/edxml/_spec.py: do not edit. -->\n")
    body = str(etree.tostring(tree, encoding="unicode"))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + comment + body + "\n"


def generate_codelists() -> str:
    """The code lists as JSON text."""

    def table(codes: dict[Any, Any]) -> list[dict[str, object]]:
        return [{"code": code, "vi": label.vi, "en": label.en} for code, label in codes.items()]

    data = {
        "status_codes": table(STATUS_CODES),
        "business_doc_types": table(BUSINESS_DOC_TYPES),
        "priorities": table(PRIORITIES),
        "steering_types": table(STEERING_TYPES),
        "group_letters": [{"code": k, "meaning": v} for k, v in GROUP_LETTERS.items()],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def generated_files() -> dict[str, str]:
    """File name → content of everything this module generates."""
    files = {
        name: generate_schema(kind, profile)  # type: ignore[arg-type]
        for (kind, profile), name in SCHEMA_FILES.items()
    }
    files[CODELISTS_FILE] = generate_codelists()
    return files


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "standards")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in generated_files().items():
        (target / name).write_text(text, encoding="utf-8")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
