"""Large packages (issue #13): memory and speed of every command on 64 MiB, 256 MiB and
1 GiB scans, next to ``sha256sum`` of the same file in the same run.

For each size a random "scan" is attached (``docaxis new --attach``), signed
(``docaxis sign``), then validated, verified and inspected, and — once a node has logged
it — its evidence exported and checked (``docaxis evidence export`` / ``verify``): each
command a process of its own. Reported: the command's wall time as MB/s of the package
and the ratio to ``sha256sum`` reading the same package file (the baseline: one pass over
the bytes with a fast hash), the same after start-up (the command's time on a 1 KiB scan
subtracted: Python and its imports), and its peak RSS growth: the command's peak RSS on
this package minus its peak RSS on a package with a 1 KiB attachment (what Python, lxml
and docaxis take anyway).

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
from collections.abc import AsyncIterator
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


def _commands(pki: DevPKI, scan: Path, unsigned: Path, signed: Path,
              number: str) -> dict[str, list[str]]:
    key, _cert, chain = pki.agency_paths("000.00.00.G22")
    cli = [sys.executable, str(CLI)]
    return {
        "new --attach": [*cli, "new", "--from", "000.00.00.G22:Văn phòng Chính phủ", "--to",
                         "000.00.00.H41:UBND tỉnh Nghệ An", "--number", number, "--notation",
                         "VPCP-TTĐT", "--type-name", "Công văn", "--subject", "V/v hồ sơ",
                         "--date", "2024/05/02", "--attach", str(scan), "-o", str(unsigned)],
        "sign": [*cli, "sign", str(unsigned), "--key", str(key), "--cert", str(chain), "-o",
                 str(signed), "--max-bytes", str(4 << 30)],
        "validate": [*cli, "validate", str(signed), "--max-bytes", str(4 << 30)],
        "verify": [*cli, "verify", str(signed), "--trust", str(pki.root_path), "--crl",
                   str(pki.crl_folder), "--max-bytes", str(4 << 30)],
        "inspect": [*cli, "inspect", str(signed), "--json", "--max-bytes", str(4 << 30)],
    }


def _node(pki: DevPKI, folder: Path) -> Path:
    """A node (``central``, serving both agencies of the package) whose node.toml the
    evidence commands read; its store is where each round's package is logged."""
    from docaxis.directory import Agency, Directory, Node

    pki.issue_node("central", tier="central", key_type="rsa2048", operator="000.00.00.G22")
    directory = Directory.build([Node("central", "central", None)], [
        Agency("000.00.00.G22", "Văn phòng Chính phủ", "central", "central"),
        Agency("000.00.00.H41", "UBND tỉnh Nghệ An", "central", "province")])
    (folder / "network.toml").write_text(directory.to_toml(), encoding="utf-8")
    nodes = pki.folder / "nodes" / "central"
    from docaxis.node import NodeConfig

    return NodeConfig.new("central", folder, data="node", node_key=nodes / "key.pem",
                          node_certificate=nodes / "chain.pem", anchors=[pki.root_path],
                          crls=[pki.crl_folder], max_package_bytes=2 << 30,
                          ).write(folder / "node.toml")


def _log(config: Path, signed: Path) -> str:
    """Log ``signed`` at the node as its agency system's post would (checked by streaming,
    the file taken by the store): its DocumentId."""
    from docaxis.edxml import parse_file
    from docaxis.node import NodeConfig, load_directory, node_verifier
    from docaxis.relay import Pipeline

    node = NodeConfig.load(config)
    store = node.open_store()
    try:
        posted = signed.with_suffix(".posted")
        os.link(signed, posted)  # the store takes this name; the round keeps the file
        parsed = parse_file(posted, limits=node.limits)
        pipeline = Pipeline(node.node_id, load_directory(node, store), store,
                            node_verifier(node, store), node.limits)
        store.accept_many([pipeline.plan_submission(parsed, "000.00.00.G22").accept])
        return parsed.package.document_id or ""
    finally:
        store.close()


