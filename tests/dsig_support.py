"""Shared helpers for signature tests: a PKI per session, packages, xmlsec1."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

from docaxis.dsig import Signer, TrustStore, VerificationPolicy, Verifier
from docaxis.edxml import DocumentBuilder, Organization, write
from docaxis.pki import DevPKI

G22 = Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ")
H41 = Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An")
XMLSEC1 = shutil.which("xmlsec1")


def package(sender: Organization = G22, *, attachment: bytes = b"%PDF-1.7 signed letter") -> bytes:
    builder = (DocumentBuilder().sender(sender).recipient(H41 if sender is not H41 else G22)
               .code("12", "VPCP-TTĐT").promulgation(dt.date(2024, 5, 2), "Hà Nội")
               .document_type(1, "Công văn").subject("V/v kết nối liên thông")
               .trace_time(dt.datetime(2024, 5, 2, 9, 0))
               .attach("letter.pdf", attachment, content_type="application/pdf",
                       content_id="cid:1"))
    return write(builder.build())


def signer_for(pki: DevPKI, code: str) -> Signer:
    key, _cert, chain = pki.agency_paths(code)
    return Signer.from_files(key, chain)


def verifier_for(pki: DevPKI, **policy: object) -> Verifier:
    store = TrustStore.load([pki.root_path], crls=[pki.crl_folder])
    return Verifier(VerificationPolicy(store, **policy))  # type: ignore[arg-type]


def xmlsec1(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert XMLSEC1 is not None
    return subprocess.run([XMLSEC1, *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False)
