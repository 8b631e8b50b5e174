"""Hop evidence (bằng chứng chuyển tiếp): the receipts nodes send toward a package's origin.

Each node tells the origin node what it did with a package — received, routed, delivered,
refused — so that the origin can show the whole path without asking every node. A node's
receipts are a statement signed with its node certificate; receipts toward one origin
wait ``receipt_interval`` and travel as one message (a node's own and those it passes on,
unchanged). The origin records only statements whose signature, chain and node verify
(``docs/signatures.md``), and turns a refusal into a rejection notice in the sender's inbox.

:class:`HopEvidence` owns the outgoing queues, the timer and the sending tasks of one
node, and changes them on the node's event loop only; it reads the node's configuration
(directory, store, verifier, signer) when it needs it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from docaxis.directory import UnknownDestination
from docaxis.dsig import SignedStatement, verify_statement
from docaxis.relay._refusals import accepted_refusal_status
from docaxis.store import Event, PackageFacts
from docaxis.transport import Message

if TYPE_CHECKING:
    from docaxis.relay._node import RelayNode

_log = logging.getLogger("docaxis.relay")

KIND = "x-docaxis-kind"
ORIGIN = "x-docaxis-origin"
FROM_NODE = "x-docaxis-from-node"


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
    #: a refusal's edXML status 02, signed by the refusing node as its operator agency
    #: (base64; see :mod:`docaxis.relay._refusals`)
    status: str | None = None


#: the longest text field of a receipt; a signed status 02 may be longer
RECEIPT_FIELD_CHARS = 5000
RECEIPT_STATUS_CHARS = 64 * 1024


@dataclass(eq=False)
class HopEvidence:
    """The hop receipts of one node (see the module's docstring)."""

    node: RelayNode
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _own: dict[str, list[HopReceipt]] = field(default_factory=dict, init=False, repr=False)
    #: other nodes' signed statements passing through here toward their origin
    _forward: dict[str, list[object]] = field(default_factory=dict, init=False, repr=False)
    _timer: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)
    _sending: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _said_unsigned: bool = field(default=False, init=False, repr=False)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def close(self) -> None:
        """Send what is held now, wait (briefly) for the sends, and stop."""
        if self._timer is not None:
            self._timer.cancel()
            self._flush_receipts()
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=5)
        self._loop = None

    def notify(self, origin: str, receipts: list[HopReceipt]) -> None:
        """Send hop receipts toward the origin node, in the background. Callable from any
        thread: the queues are changed on the event loop only."""
        loop = self._loop
        if not origin or origin == self.node.node_id or not receipts or loop is None:
            return
        loop.call_soon_threadsafe(self._queue_receipts, origin, receipts)

    def _queue_receipts(self, origin: str, receipts: list[HopReceipt]) -> None:
        """Hold receipts for ``receipt_interval`` seconds, so that those of many packages —
        this node's own and those it passes on toward their origin — travel as one
        message per origin. A route of n hops would otherwise carry n(n+1)/2 receipt
        messages per package, more than the packages themselves."""
        self._own.setdefault(origin, []).extend(receipts)
        self._arm_receipt_timer()

    def _queue_forward(self, origin: str, statements: list[object]) -> None:
        """Pass other nodes' signed statements on toward ``origin``, unchanged."""
        self._forward.setdefault(origin, []).extend(statements)
        self._arm_receipt_timer()

    def _arm_receipt_timer(self) -> None:
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.node.receipt_interval,
                                                        self._flush_receipts)

    def _flush_receipts(self) -> None:
        self._timer = None
        own, self._own = self._own, {}
        forward, self._forward = self._forward, {}
        for origin in {*own, *forward}:
            statements = list(forward.get(origin, ()))
            receipts = own.get(origin)
            if receipts:
                if self.node.node_signer is None:
                    if not self._said_unsigned:  # once: it is a configuration, not an event
                        self._said_unsigned = True
                        _log.warning("hop_receipt.unsigned", extra={
                            "code": "RELAY-HOP-RECEIPT", "node": self.node.node_id,
                            "reason": "no node key configured: hop receipts are not sent"})
                else:
                    # a receipt without a status says no "status" key: a node of the
                    # version before it reads it as before
                    body = json.dumps([{k: v for k, v in r.__dict__.items()
                                        if k != "status" or v is not None} for r in receipts],
                                      ensure_ascii=False, sort_keys=True).encode()
                    statements.append(self.node.node_signer.sign(body).to_json())
            if not statements:
                continue
            task = asyncio.get_running_loop().create_task(self._send_receipts(origin,
                                                                              statements))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send_receipts(self, origin: str, statements: list[object]) -> None:
        target = self.node.directory.next_node(self.node.node_id, origin)
        if target is None:
            return
        body = json.dumps({"statements": statements}).encode()
        try:  # receipts are informative: a failure never blocks a hop
            await self.node.links(target).publish(target, Message(
                body, {KIND: "hop-receipt", ORIGIN: origin, FROM_NODE: self.node.node_id}))
        except Exception as exc:  # any transport failure: logged, the hop goes on
            _log.warning("hop_receipt.send_failed", extra={
                "code": "RELAY-HOP-RECEIPT", "node": self.node.node_id, "origin": origin,
                "error": repr(exc)})

    async def on_message(self, message: Message) -> None:
        """A hop-receipt message: passed on toward its origin, or verified and recorded."""
        origin = message.headers.get(ORIGIN, "")
        try:
            raw = json.loads(message.body)
            statements = raw["statements"] if isinstance(raw, dict) else None
            if not isinstance(statements, list):
                raise ValueError("no statements")
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("hop_receipt.refused", extra={
                "code": "RELAY-HOP-RECEIPT", "node": self.node.node_id,
                "from_node": message.headers.get(FROM_NODE), "reason": f"unreadable: {exc}"})
            return
        if origin != self.node.node_id:
            self._queue_forward(origin, statements)  # passed on with this node's own
            return
        # verification and store work off the event loop: it keeps serving hops meanwhile
        await asyncio.to_thread(self._verify_and_record, statements,
                                message.headers.get(FROM_NODE))

    def _verify_and_record(self, statements: list[object], from_node: str | None) -> None:
        """Record the receipts of each statement whose node signature verifies against the
        trust anchors and whose node is in the directory; drop (and log) the others."""
        receipts: list[HopReceipt] = []
        kept: list[tuple[str, str, list[HopReceipt]]] = []  # (node, JSON, its receipts)
        for raw in statements:
            try:
                statement = SignedStatement.from_json(raw)
                check = verify_statement(statement, self.node.verifier.policy.trust)
                if not check.valid or check.node not in self.node.directory.nodes:
                    reasons = [f.code for f in check.failures] or ["not in the directory"]
                    raise ValueError(f"node signature refused ({', '.join(reasons)}) for "
                                     f"{check.node!r}")
                items = json.loads(statement.body)
                if not isinstance(items, list):
                    raise ValueError("the body is not a list of receipts")
                signed = [_receipt(item) for item in items]
            except (ValueError, TypeError) as exc:
                _log.warning("hop_receipt.refused", extra={
                    "code": "RELAY-HOP-RECEIPT", "node": self.node.node_id,
                    "from_node": from_node, "reason": str(exc)})
                continue
            foreign = [r for r in signed if r.node != check.node]
            if foreign:
                _log.warning("hop_receipt.refused", extra={
                    "code": "RELAY-HOP-RECEIPT", "node": self.node.node_id, "from_node": from_node,
                    "reason": f"node {check.node} signed receipts of {foreign[0].node}"})
            own = [r for r in signed if r.node == check.node]
            receipts += own
            if own and check.node is not None:
                kept.append((check.node, json.dumps(raw, sort_keys=True), own))
        if receipts:
            self._record_hop_receipts(receipts, kept)

    def _record_hop_receipts(self, receipts: list[HopReceipt],
                             statements: Sequence[tuple[str, str, list[HopReceipt]]] = (),
                             ) -> None:
        """At the origin node: put each hop's receipt in the document's trace, keep the
        signed statements (evidence of what each node asserted); tell the sender about a
        refusal."""
        events, documents = [], []
        rows: dict[str, tuple[str | None, str | None] | None] = {}
        for receipt in receipts:
            if receipt.sha256 not in rows:
                row = self.node.store.package(receipt.sha256)
                rows[receipt.sha256] = ((row.document_id, row.document_sender)
                                        if row is not None else None)
            known = rows[receipt.sha256]
            if known is None:  # not a package sent from here: nothing to put it in
                continue
            events.append(Event(receipt.node, f"hop:{receipt.kind}",
                                dt.datetime.fromisoformat(receipt.at), receipt.agency,
                                receipt.detail, receipt.sha256))
            documents.append(known)
        self.node.store.add_events(events, documents=documents)
        self.node.store.add_hop_statements([
            (node, statement, [r.sha256 for r in own if rows.get(r.sha256) is not None])
            for node, statement, own in statements
            if any(rows.get(r.sha256) is not None for r in own)])
        for receipt in receipts:
            if receipt.kind in ("rejected", "unroutable"):
                self._notify_sender(receipt)

    def _notify_sender(self, receipt: HopReceipt) -> None:
        """A later node refused a package sent from here, or could not route it to one of
        its recipients (its directory does not know the agency): put a rejection notice
        (JSON, with every reason and its stable code) into the sending agency's inbox."""
        row = self.node.store.package(receipt.sha256)
        if row is None or not row.sender:
            return
        if receipt.kind == "unroutable":
            reasons: list[dict[str, object]] = [{
                "code": UnknownDestination.default_code, "recipient": receipt.agency,
                "message": receipt.detail}]
            what = f"not deliverable to {receipt.agency}: unknown at node {receipt.node}"
        else:
            try:
                reasons = json.loads(receipt.detail or "[]")
            except ValueError:
                reasons = [{"message": receipt.detail}]
            what = f"refused at node {receipt.node}"
        notice = json.dumps({
            "kind": "rejection", "document_id": row.document_id,
            "package_sha256": receipt.sha256, "rejected_by_node": receipt.node,
            "recipient": receipt.agency, "at": receipt.at, "reasons": reasons,
        }, ensure_ascii=False, indent=2).encode()
        self.node.store.accept(notice, PackageFacts("rejection", None, row.document_id,
                                               document_sender=row.document_sender),
                          node=self.node.node_id, inbox=[row.sender],
                          events=[("rejection_notice", row.sender, f"{what}; the sender is told")])
        if receipt.status is None:
            return
        admitted = accepted_refusal_status(receipt.status, refusing_node=receipt.node,
                                           document_id=row.document_id, sender=row.sender,
                                           verifier=self.node.verifier)
        if admitted is not None:  # the standard answer too: a status 02 the sender can verify
            data, operator = admitted
            self.node.store.accept(data, PackageFacts(
                "status", operator, row.document_id, status_code="02",
                document_sender=row.sender), node=self.node.node_id, inbox=[row.sender],
                events=[("refusal_status", row.sender,
                         f"status 02 signed by node {receipt.node} as {operator}")])


def _receipt(item: object) -> HopReceipt:
    """A hop receipt from its JSON form; ``ValueError``/``TypeError`` when malformed."""
    if not isinstance(item, dict):
        raise ValueError("a receipt is an object")
    receipt = HopReceipt(**item)
    for name, value in receipt.__dict__.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"receipt field {name} is not text")
        if value is not None and len(value) > (RECEIPT_STATUS_CHARS if name == "status"
                                               else RECEIPT_FIELD_CHARS):
            raise ValueError(f"receipt field {name} is too long")
    if not (receipt.sha256 and receipt.node and receipt.kind and receipt.at):
        raise ValueError("a receipt needs sha256, node, kind and at")
    dt.datetime.fromisoformat(receipt.at)
    return receipt
