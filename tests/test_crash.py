"""Crash tests: nodes are real processes on the real broker, killed with SIGKILL at each
point of the pipeline and restarted; every package reaches the recipient's inbox exactly
once. The broker connection is dropped mid-run too."""

from __future__ import annotations

import collections
import datetime as dt
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from docaxis.dsig import Signer
from docaxis.edxml import DocumentBuilder, ParseLimits, write
from docaxis.node import NodeConfig
from docaxis.pki import DevPKI
from docaxis.store import Store
from tests.relay_support import free_port, organization, private_vhost, stop_processes

ROOT = Path(__file__).resolve().parents[1]
RABBITMQCTL = shutil.which("rabbitmqctl")
pytestmark = pytest.mark.skipif(RABBITMQCTL is None, reason="needs RabbitMQ (.ci/run starts it)")
SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"
_LARGE = ParseLimits(max_bytes=64 << 20)



def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    """Poll a condition until it holds (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Cluster:
    folder: Path
    vhost: str
    pki: DevPKI
    ports: dict[str, int]
    tokens: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def config(self, node: str) -> Path:
        return self.folder / f"{node}.toml"

    def start(self, node: str, fault: str | None = None, workers: int = 1,
              wrap: list[str] | None = None) -> None:
        """Start ``docaxis serve`` for ``node`` (``wrap``: a command it runs under, such
        as ``unshare`` for a process table and hostname of its own)."""
        env = dict(os.environ)
        if fault:
            env["DOCAXIS_FAULT"] = fault
            env["DOCAXIS_FAULT_ONCE"] = str(self.folder / f"{node}-{fault}.fired")
        log = self.folder / f"{node}.log"  # a file, not a pipe: a full pipe would block it
        with log.open("ab") as stderr:
            self.processes[node] = subprocess.Popen(
                [*(wrap or []), sys.executable, str(ROOT / "cli.py"), "serve", "--config",
                 str(self.config(node)), "--workers", str(workers)],
                env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        url = f"http://127.0.0.1:{self.ports[node]}/openapi.json"

        def up() -> bool:
            assert self.processes[node].poll() is None, log.read_text(errors="replace")
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, f"node {node} to start")

    def workers(self, node: str) -> list[int]:
        """The pids of the worker processes ``serve --workers N`` started for ``node``."""
        parent, found = self.processes[node].pid, []
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == parent and b"spawn_main" in command:
                found.append(int(entry.name))
        return sorted(found)

    def died(self, node: str) -> bool:
        return self.processes[node].poll() is not None

    def stop_all(self) -> None:
        stop_processes(self.processes.values())

    def post(self, data: bytes) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.ports['danang']}/v1/packages", content=data,
                          headers={"Authorization": f"Bearer {self.tokens[SENDER]}"}, timeout=30)

    def store(self, node: str) -> Store:
        return Store(f"sqlite:///{self.folder / 'var' / node / 'node.db'}",
                     self.folder / "var" / node / "blobs")

    def delivered(self) -> int:
        store = self.store("hanoi")
        try:
            return len(store.inbox(RECIPIENT, include_acknowledged=True))
        finally:
            store.close()

    def settled(self) -> bool:
        """No outbox row pending anywhere and no message left in any node's queue."""
        for node in self.ports:
            store = self.store(node)
            try:
                if store.pending_outbox():
                    return False
            finally:
                store.close()
        listing = subprocess.run([RABBITMQCTL or "", "list_queues", "-q", "-p", self.vhost,
                                  "name", "messages"], capture_output=True, text=True,
                                 check=True).stdout
        counts = [line.split() for line in listing.splitlines() if ".inbound" in line
                  and ".retry." not in line and ".delay." not in line and ".parked" not in line]
        return all(parts[-1] == "0" for parts in counts)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with private_vhost("docaxis-crash") as vhost:
        yield from _cluster(tmp_path, vhost)


