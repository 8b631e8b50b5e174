"""``demo``, ``serve``, ``trace``, ``token``, ``parked`` and ``directory``: running nodes and
following documents."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import tempfile
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from docaxis.cli._main import EXIT_INVALID, EXIT_OK, EXIT_USAGE, cli, stderr, stdout
from docaxis.cli._story import TRACE_SCHEMA, print_story, trace_json, when
from docaxis.dsig import TimestampError, TimestampVerifier
from docaxis.edxml import STATUS_CODES
from docaxis.node import (
    DEFAULT_AMQP,
    ConfigError,
    NodeConfig,
    NotServedHere,
    check_node,
    demo,
    describe_parked,
    import_directory,
    issue_credential,
    issue_system,
    load_directory,
    open_store,
    record_parked_decision,
    run_loop,
    serve,
)
from docaxis.relay import transfer_lane
from docaxis.store import (
    KINDS,
    LOCAL_TIME,
    QUERY_STATES,
    DocumentQuery,
    QueryError,
    Store,
    SystemExists,
    Trace,
)

_REQUIRED_CONFIG = click.option("--config", "config_path", required=True,
                                type=click.Path(exists=True, dir_okay=False),
                                help="The node's node.toml.")
_CONFIG = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                       help="The node's node.toml.")


def print_trace(trace: Trace, title: str | None = None) -> None:
    table = Table("time (UTC)", "node", "event", "agency", "detail",
                  title=title or f"trace of {trace.document_id}", title_justify="left")
    for event in trace.events:
        table.add_row(event.at.strftime("%H:%M:%S.%f")[:-3], escape(event.node),
                      escape(event.kind), event.agency or "", escape(event.detail or ""))
    stdout.print(table)
    for agency, (code, at) in trace.statuses.items():
        label = STATUS_CODES.get(code)
        meaning = f"{label.vi} — {label.en}" if label else "unknown code"
        stdout.print(f"  latest status of {agency}: [bold]{code}[/] {escape(meaning)} "
                     f"({at:%Y-%m-%d %H:%M:%S}Z)")


@cli.command("demo")
@click.option("--amqp-url", default=DEFAULT_AMQP, show_default=True,
              help="RabbitMQ to use when reachable (else the in-process broker).")
@click.option("--in-process", is_flag=True, help="Do not try RabbitMQ.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="Working folder (default: a new temporary one).")
@click.option("--keep-running", is_flag=True, help="Leave the nodes' APIs up afterwards.")
@click.option("--base-port", default=8100, show_default=True,
              help="With --keep-running: the 8 nodes' APIs listen from this port on.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait per step.")
def demo_command(amqp_url: str, in_process: bool, folder: Path | None, keep_running: bool,
                 base_port: int, timeout: float) -> None:
    """Build a dev PKI and a four-tier network, send documents and receipts between tiers,
    and print each document's trace. Exit 0 when everything arrived."""
    work = folder or Path(tempfile.mkdtemp(prefix="docaxis-demo-"))

    async def run() -> int:
        outcome = await demo(work, amqp_url=None if in_process else amqp_url, timeout=timeout,
                             keep_running=keep_running, base_port=base_port,
                             say=lambda m: stderr.print(f"[dim]{escape(m)}[/]"))
        stdout.print(f"\n[bold]docaxis demo[/] — 8 nodes, {outcome.broker}, data in "
                     f"{escape(str(work))}\n")
        for doc in outcome.documents:
            verdict = "[green]delivered[/]" if doc.delivered else "[bold red]NOT delivered[/]"
            stdout.print(f"[bold]{escape(doc.title)}[/]: {verdict}")
            if doc.trace is not None:
                print_trace(doc.trace, f"{doc.document_id} — as the origin node "
                                       f"{doc.origin} sees it")
            stdout.print()
        stdout.print("duplicate post → same acceptance, one delivery: "
                     + ("[green]yes[/]" if outcome.duplicate_same_acceptance else "[red]no[/]"))
        if keep_running:
            stdout.print("\nAPI tokens (agency: base URL and Bearer token):")
            for code, value in outcome.tokens.items():
                stdout.print(f"  {code}: {value}")
            stdout.print("Ctrl-C to stop (the demo's queues and exchanges are removed).")
            try:
                await asyncio.Event().wait()
            finally:  # Ctrl-C cancels this task: clean up before exiting
                if outcome.close is not None:
                    await outcome.close()
        return EXIT_OK if outcome.ok else EXIT_INVALID

    try:
        raise SystemExit(asyncio.run(run()))
    except KeyboardInterrupt:
        raise SystemExit(EXIT_OK) from None


