"""Issue #11, items 1 and 7: a node that never stalls in silence and loses nothing.

* an unexpected exception while checking, planning or committing one hop message parks
  that message (``RELAY-INTERNAL``) and the node goes on delivering;
* a background task that dies is logged and started again;
* a store outage longer than the transport's retry schedule parks nothing: the node waits
  and goes on (PostgreSQL refusing connections for a while);
* the API answers 503 with ``Retry-After`` while the store is down;
* a write that fails mid-batch (disk full) leaves the blob log consistent;
* the outbox sweep skips (and reports) a row whose bytes cannot be read, and sends the rest.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from docaxis.api import create_app
from docaxis.pki import DevPKI
from docaxis.store import BlobError, BlobStore, Store
from docaxis.transport import Broker, InMemoryBroker, Message
from tests.pg_support import PG_ADMIN, pg_database
from tests.relay_support import Network, build_network, idle_network, network_pki
from tests.test_relay import FAST
from tests.test_transport import run, wait_until

SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("faults-pki"))


async def _start(tmp_path: Path, pki: DevPKI) -> tuple[Network, Broker]:
    broker = InMemoryBroker(FAST)
    await broker.connect()
    network = build_network(tmp_path, pki, lambda _node: broker)
    await network.start()
    return network, broker


async def _parked(broker: Broker, node: str, count: int = 1) -> list[Message]:
    found: list[Message] = []

    async def poll() -> None:
        while len(found) < count:
            found[:] = await broker.parked(node)
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), 30)
    return found


@pytest.mark.parametrize("point", ["check", "plan", "commit"])
def test_an_unexpected_exception_parks_one_message_and_the_node_goes_on(
        tmp_path: Path, pki: DevPKI, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        network, broker = await _start(tmp_path, pki)
        danang, central, hanoi = (network.nodes[n] for n in ("danang", "central", "hanoi"))
        monkeypatch.setenv("DOCAXIS_FAULT_RAISE", point)
        monkeypatch.setenv("DOCAXIS_FAULT_ONCE", str(tmp_path / f"{point}.fired"))
        first = network.document(SENDER, [RECIPIENT], number="81")
        danang.submit(first, agency=SENDER)  # the API path has no fault point: the hop has
        [parked] = await _parked(broker, "central")  # noqa: RUF100
        assert parked.body == first
        assert "RELAY-INTERNAL" in parked.headers["x-docaxis-parked-reason"]
        for number in ("82", "83"):
            danang.submit(network.document(SENDER, [RECIPIENT], number=number), agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 2, 30)
        assert all(hanoi.store.package_bytes(i.sha256) != first
                   for i in hanoi.store.inbox(RECIPIENT))
        # the sender hears of it (a signed hop receipt, then a rejection notice)
        await wait_until(lambda: any(i.kind == "rejection" for i in danang.store.inbox(SENDER)),
                         30)
        assert central.task_restarts == 0
        await network.stop()
        await broker.close()

    run(scenario())


def test_a_background_task_that_dies_is_restarted(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(FAST)
        await broker.connect()
        network = build_network(tmp_path, pki, lambda _node: broker)
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        original = danang.outbox.hand_over_forever
        died: list[bool] = []

        async def dies_once() -> None:
            if not died:
                died.append(True)
                raise RuntimeError("the hand-over task crashed")
            await original()

        danang.outbox.hand_over_forever = dies_once  # type: ignore[method-assign]
        await network.start()
        await wait_until(lambda: danang.task_restarts == 1, 10)
        danang.submit(network.document(SENDER, [RECIPIENT], number="84"), agency=SENDER)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
        await network.stop()
        await broker.close()

    run(scenario())


@pytest.fixture(name="pg_database")
def _pg_database() -> Iterator[tuple[str, str]]:
    with pg_database("docaxis_fault") as database:
        yield database


def _connections(name: str, allowed: bool) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))


def test_a_store_outage_longer_than_the_retry_schedule_parks_nothing(
        tmp_path: Path, pki: DevPKI, pg_database: tuple[str, str]) -> None:
    name, url = pg_database

    async def scenario() -> None:
        broker = InMemoryBroker(FAST)  # retries after 50 and 100 ms, then parks
        await broker.connect()
        network = build_network(tmp_path, pki, lambda _node: broker)
        central = network.nodes["central"]
        central.store = Store(url, tmp_path / "central-pg-blobs")
        central.store.migrate()
        central.store_backoff_max = 0.5
        await network.start()
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        _connections(name, allowed=False)
        documents = [network.document(SENDER, [RECIPIENT], number=str(n)) for n in (91, 92)]
        for document in documents:
            danang.submit(document, agency=SENDER)
        await wait_until(lambda: not central.store_available, 30)
        # the outage lasts many retry schedules (150 ms): nothing may be parked meanwhile
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(central)),
                                     base_url="http://node") as api:
            answer = await api.post("/v1/packages", content=documents[0],
                                    headers={"Authorization": "Bearer dx_any"})
            assert answer.status_code == 503
            assert answer.json()["error"] == "API-UNAVAILABLE"
            assert answer.headers["Retry-After"]
        assert await broker.parked("central") == []
        _connections(name, allowed=True)
        await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 2, 60)
        assert central.store_available
        assert await broker.parked("central") == []
        delivered = {hanoi.store.package_bytes(i.sha256) for i in hanoi.store.inbox(RECIPIENT)}
        assert delivered == set(documents)
        await network.stop()
        await broker.close()
        central.store.close()

    run(scenario())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only: CI runs as root; elsewhere the test skips)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs (CI runs as root)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                            capture_output=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: even if a test left it busy


def test_a_write_that_fails_mid_batch_leaves_the_blob_log_consistent(small_disk: Path) -> None:
    blobs = BlobStore(small_disk / "blobs")
    before = blobs.put_many([b"a" * 1000, b"b" * 1000])
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * (free - 200_000))  # leaves ~200 KB
    with pytest.raises(OSError):
        blobs.put_many([os.urandom(150_000), os.urandom(150_000)])  # 300 KB: disk full
    filler.unlink()  # the operator frees space
    after = blobs.put_many([b"c" * 5000, b"d" * 5000])
    for ref, data in zip([*before, *after], [b"a" * 1000, b"b" * 1000, b"c" * 5000,
                                             b"d" * 5000], strict=True):
        assert blobs.get(ref) == data  # every blob where its row says it is
    blobs.close()


def test_the_sweep_skips_and_reports_an_unreadable_row_and_sends_the_rest(
        tmp_path: Path, pki: DevPKI, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        network, broker = await idle_network(tmp_path, pki)
        danang = network.nodes["danang"]  # not started: hand-overs stay pending
        first = danang.submit(network.document(SENDER, [RECIPIENT], number="95"), agency=SENDER)
        second = danang.submit(network.document(SENDER, [RECIPIENT], number="96"),
                               agency=SENDER)
        row = danang.store.package(first.sha256)
        assert row is not None and row.blob_segment is not None
        segment = danang.store.blobs.segment_path(row.blob_segment)
        with segment.open("r+b") as handle:  # the first package's bytes go bad on disk
            handle.seek((row.blob_offset or 0) + 10)
            handle.write(b"XXXX")
        with pytest.raises(BlobError):
            danang.store.package_bytes(first.sha256)
        sent = await danang.dispatch_once()
        assert sent == 1
        pending = danang.store.pending_outbox()
        assert [item.sha256 for item in pending] == [first.sha256]  # not claimed, not lost
        assert second.sha256 not in {item.sha256 for item in pending}
        assert any(getattr(r, "code", None) == "STORE-BLOB-UNREADABLE" for r in caplog.records)
        await broker.close()

    run(scenario())
