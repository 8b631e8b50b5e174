"""RFC 3161 timestamps of the message log's chain heads (issue #15, item 4).

The dev TSA is served over real HTTP on loopback; the nodes run on the in-process broker,
each with its own SQLite store and a stamper a few times a second.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy import select, update

from docaxis.dsig import TimestampError, TimestampVerifier, timestamp_request
from docaxis.node import ConfigError, NodeConfig
from docaxis.pki import DevPKI, DevTimestampAuthority, load_certificates, load_private_key
from docaxis.pki import serve_tsa as start_tsa
from docaxis.relay import LogStamper
from docaxis.store import Store
from docaxis.store._chain import link
from docaxis.store._models import EventRow, StampRow
from docaxis.store._store import Event
from tests.relay_support import build_network, free_port, network_pki
from tests.test_transport import FAST, run, wait_until

ROOT = Path(__file__).resolve().parents[1]
SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"  # Đà Nẵng → Hà Nội, across central


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    pki = network_pki(tmp_path_factory.mktemp("stamps") / "pki")
    DevTimestampAuthority.issue(pki.folder)
    return pki


@pytest.fixture()
def tsa(pki: DevPKI) -> Iterator[tuple[str, object]]:
    server = start_tsa(DevTimestampAuthority.open(pki.folder))
    yield server.url, server
    server.stop()


def _verifier(pki: DevPKI) -> TimestampVerifier:
    return TimestampVerifier.load([pki.root_path])


# -- the token policy ------------------------------------------------------------------
def test_a_dev_tsa_token_verifies_and_every_forgery_is_refused(pki: DevPKI,
                                                              tmp_path: Path) -> None:
    authority = DevTimestampAuthority.open(pki.folder)
    request = timestamp_request(b"heads")
    response = authority.respond(request.der)
    verifier = _verifier(pki)
    stamped = verifier.verify(response, request.digest, nonce=request.nonce)
    assert stamped.tzinfo is not None

    def refused(response: bytes, digest: bytes = request.digest,
                verifier: TimestampVerifier = verifier, **kw: int) -> str:
        with pytest.raises(TimestampError) as caught:
            verifier.verify(response, digest, **kw)
        return caught.value.code

    assert refused(response, hashlib.sha256(b"other heads").digest()) == "TSA-TOKEN-INVALID"
    assert refused(response, nonce=request.nonce + 1) == "TSA-TOKEN-INVALID"
    flipped = bytearray(response)
    flipped[-40] ^= 0x01  # inside the signature
    assert refused(bytes(flipped)) == "TSA-TOKEN-INVALID"
    assert refused(b"not DER at all") == "TSA-TOKEN-INVALID"
    stranger = DevPKI.init(tmp_path / "other")
    assert refused(response, verifier=TimestampVerifier.load([stranger.root_path])) \
        == "TSA-TOKEN-INVALID"
    # signed by a certificate of the same root that is not a TSA's (an agency's)
    pki.issue_agency("000.00.00.G99", "Not a TSA", tier="central")
    key, _cert, chain = pki.agency_paths("000.00.00.G99")
    impostor = DevTimestampAuthority(load_private_key(key), tuple(load_certificates(chain)))
    assert refused(impostor.respond(request.der)) == "TSA-TOKEN-INVALID"
    # a TSA that says no
    assert refused(authority.respond(b"\x30\x03\x02\x01\x01")) == "TSA-REFUSED"


# -- a node stamping its log -----------------------------------------------------------
def _stamped_network(folder: Path, pki: DevPKI, url: str):  # type: ignore[no-untyped-def]
    from docaxis.transport import InMemoryBroker

    broker = InMemoryBroker(FAST)
    network = build_network(folder, pki, lambda _node: broker)
    for node in network.nodes.values():
        node.stamper = LogStamper(node.node_id, node.store, url, _verifier(pki), 0.05)
    return network, broker


async def _start(network, broker) -> None:  # type: ignore[no-untyped-def]
    await broker.connect()
    for node in network.nodes.values():
        await broker.declare_node(node.node_id)
    for node in network.nodes.values():
        await node.start()


def test_a_tsa_outage_stops_no_relaying_and_leaves_nothing_unstamped_once_it_returns(
        pki: DevPKI, tsa: tuple[str, object], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    url, server = tsa
    network, broker = _stamped_network(tmp_path / "nodes", pki, url)
    danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]

    def unstamped(node: str) -> int:
        return network.nodes[node].store.unstamped()[0]

    async def scenario() -> None:
        await _start(network, broker)
        danang.submit(network.document(SENDER, [RECIPIENT], number="1"), agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 20)
        await wait_until(lambda: all(unstamped(n) == 0 for n in network.nodes), 20)

        server.available.clear()  # type: ignore[attr-defined]  # the TSA goes down
        for number in ("2", "3", "4"):
            danang.submit(network.document(SENDER, [RECIPIENT], number=number), agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 4, 20)  # relayed
        await wait_until(lambda: danang.stamper is not None
                         and danang.stamper.failures >= 3, 20)
        assert danang.stamper is not None and danang.stamper.failing == "TSA-UNREACHABLE"
        assert unstamped("danang") > 0 and unstamped("hanoi") > 0
        gap = danang.store.audit(check_packages=False, stamps=_verifier(pki))
        assert gap.intact and gap.unstamped > 0 and gap.oldest_unstamped is not None
        scrape = generate_latest(danang.metrics.exposed).decode()
        assert "docaxis_log_stamp_failing 1.0" in scrape
        assert "docaxis_log_unstamped_records 0.0" not in scrape

        server.available.set()  # back
        # the last records: Hà Nội's signed receipts of the four deliveries (hop receipts
        # travel on their own): only then wait for every record's stamp
        await wait_until(lambda: _records(danang, "hop:delivered") == 4, 20)
        await wait_until(lambda: all(unstamped(n) == 0 for n in network.nodes), 20)
        assert danang.stamper.failing is None
        for node in network.nodes.values():
            await node.stop()
        await broker.close()

    with caplog.at_level(logging.INFO, logger="docaxis.relay"):
        run(scenario())
    for node in network.nodes.values():  # every node on the path: stamped before and after
        report = node.store.audit(stamps=_verifier(pki))
        assert report.intact, report.breaks
        assert report.unstamped == 0 and report.stamps_unchecked == 0
        assert report.stamps >= (2 if node.node_id in ("danang", "central", "hanoi") else 0)
    failed = [r for r in caplog.records
              if r.getMessage() == "audit.stamp_failed" and getattr(r, "node", "") == "danang"]
    assert len(failed) == 1 and failed[0].code == "TSA-UNREACHABLE"  # type: ignore[attr-defined]
    assert any(r.getMessage() == "audit.stamping_restored" for r in caplog.records)
    # without anchors the stamps are counted, not trusted
    assert danang.store.audit(check_packages=False).stamps_unchecked >= 2
    danang.store.close()


def test_a_consistently_rewritten_log_is_caught_by_its_stamps(
        pki: DevPKI, tsa: tuple[str, object], tmp_path: Path) -> None:
    """Rewriting a record *and* every hash after it keeps the chain consistent — what the
    chain alone cannot see; the stamp over the old head can. A stamp whose token is not
    a trusted TSA's is a break too."""
    url, _server = tsa
    network, broker = _stamped_network(tmp_path / "nodes", pki, url)
    danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]

    async def scenario() -> None:
        await _start(network, broker)
        for number in ("1", "2"):
            danang.submit(network.document(SENDER, [RECIPIENT], number=number), agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 2, 20)
        await wait_until(lambda: _records(danang, "hop:delivered") == 2, 20)
        await wait_until(lambda: danang.store.unstamped()[0] == 0, 20)
        for node in network.nodes.values():
            await node.stop()
        await broker.close()

    run(scenario())
    store = danang.store
    assert store.audit(stamps=_verifier(pki)).intact
    with store.session() as session:
        rows = session.scalars(select(EventRow).order_by(EventRow.id)).all()
    chain = rows[0].chain
    assert chain is not None
    mine = [r for r in rows if r.chain == chain]
    values = [{name: getattr(r, name) for name in ("package_sha256", "document_id",
                                                   "document_sender", "node", "kind",
                                                   "agency", "detail", "at")}
              for r in mine]
    values[1]["detail"] = "rewritten"
    link(values, chain, mine[0].prev_hash or "")
    with store.transaction() as session:
        for row, new in zip(mine, values, strict=True):
            session.execute(update(EventRow).where(EventRow.id == row.id).values(
                detail=new["detail"], prev_hash=new["prev_hash"],
                record_hash=new["record_hash"]))
    report = store.audit(check_packages=False, stamps=_verifier(pki))
    codes = {code for _record, _sha, code, _message in report.breaks}
    assert codes == {"AUDIT-STAMP"}, report.breaks  # the chain alone sees nothing

    # a stamp's token swapped for one of an untrusted TSA over the same heads
    stranger = DevPKI.init(tmp_path / "stranger")
    forger = DevTimestampAuthority.issue(stranger.folder)
    with store.session() as session:
        stamp = session.scalars(select(StampRow).order_by(StampRow.id.desc())).first()
    assert stamp is not None
    forged = forger.respond(timestamp_request(b"x").der)
    with store.transaction() as session:
        session.execute(update(StampRow).where(StampRow.id == stamp.id)
                        .values(response=forged))
    report = store.audit(check_packages=False, stamps=_verifier(pki))
    assert any(code == "AUDIT-STAMP" and f"stamp {stamp.id} " in message
               for _r, _s, code, message in report.breaks)

    # the CLI, offline on a copy of the store, with the TSA's anchor
    db = Path(str(store.engine.url).removeprefix("sqlite:///"))
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as original, sqlite3.connect(copy) as target:
        original.backup(target)
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "audit", "verify",
                           "--database", f"sqlite:///{copy}", "--blobs", str(store.blobs.root),
                           "--tsa-anchor", str(pki.root_path)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60)
    assert done.returncode == 1 and "AUDIT-STAMP" in done.stdout, done.stdout + done.stderr
    store.close()