@cli.command("serve")
@_CONFIG
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Consumer processes for this node (default: [node] workers, or 1).")
def serve_command(config_path: str | None, workers: int | None) -> None:
    """Run one node (API + consumers + outbox) from its node.toml."""
    if not config_path:
        raise click.UsageError("--config node.toml is required")
    try:
        config = NodeConfig.load(config_path)
        if workers is not None:
            config = dataclasses.replace(config, workers=workers)
        run_loop(serve(config, ready=lambda url: stderr.print(
            f"node {config.node_id} serving on {url} (OpenAPI at {url}/docs)")))
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        pass


def _store(config_path: str | None, database: str | None, blobs: str | None, *,
           migrate: bool = True) -> Store:
    """The node's store; read-only commands pass ``migrate=False`` (they refuse an
    out-of-date schema rather than change it)."""
    try:
        if config_path:
            return NodeConfig.load(config_path).open_store(migrate=migrate)
        if database and blobs:
            return open_store(database, Path(blobs), migrate=migrate)
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    raise click.UsageError("give --config node.toml, or --database URL and --blobs DIR")


@cli.group("db")
def db_group() -> None:
    """The node's database schema."""


@db_group.command("upgrade")
@_REQUIRED_CONFIG
def db_upgrade_command(config_path: str) -> None:
    """Create or upgrade the node's schema to the newest revision (also done at serve)."""
    try:
        NodeConfig.load(config_path).open_store(migrate=True).close()
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    stdout.print("the database is at the newest schema")


@cli.group("node")
def node_group() -> None:
    """Operating a node."""


@node_group.command("init")
@click.option("--id", "node_id", required=True, help="The node's id in the directory.")
@click.option("-o", "--output", default="node.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The file to write.")
@click.option("--directory", default=None,
              help="The network's directory (default: network.toml beside the file).")
@click.option("--data", default=None, help="The node's data folder (default: var/<id> "
              "beside the file): blob log, and SQLite without --database.")
@click.option("--database", default=None,
              help="SQLAlchemy URL of the node's database (default: SQLite in --data).")
@click.option("--amqp-url", "amqp_urls", multiple=True,
              help="The broker (the node's vhost); repeat for the members of a cluster.")
@click.option("--listen", default="127.0.0.1:8100", show_default=True,
              help="host:port of the API and the VXP endpoint.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes, each serving the API and consuming (≈ one per core).")
@click.option("--key", default=None, help="The node certificate's key (signs hop receipts).")
@click.option("--certificate", default=None, help="The node certificate (or its chain).")
@click.option("--anchor", "anchors", multiple=True,
              help="A trust anchor: the signature CA's root certificate (repeat).")
