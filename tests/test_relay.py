"""End to end across a four-tier network, on the in-process broker and on RabbitMQ."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from docaxis.pki import DevPKI
from docaxis.relay import Rejection
from docaxis.transport import Broker, InMemoryBroker, RabbitMQBroker, RetryPolicy
from tests.relay_support import Network, build_network, idle_network, network_pki, subject_changed
from tests.test_transport import run, wait_until

RABBITMQCTL = shutil.which("rabbitmqctl")
FAST = RetryPolicy(delays_ms=(50, 100))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("network-pki"))


@pytest.fixture(params=["memory", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "memory":
        yield None
        return
    if RABBITMQCTL is None:
        pytest.skip("RabbitMQ is not installed here (.ci/run installs and starts it)")
    vhost = f"docaxis-relay-{uuid.uuid4().hex[:10]}"
    subprocess.run([RABBITMQCTL, "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run([RABBITMQCTL, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run([RABBITMQCTL, "delete_vhost", vhost], check=False, capture_output=True)


async def _start(tmp_path: Path, pki: DevPKI, url: str | None, *,
                 journal: bool = True) -> tuple[Network, Broker]:
    broker: Broker = InMemoryBroker(FAST) if url is None else RabbitMQBroker(url, FAST)
    await broker.connect()
    network = build_network(tmp_path, pki, lambda _node: broker)
    for node in network.nodes.values():
        await broker.declare_node(node.node_id)
    for node in network.nodes.values():
        node.journal_intake = journal
        await node.start()
    return network, broker


async def _stop(network: Network, broker: Broker) -> None:
    for node in network.nodes.values():
        await node.stop()
    await broker.close()


def _inbox(network: Network, node: str, agency: str) -> list:  # type: ignore[type-arg]
    return network.nodes[node].store.inbox(agency)


def test_commune_to_commune_across_provinces_and_statuses_back(
    tmp_path: Path, pki: DevPKI, broker_url: str | None,
) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, broker_url)
        sender, recipient = "000.01.05.H43", "000.01.07.H01"
        document = network.document(sender, [recipient])
        acceptance = network.nodes["hoatien"].submit(document, agency=sender)
        assert not acceptance.duplicate
        await wait_until(lambda: len(_inbox(network, "phulo", recipient)) == 1, 30)
        [item] = _inbox(network, "phulo", recipient)
        delivered = network.nodes["phulo"].store.package_bytes(item.sha256)
        assert hashlib.sha256(delivered).hexdigest() == hashlib.sha256(document).hexdigest()
        assert delivered == document  # signed bytes are sacred
        assert network.directory.hops("hoatien", recipient) == [
            "hoatien", "hoavang", "danang", "central", "hanoi", "soctson", "phulo"]
        # statuses 01, 03, 06 travel back to the sender's inbox
        for code in ("01", "03", "06"):
            network.nodes["phulo"].submit(network.status(recipient, document, code),
                                           agency=recipient)
        await wait_until(lambda: len(_inbox(network, "hoatien", sender)) == 3, 30)
        document_id = item.document_id
        trace = network.nodes["hoatien"].store.trace(document_id)
        assert trace.statuses[recipient][0] == "06"
        # the origin sees the whole path through hop receipts
        await wait_until(lambda: {e.node for e in network.nodes["hoatien"].store.trace(
            document_id).events if e.kind.startswith("hop:")} >= {
            "hoavang", "danang", "central", "hanoi", "soctson", "phulo"}, 30)
        events = network.nodes["hoatien"].store.trace(document_id).events
        assert any(e.kind == "hop:delivered" and e.node == "phulo" and e.agency == recipient
                   for e in events)
        await _stop(network, broker)

    run(scenario())


def test_fan_out_to_three_recipients_with_statuses_each(
    tmp_path: Path, pki: DevPKI, broker_url: str | None,
) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, broker_url)
        sender = "000.00.00.G22"
        recipients = {"000.01.05.H43": "hoatien", "000.02.05.H43": "hoason",
                      "000.01.07.H01": "phulo"}
        document = network.document(sender, list(recipients), number="77")
        network.nodes["central"].submit(document, agency=sender)
        await wait_until(lambda: all(len(_inbox(network, node, code)) == 1
                                     for code, node in recipients.items()), 30)
        for code, node in recipients.items():
            network.nodes[node].submit(network.status(code, document, "03"), agency=code)
        network.nodes["hoason"].submit(network.status("000.02.05.H43", document, "06"),
                                       agency="000.02.05.H43")
        await wait_until(lambda: len(_inbox(network, "central", sender)) == 4, 30)
        [item] = _inbox(network, "hoatien", "000.01.05.H43")
        statuses = network.nodes["central"].store.trace(item.document_id).statuses
        assert {k: v[0] for k, v in statuses.items()} == {
            "000.01.05.H43": "03", "000.02.05.H43": "06", "000.01.07.H01": "03"}
        # each recipient got the package exactly once
        for code, node in recipients.items():
            assert len(network.nodes[node].store.inbox(code, include_acknowledged=True)) == 1
        await _stop(network, broker)

    run(scenario())


def test_duplicate_post_gets_the_same_acceptance_and_one_delivery(
    tmp_path: Path, pki: DevPKI, broker_url: str | None,
) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, broker_url)
        sender, recipient = "000.00.00.H43", "000.00.00.H01"
        document = network.document(sender, [recipient], number="5")
        first = network.nodes["danang"].submit(document, agency=sender)
        again = network.nodes["danang"].submit(document, agency=sender)
        assert again.duplicate and again.accepted_at == first.accepted_at
        await wait_until(lambda: len(_inbox(network, "hanoi", recipient)) == 1, 30)
        # the second post produced no second hand-over anywhere
        another = network.document(sender, [recipient], number="6")
        network.nodes["danang"].submit(another, agency=sender)
        await wait_until(lambda: len(_inbox(network, "hanoi", recipient)) == 2, 30)
        shas = [i.sha256 for i in _inbox(network, "hanoi", recipient)]
        assert len(set(shas)) == 2
        await _stop(network, broker)

    run(scenario())


@pytest.mark.parametrize("journal", [False, True], ids=["answered-after-commit", "journaled"])
def test_api_submissions_arriving_while_others_are_checked_share_one_transaction(
    tmp_path: Path, pki: DevPKI, journal: bool,
) -> None:
    """Group commit at the API: a submission that arrives while earlier ones are being
    checked joins their transaction (one ``accepted_at`` for all) instead of waiting
    for one of its own; a refused one among them takes nobody down with it. Answered
    from the intake journal, each has the time of its own append, and they are logged
    together all the same (their log events share the transaction's time)."""
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, None, journal=journal)
        node, sender = network.nodes["danang"], "000.00.00.H43"
        documents = [network.document(sender, ["000.00.00.H01"], number=f"G{i}")
                     for i in range(6)]
        documents[3] = subject_changed(documents[3])

        async def post(document: bytes, turns: int) -> object:
            for _ in range(turns):  # arrive a few turns of the event loop after the first
                await asyncio.sleep(0)
            try:
                return await node.submit_async(document, agency=sender)
            except Rejection as refused:
                return refused

        outcomes = await asyncio.gather(*(post(d, turns) for turns, d in enumerate(documents)))
        refused = outcomes.pop(3)
        assert isinstance(refused, Rejection) and refused.code == "EDX-SIG-DIGEST"
        assert not any(outcome.duplicate for outcome in outcomes)  # type: ignore[attr-defined]
        if not journal:
            assert len({outcome.accepted_at  # type: ignore[attr-defined]
                        for outcome in outcomes}) == 1
        else:
            assert node.intake is not None
            await wait_until(lambda: node.intake is not None and node.intake.unlogged == 0, 10)
            logged = {event.at for outcome in outcomes
                      for event in node.store.trace(
                          outcome.business_key.split("|")[1]).events  # type: ignore[attr-defined]
                      if event.kind == "received"}
            assert len(logged) == 1  # one transaction (its time on each log event)
        await _stop(network, broker)

    run(scenario())


