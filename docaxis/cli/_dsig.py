"""``docaxis sign`` and ``docaxis verify`` (the auditor's report)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from docaxis.cli._main import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    cli,
    expand_inputs,
    read_input,
    stderr,
    stdout,
)
from docaxis.dsig import (
    SignatureError,
    Signer,
    TrustStore,
    VerificationPolicy,
    VerificationReport,
    Verifier,
)
from docaxis.edxml import ParseError

_STYLE = {"valid": "bold green", "invalid": "bold red", "legacy": "yellow", "unsigned": "yellow"}


@cli.command("sign")
@click.argument("file")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--cert", "cert_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Signer certificate, or its chain (signer first).")
@click.option("-o", "--output", default="-", help="Output file (default: standard output).")
def sign_command(file: str, key_path: str, cert_path: str, output: str) -> None:
    """Sign a package (enveloped XMLDSig, RSA-SHA256 or ECDSA-SHA256 by key type)."""
    try:
        signed = Signer.from_files(key_path, cert_path).sign(read_input(file))
    except (SignatureError, ParseError, ValueError) as exc:
        code = getattr(exc, "code", "EDX-SIG-SIGN")
        stderr.print(f"[bold red]{code}[/] {escape(getattr(exc, 'message', str(exc)))}")
        raise SystemExit(EXIT_INVALID if isinstance(exc, ParseError) else EXIT_USAGE) from None
    if output == "-":
        click.get_binary_stream("stdout").write(signed)
    else:
        try:
            Path(output).write_bytes(signed)
        except OSError as exc:
            raise InputError(output, exc.strerror or str(exc)) from None
        stderr.print(f"wrote {escape(output)} ({len(signed):,} bytes)")


def _default(paths: tuple[str, ...], fallback: str) -> list[str]:
    if paths:
        return list(paths)
    return [fallback] if Path(fallback).exists() else []


@cli.command("verify")
@click.argument("files", nargs=-1, required=True)
@click.option("--trust", multiple=True,
              help="Trust anchor file or folder (default keys/root/ca.pem).")
@click.option("--intermediate", multiple=True, help="Extra intermediate certificates.")
@click.option("--crl", multiple=True, help="CRL file or folder (default keys/crl).")
@click.option("--at", "at_text", help="Verification time, ISO 8601 (default: now, UTC).")
@click.option("--allow-sha1", is_flag=True, help="Admit RSA-SHA1/SHA-1 (legacy); reported.")
@click.option("--no-revocation", is_flag=True,
              help="Do not fail when revocation cannot be checked.")
@click.option("--generic", is_flag=True,
              help="Generic XMLDSig mode (not edXML): references by ID, no signer binding.")
@click.option("--id-attr", default="ID", show_default=True, help="ID attribute (generic mode).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_command(files: tuple[str, ...], trust: tuple[str, ...], intermediate: tuple[str, ...],
                   crl: tuple[str, ...], at_text: str | None, allow_sha1: bool,
                   no_revocation: bool, generic: bool, id_attr: str, as_json: bool) -> None:
    """Verify signatures and print the auditor's report.

    Exit status: 0 only if every package verifies; 1 otherwise; 2 usage or I/O error.
    """
    anchors = _default(trust, "keys/root/ca.pem")
    if not anchors:
        raise click.UsageError("give --trust (no keys/root/ca.pem here)")
    try:
        at = dt.datetime.fromisoformat(at_text) if at_text else None
    except ValueError:
        raise click.BadParameter(f"{at_text!r} is not ISO 8601", param_hint="--at") from None
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    try:
        store = TrustStore.load(anchors, intermediates=intermediate, crls=_default(crl, "keys/crl"))
    except (OSError, ValueError) as exc:
        raise InputError(", ".join(anchors), str(exc)) from None
    verifier = Verifier(VerificationPolicy(store, allow_sha1=allow_sha1, at=at,
                                           require_revocation=not (no_revocation or generic),
                                           bind_signer=not generic))
    names = expand_inputs(files)
    reports: list[VerificationReport] = []
    show_progress = len(names) > 1 and not as_json
    with Progress(console=stderr, transient=True, disable=not show_progress) as progress:
        task = progress.add_task("verifying", total=len(names))
        for name in names:
            data = read_input(name)
            report = (verifier.verify_generic(data, id_attribute=id_attr, source=name) if generic
                      else verifier.verify(data, source=name))
            reports.append(report)
            progress.advance(task)
    if as_json:
        payload: Any = [r.to_dict() for r in reports]
        click.echo(json.dumps(payload if len(payload) > 1 else payload[0], ensure_ascii=False,
                              indent=2))
    else:
        for report in reports:
            _print(report)
        if len(reports) > 1:
            _summary(reports)
    raise SystemExit(EXIT_OK if all(r.valid for r in reports) else EXIT_INVALID)


def _print(report: VerificationReport) -> None:
    style = _STYLE[report.verdict]
    stdout.print(f"[bold]{escape(report.source or '-')}[/]: [{style}]{report.verdict}[/]")
    if report.signer:
        signer = report.signer
        stdout.print(f"  signer      agency {signer.agency_code or '(none bound)'} — "
                     f"{escape(signer.subject)}\n              serial {signer.serial}, "
                     f"SHA-256 {signer.fingerprint}")
    for index, link in enumerate(report.chain):
        role = "anchor" if link.is_anchor else ("signer" if index == 0 else "issuer")
        revocation = link.revocation + (f" (CRL of {link.crl_this_update[:19]})"
                                        if link.crl_this_update else "")
        stdout.print(f"  chain[{index}]    {role}: {escape(link.subject)}; revocation: "
                     f"{revocation}")
    if report.algorithms:
        stdout.print("  algorithms  " + ", ".join(f"{k} {v}" for k, v in report.algorithms.items())
                     + (" [yellow](SHA-1 admitted by the legacy flag)[/]" if report.legacy_sha1
                        else ""))
    for cover in report.covers:
        stdout.print(f"  covers      {escape(cover)}")
    for attachment in report.attachments:
        stdout.print(f"  attachment  {escape(str(attachment['content_id']))}: sha256 "
                     f"{attachment['sha256']} (covered by {escape(attachment['covered_by'])})")
    stdout.print(f"  checked     at {report.verification_time[:19]}Z (revocation checked "
                 f"{report.checked_at[:19]}Z)")
    for failure in report.failures:
        stdout.print(f"  [bold red]{failure.code}[/] {escape(failure.message)}")


def _summary(reports: list[VerificationReport]) -> None:
    table = Table("package", "verdict", "signer", "first reason", title="summary")
    for report in reports:
        style = _STYLE[report.verdict]
        first = report.failures[0].code if report.failures else ""
        table.add_row(escape(report.source or "-"), f"[{style}]{report.verdict}[/]",
                      report.signer.agency_code or "?" if report.signer else "", first)
    stdout.print(table)
    good = sum(r.valid for r in reports)
    stdout.print(f"{len(reports)} packages: {good} verified, {len(reports) - good} not")
