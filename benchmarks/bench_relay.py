"""Relay throughput and latency on the real RabbitMQ (issue #4).

* **hop throughput** — one node (``central``) run as an operator runs it,
  ``docaxis serve --config central.toml --workers N``, consuming ~5 KB signed packages
  from its inbound quorum queue: parse, validate, verify (chain + CRL + signer = From),
  commit to its SQLite store (blob log, log, outbox, events), acknowledge, hand over to
  ``hanoi`` with publisher confirm, mark sent — next to a **raw aio-pika loop** on the
  same broker with the same payloads: consume → publish with confirm → ack.
  Target: ≥ 0.5× of raw.
* **end-to-end latency** of a four-hop route (commune → district → province → central →
  province), every node its own ``docaxis serve`` process, the sending agency's system
  posting to the first node's HTTP API at a steady 20 packages/s: p50/p99 from the
  acceptance at the first node to the recipient's inbox row at the last.

Every throughput is measured the same way: the packages wait in the source queue, the
consumer starts, and the rate is read off the target queue's depth between 10 % and 90 %
of the packages (steady state: process start-up and the last stragglers excluded).
Candidates run interleaved, round by round; the best round of each is reported, and each
round's own ratio beside it.

Needs RabbitMQ and ``rabbitmqctl`` (a vhost of its own, deleted afterwards).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

import aio_pika
import httpx
from sqlalchemy import func, select

from docaxis.node._demo import build_demo_network, demo_pki
from docaxis.node._run import NodeConfig
from docaxis.pki import DevTimestampAuthority, serve_tsa
from docaxis.store import Store
from docaxis.store._models import EventRow, PackageRow
from docaxis.transport import RabbitMQBroker
from docaxis.transport._broker import inbound_queue_name
from docaxis.vxp import VxpClient, hash_file, signed_headers, timestamp

RABBITMQCTL = shutil.which("rabbitmqctl")
WRK = shutil.which("wrk")
#: the document system posting through VXP in the benchmark
VXP_SYSTEM = "BENCH-QLVB"
ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def _vhost() -> str:
    name = f"docaxis-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run([RABBITMQCTL or "", "add_vhost", name], check=True, capture_output=True)
    subprocess.run([RABBITMQCTL or "", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return name


def _acceptance_times(store: Store) -> list[float]:
    """When each package in the store was accepted (seconds since the epoch)."""
    with store.session() as session:
        return [at.timestamp() for at in session.scalars(select(PackageRow.received_at))]


def _logged_times(store: Store) -> list[float]:
    """When each package in the store was logged: the time of its "received" event, which
    a transaction's packages share (:meth:`Store.accept_many` reads the clock once). (A
    package answered from the intake journal keeps the journal's time as its
    ``received_at``.)"""
    with store.session() as session:
        return [at.timestamp() for at in session.scalars(
            select(EventRow.at).where(EventRow.kind == "received"))]


def _per_transaction(logged: list[float]) -> float:
    """Packages per transaction, from the times they were logged (:func:`_logged_times`)."""
    return len(logged) / len(set(logged)) if logged else float("nan")


def _accepted_count(store: Store) -> int:
    """How many packages the store holds: one ``count(*)`` (the benchmark shares the node's
    two cores; reading every row 20 times a second took a third of one)."""
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(PackageRow)) or 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Marks(Generic[T]):
    """A reading of ``read()`` (a clock, a CPU counter) when 10 % and when 90 % of
    ``count`` packages are through: the steady-state window every throughput here uses
    (start-up and the last stragglers excluded)."""

    def __init__(self, count: int, read: Callable[[], T]) -> None:
        self.low, self.high, self.read = count // 10, count * 9 // 10, read
        self._first: tuple[T, int] | None = None
        self._last: tuple[T, int] | None = None

    def seen(self, done: int) -> None:
        """Call as packages get through (``done`` so far)."""
        if self._first is None and done >= self.low:
            self._first = (self.read(), done)
        elif (self._first is not None and self._last is None and done >= self.high
              and done > self._first[1]):
            self._last = (self.read(), done)

    @property
    def complete(self) -> bool:
        return self._last is not None

    def readings(self) -> tuple[tuple[T, int], tuple[T, int]] | None:
        """The two readings and the packages through at each (None if not both)."""
        if self._first is None or self._last is None or self._last[1] == self._first[1]:
            return None
        return self._first, self._last

    def per_package(self: _Marks[float]) -> float:
        """How much ``read()`` grew per package between the two marks (nan if not both)."""
        both = self.readings()
        if both is None:
            return float("nan")
        (first, first_done), (last, last_done) = both
        return (last - first) / (last_done - first_done)


#: who used the machine's cores, as :func:`_cpu_by_group` counts them
CORE_GROUPS = ("node", "broker", "load generator", "benchmark", "kernel threads", "other",
               "idle")


def _cpu_by_group(node: int) -> tuple[float, dict[str, float]]:
    """The clock, and the CPU seconds used so far by each of :data:`CORE_GROUPS`: the node's
    processes (``node`` and its children), RabbitMQ (``beam.smp``), ``wrk``, this
    benchmark, kernel threads (writeback, the file system's journal: children of
    ``kthreadd``), every other process; and the machine's idle time (``/proc/stat``, with
    I/O wait). Linux ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(CORE_GROUPS, 0.0)
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        pid, parent = stat.parent.name, fields[1]
        group = ("node" if str(node) in (pid, parent) else
                 "benchmark" if pid == me else
                 "broker" if name.startswith("beam") else
                 "load generator" if name == "wrk" else
                 "kernel threads" if "2" in (pid, parent) else "other")
        used[group] += (int(fields[11]) + int(fields[12])) / tick
    machine = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    used["idle"] = (int(machine[4]) + int(machine[5])) / tick
    return time.perf_counter(), used


