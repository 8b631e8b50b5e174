"""The test network is the demo network (docaxis.node._demo)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from docaxis.node._demo import DEMO_AGENCIES as AGENCIES
from docaxis.node._demo import DemoNetwork as Network
from docaxis.node._demo import build_demo_network, demo_pki, organization
from docaxis.pki import DevPKI
from docaxis.transport import InMemoryBroker, RetryPolicy

__all__ = ["AGENCIES", "Network", "build_network", "free_port", "idle_network", "network_pki",
           "organization", "private_vhost", "stop_processes"]

#: retries after 50 and 100 ms, then the parking queue
FAST = RetryPolicy(delays_ms=(50, 100))


@contextlib.contextmanager
def private_vhost(prefix: str) -> Iterator[str]:
    """A RabbitMQ vhost of this test's own (guest may use it), deleted afterwards."""
    import uuid

    ctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run([ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    try:
        yield vhost
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], check=False, capture_output=True)


def stop_processes(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process still running (a node drains and exits 0); SIGKILL after 20 s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_network(folder: Path, pki: DevPKI, make_links) -> Network:  # type: ignore[no-untyped-def]
    return build_demo_network(folder, pki, make_links)


#: a change to a demo document's signed subject ("V/v liên thông…"): not ASCII, so it can
#: never fall inside the base64 of a certificate or signature value (a plain ``b"V/v"``
#: did, one generated key in a hundred or so, and the test saw EDX-SIG-UNTRUSTED)
_SUBJECT, _ALTERED = "V/v liên thông".encode(), "V/x liên thông".encode()


def subject_changed(document: bytes) -> bytes:
    """A signed demo document with one character of its subject changed (its digest no
    longer matches: ``EDX-SIG-DIGEST``)."""
    assert _SUBJECT in document, "not a demo document with the usual subject"
    return document.replace(_SUBJECT, _ALTERED)


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
