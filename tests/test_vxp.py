"""VXP: agency document systems that speak the national axis protocol connect to a node
unchanged. The client is :class:`docaxis.vxp.VxpClient`, written from VXP.md to behave
as the SDK does (one header map for its life, a constant timestamp, ``\\r\\n`` after the
file, lossy-hex ``hash-file``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from docaxis.api import create_app
from docaxis.directory import Agency
from docaxis.node._demo import DemoNetwork as Network
from docaxis.pki import DevPKI
from docaxis.relay import RelayNode
from docaxis.store import SecretBox, SystemRegistry
from docaxis.store._models import PackageRow
from docaxis.transport import InMemoryBroker
from docaxis.vxp import (
    SignedRequest,
    VxpClient,
    hash_file,
    lossy_hex,
    signature,
    signed_headers,
    timestamp,
)
from tests.relay_support import build_network, network_pki, subject_changed
from tests.test_transport import run

SENDER, RECIPIENT, OTHER = "000.01.05.H43", "000.01.07.H01", "000.02.07.H01"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("vxp-pki"))


# -- the protocol ---------------------------------------------------------------------
def test_the_signature_is_the_sdks_worked_example() -> None:
    """VXP.md §3.1, byte for byte: the header map, the gson JSON, the HMAC keyed by the
    secret's text."""
    headers = signed_headers("000.00.01.H99", "placeholder-secret-a", {},
                             content_type="application/json", stamp="29112026T151952+0887")
    named = dict(headers)
    assert named["XroadVnpt-sign-header"] == (
        '{"XroadVnpt-systemid":"000.00.01.H99","XroadVnpt-timestamp":"29112026T151952+0887",'
        '"XroadVnpt-Content-Type":"application/json"}')
    assert named["XroadVnpt-sign-header-key"] == "systemid;timestamp;Content-Type"
    assert named["XroadVnpt-hash-header"] == \
        "2e77a0c226176781a83172e3a06baaa896f8ed78ae68fe047b8d21c0de4701ea"
    read = SignedRequest.read([(k.lower().encode(), v.encode()) for k, v in headers])
    assert read.verify("placeholder-secret-a") and not read.verify("placeholder-secret-b")


def test_hash_file_is_lossy_hex_and_timestamp_is_the_sdks() -> None:
    digest = bytes.fromhex("7996b222f32a693c0414baa20e70b6cd")
    assert lossy_hex(digest) == "7996b222f32a693c414baa2e70b6cd"
    assert 33 <= len(hash_file(b"x")) <= 64
    stamp = timestamp()
    assert len(stamp) == 20 and stamp[8] == "T" and stamp[15] == "+"


def test_parameters_prefer_the_exact_spelling_and_ignore_case_otherwise() -> None:
    raw = json.dumps({"XroadVnpt-systemid": "s", "XroadVnpt-docid": "N1",
                      "XroadVnpt-docId": "N2", "XroadVnpt-STATUS": "done"}).encode()
    signed = SignedRequest.read([(b"xroadvnpt-systemid", b"s"),
                                 (b"xroadvnpt-sign-header", raw),
                                 (b"xroadvnpt-hash-header", signature("k", raw).encode())])
    assert signed.param("docId") == "N2"  # both travel (VXP.md §3.2): docId wins
    assert signed.param("status") == "done"
    assert signed.param("fromDate") is None


# -- a network whose agency systems speak only VXP -------------------------------------
class Systems:
    """Each node's API app (with its VXP endpoint) and the registries of its systems."""

    def __init__(self, network: Network, folder: Path) -> None:
        self.network, self.folder = network, folder
        self.registries = {node_id: SystemRegistry(node.store, SecretBox(
            folder / f"{node_id}-vxp.key")) for node_id, node in network.nodes.items()}
        self.apps = {node_id: create_app(node, systems=self.registries[node_id])
                     for node_id, node in network.nodes.items()}

    def client(self, node: str, system_id: str, secret: str,
               endpoint: str = "http://axis/vxp") -> VxpClient:
        return VxpClient(endpoint, system_id, secret,
                         transport=httpx.ASGITransport(app=self.apps[node]))


