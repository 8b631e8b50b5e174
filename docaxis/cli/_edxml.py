"""``validate``, ``inspect`` and ``new``: the edXML commands."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

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
from docaxis.edxml import (
    BUSINESS_DOC_TYPES,
    PRIORITIES,
    STATUS_CODES,
    STEERING_TYPES,
    BuildError,
    DocumentBuilder,
    DocumentPackage,
    Organization,
    OtherInfo,
    ParseError,
    ParseLimits,
    Severity,
    StatusBuilder,
    ValidationReport,
    parse,
    parse_file,
    validate,
    write_to,
)
from docaxis.edxml._parser import VN_TZ

_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow"}


def _print_report(report: ValidationReport) -> None:
    kind = report.parsed.kind if report.parsed else "unreadable"
    if report.valid:
        verdict = "[green]valid[/]"
    else:
        count = len(report.errors)
        verdict = f"[bold red]invalid[/] ({count} error{'s' if count > 1 else ''})"
    count = len(report.warnings)
    warnings = f", {count} warning{'s' if count > 1 else ''}" if count else ""
    stdout.print(f"{escape(report.source or '-')}: {verdict} — {kind}, "
                 f"{report.profile} profile{warnings}")
    for finding in report.findings:
        style = _SEVERITY_STYLE[finding.severity]
        where = []
        if finding.line is not None:
            where.append(f"line {finding.line}" + (f":{finding.column}" if finding.column else ""))
        if finding.path:
            where.append(finding.path)
        stdout.print(f"  [{style}]{finding.severity}[/] {finding.code} "
                     f"[dim]{escape(' '.join(where))}[/]\n    {escape(finding.message)}")


@cli.command("validate")
@click.argument("files", nargs=-1, required=True)
@click.option("--profile", type=click.Choice(["interop", "strict"]), default="interop",
              show_default=True,
              help="interop: what a node accepts; strict: what docaxis writes.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@max_bytes_option
def validate_command(files: tuple[str, ...], profile: str, as_json: bool, max_bytes: int) -> None:
    """Validate edXML packages (FILE may be a folder, or - for standard input).

    A large package is read by streaming: memory holds its structure, not its
    attachments.

    Exit status: 0 all valid, 1 some invalid, 2 usage or I/O error.
    """
    limits = ParseLimits(max_bytes=max_bytes)
    reports = []
    for name in expand_inputs(files):
        with package_file(name, max_bytes) as path:
            reports.append(validate(path, profile=profile, limits=limits,  # type: ignore[arg-type]
                                    source=name))
    if not reports:
        raise click.UsageError("no package files found")
    if as_json:
        payload = [r.to_dict() for r in reports]
        click.echo(json.dumps(payload if len(payload) > 1 else payload[0], ensure_ascii=False,
                              indent=2))
    else:
        for report in reports:
            _print_report(report)
        if len(reports) > 1:
            bad = sum(not r.valid for r in reports)
            stdout.print(f"\n{len(reports)} packages: {len(reports) - bad} valid, {bad} invalid")
    raise SystemExit(EXIT_OK if all(r.valid for r in reports) else EXIT_INVALID)


def _label(table: dict[Any, Any], code: Any) -> str:
    label = table.get(code)
    return f"{code} — {label.en} ({label.vi})" if label else f"{code} (unknown)"


def _summary(name: str, path: Path, max_bytes: int) -> dict[str, Any]:
    parsed = parse_file(path, limits=ParseLimits(max_bytes=max_bytes))
    package = parsed.package
    h = package.header
    sender = h.from_
    info: dict[str, Any] = {
        "file": name,
        "kind": parsed.kind,
        "bytes": parsed.size,
        "sha256": parsed.sha256,
        "from": {"organ_id": sender.organ_id, "organ_name": sender.organ_name} if sender else None,
        "signature": parsed.signature.form if parsed.signature else None,
    }
    if isinstance(package, DocumentPackage):
        dh = package.header
        other = dh.other_info or OtherInfo()
        info.update({
            "to": [{"organ_id": o.organ_id, "organ_name": o.organ_name} for o in dh.to],
            "document_id": dh.document_id,
            "code": str(dh.code) if dh.code else None,
            "promulgation_date": (f"{dh.promulgation_info.promulgation_date:%Y/%m/%d}"
                                  if dh.promulgation_info
                                  and dh.promulgation_info.promulgation_date else None),
            "place": dh.promulgation_info.place if dh.promulgation_info else None,
            "document_type": dh.document_type.type_name if dh.document_type else None,
            "subject": dh.subject,
            "business_type": _label(BUSINESS_DOC_TYPES, package.business_doc_type),
            "priority": _label(PRIORITIES, other.priority) if other.priority is not None else None,
            "steering_type": (_label(STEERING_TYPES, dh.steering_type)
                              if dh.steering_type is not None else None),
            "attachments": [
                {"name": a.attachment_name, "content_id": a.content_id,
                 "content_type": a.content_type, **_content_facts(a)}
                for a in package.attachments
            ],
        })
    else:
        rf = package.header.response_for
        info.update({
            "status_code": package.header.status_code,
            "status": _label(STATUS_CODES, package.header.status_code),
            "description": package.header.description,
            "timestamp": (f"{package.header.timestamp:%Y/%m/%d %H:%M:%S}"
                          if package.header.timestamp else None),
            "response_for": {"organ_id": rf.organ_id, "code": rf.code,
                             "document_id": rf.document_id} if rf else None,
        })
    return info


def _content_facts(attachment: Any) -> dict[str, Any]:
    if attachment.content is None:
        return {"size": None, "sha256": None}
    try:
        return {"size": attachment.content.size, "sha256": attachment.content.sha256}
    except ValueError as exc:  # binascii.Error: not base64
        return {"size": None, "sha256": None, "error": f"not valid base64: {exc}"}


@cli.command("inspect")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@max_bytes_option
def inspect_command(file: str, as_json: bool, max_bytes: int) -> None:
    """Show a readable summary of one package: parties, codes, subject, attachments."""
    try:
        with package_file(file, max_bytes) as path:
            info = _summary(file, path, max_bytes)
    except ParseError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_INVALID) from None
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    skip = {"attachments", "to", "from", "response_for"}
    for key, value in info.items():
        if key in skip or value is None:
            continue
        table.add_row(key.replace("_", " "), escape(str(value)))
    if info.get("from"):
        table.add_row("from", escape(f"{info['from']['organ_id']}  {info['from']['organ_name']}"))
    for recipient in info.get("to", []):
        table.add_row("to", escape(f"{recipient['organ_id']}  {recipient['organ_name']}"))
    if info.get("response_for"):
        rf = info["response_for"]
        table.add_row("answers", escape(f"{rf['document_id']} ({rf['code']}, {rf['organ_id']})"))
    stdout.print(table)
    if info.get("attachments"):
        attachments = Table("attachment", "type", "bytes", "sha256", title="attachments")
        for a in info["attachments"]:
            size = "?" if a["size"] is None else f"{a['size']:,}"
            digest = (a["sha256"] or a.get("error", "?"))[:16]
            attachments.add_row(escape(a["name"] or a["content_id"] or "?"),
                                escape(a["content_type"] or "?"), size, escape(digest))
        stdout.print(attachments)


def _organization(spec: str, option: str) -> Organization:
    code, sep, name = spec.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter(f"expected CODE:NAME, got {spec!r}", param_hint=option)
    return Organization(organ_id=code.strip(), organ_name=name.strip())


def _load_metadata(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    raw = read_input(path)
    try:
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read metadata: {exc}", param_hint="--metadata") from None
    if not isinstance(data, dict):
        raise click.BadParameter("metadata must be a table/object", param_hint="--metadata")
    return data


def _org_from_metadata(value: Any) -> Organization:
    if not isinstance(value, dict):
        raise click.BadParameter(f"organization must be a table, got {value!r}",
                                 param_hint="--metadata")
    allowed = set(Organization.__dataclass_fields__)
    unknown = set(value) - allowed
    if unknown:
        raise click.BadParameter(f"unknown organization keys {sorted(unknown)}",
                                 param_hint="--metadata")
    return Organization(**value)


@cli.command("new")
@click.option("--metadata", "metadata_file", help="TOML or JSON file with the package metadata.")
@click.option("--from", "sender", metavar="CODE:NAME", help="Sending agency.")
@click.option("--to", "recipients", metavar="CODE:NAME", multiple=True, help="Recipient (repeat).")
@click.option("--number", help="Document number (CodeNumber).")
@click.option("--notation", help="Document notation (CodeNotation).")
@click.option("--date", "date_", help="Promulgation date yyyy/MM/dd (default: today).")
@click.option("--place", help="Place of promulgation.")
@click.option("--type-name", help="Document type name, e.g. 'Công văn'.")
@click.option("--type", "type_", type=int, help="Document type (1 or 2).")
@click.option("--subject", help="Subject (trích yếu).")
@click.option("--content", help="Content (defaults to the subject).")
@click.option("--signer", help="Full name of the signer.")
@click.option("--priority", type=click.IntRange(0, 4), help="0 normal … 4 express, timed.")
@click.option("--attach", "attachments", multiple=True, type=click.Path(dir_okay=False),
              help="Attachment file (repeat).")
@click.option("--status", "status_code", type=click.Choice(sorted(STATUS_CODES)),
              help="Build a status package with this code instead of a document.")
@click.option("--in-reply-to", "reply_to", help="Document package a status answers.")
@click.option("-o", "--output", default="-", help="Output file (default: standard output).")
def new_command(**options: Any) -> None:
    """Build an edXML package from options and/or a metadata file and attachment files.

    \b
    Example:
      docaxis new --from "000.00.00.G22:Văn phòng Chính phủ" \\
                  --to "000.00.00.H41:UBND tỉnh Nghệ An" --number 12 --notation VPCP-TTĐT \\
                  --type-name "Công văn" --subject "V/v liên thông" --attach letter.pdf
    """
    try:
        package = _build(options)
    except BuildError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    # attachments are read in chunks as they are written: never whole in memory
    if options["output"] == "-":
        write_to(package, click.get_binary_stream("stdout"))
        return
    target = Path(options["output"])
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as out:
            size = write_to(package, out)
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(options["output"], exc.strerror or str(exc)) from None
    stderr.print(f"wrote {escape(options['output'])} ({size:,} bytes)")


def _build(options: dict[str, Any]) -> Any:
    meta = _load_metadata(options["metadata_file"])
    sender = (_organization(options["sender"], "--from") if options["sender"]
              else _org_from_metadata(meta["from"]) if "from" in meta else None)
    if sender is None:
        raise click.UsageError("--from (or 'from' in the metadata file) is required")
    if options["status_code"]:
        if not options["reply_to"]:
            raise click.UsageError("--status needs --in-reply-to PACKAGE")
        original = parse(read_input(options["reply_to"])).package
        if not isinstance(original, DocumentPackage):
            raise click.UsageError("--in-reply-to must be a document package")
        return (StatusBuilder().sender(sender).responding_to(original)
                .status(options["status_code"]).build())
    builder = DocumentBuilder().sender(sender)
    recipients = [_organization(r, "--to") for r in options["recipients"]] or [
        _org_from_metadata(r) for r in meta.get("to", [])
    ]
    for recipient in recipients:
        builder = builder.recipient(recipient)
    code = meta.get("code", {})
    number = options["number"] or code.get("number")
    notation = options["notation"] or code.get("notation")
    if number and notation:
        builder = builder.code(str(number), str(notation))
    date_text = options["date_"] or meta.get("date")
    try:
        date = (dt.datetime.strptime(str(date_text), "%Y/%m/%d").date() if date_text
                else dt.datetime.now(VN_TZ).date())
    except ValueError:
        raise click.BadParameter(f"{date_text!r} is not yyyy/MM/dd", param_hint="--date") from None
    builder = builder.promulgation(date, options["place"] or meta.get("place"))
    type_name = options["type_name"] or meta.get("type_name")
    if type_name:
        builder = builder.document_type(options["type_"] or meta.get("type", 1), type_name)
    subject = options["subject"] or meta.get("subject")
    if subject:
        builder = builder.subject(subject, options["content"] or meta.get("content"))
    signer = options["signer"] or meta.get("signer")
    if signer:
        builder = builder.signer(signer)
    priority = options["priority"] if options["priority"] is not None else meta.get("priority")
    if priority is not None:
        builder = builder.other_info(OtherInfo(priority=int(priority)))
    for name in [*options["attachments"], *meta.get("attachments", [])]:
        if not Path(name).is_file():
            raise InputError(name, "no such file")
        builder = builder.attach_file(name)
    return builder.build()
