"""Evidence containers (hồ sơ chứng cứ): one document's proof in an ASiC-E file.

The container is a ZIP laid out as ETSI EN 319 162-1 says for ASiC-E: ``mimetype`` first,
stored (``application/vnd.etsi.asic-e+zip``); the data objects; ``META-INF/ASiCManifest.xml``
naming each data object with its SHA-256; ``META-INF/signature.p7s``, a CMS detached
signature of the manifest by the exporting node's key. The data objects:

``package.edxml``
    the package's exact bytes, as logged (a large one written and read by streaming:
    :func:`write_container` and :func:`verify_container` hold no more of it in memory
    than of a small one);
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
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

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
from docaxis.edxml import ParseError, ParseLimits, StatusPackage, parse
from docaxis.store import DocumentSummary, Head, Store, manifest
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
#: the largest container :func:`verify_container` opens, and the largest package in it
MAX_CONTAINER = 2 * 1024**3
MAX_MEMBER = 1024**3
#: what the files held in memory while a container is checked — all but a large package —
#: may take together, whatever their headers declare (a real container's records,
#: statuses and CRLs take a few MiB)
MAX_HELD = 256 * 1024 * 1024
#: a package larger than this goes through a temporary file, read by streaming, when a
#: container is written or checked; smaller ones (and every other file) are held in memory
SPOOL_ABOVE = 8 * 1024 * 1024
#: how a spooled package is read: by streaming, up to the largest package a node takes
_FILE_LIMITS = ParseLimits(max_bytes=2 * 1024**3, stream_above=0)
_BLOCK = 1024 * 1024
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
    """The evidence container of one document logged at this node, in memory (for a
    package of any size, :func:`write_container` writes it to a file by streaming).

    Raises
    ------
    EvidenceError
        ``EVIDENCE-UNKNOWN`` when no document has this DocumentId here,
        ``EVIDENCE-AMBIGUOUS`` when several senders used it (give ``sender``).
    """
    out = io.BytesIO()
    write_container(store, document_id, out, node_id=node_id, signer=signer,
                    verifier=verifier, sender=sender)
    return out.getvalue()


def write_container(store: Store, document_id: str, output: IO[bytes], *, node_id: str,
                    signer: StatementSigner, verifier: Verifier,
                    sender: str | None = None) -> None:
    """Write the evidence container of one document logged at this node to ``output`` (a
    binary file open for writing). A package over :data:`SPOOL_ABOVE` bytes is copied
    from the store to a temporary file, verified from it by streaming and copied into the
    container in blocks: the memory this takes does not grow with the package.

    Raises
    ------
    EvidenceError
        As :func:`export_container`; ``EVIDENCE-SPOOL`` when the temporary copy of a large
        package cannot be written.
    BlobError
        The package's bytes in the store are missing or not what was logged.
    """
    document = _document(store, document_id, node_id, sender)
    with tempfile.TemporaryDirectory(prefix="docaxis-evidence-") as spool:
        package, package_digest = _package(store, document.sha256, Path(spool))
        report = verifier.verify(package, limits=_FILE_LIMITS if isinstance(package, Path)
                                 else None)
        files = _evidence_files(store, document, document_id, node_id, verifier,
                                _json(report.to_dict()))
        digests = {"package.edxml": package_digest,
                   **{name: hashlib.sha256(data).digest() for name, data in files.items()}}
        manifest_xml = _manifest(digests)
        _zip(output, package, files, manifest_xml, sign_detached(signer, manifest_xml))


def _document(store: Store, document_id: str, node_id: str,
              sender: str | None) -> DocumentSummary:
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
    return found[0]


def _package(store: Store, sha256: str, spool: Path) -> tuple[bytes | Path, bytes]:
    """The logged package — its bytes, or over :data:`SPOOL_ABOVE` a file in ``spool`` —
    and its SHA-256 (the store checks it against the log as it reads)."""
    size, chunks = store.package_chunks(sha256, block=_BLOCK)
    if size <= SPOOL_ABOVE:
        data = b"".join(chunks)
        return data, hashlib.sha256(data).digest()
    path, digest = spool / "package.edxml", hashlib.sha256()
    with _Spool(path) as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
    return path, digest.digest()


class _Spool:
    """The temporary copy of a large package, open for writing: a failure to write it (the
    temporary folder full or unwritable) is :class:`EvidenceError` ``EVIDENCE-SPOOL`` —
    never blamed on the package, the store or the container being read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._out = path.open("wb")
        except OSError as exc:
            raise self._error(exc) from None

    def write(self, block: bytes) -> None:
        try:
            self._out.write(block)
        except OSError as exc:
            raise self._error(exc) from None

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._out.close()
        except OSError as error:
            if exc[0] is None:
                raise self._error(error) from None

    def _error(self, exc: OSError) -> EvidenceError:
        return EvidenceError(f"cannot write the temporary copy of the package in "
                             f"{self.path.parent.parent} ({exc.strerror or exc}): give "
                             "$TMPDIR room for the largest package", code="EVIDENCE-SPOOL")


