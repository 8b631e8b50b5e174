"""Reading a request body within the node's package size limit (REST API and VXP)."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    """A request body over the node's package size limit."""


class BadLength(Exception):
    """A ``Content-Length`` that is not a non-negative integer."""


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
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 20:
            raise BadLength(f"Content-Length {declared[:30]!r} is not a byte count")
        if int(declared) > limit:
            raise BodyTooLarge(f"the body is {int(declared)} bytes; this node accepts packages "
                               f"of at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over {limit} bytes, the most this node accepts")
        chunks.append(chunk)
    return b"".join(chunks)
