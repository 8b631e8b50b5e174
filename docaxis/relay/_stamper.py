"""The log stamper (đóng dấu thời gian nhật ký): RFC 3161 timestamps of the message log's
chain heads, batched at an interval as X-Road's message log does.

Every ``interval`` seconds the stamper asks the store for the head of each chain that grew
since the last stamp (:meth:`Store.unstamped_heads`), sends the SHA-256 of their
manifest to the node's timestamping authority, checks the answer (granted, signed by a TSA
the node trusts, over that digest and nonce) and keeps it (:meth:`Store.add_stamp`). One
stamp covers every record before each head: a record's hash links it to its head.

A TSA that does not answer never stops relaying: records wait for the next stamp that
succeeds, which covers them all. The gap is visible in ``docaxis_log_unstamped_seconds``
and in ``docaxis audit verify``; each change of state (failing with a code, stamping
again) is logged once, not once a round.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx

from docaxis.dsig import TimestampError, TimestampVerifier, timestamp_request
from docaxis.store import UNAVAILABLE, Store, manifest

_log = logging.getLogger("docaxis.relay")

#: seconds a TSA has to answer one request
TSA_TIMEOUT = 10.0


@dataclass
class LogStamper:
    """Stamp a node's log at ``tsa_url`` every ``interval`` seconds.

    Parameters
    ----------
    node_id:
        The node (for the log's events).
    store:
        The node's store: the heads to stamp and where stamps are kept.
    tsa_url:
        The TSA's HTTP endpoint (RFC 3161 over HTTP: ``application/timestamp-query``).
    verifier:
        The TSA anchors: an answer that does not verify against them is not kept.
    interval:
        Seconds between two stamps (X-Road's default is 60).

    Examples
    --------
    >>> stamper = LogStamper("central", store, "http://tsa.example/",  # doctest: +SKIP
    ...                      verifier, 60)
    >>> await stamper.stamp_once()  # doctest: +SKIP
    3
    """

    node_id: str
    store: Store
    tsa_url: str
    verifier: TimestampVerifier
    interval: float = 60.0
    #: the code of the failure in progress (None: the last round stamped or had nothing)
    failing: str | None = field(default=None, init=False)
    failures: int = field(default=0, init=False)

    async def stamp_forever(self) -> None:
        """Stamp every :attr:`interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.stamp_once()

    async def stamp_once(self) -> int:
        """Stamp the chains that grew since their last stamp; how many heads were stamped
        (0 when nothing grew or the stamp failed — logged, retried next round)."""
        try:
            heads = await asyncio.to_thread(self.store.unstamped_heads)
        except UNAVAILABLE as exc:
            self._failed("AUDIT-STAMP-STORE", f"the store is unavailable: {exc}")
            return 0
        if not heads:
            return 0
        request = timestamp_request(manifest(heads))
        try:
            async with httpx.AsyncClient(timeout=TSA_TIMEOUT) as client:
                answer = await client.post(self.tsa_url, content=request.der, headers={
                    "Content-Type": "application/timestamp-query"})
            if answer.status_code != 200:
                raise TimestampError(f"the TSA answered HTTP {answer.status_code}",
                                     code="TSA-UNREACHABLE")
            stamped_at = self.verifier.verify(answer.content, request.digest,
                                              nonce=request.nonce)
        except httpx.HTTPError as exc:
            self._failed("TSA-UNREACHABLE", f"{type(exc).__name__}: {exc}")
            return 0
        except TimestampError as exc:
            self._failed(exc.code, exc.message)
            return 0
        try:
            await asyncio.to_thread(self.store.add_stamp, heads, answer.content, stamped_at,
                                    self.tsa_url)
        except UNAVAILABLE as exc:  # the next round stamps these heads (or later ones)
            self._failed("AUDIT-STAMP-STORE", f"the store is unavailable: {exc}")
            return 0
        if self.failing is not None:
            _log.warning("audit.stamping_restored", extra={
                "code": "AUDIT-STAMP-RESTORED", "node": self.node_id, "tsa": self.tsa_url,
                "after": self.failing, "heads": len(heads)})
            self.failing = None
        _log.debug("audit.stamped", extra={"node": self.node_id, "heads": len(heads),
                                           "stamped_at": stamped_at.isoformat()})
        return len(heads)

    def _failed(self, code: str, message: str) -> None:
        self.failures += 1
        if self.failing != code:  # once per change of state, not once a round
            _log.error("audit.stamp_failed", extra={
                "code": code, "node": self.node_id, "tsa": self.tsa_url, "reason": message,
                "retry_in": self.interval})
        self.failing = code
