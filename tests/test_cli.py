"""The docaxis command, run as a real process (python cli.py …)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=60, check=False)


NEW = ["new", "--from", "000.00.00.G22:Văn phòng Chính phủ", "--to",
       "000.00.00.H41:UBND tỉnh Nghệ An", "--number", "12", "--notation", "VPCP-TTĐT",
       "--type-name", "Công văn", "--subject", "V/v kết nối liên thông", "--date", "2024/05/02"]


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in (b"validate", b"inspect", b"new"):
        assert command in result.stdout


def test_new_then_validate_through_a_pipe(tmp_path: Path) -> None:
    attachment = tmp_path / "letter.pdf"
    attachment.write_bytes(b"%PDF-1.7 letter")
    built = run(*NEW, "--attach", str(attachment))
    assert built.returncode == 0, built.stderr
    checked = run("validate", "--profile", "strict", "--json", "-", stdin=built.stdout)
    assert checked.returncode == 0, checked.stdout
    report = json.loads(checked.stdout)
    assert report["valid"] is True and report["kind"] == "document"


def test_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.edxml"
    good.write_bytes(run(*NEW).stdout)
    bad = tmp_path / "bad.edxml"
    bad.write_bytes(good.read_bytes().replace(b"000.00.00.H41", b"28.22.H17"))
    assert run("validate", str(good)).returncode == 0
    invalid = run("validate", str(good), str(bad))
    assert invalid.returncode == 1
    assert b"EDX-ID-FORMAT" in invalid.stdout and b"To/OrganId" in invalid.stdout
    assert run("validate", str(tmp_path / "missing.edxml")).returncode == 2
    assert run("validate", "--profile", "lenient", str(good)).returncode == 2
    assert run("validate").returncode == 2


def test_validate_json_for_several_files(tmp_path: Path) -> None:
    (tmp_path / "a.edxml").write_bytes(run(*NEW).stdout)
    (tmp_path / "b.edxml").write_bytes(b"<not-xml")
    result = run("validate", "--json", str(tmp_path))
    assert result.returncode == 1
    reports = json.loads(result.stdout)
    assert [r["valid"] for r in reports] == [True, False]
    assert reports[1]["findings"][0]["code"] == "EDX-XML-MALFORMED"
    assert reports[1]["findings"][0]["line"] == 1


def test_inspect_summarises(tmp_path: Path) -> None:
    attachment = tmp_path / "a.bin"
    attachment.write_bytes(b"x" * 1000)
    package = tmp_path / "p.edxml"
    package.write_bytes(run(*NEW, "--attach", str(attachment)).stdout)
    result = run("inspect", "--json", str(package))
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["from"]["organ_id"] == "000.00.00.G22"
    assert info["to"][0]["organ_name"] == "UBND tỉnh Nghệ An"
    assert info["code"] == "12/VPCP-TTĐT"
    assert info["attachments"][0]["size"] == 1000
    assert info["business_type"].startswith("0 — New document")
    human = run("inspect", str(package))
    assert "UBND tỉnh Nghệ An" in human.stdout.decode()


def test_new_status_in_reply(tmp_path: Path) -> None:
    document = tmp_path / "d.edxml"
    document.write_bytes(run(*NEW).stdout)
    status = run("new", "--from", "000.00.00.H41:UBND tỉnh Nghệ An", "--status", "03",
                 "--in-reply-to", str(document))
    assert status.returncode == 0, status.stderr
    path = tmp_path / "s.edxml"
    path.write_bytes(status.stdout)
    info = json.loads(run("inspect", "--json", str(path)).stdout)
    assert info["kind"] == "status" and info["status_code"] == "03"
    assert info["status"].startswith("03 — Accepted")


def test_new_from_a_metadata_file(tmp_path: Path) -> None:
    meta = tmp_path / "letter.toml"
    meta.write_text(
        'subject = "V/v thử"\ntype_name = "Công văn"\ndate = "2024/05/02"\n'
        'code = { number = "5", notation = "UBND" }\n'
        'from = { organ_id = "000.00.11.H53", organ_name = "Sở Tài chính" }\n'
        'to = [{ organ_id = "000.00.00.H53", organ_name = "UBND tỉnh Tây Ninh" }]\n',
        encoding="utf-8")
    out = tmp_path / "out.edxml"
    result = run("new", "--metadata", str(meta), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert run("validate", "--profile", "strict", str(out)).returncode == 0


def test_new_refuses_a_bad_sender_with_a_code() -> None:
    result = run("new", "--from", "28.22.H17:X", "--to", "000.00.00.H41:Y", "--number", "1",
                 "--notation", "X", "--type-name", "CV", "--subject", "s")
    assert result.returncode == 2
    assert b"EDX-ID-FORMAT" in result.stderr


@pytest.mark.interop
def test_validate_the_field_samples_folder(vpcp: Path) -> None:
    result = run("validate", str(vpcp))
    assert result.returncode == 1  # edoc_new and the broken file are invalid
    assert b"18 packages: 16 valid, 2 invalid" in result.stdout
