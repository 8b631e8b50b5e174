"""The test network is the demo network (docaxis.node._demo)."""

from __future__ import annotations

import socket
from pathlib import Path

from docaxis.node._demo import DEMO_AGENCIES as AGENCIES
from docaxis.node._demo import DemoNetwork as Network
from docaxis.node._demo import build_demo_network, demo_pki, organization
from docaxis.pki import DevPKI

__all__ = ["AGENCIES", "Network", "build_network", "free_port", "network_pki", "organization"]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_network(folder: Path, pki: DevPKI, make_links) -> Network:  # type: ignore[no-untyped-def]
    return build_demo_network(folder, pki, make_links)


def network_pki(folder: Path) -> DevPKI:
    return demo_pki(folder)
