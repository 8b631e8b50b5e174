"""The hop pipeline, identical on every tier (ARCHITECTURE.md, "one hop, one pipeline").

receive → size check → parse → validate (interop) → verify signature (signer = From) →
dedup (From + DocumentId + SHA-256; a repeat gets the original acceptance) → commit to the
store (log, outbox, inbox, events, in one transaction) → acknowledge the sender → hand
over to the next hops with publisher confirms → mark sent. Signed bytes are never
rewritten; the hop trace travels beside them in transport headers and hop receipts.

Fan-out follows the node tree without loops: a node never sends a package back to the
node it came from, and a node that received a package from its parent only serves the
recipients in its own subtree.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

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
    validate,
)
from docaxis.relay._faults import fault_point
from docaxis.store import Acceptance, PackageFacts, Store
from docaxis.transport import Broker, Consumer, Message, Reject

KIND = "x-docaxis-kind"
ORIGIN = "x-docaxis-origin"
FROM_NODE = "x-docaxis-from-node"


class Rejection(DocaxisError):
    """A package refused by a node, with every reason (stable codes)."""

    default_code = "RELAY-REJECTED"

    def __init__(self, message: str, reasons: list[dict[str, object]], *,
                 code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.reasons = reasons


@dataclass(frozen=True)
class HopReceipt:
    """A small notice a node sends toward the origin node about one package."""

    document_id: str | None
    sha256: str
    node: str
    kind: str
    at: str
    agency: str | None = None
    detail: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> HopReceipt:
        return cls(**json.loads(data))


@dataclass
class RelayNode:
    """One axis node: the pipeline, its store, and links to its neighbours.

    Parameters
    ----------
    node_id:
        This node's id in the directory.
    directory:
        Nodes, agencies and routes.
    store:
        This node's store (migrated).
    links:
        ``node_id -> Broker`` for this node and its neighbours (one broker for all in the
        embedded mode; one per node URL in production).
    verifier:
        The strict signature verifier (trust store loaded once).
    """

    node_id: str
    directory: Directory
    store: Store
    links: Callable[[str], Broker]
    verifier: Verifier
    limits: ParseLimits = field(default_factory=ParseLimits)
    prefetch: int = 16
    _consumer: Consumer | None = field(default=None, init=False, repr=False)
    _dispatcher: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        broker = self.links(self.node_id)
        await broker.declare_node(self.node_id)
        self._consumer = await broker.consume(self.node_id, self.on_message,
                                              prefetch=self.prefetch)
        self._dispatcher = asyncio.create_task(self._dispatch_forever())

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher

    # -- agency-facing -----------------------------------------------------------------
    def submit(self, data: bytes, *, agency: str | None = None) -> Acceptance:
        """A package posted by a local agency system: check, commit, acknowledge.

        Raises
        ------
        Rejection
            With every reason (parse/validation/verification codes) when refused.
        """
        parsed = self._check(data)
        sender = parsed.package.sender
        if agency is not None and sender != agency:
            raise Rejection(f"agency {agency} may not post a package From {sender}",
                            [{"code": "RELAY-NOT-SENDER"}], code="RELAY-NOT-SENDER")
        acceptance = self._commit(parsed, received_from=None, origin=self.node_id,
                                  from_parent=False)
        self._wake.set()
        return acceptance

    # -- hop ---------------------------------------------------------------------------
    async def on_message(self, message: Message) -> None:
        kind = message.headers.get(KIND, "package")
        if kind == "hop-receipt":
            await self._on_hop_receipt(message)
            return
        origin = message.headers.get(ORIGIN) or ""
        came_from = message.headers.get(FROM_NODE)
        try:
            parsed = self._check(message.body)
        except Rejection as exc:
            self._notify(origin, HopReceipt(None, _sha(message.body), self.node_id, "rejected",
                                            _now(), detail=json.dumps(exc.reasons)[:2000]))
            raise Reject(f"{exc.code}: {exc.message}") from None
        fault_point("while-consuming")
        parent = self.directory.nodes[self.node_id].parent
        self._commit(parsed, received_from=came_from, origin=origin,
                     from_parent=came_from is not None and came_from == parent)
        self._wake.set()

    # -- pipeline ----------------------------------------------------------------------
    def _check(self, data: bytes) -> ParsedPackage:
        try:
            parsed = parse(data, limits=self.limits)
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

    def _commit(self, parsed: ParsedPackage, *, received_from: str | None, origin: str,
                from_parent: bool) -> Acceptance:
        package = parsed.package
        if isinstance(package, StatusPackage):
            rf = package.header.response_for
            recipients = [rf.organ_id] if rf is not None and rf.organ_id else []
            facts = PackageFacts("status", package.sender, package.document_id,
                                 status_code=package.status_code)
        else:
            assert isinstance(package, DocumentPackage)
            recipients = [code for code in package.recipients if code]
            facts = PackageFacts("document", package.sender, package.document_id,
                                 business_doc_type=package.business_doc_type)
        inbox: list[str] = []
        next_hops: dict[str, list[str]] = {}
        what = (f"status {package.status_code}" if isinstance(package, StatusPackage)
                else "document")
        where = f" from node {received_from}" if received_from else " from its agency system"
        events: list[tuple[str, str | None, str | None]] = [
            ("received", package.sender, what + where),
            ("verified", package.sender, "signature valid, signer = From")]
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
                inbox.append(recipient)
                events.append(("delivered", recipient, "in the recipient's inbox"))
            elif route.node == received_from or (from_parent and route.kind == "up"):
                continue  # that branch is served by the node it came from / another branch
            else:
                next_hops.setdefault(route.node, []).append(recipient)
        headers = {KIND: "package", ORIGIN: origin or self.node_id, FROM_NODE: self.node_id}
        outbox = [(node, "package", headers) for node in next_hops]
        for node, agencies in next_hops.items():
            events.append(("routed", None, f"to node {node} for {', '.join(agencies)}"))
        acceptance = self.store.accept(parsed.source, facts, node=self.node_id,
                                       received_from=received_from, origin_node=origin,
                                       outbox=outbox, inbox=inbox, events=events)
        if acceptance.duplicate:
            return acceptance
        fault_point("after-commit")
        if isinstance(package, DocumentPackage) and package.business_doc_type in (1, 2, 3):
            self._link(package, acceptance.sha256)
        if isinstance(package, StatusPackage) and inbox and package.document_id:
            self.store.record_status(package.document_id, package.sender or "?",
                                     package.status_code or "??", acceptance.sha256)
        if origin and origin != self.node_id:
            for kind, agency, detail in events:
                if kind in ("received", "delivered", "routed"):
                    self._notify(origin, HopReceipt(facts.document_id, acceptance.sha256,
                                                    self.node_id, kind, _now(), agency, detail))
        return acceptance

    def _link(self, package: DocumentPackage, sha256: str) -> None:
        """Recall / update / replace: record it in the trace of the document it acts on."""
        action = {1: "recall", 2: "update", 3: "replace"}[package.business_doc_type]
        business = package.business
        targets = [r.document_id for r in business.replacements if r.document_id] if (
            business is not None and package.business_doc_type == 3) else []
        if not targets:
            targets = [(business.document_id if business else None) or package.document_id]
        for target in targets:
            if target:
                self.store.add_event(self.node_id, action, sha256=sha256, document_id=target,
                                     agency=package.sender,
                                     detail=f"{action} by {package.document_id}")

    # -- hand-over ---------------------------------------------------------------------
    async def dispatch_once(self) -> int:
        """Hand over every pending outbox row (publish with confirm, then mark sent)."""
        sent = 0
        for item in self.store.pending_outbox():
            data = self.store.package_bytes(item.sha256)
            message = Message(data, item.headers, message_id=f"{item.sha256}:{self.node_id}")
            await self.links(item.destination_node).publish(item.destination_node, message)
            fault_point("after-publish")
            self.store.mark_sent(item.id)
            package = self.store.package(item.sha256)
            self.store.add_event(self.node_id, "handed_over", sha256=item.sha256,
                                 document_id=package.document_id if package else None,
                                 detail=f"to node {item.destination_node}")
            sent += 1
        return sent

    async def _dispatch_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._wake.clear()
            try:
                await self.dispatch_once()
            except Exception:
                await asyncio.sleep(0.5)

    # -- hop receipts ------------------------------------------------------------------
    def _notify(self, origin: str, receipt: HopReceipt) -> None:
        if not origin or origin == self.node_id:
            return
        asyncio.get_running_loop().create_task(self._send_receipt(origin, receipt))

    async def _send_receipt(self, origin: str, receipt: HopReceipt) -> None:
        target = self.directory.next_node(self.node_id, origin)
        if target is None:
            return
        with contextlib.suppress(Exception):  # receipts are informative; never block a hop
            await self.links(target).publish(target, Message(
                receipt.to_bytes(), {KIND: "hop-receipt", ORIGIN: origin,
                                     FROM_NODE: self.node_id}))

    async def _on_hop_receipt(self, message: Message) -> None:
        origin = message.headers.get(ORIGIN, "")
        receipt = HopReceipt.from_bytes(message.body)
        if origin == self.node_id:
            document_id = receipt.document_id
            if document_id is None:  # a node that refused it may not have read it
                row = self.store.package(receipt.sha256)
                document_id = row.document_id if row is not None else None
            self.store.add_event(receipt.node, f"hop:{receipt.kind}", sha256=receipt.sha256,
                                 document_id=document_id, agency=receipt.agency,
                                 detail=receipt.detail,
                                 at=dt.datetime.fromisoformat(receipt.at))
            return
        await self._send_receipt(origin, receipt)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
