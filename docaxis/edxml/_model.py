"""The typed model of edXML packages (gói tin edXML).

Everything is an immutable dataclass. Optional elements are ``None`` when absent *or*
empty (real traffic writes empty elements for "no value"); repeated elements are tuples.
Field names are the standard's element names in snake case, the standard's name is given
where it differs. Which fields the standard *requires* lives in :mod:`._spec` and is
checked by the validator, so that a package that breaks the rules still parses into a
best-effort model that a report can talk about.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

PackageKind = Literal["document", "status"]

#: Base64 text is decoded in chunks of this many characters (a multiple of 4).
_DECODE_CHUNK = 4 * 64 * 1024
#: An attached file is read in chunks of this many bytes (a multiple of 3).
_FILE_CHUNK = 3 << 20
#: what XML calls white space (XML 1.0 §2.3 S)
_XML_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class Organization:
    """A party of a package: ``From``, each ``To``, or a status sender (cơ quan, đơn vị)."""

    organ_id: str | None = None
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(frozen=True, slots=True)
class Code:
    """Document number and notation (số, ký hiệu), e.g. ``7816`` / ``VPCP-TTĐT``."""

    code_number: str | None = None
    code_notation: str | None = None

    def __str__(self) -> str:
        return f"{self.code_number or ''}/{self.code_notation or ''}"


@dataclass(frozen=True, slots=True)
class PromulgationInfo:
    """Place and date of promulgation (nơi, ngày ban hành)."""

    place: str | None = None
    promulgation_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class DocumentType:
    """Kind of document (loại văn bản), e.g. TypeName ``Công văn``."""

    type: int | None = None
    type_detail: int | None = None
    type_name: str | None = None


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """Who signed the paper document (người ký)."""

    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True, slots=True)
class OtherInfo:
    """Priority, sphere, amounts and appendixes (thông tin khác)."""

    priority: int | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = None
    page_amount: int | None = None
    reply_fors: str | None = None
    direction: bool | None = None
    reference_codes: str | None = None
    appendixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseFor:
    """The earlier document a package answers (văn bản phúc đáp)."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: dt.date | None = None
    document_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseForTask:
    """Task codes a document responds to."""

    task_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """One handling step recorded by a producer: who and when."""

    organ_id: str | None = None
    timestamp: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Receiver:
    """A recipient in an update's receiver list."""

    organ_id: str | None = None
    receiver_type: int | None = None


