"""Prometheus metrics, counted from the gateway's own events.

Every count comes from an event the till also sees on its WebSocket (scans,
card taps, sales, refunds, payments, sync rounds, device states, journal
reports), so the figures and the till never disagree and no module needs to
know about metrics. API latency is measured by a middleware. Served at
``GET /metrics`` (loopback, like the API), in the Prometheus text format.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.events import (
    Alert,
    BasketChanged,
    CardRead,
    DeviceChanged,
    Event,
    JournalStatus,
    LedgerStatus,
    PaymentStep,
    RefundRecorded,
    SaleRecorded,
    ScanNotUnderstood,
    ScanSeen,
)
from protocols.version import VERSION

__all__ = ["CONTENT_TYPE", "Metrics"]


class HasCheck(Protocol):
    """A named check's outcome (``gateway/ops/health.py``)."""

    @property
    def name(self) -> str: ...

    @property
    def ok(self) -> bool: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.scans = Counter("posgw_scans", "Codes scanned, by kind", ["kind"], registry=r)
        self.scans_rejected = Counter("posgw_scans_rejected", "Scanner frames not understood", registry=r)
        self.card_taps = Counter("posgw_card_taps", "Member cards read, by outcome", ["outcome"], registry=r)
        self.records = Counter("posgw_records", "Sales, refunds and voids journaled", ["kind"], registry=r)
        self.payments = Counter(
            "posgw_payments", "Payments ended, by wallet and outcome", ["wallet", "outcome"], registry=r
        )
        self.baskets = Counter("posgw_baskets", "Baskets started", registry=r)
        self.ledger_lost = Counter("posgw_ledger_lost", "Times the ledger went out of reach", registry=r)
        self.last_sync = Gauge("posgw_last_sync_timestamp_seconds", "When records last reached the ledger", registry=r)
        self.alerts = Counter("posgw_alerts", "Alerts raised, by code", ["code"], registry=r)
        self.device_state = Gauge(
            "posgw_device_state", "1 for each device's current state", ["device", "state"], registry=r
        )
        self.journal_pending = Gauge("posgw_journal_pending", "Records waiting to be synced", registry=r)
        self.journal_oldest = Gauge(
            "posgw_journal_oldest_pending_timestamp_seconds", "When the oldest unsynced record was made", registry=r
        )
        self.ledger_online = Gauge("posgw_ledger_online", "1 when the ledger answered the last call", registry=r)
        self.check_ok = Gauge(
            "posgw_check_ok", "1 when the named check holds (gateway/ops/health.py), 0 when not", ["check"], registry=r
        )
        self.api_seconds = Histogram(
            "posgw_api_request_seconds",
            "Local API latency, by route",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        build = Gauge("posgw_build_info", "1, labelled with what is running", ["version", "python"], registry=r)
        build.labels(VERSION, platform.python_version()).set(1)
        self._devices: dict[str, str] = {}

    def observe(self, event: Event) -> None:
        """Count one hub event (called for every event the gateway publishes)."""
        match event:
            case ScanSeen(kind=kind):
                self.scans.labels(kind).inc()
            case ScanNotUnderstood():
                self.scans_rejected.inc()
            case CardRead(kind="inserted", card_error=refusal):
                self.card_taps.labels("refused" if refusal else "member").inc()
            case SaleRecorded() | RefundRecorded():
                self.records.labels(event.type).inc()
            case PaymentStep(wallet=wallet, outcome=str(outcome)):
                self.payments.labels(wallet, outcome).inc()
            case BasketChanged(state="open"):
                self.baskets.inc()
            case LedgerStatus(online=online, error=error, synced=synced):
                self.ledger_online.set(1 if online else 0)
                if error:
                    self.ledger_lost.inc()
                if synced:
                    self.last_sync.set(event.at)
            case Alert(code=code):
                self.alerts.labels(code).inc()
            case DeviceChanged(device=device, state=state):
                self._device(device, state)
            case JournalStatus(pending=pending, online=online, oldest_pending=oldest):
                self.journal_pending.set(pending)
                self.ledger_online.set(1 if online else 0)
                self.journal_oldest.set(_timestamp(oldest) if oldest else 0)

    def _device(self, device: str, state: str) -> None:
        previous = self._devices.get(device)
        if previous is not None:
            self.device_state.labels(device, previous).set(0)
        self.device_state.labels(device, state).set(1)
        self._devices[device] = state

    def checks(self, results: Iterable[HasCheck]) -> None:
        """The named checks as they stand (set at each scrape and each /readyz)."""
        for c in results:
            self.check_ok.labels(c.name).set(1 if c.ok else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _timestamp(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
