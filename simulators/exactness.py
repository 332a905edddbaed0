"""Random baskets, paid any way and refunded in random pieces, checked to the fen and the point.

One case is a basket (tiers, excluded categories, every promotion kind and
promo codes, every coupon kind, a points offset, exchange items, every campaign) priced for a member, paid by
random split tenders (cash with change, the member wallet, scan-to-pay, a
bank card, a gift card), recorded as a version 2 sale, then refunded in random partial
refunds until nothing is left. :func:`check_case` lists every way the figures
fail to add up (empty: exact). The property test draws cases with hypothesis
(``tests/protocols/test_exact_points.py``); ``python -m bench.exactness`` runs
a million of them and prints the mismatch count.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from protocols.benefits import Campaign, CouponDefinition, EarnRule, OffsetRule
from protocols.gift_cards import check_digit
from protocols.money import FULL_RATE
from protocols.pricing import BasketLine, Payment, PricedBasket, PricedLine, price, with_earning
from protocols.pricing.earning import payments_of
from protocols.pricing.record import sale_record
from protocols.promotions import Promotion, SpendStep
from protocols.records import Tender, TransactionRecord
from protocols.refunds import plan_refund, tenders_given_back
from protocols.rulebook import MemberEntry, Rulebook, Tier

CATEGORIES = ("bakery", "hamper", "luxury", "food", "gift-card")
GIFT_CARD = "GC" + "12345678901" + check_digit("12345678901")  # a card the cases pay with
SKUS = ("TART", "ROLL", "KNIFE", "HAMPER", "CARD")


def rulebook(*, on_offset: bool = False, on_stored_value: bool = True) -> Rulebook:
    """A mall with every kind of benefit; offset on Tuesdays (2026-12-01 is one)."""
    return Rulebook(
        version=4,
        currency="CNY",
        tiers={
            "classic": Tier("classic", 9_500, {"M-BAKERY": 8_500}),
            "supreme": Tier("supreme", 9_000, {"M-PARTNER": 5_000}, {"luxury": 9_000}),
        },
        excluded_categories=frozenset({"gift-card"}),
        issuer_keys={},
        earn=EarnRule(10_000, 100, on_offset=on_offset, on_stored_value=on_stored_value),
        campaigns=(
            Campaign("hamper-x3", "Hampers ×3", 30_000, categories=frozenset({"hamper"})),
            Campaign("wallet-x2", "Wallet ×2", 20_000, payment_methods=frozenset({"wallet"})),
            Campaign("supreme-x1.5", "Supreme ×1.5", 15_000, tiers=frozenset({"supreme"})),
            Campaign(
                "tuesday-card",
                "Card Tuesdays ×1.2",
                12_000,
                weekdays=frozenset({2}),
                payment_methods=frozenset({"card"}),
            ),
        ),
        offset=OffsetRule(points_per_yuan=100, weekdays=frozenset({2, 5}), cap=5_000),
        promotions=(
            Promotion("MP", "Member knife", "member_price", prices={"KNIFE": 4_999}, members_only=True),
            Promotion("B2G1", "Bakery 2+1", "bundle", buy=2, get=1, categories=frozenset({"bakery"})),
            Promotion(
                "HAMPER-TART",
                "Hamper, a tart free",
                "bundle",
                buy=1,
                get=1,
                free_sku="TART",
                categories=frozenset({"hamper"}),
            ),
            Promotion(
                "SPEND",
                "满300减50",
                "spend",
                steps=(SpendStep(30_000, 5_000), SpendStep(50_000, 10_000)),
                funded_by="mall",
            ),
            Promotion(
                "EVERY",
                "每满100减10",
                "spend",
                steps=(SpendStep(10_000, 1_000),),
                repeat=True,
                max_off=5_000,
                code="LUNCH",
                hours=(11 * 60, 14 * 60),
                stack_with_coupons=False,
            ),
        ),
        coupons={
            c.coupon_id: c
            for c in (
                CouponDefinition("C20", "¥20 off ¥200", "amount", amount=2_000, min_spend=20_000),
                CouponDefinition("TART", "A tart for 2 points", "exchange", sku="TART", points=2),
                CouponDefinition("P10", "10 % off", "percent", rate=1_000, ceiling=1_500, stack_with_tier=False),
                CouponDefinition("SOLO", "¥5 off, alone", "amount", amount=500, exclusive=True),
            )
        },
    )


@dataclass(frozen=True, slots=True)
class Case:
    book: Rulebook
    lines: tuple[BasketLine, ...]
    member: MemberEntry | None
    merchant: str
    day: date
    coupons: tuple[CouponDefinition, ...]
    promo_codes: tuple[str, ...]
    points_to_redeem: int
    balance: int
    tender_kinds: tuple[str, ...]  # how the bill is split, in order; the last part may be cash with change
    cuts: tuple[float, ...]  # where the bill is split between them (fractions)
    refund_seed: int


def random_case(rng: random.Random) -> Case:
    book = rulebook(on_offset=rng.random() < 0.3, on_stored_value=rng.random() < 0.8)
    n = rng.randint(1, 8)
    lines = tuple(
        BasketLine(
            i,
            rng.choice(SKUS),
            f"item {i}",
            rng.choice(CATEGORIES),
            rng.randint(1, 6),
            rng.choice([0, rng.randint(1, 200), rng.randint(100, 50_000), rng.randint(10_000, 500_000)]),
        )
        for i in range(1, n + 1)
    )
    member = rng.choice([None, MemberEntry("M1", "classic"), MemberEntry("M2", "supreme")])
    # Stored value is a member's; a gift card anyone's.
    methods = ["cash", "wallet", "wechat", "card", "giftcard"] if member else ["cash", "wechat", "card", "giftcard"]
    kinds = tuple(rng.choice(methods) for _ in range(rng.randint(1, 3)))
    return Case(
        book=book,
        lines=lines,
        member=member,
        merchant=rng.choice(["M-BAKERY", "M-PARTNER", "M-X"]),
        day=rng.choice([date(2026, 12, 1), date(2026, 12, 2)]),  # a Tuesday (offset days), a Wednesday
        coupons=tuple(rng.sample(list(book.coupons.values()), rng.randint(0, 3))),
        promo_codes=rng.choice([(), (), ("LUNCH",)]),
        points_to_redeem=rng.choice([0, 0, rng.randint(1, 300), rng.randint(1, 100_000)]),
        balance=rng.randint(0, 200_000),
        tender_kinds=kinds,
        cuts=tuple(sorted(rng.random() for _ in kinds[1:])),
        refund_seed=rng.randrange(2**32),
    )


def tenders_for(case: Case, due: int) -> tuple[list[Tender], int]:
    """The bill split over the case's tenders; cash last may be over-paid (change)."""
    points = [0, *(int(due * c) for c in case.cuts), due]
    tenders = [
        Tender(
            kind,
            points[i + 1] - points[i],
            None if kind == "cash" else f"P-{i}",
            card=GIFT_CARD if kind == "giftcard" else None,
        )
        for i, kind in enumerate(case.tender_kinds)
    ]
    tenders = [t for t in tenders if t.amount] or [Tender("cash", 0)]
    change = 0
    if tenders[-1].kind == "cash":
        change = (-tenders[-1].amount) % 1_000  # the customer rounds up to ¥10
        tenders[-1] = Tender("cash", tenders[-1].amount + change)
    return tenders, change