def test_api_commits_small_batches_on_the_event_loop_never_waiting_there_for_a_writer(
    tmp_path: Path, pki: DevPKI,
) -> None:
    """On a local SQLite store the API's transaction of a small batch runs on the event
    loop (a worker thread's hand-off cost more than the transaction); while another
    writer — another process of the node on the same file — holds the writer lock, the
    wait for it happens in a worker thread: the loop goes on serving, and the
    submission is committed (on the loop) once the lock is free. After a transaction the
    store failed (an outage: 503), the next runs in a worker thread, and once one gets
    through the loop takes them again. On a store that is not local (PostgreSQL) the
    transaction runs in a worker thread. (Without the intake journal: with it, the API
    answers from the journal and logs in a worker thread.)"""
    import threading

    from docaxis.store import Store

    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, None, journal=False)
        node, sender = network.nodes["danang"], "000.00.00.H43"
        loop_thread = threading.get_ident()
        committed_on: list[int] = []
        accept_many = node.store.accept_many
        outage: list[OSError] = []

        def recorded(accepts):  # type: ignore[no-untyped-def]
            committed_on.append(threading.get_ident())
            if outage:
                raise outage.pop()
            return accept_many(accepts)

        node.store.accept_many = recorded  # type: ignore[method-assign]
        documents = [network.document(sender, ["000.00.00.H01"], number=f"L{i}")
                     for i in range(6)]
        assert not (await node.submit_async(documents[0], agency=sender)).duplicate
        assert committed_on == [loop_thread]

        other = Store(node.store.url, node.store.blobs.root)  # another process's store
        me = threading.get_ident()
        assert other.hold_writer(for_thread=me, wait=False)
        # (were the loop to wait for the lock itself, it would stall until this fires)
        unstall = threading.Timer(5.0, other.release_writer, args=(me,))
        unstall.start()
        submission = asyncio.ensure_future(node.submit_async(documents[1], agency=sender))
        ticks, started = 0, asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < 0.5:  # the loop serves on
            await asyncio.sleep(0.01)
            ticks += 1
        unstall.cancel()
        assert ticks >= 10 and not submission.done()
        other.release_writer(me)
        assert not (await asyncio.wait_for(submission, 30)).duplicate
        assert committed_on == [loop_thread] * 2
        other.close()

        outage.append(OSError(28, "No space left on device"))  # the store fails once
        with pytest.raises(OSError):
            await node.submit_async(documents[2], agency=sender)
        assert not (await node.submit_async(documents[3], agency=sender)).duplicate
        assert not (await node.submit_async(documents[4], agency=sender)).duplicate
        assert committed_on[2:] == [loop_thread, committed_on[3], loop_thread]
        assert committed_on[3] != loop_thread  # the one after the outage: in a thread

        node.store.local = False  # as on PostgreSQL: a network round trip
        assert not (await node.submit_async(documents[5], agency=sender)).duplicate
        assert committed_on[5] != loop_thread
        await _stop(network, broker)

    run(scenario())


