"""The node's store: SQLAlchemy models and repositories, Alembic migrations, blobs."""

from docaxis.store._binding import AgencyBinding
from docaxis.store._blobs import BlobError, BlobRef, BlobStore
from docaxis.store._claims import is_alive, process_token, token_for
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
    "UNAVAILABLE",
    "Accept",
    "Acceptance",
    "AgencyBinding",
    "BlobError",
    "BlobRef",
    "BlobStore",
    "Credential",
    "Event",
    "InboxCopy",
    "InboxItem",
    "OutboxItem",
    "PackageFacts",
    "SecretBox",
    "SecretBoxError",
    "SentPackage",
    "Store",
    "System",
    "SystemExists",
    "SystemRegistry",
    "Trace",
    "business_key",
    "is_alive",
    "process_token",
    "token_for",
]
