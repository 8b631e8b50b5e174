"""What operators do to a node, as library calls (the CLI only prints): issue a credential
for an agency this node serves, describe parked messages, record a decision about them in
the trace of the documents concerned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from docaxis._errors import DocaxisError
from docaxis.edxml import ParseError, StatusPackage, parse
from docaxis.node._run import NodeConfig, load_directory
from docaxis.store import AgencyBinding, Event, Store
from docaxis.transport import Message


class NotServedHere(DocaxisError):
    """A credential asked for an agency the directory does not have, or another node serves."""

    default_code = "API-NOT-SERVED-HERE"


def issue_credential(config: NodeConfig, store: Store, agency: str | tuple[str, ...],
                     label: str | None = None, *, subtrees: tuple[str, ...] = ()) -> str:
    """A new API token (only its hash is kept) for ``agency`` — one code, or several —
    and every agency of the nodes ``subtrees``: what one document system acts for.

    Raises
    ------
    NotServedHere
        As :func:`check_binding`.
    ConfigError
        When the node's directory cannot be loaded.
    """
    agencies = (agency,) if isinstance(agency, str) else agency
    binding, codes = check_binding(config, store, agencies, subtrees)
    return store.issue_credential(agencies[0] if agencies else codes[0], label,
                                  binding=None if (len(agencies) == 1 and not subtrees)
                                  else binding)


def check_binding(config: NodeConfig, store: Store, agencies: tuple[str, ...],
                  subtrees: tuple[str, ...]) -> tuple[AgencyBinding, list[str]]:
    """The binding of a new credential and the agencies it covers, if this node may issue
    it: every agency served by this node, every subtree this node or one below it, and at
    least one agency.

    Raises
    ------
    NotServedHere
        ``API-UNKNOWN-AGENCY`` when the directory has no such agency,
        ``API-NOT-SERVED-HERE`` when another node serves it, ``VXP-UNKNOWN-NODE`` for a
        subtree that is not this node or below it, ``VXP-NO-AGENCY`` when the binding
        names no agency at all.
    ConfigError
        When the node's directory cannot be loaded.
    """
    directory = load_directory(config, store)
    for agency in agencies:
        known = directory.agencies.get(agency)
        if known is None:
            raise NotServedHere(f"{agency} is not in the node's directory: add it "
                                "(network.toml or docaxis directory import) first",
                                code="API-UNKNOWN-AGENCY")
        if known.node != config.node_id:
            raise NotServedHere(f"{agency} is served by node {known.node}, not "
                                f"{config.node_id}: issue its credential there")
    for node in subtrees:
        if node not in directory.nodes or config.node_id not in directory.path_to_root(node):
            raise NotServedHere(f"{node} is not node {config.node_id} or a node below it",
                                code="VXP-UNKNOWN-NODE")
    binding = AgencyBinding(agencies, subtrees)
    codes = binding.agency_codes(directory)
    if not codes:
        raise NotServedHere("name the agencies the credential acts for (--agency) or a "
                            "subtree of nodes with agencies (--subtree)", code="VXP-NO-AGENCY")
    return binding, codes


def issue_system(config: NodeConfig, store: Store, system_id: str, *,
                 agencies: tuple[str, ...] = (), subtrees: tuple[str, ...] = (),
                 may_register: bool = False, label: str | None = None) -> str:
    """A VXP credential for a document system acting for ``agencies`` and every agency
    of the nodes ``subtrees`` (each node and those below it); returns its secret (shown
    once, kept sealed). The binding is checked as an API token's (:func:`check_binding`):
    a system posts and reads here.

    Raises
    ------
    NotServedHere
        As :func:`check_binding`; ``VXP-BAD-SYSTEM-ID`` for a systemId that is not 1–100
        printable characters.
    SystemExists
        A live credential has this ``systemId``.
    """
    if not system_id.strip() or len(system_id) > 100 or not system_id.isprintable():
        raise NotServedHere(f"{system_id[:40]!r} is not a systemId (1–100 printable "
                            "characters)", code="VXP-BAD-SYSTEM-ID")
    check_binding(config, store, agencies, subtrees)
    return config.systems(store).issue(system_id, agencies=agencies, subtrees=subtrees,
                                       may_register=may_register, label=label)


def describe_parked(message: Message) -> tuple[str | None, str]:
    """(DocumentId, kind) of a parked message, as far as its bytes can be read."""
    if message.headers.get("x-docaxis-kind") == "hop-receipt":
        return None, "hop receipt"
    try:
        parsed = parse(message.body)
    except ParseError as exc:
        return None, f"unreadable ({exc.code})"
    return parsed.package.document_id, parsed.kind


def record_parked_decision(config: NodeConfig, messages: Iterable[Message], action: str,
                           reason: str | None) -> None:
    """An operator's decision on parked messages (``parked_replayed`` /
    ``parked_discarded``), as an event in the trace of each document concerned."""
    events, documents = [], []
    for message in messages:
        try:
            parsed = parse(message.body)
        except ParseError:
            continue  # not a package: no document's trace to write into
        package = parsed.package
        owner = (package.header.response_for.organ_id
                 if isinstance(package, StatusPackage) and package.header.response_for
                 else package.sender)
        events.append(Event(config.node_id, action, dt.datetime.now(dt.UTC), None,
                            f"by an operator: {reason or 'no reason given'} "
                            f"(message {message.message_id})", parsed.sha256))
        documents.append((package.document_id, owner))
    store = config.open_store(migrate=False)
    try:
        store.add_events(events, documents=documents)
    finally:
        store.close()
