"""Evidence export (issue #15, item 6): an ASiC-E container of one document that verifies
offline with the trust anchors alone, and fails with a code when any file in it changes.

One network on the in-process broker, every node stamping its log at a dev TSA served
over HTTP on loopback: Đà Nẵng sends a document to Hà Nội, Hà Nội answers 03, and the
container is exported at Đà Nẵng (the library call and the CLI).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from docaxis.dsig import TimestampVerifier
from docaxis.edxml import parse
from docaxis.evidence import MIMETYPE, EvidenceError, export_container, verify_container
from docaxis.pki import DevPKI, DevTimestampAuthority, load_certificates, serve_tsa
from docaxis.relay import LogStamper
from tests.relay_support import Network, build_network, network_pki
from tests.test_transport import FAST, run, wait_until

ROOT = Path(__file__).resolve().parents[1]
SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"


@dataclass
class Exported:
    network: Network
    pki: DevPKI
    document_id: str
    container: bytes
    folder: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    folder = tmp_path_factory.mktemp("evidence")
    pki = network_pki(folder / "pki")
    tsa = serve_tsa(DevTimestampAuthority.issue(pki.folder))
    verifier = TimestampVerifier.load([pki.root_path])

    async def scenario() -> tuple[Network, str]:
        from docaxis.transport import InMemoryBroker

        broker = InMemoryBroker(FAST)
        await broker.connect()
        network = build_network(folder / "nodes", pki, lambda _node: broker)
        for node in network.nodes.values():
            node.stamper = LogStamper(node.node_id, node.store, tsa.url, verifier, 0.05)
            await broker.declare_node(node.node_id)
        for node in network.nodes.values():
            await node.start()
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        document = network.document(SENDER, [RECIPIENT], number="21", notation="UBND")
        danang.submit(document, agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 20)
        hanoi.submit(network.status(RECIPIENT, document, "03"), agency=RECIPIENT)
        await wait_until(lambda: any(i.kind == "status" for i in danang.store.inbox(SENDER)), 20)
        document_id = parse(document).package.document_id or ""
        # the last record the export covers: Hà Nội's signed receipt of the delivery (hop
        # receipts travel on their own, 0.2 s apart): only then wait for the stamps
        await wait_until(lambda: any(e.kind == "hop:delivered" for e in danang.store.trace(
            document_id, sender=SENDER).events), 20)
        await wait_until(lambda: all(n.store.unstamped()[0] == 0
                                     for n in network.nodes.values()), 20)
        for node in network.nodes.values():
            await node.stop()
        await broker.close()
        return network, parse(document).package.document_id or ""

    try:
        network, document_id = run(scenario())
    finally:
        tsa.stop()
    danang = network.nodes["danang"]
    assert danang.node_signer is not None
    container = export_container(danang.store, document_id, node_id="danang",
                                 signer=danang.node_signer, verifier=danang.verifier)
    yield Exported(network, pki, document_id, container, folder)


def _anchors(pki: DevPKI) -> list:  # type: ignore[type-arg]
    return load_certificates(pki.root_path)


def test_an_exported_container_verifies_offline(exported: Exported) -> None:
    with zipfile.ZipFile(io.BytesIO(exported.container)) as archive:
        names = archive.namelist()
        first = archive.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert archive.read("mimetype") == MIMETYPE.encode()
    assert {"package.edxml", "report.json", "log/records.json", "META-INF/ASiCManifest.xml",
            "META-INF/signature.p7s"} <= set(names)
    assert any(n.startswith("log/stamp-") and n.endswith(".tsr") for n in names)
    assert any(n.startswith("evidence/status-03-") for n in names)
    assert any(n.startswith("trust/crl-") for n in names)
    hops = {n.rsplit("-", 1)[1] for n in names if n.startswith("evidence/hop-")}
    assert {"central.json", "hanoi.json"} <= hops  # each later node's signed word
    report = verify_container(exported.container, _anchors(exported.pki))
    assert report.valid, report.failures
    assert report.document_id == exported.document_id and report.exported_by == "danang"
    assert report.records >= 5 and report.stamped_records == report.records
    assert report.stamps >= 1 and report.statuses >= 1 and report.hops >= 2


def _rewritten(container: bytes, change: dict[str, bytes | None]) -> bytes:
    """The container with files replaced (None: removed) or added, order kept."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(container)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            data = change.get(entry.filename, source.read(entry))
            if data is not None:
                target.writestr(entry, data)
        for name, data in change.items():
            if name not in source.namelist() and data is not None:
                target.writestr(name, data)
    return out.getvalue()


