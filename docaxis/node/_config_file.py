"""A node's ``node.toml`` written from a :class:`~docaxis.node.NodeConfig` (tệp cấu hình
của nút): what ``docaxis node init`` writes for an operator, and what the tests and
benchmarks write instead of TOML of their own — one place that knows the keys.

:meth:`NodeConfig.load <docaxis.node.NodeConfig.load>` reads the text back as the same
configuration: paths under the file's folder are written relative to it (as an operator
writes them), others absolute; a value equal to its default is left out; each key carries
a short comment saying what it is.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docaxis.node._run import NodeConfig


def node_toml(config: NodeConfig, folder: Path | str) -> str:
    """The text of a ``node.toml`` in ``folder`` that loads as ``config``.

    Parameters
    ----------
    config:
        The configuration (its paths as :meth:`NodeConfig.load` resolves them).
    folder:
        The folder the file will be written to: paths are relative to it where they lie
        under it.

    Examples
    --------
    >>> from docaxis.node import NodeConfig
    >>> config = NodeConfig.new("hanoi", "nodes", anchors=["keys/root/ca.pem"])
    >>> print(node_toml(config, "nodes"))
    [node]
    id = "hanoi"
    directory = "network.toml"  # nodes, parents and agencies
    data = "var/hanoi"  # blob log (and SQLite, without database)
    listen = "127.0.0.1:8100"
    <BLANKLINE>
    [trust]
    anchors = ["keys/root/ca.pem"]  # the signature CA's roots
    crls = []  # CRL files or folders
    <BLANKLINE>
    """
    from docaxis.node._run import NodeConfig

    base = Path(folder)
    default = {f.name: f.default for f in dataclasses.fields(NodeConfig)
               if f.default is not dataclasses.MISSING}
    lines = ["[node]"]

    def key(name: str, value: Any, comment: str = "") -> None:
        lines.append(f"{name} = {_value(value)}" + (f"  # {comment}" if comment else ""))

    def path(value: Path) -> str:  # elsewhere: absolute (a relative one is the shell's)
        return value.relative_to(base).as_posix() if value.is_relative_to(base) \
            else value.absolute().as_posix()

    key("id", config.node_id)
    if config.directory is not None:
        key("directory", path(config.directory), "nodes, parents and agencies")
    key("data", path(config.data), "blob log (and SQLite, without database)")
    if config.database != f"sqlite:///{config.data / 'node.db'}":
        key("database", config.database)
    if config.amqp_url:
        members = config.amqp_url.split()
        key("amqp_url", members if len(members) > 1 else members[0],
            "this node's vhost" + ("; the members of one cluster" if len(members) > 1
                                   else ""))
    key("listen", config.listen)
    if config.workers != default["workers"]:
        key("workers", config.workers, "processes, each serving the API and consuming")
    if config.node_key is not None and config.node_certificate is not None:
        key("key", path(config.node_key), "the node certificate's key: signs hop receipts")
        key("certificate", path(config.node_certificate))
    for name, comment in (("prefetch", "deliveries one process holds unacknowledged"),
                          ("heartbeat", "s: a hung process's deliveries return after ≈ 2×"),
                          ("lease", "s: a silent process's hand-overs pass on after this"),
                          ("blobs", "package bytes: \"database\" or \"segments\""),
                          ("intake_journal", "answer API posts from the intake journal")):
        if getattr(config, name) != default[name]:
            key(name, getattr(config, name), comment)

    lines += ["", "[trust]"]
    key("anchors", [path(p) for p in config.anchors], "the signature CA's roots")
    key("crls", [path(p) for p in config.crls], "CRL files or folders")
    if config.allow_sha1:
        key("allow_sha1", True)
    for name in ("crl_check", "crl_reload", "crl_grace"):
        if getattr(config, name) != default[name]:
            key(name, getattr(config, name), "seconds")

    audit: list[tuple[str, Any, str]] = []
    if not config.log_chain:
        audit.append(("chain", False, "the message log not chained by hash: tests only"))
    if config.tsa_url is not None:
        audit += [("tsa_url", config.tsa_url, "RFC 3161 timestamps of the chain heads"),
                  ("tsa_anchors", [path(p) for p in config.tsa_anchors], ""),
                  ("stamp_interval", config.stamp_interval, "seconds between two stamps")]
    if audit:
        lines += ["", "[audit]"]
        for name, value, comment in audit:
            key(name, value, comment)

    limits = [(name, getattr(config, name), comment) for name, comment in (
        ("max_package_bytes", "refused by its size first"),
        ("max_structure_bytes", "of a package over 8 MiB: all but long attachment text"))
        if getattr(config, name) != default[name]]
    if limits:
        lines += ["", "[limits]"]
        for name, value, comment in limits:
            key(name, value, comment)

    if config.vxp_prefix != default["vxp_prefix"] or config.vxp_secret_key is not None:
        lines += ["", "[vxp]"]
        key("prefix", config.vxp_prefix, "the VXP endpoint's path")
        if config.vxp_secret_key is not None:
            key("secret_key", path(config.vxp_secret_key), "seals the systems' secrets")

    if config.uplink_node is not None and config.uplink_secret_file is not None:
        lines += ["", "[uplink]"]
        key("node", config.uplink_node, "the VXP axis's node id in the directory")
        key("endpoint", config.uplink_endpoint or "")
        key("system_id", config.uplink_system_id or "", "this node's systemId there")
        key("secret_file", path(config.uplink_secret_file))
        if config.uplink_poll != default["uplink_poll"]:
            key("poll_interval", config.uplink_poll, "seconds")
    return "\n".join(lines) + "\n"


def write_node_toml(config: NodeConfig, path: Path | str) -> Path:
    """Write ``config`` as the ``node.toml`` at ``path`` (its folder created if missing;
    mode 0640: the file may hold the broker's and the database's passwords). Returns the
    path."""
    target = Path(path)
    text = node_toml(config, target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o640)  # an existing file keeps its mode otherwise
        file.write(text)
    return target


def _value(value: Any) -> str:
    """A TOML value: a string (a basic string: JSON's escapes are TOML's, and DEL, which
    TOML does not take raw, escaped), a boolean, a number, or a list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
