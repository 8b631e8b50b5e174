"""Relay throughput and latency on the real RabbitMQ (issue #4).

* **hop throughput** — one node (``central``) consuming ~5 KB signed packages from its
  inbound queue: parse, validate, verify (chain + CRL + signer = From), commit to its
  SQLite store (log, outbox, events), hand over with publisher confirm, acknowledge —
  next to a **raw aio-pika loop** on the same broker with the same payloads: consume →
  publish with confirm → ack. Target: ≥ 0.5× of raw.
* **end-to-end latency** of a four-hop route (commune → district → province → central →
  province) at a steady offered load: p50/p99 from submission to the recipient's inbox row.

Needs RabbitMQ and ``rabbitmqctl`` (a vhost of its own, deleted afterwards).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika

from docaxis.relay._demo import build_demo_network, demo_pki
from docaxis.transport import Message, RabbitMQBroker
from docaxis.transport._broker import inbound_queue_name

RABBITMQCTL = shutil.which("rabbitmqctl")


def _vhost() -> str:
    name = f"docaxis-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run([RABBITMQCTL or "", "add_vhost", name], check=True, capture_output=True)
    subprocess.run([RABBITMQCTL or "", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return name


async def _hop(url: str, folder: Path, count: int) -> tuple[float, float]:
    pki = demo_pki(folder / "keys", key_type="rsa2048")
    broker = RabbitMQBroker(url)
    await broker.connect()
    network = build_demo_network(folder / "nodes", pki, lambda _n: broker)
    for node in network.nodes.values():
        await broker.declare_node(node.node_id)
    # packages from Đà Nẵng to Hà Nội: they cross central, the node measured
    packages = [network.document("000.00.00.H43", ["000.00.00.H01"], number=str(i))
                for i in range(count)]
    headers = {"x-docaxis-kind": "package", "x-docaxis-origin": "danang",
               "x-docaxis-from-node": "danang"}
    for data in packages:
        await broker.publish("central", Message(data, headers))
    central = network.nodes["central"]
    hanoi_queue = await broker.channel.get_queue(inbound_queue_name("hanoi"))
    started = time.perf_counter()
    await central.start()
    while (await hanoi_queue.declare()).message_count < count:
        await asyncio.sleep(0.005)
    ours = count / (time.perf_counter() - started)
    await central.stop()

    # raw aio-pika: consume → publish with confirm → ack, same payloads, same prefetch
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=central.prefetch)
    source = await channel.declare_queue("raw.source", durable=True,
                                         arguments={"x-queue-type": "quorum"})
    target = await channel.declare_queue("raw.target", durable=True,
                                         arguments={"x-queue-type": "quorum"})
    for data in packages:
        await channel.default_exchange.publish(
            aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="raw.source")
    done = asyncio.Event()
    moved = 0

    async def relay(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal moved
        await channel.default_exchange.publish(
            aio_pika.Message(incoming.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="raw.target")
        await incoming.ack()
        moved += 1
        if moved == count:
            done.set()

    started = time.perf_counter()
    await source.consume(relay)
    await done.wait()
    raw = count / (time.perf_counter() - started)
    assert (await target.declare()).message_count == count
    await connection.close()
    await broker.close()
    return ours, raw


async def _latency(url: str, folder: Path, count: int, rate: float) -> list[float]:
    pki = demo_pki(folder / "keys", key_type="rsa2048")
    broker = RabbitMQBroker(url)
    await broker.connect()
    network = build_demo_network(folder / "nodes", pki, lambda _n: broker)
    await network.start()
    sender, recipient = "000.01.05.H43", "000.00.00.H01"  # hoatien → … → hanoi: 4 hops
    packages = [network.document(sender, [recipient], number=f"L{i}") for i in range(count)]
    sent_at: dict[str, float] = {}
    origin, target = network.nodes["hoatien"], network.nodes["hanoi"]
    for data in packages:
        acceptance = origin.submit(data, agency=sender)
        sent_at[acceptance.sha256] = acceptance.accepted_at.timestamp()
        await asyncio.sleep(1 / rate)  # the offered load
    while len(target.store.inbox(recipient)) < count:
        await asyncio.sleep(0.01)
    latencies = [item.created_at.timestamp() - sent_at[item.sha256]
                 for item in target.store.inbox(recipient)]
    await network.stop()
    await broker.close()
    return latencies


def run(quick: bool = False) -> str:
    if RABBITMQCTL is None:
        return "### relay\n\n(skipped: RabbitMQ is not installed here)\n"
    vhost = _vhost()
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    try:
        count = 200 if quick else 500
        ours, raw = asyncio.run(_hop(url, Path(tempfile.mkdtemp()), count))
        latencies = asyncio.run(_latency(url, Path(tempfile.mkdtemp()), 50 if quick else 200,
                                         rate=20.0))
    finally:
        subprocess.run([RABBITMQCTL, "delete_vhost", vhost], check=False, capture_output=True)
    p50 = statistics.median(latencies) * 1000
    p99 = sorted(latencies)[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    return (
        f"### hop throughput, ~5 KB signed packages, {count} packages\n\n"
        "| candidate | per second | ratio to baseline |\n|---|---:|---:|\n"
        f"| raw aio-pika consume → publish (confirm) → ack (baseline) | {raw:,.0f} | 1.00× |\n"
        f"| docaxis hop (verify, store, confirmed hand-over, ack) | {ours:,.0f} | "
        f"{ours / raw:.2f}× |\n\n"
        f"### end-to-end latency, four hops, {len(latencies)} packages at 20/s\n\n"
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms\n"
    )
