"""Issue #10 at a node: altered packages never delivered, bounded request bodies, ids that
never crash, values that fit their columns, and authorization by verified identity."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from docaxis.api import create_app
from docaxis.edxml import DocumentBuilder, write
from docaxis.pki import DevPKI
from docaxis.relay import RelayNode
from docaxis.relay._node import FROM_NODE, KIND, ORIGIN
from docaxis.transport import Broker, InMemoryBroker, Message
from tests.relay_support import Network, build_network, network_pki, organization
from tests.test_relay import FAST, broker_url  # noqa: F401  (fixture)
from tests.test_transport import run, wait_until

SENDER, RECIPIENT, OTHER = "000.00.00.H43", "000.00.00.H01", "000.00.05.H43"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("trust-node-pki"))


async def _start(tmp_path: Path, pki: DevPKI, url: str | None = None) -> tuple[Network, Broker]:
    from docaxis.transport import RabbitMQBroker

    broker: Broker = InMemoryBroker(FAST) if url is None else RabbitMQBroker(url, FAST)
    await broker.connect()
    network = build_network(tmp_path, pki, lambda _node: broker)
    await network.start()
    return network, broker


def _client(node: RelayNode) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(node)),
                             base_url="http://node")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _commented(document: bytes) -> dict[str, bytes]:
    """The document altered by a comment inside each signed value a reader uses."""
    text = document.decode()
    out = {}
    for name, pattern in (("Subject", r"<edXML:Subject>V/v"),
                          ("DocumentId", r"<edXML:DocumentId>000\.00"),
                          ("To", r"<edXML:To>\s*<edXML:OrganId>000\.00"),
                          ("attachment", r"<edXML:ContentTransferEncoded>....")):
        match = re.search(pattern, text)
        assert match is not None, name
        out[name] = (text[:match.end()] + "<!---->" + text[match.end():]).encode()
    return out


def test_comment_altered_packages_are_refused_at_the_api_and_at_a_hop(
        tmp_path: Path, pki: DevPKI, broker_url: str | None) -> None:  # noqa: F811
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki, broker_url)
        danang, central, hanoi = (network.nodes[n] for n in ("danang", "central", "hanoi"))
        token = danang.store.issue_credential(SENDER)
        document = network.document(SENDER, [RECIPIENT], number="31")
        status = network.status(RECIPIENT, document, "03")
        altered = _commented(document)
        altered["StatusCode"] = re.sub(rb"<edXML:StatusCode>0", b"<edXML:StatusCode>0<!---->",
                                       status, count=1)
        async with _client(danang) as api:
            for name, data in altered.items():
                path = "/v1/status" if name == "StatusCode" else "/v1/packages"
                answer = await api.post(path, content=data, headers=_auth(token))
                assert answer.status_code == 422, name
                assert answer.json()["error"] == "EDX-XML-COMMENT", name
        # at a hop: as if a compromised danang passed them on to central
        for data in altered.values():
            await broker.publish("central", Message(data, {KIND: "package", ORIGIN: "danang",
                                                           FROM_NODE: "danang"}))
        parked: list[Message] = []

        async def poll() -> None:
            while len(parked) < len(altered):
                parked.extend(await broker.parked("central"))
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), 30)
        assert all("EDX-XML-COMMENT" in m.headers["x-docaxis-parked-reason"] for m in parked)
        # a good package still flows, and none of the altered ones was ever delivered
        danang.submit(document, agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
        [item] = hanoi.store.inbox(RECIPIENT)
        assert hanoi.store.package_bytes(item.sha256) == document
        assert central.store.package(item.sha256) is not None
        await network.stop()
        await broker.close()

    run(scenario())


def test_request_bodies_are_capped_before_they_are_read(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki)
        danang = network.nodes["danang"]
        danang.limits = type(danang.limits)(max_bytes=64 * 1024)
        token = danang.store.issue_credential(SENDER)
        read: list[int] = []

        async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length
            for _ in range(1000):
                read.append(1)
                yield b"x" * 1024

        async with _client(danang) as api:
            declared = await api.post("/v1/packages", headers={
                **_auth(token), "Content-Length": str(10 * 2**30)}, content=b"")
            assert declared.status_code == 413
            assert declared.json()["error"] == "API-TOO-LARGE"
            assert "[limits] max_package_bytes" in declared.json()["message"]  # where to raise it
            streamed = await api.post("/v1/packages", headers=_auth(token), content=body())
            assert streamed.status_code == 413 and streamed.json()["error"] == "API-TOO-LARGE"
            assert len(read) < 100  # refused while streaming, not after reading it all
            bad = await api.post("/v1/packages", headers={**_auth(token),
                                                          "Content-Length": "12x"}, content=b"")
            assert bad.status_code in (400, 413, 422)
        await network.stop()
        await broker.close()

    run(scenario())


def test_inbox_ids_beyond_the_column_answer_404(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki)
        hanoi = network.nodes["hanoi"]
        token = hanoi.store.issue_credential(RECIPIENT)
        async with _client(hanoi) as api:
            for item in (2**31, 2**63, 2**70, -1, 0):
                got = await api.get(f"/v1/agencies/{RECIPIENT}/inbox/{item}",
                                    headers=_auth(token))
                assert got.status_code == 404, item
                ack = await api.post(f"/v1/agencies/{RECIPIENT}/inbox/{item}/ack",
                                     headers=_auth(token))
                assert ack.status_code == 404, item
        await network.stop()
        await broker.close()

    run(scenario())


def test_a_document_id_longer_than_its_column_is_refused(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki)
        builder = (DocumentBuilder().sender(organization(SENDER))
                   .recipient(organization(RECIPIENT)).code("9", "UBND")
                   .document_type(1, "Công văn").subject("V/v")
                   .document_id("000.00.00.H43," + "9" * 600))
        import datetime as dt

        data = network.signer(SENDER).sign(write(
            builder.promulgation(dt.date(2024, 5, 2), "Đà Nẵng").build()))
        from docaxis.relay import Rejection

        with pytest.raises(Rejection) as refused:
            network.nodes["danang"].submit(data, agency=SENDER)
        assert refused.value.code == "RELAY-VALUE-TOO-LONG"
        await network.stop()
        await broker.close()

    run(scenario())


def test_authorization_by_verified_identity(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki)
        danang, hanoi, hoavang = (network.nodes[n] for n in ("danang", "hanoi", "hoavang"))
        sender_token = danang.store.issue_credential(SENDER)
        other_token = hoavang.store.issue_credential(OTHER)
        document = network.document(SENDER, [RECIPIENT], number="41")
        danang.submit(document, agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
        [item] = hanoi.store.inbox(RECIPIENT)
        document_id = item.document_id
        assert document_id

        # another agency reuses the DocumentId: its document is its own; it never sees
        # the sender's trace, and the sender's trace never shows the impostor's package
        impostor = _with_document_id(network, OTHER, [RECIPIENT], document_id)
        hoavang.submit(impostor, agency=OTHER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 2, 30)
        async with _client(danang) as api:
            mine = await api.get(f"/v1/trace/{document_id}", headers=_auth(sender_token))
            assert mine.status_code == 200 and mine.json()["events"]
            assert all(e["agency"] != OTHER for e in mine.json()["events"])
        async with _client(hoavang) as api:
            theirs = await api.get(f"/v1/trace/{document_id}", headers=_auth(other_token))
            unknown = await api.get("/v1/trace/no-such-document", headers=_auth(other_token))
            assert theirs.status_code == 200  # its own document of that id
            assert all(e["agency"] != SENDER for e in theirs.json()["events"])
            assert unknown.status_code == 404
        async with _client(danang) as api:
            foreign = await api.get(f"/v1/trace/{document_id}x", headers=_auth(sender_token))
            assert foreign.status_code == 404
        sender_trace = danang.store.trace(document_id, sender=SENDER)
        assert all(e.agency in (None, SENDER, RECIPIENT) for e in sender_trace.events)

        # a status from an agency that never received the document is refused at its node
        from docaxis.relay import Rejection

        forged_status = network.status(OTHER, document, "03")
        with pytest.raises(Rejection) as refused:
            hoavang.submit(forged_status, agency=OTHER)
        assert refused.value.code == "RELAY-NOT-RECIPIENT"
        # ... and at the document sender's node, if a node passes it on anyway
        await broker.publish("danang", Message(forged_status, {
            KIND: "package", ORIGIN: "hoavang", FROM_NODE: "hoavang"}))
        await _wait_parked(broker, "danang", "RELAY-NOT-RECIPIENT")
        assert OTHER not in danang.store.trace(document_id, sender=SENDER).statuses

        # a recall naming another agency's document is refused where that document is
        # known; at a later hop, the recalling agency's node is told (a rejection notice)
        second = network.document(SENDER, [RECIPIENT], number="43")
        danang.submit(second, agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 3, 30)
        [target] = [i.document_id for i in hanoi.store.inbox(RECIPIENT)
                    if i.document_id not in (document_id,)]
        assert target
        recall = _recall(network, OTHER, [RECIPIENT], target)
        with pytest.raises(Rejection) as refused:
            danang.submit(recall, agency=None)
        assert refused.value.code == "RELAY-NOT-ORIGINAL-SENDER"
        hoavang.submit(recall, agency=OTHER)  # hoavang has never seen the target: passes
        await wait_until(lambda: any(i.kind == "rejection"
                                     for i in hoavang.store.inbox(OTHER)), 30)
        [notice] = [i for i in hoavang.store.inbox(OTHER) if i.kind == "rejection"]
        reasons = json.loads(hoavang.store.package_bytes(notice.sha256))["reasons"]
        assert "RELAY-NOT-ORIGINAL-SENDER" in {r.get("code") for r in reasons}
        assert not any(e.kind == "recall" for e in danang.store.trace(target).events)
        await network.stop()
        await broker.close()

    run(scenario())


async def _wait_parked(broker: Broker, node: str, code: str) -> None:
    parked: list[Message] = []

    async def poll() -> None:
        while not any(code in m.headers.get("x-docaxis-parked-reason", "") for m in parked):
            parked.extend(await broker.parked(node))
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), 30)


def _with_document_id(network: Network, sender: str, recipients: list[str],
                      document_id: str) -> bytes:
    import datetime as dt

    builder = DocumentBuilder().sender(organization(sender))
    for recipient in recipients:
        builder = builder.recipient(organization(recipient))
    package = (builder.code("41", "UBND").promulgation(dt.date(2024, 5, 2), "Việt Nam")
               .document_type(1, "Công văn").subject("V/v mạo danh")
               .document_id(document_id).build())
    return network.signer(sender).sign(write(package))


def _recall(network: Network, sender: str, recipients: list[str], target: str) -> bytes:
    import datetime as dt

    from docaxis.edxml import Business

    builder = DocumentBuilder().sender(organization(sender))
    for recipient in recipients:
        builder = builder.recipient(organization(recipient))
    package = (builder.code("42", "UBND").promulgation(dt.date(2024, 5, 2), "Việt Nam")
               .document_type(1, "Công văn").subject("V/v thu hồi")
               .business(Business(business_doc_type=1, document_id=target)).build())
    return network.signer(sender).sign(write(package))



def test_a_revocation_reaches_a_running_node_within_the_check_interval(
        tmp_path: Path) -> None:
    import time

    from docaxis.dsig import TrustStore, VerificationPolicy, Verifier
    from docaxis.relay import Rejection

    pki = network_pki(tmp_path / "pki")  # its own: this test revokes a certificate

    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki)
        danang = network.nodes["danang"]
        store = TrustStore.load([pki.root_path], crls=[pki.crl_folder], crl_check=0.3)
        danang.verifier = Verifier(VerificationPolicy(store))
        assert not danang.submit(network.document(SENDER, [RECIPIENT], number="51"),
                                 agency=SENDER).duplicate
        pki.revoke(SENDER)  # what `docaxis keys revoke` does: a new CRL file
        revoked_at = time.monotonic()
        number = 52
        while True:
            try:
                danang.submit(network.document(SENDER, [RECIPIENT], number=str(number)),
                              agency=SENDER)
            except Rejection as exc:
                assert "EDX-SIG-REVOKED" in {r.get("code") for r in exc.reasons}
                break
            number += 1
            assert time.monotonic() - revoked_at < 5, "the revocation never took effect"
            await asyncio.sleep(0.05)
        assert time.monotonic() - revoked_at < 0.3 + 2.0
        assert store.crl_reloads >= 1
        await network.stop()
        await broker.close()

    run(scenario())


def test_forged_hop_receipts_are_never_recorded(tmp_path: Path, pki: DevPKI) -> None:
    from docaxis.dsig import StatementSigner

    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki)
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        document = network.document(SENDER, [RECIPIENT], number="61")
        acceptance = danang.submit(document, agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
        document_id = hanoi.store.inbox(RECIPIENT)[0].document_id
        assert document_id
        # the genuine, node-signed receipts arrive and are recorded
        await wait_until(lambda: any(e.kind == "hop:delivered" and e.node == "hanoi"
                                     for e in danang.store.trace(document_id).events), 30)
        before = len(danang.store.trace(document_id).events)

        def forged(node: str, kind: str) -> list[dict[str, object]]:
            return [{"document_id": document_id, "sha256": acceptance.sha256, "node": node,
                     "kind": kind, "at": "2026-01-01T00:00:00+00:00",
                     "agency": RECIPIENT, "detail": "[]"}]

        key, _cert, chain = pki.agency_paths(SENDER)  # an agency's key is not a node's
        agency_signer = StatementSigner.from_files(key, chain)
        central_key = pki.folder / "nodes" / "central"
        central_signer = StatementSigner.from_files(central_key / "key.pem",
                                                    central_key / "chain.pem")
        attempts = [
            json.dumps(forged("hanoi", "rejected")).encode(),  # the old unsigned form
            json.dumps({"statements": [agency_signer.sign(
                json.dumps(forged("hanoi", "rejected")).encode()).to_json()]}).encode(),
            # central's genuine key, speaking for hanoi
            json.dumps({"statements": [central_signer.sign(
                json.dumps(forged("hanoi", "rejected")).encode()).to_json()]}).encode(),
            # central's statement with its body swapped (a receipt central never signed)
            json.dumps({"statements": [{**central_signer.sign(b"[]").to_json(),
                                        "body": base64.b64encode(json.dumps(forged(
                                            "central", "rejected")).encode()).decode()}]}
                       ).encode(),
        ]
        for body in attempts:
            await broker.publish("danang", Message(body, {
                KIND: "hop-receipt", ORIGIN: "danang", FROM_NODE: "central"}))
        # then one genuine statement from central, to know the forged ones were handled
        genuine = json.dumps({"statements": [central_signer.sign(json.dumps(
            forged("central", "received")).encode()).to_json()]}).encode()
        await broker.publish("danang", Message(genuine, {
            KIND: "hop-receipt", ORIGIN: "danang", FROM_NODE: "central"}))
        await wait_until(lambda: len(danang.store.trace(document_id).events) == before + 1, 30)
        events = danang.store.trace(document_id).events
        assert not any(e.kind == "hop:rejected" for e in events)
        assert not any(i.kind == "rejection" for i in danang.store.inbox(SENDER))
        await network.stop()
        await broker.close()

    run(scenario())
