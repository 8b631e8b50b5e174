"""A clerk finds documents and reads their story (issue #15, items 1–2).

One small network on the in-process broker (every node a real store) carries: a document
registered by its recipient (01 then 03), one delivered and awaiting its 03, a recall, one
refused at a later node, and one still in transit; the tests query the origin node's
store and run the CLI on it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from docaxis.dsig import TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import Business, DocumentBuilder, parse, write
from docaxis.pki import DevPKI
from docaxis.store import (
    LOCAL_TIME,
    DocumentQuery,
    QueryError,
    RecipientOutcome,
    Store,
    working_days_between,
)
from docaxis.store._documents import DocumentSummary, outcomes
from docaxis.store._store import Event
from tests.relay_support import Network, build_network, network_pki, organization
from tests.test_transport import FAST, run, wait_until

ROOT = Path(__file__).resolve().parents[1]
SENDER = "000.00.00.H43"  # Đà Nẵng, at node danang
REGISTERED, AWAITING, REFUSED = "000.00.00.H01", "000.00.00.G22", "000.00.00.H01"


@dataclass
class World:
    network: Network
    store: Store
    documents: dict[str, str]  # label -> DocumentId
    db: str
    blobs: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("documents")
    pki: DevPKI = network_pki(folder / "pki")
    documents: dict[str, str] = {}

    async def scenario() -> Network:
        from docaxis.transport import InMemoryBroker

        broker = InMemoryBroker(FAST)
        await broker.connect()
        network = build_network(folder / "nodes", pki, lambda _node: broker)
        for node in network.nodes.values():
            await broker.declare_node(node.node_id)
        for node in network.nodes.values():
            await node.start()
        danang, hanoi, central = (network.nodes[n] for n in ("danang", "hanoi", "central"))
        registered = network.document(SENDER, [REGISTERED], number="12",
                                      notation="VPCP-TTĐT", subject="V/v họp giao ban")
        awaiting = network.document(SENDER, [AWAITING], number="13", notation="VPCP-TTĐT")
        for label, data in (("registered", registered), ("awaiting", awaiting)):
            danang.submit(data, agency=SENDER)
            documents[label] = parse(data).package.document_id or ""
        await wait_until(lambda: len(hanoi.store.inbox(REGISTERED)) == 1
                         and len(central.store.inbox(AWAITING)) == 1, 30)
        for code in ("01", "03"):
            hanoi.submit(network.status(REGISTERED, registered, code), agency=REGISTERED)
        central.submit(network.status(AWAITING, awaiting, "01"), agency=AWAITING)
        # a recall of the registered document
        recall = (DocumentBuilder().sender(organization(SENDER)).recipient(
            organization(REGISTERED)).code("14", "VPCP-TTĐT")
            .promulgation(dt.date(2024, 5, 3), "Đà Nẵng").document_type(1, "Công văn")
            .subject("Thu hồi văn bản").business(Business(
                document_id=documents["registered"], business_doc_type=1,
                business_doc_reason="Ban hành nhầm"))
            .build())
        danang.submit(network.signer(SENDER).sign(write(recall)), agency=SENDER)
        documents["recall"] = recall.document_id or ""
        await wait_until(lambda: len(danang.store.trace(documents["registered"],
                                                        sender=SENDER).statuses) == 1
                         and len(danang.store.inbox(SENDER)) >= 3
                         and any(e.kind == "hop:delivered" for e in danang.store.trace(
                             documents["recall"], sender=SENDER).events), 30)
        # refused at central: it cannot check revocation (no CRLs)
        trusting = central.verifier
        central.verifier = Verifier(VerificationPolicy(TrustStore.load([pki.root_path],
                                                                       crls=[])))
        refused = network.document(SENDER, [REFUSED], number="15", notation="VPCP-TTĐT")
        danang.submit(refused, agency=SENDER)
        documents["refused"] = parse(refused).package.document_id or ""
        await wait_until(lambda: any(e.kind == "hop:rejected" for e in danang.store.trace(
            documents["refused"], sender=SENDER).events), 30)
        central.verifier = trusting
        for node in network.nodes.values():
            await node.stop()
        # one more, accepted while nothing runs: in transit
        transit = network.document(SENDER, [AWAITING], number="16", notation="VPCP-TTĐT")
        danang.submit(transit, agency=SENDER)
        documents["transit"] = parse(transit).package.document_id or ""
        await broker.close()
        return network

    network = run(scenario())
    store = network.nodes["danang"].store
    url = str(store.engine.url)
    yield World(network, store, documents, url, network.nodes["danang"].store.blobs.root)


def _ids(world: World, **filters: object) -> set[str]:
    found = world.store.documents(DocumentQuery(**filters))  # type: ignore[arg-type]
    labels = {v: k for k, v in world.documents.items()}
    return {labels.get(s.document_id or "", s.document_id or "") for s in found
            if s.kind != "status"}


def test_number_and_notation_are_found_with_or_without_diacritics(world: World) -> None:
    for typed in ("12/VPCP-TTĐT", "12/vpcp-ttdt", "12 / VPCP-TTDT"):
        assert _ids(world, number=typed) == {"registered"}, typed
    assert _ids(world, number="13") == {"awaiting"}
    assert _ids(world, number="12/VPCP-XYZ") == set()


def test_each_state_filter(world: World) -> None:
    assert _ids(world, state="registered") == {"registered"}
    assert _ids(world, state="awaiting-receipt") == {"awaiting", "recall"}
    assert _ids(world, state="delivered") == {"registered", "awaiting", "recall"}
    assert _ids(world, state="refused") == {"refused"}
    assert _ids(world, state="in-transit") == {"transit"}


def test_sender_recipient_kind_and_date_filters(world: World) -> None:
    everything = {"registered", "awaiting", "recall", "refused", "transit"}
    assert _ids(world, senders=(SENDER,)) == everything
    assert _ids(world, senders=("000.00.00.G01",)) == set()
    assert _ids(world, recipient=AWAITING) == {"awaiting", "transit"}
    assert _ids(world, kind="recall") == {"recall"}
    assert _ids(world, kind="document") == everything - {"recall"}
    statuses = world.store.documents(DocumentQuery(kind="status"))
    assert statuses and all(s.kind == "status" and s.status_code for s in statuses)
    now = dt.datetime.now(dt.UTC)
    assert _ids(world, since=now - dt.timedelta(hours=1)) == everything
    assert _ids(world, until=now - dt.timedelta(hours=1)) == set()
    assert _ids(world, since=now + dt.timedelta(hours=1)) == set()
    assert len(world.store.documents(DocumentQuery(kind="document", limit=2))) == 2


def test_overdue_counts_working_days_without_a_03(world: World) -> None:
    store = world.store
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=14)  # ≥ 10 working days on
    overdue = {s.document_id for s in store.documents(DocumentQuery(overdue_days=5), now=later)}
    assert overdue == {world.documents["awaiting"], world.documents["recall"]}
    assert store.documents(DocumentQuery(overdue_days=5)) == []  # not yet
    friday = dt.datetime(2026, 11, 27, 16, tzinfo=LOCAL_TIME)
    assert working_days_between(friday, friday + dt.timedelta(days=3)) == 1  # Sat, Sun
    assert working_days_between(friday, friday + dt.timedelta(days=7)) == 5


def test_outcomes_say_where_each_copy_is(world: World) -> None:
    [registered] = world.store.find_documents("12/vpcp-ttdt")
    [outcome] = registered.outcomes
    assert (outcome.state, outcome.delivered_by, outcome.status_code) == (
        "delivered", "hanoi", "03")
    [refused] = world.store.find_documents(world.documents["refused"])
    [outcome] = refused.outcomes
    assert outcome.state == "refused" and outcome.refused_by == "central"
    assert "EDX-SIG-REVOCATION-UNKNOWN" in {r["code"] for r in outcome.reasons}


def test_outcome_rules() -> None:
    at = dt.datetime(2026, 11, 30, 2, tzinfo=dt.UTC)
    events = [Event("central", "hop:rejected", at, None, json.dumps(
                  [{"code": "EDX-X", "message": "bad"}])),
              Event("hanoi", "hop:delivered", at - dt.timedelta(seconds=1), "A"),
              Event("danang", "unroutable", at, "B", "unknown agency")]
    result = {o.agency: o for o in outcomes(["A", "B", "C", "D"], events, {
        "A": ("03", at), "D": ("02", at)})}
    assert result["A"] == RecipientOutcome("A", "delivered", at - dt.timedelta(seconds=1),
                                           "hanoi", "03", at)
    assert result["B"].state == "unroutable" and result["B"].refused_by == "danang"
    assert result["C"].state == "refused" and result["C"].reasons == ({"code": "EDX-X",
                                                                       "message": "bad"},)
    summary = DocumentSummary("0" * 64, "x", "S", "document", at,
                              outcomes=(result["A"],))
    assert summary.state == "registered"
    assert DocumentSummary("0" * 64, "x", "S", "document", at, outcomes=(
        RecipientOutcome("A", "delivered", at, "n", "01", at),)).state == "awaiting-receipt"


def test_a_bad_query_is_a_clear_error() -> None:
    with pytest.raises(QueryError, match="kind"):
        DocumentQuery(kind="memo")
    with pytest.raises(QueryError, match="date range"):
        DocumentQuery(since=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                      until=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def _cli(world: World, *args: str) -> tuple[int, str]:
    """The command as a clerk runs it, on an 80-column terminal."""
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--database", world.db,
                           "--blobs", str(world.blobs)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80"}, timeout=60)
    return done.returncode, done.stdout + done.stderr


def test_trace_by_number_tells_the_story_in_vietnamese_and_local_time(world: World) -> None:
    code, out = _cli(world, "trace", "12/VPCP-TTDT")
    assert code == 0, out
    text = " ".join(out.split())  # lines wrap at 80 columns
    assert text.index("Kết quả") < text.index("Diễn biến")  # outcome lines first
    assert "000.00.00.H01: đã đến hộp thư tại nút hanoi lúc" in text
    assert "trạng thái mới nhất: 03 Đã tiếp nhận" in text
    assert "giờ Việt Nam, UTC+7" in text
    received = world.store.trace(world.documents["registered"], sender=SENDER).events[0].at
    local = received.astimezone(LOCAL_TIME).strftime("%H:%M:%S %d/%m/%Y")
    assert local in text  # a date, and local time: seven hours from UTC
    assert all(len(line) <= 80 for line in out.splitlines())


def test_trace_in_english_utc_and_a_refusal_as_a_sentence(world: World) -> None:
    code, out = _cli(world, "trace", world.documents["refused"], "--lang", "en", "--utc")
    assert code == 0, out
    text = " ".join(out.split())
    assert "Outcome" in text and "refused at central" in text
    assert "[EDX-SIG-REVOCATION-UNKNOWN]" in text
    assert "Refused by a later node" in text and "Z" in text
    assert all(len(line) <= 80 for line in out.splitlines())


def test_trace_offers_candidates_when_several_match(world: World) -> None:
    prefix = world.documents["registered"].split(",")[0]  # the sender's code: every one
    code, out = _cli(world, "trace", prefix)
    assert code == 2
    assert "documents match" in out and world.documents["awaiting"] in out


def test_trace_json_keeps_its_schema(world: World) -> None:
    code, out = _cli(world, "trace", "13/vpcp-ttđt", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["schema"] == "docaxis.trace/1"
    assert set(body) == {"schema", "document_id", "events", "statuses", "document"}
    assert body["document"]["state"] == "awaiting-receipt"
    [recipient] = body["document"]["recipients"]
    assert set(recipient) == {"agency", "state", "delivered_at", "delivered_by", "status_code",
                              "status_at", "refused_by", "refused_at", "reasons"}
    assert {e["kind"] for e in body["events"]} >= {"received", "hop:delivered"}


def test_documents_command_lists_and_filters(world: World) -> None:
    code, out = _cli(world, "documents", "--state", "refused", "--json")
    assert code == 0, out
    [line] = out.splitlines()
    assert json.loads(line)["document_id"] == world.documents["refused"]
    code, out = _cli(world, "documents", "--number", "12/vpcp-ttdt")
    assert code == 0 and "12/VPCP-TTĐT" in out and "registered" in out
    code, out = _cli(world, "documents", "--kind", "memo")
    assert code == 2


def test_the_api_finds_only_the_callers_documents(world: World) -> None:
    """``GET /v1/documents``: the sending agency's documents with the same filters; another
    agency's token sees none of them; a bad filter is a 422 with a stable code."""
    import httpx

    from docaxis.api import create_app

    danang = world.network.nodes["danang"]
    mine = world.store.issue_credential(SENDER)
    other = world.store.issue_credential("000.00.05.H43")  # Hòa Vang district, same node tree

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=create_app(danang))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as api:
            found = await api.get("/v1/documents", params={"number": "12/vpcp-ttdt"},
                                  headers={"Authorization": f"Bearer {mine}"})
            assert found.status_code == 200, found.text
            [document] = found.json()
            assert document["document_id"] == world.documents["registered"]
            assert document["state"] == "registered"
            assert document["recipients"][0]["status_code"] == "03"
            refused = await api.get("/v1/documents", params={"state": "refused"},
                                    headers={"Authorization": f"Bearer {mine}"})
            assert [d["document_id"] for d in refused.json()] == [world.documents["refused"]]
            theirs = await api.get("/v1/documents",
                                   headers={"Authorization": f"Bearer {other}"})
            assert theirs.status_code == 200 and theirs.json() == []
            bad = await api.get("/v1/documents", params={"state": "lost"},
                                headers={"Authorization": f"Bearer {mine}"})
            assert bad.status_code == 422 and "API-BAD-QUERY" in bad.text

    run(scenario())


