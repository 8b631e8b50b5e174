"""The outbox (hộp thư đi): hand-overs a node owes to the next nodes, and who sends them.

Every committed package's hand-overs are outbox rows written in its own transaction.
Just after the commit they go, with the bytes still in memory, to the hand-over task,
which publishes them concurrently (each with a publisher confirm); the mark-sent task
then marks what was confirmed sent, grouped: at most one write transaction per
``mark_sent_interval`` (a row confirmed but not yet marked when the process dies is sent
again by the sweep, and the next node deduplicates it).
The sweep re-sends what is owed and not in hand: this process's rows still pending
``sweep_after`` seconds after their commit, and the rows of a process that is gone — at
once when this host's ``/proc`` proves it dead, else when its lease (renewed by its own
sweep every ``lease / 4`` seconds) is older than the node's ``lease`` setting: a process
that died, hung or lost its machine, on this host or another, with any hostname.
A row whose bytes cannot be read is reported and skipped, never claimed.

:class:`Outbox` owns the hand-over queue, the in-flight set and the unreadable-row alarms
of one node, and changes them on the node's event loop only (threads compute and
return); it reads the node's store, links and settings when it needs them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from docaxis.relay._faults import fault_point
from docaxis.relay._transfers import (
    CHUNK_COUNT,
    CHUNK_INDEX,
    TRANSFER,
    TRANSFER_ABOVE,
    TRANSFER_CHUNK,
    TRANSFER_SIZE,
    chunk_count,
    transfer_lane,
)
from docaxis.store import BlobError, OutboxItem, is_alive
from docaxis.transport import Message

if TYPE_CHECKING:
    from docaxis.relay._node import RelayNode

_log = logging.getLogger("docaxis.relay")


@dataclass(eq=False)
class Outbox:
    """The hand-overs of one node (see the module's docstring)."""

    node: RelayNode
    #: outbox rows being handed over by this process right now
    in_flight: set[int] = field(default_factory=set, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _handovers: asyncio.Queue[list[tuple[OutboxItem, bytes | None]]] = field(
        default_factory=asyncio.Queue, init=False, repr=False)
    _handed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    #: outbox rows whose bytes could not be read (reported once each)
    _unreadable: set[int] = field(default_factory=set, init=False, repr=False)
    #: hand-overs confirmed by the broker, to be marked sent (still in flight until then)
    _confirmed: list[OutboxItem] = field(default_factory=list, init=False, repr=False)
    _to_mark: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def close(self) -> None:
        """Mark sent what was confirmed and not yet marked, and give the lease up: the
        node is stopping (what it still owes passes to its peers by age, at once when
        this host sees the process gone)."""
        await self._mark_confirmed()
        try:
            await asyncio.to_thread(self.node.store.release_lease)
        except Exception as exc:  # the lease lapses by itself
            _log.warning("lease.release_failed", extra={
                "code": "RELAY-LEASE", "node": self.node.node_id, "error": repr(exc)[:300]})
        self._loop = None

    async def wait_while_lagging(self, limit: int) -> None:
        """Hold the receiver while more than ``limit`` hand-overs are in flight."""
        while len(self.in_flight) > limit:
            self._handed.clear()
            await self._handed.wait()

    def hand_over_soon(self, items: list[tuple[OutboxItem, bytes | None]]) -> None:
        """Queue just-committed hand-overs (with their bytes, already in memory) for the
        hand-over task. Callable from any thread: the node's state (the in-flight set, the
        queue) is changed on the event loop only. A node that is not running leaves them
        to the sweep."""
        loop = self._loop
        if not items or loop is None:
            return
        loop.call_soon_threadsafe(self._queue_handovers, items)

    def _queue_handovers(self, items: list[tuple[OutboxItem, bytes | None]]) -> None:
        """(On the event loop.) Mark the hand-overs in flight and queue them."""
        self.in_flight.update(item.id for item, _ in items)
        self._handovers.put_nowait(items)

    async def hand_over_forever(self) -> None:
        """Publish queued hand-overs concurrently, each with its confirm, and pass the
        confirmed ones to the mark-sent task. A failure leaves them pending for the sweep;
        a crash before they are marked re-sends them, and the next node deduplicates."""
        while True:
            items = await self._handovers.get()
            while not self._handovers.empty():
                items += self._handovers.get_nowait()
            try:
                await self._publish_all(items)
                fault_point("after-publish")
            except Exception as exc:  # still pending: the sweep re-sends them
                _log.warning("handover.failed", extra={
                    "code": "RELAY-HANDOVER-RETRY", "node": self.node.node_id,
                    "count": len(items), "error": repr(exc)[:300],
                    "documents": [i.document_id for i, _ in items[:5]]})
                self._release([item for item, _ in items])
                continue
            self._confirmed += [item for item, _ in items]
            self._to_mark.set()

    async def mark_sent_forever(self) -> None:
        """Mark confirmed hand-overs sent, grouped: wait ``mark_sent_interval`` after the
        first confirm so that the confirms of several batches share one transaction."""
        while True:
            await self._to_mark.wait()
            await asyncio.sleep(self.node.mark_sent_interval)
            await self._mark_confirmed()

    async def _mark_confirmed(self) -> None:
        items, self._confirmed = self._confirmed, []
        self._to_mark.clear()
        if not items:
            return
        try:
            await asyncio.to_thread(self.node.store.mark_sent_many, items,
                                    node=self.node.node_id)
        except Exception as exc:  # still pending (sent): the sweep sends them again
            _log.warning("handover.mark_failed", extra={
                "code": "RELAY-HANDOVER-RETRY", "node": self.node.node_id,
                "count": len(items), "error": repr(exc)[:300],
                "documents": [i.document_id for i in items[:5]]})
        finally:
            self._release(items)

    def _release(self, items: list[OutboxItem]) -> None:
        self.in_flight.difference_update(item.id for item in items)
        self._handed.set()

    async def _publish_all(self, items: list[tuple[OutboxItem, bytes | None]]) -> None:
        async def publish(item: OutboxItem, data: bytes | None) -> None:
            uplink = self.node.uplink
            if data is None and uplink is not None and item.destination_node == uplink.node:
                data = await self._for_uplink(item)  # VXP has no chunks: one body or none
                if data is None:
                    return
            if data is None:  # a large package: in chunks, from the store
                await self._transfer(item)
                return
            await self.node.links(item.destination_node).publish(item.destination_node, Message(
                data, item.headers, message_id=f"{item.sha256}:{self.node.node_id}"))

        await asyncio.gather(*(publish(item, data) for item, data in items))

    async def _for_uplink(self, item: OutboxItem) -> bytes | None:
        """A large package's bytes for a VXP axis (``sendEdoc`` carries one body, held in
        memory): up to the in-memory cap; above it None, and the uplink says why."""
        uplink = self.node.uplink
        assert uplink is not None
        size, chunks = await asyncio.to_thread(self.node.store.package_chunks, item.sha256)
        limit = self.node.limits.in_memory().max_bytes
        if size <= limit:
            return await asyncio.to_thread(b"".join, chunks)
        await uplink.too_large(item.sha256, size, item.document_id, item.document_sender,
                               limit)
        return None

    async def _transfer(self, item: OutboxItem) -> None:
        """Hand a large package over in chunks to the next node's transfer lane, each
        with its confirm, read from the store as they go (``_transfers``).

        Raises
        ------
        TransportError, BlobError, OSError
            The transfer is incomplete: the row stays pending and is sent again whole.
        """
        size, blocks = await asyncio.to_thread(self.node.store.package_chunks, item.sha256,
                                               block=TRANSFER_CHUNK)
        count = chunk_count(size)
        lane = transfer_lane(item.destination_node)
        broker = self.node.links(item.destination_node)
        chunks = _regrouped(blocks, TRANSFER_CHUNK)
        # two chunks in flight: the next is read and sent while the one before is confirmed
        pending: list[asyncio.Future[None]] = []
        try:
            for index in range(count):
                body = await asyncio.to_thread(next, chunks, b"")
                pending.append(asyncio.ensure_future(broker.publish(lane, Message(body, {
                    **item.headers, TRANSFER: item.sha256, CHUNK_INDEX: str(index),
                    CHUNK_COUNT: str(count), TRANSFER_SIZE: str(size)},
                    message_id=f"{item.sha256}:{self.node.node_id}:{index}"))))
                if len(pending) > 1:
                    await pending.pop(0)
                fault_point("mid-transfer")
            while pending:
                await pending.pop(0)
        finally:
            for future in pending:  # a failure: the rest is sent again with the transfer
                future.cancel()
        await asyncio.to_thread(next, chunks, b"")  # the end of the blob: its SHA-256 checked

    async def dispatch_once(self, batch: int = 256, *, older_than: float = 0.0) -> int:
        """Sweep the outbox once: hand over the pending rows this process should send now
        (:meth:`_owed_here`), claimed for it first, then mark them sent. Returns how many
        were handed over."""
        sent, after = 0, 0
        while True:
            pending = await asyncio.to_thread(self.node.store.pending_outbox, limit=batch,
                                              after_id=after)
            if not pending:
                return sent
            after = pending[-1].id
            now = dt.datetime.now(dt.UTC)
            if any(item.claimed_by != self.node.store.claimant for item in pending):
                leases = await asyncio.to_thread(self.node.store.lease_ages)
            else:
                leases = {}
            owed = [item for item in pending
                    if self._owed_here(item, older_than, now, leases)]
            if not owed:
                continue
            # bytes first: a row whose bytes cannot be read is reported and skipped, never
            # claimed (it would hold up every row after it, and be claimed again forever)
            readable, unreadable = await asyncio.to_thread(self._with_bytes, owed)
            self._report_unreadable(unreadable)
            if not readable:
                continue
            won = {item.id for item in await asyncio.to_thread(
                self.node.store.claim_outbox, [item for item, _ in readable])}
            loaded = [(item, data) for item, data in readable if item.id in won]
            items = [item for item, _ in loaded]
            if not items:
                continue
            await self._publish_all(loaded)
            fault_point("after-publish")
            await asyncio.to_thread(self.node.store.mark_sent_many, items, node=self.node.node_id)
            sent += len(items)

    def _owed_here(self, item: OutboxItem, grace: float, now: dt.datetime,
                   leases: dict[str, float]) -> bool:
        """Whether this process should hand ``item`` over now.

        Its own rows, once ``grace`` seconds old (the hand-over task failed them). Another
        process's rows: at once when this host proves that process dead; when its lease
        has lapsed (older than the node's ``lease``: gone or hung, on any host); never
        while its lease is fresh; by age (``grace``) when it has no lease at all (rows of
        before leases, or of a process that stopped cleanly and gave its lease up).
        """
        if item.id in self.in_flight:
            return False
        old = item.created_at is None or (now - item.created_at).total_seconds() > grace
        if item.claimed_by == self.node.store.claimant:
            return old
        if is_alive(item.claimed_by) is False:
            return True
        age = leases.get(item.claimed_by or "")
        if age is not None:
            return age > self.node.lease
        return old

    def _with_bytes(self, items: list[OutboxItem]) -> tuple[
            list[tuple[OutboxItem, bytes | None]], list[tuple[OutboxItem, Exception]]]:
        """(In a thread.) The items with their bytes, and those whose bytes cannot be read."""
        loaded: list[tuple[OutboxItem, bytes | None]] = []
        unreadable: list[tuple[OutboxItem, Exception]] = []
        for item in items:
            try:
                size, chunks = self.node.store.package_chunks(item.sha256)
                loaded.append((item, None if size > TRANSFER_ABOVE else b"".join(chunks)))
            except (BlobError, KeyError) as exc:
                unreadable.append((item, exc))
        return loaded, unreadable

    def _report_unreadable(self, unreadable: list[tuple[OutboxItem, Exception]]) -> None:
        """(On the event loop.) Raise the alarm once per row and process."""
        for item, exc in unreadable:
            if item.id not in self._unreadable:
                self._unreadable.add(item.id)
                _log.error("outbox.unreadable_blob", extra={
                    "code": "STORE-BLOB-UNREADABLE", "node": self.node.node_id,
                    "outbox_id": item.id, "sha256": item.sha256,
                    "document_id": item.document_id, "error": str(exc)})

    async def sweep_forever(self) -> None:
        """Renew this process's lease, and re-send what is owed and not in hand: this
        process's rows still pending ``sweep_after`` seconds after their commit (a failed
        hand-over), and the rows of a process that is gone (see the module's docstring).
        A process whose sweep cannot run — store down, hung — lets its lease lapse, and
        its peers send what it owes."""
        renewed = -float("inf")
        while True:
            try:
                if time.monotonic() - renewed > self.node.lease / 4:
                    await asyncio.to_thread(self.node.store.renew_lease, self.node.node_id)
                    renewed = time.monotonic()
                await self.dispatch_once(older_than=self.node.sweep_after)
                await asyncio.sleep(min(1.0, self.node.sweep_after, self.node.lease / 4))
            except Exception as exc:
                _log.warning("sweep.failed", extra={"code": "RELAY-SWEEP-RETRY",
                                                    "node": self.node.node_id,
                                                    "error": repr(exc)[:300]})
                await asyncio.sleep(0.5)


def _regrouped(blocks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """``blocks`` as blocks of ``size`` bytes (the last one shorter): a block that is
    already that size passes as it is; smaller ones are joined once."""
    parts: list[bytes] = []
    have = 0
    for block in blocks:
        while block:
            take = min(size - have, len(block))
            parts.append(block[:take])  # (the block itself when it is taken whole)
            block = block[take:]
            have += take
            if have == size:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
                parts, have = [], 0
    if parts:
        yield b"".join(parts)
