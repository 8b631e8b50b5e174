"""Issue #11, item 4: configuration that says what is wrong, and `docaxis node check`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from docaxis.node import ConfigError, NodeConfig
from docaxis.pki import DevPKI
from docaxis.store import IntakeJournal, JournalEntry
from tests.test_transport import _vhost

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    pki = DevPKI.init(tmp_path_factory.mktemp("ops-pki"), key_type="ec-p256")
    pki.issue_node("hanoi", tier="province", key_type="ec-p256")
    return pki


def _node_toml(folder: Path, pki: DevPKI, *, extra_node: str = "", extra_trust: str = "",
               database: str | None = None) -> Path:
    (folder / "network.toml").write_text(
        '[node.central]\ntier = "central"\n[node.hanoi]\ntier = "province"\n'
        'parent = "central"\n[[agency]]\ncode = "000.00.00.H01"\nname = "UBND TP Hà Nội"\n'
        'node = "hanoi"\n', encoding="utf-8")
    node_key = pki.folder / "nodes" / "hanoi"
    path = folder / "node.toml"
    path.write_text(
        '[node]\nid = "hanoi"\ndirectory = "network.toml"\ndata = "var"\n'
        + (f'database = "{database}"\n' if database else "")
        + f'listen = "127.0.0.1:0"\nkey = "{node_key / "key.pem"}"\n'
        f'certificate = "{node_key / "chain.pem"}"\n{extra_node}'
        f'[trust]\nanchors = ["{pki.root_path}"]\ncrls = ["{pki.crl_folder}"]\n{extra_trust}',
        encoding="utf-8")
    return path


@pytest.mark.parametrize(("extra_node", "extra_trust", "expected"), [
    ('amqp = "amqp://x"\n', "", "unknown key 'amqp' in [node] (did you mean 'amqp_url'?)"),
    ("", 'anchor = ["x.pem"]\n', "unknown key 'anchor' in [trust] (did you mean 'anchors'?)"),
    ("heartbeat = 0\n", "", "[node] heartbeat must be a whole number from 1 to 600"),
    ('prefetch = "many"\n', "", "[node] prefetch must be a whole number from 1 to 65535"),
    ("", "[limits]\nmax_package_bytes = 10\n",
     "[limits] max_package_bytes must be a whole number from 1024 to 2147483648"),
    ("", "[limits]\nmax_structure_bytes = 10\n",
     "[limits] max_structure_bytes must be a whole number from 65536 to 268435456"),
    ("", "[limits]\nmax_bytes = 10\n",
     "unknown key 'max_bytes' in [limits] (did you mean 'max_package_bytes'?)"),
])
def test_a_misspelt_key_is_an_error_naming_it_and_the_file(
        tmp_path: Path, pki: DevPKI, extra_node: str, extra_trust: str, expected: str) -> None:
    path = _node_toml(tmp_path, pki, extra_node=extra_node, extra_trust=extra_trust)
    with pytest.raises(ConfigError) as raised:
        NodeConfig.load(path)
    assert expected in raised.value.message and str(path) in raised.value.message
    result = cli("node", "check", "--config", str(path))
    assert result.returncode == 2 and expected in result.stderr.replace("\n", " ")


def test_the_package_size_limit_is_a_node_setting(tmp_path: Path, pki: DevPKI) -> None:
    path = _node_toml(tmp_path, pki, extra_trust="[limits]\nmax_package_bytes = 65536\n"
                      "max_structure_bytes = 4194304\n")
    limits = NodeConfig.load(path).limits
    assert (limits.max_bytes, limits.max_structure_bytes) == (65536, 4 << 20)
    (tmp_path / "d").mkdir()
    limits = NodeConfig.load(_node_toml(tmp_path / "d", pki)).limits
    assert (limits.max_bytes, limits.max_structure_bytes) == (512 << 20, 2 << 20)


def test_prefetch_and_heartbeat_are_node_settings(tmp_path: Path, pki: DevPKI) -> None:
    path = _node_toml(tmp_path, pki, extra_node="prefetch = 32\nheartbeat = 5\n")
    config = NodeConfig.load(path)
    assert (config.prefetch, config.heartbeat) == (32, 5)
    (tmp_path / "d").mkdir()
    assert NodeConfig.load(_node_toml(tmp_path / "d", pki)).heartbeat == 10
    members = _node_toml(tmp_path / "d", pki, extra_node='amqp_url = ["amqp://a:5672/v", '
                                                      '"amqp://b:5672/v"]\n')
    assert NodeConfig.load(members).amqp_url == "amqp://a:5672/v amqp://b:5672/v"


def test_node_check_says_what_is_missing_and_then_passes(tmp_path: Path, pki: DevPKI) -> None:
    path = _node_toml(tmp_path, pki)
    before = cli("node", "check", "--config", str(path))
    assert before.returncode == 1, before.stdout
    assert "db upgrade" in before.stdout.replace("\n", " ")
    # a read-only command does not migrate the database behind the operator's back
    trace = cli("trace", "x", "--config", str(path))
    assert trace.returncode == 2 and "db upgrade" in trace.stderr
    tables = sqlite3.connect(tmp_path / "var" / "node.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == []
    upgrade = cli("db", "upgrade", "--config", str(path))
    assert upgrade.returncode == 0, upgrade.stderr
    after = cli("node", "check", "--config", str(path))
    assert after.returncode == 0, after.stdout
    for line in ("database", "directory", "data folder", "trust anchors", "CRLs",
                 "node key", "listen"):
        assert line in after.stdout
    # a crash left an intake journal with answered posts: said (a warning), not an error
    crashed = IntakeJournal.create(tmp_path / "var" / "intake")
    crashed.append([JournalEntry("k|d|s", "{}", b"x")])
    crashed.close(remove=False)
    left = cli("node", "check", "--config", str(path))
    assert left.returncode == 0 and "1 intake" in left.stdout.replace("\n", " "), left.stdout


def test_a_missing_postgresql_database_is_one_line_saying_how_to_create_it(
        tmp_path: Path, pki: DevPKI) -> None:
    name = f"docaxis_missing_{uuid.uuid4().hex[:8]}"
    path = _node_toml(tmp_path, pki,
                      database=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    result = cli("db", "upgrade", "--config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2 and "createdb" in result.stderr and name in result.stderr


def test_tokens_only_for_agencies_served_here_and_listed_and_revoked(
        tmp_path: Path, pki: DevPKI) -> None:
    path = _node_toml(tmp_path, pki)
    assert cli("db", "upgrade", "--config", str(path)).returncode == 0
    unknown = cli("token", "--config", str(path), "--agency", "000.00.00.H41")
    assert unknown.returncode == 1 and "API-UNKNOWN-AGENCY" in unknown.stderr
    issued = cli("token", "--config", str(path), "--agency", "000.00.00.H01", "--label", "VPĐT")
    assert issued.returncode == 0 and issued.stdout.startswith("dx_")
    token = issued.stdout.strip()
    listing = cli("token", "--config", str(path), "--list")
    assert "000.00.00.H01" in listing.stdout and token not in listing.stdout
    # a shared system's token: this node's subtree (not a node above it)
    above = cli("token", "--config", str(path), "--subtree", "central")
    assert above.returncode == 1 and "VXP-UNKNOWN-NODE" in above.stderr
    shared = cli("token", "--config", str(path), "--subtree", "hanoi")
    assert shared.returncode == 0 and shared.stdout.startswith("dx_")
    assert "hanoi/*" in cli("token", "--config", str(path), "--list").stdout
    config = NodeConfig.load(path)
    store = config.open_store(migrate=False)
    try:
        credential = next(c for c in store.credentials() if c.binding.subtrees == ())
        assert store.agency_for_token(token) == "000.00.00.H01"
        shared_binding = store.binding_for_token(shared.stdout.strip())
        assert shared_binding is not None and shared_binding.subtrees == ("hanoi",)
    finally:
        store.close()
    revoked = cli("token", "--config", str(path), "--revoke", str(credential.id))
    assert revoked.returncode == 0
    store = config.open_store(migrate=False)
    try:
        assert store.agency_for_token(token) is None
    finally:
        store.close()


def test_vxp_systems_issued_for_agencies_served_here_listed_without_secrets_rotated_revoked(
        tmp_path: Path, pki: DevPKI) -> None:
    path = _node_toml(tmp_path, pki, extra_trust='[vxp]\nprefix = "/axis"\n')
    assert NodeConfig.load(path).vxp_prefix == "/axis"
    assert cli("db", "upgrade", "--config", str(path)).returncode == 0
    refused = [("--agency", "000.00.00.H41", "API-UNKNOWN-AGENCY"),
               ("--subtree", "central", "VXP-UNKNOWN-NODE"), ("", "", "VXP-NO-AGENCY")]
    for option, value, code in refused:
        answer = cli("system", "issue", "--config", str(path), "HN-QLVB",
                     *([option, value] if option else []))
        assert answer.returncode == 1 and code in answer.stderr, answer.stderr
    issued = cli("system", "issue", "--config", str(path), "HN-QLVB", "--agency",
                 "000.00.00.H01", "--label", "QLVB Hà Nội")
    assert issued.returncode == 0, issued.stderr
    secret = issued.stdout.strip()
    again = cli("system", "issue", "--config", str(path), "HN-QLVB", "--subtree", "hanoi")
    assert again.returncode == 1 and "VXP-SYSTEM-EXISTS" in again.stderr
    listing = cli("system", "list", "--config", str(path))
    assert "HN-QLVB" in listing.stdout and secret not in listing.stdout
    assert secret.encode() not in (tmp_path / "var" / "node.db").read_bytes()
    key = tmp_path / "var" / "vxp-secret.key"
    assert key.stat().st_mode & 0o077 == 0  # the sealing key: owner only
    rotated = cli("system", "rotate", "--config", str(path), "HN-QLVB")
    assert rotated.returncode == 0 and rotated.stdout.strip() != secret
    config = NodeConfig.load(path)
    store = config.open_store(migrate=False)
    try:
        live = config.systems(store).live("HN-QLVB")
        assert live is not None and live[1] == rotated.stdout.strip()
    finally:
        store.close()
    assert cli("system", "revoke", "--config", str(path), "HN-QLVB").returncode == 0
    assert cli("system", "revoke", "--config", str(path), "HN-QLVB").returncode == 1
    store = config.open_store(migrate=False)
    try:
        assert config.systems(store).live("HN-QLVB") is None
    finally:
        store.close()


def test_keys_issue_never_overwrites_a_key_without_force(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    assert cli("keys", "init", "--dir", str(folder), "--key-type", "ec-p256").returncode == 0
    args = ["keys", "issue", "--dir", str(folder), "--agency", "000.00.00.H01", "--tier",
            "province", "--key-type", "ec-p256"]
    assert cli(*args).returncode == 0
    key = folder / "agencies" / "000.00.00.H01" / "key.pem"
    before = key.read_bytes()
    again = cli(*args)
    assert again.returncode == 2 and "--force" in again.stderr
    assert key.read_bytes() == before
    assert cli(*args, "--force").returncode == 0 and key.read_bytes() != before


def test_parked_lists_documents_and_discards_one_with_the_reason_in_its_trace(
        tmp_path: Path, pki: DevPKI) -> None:
    with _vhost() as vhost:
        _parked_flow(tmp_path, pki, f"amqp://guest:guest@127.0.0.1:5672/{vhost}")


def _parked_flow(tmp_path: Path, pki: DevPKI, url: str) -> None:
    import asyncio

    from docaxis.dsig import Signer
    from docaxis.transport import Message, RabbitMQBroker, Reject
    from tests.dsig_support import package

    pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central",
                     key_type="ec-p256")
    key, _cert, chain = pki.agency_paths("000.00.00.G22")
    document = Signer.from_files(key, chain).sign(package())
    path = _node_toml(tmp_path, pki, extra_node=f'amqp_url = "{url}"\n')
    assert cli("db", "upgrade", "--config", str(path)).returncode == 0
    async def park() -> None:
        broker = RabbitMQBroker(url)
        await broker.connect()
        await broker.declare_node("hanoi")

        async def refuse(_message: Message) -> None:
            raise Reject("EDX-SIG-UNTRUSTED: test")

        consumer = await broker.consume("hanoi", refuse)
        for name in ("m-1", "m-2"):
            await broker.publish("hanoi", Message(document, {"x-docaxis-kind": "package"},
                                                  message_id=name))
        deadline = asyncio.get_running_loop().time() + 30
        while len(await broker.parked("hanoi")) < 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await consumer.stop()
        await broker.close()

    asyncio.run(park())
    listing = cli("parked", "--config", str(path))
    assert listing.returncode == 0
    assert "m-1" in listing.stdout and "000.00.00.G22" in listing.stdout
    refused = cli("parked", "--config", str(path), "--discard", "m-1")
    assert refused.returncode == 2  # a discard needs a reason
    discarded = cli("parked", "--config", str(path), "--discard", "m-1", "--reason",
                    "sent twice by the agency")
    assert discarded.returncode == 0, discarded.stderr
    again = cli("parked", "--config", str(path))
    assert "m-1" not in again.stdout and "m-2" in again.stdout
    from docaxis.edxml import parse

    document_id = parse(document).package.document_id
    assert document_id
    store = NodeConfig.load(path).open_store(migrate=False)
    try:
        events = store.trace(document_id).events
    finally:
        store.close()
    assert any(e.kind == "parked_discarded" and "sent twice" in (e.detail or "")
               for e in events)


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on loopback right now."""
    import socket

    for base in range(20_000 + uuid.uuid4().int % 20_000, 60_000, 97):
        try:
            probes = []
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no free port range")


def test_demo_keep_running_removes_what_it_created_on_ctrl_c(tmp_path: Path) -> None:
    import os
    import signal
    import time

    with _vhost() as vhost:
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        errors = (tmp_path / "demo.err").open("w")  # what the demo said, should it fail
        demo = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "demo", "--amqp-url",
                                 url, "--keep-running", "--dir", str(tmp_path / "demo"),
                                 "--base-port", str(_free_ports(8))],
                                stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            assert demo.stdout is not None
            deadline = time.monotonic() + 120
            for line in demo.stdout:  # wait until the demo says it is serving
                if "Ctrl-C to stop" in line:
                    break
                assert time.monotonic() < deadline, "the demo never came up"
            queues = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name"],
                                    capture_output=True, text=True, check=True).stdout
            assert "docaxis." in queues
            os.kill(demo.pid, signal.SIGINT)
            demo.wait(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
        errors.close()
        left = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name"],
                              capture_output=True, text=True, check=True).stdout
        said = (tmp_path / "demo.err").read_text(encoding="utf-8")[-4000:]
        assert "docaxis." not in left, f"exit {demo.returncode}; the demo said:\n{said}"
