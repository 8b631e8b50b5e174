"""Hypothesis strategies for the edXML model, derived from the same spec tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from docaxis.edxml import STATUS_CODES, AttachmentContent, DocumentPackage, StatusPackage
from docaxis.edxml import _model as m
from docaxis.edxml._spec import Field, NodeSpec, spec_of
from docaxis.identifiers import GROUP_LETTERS

_TEXT_CHARS = st.characters(categories=("L", "N", "P", "S", "Zs"))


def text(max_size: int | None) -> st.SearchStrategy[str]:
    """Non-empty text without leading/trailing whitespace (the parser strips)."""
    return (st.text(_TEXT_CHARS, min_size=1, max_size=max_size or 40)
            .map(str.strip).filter(bool))


def _two(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@st.composite
def agency_codes(draw: st.DrawFn) -> str:
    letter = draw(st.sampled_from(sorted(GROUP_LETTERS)))
    number = draw(_two(1, 63 if letter in "HK" else 99))
    level = draw(st.integers(1, 4))
    l2 = draw(_two(1, 99)) if level >= 2 else 0
    l3 = draw(_two(1, 99)) if level >= 3 else 0
    l4 = draw(_two(1, 999)) if level >= 4 else 0
    return f"{l4:03d}.{l3:02d}.{l2:02d}.{letter}{number:02d}"


def _leaf(f: Field) -> st.SearchStrategy[Any]:
    kind = f.kind
    if kind == "text":
        return text(f.max_length)
    if kind == "agency":
        return agency_codes()
    if kind == "int":
        if f.values is not None:
            return st.sampled_from(sorted(f.values))  # type: ignore[type-var]
        return st.integers(f.min_value or 0, 10**6)
    if kind == "bool":
        return st.booleans()
    if kind == "date":
        return st.dates(dt.date(1990, 1, 1), dt.date(2024, 12, 31))
    if kind == "datetime":
        return st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2030, 1, 1)).map(
            lambda d: d.replace(microsecond=0))
    if kind == "status":
        return st.sampled_from(sorted(STATUS_CODES))
    if kind == "base64":
        return st.binary(max_size=300).map(AttachmentContent.from_bytes)
    raise AssertionError(kind)


def _value(f: Field) -> st.SearchStrategy[Any]:
    return _leaf(f) if f.is_leaf else node(spec_of(f.kind))  # type: ignore[arg-type]


def node(spec: NodeSpec) -> st.SearchStrategy[Any]:
    """Instances of ``spec.cls`` with required fields present and no all-empty node."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in spec.fields:
        if f.repeated:
            # recipients are unique (the standard's rule, enforced by xs:unique)
            unique = (lambda org: org.organ_id) if f.tag == "To" else None
            fields[f.attr] = st.lists(_value(f), min_size=1 if f.required else 0,
                                      max_size=3, unique_by=unique).map(tuple)
        elif f.required:
            fields[f.attr] = _value(f)
        else:
            fields[f.attr] = st.none() | _value(f)
    strategy = st.builds(spec.cls, **fields)
    if not any(f.required for f in spec.fields):
        empty = spec.cls()
        strategy = strategy.filter(lambda obj: obj != empty)
    return strategy


@st.composite
def document_packages(draw: st.DrawFn) -> DocumentPackage:
    """Document packages whose manifest announces exactly the attachments carried."""
    attachments = draw(st.lists(node(spec_of(m.Attachment)), max_size=2,
                                unique_by=lambda a: a.content_id))
    references = [
        m.ManifestReference(a.content_id, draw(st.none() | text(40)), draw(st.none() | text(40)),
                            draw(st.none() | text(40)))
        for a in attachments
    ]
    return DocumentPackage(
        header=draw(node(spec_of(m.DocumentHeader))),
        trace=draw(st.none() | node(spec_of(m.TraceHeaderList))),
        manifest=tuple(references),
        attachments=tuple(attachments),
    )


def status_packages() -> st.SearchStrategy[StatusPackage]:
    return st.builds(StatusPackage, header=node(spec_of(m.StatusHeader)),
                     trace=st.none() | node(spec_of(m.TraceHeaderList)))


def packages() -> st.SearchStrategy[DocumentPackage | StatusPackage]:
    return document_packages() | status_packages()