@click.option("--crl", "crls", multiple=True, help="A CRL file or folder (repeat).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def node_init_command(node_id: str, output: str, directory: str | None, data: str | None,
                      database: str | None, amqp_urls: tuple[str, ...], listen: str,
                      workers: int, key: str | None, certificate: str | None,
                      anchors: tuple[str, ...], crls: tuple[str, ...], force: bool) -> None:
    """Write a node.toml (paths given here are relative to the current folder; in the
    file, to the file's folder), read it back as serve reads it, and say what to run
    next. An existing file is kept unless --force."""
    target = Path(output).absolute()
    if target.exists() and not force:
        stderr.print(f"[bold red]CONFIG-EXISTS[/] {escape(str(target))} exists; give --force "
                     "to replace it")
        raise SystemExit(EXIT_USAGE)
    if (key is None) != (certificate is None):
        raise click.UsageError("--key and --certificate go together")

    def here(path: str) -> Path:
        return Path(path).absolute()

    settings: dict[str, object] = {"listen": listen, "workers": workers,
                                   "anchors": [here(a) for a in anchors],
                                   "crls": [here(c) for c in crls]}
    if directory is not None:
        settings["directory"] = here(directory)
    if data is not None:
        settings["data"] = here(data)
    if database is not None:
        settings["database"] = database
    if amqp_urls:
        settings["amqp_url"] = list(amqp_urls)
    if key is not None and certificate is not None:
        settings["node_key"], settings["node_certificate"] = here(key), here(certificate)
    NodeConfig.new(node_id, target.parent, **settings).write(target)
    try:
        NodeConfig.load(target)
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    stdout.print(f"wrote {escape(output)}; next: docaxis db upgrade --config "
                 f"{escape(output)}, then docaxis node check --config {escape(output)}")


@node_group.command("check")
@_REQUIRED_CONFIG
def node_check_command(config_path: str) -> None:
    """Check everything the node needs before it serves: database (reachable, migrated),
    directory, trust anchors and CRLs (present, fresh), node key, broker, listen address.
    Exit 0 when nothing failed (warnings allowed), 1 otherwise."""
    try:
        config = NodeConfig.load(config_path)
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    checks = check_node(config)
    style = {"ok": "green", "warning": "yellow", "failed": "bold red"}
    table = Table("check", "", "detail", title=f"node {config.node_id}", title_justify="left")
    for check in checks:
        table.add_row(check.name, f"[{style[check.outcome]}]{check.outcome}[/]",
                      escape(check.detail))
    stdout.print(table)
    raise SystemExit(EXIT_INVALID if any(c.outcome == "failed" for c in checks) else EXIT_OK)


_LANG = click.option("--lang", type=click.Choice(["vi", "en"]), default="vi",
                     show_default=True, help="Labels and sentences in Vietnamese or English.")
_UTC = click.option("--utc", is_flag=True, help="Times in UTC (default: Vietnam time, UTC+7).")


@cli.command("trace")
@click.argument("document")
@_CONFIG
@click.option("--database", help="Store URL (instead of --config).")
@click.option("--blobs", help="Blob folder (with --database).")
@_LANG
@_UTC
@click.option("--json", "as_json", is_flag=True,
              help=f"The stable JSON form (schema {TRACE_SCHEMA}, docs/clerks.md).")
def trace_command(document: str, config_path: str | None, database: str | None,
                  blobs: str | None, lang: str, utc: bool, as_json: bool) -> None:
    """Tell a document's story: each recipient's outcome, then the timeline.

    DOCUMENT is a DocumentId, a number and notation (12/VPCP-TTĐT, with or without
    diacritics), or the start of a DocumentId or of the package's SHA-256; when several
    documents match, they are listed and nothing is traced (exit 2)."""
    store = _store(config_path, database, blobs, migrate=False)
    found = store.find_documents(document)
    if len(found) > 1:
        stderr.print(f"{len(found)} documents match {escape(document)!r}; give one of "
                     "these DocumentIds:")
        for candidate in found:
            stderr.print(f"  {escape(candidate.document_id or '?')}  {escape(candidate.code or '')}"
                         f"  {escape(candidate.sender or '')}  "
                         f"{when(candidate.received_at, lang, utc)}")
        raise SystemExit(EXIT_USAGE)
    summary = found[0] if found else None
    if summary is not None and summary.document_id:
        trace = store.trace(summary.document_id, sender=summary.sender)
    else:
        trace = store.trace(document)
    if as_json:
        click.echo(json.dumps(trace_json(trace, summary), ensure_ascii=False, indent=2))
    elif not trace.events and not trace.statuses:
        stderr.print(f"no document {escape(document)} in this node's store")
        raise SystemExit(EXIT_INVALID)
    else:
        print_story(trace, summary, names=_agency_names(config_path, store), lang=lang,
                    utc=utc)


