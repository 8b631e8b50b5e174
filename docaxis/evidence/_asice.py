"""Evidence containers (hồ sơ chứng cứ): one document's proof in an ASiC-E file.

The container is a ZIP laid out as ETSI EN 319 162-1 says for ASiC-E: ``mimetype`` first,
stored (``application/vnd.etsi.asic-e+zip``); the data objects; ``META-INF/ASiCManifest.xml``
naming each data object with its SHA-256; ``META-INF/signature.p7s``, a CMS detached
signature of the manifest by the exporting node's key. The data objects:

``package.edxml``
    the package's exact bytes, as logged;
``report.json``
    the exporting node's verification report (SHA-256, DocumentId, signer, trust inputs);
``log/records.json``
    the node's log records about the package and its document (received, handed over,
    delivered, each later node's signed word, refusals, statuses), and for each chain
    they belong to, the records up to the head a timestamp covers;
``log/stamp-<id>.tsr`` and ``log/stamp-<id>.json``
    each such RFC 3161 timestamp (the TSA's response) and the heads it covers;
``evidence/status-<code>-<sha>.edxml``
    every signed status answering the document (01…06, a refusing node's 02);
``evidence/hop-<n>-<node>.json``
    each later node's signed hop receipts about the package (received, passed on,
    delivered, refused — signed with that node's certificate), as the origin received them;
``trust/crl-<n>.crl``
    the CRLs the node verified with, so that revocation is checked offline.

:func:`verify_container` checks it offline with only the trust anchors (and the TSA's):
the layout, every digest of the manifest (a changed, missing or extra file is named),
the node's signature of the manifest, the package's signature at the report's time, every
record's hash, each chain segment's links up to a stamped head, each timestamp token, and
every status's signature. Each failure has a code (``EVIDENCE-…``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from docaxis import __version__
from docaxis._errors import DocaxisError
from docaxis.dsig import (
    SignedStatement,
    StatementSigner,
    TimestampError,
    TimestampVerifier,
    TrustStore,
    VerificationPolicy,
    Verifier,
    sign_detached,
    verify_detached,
    verify_statement,
)
from docaxis.edxml import ParseError, StatusPackage, parse
from docaxis.store import Head, Store, manifest
from docaxis.store._chain import HASHED_FIELDS, record_hash

MIMETYPE = "application/vnd.etsi.asic-e+zip"
MANIFEST = "META-INF/ASiCManifest.xml"
SIGNATURE = "META-INF/signature.p7s"
ASIC = "http://uri.etsi.org/02918/v1.2.1#"
DS = "http://www.w3.org/2000/09/xmldsig#"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
#: a chain segment longer than this is left out (its records are then not proven by a
#: timestamp inside the container; the report says so)
MAX_SEGMENT = 20_000
#: the largest container :func:`verify_container` opens, and the largest file in it
MAX_CONTAINER = 2 * 1024**3
MAX_MEMBER = 1024**3
_MEDIA = {".edxml": "application/xml", ".json": "application/json",
          ".tsr": "application/timestamp-reply", ".crl": "application/pkix-crl"}


class EvidenceError(DocaxisError):
    """The evidence cannot be exported (unknown document, several matches)."""

    default_code = "EVIDENCE-EXPORT"


@dataclass
class ContainerReport:
    """What :func:`verify_container` found."""

    document_id: str | None = None
    sha256: str | None = None
    exported_by: str | None = None
    exported_at: str | None = None
    files: int = 0
    records: int = 0
    stamped_records: int = 0
    stamps: int = 0
    statuses: int = 0
    hops: int = 0
    #: ``(code, message)``, in the order found
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.failures

    def fail(self, code: str, message: str) -> None:
        self.failures.append((code, message))

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "document_id": self.document_id, "sha256": self.sha256,
                "exported_by": self.exported_by, "exported_at": self.exported_at,
                "files": self.files, "records": self.records,
                "stamped_records": self.stamped_records, "stamps": self.stamps,
                "statuses": self.statuses, "hops": self.hops,
                "failures": [{"code": c, "message": m} for c, m in self.failures]}


# -- export ----------------------------------------------------------------------------
def export_container(store: Store, document_id: str, *, node_id: str,
                     signer: StatementSigner, verifier: Verifier,
                     sender: str | None = None) -> bytes:
    """The evidence container of one document logged at this node.

    Raises
    ------
    EvidenceError
        ``EVIDENCE-UNKNOWN`` when no document has this DocumentId here,
        ``EVIDENCE-AMBIGUOUS`` when several senders used it (give ``sender``).
    """
    found = [d for d in store.find_documents(document_id)
             if d.document_id == document_id and d.kind != "status"
             and (sender is None or d.sender == sender)]
    if not found:
        raise EvidenceError(f"no document {document_id!r} is logged at node {node_id}",
                            code="EVIDENCE-UNKNOWN")
    if len({d.sender for d in found}) > 1:
        raise EvidenceError(f"{document_id!r} was sent by several agencies "
                            f"({', '.join(sorted(str(d.sender) for d in found))}): give the "
                            "sender", code="EVIDENCE-AMBIGUOUS")
    document = found[0]
    data = store.package_bytes(document.sha256)
    report = verifier.verify(data)
    files: dict[str, bytes] = {"package.edxml": data,
                               "report.json": _json(report.to_dict())}
    records = store.evidence_records(document.sha256, document_id, document.sender)
    segments: dict[str, list[dict[str, Any]]] = {}
    stamps: dict[int, Any] = {}
    for chain in sorted({r["chain"] for r in records if r["chain"]}):
        first = min(r["id"] for r in records if r["chain"] == chain)
        last = max(r["id"] for r in records if r["chain"] == chain)
        stamp = store.covering_stamp(chain, last)
        if stamp is None:
            continue  # not stamped yet: its records are in, unproven by a timestamp
        head = next(h for h in stamp.heads if h[0] == chain)
        segment = store.chain_segment(chain, first, head[1], MAX_SEGMENT)
        if segment is None:
            continue
        segments[chain] = segment
        stamps[stamp.id] = stamp
    files["log/records.json"] = _json({
        "records": records, "segments": segments, "hashed_fields": list(HASHED_FIELDS)})
    for stamp_id, stamp in sorted(stamps.items()):
        files[f"log/stamp-{stamp_id}.tsr"] = stamp.response
        files[f"log/stamp-{stamp_id}.json"] = _json({
            "id": stamp.id, "stamped_at": stamp.stamped_at.isoformat(), "tsa": stamp.tsa,
            "imprint": stamp.imprint, "heads": [list(h) for h in stamp.heads]})
    for status_sha in store.statuses_for(document_id, document.sender or ""):
        status = store.package_bytes(status_sha)
        try:
            code = getattr(parse(status).package, "status_code", None) or "xx"
        except ParseError:
            code = "xx"
        files[f"evidence/status-{code}-{status_sha[:16]}.edxml"] = status
    for index, (hop_node, statement) in enumerate(store.hop_statements_for(document.sha256)):
        files[f"evidence/hop-{index}-{hop_node}.json"] = statement.encode()
    for index, crl in enumerate(verifier.policy.trust.crls):
        files[f"trust/crl-{index}.crl"] = crl.public_bytes(serialization.Encoding.DER)
    files["META-INF/docaxis.json"] = _json({
        "document_id": document_id, "sender": document.sender, "sha256": document.sha256,
        "exported_by": node_id, "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "docaxis_version": __version__})
    manifest_xml = _manifest(files)
    return _zip(files, manifest_xml, sign_detached(signer, manifest_xml))


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str).encode()


def _manifest(files: dict[str, bytes]) -> bytes:
    root = etree.Element(f"{{{ASIC}}}ASiCManifest", nsmap={"asic": ASIC, "ds": DS})
    etree.SubElement(root, f"{{{ASIC}}}SigReference", URI=SIGNATURE,
                     MimeType="application/pkcs7-signature")
    for name, data in files.items():
        reference = etree.SubElement(root, f"{{{ASIC}}}DataObjectReference", URI=name,
                                     MimeType=_MEDIA.get(PurePosixPath(name).suffix,
                                                         "application/octet-stream"))
        etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=SHA256_URI)
        etree.SubElement(reference, f"{{{DS}}}DigestValue").text = base64.b64encode(
            hashlib.sha256(data).digest()).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _zip(files: dict[str, bytes], manifest_xml: bytes, signature: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE.encode(),
                         compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(MANIFEST, manifest_xml, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(SIGNATURE, signature, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


# -- verification ----------------------------------------------------------------------
def verify_container(data: bytes, anchors: list[x509.Certificate], *,
                     tsa: TimestampVerifier | None = None) -> ContainerReport:
    """Check an evidence container offline (see the module's docstring); ``tsa``: the
    timestamping authority's anchors (default: ``anchors``)."""
    report = ContainerReport()
    files = _read_zip(data, report)
    if files is None:
        return report
    report.files = len(files)
    manifest_xml = files.pop(MANIFEST, None)
    signature = files.pop(SIGNATURE, None)
    if manifest_xml is None or signature is None:
        report.fail("EVIDENCE-CONTAINER", f"{MANIFEST} and {SIGNATURE} are required")
        return report
    _check_manifest(manifest_xml, files, report)
    crls = [x509.load_der_x509_crl(body) for name, body in files.items()
            if name.startswith("trust/") and name.endswith(".crl") and _is_crl(body)]
    trust = TrustStore(list(anchors), crls=crls)
    meta = _load_json(files.get("META-INF/docaxis.json"), "META-INF/docaxis.json", report)
    exported_at = _time(meta.get("exported_at")) if meta else None
    report.document_id = meta.get("document_id") if meta else None
    report.exported_at = meta.get("exported_at") if meta else None
    check = verify_detached(signature, manifest_xml, trust, at=exported_at)
    report.exported_by = check.node
    if not check.valid:
        report.fail("EVIDENCE-SIGNATURE", "the manifest's signature does not verify: "
                    + "; ".join(f"{f.code} {f.message}" for f in check.failures))
    package = files.get("package.edxml")
    summary = _load_json(files.get("report.json"), "report.json", report)
    if package is None:
        report.fail("EVIDENCE-CONTAINER", "package.edxml is missing")
    else:
        report.sha256 = hashlib.sha256(package).hexdigest()
        if summary and summary.get("sha256") != report.sha256:
            report.fail("EVIDENCE-REPORT", "report.json judged other bytes than "
                        "package.edxml (its SHA-256 differs)")
        when = _time(summary.get("verification_time")) if summary else exported_at
        verifier = Verifier(VerificationPolicy(trust, at=when))
        verdict = verifier.verify(package)
        if not verdict.valid:
            report.fail("EVIDENCE-PACKAGE", "package.edxml does not verify: " + ", ".join(
                f.code for f in verdict.failures))
        for name, body in files.items():
            if name.startswith("evidence/") and name.endswith(".edxml"):
                report.statuses += 1
                status = verifier.verify(body)
                if not status.valid or not isinstance(
                        status.package.package if status.package else None, StatusPackage):
                    report.fail("EVIDENCE-STATUS", f"{name} does not verify as a status: "
                                + ", ".join(f.code for f in status.failures))
    _check_hops(files, report, trust, exported_at)
    _check_log(files, report, tsa or TimestampVerifier(tuple(anchors)))
    return report


def _check_hops(files: dict[str, bytes], report: ContainerReport, trust: TrustStore,
                at: dt.datetime | None) -> None:
    """Each later node's signed statement: its signature and chain (at the export's
    time), and that it speaks of this package."""
    for name, body in files.items():
        if not (name.startswith("evidence/hop-") and name.endswith(".json")):
            continue
        report.hops += 1
        try:
            statement = SignedStatement.from_json(json.loads(body))
            check = verify_statement(statement, trust, at=at)
            receipts = json.loads(statement.body)
        except (ValueError, TypeError) as exc:
            report.fail("EVIDENCE-HOP", f"{name} is not a signed statement: {exc}")
            continue
        if not check.valid:
            report.fail("EVIDENCE-HOP", f"{name} does not verify: " + ", ".join(
                f.code for f in check.failures))
        elif not isinstance(receipts, list) or not any(
                isinstance(r, dict) and r.get("sha256") == report.sha256
                and r.get("node") == check.node for r in receipts):
            report.fail("EVIDENCE-HOP", f"{name} says nothing of this package")


def _read_zip(data: bytes, report: ContainerReport) -> dict[str, bytes] | None:
    if len(data) > MAX_CONTAINER:
        report.fail("EVIDENCE-CONTAINER", f"over {MAX_CONTAINER} bytes")
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            if not entries or entries[0].filename != "mimetype" \
                    or entries[0].compress_type != zipfile.ZIP_STORED \
                    or archive.read(entries[0]) != MIMETYPE.encode():
                report.fail("EVIDENCE-CONTAINER", "not an ASiC-E container: the first file "
                            f"must be 'mimetype', stored, saying {MIMETYPE}")
                return None
            files: dict[str, bytes] = {}
            for entry in entries[1:]:
                name = entry.filename
                if name in files or name.startswith("/") or ".." in name.split("/"):
                    report.fail("EVIDENCE-CONTAINER", f"file name {name!r} is repeated or "
                                "leaves the container")
                    return None
                if entry.file_size > MAX_MEMBER:
                    report.fail("EVIDENCE-CONTAINER", f"{name} is over {MAX_MEMBER} bytes")
                    return None
                files[name] = archive.read(entry)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        report.fail("EVIDENCE-CONTAINER", f"not a readable ZIP: {exc}")
        return None
    return files


def _check_manifest(manifest_xml: bytes, files: dict[str, bytes],
                    report: ContainerReport) -> None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    try:
        root = etree.fromstring(manifest_xml, parser)
    except etree.XMLSyntaxError as exc:
        report.fail("EVIDENCE-MANIFEST", f"{MANIFEST} is not XML: {exc}")
        return
    listed: set[str] = set()
    for reference in root.iter(f"{{{ASIC}}}DataObjectReference"):
        name = reference.get("URI", "")
        method = reference.find(f"{{{DS}}}DigestMethod")
        value = reference.find(f"{{{DS}}}DigestValue")
        listed.add(name)
        if name not in files:
            report.fail("EVIDENCE-MISSING", f"{name} is listed in the manifest but not in "
                        "the container")
        elif method is None or method.get("Algorithm") != SHA256_URI or value is None \
                or value.text != base64.b64encode(hashlib.sha256(files[name]).digest()
                                                  ).decode():
            report.fail("EVIDENCE-DIGEST", f"{name} is not the file the manifest lists "
                        "(its SHA-256 differs): altered")
    for name in sorted(set(files) - listed):
        report.fail("EVIDENCE-UNLISTED", f"{name} is in the container but not in the "
                    "signed manifest")


def _check_log(files: dict[str, bytes], report: ContainerReport,
               tsa: TimestampVerifier) -> None:
    log = _load_json(files.get("log/records.json"), "log/records.json", report)
    if not log:
        return
    records = log.get("records") or []
    report.records = len(records)
    for record in records:
        if record.get("record_hash") and _hash(record) != record["record_hash"]:
            report.fail("EVIDENCE-RECORD", f"log record {record.get('id')} does not match "
                        "its hash: altered")
    proven: set[int] = set()
    stamps: dict[str, dict[str, Any]] = {}
    for name, body in files.items():
        if name.startswith("log/stamp-") and name.endswith(".json"):
            stamp = _load_json(body, name, report) or {}
            response = files.get(name[:-5] + ".tsr")
            heads: list[Head] = [tuple(h) for h in stamp.get("heads", [])]
            digest = hashlib.sha256(manifest(heads)).digest()
            report.stamps += 1
            try:
                tsa.verify(response or b"", digest)
            except TimestampError as exc:
                report.fail("EVIDENCE-STAMP", f"{name}: {exc.code}: {exc.message}")
                continue
            for chain, record_id, head_hash in heads:
                stamps[chain] = {"id": record_id, "hash": head_hash}
    for chain, segment in (log.get("segments") or {}).items():
        head = stamps.get(chain)
        previous: str | None = None
        for record in segment:
            if _hash(record) != record.get("record_hash") or (
                    previous is not None and record.get("prev_hash") != previous):
                report.fail("EVIDENCE-RECORD", f"chain {chain} breaks at record "
                            f"{record.get('id')}")
                break
            previous = record.get("record_hash")
        else:
            if head is not None and segment and segment[-1].get("id") == head["id"] \
                    and previous == head["hash"]:
                proven.update(int(r["id"]) for r in segment)
            else:
                report.fail("EVIDENCE-STAMP", f"chain {chain}'s records do not end at the "
                            "head its timestamp covers")
    report.stamped_records = sum(1 for r in records if r.get("id") in proven)
    wanted = {int(r["id"]): r.get("record_hash") for r in records}
    for chain, segment in (log.get("segments") or {}).items():
        for record in segment:
            if int(record["id"]) in wanted and wanted[int(record["id"])] != \
                    record.get("record_hash"):
                report.fail("EVIDENCE-RECORD", f"record {record['id']} differs between the "
                            f"document's records and chain {chain}'s")


def _hash(record: dict[str, Any]) -> str:
    values = {name: record.get(name) for name in HASHED_FIELDS}
    values["at"] = dt.datetime.fromisoformat(str(record.get("at")))
    return record_hash(str(record.get("prev_hash") or ""), values)


def _load_json(body: bytes | None, name: str, report: ContainerReport) -> dict[str, Any]:
    if body is None:
        report.fail("EVIDENCE-CONTAINER", f"{name} is missing")
        return {}
    try:
        value = json.loads(body)
    except ValueError as exc:
        report.fail("EVIDENCE-CONTAINER", f"{name} is not JSON: {exc}")
        return {}
    return value if isinstance(value, dict) else {}


def _time(value: object) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _is_crl(body: bytes) -> bool:
    try:
        x509.load_der_x509_crl(body)
    except ValueError:
        return False
    return True
