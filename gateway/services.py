"""The gateway's parts, built from the config and wired together once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from drivers.events import CardEvent, DeviceStatus, DriverEvent, ReaderEvent, ScanEvent, ScanRejected
from drivers.supervisor import DeviceSupervisor
from gateway import enrolment
from gateway.api.views import payment_view
from gateway.basket import BasketStore
from gateway.cards import CardRouter
from gateway.checkout import Checkout
from gateway.config import GatewayConfig
from gateway.events import EventHub
from gateway.ledger_client import LedgerClient
from gateway.membership import MemberDirectory
from gateway.metrics import Metrics
from gateway.mqtt_link import MqttLink
from gateway.payments.desk import PaymentDesk
from gateway.payments.wallet import MemberWalletProvider
from gateway.scans import ScanRouter
from gateway.sync import RulesRefresher, SyncWorker
from offline_queue.journal import TransactionJournal
from offline_queue.keys import load_or_create_signing_key
from offline_queue.limits import JournalLimits
from offline_queue.personal import Keyring
from protocols.errors import GatewayError
from protocols.pacing import RefreshPacer


@dataclass
class Services:
    config: GatewayConfig
    hub: EventHub
    baskets: BasketStore
    directory: MemberDirectory
    journal: TransactionJournal
    client: LedgerClient
    sync: SyncWorker
    refresher: RulesRefresher
    checkout: Checkout
    scans: ScanRouter
    cards: CardRouter
    supervisors: list[DeviceSupervisor] = field(default_factory=list)
    mqtt: MqttLink | None = None
    metrics: Metrics = field(default_factory=Metrics)
    recent_errors: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    _card_tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def build(cls, config: GatewayConfig) -> Services:
        hub = EventHub()
        baskets = BasketStore()
        enrolled = enrolment.load(config)
        # The ledger's key: pinned at enrolment (or named in the config), believed from then on.
        directory = MemberDirectory(
            pinned_key=config.ledger.rulebook_key or (enrolled.pinned_key if enrolled else None)
        )
        directory.load(config.cache_path)
        keyring = Keyring.from_text(config.journal.keys, config.journal.keys_source) if config.journal.keys else None
        key = load_or_create_signing_key(config.key_path)
        epoch = enrolled.epoch if enrolled else 1
        journal = TransactionJournal(config.journal_path, key, keyring=keyring, epoch=epoch)
        client = LedgerClient(
            config.ledger.url, config.terminal.terminal_id, key, config.ledger.timeout, config.ledger.ca_file
        )
        sync = SyncWorker(
            config.terminal.terminal_id, journal, client, hub, config.ledger.sync_interval, config.ledger.batch_size
        )
        refresher = RulesRefresher(
            client,
            directory,
            config.cache_path,
            config.ledger.refresh_interval,
            sync,
            config.terminal.terminal_id,
            RefreshPacer(config.ledger.min_refresh_interval),
        )
        limits = JournalLimits(config.journal.max_records, config.journal.max_bytes, config.journal.max_pending_age)
        wallet = MemberWalletProvider(
            config.terminal.terminal_id, directory, journal, sync, client, config.token_leeway
        )
        desk = PaymentDesk(config, journal, hub, limits, builtin={"wallet": wallet})
        checkout = Checkout(config, baskets, directory, journal, hub, sync, limits, client, desk)
        scans = ScanRouter(checkout, hub)
        cards = CardRouter(checkout, scans, client, hub)
        svc = cls(config, hub, baskets, directory, journal, client, sync, refresher, checkout, scans, cards)
        svc.supervisors = [DeviceSupervisor(d.device, svc.on_device_event) for d in config.devices]
        hub.listeners.append(svc.metrics.observe)
        hub.listeners.append(svc._remember_errors)
        if config.mqtt is not None:
            svc.mqtt = MqttLink(
                config.mqtt,
                config.terminal.terminal_id,
                svc.fleet_status,
                lambda: (directory.rulebook.version, directory.members_version or 0),
                refresher.kick,
                sync.kick,
                directory.revoke_coupons,
                refresh_now=refresher.kick_now,
            )
        return svc

    def _remember_errors(self, event: dict[str, Any]) -> None:
        """The last few problems, for the status page (alerts, sync failures, device errors)."""
        at = time.strftime("%H:%M:%S", time.localtime(event["at"]))
        if event["type"] == "alert":
            self.recent_errors.appendleft(f"{at} {event.get('code')}: {event.get('message')}")
        elif event["type"] in ("sync", "device") and event.get("error"):
            self.recent_errors.appendleft(f"{at} {event.get('device', 'ledger')}: {event['error']}")

    async def status_page(self) -> dict[str, Any]:
        return {**(await self.status()), "recent_errors": list(self.recent_errors)}

    async def readiness(self) -> tuple[bool, list[dict[str, Any]]]:
        """Can this till take a sale now, and what is degraded: (ready, checks with reasons).

        Not ready only when a sale could not be recorded (the journal) or the
        daemon is stopping. The ledger out of reach or a device away degrade
        the till (offline sales, keyboard entry) but do not stop it.
        """
        checks: list[dict[str, Any]] = []
        try:
            stats = await self.journal.stats()
            breaches = self.checkout.limits.breaches(stats)
            checks.append({"name": "journal", "ok": True, "critical": True, "reason": "; ".join(breaches) or None})
        except GatewayError as err:
            checks.append({"name": "journal", "ok": False, "critical": True, "reason": str(err)})
        stopping = self.checkout.draining
        checks.append(
            {"name": "accepting", "ok": not stopping, "critical": True, "reason": "shutting down" if stopping else None}
        )
        sync = self.sync.state
        checks.append({"name": "ledger", "ok": sync.online, "critical": False, "reason": sync.last_error})
        for s in self.supervisors:
            ok = s.status.state in ("idle", "busy")
            checks.append({"name": f"device:{s.device.name}", "ok": ok, "critical": False, "reason": s.status.error})
        return all(c["ok"] for c in checks if c["critical"]), checks

    async def fleet_status(self) -> dict[str, Any]:
        """What store IT's fleet view needs of this terminal (published over MQTT)."""
        stats = await self.journal.stats()
        return {
            "pending": stats.pending,
            "oldest_pending": stats.oldest_pending,
            "ledger_online": self.sync.state.online,
            "devices": {s.device.name: s.status.state for s in self.supervisors},
            "rulebook_version": self.directory.rulebook.version,
        }

    def on_device_event(self, event: DriverEvent | DeviceStatus) -> None:
        if isinstance(event, ScanEvent):
            self.scans.submit(event.device, event.data, event.symbology, event.at)
        elif isinstance(event, CardEvent):
            # Identifying a card may ask the ledger, so it runs beside the driver, not in it.
            task = asyncio.get_running_loop().create_task(self.cards.handle(event), name=f"card:{event.reader}")
            self._card_tasks.add(task)
            task.add_done_callback(self._card_tasks.discard)
        elif isinstance(event, ReaderEvent):
            self.hub.publish("reader", device=event.device, reader=event.reader, present=event.present)
        elif isinstance(event, ScanRejected):
            self.hub.publish(
                "scan_rejected",
                device=event.device,
                reason=event.reason,
                length=event.length,
                message="scan not understood, please scan again",
            )
        else:
            self.hub.publish("device", **dataclasses.asdict(event))

    async def status(self) -> dict[str, Any]:
        stats = await self.journal.stats()
        sync = self.sync.state
        return {
            "terminal_id": self.config.terminal.terminal_id,
            "draining": self.checkout.draining,
            "devices": [dataclasses.asdict(s.status) for s in self.supervisors],
            "journal": {**dataclasses.asdict(stats), "limits_breached": self.checkout.limits.breaches(stats)},
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
            "active_basket": self.baskets.active_id,
            "mqtt": None
            if self.mqtt is None
            else {"connected": self.mqtt.state.connected, "last_error": self.mqtt.state.last_error},
            "payments": {
                "running": self.checkout.desk.running,
                "resolved_after_restart": [payment_view(p) for p in self.checkout.desk.resolved],
                "unresolved": self.checkout.desk.unresolved,
                "attention": [payment_view(p) for p in await self.journal.payments_needing_attention()],
            },
        }
