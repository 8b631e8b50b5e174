"""Tables of a node's store (SQLAlchemy 2.x). No business rules here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PackageRow(Base):
    """The message log: one row per distinct package received (bytes in the blob store)."""

    __tablename__ = "packages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # document | status
    sender: Mapped[str | None] = mapped_column(String(13), index=True)
    document_id: Mapped[str | None] = mapped_column(String(500), index=True)
    business_key: Mapped[str] = mapped_column(String(700), unique=True)
    business_doc_type: Mapped[int] = mapped_column(Integer, default=0)
    status_code: Mapped[str | None] = mapped_column(String(2))
    #: whose document this package is about: its own sender for a document, the sender
    #: of the answered document for a status (a document is keyed by sender + DocumentId)
    document_sender: Mapped[str | None] = mapped_column(String(13))
    #: a document's recipients (To/OrganId), comma-separated
    recipients: Mapped[str | None] = mapped_column(Text)
    origin_node: Mapped[str | None] = mapped_column(String(100))
    received_from: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # where the exact bytes are in the blob log (None: the one-file-per-blob layout of 0001)
    blob_segment: Mapped[str | None] = mapped_column(String(64))
    blob_offset: Mapped[int | None] = mapped_column(BigInteger)
    #: a document's number and notation as written (``12/VPCP-TTĐT``), and folded for
    #: search (no diacritics, lower-case; '' when it has none; None: not indexed yet)
    code: Mapped[str | None] = mapped_column(String(60))
    code_key: Mapped[str | None] = mapped_column(String(60), index=True)
    subject: Mapped[str | None] = mapped_column(Text)


class BlobChunkRow(Base):
    """A package's exact bytes kept in the database (PostgreSQL: every instance of a node
    reads them), in chunks of at most :data:`BLOB_CHUNK` bytes."""

    __tablename__ = "blob_chunks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class LeaseRow(Base):
    """A process's lease on the hand-overs it owes: renewed every few seconds while it
    runs (times by the database's clock, one clock for every host)."""

    __tablename__ = "leases"

    claimant: Mapped[str] = mapped_column(String(200), primary_key=True)
    node: Mapped[str] = mapped_column(String(100))
    renewed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


#: the largest chunk of a package's bytes kept in one database row
BLOB_CHUNK = 1024 * 1024


class EventRow(Base):
    """What happened to a package at a node, in order (the trace)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_document_at", "document_id", "at"),
                      Index("ix_events_document_sender", "document_id", "document_sender"),
                      Index("ix_events_chain_id", "chain", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_sha256: Mapped[str] = mapped_column(String(64), index=True)
    document_id: Mapped[str | None] = mapped_column(String(500))
    document_sender: Mapped[str | None] = mapped_column(String(13))
    node: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    agency: Mapped[str | None] = mapped_column(String(13))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the hash chain (migration 0009): the writing process's chain, the previous
    #: record's hash in it, and this record's own hash (None: written before 0009)
    chain: Mapped[str | None] = mapped_column(String(100))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    record_hash: Mapped[str | None] = mapped_column(String(64))


class OutboxRow(Base):
    """Hand-overs owed to another node; a row is written in the same transaction as the log."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("package_sha256", "destination_node", "message_kind",
                                       name="uq_outbox_package_destination"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_sha256: Mapped[str] = mapped_column(ForeignKey("packages.sha256"))
    destination_node: Mapped[str] = mapped_column(String(100))
    message_kind: Mapped[str] = mapped_column(String(20), default="package")
    payload_header: Mapped[str | None] = mapped_column(Text)  # JSON transport headers
    state: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    #: the process that owes the hand-over (``host:pid:start``); the outbox sweep of
    #: another process takes the row over only once that process is gone
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class InboxRow(Base):
    """A package waiting for (or fetched by) a recipient agency's system."""

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("agency", "package_sha256", name="uq_inbox_agency_package"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str] = mapped_column(String(13), index=True)
    package_sha256: Mapped[str] = mapped_column(ForeignKey("packages.sha256"))
    document_id: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(12), default="new")  # new | acknowledged
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: the document system's own word on this copy (VXP ``updateStatus``: done, fail,
    #: processing) and its description; ``done`` is the acknowledgement itself
    client_status: Mapped[str | None] = mapped_column(String(12))
    client_status_desc: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ReceiptRow(Base):
    """A recipient's status (01 … 16) about a document, latest last."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(String(500), index=True)
    document_sender: Mapped[str | None] = mapped_column(String(13))
    recipient: Mapped[str] = mapped_column(String(13))
    status_code: Mapped[str] = mapped_column(String(2))
    receipt_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SystemRow(Base):
    """A document system's VXP credential (hệ thống quản lý văn bản): its ``systemId``,
    its HMAC secret sealed with the node's secret key, and the agencies it acts for."""

    __tablename__ = "systems"

    system_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    agencies: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of codes
    subtrees: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of node ids
    may_register: Mapped[bool] = mapped_column(default=False)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class CredentialRow(Base):
    """An agency system's API credential (only a hash of the token is kept)."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str] = mapped_column(String(13), index=True)  # the first it acts for
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: every agency and subtree it acts for (JSON lists; NULL: ``agency`` alone)
    agencies: Mapped[str | None] = mapped_column(Text)
    subtrees: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class DirectoryNodeRow(Base):
    """A node of the directory kept in the database (over or instead of network.toml)."""

    __tablename__ = "directory_nodes"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    tier: Mapped[str] = mapped_column(String(20))
    parent: Mapped[str | None] = mapped_column(String(100))
    amqp_url: Mapped[str | None] = mapped_column(Text)
    http: Mapped[str | None] = mapped_column(Text)


class DirectoryAgencyRow(Base):
    """An agency of the directory kept in the database: its code and home node."""

    __tablename__ = "directory_agencies"

    code: Mapped[str] = mapped_column(String(13), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    node: Mapped[str] = mapped_column(String(100))
    tier: Mapped[str | None] = mapped_column(String(20))
    certificate_fingerprint: Mapped[str | None] = mapped_column(String(128))
    #: JSON: {"fingerprints": [...], "signers": [{"issuer": ..., "subject": {...}}]}
    signer_binding: Mapped[str | None] = mapped_column(Text)


class StampRow(Base):
    """An RFC 3161 timestamp of the log's chain heads (dấu thời gian): the TSA's response
    over the SHA-256 of the manifest of :class:`StampHeadRow` rows it covers."""

    __tablename__ = "stamps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the time the token states (genTime)
    stamped_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    tsa: Mapped[str] = mapped_column(String(500))
    #: SHA-256 (hex) of the manifest: what the token's imprint is
    imprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)


class StampHeadRow(Base):
    """One chain head a stamp covers: the record and its hash at that moment."""

    __tablename__ = "stamp_heads"
    __table_args__ = (Index("ix_stamp_heads_chain_record", "chain", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stamp_id: Mapped[int] = mapped_column(ForeignKey("stamps.id"), index=True)
    chain: Mapped[str] = mapped_column(String(100))
    record_id: Mapped[int] = mapped_column(Integer)
    record_hash: Mapped[str] = mapped_column(String(64))


class LogChainRow(Base):
    """A chain of the message log (one per writing store object in a process), listed
    when it starts: the stamper finds every chain's head without scanning the log."""

    __tablename__ = "log_chains"

    chain: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: its writer is gone and a stamp covers its last record: the stamper skips it
    closed: Mapped[bool] = mapped_column(Boolean, default=False)


class HopStatementRow(Base):
    """A later node's signed hop receipts as received (the statement's JSON: body,
    signature, chain), kept as evidence of what that node asserted."""

    __tablename__ = "hop_statements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(100))
    statement: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HopStatementPackageRow(Base):
    """Which packages a kept statement speaks of."""

    __tablename__ = "hop_statement_packages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("hop_statements.id"))
    package_sha256: Mapped[str] = mapped_column(String(64), index=True)
