"""The in-process broker for the single-node embedded mode (and the contract tests)."""

from __future__ import annotations

import asyncio
import contextlib

from docaxis.transport._broker import (
    Broker,
    Consumer,
    Handler,
    Message,
    Reject,
    RetryPolicy,
    TransportError,
    replayed,
)


class _Queue:
    def __init__(self) -> None:
        self.ready: asyncio.Queue[Message] = asyncio.Queue()
        self.parked: list[Message] = []


class InMemoryBroker(Broker):
    """Queues in this process; same semantics as RabbitMQ, nothing survives a restart."""

    def __init__(self, retry: RetryPolicy | None = None) -> None:
        super().__init__(retry)
        self._nodes: dict[str, _Queue] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    async def declare_node(self, node: str) -> None:
        self._nodes.setdefault(node, _Queue())

    async def delete_node(self, node: str) -> None:
        self._nodes.pop(node, None)

    def _queue(self, node: str) -> _Queue:
        try:
            return self._nodes[node]
        except KeyError:
            raise TransportError(f"no node {node!r} is declared on this broker") from None

    async def publish(self, node: str, message: Message) -> None:
        self._queue(node).ready.put_nowait(message)

    async def consume(self, node: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        queue = self._queue(node)
        return _MemoryConsumer(self, node, queue, handler, prefetch)

    async def parked(self, node: str) -> list[Message]:
        return list(self._queue(node).parked)

    async def replay_parked(self, node: str, message_id: str | None = None) -> int:
        queue = self._queue(node)
        chosen = [m for m in queue.parked if message_id in (None, m.message_id)]
        queue.parked = [m for m in queue.parked if m not in chosen]
        for message in chosen:
            queue.ready.put_nowait(replayed(message))
        return len(chosen)

    async def discard_parked(self, node: str, message_id: str | None = None) -> int:
        queue = self._queue(node)
        chosen = [m for m in queue.parked if message_id in (None, m.message_id)]
        queue.parked = [m for m in queue.parked if m not in chosen]
        return len(chosen)

    def _after_failure(self, node: str, message: Message, reason: str, *, park: bool) -> None:
        queue = self._queue(node)
        delay, following = self._next(message, reason)
        if park or delay is None:
            if delay is not None:  # rejected before the policy ran out
                following = Message(message.body,
                                    {**message.headers, "x-docaxis-parked-reason": reason[:500]},
                                    message.message_id)
            queue.parked.append(following)
            return
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def release() -> None:
            queue.ready.put_nowait(following)
            if timer is not None:
                self._timers.discard(timer)

        timer = loop.call_later(delay / 1000, release)
        self._timers.add(timer)


class _MemoryConsumer(Consumer):
    def __init__(self, broker: InMemoryBroker, node: str, queue: _Queue, handler: Handler,
                 prefetch: int) -> None:
        self._broker, self._node, self._queue, self._handler = broker, node, queue, handler
        self._slots = asyncio.Semaphore(prefetch)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            message = await self._queue.ready.get()
            task = asyncio.create_task(self._handle(message))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _handle(self, message: Message) -> None:
        try:
            await self._handler(message)
        except asyncio.CancelledError:
            self._queue.ready.put_nowait(message)  # never acknowledged: delivered again
            raise
        except Reject as exc:
            self._broker._after_failure(self._node, message, f"rejected: {exc}", park=True)
        except Exception as exc:
            self._broker._after_failure(self._node, message, f"{type(exc).__name__}: {exc}",
                                        park=False)
        finally:
            self._slots.release()

    async def stop(self, timeout: float | None = 30.0) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._in_flight:
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
