"""A node's store: message log, events, outbox, inbox, receipts, credentials.

Repositories only: the relay decides *what* to record, the store makes each decision
durable in one transaction. SQLite (WAL) is the embedded default; PostgreSQL works by
changing the URL. The schema is managed by Alembic (:meth:`Store.migrate`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from docaxis.store._blobs import BlobStore
from docaxis.store._models import (
    CredentialRow,
    EventRow,
    InboxRow,
    OutboxRow,
    PackageRow,
    ReceiptRow,
    utcnow,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class PackageFacts:
    """What the log keeps about a package besides its bytes."""

    kind: str
    sender: str | None
    document_id: str | None
    business_doc_type: int = 0
    status_code: str | None = None


@dataclass(frozen=True)
class Accept:
    """One package to log, with what it causes at this node."""

    data: bytes
    facts: PackageFacts
    node: str
    received_from: str | None = None
    origin_node: str | None = None
    outbox: tuple[tuple[str, str, dict[str, str]], ...] = ()
    inbox: tuple[str, ...] = ()
    events: tuple[tuple[str, str | None, str | None], ...] = ()


@dataclass(frozen=True)
class Acceptance:
    """The answer to a sender: the same for a repeat of the same package."""

    sha256: str
    business_key: str
    accepted_at: dt.datetime
    duplicate: bool


@dataclass(frozen=True)
class OutboxItem:
    id: int
    sha256: str
    destination_node: str
    message_kind: str
    headers: dict[str, str]
    document_id: str | None = None


@dataclass(frozen=True)
class InboxItem:
    id: int
    agency: str
    sha256: str
    document_id: str | None
    kind: str
    state: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Event:
    node: str
    kind: str
    at: dt.datetime
    agency: str | None = None
    detail: str | None = None
    sha256: str | None = None


@dataclass
class Trace:
    """A document's timeline at one node, with each recipient's latest status."""

    document_id: str
    events: list[Event] = field(default_factory=list)
    statuses: dict[str, tuple[str, dt.datetime]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "events": [{"at": e.at.isoformat(), "node": e.node, "kind": e.kind,
                        "agency": e.agency, "detail": e.detail} for e in self.events],
            "statuses": {agency: {"status_code": code, "at": at.isoformat()}
                         for agency, (code, at) in self.statuses.items()},
        }


def business_key(sender: str | None, document_id: str | None, sha256: str) -> str:
    """The deduplication key: From + DocumentId + package SHA-256."""
    return f"{sender or '-'}|{document_id or '-'}|{sha256}"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class Store:
    """Open a node's store.

    Parameters
    ----------
    url:
        SQLAlchemy URL: ``sqlite:///data/node.db`` (default embedded) or
        ``postgresql+psycopg://user@host/db``.
    blobs:
        Folder of the content-addressed blob store.

    Examples
    --------
    >>> store = Store("sqlite:///var/hanoi.db", "var/hanoi-blobs")  # doctest: +SKIP
    >>> store.migrate()  # doctest: +SKIP
    """

    def __init__(self, url: str, blobs: Path | str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.blobs = BlobStore(blobs)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return self._sessions()

    # -- message log -------------------------------------------------------------------
    def accept(
        self, data: bytes, facts: PackageFacts, *, node: str,
        received_from: str | None = None, origin_node: str | None = None,
        outbox: Iterable[tuple[str, str, dict[str, str]]] = (),
        inbox: Iterable[str] = (),
        events: Iterable[tuple[str, str | None, str | None]] = (),
    ) -> Acceptance:
        """Log one package and everything it causes, atomically (see :meth:`accept_many`)."""
        return self.accept_many([Accept(data, facts, node, received_from, origin_node,
                                        tuple(outbox), tuple(inbox), tuple(events))])[0]

    def accept_many(self, items: Sequence[Accept]) -> list[Acceptance]:
        """Log packages and everything they cause in one transaction; deduplicate repeats.

        The bytes go to the blob store first (idempotent, content-addressed, fsync'd); then
        one transaction inserts each new package's log row, its outbox rows (hand-overs
        owed), inbox rows (local recipients) and events. A package whose business key is
        already logged changes nothing and gets its original acceptance back.
        """
        digests = (self.blobs.put_many([item.data for item in items]) if len(items) > 1
                   else [self.blobs.put(items[0].data)] if items else [])
        keys = [business_key(i.facts.sender, i.facts.document_id, d)
                for i, d in zip(items, digests, strict=True)]
        results: list[Acceptance] = []
        with self.session() as session, session.begin():
            existing = dict(session.execute(
                select(PackageRow.business_key, PackageRow.received_at)
                .where(PackageRow.business_key.in_(set(keys)))).all())
            now = utcnow()
            packages: list[dict[str, Any]] = []
            outbox: list[dict[str, Any]] = []
            inbox: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for item, sha256, key in zip(items, digests, keys, strict=True):
                if key in existing:
                    results.append(Acceptance(sha256, key, _aware(existing[key]), True))
                    continue
                existing[key] = now
                facts = item.facts
                packages.append({
                    "sha256": sha256, "size": len(item.data), "kind": facts.kind,
                    "sender": facts.sender, "document_id": facts.document_id,
                    "business_key": key, "business_doc_type": facts.business_doc_type,
                    "status_code": facts.status_code, "origin_node": item.origin_node,
                    "received_from": item.received_from, "received_at": now})
                outbox += [{"package_sha256": sha256, "destination_node": destination,
                            "message_kind": kind, "payload_header": json.dumps(headers),
                            "state": "pending", "created_at": now}
                           for destination, kind, headers in item.outbox]
                inbox += [{"agency": agency, "package_sha256": sha256,
                           "document_id": facts.document_id, "kind": facts.kind,
                           "state": "new", "created_at": now} for agency in item.inbox]
                events += [{"package_sha256": sha256, "document_id": facts.document_id,
                            "node": item.node, "kind": kind, "agency": agency,
                            "detail": detail, "at": now} for kind, agency, detail in item.events]
                results.append(Acceptance(sha256, key, now, False))
            for table, rows in ((PackageRow, packages), (OutboxRow, outbox), (InboxRow, inbox),
                                (EventRow, events)):
                if rows:  # Core executemany (the ORM's bulk path costs more per row)
                    session.execute(insert(table.__table__), rows)
        return results

    def package_bytes(self, sha256: str) -> bytes:
        return self.blobs.get(sha256)

    def package(self, sha256: str) -> PackageRow | None:
        with self.session() as session:
            return session.scalar(select(PackageRow).where(PackageRow.sha256 == sha256))

    def add_events(self, events: Sequence[Event], *, document_ids: Sequence[str | None]) -> None:
        """Record several events in one transaction."""
        if not events:
            return
        with self.session() as session, session.begin():
            session.execute(insert(EventRow), [
                {"package_sha256": e.sha256 or "", "document_id": doc, "node": e.node,
                 "kind": e.kind, "agency": e.agency, "detail": e.detail, "at": e.at}
                for e, doc in zip(events, document_ids, strict=True)])

    def add_event(self, node: str, kind: str, *, sha256: str, document_id: str | None,
                  agency: str | None = None, detail: str | None = None,
                  at: dt.datetime | None = None) -> None:
        with self.session() as session, session.begin():
            session.add(EventRow(package_sha256=sha256, document_id=document_id, node=node,
                                 kind=kind, agency=agency, detail=detail, at=at or utcnow()))

    # -- outbox ------------------------------------------------------------------------
    def pending_outbox(self, limit: int = 100) -> list[OutboxItem]:
        with self.session() as session:
            rows = session.execute(
                select(OutboxRow.id, OutboxRow.package_sha256, OutboxRow.destination_node,
                       OutboxRow.message_kind, OutboxRow.payload_header, PackageRow.document_id)
                .join(PackageRow, PackageRow.sha256 == OutboxRow.package_sha256)
                .where(OutboxRow.state == "pending").order_by(OutboxRow.id).limit(limit)).all()
            return [OutboxItem(r[0], r[1], r[2], r[3], json.loads(r[4] or "{}"), r[5])
                    for r in rows]

    def mark_sent_many(self, items: Sequence[OutboxItem], *, node: str) -> None:
        """Mark hand-overs done and log them, in one transaction."""
        if not items:
            return
        now = utcnow()
        with self.session() as session, session.begin():
            session.execute(update(OutboxRow)
                            .where(OutboxRow.id.in_([i.id for i in items]),
                                   OutboxRow.state == "pending")
                            .values(state="sent", sent_at=now))
            session.execute(insert(EventRow), [
                {"package_sha256": i.sha256, "document_id": i.document_id, "node": node,
                 "kind": "handed_over", "agency": None,
                 "detail": f"to node {i.destination_node}", "at": now} for i in items])

    def mark_sent(self, outbox_id: int) -> None:
        with self.session() as session, session.begin():
            row = session.get(OutboxRow, outbox_id)
            if row is not None and row.state == "pending":
                row.state, row.sent_at = "sent", utcnow()

    # -- inbox -------------------------------------------------------------------------
    def inbox(self, agency: str, *, include_acknowledged: bool = False) -> list[InboxItem]:
        with self.session() as session:
            query = select(InboxRow).where(InboxRow.agency == agency)
            if not include_acknowledged:
                query = query.where(InboxRow.state == "new")
            rows = session.scalars(query.order_by(InboxRow.id)).all()
            return [InboxItem(r.id, r.agency, r.package_sha256, r.document_id, r.kind, r.state,
                              _aware(r.created_at)) for r in rows]

    def inbox_item(self, agency: str, item_id: int) -> InboxItem | None:
        with self.session() as session:
            row = session.get(InboxRow, item_id)
            if row is None or row.agency != agency:
                return None
            return InboxItem(row.id, row.agency, row.package_sha256, row.document_id, row.kind,
                             row.state, _aware(row.created_at))

    def acknowledge(self, agency: str, item_id: int, *, node: str) -> bool:
        """Mark an inbox item fetched-and-acknowledged by its agency (idempotent)."""
        with self.session() as session, session.begin():
            row = session.get(InboxRow, item_id)
            if row is None or row.agency != agency:
                return False
            if row.state != "acknowledged":
                row.state, row.acknowledged_at = "acknowledged", utcnow()
                session.add(EventRow(package_sha256=row.package_sha256,
                                     document_id=row.document_id, node=node,
                                     kind="acknowledged", agency=agency))
            return True

    # -- receipts ----------------------------------------------------------------------
    def record_status(self, document_id: str, recipient: str, status_code: str,
                      receipt_sha256: str, at: dt.datetime | None = None) -> bool:
        """Record a recipient's status about a document; False if already recorded."""
        try:
            with self.session() as session, session.begin():
                session.add(ReceiptRow(document_id=document_id, recipient=recipient,
                                       status_code=status_code, receipt_sha256=receipt_sha256,
                                       at=at or utcnow()))
        except IntegrityError:
            return False
        return True

    def trace(self, document_id: str) -> Trace:
        with self.session() as session:
            events = session.scalars(select(EventRow).where(EventRow.document_id == document_id)
                                     .order_by(EventRow.at, EventRow.id)).all()
            receipts = session.scalars(select(ReceiptRow)
                                       .where(ReceiptRow.document_id == document_id)
                                       .order_by(ReceiptRow.at, ReceiptRow.id)).all()
        trace = Trace(document_id, [Event(e.node, e.kind, _aware(e.at), e.agency, e.detail,
                                          e.package_sha256) for e in events])
        for receipt in receipts:
            trace.statuses[receipt.recipient] = (receipt.status_code, _aware(receipt.at))
        return trace

    def senders_of(self, document_id: str) -> list[str]:
        """Agencies that sent documents with this DocumentId through this node."""
        with self.session() as session:
            rows = session.scalars(select(PackageRow.sender).where(
                PackageRow.document_id == document_id, PackageRow.kind == "document")).all()
        return sorted({r for r in rows if r})

    # -- credentials -------------------------------------------------------------------
    def issue_credential(self, agency: str, label: str | None = None) -> str:
        """Create an API token for ``agency``; only its hash is stored. Returns the token."""
        token = "dx_" + secrets.token_urlsafe(32)
        with self.session() as session, session.begin():
            session.add(CredentialRow(agency=agency, token_hash=_hash_token(token), label=label))
        return token

    def agency_for_token(self, token: str) -> str | None:
        """The agency a token belongs to, or None (unknown or revoked)."""
        digest = _hash_token(token)
        with self.session() as session:
            row = session.scalar(select(CredentialRow).where(CredentialRow.token_hash == digest))
        if row is None or row.revoked_at is not None:
            return None
        return row.agency if hmac.compare_digest(row.token_hash, digest) else None

    def revoke_credentials(self, agency: str) -> int:
        with self.session() as session, session.begin():
            rows: Sequence[CredentialRow] = session.scalars(
                select(CredentialRow).where(CredentialRow.agency == agency,
                                            CredentialRow.revoked_at.is_(None))).all()
            for row in rows:
                row.revoked_at = utcnow()
            return len(rows)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
