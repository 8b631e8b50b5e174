"""Several instances of one node (issue #12): what they share must tolerate them all."""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import pytest

from docaxis.store import Accept, BlobError, PackageFacts, Store
from tests.pg_support import pg_database

INSTANCES = 6


def _migrate(url: str, blobs: str, start: Any) -> None:
    start.wait(30)  # all at once
    store = Store(url, blobs)
    try:
        store.migrate()
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_instances_started_together_on_an_empty_database_all_start(
    engine: str, tmp_path: Path,
) -> None:
    """Issue #12, item 4: six processes migrate one fresh database at the same instant;
    every one succeeds and the schema is current (without the migration lock, two first
    starts both create ``alembic_version`` and one crashes)."""
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'node.db'}" if engine == "sqlite"
               else stack.enter_context(pg_database())[1])
        start = context.Barrier(INSTANCES)
        processes = [context.Process(target=_migrate, args=(url, str(tmp_path / f"b{i}"),
                                                            start))
                     for i in range(INSTANCES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(120)
        assert [p.exitcode for p in processes] == [0] * INSTANCES
        store = Store(url, tmp_path / "blobs")
        try:
            assert store.is_current()
        finally:
            store.close()


FACTS = PackageFacts(kind="document", sender="000.00.00.G22",
                     document_id="000.00.00.G22,2024/05/02,12/VPCP")


def test_bytes_accepted_by_one_instance_are_read_by_another_after_its_machine_is_gone(
    tmp_path: Path,
) -> None:
    """Issue #12, item 1: with PostgreSQL a package's bytes live in the database, so an
    instance on another machine reads them when the first machine (and its data folder)
    is gone; every read is checked against the SHA-256."""
    data = b"<edXMLEnvelope>" + b"x" * 3_000_000 + b"</edXMLEnvelope>"  # several chunks
    with pg_database() as (_name, url):
        first = Store(url, tmp_path / "host-a")
        first.migrate()
        [acceptance] = first.accept_many([Accept(data, FACTS, "central", None, None,
                                                 (("hanoi", "package", {}),))])
        first.close()
        shutil.rmtree(tmp_path / "host-a")  # that machine is gone, with its disk
        second = Store(url, tmp_path / "host-b")
        try:
            assert second.package_bytes(acceptance.sha256) == data
            [owed] = second.pending_outbox()
            assert second.package_bytes(owed.sha256) == data  # the sweep can send it
            with second.engine.begin() as connection:  # a bit flipped at rest
                connection.exec_driver_sql(
                    "UPDATE blob_chunks SET data = overlay(data placing '\\x00'::bytea "
                    "from 7 for 1) WHERE seq = 0")
            with pytest.raises(BlobError, match="corrupt"):
                second.package_bytes(acceptance.sha256)
        finally:
            second.close()


def test_with_the_blob_log_on_one_machine_another_instance_cannot_read_the_bytes(
    tmp_path: Path,
) -> None:
    """The reason for the above: ``[node] blobs = "segments"`` (one machine's log) on a
    shared database leaves another instance without the bytes — SQLite's embedded mode
    keeps that log, for a one-machine node."""
    with pg_database() as (_name, url):
        first = Store(url, tmp_path / "host-a", bytes_in_database=False)
        first.migrate()
        [acceptance] = first.accept_many([Accept(b"<x/>", FACTS, "central")])
        first.close()
        second = Store(url, tmp_path / "host-b", bytes_in_database=False)
        try:
            with pytest.raises(BlobError):
                second.package_bytes(acceptance.sha256)
        finally:
            second.close()


def test_a_lapsed_lease_passes_the_hand_overs_to_a_live_instance_on_any_host(
    tmp_path: Path,
) -> None:
    """Issue #12, item 2: ownership by lease, not hostname. An instance of danang with
    the *same hostname* in another container (another pid namespace: this host's /proc
    says nothing about it) commits a package and owes its hand-over. While its lease is
    fresh, a second instance leaves the row to it; once the lease lapses (the owner died,
    hung or lost its machine), the second instance takes it over and hands it over; the
    owner, back, finds nothing left to send."""
    import socket

    from docaxis.edxml import parse
    from tests.relay_support import idle_network, network_pki
    from tests.test_transport import run, wait_until

    pki = network_pki(tmp_path / "pki")

    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "nodes", pki)
        danang = network.nodes["danang"]  # not started: swept by hand below
        with pg_database() as (_name, url):
            owner = Store(url, tmp_path / "container-a")
            owner.migrate()
            owner.claimant = f"{socket.gethostname()}:elsewhere-4026531836:4242:99"
            owner.renew_lease("danang")
            document = network.document("000.00.00.H43", ["000.00.00.H01"], number="L1")
            plan = danang.pipeline.plan(parse(document), received_from=None,
                                        origin="danang", from_parent=False)
            owner.accept_many([plan.accept])
            danang.store = Store(url, tmp_path / "container-b")
            danang.lease = 1.0
            try:
                assert await danang.dispatch_once(older_than=60) == 0  # its owner's
                await wait_until(lambda: danang.store.lease_ages()[owner.claimant] > 1.0, 10)
                assert await danang.dispatch_once(older_than=60) == 1  # lapsed: taken over
                assert danang.store.pending_outbox() == []
                owner.renew_lease("danang")  # the owner is back: nothing is owed by it
                assert owner.pending_outbox() == []
            finally:
                owner.close()
                danang.store.close()
        await broker.close()

    run(scenario())


def test_this_hosts_proc_judges_only_processes_of_its_own_namespace() -> None:
    """Two containers share a hostname but not a pid namespace: a token from the other is
    never judged by this one's /proc (the lease judges it), one of this namespace is."""
    import os
    import socket

    from docaxis.store import is_alive, process_token, token_for

    assert is_alive(process_token()) is True
    mine = token_for(os.getpid())
    host, _space, pid, start = mine.rsplit(":", 3)
    assert host == socket.gethostname()
    assert is_alive(f"{host}:0badc0de-1:{pid}:{start}") is None
    assert is_alive(f"{host}:0badc0de-1:{pid}:{int(start) + 1}") is None
    assert is_alive(f"{host}:{_space}:{pid}:{int(start) + 1}") is False  # a reused pid