def _count(node: RelayNode) -> int:
    with node.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(PackageRow)) or 0)


def _everywhere(network: Network, agency: Agency) -> None:
    """What a directory sync would do: every node learns the agency."""
    for node in network.nodes.values():
        node.directory = node.directory.overlaid([], [agency])


def vxp_scenario(tmp_path: Path, pki: DevPKI,
                 body: Callable[[Network, Systems], Awaitable[None]]) -> None:
    async def scenario() -> None:
        broker = InMemoryBroker()
        network = build_network(tmp_path / "nodes", pki, lambda _node: broker)
        await network.start()
        try:
            await body(network, Systems(network, tmp_path))
        finally:
            await network.stop()

    run(scenario())


def test_four_tiers_with_vxp_only_status_03_back_and_the_trace_complete(
        tmp_path: Path, pki: DevPKI) -> None:
    async def body(network: Network, systems: Systems) -> None:
        sender_secret = systems.registries["hoatien"].issue("HT-QLVB", agencies=(SENDER,))
        recipient_secret = systems.registries["phulo"].issue("PL-QLVB", agencies=(RECIPIENT,))
        document = network.document(SENDER, [RECIPIENT], number="31")
        async with systems.client("hoatien", "HT-QLVB", sender_secret) as sender, \
                systems.client("phulo", "PL-QLVB", recipient_secret) as recipient:
            sent = await sender.send_edoc(document, sender=SENDER, to=[RECIPIENT])
            assert sent["status"] == "OK" and sent["ErrorCode"] == "0", sent
            doc_id = sent["DocId"]
            assert doc_id == hashlib.sha256(document).hexdigest()[:24]
            # a retried send (no SDK retry, but a user's) answers the same DocId
            assert (await sender.send_edoc(document, sender=SENDER))["DocId"] == doc_id

            async def listed() -> list[dict[str, Any]]:
                answer = await recipient.received()
                return list(answer["data"])

            await wait_until_async(lambda: _nonempty(listed), 30)
            [item] = await listed()
            assert item["from"] == SENDER and item["to"] == RECIPIENT
            assert item["status"] == "initial" and item["messageType"] == "edoc"
            assert "/" not in item["docId"] and "\\" not in item["docId"] \
                and ".." not in item["docId"]
            assert item["created_time"][2] == "/" and len(item["created_time"]) == 19
            assert (await recipient.count())["count"] == 1
            got, data = await recipient.get_edoc(item["docId"])
            assert got["status"] == "OK" and data == document  # the exact bytes, no CRLF
            assert await recipient.download_edoc(item["docId"]) == document
            assert (await recipient.update_status(item["docId"], "done"))["ErrorCode"] == "0"
            assert await listed() == []
            assert (await recipient.count())["count"] == 0
            # the recipient's system answers with status 03, through VXP too
            receipt = network.status(RECIPIENT, document, "03")
            answered = await recipient.send_edoc(receipt, sender=RECIPIENT,
                                                 message_type="status")
            assert answered["status"] == "OK", answered

            async def receipt_listed() -> list[dict[str, Any]]:
                return list((await sender.received("status"))["data"])

            await wait_until_async(lambda: _nonempty(receipt_listed), 30)
            [status] = await receipt_listed()
            assert status["messageType"] == "status" and status["from"] == RECIPIENT
            assert (await sender.count("countReceiveStatus"))["count"] == 1
            _, status_bytes = await sender.get_edoc(status["docId"])
            assert status_bytes == receipt
            # the sender's view: one row per recipient, delivered, status 03
            [row] = (await sender.sent())["data"]
            assert row["senderDocId"] == doc_id
            assert row["receiverDocId"] == item["docId"]
            assert (row["fromCode"], row["toCode"]) == (SENDER, RECIPIENT)
            assert row["receiveStatus"] == "03"
            assert row["receiveStatusDesc"].startswith("da tiep nhan")

            async def delivered() -> bool:  # the recipient node's hop receipt, hop by hop
                [now] = (await sender.sent())["data"]
                return bool(now["sendStatus"] == "done")

            await wait_until_async(delivered, 30)
        trace = network.nodes["hoatien"].store.trace(_document_id(document), sender=SENDER)
        kinds = {event.kind for event in trace.events}
        assert {"received", "delivered"} <= kinds, kinds
        assert trace.statuses[RECIPIENT][0] == "03"
        at_recipient = network.nodes["phulo"].store.trace(_document_id(document),
                                                          sender=SENDER)
        assert "acknowledged" in {event.kind for event in at_recipient.events}

    vxp_scenario(tmp_path, pki, body)


