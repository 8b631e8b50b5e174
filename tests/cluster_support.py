"""A three-member RabbitMQ cluster of private nodes on this host (their own names, ports
5701–5703 and data folders), beside the machine's own broker: for the tests and the
benchmark of a node across machines (issue #12). Needs root (the members run as
RabbitMQ's user)."""

from __future__ import annotations

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

RABBITMQCTL = shutil.which("rabbitmqctl")
RABBITMQ_SERVER = shutil.which("rabbitmq-server")
#: why a cluster cannot be started here (None: it can)
UNAVAILABLE = ("RabbitMQ is not installed" if RABBITMQCTL is None or RABBITMQ_SERVER is None
               else "needs root, to run private RabbitMQ nodes as its user"
               if os.geteuid() != 0 else None)


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


@contextlib.contextmanager
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """Three members joined in one cluster, with a vhost of their own; stopped after."""
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
