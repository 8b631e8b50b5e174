"""The broker abstraction: confirmed hand-over, manual acks, bounded retries, parking.

One abstract :class:`Broker` with a RabbitMQ implementation and an in-process one that
pass the same contract tests (in the manner of Dramatiq). Each node owns:

* an exchange ``docaxis.<node>`` and an inbound queue (:func:`inbound_queue_name`);
* delay queues, one per step of the retry schedule (:func:`delay_queue_name`), whose
  messages flow back to the inbound queue when their delay expires;
* a parking queue (:func:`dead_letter_queue_name`) for messages that failed for good,
  which an operator can list and replay.

The transport never parses XML: messages are opaque bytes plus string headers.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from docaxis._errors import DocaxisError

#: Header carrying the delivery attempt (1 for the first delivery).
ATTEMPT_HEADER = "x-docaxis-attempt"
#: Header carrying why a message was parked.
PARKED_REASON_HEADER = "x-docaxis-parked-reason"


def exchange_name(node: str) -> str:
    """The node's exchange."""
    return f"docaxis.{node}"


def inbound_queue_name(node: str) -> str:
    """The node's inbound queue (packages and receipts handed over to it)."""
    return f"docaxis.{node}.inbound"


def delay_queue_name(queue: str, delay_ms: int) -> str:
    """The queue where messages of ``queue`` wait ``delay_ms`` before a retry.

    Examples
    --------
    >>> delay_queue_name("docaxis.hanoi.inbound", 1000)
    'docaxis.hanoi.inbound.retry.1000'
    """
    return f"{queue}.retry.{delay_ms}"


def legacy_delay_queue_name(queue: str, delay_ms: int) -> str:
    """The classic (single-member) delay queue of nodes declared before retries moved to
    quorum queues: unbound when the node is declared again, so nothing new waits there."""
    return f"{queue}.delay.{delay_ms}"


def dead_letter_queue_name(queue: str) -> str:
    """The parking queue of ``queue``: failed for good, kept for an operator."""
    return f"{queue}.parked"


def replayed(message: Message) -> Message:
    """A parked message as it goes back to its inbound queue: its own headers (what it is,
    where it comes from — ``x-docaxis-kind``, ``x-docaxis-origin`` …) kept; only the
    transport's bookkeeping (attempt count, parking reason) dropped, so it gets a fresh
    retry budget."""
    headers = {k: v for k, v in message.headers.items()
               if k not in (ATTEMPT_HEADER, PARKED_REASON_HEADER)}
    return Message(message.body, headers, message.message_id)


class TransportError(DocaxisError):
    """The broker refused or lost a hand-over (not confirmed, unroutable, disconnected)."""

    default_code = "TRANSPORT-ERROR"


class Retry(Exception):
    """Raise from a handler: a transient failure; the message is retried later."""


class Reject(Exception):
    """Raise from a handler: a permanent failure; the message is parked at once."""


@dataclass(frozen=True)
class Message:
    """An opaque message: bytes plus string headers and a stable id."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def attempt(self) -> int:
        return int(self.headers.get(ATTEMPT_HEADER, "1"))


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded, explicit retries: one delay per retry, then parking.

    ``delays_ms=(1000, 5000, 30000)`` means at most 4 deliveries: the first, then retries
    after 1 s, 5 s and 30 s.
    """

    delays_ms: tuple[int, ...] = (1_000, 5_000, 30_000, 120_000)

    @property
    def max_attempts(self) -> int:
        return len(self.delays_ms) + 1

    def delay_for(self, attempt: int) -> int | None:
        """Delay before the retry that follows delivery ``attempt`` (None: park it)."""
        if attempt < 1 or attempt > len(self.delays_ms):
            return None
        return self.delays_ms[attempt - 1]


Handler = Callable[[Message], Awaitable[None]]


class Consumer(abc.ABC):
    """A running consumer."""

    @abc.abstractmethod
    async def stop(self, timeout: float | None = 30.0) -> None:
        """Stop taking messages; let in-flight handlers finish for ``timeout`` seconds,
        then cancel them (their messages, never acknowledged, are delivered again)."""


class Broker(abc.ABC):
    """What the relay needs from a message broker.

    Delivery contract: a message handed to :meth:`publish` is durable at the broker when
    the call returns (publisher confirm). A consumer's handler runs at most ``prefetch``
    messages at a time; a message is acknowledged only after its handler returns; a
    handler that raises :class:`Retry` (or anything unexpected) gets the message again
    after the policy's delay, :class:`Reject` or an exhausted policy parks it; a consumer
    that dies before acknowledging leaves the message to be delivered again.
    """

    def __init__(self, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy()

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @property
    def connected(self) -> bool:
        """Whether the broker can take messages now (``/ready``, metrics)."""
        return True

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def declare_node(self, node: str) -> None:
        """Create the node's exchange, inbound, delay and parking queues (idempotent)."""

    @abc.abstractmethod
    async def delete_node(self, node: str) -> None:
        """Remove the node's exchange and queues, with any messages in them (demos, tests)."""

    @abc.abstractmethod
    async def publish(self, node: str, message: Message) -> None:
        """Hand a message over to ``node``'s inbound queue and wait for the confirm.

        Raises
        ------
        TransportError
            If the broker does not confirm (unknown node, broker down, …).
        """

    @abc.abstractmethod
    async def consume(self, node: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        """Start consuming ``node``'s inbound queue."""

    @abc.abstractmethod
    async def parked(self, node: str) -> list[Message]:
        """The messages parked for ``node`` (without removing them)."""

    @abc.abstractmethod
    async def replay_parked(self, node: str, message_id: str | None = None) -> int:
        """Move the parked message ``message_id`` (every one when None) back to the
        inbound queue with a fresh retry budget; return how many."""

    @abc.abstractmethod
    async def discard_parked(self, node: str, message_id: str | None = None) -> int:
        """Delete the parked message ``message_id`` (every one when None); return how
        many."""

    async def __aenter__(self) -> Broker:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # shared by implementations ----------------------------------------------------
    def _next(self, message: Message, reason: str) -> tuple[int | None, Message]:
        """After a failed delivery: (delay before retry or None to park, next message)."""
        attempt = message.attempt
        delay = self.retry.delay_for(attempt)
        headers = dict(message.headers)
        if delay is None:
            headers[PARKED_REASON_HEADER] = reason[:500]
        else:
            headers[ATTEMPT_HEADER] = str(attempt + 1)
        return delay, Message(message.body, headers, message.message_id)
