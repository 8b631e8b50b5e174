"""Reading a large package from a file in bounded memory (đọc gói tin lớn theo luồng).

A package's structure is small; what makes it large is attachment content: long runs of
base64 text. :func:`parse_file` reads the file once in chunks and cuts every long run of
base64 text that stands alone between two tags (``>…<``), or alone in a CDATA section
(``<![CDATA[…]]>``: some document systems write attachments so), out of what libxml2 will see,
leaving in its place a *marker*: a random string, new for each read, of the same kind
(valid base64 when the text was, 25 base64 characters when it was not). What remains — the
*skeleton* — is parsed by :func:`docaxis.edxml.parse` with every defence of the
in-memory path, so validation, the model and the signature checks read the same tree
they would read in memory, only with markers where the long text was.

While the file is read, each cut run is checked and measured as it streams past: its
raw offset and length, whether it is strict base64, the size and SHA-256 of its decoded
bytes. The attachment contents of the model then read their bytes from the file
(:class:`~docaxis.edxml._model.FileRegion`), never from memory.

What the markers stand for is restored wherever bytes matter: :meth:`StreamedSource.digest`
hashes a canonical form of the skeleton with each marker replaced by the text it stands
for (libxml2 normalises line ends in text to ``\\n``; base64 characters and whitespace
need no escaping in C14N), which is exactly the canonical form of the whole file.

A marker may only be the whole text of an attachment's ``ContentTransferEncoded`` (but
for white space around it: an indented CDATA section's): a long run anywhere else (a
subject, a comment) is refused (``EDX-XML-STREAM``), and so is a skeleton larger than
:attr:`ParseLimits.max_structure_bytes`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Final

from docaxis.edxml import _model as m
from docaxis.edxml._errors import PackageTooLarge, ParseError, StreamingRefused
from docaxis.edxml._model import Base64Stream, FileRegion
from docaxis.edxml._namespaces import q
from docaxis.edxml._parser import ParsedPackage, ParseLimits, parse

#: Read the file in chunks of this many bytes.
READ_CHUNK: Final = 1 << 20
#: A run of base64 text at least this long is cut out of the skeleton: longer than any
#: certificate a signature holds (those must stay), short enough that a package of many
#: small scans keeps its skeleton under ``ParseLimits.max_structure_bytes``.
CUT_AT: Final = 8 * 1024

_B64 = rb"A-Za-z0-9+/= \t\r\n"
_NOT_B64 = re.compile(rb"[^" + _B64 + rb"]")
_B64_BYTES = (string.ascii_letters + string.digits + "+/= \t\r\n").encode()
#: what a chunk may end with that a run could start from: kept for the next chunk (a
#: run's opener, ``>`` or ``<![CDATA[`` — whole or in part — and the text after it)
_CDATA = b"<![CDATA["
#: what opens a run: the end of a tag, or a CDATA section
_OPENER = rb">|" + re.escape(_CDATA)
_TAIL = re.compile(rb"(?:" + _OPENER + rb")[" + _B64 + rb"]*\Z|<[!\[CDAT]{0,8}\Z")
_CONTENT = q("ContentTransferEncoded")
_ATTACHMENT = q("Attachment")
_ALPHANUMERIC = string.ascii_letters + string.digits
_XML_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Cut:
    """One run of text cut out of the skeleton: what stands in its place, and where."""

    marker: bytes
    region: FileRegion
    #: the skeleton line the marker stands on, and the line breaks the run held
    line: int
    newlines: int


@dataclass(frozen=True, slots=True)
class StreamedSource:
    """A package file read by streaming: its size and SHA-256, and the runs cut out."""

    path: str
    size: int
    sha256: str
    cuts: tuple[Cut, ...]

    def digest(self, canonical: bytes, hash_name: str) -> bytes:
        """The digest of ``canonical`` (a canonical form of the skeleton) with each marker
        replaced by the text it stands for, the text streamed from the file.

        A marker that the canonical form does not hold (not covered by it) adds nothing.
        """
        digest = hashlib.new(hash_name)
        position = 0
        if self.cuts:
            for found in self._markers(canonical):
                cut = self.cuts[int(found.group(1))]
                digest.update(canonical[position:found.start()])
                carry = b""
                for block in cut.region.raw():
                    text = carry + block
                    carry = b"\r" if text.endswith(b"\r") else b""
                    if carry:
                        text = text[:-1]
                    if b"\r" in text:  # line ends as the parser normalised them
                        text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                    digest.update(text)
                if carry:
                    digest.update(b"\n")
                position = found.end()
        digest.update(canonical[position:])
        return digest.digest()

    def splice(self, data: bytes, out: BinaryIO) -> None:
        """Write ``data`` (bytes of the skeleton, e.g. re-serialised) to ``out`` with each
        marker replaced by the raw text it stands for, copied from the file in chunks."""
        position = 0
        if self.cuts:
            for found in self._markers(data):
                cut = self.cuts[int(found.group(1))]
                out.write(data[position:found.start()])
                for block in cut.region.raw():
                    out.write(block)
                position = found.end()
        out.write(data[position:])

    def _markers(self, data: bytes) -> Iterator[re.Match[bytes]]:
        """Each marker of this read in ``data``, in order."""
        nonce = re.escape(self.cuts[0].marker[:16])
        for found in re.finditer(nonce + rb"([0-9]{8})A?", data):
            index = int(found.group(1))
            if index < len(self.cuts) and self.cuts[index].marker == found.group(0):
                yield found

    def file_line(self, line: int | None) -> int | None:
        """The line in the file of a line in the skeleton."""
        if line is None:
            return None
        return line + sum(cut.newlines for cut in self.cuts if cut.line < line)

    def with_contents(self, package: m.Package) -> m.Package:
        """The model with each attachment whose text is a marker reading from the file."""
        if not isinstance(package, m.DocumentPackage) or not self.cuts:
            return package
        regions = {cut.marker.decode(): cut.region for cut in self.cuts}
        attachments = []
        for attachment in package.attachments:
            content = attachment.content
            region = regions.get(content.text_as_found() or "") if content is not None else None
            attachments.append(replace(attachment, content=m.AttachmentContent.from_region(
                region)) if region is not None else attachment)
        return replace(package, attachments=tuple(attachments))


class _Run:
    """A run of base64 characters being read: checked, decoded and hashed as it passes.
    ``closer`` is the byte that ends it as the whole text it stands for: ``<`` after a
    tag's ``>``, ``]`` (of ``]]>``) in a CDATA section."""

    __slots__ = ("closer", "decoded", "length", "newlines", "offset", "problem", "sha256",
                 "size")

    def __init__(self, offset: int, closer: bytes) -> None:
        self.offset, self.closer = offset, closer
        self.length = self.size = self.newlines = 0
        self.decoded = Base64Stream()
        self.sha256 = hashlib.sha256()
        self.problem: str | None = None

    def feed(self, stretch: bytes) -> None:
        self.length += len(stretch)
        self.newlines += stretch.count(b"\n")
        if b"\r" in stretch:  # a lone CR is a line break too (XML 1.0 §2.11)
            self.newlines += stretch.count(b"\r") - stretch.count(b"\r\n")
        if self.problem is None:
            try:
                block = self.decoded.feed(stretch)
            except ValueError as exc:  # binascii.Error
                self.problem = f"attachment content is not valid base64: {exc}"
                return
            self.size += len(block)
            self.sha256.update(block)

    def finish(self) -> None:
        if self.problem is None:
            try:
                self.decoded.close()
            except ValueError as exc:
                self.problem = f"attachment content is not valid base64: {exc}"