def _rounds(pki: DevPKI, folder: Path, size: int,
            config: Path) -> dict[str, tuple[float, int]]:
    scan, unsigned, signed = (folder / f"{size}.pdf", folder / f"{size}.edxml",
                              folder / f"{size}-signed.edxml")
    _scan(scan, size)
    measured = {name: _measure(*command) for name, command in
                _commands(pki, scan, unsigned, signed, str(size)).items()}
    document_id, container = _log(config, signed), folder / f"{size}.asice"
    cli = [sys.executable, str(CLI)]
    measured["evidence export"] = _measure(*cli, "evidence", "export", document_id,
                                           "--config", str(config), "-o", str(container))
    measured["evidence verify"] = _measure(*cli, "evidence", "verify", str(container),
                                           "--trust", str(pki.root_path))
    container.unlink()
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
        config = _node(pki, folder)
        idle = _rounds(pki, folder, 1024, config)
        lines = ["### large packages: each command on a random scan (a process each)", "",
                 "| scan | package | command | MB/s | ratio to sha256sum | MB/s after start-up "
                 "| ratio | peak RSS growth |",
                 "|---|---:|---|---:|---:|---:|---:|---:|"]
        for size in sizes:
            measured = _rounds(pki, folder, size, config)
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


# ------------------------------------------------------------------- across four hops

