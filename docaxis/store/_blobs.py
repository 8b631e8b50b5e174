"""A content-addressed blob store on disk: the exact bytes of every package, by SHA-256."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def _load_syncfs() -> object | None:
    """``syncfs(2)`` (Linux): make everything written to one filesystem durable at once."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


class BlobStore:
    """``<root>/<aa>/<sha256>``; writes are atomic (temporary file, fsync, rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent); return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def put_many(self, blobs: Sequence[bytes]) -> list[str]:
        """Store several blobs durably with one flush of the filesystem per batch.

        Each new blob is written to a temporary file; one ``syncfs`` makes them all
        durable; then they are renamed into place and a second ``syncfs`` makes the names
        durable. Where ``syncfs`` is unavailable each file is fsync'd (as :meth:`put`).
        """
        if _SYNCFS is None:
            return [self.put(data) for data in blobs]
        digests: list[str] = []
        pending: dict[Path, str] = {}
        try:
            for data in blobs:
                digest = hashlib.sha256(data).hexdigest()
                digests.append(digest)
                target = self.path(digest)
                if target in pending or target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                pending[target] = temporary
            if pending:
                self._syncfs()
                for target, temporary in pending.items():
                    os.replace(temporary, target)
                pending.clear()
                self._syncfs()
        finally:
            for temporary in pending.values():
                Path(temporary).unlink(missing_ok=True)
        return digests

    def _syncfs(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:  # type: ignore[operator]
                error = ctypes.get_errno()
                raise OSError(error, f"syncfs failed on {self.root}: {os.strerror(error)}")
        finally:
            os.close(fd)

    def get(self, sha256: str) -> bytes:
        data = self.path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OSError(f"blob {sha256} is corrupt on disk")
        return data

    def __contains__(self, sha256: str) -> bool:
        return self.path(sha256).exists()
