"""The intake journal: API submissions made durable before their transaction (sổ tiếp nhận).

A node answers ``202 Accepted`` once a package is **durable**, not once it is in the
message log: each worker process appends the packages it has checked to a journal of its
own — one SQLite transaction (one ``fdatasync``) for every package checked in one turn
of its event loop — answers them, and logs them in the store's transaction afterwards,
as many together as have been answered meanwhile. The store's transaction is then off
the path of the answer: a process with 8 requests in flight no longer waits, each cycle,
for a transaction of 8 (docs/benchmarks.md, "sixteenth session").

Each journal is one SQLite file, ``<folder>/<token>.db``, written by one process only and
held by it with an exclusive ``flock`` for as long as it lives (taken on a file of
another name, then renamed into place, so that no one ever sees the file unlocked while
its owner lives). A file whose lock can be taken belongs to a process that is gone:
:func:`orphaned_journals` hands it to whoever looks — the next process to start, or a
live one, within seconds — which logs what it holds (a repeat of what was logged
already changes nothing) and removes it.

Only for a store on the same disk: a journal is never less durable than the store it
stands in for (a node on PostgreSQL answers after its transaction, as before).

Examples
--------
>>> journal = IntakeJournal.create("var/hanoi/intake")  # doctest: +SKIP
>>> [row] = journal.append([JournalEntry(key, '{"v": 1, ...}', data)])  # doctest: +SKIP
>>> journal.forget([row])  # logged: removed with the next append  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger("docaxis.store")

_SCHEMA = ("CREATE TABLE IF NOT EXISTS intake (id INTEGER PRIMARY KEY, business_key TEXT "
           "NOT NULL, record TEXT NOT NULL, data BLOB NOT NULL)")


class IntakeUnavailable(OSError):
    """The journal could not be written (the disk is full, an I/O error): nothing was
    appended. One of the store's ``UNAVAILABLE`` errors (an ``OSError``): the API answers
    503 and the caller retries."""


@dataclass(frozen=True)
class JournalEntry:
    """One answered submission: its business key, its plan as text (the caller's
    encoding) and the package's bytes."""

    business_key: str
    record: str
    data: bytes


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")  # each append is durable when it returns
    connection.execute(_SCHEMA)
    return connection


def _remove(path: Path) -> None:
    for suffix in ("-wal", "-shm", ""):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class IntakeJournal:
    """The intake journal of one process (see the module's docstring).

    One thread of control appends (the event loop); :meth:`forget` may be called from
    another (the thread that ran the store's transaction): a lock orders them.
    """

    def __init__(self, path: Path, lock_fd: int, connection: sqlite3.Connection) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._db = connection
        self._guard = threading.Lock()
        self._forgotten: list[int] = []

    @classmethod
    def create(cls, folder: Path | str) -> IntakeJournal:
        """A new journal for this process in ``folder`` (created if missing), locked.

        Raises
        ------
        OSError
            The folder or the file cannot be written.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        starting = folder / f"{name}.starting"
        fd = os.open(starting, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = folder / f"{name}.db"
            os.rename(starting, path)  # locked before anyone can see it under its name
            return cls(path, fd, _connect(path))
        except BaseException:
            os.close(fd)
            starting.unlink(missing_ok=True)
            raise

    def append(self, entries: Sequence[JournalEntry]) -> list[int]:
        """Make ``entries`` durable (one transaction, one ``fdatasync``); the rows
        :meth:`forget` was given are deleted in the same transaction. Returns each entry's
        row id.

        Raises
        ------
        IntakeUnavailable
            Nothing was appended (the disk is full, say): the caller must not answer.
        """
        with self._guard:
            try:
                return self._append(entries)
            except sqlite3.Error as exc:
                raise IntakeUnavailable(f"the intake journal {self.path.name} cannot be "
                                        f"written: {exc}") from exc

    def _append(self, entries: Sequence[JournalEntry]) -> list[int]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._forgotten:
                db.executemany("DELETE FROM intake WHERE id = ?",
                               [(row,) for row in self._forgotten])
            rows = [db.execute("INSERT INTO intake (business_key, record, data) "
                               "VALUES (?, ?, ?)",
                               (entry.business_key, entry.record, entry.data)).lastrowid
                    for entry in entries]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._forgotten = []
        return [int(row) for row in rows if row is not None]

    def forget(self, rows: Iterable[int]) -> None:
        """These rows are in the store now: delete them with the next append (until then a
        crash only makes a later process log them again, which changes nothing)."""
        with self._guard:
            self._forgotten.extend(rows)

    def close(self, *, remove: bool) -> None:
        """Close the journal; ``remove``: delete its file too (only when everything in it
        is in the store). Without ``remove`` the file is left, unlocked, for the next
        process to log."""
        with self._guard:
            self._db.close()
            if remove:
                _remove(self.path)
            os.close(self._lock_fd)


class OrphanedJournal:
    """The journal of a process that is gone, locked by the caller while it is open."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    def entries(self) -> list[tuple[int, JournalEntry]]:
        """Every row still in it, oldest first.

        Raises
        ------
        sqlite3.Error
            The file cannot be read as a journal (left in place by :meth:`release`).
        """
        db = _connect(self.path)
        try:
            return [(row, JournalEntry(key, record, data)) for row, key, record, data in
                    db.execute("SELECT id, business_key, record, data FROM intake ORDER BY id")]
        finally:
            db.close()

    def release(self, *, remove: bool) -> None:
        """Give it up; ``remove``: delete it (everything in it is in the store)."""
        if remove:
            _remove(self.path)
        os.close(self._lock_fd)


def orphaned_journals(folder: Path | str, *, own: Path | None = None,
                      ) -> Iterator[OrphanedJournal]:
    """The journals in ``folder`` whose process is gone (their lock free), each locked for
    the caller, who must :meth:`~OrphanedJournal.release` it. Journals another process
    holds, or is taking at this moment, are passed over, and so is ``own`` (the caller's:
    opening and closing its file would drop the locks SQLite holds on it)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.db")):
        if own is not None and path == own:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # taken and removed by another process meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # its process lives (or another is logging it now)
        if not path.exists():  # logged and removed by another just before we locked it
            os.close(fd)
            continue
        yield OrphanedJournal(path, fd)
    for leftover in folder.glob("*.starting"):  # a process died while creating its journal
        try:
            fd = os.open(leftover, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if leftover.exists() and leftover.stat().st_size == 0:
                leftover.unlink()
                _log.info("intake.leftover_removed", extra={
                    "code": "STORE-INTAKE-LEFTOVER", "file": leftover.name})
        except BlockingIOError:
            pass  # being created right now
        finally:
            os.close(fd)
