"""The submission journal: API submissions answered once durable in it, committed after,
recovered when the process that journaled them died (docaxis/store/_journal.py)."""

from __future__ import annotations

import fcntl
import logging
import pickle
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

import docaxis.store._journal as journal_module
from docaxis.api import create_app
from docaxis.pki import DevPKI
from docaxis.relay import RelayNode
from docaxis.store import Accept, SubmissionJournal, orphan_segments
from docaxis.store._models import PackageRow
from tests.relay_support import Network, idle_network, network_pki
from tests.test_transport import run, wait_until

SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("journal-pki"))


def _accepts(network: Network, count: int, start: int = 0) -> list[Accept]:
    pipeline = network.nodes["danang"].pipeline
    return [pipeline.plan_submission(network.document(SENDER, [RECIPIENT],
                                                      number=f"J{start + i}"), SENDER).accept
            for i in range(count)]


def _logged(node: RelayNode) -> int:
    with node.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(PackageRow)) or 0)


def _journal(network: Network, folder: Path) -> SubmissionJournal:
    node = network.nodes["danang"]
    node.journal = SubmissionJournal(folder, "test-1")
    return node.journal


def test_a_dead_process_s_segment_is_read_back_whole_and_a_live_one_is_left_alone(
    tmp_path: Path, pki: DevPKI,
) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "net", pki)
        accepts = _accepts(network, 3)
        live = SubmissionJournal(tmp_path / "journal", "live")
        live.append(accepts[:1])
        dead = SubmissionJournal(tmp_path / "journal", "dead")
        dead.append(accepts[1:])
        dead.close()  # its process is gone: its lock with it; the records stay (uncommitted)
        found = list(orphan_segments(tmp_path / "journal"))
        # the live process's segment is locked by it: not recovered under its feet
        assert [segment.path.name.split("-")[0] for segment in found] == ["dead"]
        assert [a.sha256 for a in found[0].accepts] == [a.sha256 for a in accepts[1:]]
        assert found[0].accepts[0].data == accepts[1].data  # the exact bytes
        found[0].done()
        assert [p.name.split("-")[0] for p in (tmp_path / "journal").glob("*.journal")] == \
            ["live"]
        live.close()
        await broker.close()

    run(scenario())


def test_a_torn_last_record_is_ignored_and_the_whole_ones_before_it_stand(
    tmp_path: Path, pki: DevPKI,
) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "net", pki)
        accepts = _accepts(network, 2)
        journal = SubmissionJournal(tmp_path / "journal", "torn")
        journal.append(accepts[:1])
        whole = next((tmp_path / "journal").glob("*.journal")).stat().st_size
        journal.append(accepts[1:])
        journal.close()
        path = next((tmp_path / "journal").glob("*.journal"))
        with path.open("r+b") as handle:  # a crash in the middle of the second append
            handle.truncate(whole + 100)
        [segment] = list(orphan_segments(tmp_path / "journal"))
        assert [a.sha256 for a in segment.accepts] == [accepts[0].sha256]
        assert segment.unreadable == 0
        segment.keep()
        await broker.close()

    run(scenario())


def test_a_whole_record_that_cannot_be_read_is_set_aside_not_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    folder.mkdir()
    path = folder / "odd-000001.journal"
    path.write_bytes(journal_module._record(pickle.dumps({"not": "an Accept"})))
    [segment] = list(orphan_segments(folder))
    assert segment.accepts == [] and segment.unreadable == 1
    kept = segment.set_aside()
    assert kept.exists() and not path.exists()
    assert list(orphan_segments(folder)) == []  # out of recovery's way, still on disk


def test_segments_are_deleted_once_closed_and_wholly_committed(
    tmp_path: Path, pki: DevPKI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "net", pki)
        accepts = _accepts(network, 3)
        monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 1)  # a segment per append
        journal = SubmissionJournal(tmp_path / "journal", "rotating")
        tickets = [journal.append([accept]) for accept in accepts]
        assert len(list((tmp_path / "journal").glob("*.journal"))) == 3
        journal.committed(tickets[0])
        journal.committed(tickets[2])  # the current one: kept while it is appended to
        assert sorted(p.name for p in (tmp_path / "journal").glob("*.journal")) == \
            sorted([tickets[1].segment.name, tickets[2].segment.name])
        assert journal.pending == 1
        journal.close()  # the one still pending stays for recovery, the other goes
        assert [p.name for p in (tmp_path / "journal").glob("*.journal")] == \
            [tickets[1].segment.name]
        await broker.close()

    run(scenario())


