"""Agencies, nodes, tiers and routes: the topology of the axis, as data.

Which agency lives on which node, and which node is whose parent, is directory data
(ARCHITECTURE.md, "topology is data"): a reorganisation — a tier abolished, a commune
moved — is a change of this data, never of code. Routing is hop by hop along the node
tree: deliver locally, go down to the child whose subtree holds the destination, or go
up to the parent.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from docaxis._errors import DocaxisError
from docaxis.identifiers import AgencyCode, InvalidAgencyCode

RouteKind = Literal["local", "down", "up"]


class DirectoryError(DocaxisError):
    """The directory data is inconsistent (unknown parent, cycle, duplicate …)."""

    default_code = "DIR-INVALID"


class UnknownDestination(DocaxisError):
    """No agency with this code is in the directory: the package cannot be routed."""

    default_code = "RELAY-UNKNOWN-DESTINATION"


@dataclass(frozen=True)
class Node:
    """An axis node (nút trục): one per central/province/district/commune installation."""

    id: str
    tier: str
    parent: str | None = None
    amqp_url: str | None = None
    http: str | None = None


@dataclass(frozen=True)
class SignerRule:
    """Certificates of the CA ``issuer`` (RFC 4514 subject, or ``sha256:<fingerprint>``)
    whose subject carries every ``(attribute, value)`` of ``subject``: they sign for the
    agency (a directory entry ``[[agency.signer]]``)."""

    issuer: str
    subject: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Agency:
    """An agency (cơ quan) and the node its document system talks to.

    ``certificate_fingerprints`` (SHA-256, hex) pin the certificates it signs with and
    ``signers`` name the CA and subject attributes of the others: the binding of a
    signer to the agency, besides docaxis's own subjectAltName URI.
    """

    code: str
    name: str
    node: str
    tier: str | None = None
    certificate_fingerprints: tuple[str, ...] = ()
    signers: tuple[SignerRule, ...] = ()


@dataclass(frozen=True)
class Route:
    """The next hop for a destination, seen from one node."""

    kind: RouteKind
    node: str  # the node to hand over to (the current node itself when local)
    destination: Agency


@dataclass
class Directory:
    """Nodes and agencies, validated, with routing.

    Examples
    --------
    >>> directory = Directory.from_toml("network.toml")  # doctest: +SKIP
    >>> directory.route("hanoi", "000.00.00.G22")  # doctest: +SKIP
    Route(kind='up', node='central', destination=Agency(code='000.00.00.G22', ...))
    """

    nodes: dict[str, Node] = field(default_factory=dict)
    agencies: dict[str, Agency] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check()

    # -- loading ---------------------------------------------------------------------
    @classmethod
    def build(cls, nodes: Iterable[Node], agencies: Iterable[Agency]) -> Directory:
        node_map: dict[str, Node] = {}
        for node in nodes:
            if node.id in node_map:
                raise DirectoryError(f"node {node.id!r} is listed twice")
            node_map[node.id] = node
        agency_map: dict[str, Agency] = {}
        for agency in agencies:
            if agency.code in agency_map:
                raise DirectoryError(f"agency {agency.code} is listed twice")
            agency_map[agency.code] = agency
        return cls(node_map, agency_map)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Directory:
        """From the TOML layout: ``[node.<id>]`` tables and ``[[agency]]`` entries."""
        return cls.build(*cls.entries(data))

    @staticmethod
    def entries(data: Mapping[str, Any]) -> tuple[list[Node], list[Agency]]:
        """The nodes and agencies a TOML mapping lists, not yet checked as a whole (a
        partial file, to be laid over a directory)."""
        nodes = [Node(id=node_id, tier=_req(spec, "tier", f"node.{node_id}"),
                      parent=spec.get("parent"), amqp_url=spec.get("amqp_url"),
                      http=spec.get("http"))
                 for node_id, spec in (data.get("node") or {}).items()]
        agencies = [Agency(code=_req(spec, "code", "agency"), name=spec.get("name", ""),
                           node=_req(spec, "node", "agency"), tier=spec.get("tier"),
                           certificate_fingerprints=_fingerprints(spec),
                           signers=_signers(spec))
                    for spec in data.get("agency") or []]
        return nodes, agencies

    @classmethod
    def from_toml(cls, path: Path | str) -> Directory:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DirectoryError(f"{path}: {exc}") from None
        return cls.from_mapping(data)

    def overlaid(self, nodes: Iterable[Node], agencies: Iterable[Agency]) -> Directory:
        """This directory with ``nodes`` and ``agencies`` added, or replacing those with the
        same id / code — a node's database entries over its network.toml. The result is
        checked like any directory.

        Raises
        ------
        DirectoryError
            If the result is inconsistent (an agency on an unknown node, a cycle …).
        """
        merged_nodes = dict(self.nodes)
        merged_nodes.update((node.id, node) for node in nodes)
        merged_agencies = dict(self.agencies)
        merged_agencies.update((agency.code, agency) for agency in agencies)
        return Directory(merged_nodes, merged_agencies)

    def to_toml(self, *, passwords: bool = False) -> str:
        """This directory in the layout :meth:`from_toml` reads (an operator's export).

        Passwords in broker URLs are written ``***`` unless ``passwords``; importing such
        a file keeps the passwords the node has."""
        lines: list[str] = []
        for node in self.nodes.values():
            lines.append(f"[node.{_quote(node.id)}]")
            amqp = node.amqp_url if passwords or not node.amqp_url else mask_url(node.amqp_url)
            lines += [f"{key} = {_quote(value)}" for key, value in (
                ("tier", node.tier), ("parent", node.parent), ("amqp_url", amqp),
                ("http", node.http)) if value]
            lines.append("")
        for agency in self.agencies.values():
            lines.append("[[agency]]")
            lines += [f"{key} = {_quote(value)}" for key, value in (
                ("code", agency.code), ("name", agency.name), ("node", agency.node),
                ("tier", agency.tier)) if value]
            if agency.certificate_fingerprints:
                lines.append("certificate_fingerprints = [" + ", ".join(
                    _quote(fp) for fp in agency.certificate_fingerprints) + "]")
            for rule in agency.signers:
                lines += ["[[agency.signer]]", f"issuer = {_quote(rule.issuer)}",
                          "subject = { " + ", ".join(f"{_quote(k)} = {_quote(v)}"
                                                      for k, v in rule.subject) + " }"]
            lines.append("")
        return "\n".join(lines)

    def _check(self) -> None:
        for node in self.nodes.values():
            if node.parent is not None and node.parent not in self.nodes:
                raise DirectoryError(f"node {node.id!r} names unknown parent {node.parent!r}")
        for node in self.nodes.values():  # no cycles: every chain of parents ends
            seen = {node.id}
            current = node
            while current.parent is not None:
                if current.parent in seen:
                    raise DirectoryError(f"node parents form a cycle through {node.id!r}")
                seen.add(current.parent)
                current = self.nodes[current.parent]
        for agency in self.agencies.values():
            try:
                AgencyCode.parse(agency.code)
            except InvalidAgencyCode as exc:
                raise DirectoryError(f"agency {agency.code!r}: {exc.reason}",
                                     code=exc.code) from None
            if agency.node not in self.nodes:
                raise DirectoryError(f"agency {agency.code} names unknown node {agency.node!r}")

    # -- queries ---------------------------------------------------------------------
    def agency(self, code: str) -> Agency:
        """The agency with this code.

        Raises
        ------
        UnknownDestination
            If the code is not in the directory.
        """
        try:
            return self.agencies[code]
        except KeyError:
            raise UnknownDestination(f"agency {code} is not in the directory") from None

    def path_to_root(self, node_id: str) -> list[str]:
        """``node_id`` and its ancestors, nearest first."""
        path = [node_id]
        node = self.nodes[node_id]
        while node.parent is not None:
            path.append(node.parent)
            node = self.nodes[node.parent]
        return path

    def children(self, node_id: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.parent == node_id]

    def route(self, at_node: str, destination: str) -> Route:
        """The next hop, seen from ``at_node``, for a package to agency ``destination``.

        Raises
        ------
        UnknownDestination
            If the destination agency is unknown or unreachable from ``at_node``.
        """
        if at_node not in self.nodes:
            raise DirectoryError(f"unknown node {at_node!r}")
        agency = self.agency(destination)
        home = agency.node
        if home == at_node:
            return Route("local", at_node, agency)
        home_path = self.path_to_root(home)
        if at_node in home_path:  # the destination lives below us: one step down
            return Route("down", home_path[home_path.index(at_node) - 1], agency)
        parent = self.nodes[at_node].parent
        if parent is None:
            raise UnknownDestination(f"agency {destination} (node {home!r}) is not reachable "
                                     f"from {at_node!r}")
        return Route("up", parent, agency)

    def hops(self, from_node: str, destination: str) -> list[str]:
        """Every node a package visits, origin first (for traces and tests)."""
        visited = [from_node]
        node = from_node
        for _ in range(len(self.nodes) + 1):
            step = self.route(node, destination)
            if step.kind == "local":
                return visited
            node = step.node
            visited.append(node)
        raise DirectoryError("routing does not converge")  # pragma: no cover - cycles refused

    def next_node(self, at_node: str, target_node: str) -> str | None:
        """The neighbour of ``at_node`` on the way to node ``target_node`` (None: arrived)."""
        if at_node == target_node:
            return None
        target_path = self.path_to_root(target_node)
        if at_node in target_path:
            return target_path[target_path.index(at_node) - 1]
        parent = self.nodes[at_node].parent
        if parent is None:
            raise DirectoryError(f"node {target_node!r} is not reachable from {at_node!r}")
        return parent

    def home_node(self, code: str) -> str:
        return self.agency(code).node


def _fingerprints(spec: Mapping[str, Any]) -> tuple[str, ...]:
    raw = spec.get("certificate_fingerprints", [])
    if spec.get("certificate_fingerprint"):
        raw = [*raw, spec["certificate_fingerprint"]]
    if not isinstance(raw, list):
        raise DirectoryError(f"agency {spec.get('code')}: certificate_fingerprints is a list")
    out = []
    for value in raw:
        text = str(value).lower().replace(":", "").removeprefix("sha256")
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise DirectoryError(f"agency {spec.get('code')}: {value!r} is not a SHA-256 "
                                 "certificate fingerprint (64 hex digits)")
        out.append(text)
    return tuple(out)


def _signers(spec: Mapping[str, Any]) -> tuple[SignerRule, ...]:
    rules = []
    for raw in spec.get("signer", []) or []:
        where = f"agency {spec.get('code')}: [[agency.signer]]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("subject"), Mapping) \
                or not raw.get("subject") or not isinstance(raw.get("issuer"), str):
            raise DirectoryError(f"{where} needs issuer = \"<CA subject>\" and subject = "
                                 "{ attribute = value, … }")
        rules.append(SignerRule(raw["issuer"], tuple((str(k), str(v))
                                                     for k, v in raw["subject"].items())))
    return tuple(rules)


def _req(spec: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in spec:
        raise DirectoryError(f"{where}: {key!r} is required")
    return spec[key]


def mask_url(url: str) -> str:
    """``scheme://user:***@host…`` (the password hidden); the space-separated members of
    a cluster each so.

    Examples
    --------
    >>> mask_url("amqp://hanoi:s3cret@mq1/hanoi amqp://hanoi:s3cret@mq2/hanoi")
    'amqp://hanoi:***@mq1/hanoi amqp://hanoi:***@mq2/hanoi'
    """
    if " " in url.strip():
        return " ".join(mask_url(member) for member in url.split())
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"


def _quote(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)
