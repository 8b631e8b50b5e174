"""A node on a three-member RabbitMQ cluster (issue #12, item 6): a member dies under the
nodes; they move to another member and nothing is lost or doubled.

The cluster is three private RabbitMQ nodes on this host (their own names, ports and data
folders; started once for this module, stopped after it), beside the machine's own broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from docaxis.pki import DevPKI
from docaxis.transport import RabbitMQBroker, RetryPolicy
from tests.relay_support import build_network, network_pki
from tests.test_transport import run, wait_until

RABBITMQCTL = shutil.which("rabbitmqctl")
RABBITMQ_SERVER = shutil.which("rabbitmq-server")
pytestmark = pytest.mark.skipif(
    RABBITMQCTL is None or RABBITMQ_SERVER is None or os.geteuid() != 0,
    reason="needs RabbitMQ installed and root (to run private nodes as its user)")

FAST = RetryPolicy(delays_ms=(50, 100))


@dataclass
class RabbitCluster:
    """Three RabbitMQ members joined in one cluster, on ports 5701–5703."""

    folder: Path
    vhost: str
    names: tuple[str, ...] = ("docaxis-m1", "docaxis-m2", "docaxis-m3")

    def port(self, index: int) -> int:
        return 5701 + index

    def urls(self) -> list[str]:
        return [f"amqp://guest:guest@127.0.0.1:{self.port(i)}/{self.vhost}"
                for i in range(len(self.names))]

    def ctl(self, index: int, *args: str, check: bool = True,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RABBITMQCTL or "", "-n", f"{self.names[index]}@localhost",
                               *args], capture_output=True, text=True, check=check,
                              timeout=120)

    def start(self, index: int) -> None:
        home = self.folder / self.names[index]
        home.mkdir(parents=True, exist_ok=True)
        (home / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port(index)}\n", encoding="utf-8")
        (home / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        shutil.chown(home, "rabbitmq", "rabbitmq")
        for child in home.iterdir():
            shutil.chown(child, "rabbitmq", "rabbitmq")
        env = {**os.environ, "RABBITMQ_NODENAME": f"{self.names[index]}@localhost",
               "RABBITMQ_DIST_PORT": str(25701 + index),
               "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),
               "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
               "RABBITMQ_LOG_BASE": str(home / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
               "RABBITMQ_PID_FILE": str(home / "pid")}
        subprocess.run([RABBITMQ_SERVER or "", "-detached"], env=env, check=True,
                       capture_output=True, timeout=60)
        deadline = time.monotonic() + 90
        while self.ctl(index, "status", check=False).returncode != 0:
            assert time.monotonic() < deadline, f"{self.names[index]} did not start"
            time.sleep(0.5)

    def kill(self, index: int) -> None:
        """The member dies at once (SIGKILL), as a machine that loses power."""
        pid = int((self.folder / self.names[index] / "pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for index in range(len(self.names)):
            self.ctl(index, "stop", check=False)


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    folder = Path(tempfile.mkdtemp(prefix="docaxis-cluster-"))
    folder.chmod(0o755)  # RabbitMQ runs as its own user
    cluster = RabbitCluster(folder, f"docaxis-cluster-{uuid.uuid4().hex[:8]}")
    try:
        for index in range(3):
            cluster.start(index)
        for index in (1, 2):
            cluster.ctl(index, "stop_app")
            cluster.ctl(index, "join_cluster", f"{cluster.names[0]}@localhost")
            cluster.ctl(index, "start_app")
        cluster.ctl(0, "add_vhost", cluster.vhost)
        cluster.ctl(0, "set_permissions", "-p", cluster.vhost, "guest", ".*", ".*", ".*")
        yield cluster
    finally:
        cluster.stop_all()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("cluster-pki"))


def test_a_member_killed_under_the_nodes_loses_nothing_and_doubles_nothing(
    rabbit_cluster: RabbitCluster, pki: DevPKI, tmp_path: Path,
) -> None:
    """Every node of a four-tier network is connected to member 1 of the cluster (its
    ``amqp_url`` lists all three). Member 1 is SIGKILLed while packages flow from a
    commune in Đà Nẵng to Hà Nội: the nodes move to another member, the quorum queues go
    on with two of three, and every package arrives exactly once."""
    count = 30

    async def scenario() -> float:
        broker = RabbitMQBroker(rabbit_cluster.urls(), FAST)
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
        try:
            for number in range(count):
                document = network.document(sender, [recipient], number=f"K{number}")
                await asyncio.to_thread(origin.submit, document, agency=sender)
                if number == count // 3:
                    rabbit_cluster.kill(0)
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

    recovered = run_long(scenario())
    print(f"{count} packages delivered once each, {recovered:.1f} s after member 1 died")


def run_long(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout=240))


__all__ = ["RabbitCluster", "run", "wait_until"]
