"""A VXP axis as a neighbour of a node: the national document axis above a province, for
instance (trục liên thông văn bản quốc gia).

Hand-over to it is ``sendEdoc`` (the outbox publishes to :class:`VxpUplink` as it
publishes to a broker); intake is polling: ``getReceivedEdocList`` → ``getEdoc`` → the
node's own hop pipeline (check, plan, commit) → ``updateStatus(done)`` only after the
commit, ``fail`` with the reason for a refused package. Exactly once across crashes: a
package fetched again after a crash between the commit and ``updateStatus`` is the same
business key (sender, DocumentId, bytes), so its commit changes nothing and it is
acknowledged then.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from docaxis.edxml import Package, ParseError, ParseLimits, StatusPackage, parse
from docaxis.relay._faults import fault_point
from docaxis.relay._receipts import FROM_NODE, KIND, ORIGIN
from docaxis.store import Event
from docaxis.transport import Message, Reject
from docaxis.vxp import VxpClient

if TYPE_CHECKING:
    from docaxis.relay._node import RelayNode

_log = logging.getLogger("docaxis.relay.uplink")


class UplinkError(Exception):
    """The axis did not answer as VXP says (unreachable, non-JSON, ``FAIL`` on a list)."""


class VxpUplink:
    """The link to a VXP axis, and its intake.

    Parameters
    ----------
    node:
        The directory's id of the axis (a neighbour of this node: usually its parent).
    client:
        A :class:`VxpClient` with this node's ``systemId`` and secret at the axis (one for
        the uplink's life, as the SDK's users keep one).
    poll_interval:
        Seconds between two polls when the last one found nothing.

    Examples
    --------
    >>> client = VxpClient("https://axis/vxp", "HN-AXIS", secret)  # doctest: +SKIP
    >>> uplink = VxpUplink("national", client, poll_interval=5.0)  # doctest: +SKIP
    """

    def __init__(self, node: str, client: VxpClient, poll_interval: float = 5.0) -> None:
        self.node, self.client, self.poll_interval = node, client, poll_interval
        self.limits = ParseLimits()
        self._relay: RelayNode | None = None

    def attach(self, relay: RelayNode) -> None:
        """The node whose trace records what the axis answered (set by the node)."""
        self._relay = relay

    async def _trace(self, kind: str, body: bytes, detail: str,
                     package: Package | None = None) -> None:
        """An event in the trace of the package's document: what the axis said of it
        (``package``: the body parsed already, if it was)."""
        relay = self._relay
        if relay is None:
            return
        try:
            package = package or parse(body, limits=self.limits).package
            owner = package.sender
            if isinstance(package, StatusPackage) and package.header.response_for:
                owner = package.header.response_for.organ_id or owner  # its document's
            await asyncio.to_thread(relay.store.add_events, [Event(
                self.node, kind, dt.datetime.now(dt.UTC), detail=detail[:2000],
                sha256=hashlib.sha256(body).hexdigest())],
                documents=[(package.document_id, owner)])
        except Exception as exc:  # the trace is evidence, not the hand-over: say it, go on
            _log.warning("uplink.trace_failed", extra={
                "code": "VXP-UPLINK-TRACE", "node": relay.node_id, "kind": kind,
                "error": repr(exc)[:300]})

    # -- hand-over (the outbox's link) -------------------------------------------------
    async def too_large(self, sha256: str, size: int, document_id: str | None,
                        owner: str | None, limit: int) -> None:
        """A package too large for ``sendEdoc`` (one body, held in memory at both ends):
        not sent, said in its document's trace and logged as an alarm — like a package
        the axis refuses (sending it again would not change the answer)."""
        _log.error("uplink.too_large", extra={
            "code": "VXP-UPLINK-TOO-LARGE", "node": self.node, "sha256": sha256,
            "document_id": document_id, "size": size, "limit": limit})
        relay = self._relay
        if relay is None:
            return
        await asyncio.to_thread(relay.store.add_events, [Event(
            self.node, "refused-by-axis", dt.datetime.now(dt.UTC),
            detail=f"VXP-UPLINK-TOO-LARGE: {size} bytes; the VXP axis takes packages of at "
                   f"most {limit} bytes in one sendEdoc", sha256=sha256)],
            documents=[(document_id, owner)])

    async def publish(self, node: str, message: Message) -> None:
        """Hand a package over by ``sendEdoc``. Raises (the outbox retries) when the axis
        cannot be reached or answers ``VXP-UNAVAILABLE``; a package the axis refuses is
        logged as handed over and refused there (``VXP-UPLINK-REFUSED``) — sending it
        again would not change the answer. Hop receipts have no VXP form: not sent."""
        if message.headers.get(KIND, "package") != "package":
            _log.info("uplink.not_sent", extra={
                "code": "VXP-UPLINK-NO-RECEIPTS", "node": node,
                "kind": message.headers.get(KIND), "message_id": message.message_id})
            return
        try:
            parsed = parse(message.body, limits=self.limits)
        except ParseError as exc:  # it passed our own check: not expected
            raise UplinkError(f"{exc.code}: {exc.message}") from None
        kind = "status" if parsed.kind == "status" else "edoc"
        try:
            answer = await self.client.send_edoc(message.body,
                                                 sender=parsed.package.sender or "",
                                                 message_type=kind)
        except Exception as exc:
            raise UplinkError(f"sendEdoc to {self.client.endpoint}: {exc!r}"[:300]) from None
        code = str(answer.get("ErrorCode"))
        if code in ("VXP-UNAVAILABLE", "None"):
            raise UplinkError(f"sendEdoc: {answer}"[:300])
        if code != "0":
            _log.warning("uplink.refused", extra={
                "code": "VXP-UPLINK-REFUSED", "node": node, "axis_code": code,
                "reason": str(answer.get("ErrorDesc"))[:300],
                "document_id": parsed.package.document_id, "message_id": message.message_id})
            await self._trace("refused-by-axis", message.body,
                              f"{code}: {answer.get('ErrorDesc')}", parsed.package)
            return
        _log.info("uplink.sent", extra={"code": "VXP-UPLINK-SENT", "node": node,
                                        "doc_id": answer.get("DocId"),
                                        "document_id": parsed.package.document_id})
        await self._trace("taken-by-axis", message.body, f"VXP DocId {answer.get('DocId')}",
                          parsed.package)

    # -- intake ------------------------------------------------------------------------
    async def poll_forever(self, relay: RelayNode) -> None:
        """Poll the axis until cancelled; a failed poll is logged and tried again."""
        failures = 0
        while True:
            try:
                taken = await self.poll_once(relay)
                failures = 0
            except UplinkError as exc:
                failures += 1
                _log.warning("uplink.poll_failed", extra={
                    "code": "VXP-UPLINK-RETRY", "node": relay.node_id, "axis": self.node,
                    "error": str(exc)[:300], "failures": failures})
                taken = 0
            if failures:  # back off: 2, 4, 8, 16 × the interval, at most a minute
                await asyncio.sleep(min(self.poll_interval * 2 ** min(failures, 4), 60.0))
            elif not taken:
                await asyncio.sleep(self.poll_interval)

    async def poll_once(self, relay: RelayNode) -> int:
        """One pass over what the axis holds for this node's systems: each package taken
        into the node (or refused), then acknowledged at the axis. Returns how many."""
        taken = 0
        for message_type in ("edoc", "status"):
            listing = await self._call(self.client.received, message_type, listing=True)
            for item in listing.get("data") or []:
                doc_id = str(item.get("docId") or "")
                if doc_id:
                    await self._take(relay, doc_id)
                    taken += 1
        return taken

    async def _take(self, relay: RelayNode, doc_id: str) -> None:
        answer, data = await self._call(self.client.get_edoc, doc_id)
        if answer.get("ErrorCode") != "0" or not data:
            _log.warning("uplink.fetch_failed", extra={
                "code": "VXP-UPLINK-RETRY", "node": relay.node_id, "doc_id": doc_id,
                "axis_code": answer.get("ErrorCode")})
            return
        message = Message(data, {KIND: "package", FROM_NODE: self.node, ORIGIN: self.node},
                          message_id=f"vxp:{doc_id}")
        try:
            await relay.on_message(message)  # returns once committed (or known already)
        except Reject as exc:
            await self._trace("refused-from-axis", data, f"VXP docId {doc_id}: {exc}")
            await self._call(self.client.update_status, doc_id, "fail", str(exc)[:500])
            return
        fault_point("after-uplink-commit")
        await self._call(self.client.update_status, doc_id, "done")
        _log.info("uplink.taken", extra={"code": "VXP-UPLINK-TAKEN", "node": relay.node_id,
                                         "doc_id": doc_id})

    async def _call(self, operation: Any, *args: Any, listing: bool = False) -> Any:
        """One VXP call; :class:`UplinkError` when the axis cannot be reached, does not
        answer VXP, is unavailable, or refuses a list (a wrong secret, for one)."""
        try:
            answer = await operation(*args)
        except Exception as exc:
            raise UplinkError(f"{getattr(operation, '__name__', 'call')}: {exc!r}"[:300]) \
                from None
        envelope = answer[0] if isinstance(answer, tuple) else answer
        if not isinstance(envelope, dict) or "ErrorCode" not in envelope:
            raise UplinkError(f"not a VXP answer: {str(envelope)[:200]}")
        if envelope.get("ErrorCode") == "VXP-UNAVAILABLE" or (
                listing and envelope.get("ErrorCode") != "0"):
            raise UplinkError(f"the axis answered {envelope}"[:300])
        return answer

    async def close(self) -> None:
        await self.client.aclose()
