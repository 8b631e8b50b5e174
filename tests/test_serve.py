"""``docaxis serve``: one node from its node.toml, used over HTTP by an agency system."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from docaxis.node import NodeConfig
from docaxis.pki import DevPKI
from tests.relay_support import free_port, organization

ROOT = Path(__file__).resolve().parents[1]



def test_serve_a_single_node_and_use_its_api(tmp_path: Path) -> None:
    import datetime as dt

    from docaxis.dsig import Signer
    from docaxis.edxml import DocumentBuilder, write

    pki = DevPKI.init(tmp_path / "keys", key_type="ec-p256")
    pki.issue_agency("000.00.00.H43", "UBND TP Đà Nẵng", key_type="ec-p256")
    (tmp_path / "network.toml").write_text(
        '[node.danang]\ntier = "province"\n\n'
        '[[agency]]\ncode = "000.00.00.H43"\nname = "UBND TP Đà Nẵng"\nnode = "danang"\n'
        '[[agency]]\ncode = "000.00.05.H43"\nname = "UBND huyện Hòa Vang"\nnode = "danang"\n',
        encoding="utf-8")
    port = free_port()
    NodeConfig.new("danang", tmp_path, listen=f"127.0.0.1:{port}",
                   anchors=["keys/root/ca.pem"], crls=["keys/crl"]).write(tmp_path / "node.toml")
    config = str(tmp_path / "node.toml")
    cli = [sys.executable, str(ROOT / "cli.py")]
    sender_token = subprocess.run([*cli, "token", "--config", config, "--agency",
                                   "000.00.00.H43"], capture_output=True, text=True,
                                  check=True).stdout.strip()
    recipient_token = subprocess.run([*cli, "token", "--config", config, "--agency",
                                      "000.00.05.H43"], capture_output=True, text=True,
                                     check=True).stdout.strip()
    server = subprocess.Popen([*cli, "serve", "--config", config], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # wait for the server to answer
            try:
                httpx.get(f"{base}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the node did not start"
                time.sleep(0.1)
        key, _cert, chain = pki.agency_paths("000.00.00.H43")
        package = (DocumentBuilder().sender(organization("000.00.00.H43"))
                   .recipient(organization("000.00.05.H43")).code("7", "UBND")
                   .promulgation(dt.date(2024, 5, 2)).document_type(1, "Công văn")
                   .subject("V/v thử nghiệm").build())
        signed = Signer.from_files(key, chain).sign(write(package))
        posted = httpx.post(f"{base}/v1/packages", content=signed,
                            headers={"Authorization": f"Bearer {sender_token}"}, timeout=10)
        assert posted.status_code == 202, posted.text
        inbox = httpx.get(f"{base}/v1/agencies/000.00.05.H43/inbox",
                          headers={"Authorization": f"Bearer {recipient_token}"}, timeout=10)
        [item] = inbox.json()
        fetched = httpx.get(f"{base}/v1/agencies/000.00.05.H43/inbox/{item['id']}",
                            headers={"Authorization": f"Bearer {recipient_token}"}, timeout=10)
        assert fetched.content == signed
    finally:
        server.terminate()  # SIGTERM: drain in-flight work, then exit 0
        server.wait(timeout=30)
    assert server.returncode == 0, server.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    trace = subprocess.run([*cli, "trace", item["document_id"], "--config", config, "--json"],
                           capture_output=True, text=True, check=True)
    assert '"delivered"' in trace.stdout