def _rss(pid: int) -> tuple[int, int]:
    """A process's resident set and its peak since the last reset (bytes)."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def _reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS to its current RSS (Linux; root or the owner)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def _across(bench: object, size: int, folder: Path) -> list[str]:
    """Post a package with a ``size``-byte scan at a commune; it crosses four hops
    (``bench_relay.ROUTE``) to a province's inbox. Each node is a ``docaxis serve``
    process; reported per node: peak RSS growth over its idle RSS, and the hop into it
    (package MB/s from the previous node's acceptance to this one's)."""
    import asyncio
    import datetime as dt
    import hashlib

    import httpx

    from benchmarks.bench_relay import RECIPIENT, ROUTE, SENDER, _free_port, _serve, _wait_up
    from docaxis.edxml import DocumentBuilder, ParseLimits, write_to
    from docaxis.node._demo import organization
    from docaxis.node._run import NodeConfig

    limits = ParseLimits(max_bytes=4 << 30)
    scan, unsigned, signed = folder / "scan.pdf", folder / "u.edxml", folder / "s.edxml"
    _scan(scan, size)
    with unsigned.open("wb") as out:
        write_to(DocumentBuilder().sender(organization(SENDER))
                 .recipient(organization(RECIPIENT)).code(str(size), "UBND")
                 .promulgation(dt.date(2024, 5, 2), "Hòa Tiến").document_type(1, "Công văn")
                 .subject("V/v hồ sơ").attach_file(scan).build(), out)
    bench.network.signer(SENDER).sign_file(unsigned, signed, limits=limits)  # type: ignore[attr-defined]
    scan.unlink()
    unsigned.unlink()
    total = signed.stat().st_size
    digest = hashlib.sha256()
    started = time.perf_counter()
    with signed.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    sha = digest.hexdigest()
    sha_seconds = time.perf_counter() - started
    sha_tool = shutil.which("sha256sum")
    if sha_tool is not None:
        started = time.perf_counter()
        subprocess.run([sha_tool, str(signed)], check=True, capture_output=True)
        sha_seconds = time.perf_counter() - started
    ports = {node: _free_port() for node in ROUTE}
    configs = {}
    for node in ROUTE:
        config = bench.node_config(node, f"large-{size}-{node}", ports[node])  # type: ignore[attr-defined]
        with config.open("a", encoding="utf-8") as out:
            out.write(f"\n[limits]\nmax_package_bytes = {2 << 30}\n")
        configs[node] = config
    first = NodeConfig.load(configs[ROUTE[0]]).open_store()
    token = first.issue_credential(SENDER)
    first.close()
    servers = {node: _serve(configs[node]) for node in ROUTE}
    lines = []
    try:
        async with httpx.AsyncClient(timeout=3600) as client:
            for node in ROUTE:
                await _wait_up(client, f"http://127.0.0.1:{ports[node]}/health")
            await asyncio.sleep(1.0)  # let start-up settle before the idle RSS
            idle = {}
            for node, server in servers.items():
                idle[node] = _rss(server.pid)[0]
                _reset_peak(server.pid)

            async def body() -> AsyncIterator[bytes]:
                with signed.open("rb") as source:
                    while block := source.read(1 << 20):
                        yield block

            posted = time.perf_counter()
            answer = await client.post(
                f"http://127.0.0.1:{ports[ROUTE[0]]}/v1/packages", content=body(),
                headers={"Authorization": f"Bearer {token}",
                         "Content-Length": str(total)})
            answer.raise_for_status()
            api_seconds = time.perf_counter() - posted
            stores = {node: NodeConfig.load(configs[node]).open_store() for node in ROUTE}
            deadline = time.perf_counter() + 3600
            while not stores[ROUTE[-1]].has_package(sha):
                if time.perf_counter() > deadline:
                    raise TimeoutError("the package did not arrive")
                await asyncio.sleep(0.2)
            at = {}
            for node in ROUTE:
                row = stores[node].package(sha)
                assert row is not None
                at[node] = row.received_at.replace(tzinfo=dt.UTC).timestamp() if \
                    row.received_at.tzinfo is None else row.received_at.timestamp()
                stores[node].close()
            for index, node in enumerate(ROUTE):
                peak = _rss(servers[node].pid)[1]
                if index == 0:
                    hop = f"API in: {total / api_seconds / 1e6:,.0f} MB/s " \
                          f"({sha_seconds / api_seconds:.2f}×)"
                else:
                    seconds = at[node] - at[ROUTE[index - 1]]
                    hop = f"{total / seconds / 1e6:,.0f} MB/s ({sha_seconds / seconds:.2f}×)"
                lines.append(f"| {size // MIB} MiB | {node} | {idle[node] / MIB:,.0f} MiB | "
                             f"{(peak - idle[node]) / MIB:,.1f} MiB | {hop} |")
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait(timeout=60)
        signed.unlink()
    lines.append(f"| {size // MIB} MiB | sha256sum of the package (baseline) | | | "
                 f"{total / sha_seconds / 1e6:,.0f} MB/s (1.00×) |")
    return lines


def run_nodes(quick: bool = False) -> str:
    """The node half of the benchmark (RabbitMQ needed)."""
    import asyncio
    import uuid

    from benchmarks.bench_relay import RABBITMQCTL, _Bench

    if RABBITMQCTL is None:
        return "### large packages across four hops\n\n(skipped: RabbitMQ is not installed)\n"
    sizes = [64 * MIB] if quick else [64 * MIB, 256 * MIB, 1024 * MIB]
    vhost = f"docaxis-large-{uuid.uuid4().hex[:8]}"
    subprocess.run([RABBITMQCTL, "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run([RABBITMQCTL, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    lines = ["### large packages across four hops (a `docaxis serve` process per node)", "",
             "| scan | node | idle RSS | peak RSS growth | hop into it: MB/s (× sha256sum) |",
             "|---|---|---:|---:|---|"]
    try:
        with tempfile.TemporaryDirectory(prefix="docaxis-large-nodes-") as name:
            async def measure() -> None:
                bench = _Bench(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", Path(name), 0)
                await bench.setup()
                try:
                    for size in sizes:
                        lines.extend(await _across(bench, size, Path(name)))
                finally:
                    await bench.close()
            asyncio.run(measure())
    finally:
        subprocess.run([RABBITMQCTL, "delete_vhost", vhost], check=False, capture_output=True)
    return "\n".join(lines) + "\n"
