"""Paid tiers at the ledger (Kidswant's black-gold card): bought, believed, earning 1.5×, refunded within the
window, lapsing on their day; a till that sells one cheap, or one the rulebook does not sell, is quarantined."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from offline_queue.ids import uuid7
from protocols.business_day import business_day
from protocols.errors import FinalError
from protocols.paid_tiers import PAID_TIER_CATEGORY, tier_sku
from protocols.pricing import BasketLine, price, with_earning
from protocols.pricing.earning import payments_of
from protocols.pricing.record import sale_record
from protocols.records import Tender, TransactionRecord
from protocols.refunds import plan_refund
from protocols.rulebook import MemberEntry, Rulebook
from tests.harness import LedgerHandle, TestTerminal, ledger_cli

pytestmark = [pytest.mark.ledger]

CLASSIC = MemberEntry("M0001", "classic")
SHOES = BasketLine(1, "6900000000024", "Shoes", "fashion", 1, 40_000)


def instant(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sold(
    book: Rulebook, lines: list[BasketLine], member: MemberEntry, at: datetime, earn: bool = True
) -> TransactionRecord:
    day = business_day(at, book.zone)
    priced = price(lines, None if not earn else member, book, "M-KIDS", day=day)
    tenders = [Tender("cash", priced.total_due)]
    payments = payments_of([(t.kind, t.amount) for t in tenders], 0)
    priced = with_earning(priced, member if earn else None, book, "M-KIDS", day=day, payments=payments)
    return sale_record(
        priced, txn_id=str(uuid7()), terminal_id="", store_id="S-1", merchant_id="M-KIDS", currency="CNY",
        created_at=instant(at), tenders=tuple(tenders), change=0, member_id=member.member_id, member_via="qr",
        member_tier=member.tier, offline=False, coupons=(),
    )  # fmt: skip


def tier_sale(
    book: Rulebook, tier: str, member: MemberEntry, at: datetime, price_fen: int | None = None
) -> TransactionRecord:
    fee = price_fen if price_fen is not None else book.tiers[tier].price or 0
    card = BasketLine(1, tier_sku(tier), f"{tier} membership", PAID_TIER_CATEGORY, 1, fee)
    return sold(book, [card], member, at, earn=False)


def refund_of(book: Rulebook, sale: TransactionRecord, at: datetime) -> TransactionRecord:
    fields = {
        "txn_id": str(uuid7()),
        "terminal_id": sale.terminal_id,
        "seq": 0,
        "created_at": instant(at),
        "offline": False,
    }
    return plan_refund(sale, [], None, rulebook=book, today=business_day(at, book.zone), draft_fields=fields)


@pytest.fixture
async def till(ledger: LedgerHandle) -> TestTerminal:
    return await ledger.terminal("T-KIDS", store="S-1", merchant="M-KIDS")


async def test_black_gold_is_bought_earns_one_and_a_half_refunded_in_its_window_and_lapses(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book, now = await ledger.rulebook(), datetime.now(UTC)
    (bought,) = await till.send(tier_sale(book, "black-gold", CLASSIC, now))
    assert bought.status == "accepted", bought
    assert (await ledger.account("M0001"))["tier"] == "black-gold"
    # Priced and earned as black-gold now: ¥400 at ×1.5 = 6 points (classic earns 4), believed by the ledger.
    before = await ledger.points("M0001")
    shoes = sold(book, [SHOES], MemberEntry("M0001", "black-gold"), now)
    assert shoes.points_earned == 6
    (earned,) = await till.send(shoes)
    assert earned.status == "accepted", earned
    assert await ledger.points("M0001") == before + 6
    # Bought again while it runs: it runs on from its last day.
    renewal = tier_sale(book, "black-gold", MemberEntry("M0001", "black-gold"), now)
    assert (await till.send(renewal))[0].status == "accepted"
    # Refunded within 7 days: revoked at once (back to classic: what the member held before buying).
    (back,) = await till.send(refund_of(book, renewal, now))
    assert back.status == "accepted", back
    assert (await ledger.account("M0001"))["tier"] == "classic"
    # The first purchase was replaced by the renewal, so nothing runs; a lapse run moves nobody.
    lapse = ledger_cli("tiers", "lapse", "--day", (now + timedelta(days=800)).date().isoformat(), *ledger.store_args())
    assert lapse.returncode == 0, lapse.stderr
    assert "0 members moved" in lapse.stdout


async def test_a_paid_tier_lapses_the_day_after_its_last_and_only_once(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book, now = await ledger.rulebook(), datetime.now(UTC)
    supreme = MemberEntry("M0002", "supreme")
    assert (await till.send(tier_sale(book, "black-gold", supreme, now)))[0].status == "accepted"
    last = business_day(now, book.zone) + timedelta(days=364)
    early = ledger_cli("tiers", "lapse", "--day", last.isoformat(), *ledger.store_args())
    assert "0 members moved" in early.stdout, early.stdout + early.stderr
    due = ledger_cli("tiers", "lapse", "--day", (last + timedelta(days=1)).isoformat(), *ledger.store_args())
    assert due.returncode == 0, due.stderr
    assert "M0002: black-gold → supreme" in due.stdout  # never below the tier held before buying
    assert (await ledger.account("M0002"))["tier"] == "supreme"
    again = ledger_cli("tiers", "lapse", "--day", (last + timedelta(days=2)).isoformat(), *ledger.store_args())
    assert "0 members moved" in again.stdout
    shown = ledger_cli("member", "show", "M0002", *ledger.store_args())
    assert "lapsed black-gold" in shown.stdout, shown.stdout


async def test_a_till_cannot_sell_a_tier_cheap_or_one_not_for_sale_nor_refund_it_late(
    ledger: LedgerHandle, till: TestTerminal
) -> None:
    book, now = await ledger.rulebook(), datetime.now(UTC)
    cheap = tier_sale(book, "black-gold", CLASSIC, now, price_fen=100)
    not_sold = tier_sale(book, "supreme", CLASSIC, now, price_fen=100)
    stranger = tier_sale(book, "black-gold", MemberEntry("M-NOBODY", "classic"), now)
    results = await till.send(cheap, not_sold, stranger)
    assert [r.status for r in results] == ["quarantined"] * 3, results
    assert "asks 19900" in (results[0].reason or "")
    assert "does not sell" in (results[1].reason or "")
    assert "whom the ledger does not know" in (results[2].reason or "")
    assert (await ledger.account("M0001"))["tier"] == "classic"
    # Backdated ten days (to spread a till's sales over days whose caps were not used): refused.
    backdated = tier_sale(book, "black-gold", CLASSIC, now - timedelta(days=10))
    (late_sale,) = await till.send(backdated)
    assert late_sale.status == "quarantined"
    assert "at most 24 h offline" in (late_sale.reason or "")
    # Bought now, given back nine days on: past the 7-day window.
    bought = tier_sale(book, "black-gold", CLASSIC, now)
    assert (await till.send(bought))[0].status == "accepted"
    later = now + timedelta(days=9)
    with pytest.raises(FinalError, match="could be refunded until"):
        refund_of(book, bought, later)  # the till refuses it
    forced = dataclasses.replace(refund_of(book, bought, now), created_at=instant(later))
    (refused,) = await till.send(forced)
    assert refused.status == "quarantined"
    assert "could be refunded until" in (refused.reason or "")
    assert (await ledger.account("M0001"))["tier"] == "black-gold"
    held = ledger_cli("quarantine", "list", "--json", *ledger.store_args())
    assert len(json.loads(held.stdout)) == 5


async def test_a_till_sells_no_more_of_a_tier_a_day_than_its_cap(ledger: LedgerHandle, till: TestTerminal) -> None:
    """Its cash is the till's word until the day's count, and the tier multiplies what the member earns."""
    book, now = await ledger.rulebook(), datetime.now(UTC)
    cap = book.tiers["black-gold"].daily_cap
    members = [MemberEntry(m, "classic") for m in ("M0001", "M0002", "M0003")]
    sales = [tier_sale(book, "black-gold", members[i % 3], now) for i in range(cap + 1)]
    results = await till.send(*sales)
    assert [r.status for r in results] == ["accepted"] * cap + ["quarantined"], results
    assert f"the cap is {cap}" in (results[-1].reason or "")


def test_a_rulebook_cannot_put_a_paid_tier_on_the_growth_ladder() -> None:
    wire = {"version": 1, "currency": "CNY", "issuer_keys": {},
            "tiers": {"gold": {"default_rate": 9000, "growth": 100, "price": 19_900}}}  # fmt: skip
    with pytest.raises(FinalError, match="a paid tier has no growth threshold"):
        Rulebook.from_wire(wire)