def _evidence_files(store: Store, document: DocumentSummary, document_id: str, node_id: str,
                    verifier: Verifier, report: bytes) -> dict[str, bytes]:
    """Every file of the container but the package, the manifest and its signature."""
    files: dict[str, bytes] = {"report.json": report}
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
    return files


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str).encode()


def _manifest(digests: dict[str, bytes]) -> bytes:
    """The manifest naming each data object (name -> its SHA-256) with its digest."""
    root = etree.Element(f"{{{ASIC}}}ASiCManifest", nsmap={"asic": ASIC, "ds": DS})
    etree.SubElement(root, f"{{{ASIC}}}SigReference", URI=SIGNATURE,
                     MimeType="application/pkcs7-signature")
    for name, digest in digests.items():
        reference = etree.SubElement(root, f"{{{ASIC}}}DataObjectReference", URI=name,
                                     MimeType=_MEDIA.get(PurePosixPath(name).suffix,
                                                         "application/octet-stream"))
        etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=SHA256_URI)
        etree.SubElement(reference, f"{{{DS}}}DigestValue").text = base64.b64encode(
            digest).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _zip(output: IO[bytes], package: bytes | Path, files: dict[str, bytes],
         manifest_xml: bytes, signature: bytes) -> None:
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE.encode(),
                         compress_type=zipfile.ZIP_STORED)
        if isinstance(package, Path):  # in blocks, from its file; stored: deflate takes
            # ≈ 35 MB/s and saves under a quarter of base64 (of scans, compressed already)
            stored = zipfile.ZipInfo("package.edxml", time.localtime()[:6])
            stored.compress_type = zipfile.ZIP_STORED
            with package.open("rb") as source, \
                    archive.open(stored, "w", force_zip64=True) as member:
                while block := source.read(_BLOCK):
                    member.write(block)
        else:
            archive.writestr("package.edxml", package)
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(MANIFEST, manifest_xml)
        archive.writestr(SIGNATURE, signature)


# -- verification ----------------------------------------------------------------------
def verify_container(source: bytes | os.PathLike[str], anchors: list[x509.Certificate], *,
                     tsa: TimestampVerifier | None = None) -> ContainerReport:
    """Check an evidence container offline (see the module's docstring): its bytes, or the
    path of the file (a package over :data:`SPOOL_ABOVE` bytes in it is checked by
    streaming from a temporary file, never whole in memory); ``tsa``: the timestamping
    authority's anchors (default: ``anchors``).

    Raises
    ------
    EvidenceError
        ``EVIDENCE-SPOOL``: the temporary copy of a large package cannot be written (the
        container is not judged).
    """
    report = ContainerReport()
    with tempfile.TemporaryDirectory(prefix="docaxis-evidence-") as spool:
        opened = _read_zip(source, report, Path(spool))
        if opened is not None:
            _verify(*opened, report, anchors, tsa)
    return report


