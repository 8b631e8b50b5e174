"""The RabbitMQ broker (aio-pika): quorum queues, publisher confirms, manual acks.

* every queue that holds a message is a durable **quorum** queue, replicated on the
  members of a RabbitMQ cluster: inbound, parking, and the retry queues — a TTL each
  (one queue per step of the retry schedule), dead-lettering back to the node's exchange
  *at least once* (RabbitMQ ≥ 3.10), so a waiting retry survives the loss of a member;
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
import heapq
import logging
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from yarl import URL

from docaxis.directory import mask_url
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
    legacy_delay_queue_name,
    replayed,
)

_INBOUND, _PARKED = "inbound", "parked"
_log = logging.getLogger("docaxis.transport")

#: default AMQP heartbeat (seconds): a hung process's deliveries go back to the queue after
#: about twice this
HEARTBEAT = 10
#: default wait for a publisher confirm (seconds): longer than a quorum queue's leader
#: election, short enough that a confirm the broker never sends is a failure the caller
#: retries, not a hand-over waiting for ever
CONFIRM_TIMEOUT = 15.0
#: how often a consumer checks that its subscription is still there (seconds)
CONSUMER_CHECK_INTERVAL = 1.0
#: seconds a consumer's attempt to subscribe again (reopen its channel, consume) may take
RESUBSCRIBE_TIMEOUT = 10.0


def _said(error: BaseException | None) -> str:
    """An error as one log field: its message (or its type, when it has none), cut."""
    return (str(error) or type(error).__name__)[:300]


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
    heartbeat:
        AMQP heartbeat interval, seconds. RabbitMQ closes a connection that missed two
        heartbeats, and gives its unacknowledged deliveries to other consumers: a hung
        process (stopped, deadlocked, swapping) holds its deliveries about
        ``2 × heartbeat`` seconds, not for ever (aio-pika's default is 60 s).
    confirm_timeout:
        Seconds a publish waits for the broker's confirm. One that does not come in time
        raises :class:`TransportError` and the next publishes use a new channel: the
        caller's retry (the outbox sweep) sends the message again, and the receiving node
        deduplicates it.

    Raises
    ------
    TransportError
        From :meth:`connect` when no member answers; from :meth:`publish` when the broker
        does not confirm the message (nacked, unroutable, or no confirm in time).

    Examples
    --------
    >>> async with RabbitMQBroker("amqp://guest:guest@127.0.0.1/") as broker:  # doctest: +SKIP
    ...     await broker.declare_node("hanoi")
    ...     await broker.publish("hanoi", Message(b"<edXML …>"))
    """

    def __init__(self, url: str | Sequence[str], retry: RetryPolicy | None = None, *,
                 heartbeat: int = HEARTBEAT, confirm_timeout: float = CONFIRM_TIMEOUT,
                 ) -> None:
        super().__init__(retry)
        #: the members of the cluster, in the order tried (one URL: a single broker)
        self.urls = tuple(url.split() if isinstance(url, str) else url)
        if not self.urls:
            raise TransportError("no RabbitMQ URL given")
        self.url = self.urls[0]
        self.heartbeat = heartbeat
        self.confirm_timeout = confirm_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._renewing = asyncio.Lock()
        self._known_exchanges: set[str] = set()

    @property
    def connected(self) -> bool:
        """Whether the broker is reachable now: False from the moment the connection is
        lost until aio-pika has connected again (``is_closed`` alone stays False through
        a reconnect — it says only whether :meth:`close` was called: ``/ready`` and
        ``docaxis_broker_up`` said "up" all through an outage)."""
        connection = self._connection
        return (connection is not None and not connection.is_closed
                and connection.connected.is_set())

    async def connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self.url, reconnect_interval=1, heartbeat=self.heartbeat,
                connection_class=partial(_FailoverConnection, members=self.urls))
            self._channel = await self._connection.channel(publisher_confirms=True)
        except Exception as exc:  # aio-pika raises many types for "cannot connect"
            raise TransportError(f"cannot connect to RabbitMQ at {self._safe_url}: {exc}") from exc
        self._connection.close_callbacks.add(self._on_connection_lost)
        self._connection.reconnect_callbacks.add(self._on_reconnected)

    def _on_connection_lost(self, _connection: object, error: BaseException | None) -> None:
        if self._connection is None or self._connection.close_called:
            return  # closed by us
        _log.warning("broker.disconnected", extra={
            "code": "TRANSPORT-DISCONNECTED", "broker": self._safe_url,
            "error": _said(error)})

    def _on_reconnected(self, connection: object) -> None:
        _log.warning("broker.reconnected", extra={  # (the member it is on now)
            "code": "TRANSPORT-RECONNECTED", "broker": mask_url(str(connection))})

    @property
    def _safe_url(self) -> str:
        return mask_url(" ".join(self.urls))

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = None

    @property
    def channel(self) -> AbstractRobustChannel:
        if self._channel is None:
            raise TransportError("the broker is not connected")
        return self._channel

    async def declare_node(self, node: str) -> None:
        # robust=False, here and wherever a queue or an exchange is named: aio-pika would
        # declare it again whenever it restores the connection, and one declaration that
        # fails there (a queue deleted, without a leader yet in a failover) fails the
        # whole restoration — every channel of the connection, again and again. The
        # topology is durable on the broker; what cannot be consumed or published to is
        # a failure of that consumer or that hand-over alone, logged and retried (a
        # consumer whose queue is gone declares its node again: _RabbitConsumer).
        # On a channel of its own: a failed declaration closes its channel.
        async with self._own_channel() as channel:
            await self._declare_on(channel, node)

    async def _declare_on(self, channel: AbstractRobustChannel, node: str) -> None:
        exchange = await channel.declare_exchange(exchange_name(node),
                                                  aio_pika.ExchangeType.DIRECT, durable=True,
                                                  robust=False)
        inbound = await channel.declare_queue(inbound_queue_name(node), durable=True,
                                              arguments={"x-queue-type": "quorum"},
                                              robust=False)
        await inbound.bind(exchange, routing_key=_INBOUND)
        parked = await channel.declare_queue(dead_letter_queue_name(inbound_queue_name(node)),
                                             durable=True, arguments={"x-queue-type": "quorum"},
                                             robust=False)
        await parked.bind(exchange, routing_key=_PARKED)
        for delay in sorted(set(self.retry.delays_ms)):
            waiting = await channel.declare_queue(
                delay_queue_name(inbound_queue_name(node), delay), durable=True,
                arguments={"x-queue-type": "quorum", "x-message-ttl": delay,
                           "x-dead-letter-exchange": exchange_name(node),
                           "x-dead-letter-routing-key": _INBOUND,
                           # at-least-once dead-lettering needs reject-publish overflow
                           "x-dead-letter-strategy": "at-least-once",
                           "x-overflow": "reject-publish"}, robust=False)
            await waiting.bind(exchange, routing_key=_delay_key(delay))
            await self._unbind_legacy(node, delay)

    async def _unbind_legacy(self, node: str, delay: int) -> None:
        """A classic delay queue left by an older docaxis gets no new message (what waits
        in it still comes back when its TTL ends); an operator deletes it once empty."""
        name = legacy_delay_queue_name(inbound_queue_name(node), delay)
        try:
            async with self._own_channel() as probe:  # a missing queue closes the channel
                legacy = await probe.declare_queue(name, passive=True, robust=False)
                await legacy.unbind(exchange_name(node), routing_key=_delay_key(delay))
        except aiormq.exceptions.ChannelNotFoundEntity:
            return  # none: a node declared by this version

    async def delete_node(self, node: str) -> None:
        channel = self.channel
        inbound = inbound_queue_name(node)
        names = [inbound, dead_letter_queue_name(inbound),
                 *(name(inbound, d) for d in sorted(set(self.retry.delays_ms))
                   for name in (delay_queue_name, legacy_delay_queue_name))]
        for name in names:
            await channel.queue_delete(name)
        await channel.exchange_delete(exchange_name(node))
        self._known_exchanges.discard(exchange_name(node))

    async def publish(self, node: str, message: Message) -> None:
        await self._publish(node, message, _INBOUND)

    async def _publish(self, node: str, message: Message, routing_key: str) -> None:
        exchange = exchange_name(node)
        publisher = self.channel
        try:
            if exchange not in self._known_exchanges:  # once per exchange: a clear error
                await self._check_exchange(exchange)
                self._known_exchanges.add(exchange)
            # straight to the channel: aio-pika's Message object costs more than the frame
            channel = await publisher.get_underlay_channel()
            confirmation = await asyncio.wait_for(channel.basic_publish(
                message.body, exchange=exchange, routing_key=routing_key, mandatory=True,
                properties=aiormq.spec.Basic.Properties(
                    headers=dict(message.headers), message_id=message.message_id,
                    delivery_mode=2)),  # persistent
                self.confirm_timeout)
        except aiormq.exceptions.DeliveryError as exc:  # nacked: the broker did not take it
            await self._renew_publisher(publisher, exc)
            raise TransportError(f"hand-over to node {node!r} failed: {exc}") from exc
        except TimeoutError as exc:  # no confirm: this channel may never give one
            await self._renew_publisher(publisher, exc, code="TRANSPORT-CONFIRM-TIMEOUT")
            raise TransportError(f"hand-over to node {node!r} was not confirmed within "
                                 f"{self.confirm_timeout:g} s") from exc
        except Exception as exc:
            self._known_exchanges.discard(exchange)  # deleted meanwhile? check it again
            raise TransportError(f"hand-over to node {node!r} failed: {exc}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):  # returned: unroutable
            raise TransportError(f"hand-over to node {node!r} was not confirmed "
                                 f"({type(confirmation).__name__})")

    async def _check_exchange(self, exchange: str) -> None:
        """Raise unless ``exchange`` exists — asked on a channel of its own: the broker
        closes the channel a missing exchange is asked on, and on the shared publisher's
        that failed every hand-over to other nodes in flight at that moment (a node
        whose neighbour has not yet run once, and so declared nothing, asked at every
        sweep)."""
        async with self._own_channel() as probe:
            await probe.declare_exchange(exchange, passive=True, robust=False)

    @contextlib.asynccontextmanager
    async def _own_channel(self) -> AsyncIterator[AbstractRobustChannel]:
        """A channel for one question or declaration, closed after it: the broker
        closes the channel an error is raised on (a missing queue or exchange), and the
        shared ones — the publisher's, the consumers' — must not be that channel."""
        if self._connection is None:
            raise TransportError("the broker is not connected")
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _renew_publisher(self, stale: AbstractRobustChannel, error: BaseException, *,
                               code: str = "TRANSPORT-NACKED") -> None:
        """Publish on a new channel from now on. After a quorum queue's leader died, a
        channel went on being nacked for minutes while a new one was not (seen on
        RabbitMQ 3.10 with a member SIGKILLed; ``tests/test_cluster.py``): the caller's
        retry — the outbox sweep — then goes through. A channel whose confirm did not
        come in time is replaced the same way."""
        async with self._renewing:
            if self._channel is not stale or self._connection is None:
                return  # renewed already, by a publish nacked at the same moment
            _log.warning("broker.publisher_renewed", extra={
                "code": code, "error": _said(error)})
            try:  # bounded: a broker that does not answer does not open channels either
                self._channel = await asyncio.wait_for(
                    self._connection.channel(publisher_confirms=True), self.confirm_timeout)
            except Exception as exc:  # keep the old one; the next failure tries again
                _log.warning("broker.publisher_not_renewed", extra={
                    "code": code, "error": _said(exc)})
                return
            self._known_exchanges.clear()
        with contextlib.suppress(Exception):  # it may be closed already
            await stale.close()

    async def consume(self, node: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        if self._connection is None:
            raise TransportError("the broker is not connected")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        await channel.declare_queue(inbound_queue_name(node), passive=True,  # a clear error
                                    robust=False)
        consumer = _RabbitConsumer(self, node, channel, handler)
        await consumer.subscribe()
        return consumer

    async def _drain(self, node: str) -> list[AbstractIncomingMessage]:
        """Take every parked message without acknowledging (caller settles them)."""
        queue = await self.channel.declare_queue(
            dead_letter_queue_name(inbound_queue_name(node)), passive=True, robust=False)
        taken: list[AbstractIncomingMessage] = []
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

    async def replay_parked(self, node: str, message_id: str | None = None) -> int:
        return await self._settle_parked(node, message_id, replay=True)

    async def discard_parked(self, node: str, message_id: str | None = None) -> int:
        return await self._settle_parked(node, message_id, replay=False)

    async def _settle_parked(self, node: str, message_id: str | None, *, replay: bool) -> int:
        """Replay or drop the chosen parked messages; put the others back."""
        taken = await self._drain(node)
        count = 0
        for incoming in taken:
            message = _message(incoming)
            if message_id is not None and message.message_id != message_id:
                await incoming.nack(requeue=True)
                continue
            if replay:
                await self._publish(node, replayed(message), _INBOUND)
            await incoming.ack()
            count += 1
        return count

    async def _after_failure(self, node: str, message: Message, reason: str, *,
                             park: bool) -> None:
        delay, following = self._next(message, reason)
        if park or delay is None:
            headers = {**message.headers, PARKED_REASON_HEADER: reason[:500]}
            await self._publish(node, Message(message.body, headers, message.message_id),
                                _PARKED)
        else:
            await self._publish(node, following, _delay_key(delay))


class _FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, moving to the next member of the cluster at each
    connection attempt after the first: when its member dies, the node reconnects to
    another (aio-pika alone retries the one URL it was given for as long as that member
    is down). Channels, consumers and declarations are restored by aio-pika as on any
    reconnect; the queues that hold messages are quorum queues, on every member.

    aio-pika starts each attempt by clearing ``transport``: that is where the member
    changes (``tests/test_transport.py`` checks it still does, on a member's loss).
    """

    def __init__(self, url: Any, *args: Any, members: Sequence[str] = (), **kwargs: Any,
                 ) -> None:
        self._members = [URL(member) for member in members] or [URL(url)]
        self._attempts = -1  # Connection.__init__ clears ``transport`` once, too
        super().__init__(self._members[0].update_query(URL(url).query), *args, **kwargs)

    @property
    def transport(self) -> Any:
        return self.__dict__.get("_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        self.__dict__["_transport"] = value
        if (value is None and "_members" in self.__dict__
                and not getattr(self, "_close_called", False)):
            if self._attempts > 0 and len(self._members) > 1:
                member = self._members[self._attempts % len(self._members)]
                self.url = member.update_query(self.url.query)
                _log.warning("broker.failover", extra={
                    "code": "TRANSPORT-FAILOVER", "broker": mask_url(str(member))})
            self._attempts += 1


class _RabbitConsumer(Consumer):
    """Consumes a node's inbound queue straight off the AMQP channel.

    aio-pika's robust channel owns the connection (it reopens it after a failure, then calls
    :meth:`subscribe` again); deliveries are taken from aiormq directly — one task each,
    no per-message wrapper — and acknowledged in order, many at a time
    (:class:`_Acknowledger`). A watch task checks every ``CONSUMER_CHECK_INTERVAL`` seconds
    that the subscription is still there — the broker may cancel it (a quorum queue that
    lost its leader, a queue deleted and declared again) or a re-subscription after a
    reconnect may have failed — and subscribes again, logging each attempt: a consumer
    that silently stopped would leave a node alive that does nothing.
    """

    def __init__(self, broker: RabbitMQBroker, node: str, channel: AbstractRobustChannel,
                 handler: Handler) -> None:
        self._broker, self._node, self._channel, self._handler = broker, node, channel, handler
        self._subscription: tuple[aiormq.Channel, str] | None = None
        self._acks: _Acknowledger | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._stopped = False
        #: the broker said the queue does not exist (the watch declares the node again)
        self._queue_missing = False
        self._subscribing = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        channel.reopen_callbacks.add(self._on_reopen)

    async def subscribe(self) -> None:
        """Start (or, on a reopened channel, restart) taking deliveries; nothing to do
        while the current subscription is alive."""
        async with self._subscribing:
            if self._stopped or self._subscribed():
                return
            underlay = cast(aiormq.Channel, await self._channel.get_underlay_channel())
            acks = _Acknowledger(underlay)
            result = await underlay.basic_consume(
                inbound_queue_name(self._node), partial(self._on_delivery, acks),
                no_ack=False)
            self._acks = acks
            self._subscription = (underlay, str(result.consumer_tag))
            self._queue_missing = False  # (declared again, here or by another process)
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._watch_forever())

    def _subscribed(self) -> bool:
        if self._subscription is None:
            return False
        underlay, tag = self._subscription
        return not underlay.is_closed and tag in underlay.consumers

    async def _on_reopen(self, _channel: object) -> None:
        """aio-pika's call after it reopened the channel (a reconnect): subscribe again —
        deliveries of the lost channel come again on the new one. Bounded (it runs inside
        aio-pika's restoration of the connection, before the channels after it); a
        failure (a quorum queue without a leader yet in a failover, a deleted queue) is
        logged as ours and left to the watch, which tries again every
        ``CONSUMER_CHECK_INTERVAL``."""
        if self._stopped or self._queue_missing:
            # the queue is gone: the watch declares it again, then subscribes on its next
            # round. A consume here — at each reopen of the channel its last failed consume
            # closed — could land while that declaration is creating the queue: RabbitMQ
            # 3.10 answers a consume on a quorum queue whose Raft member has not started by
            # crashing the channel, and closes the whole connection (INTERNAL_ERROR, 541),
            # every other consumer and publish on it with it
            return
        try:
            async with asyncio.timeout(RESUBSCRIBE_TIMEOUT):
                await self.subscribe()
        except Exception as exc:
            self._lost(exc)

    def _lost(self, error: BaseException) -> None:
        if isinstance(error, aiormq.exceptions.ChannelNotFoundEntity):
            self._queue_missing = True
        _log.warning("broker.consumer_lost", extra={
            "code": "TRANSPORT-CONSUMER-LOST", "node": self._node,
            "error": _said(error)})

    async def _watch_forever(self) -> None:
        """Subscribe again whenever the subscription is gone while the connection is up
        (while it is down, aio-pika reconnects and :meth:`_on_reopen` subscribes)."""
        while not self._stopped:
            await asyncio.sleep(CONSUMER_CHECK_INTERVAL)
            if self._stopped or not self._broker.connected or self._subscribed():
                continue
            try:  # bounded: a call that never answers must not end the watching
                async with asyncio.timeout(RESUBSCRIBE_TIMEOUT):
                    if self._channel.is_closed:
                        await self._channel.reopen()  # its reopen callback subscribes
                    await self.subscribe()
            except Exception as exc:  # the queue may be without a leader: next round
                self._lost(exc)
                if self._queue_missing:  # (said by this attempt, or by the reopen's)
                    await self._declare_again()  # subscribed at the next round, not now
                continue
            if self._subscribed():
                _log.warning("broker.consumer_restored", extra={
                    "code": "TRANSPORT-CONSUMER-RESTORED", "node": self._node})

    async def _declare_again(self) -> None:
        """Its queue is gone (deleted under the running node, a broker that lost its
        definitions): declare the node's queues again — once aio-pika did so at every
        reconnect, at the cost of the whole connection when one declaration failed."""
        try:  # no subscription of ours meanwhile (see _on_reopen)
            async with self._subscribing, asyncio.timeout(RESUBSCRIBE_TIMEOUT):
                await self._broker.declare_node(self._node)
        except Exception as exc:  # (a queue without a leader answers so too): next round
            _log.warning("broker.redeclare_failed", extra={
                "code": "TRANSPORT-REDECLARE-FAILED", "node": self._node,
                "error": _said(exc)})
            return
        self._queue_missing = False
        _log.warning("broker.redeclared", extra={
            "code": "TRANSPORT-REDECLARED", "node": self._node})

    async def _on_delivery(self, acks: _Acknowledger,
                           delivered: aiormq.abc.DeliveredMessage) -> None:
        tag = delivered.delivery_tag
        if tag is None:
            return
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        acks.delivered(tag)
        settled = False
        try:
            message = _message_of(delivered)
            try:
                await self._handler(message)
            except Reject as exc:
                await self._broker._after_failure(self._node, message, f"rejected: {exc}",
                                                  park=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._broker._after_failure(self._node, message,
                                                  f"{type(exc).__name__}: {exc}", park=False)
            settled = True
        finally:
            if task is not None:
                self._in_flight.discard(task)
            if settled:
                acks.finished(tag)
            else:  # cancelled, or its retry could not be handed over: deliver it again
                acks.abandoned(tag)

    async def stop(self, timeout: float | None = 30.0) -> None:
        self._stopped = True
        self._channel.reopen_callbacks.discard(self._on_reopen)
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self._subscription is not None:
            underlay, tag = self._subscription
            with contextlib.suppress(Exception):
                await underlay.basic_cancel(tag)
        await _finish(self._in_flight, timeout)
        if self._acks is not None:
            await self._acks.drain()
        with contextlib.suppress(Exception):
            await self._channel.close()  # anything unacknowledged goes back to the queue


class _Acknowledger:
    """Acknowledges one channel's deliveries in order, many with one ``basic.ack``.

    ``basic.ack(multiple=True)`` settles every delivery up to a tag, so only a run of
    *finished* deliveries can be acknowledged at once: the lowest delivery still being
    handled holds the later ones back until it finishes. A delivery abandoned (its handler
    cancelled, or its retry not handed over) is returned to the queue on its own, before
    any acknowledgement that could cover it. One task sends everything, so frames leave in
    the order decided. Tags belong to one channel: after a reconnect a new acknowledger
    starts afresh (the old channel's unacknowledged deliveries come again anyway).
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        self._open: set[int] = set()  # delivered, handler still running
        self._finished: list[int] = []  # heap: finished, not yet acknowledged
        self._abandoned: list[int] = []  # to return to the queue
        self._sender: asyncio.Task[None] | None = None

    def delivered(self, tag: int) -> None:
        self._open.add(tag)

    def finished(self, tag: int) -> None:
        self._open.discard(tag)
        heapq.heappush(self._finished, tag)
        self._wake()

    def abandoned(self, tag: int) -> None:
        self._open.discard(tag)
        self._abandoned.append(tag)
        self._wake()

    def _wake(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_soon())

    async def _send_soon(self) -> None:
        await asyncio.sleep(0)  # the deliveries finishing in this turn join in
        await self._send()

    async def _send(self) -> None:
        try:
            while self._abandoned or self._finished:
                while self._abandoned:
                    await self.channel.basic_nack(self._abandoned.pop(), requeue=True,
                                                  wait=False)
                lowest_open = min(self._open, default=None)
                last = None
                while self._finished and (lowest_open is None
                                          or self._finished[0] < lowest_open):
                    last = heapq.heappop(self._finished)
                if last is None:
                    return  # the rest wait for the lowest open delivery
                await self.channel.basic_ack(last, multiple=True, wait=False)
        except Exception as exc:  # the channel is gone: its unacknowledged deliveries come again
            _log.info("broker.acks_dropped", extra={
                "code": "TRANSPORT-CHANNEL-GONE", "error": _said(exc),
                "unacknowledged": len(self._finished) + len(self._abandoned)})

    async def drain(self) -> None:
        """Send what is decided (at stop, once every handler has finished)."""
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        await self._send()


async def _finish(tasks: set[asyncio.Task[None]], timeout: float | None) -> None:
    """Let in-flight handlers finish for ``timeout`` seconds, then cancel the rest."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(set(tasks), timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def _message_of(delivered: aiormq.abc.DeliveredMessage) -> Message:
    properties = delivered.header.properties
    headers = {str(k): v.decode() if isinstance(v, bytes) else str(v)
               for k, v in (properties.headers or {}).items()}
    return Message(delivered.body, headers, properties.message_id or "")


def _message(incoming: AbstractIncomingMessage) -> Message:
    headers = {str(k): v.decode() if isinstance(v, bytes) else str(v)
               for k, v in (incoming.headers or {}).items()}
    return Message(incoming.body, headers, incoming.message_id or "")