def _cores_window(pid: int, count: int) -> _Marks[tuple[float, dict[str, float]]]:
    """Where the machine's cores went in steady state, node ``pid`` running (see
    :func:`_cores_used`, :func:`_node_cpu_ms`)."""
    return _Marks(count, lambda: _cpu_by_group(pid))


def _cores_used(window: _Marks[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Cores each group kept busy on average between the window's two marks (empty if the
    window did not close)."""
    both = window.readings()
    if both is None:
        return {}
    ((start, first), _), ((end, last), _) = both
    return {group: (last[group] - first[group]) / (end - start) for group in CORE_GROUPS}


def _node_cpu_ms(window: _Marks[tuple[float, dict[str, float]]]) -> float:
    """The CPU (ms) the node's processes spent per package between the window's marks (nan
    if it did not close). CPU time, unlike a rate, does not move with what else the shared
    machine runs at the moment."""
    both = window.readings()
    if both is None:
        return float("nan")
    ((_, first), first_done), ((_, last), last_done) = both
    return (last["node"] - first["node"]) / (last_done - first_done) * 1000


#: seconds between two looks at a queue's depth while a rate is measured: each look is a
#: passive ``queue.declare`` — a round trip costing this process and RabbitMQ CPU on the
#: cores the node is measured on (every 5 ms, as until 2026-12-02: ≈ 0.12 cores of this
#: process alone, a sixteenth of the machine); 20 ms puts each of the two marks within
#: ≈ 0.5 % of a 5,000-package window at 1,000/s
POLL_INTERVAL = 0.02


async def _steady_rate(depth: Callable[[], Awaitable[int]], count: int,
                       timeout: float = 300.0,
                       alive: Callable[[], bool] = lambda: True,
                       progress: Callable[[int], None] = lambda _done: None) -> float:
    """Packages per second arriving in a queue, between 10 % and 90 % of ``count``
    (``progress`` is told each count seen), looked at every :data:`POLL_INTERVAL`."""
    clock = _Marks(count, time.perf_counter)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and alive():
        seen = await depth()
        progress(seen)
        clock.seen(seen)
        if clock.complete:
            return 1 / clock.per_package()
        await asyncio.sleep(POLL_INTERVAL)
    raise TimeoutError("the consumer stalled")


async def _wait_depth(depth: Callable[[], Awaitable[int]], count: int,
                      timeout: float = 60.0) -> None:
    """Wait until a queue holds ``count`` messages."""
    deadline = time.perf_counter() + timeout
    while await depth() < count:
        if time.perf_counter() > deadline:
            raise TimeoutError("the consumer stalled")
        await asyncio.sleep(0.01)


async def _fill(channel: aio_pika.abc.AbstractChannel, exchange: str, routing_key: str,
                packages: list[bytes], headers: dict[str, str]) -> None:
    target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
    for start in range(0, len(packages), 200):
        await asyncio.gather(*(target.publish(
            aio_pika.Message(data, headers=dict(headers), delivery_mode=2),
            routing_key=routing_key) for data in packages[start:start + 200]))


class _Bench:
    """The PKI, packages, directory and broker shared by every round."""

    def __init__(self, url: str, folder: Path, count: int) -> None:
        self.url, self.folder, self.count = url, folder, count
        #: CPU per package (ms) of the node's processes in the last hop or ingress run
        self.last_cpu_ms = float("nan")
        #: 202s per second (acceptances alone, hand-overs not waited for) in the last
        #: ingress run
        self.last_accept_rate = float("nan")
        #: packages per transaction (the node's commit batches) in the last hop or ingress
        #: run: a transaction's packages share its ``received_at``
        self.last_per_transaction = float("nan")
        #: where the machine's cores went in the last hop or ingress run (cores busy, by
        #: group; see :func:`_cpu_by_group`)
        self.last_cores: dict[str, float] = {}

    async def setup(self) -> None:
        self.pki = demo_pki(self.folder / "keys", key_type="rsa2048")
        self.tsa = serve_tsa(DevTimestampAuthority.issue(self.pki.folder))
        self.broker = RabbitMQBroker(self.url)
        await self.broker.connect()
        self.network = build_demo_network(self.folder / "nodes", self.pki, lambda _n: self.broker)
        for node in self.network.nodes.values():
            await self.broker.declare_node(node.node_id)
        (self.folder / "network.toml").write_text(self.network.directory.to_toml(),
                                                  encoding="utf-8")
        # packages from Đà Nẵng to Hà Nội: they cross central, the node measured
        self.packages = [self.network.document("000.00.00.H43", ["000.00.00.H01"],
                                               number=str(i)) for i in range(self.count)]
        # packages of central's own agency, posted to central's API (ingress)
        self.own = [self.network.document("000.00.00.G22", ["000.00.00.H01"],
                                          number=f"I{i}") for i in range(self.count)]
        self.connection = await aio_pika.connect(self.url)
        self.channel = await self.connection.channel(publisher_confirms=True)

    async def close(self) -> None:
        self.tsa.stop()
        await self.connection.close()
        await self.broker.close()

    def node_config(self, node: str, data: str, port: int | None = None, *,
                    chain: bool = True, tsa: str | None = None) -> Path:
        """A node.toml for ``node`` on the benchmark's broker, its store in ``var/<data>``
        (``chain``: the message log chained by hash, the default; ``tsa``: its chain heads
        timestamped by the TSA at that URL every second)."""
        return NodeConfig.new(
            node, self.folder, data=f"var/{data}", amqp_url=self.url,
            listen=f"127.0.0.1:{port or _free_port()}", anchors=[self.pki.root_path],
            crls=[self.pki.crl_folder], log_chain=chain,
            **({"tsa_url": tsa, "tsa_anchors": [self.pki.root_path], "stamp_interval": 1.0}
               if tsa else {})).write(self.folder / f"{data}.toml")

    async def _depth(self, queue: str) -> int:
        declared = await self.channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)

    async def hop(self, workers: int, run: int, *, chain: bool = True,
                  stamped: bool = False) -> float:
        """``docaxis serve`` for central, with ``workers`` consumer processes (``chain``:
        its message log chained by hash, or not — to measure what the chain costs;
        ``stamped``: and its chain heads timestamped every second by the dev TSA)."""
        for node in ("central", "hanoi", "danang"):
            await (await self.channel.get_queue(inbound_queue_name(node))).purge()
        config = self.node_config("central", f"central-{run}-{workers}-{chain}-{stamped}",
                                  chain=chain, tsa=self.tsa.url if stamped else None)
        await _fill(self.channel, "docaxis.central", "inbound", self.packages,
                    {"x-docaxis-kind": "package", "x-docaxis-origin": "danang",
                     "x-docaxis-from-node": "danang"})
        server = _serve(config, workers)
        machine = _cores_window(server.pid, self.count)
        try:
            rate = await _steady_rate(lambda: self._depth(inbound_queue_name("hanoi")),
                                      self.count, alive=lambda: server.poll() is None,
                                      progress=machine.seen)
        except TimeoutError:
            raise _stalled(server) from None
        finally:
            server.terminate()
            server.wait(timeout=60)
        self.last_cpu_ms = _node_cpu_ms(machine)
        self.last_cores = _cores_used(machine)
        store = NodeConfig.load(config).open_store(migrate=False)
        try:
            self.last_per_transaction = _per_transaction(_logged_times(store))
        finally:
            store.close()
        return rate

    async def ingress(self, workers: int, run: int, in_flight: int = 16,
                      protocol: str = "rest") -> float:
        """``POST /v1/packages`` (``protocol`` "rest") or VXP ``sendEdoc`` ("vxp", signed
        headers and ``hash-file`` as the SDK sends them) to central's API (``docaxis serve
        --workers N``), with ``in_flight`` requests at a time from ``wrk`` (a C load
        generator: a Python client on the same two cores would take the CPU the node is
        measured on; without wrk, an httpx client). Packages per second accepted **and
        handed over** — arriving in the next node's queue, between 10 % and 90 % of the
        packages: the hop's own rule, so that a node that answered 202 faster than it
        forwards is not counted faster than it is. The rate of 202s alone (the store's
        acceptance times) is kept in :attr:`last_accept_rate`."""
        for node in ("central", "hanoi", "danang"):
            await (await self.channel.get_queue(inbound_queue_name(node))).purge()
        port = _free_port()
        config = self.node_config("central", f"central-{protocol}-{run}-{workers}-{in_flight}",
                                  port)
        node_config = NodeConfig.load(config)
        store = node_config.open_store()
        if protocol == "vxp":
            token = node_config.systems(store).issue(VXP_SYSTEM, agencies=("000.00.00.G22",))
        else:
            token = store.issue_credential("000.00.00.G22")
        server = _serve(config, workers)
        base = f"http://127.0.0.1:{port}"
        machine = _cores_window(server.pid, self.count)
        forwarded: asyncio.Task[float] | None = None
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                await _wait_up(client, f"{base}/health", processes=workers)
                forwarded = asyncio.create_task(_steady_rate(
                    lambda: self._depth(inbound_queue_name("hanoi")), self.count,
                    alive=lambda: server.poll() is None,
                    progress=machine.seen))
                if WRK is not None:
                    await self._post_with_wrk(base, token, in_flight, store, protocol)
                elif protocol == "vxp":
                    await self._send_with_vxp_client(base, token, in_flight)
                else:
                    await self._post_with_httpx(client, base, token, in_flight)
            try:
                rate = await forwarded
            except TimeoutError:
                raise _stalled(server) from None
            accepted = sorted(_acceptance_times(store))
            logged = _logged_times(store)
        finally:
            if forwarded is not None:
                forwarded.cancel()
            server.terminate()
            server.wait(timeout=60)
            store.close()
        self.last_cpu_ms = _node_cpu_ms(machine)
        self.last_cores = _cores_used(machine)
        if len(accepted) < self.count:
            raise RuntimeError(f"{len(accepted)} of {self.count} packages accepted")
        self.last_per_transaction = _per_transaction(logged)
        low, high = int(len(accepted) * 0.1), int(len(accepted) * 0.9)
        self.last_accept_rate = (high - low) / (accepted[high] - accepted[low])
        return rate

    async def _post_with_wrk(self, base: str, token: str, in_flight: int,
                             store: Store, protocol: str = "rest") -> None:
        folder = self.folder / f"own-{protocol}"
        folder.mkdir(exist_ok=True)
        for index, data in enumerate(self.own):
            if protocol == "vxp":  # as the SDK sends it: the file, CRLF, signed headers
                (folder / f"{index}.xml").write_bytes(data + b"\r\n")
                headers = signed_headers(VXP_SYSTEM, token, {
                    "from": "000.00.00.G22", "servicetype": "eDoc", "messagetype": "edoc",
                    "hash-file": hash_file(data)}, content_type="application/octet-stream",
                    stamp=timestamp())
                (folder / f"{index}.hdr").write_text(
                    "".join(f"{name}: {value}\n" for name, value in headers), encoding="utf-8")
            else:
                (folder / f"{index}.xml").write_bytes(data)
        threads = 2
        extra = ["-", str(threads), "/vxp/sendEdoc"] if protocol == "vxp" else [token,
                                                                               str(threads)]
        wrk = subprocess.Popen([WRK or "", f"-t{threads}", f"-c{in_flight}", "-d600s",
                                "-s", str(ROOT / "benchmarks" / "post_packages.lua"), base,
                                "--", str(folder), str(self.count), *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:  # until every package is accepted, or none more for 2 s (a refusal: reported)
            deadline, last, since = time.perf_counter() + 300, -1, time.perf_counter()
            while (seen := _accepted_count(store)) < self.count:
                now = time.perf_counter()
                if seen != last:
                    last, since = seen, now
                if wrk.poll() is not None or now > deadline or (seen and now - since > 2):
                    break
                await asyncio.sleep(0.2)
        finally:
            wrk.send_signal(signal.SIGINT)  # wrk reports (its done()) on SIGINT
            try:
                out, err = wrk.communicate(timeout=30)
            except subprocess.TimeoutExpired:  # a wrk whose node is gone can spin on
                wrk.kill()  # reconnecting and miss SIGINT: never leave it eating a core
                out, err = wrk.communicate()
        if seen < self.count:
            raise RuntimeError(f"{seen} of {self.count} packages accepted; wrk said: "
                               f"{out.decode()[-500:]} {err.decode()[-1500:]}")

    async def _post_with_httpx(self, client: httpx.AsyncClient, base: str, token: str,
                               in_flight: int) -> None:
        packages = iter(self.own)

        async def post_all() -> None:
            for data in packages:
                answer = await client.post(f"{base}/v1/packages", content=data,
                                           headers={"Authorization": f"Bearer {token}"})
                answer.raise_for_status()

        await asyncio.gather(*(post_all() for _ in range(in_flight)))

    async def _send_with_vxp_client(self, base: str, secret: str, in_flight: int) -> None:
        packages = iter(self.own)

        async def send_all() -> None:
            async with VxpClient(f"{base}/vxp", VXP_SYSTEM, secret) as client:
                for data in packages:
                    answer = await client.send_edoc(data, sender="000.00.00.G22")
                    if answer["status"] != "OK":
                        raise RuntimeError(f"sendEdoc answered {answer}")

        await asyncio.gather(*(send_all() for _ in range(in_flight)))

    async def raw(self) -> float:
        """Raw aio-pika: consume → publish with confirm → ack, same payloads, same prefetch."""
        channel = await self.connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=256)
        source = await channel.declare_queue("raw.source", durable=True,
                                             arguments={"x-queue-type": "quorum"})
        target = await channel.declare_queue("raw.target", durable=True,
                                             arguments={"x-queue-type": "quorum"})
        await target.purge()
        await _fill(self.channel, "", "raw.source", self.packages, {})

        async def relay(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            await channel.default_exchange.publish(
                aio_pika.Message(incoming.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="raw.target")
            await incoming.ack()

        tag = await source.consume(relay)
        try:
            rate = await _steady_rate(lambda: self._depth("raw.target"), self.count)
            # let the stragglers finish: closing the channel under a running publish
            # breaks the connection the next candidate uses
            await _wait_depth(lambda: self._depth("raw.target"), self.count)
        finally:
            await source.cancel(tag)
            await channel.close()
        return rate


@dataclasses.dataclass
class _Rounds:
    """What every round measured, by candidate: its rate; and, for a node candidate, the
    CPU per package (ms) of the node's processes, the packages per transaction, where the
    machine's cores went (:func:`_cores_used`), and for an ingress candidate the rate of
    202s alone."""

    rates: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    cpu: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    accepted: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    batches: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    cores: dict[str, list[dict[str, float]]] = dataclasses.field(default_factory=dict)


async def _hop(bench: _Bench, rounds: int, workers: tuple[int, ...]) -> _Rounds:
    """Every candidate once per round, interleaved."""
    measured = _Rounds()
    for run in range(rounds):
        candidates: dict[str, Callable[[], Awaitable[float]]] = {"raw": bench.raw}
        for n in workers:
            # each run next to the one it is compared with — stamped and chained next to
            # unchained, the API's right after the hop: this machine's speed moves by up
            # to 2x within minutes, and a ratio of two runs carries what moved between them
            candidates[f"stamped workers={n}"] = lambda n=n, run=run: bench.hop(
                n, run, stamped=True)
            candidates[f"unchained workers={n}"] = lambda n=n, run=run: bench.hop(
                n, run, chain=False)
            candidates[f"workers={n}"] = lambda n=n, run=run: bench.hop(n, run)
            candidates[f"ingress workers={n}"] = lambda n=n, run=run: bench.ingress(n, run)
            candidates[f"ingress64 workers={n}"] = lambda n=n, run=run: bench.ingress(
                n, run, in_flight=64)
            candidates[f"vxp workers={n}"] = lambda n=n, run=run: bench.ingress(
                n, run, protocol="vxp")
        for name, measure in candidates.items():
            bench.last_cpu_ms = bench.last_accept_rate = float("nan")
            bench.last_per_transaction = float("nan")
            bench.last_cores = {}
            measured.rates.setdefault(name, []).append(await measure())
            measured.cpu.setdefault(name, []).append(bench.last_cpu_ms)
            measured.accepted.setdefault(name, []).append(bench.last_accept_rate)
            measured.batches.setdefault(name, []).append(bench.last_per_transaction)
            measured.cores.setdefault(name, []).append(bench.last_cores)
    return measured


def _each_round(ours: list[float], theirs: list[float]) -> str:
    """Each round's ratio, and their median: on a shared machine one round's ratio moves by
    ±0.15, and the ratio of the best rounds is the kind side of it."""
    ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
    return (", ".join(f"{r:.2f}×" for r in ratios)
            + (f" (median {statistics.median(ratios):.2f}×)" if len(ratios) > 1 else ""))


def _median_cores(rounds: list[dict[str, float]], group: str) -> str:
    """The median over rounds of the cores ``group`` kept busy ("–" if no round said)."""
    said = [used[group] for used in rounds if group in used]
    return f"{statistics.median(said):.2f}" if said else "–"


def _side_by_side(rates: dict[str, list[float]], workers: tuple[int, ...], measured: str,
                  against: str) -> list[str]:
    """Table rows: per worker count, the best rounds of two candidates and their ratios
    (of the best rounds; of each round, and the median of those)."""
    rows = []
    for n in workers:
        ours, theirs = rates[measured.format(n=n)], rates[against.format(n=n)]
        each = _each_round(ours, theirs)
        rows.append(f"| {n} | {max(ours):,.0f}/s | {max(theirs):,.0f}/s | "
                    f"{max(ours) / max(theirs):.2f}× | {each} |")
    return rows


class _Node(subprocess.Popen[bytes]):
    """A ``docaxis serve`` process whose stderr is read as it is written, the last
    :attr:`TAIL` bytes kept: a node that logs an error per request (a store that refuses
    every commit) would otherwise fill an unread pipe and hang on its next log line —
    seen here, a round that neither finished nor stopped on SIGTERM."""

    TAIL = 64 * 1024

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        super().__init__(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self._tail: collections.deque[bytes] = collections.deque()
        self._kept = 0
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.stderr is not None
        for line in self.stderr:
            with self._lock:
                self._tail.append(line)
                self._kept += len(line)
                while self._kept > self.TAIL and len(self._tail) > 1:
                    self._kept -= len(self._tail.popleft())

    def tail(self) -> str:
        """What the node logged last (all of it, once it has exited)."""
        if self.poll() is not None:
            self._reader.join(timeout=5)
        with self._lock:
            return b"".join(self._tail).decode(errors="replace")


def _stalled(server: _Node) -> TimeoutError:
    """A round that stalled, saying what the node logged (it is stopped first)."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    return TimeoutError(server.tail()[-3000:])


