"""The ledger prices a sale's lines again and believes its benefits (tier, promotions, coupons, exchanges,
offset) only when they are the same, rule by rule: a mall-funded discount is money the mall owes the tenant,
so no till's word may set it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from ledger.benefit_check import PRICE_HELD_MINUTES, benefits_refusal
from ledger.demo_data import DEMO_BENEFITS, DEMO_EXCLUDED, DEMO_TIERS
from offline_queue.ids import uuid7
from protocols.business_day import business_day, minute_of_day
from protocols.pricing import BasketLine, price
from protocols.pricing.record import sale_record
from protocols.records import Benefit, Tender, TransactionRecord
from protocols.rulebook import MemberEntry, Rulebook
from tests.harness import LedgerHandle

BOOK = Rulebook.from_wire(
    {
        "version": 4,
        "currency": "CNY",
        "tiers": DEMO_TIERS,
        "excluded_categories": DEMO_EXCLUDED,
        "issuer_keys": {},
        **{k: v for k, v in DEMO_BENEFITS.items() if k in ("earn", "risk")},
        "promotions": [
            *DEMO_BENEFITS["promotions"],
            {
                "id": "P-LUNCH",
                "name": "Lunch ¥15 off ¥100",
                "kind": "spend",
                "steps": [[10_000, 1_500]],
                "code": "LUNCH15",
                "weekdays": [1, 2, 3, 4, 5],
                "hours": "11:00-14:00",
                "funded_by": "mall",
            },
        ],
    }
)
DRESS = BasketLine(1, "6900000000017", "Dress", "fashion", 1, 40_000)
# Tuesday 1 December 2026, 12:30 in Beijing: lunchtime on a weekday, when the lunch code runs.
LUNCH = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)


def sale(
    lines: list[BasketLine],
    merchant: str = "M-FASHION",
    at: datetime = LUNCH,
    member: MemberEntry | None = None,
    codes: tuple[str, ...] = (),
    priced_at: datetime | None = None,
    book: Rulebook = BOOK,
) -> TransactionRecord:
    """A sale as an honest till prices it at ``priced_at`` (the moment a payment froze its price) and records it
    at ``at``."""
    when = priced_at or at
    priced = price(
        lines,
        member,
        book,
        merchant,
        day=business_day(when, book.zone),
        minute=minute_of_day(when, book.zone),
        promo_codes=codes,
    )
    return sale_record(
        priced,
        txn_id=str(uuid7()),
        terminal_id="T-1",
        store_id="S-1",
        merchant_id=merchant,
        currency="CNY",
        created_at=at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        tenders=(Tender("cash", priced.total_due),),
        change=0,
        member_id=member.member_id if member else None,
        member_via="qr" if member else None,
        member_tier=member.tier if member else None,
        offline=False,
        coupons=(),
        promo_codes=codes,
    )


def test_an_honest_sale_s_promotions_are_believed() -> None:
    honest = sale([DRESS])
    assert [(b.kind, b.rule, b.amount) for b in honest.benefits] == [("promotion", "P-FASHION-300-50", 5_000)]
    assert benefits_refusal(honest, BOOK) is None
    coded = sale([dataclasses.replace(DRESS, unit_price=16_000)], merchant="M-BAKERY", codes=("SPRING20", "LUNCH15"))
    assert coded.total_discount == 2_000 + 1_500
    assert benefits_refusal(coded, BOOK) is None
    gift_box = BasketLine(1, "6901234567809", "Gift box", "bakery", 2, 4_800)
    member_price = sale([gift_box], merchant="M-BAKERY", member=MemberEntry("M0001", "classic"))
    assert member_price.total_due == 7_800  # ¥39 each beats 85 % of ¥48
    assert benefits_refusal(member_price, BOOK) is None


def inflate(r: TransactionRecord, rule: str, extra: int, kind: str = "promotion") -> TransactionRecord:
    """The record with ``extra`` fen more off, claimed for ``rule``: lines, totals and tender kept consistent."""
    (line,) = r.lines
    line = dataclasses.replace(line, discount=line.discount + extra, net=line.net - extra)
    benefits = [b for b in r.benefits if b.rule != rule]
    benefits.append(Benefit(kind, rule, sum(b.amount for b in r.benefits if b.rule == rule) + extra))
    return dataclasses.replace(
        r,
        lines=(line,),
        total_discount=r.total_discount + extra,
        total_due=r.total_due - extra,
        tenders=(Tender("cash", r.total_due - extra),),
        benefits=tuple(benefits),
    )


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (inflate(sale([DRESS]), "P-FASHION-300-50", 5_000), "gives promotion P-FASHION-300-50 5000"),
        (inflate(sale([DRESS], merchant="M-BAKERY"), "P-FASHION-300-50", 5_000), "gives nothing"),  # another shop
        # A mall coupon the sale never redeemed: found by the first hostile review of the settlement.
        (inflate(sale([DRESS]), "C-20-OFF-200", 2_000, "coupon"), "gives promotion P-FASHION-300-50 5000"),
        # A discount moved from the shop's own tier price onto the mall's promotion, the total unchanged.
        (
            dataclasses.replace(
                sale([DRESS], member=MemberEntry("M0002", "supreme")),
                benefits=(Benefit("tier", "supreme", 1_000), Benefit("promotion", "P-FASHION-300-50", 8_000)),
            ),
            "gives promotion P-FASHION-300-50 5000, tier supreme 4000",
        ),
        (inflate(sale([DRESS]), "P-SPRING20", 2_000), "P-SPRING20"),  # a code it was not given
        # The code given, but in the evening: it runs at lunchtime.
        (inflate(sale([DRESS], at=LUNCH + timedelta(hours=8), codes=("LUNCH15",)), "P-LUNCH", 1_500), "P-LUNCH"),
        # A member price for a customer who is no member.
        (
            inflate(
                sale([BasketLine(1, "6901234567809", "Gift box", "bakery", 1, 4_800)], "M-BAKERY"),
                "P-GIFTBOX-MEMBER",
                900,
            ),
            "gives nothing",
        ),
    ],
)
def test_a_benefit_the_lines_do_not_earn_is_refused_with_what_the_rulebook_gives(
    record: TransactionRecord, why: str
) -> None:
    refusal = benefits_refusal(record, BOOK)
    assert refusal is not None
    assert why in refusal


def test_a_price_frozen_by_a_payment_before_the_window_closed_is_believed_within_the_hold() -> None:
    before_two = datetime(2026, 12, 1, 5, 58, tzinfo=UTC)  # 13:58 in Beijing
    basket = [dataclasses.replace(DRESS, unit_price=16_000)]
    paid_then = sale(basket, "M-BAKERY", at=before_two + timedelta(minutes=4), codes=("LUNCH15",), priced_at=before_two)
    assert paid_then.total_discount == 1_500
    assert benefits_refusal(paid_then, BOOK) is None
    too_late = sale(
        basket,
        "M-BAKERY",
        at=before_two + timedelta(minutes=PRICE_HELD_MINUTES + 3),
        codes=("LUNCH15",),
        priced_at=before_two,
    )
    assert "P-LUNCH" in (benefits_refusal(too_late, BOOK) or "")


def test_a_record_that_names_no_benefits_claims_no_promotion() -> None:
    bare = dataclasses.replace(sale([DRESS]), benefits=())
    assert benefits_refusal(bare, BOOK) is None  # nothing of its discount is the mall's to bear


@pytest.mark.ledger
async def test_a_till_claiming_a_mall_funded_promotion_it_was_not_owed_is_quarantined(ledger: LedgerHandle) -> None:
    till = await ledger.terminal("T-FASHION", store="S-1", merchant="M-FASHION")
    book, now = await ledger.rulebook(), datetime.now(UTC)
    honest = sale([DRESS], at=now, book=book)
    # A basket under ¥300 claiming the ¥50 anyway.
    cheap = sale([dataclasses.replace(DRESS, unit_price=29_900)], at=now, book=book)
    claimed = inflate(cheap, "P-FASHION-300-50", 5_000)
    results = await till.send(honest, claimed)
    assert [r.status for r in results] == ["accepted", "quarantined"], results
    assert "its benefits take promotion P-FASHION-300-50 5000 off" in (results[1].reason or "")