def _cluster(tmp_path: Path, vhost: str) -> Iterator[Cluster]:
    pki = DevPKI.init(tmp_path / "keys", key_type="ec-p256")
    pki.issue_agency(SENDER, "UBND TP Đà Nẵng", key_type="ec-p256")
    pki.issue_agency(RECIPIENT, "UBND TP Hà Nội", key_type="ec-p256")
    (tmp_path / "network.toml").write_text(
        '[node.central]\ntier = "central"\n'
        '[node.danang]\ntier = "province"\nparent = "central"\n'
        '[node.hanoi]\ntier = "province"\nparent = "central"\n'
        f'[[agency]]\ncode = "{SENDER}"\nname = "UBND TP Đà Nẵng"\nnode = "danang"\n'
        f'[[agency]]\ncode = "{RECIPIENT}"\nname = "UBND TP Hà Nội"\nnode = "hanoi"\n',
        encoding="utf-8")
    ports = {node: free_port() for node in ("central", "danang", "hanoi")}
    cluster = Cluster(tmp_path, vhost, pki, ports)
    for node, port in ports.items():
        NodeConfig.new(node, tmp_path, amqp_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                       listen=f"127.0.0.1:{port}", anchors=["keys/root/ca.pem"],
                       crls=["keys/crl"]).write(cluster.config(node))
    store = cluster.store("danang")
    store.migrate()
    cluster.tokens[SENDER] = store.issue_credential(SENDER)
    store.close()
    yield cluster
    cluster.stop_all()


def _package(pki: DevPKI, number: str) -> bytes:
    key, _cert, chain = pki.agency_paths(SENDER)
    package = (DocumentBuilder().sender(organization(SENDER)).recipient(organization(RECIPIENT))
               .code(number, "UBND").promulgation(dt.date(2024, 5, 2))
               .document_type(1, "Công văn").subject(f"V/v kiểm thử sự cố {number}")
               .attach("a.pdf", b"%PDF " * 200).build())
    return Signer.from_files(key, chain).sign(write(package))


@pytest.mark.parametrize(("node", "fault"), [("danang", "api-commit"),
                                             ("danang", "after-commit"),
                                             ("danang", "after-publish"),
                                             ("central", "while-consuming")])
def test_sigkill_at_each_point_loses_nothing_and_doubles_nothing(
    cluster: Cluster, node: str, fault: str,
) -> None:
    """At ``api-commit`` the post was answered from the intake journal and the process
    died before its transaction: the restarted node logs it before it serves (the
    retry is a duplicate) and delivers it once."""
    for name in ("central", "danang", "hanoi"):
        cluster.start(name, fault if name == node else None)
    package = _package(cluster.pki, "41")
    try:
        first = cluster.post(package)
        answered = first.status_code == 202
    except httpx.HTTPError:
        answered = False  # killed before answering: the sender retries
    if fault == "api-commit":
        assert answered  # the answer went out before the transaction was tried
    wait_until(lambda: cluster.died(node), 60, f"{node} to die at {fault}")
    assert cluster.processes[node].returncode == -signal.SIGKILL
    cluster.start(node)  # restarted without the fault
    retry = cluster.post(package)
    assert retry.status_code == 202
    if answered:
        assert retry.json()["duplicate"] is True
    wait_until(lambda: cluster.delivered() >= 1, 60, "delivery")
    wait_until(cluster.settled, 60, "every outbox and queue to drain")
    assert cluster.delivered() == 1


def test_broker_connection_dropped_mid_run(cluster: Cluster) -> None:
    for name in ("central", "danang", "hanoi"):
        cluster.start(name)
    assert cluster.post(_package(cluster.pki, "51")).status_code == 202
    wait_until(lambda: cluster.delivered() == 1, 60, "first delivery")
    subprocess.run([RABBITMQCTL or "", "close_all_connections", "-p", cluster.vhost,
                    "docaxis crash test"], check=True, capture_output=True)
    assert cluster.post(_package(cluster.pki, "52")).status_code == 202
    wait_until(lambda: cluster.delivered() == 2, 90, "delivery after the reconnect")
    wait_until(cluster.settled, 60, "every outbox and queue to drain")
    assert cluster.delivered() == 2


