"""A four-tier test network: PKI, directory, one store per node, relay nodes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from docaxis.directory import Agency, Directory, Node
from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import DocumentBuilder, Organization, StatusBuilder, parse, write
from docaxis.pki import DevPKI
from docaxis.relay import RelayNode
from docaxis.store import Store
from docaxis.transport import Broker

NODES = [
    Node("central", "central"),
    Node("danang", "province", "central"),
    Node("hoavang", "district", "danang"),
    Node("hoatien", "commune", "hoavang"),
    Node("hoason", "commune", "hoavang"),
    Node("hanoi", "province", "central"),
    Node("soctson", "district", "hanoi"),
    Node("phucxa", "commune", "soctson"),
]
AGENCIES = {
    "000.00.00.G22": ("Văn phòng Chính phủ", "central", "central"),
    "000.00.00.H43": ("UBND TP Đà Nẵng", "danang", "province"),
    "000.00.05.H43": ("UBND huyện Hòa Vang", "hoavang", "district"),
    "000.01.05.H43": ("UBND xã Hòa Tiến", "hoatien", "commune"),
    "000.02.05.H43": ("UBND xã Hòa Sơn", "hoason", "commune"),
    "000.00.00.H01": ("UBND TP Hà Nội", "hanoi", "province"),
    "000.00.07.H01": ("UBND huyện Sóc Sơn", "soctson", "district"),
    "000.01.07.H01": ("UBND xã Phù Lỗ", "phucxa", "commune"),
}


def organization(code: str) -> Organization:
    return Organization(organ_id=code, organ_name=AGENCIES.get(code, ("Cơ quan khác",))[0])


@dataclass
class Network:
    folder: Path
    pki: DevPKI
    directory: Directory
    nodes: dict[str, RelayNode] = field(default_factory=dict)
    signers: dict[str, Signer] = field(default_factory=dict)

    def signer(self, code: str) -> Signer:
        if code not in self.signers:
            key, _cert, chain = self.pki.agency_paths(code)
            self.signers[code] = Signer.from_files(key, chain)
        return self.signers[code]

    def document(self, sender: str, recipients: list[str], number: str = "1",
                 subject: str = "V/v liên thông văn bản") -> bytes:
        builder = DocumentBuilder().sender(organization(sender))
        for recipient in recipients:
            builder = builder.recipient(organization(recipient))
        package = (builder.code(number, "UBND").promulgation(dt.date(2024, 5, 2), "Việt Nam")
                   .document_type(1, "Công văn").subject(subject)
                   .attach("cong-van.pdf", b"%PDF-1.7 " + number.encode() * 100,
                           content_type="application/pdf").build())
        return self.signer(sender).sign(write(package))

    def status(self, sender: str, document: bytes, code: str) -> bytes:
        original = parse(document).package
        package = (StatusBuilder().sender(organization(sender)).responding_to(original)  # type: ignore[arg-type]
                   .status(code).build())
        return self.signer(sender).sign(write(package))


def build_network(folder: Path, pki: DevPKI, make_links) -> Network:  # type: ignore[no-untyped-def]
    directory = Directory.build(NODES, [Agency(code, name, node, tier)
                                        for code, (name, node, tier) in AGENCIES.items()])
    network = Network(folder, pki, directory)
    store_trust = TrustStore.load([pki.root_path], crls=[pki.crl_folder])
    verifier = Verifier(VerificationPolicy(store_trust))
    for node in NODES:
        store = Store(f"sqlite:///{folder / (node.id + '.db')}", folder / f"{node.id}-blobs")
        store.migrate()
        network.nodes[node.id] = RelayNode(node.id, directory, store, make_links, verifier)
    return network


def network_pki(folder: Path) -> DevPKI:
    pki = DevPKI.init(folder, key_type="ec-p256")
    for code, (name, _node, tier) in AGENCIES.items():
        pki.issue_agency(code, name, tier=tier, key_type="ec-p256")
    return pki


_ = Broker