def test_rows_logged_before_the_search_columns_are_indexed(world: World) -> None:
    """An upgraded node: rows without search columns are filled from their bytes."""
    from sqlalchemy import update

    from docaxis.store._models import PackageRow

    store = world.store
    with store.transaction() as session:
        session.execute(update(PackageRow).values(code=None, code_key=None, subject=None))
    assert _ids(world, number="12/VPCP-TTĐT") == set()
    assert store.index_documents() >= 6
    assert _ids(world, number="12/vpcp-ttdt") == {"registered"}
    assert store.index_documents() == 0  # each row once


def test_the_log_is_chained_and_audit_names_each_break(world: World, tmp_path: Path) -> None:
    """Issue #15, item 4 (the chain): an untouched log verifies; one byte of a logged
    package changed, one record changed, one record deleted — each is named."""
    import shutil
    import sqlite3

    from sqlalchemy import delete, select, update

    from docaxis.store._models import EventRow, PackageRow

    # a copy of the origin node's store, to damage
    source = Path(world.db.removeprefix("sqlite:///"))
    db, blobs = tmp_path / "copy.db", tmp_path / "blobs"
    with sqlite3.connect(source) as original, sqlite3.connect(db) as target:
        original.backup(target)  # the WAL's pages too
    shutil.copytree(world.blobs, blobs)
    copy = Store(f"sqlite:///{db}", blobs)
    clean = copy.audit()
    assert clean.intact, clean.breaks
    assert clean.records > 10 and clean.packages >= 6 and clean.unchained == 0
    code, out = _cli_on(db, blobs, "audit", "verify")
    assert code == 0 and "intact" in out
    # two writers on one log (another store object, as another process would be): two
    # chains, each linked, the log still intact
    other = Store(f"sqlite:///{db}", blobs)
    for writer in (copy, other, copy, other):
        writer.add_events([Event("danang", "note", dt.datetime.now(dt.UTC), None, "x", "0" * 64)],
                          documents=[(None, None)])
    other.close()
    both = copy.audit(check_packages=False)
    assert both.intact, both.breaks
    assert both.chains == clean.chains + 2 and both.records == clean.records + 4

    with copy.session() as session:
        ids = session.scalars(select(EventRow.id).order_by(EventRow.id)).all()
        row = session.execute(select(PackageRow.sha256, PackageRow.blob_segment,
                                     PackageRow.blob_offset).limit(1)).one()
    altered, deleted = ids[3], ids[7]
    with copy.transaction() as session:
        session.execute(update(EventRow).where(EventRow.id == altered)
                        .values(detail="nothing happened here"))
        session.execute(delete(EventRow).where(EventRow.id == deleted))
    segment = blobs / "segments" / f"{row.blob_segment}.seg"
    data = bytearray(segment.read_bytes())
    data[row.blob_offset + 100] ^= 0x01
    segment.write_bytes(bytes(data))

    report = copy.audit()
    found = {(record, code) for record, _sha, code, _message in report.breaks}
    assert (altered, "AUDIT-ALTERED") in found
    assert (ids[8], "AUDIT-LINK") in found  # the record after the deleted one
    assert any(code == "AUDIT-PACKAGE" and sha == row.sha256
               for _r, sha, code, _m in report.breaks)
    assert report.breaks[0][0] == altered  # the first break, named first
    code, out = _cli_on(db, blobs, "audit", "verify")
    assert code == 1 and f"first break: record {altered}" in " ".join(out.split())
    copy.close()