def test_a_node_with_two_worker_processes_delivers_each_package_once(cluster: Cluster) -> None:
    """``serve --workers 2``: two competing consumers on central's queue and one store."""
    cluster.start("central", workers=2)
    for name in ("danang", "hanoi"):
        cluster.start(name)
    for number in range(40):
        assert cluster.post(_package(cluster.pki, f"7{number}")).status_code == 202
    wait_until(lambda: cluster.delivered() == 40, 90, "40 deliveries")
    wait_until(cluster.settled, 60, "every outbox and queue to drain")
    assert cluster.delivered() == 40
    # both processes committed packages: each appends to a blob segment of its own
    segments = list((cluster.folder / "var" / "central" / "blobs" / "segments").glob("*.seg"))
    writers = {path.stem.split("-")[1] for path in segments if path.stat().st_size > 0}
    assert len(writers) == 2, segments


def test_a_killed_worker_process_is_replaced_and_nothing_is_lost_or_doubled(
    cluster: Cluster,
) -> None:
    cluster.start("central", workers=2)
    for name in ("danang", "hanoi"):
        cluster.start(name)
    wait_until(lambda: len(cluster.workers("central")) == 1, 30, "central's second worker")
    [worker] = cluster.workers("central")
    for number in range(40):
        assert cluster.post(_package(cluster.pki, f"8{number}")).status_code == 202
        if number == 10:
            os.kill(worker, signal.SIGKILL)  # mid-stream: whatever it held is redelivered
    wait_until(lambda: cluster.workers("central") not in ([], [worker]), 30,
               "a new worker in place of the killed one")
    wait_until(lambda: cluster.delivered() == 40, 90, "40 deliveries")
    wait_until(cluster.settled, 60, "every outbox and queue to drain")
    assert cluster.delivered() == 40
    assert not cluster.died("central")


def test_every_worker_process_answers_the_api_and_metrics_sum_over_them(
    cluster: Cluster,
) -> None:
    """``serve --workers 2``: both processes accept packages over HTTP on the node's one
    port (each its own ``SO_REUSEPORT`` socket), and ``/metrics`` — whichever process
    answers — counts what both accepted."""
    for name in ("central", "hanoi"):
        cluster.start(name)
    cluster.start("danang", workers=2)
    base = f"http://127.0.0.1:{cluster.ports['danang']}"
    answered: set[int] = set()

    def both_answer() -> bool:  # a new connection each time: the kernel picks a socket
        answer = httpx.get(f"{base}/health", headers={"Connection": "close"}, timeout=5)
        answered.add(answer.json()["process"])
        return len(answered) == 2

    wait_until(both_answer, 60, "both processes to answer /health")
    packages = [_package(cluster.pki, f"9{number}") for number in range(30)]
    with httpx.Client(timeout=30) as client:  # several connections, spread over both
        for start in range(0, len(packages), 3):
            for data in packages[start:start + 3]:
                answer = httpx.post(f"{base}/v1/packages", content=data, timeout=30, headers={
                    "Authorization": f"Bearer {cluster.tokens[SENDER]}",
                    "Connection": "close"})
                assert answer.status_code == 202, answer.text
        segments = list((cluster.folder / "var" / "danang" / "blobs" / "segments")
                        .glob("*.seg"))
        writers = {path.stem.split("-")[1] for path in segments if path.stat().st_size > 0}
        assert len(writers) == 2, "one process accepted every package"
        for _ in range(4):  # each scrape, from either process, sums both
            metrics = client.get(f"{base}/metrics", headers={"Connection": "close"}).text
            assert 'docaxis_packages_accepted_total{path="api"} 30.0' in metrics, metrics
    wait_until(lambda: cluster.delivered() == 30, 90, "30 deliveries")


