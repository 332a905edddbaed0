"""The gateway's parts, built from the config and wired together once."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.payment_provider import PaymentProvider
from drivers.supervisor import DeviceSupervisor
from gateway.config import GatewayConfig
from gateway.devices.cards import CardRouter
from gateway.devices.dispatch import DeviceEvents
from gateway.devices.receipts import ReceiptDesk
from gateway.devices.scans import ScanRouter
from gateway.errors import StateDirError
from gateway.events import Alert, DeviceChanged, Event, EventHub, LedgerStatus
from gateway.ledger_link import enrolment
from gateway.ledger_link.client import LedgerClient, pinned_keys
from gateway.ledger_link.link import LedgerLink
from gateway.ledger_link.mqtt import MqttLink
from gateway.ledger_link.rules import RulesRefresher
from gateway.ledger_link.sync import SyncWorker
from gateway.members.directory import MemberDirectory
from gateway.members.identify import Identification
from gateway.members.joining import Joining
from gateway.members.points import PointsSpending
from gateway.ops.health import Check, ledger_checks
from gateway.ops.metrics import Metrics
from gateway.payments.desk import PaymentDesk
from gateway.payments.gift_card import GiftCardProvider
from gateway.payments.messages import payment_view
from gateway.payments.refunding import RefundDesk
from gateway.payments.wallet import MemberWalletProvider
from gateway.sale.basket import BasketStore
from gateway.sale.building import Building
from gateway.sale.completion import Completion
from gateway.sale.intake import Intake
from gateway.sale.paying import Paying
from gateway.sale.pricing import Pricer
from gateway.sale.refunds import Refunds
from gateway.staff.desk import CashierDesk
from gateway.staff.roster import Roster
from gateway.staff.shifts import Shifts
from offline_queue.journal import TransactionJournal
from offline_queue.keys import load_or_create_signing_key
from offline_queue.limits import JournalLimits
from offline_queue.personal import Keyring
from offline_queue.rows import JournalStats
from protocols.errors import GatewayError
from protocols.pacing import RefreshPacer
from protocols.version import VERSION


@dataclass
class Services:
    """Every part of the till, built once from the config; the HTTP layer and the daemon use them."""

    config: GatewayConfig
    hub: EventHub
    link: LedgerLink
    baskets: BasketStore
    directory: MemberDirectory
    journal: TransactionJournal
    client: LedgerClient
    sync: SyncWorker
    refresher: RulesRefresher
    intake: Intake
    pricer: Pricer
    identification: Identification
    building: Building
    desk: PaymentDesk
    refund_desk: RefundDesk
    paying: Paying
    completion: Completion
    refunds: Refunds
    scans: ScanRouter
    cards: CardRouter
    devices: DeviceEvents
    joining: Joining
    cashiers: CashierDesk
    shifts: Shifts
    receipts: ReceiptDesk
    supervisors: list[DeviceSupervisor] = field(default_factory=list)
    mqtt: MqttLink | None = None
    metrics: Metrics = field(default_factory=Metrics)
    recent_errors: deque[str] = field(default_factory=lambda: deque(maxlen=10))

    @classmethod
    def build(cls, config: GatewayConfig) -> Services:
        _make_state_dir(config.state_dir)
        term = config.terminal
        hub = EventHub()
        link = LedgerLink(hub)
        baskets = BasketStore()
        enrolled = enrolment.load(config)
        # The ledger's keys: named in the config, else pinned at enrolment; never learned from what is cached.
        pinned = [config.ledger.rulebook_key] if config.ledger.rulebook_key else []
        pinned = pinned or (list(enrolled.issuer_keys.values()) if enrolled else [])
        directory = MemberDirectory(pinned_key=pinned[0] if pinned else None)
        directory.load(config.cache_path)
        keyring = Keyring.from_text(config.journal.keys, config.journal.keys_source) if config.journal.keys else None
        key = load_or_create_signing_key(config.key_path)
        epoch = enrolled.epoch if enrolled else 1
        journal = TransactionJournal(config.journal_path, key, keyring=keyring, epoch=epoch)
        client = LedgerClient(
            config.ledger.url,
            term.terminal_id,
            key,
            config.ledger.timeout,
            config.ledger.ca_file,
            pinned_keys(pinned),
        )
        limits = JournalLimits(config.journal.max_records, config.journal.max_bytes, config.journal.max_pending_age)
        sync = SyncWorker(
            term.terminal_id, journal, client, link, config.ledger.sync_interval, config.ledger.batch_size, limits
        )
        refresher = RulesRefresher(
            client,
            directory,
            config.cache_path,
            config.ledger.refresh_interval,
            link,
            term.terminal_id,
            RefreshPacer(config.ledger.min_refresh_interval),
        )
        sync.member_news = refresher.kick_now
        wallet = MemberWalletProvider(term.terminal_id, directory, journal, link, client, config.token_leeway)
        gift_cards = GiftCardProvider(term.terminal_id, directory, link, client)
        providers: dict[str, PaymentProvider] = {
            "wallet": wallet,
            "giftcard": gift_cards,
            **dict(config.payments.providers),
        }
        desk = PaymentDesk(providers, journal, hub, limits, deadline=config.payments.deadline, currency=term.currency)
        refund_desk = RefundDesk(desk, journal, hub, config.payments.refund_retry)
        intake = Intake()
        roster = Roster(config.state_dir / "staff.json", directory.ledger_key)
        roster.load()
        cashiers = CashierDesk(roster, hub)
        journal.stamp = cashiers.stamp
        refresher.roster = roster
        pricer = Pricer(directory, term.merchant_id)
        identification = Identification(directory, client, journal.lookups, config.token_leeway)
        points = PointsSpending(term.terminal_id, directory, journal.lookups, link, client)
        building = Building(
            baskets, intake, directory, journal.lookups, points, hub, config.token_leeway, counters=term.counters
        )
        paying = Paying(desk, pricer, identification, building, intake, hub)
        completion = Completion(term, journal, pricer, identification, points, link, sync, client, intake, hub)
        refunds = Refunds(
            term.terminal_id, journal, refund_desk, directory, pricer, link, intake, hub, client, cashiers
        )
        shifts = Shifts(term, journal, cashiers, directory, link, hub)

        def on_duty() -> None:
            cashiers.who()
            shifts.require()

        intake.on_duty = on_duty
        scans = ScanRouter(baskets, building, identification, paying, hub)
        cards = CardRouter(identification, pricer, scans, hub)
        svc = cls(
            config,
            hub,
            link,
            baskets,
            directory,
            journal,
            client,
            sync,
            refresher,
            intake,
            pricer,
            identification,
            building,
            desk,
            refund_desk,
            paying,
            completion,
            refunds,
            scans,
            cards,
            DeviceEvents(scans, cards, hub),
            Joining(term.terminal_id, term.store_id, term.merchant_id, term.currency, directory, client, journal, link),
            cashiers,
            shifts,
            ReceiptDesk(term, journal, directory, points, cashiers, link, hub),
        )
        svc.supervisors = [DeviceSupervisor(d.device, svc.devices.on_event) for d in config.devices]
        svc.receipts.supervisors = svc.supervisors
        hub.listeners.append(svc.receipts.on_event)
        hub.listeners.append(svc.metrics.observe)
        hub.listeners.append(svc._remember_errors)
        if config.mqtt is not None:
            svc.mqtt = MqttLink(
                config.mqtt,
                term.terminal_id,
                svc.fleet_status,
                lambda: (directory.rulebook.version, directory.members_version or 0),
                refresher.kick,
                link.records_waiting,
                refresher.revocations_announced,
                refresh_now=refresher.kick_now,
            )
        return svc

    def _remember_errors(self, event: Event) -> None:
        """The last few problems, for the status page (alerts, sync failures, device errors)."""
        at = time.strftime("%H:%M:%S", time.localtime(event.at))
        match event:
            case Alert(code=code, message=message):
                self.recent_errors.appendleft(f"{at} {code}: {message}")
            case LedgerStatus(error=str(error)):
                self.recent_errors.appendleft(f"{at} ledger: {error}")
            case DeviceChanged(device=device, error=str(error)):
                self.recent_errors.appendleft(f"{at} {device}: {error}")

    async def status_page(self) -> dict[str, Any]:
        return {**(await self.status()), "recent_errors": list(self.recent_errors)}

    async def readiness(self) -> tuple[bool, list[dict[str, Any]]]:
        """Can this till take a sale now, and what is degraded: (ready, every named check with its reason).

        Not ready only when a sale could not be recorded (the journal) or the
        daemon is stopping. Everything else degrades the till (offline
        sales, full prices, keyboard entry) and is said, by name
        (``gateway/ops/health.py``).
        """
        checks = await self.checks()
        self.metrics.checks(checks)
        return all(c.ok for c in checks if c.critical), [c.to_wire() for c in checks]

    async def checks(self) -> list[Check]:
        stats: JournalStats | None = None
        try:
            stats = await self.journal.stats()
            breaches = self.sync.limits.breaches(stats)
            journal = Check("journal", True, "; ".join(breaches) or None, critical=True)
        except GatewayError as err:
            journal = Check("journal", False, str(err), critical=True)
        checks = [journal, Check("accepting", not self.intake.draining, "shutting down", critical=True)]
        checks += ledger_checks(self.link.state, self.directory, stats)
        checks += [
            Check(f"device:{s.device.name}", s.status.state in ("idle", "busy"), s.status.error)
            for s in self.supervisors
        ]
        return checks

    async def fleet_status(self) -> dict[str, Any]:
        """What store IT's fleet view needs of this terminal (published over MQTT)."""
        stats = await self.journal.stats()
        return {
            "pending": stats.pending,
            "oldest_pending": stats.oldest_pending,
            "ledger_online": self.link.online,
            "devices": {s.device.name: s.status.state for s in self.supervisors},
            "rulebook_version": self.directory.rulebook.version,
        }

    async def status(self) -> dict[str, Any]:
        stats = await self.journal.stats()
        sync = self.link.state
        return {
            "terminal_id": self.config.terminal.terminal_id,
            "version": VERSION,
            "draining": self.intake.draining,
            "devices": [dataclasses.asdict(s.status) for s in self.supervisors],
            "journal": {**dataclasses.asdict(stats), "limits_breached": self.sync.limits.breaches(stats)},
            "ledger": {
                "online": sync.online,
                "last_sync": sync.last_sync,
                "last_error": sync.last_error,
                "synced_total": sync.synced_total,
                "rejected_total": sync.rejected_total,
                "integrity_error": sync.integrity_error,
            },
            "rulebook_version": self.directory.rulebook.version,
            "members_cached": len(self.directory.members or {}),
            "checks": [c.to_wire() for c in await self.checks()],
            "active_basket": self.baskets.active_id,
            "mqtt": None
            if self.mqtt is None
            else {"connected": self.mqtt.state.connected, "last_error": self.mqtt.state.last_error},
            "payments": {
                "running": self.desk.running,
                "resolved_after_restart": [payment_view(p) for p in self.desk.resolved],
                "unresolved": self.desk.unresolved,
                "attention": [payment_view(p) for p in await self.journal.payments.needing_attention()],
            },
        }


def _make_state_dir(path: Path) -> None:
    """The state directory, made if missing and proved writable, before anything is kept in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".posgw-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise StateDirError(f"the state directory {path} cannot be made or written: {err.strerror or err}") from err