def test_audit_verify_reports_stamps_and_the_wait(pki: DevPKI, tsa: tuple[str, object],
                                                  tmp_path: Path) -> None:
    url, _server = tsa
    store = Store(f"sqlite:///{tmp_path / 'node.db'}", tmp_path / "blobs")
    store.migrate()
    def note() -> None:
        store.add_events([Event("central", "note", dt.datetime.now(dt.UTC), None, "x",
                                "0" * 64)], documents=[(None, None)])

    note()
    stranger = DevPKI.init(tmp_path / "stranger")
    distrustful = LogStamper("central", store, url, TimestampVerifier.load([stranger.root_path]))
    assert run(distrustful.stamp_once()) == 0  # an answer it cannot trust is not kept
    assert distrustful.failing == "TSA-TOKEN-INVALID" and store.last_stamp_at() is None
    stamper = LogStamper("central", store, url, _verifier(pki), 60)
    assert run(stamper.stamp_once()) == 1
    assert run(stamper.stamp_once()) == 0  # nothing grew: no stamp
    note()
    note()

    def cli(*args: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "audit", "verify",
                               "--database", f"sqlite:///{tmp_path / 'node.db'}",
                               "--blobs", str(tmp_path / "blobs"), *args],
                              capture_output=True, text=True,
                              env={**os.environ, "COLUMNS": "200"}, timeout=60)
        return done.returncode, " ".join((done.stdout + done.stderr).split())

    code, out = cli("--tsa-anchor", str(pki.root_path))
    assert code == 0 and "1 timestamp(s)" in out and "each token verified" in out
    assert "2 record(s) not stamped yet" in out
    code, out = cli()
    assert code == 0 and "1 not checked" in out
    store.close()