def test_a_journaled_submission_is_answered_then_committed_and_a_repeat_gets_its_acceptance(
    tmp_path: Path, pki: DevPKI,
) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "net", pki)
        node = network.nodes["danang"]
        journal = _journal(network, tmp_path / "journal")
        node.journal_commit_interval = 0.2  # a repeat arrives while the first is journaled
        await node.start()
        document = network.document(SENDER, [RECIPIENT], number="J1")
        first = await node.submit_async(document, agency=SENDER)
        assert not first.duplicate
        journaled = await node.submit_async(document, agency=SENDER)  # not committed yet
        assert journaled.duplicate and journaled.accepted_at == first.accepted_at
        await wait_until(lambda: node.store.accepted_at({first.business_key}) != {}, 30)
        assert node.store.accepted_at({first.business_key}) == {
            first.business_key: first.accepted_at}  # the answered time is the logged one
        await wait_until(lambda: journal.pending == 0, 30)
        logged = await node.submit_async(document, agency=SENDER)  # from the store now
        assert logged.duplicate and logged.accepted_at == first.accepted_at
        assert _logged(node) == 1
        # handed over as a committed package is: central has it in its queue
        await wait_until(lambda: node.outbox.in_flight == set()
                         and not node.store.pending_outbox(), 30)
        await node.stop()
        assert list((tmp_path / "journal").glob("*.journal")) == []  # all committed
        await broker.close()

    run(scenario())


def test_what_a_dead_process_journaled_is_committed_and_handed_over_at_start(
    tmp_path: Path, pki: DevPKI,
) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "net", pki)
        node: RelayNode = network.nodes["danang"]
        accepts = _accepts(network, 2)
        gone = SubmissionJournal(tmp_path / "journal", "gone")
        gone.append(accepts)  # answered 202 by a process that died before its commit
        gone.close()
        assert node.store.accepted_at({f"{SENDER}|x|y"}) == {}
        _journal(network, tmp_path / "journal")
        await node.start()  # recovered before the node serves anything
        keys = [f"{a.facts.sender}|{a.facts.document_id}|{a.sha256}" for a in accepts]
        assert set(node.store.accepted_at(set(keys))) == set(keys)
        assert list((tmp_path / "journal").glob("gone-*.journal")) == []
        await wait_until(lambda: not node.store.pending_outbox(), 30)  # handed over, marked
        assert _logged(node) == 2
        await node.stop()
        await broker.close()

    run(scenario())


def test_an_append_the_disk_refuses_answers_nothing_and_leaves_whole_records(
    tmp_path: Path, pki: DevPKI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "net", pki)
        accepts = _accepts(network, 2)
        journal = SubmissionJournal(tmp_path / "journal", "full")
        journal.append(accepts[:1])
        real = journal_module.os.fdatasync

        def full(_fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(journal_module.os, "fdatasync", full)
        with pytest.raises(OSError):
            journal.append(accepts[1:])
        monkeypatch.setattr(journal_module.os, "fdatasync", real)
        journal.close()
        [segment] = list(orphan_segments(tmp_path / "journal"))
        assert [a.sha256 for a in segment.accepts] == [accepts[0].sha256]  # cut back
        segment.keep()
        await broker.close()

    run(scenario())


def test_a_segment_held_by_another_open_file_is_not_recovered(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    folder.mkdir()
    path = folder / "busy-000001.journal"
    path.write_bytes(b"")
    with path.open("rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        assert list(orphan_segments(folder)) == []
    [segment] = list(orphan_segments(folder))  # its holder gone: recoverable
    assert segment.path == path
    segment.keep()


def test_a_journal_the_disk_refuses_answers_503_once_logged_and_accepts_when_it_can(
    tmp_path: Path, pki: DevPKI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path / "net", pki)
        node = network.nodes["danang"]
        _journal(network, tmp_path / "journal")
        await node.start()
        token = node.store.issue_credential(SENDER)
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("docaxis").addHandler(handler)
        real = journal_module.os.fdatasync

        def full(_fd: int) -> None:
            raise OSError(28, "No space left on device")

        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(node)),
                                         base_url="http://node") as api:
                monkeypatch.setattr(journal_module.os, "fdatasync", full)
                documents = [network.document(SENDER, [RECIPIENT], number=f"F{n}")
                             for n in range(3)]
                for document in documents[:2]:
                    answer = await api.post("/v1/packages", content=document, headers={
                        "Authorization": f"Bearer {token}"})
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["error"] == "API-UNAVAILABLE"
                    assert answer.headers["Retry-After"]
                monkeypatch.setattr(journal_module.os, "fdatasync", real)
                answer = await api.post("/v1/packages", content=documents[2], headers={
                    "Authorization": f"Bearer {token}"})
                assert answer.status_code == 202, answer.text
            await wait_until(lambda: _logged(node) == 1, 30)  # only what was answered 202
        finally:
            logging.getLogger("docaxis").removeHandler(handler)
        codes = [getattr(r, "code", None) for r in records]
        assert codes.count("STORE-JOURNAL-FAILED") == 1  # once per state change
        assert codes.count("STORE-JOURNAL-RECOVERED") == 1
        await node.stop()
        await broker.close()

    run(scenario())
