"""The hop pipeline proper: check → plan, synchronous and free of I/O but reads.

:class:`Pipeline` answers two questions about a package, the same on every tier
(ARCHITECTURE.md, "one hop, one pipeline"): *is it good?* (:meth:`Pipeline.check`: parse,
validate, verify, signer = From) and *what does committing it here cause?*
(:meth:`Pipeline.plan`: inbox rows, hand-overs to the next nodes, trace events, a status
brought home). It owns no state that changes: it reads the directory, the trust policy and
the store (who received what), and returns values; the node decides when to commit them.
Threads may call it freely.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from docaxis._errors import DocaxisError
from docaxis.directory import Directory, UnknownDestination
from docaxis.dsig import Verifier
from docaxis.edxml import (
    DocumentPackage,
    ParsedPackage,
    ParseError,
    ParseLimits,
    StatusPackage,
    parse,
    parse_file,
    validate,
)
from docaxis.relay._receipts import FROM_NODE, KIND, ORIGIN
from docaxis.store import Accept, PackageFacts, PackageFile, Store

#: W3C Trace Context: one trace id for a package's whole path, a new span id per hop
TRACEPARENT = "traceparent"


class Rejection(DocaxisError):
    """A package refused by a node, with every reason (stable codes)."""

    default_code = "RELAY-REJECTED"

    def __init__(self, message: str, reasons: list[dict[str, object]], *,
                 code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.reasons = reasons


@dataclass(frozen=True)
class Plan:
    """What committing a checked package here causes (the store's :class:`Accept`), with its
    origin node and the ``traceparent`` its hand-overs carry. Plain data: the parsed tree
    is not held while the plan waits for its transaction."""

    accept: Accept
    origin: str
    trace: str = ""


@dataclass(frozen=True)
class Pipeline:
    """Check and plan packages for node ``node_id`` (see the module's docstring).

    Parameters
    ----------
    node_id:
        The node whose packages these are.
    directory:
        Nodes, agencies and routes.
    store:
        Read for who received which document (statuses, recalls); never written here.
    verifier:
        The strict signature verifier (trust store and signer bindings).
    limits:
        The parser's caps.

    Examples
    --------
    >>> plan = pipeline.plan(pipeline.check(data), received_from=None,  # doctest: +SKIP
    ...                      origin="hanoi", from_parent=False)
    >>> store.accept_many([plan.accept])  # doctest: +SKIP
    """

    node_id: str
    directory: Directory
    store: Store
    verifier: Verifier
    limits: ParseLimits = field(default_factory=ParseLimits)

    def check(self, data: bytes | ParsedPackage | Path) -> ParsedPackage:
        """Parse (unless parsed already), validate (interop profile) and verify a package:
        its bytes (held in memory: never more than the in-memory cap), or a package file
        (read by streaming: a large upload, a transfer reassembled).

        Raises
        ------
        Rejection
            With every reason: parse, validation or verification codes.
        """
        if isinstance(data, ParsedPackage):
            parsed = data
        else:
            try:
                parsed = (parse_file(data, limits=dataclasses.replace(self.limits,
                                                                      stream_above=0))
                          if isinstance(data, Path)
                          else parse(data, limits=self.limits.in_memory()))
            except ParseError as exc:
                raise Rejection(exc.message, [{"code": exc.code, "message": exc.message,
                                               "line": exc.line, "column": exc.column}],
                                code=exc.code) from None
        report = validate(parsed, profile="interop")
        if not report.valid:
            reasons = [f.to_dict() for f in report.errors]
            raise Rejection("the package is not valid edXML", reasons,
                            code=str(reasons[0]["code"]))
        verification = self.verifier.verify(parsed)
        if not verification.valid:
            reasons = [f.to_dict() for f in verification.failures]
            raise Rejection(f"the signature does not verify ({verification.verdict})", reasons,
                            code=verification.failures[0].code)
        return parsed

    def plan(self, parsed: ParsedPackage, *, received_from: str | None, origin: str,
             from_parent: bool, trace: str = "") -> Plan:
        """What committing this package here causes: inbox rows, hand-overs, events.

        Raises
        ------
        Rejection
            An agency's own package with a recipient that cannot be routed, a status from
            someone who did not receive the document it answers, a recall, update or
            replacement of another sender's document, a value longer than its column.
        """
        trace = trace or new_traceparent()
        package = parsed.package
        if isinstance(package, StatusPackage):
            rf = package.header.response_for
            recipients = [rf.organ_id] if rf is not None and rf.organ_id else []
            facts = PackageFacts("status", package.sender, package.document_id,
                                 status_code=package.status_code,
                                 document_sender=rf.organ_id if rf is not None else None)
        else:
            assert isinstance(package, DocumentPackage)
            recipients = [code for code in package.recipients if code]
            header = package.header
            facts = PackageFacts("document", package.sender, package.document_id,
                                 business_doc_type=package.business_doc_type,
                                 recipients=tuple(recipients),
                                 code=str(header.code) if header.code else None,
                                 subject=header.subject)
            self._authorize_business(package)
        _check_lengths(facts)
        inbox: list[str] = []
        next_hops: dict[str, list[str]] = {}
        what = (f"status {package.status_code}" if isinstance(package, StatusPackage)
                else "document")
        where = f" from node {received_from}" if received_from else " from its agency system"
        events: list[tuple[str, str | None, str | None]] = [
            ("received", package.sender, f"{what}{where}; verified: signature valid, "
                                         "signer = From")]
        for recipient in recipients:
            try:
                route = self.directory.route(self.node_id, recipient)
            except UnknownDestination as exc:
                events.append(("unroutable", recipient, exc.message))
                if received_from is None:
                    raise Rejection(exc.message, [{"code": exc.code, "message": exc.message}],
                                    code=exc.code) from None
                continue
            if route.kind == "local":
                if isinstance(package, StatusPackage):
                    self._authorize_status(package, recipient)
                inbox.append(recipient)
                events.append(("delivered", recipient, "in the recipient's inbox"))
            elif route.node == received_from or (from_parent and route.kind == "up"):
                continue  # that branch is served by the node it came from / another branch
            else:
                next_hops.setdefault(route.node, []).append(recipient)
        headers = {KIND: "package", ORIGIN: origin or self.node_id, FROM_NODE: self.node_id,
                   TRACEPARENT: trace}
        for node, agencies in next_hops.items():
            events.append(("routed", None, f"to node {node} for {', '.join(agencies)}"))
        status = None
        if isinstance(package, StatusPackage) and inbox and package.document_id:
            # the status reached the document's sender: it is that recipient's latest word
            status = (package.document_id, package.sender or "?", package.status_code or "??")
        streamed = parsed.streamed  # a large package: its bytes stay in their file
        return Plan(Accept(b"" if streamed is not None else parsed.source, facts, self.node_id,
                           received_from, origin,
                           tuple((node, "package", headers) for node in next_hops),
                           tuple(inbox), tuple(events), _links(package), status,
                           file=PackageFile(streamed.path, streamed.sha256, streamed.size)
                           if streamed is not None else None),
                    origin, trace)

    def _authorize_status(self, package: StatusPackage, document_sender: str) -> None:
        """A status is accepted only from a recipient of the document it answers (the
        document of ``document_sender`` with that DocumentId, as logged here)."""
        document_id = package.document_id or ""
        known = [recipients for sender, recipients in self.store.documents_with_id(document_id)
                 if sender == document_sender]
        if not any(package.sender in recipients for recipients in known):
            why = ("is not a recipient of" if known else "answers no document known here as")
            message = (f"status from {package.sender} {why} {document_sender}'s document "
                       f"{document_id!r}")
            raise Rejection(message, [{"code": "RELAY-NOT-RECIPIENT", "message": message}],
                            code="RELAY-NOT-RECIPIENT")

    def _authorize_business(self, package: DocumentPackage) -> None:
        """A recall, update or replacement acts only on its own sender's documents: one
        that names a DocumentId known here only from other senders is refused."""
        for target, action, sender, _detail in _links(package):
            senders = {s for s, _ in self.store.documents_with_id(target)}
            if senders and sender not in senders:
                message = (f"{action} by {sender} names document {target!r}, which another "
                           "agency sent; only its sender may " + action + " it")
                raise Rejection(message, [{"code": "RELAY-NOT-ORIGINAL-SENDER",
                                           "message": message}],
                                code="RELAY-NOT-ORIGINAL-SENDER")

    def plan_submission(self, data: bytes | ParsedPackage, agency: str | None) -> Plan:
        """Check a package posted by ``agency`` (None: trusted caller) and plan it.

        Raises
        ------
        Rejection
            As :meth:`check`; also when ``agency`` is not the package's sender
            (``RELAY-NOT-SENDER``), or answers a document it did not receive here
            (``RELAY-NOT-RECIPIENT``).
        """
        parsed = self.check(data)
        package = parsed.package
        sender = package.sender
        if agency is not None and sender != agency:
            raise Rejection(f"agency {agency} may not post a package From {sender}",
                            [{"code": "RELAY-NOT-SENDER"}], code="RELAY-NOT-SENDER")
        if agency is not None and isinstance(package, StatusPackage):
            rf = package.header.response_for
            document_sender = rf.organ_id if rf is not None else None
            if not document_sender or not self.store.has_received(
                    agency, document_sender, package.document_id or ""):
                message = (f"{agency} has not received {document_sender}'s document "
                           f"{package.document_id!r} here: only a recipient may answer it")
                raise Rejection(message, [{"code": "RELAY-NOT-RECIPIENT", "message": message}],
                                code="RELAY-NOT-RECIPIENT")
        return self.plan(parsed, received_from=None, origin=self.node_id,
                         from_parent=False, trace=new_traceparent())


def _links(package: DocumentPackage | StatusPackage) -> tuple[
        tuple[str, str, str | None, str | None], ...]:
    """A recall / update / replacement, as events in the trace of the documents it acts on
    (``BussinessDocType`` 1 / 2 / 3; a replacement names them in ``ReplacementInfoList``)."""
    if not isinstance(package, DocumentPackage) or package.business_doc_type not in (1, 2, 3):
        return ()
    action = {1: "recall", 2: "update", 3: "replace"}[package.business_doc_type]
    business = package.business
    targets = [r.document_id for r in business.replacements if r.document_id] if (
        business is not None and package.business_doc_type == 3) else []
    if not targets:
        targets = [(business.document_id if business else None) or package.document_id or ""]
    return tuple((target, action, package.sender, f"{action} by {package.document_id}")
                 for target in targets if target)


#: the longest value each stored field takes (the database columns' sizes): a package
#: whose values are longer is refused here, the same on SQLite and PostgreSQL
_FIELD_LIMITS = (("DocumentId", "document_id", 500), ("From/OrganId", "sender", 13),
                 ("ResponseFor/OrganId", "document_sender", 13),
                 ("StatusCode", "status_code", 2))


def _check_lengths(facts: PackageFacts) -> None:
    for label, attr, limit in _FIELD_LIMITS:
        value = getattr(facts, attr)
        if value is not None and len(value) > limit:
            message = f"{label} has {len(value)} characters; at most {limit} are accepted"
            raise Rejection(message, [{"code": "RELAY-VALUE-TOO-LONG", "message": message}],
                            code="RELAY-VALUE-TOO-LONG")
    for recipient in facts.recipients:
        if len(recipient) > 13:
            message = f"To/OrganId {recipient[:40]!r}… is longer than an agency code"
            raise Rejection(message, [{"code": "RELAY-VALUE-TOO-LONG", "message": message}],
                            code="RELAY-VALUE-TOO-LONG")


def new_traceparent() -> str:
    """A new W3C ``traceparent`` (a package entering the axis)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """The next hop's ``traceparent``: the same trace id, a new span id (a new trace when
    the header is missing or malformed)."""
    parts = (parent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and all(c in "0123456789abcdef"
                                                       for c in parts[1]):
        return f"00-{parts[1]}-{secrets.token_hex(8)}-{parts[3][:2] or '01'}"
    return new_traceparent()


def trace_id(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else None
