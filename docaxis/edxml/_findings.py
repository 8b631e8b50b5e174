"""Findings and validation reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from lxml import etree

from docaxis.edxml._namespaces import DSIG_NS, EDXML_NS

if TYPE_CHECKING:
    from docaxis.edxml._parser import ParsedPackage

Profile = Literal["strict", "interop"]
PROFILES: tuple[Profile, ...] = ("interop", "strict")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


#: Codes whose severity depends on the profile: (interop, strict).
_PROFILE_SEVERITY: dict[str, tuple[Severity, Severity]] = {
    "EDX-LENGTH": (Severity.WARNING, Severity.ERROR),
    "EDX-DATE-FORMAT-LEGACY": (Severity.WARNING, Severity.ERROR),
    "EDX-CONTENT-MISSING": (Severity.WARNING, Severity.ERROR),
    "EDX-PEER-COMPAT": (Severity.WARNING, Severity.ERROR),
}


def severity_for(code: str, default: Severity, profile: Profile) -> Severity:
    """The severity of ``code`` under ``profile`` (most codes do not depend on it)."""
    pair = _PROFILE_SEVERITY.get(code)
    if pair is None:
        return default
    return pair[1] if profile == "strict" else pair[0]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a package.

    ``code`` is stable (documented in ``standards/README.md``), ``path`` is an element
    path such as ``/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To[1]/OrganId`` and
    ``line`` the 1-based line of that element in the input.
    """

    code: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
        }

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else ""
        if self.path:
            where = f"{where} {self.path}".strip()
        return f"{self.severity} {self.code}: {self.message}" + (f" [{where}]" if where else "")


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What the validator says about one package."""

    profile: Profile
    findings: tuple[Finding, ...]
    parsed: ParsedPackage | None = field(default=None, repr=False)
    source: str | None = None

    @property
    def valid(self) -> bool:
        """No errors (warnings allowed)."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def codes(self, severity: Severity | None = None) -> set[str]:
        """The set of finding codes, optionally of one severity."""
        return {f.code for f in self.findings if severity is None or f.severity is severity}

    def to_dict(self) -> dict[str, Any]:
        parsed = self.parsed
        return {
            "source": self.source,
            "profile": self.profile,
            "valid": self.valid,
            "kind": parsed.kind if parsed else None,
            "sha256": parsed.sha256 if parsed else None,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
        }


_PREFIXES = {EDXML_NS: "", DSIG_NS: "ds:"}


class _Numbering:
    """1-based positions of a parent's children among same-named siblings, worked out
    only as far as asked (findings are usually about the first entries of a long list)."""

    __slots__ = ("_children", "_counts", "_known")

    def __init__(self, parent: etree._Element) -> None:
        self._children = iter(parent)
        self._counts: dict[object, int] = {}
        self._known: dict[etree._Element, int] = {}

    def label(self, node: etree._Element) -> str:
        """``[n]`` when siblings share ``node``'s name, else ``""``."""
        index = self._known.get(node)
        while index is None:
            child = next(self._children, None)
            if child is None:
                return ""
            count = self._counts[child.tag] = self._counts.get(child.tag, 0) + 1
            self._known[child] = count
            if child is node:
                index = count
        if index > 1 or next(node.itersiblings(node.tag), None) is not None:
            return f"[{index}]"
        return ""


#: parent → its numbering (one dict per report)
Positions = dict[etree._Element, _Numbering]


def element_path(element: etree._Element, positions: Positions | None = None) -> str:
    """``/edXML/edXMLEnvelope/...`` with ``[n]`` (1-based) where siblings share a name.

    ``positions`` (one dict per report) remembers each parent's numbering, so that the
    paths of many findings under one parent cost one pass over its children, not one each.
    """
    positions = {} if positions is None else positions
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        tag = node.tag
        parent = node.getparent()
        if isinstance(tag, str):
            ns, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
            name = _PREFIXES.get(ns, f"{{{ns}}}" if ns else "") + local
            if parent is not None:
                numbering = positions.get(parent)
                if numbering is None:
                    numbering = positions[parent] = _Numbering(parent)
                name += numbering.label(node)
            steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))



def finding_at(
    code: str, severity: Severity, message: str, element: etree._Element | None,
    positions: Positions | None = None,
) -> Finding:
    """A :class:`Finding` located at ``element`` (path and line)."""
    if element is None:
        return Finding(code, severity, message)
    return Finding(code, severity, message, element_path(element, positions),
                   element.sourceline)
