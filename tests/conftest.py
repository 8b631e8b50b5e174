"""Shared fixtures: the interop corpus (skipped cleanly when absent), sample packages, and a
small disk that fills up."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from docaxis.edxml import DocumentBuilder, DocumentPackage, Organization, write

#: The shared interop corpus; ``DOCAXIS_INTEROP`` overrides where it is looked for.
INTEROP = Path(os.environ.get("DOCAXIS_INTEROP",
                              Path(__file__).resolve().parents[2] / "shared" / "interop"))
VPCP = INTEROP / "vpcp-samples"


@pytest.fixture(scope="session")
def vpcp() -> Path:
    """The VPCP field samples folder; tests using it skip when it is not there."""
    if not VPCP.is_dir():
        pytest.skip(f"interop corpus not present at {VPCP}")
    return VPCP


def sample_document(**overrides: object) -> DocumentPackage:
    """A small valid document package (unsigned)."""
    builder = (
        DocumentBuilder()
        .sender(Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ"))
        .recipient(Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"))
        .code("7816", "VPCP-TTĐT")
        .promulgation(dt.date(2024, 5, 2), place="Hà Nội")
        .document_type(1, "Công văn")
        .subject("V/v kết nối, liên thông phần mềm quản lý văn bản")
        .trace_time(dt.datetime(2024, 5, 2, 9, 0, 0))
        .attach("letter.pdf", b"%PDF-1.7 test", content_type="application/pdf",
                content_id="cid:1")
    )
    return builder.build()


@pytest.fixture
def document_bytes() -> bytes:
    return write(sample_document())


@pytest.fixture(scope="session", params=["ec-p256", "rsa2048"])
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A dev PKI (one per key type) with G22 (central) and H41 (province) agencies."""
    from docaxis.pki import DevPKI

    folder = tmp_path_factory.mktemp(f"pki-{request.param}")
    pki = DevPKI.init(folder, key_type=request.param)
    pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central",
                     key_type=request.param)
    pki.issue_agency("000.00.00.H41", "UBND tỉnh Nghệ An", tier="province",
                     key_type=request.param)
    return pki


@pytest.fixture(scope="session")
def rsa_pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from docaxis.pki import DevPKI

    pki = DevPKI.init(tmp_path_factory.mktemp("pki-rsa"), key_type="rsa2048")
    pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central", key_type="rsa2048")
    return pki


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only with ``DOCAXIS_SLOW=1`` (the README says how)."""
    if os.environ.get("DOCAXIS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with DOCAXIS_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (root only: CI runs as root; elsewhere the test skips)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                             capture_output=True, check=False)
    if mounted.returncode:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: even if still busy