def test_a_refusal_is_a_record_of_the_refusing_nodes_log(world: World) -> None:
    """The node that refused a package logs it (with the package's SHA-256 and the
    codes), chained like every record."""
    import hashlib

    from sqlalchemy import select

    from docaxis.store._models import EventRow

    central = world.network.nodes["central"].store
    [refused] = world.store.find_documents(world.documents["refused"])
    with central.session() as session:
        [record] = session.scalars(select(EventRow).where(
            EventRow.kind == "refused", EventRow.package_sha256 == refused.sha256)).all()
    assert record.node == "central" and "EDX-SIG-REVOCATION-UNKNOWN" in (record.detail or "")
    assert record.record_hash and len(record.record_hash) == len(hashlib.sha256().hexdigest())
    assert central.audit(check_packages=False).intact


def _cli_on(db: Path, blobs: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args, "--database",
                           f"sqlite:///{db}", "--blobs", str(blobs)], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200"}, timeout=60)
    return done.returncode, done.stdout + done.stderr


def test_a_refusal_at_a_later_node_reaches_the_sender_as_a_signed_status_02(
        world: World, tmp_path: Path) -> None:
    """Issue #15, item 5: central refused Đà Nẵng's document; Đà Nẵng's inbox holds an
    edXML status 02 answering it, signed by central's node key as the agency that runs
    central, which ``docaxis verify`` accepts with the national trust anchors alone."""
    from docaxis.edxml import StatusPackage

    refused = world.documents["refused"]
    statuses = [item for item in world.store.inbox(SENDER)
                if item.kind == "status" and item.document_id == refused]
    assert len(statuses) == 1, world.store.inbox(SENDER)
    data = world.store.package_bytes(statuses[0].sha256)
    package = parse(data).package
    assert isinstance(package, StatusPackage) and package.status_code == "02"
    assert package.sender == "000.00.00.G22"  # central's operator, not the recipient
    rf = package.header.response_for
    assert rf is not None and rf.document_id == refused and rf.organ_id == SENDER
    assert "EDX-SIG-REVOCATION-UNKNOWN" in (package.header.description or "")
    path = tmp_path / "refusal.edxml"
    path.write_bytes(data)
    pki = world.network.pki
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "verify", "--trust",
                           str(pki.root_path), "--crl", str(pki.crl_folder), "--json",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "valid" and report["signer"]["node"].startswith("central")
    # and the trace says so
    events = world.store.trace(refused, sender=SENDER).events
    assert any(e.kind == "refusal_status" for e in events)


