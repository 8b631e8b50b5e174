"""Immutable builders that agency systems use to make packages.

Every method returns a *new* builder (as in ``cryptography.x509.CertificateBuilder``),
so a half-configured builder can be shared and specialised safely. :meth:`build` checks
that the standard's required fields are present and returns the typed model; pass it to
:func:`docaxis.edxml.write` for bytes.

Examples
--------
>>> from docaxis.edxml import DocumentBuilder, Organization, write
>>> package = (
...     DocumentBuilder()
...     .sender(Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ"))
...     .recipient(Organization(organ_id="000.00.00.H41", organ_name="UBND Tỉnh Nghệ An"))
...     .code("7816", "VPCP-TTĐT")
...     .promulgation(datetime.date(2024, 5, 2), place="Hà Nội")
...     .document_type(1, "Công văn")
...     .subject("V/v kết nối liên thông")
...     .attach("quyet-dinh.pdf", b"%PDF-1.7 ...", content_type="application/pdf")
...     .build()
... )  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import os
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from docaxis.edxml import _model as m
from docaxis.edxml._codes import STATUS_CODES
from docaxis.edxml._errors import BuildError
from docaxis.edxml._parser import VN_TZ
from docaxis.identifiers import AgencyCode, InvalidAgencyCode


def _now() -> dt.datetime:
    return dt.datetime.now(VN_TZ).replace(tzinfo=None, microsecond=0)


def _check_code(field: str, value: str | None) -> None:
    if value is None:
        raise BuildError(f"{field} is required")
    try:
        AgencyCode.parse(value)
    except InvalidAgencyCode as exc:
        raise BuildError(f"{field}: {exc.message}", code=exc.code) from None


def default_document_id(sender: str, date: dt.date, code: m.Code) -> str:
    """``OrganId,yyyy/MM/dd,CodeNumber/CodeNotation`` — the usual DocumentId form."""
    return f"{sender},{date:%Y/%m/%d},{code.code_number}/{code.code_notation}"


@dataclass(frozen=True, slots=True)
class DocumentBuilder:
    """Builds a :class:`DocumentPackage` (gói tin văn bản) from metadata and files."""

    _header: m.DocumentHeader = field(default_factory=m.DocumentHeader)
    _business: m.Business | None = None
    _attachments: tuple[m.Attachment, ...] = ()
    _trace_time: dt.datetime | None = None

    def _with(self, **changes: Any) -> DocumentBuilder:
        return replace(self, _header=replace(self._header, **changes))

    def sender(self, organization: m.Organization) -> DocumentBuilder:
        """Set ``From``."""
        return self._with(from_=organization)

    def recipient(self, organization: m.Organization) -> DocumentBuilder:
        """Add one ``To``."""
        return self._with(to=(*self._header.to, organization))

    def document_id(self, value: str) -> DocumentBuilder:
        """Override the DocumentId (default: ``From,date,number/notation``)."""
        return self._with(document_id=value)

    def code(self, number: str, notation: str) -> DocumentBuilder:
        return self._with(code=m.Code(number, notation))

    def promulgation(self, date: dt.date, place: str | None = None) -> DocumentBuilder:
        return self._with(promulgation_info=m.PromulgationInfo(place, date))

    def document_type(
        self, type_: int, name: str, detail: int | None = None
    ) -> DocumentBuilder:
        return self._with(document_type=m.DocumentType(type_, detail, name))

    def subject(self, subject: str, content: str | None = None) -> DocumentBuilder:
        """Set ``Subject`` and ``Content`` (content defaults to the subject)."""
        return self._with(subject=subject, content=content if content is not None else subject)

    def signer(self, full_name: str, position: str | None = None,
               competence: str | None = None) -> DocumentBuilder:
        return self._with(signer_info=m.SignerInfo(competence, position, full_name))

    def due_date(self, date: dt.date) -> DocumentBuilder:
        return self._with(due_date=date)

    def other_info(self, info: m.OtherInfo) -> DocumentBuilder:
        return self._with(other_info=info)

    def steering_type(self, value: int) -> DocumentBuilder:
        return self._with(steering_type=value)

    def responds_to(self, response: m.ResponseFor) -> DocumentBuilder:
        return self._with(response_for=(*self._header.response_for, response))

    def to_places(self, *places: str) -> DocumentBuilder:
        return self._with(to_places=tuple(places))

    def business(self, business: m.Business) -> DocumentBuilder:
        """Set the Bussiness block (recall/update/replace); default is "new" (type 0)."""
        return replace(self, _business=business)

    def trace_time(self, when: dt.datetime) -> DocumentBuilder:
        """Timestamp of the sender's TraceHeader (default: now, Vietnam time)."""
        return replace(self, _trace_time=when)

    def attach(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str | None = None,
        description: str | None = None,
        content_id: str | None = None,
    ) -> DocumentBuilder:
        """Add an attachment (and its manifest reference)."""
        return self._attach(name, m.AttachmentContent.from_bytes(data), content_type,
                            description, content_id)

    def attach_file(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
        content_id: str | None = None,
    ) -> DocumentBuilder:
        """Add a file as an attachment without reading it into memory: its bytes are
        base64-encoded in chunks when the package is written (:func:`write_to`)."""
        return self._attach(name or Path(path).name, m.AttachmentContent.from_file(path),
                            content_type, description, content_id)

    def _attach(self, name: str, content: m.AttachmentContent, content_type: str | None,
                description: str | None, content_id: str | None) -> DocumentBuilder:
        guessed = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        attachment = m.Attachment(
            content_id=content_id or f"cid:{uuid.uuid4()}",
            attachment_name=name,
            description=description or name,
            content_type=guessed,
            content=content,
        )
        return replace(self, _attachments=(*self._attachments, attachment))

    def build(self) -> m.DocumentPackage:
        """Check required fields and return the package model.

        Raises
        ------
        BuildError
            Naming the first missing or malformed field.
        """
        h = self._header
        if h.from_ is None:
            raise BuildError("sender (From) is required")
        _check_code("From/OrganId", h.from_.organ_id)
        if not h.to:
            raise BuildError("at least one recipient (To) is required")
        seen: set[str] = set()
        for org in h.to:
            _check_code("To/OrganId", org.organ_id)
            if org.organ_id in seen:
                raise BuildError(f"recipient {org.organ_id} is given twice",
                                 code="EDX-TO-DUPLICATE")
            seen.add(org.organ_id)  # type: ignore[arg-type]
        for org in (h.from_, *h.to):
            if not org.organ_name:
                raise BuildError(f"OrganName of {org.organ_id} is required")
        if h.code is None:
            raise BuildError("code (number/notation) is required")
        if h.promulgation_info is None or h.promulgation_info.promulgation_date is None:
            raise BuildError("promulgation date is required")
        if h.document_type is None or not h.document_type.type_name:
            raise BuildError("document type name is required")
        if not h.subject:
            raise BuildError("subject is required")
        header = h
        if header.document_id is None:
            header = replace(header, document_id=default_document_id(
                h.from_.organ_id, h.promulgation_info.promulgation_date, h.code))  # type: ignore[arg-type]
        business = self._business or m.Business(business_doc_type=0)
        trace = m.TraceHeaderList(
            trace_headers=(m.TraceHeader(h.from_.organ_id, self._trace_time or _now()),),
            business=business,
        )
        manifest = tuple(
            m.ManifestReference(a.content_id, a.content_type, a.description, a.attachment_name)
            for a in self._attachments
        )
        return m.DocumentPackage(header, trace, manifest, self._attachments)


