"""Evidence export (issue #15, item 6): an ASiC-E container of one document that verifies
offline with the trust anchors alone, and fails with a code when any file in it changes.

One network on the in-process broker, every node stamping its log at a dev TSA served
over HTTP on loopback: Đà Nẵng sends a document to Hà Nội, Hà Nội answers 03, and the
container is exported at Đà Nẵng (the library call and the CLI).
"""

from __future__ import annotations

import hashlib
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
from docaxis.edxml import ParseLimits, parse, parse_file
from docaxis.evidence import (
    MIMETYPE,
    EvidenceError,
    export_container,
    verify_container,
    write_container,
)
from docaxis.node import NodeConfig
from docaxis.pki import DevPKI, DevTimestampAuthority, load_certificates, serve_tsa
from docaxis.relay import LogStamper
from tests.relay_support import Network, build_network, network_pki
from tests.test_large_packages import _peak_rss, _signed
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


def _node_config(network: Network, pki: DevPKI, folder: Path) -> Path:
    """A node.toml for Đà Nẵng's store as the test network left it (for the CLI)."""
    danang = network.nodes["danang"]
    data = folder / "danang-data"
    data.mkdir()
    (data / "blobs").symlink_to(danang.store.blobs.root)
    nodes = pki.folder / "nodes" / "danang"
    config = folder / "node.toml"
    (folder / "network.toml").write_text(network.directory.to_toml(), encoding="utf-8")
    return NodeConfig.new("danang", folder, data=data,
                          database=str(danang.store.engine.url),
                          node_key=nodes / "key.pem", node_certificate=nodes / "chain.pem",
                          anchors=[pki.root_path], crls=[pki.crl_folder]).write(config)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_the_cli_exports_and_verifies(exported: Exported, tmp_path: Path) -> None:
    config = _node_config(exported.network, exported.pki, tmp_path)
    output = tmp_path / "evidence.asice"

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


# -- a large package: written and checked by streaming --------------------------------
@dataclass
class Large:
    network: Network
    pki: DevPKI
    #: "small" and "large" (a 40 MiB scan) -> (DocumentId, SHA-256)
    documents: dict[str, tuple[str, str]]
    folder: Path


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Large]:
    """Đà Nẵng has logged a small document and one with a 40 MiB scan (a 53 MiB package,
    posted as a file, as the API does with a large upload)."""
    folder = tmp_path_factory.mktemp("large-evidence")
    pki = network_pki(folder / "pki")

    async def scenario() -> tuple[Network, dict[str, tuple[str, str]]]:
        from docaxis.transport import InMemoryBroker

        broker = InMemoryBroker(FAST)
        await broker.connect()
        network = build_network(folder / "nodes", pki, lambda _node: broker)
        danang = network.nodes["danang"]
        documents = {}
        for label, number, scan in (("small", "31", 1 << 10), ("large", "32", 40 << 20)):
            path = folder / f"{number}.edxml"
            path.write_bytes(_signed(network, SENDER, RECIPIENT, number,
                                     scan=os.urandom(scan)))
            parsed = parse_file(path, limits=ParseLimits(max_bytes=1 << 30, stream_above=0))
            danang.submit(parsed, agency=SENDER)
            documents[label] = (parsed.package.document_id or "", parsed.sha256)
        await broker.close()
        return network, documents

    network, documents = run(scenario())
    yield Large(network, pki, documents, folder)


def test_a_large_package_goes_into_its_evidence_and_is_checked_by_streaming(
        large: Large, tmp_path: Path) -> None:
    """A 53 MiB package — over what the parser holds in memory — goes into its container
    and is checked from it by streaming: valid, the package's SHA-256 named, and a
    changed byte in it caught (the manifest's digest and the package's signature)."""
    danang = large.network.nodes["danang"]
    assert danang.node_signer is not None
    document_id, sha256 = large.documents["large"]
    output = tmp_path / "large.asice"
    with output.open("wb") as out:
        write_container(danang.store, document_id, out, node_id="danang",
                        signer=danang.node_signer, verifier=danang.verifier)
    report = verify_container(output, _anchors(large.pki))
    assert report.valid, report.failures
    assert report.sha256 == sha256 and report.document_id == document_id
    with zipfile.ZipFile(output) as archive:
        summary = json.loads(archive.read("report.json"))
        package = archive.read("package.edxml")
    assert summary["valid"] is True and hashlib.sha256(package).hexdigest() == sha256
    changed = verify_container(_rewritten(output.read_bytes(),
                                          {"package.edxml": _altered(package)}),
                               _anchors(large.pki))
    assert {"EVIDENCE-DIGEST", "EVIDENCE-PACKAGE"} <= {code for code, _ in changed.failures}