def test_kept_alive_connections_spread_evenly_over_the_worker_processes(
    cluster: Cluster,
) -> None:
    """``serve --workers 2`` with 16 kept-alive connections placed 12 / 4 on its two
    processes (the kernel's ``SO_REUSEPORT`` hash leaves such splits as they fall): the
    process over its share answers ``Connection: close`` until each holds 8, and the
    reconnections are counted in ``/metrics``. Without the balancing the split stays 12 / 4
    for as long as the clients keep their connections."""
    cluster.start("danang", workers=2)
    port = cluster.ports["danang"]

    def health(connection: http.client.HTTPConnection) -> tuple[int, bool]:
        """The process that answered, and whether it asked for a new connection."""
        connection.request("GET", "/health")
        answer = connection.getresponse()
        process = json.loads(answer.read())["process"]
        return process, (answer.getheader("connection") or "").lower() == "close"

    answered: set[int] = set()

    def both_answer() -> bool:  # a new connection each time: the kernel picks a socket
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        answered.add(health(connection)[0])
        connection.close()
        return len(answered) == 2

    wait_until(both_answer, 60, "both processes to answer /health")
    quota: dict[int, int] = {}  # the first process seen gets 12, the other 4
    kept: list[http.client.HTTPConnection] = []
    for _ in range(500):
        if len(kept) == 16:
            break
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        process, _closing = health(connection)
        quota.setdefault(process, 12 if not quota else 4)
        if quota[process] > 0:
            quota[process] -= 1
            kept.append(connection)
        else:
            connection.close()
    assert len(kept) == 16 and len(quota) == 2, quota

    def even() -> bool:  # one request on each connection (reopened when it was closed)
        answers = [health(connection) for connection in kept]
        held = collections.Counter(process for process, _ in answers)
        return sorted(held.values()) == [8, 8] and not any(c for _, c in answers)

    try:
        wait_until(even, 60, "8 connections on each process")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        rebalanced = [line for line in metrics.splitlines()
                      if line.startswith("docaxis_connections_rebalanced_total ")]
        assert rebalanced and float(rebalanced[0].split()[1]) >= 4, rebalanced
    finally:
        for connection in kept:
            connection.close()


def test_a_hung_worker_gives_its_deliveries_back_within_the_heartbeat_bound(
    cluster: Cluster,
) -> None:
    """Issue #12, item 5: a frozen process (SIGSTOP) of a node holds what it had been
    delivered only until RabbitMQ misses two of its heartbeats (``[node] heartbeat``,
    here 2 s: about 4–6 s); its peer then delivers all of it, and nothing twice after it
    wakes up. With aio-pika's 60 s default this waited minutes (165 s measured)."""
    config = cluster.config("central")
    config.write_text(config.read_text().replace("[trust]", "heartbeat = 2\nprefetch = 16\n"
                                                            "[trust]"), encoding="utf-8")
    cluster.start("central", workers=2)
    for name in ("danang", "hanoi"):
        cluster.start(name)
    wait_until(lambda: len(cluster.workers("central")) == 1, 30, "central's second worker")
    [worker] = cluster.workers("central")
    os.kill(worker, signal.SIGSTOP)
    try:
        started = time.monotonic()
        for number in range(40):
            assert cluster.post(_package(cluster.pki, f"H{number}")).status_code == 202
        wait_until(lambda: cluster.delivered() == 40, 30, "40 deliveries past the hung worker")
        recovery = time.monotonic() - started
    finally:
        os.kill(worker, signal.SIGCONT)
    wait_until(cluster.settled, 60, "every outbox and queue to drain")
    assert cluster.delivered() == 40
    print(f"all 40 delivered {recovery:.1f} s after the first post, one worker frozen")


UNSHARE = shutil.which("unshare")


def _two_instances(cluster: Cluster, node: str, url: str, **settings: int) -> None:
    """``<node>.toml`` and ``<node>-b.toml``: two instances of ``node`` on the PostgreSQL
    database ``url``, with their own data folders and ports (lease 2 s; ``settings``: more
    of :class:`NodeConfig`'s)."""
    cluster.ports[f"{node}-b"] = free_port()
    for instance, data in ((node, f"{node}-a"), (f"{node}-b", f"{node}-b")):
        NodeConfig.new(node, cluster.folder, data=f"var/{data}", database=url, lease=2,
                       amqp_url=f"amqp://guest:guest@127.0.0.1:5672/{cluster.vhost}",
                       listen=f"127.0.0.1:{cluster.ports[instance]}",
                       anchors=["keys/root/ca.pem"], crls=["keys/crl"], **settings,
                       ).write(cluster.config(instance))


