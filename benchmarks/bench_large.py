"""Large packages (issue #13): memory and speed of every command on 64 MiB, 256 MiB and
1 GiB scans, next to ``sha256sum`` of the same file in the same run.

For each size a random "scan" is attached (``docaxis new --attach``), signed
(``docaxis sign``), then validated, verified and inspected — each command a process of
its own. Reported: the command's wall time as MB/s of the package and the ratio to
``sha256sum`` reading the same package file (the baseline: one pass over the bytes with
a fast hash), the same after start-up (the command's time on a 1 KiB scan subtracted:
Python and its imports), and its peak RSS growth: the command's peak RSS on this package minus its
peak RSS on a package with a 1 KiB attachment (what Python, lxml and docaxis take anyway).

Run: ``python -m benchmarks large`` (``--quick``: 64 MiB only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from docaxis.pki import DevPKI

CLI = Path(__file__).resolve().parents[1] / "cli.py"
MIB = 1 << 20
_PEAK = textwrap.dedent("""
    import resource, subprocess, sys, time
    started = time.perf_counter()
    done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode:
        sys.exit(done.stderr.decode(errors="replace"))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(time.perf_counter() - started, peak)
""")


def _measure(*args: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command in a process of its own."""
    result = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True,
                            text=True, check=False, timeout=3600)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args[1:3])} failed: {result.stderr[-2000:]}")
    seconds, peak = result.stdout.split()
    return float(seconds), int(peak)


def _scan(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            out.write(block)
            left -= len(block)


def _commands(pki: DevPKI, scan: Path, unsigned: Path, signed: Path) -> dict[str, list[str]]:
    key, _cert, chain = pki.agency_paths("000.00.00.G22")
    cli = [sys.executable, str(CLI)]
    return {
        "new --attach": [*cli, "new", "--from", "000.00.00.G22:Văn phòng Chính phủ", "--to",
                         "000.00.00.H41:UBND tỉnh Nghệ An", "--number", "12", "--notation",
                         "VPCP-TTĐT", "--type-name", "Công văn", "--subject", "V/v hồ sơ",
                         "--date", "2024/05/02", "--attach", str(scan), "-o", str(unsigned)],
        "sign": [*cli, "sign", str(unsigned), "--key", str(key), "--cert", str(chain), "-o",
                 str(signed), "--max-bytes", str(4 << 30)],
        "validate": [*cli, "validate", str(signed), "--max-bytes", str(4 << 30)],
        "verify": [*cli, "verify", str(signed), "--trust", str(pki.root_path), "--crl",
                   str(pki.crl_folder), "--max-bytes", str(4 << 30)],
        "inspect": [*cli, "inspect", str(signed), "--json", "--max-bytes", str(4 << 30)],
    }


def _rounds(pki: DevPKI, folder: Path, size: int) -> dict[str, tuple[float, int]]:
    scan, unsigned, signed = (folder / f"{size}.pdf", folder / f"{size}.edxml",
                              folder / f"{size}-signed.edxml")
    _scan(scan, size)
    measured = {name: _measure(*command)
                for name, command in _commands(pki, scan, unsigned, signed).items()}
    sha = shutil.which("sha256sum")
    if sha is not None:
        started = time.perf_counter()
        subprocess.run([sha, str(signed)], check=True, capture_output=True)
        measured["sha256sum (baseline)"] = (time.perf_counter() - started, 0)
    measured["_bytes"] = (float(signed.stat().st_size), 0)
    for path in (scan, unsigned):
        path.unlink()
    signed.unlink()
    return measured


def run(quick: bool = False) -> str:
    sizes = [64 * MIB] if quick else [64 * MIB, 256 * MIB, 1024 * MIB]
    with tempfile.TemporaryDirectory(prefix="docaxis-large-") as name:
        folder = Path(name)
        pki = DevPKI.init(folder / "pki", key_type="rsa2048")
        pki.issue_agency("000.00.00.G22", "Văn phòng Chính phủ", tier="central",
                         key_type="rsa2048")
        idle = _rounds(pki, folder, 1024)
        lines = ["### large packages: each command on a random scan (a process each)", "",
                 "| scan | package | command | MB/s | ratio to sha256sum | MB/s after start-up "
                 "| ratio | peak RSS growth |",
                 "|---|---:|---|---:|---:|---:|---:|---:|"]
        for size in sizes:
            measured = _rounds(pki, folder, size)
            package = measured.pop("_bytes")[0]
            baseline = measured["sha256sum (baseline)"][0]
            for command, (seconds, peak) in measured.items():
                rate = package / seconds / 1e6
                ratio = baseline / seconds
                # the same command on a 1 KiB scan: Python's and the imports' start-up
                net = max(seconds - idle[command][0], 1e-6)
                growth = "—" if command.startswith("sha256sum") else \
                    f"{(peak - idle[command][1]) / MIB:.1f} MiB"
                lines.append(f"| {size // MIB} MiB | {package / MIB:,.0f} MiB | {command} | "
                             f"{rate:,.0f} | {ratio:.2f}× | {package / net / 1e6:,.0f} | "
                             f"{baseline / net:.2f}× | {growth} |")
    return "\n".join(lines) + "\n"