def _verify(files: dict[str, bytes], digests: dict[str, bytes], package_file: Path | None,
            report: ContainerReport, anchors: list[x509.Certificate],
            tsa: TimestampVerifier | None) -> None:
    report.files = len(digests)
    manifest_xml = files.pop(MANIFEST, None)
    signature = files.pop(SIGNATURE, None)
    digests.pop(MANIFEST, None)
    digests.pop(SIGNATURE, None)
    if manifest_xml is None or signature is None:
        report.fail("EVIDENCE-CONTAINER", f"{MANIFEST} and {SIGNATURE} are required")
        return
    _check_manifest(manifest_xml, digests, report)
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
    package: bytes | Path | None = package_file or files.get("package.edxml")
    summary = _load_json(files.get("report.json"), "report.json", report)
    if package is None:
        report.fail("EVIDENCE-CONTAINER", "package.edxml is missing")
    else:
        report.sha256 = digests["package.edxml"].hex()
        if summary and summary.get("sha256") != report.sha256:
            report.fail("EVIDENCE-REPORT", "report.json judged other bytes than "
                        "package.edxml (its SHA-256 differs)")
        when = _time(summary.get("verification_time")) if summary else exported_at
        verifier = Verifier(VerificationPolicy(trust, at=when))
        verdict = verifier.verify(package, limits=_FILE_LIMITS if isinstance(package, Path)
                                  else None)
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


def _read_zip(source: bytes | os.PathLike[str], report: ContainerReport, spool: Path,
              ) -> tuple[dict[str, bytes], dict[str, bytes], Path | None] | None:
    """The container's files (name -> bytes; the package, when over :data:`SPOOL_ABOVE`
    bytes, written to a file in ``spool`` instead), the SHA-256 of every one, and that
    file; None (the report says why) when it is not a container one may open."""
    size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    if size > MAX_CONTAINER:
        report.fail("EVIDENCE-CONTAINER", f"over {MAX_CONTAINER} bytes")
        return None
    files: dict[str, bytes] = {}
    digests: dict[str, bytes] = {}
    package_file: Path | None = None
    held = 0  # bytes of the files held in memory so far
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes)
                             else source) as archive:
            entries = archive.infolist()
            if not entries or entries[0].filename != "mimetype" \
                    or entries[0].compress_type != zipfile.ZIP_STORED \
                    or archive.read(entries[0]) != MIMETYPE.encode():
                report.fail("EVIDENCE-CONTAINER", "not an ASiC-E container: the first file "
                            f"must be 'mimetype', stored, saying {MIMETYPE}")
                return None
            for entry in entries[1:]:
                name = entry.filename
                if name in digests or name.startswith("/") or ".." in name.split("/"):
                    report.fail("EVIDENCE-CONTAINER", f"file name {name!r} is repeated or "
                                "leaves the container")
                    return None
                if name == "package.edxml" and entry.file_size > SPOOL_ABOVE:
                    package_file = spool / "package.edxml"
                    with _Spool(package_file) as spooled:
                        digest = _copy_member(archive, entry, spooled, MAX_MEMBER)
                else:
                    body = io.BytesIO()
                    digest = _copy_member(archive, entry, body, MAX_HELD - held)
                    files[name] = body.getvalue()
                    held += len(files[name])
                if digest is None:
                    report.fail("EVIDENCE-CONTAINER", f"{name} is too large: the package may "
                                f"take {MAX_MEMBER} bytes, the other files {MAX_HELD} "
                                "together")
                    return None
                digests[name] = digest
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        report.fail("EVIDENCE-CONTAINER", f"not a readable ZIP: {exc}")
        return None
    return files, digests, package_file


def _copy_member(archive: zipfile.ZipFile, entry: zipfile.ZipInfo,
                 out: IO[bytes] | _Spool, limit: int) -> bytes | None:
    """Copy one file of the archive to ``out`` in blocks, its SHA-256 computed on the way;
    None once it passes ``limit`` bytes, whatever its header declared."""
    if entry.file_size > limit:
        return None
    digest, copied = hashlib.sha256(), 0
    with archive.open(entry) as member:
        while block := member.read(_BLOCK):
            copied += len(block)
            if copied > limit:
                return None
            digest.update(block)
            out.write(block)
    return digest.digest()


def _check_manifest(manifest_xml: bytes, digests: dict[str, bytes],
                    report: ContainerReport) -> None:
    """Every data object listed, with the SHA-256 the manifest names (``digests``: name ->
    SHA-256 of each file in the container but the manifest and its signature)."""
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
        if name not in digests:
            report.fail("EVIDENCE-MISSING", f"{name} is listed in the manifest but not in "
                        "the container")
        elif method is None or method.get("Algorithm") != SHA256_URI or value is None \
                or value.text != base64.b64encode(digests[name]).decode():
            report.fail("EVIDENCE-DIGEST", f"{name} is not the file the manifest lists "
                        "(its SHA-256 differs): altered")
    for name in sorted(set(digests) - listed):
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
