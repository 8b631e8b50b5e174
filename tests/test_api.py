"""The agency HTTP API: authentication, authorization, the posting and inbox flow."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from docaxis.api import create_app
from docaxis.pki import DevPKI
from docaxis.transport import InMemoryBroker
from tests.relay_support import build_network, network_pki
from tests.test_transport import run, wait_until


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("api-pki"))


def test_api_flow_and_authorization(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        broker = InMemoryBroker()
        network = build_network(tmp_path, pki, lambda _node: broker)
        for node in network.nodes.values():
            await broker.declare_node(node.node_id)
            await node.start()
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        sender, recipient = "000.00.00.H43", "000.00.00.H01"
        sender_token = danang.store.issue_credential(sender)
        other_token = danang.store.issue_credential("000.00.05.H43")
        recipient_token = hanoi.store.issue_credential(recipient)
        document = network.document(sender, [recipient], number="21")

        def client(node):  # type: ignore[no-untyped-def]
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(node)),
                                     base_url="http://node")

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        async with client(danang) as api:
            # 401: no token, bad token
            assert (await api.post("/v1/packages", content=document)).status_code == 401
            bad = await api.post("/v1/packages", content=document, headers=auth("dx_nope"))
            assert bad.status_code == 401 and bad.json()["error"] == "API-UNAUTHENTICATED"
            # 403: posting as another agency
            forged = await api.post("/v1/packages", content=document, headers=auth(other_token))
            assert forged.status_code == 403 and forged.json()["error"] == "RELAY-NOT-SENDER"
            # 422 with the validator's / verifier's codes
            broken = await api.post("/v1/packages", content=b"<x", headers=auth(sender_token))
            assert broken.status_code == 422 and broken.json()["error"] == "EDX-XML-MALFORMED"
            tampered = await api.post("/v1/packages", headers=auth(sender_token),
                                      content=document.replace(b"V/v", b"V/x"))
            assert tampered.json()["error"] == "EDX-SIG-DIGEST"
            # 202, and a repeat gets the same acceptance
            first = await api.post("/v1/packages", content=document, headers=auth(sender_token))
            assert first.status_code == 202, first.text
            again = await api.post("/v1/packages", content=document, headers=auth(sender_token))
            assert again.json()["duplicate"] is True
            assert again.json()["accepted_at"] == first.json()["accepted_at"]
            spec = await api.get("/openapi.json")
            assert "/v1/packages" in spec.json()["paths"]
        await wait_until(lambda: len(hanoi.store.inbox(recipient)) == 1, 30)
        async with client(hanoi) as api:
            # 403: reading another agency's inbox
            peek = await api.get(f"/v1/agencies/{sender}/inbox", headers=auth(recipient_token))
            assert peek.status_code == 403
            listing = await api.get(f"/v1/agencies/{recipient}/inbox",
                                    headers=auth(recipient_token))
            [item] = listing.json()
            fetched = await api.get(f"/v1/agencies/{recipient}/inbox/{item['id']}",
                                    headers=auth(recipient_token))
            assert fetched.content == document  # the exact signed bytes
            ack = await api.post(f"/v1/agencies/{recipient}/inbox/{item['id']}/ack",
                                 headers=auth(recipient_token))
            assert ack.json()["state"] == "acknowledged"
            assert (await api.get(f"/v1/agencies/{recipient}/inbox",
                                  headers=auth(recipient_token))).json() == []
            status = network.status(recipient, document, "03")
            wrong = await api.post("/v1/packages", content=status, headers=auth(recipient_token))
            assert wrong.json()["error"] == "API-WRONG-KIND"
            posted = await api.post("/v1/status", content=status, headers=auth(recipient_token))
            assert posted.status_code == 202, posted.text
        await wait_until(lambda: len(danang.store.inbox(sender)) == 1, 30)
        async with client(danang) as api:
            document_id = item["document_id"]
            trace = await api.get(f"/v1/trace/{document_id}", headers=auth(sender_token))
            assert trace.status_code == 200
            assert trace.json()["statuses"][recipient]["status_code"] == "03"
            nosy = await api.get(f"/v1/trace/{document_id}", headers=auth(other_token))
            assert nosy.status_code == 404  # foreign answers as unknown does
        for node in network.nodes.values():
            await node.stop()

    run(scenario())
