"""``docaxis node check``: everything a node needs, checked before it serves.

Each check is a line an operator can act on: the database reachable and at the newest
schema, the directory consistent and holding this node, the data folder writable (and
any intake journals a crash left), trust anchors and CRLs present and fresh, the node's
signing key, the broker's vhost and permissions, the listen address free.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from docaxis.directory import Directory, mask_url
from docaxis.dsig import SignatureError, TrustStore
from docaxis.node._run import ConfigError, NodeConfig, load_directory
from docaxis.store import orphaned_journals
from docaxis.transport import RabbitMQBroker, TransportError

Outcome = Literal["ok", "warning", "failed"]


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    outcome: Outcome
    detail: str


def check_node(config: NodeConfig) -> list[Check]:
    """Run every check (none stops the others) and return their lines."""
    checks: list[Check] = []
    store = None
    try:
        store = config.open_store(migrate=False)
        checks.append(Check("database", "ok", "reachable, at the newest schema"))
    except ConfigError as exc:
        checks.append(Check("database", "failed", exc.message))
    if store is not None:
        try:
            directory = load_directory(config, store)
            checks.append(Check("directory", "ok", f"{len(directory.nodes)} nodes, "
                                f"{len(directory.agencies)} agencies, this node included"))
            if config.uplink_node is not None:
                checks.append(_uplink(config, directory))
        except ConfigError as exc:
            checks.append(Check("directory", "failed", exc.message))
        finally:
            store.close()
    checks.append(_data(config))
    checks += _trust(config)
    checks.append(_node_key(config))
    checks.append(_broker(config))
    checks.append(_listen(config.listen))
    return checks


def _data(config: NodeConfig) -> Check:
    """The data folder writable (blob log, spool, intake journals), and the intake
    journals processes that are gone left (logged by the next start)."""
    folder = config.data
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".node-check"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check("data folder", "failed", f"{folder} cannot be written: "
                                              f"{exc.strerror or exc}")
    left = 0
    for journal in orphaned_journals(folder / "intake"):
        left += 1
        journal.release(remove=False)
    if left:
        return Check("data folder", "warning", f"{folder} writable; {left} intake "
                     "journal(s) of stopped processes hold answered posts: the next start "
                     "logs them")
    return Check("data folder", "ok", f"{folder} writable")


def _trust(config: NodeConfig) -> list[Check]:
    if not config.anchors:
        return [Check("trust anchors", "failed", "[trust] anchors is empty: every package "
                      "would be refused as untrusted")]
    missing = [str(p) for p in (*config.anchors, *config.crls) if not p.exists()]
    if missing:
        return [Check("trust anchors", "failed", f"not found: {', '.join(missing)}")]
    try:
        store = TrustStore.load(config.anchors, crls=config.crls)
    except (OSError, ValueError) as exc:
        return [Check("trust anchors", "failed", f"cannot be read: {exc}")]
    checks = [Check("trust anchors", "ok", f"{len(store.anchors)} anchor(s)")]
    if not store.crls:
        checks.append(Check("CRLs", "failed", "no CRL found: revocation cannot be checked, "
                            "every package would be refused"))
        return checks
    now = dt.datetime.now(dt.UTC)
    stale = [crl for crl in store.crls
             if crl.next_update_utc is not None and crl.next_update_utc < now]
    if stale:
        names = ", ".join(crl.issuer.rfc4514_string() for crl in stale)
        checks.append(Check("CRLs", "failed", f"past their nextUpdate: {names}"))
    else:
        soonest = min((crl.next_update_utc for crl in store.crls
                       if crl.next_update_utc is not None), default=None)
        checks.append(Check("CRLs", "ok", f"{len(store.crls)} CRL(s), fresh"
                            + (f" until {soonest:%Y-%m-%d %H:%M}Z" if soonest else "")))
    return checks


def _node_key(config: NodeConfig) -> Check:
    if config.node_key is None:
        return Check("node key", "warning", "no [node] key/certificate: this node sends no "
                     "hop receipts (origins will not see its hops)")
    try:
        signer = config.node_signer()
    except (ConfigError, SignatureError) as exc:
        return Check("node key", "failed", getattr(exc, "message", str(exc)))
    assert signer is not None
    try:
        chain = x509.load_pem_x509_certificates((config.node_certificate or config.node_key)
                                                .read_bytes())
        expires = f", certificate valid until {chain[0].not_valid_after_utc:%Y-%m-%d}"
    except (OSError, ValueError):
        expires = ""
    return Check("node key", "ok", f"signs as node {signer.node}{expires}")


def _broker(config: NodeConfig) -> Check:
    if not config.amqp_url:
        return Check("broker", "warning", "no amqp_url: the in-process broker (one process, "
                     "nothing survives a restart)")

    async def probe() -> None:
        broker = RabbitMQBroker(config.amqp_url or "")
        await asyncio.wait_for(broker.connect(), 10)
        try:
            await asyncio.wait_for(broker.declare_node(config.node_id), 10)
        finally:
            await broker.close()

    try:
        asyncio.run(probe())
    except (TransportError, OSError, TimeoutError, ConnectionError) as exc:
        return Check("broker", "failed", f"{mask_url(config.amqp_url)}: {exc}")
    except Exception as exc:  # aio-pika's own errors (access refused, unknown vhost …)
        return Check("broker", "failed", f"{mask_url(config.amqp_url)}: "
                     f"{type(exc).__name__}: {exc}")
    return Check("broker", "ok", f"{mask_url(config.amqp_url)}: connected, the node's "
                 "exchange and queues declared")


def _uplink(config: NodeConfig, directory: Directory) -> Check:
    """The VXP axis answers this node's credential (a signed ``countReceiveEdoc``)."""
    try:
        uplink = config.uplink(directory)
    except ConfigError as exc:
        return Check("uplink", "failed", exc.message)
    assert uplink is not None

    async def probe() -> dict[str, object]:
        try:
            return await asyncio.wait_for(uplink.client.count(), 15)
        finally:
            await uplink.close()

    try:
        answer = asyncio.run(probe())
    except Exception as exc:  # unreachable, not JSON, TLS …: all the operator's to fix
        return Check("uplink", "failed", f"{uplink.client.endpoint}: {type(exc).__name__}: "
                     f"{str(exc)[:200]}")
    if answer.get("ErrorCode") != "0":
        return Check("uplink", "failed", f"{uplink.client.endpoint} refused systemId "
                     f"{uplink.client.system_id}: {answer.get('ErrorCode')} "
                     f"{str(answer.get('ErrorDesc'))[:200]}")
    return Check("uplink", "ok", f"{uplink.client.endpoint}: systemId "
                 f"{uplink.client.system_id} accepted, {answer.get('count')} waiting")


def _listen(listen: str) -> Check:
    # a plain bind, not serve's (SO_REUSEPORT would share the port with a running node)
    host, _, port = listen.rpartition(":")
    try:
        with socket.socket() as probe:
            probe.bind((host or "127.0.0.1", int(port)))
    except (OSError, ValueError) as exc:
        return Check("listen", "failed", f"{listen}: {exc}")
    return Check("listen", "ok", f"{listen} is free")