@dataclass(frozen=True, slots=True)
class BusinessDocumentInfo:
    """What an update (BussinessDocType 2) changes."""

    document_info: int | None = None
    document_receiver: int | None = None
    receivers: tuple[Receiver, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplacementInfo:
    """A document replaced (BussinessDocType 3) and the agencies concerned."""

    document_id: str | None = None
    organ_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StaffInfo:
    """The clerk who handled the package (cán bộ xử lý)."""

    department: str | None = None
    department_id: str | None = None
    staff: str | None = None
    staff_id: str | None = None
    email: str | None = None
    mobile: str | None = None


@dataclass(frozen=True, slots=True)
class Business:
    """The ``Bussiness`` block (nghiệp vụ): new, recall, update or replace."""

    document_id: str | None = None
    business_doc_type: int | None = None
    business_doc_reason: str | None = None
    paper: int | None = None
    business_document_info: BusinessDocumentInfo | None = None
    replacements: tuple[ReplacementInfo, ...] = ()
    staff_info: StaffInfo | None = None


@dataclass(frozen=True, slots=True)
class TraceHeaderList:
    """Hops recorded by producers plus the business block."""

    trace_headers: tuple[TraceHeader, ...] = ()
    business: Business | None = None


@dataclass(frozen=True, slots=True)
class DocumentHeader:
    """``MessageHeader`` of a document package: the document's metadata."""

    from_: Organization | None = None
    to: tuple[Organization, ...] = ()
    document_id: str | None = None
    code: Code | None = None
    promulgation_info: PromulgationInfo | None = None
    document_type: DocumentType | None = None
    subject: str | None = None
    content: str | None = None
    signer_info: SignerInfo | None = None
    due_date: dt.date | None = None
    other_info: OtherInfo | None = None
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: int | None = None
    response_for_task: ResponseForTask | None = None
    application_type: str | None = None
    to_places: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusHeader:
    """``MessageHeader`` (or ``Status``) of a status package (gói tin trạng thái)."""

    from_: Organization | None = None
    response_for: ResponseFor | None = None
    staff_info: StaffInfo | None = None
    status_code: str | None = None
    description: str | None = None
    timestamp: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ManifestReference:
    """One ``edXMLManifest/Reference``: an attachment announced in the body."""

    content_id: str | None = None
    content_type: str | None = None
    description: str | None = None
    attachment_name: str | None = None


class AttachmentContent:
    """The bytes of one attachment, decoded from base64 lazily and in chunks.

    The parser hands over the base64 text as it stands in the document (one string, no
    copy of the decoded bytes); :meth:`open` streams the decoded bytes, :meth:`read`
    returns them at once, :attr:`sha256` and :attr:`size` are computed on first use by
    one streaming pass. Two contents are equal when their decoded bytes are equal.
    """

    __slots__ = ("_digest", "_file", "_raw", "_region", "_size", "_text")

    def __init__(self, *, raw: bytes | None = None, base64_text: str | None = None,
                 region: FileRegion | None = None, file: str | None = None) -> None:
        if sum(x is not None for x in (raw, base64_text, region, file)) != 1:
            raise TypeError("give exactly one of raw=, base64_text=, region= or file=")
        self._raw = raw
        self._text = base64_text
        self._region = region
        self._file = file
        self._digest: str | None = region.sha256 if region is not None else None
        self._size: int | None = region.size if region is not None else None

    @classmethod
    def from_bytes(cls, raw: bytes) -> AttachmentContent:
        """Content held as plain bytes (what the builder uses)."""
        return cls(raw=bytes(raw))

    @classmethod
    def from_base64(cls, text: str) -> AttachmentContent:
        """Content held as base64 text as found in a package."""
        return cls(base64_text=text)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AttachmentContent:
        """Content that is a whole file (a scan to attach): read in chunks on each use,
        never held in memory; the writer streams its base64 (:func:`write_to`)."""
        return cls(file=os.fspath(path))

    @property
    def in_file(self) -> bool:
        """Whether the bytes stay in a file (read in chunks on each use)."""
        return self._file is not None or self._region is not None

    def iter_base64(self, chunk: int = 3 << 20) -> Iterator[bytes]:
        """The content as unwrapped base64, in chunks (a multiple of 3 bytes decoded each)."""
        carry = b""
        for block in self.iter_chunks():
            data = carry + block
            whole = len(data) - len(data) % 3
            carry = data[whole:]
            for start in range(0, whole, chunk):
                yield base64.b64encode(data[start:min(start + chunk, whole)])
        if carry:
            yield base64.b64encode(carry)

    @classmethod
    def from_region(cls, region: FileRegion) -> AttachmentContent:
        """Content left in the package file (a package read by streaming): decoded from
        the file on each use, never held in memory."""
        return cls(region=region)

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield the decoded bytes in chunks.

        Raises
        ------
        binascii.Error
            If the base64 text is not valid (the validator reports this as
            ``EDX-ATTACHMENT-BASE64`` before anyone needs the bytes).
        """
        if self._raw is not None:
            yield self._raw
            return
        if self._region is not None:
            yield from self._region.decoded()
            return
        if self._file is not None:
            with open(self._file, "rb") as source:
                while block := source.read(_FILE_CHUNK):
                    yield block
            return
        text = self._text or ""
        if any(ch in text for ch in " \t\r\n"):
            text = "".join(text.split())
        if len(text) % 4:
            raise binascii.Error("base64 text length is not a multiple of 4")
        for start in range(0, len(text), _DECODE_CHUNK):
            yield binascii.a2b_base64(text[start : start + _DECODE_CHUNK], strict_mode=True)

    def open(self) -> io.RawIOBase:
        """A readable binary stream of the decoded bytes."""
        return _ChunkStream(self.iter_chunks())

    def read(self) -> bytes:
        """All decoded bytes at once."""
        if self._raw is not None:
            return self._raw
        return b"".join(self.iter_chunks())

    def text_as_found(self) -> str | None:
        """The text the content was read from, without the XML whitespace around it (an
        indented CDATA section's); None when it was not read from text."""
        return self._text.strip(_XML_SPACE) if self._text is not None else None

    def base64_text(self) -> str:
        """The content as unwrapped base64 text (what the writer emits)."""
        if self._text is not None and not any(ch in self._text for ch in " \t\r\n"):
            return self._text
        return base64.b64encode(self.read()).decode("ascii")

    def _measure(self) -> None:
        digest = hashlib.sha256()
        size = 0
        for chunk in self.iter_chunks():
            digest.update(chunk)
            size += len(chunk)
        self._digest, self._size = digest.hexdigest(), size

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the decoded bytes."""
        if self._digest is None:
            self._measure()
        assert self._digest is not None
        return self._digest

    @property
    def size(self) -> int:
        """Number of decoded bytes."""
        if self._size is None:
            self._measure()
        assert self._size is not None
        return self._size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AttachmentContent):
            return NotImplemented
        return self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        return f"AttachmentContent(sha256={self.sha256[:12]}…, size={self.size})"


@dataclass(frozen=True, slots=True)
class FileRegion:
    """Base64 text of one attachment as it stands in a package file, read by streaming.

    ``offset``/``length`` locate the raw text in ``path``; ``size`` and ``sha256`` describe
    its decoded bytes (measured while the file was read); ``problem`` says why the text is
    not valid base64 (None when it is).
    """

    path: str
    offset: int
    length: int
    size: int
    sha256: str
    problem: str | None = None

    def raw(self, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The raw text, in chunks, as it stands in the file."""
        with open(self.path, "rb") as source:
            source.seek(self.offset)
            left = self.length
            while left:
                block = source.read(min(chunk, left))
                if not block:
                    raise OSError(f"{self.path} is shorter than when it was read")
                left -= len(block)
                yield block

    def decoded(self) -> Iterator[bytes]:
        """The decoded bytes, in chunks.

        Raises
        ------
        binascii.Error
            If the text is not valid base64.
        """
        if self.problem is not None:
            raise binascii.Error(self.problem)
        decoder = Base64Stream()
        for block in self.raw():
            yield decoder.feed(block)
        yield decoder.close()


_WHITESPACE = b" \t\r\n"


class Base64Stream:
    """Incremental strict base64 decoding of text that may be wrapped (XML whitespace):
    fed any slices, it decodes whole quads and keeps the rest for the next slice.

    Raises
    ------
    binascii.Error
        From :meth:`feed` or :meth:`close` when the text is not valid base64 (a character
        outside the alphabet, padding before the end, a length not a multiple of 4).
    """

    __slots__ = ("_carry", "_ended")

    def __init__(self) -> None:
        self._carry = b""
        self._ended = False

    def feed(self, block: bytes) -> bytes:
        data = block.translate(None, _WHITESPACE)
        if self._carry:
            data = self._carry + data
        if not data:
            return b""
        if self._ended:
            raise binascii.Error("base64 text continues after its padding")
        whole = len(data) - len(data) % 4
        self._carry = data[whole:]
        if not whole:
            return b""
        if data[whole - 1:whole] == b"=":
            self._ended = True
        return binascii.a2b_base64(memoryview(data)[:whole] if whole < len(data) else data,
                                   strict_mode=True)

    def close(self) -> bytes:
        if self._carry:
            raise binascii.Error("base64 text length is not a multiple of 4")
        return b""


class _ChunkStream(io.RawIOBase):
    """Minimal readable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


@dataclass(frozen=True, slots=True)
class Attachment:
    """One ``AttachmentEncoded/Attachment`` (tệp đính kèm)."""

    content_id: str | None = None
    attachment_name: str | None = None
    description: str | None = None
    content_type: str | None = None
    content: AttachmentContent | None = field(default=None, compare=True)


@dataclass(frozen=True, slots=True)
class DocumentPackage:
    """A document package ("edoc"): header, trace list, manifest and attachments."""

    header: DocumentHeader
    trace: TraceHeaderList | None = None
    manifest: tuple[ManifestReference, ...] = ()
    attachments: tuple[Attachment, ...] = ()

    kind: PackageKind = field(default="document", init=False, repr=False)

    @property
    def sender(self) -> str | None:
        """``From/OrganId``."""
        return self.header.from_.organ_id if self.header.from_ else None

    @property
    def recipients(self) -> tuple[str | None, ...]:
        """Every ``To/OrganId`` in order."""
        return tuple(org.organ_id for org in self.header.to)

    @property
    def document_id(self) -> str | None:
        return self.header.document_id

    @property
    def business(self) -> Business | None:
        return self.trace.business if self.trace else None

    @property
    def business_doc_type(self) -> int:
        """0 new, 1 recall, 2 update, 3 replace (0 when there is no business block)."""
        business = self.business
        if business is None or business.business_doc_type is None:
            return 0
        return business.business_doc_type


@dataclass(frozen=True, slots=True)
class StatusPackage:
    """A status package (receipt): who reports which status for which document."""

    header: StatusHeader
    trace: TraceHeaderList | None = None

    kind: PackageKind = field(default="status", init=False, repr=False)

    @property
    def sender(self) -> str | None:
        return self.header.from_.organ_id if self.header.from_ else None

    @property
    def status_code(self) -> str | None:
        return self.header.status_code

    @property
    def document_id(self) -> str | None:
        """The DocumentId of the document this status is about."""
        return self.header.response_for.document_id if self.header.response_for else None


Package = DocumentPackage | StatusPackage