def sale_of(case: Case) -> tuple[PricedBasket, TransactionRecord]:
    """The case priced, paid and recorded as the till records it."""
    priced = price(
        case.lines,
        case.member,
        case.book,
        case.merchant,
        day=case.day,
        coupons=case.coupons,
        points_to_redeem=case.points_to_redeem,
        points_balance=case.balance,
        minute=12 * 60,  # the record's time: 04:00 UTC is noon in the mall
        promo_codes=case.promo_codes,
    )
    tenders, change = tenders_for(case, priced.total_due)
    priced = with_earning(
        priced,
        case.member,
        case.book,
        case.merchant,
        day=case.day,
        payments=payments_of([(t.kind, t.amount) for t in tenders], change),
    )
    record = sale_record(
        priced,
        txn_id="01a20b44-d22e-7abc-8def-000000000000",
        terminal_id="T-1",
        store_id="S-1",
        merchant_id=case.merchant,
        currency="CNY",
        created_at=f"{case.day.isoformat()}T04:00:00.000Z",
        tenders=tuple(tenders),
        change=change,
        member_id=case.member.member_id if case.member else None,
        member_via="qr" if case.member else None,
        member_tier=case.member.tier if case.member else None,
        offline=False,
        coupons=tuple(f"{c}:0000000000000000" for c in priced.coupons_applied),
        seq=1,
        promo_codes=case.promo_codes,
    )
    return priced, record


def refunds_of(case: Case, sale: TransactionRecord) -> list[TransactionRecord]:
    """Random partial refunds (a few units of a few lines each) until nothing is left."""
    rng = random.Random(case.refund_seed)
    left = [x.quantity for x in sale.lines]
    done: list[TransactionRecord] = []
    while any(left):
        wanted = {i + 1: rng.randint(1, n) for i, n in enumerate(left) if n and rng.random() < 0.5}
        if not wanted:
            continue
        fields: dict[str, object] = {
            "txn_id": f"01a20b44-d22e-7abc-8def-{len(done) + 1:012d}",
            "terminal_id": "T-1",
            "seq": len(done) + 2,
            "created_at": f"{case.day.isoformat()}T05:00:00.000Z",
            "offline": False,
        }
        done.append(plan_refund(sale, done, wanted, rulebook=case.book, today=case.day, draft_fields=fields))
        for number, quantity in wanted.items():
            left[number - 1] -= quantity
    return done


