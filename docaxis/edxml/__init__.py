"""The edXML package format (QCVN 102:2016): model, hardened parser, writer, validator.

This layer knows the standard and nothing else (no nodes, queues or databases).

Examples
--------
>>> from docaxis.edxml import parse, validate, write
>>> report = validate(open("package.edxml", "rb").read())  # doctest: +SKIP
>>> report.valid  # doctest: +SKIP
True
"""

from docaxis.edxml._builder import DocumentBuilder, StatusBuilder, default_document_id
from docaxis.edxml._codes import (
    BUSINESS_DOC_TYPES,
    PRIORITIES,
    STATUS_CODES,
    STEERING_TYPES,
    CodeLabel,
)
from docaxis.edxml._errors import (
    BadEncoding,
    BuildError,
    DuplicateBlock,
    EdxmlError,
    ForbiddenDoctype,
    HiddenMarkup,
    LegacyFormat,
    MalformedXML,
    NestingTooDeep,
    NotAPackage,
    PackageTooLarge,
    ParseError,
    RelativeNamespace,
    StreamingRefused,
    TooManyElements,
    WrongNamespace,
)
from docaxis.edxml._findings import Finding, Profile, Severity, ValidationReport
from docaxis.edxml._model import (
    Attachment,
    AttachmentContent,
    Business,
    BusinessDocumentInfo,
    Code,
    DocumentHeader,
    DocumentPackage,
    DocumentType,
    ManifestReference,
    Organization,
    OtherInfo,
    Package,
    PackageKind,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    ResponseForTask,
    SignerInfo,
    StaffInfo,
    StatusHeader,
    StatusPackage,
    TraceHeader,
    TraceHeaderList,
)
from docaxis.edxml._namespaces import DSIG_NS, EDXML_NS
from docaxis.edxml._parser import ParsedPackage, ParseLimits, SignatureInfo, parse, parse_xml
from docaxis.edxml._stream import StreamedSource, parse_file
from docaxis.edxml._validator import schema_for, standards_dir, validate
from docaxis.edxml._writer import write, write_to

__all__ = [
    "BUSINESS_DOC_TYPES",
    "DSIG_NS",
    "EDXML_NS",
    "PRIORITIES",
    "STATUS_CODES",
    "STEERING_TYPES",
    "Attachment",
    "AttachmentContent",
    "BadEncoding",
    "BuildError",
    "Business",
    "BusinessDocumentInfo",
    "Code",
    "CodeLabel",
    "DocumentBuilder",
    "DocumentHeader",
    "DocumentPackage",
    "DocumentType",
    "DuplicateBlock",
    "EdxmlError",
    "Finding",
    "ForbiddenDoctype",
    "HiddenMarkup",
    "LegacyFormat",
    "MalformedXML",
    "ManifestReference",
    "NestingTooDeep",
    "NotAPackage",
    "Organization",
    "OtherInfo",
    "Package",
    "PackageKind",
    "PackageTooLarge",
    "ParseError",
    "ParseLimits",
    "ParsedPackage",
    "Profile",
    "PromulgationInfo",
    "Receiver",
    "RelativeNamespace",
    "ReplacementInfo",
    "ResponseFor",
    "ResponseForTask",
    "Severity",
    "SignatureInfo",
    "SignerInfo",
    "StaffInfo",
    "StatusBuilder",
    "StatusHeader",
    "StatusPackage",
    "StreamedSource",
    "StreamingRefused",
    "TooManyElements",
    "TraceHeader",
    "TraceHeaderList",
    "ValidationReport",
    "WrongNamespace",
    "default_document_id",
    "parse",
    "parse_file",
    "parse_xml",
    "schema_for",
    "standards_dir",
    "validate",
    "write",
    "write_to",
]
