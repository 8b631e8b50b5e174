"""The node's store: SQLAlchemy models and repositories, Alembic migrations, blobs."""

from docaxis.store._blobs import BlobError, BlobRef, BlobStore
from docaxis.store._claims import is_alive, process_token, token_for
from docaxis.store._store import (
    UNAVAILABLE,
    Accept,
    Acceptance,
    Credential,
    Event,
    InboxItem,
    OutboxItem,
    PackageFacts,
    Store,
    Trace,
    business_key,
)

__all__ = [
    "UNAVAILABLE",
    "Accept",
    "Acceptance",
    "BlobError",
    "BlobRef",
    "BlobStore",
    "Credential",
    "Event",
    "InboxItem",
    "OutboxItem",
    "PackageFacts",
    "Store",
    "Trace",
    "business_key",
    "is_alive",
    "process_token",
    "token_for",
]
