"""Errors of the edXML layer.

:class:`EdxmlError` is the parent of everything this layer raises on purpose. Parsing
errors say where (line, column) the input went wrong; validation never raises for a bad
package, it returns a report of findings instead.
"""

from __future__ import annotations

from docaxis._errors import DocaxisError


class EdxmlError(DocaxisError):
    """Base class of errors raised by :mod:`docaxis.edxml`."""

    default_code = "EDX-ERROR"


class ParseError(EdxmlError):
    """The input cannot be read as an edXML package at all.

    ``line`` and ``column`` are 1-based positions in the input when known.
    """

    default_code = "EDX-XML"

    def __init__(
        self, message: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        where = ""
        if line is not None:
            where = f" (line {line}, column {column})" if column is not None else f" (line {line})"
        super().__init__(message + where)
        self.detail = message
        self.line = line
        self.column = column


class MalformedXML(ParseError):
    """Not well-formed XML (mismatched tags, invalid characters, ...)."""

    default_code = "EDX-XML-MALFORMED"


class ForbiddenDoctype(ParseError):
    """A DOCTYPE (and so possibly entities or an external DTD) is present."""

    default_code = "EDX-XML-DOCTYPE"


class PackageTooLarge(ParseError):
    """The input exceeds the configured size cap or a text node the parser's limit."""

    default_code = "EDX-XML-SIZE"


class StreamingRefused(ParseError):
    """A package read by streaming (a large file) whose structure is not small: long text
    outside attachment content, or more markup than :attr:`ParseLimits.max_structure_bytes`."""

    default_code = "EDX-XML-STREAM"


class NestingTooDeep(ParseError):
    """Elements nest deeper than the configured cap."""

    default_code = "EDX-XML-DEPTH"


class TooManyElements(ParseError):
    """More elements, or more children of one element, than the parser's limits allow."""

    default_code = "EDX-XML-LIMIT"


class BadEncoding(ParseError):
    """The input is not UTF-8 (or declares another encoding)."""

    default_code = "EDX-XML-ENCODING"


class WrongNamespace(ParseError):
    """The root element is not ``edXML`` in the QCVN 102:2016 namespace."""

    default_code = "EDX-XML-NAMESPACE"


class LegacyFormat(WrongNamespace):
    """The pre-2016 ``e-doc.vn`` / SOAP format, which this axis does not accept."""

    default_code = "EDX-XML-LEGACY"


class RelativeNamespace(ParseError):
    """A namespace declaration whose URI is relative (``xmlns:x="u"``): C14N refuses it."""

    default_code = "EDX-XML-NAMESPACE-URI"


class HiddenMarkup(ParseError):
    """A comment or processing instruction inside the package.

    Canonicalisation without comments drops them, so they could change what a reader sees
    (``<Subject>A<!---->B</Subject>``) without touching the signature; real traffic has none.
    """

    default_code = "EDX-XML-COMMENT"


class DuplicateBlock(ParseError):
    """A block that must occur once occurs twice (``MessageHeader``, ``edXMLBody``, …), or two
    attachments share a ``ContentId``: readers differ on which copy wins."""

    default_code = "EDX-XML-DUPLICATE"


class NotAPackage(ParseError):
    """The root is ``edXML`` but the envelope/header/message header is missing."""

    default_code = "EDX-XML-STRUCTURE"


class BuildError(EdxmlError, ValueError):
    """The builder was given metadata that cannot make a valid package."""

    default_code = "EDX-BUILD"
