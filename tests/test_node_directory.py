"""A node's directory: network.toml, the node's database over it, or the database alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from docaxis.directory import Agency
from docaxis.node._run import ConfigError, NodeConfig, import_directory, load_directory

ROOT = Path(__file__).resolve().parents[1]
NETWORK = """
[node.central]
tier = "central"
[node.hanoi]
tier = "province"
parent = "central"
[node.danang]
tier = "province"
parent = "central"

[[agency]]
code = "000.00.00.H01"
name = "UBND TP Hà Nội"
node = "hanoi"
"""


def _config(folder: Path, *, with_file: bool) -> NodeConfig:
    (folder / "network.toml").write_text(NETWORK, encoding="utf-8")
    directory = 'directory = "network.toml"\n' if with_file else ""
    path = folder / "node.toml"
    path.write_text(f'[node]\nid = "central"\n{directory}data = "var/central"\n',
                    encoding="utf-8")
    return NodeConfig.load(path)


def test_the_database_overrides_and_extends_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path, with_file=True)
    store = config.open_store()
    try:
        assert load_directory(config, store).route("central", "000.00.00.H01").node == "hanoi"
        # an agency moves to another province and a new one joins: data, not code
        store.save_directory_entries([], [Agency("000.00.00.H01", "UBND TP Hà Nội", "danang"),
                                          Agency("000.00.00.H43", "UBND TP Đà Nẵng", "danang")])
        directory = load_directory(config, store)
        assert directory.route("central", "000.00.00.H01").node == "danang"
        assert directory.route("central", "000.00.00.H43").node == "danang"
    finally:
        store.close()


def test_a_node_can_run_from_its_database_alone(tmp_path: Path) -> None:
    config = _config(tmp_path, with_file=False)
    assert config.directory is None
    store = config.open_store()
    try:
        with pytest.raises(ConfigError, match="docaxis directory import"):
            load_directory(config, store)
        import_directory(config, store, tmp_path / "network.toml")
        assert load_directory(config, store).route("central", "000.00.00.H01").node == "hanoi"
    finally:
        store.close()


def test_an_inconsistent_import_writes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, with_file=False)
    (tmp_path / "bad.toml").write_text(
        '[[agency]]\ncode = "000.00.00.H02"\nname = "?"\nnode = "nowhere"\n', encoding="utf-8")
    (tmp_path / "orphan.toml").write_text('[node.other]\ntier = "central"\n', encoding="utf-8")
    store = config.open_store()
    try:
        with pytest.raises(ConfigError, match="unknown node 'nowhere'"):
            import_directory(config, store, tmp_path / "bad.toml")
        with pytest.raises(ConfigError, match="no longer hold node 'central'"):
            import_directory(config, store, tmp_path / "orphan.toml")
        assert store.directory_entries() == ([], [])
        import_directory(config, store, tmp_path / "network.toml")
        with pytest.raises(ConfigError, match="no longer hold node 'central'"):
            import_directory(config, store, tmp_path / "orphan.toml", replace=True)
        assert len(store.directory_entries()[0]) == 3  # untouched
    finally:
        store.close()


def test_directory_import_and_export_commands(tmp_path: Path) -> None:
    config = _config(tmp_path, with_file=False)
    (tmp_path / "more.toml").write_text(
        NETWORK + '[[agency]]\ncode = "000.00.00.H43"\nname = "UBND TP Đà Nẵng"\n'
                  'node = "danang"\n', encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "cli.py"), "directory", *args,
                               "--config", str(tmp_path / "node.toml")],
                              capture_output=True, text=True, timeout=120, check=False)

    assert cli("export").returncode != 0  # nothing yet: a clear error, not an empty file
    imported = cli("import", str(tmp_path / "more.toml"))
    assert imported.returncode == 0, imported.stderr
    exported = cli("export")
    assert exported.returncode == 0, exported.stderr
    assert 'code = "000.00.00.H43"' in exported.stdout and '[node."danang"]' in exported.stdout
    assert config.directory is None


def test_a_partial_import_keeps_what_it_does_not_name_and_export_hides_passwords(
        tmp_path: Path) -> None:
    config = _config(tmp_path, with_file=False)
    full = tmp_path / "full.toml"
    full.write_text(NETWORK.replace(
        'parent = "central"\n[node.danang]',
        'parent = "central"\namqp_url = "amqp://hanoi:s3cret@broker.hanoi/hanoi"\n'
        '[node.danang]') + 'certificate_fingerprints = ["' + "ab" * 32 + '"]\n',
        encoding="utf-8")
    partial = tmp_path / "partial.toml"
    partial.write_text('[node.hanoi]\ntier = "province"\nparent = "central"\n'
                       '[[agency]]\ncode = "000.00.00.H01"\nname = "UBND Thành phố Hà Nội"\n'
                       'node = "hanoi"\n', encoding="utf-8")
    store = config.open_store()
    try:
        import_directory(config, store, full)
        import_directory(config, store, partial)
        directory = load_directory(config, store)
        assert directory.nodes["hanoi"].amqp_url == "amqp://hanoi:s3cret@broker.hanoi/hanoi"
        agency = directory.agencies["000.00.00.H01"]
        assert agency.name == "UBND Thành phố Hà Nội"  # what the file names changes
        assert agency.certificate_fingerprints == ("ab" * 32,)  # the rest stays
        exported = directory.to_toml()
        assert "s3cret" not in exported and "amqp://hanoi:***@broker.hanoi/hanoi" in exported
        round_trip = tmp_path / "exported.toml"
        round_trip.write_text(exported, encoding="utf-8")
        import_directory(config, store, round_trip)  # importing the export keeps the secret
        assert load_directory(config, store).nodes["hanoi"].amqp_url.endswith(  # type: ignore[union-attr]
            "s3cret@broker.hanoi/hanoi")
    finally:
        store.close()
