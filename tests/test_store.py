"""The store on SQLite and on PostgreSQL (a database of its own per test)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from docaxis.store import BlobRef, BlobStore, PackageFacts, Store
from tests.pg_support import pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'node.db'}" if request.param == "sqlite"
               else stack.enter_context(pg_database())[1])
        store = Store(url, tmp_path / "blobs")
        store.migrate()
        yield store
        store.close()


FACTS = PackageFacts(kind="document", sender="000.00.00.G22",
                     document_id="000.00.00.G22,2024/05/02,12/VPCP")


def test_migrations_create_every_table(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"packages", "events", "outbox", "inbox", "receipts", "credentials",
            "directory_nodes", "directory_agencies", "alembic_version"} <= tables
    store.migrate()  # idempotent


def test_sqlite_keeps_statement_journals_in_memory(tmp_path: Path) -> None:
    """A multi-row INSERT's statement journal spilled to a temporary file (created and
    deleted in /var/tmp, once per transaction): every connection keeps them in memory."""
    store = Store(f"sqlite:///{tmp_path / 'node.db'}", tmp_path / "blobs")
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        store.close()


def test_accept_logs_bytes_outbox_inbox_and_events_atomically(store: Store) -> None:
    data = b"<edXML>exact bytes \xe1\xba\xa1</edXML>"
    acceptance = store.accept(data, FACTS, node="hanoi", outbox=[("central", "package", {"a": "1"})],
                              inbox=["000.00.00.H01"],
                              events=[("received", "000.00.00.G22", None), ("stored", None, None)])
    assert not acceptance.duplicate
    assert store.package_bytes(acceptance.sha256) == data
    [item] = store.pending_outbox()
    assert (item.destination_node, item.message_kind, item.headers) == ("central", "package",
                                                                        {"a": "1"})
    [inbox] = store.inbox("000.00.00.H01")
    assert inbox.sha256 == acceptance.sha256 and inbox.state == "new"
    assert [e.kind for e in store.trace(FACTS.document_id).events] == ["received", "stored"]


def test_a_repeat_gets_the_original_acceptance_and_changes_nothing(store: Store) -> None:
    data = b"<edXML>once</edXML>"
    first = store.accept(data, FACTS, node="hanoi", outbox=[("central", "package", {})])
    again = store.accept(data, FACTS, node="hanoi", outbox=[("central", "package", {})])
    assert again.duplicate and again.accepted_at == first.accepted_at
    assert len(store.pending_outbox()) == 1
    other = store.accept(b"<edXML>different bytes</edXML>", FACTS, node="hanoi")
    assert not other.duplicate  # same DocumentId, other bytes: another business key


def test_outbox_marks_and_inbox_acknowledgement(store: Store) -> None:
    acceptance = store.accept(b"<x/>", FACTS, node="hanoi", outbox=[("central", "package", {})],
                              inbox=["000.00.00.H01"])
    [item] = store.pending_outbox()
    store.mark_sent(item.id)
    store.mark_sent(item.id)
    assert store.pending_outbox() == []
    [inbox] = store.inbox("000.00.00.H01")
    assert not store.acknowledge("000.00.00.H41", inbox.id, node="hanoi")  # not theirs
    assert store.acknowledge("000.00.00.H01", inbox.id, node="hanoi")
    assert store.inbox("000.00.00.H01") == []
    assert store.inbox("000.00.00.H01", include_acknowledged=True)[0].state == "acknowledged"
    assert [e.kind for e in store.trace(FACTS.document_id).events][-1] == "acknowledged"
    assert acceptance.sha256 == inbox.sha256


def test_receipts_keep_the_latest_status_per_recipient(store: Store) -> None:
    doc = FACTS.document_id or ""
    assert store.record_status(doc, "000.00.00.H01", "01", "a" * 64)
    assert store.record_status(doc, "000.00.00.H01", "03", "b" * 64)
    assert store.record_status(doc, "000.00.00.H41", "01", "c" * 64)
    assert not store.record_status(doc, "000.00.00.H41", "01", "c" * 64)  # same receipt twice
    statuses = store.trace(doc).statuses
    assert {k: v[0] for k, v in statuses.items()} == {"000.00.00.H01": "03",
                                                     "000.00.00.H41": "01"}


def test_credentials_are_hashed_bound_and_revocable(store: Store) -> None:
    token = store.issue_credential("000.00.00.H01", "document system")
    assert store.agency_for_token(token) == "000.00.00.H01"
    assert store.agency_for_token(token + "x") is None
    from sqlalchemy import text

    with store.engine.connect() as connection:
        stored = connection.execute(text("select token_hash from credentials")).scalar_one()
    assert token not in stored and len(stored) == 64
    assert store.revoke_credentials("000.00.00.H01") == 1
    assert store.agency_for_token(token) is None


def test_blob_log_detects_corruption_and_missing_bytes(store: Store) -> None:
    from docaxis.store import BlobError

    ref = store.blobs.put(b"payload")
    assert store.blobs.get(ref) == b"payload"
    path = store.blobs.segment_path(ref.segment or "")
    raw = bytearray(path.read_bytes())
    raw[ref.offset] ^= 0x01  # one bit flipped on disk
    path.write_bytes(bytes(raw))
    with pytest.raises(BlobError, match="corrupt"):
        store.blobs.get(ref)
    with pytest.raises(BlobError, match="missing"):
        store.blobs.get(BlobRef("a" * 64, None, 0, 7))


def test_blob_log_appends_a_batch_to_one_segment_and_rolls_over(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", segment_bytes=100)
    refs = blobs.put_many([b"a" * 60, b"b" * 60])
    assert refs[0].segment == refs[1].segment and refs[1].offset == 60
    later = blobs.put(b"c" * 10)  # the segment is past 100 bytes: a new one begins
    assert later.segment != refs[0].segment and later.offset == 0
    assert [blobs.get(r) for r in [*refs, later]] == [b"a" * 60, b"b" * 60, b"c" * 10]
    again = BlobStore(tmp_path / "blobs", segment_bytes=100)  # another process, say
    assert again.put(b"d").segment not in {refs[0].segment, later.segment}
    assert again.get(refs[1]) == b"b" * 60


def test_the_first_layout_one_file_per_blob_is_still_read(store: Store) -> None:
    import hashlib

    from sqlalchemy import update

    from docaxis.store._models import PackageRow

    data = b"<edXML>kept by schema revision 0001</edXML>"
    acceptance = store.accept(data, FACTS, node="hanoi")
    legacy = store.blobs.legacy_path(hashlib.sha256(data).hexdigest())
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(data)
    with store.session() as session, session.begin():
        session.execute(update(PackageRow).values(blob_segment=None, blob_offset=None))
    assert store.package_bytes(acceptance.sha256) == data


def test_batched_acceptance_deduplicates_within_and_across_batches(store: Store) -> None:
    from docaxis.store import Accept

    datas = [f"<edXML>{i}</edXML>".encode() for i in range(5)]
    items = [Accept(d, PackageFacts("document", "000.00.00.G22", f"doc-{i}"), "hanoi",
                    outbox=(("central", "package", {"k": "v"}),)) for i, d in enumerate(datas)]
    results = store.accept_many([*items, items[1]])
    assert [r.duplicate for r in results] == [False] * 5 + [True]
    assert results[5].accepted_at == results[1].accepted_at
    assert len(store.pending_outbox()) == 5
    # each first acceptance names the hand-over it owes, as the outbox has it
    owed = {h.id: h for r in results for h in r.handovers}
    assert owed == {i.id: i for i in store.pending_outbox()}
    again = store.accept_many(items[3:])
    assert all(r.duplicate and not r.handovers for r in again)
    assert [r.accepted_at for r in again] == [r.accepted_at for r in results[3:5]]


def test_two_stores_accepting_the_same_package_at_once_log_it_once(store: Store) -> None:
    """Two worker processes of one node may receive the same package at the same instant
    (a re-sent hand-over): one logs it, the other gets the original acceptance."""
    import threading

    from docaxis.store import Accept

    other = Store(store.url, store.blobs.root)
    items = [Accept(f"<edXML>{i}</edXML>".encode(),
                    PackageFacts("document", "000.00.00.G22", f"doc-{i}"), "hanoi",
                    outbox=(("central", "package", {}),)) for i in range(40)]
    results: dict[str, list[Any]] = {}
    barrier = threading.Barrier(2)

    def worker(name: str, target: Store) -> None:
        barrier.wait()
        results[name] = target.accept_many(items)

    threads = [threading.Thread(target=worker, args=(n, t))
               for n, t in (("a", store), ("b", other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    other.close()
    firsts = [not (a.duplicate and b.duplicate) and (a.duplicate != b.duplicate)
              for a, b in zip(results["a"], results["b"], strict=True)]
    assert all(firsts)  # exactly one of the two logged each package
    assert len(store.pending_outbox(limit=1000)) == 40


def test_the_writer_lock_held_for_a_thread_is_its_own_until_released(tmp_path: Path) -> None:
    """``hold_writer``: one thread takes the writer lock for another (the node's event loop
    has a worker thread wait for it); the thread it is held for writes without taking it
    again, every other writer — a thread of this process, a store of another process on
    the same file — waits until it is released; without waiting, a held lock is refused
    at once."""
    import threading

    from docaxis.store import Accept

    url = f"sqlite:///{tmp_path / 'node.db'}"
    store, other = Store(url, tmp_path / "blobs"), Store(url, tmp_path / "blobs")
    store.migrate()

    logged: list[int] = []

    def accept(target: Store, number: int) -> None:
        [acceptance] = target.accept_many([Accept(f"<edXML>{number}</edXML>".encode(),
                                                  PackageFacts("document", "000.00.00.G22",
                                                               f"doc-{number}"), "hanoi")])
        if not acceptance.duplicate:
            logged.append(number)

    go, wrote, finish = threading.Event(), threading.Event(), threading.Event()

    def hold_for() -> None:  # alive until the end: a thread's id is reused once it ends
        go.wait(30)
        accept(store, 1)
        wrote.set()
        finish.wait(30)

    holder = threading.Thread(target=hold_for, daemon=True)
    holder.start()
    me = holder.ident or 0
    taker = threading.Thread(target=store.hold_writer, kwargs={"for_thread": me})
    taker.start()
    taker.join(timeout=10)
    assert not taker.is_alive()
    go.set()  # the thread it is held for writes without taking it again
    assert wrote.wait(10) and logged == [1]
    assert not other.hold_writer(for_thread=me, wait=False)  # another process's view
    assert not store.hold_writer(for_thread=me + 1, wait=False)  # another thread's
    waiters = [threading.Thread(target=accept, args=(store, 2)),
               threading.Thread(target=accept, args=(other, 3))]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join(timeout=0.3)
    assert all(waiter.is_alive() for waiter in waiters)  # they wait for the lock
    store.release_writer(me + 1)  # not held for that thread: nothing happens
    assert all(waiter.is_alive() for waiter in waiters)
    store.release_writer(me)
    for waiter in waiters:
        waiter.join(timeout=30)
    assert not any(waiter.is_alive() for waiter in waiters)
    finish.set()
    assert sorted(logged) == [1, 2, 3]
    assert other.hold_writer(for_thread=me, wait=False)
    other.close()  # a lock still held for a thread is given back on close
    assert store.hold_writer(for_thread=me, wait=False)
    store.close()


def test_directory_entries_round_trip_and_replace(store: Store) -> None:
    from docaxis.directory import Agency, Node, SignerRule

    assert store.directory_entries() == ([], [])
    nodes = [Node("central", "central"), Node("hanoi", "province", "central",
                                              amqp_url="amqp://broker.hanoi/hanoi")]
    agencies = [Agency("000.00.00.H01", "UBND TP Hà Nội", "hanoi", "province", ("ab" * 32,),
                       (SignerRule("CN=VNPT-CA,O=VNPT,C=VN", (("UID", "MST:0100100079"),)),))]
    store.save_directory_entries(nodes, agencies)
    assert store.directory_entries() == (nodes, agencies)
    moved = Agency("000.00.00.H01", "UBND TP Hà Nội", "central")
    store.save_directory_entries([], [moved])  # update by code
    assert store.directory_entries() == (nodes, [moved])
    store.save_directory_entries([Node("central", "central")], [], replace=True)
    assert store.directory_entries() == ([Node("central", "central")], [])
    assert not store.remove_directory_agency("000.00.00.H01")


def test_an_outbox_row_is_claimed_by_one_sweeper_only(store: Store) -> None:
    store.accept(b"<p>owed</p>", FACTS, node="hanoi", outbox=[("central", "package", {})])
    [item] = store.pending_outbox()
    assert item.claimed_by == store.claimant  # the committing process owes it
    other = Store(store.url, store.blobs.root)
    other.claimant = "elsewhere:1:1"
    try:
        [won] = other.claim_outbox([item])
        assert won.claimed_by == "elsewhere:1:1"
        assert store.claim_outbox([item]) == []  # the owner changed meanwhile: lost
        assert store.pending_outbox()[0].claimed_by == "elsewhere:1:1"
    finally:
        other.close()


def test_rows_rendered_once_write_and_read_what_sqlalchemy_would(store: Store) -> None:
    """The log's hot statements run on the DB-API cursor (docaxis.store._rows): a row must
    land as SQLAlchemy's own INSERT writes it and read back as SQLAlchemy reads it
    (timestamps with their zone, bytes, NULLs), a batch larger than one statement's
    parameters is split, a conflict is skipped or raised as SQLAlchemy raises it (so that
    an outage is still told apart from a bad row)."""
    import datetime as dt

    from sqlalchemy import exc, insert, select

    from docaxis.store._models import BlobChunkRow, InboxRow
    from docaxis.store._rows import Rows

    statements = Rows(store.engine.dialect)
    chunks, inbox = BlobChunkRow.__table__, InboxRow.__table__
    at = dt.datetime(2026, 11, 30, 7, 5, 3, 123456, tzinfo=dt.UTC)
    rows = [{"sha256": f"{i:064x}", "seq": i, "data": bytes([i % 256]) * (i + 1)}
            for i in range(7)]
    sha256 = store.accept(b"<edXML>inbox</edXML>", FACTS, node="hanoi").sha256  # (named)
    with store.engine.begin() as connection:
        returned = statements.insert(connection, chunks, rows, skip_conflicts=True,
                                     returning=("seq",))
        assert sorted(seq for seq, in returned) == list(range(7))
        # more parameters than one statement takes (SQLite 32,766, PostgreSQL 65,535)
        many = [{"sha256": "f" * 64, "seq": i, "data": b""} for i in range(22_000)]
        assert len(statements.insert(connection, chunks, many, returning=("seq",))) == 22_000
        # a repeat is skipped (nothing returned) or refused as SQLAlchemy refuses it
        assert statements.insert(connection, chunks, rows[:3], skip_conflicts=True,
                                 returning=("seq",)) == []
    with pytest.raises(exc.IntegrityError), store.engine.begin() as connection:
        statements.insert(connection, chunks, rows[:1])
    with pytest.raises(ValueError), store.engine.begin() as connection:  # never a column lost
        statements.insert(connection, chunks, [{"sha256": "e" * 64, "seq": 0, "data": b""},
                                               {"sha256": "e" * 64, "seq": 1}])
    agencies = ["000.00.00.H01", "000.00.00.H02", "000.00.00.H03"]
    with store.engine.begin() as connection:
        mine = {"agency": agencies[0], "package_sha256": sha256, "document_id": None,
                "kind": "document", "state": "new", "created_at": at}
        statements.insert(connection, inbox, [mine, {**mine, "agency": agencies[2]}])
        connection.execute(insert(inbox), [{**mine, "agency": agencies[1]}])
        statements.update_in(connection, inbox, {"state": "acknowledged",
                                                 "acknowledged_at": at + dt.timedelta(1)},
                             "agency", agencies[1:], where={"state": "new"})
        statements.update_in(connection, inbox, {"acknowledged_at": at}, "agency",
                             agencies[1:], where={"state": "new"})  # none is new: no change
        read = {row.agency: row for row in connection.execute(
            select(inbox.c.agency, inbox.c.document_id, inbox.c.created_at,
                   inbox.c.state, inbox.c.acknowledged_at))}
        ours = dict(statements.select_in(connection, inbox, ("agency", "created_at"),
                                         "agency", agencies))
        stored = {seq: data for seq, data in connection.execute(
            select(chunks.c.seq, chunks.c.data)
            .where(chunks.c.sha256.in_([row["sha256"] for row in rows])))}
    assert stored == {row["seq"]: row["data"] for row in rows}
    assert read[agencies[0]][1:] == (None, read[agencies[1]].created_at, "new", None)
    assert ours == {agency: read[agency].created_at for agency in agencies}
    assert read[agencies[0]].created_at.replace(tzinfo=dt.UTC) == at
    assert [(read[a].state, read[a].acknowledged_at) for a in agencies[1:]] == [
        ("acknowledged", read[agencies[2]].acknowledged_at)] * 2
    assert read[agencies[2]].acknowledged_at.replace(tzinfo=dt.UTC) == at + dt.timedelta(1)


def test_a_transaction_its_frozen_process_left_open_does_not_hold_another_up(
        tmp_path: Path) -> None:
    """Two instances of a node on one PostgreSQL. One is frozen (SIGSTOP, a hang) inside
    its transaction, a package's row inserted and not committed; the package is
    redelivered to the other, whose INSERT of the same business key waits on that row's
    lock — for as long as the freeze lasts, and with it every package of its batch (seen
    as an intermittent failure of
    ``tests/test_crash.py::test_an_instance_frozen_past_the_bounds_loses_nothing_and_doubles_nothing``).
    PostgreSQL ends a transaction left idle longer than the store's
    ``stalled_transaction_timeout`` (a node's lease): the other instance logs the package
    within that, and the frozen one, thawed, finds its transaction gone (an outage to it,
    retried) — the package logged once."""
    import threading
    import time

    from docaxis.store import UNAVAILABLE, Accept

    with pg_database() as (_name, url):
        frozen = Store(url, tmp_path / "a", stalled_transaction_timeout=1.0)
        frozen.migrate()
        other = Store(url, tmp_path / "b", stalled_transaction_timeout=1.0)
        item = Accept(b"<edXML>frozen</edXML>", FACTS, "central")
        inside, thaw = threading.Event(), threading.Event()
        append_events = frozen._append_events

        def stalled(*args):  # type: ignore[no-untyped-def]
            append_events(*args)
            inside.set()
            thaw.wait(20)  # frozen, its package's row inserted, not committed

        frozen._append_events = stalled  # type: ignore[method-assign]
        outcome: list[object] = []

        def log_frozen() -> None:
            try:
                outcome.append(frozen.accept_many([item]))
            except Exception as exc:
                outcome.append(exc)

        thread = threading.Thread(target=log_frozen)
        thread.start()
        try:
            assert inside.wait(10)
            started = time.monotonic()
            [acceptance] = other.accept_many([item])
            assert time.monotonic() - started < 8  # not the freeze's 20 s
            assert not acceptance.duplicate
        finally:
            thaw.set()
            thread.join(30)
        assert isinstance(outcome[0], UNAVAILABLE), outcome  # its transaction was ended
        with other.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM packages").scalar() == 1
        frozen.close()
        other.close()