def check_case(
    case: Case, also: Callable[[TransactionRecord, list[TransactionRecord]], list[str]] | None = None
) -> list[str]:
    """Every figure that does not add up (empty: the case is exact). ``also``: more checks of the
    sale and its refunds (the ledger's re-check, in the tests)."""
    bad: list[str] = []
    priced, sale = sale_of(case)
    if TransactionRecord.from_wire(sale.to_wire()) != sale:  # the schema's sums, and a round trip
        bad.append("the sale does not round-trip through its wire form")
    for p in priced.lines:
        if p.gross - p.tier_discount - p.promotion_discount - p.coupon_discount - p.offset != p.net or p.net < 0:
            bad.append(f"line {p.line.line_id}: money does not add up")
        if not p.eligible and (p.discount or p.points or p.growth or p.points_spent):
            bad.append(f"line {p.line.line_id}: an excluded category took a benefit")
    if sum(e.points for e in priced.earned_by) != priced.points_earned:
        bad.append("the tenders' points do not add up to the basket's")
    bad += _earning_bound(case, priced, sale)
    refunds = refunds_of(case, sale)
    for r in refunds:
        try:
            TransactionRecord.from_wire(r.to_wire())
        except Exception as err:  # noqa: BLE001 - reported as a mismatch
            bad.append(f"refund {r.txn_id} fails its schema: {err}")
    per_line = [[0, 0, 0, 0, 0] for _ in sale.lines]
    for r in refunds:
        for x in r.lines:
            acc = per_line[x.refund_line - 1]
            for k, v in enumerate((x.quantity, x.net, x.points, x.growth, x.points_spent)):
                acc[k] += v
    for i, (line, acc) in enumerate(zip(sale.lines, per_line, strict=True), 1):
        if acc != [line.quantity, line.net, line.points, line.growth, line.points_spent]:
            bad.append(f"line {i}: refunds gave back {acc}, the sale took {line}")
    totals = (
        sum(r.total_due for r in refunds),
        sum(r.points_clawback for r in refunds),
        sum(r.points_returned for r in refunds),
        sum(r.growth_clawback for r in refunds),
    )
    if totals != (sale.total_due, sale.points_earned, sale.points_redeemed, sale.growth_earned):
        bad.append(f"the refunds add up to {totals}, not the sale's")
    given = tenders_given_back(refunds)
    for t in sale.tenders:
        if t.kind != "cash" and given.get((t.kind, t.ref), 0) != t.amount:
            bad.append(f"tender {t.kind} {t.ref} paid {t.amount}, given back {given.get((t.kind, t.ref), 0)}")
    cash_paid = sum(t.amount for t in sale.tenders if t.kind == "cash") - sale.change
    if given.get(("cash", None), 0) != cash_paid:
        bad.append(f"cash paid {cash_paid}, given back {given.get(('cash', None), 0)}")
    if also is not None:
        bad += also(sale, refunds)
    return bad


def _earning_bound(case: Case, priced: PricedBasket, sale: TransactionRecord) -> list[str]:
    """An independent oracle: each line's points within one of its exact share of the basket's."""
    if case.member is None:
        return [] if priced.points_earned == 0 and priced.growth_earned == 0 else ["a non-member earned"]
    rule = case.book.earn
    payments = payments_of([(t.kind, t.amount) for t in sale.tenders], sale.change)
    due = max(sale.total_due, 1)
    exact_total = 0.0
    shares: list[float] = []
    for p in priced.lines:
        if not p.eligible:
            shares.append(0.0)
            continue
        weight = 0.0
        for pay in payments:
            rate = 0 if pay.method == "wallet" and not rule.on_stored_value else _mult(case, p, pay)
            weight += p.net * pay.amount / due * rate
        if rule.on_offset:
            weight += p.offset * _mult(case, p, Payment(None, 0))
        shares.append(weight / FULL_RATE / rule.fen_per_point)
        exact_total += shares[-1]
    bad = []
    if not exact_total - 1e-6 - 1 < priced.points_earned <= exact_total + 1e-6:
        bad.append(f"earned {priced.points_earned}, exactly {exact_total:.4f}")
    for p, share in zip(priced.lines, shares, strict=True):
        if exact_total and abs(p.points - share * priced.points_earned / exact_total) >= 1 + 1e-6:
            bad.append(f"line {p.line.line_id} earned {p.points}, its share is {share:.4f}")
    return bad


def _mult(case: Case, p: PricedLine, pay: Payment) -> int:
    tier = case.member.tier if case.member else None
    campaigns = case.book.campaigns
    return max(
        [
            FULL_RATE,
            *(c.multiplier for c in campaigns if c.applies(case.day, case.merchant, p.line.category, tier, pay.method)),
        ]
    )
