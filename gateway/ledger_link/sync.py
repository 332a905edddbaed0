"""Drain the journal to the ledger.

The sync worker sends pending records in ``seq`` order, in batches, and
marks each one with the ledger's answer. When the ledger is down it backs off
(capped, with jitter) and the records simply wait on disk; a completed sale
rings the link (``records_waiting``) so that an online terminal syncs within
milliseconds. After a burst of sales it tells the till how much waits, and
raises an alert when a journal limit is passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from gateway.clock import utc_now
from gateway.events import Alert, EventHub, JournalStatus, LedgerStatus
from gateway.ledger_link.client import LedgerClient
from gateway.ledger_link.link import LedgerLink, LinkState
from offline_queue.journal import TransactionJournal
from offline_queue.limits import JournalLimits
from offline_queue.rows import JournalStats
from protocols.backoff import Backoff
from protocols.errors import GatewayError
from protocols.paid_tiers import PAID_TIER_CATEGORY
from protocols.sync import ChainView

log = structlog.get_logger("posgw.sync")

_PAID_TIER = f'"{PAID_TIER_CATEGORY}"'.encode()  # in a record's wire form: a line of a paid tier
PROBE_SECONDS = 1.0  # while offline, how often the ledger's /healthz is asked whether it is back


@dataclass
class SyncWorker:
    terminal_id: str
    journal: TransactionJournal
    client: LedgerClient
    link: LedgerLink
    interval: float
    batch_size: int
    limits: JournalLimits
    lease_seconds: float = 30.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=30.0))
    # Asked when the ledger accepted a record that changes its member at once (a paid tier bought or given
    # back): this till's member cache refreshes now, so the member's next basket is priced at their new tier.
    member_news: Callable[[], None] | None = None
    _report: asyncio.Task[None] | None = None

    @property
    def hub(self) -> EventHub:
        return self.link.hub

    @property
    def state(self) -> LinkState:
        return self.link.state

    async def journal_status(self, stats: JournalStats | None = None) -> JournalStatus:
        """The ``journal`` event (from ``stats`` when the caller already has them)."""
        stats = stats or await self.journal.stats()
        return JournalStatus(
            pending=stats.pending,
            pending_amount=stats.pending_amount,
            oldest_pending=stats.oldest_pending,
            last_seq=stats.last_seq,
            last_synced_at=stats.last_synced_at,
            online=self.state.online,
        )

    def report_soon(self) -> None:
        """After a sale: tell the till how much waits, off the request path (a burst shares one report)."""
        if self._report is None or self._report.done():
            self._report = asyncio.get_running_loop().create_task(self._report_journal(), name="journal-report")

    async def _report_journal(self) -> None:
        await asyncio.sleep(0.05)  # let a burst of sales share one report
        try:
            stats = await self.journal.stats()
            status = await self.journal_status(stats)
        except GatewayError as err:  # the journal is closing; the next sale reports again
            log.debug("journal_report_skipped", error=str(err))
            return
        self.hub.publish(status)
        if breaches := self.limits.breaches(stats):
            log.error("journal_limit_passed", breaches=breaches)
            self.hub.publish(Alert(code="journal-limit", message="; ".join(breaches)))

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
            self.hub.publish(Alert(code="journal-behind-ledger", message=message))

    async def _resend_missing(self, view: ChainView) -> None:
        """Records the ledger says it lacks but this till had as delivered: sent again, and said loudly.

        A forged "accepted", a ledger restored from an old backup, a bug: the
        records are still in the journal, so nothing is lost if they go again
        (the ledger's dedup makes a second send harmless).
        """
        await self._check_high_water(view.held_to)
        missing = await self.journal.outbox.resend_missing(view)
        if not missing:
            return
        runs = ", ".join(f"{a}–{b}" if a != b else str(a) for a, b in _runs(missing)[:5])
        message = f"the ledger lacks {len(missing)} record(s) this till had as delivered (seq {runs}): sent again"
        log.error("ledger_missing_records", count=len(missing), first=missing[0], last=missing[-1])
        self.hub.publish(Alert(code="ledger-missing-records", message=message))
        self.state.resent_total += len(missing)
        self.link.records_waiting()

    async def sync_once(self) -> int:
        """Send every pending record, then (idle) compare the chain with the ledger's view of it; return how
        many records the ledger answered for. Gaps the ledger names in a batch's answer are repaired at once."""
        done = 0
        while True:
            leased = await self.journal.outbox.lease(self.batch_size, self.lease_seconds)
            if not leased:
                if not done:
                    await self._resend_missing(await self.client.hello())
                    self.link.set_online(True)
                return done
            sent = {p.txn_id for p in leased}
            try:
                reply = await self.client.post_batch(self.terminal_id, [p.wire for p in leased])
            except BaseException:
                await asyncio.shield(self.journal.outbox.release(list(sent)))
                raise
            answered = [r for r in reply.results if r.txn_id in sent]
            settled = await self.journal.outbox.mark_synced(answered, utc_now())
            unanswered = sent - {r.txn_id for r in answered}
            if unanswered:
                await self.journal.outbox.release(list(unanswered))
            if not answered:
                raise GatewayError("the ledger answered none of the batch's records")
            if reply.high_seq > max(p.seq for p in leased):
                await self._check_high_water(reply.high_seq)
            if reply.gaps:  # below what it holds, the ledger misses records: any this till took as delivered go again
                held_to = max(reply.high_seq, max(p.seq for p in leased), *(last for _, last in reply.gaps))
                await self._resend_missing(ChainView(reply.high_seq, held_to, reply.gaps))
            self.hub.publish(await self.journal_status())
            rejected = [r for r in answered if r.status == "rejected"]
            for r in rejected:
                log.error("sync_rejected", txn_id=r.txn_id, seq=r.seq, reason=r.reason)
            for r in (r for r in answered if r.status == "quarantined"):
                # Held at the ledger, not applied: an operator must look. The till is told at once.
                log.error("sync_quarantined", txn_id=r.txn_id, seq=r.seq, reason=r.reason)
                message = f"sale seq {r.seq} is held by the ledger for an operator: {r.reason}"
                self.hub.publish(Alert(code="record-quarantined", message=message))
                self.state.quarantined_total += 1
            accepted = {r.txn_id for r in answered if r.status == "accepted"}
            if self.member_news is not None and any(_PAID_TIER in p.wire for p in leased if p.txn_id in accepted):
                self.member_news()
            done += settled
            self.state.synced_total += settled
            self.state.rejected_total += len(rejected)
            self.state.last_sync = utc_now()
            self.link.set_online(True)
            self.hub.publish(LedgerStatus(online=True, synced=len(answered), rejected=len(rejected)))

    async def run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except GatewayError as err:
                self.link.failed(err)
                delay = self.backoff.next_delay()
                log.warning("sync_failed", error=str(err), retry_in=round(delay, 2))
                await self._wait_for_ledger(delay)
                continue
            self.backoff.reset()
            await self.link.wait_for_records(self.interval)

    async def _wait_for_ledger(self, delay: float) -> None:
        """The backoff, cut short as soon as a cheap probe (``/healthz``, once a second) finds the ledger
        answering again: queued sales go within about a second of its return, not at the backoff's end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while (left := deadline - loop.time()) > 0:
            await self.link.pause(min(PROBE_SECONDS, left))  # or sooner: another part found the ledger back
            if self.link.online or (left > PROBE_SECONDS and await self.client.alive()):
                return


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Ascending numbers as runs: ``[1, 2, 3, 7]`` → ``[(1, 3), (7, 7)]``."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
