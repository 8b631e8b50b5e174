"""The canonical writer: model → strict-profile bytes.

Output is UTF-8, in the canonical element order of the spec tables, every descendant of
the root prefixed ``edXML:`` (one .NET producer rejects unprefixed children), dates as
``yyyy/MM/dd``, timestamps as ``yyyy/MM/dd HH:mm:ss``, attachments as unwrapped base64.
The writer never signs: :mod:`docaxis.dsig` adds the signature to these bytes.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from docaxis.edxml import _model as m
from docaxis.edxml._namespaces import EDXML_NS
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

_P = "edXML:"
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _format_leaf(kind: str, value: Any) -> str:
    if kind == "date":
        return f"{value:%Y/%m/%d}"
    if kind == "datetime":
        return f"{value:%Y/%m/%d %H:%M:%S}"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "base64":
        return str(value.base64_text())
    if kind == "int":
        return str(int(value))
    # never padded: readers strip, and the official VNPT library misreads padded codes
    return _escape(str(value).strip())


class _Out:
    """The package as text parts; with ``streaming``, an attachment content whose bytes
    stay in a file is a part of its own (its base64 streamed by :func:`write_to`)."""

    __slots__ = ("parts", "streaming")

    def __init__(self, *, streaming: bool = False) -> None:
        self.parts: list[str | m.AttachmentContent] = []
        self.streaming = streaming

    def leaf(self, indent: str, tag: str, kind: str, value: Any) -> None:
        if self.streaming and kind == "base64" and value.in_file:
            self.parts += [f"{indent}<{_P}{tag}>", value, f"</{_P}{tag}>\n"]
            return
        self.parts.append(f"{indent}<{_P}{tag}>{_format_leaf(kind, value)}</{_P}{tag}>\n")

    def open(self, indent: str, tag: str, attributes: str = "") -> None:
        self.parts.append(f"{indent}<{_P}{tag}{attributes}>\n")

    def close(self, indent: str, tag: str) -> None:
        self.parts.append(f"{indent}</{_P}{tag}>\n")

    def value(self, indent: str, f: Field, tag: str, value: Any) -> None:
        if f.is_leaf:
            self.leaf(indent, tag, f.kind, value)  # type: ignore[arg-type]
        else:
            self.node(indent, tag, spec_of(f.kind), value)  # type: ignore[arg-type]

    def node(self, indent: str, tag: str, spec: NodeSpec, obj: Any) -> None:
        self.open(indent, tag)
        inner = indent + "  "
        for f in spec.fields:
            value = getattr(obj, f.attr)
            if value is None or value == ():
                continue
            if f.item is not None:
                self.open(inner, f.tag)
                for item in value:
                    self.value(inner + "  ", f, f.item, item)
                self.close(inner, f.tag)
            elif f.many:
                for item in value:
                    self.value(inner, f, f.tag, item)
            else:
                self.value(inner, f, f.tag, value)
        self.close(indent, tag)


def write(package: m.Package) -> bytes:
    """Serialise a package in the strict profile (unsigned).

    Examples
    --------
    >>> from docaxis.edxml import parse, write
    >>> parse(write(package)).package == package  # doctest: +SKIP
    True
    """
    return "".join(str(part) for part in _parts(package, streaming=False)).encode("utf-8")


def write_to(package: m.Package, out: BinaryIO) -> int:
    """Serialise a package (as :func:`write`) into a binary stream; attachment contents
    whose bytes are in files (:meth:`AttachmentContent.from_file`, a package read by
    streaming) are encoded to base64 in chunks, never held in memory. Returns the number
    of bytes written."""
    written = 0
    for part in _parts(package, streaming=True):
        if isinstance(part, str):
            written += out.write(part.encode("utf-8"))
        else:
            for block in part.iter_base64():
                written += out.write(block)
    return written


def _parts(package: m.Package, *, streaming: bool) -> list[str | m.AttachmentContent]:
    out = _Out(streaming=streaming)
    out.parts.append('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.parts.append(f'<edXML xmlns="{EDXML_NS}" xmlns:edXML="{EDXML_NS}">\n')
    out.open("  ", "edXMLEnvelope")
    out.open("    ", "edXMLHeader")
    if isinstance(package, m.StatusPackage):
        out.node("      ", "MessageHeader", STATUS_HEADER, package.header)
    else:
        out.node("      ", "MessageHeader", DOCUMENT_HEADER, package.header)
    if package.trace is not None and package.trace != m.TraceHeaderList():
        out.node("      ", "TraceHeaderList", TRACE_HEADER_LIST, package.trace)
    out.close("    ", "edXMLHeader")
    if isinstance(package, m.DocumentPackage):
        out.open("    ", "edXMLBody")
        out.open("      ", "edXMLManifest", ' version="1.0"')
        for reference in package.manifest:
            out.node("        ", "Reference", MANIFEST_REFERENCE, reference)
        out.close("      ", "edXMLManifest")
        out.close("    ", "edXMLBody")
    out.close("  ", "edXMLEnvelope")
    if isinstance(package, m.DocumentPackage) and package.attachments:
        out.open("  ", "AttachmentEncoded")
        for attachment in package.attachments:
            out.node("    ", "Attachment", ATTACHMENT, attachment)
        out.close("  ", "AttachmentEncoded")
    out.parts.append("</edXML>\n")
    return out.parts

