"""Complete a sale: price, settle tenders, commit to the journal, then answer.

The record is on disk (fsync'd) before the cashier hears "done". A retried
completion with the same ``Idempotency-Key`` returns the original sale, from
memory or, after a restart, from the journal; it never records a second sale.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import structlog

from gateway.basket import Basket, BasketState, BasketStore, MemberMatch
from gateway.clock import instant, utc_now
from gateway.config import GatewayConfig
from gateway.coupons import HeldCoupon, check_coupon, hold
from gateway.errors import (
    ConflictError,
    DrainingError,
    NotFoundError,
    RulesUnavailableError,
    TenderError,
)
from gateway.events import EventHub
from gateway.ledger_client import LedgerClient
from gateway.membership import MemberDirectory, check_active, resolve
from gateway.payments.desk import PaymentDesk
from gateway.payments.refunding import RefundDesk
from gateway.points import PointsSpending
from gateway.sync import SyncWorker
from offline_queue.errors import MemberCodeUsedError
from offline_queue.ids import uuid7
from offline_queue.journal import TransactionJournal
from offline_queue.limits import JournalLimits
from offline_queue.payments import PaymentIntent
from protocols.business_day import business_day
from protocols.errors import GatewayError
from protocols.money import format_cny
from protocols.payer import payer_identifier
from protocols.phone import phone_identifier
from protocols.pricing import Payment, PricedBasket, price, with_earning
from protocols.pricing.earning import payments_of
from protocols.pricing.record import record_lines
from protocols.records import RECORD_VERSION, Tender, TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import MemberEntry
from protocols.tokens import b64url_decode

log = structlog.get_logger("posgw.checkout")


@dataclass(frozen=True, slots=True)
class CompletedSale:
    record: TransactionRecord
    replayed: bool


class Checkout:
    def __init__(
        self,
        config: GatewayConfig,
        baskets: BasketStore,
        directory: MemberDirectory,
        journal: TransactionJournal,
        hub: EventHub,
        sync: SyncWorker,
        limits: JournalLimits,
        client: LedgerClient,
        desk: PaymentDesk,
    ) -> None:
        self.config = config
        self.desk = desk
        self.refund_desk = RefundDesk(desk, journal, hub, config.payments.refund_retry)
        self.baskets = baskets
        self.directory = directory
        self.journal = journal
        self.hub = hub
        self.sync = sync
        self.limits = limits
        self.client = client
        self.points = PointsSpending(config.terminal.terminal_id, directory, journal, sync, client)
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._report: asyncio.Task[None] | None = None
        self._refund_locks: dict[str, asyncio.Lock] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def wait_idle(self) -> None:
        """Return once no completion is in progress."""
        await self._idle.wait()

    def new_basket(self) -> Basket:
        if self.draining:
            raise DrainingError("the gateway is shutting down and starts no new baskets")
        basket = self.baskets.create()
        self.hub.publish("basket", basket_id=basket.basket_id, state=basket.state)
        return basket

    def today(self) -> date:
        """The mall's business day now (the rulebook's time zone, never the host's)."""
        return business_day(self.clock(), self.directory.rulebook.zone)

    def price(self, basket: Basket) -> PricedBasket:
        """The basket's price, and what it earns with the payments taken so far; once a payment is
        held against it, the price it was paid at (the rules may have changed since)."""
        paid = [Payment(p.wallet, p.amount) for p in basket.payments if p.state == "paid"]
        day = self.today()
        return self._earned(basket, self._priced(basket, day), paid, None, day)

    def _priced(self, basket: Basket, day: date) -> PricedBasket:
        member = basket.member.member if basket.member else None
        priced = price(
            basket.lines,
            member,
            self.directory.rulebook,
            self.config.terminal.merchant_id,
            day=day,
            coupons=[c.definition for c in basket.coupons],
            points_to_redeem=basket.points_to_redeem,
            points_balance=basket.points_available,
        )
        if basket.frozen is not None and basket.payments_held() and priced.total_due != basket.frozen.total_due:
            return basket.frozen  # the rules changed under a paid basket: it keeps the price it was paid at
        return priced

    def _earned(
        self, basket: Basket, priced: PricedBasket, payments: list[Payment], earn_as: MemberEntry | None, day: date
    ) -> PricedBasket:
        """What ``priced`` earns its member (or ``earn_as``, "pay = member") paid by ``payments`` so far."""
        earner = basket.member.member if basket.member else earn_as
        rules = self.directory.rulebook
        return with_earning(priced, earner, rules, self.config.terminal.merchant_id, day=day, payments=payments)

    async def pay(self, basket: Basket, code: str | None, amount: int | None, key: str) -> tuple[PaymentIntent, bool]:
        """Take a payment toward the basket: a scanned code, or (no code) the card terminal; see docs/payments.md."""
        if self.draining:
            raise DrainingError("the gateway is shutting down and takes no new payments")
        if code is not None and code.startswith("PW1."):
            await self._wallet_member(basket, code)
        priced = self.price(basket)
        basket.frozen = priced  # what the customer pays against stays what was shown
        return await self.desk.pay(basket, priced.total_due, code, amount, key)

    async def _wallet_member(self, basket: Basket, code: str) -> None:
        """A wallet code names its member ("pay = member"): attached first, so their benefits apply."""
        match = await self.identify_token(code)
        if basket.member is None:
            self.attach_member(basket, match)  # before any payment: the price may change
        elif basket.member.member.member_id != match.member.member_id:
            raise ConflictError("this wallet code is another member's than the basket's")

    async def _payer_member(self, paid: list[PaymentIntent]) -> MemberEntry | None:
        """The member behind a paying wallet account (its salted hash, ``protocols/payer.py``), if any."""
        salt = self.directory.rulebook.phone_salt
        for p in paid:
            if (payer := p.detail.get("payer")) and salt:
                try:
                    identifier = payer_identifier(p.wallet, payer, b64url_decode(salt))
                    return check_active(await resolve(self.directory, self.client, identifier, ""))
                except GatewayError:  # not a member, or not reachable now: the sale goes on without
                    continue
        return None

    async def cancel(self, basket: Basket) -> list[PaymentIntent]:
        """Give the basket up; payments taken for it are given back."""
        payments = await self.desk.cancel(basket)
        self.hub.publish("basket", basket_id=basket.basket_id, state=basket.state)
        return payments

    async def redeem_points(self, basket: Basket, points: int) -> None:
        await self.points.redeem(basket, points)

    async def add_coupon(self, basket: Basket, token: str) -> HeldCoupon:
        basket.require_open()
        coupon = await check_coupon(
            token, self.directory, self.journal, now=int(time.time()), leeway=self.config.token_leeway
        )
        hold(basket.coupons, coupon, basket.member.member.member_id if basket.member else None)
        await self.points.refresh(basket)  # an exchange coupon spends points
        self.hub.publish("basket", basket_id=basket.basket_id, coupon=coupon.definition.coupon_id)
        return coupon

    def attach_member(self, basket: Basket, match: MemberMatch) -> None:
        basket.require_open()
        basket.member = match
        self.hub.publish("basket", basket_id=basket.basket_id, member_id=match.member.member_id, tier=match.member.tier)

    async def identify_phone(self, phone: str) -> MemberMatch:
        """A phone number typed by the cashier; only its salted hash is looked up, never stored."""
        salt = self.directory.rulebook.phone_salt
        if not salt:
            raise RulesUnavailableError("phone numbers cannot be looked up yet: no rulebook from the ledger")
        identifier = await asyncio.to_thread(phone_identifier, phone, b64url_decode(salt))
        member = await resolve(self.directory, self.client, identifier, "no member has this phone number")
        return MemberMatch(check_active(member), "phone")

    async def identify_token(self, token: str) -> MemberMatch:
        match = self.directory.identify_token(token, now=int(time.time()), leeway=self.config.token_leeway)
        if match.token_nonce is not None and await self.journal.member_code_used(match.token_nonce):
            raise MemberCodeUsedError("this member code was already used for a sale; ask for a fresh code")
        return match

    async def refund(
        self, txn_id: str, wanted: dict[int, int] | None, idempotency_key: str, *, void: bool = False
    ) -> CompletedSale:
        """Refund all or part of a sale made at this terminal, or void it, exactly (see gateway/refunds.py)."""
        if self.draining:
            raise DrainingError("the gateway is shutting down and takes no refunds")
        fingerprint = f"{'void' if void else 'refund'}:{txn_id}"
        earlier_reply = await self.journal.replay(idempotency_key, fingerprint)
        if earlier_reply is not None:
            return CompletedSale(earlier_reply, True)
        lock = self._refund_locks.setdefault(txn_id, asyncio.Lock())
        async with lock:  # two refunds of one sale must not both take the same units
            sale = await self.journal.get(txn_id)
            if sale is None:
                raise NotFoundError(f"no sale {txn_id} in this terminal's journal")
            if any(p.basket_id == f"refund:{txn_id}" for p in await self.journal.open_refunds()):
                raise ConflictError("an earlier refund of this sale is still being settled; try again in a minute")
            draft = plan_refund(
                sale,
                await self.journal.refunds_of(txn_id),
                wanted,
                rulebook=self.directory.rulebook,
                today=self.today(),
                draft_fields={
                    "txn_id": str(uuid7()),
                    "terminal_id": self.config.terminal.terminal_id,
                    "seq": 0,
                    "created_at": utc_now(),
                    "offline": not self.sync.state.online,
                },
                void=void,
            )
            # Money goes back the way it came; a wallet or card that refuses is paid in cash instead.
            draft, settled = await self.refund_desk.pay_back(draft, idempotency_key, fingerprint)
            record, replayed = await self.journal.append(
                draft, idempotency_key=idempotency_key, fingerprint=fingerprint, payments=settled
            )
        log.info(
            "refund_recorded",
            txn_id=record.txn_id,
            refund_of=txn_id,
            total=format_cny(record.total_due),
            clawback=record.points_clawback,
            returned=record.points_returned,
        )
        self.hub.publish("refund", txn_id=record.txn_id, refund_of=txn_id, total_due=record.total_due)
        self.sync.kick()
        return CompletedSale(record, replayed)

    async def replay(self, basket_id: str, idempotency_key: str) -> CompletedSale | None:
        """The sale an earlier completion with this key recorded, even across a restart."""
        record = await self.journal.replay(idempotency_key, basket_id)
        return None if record is None else CompletedSale(record, True)

    async def complete(
        self, basket: Basket, tenders: list[Tender], idempotency_key: str, personal: dict[str, str] | None = None
    ) -> CompletedSale:
        self.in_flight += 1
        self._idle.clear()
        try:
            async with basket.lock:
                if basket.state is BasketState.COMPLETED:
                    return await self._replay(basket, idempotency_key)
                sale = await self._commit(basket, tenders, idempotency_key, personal)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
        self.sync.kick()
        return sale

    async def _replay(self, basket: Basket, key: str) -> CompletedSale:
        if key != basket.completion_key or basket.txn_id is None:
            raise ConflictError(f"basket {basket.basket_id} is already completed")
        record = await self.journal.get(basket.txn_id)
        if record is None:
            raise ConflictError(f"basket {basket.basket_id} is completed but its sale is not in the journal")
        return CompletedSale(record, True)

    async def _commit(
        self, basket: Basket, tenders: list[Tender], key: str, personal: dict[str, str] | None
    ) -> CompletedSale:
        if not basket.lines:
            raise ConflictError("the basket is empty")
        if basket.state is not BasketState.OPEN:
            raise ConflictError(f"basket {basket.basket_id} is {basket.state}; start a new basket")
        if any(p.state == "pending" for p in basket.payments):
            raise ConflictError("a payment for this basket is still running; wait for its outcome")
        paid = [p for p in basket.payments if p.state == "paid"]
        # Payments taken are tenders too (the limits were checked before each was taken).
        tenders = [*(_tender(p) for p in paid), *tenders]
        # No member shown, but a wallet told who paid: if the ledger knows them, they earn ("pay = member").
        payer = None if basket.member else await self._payer_member(paid)
        now = self.clock()  # one instant: the record's time and the business day it was priced on
        day = business_day(now, self.directory.rulebook.zone)
        priced = self._priced(basket, day)
        change = _settle(priced.total_due, tenders)
        # Earned as the bill was paid: each tender's campaigns, stored value rewarded or not.
        payments = payments_of([(t.kind, t.amount) for t in tenders], change)
        priced = self._earned(basket, priced, payments, payer, day)
        earner = basket.member.member if basket.member else payer
        txn_id = str(uuid7())
        reservation = (
            await self.points.reserve(basket, priced.points_redeemed, txn_id) if priced.points_redeemed else None
        )
        term = self.config.terminal
        draft = TransactionRecord(
            txn_id=txn_id,
            terminal_id=term.terminal_id,
            seq=0,
            kind="sale",
            created_at=instant(now),
            store_id=term.store_id,
            merchant_id=term.merchant_id,
            currency=term.currency,
            lines=record_lines(priced),
            total_gross=priced.total_gross,
            total_discount=priced.total_discount,
            total_due=priced.total_due,
            tenders=tuple(tenders),
            change=change,
            member_id=basket.member.member.member_id if basket.member else (payer.member_id if payer else None),
            member_via=basket.member.via if basket.member else ("payment" if payer else None),
            points_earned=priced.points_earned,
            rulebook_version=priced.rulebook_version,
            offline=not self.sync.state.online,
            # Only the coupons pricing actually applied are redeemed; the rest stay the customer's.
            coupons=tuple(c.key for c in basket.coupons if c.definition.coupon_id in priced.coupons_applied),
            points_redeemed=priced.points_redeemed,
            growth_earned=priced.growth_earned,
            reservation=reservation,
            version=RECORD_VERSION,
            member_tier=earner.tier if earner else None,
        )
        try:
            record, replayed = await self.journal.append(
                draft,
                idempotency_key=key,
                fingerprint=basket.basket_id,
                personal=personal,
                member_code=basket.member.token_nonce if basket.member else None,
                payments=tuple(p.payment_id for p in paid),
            )
        except GatewayError:
            if reservation is not None:  # the sale was not made: let the points go at once
                with contextlib.suppress(GatewayError):
                    await self.client.release_points(reservation)
            raise
        basket.state, basket.txn_id, basket.completion_key = BasketState.COMPLETED, record.txn_id, key
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
            "sale",
            basket_id=basket.basket_id,
            txn_id=record.txn_id,
            seq=record.seq,
            total_due=record.total_due,
            points_earned=record.points_earned,
            offline=record.offline,
        )
        if self._report is None or self._report.done():
            # Off the request path: the till hears "done" as soon as the commit is on disk.
            self._report = asyncio.get_running_loop().create_task(self._report_journal(), name="journal-report")
        return CompletedSale(record, replayed)

    async def _report_journal(self) -> None:
        """Tell the till how much waits to be synced, and alert when a limit is passed."""
        await asyncio.sleep(0.05)  # let a burst of sales share one report
        try:
            stats = await self.journal.stats()
            status = await self.sync.journal_status(stats)
        except GatewayError as err:  # the journal is closing; the next sale reports again
            log.debug("journal_report_skipped", error=str(err))
            return
        self.hub.publish("journal", **status)
        if breaches := self.limits.breaches(stats):
            log.error("journal_limit_passed", breaches=breaches)
            self.hub.publish("alert", code="journal-limit", message="; ".join(breaches))


def _tender(p: PaymentIntent) -> Tender:
    """A paid payment as a tender of its sale; for a card, what the terminal said (PAN masked)."""
    d = p.detail
    return Tender(p.wallet, p.amount, p.payment_id, d.get("scheme"), d.get("pan"), d.get("auth"))


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