def test_a_forged_refusal_status_is_not_put_in_the_senders_inbox(world: World) -> None:
    """The origin admits a refusal status only from the refusing node's own certificate,
    answering the very document: one signed by another node, or answering another
    document, is refused (and logged)."""
    import base64

    from docaxis.relay._refusals import accepted_refusal_status

    refused = world.documents["refused"]
    [item] = [i for i in world.store.inbox(SENDER)
              if i.kind == "status" and i.document_id == refused]
    encoded = base64.b64encode(world.store.package_bytes(item.sha256)).decode()
    danang = world.network.nodes["danang"]
    central_id = next(n for n in world.network.nodes if n.startswith("central"))
    hanoi_id = next(n for n in world.network.nodes if n.startswith("hanoi"))
    ok = accepted_refusal_status(encoded, refusing_node=central_id, document_id=refused,
                                 sender=SENDER, verifier=danang.verifier)
    assert ok is not None and ok[1] == "000.00.00.G22"
    assert accepted_refusal_status(encoded, refusing_node=hanoi_id, document_id=refused,
                                   sender=SENDER, verifier=danang.verifier) is None
    assert accepted_refusal_status(encoded, refusing_node=central_id,
                                   document_id=world.documents["awaiting"], sender=SENDER,
                                   verifier=danang.verifier) is None
    tampered = base64.b64encode(base64.b64decode(encoded).replace(
        b"refused at node", b"REFUSED AT NODE")).decode()
    assert accepted_refusal_status(tampered, refusing_node=central_id, document_id=refused,
                                   sender=SENDER, verifier=danang.verifier) is None