def scan(path: str | os.PathLike[str], *, max_bytes: int, max_structure_bytes: int,
         cut_at: int = CUT_AT) -> tuple[bytes, StreamedSource]:
    """Read a package file once: its skeleton, and what was cut out of it.

    Parameters
    ----------
    path:
        The package file.
    max_bytes:
        The largest package accepted: a larger file is refused by its size, unread.
    max_structure_bytes:
        The largest skeleton accepted (everything but long attachment text).
    cut_at:
        Runs of base64 text at least this long are cut.

    Raises
    ------
    PackageTooLarge
        The file is larger than ``max_bytes``.
    StreamingRefused
        The skeleton grew beyond ``max_structure_bytes``.
    OSError
        The file cannot be read.
    """
    name = os.fspath(path)
    size = os.stat(name).st_size
    if size > max_bytes:
        raise PackageTooLarge(f"package is {size} bytes, the limit is {max_bytes} bytes "
                              "(--max-bytes, or [limits] max_package_bytes on a node)")
    nonce = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(16))
    skeleton = bytearray()
    cuts: list[Cut] = []
    newlines = 0  # line breaks in the skeleton so far
    whole = hashlib.sha256()
    carry = b""
    run: _Run | None = None
    offset = 0  # file offset of the first byte of buf

    def grow(data: bytes) -> None:
        nonlocal newlines
        skeleton.extend(data)
        newlines += data.count(b"\n")
        if len(skeleton) > max_structure_bytes:
            raise StreamingRefused(
                f"the package's structure (everything but long attachment content) is over "
                f"{max_structure_bytes} bytes: long text outside attachments, or too much "
                "markup ([limits] max_structure_bytes on a node)")

    def end_run(current: _Run, terminator: bytes) -> None:
        current.finish()
        if terminator != current.closer:  # not a whole text: the bytes go back as they are
            for block in FileRegion(name, current.offset, current.length, 0, "").raw():
                grow(block)
            return
        # a marker is base64 of the same validity as the text: 24 characters, or 25
        marker = f"{nonce}{len(cuts):08d}{'' if current.problem is None else 'A'}".encode()
        cuts.append(Cut(marker, FileRegion(name, current.offset, current.length, current.size,
                                           current.sha256.hexdigest(), current.problem),
                        newlines + 1, current.newlines))
        grow(marker)

    with open(name, "rb") as source:
        while True:
            chunk = source.read(READ_CHUNK)
            whole.update(chunk)
            buf = carry + chunk
            start = offset
            carry = b""
            position = 0
            if run is not None:
                # all base64 (the common case, tested in C at memory speed) or where not
                stop = None if not buf.translate(None, _B64_BYTES) else _NOT_B64.search(buf)
                if stop is None and chunk:
                    run.feed(buf)
                    offset += len(buf)
                    continue
                end = stop.start() if stop is not None else len(buf)
                run.feed(buf[:end])
                end_run(run, buf[end:end + 1])
                run, position = None, end
            if not chunk:  # end of file
                grow(buf[position:])
                break
            pattern = _long_run(cut_at)
            for found in pattern.finditer(buf, position):
                opened = found.start() + len(found.group(1))
                grow(buf[position:opened])  # up to and with the '>' or '<![CDATA['
                run = _Run(start + opened, b"]" if found.group(1) == _CDATA else b"<")
                run.feed(buf[opened:found.end()])
                if found.end() < len(buf):
                    end_run(run, buf[found.end():found.end() + 1])
                    run = None
                    position = found.end()
                else:
                    position = len(buf)
                    break
            if run is None:
                tail = _TAIL.search(buf, position)
                cut = tail.start() if tail is not None else len(buf)
                grow(buf[position:cut])
                carry = buf[cut:]
            offset = start + len(buf) - len(carry)
    return bytes(skeleton), StreamedSource(name, size, whole.hexdigest(), tuple(cuts))


