"""A node across instances (issue #12): central's hop rate and CPU per package with one
instance and with two, on one PostgreSQL database and a three-member RabbitMQ cluster.

Each round: a fresh PostgreSQL database for central; its inbound quorum queue on the
cluster filled with ~5 KB signed packages from Đà Nẵng to Hà Nội; then ``docaxis serve``
started once (one instance) or twice (two instances: their own data folders and ports,
the same database, ``amqp_url`` listing the three members), and the rate read off
hanoi's queue depth between 10 % and 90 % of the packages, as in ``bench_relay``. CPU per
package is the instances' user + system time over the same window, divided by the
packages that crossed it. Candidates alternate round by round; the best round is
reported, with each round's ratio of two instances to one.

Needs root (the cluster's members run as RabbitMQ's user) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import psycopg

from benchmarks.bench_relay import ROOT, _fill, _free_port
from docaxis.node import NodeConfig
from docaxis.node._demo import build_demo_network, demo_pki
from docaxis.transport import RabbitMQBroker
from docaxis.transport._broker import inbound_queue_name
from tests.cluster_support import UNAVAILABLE, RabbitCluster, rabbit_cluster

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes and their children (the worker processes)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) in pids or int(fields[1]) in pids:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


class _Bench:
    def __init__(self, cluster: RabbitCluster, folder: Path, count: int) -> None:
        self.cluster, self.folder, self.count = cluster, folder, count

    async def setup(self) -> None:
        self.pki = demo_pki(self.folder / "keys", key_type="rsa2048")
        self.broker = RabbitMQBroker(self.cluster.urls())
        await self.broker.connect()
        network = build_demo_network(self.folder / "nodes", self.pki, lambda _n: self.broker)
        for node in network.nodes.values():
            await self.broker.declare_node(node.node_id)
        (self.folder / "network.toml").write_text(network.directory.to_toml(),
                                                  encoding="utf-8")
        self.packages = [network.document("000.00.00.H43", ["000.00.00.H01"],
                                          number=str(i)) for i in range(self.count)]
        self.connection = await aio_pika.connect(self.cluster.urls()[0])
        self.channel = await self.connection.channel(publisher_confirms=True)

    async def close(self) -> None:
        await self.connection.close()
        await self.broker.close()

    async def _depth(self, queue: str) -> int:
        declared = await self.channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)

    def _config(self, name: str, database: str, blobs: str) -> Path:
        return NodeConfig.new(
            "central", self.folder, data=f"var/{name}", database=database, blobs=blobs,
            amqp_url=list(self.cluster.urls()), listen=f"127.0.0.1:{_free_port()}",
            anchors=[self.pki.root_path], crls=[self.pki.crl_folder],
        ).write(self.folder / f"{name}.toml")

    async def hop(self, instances: int, run: int, blobs: str = "database",
                  ) -> tuple[float, float]:
        """Packages per second and CPU milliseconds per package, steady state."""
        for node in ("central", "hanoi"):
            await (await self.channel.get_queue(inbound_queue_name(node))).purge()
        name = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        database = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        try:
            configs = [self._config(f"central-{run}-{instances}-{blobs}-{i}", database, blobs)
                       for i in range(instances)]
            await _fill(self.channel, "docaxis.central", "inbound", self.packages,
                        {"x-docaxis-kind": "package", "x-docaxis-origin": "danang",
                         "x-docaxis-from-node": "danang"})
            env = {**os.environ, "DOCAXIS_LOG_LEVEL": "WARNING"}
            servers = []
            for config in configs:  # the first migrates; the others find the schema
                servers.append(subprocess.Popen(
                    [sys.executable, str(ROOT / "cli.py"), "serve", "--config", str(config)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
            try:
                return await self._steady(inbound_queue_name("hanoi"),
                                          [s.pid for s in servers])
            finally:
                for server in servers:
                    server.terminate()
                for server in servers:
                    server.wait(timeout=60)
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _steady(self, queue: str, pids: list[int],
                      timeout: float = 300) -> tuple[float, float]:
        low, high = self.count // 10, self.count * 9 // 10
        deadline = time.perf_counter() + timeout
        first: tuple[float, int, float] | None = None
        while time.perf_counter() < deadline:
            seen, now = await self._depth(queue), time.perf_counter()
            if first is None and seen >= low:
                first = (now, seen, _cpu_seconds(pids))
            if first is not None and seen >= high:
                packages = seen - first[1]
                return (packages / (now - first[0]),
                        (_cpu_seconds(pids) - first[2]) / packages * 1000)
            await asyncio.sleep(0.005)
        raise TimeoutError("central stalled")


#: (instances, where package bytes are kept)
CANDIDATES = ((1, "database"), (1, "segments"), (2, "database"))


async def _measure(cluster: RabbitCluster, count: int, rounds: int,
                   ) -> dict[tuple[int, str], list[tuple[float, float]]]:
    bench = _Bench(cluster, Path(tempfile.mkdtemp()), count)
    await bench.setup()
    results: dict[tuple[int, str], list[tuple[float, float]]] = {c: [] for c in CANDIDATES}
    try:
        for run in range(rounds):
            for instances, blobs in CANDIDATES:
                results[instances, blobs].append(await bench.hop(instances, run, blobs))
    finally:
        await bench.close()
    return results


def run(quick: bool = False) -> str:
    if UNAVAILABLE is not None:
        return f"### instances\n\n(skipped: {UNAVAILABLE})\n"
    count = 1500 if quick else 3000
    with rabbit_cluster() as cluster:
        results = asyncio.run(_measure(cluster, count, 1 if quick else 3))
    best = {c: max(results[c]) for c in results}
    one, two = results[1, "database"], results[2, "database"]
    each = ", ".join(f"{b[0] / a[0]:.2f}×" for a, b in zip(one, two, strict=True))
    log = ", ".join(f"{d[0] / g[0]:.2f}×" for d, g in zip(one, results[1, "segments"],
                                                          strict=True))
    lines = [f"### one node, one or two instances: PostgreSQL + a three-member RabbitMQ "
             f"cluster, {count} packages\n",
             "| central | per second (best round) | CPU ms per package (that round) "
             "| rounds |", "|---|---:|---:|---|"]
    labels = {(1, "database"): "one instance (`serve`, workers = 1), bytes in PostgreSQL",
              (1, "segments"): "one instance, bytes in its local segment log",
              (2, "database"): "two instances (own data folders and ports), bytes in "
                               "PostgreSQL"}
    for candidate, label in labels.items():
        lines.append(f"| {label} | {best[candidate][0]:,.0f} | {best[candidate][1]:.2f} | "
                     f"{', '.join(f'{r:,.0f}/s' for r, _cpu in results[candidate])} |")
    lines += ["", f"Two instances / one, per round: {each}. Bytes in PostgreSQL / in the "
              f"segment log (one instance), per round: {log}."]
    return "\n".join(lines) + "\n"
