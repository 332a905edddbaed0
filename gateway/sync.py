"""Drain the journal to the ledger, and keep the rules and member cache fresh.

The sync worker sends pending records in ``seq`` order, in batches, and
marks each one with the ledger's answer. When the ledger is down it backs off
(capped, with jitter) and the records simply wait on disk; a completed sale
``kick``s it so that an online terminal syncs within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gateway.clock import utc_now
from gateway.events import EventHub
from gateway.ledger_client import LedgerClient
from gateway.membership import MemberDirectory
from offline_queue.journal import TransactionJournal
from offline_queue.rows import JournalStats
from protocols.backoff import Backoff
from protocols.errors import GatewayError
from protocols.pacing import RefreshPacer

log = structlog.get_logger("posgw.sync")


@dataclass
class SyncState:
    online: bool = False
    last_sync: str | None = None
    last_error: str | None = None
    synced_total: int = 0
    rejected_total: int = 0
    quarantined_total: int = 0
    rules_loaded_at: float | None = None
    # The journal is behind the ledger: stays until a person looks.
    integrity_error: str | None = None
    last_contact: float | None = None  # wall-clock time of the last answer from the ledger


@dataclass
class SyncWorker:
    terminal_id: str
    journal: TransactionJournal
    client: LedgerClient
    hub: EventHub
    interval: float
    batch_size: int
    lease_seconds: float = 30.0
    state: SyncState = field(default_factory=SyncState)
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=30.0))
    _kick: asyncio.Event = field(default_factory=asyncio.Event)

    def kick(self) -> None:
        self._kick.set()

    async def journal_status(self, stats: JournalStats | None = None) -> dict[str, Any]:
        """The ``journal`` event's fields (from ``stats`` when the caller already has them)."""
        stats = stats or await self.journal.stats()
        return {
            "pending": stats.pending,
            "pending_amount": stats.pending_amount,
            "oldest_pending": stats.oldest_pending,
            "last_seq": stats.last_seq,
            "last_synced_at": stats.last_synced_at,
            "online": self.state.online,
        }

    def set_online(self, online: bool, error: str | None = None) -> None:
        if online:
            self.state.last_contact = time.time()
        changed = online != self.state.online
        self.state.online = online
        self.state.last_error = error
        if changed:
            log.info("ledger_online" if online else "ledger_offline", error=error)
            self.hub.publish("sync", online=online, error=error)

    async def _check_high_water(self, ledger_high: int) -> None:
        """The ledger holds more of this terminal's records than the journal: records were lost here.

        That happens when the journal file was restored from an old backup, or
        its write-ahead log was cut off. New sales reuse numbers the ledger
        already has, and it rejects them (visibly, in the journal); the
        operator must know at once.
        """
        local = (await self.journal.stats()).last_seq
        if ledger_high > local:
            message = (
                f"the ledger already holds seq {ledger_high} from this terminal but the journal ends at {local}: "
                "records were lost on this terminal (restored backup or damaged file); call store IT"
            )
            self.state.integrity_error = message
            log.critical("journal_behind_ledger", ledger_high=ledger_high, journal_last=local)
            self.hub.publish("alert", code="journal-behind-ledger", message=message)

    async def sync_once(self) -> int:
        """Send every pending record; return how many the ledger answered for."""
        done = 0
        while True:
            leased = await self.journal.lease(self.batch_size, self.lease_seconds)
            if not leased:
                if not done:
                    await self.client.ping()
                    self.set_online(True)
                return done
            sent = {p.txn_id for p in leased}
            try:
                reply = await self.client.post_batch(self.terminal_id, [p.wire for p in leased])
            except BaseException:
                await asyncio.shield(self.journal.release(list(sent)))
                raise
            answered = [r for r in reply.results if r.txn_id in sent]
            settled = await self.journal.mark_synced(answered, utc_now())
            unanswered = sent - {r.txn_id for r in answered}
            if unanswered:
                await self.journal.release(list(unanswered))
            if not answered:
                raise GatewayError("the ledger answered none of the batch's records")
            if reply.high_seq > max(p.seq for p in leased):
                await self._check_high_water(reply.high_seq)
            self.hub.publish("journal", **(await self.journal_status()))
            rejected = [r for r in answered if r.status == "rejected"]
            for r in rejected:
                log.error("sync_rejected", txn_id=r.txn_id, seq=r.seq, reason=r.reason)
            for r in (r for r in answered if r.status == "quarantined"):
                # Held at the ledger, not applied: an operator must look. The till is told at once.
                log.error("sync_quarantined", txn_id=r.txn_id, seq=r.seq, reason=r.reason)
                message = f"sale seq {r.seq} is held by the ledger for an operator: {r.reason}"
                self.hub.publish("alert", code="record-quarantined", message=message)
                self.state.quarantined_total += 1
            done += settled
            self.state.synced_total += settled
            self.state.rejected_total += len(rejected)
            self.state.last_sync = utc_now()
            self.set_online(True)
            self.hub.publish("sync", online=True, synced=len(answered), rejected=len(rejected))

    async def run(self) -> None:
        while True:
            self._kick.clear()
            try:
                await self.sync_once()
            except GatewayError as err:
                self.set_online(False, str(err))
                delay = self.backoff.next_delay()
                log.warning("sync_failed", error=str(err), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            self.backoff.reset()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval)


@dataclass
class RulesRefresher:
    """Fetch the rulebook and member snapshot from the ledger, and cache them on disk."""

    client: LedgerClient
    directory: MemberDirectory
    cache_path: Path
    interval: float
    sync: SyncWorker
    terminal_id: str
    pacer: RefreshPacer = field(default_factory=lambda: RefreshPacer(0.0))  # how soon a notice is answered
    _kick: asyncio.Event = field(default_factory=asyncio.Event)
    _now: asyncio.Event = field(default_factory=asyncio.Event)

    def kick(self) -> None:
        """Refresh soon (a newer rulebook or member revision was announced), paced by ``pacer``."""
        self._kick.set()

    def kick_now(self) -> None:
        """Refresh at once, unpaced: an operator's command to this terminal alone."""
        self._now.set()
        self._kick.set()

    async def refresh_once(self) -> None:
        self.pacer.refreshed(time.monotonic())
        asked_at = utc_now()  # sales acknowledged after this may be missing from the snapshot
        since = self.directory.members_version if self.directory.members is not None else 0
        envelope, members = await self.client.fetch_rules(since)
        try:
            rulebook = self.directory.accept_signed(envelope, members, asked_at, delta=since > 0)
        except GatewayError as err:
            log.error("rulebook_refused", error=str(err))
            self.sync.hub.publish("alert", code="rulebook-refused", message=f"{err}; the rules in force stay")
            raise
        await asyncio.to_thread(self.directory.save, self.cache_path)
        self.sync.state.rules_loaded_at = time.time()
        self.sync.set_online(True)
        log.info("rules_loaded", rulebook=rulebook.version, members=len(self.directory.members or {}))

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=self.interval)
        while True:
            try:
                await self.refresh_once()
            except GatewayError as err:
                log.warning("rules_refresh_failed", error=str(err))
                self.sync.set_online(False, str(err))
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval)
                # A notice: paced, as the whole mall hears it; a command cuts the wait short.
                await asyncio.wait_for(self._now.wait(), self.pacer.wait(time.monotonic()))
            self._kick.clear()  # notices heard while waiting are answered by this refresh
            self._now.clear()
