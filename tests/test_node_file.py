"""A node.toml written from a configuration (`NodeConfig.to_toml`, `docaxis node init`):
read back by `NodeConfig.load` as the same configuration, every setting included."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path

from docaxis.node import NodeConfig

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=cwd)


def _every_setting(folder: Path) -> NodeConfig:
    """A configuration whose every field differs from its default."""
    return NodeConfig.new(
        "hanoi", folder, directory="net/network.toml", data="/srv/docaxis/hanoi",
        database="postgresql+psycopg://docaxis@127.0.0.1:5432/docaxis_hanoi",
        amqp_url=["amqp://docaxis:p%40ss@mq1:5672/hanoi", "amqp://docaxis:p%40ss@mq2/hanoi"],
        listen="0.0.0.0:8101", anchors=["keys/root/ca.pem", "keys/old-root.pem"],
        crls=["keys/crl"], allow_sha1=True, workers=4, crl_check=2.5, crl_reload=60.0,
        crl_grace=30.0, node_key="keys/nodes/hanoi/key.pem",
        node_certificate="keys/nodes/hanoi/chain.pem", prefetch=32, heartbeat=5,
        blobs="segments", lease=20, intake_journal=False, vxp_prefix="/truc/vxp",
        vxp_secret_key="secrets/vxp.key",
        uplink_node="national", uplink_endpoint="https://truc.gov.vn/vxp",
        uplink_system_id="000.00.00.H01-TRUC", uplink_secret_file="uplink.secret",
        uplink_poll=2.0, log_chain=True, tsa_url="http://tsa.example.vn/",
        tsa_anchors=["keys/tsa-root.pem"], stamp_interval=30.0, max_package_bytes=1 << 20,
        max_structure_bytes=4 << 20)


def test_every_setting_survives_a_round_trip_through_node_toml(tmp_path: Path) -> None:
    config = _every_setting(tmp_path)
    defaults = NodeConfig.new("hanoi", tmp_path)
    # a field added to NodeConfig and not written by node_toml fails here, not in the field
    same = [f.name for f in dataclasses.fields(NodeConfig)
            if getattr(config, f.name) == getattr(defaults, f.name)
            and f.name not in ("node_id", "log_chain")]
    assert same == [], f"give these a value other than the default: {same}"
    path = tmp_path / "node.toml"
    path.write_text(config.to_toml(tmp_path), encoding="utf-8")
    assert NodeConfig.load(path) == config
    text = path.read_text(encoding="utf-8")
    # paths under the file's folder are relative to it, as an operator writes them
    assert 'key = "keys/nodes/hanoi/key.pem"' in text and 'data = "/srv/docaxis/hanoi"' in text


def test_defaults_are_left_out_and_the_unchained_log_is_kept(tmp_path: Path) -> None:
    config = NodeConfig.new("hanoi", tmp_path, log_chain=False, anchors=["ca.pem"])
    text = config.to_toml(tmp_path)
    assert "workers" not in text and "prefetch" not in text and "database =" not in text
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    assert NodeConfig.load(path) == config and "chain = false" in text


def test_a_value_toml_does_not_take_raw_is_escaped(tmp_path: Path) -> None:
    config = NodeConfig.new("hanoi", tmp_path, listen='127.0.0.1:1"\\\x7f\n',
                            anchors=['Ca "gốc".pem'])
    path = tmp_path / "node.toml"
    path.write_text(config.to_toml(tmp_path), encoding="utf-8")
    assert NodeConfig.load(path) == config


def test_node_init_writes_what_serve_reads(tmp_path: Path) -> None:
    result = cli("node", "init", "--id", "hanoi", "-o", "conf/node.toml",
                 "--amqp-url", "amqp://docaxis:change-me@127.0.0.1:5672/hanoi",
                 "--database", "postgresql+psycopg://docaxis@127.0.0.1:5432/docaxis_hanoi",
                 "--listen", "127.0.0.1:8101", "--workers", "2",
                 "--key", "conf/keys/nodes/hanoi/key.pem",
                 "--certificate", "conf/keys/nodes/hanoi/chain.pem",
                 "--anchor", "conf/keys/root/ca.pem", "--crl", "conf/keys/crl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "conf" / "node.toml"
    config = NodeConfig.load(path)
    base = tmp_path / "conf"
    assert (config.node_id, config.workers, config.listen) == ("hanoi", 2, "127.0.0.1:8101")
    assert config.amqp_url == "amqp://docaxis:change-me@127.0.0.1:5672/hanoi"
    assert config.database == "postgresql+psycopg://docaxis@127.0.0.1:5432/docaxis_hanoi"
    assert config.node_key == base / "keys/nodes/hanoi/key.pem"
    assert config.anchors == (base / "keys/root/ca.pem",)
    assert config.crls == (base / "keys/crl",)
    assert (config.directory, config.data) == (base / "network.toml", base / "var/hanoi")
    # written relative to its own folder (the node can be moved with its keys)
    assert 'anchors = ["keys/root/ca.pem"]' in path.read_text(encoding="utf-8")
    # it may hold the broker's and the database's passwords: not for every local user
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o007 == 0
    assert "docaxis db upgrade --config conf/node.toml" in result.stdout.replace("\n", " ")


def test_node_init_keeps_an_existing_file_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("# the operator's own\n", encoding="utf-8")
    result = cli("node", "init", "--id", "hanoi", cwd=tmp_path)
    assert result.returncode == 2 and "CONFIG-EXISTS" in result.stderr
    assert path.read_text(encoding="utf-8") == "# the operator's own\n"
    assert cli("node", "init", "--id", "hanoi", "--force", cwd=tmp_path).returncode == 0
    assert NodeConfig.load(path).node_id == "hanoi"


def test_node_init_wants_the_key_with_its_certificate(tmp_path: Path) -> None:
    result = cli("node", "init", "--id", "hanoi", "--key", "k.pem", cwd=tmp_path)
    assert result.returncode == 2 and "--key and --certificate go together" in result.stderr
    assert not (tmp_path / "node.toml").exists()
