"""A relay node: the hop pipeline run for real, identical on every tier (ARCHITECTURE.md,
"one hop, one pipeline").

receive → size check → parse → validate (interop) → verify signature (signer = From) →
dedup (From + DocumentId + SHA-256; a repeat gets the original acceptance) → commit to the
store (log, outbox, inbox, events, in one transaction) → acknowledge the sender → hand
over to the next hops with publisher confirms → mark sent. Signed bytes are never
rewritten; the hop trace travels beside them in transport headers and hop receipts.

Fan-out follows the node tree without loops: a node never sends a package back to the
node it came from, and a node that received a package from its parent only serves the
recipients in its own subtree.

:class:`RelayNode` is thin: it owns the queues between the parts and the store's
up/down state, and runs its parts as tasks of one :class:`asyncio.TaskGroup` on its event
loop — the receiver and the API ingress (check → plan in :class:`Pipeline`, commit),
the :class:`Outbox` (hand-over, marking sent, sweep) and the :class:`HopEvidence` (hop
receipts). Only the event loop changes node state; worker threads compute and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from docaxis.directory import Directory
from docaxis.dsig import StatementSigner, Verifier
from docaxis.edxml import ParsedPackage, ParseLimits
from docaxis.relay._faults import fault_point
from docaxis.relay._intake import Answered, Intake
from docaxis.relay._metrics import NodeMetrics
from docaxis.relay._outbox import Outbox
from docaxis.relay._pipeline import (
    TRACEPARENT,
    Pipeline,
    Plan,
    Rejection,
    child_traceparent,
    trace_id,
)
from docaxis.relay._receipts import FROM_NODE, KIND, ORIGIN, HopEvidence, HopReceipt
from docaxis.relay._refusals import refusal_status
from docaxis.relay._stamper import LogStamper
from docaxis.relay._transfers import (
    LANE_PREFETCH,
    Chunk,
    Reassembly,
    TransferError,
    transfer_lane,
)
from docaxis.relay._uplink import VxpUplink
from docaxis.store import UNAVAILABLE, Accept, Acceptance, Event, Store
from docaxis.transport import Broker, Consumer, Message, Reject

_log = logging.getLogger("docaxis.relay")

#: packages up to this size are checked on the event loop (a fraction of a millisecond
#: each); larger ones in a worker thread, so that the loop never stalls on one
INLINE_CHECK_BYTES = 256 * 1024

#: the most API submissions committed in one transaction on the event loop (see
#: :meth:`RelayNode._commit_on_loop`): the 16 a batch of one worker at 16 requests in
#: flight, twice over; a larger batch is committed in a worker thread, so the loop never
#: stalls for more than a few milliseconds (64 on the loop or in a thread, one worker, 64
#: in flight: the thread 1.04× — docs/benchmarks.md, "thirteenth session")
INLINE_COMMIT_PACKAGES = 32


def _size(data: bytes | ParsedPackage) -> int:
    return data.size if isinstance(data, ParsedPackage) else len(data)

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
    #: seconds after its last renewal that a process's lease lapses, and its peers take
    #: over the hand-overs it owes (it renews every quarter of this)
    lease: float = 10.0
    #: confirmed hand-overs wait this long (seconds) to be marked sent together: one
    #: write transaction for many batches (a crash re-sends at most these; deduplicated)
    mark_sent_interval: float = 0.05
    #: hop receipts toward one origin wait this long (seconds) to travel together
    receipt_interval: float = 0.2
    #: signs this node's hop receipts with its node certificate (none: it sends none,
    #: since an origin records only receipts whose node signature verifies)
    node_signer: StatementSigner | None = None
    #: a VXP axis as a neighbour (its own link; polled for what it holds for us)
    uplink: VxpUplink | None = None
    #: whether this process polls the uplink (one process of a node is enough: the
    #: others would fetch the same packages, deduplicated, for nothing)
    poll_uplink: bool = True
    #: the directory as it is now (the entries in the database over the file), read every
    #: ``directory_interval`` seconds: an agency one process registers (VXP
    #: registerAgency, ``directory import``) reaches the node's other processes
    directory_source: Callable[[], Directory] | None = None
    directory_interval: float = 5.0
    #: RFC 3161 timestamps of the log's chain heads (``[audit] tsa_url``; None: none)
    stamper: LogStamper | None = None
    #: where large API uploads are spooled while they arrive and are checked, and large
    #: packages from other nodes reassembled from their chunks (None: a temporary folder
    #: of this process's own, removed at stop); what a crash left is removed at start
    spool: Path | None = None
    #: back-off (seconds) between looks at a store that is down
    store_backoff_min: float = 0.2
    store_backoff_max: float = 10.0
    #: whether the API's transactions may run on the event loop (see
    #: :meth:`_commit_on_loop`); False: always in a worker thread
    commit_on_loop: bool = True
    #: whether the API answers a checked submission once it is in this process's intake
    #: journal, and logs it afterwards (:mod:`docaxis.relay._intake`) — on a local SQLite
    #: store only (the journal is then on the same disk); False: after its transaction
    journal_intake: bool = True
    #: where the node's processes keep their intake journals (None: ``intake`` in the
    #: store's blob folder)
    intake_folder: Path | None = None
    #: the intake journal's part while the node runs (None: answers after the transaction)
    intake: Intake | None = field(default=None, init=False, repr=False)
    #: background tasks that died and were started again (for metrics and tests)
    task_restarts: int = field(default=0, init=False)
    metrics: NodeMetrics = field(default_factory=NodeMetrics, init=False, repr=False)
    receipts: HopEvidence = field(init=False, repr=False)
    outbox: Outbox = field(init=False, repr=False)
    _watched: bool = field(default=False, init=False, repr=False)
    _store_down_since: float | None = field(default=None, init=False, repr=False)
    _store_backoff: float = field(default=0.2, init=False, repr=False)
    _consumer: Consumer | None = field(default=None, init=False, repr=False)
    _lane: Consumer | None = field(default=None, init=False, repr=False)
    _reassembly: Reassembly | None = field(default=None, init=False, repr=False)
    _temporary_spool: Path | None = field(default=None, init=False, repr=False)
    _parts: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    #: refusals being written to the log (in threads)
    _recording: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _pipeline: Pipeline | None = field(default=None, init=False, repr=False)
    _incoming: asyncio.Queue[tuple[Message, asyncio.Future[None]]] = field(
        default_factory=asyncio.Queue, init=False, repr=False)
    _ingress: asyncio.Queue[tuple[bytes | ParsedPackage, str | None,
                                  asyncio.Future[Acceptance]]] = field(
        default_factory=asyncio.Queue, init=False, repr=False)
    #: checked submissions for the commit stage: each with the request's future, or
    #: already answered from the intake journal
    _checked_submissions: asyncio.Queue[tuple[Plan, asyncio.Future[Acceptance] | Answered]] = (
        field(default_factory=asyncio.Queue, init=False, repr=False))
    #: set when the API's commit stage should take what is checked: nothing is left to
    #: check, or a whole batch is checked
    _commit_ready: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    #: whether the API's last transaction reached the store (an outage is waited out in
    #: worker threads, never on the event loop)
    _api_store_answered: bool = field(default=True, init=False, repr=False)

    def __post_init__(self) -> None:
        self.receipts = HopEvidence(self)
        self.outbox = Outbox(self)
        if self.uplink is not None:
            self.uplink.attach(self)

    @property
    def pipeline(self) -> Pipeline:
        """Check → plan for this node, over its current directory, store, verifier and
        limits (made again when one of them is replaced)."""
        pipeline = self._pipeline
        if (pipeline is None or pipeline.directory is not self.directory
                or pipeline.store is not self.store or pipeline.verifier is not self.verifier
                or pipeline.limits is not self.limits):
            pipeline = self._pipeline = Pipeline(self.node_id, self.directory, self.store,
                                                 self.verifier, self.limits)
        return pipeline

    @property
    def _lag_limit(self) -> int:
        """Hand-overs in flight beyond which neither the hop's receiver nor the API takes
        more packages."""
        return 2 * self.prefetch

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Start the node's parts, then consume its inbound queue."""
        self._loop = asyncio.get_running_loop()
        if self.spool is None:  # embedded (tests, demo): a spool of this process's own
            self.spool = self._temporary_spool = Path(
                tempfile.mkdtemp(prefix=f"docaxis-{self.node_id}-spool-"))
        self._reassembly = Reassembly(self.spool)
        self._clear_spool()
        self.receipts.start(self._loop)
        self.outbox.start(self._loop)
        if self.journal_intake and self.store.local:
            self.intake = Intake(self.node_id, self.store,
                                 self.intake_folder or self.store.blobs.root / "intake",
                                 self.metrics, self._commit_submissions)
            self.intake.open()
            await self.intake.recover()  # what a process that is gone answered
        if not self._watched:
            self.metrics.watch(self)
            self._watched = True
        self._parts = asyncio.create_task(self._run_parts(), name=f"node {self.node_id}")
        broker = self.links(self.node_id)
        await broker.declare_node(self.node_id)
        self._consumer = await broker.consume(self.node_id, self.on_message,
                                              prefetch=self.prefetch)
        await broker.declare_node(transfer_lane(self.node_id))
        self._lane = await broker.consume(transfer_lane(self.node_id), self.on_chunk,
                                          prefetch=LANE_PREFETCH)

    async def _run_parts(self) -> None:
        """Every part of the node as one task group: cancelled together by :meth:`stop`."""
        async with asyncio.TaskGroup() as parts:
            for name, run in (("receiver", self._receive_forever),
                              ("api check", self._ingest_forever),
                              ("api commit", self._commit_submissions_forever),
                              ("hand-over", self.outbox.hand_over_forever),
                              ("mark sent", self.outbox.mark_sent_forever),
                              ("sweep", self.outbox.sweep_forever),
                              *((("intake recovery", self._recover_intake_forever),
                                 ("intake retries", functools.partial(
                                     self.intake.retry_forever, self._wait_for_store)))
                                if self.intake is not None else ()),
                              *((("vxp uplink", functools.partial(self.uplink.poll_forever, self)),)
                                if self.uplink is not None and self.poll_uplink else ()),
                              *((("directory", self._follow_directory),)
                                if self.directory_source is not None else ()),
                              *((("stamper", self.stamper.stamp_forever),)
                                if self.stamper is not None else ())):
                parts.create_task(self._supervised(name, run), name=f"{self.node_id} {name}")

    def _clear_spool(self, older_than: float = 3600.0) -> None:
        """Remove uploads a crashed process left in the spool (an hour old: a live upload
        of another process of this node is younger), each logged."""
        if self.spool is None or not self.spool.is_dir():
            return
        cutoff = time.time() - older_than
        for leftover in self.spool.glob("*.upload"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    _log.warning("node.spool_removed", extra={
                        "code": "RELAY-SPOOL-ORPHAN", "node": self.node_id,
                        "file": leftover.name})
            except FileNotFoundError:
                continue  # another process of the node took it first
        if self._reassembly is not None:
            for sha256 in self._reassembly.abandoned():
                _log.warning("node.transfer_abandoned", extra={
                    "code": "RELAY-TRANSFER-ABANDONED", "node": self.node_id,
                    "sha256": sha256})

    async def _recover_intake_forever(self) -> None:
        """Every ``lease`` seconds, log what the intake journals of this node's processes
        that are gone hold (a worker killed and not replaced, say)."""
        while True:
            await asyncio.sleep(self.lease)
            if self.intake is not None:
                await self.intake.recover()

    async def _follow_directory(self) -> None:
        """Take the directory's changes (read in a thread) every ``directory_interval``."""
        source = self.directory_source
        assert source is not None
        while True:
            await asyncio.sleep(self.directory_interval)
            try:
                latest = await asyncio.to_thread(source)
            except Exception as exc:  # a bad entry or the store down: keep what we have
                _log.warning("node.directory_unreadable", extra={
                    "code": "RELAY-DIRECTORY", "node": self.node_id, "error": str(exc)[:300]})
                continue
            if (latest.nodes, latest.agencies) != (self.directory.nodes,
                                                   self.directory.agencies):
                _log.info("node.directory_changed", extra={
                    "code": "RELAY-DIRECTORY-CHANGED", "node": self.node_id,
                    "nodes": len(latest.nodes), "agencies": len(latest.agencies)})
                self.directory = latest

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
                self.metrics.task_restarts.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        """Stop consuming (letting messages in hand finish), then the parts; hop receipts
        still held are sent, hand-overs confirmed but not yet marked are marked."""
        if self._consumer is not None:
            await self._consumer.stop(timeout=5)
        if self._lane is not None:
            await self._lane.stop(timeout=5)
            self._lane = None
        if self._parts is not None:
            self._parts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._parts
            self._parts = None
        if self.intake is not None:  # what it answered is logged, or left for the next start
            intake, self.intake = self.intake, None
            await intake.close()
        if self._recording:  # refusals still being written to the log
            await asyncio.gather(*self._recording, return_exceptions=True)
        await self.receipts.close()
        await self.outbox.close()
        if self.uplink is not None:
            await self.uplink.close()
        if self._temporary_spool is not None:
            shutil.rmtree(self._temporary_spool, ignore_errors=True)
            self.spool = self._temporary_spool = None
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
        return self._commit_many([self.pipeline.plan_submission(data, agency)])[0]

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
        """The API's check stage: take the submissions waiting (up to ``batch_size``),
        check and plan them, pass the good ones to the commit stage.

        A small package (up to :data:`INLINE_CHECK_BYTES`) is checked here, on the event
        loop, one at a time with a yield between two: its check takes a fraction of a
        millisecond, and a worker thread would only add a thread hop and a third thread
        contending for the GIL with the loop and the commit stage (measured: 6–12 % more
        packages per second). Larger ones are checked in a worker thread, so that the
        loop never stalls on one.
        """
        while True:
            if self._ingress.empty() or len(self.outbox.in_flight) > self._lag_limit:
                self._commit_ready.set()  # all that has arrived is checked (or waits below)
            # the hand-overs lag: wait for them, as the hop's receiver does, rather than
            # take on packages this node cannot forward as fast (their bytes wait in
            # memory, and the sweep would read every row still pending, again and again)
            await self.outbox.wait_while_lagging(self._lag_limit)
            if self.intake is not None and self.intake.unlogged >= self._lag_limit:
                self._commit_ready.set()  # answered faster than logged: let the store catch up
                await self.intake.wait_while_behind(self._lag_limit)
            batch = [await self._ingress.get()]
            self._commit_ready.clear()
            while len(batch) < self.batch_size and not self._ingress.empty():
                batch.append(self._ingress.get_nowait())
            try:
                if all(_size(data) <= INLINE_CHECK_BYTES for data, _, _ in batch):
                    outcomes = []
                    for data, agency, _future in batch:
                        outcomes += self._check_submissions([(data, agency)])
                        await asyncio.sleep(0)  # let the loop serve what is waiting
                else:
                    outcomes = await asyncio.to_thread(
                        self._check_submissions, [(data, agency) for data, agency, _ in batch])
            except Exception as exc:  # the batch as a whole failed: every request hears it
                outcomes = [exc] * len(batch)
            journaled: list[tuple[Plan, asyncio.Future[Acceptance]]] = []
            for (_data, _agency, future), outcome in zip(batch, outcomes, strict=True):
                if not isinstance(outcome, Plan):
                    if not future.done():
                        future.set_exception(outcome)
                elif self.intake is not None and outcome.accept.file is None:
                    journaled.append((outcome, future))
                else:  # answered after its transaction
                    self._checked_submissions.put_nowait((outcome, future))
            if journaled and self.intake is not None:  # answered now, logged after
                for answered in await self.intake.answer(journaled):
                    self._checked_submissions.put_nowait((answered.plan, answered))
            if self._checked_submissions.qsize() >= self.batch_size:
                self._commit_ready.set()  # a whole batch waits: no reason to wait longer

    async def _commit_submissions_forever(self) -> None:
        """The API's commit stage: every checked submission waiting, in one transaction
        (in a worker thread). While it waits for the store's writer, the check stage goes
        on, so the next transaction takes all that was checked meanwhile (group commit).

        A transaction starts once the check stage has checked all that has arrived (or a
        whole batch), not with the first checked submission alone: with a few requests in
        flight, the one that arrived a moment later would otherwise wait for a
        transaction of its own (interleaved A/B, ``workers = 2``, 16 requests in flight:
        6–27 % more packages per second, 15–23 % less CPU per package).

        The transaction runs on the event loop when :meth:`_commit_on_loop` says it may,
        else in a worker thread. Submissions answered from the intake journal are logged
        by :meth:`Intake.log` (in a worker thread: the event loop goes on checking and
        answering meanwhile, so the next transaction takes all it answered)."""
        while True:
            waiting = [await self._checked_submissions.get()]
            await self._commit_ready.wait()  # what has arrived meanwhile joins this batch
            while not self._checked_submissions.empty():
                waiting.append(self._checked_submissions.get_nowait())
            if self.intake is not None:
                answered = [item for _, item in waiting if isinstance(item, Answered)]
                if answered:
                    await self.intake.log(answered, self._wait_for_store)
            batch = [(plan, item) for plan, item in waiting if not isinstance(item, Answered)]
            if not batch:
                continue
            plans = [plan for plan, _ in batch]
            try:
                outcomes = (await self._commit_submissions_on_loop(plans)
                            if self._commit_on_loop(plans)
                            else await asyncio.to_thread(self._commit_submissions, plans))
            except Exception as exc:  # the batch as a whole failed: every request hears it
                outcomes = [exc] * len(batch)
            self._api_store_answered = not any(isinstance(outcome, UNAVAILABLE)
                                               for outcome in outcomes)
            for (_plan, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _commit_on_loop(self, plans: list[Plan]) -> bool:
        """Whether the API's transaction of ``plans`` runs on the event loop, not in a
        worker thread: a small batch of packages held in memory, on a local SQLite store
        that answered the last time.

        Handing a small batch's transaction to a worker thread cost the process more than
        running it here (measured with ``python -m benchmarks.ab_ingress``, one worker
        +11 % packages a second, two +3 %, inside the noise: docs/benchmarks.md,
        "2026-12-01 (twelfth session)"; likely the thread and the loop contending for the
        GIL, not measured apart). The loop then stalls for the transaction
        (≈ 2–4 ms for 8–16 small packages), as it does for a small package's check —
        never for a network round trip (PostgreSQL), a spooled file's bytes, another
        writer's turn (:meth:`_commit_submissions_on_loop`) or a store that is failing
        (its outage is met in threads until a transaction gets through again)."""
        return (self.commit_on_loop and self.store.local and self._api_store_answered
                and len(plans) <= INLINE_COMMIT_PACKAGES
                and all(plan.accept.file is None for plan in plans))

    async def _commit_submissions_on_loop(self, plans: list[Plan],
                                          ) -> list[Acceptance | BaseException]:
        """:meth:`_commit_submissions` on the event loop, the store's writer lock held for
        it: taken at once when it is free, else waited for in a worker thread (the loop
        goes on serving meanwhile; another process's transaction, or a stuck one, never
        stalls it)."""
        loop_thread = threading.get_ident()
        if not self.store.hold_writer(for_thread=loop_thread, wait=False):
            waiting = asyncio.ensure_future(asyncio.to_thread(
                self.store.hold_writer, for_thread=loop_thread))
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:  # (stopping) the lock, once taken, is given back
                waiting.add_done_callback(
                    lambda _taken: self.store.release_writer(loop_thread))
                raise
        try:
            return self._commit_submissions(plans)
        finally:
            self.store.release_writer(loop_thread)

    def _check_submissions(self, items: list[tuple[bytes | ParsedPackage, str | None]],
                           ) -> list[Plan | BaseException]:
        """(In a thread.) Each submission's plan, or why it is refused."""
        outcomes: list[Plan | BaseException] = []
        for data, agency in items:
            try:
                with self.metrics.stage.labels("check").time():
                    outcomes.append(self.pipeline.plan_submission(data, agency))
            except Rejection as exc:
                self.metrics.refused.labels(exc.code, "api").inc()
                outcomes.append(exc)
            except UNAVAILABLE as exc:
                outcomes.append(exc)
            except Exception as exc:
                _log.error("relay.internal_error", exc_info=True, extra={
                    "code": "RELAY-INTERNAL", "node": self.node_id, "stage": "api check"})
                outcomes.append(Rejection(f"unexpected {type(exc).__name__}: {exc}",
                                          [{"code": "RELAY-INTERNAL"}], code="RELAY-INTERNAL"))
        return outcomes

    def _commit_submissions(self, plans: list[Plan]) -> list[Acceptance | BaseException]:
        """(On the loop or in a thread: :meth:`_commit_on_loop`.) Commit checked
        submissions together; when the store refuses the batch for something other than an
        outage, commit them one by one to find the package it will not take (that one is
        refused, the others accepted)."""
        try:
            started = time.perf_counter()
            fault_point("api-commit")
            acceptances = self._commit_many(plans)
            self.metrics.stage.labels("commit").observe(time.perf_counter() - started)
        except UNAVAILABLE as exc:
            return [exc] * len(plans)
        except Exception as exc:
            if len(plans) > 1:
                return [self._commit_submissions([plan])[0] for plan in plans]
            _log.error("relay.internal_error", exc_info=True, extra={
                "code": "RELAY-INTERNAL", "node": self.node_id, "stage": "api commit",
                "document_id": plans[0].accept.facts.document_id})
            return [Rejection(f"the store refused to commit it: {type(exc).__name__}",
                              [{"code": "RELAY-INTERNAL"}], code="RELAY-INTERNAL")]
        self.metrics.accepted.labels("api").inc(sum(not a.duplicate for a in acceptances))
        return list(acceptances)

    # -- hop ---------------------------------------------------------------------------
    async def on_message(self, message: Message) -> None:
        """Transport handler: returns (→ ack) once the package is committed here."""
        if message.headers.get(KIND, "package") == "hop-receipt":
            await self.receipts.on_message(message)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._incoming.put_nowait((message, future))
        await future

    async def on_chunk(self, message: Message) -> None:
        """Transfer-lane handler: keep one chunk of a large package (``_transfers``);
        returns (→ ack) once it is on disk — the chunk that completes the package once
        the package is committed here (or refused and parked)."""
        try:
            chunk = Chunk.read(message.headers)
        except ValueError as exc:
            raise Reject(f"RELAY-TRANSFER: {exc}") from None
        assert self._reassembly is not None
        reassembly = self._reassembly
        delay = self.store_backoff_min
        while True:
            try:
                if await asyncio.to_thread(self.store.has_package, chunk.sha256):
                    return  # logged here already: a repeat (a re-sent transfer)
                complete = await asyncio.to_thread(reassembly.keep, chunk, message.body)
                if await asyncio.to_thread(self.store.has_package, chunk.sha256):
                    # logged while this repeat was written (the first sending completed
                    # and forgot its files just before): what it wrote is a leftover
                    await asyncio.to_thread(reassembly.forget, chunk.sha256)
                    return
                break
            except ValueError as exc:
                raise Reject(f"RELAY-TRANSFER: {exc}") from None
            except UNAVAILABLE as exc:  # the disk (or the store) is not the chunk's fault
                _log.warning("node.transfer_wait", extra={
                    "code": "RELAY-TRANSFER-WAIT", "node": self.node_id,
                    "sha256": chunk.sha256, "chunk": chunk.index, "error": repr(exc)[:300]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.store_backoff_max)
        fault_point("mid-reassembly")
        if not complete:
            return
        with reassembly.completing(chunk.sha256) as mine:
            if mine:
                await self._complete_transfer(chunk, message)

    async def _complete_transfer(self, chunk: Chunk, message: Message) -> None:
        """Every chunk is here: check the package as one (size, SHA-256, then the node's
        whole check by streaming), commit it, and forget the transfer's files."""
        assert self._reassembly is not None
        reassembly = self._reassembly
        origin = message.headers.get(ORIGIN) or ""
        try:
            path = await asyncio.to_thread(reassembly.check, chunk)  # its size
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            plan = await self._checked(message, future, reassembled=(path, chunk.sha256))
        except TransferError as exc:
            await asyncio.to_thread(reassembly.forget, chunk.sha256)
            _log.error("node.transfer_corrupt", extra={
                "code": "RELAY-TRANSFER-CORRUPT", "node": self.node_id,
                "sha256": chunk.sha256, "origin": origin, "error": str(exc)})
            raise Reject(f"RELAY-TRANSFER-CORRUPT: {exc}") from None
        except FileNotFoundError:
            return  # completed by another process of this node meanwhile
        if plan is not None:
            await self._commit_batch([(plan, future)])
        await asyncio.to_thread(reassembly.forget, chunk.sha256)
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
            await self.outbox.wait_while_lagging(self._lag_limit)  # hand-overs lag
            batch = [await self._incoming.get()]
            while len(batch) < self.batch_size and not self._incoming.empty():
                batch.append(self._incoming.get_nowait())
            plans: list[tuple[Plan, asyncio.Future[None]]] = []
            for message, future in batch:
                plan = await self._checked(message, future)
                if plan is not None:
                    plans.append((plan, future))
            fault_point("while-consuming")
            await self._commit_batch(plans)

    async def _checked(self, message: Message, future: asyncio.Future[None], *,
                       reassembled: tuple[Path, str] | None = None) -> Plan | None:
        """The plan of one hop message — or, with ``reassembled`` (file, SHA-256), of the
        large package its transfer reassembled (checked by streaming, in a thread) — or
        None when it was refused (its future settled).

        Raises
        ------
        TransferError
            The reassembled file is not the package its transfer names.
        """
        origin = message.headers.get(ORIGIN) or ""
        came_from = message.headers.get(FROM_NODE)
        parent = self.directory.nodes[self.node_id].parent
        body = message.body if reassembled is None else b""
        sha256 = reassembled[1] if reassembled is not None else None

        def check_and_plan() -> Plan:
            fault_point("check")
            with self.metrics.stage.labels("check").time():
                parsed = self.pipeline.check(message.body if reassembled is None
                                             else reassembled[0])
            if sha256 is not None and parsed.sha256 != sha256:  # (hashed while read)
                raise TransferError(f"the chunks of {sha256[:12]}… do not make the package "
                                    "they name (SHA-256)")
            fault_point("plan")
            return self.pipeline.plan(
                parsed, received_from=came_from, origin=origin,
                from_parent=came_from is not None and came_from == parent,
                trace=child_traceparent(message.headers.get(TRACEPARENT)))

        while True:
            try:  # a small package on the loop; a large one, read from its file, in a thread
                return (check_and_plan() if reassembled is None
                        else await asyncio.to_thread(check_and_plan))
            except Rejection as exc:
                self._refuse(body, message.message_id, future, origin, exc.code,
                             exc.message, exc.reasons, message.headers.get(TRACEPARENT),
                             sha256=sha256)
                return None
            except UNAVAILABLE as exc:  # the store, read while planning: wait for it
                await self._wait_for_store(exc)
            except TransferError:
                raise
            except Exception as exc:  # a bug or a crash in a library: park this one only
                _log.error("relay.internal_error", exc_info=True, extra={
                    "code": "RELAY-INTERNAL", "node": self.node_id,
                    "message_id": message.message_id, "sha256": sha256 or _sha(body),
                    "stage": "check/plan"})
                self._refuse(body, message.message_id, future, origin,
                             "RELAY-INTERNAL",
                             f"unexpected {type(exc).__name__} while checking: {exc}",
                             [{"code": "RELAY-INTERNAL", "message": repr(exc)[:500]}],
                             message.headers.get(TRACEPARENT), sha256=sha256)
                return None

    def _refuse(self, body: bytes, message_id: str | None, future: asyncio.Future[None],
                origin: str, code: str, text: str, reasons: list[dict[str, object]],
                trace: str | None = None, *, sha256: str | None = None) -> None:
        """Park a hop message (the transport's dead-letter queue) and tell its origin
        (``sha256``: the package's, when ``body`` is not all of it — a large one's
        structure)."""
        sha256 = sha256 or _sha(body)
        self.metrics.refused.labels(code, "hop").inc()
        _log.warning("relay.refused", extra={
            "code": code, "node": self.node_id, "message_id": message_id, "sha256": sha256,
            "origin": origin, "trace_id": trace_id(trace), "reason": text[:300]})
        status = refusal_status(body, node_id=self.node_id, signer=self.node_signer,
                                directory=self.directory, reasons=reasons, limits=self.limits)
        self.receipts.notify(origin, [HopReceipt(None, sha256, self.node_id, "rejected", _now(),
                                                 detail=json.dumps(reasons)[:2000],
                                                 status=status)])
        self._record_refusal(sha256, reasons)
        if not future.done():
            future.set_exception(Reject(f"{code}: {text}"))

    def _record_refusal(self, sha256: str, reasons: list[dict[str, object]]) -> None:
        """A refusal here is a record of this node's log too (chained like every event),
        written in a thread; the store being down loses the record, never the refusal
        (the message is parked and its origin told either way) — and says so."""
        event = Event(self.node_id, "refused", dt.datetime.now(dt.UTC), None,
                      json.dumps(reasons, ensure_ascii=False)[:2000], sha256)
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(
            self.store.add_events, [event], documents=[(None, None)]))
        self._recording.add(task)
        task.add_done_callback(self._refusal_recorded)

    def _refusal_recorded(self, task: asyncio.Task[None]) -> None:
        self._recording.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("relay.refusal_not_logged", extra={
                "code": "RELAY-REFUSAL-UNLOGGED", "node": self.node_id,
                "error": repr(task.exception())[:300]})

    async def _commit_batch(self, plans: list[tuple[Plan, asyncio.Future[None]]]) -> None:
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

    def _commit_many(self, plans: list[Plan],
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
        self.outbox.hand_over_soon([(item, None if plan.accept.file else plan.accept.data)
                              for plan, acceptance in zip(plans, acceptances, strict=True)
                              for item in acceptance.handovers])
        return acceptances

def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
