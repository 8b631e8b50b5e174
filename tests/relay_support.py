"""The test network is the demo network (docaxis.node._demo)."""

from __future__ import annotations

import socket
from pathlib import Path

from docaxis.node._demo import DEMO_AGENCIES as AGENCIES
from docaxis.node._demo import DemoNetwork as Network
from docaxis.node._demo import build_demo_network, demo_pki, organization
from docaxis.pki import DevPKI
from docaxis.transport import InMemoryBroker, RetryPolicy

__all__ = ["AGENCIES", "Network", "build_network", "free_port", "idle_network", "network_pki",
           "organization"]

#: retries after 50 and 100 ms, then the parking queue
FAST = RetryPolicy(delays_ms=(50, 100))


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_network(folder: Path, pki: DevPKI, make_links) -> Network:  # type: ignore[no-untyped-def]
    return build_demo_network(folder, pki, make_links)


def network_pki(folder: Path) -> DevPKI:
    return demo_pki(folder)


async def idle_network(folder: Path, pki: DevPKI) -> tuple[Network, InMemoryBroker]:
    """The network on an in-process broker (``FAST`` retries), every node's queues
    declared and no node started: a test drives commits and sweeps by hand."""
    broker = InMemoryBroker(FAST)
    await broker.connect()
    network = build_network(folder, pki, lambda _node: broker)
    for node in network.nodes.values():
        await broker.declare_node(node.node_id)
    return network, broker