def test_api_submissions_wait_while_the_nodes_hand_overs_lag(
    tmp_path: Path, pki: DevPKI,
) -> None:
    """Backpressure at the API, as at the hop's receiver: while more hand-overs are in
    flight than the node allows, a new submission waits (its bytes are not piled up in
    memory behind hand-overs the node cannot send as fast); it is accepted once they
    drain."""
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, None)
        node, sender = network.nodes["danang"], "000.00.00.H43"
        document = network.document(sender, ["000.00.00.H01"], number="B1")
        lagging = set(range(10**9, 10**9 + 2 * node.prefetch + 1))  # (no such rows)
        node.outbox.in_flight.update(lagging)
        submission = asyncio.ensure_future(node.submit_async(document, agency=sender))
        done, _ = await asyncio.wait({submission}, timeout=1.0)
        assert not done and node.store.trace(
            _document_id(document)).events == []  # nothing logged meanwhile
        node.outbox._release([_Row(i) for i in lagging])  # the hand-overs are done
        acceptance = await asyncio.wait_for(submission, 30)
        assert not acceptance.duplicate
        await _stop(network, broker)

    run(scenario())


@dataclasses.dataclass(frozen=True)
class _Row:
    id: int


def _document_id(document: bytes) -> str:
    from docaxis.edxml import parse

    return parse(document).package.document_id or ""


