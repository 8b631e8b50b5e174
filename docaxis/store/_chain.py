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
rewritten consistently — is what timestamps of the chain heads (RFC 3161) are for: a
node with a TSA stamps, at an interval, the :func:`manifest` of every chain head that
grew since the last stamp; :func:`audit_stamps` checks each token against the TSA
anchors and each stamped head against the log. A record after its chain's last stamp
is *unstamped* — waiting for the next stamp, not broken.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from docaxis.dsig._timestamps import TimestampVerifier

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


#: a chain head as a stamp covers it: (chain, record id, record hash)
Head = tuple[str, int, str]


def manifest(heads: Iterable[Head]) -> bytes:
    """What a stamp's token is over (its SHA-256 is the imprint): the heads, sorted, as
    canonical JSON."""
    return json.dumps({"docaxis-log-heads": sorted([list(head) for head in heads])},
                      ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Stamp:
    """One stamp as the log keeps it."""

    id: int
    stamped_at: dt.datetime
    tsa: str
    imprint: str
    response: bytes
    heads: tuple[Head, ...]


@dataclass
class AuditReport:
    """What :func:`audit_records` (and the package check) found."""

    records: int = 0
    #: records written before the log was chained (migration 0009): not covered
    unchained: int = 0
    chains: int = 0
    packages: int = 0
    #: timestamps checked (0 without TSA anchors), and the newest one's time
    stamps: int = 0
    stamps_unchecked: int = 0
    last_stamp: dt.datetime | None = None
    #: chained records after their chain's last stamp (waiting for the next stamp), and
    #: the oldest one's time
    unstamped: int = 0
    oldest_unstamped: dt.datetime | None = None
    #: ``(record id or None, package SHA-256 or None, code, message)``, first found first
    breaks: list[tuple[int | None, str | None, str, str]] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks

    def to_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "records": self.records, "unchained": self.unchained,
                "chains": self.chains, "packages": self.packages,
                "stamps": self.stamps, "stamps_unchecked": self.stamps_unchecked,
                "last_stamp": self.last_stamp.isoformat() if self.last_stamp else None,
                "unstamped": self.unstamped,
                "oldest_unstamped": (self.oldest_unstamped.isoformat()
                                     if self.oldest_unstamped else None),
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


def audit_stamps(stamps: Iterable[Stamp], stored_hash: dict[int, tuple[str | None, str | None]],
                 verifier: TimestampVerifier | None, report: AuditReport) -> None:
    """Check each stamp: its token (with ``verifier``: signed by a trusted TSA, over the
    manifest of its heads) and each head it covers against the log (``stored_hash``:
    record id → (chain, record hash) of every stamped head found there)."""
    from docaxis.dsig._timestamps import TimestampError

    for stamp in stamps:
        body = manifest(stamp.heads)
        digest = hashlib.sha256(body).digest()
        if digest.hex() != stamp.imprint:
            report.breaks.append((None, None, "AUDIT-STAMP", f"stamp {stamp.id}: the heads "
                                  "it lists are not the ones its imprint was made over"))
        if verifier is None:
            report.stamps_unchecked += 1
        else:
            report.stamps += 1
            try:
                verifier.verify(stamp.response, digest)
            except TimestampError as exc:
                report.breaks.append((None, None, "AUDIT-STAMP",
                                      f"stamp {stamp.id} ({stamp.tsa}): {exc.code}: "
                                      f"{exc.message}"))
        if report.last_stamp is None or stamp.stamped_at > report.last_stamp:
            report.last_stamp = stamp.stamped_at
        for chain, record_id, record_hash in stamp.heads:
            if stored_hash.get(record_id) != (chain, record_hash):
                report.breaks.append((record_id, None, "AUDIT-STAMP",
                                      f"record {record_id}, stamped at "
                                      f"{stamp.stamped_at.isoformat()} by stamp {stamp.id}, "
                                      "is no longer in the log as it was stamped (deleted "
                                      "or altered)"))
