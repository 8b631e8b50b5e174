"""A node's store: message log, events, outbox, inbox, receipts, credentials.

Repositories only: the relay decides *what* to record, the store makes each decision
durable in one transaction. SQLite (WAL) is the embedded default; PostgreSQL works by
changing the URL. The schema is managed by Alembic (:meth:`Store.migrate`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import itertools
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's busy handler alone keeps processes apart
    fcntl = None  # type: ignore[assignment]

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from docaxis.directory import Agency, Node, SignerRule
from docaxis.dsig import TimestampVerifier
from docaxis.edxml import DocumentPackage, ParseError, parse
from docaxis.identifiers import fold_text
from docaxis.store._binding import AgencyBinding
from docaxis.store._blobs import BlobError, BlobRef, BlobStore
from docaxis.store._chain import (
    AuditReport,
    Head,
    Stamp,
    audit_records,
    audit_stamps,
    link,
    manifest,
    moment,
)
from docaxis.store._claims import is_alive, process_token
from docaxis.store._documents import DocumentQuery, DocumentSummary, kind_of, outcomes
from docaxis.store._models import (
    BLOB_CHUNK,
    BlobChunkRow,
    CredentialRow,
    DirectoryAgencyRow,
    DirectoryNodeRow,
    EventRow,
    HopStatementPackageRow,
    HopStatementRow,
    InboxRow,
    LeaseRow,
    LogChainRow,
    OutboxRow,
    PackageRow,
    ReceiptRow,
    StampHeadRow,
    StampRow,
    utcnow,
)
from docaxis.store._rows import Rows, ended_by_the_server

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


_log = logging.getLogger("docaxis.store")

@dataclass(frozen=True)
class PackageFacts:
    """What the log keeps about a package besides its bytes."""

    kind: str
    sender: str | None
    document_id: str | None
    business_doc_type: int = 0
    status_code: str | None = None
    #: whose document the package is about (a document: its sender; a status: the sender
    #: of the document it answers); None means the package's own sender
    document_sender: str | None = None
    #: a document's recipients (To/OrganId)
    recipients: tuple[str, ...] = ()
    #: a document's number and notation (số/ký hiệu, ``12/VPCP-TTĐT``) and subject
    code: str | None = None
    subject: str | None = None

    @property
    def owner(self) -> str | None:
        """The sender of the document this package belongs to (its trace's key)."""
        return self.document_sender if self.document_sender is not None else self.sender


@dataclass(frozen=True)
class PackageFile:
    """A package's bytes in a file (a large upload, spooled while it arrived): the store
    takes the file itself, never reading it into memory."""

    path: str
    sha256: str
    size: int


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
    #: events in the trace of *other* documents this package acts on (a recall, update or
    #: replacement): ``(document_id, kind, agency, detail)``; they belong to the document
    #: of that DocumentId *from this package's sender* (another sender's is never touched)
    linked: tuple[tuple[str, str, str | None, str | None], ...] = ()
    #: a recipient's status this package brings home: ``(document_id, recipient, code)``
    status: tuple[str, str, str] | None = None
    #: the package's bytes are in this file, not in ``data`` (a large package)
    file: PackageFile | None = None
    #: when this node accepted it, if before its transaction (an API submission answered
    #: from the intake journal): its log row's ``received_at``; None: the transaction's time
    accepted_at: dt.datetime | None = None

    @property
    def sha256(self) -> str:
        return self.file.sha256 if self.file is not None else hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return self.file.size if self.file is not None else len(self.data)


@dataclass(frozen=True)
class Acceptance:
    """The answer to a sender: the same for a repeat of the same package."""

    sha256: str
    business_key: str
    accepted_at: dt.datetime
    duplicate: bool
    #: the hand-overs this first acceptance owes (outbox rows), for the caller to send now
    handovers: tuple[OutboxItem, ...] = ()


@dataclass(frozen=True)
class OutboxItem:
    """A hand-over owed to another node (a pending outbox row)."""

    id: int
    sha256: str
    destination_node: str
    message_kind: str
    headers: dict[str, str]
    document_id: str | None = None
    #: the process that owes it (:func:`process_token`), None for rows of before claims
    claimed_by: str | None = None
    created_at: dt.datetime | None = field(default=None, compare=False)
    document_sender: str | None = None


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


@dataclass(frozen=True)
class Credential:
    """An API credential as an operator sees it (its token is never kept)."""

    id: int
    agency: str
    label: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    binding: AgencyBinding = field(default_factory=AgencyBinding)


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


@dataclass(frozen=True)
class InboxCopy:
    """One recipient's copy of a package, as a document system sees it (VXP)."""

    id: int
    agency: str
    sha256: str
    document_id: str | None
    kind: str
    sender: str | None
    state: str
    client_status: str | None
    client_status_desc: str | None
    created_at: dt.datetime
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class SentPackage:
    """A package an agency posted here, with its recipients' fate as known here:
    ``events`` are (kind, agency) in order; ``statuses`` the latest edXML status code of
    each recipient that sent one, and when."""

    sha256: str
    document_id: str | None
    sender: str | None
    accepted_at: dt.datetime
    recipients: tuple[str, ...]
    events: tuple[tuple[str, str | None], ...]
    statuses: dict[str, tuple[str, dt.datetime]]


def _copy(row: InboxRow, sender: str | None) -> InboxCopy:
    return InboxCopy(row.id, row.agency, row.package_sha256, row.document_id, row.kind,
                     sender, row.state, row.client_status, row.client_status_desc,
                     _aware(row.created_at), _aware(row.updated_at) if row.updated_at else None)


def _as_event(row: EventRow) -> Event:
    return Event(row.node, row.kind, _aware(row.at), row.agency, row.detail, row.package_sha256)


def _search_columns(code: str | None, subject: str | None) -> dict[str, str | None]:
    """The columns a clerk's search reads (see migration 0008)."""
    code = (code or "")[:60]
    return {"code": code or None, "code_key": fold_text(code)[:60], "subject": subject}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


#: Failures of the store's infrastructure — the database unreachable or refusing
#: connections, the disk full or failing — as opposed to a bad package: a caller waits
#: and retries them, never parks or refuses a package for them.
#: ``blob_segment`` of a package whose bytes are in the database (``blob_chunks``)
IN_DATABASE = "@database"

#: the PostgreSQL advisory lock key that migrations take (any constant unique to docaxis)
MIGRATION_LOCK = 0x646F6361_78697300 >> 1  # "docaxis", positive in a bigint

#: seconds after which PostgreSQL ends a transaction its process left idle (frozen, hung,
#: its machine lost): its row locks would otherwise hold up another instance logging the
#: same package (redelivered to it) for as long as the process stays frozen. A node sets
#: its lease (``[node] lease``): by then the process's other work has passed on too. Our
#: own transactions never wait on anything between two statements.
STALLED_TRANSACTION_TIMEOUT: float = 10.0

UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout,
                                            OSError)


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

    def __init__(self, url: str, blobs: Path | str, *,
                 bytes_in_database: bool | None = None,
                 stalled_transaction_timeout: float = STALLED_TRANSACTION_TIMEOUT) -> None:
        self.url = url
        sqlite = url.startswith("sqlite")
        #: a SQLite database on this machine: a transaction costs this machine's CPU and
        #: disk, never a network round trip (a caller may run a small one on its event
        #: loop, see :meth:`hold_writer`)
        self.local = sqlite
        #: where new packages' bytes go: database rows (every instance of a node reads
        #: them; the default on PostgreSQL) or this machine's blob log (the default on
        #: SQLite, a one-machine node). Reads follow each package's own record.
        self.bytes_in_database = not sqlite if bytes_in_database is None else bytes_in_database
        # a server connection can go stale; a SQLite file cannot: no ping per checkout
        self.engine: Engine = create_engine(
            url, pool_pre_ping=not sqlite,
            connect_args=_server_settings(url, stalled_transaction_timeout))
        self._write_lock: _WriterLock | threading.Lock = (
            # PostgreSQL: one writer per process, so that a process's log chain never forks
            _WriterLock(self.engine.url.database) if sqlite else threading.Lock())
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine, "handle_error", _ended_transaction_is_an_outage)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: the message log's hot statements, rendered once for this database (_rows)
        self._rows = Rows(self.engine.dialect)
        self.blobs = BlobStore(blobs)
        #: this process, as the owner of the hand-overs it commits
        self.claimant = process_token()
        #: events chained by hash (tamper evidence); off only to measure its cost
        self.log_chain = True
        self._chain_heads: dict[str, str] = {}  # committed heads of this process's chain
        self._chain_open: dict[str, str] = {}  # heads written by the open transaction
        self._chain_for, self._chain_name = 0, ""
        #: the thread the writer lock is held for (:meth:`hold_writer`), if any
        self._writer_held_for: int | None = None

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision.

        Any number of processes may call this at once (instances of a node starting
        together on a fresh database, an upgrade rolled out to several hosts): they take
        turns under a database lock — a PostgreSQL advisory lock held for the migrating
        transaction, SQLite's writer lock — and the later ones find nothing to do.
        (Without it, two first starts both ran ``CREATE TABLE alembic_version``: one
        crashed on the unique violation.)
        """
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._write_lock, self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        filled = self.index_documents()  # rows logged before the search columns existed
        if filled:
            _log.info("store.indexed", extra={"code": "STORE-INDEXED", "packages": filled})

    def is_current(self) -> bool:
        """Whether the schema is at the newest Alembic revision (read-only commands check
        this instead of migrating)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        heads = set(ScriptDirectory.from_config(config).get_heads())
        with self.engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads()) == heads

    def ping(self) -> None:
        """Raise one of :data:`UNAVAILABLE` unless the database answers and the blob folder
        is writable (what a node waits for after an outage)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        probe = self.blobs.root / ".ping"
        probe.write_bytes(b"ok")
        probe.unlink()

    def close(self) -> None:
        held_for = self._writer_held_for  # (taken for a loop that stopped before using it)
        if held_for is not None:
            self.release_writer(held_for)
        self.engine.dispose()
        self.blobs.close()
        if isinstance(self._write_lock, _WriterLock):
            self._write_lock.close()

    def session(self) -> Session:
        return self._sessions()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a write transaction, committed on success.

        SQLite takes one writer at a time: writers queue on a :class:`_WriterLock` (threads
        of this process and other processes of the node) instead of meeting in SQLite's busy
        handler, whose back-off sleeps (up to 100 ms a try) kept a hop waiting long after
        the other writer's commit was done. On PostgreSQL a process's writers take turns
        (its log chain never forks); processes and instances do not wait for each other.

        The head of this process's log chain is remembered once a transaction that
        extended it has committed — set before the write lock is released, so the next
        writer links to it without reading it back.
        """
        with self._write_turn(), self.session() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def _writing(self, connection: Connection) -> Iterator[None]:
        """:meth:`transaction` on a Core connection the caller holds, no ORM session (what
        a session and a second connection cost to open and commit is most of a small
        batch's own cost)."""
        with self._write_turn(), connection.begin():
            yield

    def hold_writer(self, *, for_thread: int, wait: bool = True) -> bool:
        """Take the writer lock (of :meth:`transaction`) and hold it for thread
        ``for_thread``: that thread's transactions then run without taking it again, until
        :meth:`release_writer`. Any thread may take it for another — a worker thread
        waits for it (``wait``) so that an event loop's thread never does; without
        ``wait``, False at once when another writer holds it (a thread of this process,
        or another process on the same SQLite file).

        Examples
        --------
        >>> loop_thread = threading.get_ident()  # doctest: +SKIP
        >>> if not store.hold_writer(for_thread=loop_thread, wait=False):  # doctest: +SKIP
        ...     await asyncio.to_thread(store.hold_writer, for_thread=loop_thread)
        >>> try:  # doctest: +SKIP
        ...     store.accept_many(accepts)
        ... finally:
        ...     store.release_writer(loop_thread)
        """
        if not self._write_lock.acquire(blocking=wait):
            return False
        self._writer_held_for = for_thread
        return True

    def release_writer(self, for_thread: int) -> None:
        """Give up the writer lock held for ``for_thread`` (by :meth:`hold_writer`); nothing
        when it is not held for that thread."""
        if self._writer_held_for == for_thread:
            self._writer_held_for = None
            self._write_lock.release()

    @contextlib.contextmanager
    def _write_turn(self) -> Iterator[None]:
        """This writer's turn (the lock of :meth:`transaction`) around one transaction; the
        chain head it wrote is remembered once the transaction inside has committed."""
        with (contextlib.nullcontext() if self._writer_held_for == threading.get_ident()
              else self._write_lock):
            self._chain_open.clear()
            yield  # an exception here (the commit failed) leaves the head as it was
            self._chain_heads.update(self._chain_open)  # committed: the chain's new head
            self._chain_open.clear()

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

        The bytes are appended to the blob log first (one ``fdatasync`` for the batch);
        then one transaction inserts each new package's log row, its outbox rows (hand-overs
        owed, returned in :attr:`Acceptance.handovers`), inbox rows (local recipients) and
        events. A package whose business key is already logged — by an earlier batch, by
        another worker process at the same instant, or earlier in this batch — changes
        nothing and gets its original acceptance back.

        What a first acceptance causes elsewhere — an event in the trace of the document a
        recall acts on (:attr:`Accept.linked`), the status a receipt brings home
        (:attr:`Accept.status`) — is written in the same transaction, so a crash can never
        leave the package logged (and so deduplicated) without its consequences.
        """
        if not items:
            return []
        keys = [business_key(i.facts.sender, i.facts.document_id, i.sha256) for i in items]
        with self.engine.connect() as connection:  # one connection, read then write
            # what is logged already, and the new bytes, before the writer's turn: SQLite has
            # one writer at a time (for the whole node), so its turn holds only the inserts.
            # Another process may log one of these meanwhile: its INSERT below then does
            # nothing, and the bytes appended here stay unreferenced (harmless, see blobs).
            logged = self._accepted_at(connection, set(keys))
            fresh: dict[str, int] = {}  # business key -> index of its first occurrence
            for index, key in enumerate(keys):
                if key not in logged:
                    fresh.setdefault(key, index)
            if self.bytes_in_database:  # written below, in the same transaction as the rows
                refs = {key: BlobRef(key.rsplit("|", 1)[1], IN_DATABASE, 0,
                                     items[index].size) for key, index in fresh.items()}
            else:
                small = {key: index for key, index in fresh.items() if items[index].file is None}
                refs = dict(zip(small, self.blobs.put_many(
                    [items[i].data for i in small.values()],
                    [key.rsplit("|", 1)[1] for key in small]), strict=True))
                for key, index in fresh.items():  # a large package: its spool file, moved
                    package_file = items[index].file
                    if package_file is not None:
                        refs[key] = self.blobs.put_file(package_file.path, package_file.sha256,
                                                        package_file.size)
            # rows rendered once, run on the DB-API connection (see _rows): SQLAlchemy's
            # execution path costs more per statement than the statement itself here
            with self._writing(connection):
                now = utcnow()
                inserted = {key for key, in self._rows.insert(
                    connection, _table(PackageRow),
                    [self._package_row(items[index].facts, items[index], key, refs[key],
                                       items[index].accepted_at or now)
                     for key, index in fresh.items()],
                    skip_conflicts=True, returning=("business_key",))}
                outbox: list[dict[str, Any]] = []
                inbox: list[dict[str, Any]] = []
                events: list[dict[str, Any]] = []
                statuses: list[dict[str, Any]] = []
                for key in (k for k in fresh if k in inserted):  # in the order received
                    item, sha256 = items[fresh[key]], refs[key].sha256
                    facts = item.facts
                    outbox += [{"package_sha256": sha256, "destination_node": destination,
                                "message_kind": kind, "payload_header": json.dumps(headers),
                                "state": "pending", "created_at": now,
                                "claimed_by": self.claimant}
                               for destination, kind, headers in item.outbox]
                    inbox += [{"agency": agency, "package_sha256": sha256,
                               "document_id": facts.document_id, "kind": facts.kind,
                               "state": "new", "created_at": now} for agency in item.inbox]
                    events += [{"package_sha256": sha256, "document_id": facts.document_id,
                                "document_sender": facts.owner, "node": item.node, "kind": kind,
                                "agency": agency, "detail": detail, "at": now}
                               for kind, agency, detail in item.events]
                    events += [{"package_sha256": sha256, "document_id": document_id,
                                "document_sender": facts.sender, "node": item.node, "kind": kind,
                                "agency": agency, "detail": detail, "at": now}
                               for document_id, kind, agency, detail in item.linked]
                    if item.status is not None:
                        document_id, recipient, code = item.status
                        statuses.append({"document_id": document_id, "recipient": recipient,
                                         "document_sender": facts.owner, "status_code": code,
                                         "receipt_sha256": sha256, "at": now})
                handovers: dict[str, list[OutboxItem]] = {}
                if outbox:
                    # ids matched back by (package, destination): asking for them in parameter
                    # order would make SQLAlchemy insert the rows one by one
                    ids: dict[tuple[str, str], list[int]] = {}
                    for row_id, sha256, node in sorted(self._rows.insert(
                            connection, _table(OutboxRow), outbox,
                            returning=("id", "package_sha256", "destination_node")), reverse=True):
                        ids.setdefault((sha256, node), []).append(row_id)
                    documents = {refs[k].sha256: items[fresh[k]].facts for k in inserted}
                    for row in outbox:
                        sha256 = row["package_sha256"]
                        row_id = ids[sha256, row["destination_node"]].pop()  # lowest id first
                        facts = documents[sha256]
                        handovers.setdefault(sha256, []).append(OutboxItem(
                            row_id, sha256, row["destination_node"], row["message_kind"],
                            json.loads(row["payload_header"]), facts.document_id, self.claimant,
                            now, facts.owner))
                if self.bytes_in_database and inserted:
                    chunks = [{"sha256": refs[key].sha256, "seq": seq,
                               "data": items[fresh[key]].data[start:start + BLOB_CHUNK]}
                              for key in fresh if key in inserted and items[fresh[key]].file is None
                              for seq, start in enumerate(range(
                                  0, max(len(items[fresh[key]].data), 1), BLOB_CHUNK))]
                    self._rows.insert(connection, _table(BlobChunkRow), chunks,
                                      skip_conflicts=True)
                    for key in fresh:  # a large package: one chunk at a time from its file
                        package_file = items[fresh[key]].file
                        if key in inserted and package_file is not None:
                            self._chunks_from_file(connection, package_file)
                self._rows.insert(connection, _table(InboxRow), inbox)
                self._append_events(connection, events)
                self._rows.insert(connection, _table(ReceiptRow), statuses, skip_conflicts=True)
                if len(inserted) < len(fresh):  # another worker logged some first
                    logged.update(self._accepted_at(connection, set(fresh) - inserted))
        results: list[Acceptance] = []
        for index, key in enumerate(keys):
            sha256 = key.rsplit("|", 1)[1]
            if key in inserted and fresh[key] == index:
                results.append(Acceptance(sha256, key, items[index].accepted_at or now, False,
                                          tuple(handovers.get(sha256, ()))))
            else:
                at = logged.get(key, now)
                results.append(Acceptance(sha256, key, at, True))
        return results

    def _chunks_from_file(self, connection: Any, package_file: PackageFile) -> None:
        """A large package's bytes into the database, one chunk in memory at a time."""
        insert_chunk = self._insert(BlobChunkRow).on_conflict_do_nothing()
        with open(package_file.path, "rb") as source:
            for seq in itertools.count():
                block = source.read(BLOB_CHUNK)
                if not block and seq:  # (an empty package keeps one empty chunk)
                    break
                connection.execute(insert_chunk, [{"sha256": package_file.sha256, "seq": seq,
                                                   "data": block}])
                if len(block) < BLOB_CHUNK:
                    break

    def _insert(self, model: type[Any]) -> Any:
        """An INSERT that can say ON CONFLICT DO NOTHING on this database."""
        from sqlalchemy.dialects import postgresql, sqlite

        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(_table(model))
        return sqlite.insert(_table(model))

    def logged_acceptances(self, keys: Iterable[str]) -> dict[str, dt.datetime]:
        """When each of these business keys was accepted, for those logged here (what a
        repeat is answered with)."""
        with self.engine.connect() as connection:
            return self._accepted_at(connection, set(keys))

    def _accepted_at(self, connection: Connection, keys: set[str]) -> dict[str, dt.datetime]:
        if not keys:
            return {}
        return {key: _aware(at) for key, at in self._rows.select_in(
            connection, _table(PackageRow), ("business_key", "received_at"), "business_key",
            list(keys))}

    @staticmethod
    def _package_row(facts: PackageFacts, item: Accept, key: str, ref: BlobRef,
                     now: dt.datetime) -> dict[str, Any]:
        return {"sha256": ref.sha256, "size": ref.size, "kind": facts.kind,
                "sender": facts.sender, "document_id": facts.document_id,
                "business_key": key, "business_doc_type": facts.business_doc_type,
                "status_code": facts.status_code, "origin_node": item.origin_node,
                "document_sender": facts.owner,
                "recipients": ",".join(facts.recipients) if facts.recipients else None,
                "received_from": item.received_from, "received_at": now,
                "blob_segment": ref.segment, "blob_offset": ref.offset,
                **_search_columns(facts.code, facts.subject)}

    def package_bytes(self, sha256: str) -> bytes:
        """The exact bytes of a logged package.

        Raises
        ------
        KeyError
            If no package with this SHA-256 is logged here.
        BlobError
            If its bytes are missing or corrupt on disk.
        """
        row = self._blob_row(sha256)
        if row[0] == IN_DATABASE:
            return self._bytes_from_database(sha256, row[2])
        return self.blobs.get(BlobRef(sha256, row[0], row[1] or 0, row[2]))

    def package_chunks(self, sha256: str, start: int = 0, end: int | None = None, *,
                       block: int = 1 << 20) -> tuple[int, Iterator[bytes]]:
        """A package's size and its bytes ``start:end`` in chunks (of ``block`` bytes
        where the bytes are in a file), read while they are sent (a large package is
        never whole in memory); read whole, its SHA-256 is checked at the end
        (:class:`BlobError`).

        Raises
        ------
        KeyError
            No such package.
        """
        row = self._blob_row(sha256)
        size = int(row[2])
        if row[0] == IN_DATABASE:
            return size, self._chunks_from_database(sha256, size, start,
                                                    size if end is None else min(end, size))
        return size, self.blobs.chunks(BlobRef(sha256, row[0], row[1] or 0, size), start, end,
                                       block=block)

    def _blob_row(self, sha256: str) -> Any:
        """Where a package's bytes are: (segment, offset, size).

        Raises
        ------
        KeyError
            No such package.
        """
        with self.session() as session:
            row = session.execute(select(PackageRow.blob_segment, PackageRow.blob_offset,
                                         PackageRow.size)
                                  .where(PackageRow.sha256 == sha256)).first()
        if row is None:
            raise KeyError(sha256)
        return row

    def _chunks_from_database(self, sha256: str, size: int, start: int,
                              end: int) -> Iterator[bytes]:
        chunks = _table(BlobChunkRow).c
        whole = start == 0 and end == size
        digest = hashlib.sha256() if whole else None
        first = start // BLOB_CHUNK
        for seq in range(first, max(first, (end - 1) // BLOB_CHUNK + 1)):
            with self.engine.connect() as connection:
                block = connection.scalar(select(chunks.data).where(
                    chunks.sha256 == sha256, chunks.seq == seq))
            if block is None:
                raise BlobError(f"the bytes kept in the database for {sha256} are missing "
                                f"(chunk {seq})")
            offset = seq * BLOB_CHUNK
            if digest is not None:
                digest.update(block)
            yield bytes(block[max(0, start - offset):end - offset])
        if digest is not None and digest.hexdigest() != sha256:
            raise BlobError(f"the bytes kept in the database for {sha256} are corrupt "
                            "(SHA-256 checked)")

    def _bytes_from_database(self, sha256: str, size: int) -> bytes:
        chunks = _table(BlobChunkRow).c
        with self.engine.connect() as connection:
            data = b"".join(connection.scalars(
                select(chunks.data).where(chunks.sha256 == sha256).order_by(chunks.seq)))
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise BlobError(f"the bytes kept in the database for {sha256} are "
                            f"{'missing' if not data else 'corrupt'} ({len(data)} of {size} "
                            "bytes, SHA-256 checked)")
        return data

    def has_package(self, sha256: str) -> bool:
        """Whether a package with these bytes is logged here."""
        with self.engine.connect() as connection:
            return connection.scalar(select(PackageRow.sha256).where(
                PackageRow.sha256 == sha256).limit(1)) is not None

    def package(self, sha256: str) -> PackageRow | None:
        with self.session() as session:
            return session.scalar(select(PackageRow).where(PackageRow.sha256 == sha256))

    def add_events(self, events: Sequence[Event], *,
                   documents: Sequence[tuple[str | None, str | None]]) -> None:
        """Record several events in one transaction; ``documents`` gives, for each, the
        (DocumentId, sender) of the document whose trace it belongs to."""
        if not events:
            return
        with self.transaction() as session:
            self._append_events(session.connection(), [
                {"package_sha256": e.sha256 or "", "document_id": doc, "document_sender": owner,
                 "node": e.node, "kind": e.kind, "agency": e.agency, "detail": e.detail,
                 "at": e.at}
                for e, (doc, owner) in zip(events, documents, strict=True)])

    def _append_events(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert events chained by hash after this process's last one (the caller holds
        the write lock, inside its transaction: the chain cannot fork)."""
        if not rows:
            return
        if not self.log_chain:  # unchained: what `audit verify` reports as such
            self._rows.insert(connection, _table(EventRow), rows)
            return
        chain = self._chain_id()
        head = self._chain_open.get(chain) or self._chain_heads.get(chain)
        if head is None:  # not known in this process yet: read it back
            events = _table(EventRow).c
            head = connection.scalar(select(events.record_hash).where(events.chain == chain)
                                     .order_by(events.id.desc()).limit(1))
        if head is None:  # a new chain: linked to the newest record of any chain
            head = connection.scalar(select(events.record_hash)
                                     .where(events.record_hash.is_not(None))
                                     .order_by(events.id.desc()).limit(1)) or ""
            connection.execute(self._insert(LogChainRow).on_conflict_do_nothing(),
                               [{"chain": chain, "started_at": utcnow()}])
        for row in rows:
            row["at"] = row.get("at") or utcnow()
        new_head = link(rows, chain, head)
        self._rows.insert(connection, _table(EventRow), rows)
        self._chain_open[chain] = new_head

    def _chain_id(self) -> str:
        """This store object's chain in this process: the claimant token and a nonce (two
        stores open on one database in one process write two chains, never one forked);
        a forked child gets its own."""
        pid = os.getpid()
        if self._chain_for != pid:
            token = f"{process_token()}/{secrets.token_hex(4)}"
            self._chain_name = (token if len(token) <= 100
                                else hashlib.sha256(token.encode()).hexdigest())
            self._chain_for = pid
        return self._chain_name

    def audit(self, *, check_packages: bool = True, batch: int = 5000,
              stamps: TimestampVerifier | None = None) -> AuditReport:
        """Check the log: every record's hash and link (:mod:`docaxis.store._chain`), every
        timestamp of the chain heads (its token against ``stamps``, the TSA anchors; without
        them the stamps are counted unchecked) and, with ``check_packages``, every logged
        package's bytes against its SHA-256. Records after their chain's last stamp are
        reported as unstamped."""
        report = AuditReport()
        self._audit_stamps(report, stamps)

        def records() -> Iterator[EventRow]:
            after = 0
            while True:
                with self.session() as session:
                    page = session.scalars(select(EventRow).where(EventRow.id > after)
                                           .order_by(EventRow.id).limit(batch)).all()
                if not page:
                    return
                after = page[-1].id
                yield from page  # a naive time (SQLite) is UTC: the chain reads it so

        audit_records(records(), report)
        if check_packages:
            after = 0
            while True:
                with self.session() as session:
                    shas = session.execute(select(PackageRow.id, PackageRow.sha256)
                                           .where(PackageRow.id > after)
                                           .order_by(PackageRow.id).limit(batch)).all()
                if not shas:
                    break
                after = shas[-1][0]
                for _, sha256 in shas:
                    report.packages += 1
                    try:  # every read checks the bytes against their SHA-256
                        self.package_bytes(sha256)
                    except (KeyError, BlobError) as exc:
                        report.breaks.append((None, sha256, "AUDIT-PACKAGE",
                                              f"package {sha256}: {exc}"))
        return report

    def _audit_stamps(self, report: AuditReport, verifier: TimestampVerifier | None) -> None:
        heads_table, events = _table(StampHeadRow).c, _table(EventRow).c
        with self.session() as session:
            rows = session.scalars(select(StampRow).order_by(StampRow.id)).all()
            heads: dict[int, list[Head]] = {}
            for stamp_id, chain, record_id, record_hash in session.execute(
                    select(heads_table.stamp_id, heads_table.chain, heads_table.record_id,
                           heads_table.record_hash)):
                heads.setdefault(stamp_id, []).append((chain, record_id, record_hash))
            wanted = sorted({h[1] for group in heads.values() for h in group})
            stored: dict[int, tuple[str | None, str | None]] = {}
            for start in range(0, len(wanted), 500):
                stored.update({row_id: (chain, record_hash) for row_id, chain, record_hash
                               in session.execute(select(events.id, events.chain,
                                                         events.record_hash)
                                                  .where(events.id.in_(
                                                      wanted[start:start + 500])))})
        audit_stamps((Stamp(r.id, _aware(r.stamped_at), r.tsa, r.imprint, r.response,
                            tuple(heads.get(r.id, ()))) for r in rows),
                     stored, verifier, report)
        report.unstamped, report.oldest_unstamped = self.unstamped()

    # -- timestamps of the log ---------------------------------------------------------
    def _chain_coverage(self, session: Session) -> list[tuple[str, int]]:
        """Each chain and the id of its last stamped record (0: never stamped)."""
        heads = _table(StampHeadRow).c
        covered = dict(session.execute(select(heads.chain, func.max(heads.record_id))
                                       .group_by(heads.chain)).all())
        chains = session.scalars(select(LogChainRow.chain)
                                 .where(LogChainRow.closed.is_(False))).all()
        return [(chain, covered.get(chain, 0)) for chain in chains]

    def unstamped_heads(self) -> list[Head]:
        """The head (last record) of every chain that grew since its last stamp: what the
        next stamp covers. One index lookup per chain, however long the log."""
        events = _table(EventRow).c
        found: list[Head] = []
        with self.session() as session:
            for chain, done in self._chain_coverage(session):
                row = session.execute(select(events.id, events.record_hash)
                                      .where(events.chain == chain, events.id > done)
                                      .order_by(events.id.desc()).limit(1)).first()
                if row is not None and row[1] is not None:
                    found.append((chain, row[0], row[1]))
        return found

    def unstamped(self) -> tuple[int, dt.datetime | None]:
        """How many chained records wait for a stamp, and the oldest one's time."""
        events = _table(EventRow).c
        count, oldest = 0, None
        with self.session() as session:
            for chain, done in self._chain_coverage(session):
                number, first = session.execute(
                    select(func.count(), func.min(events.at))
                    .where(events.chain == chain, events.id > done)).one()
                count += number
                if first is not None and (oldest is None or _aware(first) < oldest):
                    oldest = _aware(first)
        return count, oldest

    def add_stamp(self, heads: Sequence[Head], response: bytes, stamped_at: dt.datetime,
                  tsa: str) -> int:
        """Keep a TSA's response over :func:`~docaxis.store._chain.manifest` of ``heads``."""
        imprint = hashlib.sha256(manifest(heads)).hexdigest()
        with self.transaction() as session:
            stamp = StampRow(stamped_at=stamped_at, tsa=tsa[:500], imprint=imprint,
                             response=response)
            session.add(stamp)
            session.flush()
            session.add_all(StampHeadRow(stamp_id=stamp.id, chain=chain, record_id=record_id,
                                         record_hash=record_hash)
                            for chain, record_id, record_hash in heads)
            # a chain whose writer is gone writes no more: stamped now, it is done (the
            # stamper and the metrics then look at live chains only, however many
            # processes the node has had)
            finished = [chain for chain, _id, _hash in heads
                        if is_alive(chain.split("/", 1)[0]) is False]
            if finished:
                session.execute(update(LogChainRow).where(LogChainRow.chain.in_(finished))
                                .values(closed=True))
            return stamp.id

    def last_stamp_at(self) -> dt.datetime | None:
        """When the newest stamp was made (its token's time)."""
        with self.session() as session:
            at = session.scalar(select(func.max(StampRow.stamped_at)))
        return _aware(at) if at is not None else None

    # -- evidence of one document ------------------------------------------------------
    def evidence_records(self, sha256: str, document_id: str | None,
                         sender: str | None) -> list[dict[str, Any]]:
        """Every log record about a package or its document's trace, as stored (chain
        fields included), in id order."""
        events = _table(EventRow).c
        about = events.package_sha256 == sha256
        if document_id is not None:
            about = or_(about, and_(events.document_id == document_id,
                                    events.document_sender == sender))
        with self.engine.connect() as connection:
            rows = connection.execute(select(_table(EventRow)).where(about)
                                      .order_by(events.id)).mappings().all()
        return [_record_dict(row) for row in rows]

    def chain_segment(self, chain: str, first: int, last: int,
                      limit: int) -> list[dict[str, Any]] | None:
        """The records of ``chain`` with ids from ``first`` to ``last`` (None when more
        than ``limit``)."""
        events = _table(EventRow).c
        where = (events.chain == chain, events.id >= first, events.id <= last)
        with self.engine.connect() as connection:
            if (connection.scalar(select(func.count()).where(*where)) or 0) > limit:
                return None
            rows = connection.execute(select(_table(EventRow)).where(*where)
                                      .order_by(events.id)).mappings().all()
        return [_record_dict(row) for row in rows]

    def covering_stamp(self, chain: str, record_id: int) -> Stamp | None:
        """The first stamp whose head in ``chain`` is at or after ``record_id`` (it covers
        the record), or None while the record waits for one."""
        heads = _table(StampHeadRow).c
        with self.session() as session:
            stamp_id = session.scalar(select(heads.stamp_id).where(
                heads.chain == chain, heads.record_id >= record_id)
                .order_by(heads.record_id).limit(1))
            if stamp_id is None:
                return None
            row = session.get(StampRow, stamp_id)
            assert row is not None
            covered = session.execute(select(heads.chain, heads.record_id, heads.record_hash)
                                      .where(heads.stamp_id == stamp_id)).all()
            return Stamp(row.id, _aware(row.stamped_at), row.tsa, row.imprint, row.response,
                         tuple(covered))

    def add_hop_statements(self, statements: Sequence[tuple[str, str, Sequence[str]]]) -> None:
        """Keep verified statements of later nodes: (node, the statement's JSON, the
        packages logged here that it speaks of)."""
        if not statements:
            return
        with self.transaction() as session:
            for node, statement, packages in statements:
                row = HopStatementRow(node=node, statement=statement, received_at=utcnow())
                session.add(row)
                session.flush()
                session.add_all(HopStatementPackageRow(statement_id=row.id, package_sha256=sha)
                                for sha in sorted(set(packages)))

    def hop_statements_for(self, sha256: str) -> list[tuple[str, str]]:
        """The kept statements (node, JSON) that speak of a package, oldest first."""
        with self.session() as session:
            return [(node, statement) for node, statement in session.execute(
                select(HopStatementRow.node, HopStatementRow.statement)
                .join(HopStatementPackageRow,
                      HopStatementPackageRow.statement_id == HopStatementRow.id)
                .where(HopStatementPackageRow.package_sha256 == sha256)
                .order_by(HopStatementRow.id))]

    def statuses_for(self, document_id: str, sender: str) -> list[str]:
        """The SHA-256 of every status package logged here that answers the document."""
        with self.session() as session:
            return list(session.scalars(select(PackageRow.sha256).where(
                PackageRow.kind == "status", PackageRow.document_id == document_id,
                PackageRow.document_sender == sender).order_by(PackageRow.id)))

    def documents_with_id(self, document_id: str) -> list[tuple[str | None, tuple[str, ...]]]:
        """The (sender, recipients) of each document logged here with this DocumentId."""
        with self.session() as session:
            rows = session.execute(select(PackageRow.sender, PackageRow.recipients).where(
                PackageRow.document_id == document_id, PackageRow.kind == "document")).all()
        return [(sender, tuple(filter(None, (recipients or "").split(","))))
                for sender, recipients in rows]

    def has_received(self, agency: str, sender: str, document_id: str) -> bool:
        """Whether ``agency``'s inbox here holds the document (sender, DocumentId)."""
        with self.session() as session:
            found = session.execute(
                select(InboxRow.id).join(PackageRow,
                                         PackageRow.sha256 == InboxRow.package_sha256)
                .where(InboxRow.agency == agency, InboxRow.document_id == document_id,
                       InboxRow.kind == "document", PackageRow.sender == sender)
                .limit(1)).first()
        return found is not None

    # -- outbox ------------------------------------------------------------------------
    def pending_outbox(self, limit: int = 100, *, older_than: float = 0.0,
                       after_id: int = 0) -> list[OutboxItem]:
        """Hand-overs not yet marked sent, oldest first (created more than ``older_than``
        seconds ago; ids above ``after_id``, to page through them)."""
        query = (select(OutboxRow.id, OutboxRow.package_sha256, OutboxRow.destination_node,
                        OutboxRow.message_kind, OutboxRow.payload_header, PackageRow.document_id,
                        OutboxRow.claimed_by, OutboxRow.created_at, PackageRow.document_sender)
                 .join(PackageRow, PackageRow.sha256 == OutboxRow.package_sha256)
                 .where(OutboxRow.state == "pending", OutboxRow.id > after_id))
        if older_than > 0:
            query = query.where(OutboxRow.created_at
                                < utcnow() - dt.timedelta(seconds=older_than))
        with self.session() as session:
            rows = session.execute(query.order_by(OutboxRow.id).limit(limit)).all()
            return [OutboxItem(r[0], r[1], r[2], r[3], json.loads(r[4] or "{}"), r[5], r[6],
                               _aware(r[7]) if r[7] else None, r[8]) for r in rows]

    def outbox_backlog(self) -> tuple[int, dt.datetime | None]:
        """How many hand-overs are owed, and when the oldest was committed."""
        with self.session() as session:
            count, oldest = session.execute(
                select(func.count(OutboxRow.id), func.min(OutboxRow.created_at))
                .where(OutboxRow.state == "pending")).one()
        return int(count), _aware(oldest) if oldest is not None else None

    def renew_lease(self, node: str) -> None:
        """Renew this process's lease on what it owes (the database's clock)."""
        now = self._database_now()
        with self.transaction() as session:
            session.execute(self._insert(LeaseRow).values(
                claimant=self.claimant, node=node, renewed_at=now)
                .on_conflict_do_update(index_elements=["claimant"],
                                       set_={"renewed_at": now}))

    def release_lease(self) -> None:
        """Give this process's lease up (a clean stop): its rows pass on at once."""
        with self.transaction() as session:
            session.execute(delete(LeaseRow).where(LeaseRow.claimant == self.claimant))

    def lease_ages(self) -> dict[str, float]:
        """Seconds since each process's lease was renewed, by the database's clock."""
        now = self._database_now()
        with self.session() as session:
            rows = session.execute(select(LeaseRow.claimant, LeaseRow.renewed_at)).all()
        return {claimant: (now - _aware(at)).total_seconds() for claimant, at in rows}

    def _database_now(self) -> dt.datetime:
        """The time by the database's clock (PostgreSQL: one clock for every host;
        SQLite lives on one machine, whose clock it is)."""
        if self.engine.dialect.name != "postgresql":
            return utcnow()
        with self.engine.connect() as connection:
            now = connection.scalar(select(func.now()))
        assert isinstance(now, dt.datetime)
        return _aware(now)

    def claim_outbox(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """Take pending hand-overs over for this process; returns those it won.

        A row is taken only if it is still pending and still owed by the owner ``items``
        say, so that of two processes sweeping at once, each row goes to one of them.
        """
        owners: dict[str | None, list[OutboxItem]] = {}
        for item in items:
            owners.setdefault(item.claimed_by, []).append(item)
        won: set[int] = set()
        with self.transaction() as session:
            for owner, owed in owners.items():
                owned = (OutboxRow.claimed_by.is_(None) if owner is None
                         else OutboxRow.claimed_by == owner)
                won.update(session.scalars(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_([i.id for i in owed]),
                           OutboxRow.state == "pending", owned)
                    .values(claimed_by=self.claimant)
                    .returning(OutboxRow.id)).all())
        return [dataclasses.replace(item, claimed_by=self.claimant)
                for item in items if item.id in won]

    def mark_sent_many(self, items: Sequence[OutboxItem], *, node: str) -> None:
        """Mark hand-overs done and log them, in one transaction."""
        if not items:
            return
        now = utcnow()
        with self.engine.connect() as connection, self._writing(connection):
            self._rows.update_in(connection, _table(OutboxRow), {"state": "sent", "sent_at": now},
                                 "id", [i.id for i in items], where={"state": "pending"})
            self._append_events(connection, [
                {"package_sha256": i.sha256, "document_id": i.document_id,
                 "document_sender": i.document_sender, "node": node,
                 "kind": "handed_over", "agency": None,
                 "detail": f"to node {i.destination_node}", "at": now} for i in items])

    def mark_sent(self, outbox_id: int) -> None:
        with self.transaction() as session:
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
        with self.transaction() as session:
            row = session.get(InboxRow, item_id)
            if row is None or row.agency != agency:
                return False
            if row.state != "acknowledged":
                row.state, row.acknowledged_at = "acknowledged", utcnow()
                owner = session.scalar(select(PackageRow.document_sender)
                                       .where(PackageRow.sha256 == row.package_sha256))
                self._append_events(session.connection(), [{
                    "package_sha256": row.package_sha256, "document_id": row.document_id,
                    "document_sender": owner, "node": node, "kind": "acknowledged",
                    "agency": agency, "detail": None, "at": row.acknowledged_at}])
            return True

    # -- document systems' views (VXP) ------------------------------------------------
    def inbox_copies(self, agencies: Iterable[str], kinds: Iterable[str]) -> list[InboxCopy]:
        """The copies waiting for these agencies (not yet acknowledged), oldest first."""
        with self.session() as session:
            rows = session.execute(
                select(InboxRow, PackageRow.sender)
                .join(PackageRow, PackageRow.sha256 == InboxRow.package_sha256)
                .where(InboxRow.agency.in_(list(agencies)), InboxRow.kind.in_(list(kinds)),
                       InboxRow.state == "new").order_by(InboxRow.id)).all()
            return [_copy(row, sender) for row, sender in rows]

    def inbox_copy(self, agency: str, sha256_prefix: str) -> InboxCopy | None:
        """Agency ``agency``'s copy of the package whose SHA-256 starts with the prefix
        (lower-case hex, checked by the caller), acknowledged or not."""
        with self.session() as session:
            found = session.execute(
                select(InboxRow, PackageRow.sender)
                .join(PackageRow, PackageRow.sha256 == InboxRow.package_sha256)
                .where(InboxRow.agency == agency,
                       InboxRow.package_sha256.startswith(sha256_prefix, autoescape=True))
                .order_by(InboxRow.id).limit(1)).first()
            return _copy(*found) if found is not None else None

    def set_client_status(self, agency: str, item_id: int, status: str,
                          description: str | None, *, node: str) -> bool:
        """The document system's word on a copy (VXP ``updateStatus``). ``done`` is the
        acknowledgement (the REST API's ``ack``: one state for both); ``fail`` and
        ``processing`` keep the copy listed, and each new word is an event in the trace.
        Idempotent: a repeated word changes nothing. False if there is no such copy."""
        with self.transaction() as session:
            row = session.get(InboxRow, item_id)
            if row is None or row.agency != agency:
                return False
            if row.client_status == status and row.client_status_desc == description:
                return True
            owner = session.scalar(select(PackageRow.document_sender)
                                   .where(PackageRow.sha256 == row.package_sha256))
            now = utcnow()
            row.client_status, row.client_status_desc, row.updated_at = status, description, now
            event = {"package_sha256": row.package_sha256, "document_id": row.document_id,
                     "document_sender": owner, "node": node, "agency": agency, "at": now}
            if status == "done" and row.state != "acknowledged":
                row.state, row.acknowledged_at = "acknowledged", now
                self._append_events(session.connection(), [
                    {**event, "kind": "acknowledged", "detail": None}])
            elif status != "done":
                self._append_events(session.connection(), [
                    {**event, "kind": f"system-{status}", "detail": description}])
            return True

    def sent_packages(self, senders: Iterable[str], kind: str) -> list[SentPackage]:
        """Packages these agencies posted at this node (not relayed from elsewhere), with
        what this node knows of each recipient: delivered (an event of the recipient's
        node, brought by its hop receipt), refused, and the latest edXML status."""
        with self.session() as session:
            packages = session.scalars(
                select(PackageRow).where(PackageRow.sender.in_(list(senders)),
                                         PackageRow.kind == kind,
                                         PackageRow.received_from.is_(None))
                .order_by(PackageRow.id)).all()
            if not packages:
                return []
            shas = [p.sha256 for p in packages]
            events: dict[str, list[tuple[str, str | None]]] = {}
            for sha256, event_kind, agency in session.execute(
                    select(EventRow.package_sha256, EventRow.kind, EventRow.agency)
                    .where(EventRow.package_sha256.in_(shas)).order_by(EventRow.id)):
                events.setdefault(sha256, []).append((event_kind, agency))
            statuses: dict[tuple[str | None, str | None, str], tuple[str, dt.datetime]] = {}
            for document_id, sender, recipient, code, at in session.execute(
                    select(ReceiptRow.document_id, ReceiptRow.document_sender,
                           ReceiptRow.recipient, ReceiptRow.status_code, ReceiptRow.at)
                    .where(ReceiptRow.document_id.in_([p.document_id for p in packages
                                                       if p.document_id]))
                    .order_by(ReceiptRow.at, ReceiptRow.id)):
                statuses[document_id, sender, recipient] = (code, _aware(at))
            return [SentPackage(
                p.sha256, p.document_id, p.sender, _aware(p.received_at),
                tuple((p.recipients or "").split(",")) if p.recipients else (),
                tuple(events.get(p.sha256, ())),
                {r: statuses[p.document_id, p.sender, r]
                 for (d, s, r) in statuses if d == p.document_id and s == p.sender})
                for p in packages]

    # -- a clerk's search ----------------------------------------------------------------
    def documents(self, query: DocumentQuery, *,
                  now: dt.datetime | None = None) -> list[DocumentSummary]:
        """The packages logged here that ``query`` selects, newest first, each with every
        recipient's outcome (:mod:`docaxis.store._documents`). Filters on the log row run
        in the database; the state and overdue filters on the outcomes, page by page."""
        now = now or dt.datetime.now(dt.UTC)
        statement = select(PackageRow).where(PackageRow.kind.in_(("document", "status")))
        if query.number is not None:
            folded = fold_text(query.number)
            statement = statement.where(
                PackageRow.code_key == folded if "/" in folded
                else PackageRow.code_key.startswith(f"{folded}/", autoescape=True))
        if query.senders:
            statement = statement.where(PackageRow.sender.in_(query.senders))
        if query.recipient is not None:
            statement = statement.where(
                PackageRow.recipients.contains(query.recipient, autoescape=True)
                | (PackageRow.document_sender == query.recipient))
        if query.since is not None:
            statement = statement.where(PackageRow.received_at >= query.since)
        if query.until is not None:
            statement = statement.where(PackageRow.received_at < query.until)
        if query.kind == "status":
            statement = statement.where(PackageRow.kind == "status")
        elif query.kind is not None:
            statement = statement.where(PackageRow.kind == "document",
                                        PackageRow.business_doc_type == query.business_doc_type)
        statement = statement.order_by(PackageRow.received_at.desc(), PackageRow.id.desc())
        found: list[DocumentSummary] = []
        page, offset = 500, 0
        while len(found) < query.limit:
            with self.session() as session:
                rows = session.scalars(statement.offset(offset).limit(page)).all()
            if not rows:
                break
            offset += len(rows)
            for summary in self._summaries(rows):
                if query.recipient is not None and query.recipient not in {
                        o.agency for o in summary.outcomes}:
                    continue
                if query.state is not None and not summary.matches_state(query.state):
                    continue
                if query.overdue_days is not None and not summary.overdue(query.overdue_days,
                                                                          now):
                    continue
                found.append(summary)
        return found[:query.limit]

    def find_documents(self, text: str) -> list[DocumentSummary]:
        """What a clerk may mean by ``text``: a DocumentId; else a number and notation
        (with or without diacritics); else the start of one or more DocumentIds or of a
        package's SHA-256. Several when several match (the caller offers them)."""
        text = text.strip()
        if not text:
            return []
        folded = fold_text(text)
        for condition in (PackageRow.document_id == text,
                          PackageRow.code_key == folded if "/" in folded else None,
                          PackageRow.document_id.startswith(text, autoescape=True),
                          PackageRow.sha256.startswith(text.lower(), autoescape=True)
                          if len(text) >= 8 else None):
            if condition is None:
                continue
            with self.session() as session:
                rows = session.scalars(
                    select(PackageRow).where(condition, PackageRow.kind == "document")
                    .order_by(PackageRow.received_at.desc()).limit(50)).all()
            if rows:
                return self._summaries(rows)
        return []

    def _summaries(self, rows: Sequence[PackageRow]) -> list[DocumentSummary]:
        """Log rows with their recipients' outcomes: two queries for the whole page."""
        shas = [row.sha256 for row in rows]
        documents = {(row.document_id, row.document_sender) for row in rows if row.document_id}
        with self.session() as session:
            events: dict[str, list[EventRow]] = {}
            for event in session.scalars(select(EventRow).where(
                    EventRow.package_sha256.in_(shas)).order_by(EventRow.at, EventRow.id)):
                events.setdefault(event.package_sha256, []).append(event)
            statuses: dict[tuple[str | None, str | None], dict[str, tuple[str, dt.datetime]]]
            statuses = {}
            for receipt in session.scalars(select(ReceiptRow).where(
                    ReceiptRow.document_id.in_({d for d, _ in documents}))
                    .order_by(ReceiptRow.at, ReceiptRow.id)):
                statuses.setdefault((receipt.document_id, receipt.document_sender), {})[
                    receipt.recipient] = (receipt.status_code, _aware(receipt.at))
        summaries = []
        for row in rows:
            recipients = ((row.recipients or "").split(",") if row.kind == "document"
                          else [row.document_sender or ""])
            happenings = [_as_event(e) for e in events.get(row.sha256, ())]
            summaries.append(DocumentSummary(
                row.sha256, row.document_id, row.sender,
                kind_of(row.kind, row.business_doc_type), _aware(row.received_at),
                row.code, row.subject, row.status_code,
                outcomes([r for r in recipients if r], happenings,
                         statuses.get((row.document_id, row.document_sender), {})
                         if row.kind == "document" else {})))
        return summaries

    def index_documents(self, batch: int = 200) -> int:
        """Fill the search columns (number and notation, subject) of packages logged
        before they existed, from their bytes; returns how many were filled. A package
        whose bytes cannot be read or parsed gets an empty key (it is not looked at
        again) and is reported."""
        filled = 0
        while True:
            with self.session() as session:
                rows = session.execute(select(PackageRow.id, PackageRow.sha256, PackageRow.kind)
                                       .where(PackageRow.code_key.is_(None)).limit(batch)).all()
            if not rows:
                return filled
            values: dict[int, dict[str, str | None]] = {}
            for row_id, sha256, kind in rows:
                code = subject = None
                if kind != "document":  # statuses and notices have no number of their own
                    values[row_id] = _search_columns(None, None)
                    continue
                try:
                    package = parse(self.package_bytes(sha256)).package
                    if isinstance(package, DocumentPackage):
                        header = package.header
                        code = str(header.code) if header.code else None
                        subject = header.subject
                except (KeyError, BlobError, ParseError) as exc:
                    _log.warning("store.index_skipped", extra={
                        "code": "STORE-INDEX-SKIPPED", "sha256": sha256, "error": str(exc)[:300]})
                values[row_id] = _search_columns(code, subject)
            with self.transaction() as session:
                for row_id, columns in values.items():
                    session.execute(update(PackageRow).where(PackageRow.id == row_id)
                                    .values(**columns))
            filled += len(values)

    # -- receipts ----------------------------------------------------------------------
    def record_status(self, document_id: str, recipient: str, status_code: str,
                      receipt_sha256: str, at: dt.datetime | None = None, *,
                      sender: str | None = None) -> bool:
        """Record a recipient's status about a document (of ``sender``); False if already
        recorded."""
        try:
            with self.transaction() as session:
                session.add(ReceiptRow(document_id=document_id, recipient=recipient,
                                       document_sender=sender,
                                       status_code=status_code, receipt_sha256=receipt_sha256,
                                       at=at or utcnow()))
        except IntegrityError:
            return False
        return True

    def trace(self, document_id: str, *, sender: str | None = None) -> Trace:
        """A document's timeline here; with ``sender``, only the document of that sender
        (another agency's document with the same DocumentId is never mixed in)."""
        events_query = select(EventRow).where(EventRow.document_id == document_id)
        receipts_query = select(ReceiptRow).where(ReceiptRow.document_id == document_id)
        if sender is not None:
            events_query = events_query.where(EventRow.document_sender == sender)
            receipts_query = receipts_query.where(ReceiptRow.document_sender == sender)
        with self.session() as session:
            events = session.scalars(events_query.order_by(EventRow.at, EventRow.id)).all()
            receipts = session.scalars(receipts_query.order_by(ReceiptRow.at,
                                                               ReceiptRow.id)).all()
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

    # -- directory ---------------------------------------------------------------------
    def directory_entries(self) -> tuple[list[Node], list[Agency]]:
        """The nodes and agencies kept in this database (empty when none were imported)."""
        with self.session() as session:
            nodes = [Node(r.id, r.tier, r.parent, r.amqp_url, r.http) for r in session.scalars(
                select(DirectoryNodeRow).order_by(DirectoryNodeRow.id))]
            agencies = [Agency(r.code, r.name, r.node, r.tier,
                               *_binding_from_json(r.signer_binding, r.certificate_fingerprint))
                        for r in session.scalars(
                            select(DirectoryAgencyRow).order_by(DirectoryAgencyRow.code))]
        return nodes, agencies

    def save_directory_entries(self, nodes: Iterable[Node], agencies: Iterable[Agency], *,
                               replace: bool = False) -> None:
        """Add or update nodes and agencies (by id / code) in one transaction; with
        ``replace``, the database keeps exactly these."""
        with self.transaction() as session:
            if replace:
                session.execute(_table(DirectoryAgencyRow).delete())
                session.execute(_table(DirectoryNodeRow).delete())
            for node in nodes:
                session.merge(DirectoryNodeRow(id=node.id, tier=node.tier, parent=node.parent,
                                               amqp_url=node.amqp_url, http=node.http))
            for agency in agencies:
                session.merge(DirectoryAgencyRow(
                    code=agency.code, name=agency.name, node=agency.node, tier=agency.tier,
                    certificate_fingerprint=(agency.certificate_fingerprints or (None,))[0],
                    signer_binding=_binding_to_json(agency)))

    def remove_directory_agency(self, code: str) -> bool:
        """Drop an agency from the database's directory; False if it was not there."""
        with self.transaction() as session:
            row = session.get(DirectoryAgencyRow, code)
            if row is None:
                return False
            session.delete(row)
            return True

    # -- credentials -------------------------------------------------------------------
    def issue_credential(self, agency: str, label: str | None = None, *,
                         binding: AgencyBinding | None = None) -> str:
        """Create an API token for ``agency`` — or, with ``binding``, for every agency and
        subtree it names (``agency`` is then the first, for listings); only the token's
        hash is stored. Returns the token."""
        token = "dx_" + secrets.token_urlsafe(32)
        with self.transaction() as session:
            session.add(CredentialRow(
                agency=agency, token_hash=_hash_token(token), label=label,
                agencies=json.dumps(list(binding.agencies)) if binding else None,
                subtrees=json.dumps(list(binding.subtrees)) if binding else None))
        return token

    def binding_for_token(self, token: str) -> AgencyBinding | None:
        """The agencies a token acts for, or None (unknown or revoked)."""
        digest = _hash_token(token)
        with self.session() as session:
            row = session.scalar(select(CredentialRow).where(CredentialRow.token_hash == digest))
        if row is None or row.revoked_at is not None \
                or not hmac.compare_digest(row.token_hash, digest):
            return None
        return AgencyBinding.from_columns(row.agencies, row.subtrees, row.agency)

    def agency_for_token(self, token: str) -> str | None:
        """The (first) agency a token acts for, or None (unknown or revoked)."""
        binding = self.binding_for_token(token)
        return binding.agencies[0] if binding and binding.agencies else None

    def credentials(self) -> list[Credential]:
        """Every credential (never the token: only its hash is kept), newest first."""
        with self.session() as session:
            rows = session.scalars(select(CredentialRow).order_by(CredentialRow.id.desc())).all()
            return [Credential(r.id, r.agency, r.label, _aware(r.created_at),
                               _aware(r.revoked_at) if r.revoked_at else None,
                               AgencyBinding.from_columns(r.agencies, r.subtrees, r.agency))
                    for r in rows]

    def revoke_credential(self, credential_id: int) -> bool:
        """Revoke one credential; False if there is no such live credential."""
        with self.transaction() as session:
            row = session.get(CredentialRow, credential_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True

    def revoke_credentials(self, agency: str) -> int:
        with self.transaction() as session:
            rows: Sequence[CredentialRow] = session.scalars(
                select(CredentialRow).where(CredentialRow.agency == agency,
                                            CredentialRow.revoked_at.is_(None))).all()
            for row in rows:
                row.revoked_at = utcnow()
            return len(rows)


def _record_dict(row: Any) -> dict[str, Any]:
    record = dict(row)
    record["at"] = moment(_aware(record["at"]))
    return record


def _table(model: type[Any]) -> Table:
    """The Core table of a mapped class (typed: ``__table__`` is a FromClause to mypy)."""
    return cast(Table, model.__table__)


def _binding_to_json(agency: Agency) -> str | None:
    if not agency.certificate_fingerprints and not agency.signers:
        return None
    return json.dumps({"fingerprints": list(agency.certificate_fingerprints),
                       "signers": [{"issuer": r.issuer, "subject": dict(r.subject)}
                                   for r in agency.signers]}, ensure_ascii=False)


def _binding_from_json(raw: str | None, legacy_fingerprint: str | None,
                       ) -> tuple[tuple[str, ...], tuple[SignerRule, ...]]:
    if not raw:
        return ((legacy_fingerprint,) if legacy_fingerprint else ()), ()
    data = json.loads(raw)
    return (tuple(data.get("fingerprints", ())),
            tuple(SignerRule(r["issuer"], tuple(r["subject"].items()))
                  for r in data.get("signers", ())))


class _WriterLock:
    """One SQLite writer at a time among the threads and processes sharing a database file.

    A thread lock, then an exclusive ``flock`` on ``<database>-writer.lock`` (one open file
    per store, so the kernel tells processes apart): a waiter wakes the moment the writer
    is done. An in-memory database needs only the thread lock.
    """

    def __init__(self, database: str | None) -> None:
        self._thread = threading.Lock()
        self._path = (Path(f"{database}-writer.lock")
                      if database and database != ":memory:" and fcntl is not None else None)
        self._fd: int | None = None

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (as ``threading.Lock.acquire``); not ``blocking``: False at once
        when another thread or process holds it."""
        if not self._thread.acquire(blocking=blocking):
            return False
        try:
            if self._path is not None and fcntl is not None:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    self._thread.release()
                    return False
        except BaseException:
            self._thread.release()
            raise
        return True

    def release(self) -> None:
        try:
            if self._fd is not None and fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def close(self) -> None:
        with self._thread:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _server_settings(url: str, stalled_transaction_timeout: float) -> dict[str, Any]:
    """PostgreSQL's settings for each of the store's sessions: a transaction its process
    leaves idle longer than ``stalled_transaction_timeout`` seconds is ended by the server
    (see :data:`STALLED_TRANSACTION_TIMEOUT`)."""
    if not url.startswith("postgresql") or stalled_transaction_timeout <= 0:
        return {}
    milliseconds = max(1, round(stalled_transaction_timeout * 1000))
    return {"options": f"-c idle_in_transaction_session_timeout={milliseconds}"}


def _ended_transaction_is_an_outage(context: Any) -> OperationalError | None:
    """SQLAlchemy's ``handle_error``: a transaction the server ended is an outage
    (:func:`~docaxis.store._rows.ended_by_the_server`); the pool drops its session."""
    if not ended_by_the_server(context.original_exception):
        return None
    context.is_disconnect = True
    return OperationalError(context.statement, context.parameters,
                            context.original_exception)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a commit survives a power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # a statement's journal (what it changed, in case it fails half-way) in memory: on
    # disk, every multi-row INSERT that spills past 64 KiB — most of a transaction's —
    # created and deleted a file in /var/tmp (strace: one per transaction; measured,
    # 12–20 % of accept_many's CPU at 8 packages a transaction, ≈ 10 % of an API
    # submission's). It is bounded by the pages one statement changes.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()
