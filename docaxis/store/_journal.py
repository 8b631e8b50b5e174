"""The submission journal: checked API submissions made durable before their transaction.

A package posted to the API is answered ``202`` once it is durable on the node. The
store's transaction (log row, outbox, inbox, events) is what makes it so, but a
transaction per few requests is what kept the API slower than a hop (issue #11, item 6):
with 8 requests in flight a process, every request waited for its batch's turn at the
store's single writer. The journal lets the answer wait only for an append and one
``fdatasync`` of this process's own file; the transaction follows, grouping as many
journaled submissions as have come (as the hop groups a backlog).

Nothing is lost by it: a journal segment is deleted only once every submission in it is
committed, and a segment that its process no longer holds — the process died between the
answer and the commit — is committed by the next process of the node that opens its
journal (:meth:`SubmissionJournal.recover`; deduplicated by business key like any
repeat). A record is framed with its length and SHA-256, so a torn last record (the crash
came mid-append: its sender never heard ``202``) is told apart from a whole one and
ignored. Each process appends to its own segments and holds an exclusive ``flock`` on
them, so that no other process recovers a segment while it is being written.

The journal lives beside a SQLite store, on the same disk: a node whose store is a
PostgreSQL database shared by several instances commits before it answers (a journal on
one host's disk would hold packages its peers cannot reach).

Records are pickled :class:`~docaxis.store.Accept` values: written and read only by this
node's own processes in its data folder (whoever can write there can change the store
itself).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import pickle
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from docaxis.store._store import Accept

_log = logging.getLogger("docaxis.store.journal")

#: a record: magic, payload length, the payload's SHA-256, the payload
_MAGIC = b"DXJ1"
_HEAD = struct.Struct(">4sI32s")
#: a segment is closed and a new one started past this size (deleted once all committed)
SEGMENT_BYTES = 8 * 1024 * 1024


@dataclass
class JournalSegment:
    """One file of a process's journal, open for appending (see :class:`SubmissionJournal`)."""

    path: Path
    handle: BinaryIO
    size: int = 0
    #: submissions appended and not yet committed
    pending: int = 0
    #: a failed append could not be cut off: append no more here
    torn: bool = False


@dataclass
class JournalTicket:
    """Which segment holds a batch of journaled submissions (for :meth:`committed`)."""

    segment: Path
    count: int


@dataclass
class SubmissionJournal:
    """One process's journal of checked submissions (see the module's docstring), used
    from one thread (the node's event loop: an append is one write and one ``fdatasync``).

    Parameters
    ----------
    folder:
        The node's journal folder (``<data>/journal``), shared by its processes.
    owner:
        This process's part of its segments' names (the pid and a random token: unique
        among the node's processes, past and present).

    Raises
    ------
    OSError
        From :meth:`append` when the disk refuses the write or the ``fdatasync`` (full,
        read-only): nothing was answered, the caller answers 503.

    Examples
    --------
    >>> journal = SubmissionJournal(data / "journal", "0-1234")  # doctest: +SKIP
    >>> ticket = journal.append([accept])  # durable now: answer 202  # doctest: +SKIP
    >>> store.accept_many([accept]); journal.committed(ticket)  # doctest: +SKIP
    """

    folder: Path
    owner: str
    _segments: dict[Path, JournalSegment] = field(default_factory=dict, init=False, repr=False)
    _current: JournalSegment | None = field(default=None, init=False, repr=False)
    _sequence: int = field(default=0, init=False, repr=False)

    @property
    def pending(self) -> int:
        """Journaled submissions of this process not yet committed."""
        return sum(segment.pending for segment in self._segments.values())

    def append(self, accepts: Sequence[Accept]) -> JournalTicket:
        """Append checked submissions and ``fdatasync`` them: durable on return.

        A failure cuts what it wrote off again, so that the segment stays a sequence of
        whole records (if even that fails, the torn tail is what recovery ignores — its
        senders never heard 202 — and the next append starts a new segment).

        Raises
        ------
        OSError
            The disk refused the write or the ``fdatasync``: nothing is durable.
        """
        segment = self._writable()
        records = b"".join(_record(pickle.dumps(accept, protocol=pickle.HIGHEST_PROTOCOL))
                           for accept in accepts)
        try:
            segment.handle.write(records)
            segment.handle.flush()
            os.fdatasync(segment.handle.fileno())
        except OSError:
            try:
                segment.handle.truncate(segment.size)
                segment.handle.seek(segment.size)
            except OSError:
                segment.torn = True
            raise
        segment.size += len(records)
        segment.pending += len(accepts)
        return JournalTicket(segment.path, len(accepts))

    def committed(self, ticket: JournalTicket, count: int | None = None) -> None:
        """``count`` (all, by default) submissions of ``ticket`` are in the store: a
        segment closed and wholly committed is deleted."""
        segment = self._segments.get(ticket.segment)
        if segment is None:
            return
        segment.pending -= ticket.count if count is None else count
        if segment.pending <= 0 and segment is not self._current:
            self._drop(segment)

    def close(self) -> None:
        """Close this process's segments; those wholly committed are deleted, the rest
        stay for recovery."""
        for segment in list(self._segments.values()):
            if segment.pending <= 0:
                self._drop(segment)
            else:
                segment.handle.close()
                self._segments.pop(segment.path, None)
        self._current = None

    def _writable(self) -> JournalSegment:
        current = self._current
        if current is not None and current.size < SEGMENT_BYTES and not current.torn:
            return current
        if current is not None:  # full: a new segment; this one goes once committed
            self._current = None
            if current.pending <= 0:
                self._drop(current)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        path = self.folder / f"{self.owner}-{self._sequence:06d}.journal"
        # created, never reopened: an orphan of an earlier process is never appended to
        handle = open(path, "xb")  # noqa: SIM115 - held open while it is appended to
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # a new file: nobody else holds it
        _fsync_folder(self.folder)  # the new name is durable before a record is answered
        segment = self._current = JournalSegment(path, handle)
        self._segments[path] = segment
        return segment

    def _drop(self, segment: JournalSegment) -> None:
        segment.path.unlink(missing_ok=True)
        segment.handle.close()
        self._segments.pop(segment.path, None)


