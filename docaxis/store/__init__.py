"""The node's store: SQLAlchemy models and repositories, Alembic migrations, blobs."""

from docaxis.store._binding import AgencyBinding
from docaxis.store._blobs import BlobError, BlobRef, BlobStore
from docaxis.store._chain import AuditReport, Head, Stamp, manifest
from docaxis.store._claims import is_alive, process_token, token_for
from docaxis.store._documents import (
    KINDS,
    LOCAL_TIME,
    QUERY_STATES,
    TYPE_OF_KIND,
    DocumentQuery,
    DocumentSummary,
    QueryError,
    RecipientOutcome,
    working_days_between,
)
from docaxis.store._store import (
    UNAVAILABLE,
    Accept,
    Acceptance,
    Credential,
    Event,
    InboxCopy,
    InboxItem,
    OutboxItem,
    PackageFacts,
    SentPackage,
    Store,
    Trace,
    business_key,
)
from docaxis.store._systems import SecretBox, SecretBoxError, System, SystemExists, SystemRegistry

__all__ = [
    "KINDS",
    "LOCAL_TIME",
    "QUERY_STATES",
    "TYPE_OF_KIND",
    "UNAVAILABLE",
    "Accept",
    "Acceptance",
    "AgencyBinding",
    "AuditReport",
    "BlobError",
    "BlobRef",
    "BlobStore",
    "Credential",
    "DocumentQuery",
    "DocumentSummary",
    "Event",
    "Head",
    "InboxCopy",
    "InboxItem",
    "OutboxItem",
    "PackageFacts",
    "QueryError",
    "RecipientOutcome",
    "SecretBox",
    "SecretBoxError",
    "SentPackage",
    "Stamp",
    "Store",
    "System",
    "SystemExists",
    "SystemRegistry",
    "Trace",
    "business_key",
    "is_alive",
    "manifest",
    "process_token",
    "token_for",
    "working_days_between",
]