@cli.command("documents")
@_CONFIG
@click.option("--database", help="Store URL (instead of --config).")
@click.option("--blobs", help="Blob folder (with --database).")
@click.option("--number", help="Number and notation (12/VPCP-TTĐT; diacritics optional), "
                               "or a number alone.")
@click.option("--sender", "senders", multiple=True, help="From this agency (repeatable).")
@click.option("--recipient", help="Addressed to this agency.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
              help="Received on or after (Vietnam time).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
              help="Received before (Vietnam time).")
@click.option("--kind", type=click.Choice(KINDS))
@click.option("--state", type=click.Choice(QUERY_STATES))
@click.option("--overdue", type=click.IntRange(0), metavar="DAYS",
              help="In a recipient's inbox more than DAYS working days without its 03.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@_LANG
@_UTC
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def documents_command(config_path: str | None, database: str | None, blobs: str | None,
                      number: str | None, senders: tuple[str, ...], recipient: str | None,
                      since: dt.datetime | None, until: dt.datetime | None, kind: str | None,
                      state: str | None, overdue: int | None, limit: int, lang: str, utc: bool,
                      as_json: bool) -> None:
    """List this node's documents, newest first, with their state."""
    try:
        query = DocumentQuery(number=number, senders=senders, recipient=recipient,
                              since=_local(since), until=_local(until), kind=kind,
                              state=state, overdue_days=overdue, limit=limit)
    except QueryError as exc:
        raise click.UsageError(str(exc)) from None
    found = _store(config_path, database, blobs, migrate=False).documents(query)
    if as_json:
        for summary in found:
            click.echo(json.dumps(summary.to_dict(), ensure_ascii=False))
        return
    if not found:
        stderr.print("no document matches" if lang == "en" else "không có văn bản nào khớp")
        return
    for summary in found:
        title = summary.code or f"{summary.kind} {summary.status_code or ''}".strip()
        stdout.print(f"[bold]{escape(title)}[/]  "
                     f"{escape(summary.state)}  {when(summary.received_at, lang, utc)}  "
                     f"{escape(summary.sender or '')}")
        stdout.print(f"    {escape(summary.document_id or '')}")
        if summary.subject:
            stdout.print(f"    {escape(summary.subject)}", style="dim")


def _local(value: dt.datetime | None) -> dt.datetime | None:
    """A date typed by a clerk, in Vietnam time."""
    return value.replace(tzinfo=LOCAL_TIME) if value is not None else None


def _agency_names(config_path: str | None, store: Store) -> dict[str, str]:
    """Agency names from the node's directory, when a node.toml was given."""
    if not config_path:
        return {}
    try:
        directory = load_directory(NodeConfig.load(config_path), store)
    except ConfigError:
        return {}
    return {code: agency.name for code, agency in directory.agencies.items() if agency.name}


@cli.group("audit")
def audit_group() -> None:
    """Evidence for auditors: the node's message log, checked."""


@audit_group.command("verify")
@_CONFIG
@click.option("--database", help="Store URL (instead of --config), e.g. an exported copy.")
@click.option("--blobs", help="Blob folder (with --database).")
@click.option("--tsa-anchor", "tsa_anchors", multiple=True, type=click.Path(dir_okay=False),
              help="A root certificate of the timestamping authority (repeatable; default: "
                   "[audit] tsa_anchors of --config).")
@click.option("--no-packages", is_flag=True, help="Check the log's chain only, not the bytes.")
@click.option("--json", "as_json", is_flag=True)
def audit_verify_command(config_path: str | None, database: str | None, blobs: str | None,
                         tsa_anchors: tuple[str, ...], no_packages: bool,
                         as_json: bool) -> None:
    """Check the whole message log: every record's hash and its link to the one before
    (a record changed, deleted or inserted breaks it there), every RFC 3161 timestamp of
    the chain heads (against the TSA anchors) and the records it covers, and every logged
    package's bytes against its SHA-256. Names the first broken record and the records
    still waiting for a stamp. Exit 0 intact, 1 not."""
    try:
        verifier = (TimestampVerifier.load(tsa_anchors) if tsa_anchors
                    else NodeConfig.load(config_path).tsa_verifier() if config_path else None)
    except (TimestampError, ConfigError) as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    report = _store(config_path, database, blobs, migrate=False).audit(
        check_packages=not no_packages, stamps=verifier)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        stdout.print(f"{report.records} log records in {report.chains} chain(s)"
                     + (f" ({report.unchained} written before the log was chained)"
                        if report.unchained else "")
                     + (f"; {report.packages} packages' bytes checked" if not no_packages
                        else ""))
        stamps = report.stamps + report.stamps_unchecked
        if stamps:
            stdout.print(f"{stamps} timestamp(s), the last at "
                         f"{report.last_stamp.isoformat() if report.last_stamp else '-'}"
                         + (f"; {report.stamps_unchecked} not checked (give --tsa-anchor)"
                            if report.stamps_unchecked else "; each token verified"))
        if report.unstamped:
            since = report.oldest_unstamped.isoformat() if report.oldest_unstamped else "-"
            stdout.print(f"[yellow]{report.unstamped} record(s) not stamped yet[/] (the "
                         f"oldest written at {since}): they wait for the next timestamp")
        for index, (_record, _sha256, code, message) in enumerate(report.breaks):
            prefix = "first break: " if index == 0 else ""
            stdout.print(f"[bold red]{code}[/] {prefix}{escape(message)}")
        stdout.print("[green]intact[/]" if report.intact
                     else f"[bold red]{len(report.breaks)} break(s)[/]")
    raise SystemExit(EXIT_OK if report.intact else EXIT_INVALID)


@cli.command("token")
@_CONFIG
@click.option("--database", help="Store URL (instead of --config).")
@click.option("--blobs", help="Blob folder (with --database).")
@click.option("--agency", "agencies", multiple=True,
              help="An agency the new credential acts for (repeat for a shared system).")
@click.option("--subtree", "subtrees", multiple=True,
              help="Every agency of this node (or a node below it) and the nodes below it.")
@click.option("--label", help="What the token is for.")
@click.option("--list", "list_them", is_flag=True, help="List the credentials (no tokens).")
@click.option("--revoke", "revoke_id", type=int, help="Revoke the credential with this id.")
@click.option("--revoke-agency", help="Revoke every credential of this agency.")
def token_command(config_path: str | None, database: str | None, blobs: str | None,
                  agencies: tuple[str, ...], subtrees: tuple[str, ...], label: str | None,
                  list_them: bool, revoke_id: int | None, revoke_agency: str | None) -> None:
    """Issue an API credential for an agency's document system (shown once; only a hash
    is kept) — one that acts for several agencies with --agency repeated and/or
    --subtree — or list or revoke credentials. A credential is issued only for agencies
    of the directory that this node serves."""
    chosen = [bool(agencies or subtrees), list_them, revoke_id is not None,
              bool(revoke_agency)]
    if sum(chosen) != 1:
        raise click.UsageError("give one of --agency/--subtree, --list, --revoke or "
                               "--revoke-agency")
    store = _store(config_path, database, blobs)
    try:
        if list_them:
            table = Table("id", "agencies", "label", "created (UTC)", "revoked (UTC)")
            for credential in store.credentials():
                table.add_row(str(credential.id), credential.binding.describe(),
                              escape(credential.label or ""),
                              f"{credential.created_at:%Y-%m-%d %H:%M}",
                              f"{credential.revoked_at:%Y-%m-%d %H:%M}"
                              if credential.revoked_at else "")
            stdout.print(table)
        elif revoke_id is not None:
            if not store.revoke_credential(revoke_id):
                stderr.print(f"no live credential {revoke_id}")
                raise SystemExit(EXIT_INVALID)
            stdout.print(f"credential {revoke_id} revoked")
        elif revoke_agency:
            stdout.print(f"{store.revoke_credentials(revoke_agency)} credential(s) of "
                         f"{escape(revoke_agency)} revoked")
        else:
            if not config_path:  # --database/--blobs: no directory to check against
                if subtrees or len(agencies) != 1:
                    raise click.UsageError("several agencies or --subtree need --config "
                                           "(the directory to check them against)")
                click.echo(store.issue_credential(agencies[0], label))
                return
            try:
                token = issue_credential(NodeConfig.load(config_path), store, agencies,
                                         label, subtrees=subtrees)
            except (NotServedHere, ConfigError) as exc:
                stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
                raise SystemExit(EXIT_INVALID if isinstance(exc, NotServedHere)
                                 else EXIT_USAGE) from None
            click.echo(token)
    finally:
        store.close()


@cli.group("system")
def system_group() -> None:
    """VXP credentials of agency document systems (systemId + secret, bound to agencies)."""


def _node_store(config_path: str) -> tuple[NodeConfig, Store]:
    try:
        config = NodeConfig.load(config_path)
        return config, config.open_store()
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None


_REQUIRED_CONFIG = click.option("--config", "config_path", required=True,
                                type=click.Path(exists=True, dir_okay=False),
                                help="The node's node.toml.")


@system_group.command("issue")
@_REQUIRED_CONFIG
@click.argument("system_id")
@click.option("--agency", "agencies", multiple=True, help="An agency it acts for (repeat).")
@click.option("--subtree", "subtrees", multiple=True,
              help="Every agency of this node and the nodes below it (repeat).")
@click.option("--may-register", is_flag=True,
              help="May add and remove agencies of this node (registerAgency/deleteAgency).")
@click.option("--label", help="What the system is.")
def system_issue(config_path: str, system_id: str, agencies: tuple[str, ...],
                 subtrees: tuple[str, ...], may_register: bool, label: str | None) -> None:
    """Issue a credential; prints the secret once (it is kept sealed, never shown again)."""
    config, store = _node_store(config_path)
    try:
        secret = issue_system(config, store, system_id, agencies=agencies, subtrees=subtrees,
                              may_register=may_register, label=label)
    except (NotServedHere, SystemExists, ConfigError) as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_INVALID) from None
    finally:
        store.close()
    click.echo(secret)


