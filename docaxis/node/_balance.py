"""Keeping a node's HTTP connections spread evenly over its worker processes.

Every process of a node listens on the node's port with ``SO_REUSEPORT`` and the kernel
places each new connection by a hash of its addresses: evenly *on average*, but agency
systems keep a few connections open for hours (keep-alive), and a few connections hashed
at random are seldom split evenly — 16 connections over two processes were split 8/8 in
one round of eight, 5/11 in four (measured with ``ss``). The process holding more does
more of the work and answers more slowly while the other waits for requests.

:class:`ConnectionShares` is one slot per process in memory shared by the node's
processes: how many connections each holds. :class:`BalancedConnections` (ASGI) asks the
client of a process holding more than its share to reconnect, by answering
``Connection: close`` once the request is served (RFC 9112 §9.6; every client library
reconnects, the request itself is answered normally); the kernel places the new
connection afresh, so a process over its share sheds connections until none is.

One connection at a time, at most one per :data:`SETTLE` seconds in a process: the
responses of one commit batch go out together and all read the same count (the
connections asked to close are still open while they are answered), so asking every one of
them closed 11 connections of a process holding 13 where 5 were too many, and the kernel
placed their reconnections at random — the processes swapped the excess back and forth
(measured, ingress rounds of 3,000 packages over 16 connections: 2–268 reconnections a
round, 100 in the median round of twelve; one at a time, 1–7 in four, and 8/8 within the
first second).
"""

from __future__ import annotations

import logging
import multiprocessing.sharedctypes
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_log = logging.getLogger("docaxis.relay")

#: Seconds a process waits, after asking a client to reconnect, before it asks another:
#: time for the connection to close and its reconnection to be placed and counted.
SETTLE: Final = 0.1


class ConnectionShares:
    """How many HTTP connections each process of a node holds: one slot per process.

    Parameters
    ----------
    counts
        Shared memory of ``workers`` integers (``multiprocessing``'s ``RawArray("i", n)``
        from the serving process, passed to each worker it starts).
    slot
        This process's slot (the serving process is 0).

    Examples
    --------
    >>> import multiprocessing.sharedctypes as shared
    >>> counts = shared.RawArray("i", 2)
    >>> first, second = ConnectionShares(counts, 0), ConnectionShares(counts, 1)
    >>> second.over_share(5)  # 5 of 5: more than ceil(5 / 2)
    True
    >>> first.over_share(11)  # 16 in all: 8 each
    True
    >>> second.over_share(8), first.over_share(8)  # the three moved
    (False, False)
    """

    def __init__(self, counts: Any, slot: int) -> None:
        if not 0 <= slot < len(counts):
            raise ValueError(f"slot {slot} of {len(counts)}")
        self.counts, self.slot = counts, slot
        self.counts[slot] = 0

    @staticmethod
    def shared(processes: int) -> Any:
        """Shared memory for ``processes`` slots, to pass to every process of the node."""
        return multiprocessing.sharedctypes.RawArray("i", processes)

    def over_share(self, mine: int) -> bool:
        """Record that this process holds ``mine`` connections; whether that is more than
        its share (the node's connections divided by its processes, rounded up).

        The other slots are read as last written, without a lock: a count a moment old
        only delays or repeats one reconnection."""
        self.counts[self.slot] = mine
        total: int = sum(self.counts)
        return mine > -(-total // len(self.counts))


class BalancedConnections:
    """ASGI middleware: a response of a process over its share of the node's connections
    carries ``Connection: close`` (see the module's docstring).

    Parameters
    ----------
    app
        The node's API.
    shares
        This process's slot in the node's shared connection counts.
    connections
        How many connections this process holds now (the server's own count).
    rebalanced
        Called for each connection asked to reconnect (the node's
        ``docaxis_connections_rebalanced_total``).
    settle
        Seconds between two connections asked to reconnect (:data:`SETTLE`).
    clock
        Monotonic seconds (``time.monotonic``; a test's own clock).
    """

    def __init__(self, app: ASGIApp, shares: ConnectionShares,
                 connections: Callable[[], int], rebalanced: Callable[[], None], *,
                 settle: float = SETTLE, clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.shares, self.connections = app, shares, connections
        self.rebalanced, self.settle, self.clock = rebalanced, settle, clock
        #: when this process may ask the next client to reconnect
        self._next_ask = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def balanced(message: Message) -> None:
            if message["type"] == "http.response.start":
                held, now = self.connections(), self.clock()
                if self.shares.over_share(held) and now >= self._next_ask:
                    headers = list(message.get("headers", ()))
                    if not any(name.lower() == b"connection" for name, _ in headers):
                        message = {**message, "headers": [*headers, (b"connection", b"close")]}
                        self._next_ask = now + self.settle
                        self.rebalanced()
                        _log.debug("http.rebalanced", extra={
                            "code": "NODE-REBALANCE", "connections": held,
                            "slot": self.shares.slot})
            await send(message)

        await self.app(scope, receive, balanced)