def _serve(config: Path, workers: int = 1) -> _Node:
    # warnings only: the per-package events (INFO) are not what a benchmark reads
    env = {**os.environ, "DOCAXIS_LOG_LEVEL": "WARNING"}
    return _Node([sys.executable, str(ROOT / "cli.py"), "serve", "--config", str(config),
                  "--workers", str(workers)], env)


#: commune → district → province → central → province: four hops
ROUTE = ("hoatien", "hoavang", "danang", "central", "hanoi")
SENDER, RECIPIENT = "000.01.05.H43", "000.00.00.H01"


async def _latency(bench: _Bench, count: int, rate: float) -> list[float]:
    """Each node of the route is its own ``docaxis serve`` process, as deployed; the sending
    agency's system posts to the first node's API at a steady rate. Latency: from the
    acceptance at the first node to the recipient's inbox row at the last (one clock)."""
    ports = {node: _free_port() for node in ROUTE}
    configs = {node: bench.node_config(node, f"latency-{node}", ports[node]) for node in ROUTE}
    store = NodeConfig.load(configs[ROUTE[0]]).open_store()
    token = store.issue_credential(SENDER)
    store.close()
    packages = [bench.network.document(SENDER, [RECIPIENT], number=f"L{i}")
                for i in range(count)]
    for node in ROUTE:  # the throughput rounds left packages in hanoi's queue
        await (await bench.channel.get_queue(inbound_queue_name(node))).purge()
    servers = [_serve(configs[node]) for node in ROUTE]
    target = NodeConfig.load(configs[ROUTE[-1]]).open_store()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for node in ROUTE:
                await _wait_up(client, f"http://127.0.0.1:{ports[node]}/openapi.json")
            accepted: dict[str, float] = {}
            start = time.perf_counter()
            for i, data in enumerate(packages):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                answer = await client.post(
                    f"http://127.0.0.1:{ports[ROUTE[0]]}/v1/packages", content=data,
                    headers={"Authorization": f"Bearer {token}"})
                answer.raise_for_status()
                body = answer.json()
                accepted[body["sha256"]] = dt.datetime.fromisoformat(
                    body["accepted_at"]).timestamp()
        deadline = time.perf_counter() + 120
        while len(inbox := target.inbox(RECIPIENT)) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(inbox)} of {count} delivered")
            await asyncio.sleep(0.05)
        return [item.created_at.timestamp() - accepted[item.sha256] for item in inbox]
    finally:
        target.close()
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=60)