def test_refusals_at_the_first_node(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, None)
        node = network.nodes["danang"]
        document = network.document("000.00.00.H43", ["000.00.00.H01"], number="9")
        with pytest.raises(Rejection) as caught:
            node.submit(document, agency="000.00.05.H43")  # posting as another agency
        assert caught.value.code == "RELAY-NOT-SENDER"
        with pytest.raises(Rejection) as caught:
            node.submit(subject_changed(document), agency="000.00.00.H43")
        assert caught.value.code == "EDX-SIG-DIGEST"
        with pytest.raises(Rejection) as caught:
            node.submit(b"<not-xml", agency="000.00.00.H43")
        assert caught.value.code == "EDX-XML-MALFORMED"
        unknown = network.document("000.00.00.H43", ["000.00.00.H02"], number="10")
        with pytest.raises(Rejection) as caught:
            node.submit(unknown, agency="000.00.00.H43")
        assert caught.value.code == "RELAY-UNKNOWN-DESTINATION"
        assert node.store.pending_outbox() == []  # nothing refused was logged or routed
        await _stop(network, broker)

    run(scenario())


def test_poison_package_is_parked_at_the_next_node_and_the_origin_is_told(
    tmp_path: Path, pki: DevPKI, broker_url: str | None,
) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, broker_url)
        sender, recipient = "000.00.00.H43", "000.00.00.H01"
        document = network.document(sender, [recipient], number="13")
        # the next node (central) distrusts this sender's CA: the package passes danang
        # and fails at central
        central = network.nodes["central"]
        from docaxis.dsig import TrustStore, VerificationPolicy, Verifier

        central.verifier = Verifier(VerificationPolicy(TrustStore.load(
            [pki.root_path], crls=[])))  # no CRLs: revocation unknown → refused there
        acceptance = network.nodes["danang"].submit(document, agency=sender)
        parked: list = []  # type: ignore[type-arg]

        async def poll() -> None:
            while not parked:
                parked.extend(await broker.parked("central"))
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), 30)
        assert parked[0].body == document
        assert "EDX-SIG-REVOCATION-UNKNOWN" in parked[0].headers["x-docaxis-parked-reason"]
        await wait_until(lambda: any(e.kind == "hop:rejected" and e.node == "central"
                                     for e in network.nodes["danang"].store.trace(
                                         acceptance_document(network, acceptance)).events), 30)
        # the sending agency finds a rejection notice (with the stable codes) in its inbox
        import json

        danang = network.nodes["danang"]
        await wait_until(lambda: any(i.kind == "rejection" for i in danang.store.inbox(sender)), 30)
        [notice] = [i for i in danang.store.inbox(sender) if i.kind == "rejection"]
        body = json.loads(danang.store.package_bytes(notice.sha256))
        assert body["rejected_by_node"] == "central" and body["package_sha256"] == acceptance.sha256
        assert "EDX-SIG-REVOCATION-UNKNOWN" in {r.get("code") for r in body["reasons"]}
        # central keeps running: a good package still goes through it
        central.verifier = network.nodes["danang"].verifier
        other = network.document(sender, [recipient], number="14")
        network.nodes["danang"].submit(other, agency=sender)
        await wait_until(lambda: len(_inbox(network, "hanoi", recipient)) == 1, 30)
        await _stop(network, broker)

    run(scenario())


def test_a_recipient_unknown_at_a_later_node_is_reported_to_the_sender(
    tmp_path: Path, pki: DevPKI, broker_url: str | None,
) -> None:
    """Directories drift: danang knows Hà Nội's agency, central (not yet updated) does not.
    The other recipient still gets the document; the sender is told about the one that
    could not be reached, with the stable code."""
    import json

    from docaxis.directory import Directory

    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, broker_url)
        sender, lost, reached = "000.00.00.H43", "000.00.00.H01", "000.00.00.G22"
        central = network.nodes["central"]
        central.directory = Directory(dict(central.directory.nodes), {
            code: agency for code, agency in central.directory.agencies.items()
            if code != lost})
        document = network.document(sender, [lost, reached], number="15")
        network.nodes["danang"].submit(document, agency=sender)
        await wait_until(lambda: len(_inbox(network, "central", reached)) == 1, 30)
        danang = network.nodes["danang"]
        await wait_until(lambda: any(i.kind == "rejection" for i in danang.store.inbox(sender)), 30)
        [notice] = [i for i in danang.store.inbox(sender) if i.kind == "rejection"]
        body = json.loads(danang.store.package_bytes(notice.sha256))
        assert body["recipient"] == lost and body["rejected_by_node"] == "central"
        assert [r["code"] for r in body["reasons"]] == ["RELAY-UNKNOWN-DESTINATION"]
        assert _inbox(network, "hanoi", lost) == []
        await _stop(network, broker)

    run(scenario())


