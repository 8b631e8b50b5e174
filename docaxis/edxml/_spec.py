"""The element tables of the standard, in one place.

Each model class has a :class:`NodeSpec`: its child elements in canonical write order
(EDXML.md §2), with kind, cardinality, length limit, allowed values and accepted alias
spellings. The parser, the writer, the XSD generator and the test strategies are all
driven by these tables, so a change to the standard is a change here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from docaxis.edxml import _model as m
from docaxis.edxml._codes import BUSINESS_DOC_TYPES, PRIORITIES, STATUS_CODES, STEERING_TYPES
from docaxis.edxml._namespaces import q

#: Leaf kinds. ``agency`` is text that must be an agency code; ``base64`` is attachment data.
LEAF_KINDS: Final = frozenset(
    {"text", "int", "bool", "date", "datetime", "agency", "status", "base64"}
)


@dataclass(frozen=True, slots=True)
class Field:
    """One child element of a node.

    Parameters
    ----------
    attr:
        Attribute of the model class.
    tag:
        Canonical local name (the standard's spelling, e.g. ``Bussiness``).
    kind:
        A leaf kind from :data:`LEAF_KINDS` or a model class for a nested node.
    required:
        The standard requires the element (checked by the validator).
    many:
        The element repeats directly inside its parent (``To``).
    item:
        For wrapped lists (``Appendixes/Appendix``): the local name of the repeated child.
    max_length:
        Length limit (one vendor's validator; warning in the interop profile).
    values:
        Allowed values for coded fields.
    aliases:
        Other local names accepted when reading (``Business`` for ``Bussiness``).
    """

    attr: str
    tag: str
    kind: str | type
    required: bool = False
    many: bool = False
    item: str | None = None
    max_length: int | None = None
    values: frozenset[object] | None = None
    min_value: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def is_leaf(self) -> bool:
        return isinstance(self.kind, str)

    @property
    def repeated(self) -> bool:
        return self.many or self.item is not None


MODE_TEXT, MODE_LEAF, MODE_NODE, MODE_MANY, MODE_WRAPPED = range(5)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """The element table of one model class."""

    cls: type
    fields: tuple[Field, ...]
    by_tag: dict[str, Field] = field(default_factory=dict, compare=False)
    required: tuple[Field, ...] = field(default=(), compare=False)
    #: Clark tag → (attr, mode, field, item Clark tag); mode is one of the ``MODE_*``.
    plan: dict[str, tuple[str, int, Field, str | None]] = field(
        default_factory=dict, compare=False
    )

    def __post_init__(self) -> None:
        for f in self.fields:
            if isinstance(f.kind, str) and f.kind not in LEAF_KINDS:
                raise ValueError(f"{self.cls.__name__}.{f.attr}: unknown leaf kind {f.kind!r}")
            if f.item is not None:
                mode = MODE_WRAPPED
            elif f.many:
                mode = MODE_MANY
            elif f.kind == "text":
                mode = MODE_TEXT
            elif f.is_leaf:
                mode = MODE_LEAF
            else:
                mode = MODE_NODE
            for name in (f.tag, *f.aliases):
                self.by_tag[q(name)] = f
                self.plan[q(name)] = (f.attr, mode, f, q(f.item) if f.item else None)
        object.__setattr__(self, "required", tuple(f for f in self.fields if f.required))


def _f(attr: str, tag: str, kind: str | type = "text", **options: object) -> Field:
    return Field(attr, tag, kind, **options)  # type: ignore[arg-type]


def _codes(table: dict[Any, Any]) -> frozenset[object]:
    return frozenset(table)


ORGANIZATION = NodeSpec(
    m.Organization,
    (
        _f("organ_id", "OrganId", "agency", required=True),
        _f("organization_in_charge", "OrganizationInCharge"),
        _f("organ_name", "OrganName", required=True, max_length=200),
        _f("organ_add", "OrganAdd", max_length=500),
        _f("email", "Email", max_length=100),
        _f("telephone", "Telephone", max_length=20),
        _f("fax", "Fax", max_length=20),
        _f("website", "Website"),
    ),
)
CODE = NodeSpec(
    m.Code,
    (
        _f("code_number", "CodeNumber", required=True, max_length=11),
        _f("code_notation", "CodeNotation", required=True, max_length=30),
    ),
)
PROMULGATION_INFO = NodeSpec(
    m.PromulgationInfo,
    (
        _f("place", "Place", max_length=50),
        _f("promulgation_date", "PromulgationDate", "date", required=True),
    ),
)
DOCUMENT_TYPE = NodeSpec(
    m.DocumentType,
    (
        _f("type", "Type", "int", min_value=0),
        _f("type_detail", "TypeDetail", "int", min_value=0),
        _f("type_name", "TypeName", required=True, max_length=100),
    ),
)
SIGNER_INFO = NodeSpec(
    m.SignerInfo,
    (
        _f("competence", "Competence", max_length=100),
        _f("position", "Position", max_length=100),
        _f("full_name", "FullName", max_length=50),
    ),
)
OTHER_INFO = NodeSpec(
    m.OtherInfo,
    (
        _f("priority", "Priority", "int", values=_codes(PRIORITIES)),
        _f("sphere_of_promulgation", "SphereOfPromulgation", max_length=100),
        _f("typer_notation", "TyperNotation", max_length=10),
        _f("promulgation_amount", "PromulgationAmount", "int", min_value=0),
        _f("page_amount", "PageAmount", "int", min_value=0),
        _f("reply_fors", "ReplyFors"),
        _f("direction", "Direction", "bool"),
        _f("reference_codes", "ReferenceCodes"),
        _f("appendixes", "Appendixes", item="Appendix", max_length=250),
    ),
)
RESPONSE_FOR = NodeSpec(
    m.ResponseFor,
    (
        _f("organ_id", "OrganId", "agency", required=True),
        _f("code", "Code", required=True),
        _f("promulgation_date", "PromulgationDate", "date"),
        _f("document_id", "DocumentId", required=True),
    ),
)
RESPONSE_FOR_TASK = NodeSpec(m.ResponseForTask, (_f("task_codes", "TaskCode", many=True),))
TRACE_HEADER = NodeSpec(
    m.TraceHeader,
    (
        _f("organ_id", "OrganId", "agency", required=True),
        _f("timestamp", "Timestamp", "datetime", required=True),
    ),
)
RECEIVER = NodeSpec(
    m.Receiver,
    (
        _f("organ_id", "OrganId", "agency", required=True),
        _f("receiver_type", "ReceiverType", "int", values=frozenset({0, 1})),
    ),
)
BUSINESS_DOCUMENT_INFO = NodeSpec(
    m.BusinessDocumentInfo,
    (
        _f("document_info", "DocumentInfo", "int", values=frozenset({0, 1})),
        _f("document_receiver", "DocumentReceiver", "int", values=frozenset({0, 1})),
        _f("receivers", "ReceiverList", m.Receiver, item="Receiver"),
    ),
)
REPLACEMENT_INFO = NodeSpec(
    m.ReplacementInfo,
    (
        _f("document_id", "DocumentId", required=True),
        _f("organ_ids", "OrganIdList", "agency", item="OrganId"),
    ),
)
STAFF_INFO = NodeSpec(
    m.StaffInfo,
    (
        _f("department", "Department"),
        _f("department_id", "DepartmentId"),
        _f("staff", "Staff"),
        _f("staff_id", "StaffId"),
        _f("email", "Email"),
        _f("mobile", "Mobile"),
    ),
)
BUSINESS = NodeSpec(
    m.Business,
    (
        _f("document_id", "DocumentId"),
        _f("business_doc_type", "BussinessDocType", "int", required=True,
           values=_codes(BUSINESS_DOC_TYPES), aliases=("BusinessDocType",)),
        _f("business_doc_reason", "BussinessDocReason", aliases=("BusinessDocReason",)),
        _f("paper", "Paper", "int", values=frozenset({0, 1})),
        _f("business_document_info", "BussinessDocumentInfo", m.BusinessDocumentInfo,
           aliases=("BusinessDocumentInfo",)),
        _f("replacements", "ReplacementInfoList", m.ReplacementInfo, item="ReplacementInfo"),
        _f("staff_info", "StaffInfo", m.StaffInfo),
    ),
)
TRACE_HEADER_LIST = NodeSpec(
    m.TraceHeaderList,
    (
        _f("trace_headers", "TraceHeader", m.TraceHeader, many=True),
        _f("business", "Bussiness", m.Business, aliases=("Business",)),
    ),
)
DOCUMENT_HEADER = NodeSpec(
    m.DocumentHeader,
    (
        _f("from_", "From", m.Organization, required=True),
        _f("to", "To", m.Organization, required=True, many=True),
        _f("document_id", "DocumentId", required=True),
        _f("code", "Code", m.Code, required=True),
        _f("promulgation_info", "PromulgationInfo", m.PromulgationInfo, required=True),
        _f("document_type", "DocumentType", m.DocumentType, required=True),
        _f("subject", "Subject", required=True, max_length=500),
        _f("content", "Content", max_length=500),
        _f("signer_info", "SignerInfo", m.SignerInfo),
        _f("due_date", "DueDate", "date"),
        _f("other_info", "OtherInfo", m.OtherInfo),
        _f("response_for", "ResponseFor", m.ResponseFor, many=True),
        _f("steering_type", "SteeringType", "int", values=_codes(STEERING_TYPES)),
        _f("response_for_task", "ResponseForTask", m.ResponseForTask),
        _f("application_type", "ApplicationType"),
        _f("to_places", "ToPlaces", item="Place", max_length=150),
    ),
)
STATUS_HEADER = NodeSpec(
    m.StatusHeader,
    (
        _f("from_", "From", m.Organization, required=True),
        _f("response_for", "ResponseFor", m.ResponseFor, required=True),
        _f("staff_info", "StaffInfo", m.StaffInfo),
        _f("status_code", "StatusCode", "status", required=True, values=_codes(STATUS_CODES)),
        _f("description", "Description"),
        _f("timestamp", "Timestamp", "datetime"),
    ),
)
MANIFEST_REFERENCE = NodeSpec(
    m.ManifestReference,
    (
        _f("content_id", "ContentId", required=True),
        _f("content_type", "ContentType"),
        _f("description", "Description"),
        _f("attachment_name", "AttachmentName"),
    ),
)
ATTACHMENT = NodeSpec(
    m.Attachment,
    (
        _f("content_id", "ContentId", required=True),
        _f("attachment_name", "AttachmentName"),
        _f("description", "Description"),
        _f("content_type", "ContentType"),
        _f("content", "ContentTransferEncoded", "base64", required=True),
    ),
)

SPECS: Final[dict[type, NodeSpec]] = {
    spec.cls: spec
    for spec in (
        ORGANIZATION, CODE, PROMULGATION_INFO, DOCUMENT_TYPE, SIGNER_INFO, OTHER_INFO,
        RESPONSE_FOR, RESPONSE_FOR_TASK, TRACE_HEADER, RECEIVER, BUSINESS_DOCUMENT_INFO,
        REPLACEMENT_INFO, STAFF_INFO, BUSINESS, TRACE_HEADER_LIST, DOCUMENT_HEADER,
        STATUS_HEADER, MANIFEST_REFERENCE, ATTACHMENT,
    )
}


def spec_of(cls: type) -> NodeSpec:
    """The :class:`NodeSpec` of a model class."""
    return SPECS[cls]
