"""The message log chained by hash (nhật ký chống sửa đổi): tamper evidence for auditors.

Each event row carries ``prev_hash`` — the ``record_hash`` of the record before it in its
writer's chain — and ``record_hash`` = SHA-256 over that link and the record's content.
A chain belongs to one writer — a store object in one process (``chain`` = the
process's token and a nonce): its records are written one transaction at a time under
that store's write lock, so a chain never forks, and processes (a node's workers, a
node's instances) never wait for one another's chains.
A process's first record links to the newest record of any chain when it starts, so a
chain cannot silently disappear from the middle of the log's history either.

:func:`audit_records` walks the log in id order and names every record that breaks:
content changed (its hash is not its content's), a record deleted or inserted before it
(its link is not its predecessor's hash), or an unchained record after chaining began.
What it cannot see alone — the last records of a chain deleted, or the whole log
rewritten consistently — is what timestamps of the chain heads (RFC 3161) are for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: the fields a record's hash covers, in this order
HASHED_FIELDS = ("chain", "package_sha256", "document_id", "document_sender", "node", "kind",
                 "agency", "detail", "at")


class _Record(Protocol):
    id: int
    chain: str | None
    prev_hash: str | None
    record_hash: str | None
    package_sha256: str
    document_id: str | None
    document_sender: str | None
    node: str
    kind: str
    agency: str | None
    detail: str | None
    at: dt.datetime


def moment(at: dt.datetime) -> str:
    """A record's time as hashed: UTC, microseconds (what both databases keep)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def record_hash(prev_hash: str, values: dict[str, Any]) -> str:
    """SHA-256 over the link and the record's content (canonical JSON)."""
    content = [moment(values["at"]) if name == "at" else values.get(name)
               for name in HASHED_FIELDS]
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def link(rows: list[dict[str, Any]], chain: str, head: str) -> str:
    """Give ``rows`` (in insertion order) their chain, link and hash, after ``head``;
    returns the new head."""
    for row in rows:
        row["chain"], row["prev_hash"] = chain, head
        head = row["record_hash"] = record_hash(head, row)
    return head


@dataclass
class AuditReport:
    """What :func:`audit_records` (and the package check) found."""

    records: int = 0
    #: records written before the log was chained (migration 0009): not covered
    unchained: int = 0
    chains: int = 0
    packages: int = 0
    #: ``(record id or None, package SHA-256 or None, code, message)``, first found first
    breaks: list[tuple[int | None, str | None, str, str]] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks

    def to_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "records": self.records, "unchained": self.unchained,
                "chains": self.chains, "packages": self.packages,
                "breaks": [{"record": record, "sha256": sha256, "code": code,
                            "message": message}
                           for record, sha256, code, message in self.breaks]}


def audit_records(records: Iterable[_Record], report: AuditReport) -> None:
    """Check the chain over ``records`` (in id order), adding what breaks to ``report``."""
    heads: dict[str, str] = {}  # chain -> its last record's stored hash
    seen: set[str] = {""}  # every stored hash so far: a new chain links to one of them
    chained = False
    for record in records:
        report.records += 1
        if record.record_hash is None or record.chain is None or record.prev_hash is None:
            if chained:
                report.breaks.append((record.id, record.package_sha256, "AUDIT-UNCHAINED",
                                      f"record {record.id} has no hash, but records before "
                                      "it are chained: it was inserted afterwards"))
            else:
                report.unchained += 1
            continue
        chained = True
        values = {name: getattr(record, name) for name in HASHED_FIELDS}
        expected_prev = heads.get(record.chain)
        if expected_prev is None:
            report.chains += 1
            if record.prev_hash not in seen:
                report.breaks.append((record.id, record.package_sha256, "AUDIT-LINK",
                                      f"record {record.id} opens chain {record.chain} after "
                                      "a record that is not in the log (deleted or altered)"))
        elif record.prev_hash != expected_prev:
            report.breaks.append((record.id, record.package_sha256, "AUDIT-LINK",
                                  f"record {record.id} does not follow the record before it "
                                  f"in chain {record.chain}: a record was deleted or "
                                  "inserted between them"))
        if record_hash(record.prev_hash, values) != record.record_hash:
            report.breaks.append((record.id, record.package_sha256, "AUDIT-ALTERED",
                                  f"record {record.id} ({record.kind} at {record.node}) was "
                                  "changed after it was written: its hash does not match "
                                  "its content"))
        heads[record.chain] = record.record_hash
        seen.add(record.record_hash)
