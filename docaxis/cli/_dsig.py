"""``docaxis sign`` and ``docaxis verify`` (the auditor's report)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from docaxis import __version__
from docaxis.cli._main import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    cli,
    expand_inputs,
    max_bytes_option,
    package_file,
    read_input,
    stderr,
    stdout,
)
from docaxis.directory import Directory, DirectoryError
from docaxis.dsig import (
    BindingPolicy,
    KeyLoadError,
    Pkcs11Key,
    SignatureError,
    Signer,
    TrustStore,
    VerificationPolicy,
    VerificationReport,
    Verifier,
    password_from,
    summarize,
)
from docaxis.edxml import ParseError, ParseLimits
from docaxis.node import binding_policy

_STYLE = {"valid": "bold green", "invalid": "bold red", "legacy": "yellow", "unsigned": "yellow"}


@cli.command("sign")
@click.argument("file")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key (plain or encrypted), or a PKCS#12 file (.p12/.pfx).")
@click.option("--cert", "cert_path", type=click.Path(exists=True, dir_okay=False),
              help="Signer certificate, or its chain (signer first); optional with PKCS#12.")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="The key's password: first line of this file.")
@click.option("--password-env", metavar="VAR", help="The key's password: this variable.")
@click.option("--password-prompt", is_flag=True, help="Ask for the key's password.")
@click.option("--pkcs11-module", type=click.Path(dir_okay=False),
              help="PKCS#11 module of a token or HSM (e.g. /usr/lib/softhsm/libsofthsm2.so).")
@click.option("--token", help="PKCS#11 token label.")
@click.option("--key-label", help="PKCS#11 key label on the token.")
@click.option("--pin-file", type=click.Path(dir_okay=False), help="Token PIN: from this file.")
@click.option("--pin-env", metavar="VAR", help="Token PIN: from this variable.")
@click.option("-o", "--output", default="-", help="Output file (default: standard output).")
@max_bytes_option
def sign_command(file: str, key_path: str | None, cert_path: str | None,
                 password_file: str | None, password_env: str | None, password_prompt: bool,
                 pkcs11_module: str | None, token: str | None, key_label: str | None,
                 pin_file: str | None, pin_env: str | None, output: str,
                 max_bytes: int) -> None:
    """Sign a package (enveloped XMLDSig, RSA-SHA256 or ECDSA-SHA256 by key type).

    A large package is signed from and to files by streaming: memory holds its
    structure, never its attachments.

    The key is a PEM file (plain or encrypted), a PKCS#12 file, or a key on a PKCS#11
    token (--pkcs11-module, --token, --key-label, --pin-file/--pin-env, with --cert).
    """
    try:
        signer = _signer(key_path, cert_path, password_file, password_env, password_prompt,
                         pkcs11_module, token, key_label, pin_file, pin_env)
        with package_file(file, max_bytes) as source:
            if output == "-":
                with tempfile.TemporaryDirectory(prefix="docaxis-sign-") as folder:
                    signed = Path(folder) / "signed.edxml"
                    signer.sign_file(source, signed, limits=ParseLimits(max_bytes=max_bytes))
                    with signed.open("rb") as result:
                        shutil.copyfileobj(result, click.get_binary_stream("stdout"), 1 << 20)
                return
            size = signer.sign_file(source, output, limits=ParseLimits(max_bytes=max_bytes))
    except (SignatureError, ParseError, ValueError) as exc:
        code = getattr(exc, "code", "EDX-SIG-SIGN")
        stderr.print(f"[bold red]{code}[/] {escape(getattr(exc, 'message', str(exc)))}")
        raise SystemExit(EXIT_INVALID if isinstance(exc, ParseError) else EXIT_USAGE) from None
    except OSError as exc:
        raise InputError(output, exc.strerror or str(exc)) from None
    stderr.print(f"wrote {escape(output)} ({size:,} bytes)")


def _signer(key_path: str | None, cert_path: str | None, password_file: str | None,
            password_env: str | None, password_prompt: bool, pkcs11_module: str | None,
            token: str | None, key_label: str | None, pin_file: str | None,
            pin_env: str | None) -> Signer:
    if pkcs11_module is not None:
        if not (token and key_label and cert_path):
            raise click.UsageError("a PKCS#11 key needs --token, --key-label and --cert")
        pin = password_from(file=pin_file, env=pin_env, prompt=not (pin_file or pin_env))
        key = Pkcs11Key.open(pkcs11_module, token=token, key_label=key_label,
                             pin=(pin or b"").decode())
        try:
            chain = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyLoadError(f"cannot read certificates from {cert_path}: {exc}") from None
        return Signer(key, chain)
    if key_path is None:
        raise click.UsageError("give --key (a PEM or PKCS#12 file) or --pkcs11-module")
    password = password_from(file=password_file, env=password_env, prompt=password_prompt)
    return Signer.from_files(key_path, cert_path, password=password)


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
@click.option("--directory", "directory_path", type=click.Path(exists=True, dir_okay=False),
              help="network.toml whose agencies' signer bindings (pinned fingerprints, CA + "
                   "subject rules) bind signers besides the SAN URI.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output: one report, or for several packages "
                   "{summary, reports} with failures first.")
@click.option("--quiet", "-q", is_flag=True, help="Several packages: the summary alone.")
@max_bytes_option
def verify_command(files: tuple[str, ...], trust: tuple[str, ...], intermediate: tuple[str, ...],
                   crl: tuple[str, ...], at_text: str | None, allow_sha1: bool,
                   no_revocation: bool, generic: bool, id_attr: str,
                   directory_path: str | None, as_json: bool, quiet: bool,
                   max_bytes: int) -> None:
    """Verify signatures and print the auditor's report.

    Each report names the bytes it judged (SHA-256), the package's DocumentId and From,
    the docaxis version, the trust inputs used (anchor fingerprints; each CRL's issuer,
    number and thisUpdate) and the verification time. Several packages: the summary
    first, then the reports, failures first.

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
    bindings = BindingPolicy()
    if directory_path is not None:
        try:
            bindings = binding_policy(Directory.from_toml(directory_path))
        except (DirectoryError, ValueError) as exc:
            raise InputError(directory_path, str(exc)) from None
    verifier = Verifier(VerificationPolicy(store, allow_sha1=allow_sha1, at=at,
                                           require_revocation=not (no_revocation or generic),
                                           bind_signer=not generic, bindings=bindings))
    names = expand_inputs(files)
    reports: list[VerificationReport] = []
    show_progress = len(names) > 1 and not as_json
    with Progress(console=stderr, transient=True, disable=not show_progress) as progress:
        task = progress.add_task("verifying", total=len(names))
        for name in names:
            if generic:
                report = verifier.verify_generic(read_input(name), id_attribute=id_attr,
                                                 source=name)
            else:
                with package_file(name, max_bytes) as path:
                    report = verifier.verify(path, source=name,
                                             limits=ParseLimits(max_bytes=max_bytes))
            reports.append(report)
            progress.advance(task)
    ordered = sorted(reports, key=lambda r: r.valid)  # failures first, else as given
    if as_json:
        payload: Any = (reports[0].to_dict() if len(reports) == 1 else {
            "summary": summarize(reports),
            "reports": [] if quiet else [r.to_dict() for r in ordered]})
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        if len(reports) > 1:
            _summary(ordered)
        if not (quiet and len(reports) > 1):
            for report in ordered:
                _print(report)
    raise SystemExit(EXIT_OK if all(r.valid for r in reports) else EXIT_INVALID)


def _print(report: VerificationReport) -> None:
    style = _STYLE[report.verdict]
    stdout.print(f"[bold]{escape(report.source or '-')}[/]: [{style}]{report.verdict}[/]")
    if report.sha256:
        stdout.print(f"  package     sha256 {report.sha256}")
    if report.document_id or report.sender:
        stdout.print(f"  document    {escape(report.document_id or '?')} from "
                     f"{escape(report.sender or '?')}")
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
                 f"{report.checked_at[:19]}Z) by docaxis {__version__}")
    if report.trust is not None:
        inputs = report.trust.describe()
        for anchor in inputs["anchors"]:
            stdout.print(f"  anchor      {escape(anchor['subject'])}, SHA-256 {anchor['sha256']}")
        for crl in inputs["crls"]:
            stdout.print(f"  CRL         {escape(crl['issuer'])}: number {crl['number']}, "
                         f"thisUpdate {crl['this_update'][:19]}Z")
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