async def _wait_up(client: httpx.AsyncClient, url: str, timeout: float = 60,
                   processes: int = 1) -> None:
    """Wait until ``url`` answers 200 — from ``processes`` different processes (a node's
    workers each answer on the same port: each must be listening before the load
    starts, or the load generator's connections all go to the first)."""
    deadline = time.perf_counter() + timeout
    seen: set[int] = set()
    while True:
        try:
            answer = await client.get(url, headers={"Connection": "close"})
            if answer.status_code == 200:
                seen.add(answer.json().get("process", 0) if processes > 1 else 0)
                if len(seen) >= processes:
                    return
                continue
        except httpx.HTTPError:
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{url} did not come up ({len(seen)} of {processes} "
                               "processes answered)")
        await asyncio.sleep(0.1)


async def _measure(url: str, folder: Path, count: int, rounds: int, workers: tuple[int, ...],
                   latency_count: int) -> tuple[_Rounds, list[float]]:
    bench = _Bench(url, folder, count)
    await bench.setup()
    try:
        measured = await _hop(bench, rounds, workers)
        latencies = await _latency(bench, latency_count, rate=20.0)
    finally:
        await bench.close()
    return measured, latencies


def run(quick: bool = False) -> str:
    if RABBITMQCTL is None:
        return "### relay\n\n(skipped: RabbitMQ is not installed here)\n"
    vhost = _vhost()
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    workers = (1, 2)
    count = 2000 if quick else 5000
    try:
        measured, latencies = asyncio.run(_measure(
            url, Path(tempfile.mkdtemp()), count, 1 if quick else 3, workers,
            50 if quick else 200))
    finally:
        subprocess.run([RABBITMQCTL, "delete_vhost", vhost], check=False, capture_output=True)
    rates, cpu, accepted, batches = (measured.rates, measured.cpu, measured.accepted,
                                     measured.batches)
    p50 = statistics.median(latencies) * 1000
    p99 = sorted(latencies)[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    raw = max(rates["raw"])
    lines = [f"### hop throughput, ~5 KB signed packages, {count} packages, steady state\n",
             "| candidate | per second (best round) | ratio to baseline | ratio in each round |",
             "|---|---:|---:|---|",
             f"| raw aio-pika consume → publish (confirm) → ack (baseline) | {raw:,.0f} | 1.00× "
             f"| {', '.join(f'{r:,.0f}/s' for r in rates['raw'])} |"]
    for n in workers:
        ours = rates[f"workers={n}"]
        each = _each_round(ours, rates["raw"])
        lines.append(f"| docaxis serve --workers {n} (verify, store, confirmed hand-over, ack) "
                     f"| {max(ours):,.0f} | {max(ours) / raw:.2f}× | {each} |")
    lines += ["", f"### the message log chained by hash: hop with it and without, {count} "
              "packages", "", "| workers | chained (best round) | unchained (best round) "
              "| chained / unchained | in each round |", "|---|---:|---:|---:|---|"]
    lines += _side_by_side(rates, workers, "workers={n}", "unchained workers={n}")
    lines += ["", f"### chained and timestamped (RFC 3161, dev TSA, a stamp a second) against "
              f"neither, hop, {count} packages", "", "| workers | chained + stamped (best "
              "round) | unchained (best round) | stamped / unchained | in each round |",
              "|---|---:|---:|---:|---|"]
    lines += _side_by_side(rates, workers, "stamped workers={n}", "unchained workers={n}")
    lines += ["", f"### API ingress next to the hop, the same node (central), {count} packages",
              "", "Both counted where the hop is counted: arriving in the next node's queue "
              "(accepted, logged and handed over). The last column is the rate of 202s "
              "alone.", "",
              f"| workers | POST /v1/packages, 16 in flight from {'wrk' if WRK else 'httpx'} "
              "(best round) | hop (best round) "
              "| ingress / hop | ingress / hop in each round | 202s per second in each round |",
              "|---|---:|---:|---:|---|---|"]
    lines += [row + " " + ", ".join(f"{a:,.0f}/s" for a in accepted[f"ingress workers={n}"])
              + " |" for n, row in zip(workers, _side_by_side(
                  rates, workers, "ingress workers={n}", "workers={n}"), strict=True)]
    lines += ["", "The same with 64 requests in flight (more agency systems posting at "
              "once: each process's batches and transactions grow with them):", "",
              "| workers | POST /v1/packages, 64 in flight (best round) | hop (best round) "
              "| ingress / hop | ingress / hop in each round |", "|---|---:|---:|---:|---|"]
    lines += _side_by_side(rates, workers, "ingress64 workers={n}", "workers={n}")
    lines += ["", "### CPU per package of the node's processes, steady state (10–90 %), the "
              "same runs", "", "| workers | POST /v1/packages (best round) | hop (best round) "
              "| ingress / hop | ingress / hop in each round |", "|---|---:|---:|---:|---|"]
    for n in workers:
        ours, theirs = cpu[f"ingress workers={n}"], cpu[f"workers={n}"]
        each = _each_round(ours, theirs)
        lines.append(f"| {n} | {min(ours):.2f} ms | {min(theirs):.2f} ms | "
                     f"{min(ours) / min(theirs):.2f}× | {each} |")
    lines += ["", "### packages per transaction (how the node grouped its commits), the same "
              "runs", "", "A hop drains a backlog: each process takes up to its batch "
              "(`prefetch`) at once. An API process groups what is in flight to it: 16 "
              "requests over two processes are 8 each at most.", "",
              "| workers | POST /v1/packages, 16 in flight (median round) | 64 in flight | hop | "
              "in each round (16 / 64 / hop) |", "|---|---:|---:|---:|---|"]
    for n in workers:
        rounds = zip(batches[f"ingress workers={n}"], batches[f"ingress64 workers={n}"],
                     batches[f"workers={n}"], strict=True)
        lines.append(f"| {n} | {statistics.median(batches[f'ingress workers={n}']):.1f} "
                     f"| {statistics.median(batches[f'ingress64 workers={n}']):.1f} "
                     f"| {statistics.median(batches[f'workers={n}']):.1f} | "
                     + ", ".join(f"{a:.1f} / {b:.1f} / {c:.1f}" for a, b, c in rounds) + " |")
    lines += ["", "### where the machine's cores went, the same runs (cores busy on average, "
              "steady state, median round)", "", "All that runs on the machine, by who ran "
              "it: the node's processes, RabbitMQ, the load generator (wrk), this benchmark "
              "(its queue-depth polling), kernel threads (page writeback, the file system's "
              "journal), anything else; and what stayed idle.", "",
              "| candidate | " + " | ".join(CORE_GROUPS) + " |",
              "|---|" + "---:|" * len(CORE_GROUPS)]
    for n in workers:
        for label, name in ((f"hop, workers = {n}", f"workers={n}"),
                            (f"POST, 16 in flight, workers = {n}", f"ingress workers={n}"),
                            (f"POST, 64 in flight, workers = {n}", f"ingress64 workers={n}")):
            lines.append(f"| {label} | " + " | ".join(
                _median_cores(measured.cores[name], group) for group in CORE_GROUPS) + " |")
    lines += ["", f"### VXP sendEdoc next to POST /v1/packages, the same node, {count} packages",
              "", f"| workers | sendEdoc, 16 in flight from {'wrk' if WRK else 'VxpClient'} "
              "(best round) | POST /v1/packages (best round) | sendEdoc / POST "
              "| in each round |", "|---|---:|---:|---:|---|"]
    lines += _side_by_side(rates, workers, "vxp workers={n}", "ingress workers={n}")
    return "\n".join(lines) + (
        f"\n\n### end-to-end latency, four hops, {len(latencies)} packages at 20/s, "
        "each node its own process\n\n"
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms\n")
