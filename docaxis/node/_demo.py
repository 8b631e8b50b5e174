"""A four-tier demo network (also the fixture of the end-to-end tests).

Central → two provinces (Đà Nẵng, Hà Nội) → a district each → communes. Every node has
its own store; all nodes talk through one broker (RabbitMQ when reachable, else the
in-process one), isolated by naming (``docaxis.<node>`` exchanges and queues).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from docaxis.directory import Agency, Directory, Node
from docaxis.dsig import Signer, StatementSigner, TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import DocumentBuilder, Organization, StatusBuilder, parse, write
from docaxis.pki import DevPKI
from docaxis.relay import RelayNode
from docaxis.store import Store
from docaxis.transport import Broker, InMemoryBroker, RabbitMQBroker, TransportError

DEMO_NODES = [
    Node("central", "central"),
    Node("danang", "province", "central"),
    Node("hoavang", "district", "danang"),
    Node("hoatien", "commune", "hoavang"),
    Node("hoason", "commune", "hoavang"),
    Node("hanoi", "province", "central"),
    Node("soctson", "district", "hanoi"),
    Node("phulo", "commune", "soctson"),
]
#: code → (name, node, tier)
DEMO_AGENCIES = {
    "000.00.00.G22": ("Văn phòng Chính phủ", "central", "central"),
    "000.00.00.H43": ("UBND TP Đà Nẵng", "danang", "province"),
    "000.00.05.H43": ("UBND huyện Hòa Vang", "hoavang", "district"),
    "000.01.05.H43": ("UBND xã Hòa Tiến", "hoatien", "commune"),
    "000.02.05.H43": ("UBND xã Hòa Sơn", "hoason", "commune"),
    "000.00.00.H01": ("UBND TP Hà Nội", "hanoi", "province"),
    "000.00.07.H01": ("UBND huyện Sóc Sơn", "soctson", "district"),
    "000.01.07.H01": ("UBND xã Phù Lỗ", "phulo", "commune"),
}


def organization(code: str) -> Organization:
    name = DEMO_AGENCIES.get(code, ("Cơ quan khác", "", ""))[0]
    return Organization(organ_id=code, organ_name=name)


def demo_pki(folder: Path, key_type: str = "ec-p256") -> DevPKI:
    """A dev PKI with a signing certificate for every demo agency and node."""
    pki = DevPKI.init(folder, key_type=key_type)  # type: ignore[arg-type]
    for code, (name, _node, tier) in DEMO_AGENCIES.items():
        pki.issue_agency(code, name, tier=tier, key_type=key_type)  # type: ignore[arg-type]
    for node in DEMO_NODES:
        pki.issue_node(node.id, tier=node.tier, key_type=key_type,  # type: ignore[arg-type]
                       operator=_operator(node.id))
    return pki


def _operator(node_id: str) -> str | None:
    """The demo agency that runs a node: the one it hosts (it signs the node's refusals'
    status 02 as that agency)."""
    home = node_id.split(".")[0]  # without a run's suffix
    return next((code for code, (_name, node, _tier) in DEMO_AGENCIES.items()
                 if node == home), None)


def node_signer(pki: DevPKI, node: Node) -> StatementSigner:
    """The node's hop-receipt signer (its certificate issued on first use)."""
    key, chain = pki.folder / "nodes" / node.id / "key.pem", pki.folder / "nodes" / node.id / \
        "chain.pem"
    if not key.is_file():
        pki.issue_node(node.id, tier=node.tier, key_type="ec-p256", operator=_operator(node.id))
    return StatementSigner.from_files(key, chain)


@dataclass
class DemoNetwork:
    """The nodes of the demo, and helpers that play the agencies' document systems."""

    folder: Path
    pki: DevPKI
    directory: Directory
    nodes: dict[str, RelayNode] = field(default_factory=dict)
    signers: dict[str, Signer] = field(default_factory=dict)
    suffix: str = ""

    def node(self, name: str) -> RelayNode:
        return self.nodes[name + self.suffix]

    def signer(self, code: str) -> Signer:
        if code not in self.signers:
            key, _cert, chain = self.pki.agency_paths(code)
            self.signers[code] = Signer.from_files(key, chain)
        return self.signers[code]

    def document(self, sender: str, recipients: list[str], number: str = "1",
                 subject: str = "V/v liên thông văn bản điện tử", *,
                 notation: str = "UBND") -> bytes:
        """A signed document package, as the sender's document system makes it."""
        builder = DocumentBuilder().sender(organization(sender))
        for recipient in recipients:
            builder = builder.recipient(organization(recipient))
        package = (builder.code(number, notation).promulgation(dt.date(2024, 5, 2), "Việt Nam")
                   .document_type(1, "Công văn").subject(subject)
                   .attach("cong-van.pdf", b"%PDF-1.7 " + number.encode() * 100,
                           content_type="application/pdf").build())
        return self.signer(sender).sign(write(package))

    def status(self, sender: str, document: bytes, code: str) -> bytes:
        """A signed status package answering ``document``."""
        original = parse(document).package
        package = (StatusBuilder().sender(organization(sender))
                   .responding_to(original).status(code).build())  # type: ignore[arg-type]
        return self.signer(sender).sign(write(package))

    async def start(self) -> None:
        for node in self.nodes.values():
            await node.links(node.node_id).declare_node(node.node_id)
        for node in self.nodes.values():
            await node.start()

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.stop()


def build_demo_network(folder: Path, pki: DevPKI, links: Callable[[str], Broker], *,
                       suffix: str = "") -> DemoNetwork:
    """Directory, one SQLite store per node, and the relay nodes (not started)."""
    nodes = [Node(n.id + suffix, n.tier, n.parent + suffix if n.parent else None)
             for n in DEMO_NODES]
    agencies = [Agency(code, name, node + suffix, tier)
                for code, (name, node, tier) in DEMO_AGENCIES.items()]
    directory = Directory.build(nodes, agencies)
    network = DemoNetwork(folder, pki, directory, suffix=suffix)
    verifier = Verifier(VerificationPolicy(TrustStore.load([pki.root_path],
                                                           crls=[pki.crl_folder])))
    for node in nodes:
        store = Store(f"sqlite:///{folder / (node.id + '.db')}", folder / f"{node.id}-blobs")
        store.migrate()
        network.nodes[node.id] = RelayNode(node.id, directory, store, links, verifier,
                                           node_signer=node_signer(pki, node))
    return network


async def connect_broker(amqp_url: str | None) -> Broker:
    """RabbitMQ at ``amqp_url`` when reachable, else the in-process broker."""
    if amqp_url:
        broker: Broker = RabbitMQBroker(amqp_url)
        try:
            await broker.connect()
            return broker
        except TransportError:
            pass
    broker = InMemoryBroker()
    await broker.connect()
    return broker


async def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Wait on a condition; False on timeout."""
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        return False
    return True


def run_suffix() -> str:
    return "." + uuid.uuid4().hex[:6]