def test_the_cli_exports_and_verifies_a_large_package_in_the_memory_of_a_small_one(
        large: Large, tmp_path: Path) -> None:
    """``evidence export`` and ``evidence verify`` of the 53 MiB package peak within
    24 MiB of the same commands on a small one (held whole, the package alone is 53 MiB,
    the container 40 MiB more)."""
    config = _node_config(large.network, large.pki, tmp_path)
    peaks: dict[str, list[int]] = {}
    for label, (document_id, _sha256) in large.documents.items():
        output = tmp_path / f"{label}.asice"
        peaks[label] = [
            _peak_rss("evidence", "export", document_id, "--config", str(config), "-o",
                      str(output)),
            _peak_rss("evidence", "verify", str(output), "--trust", str(large.pki.root_path))]
    growth = [b - s for s, b in zip(peaks["small"], peaks["large"], strict=True)]
    assert max(growth) < 24 << 20, [g >> 20 for g in growth]  # MiB: export, verify


def test_a_package_the_store_cannot_give_back_stops_the_export_and_leaves_no_file(
        large: Large, tmp_path: Path) -> None:
    """The large package's file damaged on disk: the export says so with its code, exits
    1 and leaves no half-written container (the file restored afterwards)."""
    config = _node_config(large.network, large.pki, tmp_path)
    document_id, sha256 = large.documents["large"]
    blob = large.network.nodes["danang"].store.blobs.legacy_path(sha256)
    original = blob.read_bytes()
    try:
        blob.write_bytes(_altered(original))
        output = tmp_path / "damaged.asice"
        done = cli("evidence", "export", document_id, "--config", str(config), "-o",
                   str(output))
        assert done.returncode == 1 and "STORE-BLOB-UNREADABLE" in done.stderr, \
            done.stdout + done.stderr
        assert not output.exists()
    finally:
        blob.write_bytes(original)


def test_no_room_for_a_large_package_s_copy_is_a_clear_error_not_a_verdict(
        large: Large, tmp_path: Path, disk: Path) -> None:
    """$TMPDIR on a 16 MiB tmpfs, too small for the 53 MiB package's temporary copy:
    export and verify each say EVIDENCE-SPOOL and exit 2 — no container left behind, no
    verdict on a container that was never checked."""
    config = _node_config(large.network, large.pki, tmp_path)
    document_id, _sha256 = large.documents["large"]
    container = tmp_path / "large.asice"
    assert cli("evidence", "export", document_id, "--config", str(config), "-o",
               str(container)).returncode == 0

    def cramped(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "200", "TMPDIR": str(disk)})

    output = tmp_path / "again.asice"
    export = cramped("evidence", "export", document_id, "--config", str(config), "-o",
                     str(output))
    assert export.returncode == 2 and "EVIDENCE-SPOOL" in export.stderr, export.stderr
    assert not output.exists()
    verify = cramped("evidence", "verify", str(container), "--trust",
                     str(large.pki.root_path))
    assert verify.returncode == 2 and "EVIDENCE-SPOOL" in verify.stderr, verify.stderr
    assert "invalid" not in verify.stdout and not list(disk.iterdir())


def test_files_held_in_memory_while_checking_are_bounded_together(
        exported: Exported, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files a check holds in memory (all but a large package) are capped together,
    whatever their headers declare: a container whose log grew past the cap is refused as
    too large, before any digest or signature is judged (the cap made 1 MiB here)."""
    import docaxis.evidence._asice as asice

    monkeypatch.setattr(asice, "MAX_HELD", 1 << 20)
    swollen = _rewritten(exported.container, {"log/records.json": b" " * (2 << 20)})
    report = verify_container(swollen, _anchors(exported.pki))
    assert [code for code, _ in report.failures] == ["EVIDENCE-CONTAINER"], report.failures
    assert "log/records.json is too large" in report.failures[0][1]
    assert verify_container(exported.container, _anchors(exported.pki)).valid  # fits
