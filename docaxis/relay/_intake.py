"""The API's intake: a checked submission made durable, answered, and logged afterwards.

:class:`Intake` owns this process's intake journal (:mod:`docaxis.store._intake`), the
submissions it has answered that are not in the store yet, and those set aside after a
failed transaction. The node's check stage hands it what it has checked
(:meth:`Intake.answer`: one journal append for all of it, then the answers); the commit
stage logs what was answered (:meth:`Intake.log`, the store's transaction in a worker
thread, as many as were answered meanwhile); :meth:`Intake.recover` logs what a process
that is gone answered and did not log (at start, every ``lease`` seconds, and at stop).

What this changes for an agency system: ``202 Accepted`` means the package is durable on
the node's disk, checked and deduplicated, as before; it reaches the message log (trace,
inbox, hand-over) a few milliseconds later. A repeat is answered as the first post was
(``duplicate: true``, the first acceptance's time) — except a repeat posted to another
worker process within those milliseconds, which is answered ``duplicate: false`` and then
logged as the repeat it is (one package in the log, one delivery).

Only the event loop calls :class:`Intake`, except the transaction it runs in a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docaxis.relay._metrics import NodeMetrics
from docaxis.relay._pipeline import Plan, Rejection
from docaxis.store import (
    UNAVAILABLE,
    Accept,
    Acceptance,
    IntakeJournal,
    JournalEntry,
    PackageFacts,
    Store,
    business_key,
    orphaned_journals,
)

_log = logging.getLogger("docaxis.relay")

#: the journal record's format; a journal of another is left for the docaxis that wrote it
RECORD_VERSION = 1
#: the longest a set-aside submission waits before its transaction is tried again
RETRY_MAX = 60.0
#: packages a recovery logs in one transaction
RECOVERY_BATCH = 128
#: seconds between two looks for set-aside submissions due for another try
RETRY_LOOK = 0.5


def encode(plan: Plan) -> str:
    """``plan`` as a journal record (its package's bytes travel beside it)."""
    accept = plan.accept
    if accept.file is not None or accept.accepted_at is None:
        raise ValueError("only a package held in memory, with its acceptance time, "
                         "is journaled")
    return json.dumps({
        "v": RECORD_VERSION, "origin": plan.origin, "trace": plan.trace,
        "node": accept.node, "facts": dataclasses.asdict(accept.facts),
        "received_from": accept.received_from, "origin_node": accept.origin_node,
        "outbox": accept.outbox, "inbox": accept.inbox, "events": accept.events,
        "linked": accept.linked, "status": accept.status,
        "accepted_at": accept.accepted_at.isoformat()}, ensure_ascii=False)


def decode(record: str, data: bytes) -> Plan:
    """The plan :func:`encode` wrote.

    Raises
    ------
    ValueError
        Not a record of :data:`RECORD_VERSION` (or not a record).
    """
    try:
        fields = json.loads(record)
        if fields.get("v") != RECORD_VERSION:
            raise ValueError(f"a journal record of format {fields.get('v')!r}, not "
                             f"{RECORD_VERSION}")
        facts = dict(fields["facts"])
        facts["recipients"] = tuple(facts["recipients"])
        accept = Accept(
            data, PackageFacts(**facts), fields["node"], fields["received_from"],
            fields["origin_node"],
            outbox=tuple((node, kind, dict(headers)) for node, kind, headers in fields["outbox"]),
            inbox=tuple(fields["inbox"]),
            events=tuple((kind, agency, detail) for kind, agency, detail in fields["events"]),
            linked=tuple((document, kind, agency, detail)
                         for document, kind, agency, detail in fields["linked"]),
            status=(tuple(fields["status"]) if fields["status"] is not None else None),
            accepted_at=dt.datetime.fromisoformat(fields["accepted_at"]))
        return Plan(accept, fields["origin"], fields["trace"])
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a journal record: {exc!r}") from None


@dataclass
class Answered:
    """A submission answered from the journal, not logged yet."""

    plan: Plan
    key: str
    row: int
    #: a set-aside submission: when its transaction is tried again, and the wait after that
    retry_at: float = 0.0
    backoff: float = 1.0


class Intake:
    """This process's intake journal and what it answered (see the module's docstring).

    Parameters
    ----------
    node_id:
        The node whose journal this is (a record of another node's is never logged here).
    store:
        The node's store (a local SQLite store: the journal stands in for it on the same
        disk).
    folder:
        Where the node's processes keep their journals.
    metrics:
        The node's metrics.
    commit:
        Logs plans in one transaction and does what follows (the node's hand-overs, hop
        receipts): one outcome a plan, an :class:`Acceptance` or the exception that kept
        it out. Run in a worker thread.
    """

    def __init__(self, node_id: str, store: Store, folder: Path, metrics: NodeMetrics,
                 commit: Callable[[list[Plan]], list[Acceptance | BaseException]]) -> None:
        self.node_id, self.store, self.folder, self.metrics = node_id, store, folder, metrics
        self._commit = commit
        self._journal: IntakeJournal | None = None
        #: answered, not logged: business key -> when it was accepted (a repeat's answer)
        self._unlogged: dict[str, dt.datetime] = {}
        self._set_aside: list[Answered] = []
        self._unreadable: set[Path] = set()  # reported once each
        self._caught_up = asyncio.Event()  # set whenever some were logged

    @property
    def unlogged(self) -> int:
        """Submissions this process answered that are not in the store yet."""
        return len(self._unlogged)

    async def wait_while_behind(self, limit: int) -> None:
        """Wait while ``limit`` or more answered submissions are not logged yet (the
        store's transactions lag behind the answers: their bytes would pile up in
        memory)."""
        while len(self._unlogged) >= limit:
            self._caught_up.clear()
            await self._caught_up.wait()

    def open(self) -> None:
        """Start this process's journal.

        Raises
        ------
        OSError
            The folder cannot be written.
        """
        if self._journal is None:
            self._journal = IntakeJournal.create(self.folder)

    async def answer(self, checked: list[tuple[Plan, asyncio.Future[Acceptance]]],
                     ) -> list[Answered]:
        """Answer checked submissions: a repeat of what is logged (or answered here and
        not logged yet) with its first acceptance; the others once one journal append has
        made them durable. Returns those to log.

        Every future is settled here: with an :class:`Acceptance`, or with one of the
        store's ``UNAVAILABLE`` errors (the database unreadable, the journal unwritable:
        the API answers 503, nothing was accepted).
        """
        journal = self._journal
        assert journal is not None, "Intake.open() first"
        keys = [business_key(plan.accept.facts.sender, plan.accept.facts.document_id,
                             plan.accept.sha256) for plan, _ in checked]
        try:
            logged = self.store.logged_acceptances(keys)
        except UNAVAILABLE as exc:
            _settle([future for _, future in checked], exc)
            return []
        now = dt.datetime.now(dt.UTC)
        first: dict[str, Plan] = {}
        repeats: list[tuple[str, asyncio.Future[Acceptance]]] = []
        futures: list[asyncio.Future[Acceptance]] = []
        for (plan, future), key in zip(checked, keys, strict=True):
            if key in logged or key in self._unlogged or key in first:
                repeats.append((key, future))
            else:
                first[key] = Plan(dataclasses.replace(plan.accept, accepted_at=now),
                                  plan.origin, plan.trace)
                futures.append(future)
        answered: list[Answered] = []
        if first:
            try:
                rows = journal.append([JournalEntry(key, encode(plan), plan.accept.data)
                                       for key, plan in first.items()])
            except UNAVAILABLE as exc:
                _log.error("intake.unwritable", extra={
                    "code": "RELAY-INTAKE-UNWRITABLE", "node": self.node_id,
                    "packages": len(first), "error": str(exc)[:300]})
                _settle(futures, exc)
                _settle([future for _, future in repeats], exc)
                return []
            self.metrics.intake_journaled.inc(len(rows))
            for (key, plan), row, future in zip(first.items(), rows, futures, strict=True):
                self._unlogged[key] = now
                answered.append(Answered(plan, key, row))
                if not future.done():
                    future.set_result(Acceptance(plan.accept.sha256, key, now, False))
        for key, future in repeats:
            at = logged.get(key) or self._unlogged.get(key) or now
            if not future.done():
                future.set_result(Acceptance(key.rsplit("|", 1)[1], key, at, True))
        return answered

    async def retry_forever(self, wait_for_store: Callable[[BaseException], Any]) -> None:
        """Try the set-aside submissions again as their back-off runs out."""
        while True:
            await asyncio.sleep(RETRY_LOOK)
            now = time.monotonic()
            due = [item for item in self._set_aside if item.retry_at <= now]
            if due:
                self._set_aside = [item for item in self._set_aside if item.retry_at > now]
                await self.log(due, wait_for_store)

    async def log(self, answered: list[Answered],
                  wait_for_store: Callable[[BaseException], Any]) -> None:
        """Log answered submissions in one transaction (in a worker thread). A store outage
        is waited out (``wait_for_store``) and the same submissions tried again; one the
        store refuses otherwise is set aside and tried again later, with back-off — it
        was answered, so it is never dropped (nor refused)."""
        while True:
            outcomes = await asyncio.to_thread(self._commit, [item.plan for item in answered])
            outage = next((outcome for outcome in outcomes
                           if isinstance(outcome, UNAVAILABLE)), None)
            if outage is None:
                break
            await wait_for_store(outage)
        logged: list[int] = []
        for item, outcome in zip(answered, outcomes, strict=True):
            if isinstance(outcome, Acceptance):
                logged.append(item.row)
                self._unlogged.pop(item.key, None)
                continue
            self.metrics.intake_retries.inc()
            item.retry_at = time.monotonic() + item.backoff
            _log.error("intake.not_logged", extra={
                "code": "RELAY-INTAKE-RETRY", "node": self.node_id,
                "document_id": item.plan.accept.facts.document_id,
                "sha256": item.key.rsplit("|", 1)[1], "retry_in": item.backoff,
                "error": (outcome.message if isinstance(outcome, Rejection)
                          else repr(outcome))[:300]})
            item.backoff = min(item.backoff * 2, RETRY_MAX)
            self._set_aside.append(item)
        if logged:
            self._caught_up.set()
            self.metrics.intake_logged.inc(len(logged))
            assert self._journal is not None
            self._journal.forget(logged)

    async def recover(self) -> int:
        """Log what the journals of processes that are gone hold (each journal's packages,
        then the journal removed); returns how many packages were new to the log. A
        journal this docaxis cannot read, or of another node, is left in place and
        reported; one the store cannot take now is tried again at the next call."""
        own = self._journal.path if self._journal is not None else None
        new = 0
        for orphan in orphaned_journals(self.folder, own=own):
            remove = False
            try:
                plans = self._plans(orphan.path, await asyncio.to_thread(orphan.entries))
                if plans is None:
                    continue
                for start in range(0, len(plans), RECOVERY_BATCH):
                    chunk = plans[start:start + RECOVERY_BATCH]
                    outcomes = await asyncio.to_thread(self._commit, chunk)
                    failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
                    if failed is not None:
                        raise failed
                    fresh = sum(isinstance(o, Acceptance) and not o.duplicate
                                for o in outcomes)
                    new += fresh
                    self.metrics.intake_recovered.inc(fresh)
                _log.warning("intake.recovered", extra={
                    "code": "RELAY-INTAKE-RECOVERED", "node": self.node_id,
                    "file": orphan.path.name, "packages": len(plans)})
                remove = True
            except UNAVAILABLE as exc:
                _log.warning("intake.recovery_waits", extra={
                    "code": "STORE-UNAVAILABLE", "node": self.node_id,
                    "file": orphan.path.name, "error": repr(exc)[:300]})
                return new
            except sqlite3.Error as exc:
                self._report(orphan.path, f"the file cannot be read: {exc}")
            except Exception as exc:
                _log.error("intake.recovery_failed", exc_info=True, extra={
                    "code": "RELAY-INTAKE-RETRY", "node": self.node_id,
                    "file": orphan.path.name, "error": repr(exc)[:300]})
            finally:
                orphan.release(remove=remove)
        return new

    def _plans(self, path: Path, entries: list[tuple[int, JournalEntry]]) -> list[Plan] | None:
        """The plans of a journal's entries; None (reported) if one cannot be read."""
        plans: list[Plan] = []
        for row, entry in entries:
            try:
                plan = decode(entry.record, entry.data)
            except ValueError as exc:
                self._report(path, f"row {row}: {exc}")
                return None
            if plan.accept.node != self.node_id:
                self._report(path, f"row {row} belongs to node {plan.accept.node!r}")
                return None
            plans.append(plan)
        return plans

    def _report(self, path: Path, problem: str) -> None:
        if path not in self._unreadable:
            self._unreadable.add(path)
            _log.error("intake.unreadable", extra={
                "code": "RELAY-INTAKE-UNREADABLE", "node": self.node_id, "file": str(path),
                "problem": problem[:300]})

    async def close(self) -> None:
        """Stop journaling: remove this process's journal when everything it answered is
        logged, else log it now (or, with the store down, leave it to the next start)."""
        journal, self._journal = self._journal, None
        if journal is None:
            return
        if not self._unlogged and not self._set_aside:
            journal.close(remove=True)
            return
        journal.close(remove=False)
        await self.recover()
        self._unlogged.clear()
        self._set_aside.clear()


def _settle(futures: list[asyncio.Future[Acceptance]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