def acceptance_document(network: Network, acceptance) -> str:  # type: ignore[no-untyped-def]
    row = network.nodes["danang"].store.package(acceptance.sha256)
    assert row is not None and row.document_id
    return row.document_id


def test_the_demo_runs_and_exits_zero(tmp_path: Path) -> None:
    import sys

    result = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "cli.py"),
                             "demo", "--in-process", "--dir", str(tmp_path)],
                            capture_output=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    out = result.stdout.decode()
    assert out.count("delivered") >= 2 and "NOT delivered" not in out
    assert "latest status of 000.01.07.H01: 06" in out
    assert "same acceptance, one delivery: yes" in out


def test_recall_of_a_delivered_document_travels_and_is_linked(
    tmp_path: Path, pki: DevPKI, broker_url: str | None,
) -> None:
    import datetime as dt

    from docaxis.edxml import Business, DocumentBuilder, parse, write
    from tests.relay_support import organization

    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, broker_url)
        sender, recipient = "000.00.05.H43", "000.01.07.H01"
        document = network.document(sender, [recipient], number="31")
        original_id = parse(document).package.document_id
        network.nodes["hoavang"].submit(document, agency=sender)
        await wait_until(lambda: len(_inbox(network, "phulo", recipient)) == 1, 30)
        recall = (DocumentBuilder().sender(organization(sender))
                  .recipient(organization(recipient)).code("31", "UBND")
                  .promulgation(dt.date(2024, 5, 3)).document_type(1, "Công văn")
                  .subject("Thu hồi văn bản 31/UBND")
                  .business(Business(document_id=original_id, business_doc_type=1,
                                     business_doc_reason="Ban hành nhầm"))
                  .build())
        signed = network.signer(sender).sign(write(recall))
        network.nodes["hoavang"].submit(signed, agency=sender)
        await wait_until(lambda: len(_inbox(network, "phulo", recipient)) == 2, 30)
        kinds = [parse(network.nodes["phulo"].store.package_bytes(i.sha256)).package
                 .business_doc_type for i in _inbox(network, "phulo", recipient)]
        assert kinds == [0, 1]
        for node in ("hoavang", "phulo"):
            events = network.nodes[node].store.trace(original_id).events
            assert any(e.kind == "recall" for e in events), node
        await _stop(network, broker)

    run(scenario())


def test_the_sweep_takes_over_a_dead_processs_hand_overs_at_once_and_leaves_a_live_ones(
    tmp_path: Path, pki: DevPKI,
) -> None:
    """Outbox rows name the process that owes them. A row owed by a process that died is
    handed over by the next sweep, without waiting out the grace; one owed by a live
    process is left to it; this process's own wait out the grace."""
    import sys

    from docaxis.edxml import parse
    from docaxis.store import process_token, token_for

    def token_of(process: subprocess.Popen[bytes]) -> str:
        return token_for(process.pid)

    async def scenario() -> None:
        network, broker = await idle_network(tmp_path, pki)
        danang = network.nodes["danang"]  # not started: no hand-over task, no sweeper

        def commit_as(owner: str, number: str) -> None:
            document = network.document("000.00.00.H43", ["000.00.00.H01"], number=number)
            danang.store.claimant = owner
            plan = danang.pipeline.plan(parse(document), received_from=None, origin="danang",
                                        from_parent=False)
            danang.store.accept_many([plan.accept])

        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            commit_as(token_of(worker), "61")  # a live worker owes this one
            gone = subprocess.Popen([sys.executable, "-c", "pass"])
            dead = token_of(gone)  # readable until reaped, even once it has exited
            gone.wait()
            commit_as(dead, "62")  # its owner was killed before handing it over
            danang.store.claimant = process_token()
            commit_as(danang.store.claimant, "63")  # this process's own, fresh
            assert await danang.dispatch_once(older_than=60) == 1  # only the dead one's
            pending = danang.store.pending_outbox()
            assert {item.claimed_by for item in pending} == {token_of(worker),
                                                             danang.store.claimant}
            worker.kill()
            worker.wait()
            assert await danang.dispatch_once(older_than=60) == 1  # now the worker's too
            assert await danang.dispatch_once(older_than=0) == 1  # own, past the grace
            assert danang.store.pending_outbox() == []
        finally:
            if worker.poll() is None:
                worker.kill()
        await _stop(network, broker)

    run(scenario())
