"""The store on SQLite and on PostgreSQL (a database of its own per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from docaxis.store import PackageFacts, Store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'node.db'}"
        name = None
    else:
        psycopg = pytest.importorskip("psycopg")
        name = f"docaxis_test_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            pytest.fail(f"PostgreSQL is not reachable (.ci/run starts it): {exc}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    store = Store(url, tmp_path / "blobs")
    store.migrate()
    yield store
    store.close()
    if name is not None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


FACTS = PackageFacts(kind="document", sender="000.00.00.G22",
                     document_id="000.00.00.G22,2024/05/02,12/VPCP")


def test_migrations_create_every_table(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"packages", "events", "outbox", "inbox", "receipts", "credentials",
            "alembic_version"} <= tables
    store.migrate()  # idempotent


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


def test_blob_store_detects_corruption(store: Store) -> None:
    digest = store.blobs.put(b"payload")
    store.blobs.path(digest).write_bytes(b"tampered")
    with pytest.raises(OSError, match="corrupt"):
        store.blobs.get(digest)


def test_batched_blob_writes_and_batched_acceptance(store: Store) -> None:
    from docaxis.store import Accept

    datas = [f"<edXML>{i}</edXML>".encode() for i in range(5)]
    digests = store.blobs.put_many([*datas, datas[0]])
    assert digests[0] == digests[-1] and len(set(digests)) == 5
    assert [store.blobs.get(d) for d in digests[:5]] == datas
    assert not list(store.blobs.root.rglob(".tmp-*"))  # no temporary files left behind
    items = [Accept(d, PackageFacts("document", "000.00.00.G22", f"doc-{i}"), "hanoi",
                    outbox=(("central", "package", {}),)) for i, d in enumerate(datas)]
    results = store.accept_many([*items, items[1]])
    assert [r.duplicate for r in results] == [False] * 5 + [True]
    assert len(store.pending_outbox()) == 5
