"""The ledger's Prometheus metrics, served at ``GET /metrics`` to operators.

Ingest (records by outcome, batch latency), records held in quarantine,
requests refused by reason (a terminal with a bad key shows up here first),
holds placed, and API latency by route. Each ledger node counts its own;
Prometheus sums them. The workers of one node (``serve --workers``) count
together: their supervisor gives them a directory (``MULTIPROC_ENV``) where
each keeps its figures, and whichever worker answers a scrape reads them
all (prometheus_client's multiprocess mode), so a node's counters never go
back when the next scrape lands on another worker.
"""

from __future__ import annotations

import collections
import os
import platform

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from protocols.sync import SyncReply
from protocols.version import VERSION

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is first imported


class LedgerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.records = Counter("posgw_ledger_records", "Records received, by outcome", ["status"], registry=r)
        self.batch_seconds = Histogram(
            "posgw_ledger_batch_seconds",
            "A batch from arrival at ingest to its answer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        # A gauge's value across workers: the last one set (every worker counts the same rows), or the live ones' sum.
        self.quarantine = Gauge(
            "posgw_ledger_quarantine", "Records held in quarantine for an operator", registry=r,
            multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.refusals = Counter("posgw_ledger_refused", "Requests refused, by reason", ["reason"], registry=r)
        self.holds = Counter("posgw_ledger_holds", "Holds placed, by unit", ["unit"], registry=r)
        build = Gauge(
            "posgw_ledger_build_info", "1, labelled with what is running", ["version", "python"], registry=r,
            multiprocess_mode="livemax",
        )  # fmt: skip
        build.labels(VERSION, platform.python_version()).set(1)
        self.pool = Gauge(
            "posgw_ledger_db_connections", "PostgreSQL pool connections, by state", ["state"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.locks = Gauge(
            "posgw_ledger_keyed_write_seconds",
            "Batches' keyed writes since start: seconds waiting for their locks, and in all (the share that waits)",
            ["part"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.latency = Histogram(
            "posgw_ledger_request_seconds", "API latency by route", ["route"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )  # fmt: skip

    def ingested(self, reply: SyncReply, seconds: float) -> None:
        for status, count in collections.Counter(r.status for r in reply.results).items():  # a labels() call a status
            self.records.labels(status).inc(count)
        self.batch_seconds.observe(seconds)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def held(self, unit: str) -> None:
        self.holds.labels(unit).inc()

    def request(self, method: str, route: object, seconds: float) -> None:
        name = getattr(route, "canonical", None) or "unmatched"
        self.latency.labels(f"{method} {name}").observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """This process's figures; a worker's, those of every worker of its node."""
        if shared := os.environ.get(MULTIPROC_ENV):
            workers = CollectorRegistry()
            MultiProcessCollector(workers, shared)  # type: ignore[no-untyped-call]  # untyped upstream
            return generate_latest(workers), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