def _document_id(document: bytes) -> str:
    from docaxis.edxml import parse

    return parse(document).package.document_id or ""


async def _nonempty(fetch: Callable[[], Awaitable[list[Any]]]) -> bool:
    return bool(await fetch())


async def wait_until_async(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


def test_one_system_serves_several_agencies_each_copy_its_own(
        tmp_path: Path, pki: DevPKI) -> None:
    """A shared system at a node acts for two agencies there (one registered through
    VXP): a document to both gives two copies with their own ids; ``done`` on one leaves
    the other listed; the REST API sees the same rows (one truth)."""
    async def body(network: Network, systems: Systems) -> None:
        phulo = systems.registries["phulo"]
        admin = phulo.issue("PL-ADMIN", agencies=(RECIPIENT,), may_register=True)
        async with systems.client("phulo", "PL-ADMIN", admin) as registrar:
            agency = json.dumps({"id": "1", "pcode": "000.00.07.H01", "code": OTHER,
                                 "name": "UBND xã Phù Linh", "mail": "", "mobile": "",
                                 "fax": ""}, ensure_ascii=False).encode()
            assert (await registrar.register_agency(agency))["ErrorCode"] == "0"
            assert (await registrar.register_agency(agency))["ErrorCode"] == "0"  # idempotent
        assert network.nodes["phulo"].directory.agencies[OTHER].node == "phulo"
        _everywhere(network, network.nodes["phulo"].directory.agencies[OTHER])
        shared = phulo.issue("PL-SHARED", agencies=(RECIPIENT, OTHER))
        sender_secret = systems.registries["hoatien"].issue("HT", agencies=(SENDER,))
        document = network.document(SENDER, [RECIPIENT, OTHER], number="32")
        async with systems.client("hoatien", "HT", sender_secret) as sender, \
                systems.client("phulo", "PL-SHARED", shared) as system:
            assert (await sender.send_edoc(document, sender=SENDER))["status"] == "OK"

            async def two() -> bool:
                return len((await system.received())["data"]) == 2

            await wait_until_async(two, 30)
            items = (await system.received())["data"]
            assert {i["to"] for i in items} == {RECIPIENT, OTHER}
            assert len({i["docId"] for i in items}) == 2
            first = next(i for i in items if i["to"] == RECIPIENT)
            await system.update_status(first["docId"], "done")
            [left] = (await system.received())["data"]
            assert left["to"] == OTHER
            # one truth: the REST API's inbox of RECIPIENT no longer lists it, and a REST
            # acknowledgement of OTHER's copy empties the VXP list
            store = network.nodes["phulo"].store
            assert store.inbox(RECIPIENT) == []
            [rest_item] = store.inbox(OTHER)
            store.acknowledge(OTHER, rest_item.id, node="phulo")
            assert (await system.received())["data"] == []
            # a fail keeps a copy listed, with the system's word
        at = network.nodes["phulo"].store.trace(_document_id(document), sender=SENDER)
        assert [e.agency for e in at.events if e.kind == "acknowledged"].count(OTHER) == 1

    vxp_scenario(tmp_path, pki, body)


def test_fail_and_processing_keep_a_copy_listed_and_stale_headers_filter_nothing(
        tmp_path: Path, pki: DevPKI) -> None:
    async def body(network: Network, systems: Systems) -> None:
        recipient_secret = systems.registries["phulo"].issue("PL", agencies=(RECIPIENT,))
        sender_secret = systems.registries["hoatien"].issue("HT", agencies=(SENDER,))
        documents = [network.document(SENDER, [RECIPIENT], number=str(n)) for n in (41, 42)]
        async with systems.client("hoatien", "HT", sender_secret) as sender, \
                systems.client("phulo", "PL", recipient_secret) as system:
            for document in documents:
                assert (await sender.send_edoc(document, sender=SENDER))["status"] == "OK"

            async def both() -> bool:
                return len((await system.received())["data"]) == 2

            await wait_until_async(both, 30)
            one, two = (await system.received())["data"]
            # bkav's spelling: docid on updateStatus; the map keeps it (VXP.md §3.2)
            answer = await system.update_status(one["docId"], "fail", "Không đọc được tệp",
                                                key="docid")
            assert answer["ErrorCode"] == "0"
            assert system.entries["docid"] == one["docId"]
            assert system.entries["status"] == "fail"
            listed = (await system.received())["data"]  # stale status: no filter
            assert {i["docId"] for i in listed} == {one["docId"], two["docId"]}
            failed = next(i for i in listed if i["docId"] == one["docId"])
            assert failed["status"] == "fail" and failed["status_desc"] == "Không đọc được tệp"
            # getEdoc(docId=two) while the stale docid=one still travels: docId wins
            got, data = await system.get_edoc(two["docId"])
            assert got["status"] == "OK"
            assert data == next(d for d in documents
                                if hashlib.sha256(d).hexdigest()[:24] == two["docId"][:24])
            assert system.entries["docid"] == one["docId"]  # both were sent
            await system.update_status(two["docId"], "processing")
            assert len((await system.received())["data"]) == 2
            await system.update_status(two["docId"], "done")
            await system.update_status(two["docId"], "done")  # a retried POST: idempotent
            assert [i["docId"] for i in (await system.received())["data"]] == [one["docId"]]
            # the sender's list: a stale docId from another call filters nothing
            sender.entries["docId"] = two["docId"]  # not one of the sender's DocIds
            assert len((await sender.sent())["data"]) == 2
            own = (await sender.sent(doc_id=one["docId"][:24]))["data"]
            assert [r["senderDocId"] for r in own] == [one["docId"][:24]]
        trace = network.nodes["phulo"].store.trace(_document_id(documents[0]), sender=SENDER)
        assert any(e.kind == "system-fail" and e.detail == "Không đọc được tệp"
                   for e in trace.events)

    vxp_scenario(tmp_path, pki, body)


def test_refusals_answer_fail_with_a_code_and_store_nothing(tmp_path: Path, pki: DevPKI) -> None:
    """Wrong secret, unknown or revoked systemId, a tampered body, a sender outside the
    credential, a missing hash-file: FAIL with a stable code, ``DocId`` present, ASCII
    only, HTTP 200 — and no package stored."""
    async def body(network: Network, systems: Systems) -> None:
        registry = systems.registries["hoatien"]
        secret = registry.issue("HT", agencies=(SENDER,))
        registry.issue("HT-OLD", agencies=(SENDER,))
        registry.revoke("HT-OLD")
        elsewhere = registry.issue("OTHER-AGENCY", agencies=(), subtrees=("hoason",))
        node = network.nodes["hoatien"]
        document = network.document(SENDER, [RECIPIENT], number="51")
        before = _count(node)
        cases: list[tuple[VxpClient, str]] = [
            (systems.client("hoatien", "HT", "not-the-secret"), "VXP-BAD-SIGNATURE"),
            (systems.client("hoatien", "NOBODY", secret), "VXP-UNKNOWN-SYSTEM"),
            (systems.client("hoatien", "HT-OLD", secret), "VXP-UNKNOWN-SYSTEM"),
            (systems.client("hoatien", "OTHER-AGENCY", elsewhere), "VXP-SENDER"),
        ]
        for client, code in cases:
            async with client:
                answer = await client.call("sendEdoc", {
                    "from": SENDER, "servicetype": "eDoc", "messagetype": "edoc",
                    "hash-file": hash_file(document)}, body=document + b"\r\n",
                    content_type="application/octet-stream")
                assert answer.status_code == 200
                answer.content.decode("ascii")  # ASCII only (the SDK reads US-ASCII)
                result = answer.json()
                assert (result["status"], result["ErrorCode"], result["DocId"]) == \
                    ("FAIL", code, ""), result
                assert result["ErrorDesc"]
        async with systems.client("hoatien", "HT", secret) as client:
            tampered = await client.call("sendEdoc", {
                "from": SENDER, "servicetype": "eDoc", "messagetype": "edoc",
                "hash-file": hash_file(document)},
                body=subject_changed(document) + b"\r\n",
                content_type="application/octet-stream")
            assert tampered.json()["ErrorCode"] == "VXP-HASH-FILE"
            # the from header names another agency than the package's From
            mismatch = await client.call("sendEdoc", {
                "from": "000.02.05.H43", "servicetype": "eDoc", "messagetype": "edoc",
                "hash-file": hash_file(document)}, body=document + b"\r\n",
                content_type="application/octet-stream")
            assert mismatch.json()["ErrorCode"] == "VXP-SENDER"
            assert mismatch.json()["ErrorDesc"] == \
                "Don vi gui 000.02.05.H43 khong dung voi ma da dang ky: HT"
            # a package signed by someone else (the digest breaks): the pipeline's code
            forged = subject_changed(document)
            refused = await client.send_edoc(forged, sender=SENDER)
            assert refused["ErrorCode"] == "EDX-SIG-DIGEST" and refused["DocId"] == ""
            # Vietnamese in a refusal still arrives as ASCII (\\u escapes)
            status_as_edoc = await client.send_edoc(
                network.status(SENDER, network.document(RECIPIENT, [SENDER]), "01"),
                sender=SENDER)
            assert status_as_edoc["ErrorCode"] == "VXP-WRONG-KIND"
            missing = await client.get_edoc("0" * 24 + "-" + SENDER)
            assert missing[0]["status"] == "FAIL" and missing[0]["data"] == ""
            assert missing[0]["ErrorCode"] == "VXP-NOT-FOUND"
            assert await client.download_edoc("../../etc/passwd") == b""  # empty on error
        assert _count(node) == before

    vxp_scenario(tmp_path, pki, body)


def test_a_damaged_or_mismatched_signature_is_refused(tmp_path: Path, pki: DevPKI) -> None:
    """VXP.md §3.3: with a port in the URL the SDK sends a non-ASCII header value as the
    low 8 bits of each character — the HMAC (over UTF-8) no longer verifies, and the
    request is refused as unsigned by that system. §3.4: the signed systemid must be the
    header's."""
    async def body(network: Network, systems: Systems) -> None:
        secret = systems.registries["hoatien"].issue("HT", agencies=(SENDER,))
        headers = signed_headers("HT", secret, {"description": "Đã nhận"},
                                 content_type="application/json", stamp=timestamp())
        transport = httpx.ASGITransport(app=systems.apps["hoatien"])
        async with httpx.AsyncClient(transport=transport, base_url="http://axis") as http:
            utf8 = [(k.encode(), v.encode("utf-8")) for k, v in headers]
            good = await http.post("/vxp/countReceiveEdoc", headers=utf8, content=b"{}")
            assert good.json()["ErrorCode"] == "0"
            low8 = [(k.encode(), bytes(ord(c) & 0xFF for c in v)) for k, v in headers]
            damaged = await http.post("/vxp/countReceiveEdoc", headers=low8, content=b"{}")
            assert damaged.json()["ErrorCode"] in ("VXP-BAD-SIGNATURE", "VXP-BAD-SIGN-HEADER")
            other = [(k.encode(), (b"SOMEONE" if k == "XroadVnpt-systemid" else v.encode()))
                     for k, v in headers]
            mismatched = await http.post("/vxp/countReceiveEdoc", headers=other,
                                         content=b"{}")
            assert mismatched.json()["ErrorCode"] == "VXP-BAD-SIGN-HEADER"

    vxp_scenario(tmp_path, pki, body)


def test_a_system_reads_only_its_agencies_copies(tmp_path: Path, pki: DevPKI) -> None:
    async def body(network: Network, systems: Systems) -> None:
        sender_secret = systems.registries["hoatien"].issue("HT", agencies=(SENDER,))
        owner = systems.registries["phulo"].issue("PL", agencies=(RECIPIENT,))
        admin = systems.registries["phulo"].issue("PL-ADMIN", agencies=(OTHER,),
                                                  may_register=True)
        document = network.document(SENDER, [RECIPIENT], number="61")
        async with systems.client("hoatien", "HT", sender_secret) as sender, \
                systems.client("phulo", "PL", owner) as system, \
                systems.client("phulo", "PL-ADMIN", admin) as stranger:
            await sender.send_edoc(document, sender=SENDER)

            async def one() -> bool:
                return len((await system.received())["data"]) == 1

            await wait_until_async(one, 30)
            [item] = (await system.received())["data"]
            assert (await stranger.received())["data"] == []
            got, data = await stranger.get_edoc(item["docId"])
            assert got["ErrorCode"] == "VXP-NOT-FOUND" and data == b""
            refused = await stranger.update_status(item["docId"], "done")
            assert refused["ErrorCode"] == "VXP-NOT-FOUND"
            assert len((await system.received())["data"]) == 1
            # directory changes: only a system allowed to make them
            forbidden = await system.register_agency(b'{"code": "000.03.07.H01"}')
            assert forbidden["ErrorCode"] == "VXP-FORBIDDEN"
            assert "000.03.07.H01" not in network.nodes["phulo"].directory.agencies
            assert (await system.delete_agency(RECIPIENT))["ErrorCode"] == "VXP-FORBIDDEN"
            # ServiceTest's own example body is not JSON: FAIL, not a crash
            assert (await stranger.register_agency(b"{id: 1, code: x}"))["ErrorCode"] == \
                "VXP-BAD-REQUEST"
            # the directory file's agency stays; a registered one can be deleted
            assert (await stranger.delete_agency(RECIPIENT))["ErrorCode"] == "VXP-FORBIDDEN"
            await stranger.register_agency(b'{"code": "000.03.07.H01", "name": "X"}')
            assert (await stranger.delete_agency("000.03.07.H01"))["ErrorCode"] == "0"
            assert "000.03.07.H01" not in network.nodes["phulo"].directory.agencies
            listing = (await system.agencies())["data"]
            assert {a["code"] for a in listing} >= {SENDER, RECIPIENT}
            assert next(a for a in listing if a["code"] == SENDER)["pid"] == "000.00.05.H43"
            communes = (await system.agencies("getAgenciesListQD20", {"level": "4"}))["data"]
            assert {a["code"] for a in communes} == {SENDER, RECIPIENT, "000.02.05.H43"}
            units = (await system.agencies("getSynchronizeUnit"))["data"]
            assert all(isinstance(u["isAgency"], bool) and u["version"] == 1 for u in units)

    vxp_scenario(tmp_path, pki, body)


def test_endpoint_quirks_over_a_real_socket(tmp_path: Path, pki: DevPKI) -> None:
    """Through uvicorn: ``Expect: 100-continue`` answered (the SDK would stall 3 s), the
    endpoint with a trailing slash (``//sendEdoc``), an envelope on every answer even for
    an unknown operation, a GET ``downloadEdoc`` without headers refused with an empty
    body."""
    import uvicorn

    async def body(network: Network, systems: Systems) -> None:
        secret = systems.registries["hoatien"].issue("HT", agencies=(SENDER,))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(systems.apps["hoatien"], log_level="warning",
                                               lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await wait_until_async(_started(server), 10)
            document = network.document(SENDER, [RECIPIENT], number="71")
            # a raw HTTP/1.1 exchange: the server must say 100 Continue before the body
            headers = signed_headers("HT", secret, {
                "from": SENDER, "servicetype": "eDoc", "messagetype": "edoc",
                "hash-file": hash_file(document)},
                content_type="application/octet-stream", stamp=timestamp())
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers)
            writer.write((f"POST /vxp//sendEdoc HTTP/1.1\r\nHost: h\r\n{head}"
                          "Accept-Encoding: gzip,deflate\r\nConnection: Keep-Alive\r\n"
                          f"Expect: 100-continue\r\nContent-Length: {len(document) + 2}"
                          "\r\n\r\n").encode())
            await writer.drain()
            first = await asyncio.wait_for(reader.readline(), 2.0)
            assert first.startswith(b"HTTP/1.1 100"), first
            await reader.readline()
            writer.write(document + b"\r\n")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"HTTP/1.1 200"), status
            head_lines = []
            while (line := await asyncio.wait_for(reader.readline(), 10)) != b"\r\n":
                head_lines.append(line.lower())
            assert not any(h.startswith(b"content-encoding") for h in head_lines)
            length = next(int(h.split(b":")[1]) for h in head_lines
                          if h.startswith(b"content-length"))
            response = await asyncio.wait_for(reader.readexactly(length), 10)
            assert json.loads(response)["status"] == "OK", response
            # the SDK leaves its keep-alive connections open: the server closes idle ones
            assert await asyncio.wait_for(reader.read(), 15) == b""
            writer.close()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as plain:
                bare = await plain.get("/vxp/downloadEdoc")  # downloadEdoc2: no headers
                assert bare.content == b""
                unknown = await plain.post("/vxp/noSuchThing")
                assert unknown.status_code == 200
                assert set(unknown.json()) >= {"status", "ErrorCode", "ErrorDesc"}
            async with VxpClient(f"http://127.0.0.1:{port}/vxp/", "HT", secret) as client:
                again = await client.send_edoc(document, sender=SENDER)
                assert again["DocId"] == hashlib.sha256(document).hexdigest()[:24]
        finally:
            server.should_exit = True
            await task

    vxp_scenario(tmp_path, pki, body)


