"""The intake journal (issue #11, item 6): the API answers a checked submission once it is
durable in its process's journal, and logs it in the store right after.

* a journal is locked by its process for as long as it lives: no one else logs it then;
  once its process is gone, the next to look logs it and removes it;
* a journal record gives back the very plan it was written from;
* an answered submission whose transaction fails is tried again, never dropped;
* answered, then the process gone before its transaction: the next start logs it (before
  it serves), a repeat is a duplicate, one delivery (the SIGKILL case is in
  ``tests/test_crash.py``, fault point ``api-commit``);
* a repeat of a submission answered and not logged yet is answered as a duplicate;
* a journal that cannot be written (a full disk: a small tmpfs) answers 503, nothing
  accepted, and keeps what it held;
* while too many answered posts wait for the store, the API takes no more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from docaxis.pki import DevPKI
from docaxis.relay import RelayNode
from docaxis.relay._intake import decode, encode
from docaxis.store import (
    UNAVAILABLE,
    IntakeJournal,
    IntakeUnavailable,
    JournalEntry,
    orphaned_journals,
)
from docaxis.transport import InMemoryBroker
from tests.relay_support import Network, idle_network, network_pki
from tests.test_transport import run, wait_until

SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("intake-pki"))


def test_a_live_processs_journal_is_never_taken_and_a_gone_ones_is(tmp_path: Path) -> None:
    live = IntakeJournal.create(tmp_path)
    [row] = live.append([JournalEntry("k|d|a", "{}", b"<edXML/>")])
    assert row == 1
    assert list(orphaned_journals(tmp_path)) == []  # locked by its (live) owner
    gone = IntakeJournal.create(tmp_path)
    gone.append([JournalEntry("k|d|b", "{}", b"b")])
    gone.close(remove=False)  # as a process that died: its lock is free
    [orphan] = list(orphaned_journals(tmp_path))
    assert orphan.path == gone.path
    assert [entry for _, entry in orphan.entries()] == [JournalEntry("k|d|b", "{}", b"b")]
    assert list(orphaned_journals(tmp_path)) == []  # held by whoever is logging it
    orphan.release(remove=True)
    assert not gone.path.exists() and live.path.exists()
    # forgotten rows go with the next append
    live.forget([row])
    live.append([JournalEntry("k|d|c", "{}", b"c")])
    live.close(remove=False)
    [orphan] = list(orphaned_journals(tmp_path))
    assert [entry.business_key for _, entry in orphan.entries()] == ["k|d|c"]
    orphan.release(remove=True)
    # a process that died while creating its journal leaves an empty file: removed
    (tmp_path / "123-abc.starting").touch()
    assert list(orphaned_journals(tmp_path)) == []
    assert not (tmp_path / "123-abc.starting").exists()


def test_a_journal_record_gives_back_the_plan_it_was_written_from(
        tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path, pki)
        node = network.nodes["danang"]
        plan = node.pipeline.plan_submission(
            network.document(SENDER, [RECIPIENT], number="J1"), SENDER)
        plan = dataclasses.replace(plan, accept=dataclasses.replace(
            plan.accept, accepted_at=dt.datetime.now(dt.UTC)))
        assert decode(encode(plan), plan.accept.data) == plan
        with pytest.raises(ValueError, match="format"):
            decode(encode(plan).replace('"v": 1', '"v": 99'), plan.accept.data)
        with pytest.raises(ValueError):
            decode("not json", b"")
        await broker.close()

    run(scenario())


_BROKERS: dict[int, InMemoryBroker] = {}


async def _started(tmp_path: Path, pki: DevPKI) -> Network:
    network, broker = await idle_network(tmp_path, pki)
    for node in network.nodes.values():
        await node.start()
    _BROKERS[id(network)] = broker
    return network


async def _stopped(network: Network) -> None:
    for node in network.nodes.values():
        await node.stop()
    await _BROKERS.pop(id(network)).close()


def _count(node: RelayNode, name: str) -> float:
    return node.metrics.registry.get_sample_value(f"docaxis_intake_{name}_total") or 0.0


def test_an_answered_submission_whose_transaction_fails_is_logged_later(
        tmp_path: Path, pki: DevPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        network = await _started(tmp_path, pki)
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        monkeypatch.setenv("DOCAXIS_FAULT_RAISE", "api-commit")
        monkeypatch.setenv("DOCAXIS_FAULT_ONCE", str(tmp_path / "fired"))
        acceptance = await danang.submit_async(
            network.document(SENDER, [RECIPIENT], number="R1"), agency=SENDER)
        assert not acceptance.duplicate  # answered: in the journal, before its transaction
        await wait_until(lambda: (tmp_path / "fired").exists(), 10)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
        assert _count(danang, "retries") == 1
        assert danang.intake is not None and danang.intake.unlogged == 0
        [logged] = hanoi.store.inbox(RECIPIENT)
        assert logged.sha256 == acceptance.sha256
        await _stopped(network)

    run(scenario())


def test_answered_then_gone_before_its_transaction_the_next_start_logs_it(
        tmp_path: Path, pki: DevPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        network = await _started(tmp_path, pki)
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        document = network.document(SENDER, [RECIPIENT], number="G1")
        monkeypatch.setenv("DOCAXIS_FAULT_RAISE", "api-commit")  # every transaction fails
        first = await danang.submit_async(document, agency=SENDER)
        assert danang.intake is not None
        await wait_until(lambda: _count(danang, "retries") >= 1, 10)
        # the process "dies": its journal is left as a crash leaves it (unlocked)
        journal = danang.intake._journal
        assert journal is not None
        journal.close(remove=False)
        danang.intake._journal = None
        danang.intake = None
        await danang.stop()
        assert danang.store.trace(first.business_key.split("|")[1]).events == []
        monkeypatch.delenv("DOCAXIS_FAULT_RAISE")
        await danang.start()  # the next process of the node: logs it before it serves
        assert [e.kind for e in danang.store.trace(first.business_key.split("|")[1]).events
                ][:1] == ["received"]
        again = await danang.submit_async(document, agency=SENDER)
        assert again.duplicate and again.accepted_at == first.accepted_at
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
        assert _count(danang, "recovered") == 1
        assert not list((tmp_path / "danang-blobs" / "intake").glob("*.db"))[1:]  # its own
        await _stopped(network)

    run(scenario())


def test_a_repeat_of_an_answered_submission_not_logged_yet_is_a_duplicate(
        tmp_path: Path, pki: DevPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        network = await _started(tmp_path, pki)
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        document = network.document(SENDER, [RECIPIENT], number="D1")
        monkeypatch.setenv("DOCAXIS_FAULT_RAISE", "api-commit")  # held back, unlogged
        first = await danang.submit_async(document, agency=SENDER)
        again = await danang.submit_async(document, agency=SENDER)
        assert not first.duplicate
        assert again.duplicate and again.accepted_at == first.accepted_at
        monkeypatch.delenv("DOCAXIS_FAULT_RAISE")
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
        await asyncio.sleep(0)  # (nothing more to come: one delivery)
        assert len(hanoi.store.inbox(RECIPIENT)) == 1
        await _stopped(network)

    run(scenario())


def test_a_journal_on_a_full_disk_answers_unavailable_until_there_is_room(
        tmp_path: Path, pki: DevPKI, disk: Path) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path, pki)
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        danang.intake_folder = disk / "intake"
        for node in network.nodes.values():
            await node.start()
        kept = network.document(SENDER, [RECIPIENT], number="U0")
        assert not (await danang.submit_async(kept, agency=SENDER)).duplicate
        filler = disk / "filler"
        filler.write_bytes(b"\0" * shutil.disk_usage(disk).free)  # the disk is full
        refused = network.document(SENDER, [RECIPIENT], number="U1")
        with pytest.raises(UNAVAILABLE):  # the API answers 503: nothing accepted
            await danang.submit_async(refused, agency=SENDER)
        assert danang.store.trace(document_id(refused)).events == []
        filler.unlink()  # the operator frees space
        assert not (await danang.submit_async(refused, agency=SENDER)).duplicate
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 2, 30)
        for node in network.nodes.values():
            await node.stop()
        await broker.close()

    run(scenario())


def test_a_journal_append_that_fails_leaves_the_journal_as_it_was(disk: Path) -> None:
    journal = IntakeJournal.create(disk)
    journal.append([JournalEntry("k|d|a", "{}", b"a" * 1000)])
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 100_000))
    with pytest.raises(IntakeUnavailable, match="cannot be written"):
        journal.append([JournalEntry("k|d|b", "{}", os.urandom(300_000))])
    filler.unlink()
    journal.append([JournalEntry("k|d|c", "{}", b"c")])
    journal.close(remove=False)
    [orphan] = list(orphaned_journals(disk))
    assert [e.business_key for _, e in orphan.entries()] == ["k|d|a", "k|d|c"]
    orphan.release(remove=True)


def document_id(document: bytes) -> str:
    from docaxis.edxml import parse

    return parse(document).package.document_id or ""


def test_the_api_takes_no_more_while_answered_posts_wait_for_the_store(
        tmp_path: Path, pki: DevPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backpressure: while as many answered posts wait for their transaction as the node
    lets hand-overs lag (``2 × prefetch``), a new post waits (its bytes are not piled up
    behind them); it is answered once they are logged."""
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path, pki)
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        danang.prefetch = 2  # at most 4 answered and not logged
        for node in network.nodes.values():
            await node.start()
        monkeypatch.setenv("DOCAXIS_FAULT_RAISE", "api-commit")  # every transaction fails
        documents = [network.document(SENDER, [RECIPIENT], number=f"B{i}") for i in range(5)]
        for document in documents[:4]:
            assert not (await danang.submit_async(document, agency=SENDER)).duplicate
        assert danang.intake is not None and danang.intake.unlogged == 4
        fifth = asyncio.ensure_future(danang.submit_async(documents[4], agency=SENDER))
        done, _ = await asyncio.wait({fifth}, timeout=1.0)
        assert not done  # held back while the four wait for the store
        monkeypatch.delenv("DOCAXIS_FAULT_RAISE")  # their next try gets through
        assert not (await asyncio.wait_for(fifth, 30)).duplicate
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 5, 30)
        for node in network.nodes.values():
            await node.stop()
        await broker.close()

    run(scenario())
