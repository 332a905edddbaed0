"""The ledger's Prometheus metrics, served at ``GET /metrics`` to operators.

Ingest (records by outcome, batch latency), records held in quarantine,
requests refused by reason (a terminal with a bad key shows up here first),
holds placed, and API latency by route. Each ledger node counts its own;
Prometheus sums them.
"""

from __future__ import annotations

import platform

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from protocols.sync import SyncReply
from protocols.version import VERSION


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
        self.quarantine = Gauge("posgw_ledger_quarantine", "Records held in quarantine for an operator", registry=r)
        self.refusals = Counter("posgw_ledger_refused", "Requests refused, by reason", ["reason"], registry=r)
        self.holds = Counter("posgw_ledger_holds", "Holds placed, by unit", ["unit"], registry=r)
        build = Gauge("posgw_ledger_build_info", "1, labelled with what is running", ["version", "python"], registry=r)
        build.labels(VERSION, platform.python_version()).set(1)
        self.pool = Gauge("posgw_ledger_db_connections", "PostgreSQL pool connections, by state", ["state"], registry=r)
        self.locks = Gauge(
            "posgw_ledger_keyed_write_seconds",
            "Batches' keyed writes since start: seconds waiting for their locks, and in all (the share that waits)",
            ["part"],
            registry=r,
        )
        self.latency = Histogram(
            "posgw_ledger_request_seconds", "API latency by route", ["route"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )  # fmt: skip

    def ingested(self, reply: SyncReply, seconds: float) -> None:
        for result in reply.results:
            self.records.labels(result.status).inc()
        self.batch_seconds.observe(seconds)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def held(self, unit: str) -> None:
        self.holds.labels(unit).inc()

    def request(self, method: str, route: object, seconds: float) -> None:
        name = getattr(route, "canonical", None) or "unmatched"
        self.latency.labels(f"{method} {name}").observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
