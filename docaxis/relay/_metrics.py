"""A node's Prometheus metrics (``prometheus-client``), one registry per node.

Counters and histograms are updated where things happen; the gauges that describe state
(outbox backlog, store and broker up, CRL freshness, parked messages) are read when
``/metrics`` is scraped, so they are never stale.

Names (all prefixed ``docaxis_``):

==================================  =====================================================
``packages_accepted_total``         packages committed, by ``path`` (``api`` / ``hop``)
``packages_refused_total``          refusals, by stable ``code`` and ``path``
``stage_seconds``                   histogram of ``check`` and ``commit`` (per batch)
``outbox_pending``                  hand-overs owed, not yet confirmed
``outbox_oldest_seconds``           age of the oldest owed hand-over
``store_up`` / ``broker_up``        1 when usable, 0 while the node waits for it
``crl_seconds_to_next_update``      per CRL issuer: time left before it goes stale
``task_restarts_total``             background tasks that died and were restarted
``log_unstamped_records``           log records waiting for an RFC 3161 stamp (with a TSA)
``log_unstamped_seconds``           age of the oldest of them (0: every record stamped)
``log_stamp_failing``               1 while the TSA does not stamp (unreachable, refusing)
``connections_rebalanced_total``    HTTP connections asked to reconnect (``Connection:
                                    close``): their process held more than its share
``intake_journaled_total``          API submissions answered from the intake journal
``intake_logged_total``             of those, logged in the store since (the difference:
                                    answered, not logged yet)
``intake_recovered_total``          packages a process logged from the journal of a
                                    process that was gone (a crash)
``intake_retries_total``            journaled submissions whose transaction failed and was
                                    tried again later
==================================  =====================================================

A node served by several processes (``workers`` > 1) shares its counters and histograms
between them through ``prometheus-client``'s multiprocess mode
(:func:`share_between_processes`): whichever process answers a scrape reports the sums
of all of them, including processes that have since died (a counter never goes back).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from docaxis.relay._node import RelayNode

#: where prometheus-client's multiprocess mode keeps each process's values
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                 2.5, 5.0)


class NodeMetrics:
    """The metrics of one node; :attr:`registry` is what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        shared = os.environ.get(MULTIPROCESS_ENV)
        #: what a scrape renders: this process's registry, or every process's values
        self.exposed = self.registry
        if shared:
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed, path=shared)  # type: ignore[no-untyped-call]
        self.accepted = Counter("docaxis_packages_accepted", "Packages committed by this node",
                                ["path"], registry=self.registry)
        self.refused = Counter("docaxis_packages_refused", "Packages refused by this node",
                               ["code", "path"], registry=self.registry)
        self.stage = Histogram("docaxis_stage_seconds", "Time spent per pipeline stage",
                               ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)

        self.task_restarts = Counter("docaxis_task_restarts", "Background tasks that died "
                                     "and were started again", registry=self.registry)
        self.rebalanced = Counter("docaxis_connections_rebalanced", "HTTP connections "
                                  "asked to reconnect because their worker process held "
                                  "more than its share of the node's", registry=self.registry)
        self.intake_journaled = Counter("docaxis_intake_journaled", "API submissions "
                                        "answered from the intake journal",
                                        registry=self.registry)
        self.intake_logged = Counter("docaxis_intake_logged", "Journaled submissions logged "
                                     "in the store", registry=self.registry)
        self.intake_recovered = Counter("docaxis_intake_recovered", "Packages logged from "
                                        "the journal of a process that was gone",
                                        registry=self.registry)
        self.intake_retries = Counter("docaxis_intake_retries", "Journaled submissions "
                                      "whose transaction failed and was tried again",
                                      registry=self.registry)

    def watch(self, node: RelayNode) -> None:
        """Read the node's state at each scrape."""
        self.exposed.register(_StateCollector(node))


def share_between_processes(folder: Path) -> None:
    """Put this process and the processes it starts afterwards (which inherit the
    environment) in ``prometheus-client``'s multiprocess mode, their values kept in
    ``folder`` (emptied first: call it once, in the process that starts the others,
    before any :class:`NodeMetrics` exists).

    ``prometheus-client`` chooses its value store when it is imported, from the
    environment variable; this process imported it already, so its choice is made again
    here (the value class is what that choice sets).
    """
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(folder)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


class _StateCollector(Collector):
    def __init__(self, node: RelayNode) -> None:
        self.node = node

    def collect(self) -> Iterable[Metric]:
        node = self.node
        yield _gauge("docaxis_store_up", "1 when the node's store is usable",
                     1.0 if node.store_available else 0.0)
        broker = node.links(node.node_id)
        yield _gauge("docaxis_broker_up", "1 when the node's broker connection is open",
                     1.0 if broker.connected else 0.0)
        nothing: tuple[int, dt.datetime | None] = (0, None)
        pending, oldest = _safely(node.store.outbox_backlog, nothing)
        yield _gauge("docaxis_outbox_pending", "Hand-overs owed, not yet confirmed",
                     float(pending))
        age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else 0.0
        yield _gauge("docaxis_outbox_oldest_seconds", "Age of the oldest owed hand-over", age)
        freshness = GaugeMetricFamily("docaxis_crl_seconds_to_next_update",
                                      "Seconds before each CRL goes stale", labels=["issuer"])
        now = dt.datetime.now(dt.UTC)
        for crl in node.verifier.policy.trust.crls:
            if crl.next_update_utc is not None:
                freshness.add_metric([crl.issuer.rfc4514_string()],
                                     (crl.next_update_utc - now).total_seconds())
        yield freshness
        stamper = node.stamper
        if stamper is not None:
            waiting, since = _safely(node.store.unstamped, nothing)
            yield _gauge("docaxis_log_unstamped_records",
                         "Log records waiting for an RFC 3161 stamp", float(waiting))
            yield _gauge("docaxis_log_unstamped_seconds",
                         "Age of the oldest log record waiting for a stamp",
                         (now - since).total_seconds() if since else 0.0)
            yield _gauge("docaxis_log_stamp_failing", "1 while the TSA does not stamp",
                         1.0 if stamper.failing else 0.0)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


T = TypeVar("T")


def _safely(read: Callable[[], T], fallback: T) -> T:
    from docaxis.store import UNAVAILABLE

    try:
        return read()
    except UNAVAILABLE:  # the store is down: docaxis_store_up says so
        return fallback
