"""A docaxis node whose parent is a VXP axis (issue #14, item 4): hand-over by
``sendEdoc``, intake by polling, ``updateStatus`` only after the commit — exactly once
across a crash of the polling node between ``getEdoc`` and ``updateStatus``. The axis is
another docaxis node's VXP endpoint; both are ``docaxis serve`` processes on the real
broker."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from docaxis.dsig import Signer
from docaxis.edxml import DocumentBuilder, write
from docaxis.node import NodeConfig
from docaxis.pki import DevPKI
from docaxis.store import Store
from tests.relay_support import free_port, organization, private_vhost, stop_processes
from tests.test_crash import wait_until

ROOT = Path(__file__).resolve().parents[1]
RABBITMQCTL = shutil.which("rabbitmqctl")
pytestmark = pytest.mark.skipif(RABBITMQCTL is None, reason="needs RabbitMQ (.ci/run starts it)")
#: an agency on the axis's side, and one of the province behind the uplink
AXIS_AGENCY, PROVINCE_AGENCY = "000.00.00.G22", "000.00.00.H01"


@dataclass
class Axis:
    """``national`` (a docaxis node serving VXP, standing for the national axis) and
    ``hanoi`` (a province node whose parent is that axis, reached by VXP only)."""

    folder: Path
    pki: DevPKI
    ports: dict[str, int]
    tokens: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, node: str, fault: str | None = None) -> None:
        env = dict(os.environ)
        if fault:
            env["DOCAXIS_FAULT"] = fault
            env["DOCAXIS_FAULT_ONCE"] = str(self.folder / f"{node}-{fault}.fired")
        log = self.folder / f"{node}.log"
        with log.open("ab") as stderr:
            self.processes[node] = subprocess.Popen(
                [sys.executable, str(ROOT / "cli.py"), "serve", "--config",
                 str(self.folder / f"{node}.toml")], env=env, stdout=subprocess.DEVNULL,
                stderr=stderr)

        def up() -> bool:
            assert self.processes[node].poll() is None or fault, log.read_text(errors="replace")
            try:
                return httpx.get(f"http://127.0.0.1:{self.ports[node]}/health",
                                 timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, f"node {node} to start")

    def store(self, node: str) -> Store:
        return Store(f"sqlite:///{self.folder / 'var' / node / 'node.db'}",
                     self.folder / "var" / node / "blobs")

    def inbox(self, node: str, agency: str, *, everything: bool = True) -> int:
        store = self.store(node)
        try:
            return len(store.inbox(agency, include_acknowledged=everything))
        finally:
            store.close()

    def post(self, node: str, agency: str, data: bytes) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.ports[node]}/v1/packages", content=data,
                          headers={"Authorization": f"Bearer {self.tokens[agency]}"},
                          timeout=30)

    def package(self, sender: str, recipient: str, number: str) -> bytes:
        key, _cert, chain = self.pki.agency_paths(sender)
        built = (DocumentBuilder().sender(organization(sender))
                 .recipient(organization(recipient)).code(number, "UBND")
                 .promulgation(dt.date(2024, 5, 2)).document_type(1, "Công văn")
                 .subject(f"V/v liên thông qua trục quốc gia {number}")
                 .attach("a.pdf", b"%PDF " * 200).build())
        return Signer.from_files(key, chain).sign(write(built))

    def stop_all(self) -> None:
        stop_processes(self.processes.values())


@pytest.fixture
def axis(tmp_path: Path) -> Iterator[Axis]:
    with private_vhost("docaxis-uplink") as vhost:
        yield from _axis(tmp_path, vhost)


def _axis(tmp_path: Path, vhost: str) -> Iterator[Axis]:
    pki = DevPKI.init(tmp_path / "keys", key_type="ec-p256")
    pki.issue_agency(AXIS_AGENCY, "Văn phòng Chính phủ", key_type="ec-p256")
    pki.issue_agency(PROVINCE_AGENCY, "UBND TP Hà Nội", key_type="ec-p256")
    agencies = (f'[[agency]]\ncode = "{AXIS_AGENCY}"\nname = "Văn phòng Chính phủ"\n'
                'node = "national"\n')
    # the axis sees the province's agencies as its own (one document system, the uplink,
    # acts for them); the province sees the axis as its parent node
    (tmp_path / "national-net.toml").write_text(
        '[node.national]\ntier = "central"\n' + agencies +
        f'[[agency]]\ncode = "{PROVINCE_AGENCY}"\nname = "UBND TP Hà Nội"\nnode = "national"\n',
        encoding="utf-8")
    (tmp_path / "hanoi-net.toml").write_text(
        '[node.national]\ntier = "central"\n[node.hanoi]\ntier = "province"\n'
        'parent = "national"\n' + agencies +
        f'[[agency]]\ncode = "{PROVINCE_AGENCY}"\nname = "UBND TP Hà Nội"\nnode = "hanoi"\n',
        encoding="utf-8")
    ports = {"national": free_port(), "hanoi": free_port()}
    amqp = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    trust = {"anchors": ["keys/root/ca.pem"], "crls": ["keys/crl"]}
    NodeConfig.new("national", tmp_path, directory="national-net.toml", amqp_url=amqp,
                   listen=f"127.0.0.1:{ports['national']}", **trust,
                   ).write(tmp_path / "national.toml")
    NodeConfig.new("hanoi", tmp_path, directory="hanoi-net.toml", amqp_url=amqp,
                   listen=f"127.0.0.1:{ports['hanoi']}", **trust, uplink_node="national",
                   uplink_endpoint=f"http://127.0.0.1:{ports['national']}/vxp",
                   uplink_system_id="HANOI-UPLINK", uplink_secret_file="hanoi-uplink.secret",
                   uplink_poll=0.2).write(tmp_path / "hanoi.toml")
    fixture = Axis(tmp_path, pki, ports)
    national = NodeConfig.load(tmp_path / "national.toml")
    store = national.open_store()
    try:  # the axis's operator gives the province's uplink a credential for its agencies
        secret = national.systems(store).issue("HANOI-UPLINK", agencies=(PROVINCE_AGENCY,))
        fixture.tokens[AXIS_AGENCY] = store.issue_credential(AXIS_AGENCY)
    finally:
        store.close()
    (tmp_path / "hanoi-uplink.secret").write_text(secret + "\n", encoding="utf-8")
    store = NodeConfig.load(tmp_path / "hanoi.toml").open_store()
    try:
        fixture.tokens[PROVINCE_AGENCY] = store.issue_credential(PROVINCE_AGENCY)
    finally:
        store.close()
    yield fixture
    fixture.stop_all()


def test_a_crash_between_get_edoc_and_update_status_delivers_exactly_once(axis: Axis) -> None:
    axis.start("national")
    # `node check` asks the axis whether it takes this node's credential
    secret_file = axis.folder / "hanoi-uplink.secret"
    check = _node_check(axis)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "uplink" in check.stdout and "HANOI-UPLINK accepted" in check.stdout
    secret = secret_file.read_text(encoding="utf-8")
    secret_file.write_text("not-the-secret\n", encoding="utf-8")
    wrong = _node_check(axis)
    assert wrong.returncode != 0 and "VXP-BAD-SIGNATURE" in wrong.stdout
    secret_file.write_text(secret, encoding="utf-8")
    axis.start("hanoi", fault="after-uplink-commit")
    down = axis.package(AXIS_AGENCY, PROVINCE_AGENCY, "91")
    assert axis.post("national", AXIS_AGENCY, down).status_code == 202
    # the province polls, commits, and dies before telling the axis
    wait_until(lambda: axis.processes["hanoi"].poll() is not None, 60, "the fault to fire")
    assert axis.processes["hanoi"].returncode == -signal.SIGKILL
    assert axis.inbox("hanoi", PROVINCE_AGENCY) == 1  # committed before the crash
    assert axis.inbox("national", PROVINCE_AGENCY, everything=False) == 1  # not told
    axis.start("hanoi")
    # listed again, fetched again, known already: acknowledged at the axis, delivered once
    wait_until(lambda: axis.inbox("national", PROVINCE_AGENCY, everything=False) == 0, 60,
               "the axis to hear done")
    assert axis.inbox("hanoi", PROVINCE_AGENCY) == 1
    # and up: the province's agency posts to the axis's, handed over by sendEdoc
    up = axis.package(PROVINCE_AGENCY, AXIS_AGENCY, "92")
    assert axis.post("hanoi", PROVINCE_AGENCY, up).status_code == 202
    wait_until(lambda: axis.inbox("national", AXIS_AGENCY) == 1, 60, "the hand-over by VXP")

    def sent() -> bool:  # marked sent once the axis took it
        store = axis.store("hanoi")
        try:
            return store.pending_outbox() == []
        finally:
            store.close()

    wait_until(sent, 30, "the hand-over to be marked sent")
    assert axis.inbox("national", AXIS_AGENCY) == 1
    # the trace at the province says the axis took it, under the axis's own id
    store = axis.store("hanoi")
    try:
        trace = store.trace(_document_id(up), sender=PROVINCE_AGENCY)
    finally:
        store.close()
    taken = [e for e in trace.events if e.kind == "taken-by-axis"]
    assert len(taken) == 1 and taken[0].node == "national"
    assert taken[0].detail == f"VXP DocId {hashlib.sha256(up).hexdigest()[:24]}"


def _node_check(axis: Axis) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "node", "check", "--config",
                           str(axis.folder / "hanoi.toml")], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "COLUMNS": "200"})


def _document_id(data: bytes) -> str:
    from docaxis.edxml import parse

    return parse(data).package.document_id or ""
