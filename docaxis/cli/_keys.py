"""``docaxis keys …``: the development/test PKI."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import NoReturn

import click
from rich.markup import escape
from rich.table import Table

from docaxis.cli._main import EXIT_USAGE, cli, stderr, stdout
from docaxis.pki import (
    KEY_TYPES,
    TIERS,
    TSA_FOLDER,
    DevPKI,
    DevTimestampAuthority,
    PKIError,
    serve_tsa,
)

_DIR = click.option("--dir", "folder", default="keys", show_default=True,
                    type=click.Path(file_okay=False, path_type=Path),
                    help="Folder of the PKI.")


def _fail(exc: PKIError) -> NoReturn:
    stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
    raise SystemExit(EXIT_USAGE)


@cli.group("keys")
def keys_group() -> None:
    """Create and manage a development/test PKI (never for production keys)."""


@keys_group.command("init")
@_DIR
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="rsa2048", show_default=True,
              help="rsa2048 (RSA-SHA256 signatures), rsa3072, or ec-p256 (ECDSA-SHA256).")
@click.option("--force", is_flag=True, help="Replace an existing PKI in the folder.")
def keys_init(folder: Path, key_type: str, force: bool) -> None:
    """Create a root CA, one intermediate CA per tier, and their CRLs."""
    try:
        pki = DevPKI.init(folder, key_type=key_type, force=force)  # type: ignore[arg-type]
    except PKIError as exc:
        _fail(exc)
    stdout.print(f"created a dev PKI in {escape(str(folder))}: root CA and "
                 f"{len(TIERS)} tier CAs ({', '.join(TIERS)}); trust anchor {pki.root_path}")


@keys_group.command("issue")
@_DIR
@click.option("--agency", "code", help="Agency code to bind (LLL.KK.JJ.XNN).")
@click.option("--node", "node_id", help="Axis node id (instead of --agency).")
@click.option("--name", help="Agency name (CN).")
@click.option("--operator", help="With --node: the agency that runs the node, bound in its "
                                 "certificate too (it signs refusals' status 02 as it).")
@click.option("--tier", type=click.Choice(TIERS), default="province", show_default=True)
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="rsa2048", show_default=True,
              help="rsa2048 (RSA-SHA256 signatures), rsa3072, or ec-p256 (ECDSA-SHA256).")
@click.option("--days", type=click.IntRange(1, 3650), default=730, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing key and certificate.")
def keys_issue(folder: Path, code: str | None, node_id: str | None, name: str | None,
               operator: str | None, tier: str, key_type: str, days: int, force: bool) -> None:
    """Issue an agency (or node) signing certificate (never over an existing key unless
    --force: a key may be in use, and its certificate in directories)."""
    if bool(code) == bool(node_id):
        raise click.UsageError("give exactly one of --agency or --node")
    if operator and not node_id:
        raise click.UsageError("--operator goes with --node")
    existing = folder / ("agencies" if code else "nodes") / (code or node_id or "") / "key.pem"
    if existing.exists() and not force:
        stderr.print(f"[bold red]PKI-EXISTS[/] {escape(str(existing))} exists; give --force to "
                     "replace it (revoke the old certificate first: docaxis keys revoke)")
        raise SystemExit(EXIT_USAGE)
    try:
        pki = DevPKI.open(folder)
        if code:
            row = pki.issue_agency(code, name or code, tier=tier, key_type=key_type,  # type: ignore[arg-type]
                                   days=days)
        else:
            row = pki.issue_node(node_id or "", tier=tier, key_type=key_type,  # type: ignore[arg-type]
                                 days=days, operator=operator)
    except PKIError as exc:
        _fail(exc)
    stdout.print(f"issued serial {row.serial} for {escape(row.name)}: {folder / row.path} "
                 f"(key and chain beside it)")


@keys_group.command("revoke")
@_DIR
@click.argument("who")
@click.option("--reason", default="keyCompromise", show_default=True)
def keys_revoke(folder: Path, who: str, reason: str) -> None:
    """Revoke a certificate (by serial, agency code or node id) and reissue the CRL."""
    try:
        row = DevPKI.open(folder).revoke(who, reason=reason)
    except PKIError as exc:
        _fail(exc)
    stdout.print(f"revoked serial {row.serial} ({escape(row.name)}); CRL of ca-{row.tier} "
                 "reissued")


@keys_group.command("crl")
@_DIR
def keys_crl(folder: Path) -> None:
    """Reissue every CRL (run before they expire: they are valid for 7 days)."""
    try:
        paths = DevPKI.open(folder).write_all_crls()
    except PKIError as exc:
        _fail(exc)
    for path in paths:
        stdout.print(f"wrote {escape(str(path))}")


@keys_group.command("list")
@_DIR
def keys_list(folder: Path) -> None:
    """List issued certificates."""
    try:
        pki = DevPKI.open(folder)
    except PKIError as exc:
        _fail(exc)
    table = Table("kind", "name", "tier", "serial", "valid until", "key", "status")
    for row in pki.index:
        status = f"revoked {row.revoked_at[:10]}" if row.revoked_at else "good"
        table.add_row(row.kind, escape(row.name), row.tier or "", row.serial[:16],
                      row.not_after[:10], row.key_type, status)
    stdout.print(table)


@keys_group.command("tsa")
@_DIR
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="rsa2048", show_default=True)
@click.option("--serve", "listen", metavar="HOST:PORT",
              help="Serve the dev TSA over HTTP (RFC 3161) until interrupted, e.g. "
                   "127.0.0.1:3180; issues it first if the folder has none.")
def keys_tsa(folder: Path, key_type: str, listen: str | None) -> None:
    """Issue a development timestamping authority (RFC 3161) under the dev root, for tests
    and the demo — or serve it (--serve). A node uses it with [audit] tsa_url =
    "http://HOST:PORT/" and tsa_anchors = ["<dir>/root/ca.pem"]."""
    try:
        if listen is None or not (folder / TSA_FOLDER / "key.pem").exists():
            authority = DevTimestampAuthority.issue(folder, key_type=key_type)  # type: ignore[arg-type]
            stdout.print(f"issued the dev TSA certificate {folder / TSA_FOLDER / 'cert.pem'} "
                         f"(anchor: {folder / 'root' / 'ca.pem'})")
        else:
            authority = DevTimestampAuthority.open(folder)
    except PKIError as exc:
        _fail(exc)
    if listen is None:
        return
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.UsageError("--serve takes HOST:PORT, e.g. 127.0.0.1:3180")
    server = serve_tsa(authority, host.strip("[]"), int(port))
    stdout.print(f"dev TSA at {server.url} (Ctrl-C stops it)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stdout.print("dev TSA stopped")
    finally:
        server.stop()
