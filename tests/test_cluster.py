"""A node on a three-member RabbitMQ cluster (issue #12, item 6): a member dies under the
nodes; they move to another member and nothing is lost or doubled.

The cluster is three private RabbitMQ nodes on this host (tests/cluster_support.py),
started once for this module and stopped after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docaxis.pki import DevPKI
from docaxis.transport import RabbitMQBroker, RetryPolicy
from tests.cluster_support import UNAVAILABLE, RabbitCluster, rabbit_cluster
from tests.relay_support import build_network, network_pki
from tests.test_transport import run, wait_until

pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))

FAST = RetryPolicy(delays_ms=(50, 100))


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    with rabbit_cluster() as members:
        yield members


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("cluster-pki"))


def test_a_member_killed_under_the_nodes_loses_nothing_and_doubles_nothing(
    cluster: RabbitCluster, pki: DevPKI, tmp_path: Path,
) -> None:
    """Every node of a four-tier network is connected to member 1 of the cluster (its
    ``amqp_url`` lists all three). Member 1 is SIGKILLed while packages flow from a
    commune in Đà Nẵng to Hà Nội: the nodes move to another member, the quorum queues go
    on with two of three, and every package arrives exactly once."""
    count = 30

    async def scenario() -> float:
        broker = RabbitMQBroker(cluster.urls(), FAST)
        await broker.connect()
        network = build_network(tmp_path, pki, lambda _node: broker)
        for node in network.nodes.values():
            node.sweep_after = 1.0  # hand-overs refused while the member died: re-sent soon
            await broker.declare_node(node.node_id)
        for node in network.nodes.values():
            await node.start()
        sender, recipient = "000.01.05.H43", "000.00.00.H01"
        origin, target = network.nodes["hoatien"], network.nodes["hanoi"]
        killed_at = 0.0
        try:  # the scenario bounded, its clean-up not: a cancelled clean-up leaves
            # aio-pika's reconnecting task alive, and asyncio.run waits on it for ever
            async with asyncio.timeout(220):
                for number in range(count):
                    document = network.document(sender, [recipient], number=f"K{number}")
                    await asyncio.to_thread(origin.submit, document, agency=sender)
                    if number == count // 3:
                        cluster.kill(0)
                        killed_at = time.monotonic()
                await wait_until(lambda: len(target.store.inbox(recipient)) >= count, 120)
                recovered = time.monotonic() - killed_at
                await wait_until(lambda: all(not n.store.pending_outbox()
                                             for n in network.nodes.values()), 60)
            inbox = target.store.inbox(recipient)
            assert len(inbox) == count
            assert len({item.document_id for item in inbox}) == count
        finally:
            for node in network.nodes.values():
                with contextlib.suppress(Exception):
                    await node.stop()
            await broker.close()
        return recovered

    recovered = asyncio.run(scenario())
    print(f"{count} packages delivered once each, {recovered:.1f} s after member 1 died")


__all__ = ["RabbitCluster", "run", "wait_until"]
