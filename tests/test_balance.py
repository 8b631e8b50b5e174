"""Connection balancing between a node's worker processes (``docaxis.node._balance``); the
whole node is exercised in ``test_crash.py``
(``test_kept_alive_connections_spread_evenly_over_the_worker_processes``)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from docaxis.node._balance import BalancedConnections, ConnectionShares


def test_a_process_is_over_its_share_only_above_the_even_split_rounded_up() -> None:
    counts = ConnectionShares.shared(2)
    first, second = ConnectionShares(counts, 0), ConnectionShares(counts, 1)
    assert second.over_share(5)  # 5 of 5 in all
    assert first.over_share(11)  # 16 in all: 8 each
    assert not second.over_share(8)
    assert not first.over_share(8)
    assert not first.over_share(9)  # 17 in all: 9 is the share rounded up
    assert list(counts) == [9, 8]
    with pytest.raises(ValueError, match="slot 2 of 2"):
        ConnectionShares(counts, 2)


def _app() -> Starlette:
    async def plain(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def closing(_request: Request) -> Response:
        return PlainTextResponse("ok", headers={"Connection": "close"})

    return Starlette(routes=[Route("/", plain), Route("/closing", closing)])


def test_a_response_asks_for_a_new_connection_only_while_over_the_share() -> None:
    asyncio.run(_asks_only_while_over_the_share())


async def _asks_only_while_over_the_share() -> None:
    counts = ConnectionShares.shared(2)
    other = ConnectionShares(counts, 1)
    held = {"now": 3}
    asked: list[int] = []
    app = BalancedConnections(_app(), ConnectionShares(counts, 0), lambda: held["now"],
                              lambda: asked.append(1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        other.over_share(3)
        answer = await client.get("/")  # 3 and 3: even
        assert answer.text == "ok" and "connection" not in answer.headers and not asked
        held["now"] = 5  # 5 and 3: over ceil(8 / 2)
        answer = await client.get("/")
        assert answer.text == "ok" and answer.headers["connection"] == "close"
        assert len(asked) == 1
        answer = await client.get("/closing")  # closing already: one header, not counted
        assert answer.headers.get_list("connection") == ["close"] and len(asked) == 1


def test_a_process_asks_one_client_at_a_time_to_reconnect() -> None:
    """The responses of one commit batch go out together and read the same count: a
    process holding 13 of 16 asks one of them to reconnect, not every one, and the next
    only once the first has had time to be placed (``settle``)."""
    asyncio.run(_one_at_a_time())


async def _one_at_a_time() -> None:
    counts = ConnectionShares.shared(2)
    ConnectionShares(counts, 1).over_share(3)
    now = {"t": 100.0}
    asked: list[int] = []
    app = BalancedConnections(_app(), ConnectionShares(counts, 0), lambda: 13,
                              lambda: asked.append(1), settle=0.1, clock=lambda: now["t"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        batch = await asyncio.gather(*(client.get("/") for _ in range(8)))
        closing = [a for a in batch if a.headers.get("connection") == "close"]
        assert len(closing) == 1 and len(asked) == 1
        now["t"] += 0.05  # not settled yet: still over the share, nobody else asked
        assert "connection" not in (await client.get("/")).headers and len(asked) == 1
        now["t"] += 0.06
        assert (await client.get("/")).headers["connection"] == "close"
        assert len(asked) == 2
