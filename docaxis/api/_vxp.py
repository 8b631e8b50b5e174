"""The VXP endpoint of a node: agency document systems that speak the national axis
protocol (their ``SDKVXP`` client) connect by changing one URL.

Every operation of the protocol, at ``<prefix>/<operation>`` (``docs/vxp.md``): each
request's HMAC verified over the raw ``XroadVnpt-sign-header`` with the system's secret,
parameters read from the *signed* values only (stale and case-variant keys handled),
always HTTP 200 with an ASCII-only JSON envelope (``downloadEdoc``: the raw bytes, an
empty body on error). ``sendEdoc`` runs the node's own pipeline — the one behind
``POST /v1/packages`` — after binding the body to the signature through ``hash-file``.

The inbox, the REST API and VXP are views of the same rows: a recipient's copy is
``<the package's SHA-256, 24 hex digits>-<agency code>`` here, its inbox item id in the
REST API; ``updateStatus(done)`` is the REST API's acknowledgement.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from docaxis.api._body import BadLength, BodyTooLarge, read_body
from docaxis.directory import Agency
from docaxis.edxml import ParseError, parse
from docaxis.identifiers import AgencyCode
from docaxis.relay import Rejection, RelayNode
from docaxis.store import UNAVAILABLE, InboxCopy, System, SystemRegistry
from docaxis.vxp import SignedRequest, VxpError, envelope, hash_file, strip_crlf

_log = logging.getLogger("docaxis.vxp")

#: times in answers: dd/MM/yyyy HH:mm:ss, Vietnam's time (what the C# integrations parse)
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
#: ``messagetype`` → the kind of package (and of inbox copy) it means
PACKAGE_KIND = {"edoc": "document", "status": "status"}
#: edXML status codes (QCVN 102:2016) as words, for ``receiveStatusDesc``
STATUS_WORDS = {"01": "da den (received)", "02": "tu choi (refused)",
                "03": "da tiep nhan (accepted)", "04": "phan cong (assigned)",
                "05": "dang xu ly (in progress)", "06": "hoan thanh (completed)",
                "13": "lay lai (recalled)", "15": "dong y lay lai (recall agreed)",
                "16": "tu choi lay lai (recall refused)"}
#: tiers by the ``level`` of ``getAgenciesListQD20`` (a choice: docs/vxp.md)
LEVELS = {"1": "central", "2": "province", "3": "district", "4": "commune"}
_COPY_ID = re.compile(r"([0-9a-f]{24})-([0-9A-Za-z.]{5,20})")
#: seconds a system's credential is remembered (a rotation or revocation takes effect
#: within this; the REST API's tokens likewise)
SYSTEM_TTL = 5.0
#: the most a registerAgency body may be
REGISTER_LIMIT = 64 * 1024

Handler = Callable[[SignedRequest, System, Request], Awaitable[bytes]]


class VxpEndpoint:
    """The VXP operations of ``node`` under ``prefix`` (an ASGI app for those paths).

    Parameters
    ----------
    node:
        The node (its pipeline, store, directory and limits).
    systems:
        The document systems' credentials.
    prefix:
        Where the operations live, e.g. ``/vxp`` (the SDK's endpoint is then
        ``http://host/vxp``).
    """

    def __init__(self, node: RelayNode, systems: SystemRegistry, prefix: str = "/vxp") -> None:
        self.node, self.systems = node, systems
        self.prefix = "/" + prefix.strip("/")
        self._known: dict[str, tuple[tuple[System, str] | None, float]] = {}
        self.operations: dict[str, Handler] = {
            "sendEdoc": self.send_edoc, "getReceivedEdocList": self.received_list,
            "getEdoc": self.get_edoc, "downloadEdoc": self.download_edoc,
            "updateStatus": self.update_status, "getSentEdocList": self.sent_list,
            "countReceiveEdoc": self.count_edoc, "countReceiveStatus": self.count_status,
            "getAgenciesList": self.agencies, "getAgenciesListQD20": self.agencies_qd20,
            "getSynchronizeUnit": self.synchronize_unit,
            "registerAgency": self.register_agency, "deleteAgency": self.delete_agency}

    async def _live(self, system_id: str) -> tuple[System, str] | None:
        """The live system and its secret, remembered for :data:`SYSTEM_TTL` seconds (a
        database query and an AES-GCM opening per system and interval, not per request):
        a rotation or revocation therefore takes effect within that time."""
        now = time.monotonic()
        known = self._known.get(system_id)
        if known is not None and now - known[1] < SYSTEM_TTL:
            return known[0]
        found = await asyncio.to_thread(self.systems.live, system_id)
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[system_id] = (found, now)
        return found

    def serves(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # the SDK joins endpoint + "/" + name: an endpoint ending in "/" gives "//name"
        operation = scope["path"][len(self.prefix):].lstrip("/")
        request = Request(scope, receive)
        system_id = None
        try:
            signed = SignedRequest.read(scope["headers"])
            system_id = signed.system_id
            handler = self.operations.get(operation)
            if handler is None:
                raise VxpError("VXP-UNKNOWN-OPERATION", f"no operation {operation[:60]!r}")
            found = await self._live(signed.system_id)
            if found is None:
                raise VxpError("VXP-UNKNOWN-SYSTEM",
                               f"unknown or revoked system {signed.system_id[:100]}")
            system, secret = found
            if not signed.verify(secret):
                raise VxpError("VXP-BAD-SIGNATURE", "XroadVnpt-hash-header is not the "
                               "HMAC-SHA256 of XroadVnpt-sign-header with this system's secret")
            body = await handler(signed, system, request)
        except VxpError as exc:
            _log.warning("vxp.refused", extra={"code": exc.code, "node": self.node.node_id,
                                               "system": system_id, "operation": operation,
                                               "reason": exc.message[:300]})
            body = b"" if operation == "downloadEdoc" else envelope(
                exc.code, exc.message, **_always(operation))
        except UNAVAILABLE as exc:
            _log.error("vxp.store_unavailable", extra={
                "code": "VXP-UNAVAILABLE", "node": self.node.node_id, "system": system_id,
                "operation": operation, "error": repr(exc)[:300]})
            body = b"" if operation == "downloadEdoc" else envelope(
                "VXP-UNAVAILABLE", "the node's store is unavailable; nothing was done - "
                "retry later", **_always(operation))
        media = "application/octet-stream" if operation == "downloadEdoc" else "application/json"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", media.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    # -- documents ---------------------------------------------------------------------
    async def send_edoc(self, signed: SignedRequest, system: System, request: Request) -> bytes:
        """Check the body against ``hash-file``, then the node's pipeline (validate, verify,
        signer = From, From within the system's agencies, dedup): ``DocId`` is the
        package's SHA-256 (24 hex digits), the same for a retried send."""
        try:
            # held in memory (a VXP body is the package itself): the in-memory cap at most
            data = strip_crlf(await read_body(
                request, self.node.limits.in_memory().max_bytes + 2))
        except (BodyTooLarge, BadLength) as exc:
            raise VxpError("VXP-TOO-LARGE" if isinstance(exc, BodyTooLarge)
                           else "VXP-BAD-REQUEST", str(exc)) from None
        declared = signed.param("hash-file")
        if not declared:
            raise VxpError("VXP-HASH-FILE", "hash-file is missing: it binds the body to the "
                                            "signature")
        if declared.strip().lower() != hash_file(data):
            raise VxpError("VXP-HASH-FILE", "the body is not the file that the signed "
                                            "hash-file names")
        expect = PACKAGE_KIND[_message_type(signed)]
        try:
            parsed = parse(data, limits=self.node.limits.in_memory())
        except ParseError as exc:
            raise VxpError(exc.code, f"{exc.message} (line {exc.line})") from None
        if parsed.kind != expect:
            raise VxpError("VXP-WRONG-KIND", f"messagetype says {expect}, the package is a "
                                             f"{parsed.kind} package")
        sender = parsed.package.sender or ""
        claimed = signed.param("from")
        for code in (claimed, sender):  # the axis's own message (VXP.md §4.3), both fields
            if code is not None and (code != sender
                                     or not system.covers(code, self.node.directory)):
                raise VxpError("VXP-SENDER", f"Don vi gui {code} khong dung voi ma da dang "
                                             f"ky: {system.system_id}")
        try:
            acceptance = await self.node.submit_async(parsed, agency=sender)
        except Rejection as exc:
            raise VxpError(exc.code, exc.message) from None
        return envelope(DocId=acceptance.sha256[:24])

    async def received_list(self, signed: SignedRequest, system: System,
                            _request: Request) -> bytes:
        """The copies waiting for the system's agencies (``done`` ones are not listed,
        ``fail`` and ``processing`` ones are). Only ``messagetype`` is read: a stale
        ``status`` or ``docId`` is never a filter."""
        copies = await self._waiting(signed, system)
        return envelope(data=[{
            "docId": _copy_id(c), "serviceType": "eDoc",
            "messageType": "status" if c.kind == "status" else "edoc",
            "created_time": _local(c.created_at),
            "updated_time": _local(c.updated_at or c.created_at),
            "from": c.sender or "", "to": c.agency,
            "status": c.client_status or "initial",
            "status_desc": c.client_status_desc or ""} for c in copies])

    async def get_edoc(self, signed: SignedRequest, system: System, _request: Request) -> bytes:
        copy = await self._copy(signed, system)
        data = await asyncio.to_thread(self.node.store.package_bytes, copy.sha256)
        return envelope(data=base64.b64encode(data).decode("ascii"))

    async def download_edoc(self, signed: SignedRequest, system: System,
                            _request: Request) -> bytes:
        copy = await self._copy(signed, system)
        return await asyncio.to_thread(self.node.store.package_bytes, copy.sha256)

    async def update_status(self, signed: SignedRequest, system: System,
                            _request: Request) -> bytes:
        """``done`` acknowledges the copy (as the REST API's ack); ``fail`` and
        ``processing`` are recorded (trace events) and keep it listed. Idempotent."""
        word = (signed.param("status") or "").strip().lower()
        if word not in ("done", "fail", "processing"):
            raise VxpError("VXP-BAD-REQUEST", "status is done, fail or processing")
        copy = await self._copy(signed, system)
        description = signed.param("description")
        await asyncio.to_thread(self.node.store.set_client_status, copy.agency, copy.id, word,
                                description[:2000] if description else None,
                                node=self.node.node_id)
        return envelope()

    async def sent_list(self, signed: SignedRequest, system: System, _request: Request) -> bytes:
        """One row per recipient of each package the system's agencies posted here: our
        delivery state (``sendStatus``) and the recipient's latest edXML status
        (``receiveStatus``). ``docId`` filters only when it is one of these packages'
        ``DocId`` (a stale one left by ``getEdoc`` is not)."""
        kind = PACKAGE_KIND[_message_type(signed)]
        codes = system.agency_codes(self.node.directory)
        packages = await asyncio.to_thread(self.node.store.sent_packages, codes, kind)
        wanted = signed.param("docId")
        if wanted and any(p.sha256.startswith(wanted) and len(wanted) == 24 for p in packages):
            packages = [p for p in packages if p.sha256.startswith(wanted)]
        rows = []
        for package in packages:
            for recipient in package.recipients:
                # what the nodes on the way said of this recipient (their hop receipts,
                # "hop:<kind>", or this node's own events)
                said = {k.removeprefix("hop:") for k, agency in package.events
                        if agency == recipient}
                state = ("done" if "delivered" in said else
                         "fail" if said & {"rejected", "refused", "unroutable"}
                         else "processing")
                status = package.statuses.get(recipient)
                rows.append({
                    "serviceType": "eDoc", "messageType": "status" if kind == "status"
                    else "edoc", "senderDocId": package.sha256[:24],
                    "receiverDocId": f"{package.sha256[:24]}-{recipient}",
                    "fromCode": package.sender or "", "toCode": recipient,
                    "notation": package.document_id or "",
                    "sentTime": _local(package.accepted_at), "sendStatus": state,
                    "sendStatusDesc": {"done": "delivered to the recipient's inbox",
                                       "fail": "refused on the way",
                                       "processing": "on its way"}[state],
                    "receivedTime": _local(status[1]) if status else "",
                    "receiveStatus": status[0] if status else "initial",
                    "receiveStatusDesc": STATUS_WORDS.get(status[0], "") if status else ""})
        return envelope(data=rows)

    async def count_edoc(self, signed: SignedRequest, system: System, _request: Request) -> bytes:
        return envelope(count=len(await self._waiting(signed, system, "edoc")))

    async def count_status(self, signed: SignedRequest, system: System,
                           _request: Request) -> bytes:
        return envelope(count=len(await self._waiting(signed, system, "status")))

    # -- agencies ----------------------------------------------------------------------
    async def agencies(self, _signed: SignedRequest, _system: System, _request: Request) -> bytes:
        return envelope(data=[{"id": a.code, "pid": _parent(a.code), "code": a.code,
                               "name": a.name, "mail": "", "oldCode": ""}
                              for a in self._agencies()])

    async def agencies_qd20(self, signed: SignedRequest, _system: System,
                            _request: Request) -> bytes:
        tier = LEVELS.get((signed.param("level") or "").strip())
        return envelope(data=[{"id": a.code, "code": a.code, "name": a.name, "mail": "",
                               "code102": a.code} for a in self._agencies()
                              if tier is None or self._tier(a) == tier])

    async def synchronize_unit(self, _signed: SignedRequest, _system: System,
                               _request: Request) -> bytes:
        return envelope(data=[{"id": a.code, "pid": _parent(a.code), "code": a.code,
                               "name": a.name, "mail": "", "version": 1, "centerCode": a.node,
                               "deleted": False, "modifyDate": "", "isAgency": True}
                              for a in self._agencies()])

    async def register_agency(self, _signed: SignedRequest, system: System,
                              request: Request) -> bytes:
        """Add an agency served by this node (systems allowed to register only);
        registering the same agency again changes nothing."""
        self._may_register(system)
        try:
            raw = await read_body(request, REGISTER_LIMIT)
            spec: Any = json.loads(raw.decode("utf-8"))
        except (BodyTooLarge, BadLength, UnicodeDecodeError, ValueError) as exc:
            raise VxpError("VXP-BAD-REQUEST", f"the body is not a JSON agency: "
                                              f"{str(exc)[:120]}") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("code"), str):
            raise VxpError("VXP-BAD-REQUEST", "the body names no agency code")
        code, name = spec["code"].strip(), str(spec.get("name") or "").strip()
        if not AgencyCode.is_valid(code):
            raise VxpError("VXP-BAD-REQUEST", f"{code[:40]!r} is not an agency code")
        known = self.node.directory.agencies.get(code)
        if known is not None and known.node != self.node.node_id:
            raise VxpError("VXP-FORBIDDEN", f"{code} is served by node {known.node}")
        agency = Agency(code=code, name=name or (known.name if known else code),
                        node=self.node.node_id, tier=known.tier if known else None)
        await asyncio.to_thread(self.node.store.save_directory_entries, [], [agency])
        self.node.directory = self.node.directory.overlaid([], [agency])
        _log.info("vxp.agency_registered", extra={"code": "VXP-AGENCY-REGISTERED",
                                                  "node": self.node.node_id,
                                                  "system": system.system_id, "agency": code})
        return envelope()

    async def delete_agency(self, signed: SignedRequest, system: System,
                            _request: Request) -> bytes:
        """Remove an agency this node serves that was registered in its database (one of
        its directory file stays: the file is the operator's)."""
        self._may_register(system)
        code = (signed.param("AgencyCode") or "").strip()
        known = self.node.directory.agencies.get(code)
        if known is None or known.node != self.node.node_id:
            raise VxpError("VXP-NOT-FOUND", f"no agency {code[:40]} served by this node")
        if not await asyncio.to_thread(self.node.store.remove_directory_agency, code):
            raise VxpError("VXP-FORBIDDEN", f"{code} is listed in the node's directory file; "
                                            "the operator removes it there")
        directory = self.node.directory
        self.node.directory = type(directory).build(
            directory.nodes.values(), [a for a in directory.agencies.values() if a.code != code])
        _log.info("vxp.agency_deleted", extra={"code": "VXP-AGENCY-DELETED",
                                               "node": self.node.node_id,
                                               "system": system.system_id, "agency": code})
        return envelope()

    # -- helpers -----------------------------------------------------------------------
    async def _waiting(self, signed: SignedRequest, system: System,
                       message_type: str | None = None) -> list[InboxCopy]:
        kind = PACKAGE_KIND[message_type or _message_type(signed)]
        codes = system.agency_codes(self.node.directory)
        return await asyncio.to_thread(self.node.store.inbox_copies, codes, (kind,))

    async def _copy(self, signed: SignedRequest, system: System) -> InboxCopy:
        """The copy ``docId`` names (exact spelling first: VXP.md §3.2), if it is one of
        the system's agencies' — otherwise "not found", as for an unknown id."""
        doc_id = (signed.param("docId") or "").strip()
        match = _COPY_ID.fullmatch(doc_id)
        copy = None
        if match is not None and system.covers(match[2], self.node.directory):
            copy = await asyncio.to_thread(self.node.store.inbox_copy, match[2], match[1])
        if copy is None:
            raise VxpError("VXP-NOT-FOUND", f"no document {doc_id[:80]} for this system")
        return copy

    def _agencies(self) -> list[Agency]:
        return sorted(self.node.directory.agencies.values(), key=lambda a: a.code)

    def _tier(self, agency: Agency) -> str | None:
        node = self.node.directory.nodes.get(agency.node)
        return agency.tier or (node.tier if node else None)

    @staticmethod
    def _may_register(system: System) -> None:
        if not system.may_register:
            raise VxpError("VXP-FORBIDDEN", f"system {system.system_id} may not change the "
                                            "node's directory")


def _message_type(signed: SignedRequest) -> str:
    """The signed ``messagetype``: ``edoc`` (the default) or ``status``."""
    word = (signed.param("messagetype") or "edoc").strip().lower()
    if word not in PACKAGE_KIND:
        raise VxpError("VXP-BAD-REQUEST", "messagetype is edoc or status")
    return word


def _copy_id(copy: InboxCopy) -> str:
    return f"{copy.sha256[:24]}-{copy.agency}"


def _local(at: Any) -> str:
    return str(at.astimezone(LOCAL).strftime("%d/%m/%Y %H:%M:%S"))


def _parent(code: str) -> str:
    try:
        parent = AgencyCode.parse(code).parent
    except ValueError:
        return ""
    return str(parent) if parent is not None else ""


def _always(operation: str) -> dict[str, Any]:
    """Fields the SDK reads even on failure (VXP.md §4.2)."""
    return {"sendEdoc": {"DocId": ""}, "getEdoc": {"data": ""}}.get(operation, {})
