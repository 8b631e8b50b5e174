"""A content-addressed blob log on disk: the exact bytes of every package, by SHA-256.

Blobs are appended to **segment files** (``<root>/segments/<name>.seg``), one writer per
segment: each process that opens the store starts a segment of its own, so several
worker processes of one node never write to the same file. A batch of blobs costs one
``write`` and one ``fdatasync``; where a blob lives is a :class:`BlobRef` (segment,
offset, size) that the store keeps in the package's log row, next to its SHA-256.

Why segments and not one file per blob: creating, renaming and syncing one file per
package cost ~0.25 ms of CPU each (ext4), more than verifying the package's signature.
An append-only log is also what a message log is.

Crash safety: bytes are durable before the store commits the row that points at them.
A crash between the two leaves unreferenced bytes at a segment's tail — harmless; the
re-delivered package is appended again. Every read checks the SHA-256.

Stores written by the first schema revision kept one file per blob
(``<root>/<aa>/<sha256>``); :meth:`BlobStore.get` still reads those (``BlobRef`` with no
segment). Large packages (a spooled upload read by streaming) are kept that way too
(:meth:`BlobStore.put_file`: the spool file renamed, never copied through memory) and
read in chunks (:meth:`BlobStore.chunks`).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: A segment is closed and a new one started past this size.
SEGMENT_BYTES = 256 * 1024 * 1024
#: Large blobs are read and copied in chunks of this many bytes.
_FILE_CHUNK = 1 << 20


class BlobError(OSError):
    """A blob is missing or its bytes do not match its SHA-256."""


@dataclass(frozen=True)
class BlobRef:
    """Where a blob lives: its digest, segment (None: the legacy one-file layout),
    offset and size."""

    sha256: str
    segment: str | None
    offset: int
    size: int


_SERIAL = itertools.count()
_log = logging.getLogger("docaxis.store")


class BlobStore:
    """The blob log of one node.

    Parameters
    ----------
    root:
        The folder (created if missing).
    segment_bytes:
        Size past which the current segment is closed and a new one begun.

    Examples
    --------
    >>> blobs = BlobStore("var/hanoi/blobs")  # doctest: +SKIP
    >>> [ref] = blobs.put_many([b"<edXML ...>"])  # doctest: +SKIP
    >>> blobs.get(ref)  # doctest: +SKIP
    b'<edXML ...>'
    """

    def __init__(self, root: Path | str, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.root = Path(root)
        self.segments = self.root / "segments"
        self.segments.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()
        self._name = ""
        self._size = 0
        self._readers: dict[str, int] = {}

    # -- writing -----------------------------------------------------------------------
    def put(self, data: bytes) -> BlobRef:
        """Append one blob durably; return where it is."""
        return self.put_many([data])[0]

    def put_many(self, blobs: Sequence[bytes],
                 digests: Sequence[str] | None = None) -> list[BlobRef]:
        """Append blobs with one write and one ``fdatasync``; return where each is.

        ``digests``, when the caller already has them, are the blobs' SHA-256 (hex).

        Raises
        ------
        OSError
            If the disk refuses the write or the flush (nothing is referenced then).
        """
        if not blobs:
            return []
        with self._lock:
            if self._fd is None or self._size >= self.segment_bytes or self._pid != os.getpid():
                self._start_segment()  # (a forked child never appends to its parent's)
            assert self._fd is not None
            refs, offset = [], self._size
            for index, data in enumerate(blobs):
                digest = digests[index] if digests else hashlib.sha256(data).hexdigest()
                refs.append(BlobRef(digest, self._name, offset, len(data)))
                offset += len(data)
            payload = b"".join(blobs)
            written = 0
            try:
                while written < len(payload):  # os.write may write less than asked
                    written += os.write(self._fd, payload[written:])
                os.fdatasync(self._fd)
            except OSError:
                # a disk full (or failing) mid-batch may leave part of the payload in the
                # segment: cut it back and never append to this segment again, so that no
                # later blob is recorded at an offset the file does not match
                self._abandon_segment()
                raise
            self._size = offset
        return refs

    def put_file(self, path: Path | str, sha256: str, size: int) -> BlobRef:
        """Keep a large package that is already in a file (a spooled upload): the file is
        moved (renamed; copied in chunks across file systems) to a file of its own,
        ``<root>/<aa>/<sha256>``, and made durable, name included, before this returns —
        never a second copy in memory.

        Raises
        ------
        OSError
            If the disk refuses (nothing is referenced then).
        """
        target = self.legacy_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = Path(path)
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
            try:
                with source.open("rb") as reader, partial.open("wb") as writer:
                    while block := reader.read(_FILE_CHUNK):
                        writer.write(block)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        descriptor = os.open(target, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        for folder in (target.parent, self.root):
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        return BlobRef(sha256, None, 0, size)

    def chunks(self, ref: BlobRef, start: int = 0, end: int | None = None, *,
               block: int = _FILE_CHUNK) -> Iterator[bytes]:
        """The blob's bytes ``start:end`` in chunks, read as they are sent (never whole).
        Read from the start to the end, its SHA-256 is checked at the end.

        Raises
        ------
        BlobError
            If it is missing or (read whole) its bytes do not match its SHA-256.
        """
        end = ref.size if end is None else min(end, ref.size)
        whole = start == 0 and end == ref.size
        digest = hashlib.sha256() if whole else None
        try:
            if ref.segment is None:
                descriptor = os.open(self.legacy_path(ref.sha256), os.O_RDONLY)
                base = 0
            else:
                descriptor, base = self._reader(ref.segment), ref.offset
        except FileNotFoundError:
            raise BlobError(f"blob {ref.sha256} is missing on disk") from None
        try:
            position = start
            while position < end:
                data = os.pread(descriptor, min(block, end - position), base + position)
                if not data:
                    raise BlobError(f"blob {ref.sha256} is shorter on disk than recorded")
                if digest is not None:
                    digest.update(data)
                position += len(data)
                yield data
        finally:
            if ref.segment is None:
                os.close(descriptor)
        if digest is not None and digest.hexdigest() != ref.sha256:
            raise BlobError(f"blob {ref.sha256} is corrupt on disk")

    def _abandon_segment(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, self._size)
        except OSError as exc:  # the tail stays, unreferenced: harmless, logged
            _log.warning("blob.truncate_failed", extra={"code": "STORE-BLOB-TAIL",
                                                         "segment": self._name,
                                                         "error": str(exc)})
        finally:
            os.close(fd)

    def _start_segment(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._pid = os.getpid()
        self._name = f"{time.time_ns():020d}-{os.getpid()}-{next(_SERIAL)}"
        path = self.segments / f"{self._name}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self._size = 0
        directory = os.open(self.segments, os.O_RDONLY)  # the new name is durable too
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    # -- reading -----------------------------------------------------------------------
    def get(self, ref: BlobRef) -> bytes:
        """The blob's bytes, checked against its SHA-256.

        Raises
        ------
        BlobError
            If it is missing or corrupt.
        """
        try:
            if ref.segment is None:
                data = self.legacy_path(ref.sha256).read_bytes()
            else:
                data = os.pread(self._reader(ref.segment), ref.size, ref.offset)
        except FileNotFoundError:
            raise BlobError(f"blob {ref.sha256} is missing on disk") from None
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise BlobError(f"blob {ref.sha256} is corrupt on disk")
        return data

    def _reader(self, segment: str) -> int:
        if not segment.replace("-", "").isdigit():
            raise BlobError(f"not a segment name: {segment!r}")
        with self._lock:
            fd = self._readers.get(segment)
            if fd is None:
                fd = self._readers[segment] = os.open(self.segment_path(segment), os.O_RDONLY)
            return fd

    def segment_path(self, segment: str) -> Path:
        return self.segments / f"{segment}.seg"

    def legacy_path(self, sha256: str) -> Path:
        """Where the first schema revision kept a blob (one file each)."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def close(self) -> None:
        with self._lock:
            for fd in [*self._readers.values(), *([self._fd] if self._fd is not None else [])]:
                os.close(fd)
            self._readers.clear()
            self._fd = None