@pytest.mark.parametrize("apart", [False, True], ids=["one-host", "own-process-table"])
def test_two_instances_on_one_postgresql_the_survivor_sends_what_a_dead_one_committed(
    cluster: Cluster, apart: bool,
) -> None:
    """Issue #12, items 1, 2 and 6: danang runs as two instances (their own data folders
    and ports, one PostgreSQL database). Instance A dies right after committing a package
    (the ``after-commit`` fault point), and its data folder is lost with it; instance B
    sends the package on (its bytes are in the database; A's rows pass to it), the
    sender's retry to B is a duplicate, and the recipient gets it once.

    ``own-process-table``: A runs as on another machine with the *same hostname* — its
    own PID and UTS namespaces (``unshare``; the network is shared, the services listen
    on loopback) — so B's ``/proc`` cannot see it die: A's lease (2 s) must lapse first."""
    import socket

    from tests.pg_support import pg_database

    if apart and (UNSHARE is None or os.geteuid() != 0):
        pytest.skip("needs unshare and root for a process table of its own")
    # the shell stays the namespace's init: a process that is pid 1 cannot SIGKILL itself
    wrap = ([UNSHARE or "", "--pid", "--uts", "--fork", "--kill-child", "--mount-proc",
             "sh", "-c", f'hostname "{socket.gethostname()}" && "$0" "$@"'] if apart
            else None)

    with pg_database() as (_name, url):
        _two_instances(cluster, "danang", url)
        shared = Store(url, cluster.folder / "admin-blobs")
        shared.migrate()
        cluster.tokens[SENDER] = shared.issue_credential(SENDER)
        for name in ("central", "hanoi"):
            cluster.start(name)
        cluster.start("danang", "after-commit", wrap=wrap)
        cluster.start("danang-b")
        package = _package(cluster.pki, "B1")
        try:
            answered = cluster.post(package).status_code == 202
        except httpx.HTTPError:
            answered = False  # killed before answering
        wait_until(lambda: cluster.died("danang"), 60, "instance A to die after its commit")
        shutil.rmtree(cluster.folder / "var" / "danang-a")  # its machine is gone
        started = time.monotonic()
        wait_until(lambda: cluster.delivered() == 1, 60, "delivery by instance B")
        print(f"instance B handed it over {time.monotonic() - started:.1f} s after A died")
        retry = httpx.post(f"http://127.0.0.1:{cluster.ports['danang-b']}/v1/packages",
                           content=package, timeout=30,
                           headers={"Authorization": f"Bearer {cluster.tokens[SENDER]}"})
        assert retry.status_code == 202 and retry.json()["duplicate"] is True, retry.text
        del answered
        wait_until(lambda: not shared.pending_outbox(), 60, "danang's outbox to drain")
        shared.close()
        assert cluster.delivered() == 1


def test_an_instance_frozen_past_the_bounds_loses_nothing_and_doubles_nothing(
    cluster: Cluster,
) -> None:
    """Issue #12, item 6: central runs as two instances on one PostgreSQL (heartbeat
    2 s, lease 2 s). Instance A is frozen (SIGSTOP) mid-stream for longer than both
    bounds: its deliveries go back to B when RabbitMQ misses its heartbeats, what it owed
    passes to B when its lease lapses; every package arrives; A, thawed, finishes what it
    had started, and the recipient still has each package once."""
    from tests.pg_support import pg_database

    with pg_database() as (_name, url):
        _two_instances(cluster, "central", url, heartbeat=2)
        for instance in ("central", "central-b", "danang", "hanoi"):
            cluster.start(instance)
        frozen = cluster.processes["central"].pid
        started = time.monotonic()
        try:
            for number in range(40):
                assert cluster.post(_package(cluster.pki, f"F{number}")).status_code == 202
                if number == 10:
                    os.kill(frozen, signal.SIGSTOP)
            wait_until(lambda: cluster.delivered() == 40, 60, "40 deliveries past frozen A")
            print(f"40 delivered {time.monotonic() - started:.1f} s after the first post, "
                  "instance A frozen from the 11th")
        finally:
            os.kill(frozen, signal.SIGCONT)
        shared = Store(url, cluster.folder / "admin-blobs")
        try:
            wait_until(lambda: not shared.pending_outbox(), 60, "central's outbox to drain")
        finally:
            shared.close()
        wait_until(lambda: cluster.delivered() == 40, 30)
        hanoi = cluster.store("hanoi")
        try:
            inbox = hanoi.inbox(RECIPIENT, include_acknowledged=True)
        finally:
            hanoi.close()
        assert len(inbox) == 40 and len({item.document_id for item in inbox}) == 40