@system_group.command("list")
@_REQUIRED_CONFIG
def system_list(config_path: str) -> None:
    """Every document system: its agencies and subtrees, never a secret."""
    config, store = _node_store(config_path)
    try:
        table = Table("systemId", "agencies", "subtrees", "register", "label", "created (UTC)",
                      "rotated (UTC)", "revoked (UTC)")
        for system in config.systems(store).systems():
            table.add_row(escape(system.system_id), " ".join(system.binding.agencies),
                          " ".join(system.binding.subtrees), "yes" if system.may_register else "",
                          escape(system.label or ""), f"{system.created_at:%Y-%m-%d %H:%M}",
                          f"{system.rotated_at:%Y-%m-%d %H:%M}" if system.rotated_at else "",
                          f"{system.revoked_at:%Y-%m-%d %H:%M}" if system.revoked_at else "")
        stdout.print(table)
    finally:
        store.close()


@system_group.command("rotate")
@_REQUIRED_CONFIG
@click.argument("system_id")
def system_rotate(config_path: str, system_id: str) -> None:
    """A new secret (printed once); the old one stops working within 5 s (running nodes
    remember a credential that long)."""
    config, store = _node_store(config_path)
    try:
        secret = config.systems(store).rotate(system_id)
    finally:
        store.close()
    if secret is None:
        stderr.print(f"no live system {escape(system_id)}")
        raise SystemExit(EXIT_INVALID)
    click.echo(secret)