@dataclass(frozen=True, slots=True)
class StatusBuilder:
    """Builds a :class:`StatusPackage` (gói tin trạng thái) answering a document."""

    _header: m.StatusHeader = field(default_factory=m.StatusHeader)

    def _with(self, **changes: Any) -> StatusBuilder:
        return replace(self, _header=replace(self._header, **changes))

    def sender(self, organization: m.Organization) -> StatusBuilder:
        return self._with(from_=organization)

    def responding_to(self, document: m.DocumentPackage) -> StatusBuilder:
        """Answer ``document``: copies its sender, code, DocumentId and date."""
        h = document.header
        date = h.promulgation_info.promulgation_date if h.promulgation_info else None
        return self._with(response_for=m.ResponseFor(
            organ_id=document.sender, code=str(h.code) if h.code else None,
            promulgation_date=date, document_id=h.document_id))

    def response_for(self, response: m.ResponseFor) -> StatusBuilder:
        return self._with(response_for=response)

    def status(self, code: str, description: str | None = None) -> StatusBuilder:
        """Set the status code (01–06, 13, 15, 16); description defaults to its label."""
        if code not in STATUS_CODES:
            raise BuildError(f"status code {code!r} is not one of {', '.join(STATUS_CODES)}",
                             code="EDX-STATUS-CODE")
        return self._with(status_code=code, description=description or STATUS_CODES[code].vi)

    def staff(self, staff: m.StaffInfo) -> StatusBuilder:
        return self._with(staff_info=staff)

    def timestamp(self, when: dt.datetime) -> StatusBuilder:
        return self._with(timestamp=when)

    def build(self) -> m.StatusPackage:
        h = self._header
        if h.from_ is None:
            raise BuildError("sender (From) is required")
        _check_code("From/OrganId", h.from_.organ_id)
        if h.response_for is None or h.response_for.document_id is None:
            raise BuildError("the document this status answers (ResponseFor) is required")
        if h.status_code is None:
            raise BuildError("status code is required")
        if h.timestamp is None:
            h = replace(h, timestamp=_now())
        return m.StatusPackage(h)