_PATTERNS: dict[int, re.Pattern[bytes]] = {}


def _long_run(cut_at: int) -> re.Pattern[bytes]:
    pattern = _PATTERNS.get(cut_at)
    if pattern is None:
        pattern = _PATTERNS[cut_at] = re.compile(
            rb"(" + _OPENER + rb")[" + _B64 + rb"]{%d,}" % cut_at)
    return pattern


def check_markers(root: object, streamed: StreamedSource) -> dict[bytes, FileRegion]:
    """Every marker is the whole text of one attachment's ``ContentTransferEncoded``.

    Raises
    ------
    StreamingRefused
        A long run of text stood anywhere else (the model would read a marker).
    """
    from lxml import etree

    assert isinstance(root, etree._Element)
    wanted = {cut.marker.decode(): cut for cut in streamed.cuts}
    found: dict[bytes, FileRegion] = {}
    for element in root.iter(_CONTENT):
        # the whole text, but for the white space around it: an indented CDATA section
        cut = wanted.get((element.text or "").strip(_XML_SPACE))
        parent = element.getparent()
        if cut is not None and parent is not None and parent.tag == _ATTACHMENT:
            found[cut.marker] = cut.region
    if len(found) != len(wanted):
        missing = next(cut for cut in streamed.cuts if cut.marker not in found)
        raise StreamingRefused(
            f"a long run of text ({missing.region.length} bytes at byte {missing.region.offset}"
            ") is not the content of an attachment: read by streaming, only attachment "
            "content may be long", line=streamed.file_line(missing.line))
    return found


def iter_file(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """A file's bytes in chunks."""
    with Path(path).open("rb") as source:
        while block := source.read(READ_CHUNK):
            yield block


def parse_file(path: str | os.PathLike[str], *, limits: ParseLimits | None = None,
               cut_at: int = CUT_AT) -> ParsedPackage:
    """Parse a package file, by streaming when it is large.

    A file up to ``limits.stream_above`` is read and parsed in memory (:func:`parse`);
    a larger one is read once in chunks (see the module): memory holds its structure,
    never its attachment content. Either way the result is judged alike by
    :func:`validate` and the verifier, and its digests are the same.

    Parameters
    ----------
    path:
        The package file.
    limits:
        Caps (:class:`ParseLimits`); ``max_bytes`` is checked on the file's size before
        anything is read.
    cut_at:
        Runs of base64 text at least this long stay in the file (tests use small values).

    Raises
    ------
    ParseError
        As :func:`parse` (lines are the file's), or :class:`StreamingRefused`.
    OSError
        The file cannot be read.
    """
    limits = limits or ParseLimits()
    size = os.stat(path).st_size
    if size > limits.max_bytes:
        raise PackageTooLarge(f"package is {size} bytes, the limit is {limits.max_bytes} bytes "
                              "(--max-bytes, or [limits] max_package_bytes on a node)")
    if size <= limits.stream_above:
        return parse(Path(path).read_bytes(), limits=limits)
    skeleton, streamed = scan(path, max_bytes=limits.max_bytes,
                              max_structure_bytes=limits.max_structure_bytes, cut_at=cut_at)
    try:
        parsed = parse(skeleton, limits=replace(limits, max_bytes=limits.max_structure_bytes))
    except ParseError as exc:
        raise type(exc)(exc.detail, line=streamed.file_line(exc.line),
                        column=exc.column) from None
    check_markers(parsed.root, streamed)
    return replace(parsed, streamed=streamed)
