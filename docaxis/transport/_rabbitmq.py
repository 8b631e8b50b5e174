"""The RabbitMQ broker (aio-pika): quorum queues, publisher confirms, manual acks.

* the inbound and parking queues are durable **quorum** queues; delay queues are durable
  queues with a TTL that dead-letter back to the node's exchange;
* every publish waits for the broker's confirm and is ``mandatory`` (an unroutable
  message is an error, not a silent drop);
* consumers acknowledge only after the handler returns, with bounded prefetch; a retry or
  a parking is published (and confirmed) *before* the original is acknowledged, so a
  crash in between delivers twice rather than never (receivers deduplicate);
* the connection is robust: aio-pika reconnects and restores channels and consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from docaxis.transport._broker import (
    PARKED_REASON_HEADER,
    Broker,
    Consumer,
    Handler,
    Message,
    Reject,
    RetryPolicy,
    TransportError,
    dead_letter_queue_name,
    delay_queue_name,
    exchange_name,
    inbound_queue_name,
)

_INBOUND, _PARKED = "inbound", "parked"


def _delay_key(delay_ms: int) -> str:
    return f"delay.{delay_ms}"


class RabbitMQBroker(Broker):
    """A node's view of RabbitMQ.

    Parameters
    ----------
    url:
        ``amqp://user:password@host:5672/vhost`` — one vhost per node in production.
    retry:
        The retry schedule (:class:`RetryPolicy`).

    Examples
    --------
    >>> async with RabbitMQBroker("amqp://guest:guest@127.0.0.1/") as broker:  # doctest: +SKIP
    ...     await broker.declare_node("hanoi")
    ...     await broker.publish("hanoi", Message(b"<edXML …>"))
    """

    def __init__(self, url: str, retry: RetryPolicy | None = None) -> None:
        super().__init__(retry)
        self.url = url
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._known_exchanges: set[str] = set()

    async def connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(self.url, reconnect_interval=1)
            self._channel = await self._connection.channel(publisher_confirms=True)
        except Exception as exc:  # aio-pika raises many types for "cannot connect"
            raise TransportError(f"cannot connect to RabbitMQ at {self._safe_url}: {exc}") from exc

    @property
    def _safe_url(self) -> str:
        head, _, tail = self.url.rpartition("@")
        return f"amqp://…@{tail}" if head else self.url

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = None

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise TransportError("the broker is not connected")
        return self._channel

    async def declare_node(self, node: str) -> None:
        channel = self.channel
        exchange = await channel.declare_exchange(exchange_name(node),
                                                  aio_pika.ExchangeType.DIRECT, durable=True)
        inbound = await channel.declare_queue(inbound_queue_name(node), durable=True,
                                              arguments={"x-queue-type": "quorum"})
        await inbound.bind(exchange, routing_key=_INBOUND)
        parked = await channel.declare_queue(dead_letter_queue_name(inbound_queue_name(node)),
                                             durable=True, arguments={"x-queue-type": "quorum"})
        await parked.bind(exchange, routing_key=_PARKED)
        for delay in sorted(set(self.retry.delays_ms)):
            waiting = await channel.declare_queue(
                delay_queue_name(inbound_queue_name(node), delay), durable=True,
                arguments={"x-message-ttl": delay,
                           "x-dead-letter-exchange": exchange_name(node),
                           "x-dead-letter-routing-key": _INBOUND})
            await waiting.bind(exchange, routing_key=_delay_key(delay))

    async def delete_node(self, node: str) -> None:
        channel = self.channel
        inbound = inbound_queue_name(node)
        names = [inbound, dead_letter_queue_name(inbound),
                 *(delay_queue_name(inbound, d) for d in sorted(set(self.retry.delays_ms)))]
        for name in names:
            await channel.queue_delete(name)
        await channel.exchange_delete(exchange_name(node))
        self._known_exchanges.discard(exchange_name(node))

    async def publish(self, node: str, message: Message) -> None:
        await self._publish(node, message, _INBOUND)

    async def _publish(self, node: str, message: Message, routing_key: str) -> None:
        exchange = exchange_name(node)
        try:
            if exchange not in self._known_exchanges:  # once per exchange: a clear error
                await self.channel.get_exchange(exchange, ensure=True)
                self._known_exchanges.add(exchange)
            # straight to the channel: aio-pika's Message object costs more than the frame
            channel = await self.channel.get_underlay_channel()
            confirmation = await channel.basic_publish(
                message.body, exchange=exchange, routing_key=routing_key, mandatory=True,
                properties=aiormq.spec.Basic.Properties(
                    headers=dict(message.headers), message_id=message.message_id,
                    delivery_mode=2))  # persistent
        except Exception as exc:
            self._known_exchanges.discard(exchange)  # deleted meanwhile? check it again
            raise TransportError(f"hand-over to node {node!r} failed: {exc}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):  # returned: unroutable
            raise TransportError(f"hand-over to node {node!r} was not confirmed "
                                 f"({type(confirmation).__name__})")

    async def consume(self, node: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        if self._connection is None:
            raise TransportError("the broker is not connected")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(inbound_queue_name(node), ensure=True)
        consumer = _RabbitConsumer(self, node, channel, handler)
        consumer.tag = await queue.consume(consumer.on_message, no_ack=False)
        consumer.queue = queue
        return consumer

    async def _drain(self, node: str) -> list[AbstractIncomingMessage]:
        """Take every parked message without acknowledging (caller settles them)."""
        queue = await self.channel.get_queue(dead_letter_queue_name(inbound_queue_name(node)),
                                             ensure=True)
        taken = []
        while True:
            incoming = await queue.get(no_ack=False, fail=False)
            if incoming is None:
                return taken
            taken.append(incoming)

    async def parked(self, node: str) -> list[Message]:
        taken = await self._drain(node)
        messages = [_message(m) for m in taken]
        for incoming in taken:
            await incoming.nack(requeue=True)
        return messages

    async def replay_parked(self, node: str) -> int:
        taken = await self._drain(node)
        for incoming in taken:
            message = _message(incoming)
            headers = {k: v for k, v in message.headers.items() if not k.startswith("x-docaxis")}
            await self._publish(node, Message(message.body, headers, message.message_id),
                                _INBOUND)
            await incoming.ack()
        return len(taken)

    async def _after_failure(self, node: str, message: Message, reason: str, *,
                             park: bool) -> None:
        delay, following = self._next(message, reason)
        if park or delay is None:
            headers = {**message.headers, PARKED_REASON_HEADER: reason[:500]}
            await self._publish(node, Message(message.body, headers, message.message_id),
                                _PARKED)
        else:
            await self._publish(node, following, _delay_key(delay))


class _RabbitConsumer(Consumer):
    def __init__(self, broker: RabbitMQBroker, node: str, channel: AbstractChannel,
                 handler: Handler) -> None:
        self._broker, self._node, self._channel, self._handler = broker, node, channel, handler
        self.tag: str | None = None
        self.queue: Any = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def on_message(self, incoming: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            message = _message(incoming)
            try:
                await self._handler(message)
            except Reject as exc:
                await self._broker._after_failure(self._node, message, f"rejected: {exc}",
                                                  park=True)
            except asyncio.CancelledError:
                raise  # not acknowledged: RabbitMQ delivers it again
            except Exception as exc:
                await self._broker._after_failure(self._node, message,
                                                  f"{type(exc).__name__}: {exc}", park=False)
            await incoming.ack()
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def stop(self, timeout: float | None = 30.0) -> None:
        if self.queue is not None and self.tag is not None:
            with contextlib.suppress(Exception):
                await self.queue.cancel(self.tag)
        await _finish(self._in_flight, timeout)
        with contextlib.suppress(Exception):
            await self._channel.close()  # anything unacknowledged goes back to the queue


async def _finish(tasks: set[asyncio.Task[None]], timeout: float | None) -> None:
    """Let in-flight handlers finish for ``timeout`` seconds, then cancel the rest."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(set(tasks), timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def _message(incoming: AbstractIncomingMessage) -> Message:
    headers = {str(k): v.decode() if isinstance(v, bytes) else str(v)
               for k, v in (incoming.headers or {}).items()}
    return Message(incoming.body, headers, incoming.message_id or "")