def test_node_toml_names_a_tsa_with_its_anchors(tmp_path: Path) -> None:
    base = '[node]\nid = "central"\n'
    (tmp_path / "a.toml").write_text(base + '[audit]\ntsa_url = "http://127.0.0.1:9/"\n')
    with pytest.raises(ConfigError, match="tsa_anchors"):
        NodeConfig.load(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text(base + '[audit]\ntsa_url = "ftp://x"\n')
    with pytest.raises(ConfigError, match="tsa_url"):
        NodeConfig.load(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text(
        base + '[audit]\ntsa_url = "http://127.0.0.1:9/"\ntsa_anchors = ["root.pem"]\n'
        'stamp_interval = 5\n')
    config = NodeConfig.load(tmp_path / "c.toml")
    assert config.tsa_url == "http://127.0.0.1:9/" and config.stamp_interval == 5.0
    assert config.tsa_anchors == (tmp_path / "root.pem",)


def test_keys_tsa_serves_rfc3161_over_http(pki: DevPKI, tmp_path: Path) -> None:
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "keys", "tsa", "--dir",
                               str(pki.folder), "--serve", f"127.0.0.1:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert "dev TSA at" in server.stdout.readline().decode()
        request = timestamp_request(b"log heads")
        answer = httpx.post(f"http://127.0.0.1:{port}/", content=request.der,
                            headers={"Content-Type": "application/timestamp-query"})
        assert answer.status_code == 200
        assert _verifier(pki).verify(answer.content, request.digest, nonce=request.nonce)
        wrong = httpx.post(f"http://127.0.0.1:{port}/", content=b"x",
                           headers={"Content-Type": "text/plain"})
        assert wrong.status_code == 400
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_chain_whose_writer_is_gone_is_closed_once_stamped(
        pki: DevPKI, tsa: tuple[str, object], tmp_path: Path) -> None:
    """The stamper looks at live chains only: a chain whose process exited is closed by
    the stamp that covers its last record (a node's chains then stay few however many
    times it restarted)."""
    from docaxis.store._models import LogChainRow

    url, _server = tsa
    db = tmp_path / "node.db"
    store = Store(f"sqlite:///{db}", tmp_path / "blobs")
    store.migrate()
    writer = ("import datetime as dt, sys; from docaxis.store import Store; "
              "from docaxis.store._store import Event; "
              "s = Store(sys.argv[1], sys.argv[2]); "
              "s.add_events([Event('central', 'note', dt.datetime.now(dt.UTC), None, 'x', "
              "'0' * 64)], documents=[(None, None)])")
    subprocess.run([sys.executable, "-c", writer, f"sqlite:///{db}", str(tmp_path / "blobs")],
                   check=True, cwd=ROOT, timeout=60)
    store.add_events([Event("central", "note", dt.datetime.now(dt.UTC), None, "y", "0" * 64)],
                     documents=[(None, None)])
    stamper = LogStamper("central", store, url, _verifier(pki), 60)
    assert run(stamper.stamp_once()) == 2
    with store.session() as session:
        closed = dict(session.execute(select(LogChainRow.chain, LogChainRow.closed)).all())
    mine = next(c for c in closed if c.startswith(store.claimant))
    assert closed[mine] is False  # this process lives on
    assert [c for c, done in closed.items() if done] == [c for c in closed if c != mine]
    assert [h[0] for h in store.unstamped_heads()] == []
    assert store.audit(check_packages=False, stamps=_verifier(pki)).intact
    store.close()


def _records(node: object, kind: str) -> int:
    """Records of ``kind`` in ``node``'s log (hop receipts arrive after the package)."""
    store = node.store  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        return int(connection.exec_driver_sql(
            "SELECT count(*) FROM events WHERE kind = ?", (kind,)).scalar() or 0)
