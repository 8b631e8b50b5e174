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
from docaxis.dsig import StatementSigner, Verifier
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
from docaxis.relay._outbox import Outbox
from docaxis.relay._receipts import FROM_NODE, KIND, ORIGIN, HopEvidence, HopReceipt
from docaxis.store import (
    UNAVAILABLE,
    Accept,
    Acceptance,
    PackageFacts,
    Store,
)
from docaxis.transport import Broker, Consumer, Message, Reject

_log = logging.getLogger("docaxis.relay")

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
    receipts: HopEvidence = field(init=False, repr=False)
    outbox: Outbox = field(init=False, repr=False)
    _watched: bool = field(default=False, init=False, repr=False)
    _store_down_since: float | None = field(default=None, init=False, repr=False)
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

    def __post_init__(self) -> None:
        self.receipts = HopEvidence(self)
        self.outbox = Outbox(self)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.receipts.start(self._loop)
        self.outbox.start(self._loop)
        if not self._watched:
            self.metrics.watch(self)
            self._watched = True
        self._receiver = asyncio.create_task(self._supervised("receiver", self._receive_forever))
        broker = self.links(self.node_id)
        await broker.declare_node(self.node_id)
        self._consumer = await broker.consume(self.node_id, self.on_message,
                                              prefetch=self.prefetch)
        self._dispatcher = asyncio.create_task(self._supervised(
            "hand-over", self.outbox.hand_over_forever))
        self._sweeper = asyncio.create_task(self._supervised("sweep",
                                                             self.outbox.sweep_forever))
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
        await self.receipts.close()  # receipts still held: sent now
        self.outbox.stop()
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
            await self.receipts.on_message(message)
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
            await self.outbox.wait_while_lagging(2 * self.prefetch)  # hand-overs lag
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
        self.receipts.notify(origin, [HopReceipt(None, sha256, self.node_id, "rejected", _now(),
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

    async def dispatch_once(self, batch: int = 256, *, older_than: float = 0.0) -> int:
        """One outbox sweep now (see :meth:`Outbox.dispatch_once`)."""
        return await self.outbox.dispatch_once(batch, older_than=older_than)

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
            self.receipts.notify(origin, batch)
        self.outbox.hand_over_soon([(item, plan.accept.data)
                              for plan, acceptance in zip(plans, acceptances, strict=True)
                              for item in acceptance.handovers])
        return acceptances

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
