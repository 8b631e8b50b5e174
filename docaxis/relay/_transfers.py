"""Large packages across a hop, in chunks (chuyển gói tin lớn theo từng phần).

A package larger than :data:`TRANSFER_ABOVE` never travels as one AMQP message (RabbitMQ
refuses messages over its ``max_message_size``, 16 MiB by default on 4.x, and a consumer
holds every delivered message in memory). It crosses a hop as :data:`TRANSFER_CHUNK`-byte
chunks, each an AMQP message with a publisher confirm, to the next node's **transfer
lane**: a queue of its own (:func:`transfer_lane`), consumed a few messages at a time
(:data:`LANE_PREFETCH`), so that a large transfer holds at most a few chunks in memory and
never stands in front of the small packages of the inbound queue.

The receiving node writes each chunk at its offset into ``<spool>/<sha256>.transfer``
and records its number in ``<sha256>.chunks``, both flushed to disk, before the chunk is
acknowledged. The chunk that completes the set is held (unacknowledged) while the
package is verified — its SHA-256 against the transfer's name, then the node's whole
check, by streaming — and committed; the spool file becomes the stored package (moved,
not copied). So:

- a crash of the sender re-sends the whole transfer (the outbox row is still pending):
  chunks are written again at their offsets, nothing twice;
- a crash of the receiver loses no acknowledged chunk (on disk) and re-delivers the
  others; the completing chunk comes again and completes it again;
- a chunk of a package already logged is acknowledged and dropped (a repeat);
- the chunks of several transfers, and of several processes of one node (one spool,
  an ``flock`` deciding which process completes a transfer), interleave freely;
- what an abandoned transfer left (its sender gone for good) is removed after
  :data:`ABANDONED_AFTER` seconds (``RELAY-TRANSFER-ABANDONED``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: a package larger than this crosses a hop in chunks
TRANSFER_ABOVE = 4 * 1024 * 1024
#: the size of one chunk (one AMQP message)
TRANSFER_CHUNK = 4 * 1024 * 1024
#: chunks a process of a node holds unacknowledged on its transfer lane
LANE_PREFETCH = 4
#: a transfer untouched this long (seconds) is abandoned: its files are removed
ABANDONED_AFTER = 3600.0

#: headers of a chunk (besides the package's own: origin, from-node, trace)
TRANSFER = "x-docaxis-transfer"
CHUNK_INDEX = "x-docaxis-chunk"
CHUNK_COUNT = "x-docaxis-chunks"
TRANSFER_SIZE = "x-docaxis-size"


def transfer_lane(node: str) -> str:
    """The pseudo-node whose queues carry ``node``'s large transfers (declared, consumed
    and parked like a node's own).

    Examples
    --------
    >>> transfer_lane("hanoi")
    'hanoi:transfer'
    """
    return f"{node}:transfer"


def chunk_count(size: int) -> int:
    """How many chunks a package of ``size`` bytes crosses a hop in (at least one)."""
    return max(1, -(-size // TRANSFER_CHUNK))


class TransferError(Exception):
    """The chunks of a transfer do not make the package they name (size or SHA-256)."""


@dataclass(frozen=True)
class Chunk:
    """One chunk as received, read from its headers.

    Raises
    ------
    ValueError
        From :meth:`read` when a header is missing or out of range.
    """

    sha256: str
    index: int
    count: int
    size: int

    @classmethod
    def read(cls, headers: Mapping[str, str]) -> Chunk:
        sha256 = headers.get(TRANSFER, "")
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"{TRANSFER} is not a SHA-256: {sha256[:80]!r}")
        index, count, size = (int(headers.get(name, "")) for name in
                              (CHUNK_INDEX, CHUNK_COUNT, TRANSFER_SIZE))
        if size < 0 or count != chunk_count(size) or not 0 <= index < count:
            raise ValueError(f"chunk {index} of {count} does not fit a package of {size} "
                             "bytes")
        return cls(sha256, index, count, size)


class Reassembly:
    """The spool files of the transfers coming to one node (its processes share them).

    Parameters
    ----------
    spool:
        The node's spool folder.
    """

    def __init__(self, spool: Path) -> None:
        self.spool = spool

    def paths(self, sha256: str) -> tuple[Path, Path]:
        return self.spool / f"{sha256}.transfer", self.spool / f"{sha256}.chunks"

    def keep(self, chunk: Chunk, body: bytes) -> bool:
        """(In a thread.) Write ``body`` at its offset and record it, both durable;
        return whether every chunk of the transfer is now here.

        Raises
        ------
        ValueError
            The body's size does not fit its place.
        OSError
            The disk refuses (the chunk is not acknowledged; it comes again).
        """
        expected = min(TRANSFER_CHUNK, chunk.size - chunk.index * TRANSFER_CHUNK)
        if len(body) != expected:
            raise ValueError(f"chunk {chunk.index} of {chunk.sha256[:12]}… has {len(body)} "
                             f"bytes, not {expected}")
        self.spool.mkdir(parents=True, exist_ok=True)
        data, record = self.paths(chunk.sha256)
        descriptor = os.open(data, os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            written = 0
            while written < len(body):
                written += os.pwrite(descriptor, body[written:],
                                     chunk.index * TRANSFER_CHUNK + written)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        with record.open("ab") as log:  # O_APPEND: four bytes at a time, never torn
            log.write(chunk.index.to_bytes(4, "little"))
            log.flush()
            os.fsync(log.fileno())
        return len(self.received(chunk.sha256)) >= chunk.count

    def received(self, sha256: str) -> set[int]:
        raw = self.paths(sha256)[1].read_bytes()
        return {int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw) - 3, 4)}

    @contextlib.contextmanager
    def completing(self, sha256: str) -> Iterator[bool]:
        """Whether this process completes the transfer (another may be at it: an
        exclusive ``flock`` on its record, released if this process dies)."""
        record = self.paths(sha256)[1]
        try:
            descriptor = os.open(record, os.O_RDONLY)
        except FileNotFoundError:  # completed and removed by another process meanwhile
            yield False
            return
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
            yield True
        finally:
            os.close(descriptor)

    def check(self, chunk: Chunk) -> Path:
        """(In a thread.) The assembled package's file, its size checked (its SHA-256 is
        checked by the streaming read that checks the package: one pass over it).

        Raises
        ------
        TransferError
            The chunks do not make as many bytes as the transfer names.
        """
        data = self.paths(chunk.sha256)[0]
        size = data.stat().st_size
        if size != chunk.size:
            raise TransferError(f"the chunks of {chunk.sha256[:12]}… make {size} bytes, not "
                                f"{chunk.size}")
        return data

    def forget(self, sha256: str) -> None:
        """Remove a transfer's files (its package committed, or the transfer refused)."""
        for path in self.paths(sha256):
            path.unlink(missing_ok=True)

    def abandoned(self, older_than: float = ABANDONED_AFTER) -> list[str]:
        """(In a thread.) Remove the transfers untouched for ``older_than`` seconds;
        return their SHA-256s."""
        if not self.spool.is_dir():
            return []
        cutoff = time.time() - older_than
        gone = []
        for record in self.spool.glob("*.chunks"):
            sha256 = record.stem
            data = self.paths(sha256)[0]
            try:
                touched = max(record.stat().st_mtime,
                              data.stat().st_mtime if data.exists() else 0.0)
            except FileNotFoundError:
                continue
            if touched < cutoff:
                self.forget(sha256)
                gone.append(sha256)
        for data in self.spool.glob("*.transfer"):  # a first chunk cut short by a crash
            if not self.paths(data.stem)[1].exists():
                with contextlib.suppress(FileNotFoundError):
                    if data.stat().st_mtime < cutoff:
                        data.unlink()
                        gone.append(data.stem)
        return gone
