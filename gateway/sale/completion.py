"""Complete a sale: price, settle tenders, commit to the journal, then answer.

The record is on disk (fsync'd) before the cashier hears "done". A retried
completion with the same ``Idempotency-Key`` returns the original sale, from
memory or, after a restart, from the journal; it never records a second sale.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway.clock import instant
from gateway.config import TerminalConfig
from gateway.errors import ConflictError, TenderError
from gateway.events import EventHub, SaleRecorded
from gateway.ledger_link.link import LedgerLink
from gateway.members.identify import Identification
from gateway.members.points import PointsSpending
from gateway.sale import gift_cards, topups
from gateway.sale.basket import Basket, BasketState
from gateway.sale.intake import Intake
from gateway.sale.pricing import Pricer
from offline_queue.ids import uuid7
from offline_queue.payments import PaymentIntent
from protocols.errors import GatewayError
from protocols.micropay import Outcome
from protocols.money import format_cny
from protocols.pricing.earning import payments_of
from protocols.pricing.record import sale_record
from protocols.records import Tender, TransactionRecord

log = structlog.get_logger("posgw.sale")


@dataclass(frozen=True, slots=True)
class CompletedSale:
    record: TransactionRecord
    replayed: bool


class SaleJournal(Protocol):
    """Where sales are committed and found again (``offline_queue/journal.py``)."""

    async def replay(self, idempotency_key: str, fingerprint: str) -> TransactionRecord | None: ...

    async def get(self, txn_id: str) -> TransactionRecord | None: ...

    async def append(
        self,
        draft: TransactionRecord,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        personal: dict[str, str] | None = None,
        member_code: str | None = None,
        payments: tuple[str, ...] = (),
    ) -> tuple[TransactionRecord, bool]: ...


class JournalReports(Protocol):
    """Tells the till how much waits to be synced (``SyncWorker``)."""

    def report_soon(self) -> None: ...


class PointsRelease(Protocol):
    """Lets a points hold go at once when its sale was not made (``LedgerClient``)."""

    async def release_points(self, reservation: str) -> None: ...


class Completion:
    def __init__(
        self,
        terminal: TerminalConfig,
        journal: SaleJournal,
        pricer: Pricer,
        identification: Identification,
        points: PointsSpending,
        link: LedgerLink,
        sync: JournalReports,
        client: PointsRelease,
        intake: Intake,
        hub: EventHub,
    ) -> None:
        self.terminal = terminal
        self.journal = journal
        self.pricer = pricer
        self.identification = identification
        self.points = points
        self.link = link
        self.sync = sync
        self.client = client
        self.intake = intake
        self.hub = hub

    async def replay(self, basket_id: str, idempotency_key: str, digest: str = "") -> CompletedSale | None:
        """The sale an earlier completion with this key recorded, even across a restart.

        ``digest`` is what the request asked (its body's digest): the same key with another
        body is refused (``IdempotencyConflictError``), never answered with the first sale.
        """
        record = await self.journal.replay(idempotency_key, _fingerprint(basket_id, digest))
        return None if record is None else CompletedSale(record, True)

    async def complete(
        self,
        basket: Basket,
        tenders: list[Tender],
        idempotency_key: str,
        personal: dict[str, str] | None = None,
        digest: str = "",
    ) -> CompletedSale:
        fingerprint = _fingerprint(basket.basket_id, digest)
        with self.intake.working():
            async with basket.lock:
                if basket.state is BasketState.COMPLETED:
                    return await self._replay(basket, idempotency_key, fingerprint)
                sale = await self._commit(basket, tenders, idempotency_key, personal, fingerprint)
        self.link.records_waiting()
        return sale

    async def _replay(self, basket: Basket, key: str, fingerprint: str) -> CompletedSale:
        if key != basket.completion_key or basket.txn_id is None:
            raise ConflictError(f"basket {basket.basket_id} is already completed")
        if await self.journal.replay(key, fingerprint) is None:  # refuses the same key with another body
            raise ConflictError(f"basket {basket.basket_id} is completed but its key is not in the journal")
        record = await self.journal.get(basket.txn_id)
        if record is None:
            raise ConflictError(f"basket {basket.basket_id} is completed but its sale is not in the journal")
        return CompletedSale(record, True)

    async def _commit(
        self, basket: Basket, tenders: list[Tender], key: str, personal: dict[str, str] | None, fingerprint: str
    ) -> CompletedSale:
        basket.require_completable()
        self.intake.on_duty()
        paid = [p for p in basket.payments if p.state is Outcome.PAID]
        # Payments taken are tenders too (the limits were checked before each was taken).
        tenders = [*(_tender(p) for p in paid), *tenders]
        # No member shown, but a wallet told who paid: if the ledger knows them, they earn ("pay = member").
        payer = None if basket.member else await self.identification.by_payer(_payers(paid))
        now = self.pricer.clock()  # one instant: the record's time and the business day it was priced on
        day = self.pricer.day_of(now)
        priced = self.pricer.priced(basket, now)
        change = _settle(priced.total_due, tenders)
        # Earned as the bill was paid: each tender's campaigns, stored value rewarded or not.
        payments = payments_of([(t.kind, t.amount) for t in tenders], change)
        priced = self.pricer.earned(basket, priced, payments, payer, day)
        earner = basket.member.member if basket.member else payer
        txn_id = str(uuid7())
        reservation = (
            await self.points.reserve(basket.member.member.member_id, priced.points_redeemed, txn_id)
            if priced.points_redeemed and basket.member
            else None
        )
        term = self.terminal
        draft = sale_record(
            priced,
            txn_id=txn_id,
            terminal_id=term.terminal_id,
            store_id=term.store_id,
            merchant_id=term.merchant_id,
            currency=term.currency,
            created_at=instant(now),
            tenders=tuple(tenders),
            change=change,
            member_id=basket.member.member.member_id if basket.member else (payer.member_id if payer else None),
            member_via=basket.member.via if basket.member else ("payment" if payer else None),
            member_tier=earner.tier if earner else None,
            offline=not self.link.online,
            # Only the coupons pricing actually applied are redeemed; the rest stay the customer's.
            coupons=tuple(c.key for c in basket.coupons if c.definition.coupon_id in priced.coupons_applied),
            reservation=reservation,
            promo_codes=tuple(basket.promo_codes),
        )
        draft = dataclasses.replace(
            draft,
            member_code=basket.member.token_nonce if basket.member else None,
            # A price changed by hand names the price it was rung up at, and the supervisor who approved it.
            lines=tuple(
                dataclasses.replace(x, list_price=basket.price_overrides.get(p.line.line_id, 0))
                for x, p in zip(draft.lines, priced.lines, strict=True)
            ),
            approved_by=basket.approved_by if basket.price_overrides else None,
        )
        for tender in draft.tenders:
            gift_cards.check_tender(basket, tender.kind)
        if basket.topup is not None:  # stored value sold (``gateway/sale/topups.py``)
            book = self.pricer.rules.rulebook
            for tender in draft.tenders:
                topups.check_tender(basket, book, tender.kind)
            draft = topups.as_topup(basket, draft, book)
        try:
            record, replayed = await self.journal.append(
                draft,
                idempotency_key=key,
                fingerprint=fingerprint,
                personal=personal,
                member_code=draft.member_code,
                payments=tuple(p.payment_id for p in paid),
            )
        except GatewayError:
            if reservation is not None:  # the sale was not made: let the points go at once
                with contextlib.suppress(GatewayError):
                    await self.client.release_points(reservation)
            raise
        basket.complete(record.txn_id, key)
        log.info(
            "sale_completed",
            txn_id=record.txn_id,
            seq=record.seq,
            total=format_cny(record.total_due),
            member=record.member_id,
            offline=record.offline,
            replayed=replayed,
        )
        self.hub.publish(
            SaleRecorded(
                basket_id=basket.basket_id,
                txn_id=record.txn_id,
                seq=record.seq,
                total_due=record.total_due,
                points_earned=record.points_earned,
                offline=record.offline,
            )
        )
        self.sync.report_soon()  # off the request path: the till hears "done" as soon as the commit is on disk
        return CompletedSale(record, replayed)


def _fingerprint(basket_id: str, digest: str) -> str:
    """How the journal tells one completion request from another with the same key."""
    return f"{basket_id}#{digest}" if digest else basket_id


def _payers(paid: list[PaymentIntent]) -> list[tuple[str, str]]:
    """The wallet accounts that paid, as their providers named them."""
    return [(p.wallet, payer) for p in paid if (payer := p.detail.get("payer"))]


def _tender(p: PaymentIntent) -> Tender:
    """A paid payment as a tender of its sale; for a card, what the terminal said (PAN masked)."""
    d = p.detail
    return Tender(
        p.wallet,
        p.amount,
        p.payment_id,
        d.get("scheme"),
        d.get("pan"),
        d.get("auth"),
        d.get("code"),
        d.get("provider_txn"),
        d.get("card"),
    )


def _settle(total_due: int, tenders: list[Tender]) -> int:
    """Check the tenders cover the bill exactly; return the change, which only cash gives."""
    if not tenders:
        raise TenderError("no tender given")
    paid = sum(t.amount for t in tenders)
    if paid < total_due:
        raise TenderError(f"tendered {format_cny(paid)} is less than the {format_cny(total_due)} due")
    not_cash = sum(t.amount for t in tenders if t.kind != "cash")
    if not_cash > total_due:
        raise TenderError(
            f"payments of {format_cny(not_cash)} are more than the {format_cny(total_due)} due; "
            "cancel the basket to give them back"
        )
    return paid - total_due