def _large_package(pki: DevPKI, number: str) -> bytes:
    """A 12 MiB package: spooled at the API, three 4 MiB chunks on each hop."""
    key, _cert, chain = pki.agency_paths(SENDER)
    package = (DocumentBuilder().sender(organization(SENDER)).recipient(organization(RECIPIENT))
               .code(number, "UBND").promulgation(dt.date(2024, 5, 2))
               .document_type(1, "Công văn").subject(f"V/v hồ sơ lớn {number}")
               .attach("ho-so.pdf", os.urandom(9 << 20)).build())
    return Signer.from_files(key, chain).sign(write(package), limits=_LARGE)


def _leftovers(cluster: Cluster) -> list[str]:
    """Transfer and upload files left in any node's spool."""
    return [f"{node}/{path.name}" for node in cluster.ports
            for path in (cluster.folder / "var" / node / "spool").glob("*")]


@pytest.mark.parametrize(("node", "fault"), [("danang", "mid-transfer"),
                                             ("central", "mid-reassembly")])
def test_a_large_transfer_survives_a_sigkill_of_either_end(
    cluster: Cluster, node: str, fault: str,
) -> None:
    """The sender killed after its first chunk, or the receiver after keeping one (before
    acknowledging it): restarted, the package arrives once, and no chunk, transfer or
    upload file is left anywhere."""
    for name in ("central", "danang", "hanoi"):
        cluster.start(name, fault if name == node else None)
    package = _large_package(cluster.pki, "61")
    answered = cluster.post(package)
    assert answered.status_code == 202, answered.text
    wait_until(lambda: cluster.died(node), 60, f"{node} to die at {fault}")
    assert cluster.processes[node].returncode == -signal.SIGKILL
    cluster.start(node)  # restarted without the fault
    wait_until(lambda: cluster.delivered() >= 1, 90, "delivery")
    wait_until(cluster.settled, 60, "every outbox and queue to drain")
    assert cluster.delivered() == 1
    store = cluster.store("hanoi")
    try:
        [item] = store.inbox(RECIPIENT, include_acknowledged=True)
        assert b"".join(store.package_chunks(item.sha256)[1]) == package
    finally:
        store.close()
    assert _leftovers(cluster) == []
    assert _parked(cluster) == 0


def test_a_large_transfer_survives_a_broker_restart(cluster: Cluster) -> None:
    """RabbitMQ stopped and started while chunks are on their way: the package arrives
    once; nothing is left over."""
    for name in ("central", "danang", "hanoi"):
        cluster.start(name)
    packages = [_large_package(cluster.pki, f"7{i}") for i in range(3)]
    assert cluster.post(packages[0]).status_code == 202  # its hand-over starts now
    subprocess.run([RABBITMQCTL or "", "stop_app"], check=True, capture_output=True)
    subprocess.run([RABBITMQCTL or "", "start_app"], check=True, capture_output=True)
    for package in packages[1:]:
        assert cluster.post(package).status_code == 202
    wait_until(lambda: cluster.delivered() >= 3, 180, "three deliveries after the restart")
    wait_until(cluster.settled, 90, "every outbox and queue to drain")
    assert cluster.delivered() == 3
    assert _leftovers(cluster) == []
    assert _parked(cluster) == 0


def _parked(cluster: Cluster) -> int:
    """Messages in any parking queue of the cluster's vhost."""
    listing = subprocess.run([RABBITMQCTL or "", "list_queues", "-q", "-p", cluster.vhost,
                              "name", "messages"], capture_output=True, text=True,
                             check=True).stdout
    return sum(int(line.split()[-1]) for line in listing.splitlines()
               if line.split() and line.split()[0].endswith(".parked"))
