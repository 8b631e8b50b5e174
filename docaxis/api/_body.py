"""Reading a request body within the node's package size limit (REST API and VXP); a
large one is spooled to a file as it arrives."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from starlette.requests import Request


class BodyTooLarge(Exception):
    """A request body over the node's package size limit."""


class BadLength(Exception):
    """A ``Content-Length`` that is not a non-negative integer."""


def _declared(request: Request, limit: int) -> None:
    """A declared ``Content-Length`` over the limit is refused before a byte is read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 20:
            raise BadLength(f"Content-Length {declared[:30]!r} is not a byte count")
        if int(declared) > limit:
            raise BodyTooLarge(f"the body is {int(declared)} bytes; this node accepts packages "
                               f"of at most {limit} bytes ([limits] max_package_bytes in its "
                               "node.toml)")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, never more than ``limit`` bytes in memory.

    A declared ``Content-Length`` over the limit is refused before a byte is read; without
    one (chunked transfer) the body is refused as soon as it grows past the limit.

    Raises
    ------
    BodyTooLarge
        Declared or streamed size over ``limit``.
    BadLength
        ``Content-Length`` present but not a non-negative integer.
    """
    body = await receive_body(request, limit, None)
    assert isinstance(body, bytes)  # (no spool: never a file)
    return body


#: a body larger than this is spooled to a file as it arrives, never held in memory
SPOOL_ABOVE = 8 * 1024 * 1024


async def receive_body(request: Request, limit: int, spool: Path | None,
                       above: int = SPOOL_ABOVE) -> bytes | Path:
    """The request body: its bytes, or — past ``above`` bytes, with a ``spool`` folder —
    the file it was written to as it arrived (flushed to disk; the caller removes it).

    Raises
    ------
    BodyTooLarge, BadLength
        As :func:`read_body` (a partly written spool file is removed).
    OSError
        The spool cannot be written (disk full): nothing is kept.
    """
    _declared(request, limit)
    chunks: list[bytes] = []
    size = 0
    out = None
    path: Path | None = None
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the body is over {limit} bytes, the most this node "
                                   "accepts ([limits] max_package_bytes in its node.toml)")
            if out is not None:
                out.write(chunk)
                continue
            chunks.append(chunk)
            if spool is not None and size > above:
                spool.mkdir(parents=True, exist_ok=True)
                path = spool / f"{uuid.uuid4().hex}.upload"
                out = path.open("wb")
                out.writelines(chunks)
                chunks.clear()
        if out is None:
            return b"".join(chunks)
        out.flush()
        await asyncio.to_thread(os.fsync, out.fileno())
        out.close()
        assert path is not None
        return path
    except BaseException:
        if out is not None:
            out.close()
        if path is not None:
            path.unlink(missing_ok=True)
        raise
