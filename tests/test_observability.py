"""Issue #11, item 3: /health, /ready, /metrics and structured, timestamped logs."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from docaxis.api import create_app
from docaxis.dsig import TrustStore, VerificationPolicy, Verifier
from docaxis.pki import DevPKI
from docaxis.relay import RelayNode
from docaxis.transport import InMemoryBroker
from tests.relay_support import build_network, network_pki, subject_changed
from tests.test_relay import FAST
from tests.test_transport import run, wait_until

SENDER, RECIPIENT = "000.00.00.H43", "000.00.00.H01"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return network_pki(tmp_path_factory.mktemp("obs-pki"))


def _client(node: RelayNode) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(node)),
                             base_url="http://node")


@contextlib.contextmanager
def _logs_to(handler: logging.Handler) -> Iterator[None]:
    """The docaxis loggers also write to ``handler`` (INFO and up) for the block."""
    logger = logging.getLogger("docaxis")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _metric(text: str, name: str, labels: str = "") -> float | None:
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else r"(?:\{[^}]*\})?")
    match = re.search(rf"^{pattern} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_health_ready_and_metrics(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(FAST)
        network = build_network(tmp_path, pki, lambda _node: broker)
        await network.start()
        danang, hanoi = network.nodes["danang"], network.nodes["hanoi"]
        token = danang.store.issue_credential(SENDER)
        async with _client(danang) as api:
            assert (await api.get("/health")).json()["status"] == "alive"
            ready = await api.get("/ready")
            assert ready.status_code == 200, ready.json()
            assert set(ready.json()["checks"]) == {"store", "broker", "trust"}
            document = network.document(SENDER, [RECIPIENT], number="101")
            posted = await api.post("/v1/packages", content=document,
                                    headers={"Authorization": f"Bearer {token}"})
            assert posted.status_code == 202
            refused = await api.post("/v1/packages", content=subject_changed(document),
                                     headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 422
            await wait_until(lambda: len(hanoi.store.inbox(RECIPIENT)) == 1, 30)
            text = (await api.get("/metrics")).text
        assert _metric(text, "docaxis_packages_accepted_total", 'path="api"') == 1
        assert _metric(text, "docaxis_packages_refused_total",
                       'code="EDX-SIG-DIGEST",path="api"') == 1
        assert _metric(text, "docaxis_store_up") == 1
        assert _metric(text, "docaxis_broker_up") == 1
        assert _metric(text, "docaxis_outbox_pending") is not None
        assert _metric(text, "docaxis_crl_seconds_to_next_update") is not None
        assert "docaxis_stage_seconds_bucket" in text
        async with _client(hanoi) as api:
            hop = (await api.get("/metrics")).text
        assert _metric(hop, "docaxis_packages_accepted_total", 'path="hop"') == 1
        await network.stop()

    run(scenario())


def test_ready_says_what_is_not_usable(tmp_path: Path, pki: DevPKI) -> None:
    async def scenario() -> None:
        broker = InMemoryBroker(FAST)
        network = build_network(tmp_path, pki, lambda _node: broker)
        await network.start()
        danang = network.nodes["danang"]
        danang.verifier = Verifier(VerificationPolicy(TrustStore.load([pki.root_path])))
        async with _client(danang) as api:
            ready = await api.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["trust"] == {"ok": False, "detail": "no CRL"}
        assert ready.json()["checks"]["store"]["ok"] is True
        await network.stop()

    run(scenario())


def test_a_refusal_is_one_json_event(tmp_path: Path, pki: DevPKI) -> None:
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    from docaxis.node._logging import JsonFormatter

    handler.setFormatter(JsonFormatter())
    with _logs_to(handler):
        async def scenario() -> None:
            broker = InMemoryBroker(FAST)
            network = build_network(tmp_path, pki, lambda _node: broker)
            await network.start()
            document = network.document(SENDER, [RECIPIENT], number="103")
            from docaxis.relay._node import FROM_NODE, KIND, ORIGIN
            from docaxis.transport import Message

            await broker.publish("central", Message(subject_changed(document), {
                KIND: "package", ORIGIN: "danang", FROM_NODE: "danang"}))
            await wait_until(lambda: "relay.refused" in stream.getvalue(), 30)
            await network.stop()

        run(scenario())
    [line] = [line for line in stream.getvalue().splitlines() if "relay.refused" in line]
    event = json.loads(line)
    assert event["event"] == "relay.refused" and event["code"] == "EDX-SIG-DIGEST"
    assert event["node"] == "central" and len(event["sha256"]) == 64
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", event["time"])


def test_every_log_line_is_timestamped_in_both_formats() -> None:
    from docaxis.node._logging import JsonFormatter, TextFormatter

    record = logging.LogRecord("docaxis.relay", logging.WARNING, __file__, 1, "store.unavailable",
                               (), None)
    record.code = "STORE-UNAVAILABLE"
    text = TextFormatter().format(record)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} WARNING store.unavailable "
                    r"code=STORE-UNAVAILABLE$", text), text
    assert json.loads(JsonFormatter().format(record))["code"] == "STORE-UNAVAILABLE"


def test_one_trace_id_follows_a_document_across_every_node(tmp_path: Path, pki: DevPKI) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    with _logs_to(Keep()):
        async def scenario() -> None:
            broker = InMemoryBroker(FAST)
            network = build_network(tmp_path, pki, lambda _node: broker)
            await network.start()
            document = network.document("000.01.05.H43", ["000.01.07.H01"], number="104")
            network.nodes["hoatien"].submit(document, agency="000.01.05.H43")
            await wait_until(lambda: len(network.nodes["phulo"].store.inbox(
                "000.01.07.H01")) == 1, 30)
            await network.stop()

        run(scenario())
    accepted = [r for r in records if r.getMessage() == "package.accepted"
                and getattr(r, "kind", None) == "document"]
    nodes = [r.node for r in accepted]  # type: ignore[attr-defined]
    assert nodes == ["hoatien", "hoavang", "danang", "central", "hanoi", "soctson", "phulo"]
    traces = {r.trace_id for r in accepted}  # type: ignore[attr-defined]
    assert len(traces) == 1 and re.fullmatch(r"[0-9a-f]{32}", traces.pop() or "")
