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
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from docaxis._errors import DocaxisError
from docaxis.directory import Directory, UnknownDestination
from docaxis.dsig import SignedStatement, StatementSigner, Verifier, verify_statement
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
from docaxis.relay._metrics import NodeMetrics
from docaxis.store import (
    UNAVAILABLE,
    Accept,
    Acceptance,
    BlobError,
    Event,
    OutboxItem,
    PackageFacts,
    Store,
    is_alive,
)
from docaxis.transport import Broker, Consumer, Message, Reject

_log = logging.getLogger("docaxis.relay")

KIND = "x-docaxis-kind"
#: W3C Trace Context: one trace id for a package's whole path, a new span id per hop
TRACEPARENT = "traceparent"
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


@dataclass(frozen=True)
class _Plan:
    parsed: ParsedPackage
    accept: Accept
    origin: str
    trace: str = ""


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
    prefetch: int = 256
    batch_size: int = 128
    #: this process's outbox rows still pending this long (seconds) are re-sent by the
    #: sweep (their hand-over failed); a dead process's rows are taken over at once
    sweep_after: float = 5.0
    #: hop receipts toward one origin wait this long (seconds) to travel together
    receipt_interval: float = 0.2
    #: signs this node's hop receipts with its node certificate (none: it sends none,
    #: since an origin records only receipts whose node signature verifies)
    node_signer: StatementSigner | None = None
    #: back-off (seconds) between looks at a store that is down
    store_backoff_min: float = 0.2
    store_backoff_max: float = 10.0
    #: background tasks that died and were started again (for metrics and tests)
    task_restarts: int = field(default=0, init=False)
    metrics: NodeMetrics = field(default_factory=NodeMetrics, init=False, repr=False)
    _watched: bool = field(default=False, init=False, repr=False)
    _store_down_since: float | None = field(default=None, init=False, repr=False)
    _said_unsigned: bool = field(default=False, init=False, repr=False)
    #: outbox rows whose bytes could not be read (reported once each)
    _unreadable: set[int] = field(default_factory=set, init=False, repr=False)
    _store_backoff: float = field(default=0.2, init=False, repr=False)
    _consumer: Consumer | None = field(default=None, init=False, repr=False)
    _receiver: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _incoming: asyncio.Queue[tuple[Message, asyncio.Future[None]]] = field(
        default_factory=asyncio.Queue, init=False, repr=False)
    _dispatcher: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _ingester: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _ingress: asyncio.Queue[tuple[bytes | ParsedPackage, str | None,
                                  asyncio.Future[Acceptance]]] = field(
        default_factory=asyncio.Queue, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _handovers: asyncio.Queue[list[tuple[OutboxItem, bytes]]] = field(
        default_factory=asyncio.Queue, init=False, repr=False)
    _in_flight: set[int] = field(default_factory=set, init=False, repr=False)
    _handed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _receipts_out: dict[str, list[HopReceipt]] = field(default_factory=dict, init=False,
                                                       repr=False)
    #: other nodes' signed receipt statements passing through here toward their origin
    _forward_out: dict[str, list[object]] = field(default_factory=dict, init=False,
                                                  repr=False)
    _receipt_timer: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)
    _sending: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self._watched:
            self.metrics.watch(self)
            self._watched = True
        self._receiver = asyncio.create_task(self._supervised("receiver", self._receive_forever))
        broker = self.links(self.node_id)
        await broker.declare_node(self.node_id)
        self._consumer = await broker.consume(self.node_id, self.on_message,
                                              prefetch=self.prefetch)
        self._dispatcher = asyncio.create_task(self._supervised("hand-over",
                                                                self._hand_over_forever))
        self._sweeper = asyncio.create_task(self._supervised("sweep", self._sweep_forever))
        self._ingester = asyncio.create_task(self._supervised("api ingress",
                                                              self._ingest_forever))

    async def _supervised(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a background task forever: if it dies, log it and start it again (with
        back-off), so that a live node is never one that quietly does nothing."""
        delay = 0.1
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.error("relay.task_died", exc_info=True, extra={
                    "code": "RELAY-TASK-RESTART", "node": self.node_id, "task": name,
                    "restart_in": delay})
                self.task_restarts += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop(timeout=5)
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        for task in (self._dispatcher, self._sweeper, self._ingester):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._receipt_timer is not None:  # receipts still held: send them now
            self._receipt_timer.cancel()
            self._flush_receipts()
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=5)
        self._loop = None

    # -- agency-facing -----------------------------------------------------------------
    def submit(self, data: bytes | ParsedPackage, *, agency: str | None = None) -> Acceptance:
        """A package posted by a local agency system: check, commit, acknowledge.

        Raises
        ------
        Rejection
            With every reason (parse/validation/verification codes) when refused.
        """
        try:
            acceptance = self._submit(data, agency)
        except Rejection as exc:
            self.metrics.refused.labels(exc.code, "api").inc()
            raise
        if not acceptance.duplicate:
            self.metrics.accepted.labels("api").inc()
        return acceptance

    def _submit(self, data: bytes | ParsedPackage, agency: str | None) -> Acceptance:
        return self._commit_many([self._plan_submission(data, agency)])[0]

    def _plan_submission(self, data: bytes | ParsedPackage, agency: str | None) -> _Plan:
        """Check a package posted by ``agency`` (None: trusted caller) and plan it."""
        with self.metrics.stage.labels("check").time():
            parsed = self._check(data)
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
        return self._plan(parsed, received_from=None, origin=self.node_id,
                          from_parent=False, trace=new_traceparent())

    async def submit_async(self, data: bytes | ParsedPackage, *,
                           agency: str | None = None) -> Acceptance:
        """:meth:`submit` for the API: submissions that arrive together are checked in a
        worker thread and committed in **one** transaction (one ``fdatasync``), as hop
        messages are — not one transaction and flush per request.

        Raises
        ------
        Rejection
            As :meth:`submit`.
        Exception
            One of ``docaxis.store.UNAVAILABLE`` while the store is down (the API answers
            503).
        """
        loop = self._loop
        if loop is None:  # not started: no batching task to hand it to
            return await asyncio.to_thread(self.submit, data, agency=agency)
        future: asyncio.Future[Acceptance] = loop.create_future()
        self._ingress.put_nowait((data, agency, future))
        return await future

    async def _ingest_forever(self) -> None:
        while True:
            batch = [await self._ingress.get()]
            while len(batch) < self.batch_size and not self._ingress.empty():
                batch.append(self._ingress.get_nowait())
            try:
                outcomes = await asyncio.to_thread(
                    self._ingest, [(data, agency) for data, agency, _ in batch])
            except Exception as exc:  # the batch as a whole failed: every request hears it
                outcomes = [exc] * len(batch)
            for (_data, _agency, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _ingest(self, items: list[tuple[bytes | ParsedPackage, str | None]],
                ) -> list[Acceptance | BaseException]:
        """Check each submission, then commit the good ones together (in a thread)."""
        outcomes: list[Acceptance | BaseException] = [RuntimeError("not processed")] * len(items)
        plans: list[tuple[int, _Plan]] = []
        for index, (data, agency) in enumerate(items):
            try:
                with self.metrics.stage.labels("check").time():
                    plans.append((index, self._plan_submission(data, agency)))
            except Rejection as exc:
                self.metrics.refused.labels(exc.code, "api").inc()
                outcomes[index] = exc
            except UNAVAILABLE as exc:
                outcomes[index] = exc
            except Exception as exc:
                _log.error("relay.internal_error", exc_info=True, extra={
                    "code": "RELAY-INTERNAL", "node": self.node_id, "stage": "api check"})
                outcomes[index] = Rejection(f"unexpected {type(exc).__name__}: {exc}",
                                            [{"code": "RELAY-INTERNAL"}], code="RELAY-INTERNAL")
        if not plans:
            return outcomes
        try:
            started = time.perf_counter()
            acceptances = self._commit_many([plan for _, plan in plans])
            self.metrics.stage.labels("commit").observe(time.perf_counter() - started)
        except UNAVAILABLE as exc:
            for index, _ in plans:
                outcomes[index] = exc
            return outcomes
        except Exception:
            if len(plans) > 1:  # one package the store will not take: find it
                for index, plan in plans:
                    outcomes[index] = self._ingest([(plan.parsed, None)])[0]
                return outcomes
            raise
        for (index, _), acceptance in zip(plans, acceptances, strict=True):
            outcomes[index] = acceptance
            if not acceptance.duplicate:
                self.metrics.accepted.labels("api").inc()
        return outcomes

    # -- hop ---------------------------------------------------------------------------
    async def on_message(self, message: Message) -> None:
        """Transport handler: returns (→ ack) once the package is committed here."""
        if message.headers.get(KIND, "package") == "hop-receipt":
            await self._on_hop_receipt(message)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._incoming.put_nowait((message, future))
        await future

    async def _receive_forever(self) -> None:
        """Take what has arrived (up to ``batch_size``), check each package, commit them all
        in one transaction, then let the transport acknowledge them.

        One message never stops the node: a refused package is parked with its codes, an
        unexpected exception in its check or plan parks it with ``RELAY-INTERNAL`` (and a
        log line naming it), and the node goes on. An outage of the store (database,
        disk) is nobody's package's fault: the node waits for it, with back-off, holding
        the messages it has (unacknowledged), and goes on where it stopped — never
        parking or refusing them for it."""
        while True:
            while len(self._in_flight) > 2 * self.prefetch:  # hand-overs lag: wait for them
                self._handed.clear()
                await self._handed.wait()
            batch = [await self._incoming.get()]
            while len(batch) < self.batch_size and not self._incoming.empty():
                batch.append(self._incoming.get_nowait())
            plans: list[tuple[_Plan, asyncio.Future[None]]] = []
            for message, future in batch:
                plan = await self._checked(message, future)
                if plan is not None:
                    plans.append((plan, future))
            fault_point("while-consuming")
            await self._commit_batch(plans)

    async def _checked(self, message: Message,
                       future: asyncio.Future[None]) -> _Plan | None:
        """The plan of one hop message, or None when it was refused (its future settled)."""
        origin = message.headers.get(ORIGIN) or ""
        came_from = message.headers.get(FROM_NODE)
        parent = self.directory.nodes[self.node_id].parent
        while True:
            try:
                fault_point("check")
                with self.metrics.stage.labels("check").time():
                    parsed = self._check(message.body)
                fault_point("plan")
                return self._plan(parsed, received_from=came_from, origin=origin,
                                  from_parent=came_from is not None and came_from == parent,
                                  trace=child_traceparent(message.headers.get(TRACEPARENT)))
            except Rejection as exc:
                self._refuse(message.body, message.message_id, future, origin, exc.code,
                             exc.message, exc.reasons, message.headers.get(TRACEPARENT))
                return None
            except UNAVAILABLE as exc:  # the store, read while planning: wait for it
                await self._wait_for_store(exc)
            except Exception as exc:  # a bug or a crash in a library: park this one only
                _log.error("relay.internal_error", exc_info=True, extra={
                    "code": "RELAY-INTERNAL", "node": self.node_id,
                    "message_id": message.message_id, "sha256": _sha(message.body),
                    "stage": "check/plan"})
                self._refuse(message.body, message.message_id, future, origin,
                             "RELAY-INTERNAL",
                             f"unexpected {type(exc).__name__} while checking: {exc}",
                             [{"code": "RELAY-INTERNAL", "message": repr(exc)[:500]}],
                             message.headers.get(TRACEPARENT))
                return None

    def _refuse(self, body: bytes, message_id: str | None, future: asyncio.Future[None],
                origin: str, code: str, text: str, reasons: list[dict[str, object]],
                trace: str | None = None) -> None:
        """Park a hop message (the transport's dead-letter queue) and tell its origin."""
        sha256 = _sha(body)
        self.metrics.refused.labels(code, "hop").inc()
        _log.warning("relay.refused", extra={
            "code": code, "node": self.node_id, "message_id": message_id, "sha256": sha256,
            "origin": origin, "trace_id": trace_id(trace), "reason": text[:300]})
        self._notify(origin, [HopReceipt(None, sha256, self.node_id, "rejected", _now(),
                                         detail=json.dumps(reasons)[:2000])])
        if not future.done():
            future.set_exception(Reject(f"{code}: {text}"))

    async def _commit_batch(self, plans: list[tuple[_Plan, asyncio.Future[None]]]) -> None:
        """Commit the batch in one transaction (in a thread: the event loop keeps serving
        confirms and acks), then release its messages for acknowledgement. A store outage
        is waited out; a failure of the batch that is not an outage is narrowed down to
        the packages that cause it, committed one by one: those are parked, the rest go."""
        if not plans:
            return
        while True:
            try:
                started = time.perf_counter()
                acceptances = await asyncio.to_thread(
                    self._accept_many, [plan.accept for plan, _ in plans])
                self.metrics.stage.labels("commit").observe(time.perf_counter() - started)
                break
            except UNAVAILABLE as exc:
                await self._wait_for_store(exc)
            except Exception:
                if len(plans) == 1:
                    plan, future = plans[0]
                    _log.error("relay.internal_error", exc_info=True, extra={
                        "code": "RELAY-INTERNAL", "node": self.node_id, "stage": "commit",
                        "sha256": _sha(plan.accept.data),
                        "document_id": plan.accept.facts.document_id})
                    self._refuse(plan.accept.data, None, future, plan.origin, "RELAY-INTERNAL",
                                 "the store refused to commit it",
                                 [{"code": "RELAY-INTERNAL",
                                   "message": "the store refused to commit it"}], plan.trace)
                    return
                for one in plans:  # find the package(s) the store will not take
                    await self._commit_batch([one])
                return
        self._store_up()
        self.metrics.accepted.labels("hop").inc(sum(not a.duplicate for a in acceptances))
        try:
            self._commit_many([plan for plan, _ in plans], acceptances)
        except Exception:  # committed: the sweep hands over what this did not queue
            _log.error("relay.after_commit_failed", exc_info=True, extra={
                "code": "RELAY-INTERNAL", "node": self.node_id, "stage": "after-commit"})
        for _, future in plans:
            if not future.done():
                future.set_result(None)

    def _accept_many(self, accepts: list[Accept]) -> list[Acceptance]:
        fault_point("commit")
        return self.store.accept_many(accepts)

    async def _wait_for_store(self, error: BaseException) -> None:
        """Wait, with back-off, until the store answers again (logged once per outage)."""
        if self._store_down_since is None:
            self._store_down_since = time.monotonic()
            _log.error("store.unavailable", extra={
                "code": "STORE-UNAVAILABLE", "node": self.node_id, "error": repr(error)[:300]})
        delay = self._store_backoff
        self._store_backoff = min(self._store_backoff * 2, self.store_backoff_max)
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.store.ping)
                return
            except UNAVAILABLE as exc:
                delay = self._store_backoff
                self._store_backoff = min(self._store_backoff * 2, self.store_backoff_max)
                _log.debug("store.still_unavailable", extra={
                    "code": "STORE-UNAVAILABLE", "node": self.node_id, "error": repr(exc)})

    def _store_up(self) -> None:
        self._store_backoff = self.store_backoff_min
        if self._store_down_since is not None:
            _log.warning("store.available", extra={
                "code": "STORE-AVAILABLE", "node": self.node_id,
                "down_seconds": round(time.monotonic() - self._store_down_since, 1)})
            self._store_down_since = None

    @property
    def store_available(self) -> bool:
        """False while the node waits for its store (for ``/ready`` and metrics)."""
        return self._store_down_since is None

    # -- pipeline ----------------------------------------------------------------------
    def _check(self, data: bytes | ParsedPackage) -> ParsedPackage:
        if isinstance(data, ParsedPackage):
            parsed = data
        else:
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

    def _plan(self, parsed: ParsedPackage, *, received_from: str | None, origin: str,
              from_parent: bool, trace: str = "") -> _Plan:
        """What committing this package here causes: inbox rows, hand-overs, events."""
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
            facts = PackageFacts("document", package.sender, package.document_id,
                                 business_doc_type=package.business_doc_type,
                                 recipients=tuple(recipients))
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
        return _Plan(parsed, Accept(parsed.source, facts, self.node_id, received_from,
                                    origin, tuple((node, "package", headers)
                                                  for node in next_hops),
                                    tuple(inbox), tuple(events), _links(package), status),
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

    def _commit_many(self, plans: list[_Plan],
                     acceptances: list[Acceptance] | None = None) -> list[Acceptance]:
        """Commit plans in one transaction (unless already committed: ``acceptances``), then
        do what follows a first commit."""
        if not plans:
            return []
        if acceptances is None:
            acceptances = self.store.accept_many([plan.accept for plan in plans])
        receipts: dict[str, list[HopReceipt]] = {}
        for plan, acceptance in zip(plans, acceptances, strict=True):
            facts = plan.accept.facts
            _log.info("package.accepted", extra={
                "node": self.node_id, "trace_id": trace_id(plan.trace),
                "document_id": facts.document_id, "sha256": acceptance.sha256,
                "kind": facts.kind, "sender": facts.sender,
                "from_node": plan.accept.received_from, "duplicate": acceptance.duplicate,
                "to_nodes": [node for node, _kind, _headers in plan.accept.outbox],
                "delivered_to": list(plan.accept.inbox)})
            if acceptance.duplicate:
                continue
            fault_point("after-commit")
            if plan.origin and plan.origin != self.node_id:
                receipts.setdefault(plan.origin, []).extend(
                    HopReceipt(plan.accept.facts.document_id, acceptance.sha256, self.node_id,
                               kind, _now(), agency, detail)
                    for kind, agency, detail in plan.accept.events
                    if kind in ("received", "delivered", "routed", "unroutable"))
        for origin, batch in receipts.items():
            self._notify(origin, batch)
        self._hand_over_soon([(item, plan.accept.data)
                              for plan, acceptance in zip(plans, acceptances, strict=True)
                              for item in acceptance.handovers])
        return acceptances

    # -- hand-over ---------------------------------------------------------------------
    def _hand_over_soon(self, items: list[tuple[OutboxItem, bytes]]) -> None:
        """Queue just-committed hand-overs (with their bytes, already in memory) for the
        hand-over task. Callable from any thread: the node's state (the in-flight set, the
        queue) is changed on the event loop only. A node that is not running leaves them
        to the sweep."""
        loop = self._loop
        if not items or loop is None:
            return
        loop.call_soon_threadsafe(self._queue_handovers, items)

    def _queue_handovers(self, items: list[tuple[OutboxItem, bytes]]) -> None:
        """(On the event loop.) Mark the hand-overs in flight and queue them."""
        self._in_flight.update(item.id for item, _ in items)
        self._handovers.put_nowait(items)

    async def _hand_over_forever(self) -> None:
        """Publish queued hand-overs concurrently, each with its confirm; then mark them
        sent (one transaction, off the event loop). A failure leaves them pending for the
        sweep; a crash in between re-sends, and the next node deduplicates."""
        while True:
            items = await self._handovers.get()
            while not self._handovers.empty():
                items += self._handovers.get_nowait()
            try:
                await self._publish_all(items)
                fault_point("after-publish")
                await asyncio.to_thread(self.store.mark_sent_many, [i for i, _ in items],
                                        node=self.node_id)
            except Exception as exc:  # still pending: the sweep re-sends them
                _log.warning("handover.failed", extra={
                    "code": "RELAY-HANDOVER-RETRY", "node": self.node_id,
                    "count": len(items), "error": repr(exc)[:300],
                    "documents": [i.document_id for i, _ in items[:5]]})
            finally:
                self._in_flight.difference_update(item.id for item, _ in items)
                self._handed.set()

    async def _publish_all(self, items: list[tuple[OutboxItem, bytes]]) -> None:
        async def publish(item: OutboxItem, data: bytes) -> None:
            await self.links(item.destination_node).publish(item.destination_node, Message(
                data, item.headers, message_id=f"{item.sha256}:{self.node_id}"))

        await asyncio.gather(*(publish(item, data) for item, data in items))

    async def dispatch_once(self, batch: int = 256, *, older_than: float = 0.0) -> int:
        """Sweep the outbox once: hand over the pending rows this process should send now
        (:meth:`_owed_here`), claimed for it first, then mark them sent. Returns how many
        were handed over."""
        sent, after = 0, 0
        while True:
            pending = await asyncio.to_thread(self.store.pending_outbox, limit=batch,
                                              after_id=after)
            if not pending:
                return sent
            after = pending[-1].id
            now = dt.datetime.now(dt.UTC)
            owed = [item for item in pending if self._owed_here(item, older_than, now)]
            if not owed:
                continue
            # bytes first: a row whose bytes cannot be read is reported and skipped, never
            # claimed (it would hold up every row after it, and be claimed again forever)
            readable, unreadable = await asyncio.to_thread(self._with_bytes, owed)
            self._report_unreadable(unreadable)
            if not readable:
                continue
            won = {item.id for item in await asyncio.to_thread(
                self.store.claim_outbox, [item for item, _ in readable])}
            loaded = [(item, data) for item, data in readable if item.id in won]
            items = [item for item, _ in loaded]
            if not items:
                continue
            await self._publish_all(loaded)
            fault_point("after-publish")
            await asyncio.to_thread(self.store.mark_sent_many, items, node=self.node_id)
            sent += len(items)

    def _owed_here(self, item: OutboxItem, grace: float, now: dt.datetime) -> bool:
        """Whether this process should hand ``item`` over now.

        Its own rows, once ``grace`` seconds old (the hand-over task failed them); rows of a
        process of this host that is gone — killed before it handed them over — at once;
        rows of an owner whose life cannot be judged (another host, or written before
        claims existed) once ``grace`` old. A live process's rows are its own business.
        """
        if item.id in self._in_flight:
            return False
        old = item.created_at is None or (now - item.created_at).total_seconds() > grace
        if item.claimed_by == self.store.claimant:
            return old
        alive = is_alive(item.claimed_by)
        return True if alive is False else (old and alive is None)

    def _with_bytes(self, items: list[OutboxItem]) -> tuple[
            list[tuple[OutboxItem, bytes]], list[tuple[OutboxItem, Exception]]]:
        """(In a thread.) The items with their bytes, and those whose bytes cannot be read."""
        loaded: list[tuple[OutboxItem, bytes]] = []
        unreadable: list[tuple[OutboxItem, Exception]] = []
        for item in items:
            try:
                loaded.append((item, self.store.package_bytes(item.sha256)))
            except (BlobError, KeyError) as exc:
                unreadable.append((item, exc))
        return loaded, unreadable

    def _report_unreadable(self, unreadable: list[tuple[OutboxItem, Exception]]) -> None:
        """(On the event loop.) Raise the alarm once per row and process."""
        for item, exc in unreadable:
            if item.id not in self._unreadable:
                self._unreadable.add(item.id)
                _log.error("outbox.unreadable_blob", extra={
                    "code": "STORE-BLOB-UNREADABLE", "node": self.node_id,
                    "outbox_id": item.id, "sha256": item.sha256,
                    "document_id": item.document_id, "error": str(exc)})

    async def _sweep_forever(self) -> None:
        """Re-send what is owed and not in hand: this process's rows still pending
        ``sweep_after`` seconds after their commit (a failed hand-over), and at once the
        rows of a process that died (this node before a restart, or a worker of it)."""
        while True:
            try:
                await self.dispatch_once(older_than=self.sweep_after)
                await asyncio.sleep(min(1.0, self.sweep_after))
            except Exception as exc:
                _log.warning("sweep.failed", extra={
                    "code": "RELAY-SWEEP-RETRY", "node": self.node_id, "error": repr(exc)[:300]})
                await asyncio.sleep(0.5)

    # -- hop receipts ------------------------------------------------------------------
    def _notify(self, origin: str, receipts: list[HopReceipt]) -> None:
        """Send hop receipts toward the origin node, in the background. Thread-safe."""
        loop = self._loop
        if not origin or origin == self.node_id or not receipts or loop is None:
            return
        loop.call_soon_threadsafe(self._queue_receipts, origin, receipts)

    def _queue_receipts(self, origin: str, receipts: list[HopReceipt]) -> None:
        """Hold receipts for ``receipt_interval`` seconds, so that those of many packages —
        this node's own and those it passes on toward their origin — travel as one
        message per origin. A route of n hops would otherwise carry n(n+1)/2 receipt
        messages per package, more than the packages themselves."""
        self._receipts_out.setdefault(origin, []).extend(receipts)
        self._arm_receipt_timer()

    def _queue_forward(self, origin: str, statements: list[object]) -> None:
        """Pass other nodes' signed statements on toward ``origin``, unchanged."""
        self._forward_out.setdefault(origin, []).extend(statements)
        self._arm_receipt_timer()

    def _arm_receipt_timer(self) -> None:
        if self._receipt_timer is None and self._loop is not None:
            self._receipt_timer = self._loop.call_later(self.receipt_interval,
                                                        self._flush_receipts)

    def _flush_receipts(self) -> None:
        self._receipt_timer = None
        own, self._receipts_out = self._receipts_out, {}
        forward, self._forward_out = self._forward_out, {}
        for origin in {*own, *forward}:
            statements = list(forward.get(origin, ()))
            receipts = own.get(origin)
            if receipts:
                if self.node_signer is None:
                    if not self._said_unsigned:  # once: it is a configuration, not an event
                        self._said_unsigned = True
                        _log.warning("hop_receipt.unsigned", extra={
                            "code": "RELAY-HOP-RECEIPT", "node": self.node_id,
                            "reason": "no node key configured: hop receipts are not sent"})
                else:
                    body = json.dumps([r.__dict__ for r in receipts], ensure_ascii=False,
                                      sort_keys=True).encode()
                    statements.append(self.node_signer.sign(body).to_json())
            if not statements:
                continue
            task = asyncio.get_running_loop().create_task(self._send_receipts(origin,
                                                                              statements))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send_receipts(self, origin: str, statements: list[object]) -> None:
        target = self.directory.next_node(self.node_id, origin)
        if target is None:
            return
        body = json.dumps({"statements": statements}).encode()
        try:  # receipts are informative: a failure never blocks a hop
            await self.links(target).publish(target, Message(
                body, {KIND: "hop-receipt", ORIGIN: origin, FROM_NODE: self.node_id}))
        except Exception as exc:  # any transport failure: logged, the hop goes on
            _log.warning("hop_receipt.send_failed", extra={
                "code": "RELAY-HOP-RECEIPT", "node": self.node_id, "origin": origin,
                "error": repr(exc)})

    async def _on_hop_receipt(self, message: Message) -> None:
        origin = message.headers.get(ORIGIN, "")
        try:
            raw = json.loads(message.body)
            statements = raw["statements"] if isinstance(raw, dict) else None
            if not isinstance(statements, list):
                raise ValueError("no statements")
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("hop_receipt.refused", extra={
                "code": "RELAY-HOP-RECEIPT", "node": self.node_id,
                "from_node": message.headers.get(FROM_NODE), "reason": f"unreadable: {exc}"})
            return
        if origin != self.node_id:
            self._queue_forward(origin, statements)  # passed on with this node's own
            return
        # verification and store work off the event loop: it keeps serving hops meanwhile
        await asyncio.to_thread(self._verify_and_record, statements,
                                message.headers.get(FROM_NODE))

    def _verify_and_record(self, statements: list[object], from_node: str | None) -> None:
        """Record the receipts of each statement whose node signature verifies against the
        trust anchors and whose node is in the directory; drop (and log) the others."""
        receipts: list[HopReceipt] = []
        for raw in statements:
            try:
                statement = SignedStatement.from_json(raw)
                check = verify_statement(statement, self.verifier.policy.trust)
                if not check.valid or check.node not in self.directory.nodes:
                    reasons = [f.code for f in check.failures] or ["not in the directory"]
                    raise ValueError(f"node signature refused ({', '.join(reasons)}) for "
                                     f"{check.node!r}")
                items = json.loads(statement.body)
                if not isinstance(items, list):
                    raise ValueError("the body is not a list of receipts")
                signed = [_receipt(item) for item in items]
            except (ValueError, TypeError) as exc:
                _log.warning("hop_receipt.refused", extra={
                    "code": "RELAY-HOP-RECEIPT", "node": self.node_id,
                    "from_node": from_node, "reason": str(exc)})
                continue
            foreign = [r for r in signed if r.node != check.node]
            if foreign:
                _log.warning("hop_receipt.refused", extra={
                    "code": "RELAY-HOP-RECEIPT", "node": self.node_id, "from_node": from_node,
                    "reason": f"node {check.node} signed receipts of {foreign[0].node}"})
            receipts += [r for r in signed if r.node == check.node]
        if receipts:
            self._record_hop_receipts(receipts)

    def _record_hop_receipts(self, receipts: list[HopReceipt]) -> None:
        """At the origin node: put each hop's receipt in the document's trace; tell the
        sender about a refusal."""
        events, documents = [], []
        rows: dict[str, tuple[str | None, str | None] | None] = {}
        for receipt in receipts:
            if receipt.sha256 not in rows:
                row = self.store.package(receipt.sha256)
                rows[receipt.sha256] = ((row.document_id, row.document_sender)
                                        if row is not None else None)
            known = rows[receipt.sha256]
            if known is None:  # not a package sent from here: nothing to put it in
                continue
            events.append(Event(receipt.node, f"hop:{receipt.kind}",
                                dt.datetime.fromisoformat(receipt.at), receipt.agency,
                                receipt.detail, receipt.sha256))
            documents.append(known)
        self.store.add_events(events, documents=documents)
        for receipt in receipts:
            if receipt.kind in ("rejected", "unroutable"):
                self._notify_sender(receipt)

    def _notify_sender(self, receipt: HopReceipt) -> None:
        """A later node refused a package sent from here, or could not route it to one of
        its recipients (its directory does not know the agency): put a rejection notice
        (JSON, with every reason and its stable code) into the sending agency's inbox."""
        row = self.store.package(receipt.sha256)
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
        self.store.accept(notice, PackageFacts("rejection", None, row.document_id,
                                               document_sender=row.document_sender),
                          node=self.node_id, inbox=[row.sender],
                          events=[("rejection_notice", row.sender, f"{what}; the sender is told")])


def _receipt(item: object) -> HopReceipt:
    """A hop receipt from its JSON form; ``ValueError``/``TypeError`` when malformed."""
    if not isinstance(item, dict):
        raise ValueError("a receipt is an object")
    receipt = HopReceipt(**item)
    for name, value in receipt.__dict__.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"receipt field {name} is not text")
        if value is not None and len(value) > 5000:
            raise ValueError(f"receipt field {name} is too long")
    if not (receipt.sha256 and receipt.node and receipt.kind and receipt.at):
        raise ValueError("a receipt needs sha256, node, kind and at")
    dt.datetime.fromisoformat(receipt.at)
    return receipt


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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