def _started(server: Any) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(server.started)

    return check


def test_secrets_are_sealed_at_rest_and_rotation_revokes_the_old(tmp_path: Path,
                                                                 pki: DevPKI) -> None:
    async def body(network: Network, systems: Systems) -> None:
        registry = systems.registries["hoatien"]
        secret = registry.issue("HT", agencies=(SENDER,))
        with network.nodes["hoatien"].store.session() as session:
            from docaxis.store._models import SystemRow

            sealed = session.get(SystemRow, "HT")
            assert sealed is not None and secret not in sealed.secret_sealed
            assert secret.encode() not in base64.b64decode(sealed.secret_sealed)
        other_key = SystemRegistry(network.nodes["hoatien"].store,
                                   SecretBox(tmp_path / "another.key"))
        with pytest.raises(Exception, match="does not open"):
            other_key.live("HT")
        new = registry.rotate("HT")
        assert new is not None and new != secret
        async with systems.client("hoatien", "HT", secret) as old, \
                systems.client("hoatien", "HT", new) as fresh:
            assert (await old.count())["ErrorCode"] == "VXP-BAD-SIGNATURE"
            assert (await fresh.count())["ErrorCode"] == "0"
            registry.revoke("HT")  # running nodes remember a credential ≤ 5 s

            async def refused() -> bool:
                return (await fresh.count())["ErrorCode"] == "VXP-UNKNOWN-SYSTEM"

            await wait_until_async(refused, 10)

    vxp_scenario(tmp_path, pki, body)


def test_an_agency_registered_by_another_process_reaches_this_one(tmp_path: Path,
                                                                   pki: DevPKI) -> None:
    """registerAgency (or ``directory import``) writes the database; every process of the
    node reads the entries again every ``directory_interval`` seconds, so the agency is
    routable by all of them, not only by the one that answered."""
    async def body(network: Network, systems: Systems) -> None:
        phulo = network.nodes["phulo"]
        base = phulo.directory
        phulo.directory_source = lambda: base.overlaid(*phulo.store.directory_entries())
        phulo.directory_interval = 0.05
        await phulo.stop()
        await phulo.start()  # its parts again, now with the directory part
        # another process of the node registers an agency: only the database changes
        phulo.store.save_directory_entries([], [Agency(OTHER, "UBND xã Phù Linh", "phulo")])
        await wait_until_async(_has(phulo, OTHER), 10)
        assert phulo.directory.route("phulo", OTHER).kind == "local"

    vxp_scenario(tmp_path, pki, body)


def _has(node: RelayNode, code: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return code in node.directory.agencies

    return check