@system_group.command("revoke")
@_REQUIRED_CONFIG
@click.argument("system_id")
def system_revoke(config_path: str, system_id: str) -> None:
    """Revoke a system's credential (refused by running nodes within 5 s)."""
    config, store = _node_store(config_path)
    try:
        revoked = config.systems(store).revoke(system_id)
    finally:
        store.close()
    if not revoked:
        stderr.print(f"no live system {escape(system_id)}")
        raise SystemExit(EXIT_INVALID)
    stdout.print(f"system {escape(system_id)} revoked")


@cli.command("parked")
@_CONFIG
@click.option("--replay", "replay_id", metavar="ID|all",
              help="Put a parked message (or all) back on the queue, with a fresh retry budget.")
@click.option("--discard", "discard_id", metavar="ID|all",
              help="Delete a parked message (or all) for good.")
@click.option("--reason", help="Why (recorded in the trace of the document; required with "
                               "--discard).")
@click.option("--transfers", is_flag=True,
              help="The node's transfer lane (chunks of large packages) instead of its queue.")
def parked_command(config_path: str | None, replay_id: str | None, discard_id: str | None,
                   reason: str | None, transfers: bool) -> None:
    """List the messages parked in this node's dead-letter queue (document, reason), or
    replay or discard one or all of them — the decision and its reason go into the trace
    of each document concerned."""
    if not config_path:
        raise click.UsageError("--config node.toml is required")
    if replay_id and discard_id:
        raise click.UsageError("give --replay or --discard, not both")
    if discard_id and not reason:
        raise click.UsageError("--discard needs --reason (it goes into the trace)")
    config = NodeConfig.load(config_path)
    if not config.amqp_url:
        stderr.print("this node runs the in-process broker: nothing is parked across restarts")
        raise SystemExit(EXIT_OK)

    queue = transfer_lane(config.node_id) if transfers else config.node_id

    async def run() -> None:
        from docaxis.transport import PARKED_REASON_HEADER, RabbitMQBroker

        broker = RabbitMQBroker(config.amqp_url or "")
        await broker.connect()
        try:
            messages = await broker.parked(queue)
            chosen_id = replay_id or discard_id
            if chosen_id is None:
                table = Table("message id", "document", "kind", "attempt", "reason",
                              title=f"parked at {queue}", title_justify="left")
                for message in messages:
                    document, kind = describe_parked(message)
                    table.add_row(message.message_id, escape(document or "—"), kind,
                                  str(message.attempt),
                                  escape(message.headers.get(PARKED_REASON_HEADER, "")))
                stdout.print(table)
                return
            target = None if chosen_id == "all" else chosen_id
            concerned = [m for m in messages if target in (None, m.message_id)]
            if not concerned:
                stderr.print(f"no parked message {escape(chosen_id)}")
                raise SystemExit(EXIT_INVALID)
            if replay_id:
                count = await broker.replay_parked(queue, target)
                action = "parked_replayed"
            else:
                count = await broker.discard_parked(queue, target)
                action = "parked_discarded"
            record_parked_decision(config, concerned, action, reason)
            verb = "replayed" if replay_id else "discarded"
            stdout.print(f"{verb} {count} parked message(s)")
        finally:
            await broker.close()

    asyncio.run(run())


