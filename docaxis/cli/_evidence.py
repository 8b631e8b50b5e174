"""``docaxis evidence …``: one document's evidence in an ASiC-E container, and its check."""

from __future__ import annotations

import json
from pathlib import Path

import click
from cryptography import x509
from rich.markup import escape

from docaxis.cli._main import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    cli,
    stderr,
    stdout,
)
from docaxis.dsig import TimestampError, TimestampVerifier
from docaxis.evidence import EvidenceError, verify_container, write_container
from docaxis.node import ConfigError, NodeConfig, node_verifier
from docaxis.store import BlobError


@cli.group("evidence")
def evidence_group() -> None:
    """Evidence for auditors: a document's proof, exported and checked offline."""


@evidence_group.command("export")
@click.argument("document_id")
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False), help="The node's node.toml.")
@click.option("--sender", help="The sending agency, when several used this DocumentId.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Where to write the container (.asice).")
def evidence_export(document_id: str, config_path: str, sender: str | None,
                    output: Path) -> None:
    """Write DOCUMENT_ID's evidence as an ASiC-E container (ETSI EN 319 162): the
    package's exact bytes, its verification report, the node's log records about it with
    their hash chain and RFC 3161 timestamps, every signed status answering it, and the
    CRLs used — the manifest signed with the node's key."""
    try:
        config = NodeConfig.load(config_path)
        signer = config.node_signer()
        if signer is None:
            raise ConfigError("[node] key and certificate are needed to sign the container")
        store = config.open_store(migrate=False)
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    try:  # written as it is made: a large package never whole in memory
        with output.open("wb") as out:
            write_container(store, document_id, out, node_id=config.node_id, signer=signer,
                            verifier=node_verifier(config, store), sender=sender)
    except BaseException as exc:
        output.unlink(missing_ok=True)  # no half-written container left behind
        if isinstance(exc, EvidenceError | ConfigError):
            stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
            raise SystemExit(EXIT_USAGE) from None
        if isinstance(exc, BlobError):  # the log names a package the store cannot give back
            stderr.print(f"[bold red]STORE-BLOB-UNREADABLE[/] {escape(str(exc))}")
            raise SystemExit(EXIT_INVALID) from None
        if isinstance(exc, OSError):  # the output cannot be written (a full disk, say)
            raise InputError(str(output), exc.strerror or str(exc)) from None
        raise
    finally:
        store.close()
    stdout.print(f"wrote {escape(str(output))} ({output.stat().st_size:,} bytes)")


@evidence_group.command("verify")
@click.argument("container", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--trust", "anchors", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="A trust anchor (root certificate, PEM); repeatable.")
@click.option("--tsa-anchor", "tsa_anchors", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="The timestamping authority's root (default: the --trust anchors).")
@click.option("--json", "as_json", is_flag=True)
def evidence_verify(container: Path, anchors: tuple[str, ...], tsa_anchors: tuple[str, ...],
                    as_json: bool) -> None:
    """Check an evidence container offline with the trust anchors alone. Exit 0 valid, 1
    not (every failure named with its code)."""
    try:
        roots = [cert for path in anchors
                 for cert in x509.load_pem_x509_certificates(Path(path).read_bytes())]
        tsa = TimestampVerifier.load(tsa_anchors) if tsa_anchors else None
    except (OSError, ValueError, TimestampError) as exc:
        stderr.print(f"[bold red]EVIDENCE-ANCHORS[/] {escape(str(exc))}")
        raise SystemExit(EXIT_USAGE) from None
    try:
        report = verify_container(container, roots, tsa=tsa)  # a large package by streaming
    except EvidenceError as exc:  # EVIDENCE-SPOOL: no room to check a large package
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        stdout.print(f"{escape(str(container))}: document {escape(str(report.document_id))}, "
                     f"exported by node {escape(str(report.exported_by))} at "
                     f"{report.exported_at}; {report.files} files, {report.records} log "
                     f"records ({report.stamped_records} under a timestamp), "
                     f"{report.stamps} timestamp(s), {report.statuses} status(es), "
                     f"{report.hops} signed hop statement(s)")
        for code, message in report.failures:
            stdout.print(f"[bold red]{code}[/] {escape(message)}")
        stdout.print("[green]valid[/]" if report.valid
                     else f"[bold red]invalid[/] ({len(report.failures)} failure(s))")
    raise SystemExit(EXIT_OK if report.valid else EXIT_INVALID)
