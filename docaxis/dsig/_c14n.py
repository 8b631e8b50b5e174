"""Canonicalisation helpers (libxml2's C14N through lxml) and the enveloped transform."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from xml.sax.saxutils import escape

from lxml import etree

from docaxis.dsig._algorithms import C14N

_XML_NS = "http://www.w3.org/XML/1998/namespace"
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_INHERITED_XML_ATTRIBUTES = (f"{{{_XML_NS}}}lang", f"{{{_XML_NS}}}space")


def canonical(node: etree._Element | etree._ElementTree, method: C14N, *,
              with_comments: bool | None = None,
              inclusive_prefixes: list[str] | None = None) -> bytes:
    """Canonical bytes of a whole tree or of one element's subtree."""
    if (not method.exclusive and isinstance(node, etree._Element)
            and node.getparent() is not None):
        node = _apex_copy(node)
    return bytes(etree.tostring(
        node, method="c14n", exclusive=method.exclusive,
        with_comments=method.with_comments if with_comments is None else with_comments,
        inclusive_ns_prefixes=inclusive_prefixes if method.exclusive else None,
    ))


@contextmanager
def detached(element: etree._Element) -> Iterator[None]:
    """The enveloped-signature transform: the tree without ``element`` for a moment.

    Only the element goes; the text after it stays where it was (lxml keeps it in the
    element's ``tail``, so it is moved to the previous node and moved back afterwards).
    """
    parent = element.getparent()
    if parent is None:
        raise ValueError("cannot detach the root element")
    index = parent.index(element)
    tail = element.tail
    previous = element.getprevious()
    saved = previous.tail if previous is not None else parent.text
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)
    try:
        yield
    finally:
        if previous is not None:
            previous.tail = saved
        else:
            parent.text = saved
        parent.insert(index, element)
        element.tail = tail


def _apex_copy(element: etree._Element) -> etree._Element:
    """The subtree as the root of its own document, for *inclusive* C14N of a subset.

    libxml2's inclusive C14N of an element inside a larger document can emit spurious
    ``xmlns=""`` on descendants. Inclusive C14N renders, on the apex, every namespace in
    scope and the inherited ``xml:lang``/``xml:space``; a copy (same prefixes) whose root
    declares exactly those canonicalises identically, without the bug.
    """
    text = etree.tostring(element, with_tail=False)
    apex = etree.fromstring(text, _SAFE)
    additions = [
        (f"xmlns:{prefix}" if prefix else "xmlns", uri)
        for prefix, uri in element.nsmap.items() if apex.nsmap.get(prefix) != uri
    ]
    for name in _INHERITED_XML_ATTRIBUTES:
        if element.get(name) is None:
            for ancestor in element.iterancestors():
                inherited = ancestor.get(name)
                if inherited is not None:
                    additions.append(("xml:" + name.rpartition("}")[2], inherited))
                    break
    if not additions:
        return apex
    end = re.match(rb"<[^\s/>]+", text).end()  # type: ignore[union-attr]
    declarations = "".join(f' {name}="{escape(value, {chr(34): "&quot;"})}"'
                           for name, value in additions).encode()
    return etree.fromstring(text[:end] + declarations + text[end:], _SAFE)