@dataclass
class OrphanSegment:
    """A segment no live process holds: its whole records, and the lock that keeps any
    other process from recovering it at the same time (released by :meth:`done`)."""

    path: Path
    accepts: list[Accept]
    #: a record that could not be read back (not a torn tail): left in the file, reported
    unreadable: int
    _handle: BinaryIO

    def done(self) -> None:
        """Every record is committed: delete the segment."""
        self.path.unlink(missing_ok=True)
        self._handle.close()

    def keep(self) -> None:
        """Leave the segment for a later recovery (the store is down)."""
        self._handle.close()

    def set_aside(self) -> Path:
        """Keep the segment for an operator, out of recovery's way (some of its records
        could not be read, or the store refuses one): renamed ``*.journal.kept``."""
        kept = self.path.with_name(self.path.name + ".kept")
        self.path.rename(kept)
        self._handle.close()
        return kept


def orphan_segments(folder: Path) -> Iterator[OrphanSegment]:
    """The journal segments in ``folder`` that no live process holds (each locked while
    it is yielded: commit its records, then :meth:`OrphanSegment.done`)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.journal")):
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by done() or keep()
        except FileNotFoundError:  # its process committed it meanwhile
            continue
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live process appends to it
            handle.close()
            continue
        if not path.exists():  # deleted between the open and the lock
            handle.close()
            continue
        accepts, unreadable = _read_records(handle, path)
        yield OrphanSegment(path, accepts, unreadable, handle)


def _read_records(handle: BinaryIO, path: Path) -> tuple[list[Accept], int]:
    accepts: list[Accept] = []
    unreadable = 0
    while True:
        head = handle.read(_HEAD.size)
        if len(head) < _HEAD.size:
            break
        magic, length, digest = _HEAD.unpack(head)
        payload = handle.read(length) if magic == _MAGIC else b""
        if magic != _MAGIC or len(payload) < length or hashlib.sha256(payload).digest() != digest:
            # a torn tail: the append that wrote it failed or was cut short by a crash,
            # and its sender never heard 202 (every whole record before it stands)
            _log.warning("journal.torn_tail", extra={
                "code": "STORE-JOURNAL-TORN", "path": str(path), "records": len(accepts)})
            break
        try:
            accept = pickle.loads(payload)
        except Exception as exc:  # whole on disk, but not an Accept this code can read
            unreadable += 1
            _log.error("journal.unreadable_record", extra={
                "code": "STORE-JOURNAL-UNREADABLE", "path": str(path), "error": repr(exc)[:300]})
            continue
        if not isinstance(accept, Accept):
            unreadable += 1
            _log.error("journal.unreadable_record", extra={
                "code": "STORE-JOURNAL-UNREADABLE", "path": str(path),
                "error": f"a {type(accept).__name__}, not an Accept"})
            continue
        accepts.append(accept)
    return accepts, unreadable


def _record(payload: bytes) -> bytes:
    return _HEAD.pack(_MAGIC, len(payload), hashlib.sha256(payload).digest()) + payload


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
