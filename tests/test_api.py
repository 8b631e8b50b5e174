"""The agency HTTP API: authentication, authorization, the posting and inbox flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from docaxis.api import create_app
from docaxis.api._app import _LANE_ROUTES, _LanedApp
from docaxis.edxml import parse
from docaxis.pki import DevPKI
from docaxis.store import AgencyBinding
from docaxis.transport import InMemoryBroker
from tests.relay_support import build_network, network_pki, subject_changed
from tests.test_transport import run, wait_until


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("api-pki"))


@pytest.mark.parametrize("inline_check_bytes", [None, 0],
                         ids=["small-checked-on-the-loop", "every-package-in-a-thread"])
def test_api_flow_and_authorization(tmp_path: Path, pki: DevPKI,
                                    monkeypatch: pytest.MonkeyPatch,
                                    inline_check_bytes: int | None) -> None:
    if inline_check_bytes is not None:  # the path large packages take
        monkeypatch.setattr("docaxis.relay._node.INLINE_CHECK_BYTES", inline_check_bytes)

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
                                      content=subject_changed(document))
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


def test_the_package_lane_answers_as_the_declared_routes_do(tmp_path: Path, pki: DevPKI) -> None:
    """``POST /v1/packages`` and ``/v1/status`` are served by a lane ahead of FastAPI's
    router (a quarter of a package's CPU was the framework's): every answer — each error
    shape and header, and the acceptance — equals the declared route's, which answers
    when the lane is taken out of the app."""
    async def scenario() -> None:
        broker = InMemoryBroker()
        network = build_network(tmp_path, pki, lambda _node: broker)
        danang = network.nodes["danang"]
        await network.start()
        sender, recipient = "000.00.00.H43", "000.00.00.H01"
        token = danang.store.issue_credential(sender)
        other = danang.store.issue_credential("000.00.05.H43")
        document = network.document(sender, [recipient], number="77")
        bearer = {"Authorization": f"Bearer {token}"}
        requests: list[tuple[str, bytes, dict[str, str]]] = [
            ("/v1/packages", document, {}),
            ("/v1/packages", document, {"Authorization": "Basic eDp5"}),
            ("/v1/packages", document, {"Authorization": "Bearer dx_unknown"}),
            ("/v1/packages", document, {"Authorization": f"Bearer {other}"}),
            ("/v1/packages", document, {**bearer, "Content-Type": "text/plain"}),
            ("/v1/packages", b"x" * (danang.limits.max_bytes + 1), bearer),
            ("/v1/packages", document, {**bearer, "Content-Length": "12x"}),
            ("/v1/packages", b"<x", bearer),
            ("/v1/packages", subject_changed(document), bearer),
            ("/v1/status", document, bearer),
            ("/v1/packages", document, bearer),
            ("/v1/packages", document, bearer),  # the repeat: the same acceptance
        ]

        async def answers(app: Any) -> list[tuple[int, Any, dict[str, str]]]:
            out = []
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://node") as api:
                for path, body, headers in requests:
                    answer = await api.post(path, content=body, headers=headers)
                    out.append((answer.status_code, answer.json(),
                                {k: v for k, v in answer.headers.items()
                                 if k in ("www-authenticate", "retry-after",
                                          "content-type")}))
            return out

        with_lane = create_app(danang)
        without = create_app(danang)
        assert isinstance(without, _LanedApp) and without.lane is not None, "the lane is in"
        without.lane = None
        laned, routed = await answers(with_lane), await answers(without)
        assert [status for status, _, _ in laned] == [401, 401, 401, 403, 415, 413, 400,
                                                      422, 422, 422, 202, 202]
        assert laned[-1][1]["duplicate"] is True
        assert laned[1][2]["www-authenticate"] == "Bearer"
        # the routed app saw the package already (the lane's pass accepted it): duplicate
        assert laned[:-2] == routed[:-2]
        assert [r[1] | {"duplicate": None} for r in laned[-2:]] == \
            [r[1] | {"duplicate": None} for r in routed[-2:]]
        # and the lane does serve them: without the declared routes it still accepts
        lane_only = create_app(danang)
        lane_only.router.routes = [r for r in lane_only.router.routes
                                   if getattr(r, "path", "") not in _LANE_ROUTES]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lane_only),
                                     base_url="http://node") as api:
            fresh = network.document(sender, [recipient], number="78")
            assert (await api.post("/v1/packages", content=fresh,
                                   headers=bearer)).status_code == 202
            assert (await api.get("/v1/packages")).status_code == 404
        await network.stop()

    run(scenario())


def test_a_token_bound_to_a_subtree_acts_for_every_agency_in_it_and_no_other(
        tmp_path: Path, pki: DevPKI) -> None:
    """A district's shared document system: one token for the district's agency and the
    communes below it (issue #14, item 1: the REST API's tokens bound as VXP systems)."""
    async def scenario() -> None:
        broker = InMemoryBroker()
        network = build_network(tmp_path, pki, lambda _node: broker)
        await network.start()
        hoavang = network.nodes["hoavang"]
        district, commune, province = "000.00.05.H43", "000.01.05.H43", "000.00.00.H43"
        token = hoavang.store.issue_credential(
            district, binding=AgencyBinding((), ("hoavang",)))
        bearer = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(hoavang)),
                                     base_url="http://node") as api:
            for sender, number in ((district, "81"), (commune, "82")):
                answer = await api.post("/v1/packages", headers=bearer, content=network.document(
                    sender, ["000.00.00.H01"], number=number))
                assert answer.status_code == 202, answer.text
            outside = await api.post("/v1/packages", headers=bearer, content=network.document(
                province, ["000.00.00.H01"], number="83"))
            assert outside.status_code == 403 and outside.json()["error"] == "RELAY-NOT-SENDER"
            assert (await api.get(f"/v1/agencies/{district}/inbox",
                                  headers=bearer)).status_code == 200
            assert (await api.get(f"/v1/agencies/{commune}/inbox",
                                  headers=bearer)).status_code == 200
            forbidden = await api.get(f"/v1/agencies/{province}/inbox", headers=bearer)
            assert forbidden.status_code == 403 and forbidden.json()["error"] == "API-FORBIDDEN"
            commune_doc = parse(network.document(commune, ["000.00.00.H01"], number="82"))
            trace = await api.get(f"/v1/trace/{commune_doc.package.document_id}",
                                  headers=bearer)
            assert trace.status_code == 200
        await network.stop()

    run(scenario())