@cli.group("directory")
def directory_group() -> None:
    """The node's directory: network.toml, with the entries kept in its database over it."""


@directory_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_REQUIRED_CONFIG
@click.option("--replace", is_flag=True,
              help="Keep exactly the file's entries in the database (else add / update).")
def directory_import_command(file: str, config_path: str, replace: bool) -> None:
    """Put a network.toml's nodes and agencies into the node's database (checked first:
    the result must be a consistent directory that still holds this node)."""
    config = NodeConfig.load(config_path)
    store = config.open_store()
    try:
        directory = import_directory(config, store, file, replace=replace)
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_INVALID) from None
    finally:
        store.close()
    stdout.print(f"the node's directory now has {len(directory.nodes)} node(s) and "
                 f"{len(directory.agencies)} agencies; restart its processes to use it")


@directory_group.command("export")
@_REQUIRED_CONFIG
def directory_export_command(config_path: str) -> None:
    """Print the directory the node runs with (file and database together) as TOML."""
    config = NodeConfig.load(config_path)
    try:
        store = config.open_store(migrate=False)
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_USAGE) from None
    try:
        click.echo(load_directory(config, store).to_toml(), nl=False)
    except ConfigError as exc:
        stderr.print(f"[bold red]{exc.code}[/] {escape(exc.message)}")
        raise SystemExit(EXIT_INVALID) from None
    finally:
        store.close()