def _altered(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


def test_altering_any_file_fails_with_a_code(exported: Exported) -> None:
    anchors = _anchors(exported.pki)
    with zipfile.ZipFile(io.BytesIO(exported.container)) as archive:
        names = archive.namelist()
        contents = {n: archive.read(n) for n in names}
    expected = {"mimetype": "EVIDENCE-CONTAINER",
                "META-INF/ASiCManifest.xml": "EVIDENCE-SIGNATURE",
                "META-INF/signature.p7s": "EVIDENCE-SIGNATURE"}
    for name in names:
        report = verify_container(_rewritten(exported.container,
                                             {name: _altered(contents[name])}), anchors)
        codes = {code for code, _message in report.failures}
        assert not report.valid, name
        assert expected.get(name, "EVIDENCE-DIGEST") in codes, (name, report.failures)
    removed = verify_container(_rewritten(exported.container, {"report.json": None}),
                               anchors)
    assert "EVIDENCE-MISSING" in {c for c, _m in removed.failures}
    added = verify_container(_rewritten(exported.container, {"extra.txt": b"x"}), anchors)
    assert {c for c, _m in added.failures} == {"EVIDENCE-UNLISTED"}
    # another PKI's anchors: the node's signature and the package do not verify
    stranger = DevPKI.init(exported.folder / "stranger")
    foreign = verify_container(exported.container, load_certificates(stranger.root_path))
    assert {"EVIDENCE-SIGNATURE", "EVIDENCE-PACKAGE"} <= {c for c, _m in foreign.failures}


def test_the_contents_are_checked_not_only_their_digests(exported: Exported) -> None:
    """A log record changed inside records.json, with the manifest redone but unsigned by
    the node (a forger's best), fails on the signature and on the record's hash; the
    record check alone (verifying the records as they are) names the record."""
    from docaxis.evidence._asice import ContainerReport, _check_hops, _check_log

    with zipfile.ZipFile(io.BytesIO(exported.container)) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    log = json.loads(files["log/records.json"])
    log["records"][0]["detail"] = "nothing happened"
    files["log/records.json"] = json.dumps(log).encode()
    report = ContainerReport()
    _check_log(files, report, TimestampVerifier.load([exported.pki.root_path]))
    assert any(code == "EVIDENCE-RECORD" and str(log["records"][0]["id"]) in message
               for code, message in report.failures)
    # a node's signed statement about another package proves nothing about this one
    from docaxis.dsig import TrustStore

    trust = TrustStore.load([exported.pki.root_path], crls=[exported.pki.crl_folder])
    elsewhere = ContainerReport(sha256="0" * 64)
    _check_hops(files, elsewhere, trust, None)
    assert elsewhere.hops >= 2 and {c for c, _m in elsewhere.failures} == {"EVIDENCE-HOP"}


def test_an_unknown_document_is_a_clear_error(exported: Exported) -> None:
    danang = exported.network.nodes["danang"]
    assert danang.node_signer is not None
    with pytest.raises(EvidenceError) as caught:
        export_container(danang.store, "000.00.00.H43,2024/05/02,999/X", node_id="danang",
                         signer=danang.node_signer, verifier=danang.verifier)
    assert caught.value.code == "EVIDENCE-UNKNOWN"


def test_the_cli_exports_and_verifies(exported: Exported, tmp_path: Path) -> None:
    danang = exported.network.nodes["danang"]
    store_url = str(danang.store.engine.url)
    data = tmp_path / "danang-data"
    data.mkdir()
    (data / "blobs").symlink_to(danang.store.blobs.root)
    nodes = exported.pki.folder / "nodes" / "danang"
    config = tmp_path / "node.toml"
    (tmp_path / "network.toml").write_text(exported.network.directory.to_toml(),
                                           encoding="utf-8")
    config.write_text(
        f'[node]\nid = "danang"\ndirectory = "network.toml"\ndata = "{data}"\n'
        f'database = "{store_url}"\n'
        f'key = "{nodes / "key.pem"}"\ncertificate = "{nodes / "chain.pem"}"\n\n'
        f'[trust]\nanchors = ["{exported.pki.root_path}"]\ncrls = ["{exported.pki.crl_folder}"]\n',
        encoding="utf-8")
    output = tmp_path / "evidence.asice"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})

    done = cli("evidence", "export", exported.document_id, "--config", str(config), "-o",
               str(output))
    assert done.returncode == 0, done.stdout + done.stderr
    checked = cli("evidence", "verify", str(output), "--trust", str(exported.pki.root_path),
                  "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["valid"] is True
    output.write_bytes(_rewritten(output.read_bytes(), {"package.edxml": b"<x/>"}))
    bad = cli("evidence", "verify", str(output), "--trust", str(exported.pki.root_path))
    assert bad.returncode == 1 and "EVIDENCE-DIGEST" in bad.stdout
